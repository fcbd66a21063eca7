//! Client connections' readers, polled by a few dispatcher tasks per runtime instead of a task
//! each (brpc's `EventDispatcher`), so thousands of connections are served in turn.
//!
//! With a task per connection, every response that arrives makes one more tokio task ready. A
//! tokio worker keeps at most 256 ready tasks in its own queue and moves the overflow to the
//! runtime's shared queue, which it looks at only every few dozen polls. With a thousand
//! connections whose responses wait, the tasks that overflowed wait there for hundreds of
//! milliseconds while the others are served again and again (measured with 1000 connections
//! and one call in flight on each: p99 23× the mean, the least served caller at 0.52× the
//! median's calls). Here a reader whose socket becomes readable joins its dispatcher's
//! first-in, first-out queue, and the dispatcher polls at most [`READERS_PER_TURN`] readers,
//! and only while tokio's budget for one poll lasts (each socket read, and each answer or
//! stream message a reader hands on, spends a unit of it), before it yields to the callers
//! they woke: a worker's queue then holds about as many ready callers as one turn woke,
//! well within what it serves in order.
//!
//! Each runtime gets one dispatcher per worker thread (connections are dealt to them in turn),
//! so the readers of a multi-threaded runtime still run in parallel.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::{AbortHandle, Abortable};
use futures_util::task::AtomicWaker;
use tokio::runtime::{Handle, Id};
use tokio::sync::mpsc;

/// Readers a dispatcher polls before it yields to the callers they woke.
const READERS_PER_TURN: usize = 32;

type Reader = Abortable<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// The dispatchers of one runtime.
struct Dispatchers {
    arrivals: Vec<mpsc::UnboundedSender<Reader>>,
    /// The dispatcher the next connection goes to.
    next: AtomicUsize,
}

impl Dispatchers {
    fn running(&self) -> bool {
        !self.arrivals.iter().any(|queue| queue.is_closed())
    }
}

/// Runs `reader` (a connection's read loop) on a dispatcher of the current runtime; the handle
/// stops it (the future is dropped the next time its dispatcher runs).
///
/// # Panics
/// Outside a tokio runtime, as `tokio::spawn`.
pub(crate) fn spawn<F>(reader: F) -> AbortHandle
where
    F: Future<Output = ()> + Send + 'static,
{
    let (abort, registration) = AbortHandle::new_pair();
    let reader = Abortable::new(Box::pin(reader) as Pin<Box<_>>, registration);
    let dispatchers = dispatchers_of(&Handle::current());
    let turn = dispatchers.next.fetch_add(1, Ordering::Relaxed) % dispatchers.arrivals.len();
    // Refused only while the runtime shuts down (its dispatchers are gone): the reader is
    // dropped then, as a task spawned then would be.
    let _ = dispatchers.arrivals[turn].send(reader);
    abort
}

/// The runtime's dispatchers, started on first use.
fn dispatchers_of(handle: &Handle) -> Arc<Dispatchers> {
    static ALL: OnceLock<Mutex<HashMap<Id, Arc<Dispatchers>>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let id = handle.id();
    if let Some(found) = all.get(&id).filter(|found| found.running()) {
        return Arc::clone(found);
    }
    // Runtimes that ended leave closed queues behind: forget them.
    all.retain(|_, dispatchers| dispatchers.running());
    let workers = handle.metrics().num_workers().max(1);
    let arrivals = (0..workers)
        .map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            handle.spawn(dispatch(rx));
            tx
        })
        .collect();
    let dispatchers = Arc::new(Dispatchers {
        arrivals,
        next: AtomicUsize::new(0),
    });
    all.insert(id, Arc::clone(&dispatchers));
    dispatchers
}

/// The readers' queue of one dispatcher: which are ready, in the order they became so.
#[derive(Default)]
struct ReadyQueue {
    ready: Mutex<VecDeque<usize>>,
    /// The dispatcher's task.
    dispatcher: AtomicWaker,
}

/// The waker of one reader: puts it in the ready queue (once) and wakes the dispatcher.
struct ReaderWaker {
    slot: usize,
    queued: AtomicBool,
    queue: Arc<ReadyQueue>,
}

impl Wake for ReaderWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.queue
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(self.slot);
            self.queue.dispatcher.wake();
        }
    }
}

/// A reader and its waker (the flag, and the `Waker` made from it once).
struct Slot {
    reader: Reader,
    waker: Arc<ReaderWaker>,
    as_waker: Waker,
}

/// Polls the readers it is given, in the order they became ready, until its runtime shuts
/// down (which drops them, as it drops tasks) or, once its runtime's entry is gone from the
/// map of dispatchers, until its last reader ends.
async fn dispatch(mut arrivals: mpsc::UnboundedReceiver<Reader>) {
    let queue = Arc::new(ReadyQueue::default());
    let mut slots: Vec<Option<Slot>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut turn: Vec<usize> = Vec::with_capacity(READERS_PER_TURN);
    let mut closed = false;
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        queue.dispatcher.register(cx.waker());
        let mut arrive = |reader: Reader| {
            let slot = free.pop().unwrap_or_else(|| {
                slots.push(None);
                slots.len() - 1
            });
            let waker = Arc::new(ReaderWaker {
                slot,
                queued: AtomicBool::new(false),
                queue: Arc::clone(&queue),
            });
            waker.wake_by_ref(); // polled once to start
            let as_waker = Waker::from(Arc::clone(&waker));
            slots[slot] = Some(Slot {
                reader,
                waker,
                as_waker,
            });
        };
        // `try_recv` spends none of tokio's budget, which is for the readers' answers.
        while !closed {
            while let Ok(reader) = arrivals.try_recv() {
                arrive(reader);
            }
            match arrivals.poll_recv(cx) {
                Poll::Ready(Some(reader)) => arrive(reader),
                Poll::Ready(None) => closed = true,
                Poll::Pending => break,
            }
        }
        {
            let mut ready = queue.ready.lock().unwrap_or_else(|e| e.into_inner());
            let take = ready.len().min(READERS_PER_TURN);
            turn.extend(ready.drain(..take));
        }
        for (polled, &index) in turn.iter().enumerate() {
            if !tokio::task::coop::has_budget_remaining() {
                // The readers polled so far woke as many callers as tokio's budget for one
                // poll allows: the rest keep their places for the next turn.
                let mut ready = queue.ready.lock().unwrap_or_else(|e| e.into_inner());
                for &waiting in turn[polled..].iter().rev() {
                    ready.push_front(waiting);
                }
                break;
            }
            let Some(slot) = slots[index].as_mut() else {
                continue;
            };
            // Cleared before the poll: a wake-up during it queues the reader again.
            slot.waker.queued.store(false, Ordering::Release);
            let (reader, waker) = (&mut slot.reader, &slot.as_waker);
            // A reader that panics ends alone, as a task of its own would: the dispatcher
            // and the other connections go on.
            let polled = contain_panic(|| Pin::new(reader).poll(&mut Context::from_waker(waker)))
                .unwrap_or(Poll::Ready(Err(futures_util::future::Aborted)));
            if polled.is_ready() {
                // Ended or aborted. Its waker, which tokio may still hold, stays marked queued
                // so it never queues the index again; an entry it queued already polls the
                // slot's next reader once for nothing, which futures allow.
                slot.waker.queued.store(true, Ordering::Release);
                let ended = slots[index].take();
                let _ = contain_panic(move || drop(ended));
                free.push(index);
            } else if !tokio::task::coop::has_budget_remaining()
                && !slot.waker.queued.swap(true, Ordering::AcqRel)
            {
                // Stopped by the budget with answers still to hand on: tokio would wake it
                // only when the worker next parks. It had its turn, so it goes to the back
                // now (to the front, it would keep the dispatcher to itself).
                let mut ready = queue.ready.lock().unwrap_or_else(|e| e.into_inner());
                ready.push_back(index);
            }
        }
        turn.clear();
        if closed && slots.iter().all(Option::is_none) {
            return Poll::Ready(());
        }
        if !queue
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            // More readers are ready: let the callers this turn woke run first.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await
}

/// Runs `f`, logging and swallowing a panic, so one connection's bug stays its own.
fn contain_panic<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .map_err(|panic| {
            tracing::error!(
                "a connection's reader panicked: {}",
                crate::error::panic_message(&panic)
            );
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_run_and_stop_when_aborted() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut handles = Vec::new();
        for i in 0..10 {
            let tx = tx.clone();
            handles.push(spawn(async move {
                tx.send(i).unwrap();
                std::future::pending::<()>().await
            }));
        }
        let mut seen: Vec<i32> = Vec::new();
        for _ in 0..10 {
            seen.push(rx.recv().await.unwrap());
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        // An aborted reader is dropped: its sender goes with it.
        drop(tx);
        for handle in handles {
            handle.abort();
        }
        let closed = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(closed.unwrap(), None, "every aborted reader was dropped");
    }

    #[test]
    fn a_runtime_that_ended_drops_its_readers_and_the_next_gets_new_dispatchers() {
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let first = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let guard = SetOnDrop(Arc::clone(&dropped));
        first.block_on(async move {
            let _ = spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await
            });
        });
        drop(first);
        assert!(dropped.load(Ordering::SeqCst));
        let second = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ran = second.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let _ = spawn(async move {
                let _ = tx.send(());
            });
            rx.await
        });
        assert!(ran.is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ready_readers_are_served_in_the_order_they_became_ready() {
        let mut signals = Vec::new();
        let waiting = Arc::new(AtomicUsize::new(0));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        for i in 0..1000 {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            signals.push(tx);
            let (done, waiting) = (done_tx.clone(), Arc::clone(&waiting));
            let _ = spawn(async move {
                waiting.fetch_add(1, Ordering::SeqCst);
                rx.await.unwrap();
                done.send(i).unwrap();
            });
        }
        while waiting.load(Ordering::SeqCst) < 1000 {
            tokio::task::yield_now().await;
        }
        // Readers refused by tokio's budget for a poll of the dispatcher are polled again:
        // let every one reach its wait (a turn per yield at least).
        for _ in 0..1000 / READERS_PER_TURN + 1 {
            tokio::task::yield_now().await;
        }
        // Made ready in reverse order: served in that order, a turn at a time.
        for signal in signals.into_iter().rev() {
            signal.send(()).unwrap();
        }
        let mut order = Vec::new();
        for _ in 0..1000 {
            order.push(done_rx.recv().await.unwrap());
        }
        assert_eq!(order, (0..1000).rev().collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_reader_that_panics_ends_alone() {
        // A reader already on the dispatcher, then one that panics: the first still runs.
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let _ = spawn(async move {
            go_rx.await.unwrap();
            let _ = done_tx.send(());
        });
        let _ = spawn(async { panic!("reader bug") });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        go_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), done_rx)
            .await
            .expect("not stuck")
            .expect("the first reader was not dropped with the one that panicked");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_reader_with_endless_answers_does_not_keep_the_dispatcher() {
        // Always more to hand on than one poll's budget allows, as a connection flooded
        // with answers: the budget stops it, and the reader behind it still gets its turn.
        let _ = spawn(async {
            loop {
                tokio::task::coop::consume_budget().await;
            }
        });
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let _ = spawn(async move {
            go_rx.await.unwrap();
            let _ = done_tx.send(());
        });
        tokio::task::yield_now().await;
        go_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), done_rx)
            .await
            .expect("the second reader was served")
            .unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_turn_polls_at_most_its_share_then_yields() {
        // 300 readers ready at once (more than tokio's budget for one poll: taking them in
        // must not spend it). A task spawned after them is queued behind the dispatcher: it
        // runs after its first turn, and sees that turn's readers polled.
        let polled = Arc::new(AtomicUsize::new(0));
        for _ in 0..300 {
            let polled = Arc::clone(&polled);
            let _ = spawn(async move {
                polled.fetch_add(1, Ordering::SeqCst);
            });
        }
        let after_first_turn = {
            let polled = Arc::clone(&polled);
            tokio::spawn(async move { polled.load(Ordering::SeqCst) })
        };
        assert_eq!(after_first_turn.await.unwrap(), READERS_PER_TURN);
        while polled.load(Ordering::SeqCst) < 300 {
            tokio::task::yield_now().await;
        }
    }
}
