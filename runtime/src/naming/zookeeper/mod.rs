//! `zk://`: servers registered as children of a ZooKeeper node, watched for changes (feature
//! `zookeeper`), and servers registering themselves there ([`ZooKeeperRegistration`]).
//!
//! Brisk speaks ZooKeeper's client protocol itself ([`jute`] for the bytes, [`client`] for a
//! session): the naming service needs a handful of requests, and the Rust clients that exist
//! bring a second async runtime or a TLS stack along.

mod client;
mod jute;
mod registration;

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

pub use registration::ZooKeeperRegistration;

use self::client::{Event, ResumeError, Session, ZkError};
use super::list::split_entry;
use super::{BoxFuture, NamingService, ServerNode};
use crate::{Error, Status};

/// The session timeout the naming service asks for.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest time between two failed attempts to reach ZooKeeper.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Servers registered as the children of a ZooKeeper node, watched for changes:
/// `zk://127.0.0.1:2181/services/echo` (several servers of an ensemble:
/// `zk://10.0.0.1:2181,10.0.0.2:2181/services/echo`).
///
/// Each child of the node (here `/services/echo`) is one server. Its data is `host:port`,
/// optionally followed by whitespace and a tag, as a `list://` entry is written (what
/// [`ZooKeeperRegistration`] writes). A child whose data does not name a server (none, or
/// rpcx's metadata such as `tps=0`) is read by its name instead: `10.0.0.1:8000`, or rpcx's
/// `tcp@10.0.0.1:8000`. What names no server is logged and skipped.
/// A node that does not exist (yet) lists no server, and is watched until it does.
///
/// The first [`next`](NamingService::next) lists the children and fails if no server of the
/// ensemble can be reached. Each later call returns when the children change (a watch). If
/// the connection breaks (or the server falls silent), the session is resumed on a new
/// connection (a new session once it has expired) after a pause of at least a second since the
/// last failure, and the children listed again: a later call returns the new list if it
/// differs, or fails if ZooKeeper still cannot be reached. A
/// change to a child's data alone is seen at the next change of the children.
///
/// Needs brisk's `zookeeper` feature. No authentication, no chroot.
///
/// ```no_run
/// use brisk::naming::{NamingService, ZooKeeperNamingService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), brisk::Status> {
/// let mut ns = ZooKeeperNamingService::new("127.0.0.1:2181/services/echo")?;
/// let servers = ns.next().await?; // the children of /services/echo now
/// println!("{} servers", servers.len());
/// # Ok(())
/// # }
/// ```
pub struct ZooKeeperNamingService {
    /// The URL, for messages: `zk://hosts/path`.
    url: String,
    hosts: Vec<String>,
    path: String,
    session: Option<Session>,
    /// A session whose connection broke, to resume (its watches are gone: list again).
    lost: Option<Session>,
    /// The last list returned.
    last: Option<Vec<ServerNode>>,
    /// When the last attempt to reach ZooKeeper failed, or the session ended.
    last_failure: Option<Instant>,
}

impl fmt::Debug for ZooKeeperNamingService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperNamingService")
            .field("url", &self.url)
            .field("connected", &self.session.is_some())
            .finish()
    }
}

impl ZooKeeperNamingService {
    /// Parses what follows `zk://`: `host:port[,host:port...]/path`. Nothing is contacted until
    /// the first [`next`](NamingService::next).
    ///
    /// Fails with [`errno::EINVAL`](crate::errno::EINVAL) for a missing or empty path, a path with an empty
    /// component, and a server that is not `host:port`.
    ///
    /// ```
    /// use brisk::{errno, naming::ZooKeeperNamingService};
    ///
    /// assert!(ZooKeeperNamingService::new("127.0.0.1:2181/services/echo").is_ok());
    /// let err = ZooKeeperNamingService::new("127.0.0.1:2181").unwrap_err(); // no path
    /// assert_eq!(err.code(), errno::EINVAL);
    /// ```
    pub fn new(rest: &str) -> Result<Self, Error> {
        let url = format!("zk://{rest}");
        let (hosts, path) =
            parse_url(rest).map_err(|reason| Error::invalid(format!("{url}: {reason}")))?;
        Ok(ZooKeeperNamingService {
            url,
            hosts,
            path,
            session: None,
            lost: None,
            last: None,
            last_failure: None,
        })
    }

    async fn next_list(&mut self) -> Result<Vec<ServerNode>, Status> {
        loop {
            let Some(session) = self.session.as_mut() else {
                if let Some(failed) = self.last_failure {
                    tokio::time::sleep_until(failed + RETRY_INTERVAL).await;
                }
                let opened = match self.lost.take() {
                    Some(lost) => {
                        match lost.resume(&self.url, &self.hosts, SESSION_TIMEOUT).await {
                            Ok(session) => Ok(session),
                            Err(ResumeError::Expired) => {
                                Session::connect(&self.url, &self.hosts, SESSION_TIMEOUT).await
                            }
                            Err(ResumeError::Unreachable(e)) => {
                                self.lost = Some(lost);
                                Err(e)
                            }
                        }
                    }
                    None => Session::connect(&self.url, &self.hosts, SESSION_TIMEOUT).await,
                };
                let session = match opened {
                    Ok(session) => session,
                    Err(e) => {
                        self.last_failure = Some(Instant::now());
                        return Err(e);
                    }
                };
                self.session = Some(session);
                if let Some(list) = self.relist().await? {
                    return Ok(list);
                }
                continue;
            };
            match session.event().await {
                Event::Watch(event) => {
                    tracing::debug!(url = %self.url, path = %event.path, kind = event.kind, "ZooKeeper watch fired");
                    if let Some(list) = self.relist().await? {
                        return Ok(list);
                    }
                }
                Event::Lost(reason) => {
                    tracing::warn!(url = %self.url, %reason, "the ZooKeeper connection ended; resuming the session");
                    self.lost = self.session.take();
                    self.last_failure = Some(Instant::now());
                }
            }
        }
    }

    /// Lists the children again (watching them); the list if it is not the one last returned.
    /// A failure ends the session.
    async fn relist(&mut self) -> Result<Option<Vec<ServerNode>>, Status> {
        let session = self.session.as_ref().expect("a session");
        match list(&self.url, session, &self.path).await {
            Ok(mut list) => {
                list.sort();
                list.dedup();
                if self.last.as_ref() == Some(&list) {
                    return Ok(None);
                }
                self.last = Some(list.clone());
                Ok(Some(list))
            }
            Err(e) => {
                self.lost = self.session.take();
                self.last_failure = Some(Instant::now());
                Err(Status::new(
                    e.to_status().code(),
                    format!("{}: listing {}: {}", self.url, self.path, e.message),
                ))
            }
        }
    }
}

impl NamingService for ZooKeeperNamingService {
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<ServerNode>, Status>> {
        Box::pin(self.next_list())
    }
}

/// The servers the children of `path` name, with a watch on the children (or on the node's
/// creation, when it does not exist).
async fn list(url: &str, session: &Session, path: &str) -> Result<Vec<ServerNode>, ZkError> {
    let children = match session.get_children(path, true).await {
        Ok(children) => children,
        Err(e) if e.code == jute::err::NO_NODE => {
            // Watch for the node to appear; it may have appeared meanwhile.
            if session.exists(path, true).await? {
                session.get_children(path, true).await?
            } else {
                return Ok(Vec::new());
            }
        }
        Err(e) => return Err(e),
    };
    let mut nodes = Vec::with_capacity(children.len());
    for child in children {
        let data = match session.get_data(&format!("{path}/{child}")).await {
            Ok(data) => data,
            // Gone since the listing: the next watch event lists again.
            Err(e) if e.code == jute::err::NO_NODE => continue,
            Err(e) => return Err(e),
        };
        // The data names the server; failing that (empty, or metadata as rpcx writes), the
        // child's own name does.
        let name = child.strip_prefix("tcp@").unwrap_or(&child);
        let data = std::str::from_utf8(&data).map(str::trim).unwrap_or("");
        let mut parsed = Err("no data, and the name is not `host:port`".to_owned());
        for entry in [data, name] {
            if entry.is_empty() || split_entry(entry).is_err() {
                continue;
            }
            parsed = super::parse_entry(entry).await.map_err(|e| e.to_string());
            break;
        }
        match parsed {
            Ok(node) => nodes.push(node),
            Err(reason) => tracing::warn!(
                url,
                %child,
                data,
                %reason,
                "skipping a ZooKeeper node: it does not name `host:port [tag]`"
            ),
        }
    }
    Ok(nodes)
}

/// Splits what follows `zk://` into the servers (`host:port` each) and the node's path
/// (starting with `/`, without trailing slashes). The error is the reason the URL is bad.
pub(crate) fn parse_url(rest: &str) -> Result<(Vec<String>, String), String> {
    let Some((authority, path)) = rest.split_once('/') else {
        return Err("no node path (expected zk://host:port/path)".to_owned());
    };
    if authority.is_empty() {
        return Err("no ZooKeeper server (expected zk://host:port/path)".to_owned());
    }
    let mut hosts = Vec::new();
    for host in authority.split(',') {
        if host.contains(char::is_whitespace) || host.contains('@') {
            return Err(format!("`{host}` is not host:port"));
        }
        split_entry(host)?;
        hosts.push(host.to_owned());
    }
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Err("empty node path (expected zk://host:port/path)".to_owned());
    }
    if path.split('/').any(str::is_empty) {
        return Err(format!("`/{path}` has an empty component"));
    }
    Ok((hosts, format!("/{path}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("127.0.0.1:2181/services/echo/"),
            Ok((
                vec!["127.0.0.1:2181".to_owned()],
                "/services/echo".to_owned()
            ))
        );
        assert_eq!(
            parse_url("a:1,b:2/x").map(|(hosts, _)| hosts),
            Ok(vec!["a:1".to_owned(), "b:2".to_owned()])
        );
        for bad in [
            "127.0.0.1:2181",
            "127.0.0.1:2181/",
            "/services",
            "127.0.0.1/services",
            "a:1,/x",
            "a:1/x//y",
            "u@a:1/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
            assert_eq!(
                ZooKeeperNamingService::new(bad).unwrap_err().code(),
                errno::EINVAL,
                "{bad}"
            );
        }
    }
}
