//! What generated code uses: the items `brisk-codegen`'s output refers to by absolute path.
//!
//! Application code rarely needs this module directly, except to implement [`Service`] by
//! hand.

pub use bytes::Bytes;
/// The stream trait generated streaming stubs take and return.
pub use futures_core::Stream;
/// A one-item stream: a server-streaming call's single request.
pub use futures_util::stream::once;

#[cfg(feature = "json")]
pub use crate::codec::Json;
pub use crate::codec::{MessageCodec, Prost};
pub use crate::method::MethodDescriptor;
pub use crate::server::{
    unknown_method, MessageSchema, Service, ServiceFuture, ServiceResponse, StreamingFuture,
    StreamingResponse,
};
pub use crate::streaming::{encode_stream, BytesStream, MethodKind, ResponseStream, Streaming};

use crate::{errno, Status};

/// Decodes a request with codec `C`; failure is EREQUEST, as in brpc.
pub fn decode_request<C: MessageCodec<T>, T>(request: Bytes) -> Result<T, Status> {
    C::decode(request).map_err(|e| {
        Status::new(
            errno::EREQUEST,
            format!("Fail to parse request message: {e}"),
        )
    })
}

/// Encodes a response with codec `C`; failure is EINTERNAL.
pub fn encode_response<C: MessageCodec<T>, T>(response: &T) -> Result<Bytes, Status> {
    C::encode_to_bytes(response)
        .map_err(|e| Status::internal(format!("Fail to serialize response: {e}")))
}

/// The one request of a server-streaming call: the first message of `requests`, which must
/// hold exactly one (EREQUEST otherwise).
pub async fn single_request<C: MessageCodec<T>, T>(requests: BytesStream) -> Result<T, Status> {
    use futures_util::StreamExt;
    let mut requests = requests;
    let first = match requests.next().await {
        Some(first) => first?,
        None => {
            return Err(Status::new(
                errno::EREQUEST,
                "a server-streaming call needs one request, got none",
            ))
        }
    };
    if let Some(extra) = requests.next().await {
        extra?;
        return Err(Status::new(
            errno::EREQUEST,
            "a server-streaming call takes one request, got more",
        ));
    }
    decode_request::<C, T>(first)
}
