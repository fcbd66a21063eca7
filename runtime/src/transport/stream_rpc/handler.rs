//! The callback style of reading a stream, as brpc's `StreamInputHandler`: messages in batches,
//! idleness reported, the end told once.

use bytes::Bytes;

use super::core::End;
use super::stream::{Stream, StreamWriter};
use crate::Status;

/// Callbacks for what a stream receives (brpc's `StreamInputHandler`), for users who prefer
/// them to reading the stream as a [`futures_core::Stream`]: hand the stream to
/// [`Stream::handle_with`].
///
/// ```no_run
/// use brisk::stream_rpc::{StreamHandler, StreamWriter};
/// use bytes::Bytes;
///
/// struct Printer;
///
/// impl StreamHandler for Printer {
///     fn on_received_messages(&self, stream: &StreamWriter, messages: &[Bytes]) {
///         for message in messages {
///             println!("stream {}: {:?}", stream.id(), message);
///         }
///     }
///     fn on_idle_timeout(&self, stream: &StreamWriter) {
///         println!("stream {} is quiet", stream.id());
///     }
/// }
/// ```
pub trait StreamHandler: Send + Sync + 'static {
    /// Messages that arrived, in order: as many as have arrived, up to the stream's
    /// `messages_in_batch`. They count as consumed (for the sender's window) once this
    /// returns.
    fn on_received_messages(&self, stream: &StreamWriter, messages: &[Bytes]);

    /// No message arrived for the stream's `idle_timeout`; called again after each further
    /// quiet `idle_timeout`.
    fn on_idle_timeout(&self, stream: &StreamWriter) {
        let _ = stream;
    }

    /// The stream ended: closed by either side (`error` is `None`), or failed (brpc calls
    /// `on_failed` with the error, then `on_closed`). Called once, last.
    fn on_closed(&self, stream: &StreamWriter, error: Option<&Status>) {
        let _ = (stream, error);
    }
}

impl Stream {
    /// Hands what the stream receives to `handler`, on a task of its own, until the stream
    /// ends (brpc's `StreamOptions.handler`); the returned handle sends and closes.
    pub fn handle_with(self, handler: impl StreamHandler) -> StreamWriter {
        let writer = self.writer();
        tokio::spawn(run(self, handler));
        writer
    }
}

/// Runs `handler` over `stream` until it ends.
pub(crate) async fn run(stream: Stream, handler: impl StreamHandler) {
    let core = &stream.core;
    let writer = stream.writer();
    let batch_size = core.options().messages_in_batch;
    let idle_timeout = core.options().idle_timeout;
    let mut batch = Vec::with_capacity(batch_size.min(256));
    loop {
        let next = std::future::poll_fn(|cx| core.poll_batch(cx, batch_size, &mut batch));
        let ended = match idle_timeout {
            Some(idle) => match tokio::time::timeout(idle, next).await {
                Ok(ended) => ended,
                Err(_) => {
                    handler.on_idle_timeout(&writer);
                    continue;
                }
            },
            None => next.await,
        };
        match ended {
            None => {
                handler.on_received_messages(&writer, &batch);
                // Consumed once the handler has them, as brpc counts.
                core.consumed(batch.iter().map(|m| m.len() as u64).sum());
                batch.clear();
            }
            Some(End::Failed(status)) => {
                handler.on_closed(&writer, Some(&status));
                return;
            }
            Some(End::Closed | End::ClosedByPeer) => {
                handler.on_closed(&writer, None);
                return;
            }
        }
    }
}
