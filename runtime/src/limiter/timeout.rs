//! brpc's "timeout" concurrency limiter: it refuses a request when the method's recent average
//! latency is already past the time the request's caller gave it, since that request would
//! most likely be answered too late to be of use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::window::{Closed, Sampler, Sampling, Window};
use super::ConcurrencyLimiter;
use crate::clock::{Clock, SystemClock};
use crate::errno;

/// The knobs of [`TimeoutLimiter`]: brpc's `TimeoutConcurrencyConf` and `timeout_cl_*` flags,
/// with their defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TimeoutLimiterOptions {
    /// The timeout of a request whose caller gave none (`timeout_cl_default_timeout_ms`,
    /// 500 ms).
    pub timeout: Duration,
    /// A hard limit besides (`timeout_cl_max_concurrency`, 100).
    pub max_concurrency: usize,
    /// The average latency assumed before the first window (`timeout_cl_initial_avg_latency_us`,
    /// 500 µs).
    pub initial_avg_latency: Duration,
    /// The longest a sampling window lasts (`timeout_cl_sample_window_size_ms`, 1 s).
    pub sample_window: Duration,
    /// A window with fewer samples when its time is up is thrown away
    /// (`timeout_cl_min_sample_count`, 100).
    pub min_sample_count: u32,
    /// A window closes early once it has this many samples (`timeout_cl_max_sample_count`,
    /// 200).
    pub max_sample_count: u32,
    /// At most one answer is sampled per interval (`timeout_cl_sampling_interval_ms`, 0.1 ms).
    pub sampling_interval: Duration,
    /// Failed answers count, their latency punishing the successes
    /// (`timeout_cl_enable_error_punish`, true).
    pub enable_error_punish: bool,
    /// Weight of a failed answer's latency (`timeout_cl_fail_punish_ratio`, 1.0).
    pub fail_punish_ratio: f64,
}

impl Default for TimeoutLimiterOptions {
    fn default() -> Self {
        TimeoutLimiterOptions {
            timeout: Duration::from_millis(500),
            max_concurrency: 100,
            initial_avg_latency: Duration::from_micros(500),
            sample_window: Duration::from_secs(1),
            min_sample_count: 100,
            max_sample_count: 200,
            sampling_interval: Duration::from_micros(100),
            enable_error_punish: true,
            fail_punish_ratio: 1.0,
        }
    }
}

/// brpc's "timeout" limiter: admits a request while the method's average latency (sampled in
/// windows as [`AutoLimiter`](super::AutoLimiter) samples) is under the request's timeout and
/// fewer than `max_concurrency` run; always admits a lone request, so the average can recover.
/// Made by [`MaxConcurrency::Timeout`](super::MaxConcurrency::Timeout) or `"timeout".parse()`.
pub struct TimeoutLimiter {
    options: TimeoutLimiterOptions,
    /// The method's average latency, µs.
    avg_latency_us: AtomicU64,
    sampler: Sampler,
    window: Mutex<Window>,
    clock: Arc<dyn Clock>,
}

impl TimeoutLimiter {
    /// A limiter with `options`.
    pub fn new(options: TimeoutLimiterOptions) -> Self {
        TimeoutLimiter::with_clock(options, Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(options: TimeoutLimiterOptions, clock: Arc<dyn Clock>) -> Self {
        TimeoutLimiter {
            avg_latency_us: AtomicU64::new(options.initial_avg_latency.as_micros() as u64),
            sampler: Sampler::new(clock.now()),
            window: Mutex::new(Window::new()),
            clock,
            options,
        }
    }

    /// The method's average latency as last measured.
    pub fn average_latency(&self) -> Duration {
        Duration::from_micros(self.avg_latency_us.load(Ordering::Relaxed))
    }

    fn add_sample(&self, error_code: i32, latency: Duration, now: Instant) {
        let sampling = Sampling {
            window: self.options.sample_window,
            min_samples: self.options.min_sample_count,
            max_samples: self.options.max_sample_count,
            punish_errors: self.options.enable_error_punish,
        };
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        match window.add(&sampling, error_code, latency, now) {
            Closed::No => return,
            Closed::Thin => {}
            Closed::Full if window.succeeded > 0 => {
                let average = window.average_latency_us(self.options.fail_punish_ratio);
                self.avg_latency_us.store(average as u64, Ordering::Relaxed);
            }
            // Every sample failed.
            Closed::Full => {
                let doubled = self
                    .avg_latency_us
                    .load(Ordering::Relaxed)
                    .saturating_mul(2);
                self.avg_latency_us.store(doubled, Ordering::Relaxed);
            }
        }
        window.reset(now);
    }
}

impl ConcurrencyLimiter for TimeoutLimiter {
    fn on_requested(&self, concurrency: usize, timeout: Option<Duration>) -> bool {
        let timeout = timeout.unwrap_or(self.options.timeout);
        concurrency == 1
            || (concurrency <= self.options.max_concurrency
                && u128::from(self.avg_latency_us.load(Ordering::Relaxed)) < timeout.as_micros())
    }

    fn on_responded(&self, error_code: i32, latency: Duration) {
        if error_code == errno::ELIMIT {
            return;
        }
        let now = self.clock.now();
        if self.sampler.take(now, self.options.sampling_interval) {
            self.add_sample(error_code, latency, now);
        }
    }

    fn max_concurrency(&self) -> usize {
        self.options.max_concurrency
    }
}

impl std::fmt::Debug for TimeoutLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutLimiter")
            .field("options", &self.options)
            .field("average_latency", &self.average_latency())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn answer(
        limiter: &TimeoutLimiter,
        clock: &ManualClock,
        calls: u32,
        code: i32,
        latency: Duration,
    ) {
        for _ in 0..calls {
            clock.advance(Duration::from_millis(1));
            limiter.on_responded(code, latency);
        }
    }

    #[test]
    fn refuses_what_the_average_latency_says_would_be_late() {
        let clock = ManualClock::new();
        let limiter =
            TimeoutLimiter::with_clock(TimeoutLimiterOptions::default(), Arc::new(clock.clone()));
        let ms = Duration::from_millis;
        // Before any window: 500 µs assumed, so a 1 ms timeout is met.
        assert!(limiter.on_requested(2, Some(ms(1))));
        answer(&limiter, &clock, 200, 0, ms(30));
        assert_eq!(limiter.average_latency(), ms(30));
        assert!(!limiter.on_requested(2, Some(ms(30))));
        assert!(limiter.on_requested(2, Some(ms(31))));
        // No timeout given: 500 ms.
        assert!(limiter.on_requested(2, None));
        // A lone request always runs; past max_concurrency nothing else does.
        assert!(limiter.on_requested(1, Some(ms(1))));
        assert!(limiter.on_requested(100, None));
        assert!(!limiter.on_requested(101, None));
        // Refusals do not count; failures punish; all failing doubles the average.
        answer(&limiter, &clock, 500, errno::ELIMIT, ms(1));
        assert_eq!(limiter.average_latency(), ms(30));
        answer(&limiter, &clock, 100, 0, ms(10));
        answer(&limiter, &clock, 100, errno::EINTERNAL, ms(10));
        assert_eq!(limiter.average_latency(), ms(20));
        answer(&limiter, &clock, 200, errno::EINTERNAL, ms(10));
        assert_eq!(limiter.average_latency(), ms(40));
    }
}
