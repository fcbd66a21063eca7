//! HTTP/2 connections (h2c with prior knowledge, or `h2` by ALPN inside TLS): gRPC and pb
//! methods, served on `h2` directly.
//!
//! The connection's task reads every request that has arrived, then starts them in place
//! ([`run_inline_or_spawn`]), [`WRITE_EVERY`] at a time: a handler that answers without
//! waiting has its response queued, written with the others of its group by the connection's
//! next poll, and costs no task of its own. A handler that waits, or a response that waits for
//! flow control, moves to a task. (hyper's server spawned a task per request and wrote each
//! answer on its own: a syscall per answer.)

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::server::{Connection, SendResponse};
use h2::{RecvStream, SendStream};
use http::header::{HeaderMap, HeaderName, CONNECTION, TE, TRANSFER_ENCODING, UPGRADE};
use http::{Request, Response};
use hyper::body::Body;
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{run_inline_or_spawn, Peer};
use super::http::{handle, ResponseBody, CLOSE_GRACE};
use super::request_body::RequestBody;
use super::{wait_for_phase, ConnectionGuard, Phase, Shared};
use crate::transport::h2_body::{poll_send_capacity, H2Body};
use crate::transport::rewind::Rewind;

/// Streams one connection may have open at once: each may buffer a body up to max_body_size.
const MAX_CONCURRENT_STREAMS: u32 = 128;

/// The flow-control window of each stream and of the connection (hyper's server default): a
/// 4 MiB message needs few round trips.
const WINDOW: u32 = 1024 * 1024;

/// Bytes of response data queued per stream beyond what flow control lets out (hyper's
/// default).
const MAX_SEND_BUFFER: usize = 400 * 1024;

/// The largest header list a request may carry (hyper's server default).
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// Requests started between two writes. Writing once per answer costs a syscall per answer;
/// writing once per read makes client and server take turns (the client idle while the server
/// answers the whole read, the server idle while the client sends the next). Measured on one
/// connection with 64 calls in flight: one write per answer 73k calls/s, one per 8 answers
/// 135k, per 16 135k, per 32 116k, one per read (64) 60k.
const WRITE_EVERY: usize = 16;

/// Serves HTTP/2 on a detected connection (its preface possibly still in `io`'s rewind
/// buffer) until the peer leaves, the connection breaks, or the server closes.
pub(crate) async fn serve_h2<S>(
    io: Rewind<S>,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let _open = open;
    let mut phase = shared.phase.subscribe();
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, Bytes>(io);
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
    let mut batch = VecDeque::new();
    let served = tokio::select! {
        served = serve_requests(&mut connection, &mut batch, peer, &shared) => served,
        () = wait_for_phase(&mut phase, |p| p == Phase::Closed) => {
            // GOAWAY: calls in progress finish (new ones on this connection get ELOGOFF),
            // within the grace period.
            connection.graceful_shutdown();
            tokio::time::timeout(CLOSE_GRACE, serve_requests(&mut connection, &mut batch, peer, &shared))
                .await
                .unwrap_or(Ok(()))
        }
    };
    if let Err(e) = served {
        tracing::debug!(remote = %peer.remote, "HTTP/2 connection ended: {e}");
    }
}

/// Accepts and starts requests until the connection ends.
async fn serve_requests<S>(
    connection: &mut Connection<Rewind<S>, Bytes>,
    batch: &mut VecDeque<Accepted>,
    peer: Peer,
    shared: &Arc<Shared>,
) -> Result<(), h2::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        // Writes the answers queued since the last poll, together, and reads what came.
        if !std::future::poll_fn(|cx| accept_ready(connection, cx, batch)).await? {
            return Ok(());
        }
        for (request, respond) in batch.drain(..batch.len().min(WRITE_EVERY)) {
            let request = request.map(|body| RequestBody::Http2(H2Body::new(body)));
            let shared = Arc::clone(shared);
            run_inline_or_spawn(Box::pin(async move {
                let mut respond = respond;
                let handling = handle(request, peer, shared);
                if let Some(response) = unless_reset(&mut respond, handling).await {
                    respond_with(respond, response).await;
                }
            }))
            .await;
        }
    }
}

/// A request and the handle that answers it.
type Accepted = (Request<RecvStream>, SendResponse<Bytes>);

/// Moves every request the connection has received into `batch`: `Ready(Ok(true))` once there
/// is at least one, `Ready(Ok(false))` when the connection has ended.
fn accept_ready<S>(
    connection: &mut Connection<Rewind<S>, Bytes>,
    cx: &mut Context<'_>,
    batch: &mut VecDeque<Accepted>,
) -> Poll<Result<bool, h2::Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match connection.poll_accept(cx) {
            Poll::Ready(Some(Ok(accepted))) => batch.push_back(accepted),
            // What was accepted first is served first; the error (or the end) comes again.
            Poll::Ready(Some(Err(e))) if batch.is_empty() => return Poll::Ready(Err(e)),
            Poll::Ready(None) if batch.is_empty() => return Poll::Ready(Ok(false)),
            Poll::Ready(_) => return Poll::Ready(Ok(true)),
            Poll::Pending if batch.is_empty() => return Poll::Pending,
            Poll::Pending => return Poll::Ready(Ok(true)),
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
    let end = body.is_end_stream();
    let Ok(stream) = respond.send_response(Response::from_parts(head, ()), end) else {
        // The client reset the stream, or the connection is gone.
        return;
    };
    if !end {
        BodyPipe { body, stream }.await;
    }
}

/// HTTP/2 forbids the connection-specific headers of HTTP/1.1 (RFC 9113 §8.2.2); a handler
/// may have set some.
fn strip_connection_headers(headers: &mut HeaderMap) {
    for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(HeaderName::from_static(name));
    }
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
}

/// Feeds a response body into its stream: data frames as the stream has send capacity
/// ([`poll_send_capacity`]), then the trailers or the end of the stream. Stops when the client
/// resets the stream.
struct BodyPipe {
    body: ResponseBody,
    stream: SendStream<Bytes>,
}

impl Future for BodyPipe {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if !ready!(poll_send_capacity(&mut this.stream, cx)) {
                // The client reset the stream, or the connection is gone.
                return Poll::Ready(());
            }
            let frame = match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(status)) => {
                    tracing::debug!("response body failed: {status}");
                    this.stream.send_reset(h2::Reason::INTERNAL_ERROR);
                    return Poll::Ready(());
                }
                None => {
                    let _ = this.stream.send_data(Bytes::new(), true);
                    return Poll::Ready(());
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    let end = this.body.is_end_stream();
                    if this.stream.send_data(data, end).is_err() || end {
                        return Poll::Ready(());
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = this.stream.send_trailers(trailers);
                    } else {
                        let _ = this.stream.send_data(Bytes::new(), true);
                    }
                    return Poll::Ready(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
            ("x-kept", "1"),
        ] {
            headers.insert(HeaderName::from_static(name), value.parse().unwrap());
        }
        strip_connection_headers(&mut headers);
        let left: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(left, ["x-kept"]);

        let mut trailers_te = HeaderMap::new();
        trailers_te.insert(TE, "trailers".parse().unwrap());
        strip_connection_headers(&mut trailers_te);
        assert_eq!(
            trailers_te.get(TE).unwrap(),
            "trailers",
            "TE: trailers is allowed"
        );
    }
}
