//! Connections' byte streams: TCP, or TLS over TCP.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[cfg(feature = "tls")]
use super::rewind::Rewind;

use super::sockets::{Counted, Side, SocketStats};
use crate::{errno, Status};

/// A connected client stream.
#[derive(Debug)]
pub(crate) enum ClientIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl ClientIo {
    /// The local address of the underlying socket.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    /// The TCP socket underneath.
    fn tcp(&self) -> &TcpStream {
        match self {
            ClientIo::Plain(s) => s,
            #[cfg(feature = "tls")]
            ClientIo::Tls(s) => s.get_ref().0,
        }
    }
}

/// How a client secures its connections to a server: TLS or not (feature `tls`). Part of
/// what makes connections shareable: channels share a server's connections only when this is
/// equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Security {
    /// TLS options, with the server name already taken from the channel's address.
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ClientTlsOptions>,
}

impl Security {
    /// TLS with `options`, or plain TCP for `None`.
    #[cfg(feature = "tls")]
    pub(crate) fn tls(options: Option<crate::tls::ClientTlsOptions>) -> Self {
        Security { tls: options }
    }

    /// The TLS server name asked for, if any.
    pub(crate) fn server_name(&self) -> Option<&str> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.server_name();
        }
        None
    }
}

/// Connects to `addr` within `connect_timeout`, with TCP_NODELAY; then runs the TLS handshake
/// (within its own timeout) when `security` asks for TLS, offering `alpn`. The connection is
/// listed among the open ones (`/connections`) until it drops, its bytes counted.
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
pub(crate) async fn connect_secured(
    addr: SocketAddr,
    connect_timeout: std::time::Duration,
    security: &Security,
    alpn: &[&[u8]],
) -> Result<Counted<ClientIo>, Status> {
    let stream = connect_tcp(addr, connect_timeout).await?;
    let local = stream.local_addr().unwrap_or(addr);
    let stats = SocketStats::open(Side::Client, addr, local);
    #[cfg(feature = "tls")]
    if let Some(tls) = &security.tls {
        let stream = tls.handshake(stream, addr, alpn).await?;
        stats.set_tls();
        return Ok(Counted::new(ClientIo::Tls(Box::new(stream)), stats));
    }
    Ok(Counted::new(ClientIo::Plain(stream), stats))
}

/// A TCP connection to `addr` within `connect_timeout`, with TCP_NODELAY.
async fn connect_tcp(
    addr: SocketAddr,
    connect_timeout: std::time::Duration,
) -> Result<TcpStream, Status> {
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(Status::from_io(format!("Fail to connect {addr}"), &e)),
        Err(_) => {
            return Err(Status::new(
                errno::ETIMEDOUT,
                format!(
                    "Fail to connect {addr}: connect timeout {}ms",
                    connect_timeout.as_millis()
                ),
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            ClientIo::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            ClientIo::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            ClientIo::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientIo::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            ClientIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            ClientIo::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            ClientIo::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An accepted server connection: TCP, or TLS over it (whose handshake replayed the bytes
/// protocol detection read first).
#[derive(Debug)]
pub(crate) enum ServerIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<Rewind<TcpStream>>>),
}

/// Forwards a poll to whichever stream `$io` holds.
macro_rules! either {
    ($io:expr, $s:ident => $poll:expr) => {
        match $io {
            ServerIo::Plain($s) => $poll,
            #[cfg(feature = "tls")]
            ServerIo::Tls($s) => $poll,
        }
    };
}

impl AsyncRead for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        either!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        either!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        either!(self, s => s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}
