//! HTTP/2 connections (h2c with prior knowledge, or `h2` by ALPN inside TLS): gRPC and pb
//! methods, served on `h2` directly.
//!
//! Connections are served by the runtime's dispatchers (`transport::dispatcher`), as the
//! client's are, not by a task each: with thousands of connections and the server's one core
//! busy, tasks woken by their sockets overflowed a tokio worker's queue into the runtime's
//! shared one, and waited there while others were served again and again. A dispatcher polls
//! connections in the order their sockets became ready; one woken by an answer (a handler
//! that waited, on a task of its own) is polled in front, to write it.
//!
//! The connection's future reads every request that has arrived, then starts them in place
//! ([`run_inline_or_spawn`]), [`WRITE_EVERY`] at a time: a handler that answers without
//! waiting has its response queued, written with the others of its group by the connection's
//! next poll, and costs no task of its own. A handler that waits, or a response that waits for
//! flow control, moves to a task. (hyper's server spawned a task per request and wrote each
//! answer on its own: a syscall per answer.)

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use h2::server::{Connection, SendResponse};
use h2::RecvStream;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, TE, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{Request, Response};
use hyper::body::Body;
use tokio::sync::Notify;

use super::body::{content_length, RequestBody, ResponseBody};
use super::dispatch::{panic_message, run_inline_or_spawn};
use super::http::handle;
use super::protocol::{ServeFuture, ServerProtocol};
use super::state::{wait_for_phase, ConnectionGuard, Peer, Phase, Shared, CLOSE_GRACE};
use crate::protocol::{detect, Detection};
use crate::transport::dispatcher::{self, ReadWaker, WakeReadsAsReader};
use crate::transport::h2_body::{BodySender, H2Body, Outgoing};
use crate::transport::h2_keep_alive::{watch, KeepAlive};
use crate::transport::h2_writes::StagedWrites;
use crate::transport::rewind::Rewind;
use crate::transport::sockets::{Counted, SocketStats};
use crate::transport::stream::ServerIo;

/// The flow-control window of each stream and of the connection (hyper's server default): a
/// 4 MiB message needs few round trips.
const WINDOW: u32 = 1024 * 1024;

/// Bytes of response data queued per stream beyond what flow control lets out (hyper's
/// default).
const MAX_SEND_BUFFER: usize = 400 * 1024;

/// The largest header list a request may carry (hyper's server default).
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// Streams the client reset before the server took them up that one read may hold before
/// `h2` ends the connection (ENHANCE_YOUR_CALM, its guard against the "rapid reset" flood;
/// its default, and hyper's, is 20). Callers that give up together, as a crowd of calls
/// sharing a deadline does, reset more than 20 streams in one go, and the connection went
/// down with every other call on it. A connection's streams are taken up at each poll, so
/// this bounds what one read can leave pending, not the work a flood costs.
const MAX_PENDING_RESETS: usize = 1024;

/// Requests started between two writes. Writing once per answer costs a syscall per answer;
/// writing once per read makes client and server take turns (the client idle while the server
/// answers the whole read, the server idle while the client sends the next). Measured on one
/// connection with 64 calls in flight: one write per answer 73k calls/s, one per 8 answers
/// 135k, per 16 135k, per 32 116k, one per read (64) 60k.
const WRITE_EVERY: usize = 16;

/// HTTP/2 (h2c with prior knowledge, or `h2` inside TLS) on the server's port.
pub(crate) struct Http2;

impl ServerProtocol for Http2 {
    fn name(&self) -> &'static str {
        "h2"
    }

    fn detect(&self, prefix: &[u8]) -> Detection {
        detect::http2(prefix)
    }

    fn serve(
        &self,
        io: Counted<ServerIo>,
        prefix: BytesMut,
        peer: Peer,
        shared: Arc<Shared>,
        open: ConnectionGuard,
    ) -> ServeFuture {
        let stats = Arc::clone(io.stats());
        let reads = Arc::new(ReadWaker::default());
        let io = WakeReadsAsReader::new(Rewind::new(prefix.freeze(), io), Arc::clone(&reads));
        let connection = serve_h2(io, stats, peer, shared, open);
        // The connection goes on to a dispatcher, and the accepting task ends.
        Box::pin(async move {
            let _ = dispatcher::spawn_connection(connection, reads);
        })
    }
}

/// The connection type: the preface detection read is replayed first, and reads wake the
/// connection as a reader of its dispatcher.
type Io = WakeReadsAsReader<Rewind<Counted<ServerIo>>>;

/// Serves HTTP/2 on a detected connection (its preface possibly still in `io`'s rewind
/// buffer) until the peer leaves, the connection breaks, or the server closes.
async fn serve_h2(
    io: Io,
    stats: Arc<SocketStats>,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) {
    let _open = open;
    let mut phase = shared.phase.subscribe();
    let mut builder = h2::server::Builder::new();
    if let Some(max) = shared.options.max_concurrent_streams {
        builder.max_concurrent_streams(max);
    }
    let handshake = builder
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .handshake::<_, Bytes>(StagedWrites::new(io));
    let mut connection = tokio::select! {
        handshake = handshake => match handshake {
            Ok(connection) => connection,
            Err(e) => {
                tracing::debug!(remote = %peer.remote, "HTTP/2 handshake failed: {e}");
                return;
            }
        },
        () = wait_for_phase(&mut phase, |p| p == Phase::Closed) => return,
    };
    let mut accepted = Accepted::default();
    let keep_alive = match shared.options.http2_keep_alive_interval {
        Some(interval)
            if !interval.is_zero() && !shared.options.http2_keep_alive_timeout.is_zero() =>
        {
            connection.ping_pong().map(|ping_pong| {
                let timeout = shared.options.http2_keep_alive_timeout;
                (KeepAlive { interval, timeout }, ping_pong)
            })
        }
        _ => None,
    };
    let watching = async move {
        match keep_alive {
            Some((keep_alive, ping_pong)) => watch(ping_pong, keep_alive).await,
            None => std::future::pending().await,
        }
    };
    let idle_timeout = shared.options.idle_timeout;
    let streams = idle_timeout.map(|_| Arc::new(OpenStreams::default()));
    let idle = async {
        match (&streams, idle_timeout) {
            (Some(streams), Some(timeout)) => streams.idle_for(timeout).await,
            _ => std::future::pending().await,
        }
    };
    let served = tokio::select! {
        served = serve_requests(&mut connection, &mut accepted, peer, &shared, streams.as_ref(), &stats) => served,
        () = wait_for_phase(&mut phase, |p| p == Phase::Closed) => {
            // GOAWAY: calls in progress finish (new ones on this connection get ELOGOFF),
            // within the grace period.
            connection.graceful_shutdown();
            let finishing = serve_requests(&mut connection, &mut accepted, peer, &shared, None, &stats);
            tokio::time::timeout(CLOSE_GRACE, finishing).await.unwrap_or(Ok(()))
        }
        () = idle => {
            // GOAWAY, then close: a request that raced it is still served.
            tracing::debug!(remote = %peer.remote, "closing an idle HTTP/2 connection");
            connection.graceful_shutdown();
            let finishing = serve_requests(&mut connection, &mut accepted, peer, &shared, None, &stats);
            tokio::time::timeout(CLOSE_GRACE, finishing).await.unwrap_or(Ok(()))
        }
        watched = watching => {
            tracing::debug!(remote = %peer.remote, "closing an HTTP/2 connection: keep-alive {watched:?}");
            return;
        }
    };
    if let Err(e) = served {
        tracing::debug!(remote = %peer.remote, "HTTP/2 connection ended: {e}");
    }
}

/// Accepts and starts requests until the connection ends, counting them in `streams` (when
/// the connection may be closed idle).
async fn serve_requests(
    connection: &mut Connection<StagedWrites<Io>, Bytes>,
    accepted: &mut Accepted,
    peer: Peer,
    shared: &Arc<Shared>,
    streams: Option<&Arc<OpenStreams>>,
    stats: &Arc<SocketStats>,
) -> Result<(), h2::Error> {
    loop {
        // Writes the answers queued since the last poll, together, and reads what came.
        if !std::future::poll_fn(|cx| accepted.poll_more(connection, cx)).await? {
            return Ok(());
        }
        let group = accepted.waiting.len().min(WRITE_EVERY);
        stats.received(group);
        for (request, respond) in accepted.waiting.drain(..group) {
            let length = content_length(request.headers());
            let request = request
                .map(|body| RequestBody::Http2(H2Body::new(body).with_content_length(length)));
            let shared = Arc::clone(shared);
            let open = streams.map(OpenStreams::open);
            let stats = Arc::clone(stats);
            let serving = async move {
                let _open = open;
                let mut respond = respond;
                let handling = handle(request, peer, shared);
                if let Some(response) = unless_reset(&mut respond, handling).await {
                    respond_with(respond, response).await;
                    stats.sent(1);
                }
            };
            // Handlers' panics are caught where they are called; this catches Brisk's own, so
            // that one bad request costs its stream (reset as the handle drops) and not the
            // connection whose task it may be running on.
            run_inline_or_spawn(Box::pin(AssertUnwindSafe(serving).catch_unwind().map(
                |served| {
                    if let Err(panic) = served {
                        tracing::error!("HTTP/2 request panicked: {}", panic_message(&panic));
                    }
                },
            )))
            .await;
        }
    }
}

/// The streams of a connection being served, for its idle timeout.
#[derive(Default)]
struct OpenStreams {
    open: AtomicUsize,
    changed: Notify,
}

/// A stream counted open until dropped.
struct OpenStream(Arc<OpenStreams>);

impl OpenStreams {
    fn open(self: &Arc<Self>) -> OpenStream {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
        OpenStream(Arc::clone(self))
    }

    /// Returns once no stream has been open for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.open.load(Ordering::Relaxed) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => return,
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.changed.notify_waiters();
    }
}

/// Requests accepted and not started yet, and how the connection ended if it did while some
/// were waiting (h2 tells that only once).
#[derive(Default)]
struct Accepted {
    waiting: VecDeque<(Request<RecvStream>, SendResponse<Bytes>)>,
    ended: Option<Result<(), h2::Error>>,
}

impl Accepted {
    /// Moves every request the connection has received into `waiting`: `Ready(Ok(true))` once
    /// some are waiting, `Ready(Ok(false))` or the error once the connection has ended and none
    /// are.
    fn poll_more(
        &mut self,
        connection: &mut Connection<StagedWrites<Io>, Bytes>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<bool, h2::Error>> {
        if let Some(ended) = self.ended.take() {
            if self.waiting.is_empty() {
                return Poll::Ready(ended.map(|()| false));
            }
            self.ended = Some(ended);
            return Poll::Ready(Ok(true));
        }
        loop {
            let ended = match connection.poll_accept(cx) {
                Poll::Ready(Some(Ok(request))) => {
                    self.waiting.push_back(request);
                    continue;
                }
                Poll::Ready(Some(Err(e))) => Err(e),
                Poll::Ready(None) => Ok(()),
                Poll::Pending if self.waiting.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Ok(true)),
            };
            if self.waiting.is_empty() {
                return Poll::Ready(ended.map(|()| false));
            }
            // What was accepted is served first.
            self.ended = Some(ended);
            return Poll::Ready(Ok(true));
        }
    }
}

/// Runs `handling` until it answers, or drops it (`None`) once the client has reset the
/// stream (a call it cancelled, or a deadline it gave up at) or the connection is gone, so
/// abandoned calls stop using the server, as hyper's server does.
async fn unless_reset<F: Future>(
    respond: &mut SendResponse<Bytes>,
    handling: F,
) -> Option<F::Output> {
    let mut handling = std::pin::pin!(handling);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(response) = handling.as_mut().poll(cx) {
            return Poll::Ready(Some(response));
        }
        respond.poll_reset(cx).map(|_| None)
    })
    .await
}

/// Sends `response` on the stream: its head, then its body as flow control lets it out.
async fn respond_with(mut respond: SendResponse<Bytes>, response: Response<ResponseBody>) {
    let (mut head, body) = response.into_parts();
    strip_connection_headers(&mut head.headers);
    if let Some(date) = date_header() {
        head.headers.entry(DATE).or_insert(date);
    }
    let end = body.is_end_stream();
    if !end {
        if let Some(length) = body.size_hint().exact() {
            head.headers.entry(CONTENT_LENGTH).or_insert(length.into());
        }
    }
    let stream = match respond.send_response(Response::from_parts(head, ()), end) {
        Ok(stream) => stream,
        Err(e) => {
            // Headers h2 refuses, or a stream already gone: reset it as a server failure.
            tracing::debug!("HTTP/2 response head not sent: {e}");
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        }
    };
    if !end {
        let sender = BodySender::new(stream);
        BodyPipe { body, sender }.await;
    }
}

/// The `Date` header (RFC 9110 §6.6.1), formatted once a second per thread.
fn date_header() -> Option<HeaderValue> {
    thread_local! {
        static CACHED: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if let Some((at, value)) = &*cached {
            if *at == second {
                return Some(value.clone());
            }
        }
        let value = HeaderValue::from_str(&httpdate::fmt_http_date(now)).ok()?;
        *cached = Some((second, value.clone()));
        Some(value)
    })
}

/// HTTP/2 forbids the connection-specific headers of HTTP/1.1 in responses (RFC 9113 §8.2.2),
/// `TE` among them; a handler may have set some. Headers a `Connection` header names go too.
fn strip_connection_headers(headers: &mut HeaderMap) {
    if let Some(connection) = headers.remove(CONNECTION) {
        if let Ok(names) = connection.to_str() {
            for name in names.split(',') {
                headers.remove(name.trim());
            }
        }
    }
    for name in [TE, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(HeaderName::from_static(name));
    }
}

/// Feeds a response body into its stream ([`BodySender`]): data frames as flow control lets
/// them out, then the trailers or the end of the stream. Stops when the client resets the
/// stream.
struct BodyPipe {
    body: ResponseBody,
    sender: BodySender,
}

impl Future for BodyPipe {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let BodyPipe { body, sender } = self.get_mut();
        sender.poll_send(cx, |cx| {
            Poll::Ready(match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                None => Outgoing::End,
                Some(Err(status)) => {
                    tracing::debug!("response body failed: {status}");
                    Outgoing::Reset(h2::Reason::INTERNAL_ERROR)
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => Outgoing::Data(data, body.is_end_stream()),
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => Outgoing::Trailers(trailers),
                        // No other kind of frame exists; end the stream if one ever does.
                        Err(_) => Outgoing::End,
                    },
                },
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("x-kept", "1"),
        ] {
            headers.insert(HeaderName::from_static(name), value.parse().unwrap());
        }
        strip_connection_headers(&mut headers);
        let left: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn responses_carry_a_date() {
        let date = date_header().expect("a date");
        let parsed = httpdate::parse_http_date(date.to_str().unwrap()).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() < 5, "{date:?}");
    }
}
