//! TLS on the server's port: handshake, then the same protocol detection inside.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::conn::Peer;
use super::{ConnectionGuard, Shared};

/// Serves a connection whose first bytes are a TLS handshake (already read into `buf`).
pub(crate) async fn serve_tls(
    stream: TcpStream,
    buf: BytesMut,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) {
    let _ = (stream, buf, shared, open);
    tracing::warn!(remote = %peer.remote, "closing connection: TLS handshake on a server without TLS");
}
