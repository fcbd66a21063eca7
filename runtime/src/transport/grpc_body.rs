//! gRPC messages in HTTP/2 bodies, for both ends: the messages of a body as they arrive
//! ([`BodyMessages`], decompressed, with the trailers kept), and a message as DATA chunks.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::header::HeaderMap;
use hyper::body::Body;

use crate::compress::CompressType;
use crate::protocol::grpc::{self, encode_message, message_prefix, MessageDecoder};
use crate::{errno, Status};

/// Payloads up to this size are copied behind their prefix into one DATA chunk; larger ones
/// go out as they are, after a 5-byte chunk.
const COPY_LIMIT: usize = 16 * 1024;

/// One message as DATA chunks: prefix and payload together when small, apart (without
/// copying the payload) when large.
pub(crate) fn message_chunks(compressed: bool, payload: Bytes) -> Result<MessageChunks, Status> {
    if payload.len() <= COPY_LIMIT {
        return Ok(MessageChunks {
            first: message_bytes(compressed, &payload)?,
            rest: None,
        });
    }
    let prefix = message_prefix(compressed, payload.len())
        .map_err(|e| Status::new(errno::EREQUEST, e.to_string()))?;
    Ok(MessageChunks {
        first: Bytes::copy_from_slice(&prefix),
        rest: Some(payload),
    })
}

/// One message's DATA chunks, from [`message_chunks`]: one, or the prefix and then the
/// payload. (Not a `Vec`: every unary call makes one, and it need not allocate.)
#[derive(Debug, PartialEq)]
pub(crate) struct MessageChunks {
    first: Bytes,
    rest: Option<Bytes>,
}

impl IntoIterator for MessageChunks {
    type Item = Bytes;
    type IntoIter = std::iter::Chain<std::iter::Once<Bytes>, std::option::IntoIter<Bytes>>;

    fn into_iter(self) -> Self::IntoIter {
        std::iter::once(self.first).chain(self.rest)
    }
}

/// How many bytes of messages that are ready at once go out in one DATA chunk. A stream of
/// small messages sent one DATA frame each costs a frame header per message, and h2-based
/// peers (tonic's servers, Brisk's) take a flood of small DATA frames they have not read yet
/// for an attack and end the connection (`ENHANCE_YOUR_CALM`, "too_many_data_frames").
pub(crate) const COALESCE_LIMIT: usize = 32 * 1024;

/// Appends one message, prefix and payload, compressed with `encoding` unless it is `None`
/// (`what` names the message in a compression error: "request", "response").
pub(crate) fn append_message(
    encoding: CompressType,
    payload: &[u8],
    buf: &mut BytesMut,
    what: &str,
    code: i32,
) -> Result<(), Status> {
    let framed = if encoding == CompressType::None {
        encode_message(false, payload, buf)
    } else {
        let packed = crate::compress::compress_to_bytes(encoding, payload)
            .map_err(|e| Status::new(code, format!("Fail to compress {what}: {e}")))?;
        encode_message(true, &packed, buf)
    };
    framed.map_err(|e| Status::new(code, e.to_string()))
}

/// One message, prefix and payload, in one buffer.
pub(crate) fn message_bytes(compressed: bool, payload: &[u8]) -> Result<Bytes, Status> {
    let mut buf = BytesMut::new();
    encode_message(compressed, payload, &mut buf)
        .map_err(|e| Status::new(errno::EREQUEST, e.to_string()))?;
    Ok(buf.freeze())
}

/// Which end reads a body: it decides the codes of errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    /// A server reading requests.
    Server,
    /// A client reading responses.
    Client,
}

impl Reader {
    fn bad_input(self) -> i32 {
        match self {
            Reader::Server => errno::EREQUEST,
            Reader::Client => errno::ERESPONSE,
        }
    }

    /// A message over the limit: RESOURCE_EXHAUSTED on a server.
    fn too_large(self) -> i32 {
        match self {
            Reader::Server => errno::ELIMIT,
            Reader::Client => errno::ERESPONSE,
        }
    }

    fn broken(self) -> i32 {
        match self {
            Reader::Server => errno::EREQUEST,
            Reader::Client => errno::EFAILEDSOCKET,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Reader::Server => "request",
            Reader::Client => "response",
        }
    }
}

/// The gRPC messages of an HTTP/2 body, decompressed, as they arrive; keeps the trailers.
/// A framing error, a message over the limit or a broken body ends it with an error.
pub(crate) struct BodyMessages<B> {
    body: B,
    decoder: MessageDecoder,
    encoding: CompressType,
    limit: usize,
    reader: Reader,
    trailers: Option<HeaderMap>,
    done: bool,
}

impl<B> fmt::Debug for BodyMessages<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyMessages")
            .field("encoding", &self.encoding)
            .field("limit", &self.limit)
            .field("reader", &self.reader)
            .field("done", &self.done)
            .finish()
    }
}

impl<B> BodyMessages<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Display,
{
    /// Reads `body`, whose compressed messages use `encoding`, accepting messages of at most
    /// `limit` bytes (before and after decompression).
    pub(crate) fn new(body: B, encoding: CompressType, limit: usize, reader: Reader) -> Self {
        BodyMessages {
            body,
            decoder: MessageDecoder::new(limit),
            encoding,
            limit,
            reader,
            trailers: None,
            done: false,
        }
    }

    /// The trailers, once the body has ended with some.
    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    /// The next message; `None` at the end of the body.
    pub(crate) async fn next_message(&mut self) -> Option<Result<Bytes, Status>> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    /// Polls for the next message.
    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Status>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match self.decoder.decode() {
                Ok(Some(message)) => {
                    let opened = self.open(message);
                    self.done = opened.is_err();
                    return Poll::Ready(Some(opened));
                }
                Ok(None) => {}
                Err(e) => return self.fail(framing_code(&e, self.reader), e.to_string()),
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.decoder.push(&data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.trailers = Some(trailers);
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    let what = self.reader.what();
                    return self.fail(
                        self.reader.broken(),
                        format!("Fail to read the {what}: {e}"),
                    );
                }
                Poll::Ready(None) => {
                    self.done = true;
                    return match self.decoder.finish() {
                        Ok(()) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(Status::new(
                            self.reader.bad_input(),
                            format!("bad gRPC {}: {e}", self.reader.what()),
                        )))),
                    };
                }
            }
        }
    }

    fn fail(&mut self, code: i32, message: String) -> Poll<Option<Result<Bytes, Status>>> {
        self.done = true;
        Poll::Ready(Some(Err(Status::new(code, message))))
    }

    /// Decompresses a message whose flag says so.
    fn open(&self, message: grpc::Message) -> Result<Bytes, Status> {
        if !message.compressed {
            return Ok(message.data);
        }
        let what = self.reader.what();
        if self.encoding == CompressType::None {
            return Err(Status::new(
                self.reader.bad_input(),
                format!("a compressed {what} message without grpc-encoding"),
            ));
        }
        grpc::decompress_message(self.encoding, message.data, self.limit).map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::FileTooLarge {
                self.reader.too_large()
            } else {
                self.reader.bad_input()
            };
            Status::new(code, format!("Fail to decompress the {what} message: {e}"))
        })
    }
}

impl<B> Stream for BodyMessages<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Display,
{
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}

fn framing_code(error: &grpc::FramingError, reader: Reader) -> i32 {
    match error {
        grpc::FramingError::TooLarge { .. } => reader.too_large(),
        _ => reader.bad_input(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_messages_are_not_copied() {
        let small: Vec<Bytes> = message_chunks(false, Bytes::from_static(b"abc"))
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(small, vec![Bytes::from_static(b"\0\0\0\0\x03abc")]);
        let big = Bytes::from(vec![1u8; COPY_LIMIT + 1]);
        let chunks: Vec<Bytes> = message_chunks(true, big.clone())
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0][0], 1);
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
    }
}
