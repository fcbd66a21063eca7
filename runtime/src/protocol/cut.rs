//! Cutting whole frames off a read buffer, for every framed codec.

use bytes::{Bytes, BytesMut};

/// Most buffer space reserved at once for a frame still arriving: a header alone must not make
/// a reader allocate `max_body_size`.
const MAX_RESERVE: usize = 1024 * 1024;

/// The first `frame_len` bytes of `buf`, cut off without copying; `None` (after reserving room
/// for the rest, up to 1 MiB ahead of what arrived) while they have not all arrived.
pub(crate) fn cut_frame(buf: &mut BytesMut, frame_len: usize) -> Option<Bytes> {
    if buf.len() < frame_len {
        buf.reserve((frame_len - buf.len()).min(MAX_RESERVE));
        return None;
    }
    Some(buf.split_to(frame_len).freeze())
}

/// The little-endian `u32` at `at` (hulu, sofa and nshead write their sizes in host order,
/// little-endian on the machines brpc runs on).
pub(crate) fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The little-endian `u64` at `at`.
pub(crate) fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_whole_frames() {
        let mut buf = BytesMut::from(&b"abcdef"[..]);
        assert_eq!(cut_frame(&mut buf, 8), None);
        assert!(buf.capacity() >= 8);
        assert_eq!(cut_frame(&mut buf, 4).as_deref(), Some(&b"abcd"[..]));
        assert_eq!(&buf[..], b"ef");
        assert_eq!(le_u32(b"\x01\x02\x00\x00", 0), 0x201);
        assert_eq!(le_u64(b"x\x01\0\0\0\0\0\0\x01", 1), 1 | 1 << 56);
    }
}
