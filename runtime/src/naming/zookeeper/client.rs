//! One ZooKeeper session on one TCP connection: the handshake, requests matched to their
//! replies, pings every third of the session timeout, and watch notifications. A connection
//! that breaks, or that hears nothing for two thirds of the timeout, ends here (its pending
//! requests fail with ZooKeeper's `ConnectionLoss`); the naming service and registrations then
//! [resume](Session::resume) the session on a new connection, as ZooKeeper's own clients do,
//! and open a new one only once it has expired.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::jute::{self, op, Reader, WatchEvent, NOTIFICATION_XID, PING_XID};
use crate::{errno, Status};

/// How long connecting (TCP and the handshake) to one server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one request may wait for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// ZooKeeper's `ConnectionLoss`: the reply a request gets when the connection ends first.
pub(crate) const CONNECTION_LOSS: i32 = -4;

/// ZooKeeper's `OperationTimeout`: no reply in time.
pub(crate) const OPERATION_TIMEOUT: i32 = -7;

/// A request's failure: ZooKeeper's error code and what to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZkError {
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl ZkError {
    /// As a status of the call path: the session's failures are connection failures.
    pub(crate) fn to_status(&self) -> Status {
        let code = match self.code {
            CONNECTION_LOSS | jute::err::SESSION_EXPIRED => errno::EFAILEDSOCKET,
            OPERATION_TIMEOUT => errno::ETIMEDOUT,
            _ => errno::ERESPONSE,
        };
        Status::new(code, self.message.clone())
    }
}

/// What the session reports besides replies.
#[derive(Debug)]
pub(crate) enum Event {
    /// A watch fired.
    Watch(WatchEvent),
    /// The session is over (the connection broke, or the server went silent).
    Lost(String),
}

type Reply = oneshot::Sender<Result<Reader, ZkError>>;

/// A request for the driver task: the packet for an xid, and where its reply goes.
struct Command {
    build: Box<dyn FnOnce(i32) -> Bytes + Send>,
    what: String,
    reply: Reply,
}

/// A live session.
#[derive(Debug)]
pub(crate) struct Session {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    driver: JoinHandle<()>,
    /// The server, for messages.
    pub(crate) server: SocketAddr,
    /// The session's id and password, to resume it on another connection.
    id: i64,
    password: Bytes,
    /// The last transaction seen, kept by the driver.
    last_zxid: Arc<AtomicI64>,
}

/// Why a session could not be resumed.
#[derive(Debug)]
pub(crate) enum ResumeError {
    /// The session expired (or the server no longer knows it): open a new one.
    Expired,
    /// No server could be reached, or the handshake failed: try again later.
    Unreachable(Status),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command").field("what", &self.what).finish()
    }
}

impl Session {
    /// Opens a session of `timeout` with the first of `hosts` (`host:port`) that accepts one.
    /// `url` is for messages.
    pub(crate) async fn connect(
        url: &str,
        hosts: &[String],
        timeout: Duration,
    ) -> Result<Session, Status> {
        Self::open(url, hosts, timeout, None)
            .await
            .map_err(|e| match e {
                ResumeError::Unreachable(status) => status,
                ResumeError::Expired => Status::new(
                    errno::EFAILEDSOCKET,
                    format!("{url}: ZooKeeper refused a new session"),
                ),
            })
    }

    /// The same session again on a new connection, as ZooKeeper's own clients do after a
    /// connection breaks: its ephemeral nodes stay; its watches do not (list again).
    /// [`ResumeError::Expired`] once the server has let it go.
    pub(crate) async fn resume(
        &self,
        url: &str,
        hosts: &[String],
        timeout: Duration,
    ) -> Result<Session, ResumeError> {
        let resume = jute::Resume {
            id: self.id,
            password: self.password.clone(),
            last_zxid: self.last_zxid.load(Ordering::Relaxed),
        };
        Self::open(url, hosts, timeout, Some(&resume)).await
    }

    async fn open(
        url: &str,
        hosts: &[String],
        timeout: Duration,
        resume: Option<&jute::Resume>,
    ) -> Result<Session, ResumeError> {
        let mut last = None;
        for host in hosts {
            let attempt = Self::connect_one(url, host, timeout, resume);
            match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
                Ok(Ok(session)) => return Ok(session),
                Ok(Err(ResumeError::Expired)) => return Err(ResumeError::Expired),
                Ok(Err(ResumeError::Unreachable(e))) => last = Some(e),
                Err(_) => {
                    last = Some(Status::new(
                        errno::ETIMEDOUT,
                        format!("{url}: connecting to {host} timed out after {CONNECT_TIMEOUT:?}"),
                    ))
                }
            }
        }
        Err(ResumeError::Unreachable(last.unwrap_or_else(|| {
            Status::new(errno::EINVAL, format!("{url}: no server"))
        })))
    }

    /// Connects to `host` and opens (or resumes) the session.
    async fn connect_one(
        url: &str,
        host: &str,
        timeout: Duration,
        resume: Option<&jute::Resume>,
    ) -> Result<Session, ResumeError> {
        use ResumeError::Unreachable;
        let server = crate::naming::resolve(host)
            .await
            .map_err(|e| Unreachable(Status::new(e.code(), format!("{url}: {}", e.message()))))?;
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|e| Unreachable(io_error(url, server, &e)))?;
        let _ = stream.set_nodelay(true);
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        stream
            .write_all(&jute::connect_request(timeout_ms, resume))
            .await
            .map_err(|e| Unreachable(io_error(url, server, &e)))?;
        let mut buf = BytesMut::with_capacity(4096);
        let payload = loop {
            match jute::cut_packet(&mut buf) {
                Ok(Some(payload)) => break payload,
                Ok(None) => {}
                Err(e) => return Err(Unreachable(malformed(url, server, &e))),
            }
            let read = stream
                .read_buf(&mut buf)
                .await
                .map_err(|e| Unreachable(io_error(url, server, &e)))?;
            if read == 0 {
                return Err(Unreachable(Status::new(
                    errno::EFAILEDSOCKET,
                    format!("{url}: {server} closed the connection during the handshake"),
                )));
            }
        };
        let session =
            jute::connect_response(payload).map_err(|e| Unreachable(malformed(url, server, &e)))?;
        if session.timeout_ms <= 0 {
            // The session asked for is gone (or a new one refused).
            return Err(ResumeError::Expired);
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        let (notify, events) = mpsc::unbounded_channel();
        let negotiated = Duration::from_millis(session.timeout_ms as u64);
        let last_zxid = Arc::new(AtomicI64::new(resume.map_or(0, |r| r.last_zxid)));
        let driver = tokio::spawn(drive(
            stream,
            buf,
            receiver,
            notify,
            negotiated,
            Arc::clone(&last_zxid),
        ));
        tracing::debug!(%server, session = format!("{:#x}", session.id), resumed = resume.is_some(), timeout = ?negotiated, "ZooKeeper session connected");
        Ok(Session {
            commands,
            events,
            driver,
            server,
            id: session.id,
            password: session.password,
            last_zxid,
        })
    }

    /// Sends the request `build` makes for its xid, and waits for the reply's body.
    async fn call(
        &self,
        what: String,
        build: impl FnOnce(i32) -> Bytes + Send + 'static,
    ) -> Result<Reader, ZkError> {
        let (reply, answer) = oneshot::channel();
        let lost = |what: &str| ZkError {
            code: CONNECTION_LOSS,
            message: format!("{what}: the ZooKeeper session at {} is over", self.server),
        };
        let command = Command {
            build: Box::new(build),
            what: what.clone(),
            reply,
        };
        if self.commands.send(command).is_err() {
            return Err(lost(&what));
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(lost(&what)),
            Err(_) => Err(ZkError {
                code: CONNECTION_LOSS,
                message: format!(
                    "{what}: no answer from {} within {REQUEST_TIMEOUT:?}",
                    self.server
                ),
            }),
        }
    }

    /// The children of `path`, with a watch on them when `watch`.
    pub(crate) async fn get_children(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<Vec<String>, ZkError> {
        let owned = path.to_owned();
        let mut body = self
            .call(format!("getChildren {path}"), move |xid| {
                jute::get_children(xid, &owned, watch)
            })
            .await?;
        let children = body.strings().map_err(|e| self.malformed_reply(path, &e))?;
        Ok(children)
    }

    /// The data of `path`.
    pub(crate) async fn get_data(&self, path: &str) -> Result<Bytes, ZkError> {
        let owned = path.to_owned();
        let mut body = self
            .call(format!("getData {path}"), move |xid| {
                jute::get_data(xid, &owned, false)
            })
            .await?;
        body.buffer().map_err(|e| self.malformed_reply(path, &e))
    }

    /// Whether `path` exists, with a watch for its creation or deletion when `watch`.
    pub(crate) async fn exists(&self, path: &str, watch: bool) -> Result<bool, ZkError> {
        let owned = path.to_owned();
        let answer = self
            .call(format!("exists {path}"), move |xid| {
                jute::exists(xid, &owned, watch)
            })
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) if e.code == jute::err::NO_NODE => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates `path` with `data` and `flags` (persistent or ephemeral).
    pub(crate) async fn create(&self, path: &str, data: &[u8], flags: i32) -> Result<(), ZkError> {
        let (owned, data) = (path.to_owned(), data.to_vec());
        self.call(format!("create {path}"), move |xid| {
            jute::create(xid, &owned, &data, flags)
        })
        .await
        .map(drop)
    }

    /// Deletes `path`, whatever its version.
    pub(crate) async fn delete(&self, path: &str) -> Result<(), ZkError> {
        let owned = path.to_owned();
        self.call(format!("delete {path}"), move |xid| {
            jute::delete(xid, &owned)
        })
        .await
        .map(drop)
    }

    /// Ends the session on the server (its ephemeral nodes go at once) and the connection.
    pub(crate) async fn close(self) {
        let _ = self
            .call("closeSession".to_owned(), |xid| {
                jute::request(xid, op::CLOSE_SESSION, |_| {})
            })
            .await;
    }

    /// The next watch notification, or the session's end.
    pub(crate) async fn event(&mut self) -> Event {
        self.events
            .recv()
            .await
            .unwrap_or_else(|| Event::Lost("the session's task ended".to_owned()))
    }

    fn malformed_reply(&self, path: &str, e: &jute::Malformed) -> ZkError {
        ZkError {
            code: jute::err::MARSHALLING,
            message: format!("{path}: a malformed reply from {}: {}", self.server, e.0),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The server ends the session when its timeout passes without a ping.
        self.driver.abort();
    }
}

/// The session's task: writes requests and pings, reads replies and notifications, until the
/// connection ends or falls silent.
async fn drive(
    stream: TcpStream,
    mut buf: BytesMut,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    timeout: Duration,
    last_zxid: Arc<AtomicI64>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut pending: VecDeque<(i32, Reply)> = VecDeque::new();
    let mut next_xid: i32 = 1;
    let mut pings = tokio::time::interval(timeout / 3);
    pings.tick().await;
    let mut last_heard = Instant::now();
    let silence = timeout * 2 / 3;
    let reason = 'session: loop {
        // Whole packets already read first.
        loop {
            match jute::cut_packet(&mut buf) {
                Ok(Some(payload)) => {
                    last_heard = Instant::now();
                    if let Err(reason) = dispatch(payload, &mut pending, &events, &last_zxid) {
                        break 'session reason;
                    }
                }
                Ok(None) => break,
                Err(e) => break 'session format!("a malformed packet: {}", e.0),
            }
        }
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => break 'session "the server closed the connection".to_owned(),
                Ok(_) => {}
                Err(e) => break 'session format!("reading failed: {e}"),
            },
            command = commands.recv() => {
                let Some(command) = command else {
                    break 'session "the session was dropped".to_owned();
                };
                let xid = next_xid;
                next_xid = next_xid.wrapping_add(1).max(1);
                let packet = (command.build)(xid);
                if let Err(e) = writer.write_all(&packet).await {
                    let _ = command.reply.send(Err(ZkError {
                        code: CONNECTION_LOSS,
                        message: format!("{}: writing failed: {e}", command.what),
                    }));
                    break 'session format!("writing failed: {e}");
                }
                pending.push_back((xid, command.reply));
            }
            _ = pings.tick() => {
                if last_heard.elapsed() > silence {
                    break 'session format!("nothing heard for {silence:?}");
                }
                let ping = jute::request(PING_XID, op::PING, |_| {});
                if let Err(e) = writer.write_all(&ping).await {
                    break 'session format!("writing a ping failed: {e}");
                }
            }
        }
    };
    for (_, reply) in pending {
        let _ = reply.send(Err(ZkError {
            code: CONNECTION_LOSS,
            message: format!("the ZooKeeper session ended: {reason}"),
        }));
    }
    let _ = events.send(Event::Lost(reason));
}

/// Hands one packet to whom it is for; an error ends the session.
fn dispatch(
    payload: Bytes,
    pending: &mut VecDeque<(i32, Reply)>,
    events: &mpsc::UnboundedSender<Event>,
    last_zxid: &AtomicI64,
) -> Result<(), String> {
    let mut body = Reader::new(payload);
    let header =
        jute::reply_header(&mut body).map_err(|e| format!("a malformed reply: {}", e.0))?;
    if header.zxid > 0 {
        last_zxid.fetch_max(header.zxid, Ordering::Relaxed);
    }
    match header.xid {
        PING_XID => Ok(()),
        NOTIFICATION_XID => {
            let event = jute::watch_event(&mut body)
                .map_err(|e| format!("a malformed notification: {}", e.0))?;
            let _ = events.send(Event::Watch(event));
            Ok(())
        }
        xid => {
            // The server answers a session's requests in the order they were sent.
            let Some((expected, reply)) = pending.pop_front() else {
                return Err(format!("a reply to xid {xid}, which was not asked"));
            };
            if expected != xid {
                return Err(format!("a reply to xid {xid} where {expected} was due"));
            }
            let result = if header.err == 0 {
                Ok(body)
            } else {
                Err(ZkError {
                    code: header.err,
                    message: format!(
                        "ZooKeeper error {} ({})",
                        header.err,
                        jute::err::name(header.err)
                    ),
                })
            };
            let _ = reply.send(result);
            Ok(())
        }
    }
}

fn io_error(url: &str, server: SocketAddr, e: &io::Error) -> Status {
    let code = match e.kind() {
        io::ErrorKind::ConnectionRefused => errno::ECONNREFUSED,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => errno::ECONNRESET,
        io::ErrorKind::TimedOut => errno::ETIMEDOUT,
        _ => errno::EFAILEDSOCKET,
    };
    Status::new(
        code,
        format!("{url}: cannot reach ZooKeeper at {server}: {e}"),
    )
}

fn malformed(url: &str, server: SocketAddr, e: &jute::Malformed) -> Status {
    Status::new(
        errno::ERESPONSE,
        format!("{url}: a malformed handshake from {server}: {}", e.0),
    )
}
