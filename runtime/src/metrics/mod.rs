//! Metrics, Brisk's bvar: counters, gauges, maxers and latency recorders that any thread
//! records into without a lock or an allocation (each thread writes cells of its own, combined
//! when read), with windows over the last seconds, minute and hour.
//!
//! Servers record every method of every protocol this way (count, errors, latency,
//! concurrency) under brpc's names (`rpc_server_<port>_<method>_...`), and the server's
//! builtin pages show them: `/vars` lists every exposed metric, `/status` each method, and
//! `/brpc_metrics` (or `/metrics`) exports them for Prometheus. Users expose their own:
//!
//! ```
//! use std::time::Duration;
//! use brisk::metrics::{self, Counter, LatencyRecorder};
//!
//! let lookups = Counter::new();
//! let lookup_latency = LatencyRecorder::new();
//! // Shown while these live: `/vars/cache_lookups`, `/vars/cache_lookup_*`.
//! let _shown = (
//!     metrics::expose("cache_lookups", &lookups).unwrap(),
//!     metrics::expose("cache_lookup_latency", &lookup_latency).unwrap(),
//! );
//! lookups.inc();
//! lookup_latency.record(Duration::from_micros(120));
//! assert_eq!(lookup_latency.count(), 1);
//! ```
//!
//! Windows move once a second, driven by one background thread (bvar's sampler): a window
//! of N seconds (up to 60) is made of the last N whole seconds, a longer one of the minute
//! under way and whole minutes before it (up to 60).

mod call_status;
mod counter;
mod gauge;
mod histogram;
mod latency;
mod maxer;
mod process;
pub mod prometheus;
mod registry;
mod shard;
pub(crate) mod window;

pub use counter::Counter;
pub use gauge::{Gauge, PassiveGauge};
pub use latency::{LatencyRecorder, LatencyStats, PERCENTILES};
pub use maxer::Maxer;
pub use registry::{
    describe, expose, find, to_underscored_name, Exposed, Metric, LATENCY_WINDOW_SECS,
};

pub(crate) use call_status::CallStatus;
pub(crate) use process::expose_process_metrics;
pub(crate) use registry::matches_filter;
