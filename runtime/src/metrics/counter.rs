//! [`Counter`]: a sum many threads add to (bvar's `Adder`), with its growth over recent windows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::shard::{self, Padded};
use super::window::{self, lock, Sampled, Series};

/// A count that only grows, added to from any thread without a lock or shared cache line;
/// cloning gives another handle on the same count.
///
/// ```
/// let served = brisk::metrics::Counter::new();
/// served.add(3);
/// served.inc();
/// assert_eq!(served.get(), 4);
/// // How much it grew over the last 10 s, and per second over the last minute.
/// let (_recent, _per_second) = (served.window(10), served.rate(60));
/// ```
#[derive(Clone)]
pub struct Counter(Arc<CounterInner>);

struct CounterInner {
    cells: Box<[Padded<AtomicU64>]>,
    series: Mutex<Series>,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Counter").field(&self.get()).finish()
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

impl Counter {
    /// A counter at 0, its windows sampled once a second.
    pub fn new() -> Counter {
        let counter = Counter::unsampled();
        window::register(&counter.0);
        counter
    }

    /// A counter whose windows move only when [`Sampled::take_sample`] is called (tests).
    pub(crate) fn unsampled() -> Counter {
        Counter(Arc::new(CounterInner {
            cells: shard::cells(),
            series: Mutex::default(),
        }))
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.cells[shard::index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The count now.
    pub fn get(&self) -> u64 {
        self.0.total()
    }

    /// How much the count grew over the last `seconds` (whole seconds up to 60; beyond, the
    /// minute under way and whole minutes before it, up to 60 minutes), or since it was made
    /// if that is shorter.
    pub fn window(&self, seconds: u32) -> u64 {
        lock(&self.0.series).growth(seconds).0
    }

    /// The count's growth per second over the last `seconds` (as [`window`](Self::window)).
    pub fn rate(&self, seconds: u32) -> f64 {
        let (grown, spanned) = lock(&self.0.series).growth(seconds);
        if spanned == 0 {
            0.0
        } else {
            grown as f64 / spanned as f64
        }
    }

    #[cfg(test)]
    pub(crate) fn take_sample(&self) {
        self.0.take_sample();
    }
}

impl CounterInner {
    fn total(&self) -> u64 {
        self.cells
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl Sampled for CounterInner {
    fn take_sample(&self) {
        let total = self.total();
        lock(&self.series).push(total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_from_many_threads_sum_up() {
        let counter = Counter::unsampled();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| counter.inc()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.get(), 40_000);
    }

    #[test]
    fn windows_follow_the_samples() {
        let counter = Counter::unsampled();
        for _ in 0..5 {
            counter.add(100);
            counter.take_sample();
        }
        counter.add(7); // not sampled yet: windows see whole seconds
        assert_eq!(counter.get(), 507);
        assert_eq!(counter.window(1), 100);
        assert_eq!(counter.window(3), 300);
        assert_eq!(counter.rate(60), 100.0, "five seconds of history, 100 each");
    }
}
