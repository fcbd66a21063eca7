//! A client connection: one TCP (or TLS) stream carrying many concurrent calls, a reader task matching
//! responses to calls by correlation id, and a batching writer task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use super::pending::{PendingCall, PendingCalls};
use super::stream::{self, ClientIo, Security};
use super::writer::{self, FrameSender, OutFrame};
use super::{prepare_read_buffer, read_buffer};
use crate::protocol::baidu_std::decode_frame;
use crate::{errno, Status};

/// Unwritten bytes beyond which new calls fail with EOVERCROWDED (brpc's default).
const MAX_UNWRITTEN_BYTES: usize = 64 * 1024 * 1024;

/// Why [`Connection::connect`] failed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The connection could not be made.
    Failed(Status),
    /// The runtime asked to run the connection no longer runs tasks.
    RuntimeGone,
}

/// A connected client socket.
#[derive(Debug)]
pub(crate) struct Connection {
    sender: FrameSender,
    pending: Arc<PendingCalls>,
    reader: AbortHandle,
    /// Set when the server said it is stopping (ELOGOFF): calls in flight finish here, new
    /// calls go to a fresh connection.
    logged_off: AtomicBool,
    /// Set once the server has answered a call: it has verified the credential (a rejected
    /// one closes the connection), so later requests need not carry one.
    answered: AtomicBool,
    local_addr: SocketAddr,
    remote_addr: SocketAddr,
}

impl Connection {
    /// Connects to `addr` on `runtime` (whose driver will run the connection's tasks), over
    /// TLS when `security` asks for it.
    pub(crate) async fn connect_secured(
        addr: SocketAddr,
        connect_timeout: Duration,
        max_body_size: usize,
        security: &Security,
        runtime: &Handle,
    ) -> Result<Arc<Connection>, ConnectError> {
        let security = security.clone();
        let task = runtime.spawn(async move {
            let io = stream::connect_secured(addr, connect_timeout, &security, &[]).await?;
            Ok(Connection::start(io, addr, max_body_size))
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

    /// Starts the reader and writer tasks of a connected stream: plain TCP splits into owned
    /// halves without a lock; TLS needs `tokio::io::split`.
    fn start(io: ClientIo, remote_addr: SocketAddr, max_body_size: usize) -> Connection {
        let local_addr = io.local_addr().unwrap_or(remote_addr);
        match io {
            ClientIo::Plain(stream) => {
                let (read_half, write_half) = stream.into_split();
                Self::run(
                    read_half,
                    write_half,
                    local_addr,
                    remote_addr,
                    max_body_size,
                )
            }
            #[cfg(feature = "tls")]
            ClientIo::Tls(stream) => {
                let (read_half, write_half) = tokio::io::split(stream);
                Self::run(
                    read_half,
                    write_half,
                    local_addr,
                    remote_addr,
                    max_body_size,
                )
            }
        }
    }

    /// Spawns the writer and reader tasks over the two halves of a connected stream.
    fn run<R, W>(
        read_half: R,
        write_half: W,
        local_addr: SocketAddr,
        remote_addr: SocketAddr,
        max_body_size: usize,
    ) -> Connection
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, queue) = writer::queue();
        let pending = Arc::new(PendingCalls::default());

        let on_write_error = Arc::clone(&pending);
        tokio::spawn(async move {
            if let Err(e) = writer::write_loop(write_half, queue).await {
                on_write_error.fail_all(&Status::from_io(
                    format!("Fail to write to {remote_addr}"),
                    &e,
                ));
            }
        });
        let reader = tokio::spawn(read_loop(
            read_half,
            Arc::clone(&pending),
            max_body_size,
            remote_addr,
        ))
        .abort_handle();
        Connection {
            sender,
            pending,
            reader,
            logged_off: AtomicBool::new(false),
            answered: AtomicBool::new(false),
            local_addr,
            remote_addr,
        }
    }

    /// The server's address.
    pub(crate) fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// Our side's address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the connection can no longer carry new calls.
    pub(crate) fn is_broken(&self) -> bool {
        self.pending.has_failed()
            || self.sender.is_closed()
            || self.logged_off.load(Ordering::Relaxed)
    }

    /// Whether requests still carry the authenticator's credential: until the server first
    /// answers, since calls sent together may reach it in any order and it verifies the first.
    pub(crate) fn needs_credential(&self) -> bool {
        !self.answered.load(Ordering::Relaxed)
    }

    /// Records that the server answered a call on this connection.
    pub(crate) fn mark_server_answered(&self) {
        if !self.answered.load(Ordering::Relaxed) {
            self.answered.store(true, Ordering::Relaxed);
        }
    }

    /// Stops new calls from using this connection (the server is stopping).
    pub(crate) fn mark_logged_off(&self) {
        self.logged_off.store(true, Ordering::Relaxed);
    }

    /// Registers call `correlation_id` and queues its request frame.
    pub(crate) fn start_call(
        &self,
        correlation_id: u64,
        frame: OutFrame,
    ) -> Result<PendingCall<'_>, Status> {
        if self.sender.unwritten() > MAX_UNWRITTEN_BYTES {
            return Err(Status::new(
                errno::EOVERCROWDED,
                format!(
                    "more than {MAX_UNWRITTEN_BYTES} bytes wait to be written to {}",
                    self.remote_addr
                ),
            ));
        }
        let call = self.pending.register(correlation_id)?;
        self.sender.send(frame).map_err(|_| {
            Status::new(
                errno::EFAILEDSOCKET,
                format!("connection to {} is closed", self.remote_addr),
            )
        })?;
        Ok(call)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.pending
            .fail_all(&Status::new(errno::EFAILEDSOCKET, "connection dropped"));
    }
}

/// Fails the connection's calls if the reader stops for any reason, including its runtime
/// shutting down and dropping it mid-read.
struct FailOnDrop(Arc<PendingCalls>);

impl Drop for FailOnDrop {
    fn drop(&mut self) {
        self.0.fail_all(&Status::new(
            errno::EFAILEDSOCKET,
            "connection reader stopped",
        ));
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut io: R,
    pending: Arc<PendingCalls>,
    max_body_size: usize,
    remote: SocketAddr,
) {
    let _fail_on_drop = FailOnDrop(Arc::clone(&pending));
    let mut buf = read_buffer();
    let status = 'read: loop {
        prepare_read_buffer(&mut buf);
        match io.read_buf(&mut buf).await {
            Ok(0) => break Status::new(errno::EEOF, format!("{remote} closed the connection")),
            Ok(_) => {}
            Err(e) => break Status::from_io(format!("Fail to read from {remote}"), &e),
        }
        loop {
            match decode_frame(&mut buf, max_body_size) {
                Ok(Some(frame)) => {
                    let id = frame.meta.correlation_id.unwrap_or(0) as u64;
                    if frame.meta.response.is_none() {
                        tracing::warn!(%remote, "closing connection: baidu_std frame without response meta");
                        break 'read Status::new(errno::ERESPONSE, "frame without response meta");
                    }
                    if !pending.complete(id, Ok(frame)) {
                        tracing::debug!(%remote, id, "response for a call that is gone");
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%remote, "closing connection: {e}");
                    break 'read Status::new(
                        errno::ERESPONSE,
                        format!("bad response from {remote}: {e}"),
                    );
                }
            }
        }
    };
    pending.fail_all(&status);
}
