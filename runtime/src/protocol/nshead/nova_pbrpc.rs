//! nova_pbrpc: an nshead message whose body is the serialized request itself, the method index
//! in `reserved` and snappy compression in bit 0 of `version`. No service name, no error
//! field: a server that cannot answer closes the connection.

use bytes::{Bytes, BytesMut};

use super::head::{body, decode_message, message_frame, NsheadHead};
use crate::protocol::{
    ClientCodec, ConnectionType, IncomingResponse, Matching, OutFrame, OutgoingRequest, ParseError,
    Payload,
};
use crate::{errno, CompressType, Status};

/// `nshead_t.version` bit 0: the body is snappy-compressed.
pub(crate) const SNAPPY_BIT: u16 = 1;

/// nova_pbrpc, `"nova_pbrpc"`: the client (servers answer it through
/// [`NsheadPbAdaptor::nova`](crate::NsheadPbAdaptor::nova)). Pooled and short connections only,
/// as brpc.
#[derive(Clone, Copy, Debug, Default)]
pub struct NovaPbrpc;

impl ClientCodec for NovaPbrpc {
    fn name(&self) -> &'static str {
        "nova_pbrpc"
    }

    fn matching(&self) -> Matching {
        Matching::InOrder
    }

    fn connection_types(&self) -> &'static [ConnectionType] {
        super::head::POOLED_OR_SHORT
    }

    fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, Status> {
        let payload = request.payload;
        super::head::refuse_attachment(self.name(), payload)?;
        let version = match payload.compress_type {
            CompressType::None => 0,
            CompressType::Snappy => SNAPPY_BIT,
            other => {
                return Err(Status::new(
                    errno::EREQUEST,
                    format!(
                        "nova_pbrpc cannot carry a {} request: only snappy",
                        other.name()
                    ),
                ))
            }
        };
        let head = NsheadHead {
            version,
            log_id: request.log_id.unwrap_or(0) as u32,
            reserved: request.method_index("nova_pbrpc")?,
            ..NsheadHead::default()
        };
        message_frame(&head, payload.message.clone())
            .ok_or_else(|| Status::new(errno::EREQUEST, "request too large for nshead's body_len"))
    }

    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError> {
        let Some((head, message)) = decode_message(buf, max_body_size)? else {
            return Ok(None);
        };
        let compress_type = if head.version & SNAPPY_BIT != 0 {
            CompressType::Snappy
        } else {
            CompressType::None
        };
        Ok(Some(IncomingResponse::ok(
            0,
            Payload {
                message: body(message),
                attachment: Bytes::new(),
                compress_type,
            },
        )))
    }
}
