//! Where time-dependent logic reads the time ([`Clock`]), so its tests can move time forward
//! instead of sleeping through it.

use std::time::Instant;

/// A source of the current time.
pub(crate) trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock: what everything uses outside tests.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A wall-clock time in UTC, as a calendar shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CivilTime {
    pub(crate) year: i64,
    pub(crate) month: i64,
    pub(crate) day: i64,
    pub(crate) hour: u64,
    pub(crate) minute: u64,
    pub(crate) second: u64,
    pub(crate) micros: u32,
}

impl CivilTime {
    /// `time` in UTC (times before 1970 read as 1970-01-01).
    pub(crate) fn utc(time: std::time::SystemTime) -> Self {
        let since = time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs();
        let (days, rest) = (secs / 86_400, secs % 86_400);
        // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        CivilTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rest / 3600,
            minute: rest / 60 % 60,
            second: rest % 60,
            micros: since.subsec_micros(),
        }
    }
}

/// A clock that moves only when a test moves it.
#[cfg(test)]
#[derive(Clone, Debug)]
pub(crate) struct ManualClock(std::sync::Arc<std::sync::Mutex<Instant>>);

#[cfg(test)]
impl ManualClock {
    /// A clock standing at the present.
    pub(crate) fn new() -> Self {
        ManualClock(std::sync::Arc::new(std::sync::Mutex::new(Instant::now())))
    }

    /// Moves the clock `by` forward.
    pub(crate) fn advance(&self, by: std::time::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}
