//! A server registering itself in ZooKeeper: an ephemeral node under the name's path, which
//! ZooKeeper removes when the session ends, kept by a task that opens a new session and puts
//! the node back when one is lost.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::client::{Event, ResumeError, Session, ZkError};
use super::{jute, parse_url};
use crate::naming::list::split_entry;
use crate::naming::{BoxFuture, Registration};
use crate::{errno, Status};

/// The shortest time between two attempts to open a session again.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// A server's node in ZooKeeper, kept until [`deregister`](ZooKeeperRegistration::deregister)
/// (or until it is dropped: the node then goes when the session times out).
///
/// Under `zk://host:port/path`, the node is `<path>/<address>`, ephemeral, with the address
/// (and a tag after whitespace, if given) as its data: what
/// [`ZooKeeperNamingService`](super::ZooKeeperNamingService) lists. Missing parents are created
/// (persistent, open to anyone). When the connection breaks, a task resumes the session on a
/// new connection (the node, the session's own, stays); if the session has expired meanwhile
/// (ZooKeeper out of reach for longer than its timeout), it opens a new one and creates the
/// node again.
///
/// [`ServerBuilder::register`](crate::ServerBuilder::register) does this for a server given a
/// `zk://` URL.
///
/// ```no_run
/// use std::time::Duration;
/// use brisk::naming::ZooKeeperRegistration;
///
/// # async fn demo() -> Result<(), brisk::Status> {
/// let registration = ZooKeeperRegistration::register(
///     "zk://127.0.0.1:2181/services/echo",
///     "10.0.0.7:8000",
///     Duration::from_secs(10),
/// )
/// .await?;
/// assert_eq!(registration.path(), "/services/echo/10.0.0.7:8000");
/// registration.deregister().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ZooKeeperRegistration {
    path: String,
    stop: Option<oneshot::Sender<()>>,
    keeper: Option<JoinHandle<Result<(), Status>>>,
}

/// What the keeping task needs to put the node back.
#[derive(Debug, Clone)]
struct Node {
    url: String,
    hosts: Vec<String>,
    parent: String,
    path: String,
    data: String,
    timeout: Duration,
}

impl ZooKeeperRegistration {
    /// Creates the ephemeral node for `address` (`host:port`, optionally followed by whitespace
    /// and a tag) under the path of `url` (`zk://host:port[,host:port...]/path`; the scheme may
    /// be left out), on a session of `session_timeout`, and keeps it.
    ///
    /// Fails with EINVAL for a bad URL or address, and with the error of reaching ZooKeeper
    /// when the first registration fails.
    pub async fn register(
        url: &str,
        address: &str,
        session_timeout: Duration,
    ) -> Result<ZooKeeperRegistration, Status> {
        let rest = match url.get(..5) {
            Some(scheme) if scheme.eq_ignore_ascii_case("zk://") => &url[5..],
            _ => url,
        };
        let url = format!("zk://{rest}");
        let (hosts, parent) = parse_url(rest)
            .map_err(|reason| Status::new(errno::EINVAL, format!("{url}: {reason}")))?;
        let data = address.trim().to_owned();
        let (host_port, _tag) = split_entry(&data).map_err(|reason| {
            Status::new(
                errno::EINVAL,
                format!("{url}: cannot register `{address}`: {reason}"),
            )
        })?;
        let node = Node {
            path: format!("{parent}/{host_port}"),
            url,
            hosts,
            parent,
            data: data.clone(),
            timeout: session_timeout,
        };
        let session = node.open().await?;
        tracing::info!(url = %node.url, path = %node.path, "registered in ZooKeeper");
        let (stop, stopped) = oneshot::channel();
        let path = node.path.clone();
        let keeper = tokio::spawn(keep(node, session, stopped));
        Ok(ZooKeeperRegistration {
            path,
            stop: Some(stop),
            keeper: Some(keeper),
        })
    }

    /// The node's path: `<path>/<host:port>`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Deletes the node and ends the session: watchers see the server leave at once.
    pub async fn deregister(mut self) -> Result<(), Status> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.keeper.take() {
            Some(keeper) => keeper
                .await
                .unwrap_or_else(|e| Err(Status::internal(format!("the keeping task failed: {e}")))),
            None => Ok(()),
        }
    }
}

impl Registration for ZooKeeperRegistration {
    fn name(&self) -> String {
        format!("ZooKeeper node {}", self.path)
    }

    fn deregister(self: Box<Self>) -> BoxFuture<'static, Result<(), Status>> {
        Box::pin(ZooKeeperRegistration::deregister(*self))
    }
}

impl Drop for ZooKeeperRegistration {
    fn drop(&mut self) {
        // Not deregistered: the node goes when the session times out.
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
    }
}

impl Node {
    /// What a stop that came while the session was away leaves: nothing to delete on a
    /// connection, and a node that may last until its session times out.
    fn stopped_while_away(&self) -> Result<(), Status> {
        tracing::warn!(url = %self.url, path = %self.path, "deregistered while ZooKeeper was out of reach: the node goes when its session times out");
        Ok(())
    }

    /// A new session with the node created on it.
    async fn open(&self) -> Result<Session, Status> {
        let session = Session::connect(&self.url, &self.hosts, self.timeout).await?;
        self.create(&session).await.map_err(|e| {
            Status::new(
                e.to_status().code(),
                format!("{}: registering {}: {}", self.url, self.path, e.message),
            )
        })?;
        Ok(session)
    }

    /// Creates the parents that are missing, then the node; a node left by an earlier session
    /// of this server (not expired yet) is replaced, so the new session owns it.
    async fn create(&self, session: &Session) -> Result<(), ZkError> {
        let mut prefix = String::new();
        for component in self.parent.split('/').filter(|c| !c.is_empty()) {
            prefix.push('/');
            prefix.push_str(component);
            match session.create(&prefix, b"", jute::PERSISTENT).await {
                Err(e) if e.code != jute::err::NODE_EXISTS => return Err(e),
                _ => {}
            }
        }
        let data = self.data.as_bytes();
        match session.create(&self.path, data, jute::EPHEMERAL).await {
            Err(e) if e.code == jute::err::NODE_EXISTS => {
                match session.delete(&self.path).await {
                    Err(e) if e.code != jute::err::NO_NODE => return Err(e),
                    _ => {}
                }
                session.create(&self.path, data, jute::EPHEMERAL).await
            }
            other => other,
        }
    }
}

/// Keeps the node: a lost session is replaced and the node created again; `stop` deletes it
/// and ends the session.
async fn keep(
    node: Node,
    mut session: Session,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), Status> {
    loop {
        tokio::select! {
            _ = &mut stop => {
                let deleted = session.delete(&node.path).await;
                session.close().await;
                tracing::info!(url = %node.url, path = %node.path, "deregistered from ZooKeeper");
                return match deleted {
                    Err(e) if e.code != jute::err::NO_NODE => Err(e.to_status()),
                    _ => Ok(()),
                };
            }
            event = session.event() => match event {
                Event::Watch(_) => {}
                Event::Lost(reason) => {
                    tracing::warn!(url = %node.url, path = %node.path, %reason, "the ZooKeeper connection ended; resuming the session");
                    session = loop {
                        let attempt = Instant::now();
                        // The same session if it has not expired: the node is still its own.
                        let resumed = tokio::select! {
                            _ = &mut stop => return node.stopped_while_away(),
                            resumed = session.resume(&node.url, &node.hosts, node.timeout) => resumed,
                        };
                        let reopened = match resumed {
                            Ok(resumed) => break resumed,
                            Err(ResumeError::Unreachable(e)) => Err(e),
                            Err(ResumeError::Expired) => tokio::select! {
                                _ = &mut stop => return node.stopped_while_away(),
                                opened = node.open() => opened,
                            },
                        };
                        match reopened {
                            Ok(opened) => {
                                tracing::info!(url = %node.url, path = %node.path, "the ZooKeeper session had expired: registered again on a new one");
                                break opened;
                            }
                            Err(e) => {
                                tracing::warn!(url = %node.url, error = %e, "reaching ZooKeeper again failed; trying again");
                                tokio::time::sleep_until(attempt + RETRY_INTERVAL).await;
                            }
                        }
                    };
                }
            }
        }
    }
}
