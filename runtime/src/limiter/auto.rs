//! brpc's adaptive ("auto") concurrency limiter: it keeps a method's concurrency near
//! `max_qps × noload_latency`, the concurrency at which the method is as fast as it gets and
//! nothing queues (Little's law), explores a little above it, and now and then shrinks to
//! measure the no-load latency again. brpc's `docs/en/auto_concurrency_limiter.md` explains it;
//! this is the same algorithm with the same defaults.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::window::{Closed, Sampler, Sampling, Window};
use super::ConcurrencyLimiter;
use crate::clock::{Clock, SystemClock};
use crate::errno;

/// The knobs of [`AutoLimiter`], brpc's `auto_cl_*` flags with their defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AutoLimiterOptions {
    /// The longest a sampling window lasts (`auto_cl_sample_window_size_ms`, 1 s).
    pub sample_window: Duration,
    /// A window with fewer samples when its time is up is thrown away
    /// (`auto_cl_min_sample_count`, 100).
    pub min_sample_count: u32,
    /// A window closes early once it has this many samples (`auto_cl_max_sample_count`, 200).
    pub max_sample_count: u32,
    /// At most one answer is sampled per interval (`auto_cl_sampling_interval_ms`, 0.1 ms).
    pub sampling_interval: Duration,
    /// The limit before the first window (`auto_cl_initial_max_concurrency`, 40).
    pub initial_max_concurrency: usize,
    /// The limit never goes below this (brpc's floor is its worker count,
    /// `bthread_concurrency`; here the machine's CPUs).
    pub min_max_concurrency: usize,
    /// How often the no-load latency is measured again, with a random half of it added
    /// (`auto_cl_noload_latency_remeasure_interval_ms`, 50 s).
    pub noload_latency_remeasure_interval: Duration,
    /// The limit is cut by this while it is measured again
    /// (`auto_cl_reduce_ratio_while_remeasure`, 0.9).
    pub reduce_ratio_while_remeasure: f64,
    /// Smoothing of the no-load latency; a tenth of it smooths the max QPS
    /// (`auto_cl_alpha_factor_for_ema`, 0.1).
    pub alpha_factor_for_ema: f64,
    /// Failed answers count, their latency punishing the successes
    /// (`auto_cl_enable_error_punish`, true).
    pub enable_error_punish: bool,
    /// Weight of a failed answer's latency (`auto_cl_fail_punish_ratio`, 1.0).
    pub fail_punish_ratio: f64,
    /// The most the limit explores above `max_qps × noload_latency`
    /// (`auto_cl_max_explore_ratio`, 0.3).
    pub max_explore_ratio: f64,
    /// The least it explores, and the latency rise still taken as no load
    /// (`auto_cl_min_explore_ratio`, 0.06).
    pub min_explore_ratio: f64,
    /// How fast the explore ratio moves per window (`auto_cl_change_rate_of_explore_ratio`,
    /// 0.02).
    pub change_rate_of_explore_ratio: f64,
    /// Tolerance for latency noise when judging load
    /// (`auto_cl_latency_fluctuation_correction_factor`, 1).
    pub latency_fluctuation_correction_factor: f64,
}

impl Default for AutoLimiterOptions {
    fn default() -> Self {
        AutoLimiterOptions {
            sample_window: Duration::from_secs(1),
            min_sample_count: 100,
            max_sample_count: 200,
            sampling_interval: Duration::from_micros(100),
            initial_max_concurrency: 40,
            min_max_concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            noload_latency_remeasure_interval: Duration::from_secs(50),
            reduce_ratio_while_remeasure: 0.9,
            alpha_factor_for_ema: 0.1,
            enable_error_punish: true,
            fail_punish_ratio: 1.0,
            max_explore_ratio: 0.3,
            min_explore_ratio: 0.06,
            change_rate_of_explore_ratio: 0.02,
            latency_fluctuation_correction_factor: 1.0,
        }
    }
}

/// brpc's "auto" limiter (see the [module](super) and brpc's
/// `docs/en/auto_concurrency_limiter.md`). Made by [`MaxConcurrency::Auto`](super::MaxConcurrency::Auto)
/// or `"auto".parse()`.
pub struct AutoLimiter {
    options: AutoLimiterOptions,
    max_concurrency: AtomicUsize,
    /// Successes since the window started, all of them (not only the sampled), for the QPS.
    succeeded: AtomicU32,
    sampler: Sampler,
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

/// What the sampled windows taught.
#[derive(Debug)]
struct State {
    window: Window,
    /// The no-load latency estimate, µs (`None` until measured).
    min_latency_us: Option<f64>,
    /// The smoothed best QPS (`None` until measured).
    ema_max_qps: Option<f64>,
    explore_ratio: f64,
    /// When the no-load latency is next measured again.
    remeasure_at: Instant,
    /// While it is: samples are ignored until this, then the estimate starts over.
    reset_latency_at: Option<Instant>,
}

impl AutoLimiter {
    /// A limiter with `options`.
    pub fn new(options: AutoLimiterOptions) -> Self {
        AutoLimiter::with_clock(options, Arc::new(SystemClock))
    }

    pub(crate) fn with_clock(options: AutoLimiterOptions, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        let initial = options
            .initial_max_concurrency
            .max(options.min_max_concurrency);
        let state = State {
            window: Window::new(),
            min_latency_us: None,
            ema_max_qps: None,
            explore_ratio: options.max_explore_ratio,
            remeasure_at: next_remeasure(now, options.noload_latency_remeasure_interval),
            reset_latency_at: None,
        };
        AutoLimiter {
            max_concurrency: AtomicUsize::new(initial),
            succeeded: AtomicU32::new(0),
            sampler: Sampler::new(now),
            state: Mutex::new(state),
            clock,
            options,
        }
    }

    fn sampling(&self) -> Sampling {
        Sampling {
            window: self.options.sample_window,
            min_samples: self.options.min_sample_count,
            max_samples: self.options.max_sample_count,
            punish_errors: self.options.enable_error_punish,
        }
    }

    /// Adds a sample; a full window moves the limit.
    fn add_sample(&self, error_code: i32, latency: Duration, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reset_at) = state.reset_latency_at {
            if reset_at > now {
                // Waiting for the requests admitted before the cut to drain.
                return;
            }
            state.min_latency_us = None;
            state.reset_latency_at = None;
            state.remeasure_at =
                next_remeasure(now, self.options.noload_latency_remeasure_interval);
            self.reset_window(&mut state, now);
        }
        match state.window.add(&self.sampling(), error_code, latency, now) {
            Closed::No => return,
            Closed::Thin => {}
            Closed::Full if state.window.succeeded > 0 => {
                self.update_max_concurrency(&mut state, now)
            }
            // Every sample failed.
            Closed::Full => self.adjust(self.max_concurrency.load(Ordering::Relaxed) / 2),
        }
        self.reset_window(&mut state, now);
    }

    fn reset_window(&self, state: &mut State, now: Instant) {
        self.succeeded.store(0, Ordering::Relaxed);
        state.window.reset(now);
    }

    fn update_max_concurrency(&self, state: &mut State, now: Instant) {
        let options = &self.options;
        let succeeded = self.succeeded.load(Ordering::Relaxed);
        let avg_latency = state.window.average_latency_us(options.fail_punish_ratio);
        let window_us = (state.window.age(now).as_micros() as f64).max(1.0);
        let qps = 1_000_000.0 * f64::from(succeeded) / window_us;

        let ema = options.alpha_factor_for_ema;
        let min_latency = match state.min_latency_us {
            Some(min) if avg_latency < min => avg_latency * ema + min * (1.0 - ema),
            Some(min) => min,
            None => avg_latency,
        };
        state.min_latency_us = Some(min_latency);
        let ema = options.alpha_factor_for_ema / 10.0;
        let max_qps = match state.ema_max_qps {
            Some(max) if qps < max => qps * ema + max * (1.0 - ema),
            _ => qps,
        };
        state.ema_max_qps = Some(max_qps);

        let next = if state.remeasure_at <= now {
            // Shrink, let the queue drain, then measure the no-load latency afresh.
            state.reset_latency_at = Some(now + Duration::from_micros(2 * avg_latency as u64));
            (max_qps * min_latency / 1_000_000.0 * options.reduce_ratio_while_remeasure).ceil()
        } else {
            let step = options.change_rate_of_explore_ratio;
            let tolerance =
                options.min_explore_ratio * options.latency_fluctuation_correction_factor;
            state.explore_ratio = if avg_latency <= min_latency * (1.0 + tolerance)
                || qps <= max_qps / (1.0 + options.min_explore_ratio)
            {
                (state.explore_ratio + step).min(options.max_explore_ratio)
            } else {
                (state.explore_ratio - step).max(options.min_explore_ratio)
            };
            (min_latency * max_qps / 1_000_000.0 * (1.0 + state.explore_ratio)).trunc()
        };
        self.adjust(next as usize);
    }

    fn adjust(&self, next: usize) {
        self.max_concurrency.store(
            next.max(self.options.min_max_concurrency),
            Ordering::Relaxed,
        );
    }
}

/// When to measure the no-load latency again: `interval / 2` plus a random part of another
/// half, so that the servers of a cluster do not all shrink at once.
fn next_remeasure(now: Instant, interval: Duration) -> Instant {
    let half = interval / 2;
    let jitter = RandomState::new().hash_one(now) % (half.as_micros() as u64).max(1);
    now + half + Duration::from_micros(jitter)
}

impl ConcurrencyLimiter for AutoLimiter {
    fn on_requested(&self, concurrency: usize, _timeout: Option<Duration>) -> bool {
        concurrency <= self.max_concurrency.load(Ordering::Relaxed)
    }

    fn on_responded(&self, error_code: i32, latency: Duration) {
        if error_code == 0 {
            self.succeeded.fetch_add(1, Ordering::Relaxed);
        } else if error_code == errno::ELIMIT {
            return;
        }
        let now = self.clock.now();
        if self.sampler.take(now, self.options.sampling_interval) {
            self.add_sample(error_code, latency, now);
        }
    }

    fn max_concurrency(&self) -> usize {
        self.max_concurrency.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for AutoLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoLimiter")
            .field("max_concurrency", &self.max_concurrency())
            .field("state", &self.state.lock().map(|s| format!("{s:?}")))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limiter(remeasure_every: Duration) -> (AutoLimiter, ManualClock) {
        let clock = ManualClock::new();
        let options = AutoLimiterOptions {
            min_max_concurrency: 4,
            noload_latency_remeasure_interval: remeasure_every,
            ..AutoLimiterOptions::default()
        };
        (
            AutoLimiter::with_clock(options, Arc::new(clock.clone())),
            clock,
        )
    }

    /// Feeds `calls` answers with `code` of `latency_ms` each, spread over `over_ms`.
    fn feed(
        limiter: &AutoLimiter,
        clock: &ManualClock,
        calls: u32,
        code: i32,
        latency_ms: u64,
        over_ms: u64,
    ) {
        for _ in 0..calls {
            clock.advance(Duration::from_millis(over_ms) / calls);
            limiter.on_responded(code, Duration::from_millis(latency_ms));
        }
    }

    const NEVER: Duration = Duration::from_secs(1_000);

    #[test]
    fn settles_near_max_qps_times_noload_latency() {
        let (limiter, clock) = limiter(NEVER);
        assert_eq!(limiter.max_concurrency(), 40);
        // 200 answers of 10 ms in 100 ms: 2,000 QPS at the no-load latency. The limit is
        // 2,000 × 10 ms explored by 30%.
        feed(&limiter, &clock, 200, 0, 10, 100);
        assert_eq!(limiter.max_concurrency(), 26);
        assert!(limiter.on_requested(26, None));
        assert!(!limiter.on_requested(27, None));
        // Latency rising at the same QPS (queueing): the exploring shrinks toward 6%.
        for _ in 0..20 {
            feed(&limiter, &clock, 200, 0, 14, 100);
        }
        assert_eq!(limiter.max_concurrency(), 21, "{limiter:?}");
        // Back to the no-load latency: it explores up again.
        for _ in 0..20 {
            feed(&limiter, &clock, 200, 0, 10, 100);
        }
        assert_eq!(limiter.max_concurrency(), 26, "{limiter:?}");
    }

    #[test]
    fn ignores_refusals_and_halves_on_all_failures() {
        let (limiter, clock) = limiter(NEVER);
        feed(&limiter, &clock, 1_000, errno::ELIMIT, 0, 1_000);
        assert_eq!(limiter.max_concurrency(), 40);
        feed(&limiter, &clock, 200, errno::EINTERNAL, 1, 100);
        assert_eq!(limiter.max_concurrency(), 20);
    }

    #[test]
    fn thin_windows_are_dropped_and_the_floor_holds() {
        let (limiter, clock) = limiter(NEVER);
        // 50 answers in 2 s: every window is too thin to use.
        feed(&limiter, &clock, 50, 0, 1, 2_000);
        assert_eq!(limiter.max_concurrency(), 40);
        // A trickle at 100 QPS of 1 ms: the limit would be 0.13, the floor holds it at 4.
        feed(&limiter, &clock, 200, 0, 1, 2_000);
        assert_eq!(limiter.max_concurrency(), 4);
    }

    #[test]
    fn remeasures_the_noload_latency_by_shrinking() {
        let (limiter, clock) = limiter(Duration::from_secs(2));
        feed(&limiter, &clock, 200, 0, 10, 100);
        assert_eq!(limiter.max_concurrency(), 26);
        // Past the remeasure time (1–2 s): the limit drops to 90% of qps × latency (the first
        // answer only closes the stale window), samples are ignored for two latencies, then
        // the no-load latency is measured from scratch.
        clock.advance(Duration::from_secs(2));
        feed(&limiter, &clock, 201, 0, 10, 100);
        assert_eq!(limiter.max_concurrency(), 19, "{limiter:?}");
        assert!(limiter.state.lock().unwrap().reset_latency_at.is_some());
        clock.advance(Duration::from_millis(100));
        feed(&limiter, &clock, 201, 0, 5, 100);
        let state = limiter.state.lock().unwrap();
        assert_eq!(state.min_latency_us, Some(5_000.0), "{state:?}");
    }
}
