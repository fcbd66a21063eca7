//! Which protocol a server connection speaks, from its first bytes (brpc tries its parsers in
//! turn on the first message; Brisk looks at the prefix once per connection).

/// What the first bytes of a connection say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Detected {
    /// `PRPC`: baidu_std.
    BaiduStd,
    /// An HTTP/1.x request line.
    Http1,
    /// The HTTP/2 client preface (h2c with prior knowledge, gRPC).
    Http2,
    /// A TLS record (`0x16`, handshake).
    Tls,
    /// Anything else, with a description for the log.
    Unknown(String),
}

/// The HTTP/2 client connection preface.
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const BAIDU_STD_MAGIC: &[u8] = b"PRPC";

/// Request-line starts of the HTTP/1.x methods a server answers.
const HTTP1_METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// Classifies a connection from the bytes received so far; `None` while they are a prefix of
/// more than one answer (read more and ask again).
pub(crate) fn detect(prefix: &[u8]) -> Option<Detected> {
    let first = *prefix.first()?;
    if first == 0x16 {
        return Some(Detected::Tls);
    }
    let mut undecided = false;
    for (magic, answer) in [
        (BAIDU_STD_MAGIC, Detected::BaiduStd),
        (H2_PREFACE, Detected::Http2),
    ] {
        match matches_start(prefix, magic) {
            Match::Yes => return Some(answer),
            Match::NeedMore => undecided = true,
            Match::No => {}
        }
    }
    for method in HTTP1_METHODS {
        match matches_start(prefix, method) {
            Match::Yes => return Some(Detected::Http1),
            Match::NeedMore => undecided = true,
            Match::No => {}
        }
    }
    if undecided {
        return None;
    }
    let shown = &prefix[..prefix.len().min(8)];
    Some(Detected::Unknown(format!(
        "unknown protocol, first bytes {shown:02x?}"
    )))
}

enum Match {
    Yes,
    NeedMore,
    No,
}

fn matches_start(prefix: &[u8], magic: &[u8]) -> Match {
    let n = prefix.len().min(magic.len());
    if prefix[..n] != magic[..n] {
        Match::No
    } else if n == magic.len() {
        Match::Yes
    } else {
        Match::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_protocols_apart() {
        assert_eq!(detect(b"PRPC\0\0\0\x10"), Some(Detected::BaiduStd));
        assert_eq!(detect(H2_PREFACE), Some(Detected::Http2));
        assert_eq!(detect(b"POST /a/b HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(detect(b"GET / HTTP/1.0\r\n"), Some(Detected::Http1));
        assert_eq!(detect(b"\x16\x03\x01\x02\x00"), Some(Detected::Tls));
        assert!(matches!(detect(b"SSH-2.0-x"), Some(Detected::Unknown(_))));
        assert!(matches!(detect(b"PRPX"), Some(Detected::Unknown(_))));
    }

    #[test]
    fn waits_while_the_prefix_is_ambiguous() {
        assert_eq!(detect(b""), None);
        // `P` starts PRPC, PRI, POST, PUT and PATCH.
        assert_eq!(detect(b"P"), None);
        assert_eq!(detect(b"PR"), None);
        assert_eq!(detect(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(detect(b"PO"), None);
        assert_eq!(detect(b"GET"), None);
    }
}
