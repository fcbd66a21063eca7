//! public_pbrpc: an nshead message (version 1000, provider `__pbrpc__`) whose body is a
//! `PublicPbrpcRequest` / `PublicPbrpcResponse` wrapping the serialized message, the service
//! by short name and the method by index.

use std::net::IpAddr;
use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use prost::Message;

use super::head::{body, NsheadHead, HEADER_LEN};
use crate::clock::CivilTime;
use crate::protocol::{
    ClientCodec, ConnectionType, IncomingRequest, IncomingResponse, Matching, MethodRef, OutFrame,
    OutgoingRequest, ParseError, Payload, ReplyTo,
};
use crate::{errno, CompressType, Status};

/// `nshead_t.provider` of public_pbrpc messages.
pub const PROVIDER: &str = "__pbrpc__";
/// `nshead_t.version` of public_pbrpc requests.
pub const VERSION: u16 = 1000;
/// `compress_type` of a snappy-compressed message (the only compression public_pbrpc has).
const SNAPPY: u32 = 1;
/// `ResponseHead.text` of a success.
const SUCCESS_TEXT: &str = "success";
/// `RequestBody.version` brpc's client sends.
const BODY_VERSION: &str = "pbrpc=1.0";
const CHARSET: &str = "utf-8";

/// `brpc.policy.PublicPbrpcRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PublicPbrpcRequest {
    /// `requestHead`.
    #[prost(message, optional, tag = "1")]
    pub request_head: Option<RequestHead>,
    /// `requestBody` (brpc sends and reads exactly one).
    #[prost(message, repeated, tag = "2")]
    pub request_body: Vec<RequestBody>,
}

/// `brpc.policy.RequestHead`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestHead {
    /// The client's IP address, as text.
    #[prost(string, optional, tag = "1")]
    pub from_host: Option<String>,
    /// Always 1 from brpc.
    #[prost(uint32, optional, tag = "2")]
    pub content_type: Option<u32>,
    /// Whether the connection is kept (false for short connections).
    #[prost(bool, optional, tag = "3")]
    pub connection: Option<bool>,
    /// `utf-8`.
    #[prost(string, optional, tag = "4")]
    pub charset: Option<String>,
    /// Unused by brpc.
    #[prost(string, optional, tag = "5")]
    pub accept_charset: Option<String>,
    /// When the request was made, `%Y%m%d%H%M%S`.
    #[prost(string, optional, tag = "6")]
    pub create_time: Option<String>,
    /// The caller's log id.
    #[prost(uint64, optional, tag = "7")]
    pub log_id: Option<u64>,
    /// 1 when the request is snappy-compressed.
    #[prost(uint32, optional, tag = "8")]
    pub compress_type: Option<u32>,
}

/// `brpc.policy.RequestBody`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestBody {
    /// `pbrpc=1.0`, echoed in the response.
    #[prost(string, optional, tag = "1")]
    pub version: Option<String>,
    /// `utf-8`.
    #[prost(string, optional, tag = "2")]
    pub charset: Option<String>,
    /// The service's short name.
    #[prost(string, required, tag = "3")]
    pub service: String,
    /// The method's index in the service.
    #[prost(uint32, required, tag = "4")]
    pub method_id: u32,
    /// The call's id, echoed in the response.
    #[prost(uint64, required, tag = "5")]
    pub id: u64,
    /// The request message.
    #[prost(bytes = "bytes", optional, tag = "6")]
    pub serialized_request: Option<Bytes>,
}

/// `brpc.policy.PublicPbrpcResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PublicPbrpcResponse {
    /// `responseHead`.
    #[prost(message, optional, tag = "1")]
    pub response_head: Option<ResponseHead>,
    /// `responseBody` (one).
    #[prost(message, repeated, tag = "2")]
    pub response_body: Vec<ResponseBody>,
}

/// `brpc.policy.ResponseHead`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHead {
    /// 0, or the brpc error code.
    #[prost(sint32, required, tag = "1")]
    pub code: i32,
    /// `success`, or the error text.
    #[prost(string, optional, tag = "2")]
    pub text: Option<String>,
    /// The server's IP address, as text.
    #[prost(string, optional, tag = "3")]
    pub from_host: Option<String>,
    /// 1 when the response is snappy-compressed.
    #[prost(uint32, optional, tag = "4")]
    pub compress_type: Option<u32>,
}

/// `brpc.policy.ResponseBody`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseBody {
    /// The response message (absent on error).
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub serialized_response: Option<Bytes>,
    /// The request's `RequestBody.version`.
    #[prost(string, optional, tag = "2")]
    pub version: Option<String>,
    /// Unused by brpc.
    #[prost(int32, optional, tag = "3")]
    pub error: Option<i32>,
    /// The request's `RequestBody.id`.
    #[prost(uint64, required, tag = "4")]
    pub id: u64,
}

/// Whether a message with header `head` is public_pbrpc's.
pub(crate) fn is_public_pbrpc(head: &NsheadHead) -> bool {
    head.provider() == PROVIDER.as_bytes()
}

/// A public_pbrpc request (`message` is the whole nshead message) as the server dispatches
/// it; `context_tag` starts the reply context, followed by the request's header and
/// `RequestBody.version`.
pub(crate) fn decode_request(
    head: &NsheadHead,
    message: Bytes,
    context_tag: u8,
) -> Result<IncomingRequest, ParseError> {
    let header = message.slice(..HEADER_LEN);
    let request = PublicPbrpcRequest::decode(body(message))
        .map_err(|e| ParseError::new(format!("Fail to parse from PublicPbrpcRequest: {e}")))?;
    let request_head = request.request_head.unwrap_or_default();
    let Some(request_body) = request.request_body.into_iter().next() else {
        return Err(ParseError::new(
            "Missing request body inside PublicPbrpcRequest",
        ));
    };
    let version = request_body.version.unwrap_or_default();
    let mut context = BytesMut::with_capacity(1 + HEADER_LEN + version.len());
    context.extend_from_slice(&[context_tag]);
    context.extend_from_slice(&header);
    context.extend_from_slice(version.as_bytes());
    let compress_type = if request_head.compress_type == Some(SNAPPY) {
        CompressType::Snappy
    } else {
        CompressType::None
    };
    let mut incoming = IncomingRequest::new(
        ReplyTo {
            correlation_id: request_body.id,
            context: context.freeze(),
            stream: None,
        },
        request_body.service,
        MethodRef::Index(request_body.method_id as usize),
        Payload {
            message: request_body.serialized_request.unwrap_or_default(),
            attachment: Bytes::new(),
            compress_type,
        },
    );
    incoming.log_id = request_head
        .log_id
        .map_or(i64::from(head.log_id), |id| id as i64);
    Ok(incoming)
}

/// The reply to a public_pbrpc request: `head` echoed, the response (or error) wrapped.
/// Unlike brpc's adaptor, which answers a method it cannot find with id 0 (a reply no client
/// can match), every reply echoes the request's id and version.
pub(crate) fn encode_response(
    head: &NsheadHead,
    correlation_id: u64,
    version: &[u8],
    result: Result<Payload, (i32, String)>,
    server_ip: IpAddr,
) -> Result<OutFrame, Status> {
    let (response_head, serialized_response) = match result {
        Ok(payload) => {
            let compress_type = match payload.compress_type {
                CompressType::None => None,
                CompressType::Snappy => Some(SNAPPY),
                other => {
                    return Err(Status::internal(format!(
                        "public_pbrpc cannot carry a {} response: only snappy",
                        other.name()
                    )))
                }
            };
            if !payload.attachment.is_empty() {
                tracing::warn!("public_pbrpc cannot carry an attachment: the response's {} bytes of attachment are not sent", payload.attachment.len());
            }
            let head = ResponseHead {
                code: 0,
                text: Some(SUCCESS_TEXT.to_owned()),
                from_host: Some(server_ip.to_string()),
                compress_type,
            };
            (head, Some(payload.message))
        }
        Err((code, text)) => {
            let head = ResponseHead {
                code,
                text: Some(text),
                from_host: Some(server_ip.to_string()),
                compress_type: None,
            };
            (head, None)
        }
    };
    let response = PublicPbrpcResponse {
        response_head: Some(response_head),
        response_body: vec![ResponseBody {
            serialized_response,
            version: Some(String::from_utf8_lossy(version).into_owned()),
            error: None,
            id: correlation_id,
        }],
    };
    let body_len = u32::try_from(response.encoded_len())
        .map_err(|_| Status::internal("response too large for nshead's body_len"))?;
    let mut frame = BytesMut::with_capacity(HEADER_LEN + body_len as usize);
    head.encode(&mut frame, body_len);
    response.encode_raw(&mut frame);
    Ok(OutFrame::whole(frame.freeze()))
}

/// public_pbrpc, `"public_pbrpc"`: the client (servers answer it on the nshead protocol).
/// Pooled and short connections only, as brpc: its replies are matched by connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicPbrpc;

impl ClientCodec for PublicPbrpc {
    fn name(&self) -> &'static str {
        "public_pbrpc"
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
        let compress_type = match payload.compress_type {
            CompressType::None => None,
            CompressType::Snappy => Some(SNAPPY),
            other => {
                return Err(Status::new(
                    errno::EREQUEST,
                    format!(
                        "public_pbrpc cannot carry a {} request: only snappy",
                        other.name()
                    ),
                ))
            }
        };
        let method_id = request.method_index("public_pbrpc")?;
        let body = PublicPbrpcRequest {
            request_head: Some(RequestHead {
                from_host: Some(MY_IP.clone()),
                content_type: Some(1),
                connection: Some(request.connection_type != ConnectionType::Short),
                charset: Some(CHARSET.to_owned()),
                accept_charset: None,
                create_time: Some(create_time(std::time::SystemTime::now())),
                log_id: request.log_id.map(|id| id as u64),
                compress_type,
            }),
            request_body: vec![RequestBody {
                version: Some(BODY_VERSION.to_owned()),
                charset: Some(CHARSET.to_owned()),
                service: request.method.service_short_name().to_owned(),
                method_id,
                id: request.correlation_id,
                serialized_request: Some(payload.message.clone()),
            }],
        };
        let head = NsheadHead {
            version: VERSION,
            log_id: request.log_id.unwrap_or(0) as u32,
            ..NsheadHead::default()
        }
        .with_provider(PROVIDER);
        let body_len = u32::try_from(body.encoded_len())
            .map_err(|_| Status::new(errno::EREQUEST, "request too large for nshead's body_len"))?;
        let mut frame = BytesMut::with_capacity(HEADER_LEN + body_len as usize);
        head.encode(&mut frame, body_len);
        body.encode_raw(&mut frame);
        Ok(OutFrame::whole(frame.freeze()))
    }

    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError> {
        let Some((_, message)) = super::head::decode_message(buf, max_body_size)? else {
            return Ok(None);
        };
        let response = PublicPbrpcResponse::decode(body(message))
            .map_err(|e| ParseError::new(format!("Fail to parse PublicPbrpcResponse: {e}")))?;
        let head = response.response_head.unwrap_or_default();
        let Some(body) = response.response_body.into_iter().next() else {
            return Ok(Some(IncomingResponse::error(
                0,
                Status::new(
                    errno::ERESPONSE,
                    "PublicPbrpcResponse without a responseBody",
                ),
            )));
        };
        if head.code != 0 {
            let text = head.text.as_deref().unwrap_or_default();
            return Ok(Some(IncomingResponse::error(
                body.id,
                Status::from_server_text(head.code, text),
            )));
        }
        let compress_type = if head.compress_type == Some(SNAPPY) {
            CompressType::Snappy
        } else {
            CompressType::None
        };
        Ok(Some(IncomingResponse::ok(
            body.id,
            Payload {
                message: body.serialized_response.unwrap_or_default(),
                attachment: Bytes::new(),
                compress_type,
            },
        )))
    }
}

/// This machine's IP address as text, as brpc's `my_ip()`: the address the default route
/// leaves from (found without sending anything), `127.0.0.1` without one.
static MY_IP: LazyLock<String> = LazyLock::new(|| {
    let routed = || -> std::io::Result<IpAddr> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
        socket.connect("10.255.255.255:1")?;
        Ok(socket.local_addr()?.ip())
    };
    routed()
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
        .to_string()
});

/// `RequestHead.create_time`: `%Y%m%d%H%M%S`, in UTC (brpc writes the machine's local time;
/// the server does not read it).
fn create_time(now: std::time::SystemTime) -> String {
    let t = CivilTime::utc(now);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_response_without_a_body_is_an_error_not_an_empty_success() {
        let response = PublicPbrpcResponse {
            response_head: Some(ResponseHead::default()),
            response_body: Vec::new(),
        }
        .encode_to_vec();
        let mut buf = BytesMut::new();
        NsheadHead::default().encode(&mut buf, response.len() as u32);
        buf.extend_from_slice(&response);
        let decoded = PublicPbrpc
            .decode_response(&mut buf, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(decoded.result.unwrap_err().code(), errno::ERESPONSE);
    }

    #[test]
    fn create_time_is_brpcs_format() {
        let at = |secs| create_time(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101000000");
        assert_eq!(at(1_796_420_170), "20261204213610");
        assert_eq!(at(951_782_400), "20000229000000");
    }
}
