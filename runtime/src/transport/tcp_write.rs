//! The write side of a plain TCP connection, shared: its writer task writes through it when
//! frames must wait for the socket, and a task that made a batch of frames writes them directly
//! when the writer is idle (see [`write_queue`](super::write_queue)).

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use super::sockets::Counted;
use super::write_queue::DirectWrite;

/// A TCP connection's write half that several owners write by turns (the write queue decides
/// whose turn it is). Its write side is shut down by [`poll_shutdown`](AsyncWrite::poll_shutdown)
/// or when the last owner drops it.
#[derive(Debug, Clone)]
pub(crate) struct TcpWriteHalf(Arc<OwnedWriteHalf>);

impl TcpWriteHalf {
    /// Shares `half`.
    pub(crate) fn new(half: OwnedWriteHalf) -> Self {
        TcpWriteHalf(Arc::new(half))
    }

    fn stream(&self) -> &TcpStream {
        (*self.0).as_ref()
    }
}

impl AsyncWrite for TcpWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream().poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                // Readiness was stale (another owner filled the socket): wait for the next.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Now, although the other owners still hold the half.
        Poll::Ready(socket2::SockRef::from(self.stream()).shutdown(Shutdown::Write))
    }
}

impl DirectWrite for Counted<TcpWriteHalf> {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let written = self.get_ref().0.try_write_vectored(bufs)?;
        self.stats().wrote(written);
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::sockets::{Side, SocketStats};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn owners_write_by_turns_and_a_shutdown_ends_the_stream_for_all() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (_read, write) = client.unwrap().into_split();
        let (mut peer, _) = accepted.unwrap();
        let stats = SocketStats::open(Side::Client, addr, addr);
        let mut writer = Counted::new(TcpWriteHalf::new(write), Arc::clone(&stats));
        let direct = writer.clone();

        writer.write_all(b"from the writer, ").await.unwrap();
        let n = direct
            .try_write_vectored(&[IoSlice::new(b"then "), IoSlice::new(b"directly")])
            .unwrap();
        assert_eq!(n, 13, "an idle socket takes a small write whole");
        // Shut down while the other owner still holds the half: the peer sees the end.
        writer.shutdown().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"from the writer, then directly");
        drop(direct);
    }
}
