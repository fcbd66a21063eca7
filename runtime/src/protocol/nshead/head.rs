//! The 36-byte nshead header, cutting nshead messages off a byte stream, and what every
//! nshead client shares.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::protocol::cut::{cut_frame, le_u32};
use crate::protocol::{ConnectionType, OutFrame, ParseError, Payload};
use crate::{errno, Status};

/// `nshead_t.magic_num`, at offset 24 of every header.
pub const MAGIC: u32 = 0xfb70_9394;
/// Header length.
pub const HEADER_LEN: usize = 36;
/// Where the magic number sits in the header.
const MAGIC_OFFSET: usize = 24;

/// brpc's `nshead_t`: a packed C struct, every integer little-endian (host order).
///
/// ```
/// use brisk::protocol::nshead::NsheadHead;
/// let head = NsheadHead { id: 0x1234, log_id: 7, ..NsheadHead::default() }.with_provider("wirecap");
/// let mut bytes = bytes::BytesMut::new();
/// head.encode(&mut bytes, 11);
/// assert_eq!(bytes.len(), 36);
/// let back = NsheadHead::parse(&bytes).unwrap();
/// assert_eq!((back.id, back.log_id, back.body_len), (0x1234, 7, 11));
/// assert_eq!(back.provider(), b"wirecap");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsheadHead {
    /// `id`.
    pub id: u16,
    /// `version`.
    pub version: u16,
    /// `log_id`.
    pub log_id: u32,
    /// `provider`: 16 bytes, NUL-padded.
    pub provider: [u8; 16],
    /// `magic_num`: [`MAGIC`] in a valid header.
    pub magic_num: u32,
    /// `reserved` (nova_pbrpc puts the method index here).
    pub reserved: u32,
    /// `body_len`: the bytes of body after the header.
    pub body_len: u32,
}

impl Default for NsheadHead {
    /// An all-zero header with the magic number set, as brpc's clients start from.
    fn default() -> Self {
        NsheadHead {
            id: 0,
            version: 0,
            log_id: 0,
            provider: [0; 16],
            magic_num: MAGIC,
            reserved: 0,
            body_len: 0,
        }
    }
}

impl NsheadHead {
    /// Decodes the first 36 bytes of `bytes`; `None` if there are fewer.
    pub fn parse(bytes: &[u8]) -> Option<NsheadHead> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let mut provider = [0; 16];
        provider.copy_from_slice(&bytes[8..24]);
        Some(NsheadHead {
            id: u16::from_le_bytes([bytes[0], bytes[1]]),
            version: u16::from_le_bytes([bytes[2], bytes[3]]),
            log_id: le_u32(bytes, 4),
            provider,
            magic_num: le_u32(bytes, MAGIC_OFFSET),
            reserved: le_u32(bytes, 28),
            body_len: le_u32(bytes, 32),
        })
    }

    /// Writes the header with `magic_num` set to [`MAGIC`] and `body_len` to `body_len`, as
    /// brpc does with every header it sends.
    pub fn encode(&self, dst: &mut BytesMut, body_len: u32) {
        dst.reserve(HEADER_LEN);
        dst.put_u16_le(self.id);
        dst.put_u16_le(self.version);
        dst.put_u32_le(self.log_id);
        dst.put_slice(&self.provider);
        dst.put_u32_le(MAGIC);
        dst.put_u32_le(self.reserved);
        dst.put_u32_le(body_len);
    }

    /// The provider up to its first NUL.
    pub fn provider(&self) -> &[u8] {
        let end = self.provider.iter().position(|&b| b == 0).unwrap_or(16);
        &self.provider[..end]
    }

    /// The header with `provider` set (cut to 16 bytes, NUL-padded).
    pub fn with_provider(mut self, provider: &str) -> Self {
        self.provider = [0; 16];
        let n = provider.len().min(16);
        self.provider[..n].copy_from_slice(&provider.as_bytes()[..n]);
        self
    }
}

/// A message of `head` (its `body_len` set to the body's) and `body`, without copying the body;
/// `None` for a body longer than `body_len` can say.
pub(crate) fn message_frame(head: &NsheadHead, body: Bytes) -> Option<OutFrame> {
    let body_len = u32::try_from(body.len()).ok()?;
    let mut frame = BytesMut::with_capacity(HEADER_LEN);
    head.encode(&mut frame, body_len);
    Some(OutFrame {
        head: frame.freeze(),
        payload: body,
        attachment: Bytes::new(),
    })
}

/// Whether `prefix` starts an nshead message: the magic number at offset 24.
pub(crate) fn starts_message(prefix: &[u8]) -> crate::protocol::Detection {
    use crate::protocol::Detection;
    if prefix.len() < MAGIC_OFFSET + 4 {
        Detection::NeedMore
    } else if le_u32(prefix, MAGIC_OFFSET) == MAGIC {
        Detection::Yes
    } else {
        Detection::No
    }
}

/// Cuts the next message off `buf`: its header and its whole bytes (header included).
pub(crate) fn decode_message(
    buf: &mut BytesMut,
    max_body_size: usize,
) -> Result<Option<(NsheadHead, Bytes)>, ParseError> {
    let Some(head) = NsheadHead::parse(buf) else {
        if buf.len() >= MAGIC_OFFSET + 4 && le_u32(buf, MAGIC_OFFSET) != MAGIC {
            return Err(bad_magic(le_u32(buf, MAGIC_OFFSET)));
        }
        return Ok(None);
    };
    if head.magic_num != MAGIC {
        return Err(bad_magic(head.magic_num));
    }
    let body_len = head.body_len as usize;
    if body_len > max_body_size {
        return Err(ParseError::new(format!(
            "body_len={body_len} is bigger than max_body_size={max_body_size}"
        )));
    }
    let frame_len = body_len
        .checked_add(HEADER_LEN)
        .ok_or_else(|| ParseError::new(format!("body_len={body_len} is too large")))?;
    Ok(cut_frame(buf, frame_len).map(|frame| (head, frame)))
}

fn bad_magic(magic: u32) -> ParseError {
    ParseError::new(format!(
        "not an nshead message (magic_num {magic:#010x}, not {MAGIC:#010x})"
    ))
}

/// The body of a whole message.
pub(crate) fn body(mut message: Bytes) -> Bytes {
    message.advance(HEADER_LEN.min(message.len()));
    message
}

/// The connection types of protocols without a correlation id: `pooled` first.
pub(crate) const POOLED_OR_SHORT: &[ConnectionType] =
    &[ConnectionType::Pooled, ConnectionType::Short];

/// EREQUEST for an attachment, which no nshead protocol can carry.
pub(crate) fn refuse_attachment(protocol: &str, payload: &Payload) -> Result<(), Status> {
    if payload.attachment.is_empty() {
        Ok(())
    } else {
        Err(Status::new(
            errno::EREQUEST,
            format!("{protocol} cannot carry an attachment"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Detection;

    #[test]
    fn the_magic_at_offset_24_tells_nshead() {
        let mut bytes = BytesMut::new();
        NsheadHead::default().encode(&mut bytes, 0);
        assert_eq!(starts_message(&bytes), Detection::Yes);
        assert_eq!(starts_message(&bytes[..27]), Detection::NeedMore);
        assert_eq!(starts_message(&[0u8; 28]), Detection::No);
    }

    #[test]
    fn bad_headers_are_parse_errors() {
        let mut bytes = BytesMut::new();
        NsheadHead::default().encode(&mut bytes, 100);
        let mut short = BytesMut::from(&bytes[..]);
        assert!(
            decode_message(&mut short, 1024).unwrap().is_none(),
            "body missing"
        );
        assert!(
            decode_message(&mut BytesMut::from(&bytes[..]), 99).is_err(),
            "too big"
        );
        let mut bad = BytesMut::from(&bytes[..30]);
        bad[25] ^= 0xff;
        assert!(decode_message(&mut bad, 1024).is_err(), "bad magic");
    }
}
