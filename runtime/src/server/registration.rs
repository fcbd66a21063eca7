//! A server's own entries in naming services ([`ServerBuilder::register`](super::ServerBuilder::register)):
//! made once the port is open, removed first thing when the server stops, so clients that
//! watch the name stop picking the server before it turns calls away.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::{errno, Error, Status};

/// The default lease of a registration: a server that dies leaves the list within this.
pub(super) const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// How long a stopping server waits for its registrations to be removed.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// Where to register, and as what.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Naming URLs: `etcd://host:port/prefix`.
    pub(super) urls: Vec<String>,
    /// The address to register; `None`: the listening address.
    pub(super) advertise: Option<String>,
    /// The lease's time to live.
    pub(super) ttl: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            urls: Vec::new(),
            advertise: None,
            ttl: DEFAULT_TTL,
        }
    }
}

/// The registrations of a running server.
#[derive(Debug, Default)]
pub(super) struct Active {
    #[cfg(feature = "etcd")]
    etcd: Vec<crate::naming::EtcdRegistration>,
    #[cfg(feature = "zookeeper")]
    zookeeper: Vec<crate::naming::ZooKeeperRegistration>,
}

impl Plan {
    /// Registers the server listening on `local_addr` under every URL. On a failure the ones
    /// made are undone and the error says which URL failed.
    pub(super) async fn register(&self, local_addr: SocketAddr) -> Result<Active, Error> {
        let mut active = Active::default();
        if self.urls.is_empty() {
            return Ok(active);
        }
        let address = match &self.advertise {
            Some(address) => address.clone(),
            None if local_addr.ip().is_unspecified() => {
                return Err(Error::invalid(format!(
                    "the server listens on {local_addr}, which clients cannot dial: give \
                     ServerBuilder::advertise the address to register"
                )))
            }
            None => local_addr.to_string(),
        };
        for url in &self.urls {
            if let Err(status) = active.add(url, &address, self.ttl).await {
                active.deregister().await;
                return Err(Error::from_status(status));
            }
        }
        Ok(active)
    }
}

impl Active {
    async fn add(&mut self, url: &str, address: &str, ttl: Duration) -> Result<(), Status> {
        #[cfg(feature = "etcd")]
        if url.starts_with("etcd://") {
            let registration = crate::naming::EtcdRegistration::register(url, address, ttl).await?;
            self.etcd.push(registration);
            return Ok(());
        }
        #[cfg(feature = "zookeeper")]
        if url.starts_with("zk://") {
            let registration =
                crate::naming::ZooKeeperRegistration::register(url, address, ttl).await?;
            self.zookeeper.push(registration);
            return Ok(());
        }
        let _ = (address, ttl);
        Err(unsupported(url))
    }

    /// Removes every registration, all at once, waiting [`DEREGISTER_TIMEOUT`] at most;
    /// failures are logged (leases and sessions expire anyway).
    pub(super) async fn deregister(&mut self) {
        #[cfg_attr(not(any(feature = "etcd", feature = "zookeeper")), allow(unused_mut))]
        let mut all: Vec<BoxFuture<'static, ()>> = Vec::new();
        #[cfg(feature = "etcd")]
        all.extend(self.etcd.drain(..).map(|registration| -> BoxFuture<'static, ()> {
            Box::pin(async move {
                let key = registration.key().to_owned();
                if let Err(e) = registration.deregister().await {
                    tracing::warn!(%key, error = %e, "deregistering from etcd failed; the lease will expire");
                }
            })
        }));
        #[cfg(feature = "zookeeper")]
        all.extend(self.zookeeper.drain(..).map(|registration| -> BoxFuture<'static, ()> {
            Box::pin(async move {
                let path = registration.path().to_owned();
                if let Err(e) = registration.deregister().await {
                    tracing::warn!(%path, error = %e, "deregistering from ZooKeeper failed; the session will expire");
                }
            })
        }));
        if all.is_empty() {
            return;
        }
        let all = futures_util::future::join_all(all);
        if tokio::time::timeout(DEREGISTER_TIMEOUT, all).await.is_err() {
            tracing::warn!(
                "deregistering took over {DEREGISTER_TIMEOUT:?}; the registrations will expire"
            );
        }
    }
}

fn unsupported(url: &str) -> Status {
    Status::new(
        errno::EINVAL,
        format!(
            "cannot register in `{url}`: servers register in etcd:// (brisk's feature `etcd`) \
             and zk:// (feature `zookeeper`)"
        ),
    )
}
