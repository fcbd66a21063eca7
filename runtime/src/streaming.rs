//! Streams of messages: what streaming methods (gRPC's server-, client- and bidirectional
//! streaming) receive and return.
//!
//! A handler or a client reads a [`Streaming<T>`]: typed messages decoded as they arrive, each
//! a `Result` because the peer or the connection can fail mid-stream. A handler or a client
//! sends a [`ResponseStream<T>`] (any boxed `futures::Stream` of `Result<T, Status>`).
//!
//! ```
//! use brisk::{ResponseStream, Status};
//! use futures_util::stream;
//! // A handler's reply: three messages, then the end of the stream.
//! let replies: ResponseStream<u32> = Box::pin(stream::iter([Ok(1), Ok(2), Ok(3)]));
//! # let _ = replies;
//! ```

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use crate::codec::MessageCodec;
use crate::{errno, Status};

/// Encoded messages flowing one way: what the runtime moves between a protocol and a handler.
pub type BytesStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send + 'static>>;

/// A stream of typed messages a handler or a client sends; the stream ends the call (a
/// `Err` item ends it with that status).
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The kind of a method, as `.proto` declares it with `stream` on its request, response or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// One request, one response.
    #[default]
    Unary,
    /// One request, a stream of responses.
    ServerStreaming,
    /// A stream of requests, one response.
    ClientStreaming,
    /// Streams both ways.
    BidiStreaming,
}

impl MethodKind {
    /// Whether the method streams in either direction.
    pub fn is_streaming(self) -> bool {
        self != MethodKind::Unary
    }
}

/// Typed messages received one by one from the peer: requests on the server side of a client-
/// or bidirectional-streaming method, responses on the client side of a server- or
/// bidirectional-streaming call. Each item decodes as it arrives; a message that does not
/// decode ends the stream with EREQUEST (on a server) or ERESPONSE (on a client).
pub struct Streaming<T> {
    inner: BytesStream,
    decode: fn(Bytes) -> Result<T, String>,
    undecodable_code: i32,
    done: bool,
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("message_type", &std::any::type_name::<T>())
            .field("done", &self.done)
            .finish()
    }
}

impl<T> Streaming<T> {
    /// Requests for a handler, decoded with codec `C`; undecodable ones fail with EREQUEST.
    pub fn requests<C: MessageCodec<T>>(inner: BytesStream) -> Self {
        Streaming {
            inner,
            decode: C::decode,
            undecodable_code: errno::EREQUEST,
            done: false,
        }
    }

    /// Responses for a client, decoded with codec `C`; undecodable ones fail with ERESPONSE.
    pub fn responses<C: MessageCodec<T>>(inner: BytesStream) -> Self {
        Streaming {
            inner,
            decode: C::decode,
            undecodable_code: errno::ERESPONSE,
            done: false,
        }
    }

    /// The next message: `Ok(None)` once the peer has ended the stream cleanly.
    ///
    /// ```no_run
    /// # async fn demo(mut replies: brisk::Streaming<String>) -> Result<(), brisk::Status> {
    /// while let Some(reply) = replies.message().await? {
    ///     println!("{reply}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }
}

impl<T> Unpin for Streaming<T> {}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => None,
            Poll::Ready(Some(Ok(bytes))) => Some((self.decode)(bytes).map_err(|e| {
                Status::new(
                    self.undecodable_code,
                    format!("Fail to parse streamed message: {e}"),
                )
            })),
            Poll::Ready(Some(Err(status))) => Some(Err(status)),
        };
        // An error ends the stream: nothing reliable can follow it.
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        Poll::Ready(item)
    }
}

/// Encodes a typed stream with codec `C` (what generated adapters do with a handler's reply).
pub fn encode_stream<C, T>(stream: ResponseStream<T>) -> BytesStream
where
    C: MessageCodec<T>,
    T: Send + 'static,
{
    Box::pin(EncodeStream::<C, T> {
        inner: stream,
        codec: std::marker::PhantomData,
    })
}

struct EncodeStream<C, T> {
    inner: ResponseStream<T>,
    codec: std::marker::PhantomData<fn() -> C>,
}

impl<C: MessageCodec<T>, T> Stream for EncodeStream<C, T> {
    type Item = Result<Bytes, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx).map(|item| {
            item.map(|message| {
                message.and_then(|m| {
                    C::encode_to_bytes(&m).map_err(|e| {
                        Status::internal(format!("Fail to serialize streamed message: {e}"))
                    })
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Prost;
    use futures_util::{stream, StreamExt};

    #[tokio::test]
    async fn decodes_in_order_and_stops_after_an_error() {
        let encoded: Vec<Result<Bytes, Status>> = vec![
            Ok(Bytes::from_static(b"\x0a\x01a")),
            Ok(Bytes::from_static(b"\xff")),
            Ok(Bytes::from_static(b"\x0a\x01b")),
        ];
        let mut s = Streaming::<String>::requests::<Prost>(Box::pin(stream::iter(encoded)));
        // A prost String is a `string` wrapper message with field 1.
        let first = s.next().await.unwrap();
        assert!(first.is_ok(), "{first:?}");
        let second = s.next().await.unwrap().unwrap_err();
        assert_eq!(second.code(), errno::EREQUEST);
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn encode_stream_round_trips() {
        let typed: ResponseStream<String> = Box::pin(stream::iter(vec![
            Ok("x".to_owned()),
            Err(Status::internal("boom")),
        ]));
        let bytes = encode_stream::<Prost, String>(typed);
        let mut back = Streaming::<String>::responses::<Prost>(bytes);
        assert_eq!(back.message().await.unwrap().as_deref(), Some("x"));
        assert_eq!(back.message().await.unwrap_err().message(), "boom");
        assert_eq!(back.message().await.unwrap(), None);
    }
}
