//! Load balancers: which server of a cluster takes each call.
//!
//! Name one when building a cluster channel, with parameters after a colon as in brpc:
//!
//! | name | picks |
//! |---|---|
//! | `rr` | each available server in turn |
//! | `wrr` | in turn, in proportion to weights read from the servers' tags |
//! | `random` | uniformly at random |
//! | `wr` | at random, in proportion to weights read from the tags |
//! | `la` | locality-aware: in proportion to throughput over latency, brpc's algorithm |
//! | `c_murmurhash`, `c_md5` | consistent hashing of [`Controller::set_request_code`](crate::Controller::set_request_code), 100 virtual nodes per server (`replicas=N`) |
//! | `p2c` | the better of two random servers by peak-EWMA latency × in-flight calls (`choices=`, `tau_ms=`) |
//!
//! `rr` and `random` take brpc's cluster-recovery throttling:
//! `"rr:min_working_instances=3 hold_seconds=10"` — once the number of available servers drops
//! to 0 or below 3, a call is let through with probability available/min_working_instances (the
//! others fail with [`errno::EREJECT`] and are not retried) until that number has held steady
//! for 10 s.
//!
//! Implement [`LoadBalancer`] for anything else and pass it to
//! [`ChannelBuilder::connect_with`](crate::ChannelBuilder::connect_with).

mod consistent_hashing;
mod locality_aware;
mod p2c;
mod random;
mod recover;
mod round_robin;
mod spec;
mod weighted_random;
mod weighted_round_robin;

pub use spec::from_spec;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::naming::ServerNode;
use crate::{errno, Status};

/// What a load balancer knows of a server besides its node: whether it may take calls now.
/// The channel that owns the cluster implements it for its servers (their connections, health
/// and circuit breaker); to a balancer an entry is opaque.
pub(crate) trait ServerEntry: Send + Sync + 'static {
    /// Whether the server may take calls.
    fn is_available(&self) -> bool;
    /// The entry as `Any`, for its owner to get its own type back.
    fn as_any(&self) -> &dyn Any;
}

/// One server of a cluster as a load balancer sees it: its node (address and tag) and whether
/// it may take calls now. Cheap to clone; equal when the nodes are equal.
#[derive(Clone)]
pub struct Backend {
    inner: Arc<BackendInner>,
}

struct BackendInner {
    node: ServerNode,
    entry: Arc<dyn ServerEntry>,
}

impl Backend {
    pub(crate) fn new(node: ServerNode, entry: Arc<dyn ServerEntry>) -> Self {
        Backend {
            inner: Arc::new(BackendInner { node, entry }),
        }
    }

    /// A backend whose availability a unit test sets ([`Backend::set_available`]).
    #[cfg(test)]
    pub(crate) fn detached(node: ServerNode) -> Self {
        Backend::new(node, Arc::new(TestEntry::default()))
    }

    /// Takes a [`detached`](Backend::detached) backend out of rotation (or puts it back).
    #[cfg(test)]
    pub(crate) fn set_available(&self, available: bool) {
        let entry = self.inner.entry.as_any().downcast_ref::<TestEntry>();
        let entry = entry.expect("a detached backend");
        entry
            .unavailable
            .store(!available, std::sync::atomic::Ordering::Relaxed);
    }

    /// The server's address and tag.
    pub fn node(&self) -> &ServerNode {
        &self.inner.node
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.node.addr
    }

    /// The server's tag (empty when none).
    pub fn tag(&self) -> &str {
        &self.inner.node.tag
    }

    /// The weight written in the tag, as `wrr` and `wr` read it: a positive integer, or `None`.
    pub fn weight(&self) -> Option<u32> {
        self.tag().trim().parse::<u32>().ok().filter(|w| *w > 0)
    }

    /// Whether the server may take calls: false while it is isolated after a broken
    /// connection (until a health check reconnects) or by the circuit breaker.
    pub fn is_available(&self) -> bool {
        self.inner.entry.is_available()
    }

    /// What the channel keeps for this server.
    pub(crate) fn entry(&self) -> &dyn ServerEntry {
        &*self.inner.entry
    }
}

/// A server entry for balancers' unit tests: available until told otherwise.
#[cfg(test)]
#[derive(Default)]
struct TestEntry {
    unavailable: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl ServerEntry for TestEntry {
    fn is_available(&self) -> bool {
        !self.unavailable.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.inner.node == other.inner.node
    }
}

impl Eq for Backend {}

impl Hash for Backend {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.node.hash(state);
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("node", &self.inner.node)
            .field("available", &self.is_available())
            .finish()
    }
}

/// What a load balancer knows of the call it picks a server for.
#[derive(Clone, Copy, Debug)]
pub struct SelectIn<'a> {
    /// The call's request code ([`Controller::set_request_code`](crate::Controller::set_request_code)),
    /// which consistent hashing needs.
    pub request_code: Option<u64>,
    /// Servers this call has already tried (retries and backup requests avoid them when
    /// another server is available).
    pub excluded: &'a [SocketAddr],
}

impl SelectIn<'_> {
    /// Whether `backend` was already tried by this call.
    pub fn is_excluded(&self, backend: &Backend) -> bool {
        self.excluded.contains(&backend.addr())
    }
}

/// How one attempt on a server ended, for balancers that learn from it (`la`, `p2c`).
#[derive(Clone, Copy, Debug)]
pub struct CallFeedback<'a> {
    /// The server that was picked.
    pub backend: &'a Backend,
    /// When the attempt started (just after [`LoadBalancer::select`] returned).
    pub begin: Instant,
    /// How long it took.
    pub latency: Duration,
    /// 0 on success, else the error code.
    pub error_code: i32,
}

/// Picks a server for each call.
///
/// [`reset`](LoadBalancer::reset) gets each new server list from the naming service;
/// [`select`](LoadBalancer::select) runs on every call attempt, concurrently with other
/// selects and with `reset`, so it must not block: keep the list behind an `ArcSwap` or
/// similar, never a lock a reset holds for long. Skip servers that are not
/// [available](Backend::is_available), and prefer ones the call has not
/// [tried](SelectIn::is_excluded).
pub trait LoadBalancer: Send + Sync + fmt::Debug + 'static {
    /// Replaces the servers.
    fn reset(&self, servers: &[Backend]);

    /// Picks a server, or fails with [`errno::EHOSTDOWN`] when none is available.
    fn select(&self, input: &SelectIn<'_>) -> Result<Backend, Status>;

    /// Learns how an attempt went. The default ignores it.
    fn feedback(&self, feedback: &CallFeedback<'_>) {
        let _ = feedback;
    }

    /// The request code that sends calls about `key` where this balancer keeps it: key-hashing
    /// balancers (`c_murmurhash`, `c_md5`) hash it with their function; others, which ignore
    /// request codes, answer `None` (the default).
    fn request_code_for(&self, key: &[u8]) -> Option<u64> {
        let _ = key;
        None
    }
}

/// The error a balancer returns when no server can take the call.
pub fn no_server_available() -> Status {
    Status::new(errno::EHOSTDOWN, "no server is available")
}

/// `key=value` parameters of a balancer spec, separated by spaces (brpc's syntax).
#[derive(Debug, Default)]
pub(crate) struct LbParams {
    spec: String,
    values: BTreeMap<String, String>,
}

impl LbParams {
    fn parse(spec: &str, params: &str) -> Result<Self, Status> {
        let mut values = BTreeMap::new();
        for item in params.split_whitespace() {
            let Some((key, value)) = item.split_once('=') else {
                return Err(Status::new(
                    errno::EINVAL,
                    format!("`{spec}`: parameter `{item}` is not key=value"),
                ));
            };
            values.insert(key.to_owned(), value.to_owned());
        }
        Ok(LbParams {
            spec: spec.to_owned(),
            values,
        })
    }

    /// Takes parameter `key` as a number, if given.
    pub(crate) fn take_u64(&mut self, key: &str) -> Result<Option<u64>, Status> {
        match self.values.remove(key) {
            None => Ok(None),
            Some(value) => value.parse::<u64>().map(Some).map_err(|_| {
                Status::new(
                    errno::EINVAL,
                    format!("`{}`: {key}={value} is not a number", self.spec),
                )
            }),
        }
    }

    /// Fails on parameters nobody took.
    fn finish(self) -> Result<(), Status> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(key) => Err(Status::new(
                errno::EINVAL,
                format!("`{}`: unknown parameter `{key}`", self.spec),
            )),
        }
    }
}
