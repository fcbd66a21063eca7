//! Payload compression: snappy, gzip and zlib, as brpc registers them; LZ4 (feature `lz4`) and
//! zstd (feature `zstd`) besides.
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
    /// LZ4 (4, brpc's `COMPRESS_TYPE_LZ4`), in the LZ4 frame format; needs feature `lz4`.
    /// brpc declares the number but registers no LZ4 handler, so only Brisk peers read it.
    Lz4,
    /// zstd (5, a number brpc does not define: Brisk peers only on brpc's protocols), and
    /// gRPC's `zstd` encoding; needs feature `zstd`.
    Zstd,
}

impl CompressType {
    /// The value carried in `RpcMeta.compress_type`.
    pub fn as_wire(self) -> i32 {
        match self {
            CompressType::None => 0,
            CompressType::Snappy => 1,
            CompressType::Gzip => 2,
            CompressType::Zlib => 3,
            CompressType::Lz4 => 4,
            CompressType::Zstd => 5,
        }
    }

    /// Parses `RpcMeta.compress_type`; `None` for values no compression has.
    pub fn from_wire(value: i32) -> Option<Self> {
        Some(match value {
            0 => CompressType::None,
            1 => CompressType::Snappy,
            2 => CompressType::Gzip,
            3 => CompressType::Zlib,
            4 => CompressType::Lz4,
            5 => CompressType::Zstd,
            _ => return None,
        })
    }

    /// The name brpc uses: `"none"`, `"snappy"`, `"gzip"`, `"zlib"`, `"lz4"`; and `"zstd"`.
    pub fn name(self) -> &'static str {
        match self {
            CompressType::None => "none",
            CompressType::Snappy => "snappy",
            CompressType::Gzip => "gzip",
            CompressType::Zlib => "zlib",
            CompressType::Lz4 => "lz4",
            CompressType::Zstd => "zstd",
        }
    }

    /// Whether this build can compress and decompress it: always, but LZ4 and zstd only with
    /// features `lz4` and `zstd`.
    pub fn is_available(self) -> bool {
        const LZ4: bool = cfg!(feature = "lz4");
        const ZSTD: bool = cfg!(feature = "zstd");
        match self {
            CompressType::Lz4 => LZ4,
            CompressType::Zstd => ZSTD,
            _ => true,
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
            "lz4" => Ok(CompressType::Lz4),
            "zstd" => Ok(CompressType::Zstd),
            other => Err(format!(
                "unknown compress type `{other}` (expected none, snappy, gzip, zlib, lz4 or zstd)"
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
        CompressType::Lz4 => compress_lz4(input, dst)?,
        CompressType::Zstd => compress_zstd(input, dst)?,
    }
    Ok(())
}

#[cfg(feature = "lz4")]
fn compress_lz4(input: &[u8], dst: &mut BytesMut) -> std::io::Result<()> {
    let mut enc = lz4_flex::frame::FrameEncoder::new(dst.writer());
    enc.write_all(input)?;
    enc.finish().map_err(std::io::Error::other)?;
    Ok(())
}

#[cfg(feature = "zstd")]
fn compress_zstd(input: &[u8], dst: &mut BytesMut) -> std::io::Result<()> {
    // Level 1: the fast end, as gzip and zlib use theirs.
    let mut enc = zstd::stream::write::Encoder::new(dst.writer(), 1)?;
    enc.write_all(input)?;
    enc.finish()?;
    Ok(())
}

#[cfg(not(feature = "lz4"))]
fn compress_lz4(_: &[u8], _: &mut BytesMut) -> std::io::Result<()> {
    Err(unavailable(CompressType::Lz4))
}

#[cfg(not(feature = "zstd"))]
fn compress_zstd(_: &[u8], _: &mut BytesMut) -> std::io::Result<()> {
    Err(unavailable(CompressType::Zstd))
}

/// The error for a compression this build leaves out (kind `Unsupported`).
#[cfg(not(all(feature = "lz4", feature = "zstd")))]
fn unavailable(ty: CompressType) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!(
            "{} compression needs brisk's cargo feature `{}`",
            ty.name(),
            ty.name()
        ),
    )
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
        CompressType::Lz4 => decompress_lz4(&input, limit).map_err(|e| classify(e, &invalid)),
        CompressType::Zstd => decompress_zstd(&input, limit).map_err(|e| classify(e, &invalid)),
    }
}

#[cfg(feature = "lz4")]
fn decompress_lz4(input: &[u8], limit: usize) -> std::io::Result<Bytes> {
    read_bounded(lz4_flex::frame::FrameDecoder::new(input), limit)
}

#[cfg(feature = "zstd")]
fn decompress_zstd(input: &[u8], limit: usize) -> std::io::Result<Bytes> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?;
    // A frame may ask for a window up to 2 GiB; none larger than the output allowed (and
    // zstd's usual 8 MiB at least) is needed, so a small frame cannot make it allocate more.
    let window_log = usize::BITS - limit.max(1).leading_zeros();
    decoder.window_log_max(window_log.clamp(23, 31))?;
    read_bounded(decoder, limit)
}

#[cfg(not(feature = "lz4"))]
fn decompress_lz4(_: &[u8], _: usize) -> std::io::Result<Bytes> {
    Err(unavailable(CompressType::Lz4))
}

#[cfg(not(feature = "zstd"))]
fn decompress_zstd(_: &[u8], _: usize) -> std::io::Result<Bytes> {
    Err(unavailable(CompressType::Zstd))
}

fn classify(
    err: std::io::Error,
    invalid: &dyn Fn(&dyn std::fmt::Display) -> std::io::Error,
) -> std::io::Error {
    if matches!(
        err.kind(),
        std::io::ErrorKind::FileTooLarge | std::io::ErrorKind::Unsupported
    ) {
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

    const ALL: [CompressType; 6] = [
        CompressType::None,
        CompressType::Snappy,
        CompressType::Gzip,
        CompressType::Zlib,
        CompressType::Lz4,
        CompressType::Zstd,
    ];

    /// The types this build compresses with.
    fn available() -> impl Iterator<Item = CompressType> {
        ALL.into_iter().filter(|ty| ty.is_available())
    }

    #[test]
    fn round_trips_every_type() {
        let input: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for ty in ALL {
            assert_eq!(CompressType::from_wire(ty.as_wire()), Some(ty));
            assert_eq!(ty.name().parse::<CompressType>().unwrap(), ty);
        }
        for ty in available() {
            let mut buf = BytesMut::new();
            compress(ty, &input, &mut buf).unwrap();
            if ty != CompressType::None {
                assert!(buf.len() < input.len(), "{ty:?} did not compress");
            }
            let out = decompress(ty, buf.freeze(), 1 << 20).unwrap();
            assert_eq!(&out[..], &input[..], "{ty:?}");
        }
    }

    #[test]
    fn a_compression_left_out_of_the_build_says_which_feature() {
        for ty in ALL.into_iter().filter(|ty| !ty.is_available()) {
            let err = compress(ty, b"x", &mut BytesMut::new()).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::Unsupported, "{err}");
            assert!(err.to_string().contains("feature"), "{err}");
            let err = decompress(ty, Bytes::from_static(b"x"), 10).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::Unsupported, "{err}");
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
        if CompressType::Lz4.is_available() {
            let mut lz4 = BytesMut::new();
            compress(CompressType::Lz4, b"x", &mut lz4).unwrap();
            assert_eq!(&lz4[..4], &[0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
        }
        if CompressType::Zstd.is_available() {
            let mut zstd = BytesMut::new();
            compress(CompressType::Zstd, b"x", &mut zstd).unwrap();
            assert_eq!(&zstd[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
        }
        let snappy = snap::raw::Encoder::new().compress_vec(b"hello").unwrap();
        assert_eq!(
            &decompress(CompressType::Snappy, snappy.into(), 100).unwrap()[..],
            b"hello"
        );
    }

    #[test]
    fn refuses_bombs_and_garbage() {
        let big = vec![0u8; 1 << 20];
        for ty in available().filter(|ty| *ty != CompressType::None) {
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
        assert_eq!(CompressType::from_wire(6), None);
        assert!("brotli".parse::<CompressType>().is_err());
    }
}
