//! One writer task per connection drains a queue of frames with vectored writes, so frames from
//! many concurrent callers leave in few syscalls (brpc's batched, wait-free write in tokio form).

use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Frames taken from the queue per batch, at most.
const MAX_BATCH: usize = 256;

/// An encoded frame in up to three pieces, written back to back without copying.
#[derive(Debug, Default)]
pub(crate) struct OutFrame {
    /// Header and meta (and the payload, when it was encoded in place).
    pub head: Bytes,
    /// Payload, when kept separate.
    pub payload: Bytes,
    /// Attachment.
    pub attachment: Bytes,
}

impl OutFrame {
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.payload.len() + self.attachment.len()
    }
}

/// The sending side of a connection's write queue, counting bytes not yet written.
#[derive(Debug, Clone)]
pub(crate) struct FrameSender {
    tx: mpsc::UnboundedSender<OutFrame>,
    unwritten: Arc<AtomicUsize>,
}

impl FrameSender {
    /// Queues `frame`; gives it back if the writer is gone.
    pub(crate) fn send(&self, frame: OutFrame) -> Result<(), OutFrame> {
        let len = frame.len();
        self.unwritten.fetch_add(len, Ordering::Relaxed);
        self.tx.send(frame).map_err(|e| {
            self.unwritten.fetch_sub(len, Ordering::Relaxed);
            e.0
        })
    }

    /// Bytes queued but not yet written.
    pub(crate) fn unwritten(&self) -> usize {
        self.unwritten.load(Ordering::Relaxed)
    }

    /// Whether the writer has stopped.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A write queue: the sender for callers, the receiver for [`write_loop`].
pub(crate) fn queue() -> (FrameSender, FrameReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let unwritten = Arc::new(AtomicUsize::new(0));
    (
        FrameSender {
            tx,
            unwritten: Arc::clone(&unwritten),
        },
        FrameReceiver { rx, unwritten },
    )
}

/// The receiving side of a write queue.
#[derive(Debug)]
pub(crate) struct FrameReceiver {
    rx: mpsc::UnboundedReceiver<OutFrame>,
    unwritten: Arc<AtomicUsize>,
}

/// Writes queued frames until every sender is gone, then shuts the write side down.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut io: W,
    mut queue: FrameReceiver,
) -> std::io::Result<()> {
    let mut batch = Vec::with_capacity(32);
    while queue.rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let written = write_batch(&mut io, &batch).await;
        let len: usize = batch.iter().map(OutFrame::len).sum();
        queue.unwritten.fetch_sub(len, Ordering::Relaxed);
        batch.clear();
        written?;
    }
    io.shutdown().await
}

async fn write_batch<W: AsyncWrite + Unpin>(io: &mut W, batch: &[OutFrame]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
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
        let unwritten = Arc::clone(&tx.unwritten);
        drop(tx);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got, expected);
        assert_eq!(unwritten.load(Ordering::Relaxed), 0);
    }
}
