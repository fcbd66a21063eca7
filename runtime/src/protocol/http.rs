//! HTTP mapping of pb methods, free of I/O: paths, content types, error statuses and bodies.
//!
//! A pb method is served as `POST /example.EchoService/Echo` (or the short
//! `/EchoService/Echo`). Its body is the protobuf message (`application/proto`), its text
//! format (`application/proto-text`) or its JSON form (`application/json`, and any other
//! content type, as in brpc). Errors come back with an
//! HTTP status derived from the brpc error code and a JSON body
//! (`{"error_code":1002,"error_text":"..."}`).

use crate::errno;

/// The content type of protobuf bodies Brisk sends.
pub const PROTO_CONTENT_TYPE: &str = "application/proto";

/// The content type of JSON bodies (and of error bodies).
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// The content type of brpc's error bodies, `[address][E<code>]text`.
pub const TEXT_CONTENT_TYPE: &str = "text/plain";

/// The header in which brpc (and Brisk) send a failed call's error code.
pub const ERROR_CODE_HEADER: &str = "x-bd-error-code";

/// The header in which Brisk's HTTP client sends the time a call has left, in milliseconds
/// (HTTP has no standard one): the server gives its handler that deadline.
pub const TIMEOUT_HEADER: &str = "x-brisk-timeout-ms";

/// Content types whose body is a protobuf message.
const PROTO_CONTENT_TYPES: &[&str] = &[
    "application/proto",
    "application/x-protobuf",
    "application/protobuf",
];

/// The content type of bodies in protobuf's text format.
pub const PROTO_TEXT_CONTENT_TYPE: &str = "application/proto-text";

/// How a pb method's HTTP body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// The protobuf message's bytes.
    Proto,
    /// The message in protobuf's JSON mapping.
    Json,
    /// The message in protobuf's text format (`message: "hi"`).
    ProtoText,
}

/// The body format a `Content-Type` header announces: protobuf for `application/proto`,
/// `application/x-protobuf` and `application/protobuf`, the text format for
/// `application/proto-text` (parameters and case ignored), JSON for anything else or no
/// header, as brpc does.
pub fn body_format(content_type: Option<&str>) -> BodyFormat {
    let Some(content_type) = content_type else {
        return BodyFormat::Json;
    };
    let essence = mime_essence(content_type);
    if PROTO_CONTENT_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(essence))
    {
        BodyFormat::Proto
    } else if essence.eq_ignore_ascii_case(PROTO_TEXT_CONTENT_TYPE) {
        BodyFormat::ProtoText
    } else {
        BodyFormat::Json
    }
}

/// Whether a content type is gRPC's (`application/grpc`, `application/grpc+proto`, ...).
pub fn is_grpc_content_type(content_type: &str) -> bool {
    content_type
        .get(..16)
        .is_some_and(|start| start.eq_ignore_ascii_case("application/grpc"))
}

/// A content type without its parameters and surrounding spaces.
fn mime_essence(content_type: &str) -> &str {
    content_type
        .split(';')
        .next()
        .unwrap_or(content_type)
        .trim()
}

/// Splits a request path into service and method names: `/example.EchoService/Echo` →
/// `("example.EchoService", "Echo")`. A query string is ignored, and so are segments after
/// the method (brpc's "unresolved path": `/example.EchoService/Echo/extra` calls `Echo`);
/// `None` unless the first two segments are non-empty.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let path = path.split('?').next().unwrap_or(path);
    let mut segments = path.strip_prefix('/')?.split('/');
    let service = segments.next().filter(|s| !s.is_empty())?;
    let method = segments.next().filter(|s| !s.is_empty())?;
    Some((service, method))
}

/// The HTTP status brpc answers a failed call with (brpc's `ErrorCodeToStatusCode`): 404 for
/// a missing service or method, 401 for authentication, 400 for a bad request, 503 for a
/// stopping or overloaded server, 403, 504 for timeouts, 500 for anything else; Brisk's own
/// codes for gRPC's kinds get the statuses gRPC's HTTP mapping gives those kinds (404 for
/// ENOTFOUND, 409 for EEXIST and EABORTED, 400 for EFAILEDPRECONDITION and EOUTOFRANGE, 503
/// for EUNAVAILABLE).
pub fn status_for_error_code(error_code: i32) -> u16 {
    match error_code {
        0 => 200,
        errno::ENOSERVICE | errno::ENOMETHOD | errno::ENOTFOUND => 404,
        errno::ERPCAUTH => 401,
        errno::EREQUEST | errno::EINVAL | errno::EFAILEDPRECONDITION | errno::EOUTOFRANGE => 400,
        errno::EEXIST | errno::EABORTED => 409,
        errno::ELIMIT | errno::ELOGOFF | errno::EUNAVAILABLE => 503,
        errno::EPERM => 403,
        errno::ERPCTIMEDOUT | errno::ETIMEDOUT => 504,
        _ => 500,
    }
}

/// The JSON body of an error response: `{"error_code":N,"error_text":"..."}`.
pub fn error_body(error_code: i32, error_text: &str) -> String {
    let mut body = String::with_capacity(40 + error_text.len());
    body.push_str("{\"error_code\":");
    body.push_str(&error_code.to_string());
    body.push_str(",\"error_text\":");
    push_json_string(&mut body, error_text);
    body.push('}');
    body
}

/// Appends `text` as a JSON string literal, quotes included.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Reads an error body written by [`error_body`] (or by any server sending the same two
/// fields): the code and text, or `None` when the body is not such an object.
#[cfg(feature = "json")]
pub fn parse_error_body(body: &[u8]) -> Option<(i32, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error_code")?.as_i64()?;
    let code = i32::try_from(code).ok()?;
    let text = value
        .get("error_text")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    Some((code, text.to_owned()))
}

/// Reads an error body written by [`error_body`], without a JSON library (the `json` feature
/// is off): exactly `{"error_code":N,"error_text":"..."}`, as Brisk's servers write it.
#[cfg(not(feature = "json"))]
pub fn parse_error_body(body: &[u8]) -> Option<(i32, String)> {
    let body = std::str::from_utf8(body).ok()?;
    let rest = body.trim().strip_prefix("{\"error_code\":")?;
    let digits = rest
        .find(|c: char| !(c == '-' || c.is_ascii_digit()))
        .unwrap_or(rest.len());
    let code = rest[..digits].parse().ok()?;
    let rest = rest[digits..].strip_prefix(",\"error_text\":\"")?;
    let (text, rest) = unescape_json_string(rest)?;
    (rest.trim() == "}").then_some((code, text))
}

/// Four hex digits of a `\uXXXX` escape.
#[cfg(not(feature = "json"))]
fn hex(chars: &mut std::str::CharIndices<'_>) -> Option<u32> {
    let digits: String = (0..4)
        .map(|_| chars.next().map(|(_, c)| c))
        .collect::<Option<_>>()?;
    u32::from_str_radix(&digits, 16).ok()
}

/// The JSON string whose opening quote precedes `s`: its text, and what follows its closing
/// quote.
#[cfg(not(feature = "json"))]
fn unescape_json_string(s: &str) -> Option<(String, &str)> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => {
                let (_, escaped) = chars.next()?;
                out.push(match escaped {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'u' => {
                        let unit = hex(&mut chars)?;
                        if (0xd800..0xdc00).contains(&unit) {
                            // A surrogate pair: `\uD83D\uDE00`.
                            let (_, '\\') = chars.next()? else {
                                return None;
                            };
                            let (_, 'u') = chars.next()? else { return None };
                            let low = hex(&mut chars)?
                                .checked_sub(0xdc00)
                                .filter(|l| *l < 0x400)?;
                            let code = 0x10000 + ((unit - 0xd800) << 10) + low;
                            char::from_u32(code)?
                        } else {
                            char::from_u32(unit)?
                        }
                    }
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_statuses_and_json_bodies() {
        use super::{error_body, status_for_error_code};
        assert_eq!(status_for_error_code(crate::errno::ENOMETHOD), 404);
        assert_eq!(
            error_body(1002, "Fail to find method=example.EchoService/Nope"),
            r#"{"error_code":1002,"error_text":"Fail to find method=example.EchoService/Nope"}"#,
        );
    }

    #[test]
    fn error_bodies_round_trip_with_or_without_the_json_feature() {
        use super::{error_body, parse_error_body};
        for text in [
            "plain",
            "quote \" back\\slash\nline\ttab",
            "caf\u{e9} \u{1F600} \u{1}",
            "",
        ] {
            let body = error_body(4321, text);
            assert_eq!(
                parse_error_body(body.as_bytes()),
                Some((4321, text.to_owned())),
                "{body}"
            );
        }
        assert_eq!(
            parse_error_body(b"{\"error_code\":-1,\"error_text\":\"x\"}"),
            Some((-1, "x".into()))
        );
        for bad in [&b"not json"[..], b"{\"error_code\":1,\"error_text\":\"open"] {
            assert_eq!(parse_error_body(bad), None);
        }
    }

    #[test]
    fn content_types_pick_the_body_format() {
        use super::{body_format, BodyFormat};
        assert_eq!(
            body_format(Some("application/x-protobuf")),
            BodyFormat::Proto
        );
        assert_eq!(
            body_format(Some("application/json; charset=utf-8")),
            BodyFormat::Json
        );
        assert_eq!(body_format(None), BodyFormat::Json);
        assert_eq!(
            body_format(Some("Application/Proto-Text; charset=utf-8")),
            BodyFormat::ProtoText
        );
    }

    #[test]
    fn grpc_content_types_are_told_apart() {
        assert!(super::is_grpc_content_type("application/grpc+proto"));
        assert!(!super::is_grpc_content_type("application/json"));
    }

    #[test]
    fn paths_name_service_and_method() {
        use super::split_path;
        assert_eq!(
            split_path("/EchoService/Echo?x=1"),
            Some(("EchoService", "Echo"))
        );
        assert_eq!(split_path("/EchoService"), None);
    }

    #[test]
    fn maps_error_codes_as_brpc() {
        let cases = [
            (0, 200),
            (errno::ENOSERVICE, 404),
            (errno::ENOMETHOD, 404),
            (errno::ERPCAUTH, 401),
            (errno::EREQUEST, 400),
            (errno::EINVAL, 400),
            (errno::ELIMIT, 503),
            (errno::ELOGOFF, 503),
            (errno::EPERM, 403),
            (errno::ERPCTIMEDOUT, 504),
            (errno::ETIMEDOUT, 504),
            (errno::EINTERNAL, 500),
            (errno::ERESPONSE, 500),
            (12345, 500),
        ];
        for (code, status) in cases {
            assert_eq!(status_for_error_code(code), status, "code {code}");
        }
    }

    #[test]
    fn error_bodies_escape_text() {
        assert_eq!(
            error_body(1003, "bad \"x\"\\\n\u{1}é"),
            r#"{"error_code":1003,"error_text":"bad \"x\"\\\n\u0001é"}"#
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn error_bodies_round_trip() {
        let text = "quote \" backslash \\ newline \n tab \t ctrl \u{7} unicode ü";
        let body = error_body(-7, text);
        assert_eq!(
            parse_error_body(body.as_bytes()),
            Some((-7, text.to_owned()))
        );
        assert_eq!(parse_error_body(b"not json"), None);
        assert_eq!(parse_error_body(br#"{"error_text":"x"}"#), None);
        assert_eq!(parse_error_body(br#"{"error_code":99999999999}"#), None);
        assert_eq!(
            parse_error_body(br#"{"error_code":1001}"#),
            Some((1001, String::new()))
        );
    }

    #[test]
    fn content_types_choose_formats() {
        assert_eq!(body_format(Some("application/proto")), BodyFormat::Proto);
        assert_eq!(
            body_format(Some("Application/Protobuf ")),
            BodyFormat::Proto
        );
        assert_eq!(
            body_format(Some("application/x-protobuf; charset=binary")),
            BodyFormat::Proto
        );
        assert_eq!(body_format(Some("application/json")), BodyFormat::Json);
        assert_eq!(
            body_format(Some("application/x-www-form-urlencoded")),
            BodyFormat::Json
        );
        assert_eq!(body_format(Some("")), BodyFormat::Json);
        assert!(is_grpc_content_type("application/grpc"));
        assert!(is_grpc_content_type("APPLICATION/GRPC+json"));
        assert!(!is_grpc_content_type("application/gr"));
        assert!(!is_grpc_content_type("application/proto"));
    }

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/example.EchoService/Echo"),
            Some(("example.EchoService", "Echo"))
        );
        assert_eq!(
            split_path("/EchoService/Echo/"),
            Some(("EchoService", "Echo"))
        );
        assert_eq!(split_path("/a/b?c=/d"), Some(("a", "b")));
        assert_eq!(
            split_path("/a/b/c/d"),
            Some(("a", "b")),
            "brpc's unresolved path"
        );
        for bad in ["", "/", "//", "/a", "/a/", "//b", "a/b", "/a//b"] {
            assert_eq!(split_path(bad), None, "{bad:?}");
        }
    }
}
