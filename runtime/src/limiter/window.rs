//! The sampling the adaptive limiters share (brpc's, for both): at most one answer per
//! sampling interval is sampled, into a window that closes after enough samples or enough
//! time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How a limiter samples its method's answers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sampling {
    /// The longest a window lasts.
    pub(super) window: Duration,
    /// A window with fewer samples than this when its time is up is thrown away.
    pub(super) min_samples: u32,
    /// A window closes early once it has this many.
    pub(super) max_samples: u32,
    /// Failed answers count, their latency weighed by `fail_punish_ratio`.
    pub(super) punish_errors: bool,
}

/// Picks the answers to sample: the first after each interval, by one compare-and-swap.
#[derive(Debug)]
pub(super) struct Sampler {
    epoch: Instant,
    /// When the last sample was taken, in ns after `epoch` plus one (0: never).
    last: AtomicU64,
}

impl Sampler {
    pub(super) fn new(epoch: Instant) -> Self {
        Sampler {
            epoch,
            last: AtomicU64::new(0),
        }
    }

    /// Whether the answer seen `now` is sampled (as brpc: one thread wins per interval).
    pub(super) fn take(&self, now: Instant, interval: Duration) -> bool {
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now_ns.saturating_sub(last) < interval.as_nanos() as u64 {
            return false;
        }
        self.last
            .compare_exchange(last, now_ns, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// The samples of one window.
#[derive(Debug)]
pub(super) struct Window {
    pub(super) start: Option<Instant>,
    pub(super) succeeded: u32,
    pub(super) failed: u32,
    pub(super) succeeded_latency: Duration,
    pub(super) failed_latency: Duration,
}

/// What a sample did to its window.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Closed {
    /// The window goes on.
    No,
    /// Its time is up with too few samples: throw it away (reset it).
    Thin,
    /// It is full (or its time is up with enough samples): use it, then reset it.
    Full,
}

impl Window {
    pub(super) fn new() -> Self {
        Window {
            start: None,
            succeeded: 0,
            failed: 0,
            succeeded_latency: Duration::ZERO,
            failed_latency: Duration::ZERO,
        }
    }

    /// Starts over at `now`.
    pub(super) fn reset(&mut self, now: Instant) {
        *self = Window::new();
        self.start = Some(now);
    }

    /// How long the window has run at `now`.
    pub(super) fn age(&self, now: Instant) -> Duration {
        self.start
            .map_or(Duration::ZERO, |start| now.saturating_duration_since(start))
    }

    /// Adds one sample taken `now`, and says whether the window is done (brpc's rules).
    pub(super) fn add(
        &mut self,
        sampling: &Sampling,
        error_code: i32,
        latency: Duration,
        now: Instant,
    ) -> Closed {
        self.start.get_or_insert(now);
        if error_code == 0 {
            self.succeeded += 1;
            self.succeeded_latency += latency;
        } else if sampling.punish_errors {
            self.failed += 1;
            self.failed_latency += latency;
        }
        let samples = self.succeeded + self.failed;
        let age = self.age(now);
        if samples < sampling.min_samples {
            return if age >= sampling.window {
                Closed::Thin
            } else {
                Closed::No
            };
        }
        if age < sampling.window && samples < sampling.max_samples {
            return Closed::No;
        }
        Closed::Full
    }

    /// The window's average latency in µs, failures weighed by `fail_punish_ratio` (brpc's
    /// formula: failed time punishes the successes). Needs a success.
    pub(super) fn average_latency_us(&self, fail_punish_ratio: f64) -> f64 {
        let punish = self.failed_latency.as_micros() as f64 * fail_punish_ratio;
        ((punish + self.succeeded_latency.as_micros() as f64) / f64::from(self.succeeded.max(1)))
            .ceil()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLING: Sampling = Sampling {
        window: Duration::from_secs(1),
        min_samples: 3,
        max_samples: 5,
        punish_errors: true,
    };

    #[test]
    fn one_sample_per_interval() {
        let epoch = Instant::now();
        let sampler = Sampler::new(epoch);
        let interval = Duration::from_micros(100);
        assert!(sampler.take(epoch, interval));
        assert!(!sampler.take(epoch + Duration::from_micros(50), interval));
        assert!(sampler.take(epoch + Duration::from_micros(100), interval));
        assert!(!sampler.take(epoch + Duration::from_micros(199), interval));
    }

    #[test]
    fn a_window_closes_full_or_at_its_time_and_thin_ones_are_dropped() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut window = Window::new();
        for i in 0..4 {
            assert_eq!(window.add(&SAMPLING, 0, ms(10), start + ms(i)), Closed::No);
        }
        assert_eq!(window.add(&SAMPLING, 0, ms(10), start), Closed::Full);
        assert_eq!(window.average_latency_us(1.0), 10_000.0);

        // Too few samples when the time is up: thrown away.
        let mut window = Window::new();
        window.add(&SAMPLING, 0, ms(10), start);
        assert_eq!(
            window.add(&SAMPLING, 0, ms(10), start + ms(1_000)),
            Closed::Thin
        );
        window.reset(start + ms(1_000));
        assert_eq!(
            (window.succeeded, window.start),
            (0, Some(start + ms(1_000)))
        );

        // Enough samples when the time is up: used; failures punish the average.
        let mut window = Window::new();
        window.add(&SAMPLING, 0, ms(10), start);
        window.add(&SAMPLING, 0, ms(10), start);
        assert_eq!(
            window.add(&SAMPLING, 1008, ms(20), start + ms(1_000)),
            Closed::Full
        );
        assert_eq!(window.average_latency_us(1.0), 20_000.0);
        assert_eq!(window.average_latency_us(0.5), 15_000.0);
    }
}
