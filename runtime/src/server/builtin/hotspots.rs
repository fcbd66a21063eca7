//! `/hotspots/cpu?seconds=N`: where the process spends its CPU, sampled for N seconds (10 by
//! default, at most 60) at 99 Hz by pprof-rs and drawn as a flame graph (SVG; brpc's
//! `/hotspots/cpu` draws one with pprof). One profile at a time: a second request while one
//! runs is refused with 503, as brpc's "Another profiler is running".

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;

/// Samples a second.
const FREQUENCY: i32 = 99;
/// Profiles last this long unless the request says.
const DEFAULT_SECONDS: u64 = 10;
/// And at most this long.
const MAX_SECONDS: u64 = 60;

/// Set while a profile runs.
static PROFILING: AtomicBool = AtomicBool::new(false);

/// How long the query (`seconds=N`) asks to profile; a bad value is an error.
pub(super) fn seconds(query: &str) -> Result<Duration, String> {
    let asked = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("seconds="));
    let seconds = match asked {
        None => DEFAULT_SECONDS,
        Some(value) => match value.parse::<u64>() {
            Ok(n) if (1..=MAX_SECONDS).contains(&n) => n,
            _ => {
                return Err(format!(
                    "`seconds={value}' is not a whole number from 1 to {MAX_SECONDS}"
                ))
            }
        },
    };
    Ok(Duration::from_secs(seconds))
}

/// Clears [`PROFILING`] when the profile ends, however it ends.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        PROFILING.store(false, Ordering::Release);
    }
}

/// Profiles the process for `duration`: the flame graph's SVG, or (status, why not).
pub(super) async fn cpu(duration: Duration) -> Result<String, (StatusCode, String)> {
    if PROFILING
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "Another profiler is running, try again later\n".to_owned(),
        ));
    }
    let running = Running;
    // The profiler samples every thread while one thread of the blocking pool waits and then
    // symbolizes (slow): none of the runtime's threads is held.
    tokio::task::spawn_blocking(move || profile(duration, running))
        .await
        .map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Fail to profile: {e}\n"),
            )
        })?
}

/// Samples for `duration`, then draws the flame graph.
fn profile(duration: Duration, _running: Running) -> Result<String, (StatusCode, String)> {
    let failed = |e: pprof::Error| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Fail to profile: {e}\n"),
        )
    };
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        // Unwinding through these from a signal handler can deadlock (pprof-rs's advice).
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(failed)?;
    std::thread::sleep(duration);
    let report = guard.report().build().map_err(failed)?;
    drop(guard);
    let mut svg = Vec::new();
    report.flamegraph(&mut svg).map_err(failed)?;
    String::from_utf8(svg).map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Fail to draw the profile: {e}\n"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duration_is_checked() {
        assert_eq!(seconds(""), Ok(Duration::from_secs(10)));
        assert_eq!(seconds("console=1&seconds=3"), Ok(Duration::from_secs(3)));
        assert_eq!(
            seconds("seconds=0"),
            Err("`seconds=0' is not a whole number from 1 to 60".to_owned())
        );
        assert!(seconds("seconds=61").is_err());
        assert!(seconds("seconds=x").is_err());
    }
}
