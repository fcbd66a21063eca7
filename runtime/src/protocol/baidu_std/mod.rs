//! baidu_std, brpc's default protocol, byte-compatible with brpc 1.17.
//!
//! ```text
//! | "PRPC" | body_size: u32 BE | meta_size: u32 BE | RpcMeta | payload | attachment |
//!   body_size = meta_size + payload + attachment; attachment size is RpcMeta.attachment_size
//! ```
//! [`decode_frame`] cuts frames out of a read buffer without copying; [`encode_head`] writes the
//! header and meta in front of a payload; [`request_meta`] and [`response_meta`] build the metas
//! exactly as brpc does (same fields, same order), so Brisk's bytes match brpc's.

mod frame;
mod meta;

pub use frame::{decode_frame, encode_head, Frame, FrameError, HEADER_LEN, MAGIC};
pub use meta::{ChunkInfo, RpcMeta, RpcRequestMeta, RpcResponseMeta, StreamSettings};

use bytes::Bytes;

/// brpc's default `max_body_size`: 64 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024 * 1024;

/// Checks that a payload and attachment fit in one frame: the body size is a `u32` (with room
/// left for the meta) and `attachment_size` an `i32`. Returns why not.
pub fn check_sizes(payload_len: usize, attachment_len: usize) -> Result<(), String> {
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
