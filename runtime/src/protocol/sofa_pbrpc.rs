//! sofa_pbrpc, the protocol of Baidu's sofa-pbrpc, byte-compatible with brpc 1.17's.
//!
//! ```text
//! | "SOFA" | meta_size: u32 LE | body_size: u64 LE | message_size: u64 LE | SofaRpcMeta | message |
//!   message_size = meta_size + body_size (a frame where it is not is refused)
//! ```
//!
//! One meta type serves both directions; a method is named in full
//! (`example.EchoService.Echo`); sizes are little-endian. sofa-pbrpc has no log id and no
//! attachment: brpc drops attachments with a warning, and so does Brisk's server for a
//! response attachment, but Brisk's client refuses a request attachment with EREQUEST rather
//! than lose it silently. Its compression numbers are its own: 1 gzip, 2 zlib, 3 snappy.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;

use super::cut::{cut_frame, le_u32, le_u64};
use super::{
    ClientCodec, Detection, IncomingRequest, IncomingResponse, MethodRef, OutFrame,
    OutgoingRequest, OutgoingResponse, ParseError, Payload, ReplyTo, RequestParseFailure,
    ServerCodec,
};
use crate::{errno, CompressType, Status};

/// The 4 bytes that start every sofa_pbrpc frame.
pub const MAGIC: &[u8; 4] = b"SOFA";
/// Header length: magic, meta size, body size, message size.
pub const HEADER_LEN: usize = 24;

/// `SofaRpcMeta.type` of a request.
pub const REQUEST: i32 = 0;
/// `SofaRpcMeta.type` of a response.
pub const RESPONSE: i32 = 1;

/// `brpc.policy.SofaRpcMeta`, the meta of requests and responses alike.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SofaRpcMeta {
    /// [`REQUEST`] or [`RESPONSE`].
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    /// The call's id, echoed by the server.
    #[prost(uint64, required, tag = "2")]
    pub sequence_id: u64,
    /// Requests: the full method name, `package.Service.Method`.
    #[prost(string, optional, tag = "100")]
    pub method: Option<String>,
    /// Responses: whether the call failed (always sent).
    #[prost(bool, optional, tag = "200")]
    pub failed: Option<bool>,
    /// Responses: the brpc error code (always sent, 0 on success).
    #[prost(int32, optional, tag = "201")]
    pub error_code: Option<i32>,
    /// Responses: the error text, on failure.
    #[prost(string, optional, tag = "202")]
    pub reason: Option<String>,
    /// sofa's compression number (always sent).
    #[prost(int32, optional, tag = "300")]
    pub compress_type: Option<i32>,
    /// Never set by brpc.
    #[prost(int32, optional, tag = "301")]
    pub expected_response_compress_type: Option<i32>,
}

/// sofa's number for a compression: sofa's own for none, gzip, zlib, snappy and LZ4 (which
/// brpc refuses: only Brisk peers read it), and brpc's number for zstd, which sofa has none for.
pub fn sofa_compress_type(compress_type: CompressType) -> i32 {
    match compress_type {
        CompressType::None => 0,
        CompressType::Gzip => 1,
        CompressType::Zlib => 2,
        CompressType::Snappy => 3,
        CompressType::Lz4 => 4,
        CompressType::Zstd => CompressType::Zstd.as_wire(),
    }
}

/// The compression sofa's number `wire` names ([`sofa_compress_type`]'s inverse); `None` for
/// unknown numbers.
pub fn from_sofa_compress_type(wire: i32) -> Option<CompressType> {
    Some(match wire {
        0 => CompressType::None,
        1 => CompressType::Gzip,
        2 => CompressType::Zlib,
        3 => CompressType::Snappy,
        4 => CompressType::Lz4,
        w if w == CompressType::Zstd.as_wire() => CompressType::Zstd,
        _ => return None,
    })
}

/// sofa_pbrpc, `"sofa_pbrpc"`: client and server codec, registered by Brisk itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct SofaPbrpc;

/// Cuts the next frame off `buf`: its meta and message.
fn decode_frame(
    buf: &mut BytesMut,
    max_body_size: usize,
) -> Result<Option<(SofaRpcMeta, Bytes)>, ParseError> {
    let seen = buf.len().min(MAGIC.len());
    if buf[..seen] != MAGIC[..seen] {
        return Err(ParseError::new(format!(
            "not a sofa_pbrpc frame (starts with {:02x?})",
            &buf[..seen]
        )));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let meta_size = u64::from(le_u32(buf, 4));
    let body_size = le_u64(buf, 8);
    let message_size = le_u64(buf, 16);
    if meta_size.checked_add(body_size) != Some(message_size) {
        return Err(ParseError::new(format!(
            "message_size={message_size} != meta_size={meta_size} + body_size={body_size}"
        )));
    }
    let max = max_body_size as u64;
    if body_size > max || meta_size > max {
        return Err(ParseError::new(format!(
            "body_size={body_size} meta_size={meta_size} is bigger than max_body_size={max_body_size}"
        )));
    }
    let frame_len = usize::try_from(message_size)
        .ok()
        .and_then(|n| n.checked_add(HEADER_LEN))
        .ok_or_else(|| ParseError::new(format!("message_size={message_size} is too large")))?;
    let Some(mut frame) = cut_frame(buf, frame_len) else {
        return Ok(None);
    };
    frame.advance(HEADER_LEN);
    let meta_bytes = frame.split_to(meta_size as usize);
    let meta = SofaRpcMeta::decode(meta_bytes)
        .map_err(|e| ParseError::new(format!("fail to parse SofaRpcMeta: {e}")))?;
    Ok(Some((meta, frame)))
}

fn put_header(dst: &mut BytesMut, meta_len: usize, body_len: usize) {
    dst.put_slice(MAGIC);
    dst.put_u32_le(meta_len as u32);
    dst.put_u64_le(body_len as u64);
    dst.put_u64_le((meta_len + body_len) as u64);
}

/// Writes a request's header and meta for method `service.method`, byte-identical to the
/// prost encoding of the [`SofaRpcMeta`] brpc's client builds, without building one.
pub fn encode_request_head(
    dst: &mut BytesMut,
    sequence_id: u64,
    service: &str,
    method: &str,
    compress_type: i32,
    body_len: usize,
) {
    let name_len = service.len() + 1 + method.len();
    let meta_len = 2
        + 1
        + encoded_len_varint(sequence_id)
        + 2
        + encoded_len_varint(name_len as u64)
        + name_len
        + 2
        + encoded_len_varint(i64::from(compress_type) as u64);
    dst.reserve(HEADER_LEN + meta_len);
    put_header(dst, meta_len, body_len);
    dst.put_slice(&[0x08, REQUEST as u8, 0x10]);
    encode_varint(sequence_id, dst);
    dst.put_slice(&[0xa2, 0x06]);
    encode_varint(name_len as u64, dst);
    dst.put_slice(service.as_bytes());
    dst.put_u8(b'.');
    dst.put_slice(method.as_bytes());
    dst.put_slice(&[0xe0, 0x12]);
    encode_varint(i64::from(compress_type) as u64, dst);
}

/// A response's header and meta; `error` is `(code, text)` for a failure, which has no body.
pub fn encode_response_head(
    dst: &mut BytesMut,
    sequence_id: u64,
    compress_type: i32,
    body_len: usize,
    error: Option<(i32, String)>,
) {
    let (error_code, reason) = match error {
        Some((code, text)) => (code, Some(text)),
        None => (0, None),
    };
    let meta = SofaRpcMeta {
        r#type: RESPONSE,
        sequence_id,
        failed: Some(error_code != 0),
        error_code: Some(error_code),
        reason,
        compress_type: Some(compress_type),
        ..Default::default()
    };
    let meta_len = meta.encoded_len();
    dst.reserve(HEADER_LEN + meta_len);
    put_header(dst, meta_len, body_len);
    meta.encode_raw(dst);
}

impl ClientCodec for SofaPbrpc {
    fn name(&self) -> &'static str {
        "sofa_pbrpc"
    }

    fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, Status> {
        let payload = request.payload;
        if !payload.attachment.is_empty() {
            return Err(Status::new(
                errno::EREQUEST,
                "sofa_pbrpc cannot carry an attachment (brpc's client drops it with a warning; Brisk refuses the call instead)",
            ));
        }
        let (service, method) = (request.method.service(), request.method.method());
        // Empty: the encoder reserves the head's exact size, so `freeze` needs no allocation
        // of its own (it makes one when the buffer has room to spare).
        let mut head = BytesMut::new();
        encode_request_head(
            &mut head,
            request.correlation_id,
            service,
            method,
            sofa_compress_type(payload.compress_type),
            payload.message.len(),
        );
        Ok(OutFrame {
            head: head.freeze(),
            payload: payload.message.clone(),
            attachment: Bytes::new(),
        })
    }

    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError> {
        let Some((meta, message)) = decode_frame(buf, max_body_size)? else {
            return Ok(None);
        };
        if meta.r#type != RESPONSE {
            return Err(ParseError::new("sofa_pbrpc frame is not a response"));
        }
        let id = meta.sequence_id;
        let code = meta.error_code.unwrap_or(0);
        if meta.failed == Some(true) || code != 0 {
            let code = if code == 0 { errno::EINTERNAL } else { code };
            let text = meta.reason.as_deref().unwrap_or_default();
            return Ok(Some(IncomingResponse::error(
                id,
                Status::from_server_text(code, text),
            )));
        }
        let wire = meta.compress_type.unwrap_or(0);
        let Some(compress_type) = from_sofa_compress_type(wire) else {
            return Ok(Some(IncomingResponse::error(
                id,
                Status::new(
                    errno::ERESPONSE,
                    format!("unsupported sofa compress_type={wire} in response"),
                ),
            )));
        };
        Ok(Some(IncomingResponse::ok(
            id,
            Payload {
                message,
                attachment: Bytes::new(),
                compress_type,
            },
        )))
    }
}

impl ServerCodec for SofaPbrpc {
    fn name(&self) -> &'static str {
        "sofa_pbrpc"
    }

    fn detect(&self, prefix: &[u8]) -> Detection {
        Detection::by_magic(prefix, MAGIC)
    }

    fn decode_request(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingRequest>, ParseError> {
        let Some((meta, message)) = decode_frame(buf, max_body_size)? else {
            return Ok(None);
        };
        if meta.r#type != REQUEST {
            return Err(ParseError::new("sofa_pbrpc frame is not a request"));
        }
        let mut rejected = None;
        let wire = meta.compress_type.unwrap_or(0);
        let compress_type = from_sofa_compress_type(wire).unwrap_or_else(|| {
            rejected = Some(Status::new(
                errno::EREQUEST,
                format!("unsupported sofa compress_type={wire}"),
            ));
            CompressType::None
        });
        // `package.Service.Method`: the service is everything before the last dot.
        let full = meta.method.unwrap_or_default();
        let (service, method) = match full.rsplit_once('.') {
            Some((service, method)) => (service.to_owned(), method.to_owned()),
            None => (String::new(), full),
        };
        let mut request = IncomingRequest::new(
            ReplyTo {
                correlation_id: meta.sequence_id,
                context: Bytes::new(),
                stream: None,
            },
            service,
            MethodRef::Name(method),
            Payload {
                message,
                attachment: Bytes::new(),
                compress_type,
            },
        );
        request.rejected = rejected;
        Ok(Some(request))
    }

    fn encode_response(&self, response: OutgoingResponse<'_>) -> Result<OutFrame, Status> {
        let sequence_id = response.reply_to.correlation_id;
        // Sized by the encoder, exactly (see `encode_request`).
        let mut head = BytesMut::new();
        match response.result {
            Ok(payload) => {
                if !payload.attachment.is_empty() {
                    tracing::warn!("sofa_pbrpc cannot carry an attachment: the response's {} bytes of attachment are not sent", payload.attachment.len());
                }
                encode_response_head(
                    &mut head,
                    sequence_id,
                    sofa_compress_type(payload.compress_type),
                    payload.message.len(),
                    None,
                );
                Ok(OutFrame {
                    head: head.freeze(),
                    payload: payload.message,
                    attachment: Bytes::new(),
                })
            }
            Err(status) => {
                let text = response.error_text(status);
                encode_response_head(&mut head, sequence_id, 0, 0, Some((status.code(), text)));
                Ok(OutFrame::whole(head.freeze()))
            }
        }
    }

    fn method_not_found(&self, service: &str, method: &MethodRef) -> Option<Status> {
        Some(Status::new(
            errno::ENOMETHOD,
            format!("Fail to find method={service}.{method}"),
        ))
    }

    fn request_parse_failure(&self, failure: &RequestParseFailure<'_>) -> Status {
        // brpc prints its own number of the compression here, not sofa's.
        Status::new(
            errno::EREQUEST,
            format!(
                "Fail to parse request message, CompressType={}, size={}",
                failure.compress_type.as_wire(),
                failure.size
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_request_head_matches_the_prost_encoding() {
        for sequence_id in [0, 4294967298, u64::MAX] {
            for compress_type in [0, 3] {
                let mut fast = BytesMut::new();
                encode_request_head(
                    &mut fast,
                    sequence_id,
                    "example.EchoService",
                    "Echo",
                    compress_type,
                    13,
                );
                let meta = SofaRpcMeta {
                    r#type: REQUEST,
                    sequence_id,
                    method: Some("example.EchoService.Echo".into()),
                    compress_type: Some(compress_type),
                    ..Default::default()
                };
                let encoded = meta.encode_to_vec();
                assert_eq!(&fast[HEADER_LEN..], &encoded[..]);
                assert_eq!(le_u32(&fast, 4) as usize, encoded.len());
                assert_eq!(le_u64(&fast, 8), 13);
                assert_eq!(le_u64(&fast, 16) as usize, encoded.len() + 13);
            }
        }
    }

    #[test]
    fn inconsistent_sizes_are_parse_errors() {
        let header = |meta: u32, body: u64, total: u64| {
            let mut buf = BytesMut::from(&MAGIC[..]);
            buf.put_u32_le(meta);
            buf.put_u64_le(body);
            buf.put_u64_le(total);
            buf
        };
        assert!(decode_frame(&mut header(1, 2, 4), 1024).is_err(), "sum");
        assert!(
            decode_frame(&mut header(1, u64::MAX, 0), 1024).is_err(),
            "overflow"
        );
        assert!(
            decode_frame(&mut header(0, 2048, 2048), 1024).is_err(),
            "too big"
        );
        assert!(
            decode_frame(&mut header(1, 2, 3), 1024).unwrap().is_none(),
            "waits"
        );
        // "No limit" does not let a claimed size overflow the frame's length.
        let near_max = u64::MAX - 10;
        assert!(decode_frame(&mut header(0, near_max, near_max), usize::MAX).is_err());
        assert!(decode_frame(&mut BytesMut::from(&b"SOF"[..]), 1024)
            .unwrap()
            .is_none());
        assert!(decode_frame(&mut BytesMut::from(&b"SOFT"[..]), 1024).is_err());
    }

    #[test]
    fn compression_numbers_are_sofas() {
        for ct in [
            CompressType::None,
            CompressType::Gzip,
            CompressType::Zlib,
            CompressType::Snappy,
            CompressType::Lz4,
            CompressType::Zstd,
        ] {
            assert_eq!(from_sofa_compress_type(sofa_compress_type(ct)), Some(ct));
        }
        assert_eq!(sofa_compress_type(CompressType::Snappy), 3);
        assert_eq!(sofa_compress_type(CompressType::Lz4), 4);
        assert_eq!(from_sofa_compress_type(6), None);
    }
}
