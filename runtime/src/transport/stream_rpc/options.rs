//! [`StreamOptions`]: a stream's window, batching, segmenting and limits.

use crate::protocol::streaming_rpc::{DEFAULT_MAX_BUF_SIZE, DEFAULT_MAX_SEGMENT_SIZE};

/// A stream's options, as brpc's `StreamOptions`.
///
/// ```
/// use brisk::stream_rpc::StreamOptions;
/// let options = StreamOptions::default().max_buf_size(8 << 20).messages_in_batch(256);
/// assert_eq!(options.get_max_buf_size(), 8 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct StreamOptions {
    pub(crate) max_buf_size: u64,
    pub(crate) messages_in_batch: usize,
    pub(crate) max_segment_size: usize,
    pub(crate) max_message_size: usize,
    pub(crate) accept_messages: bool,
    pub(crate) idle_timeout: Option<std::time::Duration>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            max_buf_size: DEFAULT_MAX_BUF_SIZE,
            messages_in_batch: 128,
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
            max_message_size: crate::protocol::DEFAULT_MAX_BODY_SIZE,
            accept_messages: true,
            idle_timeout: None,
        }
    }
}

impl StreamOptions {
    /// The flow-control window (brpc's `max_buf_size`, 2 MiB by default): how many bytes this
    /// side may have sent that its peer has not yet consumed before [`Stream::send`](super::Stream::send) waits. A
    /// message is never split by the window, so it is exceeded by at most one message; 0 is
    /// no limit (and the peer is asked for no feedback).
    pub fn max_buf_size(mut self, bytes: u64) -> Self {
        self.max_buf_size = bytes;
        self
    }

    /// The window set by [`max_buf_size`](Self::max_buf_size).
    pub fn get_max_buf_size(&self) -> u64 {
        self.max_buf_size
    }

    /// How many received messages may be handed out before this side reports them consumed
    /// (brpc's `messages_in_batch`, 128 by default). It reports sooner whenever it has handed
    /// out all it has.
    pub fn messages_in_batch(mut self, messages: usize) -> Self {
        self.messages_in_batch = messages.max(1);
        self
    }

    /// The largest piece of a message one frame carries (brpc's
    /// `-stream_write_max_segment_size`, 512 MiB by default); larger messages go out in
    /// several frames and arrive whole.
    pub fn max_segment_size(mut self, bytes: usize) -> Self {
        self.max_segment_size = bytes.max(1);
        self
    }

    /// The largest message this side accepts (64 MiB by default, as `max_body_size`): a peer
    /// that sends a larger one fails the stream. brpc has no such bound.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How long the stream may receive nothing before its [`StreamHandler`] hears of it
    /// (brpc's `idle_timeout_ms`; none by default). Only handlers are told: a reader of the
    /// stream as a [`futures_core::Stream`] bounds its waits itself.
    ///
    /// [`StreamHandler`]: super::StreamHandler
    pub fn idle_timeout(mut self, idle: std::time::Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// Whether this side reads what its peer sends (true by default). A side that does not
    /// tells its peer so (brpc's `writable = false`, what a brpc stream without an input
    /// handler says): the peer's sends fail with EBADF, and anything that arrives anyway is
    /// dropped.
    pub fn accept_messages(mut self, accept: bool) -> Self {
        self.accept_messages = accept;
        self
    }
}
