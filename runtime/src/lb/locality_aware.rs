//! `la`: locality-aware load balancing, brpc's `LocalityAwareLoadBalancer` (docs/cn/lalb.md).
//!
//! # The weight
//!
//! Each server's share of the calls is proportional to its weight, throughput over squared
//! latency:
//!
//! ```text
//! base_weight = QPS × SCALE / avg_latency²
//! ```
//!
//! A faster server gets more calls until its latency (which grows with load) reaches the
//! others': `la` equalizes latency, not load, and so sends most calls to the nearest or least
//! loaded servers. Squaring the latency (brpc's default `quadratic_latency`) converges about
//! twice as fast as plain QPS/latency.
//!
//! QPS and latency come from a window of each server's last 128 calls (brpc's
//! `RECV_QUEUE_SIZE`), kept as cumulative latency sums with end times: QPS is
//! `(n - 1) / (newest end - oldest end)`, the average latency the difference of the sums over
//! `n - 1`. brpc measures QPS that way only once the window is full or spans a second, and
//! assumes 1 call/s before; but then the first servers whose windows fill jump to their real
//! QPS, thousands of times the others' weight, and the others starve with windows that take
//! seconds to fill (in a busy cluster a newcomer starves the same way). Here a young window's
//! QPS is its calls over the time since its first call began — as unbiased, and never a burst
//! of calls that ended together taken for a huge rate — so young servers compete on equal
//! terms and the switch to the window's QPS is smooth.
//!
//! **Errors.** A failed call adds no sample: its latency, multiplied by `punish_error_ratio`
//! (1.2), is added to the newest sample's latency and that sample's end time moves to the
//! failure's, so errors raise the average latency and lower the QPS. brpc mixes the call's
//! timeout into the latency of failures (always the full timeout when retries are off), which
//! [`CallFeedback`] does not carry; a failure instead counts as at least the server's average
//! latency, so a server that fails fast is not mistaken for a fast one.
//!
//! **Calls in flight.** Waiting for replies to judge a server is too slow when it stops
//! answering, so the calls still in flight count too. Each server keeps the number of its
//! unfinished calls and the sum of their start times (added at select, removed at feedback);
//! `now - sum / count` is the *inflight delay*, the average age of the unfinished calls. When
//! it exceeds `avg_latency + max(3 × bound, MIN_BOUND)` — with `bound = avg_latency / 6`, so
//! the threshold is brpc's `punish_inflight_ratio` of 1.5 × avg_latency, and `MIN_BOUND` 1 ms
//! absorbing the jitter of sub-millisecond servers — the weight becomes
//! `base_weight × avg_latency / inflight_delay`, and keeps falling while the calls stay stuck.
//!
//! Every weight is at least `MIN_WEIGHT` (brpc's `min_weight`), so a slow server is still
//! probed now and then and its recovery noticed. A new server starts with the mean weight of
//! the others (a fixed large weight when all are new, so each is probed at once). The
//! statistics of a server survive [`reset`](LoadBalancer::reset) while it stays in the list and
//! go when it leaves.
//!
//! # Concurrency and cost
//!
//! The server list is an immutable snapshot behind an [`ArcSwap`], replaced by `reset`. The
//! values a select reads (base weight, average latency, in-flight count and start-time sum)
//! are atomics, so a select takes no lock and allocates nothing. brpc keeps a complete binary
//! tree of weights (each node holding its left subtree's sum) to select in O(log n); this
//! balancer scans the servers once, O(n) with four atomic loads each, computing each weight
//! with the inflight punishment as of now and drawing one by weighted reservoir sampling
//! (one random number per server). For clusters of up to a few tens of servers that is as fast
//! as the tree and has no tree to keep consistent; with hundreds of servers the scan's cache
//! misses make the tree worth it.
//!
//! A feedback locks a short per-server `Mutex` around the window (a push into a ring of 128
//! samples and a few divisions, never held across anything else): the window's updates must be
//! consistent together, readers never touch it, and only feedbacks for the same server
//! contend, as they do on brpc's per-server mutex.
//!
//! The start times of calls in flight are recorded in a small lock-free table of 128 slots per
//! server: a select stores its time in a free slot and adds it to the sum; a feedback frees the
//! slot holding the latest time at or before the call's [`begin`](CallFeedback::begin) and
//! subtracts exactly that value. (The caller takes `begin` just after select returns, so it is
//! a little later than the time select recorded; subtracting `begin` itself would leave a
//! residue in the sum at every call, which under steady load, when the count never returns to
//! zero, grows without bound and ends up punishing every server.) A select that finds every
//! slot taken leaves its call untracked: the inflight delay is then estimated from the 128
//! tracked calls. As in brpc, every select must be followed by exactly one feedback: a call
//! selected and never reported stays "in flight" and keeps its server punished.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::random::fast_rand;
use super::{no_server_available, Backend, CallFeedback, LoadBalancer, SelectIn};
use crate::Status;

/// Calls in each server's window (brpc's `RECV_QUEUE_SIZE`).
const WINDOW: usize = 128;

/// Calls in flight per server whose start times are tracked.
const INFLIGHT_SLOTS: usize = 128;

/// Weights are `QPS × WEIGHT_SCALE / latency²` with latency in microseconds, i.e. QPS over the
/// squared latency in seconds: 1000 calls/s at 1 ms weigh 1e9.
const WEIGHT_SCALE: f64 = 1e12;

/// The least weight: 1 call/s at 1 s latency, brpc's `min_weight` of 1000 in its scale.
const MIN_WEIGHT: f64 = 1.0;

/// The weight of servers when none has any statistics yet: 1 call/s at 1 µs (brpc's
/// `WEIGHT_SCALE`), far above any measured weight so every new server is probed at once.
const INITIAL_WEIGHT: f64 = WEIGHT_SCALE;

/// The least QPS a weight is computed with (brpc's `DEFAULT_QPS`).
const MIN_QPS: f64 = 1.0;

/// Failed calls count with their latency times this (brpc's `punish_error_ratio`).
const PUNISH_ERROR_RATIO: f64 = 1.2;

/// The inflight delay is punished beyond `avg_latency + max(3 × bound, MIN_BOUND_US)` where
/// `bound = avg_latency × BOUND_RATIO`: the threshold is 1.5 × avg_latency, brpc's
/// `punish_inflight_ratio`, but at least 1 ms above the average.
const BOUND_RATIO: f64 = 1.0 / 6.0;

/// See [`BOUND_RATIO`].
const MIN_BOUND_US: f64 = 1000.0;

/// A window must span this long (or be full) before its QPS is measured.
const QPS_SPAN_US: u64 = 1_000_000;

/// Loads an `f64` kept as bits.
fn load_f64(cell: &AtomicU64) -> f64 {
    f64::from_bits(cell.load(Ordering::Relaxed))
}

/// Stores an `f64` as bits.
fn store_f64(cell: &AtomicU64, value: f64) {
    cell.store(value.to_bits(), Ordering::Relaxed);
}

/// A uniform random number in `[0, 1)`.
fn unit_random() -> f64 {
    (fast_rand() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The start times of a server's calls in flight: their count and sum, and the slots that let
/// a feedback remove exactly the time its select added.
#[derive(Debug)]
struct Inflight {
    /// Tracked calls in flight. Transiently off by one (even wrapped) while a select and a
    /// feedback race; readers check it twice.
    count: AtomicU64,
    /// The sum of the occupied slots' times (wrapping arithmetic).
    sum: AtomicU64,
    /// Start times of calls in flight (microseconds since the balancer's epoch, never 0);
    /// 0 marks a free slot.
    slots: [AtomicU64; INFLIGHT_SLOTS],
    /// Where the next select starts looking for a free slot.
    cursor: AtomicUsize,
}

impl Inflight {
    fn new() -> Self {
        Inflight {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            cursor: AtomicUsize::new(0),
        }
    }

    /// Records a call selected at `now` (never 0). Lock-free; O(1) unless nearly every slot is
    /// taken.
    fn enter(&self, now: u64) {
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        for i in 0..INFLIGHT_SLOTS {
            let slot = &self.slots[start.wrapping_add(i) % INFLIGHT_SLOTS];
            if slot.load(Ordering::Relaxed) == 0
                && slot
                    .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                // Sum before count: a reader that sees the new count sees the new sum.
                self.sum.fetch_add(now, Ordering::SeqCst);
                self.count.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        // Every slot is taken: the call goes untracked.
    }

    /// Forgets the call that started at `begin`: frees the slot with the latest time at or
    /// before `begin` (the call's own, or one of a call selected at nearly the same moment,
    /// which is as good). Does nothing when there is none (the call was untracked, or selected
    /// before this server's statistics existed).
    fn leave(&self, begin: u64) {
        // A lost race means another feedback freed a slot meanwhile; a few rescans suffice.
        for _ in 0..INFLIGHT_SLOTS {
            let mut best: Option<(usize, u64)> = None;
            for (i, slot) in self.slots.iter().enumerate() {
                let value = slot.load(Ordering::Acquire);
                if value != 0 && value <= begin && best.is_none_or(|(_, b)| value > b) {
                    best = Some((i, value));
                }
            }
            let Some((i, value)) = best else {
                return;
            };
            if self.slots[i]
                .compare_exchange(value, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                // Count before sum: a reader that sees the old count sees the old sum.
                self.count.fetch_sub(1, Ordering::SeqCst);
                self.sum.fetch_sub(value, Ordering::SeqCst);
                return;
            }
        }
    }

    /// The average start time of the tracked calls in flight, or `None` when there are none
    /// (or a select and a feedback are changing the count right now).
    fn average_begin(&self) -> Option<u64> {
        let count = self.count.load(Ordering::SeqCst);
        if count == 0 || count > INFLIGHT_SLOTS as u64 {
            return None;
        }
        let sum = self.sum.load(Ordering::SeqCst);
        if self.count.load(Ordering::SeqCst) != count {
            return None;
        }
        Some(sum / count)
    }
}

/// One sample of the window: the cumulative latency up to this call and its end time, both in
/// microseconds.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    latency_sum: u64,
    end: u64,
}

/// A server's last [`WINDOW`] calls: a ring of samples, oldest at `head`.
#[derive(Debug)]
struct Window {
    samples: [Sample; WINDOW],
    head: usize,
    len: usize,
    /// When the server's first recorded call began (0 before any): a young window's QPS is
    /// its calls over the time since.
    first_begin: u64,
}

impl Window {
    fn oldest(&self) -> Sample {
        self.samples[self.head]
    }

    fn newest_mut(&mut self) -> Option<&mut Sample> {
        if self.len == 0 {
            return None;
        }
        Some(&mut self.samples[(self.head + self.len - 1) % WINDOW])
    }

    /// Appends a sample, dropping the oldest when full.
    fn push(&mut self, sample: Sample) {
        if self.len == WINDOW {
            self.samples[self.head] = sample;
            self.head = (self.head + 1) % WINDOW;
        } else {
            self.samples[(self.head + self.len) % WINDOW] = sample;
            self.len += 1;
        }
    }
}

/// What `la` knows of one server.
#[derive(Debug)]
struct ServerStats {
    /// `base_weight` (f64 bits), before the inflight punishment.
    base_weight: AtomicU64,
    /// Average latency in microseconds (f64 bits); 0 while unknown.
    avg_latency: AtomicU64,
    /// The QPS the base weight was computed with (f64 bits).
    qps: AtomicU64,
    inflight: Inflight,
    window: Mutex<Window>,
}

impl ServerStats {
    fn new(initial_weight: f64) -> Self {
        ServerStats {
            base_weight: AtomicU64::new(initial_weight.to_bits()),
            avg_latency: AtomicU64::new(0f64.to_bits()),
            qps: AtomicU64::new(0f64.to_bits()),
            inflight: Inflight::new(),
            window: Mutex::new(Window {
                samples: [Sample::default(); WINDOW],
                head: 0,
                len: 0,
                first_begin: 0,
            }),
        }
    }

    /// The weight at `now`: the base weight, punished for calls in flight too long, at least
    /// [`MIN_WEIGHT`].
    fn weight_at(&self, now: u64) -> f64 {
        let base = load_f64(&self.base_weight);
        let avg = load_f64(&self.avg_latency);
        let mut weight = base;
        if avg > 0.0 {
            if let Some(avg_begin) = self.inflight.average_begin() {
                let delay = now.saturating_sub(avg_begin) as f64;
                let threshold = avg + (3.0 * avg * BOUND_RATIO).max(MIN_BOUND_US);
                if delay > threshold {
                    weight = base * avg / delay;
                }
            }
        }
        if weight.is_nan() || weight < MIN_WEIGHT {
            MIN_WEIGHT
        } else {
            weight
        }
    }

    /// Learns a call that ended at `end` after `latency` microseconds (at least 1), failed or
    /// not, and recomputes the base weight.
    fn record(&self, end: u64, latency: u64, failed: bool) {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if window.first_begin == 0 {
            window.first_begin = end.saturating_sub(latency).max(1);
        }
        if failed {
            let avg = load_f64(&self.avg_latency);
            let punished = (latency as f64).max(avg) * PUNISH_ERROR_RATIO;
            // Saturating float-to-int conversion.
            let punished = punished as u64;
            match window.newest_mut() {
                Some(newest) => {
                    newest.latency_sum = newest.latency_sum.saturating_add(punished);
                    newest.end = newest.end.max(end);
                }
                None => window.push(Sample {
                    latency_sum: punished,
                    end,
                }),
            }
        } else {
            let (sum, last_end) = window
                .newest_mut()
                .map_or((0, 0), |s| (s.latency_sum, s.end));
            window.push(Sample {
                latency_sum: sum.saturating_add(latency),
                // Feedbacks of concurrent calls may come slightly out of order.
                end: end.max(last_end),
            });
        }

        let n = window.len;
        let oldest = window.oldest();
        let Some(newest) = window.newest_mut().copied() else {
            return;
        };
        // A young window's calls over the time since its first call began: never a burst of
        // calls that ended together taken for a huge rate.
        let since_first = newest.end.saturating_sub(window.first_begin).max(1);
        let young_qps = n as f64 * 1e6 / since_first as f64;
        let (qps, avg_latency) = if newest.end > oldest.end && n > 1 {
            let span = newest.end - oldest.end;
            let qps = if n == WINDOW || span >= QPS_SPAN_US {
                (n - 1) as f64 * 1e6 / span as f64
            } else {
                young_qps
            };
            let avg = newest.latency_sum.saturating_sub(oldest.latency_sum) as f64 / (n - 1) as f64;
            (qps, avg)
        } else if n == 1 {
            (young_qps, newest.latency_sum as f64)
        } else {
            // Every sample ended at the same microsecond: nothing to measure yet.
            return;
        };
        if avg_latency <= 0.0 {
            return;
        }
        let qps = qps.max(MIN_QPS);
        store_f64(&self.qps, qps);
        store_f64(&self.avg_latency, avg_latency);
        store_f64(
            &self.base_weight,
            qps * WEIGHT_SCALE / (avg_latency * avg_latency),
        );
    }
}

/// One server of a snapshot.
#[derive(Debug)]
struct Entry {
    backend: Backend,
    stats: Arc<ServerStats>,
}

/// The servers, immutable once built.
#[derive(Debug, Default)]
struct Snapshot {
    servers: Vec<Entry>,
    /// Index in `servers` of each backend, for feedback.
    index: HashMap<Backend, usize>,
}

/// The `la` balancer. See the [module documentation](self).
pub(crate) struct LocalityAware {
    servers: ArcSwap<Snapshot>,
    /// Times are microseconds since this instant, plus one (0 means "none" in the slots).
    epoch: Instant,
    /// Serializes resets (never taken by select or feedback).
    resetting: Mutex<()>,
}

/// Weighted reservoir sampling: after offering every candidate, `chosen` is each one with
/// probability weight / total.
#[derive(Default)]
struct Reservoir {
    total: f64,
    chosen: Option<usize>,
}

impl Reservoir {
    fn offer(&mut self, index: usize, weight: f64) {
        self.total += weight;
        if self.chosen.is_none() || unit_random() * self.total < weight {
            self.chosen = Some(index);
        }
    }
}

impl LocalityAware {
    /// A balancer with no servers until the first [`reset`](LoadBalancer::reset).
    pub(crate) fn new() -> Self {
        LocalityAware {
            servers: ArcSwap::from_pointee(Snapshot::default()),
            epoch: Instant::now(),
            resetting: Mutex::new(()),
        }
    }

    /// `at` in the balancer's clock: microseconds since the epoch, plus one.
    fn micros(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch).as_micros();
        u64::try_from(since).unwrap_or(u64::MAX - 1) + 1
    }

    /// [`LoadBalancer::select`] as of `now`.
    fn select_at(&self, input: &SelectIn<'_>, now: Instant) -> Result<Backend, Status> {
        let snapshot = self.servers.load();
        let now = self.micros(now);
        let mut fresh = Reservoir::default();
        let mut tried = Reservoir::default();
        for (i, entry) in snapshot.servers.iter().enumerate() {
            if !entry.backend.is_available() {
                continue;
            }
            let weight = entry.stats.weight_at(now);
            if input.is_excluded(&entry.backend) {
                tried.offer(i, weight);
            } else {
                fresh.offer(i, weight);
            }
        }
        let entry = fresh
            .chosen
            .or(tried.chosen)
            .and_then(|i| snapshot.servers.get(i))
            .ok_or_else(no_server_available)?;
        entry.stats.inflight.enter(now);
        Ok(entry.backend.clone())
    }

    /// The statistics of `backend`, if it is in the current list.
    #[cfg(test)]
    fn stats(&self, backend: &Backend) -> Option<Arc<ServerStats>> {
        let snapshot = self.servers.load();
        let i = *snapshot.index.get(backend)?;
        Some(snapshot.servers[i].stats.clone())
    }
}

impl fmt::Debug for LocalityAware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.servers.load();
        let now = self.micros(Instant::now());
        f.write_str("LocalityAware ")?;
        let mut list = f.debug_list();
        for entry in &snapshot.servers {
            list.entry(&format_args!(
                "{} weight={:.0} avg_latency={:.0}us qps={:.1}",
                entry.backend.addr(),
                entry.stats.weight_at(now),
                load_f64(&entry.stats.avg_latency),
                load_f64(&entry.stats.qps),
            ));
        }
        list.finish()
    }
}

impl LoadBalancer for LocalityAware {
    fn reset(&self, servers: &[Backend]) {
        let _resetting = self.resetting.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.servers.load_full();
        let now = self.micros(Instant::now());

        // Newcomers start with the mean weight of the servers that stay.
        let (mut weights, mut staying) = (0.0, 0usize);
        for backend in servers {
            if let Some(&i) = old.index.get(backend) {
                weights += old.servers[i].stats.weight_at(now);
                staying += 1;
            }
        }
        let initial_weight = if staying > 0 {
            weights / staying as f64
        } else {
            INITIAL_WEIGHT
        };

        let mut snapshot = Snapshot {
            servers: Vec::with_capacity(servers.len()),
            index: HashMap::with_capacity(servers.len()),
        };
        for backend in servers {
            if snapshot.index.contains_key(backend) {
                continue;
            }
            let stats = match old.index.get(backend) {
                Some(&i) => old.servers[i].stats.clone(),
                None => Arc::new(ServerStats::new(initial_weight)),
            };
            snapshot
                .index
                .insert(backend.clone(), snapshot.servers.len());
            snapshot.servers.push(Entry {
                backend: backend.clone(),
                stats,
            });
        }
        self.servers.store(Arc::new(snapshot));
    }

    fn select(&self, input: &SelectIn<'_>) -> Result<Backend, Status> {
        self.select_at(input, Instant::now())
    }

    fn feedback(&self, feedback: &CallFeedback<'_>) {
        let snapshot = self.servers.load();
        let Some(&i) = snapshot.index.get(feedback.backend) else {
            // The server left the list.
            return;
        };
        let Some(entry) = snapshot.servers.get(i) else {
            return;
        };
        let begin = self.micros(feedback.begin);
        entry.stats.inflight.leave(begin);
        let latency = u64::try_from(feedback.latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        entry.stats.record(
            begin.saturating_add(latency),
            latency,
            feedback.error_code != 0,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::errno;
    use crate::naming::ServerNode;

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 1, (i / 250) as u8, (i % 250) as u8 + 1], 8000))
    }

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend::detached(ServerNode::new(addr(i))))
            .collect()
    }

    const ANY: SelectIn<'static> = SelectIn {
        request_code: None,
        excluded: &[],
    };

    /// A simulated cluster on a simulated clock: every `step_us` one call is sent, and each
    /// call completes after its server's latency, which grows a little with the server's calls
    /// in flight (as real servers' do).
    struct Sim {
        lb: LocalityAware,
        start: Instant,
        now_us: u64,
        servers: Vec<Backend>,
        latency_us: Vec<u64>,
        /// Every other call of these servers fails.
        failing: Vec<bool>,
        /// Calls to these servers never complete.
        stuck: Vec<bool>,
        inflight: Vec<u64>,
        calls: Vec<u64>,
        picks: Vec<u64>,
        /// (end, begin, server)
        pending: BinaryHeap<Reverse<(u64, u64, usize)>>,
    }

    impl Sim {
        fn new(latency_us: &[u64]) -> Self {
            let lb = LocalityAware::new();
            let servers = backends(latency_us.len());
            lb.reset(&servers);
            let n = servers.len();
            Sim {
                lb,
                start: Instant::now(),
                now_us: 0,
                servers,
                latency_us: latency_us.to_vec(),
                failing: vec![false; n],
                stuck: vec![false; n],
                inflight: vec![0; n],
                calls: vec![0; n],
                picks: vec![0; n],
                pending: BinaryHeap::new(),
            }
        }

        fn at(&self, us: u64) -> Instant {
            self.start + Duration::from_micros(us)
        }

        /// Adds a server with latency `latency_us` and resets the balancer.
        fn add_server(&mut self, latency_us: u64) {
            let i = self.servers.len();
            self.servers
                .push(Backend::detached(ServerNode::new(addr(i))));
            self.latency_us.push(latency_us);
            self.failing.push(false);
            self.stuck.push(false);
            self.inflight.push(0);
            self.calls.push(0);
            self.picks.push(0);
            self.lb.reset(&self.servers);
        }

        /// Runs for `duration_us`, one call every `step_us`; counts picks afresh.
        fn run(&mut self, duration_us: u64, step_us: u64) {
            self.picks.iter_mut().for_each(|p| *p = 0);
            let end = self.now_us + duration_us;
            while self.now_us < end {
                self.now_us += step_us;
                while let Some(Reverse((done, begin, server))) = self.pending.peek().copied() {
                    if done > self.now_us {
                        break;
                    }
                    self.pending.pop();
                    self.inflight[server] -= 1;
                    self.calls[server] += 1;
                    let failed = self.failing[server] && self.calls[server] % 2 == 0;
                    self.lb.feedback(&CallFeedback {
                        backend: &self.servers[server],
                        begin: self.at(begin),
                        latency: Duration::from_micros(done - begin),
                        error_code: if failed { errno::EINTERNAL } else { 0 },
                    });
                }
                let picked = self.lb.select_at(&ANY, self.at(self.now_us)).unwrap();
                let server = self.servers.iter().position(|s| *s == picked).unwrap();
                self.picks[server] += 1;
                self.inflight[server] += 1;
                if !self.stuck[server] {
                    let latency = self.latency_us[server] * (10 + self.inflight[server]) / 10;
                    self.pending
                        .push(Reverse((self.now_us + latency, self.now_us, server)));
                }
            }
        }

        fn share(&self, server: usize) -> f64 {
            self.picks[server] as f64 / self.picks.iter().sum::<u64>() as f64
        }

        /// The mean share of the servers other than `server`.
        fn others_share(&self, server: usize) -> f64 {
            let others: Vec<usize> = (0..self.servers.len()).filter(|i| *i != server).collect();
            others.iter().map(|i| self.share(*i)).sum::<f64>() / others.len() as f64
        }
    }

    #[test]
    fn slow_server_gets_less() {
        let mut sim = Sim::new(&[1000, 1000, 1000, 1000, 10_000]);
        sim.run(1_000_000, 100);
        sim.run(1_000_000, 100);
        let slow = sim.share(4);
        let fast = sim.others_share(4);
        assert!(
            slow < fast / 3.0,
            "slow {slow:.4} vs fast {fast:.4}: {:?}",
            sim.lb
        );
    }

    #[test]
    fn failing_server_gets_less() {
        let mut sim = Sim::new(&[1000, 1000, 1000, 1000]);
        sim.failing[0] = true;
        sim.run(1_000_000, 100);
        sim.run(1_000_000, 100);
        let failing = sim.share(0);
        let healthy = sim.others_share(0);
        assert!(
            failing < healthy / 2.0,
            "failing {failing:.4} vs healthy {healthy:.4}: {:?}",
            sim.lb
        );
    }

    #[test]
    fn fast_failures_still_punish() {
        let lb = LocalityAware::new();
        let servers = backends(2);
        lb.reset(&servers);
        let start = Instant::now();
        for (server, fail_latency) in [(0usize, 1000u64), (1, 10)] {
            for k in 0..400u64 {
                let begin = start + Duration::from_micros(k * 1000);
                let failed = k % 2 == 1;
                lb.feedback(&CallFeedback {
                    backend: &servers[server],
                    begin,
                    latency: Duration::from_micros(if failed { fail_latency } else { 1000 }),
                    error_code: if failed { errno::EINTERNAL } else { 0 },
                });
            }
        }
        // A failure counts as at least an average call, failing fast or slow alike.
        let slow_fail = lb.stats(&servers[0]).unwrap();
        let fast_fail = lb.stats(&servers[1]).unwrap();
        let (a, b) = (
            load_f64(&slow_fail.avg_latency),
            load_f64(&fast_fail.avg_latency),
        );
        assert!(a > 2000.0 && b > 2000.0, "{a} {b}");
    }

    #[test]
    fn stuck_server_gets_less() {
        let mut sim = Sim::new(&[1000, 1000, 1000, 1000]);
        sim.run(1_000_000, 100);
        sim.stuck[2] = true;
        sim.run(300_000, 100);
        sim.run(300_000, 100);
        let stuck = sim.share(2);
        let others = sim.others_share(2);
        assert!(
            stuck < others / 3.0,
            "stuck {stuck:.4} vs others {others:.4}: {:?}",
            sim.lb
        );
        let stats = sim.lb.stats(&sim.servers[2]).unwrap();
        let now = sim.lb.micros(sim.at(sim.now_us));
        assert!(stats.weight_at(now) < load_f64(&stats.base_weight) / 10.0);
    }

    #[test]
    fn new_server_gets_traffic() {
        let mut sim = Sim::new(&[1000, 1000, 1000, 1000]);
        sim.run(1_000_000, 100);
        sim.add_server(1000);
        // At once, before any feedback: about the mean weight.
        let newcomer = sim.servers[4].clone();
        let now = sim.at(sim.now_us);
        let mut hits = 0;
        for _ in 0..10_000 {
            if sim.lb.select_at(&ANY, now).unwrap() == newcomer {
                hits += 1;
            }
        }
        assert!(hits > 1000, "{hits} of 10000 right after joining");
        // And while it warms up and after.
        let mut sim = Sim::new(&[1000, 1000, 1000, 1000]);
        sim.run(1_000_000, 100);
        sim.add_server(1000);
        sim.run(500_000, 100);
        let fresh = sim.share(4);
        assert!(fresh > 0.1, "newcomer share {fresh:.4}: {:?}", sim.lb);
        sim.run(1_000_000, 100);
        let fresh = sim.share(4);
        assert!(fresh > 0.1, "newcomer share {fresh:.4}: {:?}", sim.lb);
    }

    #[test]
    fn stats_survive_reset_for_staying_servers() {
        let mut sim = Sim::new(&[1000, 1000, 10_000]);
        sim.run(1_000_000, 100);
        let slow = sim.lb.stats(&sim.servers[2]).unwrap();
        let weight = load_f64(&slow.base_weight);
        // Listed again in another order, with a newcomer: the slow one keeps its statistics.
        let mut servers = sim.servers.clone();
        servers.reverse();
        servers.push(Backend::detached(ServerNode::new(addr(9))));
        sim.lb.reset(&servers);
        let kept = sim.lb.stats(&sim.servers[2]).unwrap();
        assert!(Arc::ptr_eq(&slow, &kept));
        assert_eq!(load_f64(&kept.base_weight), weight);
        // Removed: gone, and a late feedback for it is ignored.
        sim.lb.reset(&sim.servers[..2]);
        assert!(sim.lb.stats(&sim.servers[2]).is_none());
        sim.lb.feedback(&CallFeedback {
            backend: &sim.servers[2],
            begin: Instant::now(),
            latency: Duration::from_millis(1),
            error_code: 0,
        });
        // Back again: starts afresh.
        sim.lb.reset(&sim.servers);
        let fresh = sim.lb.stats(&sim.servers[2]).unwrap();
        assert!(!Arc::ptr_eq(&slow, &fresh));
    }

    #[test]
    fn inflight_slots_track_exactly() {
        let inflight = Inflight::new();
        assert_eq!(inflight.average_begin(), None);
        inflight.enter(100);
        inflight.enter(200);
        assert_eq!(inflight.average_begin(), Some(150));
        // The caller's begin is a little after select: the call's own time is removed.
        inflight.leave(203);
        assert_eq!(inflight.average_begin(), Some(100));
        inflight.leave(104);
        assert_eq!(inflight.average_begin(), None);
        assert_eq!(inflight.sum.load(Ordering::SeqCst), 0);
        // A stray feedback (nothing at or before it) changes nothing.
        inflight.enter(500);
        inflight.leave(400);
        assert_eq!(inflight.average_begin(), Some(500));
        // Overflow leaves calls untracked, and the count never exceeds the slots.
        for t in 0..(2 * INFLIGHT_SLOTS as u64) {
            inflight.enter(1000 + t);
        }
        assert_eq!(inflight.count.load(Ordering::SeqCst), INFLIGHT_SLOTS as u64);
        for t in 0..(3 * INFLIGHT_SLOTS as u64) {
            inflight.leave(10_000 + t);
        }
        assert_eq!(inflight.average_begin(), None);
        assert_eq!(inflight.sum.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn skips_unavailable_and_prefers_untried() {
        let lb = LocalityAware::new();
        let servers = backends(3);
        lb.reset(&servers);
        servers[0].set_available(false);
        for _ in 0..200 {
            assert_ne!(lb.select(&ANY).unwrap(), servers[0]);
        }
        let tried = [servers[1].addr()];
        for _ in 0..200 {
            let picked = lb
                .select(&SelectIn {
                    request_code: None,
                    excluded: &tried,
                })
                .unwrap();
            assert_eq!(picked, servers[2]);
        }
        let all = [servers[1].addr(), servers[2].addr()];
        let picked = lb
            .select(&SelectIn {
                request_code: None,
                excluded: &all,
            })
            .unwrap();
        assert_ne!(picked, servers[0]);
        servers[1].set_available(false);
        servers[2].set_available(false);
        assert_eq!(lb.select(&ANY).unwrap_err().code(), errno::EHOSTDOWN);
        servers[1].set_available(true);
        assert_eq!(lb.select(&ANY).unwrap(), servers[1]);
    }

    #[test]
    fn empty_and_duplicates() {
        let lb = LocalityAware::new();
        assert_eq!(lb.select(&ANY).unwrap_err().code(), errno::EHOSTDOWN);
        let servers = backends(2);
        lb.reset(&[servers.clone(), servers.clone()].concat());
        assert_eq!(lb.servers.load().servers.len(), 2);
        // A feedback for a server never selected does no harm.
        lb.feedback(&CallFeedback {
            backend: &servers[0],
            begin: Instant::now(),
            latency: Duration::ZERO,
            error_code: errno::ERPCTIMEDOUT,
        });
        assert!(lb.select(&ANY).is_ok());
        let _ = format!("{lb:?}");
    }

    #[test]
    fn reset_under_concurrent_selects() {
        let lb = LocalityAware::new();
        let servers = backends(16);
        lb.reset(&servers);
        std::thread::scope(|scope| {
            for t in 0..2 {
                let lb = &lb;
                scope.spawn(move || {
                    for k in 0..20_000u64 {
                        match lb.select(&ANY) {
                            Ok(backend) => lb.feedback(&CallFeedback {
                                backend: &backend,
                                begin: Instant::now(),
                                latency: Duration::from_micros(50 + (k + t) % 500),
                                error_code: if k % 7 == 0 { errno::EINTERNAL } else { 0 },
                            }),
                            Err(status) => assert_eq!(status.code(), errno::EHOSTDOWN),
                        }
                    }
                });
            }
            let (lb, servers) = (&lb, &servers);
            scope.spawn(move || {
                for i in 0..200 {
                    let from = i % 8;
                    lb.reset(&servers[from..from + (i % 9)]);
                }
                lb.reset(servers);
            });
        });
        assert!(lb.select(&ANY).is_ok());
    }
}
