//! [`ParallelChannel`]: every call goes to all sub-channels at once and their responses are
//! merged (brpc's `ParallelChannel`). [`PartitionChannel`](super::PartitionChannel) runs on
//! the same machinery.

use std::any::Any;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::{
    brief, deadline_after, nested, run_sub_call, sub_controller, CallMapper, MergeResult, Opaque,
    ResponseMerger, SubCall, SubCallGuard, PROTOBUF_CONTENT_TYPE,
};
use crate::channel::{Combo, ErasedRequest, Reply};
use crate::naming::BoxFuture;
use crate::protocol::Payload;
use crate::transport::client::{Answer, EncodedRequest};
use crate::{errno, Channel, ChannelOptions, CompressType, Controller, MethodDescriptor, Status};

/// Sends each call to all its sub-channels concurrently and merges their responses into one
/// (brpc's `ParallelChannel`). Build it with [`ParallelChannel::builder`], then convert it
/// into a [`Channel`] for client stubs (or to nest it in another combo channel).
///
/// - **Requests**: every sub-channel gets the call's request, encoded once — unless its
///   [`CallMapper`] replaces it ([`SubCall::Request`]), skips the sub-channel
///   ([`SubCall::Skip`]; all skipped fails the call with [`errno::ECANCELED`]) or refuses the
///   call ([`SubCall::Bad`]: [`errno::EREQUEST`]).
/// - **Limits**: the call fails with [`errno::ETOOMANYFAILS`] as soon as `fail_limit`
///   sub-calls failed (default: all of them — the call succeeds if any sub-call does), and
///   succeeds as soon as `success_limit` sub-calls succeeded (only when `fail_limit` is not
///   set, as in brpc; default: all of them). Either way the sub-calls still running are
///   dropped (cancelled) and report [`errno::ECANCELED`] in their controllers. Limits are
///   clamped to 1..=the number of sub-calls made.
/// - **Responses**: the successful sub-responses are merged in sub-channel order. Without a
///   [`ResponseMerger`], protobuf responses are merged on the wire (concatenated, which
///   protobuf decodes as `MergeFrom`: repeated fields appended, other fields set by the last
///   sub-response that has them); JSON responses need a merger, except with
///   `success_limit(1)`. With mergers, the first successful sub-response becomes the
///   response and each later sub-channel's merger merges its sub-response into it.
/// - **Controller**: [`Controller::sub`] gives each sub-call's controller (`None` for skipped
///   sub-channels). The response attachment is the concatenation of the merged
///   sub-responses' attachments, in sub-channel order; `remote_side` is that of the first
///   merged sub-call.
/// - **Deadline**: the parallel channel's `timeout` (default 500 ms, or the controller's)
///   covers all sub-calls; the sub-channels' own timeouts are not used. Cancelling the call
///   or dropping its future drops every sub-call.
///
/// ```no_run
/// # async fn demo() -> Result<(), brisk::Status> {
/// use std::time::Duration;
/// use brisk::combo::ParallelChannel;
///
/// let mut builder = ParallelChannel::builder().timeout(Duration::from_millis(200));
/// for address in ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"] {
///     builder = builder.add(brisk::Channel::connect(address).await?);
/// }
/// // Broadcast: every server must answer.
/// let channel: brisk::Channel = builder.fail_limit(1).build().into();
/// // let client = EchoServiceClient::new(channel);
/// // let mut cntl = brisk::Controller::new();
/// // client.echo_with(&mut cntl, request).await?;
/// // for i in 0..cntl.sub_count() { println!("{:?}", cntl.sub(i).map(|c| c.latency())); }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ParallelChannel {
    inner: Arc<Parallel>,
    options: ChannelOptions,
}

impl ParallelChannel {
    /// Starts building a parallel channel.
    pub fn builder() -> ParallelChannelBuilder {
        ParallelChannelBuilder::default()
    }

    /// The number of sub-channels.
    pub fn channel_count(&self) -> usize {
        self.inner.subs.len()
    }

    /// A [`Channel`] calling through this parallel channel, for client stubs or to nest in
    /// another combo channel.
    pub fn into_channel(self) -> Channel {
        Channel::from_combo(self.inner, self.options)
    }
}

impl From<ParallelChannel> for Channel {
    fn from(channel: ParallelChannel) -> Channel {
        channel.into_channel()
    }
}

impl fmt::Debug for ParallelChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelChannel")
            .field("channels", &self.inner.subs)
            .field("fail_limit", &self.inner.fail_limit)
            .field("success_limit", &self.inner.success_limit)
            .field("timeout", &self.options.timeout)
            .finish()
    }
}

/// Builds a [`ParallelChannel`].
#[derive(Clone, Default)]
pub struct ParallelChannelBuilder {
    subs: Vec<SubChannel>,
    limits: Limits,
    mapper: Option<Arc<dyn CallMapper>>,
    merger: Option<Arc<dyn ResponseMerger>>,
    options: ChannelOptions,
}

impl fmt::Debug for ParallelChannelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParallelChannelBuilder")
            .field("channels", &self.subs)
            .field("fail_limit", &self.limits.fail_limit)
            .field("success_limit", &self.limits.success_limit)
            .field("timeout", &self.options.timeout)
            .finish()
    }
}

impl ParallelChannelBuilder {
    /// Adds a sub-channel, with the builder's default mapper and merger (see
    /// [`call_mapper`](Self::call_mapper) and [`response_merger`](Self::response_merger)).
    /// The same channel may be added several times: each addition gets its own sub-call.
    #[allow(clippy::should_implement_trait)] // brpc's AddChannel; a builder step, not `+`
    pub fn add(mut self, channel: impl Into<Channel>) -> Self {
        self.subs.push(SubChannel::new(channel.into(), None, None));
        self
    }

    /// Adds a sub-channel with its own call mapper and response merger, as brpc's
    /// `AddChannel(channel, ownership, mapper, merger)`.
    pub fn add_with(
        mut self,
        channel: impl Into<Channel>,
        mapper: impl CallMapper,
        merger: impl ResponseMerger,
    ) -> Self {
        self.subs.push(SubChannel::new(
            channel.into(),
            Some(Arc::new(mapper)),
            Some(Arc::new(merger)),
        ));
        self
    }

    /// Adds a sub-channel with its own call mapper (and the builder's default merger).
    pub fn add_with_mapper(mut self, channel: impl Into<Channel>, mapper: impl CallMapper) -> Self {
        self.subs.push(SubChannel::new(
            channel.into(),
            Some(Arc::new(mapper)),
            None,
        ));
        self
    }

    /// Adds a sub-channel with its own response merger (and the builder's default mapper).
    pub fn add_with_merger(
        mut self,
        channel: impl Into<Channel>,
        merger: impl ResponseMerger,
    ) -> Self {
        self.subs.push(SubChannel::new(
            channel.into(),
            None,
            Some(Arc::new(merger)),
        ));
        self
    }

    /// The call mapper of every sub-channel added without one of its own (default: none —
    /// every sub-channel gets the call's request).
    pub fn call_mapper(mut self, mapper: impl CallMapper) -> Self {
        self.mapper = Some(Arc::new(mapper));
        self
    }

    /// The response merger of every sub-channel added without one of its own (default: none
    /// — protobuf `MergeFrom` semantics).
    pub fn response_merger(mut self, merger: impl ResponseMerger) -> Self {
        self.merger = Some(Arc::new(merger));
        self
    }

    /// Fails the call as soon as `limit` sub-calls failed (clamped to 1..=the number of
    /// sub-calls). Default: the number of sub-calls made.
    pub fn fail_limit(mut self, limit: usize) -> Self {
        self.limits.fail_limit = Some(limit);
        self
    }

    /// Ends the call with success as soon as `limit` sub-calls succeeded (clamped to 1..=the
    /// number of sub-calls). Used only when [`fail_limit`](Self::fail_limit) is not set, as in
    /// brpc. Default: the number of sub-calls made.
    pub fn success_limit(mut self, limit: usize) -> Self {
        self.limits.success_limit = Some(limit);
        self
    }

    /// Sets the deadline of a whole call, every sub-call included (default 500 ms, as brpc's
    /// `ParallelChannelOptions.timeout_ms`). [`Controller::set_timeout`] overrides it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Calls wait for their sub-calls without a deadline.
    pub fn no_timeout(mut self) -> Self {
        self.options.timeout = None;
        self
    }

    /// Builds the channel. A channel without sub-channels builds, but its calls fail with
    /// [`errno::EPERM`].
    pub fn build(self) -> ParallelChannel {
        let subs = self
            .subs
            .into_iter()
            .map(|sub| SubChannel {
                mapper: sub.mapper.or_else(|| self.mapper.clone()),
                merger: sub.merger.or_else(|| self.merger.clone()),
                channel: sub.channel,
            })
            .collect();
        ParallelChannel {
            inner: Arc::new(Parallel {
                kind: "ParallelChannel",
                subs,
                fail_limit: self.limits.fail_limit,
                success_limit: self.limits.success_limit,
                timeout: self.options.timeout,
            }),
            options: self.options,
        }
    }
}

/// `fail_limit` and `success_limit` as set (not yet clamped to a call's sub-call count).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Limits {
    pub(crate) fail_limit: Option<usize>,
    pub(crate) success_limit: Option<usize>,
}

/// One sub-channel with its mapper and merger.
#[derive(Clone)]
pub(crate) struct SubChannel {
    pub(crate) channel: Channel,
    pub(crate) mapper: Option<Arc<dyn CallMapper>>,
    pub(crate) merger: Option<Arc<dyn ResponseMerger>>,
}

impl SubChannel {
    pub(crate) fn new(
        channel: Channel,
        mapper: Option<Arc<dyn CallMapper>>,
        merger: Option<Arc<dyn ResponseMerger>>,
    ) -> Self {
        SubChannel {
            channel,
            mapper,
            merger,
        }
    }
}

impl fmt::Debug for SubChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SubChannel");
        d.field("channel", &self.channel.describe_target());
        if self.mapper.is_some() {
            d.field("mapper", &Opaque("CallMapper"));
        }
        if self.merger.is_some() {
            d.field("merger", &Opaque("ResponseMerger"));
        }
        d.finish()
    }
}

/// The parallel call machinery, shared by [`ParallelChannel`] and
/// [`PartitionChannel`](super::PartitionChannel).
pub(crate) struct Parallel {
    /// "ParallelChannel" or "PartitionChannel", for messages.
    pub(crate) kind: &'static str,
    pub(crate) subs: Vec<SubChannel>,
    pub(crate) fail_limit: Option<usize>,
    pub(crate) success_limit: Option<usize>,
    /// The channel's own timeout, for sub-controllers when the caller set none.
    pub(crate) timeout: Option<Duration>,
}

impl fmt::Debug for Parallel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.kind)?;
        for (i, sub) in self.subs.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&sub.channel.describe_target())?;
        }
        f.write_str("]")
    }
}

/// A running sub-call.
type SubFuture<'a> = Pin<Box<dyn Future<Output = Result<Reply, Status>> + Send + 'a>>;

/// What a sub-call sends: the call's request, or a replacement (kept alive for the call,
/// with its encoding).
type Plan = Option<Option<(Box<dyn Any + Send + Sync>, Bytes)>>;

impl Combo for Parallel {
    fn call<'a>(
        &'a self,
        method: &'a MethodDescriptor,
        cntl: &'a mut Controller,
        request: &'a ErasedRequest<'a>,
    ) -> BoxFuture<'a, Result<Reply, Status>> {
        nested(self.kind, self.run(method, cntl, request))
    }
}

impl Parallel {
    async fn run(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        request: &ErasedRequest<'_>,
    ) -> Result<Reply, Status> {
        let kind = self.kind;
        let nchan = self.subs.len();
        cntl.sub_controllers.clear();
        if nchan == 0 {
            return Err(Status::new(
                errno::EPERM,
                format!("{kind} has no sub-channels: add some before calling"),
            ));
        }

        // Map the call onto each sub-channel; encode replacement requests.
        let mut plans: Vec<Plan> = Vec::with_capacity(nchan);
        for (i, sub) in self.subs.iter().enumerate() {
            let sub_call = match &sub.mapper {
                Some(mapper) => mapper.map(i, nchan, method, request.typed),
                None => SubCall::Same,
            };
            plans.push(match sub_call {
                SubCall::Same => Some(None),
                SubCall::Skip => None,
                SubCall::Bad => {
                    return Err(Status::new(
                        errno::EREQUEST,
                        format!("the CallMapper of {kind} sub-channel {i} returned SubCall::Bad"),
                    ))
                }
                SubCall::Request(replacement) => {
                    let payload = encode_replacement(request, &*replacement).map_err(|e| {
                        Status::new(
                            errno::EREQUEST,
                            format!("the request for {kind} sub-channel {i}: {}", e.message()),
                        )
                    })?;
                    Some(Some((replacement, payload)))
                }
            });
        }
        let ndone = plans.iter().filter(|p| p.is_some()).count();
        if ndone == 0 {
            cntl.sub_controllers = (0..nchan).map(|_| None).collect();
            return Err(Status::new(
                errno::ECANCELED,
                format!("the CallMapper skipped all {nchan} sub-channels of the {kind}"),
            ));
        }
        let fail_limit = self.fail_limit.map_or(ndone, |n| n.clamp(1, ndone));
        let success_limit = match (self.fail_limit, self.success_limit) {
            (None, Some(n)) => n.clamp(1, ndone),
            _ => ndone,
        };
        if request.encoded.content_type != PROTOBUF_CONTENT_TYPE && success_limit > 1 {
            let unmerged = plans
                .iter()
                .zip(&self.subs)
                .position(|(plan, sub)| plan.is_some() && sub.merger.is_none());
            if let Some(i) = unmerged {
                return Err(Status::new(
                    errno::EREQUEST,
                    format!(
                        "{kind} sub-channel {i} has no ResponseMerger: only protobuf responses \
                         merge without one (content_type={}); add a merger or set success_limit(1)",
                        request.encoded.content_type
                    ),
                ));
            }
        }

        // Run the sub-calls, all in this task, until they end or a limit is reached.
        let timeout = cntl.timeout.or(self.timeout);
        let deadline = deadline_after(timeout);
        let sub_controllers: Vec<Option<Controller>> = plans
            .iter()
            .map(|plan| {
                plan.as_ref()
                    .map(|_| sub_controller(cntl, timeout, cntl.max_retry, cntl.backup_request))
            })
            .collect();
        cntl.sub_controllers = sub_controllers;
        let mut results: Vec<Option<Result<Reply, Status>>> = (0..nchan).map(|_| None).collect();
        let mut nfailed = 0;
        let mut nsucceeded = 0;
        {
            let mut running: Vec<Option<(usize, SubFuture<'_>)>> = Vec::with_capacity(ndone);
            let slots = cntl.sub_controllers.iter_mut().zip(plans).enumerate();
            for (i, (slot, plan)) in slots {
                let (Some(sub_cntl), Some(replacement)) = (slot.as_mut(), plan) else {
                    continue;
                };
                let channel = &self.subs[i].channel;
                let guard = SubCallGuard::new(sub_cntl, deadline);
                let future: SubFuture<'_> = Box::pin(async move {
                    let (typed, payload): (&(dyn Any + Send + Sync), Bytes) = match &replacement {
                        Some((typed, payload)) => (&**typed, payload.clone()),
                        None => (request.typed, request.encoded.payload.message.clone()),
                    };
                    let sub_request = ErasedRequest {
                        encoded: EncodedRequest {
                            payload: Payload {
                                message: payload,
                                ..request.encoded.payload.clone()
                            },
                            content_type: request.encoded.content_type,
                            log_id: request.encoded.log_id,
                            headers: request.encoded.headers.clone(),
                            deadline: request.encoded.deadline,
                            stream: None,
                            trace: request.encoded.trace,
                        },
                        typed,
                        encode: request.encode,
                        decode: request.decode,
                    };
                    run_sub_call(channel, method, guard, &sub_request).await
                });
                running.push(Some((i, future)));
            }
            poll_fn(|cx| {
                let mut live = false;
                for slot in running.iter_mut() {
                    let Some((i, future)) = slot else {
                        continue;
                    };
                    let Poll::Ready(result) = future.as_mut().poll(cx) else {
                        live = true;
                        continue;
                    };
                    let i = *i;
                    *slot = None;
                    if result.is_ok() {
                        nsucceeded += 1;
                    } else {
                        nfailed += 1;
                    }
                    results[i] = Some(result);
                    if nfailed >= fail_limit || nsucceeded >= success_limit {
                        return Poll::Ready(());
                    }
                }
                if live {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            // Sub-calls still running are cancelled here (their controllers say so).
            drop(running);
        }

        if nfailed >= fail_limit {
            return Err(self.too_many_fails(cntl, nfailed, ndone, fail_limit));
        }
        self.merge(cntl, request, results, nfailed, ndone, fail_limit)
    }

    /// Merges the successful sub-responses, in sub-channel order, and fills `cntl`.
    fn merge(
        &self,
        cntl: &mut Controller,
        request: &ErasedRequest<'_>,
        results: Vec<Option<Result<Reply, Status>>>,
        mut nfailed: usize,
        ndone: usize,
        fail_limit: usize,
    ) -> Result<Reply, Status> {
        let kind = self.kind;
        let mut merged: Option<Merged> = None;
        let mut merged_indexes = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            let Some(Ok(reply)) = result else {
                continue;
            };
            let Some(state) = merged.as_mut() else {
                merged = Some(match reply {
                    Reply::Encoded(answer) => Merged::Encoded(vec![answer]),
                    Reply::Decoded(response) => Merged::Decoded(response),
                });
                merged_indexes.push(i);
                continue;
            };
            match &self.subs[i].merger {
                None => match (state, reply) {
                    (Merged::Encoded(answers), Reply::Encoded(answer)) => answers.push(answer),
                    _ => {
                        return Err(Status::new(
                            errno::ERESPONSE,
                            format!(
                                "{kind} sub-channel {i} has no ResponseMerger, but its response \
                                 or an earlier one was already merged by one (by this channel or \
                                 a nested combo channel): give sub-channel {i} a merger"
                            ),
                        ))
                    }
                },
                Some(merger) => {
                    let mut response = state.take_decoded(request)?;
                    let sub_response = match reply {
                        Reply::Encoded(answer) => (request.decode)(answer.payload)?,
                        Reply::Decoded(response) => response,
                    };
                    let outcome = merger.merge(&mut *response, sub_response);
                    *state = Merged::Decoded(response);
                    match outcome {
                        MergeResult::Merged => merged_indexes.push(i),
                        MergeResult::Fail => {
                            nfailed += 1;
                            if let Some(Some(sub)) = cntl.sub_controllers.get_mut(i) {
                                sub.error = Some(Status::new(
                                    errno::ERESPONSE,
                                    "the ResponseMerger did not merge this response",
                                ));
                            }
                            if nfailed >= fail_limit {
                                return Err(self.too_many_fails(cntl, nfailed, ndone, fail_limit));
                            }
                        }
                        MergeResult::FailAll => {
                            return Err(Status::new(
                                errno::ERESPONSE,
                                format!(
                                    "the ResponseMerger of {kind} sub-channel {i} failed the call"
                                ),
                            ))
                        }
                    }
                }
            }
        }
        let Some(merged) = merged else {
            return Err(self.too_many_fails(cntl, nfailed, ndone, fail_limit));
        };

        // The controller: attachments concatenated, the first merged sub-call's addresses.
        let subs: Vec<&Controller> = merged_indexes.iter().filter_map(|&i| cntl.sub(i)).collect();
        let attachment = concat(subs.iter().map(|sub| sub.response_attachment.clone()));
        let first = subs
            .first()
            .map(|sub| (sub.remote_side, sub.local_side, sub.response_compress_type));
        let (remote, local, compress_type) = first.unwrap_or((None, None, CompressType::None));
        cntl.remote_side = remote;
        cntl.local_side = local;
        cntl.response_compress_type = compress_type;
        cntl.response_attachment = attachment.clone();

        Ok(match merged {
            Merged::Decoded(response) => Reply::Decoded(response),
            Merged::Encoded(mut answers) => {
                if answers.len() > 1 {
                    let payload = concat(answers.iter().map(|a| a.payload.clone()));
                    answers.truncate(1);
                    if let Some(first) = answers.first_mut() {
                        first.payload = payload;
                    }
                }
                let Some(mut answer) = answers.pop() else {
                    return Err(Status::internal(format!("{kind}: no response to merge")));
                };
                answer.attachment = attachment;
                Reply::Encoded(answer)
            }
        })
    }

    /// ETOOMANYFAILS, listing the sub-calls that failed.
    fn too_many_fails(
        &self,
        cntl: &Controller,
        nfailed: usize,
        ndone: usize,
        fail_limit: usize,
    ) -> Status {
        let mut text = format!(
            "{nfailed}/{ndone} sub-calls of the {} failed, fail_limit={fail_limit}:",
            self.kind
        );
        for i in 0..cntl.sub_count() {
            if let Some(error) = cntl.sub(i).and_then(Controller::error) {
                if error.code() != errno::ECANCELED {
                    text.push_str(&format!(" [C{i}]{}", brief(error)));
                }
            }
        }
        Status::new(errno::ETOOMANYFAILS, text)
    }
}

/// The response being merged: encoded sub-responses to concatenate, or a decoded one.
enum Merged {
    Encoded(Vec<Answer>),
    Decoded(Box<dyn Any + Send>),
}

impl Merged {
    /// The response decoded (concatenating and decoding encoded ones), leaving a placeholder.
    fn take_decoded(&mut self, request: &ErasedRequest<'_>) -> Result<Box<dyn Any + Send>, Status> {
        match std::mem::replace(self, Merged::Encoded(Vec::new())) {
            Merged::Decoded(response) => Ok(response),
            Merged::Encoded(answers) => {
                (request.decode)(concat(answers.into_iter().map(|a| a.payload)))
            }
        }
    }
}

/// Concatenates buffers, without copying when there is only one.
fn concat(parts: impl Iterator<Item = Bytes>) -> Bytes {
    let parts: Vec<Bytes> = parts.filter(|p| !p.is_empty()).collect();
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => {
            let mut buf = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
            for part in &parts {
                buf.extend_from_slice(part);
            }
            buf.freeze()
        }
    }
}

/// Encodes a mapper's replacement request, compressed as the call's request is.
fn encode_replacement(
    request: &ErasedRequest<'_>,
    replacement: &(dyn Any + Send + Sync),
) -> Result<Bytes, Status> {
    let raw = (request.encode)(replacement)?;
    let compress_type = request.encoded.payload.compress_type;
    let payload = if compress_type == CompressType::None {
        raw
    } else {
        crate::compress::compress_to_bytes(compress_type, &raw)
            .map_err(|e| Status::new(errno::EREQUEST, format!("Fail to compress request: {e}")))?
    };
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_joins_in_order_and_skips_empty_parts() {
        let parts = [
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"c"),
        ];
        assert_eq!(concat(parts.into_iter()), Bytes::from_static(b"abc"));
        assert_eq!(concat(std::iter::empty()), Bytes::new());
        let one = Bytes::from_static(b"x");
        assert_eq!(concat(std::iter::once(one.clone())), one);
    }

    #[test]
    fn builder_defaults_apply_to_sub_channels_without_their_own() {
        let pchan = ParallelChannel::builder().build();
        assert_eq!(pchan.channel_count(), 0);
        assert_eq!(pchan.options.timeout, Some(Duration::from_millis(500)));
        let debug = format!("{pchan:?}");
        assert!(debug.contains("ParallelChannel"), "{debug}");
    }
}
