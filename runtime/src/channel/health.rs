//! Whether a server may take calls, and how it comes back: brpc's health checking.
//!
//! A server is *isolated* when connecting to it is refused (or times out three times in a row),
//! when its connection breaks, or when its circuit breaker trips. Load balancers skip isolated servers. One probe task per isolated
//! server waits (the breaker's isolation time, or one health-check interval) and then tries to
//! connect every interval; the first connect that succeeds puts the server back, with that
//! connection ready for calls.
//!
//! The state lives in the process-wide endpoint, so every channel that shares the endpoint
//! sees it, as every brpc channel sees a shared socket's state. A single-server channel with
//! one shared connection isolates its server on the first failure of that connection (brpc
//! fails the socket) and answers calls to an isolated server at once with EHOSTDOWN.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::circuit_breaker::CircuitBreaker;

/// An endpoint's health: isolated or not, its probe, its breaker.
#[derive(Debug, Default)]
pub(crate) struct Health {
    isolated: AtomicBool,
    /// Connect timeouts in a row.
    connect_timeouts: AtomicU32,
    breaker: CircuitBreaker,
}

/// Connect timeouts in a row after which a server is isolated (brpc counts three as
/// ENETUNREACH).
const CONNECT_TIMEOUTS_TO_ISOLATE: u32 = 3;

impl Health {
    /// Whether the server is out of rotation.
    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Acquire)
    }

    /// Takes the server out of rotation; true if it was in (so the caller starts the probe).
    pub(crate) fn isolate(&self) -> bool {
        !self.isolated.swap(true, Ordering::AcqRel)
    }

    /// Records a connect timeout; true when it makes [`CONNECT_TIMEOUTS_TO_ISOLATE`] in a row.
    pub(crate) fn connect_timed_out(&self) -> bool {
        self.connect_timeouts.fetch_add(1, Ordering::AcqRel) + 1 >= CONNECT_TIMEOUTS_TO_ISOLATE
    }

    /// Records an attempt that got past connecting: the run of connect timeouts ends.
    pub(crate) fn connect_succeeded(&self) {
        if self.connect_timeouts.load(Ordering::Relaxed) != 0 {
            self.connect_timeouts.store(0, Ordering::Relaxed);
        }
    }

    /// Puts the server back in rotation.
    pub(crate) fn revive(&self) {
        self.breaker.reset();
        self.connect_timeouts.store(0, Ordering::Relaxed);
        self.isolated.store(false, Ordering::Release);
    }

    /// The endpoint's circuit breaker.
    pub(crate) fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_connect_timeouts_in_a_row_isolate() {
        let health = Health::default();
        assert!(!health.connect_timed_out());
        assert!(!health.connect_timed_out());
        health.connect_succeeded();
        assert!(!health.connect_timed_out());
        assert!(!health.connect_timed_out());
        assert!(health.connect_timed_out());
        assert!(health.isolate());
        assert!(!health.isolate(), "already isolated");
        health.revive();
        assert!(!health.is_isolated());
        assert!(!health.connect_timed_out());
    }
}
