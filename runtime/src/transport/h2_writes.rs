//! The I/O under an HTTP/2 connection, shaped so that `h2` writes what one poll makes ready
//! in as few system calls as it can.
//!
//! `h2` copies a DATA frame's payload into its frame buffer only up to a threshold: 256 bytes
//! when the I/O writes vectors, 1 KiB when it does not. A larger payload waits beside the
//! buffer, and no frame after it can be buffered until both are written: a gRPC answer of a
//! 581-byte message went out in two `writev`s, the second with its 10 bytes of trailers, and
//! callers' requests of that size left one `writev` each. [`StagedWrites`] says it does not
//! write vectors, so `h2` copies payloads of up to 1 KiB and buffers the frames around them,
//! and keeps what `h2` writes of its buffer until the next write or flush, so that a larger
//! payload still leaves with the buffer before it in one `writev`.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A write larger than this is not staged (`h2`'s frame buffer holds 16 KiB).
const STAGE_AT_MOST: usize = 32 * 1024;

/// Staging buffers larger than this are given back once written, so an idle connection holds
/// no large one.
const KEEP_AT_MOST: usize = 4 * 1024;

/// An HTTP/2 connection's I/O (see the module's docs): a write is kept until the next write,
/// which goes out with it in one `writev`, or the next flush.
#[derive(Debug)]
pub(crate) struct StagedWrites<S> {
    inner: S,
    /// Bytes reported written and not yet written, from `start` on.
    staged: Vec<u8>,
    start: usize,
}

impl<S> StagedWrites<S> {
    /// `inner`, its writes staged.
    pub(crate) fn new(inner: S) -> Self {
        StagedWrites {
            inner,
            staged: Vec::new(),
            start: 0,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.staged[self.start..]
    }

    /// Marks `n` staged bytes written.
    fn advance(&mut self, n: usize) {
        self.start += n;
        if self.start == self.staged.len() {
            self.start = 0;
            if self.staged.capacity() > KEEP_AT_MOST {
                self.staged = Vec::new();
            } else {
                self.staged.clear();
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> StagedWrites<S> {
    /// Writes the staged bytes, with as much of `then` as the socket takes in the same
    /// `writev`; how much of `then` went.
    fn poll_write_staged(&mut self, cx: &mut Context<'_>, then: &[u8]) -> Poll<io::Result<usize>> {
        while !self.pending().is_empty() {
            let staged = self.pending().len();
            let slices = [IoSlice::new(&self.staged[self.start..]), IoSlice::new(then)];
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n.min(staged));
            if n > staged {
                return Poll::Ready(Ok(n - staged));
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StagedWrites<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StagedWrites<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // `h2` writes its frame buffer, then a payload too large to copy there: the buffer is
        // staged, the payload goes with it.
        if this.pending().is_empty() && buf.len() <= STAGE_AT_MOST {
            this.staged.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        let went = ready!(this.poll_write_staged(cx, buf))?;
        if went > 0 {
            return Poll::Ready(Ok(went));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    /// Not vectored, so that `h2` copies payloads of up to 1 KiB into its frame buffer (see
    /// the module's docs); a larger one still goes in one `writev` with the bytes before it.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_write_staged(cx, &[]))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_write_staged(cx, &[]))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Records each write call's bytes, taking at most `limit` bytes a call.
    #[derive(Default)]
    struct Calls {
        writes: Vec<Vec<u8>>,
        limit: Option<usize>,
    }

    impl AsyncWrite for Calls {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.limit.map_or(buf.len(), |limit| buf.len().min(limit));
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = self.limit.map_or(all.len(), |limit| all.len().min(limit));
            self.writes.push(all[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_frame_buffer_and_the_payload_after_it_leave_in_one_write() {
        let mut io = StagedWrites::new(Calls::default());
        io.write_all(b"frames").await.unwrap();
        assert!(
            io.inner.writes.is_empty(),
            "kept until more comes or a flush"
        );
        // A payload, however large, is not copied: it leaves with the frames before it.
        let payload = vec![7u8; 4 * STAGE_AT_MOST];
        io.write_all(&payload).await.unwrap();
        assert_eq!(io.inner.writes.len(), 1);
        assert_eq!(io.inner.writes[0].len(), 6 + payload.len());
        io.write_all(b"trailers").await.unwrap();
        assert_eq!(io.inner.writes.len(), 1);
        io.flush().await.unwrap();
        assert_eq!(io.inner.writes[1], b"trailers");
        assert!(io.pending().is_empty());
    }

    #[tokio::test]
    async fn partial_writes_lose_and_repeat_nothing() {
        let mut io = StagedWrites::new(Calls {
            limit: Some(5),
            ..Calls::default()
        });
        let mut sent = Vec::new();
        for part in [&b"0123456789"[..], &[b'x'; STAGE_AT_MOST], b"tail"] {
            io.write_all(part).await.unwrap();
            sent.extend_from_slice(part);
        }
        io.shutdown().await.unwrap();
        let written: Vec<u8> = io.inner.writes.concat();
        assert_eq!(written, sent);
    }

    #[tokio::test]
    async fn reads_pass_through_and_h2_copies_small_payloads() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut io = StagedWrites::new(near);
        assert!(!io.is_write_vectored());
        far.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        io.write_all(b"pong").await.unwrap();
        io.flush().await.unwrap();
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
    }
}
