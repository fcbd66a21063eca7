//! Naming services: where a cluster's servers are listed.
//!
//! A [`Channel`](crate::Channel) built with a naming-service URL and a load balancer reaches a
//! whole cluster. The URL's scheme picks the naming service:
//!
//! | URL | servers come from |
//! |---|---|
//! | `list://10.0.0.1:8000,10.0.0.2:8000 tag` | the URL itself; a tag may follow an address after a space |
//! | `file:///etc/servers` | a file, one `host:port [tag]` per line, `#` comments; re-read when it changes |
//! | `http://host:port`, `dns://host:port` | every address the name resolves to, re-resolved every 5 s |
//! | `etcd://127.0.0.1:2379/prefix` | the values of the etcd keys under `/prefix/`, watched, through etcd's gRPC API; several endpoints may be given, comma-separated (feature `etcd`, `brisk::etcd`) |
//! | `zk://127.0.0.1:2181/path` | the children of the ZooKeeper node `/path`, watched (feature `zookeeper`) |
//!
//! Servers put themselves in etcd and ZooKeeper with [`ServerBuilder::register`](crate::ServerBuilder::register)
//! (or `brisk::etcd::EtcdRegistration` / `ZooKeeperRegistration` for any address).
//!
//! Other schemes join with [`register_scheme`] (a naming service) and [`register_registrar`]
//! (servers registering there), as brpc's `NamingServiceExtension()` takes them.
//!
//! Implement [`NamingService`] for any other source and pass it to
//! [`ChannelBuilder::connect_with`](crate::ChannelBuilder::connect_with). A
//! [`NamingServiceFilter`] drops servers before the load balancer sees them (by tag, say).

mod dns;
pub(crate) mod file;
pub(crate) mod list;
pub(crate) mod registry;
mod url;
#[cfg(feature = "zookeeper")]
mod zookeeper;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::{errno, Error, Status};

pub use dns::DnsNamingService;
pub use file::FileNamingService;
pub use list::ListNamingService;
pub use registry::{register_registrar, register_scheme};
pub use url::from_url;
#[cfg(feature = "zookeeper")]
pub use zookeeper::{ZooKeeperNamingService, ZooKeeperRegistration};

/// A boxed future, as naming services return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One server of a cluster: its address and an optional tag (brpc's `ServerNode`).
///
/// Tags mean what the load balancer or filter makes of them: `wrr` and `wr` read a weight
/// (`"10"`), a [`PartitionChannel`](crate::combo::PartitionChannel) reads `"index/count"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerNode {
    /// The server's address.
    pub addr: SocketAddr,
    /// The tag, empty when none was given.
    pub tag: String,
}

impl ServerNode {
    /// A node without a tag.
    pub fn new(addr: SocketAddr) -> Self {
        ServerNode {
            addr,
            tag: String::new(),
        }
    }

    /// A node with a tag.
    pub fn with_tag(addr: SocketAddr, tag: impl Into<String>) -> Self {
        ServerNode {
            addr,
            tag: tag.into(),
        }
    }
}

impl fmt::Display for ServerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tag.is_empty() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{} {}", self.addr, self.tag)
        }
    }
}

/// A source of server lists.
///
/// The channel calls [`next`](NamingService::next) in a loop on a task of its own, for as
/// long as the channel lives: the first call should answer at once (the channel waits for it
/// before `connect` returns, and fails if it fails); later calls wait until the list may have
/// changed (a period passed, a file changed, a watch fired) and return the whole new list.
/// An error from a later call is logged, the old list is kept, and `next` is called again
/// after a second.
///
/// ```
/// use std::time::Duration;
/// use brisk::naming::{BoxFuture, NamingService, ServerNode};
///
/// /// Servers from an in-house registry, polled every 10 s.
/// #[derive(Debug)]
/// struct Registry { first: bool }
///
/// impl NamingService for Registry {
///     fn next(&mut self) -> BoxFuture<'_, Result<Vec<ServerNode>, brisk::Status>> {
///         Box::pin(async move {
///             if !std::mem::take(&mut self.first) {
///                 tokio::time::sleep(Duration::from_secs(10)).await;
///             }
///             Ok(vec![ServerNode::new("127.0.0.1:8000".parse().unwrap())])
///         })
///     }
/// }
/// ```
pub trait NamingService: Send + fmt::Debug + 'static {
    /// The next full list of servers; see the trait's documentation for when to return.
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<ServerNode>, Status>>;
}

/// Makes a naming service from the part of a URL after `scheme://`; see [`register_scheme`].
pub type SchemeFactory = Arc<dyn Fn(&str) -> Result<Box<dyn NamingService>, Error> + Send + Sync>;

/// Puts a server in a naming service; see [`register_registrar`]. Called with the whole URL,
/// its scheme in lower case (`etcd://127.0.0.1:2379/services/echo`), the address to register
/// (`host:port`, perhaps followed by whitespace and a tag) and the time to live of the entry.
pub type Registrar = Arc<
    dyn Fn(&str, &str, Duration) -> BoxFuture<'static, Result<Box<dyn Registration>, Status>>
        + Send
        + Sync,
>;

/// A server's entry in a naming service, made by a [`Registrar`], kept alive until
/// [`deregister`](Registration::deregister) (or dropped: the entry then expires).
pub trait Registration: Send + Sync + fmt::Debug + 'static {
    /// Where the entry is, for messages: the key, the node path, ...
    fn name(&self) -> String;

    /// Removes the entry now.
    fn deregister(self: Box<Self>) -> BoxFuture<'static, Result<(), Status>>;
}

/// Decides which servers of a naming service's list a channel uses (brpc's
/// `NamingServiceFilter`). Any `Fn(&ServerNode) -> bool` is one.
///
/// ```
/// use brisk::naming::{NamingServiceFilter, ServerNode};
/// let only_canary = |node: &ServerNode| node.tag == "canary";
/// let node = ServerNode::with_tag("127.0.0.1:1".parse().unwrap(), "canary");
/// assert!(only_canary.accept(&node));
/// ```
pub trait NamingServiceFilter: Send + Sync + 'static {
    /// Whether the channel should use `node`.
    fn accept(&self, node: &ServerNode) -> bool;
}

impl<F> NamingServiceFilter for F
where
    F: Fn(&ServerNode) -> bool + Send + Sync + 'static,
{
    fn accept(&self, node: &ServerNode) -> bool {
        self(node)
    }
}

/// Parses one `host:port [tag]` entry, as `list://` items and `file://` lines are written.
/// Hostnames are resolved (to their first address).
pub(crate) async fn parse_entry(entry: &str) -> Result<ServerNode, Status> {
    let entry = entry.trim();
    let (address, tag) = match entry.split_once(char::is_whitespace) {
        Some((address, tag)) => (address, tag.trim()),
        None => (entry, ""),
    };
    let addr = resolve(address).await?;
    Ok(ServerNode::with_tag(addr, tag))
}

/// Resolves `"host:port"` to the first address it names.
pub(crate) async fn resolve(address: &str) -> Result<SocketAddr, Status> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if address.contains("://") {
        return Err(Status::new(
            errno::EINVAL,
            format!("`{address}`: naming services are not supported yet; give host:port"),
        ));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(Status::new(
            errno::EINVAL,
            format!("`{address}` is not host:port"),
        ));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(Status::new(
            errno::EINVAL,
            format!("`{address}` is not host:port"),
        ));
    }
    let mut addrs = tokio::net::lookup_host(address).await.map_err(|e| {
        Status::new(
            errno::EHOSTDOWN,
            format!("Fail to resolve `{address}`: {e}"),
        )
    })?;
    addrs
        .next()
        .ok_or_else(|| Status::new(errno::EHOSTDOWN, format!("`{address}` resolves to nothing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_names_and_rejects_bad_addresses() {
        assert_eq!(resolve("127.0.0.1:80").await.unwrap().port(), 80);
        assert!(resolve("localhost:8000").await.unwrap().ip().is_loopback());
        for bad in [
            "",
            "nohost",
            ":80",
            "host:notaport",
            "127.0.0.1:99999",
            "list://a:1",
        ] {
            let err = resolve(bad).await.unwrap_err();
            assert_eq!(err.code(), errno::EINVAL, "{bad}: {err}");
        }
        let err = resolve("no-such-host.invalid:80").await.unwrap_err();
        assert_eq!(err.code(), errno::EHOSTDOWN);
    }
}
