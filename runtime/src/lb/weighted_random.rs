//! `wr`: each call goes to a server drawn at random in proportion to its weight.
//!
//! Weights come from the servers' tags ([`Backend::weight`]); a server whose tag is not a
//! positive integer is left out (with a warning) when the list is set. The snapshot behind an
//! [`ArcSwap`] holds the servers with the running sums of their weights; a select draws a point
//! in `0..total` and finds the server owning it by binary search, O(log n). A server that is
//! down or already tried by the call is redrawn a few times (which keeps the pick proportional
//! among the rest); after that the qualifying weights are summed and drawn from directly. When
//! every available server was already tried by the call, one of those is drawn instead, as
//! brpc does for retries. Sums are `u64`, so weights up to `u32::MAX` cannot overflow.
//!
//! [`Weighted`] is shared with `wrr`, which falls back on its weighted draw.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::random::{dedup, fast_rand_below};
use super::{no_server_available, Backend, LoadBalancer, SelectIn};
use crate::Status;

/// Draws tried before summing the weights that qualify.
const QUICK_DRAWS: usize = 4;

/// Servers with valid weights, and the running sums of those weights.
pub(super) struct Weighted {
    servers: Vec<Backend>,
    /// `cumulative[i]` is the sum of the weights of servers `0..=i`.
    cumulative: Vec<u64>,
}

impl Weighted {
    /// The servers of `servers` that have a weight (without repeats), each weight divided by
    /// the weights' greatest common divisor (which changes no proportion). `balancer` names the
    /// balancer in the warning about servers left out.
    pub(super) fn new(servers: &[Backend], balancer: &str) -> Self {
        let mut kept = Vec::with_capacity(servers.len());
        let mut weights = Vec::with_capacity(servers.len());
        for backend in dedup(servers) {
            match backend.weight() {
                Some(weight) => {
                    weights.push(u64::from(weight));
                    kept.push(backend);
                }
                None => tracing::warn!(
                    server = %backend.node(),
                    "load balancer `{balancer}` skips a server whose tag is not a positive \
                     integer weight"
                ),
            }
        }
        let divisor = weights.iter().copied().fold(0, gcd).max(1);
        let mut sum = 0u64;
        let cumulative = weights
            .iter()
            .map(|weight| {
                sum = sum.saturating_add(weight / divisor);
                sum
            })
            .collect();
        Weighted {
            servers: kept,
            cumulative,
        }
    }

    /// The servers kept.
    pub(super) fn servers(&self) -> &[Backend] {
        &self.servers
    }

    /// The sum of all weights (0 when there are no servers).
    pub(super) fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Server `index`'s (reduced) weight.
    pub(super) fn weight(&self, index: usize) -> u64 {
        let below = if index == 0 {
            0
        } else {
            self.cumulative[index - 1]
        };
        self.cumulative[index] - below
    }

    /// The index of the server owning `point` on the line of weights laid end to end
    /// (`point < total()`; larger points give the last server).
    pub(super) fn index_at(&self, point: u64) -> usize {
        self.cumulative
            .partition_point(|&sum| sum <= point)
            .min(self.servers.len().saturating_sub(1))
    }

    /// A server drawn in proportion to weight among the available servers the call has not
    /// tried; failing that, among the available ones it has tried. O(log n) when most servers
    /// qualify, O(n) otherwise; allocates nothing.
    pub(super) fn pick_random(&self, input: &SelectIn<'_>) -> Option<Backend> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        for _ in 0..QUICK_DRAWS {
            let backend = &self.servers[self.index_at(fast_rand_below(total))];
            if backend.is_available() && !input.is_excluded(backend) {
                return Some(backend.clone());
            }
        }
        self.pick_exact(input)
    }

    /// Like [`pick_random`](Self::pick_random) without the quick draws: sums the weights that
    /// qualify and draws among them. O(n).
    pub(super) fn pick_exact(&self, input: &SelectIn<'_>) -> Option<Backend> {
        self.pick_where(|b| b.is_available() && !input.is_excluded(b))
            .or_else(|| self.pick_where(Backend::is_available))
    }

    /// Draws among the servers `accept` takes, in proportion to weight.
    fn pick_where(&self, accept: impl Fn(&Backend) -> bool) -> Option<Backend> {
        let qualifying = || {
            self.servers
                .iter()
                .enumerate()
                .filter(|(_, backend)| accept(backend))
        };
        let sum = qualifying().fold(0u64, |sum, (i, _)| sum.saturating_add(self.weight(i)));
        if sum == 0 {
            return None;
        }
        let mut point = fast_rand_below(sum);
        let mut last = None;
        for (i, backend) in qualifying() {
            let weight = self.weight(i);
            if point < weight {
                return Some(backend.clone());
            }
            point -= weight;
            last = Some(backend);
        }
        // A server went down between the two passes: take the last one that still qualified.
        last.cloned()
    }
}

impl fmt::Debug for Weighted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weighted")
            .field("servers", &self.servers.len())
            .field("total_weight", &self.total())
            .finish()
    }
}

/// Greatest common divisor (`gcd(0, x) == x`).
pub(super) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The `wr` balancer: a random available server, in proportion to the weights in the tags.
pub(crate) struct WeightedRandom {
    servers: ArcSwap<Weighted>,
}

impl WeightedRandom {
    /// A balancer with no servers until the first [`reset`](LoadBalancer::reset).
    pub(crate) fn new() -> Self {
        WeightedRandom {
            servers: ArcSwap::from_pointee(Weighted::new(&[], "wr")),
        }
    }
}

impl fmt::Debug for WeightedRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightedRandom")
            .field("servers", &*self.servers.load())
            .finish()
    }
}

impl LoadBalancer for WeightedRandom {
    fn reset(&self, servers: &[Backend]) {
        self.servers.store(Arc::new(Weighted::new(servers, "wr")));
    }

    fn select(&self, input: &SelectIn<'_>) -> Result<Backend, Status> {
        self.servers
            .load()
            .pick_random(input)
            .ok_or_else(no_server_available)
    }
}

#[cfg(test)]
mod tests {
    use super::super::random::testing::*;
    use super::*;

    #[test]
    fn wr_is_proportional_to_weights() {
        let servers = tagged(&["1", "2", "3", "4"]);
        let lb = WeightedRandom::new();
        lb.reset(&servers);
        let total = 100_000;
        let hits = counts(&lb, &servers, total);
        for (i, hit) in hits.iter().enumerate() {
            let expected = total * (i + 1) / 10;
            assert!(hit.abs_diff(expected) < expected / 20, "{hits:?}");
        }
    }

    #[test]
    fn wr_skips_servers_without_weights() {
        let servers = tagged(&["3", "", "zero", "0", "-1", "1"]);
        let lb = WeightedRandom::new();
        lb.reset(&servers);
        let hits = counts(&lb, &servers, 40_000);
        assert_eq!(hits[1..5], [0; 4]);
        assert!(hits[0].abs_diff(30_000) < 1_500, "{hits:?}");
        // No weighted server at all: nothing to pick.
        lb.reset(&servers[1..5]);
        assert_eq!(
            lb.select(&any()).unwrap_err().code(),
            crate::errno::EHOSTDOWN
        );
    }

    #[test]
    fn wr_stays_proportional_over_the_available() {
        let servers = tagged(&["100", "1", "2"]);
        let lb = WeightedRandom::new();
        lb.reset(&servers);
        isolate(&servers[0]);
        let hits = counts(&lb, &servers, 30_000);
        assert_eq!(hits[0], 0);
        assert!(hits[2].abs_diff(20_000) < 1_000, "{hits:?}");
    }

    #[test]
    fn wr_takes_huge_weights() {
        let max = u32::MAX.to_string();
        let servers = tagged(&[&max, &max, &max, "1"]);
        let lb = WeightedRandom::new();
        lb.reset(&servers);
        let hits = counts(&lb, &servers, 30_000);
        for hit in &hits[..3] {
            assert!(hit.abs_diff(10_000) < 600, "{hits:?}");
        }
    }

    #[test]
    fn wr_handles_availability() {
        check_availability(&WeightedRandom::new(), &tagged(&["1", "5", "2", "3"]));
    }

    #[test]
    fn wr_survives_concurrent_resets() {
        let a = tagged(&["1", "2", "3"]);
        let b = tagged(&["4", "5", "6", "7", "8"])[1..].to_vec();
        check_concurrent_reset(&WeightedRandom::new(), &a, &b);
    }

    #[test]
    fn gcd_works() {
        assert_eq!(gcd(0, 0), 0);
        assert_eq!(gcd(0, 6), 6);
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(7, 5), 1);
    }
}
