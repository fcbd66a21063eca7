//! Gauges: a value set from code ([`Gauge`]), or read when shown ([`PassiveGauge`], bvar's
//! `PassiveStatus`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A value that goes up and down; cloning gives another handle on the same value.
///
/// ```
/// let queued = brisk::metrics::Gauge::new();
/// queued.add(5);
/// queued.sub(2);
/// assert_eq!(queued.get(), 3);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// A gauge at 0.
    pub fn new() -> Gauge {
        Gauge::default()
    }

    /// Sets the value.
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n`.
    pub fn sub(&self, n: i64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The value now.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value computed each time it is shown, by a function (bvar's `PassiveStatus`).
///
/// ```
/// let started = std::time::Instant::now();
/// let uptime = brisk::metrics::PassiveGauge::new(move || started.elapsed().as_secs_f64());
/// assert!(uptime.get() >= 0.0);
/// ```
#[derive(Clone)]
pub struct PassiveGauge(Arc<dyn Fn() -> f64 + Send + Sync>);

impl std::fmt::Debug for PassiveGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PassiveGauge").field(&self.get()).finish()
    }
}

impl PassiveGauge {
    /// A gauge whose value is `read()`.
    pub fn new(read: impl Fn() -> f64 + Send + Sync + 'static) -> PassiveGauge {
        PassiveGauge(Arc::new(read))
    }

    /// The value now.
    pub fn get(&self) -> f64 {
        (self.0)()
    }
}
