//! Policies a channel consults on the call path: when to retry ([`RetryPolicy`]) and when to
//! send a backup request ([`BackupRequestPolicy`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Controller, Status};

/// Decides whether a failed attempt is tried again (brpc's `RetryPolicy`). Retries go to a
/// server the call has not tried yet when the channel reaches a cluster, and only happen while
/// the call's deadline has not passed and `max_retry` allows.
///
/// The default, [`DefaultRetryPolicy`], retries broken and refused connections, connect
/// timeouts, a stopping server (ELOGOFF) and EOVERCROWDED — never timeouts, cancellations,
/// EREJECT or errors the server's handler returned.
///
/// ```
/// use brisk::{errno, Controller, RetryPolicy, Status};
///
/// /// Also retry when a server says it is over its concurrency limit.
/// #[derive(Debug)]
/// struct RetryOnLimit;
///
/// impl RetryPolicy for RetryOnLimit {
///     fn do_retry(&self, status: &Status, _cntl: &Controller) -> bool {
///         status.code() == errno::ELIMIT || status.is_retryable()
///     }
/// }
/// let channel = brisk::Channel::builder().retry_policy(RetryOnLimit);
/// ```
pub trait RetryPolicy: Send + Sync + fmt::Debug + 'static {
    /// Whether the attempt that failed with `status` should be retried. `cntl` tells how many
    /// retries were made ([`Controller::retried_count`]).
    fn do_retry(&self, status: &Status, cntl: &Controller) -> bool;
}

/// brpc's default: [`Status::is_retryable`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultRetryPolicy;

impl RetryPolicy for DefaultRetryPolicy {
    fn do_retry(&self, status: &Status, _cntl: &Controller) -> bool {
        status.is_retryable()
    }
}

/// Decides when a call sends a backup request (brpc's `BackupRequestPolicy`): after
/// [`backup_delay`](BackupRequestPolicy::backup_delay) without an answer, the same request goes
/// to another server and the first answer wins. A backup uses one retry.
pub trait BackupRequestPolicy: Send + Sync + fmt::Debug + 'static {
    /// How long to wait for an answer before sending a backup, or `None` for no backup.
    fn backup_delay(&self, cntl: &Controller) -> Option<Duration>;

    /// Asked when the delay has passed: whether to send the backup now.
    fn do_backup(&self, cntl: &Controller) -> bool {
        let _ = cntl;
        true
    }

    /// Told when a call that consulted this policy ends.
    fn on_call_end(&self, cntl: &Controller) {
        let _ = cntl;
    }
}

/// Backup requests after a fixed delay, for at most a share of calls (brpc's
/// `CreateRateLimitedBackupPolicy`): once backups exceed `max_backup_ratio` (default 0.1) of
/// the calls seen in the last `window` (default 10 s), calls wait without one.
///
/// ```
/// use std::time::Duration;
/// let policy = brisk::RateLimitedBackupPolicy::new(Duration::from_millis(2));
/// let channel = brisk::Channel::builder().backup_request_policy(policy);
/// ```
#[derive(Debug)]
pub struct RateLimitedBackupPolicy {
    delay: Duration,
    max_backup_ratio: f64,
    window: Duration,
    counts: Mutex<WindowCounts>,
    /// calls and backups in the current window, packed as (calls << 32 | backups) for a
    /// lock-free fast path
    current: AtomicU64,
}

#[derive(Debug)]
struct WindowCounts {
    started: Instant,
    /// The previous full window's calls and backups, so the ratio does not reset to zero at
    /// every window boundary.
    previous: (u64, u64),
}

impl RateLimitedBackupPolicy {
    /// Backups after `delay`, at most 10% of calls over a 10 s window.
    pub fn new(delay: Duration) -> Self {
        RateLimitedBackupPolicy {
            delay,
            max_backup_ratio: 0.1,
            window: Duration::from_secs(10),
            counts: Mutex::new(WindowCounts {
                started: Instant::now(),
                previous: (0, 0),
            }),
            current: AtomicU64::new(0),
        }
    }

    /// Sets the largest share of calls that may send a backup (clamped to 0..=1).
    pub fn max_backup_ratio(mut self, ratio: f64) -> Self {
        self.max_backup_ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self
    }

    /// Sets the window the ratio is measured over (clamped to 1 s..=3600 s, as brpc).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.clamp(Duration::from_secs(1), Duration::from_secs(3600));
        self
    }

    fn roll_window(&self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.started.elapsed() >= self.window {
            let packed = self.current.swap(0, Ordering::AcqRel);
            counts.previous = (packed >> 32, packed & 0xffff_ffff);
            counts.started = Instant::now();
        }
    }

    fn ratio_allows_backup(&self) -> bool {
        self.roll_window();
        let (prev_calls, prev_backups) = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .previous;
        let packed = self.current.load(Ordering::Acquire);
        let calls = prev_calls + (packed >> 32);
        let backups = prev_backups + (packed & 0xffff_ffff);
        calls == 0 || ((backups + 1) as f64) <= self.max_backup_ratio * calls as f64
    }
}

impl BackupRequestPolicy for RateLimitedBackupPolicy {
    fn backup_delay(&self, _cntl: &Controller) -> Option<Duration> {
        Some(self.delay)
    }

    fn do_backup(&self, _cntl: &Controller) -> bool {
        if self.ratio_allows_backup() {
            self.current.fetch_add(1, Ordering::AcqRel);
            true
        } else {
            false
        }
    }

    fn on_call_end(&self, _cntl: &Controller) {
        self.current.fetch_add(1 << 32, Ordering::AcqRel);
    }
}

/// A fixed backup delay for every call, as `ChannelOptions::backup_request` sets.
#[derive(Debug)]
pub(crate) struct FixedBackupDelay(pub(crate) Duration);

impl BackupRequestPolicy for FixedBackupDelay {
    fn backup_delay(&self, _cntl: &Controller) -> Option<Duration> {
        Some(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno;

    #[test]
    fn default_retry_policy_is_brpcs() {
        let cntl = Controller::new();
        let policy = DefaultRetryPolicy;
        assert!(policy.do_retry(&Status::new(errno::EEOF, ""), &cntl));
        assert!(policy.do_retry(&Status::new(errno::ECONNREFUSED, ""), &cntl));
        assert!(!policy.do_retry(&Status::new(errno::ERPCTIMEDOUT, ""), &cntl));
        assert!(!policy.do_retry(&Status::new(errno::EREJECT, ""), &cntl));
        assert!(!policy.do_retry(&Status::new(errno::EREQUEST, ""), &cntl));
    }

    #[test]
    fn rate_limited_backups_stay_under_the_ratio() {
        let policy = RateLimitedBackupPolicy::new(Duration::from_millis(1));
        let cntl = Controller::new();
        let mut backups = 0;
        for _ in 0..1000 {
            // Every call wants a backup.
            if policy.do_backup(&cntl) {
                backups += 1;
            }
            policy.on_call_end(&cntl);
        }
        assert!(
            (90..=101).contains(&backups),
            "{backups} backups in 1000 calls"
        );
        let strict = RateLimitedBackupPolicy::new(Duration::from_millis(1)).max_backup_ratio(0.0);
        strict.on_call_end(&cntl);
        assert!(!strict.do_backup(&cntl));
    }
}
