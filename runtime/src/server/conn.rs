//! One server connection: cut frames, dispatch each request concurrently, write replies through
//! the connection's batching writer.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use super::{
    wait_for_phase, ConnectionGuard, InflightGuard, Phase, ServerContext, ServiceFuture,
    ServiceResponse, Shared,
};
use crate::auth::AuthContext;
use crate::compress::{self, CompressType};
use crate::protocol::baidu_std::{
    check_sizes, decode_frame, encode_head, response_meta, Frame, HEADER_LEN,
};
use crate::protocol::detect::{detect, Detected};
use crate::transport::rewind::Rewind;
use crate::transport::writer::{self, FrameSender, OutFrame};
use crate::transport::{prepare_read_buffer, read_buffer};
use crate::{errno, Status};

/// Unwritten reply bytes beyond which new requests get EOVERCROWDED (brpc's default), so a
/// peer that sends without reading cannot grow the server's memory without bound.
const MAX_UNWRITTEN_BYTES: usize = 64 * 1024 * 1024;

/// How long replies may take to drain once the server closes, before a peer that does not
/// read is cut off (so `join` always returns).
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Serves one accepted connection until the peer leaves, the input is bad, or the server closes.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(shared.local_addr);
    let mut stream = stream;
    let Some((detected, buf)) = read_prefix(&mut stream, &shared).await else {
        return;
    };
    if detected != Detected::Tls && super::tls::rejects_plaintext(&shared) {
        tracing::warn!(%remote, "closing connection: plaintext on a server that requires TLS");
        return;
    }
    let peer = Peer {
        remote,
        local,
        tls: false,
    };
    match detected {
        Detected::BaiduStd => {
            let (reader, writer) = stream.into_split();
            serve_baidu_std(reader, writer, buf, peer, shared, open).await;
        }
        Detected::Tls => super::tls::serve_tls(stream, buf, peer, shared, open).await,
        other => serve_detected(other, stream, buf, peer, shared, open).await,
    }
}

/// Where a connection comes from and whether it is encrypted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: bool,
}

/// Reads until the first bytes tell the protocol; `None` if the connection ends (or the
/// server closes) first.
pub(crate) async fn read_prefix<S: AsyncRead + Unpin>(
    io: &mut S,
    shared: &Shared,
) -> Option<(Detected, BytesMut)> {
    let mut phase = shared.phase.subscribe();
    let mut buf = read_buffer();
    loop {
        if let Some(detected) = detect(&buf) {
            return Some((detected, buf));
        }
        prepare_read_buffer(&mut buf);
        tokio::select! {
            read = io.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
            () = wait_for_phase(&mut phase, |p| p == Phase::Closed) => return None,
        }
    }
}

/// Serves a connection (plain or inside TLS) whose protocol is known, its first bytes in `buf`.
pub(crate) async fn serve_detected<S>(
    detected: Detected,
    io: S,
    buf: BytesMut,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    match detected {
        Detected::BaiduStd => {
            let (reader, writer) = tokio::io::split(io);
            serve_baidu_std(reader, writer, buf, peer, shared, open).await;
        }
        Detected::Http1 => {
            let io = Rewind::new(buf.freeze(), io);
            super::http::serve_http1(io, peer, shared, open).await;
        }
        Detected::Http2 => {
            let io = Rewind::new(buf.freeze(), io);
            super::h2::serve_h2(io, peer, shared, open).await;
        }
        Detected::Tls => {
            tracing::warn!(remote = %peer.remote, "closing connection: TLS inside TLS");
        }
        Detected::Unknown(reason) => {
            tracing::warn!(remote = %peer.remote, "closing connection: {reason}");
        }
    }
}

/// Serves baidu_std on a connection: cut frames, dispatch each request concurrently, write
/// replies through the batching writer.
async fn serve_baidu_std<R, W>(
    mut reader: R,
    write_half: W,
    mut buf: BytesMut,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let Peer { remote, local, .. } = peer;
    let (sender, queue) = writer::queue();
    let mut closed = shared.phase.subscribe();
    let writer = tokio::spawn(async move {
        let _open = open;
        let give_up = async {
            wait_for_phase(&mut closed, |p| p == Phase::Closed).await;
            tokio::time::sleep(CLOSE_GRACE).await;
        };
        tokio::select! {
            written = writer::write_loop(write_half, queue) => {
                if let Err(e) = written {
                    tracing::debug!(%remote, "write failed: {e}");
                }
            }
            () = give_up => tracing::warn!(%remote, "closing connection: replies not read within {CLOSE_GRACE:?} of server close"),
        }
    });

    let mut phase = shared.phase.subscribe();
    let mut first = true;
    // As brpc: the first request's credential is verified once for the whole connection.
    let mut identity: Option<Arc<AuthContext>> = None;
    let mut authenticated = shared.options.authenticator.is_none();
    let closing = 'read: loop {
        if !std::mem::take(&mut first) {
            prepare_read_buffer(&mut buf);
            tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break None,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%remote, "read failed: {e}");
                    break None;
                }
            },
            () = wait_for_phase(&mut phase, |p| p == Phase::Closed) => break None,
            }
        }
        loop {
            match decode_frame(&mut buf, shared.options.max_body_size) {
                Ok(Some(frame)) => {
                    if !authenticated {
                        match authenticate(&frame, &shared, remote) {
                            Ok(who) => {
                                identity = who.map(Arc::new);
                                authenticated = true;
                            }
                            Err(status) => {
                                let correlation_id = frame.meta.correlation_id.unwrap_or(0);
                                let _ = sender.send(error_frame(
                                    correlation_id,
                                    errno::ERPCAUTH,
                                    status.message(),
                                    local,
                                ));
                                break 'read Some(Closing::AuthFailed(status));
                            }
                        }
                    }
                    match dispatch(frame, &sender, &shared, peer, &identity) {
                        Ok(Some(request)) => run_inline_or_spawn(request).await,
                        Ok(None) => {}
                        Err(reason) => break 'read Some(Closing::BadInput(reason)),
                    }
                }
                Ok(None) => break,
                Err(e) => break 'read Some(Closing::BadInput(e.to_string())),
            }
        }
    };
    match closing {
        Some(Closing::BadInput(reason)) => {
            tracing::warn!(%remote, "closing connection: {reason}");
            writer.abort();
        }
        // The writer sends the ERPCAUTH reply, then closes the connection.
        Some(Closing::AuthFailed(status)) => {
            tracing::warn!(%remote, "closing connection: {}", status.message());
        }
        None => {}
    }
}

/// Why the server closes a baidu_std connection.
enum Closing {
    /// A frame it cannot parse: nothing more on the connection can be trusted.
    BadInput(String),
    /// The first request's credential failed verification (its reply is still sent).
    AuthFailed(Status),
}

/// Verifies the credential of a connection's first request with the server's authenticator;
/// the identity on success (`None` without an authenticator).
fn authenticate(
    frame: &Frame,
    shared: &Shared,
    remote: SocketAddr,
) -> Result<Option<AuthContext>, Status> {
    let Some(authenticator) = shared.options.authenticator.as_deref() else {
        return Ok(None);
    };
    let fail = |why: &str| Status::new(errno::ERPCAUTH, format!("Fail to authenticate: {why}"));
    let credential = frame
        .meta
        .authentication_data
        .as_deref()
        .ok_or_else(|| fail("no credential"))?;
    let credential =
        std::str::from_utf8(credential).map_err(|_| fail("credential is not UTF-8"))?;
    authenticator
        .verify_credential(credential, remote)
        .map(Some)
        .map_err(|e| fail(e.message()))
}

/// A request being served: runs the handler and queues the reply.
type RequestTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Polls a request once on the connection's own task: a handler that answers without waiting
/// (most do) costs no spawned task and no trip through the scheduler. One that has to wait
/// moves to a task of its own, so the connection's requests still run concurrently. (brpc runs
/// the last request of each read in place for the same reason.)
pub(super) async fn run_inline_or_spawn(request: RequestTask) {
    let mut request = Some(request);
    std::future::poll_fn(move |cx| {
        if let Some(mut request) = request.take() {
            if request.as_mut().poll(cx).is_pending() {
                // Its next poll, on the new task, registers that task's waker instead.
                tokio::spawn(request);
            }
        }
        Poll::Ready(())
    })
    .await
}

/// Starts one request: the task that serves it, or `None` when it was answered at once (with
/// an error). Returns `Err` only when the connection must close.
fn dispatch(
    mut frame: Frame,
    sender: &FrameSender,
    shared: &Arc<Shared>,
    peer: Peer,
    identity: &Option<Arc<AuthContext>>,
) -> Result<Option<RequestTask>, String> {
    let Peer { remote, local, tls } = peer;
    let Some(request) = frame.meta.request.take() else {
        return Err("baidu_std frame without request meta".to_owned());
    };
    let correlation_id = frame.meta.correlation_id.unwrap_or(0);
    let reply_error = |code: i32, text: String| {
        let _ = sender.send(error_frame(correlation_id, code, &text, local));
    };

    let inflight = InflightGuard::enter(shared);
    if shared.phase_now() != Phase::Running {
        reply_error(errno::ELOGOFF, "Server is stopping".to_owned());
        return Ok(None);
    }
    if sender.unwritten() > MAX_UNWRITTEN_BYTES {
        reply_error(
            errno::EOVERCROWDED,
            format!("Connection to {remote} is overcrowded"),
        );
        return Ok(None);
    }
    let Some((service, method)) = shared
        .registry
        .find(&request.service_name, &request.method_name)
    else {
        // As brpc: a name without a package is looked up as a short service name first.
        if !request.service_name.contains('.')
            && !shared.registry.has_service(&request.service_name)
        {
            reply_error(
                errno::ENOSERVICE,
                format!("Fail to find service={}", request.service_name),
            );
        } else {
            reply_error(
                errno::ENOMETHOD,
                format!(
                    "Fail to find method={}/{}",
                    request.service_name, request.method_name
                ),
            );
        }
        return Ok(None);
    };
    let (payload, attachment) = match frame.split_body() {
        Ok(parts) => parts,
        Err(_) => {
            reply_error(
                errno::EREQUEST,
                format!(
                    "attachment_size={} is larger than request_size={}",
                    frame.meta.attachment_size.unwrap_or(0),
                    frame.body.len()
                ),
            );
            return Ok(None);
        }
    };
    let wire_compress = frame.meta.compress_type.unwrap_or(0);
    let Some(compress_type) = CompressType::from_wire(wire_compress) else {
        reply_error(
            errno::EREQUEST,
            format!("unsupported compress_type={wire_compress}"),
        );
        return Ok(None);
    };

    let context = ServerContext {
        remote_side: remote,
        local_side: local,
        log_id: request.log_id.unwrap_or(0),
        timeout_ms: request.timeout_ms,
        request_attachment: attachment,
        request_compress_type: compress_type,
        response_attachment: Bytes::new(),
        response_compress_type: CompressType::None,
        user_fields: std::mem::take(&mut frame.meta.user_fields),
        response_headers: Vec::new(),
        auth_context: identity.clone(),
        tls,
    };
    let service = Arc::clone(service);
    let sender = sender.clone();
    let max_body_size = shared.options.max_body_size;
    Ok(Some(Box::pin(async move {
        let _inflight = inflight;
        let frame = match compress::decompress(compress_type, payload, max_body_size) {
            Err(e) => error_frame(
                correlation_id,
                errno::EREQUEST,
                &format!("Fail to decompress request: {e}"),
                local,
            ),
            Ok(payload) => match call_catching_panics(&*service, method, context, payload).await {
                Ok(response) => response_frame(correlation_id, response, local),
                Err(panic) => {
                    let what = panic_message(&panic);
                    tracing::error!(%remote, "handler panicked: {what}");
                    error_frame(
                        correlation_id,
                        errno::EINTERNAL,
                        &format!("handler panicked: {what}"),
                        local,
                    )
                }
            },
        };
        let _ = sender.send(frame);
    })))
}

fn response_frame(correlation_id: i64, response: ServiceResponse, local: SocketAddr) -> OutFrame {
    let payload = match response.result {
        Ok(payload) => payload,
        Err(status) => {
            let code = if status.code() <= 0 {
                errno::EINTERNAL
            } else {
                status.code()
            };
            return error_frame(correlation_id, code, status.message(), local);
        }
    };
    let compress_type = response.context.response_compress_type;
    let payload = if compress_type == CompressType::None {
        payload
    } else {
        let mut out = BytesMut::with_capacity(payload.len() / 2 + 16);
        if let Err(e) = compress::compress(compress_type, &payload, &mut out) {
            return error_frame(
                correlation_id,
                errno::EINTERNAL,
                &format!("Fail to compress response: {e}"),
                local,
            );
        }
        out.freeze()
    };
    let attachment = response.context.response_attachment;
    if let Err(e) = check_sizes(payload.len(), attachment.len()) {
        return error_frame(
            correlation_id,
            errno::EINTERNAL,
            &format!("response {e}"),
            local,
        );
    }
    let meta = response_meta(
        correlation_id,
        compress_type.as_wire(),
        attachment.len(),
        None,
    );
    let mut head = BytesMut::with_capacity(HEADER_LEN + 32);
    encode_head(&mut head, &meta, payload.len(), attachment.len());
    OutFrame {
        head: head.freeze(),
        payload,
        attachment,
    }
}

/// An error reply as brpc writes it: no payload, and the text prefixed with the server's
/// address and the code, e.g. `[127.0.0.1:8000][E1002]Fail to find method=...`.
pub(crate) fn error_frame(
    correlation_id: i64,
    code: i32,
    text: &str,
    local: SocketAddr,
) -> OutFrame {
    let meta = response_meta(
        correlation_id,
        0,
        0,
        Some((code, format!("[{local}][E{code}]{text}"))),
    );
    let mut head = BytesMut::with_capacity(HEADER_LEN + 64 + text.len());
    encode_head(&mut head, &meta, 0, 0);
    OutFrame {
        head: head.freeze(),
        ..OutFrame::default()
    }
}

/// Runs `service.call`, turning a panic (while building the future or while polling it) into an
/// `Err` instead of a lost request.
pub(crate) async fn call_catching_panics(
    service: &dyn super::Service,
    method: usize,
    context: ServerContext,
    payload: Bytes,
) -> Result<ServiceResponse, Box<dyn Any + Send>> {
    let future =
        std::panic::catch_unwind(AssertUnwindSafe(|| service.call(method, context, payload)))?;
    CatchUnwind(future).await
}

/// Polls a service future, catching a panic.
struct CatchUnwind(ServiceFuture);

impl Future for CatchUnwind {
    type Output = Result<ServiceResponse, Box<dyn Any + Send>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(response)) => Poll::Ready(Ok(response)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "unknown panic"
    }
}
