//! `wrr`: servers take calls in turn, each as many turns per cycle as its weight.
//!
//! Weights come from the servers' tags ([`Backend::weight`]); a server whose tag is not a
//! positive integer is left out, with a warning, when the list is set. Weights are divided by
//! their greatest common divisor, so a cycle is `W` = Σweights turns long.
//!
//! [`reset`](LoadBalancer::reset) lays the cycle out once, in an immutable snapshot behind an
//! [`ArcSwap`]; a select bumps one shared atomic counter and reads turn `counter % W`, so it
//! never waits and consecutive selects (from any threads) follow the cycle exactly:
//!
//! * When the cycle is short (`W` ≤ 16384 turns, and laying it out takes at most ~4M steps) it
//!   is nginx's *smooth* weighted round robin, written out as a table: at each turn every
//!   server's current weight grows by its weight, the largest takes the turn and drops by `W`.
//!   Weights 5, 1, 1 give `a a b a c a a`: each server's turns are spread through the cycle
//!   instead of coming in a burst.
//! * Longer cycles use a stride walk instead, as brpc's `wrr` does, which needs no table: with
//!   the weights laid end to end on a line of length `W`, turn `t` goes to the server owning
//!   point `t × s mod W`. The stride `s` is coprime with `W`, so every point is visited once per
//!   cycle and the proportions stay exact. brpc takes `s` near the average weight; here it is
//!   near `W / φ` (the golden ratio), which makes the points of any run of consecutive turns
//!   spread evenly over the line (a low-discrepancy sequence), so every stretch of turns, not
//!   only whole cycles of billions of turns, is close to proportional.
//!
//! A turn that falls on a server that is down, or that the call already tried, is given to a
//! server drawn in proportion to weight among those that qualify (as `wr` draws), so the others
//! keep their relative shares; when every available server was already tried by the call, one
//! of those is drawn instead, as brpc does for retries.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::random::fast_rand;
use super::weighted_random::{gcd, Weighted};
use super::{no_server_available, Backend, LoadBalancer, SelectIn};
use crate::Status;

/// The longest cycle written out as a table (64 KiB of `u32`).
const TABLE_MAX_TURNS: u64 = 1 << 14;
/// The most steps (turns × servers) spent writing a table at reset.
const TABLE_MAX_STEPS: u64 = 1 << 22;
/// How far past `total / φ` to look for a stride coprime with the total.
const STRIDE_SEARCH: u64 = 1 << 16;

/// Who takes each turn of the cycle.
enum Schedule {
    /// Server index of each turn, smooth weighted round robin.
    Table(Vec<u32>),
    /// Turn `t` goes to the server owning point `t × stride mod total`.
    Stride(u64),
}

/// One server list, and its cycle.
struct Snapshot {
    weighted: Weighted,
    schedule: Schedule,
}

impl Snapshot {
    fn new(servers: &[Backend]) -> Self {
        let weighted = Weighted::new(servers, "wrr");
        let total = weighted.total();
        let n = weighted.servers().len() as u64;
        let schedule = if total <= TABLE_MAX_TURNS && total.saturating_mul(n) <= TABLE_MAX_STEPS {
            Schedule::Table(smooth_table(&weighted))
        } else {
            Schedule::Stride(stride_for(total))
        };
        Snapshot { weighted, schedule }
    }

    /// The index of the server taking turn `turn`. `total()` must not be 0.
    fn server_of(&self, turn: u64) -> usize {
        match &self.schedule {
            Schedule::Table(table) => table[(turn % table.len() as u64) as usize] as usize,
            Schedule::Stride(stride) => {
                let total = self.weighted.total();
                let point = u128::from(turn % total) * u128::from(*stride) % u128::from(total);
                self.weighted.index_at(point as u64)
            }
        }
    }
}

/// nginx's smooth weighted round robin over one cycle (`total()` turns).
fn smooth_table(weighted: &Weighted) -> Vec<u32> {
    let n = weighted.servers().len();
    let total = weighted.total();
    let weights: Vec<i64> = (0..n).map(|i| weighted.weight(i) as i64).collect();
    let mut current = vec![0i64; n];
    let mut table = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..n {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total as i64;
        table.push(best as u32);
    }
    table
}

/// A stride near `total / φ` that is coprime with `total`, so that `t × stride mod total`
/// visits every point once per cycle (1 when none is found nearby).
fn stride_for(total: u64) -> u64 {
    // 2^64 / φ: multiplying by it and keeping the high half divides by the golden ratio.
    const INVERSE_GOLDEN: u128 = 0x9e37_79b9_7f4a_7c15;
    let start = ((u128::from(total) * INVERSE_GOLDEN) >> 64).max(1) as u64;
    (start..start.saturating_add(STRIDE_SEARCH))
        .find(|stride| gcd(*stride, total) == 1)
        .unwrap_or(1)
}

/// The `wrr` balancer: available servers in turn, in proportion to the weights in the tags.
pub(crate) struct WeightedRoundRobin {
    snapshot: ArcSwap<Snapshot>,
    /// The next turn, modulo the cycle's length.
    next: AtomicU64,
}

impl WeightedRoundRobin {
    /// A balancer with no servers until the first [`reset`](LoadBalancer::reset).
    pub(crate) fn new() -> Self {
        WeightedRoundRobin {
            snapshot: ArcSwap::from_pointee(Snapshot::new(&[])),
            next: AtomicU64::new(fast_rand()),
        }
    }
}

impl fmt::Debug for WeightedRoundRobin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.snapshot.load();
        let schedule = match snapshot.schedule {
            Schedule::Table(_) => "smooth",
            Schedule::Stride(_) => "stride",
        };
        f.debug_struct("WeightedRoundRobin")
            .field("servers", &snapshot.weighted)
            .field("schedule", &schedule)
            .finish()
    }
}

impl LoadBalancer for WeightedRoundRobin {
    fn reset(&self, servers: &[Backend]) {
        self.snapshot.store(Arc::new(Snapshot::new(servers)));
    }

    fn select(&self, input: &SelectIn<'_>) -> Result<Backend, Status> {
        let snapshot = self.snapshot.load();
        if snapshot.weighted.total() == 0 {
            return Err(no_server_available());
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let backend = &snapshot.weighted.servers()[snapshot.server_of(turn)];
        if backend.is_available() && !input.is_excluded(backend) {
            return Ok(backend.clone());
        }
        snapshot
            .weighted
            .pick_random(input)
            .ok_or_else(no_server_available)
    }
}

#[cfg(test)]
mod tests {
    use super::super::random::testing::*;
    use super::*;

    #[test]
    fn wrr_is_exactly_proportional_over_whole_cycles() {
        for tags in [
            &["5", "3", "2"][..],
            &["1", "1", "1", "1"],
            &["10", "20", "30"],
            &["7", "1", "13", "2", "9"],
        ] {
            let servers = tagged(tags);
            let weights: Vec<usize> = tags.iter().map(|t| t.parse().unwrap()).collect();
            let divisor = weights.iter().fold(0, |a, b| gcd(a, *b as u64)) as usize;
            let cycle: usize = weights.iter().sum::<usize>() / divisor;
            let lb = WeightedRoundRobin::new();
            lb.reset(&servers);
            // Start mid-cycle: any `cycle` consecutive turns are a whole cycle.
            picks(&lb, &servers, 3);
            let hits = counts(&lb, &servers, cycle * 7);
            let expected: Vec<usize> = weights.iter().map(|w| w / divisor * 7).collect();
            assert_eq!(hits, expected, "{tags:?}");
        }
    }

    #[test]
    fn wrr_spreads_turns_through_the_cycle() {
        for tags in [
            &["5", "1", "1"][..],
            &["5", "3", "2"],
            &["100", "1", "50", "7"],
            &["1", "2", "3", "4", "5", "6"],
        ] {
            let servers = tagged(tags);
            let weights: Vec<f64> = tags.iter().map(|t| t.parse().unwrap()).collect();
            let total: f64 = weights.iter().sum();
            let lb = WeightedRoundRobin::new();
            lb.reset(&servers);
            let cycle = total as usize;
            let seq = picks(&lb, &servers, cycle * 2);
            // Any window of the cycle holds each server's share of it, give or take under 2.
            for start in 0..cycle {
                for len in 1..=cycle {
                    let window = &seq[start..start + len];
                    for (i, weight) in weights.iter().enumerate() {
                        let got = window.iter().filter(|s| **s == i).count() as f64;
                        let want = len as f64 * weight / total;
                        assert!((got - want).abs() < 2.0, "{tags:?} window {window:?}");
                    }
                }
            }
        }
        // The textbook case: a a b a c a a, up to rotation.
        let servers = tagged(&["5", "1", "1"]);
        let lb = WeightedRoundRobin::new();
        lb.reset(&servers);
        lb.next.store(0, Ordering::Relaxed);
        assert_eq!(picks(&lb, &servers, 7), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn wrr_equal_weights_are_plain_round_robin() {
        let servers = tagged(&["3", "3", "3", "3"]);
        let lb = WeightedRoundRobin::new();
        lb.reset(&servers);
        let seq = picks(&lb, &servers, 12);
        for (i, s) in seq.iter().enumerate() {
            assert_eq!(*s, (seq[0] + i) % 4, "{seq:?}");
        }
    }

    #[test]
    fn wrr_long_cycles_use_the_stride_walk() {
        let tags = ["100000", "99999", "3"];
        let servers = tagged(&tags);
        let lb = WeightedRoundRobin::new();
        lb.reset(&servers);
        assert!(matches!(lb.snapshot.load().schedule, Schedule::Stride(_)));
        let hits = counts(&lb, &servers, 200_002);
        assert_eq!(hits, [100_000, 99_999, 3]);
        // Any stretch of turns is close to proportional, and the heavy servers alternate
        // rather than come in bursts.
        let seq = picks(&lb, &servers, 10_000);
        for window in seq.windows(100) {
            let first = window.iter().filter(|s| **s == 0).count();
            assert!(first.abs_diff(50) <= 4, "{window:?}");
        }
        let longest_run = seq
            .chunk_by(|a, b| a == b)
            .map(<[usize]>::len)
            .max()
            .unwrap();
        assert!(longest_run <= 3, "{seq:?}");
    }

    #[test]
    fn wrr_takes_huge_weights() {
        let max = u32::MAX.to_string();
        let big = (u32::MAX - 1).to_string();
        let servers = tagged(&[&max, &big, "1"]);
        let lb = WeightedRoundRobin::new();
        lb.reset(&servers);
        let hits = counts(&lb, &servers, 10_000);
        assert!(hits[0].abs_diff(5_000) <= 10, "{hits:?}");
        assert!(hits[2] <= 1, "{hits:?}");
    }

    #[test]
    fn wrr_skips_servers_without_weights() {
        let servers = tagged(&["2", "", "x", "0", "1"]);
        let lb = WeightedRoundRobin::new();
        lb.reset(&servers);
        let hits = counts(&lb, &servers, 300);
        assert_eq!(hits, [200, 0, 0, 0, 100]);
        lb.reset(&servers[1..4]);
        assert_eq!(
            lb.select(&any()).unwrap_err().code(),
            crate::errno::EHOSTDOWN
        );
    }

    #[test]
    fn wrr_gives_a_down_servers_turns_in_proportion() {
        let servers = tagged(&["6", "1", "3"]);
        let lb = WeightedRoundRobin::new();
        lb.reset(&servers);
        isolate(&servers[0]);
        let hits = counts(&lb, &servers, 40_000);
        assert_eq!(hits[0], 0);
        assert!(hits[2].abs_diff(30_000) < 1_000, "{hits:?}");
    }

    #[test]
    fn wrr_handles_availability() {
        check_availability(&WeightedRoundRobin::new(), &tagged(&["2", "1", "3", "1"]));
    }

    #[test]
    fn wrr_survives_concurrent_resets() {
        let a = tagged(&["1", "2", "3"]);
        let b = tagged(&["70000", "5", "6", "7", "80000"])[1..].to_vec();
        check_concurrent_reset(&WeightedRoundRobin::new(), &a, &b);
    }
}
