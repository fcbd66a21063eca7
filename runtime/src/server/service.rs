//! The object-safe trait every generated server adapter implements.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::ServerContext;
use crate::streaming::{BytesStream, MethodKind};
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

    /// The kind of each method, parallel to [`method_names`](Service::method_names). The
    /// default (an empty list) means every method is unary.
    fn method_kinds(&self) -> &'static [MethodKind] {
        &[]
    }

    /// Runs streaming method number `method` on a stream of encoded requests (exactly one for
    /// a server-streaming method). Only protocols that stream (gRPC) call it. The default
    /// answers ENOMETHOD: a service without streaming methods need not implement it.
    fn call_streaming(
        &self,
        method: usize,
        context: ServerContext,
        requests: BytesStream,
    ) -> StreamingFuture {
        drop(requests);
        Box::pin(async move {
            StreamingResponse {
                context,
                result: Err(Status::new(
                    errno::ENOMETHOD,
                    format!("no streaming method with index {method}"),
                )),
            }
        })
    }

    /// What the service's messages are, so HTTP can carry them as JSON as well as protobuf.
    /// The default, [`MessageSchema::Opaque`], serves protobuf bodies only.
    fn schema(&self) -> MessageSchema {
        MessageSchema::Opaque
    }
}

/// The future a streaming method returns: the response stream, once the handler has one.
pub type StreamingFuture = Pin<Box<dyn Future<Output = StreamingResponse> + Send + 'static>>;

/// What a streaming call produced: the context (with what the handler set on it) and the
/// encoded response stream, or why the call failed before streaming anything.
pub struct StreamingResponse {
    /// The handler's context when it returned its stream.
    pub context: ServerContext,
    /// The encoded responses, or the failure.
    pub result: Result<BytesStream, Status>,
}

impl std::fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("context", &self.context)
            .field("result", &self.result.as_ref().map(|_| "BytesStream"))
            .finish()
    }
}

/// How a service's messages are described, for HTTP bodies in JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageSchema {
    /// Protobuf messages without descriptors: HTTP carries `application/proto` bodies only.
    #[default]
    Opaque,
    /// Protobuf messages described by an encoded `google.protobuf.FileDescriptorSet` holding
    /// the service's file and everything it imports: HTTP maps them to and from JSON with
    /// protobuf's canonical JSON mapping.
    Protobuf {
        /// The encoded `FileDescriptorSet`.
        file_descriptor_set: &'static [u8],
    },
    /// The messages are JSON already (`#[brisk::service(codec = "json")]`).
    Json,
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
