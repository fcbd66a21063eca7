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
