//! Concurrency limiters: how many requests of one method a server runs at once, and which it
//! refuses with [`ELIMIT`](crate::errno::ELIMIT) — brpc's `ConcurrencyLimiter` and its
//! limiters by name.
//!
//! A method's limit is a [`MaxConcurrency`], given to
//! [`ServerBuilder::max_concurrency_of`](crate::ServerBuilder::max_concurrency_of) or changed
//! at run time with [`Server::set_max_concurrency_of`](crate::Server::set_max_concurrency_of):
//!
//! | value | limiter | refuses a request when |
//! |---|---|---|
//! | `0`, `"unlimited"` | none | never |
//! | `N`, `"N"` | constant | N requests of the method are running already |
//! | `"auto"` | [`AutoLimiter`] | the method's concurrency is past what keeps its latency near the no-load latency |
//! | `"timeout"` | [`TimeoutLimiter`] | the method's average latency is past the request's timeout |
//! | [`MaxConcurrency::Custom`] | yours | your [`ConcurrencyLimiter`] says so |
//!
//! A refused request is answered at once with ELIMIT `Rejected by <method>'s
//! ConcurrencyLimiter, concurrency=N` (HTTP 503, gRPC `RESOURCE_EXHAUSTED`), which clients retry
//! on another server of a cluster.
//!
//! ```no_run
//! # async fn run(builder: brisk::ServerBuilder) -> Result<(), brisk::Error> {
//! use brisk::limiter::MaxConcurrency;
//!
//! let server = builder
//!     .max_concurrency_of("example.EchoService.Echo", MaxConcurrency::Auto(Default::default()))
//!     .max_concurrency_of("example.EchoService.Sleep", 100)
//!     .start("127.0.0.1:8000")
//!     .await?;
//! // Limiters by name, as brpc's flags give them:
//! server.set_max_concurrency_of("example.EchoService.Sleep", "timeout".parse::<MaxConcurrency>()?)?;
//! # Ok(())
//! # }
//! ```

mod auto;
mod constant;
mod max_concurrency;
mod timeout;
mod window;

use std::time::Duration;

pub use auto::{AutoLimiter, AutoLimiterOptions};
pub use max_concurrency::MaxConcurrency;
pub use timeout::{TimeoutLimiter, TimeoutLimiterOptions};

/// Decides which requests of one method run, from how many are running and how the method's
/// past requests went: brpc's `ConcurrencyLimiter`.
///
/// One limiter serves one method; the server calls it from many threads at once.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use brisk::limiter::ConcurrencyLimiter;
///
/// /// Runs at most 10 at once, and none while the last answer failed.
/// #[derive(Default)]
/// struct TenUnlessFailing {
///     last_code: AtomicU64,
/// }
///
/// impl ConcurrencyLimiter for TenUnlessFailing {
///     fn on_requested(&self, concurrency: usize, _timeout: Option<Duration>) -> bool {
///         concurrency <= 10 && self.last_code.load(Ordering::Relaxed) == 0
///     }
///     fn on_responded(&self, error_code: i32, _latency: Duration) {
///         if error_code != brisk::errno::ELIMIT {
///             self.last_code.store(error_code as u64, Ordering::Relaxed);
///         }
///     }
///     fn max_concurrency(&self) -> usize {
///         10
///     }
/// }
/// ```
pub trait ConcurrencyLimiter: Send + Sync + 'static {
    /// Whether a request may run. `concurrency` is the method's requests in flight, this one
    /// included; `timeout` is the time its caller gave it, when the caller said. A request
    /// refused is answered ELIMIT at once.
    fn on_requested(&self, concurrency: usize, timeout: Option<Duration>) -> bool;

    /// One request answered: `error_code` is 0 on success, [`ELIMIT`](crate::errno::ELIMIT)
    /// for one this limiter refused, another code for a failure; `latency` is the time from
    /// its admission to its answer. Called for every request `on_requested` saw.
    fn on_responded(&self, error_code: i32, latency: Duration);

    /// The limit now (0: none), for display and for
    /// [`Server::max_concurrency_of`](crate::Server::max_concurrency_of).
    fn max_concurrency(&self) -> usize;
}
