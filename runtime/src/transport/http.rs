//! The `http` client protocol: pb methods as `POST /Service/Method` over HTTP/1.1.

use std::sync::Arc;

use crate::channel::call::{Answer, EncodedRequest, Failure};
use crate::channel::{ChannelOptions, Endpoint, MethodDescriptor};
use crate::{errno, Status};

/// An endpoint's idle HTTP/1.1 connections.
#[derive(Debug, Default)]
pub(crate) struct HttpPool {}

/// One call attempt over HTTP/1.1 on `endpoint`.
pub(crate) async fn attempt(
    endpoint: &Arc<Endpoint>,
    options: &ChannelOptions,
    method: &MethodDescriptor,
    request: &EncodedRequest,
) -> Result<Answer, Failure> {
    let _ = (endpoint, options, method, request);
    Err(Failure::server(Status::new(
        errno::EINVAL,
        "the http client protocol is not implemented yet",
    )))
}
