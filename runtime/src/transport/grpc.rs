//! The `h2:grpc` client protocol: unary and streaming calls over one HTTP/2 connection.

use std::sync::Arc;

use crate::channel::call::{Answer, EncodedRequest, Failure};
use crate::channel::{ChannelOptions, Endpoint, MethodDescriptor};
use crate::{errno, Status};

/// An endpoint's HTTP/2 connection, shared by all calls to it.
#[derive(Debug, Default)]
pub(crate) struct H2Slot {}

/// One unary call attempt over gRPC on `endpoint`.
pub(crate) async fn attempt(
    endpoint: &Arc<Endpoint>,
    options: &ChannelOptions,
    method: &MethodDescriptor,
    request: &EncodedRequest,
) -> Result<Answer, Failure> {
    let _ = (endpoint, options, method, request);
    Err(Failure::server(Status::new(
        errno::EINVAL,
        "the h2:grpc client protocol is not implemented yet",
    )))
}
