//! Cutting baidu_std frames out of a byte stream, and writing their heads.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use super::RpcMeta;

/// The 4-byte magic that starts every baidu_std frame.
pub const MAGIC: &[u8; 4] = b"PRPC";
/// Header length: magic, body size, meta size.
pub const HEADER_LEN: usize = 12;

/// Most buffer space reserved at once for a frame still arriving.
const MAX_RESERVE: usize = 1024 * 1024;

/// A decoded frame: its meta, and the body after the meta (payload then attachment).
#[derive(Debug, Clone)]
pub struct Frame {
    /// The decoded meta.
    pub meta: RpcMeta,
    /// Payload followed by `meta.attachment_size` bytes of attachment (zero-copy view of the
    /// read buffer).
    pub body: Bytes,
}

impl Frame {
    /// Splits the body into `(payload, attachment)` by `attachment_size`, or returns why it cannot.
    pub fn split_body(&self) -> Result<(Bytes, Bytes), String> {
        let attachment_size = self.meta.attachment_size.unwrap_or(0);
        let attachment_size = usize::try_from(attachment_size)
            .map_err(|_| format!("negative attachment_size={attachment_size}"))?;
        if attachment_size > self.body.len() {
            return Err(format!(
                "attachment_size={attachment_size} is larger than the {} bytes after the meta",
                self.body.len()
            ));
        }
        let payload_len = self.body.len() - attachment_size;
        Ok((
            self.body.slice(..payload_len),
            self.body.slice(payload_len..),
        ))
    }
}

/// Why a byte stream is not (or no longer) valid baidu_std. Each one closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The stream does not start with `PRPC`.
    BadMagic([u8; 4]),
    /// `body_size` exceeds the configured `max_body_size`.
    TooBig {
        /// The declared body size.
        body_size: usize,
        /// The limit in force.
        max_body_size: usize,
    },
    /// `meta_size` exceeds `body_size`.
    MetaTooBig {
        /// The declared meta size.
        meta_size: usize,
        /// The declared body size.
        body_size: usize,
    },
    /// The meta is not a valid `RpcMeta`.
    BadMeta(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadMagic(m) => write!(f, "not a baidu_std frame (starts with {m:02x?})"),
            FrameError::TooBig {
                body_size,
                max_body_size,
            } => write!(
                f,
                "body_size={body_size} is bigger than max_body_size={max_body_size}"
            ),
            FrameError::MetaTooBig {
                meta_size,
                body_size,
            } => write!(
                f,
                "meta_size={meta_size} is bigger than body_size={body_size}"
            ),
            FrameError::BadMeta(e) => write!(f, "fail to parse RpcMeta: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Cuts the next frame off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed (after reserving room for the whole frame
/// once its size is known), `Ok(Some(frame))` for a complete frame, and `Err` when the stream is
/// not valid baidu_std: the caller must then close the connection.
///
/// ```
/// use bytes::BytesMut;
/// use brisk::protocol::baidu_std::{decode_frame, FrameError};
/// let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
/// assert!(matches!(decode_frame(&mut buf, 1 << 20), Err(FrameError::BadMagic(_))));
/// let mut buf = BytesMut::from(&b"PR"[..]);
/// assert!(decode_frame(&mut buf, 1 << 20).unwrap().is_none());
/// ```
pub fn decode_frame(buf: &mut BytesMut, max_body_size: usize) -> Result<Option<Frame>, FrameError> {
    let prefix = buf.len().min(MAGIC.len());
    if buf[..prefix] != MAGIC[..prefix] {
        let mut seen = [0u8; 4];
        seen[..prefix].copy_from_slice(&buf[..prefix]);
        return Err(FrameError::BadMagic(seen));
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let body_size = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    let meta_size = u32::from_be_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
    if body_size > max_body_size {
        return Err(FrameError::TooBig {
            body_size,
            max_body_size,
        });
    }
    if meta_size > body_size {
        return Err(FrameError::MetaTooBig {
            meta_size,
            body_size,
        });
    }
    let frame_len = HEADER_LEN + body_size;
    if buf.len() < frame_len {
        // Room for the rest of the frame, but never more than MAX_RESERVE ahead of the bytes
        // that actually arrived: a header alone must not make us allocate max_body_size.
        buf.reserve((frame_len - buf.len()).min(MAX_RESERVE));
        return Ok(None);
    }
    let mut frame = buf.split_to(frame_len).freeze();
    frame.advance(HEADER_LEN);
    let meta_bytes = frame.split_to(meta_size);
    let meta = RpcMeta::decode(meta_bytes).map_err(|e| FrameError::BadMeta(e.to_string()))?;
    Ok(Some(Frame { meta, body: frame }))
}

/// Writes the header and `meta` of a frame whose payload and attachment follow separately.
///
/// ```
/// use bytes::BytesMut;
/// use brisk::protocol::baidu_std::{decode_frame, encode_head, request_meta};
/// let meta = request_meta("example.EchoService", "Echo", 0, 7, 0, 0, 0);
/// let mut buf = BytesMut::new();
/// encode_head(&mut buf, &meta, 2, 0);
/// buf.extend_from_slice(b"\x0a\x00");
/// let frame = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
/// assert_eq!(frame.meta.correlation_id, Some(7));
/// assert_eq!(&frame.body[..], b"\x0a\x00");
/// ```
pub fn encode_head(dst: &mut BytesMut, meta: &RpcMeta, payload_len: usize, attachment_len: usize) {
    let meta_len = meta.encoded_len();
    let body_size = meta_len + payload_len + attachment_len;
    dst.reserve(HEADER_LEN + meta_len);
    dst.put_slice(MAGIC);
    dst.put_u32(body_size as u32);
    dst.put_u32(meta_len as u32);
    meta.encode_raw(dst);
}

#[cfg(test)]
mod tests {
    use super::super::{request_meta, response_meta};
    use super::*;

    fn frame_bytes(meta: &RpcMeta, payload: &[u8], attachment: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_head(&mut buf, meta, payload.len(), attachment.len());
        buf.extend_from_slice(payload);
        buf.extend_from_slice(attachment);
        buf
    }

    #[test]
    fn round_trip_with_attachment() {
        let meta = request_meta("example.EchoService", "Echo", 42, 9, 0, 3, 0);
        let mut buf = frame_bytes(&meta, b"payload", b"att");
        let frame = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!(frame.meta, meta);
        let (payload, attachment) = frame.split_body().unwrap();
        assert_eq!(&payload[..], b"payload");
        assert_eq!(&attachment[..], b"att");
    }

    #[test]
    fn every_prefix_asks_for_more_and_two_frames_come_out_in_order() {
        let a = frame_bytes(&response_meta(1, 0, 0, None), b"one", b"");
        let b = frame_bytes(&response_meta(2, 0, 0, Some((1002, "x".into()))), b"", b"");
        let mut all = a.clone();
        all.extend_from_slice(&b);
        for cut in 0..a.len() {
            let mut partial = BytesMut::from(&all[..cut]);
            assert!(
                decode_frame(&mut partial, 1 << 20).unwrap().is_none(),
                "cut {cut}"
            );
        }
        let mut buf = all;
        let first = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
        let second = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(first.meta.correlation_id, Some(1));
        assert_eq!(second.meta.response.unwrap().error_code, Some(1002));
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_what_brpc_rejects() {
        let mut big = BytesMut::from(&b"PRPC\x04\x00\x00\x01\x00\x00\x00\x00"[..]);
        assert!(matches!(
            decode_frame(&mut big, 64 << 20),
            Err(FrameError::TooBig { .. })
        ));
        let mut meta_too_big = BytesMut::from(&b"PRPC\x00\x00\x00\x02\x00\x00\x00\x05xx"[..]);
        assert!(matches!(
            decode_frame(&mut meta_too_big, 64 << 20),
            Err(FrameError::MetaTooBig { .. })
        ));
        let mut garbage_meta = BytesMut::from(&b"PRPC\x00\x00\x00\x02\x00\x00\x00\x02\xff\xff"[..]);
        assert!(matches!(
            decode_frame(&mut garbage_meta, 64 << 20),
            Err(FrameError::BadMeta(_))
        ));
        let mut wrong = BytesMut::from(&b"PRPX"[..]);
        assert!(matches!(
            decode_frame(&mut wrong, 64 << 20),
            Err(FrameError::BadMagic(_))
        ));
    }

    #[test]
    fn a_header_alone_reserves_a_bounded_amount() {
        let mut buf = BytesMut::from(&b"PRPC\x03\xff\xff\xff\x00\x00\x00\x00"[..]);
        assert!(decode_frame(&mut buf, 64 << 20).unwrap().is_none());
        assert!(
            buf.capacity() <= HEADER_LEN + MAX_RESERVE,
            "{}",
            buf.capacity()
        );
    }

    #[test]
    fn attachment_larger_than_body_is_a_per_call_error() {
        let mut meta = response_meta(1, 0, 0, None);
        meta.attachment_size = Some(100);
        let mut buf = frame_bytes(&meta, b"abc", b"");
        let frame = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
        assert!(frame
            .split_body()
            .unwrap_err()
            .contains("attachment_size=100"));
        meta.attachment_size = Some(-1);
        let mut buf = frame_bytes(&meta, b"abc", b"");
        let frame = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
        assert!(frame.split_body().is_err());
    }
}
