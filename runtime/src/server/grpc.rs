//! gRPC calls on an HTTP/2 connection: unary and streaming methods, `grpc-timeout`,
//! `grpc-status`, metadata, gzip, and `grpc.health.v1.Health`.

use std::sync::Arc;

use hyper::body::Incoming;

use super::conn::Peer;
use super::http::ResponseBody;
use super::Shared;

/// Answers one gRPC call (a request whose content-type is `application/grpc...`).
pub(crate) async fn serve(
    request: http::Request<Incoming>,
    peer: Peer,
    shared: Arc<Shared>,
) -> http::Response<ResponseBody> {
    let _ = (request, peer, shared);
    let mut response = http::Response::new(super::http::empty_body());
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", http::HeaderValue::from_static("12"));
    headers.insert(
        "grpc-message",
        http::HeaderValue::from_static("gRPC is not implemented yet"),
    );
    response
}
