//! `p2c`: power of two choices over peak-EWMA latency, as in Finagle, linkerd and brpc.
//!
//! Each server keeps, in atomics, an exponentially weighted moving average of its latency and
//! its number of calls in flight (counted up at select, down at feedback). A select draws
//! `choices` (default 2, `choices=2..64`) distinct random servers that are available and not
//! yet tried by the call, and takes the one with the lowest score
//!
//! ```text
//! score = ewma_latency × (in_flight + 1) / weight
//! ```
//!
//! (weight from the tag, 1 when the tag holds none). Sampling a few servers rather than taking
//! the global best keeps many clients from stampeding onto the same fast server.
//!
//! The average is a *peak* EWMA: a sample above the current value replaces it at once, so a
//! server that turns slow loses traffic right away; lower samples pull the average down with
//! weight `1 - e^(-Δt/τ)` for the time `Δt` since the last sample (τ defaults to 10 s,
//! `tau_ms=`). The average also decays by `e^(-Δt/τ)` when read, so a server that was
//! penalised and then left alone gets probed again. Servers without samples yet score a 1 µs
//! latency and compete on in-flight calls alone.
//!
//! Failed calls are punished: their sample is `max(latency, 2 × average, 10 ms)`, capped at
//! 30 s, so a server that fails fast does not look fast, and one that keeps failing doubles
//! its average each time (brpc punishes with at least the call's timeout instead, which the
//! feedback here does not carry; the 10 ms floor stands in for it, and the doubling catches
//! up on slow services). An attempt dropped unfinished (cancelled, or a backup request won)
//! only raises the average when its elapsed time already exceeds it, since its latency was at
//! least that; it never lowers it.
//!
//! The per-server state lives as long as the server stays in the list: [`reset`] carries it
//! over for servers that remain (by node: address and tag) and drops it for servers that leave.
//!
//! [`reset`]: LoadBalancer::reset

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::random::{dedup, fast_rand_index};
use super::{no_server_available, Backend, CallFeedback, LbParams, LoadBalancer, SelectIn};
use crate::clock::{Clock, SystemClock};
use crate::naming::ServerNode;
use crate::{errno, Status};

/// Servers sampled per select unless `choices=` says otherwise.
const DEFAULT_CHOICES: usize = 2;
/// The most servers one select may sample (`choices=`).
const MAX_CHOICES: usize = 64;
/// Decay time of the average unless `tau_ms=` says otherwise.
const DEFAULT_TAU: Duration = Duration::from_secs(10);
/// The latency term of a server with no samples, or whose average decayed below it.
const MIN_LATENCY_NS: f64 = 1_000.0;
/// The smallest sample a failed call counts as.
const PENALTY_FLOOR_NS: u64 = 10_000_000;
/// The largest sample a failed call counts as, so a recovered server is not shunned for long.
const PENALTY_CAP_NS: u64 = 30_000_000_000;

/// One server's load, shared by every snapshot the server is in.
#[derive(Debug, Default)]
struct Load {
    /// Peak-EWMA latency in nanoseconds; 0 until the first sample.
    ewma_ns: AtomicU64,
    /// When `ewma_ns` was last updated, in nanoseconds since the balancer's epoch.
    stamp_ns: AtomicU64,
    /// Calls selected and not yet fed back.
    in_flight: AtomicU64,
}

/// A server as `p2c` keeps it.
struct Node {
    backend: Backend,
    weight: f64,
    load: Arc<Load>,
}

/// One server list.
#[derive(Default)]
struct Snapshot {
    nodes: Vec<Node>,
    /// Index in `nodes` by server, for feedback.
    index: HashMap<ServerNode, usize>,
}

/// The `p2c` balancer. See the [module docs](self).
pub(crate) struct PeakEwmaP2c<C = SystemClock> {
    snapshot: ArcSwap<Snapshot>,
    choices: usize,
    tau_ns: f64,
    /// Time zero of the `stamp_ns` values.
    epoch: Instant,
    clock: C,
}

impl PeakEwmaP2c {
    /// A balancer with `choices=` and `tau_ms=` taken from `params`; [`errno::EINVAL`] when
    /// `choices` is outside `2..=64` or `tau_ms` is 0.
    pub(crate) fn new(params: &mut LbParams) -> Result<Self, Status> {
        Self::with_clock(params, SystemClock)
    }
}

impl<C: Clock> PeakEwmaP2c<C> {
    /// [`new`](PeakEwmaP2c::new), reading the time from `clock`.
    pub(crate) fn with_clock(params: &mut LbParams, clock: C) -> Result<Self, Status> {
        let choices = match params.take_u64("choices")? {
            None => DEFAULT_CHOICES,
            Some(choices) if (2..=MAX_CHOICES as u64).contains(&choices) => choices as usize,
            Some(choices) => {
                return Err(Status::new(
                    errno::EINVAL,
                    format!("p2c: choices={choices} is not within 2..={MAX_CHOICES}"),
                ))
            }
        };
        let tau = match params.take_u64("tau_ms")? {
            None => DEFAULT_TAU,
            Some(0) => return Err(Status::new(errno::EINVAL, "p2c: tau_ms must be positive")),
            Some(ms) => Duration::from_millis(ms),
        };
        Ok(PeakEwmaP2c {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            choices,
            tau_ns: tau.as_nanos() as f64,
            epoch: clock.now(),
            clock,
        })
    }

    /// Nanoseconds from the epoch to `at` (0 before it).
    fn nanos_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// How much of a value `elapsed_ns` old remains: `e^(-elapsed/τ)`.
    fn decay(&self, elapsed_ns: u64) -> f64 {
        (-(elapsed_ns as f64) / self.tau_ns).exp()
    }

    /// The node's score at `now_ns`: lower is better.
    fn score(&self, node: &Node, now_ns: u64) -> f64 {
        let ewma = node.load.ewma_ns.load(Ordering::Relaxed);
        let latency = if ewma == 0 {
            MIN_LATENCY_NS
        } else {
            let stamp = node.load.stamp_ns.load(Ordering::Relaxed);
            let decayed = ewma as f64 * self.decay(now_ns.saturating_sub(stamp));
            decayed.max(MIN_LATENCY_NS)
        };
        let in_flight = node.load.in_flight.load(Ordering::Relaxed) as f64;
        latency * (in_flight + 1.0) / node.weight
    }

    /// The best-scoring node `accept` takes among `count` distinct random draws, or among all
    /// nodes when there are no more than `count`.
    fn sample<'a>(
        &self,
        nodes: &'a [Node],
        now_ns: u64,
        accept: impl Fn(&Backend) -> bool,
    ) -> Option<&'a Node> {
        let n = nodes.len();
        let mut best: Option<(&Node, f64)> = None;
        let mut consider = |node: &'a Node| {
            if accept(&node.backend) {
                let score = self.score(node, now_ns);
                if best.is_none_or(|(_, best)| score < best) {
                    best = Some((node, score));
                }
                true
            } else {
                false
            }
        };
        if n <= self.choices {
            // Start anywhere so that ties do not always go to the first server.
            let start = fast_rand_index(n);
            for step in 0..n {
                consider(&nodes[(start + step) % n]);
            }
        } else {
            let mut drawn = [usize::MAX; MAX_CHOICES];
            let mut found = 0;
            let max_draws = 4 * self.choices + 8;
            for _ in 0..max_draws {
                if found == self.choices {
                    break;
                }
                let index = fast_rand_index(n);
                if drawn[..found].contains(&index) {
                    continue;
                }
                if consider(&nodes[index]) {
                    drawn[found] = index;
                    found += 1;
                }
            }
            if found == 0 {
                // Most servers are down or tried: look at all of them.
                nodes.iter().for_each(|node| {
                    consider(node);
                });
            }
        }
        best.map(|(node, _)| node)
    }
}

impl<C: Clock> fmt::Debug for PeakEwmaP2c<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.snapshot.load();
        let now_ns = self.nanos_at(self.clock.now());
        let nodes: Vec<_> = snapshot
            .nodes
            .iter()
            .map(|node| {
                format!(
                    "{} ewma_ns={} in_flight={} score={:.0}",
                    node.backend.node(),
                    node.load.ewma_ns.load(Ordering::Relaxed),
                    node.load.in_flight.load(Ordering::Relaxed),
                    self.score(node, now_ns)
                )
            })
            .collect();
        f.debug_struct("PeakEwmaP2c")
            .field("choices", &self.choices)
            .field("tau", &Duration::from_nanos(self.tau_ns as u64))
            .field("servers", &nodes)
            .finish()
    }
}

impl<C: Clock> LoadBalancer for PeakEwmaP2c<C> {
    fn reset(&self, servers: &[Backend]) {
        let old = self.snapshot.load();
        let servers = dedup(servers);
        let mut index = HashMap::with_capacity(servers.len());
        let nodes = servers
            .into_iter()
            .enumerate()
            .map(|(i, backend)| {
                let load = match old.index.get(backend.node()) {
                    Some(&at) => old.nodes[at].load.clone(),
                    None => Arc::default(),
                };
                index.insert(backend.node().clone(), i);
                Node {
                    weight: f64::from(backend.weight().unwrap_or(1)),
                    backend,
                    load,
                }
            })
            .collect();
        self.snapshot.store(Arc::new(Snapshot { nodes, index }));
    }

    fn select(&self, input: &SelectIn<'_>) -> Result<Backend, Status> {
        let snapshot = self.snapshot.load();
        let now_ns = self.nanos_at(self.clock.now());
        let node = self
            .sample(&snapshot.nodes, now_ns, |b| {
                b.is_available() && !input.is_excluded(b)
            })
            .or_else(|| {
                // Every available server was tried by this call: better one of them than none.
                self.sample(&snapshot.nodes, now_ns, Backend::is_available)
            })
            .ok_or_else(no_server_available)?;
        node.load.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(node.backend.clone())
    }

    fn feedback(&self, feedback: &CallFeedback<'_>) {
        let snapshot = self.snapshot.load();
        let Some(&at) = snapshot.index.get(feedback.backend.node()) else {
            // The server left the list after the select; its state went with it.
            return;
        };
        let load = &snapshot.nodes[at].load;
        // Saturating: a server that left and came back between select and feedback starts
        // from zero.
        let _ = load
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));

        let end = feedback
            .begin
            .checked_add(feedback.latency)
            .unwrap_or_else(|| self.clock.now());
        let now_ns = self.nanos_at(end);
        let latency_ns = u64::try_from(feedback.latency.as_nanos()).unwrap_or(u64::MAX);
        let remain = self.decay(now_ns.saturating_sub(load.stamp_ns.load(Ordering::Relaxed)));
        // The average as a select would see it now.
        let current = (load.ewma_ns.load(Ordering::Relaxed) as f64 * remain) as u64;
        let sample = match feedback.error_code {
            0 => latency_ns,
            errno::ECANCELED if latency_ns <= current => return,
            errno::ECANCELED => latency_ns,
            _ => latency_ns
                .max(current.saturating_mul(2))
                .clamp(PENALTY_FLOOR_NS, PENALTY_CAP_NS),
        };
        load.stamp_ns.store(now_ns, Ordering::Relaxed);
        let _ = load
            .ewma_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |ewma| {
                Some(if ewma == 0 || sample >= ewma {
                    sample
                } else {
                    (ewma as f64 * remain + sample as f64 * (1.0 - remain)) as u64
                })
            });
    }
}

#[cfg(test)]
mod tests {
    use super::super::random::testing::*;
    use super::super::LbParams;
    use super::*;
    use crate::clock::ManualClock;

    type TestP2c = PeakEwmaP2c<ManualClock>;

    /// A balancer on a clock the test moves (it stands still unless a test advances it).
    fn p2c(spec: &str) -> TestP2c {
        let mut params = LbParams::parse(spec, spec).unwrap();
        let lb = PeakEwmaP2c::with_clock(&mut params, ManualClock::new()).unwrap();
        params.finish().unwrap();
        lb
    }

    /// Reports an attempt that took `latency` and ends now: the clock moves on by it.
    fn report(lb: &TestP2c, backend: &Backend, latency: Duration, error_code: i32) {
        let begin = lb.clock.now();
        if let Some(end) = begin.checked_add(latency) {
            lb.clock.advance(end - begin);
        }
        lb.feedback(&CallFeedback {
            backend,
            begin,
            latency,
            error_code,
        });
    }

    /// Selects `count` times, reporting each call at once with the latency `latency` gives.
    fn run(
        lb: &TestP2c,
        servers: &[Backend],
        count: usize,
        latency: impl Fn(usize) -> Duration,
    ) -> Vec<usize> {
        let mut hits = vec![0; servers.len()];
        for _ in 0..count {
            let picked = lb.select(&any()).unwrap();
            let i = servers.iter().position(|b| *b == picked).unwrap();
            hits[i] += 1;
            report(lb, &picked, latency(i), 0);
        }
        hits
    }

    fn load_of<'a>(snapshot: &'a Snapshot, backend: &Backend) -> &'a Load {
        &snapshot.nodes[snapshot.index[backend.node()]].load
    }

    #[test]
    fn p2c_params() {
        let lb = p2c("");
        assert_eq!(lb.choices, 2);
        assert_eq!(lb.tau_ns, 1e10);
        let lb = p2c("choices=3 tau_ms=500");
        assert_eq!(lb.choices, 3);
        assert_eq!(lb.tau_ns, 5e8);
        for bad in ["choices=1", "choices=65", "tau_ms=0", "choices=x"] {
            let mut params = LbParams::parse(bad, bad).unwrap();
            let err = PeakEwmaP2c::new(&mut params).unwrap_err();
            assert_eq!(err.code(), errno::EINVAL, "{bad}");
        }
    }

    #[test]
    fn p2c_avoids_a_slow_server() {
        let servers = backends(4);
        let lb = p2c("");
        lb.reset(&servers);
        let slow = |i: usize| Duration::from_millis(if i == 0 { 50 } else { 1 });
        // Learn, then measure.
        run(&lb, &servers, 200, slow);
        let hits = run(&lb, &servers, 10_000, slow);
        assert!(hits[0] < 300, "{hits:?}");
        for hit in &hits[1..] {
            assert!(hit.abs_diff(3_300) < 600, "{hits:?}");
        }
    }

    #[test]
    fn p2c_sheds_load_from_a_server_with_many_calls_in_flight() {
        let servers = backends(3);
        let lb = p2c("");
        lb.reset(&servers);
        run(&lb, &servers, 300, |_| Duration::from_millis(2));
        load_of(&lb.snapshot.load(), &servers[1])
            .in_flight
            .store(50, Ordering::Relaxed);
        let hits = run(&lb, &servers, 3_000, |_| Duration::from_millis(2));
        assert_eq!(hits[1], 0, "{hits:?}");

        // Without feedback, in-flight counts alone keep the servers even.
        let lb = p2c("");
        lb.reset(&servers);
        let mut hits = [0usize; 3];
        for _ in 0..3_000 {
            let picked = lb.select(&any()).unwrap();
            hits[servers.iter().position(|b| *b == picked).unwrap()] += 1;
        }
        for hit in hits {
            assert!(hit.abs_diff(1_000) <= 2, "{hits:?}");
        }
        // Feedback brings them back down.
        for (i, backend) in servers.iter().enumerate() {
            for _ in 0..hits[i] + 5 {
                report(&lb, backend, Duration::from_millis(1), 0);
            }
        }
        let snapshot = lb.snapshot.load();
        for backend in &servers {
            assert_eq!(
                load_of(&snapshot, backend)
                    .in_flight
                    .load(Ordering::Relaxed),
                0
            );
        }
    }

    #[test]
    fn p2c_weights_divide_the_score() {
        let servers = tagged(&["1", "4"]);
        let lb = p2c("");
        lb.reset(&servers);
        for backend in &servers {
            report(&lb, backend, Duration::from_millis(10), 0);
        }
        // Without feedback, the heavier server takes about 4 calls for each of the other's.
        let mut hits = [0usize; 2];
        for _ in 0..1_000 {
            let picked = lb.select(&any()).unwrap();
            hits[servers.iter().position(|b| *b == picked).unwrap()] += 1;
        }
        assert!(hits[1].abs_diff(800) < 20, "{hits:?}");
    }

    #[test]
    fn p2c_peak_ewma() {
        let servers = backends(1);
        let lb = p2c("tau_ms=100");
        lb.reset(&servers);
        let load = || {
            load_of(&lb.snapshot.load(), &servers[0])
                .ewma_ns
                .load(Ordering::Relaxed)
        };
        report(&lb, &servers[0], Duration::from_millis(10), 0);
        assert_eq!(load(), 10_000_000);
        // A peak replaces the average at once.
        report(&lb, &servers[0], Duration::from_millis(40), 0);
        assert_eq!(load(), 40_000_000);
        // A lower sample right after barely moves it; one after a few τ nearly replaces it.
        report(&lb, &servers[0], Duration::from_millis(1), 0);
        assert!(load() > 39_000_000, "{}", load());
        lb.clock.advance(Duration::from_millis(500));
        report(&lb, &servers[0], Duration::from_millis(1), 0);
        assert!(load() < 2_000_000, "{}", load());
        // Errors punish: twice the average, at least the floor, at most the cap.
        report(
            &lb,
            &servers[0],
            Duration::from_micros(10),
            errno::EINTERNAL,
        );
        assert_eq!(load(), PENALTY_FLOOR_NS);
        report(&lb, &servers[0], Duration::from_micros(10), errno::ELIMIT);
        // (Twice the average as it stands now, a few µs of decay later.)
        assert!(load().abs_diff(2 * PENALTY_FLOOR_NS) < PENALTY_FLOOR_NS / 100);
        report(
            &lb,
            &servers[0],
            Duration::from_secs(3600),
            errno::ERPCTIMEDOUT,
        );
        assert_eq!(load(), PENALTY_CAP_NS);
        // A dropped attempt never lowers the average.
        report(&lb, &servers[0], Duration::from_millis(1), errno::ECANCELED);
        assert_eq!(load(), PENALTY_CAP_NS);
        // Absurd latencies do no harm.
        report(&lb, &servers[0], Duration::MAX, 0);
        assert_eq!(load(), u64::MAX);
        lb.select(&any()).unwrap();
    }

    #[test]
    fn p2c_avoids_a_failing_server_and_probes_it_later() {
        let servers = backends(2);
        let lb = p2c("tau_ms=100");
        lb.reset(&servers);
        run(&lb, &servers, 100, |_| Duration::from_millis(1));
        report(
            &lb,
            &servers[0],
            Duration::from_millis(1),
            errno::EFAILEDSOCKET,
        );
        let hits = run(&lb, &servers, 100, |_| Duration::from_millis(1));
        assert_eq!(hits[0], 0, "{hits:?}");
        // The penalty decays: after many τ the server is tried again, and being faster now,
        // wins the traffic back.
        lb.clock.advance(Duration::from_millis(1_000));
        let hits = run(&lb, &servers, 100, |i| {
            Duration::from_micros([500, 1000][i])
        });
        assert!(hits[0] > 50, "{hits:?}");
    }

    #[test]
    fn p2c_keeps_state_of_servers_that_stay() {
        let servers = backends(3);
        let lb = p2c("");
        lb.reset(&servers);
        report(&lb, &servers[0], Duration::from_millis(7), 0);
        report(&lb, &servers[2], Duration::from_millis(9), 0);
        let before = Arc::clone(&lb.snapshot.load().nodes[0].load);
        lb.reset(&servers[..2]);
        let snapshot = lb.snapshot.load();
        assert_eq!(
            load_of(&snapshot, &servers[0])
                .ewma_ns
                .load(Ordering::Relaxed),
            7_000_000
        );
        assert!(Arc::ptr_eq(&before, &snapshot.nodes[0].load));
        assert!(!snapshot.index.contains_key(servers[2].node()));
        // A server that left and comes back starts afresh.
        lb.reset(&servers);
        let snapshot = lb.snapshot.load();
        assert_eq!(
            load_of(&snapshot, &servers[2])
                .ewma_ns
                .load(Ordering::Relaxed),
            0
        );
        // Feedback for a server no longer listed is ignored.
        lb.reset(&servers[..1]);
        report(&lb, &servers[1], Duration::from_millis(1), 0);
    }

    #[test]
    fn p2c_samples_distinct_servers() {
        // With two servers and two choices both are always compared: the slow one never wins.
        let servers = backends(2);
        let lb = p2c("");
        lb.reset(&servers);
        report(&lb, &servers[1], Duration::from_millis(100), 0);
        let hits = run(&lb, &servers, 1_000, |_| Duration::from_millis(1));
        assert_eq!(hits[1], 0);
        // With many servers, the slowest of them never wins either.
        let servers = backends(10);
        lb.reset(&servers);
        for backend in &servers[1..] {
            report(&lb, backend, Duration::from_millis(1), 0);
        }
        report(&lb, &servers[0], Duration::from_secs(1), 0);
        let hits = run(&lb, &servers, 5_000, |_| Duration::from_millis(1));
        assert_eq!(hits[0], 0, "{hits:?}");
    }

    #[test]
    fn p2c_handles_availability() {
        check_availability(&p2c(""), &backends(5));
        check_availability(&p2c("choices=8"), &backends(5));
    }

    #[test]
    fn p2c_survives_concurrent_resets() {
        let a = backends(5);
        let b = backends(10)[2..].to_vec();
        check_concurrent_reset(&p2c(""), &a, &b);
        // Calls are counted back down, whatever the resets did in between.
        let lb = p2c("choices=3");
        check_concurrent_reset(&lb, &a, &b);
        lb.reset(&a);
        for load in lb.snapshot.load().nodes.iter().map(|n| &n.load) {
            assert!(load.in_flight.load(Ordering::Relaxed) < 1_000);
        }
    }
}
