//! Entry points for the fuzz targets in `fuzz/` (built only under `cfg(fuzzing)`, which
//! `cargo fuzz` sets): Brisk's parsers that are not public, each fed arbitrary bytes the way
//! the connection that owns it would feed them. Every function must return — never panic,
//! hang or grow without bound — whatever it is given.

use bytes::{Bytes, BytesMut};

use crate::protocol;

/// The largest body the targets let a frame claim: small, so that a frame claiming more is
/// refused at once instead of waited for.
const MAX_BODY: usize = 64 * 1024;

/// Cuts requests off `data` with the server codec of `protocol`, as a server's connection does,
/// until it needs more or refuses; asks every server codec and the built-in detectors first.
pub fn server_frames(protocol: &str, data: &[u8]) {
    let (builtin, added) = protocol::server_codecs();
    for codec in builtin.iter().chain(&added) {
        let _ = codec.detect(data);
    }
    let _ = protocol::detect::http1(data);
    let _ = protocol::detect::http2(data);
    let _ = protocol::detect::tls(data);
    let Some(codec) = builtin.iter().chain(&added).find(|c| c.name() == protocol) else {
        return;
    };
    cut_all(data, |buf| {
        codec.decode_request(buf, MAX_BODY).map(|r| r.is_some())
    });
}

/// Cuts responses off `data` with the client codec of `protocol` (a name or alias), as a
/// channel's connection does.
pub fn client_frames(protocol: &str, data: &[u8]) {
    let Some(codec) = protocol::client_codec(protocol) else {
        return;
    };
    cut_all(data, |buf| {
        codec.decode_response(buf, MAX_BODY).map(|r| r.is_some())
    });
}

/// Feeds `data` in two pieces (split where its first byte says), cutting after each, so that
/// a frame split anywhere is seen too; stops at the first refusal.
fn cut_all<E>(data: &[u8], mut cut: impl FnMut(&mut BytesMut) -> Result<bool, E>) {
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut buf = BytesMut::new();
    for piece in [&data[..split], &data[split..]] {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match cut(&mut buf) {
                Ok(true) => assert!(
                    buf.len() < before,
                    "a frame was cut without consuming bytes"
                ),
                Ok(false) => break,
                Err(_) => return,
            }
        }
    }
}

/// Parses redis replies as a channel's connection does: measures each whole reply, then
/// parses what was measured.
pub fn redis_replies(data: &[u8]) {
    use crate::protocol::redis::resp;
    let mut rest = data;
    while let Ok(Some(len)) = resp::reply_len(rest, MAX_BODY) {
        assert!(
            len > 0 && len <= rest.len(),
            "a reply's length is within what arrived"
        );
        let _ = resp::parse_replies(&Bytes::copy_from_slice(&rest[..len]));
        rest = &rest[len..];
    }
    let _ = resp::count_commands(data);
}

/// Cuts redis commands (RESP arrays and inline lines) off `data` as Brisk's redis server does.
pub fn redis_commands(data: &[u8]) {
    use crate::protocol::redis::resp;
    cut_all(data, |buf| {
        resp::cut_command(buf, MAX_BODY).map(|c| c.is_some())
    });
    let _ = resp::split_words(data);
}

/// Reads the lines of a `file://` naming service's file, and `list://`, as the naming services
/// do (the addresses that are IP literals are parsed; names are not resolved).
pub fn naming(text: &str) {
    for (_, line) in crate::naming::file::server_lines(text) {
        if let Ok((address, _tag)) = crate::naming::list::split_entry(line) {
            let _ = address.parse::<std::net::SocketAddr>();
        }
    }
    let _ = crate::naming::ListNamingService::parse(text);
}

/// A service's JSON mapping built from `file_descriptor_set` (once per process: the first
/// call's arguments are kept): `json` is mapped to each method's
/// request and response as HTTP bodies are (both ways, strictly and not), and, when it maps,
/// back to JSON; `text` through protobuf's text format.
#[cfg(feature = "json")]
pub fn http_json(file_descriptor_set: &[u8], service: &str, methods: &[&str], json: &[u8]) {
    // Decoding the descriptors is the server's start-up, not a request's: done once.
    static MAPPING: std::sync::OnceLock<Result<crate::json::ServiceJson, String>> =
        std::sync::OnceLock::new();
    let mapping = MAPPING
        .get_or_init(|| crate::json::ServiceJson::new(file_descriptor_set, service, methods));
    let Ok(mapping) = mapping else {
        return;
    };
    for index in 0..methods.len() {
        let Some(method) = mapping.method(index) else {
            continue;
        };
        for strict in [true, false] {
            if let Ok(proto) = method.request_to_proto(json, strict) {
                let _ = method.request_to_json(proto);
            }
        }
        if let Ok(proto) = method.response_to_proto(json) {
            let _ = method.response_to_json(proto.clone());
            let _ = method.response_to_text(proto);
        }
        let _ = method.request_from_text(json);
        let _ = method.response_to_json(Bytes::copy_from_slice(json));
    }
}

/// gRPC: length-prefixed message framing (fed in chunks of `chunk` bytes, as HTTP/2 DATA
/// frames arrive), each message decompressed as every encoding would be, and the header values
/// Brisk parses (`grpc-timeout`, `grpc-status`, `grpc-message`, `-bin` metadata,
/// `grpc-accept-encoding`, `grpc-encoding`).
pub fn grpc(chunk: usize, data: &[u8]) {
    use crate::protocol::grpc::{
        decode_binary_value, decompress_message, parse_encoding, parse_status, parse_timeout,
        percent_decode, AcceptEncoding, MessageDecoder,
    };
    use crate::CompressType;
    // zstd only where the build has it (the fuzz crate builds without: libzstd is C).
    let encodings = [
        CompressType::Gzip,
        CompressType::Zlib,
        CompressType::Snappy,
        CompressType::Lz4,
        CompressType::Zstd,
    ];
    let mut decoder = MessageDecoder::new(MAX_BODY);
    'feed: for piece in data.chunks(chunk.max(1)) {
        decoder.push(piece);
        loop {
            match decoder.decode() {
                Ok(Some(message)) => {
                    for encoding in encodings {
                        let _ = decompress_message(encoding, message.data.clone(), MAX_BODY);
                    }
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let _ = decoder.finish();
    for encoding in encodings {
        let _ = decompress_message(encoding, Bytes::copy_from_slice(data), MAX_BODY);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_timeout(text);
        let _ = percent_decode(text);
        let _ = decode_binary_value(text);
        let _ = parse_encoding(text);
        let _ = AcceptEncoding::parse(text);
    }
    let _ = parse_status(data);
}
