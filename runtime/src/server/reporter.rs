//! [`HealthReporter`]: what a server says of its own health (brpc's `HealthReporter`), on its
//! `/health` page and through the gRPC health service.

/// A server's health as its reporter sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Whether the server should get calls: `/health` answers 200 and gRPC health `SERVING`
    /// while it does, 503 and `NOT_SERVING` when not.
    pub serving: bool,
    /// What `/health` shows.
    pub text: String,
}

impl Health {
    /// Serving, with `/health` showing `OK` (what a server without a reporter says).
    pub fn ok() -> Health {
        Health {
            serving: true,
            text: "OK".to_owned(),
        }
    }

    /// Not serving, saying why.
    pub fn not_serving(why: impl Into<String>) -> Health {
        Health {
            serving: false,
            text: why.into(),
        }
    }
}

/// Decides a server's health each time it is asked (a `/health` request or a gRPC health
/// check), as brpc's `HealthReporter`: a closure returning [`Health`] is one.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use brisk::{Health, Server};
///
/// // Out of rotation while the cache warms up.
/// let warm = Arc::new(AtomicBool::new(false));
/// let ready = Arc::clone(&warm);
/// let builder = Server::builder().health_reporter(move || {
///     if ready.load(Ordering::Relaxed) {
///         Health::ok()
///     } else {
///         Health::not_serving("warming up")
///     }
/// });
/// # let _ = builder;
/// ```
pub trait HealthReporter: Send + Sync + 'static {
    /// The server's health now.
    fn report(&self) -> Health;
}

impl<F: Fn() -> Health + Send + Sync + 'static> HealthReporter for F {
    fn report(&self) -> Health {
        self()
    }
}
