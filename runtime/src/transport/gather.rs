//! When a connection's writer should yield before writing, to let the calls that are about to
//! run queue their frames first: baidu_std's writer task asks [`GatherPolicy`] directly, and
//! the h2:grpc client's HTTP/2 connections are driven through [`Gathering`].
//!
//! (Brisk's HTTP/2 server does not yield to gather: it runs the requests of one read in place
//! and writes their answers 16 at a time (`server::h2`). Yielding there, like answering a whole
//! read in one write, put client and server into lockstep on one connection, each idle while
//! the other worked: 64 calls in flight went from 96k to 67k calls/s.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Whether a connection's writer yields before writing, to gather frames from tasks about to
/// run.
///
/// Yielding costs a trip through the scheduler (and, with nothing else to run, a poll of the
/// I/O driver). It pays off when many calls are in flight and is waste when one is: so the
/// writer keeps yielding while yields bring in more frames, and after one that brings none it
/// writes at once, trying a yield again only every [`GatherPolicy::PROBE_EVERY`] batches.
#[derive(Debug, Default)]
pub(crate) struct GatherPolicy {
    /// Batches to write without yielding before trying again.
    skip: u32,
}

impl GatherPolicy {
    const PROBE_EVERY: u32 = 16;

    /// Whether to yield before this write.
    pub(crate) fn should_yield(&mut self) -> bool {
        if self.skip == 0 {
            return true;
        }
        self.skip -= 1;
        false
    }

    /// Records whether the last yield let more work in.
    pub(crate) fn record(&mut self, gathered_more: bool) {
        self.skip = if gathered_more { 0 } else { Self::PROBE_EVERY };
    }
}

/// How many messages calls have queued on a connection: a count that only grows, so the
/// connection's driver can tell a wake-up by new messages from one by its socket.
#[derive(Debug, Default)]
pub(crate) struct Queued(AtomicU64);

impl Queued {
    /// One more message queued.
    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Drives a connection future that writes what calls queue (an HTTP/2 client connection),
/// batching their messages into few writes.
///
/// A call that queues a message wakes the connection. Run as a task, tokio would run it next
/// (its LIFO slot): when a read batch has made many calls ready at once, it would write each
/// one's message alone, one `writev` per call. So on a wake-up by new messages it first yields
/// once, letting the other ready calls queue theirs; the [`GatherPolicy`] stops yielding while
/// yields bring nothing (one call in flight, or a dispatcher that polls it only after the
/// calls its last turn woke have run).
pub(crate) struct Gathering<F> {
    connection: Pin<Box<F>>,
    queued: Arc<Queued>,
    policy: GatherPolicy,
    /// `queued` when the connection was last polled.
    seen: u64,
    /// `queued` when the task yielded, until it runs again.
    yielded_at: Option<u64>,
}

impl<F> Gathering<F> {
    /// Drives `connection`, whose calls count what they queue in `queued`.
    pub(crate) fn new(connection: F, queued: Arc<Queued>) -> Self {
        Gathering {
            connection: Box::pin(connection),
            queued,
            policy: GatherPolicy::default(),
            seen: 0,
            yielded_at: None,
        }
    }
}

impl<F: Future> Future for Gathering<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let queued = this.queued.get();
        match this.yielded_at.take() {
            Some(before) => this.policy.record(queued != before),
            None if queued != this.seen && this.policy.should_yield() => {
                this.yielded_at = Some(queued);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            None => {}
        }
        let polled = this.connection.as_mut().poll(cx);
        this.seen = this.queued.get();
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_while_yielding_gathers_and_probes_after_a_miss() {
        let mut policy = GatherPolicy::default();
        assert!(policy.should_yield());
        policy.record(true);
        assert!(policy.should_yield());
        policy.record(false);
        for _ in 0..GatherPolicy::PROBE_EVERY {
            assert!(!policy.should_yield());
        }
        assert!(policy.should_yield());
    }

    /// A connection future that counts its polls.
    struct Counting(Arc<std::sync::atomic::AtomicUsize>);

    impl Future for Counting {
        type Output = ();

        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Poll::Pending
        }
    }

    #[test]
    fn new_messages_make_the_driver_yield_once_first() {
        let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let queued = Arc::new(Queued::default());
        let mut driver = Gathering::new(Counting(Arc::clone(&polls)), Arc::clone(&queued));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut poll = || Pin::new(&mut driver).poll(&mut cx);
        // A wake-up by the socket polls the connection at once.
        assert!(poll().is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        // A wake-up by a new message yields first, then polls.
        queued.add();
        assert!(poll().is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 1, "yielded");
        queued.add();
        assert!(poll().is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
        // That yield gathered another message, so the next wake-up yields again.
        queued.add();
        assert!(poll().is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 2, "yielded again");
        // This one gathered nothing: the next messages are written without a yield.
        assert!(poll().is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 3);
        queued.add();
        assert!(poll().is_pending());
        assert_eq!(polls.load(Ordering::Relaxed), 4);
    }
}
