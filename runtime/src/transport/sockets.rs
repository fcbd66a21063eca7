//! Every open connection of the process, server and client side, with what it carried (brpc's
//! socket map as `/connections` shows it): bytes and messages in and out, in total and over
//! the last second, bytes queued and not yet written, and its age.
//!
//! Counting costs a relaxed atomic add per read or write system call (bytes, by [`Counted`])
//! and per message; once a second the metrics sampler turns the totals into the last second's
//! rates.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::window::{self, Sampled};

/// Which end of a connection this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// A server accepted it.
    Server,
    /// A channel opened it.
    Client,
}

/// The four totals a connection keeps, in this order.
const BYTES_IN: usize = 0;
const BYTES_OUT: usize = 1;
const MESSAGES_IN: usize = 2;
const MESSAGES_OUT: usize = 3;

/// One open connection's counters. Dropped with the connection, which leaves the table then.
#[derive(Debug)]
pub(crate) struct SocketStats {
    id: u64,
    side: Side,
    remote: SocketAddr,
    local: SocketAddr,
    opened: Instant,
    protocol: OnceLock<Cow<'static, str>>,
    tls: AtomicBool,
    /// Bytes in, bytes out, messages in, messages out, since it opened.
    totals: [AtomicU64; 4],
    /// The same over the last whole second, and the totals when that second began.
    last_second: Mutex<([u64; 4], [u64; 4])>,
    /// The connection's write queue's count of bytes not yet written, when it has one.
    unwritten: OnceLock<Arc<AtomicUsize>>,
    /// Set when the connection ended, though something still holds its counters (a channel
    /// keeps a broken connection until its next call replaces it): no longer listed.
    closed: AtomicBool,
}

/// What `/connections` shows of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketView {
    pub(crate) side: Side,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) protocol: String,
    pub(crate) tls: bool,
    pub(crate) age: Duration,
    /// Bytes in, bytes out, messages in, messages out, since it opened.
    pub(crate) totals: [u64; 4],
    /// The same over the last whole second.
    pub(crate) per_second: [u64; 4],
    pub(crate) unwritten: Option<usize>,
}

/// The open connections, by id.
struct Table {
    sockets: Mutex<HashMap<u64, Weak<SocketStats>>>,
}

impl Table {
    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, Weak<SocketStats>>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sampled for Table {
    fn take_sample(&self) {
        let open: Vec<Arc<SocketStats>> =
            self.sockets().values().filter_map(Weak::upgrade).collect();
        for socket in open {
            socket.close_second();
        }
    }
}

static TABLE: LazyLock<Arc<Table>> = LazyLock::new(|| {
    let table = Arc::new(Table {
        sockets: Mutex::new(HashMap::new()),
    });
    window::register(&table);
    table
});

impl SocketStats {
    /// Counters for a connection just opened (`side`), listed until they drop.
    pub(crate) fn open(side: Side, remote: SocketAddr, local: SocketAddr) -> Arc<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let stats = Arc::new(SocketStats {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            side,
            remote,
            local,
            opened: Instant::now(),
            protocol: OnceLock::new(),
            tls: AtomicBool::new(false),
            totals: Default::default(),
            last_second: Mutex::new(([0; 4], [0; 4])),
            unwritten: OnceLock::new(),
            closed: AtomicBool::new(false),
        });
        TABLE.sockets().insert(stats.id, Arc::downgrade(&stats));
        stats
    }

    /// Names the protocol the connection speaks (the first name given stays).
    pub(crate) fn set_protocol(&self, protocol: impl Into<Cow<'static, str>>) {
        let _ = self.protocol.set(protocol.into());
    }

    /// Marks the connection as ended: it leaves the list, whoever still holds its counters.
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Marks the connection as TLS.
    pub(crate) fn set_tls(&self) {
        self.tls.store(true, Ordering::Relaxed);
    }

    /// Shows how many bytes the connection's write queue holds unwritten.
    pub(crate) fn watch_unwritten(&self, unwritten: Arc<AtomicUsize>) {
        let _ = self.unwritten.set(unwritten);
    }

    fn add(&self, which: usize, n: u64) {
        self.totals[which].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts bytes read.
    pub(crate) fn read(&self, bytes: usize) {
        self.add(BYTES_IN, bytes as u64);
    }

    /// Counts bytes written.
    pub(crate) fn wrote(&self, bytes: usize) {
        self.add(BYTES_OUT, bytes as u64);
    }

    /// Counts messages received (requests on a server, responses on a client).
    pub(crate) fn received(&self, messages: usize) {
        self.add(MESSAGES_IN, messages as u64);
    }

    /// Counts messages sent.
    pub(crate) fn sent(&self, messages: usize) {
        self.add(MESSAGES_OUT, messages as u64);
    }

    fn totals(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.totals[i].load(Ordering::Relaxed))
    }

    /// Ends a second: what it carried becomes the last second's figures.
    fn close_second(&self) {
        let now = self.totals();
        let mut last = self.last_second.lock().unwrap_or_else(|e| e.into_inner());
        let (rates, began) = &mut *last;
        *rates = std::array::from_fn(|i| now[i].saturating_sub(began[i]));
        *began = now;
    }

    fn view(&self) -> SocketView {
        let per_second = self.last_second.lock().unwrap_or_else(|e| e.into_inner()).0;
        SocketView {
            side: self.side,
            remote: self.remote,
            local: self.local,
            protocol: self
                .protocol
                .get()
                .map_or_else(|| "-".to_owned(), |p| p.to_string()),
            tls: self.tls.load(Ordering::Relaxed),
            age: self.opened.elapsed(),
            totals: self.totals(),
            per_second,
            unwritten: self.unwritten.get().map(|u| u.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for SocketStats {
    fn drop(&mut self) {
        TABLE.sockets().remove(&self.id);
    }
}

/// Every open connection, oldest first.
pub(crate) fn open_sockets() -> Vec<SocketView> {
    let open: Vec<Arc<SocketStats>> = TABLE
        .sockets()
        .values()
        .filter_map(Weak::upgrade)
        .filter(|s| !s.closed.load(Ordering::Relaxed))
        .collect();
    let mut views: Vec<(u64, SocketView)> = open.iter().map(|s| (s.id, s.view())).collect();
    views.sort_by_key(|(id, _)| *id);
    views.into_iter().map(|(_, view)| view).collect()
}

/// A byte stream whose reads and writes are counted into a connection's [`SocketStats`].
#[derive(Debug, Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    stats: Arc<SocketStats>,
}

impl<S> Counted<S> {
    /// `inner`, counted into `stats`.
    pub(crate) fn new(inner: S, stats: Arc<SocketStats>) -> Self {
        Counted { inner, stats }
    }

    /// The connection's counters.
    pub(crate) fn stats(&self) -> &Arc<SocketStats> {
        &self.stats
    }

    /// The stream underneath.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The stream and its counters, apart.
    pub(crate) fn into_parts(self) -> (S, Arc<SocketStats>) {
        (self.inner, self.stats)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.stats.read(buf.filled().len() - before);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.stats.wrote(n);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.stats.wrote(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_and_messages_are_counted_and_a_closed_connection_leaves_the_table() {
        let (a, mut b) = tokio::io::duplex(64);
        let remote: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let stats = SocketStats::open(Side::Client, remote, "127.0.0.1:10".parse().unwrap());
        stats.set_protocol("baidu_std");
        stats.set_protocol("ignored");
        let mut counted = Counted::new(a, Arc::clone(&stats));
        counted.write_all(b"hello").await.unwrap();
        stats.sent(1);
        b.write_all(b"ok!").await.unwrap();
        let mut got = [0; 3];
        counted.read_exact(&mut got).await.unwrap();
        stats.received(1);
        let view = open_sockets()
            .into_iter()
            .find(|v| v.remote == remote)
            .expect("listed");
        assert_eq!(view.totals, [3, 5, 1, 1]);
        assert_eq!(view.protocol, "baidu_std");
        assert_eq!(view.side, Side::Client);
        assert_eq!(view.per_second, [0; 4], "no second has ended");
        stats.close_second();
        counted.write_all(b"x").await.unwrap();
        stats.close_second();
        let view = stats.view();
        assert_eq!(
            view.per_second,
            [0, 1, 0, 0],
            "the last second carried one byte out"
        );
        stats.mark_closed();
        assert!(
            open_sockets().iter().all(|v| v.remote != remote),
            "ended, though still held"
        );
        drop(counted);
        drop(stats);
        assert!(TABLE.sockets().values().all(|s| s.upgrade().is_some()));
    }
}
