//! Connections' readers, a client's and a server's, polled by a few dispatcher tasks per
//! runtime instead of a task each (brpc's `EventDispatcher`), so thousands of connections are
//! served in turn.
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
//! stream message a reader hands on, spends a unit of it; an HTTP/2 connection spends one for
//! each frame it reads that wakes a caller, `transport::h2_answers`), before it yields to the callers
//! they woke: a worker's queue then holds about as many ready callers as one turn woke,
//! well within what it serves in order.
//!
//! Each runtime gets one dispatcher per worker thread (connections are dealt to them in turn),
//! so the readers of a multi-threaded runtime still run in parallel.
//!
//! A connection whose one future both reads and writes (an HTTP/2 connection, whose requests
//! callers queue in `h2` for it to write, or whose answers a server's handlers queue there)
//! comes with [`spawn_connection`]. Its socket's read readiness queues it behind, with the
//! readers; any other wake-up (a caller queued a request, a handler an answer) queues it in
//! front, a line of its own. Each turn first polls up to a quarter of its readers
//! from behind, then connections in front, then behind again: a request waits for the turn
//! under way, not for every reader ready before it, and a reader behind is never starved by
//! turns that tokio's budget ends early. Polled from the front, a connection writes and reads
//! nothing ([`WakeReadsAsReader`]): its answers wait for its place behind, as every reader's
//! do. (Polled from behind, it also writes, which leaves an entry in front stale: such entries
//! are dropped when a turn is taken.)

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::{AbortHandle, Abortable};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::runtime::{Handle, Id};
use tokio::sync::mpsc;

/// Readers a dispatcher polls before it yields to the callers they woke.
const READERS_PER_TURN: usize = 32;

/// Of a turn, the polls kept for readers queued behind when connections queued in front (to
/// write what callers queued) would take them all: readers are never starved.
const BEHIND_PER_TURN: usize = READERS_PER_TURN / 4;

type Reader = Abortable<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// A reader handed to a dispatcher, and where its socket's read wake-ups go if they are told
/// apart from the others.
struct Arrival {
    reader: Reader,
    reads: Option<Arc<ReadWaker>>,
}

/// The dispatchers of one runtime.
struct Dispatchers {
    arrivals: Vec<mpsc::UnboundedSender<Arrival>>,
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
    hand_over(reader, None)
}

/// Runs `connection`, a future that both reads and writes its socket, on a dispatcher of the
/// current runtime. Its socket's read readiness, registered through `reads` (see
/// [`WakeReadsAsReader`]), queues it behind the readers ready before it; any other wake-up
/// queues it in the line in front (see the module's docs).
///
/// # Panics
/// Outside a tokio runtime, as `tokio::spawn`.
pub(crate) fn spawn_connection<F>(connection: F, reads: Arc<ReadWaker>) -> AbortHandle
where
    F: Future<Output = ()> + Send + 'static,
{
    hand_over(connection, Some(reads))
}

fn hand_over<F>(reader: F, reads: Option<Arc<ReadWaker>>) -> AbortHandle
where
    F: Future<Output = ()> + Send + 'static,
{
    let (abort, registration) = AbortHandle::new_pair();
    let reader = Abortable::new(Box::pin(reader) as Pin<Box<_>>, registration);
    let dispatchers = dispatchers_of(&Handle::current());
    let turn = dispatchers.next.fetch_add(1, Ordering::Relaxed) % dispatchers.arrivals.len();
    // Refused only while the runtime shuts down (its dispatchers are gone): the reader is
    // dropped then, as a task spawned then would be.
    let _ = dispatchers.arrivals[turn].send(Arrival { reader, reads });
    abort
}

/// Where a connection's reads find the waker that queues it as a reader (set by its dispatcher
/// when the connection arrives there), and whether the poll under way may read.
#[derive(Debug, Default)]
pub(crate) struct ReadWaker {
    waker: OnceLock<Waker>,
    /// Set while the connection is polled from the front, to write what callers queued: its
    /// reads then wait for its place behind.
    writes_only: AtomicBool,
    /// Whether the connection's last read since it was last polled from behind found nothing
    /// and left the waker with the socket, to be woken when bytes come.
    armed: AtomicBool,
}

/// An I/O object whose reads wake its connection as a reader (see [`spawn_connection`]);
/// until the connection reaches its dispatcher, reads use the caller's waker.
///
/// Polled from the front, the connection reads nothing: a connection read whenever a caller
/// queued a request read more often the faster its callers were served, and with 2000 callers
/// on 64 HTTP/2 connections some connections made three times the median's calls, others a
/// third. If its socket may hold bytes no wake-up will announce (no read since it was last
/// polled from behind, or the last one got some), such a read queues it behind instead.
#[derive(Debug)]
pub(crate) struct WakeReadsAsReader<S> {
    inner: S,
    reads: Arc<ReadWaker>,
}

impl<S> WakeReadsAsReader<S> {
    /// `inner`, its reads woken through `reads`.
    pub(crate) fn new(inner: S, reads: Arc<ReadWaker>) -> Self {
        WakeReadsAsReader { inner, reads }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WakeReadsAsReader<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(waker) = this.reads.waker.get() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if this.reads.writes_only.load(Ordering::Relaxed) {
            if !this.reads.armed.load(Ordering::Relaxed) {
                waker.wake_by_ref();
            }
            return Poll::Pending;
        }
        let read = Pin::new(&mut this.inner).poll_read(&mut Context::from_waker(waker), buf);
        // A read refused by tokio's budget arms nothing, but has queued the connection behind.
        this.reads.armed.store(read.is_pending(), Ordering::Relaxed);
        read
    }
}

super::forward_async_write!(WakeReadsAsReader);

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
    ready: Mutex<Ready>,
    /// The dispatcher's task.
    dispatcher: AtomicWaker,
}

impl ReadyQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ready> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Slots ready to be polled, each line first-in, first-out.
#[derive(Default)]
struct Ready {
    /// Connections woken to write what callers queued.
    in_front: VecDeque<usize>,
    /// Readers woken by their sockets (and connections by their reads).
    behind: VecDeque<usize>,
    /// Whether the last turn began from behind: turns alternate.
    began_behind: bool,
}

impl Ready {
    fn is_empty(&self) -> bool {
        self.in_front.is_empty() && self.behind.is_empty()
    }

    /// Moves the next turn's slots into `turn`, each marked whether it came from the front.
    /// Turns alternate: one begins with the [`BEHIND_PER_TURN`] polls kept for readers behind,
    /// then takes from the front; the next begins from the front, leaving those polls for
    /// behind at its end. Either way the rest of the turn fills from both lines. Entries
    /// `is_queued` disowns (their slot was polled since, through its other line) are dropped
    /// on the way and take no place in the turn.
    ///
    /// Turns alternate because a turn may end early, when the connections polled in it have
    /// spent tokio's budget (after about five polls, with 64 busy HTTP/2 connections): a line
    /// always taken last would wait for as long as the other stays full. And stale entries must
    /// not take the readers' share, as they pile up behind connections that callers keep waking
    /// in front. Either way readers behind waited over 100 ms with 2000 callers on 64 HTTP/2
    /// connections.
    fn take_turn(
        &mut self,
        turn: &mut Vec<(usize, bool)>,
        is_queued: impl Fn(usize, bool) -> bool,
    ) {
        fn take_from(
            line: &mut VecDeque<usize>,
            in_front: bool,
            until: usize,
            turn: &mut Vec<(usize, bool)>,
            is_queued: &impl Fn(usize, bool) -> bool,
        ) {
            while turn.len() < until {
                match line.pop_front() {
                    Some(slot) if is_queued(slot, in_front) => turn.push((slot, in_front)),
                    Some(_stale) => {}
                    None => break,
                }
            }
        }
        self.began_behind = !self.began_behind;
        if self.began_behind {
            take_from(&mut self.behind, false, BEHIND_PER_TURN, turn, &is_queued);
            take_from(&mut self.in_front, true, READERS_PER_TURN, turn, &is_queued);
        } else {
            let front = READERS_PER_TURN - BEHIND_PER_TURN;
            take_from(&mut self.in_front, true, front, turn, &is_queued);
            take_from(&mut self.behind, false, READERS_PER_TURN, turn, &is_queued);
            take_from(&mut self.in_front, true, READERS_PER_TURN, turn, &is_queued);
        }
        take_from(&mut self.behind, false, READERS_PER_TURN, turn, &is_queued);
    }

    /// Gives back what a turn did not poll, each to the head of its line.
    fn give_back(&mut self, unpolled: &[(usize, bool)]) {
        for &(slot, in_front) in unpolled.iter().rev() {
            if in_front {
                self.in_front.push_front(slot);
            } else {
                self.behind.push_front(slot);
            }
        }
    }
}

/// The waker of one reader: puts it in the ready queue (once) and wakes the dispatcher.
struct ReaderWaker {
    slot: usize,
    queued: AtomicBool,
    queue: Arc<ReadyQueue>,
    /// Queues it in front of the readers ready already, not behind them.
    in_front: bool,
}

impl Wake for ReaderWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            let mut ready = self.queue.lock();
            if self.in_front {
                ready.in_front.push_back(self.slot);
            } else {
                ready.behind.push_back(self.slot);
            }
            drop(ready);
            self.queue.dispatcher.wake();
        }
    }
}

/// A reader and its waker (the flag, and the `Waker` made from it once); a connection also
/// has the waker that queues it in front, which it is polled with.
struct Slot {
    reader: Reader,
    waker: Arc<ReaderWaker>,
    as_waker: Waker,
    in_front: Option<InFront>,
}

/// What a connection polled from the front as well as behind has besides a reader's waker.
struct InFront {
    waker: Arc<ReaderWaker>,
    as_waker: Waker,
    /// Told, for each poll, whether the connection may read.
    reads: Arc<ReadWaker>,
}

impl Slot {
    /// Whether the waker of the line an entry is in (`in_front` or behind) still has it
    /// queued: if not, the slot was polled since the entry was queued.
    fn is_queued(&self, in_front: bool) -> bool {
        match (&self.in_front, in_front) {
            (Some(front), true) => front.waker.queued.load(Ordering::Acquire),
            (None, true) => false,
            (_, false) => self.waker.queued.load(Ordering::Acquire),
        }
    }

    /// Marks the slot queued (`true`) or not, for both its wakers; whether either was.
    fn set_queued(&self, queued: bool) -> bool {
        let behind = self.waker.queued.swap(queued, Ordering::AcqRel);
        let in_front = self
            .in_front
            .as_ref()
            .is_some_and(|front| front.waker.queued.swap(queued, Ordering::AcqRel));
        behind || in_front
    }

    /// Readies the slot to be polled from the line its entry came from (`in_front` or
    /// behind); whether that entry still stands. From behind, the poll reads and writes, so
    /// both lines' entries are spent. From the front, only the front's: the connection writes
    /// what callers queued and reads nothing, which leaves its reads their place behind.
    fn begin_poll(&self, in_front: bool) -> bool {
        match &self.in_front {
            Some(front) if in_front => {
                front.reads.writes_only.store(true, Ordering::Relaxed);
                front.waker.queued.swap(false, Ordering::AcqRel)
            }
            Some(front) => {
                // Woken by its socket, or queued so as not to miss what it holds: whatever
                // read left a waker with the socket has been used.
                front.reads.writes_only.store(false, Ordering::Relaxed);
                front.reads.armed.store(false, Ordering::Relaxed);
                self.set_queued(false)
            }
            None => self.set_queued(false),
        }
    }
}

/// Polls the readers it is given, in the order they became ready, until its runtime shuts
/// down (which drops them, as it drops tasks) or, once its runtime's entry is gone from the
/// map of dispatchers, until its last reader ends.
async fn dispatch(mut arrivals: mpsc::UnboundedReceiver<Arrival>) {
    let queue = Arc::new(ReadyQueue::default());
    let mut slots: Vec<Option<Slot>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut turn: Vec<(usize, bool)> = Vec::with_capacity(READERS_PER_TURN);
    let mut closed = false;
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        queue.dispatcher.register(cx.waker());
        let mut arrive = |Arrival { reader, reads }: Arrival| {
            let slot = free.pop().unwrap_or_else(|| {
                slots.push(None);
                slots.len() - 1
            });
            let waker_for = |in_front: bool| {
                let waker = Arc::new(ReaderWaker {
                    slot,
                    queued: AtomicBool::new(false),
                    queue: Arc::clone(&queue),
                    in_front,
                });
                let as_waker = Waker::from(Arc::clone(&waker));
                (waker, as_waker)
            };
            let (waker, as_waker) = waker_for(false);
            let in_front = reads.map(|reads| {
                let fresh = reads.waker.set(as_waker.clone()).is_ok();
                debug_assert!(fresh, "a connection's ReadWaker is its own");
                let (waker, as_waker) = waker_for(true);
                InFront {
                    waker,
                    as_waker,
                    reads,
                }
            });
            // Polled once to start (a connection in front: it has a request to write).
            match &in_front {
                Some(front) => front.waker.wake_by_ref(),
                None => waker.wake_by_ref(),
            }
            slots[slot] = Some(Slot {
                reader,
                waker,
                as_waker,
                in_front,
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
        queue.lock().take_turn(&mut turn, |index, in_front| {
            slots[index]
                .as_ref()
                .is_some_and(|slot| slot.is_queued(in_front))
        });
        for (polled, &(index, from_front)) in turn.iter().enumerate() {
            if !tokio::task::coop::has_budget_remaining() {
                // The readers polled so far woke as many callers as tokio's budget for one
                // poll allows: the rest keep their places for the next turn.
                queue.lock().give_back(&turn[polled..]);
                break;
            }
            let Some(slot) = slots[index].as_mut() else {
                continue;
            };
            // Cleared before the poll: a wake-up during it queues the reader again. Not
            // marked means the slot was polled since this entry was queued (a connection
            // queued both in front and behind): nothing to do.
            if !slot.begin_poll(from_front) {
                continue;
            }
            let Slot {
                reader,
                as_waker,
                in_front,
                ..
            } = slot;
            let waker = in_front
                .as_ref()
                .map_or(&*as_waker, |front| &front.as_waker);
            // A reader that panics ends alone, as a task of its own would: the dispatcher
            // and the other connections go on.
            let polled = contain_panic(|| Pin::new(reader).poll(&mut Context::from_waker(waker)))
                .unwrap_or(Poll::Ready(Err(futures_util::future::Aborted)));
            if polled.is_ready() {
                // Ended or aborted. Its waker, which tokio may still hold, stays marked queued
                // so it never queues the index again; an entry it queued already polls the
                // slot's next reader once for nothing, which futures allow.
                slot.set_queued(true);
                let ended = slots[index].take();
                let _ = contain_panic(move || drop(ended));
                free.push(index);
            } else if !tokio::task::coop::has_budget_remaining()
                && !slot.waker.queued.swap(true, Ordering::AcqRel)
            {
                // Stopped by the budget with answers still to hand on: tokio would wake it
                // only when the worker next parks. It had its turn, so it goes to the back
                // now (to the front, it would keep the dispatcher to itself).
                queue.lock().behind.push_back(index);
            }
        }
        turn.clear();
        if closed && slots.iter().all(Option::is_none) {
            return Poll::Ready(());
        }
        if !queue.lock().is_empty() {
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

    /// Spawns readers `0..count`, each waiting for its signal and then sending its number to
    /// `done`; returns their signals once every one waits.
    async fn waiting_readers(
        count: usize,
        done: &mpsc::UnboundedSender<usize>,
    ) -> Vec<tokio::sync::oneshot::Sender<()>> {
        let waiting = Arc::new(AtomicUsize::new(0));
        let mut signals = Vec::new();
        for i in 0..count {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            signals.push(tx);
            let (done, waiting) = (done.clone(), Arc::clone(&waiting));
            let _ = spawn(async move {
                waiting.fetch_add(1, Ordering::SeqCst);
                rx.await.unwrap();
                done.send(i).unwrap();
            });
        }
        while waiting.load(Ordering::SeqCst) < count {
            tokio::task::yield_now().await;
        }
        signals
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ready_readers_are_served_in_the_order_they_became_ready() {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let signals = waiting_readers(1000, &done_tx).await;
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

    /// Readers 0..100 made ready, then `wake_connection`; the order they and the connection
    /// (as 1000) ran in.
    async fn order_with_a_connection<F>(connection: F, wake_connection: impl FnOnce()) -> Vec<usize>
    where
        F: FnOnce(
            mpsc::UnboundedSender<usize>,
            Arc<ReadWaker>,
        ) -> Pin<Box<dyn Future<Output = ()> + Send>>,
    {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let signals = waiting_readers(100, &done_tx).await;
        let reads = Arc::new(ReadWaker::default());
        let _ = spawn_connection(connection(done_tx, Arc::clone(&reads)), reads);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        for signal in signals {
            signal.send(()).unwrap();
        }
        wake_connection();
        let mut order = Vec::new();
        for _ in 0..101 {
            order.push(done_rx.recv().await.unwrap());
        }
        order
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_woken_to_write_goes_before_the_readers_ready_but_their_share() {
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let order = order_with_a_connection(
            |done, _reads| {
                Box::pin(async move {
                    go_rx.await.unwrap();
                    done.send(1000).unwrap();
                })
            },
            move || go_tx.send(()).unwrap(),
        )
        .await;
        // Before the readers, or right after their share when the turn begins from behind.
        let at = order.iter().position(|&i| i == 1000).unwrap();
        assert!(at == 0 || at == BEHIND_PER_TURN, "{order:?}");
        let readers: Vec<usize> = order.iter().copied().filter(|&i| i != 1000).collect();
        assert_eq!(readers, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_woken_by_its_socket_waits_its_turn() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, mut far) = tokio::io::duplex(64);
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let order = order_with_a_connection(
            |done, reads| {
                Box::pin(async move {
                    let mut io = WakeReadsAsReader::new(near, reads);
                    let mut byte = [0u8; 1];
                    io.read_exact(&mut byte).await.unwrap();
                    done.send(1000).unwrap();
                })
            },
            move || go_tx.send(()).unwrap(),
        );
        // The byte is written once the readers are ready (when `order` wakes the connection).
        let write = async move {
            loop {
                if go_rx.try_recv().is_ok() {
                    far.write_all(b"x").await.unwrap();
                    return far;
                }
                tokio::task::yield_now().await;
            }
        };
        let (order, _far) = tokio::join!(order, write);
        assert_eq!(order[..100], (0..100).collect::<Vec<_>>(), "{order:?}");
        assert_eq!(order[100], 1000);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_is_woken_in_front_again_after_each_poll() {
        let (requests, mut queued) = mpsc::unbounded_channel::<u32>();
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let reads = Arc::new(ReadWaker::default());
        let _ = spawn_connection(
            async move {
                while let Some(request) = queued.recv().await {
                    seen_tx.send(request).unwrap();
                }
            },
            reads,
        );
        for request in 0..3 {
            requests.send(request).unwrap();
            let got = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
            assert_eq!(got.expect("woken again").unwrap(), request);
        }
    }

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_polled_from_the_front_leaves_its_reads_their_place_behind() {
        use tokio::io::AsyncWriteExt;
        let (near, mut far) = tokio::io::duplex(64);
        let wakes = Arc::new(CountWakes::default());
        let reads = Arc::new(ReadWaker::default());
        reads.waker.set(Waker::from(Arc::clone(&wakes))).unwrap();
        let mut io = WakeReadsAsReader::new(near, Arc::clone(&reads));
        let mut bytes = [0u8; 8];
        let noop = Waker::noop();
        let mut read = |io: &mut WakeReadsAsReader<_>| {
            let mut buf = ReadBuf::new(&mut bytes);
            let polled = Pin::new(io).poll_read(&mut Context::from_waker(noop), &mut buf);
            polled.map(|done| done.map(|()| buf.filled().len()))
        };
        // From behind: nothing yet, so the socket holds the waker.
        assert!(read(&mut io).is_pending());
        assert!(reads.armed.load(Ordering::Relaxed));
        far.write_all(b"abc").await.unwrap();
        assert_eq!(
            wakes.0.load(Ordering::Relaxed),
            1,
            "the bytes queue it behind"
        );
        // From the front: the bytes wait for that place.
        reads.writes_only.store(true, Ordering::Relaxed);
        assert!(read(&mut io).is_pending());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        // From behind: read.
        reads.writes_only.store(false, Ordering::Relaxed);
        reads.armed.store(false, Ordering::Relaxed);
        assert!(matches!(read(&mut io), Poll::Ready(Ok(3))));
        assert!(!reads.armed.load(Ordering::Relaxed));
        // From the front after a read that got bytes: more may have come unannounced, so it
        // queues itself behind.
        reads.writes_only.store(true, Ordering::Relaxed);
        assert!(read(&mut io).is_pending());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bytes_that_came_while_a_connection_could_not_read_are_read() {
        use tokio::io::AsyncWriteExt;
        // A connection that may not read when polled (as `h2`, while its writes are stuck),
        // and wakes itself in front when it may again (as a writable socket does).
        let (near, mut far) = tokio::io::duplex(64);
        let blocked = Arc::new(AtomicBool::new(false));
        let woken_by: Arc<Mutex<Option<Waker>>> = Arc::default();
        let polls = Arc::new(AtomicUsize::new(0));
        let (got_tx, mut got) = mpsc::unbounded_channel();
        let reads = Arc::new(ReadWaker::default());
        let mut io = WakeReadsAsReader::new(near, Arc::clone(&reads));
        let connection = {
            let (blocked, woken_by, polls) = (blocked.clone(), woken_by.clone(), polls.clone());
            std::future::poll_fn(move |cx| {
                polls.fetch_add(1, Ordering::SeqCst);
                *woken_by.lock().unwrap() = Some(cx.waker().clone());
                if blocked.load(Ordering::SeqCst) {
                    return Poll::Pending;
                }
                let mut bytes = [0u8; 8];
                let mut buf = ReadBuf::new(&mut bytes);
                while let Poll::Ready(read) = Pin::new(&mut io).poll_read(cx, &mut buf) {
                    read.unwrap();
                    if buf.filled().is_empty() {
                        return Poll::Ready(());
                    }
                    got_tx.send(buf.filled().to_vec()).unwrap();
                    buf.clear();
                }
                Poll::Pending
            })
        };
        let _ = spawn_connection(connection, reads);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // Bytes come while it cannot read: polled from behind for them, it reads nothing.
        blocked.store(true, Ordering::SeqCst);
        let before = polls.load(Ordering::SeqCst);
        far.write_all(b"x").await.unwrap();
        while polls.load(Ordering::SeqCst) == before {
            tokio::task::yield_now().await;
        }
        // Able again, it is woken in front: the bytes are read all the same.
        blocked.store(false, Ordering::SeqCst);
        woken_by.lock().unwrap().take().unwrap().wake();
        let read = tokio::time::timeout(Duration::from_secs(5), got.recv()).await;
        assert_eq!(read.expect("the bytes were read").unwrap(), b"x");
    }

    #[test]
    fn turns_alternate_which_line_goes_first() {
        let mut ready = Ready::default();
        ready.in_front.extend(100..140);
        ready.behind.extend(0..5);
        let mut turn = Vec::new();
        ready.take_turn(&mut turn, |_, _| true);
        let slots: Vec<usize> = turn.iter().map(|&(slot, _)| slot).collect();
        let front = READERS_PER_TURN - 5;
        let mut expected: Vec<usize> = (0..5).collect();
        expected.extend(100..100 + front);
        assert_eq!(slots, expected, "readers behind get their share, first");
        // What a turn does not poll goes back to the head of its own line.
        ready.give_back(&turn[3..]);
        assert_eq!(ready.behind, (3..5).collect::<VecDeque<_>>());
        assert_eq!(ready.in_front.front(), Some(&100));
        assert_eq!(ready.in_front.len(), 40);
        // The next turn begins from the front, and still leaves the readers their share.
        turn.clear();
        ready.take_turn(&mut turn, |_, _| true);
        let slots: Vec<usize> = turn.iter().map(|&(slot, _)| slot).collect();
        let mut expected: Vec<usize> = (100..100 + READERS_PER_TURN - BEHIND_PER_TURN).collect();
        expected.extend([3, 4]);
        expected.extend(124..130);
        assert_eq!(slots, expected);
        // Many ready in both lines: a quarter of each turn is for the readers behind.
        ready.in_front.extend(200..300);
        ready.behind.extend(5..100);
        for began_behind in [true, false] {
            turn.clear();
            ready.take_turn(&mut turn, |_, _| true);
            let from_behind = turn.iter().filter(|&&(_, in_front)| !in_front).count();
            assert_eq!(from_behind, BEHIND_PER_TURN);
            assert_eq!(!turn[0].1, began_behind);
        }
    }

    #[test]
    fn stale_entries_take_no_place_in_a_turn() {
        let mut ready = Ready::default();
        // Odd slots were polled through their other line since they were queued here.
        ready.behind.extend(0..40);
        ready.in_front.extend(100..110);
        let mut turn = Vec::new();
        ready.take_turn(&mut turn, |slot, _| slot % 2 == 0);
        let behind: Vec<usize> = turn
            .iter()
            .filter(|&&(_, in_front)| !in_front)
            .map(|&(slot, _)| slot)
            .collect();
        assert_eq!(behind[..BEHIND_PER_TURN], [0, 2, 4, 6, 8, 10, 12, 14]);
        assert_eq!(
            turn.len(),
            20 + 5,
            "every live entry of both lines, no stale one"
        );
        assert!(turn.iter().all(|&(slot, _)| slot % 2 == 0));
        assert!(ready.is_empty(), "stale entries are gone from the lines");
    }
}
