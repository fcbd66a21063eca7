//! brpc's "constant" limiter.

use std::time::Duration;

use super::ConcurrencyLimiter;

/// At most a fixed number at once: brpc's "constant" limiter.
#[derive(Debug)]
pub(super) struct ConstantLimiter(pub(super) usize);

impl ConcurrencyLimiter for ConstantLimiter {
    fn on_requested(&self, concurrency: usize, _timeout: Option<Duration>) -> bool {
        concurrency <= self.0
    }

    fn on_responded(&self, _error_code: i32, _latency: Duration) {}

    fn max_concurrency(&self) -> usize {
        self.0
    }
}
