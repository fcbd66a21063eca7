//! Whether a server may take calls, and how it comes back: brpc's health checking.
//!
//! A server is *isolated* when connecting to it fails, when its connection breaks, or when its
//! circuit breaker trips. Load balancers skip isolated servers. One probe task per isolated
//! server waits (the breaker's isolation time, or one health-check interval) and then tries to
//! connect every interval; the first connect that succeeds puts the server back, with that
//! connection ready for calls.
//!
//! The state lives in the process-wide endpoint, so every channel that shares the endpoint
//! sees it, as every brpc channel sees a shared socket's state.

use std::sync::atomic::{AtomicBool, Ordering};

use super::circuit_breaker::CircuitBreaker;

/// An endpoint's health: isolated or not, its probe, its breaker.
#[derive(Debug, Default)]
pub(crate) struct Health {
    isolated: AtomicBool,
    breaker: CircuitBreaker,
}

impl Health {
    /// Whether the server is out of rotation.
    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Acquire)
    }

    /// Takes the server out of rotation; true if it was in (so the caller starts the probe).
    pub(crate) fn isolate(&self) -> bool {
        !self.isolated.swap(true, Ordering::AcqRel)
    }

    /// Puts the server back in rotation.
    pub(crate) fn revive(&self) {
        self.breaker.reset();
        self.isolated.store(false, Ordering::Release);
    }

    /// The endpoint's circuit breaker.
    pub(crate) fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}
