//! The exposed metrics in Prometheus's text exposition format (version 0.0.4), as brpc's
//! `/brpc_metrics` writes them: counters as counters, other values as gauges, and a latency
//! recorder as a summary named by its prefix (quantiles over the last 10 s, `_sum` and
//! `_count` over the process's life, µs) beside gauges for its QPS, average and maximum.

use std::fmt::Write;

use super::latency::PERCENTILES;
use super::registry::{all, format_float, latency_prefix, Metric, LATENCY_WINDOW_SECS};

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every exposed metric in Prometheus's text format.
///
/// ```
/// let counter = brisk::metrics::Counter::new();
/// let _shown = brisk::metrics::expose("doc_prometheus_total", &counter).unwrap();
/// counter.add(2);
/// let text = brisk::metrics::prometheus::render();
/// assert!(text.contains("# TYPE doc_prometheus_total counter\ndoc_prometheus_total 2\n"));
/// ```
pub fn render() -> String {
    let mut out = String::with_capacity(4096);
    for (name, metric) in all() {
        match &metric {
            Metric::Counter(c) => family(&mut out, &name, "counter", &c.get().to_string()),
            Metric::Gauge(g) => family(&mut out, &name, "gauge", &g.get().to_string()),
            Metric::Maxer(m) => family(&mut out, &name, "gauge", &m.get().to_string()),
            Metric::Passive(p) => family(&mut out, &name, "gauge", &format_float(p.get())),
            Metric::Latency(recorder) => {
                let prefix = latency_prefix(&name);
                let stats = recorder.stats(LATENCY_WINDOW_SECS);
                let _ = writeln!(out, "# HELP {prefix} latency in microseconds");
                let _ = writeln!(out, "# TYPE {prefix} summary");
                for (q, value) in PERCENTILES.iter().zip(stats.percentiles_us) {
                    let _ = writeln!(out, "{prefix}{{quantile=\"{q}\"}} {value}");
                }
                let _ = writeln!(out, "{prefix}{{quantile=\"1\"}} {}", stats.max_us);
                let _ = writeln!(out, "{prefix}_sum {}", recorder.sum_us());
                let _ = writeln!(out, "{prefix}_count {}", recorder.count());
                family(
                    &mut out,
                    &format!("{prefix}_latency"),
                    "gauge",
                    &stats.avg_us.to_string(),
                );
                family(
                    &mut out,
                    &format!("{prefix}_max_latency"),
                    "gauge",
                    &stats.max_us.to_string(),
                );
                family(
                    &mut out,
                    &format!("{prefix}_qps"),
                    "gauge",
                    &format_float(stats.qps.round()),
                );
            }
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, value: &str) {
    let _ = write!(out, "# HELP {name}\n# TYPE {name} {kind}\n{name} {value}\n");
}
