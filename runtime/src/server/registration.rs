//! A server's own entries in naming services ([`ServerBuilder::register`](super::ServerBuilder::register)):
//! made once the port is open, removed first thing when the server stops, so clients that
//! watch the name stop picking the server before it turns calls away.

use std::net::SocketAddr;
use std::time::Duration;

use crate::naming::{self, Registration};
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
    registrations: Vec<Box<dyn Registration>>,
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
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(unsupported(url));
        };
        let Some(registrar) = naming::registry::registrar(scheme) else {
            return Err(unsupported(url));
        };
        // Schemes match without regard to case; registrars see them in lower case.
        let url = format!("{}://{rest}", scheme.to_ascii_lowercase());
        self.registrations
            .push(registrar(&url, address, ttl).await?);
        Ok(())
    }

    /// Removes every registration, all at once, waiting [`DEREGISTER_TIMEOUT`] at most;
    /// failures are logged (leases and sessions expire anyway).
    pub(super) async fn deregister(&mut self) {
        if self.registrations.is_empty() {
            return;
        }
        let all = self.registrations.drain(..).map(|registration| async move {
            let name = registration.name();
            if let Err(e) = registration.deregister().await {
                tracing::warn!(registration = %name, error = %e, "deregistering failed; the entry will expire");
            }
        });
        let all = futures_util::future::join_all(all);
        if tokio::time::timeout(DEREGISTER_TIMEOUT, all).await.is_err() {
            tracing::warn!(
                "deregistering took over {DEREGISTER_TIMEOUT:?}; the registrations will expire"
            );
        }
    }
}

fn unsupported(url: &str) -> Status {
    let known = naming::registry::registrar_schemes();
    let known = if known.is_empty() {
        "none: etcd:// needs brisk's feature `etcd`, zk:// its feature `zookeeper`".to_owned()
    } else {
        known.join(", ")
    };
    Status::new(
        errno::EINVAL,
        format!("cannot register in `{url}`: no registrar for its scheme (known: {known})"),
    )
}
