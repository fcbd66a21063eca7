//! brpc's circuit breaker: isolates a server whose calls fail too often.
//!
//! Every call that ends on a server is reported to the server's [`CircuitBreaker`] (one per
//! endpoint, shared by every channel using it). The breaker keeps two *error recorders* over
//! the same calls: a short window (1500 calls, at most 10% errors) that reacts fast to a server
//! that suddenly starts failing, and a long window (3000 calls, at most 5% errors) that catches a
//! smaller but lasting error rate. When either says "unhealthy", the breaker *trips*: it reports
//! `false` and the caller isolates the server. It stays tripped, answering `false`, until
//! [`CircuitBreaker::reset`] (the server came back).
//!
//! # One window (brpc's `EmaErrorRecorder`)
//!
//! Latencies are in microseconds. With `alpha = epsilon^(1/window)` (`epsilon` = 0.02, so a
//! sample's weight falls to 2% after `window` further successes):
//!
//! - **success**: `ema_latency = ema_latency*alpha + latency*(1-alpha)` (the first success sets
//!   it outright); then `error_cost *= alpha`, or `error_cost = 0` once it is below
//!   `min_error_cost` (500 µs). A success is always healthy.
//! - **failure**: `error_cost += min(latency, 2*ema_latency)` (the latency alone while no success
//!   has set `ema_latency`; `2` is `max_failed_latency_multiple`), so a timeout costs at most
//!   twice a normal call. The window is healthy while
//!   `error_cost <= ema_latency * window * percent/100 * (1+epsilon)`: the errors' cost may not
//!   exceed the time `percent`% of the window's calls would take.
//! - **warm-up**: until the window has seen `window` samples its EMAs mean little, so it judges
//!   by a plain count instead: a failure is unhealthy once `window*percent/100` failures (150 for
//!   both default windows) have already been counted. As in brpc, the failure *after* the
//!   allowed 150 trips, i.e. the 151st; the EMAs are still updated during warm-up.
//! - **reset**: the error cost goes to 0. A window still warming up starts its warm-up (and its
//!   latency) afresh; a warmed-up window keeps its latency average, which stays a fair baseline
//!   for the revived server, and judges by error cost at once (brpc's `Reset`).
//!
//! Responses with [`ELIMIT`](crate::errno::ELIMIT) are ignored entirely: the server is shedding
//! load, which says the whole cluster is busy rather than that this server is broken, and its
//! quick answers would skew the latency average.
//!
//! The long window is consulted first and the short one only if the long one is healthy, as in
//! brpc, so the short window does not see the call that trips the long one.
//!
//! # Isolation duration
//!
//! Computed once, when the breaker trips (brpc's `MarkAsBroken`/`UpdateIsolationDuration`): if
//! the trip comes less than `max_isolation_duration` (30 s) after the previous
//! [`reset`](CircuitBreaker::reset), the previous duration doubles, capped at 30 s; otherwise
//! (including the first trip ever) it is `min_isolation_duration` (100 ms). So a server that
//! keeps failing right after it comes back is isolated for 100 ms, 200 ms, 400 ms, ... 30 s.
//!
//! # Concurrency
//!
//! [`CircuitBreaker::on_call_end`] runs on every call of every channel sharing the server, so it
//! takes no lock. The EMAs are `f64`s stored as their bits in `AtomicU64`s and updated by
//! compare-and-swap loops ([`AtomicU64::fetch_update`]). `f64` rather than brpc's integer
//! microseconds: integer EMAs truncate at every step, which drags the latency average of fast
//! (few-µs) calls downwards and makes the error-cost decay stall at small values; an `f64`
//! update is as cheap and the CAS covers the whole read-modify-write. Counters are plain atomic
//! integers. The tripped flag and the isolation duration share one `AtomicU64`
//! (`duration_ms << 1 | tripped`), so whoever sees the breaker tripped also sees the duration
//! computed by the trip. Concurrent updates may interleave (a decay and a cost addition race
//! only through the CAS, the warm-up counter can overshoot by the number of racing threads);
//! like brpc's, the statistics are approximate under contention, never corrupt.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::errno;

/// The circuit breaker's tunables. [`Default`] gives brpc's flag defaults.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CircuitBreakerOptions {
    /// Calls in the short window (brpc `-circuit_breaker_short_window_size`, 1500).
    pub(crate) short_window_size: u32,
    /// Highest error percentage the short window allows (`..._short_window_error_percent`, 10).
    pub(crate) short_window_error_percent: u32,
    /// Calls in the long window (`-circuit_breaker_long_window_size`, 3000).
    pub(crate) long_window_size: u32,
    /// Highest error percentage the long window allows (`..._long_window_error_percent`, 5).
    pub(crate) long_window_error_percent: u32,
    /// An error cost below this decays straight to zero (`-circuit_breaker_min_error_cost_us`,
    /// 500 µs).
    pub(crate) min_error_cost: Duration,
    /// A failed call costs at most this many times the average latency
    /// (`-circuit_breaker_max_failed_latency_mutiple`, 2).
    pub(crate) max_failed_latency_multiple: u32,
    /// The first isolation, and the one after a quiet period
    /// (`-circuit_breaker_min_isolation_duration_ms`, 100 ms).
    pub(crate) min_isolation_duration: Duration,
    /// The longest isolation, and the quiet period that resets it
    /// (`-circuit_breaker_max_isolation_duration_ms`, 30 s).
    pub(crate) max_isolation_duration: Duration,
    /// A sample's weight after a window's worth of successes: `alpha = epsilon^(1/window)`
    /// (`-circuit_breaker_epsilon_value`, 0.02).
    pub(crate) epsilon: f64,
}

impl Default for CircuitBreakerOptions {
    fn default() -> Self {
        CircuitBreakerOptions {
            short_window_size: 1500,
            short_window_error_percent: 10,
            long_window_size: 3000,
            long_window_error_percent: 5,
            min_error_cost: Duration::from_micros(500),
            max_failed_latency_multiple: 2,
            min_isolation_duration: Duration::from_millis(100),
            max_isolation_duration: Duration::from_secs(30),
            epsilon: 0.02,
        }
    }
}

/// An `f64` updated atomically: its bits in an [`AtomicU64`].
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    /// A new value.
    fn new(value: f64) -> Self {
        AtomicF64(AtomicU64::new(value.to_bits()))
    }

    /// The current value.
    fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Replaces the value.
    fn store(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// Replaces the value `v` with `f(v)` (left alone when `f` says `None`), in a CAS loop;
    /// returns the value now held.
    fn update(&self, mut f: impl FnMut(f64) -> Option<f64>) -> f64 {
        match self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                f(f64::from_bits(bits)).map(f64::to_bits)
            }) {
            Ok(old) => f(f64::from_bits(old)).unwrap_or(f64::from_bits(old)),
            Err(unchanged) => f64::from_bits(unchanged),
        }
    }
}

impl fmt::Debug for AtomicF64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.load(), f)
    }
}

/// One window: brpc's `EmaErrorRecorder` (see the module docs).
#[derive(Debug)]
struct EmaErrorRecorder {
    /// Samples in the window; also the length of the warm-up.
    window_size: u64,
    /// The EMA smoothing factor `alpha = epsilon^(1/window)`.
    alpha: f64,
    /// `window * percent/100 * (1+epsilon)`: times the latency average, the error cost allowed.
    error_budget: f64,
    /// `window * percent/100`: failures allowed during warm-up.
    warm_up_error_limit: u64,
    /// Error costs below this (µs) decay to zero.
    min_error_cost_us: f64,
    /// A failure costs at most this many latency averages.
    max_failed_latency_multiple: f64,
    /// Samples seen while warming up (stops counting at `window_size`).
    warm_up_samples: AtomicU64,
    /// Failures seen while warming up.
    warm_up_errors: AtomicU64,
    /// The decaying cost of recent failures, µs.
    ema_error_cost: AtomicF64,
    /// The average latency of successful calls, µs; 0 until the first success.
    ema_latency: AtomicF64,
}

impl EmaErrorRecorder {
    /// A window of `window_size` calls allowing `max_error_percent`% errors.
    fn new(window_size: u32, max_error_percent: u32, options: &CircuitBreakerOptions) -> Self {
        let window_size = u64::from(window_size.max(1));
        let percent = u64::from(max_error_percent.min(100));
        let epsilon = options.epsilon;
        EmaErrorRecorder {
            window_size,
            alpha: epsilon.powf(1.0 / window_size as f64),
            error_budget: window_size as f64 * (percent as f64 / 100.0) * (1.0 + epsilon),
            warm_up_error_limit: window_size * percent / 100,
            min_error_cost_us: options.min_error_cost.as_secs_f64() * 1e6,
            max_failed_latency_multiple: f64::from(options.max_failed_latency_multiple),
            warm_up_samples: AtomicU64::new(0),
            warm_up_errors: AtomicU64::new(0),
            ema_error_cost: AtomicF64::new(0.0),
            ema_latency: AtomicF64::new(0.0),
        }
    }

    /// Records a call; false if the window is now unhealthy.
    fn on_call_end(&self, failed: bool, latency_us: f64) -> bool {
        let healthy = if failed {
            self.add_error_cost(latency_us)
        } else {
            self.update_latency(latency_us);
            self.decay_error_cost();
            true
        };
        // Warming up: judge by the plain count of failures. The load keeps the counter from
        // growing forever once the window is warm.
        if self.warm_up_samples.load(Ordering::Relaxed) < self.window_size
            && self.warm_up_samples.fetch_add(1, Ordering::Relaxed) < self.window_size
        {
            // A success cannot make things worse; if the window was already unhealthy, the
            // failure that made it so has tripped the breaker.
            return !failed
                || self.warm_up_errors.fetch_add(1, Ordering::Relaxed) < self.warm_up_error_limit;
        }
        healthy
    }

    /// Folds a success's latency into the average.
    fn update_latency(&self, latency_us: f64) {
        let alpha = self.alpha;
        self.ema_latency.update(|ema| {
            Some(if ema == 0.0 {
                latency_us
            } else {
                ema * alpha + latency_us * (1.0 - alpha)
            })
        });
    }

    /// A success: the error cost decays, to zero once small.
    fn decay_error_cost(&self) {
        let (alpha, min) = (self.alpha, self.min_error_cost_us);
        self.ema_error_cost.update(|cost| {
            if cost == 0.0 {
                None
            } else if cost < min {
                Some(0.0)
            } else {
                Some(cost * alpha)
            }
        });
    }

    /// A failure: adds its (capped) latency to the error cost; true while within budget.
    fn add_error_cost(&self, latency_us: f64) -> bool {
        let ema_latency = self.ema_latency.load();
        let cost = if ema_latency > 0.0 {
            latency_us.min(ema_latency * self.max_failed_latency_multiple)
        } else {
            latency_us
        };
        let total = self.ema_error_cost.update(|c| Some(c + cost));
        total <= ema_latency * self.error_budget
    }

    /// Clears the error cost; restarts the warm-up if it had not finished.
    fn reset(&self) {
        if self.warm_up_samples.load(Ordering::Relaxed) < self.window_size {
            self.warm_up_samples.store(0, Ordering::Relaxed);
            self.warm_up_errors.store(0, Ordering::Relaxed);
            self.ema_latency.store(0.0);
        }
        self.ema_error_cost.store(0.0);
    }
}

/// The low bit of [`CircuitBreaker::state`]: the breaker has tripped.
const TRIPPED: u64 = 1;

/// [`CircuitBreaker::last_reset_ms`] before the first reset.
const NEVER: u64 = u64::MAX;

/// A server's circuit breaker, brpc's `CircuitBreaker`: two error windows, a tripped flag and
/// the isolation duration (see the module docs). Lock-free; share it by reference.
pub(crate) struct CircuitBreaker {
    /// 3000 calls at 5% by default; consulted first.
    long_window: EmaErrorRecorder,
    /// 1500 calls at 10% by default.
    short_window: EmaErrorRecorder,
    /// The first isolation, ms.
    min_isolation_ms: u64,
    /// The longest isolation and the quiet period that resets it, ms.
    max_isolation_ms: u64,
    /// `isolation_ms << 1 | TRIPPED`: one word, so the duration is current whenever the flag is.
    state: AtomicU64,
    /// When [`reset`](Self::reset) last ran, ms since `epoch`; [`NEVER`] before.
    last_reset_ms: AtomicU64,
    /// How many times the breaker has tripped (brpc's `isolated_times`, nBreak).
    isolated_times: AtomicU64,
    /// The breaker's clock starts here.
    epoch: Instant,
}

impl CircuitBreaker {
    /// A breaker with the given tunables. Window sizes below 1 count as 1, error percentages
    /// above 100 as 100, and a maximum isolation below the minimum as the minimum.
    pub(crate) fn with_options(options: CircuitBreakerOptions) -> Self {
        // Bounded so that `ms << 1` and doubling cannot overflow.
        const MAX_MS: u64 = u32::MAX as u64;
        let min_isolation_ms = (options.min_isolation_duration.as_millis() as u64).min(MAX_MS);
        let max_isolation_ms =
            (options.max_isolation_duration.as_millis() as u64).clamp(min_isolation_ms, MAX_MS);
        CircuitBreaker {
            long_window: EmaErrorRecorder::new(
                options.long_window_size,
                options.long_window_error_percent,
                &options,
            ),
            short_window: EmaErrorRecorder::new(
                options.short_window_size,
                options.short_window_error_percent,
                &options,
            ),
            min_isolation_ms,
            max_isolation_ms,
            state: AtomicU64::new(min_isolation_ms << 1),
            last_reset_ms: AtomicU64::new(NEVER),
            isolated_times: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Records one call's end; false when the breaker trips (isolate the server), and on every
    /// call while it stays tripped, until [`reset`](Self::reset). `error_code` 0 is a success,
    /// [`ELIMIT`](errno::ELIMIT) is ignored (true), anything else is a failure.
    pub(crate) fn on_call_end(&self, error_code: i32, latency: Duration) -> bool {
        self.on_call_end_at(error_code, latency, || self.now_ms())
    }

    /// [`on_call_end`](Self::on_call_end) with the clock read by `now_ms` (only on a trip).
    fn on_call_end_at(
        &self,
        error_code: i32,
        latency: Duration,
        now_ms: impl FnOnce() -> u64,
    ) -> bool {
        if error_code == errno::ELIMIT {
            return true;
        }
        if self.is_tripped() {
            return false;
        }
        let failed = error_code != 0;
        let latency_us = latency.as_secs_f64() * 1e6;
        if self.long_window.on_call_end(failed, latency_us)
            && self.short_window.on_call_end(failed, latency_us)
        {
            return true;
        }
        self.trip_at(now_ms());
        false
    }

    /// Starts both windows afresh (after the server comes back) and closes the breaker.
    pub(crate) fn reset(&self) {
        self.reset_at(self.now_ms());
    }

    /// [`reset`](Self::reset) at `now_ms` on the breaker's clock.
    fn reset_at(&self, now_ms: u64) {
        self.long_window.reset();
        self.short_window.reset();
        self.last_reset_ms.store(now_ms, Ordering::Relaxed);
        self.state.fetch_and(!TRIPPED, Ordering::Release);
    }

    /// How long to isolate the server after the latest trip: 100 ms, doubling on repeated trips
    /// (see the module docs). Computed when the breaker trips; this only reads it, so any number
    /// of callers may ask.
    pub(crate) fn isolation_duration(&self) -> Duration {
        Duration::from_millis(self.state.load(Ordering::Acquire) >> 1)
    }

    /// Whether the breaker has tripped and not been reset since.
    fn is_tripped(&self) -> bool {
        self.state.load(Ordering::Acquire) & TRIPPED != 0
    }

    /// Trips the breaker at `now_ms` unless it already is, setting the isolation duration:
    /// doubled (capped) if the last reset was less than the maximum isolation ago, else the
    /// minimum.
    fn trip_at(&self, now_ms: u64) {
        let last_reset = self.last_reset_ms.load(Ordering::Relaxed);
        let repeated =
            last_reset != NEVER && now_ms.saturating_sub(last_reset) < self.max_isolation_ms;
        let (min, max) = (self.min_isolation_ms, self.max_isolation_ms);
        let tripped = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                if state & TRIPPED != 0 {
                    return None;
                }
                let isolation_ms = if repeated {
                    ((state >> 1) * 2).min(max)
                } else {
                    min
                };
                Some(isolation_ms << 1 | TRIPPED)
            })
            .is_ok();
        if tripped {
            self.isolated_times.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Milliseconds since the breaker was made.
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

impl Default for CircuitBreaker {
    /// A breaker with brpc's default tunables.
    fn default() -> Self {
        CircuitBreaker::with_options(CircuitBreakerOptions::default())
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("tripped", &self.is_tripped())
            .field("isolation_duration", &self.isolation_duration())
            .field(
                "isolated_times",
                &self.isolated_times.load(Ordering::Relaxed),
            )
            .field("short_window", &self.short_window)
            .field("long_window", &self.long_window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The latency of a healthy call in these tests.
    const L: Duration = Duration::from_millis(1);
    /// A failure's code.
    const FAIL: i32 = errno::EINTERNAL;

    /// Feeds `n` calls with `code` and `latency`; the 1-based index of the first `false`.
    fn first_trip(cb: &CircuitBreaker, n: u64, code: i32, latency: Duration) -> Option<u64> {
        (1..=n).find(|_| !cb.on_call_end(code, latency))
    }

    /// Calls on a breaker with clock `now` (ms); never consults the real clock.
    fn call_at(cb: &CircuitBreaker, code: i32, latency: Duration, now: u64) -> bool {
        cb.on_call_end_at(code, latency, || now)
    }

    /// Options with small windows: short `short`, long `long` (size, percent).
    fn small(short: (u32, u32), long: (u32, u32)) -> CircuitBreakerOptions {
        CircuitBreakerOptions {
            short_window_size: short.0,
            short_window_error_percent: short.1,
            long_window_size: long.0,
            long_window_error_percent: long.1,
            ..CircuitBreakerOptions::default()
        }
    }

    /// Trips a breaker (warm-up count) at clock `now`.
    fn trip(cb: &CircuitBreaker, now: u64) {
        while call_at(cb, FAIL, L, now) {}
        assert!(cb.is_tripped());
    }

    /// The failure count at which a warmed-up window with latency average `ema` (µs) trips
    /// when every failure costs `cost` (µs): the first `n` with `n*cost > ema*budget`.
    fn expected_burst(window: u32, percent: u32, ema: f64, cost: f64) -> u64 {
        let budget = ema * f64::from(window) * (f64::from(percent) / 100.0) * 1.02;
        (budget / cost).floor() as u64 + 1
    }

    #[test]
    fn defaults_are_brpcs() {
        let cb = CircuitBreaker::default();
        assert_eq!(cb.short_window.window_size, 1500);
        assert_eq!(cb.short_window.warm_up_error_limit, 150);
        assert_eq!(cb.long_window.window_size, 3000);
        assert_eq!(cb.long_window.warm_up_error_limit, 150);
        assert!((cb.short_window.alpha.powf(1500.0) - 0.02).abs() < 1e-12);
        assert!((cb.long_window.alpha.powf(3000.0) - 0.02).abs() < 1e-12);
        assert_eq!(cb.isolation_duration(), Duration::from_millis(100));
        assert!(!cb.is_tripped());
        assert!(format!("{cb:?}").contains("tripped: false"));
    }

    #[test]
    fn steady_successes_never_trip() {
        let cb = CircuitBreaker::default();
        for i in 0..20_000u64 {
            // Latencies between 0.5 and 2 ms.
            let latency = Duration::from_micros(500 + (i * 7919) % 1500);
            assert!(cb.on_call_end(0, latency), "success {i} tripped");
        }
        assert_eq!(cb.long_window.ema_error_cost.load(), 0.0);
        let ema = cb.short_window.ema_latency.load();
        assert!((500.0..2000.0).contains(&ema), "ema {ema}");
    }

    #[test]
    fn low_error_rate_never_trips() {
        // About 3% failures, some as slow as a timeout: below both windows' limits (brpc's
        // should_not_isolate).
        let cb = CircuitBreaker::default();
        for i in 0..30_000u64 {
            let ok = if i % 33 == 0 {
                cb.on_call_end(FAIL, L * 5)
            } else {
                cb.on_call_end(0, L)
            };
            assert!(ok, "call {i} tripped");
        }
    }

    #[test]
    fn high_error_rate_trips() {
        // Every other call fails (brpc's should_isolate), after warm-up.
        let cb = CircuitBreaker::default();
        assert_eq!(first_trip(&cb, 3000, 0, L), None);
        let mut tripped = None;
        for i in 1..=3000u64 {
            let code = if i % 2 == 0 { FAIL } else { 0 };
            if !cb.on_call_end(code, L) {
                tripped = Some(i);
                break;
            }
        }
        let i = tripped.expect("50% errors never tripped");
        assert!(i < 1000, "tripped only after {i} calls");
    }

    #[test]
    fn failing_server_trips_at_warm_up_count() {
        // Both default windows allow 150 failures while warming up; the 151st trips.
        let cb = CircuitBreaker::default();
        assert_eq!(first_trip(&cb, 1000, FAIL, L), Some(151));
        // And it stays tripped, for failures and successes alike.
        assert!(!cb.on_call_end(FAIL, L));
        assert!(!cb.on_call_end(0, L));
        assert_eq!(cb.isolated_times.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn warm_up_counts_failures_among_successes() {
        // During warm-up only the failure count matters, not the rate: 1000 successes, then
        // the 151st failure trips (sample 1151 < 1500, still warming up).
        let cb = CircuitBreaker::default();
        assert_eq!(first_trip(&cb, 1000, 0, L), None);
        assert_eq!(first_trip(&cb, 1000, FAIL, L), Some(151));
    }

    #[test]
    fn warm_up_threshold_of_each_window() {
        // Short window decides: 100 calls at 10% allows 10 failures, long 1000 at 5% allows 50.
        let cb = CircuitBreaker::with_options(small((100, 10), (1000, 5)));
        assert_eq!(first_trip(&cb, 100, FAIL, L), Some(11));
        assert_eq!(cb.short_window.warm_up_errors.load(Ordering::Relaxed), 11);

        // Long window decides: 1000 calls at 2% allows 20 failures, short 100 at 40% allows 40.
        let cb = CircuitBreaker::with_options(small((100, 40), (1000, 2)));
        assert_eq!(first_trip(&cb, 100, FAIL, L), Some(21));
        // The long window answered first, so the short one never saw the 21st failure.
        assert_eq!(cb.long_window.warm_up_errors.load(Ordering::Relaxed), 21);
        assert_eq!(cb.short_window.warm_up_errors.load(Ordering::Relaxed), 20);

        // The default windows, each on its own.
        let options = CircuitBreakerOptions::default();
        for (window, percent) in [(1500, 10), (3000, 5)] {
            let w = EmaErrorRecorder::new(window, percent, &options);
            let limit = u64::from(window * percent / 100);
            assert_eq!(limit, 150);
            for i in 1..=limit {
                assert!(w.on_call_end(true, 1000.0), "failure {i} of {window}");
            }
            assert!(
                !w.on_call_end(true, 1000.0),
                "failure {} of {window}",
                limit + 1
            );
        }
    }

    #[test]
    fn warm_up_ends_after_window_samples() {
        // Once a window has seen `window` samples (here successes at 1 ms), the failure count
        // no longer matters: the error cost decides.
        let options = CircuitBreakerOptions::default();
        let w = EmaErrorRecorder::new(100, 10, &options);
        for _ in 0..100 {
            w.on_call_end(false, 1000.0);
        }
        assert_eq!(w.warm_up_samples.load(Ordering::Relaxed), 100);
        // A warmed-up window allows its budget: 100 * 10% * 1.02 = 10.2 latencies.
        let expected = expected_burst(100, 10, 1000.0, 1000.0);
        assert_eq!(expected, 11);
        let trip = (1..=100).find(|_| !w.on_call_end(true, 1000.0));
        assert_eq!(trip, Some(expected));
        // The counter stopped at the window.
        assert_eq!(w.warm_up_samples.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn burst_after_warm_up_trips_at_expected_count() {
        let defaults = CircuitBreakerOptions::default();
        let ema = L.as_secs_f64() * 1e6;
        // (failure latency, its cost): a timeout costs at most 2 latencies; a quick failure
        // costs its own latency.
        for (latency, cost) in [
            (L * 5, 2.0 * ema),
            (L * 2, 2.0 * ema),
            (L * 7 / 10, 0.7 * ema),
            (L / 2, 0.5 * ema),
        ] {
            let cb = CircuitBreaker::default();
            // Warm both windows with successes at latency L.
            assert_eq!(first_trip(&cb, 3000, 0, L), None);
            assert!((cb.short_window.ema_latency.load() - ema).abs() < 1e-6);
            assert!((cb.long_window.ema_latency.load() - ema).abs() < 1e-6);

            let expected = expected_burst(
                defaults.short_window_size,
                defaults.short_window_error_percent,
                ema,
                cost,
            )
            .min(expected_burst(
                defaults.long_window_size,
                defaults.long_window_error_percent,
                ema,
                cost,
            ));
            let trip = first_trip(&cb, 10_000, FAIL, latency).expect("burst never tripped");
            assert!(
                (expected - 1..=expected + 1).contains(&trip),
                "latency {latency:?}: tripped at {trip}, expected {expected}"
            );
        }
        // By hand: budget 1500 * 10% * 1.02 = 153 latencies; timeouts cost 2 each: 77th trips.
        let cb = CircuitBreaker::default();
        first_trip(&cb, 3000, 0, L);
        assert_eq!(
            first_trip(&cb, 1000, errno::ERPCTIMEDOUT, L * 100),
            Some(77)
        );
    }

    #[test]
    fn error_cost_decays_with_successes() {
        let cb = CircuitBreaker::default();
        first_trip(&cb, 3000, 0, L);
        // 70 timeouts: under the 77 that trip.
        assert_eq!(first_trip(&cb, 70, FAIL, L * 10), None);
        let cost = cb.short_window.ema_error_cost.load();
        assert!((cost - 140_000.0).abs() < 1e-6, "cost {cost}");
        // One success multiplies the cost by alpha.
        assert!(cb.on_call_end(0, L));
        let alpha = cb.short_window.alpha;
        assert!((cb.short_window.ema_error_cost.load() - cost * alpha).abs() < 1e-6);
        // Enough successes bring it to exactly zero (below 500 µs it is dropped).
        assert_eq!(first_trip(&cb, 5000, 0, L), None);
        assert_eq!(cb.short_window.ema_error_cost.load(), 0.0);
        assert_eq!(cb.long_window.ema_error_cost.load(), 0.0);
        // So another 70 timeouts are fine again.
        assert_eq!(first_trip(&cb, 70, FAIL, L * 10), None);
    }

    #[test]
    fn elimit_is_ignored() {
        let cb = CircuitBreaker::default();
        assert_eq!(first_trip(&cb, 10_000, errno::ELIMIT, L), None);
        // Neither a sample nor a latency.
        for w in [&cb.short_window, &cb.long_window] {
            assert_eq!(w.warm_up_samples.load(Ordering::Relaxed), 0);
            assert_eq!(w.ema_latency.load(), 0.0);
            assert_eq!(w.ema_error_cost.load(), 0.0);
        }
        // Mixed with failures, it changes nothing: still the 151st failure.
        let mut failures = 0;
        loop {
            assert!(cb.on_call_end(errno::ELIMIT, L));
            failures += 1;
            if !cb.on_call_end(FAIL, L) {
                break;
            }
        }
        assert_eq!(failures, 151);
        // Even a tripped breaker ignores it (brpc checks ELIMIT first).
        assert!(cb.on_call_end(errno::ELIMIT, L));
    }

    #[test]
    fn reset_clears() {
        // Tripped during warm-up: the warm-up starts over.
        let cb = CircuitBreaker::default();
        assert_eq!(first_trip(&cb, 1000, FAIL, L), Some(151));
        cb.reset();
        assert!(!cb.is_tripped());
        assert!(cb.on_call_end(0, L));
        assert_eq!(cb.short_window.warm_up_samples.load(Ordering::Relaxed), 1);
        assert_eq!(first_trip(&cb, 1000, FAIL, L), Some(151));

        // Tripped after warm-up: the error cost is cleared and the latency average kept, so
        // the same burst trips at the same count.
        let cb = CircuitBreaker::default();
        first_trip(&cb, 3000, 0, L);
        assert_eq!(first_trip(&cb, 1000, FAIL, L * 10), Some(77));
        cb.reset();
        assert!(cb.on_call_end(0, L));
        assert_eq!(cb.short_window.ema_error_cost.load(), 0.0);
        assert!((cb.short_window.ema_latency.load() - 1000.0).abs() < 1e-6);
        assert_eq!(first_trip(&cb, 1000, FAIL, L * 10), Some(77));
    }

    #[test]
    fn isolation_duration_doubles_and_resets() {
        let cb = CircuitBreaker::with_options(small((10, 10), (20, 5)));
        let mut now = 1_000;
        // The first trip ever: the minimum.
        trip(&cb, now);
        assert_eq!(cb.isolation_duration(), Duration::from_millis(100));
        // Asking again, or more failing calls while tripped, changes nothing.
        assert!(!call_at(&cb, FAIL, L, now + 50));
        assert_eq!(cb.isolation_duration(), Duration::from_millis(100));
        assert_eq!(cb.isolated_times.load(Ordering::Relaxed), 1);

        // Each trip soon after the reset that ended the previous isolation doubles it, up to
        // 30 s.
        let mut expected = 100;
        for _ in 0..12 {
            now += expected;
            cb.reset_at(now);
            now += 5_000;
            trip(&cb, now);
            expected = (expected * 2).min(30_000);
            assert_eq!(cb.isolation_duration(), Duration::from_millis(expected));
        }
        assert_eq!(expected, 30_000);
        assert_eq!(cb.isolated_times.load(Ordering::Relaxed), 13);

        // A trip just under 30 s after the reset still counts as repeated...
        now += 30_000;
        cb.reset_at(now);
        trip(&cb, now + 29_999);
        assert_eq!(cb.isolation_duration(), Duration::from_millis(30_000));
        now += 29_999;
        // ... one 30 s later is a fresh start.
        cb.reset_at(now);
        trip(&cb, now + 30_000);
        assert_eq!(cb.isolation_duration(), Duration::from_millis(100));
        now += 30_000;
        // And doubles from there.
        cb.reset_at(now);
        trip(&cb, now + 1);
        assert_eq!(cb.isolation_duration(), Duration::from_millis(200));
    }

    #[test]
    fn isolation_bounds_from_options() {
        let cb = CircuitBreaker::with_options(CircuitBreakerOptions {
            min_isolation_duration: Duration::from_millis(10),
            max_isolation_duration: Duration::from_millis(25),
            ..small((10, 10), (20, 5))
        });
        trip(&cb, 0);
        assert_eq!(cb.isolation_duration(), Duration::from_millis(10));
        cb.reset_at(10);
        trip(&cb, 11);
        assert_eq!(cb.isolation_duration(), Duration::from_millis(20));
        cb.reset_at(31);
        trip(&cb, 32);
        assert_eq!(cb.isolation_duration(), Duration::from_millis(25));
        // A maximum below the minimum counts as the minimum.
        let cb = CircuitBreaker::with_options(CircuitBreakerOptions {
            min_isolation_duration: Duration::from_millis(50),
            max_isolation_duration: Duration::from_millis(5),
            ..small((0, 10), (0, 5))
        });
        assert_eq!(cb.max_isolation_ms, 50);
        assert_eq!(cb.short_window.window_size, 1);
    }

    #[test]
    fn real_clock() {
        // The public methods read the breaker's own clock: a trip right after a reset doubles.
        let cb = CircuitBreaker::with_options(small((10, 10), (20, 5)));
        assert_eq!(first_trip(&cb, 100, FAIL, L), Some(2));
        assert_eq!(cb.isolation_duration(), Duration::from_millis(100));
        cb.reset();
        assert!(first_trip(&cb, 100, FAIL, L).is_some());
        assert_eq!(cb.isolation_duration(), Duration::from_millis(200));
    }

    #[test]
    fn concurrent_calls_trip_once() {
        let cb = CircuitBreaker::default();
        let trips: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let cb = &cb;
                    s.spawn(move || {
                        let mut falses = 0;
                        for i in 0..5_000u64 {
                            let code = if (i + t) % 2 == 0 { FAIL } else { 0 };
                            let latency = Duration::from_micros(800 + (i % 400));
                            if !cb.on_call_end(code, latency) {
                                falses += 1;
                            }
                        }
                        falses
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(cb.is_tripped());
        assert!(trips.iter().sum::<u64>() > 0);
        assert_eq!(cb.isolated_times.load(Ordering::Relaxed), 1);
        assert_eq!(cb.isolation_duration(), Duration::from_millis(100));
        // 50% failures during warm-up: the 151st failure trips, so at most about 302 calls
        // (plus what raced in) were healthy before it.
        let healthy = 4 * 5_000 - trips.iter().sum::<u64>();
        assert!(healthy < 400, "{healthy} calls passed before the trip");
    }

    #[test]
    fn concurrent_successes_never_trip() {
        let cb = CircuitBreaker::default();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let cb = &cb;
                s.spawn(move || {
                    for i in 0..10_000u64 {
                        // About 3% failures per thread, well within both windows.
                        let code = if (i + t) % 33 == 0 { FAIL } else { 0 };
                        assert!(cb.on_call_end(code, L), "thread {t} call {i} tripped");
                    }
                });
            }
        });
        assert!(!cb.is_tripped());
        let ema = cb.long_window.ema_latency.load();
        assert!((ema - 1000.0).abs() < 1e-6, "ema {ema}");
    }
}
