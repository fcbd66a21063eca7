//! One writer task per connection drains a queue of frames with vectored writes, so frames from
//! many concurrent callers leave in few syscalls (brpc's batched, wait-free write in tokio form).
//! On plain TCP, a task may write in the writer's stead while the writer is idle (see
//! [`write_queue`](super::write_queue)); the writer takes what the socket did not.

use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::gather::GatherPolicy;
use super::write_queue::{pool, Queued};
pub(crate) use super::write_queue::{queue, FrameReceiver, FrameSender};
pub(crate) use crate::protocol::OutFrame;

/// Unwritten bytes beyond which a connection refuses new calls or requests with EOVERCROWDED
/// (brpc's default), so a peer that does not read cannot grow the other side's memory without
/// bound.
pub(crate) const MAX_UNWRITTEN_BYTES: usize = 64 * 1024 * 1024;

/// Writes queued frames until every sender is gone or one asks to close, then shuts the write
/// side down.
///
/// Each batch is everything queued when the writer looks, however much (as brpc's writer takes
/// its whole list): `writev` sends at most `IOV_MAX` slices a call, and the batch's bytes leave
/// the unwritten count when all of it is written.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut io: W,
    mut queue: FrameReceiver,
) -> std::io::Result<()> {
    let mut items = Vec::new();
    let mut gather = GatherPolicy::default();
    let mut closing = false;
    while !closing && queue.recv_all(&mut items).await > 0 {
        // The frame that woke us usually comes from one of many tasks a read batch made ready
        // together (tokio runs a woken task next, in its LIFO slot). Let the others run first
        // and queue their frames, so they all leave in one writev instead of one each.
        if gather.should_yield() {
            tokio::task::yield_now().await;
            gather.record(queue.take_into(&mut items) > 0);
        }
        // Taken off the count once written, or if this loop is dropped midway; frames after a
        // close are not written and no longer count as waiting either.
        let in_flight = InFlight {
            unwritten: queue.unwritten(),
            len: items.iter().map(Queued::len).sum(),
        };
        if let Some(close) = items.iter().position(|item| matches!(item, Queued::Close)) {
            items.truncate(close);
            closing = true;
        }
        let written = write_batch(&mut io, &items).await;
        drop(in_flight);
        if let (Some(stats), Ok(())) = (queue.stats(), &written) {
            stats.sent(items.len());
        }
        // An idle connection keeps no vector: this one goes to the thread's spares.
        pool::give(std::mem::take(&mut items));
        // A direct write that failed first saw the socket's real error; this one may be only
        // its echo (EPIPE after ECONNRESET).
        written.map_err(|e| queue.take_direct_error().unwrap_or(e))?;
    }
    io.shutdown().await
}

/// Bytes of a batch being written, which leave the queue's count when it is done or dropped.
struct InFlight<'a> {
    unwritten: &'a AtomicUsize,
    len: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.unwritten.fetch_sub(self.len, Ordering::Relaxed);
    }
}

async fn write_batch<W: AsyncWrite + Unpin>(io: &mut W, batch: &[Queued]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .filter_map(|item| match item {
            Queued::Frame(frame) => Some(frame),
            Queued::Close => None,
        })
        .flat_map(|f| [&f.head, &f.payload, &f.attachment])
        .filter(|b| !b.is_empty())
        .map(|b| IoSlice::new(b))
        .collect();
    let mut remaining = &mut slices[..];
    while !remaining.is_empty() {
        let n = io.write_vectored(remaining).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut remaining, n);
    }
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn frames_arrive_in_order_and_counts_return_to_zero() {
        let (client, mut server) = tokio::io::duplex(64);
        let (tx, rx) = queue();
        let writer = tokio::spawn(write_loop(client, rx));
        let mut expected = Vec::new();
        for i in 0..100u8 {
            let frame = OutFrame {
                head: Bytes::from(vec![i; 3]),
                payload: Bytes::new(),
                attachment: Bytes::from(vec![i; (i % 7) as usize]),
            };
            expected.extend_from_slice(&frame.head);
            expected.extend_from_slice(&frame.attachment);
            tx.send(frame).unwrap();
        }
        let unwritten = tx.unwritten_counter();
        drop(tx);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got, expected);
        assert_eq!(unwritten.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_close_writes_what_came_before_and_nothing_after() {
        let (client, mut server) = tokio::io::duplex(1024);
        let (tx, rx) = queue();
        tx.send(OutFrame::whole(Bytes::from_static(b"before")))
            .unwrap();
        tx.close();
        let _ = tx.send(OutFrame::whole(Bytes::from_static(b"after")));
        let writer = tokio::spawn(write_loop(client, rx));
        let mut got = Vec::new();
        // The write side is shut down although `tx` is still alive.
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"before");
        writer.await.unwrap().unwrap();
        assert_eq!(
            tx.unwritten(),
            0,
            "the frame dropped after the close is not waiting"
        );
        assert!(tx.send(OutFrame::default()).is_err(), "the writer is gone");
    }

    /// An `AsyncWrite` that accepts everything and counts its writes.
    #[derive(Default)]
    struct CountingWriter {
        writes: Arc<AtomicUsize>,
    }

    impl AsyncWrite for CountingWriter {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            std::task::Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    // One worker: tokio runs a task another task woke next (its LIFO slot), which is what
    // made the writer leave with one frame per write before it learnt to gather.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn frames_from_tasks_woken_together_leave_in_one_write() {
        let writer = CountingWriter::default();
        let writes = Arc::clone(&writer.writes);
        let (tx, rx) = queue();
        let write_task = tokio::spawn(write_loop(writer, rx));
        for round in 0..3u8 {
            // 64 callers made ready at once, as a read batch of responses does.
            let go = Arc::new(tokio::sync::Semaphore::new(0));
            let callers: Vec<_> = (0..64)
                .map(|_| {
                    let (tx, go) = (tx.clone(), Arc::clone(&go));
                    tokio::spawn(async move {
                        let _permit = go.acquire().await.unwrap();
                        let frame = OutFrame {
                            head: Bytes::from(vec![round; 16]),
                            ..OutFrame::default()
                        };
                        tx.send(frame).unwrap();
                    })
                })
                .collect();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            go.add_permits(64);
            for caller in callers {
                caller.await.unwrap();
            }
        }
        drop(tx);
        write_task.await.unwrap().unwrap();
        // Without gathering it takes about 144 writes; with it usually 3 to 9. A round now and
        // then in which the writer finds every frame queued already makes its next yield look
        // useless, and the policy then skips yields for a while (22 writes seen, on a busy
        // machine): a quarter of the frames is the bound.
        let writes = writes.load(Ordering::Relaxed);
        assert!(writes <= 48, "{writes} writes for 3 rounds of 64 frames");
    }
}
