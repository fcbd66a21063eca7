//! A connection's queue of frames to write: many senders, one writer.
//!
//! Senders push under a short lock; the writer takes everything queued at once. An idle
//! connection's queue holds no memory: the writer takes the queue's vector with the frames in
//! it, and gives it back to a per-thread pool once they are written, where the next sender on
//! that thread finds it (tokio's channel keeps a 32-slot block per connection instead).

use std::cell::RefCell;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

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

/// What the senders and the writer of one connection share.
#[derive(Debug)]
struct Shared {
    queued: Mutex<Vec<Queued>>,
    /// The writer, waiting for frames.
    writer: AtomicWaker,
    /// Live senders; the writer ends when none is left and the queue is empty.
    senders: AtomicUsize,
    /// The writer has stopped: frames sent now are refused.
    writer_gone: AtomicBool,
    /// Bytes queued but not yet written.
    unwritten: Arc<AtomicUsize>,
}

impl Shared {
    fn queued(&self) -> MutexGuard<'_, Vec<Queued>> {
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A write queue: the sender for callers, the receiver for the connection's writer.
pub(crate) fn queue() -> (FrameSender, FrameReceiver) {
    let shared = Arc::new(Shared {
        queued: Mutex::new(Vec::new()),
        writer: AtomicWaker::new(),
        senders: AtomicUsize::new(1),
        writer_gone: AtomicBool::new(false),
        unwritten: Arc::new(AtomicUsize::new(0)),
    });
    (
        FrameSender {
            shared: Arc::clone(&shared),
        },
        FrameReceiver {
            shared,
            stats: None,
        },
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
        let mut queued = self.shared.queued();
        // Checked under the lock: the writer sets it under the lock before it drops what is
        // left, so nothing pushed is left behind uncounted.
        if self.shared.writer_gone.load(Ordering::Relaxed) {
            return Err(item);
        }
        if queued.capacity() == 0 {
            // Not under the lock: taking a vector may allocate one.
            drop(queued);
            let spare = pool::take();
            queued = self.shared.queued();
            if self.shared.writer_gone.load(Ordering::Relaxed) {
                return Err(item);
            }
            if queued.capacity() == 0 {
                *queued = spare;
            }
        }
        let was_empty = queued.is_empty();
        queued.push(item);
        drop(queued);
        // The writer takes all that is queued at once: whoever queued into a non-empty queue
        // follows a sender that has woken it already.
        if was_empty {
            self.shared.writer.wake();
        }
        Ok(())
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

/// The receiving side of a write queue, owned by the connection's writer.
#[derive(Debug)]
pub(crate) struct FrameReceiver {
    shared: Arc<Shared>,
    /// The connection's counters, which count each frame written as a message sent.
    stats: Option<Arc<SocketStats>>,
}

impl FrameReceiver {
    /// Waits for frames and moves all queued into `items` (which must be empty); 0 once every
    /// sender is gone and nothing is left.
    pub(crate) async fn recv_all(&mut self, items: &mut Vec<Queued>) -> usize {
        debug_assert!(items.is_empty());
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

    /// Moves what is queued now into `items`, after what is there; how many came.
    pub(crate) fn take_into(&mut self, items: &mut Vec<Queued>) -> usize {
        let mut queued = self.shared.queued();
        let n = queued.len();
        if n == 0 {
            return 0;
        }
        // The whole vector, capacity and all: the queue starts again from nothing.
        let mut taken = std::mem::take(&mut *queued);
        drop(queued);
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
        self.stats = Some(stats);
    }

    /// The connection's counters, if it has them.
    pub(crate) fn stats(&self) -> Option<&SocketStats> {
        self.stats.as_deref()
    }

    /// The counter of bytes not yet written.
    pub(crate) fn unwritten(&self) -> &AtomicUsize {
        &self.shared.unwritten
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        let left = {
            let mut queued = self.shared.queued();
            self.shared.writer_gone.store(true, Ordering::Relaxed);
            std::mem::take(&mut *queued)
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
        let mut queued = self.shared.queued();
        if queued.is_empty() {
            return None;
        }
        match queued.remove(0) {
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
        assert_eq!(rx.shared.queued().capacity(), 0);
        pool::give(items);
        assert_eq!(pool::spare(), 1);
        // The next frame reuses the vector the writer gave back.
        tx.send(frame("b")).unwrap();
        assert_eq!(pool::spare(), 0);
        assert!(rx.shared.queued().capacity() > 0);
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
