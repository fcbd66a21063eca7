//! [`Controller`]: per-call options in, per-call results out; and [`CallId`], a handle another
//! task or thread uses to join or cancel the call.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::response_metadata::ResponseMetadata;
use crate::{CompressType, Status};

/// Per-call options and results, as brpc's `brpc::Controller` on the client side.
///
/// Set options before the call (timeout, retries, log id, attachment, compression); read results
/// after it (error, remote side, latency, retries, response attachment). A controller can be
/// reused after [`reset`](Controller::reset).
///
/// ```no_run
/// # async fn demo(client: &impl Fn()) {}
/// use std::time::Duration;
/// let mut cntl = brisk::Controller::new();
/// cntl.set_timeout(Duration::from_millis(50));
/// cntl.set_log_id(42);
/// cntl.set_request_attachment("raw bytes beside the message");
/// // let resp = client.echo_with(&mut cntl, req).await?;
/// // println!("{:?} answered in {:?}", cntl.remote_side(), cntl.latency());
/// ```
pub struct Controller {
    pub(crate) timeout: TimeoutSetting,
    pub(crate) max_retry: Option<u32>,
    pub(crate) log_id: Option<i64>,
    pub(crate) request_attachment: Bytes,
    pub(crate) request_compress_type: CompressType,
    pub(crate) response_attachment: Bytes,
    pub(crate) response_compress_type: CompressType,
    pub(crate) error: Option<Status>,
    pub(crate) remote_side: Option<SocketAddr>,
    pub(crate) local_side: Option<SocketAddr>,
    pub(crate) latency: Duration,
    pub(crate) retried_count: u32,
    /// The errors of the attempts that were retried, in order (brpc's `[R<n>]` history).
    pub(crate) retried_errors: Vec<Status>,
    pub(crate) request_code: Option<u64>,
    pub(crate) backup_request: Option<Duration>,
    /// When the call in progress must end (set by the call path from the timeout).
    pub(crate) deadline: Option<std::time::Instant>,
    /// The controllers of a combo channel's sub-calls ([`crate::combo`]); `None` for a
    /// sub-channel the call did not use.
    pub(crate) sub_controllers: Vec<Option<Controller>>,
    /// Metadata sent with the request: HTTP/gRPC headers, baidu_std `user_fields`.
    pub(crate) request_headers: Vec<(String, String)>,
    /// Metadata the server answered with (HTTP headers, gRPC headers and trailers).
    pub(crate) response_headers: ResponseMetadata,
    /// The brpc stream the next call offers its server, attached by
    /// `Stream::create` (the transport's type; the controller only carries it).
    pub(crate) offered_stream: Option<Arc<dyn std::any::Any + Send + Sync>>,
    call: Option<Arc<CallState>>,
}

/// A call's own timeout: the channel's, one of its own, or none at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TimeoutSetting {
    /// The channel's timeout applies.
    #[default]
    Channel,
    /// This timeout applies.
    Set(Duration),
    /// No deadline.
    Cleared,
}

impl TimeoutSetting {
    /// The timeout that applies, given the channel's.
    pub(crate) fn or(self, channel: Option<Duration>) -> Option<Duration> {
        match self {
            TimeoutSetting::Channel => channel,
            TimeoutSetting::Set(timeout) => Some(timeout),
            TimeoutSetting::Cleared => None,
        }
    }

    /// The timeout the caller set on this call, ignoring the channel's (what bounds a
    /// stream's life).
    pub(crate) fn own(self) -> Option<Duration> {
        match self {
            TimeoutSetting::Set(timeout) => Some(timeout),
            TimeoutSetting::Channel | TimeoutSetting::Cleared => None,
        }
    }
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            timeout: TimeoutSetting::Channel,
            max_retry: None,
            log_id: None,
            request_attachment: Bytes::new(),
            request_compress_type: CompressType::None,
            response_attachment: Bytes::new(),
            response_compress_type: CompressType::None,
            error: None,
            remote_side: None,
            local_side: None,
            latency: Duration::ZERO,
            retried_count: 0,
            retried_errors: Vec::new(),
            request_code: None,
            backup_request: None,
            deadline: None,
            sub_controllers: Vec::new(),
            request_headers: Vec::new(),
            response_headers: ResponseMetadata::default(),
            offered_stream: None,
            call: None,
        }
    }
}

impl Controller {
    /// Sets the key consistent-hashing balancers (`c_murmurhash`, `c_md5`) route by: calls
    /// with the same code go to the same server while the cluster does not change.
    pub fn set_request_code(&mut self, code: u64) {
        self.request_code = Some(code);
    }

    /// The request code, if set.
    pub fn request_code(&self) -> Option<u64> {
        self.request_code
    }

    /// Sends the same request to another server when no answer came within `delay`, and takes
    /// whichever answer comes first (overrides the channel's `backup_request`).
    pub fn set_backup_request(&mut self, delay: Duration) {
        self.backup_request = Some(delay);
    }

    /// The backup-request delay set on this controller, if any.
    pub fn backup_request(&self) -> Option<Duration> {
        self.backup_request
    }

    /// A controller with the channel's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides the channel's timeout for this call. The deadline covers every retry; on a
    /// streaming call it covers the whole stream (which the channel's timeout does not).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = TimeoutSetting::Set(timeout);
    }

    /// Gives this call no deadline at all, whatever the channel's timeout (brpc's
    /// `set_timeout_ms(-1)`).
    pub fn clear_timeout(&mut self) {
        self.timeout = TimeoutSetting::Cleared;
    }

    /// This call's timeout, if [`set`](Controller::set_timeout); `None` when it follows the
    /// channel's or was [cleared](Controller::clear_timeout).
    pub fn timeout(&self) -> Option<Duration> {
        match self.timeout {
            TimeoutSetting::Set(timeout) => Some(timeout),
            TimeoutSetting::Channel | TimeoutSetting::Cleared => None,
        }
    }

    /// Whether this call was given no deadline with [`clear_timeout`](Controller::clear_timeout).
    pub fn is_timeout_cleared(&self) -> bool {
        self.timeout == TimeoutSetting::Cleared
    }

    /// Overrides the channel's maximum number of retries for this call.
    pub fn set_max_retry(&mut self, max_retry: u32) {
        self.max_retry = Some(max_retry);
    }

    /// This call's retry limit, if overridden.
    pub fn max_retry(&self) -> Option<u32> {
        self.max_retry
    }

    /// Sets the log id carried to the server (`RpcRequestMeta.log_id`). Without one, none is
    /// sent, as brpc's clients send the field only when it is set.
    pub fn set_log_id(&mut self, log_id: i64) {
        self.log_id = Some(log_id);
    }

    /// The log id sent with the call (0 when none was set).
    pub fn log_id(&self) -> i64 {
        self.log_id.unwrap_or(0)
    }

    /// Whether a log id was set ([`set_log_id`](Controller::set_log_id)).
    pub fn has_log_id(&self) -> bool {
        self.log_id.is_some()
    }

    /// Sets raw bytes sent after the request message, never compressed.
    pub fn set_request_attachment(&mut self, attachment: impl Into<Bytes>) {
        self.request_attachment = attachment.into();
    }

    /// The request attachment.
    pub fn request_attachment(&self) -> &Bytes {
        &self.request_attachment
    }

    /// The attachment the server sent back.
    pub fn response_attachment(&self) -> &Bytes {
        &self.response_attachment
    }

    /// Takes the response attachment out of the controller.
    pub fn take_response_attachment(&mut self) -> Bytes {
        std::mem::take(&mut self.response_attachment)
    }

    /// Compresses the request message (not the attachment) with `compress_type`.
    pub fn set_request_compress_type(&mut self, compress_type: CompressType) {
        self.request_compress_type = compress_type;
    }

    /// How the request message is compressed.
    pub fn request_compress_type(&self) -> CompressType {
        self.request_compress_type
    }

    /// How the server compressed the response message.
    pub fn response_compress_type(&self) -> CompressType {
        self.response_compress_type
    }

    /// Whether the last call failed.
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The last call's error code, 0 when it succeeded.
    pub fn error_code(&self) -> i32 {
        self.error.as_ref().map_or(0, Status::code)
    }

    /// The last call's error text as brpc's `Controller::ErrorText()` writes it, empty when
    /// it succeeded: `[E<code>]text` for the first attempt, then ` [R<n>][E<code>]text` for
    /// each retry, so a call that failed three times says why each time (the call's
    /// [`error`](Controller::error) is the last failure alone).
    ///
    /// ```
    /// let cntl = brisk::Controller::new();
    /// assert_eq!(cntl.error_text(), "");
    /// ```
    pub fn error_text(&self) -> String {
        let Some(last) = &self.error else {
            return String::new();
        };
        let mut text = String::new();
        for (retry, status) in self.retried_errors.iter().chain([last]).enumerate() {
            if retry > 0 {
                text.push_str(&format!(" [R{retry}]"));
            }
            text.push_str(&format!("[E{}]{}", status.code(), status.message()));
        }
        text
    }

    /// The last call's error, if any.
    pub fn error(&self) -> Option<&Status> {
        self.error.as_ref()
    }

    /// The server that answered (or was last tried).
    pub fn remote_side(&self) -> Option<SocketAddr> {
        self.remote_side
    }

    /// The local address of the connection used.
    pub fn local_side(&self) -> Option<SocketAddr> {
        self.local_side
    }

    /// Time from the start of the call to its end, retries included.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// How many times the call was retried.
    pub fn retried_count(&self) -> u32 {
        self.retried_count
    }

    /// The controller of sub-call `index` of the last call through a combo channel
    /// ([`crate::combo`]): its error, remote side, latency and retries.
    ///
    /// A [`ParallelChannel`](crate::combo::ParallelChannel) or
    /// [`PartitionChannel`](crate::combo::PartitionChannel) has one per sub-channel, in the
    /// order they were added; `None` for a sub-channel the call mapper skipped (or that the
    /// call never reached). A [`SelectiveChannel`](crate::combo::SelectiveChannel) has one: the
    /// sub-call that answered, or the last one tried. Every call starts with none.
    ///
    /// ```no_run
    /// # fn demo(cntl: &brisk::Controller) {
    /// for i in 0..cntl.sub_count() {
    ///     match cntl.sub(i) {
    ///         Some(sub) if sub.failed() => println!("#{i} failed: {}", sub.error_text()),
    ///         Some(sub) => println!("#{i} answered from {:?} in {:?}", sub.remote_side(), sub.latency()),
    ///         None => println!("#{i} skipped"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn sub(&self, index: usize) -> Option<&Controller> {
        self.sub_controllers.get(index).and_then(Option::as_ref)
    }

    /// How many sub-calls [`sub`](Controller::sub) can report on: the number of sub-channels
    /// of the combo channel last called through (1 for a selective channel), 0 if none was.
    pub fn sub_count(&self) -> usize {
        self.sub_controllers.len()
    }

    /// A handle to the next (or current) call made with this controller, which another task or
    /// thread can [`join`](CallId::join) or [`cancel`](CallId::cancel). Take it before the call.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let mut cntl = brisk::Controller::new();
    /// let id = cntl.call_id();
    /// std::thread::spawn(move || id.cancel());
    /// // client.echo_with(&mut cntl, req).await fails with ECANCELED.
    /// # }
    /// ```
    pub fn call_id(&mut self) -> CallId {
        let state = match &self.call {
            Some(state) if !state.is_finished() => Arc::clone(state),
            _ => {
                let state = Arc::new(CallState::default());
                self.call = Some(Arc::clone(&state));
                state
            }
        };
        CallId { state }
    }

    /// Adds a metadata entry to the request: an HTTP header on `http`, custom metadata on
    /// `h2:grpc` (lowercase names; `-bin` names carry base64), a `user_fields` entry on
    /// baidu_std.
    ///
    /// ```
    /// let mut cntl = brisk::Controller::new();
    /// cntl.set_request_header("x-request-id", "42");
    /// assert_eq!(cntl.request_headers().next(), Some(("x-request-id", "42")));
    /// ```
    pub fn set_request_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.request_headers.push((name.into(), value.into()));
    }

    /// The request's metadata, in the order set.
    pub fn request_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.request_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first value of response metadata `name` (HTTP header, gRPC header or trailer),
    /// compared without regard to case.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers.get(name)
    }

    /// All response metadata, in the order received.
    pub fn response_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.response_headers.iter()
    }

    /// Clears results and options, for reuse in another call.
    pub fn reset(&mut self) {
        *self = Controller::default();
    }

    /// Prepares for a call: clears the previous results and returns the call's state when a
    /// [`CallId`] was handed out for it.
    pub(crate) fn begin_call(&mut self) -> Option<Arc<CallState>> {
        self.sub_controllers.clear();
        self.error = None;
        self.remote_side = None;
        self.local_side = None;
        self.latency = Duration::ZERO;
        self.retried_count = 0;
        self.retried_errors.clear();
        self.response_attachment = Bytes::new();
        self.response_compress_type = CompressType::None;
        self.response_headers = ResponseMetadata::default();
        if self.call.as_ref().is_some_and(|s| s.is_finished()) {
            self.call = None;
        }
        self.call.clone()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(state) = &self.call {
            state.finish();
        }
    }
}

impl fmt::Debug for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("timeout", &self.timeout)
            .field("max_retry", &self.max_retry)
            .field("log_id", &self.log_id)
            .field("request_attachment_len", &self.request_attachment.len())
            .field("response_attachment_len", &self.response_attachment.len())
            .field("error", &self.error)
            .field("remote_side", &self.remote_side)
            .field("latency", &self.latency)
            .field("retried_count", &self.retried_count)
            .finish()
    }
}

/// Shared between a call in flight and its [`CallId`]s.
#[derive(Default)]
pub(crate) struct CallState {
    cancelled: AtomicBool,
    cancel_notify: Notify,
    finished: AtomicBool,
    done_notify: Notify,
    done_lock: Mutex<bool>,
    done_cv: Condvar,
}

impl CallState {
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Resolves once the call has been cancelled.
    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.cancel_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.cancelled.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Marks the call finished and wakes every joiner.
    pub(crate) fn finish(&self) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        *self.done_lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.done_cv.notify_all();
        self.done_notify.notify_waiters();
    }
}

/// Marks a call finished when the call ends, however it ends (including its future being
/// dropped).
pub(crate) struct FinishOnDrop(pub(crate) Option<Arc<CallState>>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(state) = &self.0 {
            state.finish();
        }
    }
}

/// A handle to one call: join it (wait for it to end) or cancel it, from any task or thread.
///
/// Obtained from [`Controller::call_id`]. Cloning is cheap. A cancelled call ends at once with
/// [`errno::ECANCELED`](crate::errno::ECANCELED); cancelling a finished call does nothing.
#[derive(Clone)]
pub struct CallId {
    state: Arc<CallState>,
}

impl CallId {
    /// Cancels the call.
    pub fn cancel(&self) {
        if !self.state.is_finished() {
            self.state.cancelled.store(true, Ordering::Release);
            self.state.cancel_notify.notify_waiters();
        }
    }

    /// Whether the call has ended.
    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }

    /// Waits until the call ends.
    pub async fn join(&self) {
        loop {
            let notified = self.state.done_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.is_finished() {
                return;
            }
            notified.await;
        }
    }

    /// Blocks the current thread until the call ends. Don't call it inside an async runtime;
    /// use [`join`](CallId::join) there.
    pub fn join_blocking(&self) {
        let mut done = self
            .state
            .done_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = self
                .state
                .done_cv
                .wait(done)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallId")
            .field("finished", &self.is_finished())
            .field("cancelled", &self.state.cancelled.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_blocking_returns_after_finish_from_another_thread() {
        let mut cntl = Controller::new();
        let id = cntl.call_id();
        let state = cntl.begin_call().expect("state handed out");
        let joiner = std::thread::spawn(move || id.join_blocking());
        state.finish();
        joiner.join().unwrap();
    }

    #[test]
    fn dropping_an_unused_controller_releases_joiners() {
        let mut cntl = Controller::new();
        let id = cntl.call_id();
        drop(cntl);
        assert!(id.is_finished());
        id.join_blocking();
    }

    #[tokio::test]
    async fn cancel_before_wait_is_seen() {
        let mut cntl = Controller::new();
        let id = cntl.call_id();
        let state = cntl.begin_call().unwrap();
        id.cancel();
        state.cancelled().await;
    }

    #[test]
    fn a_finished_call_state_is_not_reused() {
        let mut cntl = Controller::new();
        let first = cntl.call_id();
        cntl.begin_call().unwrap().finish();
        assert!(first.is_finished());
        let second = cntl.call_id();
        assert!(!second.is_finished());
    }
}
