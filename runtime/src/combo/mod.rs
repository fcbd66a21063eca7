//! Combo channels: channels made of other channels, as brpc's `ParallelChannel`,
//! `SelectiveChannel` and `PartitionChannel` (brpc's `docs/en/combo_channel.md`).
//!
//! A combo channel converts into an ordinary [`Channel`], so generated client stubs call
//! through it unchanged, and its sub-channels are ordinary [`Channel`]s too — which may
//! themselves be combo channels, nested as deep as you like. The deadline (the combo
//! channel's `timeout`, or [`Controller::set_timeout`]) and cancellation
//! ([`CallId::cancel`](crate::CallId::cancel), or dropping the call's future) cover the whole
//! call: every sub-call still running is dropped with it. After a call,
//! [`Controller::sub`] and [`Controller::sub_count`] report on each sub-call.
//!
//! ## [`ParallelChannel`]: every sub-channel at once
//!
//! A call goes to all sub-channels concurrently and their responses are merged into one. A
//! [`CallMapper`] may change the request per sub-channel, skip a sub-channel or refuse the
//! call; a [`ResponseMerger`] merges the responses (by default, protobuf's `MergeFrom`:
//! repeated fields are appended, the rest is overwritten by the later sub-channel).
//! `fail_limit` fails the call as soon as that many sub-calls failed
//! ([`errno::ETOOMANYFAILS`]), and `success_limit` ends it with success as soon as that many
//! succeeded — rpcx's *broadcast* (`fail_limit(1)`: every server must answer) and *forking*
//! (`success_limit(1)`: the first answer wins) are both one line.
//!
//! ```no_run
//! # async fn demo(a: brisk::Channel, b: brisk::Channel, c: brisk::Channel) -> Result<(), brisk::Status> {
//! use brisk::combo::ParallelChannel;
//! // Forking: the same request to three servers, the first answer wins.
//! let channel: brisk::Channel = ParallelChannel::builder()
//!     .add(a)
//!     .add(b)
//!     .add(c)
//!     .success_limit(1)
//!     .build()
//!     .into();
//! // let client = EchoServiceClient::new(channel);
//! # Ok(()) }
//! ```
//!
//! ## [`SelectiveChannel`]: one sub-channel per call
//!
//! Load-balances calls over sub-channels (round-robin) — typically one cluster channel per
//! data center. When a sub-call fails in a way the retry policy retries, the retry goes to
//! *another* sub-channel. Sub-channels can be added and removed while calls are running.
//!
//! ```no_run
//! # async fn demo() -> Result<(), brisk::Status> {
//! use brisk::combo::SelectiveChannel;
//! let east = brisk::Channel::builder().connect_cluster("list://10.0.0.1:8000,10.0.0.2:8000", "rr").await?;
//! let west = brisk::Channel::builder().connect_cluster("list://10.1.0.1:8000,10.1.0.2:8000", "rr").await?;
//! let selective = SelectiveChannel::builder().add(east).max_retry(1).build();
//! let west_handle = selective.add_channel(west);
//! let channel = selective.clone().into_channel();
//! // ... later, drain the west data center:
//! selective.remove_channel(west_handle);
//! # Ok(()) }
//! ```
//!
//! ## [`PartitionChannel`]: one sub-call per partition
//!
//! A parallel channel whose sub-channels are built from one naming service: each server's
//! tag says which partition it serves (`"1/3"`: partition 1 of 3, read by a
//! [`PartitionParser`]), and each call goes to one server of every partition.
//!
//! ```no_run
//! # async fn demo() -> Result<(), brisk::Status> {
//! use brisk::combo::{DefaultPartitionParser, PartitionChannel};
//! let channel = PartitionChannel::builder()
//!     .fail_limit(1)
//!     .connect(3, "list://10.0.0.1:8000 0/3,10.0.0.2:8000 1/3,10.0.0.3:8000 2/3", "rr", DefaultPartitionParser)
//!     .await?
//!     .into_channel();
//! # Ok(()) }
//! ```

mod parallel;
mod partition;
mod selective;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::channel::{ErasedRequest, Reply};
use crate::controller::TimeoutSetting;
use crate::naming::BoxFuture;
#[cfg(doc)]
use crate::Channel;
use crate::{errno, Controller, MethodDescriptor, Status};

pub use parallel::{ParallelChannel, ParallelChannelBuilder};
pub use partition::{
    DefaultPartitionParser, Partition, PartitionChannel, PartitionChannelBuilder, PartitionParser,
    MAX_PARTITIONS,
};
pub use selective::{ChannelHandle, SelectiveChannel, SelectiveChannelBuilder};

/// `RpcMeta.content_type` of protobuf payloads, whose concatenation is a merge.
const PROTOBUF_CONTENT_TYPE: i32 = 0;

/// What a [`CallMapper`] decides for one sub-channel of a call (brpc's `SubCall`).
#[derive(Debug)]
pub enum SubCall {
    /// Send the call's own request, as already encoded (nothing is encoded again).
    Same,
    /// Don't call this sub-channel. If every sub-channel is skipped the call fails with
    /// [`errno::ECANCELED`].
    Skip,
    /// Fail the whole call at once with [`errno::EREQUEST`]: the request cannot be split as
    /// this mapper needs.
    Bad,
    /// Send this request instead. It must be of the call's request type (anything else fails
    /// the call with [`errno::EREQUEST`]); it is encoded (and compressed as the call's request
    /// is) for this sub-channel only.
    Request(Box<dyn Any + Send + Sync>),
}

impl SubCall {
    /// [`SubCall::Request`] with `request`.
    ///
    /// ```
    /// use brisk::combo::SubCall;
    /// let sub = SubCall::request(String::from("shard 1"));
    /// assert!(matches!(sub, SubCall::Request(_)));
    /// ```
    pub fn request<T: Any + Send + Sync>(request: T) -> SubCall {
        SubCall::Request(Box::new(request))
    }
}

/// Turns a call into the sub-call for one sub-channel of a [`ParallelChannel`] or
/// [`PartitionChannel`] (brpc's `CallMapper`): the same request, another one, none, or a
/// refusal of the whole call. Sub-channels without a mapper get the same request.
///
/// Any `Fn(usize, usize, &(dyn Any + Send + Sync)) -> SubCall` is a mapper; [`typed_mapper`]
/// builds one that sees the request with its type.
///
/// ```
/// use std::any::Any;
/// use brisk::combo::{CallMapper, SubCall};
/// use brisk::MethodDescriptor;
///
/// /// Only even-numbered sub-channels get the call.
/// #[derive(Debug)]
/// struct EvenOnly;
///
/// impl CallMapper for EvenOnly {
///     fn map(&self, index: usize, _count: usize, _method: &MethodDescriptor,
///            _request: &(dyn Any + Send + Sync)) -> SubCall {
///         if index % 2 == 0 { SubCall::Same } else { SubCall::Skip }
///     }
/// }
/// let method = MethodDescriptor::new("example.EchoService", "Echo");
/// assert!(matches!(EvenOnly.map(1, 4, &method, &()), SubCall::Skip));
/// ```
pub trait CallMapper: Send + Sync + 'static {
    /// The sub-call for sub-channel `index` of `count`, for a call of `method` with
    /// `request` (the caller's typed request: downcast it to the request type).
    fn map(
        &self,
        index: usize,
        count: usize,
        method: &MethodDescriptor,
        request: &(dyn Any + Send + Sync),
    ) -> SubCall;
}

impl<F> CallMapper for F
where
    F: Fn(usize, usize, &(dyn Any + Send + Sync)) -> SubCall + Send + Sync + 'static,
{
    fn map(
        &self,
        index: usize,
        count: usize,
        _method: &MethodDescriptor,
        request: &(dyn Any + Send + Sync),
    ) -> SubCall {
        self(index, count, request)
    }
}

/// A [`CallMapper`] from a function of the typed request: `map(index, count, &request)`.
/// A call whose request is not a `Req` gets [`SubCall::Bad`].
///
/// ```
/// use brisk::combo::{typed_mapper, CallMapper, SubCall};
/// use brisk::MethodDescriptor;
///
/// // Each sub-channel gets its own slice of the work.
/// let mapper = typed_mapper(|index, count, request: &String| {
///     SubCall::request(format!("{request} (part {index} of {count})"))
/// });
/// let method = MethodDescriptor::new("example.EchoService", "Echo");
/// let SubCall::Request(sub) = mapper.map(1, 3, &method, &String::from("job")) else { panic!() };
/// assert_eq!(sub.downcast_ref::<String>().unwrap(), "job (part 1 of 3)");
/// ```
pub fn typed_mapper<Req, F>(map: F) -> impl CallMapper
where
    Req: Any + Send + Sync,
    F: Fn(usize, usize, &Req) -> SubCall + Send + Sync + 'static,
{
    TypedMapper {
        map,
        _request: PhantomData::<fn(&Req)>,
    }
}

struct TypedMapper<Req, F> {
    map: F,
    _request: PhantomData<fn(&Req)>,
}

impl<Req, F> CallMapper for TypedMapper<Req, F>
where
    Req: Any + Send + Sync,
    F: Fn(usize, usize, &Req) -> SubCall + Send + Sync + 'static,
{
    fn map(
        &self,
        index: usize,
        count: usize,
        _method: &MethodDescriptor,
        request: &(dyn Any + Send + Sync),
    ) -> SubCall {
        match request.downcast_ref::<Req>() {
            Some(request) => (self.map)(index, count, request),
            None => SubCall::Bad,
        }
    }
}

/// What a [`ResponseMerger`] made of one sub-response (brpc's `ResponseMerger::Result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeResult {
    /// Merged.
    Merged,
    /// Not merged: the sub-call counts as failed (toward `fail_limit`) and its controller
    /// reports [`errno::ERESPONSE`].
    Fail,
    /// Fail the whole call with [`errno::ERESPONSE`].
    FailAll,
}

/// Merges a sub-channel's response into the call's response (brpc's `ResponseMerger`).
///
/// The first successful sub-response (in sub-channel order) becomes the call's response as
/// it is; the merger of each later sub-channel that succeeded then merges that sub-channel's
/// response into it, one at a time, in sub-channel order — never concurrently. Both
/// arguments are of the method's response type: downcast them.
///
/// Any `Fn(&mut (dyn Any + Send), Box<dyn Any + Send>) -> MergeResult` is a merger;
/// [`typed_merger`] builds one that sees the responses with their type. Without a merger,
/// protobuf responses are merged as `MergeFrom` would: the encoded sub-responses are
/// concatenated, which protobuf decodes as a merge (repeated fields appended, other fields
/// taken from the last sub-response that sets them).
///
/// ```
/// use std::any::Any;
/// use brisk::combo::{MergeResult, ResponseMerger};
///
/// /// Adds up counts.
/// #[derive(Debug)]
/// struct Sum;
///
/// impl ResponseMerger for Sum {
///     fn merge(&self, response: &mut (dyn Any + Send), sub_response: Box<dyn Any + Send>) -> MergeResult {
///         match (response.downcast_mut::<u64>(), sub_response.downcast::<u64>()) {
///             (Some(total), Ok(sub)) => { *total += *sub; MergeResult::Merged }
///             _ => MergeResult::FailAll,
///         }
///     }
/// }
/// let mut total = 2u64;
/// assert_eq!(Sum.merge(&mut total, Box::new(3u64)), MergeResult::Merged);
/// assert_eq!(total, 5);
/// ```
pub trait ResponseMerger: Send + Sync + 'static {
    /// Merges `sub_response` into `response`.
    fn merge(
        &self,
        response: &mut (dyn Any + Send),
        sub_response: Box<dyn Any + Send>,
    ) -> MergeResult;
}

impl<F> ResponseMerger for F
where
    F: Fn(&mut (dyn Any + Send), Box<dyn Any + Send>) -> MergeResult + Send + Sync + 'static,
{
    fn merge(
        &self,
        response: &mut (dyn Any + Send),
        sub_response: Box<dyn Any + Send>,
    ) -> MergeResult {
        self(response, sub_response)
    }
}

/// A [`ResponseMerger`] from a function of the typed responses: `merge(&mut response,
/// sub_response)`. Responses of another type fail the call ([`MergeResult::FailAll`]).
///
/// ```
/// use brisk::combo::{typed_merger, MergeResult, ResponseMerger};
///
/// let join = typed_merger(|response: &mut String, sub: String| {
///     response.push('+');
///     response.push_str(&sub);
///     MergeResult::Merged
/// });
/// let mut response = String::from("a");
/// assert_eq!(join.merge(&mut response, Box::new(String::from("b"))), MergeResult::Merged);
/// assert_eq!(response, "a+b");
/// assert_eq!(join.merge(&mut response, Box::new(7u8)), MergeResult::FailAll);
/// ```
pub fn typed_merger<Resp, F>(merge: F) -> impl ResponseMerger
where
    Resp: Any + Send,
    F: Fn(&mut Resp, Resp) -> MergeResult + Send + Sync + 'static,
{
    TypedMerger {
        merge,
        _response: PhantomData::<fn(Resp)>,
    }
}

struct TypedMerger<Resp, F> {
    merge: F,
    _response: PhantomData<fn(Resp)>,
}

impl<Resp, F> ResponseMerger for TypedMerger<Resp, F>
where
    Resp: Any + Send,
    F: Fn(&mut Resp, Resp) -> MergeResult + Send + Sync + 'static,
{
    fn merge(
        &self,
        response: &mut (dyn Any + Send),
        sub_response: Box<dyn Any + Send>,
    ) -> MergeResult {
        match (
            response.downcast_mut::<Resp>(),
            sub_response.downcast::<Resp>(),
        ) {
            (Some(response), Ok(sub_response)) => (self.merge)(response, *sub_response),
            _ => MergeResult::FailAll,
        }
    }
}

/// How deeply combo channels may nest in one call: deeper means a combo channel that
/// contains itself (a selective channel added to itself, say), refused rather than
/// recursing until the stack overflows.
const MAX_NESTING: usize = 32;

tokio::task_local! {
    /// How many combo channels the current call is already inside.
    static NESTING: usize;
}

/// Runs a combo channel's call one nesting level deeper, or refuses it with
/// [`errno::EINVAL`] past [`MAX_NESTING`] levels.
fn nested<'a>(
    kind: &'static str,
    call: impl Future<Output = Result<Reply, Status>> + Send + 'a,
) -> BoxFuture<'a, Result<Reply, Status>> {
    let depth = NESTING.try_with(|depth| *depth).unwrap_or(0);
    if depth >= MAX_NESTING {
        return Box::pin(std::future::ready(Err(Status::new(
            errno::EINVAL,
            format!(
                "combo channels nested more than {MAX_NESTING} deep at a {kind}: does a combo \
                 channel contain itself?"
            ),
        ))));
    }
    Box::pin(NESTING.scope(depth + 1, call))
}

/// A sub-call's controller: the caller's client settings, with the combo channel's deadline.
fn sub_controller(
    cntl: &Controller,
    timeout: Option<Duration>,
    max_retry: Option<u32>,
    backup_request: Option<Duration>,
) -> Controller {
    let mut sub = Controller::new();
    sub.timeout = match timeout {
        Some(timeout) => TimeoutSetting::Set(timeout),
        // A call the caller gave no deadline has none on any sub-channel either.
        None if cntl.timeout == TimeoutSetting::Cleared => TimeoutSetting::Cleared,
        None => TimeoutSetting::Channel,
    };
    sub.max_retry = max_retry;
    sub.backup_request = backup_request;
    sub.log_id = cntl.log_id;
    sub.request_code = cntl.request_code;
    sub.request_attachment = cntl.request_attachment.clone();
    sub.request_compress_type = cntl.request_compress_type;
    sub
}

/// Runs one sub-call on `channel` and records its outcome in its controller — also when the
/// sub-call is dropped unfinished (the call ended first: its deadline passed, it was
/// cancelled, or a limit was reached), as ERPCTIMEDOUT or ECANCELED.
async fn run_sub_call(
    channel: &crate::Channel,
    method: &MethodDescriptor,
    guard: SubCallGuard<'_>,
    request: &ErasedRequest<'_>,
) -> Result<Reply, Status> {
    let mut guard = guard;
    let result = channel.call_erased(method, guard.cntl, request).await;
    guard.cntl.latency = guard.begin.elapsed();
    if let Err(status) = &result {
        guard.cntl.error = Some(status.clone());
    }
    guard.finished = true;
    result
}

/// How close to its deadline a dropped sub-call counts as timed out rather than cancelled.
const DEADLINE_SLACK: Duration = Duration::from_millis(10);

/// Marks a sub-call's controller when the sub-call is dropped before it ends.
struct SubCallGuard<'a> {
    cntl: &'a mut Controller,
    begin: Instant,
    deadline: Option<Instant>,
    finished: bool,
}

impl<'a> SubCallGuard<'a> {
    fn new(cntl: &'a mut Controller, deadline: Option<Instant>) -> Self {
        SubCallGuard {
            cntl,
            begin: Instant::now(),
            deadline,
            finished: false,
        }
    }
}

impl Drop for SubCallGuard<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let now = Instant::now();
        self.cntl.latency = now.saturating_duration_since(self.begin);
        // The caller's deadline started a moment before this one (the request was encoded
        // in between): a drop that close to the deadline is the deadline.
        let timed_out = self
            .deadline
            .is_some_and(|d| d.saturating_duration_since(now) <= DEADLINE_SLACK);
        self.cntl.error = Some(if timed_out {
            Status::new(
                errno::ERPCTIMEDOUT,
                "the call's deadline passed before this sub-call ended",
            )
        } else {
            Status::new(
                errno::ECANCELED,
                "cancelled: the call ended before this sub-call did",
            )
        });
    }
}

/// The deadline of a call starting now.
fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Shortens an error text for a summary of several.
fn brief(status: &Status) -> String {
    const MAX: usize = 160;
    let text = status.to_string();
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// `Debug` for trait objects that have none.
struct Opaque(&'static str);

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_calls_keep_the_callers_deadline_choice() {
        let mut cntl = Controller::new();
        let sub = sub_controller(&cntl, Some(Duration::from_millis(7)), None, None);
        assert_eq!(sub.timeout(), Some(Duration::from_millis(7)));
        let sub = sub_controller(&cntl, None, None, None);
        assert!(
            !sub.is_timeout_cleared(),
            "the sub-channel's own timeout applies"
        );
        cntl.clear_timeout();
        let sub = sub_controller(&cntl, None, None, None);
        assert!(sub.is_timeout_cleared(), "no deadline anywhere");
    }
}
