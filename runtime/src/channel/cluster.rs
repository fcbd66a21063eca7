//! A channel's view of a cluster: the servers its naming service lists, kept current by a
//! task of their own, and the load balancer that picks one per attempt.
//!
//! Server lists are swapped in whole (`ArcSwap`) and handed to the balancer, so a list change
//! never blocks a call in flight. Each server's [`Endpoint`] is the process-wide one, so its
//! connection, health and circuit breaker are shared with every other channel using it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::endpoint::Endpoint;
use super::options::ChannelOptions;
use crate::lb::{Backend, LoadBalancer};
use crate::naming::{NamingService, NamingServiceFilter, ServerNode};
use crate::transport::client::{CallSettings, ClientProtocol};
use crate::Status;

/// How long the naming task waits after a failed `next()` before asking again.
const NAMING_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The servers behind a cluster channel and its balancer.
pub(crate) struct Cluster {
    balancer: Box<dyn LoadBalancer>,
    servers: ArcSwap<Vec<Backend>>,
    protocol: ClientProtocol,
    options: ChannelOptions,
    settings: CallSettings,
    runtime: Handle,
    filter: Option<Arc<dyn NamingServiceFilter>>,
    naming: std::sync::Mutex<Option<AbortHandle>>,
    description: String,
}

impl Cluster {
    /// Starts watching `naming` and waits for its first list (whose failure fails this).
    pub(crate) async fn start(
        mut naming: Box<dyn NamingService>,
        balancer: Box<dyn LoadBalancer>,
        filter: Option<Arc<dyn NamingServiceFilter>>,
        protocol: ClientProtocol,
        options: ChannelOptions,
        runtime: Handle,
    ) -> Result<Arc<Cluster>, Status> {
        let description = format!("{naming:?}");
        let settings = super::options::call_settings(&options);
        let cluster = Arc::new(Cluster {
            balancer,
            servers: ArcSwap::from_pointee(Vec::new()),
            protocol,
            options,
            settings,
            runtime: runtime.clone(),
            filter,
            naming: std::sync::Mutex::new(None),
            description,
        });
        let (first_tx, first_rx) = oneshot::channel();
        let weak = Arc::downgrade(&cluster);
        let task = runtime.spawn(async move {
            let mut first_tx = Some(first_tx);
            loop {
                let result = naming.next().await;
                let Some(cluster) = weak.upgrade() else {
                    return;
                };
                match result {
                    Ok(nodes) => {
                        cluster.reset(nodes);
                        if let Some(tx) = first_tx.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    Err(status) => {
                        if let Some(tx) = first_tx.take() {
                            let _ = tx.send(Err(status));
                            return;
                        }
                        tracing::warn!(naming = %cluster.description, %status,
                            "naming service failed; keeping the last server list");
                        drop(cluster);
                        tokio::time::sleep(NAMING_RETRY_DELAY).await;
                    }
                }
            }
        });
        *cluster.naming.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        match first_rx.await {
            Ok(Ok(())) => Ok(cluster),
            Ok(Err(status)) => Err(status),
            Err(_) => Err(Status::internal("the naming service's task ended")),
        }
    }

    /// Installs a new server list: servers that remain keep their `Backend` (and so the
    /// balancer's statistics), new ones get the process-wide endpoint for their address.
    fn reset(self: &Arc<Self>, mut nodes: Vec<ServerNode>) {
        if let Some(filter) = &self.filter {
            nodes.retain(|node| filter.accept(node));
        }
        nodes.sort();
        nodes.dedup();
        let old = self.servers.load();
        let mut previous: HashMap<&ServerNode, &Backend> =
            old.iter().map(|b| (b.node(), b)).collect();
        let backends: Vec<Backend> = nodes
            .into_iter()
            .map(|node| match previous.remove(&node) {
                Some(backend) => backend.clone(),
                None => {
                    let endpoint =
                        Endpoint::shared(node.addr, &self.protocol, &self.options, &self.runtime);
                    Backend::new(node, endpoint)
                }
            })
            .collect();
        tracing::debug!(naming = %self.description, servers = backends.len(), "server list changed");
        self.balancer.reset(&backends);
        self.servers.store(Arc::new(backends));
    }

    /// The balancer.
    pub(crate) fn balancer(&self) -> &dyn LoadBalancer {
        &*self.balancer
    }

    /// The current servers.
    pub(crate) fn servers(&self) -> Vec<Backend> {
        self.servers.load().as_ref().clone()
    }

    /// The options of the channel that made the cluster.
    pub(crate) fn options(&self) -> &ChannelOptions {
        &self.options
    }

    /// What the channel's calls decide for themselves (the health check connects with it).
    pub(crate) fn settings(&self) -> &CallSettings {
        &self.settings
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(task) = self
            .naming
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

impl Cluster {
    /// The cluster in a few words, for error messages that name no one server.
    pub(crate) fn describe(&self) -> String {
        format!(
            "a cluster of {} servers from {}",
            self.servers.load().len(),
            self.description
        )
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("naming", &self.description)
            .field("balancer", &self.balancer)
            .field("servers", &self.servers.load().len())
            .finish()
    }
}
