//! Requests on HTTP/1.1 and HTTP/2 connections, whichever connection they came on: gRPC
//! (handed to [`super::grpc`] and [`super::health`]), and pb methods as
//! `POST /Service/Method` with JSON or protobuf bodies.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::body::{content_length, full_body, RequestBody, ResponseBody};
use super::context::client_timeout;
use super::dispatch::run_handler;
use super::grpc::header_str;
use super::registry::{record_answer, Arrival, Found, JsonBodies};
use super::state::{InflightGuard, Peer, Phase, Shared};
use super::ServerContext;
use crate::compress::{self, CompressType};
use crate::errno;
use crate::protocol::http::{
    body_format, error_body, is_grpc_content_type, split_path, status_for_error_code, BodyFormat,
    ERROR_CODE_HEADER, JSON_CONTENT_TYPE, PROTO_CONTENT_TYPE, PROTO_TEXT_CONTENT_TYPE,
    TEXT_CONTENT_TYPE, TIMEOUT_HEADER,
};
use crate::protocol::TraceIds;
use crate::streaming::MethodKind;

/// Answers one request: gRPC (the health service, unless the server hosts one of that
/// name), or a pb method.
pub(super) async fn handle(
    request: Request<RequestBody>,
    peer: Peer,
    shared: Arc<Shared>,
) -> Response<ResponseBody> {
    let grpc = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_grpc_content_type);
    if grpc {
        let health = super::grpc::split_path(request.uri().path())
            .is_some_and(|(service, _)| service == super::health::SERVICE)
            && !shared.registry.has_service(super::health::SERVICE);
        if health {
            return super::health::serve(request, shared).await;
        }
        #[cfg(feature = "json")]
        if let Some((service, method)) = super::grpc::split_path(request.uri().path()) {
            if shared.options.reflection
                && super::reflection::SERVICES.contains(&service)
                && !shared.registry.has_service(service)
            {
                if method != "ServerReflectionInfo" {
                    return super::reflection::unknown_method(service, method);
                }
                return super::reflection::serve(request, peer, shared).await;
            }
        }
        return super::grpc::serve(request, peer, shared).await;
    }
    if super::builtin::is_builtin(&request, &peer, &shared) {
        return super::builtin::serve(&request, &shared).await;
    }
    let json_errors = wants_json(request.headers());
    if shared.phase_now() != Phase::Running {
        return stopping().into_response(peer.local, json_errors);
    }
    match serve_pb(request, peer, &shared).await {
        Ok(response) => response,
        Err(error) => error.into_response(peer.local, json_errors),
    }
}

/// Whether a client's `Accept` asks for JSON (and not plain text): its errors then come as
/// `{"error_code":..,"error_text":..}` rather than brpc's plain text.
fn wants_json(headers: &HeaderMap) -> bool {
    header_str(headers, http::header::ACCEPT).is_some_and(|accept| {
        accept.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or(t).trim();
            t.eq_ignore_ascii_case(JSON_CONTENT_TYPE)
        }) && !accept.to_ascii_lowercase().contains("text/plain")
    })
}

/// The answer to requests that arrive while the server stops: 503 ELOGOFF, so clients
/// retry elsewhere.
fn stopping() -> HttpError {
    HttpError::from_code(errno::ELOGOFF, "Server is stopping")
}

/// A failed pb call: the status line, the brpc code and text, and headers the handler set.
#[derive(Debug)]
struct HttpError {
    status: StatusCode,
    code: i32,
    text: String,
    headers: Vec<(String, String)>,
    /// The plain-text body names the code alone (`[1004]...`), as brpc's authentication
    /// failures do, rather than the server and the code.
    code_only: bool,
}

impl HttpError {
    /// An error whose HTTP status follows from its brpc code.
    fn from_code(code: i32, text: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(status_for_error_code(code))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpError::with_status(status, code, text)
    }

    /// An error with a status of its own (413, 415, 405).
    fn with_status(status: StatusCode, code: i32, text: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            text: text.into(),
            headers: Vec::new(),
            code_only: false,
        }
    }

    /// The response: brpc's — the status, `x-bd-error-code`, and a `text/plain` body
    /// `[address][E<code>]text` (no newline) — or a JSON body for clients that ask for JSON.
    fn into_response(self, server: std::net::SocketAddr, json: bool) -> Response<ResponseBody> {
        let (body, content_type) = if json {
            (error_body(self.code, &self.text), JSON_CONTENT_TYPE)
        } else if self.code_only {
            (format!("[{}]{}", self.code, self.text), TEXT_CONTENT_TYPE)
        } else {
            (
                crate::protocol::brpc_error_text(server, self.code, &self.text),
                TEXT_CONTENT_TYPE,
            )
        };
        let mut response = Response::new(full_body(body));
        *response.status_mut() = self.status;
        add_handler_headers(response.headers_mut(), &self.headers);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(ERROR_CODE_HEADER, HeaderValue::from(self.code));
        response
    }
}

/// Serves a pb method: find it, authenticate, read and convert the body, run the handler,
/// convert the response.
async fn serve_pb(
    request: Request<RequestBody>,
    peer: Peer,
    shared: &Arc<Shared>,
) -> Result<Response<ResponseBody>, HttpError> {
    let (parts, body) = request.into_parts();
    let (found, format, auth_context) = match check_request(&parts, peer, shared) {
        Ok(checked) => checked,
        Err(error) => {
            // Read (a bounded part of) the body first, so the connection stays usable and
            // HTTP/2 clients see a finished stream rather than a reset one.
            discard_body(body, &shared.options).await;
            return Err(error);
        }
    };
    let content_type = header_str(&parts.headers, CONTENT_TYPE);
    let max_body_size = shared.options.max_body_size;
    let raw = read_body(
        &parts.headers,
        body,
        max_body_size,
        shared.options.request_read_timeout,
    )
    .await?;
    let raw = decode_content_encoding(&parts.headers, raw, max_body_size)?;
    // As brpc: a method whose request message has no fields is an HTTP service, and the body
    // is its request attachment.
    let (payload, request_attachment) = if takes_body_as_attachment(found.json) {
        (Bytes::new(), raw)
    } else {
        let payload = match format {
            BodyFormat::Proto => raw,
            BodyFormat::Json => request_from_json(found.json, &raw, shared.options.strict_json)?,
            BodyFormat::ProtoText => request_from_text(found.json, &raw)?,
        };
        (payload, Bytes::new())
    };

    // Counted from here, not from arrival: a client slow to send its body must not hold up
    // the server's `join`.
    let _inflight = InflightGuard::enter(shared);
    if shared.phase_now() != Phase::Running {
        return Err(stopping());
    }
    if let Some(limited) = shared.over_concurrency() {
        return Err(HttpError::from_code(limited.code(), limited.message()));
    }
    let timeout_ms = timeout_ms(&parts.headers);
    let log_id = log_id(&parts.headers);
    let arrival = Arrival {
        upstream: TraceIds::from_headers(&parts.headers),
        protocol: "http",
        remote: peer.remote,
        log_id,
        request_size: payload.len() + request_attachment.len(),
    };
    let admitted = shared
        .registry
        .enter_method(
            &**found.service,
            found.method,
            client_timeout(timeout_ms),
            arrival,
        )
        .map_err(|limited| HttpError::from_code(limited.code(), limited.message()))?;
    let mut context = ServerContext::new(peer.remote, peer.local);
    context.tls = peer.tls;
    context.log_id = log_id;
    context.set_client_timeout(timeout_ms);
    context.user_fields = user_fields(&parts.headers);
    context.request_headers = parts.headers.clone();
    context.auth_context = auth_context;
    context.request_attachment = request_attachment;
    let blocking = admitted.blocking;
    let mut method_guard = admitted.guard;
    let response = run_handler(
        shared,
        found.service,
        found.method,
        context,
        payload,
        blocking,
        admitted.span,
    )
    .await;
    let response = match response {
        Ok(response) => {
            record_answer(&mut method_guard, &response.result);
            response
        }
        Err(status) => {
            if let Some(guard) = &mut method_guard {
                guard.answered(status.code());
            }
            return Err(HttpError::from_code(status.code(), status.message()));
        }
    };
    let headers = response.context.response_headers;
    let message = match response.result {
        Ok(message) => message,
        Err(status) => {
            let code = if status.code() <= 0 {
                errno::EINTERNAL
            } else {
                status.code()
            };
            let mut error = HttpError::from_code(code, status.message());
            error.headers = headers;
            return Err(error);
        }
    };
    let attachment = &response.context.response_attachment;
    let (body, response_type) = match format {
        // As brpc: a response attachment is the body (the message is not sent), typed as the
        // handler says with a `content-type` header.
        _ if !attachment.is_empty() => {
            let handler_type = headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                .map(|(_, value)| value.as_str());
            let format_type = match format {
                BodyFormat::Proto => content_type.unwrap_or(PROTO_CONTENT_TYPE),
                BodyFormat::Json => JSON_CONTENT_TYPE,
                BodyFormat::ProtoText => PROTO_TEXT_CONTENT_TYPE,
            };
            (attachment.clone(), handler_type.unwrap_or(format_type))
        }
        BodyFormat::Proto => (message, content_type.unwrap_or(PROTO_CONTENT_TYPE)),
        BodyFormat::Json => (response_to_json(found.json, message)?, JSON_CONTENT_TYPE),
        BodyFormat::ProtoText => (
            response_to_text(found.json, message)?,
            PROTO_TEXT_CONTENT_TYPE,
        ),
    };
    if let Some(guard) = &method_guard {
        guard.response_size(body.len());
    }
    let gzip = response.context.response_compress_type == CompressType::Gzip
        && accepts_gzip(&parts.headers);
    ok_response(body, response_type, &headers, gzip)
}

/// Checks a pb request before its body is read: method, credential, path, kind of method and
/// body format. The method found, the body format and the verified identity.
fn check_request<'a>(
    parts: &http::request::Parts,
    peer: Peer,
    shared: &'a Shared,
) -> Result<(Found<'a>, BodyFormat, Option<Arc<crate::AuthContext>>), HttpError> {
    if parts.method != Method::POST && parts.method != Method::GET {
        return Err(HttpError::with_status(
            StatusCode::METHOD_NOT_ALLOWED,
            errno::EREQUEST,
            format!("pb methods take POST (or GET), not {}", parts.method),
        ));
    }
    let auth_context = authenticate(&parts.headers, shared, peer)?;
    let found = find_method(shared, parts.uri.path())?;
    if found
        .service
        .method_kinds()
        .get(found.method)
        .is_some_and(|kind: &MethodKind| kind.is_streaming())
    {
        return Err(HttpError::from_code(
            errno::EREQUEST,
            "streaming methods are served over gRPC only",
        ));
    }
    let format = body_format(header_str(&parts.headers, CONTENT_TYPE));
    if format == BodyFormat::ProtoText && !serves_proto_text(found.json) {
        return Err(HttpError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            errno::EREQUEST,
            format!(
                "{} has no descriptors for {PROTO_TEXT_CONTENT_TYPE} bodies (or brisk lacks its \
                 `proto-text` feature)",
                found.service.full_name()
            ),
        ));
    }
    if format == BodyFormat::Json && matches!(found.json, JsonBodies::Unsupported) {
        return Err(HttpError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            errno::EREQUEST,
            format!(
                "{} has no JSON mapping: send the protobuf message with content-type {PROTO_CONTENT_TYPE}",
                found.service.full_name()
            ),
        ));
    }
    Ok((found, format, auth_context))
}

/// Reads and drops a body that will not be used, up to [`MAX_DISCARDED_BODY`] bytes (and
/// `limit`); a longer one is left unread (HTTP/1.1 then closes the connection).
async fn discard_body(body: RequestBody, options: &super::ServerOptions) {
    let announced = hyper::body::Body::size_hint(&body).lower();
    let cap = options.max_body_size.min(MAX_DISCARDED_BODY);
    if announced <= cap as u64 {
        let reading = Limited::new(body, cap).collect();
        let _ = within(options.request_read_timeout, reading).await;
    }
}

/// `work`, given at most `timeout` (when there is one): `None` once it is up.
async fn within<F: std::future::Future>(
    timeout: Option<std::time::Duration>,
    work: F,
) -> Option<F::Output> {
    match timeout.filter(|t| !t.is_zero()) {
        Some(timeout) => tokio::time::timeout(timeout, work).await.ok(),
        None => Some(work.await),
    }
}

/// Most bytes of an unusable request body read before answering it.
const MAX_DISCARDED_BODY: usize = 1024 * 1024;

/// The method a path names; 404 ENOMETHOD `Fail to find method on `/path'` when there is
/// none, for an unknown service too, as brpc answers.
fn find_method<'a>(shared: &'a Shared, path: &str) -> Result<Found<'a>, HttpError> {
    split_path(path)
        .and_then(|(service, method)| shared.registry.find_for_http(service, method))
        .ok_or_else(|| {
            HttpError::from_code(errno::ENOMETHOD, format!("Fail to find method on `{path}'"))
        })
}

/// Verifies the `authorization` header when the server has an authenticator; the verified
/// identity. A failure is brpc's: 403, `[1004]Fail to authenticate: why`.
fn authenticate(
    headers: &HeaderMap,
    shared: &Shared,
    peer: Peer,
) -> Result<Option<Arc<crate::AuthContext>>, HttpError> {
    let Some(authenticator) = shared.options.authenticator.as_deref() else {
        return Ok(None);
    };
    let fail = |why: &str| HttpError {
        code_only: true,
        ..HttpError::with_status(
            StatusCode::FORBIDDEN,
            errno::ERPCAUTH,
            format!("Fail to authenticate: {why}"),
        )
    };
    let credential = match headers.get(http::header::AUTHORIZATION) {
        None => return Err(fail("no credential")),
        Some(value) => value
            .to_str()
            .map_err(|_| fail("credential is not visible ASCII"))?,
    };
    authenticator
        .verify_credential(credential, peer.remote)
        .map(|who| Some(Arc::new(who)))
        .map_err(|e| fail(e.message()))
}

/// Reads the whole body, at most `limit` bytes (413 beyond) within `timeout` (408 after).
async fn read_body(
    headers: &HeaderMap,
    body: RequestBody,
    limit: usize,
    timeout: Option<std::time::Duration>,
) -> Result<Bytes, HttpError> {
    let too_large = || {
        HttpError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            errno::EREQUEST,
            format!("request body is larger than max_body_size={limit}"),
        )
    };
    let announced = content_length(headers);
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let Some(read) = within(timeout, Limited::new(body, limit).collect()).await else {
        return Err(HttpError::with_status(
            StatusCode::REQUEST_TIMEOUT,
            errno::EREQUEST,
            format!(
                "Fail to read the request body within request_read_timeout={}ms",
                timeout.unwrap_or_default().as_millis()
            ),
        ));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(HttpError::from_code(
            errno::EREQUEST,
            format!("Fail to read request body: {e}"),
        )),
    }
}

/// Undoes `Content-Encoding: gzip` (or `deflate`), bounded by `limit`.
fn decode_content_encoding(
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, HttpError> {
    let compress_type = match header_str(headers, CONTENT_ENCODING).map(str::trim) {
        None | Some("") => return Ok(body),
        Some(e) if e.eq_ignore_ascii_case("identity") => return Ok(body),
        Some(e) if e.eq_ignore_ascii_case("gzip") => CompressType::Gzip,
        Some(e) if e.eq_ignore_ascii_case("deflate") => CompressType::Zlib,
        Some(other) => {
            return Err(HttpError::with_status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                errno::EREQUEST,
                format!("unsupported Content-Encoding `{other}` (gzip and deflate are)"),
            ))
        }
    };
    compress::decompress(compress_type, body, limit).map_err(|e| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            HttpError::with_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                errno::EREQUEST,
                format!("decompressed request body is larger than max_body_size={limit}"),
            )
        } else {
            HttpError::from_code(
                errno::EREQUEST,
                format!("Fail to decompress request body: {e}"),
            )
        }
    })
}

/// Whether a method takes its HTTP body as the request attachment: its request message has no
/// fields (known from its descriptors).
fn takes_body_as_attachment(json: JsonBodies<'_>) -> bool {
    match json {
        #[cfg(feature = "json")]
        JsonBodies::Transcoded(mapping) => mapping.input_is_empty(),
        _ => false,
    }
}

/// A JSON request body → the bytes the handler takes (400 EREQUEST when it does not convert).
/// Unknown fields are skipped unless `strict`.
fn request_from_json(json: JsonBodies<'_>, body: &[u8], strict: bool) -> Result<Bytes, HttpError> {
    let _ = strict;
    match json {
        JsonBodies::PassThrough => Ok(Bytes::copy_from_slice(body)),
        #[cfg(feature = "json")]
        JsonBodies::Transcoded(mapping) => mapping
            .request_to_proto(body, strict)
            .map_err(|e| HttpError::from_code(errno::EREQUEST, e)),
        _ => Err(HttpError::from_code(
            errno::EREQUEST,
            "this method takes protobuf bodies only",
        )),
    }
}

/// Whether a method's messages can be carried in protobuf's text format: they need descriptors,
/// and Brisk its `proto-text` feature.
fn serves_proto_text(json: JsonBodies<'_>) -> bool {
    match json {
        #[cfg(feature = "proto-text")]
        JsonBodies::Transcoded(..) => true,
        _ => false,
    }
}

/// A request body in protobuf's text format, as the method's request message.
fn request_from_text(json: JsonBodies<'_>, body: &[u8]) -> Result<Bytes, HttpError> {
    let _ = body;
    match json {
        #[cfg(feature = "proto-text")]
        JsonBodies::Transcoded(mapping) => mapping
            .request_from_text(body)
            .map_err(|e| HttpError::from_code(errno::EREQUEST, e)),
        // Refused by `check_request` before the body was read.
        _ => Err(HttpError::from_code(
            errno::EREQUEST,
            "this method takes no proto-text bodies",
        )),
    }
}

/// The response message in protobuf's text format.
fn response_to_text(json: JsonBodies<'_>, message: Bytes) -> Result<Bytes, HttpError> {
    let _ = &message;
    match json {
        #[cfg(feature = "proto-text")]
        JsonBodies::Transcoded(mapping) => mapping
            .response_to_text(message)
            .map_err(|e| HttpError::from_code(errno::ERESPONSE, e)),
        _ => Err(HttpError::from_code(
            errno::ERESPONSE,
            "this method's responses have no proto-text form",
        )),
    }
}

/// A handler's response bytes → the JSON body (500 EINTERNAL when they do not convert).
fn response_to_json(json: JsonBodies<'_>, message: Bytes) -> Result<Bytes, HttpError> {
    match json {
        JsonBodies::PassThrough => Ok(message),
        #[cfg(feature = "json")]
        JsonBodies::Transcoded(mapping) => mapping
            .response_to_json(message)
            .map_err(|e| HttpError::from_code(errno::EINTERNAL, e)),
        _ => Err(HttpError::from_code(
            errno::EINTERNAL,
            "this method has no JSON mapping",
        )),
    }
}

/// A 200 response carrying `body`, gzipped when the handler asked and the client accepts it.
fn ok_response(
    body: Bytes,
    content_type: &str,
    headers: &[(String, String)],
    gzip: bool,
) -> Result<Response<ResponseBody>, HttpError> {
    let body = if gzip {
        compress::compress_to_bytes(CompressType::Gzip, &body).map_err(|e| {
            HttpError::from_code(errno::EINTERNAL, format!("Fail to compress response: {e}"))
        })?
    } else {
        body
    };
    let mut response = Response::new(full_body(body));
    add_handler_headers(response.headers_mut(), headers);
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or_else(|_| HeaderValue::from_static(PROTO_CONTENT_TYPE));
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    if gzip {
        response
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// Adds the headers a handler set on its context; invalid ones are logged and skipped.
fn add_handler_headers(map: &mut HeaderMap, headers: &[(String, String)]) {
    for (name, value) in headers {
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                map.append(name, value);
            }
            _ => tracing::warn!(name, "dropping an invalid response header"),
        }
    }
}

/// The client's `x-brisk-timeout-ms`: how long it will wait, in milliseconds.
fn timeout_ms(headers: &HeaderMap) -> Option<i32> {
    headers
        .get(TIMEOUT_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// brpc's `log-id` header (0 when absent or not a number).
fn log_id(headers: &HeaderMap) -> i64 {
    headers
        .get("log-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The request's headers as user fields (names in lower case, values that are text), except
/// the credential, which handlers must not pass on.
fn user_fields(headers: &HeaderMap) -> std::collections::HashMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| *name != http::header::AUTHORIZATION)
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// Whether `Accept-Encoding` lists gzip.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let name = coding.split(';').next().unwrap_or("").trim();
            name.eq_ignore_ascii_case("gzip")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn reads_log_id_and_user_fields() {
        let map = headers(&[("log-id", " 42 "), ("X-Trace", "abc")]);
        assert_eq!(log_id(&map), 42);
        assert_eq!(log_id(&headers(&[("log-id", "x")])), 0);
        let fields = user_fields(&map);
        assert_eq!(fields.get("x-trace").map(String::as_str), Some("abc"));
    }

    #[test]
    fn decodes_gzip_bodies_within_the_limit() {
        let gz = compress::compress_to_bytes(CompressType::Gzip, &[b'a'; 1000]).unwrap();
        let map = headers(&[("content-encoding", "gzip")]);
        let body = decode_content_encoding(&map, gz.clone(), 2000).unwrap();
        assert_eq!(&body[..], &[b'a'; 1000][..]);
        let err = decode_content_encoding(&map, gz, 100).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        let err = decode_content_encoding(&map, Bytes::from_static(b"nope"), 100).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::BAD_REQUEST, errno::EREQUEST)
        );
        let br = headers(&[("content-encoding", "br")]);
        let err = decode_content_encoding(&br, Bytes::new(), 100).unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "deflate, GZIP;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "br")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn error_responses_carry_json_and_handler_headers() {
        let mut error = HttpError::from_code(errno::ENOMETHOD, "no such method");
        error.headers = vec![
            ("x-why".to_owned(), "because".to_owned()),
            ("bad header".to_owned(), "x".to_owned()),
        ];
        let server = "127.0.0.1:8000".parse().unwrap();
        let response = error.into_response(server, true);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], JSON_CONTENT_TYPE);
        assert_eq!(response.headers()["x-why"], "because");
        let error = HttpError::from_code(errno::ENOMETHOD, "no such method");
        let response = error.into_response(server, false);
        assert_eq!(response.headers()["content-type"], TEXT_CONTENT_TYPE);
        assert_eq!(response.headers()[ERROR_CODE_HEADER], "1002");
    }
}
