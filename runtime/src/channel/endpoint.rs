//! A server as the client sees it, and how calls get a connection to it.
//!
//! `single` connections are shared by every channel in the process that talks to the same
//! server with the same protocol: the map below is consulted only when a channel is created,
//! never per call. Each endpoint keeps its current connection in an `ArcSwap`, so the call path
//! takes no lock unless it has to connect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::runtime::Handle;

use super::health::Health;
use super::{ChannelOptions, ConnectionType};
use crate::transport::connection::{ConnectError, Connection};
use crate::transport::grpc::H2Slot;
use crate::transport::http::HttpPool;
use crate::transport::stream::Security;
use crate::{Protocol, Status};

/// The shortest health-check interval honoured.
const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// Idle pooled connections kept per server (brpc's pool cap).
const MAX_IDLE_POOLED: usize = 100;

#[derive(Clone, PartialEq, Eq, Hash)]
struct EndpointKey {
    addr: SocketAddr,
    protocol: Protocol,
    max_body_size: usize,
    connection_group: String,
    security: Security,
}

static ENDPOINTS: LazyLock<Mutex<HashMap<EndpointKey, Weak<Endpoint>>>> =
    LazyLock::new(Default::default);

/// One server, with its shared connection and its pool.
#[derive(Debug)]
pub(crate) struct Endpoint {
    addr: SocketAddr,
    max_body_size: usize,
    /// TLS or not, for every connection to the server.
    security: Security,
    /// Runs the endpoint's connections; replaced by Brisk's background runtime if it shuts
    /// down while channels still use the endpoint.
    runtime: Mutex<Handle>,
    single: ArcSwapOption<Connection>,
    connecting: tokio::sync::Mutex<()>,
    pool: Mutex<Vec<Arc<Connection>>>,
    health: Health,
    /// Idle HTTP/1.1 connections (protocol `http`).
    pub(crate) http: HttpPool,
    /// The HTTP/2 connection (protocol `h2:grpc`).
    pub(crate) grpc: H2Slot,
}

impl Endpoint {
    /// The process-wide endpoint for `addr` and these options (created on first use).
    /// Channels with the same protocol, body limit and connection group share it.
    pub(crate) fn shared(
        addr: SocketAddr,
        options: &ChannelOptions,
        runtime: &Handle,
    ) -> Arc<Endpoint> {
        let max_body_size = options.max_body_size;
        let key = EndpointKey {
            addr,
            protocol: options.protocol,
            max_body_size,
            connection_group: options.connection_group.clone(),
            security: Security::of(options),
        };
        let mut map = ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(endpoint) = map.get(&key).and_then(Weak::upgrade) {
            return endpoint;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let endpoint = Arc::new(Endpoint {
            addr,
            max_body_size,
            security: key.security.clone(),
            runtime: Mutex::new(runtime.clone()),
            single: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            pool: Mutex::new(Vec::new()),
            health: Health::default(),
            http: HttpPool::default(),
            grpc: H2Slot::default(),
        });
        map.insert(key, Arc::downgrade(&endpoint));
        endpoint
    }

    /// An endpoint of its own, outside the process-wide map, for unit tests.
    #[cfg(test)]
    pub(crate) fn detached(addr: SocketAddr) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            addr,
            max_body_size: crate::protocol::baidu_std::DEFAULT_MAX_BODY_SIZE,
            security: Security::default(),
            runtime: Mutex::new(crate::executor::io_handle()),
            single: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            pool: Mutex::new(Vec::new()),
            health: Health::default(),
            http: HttpPool::default(),
            grpc: H2Slot::default(),
        })
    }

    /// Whether the server may take calls, and its circuit breaker.
    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A connection for one call attempt.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        kind: ConnectionType,
        connect_timeout: Duration,
    ) -> Result<Lease, Status> {
        match kind {
            ConnectionType::Single => Ok(Lease {
                conn: self.single(connect_timeout).await?,
                return_to: None,
                answered: false,
            }),
            ConnectionType::Pooled => {
                let idle = {
                    let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                    pool.retain(|c| !c.is_broken());
                    pool.pop()
                };
                let conn = match idle {
                    Some(conn) => conn,
                    None => self.connect(connect_timeout).await?,
                };
                Ok(Lease {
                    conn,
                    return_to: Some(Arc::clone(self)),
                    answered: false,
                })
            }
            ConnectionType::Short => Ok(Lease {
                conn: self.connect(connect_timeout).await?,
                return_to: None,
                answered: false,
            }),
        }
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

    async fn connect(&self, connect_timeout: Duration) -> Result<Arc<Connection>, Status> {
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match Connection::connect_secured(
            self.addr,
            connect_timeout,
            self.max_body_size,
            &self.security,
            &runtime,
        )
        .await
        {
            Ok(conn) => Ok(conn),
            Err(ConnectError::Failed(status)) => Err(status),
            Err(ConnectError::RuntimeGone) => {
                // The runtime this endpoint was created on has shut down while channels still
                // use it: carry on with Brisk's background runtime.
                let background = crate::executor::background().handle().clone();
                *self.runtime.lock().unwrap_or_else(|e| e.into_inner()) = background.clone();
                Connection::connect_secured(
                    self.addr,
                    connect_timeout,
                    self.max_body_size,
                    &self.security,
                    &background,
                )
                .await
                .map_err(|e| match e {
                    ConnectError::Failed(status) => status,
                    ConnectError::RuntimeGone => {
                        Status::internal("Brisk's background runtime is gone")
                    }
                })
            }
        }
    }

    /// Takes the server out of rotation (if it is not out already) and starts its health
    /// check: after `first_probe`, and then every `interval`, try to connect; the first
    /// connect that succeeds puts the server back, its connection ready for `single` calls.
    /// The probe stops if every channel using the endpoint is dropped.
    pub(crate) fn isolate(
        self: &Arc<Self>,
        first_probe: Duration,
        interval: Duration,
        connect_timeout: Duration,
    ) {
        if !self.health.isolate() {
            return;
        }
        tracing::info!(server = %self.addr, ?first_probe, "server isolated; health check started");
        // An interval of zero would be a busy connect loop.
        let interval = interval.max(MIN_PROBE_INTERVAL);
        let endpoint = Arc::downgrade(self);
        // Brisk's background runtime lives as long as the process: a probe on the runtime of
        // whichever channel created the endpoint would die with it and leave the server
        // isolated for good.
        crate::executor::background().spawn(async move {
            tokio::time::sleep(first_probe).await;
            loop {
                let Some(this) = endpoint.upgrade() else {
                    return;
                };
                if let Ok(conn) = this.connect(connect_timeout).await {
                    {
                        // Keep a connection a call made meanwhile; else use the probe's.
                        let _connecting = this.connecting.lock().await;
                        let current = this.single.load();
                        if current.as_ref().is_none_or(|c| c.is_broken()) {
                            this.single.store(Some(conn));
                        }
                    }
                    this.health.revive();
                    tracing::info!(server = %this.addr, "server revived by health check");
                    return;
                }
                drop(this);
                tokio::time::sleep(interval).await;
            }
        });
    }

    fn give_back(&self, conn: Arc<Connection>) {
        if conn.is_broken() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < MAX_IDLE_POOLED {
            pool.push(conn);
        }
    }
}

/// A connection held for one attempt. A pooled connection goes back to its pool when dropped,
/// but only once its call was answered (one call per pooled connection, as in brpc); short
/// ones close.
#[derive(Debug)]
pub(crate) struct Lease {
    conn: Arc<Connection>,
    return_to: Option<Arc<Endpoint>>,
    answered: bool,
}

impl Lease {
    /// Records that the attempt's answer (or the connection's failure) arrived.
    pub(crate) fn mark_answered(&mut self) {
        self.answered = true;
    }
}

impl std::ops::Deref for Lease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(endpoint) = self.return_to.take() {
            if self.answered {
                endpoint.give_back(Arc::clone(&self.conn));
            }
        }
    }
}
