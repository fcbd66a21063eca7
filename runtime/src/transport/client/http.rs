//! The `http` client protocol: pb methods as `POST /Service/Method` over HTTP/1.1, with
//! protobuf bodies (`application/proto`) or, with `http_json`, JSON bodies mapped by the
//! method's descriptors, on pooled keep-alive connections.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::call::{
    authority, authorization, Answer, BoxFuture, CallSettings, EncodedRequest, EndpointSettings,
    Failure, OwnedConnections,
};
use super::idle_pool::IdlePool;
use crate::compress::{self, CompressType};
use crate::protocol::http::{
    parse_error_body, ERROR_CODE_HEADER, JSON_CONTENT_TYPE, PROTO_CONTENT_TYPE, TIMEOUT_HEADER,
};
use crate::protocol::millis_left;
use crate::response_metadata::ResponseMetadata;
use crate::transport::sockets::SocketStats;
use crate::transport::stream::Security;
use crate::{errno, MethodDescriptor, Status};

#[cfg(feature = "json")]
use crate::json::MethodJson;

/// Without the `json` feature no method has a JSON mapping.
#[cfg(not(feature = "json"))]
#[derive(Debug)]
enum MethodJson {}

#[cfg(not(feature = "json"))]
impl MethodJson {
    fn request_to_json(&self, _: Bytes) -> Result<Bytes, String> {
        match *self {}
    }

    fn response_to_proto(&self, _: &[u8]) -> Result<Bytes, String> {
        match *self {}
    }
}

/// The JSON mapping a call's bodies need: `None` for protobuf bodies (the default) and for
/// codecs whose payload is JSON already; with `http_json`, the method's mapping from its
/// descriptors, decoded once per method and kept.
fn json_mapping(
    settings: &CallSettings,
    method: &MethodDescriptor,
    request: &EncodedRequest,
) -> Result<Option<MethodJson>, Status> {
    if !settings.http_json || request.content_type == 1 {
        return Ok(None);
    }
    let Some(file_descriptor_set) = method.file_descriptor_set() else {
        return Err(Status::new(
            errno::EREQUEST,
            format!(
                "http_json needs the descriptors of {}.{} (generated clients of .proto \
                 services carry them)",
                method.service(),
                method.method()
            ),
        ));
    };
    #[cfg(feature = "json")]
    {
        use std::collections::HashMap;
        use std::sync::{LazyLock, Mutex};
        type Key = (usize, String, String);
        static MAPPINGS: LazyLock<Mutex<HashMap<Key, MethodJson>>> =
            LazyLock::new(Default::default);
        let key = (
            file_descriptor_set.as_ptr() as usize,
            method.service().to_owned(),
            method.method().to_owned(),
        );
        let mut mappings = MAPPINGS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mapping) = mappings.get(&key) {
            return Ok(Some(mapping.clone()));
        }
        let mapping =
            MethodJson::for_client(file_descriptor_set, method.service(), method.method())
                .map_err(|e| Status::new(errno::EREQUEST, e))?;
        mappings.insert(key, mapping.clone());
        Ok(Some(mapping))
    }
    #[cfg(not(feature = "json"))]
    {
        let _ = file_descriptor_set;
        Err(Status::new(
            errno::EREQUEST,
            "http_json needs brisk's `json` feature",
        ))
    }
}

/// Idle connections kept per server; more are closed once their call ends.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// One HTTP/1.1 connection: its sender and its local address. Dropping it closes it.
#[derive(Debug)]
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    local: SocketAddr,
    /// Counts the requests sent and the responses received.
    stats: Arc<SocketStats>,
}

/// The `http` protocol's connections to the server `settings` name: HTTP/1.1 through hyper,
/// one call per connection at a time, idle ones kept for the next calls.
pub(crate) fn connections(settings: EndpointSettings) -> Box<dyn OwnedConnections> {
    Box::new(HttpConnections {
        addr: settings.addr,
        max_body_size: settings.max_body_size,
        security: settings.security,
        pool: IdlePool::new(MAX_IDLE_CONNECTIONS),
    })
}

/// HTTP/1.1 connections to one server.
#[derive(Debug)]
struct HttpConnections {
    addr: SocketAddr,
    max_body_size: usize,
    security: Security,
    /// Idle keep-alive connections.
    pool: IdlePool<Connection>,
}

impl OwnedConnections for HttpConnections {
    fn call<'a>(
        &'a self,
        settings: &'a CallSettings,
        method: &'a MethodDescriptor,
        request: &'a EncodedRequest,
    ) -> BoxFuture<'a, Result<Answer, Failure>> {
        Box::pin(self.attempt(settings, method, request))
    }

    fn probe<'a>(&'a self, settings: &'a CallSettings) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let connection = self.connect(settings).await.map_err(|f| f.status)?;
            self.give_back(connection, settings);
            Ok(())
        })
    }
}

impl HttpConnections {
    /// Keeps a connection whose call has ended for the next call, unless it closed.
    fn give_back(&self, connection: Connection, settings: &CallSettings) {
        if !connection.sender.is_closed() {
            self.pool.give_back(connection, settings.idle_timeout);
        }
    }

    /// One call attempt over HTTP/1.1.
    async fn attempt(
        &self,
        settings: &CallSettings,
        method: &MethodDescriptor,
        request: &EncodedRequest,
    ) -> Result<Answer, Failure> {
        let remote = self.addr;
        let json = json_mapping(settings, method, request).map_err(Failure::request)?;
        let http_request = build_request(
            &authority(remote, &self.security),
            settings,
            method,
            request,
            json.as_ref(),
            self.max_body_size,
        )
        .map_err(Failure::request)?;
        let (connection, response) = self.send(settings, http_request).await?;
        let local = connection.local;
        let (parts, body) = response.into_parts();
        let body = read_body(body, self.max_body_size).await?;
        // Only a connection whose response was read whole can carry the next call.
        self.give_back(connection, settings);
        if parts.status != StatusCode::OK {
            return Err(failure_from_response(&parts, &body, remote));
        }
        let payload =
            decode_body(&parts.headers, body, self.max_body_size).map_err(Failure::server)?;
        let payload = match &json {
            Some(json) => json.response_to_proto(&payload).map_err(|e| {
                Failure::server(Status::new(
                    errno::ERESPONSE,
                    format!("Fail to parse response: {e}"),
                ))
            })?,
            None => payload,
        };
        Ok(Answer {
            payload,
            attachment: Bytes::new(),
            compress_type: CompressType::None,
            remote,
            local,
            headers: ResponseMetadata::new(parts.headers, None),
        })
    }

    /// Sends `request` on an idle connection, or a new one; a pooled connection that closed
    /// before the request went out is replaced by a new one.
    async fn send(
        &self,
        settings: &CallSettings,
        request: Request<Full<Bytes>>,
    ) -> Result<(Connection, Response<Incoming>), Failure> {
        let mut request = request;
        while let Some(mut connection) = self.pool.take(|c| !c.sender.is_closed()) {
            if connection.sender.ready().await.is_err() {
                continue;
            }
            match connection.sender.try_send_request(request).await {
                Ok(response) => {
                    connection.stats.sent(1);
                    connection.stats.received(1);
                    return Ok((connection, response));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent: the connection closed meanwhile; try another.
                    Some(unsent) => request = unsent,
                    None => return Err(io_failure(self.addr, e.into_error())),
                },
            }
        }
        let mut connection = self.connect(settings).await?;
        connection
            .sender
            .ready()
            .await
            .map_err(|e| io_failure(self.addr, e))?;
        let response = connection
            .sender
            .send_request(request)
            .await
            .map_err(|e| io_failure(self.addr, e))?;
        connection.stats.sent(1);
        connection.stats.received(1);
        Ok((connection, response))
    }

    /// Opens a new HTTP/1.1 connection; its driver runs on a task of its own until it closes.
    async fn connect(&self, settings: &CallSettings) -> Result<Connection, Failure> {
        let addr = self.addr;
        let io = crate::transport::stream::connect_secured(
            addr,
            settings.connect_timeout,
            &self.security,
            &[b"http/1.1"],
        )
        .await
        .map_err(Failure::transport)?;
        let stats = Arc::clone(io.stats());
        stats.set_protocol("http");
        let local = io.get_ref().local_addr().map_err(|e| {
            Failure::transport(Status::from_io(format!("Fail to connect {addr}"), &e))
        })?;
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| io_failure(addr, e))?;
        let driver_stats = Arc::clone(&stats);
        tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(%addr, "HTTP connection ended: {e}");
            }
            driver_stats.mark_closed();
        });
        Ok(Connection {
            sender,
            local,
            stats,
        })
    }
}

/// The HTTP request for a call: `POST /{service}/{method}` with the payload as body.
fn build_request(
    authority: &str,
    settings: &CallSettings,
    method: &MethodDescriptor,
    request: &EncodedRequest,
    json: Option<&MethodJson>,
    max_body_size: usize,
) -> Result<Request<Full<Bytes>>, Status> {
    let payload = &request.payload;
    if !payload.attachment.is_empty() {
        return Err(Status::new(
            errno::EREQUEST,
            "the http protocol cannot carry a request attachment with a pb request",
        ));
    }
    let encoding = match payload.compress_type {
        CompressType::None => None,
        CompressType::Gzip => Some("gzip"),
        CompressType::Zlib => Some("deflate"),
        other @ (CompressType::Snappy | CompressType::Lz4 | CompressType::Zstd) => {
            return Err(Status::new(
                errno::EREQUEST,
                format!(
                    "the http protocol cannot carry {}-compressed requests (use gzip or zlib)",
                    other.name()
                ),
            ))
        }
    };
    let (content_type, encoding, body) = match json {
        // JSON goes out uncompressed: the payload is decompressed to be mapped.
        Some(json) => {
            let proto = compress::decompress(
                payload.compress_type,
                payload.message.clone(),
                max_body_size,
            )
            .map_err(|e| Status::new(errno::EREQUEST, format!("Fail to decompress: {e}")))?;
            let body = json
                .request_to_json(proto)
                .map_err(|e| Status::new(errno::EREQUEST, e))?;
            (JSON_CONTENT_TYPE, None, body)
        }
        None if request.content_type == 1 => (JSON_CONTENT_TYPE, encoding, payload.message.clone()),
        None => (PROTO_CONTENT_TYPE, encoding, payload.message.clone()),
    };
    let path = format!("/{}/{}", method.service(), method.method());
    let mut builder = Request::post(path)
        .header(HOST, authority)
        .header(CONTENT_TYPE, content_type);
    if let Some(encoding) = encoding {
        builder = builder.header(CONTENT_ENCODING, encoding);
    }
    if let Some(log_id) = request.log_id {
        builder = builder.header("log-id", log_id.to_string());
    }
    if let Some(deadline) = request.deadline {
        builder = builder.header(TIMEOUT_HEADER, millis_left(deadline));
    }
    let mut http_request = builder
        .body(Full::new(body))
        .map_err(|e| Status::new(errno::EREQUEST, format!("Fail to build HTTP request: {e}")))?;
    let headers = http_request.headers_mut();
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Status::new(
                errno::EREQUEST,
                format!("invalid HTTP header name `{name}`"),
            )
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            Status::new(
                errno::EREQUEST,
                format!("invalid value for HTTP header `{name}`"),
            )
        })?;
        headers.append(name, value);
    }
    if let Some(trace) = request.trace {
        trace.write_headers(headers);
    }
    if let Some(value) = authorization(settings)? {
        headers.insert(http::header::AUTHORIZATION, value);
    }
    Ok(http_request)
}

/// A failed exchange on a connection: a transport failure (retried elsewhere).
fn io_failure(addr: SocketAddr, error: hyper::Error) -> Failure {
    let code = if error.is_timeout() {
        errno::ETIMEDOUT
    } else if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
        errno::EEOF
    } else {
        errno::EFAILEDSOCKET
    };
    Failure::transport(Status::new(
        code,
        format!("HTTP exchange with {addr} failed: {error}"),
    ))
}

/// Reads the whole response body, at most `limit` bytes (ERESPONSE beyond).
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Failure> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Failure::server(Status::new(
            errno::ERESPONSE,
            format!("response body is larger than max_body_size={limit}"),
        ))),
        Err(e) => Err(Failure::transport(Status::new(
            errno::EEOF,
            format!("Fail to read HTTP response body: {e}"),
        ))),
    }
}

/// Undoes the response's `Content-Encoding` (gzip, deflate), bounded by `limit`.
fn decode_body(headers: &http::HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, Status> {
    let encoding = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    let compress_type = if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        return Ok(body);
    } else if encoding.eq_ignore_ascii_case("gzip") {
        CompressType::Gzip
    } else if encoding.eq_ignore_ascii_case("deflate") {
        CompressType::Zlib
    } else {
        return Err(Status::new(
            errno::ERESPONSE,
            format!("unsupported Content-Encoding `{encoding}` in response"),
        ));
    };
    compress::decompress(compress_type, body, limit).map_err(|e| {
        Status::new(
            errno::ERESPONSE,
            format!("Fail to decompress response: {e}"),
        )
    })
}

/// The most of an error response's body an error text quotes (brpc's
/// `-http_max_error_length`).
const MAX_ERROR_BODY: usize = 2048;

/// brpc's text for an HTTP error: the status line, then the body (if any) after `: `, e.g.
/// `HTTP/1.1 503 Service Unavailable: busy`.
fn http_error_text(parts: &http::response::Parts, body: &[u8]) -> String {
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .and_then(|phrase| std::str::from_utf8(phrase.as_bytes()).ok())
        .or_else(|| parts.status.canonical_reason())
        .unwrap_or("");
    let mut text = format!("{:?} {} {reason}", parts.version, parts.status.as_u16());
    if !body.is_empty() {
        text.push_str(": ");
        text.push_str(&String::from_utf8_lossy(
            &body[..body.len().min(MAX_ERROR_BODY)],
        ));
    }
    text
}

/// The failure a non-200 response from `remote` reports: the brpc error in its JSON body, or
/// brpc's `x-bd-error-code` with a `[address][E<code>]text` body (what brpc's client reads with
/// `-use_http_error_code`). Any other HTTP error is brpc's EHTTP with the status line and the
/// body, which the default retry policy does not retry. A stopping server (ELOGOFF) is a
/// transport failure, so the call is retried on another server.
fn failure_from_response(
    parts: &http::response::Parts,
    body: &[u8],
    remote: SocketAddr,
) -> Failure {
    let header_code = parts
        .headers
        .get(ERROR_CODE_HEADER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<i32>().ok())
        .filter(|code| *code != 0);
    let status = match (parse_error_body(body), header_code) {
        (Some((code, text)), _) if code != 0 => Status::new(code, text),
        (_, Some(code)) => {
            // brpc's form: a text/plain body `[address][E<code>]text`.
            let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
            Status::from_server_text(code, &text)
        }
        _ => Status::new(errno::EHTTP, http_error_text(parts, body)),
    }
    .with_remote(remote);
    if status.code() == errno::ELOGOFF {
        Failure::transport(status)
    } else {
        Failure::server(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(payload: &'static [u8]) -> EncodedRequest {
        EncodedRequest::for_tests(payload)
    }

    const ECHO: MethodDescriptor = MethodDescriptor::new("example.EchoService", "Echo");

    fn build(request: &EncodedRequest) -> Result<Request<Full<Bytes>>, Status> {
        let settings = CallSettings::for_tests();
        build_request("127.0.0.1:8000", &settings, &ECHO, request, None, 1 << 20)
    }

    #[test]
    fn builds_post_requests() {
        let mut request = encoded(b"\x0a\x02hi");
        request.log_id = Some(7);
        request.payload.compress_type = CompressType::Gzip;
        request.headers = vec![("x-user".to_owned(), "ann".to_owned())];
        let built = build(&request).unwrap();
        assert_eq!(built.method(), http::Method::POST);
        assert_eq!(built.uri().path(), "/example.EchoService/Echo");
        let h = built.headers();
        assert_eq!(h["host"], "127.0.0.1:8000");
        assert_eq!(h["content-type"], "application/proto");
        assert_eq!(h["content-encoding"], "gzip");
        assert_eq!(h["log-id"], "7");
        assert_eq!(h["x-user"], "ann");
        assert!(h.get("authorization").is_none());
    }

    #[test]
    fn refuses_what_http_cannot_carry() {
        let mut with_attachment = encoded(b"");
        with_attachment.payload.attachment = Bytes::from_static(b"foo");
        assert_eq!(build(&with_attachment).unwrap_err().code(), errno::EREQUEST);
        let mut snappy = encoded(b"");
        snappy.payload.compress_type = CompressType::Snappy;
        assert_eq!(build(&snappy).unwrap_err().code(), errno::EREQUEST);
        let mut bad_header = encoded(b"");
        bad_header.headers = vec![("bad name".to_owned(), "x".to_owned())];
        assert_eq!(build(&bad_header).unwrap_err().code(), errno::EREQUEST);
    }

    const REMOTE: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8000);

    fn head(status: StatusCode, error_code: Option<&'static str>) -> http::response::Parts {
        let mut builder = Response::builder().status(status);
        if let Some(code) = error_code {
            builder = builder.header(ERROR_CODE_HEADER, code);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn error_responses_become_failures() {
        let f = failure_from_response(
            &head(StatusCode::NOT_FOUND, None),
            br#"{"error_code":1002,"error_text":"Fail to find method"}"#,
            REMOTE,
        );
        assert_eq!(
            (f.status.code(), f.status.message(), f.is_transport()),
            (errno::ENOMETHOD, "Fail to find method", false)
        );
        let f = failure_from_response(
            &head(StatusCode::BAD_GATEWAY, None),
            b"upstream down",
            REMOTE,
        );
        assert_eq!(f.status.code(), errno::EHTTP);
        assert!(
            f.status.message().contains("upstream down"),
            "{}",
            f.status.message()
        );
        let f = failure_from_response(
            &head(StatusCode::SERVICE_UNAVAILABLE, None),
            br#"{"error_code":2003,"error_text":"stopping"}"#,
            REMOTE,
        );
        assert!(f.is_transport(), "ELOGOFF is retried elsewhere");
        // brpc's text/plain form, as its HTTP servers answer.
        let f = failure_from_response(
            &head(StatusCode::NOT_FOUND, Some("1002")),
            b"[127.0.0.1:8000][E1002]Fail to find method on `/a.B/C'",
            REMOTE,
        );
        assert_eq!(
            (f.status.code(), f.status.message()),
            (errno::ENOMETHOD, "Fail to find method on `/a.B/C'")
        );
        assert_eq!(f.status.remote_side(), Some(REMOTE));
    }

    #[test]
    fn response_bodies_are_decompressed_within_the_limit() {
        let mut gz = bytes::BytesMut::new();
        compress::compress(CompressType::Gzip, &[7u8; 100], &mut gz).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let body = decode_body(&headers, gz.clone().freeze(), 1000).unwrap();
        assert_eq!(&body[..], &[7u8; 100][..]);
        let e = decode_body(&headers, gz.freeze(), 10).unwrap_err();
        assert_eq!(e.code(), errno::ERESPONSE);
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(decode_body(&headers, Bytes::new(), 10).is_err());
    }
}
