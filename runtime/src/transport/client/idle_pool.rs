//! Connections a channel keeps for its next calls, closed once they sit unused too long
//! (brpc's `-idle_timeout_second` for pooled connections, 30 s by default).
//!
//! Connections go back to the pool when their call ends and are taken most recent first, so
//! a steady load reuses a few warm connections and the rest age out. A sweeper task, running
//! only while the pool holds connections that can expire, drops each at its time: dropping a
//! pooled connection closes its socket. A connection in the pool carries no call, so closing
//! it races with nothing.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// How long a pooled connection may wait unused by default (brpc's `-idle_timeout_second`).
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A server's idle connections of type `C`, at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct IdlePool<C> {
    state: Arc<Mutex<State<C>>>,
    capacity: usize,
    /// Where the sweeper runs: Brisk's background runtime, or a test's.
    runtime: Option<tokio::runtime::Handle>,
}

#[derive(Debug)]
struct State<C> {
    /// Oldest first; each with when it is closed (`None`: it waits for a call forever).
    idle: Vec<(C, Option<Instant>)>,
    /// Whether a sweeper task is running.
    sweeping: bool,
}

impl<C: Send + 'static> IdlePool<C> {
    /// An empty pool keeping up to `capacity` connections.
    pub(crate) fn new(capacity: usize) -> Self {
        IdlePool {
            state: Arc::new(Mutex::new(State {
                idle: Vec::new(),
                sweeping: false,
            })),
            capacity,
            runtime: None,
        }
    }

    /// A pool whose sweeper runs on `runtime` (tests run it on their paused clock).
    #[cfg(test)]
    fn on(capacity: usize, runtime: tokio::runtime::Handle) -> Self {
        IdlePool {
            runtime: Some(runtime),
            ..IdlePool::new(capacity)
        }
    }

    /// The most recently returned connection that has not expired and `usable` accepts, if
    /// any; the others on the way are closed.
    pub(crate) fn take(&self, usable: impl Fn(&C) -> bool) -> Option<C> {
        let now = Instant::now();
        let mut closed = Vec::new();
        let mut state = lock(&self.state);
        // Every expired or broken one goes, not only those above the one taken: they would
        // hold places in the pool.
        let mut i = 0;
        while i < state.idle.len() {
            let (conn, expires) = &state.idle[i];
            if expires.is_none_or(|at| at > now) && usable(conn) {
                i += 1;
            } else {
                closed.push(state.idle.remove(i).0);
            }
        }
        let taken = state.idle.pop().map(|(conn, _)| conn);
        drop(state);
        drop(closed); // outside the lock: closing may run a connection's drop code
        taken
    }

    /// Keeps `conn`, whose call has ended, for the next call: closed after `idle_timeout`
    /// unused (`None`: kept until taken). A full pool closes it at once.
    pub(crate) fn give_back(&self, conn: C, idle_timeout: Option<Duration>) {
        // A timeout too far to count is none.
        let expires = idle_timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let mut state = lock(&self.state);
        if state.idle.len() >= self.capacity {
            drop(state);
            drop(conn);
            return;
        }
        state.idle.push((conn, expires));
        let start_sweeper = expires.is_some() && !state.sweeping;
        if start_sweeper {
            state.sweeping = true;
        }
        drop(state);
        if start_sweeper {
            // On Brisk's own runtime: the caller's may shut down while the pool lives on
            // (endpoints are shared by every channel of the process).
            let runtime = match &self.runtime {
                Some(runtime) => runtime,
                None => crate::executor::background().handle(),
            };
            runtime.spawn(sweep(Arc::downgrade(&self.state)));
        }
    }

    /// How many connections wait in the pool.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).idle.len()
    }
}

/// Closes the pool's connections as they expire; ends when none can, or the pool is gone.
async fn sweep<C>(state: Weak<Mutex<State<C>>>) {
    loop {
        let next = {
            let Some(state) = state.upgrade() else { return };
            let now = Instant::now();
            let mut guard = lock(&state);
            let mut expired = Vec::new();
            let mut i = 0;
            while i < guard.idle.len() {
                if guard.idle[i].1.is_some_and(|at| at <= now) {
                    expired.push(guard.idle.remove(i).0);
                } else {
                    i += 1;
                }
            }
            let next = guard.idle.iter().filter_map(|(_, at)| *at).min();
            if next.is_none() {
                guard.sweeping = false;
            }
            drop(guard);
            drop(expired);
            next
        };
        match next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => return,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection that counts itself closed when dropped.
    struct Probe {
        _alive: Arc<()>,
    }

    fn probes(n: usize) -> (Arc<()>, Vec<Probe>) {
        let alive = Arc::new(());
        let probes = (0..n)
            .map(|_| Probe {
                _alive: Arc::clone(&alive),
            })
            .collect();
        (alive, probes)
    }

    fn open(alive: &Arc<()>) -> usize {
        Arc::strong_count(alive) - 1
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn unused_connections_are_closed_at_their_idle_timeout() {
        let pool = IdlePool::on(10, tokio::runtime::Handle::current());
        let (alive, mut conns) = probes(3);
        pool.give_back(conns.pop().unwrap(), Some(30 * SECOND));
        tokio::time::advance(10 * SECOND).await;
        pool.give_back(conns.pop().unwrap(), Some(30 * SECOND));
        pool.give_back(conns.pop().unwrap(), None);
        assert_eq!(open(&alive), 3);
        tokio::time::sleep(21 * SECOND).await; // the first has idled 31 s, the second 21 s
        assert_eq!(open(&alive), 2);
        tokio::time::sleep(10 * SECOND).await;
        assert_eq!(open(&alive), 1, "the one without a timeout stays");
        assert_eq!(pool.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_taken_in_time_is_not_closed_under_its_call() {
        let pool = IdlePool::on(10, tokio::runtime::Handle::current());
        let (alive, mut conns) = probes(1);
        pool.give_back(conns.pop().unwrap(), Some(30 * SECOND));
        tokio::time::sleep(29 * SECOND).await;
        let taken = pool.take(|_| true).expect("not expired yet");
        tokio::time::sleep(60 * SECOND).await;
        assert_eq!(open(&alive), 1, "a taken connection is the caller's");
        // Given back, its idle time starts again.
        pool.give_back(taken, Some(30 * SECOND));
        tokio::time::sleep(29 * SECOND).await;
        assert_eq!(open(&alive), 1);
        tokio::time::sleep(2 * SECOND).await;
        assert_eq!(open(&alive), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn take_prefers_the_latest_and_closes_the_unusable() {
        let pool = IdlePool::on(10, tokio::runtime::Handle::current());
        for n in 0..4u32 {
            pool.give_back(n, Some(30 * SECOND));
        }
        assert_eq!(pool.take(|_| true), Some(3));
        assert_eq!(pool.take(|&n| n != 2), Some(1), "2 is closed on the way");
        assert_eq!(pool.len(), 1);
        tokio::time::advance(31 * SECOND).await;
        assert_eq!(
            pool.take(|_| true),
            None,
            "0 expired, even before the sweeper ran"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_pool_closes_what_comes_back() {
        let pool = IdlePool::on(2, tokio::runtime::Handle::current());
        let (alive, conns) = probes(3);
        for conn in conns {
            pool.give_back(conn, None);
        }
        assert_eq!((pool.len(), open(&alive)), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_ends_with_its_pool() {
        let (alive, mut conns) = probes(1);
        let pool = IdlePool::on(10, tokio::runtime::Handle::current());
        pool.give_back(conns.pop().unwrap(), Some(30 * SECOND));
        let weak = Arc::downgrade(&pool.state);
        drop(pool);
        assert_eq!(open(&alive), 0, "dropping the pool closes its connections");
        tokio::time::sleep(31 * SECOND).await;
        assert!(weak.upgrade().is_none(), "the sweeper holds no pool");
    }
}
