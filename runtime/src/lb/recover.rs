//! Cluster-recovery throttling for `rr` and `random`: brpc's `ClusterRecoverPolicy`.
//!
//! When a cluster loses servers, the health check brings them back one at a time, and the
//! first ones back take all the traffic meant for the whole cluster, which can knock them over
//! again before the rest return. With `min_working_instances=N hold_seconds=S` the balancer
//! throttles instead:
//!
//! * It counts the available servers, at most once per 10 ms (one caller recounts, O(n);
//!   everyone else reads the cached count from an atomic).
//! * Recovery starts when that count reaches 0 (brpc's trigger) or falls to below `N`.
//! * While recovering with `q` servers available, a call goes through with probability
//!   `q / N`; the others fail at once with [`errno::EREJECT`], which the call path does not
//!   retry. With `q >= N` every call goes through; with `q == 0` the inner balancer answers
//!   (with [`errno::EHOSTDOWN`]).
//! * Recovery ends once the count has held steady (and above 0) for `S` seconds, as in brpc:
//!   servers coming back one by one restart the wait each time, and a cluster that settles
//!   below `N` servers gets all its traffic again after `S` seconds rather than being throttled
//!   for good.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use super::random::{dedup, fast_rand_below};
use super::{Backend, CallFeedback, LbParams, LoadBalancer, SelectIn};
use crate::clock::{Clock, SystemClock};
use crate::{errno, Status};

/// How long a count of the available servers is reused.
const RECOUNT_MS: u64 = 10;
/// `counted_at_ms` when the servers must be recounted.
const STALE: u64 = u64::MAX;

/// `min_working_instances` and `hold_seconds`, both positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoverPolicy {
    /// Servers needed to carry the whole load.
    min_working: u64,
    /// How long the count of available servers must hold steady to end recovery.
    hold_ms: u64,
}

impl RecoverPolicy {
    /// Takes `min_working_instances=` and `hold_seconds=` from `params`: `None` when neither
    /// is given, [`errno::EINVAL`] when only one is, or either is not a positive number.
    pub(crate) fn from_params(params: &mut LbParams) -> Result<Option<Self>, Status> {
        let min_working = params.take_u64("min_working_instances")?;
        let hold_seconds = params.take_u64("hold_seconds")?;
        match (min_working, hold_seconds) {
            (None, None) => Ok(None),
            (Some(min_working), Some(hold_seconds)) if min_working > 0 && hold_seconds > 0 => {
                Ok(Some(RecoverPolicy {
                    min_working,
                    hold_ms: hold_seconds.saturating_mul(1000),
                }))
            }
            _ => Err(Status::new(
                errno::EINVAL,
                "min_working_instances and hold_seconds must both be given, as positive numbers",
            )),
        }
    }
}

/// A balancer throttled while its cluster recovers. See the [module docs](self).
pub(crate) struct Recovering<C = SystemClock> {
    inner: Box<dyn LoadBalancer>,
    policy: RecoverPolicy,
    /// The servers, to count the available ones.
    servers: ArcSwap<Vec<Backend>>,
    /// Time zero of the `_ms` fields.
    epoch: Instant,
    recovering: AtomicBool,
    /// Available servers at the last count.
    usable: AtomicU64,
    /// When the servers were last counted, or [`STALE`].
    counted_at_ms: AtomicU64,
    /// When the count last changed.
    changed_at_ms: AtomicU64,
    clock: C,
}

impl Recovering {
    /// `inner`, throttled by `policy`.
    pub(crate) fn new(inner: Box<dyn LoadBalancer>, policy: RecoverPolicy) -> Self {
        Self::with_clock(inner, policy, SystemClock)
    }
}

impl<C: Clock> Recovering<C> {
    /// [`new`](Recovering::new), reading the time from `clock`.
    pub(crate) fn with_clock(
        inner: Box<dyn LoadBalancer>,
        policy: RecoverPolicy,
        clock: C,
    ) -> Self {
        Recovering {
            inner,
            policy,
            servers: ArcSwap::from_pointee(Vec::new()),
            epoch: clock.now(),
            recovering: AtomicBool::new(false),
            usable: AtomicU64::new(0),
            counted_at_ms: AtomicU64::new(STALE),
            changed_at_ms: AtomicU64::new(0),
            clock,
        }
    }

    fn now_ms(&self) -> u64 {
        let elapsed = self.clock.now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_millis()).unwrap_or(STALE - 1)
    }

    /// [`select`](LoadBalancer::select) at time `now_ms`.
    fn select_at(&self, input: &SelectIn<'_>, now_ms: u64) -> Result<Backend, Status> {
        let usable = self.usable_count(now_ms);
        let min = self.policy.min_working;
        if self.recovering.load(Ordering::Relaxed)
            && usable > 0
            && usable < min
            && fast_rand_below(min) >= usable
        {
            return Err(Status::new(
                errno::EREJECT,
                format!(
                    "rejected while the cluster recovers: {usable} servers available, \
                     min_working_instances={min}"
                ),
            ));
        }
        self.inner.select(input)
    }

    /// The available servers, counted at most once per [`RECOUNT_MS`]; a recount also moves
    /// the recovery state along.
    fn usable_count(&self, now_ms: u64) -> u64 {
        let counted_at = self.counted_at_ms.load(Ordering::Acquire);
        if counted_at != STALE && now_ms.saturating_sub(counted_at) < RECOUNT_MS {
            return self.usable.load(Ordering::Acquire);
        }
        // One caller recounts; the others go on with the last count.
        if self
            .counted_at_ms
            .compare_exchange(counted_at, now_ms, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return self.usable.load(Ordering::Acquire);
        }
        let servers = self.servers.load();
        let usable = servers.iter().filter(|b| b.is_available()).count() as u64;
        let previous = self.usable.swap(usable, Ordering::AcqRel);
        self.observe(servers.len(), previous, usable, now_ms);
        usable
    }

    /// Starts or ends recovery on a new count.
    fn observe(&self, listed: usize, previous: u64, usable: u64, now_ms: u64) {
        if usable != previous {
            self.changed_at_ms.store(now_ms, Ordering::Release);
        }
        let min = self.policy.min_working;
        let lost = listed > 0 && (usable == 0 || (usable < previous && usable < min));
        if lost {
            if !self.recovering.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    usable,
                    min_working_instances = min,
                    "cluster lost servers: throttling calls until it recovers"
                );
            }
        } else if usable > 0
            && self.recovering.load(Ordering::Acquire)
            && now_ms.saturating_sub(self.changed_at_ms.load(Ordering::Acquire))
                >= self.policy.hold_ms
            && self.recovering.swap(false, Ordering::AcqRel)
        {
            tracing::info!(usable, "cluster recovered: calls are no longer throttled");
        }
    }
}

impl<C: Clock> fmt::Debug for Recovering<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovering")
            .field("inner", &self.inner)
            .field("min_working_instances", &self.policy.min_working)
            .field("hold_ms", &self.policy.hold_ms)
            .field("recovering", &self.recovering.load(Ordering::Relaxed))
            .field("usable", &self.usable.load(Ordering::Relaxed))
            .finish()
    }
}

impl<C: Clock> LoadBalancer for Recovering<C> {
    fn reset(&self, servers: &[Backend]) {
        self.servers.store(Arc::new(dedup(servers)));
        self.inner.reset(servers);
        self.counted_at_ms.store(STALE, Ordering::Release);
    }

    fn select(&self, input: &SelectIn<'_>) -> Result<Backend, Status> {
        self.select_at(input, self.now_ms())
    }

    fn feedback(&self, feedback: &CallFeedback<'_>) {
        self.inner.feedback(feedback);
    }
}

#[cfg(test)]
mod tests {
    use super::super::random::testing::*;
    use super::super::round_robin::RoundRobin;
    use super::*;
    use crate::clock::ManualClock;

    fn policy(spec: &str) -> Result<Option<RecoverPolicy>, Status> {
        let mut params = LbParams::parse(spec, spec)?;
        let policy = RecoverPolicy::from_params(&mut params)?;
        params.finish()?;
        Ok(policy)
    }

    fn recovering(min_working: u64, hold_seconds: u64) -> Recovering {
        let policy = RecoverPolicy {
            min_working,
            hold_ms: hold_seconds * 1000,
        };
        Recovering::new(Box::new(RoundRobin::new()), policy)
    }

    /// The share of `count` selects at `now_ms` that were rejected; panics on other errors.
    fn rejected(lb: &Recovering, now_ms: u64, count: usize) -> f64 {
        let mut rejected = 0;
        for _ in 0..count {
            match lb.select_at(&any(), now_ms) {
                Ok(_) => {}
                Err(status) if status.code() == errno::EREJECT => rejected += 1,
                Err(status) => panic!("{status:?}"),
            }
        }
        rejected as f64 / count as f64
    }

    #[test]
    fn params() {
        assert_eq!(policy("").unwrap(), None);
        assert_eq!(
            policy("min_working_instances=3 hold_seconds=10").unwrap(),
            Some(RecoverPolicy {
                min_working: 3,
                hold_ms: 10_000
            })
        );
        for bad in [
            "min_working_instances=3",
            "hold_seconds=10",
            "min_working_instances=0 hold_seconds=10",
            "min_working_instances=3 hold_seconds=0",
            "min_working_instances=-3 hold_seconds=1",
            "min_working_instances=3 hold_seconds=x",
        ] {
            assert_eq!(policy(bad).unwrap_err().code(), errno::EINVAL, "{bad}");
        }
        assert!(super::super::from_spec("rr:min_working_instances=3 hold_seconds=10").is_ok());
        assert!(super::super::from_spec("random:min_working_instances=3 hold_seconds=1").is_ok());
        for bad in [
            "wrr:min_working_instances=3 hold_seconds=10",
            "rr:min_working_instances=3",
        ] {
            let err = super::super::from_spec(bad).unwrap_err();
            assert_eq!(err.code(), errno::EINVAL, "{bad}");
        }
    }

    #[test]
    fn throttles_while_the_cluster_recovers() {
        let servers = backends(6);
        let lb = recovering(4, 1);
        lb.reset(&servers);
        assert_eq!(rejected(&lb, 0, 1000), 0.0);

        // 2 of the 4 needed: about half the calls are rejected.
        for backend in &servers[..4] {
            isolate(backend);
        }
        let share = rejected(&lb, 20, 20_000);
        assert!((share - 0.5).abs() < 0.02, "{share}");
        assert!(lb.recovering.load(Ordering::Relaxed));

        // One more back: about a quarter.
        revive(&servers[0]);
        let share = rejected(&lb, 40, 20_000);
        assert!((share - 0.25).abs() < 0.02, "{share}");
        let share = rejected(&lb, 1030, 20_000);
        assert!((share - 0.25).abs() < 0.02, "{share}");

        // The count held steady for hold_seconds (it is recounted every 10 ms): recovery ends.
        assert_eq!(rejected(&lb, 1045, 1000), 0.0);
        assert!(!lb.recovering.load(Ordering::Relaxed));

        // Losing another server starts it again; all back means no more rejections, and
        // recovery ends hold_seconds later.
        isolate(&servers[0]);
        let share = rejected(&lb, 1100, 20_000);
        assert!((share - 0.5).abs() < 0.02, "{share}");
        for backend in &servers {
            revive(backend);
        }
        assert_eq!(rejected(&lb, 1200, 1000), 0.0);
        assert!(lb.recovering.load(Ordering::Relaxed));
        assert_eq!(rejected(&lb, 2200, 1000), 0.0);
        assert!(!lb.recovering.load(Ordering::Relaxed));
    }

    #[test]
    fn a_cluster_coming_back_from_nothing_is_ramped_up() {
        let servers = backends(5);
        let lb = recovering(5, 10);
        lb.reset(&servers);
        assert_eq!(rejected(&lb, 0, 100), 0.0);
        for backend in &servers {
            isolate(backend);
        }
        // Nothing to send to: the inner balancer's EHOSTDOWN, not EREJECT.
        let err = lb.select_at(&any(), 20).unwrap_err();
        assert_eq!(err.code(), errno::EHOSTDOWN);
        assert!(lb.recovering.load(Ordering::Relaxed));
        // Servers come back one by one; each restarts the hold.
        let mut now = 20;
        for (back, backend) in servers.iter().enumerate().take(4) {
            revive(backend);
            now += 5_000;
            let share = rejected(&lb, now, 20_000);
            let expected = 1.0 - (back + 1) as f64 / 5.0;
            assert!((share - expected).abs() < 0.02, "{back}: {share}");
        }
        revive(&servers[4]);
        assert_eq!(rejected(&lb, now + 5_000, 1000), 0.0);
        assert!(lb.recovering.load(Ordering::Relaxed));
        assert_eq!(rejected(&lb, now + 15_000, 1000), 0.0);
        assert!(!lb.recovering.load(Ordering::Relaxed));
    }

    #[test]
    fn a_smaller_cluster_is_not_throttled_until_it_loses_servers() {
        // Fewer servers than min_working_instances from the start: nothing was lost.
        let servers = backends(3);
        let lb = recovering(5, 1);
        lb.reset(&servers);
        assert_eq!(rejected(&lb, 0, 1000), 0.0);
        isolate(&servers[0]);
        let share = rejected(&lb, 20, 20_000);
        assert!((share - 0.6).abs() < 0.02, "{share}");
        // The empty list before the first reset is no outage either.
        let lb = recovering(5, 1);
        assert_eq!(
            lb.select_at(&any(), 0).unwrap_err().code(),
            errno::EHOSTDOWN
        );
        lb.reset(&servers[1..]);
        assert_eq!(rejected(&lb, 1, 1000), 0.0);
    }

    #[test]
    fn recovers_as_time_passes() {
        let clock = ManualClock::new();
        let mut params =
            LbParams::parse("random", "min_working_instances=2 hold_seconds=1").unwrap();
        let policy = RecoverPolicy::from_params(&mut params).unwrap().unwrap();
        let inner = Box::new(super::super::random::Random::new());
        let lb = Recovering::with_clock(inner, policy, clock.clone());
        let servers = backends(4);
        lb.reset(&servers);
        assert!(lb.select(&any()).is_ok());
        for backend in &servers[..3] {
            isolate(backend);
        }
        clock.advance(std::time::Duration::from_millis(30));
        let mut rejected = 0;
        for _ in 0..4_000 {
            match lb.select(&any()) {
                Ok(picked) => assert_eq!(picked, servers[3]),
                Err(status) => {
                    assert_eq!(status.code(), errno::EREJECT);
                    rejected += 1;
                }
            }
        }
        assert!(rejected > 1_500 && rejected < 2_500, "{rejected}");
        for backend in &servers {
            revive(backend);
        }
        clock.advance(std::time::Duration::from_millis(30));
        assert!(lb.select(&any()).is_ok());
        // Not yet: the count must hold for hold_seconds.
        clock.advance(std::time::Duration::from_millis(900));
        lb.select(&any()).unwrap();
        assert!(format!("{lb:?}").contains("recovering: true"), "{lb:?}");
        clock.advance(std::time::Duration::from_millis(150));
        for _ in 0..1_000 {
            lb.select(&any()).unwrap();
        }
        assert!(format!("{lb:?}").contains("recovering: false"), "{lb:?}");
    }

    #[test]
    fn recovering_handles_availability() {
        // min_working_instances=1: throttling never rejects (q/1 >= 1 whenever q > 0).
        check_availability(&recovering(1, 1), &backends(4));
    }

    #[test]
    fn recovering_survives_concurrent_resets() {
        let a = backends(4);
        let b = backends(8)[2..].to_vec();
        check_concurrent_reset(&recovering(3, 1), &a, &b);
    }
}
