//! How the built-in protocols that own their connections recognise a connection's first bytes:
//! an HTTP/1.x request line, the HTTP/2 client preface, a TLS handshake record.

use super::Detection;

/// The HTTP/2 client connection preface.
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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

/// An HTTP/1.x request line.
pub(crate) fn http1(prefix: &[u8]) -> Detection {
    any_of(prefix, HTTP1_METHODS)
}

/// The HTTP/2 preface (h2c with prior knowledge, gRPC).
pub(crate) fn http2(prefix: &[u8]) -> Detection {
    Detection::by_magic(prefix, H2_PREFACE)
}

/// A TLS ClientHello: a handshake record (`0x16`) of TLS or SSLv3 (version major `0x03`)
/// whose first message is a ClientHello (`0x01` at offset 5), as brpc's `DetectSSLState`
/// checks. Six bytes decide; fewer that could still be one need more.
pub(crate) fn tls(prefix: &[u8]) -> Detection {
    const CLIENT_HELLO_AT: usize = 5;
    let could_be = |i: usize, byte: u8| prefix.get(i).is_none_or(|&b| b == byte);
    if !could_be(0, 0x16) || !could_be(1, 0x03) || !could_be(CLIENT_HELLO_AT, 0x01) {
        Detection::No
    } else if prefix.len() > CLIENT_HELLO_AT {
        Detection::Yes
    } else {
        Detection::NeedMore
    }
}

/// Yes if any magic matches, need-more if any might, else no.
pub(crate) fn any_of(prefix: &[u8], magics: &[&[u8]]) -> Detection {
    let mut answer = Detection::No;
    for magic in magics {
        match Detection::by_magic(prefix, magic) {
            Detection::Yes => return Detection::Yes,
            Detection::NeedMore => answer = Detection::NeedMore,
            Detection::No => {}
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_protocols_apart() {
        assert_eq!(http2(H2_PREFACE), Detection::Yes);
        assert_eq!(http1(b"POST /a/b HTTP/1.1\r\n"), Detection::Yes);
        assert_eq!(http1(b"GET / HTTP/1.0\r\n"), Detection::Yes);
        assert_eq!(tls(b"\x16\x03\x01\x02\x00\x01"), Detection::Yes);
        // An nshead header whose id happens to start with 0x16 is not TLS.
        assert_eq!(tls(b"\x16\x00\x00\x00\x00\x00"), Detection::No);
        assert_eq!(tls(b"\x16\x03\x01\x02\x00\x02"), Detection::No);
        assert_eq!(http1(b"SSH-2.0-x"), Detection::No);
        assert_eq!(http2(b"PRPX"), Detection::No);
        assert_eq!(tls(b"PRPC"), Detection::No);
    }

    #[test]
    fn waits_while_the_prefix_is_ambiguous() {
        assert_eq!(tls(b""), Detection::NeedMore);
        assert_eq!(tls(b"\x16\x03\x01"), Detection::NeedMore);
        // `P` starts PRI, POST, PUT and PATCH.
        assert_eq!(http1(b"P"), Detection::NeedMore);
        assert_eq!(http2(b"PR"), Detection::NeedMore);
        assert_eq!(http2(b"PRI * HTTP/2.0\r\n"), Detection::NeedMore);
        assert_eq!(http1(b"PO"), Detection::NeedMore);
        assert_eq!(http1(b"GET"), Detection::NeedMore);
    }
}
