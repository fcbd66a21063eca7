//! hulu_pbrpc, the protocol of Baidu's hulu RPC, byte-compatible with brpc 1.17's.
//!
//! ```text
//! | "HULU" | body_size: u32 LE | meta_size: u32 LE | HuluRpc{Request,Response}Meta | message | attachment |
//!   body_size = meta_size + message + attachment; message size = meta.user_message_size when
//!   there is an attachment (absent otherwise: the whole rest is the message)
//! ```
//!
//! Unlike baidu_std, the sizes are little-endian (brpc stores them in host order), a service
//! is named by its short name (`EchoService`) and a method by its index in the service, and
//! the response meta's correlation id is a zigzag `sint64`. brpc answers an unknown service
//! or method alike: ENOMETHOD `Fail to find method=5 of service=EchoService`. Error replies
//! carry no message, and their text starts with the server's address and code, as
//! baidu_std's.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;

use super::cut::{cut_frame, le_u32};
use super::{
    ClientCodec, Detection, IncomingRequest, IncomingResponse, MethodRef, OutFrame,
    OutgoingRequest, OutgoingResponse, ParseError, Payload, ReplyTo, ServerCodec,
};
use crate::{errno, CompressType, Status};

/// The 4 bytes that start every hulu_pbrpc frame.
pub const MAGIC: &[u8; 4] = b"HULU";
/// Header length: magic, body size, meta size.
pub const HEADER_LEN: usize = 12;

/// `brpc.policy.HuluRpcRequestMeta` (the fields brpc sets; others are skipped on decode).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HuluRpcRequestMeta {
    /// The service's short name (`EchoService`).
    #[prost(string, required, tag = "1")]
    pub service_name: String,
    /// The method's index in the service.
    #[prost(int32, required, tag = "2")]
    pub method_index: i32,
    /// 0 none, 1 snappy, 2 gzip, 3 zlib (brpc's numbering).
    #[prost(int32, optional, tag = "3")]
    pub compress_type: Option<i32>,
    /// Matches the response to the call.
    #[prost(int64, optional, tag = "4")]
    pub correlation_id: Option<i64>,
    /// The caller's log id.
    #[prost(int64, optional, tag = "5")]
    pub log_id: Option<i64>,
    /// rpcz tracing.
    #[prost(int64, optional, tag = "7")]
    pub trace_id: Option<i64>,
    /// rpcz tracing.
    #[prost(int64, optional, tag = "8")]
    pub parent_span_id: Option<i64>,
    /// rpcz tracing.
    #[prost(int64, optional, tag = "9")]
    pub span_id: Option<i64>,
    /// `HuluController::request_user_data`.
    #[prost(bytes = "bytes", optional, tag = "11")]
    pub user_data: Option<Bytes>,
    /// Bytes of the body that are the message, when an attachment follows it.
    #[prost(int32, optional, tag = "12")]
    pub user_message_size: Option<i32>,
    /// `HuluController::request_source_addr`.
    #[prost(int64, optional, tag = "13")]
    pub user_defined_source_addr: Option<i64>,
    /// Never set by brpc's client.
    #[prost(string, optional, tag = "14")]
    pub method_name: Option<String>,
    /// The authenticator's credential.
    #[prost(bytes = "bytes", optional, tag = "15")]
    pub credential_data: Option<Bytes>,
}

/// `brpc.policy.HuluRpcResponseMeta` (the fields brpc sets).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HuluRpcResponseMeta {
    /// 0 on success, else the brpc error code; always sent.
    #[prost(int32, optional, tag = "1")]
    pub error_code: Option<i32>,
    /// The error text, on failure.
    #[prost(string, optional, tag = "2")]
    pub error_text: Option<String>,
    /// The request's correlation id, zigzag-encoded.
    #[prost(sint64, optional, tag = "3")]
    pub correlation_id: Option<i64>,
    /// How the message is compressed; always sent.
    #[prost(int32, optional, tag = "4")]
    pub compress_type: Option<i32>,
    /// `HuluController::response_user_data`.
    #[prost(bytes = "bytes", optional, tag = "7")]
    pub user_data: Option<Bytes>,
    /// Bytes of the body that are the message, when an attachment follows it.
    #[prost(int32, optional, tag = "8")]
    pub user_message_size: Option<i32>,
    /// `HuluController::response_source_addr`.
    #[prost(int64, optional, tag = "9")]
    pub user_defined_source_addr: Option<i64>,
}

/// hulu_pbrpc, `"hulu_pbrpc"`: client and server codec, registered by Brisk itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct HuluPbrpc;

/// A frame's meta and the body after it.
struct Frame {
    meta: Bytes,
    body: Bytes,
}

/// Cuts the next frame off `buf`.
fn decode_frame(buf: &mut BytesMut, max_body_size: usize) -> Result<Option<Frame>, ParseError> {
    let seen = buf.len().min(MAGIC.len());
    if buf[..seen] != MAGIC[..seen] {
        return Err(ParseError::new(format!(
            "not a hulu_pbrpc frame (starts with {:02x?})",
            &buf[..seen]
        )));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let body_size = le_u32(buf, 4) as usize;
    let meta_size = le_u32(buf, 8) as usize;
    if body_size > max_body_size {
        return Err(ParseError::new(format!(
            "body_size={body_size} is bigger than max_body_size={max_body_size}"
        )));
    }
    if meta_size > body_size {
        return Err(ParseError::new(format!(
            "meta_size={meta_size} is bigger than body_size={body_size}"
        )));
    }
    let frame_len = body_size
        .checked_add(HEADER_LEN)
        .ok_or_else(|| ParseError::new(format!("body_size={body_size} is too large")))?;
    let Some(mut frame) = cut_frame(buf, frame_len) else {
        return Ok(None);
    };
    frame.advance(HEADER_LEN);
    let meta = frame.split_to(meta_size);
    Ok(Some(Frame { meta, body: frame }))
}

/// Splits a body into message and attachment by `user_message_size`, as brpc does: a size
/// that is absent, or not smaller than the body, leaves the whole body the message.
fn split_body(body: Bytes, user_message_size: Option<i32>) -> (Bytes, Bytes) {
    match user_message_size.and_then(|n| usize::try_from(n).ok()) {
        Some(n) if n < body.len() => {
            let mut message = body;
            let attachment = message.split_off(n);
            (message, attachment)
        }
        _ => (body, Bytes::new()),
    }
}

/// The message and attachment sizes checked against what the protocol's `i32`/`u32` fields
/// can say.
fn check_sizes(message: usize, attachment: usize) -> Result<(), String> {
    const META_ROOM: usize = 64 * 1024;
    if message > i32::MAX as usize
        || message.saturating_add(attachment) > u32::MAX as usize - META_ROOM
    {
        return Err(format!(
            "body of {} bytes exceeds what hulu_pbrpc can carry",
            message.saturating_add(attachment)
        ));
    }
    Ok(())
}

fn put_header(dst: &mut BytesMut, meta_len: usize, rest: usize) {
    dst.put_slice(MAGIC);
    dst.put_u32_le((meta_len + rest) as u32);
    dst.put_u32_le(meta_len as u32);
}

/// What a client puts in a request's meta, for [`encode_request_head`].
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The service's short name.
    pub service_name: &'a str,
    /// The method's index.
    pub method_index: i32,
    /// brpc's compress type number.
    pub compress_type: i32,
    /// The call's id.
    pub correlation_id: i64,
    /// The log id, sent when set.
    pub log_id: Option<i64>,
    /// Bytes of (compressed) message after the meta.
    pub message_len: usize,
    /// Bytes of attachment after the message.
    pub attachment_len: usize,
    /// The credential, on a connection's first requests.
    pub credential: Option<&'a [u8]>,
}

/// Writes a request's header and meta, the fields in brpc's order, byte-identical to the
/// prost encoding of the [`HuluRpcRequestMeta`] brpc's client builds, without building one.
pub fn encode_request_head(dst: &mut BytesMut, head: &RequestHead<'_>) {
    let varint = |v: i64| encoded_len_varint(v as u64);
    let bytes_len = |n: usize| 1 + encoded_len_varint(n as u64) + n;
    let has_attachment = head.attachment_len > 0;
    let meta_len = bytes_len(head.service_name.len())
        + 1
        + varint(i64::from(head.method_index))
        + 1
        + varint(i64::from(head.compress_type))
        + 1
        + varint(head.correlation_id)
        + head.log_id.map_or(0, |id| 1 + varint(id))
        + if has_attachment {
            1 + varint(head.message_len as i64)
        } else {
            0
        }
        + head.credential.map_or(0, |c| bytes_len(c.len()));
    dst.reserve(HEADER_LEN + meta_len);
    put_header(dst, meta_len, head.message_len + head.attachment_len);
    dst.put_u8(0x0a);
    encode_varint(head.service_name.len() as u64, dst);
    dst.put_slice(head.service_name.as_bytes());
    dst.put_u8(0x10);
    encode_varint(i64::from(head.method_index) as u64, dst);
    dst.put_u8(0x18);
    encode_varint(i64::from(head.compress_type) as u64, dst);
    dst.put_u8(0x20);
    encode_varint(head.correlation_id as u64, dst);
    if let Some(log_id) = head.log_id {
        dst.put_u8(0x28);
        encode_varint(log_id as u64, dst);
    }
    if has_attachment {
        dst.put_u8(0x60);
        encode_varint(head.message_len as u64, dst);
    }
    if let Some(credential) = head.credential {
        dst.put_u8(0x7a);
        encode_varint(credential.len() as u64, dst);
        dst.put_slice(credential);
    }
}

/// A response's header and meta; `error` is `(code, text)` for a failure, which has no message.
pub fn encode_response_head(
    dst: &mut BytesMut,
    correlation_id: i64,
    compress_type: i32,
    message_len: usize,
    attachment_len: usize,
    error: Option<(i32, String)>,
) {
    let (error_code, error_text) = match error {
        Some((code, text)) => (code, Some(text).filter(|t| !t.is_empty())),
        None => (0, None),
    };
    let meta = HuluRpcResponseMeta {
        error_code: Some(error_code),
        error_text,
        correlation_id: Some(correlation_id),
        compress_type: Some(compress_type),
        user_message_size: (attachment_len > 0).then_some(message_len as i32),
        ..Default::default()
    };
    let meta_len = meta.encoded_len();
    dst.reserve(HEADER_LEN + meta_len);
    put_header(dst, meta_len, message_len + attachment_len);
    meta.encode_raw(dst);
}

impl ClientCodec for HuluPbrpc {
    fn name(&self) -> &'static str {
        "hulu_pbrpc"
    }

    fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, Status> {
        let payload = request.payload;
        check_sizes(payload.message.len(), payload.attachment.len())
            .map_err(|e| Status::new(errno::EREQUEST, format!("request {e}")))?;
        let method_index = i32::try_from(request.method_index("hulu_pbrpc")?)
            .map_err(|_| Status::new(errno::EREQUEST, "method index out of hulu_pbrpc's range"))?;
        let service_name = request.method.service_short_name();
        // Empty: the encoder reserves the head's exact size, so `freeze` needs no allocation
        // of its own (it makes one when the buffer has room to spare).
        let mut head = BytesMut::new();
        encode_request_head(
            &mut head,
            &RequestHead {
                service_name,
                method_index,
                compress_type: payload.compress_type.as_wire(),
                correlation_id: request.correlation_id as i64,
                log_id: request.log_id,
                message_len: payload.message.len(),
                attachment_len: payload.attachment.len(),
                credential: request.credential,
            },
        );
        Ok(OutFrame {
            head: head.freeze(),
            payload: payload.message.clone(),
            attachment: payload.attachment.clone(),
        })
    }

    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError> {
        let Some(frame) = decode_frame(buf, max_body_size)? else {
            return Ok(None);
        };
        let meta = HuluRpcResponseMeta::decode(frame.meta)
            .map_err(|e| ParseError::new(format!("fail to parse HuluRpcResponseMeta: {e}")))?;
        let id = meta.correlation_id.unwrap_or(0) as u64;
        let code = meta.error_code.unwrap_or(0);
        if code != 0 {
            let text = meta.error_text.as_deref().unwrap_or_default();
            return Ok(Some(IncomingResponse::error(
                id,
                Status::from_server_text(code, text),
            )));
        }
        let wire = meta.compress_type.unwrap_or(0);
        let Some(compress_type) = CompressType::from_wire(wire) else {
            return Ok(Some(IncomingResponse::error(
                id,
                Status::new(
                    errno::ERESPONSE,
                    format!("unsupported compress_type={wire} in response"),
                ),
            )));
        };
        let (message, attachment) = split_body(frame.body, meta.user_message_size);
        Ok(Some(IncomingResponse::ok(
            id,
            Payload {
                message,
                attachment,
                compress_type,
            },
        )))
    }
}

impl ServerCodec for HuluPbrpc {
    fn name(&self) -> &'static str {
        "hulu_pbrpc"
    }

    fn detect(&self, prefix: &[u8]) -> Detection {
        Detection::by_magic(prefix, MAGIC)
    }

    fn decode_request(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingRequest>, ParseError> {
        let Some(frame) = decode_frame(buf, max_body_size)? else {
            return Ok(None);
        };
        let meta = HuluRpcRequestMeta::decode(frame.meta)
            .map_err(|e| ParseError::new(format!("fail to parse HuluRpcRequestMeta: {e}")))?;
        let mut rejected = None;
        let wire = meta.compress_type.unwrap_or(0);
        let compress_type = CompressType::from_wire(wire).unwrap_or_else(|| {
            rejected = Some(Status::new(
                errno::EREQUEST,
                format!("unsupported compress_type={wire}"),
            ));
            CompressType::None
        });
        // A negative index names no method; kept as it came, for the error text.
        let method = match usize::try_from(meta.method_index) {
            Ok(index) => MethodRef::Index(index),
            Err(_) => MethodRef::Name(meta.method_index.to_string()),
        };
        let (message, attachment) = split_body(frame.body, meta.user_message_size);
        let mut request = IncomingRequest::new(
            ReplyTo {
                correlation_id: meta.correlation_id.unwrap_or(0) as u64,
                context: Bytes::new(),
                stream: None,
            },
            meta.service_name,
            method,
            Payload {
                message,
                attachment,
                compress_type,
            },
        );
        request.log_id = meta.log_id.unwrap_or(0);
        request.credential = meta.credential_data;
        request.rejected = rejected;
        Ok(Some(request))
    }

    fn encode_response(&self, response: OutgoingResponse<'_>) -> Result<OutFrame, Status> {
        let correlation_id = response.reply_to.correlation_id as i64;
        // Sized by the encoder, exactly (see `encode_request`).
        let mut head = BytesMut::new();
        match response.result {
            Ok(payload) => {
                check_sizes(payload.message.len(), payload.attachment.len())
                    .map_err(|e| Status::internal(format!("response {e}")))?;
                encode_response_head(
                    &mut head,
                    correlation_id,
                    payload.compress_type.as_wire(),
                    payload.message.len(),
                    payload.attachment.len(),
                    None,
                );
                Ok(OutFrame {
                    head: head.freeze(),
                    payload: payload.message,
                    attachment: payload.attachment,
                })
            }
            Err(status) => {
                let text = response.error_text(status);
                encode_response_head(
                    &mut head,
                    correlation_id,
                    0,
                    0,
                    0,
                    Some((status.code(), text)),
                );
                Ok(OutFrame::whole(head.freeze()))
            }
        }
    }

    fn method_not_found(&self, service: &str, method: &MethodRef) -> Option<Status> {
        let index = match method {
            MethodRef::Index(i) => i.to_string(),
            MethodRef::Name(name) => name.clone(),
        };
        Some(Status::new(
            errno::ENOMETHOD,
            format!("Fail to find method={index} of service={service}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_request_head_matches_the_prost_encoding() {
        for (attachment_len, credential) in [(0, None), (3, None), (0, Some(&b"user:pw"[..]))] {
            for (correlation_id, log_id) in [
                (4294967298, Some(0)),
                (-1, Some(i64::MAX)),
                (0, Some(-7)),
                (5, None),
            ] {
                let head = RequestHead {
                    service_name: "EchoService",
                    method_index: 2,
                    compress_type: 1,
                    correlation_id,
                    log_id,
                    message_len: 13,
                    attachment_len,
                    credential,
                };
                let mut fast = BytesMut::new();
                encode_request_head(&mut fast, &head);
                let meta = HuluRpcRequestMeta {
                    service_name: "EchoService".into(),
                    method_index: 2,
                    compress_type: Some(1),
                    correlation_id: Some(correlation_id),
                    log_id,
                    user_message_size: (attachment_len > 0).then_some(13),
                    credential_data: credential.map(Bytes::copy_from_slice),
                    ..Default::default()
                };
                let encoded = meta.encode_to_vec();
                assert_eq!(&fast[HEADER_LEN..], &encoded[..], "{head:?}");
                assert_eq!(le_u32(&fast, 8) as usize, encoded.len());
                assert_eq!(
                    le_u32(&fast, 4) as usize,
                    encoded.len() + 13 + attachment_len
                );
            }
        }
    }

    #[test]
    fn bad_frames_are_parse_errors() {
        let mut buf = BytesMut::from(&b"HULX"[..]);
        assert!(decode_frame(&mut buf, 1024).is_err());
        let mut buf = BytesMut::from(&b"HU"[..]);
        assert!(decode_frame(&mut buf, 1024).unwrap().is_none());
        let mut too_big = BytesMut::from(&b"HULU"[..]);
        too_big.put_u32_le(2048);
        too_big.put_u32_le(0);
        assert!(decode_frame(&mut too_big, 1024).is_err());
        let mut meta_over_body = BytesMut::from(&b"HULU"[..]);
        meta_over_body.put_u32_le(4);
        meta_over_body.put_u32_le(5);
        assert!(decode_frame(&mut meta_over_body, 1024).is_err());
    }

    #[test]
    fn the_message_size_splits_off_the_attachment_as_brpc_does() {
        let body = Bytes::from_static(b"messageattach");
        assert_eq!(
            split_body(body.clone(), Some(7)),
            (
                Bytes::from_static(b"message"),
                Bytes::from_static(b"attach")
            )
        );
        for size in [None, Some(13), Some(99), Some(-1)] {
            assert_eq!(split_body(body.clone(), size), (body.clone(), Bytes::new()));
        }
    }
}
