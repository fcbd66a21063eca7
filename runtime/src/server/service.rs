//! The object-safe trait every generated server adapter implements.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::ServerContext;
use crate::{errno, Status};

/// The future a service returns for one call.
pub type ServiceFuture = Pin<Box<dyn Future<Output = ServiceResponse> + Send + 'static>>;

/// What a call produced: the encoded response (or the failure) and the context, which carries
/// the response attachment and compression.
#[derive(Debug)]
pub struct ServiceResponse {
    /// The handler's context after it ran.
    pub context: ServerContext,
    /// The encoded response message, or why the call failed.
    pub result: Result<Bytes, Status>,
}

impl ServiceResponse {
    /// Bundles a context and a result.
    pub fn new(context: ServerContext, result: Result<Bytes, Status>) -> Self {
        ServiceResponse { context, result }
    }
}

/// A service a [`Server`](crate::Server) can host. Generated `XxxServer` adapters implement it
/// over a user's typed trait; hand-written implementations work too.
pub trait Service: Send + Sync + 'static {
    /// The full protobuf name, e.g. `example.EchoService`.
    fn full_name(&self) -> &'static str;
    /// Method names as in the `.proto`, in order; `call` receives an index into this list.
    fn method_names(&self) -> &'static [&'static str];
    /// Runs method number `method` on the encoded `request`.
    fn call(&self, method: usize, context: ServerContext, request: Bytes) -> ServiceFuture;
}

/// The answer to a method index a service does not have (generated adapters' fallback arm).
pub fn unknown_method(context: ServerContext, method: usize) -> ServiceFuture {
    Box::pin(async move {
        ServiceResponse::new(
            context,
            Err(Status::new(
                errno::ENOMETHOD,
                format!("no method with index {method}"),
            )),
        )
    })
}
