//! The `h2:grpc` client protocol: unary and streaming calls over one HTTP/2 connection per
//! server, and the gRPC message stream both ends read from an HTTP/2 body.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use h2::client::{ResponseFuture, SendRequest};
use h2::SendStream;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::Body;
use tokio::sync::oneshot;

use super::gather::{Gathering, Queued};
use super::h2_body::{BodySender, H2Body, Outgoing};
use crate::channel::call::{Answer, EncodedRequest, Failure};
use crate::channel::{ChannelOptions, Endpoint, MethodDescriptor};
use crate::compress::CompressType;
use crate::protocol::grpc::{
    self, code, encode_message, errno_from_grpc_status, message_prefix, parse_encoding,
    parse_status, percent_decode, MessageDecoder,
};
use crate::{errno, Status};

/// The messages of a streaming call's request body, each with its 5-byte prefix; an error
/// resets the HTTP/2 stream.
pub(crate) type RequestChunks = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

/// Payloads up to this size are copied behind their prefix into one DATA chunk; larger ones
/// go out as they are, after a 5-byte chunk.
const COPY_LIMIT: usize = 16 * 1024;

/// What Brisk sends as `user-agent`.
const USER_AGENT: &str = concat!("grpc-brisk/", env!("CARGO_PKG_VERSION"));

/// Streams the client may open before the server's SETTINGS say how many it allows (hyper's
/// choice too).
const INITIAL_MAX_SEND_STREAMS: usize = 100;

/// An endpoint's HTTP/2 connection, shared by all calls to it: connected on first use and
/// again once it has closed. Calls clone its sender; no lock is held on the call path.
#[derive(Debug, Default)]
pub(crate) struct H2Slot {
    current: ArcSwapOption<H2Conn>,
    connecting: tokio::sync::Mutex<()>,
}

/// One HTTP/2 connection, driven by its own task. Calls talk to it through `h2` directly:
/// a unary call queues its HEADERS and its DATA (with END_STREAM) from the caller's task and
/// reads the response there, so no task is spawned per call.
pub(crate) struct H2Conn {
    sender: SendRequest<Bytes>,
    /// Set by the connection's task once the connection has ended.
    closed: Arc<AtomicBool>,
    /// Requests queued on the connection, for its task's [`Gathering`].
    queued: Arc<Queued>,
    /// The server's address.
    pub(crate) remote: SocketAddr,
    /// The local address of the connection.
    pub(crate) local: SocketAddr,
    /// Whether the connection runs over TLS (`:scheme` is then `https`).
    secure: bool,
}

impl fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2Conn")
            .field("remote", &self.remote)
            .field("local", &self.local)
            .field("secure", &self.secure)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl H2Slot {
    /// The endpoint's open connection, connecting first if there is none.
    pub(crate) async fn connection(
        &self,
        addr: SocketAddr,
        options: &ChannelOptions,
    ) -> Result<Arc<H2Conn>, Status> {
        if let Some(conn) = self.open() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.open() {
            return Ok(conn);
        }
        let conn = Arc::new(connect_on_io_runtime(addr, options).await?);
        self.current.store(Some(Arc::clone(&conn)));
        Ok(conn)
    }

    fn open(&self) -> Option<Arc<H2Conn>> {
        self.current
            .load_full()
            .filter(|conn| !conn.closed.load(Ordering::Acquire))
    }
}

/// [`connect`] on the runtime that runs connection I/O (the caller's multi-threaded runtime,
/// else Brisk's background one), so the socket and its driver live there: a current-thread
/// or blocking caller never stalls a connection other calls share.
async fn connect_on_io_runtime(
    addr: SocketAddr,
    options: &ChannelOptions,
) -> Result<H2Conn, Status> {
    let options = options.clone();
    let task = crate::executor::io_handle().spawn(async move { connect(addr, &options).await });
    task.await.unwrap_or_else(|e| {
        Err(Status::new(
            errno::EFAILEDSOCKET,
            format!("Fail to connect {addr}: the connecting task failed: {e}"),
        ))
    })
}

/// Connects, does the HTTP/2 handshake within the connect timeout and spawns the connection's
/// driver on the current runtime.
async fn connect(addr: SocketAddr, options: &ChannelOptions) -> Result<H2Conn, Status> {
    let io = crate::transport::stream::connect(addr, options, &[b"h2"]).await?;
    let secure = !matches!(io, crate::transport::stream::ClientIo::Plain(_));
    let local = io
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut builder = h2::client::Builder::new();
    builder
        .enable_push(false)
        .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
        .initial_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .max_header_list_size(1 << 20);
    let handshake = builder.handshake::<_, Bytes>(io);
    let (sender, connection) = match tokio::time::timeout(options.connect_timeout, handshake).await
    {
        Ok(Ok(parts)) => parts,
        Ok(Err(e)) => {
            return Err(Status::new(
                errno::EFAILEDSOCKET,
                format!("HTTP/2 handshake with {addr} failed: {e}"),
            ))
        }
        Err(_) => {
            return Err(Status::new(
                errno::ETIMEDOUT,
                format!(
                    "HTTP/2 handshake with {addr} took over {}ms",
                    options.connect_timeout.as_millis()
                ),
            ))
        }
    };
    let closed = Arc::new(AtomicBool::new(false));
    let queued = Arc::new(Queued::default());
    let driver = Gathering::new(connection, Arc::clone(&queued));
    let ended = Arc::clone(&closed);
    tokio::spawn(async move {
        if let Err(e) = driver.await {
            tracing::debug!(server = %addr, "HTTP/2 connection ended: {e}");
        }
        ended.store(true, Ordering::Release);
    });
    Ok(H2Conn {
        sender,
        closed,
        queued,
        remote: addr,
        local,
        secure,
    })
}

impl H2Conn {
    /// Opens a stream for `request` once the connection has room for one more (the server's
    /// MAX_CONCURRENT_STREAMS). Failures are the connection's.
    async fn open(
        &self,
        mut request: http::Request<()>,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), Status> {
        if self.secure {
            let mut uri = request.uri().clone().into_parts();
            uri.scheme = Some(http::uri::Scheme::HTTPS);
            if let Ok(uri) = http::Uri::from_parts(uri) {
                *request.uri_mut() = uri;
            }
        }
        let mut sender = self
            .sender
            .clone()
            .ready()
            .await
            .map_err(|e| self.broken(e))?;
        sender
            .send_request(request, false)
            .map_err(|e| self.broken(e))
    }

    /// Sends a request whose whole body is `chunks` (the last one ends the stream) and waits
    /// for the response head.
    pub(crate) async fn send(
        &self,
        request: http::Request<()>,
        chunks: Vec<Bytes>,
    ) -> Result<http::Response<H2Body>, Status> {
        let (response, mut body) = self.open(request).await?;
        if chunks.is_empty() {
            body.send_data(Bytes::new(), true)
                .map_err(|e| self.broken(e))?;
        }
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.into_iter().enumerate() {
            body.send_data(chunk, i == last)
                .map_err(|e| self.broken(e))?;
        }
        self.queued.add();
        self.response(response).await
    }

    /// Sends a request whose body is `chunks`, as they come, from a task of its own; the body
    /// is cut short (the stream reset) when `stop` fires or is dropped. Waits for the response
    /// head.
    pub(crate) async fn send_streaming(
        &self,
        request: http::Request<()>,
        chunks: RequestChunks,
        stop: oneshot::Receiver<()>,
    ) -> Result<http::Response<H2Body>, Status> {
        let (response, body) = self.open(request).await?;
        self.queued.add();
        crate::executor::io_handle().spawn(RequestPump {
            sender: BodySender::new(body),
            chunks,
            stop,
        });
        self.response(response).await
    }

    async fn response(&self, response: ResponseFuture) -> Result<http::Response<H2Body>, Status> {
        let response = response.await.map_err(|e| self.broken(e))?;
        Ok(response.map(H2Body::new))
    }

    fn broken(&self, e: h2::Error) -> Status {
        Status::new(
            errno::EFAILEDSOCKET,
            format!("HTTP/2 call to {} failed: {e}", self.remote),
        )
    }
}

/// Feeds a streaming call's request messages into its HTTP/2 stream, one at a time as flow
/// control lets them out. Ends the stream after the last one; resets it on an error, when the
/// server resets it, or when the call has ended (`stop`).
struct RequestPump {
    sender: BodySender,
    chunks: RequestChunks,
    stop: oneshot::Receiver<()>,
}

impl Future for RequestPump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let RequestPump {
            sender,
            chunks,
            stop,
        } = self.get_mut();
        if Pin::new(stop).poll(cx).is_ready() {
            sender.reset(h2::Reason::CANCEL);
            return Poll::Ready(());
        }
        sender.poll_send(cx, |cx| {
            Poll::Ready(match ready!(chunks.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => Outgoing::Data(chunk, false),
                Some(Err(status)) => {
                    tracing::debug!(%status, "streaming call reset");
                    Outgoing::Reset(h2::Reason::CANCEL)
                }
                None => Outgoing::End,
            })
        })
    }
}

/// One unary call attempt over gRPC on `endpoint`.
pub(crate) async fn attempt(
    endpoint: &Arc<Endpoint>,
    options: &ChannelOptions,
    method: &MethodDescriptor,
    request: &EncodedRequest,
) -> Result<Answer, Failure> {
    if !request.attachment.is_empty() {
        return Err(Failure::server(Status::new(
            errno::EREQUEST,
            "h2:grpc cannot carry an attachment",
        )));
    }
    let compressed = request_compression(request.compress_type).map_err(Failure::server)?;
    let head = RequestHead {
        addr: endpoint.addr(),
        method,
        headers: &request.headers,
        deadline: request.deadline,
        log_id: request.log_id,
        compressed,
    };
    let parts = head.build(options).map_err(Failure::server)?;
    let chunks = message_chunks(compressed, request.payload.clone()).map_err(Failure::server)?;
    let conn = endpoint
        .grpc
        .connection(endpoint.addr(), options)
        .await
        .map_err(Failure::transport)?;
    let response = conn
        .send(http::Request::from_parts(parts, ()), chunks)
        .await
        .map_err(Failure::transport)?;
    let (parts, body) = response.into_parts();
    let encoding = check_response_head(&parts).map_err(Failure::server)?;
    let mut headers = header_pairs(&parts.headers);
    let mut messages = BodyMessages::new(body, encoding, options.max_body_size, Reader::Client);
    let mut payload = None;
    while let Some(message) = messages.next_message().await {
        let message = message.map_err(|status| {
            if status.code() == errno::EFAILEDSOCKET {
                Failure::transport(status)
            } else {
                Failure::server(status)
            }
        })?;
        if payload.replace(message).is_some() {
            return Err(Failure::server(Status::new(
                errno::ERESPONSE,
                "a unary call got more than one response message",
            )));
        }
    }
    let trailers = messages.take_trailers();
    if let Some(trailers) = &trailers {
        headers.extend(header_pairs(trailers));
    }
    let status_from = trailers.as_ref().unwrap_or(&parts.headers);
    call_result(status_from).inspect_err(|failure| {
        tracing::debug!(server = %conn.remote, status = %failure.status, "gRPC call failed");
    })?;
    let payload = payload.ok_or_else(|| {
        Failure::server(Status::new(
            errno::ERESPONSE,
            "a unary call ended without a response message",
        ))
    })?;
    Ok(Answer {
        payload,
        attachment: Bytes::new(),
        compress_type: encoding,
        remote: conn.remote,
        local: conn.local,
        headers,
    })
}

/// Whether request messages are compressed: gzip is the only compression gRPC peers know.
pub(crate) fn request_compression(compress_type: CompressType) -> Result<bool, Status> {
    match compress_type {
        CompressType::None => Ok(false),
        CompressType::Gzip => Ok(true),
        other => Err(Status::new(
            errno::EREQUEST,
            format!("h2:grpc compresses with gzip only, not {}", other.name()),
        )),
    }
}

/// What a gRPC request's headers are made of.
pub(crate) struct RequestHead<'a> {
    /// The server's address (the `:authority`).
    pub(crate) addr: SocketAddr,
    /// The method called.
    pub(crate) method: &'a MethodDescriptor,
    /// Custom metadata.
    pub(crate) headers: &'a [(String, String)],
    /// When the call must end (sent as `grpc-timeout`).
    pub(crate) deadline: Option<Instant>,
    /// brpc's log id (sent as `log-id` when not 0).
    pub(crate) log_id: i64,
    /// Whether messages are gzip-compressed.
    pub(crate) compressed: bool,
}

impl RequestHead<'_> {
    /// The request's head: `POST /service/method` with gRPC's headers, the credential and the
    /// metadata. Bad metadata is EREQUEST.
    pub(crate) fn build(&self, options: &ChannelOptions) -> Result<http::request::Parts, Status> {
        let uri = format!(
            "http://{}/{}/{}",
            super::authority(self.addr, options),
            self.method.service(),
            self.method.method()
        );
        let (mut parts, ()) = http::Request::post(uri)
            .body(())
            .map_err(|e| {
                Status::new(
                    errno::EREQUEST,
                    format!(
                        "bad method name {}/{}: {e}",
                        self.method.service(),
                        self.method.method()
                    ),
                )
            })?
            .into_parts();
        let headers = &mut parts.headers;
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(grpc::CONTENT_TYPE),
        );
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        );
        headers.insert("grpc-accept-encoding", HeaderValue::from_static("gzip"));
        if self.compressed {
            headers.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        }
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(value) = HeaderValue::from_str(&grpc::format_timeout(left)) {
                headers.insert("grpc-timeout", value);
            }
        }
        if self.log_id != 0 {
            headers.insert("log-id", HeaderValue::from(self.log_id));
        }
        if let Some(value) = super::authorization(options)? {
            headers.insert(http::header::AUTHORIZATION, value);
        }
        for (name, value) in self.headers {
            let bad = || Status::new(errno::EREQUEST, format!("bad gRPC metadata `{name}`"));
            let name =
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| bad())?;
            let value = HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.append(name, value);
        }
        Ok(parts)
    }
}

/// One message as DATA chunks: prefix and payload together when small, apart (without
/// copying the payload) when large.
pub(crate) fn message_chunks(compressed: bool, payload: Bytes) -> Result<Vec<Bytes>, Status> {
    if payload.len() <= COPY_LIMIT {
        return Ok(vec![message_bytes(compressed, &payload)?]);
    }
    let prefix = message_prefix(compressed, payload.len())
        .map_err(|e| Status::new(errno::EREQUEST, e.to_string()))?;
    Ok(vec![Bytes::copy_from_slice(&prefix), payload])
}

/// One message, prefix and payload, in one buffer.
pub(crate) fn message_bytes(compressed: bool, payload: &[u8]) -> Result<Bytes, Status> {
    let mut buf = BytesMut::new();
    encode_message(compressed, payload, &mut buf)
        .map_err(|e| Status::new(errno::EREQUEST, e.to_string()))?;
    Ok(buf.freeze())
}

/// Checks a response's head (HTTP status, content type) and returns its message encoding.
pub(crate) fn check_response_head(parts: &http::response::Parts) -> Result<CompressType, Status> {
    if parts.status != http::StatusCode::OK {
        let grpc_code = http_status_to_grpc(parts.status);
        return Err(Status::new(
            errno_from_grpc_status(grpc_code),
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
        .get("grpc-encoding")
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
/// response) says. UNAVAILABLE (a stopping server) is a transport failure with ELOGOFF, so
/// clients retry elsewhere as they do on baidu_std.
pub(crate) fn call_result(headers: &HeaderMap) -> Result<(), Failure> {
    let Some(value) = headers.get("grpc-status") else {
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
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_else(|| grpc::status_name(status).to_owned());
    if status == code::UNAVAILABLE {
        return Err(Failure::transport(Status::new(errno::ELOGOFF, message)));
    }
    Err(Failure::server(Status::new(
        errno_from_grpc_status(status),
        message,
    )))
}

/// Headers as name/value pairs (values that are not text are left out).
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

/// Which end reads a body: it decides the codes of errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    /// A server reading requests.
    Server,
    /// A client reading responses.
    Client,
}

impl Reader {
    fn bad_input(self) -> i32 {
        match self {
            Reader::Server => errno::EREQUEST,
            Reader::Client => errno::ERESPONSE,
        }
    }

    /// A message over the limit: RESOURCE_EXHAUSTED on a server.
    fn too_large(self) -> i32 {
        match self {
            Reader::Server => errno::ELIMIT,
            Reader::Client => errno::ERESPONSE,
        }
    }

    fn broken(self) -> i32 {
        match self {
            Reader::Server => errno::EREQUEST,
            Reader::Client => errno::EFAILEDSOCKET,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Reader::Server => "request",
            Reader::Client => "response",
        }
    }
}

/// The gRPC messages of an HTTP/2 body, decompressed, as they arrive; keeps the trailers.
/// A framing error, a message over the limit or a broken body ends it with an error.
pub(crate) struct BodyMessages<B> {
    body: B,
    decoder: MessageDecoder,
    encoding: CompressType,
    limit: usize,
    reader: Reader,
    trailers: Option<HeaderMap>,
    done: bool,
}

impl<B> fmt::Debug for BodyMessages<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyMessages")
            .field("encoding", &self.encoding)
            .field("limit", &self.limit)
            .field("reader", &self.reader)
            .field("done", &self.done)
            .finish()
    }
}

impl<B> BodyMessages<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Display,
{
    /// Reads `body`, whose compressed messages use `encoding`, accepting messages of at most
    /// `limit` bytes (before and after decompression).
    pub(crate) fn new(body: B, encoding: CompressType, limit: usize, reader: Reader) -> Self {
        BodyMessages {
            body,
            decoder: MessageDecoder::new(limit),
            encoding,
            limit,
            reader,
            trailers: None,
            done: false,
        }
    }

    /// The trailers, once the body has ended with some.
    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    /// The next message; `None` at the end of the body.
    pub(crate) async fn next_message(&mut self) -> Option<Result<Bytes, Status>> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    /// Polls for the next message.
    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Status>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match self.decoder.decode() {
                Ok(Some(message)) => {
                    let opened = self.open(message);
                    self.done = opened.is_err();
                    return Poll::Ready(Some(opened));
                }
                Ok(None) => {}
                Err(e) => return self.fail(framing_code(&e, self.reader), e.to_string()),
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.decoder.push(&data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.trailers = Some(trailers);
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    let what = self.reader.what();
                    return self.fail(
                        self.reader.broken(),
                        format!("Fail to read the {what}: {e}"),
                    );
                }
                Poll::Ready(None) => {
                    self.done = true;
                    return match self.decoder.finish() {
                        Ok(()) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(Status::new(
                            self.reader.bad_input(),
                            format!("bad gRPC {}: {e}", self.reader.what()),
                        )))),
                    };
                }
            }
        }
    }

    fn fail(&mut self, code: i32, message: String) -> Poll<Option<Result<Bytes, Status>>> {
        self.done = true;
        Poll::Ready(Some(Err(Status::new(code, message))))
    }

    /// Decompresses a message whose flag says so.
    fn open(&self, message: grpc::Message) -> Result<Bytes, Status> {
        if !message.compressed {
            return Ok(message.data);
        }
        let what = self.reader.what();
        if self.encoding == CompressType::None {
            return Err(Status::new(
                self.reader.bad_input(),
                format!("a compressed {what} message without grpc-encoding"),
            ));
        }
        grpc::gunzip(message.data, self.limit).map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::FileTooLarge {
                self.reader.too_large()
            } else {
                self.reader.bad_input()
            };
            Status::new(code, format!("Fail to decompress the {what} message: {e}"))
        })
    }
}

impl<B> Stream for BodyMessages<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Display,
{
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}

fn framing_code(error: &grpc::FramingError, reader: Reader) -> i32 {
    match error {
        grpc::FramingError::TooLarge { .. } => reader.too_large(),
        _ => reader.bad_input(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_status_becomes_a_brisk_failure() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            call_result(&headers).unwrap_err().status.code(),
            errno::ERESPONSE
        );
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(call_result(&headers).is_ok());
        headers.insert("grpc-status", HeaderValue::from_static("12"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("Fail%20to find %25"),
        );
        let failure = call_result(&headers).unwrap_err();
        assert_eq!(failure.status.code(), errno::ENOMETHOD);
        assert_eq!(failure.status.message(), "Fail to find %");
        assert!(!failure.transport);
        headers.insert("grpc-status", HeaderValue::from_static("14"));
        let failure = call_result(&headers).unwrap_err();
        assert_eq!(failure.status.code(), errno::ELOGOFF);
        assert!(failure.transport, "a stopping server is retried elsewhere");
        headers.insert("grpc-status", HeaderValue::from_static("x"));
        assert_eq!(
            call_result(&headers).unwrap_err().status.code(),
            errno::ERESPONSE
        );
        headers.remove("grpc-message");
        headers.insert("grpc-status", HeaderValue::from_static("4"));
        let failure = call_result(&headers).unwrap_err();
        assert_eq!(failure.status.code(), errno::ERPCTIMEDOUT);
        assert_eq!(failure.status.message(), "DEADLINE_EXCEEDED");
    }

    #[test]
    fn request_heads_carry_grpc_headers_and_metadata() {
        let method = MethodDescriptor::new("example.EchoService", "Echo");
        let metadata = vec![("X-Trace".to_owned(), "abc".to_owned())];
        let head = RequestHead {
            addr: "127.0.0.1:8000".parse().unwrap(),
            method: &method,
            headers: &metadata,
            deadline: Some(Instant::now() + std::time::Duration::from_secs(2)),
            log_id: 7,
            compressed: true,
        };
        let parts = head.build(&ChannelOptions::default()).unwrap();
        assert_eq!(parts.method, http::Method::POST);
        assert_eq!(parts.uri.path(), "/example.EchoService/Echo");
        let h = &parts.headers;
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["grpc-encoding"], "gzip");
        assert_eq!(h["log-id"], "7");
        assert_eq!(h["x-trace"], "abc");
        let timeout = grpc::parse_timeout(h["grpc-timeout"].to_str().unwrap()).unwrap();
        assert!(timeout <= std::time::Duration::from_secs(2));
        assert!(timeout > std::time::Duration::from_secs(1));

        let bad = vec![("bad name".to_owned(), "x".to_owned())];
        let head = RequestHead {
            headers: &bad,
            ..head
        };
        assert_eq!(
            head.build(&ChannelOptions::default()).unwrap_err().code(),
            errno::EREQUEST
        );
    }

    #[test]
    fn only_gzip_is_sent() {
        assert_eq!(request_compression(CompressType::None), Ok(false));
        assert_eq!(request_compression(CompressType::Gzip), Ok(true));
        assert_eq!(
            request_compression(CompressType::Snappy)
                .unwrap_err()
                .code(),
            errno::EREQUEST
        );
    }

    #[test]
    fn large_messages_are_not_copied() {
        let small = message_chunks(false, Bytes::from_static(b"abc")).unwrap();
        assert_eq!(small, vec![Bytes::from_static(b"\0\0\0\0\x03abc")]);
        let big = Bytes::from(vec![1u8; COPY_LIMIT + 1]);
        let chunks = message_chunks(true, big.clone()).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0][0], 1);
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
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
