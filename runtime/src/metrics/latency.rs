//! [`LatencyRecorder`]: how long things take — count, QPS, average, percentiles and maximum,
//! over the process's life and over recent windows (bvar's `LatencyRecorder`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::histogram::{self, BUCKETS};
use super::shard::{self, Padded};
use super::window::{self, lock, push_bounded, resolution, Sampled, KEPT};

/// Shards of a recorder at most (a power of two).
const MAX_SHARDS: usize = 4;

/// The percentiles [`LatencyStats`] reports, as brpc's `/status` shows them.
pub const PERCENTILES: [f64; 6] = [0.5, 0.8, 0.9, 0.99, 0.999, 0.9999];

/// Records latencies (in microseconds) from any thread without a lock or an allocation, into
/// per-thread counts and a histogram whose percentiles are within 1/32 (3.1%) of the true
/// value; cloning gives another handle on the same recorder.
///
/// ```
/// use std::time::Duration;
/// let latency = brisk::metrics::LatencyRecorder::new();
/// latency.record(Duration::from_micros(250));
/// latency.record_us(750);
/// assert_eq!((latency.count(), latency.sum_us()), (2, 1000));
/// // Windows move once a second: over the last 10 s, count, qps, average, percentiles, max.
/// let _recent = latency.stats(10);
/// ```
#[derive(Clone)]
pub struct LatencyRecorder(Arc<Inner>);

struct Inner {
    shards: Box<[Padded<Shard>]>,
    history: Mutex<History>,
}

struct Shard {
    count: AtomicU64,
    sum: AtomicU64,
    /// The largest since the last sample.
    max: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// What one second (or minute) saw.
#[derive(Clone, Debug, Default)]
struct Sample {
    count: u64,
    sum: u64,
    max: u64,
    /// Non-empty buckets: (index, count).
    buckets: Vec<(u16, u64)>,
}

struct History {
    /// The buckets' totals at the last sample.
    previous: Vec<u64>,
    previous_sum: u64,
    seconds: VecDeque<Sample>,
    minutes: VecDeque<Sample>,
    /// The minute being filled, its buckets dense.
    minute: Sample,
    minute_buckets: Vec<u64>,
    into_minute: u32,
    lifetime_max: u64,
}

/// A recorder's figures over a window (see [`LatencyRecorder::stats`]).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LatencyStats {
    /// Latencies recorded in the window.
    pub count: u64,
    /// Of them, per second.
    pub qps: f64,
    /// Their average, µs.
    pub avg_us: u64,
    /// The largest, µs.
    pub max_us: u64,
    /// The [`PERCENTILES`] of them, µs, in that order.
    pub percentiles_us: [u64; 6],
}

impl std::fmt::Debug for LatencyRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyRecorder")
            .field("count", &self.count())
            .finish()
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

impl LatencyRecorder {
    /// A recorder that has seen nothing, its windows sampled once a second.
    pub fn new() -> LatencyRecorder {
        let recorder = LatencyRecorder::unsampled();
        window::register(&recorder.0);
        recorder
    }

    pub(crate) fn unsampled() -> LatencyRecorder {
        LatencyRecorder(Arc::new(Inner {
            // A histogram is ~4.7 KiB: a few shards keep a recorder small on big machines.
            shards: (0..shard::count().min(MAX_SHARDS))
                .map(|_| Padded::default())
                .collect(),
            history: Mutex::new(History {
                previous: vec![0; BUCKETS],
                previous_sum: 0,
                seconds: VecDeque::with_capacity(KEPT),
                minutes: VecDeque::with_capacity(KEPT),
                minute: Sample::default(),
                minute_buckets: vec![0; BUCKETS],
                into_minute: 0,
                lifetime_max: 0,
            }),
        }))
    }

    /// Records one latency.
    #[inline]
    pub fn record(&self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one latency of `us` microseconds.
    #[inline]
    pub fn record_us(&self, us: u64) {
        let shard = &self.0.shards[shard::index() & (self.0.shards.len() - 1)];
        shard.count.fetch_add(1, Ordering::Relaxed);
        shard.sum.fetch_add(us, Ordering::Relaxed);
        if us > shard.max.load(Ordering::Relaxed) {
            shard.max.fetch_max(us, Ordering::Relaxed);
        }
        shard.buckets[histogram::bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Latencies recorded since the recorder was made.
    pub fn count(&self) -> u64 {
        self.0.sum_of(|s| &s.count)
    }

    /// Their sum, µs.
    pub fn sum_us(&self) -> u64 {
        self.0.sum_of(|s| &s.sum)
    }

    /// The largest ever recorded, µs.
    pub fn max_us(&self) -> u64 {
        let unsampled = self
            .0
            .shards
            .iter()
            .map(|s| s.max.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        lock(&self.0.history).lifetime_max.max(unsampled)
    }

    /// The figures of each of the last 60 seconds (or, with `minutes`, of the last 60
    /// minutes), oldest first: what a chart of the recorder draws.
    pub fn trend(&self, minutes: bool) -> Vec<LatencyStats> {
        let history = lock(&self.0.history);
        let (ring, unit) = if minutes {
            (&history.minutes, 60)
        } else {
            (&history.seconds, 1)
        };
        ring.iter().map(|sample| figures(&[sample], unit)).collect()
    }

    /// Count, QPS, average, percentiles and maximum of the latencies recorded over the last
    /// `seconds` (whole seconds up to 60; beyond, the minute under way and whole minutes before
    /// it, up to 60 minutes; all there is if the recorder is younger).
    pub fn stats(&self, seconds: u32) -> LatencyStats {
        let history = lock(&self.0.history);
        let (fine, n) = resolution(seconds);
        if fine {
            let samples: Vec<&Sample> = history.seconds.iter().rev().take(n).collect();
            return figures(&samples, samples.len() as u64);
        }
        // The minute under way (its seconds), and whole minutes before it.
        let under_way = history.into_minute as usize;
        let mut samples: Vec<&Sample> = history.seconds.iter().rev().take(under_way).collect();
        let minutes = history.minutes.iter().rev().take(n - 1);
        let spanned = minutes.len() as u64 * 60 + samples.len() as u64;
        samples.extend(minutes);
        figures(&samples, spanned)
    }

    #[cfg(test)]
    pub(crate) fn take_sample(&self) {
        self.0.take_sample();
    }
}

/// The figures of `samples`, which span `spanned` seconds.
fn figures(samples: &[&Sample], spanned: u64) -> LatencyStats {
    let mut merged = vec![0u64; BUCKETS];
    let mut stats = LatencyStats::default();
    let mut sum = 0u64;
    for sample in samples {
        stats.count += sample.count;
        sum = sum.wrapping_add(sample.sum);
        stats.max_us = stats.max_us.max(sample.max);
        for &(index, count) in &sample.buckets {
            merged[usize::from(index)] += count;
        }
    }
    if let Some(avg) = sum.checked_div(stats.count) {
        stats.avg_us = avg;
        stats.qps = stats.count as f64 / spanned.max(1) as f64;
        for (slot, q) in stats.percentiles_us.iter_mut().zip(PERCENTILES) {
            // A bucket's midpoint may lie past the largest latency it holds.
            *slot = histogram::quantile(&merged, stats.count, q).min(stats.max_us);
        }
    }
    stats
}

impl Inner {
    fn sum_of(&self, field: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl Sampled for Inner {
    fn take_sample(&self) {
        // A second's count is what its buckets grew by; its sum may include a latency or two
        // the buckets will count next second.
        let sum = self.sum_of(|s| &s.sum);
        let max = self
            .shards
            .iter()
            .map(|s| s.max.swap(0, Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let mut history = lock(&self.history);
        let history = &mut *history;
        let mut sample = Sample {
            count: 0,
            sum: sum.wrapping_sub(history.previous_sum),
            max,
            buckets: Vec::new(),
        };
        history.previous_sum = sum;
        let mut bucketed = 0;
        for (index, previous) in history.previous.iter_mut().enumerate() {
            let total = self
                .shards
                .iter()
                .map(|s| s.buckets[index].load(Ordering::Relaxed))
                .fold(0, u64::wrapping_add);
            let grown = total.wrapping_sub(*previous);
            if grown > 0 {
                sample.buckets.push((index as u16, grown));
                history.minute_buckets[index] += grown;
                *previous = total;
                bucketed += grown;
            }
        }
        sample.count = bucketed;
        history.lifetime_max = history.lifetime_max.max(max);
        history.minute.count += sample.count;
        history.minute.sum = history.minute.sum.wrapping_add(sample.sum);
        history.minute.max = history.minute.max.max(max);
        push_bounded(&mut history.seconds, sample, KEPT);
        history.into_minute += 1;
        if history.into_minute == 60 {
            history.into_minute = 0;
            let mut minute = std::mem::take(&mut history.minute);
            for (index, count) in history.minute_buckets.iter_mut().enumerate() {
                if *count > 0 {
                    minute.buckets.push((index as u16, std::mem::take(count)));
                }
            }
            push_bounded(&mut history.minutes, minute, KEPT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sums_are_exact_at_once() {
        let recorder = LatencyRecorder::unsampled();
        for us in [100, 200, 300] {
            recorder.record_us(us);
        }
        recorder.record(Duration::from_millis(2));
        assert_eq!(recorder.count(), 4);
        assert_eq!(recorder.sum_us(), 2600);
        assert_eq!(recorder.max_us(), 2000);
        assert_eq!(
            recorder.stats(10),
            LatencyStats::default(),
            "no second closed yet"
        );
    }

    #[test]
    fn window_figures_and_percentiles() {
        let recorder = LatencyRecorder::unsampled();
        // Second 1: 1..=1000 µs; second 2: 1000 latencies of 5 ms.
        (1..=1000).for_each(|us| recorder.record_us(us));
        recorder.take_sample();
        (0..1000).for_each(|_| recorder.record_us(5000));
        recorder.take_sample();
        let last = recorder.stats(1);
        assert_eq!(
            (last.count, last.qps, last.avg_us, last.max_us),
            (1000, 1000.0, 5000, 5000)
        );
        let both = recorder.stats(2);
        assert_eq!(both.count, 2000);
        assert_eq!(both.qps, 1000.0);
        assert_eq!(both.max_us, 5000);
        let [p50, p80, ..] = both.percentiles_us;
        // The median is the 1000th value: 1000 µs (within 1/32).
        assert!((969..=1031).contains(&p50), "{p50}");
        assert!((4844..=5156).contains(&p80), "{p80}");
        // Beyond a minute: the minute under way counts too.
        assert_eq!(recorder.stats(120).count, 2000);
        assert_eq!(recorder.stats(120).qps, 1000.0);
        for _ in 0..58 {
            recorder.take_sample();
        }
        recorder.record_us(1);
        recorder.take_sample(); // a second into the next minute
        let minute = recorder.stats(120);
        assert_eq!((minute.count, minute.max_us), (2001, 5000));
        assert!((minute.qps - 2001.0 / 61.0).abs() < 1e-9);
        assert_eq!(
            recorder.stats(60).count,
            1001,
            "the last 60 s: seconds 2 to 61"
        );
    }

    #[test]
    fn threads_record_without_losing_any() {
        let recorder = LatencyRecorder::unsampled();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let recorder = recorder.clone();
                std::thread::spawn(move || {
                    (0..5000).for_each(|i| recorder.record_us(t * 10 + i % 7))
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        recorder.take_sample();
        assert_eq!(recorder.count(), 20_000);
        assert_eq!(recorder.stats(1).count, 20_000);
    }
}
