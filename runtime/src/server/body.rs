//! HTTP bodies as the server sees them: a request's, from hyper (HTTP/1.1) or straight from
//! `h2` (HTTP/2, where Brisk drives the connection itself); and every response's.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_LENGTH};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::transport::h2_body::H2Body;
use crate::Status;

/// The body of every response the server sends over HTTP (whole, or streamed for gRPC).
pub(crate) type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Status>;

/// An empty response body.
pub(crate) fn empty_body() -> ResponseBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A whole response body.
pub(crate) fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A request's `Content-Length`, when it has a valid one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Why a request body could not be read (the connection broke, the stream was reset).
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request body, whichever connection it came on.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// HTTP/1.1, through hyper.
    Http1(Incoming),
    /// HTTP/2, through `h2`.
    Http2(H2Body),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            RequestBody::Http1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            RequestBody::Http2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Http1(body) => body.is_end_stream(),
            RequestBody::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Http1(body) => body.size_hint(),
            RequestBody::Http2(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_length(&headers), None);
        headers.insert(CONTENT_LENGTH, " 42".parse().unwrap());
        assert_eq!(content_length(&headers), Some(42));
        headers.insert(CONTENT_LENGTH, "lots".parse().unwrap());
        assert_eq!(content_length(&headers), None);
    }
}
