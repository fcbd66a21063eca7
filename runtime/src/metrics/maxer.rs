//! [`Maxer`]: the largest value recorded, over the process's life and over recent windows.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::shard::{self, Padded};
use super::window::{self, lock, push_bounded, resolution, Sampled, KEPT};

/// The largest value recorded (bvar's `Maxer`), from any thread without a lock.
///
/// ```
/// let largest = brisk::metrics::Maxer::new();
/// largest.record(10);
/// largest.record(7);
/// assert_eq!(largest.get(), 10);
/// ```
#[derive(Clone)]
pub struct Maxer(Arc<MaxerInner>);

struct MaxerInner {
    /// The largest since the last sample.
    cells: Box<[Padded<AtomicU64>]>,
    history: Mutex<MaxHistory>,
}

#[derive(Default)]
struct MaxHistory {
    seconds: VecDeque<u64>,
    minutes: VecDeque<u64>,
    minute: u64,
    into_minute: u32,
    lifetime: u64,
}

impl std::fmt::Debug for Maxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Maxer").field(&self.get()).finish()
    }
}

impl Default for Maxer {
    fn default() -> Self {
        Maxer::new()
    }
}

impl Maxer {
    /// A maxer that has seen nothing (0), its windows sampled once a second.
    pub fn new() -> Maxer {
        let maxer = Maxer::unsampled();
        window::register(&maxer.0);
        maxer
    }

    pub(crate) fn unsampled() -> Maxer {
        Maxer(Arc::new(MaxerInner {
            cells: shard::cells(),
            history: Mutex::default(),
        }))
    }

    /// Records `value`.
    #[inline]
    pub fn record(&self, value: u64) {
        let cell = &self.0.cells[shard::index()];
        if value > cell.load(Ordering::Relaxed) {
            cell.fetch_max(value, Ordering::Relaxed);
        }
    }

    /// The largest value ever recorded.
    pub fn get(&self) -> u64 {
        let lifetime = lock(&self.0.history).lifetime;
        lifetime.max(self.0.unsampled_max())
    }

    /// The largest value recorded over the last `seconds` (whole seconds up to 60; beyond,
    /// the minute under way and whole minutes before it, up to 60 minutes).
    pub fn window(&self, seconds: u32) -> u64 {
        let history = lock(&self.0.history);
        let (fine, n) = resolution(seconds);
        if fine {
            return history
                .seconds
                .iter()
                .rev()
                .take(n)
                .copied()
                .max()
                .unwrap_or(0);
        }
        // The minute under way, and whole minutes before it.
        let before = history.minutes.iter().rev().take(n - 1).copied().max();
        before.unwrap_or(0).max(history.minute)
    }

    #[cfg(test)]
    pub(crate) fn take_sample(&self) {
        self.0.take_sample();
    }
}

impl MaxerInner {
    fn unsampled_max(&self) -> u64 {
        self.cells
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

impl Sampled for MaxerInner {
    fn take_sample(&self) {
        let second = self
            .cells
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let mut history = lock(&self.history);
        history.lifetime = history.lifetime.max(second);
        push_bounded(&mut history.seconds, second, KEPT);
        history.minute = history.minute.max(second);
        history.into_minute += 1;
        if history.into_minute == 60 {
            let minute = std::mem::take(&mut history.minute);
            history.into_minute = 0;
            push_bounded(&mut history.minutes, minute, KEPT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_keep_each_seconds_largest() {
        let maxer = Maxer::unsampled();
        for value in [5, 50, 20] {
            maxer.record(value);
            maxer.record(value / 2);
            maxer.take_sample();
        }
        maxer.record(3);
        assert_eq!(maxer.window(1), 20);
        assert_eq!(maxer.window(2), 50);
        assert_eq!(maxer.get(), 50);
        for _ in 0..60 {
            maxer.take_sample();
        }
        assert_eq!(maxer.window(60), 3, "the last minute saw only 3");
        assert_eq!(maxer.window(120), 50, "the first minute closed with 50");
        maxer.record(9);
        maxer.take_sample();
        assert_eq!(maxer.window(60), 9);
        assert_eq!(
            maxer.window(61),
            50,
            "the minute under way, and the one before"
        );
        assert_eq!(maxer.get(), 50);
    }
}
