//! gRPC's framing on HTTP/2, free of I/O: the 5-byte message prefix, `grpc-timeout`,
//! `grpc-status` and brpc error codes, and `grpc-message` percent-encoding.
//!
//! A gRPC message on the wire is a flag byte (1 = compressed with the call's `grpc-encoding`),
//! a big-endian `u32` length, and that many bytes.

use std::fmt;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::compress::{self, CompressType};
use crate::{errno, Status};

/// Bytes before each message: the compressed flag and the length.
pub const PREFIX_LEN: usize = 5;

/// The content type of gRPC requests and responses (`application/grpc+proto` and the like
/// start with it too).
pub const CONTENT_TYPE: &str = "application/grpc";

/// gRPC status codes (`grpc-status`), as in gRPC's `status.proto`.
#[allow(dead_code)] // the whole table, as the spec gives it
pub mod code {
    /// Not an error.
    pub const OK: u32 = 0;
    /// The call was cancelled.
    pub const CANCELLED: u32 = 1;
    /// Unknown error.
    pub const UNKNOWN: u32 = 2;
    /// The client sent a bad argument.
    pub const INVALID_ARGUMENT: u32 = 3;
    /// The deadline passed before the call finished.
    pub const DEADLINE_EXCEEDED: u32 = 4;
    /// Something requested was not found.
    pub const NOT_FOUND: u32 = 5;
    /// Something to create exists already.
    pub const ALREADY_EXISTS: u32 = 6;
    /// The caller may not do this.
    pub const PERMISSION_DENIED: u32 = 7;
    /// A resource (quota, size limit) ran out.
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// The system is not in a state that allows the call.
    pub const FAILED_PRECONDITION: u32 = 9;
    /// The call was aborted (concurrency conflict).
    pub const ABORTED: u32 = 10;
    /// Out of the valid range.
    pub const OUT_OF_RANGE: u32 = 11;
    /// The method is not implemented or not supported.
    pub const UNIMPLEMENTED: u32 = 12;
    /// An invariant broke on the server.
    pub const INTERNAL: u32 = 13;
    /// The service is unavailable for now; retrying may help.
    pub const UNAVAILABLE: u32 = 14;
    /// Unrecoverable data loss.
    pub const DATA_LOSS: u32 = 15;
    /// The call has no valid credentials.
    pub const UNAUTHENTICATED: u32 = 16;
}

/// The error table: each canonical gRPC status and the Brisk code it stands for, both ways.
/// brpc's codes where brpc maps the status to a code of its own (`GrpcStatusToErrorCode`),
/// Brisk's `30xx` codes where brpc folds the status into EINTERNAL (so `NOT_FOUND` survives a
/// trip through Brisk); the `Status` constructor of each kind uses the same code.
pub const ERROR_TABLE: [(u32, i32); 16] = [
    (code::CANCELLED, errno::ECANCELED),
    (code::UNKNOWN, errno::EUNKNOWN),
    (code::INVALID_ARGUMENT, errno::EINVAL),
    (code::DEADLINE_EXCEEDED, errno::ERPCTIMEDOUT),
    (code::NOT_FOUND, errno::ENOTFOUND),
    (code::ALREADY_EXISTS, errno::EEXIST),
    (code::PERMISSION_DENIED, errno::EPERM),
    (code::RESOURCE_EXHAUSTED, errno::ELIMIT),
    (code::FAILED_PRECONDITION, errno::EFAILEDPRECONDITION),
    (code::ABORTED, errno::EABORTED),
    (code::OUT_OF_RANGE, errno::EOUTOFRANGE),
    (code::UNIMPLEMENTED, errno::ENOMETHOD),
    (code::INTERNAL, errno::EINTERNAL),
    (code::UNAVAILABLE, errno::EUNAVAILABLE),
    (code::DATA_LOSS, errno::EDATALOSS),
    (code::UNAUTHENTICATED, errno::ERPCAUTH),
];

/// The `grpc-status` for a Brisk/brpc error code: the [`ERROR_TABLE`], plus brpc's
/// `ErrorCodeToGrpcStatus` for the codes it names besides (ENOSERVICE and EREQUEST as their
/// neighbours, ELOGOFF → UNAVAILABLE, ETIMEDOUT → INTERNAL); anything else is INTERNAL.
pub fn grpc_status_from_errno(error_code: i32) -> u32 {
    match error_code {
        0 => code::OK,
        errno::ENOSERVICE => code::UNIMPLEMENTED,
        errno::EREQUEST => code::INVALID_ARGUMENT,
        errno::ELOGOFF => code::UNAVAILABLE,
        errno::ETIMEDOUT => code::INTERNAL,
        _ => ERROR_TABLE
            .iter()
            .find(|(_, brisk)| *brisk == error_code)
            .map_or(code::INTERNAL, |(grpc, _)| *grpc),
    }
}

impl Status {
    /// The gRPC status code this status goes out as (`grpc-status`), by Brisk's error table
    /// (the README's): `ENOMETHOD` is `UNIMPLEMENTED` (12), an application's own code
    /// `INTERNAL` (13).
    ///
    /// ```
    /// assert_eq!(brisk::Status::unimplemented("no").grpc_code(), 12);
    /// assert_eq!(brisk::Status::new(4321, "mine").grpc_code(), 13);
    /// ```
    pub fn grpc_code(&self) -> u32 {
        grpc_status_from_errno(self.code())
    }

    /// A status for gRPC status `code` with `message`, its code as Brisk's error table maps
    /// the gRPC one (`UNKNOWN` (2) is `EUNKNOWN`; a code outside gRPC's is `EINTERNAL`; `OK`
    /// (0) gives code 0, which is no failure).
    ///
    /// ```
    /// let status = brisk::Status::from_grpc_code(2, "test status message");
    /// assert_eq!((status.code(), status.grpc_code()), (brisk::errno::EUNKNOWN, 2));
    /// ```
    pub fn from_grpc_code(code: u32, message: impl Into<String>) -> Status {
        Status::new(errno_from_grpc_status(code), message)
    }
}

/// The Brisk/brpc error code for a `grpc-status` from a peer that did not send Brisk's exact
/// code: the [`ERROR_TABLE`]; a status outside gRPC's range is EINTERNAL.
pub fn errno_from_grpc_status(status: u32) -> i32 {
    if status == code::OK {
        return 0;
    }
    ERROR_TABLE
        .iter()
        .find(|(grpc, _)| *grpc == status)
        .map_or(errno::EINTERNAL, |(_, brisk)| *brisk)
}

/// The trailer in which a Brisk server sends a failed call's exact Brisk code beside
/// `grpc-status` (which cannot carry application codes or brpc's finer ones), so a Brisk client
/// sees the code the handler returned. Foreign clients ignore it.
pub const BRISK_ERROR_CODE: &str = "brisk-error-code";

/// The name of a gRPC status code, e.g. `"DEADLINE_EXCEEDED"`.
pub fn status_name(status: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(status)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN_STATUS")
}

/// Parses a `grpc-status` value: decimal digits only.
pub fn parse_status(value: &[u8]) -> Option<u32> {
    if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Why a gRPC message stream cannot be cut into messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// A message is longer than the limit.
    TooLarge {
        /// The length its prefix declares.
        len: usize,
        /// The largest message accepted.
        limit: usize,
    },
    /// The flag byte is neither 0 nor 1.
    BadFlag(u8),
    /// The stream ended inside a message (or inside a prefix).
    Truncated {
        /// Bytes of the unfinished message that arrived.
        buffered: usize,
    },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::TooLarge { len, limit } => {
                write!(f, "message of {len} bytes exceeds max_body_size={limit}")
            }
            FramingError::BadFlag(flag) => write!(f, "bad message flag {flag} (expected 0 or 1)"),
            FramingError::Truncated { buffered } => write!(
                f,
                "the stream ended inside a message ({buffered} bytes of it arrived)"
            ),
        }
    }
}

impl std::error::Error for FramingError {}

/// Appends one message (prefix and `payload`) to `dst`; `compressed` sets the flag. Fails only
/// for a payload longer than `u32::MAX`.
pub fn encode_message(
    compressed: bool,
    payload: &[u8],
    dst: &mut BytesMut,
) -> Result<(), FramingError> {
    let prefix = message_prefix(compressed, payload.len())?;
    dst.reserve(PREFIX_LEN + payload.len());
    dst.put_slice(&prefix);
    dst.put_slice(payload);
    Ok(())
}

/// The 5-byte prefix of a message of `len` bytes.
pub fn message_prefix(compressed: bool, len: usize) -> Result<[u8; PREFIX_LEN], FramingError> {
    let len32 = u32::try_from(len).map_err(|_| FramingError::TooLarge {
        len,
        limit: u32::MAX as usize,
    })?;
    let mut prefix = [0u8; PREFIX_LEN];
    prefix[0] = u8::from(compressed);
    prefix[1..].copy_from_slice(&len32.to_be_bytes());
    Ok(prefix)
}

/// One message cut from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Whether the flag says the data is compressed with the call's `grpc-encoding`.
    pub compressed: bool,
    /// The message's bytes, as sent.
    pub data: Bytes,
}

/// The most a decoder reserves beyond the bytes it holds.
const MAX_RESERVE_AHEAD: usize = 256 * 1024;

/// Cuts messages out of body chunks as they arrive, refusing messages larger than a limit
/// before buffering them.
#[derive(Debug)]
pub struct MessageDecoder {
    buf: BytesMut,
    max_message_size: usize,
}

impl MessageDecoder {
    /// A decoder accepting messages of at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        MessageDecoder {
            buf: BytesMut::new(),
            max_message_size,
        }
    }

    /// Adds the next body chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole message, `None` until more bytes arrive.
    pub fn decode(&mut self) -> Result<Option<Message>, FramingError> {
        if self.buf.len() < PREFIX_LEN {
            return Ok(None);
        }
        let flag = self.buf[0];
        if flag > 1 {
            return Err(FramingError::BadFlag(flag));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.max_message_size {
            return Err(FramingError::TooLarge {
                len,
                limit: self.max_message_size,
            });
        }
        let total = PREFIX_LEN + len;
        if self.buf.len() < total {
            // Room for the whole message at once instead of doubling per chunk, but no more
            // than a chunk's worth ahead of what arrived: a peer's 5-byte prefix alone must
            // not make the decoder allocate the size it claims.
            self.buf
                .reserve((total - self.buf.len()).min(MAX_RESERVE_AHEAD));
            return Ok(None);
        }
        self.buf.advance(PREFIX_LEN);
        let data = self.buf.split_to(len).freeze();
        Ok(Some(Message {
            compressed: flag == 1,
            data,
        }))
    }

    /// Checks, once the stream has ended, that it did not end inside a message.
    pub fn finish(&self) -> Result<(), FramingError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FramingError::Truncated {
                buffered: self.buf.len(),
            })
        }
    }
}

/// Parses `grpc-timeout`: 1 to 8 ASCII digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
/// `None` for anything else, which brpc treats as no deadline.
pub fn parse_timeout(value: &str) -> Option<Duration> {
    let (&unit, digits) = value.as_bytes().split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Formats `timeout` for `grpc-timeout` in the finest unit that fits in 8 digits, rounded up
/// (so a peer never sees a shorter deadline, nor zero for a non-zero timeout).
pub fn format_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    const UNITS: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let nanos = timeout.as_nanos();
    for (per_unit, unit) in UNITS {
        let amount = nanos.div_ceil(per_unit);
        if amount <= MAX {
            return format!("{amount}{unit}");
        }
    }
    format!("{MAX}H")
}

/// Milliseconds of a timeout as `ServerContext::timeout_ms` carries them: rounded up, at
/// most `i32::MAX`.
pub fn timeout_millis(timeout: Duration) -> i32 {
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    i32::try_from(millis).unwrap_or(i32::MAX)
}

/// Percent-encodes a `grpc-message`: bytes outside printable ASCII, and `%`, become `%XX`.
pub fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decodes a percent-encoded `grpc-message`. A `%` not followed by two hex digits is kept as
/// is; bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The trailer carrying a status's binary details (an encoded `google.rpc.Status`).
pub const STATUS_DETAILS: &str = "grpc-status-details-bin";

/// A binary (`-bin`) metadata value as gRPC sends it: base64 without padding.
pub fn encode_binary_value(value: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(value)
}

/// A binary (`-bin`) metadata value's bytes; padded and unpadded base64 are both accepted, as
/// gRPC requires. `None` if it is not base64.
pub fn decode_binary_value(value: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(value.trim().trim_end_matches('='))
        .ok()
}

/// The `grpc-accept-encoding` Brisk sends: the message encodings it decodes besides
/// `identity` (`zstd` with feature `zstd`).
#[cfg(feature = "zstd")]
pub const ACCEPT_ENCODING: &str = "gzip,deflate,zstd";
/// The `grpc-accept-encoding` Brisk sends: the message encodings it decodes besides
/// `identity` (`zstd` with feature `zstd`).
#[cfg(not(feature = "zstd"))]
pub const ACCEPT_ENCODING: &str = "gzip,deflate";

/// The compression named by a `grpc-encoding` value that Brisk supports: `identity` (none),
/// `gzip`, `deflate` (zlib-wrapped, as gRPC's `deflate` is), or `zstd` in a build with feature
/// `zstd`; `None` for anything else.
pub fn parse_encoding(value: &str) -> Option<CompressType> {
    match value.trim() {
        "" | "identity" => Some(CompressType::None),
        "gzip" => Some(CompressType::Gzip),
        "deflate" => Some(CompressType::Zlib),
        "zstd" if CompressType::Zstd.is_available() => Some(CompressType::Zstd),
        _ => None,
    }
}

/// The `grpc-encoding` name of a compression gRPC has: `gzip`, `deflate`, `zstd`; `None` for
/// none and for compressions gRPC peers do not know (snappy, LZ4).
pub fn encoding_name(compress_type: CompressType) -> Option<&'static str> {
    match compress_type {
        CompressType::Gzip => Some("gzip"),
        CompressType::Zlib => Some("deflate"),
        CompressType::Zstd => Some("zstd"),
        CompressType::None | CompressType::Snappy | CompressType::Lz4 => None,
    }
}

/// The encodings a peer's `grpc-accept-encoding` names, of those Brisk compresses with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    gzip: bool,
    deflate: bool,
    zstd: bool,
}

impl AcceptEncoding {
    /// Reads a `grpc-accept-encoding` list.
    pub fn parse(value: &str) -> Self {
        let names = || value.split(',').map(str::trim);
        AcceptEncoding {
            gzip: names().any(|e| e == "gzip"),
            deflate: names().any(|e| e == "deflate"),
            zstd: names().any(|e| e == "zstd"),
        }
    }

    /// The encoding to answer with when the handler asks for `wanted`: that one if the peer
    /// accepts it (and this build has it), else none.
    pub fn choose(self, wanted: CompressType) -> CompressType {
        match wanted {
            CompressType::Gzip if self.gzip => CompressType::Gzip,
            CompressType::Zlib if self.deflate => CompressType::Zlib,
            CompressType::Zstd if self.zstd && wanted.is_available() => CompressType::Zstd,
            _ => CompressType::None,
        }
    }
}

/// Decompresses a message of `encoding`, refusing output larger than `limit` bytes.
pub fn decompress_message(
    encoding: CompressType,
    message: Bytes,
    limit: usize,
) -> std::io::Result<Bytes> {
    compress::decompress(encoding, message, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_frame_and_unframe() {
        use super::{encode_message, MessageDecoder};
        let mut wire = bytes::BytesMut::new();
        encode_message(false, b"\x0a\x02hi", &mut wire).unwrap();
        assert_eq!(&wire[..5], &[0, 0, 0, 0, 4]);

        let mut decoder = MessageDecoder::new(1024);
        decoder.push(&wire[..3]);
        assert!(decoder.decode().unwrap().is_none(), "incomplete");
        decoder.push(&wire[3..]);
        let message = decoder.decode().unwrap().unwrap();
        assert_eq!(&message.data[..], b"\x0a\x02hi");
        assert!(decoder.finish().is_ok());
    }

    #[test]
    fn errno_maps_to_grpc_status() {
        use super::{code, grpc_status_from_errno};
        use crate::errno;
        assert_eq!(
            grpc_status_from_errno(errno::ENOMETHOD),
            code::UNIMPLEMENTED
        );
        assert_eq!(grpc_status_from_errno(12345), code::INTERNAL);
    }

    #[test]
    fn grpc_status_maps_to_errno() {
        use super::{code, errno_from_grpc_status};
        use crate::errno;
        assert_eq!(
            errno_from_grpc_status(code::DEADLINE_EXCEEDED),
            errno::ERPCTIMEDOUT
        );
        assert_eq!(errno_from_grpc_status(99), errno::EINTERNAL);
    }

    #[test]
    fn timeouts_parse() {
        use super::parse_timeout;
        use std::time::Duration;
        assert_eq!(parse_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("123456789S"), None);
    }

    #[test]
    fn timeouts_format() {
        use super::format_timeout;
        use std::time::Duration;
        assert_eq!(format_timeout(Duration::from_millis(100)), "100000u");
        assert_eq!(
            format_timeout(Duration::from_secs(3600 * 24 * 365)),
            "31536000S"
        );
    }

    #[test]
    fn messages_percent_encode() {
        use super::{percent_decode, percent_encode};
        assert_eq!(percent_encode("100% sure\n"), "100%25 sure%0A");
        assert_eq!(percent_decode("100%25 sure%0A"), "100% sure\n");
    }

    #[test]
    fn a_claimed_size_is_not_reserved_up_front() {
        let mut decoder = MessageDecoder::new(64 << 20);
        // Five bytes claiming a 60 MiB message.
        decoder.push(&[0, 0x03, 0xc0, 0, 0]);
        assert!(decoder.decode().unwrap().is_none());
        assert!(
            decoder.buf.capacity() <= MAX_RESERVE_AHEAD + 64,
            "{}",
            decoder.buf.capacity()
        );
    }

    #[test]
    fn messages_round_trip_across_any_chunking() {
        let mut wire = BytesMut::new();
        encode_message(false, b"first", &mut wire).unwrap();
        encode_message(true, b"", &mut wire).unwrap();
        encode_message(false, &[7u8; 300], &mut wire).unwrap();
        for chunk in [1, 2, 5, 7, 64, wire.len()] {
            let mut decoder = MessageDecoder::new(1000);
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                decoder.push(piece);
                while let Some(m) = decoder.decode().unwrap() {
                    got.push(m);
                }
            }
            decoder.finish().unwrap();
            assert_eq!(got.len(), 3, "chunk {chunk}");
            assert_eq!(&got[0].data[..], b"first");
            assert!(!got[0].compressed);
            assert!(got[1].compressed && got[1].data.is_empty());
            assert_eq!(got[2].data.len(), 300);
        }
    }

    #[test]
    fn refuses_oversized_bad_and_truncated_messages() {
        let mut decoder = MessageDecoder::new(10);
        decoder.push(&[0, 0, 0, 0, 11]);
        assert_eq!(
            decoder.decode().unwrap_err(),
            FramingError::TooLarge { len: 11, limit: 10 }
        );

        let mut decoder = MessageDecoder::new(10);
        decoder.push(&[2, 0, 0, 0, 1, 0]);
        assert_eq!(decoder.decode().unwrap_err(), FramingError::BadFlag(2));

        let mut decoder = MessageDecoder::new(10);
        decoder.push(&[0, 0, 0, 0, 4, b'a']);
        assert_eq!(decoder.decode().unwrap(), None);
        assert_eq!(
            decoder.finish().unwrap_err(),
            FramingError::Truncated { buffered: 6 }
        );
        let mut decoder = MessageDecoder::new(10);
        decoder.push(&[0, 0]);
        assert!(
            decoder.finish().is_err(),
            "a partial prefix is truncated too"
        );
        // A huge declared length is refused from the prefix alone.
        let mut decoder = MessageDecoder::new(usize::MAX >> 1);
        decoder.push(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decoder.decode().unwrap(), None);
    }

    #[test]
    fn prefix_layout() {
        assert_eq!(message_prefix(true, 0x0102_0304).unwrap(), [1, 1, 2, 3, 4]);
        if usize::BITS > 32 {
            assert!(message_prefix(false, u32::MAX as usize + 1).is_err());
        }
    }

    #[test]
    fn timeouts_parse_and_format() {
        let cases = [
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("3S", Duration::from_secs(3)),
            ("100m", Duration::from_millis(100)),
            ("5u", Duration::from_micros(5)),
            ("7n", Duration::from_nanos(7)),
            ("99999999S", Duration::from_secs(99_999_999)),
        ];
        for (text, duration) in cases {
            assert_eq!(parse_timeout(text), Some(duration), "{text}");
            assert_eq!(parse_timeout(&format_timeout(duration)), Some(duration));
        }
        for bad in [
            "",
            "S",
            "10",
            "10x",
            "123456789m",
            "-1S",
            "1 S",
            "1SS",
            "ñ",
            "1ñ",
            "ñS",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
        assert_eq!(format_timeout(Duration::ZERO), "0n");
        assert_eq!(format_timeout(Duration::from_nanos(1_500)), "1500n");
        assert_eq!(format_timeout(Duration::from_millis(500)), "500000u");
        assert_eq!(format_timeout(Duration::from_secs(200)), "200000m");
        assert_eq!(format_timeout(Duration::MAX), "99999999H");
        for d in [
            Duration::from_nanos(123_456_789_123),
            Duration::from_secs(86_400 * 400),
        ] {
            let text = format_timeout(d);
            assert!(text.len() <= 9, "{text}");
            assert!(parse_timeout(&text).unwrap() >= d, "rounded up: {text}");
        }
        assert_eq!(timeout_millis(Duration::from_micros(1)), 1);
        assert_eq!(timeout_millis(Duration::from_millis(100)), 100);
        assert_eq!(timeout_millis(Duration::from_secs(u64::MAX)), i32::MAX);
    }

    #[test]
    fn status_mapping_is_the_error_table() {
        let to_grpc = [
            (0, code::OK),
            (errno::ENOSERVICE, code::UNIMPLEMENTED),
            (errno::ENOMETHOD, code::UNIMPLEMENTED),
            (errno::ERPCAUTH, code::UNAUTHENTICATED),
            (errno::EREQUEST, code::INVALID_ARGUMENT),
            (errno::EINVAL, code::INVALID_ARGUMENT),
            (errno::ELIMIT, code::RESOURCE_EXHAUSTED),
            (errno::ELOGOFF, code::UNAVAILABLE),
            (errno::EPERM, code::PERMISSION_DENIED),
            (errno::ERPCTIMEDOUT, code::DEADLINE_EXCEEDED),
            (errno::ETIMEDOUT, code::INTERNAL),
            (errno::ECANCELED, code::CANCELLED),
            (errno::EINTERNAL, code::INTERNAL),
            (errno::ENOTFOUND, code::NOT_FOUND),
            (errno::EEXIST, code::ALREADY_EXISTS),
            (4321, code::INTERNAL),
            (-1, code::INTERNAL),
        ];
        for (errno_code, status) in to_grpc {
            assert_eq!(grpc_status_from_errno(errno_code), status, "{errno_code}");
        }
        // Every canonical status round-trips, and the table has each once.
        for status in 1..=16 {
            let brisk = errno_from_grpc_status(status);
            assert_eq!(
                grpc_status_from_errno(brisk),
                status,
                "{}",
                status_name(status)
            );
        }
        assert_eq!(errno_from_grpc_status(code::OK), 0);
        assert_eq!(errno_from_grpc_status(17), errno::EINTERNAL);
        assert_eq!(status_name(code::UNAUTHENTICATED), "UNAUTHENTICATED");
        assert_eq!(status_name(99), "UNKNOWN_STATUS");
        assert_eq!(parse_status(b"14"), Some(14));
        for bad in [&b""[..], b"-1", b"1 ", b"99999999999", b"x"] {
            assert_eq!(parse_status(bad), None);
        }
    }

    #[test]
    fn grpc_message_percent_coding() {
        let text = "[127.0.0.1:8000][E1002]Fail to find method=a.B/C \u{e9}%\r\n";
        let encoded = percent_encode(text);
        assert!(
            encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)),
            "{encoded}"
        );
        assert!(encoded.contains("%C3%A9") && encoded.contains("%25%0D%0A"));
        assert_eq!(percent_decode(&encoded), text);
        // brpc encodes more than needed (digits and brackets too); lowercase hex decodes.
        assert_eq!(percent_decode("%5b%45%31%5D x"), "[E1] x");
        // Stray or short escapes stay as they are.
        assert_eq!(percent_decode("50% off %4"), "50% off %4");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn binary_values_are_unpadded_base64_both_ways() {
        assert_eq!(encode_binary_value(b"\x00\x01\xff\xfe"), "AAH//g");
        for sent in ["AAH//g", "AAH//g==", " AAH//g "] {
            assert_eq!(
                decode_binary_value(sent).unwrap(),
                b"\x00\x01\xff\xfe",
                "{sent:?}"
            );
        }
        assert_eq!(decode_binary_value("not base64!"), None);
    }

    #[test]
    fn encodings_gzip_and_deflate() {
        assert_eq!(parse_encoding("gzip"), Some(CompressType::Gzip));
        assert_eq!(parse_encoding("deflate"), Some(CompressType::Zlib));
        assert_eq!(parse_encoding("identity"), Some(CompressType::None));
        assert_eq!(parse_encoding("snappy"), None);
        for ct in [CompressType::Gzip, CompressType::Zlib] {
            assert_eq!(parse_encoding(encoding_name(ct).unwrap()), Some(ct));
        }
        assert_eq!(encoding_name(CompressType::Snappy), None);
        assert_eq!(encoding_name(CompressType::Lz4), None);
        assert_eq!(encoding_name(CompressType::Zstd), Some("zstd"));
        // zstd is read and chosen only where this build has it.
        let zstd = CompressType::Zstd
            .is_available()
            .then_some(CompressType::Zstd);
        assert_eq!(parse_encoding("zstd"), zstd);
        assert_eq!(ACCEPT_ENCODING.contains("zstd"), zstd.is_some());
        assert_eq!(
            AcceptEncoding::parse("gzip,zstd").choose(CompressType::Zstd),
            zstd.unwrap_or(CompressType::None)
        );
        let both = AcceptEncoding::parse("identity, deflate, gzip");
        assert_eq!(both.choose(CompressType::Gzip), CompressType::Gzip);
        assert_eq!(both.choose(CompressType::Zlib), CompressType::Zlib);
        assert_eq!(both.choose(CompressType::Snappy), CompressType::None);
        let deflate = AcceptEncoding::parse("identity,deflate");
        assert_eq!(deflate.choose(CompressType::Gzip), CompressType::None);
        assert_eq!(
            AcceptEncoding::default().choose(CompressType::Zlib),
            CompressType::None
        );
        let message = vec![b'a'; 10_000];
        for ct in [CompressType::Gzip, CompressType::Zlib] {
            let packed = compress::compress_to_bytes(ct, &message).unwrap();
            assert!(packed.len() < 200);
            assert_eq!(
                &decompress_message(ct, packed.clone(), 10_000).unwrap()[..],
                &message[..]
            );
            assert_eq!(
                decompress_message(ct, packed, 9_999).unwrap_err().kind(),
                std::io::ErrorKind::FileTooLarge
            );
            assert!(decompress_message(ct, Bytes::from_static(b"not packed"), 100).is_err());
        }
    }
}
