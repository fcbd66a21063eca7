//! gRPC calls on an HTTP/2 connection: unary and streaming methods, `grpc-timeout`,
//! `grpc-status`, metadata, gzip and deflate, and `grpc.health.v1.Health`.
//!
//! Every failure is answered as gRPC does: HTTP 200 with `grpc-status` and a percent-encoded
//! `grpc-message`, in trailers after the messages or alone in a trailers-only response. The
//! status comes from the Brisk error code through the error table
//! ([`grpc::ERROR_TABLE`]), the message is the handler's text alone, and the exact code goes
//! beside them in a `brisk-error-code` trailer, so Brisk clients see the code the handler
//! returned.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::FutureExt;
use http::header::{AsHeaderName, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::time::{Instant, Sleep};

use super::body::{empty_body, RequestBody, ResponseBody};
use super::context::client_timeout;
use super::dispatch::{method_name, panic_message, past_deadline, run_handler, CancelCount};
use super::interceptor::intercept_all;
use super::registry::{record_answer, Arrival, MethodGuard};
use super::state::{wait_for_phase, InflightGuard, Peer, Phase, Shared};
use super::{ServerContext, Service};
use crate::compress::CompressType;
use crate::protocol::grpc::{self, grpc_status_from_errno, percent_encode};
use crate::protocol::TraceIds;
use crate::rpcz::{self, Span};
use crate::streaming::BytesStream;
use crate::transport::grpc_body::{
    append_message, message_chunks, BodyMessages, Reader, COALESCE_LIMIT,
};
use crate::transport::grpc_headers::{
    ACCEPTED_ENCODINGS, CONTENT_TYPE_GRPC, GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_MESSAGE,
    GRPC_STATUS, GRPC_TIMEOUT, STATUS_OK,
};
use crate::{errno, Status};

/// A gRPC error to answer with: a gRPC status code, its message and Brisk's exact code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GrpcError {
    /// The `grpc-status`.
    pub(super) code: u32,
    /// The `grpc-message`, not yet percent-encoded.
    pub(super) message: String,
    /// The Brisk code, sent in the `brisk-error-code` trailer.
    pub(super) brisk_code: i32,
    /// The status's binary details, sent as `grpc-status-details-bin`.
    pub(super) details: Option<Bytes>,
}

impl GrpcError {
    /// The answer to a Brisk failure: the status the error table gives its code, its text, and
    /// the code itself. Codes `<= 0` become EINTERNAL, as on baidu_std.
    pub(super) fn from_status(status: &Status) -> Self {
        let brisk_code = if status.code() <= 0 {
            errno::EINTERNAL
        } else {
            status.code()
        };
        GrpcError {
            code: grpc_status_from_errno(brisk_code),
            message: status.message().to_owned(),
            brisk_code,
            details: (!status.details().is_empty())
                .then(|| Bytes::copy_from_slice(status.details())),
        }
    }
}

/// Answers one gRPC call (a request whose content-type is `application/grpc...`).
pub(crate) async fn serve(
    request: http::Request<RequestBody>,
    peer: Peer,
    shared: Arc<Shared>,
) -> http::Response<ResponseBody> {
    let (parts, body) = request.into_parts();
    let fail = |status: Status| failure_response(&GrpcError::from_status(&status), &[], &[]);
    if parts.method != http::Method::POST {
        return fail(Status::new(
            errno::EREQUEST,
            format!("gRPC calls are POST, not {}", parts.method),
        ));
    }
    let Some((service_name, method_name)) = split_path(parts.uri.path()) else {
        return fail(Status::new(
            errno::ENOMETHOD,
            format!("Fail to find method={}", parts.uri.path()),
        ));
    };
    if shared.phase_now() != Phase::Running {
        return fail(Status::new(errno::ELOGOFF, "Server is stopping"));
    }
    // The credential first: callers without one learn nothing of the methods.
    let mut call = match Call::prepare(&parts.headers, peer, &shared) {
        Ok(call) => call,
        Err(error) => return failure_response(&error, &[], &[]),
    };
    // Handlers see all the metadata, moved rather than copied.
    call.context.request_headers = parts.headers;
    let Some((service, method)) = shared.registry.find(service_name, method_name) else {
        return fail(Status::new(
            errno::ENOMETHOD,
            format!("Fail to find method={service_name}/{method_name}"),
        ));
    };
    let service = Arc::clone(service);
    let messages = BodyMessages::new(
        body,
        call.context.request_compress_type,
        shared.options.max_body_size,
        Reader::Server,
    );
    let kind = service
        .method_kinds()
        .get(method)
        .copied()
        .unwrap_or_default();
    if kind.is_streaming() {
        serve_streaming(&service, method, call, messages, &shared).await
    } else {
        serve_unary(&service, method, call, messages, &shared).await
    }
}

/// `/package.Service/Method` → (`package.Service`, `Method`).
pub(super) fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((service, method))
}

/// A call that passed the checks: its context, deadline and response options.
struct Call {
    context: ServerContext,
    deadline: Option<Instant>,
    /// The response encodings the client accepts.
    accepts: grpc::AcceptEncoding,
}

impl Call {
    /// Reads the headers: credential, encoding, timeout, metadata.
    fn prepare(headers: &HeaderMap, peer: Peer, shared: &Shared) -> Result<Call, GrpcError> {
        let fail = |status: Status| GrpcError::from_status(&status);
        let auth_context = authenticate(headers, shared, peer.remote).map_err(fail)?;
        let encoding = header_str(headers, &GRPC_ENCODING).unwrap_or("identity");
        let Some(request_compress_type) = grpc::parse_encoding(encoding) else {
            return Err(GrpcError::from_status(&Status::unimplemented(format!(
                "grpc-encoding `{encoding}` is not supported (supported: identity, {})",
                grpc::ACCEPT_ENCODING.replace(',', ", ")
            ))));
        };
        let timeout = header_str(headers, &GRPC_TIMEOUT).and_then(|value| {
            let parsed = grpc::parse_timeout(value);
            if parsed.is_none() {
                tracing::debug!(remote = %peer.remote, value, "ignoring a bad grpc-timeout");
            }
            parsed
        });
        let mut context = ServerContext::new(peer.remote, peer.local);
        context.tls = peer.tls;
        context.log_id = header_str(headers, "log-id")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        context.timeout_ms = timeout.map(grpc::timeout_millis);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        context.deadline = deadline.map(Instant::into_std);
        context.request_compress_type = request_compress_type;
        context.user_fields = custom_metadata(headers);
        context.auth_context = auth_context;
        Ok(Call {
            context,
            deadline,
            accepts: header_str(headers, &GRPC_ACCEPT_ENCODING)
                .map(grpc::AcceptEncoding::parse)
                .unwrap_or_default(),
        })
    }

    fn timed_out(&self) -> Status {
        past_deadline(self.context.timeout_ms)
    }
}

/// Verifies the `authorization` header when the server has an authenticator.
pub(super) fn authenticate(
    headers: &HeaderMap,
    shared: &Shared,
    remote: SocketAddr,
) -> Result<Option<Arc<crate::AuthContext>>, Status> {
    let Some(authenticator) = shared.options.authenticator.as_deref() else {
        return Ok(None);
    };
    let fail = |why: &str| Status::new(errno::ERPCAUTH, format!("Fail to authenticate: {why}"));
    let credential = match headers.get(http::header::AUTHORIZATION) {
        None => return Err(fail("no credential")),
        Some(value) => value
            .to_str()
            .map_err(|_| fail("the credential is not text"))?,
    };
    authenticator
        .verify_credential(credential, remote)
        .map(|who| Some(Arc::new(who)))
        .map_err(|e| fail(e.message()))
}

/// A header's value, when present and text (visible ASCII).
pub(super) fn header_str(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Headers that are part of the protocol, never custom metadata.
fn is_reserved(name: &str) -> bool {
    name.starts_with("grpc-")
        || name.starts_with(':')
        || matches!(
            name,
            "content-type"
                | "content-length"
                | "te"
                | "host"
                | "user-agent"
                | "connection"
                | "accept-encoding"
                | "authorization"
                | "log-id"
                | "brisk-error-code"
        )
}

/// The request's custom metadata (text values only; the last of repeated names wins).
fn custom_metadata(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| !is_reserved(name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// A response head: 200, `application/grpc`, and the handler's metadata (invalid or reserved
/// names are left out).
fn response_head(metadata: &[(String, String)], encoding: CompressType) -> http::response::Builder {
    let mut builder = http::Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE_GRPC)
        .header(GRPC_ACCEPT_ENCODING, ACCEPTED_ENCODINGS);
    if let Some(name) = grpc::encoding_name(encoding) {
        builder = builder.header(GRPC_ENCODING, HeaderValue::from_static(name));
    }
    if let Some(headers) = builder.headers_mut() {
        for (name, value) in metadata {
            let name = name.to_ascii_lowercase();
            if is_reserved(&name) {
                continue;
            }
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => tracing::debug!(
                    name,
                    "dropping response metadata that is not a valid header"
                ),
            }
        }
    }
    builder
}

/// `grpc-status`, `grpc-message` and `brisk-error-code` of a failure, for trailers or a
/// trailers-only head.
fn status_headers(error: &GrpcError, headers: &mut HeaderMap) {
    headers.insert(GRPC_STATUS, HeaderValue::from(error.code));
    if !error.message.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&percent_encode(&error.message)) {
            headers.insert(GRPC_MESSAGE, value);
        }
    }
    headers.insert(grpc::BRISK_ERROR_CODE, HeaderValue::from(error.brisk_code));
    if let Some(details) = &error.details {
        if let Ok(value) = HeaderValue::from_str(&grpc::encode_binary_value(details)) {
            headers.insert(grpc::STATUS_DETAILS, value);
        }
    }
}

/// Adds a handler's trailing metadata (invalid or reserved names are left out).
fn add_trailing(headers: &mut HeaderMap, trailing: &[(String, String)]) {
    for (name, value) in trailing {
        let name = name.to_ascii_lowercase();
        if is_reserved(&name) {
            tracing::warn!(%name, "a reserved trailer name is not sent");
            continue;
        }
        match (
            http::header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(%name, "an invalid trailer is not sent"),
        }
    }
}

/// The trailers of a call that ended with `error`, or OK, with the handler's trailing
/// metadata.
fn trailers(error: Option<&GrpcError>, trailing: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    match error {
        Some(error) => status_headers(error, &mut map),
        None => {
            map.insert(GRPC_STATUS, STATUS_OK);
        }
    }
    add_trailing(&mut map, trailing);
    map
}

/// A trailers-only response: the status in the head, no body.
pub(super) fn failure_response(
    error: &GrpcError,
    metadata: &[(String, String)],
    trailing: &[(String, String)],
) -> http::Response<ResponseBody> {
    let mut response = response_head(metadata, CompressType::None)
        .body(empty_body())
        .unwrap_or_else(|_| http::Response::new(empty_body()));
    status_headers(error, response.headers_mut());
    add_trailing(response.headers_mut(), trailing);
    response
}

/// A response with one message and OK trailers.
pub(super) fn message_response(
    payload: Bytes,
    encoding: CompressType,
    metadata: &[(String, String)],
    trailing: &[(String, String)],
) -> http::Response<ResponseBody> {
    let compressed = encoding != CompressType::None;
    let payload = if compressed {
        match crate::compress::compress_to_bytes(encoding, &payload) {
            Ok(packed) => packed,
            Err(e) => {
                let status = Status::internal(format!("Fail to compress response: {e}"));
                return failure_response(&GrpcError::from_status(&status), metadata, trailing);
            }
        }
    } else {
        payload
    };
    let chunks = match message_chunks(compressed, payload) {
        Ok(chunks) => chunks,
        Err(e) => {
            let status = Status::internal(format!("response {}", e.message()));
            return failure_response(&GrpcError::from_status(&status), metadata, trailing);
        }
    };
    let frames = chunks
        .into_iter()
        .map(Frame::data)
        .chain(std::iter::once(Frame::trailers(trailers(None, trailing))))
        .map(Ok);
    let body = StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();
    response_head(metadata, encoding)
        .body(body)
        .unwrap_or_else(|_| http::Response::new(empty_body()))
}

/// Runs `work` until `deadline`, if any; `None` once it has passed.
async fn until<F: Future>(deadline: Option<Instant>, work: F) -> Option<F::Output> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, work).await.ok(),
        None => Some(work.await),
    }
}

/// A unary method: one request message in, one response message out.
async fn serve_unary(
    service: &Arc<dyn Service>,
    method: usize,
    call: Call,
    mut messages: BodyMessages<RequestBody>,
    shared: &Arc<Shared>,
) -> http::Response<ResponseBody> {
    let accepts = call.accepts;
    // Reading the request is bounded by the deadline here; the handler, by the handler runner,
    // which has the deadline in the context (one timer at a time, not two).
    // The server's `request_read_timeout` bounds the read too, whatever deadline the client
    // gave: a far one must not let it trickle its request.
    let read_timeout = shared.options.request_read_timeout.filter(|t| !t.is_zero());
    let read_limit = read_timeout.and_then(|t| Instant::now().checked_add(t));
    let read_deadline = match (call.deadline, read_limit) {
        (Some(call), Some(read)) => Some(call.min(read)),
        (call, read) => call.or(read),
    };
    let payload = match until(read_deadline, single_message(&mut messages)).await {
        Some(Ok(payload)) => payload,
        Some(Err(status)) => return failure_response(&GrpcError::from_status(&status), &[], &[]),
        None if call.deadline == read_deadline => {
            return failure_response(&GrpcError::from_status(&call.timed_out()), &[], &[])
        }
        None => {
            let late = Status::new(
                errno::EREQUEST,
                format!(
                    "Fail to read the request within request_read_timeout={}ms",
                    read_timeout.unwrap_or_default().as_millis()
                ),
            );
            return failure_response(&GrpcError::from_status(&late), &[], &[]);
        }
    };
    drop(messages);
    // Counted from here, as on HTTP: a client that never sends its body must not hold
    // `Server::join`.
    let _inflight = InflightGuard::enter(shared);
    if let Some(limited) = shared.over_concurrency() {
        return failure_response(&GrpcError::from_status(&limited), &[], &[]);
    }
    let timeout = client_timeout(call.context.timeout_ms);
    let arrival = arrival(&call.context, payload.len());
    let admitted = match shared
        .registry
        .enter_method(&**service, method, timeout, arrival)
    {
        Ok(admitted) => admitted,
        Err(limited) => return failure_response(&GrpcError::from_status(&limited), &[], &[]),
    };
    // Cancelled at the deadline and counted as on every protocol, also when the client's
    // reset drops it.
    let mut method_guard = admitted.guard;
    let response = match run_handler(
        shared,
        service,
        method,
        call.context,
        payload,
        admitted.blocking,
        admitted.span,
    )
    .await
    {
        Ok(response) => response,
        Err(status) => {
            if let Some(guard) = &mut method_guard {
                guard.answered(status.code());
            }
            return failure_response(&GrpcError::from_status(&status), &[], &[]);
        }
    };
    record_answer(&mut method_guard, &response.result);
    let context = response.context;
    match response.result {
        Ok(payload) => {
            if let Some(guard) = &method_guard {
                guard.response_size(payload.len());
            }
            let encoding = accepts.choose(context.response_compress_type);
            message_response(
                payload,
                encoding,
                &context.response_headers,
                &context.response_trailers,
            )
        }
        Err(status) => failure_response(
            &GrpcError::from_status(&status),
            &context.response_headers,
            &context.response_trailers,
        ),
    }
}

/// What rpcz is told of a gRPC call as it arrives: its trace ids come in its metadata
/// (`traceparent`, or brpc's `x-bd-*`).
fn arrival(context: &ServerContext, request_size: usize) -> Arrival {
    Arrival {
        upstream: TraceIds::from_headers(&context.request_headers),
        protocol: "h2:grpc",
        remote: context.remote_side,
        log_id: context.log_id,
        request_size,
    }
}

/// Exactly one message, and the end of the body.
pub(super) async fn single_message(
    messages: &mut BodyMessages<RequestBody>,
) -> Result<Bytes, Status> {
    let first = match messages.next_message().await {
        Some(first) => first?,
        None => {
            return Err(Status::new(
                errno::EREQUEST,
                "a unary call needs one request message, got none",
            ))
        }
    };
    match messages.next_message().await {
        None => Ok(first),
        Some(Err(status)) => Err(status),
        Some(Ok(_)) => Err(Status::new(
            errno::EREQUEST,
            "a unary call takes one request message, got more",
        )),
    }
}

/// A streaming method: request messages flow to the handler as they arrive, its responses
/// go out as it yields them, then the trailers.
async fn serve_streaming(
    service: &Arc<dyn Service>,
    method: usize,
    call: Call,
    messages: BodyMessages<RequestBody>,
    shared: &Arc<Shared>,
) -> http::Response<ResponseBody> {
    let mut inflight = StreamGuard::new(shared);
    if let Some(limited) = shared.over_concurrency() {
        return failure_response(&GrpcError::from_status(&limited), &[], &[]);
    }
    // A streaming handler always runs on its stream's task (`blocking` is for unary methods).
    let timeout = client_timeout(call.context.timeout_ms);
    let arrival = arrival(&call.context, 0);
    let rpcz_span = match shared
        .registry
        .enter_method(&**service, method, timeout, arrival)
    {
        Ok(admitted) => {
            inflight.method = admitted.guard;
            admitted.span
        }
        Err(limited) => return failure_response(&GrpcError::from_status(&limited), &[], &[]),
    };
    let deadline = call.deadline;
    let timed_out = call.timed_out();
    let mut context = call.context;
    if !shared.interceptors.is_empty() {
        let name = method_name(&**service, method);
        let checked = intercept_all(&shared.interceptors, &mut context, name);
        let refused = match until(deadline, AssertUnwindSafe(checked).catch_unwind()).await {
            Some(Ok(Ok(()))) => None,
            Some(Ok(Err(refused))) => Some(refused),
            Some(Err(panic)) => return panicked(&panic, &[]),
            None => Some(timed_out.clone()),
        };
        if let Some(refused) = refused {
            if let Some(guard) = &mut inflight.method {
                guard.answered(refused.code());
            }
            return failure_response(&GrpcError::from_status(&refused), &[], &[]);
        }
    }
    let requests: BytesStream = Box::pin(messages);
    // A traced call's span is current while its handler runs (opening the stream, then
    // yielding each response), so the calls it makes join the trace.
    if let Some(traced) = &rpcz_span {
        traced.annotate("handler start");
    }
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let _current = rpcz_span.as_ref().map(rpcz::enter);
        service.call_streaming(method, context, requests)
    }));
    let future = match started {
        Ok(future) => future,
        Err(panic) => {
            if let Some(guard) = &mut inflight.method {
                guard.answered(errno::EINTERNAL);
            }
            return panicked(&panic, &[]);
        }
    };
    let mut cancelled = CancelCount::new(shared);
    let future = rpcz::within(rpcz_span.clone(), future);
    let opened = until(deadline, AssertUnwindSafe(future).catch_unwind()).await;
    if opened.is_some() {
        cancelled.finish();
    }
    drop(cancelled);
    let answered = |inflight: &mut StreamGuard, code: i32| {
        if let Some(guard) = &mut inflight.method {
            guard.answered(code);
        }
    };
    let response = match opened {
        None => {
            answered(&mut inflight, timed_out.code());
            return failure_response(&GrpcError::from_status(&timed_out), &[], &[]);
        }
        Some(Err(panic)) => {
            answered(&mut inflight, errno::EINTERNAL);
            return panicked(&panic, &[]);
        }
        Some(Ok(response)) => response,
    };
    let mut context = response.context;
    let stream = match response.result {
        Ok(stream) => stream,
        Err(status) => {
            answered(
                &mut inflight,
                if status.code() > 0 {
                    status.code()
                } else {
                    errno::EINTERNAL
                },
            );
            return failure_response(
                &GrpcError::from_status(&status),
                &context.response_headers,
                &context.response_trailers,
            );
        }
    };
    let encoding = call.accepts.choose(context.response_compress_type);
    let frames = ResponseFrames {
        messages: Some(stream),
        deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
        timed_out,
        encoding,
        trailing: std::mem::take(&mut context.response_trailers),
        inflight,
        rpcz_span,
        ended: None,
    };
    streaming_response(frames, &context.response_headers, encoding)
}

/// A response whose messages stream out of `frames`.
pub(super) fn streaming_response(
    frames: ResponseFrames,
    metadata: &[(String, String)],
    encoding: CompressType,
) -> http::Response<ResponseBody> {
    response_head(metadata, encoding)
        .body(StreamBody::new(frames).boxed_unsync())
        .unwrap_or_else(|_| http::Response::new(empty_body()))
}

fn panicked(
    panic: &Box<dyn std::any::Any + Send>,
    metadata: &[(String, String)],
) -> http::Response<ResponseBody> {
    let what = panic_message(panic);
    tracing::error!("gRPC handler panicked: {what}");
    let status = Status::internal(format!("handler panicked: {what}"));
    failure_response(&GrpcError::from_status(&status), metadata, &[])
}

/// A handler's response stream as HTTP/2 body frames: DATA chunks of the messages ready at
/// once (up to [`COALESCE_LIMIT`] bytes each), then the trailers (OK, the status of an `Err` item, DEADLINE_EXCEEDED, or INTERNAL for a panic).
/// Counts as a request in flight until it ends or the client goes away.
pub(super) struct ResponseFrames {
    /// The encoded responses; `None` once the trailers are out.
    pub(super) messages: Option<BytesStream>,
    /// When the call must end, from `grpc-timeout`.
    pub(super) deadline: Option<Pin<Box<Sleep>>>,

    /// The status the call ends with at its deadline.
    pub(super) timed_out: Status,
    /// How messages are compressed (gzip, deflate, or not).
    pub(super) encoding: CompressType,
    /// The handler's trailing metadata, sent with the final status.
    pub(super) trailing: Vec<(String, String)>,
    /// Counts the call as in flight while its responses stream.
    pub(super) inflight: StreamGuard,
    /// How the responses ended (with an error, or not), once the chunk before it is out.
    pub(super) ended: Option<Option<Status>>,
    /// The call's rpcz span, current while the handler's stream is polled.
    pub(super) rpcz_span: Option<Arc<Span>>,
}

/// Counts a streaming call as in flight, but gives the count up once the server has been
/// stopping for [`stream_stop_grace`](super::ServerOptions::stream_stop_grace): a stream its
/// client keeps open, or stops reading, must not hold `Server::join` forever. (The connection is
/// then closed with the server.)
pub(super) struct StreamGuard {
    slot: Arc<GuardSlot>,
    shared: Arc<Shared>,
    /// The stream's place in its method's `max_concurrency`, while it is open.
    method: Option<MethodGuard>,
    /// Dropped with the stream, which ends the watching task.
    _ended: tokio::sync::oneshot::Sender<()>,
}

/// The count of a stream, and who to wake when the server gives it up.
struct GuardSlot {
    guard: std::sync::Mutex<Option<InflightGuard>>,
    /// The response stream's task: woken to end the stream with ELOGOFF at once, even while
    /// it waits for the handler.
    waker: futures_util::task::AtomicWaker,
}

impl StreamGuard {
    /// Counts a new stream.
    pub(super) fn new(shared: &Arc<Shared>) -> Self {
        let slot = Arc::new(GuardSlot {
            guard: std::sync::Mutex::new(Some(InflightGuard::enter(shared))),
            waker: futures_util::task::AtomicWaker::new(),
        });
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
        let mut phase = shared.phase.subscribe();
        let watched = Arc::downgrade(&slot);
        let grace = shared.options.stream_stop_grace;
        tokio::spawn(async move {
            let stop_grace_over = async {
                wait_for_phase(&mut phase, |p| p != Phase::Running).await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                _ = ended_rx => {}
                () = stop_grace_over => {
                    if let Some(slot) = watched.upgrade() {
                        slot.guard.lock().unwrap_or_else(|e| e.into_inner()).take();
                        slot.waker.wake();
                    }
                }
            }
        });
        StreamGuard {
            slot,
            shared: Arc::clone(shared),
            method: None,
            _ended: ended_tx,
        }
    }

    /// Whether the server gave up waiting for this stream; if not, `cx` is woken when it does.
    fn released(&self, cx: &Context<'_>) -> bool {
        self.slot.waker.register(cx.waker());
        self.slot
            .guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

impl Drop for ResponseFrames {
    fn drop(&mut self) {
        // Unfinished: the client reset the stream, or went away, before it ended.
        if self.messages.is_some() {
            self.inflight.shared.count_cancelled();
        }
    }
}

impl ResponseFrames {
    fn end(&mut self, status: Option<&Status>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(guard) = &mut self.inflight.method {
            guard.answered(status.map_or(0, Status::code));
        }
        self.messages = None;
        self.deadline = None;
        let trailers = trailers(status.map(GrpcError::from_status).as_ref(), &self.trailing);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

impl Stream for ResponseFrames {
    type Item = Result<Frame<Bytes>, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let _current = this.rpcz_span.as_ref().map(rpcz::enter);
        if let Some(status) = this.ended.take() {
            return this.end(status.as_ref());
        }
        let Some(messages) = this.messages.as_mut() else {
            return Poll::Ready(None);
        };
        let expired = this
            .deadline
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        if expired {
            this.inflight.shared.count_cancelled();
            let status = this.timed_out.clone();
            return this.end(Some(&status));
        }
        if this.inflight.released(cx) {
            return this.end(Some(&Status::new(errno::ELOGOFF, "Server is stopping")));
        }
        // The responses ready now go out together, up to COALESCE_LIMIT bytes a chunk.
        let mut chunk = BytesMut::new();
        let mut ended = None;
        while chunk.len() < COALESCE_LIMIT {
            let polled =
                std::panic::catch_unwind(AssertUnwindSafe(|| messages.as_mut().poll_next(cx)));
            match polled {
                Ok(Poll::Ready(Some(Ok(message)))) => {
                    let appended = append_message(
                        this.encoding,
                        &message,
                        &mut chunk,
                        "response",
                        errno::EINTERNAL,
                    );
                    if let Err(status) = appended {
                        ended = Some(Some(status));
                        break;
                    }
                }
                Ok(Poll::Ready(Some(Err(status)))) => {
                    ended = Some(Some(status));
                    break;
                }
                Ok(Poll::Ready(None)) => {
                    ended = Some(None);
                    break;
                }
                Err(panic) => {
                    let what = panic_message(&panic).to_owned();
                    tracing::error!("gRPC response stream panicked: {what}");
                    ended = Some(Some(Status::internal(format!("handler panicked: {what}"))));
                    break;
                }
                Ok(Poll::Pending) => break,
            }
        }
        match ended {
            _ if !chunk.is_empty() => {
                // The end goes out after these responses.
                this.ended = ended;
                Poll::Ready(Some(Ok(Frame::data(chunk.freeze()))))
            }
            Some(status) => this.end(status.as_ref()),
            None => Poll::Pending,
        }
    }
}
