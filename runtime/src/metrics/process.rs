//! The process's own figures (brpc's `process_*` variables), read from `/proc` on Linux:
//! CPU, memory, file descriptors, threads, uptime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use super::registry::{expose, Exposed};
use super::window::{self, lock, Sampled};
use super::PassiveGauge;

/// Exposes the process's figures once per process (later calls do nothing).
pub(crate) fn expose_process_metrics() {
    static EXPOSED: LazyLock<Vec<Exposed>> = LazyLock::new(|| {
        let started = Instant::now();
        let cpu = Arc::new(CpuUsage::default());
        window::register(&cpu);
        let usage = Arc::clone(&cpu);
        let gauges: [(&str, PassiveGauge); 7] = [
            (
                "process_cpu_usage",
                PassiveGauge::new(move || f64::from_bits(usage.cores.load(Ordering::Relaxed))),
            ),
            (
                "process_cpu_seconds_total",
                PassiveGauge::new(|| cpu_seconds().unwrap_or(0.0)),
            ),
            (
                "process_memory_resident",
                PassiveGauge::new(|| status_kb("VmRSS").unwrap_or(0.0)),
            ),
            (
                "process_memory_virtual",
                PassiveGauge::new(|| status_kb("VmSize").unwrap_or(0.0)),
            ),
            (
                "process_fd_count",
                PassiveGauge::new(|| count_dir("/proc/self/fd").unwrap_or(0.0)),
            ),
            (
                "process_thread_count",
                PassiveGauge::new(|| count_dir("/proc/self/task").unwrap_or(0.0)),
            ),
            (
                "process_uptime",
                PassiveGauge::new(move || started.elapsed().as_secs_f64().floor()),
            ),
        ];
        gauges
            .into_iter()
            .filter_map(|(name, gauge)| expose(name, gauge).ok())
            .collect()
    });
    LazyLock::force(&EXPOSED);
}

/// CPU cores used over the last second.
#[derive(Default)]
struct CpuUsage {
    cores: AtomicU64,
    last: Mutex<Option<(f64, Instant)>>,
}

impl Sampled for CpuUsage {
    fn take_sample(&self) {
        let Some(seconds) = cpu_seconds() else { return };
        let now = Instant::now();
        let mut last = lock(&self.last);
        if let Some((before, at)) = *last {
            let elapsed = now.duration_since(at).as_secs_f64();
            if elapsed > 0.0 {
                let cores = ((seconds - before) / elapsed).max(0.0);
                self.cores.store(cores.to_bits(), Ordering::Relaxed);
            }
        }
        *last = Some((seconds, now));
    }
}

/// User and system CPU time of the process so far, seconds (fields 14 and 15 of
/// `/proc/self/stat`, in clock ticks: Linux's `USER_HZ`, 100 on every architecture it runs).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing `)`.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / 100.0)
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmSize`), in bytes.
fn status_kb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

fn count_dir(path: &str) -> Option<f64> {
    Some(std::fs::read_dir(path).ok()?.count() as f64)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_process_figures_read_from_proc() {
        assert!(super::cpu_seconds().is_some());
        assert!(
            super::status_kb("VmRSS").unwrap() > 1e6,
            "more than a MB resident"
        );
        assert!(super::status_kb("VmSize").unwrap() >= super::status_kb("VmRSS").unwrap());
        assert!(super::count_dir("/proc/self/fd").unwrap() >= 3.0);
        assert!(super::count_dir("/proc/self/task").unwrap() >= 1.0);
    }
}
