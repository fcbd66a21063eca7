//! `random`: each call goes to a server drawn uniformly at random.
//!
//! The server list is an immutable snapshot behind an [`ArcSwap`]; [`reset`](LoadBalancer::reset)
//! builds a new one and swaps it in, so a select never waits. A select draws a random index and
//! takes that server if it is available and not yet tried by the call; after a few misses it
//! counts the servers that qualify and draws among them, so the pick stays uniform over the
//! servers that can take the call however many are down. When every available server was
//! already tried, one of those is drawn instead (as brpc does for retries).
//!
//! This file also holds the small random-number helpers the other balancers share: a
//! thread-local wyrand generator seeded from the standard library's [`RandomState`], which needs
//! no lock and no extra crate.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{no_server_available, Backend, LoadBalancer, SelectIn};
use crate::Status;

thread_local! {
    /// This thread's wyrand state, seeded once per thread.
    static RAND_STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0x6272_6973_6b5f_6c62_u64));
}

/// A fast, thread-local pseudo-random `u64` (wyrand). Not for cryptography.
pub(crate) fn fast_rand() -> u64 {
    RAND_STATE.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// A pseudo-random number in `0..n` (0 when `n` is 0), by Lemire's multiply-shift: the bias is
/// below `n / 2^64`, far under anything a load balancer could notice.
pub(crate) fn fast_rand_below(n: u64) -> u64 {
    ((u128::from(fast_rand()) * u128::from(n)) >> 64) as u64
}

/// [`fast_rand_below`] for indices.
pub(super) fn fast_rand_index(n: usize) -> usize {
    fast_rand_below(n as u64) as usize
}

/// The servers of `servers` without repeats, in their first order: a server listed twice by a
/// naming service must not get twice the traffic.
pub(super) fn dedup(servers: &[Backend]) -> Vec<Backend> {
    let mut seen = HashSet::with_capacity(servers.len());
    servers
        .iter()
        .filter(|backend| seen.insert(backend.node()))
        .cloned()
        .collect()
}

/// Random draws tried before counting the servers that qualify.
const QUICK_DRAWS: usize = 4;

/// Picks uniformly among the available servers the call has not tried; failing that, among
/// the available ones it has tried; `None` when no server is available.
///
/// Costs a few random draws when most servers qualify, O(n) otherwise. Allocates nothing.
pub(super) fn pick_uniform(servers: &[Backend], input: &SelectIn<'_>) -> Option<Backend> {
    let n = servers.len();
    if n == 0 {
        return None;
    }
    // Rejection sampling: each accepted draw is uniform over the servers that qualify.
    for _ in 0..QUICK_DRAWS {
        let backend = &servers[fast_rand_index(n)];
        if backend.is_available() && !input.is_excluded(backend) {
            return Some(backend.clone());
        }
    }
    pick_uniform_where(servers, |b| b.is_available() && !input.is_excluded(b))
        .or_else(|| pick_uniform_where(servers, Backend::is_available))
}

/// Counts the servers `accept` takes and draws one of them uniformly.
fn pick_uniform_where(servers: &[Backend], accept: impl Fn(&Backend) -> bool) -> Option<Backend> {
    let count = servers.iter().filter(|b| accept(b)).count();
    if count == 0 {
        return None;
    }
    let mut skip = fast_rand_index(count);
    let mut last = None;
    for backend in servers.iter().filter(|b| accept(b)) {
        if skip == 0 {
            return Some(backend.clone());
        }
        skip -= 1;
        last = Some(backend);
    }
    // A server went down between the two passes: take the last one that still qualified.
    last.cloned()
}

/// The `random` balancer: a uniformly random available server.
pub(crate) struct Random {
    servers: ArcSwap<Vec<Backend>>,
}

impl Random {
    /// A balancer with no servers until the first [`reset`](LoadBalancer::reset).
    pub(crate) fn new() -> Self {
        Random {
            servers: ArcSwap::from_pointee(Vec::new()),
        }
    }
}

impl fmt::Debug for Random {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Random")
            .field("servers", &self.servers.load().len())
            .finish()
    }
}

impl LoadBalancer for Random {
    fn reset(&self, servers: &[Backend]) {
        self.servers.store(Arc::new(dedup(servers)));
    }

    fn select(&self, input: &SelectIn<'_>) -> Result<Backend, Status> {
        pick_uniform(&self.servers.load(), input).ok_or_else(no_server_available)
    }
}

/// Helpers shared by the balancers' unit tests.
#[cfg(test)]
pub(super) mod testing {
    use std::collections::HashSet;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::super::{Backend, LoadBalancer, SelectIn};
    use crate::errno;
    use crate::naming::ServerNode;

    /// The address of test server `i`.
    pub(crate) fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 8000))
    }

    /// `n` untagged servers.
    pub(crate) fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend::detached(ServerNode::new(addr(i))))
            .collect()
    }

    /// One server per tag, server `i` tagged `tags[i]`.
    pub(crate) fn tagged(tags: &[&str]) -> Vec<Backend> {
        tags.iter()
            .enumerate()
            .map(|(i, tag)| Backend::detached(ServerNode::with_tag(addr(i), *tag)))
            .collect()
    }

    /// Takes `backend` out of rotation.
    pub(crate) fn isolate(backend: &Backend) {
        backend.set_available(false);
    }

    /// Puts `backend` back in rotation.
    pub(crate) fn revive(backend: &Backend) {
        backend.set_available(true);
    }

    /// A select with nothing excluded.
    pub(crate) fn any() -> SelectIn<'static> {
        SelectIn {
            request_code: None,
            excluded: &[],
        }
    }

    /// Index in `servers` of each of `count` consecutive selects.
    pub(crate) fn picks(lb: &dyn LoadBalancer, servers: &[Backend], count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| {
                let picked = lb.select(&any()).expect("a server");
                servers
                    .iter()
                    .position(|b| *b == picked)
                    .expect("a known server")
            })
            .collect()
    }

    /// How many of `count` selects picked each of `servers`.
    pub(crate) fn counts(lb: &dyn LoadBalancer, servers: &[Backend], count: usize) -> Vec<usize> {
        let mut hits = vec![0; servers.len()];
        for i in picks(lb, servers, count) {
            hits[i] += 1;
        }
        hits
    }

    /// The checks every balancer must pass: skips isolated servers, prefers servers the call
    /// has not tried, falls back to tried ones, fails with EHOSTDOWN when none is available.
    pub(crate) fn check_availability(lb: &dyn LoadBalancer, servers: &[Backend]) {
        assert!(servers.len() >= 3);
        let empty: [Backend; 0] = [];
        lb.reset(&empty);
        assert_eq!(lb.select(&any()).unwrap_err().code(), errno::EHOSTDOWN);

        lb.reset(servers);
        // Isolated servers are skipped.
        isolate(&servers[0]);
        for _ in 0..300 {
            assert_ne!(lb.select(&any()).unwrap(), servers[0]);
        }
        // Servers already tried are avoided while another is available.
        let tried = [servers[1].addr()];
        let input = SelectIn {
            request_code: None,
            excluded: &tried,
        };
        for _ in 0..300 {
            let picked = lb.select(&input).unwrap();
            assert_ne!(picked, servers[0]);
            assert_ne!(picked, servers[1]);
        }
        // When every available server was tried, a tried one is better than failing.
        let all: Vec<SocketAddr> = servers.iter().map(Backend::addr).collect();
        let input = SelectIn {
            request_code: None,
            excluded: &all,
        };
        for _ in 0..300 {
            assert_ne!(lb.select(&input).unwrap(), servers[0]);
        }
        // Nothing available: EHOSTDOWN, excluded or not.
        for backend in servers {
            isolate(backend);
        }
        assert_eq!(lb.select(&any()).unwrap_err().code(), errno::EHOSTDOWN);
        assert_eq!(lb.select(&input).unwrap_err().code(), errno::EHOSTDOWN);
        for backend in servers {
            revive(backend);
        }
        assert!(lb.select(&any()).is_ok());
    }

    /// Threads select while the list flips between `a` and `b`: no panic, and every pick
    /// belongs to one of the lists.
    pub(crate) fn check_concurrent_reset(lb: &dyn LoadBalancer, a: &[Backend], b: &[Backend]) {
        let known: HashSet<&ServerNode> = a.iter().chain(b).map(Backend::node).collect();
        let stop = AtomicBool::new(false);
        lb.reset(a);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    let mut picks = 0u64;
                    while !stop.load(Ordering::Relaxed) || picks < 1000 {
                        if let Ok(picked) = lb.select(&any()) {
                            assert!(
                                known.contains(picked.node()),
                                "{picked:?} is in neither list"
                            );
                            lb.feedback(&super::super::CallFeedback {
                                backend: &picked,
                                begin: std::time::Instant::now(),
                                latency: std::time::Duration::from_micros(100 + picks % 50),
                                error_code: 0,
                            });
                        }
                        picks += 1;
                    }
                });
            }
            for round in 0..2000 {
                let empty: [Backend; 0] = [];
                let list = match round % 5 {
                    0 => &empty[..],
                    1 | 3 => a,
                    _ => b,
                };
                lb.reset(list);
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn fast_rand_below_stays_in_range() {
        assert_eq!(fast_rand_below(0), 0);
        for n in [1u64, 2, 3, 7, 1000, u64::MAX] {
            for _ in 0..1000 {
                assert!(fast_rand_below(n) < n);
            }
        }
    }

    #[test]
    fn random_is_uniform() {
        let servers = backends(10);
        let lb = Random::new();
        lb.reset(&servers);
        let total = 100_000;
        let hits = counts(&lb, &servers, total);
        let expected = total / servers.len();
        for hit in hits {
            // ±5% of the expected count: over 4 standard deviations.
            assert!(
                hit.abs_diff(expected) < expected / 20,
                "{hit} vs {expected}"
            );
        }
    }

    #[test]
    fn random_stays_uniform_over_the_available() {
        let servers = backends(8);
        let lb = Random::new();
        lb.reset(&servers);
        for backend in &servers[..5] {
            isolate(backend);
        }
        let total = 60_000;
        let hits = counts(&lb, &servers, total);
        assert_eq!(hits[..5], [0; 5]);
        let expected = total / 3;
        for hit in &hits[5..] {
            assert!(hit.abs_diff(expected) < expected / 20, "{hits:?}");
        }
    }

    #[test]
    fn random_handles_availability() {
        check_availability(&Random::new(), &backends(5));
    }

    #[test]
    fn random_ignores_repeated_servers() {
        let servers = backends(2);
        let lb = Random::new();
        let doubled = [servers[0].clone(), servers[0].clone(), servers[1].clone()];
        lb.reset(&doubled);
        let hits = counts(&lb, &servers, 20_000);
        assert!(hits[0].abs_diff(10_000) < 500, "{hits:?}");
    }

    #[test]
    fn random_survives_concurrent_resets() {
        let a = backends(6);
        let b = backends(9)[4..].to_vec();
        check_concurrent_reset(&Random::new(), &a, &b);
    }
}
