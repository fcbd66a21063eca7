//! Payload compression: snappy, gzip and zlib, as brpc registers them.
//!
//! Only the protobuf payload is compressed; attachments never are. Decompression is bounded by a
//! limit (the connection's `max_body_size`) so a small frame cannot expand into gigabytes.

use std::io::{Read, Write};

use bytes::{BufMut, Bytes, BytesMut};

/// How a payload is compressed on the wire (`RpcMeta.compress_type`, brpc's `CompressType`).
///
/// ```
/// use brisk::CompressType;
/// assert_eq!(CompressType::from_wire(1), Some(CompressType::Snappy));
/// assert_eq!(CompressType::Gzip.as_wire(), 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CompressType {
    /// No compression (0).
    #[default]
    None,
    /// Raw snappy (1), not the framed format.
    Snappy,
    /// gzip (2), RFC 1952.
    Gzip,
    /// zlib (3), RFC 1950.
    Zlib,
}

impl CompressType {
    /// The value carried in `RpcMeta.compress_type`.
    pub fn as_wire(self) -> i32 {
        match self {
            CompressType::None => 0,
            CompressType::Snappy => 1,
            CompressType::Gzip => 2,
            CompressType::Zlib => 3,
        }
    }

    /// Parses `RpcMeta.compress_type`; `None` for values brpc cannot decode either (LZ4 = 4 is
    /// declared by brpc but never registered).
    pub fn from_wire(value: i32) -> Option<Self> {
        Some(match value {
            0 => CompressType::None,
            1 => CompressType::Snappy,
            2 => CompressType::Gzip,
            3 => CompressType::Zlib,
            _ => return None,
        })
    }

    /// The name brpc uses: `"none"`, `"snappy"`, `"gzip"`, `"zlib"`.
    pub fn name(self) -> &'static str {
        match self {
            CompressType::None => "none",
            CompressType::Snappy => "snappy",
            CompressType::Gzip => "gzip",
            CompressType::Zlib => "zlib",
        }
    }
}

impl std::str::FromStr for CompressType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(CompressType::None),
            "snappy" => Ok(CompressType::Snappy),
            "gzip" => Ok(CompressType::Gzip),
            "zlib" => Ok(CompressType::Zlib),
            other => Err(format!(
                "unknown compress type `{other}` (expected none, snappy, gzip or zlib)"
            )),
        }
    }
}

/// `input` compressed with `ty`, in a buffer of its own.
pub(crate) fn compress_to_bytes(ty: CompressType, input: &[u8]) -> std::io::Result<Bytes> {
    let mut out = BytesMut::with_capacity(input.len() / 2 + 32);
    compress(ty, input, &mut out)?;
    Ok(out.freeze())
}

/// Appends `input` compressed with `ty` to `dst`.
pub fn compress(ty: CompressType, input: &[u8], dst: &mut BytesMut) -> std::io::Result<()> {
    match ty {
        CompressType::None => dst.extend_from_slice(input),
        CompressType::Snappy => {
            let start = dst.len();
            dst.resize(start + snap::raw::max_compress_len(input.len()), 0);
            let n = snap::raw::Encoder::new()
                .compress(input, &mut dst[start..])
                .map_err(std::io::Error::other)?;
            dst.truncate(start + n);
        }
        CompressType::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(dst.writer(), flate2::Compression::fast());
            enc.write_all(input)?;
            enc.finish()?;
        }
        CompressType::Zlib => {
            let mut enc =
                flate2::write::ZlibEncoder::new(dst.writer(), flate2::Compression::fast());
            enc.write_all(input)?;
            enc.finish()?;
        }
    }
    Ok(())
}

/// Decompresses `input`, refusing output larger than `limit` bytes.
///
/// Errors have kind [`FileTooLarge`](std::io::ErrorKind::FileTooLarge) when the output would
/// exceed `limit`, and [`InvalidData`](std::io::ErrorKind::InvalidData) when `input` is not
/// valid for `ty`.
pub fn decompress(ty: CompressType, input: Bytes, limit: usize) -> std::io::Result<Bytes> {
    let invalid = |e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad {} payload: {e}", ty.name()),
        )
    };
    match ty {
        CompressType::None => Ok(input),
        CompressType::Snappy => {
            let len = snap::raw::decompress_len(&input).map_err(|e| invalid(&e))?;
            if len > limit {
                return Err(too_large(limit));
            }
            let out = snap::raw::Decoder::new()
                .decompress_vec(&input)
                .map_err(|e| invalid(&e))?;
            Ok(Bytes::from(out))
        }
        CompressType::Gzip => read_bounded(flate2::read::GzDecoder::new(&input[..]), limit)
            .map_err(|e| classify(e, &invalid)),
        CompressType::Zlib => read_bounded(flate2::read::ZlibDecoder::new(&input[..]), limit)
            .map_err(|e| classify(e, &invalid)),
    }
}

fn classify(
    err: std::io::Error,
    invalid: &dyn Fn(&dyn std::fmt::Display) -> std::io::Error,
) -> std::io::Error {
    if err.kind() == std::io::ErrorKind::FileTooLarge {
        err
    } else {
        invalid(&err)
    }
}

fn too_large(limit: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!("decompressed payload exceeds {limit} bytes"),
    )
}

fn read_bounded(reader: impl Read, limit: usize) -> std::io::Result<Bytes> {
    let mut out = Vec::new();
    let read = reader.take(limit as u64 + 1).read_to_end(&mut out)?;
    if read > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [CompressType; 4] = [
        CompressType::None,
        CompressType::Snappy,
        CompressType::Gzip,
        CompressType::Zlib,
    ];

    #[test]
    fn round_trips_every_type() {
        let input: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for ty in ALL {
            let mut buf = BytesMut::new();
            compress(ty, &input, &mut buf).unwrap();
            if ty != CompressType::None {
                assert!(buf.len() < input.len(), "{ty:?} did not compress");
            }
            let out = decompress(ty, buf.freeze(), 1 << 20).unwrap();
            assert_eq!(&out[..], &input[..], "{ty:?}");
            assert_eq!(CompressType::from_wire(ty.as_wire()), Some(ty));
            assert_eq!(ty.name().parse::<CompressType>().unwrap(), ty);
        }
    }

    #[test]
    fn formats_are_the_standard_ones() {
        let mut gz = BytesMut::new();
        compress(CompressType::Gzip, b"x", &mut gz).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        let mut zl = BytesMut::new();
        compress(CompressType::Zlib, b"x", &mut zl).unwrap();
        assert_eq!(zl[0] & 0x0f, 8, "zlib deflate method");
        let snappy = snap::raw::Encoder::new().compress_vec(b"hello").unwrap();
        assert_eq!(
            &decompress(CompressType::Snappy, snappy.into(), 100).unwrap()[..],
            b"hello"
        );
    }

    #[test]
    fn refuses_bombs_and_garbage() {
        let big = vec![0u8; 1 << 20];
        for ty in [CompressType::Snappy, CompressType::Gzip, CompressType::Zlib] {
            let mut buf = BytesMut::new();
            compress(ty, &big, &mut buf).unwrap();
            let err = decompress(ty, buf.freeze(), 1024).unwrap_err();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::FileTooLarge,
                "{ty:?}: {err}"
            );
            // Snappy garbage must declare a small length, or it is (rightly) "too large".
            let garbage: &'static [u8] = if ty == CompressType::Snappy {
                b"\x0a\xff\xff\xff"
            } else {
                b"\xff\xfe garbage"
            };
            let err = decompress(ty, Bytes::from_static(garbage), 1024).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{ty:?}: {err}");
        }
        assert_eq!(CompressType::from_wire(4), None);
        assert!("lz4".parse::<CompressType>().is_err());
    }
}
