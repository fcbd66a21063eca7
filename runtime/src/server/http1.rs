//! HTTP/1.1 connections, through hyper: every request answered by [`super::http::handle`].

use std::convert::Infallible;
use std::sync::Arc;

use bytes::BytesMut;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use super::body::RequestBody;
use super::http::handle;
use super::protocol::{ServeFuture, ServerProtocol};
use super::state::{wait_for_phase, ConnectionGuard, Peer, Phase, Shared, CLOSE_GRACE};
use crate::protocol::{detect, Detection};
use crate::transport::rewind::Rewind;
use crate::transport::sockets::{Counted, SocketStats};
use crate::transport::stream::ServerIo;

/// HTTP/1.1 on the server's port.
pub(crate) struct Http1;

impl ServerProtocol for Http1 {
    fn name(&self) -> &'static str {
        "http"
    }

    fn detect(&self, prefix: &[u8]) -> Detection {
        detect::http1(prefix)
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
        Box::pin(serve_http1(
            Rewind::new(prefix.freeze(), io),
            stats,
            peer,
            shared,
            open,
        ))
    }
}

/// Serves HTTP/1.1 on a detected connection until it closes (HTTP/2 is [`super::h2`]'s).
async fn serve_http1(
    io: Rewind<Counted<ServerIo>>,
    stats: Arc<SocketStats>,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) {
    let _open = open;
    let io = TokioIo::new(io);
    let mut closed = shared.phase.subscribe();
    let handler_shared = Arc::clone(&shared);
    let service = service_fn(move |request: Request<Incoming>| {
        let request = request.map(RequestBody::Http1);
        let handling = handle(request, peer, Arc::clone(&handler_shared));
        // One request in, one response out (hyper writes it next).
        stats.received(1);
        stats.sent(1);
        async move { Ok::<_, Infallible>(handling.await) }
    });
    // hyper's header timeout runs from when the connection awaits a request (after the last
    // response): it bounds a slow request's headers and an idle keep-alive connection alike.
    let options = &shared.options;
    let nonzero = |t: Option<std::time::Duration>| t.filter(|t| !t.is_zero());
    let header_timeout = match (
        nonzero(options.request_read_timeout),
        nonzero(options.idle_timeout),
    ) {
        (Some(read), Some(idle)) => Some(read.min(idle)),
        (read, idle) => read.or(idle),
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = wait_for_phase(&mut closed, |p| p == Phase::Closed) => {
            // Finish the request in progress, within the grace period.
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(CLOSE_GRACE, connection).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = served {
        tracing::debug!(remote = %peer.remote, "HTTP connection ended: {e}");
    }
}
