//! The `h2:grpc` client protocol: unary and streaming calls, each an HTTP/2 stream on the
//! server's one connection ([`super::h2`]), with gRPC's headers, message framing, gzip,
//! `grpc-timeout` and `grpc-status`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Uri};
use tokio::sync::oneshot;

use crate::protocol::TraceIds;

use super::call::{
    authority, authorization, Answer, BoxFuture, CallSettings, EncodedRequest, EndpointSettings,
    Failure, OpenStream, OwnedConnections, StreamRequest,
};
use super::h2::{H2Slot, RequestChunks};
use crate::compress::CompressType;
use crate::protocol::grpc::{
    self, code, errno_from_grpc_status, parse_encoding, parse_status, percent_decode,
};
use crate::response_metadata::ResponseMetadata;
use crate::streaming::BytesStream;
use crate::transport::grpc_body::{
    append_message, message_chunks, BodyMessages, Reader, COALESCE_LIMIT,
};
use crate::transport::grpc_headers::{
    ACCEPTED_ENCODINGS, CONTENT_TYPE_GRPC, GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_MESSAGE,
    GRPC_STATUS, GRPC_TIMEOUT,
};
use crate::transport::h2_body::H2Body;
use crate::transport::stream::Security;
use crate::{errno, MethodDescriptor, Status};

/// What Brisk sends as `user-agent`.
const USER_AGENT: &str = concat!("grpc-brisk/", env!("CARGO_PKG_VERSION"));

/// The `h2:grpc` protocol's connection to the server `settings` name: one HTTP/2 connection,
/// each call a stream.
pub(crate) fn connections(settings: EndpointSettings) -> Box<dyn OwnedConnections> {
    Box::new(GrpcConnections {
        authority: grpc_authority(settings.addr, &settings.security),
        addr: settings.addr,
        max_body_size: settings.max_body_size,
        security: settings.security,
        slot: H2Slot::default(),
    })
}

/// The HTTP/2 connection to one server, and what its calls need.
#[derive(Debug)]
struct GrpcConnections {
    /// The `:authority` of every request, made once (a name that is not one fails each call).
    authority: Result<Authority, Status>,
    addr: SocketAddr,
    max_body_size: usize,
    security: Security,
    slot: H2Slot,
}

impl OwnedConnections for GrpcConnections {
    fn call<'a>(
        &'a self,
        settings: &'a CallSettings,
        method: &'a MethodDescriptor,
        request: &'a EncodedRequest,
    ) -> BoxFuture<'a, Result<Answer, Failure>> {
        Box::pin(self.unary(settings, method, request))
    }

    fn open_stream<'a>(
        &'a self,
        settings: &'a CallSettings,
        request: StreamRequest<'a>,
    ) -> BoxFuture<'a, Result<OpenStream, Failure>> {
        Box::pin(self.streaming(settings, request))
    }

    fn probe<'a>(&'a self, settings: &'a CallSettings) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            self.slot
                .connection(
                    self.addr,
                    &self.security,
                    settings.connect_timeout,
                    settings.h2_keep_alive,
                )
                .await
                .map(drop)
        })
    }
}

impl GrpcConnections {
    /// The `:authority` of this endpoint's requests, or why it has none.
    fn authority(&self) -> Result<&Authority, Failure> {
        self.authority
            .as_ref()
            .map_err(|e| Failure::request(e.clone()))
    }

    /// One unary call attempt.
    async fn unary(
        &self,
        settings: &CallSettings,
        method: &MethodDescriptor,
        request: &EncodedRequest,
    ) -> Result<Answer, Failure> {
        let payload = &request.payload;
        if !payload.attachment.is_empty() {
            return Err(Failure::request(no_attachment()));
        }
        let encoding = request_encoding(payload.compress_type).map_err(Failure::request)?;
        let authority = self.authority()?;
        let head = RequestHead {
            authority,
            method,
            headers: &request.headers,
            deadline: request.deadline,
            log_id: request.log_id,
            trace: request.trace,
            encoding,
        };
        let build = || -> Result<_, Status> {
            let parts = head.build(settings)?;
            let chunks = message_chunks(encoding != CompressType::None, payload.message.clone())?;
            Ok((http::Request::from_parts(parts, ()), chunks))
        };
        let first = build().map_err(Failure::request)?;
        let conn = self
            .slot
            .connection(
                self.addr,
                &self.security,
                settings.connect_timeout,
                settings.h2_keep_alive,
            )
            .await
            .map_err(Failure::transport)?;
        let response = conn
            .send(first, || build().ok())
            .await
            .map_err(Failure::transport)?;
        let (parts, body) = response.into_parts();
        let encoding = check_response_head(&parts).map_err(Failure::server)?;
        let mut messages = BodyMessages::new(body, encoding, self.max_body_size, Reader::Client);
        let mut message = None;
        while let Some(next) = messages.next_message().await {
            let next = next.map_err(|status| {
                if status.code() == errno::EFAILEDSOCKET {
                    Failure::transport(status)
                } else {
                    Failure::server(status)
                }
            })?;
            if message.replace(next).is_some() {
                return Err(Failure::server(Status::new(
                    errno::ERESPONSE,
                    "a unary call got more than one response message",
                )));
            }
        }
        let trailers = messages.take_trailers();
        let status_from = trailers.as_ref().unwrap_or(&parts.headers);
        call_result(status_from, conn.remote).inspect_err(|failure| {
            tracing::debug!(server = %conn.remote, status = %failure.status, "gRPC call failed");
        })?;
        let message = message.ok_or_else(|| {
            Failure::server(Status::new(
                errno::ERESPONSE,
                "a unary call ended without a response message",
            ))
        })?;
        Ok(Answer {
            payload: message,
            attachment: Bytes::new(),
            compress_type: encoding,
            remote: conn.remote,
            local: conn.local,
            headers: ResponseMetadata::new(parts.headers, trailers),
        })
    }

    /// Opens a streaming call: sends its head, starts pumping its requests (taken only once
    /// the stream is open), and waits for the response head.
    async fn streaming(
        &self,
        settings: &CallSettings,
        request: StreamRequest<'_>,
    ) -> Result<OpenStream, Failure> {
        if !request.attachment.is_empty() {
            return Err(Failure::request(no_attachment()));
        }
        let encoding = request_encoding(request.compress_type).map_err(Failure::request)?;
        let authority = self.authority()?;
        let head = RequestHead {
            authority,
            method: request.method,
            headers: request.headers,
            deadline: request.deadline,
            log_id: request.log_id,
            trace: request.trace,
            encoding,
        }
        .build(settings)
        .map_err(Failure::request)?;
        let conn = self
            .slot
            .connection(
                self.addr,
                &self.security,
                settings.connect_timeout,
                settings.h2_keep_alive,
            )
            .await
            .map_err(Failure::transport)?;
        let (stop_requests, stop) = oneshot::channel();
        let requests = request.requests;
        let take_requests = || {
            let taken = requests.lock().unwrap_or_else(|e| e.into_inner()).take();
            let requests = taken.ok_or_else(|| {
                Status::internal("the streaming call's requests were already sent")
            })?;
            Ok(Box::pin(RequestFrames {
                requests,
                encoding,
                done: false,
                failed: None,
            }) as RequestChunks)
        };
        let response = conn
            .send_streaming(http::Request::from_parts(head, ()), take_requests, stop)
            .await
            .map_err(Failure::transport)?;
        let (parts, body) = response.into_parts();
        let encoding = check_response_head(&parts).map_err(Failure::server)?;
        // A trailers-only response: the status is in the head.
        let head_ok = if parts.headers.contains_key(GRPC_STATUS) {
            call_result(&parts.headers, self.addr)?;
            true
        } else {
            false
        };
        Ok(OpenStream {
            headers: ResponseMetadata::new(parts.headers, None),
            compress_type: encoding,
            local: conn.local,
            messages: Box::pin(ResponseMessages {
                messages: BodyMessages::new(body, encoding, self.max_body_size, Reader::Client),
                head_ok,
                remote: self.addr,
                stop_requests: Some(stop_requests),
                done: false,
            }),
        })
    }
}

fn no_attachment() -> Status {
    Status::new(errno::EREQUEST, "h2:grpc cannot carry an attachment")
}

/// A streaming call's request messages as HTTP/2 body chunks, each with its gRPC prefix (and
/// compressed when the call compresses); the messages ready at once go out together, up to
/// [`COALESCE_LIMIT`] bytes a chunk. An error item ends it with that error, which resets the
/// stream (so the server never takes a cut-short stream for a whole one).
struct RequestFrames {
    requests: BytesStream,
    encoding: CompressType,
    done: bool,
    /// An error that came after messages still to send: the next item.
    failed: Option<Status>,
}

impl Stream for RequestFrames {
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(status) = this.failed.take() {
            return Poll::Ready(Some(Err(status)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let mut chunk = BytesMut::new();
        while chunk.len() < COALESCE_LIMIT {
            let appended = match this.requests.as_mut().poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => {
                    this.done = true;
                    break;
                }
                Poll::Ready(Some(message)) => message.and_then(|message| {
                    append_message(
                        this.encoding,
                        &message,
                        &mut chunk,
                        "request",
                        errno::EREQUEST,
                    )
                }),
            };
            if let Err(status) = appended {
                tracing::warn!(%status, "streaming call reset");
                this.done = true;
                if chunk.is_empty() {
                    return Poll::Ready(Some(Err(status)));
                }
                this.failed = Some(status);
                break;
            }
        }
        if !chunk.is_empty() {
            Poll::Ready(Some(Ok(chunk.freeze())))
        } else if this.done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

/// The response messages of a streaming call, ending with the status of its trailers. The
/// request stream stops (reset if unfinished) when these end or are dropped.
struct ResponseMessages {
    messages: BodyMessages<H2Body>,
    /// The response head carried `grpc-status: 0` (a trailers-only success).
    head_ok: bool,
    /// The server, named in the errors it ends the call with.
    remote: SocketAddr,
    /// Dropped when the call ends, which stops the request stream.
    stop_requests: Option<oneshot::Sender<()>>,
    done: bool,
}

impl ResponseMessages {
    /// The call's status once the body has ended.
    fn final_status(&mut self) -> Result<(), Status> {
        match self.messages.take_trailers() {
            Some(trailers) => call_result(&trailers, self.remote).map_err(|failure| failure.status),
            None if self.head_ok => Ok(()),
            None => Err(Status::new(
                errno::ERESPONSE,
                "the response ended without grpc-status",
            )),
        }
    }
}

impl Stream for ResponseMessages {
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let end = match this.messages.poll_message(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(message))) => return Poll::Ready(Some(Ok(message))),
            Poll::Ready(Some(Err(status))) => Err(status),
            Poll::Ready(None) => this.final_status(),
        };
        this.done = true;
        this.stop_requests = None;
        Poll::Ready(end.err().map(Err))
    }
}

/// How request messages are compressed: gzip and deflate (zlib) are the compressions gRPC
/// peers know.
fn request_encoding(compress_type: CompressType) -> Result<CompressType, Status> {
    match compress_type {
        CompressType::None | CompressType::Gzip | CompressType::Zlib => Ok(compress_type),
        CompressType::Zstd if compress_type.is_available() => Ok(compress_type),
        other => Err(Status::new(
            errno::EREQUEST,
            format!(
                "h2:grpc compresses with gzip, deflate (zlib) or zstd (feature `zstd`) only, \
                 not {}",
                other.name()
            ),
        )),
    }
}

/// What a gRPC request's headers are made of.
struct RequestHead<'a> {
    /// The server (the `:authority`).
    authority: &'a Authority,
    /// The method called.
    method: &'a MethodDescriptor,
    /// Custom metadata.
    headers: &'a [(String, String)],
    /// When the call must end (sent as `grpc-timeout`).
    deadline: Option<Instant>,
    /// brpc's log id (sent as `log-id` when not 0).
    log_id: Option<i64>,
    /// The call's rpcz span ids, when it is traced (sent as `traceparent` and `x-bd-*`).
    trace: Option<TraceIds>,
    /// How messages are compressed (gzip, deflate, or not).
    encoding: CompressType,
}

impl RequestHead<'_> {
    /// The request's head: `POST /service/method` with gRPC's headers, the credential and the
    /// metadata. Bad metadata is EREQUEST.
    fn build(&self, settings: &CallSettings) -> Result<http::request::Parts, Status> {
        let (service, method) = (self.method.service(), self.method.method());
        let bad_name = |e: &dyn std::fmt::Display| {
            Status::new(
                errno::EREQUEST,
                format!("bad method name {service}/{method}: {e}"),
            )
        };
        // Exactly as long as it needs to be, so the path's bytes are shared without a copy.
        let mut path = String::with_capacity(2 + service.len() + method.len());
        for part in ["/", service, "/", method] {
            path.push_str(part);
        }
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = Some(PathAndQuery::try_from(path).map_err(|e| bad_name(&e))?);
        let uri = Uri::from_parts(uri).map_err(|e| bad_name(&e))?;
        let (mut parts, ()) = http::Request::post(uri)
            .body(())
            .map_err(|e| bad_name(&e))?
            .into_parts();
        let headers = &mut parts.headers;
        headers.insert(http::header::CONTENT_TYPE, CONTENT_TYPE_GRPC);
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        headers.insert(GRPC_ACCEPT_ENCODING, ACCEPTED_ENCODINGS);
        if let Some(name) = grpc::encoding_name(self.encoding) {
            headers.insert(GRPC_ENCODING, HeaderValue::from_static(name));
        }
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(value) = HeaderValue::from_str(&grpc::format_timeout(left)) {
                headers.insert(GRPC_TIMEOUT, value);
            }
        }
        if let Some(log_id) = self.log_id {
            headers.insert("log-id", HeaderValue::from(log_id));
        }
        if let Some(value) = authorization(settings)? {
            headers.insert(http::header::AUTHORIZATION, value);
        }
        for (name, value) in self.headers {
            let bad = || Status::new(errno::EREQUEST, format!("bad gRPC metadata `{name}`"));
            let name =
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| bad())?;
            let value = HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.append(name, value);
        }
        if let Some(trace) = self.trace {
            trace.write_headers(headers);
        }
        Ok(parts)
    }
}

/// The `:authority` of requests to `addr`: the TLS server name when there is one.
fn grpc_authority(addr: SocketAddr, security: &Security) -> Result<Authority, Status> {
    let text = authority(addr, security);
    text.parse().map_err(|e| {
        Status::new(
            errno::EREQUEST,
            format!("`{text}` cannot be a request's authority: {e}"),
        )
    })
}

/// Checks a response's head (HTTP status, content type) and returns its message encoding.
fn check_response_head(parts: &http::response::Parts) -> Result<CompressType, Status> {
    if parts.status != http::StatusCode::OK {
        // gRPC's synthesized status, but a gateway's 429/502/503/504 is EHTTP, not a retried
        // EUNAVAILABLE: the request may have reached a backend.
        let code = match errno_from_grpc_status(http_status_to_grpc(parts.status)) {
            errno::EUNAVAILABLE => errno::EHTTP,
            code => code,
        };
        return Err(Status::new(
            code,
            format!("the server answered HTTP {}", parts.status),
        ));
    }
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(grpc::CONTENT_TYPE) {
        return Err(Status::new(
            errno::ERESPONSE,
            format!("the response's content-type is `{content_type}`, not application/grpc"),
        ));
    }
    let encoding = parts
        .headers
        .get(GRPC_ENCODING)
        .map(|v| v.to_str().ok().and_then(parse_encoding))
        .unwrap_or(Some(CompressType::None));
    encoding.ok_or_else(|| {
        Status::new(
            errno::ERESPONSE,
            "the response's grpc-encoding is not one Brisk decodes",
        )
    })
}

/// gRPC's mapping of HTTP statuses for responses that are not gRPC.
fn http_status_to_grpc(status: http::StatusCode) -> u32 {
    match status.as_u16() {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// The outcome a call's `grpc-status` (in its trailers, or in the headers of a trailers-only
/// response) says: the exact code a Brisk server sent in `brisk-error-code`, else the error
/// table's code for the status. A stopping server (ELOGOFF) or a foreign server's UNAVAILABLE
/// is a transport failure, so clients retry elsewhere as they do on baidu_std.
/// The status names `remote`, the server that sent it.
fn call_result(headers: &HeaderMap, remote: SocketAddr) -> Result<(), Failure> {
    let Some(value) = headers.get(GRPC_STATUS) else {
        return Err(Failure::server(Status::new(
            errno::ERESPONSE,
            "the response ended without grpc-status",
        )));
    };
    let Some(status) = parse_status(value.as_bytes()) else {
        return Err(Failure::server(Status::new(
            errno::ERESPONSE,
            format!("bad grpc-status {value:?}"),
        )));
    };
    if status == code::OK {
        return Ok(());
    }
    // Brisk's exact code, when it agrees with the status (a proxy or a foreign server cannot
    // turn an INTERNAL into a retried ELOGOFF).
    let exact = headers
        .get(grpc::BRISK_ERROR_CODE)
        .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
        .filter(|code| *code > 0 && grpc::grpc_status_from_errno(*code) == status);
    let message = headers
        .get(GRPC_MESSAGE)
        .and_then(|v| v.to_str().ok())
        .map(percent_decode);
    // brpc's gRPC server sends its error text, `[address][E<code>]words`: the words are the
    // message, and the code is brpc's exact one when it agrees with the status.
    let brpc = match (&message, exact) {
        (Some(message), None) => crate::error::split_brpc_error_text(message)
            .map(|(code, words)| (code, words.to_owned())),
        _ => None,
    };
    let (exact, message) = match brpc {
        Some((code, words)) => {
            let agrees = code > 0 && grpc::grpc_status_from_errno(code) == status;
            (agrees.then_some(code), Some(words))
        }
        None => (exact, message),
    };
    let message = match (message, exact) {
        (Some(message), _) => message,
        // A Brisk handler's empty text stays empty, as on the other protocols.
        (None, Some(_)) => String::new(),
        (None, None) => grpc::status_name(status).to_owned(),
    };
    let brisk_code = exact.unwrap_or_else(|| errno_from_grpc_status(status));
    let mut status = Status::new(brisk_code, message).with_remote(remote);
    if let Some(details) = headers
        .get(grpc::STATUS_DETAILS)
        .and_then(|v| grpc::decode_binary_value(v.to_str().ok()?))
    {
        status = status.with_details(details);
    }
    if brisk_code == errno::ELOGOFF {
        return Err(Failure::transport(status));
    }
    Err(Failure::server(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMOTE: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8000);

    #[test]
    fn brpcs_error_text_in_grpc_message_gives_its_code_and_words() {
        let result = |status: &'static str, message: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-status", HeaderValue::from_static(status));
            headers.insert("grpc-message", HeaderValue::from_static(message));
            call_result(&headers, REMOTE).unwrap_err().status
        };
        // brpc's ENOMETHOD as UNIMPLEMENTED: the exact code, the words alone.
        let status = result("12", "[127.0.0.1:8000][E1002]Fail to find method=x");
        assert_eq!(status.code(), errno::ENOMETHOD);
        assert_eq!(
            status.to_string(),
            "[E1002][127.0.0.1:8000]Fail to find method=x"
        );
        // An application's code, INTERNAL on the wire as every code gRPC has no kind for: kept,
        // and shown once (not `[E2001][addr][addr][E404]...`).
        let status = result("13", "[127.0.0.1:8000][E404]no such item");
        assert_eq!(status.to_string(), "[E404][127.0.0.1:8000]no such item");
        // A code that disagrees with the status: the table's code, the words alone.
        let status = result("14", "[127.0.0.1:8000][E1002]gone");
        assert_eq!(
            (status.code(), status.message()),
            (errno::EUNAVAILABLE, "gone")
        );
        // Any other text stays as it is.
        assert_eq!(result("13", "[oops] plain").message(), "[oops] plain");
    }

    #[test]
    fn grpc_status_becomes_a_brisk_failure() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            call_result(&headers, REMOTE).unwrap_err().status.code(),
            errno::ERESPONSE
        );
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(call_result(&headers, REMOTE).is_ok());
        headers.insert("grpc-status", HeaderValue::from_static("12"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("Fail%20to find %25"),
        );
        let failure = call_result(&headers, REMOTE).unwrap_err();
        assert_eq!(failure.status.code(), errno::ENOMETHOD);
        assert_eq!(failure.status.message(), "Fail to find %");
        assert!(!failure.is_transport());
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        let failure = call_result(&headers, REMOTE).unwrap_err();
        assert_eq!(failure.status.code(), errno::EUNAVAILABLE);
        assert!(failure.status.is_retryable(), "UNAVAILABLE is tried again");
        assert!(!failure.is_transport(), "the server answered");
        headers.insert(grpc::BRISK_ERROR_CODE, HeaderValue::from(errno::ELOGOFF));
        let failure = call_result(&headers, REMOTE).unwrap_err();
        assert_eq!(failure.status.code(), errno::ELOGOFF);
        assert!(
            failure.is_transport(),
            "a stopping server is retried elsewhere"
        );
        headers.insert("grpc-status", HeaderValue::from_static("13"));
        headers.insert(grpc::BRISK_ERROR_CODE, HeaderValue::from(4321));
        let failure = call_result(&headers, REMOTE).unwrap_err();
        assert_eq!(failure.status.code(), 4321, "Brisk's exact code wins");
        assert_eq!(failure.status.remote_side(), Some(REMOTE));
        assert!(!failure.is_transport());
        // An exact code that contradicts the status is not believed.
        headers.insert(grpc::BRISK_ERROR_CODE, HeaderValue::from(errno::ELOGOFF));
        let failure = call_result(&headers, REMOTE).unwrap_err();
        assert_eq!(failure.status.code(), errno::EINTERNAL);
        assert!(!failure.is_transport());
        // A Brisk handler's empty text stays empty.
        headers.insert(grpc::BRISK_ERROR_CODE, HeaderValue::from(4321));
        headers.remove("grpc-message");
        assert_eq!(
            call_result(&headers, REMOTE).unwrap_err().status.message(),
            ""
        );
        headers.remove(grpc::BRISK_ERROR_CODE);
        headers.insert("grpc-status", HeaderValue::from_static("x"));
        assert_eq!(
            call_result(&headers, REMOTE).unwrap_err().status.code(),
            errno::ERESPONSE
        );
        headers.remove("grpc-message");
        headers.insert("grpc-status", HeaderValue::from_static("4"));
        let failure = call_result(&headers, REMOTE).unwrap_err();
        assert_eq!(failure.status.code(), errno::ERPCTIMEDOUT);
        assert_eq!(failure.status.message(), "DEADLINE_EXCEEDED");
    }

    #[test]
    fn request_heads_carry_grpc_headers_and_metadata() {
        let method = MethodDescriptor::new("example.EchoService", "Echo");
        let metadata = vec![("X-Trace".to_owned(), "abc".to_owned())];
        let authority = grpc_authority(REMOTE, &Security::default()).unwrap();
        let head = RequestHead {
            authority: &authority,
            method: &method,
            headers: &metadata,
            deadline: Some(Instant::now() + std::time::Duration::from_secs(2)),
            log_id: Some(7),
            trace: Some(TraceIds {
                trace_id: 0xabc,
                span_id: 0x12,
                parent_span_id: 0x3,
            }),
            encoding: CompressType::Gzip,
        };
        let settings = CallSettings::for_tests();
        let parts = head.build(&settings).unwrap();
        assert_eq!(parts.uri, "http://127.0.0.1:8000/example.EchoService/Echo");
        assert_eq!(parts.method, http::Method::POST);
        assert_eq!(parts.uri.path(), "/example.EchoService/Echo");
        let h = &parts.headers;
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["grpc-encoding"], "gzip");
        assert_eq!(h["grpc-accept-encoding"], grpc::ACCEPT_ENCODING);
        assert_eq!(h["log-id"], "7");
        assert_eq!(h["x-trace"], "abc");
        assert_eq!(
            h["traceparent"],
            "00-00000000000000000000000000000abc-0000000000000012-01"
        );
        assert_eq!(h["x-bd-trace-id"], "2748");
        assert_eq!(h["x-bd-span-id"], "18");
        assert_eq!(h["x-bd-parent-span-id"], "3");
        let timeout = grpc::parse_timeout(h["grpc-timeout"].to_str().unwrap()).unwrap();
        assert!(timeout <= std::time::Duration::from_secs(2));
        assert!(timeout > std::time::Duration::from_secs(1));

        let bad = vec![("bad name".to_owned(), "x".to_owned())];
        let head = RequestHead {
            headers: &bad,
            ..head
        };
        assert_eq!(head.build(&settings).unwrap_err().code(), errno::EREQUEST);
    }

    #[test]
    fn only_gzip_and_deflate_are_sent() {
        for ct in [CompressType::None, CompressType::Gzip, CompressType::Zlib] {
            assert_eq!(request_encoding(ct), Ok(ct));
        }
        assert_eq!(
            request_encoding(CompressType::Snappy).unwrap_err().code(),
            errno::EREQUEST
        );
    }

    #[test]
    fn http_statuses_map_as_grpc_says() {
        assert_eq!(
            http_status_to_grpc(http::StatusCode::NOT_FOUND),
            code::UNIMPLEMENTED
        );
        assert_eq!(
            http_status_to_grpc(http::StatusCode::SERVICE_UNAVAILABLE),
            code::UNAVAILABLE
        );
        assert_eq!(
            http_status_to_grpc(http::StatusCode::IM_A_TEAPOT),
            code::UNKNOWN
        );
    }
}
