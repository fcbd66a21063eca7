//! The 24-byte header of memcached's binary protocol, both ways.
//!
//! ```text
//! | magic: u8 | opcode: u8 | key_len: u16 | extras_len: u8 | data_type: u8 |
//! | vbucket (request) / status (response): u16 | body_len: u32 | opaque: u32 | cas: u64 |
//! ```
//! Integers are big-endian; the body is extras, key, value.

use crate::protocol::ParseError;

/// Header length.
pub(crate) const HEADER_LEN: usize = 24;
/// The first byte of a request.
pub(crate) const MAGIC_REQUEST: u8 = 0x80;
/// The first byte of a response.
pub(crate) const MAGIC_RESPONSE: u8 = 0x81;
/// memcached's longest key.
pub(crate) const MAX_KEY_LEN: usize = 250;

/// The operations Brisk's requests carry (brpc's `MC_BINARY_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Opcode {
    Get = 0x00,
    Set = 0x01,
    Add = 0x02,
    Replace = 0x03,
    Delete = 0x04,
    Increment = 0x05,
    Decrement = 0x06,
    Flush = 0x08,
    Version = 0x0b,
    Append = 0x0e,
    Prepend = 0x0f,
    Touch = 0x1c,
}

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) magic: u8,
    pub(crate) opcode: u8,
    pub(crate) key_len: u16,
    pub(crate) extras_len: u8,
    pub(crate) status: u16,
    pub(crate) body_len: u32,
    pub(crate) cas: u64,
}

impl Header {
    /// The header at the start of `bytes`, if it is all there.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Header> {
        let b = bytes.get(..HEADER_LEN)?;
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Some(Header {
            magic: b[0],
            opcode: b[1],
            key_len: u16_at(2),
            extras_len: b[4],
            status: u16_at(6),
            body_len: u32_at(8),
            cas: u64::from_be_bytes(b[16..24].try_into().expect("8 bytes")),
        })
    }
}

/// The length of the message at the start of `buf` (header and body), once it has all
/// arrived; `magic` is the first byte it must have.
pub(crate) fn message_len(
    buf: &[u8],
    magic: u8,
    max_body_size: usize,
) -> Result<Option<usize>, ParseError> {
    if let Some(&first) = buf.first() {
        if first != magic {
            return Err(ParseError::new(format!(
                "magic {first:#04x} where {magic:#04x} was expected"
            )));
        }
    }
    let Some(header) = Header::parse(buf) else {
        return Ok(None);
    };
    let body = header.body_len as usize;
    if body > max_body_size {
        return Err(ParseError::new(format!(
            "a body of {body} bytes is bigger than max_body_size={max_body_size}"
        )));
    }
    if (header.extras_len as usize + header.key_len as usize) > body {
        return Err(ParseError::new(format!(
            "extras ({}) and key ({}) overrun the body ({body})",
            header.extras_len, header.key_len
        )));
    }
    let len = HEADER_LEN.saturating_add(body);
    Ok((buf.len() >= len).then_some(len))
}

/// How many whole messages starting with `magic` `buf` holds, back to back.
pub(crate) fn count_messages(buf: &[u8], magic: u8) -> Result<usize, ParseError> {
    let (mut at, mut count) = (0, 0);
    while at < buf.len() {
        match message_len(&buf[at..], magic, usize::MAX)? {
            Some(len) => at += len,
            None => return Err(ParseError::new("a message is cut short")),
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_cut_when_whole_and_refused_when_wrong() {
        let mut message = vec![0x81, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 6];
        message.resize(HEADER_LEN, 0);
        message.extend_from_slice(&[0, 0, 0, 1, b'h', b'i']);
        for cut in 0..message.len() {
            assert_eq!(
                message_len(&message[..cut], MAGIC_RESPONSE, 64).unwrap(),
                None
            );
        }
        assert_eq!(message_len(&message, MAGIC_RESPONSE, 64).unwrap(), Some(30));
        assert!(
            message_len(&message, MAGIC_RESPONSE, 5).is_err(),
            "past max_body_size"
        );
        assert!(
            message_len(&message, MAGIC_REQUEST, 64).is_err(),
            "wrong magic"
        );
        let mut overrun = message.clone();
        overrun[4] = 7; // extras longer than the body
        assert!(message_len(&overrun, MAGIC_RESPONSE, 64).is_err());
        let twice = [message.clone(), message].concat();
        assert_eq!(count_messages(&twice, MAGIC_RESPONSE).unwrap(), 2);
        assert!(count_messages(&twice[..40], MAGIC_RESPONSE).is_err());
    }
}
