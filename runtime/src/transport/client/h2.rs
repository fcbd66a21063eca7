//! The HTTP/2 discipline of a client: one connection per server, shared by all calls to it,
//! each call a stream. Calls talk to `h2` directly from their own task; the connection, polled
//! by a dispatcher with the runtime's other connections (`transport::dispatcher`), gathers
//! what they queue into few writes ([`Gathering`]).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use futures_core::Stream;
use futures_util::FutureExt as _;
use h2::client::{ResponseFuture, SendRequest};
use h2::SendStream;
use tokio::sync::oneshot;

use crate::transport::dispatcher::{self, ReadWaker, WakeReadsAsReader};
use crate::transport::gather::{Gathering, Queued};
use crate::transport::h2_answers::ChargeAnswers;
use crate::transport::h2_body::{BodySender, H2Body, Outgoing};
use crate::transport::h2_keep_alive::{watch, KeepAlive};
use crate::transport::h2_writes::StagedWrites;
use crate::transport::sockets::SocketStats;
use crate::transport::stream::{connect_secured, ClientIo, Security};
use crate::{errno, Status};

/// The chunks of a streaming request's body (for gRPC, each message with its 5-byte prefix);
/// an error resets the HTTP/2 stream.
pub(crate) type RequestChunks = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

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

/// One HTTP/2 connection, driven by a dispatcher. Calls talk to it through `h2` directly:
/// a unary call queues its HEADERS and its DATA (with END_STREAM) from the caller's task and
/// reads the response there, so no task is spawned per call.
pub(crate) struct H2Conn {
    sender: SendRequest<Bytes>,
    /// Set by the connection's driver once the connection has ended.
    closed: Arc<AtomicBool>,
    /// Requests queued on the connection, for its driver's [`Gathering`].
    queued: Arc<Queued>,
    /// The server's address.
    pub(crate) remote: SocketAddr,
    /// The local address of the connection.
    pub(crate) local: SocketAddr,
    /// Whether the connection runs over TLS (`:scheme` is then `https`).
    secure: bool,
    /// Counts the requests sent and the responses received.
    stats: Arc<SocketStats>,
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
        security: &Security,
        connect_timeout: Duration,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Arc<H2Conn>, Status> {
        if let Some(conn) = self.open() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.open() {
            return Ok(conn);
        }
        let conn =
            Arc::new(connect_on_io_runtime(addr, security, connect_timeout, keep_alive).await?);
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
    security: &Security,
    connect_timeout: Duration,
    keep_alive: Option<KeepAlive>,
) -> Result<H2Conn, Status> {
    let security = security.clone();
    let task = crate::executor::io_handle()
        .spawn(async move { connect(addr, &security, connect_timeout, keep_alive).await });
    task.await.unwrap_or_else(|e| {
        Err(Status::new(
            errno::EFAILEDSOCKET,
            format!("Fail to connect {addr}: the connecting task failed: {e}"),
        ))
    })
}

/// Connects, does the HTTP/2 handshake within the connect timeout and hands the connection's
/// driver to a dispatcher of the current runtime; with `keep_alive`, the driver PINGs the
/// server and drops the connection (failing its calls, which may be retried) when a PING goes
/// unanswered.
async fn connect(
    addr: SocketAddr,
    security: &Security,
    connect_timeout: Duration,
    keep_alive: Option<KeepAlive>,
) -> Result<H2Conn, Status> {
    let io = connect_secured(addr, connect_timeout, security, &[b"h2"]).await?;
    let secure = !matches!(io.get_ref(), ClientIo::Plain(_));
    let stats = Arc::clone(io.stats());
    stats.set_protocol("h2:grpc");
    let local = io
        .get_ref()
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut builder = h2::client::Builder::new();
    builder
        .enable_push(false)
        .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
        .initial_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .max_header_list_size(1 << 20);
    // Polled by a dispatcher (below): woken by its socket, it waits behind the other
    // connections' reads; woken by a caller's request, it goes in front of them.
    let reads = Arc::new(ReadWaker::default());
    let io = StagedWrites::new(WakeReadsAsReader::new(
        ChargeAnswers::new(io),
        Arc::clone(&reads),
    ));
    let handshake = builder.handshake::<_, Bytes>(io);
    let (sender, mut connection) = match tokio::time::timeout(connect_timeout, handshake).await {
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
                    connect_timeout.as_millis()
                ),
            ))
        }
    };
    let closed = Arc::new(AtomicBool::new(false));
    let queued = Arc::new(Queued::default());
    let watched = match keep_alive {
        Some(keep_alive) if !keep_alive.interval.is_zero() && !keep_alive.timeout.is_zero() => {
            connection
                .ping_pong()
                .map(|ping_pong| (keep_alive, ping_pong))
        }
        _ => None,
    };
    let driver = Gathering::new(connection, Arc::clone(&queued));
    let ended = Arc::clone(&closed);
    let driver_stats = Arc::clone(&stats);
    let connection = async move {
        // However the driver ends (or is dropped, with its runtime), new calls see it.
        let _closed = MarkClosed(ended, driver_stats);
        let watching = async move {
            match watched {
                Some((keep_alive, ping_pong)) => watch(ping_pong, keep_alive).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            driven = driver => if let Err(e) = driven {
                tracing::debug!(server = %addr, "HTTP/2 connection ended: {e}");
            },
            watched = watching => {
                tracing::debug!(server = %addr, "closing an HTTP/2 connection: keep-alive {watched:?}");
            }
        }
    };
    // Served in turn with the runtime's other connections (see `transport::dispatcher`); it
    // runs until the connection ends, so the handle is not kept.
    let _ = dispatcher::spawn_connection(connection, reads);
    Ok(H2Conn {
        sender,
        closed,
        queued,
        remote: addr,
        local,
        secure,
        stats,
    })
}

/// Marks a connection ended when its driver is done or dropped.
struct MarkClosed(Arc<AtomicBool>, Arc<SocketStats>);

impl Drop for MarkClosed {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
        self.1.mark_closed();
    }
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
        let opened = sender
            .send_request(request, false)
            .map_err(|e| self.broken(e))?;
        self.stats.sent(1);
        Ok(opened)
    }

    /// Sends a request whose whole body is its chunks (the last one ends the stream) and waits
    /// for the response head. A stream the server refuses (`REFUSED_STREAM`: it processed
    /// none of it, as when a client opened more streams than the server's SETTINGS allow
    /// before they arrived) is sent once more, made again by `again`, as gRPC's transparent
    /// retry does: the call's own retries are not spent on it.
    pub(crate) async fn send<C: IntoIterator<Item = Bytes>>(
        &self,
        first: (http::Request<()>, C),
        again: impl FnOnce() -> Option<(http::Request<()>, C)>,
    ) -> Result<http::Response<H2Body>, Status> {
        let mut again = Some(again);
        let mut attempt = first;
        loop {
            let (request, chunks) = attempt;
            let (mut response, mut body) = self.open(request).await?;
            let answer = match send_body(&mut body, chunks) {
                Ok(()) => {
                    self.queued.add();
                    response.await
                }
                // The stream ended before its body was queued: the server reset it (refused
                // it, or answered in full and reset it) or the connection ended. The stream's
                // state keeps which, and its response future is ready with it. Any other
                // failure (the stream still open) is the send's own.
                Err(sent) => (&mut response).now_or_never().unwrap_or(Err(sent)),
            };
            match answer {
                Ok(response) => {
                    self.stats.received(1);
                    return Ok(response.map(H2Body::new));
                }
                Err(e) if refused(&e) => match again.take().and_then(|again| again()) {
                    Some(request) => attempt = request,
                    None => return Err(self.broken(e)),
                },
                Err(e) => return Err(self.broken(e)),
            }
        }
    }

    /// Sends a request whose body is the chunks `chunks` gives once the stream is open, as
    /// they come, from a task of its own; the body is cut short (the stream reset) when `stop`
    /// fires or is dropped. Waits for the response head. `chunks` is not called if the stream
    /// cannot be opened.
    pub(crate) async fn send_streaming(
        &self,
        request: http::Request<()>,
        chunks: impl FnOnce() -> Result<RequestChunks, Status>,
        stop: oneshot::Receiver<()>,
    ) -> Result<http::Response<H2Body>, Status> {
        let (response, mut body) = self.open(request).await?;
        let chunks = match chunks() {
            Ok(chunks) => chunks,
            Err(status) => {
                body.send_reset(h2::Reason::CANCEL);
                return Err(status);
            }
        };
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
        self.stats.received(1);
        Ok(response.map(H2Body::new))
    }

    fn broken(&self, e: h2::Error) -> Status {
        Status::new(
            errno::EFAILEDSOCKET,
            format!("HTTP/2 call to {} failed: {e}", self.remote),
        )
    }
}

/// Queues a request's whole body, the last chunk ending the stream (an empty one when there
/// are none).
fn send_body(
    body: &mut SendStream<Bytes>,
    chunks: impl IntoIterator<Item = Bytes>,
) -> Result<(), h2::Error> {
    let mut chunks = chunks.into_iter().peekable();
    if chunks.peek().is_none() {
        return body.send_data(Bytes::new(), true);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        body.send_data(chunk, last)?;
    }
    Ok(())
}

/// Whether the server refused the stream before processing any of it (RFC 9113 §8.7: such
/// a request may be sent again).
fn refused(e: &h2::Error) -> bool {
    e.is_remote() && e.reason() == Some(h2::Reason::REFUSED_STREAM)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `H2Conn::send` relies on when the server's reset beats the request's body: the
    /// body cannot be sent, and the response future is ready at once with the reset, so a
    /// refused stream is known as one and sent again.
    #[tokio::test]
    async fn a_stream_reset_before_its_body_is_sent_answers_with_the_reset() {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut connection = h2::server::handshake(far).await.unwrap();
            let (_request, mut respond) = connection.accept().await.unwrap().unwrap();
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            while connection.accept().await.is_some() {}
        });
        let (mut sender, connection) = h2::client::handshake(near).await.unwrap();
        tokio::spawn(connection);
        let request = http::Request::post("http://test/x").body(()).unwrap();
        let (mut response, mut body) = sender.send_request(request, false).unwrap();
        // The reset has arrived once the body's side sees it.
        let reason = std::future::poll_fn(|cx| body.poll_reset(cx))
            .await
            .unwrap();
        assert_eq!(reason, h2::Reason::REFUSED_STREAM);

        let sent = send_body(&mut body, [Bytes::from_static(b"x")]);
        assert!(sent.is_err(), "a reset stream takes no body");
        let answer = (&mut response).now_or_never().expect("ready once reset");
        assert!(refused(&answer.unwrap_err()));
        server.abort();
    }
}
