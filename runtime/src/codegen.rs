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

use std::sync::OnceLock;

use crate::error::UnparsedRequest;
use crate::required::RequiredFields;
use crate::{errno, Status};

/// Decodes a request with codec `C`; failure is EREQUEST, as in brpc.
///
/// Generated code calls [`decode_request_of`], which also names the message and checks proto2
/// required fields; this is for hand-written services.
pub fn decode_request<C: MessageCodec<T>, T>(request: Bytes) -> Result<T, Status> {
    C::decode(request).map_err(|e| {
        Status::new(
            errno::EREQUEST,
            format!("Fail to parse request message: {e}"),
        )
    })
}

/// What generated code knows of a method's request message: its name, and (from the
/// descriptors, when the service has them) the proto2 required fields it must carry.
/// Generated servers keep one in a `static` per method.
///
/// ```
/// static REQUEST: brisk::codegen::RequestSchema =
///     brisk::codegen::RequestSchema::new("example.EchoRequest", None);
/// assert_eq!(REQUEST.message(), "example.EchoRequest");
/// ```
#[derive(Debug)]
pub struct RequestSchema {
    message: &'static str,
    file_descriptor_set: Option<&'static [u8]>,
    /// Built on first use: `None` inside when the message has no required field.
    required: OnceLock<Option<RequiredFields>>,
}

impl RequestSchema {
    /// The schema of message `message` (a full protobuf name), described by
    /// `file_descriptor_set` (an encoded `FileDescriptorSet`) when there is one.
    pub const fn new(message: &'static str, file_descriptor_set: Option<&'static [u8]>) -> Self {
        RequestSchema {
            message,
            file_descriptor_set,
            required: OnceLock::new(),
        }
    }

    /// The message's full protobuf name.
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// The message's required-field rules, built on first use; `None` when it has no
    /// required field (or no descriptors).
    fn required_fields(&self) -> Option<&RequiredFields> {
        self.required
            .get_or_init(|| {
                self.file_descriptor_set
                    .and_then(|set| RequiredFields::new(set, self.message))
            })
            .as_ref()
    }
}

/// Decodes a request of `schema`'s message with codec `C`. A payload that does not decode, or
/// a protobuf one that lacks a proto2 required field (brpc's protobuf refuses those too), is
/// EREQUEST; the protocol words it as its brpc server does (baidu_std: `Fail to parse
/// request=example.EchoRequest, ContentType=pb, CompressType=none, ChecksumType=none,
/// request_size=0`).
pub fn decode_request_of<C: MessageCodec<T>, T>(
    schema: &'static RequestSchema,
    request: Bytes,
) -> Result<T, Status> {
    let unparsed = |why: String| {
        Status::new(
            errno::EREQUEST,
            format!("Fail to parse request={}: {why}", schema.message),
        )
        .with_unparsed_request(UnparsedRequest {
            message: schema.message,
            content_type: C::CONTENT_TYPE,
        })
    };
    let required = if C::CONTENT_TYPE == 0 {
        schema.required_fields()
    } else {
        None
    };
    let Some(required) = required else {
        return C::decode(request).map_err(unparsed);
    };
    // Decoded first: the walk below then only ever sees what prost accepted (its recursion
    // limit included).
    let decoded = C::decode(request.clone()).map_err(unparsed)?;
    match required.missing(&request) {
        None => Ok(decoded),
        Some(fields) => Err(unparsed(format!("missing required fields: {fields}"))),
    }
}

/// Encodes a response with codec `C`; failure is EINTERNAL.
pub fn encode_response<C: MessageCodec<T>, T>(response: &T) -> Result<Bytes, Status> {
    C::encode_to_bytes(response)
        .map_err(|e| Status::internal(format!("Fail to serialize response: {e}")))
}

/// The one request of a server-streaming call: the first message of `requests`, which must
/// hold exactly one (EREQUEST otherwise), decoded as [`decode_request_of`] does.
pub async fn single_request<C: MessageCodec<T>, T>(
    schema: &'static RequestSchema,
    requests: BytesStream,
) -> Result<T, Status> {
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
    decode_request_of::<C, T>(schema, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_request_names_its_message_and_is_marked_for_the_protocol() {
        static REQUEST: RequestSchema = RequestSchema::new("p.Req", None);
        let status =
            decode_request_of::<Prost, String>(&REQUEST, Bytes::from_static(b"\x0a\x05ab"))
                .unwrap_err();
        assert_eq!(status.code(), errno::EREQUEST);
        assert!(
            status
                .message()
                .starts_with("Fail to parse request=p.Req: "),
            "{status}"
        );
        let unparsed = status.unparsed_request().unwrap();
        assert_eq!((unparsed.message, unparsed.content_type), ("p.Req", 0));
        let ok = decode_request_of::<Prost, String>(&REQUEST, Bytes::from_static(b"\x0a\x02ab"));
        assert_eq!(ok.unwrap(), "ab");
    }
}
