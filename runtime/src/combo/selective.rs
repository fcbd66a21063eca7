//! [`SelectiveChannel`]: each call goes to one sub-channel, chosen round-robin; retries move
//! to other sub-channels (brpc's `SelectiveChannel`).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::{deadline_after, nested, run_sub_call, sub_controller, SubCallGuard};
use crate::channel::retry::{self, Answered, Candidates, RetrySettings, Round};
use crate::channel::{Combo, ErasedRequest, FixedBackupDelay, Reply};
use crate::naming::BoxFuture;
use crate::{errno, Channel, ChannelOptions, Controller, MethodDescriptor, RetryPolicy, Status};

/// How long a sub-channel whose call broke a connection is passed over by default (unless
/// every other sub-channel was tried), as brpc's shortest isolation.
const PASS_OVER_FOR: Duration = Duration::from_millis(100);

/// Identifies a sub-channel of a [`SelectiveChannel`], to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelHandle(u64);

/// Sends each call to one of its sub-channels, chosen round-robin, and retries a failed call
/// on *another* sub-channel (brpc's `SelectiveChannel`): load balancing between groups of
/// servers — one cluster channel per data center, say — rather than between servers.
///
/// - **Choice**: sub-channels take calls in turn. One whose last call failed with a broken,
///   refused or unavailable connection is passed over for 100 ms
///   ([`SelectiveChannelBuilder::pass_over_for`]), unless every other sub-channel has been
///   tried.
/// - **Retries**: a sub-call that fails, after the sub-channel's own retries, is retried on a
///   sub-channel this call has not tried yet when the selective channel's retry policy
///   ([`RetryPolicy`], default [`DefaultRetryPolicy`](crate::DefaultRetryPolicy)) says so —
///   and always when the sub-channel had no server at all ([`errno::EHOSTDOWN`]), as brpc's
///   default policy does — up to `max_retry` times (default 3, or
///   [`Controller::set_max_retry`]). With nothing left to try, the last error is returned.
/// - **Backup requests**: with a backup delay
///   ([`SelectiveChannelBuilder::backup_request`] or [`Controller::set_backup_request`]), a
///   sub-call without an answer after the delay is raced against the same request on another
///   sub-channel; the first success wins and the other sub-call is dropped. The backup counts
///   as a retry (`retried_count`, within `max_retry`). The delay is not passed on to the
///   sub-calls.
/// - **Deadline**: the selective channel's `timeout` (default 500 ms, or the controller's)
///   covers the call and every retry, overriding the sub-channels' timeouts.
/// - **Changes**: [`add_channel`](SelectiveChannel::add_channel) and
///   [`remove_channel`](SelectiveChannel::remove_channel) work while calls are running
///   (calls in flight keep the sub-channel they picked); the call path takes no lock.
/// - **Controller**: [`Controller::sub`]`(0)` is the controller of the sub-call that
///   answered (the first one or its backup), or of the last one that failed; `remote_side`
///   and the response attachment are copied from it, and `retried_count` counts the moves
///   to other sub-channels, backups included.
///
/// ```no_run
/// # async fn demo() -> Result<(), brisk::Status> {
/// use std::time::Duration;
/// use brisk::combo::SelectiveChannel;
///
/// let selective = SelectiveChannel::builder()
///     .add(brisk::Channel::builder().connect_cluster("list://10.0.0.1:8000,10.0.0.2:8000", "rr").await?)
///     .add(brisk::Channel::builder().connect_cluster("list://10.1.0.1:8000,10.1.0.2:8000", "rr").await?)
///     .timeout(Duration::from_millis(300))
///     .max_retry(1)
///     .build();
/// let spare = selective.add_channel(brisk::Channel::connect("10.2.0.1:8000").await?);
/// let channel: brisk::Channel = selective.clone().into();
/// // let client = EchoServiceClient::new(channel);
/// selective.remove_channel(spare);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SelectiveChannel {
    inner: Arc<Selective>,
}

impl SelectiveChannel {
    /// Starts building a selective channel.
    pub fn builder() -> SelectiveChannelBuilder {
        SelectiveChannelBuilder::default()
    }

    /// Adds a sub-channel; the next calls may use it. The handle removes it.
    ///
    /// Adding a selective channel to itself (directly or through other combo channels) makes
    /// the calls that reach the loop fail with [`errno::EINVAL`] rather than recurse, and
    /// keeps the channel alive until the loop is removed.
    pub fn add_channel(&self, channel: impl Into<Channel>) -> ChannelHandle {
        self.inner.add(channel.into())
    }

    /// Removes a sub-channel (calls in flight on it finish there). Returns whether it was
    /// there.
    pub fn remove_channel(&self, handle: ChannelHandle) -> bool {
        let mut removed = false;
        self.inner.subs.rcu(|subs| {
            let kept: Vec<Arc<SelectiveSub>> = subs
                .iter()
                .filter(|sub| sub.handle != handle)
                .cloned()
                .collect();
            removed = kept.len() != subs.len();
            kept
        });
        removed
    }

    /// The handles of the current sub-channels, in the order they were added.
    pub fn handles(&self) -> Vec<ChannelHandle> {
        self.inner
            .subs
            .load()
            .iter()
            .map(|sub| sub.handle)
            .collect()
    }

    /// The number of sub-channels.
    pub fn channel_count(&self) -> usize {
        self.inner.subs.load().len()
    }

    /// A [`Channel`] calling through this selective channel, for client stubs or to nest in
    /// another combo channel. It keeps seeing sub-channels added and removed later.
    pub fn into_channel(self) -> Channel {
        let options = self.inner.options.clone();
        Channel::from_combo(self.inner, options)
    }
}

impl From<SelectiveChannel> for Channel {
    fn from(channel: SelectiveChannel) -> Channel {
        channel.into_channel()
    }
}

impl fmt::Debug for SelectiveChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectiveChannel")
            .field("channels", &*self.inner.subs.load())
            .field("timeout", &self.inner.options.timeout)
            .field("max_retry", &self.inner.options.max_retry)
            .field("retry_policy", &self.inner.options.retry_policy)
            .field("backup_request", &self.inner.backup_request)
            .finish()
    }
}

/// Builds a [`SelectiveChannel`]. Only the options below matter to it; the sub-channels keep
/// their own for everything else.
#[derive(Clone, Default)]
pub struct SelectiveChannelBuilder {
    channels: Vec<Channel>,
    options: ChannelOptions,
    backup_request: Option<Duration>,
    pass_over_for: Option<Duration>,
}

impl fmt::Debug for SelectiveChannelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectiveChannelBuilder")
            .field("channels", &self.channels.len())
            .field("timeout", &self.options.timeout)
            .field("max_retry", &self.options.max_retry)
            .field("backup_request", &self.backup_request)
            .finish()
    }
}

impl SelectiveChannelBuilder {
    /// Adds a sub-channel.
    #[allow(clippy::should_implement_trait)] // brpc's AddChannel; a builder step, not `+`
    pub fn add(mut self, channel: impl Into<Channel>) -> Self {
        self.channels.push(channel.into());
        self
    }

    /// Sets the deadline of a whole call, retries included (default 500 ms); it overrides
    /// the sub-channels' timeouts. [`Controller::set_timeout`] overrides it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Calls wait without a deadline.
    pub fn no_timeout(mut self) -> Self {
        self.options.timeout = None;
        self
    }

    /// Sets how many times a call moves to another sub-channel (default 3).
    pub fn max_retry(mut self, max_retry: u32) -> Self {
        self.options.max_retry = max_retry;
        self
    }

    /// Sends a backup when a call has had no answer after `delay`: the same request goes to
    /// *another* sub-channel, one this call has not tried, and the first success wins (if
    /// one fails, the other is awaited) — brpc's recipe for backups across clusters. The
    /// backup counts as a retry, so it is only sent while `max_retry` leaves one; with no
    /// retry left the timer ends the call with EBACKUPREQUEST, as brpc's does, and without
    /// another sub-channel to try the call just waits. The delay is not passed on to the
    /// sub-calls. [`Controller::set_backup_request`] overrides it per call.
    pub fn backup_request(mut self, delay: Duration) -> Self {
        self.backup_request = Some(delay);
        self
    }

    /// Sets the policy that decides which sub-call failures move the call to another
    /// sub-channel.
    pub fn retry_policy(mut self, policy: impl RetryPolicy) -> Self {
        self.options.retry_policy = Arc::new(policy);
        self
    }

    /// Sets how long a sub-channel whose call broke a connection is passed over (default
    /// 100 ms, brpc's shortest isolation).
    pub fn pass_over_for(mut self, duration: Duration) -> Self {
        self.pass_over_for = Some(duration);
        self
    }

    /// Builds the channel. One without sub-channels builds; its calls fail with
    /// [`errno::EHOSTDOWN`] until one is added.
    pub fn build(self) -> SelectiveChannel {
        let selective = Arc::new(Selective {
            subs: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            next_handle: AtomicU64::new(1),
            options: self.options,
            backup_request: self.backup_request,
            pass_over_for: self.pass_over_for.unwrap_or(PASS_OVER_FOR),
        });
        for channel in self.channels {
            selective.add(channel);
        }
        SelectiveChannel { inner: selective }
    }
}

struct Selective {
    subs: ArcSwap<Vec<Arc<SelectiveSub>>>,
    /// Round-robin position.
    next: AtomicUsize,
    next_handle: AtomicU64,
    options: ChannelOptions,
    /// The backup delay of calls whose controller sets none.
    backup_request: Option<Duration>,
    /// How long a sub-channel whose call broke a connection is passed over.
    pass_over_for: Duration,
}

struct SelectiveSub {
    handle: ChannelHandle,
    channel: Channel,
    /// Milliseconds on [`clock_ms`] until which the sub-channel is passed over (0: never).
    passed_over_until: AtomicU64,
}

impl fmt::Debug for SelectiveSub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.channel.describe_target())
    }
}

impl fmt::Debug for Selective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SelectiveChannel{:?}", &*self.subs.load())
    }
}

/// Milliseconds since the first use, for cheap atomic timestamps.
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Selective {
    fn add(&self, channel: Channel) -> ChannelHandle {
        let handle = ChannelHandle(self.next_handle.fetch_add(1, Ordering::Relaxed));
        let sub = Arc::new(SelectiveSub {
            handle,
            channel,
            passed_over_until: AtomicU64::new(0),
        });
        self.subs.rcu(|subs| {
            let mut subs = Vec::clone(subs);
            subs.push(Arc::clone(&sub));
            subs
        });
        handle
    }

    /// The next sub-channel in turn that this call has not tried, preferring ones not passed
    /// over.
    fn pick(
        &self,
        subs: &[Arc<SelectiveSub>],
        tried: &[ChannelHandle],
    ) -> Option<Arc<SelectiveSub>> {
        let n = subs.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = clock_ms();
        let mut fallback = None;
        for k in 0..n {
            let sub = &subs[(start + k) % n];
            if tried.contains(&sub.handle) {
                continue;
            }
            if sub.passed_over_until.load(Ordering::Relaxed) <= now {
                return Some(Arc::clone(sub));
            }
            fallback.get_or_insert(sub);
        }
        fallback.cloned()
    }

    async fn run(
        &self,
        method: &MethodDescriptor,
        cntl: &mut Controller,
        request: &ErasedRequest<'_>,
    ) -> Result<Reply, Status> {
        let timeout = cntl.timeout.or(self.options.timeout);
        let backup_delay = cntl.backup_request.or(self.backup_request);
        let fixed_backup = backup_delay.map(FixedBackupDelay);
        let settings = RetrySettings {
            max_retry: cntl.max_retry.unwrap_or(self.options.max_retry),
            retry_policy: &*self.options.retry_policy,
            backup: backup_delay.zip(fixed_backup.as_ref().map(|p| p as _)),
        };
        cntl.sub_controllers.clear();
        cntl.retried_count = 0;
        let sub_calls = SubCalls {
            selective: self,
            method,
            request,
            timeout,
            deadline: deadline_after(timeout),
        };
        retry::run(&sub_calls, cntl, &settings).await
    }
}

/// A selective channel's sub-channels, as the retry loop tries them for one call. Each attempt
/// is a sub-call with its own controller.
struct SubCalls<'a> {
    selective: &'a Selective,
    method: &'a MethodDescriptor,
    request: &'a ErasedRequest<'a>,
    /// The call's timeout, given to each sub-call.
    timeout: Option<Duration>,
    deadline: Option<Instant>,
}

impl Candidates for SubCalls<'_> {
    type Key = ChannelHandle;
    type Candidate = Arc<SelectiveSub>;
    type Output = Reply;
    type Slot = Controller;

    fn pick(
        &self,
        _cntl: &Controller,
        tried: &[ChannelHandle],
    ) -> Result<Arc<SelectiveSub>, Status> {
        let subs = self.selective.subs.load_full();
        self.selective.pick(&subs, tried).ok_or_else(|| {
            Status::new(
                errno::EHOSTDOWN,
                "the SelectiveChannel has no sub-channels: add some before calling",
            )
        })
    }

    fn key(&self, sub: &Arc<SelectiveSub>) -> ChannelHandle {
        sub.handle
    }

    fn slot(&self, cntl: &Controller) -> Controller {
        // Sub-calls never get the backup delay: this channel sends the backups.
        sub_controller(cntl, self.timeout, None, None)
    }

    fn attempt<'a>(
        &'a self,
        sub: &'a Arc<SelectiveSub>,
        sub_cntl: &'a mut Controller,
    ) -> impl Future<Output = Result<Reply, Status>> + Send + 'a {
        let guard = SubCallGuard::new(sub_cntl, self.deadline);
        run_sub_call(&sub.channel, self.method, guard, self.request)
    }

    fn retry_anyway(&self, status: &Status) -> bool {
        // brpc's default: a sub-channel without servers never ends a call.
        status.code() == errno::EHOSTDOWN
    }

    fn record(&self, cntl: &mut Controller, round: Round<Self>) {
        // Pass over the sub-channels whose sub-call broke a connection.
        let mut raced: Vec<(Arc<SelectiveSub>, Controller)> = vec![round.first];
        raced.extend(round.backup);
        for (sub, sub_cntl) in &raced {
            let broke = sub_cntl
                .error
                .as_ref()
                .is_some_and(|status| crate::error::is_connection_failure(status.code()));
            if broke {
                let until =
                    clock_ms().saturating_add(self.selective.pass_over_for.as_millis() as u64);
                sub.passed_over_until.store(until, Ordering::Relaxed);
            }
        }
        // The sub-call whose outcome is the call's (the first one if the call was dropped).
        let (index, failed) = match round.outcome {
            Some((Answered::Backup, failed)) => (raced.len() - 1, failed),
            Some((Answered::First, failed)) => (0, failed),
            None => (0, true),
        };
        let (sub, sub_cntl) = raced.swap_remove(index);
        cntl.remote_side = sub_cntl.remote_side;
        cntl.local_side = sub_cntl.local_side;
        if !failed {
            cntl.response_attachment = sub_cntl.response_attachment.clone();
            cntl.response_compress_type = sub_cntl.response_compress_type;
            sub.passed_over_until.store(0, Ordering::Relaxed);
        }
        cntl.sub_controllers = vec![Some(sub_cntl)];
    }
}

impl Combo for Selective {
    fn call<'a>(
        &'a self,
        method: &'a MethodDescriptor,
        cntl: &'a mut Controller,
        request: &'a ErasedRequest<'a>,
    ) -> BoxFuture<'a, Result<Reply, Status>> {
        nested("SelectiveChannel", self.run(method, cntl, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detached_channel() -> Channel {
        // A channel that is never called: a parallel channel without sub-channels.
        super::super::ParallelChannel::builder()
            .build()
            .into_channel()
    }

    #[test]
    fn add_and_remove_keep_order_and_handles() {
        let selective = SelectiveChannel::builder()
            .add(detached_channel())
            .add(detached_channel())
            .build();
        let handles = selective.handles();
        assert_eq!(handles.len(), 2);
        let third = selective.add_channel(detached_channel());
        assert_eq!(selective.handles(), [handles[0], handles[1], third]);
        assert!(selective.remove_channel(handles[0]));
        assert!(!selective.remove_channel(handles[0]));
        assert_eq!(selective.handles(), [handles[1], third]);
        assert_eq!(selective.channel_count(), 2);
    }

    #[test]
    fn pick_goes_round_robin_and_prefers_channels_not_passed_over() {
        let selective = SelectiveChannel::builder()
            .add(detached_channel())
            .add(detached_channel())
            .add(detached_channel())
            .build();
        let inner = &selective.inner;
        let subs = inner.subs.load_full();
        let picks: Vec<ChannelHandle> = (0..6)
            .map(|_| inner.pick(&subs, &[]).unwrap().handle)
            .collect();
        assert_eq!(picks[..3], picks[3..]);
        let mut distinct = picks[..3].to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);

        // Tried ones are never picked again; passed-over ones only as a last resort.
        subs[1].passed_over_until.store(u64::MAX, Ordering::Relaxed);
        for _ in 0..3 {
            let pick = inner.pick(&subs, &[subs[0].handle]).unwrap();
            assert_eq!(pick.handle, subs[2].handle);
        }
        let last = inner
            .pick(&subs, &[subs[0].handle, subs[2].handle])
            .unwrap();
        assert_eq!(last.handle, subs[1].handle);
        assert!(inner
            .pick(&subs, &[subs[0].handle, subs[1].handle, subs[2].handle])
            .is_none());
    }
}
