//! A connection's queue of frames to write: many senders, one writer.
//!
//! Senders push under a short lock; the writer takes everything queued at once. An idle
//! connection's queue holds no memory: the writer takes the queue's vector with the frames in
//! it, and gives it back to a per-thread pool once they are written, where the next sender on
//! that thread finds it (tokio's channel keeps a 32-slot block per connection instead).
//!
//! A task that makes many frames at once (a server's read batch of requests answered inline)
//! may hold the queue for the batch: its frames wake nobody, and when the batch ends they
//! leave together, written by that task itself if the writer is idle and the socket takes
//! them (brpc's caller-writes-first), else by the writer. Either way one system call usually
//! carries the batch, and the writer task is not woken at all in the common case.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;

use bytes::Buf;
use futures_util::task::AtomicWaker;

use super::sockets::SocketStats;
use crate::protocol::OutFrame;

/// What a write queue carries.
#[derive(Debug)]
pub(crate) enum Queued {
    /// A frame to write.
    Frame(OutFrame),
    /// Write what came before, then close the connection.
    Close,
}

impl Queued {
    /// Bytes to write.
    pub(crate) fn len(&self) -> usize {
        match self {
            Queued::Frame(frame) => frame.len(),
            Queued::Close => 0,
        }
    }
}

/// A socket that can be written without waiting: what a task holding the queue for a batch
/// writes to directly.
pub(crate) trait DirectWrite: Sync {
    /// Writes what the socket takes now of `bufs`; `WouldBlock` if it takes nothing.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize>;
}

/// Who is writing the connection's socket now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Nobody: the writer task waits for frames.
    Idle,
    /// The writer task, with a batch it took.
    Writer,
    /// A task that held the queue, writing its batch directly.
    Direct,
}

/// The queue and who may write, under one lock.
#[derive(Debug)]
struct State {
    queued: Vec<Queued>,
    turn: Turn,
    /// A batch is being made: frames queued meanwhile wake nobody; its end sends them.
    held: bool,
}

/// What the senders and the writer of one connection share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The writer, waiting for frames.
    writer: AtomicWaker,
    /// Live senders; the writer ends when none is left and the queue is empty.
    senders: AtomicUsize,
    /// The writer has stopped: frames sent now are refused.
    writer_gone: AtomicBool,
    /// Bytes queued but not yet written.
    unwritten: Arc<AtomicUsize>,
    /// The connection's counters, which count each frame written as a message sent.
    stats: OnceLock<Arc<SocketStats>>,
    /// The error a direct write met first: the writer reports it rather than the one it then
    /// meets itself (after a reset, the first write says ECONNRESET, later ones EPIPE).
    direct_error: Mutex<Option<std::io::Error>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A write queue: the sender for callers, the receiver for the connection's writer.
pub(crate) fn queue() -> (FrameSender, FrameReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queued: Vec::new(),
            turn: Turn::Idle,
            held: false,
        }),
        writer: AtomicWaker::new(),
        senders: AtomicUsize::new(1),
        writer_gone: AtomicBool::new(false),
        unwritten: Arc::new(AtomicUsize::new(0)),
        stats: OnceLock::new(),
        direct_error: Mutex::new(None),
    });
    (
        FrameSender {
            shared: Arc::clone(&shared),
        },
        FrameReceiver { shared },
    )
}

/// The sending side of a connection's write queue, counting bytes not yet written.
#[derive(Debug)]
pub(crate) struct FrameSender {
    shared: Arc<Shared>,
}

impl Clone for FrameSender {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        FrameSender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.writer.wake();
        }
    }
}

impl FrameSender {
    /// Queues `frame`; gives it back if the writer is gone.
    pub(crate) fn send(&self, frame: OutFrame) -> Result<(), OutFrame> {
        let len = frame.len();
        self.shared.unwritten.fetch_add(len, Ordering::Relaxed);
        match self.push(Queued::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(Queued::Frame(frame)) => {
                self.shared.unwritten.fetch_sub(len, Ordering::Relaxed);
                Err(frame)
            }
            Err(Queued::Close) => unreachable!("a frame was pushed"),
        }
    }

    /// Closes the connection once the frames queued so far are written; frames queued later
    /// are dropped.
    pub(crate) fn close(&self) {
        let _ = self.push(Queued::Close);
    }

    fn push(&self, item: Queued) -> Result<(), Queued> {
        let mut state = self.shared.state();
        // Checked under the lock: the writer sets it under the lock before it drops what is
        // left, so nothing pushed is left behind uncounted.
        if self.shared.writer_gone.load(Ordering::Relaxed) {
            return Err(item);
        }
        if state.queued.capacity() == 0 {
            // Not under the lock: taking a vector may allocate one.
            drop(state);
            let spare = pool::take();
            state = self.shared.state();
            if self.shared.writer_gone.load(Ordering::Relaxed) {
                return Err(item);
            }
            if state.queued.capacity() == 0 {
                state.queued = spare;
            }
        }
        let was_empty = state.queued.is_empty();
        state.queued.push(item);
        // The writer takes all that is queued at once: whoever queued into a non-empty queue
        // follows a sender that has woken it already. A batch being made, or a direct write,
        // sends what is queued when it ends; a writer with a batch takes it when it is done.
        let wake = was_empty && !state.held && state.turn == Turn::Idle;
        drop(state);
        if wake {
            self.shared.writer.wake();
        }
        Ok(())
    }

    /// Holds the queue while the caller makes a batch of frames: they wake nobody until
    /// [`end_batch`](Self::end_batch), which the caller must call.
    pub(crate) fn hold(&self) {
        self.shared.state().held = true;
    }

    /// Ends a batch begun with [`hold`](Self::hold): what is queued leaves now. If the writer
    /// is idle and `direct` is given, this task writes it there, as much as the socket takes
    /// without waiting; the writer is woken for the rest (or for all, without `direct`). A
    /// writer busy with a batch of its own takes them when it is done.
    pub(crate) fn end_batch(&self, direct: Option<&dyn DirectWrite>) {
        let mut state = self.shared.state();
        state.held = false;
        if state.queued.is_empty() || state.turn != Turn::Idle {
            // A writer busy with a batch takes the queue when it is done.
            return;
        }
        let Some(direct) = direct.filter(|_| {
            !self.shared.writer_gone.load(Ordering::Relaxed)
                && !state
                    .queued
                    .iter()
                    .any(|item| matches!(item, Queued::Close))
        }) else {
            drop(state);
            self.shared.writer.wake();
            return;
        };
        let items = std::mem::take(&mut state.queued);
        state.turn = Turn::Direct;
        drop(state);
        self.write_direct(direct, items);
    }

    /// Queues `frame`, or writes it at once to `direct` when nothing is queued, being written
    /// or held (the writer is woken for what the socket does not take): a caller alone on its
    /// connection saves the writer's wake-up and turn. Gives the frame back if the writer is
    /// gone.
    pub(crate) fn send_direct(
        &self,
        frame: OutFrame,
        direct: &dyn DirectWrite,
    ) -> Result<(), OutFrame> {
        let mut state = self.shared.state();
        if !state.queued.is_empty()
            || state.turn != Turn::Idle
            || state.held
            || self.shared.writer_gone.load(Ordering::Relaxed)
        {
            drop(state);
            return self.send(frame);
        }
        state.turn = Turn::Direct;
        drop(state);
        self.shared
            .unwritten
            .fetch_add(frame.len(), Ordering::Relaxed);
        let mut items = pool::take();
        items.push(Queued::Frame(frame));
        self.write_direct(direct, items);
        Ok(())
    }

    /// Writes `items` to `direct` in this task's turn (taken by the caller), then ends the
    /// turn: the rest, and what was queued meanwhile, is the writer's.
    fn write_direct(&self, direct: &dyn DirectWrite, mut items: Vec<Queued>) {
        let (bytes, frames, failed) = write_now(direct, &mut items);
        if let Some(e) = failed {
            let mut first = self
                .shared
                .direct_error
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(e);
        }
        self.shared.unwritten.fetch_sub(bytes, Ordering::Relaxed);
        if let Some(stats) = self.shared.stats.get() {
            stats.sent(frames);
        }

        let mut state = self.shared.state();
        state.turn = Turn::Idle;
        if self.shared.writer_gone.load(Ordering::Relaxed) {
            // The writer left meanwhile, and with it the connection: the rest is not waiting.
            let left: usize = items.iter().map(Queued::len).sum();
            self.shared.unwritten.fetch_sub(left, Ordering::Relaxed);
            items.clear();
        } else if !items.is_empty() {
            // What the socket did not take goes first, before what was queued meanwhile.
            items.append(&mut state.queued);
            std::mem::swap(&mut items, &mut state.queued);
        }
        let wake = !state.queued.is_empty();
        drop(state);
        pool::give(items);
        if wake {
            self.shared.writer.wake();
        }
    }

    /// Bytes queued but not yet written.
    pub(crate) fn unwritten(&self) -> usize {
        self.shared.unwritten.load(Ordering::Relaxed)
    }

    /// The count of bytes queued and not yet written, shared with the writer.
    pub(crate) fn unwritten_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.shared.unwritten)
    }

    /// Whether the writer has stopped.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.writer_gone.load(Ordering::Relaxed)
    }
}

/// Writes as much of `items` as `io` takes now, and removes it from them (a frame written in
/// part keeps its rest); the bytes and whole frames written. An error leaves the frames for the
/// writer, which meets it again and ends the connection's writing as it does for its own; it is
/// returned too, for the writer to report.
fn write_now(
    io: &dyn DirectWrite,
    items: &mut Vec<Queued>,
) -> (usize, usize, Option<std::io::Error>) {
    /// Slices per system call, on the stack (`writev` takes at most 1024).
    const MAX_SLICES: usize = 128;
    let (mut bytes, mut frames) = (0, 0);
    loop {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        'fill: for item in items.iter() {
            let Queued::Frame(frame) = item else { break };
            for part in [&frame.head, &frame.payload, &frame.attachment] {
                if part.is_empty() {
                    continue;
                }
                if count == MAX_SLICES {
                    break 'fill;
                }
                slices[count] = IoSlice::new(part);
                count += 1;
            }
        }
        if count == 0 {
            // Only empty frames were left (a batch with a close is the writer's).
            debug_assert!(items.iter().all(|item| matches!(item, Queued::Frame(_))));
            frames += items.len();
            items.clear();
            return (bytes, frames, None);
        }
        let n = match io.try_write_vectored(&slices[..count]) {
            Ok(n) if n > 0 => n,
            Ok(_) => return (bytes, frames, None),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (bytes, frames, None),
            Err(e) => return (bytes, frames, Some(e)),
        };
        bytes += n;
        frames += consume(items, n);
        if items.is_empty() {
            return (bytes, frames, None);
        }
    }
}

/// Removes `n` written bytes from the front of `items`; how many frames were written whole.
fn consume(items: &mut Vec<Queued>, mut n: usize) -> usize {
    let mut whole = 0;
    for item in items.iter_mut() {
        let Queued::Frame(frame) = item else { break };
        for part in [&mut frame.head, &mut frame.payload, &mut frame.attachment] {
            let take = part.len().min(n);
            part.advance(take);
            n -= take;
        }
        if !frame.is_empty() {
            break;
        }
        whole += 1;
    }
    items.drain(..whole);
    whole
}

/// The receiving side of a write queue, owned by the connection's writer.
#[derive(Debug)]
pub(crate) struct FrameReceiver {
    shared: Arc<Shared>,
}

impl FrameReceiver {
    /// Waits for frames and moves all queued into `items` (which must be empty); 0 once every
    /// sender is gone and nothing is left. The batch before is done: the writer's turn ends.
    pub(crate) async fn recv_all(&mut self, items: &mut Vec<Queued>) -> usize {
        debug_assert!(items.is_empty());
        {
            let mut state = self.shared.state();
            if state.turn == Turn::Writer {
                state.turn = Turn::Idle;
            }
        }
        poll_fn(|cx| {
            if self.take_into(items) > 0 {
                // After a wake that found nothing, the waker may still be registered: a frame
                // queued while the writer gathers would cut its yield short.
                self.shared.writer.take();
                return Poll::Ready(items.len());
            }
            // Registered only to wait (a waker left registered while the writer gathers would
            // cut its yield short), and before looking again, so a frame queued after this
            // look wakes it.
            self.shared.writer.register(cx.waker());
            if self.take_into(items) > 0 {
                self.shared.writer.take();
                return Poll::Ready(items.len());
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // The last sender's frames were queued before it left.
                return Poll::Ready(self.take_into(items));
            }
            Poll::Pending
        })
        .await
    }

    /// Moves what is queued now into `items`, after what is there; how many came. Nothing
    /// while a batch is being written directly: its end wakes the writer if more is queued.
    pub(crate) fn take_into(&mut self, items: &mut Vec<Queued>) -> usize {
        let mut state = self.shared.state();
        let n = state.queued.len();
        if n == 0 || state.turn == Turn::Direct {
            return 0;
        }
        state.turn = Turn::Writer;
        // The whole vector, capacity and all: the queue starts again from nothing.
        let mut taken = std::mem::take(&mut state.queued);
        drop(state);
        if items.is_empty() {
            std::mem::swap(items, &mut taken);
        } else {
            items.append(&mut taken);
        }
        pool::give(taken);
        n
    }

    /// Counts each frame written as a message sent on the connection `stats` count.
    pub(crate) fn count_into(&mut self, stats: Arc<SocketStats>) {
        let _ = self.shared.stats.set(stats);
    }

    /// The connection's counters, if it has them.
    pub(crate) fn stats(&self) -> Option<&SocketStats> {
        self.shared.stats.get().map(|stats| &**stats)
    }

    /// The counter of bytes not yet written.
    pub(crate) fn unwritten(&self) -> &AtomicUsize {
        &self.shared.unwritten
    }

    /// The error a direct write met first, if one did: what the connection's writing failed
    /// of, rather than what the writer met after it.
    pub(crate) fn take_direct_error(&self) -> Option<std::io::Error> {
        self.shared
            .direct_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        let left = {
            let mut state = self.shared.state();
            self.shared.writer_gone.store(true, Ordering::Relaxed);
            std::mem::take(&mut state.queued)
        };
        let bytes: usize = left.iter().map(Queued::len).sum();
        self.shared.unwritten.fetch_sub(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
impl FrameReceiver {
    /// The next queued frame, if any (for tests of what callers queue); `Some(None)` for a
    /// close.
    pub(crate) fn try_recv(&mut self) -> Option<Option<OutFrame>> {
        let mut state = self.shared.state();
        if state.queued.is_empty() {
            return None;
        }
        match state.queued.remove(0) {
            Queued::Frame(frame) => Some(Some(frame)),
            Queued::Close => Some(None),
        }
    }
}

/// Each thread's spare queue vectors, so a busy connection reuses one warm in the cache and an
/// idle one holds none.
pub(crate) mod pool {
    use super::*;

    /// Spare vectors kept per thread, at most.
    const MAX_SPARE: usize = 16;
    /// A vector with room for more frames than this (12 KiB) is freed, not kept.
    const MAX_KEPT_CAPACITY: usize = 128;
    /// Room in a new vector.
    const FIRST_CAPACITY: usize = 16;

    thread_local! {
        static SPARE: RefCell<Vec<Vec<Queued>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty vector, from this thread's spares if it has one.
    pub(crate) fn take() -> Vec<Queued> {
        SPARE
            .try_with(|spare| spare.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(FIRST_CAPACITY))
    }

    /// Keeps `items`' room for the next [`take`] on this thread (what it holds is dropped).
    pub(crate) fn give(mut items: Vec<Queued>) {
        if items.capacity() == 0 || items.capacity() > MAX_KEPT_CAPACITY {
            return;
        }
        items.clear();
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                if spare.len() < MAX_SPARE {
                    spare.push(items);
                }
            }
        });
    }

    /// Spare vectors on this thread.
    #[cfg(test)]
    pub(crate) fn spare() -> usize {
        SPARE.with(|spare| spare.borrow().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(text: &'static str) -> OutFrame {
        OutFrame::whole(Bytes::from_static(text.as_bytes()))
    }

    #[tokio::test]
    async fn the_writer_takes_all_queued_and_ends_after_the_last_sender() {
        let (tx, mut rx) = queue();
        let tx2 = tx.clone();
        tx.send(frame("a")).unwrap();
        tx2.send(frame("bb")).unwrap();
        assert_eq!(tx.unwritten(), 3);
        let mut items = Vec::new();
        assert_eq!(rx.recv_all(&mut items).await, 2);
        assert_eq!(items.iter().map(Queued::len).collect::<Vec<_>>(), [1, 2]);
        items.clear();

        let waiting = tokio::spawn(async move {
            let mut items = Vec::new();
            let first = rx.recv_all(&mut items).await;
            items.clear();
            let second = rx.recv_all(&mut items).await;
            (first, second)
        });
        tokio::task::yield_now().await;
        tx.send(frame("c")).unwrap();
        drop(tx);
        drop(tx2);
        assert_eq!(waiting.await.unwrap(), (1, 0));
    }

    #[test]
    fn an_idle_queue_holds_no_memory() {
        let (tx, mut rx) = queue();
        tx.send(frame("a")).unwrap();
        let mut items = Vec::new();
        assert_eq!(rx.take_into(&mut items), 1);
        assert_eq!(rx.shared.state().queued.capacity(), 0);
        pool::give(items);
        assert_eq!(pool::spare(), 1);
        // The next frame reuses the vector the writer gave back.
        tx.send(frame("b")).unwrap();
        assert_eq!(pool::spare(), 0);
        assert!(rx.shared.state().queued.capacity() > 0);
    }

    /// A socket that takes at most `room` bytes in all, then would block; records what it
    /// took, in how many writes.
    struct FakeSocket {
        room: Mutex<usize>,
        took: Mutex<Vec<u8>>,
        writes: AtomicUsize,
    }

    impl FakeSocket {
        fn with_room(room: usize) -> Self {
            FakeSocket {
                room: Mutex::new(room),
                took: Mutex::new(Vec::new()),
                writes: AtomicUsize::new(0),
            }
        }

        fn took(&self) -> Vec<u8> {
            self.took.lock().unwrap().clone()
        }
    }

    impl DirectWrite for FakeSocket {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            let mut room = self.room.lock().unwrap();
            if *room == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            self.writes.fetch_add(1, Ordering::Relaxed);
            let mut took = self.took.lock().unwrap();
            let mut n = 0;
            for buf in bufs {
                let part = buf.len().min(*room - n);
                took.extend_from_slice(&buf[..part]);
                n += part;
            }
            *room -= n;
            Ok(n)
        }
    }

    fn drain(rx: &mut FrameReceiver) -> Vec<u8> {
        let mut items = Vec::new();
        rx.take_into(&mut items);
        let mut bytes = Vec::new();
        for item in items {
            if let Queued::Frame(frame) = item {
                for part in [frame.head, frame.payload, frame.attachment] {
                    bytes.extend_from_slice(&part);
                }
            }
        }
        bytes
    }

    #[test]
    fn a_held_batch_leaves_in_one_direct_write_at_its_end() {
        let (tx, mut rx) = queue();
        let socket = FakeSocket::with_room(usize::MAX);
        tx.hold();
        tx.send(OutFrame {
            head: Bytes::from_static(b"one"),
            payload: Bytes::from_static(b"-"),
            attachment: Bytes::new(),
        })
        .unwrap();
        tx.send(frame("two")).unwrap();
        assert!(
            socket.took().is_empty(),
            "nothing leaves before the batch ends"
        );
        tx.end_batch(Some(&socket));
        assert_eq!(socket.took(), b"one-two");
        assert_eq!(socket.writes.load(Ordering::Relaxed), 1);
        assert_eq!(tx.unwritten(), 0);
        assert!(
            drain(&mut rx).is_empty(),
            "the writer has nothing left to do"
        );
    }

    #[test]
    fn what_the_socket_does_not_take_goes_to_the_writer_first() {
        let (tx, mut rx) = queue();
        let socket = FakeSocket::with_room(5);
        tx.hold();
        tx.send(frame("abc")).unwrap();
        tx.send(frame("defgh")).unwrap();
        tx.end_batch(Some(&socket));
        assert_eq!(socket.took(), b"abcde");
        assert_eq!(tx.unwritten(), 3, "the rest still waits");
        tx.send(frame("later")).unwrap();
        assert_eq!(drain(&mut rx), b"fghlater");
    }

    #[test]
    fn a_lone_frame_is_written_at_once_unless_the_writer_is_busy() {
        let (tx, mut rx) = queue();
        let socket = FakeSocket::with_room(usize::MAX);
        tx.send_direct(frame("alone"), &socket).unwrap();
        assert_eq!(socket.took(), b"alone");
        assert_eq!(tx.unwritten(), 0);

        // The writer holds a batch (its turn until it next waits): frames queue behind it.
        tx.send(frame("batch")).unwrap();
        let mut batch = Vec::new();
        assert_eq!(rx.take_into(&mut batch), 1);
        tx.send_direct(frame("queued"), &socket).unwrap();
        tx.hold();
        tx.end_batch(Some(&socket));
        assert_eq!(socket.took(), b"alone", "not written past the writer");
        assert_eq!(drain(&mut rx), b"queued");
    }

    #[test]
    fn a_batch_with_a_close_is_left_to_the_writer() {
        let (tx, mut rx) = queue();
        let socket = FakeSocket::with_room(usize::MAX);
        tx.hold();
        tx.send(frame("last")).unwrap();
        tx.close();
        tx.end_batch(Some(&socket));
        assert!(socket.took().is_empty());
        let mut items = Vec::new();
        assert_eq!(rx.take_into(&mut items), 2);
    }

    /// A socket whose write happens while the writer tries to take the queue.
    struct TakingSocket {
        writer: Mutex<FrameReceiver>,
        took_meanwhile: AtomicUsize,
    }

    impl DirectWrite for TakingSocket {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            let mut items = Vec::new();
            let taken = self.writer.lock().unwrap().take_into(&mut items);
            self.took_meanwhile.fetch_add(taken, Ordering::Relaxed);
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
    }

    #[test]
    fn the_writer_takes_nothing_while_a_batch_is_written_directly() {
        let (tx, rx) = queue();
        let tx2 = tx.clone();
        let socket = TakingSocket {
            writer: Mutex::new(rx),
            took_meanwhile: AtomicUsize::new(0),
        };
        tx.hold();
        tx.send(frame("mine")).unwrap();
        // Queued by another sender while the batch is being made: it goes with the batch.
        tx2.send(frame("theirs")).unwrap();
        tx.end_batch(Some(&socket));
        assert_eq!(socket.took_meanwhile.load(Ordering::Relaxed), 0);
        assert_eq!(tx.unwritten(), 0);
    }

    #[test]
    fn frames_left_by_a_direct_write_after_the_writer_left_are_not_counted() {
        let (tx, rx) = queue();
        let rx = Mutex::new(Some(rx));
        struct DroppingSocket<'a>(&'a Mutex<Option<FrameReceiver>>);
        impl DirectWrite for DroppingSocket<'_> {
            fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
                // The writer ends while the batch is being written.
                drop(self.0.lock().unwrap().take());
                Ok(bufs[0].len().min(2))
            }
        }
        tx.hold();
        tx.send(frame("abcdef")).unwrap();
        tx.end_batch(Some(&DroppingSocket(&rx)));
        assert_eq!(tx.unwritten(), 0);
        assert!(tx.is_closed());
    }

    /// A socket the peer has reset.
    struct ResetSocket;

    impl DirectWrite for ResetSocket {
        fn try_write_vectored(&self, _: &[IoSlice<'_>]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::ConnectionReset.into())
        }
    }

    #[test]
    fn a_direct_write_that_fails_leaves_its_frames_and_its_error_to_the_writer() {
        let (tx, mut rx) = queue();
        tx.send_direct(frame("lost?"), &ResetSocket).unwrap();
        assert_eq!(tx.unwritten(), 5);
        assert_eq!(
            rx.take_direct_error().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionReset)
        );
        assert!(rx.take_direct_error().is_none(), "reported once");
        assert_eq!(drain(&mut rx), b"lost?");
    }

    #[test]
    fn frames_sent_after_the_writer_left_are_refused_and_not_counted() {
        let (tx, rx) = queue();
        tx.send(frame("left behind")).unwrap();
        drop(rx);
        assert_eq!(tx.unwritten(), 0, "what the writer left is not waiting");
        assert!(tx.is_closed());
        assert!(tx.send(frame("late")).is_err());
        assert_eq!(tx.unwritten(), 0);
    }
}
