//! The framed discipline, shared by every protocol that plugs in a
//! [`ClientCodec`](crate::protocol::ClientCodec) (baidu_std and registered ones): a TCP (or
//! TLS) connection carrying many concurrent calls, a writer task that batches their frames into
//! few syscalls, and a reader (polled by the runtime's dispatchers, `transport::dispatcher`)
//! that cuts responses with the codec and hands each to its call, by correlation id or in
//! order.
//!
//! `single` connections are shared by every channel of the process that talks to the same
//! server with the same settings; each endpoint keeps its current one in an `ArcSwap`, so the
//! call path takes no lock unless it has to connect. `pooled` connections carry one call at a
//! time and go back to a pool once answered; `short` ones close after their call.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::BytesMut;
use futures_util::future::AbortHandle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Handle;

use super::call::{Answer, CallSettings, EncodedRequest, EndpointSettings, Failure};
use super::idle_pool::IdlePool;
use super::in_order::{Completion, InOrderCalls};
use super::pending::PendingCalls;
use crate::compress;
use crate::protocol::{ClientCodec, Matching, OutgoingRequest, Payload};
use crate::response_metadata::ResponseMetadata;
use crate::transport::dispatcher;
use crate::transport::read_buffer::read_some;
use crate::transport::sockets::{Counted, SocketStats};
use crate::transport::stream::{self, ClientIo, Security};
use crate::transport::stream_rpc::table::{front, Front, KeepAlive, Routed, StreamTable};
use crate::transport::tcp_write::TcpWriteHalf;
use crate::transport::writer::{self, FrameSender, OutFrame, MAX_UNWRITTEN_BYTES};
use crate::{errno, ConnectionType, MethodDescriptor, Status};

/// Idle pooled connections kept per server (brpc's pool cap).
const MAX_IDLE_POOLED: usize = 100;

/// Correlation ids, unique per process, so each attempt (retries included) is distinct.
static NEXT_CORRELATION_ID: AtomicU64 = AtomicU64::new(1);

/// A framed protocol's connections to one server.
pub(crate) struct FramedConnections {
    codec: Arc<dyn ClientCodec>,
    addr: SocketAddr,
    max_body_size: usize,
    security: Security,
    /// Runs the connections' tasks; replaced by Brisk's background runtime if it shuts down
    /// while channels still use the server.
    runtime: Mutex<Handle>,
    single: ArcSwapOption<Connection>,
    connecting: tokio::sync::Mutex<()>,
    pool: IdlePool<Arc<Connection>>,
}

impl std::fmt::Debug for FramedConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedConnections")
            .field("protocol", &self.codec.name())
            .field("addr", &self.addr)
            .finish()
    }
}

impl FramedConnections {
    /// `codec`'s connections to the server `settings` name (none made yet).
    pub(crate) fn new(codec: Arc<dyn ClientCodec>, settings: EndpointSettings) -> Self {
        FramedConnections {
            codec,
            addr: settings.addr,
            max_body_size: settings.max_body_size,
            security: settings.security,
            runtime: Mutex::new(settings.runtime),
            single: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            pool: IdlePool::new(MAX_IDLE_POOLED),
        }
    }

    /// The protocol's name.
    pub(crate) fn protocol(&self) -> &'static str {
        self.codec.name()
    }

    /// One attempt: a connection, the request's frame, the response.
    pub(crate) async fn call(
        &self,
        settings: &CallSettings,
        method: &MethodDescriptor,
        request: &EncodedRequest,
    ) -> Result<Answer, Failure> {
        if request.stream.is_some() {
            self.check_streams(settings.connection_type)
                .map_err(Failure::request)?;
        }
        let mut conn = self.acquire(settings).await.map_err(Failure::transport)?;
        // The stream the call offers goes on this attempt's connection.
        let stream = match (&request.stream, &conn.streams) {
            (Some(core), Some(table)) => {
                // The stream keeps its connection open while it lives, as brpc's its socket.
                let keep_alive: KeepAlive = Arc::clone(&conn.conn) as KeepAlive;
                table
                    .attach(core, true, Some(keep_alive))
                    .map_err(Failure::request)?;
                Some(core.setup())
            }
            _ => None,
        };
        // The credential goes in the connection's handshake (redis's AUTH), or else in its
        // requests until the server first answers.
        let (credential, handshake) = match settings.authenticator.as_deref() {
            Some(authenticator) if conn.needs_credential() => {
                let credential =
                    crate::auth::generate_credential(authenticator).map_err(Failure::request)?;
                let handshake = match self.codec.matching() {
                    Matching::InOrder => self.codec.handshake(credential.as_bytes()),
                    // The handshake needs the requests' order to find its answer.
                    Matching::CorrelationId => None,
                };
                match handshake {
                    Some(handshake) => (None, Some(handshake)),
                    None => (Some(credential), None),
                }
            }
            _ => (None, None),
        };
        let correlation_id = NEXT_CORRELATION_ID.fetch_add(1, Ordering::Relaxed);
        let outgoing = OutgoingRequest {
            method,
            correlation_id,
            payload: &request.payload,
            content_type: request.content_type,
            log_id: request.log_id,
            metadata: &request.headers,
            credential: credential.as_deref().map(str::as_bytes),
            deadline: request.deadline,
            connection_type: settings.connection_type,
            stream,
            trace: request.trace,
        };
        let frame = self
            .codec
            .encode_request(&outgoing)
            .map_err(Failure::request)?;
        let sent = Sent {
            correlation_id,
            frame,
            responses: self.codec.responses_expected(&outgoing),
            handshake,
        };
        let mut reply = conn.call(sent).await;
        conn.mark_answered();
        if let (Some(core), Ok(Ok(_))) = (&request.stream, &reply) {
            // Answered outside the stream: the server did not accept it.
            if let Some(status) = core.after_reply() {
                reply = Ok(Err(status));
            }
        }
        // Outer: the connection failed (see `Connection::call` for which judge the server);
        // inner: the server's answer.
        let answered = reply?;
        conn.mark_server_answered();
        let payload = match answered {
            Ok(payload) => payload,
            Err(status) if status.code() == errno::ELOGOFF => {
                // The server is stopping: no new calls on this connection, and (in a cluster)
                // none to this server until it is back.
                conn.mark_logged_off();
                return Err(Failure::transport(status.with_remote(conn.remote_addr)));
            }
            Err(status) => return Err(Failure::server(status.with_remote(conn.remote_addr))),
        };
        let message =
            compress::decompress(payload.compress_type, payload.message, self.max_body_size)
                .map_err(|e| {
                    Failure::server(Status::new(
                        errno::ERESPONSE,
                        format!("Fail to decompress response: {e}"),
                    ))
                })?;
        Ok(Answer {
            payload: message,
            attachment: payload.attachment,
            compress_type: payload.compress_type,
            remote: conn.remote_addr,
            local: conn.local_addr,
            headers: ResponseMetadata::default(),
        })
    }

    /// EREQUEST unless a call may offer a stream here: the protocol carries them, and the
    /// connection outlives the call.
    fn check_streams(&self, kind: ConnectionType) -> Result<(), Status> {
        if !self.codec.carries_streams() {
            return Err(Status::new(
                errno::EREQUEST,
                format!(
                    "{} does not carry brpc streams (streaming RPC needs baidu_std)",
                    self.codec.name()
                ),
            ));
        }
        if kind == ConnectionType::Short {
            return Err(Status::new(
                errno::EREQUEST,
                "a stream needs a connection that outlives its call: single or pooled, not short",
            ));
        }
        Ok(())
    }

    /// A connection for one attempt.
    async fn acquire(&self, settings: &CallSettings) -> Result<Lease<'_>, Status> {
        let connect_timeout = settings.connect_timeout;
        let (conn, pool) = match settings.connection_type {
            ConnectionType::Single => (self.single(connect_timeout).await?, None),
            ConnectionType::Pooled => {
                let conn = match self.pool.take(|c| !c.is_broken()) {
                    Some(conn) => conn,
                    None => self.connect(connect_timeout).await?,
                };
                (conn, Some((&self.pool, settings.idle_timeout)))
            }
            ConnectionType::Short => (self.connect(connect_timeout).await?, None),
        };
        Ok(Lease {
            conn,
            return_to: pool,
            answered: false,
        })
    }

    async fn single(&self, connect_timeout: Duration) -> Result<Arc<Connection>, Status> {
        if let Some(conn) = self.single.load_full() {
            if !conn.is_broken() {
                return Ok(conn);
            }
        }
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.single.load_full() {
            if !conn.is_broken() {
                return Ok(conn);
            }
        }
        let conn = self.connect(connect_timeout).await?;
        self.single.store(Some(Arc::clone(&conn)));
        Ok(conn)
    }

    /// Connects for a health check; the connection becomes the `single` one unless a call made
    /// one meanwhile.
    pub(crate) async fn probe(&self, connect_timeout: Duration) -> Result<(), Status> {
        let conn = self.connect(connect_timeout).await?;
        let _connecting = self.connecting.lock().await;
        let current = self.single.load();
        if current.as_ref().is_none_or(|c| c.is_broken()) {
            self.single.store(Some(conn));
        }
        Ok(())
    }

    async fn connect(&self, connect_timeout: Duration) -> Result<Arc<Connection>, Status> {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match self.connect_on(connect_timeout, &runtime).await {
            Err(ConnectError::RuntimeGone) => {
                // The runtime these connections were created on has shut down while channels
                // still use them: carry on with Brisk's background runtime.
                let background = crate::executor::background().handle().clone();
                *self.runtime.lock().unwrap_or_else(|e| e.into_inner()) = background.clone();
                self.connect_on(connect_timeout, &background)
                    .await
                    .map_err(|e| match e {
                        ConnectError::Failed(status) => status,
                        ConnectError::RuntimeGone => {
                            Status::internal("Brisk's background runtime is gone")
                        }
                    })
            }
            connected => connected.map_err(|e| match e {
                ConnectError::Failed(status) => status,
                ConnectError::RuntimeGone => unreachable!("handled above"),
            }),
        }
    }

    /// Connects on `runtime` (whose driver will run the connection's tasks).
    async fn connect_on(
        &self,
        connect_timeout: Duration,
        runtime: &Handle,
    ) -> Result<Arc<Connection>, ConnectError> {
        let (addr, security) = (self.addr, self.security.clone());
        let (codec, max_body_size) = (Arc::clone(&self.codec), self.max_body_size);
        let task = runtime.spawn(async move {
            let io = stream::connect_secured(addr, connect_timeout, &security, &[]).await?;
            Ok(Connection::start(io, addr, codec, max_body_size))
        });
        match task.await {
            Ok(connected) => connected.map(Arc::new).map_err(ConnectError::Failed),
            // The runtime is shutting down (or gone) and cancelled the task.
            Err(e) if e.is_cancelled() => Err(ConnectError::RuntimeGone),
            Err(e) => Err(ConnectError::Failed(Status::internal(format!(
                "connect task failed: {e}"
            )))),
        }
    }
}

/// Why connecting failed.
#[derive(Debug)]
enum ConnectError {
    /// The connection could not be made.
    Failed(Status),
    /// The runtime asked to run the connection no longer runs tasks.
    RuntimeGone,
}

/// A connection held for one attempt. A pooled connection goes back to its pool when dropped
/// (to be closed after the idle timeout it comes with), but only once its call was answered
/// (one call per pooled connection, as in brpc); short ones close.
struct Lease<'a> {
    conn: Arc<Connection>,
    return_to: Option<(&'a IdlePool<Arc<Connection>>, Option<Duration>)>,
    answered: bool,
}

impl Lease<'_> {
    /// Records that the attempt's answer (or the connection's failure) arrived.
    fn mark_answered(&mut self) {
        self.answered = true;
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some((pool, idle_timeout)) = self.return_to else {
            return;
        };
        if !self.answered || self.conn.is_broken() {
            return;
        }
        pool.give_back(Arc::clone(&self.conn), idle_timeout);
    }
}

/// The calls waiting on a connection, as the protocol matches responses.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per connection, behind an `Arc`
enum Waiting {
    ById(PendingCalls),
    InOrder(InOrderCalls),
}

impl Waiting {
    fn fail_all(&self, status: &Status) {
        match self {
            Waiting::ById(calls) => calls.fail_all(status),
            Waiting::InOrder(calls) => calls.fail_all(status),
        }
    }

    fn has_failed(&self) -> bool {
        match self {
            Waiting::ById(calls) => calls.has_failed(),
            Waiting::InOrder(calls) => calls.has_failed(),
        }
    }
}

/// A connected client socket.
#[derive(Debug)]
pub(crate) struct Connection {
    sender: FrameSender,
    /// The socket, for a call alone on the connection to write its request itself (plain TCP
    /// only).
    direct: Option<Counted<TcpWriteHalf>>,
    /// Calls sent and not yet answered (or given up), for knowing when a call is alone.
    calls_in_flight: AtomicUsize,
    waiting: Arc<Waiting>,
    /// The brpc streams on the connection, for protocols that carry them.
    streams: Option<Arc<StreamTable>>,
    reader: AbortHandle,
    /// Set when the server said it is stopping (ELOGOFF): calls in flight finish here, new
    /// calls go to a fresh connection.
    logged_off: AtomicBool,
    /// Set when the connection's reader was dropped by this process (its runtime shut down):
    /// the calls it failed say nothing about the server.
    stopped_here: Arc<AtomicBool>,
    /// Set once the server has answered a call: it has verified the credential (a rejected
    /// one closes the connection), so later requests need not carry one.
    answered: AtomicBool,
    local_addr: SocketAddr,
    remote_addr: SocketAddr,
}

impl Connection {
    /// Starts the reader and the writer task of a connected stream: plain TCP splits into owned
    /// halves without a lock; TLS needs `tokio::io::split`.
    fn start(
        io: Counted<ClientIo>,
        remote_addr: SocketAddr,
        codec: Arc<dyn ClientCodec>,
        max_body_size: usize,
    ) -> Connection {
        let (io, stats) = io.into_parts();
        let local_addr = io.local_addr().unwrap_or(remote_addr);
        stats.set_protocol(codec.name());
        let ends = Ends {
            local_addr,
            remote_addr,
            codec,
            max_body_size,
            stats: Arc::clone(&stats),
        };
        match io {
            ClientIo::Plain(stream) => {
                let (read_half, write_half) = stream.into_split();
                let read_half = Counted::new(read_half, Arc::clone(&stats));
                let write_half = Counted::new(TcpWriteHalf::new(write_half), stats);
                ends.run(read_half, write_half.clone(), Some(write_half))
            }
            #[cfg(feature = "tls")]
            ClientIo::Tls(stream) => {
                let (read_half, write_half) = tokio::io::split(Counted::new(stream, stats));
                ends.run(read_half, write_half, None)
            }
        }
    }

    /// Whether the connection can no longer carry new calls.
    fn is_broken(&self) -> bool {
        self.waiting.has_failed()
            || self.sender.is_closed()
            || self.logged_off.load(Ordering::Relaxed)
    }

    /// Whether requests still carry the authenticator's credential: until the server first
    /// answers, since calls sent together may reach it in any order and it verifies the first.
    fn needs_credential(&self) -> bool {
        !self.answered.load(Ordering::Relaxed)
    }

    /// Records that the server answered a call on this connection.
    fn mark_server_answered(&self) {
        if !self.answered.load(Ordering::Relaxed) {
            self.answered.store(true, Ordering::Relaxed);
        }
    }

    /// Stops new calls from using this connection (the server is stopping).
    fn mark_logged_off(&self) {
        self.logged_off.store(true, Ordering::Relaxed);
    }

    /// Queues call `correlation_id`'s request frame and waits for its response.
    /// The outer error is the connection's: `Cause::Request` when the request never left
    /// (the writer had already stopped: whatever stopped it judged the server then, or this
    /// process stopped it) or when this process stopped the connection; `Cause::Transport`
    /// otherwise.
    async fn call(&self, sent: Sent) -> Result<Result<Payload, Status>, Failure> {
        let Sent {
            correlation_id,
            frame,
            responses,
            handshake,
        } = sent;
        if self.sender.unwritten() > MAX_UNWRITTEN_BYTES {
            return Err(Failure::transport(Status::new(
                errno::EOVERCROWDED,
                format!(
                    "more than {MAX_UNWRITTEN_BYTES} bytes wait to be written to {}",
                    self.remote_addr
                ),
            )));
        }
        let closed = || {
            Status::new(
                errno::EFAILEDSOCKET,
                format!("connection to {} is closed", self.remote_addr),
            )
        };
        let failed = |status: Status| {
            if self.stopped_here.load(Ordering::Acquire) {
                Failure::request(status)
            } else {
                Failure::transport(status)
            }
        };
        match &*self.waiting {
            Waiting::ById(calls) => {
                let call = calls.register(correlation_id).map_err(failed)?;
                // A call alone on its connection writes its request itself (brpc's caller
                // writes first); calls that come together leave together, by the writer.
                let in_flight = CallInFlight::enter(&self.calls_in_flight);
                let sent = match self.direct.as_ref().filter(|_| in_flight.alone) {
                    Some(direct) => self.sender.send_direct(frame, direct),
                    None => self.sender.send(frame),
                };
                sent.map_err(|_| Failure::request(closed()))?;
                call.wait().await.map_err(failed)
            }
            Waiting::InOrder(calls) => {
                let (handshake_frame, handshake_responses) = handshake.unzip();
                let send = |with_handshake: bool| {
                    if let Some(frame) = handshake_frame.filter(|_| with_handshake) {
                        self.sender.send(frame).map_err(|_| closed())?;
                    }
                    self.sender.send(frame).map_err(|_| closed())
                };
                let call = calls
                    .register(responses, handshake_responses, send)
                    .map_err(|status| {
                        if self.sender.is_closed() {
                            Failure::request(status)
                        } else {
                            failed(status)
                        }
                    })?;
                call.wait().await.map_err(failed)
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.waiting
            .fail_all(&Status::new(errno::EFAILEDSOCKET, "connection dropped"));
    }
}

/// One attempt's request as the connection sends it.
struct Sent {
    correlation_id: u64,
    frame: OutFrame,
    /// How many responses answer it (in-order protocols).
    responses: usize,
    /// The connection's handshake and how many responses answer it, sent first if no call
    /// has sent it yet (in-order protocols).
    handshake: Option<(OutFrame, usize)>,
}

/// What the two tasks of a new connection need.
struct Ends {
    local_addr: SocketAddr,
    remote_addr: SocketAddr,
    codec: Arc<dyn ClientCodec>,
    max_body_size: usize,
    /// The connection's counters: messages are counted here, bytes by its halves.
    stats: Arc<SocketStats>,
}

impl Ends {
    /// Spawns the writer task and hands the reader to a dispatcher, over the two halves of a
    /// connected stream; `direct` is the write half again, when calls may write to it
    /// themselves.
    fn run<R, W>(
        self,
        read_half: R,
        write_half: W,
        direct: Option<Counted<TcpWriteHalf>>,
    ) -> Connection
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let Ends {
            local_addr,
            remote_addr,
            codec,
            max_body_size,
            stats,
        } = self;
        let (sender, mut queue) = writer::queue();
        stats.watch_unwritten(sender.unwritten_counter());
        queue.count_into(Arc::clone(&stats));
        let waiting = Arc::new(match codec.matching() {
            Matching::CorrelationId => Waiting::ById(PendingCalls::default()),
            Matching::InOrder => Waiting::InOrder(InOrderCalls::default()),
        });
        let streams = codec
            .carries_streams()
            .then(|| StreamTable::new(sender.clone(), remote_addr));
        // The writer task must not own anything that holds a sender to its own queue (the
        // streams' table does): it ends when the last sender is gone.
        let on_write_error = (Arc::clone(&waiting), streams.as_ref().map(Arc::downgrade));
        let stopped_here = Arc::new(AtomicBool::new(false));
        let mut writer_stopped = StopOnDrop(Some(Arc::clone(&stopped_here)));
        tokio::spawn(async move {
            let written = writer::write_loop(write_half, queue).await;
            writer_stopped.disarm(); // it ended on its own
            if let Err(e) = written {
                let status = Status::from_io(format!("Fail to write to {remote_addr}"), &e);
                let (waiting, streams) = on_write_error;
                waiting.fail_all(&status);
                if let Some(streams) = streams.and_then(|s| s.upgrade()) {
                    streams.fail_all(&status);
                }
            }
        });
        let ended = Ended {
            waiting: Arc::clone(&waiting),
            streams: streams.clone(),
            stopped_here: Arc::clone(&stopped_here),
        };
        // Polled by the runtime's dispatchers, not a task of its own: thousands of connections
        // are then served in turn (see `transport::dispatcher`).
        let reader = dispatcher::spawn(read_loop(
            read_half,
            ended,
            codec,
            max_body_size,
            remote_addr,
            stats,
        ));
        Connection {
            sender,
            direct,
            calls_in_flight: AtomicUsize::new(0),
            waiting,
            streams,
            reader,
            logged_off: AtomicBool::new(false),
            stopped_here,
            answered: AtomicBool::new(false),
            local_addr,
            remote_addr,
        }
    }
}

/// A call counted among its connection's calls in flight while it lives.
struct CallInFlight<'a> {
    count: &'a AtomicUsize,
    /// No other call was in flight when this one came.
    alone: bool,
}

impl<'a> CallInFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::Relaxed) == 0;
        CallInFlight { count, alone }
    }
}

impl Drop for CallInFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks a connection stopped by this process if its writer task is dropped before its write
/// loop ends (the runtime running it shut down): a call whose frame can no longer be queued
/// then judges no server.
struct StopOnDrop(Option<Arc<AtomicBool>>);

impl StopOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stopped_here) = self.0.take() {
            stopped_here.store(true, Ordering::Release);
        }
    }
}

/// What a connection's end fails: its calls, and its streams.
struct Ended {
    waiting: Arc<Waiting>,
    streams: Option<Arc<StreamTable>>,
    /// Set when the reader was dropped mid-read.
    stopped_here: Arc<AtomicBool>,
}

impl Ended {
    fn fail(&self, status: &Status) {
        self.waiting.fail_all(status);
        if let Some(streams) = &self.streams {
            streams.fail_all(status);
        }
    }
}

/// Fails the connection's calls and streams if the reader is dropped mid-read: by its
/// runtime shutting down, or an abort. That failure is this process's, not the server's or
/// the network's ([`Connection::stopped_here`]).
struct FailOnDrop<'a>(&'a Ended);

impl Drop for FailOnDrop<'_> {
    fn drop(&mut self) {
        // A panic (on a server's bad bytes) is the server's doing, not this process's.
        if !std::thread::panicking() {
            self.0.stopped_here.store(true, Ordering::Release);
        }
        self.0.fail(&Status::new(
            errno::EFAILEDSOCKET,
            "connection reader stopped",
        ));
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut io: R,
    ended: Ended,
    codec: Arc<dyn ClientCodec>,
    max_body_size: usize,
    remote: SocketAddr,
    stats: Arc<SocketStats>,
) {
    let fail_on_drop = FailOnDrop(&ended);
    let mut buf = BytesMut::new();
    let status = 'read: loop {
        match read_some(&mut io, &mut buf).await {
            Ok(0) => break Status::new(errno::EEOF, format!("{remote} closed the connection")),
            Ok(_) => {}
            Err(e) => break Status::from_io(format!("Fail to read from {remote}"), &e),
        }
        loop {
            let decoded = match ended.streams.as_deref().map(|_| front(&buf)) {
                Some(Front::NeedMore) => break,
                Some(Front::Stream) => {
                    let table = ended.streams.as_deref().expect("checked above");
                    match table.read_frame(&mut buf, max_body_size) {
                        Ok(Routed::NeedMore) => break,
                        Ok(Routed::Done) => {
                            stats.received(1);
                            // A stream message may wake its reader: it spends budget as an
                            // answer does (below).
                            tokio::task::coop::consume_budget().await;
                            continue;
                        }
                        // The reply to the call that opened a stream came on it.
                        Ok(Routed::Reply(stream, reply)) => {
                            let mut reply_buf = BytesMut::from(reply);
                            let mut decoded = codec.decode_response(&mut reply_buf, max_body_size);
                            if let Ok(Some(response)) = &mut decoded {
                                stream.on_reply(response.stream, &mut response.result);
                            }
                            match decoded {
                                Ok(Some(response)) if reply_buf.is_empty() => Ok(Some(response)),
                                Ok(_) => Err(crate::protocol::ParseError::new(
                                    "a stream's first message is not one whole reply",
                                )),
                                Err(e) => Err(e),
                            }
                        }
                        Err(e) => Err(crate::protocol::ParseError::new(e.to_string())),
                    }
                }
                Some(Front::Other) | None => codec.decode_response(&mut buf, max_body_size),
            };
            match decoded {
                Ok(Some(response)) => {
                    stats.received(1);
                    // Each answer wakes a caller: tokio's budget for this poll counts them, so
                    // a dispatcher's turn ends before it wakes more callers than tokio keeps
                    // in order (`transport::dispatcher`).
                    tokio::task::coop::consume_budget().await;
                    let id = response.correlation_id;
                    match &*ended.waiting {
                        Waiting::ById(calls) => {
                            if !calls.complete(id, Ok(response.result)) {
                                tracing::debug!(%remote, id, "response for a call that is gone");
                            }
                        }
                        Waiting::InOrder(calls) => {
                            match calls.complete(response.result, max_body_size) {
                                Completion::Taken => {}
                                Completion::Handshake(answer) => {
                                    if let Err(status) = codec.check_handshake(answer) {
                                        tracing::warn!(%remote, "closing connection: {status}");
                                        break 'read status;
                                    }
                                }
                                Completion::Unexpected => {
                                    tracing::warn!(%remote, "closing connection: a response without a request");
                                    break 'read Status::new(
                                        errno::ERESPONSE,
                                        format!("{remote} sent a response without a request"),
                                    );
                                }
                                Completion::TooLarge => {
                                    tracing::warn!(%remote, "closing connection: responses to one request exceed max_body_size");
                                    break 'read Status::new(
                                        errno::ERESPONSE,
                                        format!("the responses from {remote} to one request exceed max_body_size={max_body_size}"),
                                    );
                                }
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%remote, protocol = codec.name(), "closing connection: {e}");
                    break 'read Status::new(
                        errno::ERESPONSE,
                        format!("bad response from {remote}: {e}"),
                    );
                }
            }
        }
    };
    std::mem::forget(fail_on_drop);
    stats.mark_closed();
    ended.fail(&status);
}
