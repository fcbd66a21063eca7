//! Whether rpcz records, and how many new traces a second it starts: a call whose caller
//! traces it is always traced (brpc's `IsTraceable`), others only while rpcz is on and below
//! the rate (brpc's collector speed limit).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// rpcz's default limit on new traces a second (brpc collects about as many).
pub const DEFAULT_MAX_SPANS_PER_SECOND: u32 = 1000;

static ENABLED: AtomicBool = AtomicBool::new(false);
static MAX_PER_SECOND: AtomicU32 = AtomicU32::new(DEFAULT_MAX_SPANS_PER_SECOND);
/// Nanoseconds after [`epoch`] before which no new trace starts.
static NEXT_AT: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Turns rpcz on or off for the whole process (brpc's `-enable_rpcz`; off by default). Off,
/// no span is kept, and no call starts a trace; a call whose caller traces it still passes
/// the trace on to the calls it makes.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether rpcz is on.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Sets how many calls a second may start a new trace while rpcz is on (at least 1; calls
/// their callers trace are not counted). Spaced evenly: at 1000 a second, one call a
/// millisecond at most.
pub fn set_max_spans_per_second(max: u32) {
    MAX_PER_SECOND.store(max.max(1), Ordering::Relaxed);
}

/// How many calls a second may start a new trace.
pub fn max_spans_per_second() -> u32 {
    MAX_PER_SECOND.load(Ordering::Relaxed)
}

/// Whether a call its caller does not trace starts a trace now.
pub(crate) fn start_new_trace() -> bool {
    if !is_enabled() {
        return false;
    }
    let interval = 1_000_000_000 / u64::from(max_spans_per_second());
    let now = epoch().elapsed().as_nanos() as u64;
    let next = NEXT_AT.load(Ordering::Relaxed);
    now >= next
        && NEXT_AT
            .compare_exchange(next, now + interval, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Serializes the tests that turn rpcz on and off.
    pub(crate) static SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn off_starts_nothing_and_on_starts_at_most_the_rate() {
        let _switch = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
        set_enabled(false);
        assert!((0..1000).all(|_| !start_new_trace()));
        set_enabled(true);
        set_max_spans_per_second(10);
        let began = Instant::now();
        let mut started = 0;
        while began.elapsed().as_millis() < 300 {
            started += u32::from(start_new_trace());
        }
        // 0.3 s at 10 a second: 3, give or take the one at the start.
        assert!((2..=5).contains(&started), "{started}");
        set_max_spans_per_second(0);
        assert_eq!(max_spans_per_second(), 1);
        set_max_spans_per_second(DEFAULT_MAX_SPANS_PER_SECOND);
        set_enabled(false);
    }
}
