//! Windows over time: a sampler thread asks every windowed metric for a sample once a second
//! (bvar's sampler), and each keeps the last 60 one-second samples and the last 60 one-minute
//! ones, so it can answer for any window from 1 s to 60 min. Tests take samples themselves
//! instead of waiting for the thread: a sample is the unit of time.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

/// Samples kept at each resolution.
pub(crate) const KEPT: usize = 60;

/// A metric the sampler visits once a second.
pub(crate) trait Sampled: Send + Sync {
    /// Closes the second that just ended.
    fn take_sample(&self);
}

/// The metrics the sampler visits.
static SAMPLED: LazyLock<Mutex<Vec<Weak<dyn Sampled>>>> = LazyLock::new(|| {
    let started = std::thread::Builder::new()
        .name("brisk-metrics".into())
        .spawn(run_sampler);
    if let Err(e) = started {
        tracing::warn!("metrics windows will not move: no sampler thread: {e}");
    }
    Mutex::new(Vec::new())
});

/// Has the sampler visit `metric` once a second while it lives.
pub(crate) fn register<M: Sampled + 'static>(metric: &Arc<M>) {
    let weak: Weak<dyn Sampled> = Arc::downgrade(metric) as Weak<M>;
    lock(&SAMPLED).push(weak);
}

fn run_sampler() {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let alive: Vec<Arc<dyn Sampled>> = {
            let mut list = lock(&SAMPLED);
            list.retain(|m| m.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for metric in alive {
            metric.take_sample();
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a window of `seconds` is read: from the one-second samples (up to a minute), or from
/// the one-minute ones (rounded up to whole minutes, up to an hour).
pub(crate) fn resolution(seconds: u32) -> (bool, usize) {
    let seconds = seconds.max(1) as usize;
    if seconds <= KEPT {
        (true, seconds)
    } else {
        (false, seconds.div_ceil(60).min(KEPT))
    }
}

/// A cumulative value's recent history: what it was at the end of each of the last 60
/// seconds and of the last 60 minutes (it was 0 when the history began).
#[derive(Debug)]
pub(crate) struct Series {
    seconds: VecDeque<u64>,
    minutes: VecDeque<u64>,
    /// Seconds sampled since the last minute closed.
    into_minute: u32,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            seconds: VecDeque::from([0]),
            minutes: VecDeque::from([0]),
            into_minute: 0,
        }
    }
}

impl Series {
    /// Records the value at the end of a second.
    pub(crate) fn push(&mut self, value: u64) {
        push_bounded(&mut self.seconds, value, KEPT + 1);
        self.into_minute += 1;
        if self.into_minute == 60 {
            self.into_minute = 0;
            push_bounded(&mut self.minutes, value, KEPT + 1);
        }
    }

    /// How much the value grew over the last `seconds` (whole seconds up to a minute; beyond,
    /// the minute under way and whole minutes before it), or over the history there is if it
    /// is shorter; and over how many seconds that growth was.
    pub(crate) fn growth(&self, seconds: u32) -> (u64, u64) {
        let latest = self.seconds[self.seconds.len() - 1];
        let (fine, n) = resolution(seconds);
        if fine {
            let back = n.min(self.seconds.len() - 1);
            let then = self.seconds[self.seconds.len() - 1 - back];
            return (latest.saturating_sub(then), back as u64);
        }
        let back = (n - 1).min(self.minutes.len() - 1);
        let then = self.minutes[self.minutes.len() - 1 - back];
        (
            latest.saturating_sub(then),
            back as u64 * 60 + u64::from(self.into_minute),
        )
    }

    /// Seconds sampled since the last minute closed.
    #[cfg(test)]
    fn seconds_into_minute(&self) -> u32 {
        self.into_minute
    }
}

/// Pushes `value`, dropping the oldest past `cap`.
pub(crate) fn push_bounded<T>(ring: &mut VecDeque<T>, value: T, cap: usize) {
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_over_windows_of_seconds_and_minutes() {
        let mut series = Series::default();
        assert_eq!(series.growth(1), (0, 0), "nothing sampled yet");
        // 10 a second for 130 seconds.
        for second in 1..=130u64 {
            series.push(second * 10);
        }
        assert_eq!(series.growth(1), (10, 1));
        assert_eq!(series.growth(10), (100, 10));
        assert_eq!(series.growth(60), (600, 60));
        // Two minutes: the ten seconds under way, and the minute closed at second 120.
        assert_eq!(series.growth(120), (700, 70));
        assert_eq!(series.growth(3600), (1300, 130), "all there is");
        assert_eq!(series.seconds_into_minute(), 10);
    }

    #[test]
    fn a_short_history_answers_for_what_it_has() {
        let mut series = Series::default();
        series.push(5);
        series.push(15);
        assert_eq!(series.growth(10), (15, 2), "two seconds of growth, not ten");
        assert_eq!(series.growth(120), (15, 2), "the minute under way");
    }

    #[test]
    fn resolutions() {
        assert_eq!(resolution(0), (true, 1));
        assert_eq!(resolution(60), (true, 60));
        assert_eq!(resolution(61), (false, 2));
        assert_eq!(resolution(3600), (false, 60));
        assert_eq!(resolution(86_400), (false, 60));
    }
}
