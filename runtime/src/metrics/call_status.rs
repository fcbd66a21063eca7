//! A method's figures (brpc's `MethodStatus`): calls answered, errors by code, latency and
//! concurrency — a server's for each method it serves, a channel's for each method it calls —
//! exposed under brpc's names (`<prefix>_count`, `_error`, `_latency`, `_concurrency`, ...).

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Counter, Exposed, LatencyRecorder, Metric, PassiveGauge};

/// Distinct error codes counted apart per method; further codes count as "other".
const CODE_SLOTS: usize = 8;

/// One method's figures.
pub(crate) struct CallStatus {
    /// Latencies of the calls answered without error (brpc counts calls this way).
    pub(crate) latency: LatencyRecorder,
    /// Calls answered with an error.
    pub(crate) errors: Counter,
    /// Errors by code.
    codes: [CodeCount; CODE_SLOTS],
    /// Errors whose code found no slot.
    other_codes: AtomicU64,
    /// Requests running now.
    pub(crate) concurrency: AtomicUsize,
    /// Bytes of request messages and attachments: as the client sent them (compressed if they
    /// were), as the server read them (before decompressing; after mapping HTTP JSON to
    /// protobuf).
    pub(crate) request_bytes: Counter,
    /// Bytes of response messages and attachments: as the server sent them (compressed if
    /// they were; HTTP bodies as sent, JSON or not), as the client got them (after
    /// decompressing).
    pub(crate) response_bytes: Counter,
}

#[derive(Default)]
struct CodeCount {
    /// 0 while the slot is free.
    code: AtomicI32,
    count: AtomicU64,
}

impl Default for CallStatus {
    fn default() -> Self {
        CallStatus {
            latency: LatencyRecorder::new(),
            errors: Counter::new(),
            codes: Default::default(),
            other_codes: AtomicU64::new(0),
            concurrency: AtomicUsize::new(0),
            request_bytes: Counter::new(),
            response_bytes: Counter::new(),
        }
    }
}

impl CallStatus {
    /// Records a request answered with `code` (0: success) after `latency`.
    #[inline]
    pub(crate) fn on_responded(&self, code: i32, latency: Duration) {
        if code == 0 {
            self.latency.record(latency);
        } else {
            self.errors.inc();
            self.count_code(code);
        }
    }

    fn count_code(&self, code: i32) {
        for slot in &self.codes {
            let held = slot.code.load(Ordering::Relaxed);
            let mine = held == code
                || (held == 0
                    && match slot.code.compare_exchange(
                        0,
                        code,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => true,
                        Err(now) => now == code,
                    });
            if mine {
                slot.count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.other_codes.fetch_add(1, Ordering::Relaxed);
    }

    /// Errors by code, most frequent first; code -1 stands for the codes past the slots.
    pub(crate) fn errors_by_code(&self) -> Vec<(i32, u64)> {
        let mut codes: Vec<(i32, u64)> = self
            .codes
            .iter()
            .filter_map(|slot| {
                let code = slot.code.load(Ordering::Relaxed);
                let count = slot.count.load(Ordering::Relaxed);
                (code != 0 && count > 0).then_some((code, count))
            })
            .collect();
        let other = self.other_codes.load(Ordering::Relaxed);
        if other > 0 {
            codes.push((-1, other));
        }
        codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        codes
    }

    /// Exposes the figures as `<prefix>_count`, `_error`, `_concurrency` and the latency
    /// recorder's names; a name taken already is skipped (logged).
    pub(crate) fn expose(self: &Arc<Self>, prefix: &str) -> Vec<Exposed> {
        let concurrency = {
            let status = Arc::clone(self);
            PassiveGauge::new(move || status.concurrency.load(Ordering::Relaxed) as f64)
        };
        let named: [(String, Metric); 5] = [
            (format!("{prefix}_latency"), (&self.latency).into()),
            (format!("{prefix}_error"), (&self.errors).into()),
            (format!("{prefix}_concurrency"), concurrency.into()),
            (
                format!("{prefix}_request_bytes"),
                (&self.request_bytes).into(),
            ),
            (
                format!("{prefix}_response_bytes"),
                (&self.response_bytes).into(),
            ),
        ];
        named
            .into_iter()
            .filter_map(|(name, metric)| match super::expose(name, metric) {
                Ok(exposed) => Some(exposed),
                Err(e) => {
                    tracing::warn!("method figures not exposed: {e}");
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno;

    #[test]
    fn successes_time_and_errors_count_by_code() {
        let status = CallStatus::default();
        status.on_responded(0, Duration::from_micros(100));
        status.on_responded(0, Duration::from_micros(300));
        for _ in 0..3 {
            status.on_responded(errno::ELIMIT, Duration::ZERO);
        }
        status.on_responded(errno::ERPCTIMEDOUT, Duration::from_millis(5));
        assert_eq!(status.latency.count(), 2);
        assert_eq!(status.latency.sum_us(), 400);
        assert_eq!(status.errors.get(), 4);
        assert_eq!(
            status.errors_by_code(),
            vec![(errno::ELIMIT, 3), (errno::ERPCTIMEDOUT, 1)]
        );
    }

    #[test]
    fn codes_past_the_slots_count_as_other() {
        let status = CallStatus::default();
        for code in 1..=(CODE_SLOTS as i32 + 2) {
            status.on_responded(1000 + code, Duration::ZERO);
        }
        let codes = status.errors_by_code();
        assert_eq!(codes.len(), CODE_SLOTS + 1);
        assert!(codes.contains(&(-1, 2)), "{codes:?}");
    }
}
