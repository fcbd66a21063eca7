//! `/status`: each method's calls, errors by code, concurrency, and QPS and latency over the
//! last second, 10 seconds, minute and hour (brpc's `/status`); in HTML with charts of the
//! last minute's QPS and p99 latency, drawn as inline SVG.

use std::fmt::Write;

use super::html::escape;
use crate::errno;
use crate::metrics::CallStatus;
use crate::metrics::{LatencyStats, PERCENTILES};
use crate::server::state::Shared;

/// The windows shown: label, seconds.
const WINDOWS: [(&str, u32); 4] = [("1s", 1), ("10s", 10), ("60s", 60), ("60m", 3600)];

/// Errors as `ELIMIT×3, ERPCTIMEDOUT×1`.
fn errors_text(status: &CallStatus) -> String {
    status
        .errors_by_code()
        .into_iter()
        .map(|(code, count)| {
            let name = match code {
                -1 => "other".to_owned(),
                code => errno::name(code).map_or_else(|| code.to_string(), str::to_owned),
            };
            format!("{name}×{count}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Percentile labels in the order [`PERCENTILES`] has them: p50, p80, ...
fn percentile_labels() -> Vec<String> {
    PERCENTILES
        .iter()
        .map(|q| format!("p{}", (q * 100.0).to_string().replace('.', "")))
        .collect()
}

pub(super) fn text(shared: &Shared) -> String {
    let mut out = String::new();
    let mut current = "";
    for (service, method, status) in shared.registry.statuses() {
        if service != current {
            current = service;
            let _ = writeln!(out, "{service}");
        }
        let errors = status.errors.get();
        let _ = writeln!(out, "  {method}");
        let _ = write!(
            out,
            "    count: {}  error: {errors}",
            status.latency.count()
        );
        if errors > 0 {
            let _ = write!(out, " ({})", errors_text(status));
        }
        let _ = writeln!(
            out,
            "  concurrency: {}  max_latency: {}us",
            status
                .concurrency
                .load(std::sync::atomic::Ordering::Relaxed),
            status.latency.max_us()
        );
        let _ = write!(out, "    {:<6}{:>10}{:>10}", "window", "qps", "avg_us");
        for label in percentile_labels() {
            let _ = write!(out, "{:>10}", format!("{label}_us"));
        }
        let _ = writeln!(out, "{:>10}", "max_us");
        for (label, seconds) in WINDOWS {
            let stats = status.latency.stats(seconds);
            let _ = write!(out, "    {label:<6}{:>10.1}{:>10}", stats.qps, stats.avg_us);
            for p in stats.percentiles_us {
                let _ = write!(out, "{p:>10}");
            }
            let _ = writeln!(out, "{:>10}", stats.max_us);
        }
    }
    out
}

pub(super) fn html(shared: &Shared) -> String {
    let mut out = String::new();
    let mut current = "";
    for (service, method, status) in shared.registry.statuses() {
        if service != current {
            current = service;
            let _ = write!(out, "<h2 class=\"service\">{}</h2>", escape(service));
        }
        let errors = status.errors.get();
        let _ = write!(
            out,
            "<div class=\"method\"><h3>{}</h3><p>count: {} · error: {errors}{} · concurrency: {} · max_latency: {}us</p>",
            escape(method),
            status.latency.count(),
            if errors > 0 {
                format!(" ({})", escape(&errors_text(status)))
            } else {
                String::new()
            },
            status.concurrency.load(std::sync::atomic::Ordering::Relaxed),
            status.latency.max_us(),
        );
        out.push_str("<table><tr><th>window</th><th>qps</th><th>avg_us</th>");
        for label in percentile_labels() {
            let _ = write!(out, "<th>{label}_us</th>");
        }
        out.push_str("<th>max_us</th></tr>");
        for (label, seconds) in WINDOWS {
            let stats = status.latency.stats(seconds);
            let _ = write!(
                out,
                "<tr><td>{label}</td><td>{:.1}</td><td>{}</td>",
                stats.qps, stats.avg_us
            );
            for p in stats.percentiles_us {
                let _ = write!(out, "<td>{p}</td>");
            }
            let _ = write!(out, "<td>{}</td></tr>", stats.max_us);
        }
        out.push_str("</table>");
        let trend = status.latency.trend(false);
        out.push_str(&chart("qps, last 60 s", &trend, |s| s.qps));
        out.push_str(&chart("p99 latency (µs), last 60 s", &trend, |s| {
            s.percentiles_us[3] as f64
        }));
        out.push_str("</div>");
    }
    out
}

/// A line chart of `value` over `trend` (one point a second), as inline SVG.
fn chart(title: &str, trend: &[LatencyStats], value: impl Fn(&LatencyStats) -> f64) -> String {
    const W: f64 = 360.0;
    const H: f64 = 90.0;
    let values: Vec<f64> = trend.iter().map(value).collect();
    let top = values.iter().copied().fold(0.0, f64::max);
    let scale = if top > 0.0 { (H - 14.0) / top } else { 0.0 };
    // 60 points a minute across the width.
    let step = W / 59.0;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            // The newest point on the right edge.
            let x = W - (values.len() - 1 - i) as f64 * step;
            format!("{x:.1},{:.1}", H - v * scale)
        })
        .collect();
    format!(
        "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\"><polyline fill=\"none\" stroke=\"#2a6fdb\" stroke-width=\"1.5\" points=\"{}\"/>\
         <text x=\"4\" y=\"11\" font-size=\"10\">max {top:.0}</text></svg><figcaption>{}</figcaption></figure>",
        points.join(" "),
        escape(title)
    )
}
