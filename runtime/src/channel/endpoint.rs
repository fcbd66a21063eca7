//! A server as the client sees it: its protocol's connections, and its health.
//!
//! Endpoints are shared by every channel in the process that talks to the same server with the
//! same protocol and connection settings: the map below is consulted only when a channel (or a
//! cluster's server list) is created, never per call.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use tokio::runtime::Handle;

use super::health::Health;
use super::options::ChannelOptions;
use crate::lb::ServerEntry;
use crate::transport::client::{CallSettings, ClientProtocol, Connections, EndpointSettings};
use crate::transport::stream::Security;

/// The shortest health-check interval honoured.
const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Clone, PartialEq, Eq, Hash)]
struct EndpointKey {
    addr: SocketAddr,
    protocol: &'static str,
    max_body_size: usize,
    connection_group: String,
    security: Security,
}

static ENDPOINTS: LazyLock<Mutex<HashMap<EndpointKey, Weak<Endpoint>>>> =
    LazyLock::new(Default::default);

/// One server: the connections its protocol makes to it, and whether it may take calls.
pub(crate) struct Endpoint {
    addr: SocketAddr,
    connections: Connections,
    health: Health,
    /// Itself, for the health check's task.
    this: Weak<Endpoint>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("connections", &self.connections)
            .field("isolated", &self.health.is_isolated())
            .finish()
    }
}

impl Endpoint {
    /// The process-wide endpoint for `addr` with `protocol` and these options (created on
    /// first use). Channels with the same protocol, body limit, connection group and security
    /// share it.
    pub(crate) fn shared(
        addr: SocketAddr,
        protocol: &ClientProtocol,
        options: &ChannelOptions,
        runtime: &Handle,
    ) -> Arc<Endpoint> {
        let key = EndpointKey {
            addr,
            protocol: protocol.name(),
            max_body_size: options.max_body_size,
            connection_group: options.connection_group.clone(),
            security: super::options::security(options),
        };
        let mut map = ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(endpoint) = map.get(&key).and_then(Weak::upgrade) {
            return endpoint;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let endpoint = Arc::new_cyclic(|this| Endpoint {
            addr,
            connections: protocol.connections(EndpointSettings {
                addr,
                max_body_size: key.max_body_size,
                security: key.security.clone(),
                runtime: runtime.clone(),
            }),
            health: Health::default(),
            this: this.clone(),
        });
        map.insert(key, Arc::downgrade(&endpoint));
        endpoint
    }

    /// Whether the server may take calls, and its circuit breaker.
    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The protocol's connections to the server.
    pub(crate) fn connections(&self) -> &Connections {
        &self.connections
    }

    /// Takes the server out of rotation (if it is not out already) and starts its health
    /// check: after `first_probe`, and then every `interval`, try to connect; the first
    /// connect that succeeds puts the server back, its connection kept for calls. The probe
    /// stops if every channel using the endpoint is dropped.
    pub(crate) fn isolate(
        &self,
        first_probe: Duration,
        interval: Duration,
        settings: &CallSettings,
    ) {
        if !self.health.isolate() {
            return;
        }
        tracing::info!(server = %self.addr, ?first_probe, "server isolated; health check started");
        // An interval of zero would be a busy connect loop.
        let interval = interval.max(MIN_PROBE_INTERVAL);
        let endpoint = self.this.clone();
        let settings = settings.clone();
        // Brisk's background runtime lives as long as the process: a probe on the runtime of
        // whichever channel created the endpoint would die with it and leave the server
        // isolated for good.
        crate::executor::background().spawn(async move {
            tokio::time::sleep(first_probe).await;
            loop {
                let Some(this) = endpoint.upgrade() else {
                    return;
                };
                if this.connections.probe(&settings).await.is_ok() {
                    this.health.revive();
                    tracing::info!(server = %this.addr, "server revived by health check");
                    return;
                }
                drop(this);
                tokio::time::sleep(interval).await;
            }
        });
    }
}

impl ServerEntry for Endpoint {
    fn is_available(&self) -> bool {
        !self.health.is_isolated()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
