//! baidu_std, brpc's default protocol, byte-compatible with brpc 1.17.
//!
//! ```text
//! | "PRPC" | body_size: u32 BE | meta_size: u32 BE | RpcMeta | payload | attachment |
//!   body_size = meta_size + payload + attachment; attachment size is RpcMeta.attachment_size
//! ```
//! [`decode_frame`] cuts frames out of a read buffer without copying; [`encode_head`] writes the
//! header and meta in front of a payload; [`request_meta`] and [`response_meta`] build the metas
//! exactly as brpc does (same fields, same order), so Brisk's bytes match brpc's.

mod codec;
mod frame;
mod meta;

pub use codec::BaiduStd;
pub use frame::{decode_frame, encode_head, Frame, FrameError, HEADER_LEN, MAGIC};

use bytes::{BufMut, BytesMut};
pub use meta::{ChunkInfo, RpcMeta, RpcRequestMeta, RpcResponseMeta, StreamSettings};

use bytes::Bytes;

use crate::protocol::streaming_rpc::StreamSetup;
use crate::protocol::TraceIds;
pub use crate::protocol::DEFAULT_MAX_BODY_SIZE;

impl From<StreamSetup> for StreamSettings {
    fn from(setup: StreamSetup) -> Self {
        StreamSettings {
            stream_id: setup.stream_id,
            need_feedback: Some(setup.need_feedback),
            writable: Some(setup.writable),
            extra_stream_ids: Vec::new(),
        }
    }
}

impl From<&StreamSettings> for StreamSetup {
    /// brpc's reading: an absent flag is false.
    fn from(settings: &StreamSettings) -> Self {
        StreamSetup {
            stream_id: settings.stream_id,
            need_feedback: settings.need_feedback.unwrap_or(false),
            writable: settings.writable.unwrap_or(false),
        }
    }
}

/// Checks that a payload and attachment fit in one frame: the body size is a `u32` (with room
/// left for the meta) and `attachment_size` an `i32`. Returns why not.
fn check_sizes(payload_len: usize, attachment_len: usize) -> Result<(), String> {
    const META_ROOM: usize = 64 * 1024;
    if attachment_len > i32::MAX as usize {
        return Err(format!(
            "attachment of {attachment_len} bytes exceeds the protocol's {} bytes",
            i32::MAX
        ));
    }
    let body = payload_len.saturating_add(attachment_len);
    if body > u32::MAX as usize - META_ROOM {
        return Err(format!(
            "body of {body} bytes exceeds the protocol's 4 GiB frame limit"
        ));
    }
    Ok(())
}

/// The meta of a request, with the fields brpc's client always sets. `content_type` is brpc's
/// number for the payload's encoding: 0 protobuf, 1 JSON (see
/// [`MessageCodec::CONTENT_TYPE`](crate::codec::MessageCodec::CONTENT_TYPE)).
pub fn request_meta(
    service_name: &str,
    method_name: &str,
    log_id: i64,
    correlation_id: i64,
    compress_type: i32,
    attachment_size: usize,
    content_type: i32,
) -> RpcMeta {
    RpcMeta {
        request: Some(RpcRequestMeta {
            service_name: service_name.to_owned(),
            method_name: method_name.to_owned(),
            log_id: Some(log_id),
            ..Default::default()
        }),
        content_type: Some(content_type),
        ..common_meta(correlation_id, compress_type, attachment_size)
    }
}

/// What a client puts in a request's head, for [`encode_request_head`].
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// Full service name.
    pub service_name: &'a str,
    /// Method name.
    pub method_name: &'a str,
    /// `RpcRequestMeta.log_id`, sent when set.
    pub log_id: Option<i64>,
    /// `RpcRequestMeta.timeout_ms`: the time the call has left, sent when it has a deadline.
    pub timeout_ms: Option<i32>,
    /// `RpcMeta.correlation_id`.
    pub correlation_id: i64,
    /// `RpcMeta.compress_type`.
    pub compress_type: i32,
    /// `RpcMeta.content_type`.
    pub content_type: i32,
    /// Bytes of (compressed) payload that follow the head.
    pub payload_len: usize,
    /// Bytes of attachment after the payload.
    pub attachment_len: usize,
    /// `RpcMeta.authentication_data`: the credential on a connection's first request.
    pub authentication_data: Option<&'a [u8]>,
    /// `RpcMeta.user_fields`, in order.
    pub user_fields: &'a [(String, String)],
    /// `RpcMeta.stream_settings`: the caller's stream, when the call opens one.
    pub stream: Option<StreamSetup>,
    /// `RpcRequestMeta.trace_id`, `span_id` and `parent_span_id`: the call's rpcz span, when
    /// it is traced.
    pub trace: Option<TraceIds>,
}

/// Writes a request's header and meta, byte-identical to
/// `encode_head(dst, &request_meta(..), payload_len, attachment_len)` but without building an
/// [`RpcMeta`] (no allocation besides `dst`'s): the client's per-call fast path.
///
/// ```
/// use bytes::BytesMut;
/// use brisk::protocol::baidu_std::{encode_head, encode_request_head, request_meta, RequestHead};
/// let mut fast = BytesMut::new();
/// encode_request_head(&mut fast, &RequestHead {
///     service_name: "example.EchoService", method_name: "Echo", log_id: Some(0), timeout_ms: None,
///     correlation_id: 7, compress_type: 0, content_type: 0, payload_len: 13, attachment_len: 3,
///     authentication_data: None, user_fields: &[], stream: None, trace: None,
/// });
/// let mut slow = BytesMut::new();
/// encode_head(&mut slow, &request_meta("example.EchoService", "Echo", 0, 7, 0, 3, 0), 13, 3);
/// assert_eq!(fast, slow);
/// ```
pub fn encode_request_head(dst: &mut BytesMut, head: &RequestHead<'_>) {
    use prost::encoding::{encode_varint, encoded_len_varint};

    let string_field_len = |s: &str| 1 + encoded_len_varint(s.len() as u64) + s.len();
    let timeout_field_len = head
        .timeout_ms
        .map_or(0, |ms| 1 + encoded_len_varint(i64::from(ms) as u64));
    let log_id_field_len = head
        .log_id
        .map_or(0, |id| 1 + encoded_len_varint(id as u64));
    let trace_ids = head
        .trace
        .map(|ids| [ids.brpc_trace_id(), ids.span_id, ids.parent_span_id]);
    let trace_fields_len = trace_ids.map_or(0, |ids| {
        ids.iter().map(|id| 1 + encoded_len_varint(*id)).sum()
    });
    let request_len = string_field_len(head.service_name)
        + string_field_len(head.method_name)
        + log_id_field_len
        + trace_fields_len
        + timeout_field_len;
    let attachment_field_len = if head.attachment_len > 0 {
        1 + encoded_len_varint(head.attachment_len as u64)
    } else {
        0
    };
    let bytes_field_len = |n: usize| 1 + encoded_len_varint(n as u64) + n;
    let auth_field_len = head
        .authentication_data
        .map_or(0, |a| bytes_field_len(a.len()));
    let entry_len = |k: &str, v: &str| bytes_field_len(k.len()) + bytes_field_len(v.len());
    let user_fields_len: usize = head
        .user_fields
        .iter()
        .map(|(k, v)| bytes_field_len(entry_len(k, v)))
        .sum();
    let stream_len = head
        .stream
        .map_or(0, |s| 1 + encoded_len_varint(s.stream_id as u64) + 4);
    let stream_field_len = if head.stream.is_some() {
        1 + encoded_len_varint(stream_len as u64) + stream_len
    } else {
        0
    };
    let meta_len = 1
        + encoded_len_varint(request_len as u64)
        + request_len
        + 1
        + encoded_len_varint(i64::from(head.compress_type) as u64)
        + 1
        + encoded_len_varint(head.correlation_id as u64)
        + attachment_field_len
        + auth_field_len
        + stream_field_len
        + user_fields_len
        + 1
        + encoded_len_varint(i64::from(head.content_type) as u64)
        + 2 // checksum_type = 0
        + 2; // checksum_value = ""
    let body_size = meta_len + head.payload_len + head.attachment_len;
    dst.reserve(HEADER_LEN + meta_len);
    dst.put_slice(MAGIC);
    dst.put_u32(body_size as u32);
    dst.put_u32(meta_len as u32);
    // RpcMeta.request (1): service_name (1), method_name (2), log_id (3), trace_id (4),
    // span_id (5), parent_span_id (6), timeout_ms (8).
    dst.put_u8(0x0a);
    encode_varint(request_len as u64, dst);
    for (tag, s) in [(0x0a, head.service_name), (0x12, head.method_name)] {
        dst.put_u8(tag);
        encode_varint(s.len() as u64, dst);
        dst.put_slice(s.as_bytes());
    }
    if let Some(log_id) = head.log_id {
        dst.put_u8(0x18);
        encode_varint(log_id as u64, dst);
    }
    if let Some(ids) = trace_ids {
        for (tag, id) in [0x20, 0x28, 0x30].into_iter().zip(ids) {
            dst.put_u8(tag);
            encode_varint(id, dst);
        }
    }
    if let Some(ms) = head.timeout_ms {
        dst.put_u8(0x40);
        encode_varint(i64::from(ms) as u64, dst);
    }
    // compress_type (3), correlation_id (4), attachment_size (5) when set.
    dst.put_u8(0x18);
    encode_varint(i64::from(head.compress_type) as u64, dst);
    dst.put_u8(0x20);
    encode_varint(head.correlation_id as u64, dst);
    if head.attachment_len > 0 {
        dst.put_u8(0x28);
        encode_varint(head.attachment_len as u64, dst);
    }
    // authentication_data (7), stream_settings (8), user_fields (9) when set.
    if let Some(auth) = head.authentication_data {
        dst.put_u8(0x3a);
        encode_varint(auth.len() as u64, dst);
        dst.put_slice(auth);
    }
    if let Some(stream) = head.stream {
        // StreamSettings: stream_id (1), need_feedback (2), writable (3).
        dst.put_u8(0x42);
        encode_varint(stream_len as u64, dst);
        dst.put_u8(0x08);
        encode_varint(stream.stream_id as u64, dst);
        dst.put_slice(&[
            0x10,
            stream.need_feedback as u8,
            0x18,
            stream.writable as u8,
        ]);
    }
    for (key, value) in head.user_fields {
        dst.put_u8(0x4a);
        encode_varint(entry_len(key, value) as u64, dst);
        for (tag, s) in [(0x0a, key), (0x12, value)] {
            dst.put_u8(tag);
            encode_varint(s.len() as u64, dst);
            dst.put_slice(s.as_bytes());
        }
    }
    // content_type (10), checksum_type (11) = 0, checksum_value (12) = "".
    dst.put_u8(0x50);
    encode_varint(i64::from(head.content_type) as u64, dst);
    dst.put_slice(&[0x58, 0x00, 0x62, 0x00]);
}

/// The meta of a response; `error` is `(code, text)` for a failed call, which carries no payload.
pub fn response_meta(
    correlation_id: i64,
    compress_type: i32,
    attachment_size: usize,
    error: Option<(i32, String)>,
) -> RpcMeta {
    let (error_code, error_text) = match error {
        Some((code, text)) => (code, Some(text)),
        None => (0, None),
    };
    RpcMeta {
        response: Some(RpcResponseMeta {
            error_code: Some(error_code),
            error_text,
        }),
        ..common_meta(correlation_id, compress_type, attachment_size)
    }
}

fn common_meta(correlation_id: i64, compress_type: i32, attachment_size: usize) -> RpcMeta {
    RpcMeta {
        compress_type: Some(compress_type),
        correlation_id: Some(correlation_id),
        attachment_size: (attachment_size > 0).then_some(attachment_size as i32),
        content_type: Some(0),
        checksum_type: Some(0),
        checksum_value: Some(Bytes::new()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_request_head_matches_the_prost_encoding() {
        let names = [
            ("example.EchoService", "Echo"),
            ("", ""),
            ("a.B", &*"m".repeat(300)),
        ];
        for (service, method) in names {
            for (log_id, timeout_ms) in [
                (Some(0), None),
                (None, None),
                (Some(1), Some(100)),
                (Some(-1), Some(1)),
                (None, Some(7)),
                (Some(i64::MAX), Some(i32::MAX)),
            ] {
                let traces = [
                    None,
                    Some(TraceIds {
                        trace_id: 1,
                        span_id: 2,
                        parent_span_id: 0,
                    }),
                    Some(TraceIds {
                        trace_id: u128::MAX,
                        span_id: u64::MAX,
                        parent_span_id: 1 << 40,
                    }),
                ];
                for (correlation_id, trace) in [0, 4294967298, -5].into_iter().zip(traces) {
                    for (compress_type, content_type) in [(0, 0), (3, 1), (-1, 2)] {
                        for (payload_len, attachment_len) in [(0, 0), (13, 3), (5, 1 << 20)] {
                            let head = RequestHead {
                                service_name: service,
                                method_name: method,
                                log_id,
                                timeout_ms,
                                correlation_id,
                                compress_type,
                                content_type,
                                payload_len,
                                attachment_len,
                                authentication_data: None,
                                user_fields: &[],
                                stream: None,
                                trace,
                            };
                            let mut fast = BytesMut::new();
                            encode_request_head(&mut fast, &head);
                            let mut meta = request_meta(
                                service,
                                method,
                                log_id.unwrap_or_default(),
                                correlation_id,
                                compress_type,
                                attachment_len,
                                content_type,
                            );
                            if let Some(request) = meta.request.as_mut() {
                                request.timeout_ms = timeout_ms;
                                request.log_id = log_id;
                                if let Some(ids) = trace {
                                    request.trace_id = Some(ids.brpc_trace_id() as i64);
                                    request.span_id = Some(ids.span_id as i64);
                                    request.parent_span_id = Some(ids.parent_span_id as i64);
                                }
                            }
                            let mut slow = BytesMut::new();
                            encode_head(&mut slow, &meta, payload_len, attachment_len);
                            assert_eq!(fast, slow, "{head:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn stream_settings_encode_as_prost_does() {
        for stream_id in [0, 146, -1, i64::MAX] {
            for (need_feedback, writable) in [(true, false), (false, true)] {
                let stream = StreamSetup {
                    stream_id,
                    need_feedback,
                    writable,
                };
                let mut fast = BytesMut::new();
                encode_request_head(
                    &mut fast,
                    &RequestHead {
                        service_name: "example.EchoService",
                        method_name: "Echo",
                        log_id: None,
                        timeout_ms: None,
                        correlation_id: 4294967298,
                        compress_type: 0,
                        content_type: 0,
                        payload_len: 29,
                        attachment_len: 0,
                        authentication_data: Some(b"cred"),
                        user_fields: &[],
                        stream: Some(stream),
                        trace: None,
                    },
                );
                let mut meta = request_meta("example.EchoService", "Echo", 0, 4294967298, 0, 0, 0);
                if let Some(request) = meta.request.as_mut() {
                    request.log_id = None;
                }
                meta.authentication_data = Some(Bytes::from_static(b"cred"));
                meta.stream_settings = Some(stream.into());
                let mut slow = BytesMut::new();
                encode_head(&mut slow, &meta, 29, 0);
                assert_eq!(fast, slow, "{stream:?}");
            }
        }
    }

    #[test]
    fn credentials_and_user_fields_encode_as_prost_does() {
        let user_fields = [
            ("x-a".to_owned(), "1".to_owned()),
            ("k".to_owned(), "v".repeat(200)),
        ];
        for (auth, fields) in [
            (None, &user_fields[..]),
            (Some(&b""[..]), &[][..]),
            (Some(&b"alice:secret"[..]), &[][..]),
            (Some(&b"alice:secret"[..]), &user_fields[..]),
        ] {
            let head = RequestHead {
                service_name: "example.EchoService",
                method_name: "Echo",
                log_id: Some(3),
                timeout_ms: None,
                correlation_id: 9,
                compress_type: 0,
                content_type: 0,
                payload_len: 13,
                attachment_len: 0,
                authentication_data: auth,
                user_fields: fields,
                stream: None,
                trace: None,
            };
            let mut fast = BytesMut::new();
            encode_request_head(&mut fast, &head);
            let mut meta = request_meta("example.EchoService", "Echo", 3, 9, 0, 0, 0);
            meta.authentication_data = auth.map(Bytes::copy_from_slice);
            let mut slow = BytesMut::new();
            encode_head(&mut slow, &meta, 13, 0);
            // A map's entries have no order in prost: compare by decoding.
            let decoded = |b: &BytesMut| {
                let meta_len = u32::from_be_bytes(b[8..12].try_into().unwrap()) as usize;
                <RpcMeta as prost::Message>::decode(&b[12..12 + meta_len]).unwrap()
            };
            let mut expected = decoded(&slow);
            expected.user_fields = fields.iter().cloned().collect();
            assert_eq!(decoded(&fast), expected);
            if fields.is_empty() {
                assert_eq!(fast, slow, "byte-identical without user fields");
            }
        }
    }
}
