//! HTTP/1.1 and HTTP/2 connections (hyper): pb methods as `POST /Service/Method` with JSON or
//! protobuf bodies, and gRPC (handed to [`super::grpc`]).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::Peer;
use super::{ConnectionGuard, Shared};
use crate::transport::rewind::Rewind;
use crate::Status;

/// The body of every response the server sends over HTTP (whole, or streamed for gRPC).
pub(crate) type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Status>;

/// An empty response body.
pub(crate) fn empty_body() -> ResponseBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Serves HTTP/1.1 (`http2 == false`) or HTTP/2 on a detected connection until it closes.
pub(crate) async fn serve_http<S>(
    io: Rewind<S>,
    http2: bool,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let _ = (io, http2, shared, open);
    tracing::warn!(remote = %peer.remote, "closing connection: HTTP is not served yet");
}
