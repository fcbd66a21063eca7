//! gRPC's header names and the values every call sends, made once at compile time: a call
//! neither parses a name nor copies a value it sends unchanged (`HeaderName` and `HeaderValue`
//! built from `&'static str` point at the text where it is).

use http::{HeaderName, HeaderValue};

use crate::protocol::grpc;

/// `grpc-status`: the call's status code, in trailers (or a trailers-only head).
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`: the status's (percent-encoded) text.
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-encoding`: how this side's messages are compressed.
pub(crate) const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
/// `grpc-accept-encoding`: the compressions this side reads.
pub(crate) const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
/// `grpc-timeout`: the time the caller gives the call.
pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// `application/grpc`, the content type of both directions.
pub(crate) const CONTENT_TYPE_GRPC: HeaderValue = HeaderValue::from_static(grpc::CONTENT_TYPE);
/// The compressions Brisk reads, as `grpc-accept-encoding` says them.
pub(crate) const ACCEPTED_ENCODINGS: HeaderValue = HeaderValue::from_static(grpc::ACCEPT_ENCODING);
/// `grpc-status: 0`, the trailer of every call that succeeds.
pub(crate) const STATUS_OK: HeaderValue = HeaderValue::from_static("0");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_say_what_grpc_says() {
        let names = [
            GRPC_STATUS,
            GRPC_MESSAGE,
            GRPC_ENCODING,
            GRPC_ACCEPT_ENCODING,
            GRPC_TIMEOUT,
        ];
        let texts = [
            "grpc-status",
            "grpc-message",
            "grpc-encoding",
            "grpc-accept-encoding",
            "grpc-timeout",
        ];
        for (name, text) in names.iter().zip(texts) {
            assert_eq!(name, &HeaderName::from_bytes(text.as_bytes()).unwrap());
        }
        assert_eq!(CONTENT_TYPE_GRPC, "application/grpc");
        assert_eq!(ACCEPTED_ENCODINGS, grpc::ACCEPT_ENCODING);
        assert_eq!(
            STATUS_OK.to_str().unwrap().parse::<u32>().unwrap(),
            grpc::code::OK
        );
    }
}
