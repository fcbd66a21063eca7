//! [`Stream`], one side of a brpc stream, and [`StreamWriter`], a handle that only sends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::core::{End, Sent, StreamCore};
use super::options::StreamOptions;
use crate::{Controller, Status};

/// One side of a brpc stream: send with [`send`](Stream::send), receive as a
/// [`Stream`](futures_core::Stream) of messages. Dropping it closes the stream.
///
/// Messages are raw bytes; [`Stream::send_message`] and [`Stream::recv_message`] encode and
/// decode protobuf messages.
#[derive(Debug)]
pub struct Stream {
    pub(super) core: Arc<StreamCore>,
    /// The error the stream ended with, once handed out.
    reported: bool,
}

impl Stream {
    /// A stream the next call made with `cntl` offers its server (brpc's `StreamCreate`).
    /// Once the call returns successfully, the stream is set up if the server's handler
    /// accepted it; otherwise it has failed and says why. Only baidu_std carries streams, on
    /// `single` or `pooled` connections.
    pub fn create(cntl: &mut Controller, options: StreamOptions) -> Stream {
        let core = StreamCore::new(options);
        cntl.offered_stream = Some(Arc::clone(&core) as Arc<dyn std::any::Any + Send + Sync>);
        Stream::from_core(core)
    }

    pub(crate) fn from_core(core: Arc<StreamCore>) -> Stream {
        Stream {
            core,
            reported: false,
        }
    }

    /// The stream's id, as its peer addresses it.
    pub fn id(&self) -> i64 {
        self.core.id()
    }

    /// Sends one message, waiting while the peer has not consumed a window's worth of what
    /// was sent before (or, on the client, until the call has set the stream up). Fails once
    /// the stream has ended.
    pub async fn send(&self, message: Bytes) -> Result<(), Status> {
        self.core.send(message).await
    }

    /// Sends one message if the window allows it now; EAGAIN if it does not (brpc's
    /// `StreamWrite`).
    pub fn try_send(&self, message: Bytes) -> Result<(), Status> {
        match self.core.try_send(&message)? {
            Sent::Queued => Ok(()),
            Sent::Wait => Err(Status::new(
                crate::errno::EAGAIN,
                format!(
                    "stream {} cannot take more now: its window is full",
                    self.id()
                ),
            )),
        }
    }

    /// Encodes and sends a protobuf message.
    pub async fn send_message<M: prost::Message>(&self, message: &M) -> Result<(), Status> {
        self.send(Bytes::from(message.encode_to_vec())).await
    }

    /// The next message; `None` once the stream has ended (after the error it ended with,
    /// if it failed).
    pub async fn recv(&mut self) -> Option<Result<Bytes, Status>> {
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut *self), cx)).await
    }

    /// The next message, decoded as `M`; ERESPONSE if it does not decode.
    pub async fn recv_message<M: prost::Message + Default>(&mut self) -> Option<Result<M, Status>> {
        let message = self.recv().await?;
        Some(message.and_then(|bytes| {
            M::decode(bytes).map_err(|e| {
                Status::new(
                    crate::errno::ERESPONSE,
                    format!("stream {}: a message did not decode: {e}", self.id()),
                )
            })
        }))
    }

    /// A handle that only sends, for another task.
    pub fn writer(&self) -> StreamWriter {
        StreamWriter {
            core: Arc::clone(&self.core),
        }
    }

    /// Closes the stream (brpc's `StreamClose`): the peer is told, and its messages after
    /// that are dropped.
    pub fn close(&self) {
        self.core.close();
    }

    /// Closes the stream and waits until its peer has had everything sent before: until the
    /// peer answers with its own CLOSE (brpc's streams and Brisk's do), resets the stream, or
    /// the connection ends. What a program about to exit calls, so that its last messages
    /// are not lost with its connection (bound the wait with a timeout for peers that might
    /// not answer).
    pub async fn close_and_wait(&self) {
        self.core.close_and_wait().await;
    }

    /// Whether the stream has ended (closed by either side, or failed).
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Bytes sent that the peer has not yet reported consumed.
    pub fn unconsumed(&self) -> u64 {
        self.core.unconsumed()
    }
}

impl futures_core::Stream for Stream {
    type Item = Result<Bytes, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.core.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(message))) => Poll::Ready(Some(Ok(message))),
            Poll::Ready(Some(Err(End::Failed(status)))) if !self.reported => {
                self.reported = true;
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(_) => Poll::Ready(None),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.core.close();
    }
}

/// A send-only handle of a [`Stream`], for another task; it does not keep the stream open.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    core: Arc<StreamCore>,
}

impl StreamWriter {
    /// As [`Stream::send`].
    pub async fn send(&self, message: Bytes) -> Result<(), Status> {
        self.core.send(message).await
    }

    /// Whether the stream has ended.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// The stream's id.
    pub fn id(&self) -> i64 {
        self.core.id()
    }

    /// Closes the stream, as [`Stream::close`].
    pub fn close(&self) {
        self.core.close();
    }
}
