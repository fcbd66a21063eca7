//! The body of a request the server reads: from hyper (HTTP/1.1) or straight from `h2`
//! (HTTP/2, where Brisk drives the connection itself).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::transport::h2_body::H2Body;

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
