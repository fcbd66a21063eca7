//! What a running server's handle, its accept loop and its connections share: the services,
//! the options, the phase of a graceful stop, and the counts `join` waits on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::interceptor::Interceptors;
use super::options::ServerOptions;
use super::registry::Registry;
use crate::{errno, Status};

/// How long a connection may take to finish its replies once the server closes, before a peer
/// that does not read is cut off (so `join` always returns).
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Where a connection comes from and whether it is encrypted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    /// The client's address.
    pub(crate) remote: SocketAddr,
    /// The address it connected to.
    pub(crate) local: SocketAddr,
    /// Whether it came over TLS.
    pub(crate) tls: bool,
    /// Whether it came to the server's `internal_port`.
    pub(crate) internal: bool,
    /// When its first message must have arrived whole (`first_bytes_timeout`), if ever.
    pub(crate) first_message_by: Option<tokio::time::Instant>,
}

/// Where a stopping server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    Stopping,
    Closed,
}

/// State shared by the server handle, its accept loop and its connections.
pub(crate) struct Shared {
    pub(crate) registry: Registry,
    pub(crate) options: ServerOptions,
    pub(crate) phase: watch::Sender<Phase>,
    pub(crate) local_addr: SocketAddr,
    /// Where the builtin pages are served, with an `internal_port`.
    pub(crate) internal_addr: Option<SocketAddr>,
    pub(crate) inflight: AtomicUsize,
    /// [`ServerOptions::max_concurrency`](super::ServerOptions::max_concurrency), as the
    /// server runs with it now (0: no limit).
    pub(crate) max_concurrency: AtomicUsize,
    pub(crate) idle: Notify,
    pub(crate) connections: AtomicUsize,
    pub(crate) connections_gone: Notify,
    /// Handlers cancelled unfinished: at their caller's deadline, or because the caller went
    /// away.
    pub(crate) cancelled: AtomicU64,
    /// Checks every request passes before its handler runs.
    pub(crate) interceptors: Interceptors,
    /// Decides the server's health, if the user gave one.
    pub(crate) health_reporter: Option<Arc<dyn crate::HealthReporter>>,
    /// The program's own flags, on `/flags`.
    pub(crate) user_flags: Vec<super::user_flag::UserFlag>,
    /// Samples requests into files, when the server was asked to.
    pub(crate) rpc_dump: Option<super::rpc_dump::RpcDump>,
    /// The reflection service's index of the hosted services' descriptors, made on the first
    /// reflection call (the services do not change while the server runs).
    #[cfg(feature = "json")]
    pub(crate) reflection: std::sync::OnceLock<Arc<super::descriptor_index::DescriptorIndex>>,
}

impl Shared {
    /// The server's health now: its reporter's, or OK while it runs (not serving once it
    /// stops, whatever the reporter says).
    pub(crate) fn health(&self) -> crate::Health {
        if self.phase_now() != Phase::Running {
            return crate::Health::not_serving("the server is stopping");
        }
        self.health_reporter
            .as_ref()
            .map_or_else(crate::Health::ok, |reporter| reporter.report())
    }

    /// ELIMIT when the requests in flight (the one asking included: count it first) are past
    /// the server's `max_concurrency`, in brpc's words.
    pub(crate) fn over_concurrency(&self) -> Option<Status> {
        let max = self.max_concurrency.load(Ordering::Relaxed);
        if max == 0 || self.inflight.load(Ordering::Relaxed) <= max {
            return None;
        }
        Some(Status::new(
            errno::ELIMIT,
            format!("Reached server's max_concurrency={max}"),
        ))
    }

    pub(crate) fn begin_stop(&self) {
        self.phase.send_if_modified(|p| {
            let running = *p == Phase::Running;
            if running {
                *p = Phase::Stopping;
            }
            running
        });
    }

    /// Counts a handler cancelled unfinished.
    pub(crate) fn count_cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn phase_now(&self) -> Phase {
        *self.phase.borrow()
    }

    pub(crate) async fn drain_and_close(&self) {
        wait_for_zero(&self.inflight, &self.idle).await;
        self.phase.send_replace(Phase::Closed);
        wait_for_zero(&self.connections, &self.connections_gone).await;
    }
}

async fn wait_for_zero(counter: &AtomicUsize, notify: &Notify) {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if counter.load(Ordering::SeqCst) == 0 {
            return;
        }
        notified.await;
    }
}

/// Resolves once the server's phase satisfies `done` (or the server is gone).
pub(crate) async fn wait_for_phase(
    phase: &mut watch::Receiver<Phase>,
    done: impl Fn(Phase) -> bool,
) {
    let _ = phase.wait_for(|p| done(*p)).await;
}

/// Counts a request from arrival to reply; the last one out wakes `join`.
pub(crate) struct InflightGuard(Arc<Shared>);

impl InflightGuard {
    pub(crate) fn enter(shared: &Arc<Shared>) -> Self {
        shared.inflight.fetch_add(1, Ordering::SeqCst);
        InflightGuard(Arc::clone(shared))
    }

    /// The server the request is counted in.
    pub(crate) fn shared(&self) -> &Shared {
        &self.0
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Counts an open connection until its writer has flushed and closed.
pub(crate) struct ConnectionGuard(Arc<Shared>);

impl ConnectionGuard {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.connections.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(Arc::clone(shared))
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.connections.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.connections_gone.notify_waiters();
        }
    }
}
