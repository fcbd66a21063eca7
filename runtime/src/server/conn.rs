//! One accepted connection: find its protocol (through TLS, if it starts a handshake) and hand
//! it to that protocol.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::detect::{detect, Detected, Told};
use super::protocol::ServerProtocol;
use super::state::{ConnectionGuard, Peer, Shared};
use crate::transport::sockets::{Counted, Side, SocketStats};
use crate::transport::stream::ServerIo;

/// Serves one accepted connection until the peer leaves, the input is bad, or the server closes.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    shared: Arc<Shared>,
    protocols: Arc<[Arc<dyn ServerProtocol>]>,
    open: ConnectionGuard,
    internal: bool,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(shared.local_addr);
    let stats = SocketStats::open(Side::Server, remote, local);
    let mut stream = stream;
    let Some(Told {
        detected,
        prefix: buf,
        first_message_by,
    }) = detect(&mut stream, &shared, &protocols, true).await
    else {
        return;
    };
    let peer = Peer {
        remote,
        local,
        tls: false,
        internal,
        first_message_by,
    };
    match detected {
        Detected::Tls => {
            stats.set_tls();
            super::tls::serve_tls(stream, buf, peer, shared, &protocols, open, stats).await;
        }
        _ if super::tls::rejects_plaintext(&shared) => {
            tracing::warn!(%remote, "closing connection: plaintext on a server that requires TLS");
        }
        Detected::Protocol(protocol) => {
            tracing::trace!(%remote, protocol = protocol.name(), "connection detected");
            // The bytes detection read count as read. (On TLS, TLS's own bytes do not count:
            // what is counted is the plaintext.)
            stats.read(buf.len());
            stats.set_protocol(protocol.name());
            let io = Counted::new(ServerIo::Plain(stream), stats);
            protocol.serve(io, buf, peer, shared, open).await;
        }
        Detected::Unknown(reason) => {
            tracing::warn!(%remote, "closing connection: {reason}");
        }
    }
}
