//! nshead, Baidu's 36-byte-header protocol, and the pbrpc protocols built on it: public_pbrpc
//! and nova_pbrpc. Byte-compatible with brpc 1.17.
//!
//! ```text
//! | id: u16 | version: u16 | log_id: u32 | provider: [u8; 16] | magic_num: u32 = 0xfb709394 |
//! | reserved: u32 | body_len: u32 | body |          (every integer little-endian)
//! ```
//!
//! nshead has no correlation id, so its clients use `pooled` or `short` connections (one call
//! in flight per connection; `single` is refused, as brpc refuses it) and a reply answers the
//! connection's call. A server recognises nshead by the magic number at offset 24 and answers
//! with the request's header echoed (`body_len` set to the reply's), as brpc's does.
//!
//! - **nshead** ([`Nshead`]): the body is whatever the two sides agree on. A channel of
//!   protocol `nshead` sends a method's serialized request as the body and reads the reply's
//!   body as its response. A server hands nshead bodies to its
//!   [`NsheadService`](crate::NsheadService) (`ServerBuilder::nshead_service`), which may be
//!   [`NsheadPbAdaptor`](crate::NsheadPbAdaptor) to serve a `.proto` service's methods.
//! - **public_pbrpc** ([`PublicPbrpc`]): version 1000, provider `__pbrpc__`, the body a
//!   `PublicPbrpcRequest` naming the service and method index. Every Brisk server answers it
//!   with its services, no adaptor needed (brpc needs `PublicPbrpcServiceAdaptor`).
//! - **nova_pbrpc** ([`NovaPbrpc`]): the body is the serialized request, the method index is
//!   in `reserved`, snappy is `version` bit 0. Served by `NsheadPbAdaptor::nova`.

mod head;
mod nova_pbrpc;
mod public_pbrpc;

use bytes::BytesMut;

pub use head::{NsheadHead, HEADER_LEN, MAGIC};
pub use nova_pbrpc::NovaPbrpc;
pub use public_pbrpc::{
    PublicPbrpc, PublicPbrpcRequest, PublicPbrpcResponse, RequestBody, RequestHead, ResponseBody,
    ResponseHead, PROVIDER as PUBLIC_PBRPC_PROVIDER, VERSION as PUBLIC_PBRPC_VERSION,
};

use super::{
    ClientCodec, ConnectionType, Detection, IncomingRequest, IncomingResponse, Matching, MethodRef,
    OutFrame, OutgoingRequest, OutgoingResponse, ParseError, Payload, ReplyTo, ServerCodec,
};
use crate::{errno, CompressType, Status};

/// The name a server's [`NsheadService`](crate::NsheadService) is hosted under: nshead
/// messages that are not public_pbrpc's are requests for its one method, the whole message
/// (header and body) the request.
pub const NSHEAD_SERVICE: &str = "brisk.NsheadService";

/// Reply contexts start with which kind of request they answer.
const RAW: u8 = 0;
const PUBLIC: u8 = 1;

/// nshead, `"nshead"`: the client (a method's serialized request as the body) and the server
/// codec for every nshead-framed protocol (nshead, public_pbrpc, nova_pbrpc), registered by
/// Brisk itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Nshead;

impl ClientCodec for Nshead {
    fn name(&self) -> &'static str {
        "nshead"
    }

    fn matching(&self) -> Matching {
        Matching::InOrder
    }

    fn connection_types(&self) -> &'static [ConnectionType] {
        head::POOLED_OR_SHORT
    }

    fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, Status> {
        let payload = request.payload;
        head::refuse_attachment("nshead", payload)?;
        if payload.compress_type != CompressType::None {
            return Err(Status::new(
                errno::EREQUEST,
                "nshead cannot say a body is compressed",
            ));
        }
        let head = NsheadHead {
            log_id: request.log_id.unwrap_or(0) as u32,
            ..NsheadHead::default()
        };
        head::message_frame(&head, payload.message.clone())
            .ok_or_else(|| Status::new(errno::EREQUEST, "request too large for nshead's body_len"))
    }

    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError> {
        let Some((_, message)) = head::decode_message(buf, max_body_size)? else {
            return Ok(None);
        };
        Ok(Some(IncomingResponse::ok(
            0,
            Payload {
                message: head::body(message),
                ..Payload::default()
            },
        )))
    }
}

impl ServerCodec for Nshead {
    fn name(&self) -> &'static str {
        "nshead"
    }

    fn detect(&self, prefix: &[u8]) -> Detection {
        head::starts_message(prefix)
    }

    fn decode_request(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingRequest>, ParseError> {
        let Some((head, message)) = head::decode_message(buf, max_body_size)? else {
            return Ok(None);
        };
        if public_pbrpc::is_public_pbrpc(&head) {
            return public_pbrpc::decode_request(&head, message, PUBLIC).map(Some);
        }
        let mut context = BytesMut::with_capacity(1 + HEADER_LEN);
        context.extend_from_slice(&[RAW]);
        context.extend_from_slice(&message[..HEADER_LEN]);
        let mut request = IncomingRequest::new(
            ReplyTo {
                correlation_id: 0,
                context: context.freeze(),
                stream: None,
            },
            NSHEAD_SERVICE,
            MethodRef::Index(0),
            Payload {
                message,
                ..Payload::default()
            },
        );
        request.log_id = i64::from(head.log_id);
        Ok(Some(request))
    }

    fn encode_response(&self, response: OutgoingResponse<'_>) -> Result<OutFrame, Status> {
        let context = &response.reply_to.context;
        let head = context
            .get(1..)
            .and_then(NsheadHead::parse)
            .ok_or_else(|| Status::internal("nshead reply without its request's header"))?;
        if context[0] == PUBLIC {
            let version = &context[1 + HEADER_LEN..];
            let result = match response.result {
                Ok(payload) => Ok(payload),
                Err(status) => Err((status.code(), response.error_text(status))),
            };
            return public_pbrpc::encode_response(
                &head,
                response.reply_to.correlation_id,
                version,
                result,
                response.server_addr.ip(),
            );
        }
        // nshead has no way to say a call failed: brpc's adaptors close the connection.
        let payload = response.result.map_err(|status| {
            Status::new(
                status.code(),
                format!("nshead cannot answer an error ({status}): closing the connection"),
            )
        })?;
        if !payload.attachment.is_empty() {
            tracing::warn!("nshead cannot carry an attachment: the response's {} bytes of attachment are not sent", payload.attachment.len());
        }
        head::message_frame(&head, payload.message)
            .ok_or_else(|| Status::internal("response too large for nshead's body_len"))
    }

    fn method_not_found(&self, service: &str, method: &MethodRef) -> Option<Status> {
        if service == NSHEAD_SERVICE {
            return Some(Status::new(
                errno::ENOSERVICE,
                "this server has no NsheadService for nshead requests (ServerBuilder::nshead_service)",
            ));
        }
        let method_id = match method {
            MethodRef::Index(index) => index.to_string(),
            MethodRef::Name(name) => name.clone(),
        };
        Some(Status::new(
            errno::ENOMETHOD,
            format!("Fail to find method by service={service} method_id={method_id}"),
        ))
    }

    fn replies_in_order(&self) -> bool {
        true
    }
}
