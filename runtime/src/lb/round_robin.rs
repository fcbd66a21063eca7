//! `rr`: each call goes to the next server in turn.
//!
//! The server list is an immutable snapshot behind an [`ArcSwap`]; [`reset`](LoadBalancer::reset)
//! builds a new one and swaps it in. One atomic counter, shared by all callers, says whose turn
//! it is: a select takes the server at `counter % n` and bumps the counter, so consecutive
//! selects (from any threads) walk the list in order. Unavailable servers and servers the call
//! already tried are passed over, and the counter skips them too so the server after a down one
//! does not get a double turn. When every available server was already tried by the call, the
//! first of them in turn is taken (brpc does the same for retries).
//!
//! The counter starts at a random position so that many clients starting together do not all
//! send their first call to the same server.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::random::{dedup, fast_rand};
use super::{no_server_available, Backend, LoadBalancer, SelectIn};
use crate::Status;

/// The `rr` balancer: available servers in turn.
pub(crate) struct RoundRobin {
    servers: ArcSwap<Vec<Backend>>,
    /// Whose turn it is, modulo the number of servers.
    next: AtomicU64,
}

impl RoundRobin {
    /// A balancer with no servers until the first [`reset`](LoadBalancer::reset).
    pub(crate) fn new() -> Self {
        RoundRobin {
            servers: ArcSwap::from_pointee(Vec::new()),
            next: AtomicU64::new(fast_rand()),
        }
    }
}

impl fmt::Debug for RoundRobin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoundRobin")
            .field("servers", &self.servers.load().len())
            .finish()
    }
}

impl LoadBalancer for RoundRobin {
    fn reset(&self, servers: &[Backend]) {
        self.servers.store(Arc::new(dedup(servers)));
    }

    fn select(&self, input: &SelectIn<'_>) -> Result<Backend, Status> {
        let servers = self.servers.load();
        let n = servers.len();
        if n == 0 {
            return Err(no_server_available());
        }
        let start = (self.next.fetch_add(1, Ordering::Relaxed) % n as u64) as usize;
        let mut fallback = None;
        for step in 0..n {
            let index = (start + step) % n;
            let backend = &servers[index];
            if !backend.is_available() {
                continue;
            }
            if input.is_excluded(backend) {
                fallback.get_or_insert(index);
                continue;
            }
            if step > 0 {
                // The servers passed over lose their turn rather than hand it to this one.
                self.next.fetch_add(step as u64, Ordering::Relaxed);
            }
            return Ok(backend.clone());
        }
        fallback
            .map(|index| servers[index].clone())
            .ok_or_else(no_server_available)
    }
}

#[cfg(test)]
mod tests {
    use super::super::random::testing::*;
    use super::*;

    #[test]
    fn rr_cycles_in_exact_order() {
        let servers = backends(7);
        let lb = RoundRobin::new();
        lb.reset(&servers);
        let picks = picks(&lb, &servers, 7 * 5);
        for (i, pick) in picks.iter().enumerate() {
            assert_eq!(*pick, (picks[0] + i) % 7, "{picks:?}");
        }
    }

    #[test]
    fn rr_skips_a_down_server_without_doubling_the_next() {
        let servers = backends(5);
        let lb = RoundRobin::new();
        lb.reset(&servers);
        isolate(&servers[2]);
        let picks = picks(&lb, &servers, 4 * 10);
        let alive = [0, 1, 3, 4];
        let first = alive.iter().position(|i| *i == picks[0]).unwrap();
        for (i, pick) in picks.iter().enumerate() {
            assert_eq!(*pick, alive[(first + i) % 4], "{picks:?}");
        }
        revive(&servers[2]);
        let hits = counts(&lb, &servers, 50);
        assert_eq!(hits, [10; 5]);
    }

    #[test]
    fn rr_handles_availability() {
        check_availability(&RoundRobin::new(), &backends(4));
    }

    #[test]
    fn rr_counter_wraps_without_panicking() {
        let servers = backends(3);
        let lb = RoundRobin::new();
        lb.next.store(u64::MAX - 2, Ordering::Relaxed);
        lb.reset(&servers);
        for _ in 0..10 {
            lb.select(&any()).unwrap();
        }
    }

    #[test]
    fn rr_survives_concurrent_resets() {
        let a = backends(5);
        let b = backends(12)[3..].to_vec();
        check_concurrent_reset(&RoundRobin::new(), &a, &b);
    }
}
