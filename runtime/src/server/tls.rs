//! TLS on the server's port: handshake, then the same protocol detection inside.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::protocol::ServerProtocol;
use super::state::{ConnectionGuard, Peer, Shared};
use crate::transport::sockets::SocketStats;

/// Whether the server refuses plaintext connections (`ServerTlsOptions::force`).
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
pub(crate) fn rejects_plaintext(shared: &Shared) -> bool {
    #[cfg(feature = "tls")]
    {
        shared
            .options
            .tls
            .as_ref()
            .is_some_and(|tls| tls.is_forced())
    }
    #[cfg(not(feature = "tls"))]
    {
        false
    }
}

/// Serves a connection whose first bytes are a TLS handshake (already read into `buf`): the
/// handshake, then the protocol inside, detected among `protocols` as on a plain connection
/// (a client that chose `h2` by ALPN starts with the HTTP/2 preface).
#[cfg(feature = "tls")]
pub(crate) async fn serve_tls(
    stream: TcpStream,
    buf: BytesMut,
    peer: Peer,
    shared: Arc<Shared>,
    protocols: &[Arc<dyn ServerProtocol>],
    open: ConnectionGuard,
    stats: Arc<SocketStats>,
) {
    use super::detect::{detect, Detected, Told};
    use crate::transport::rewind::Rewind;
    use crate::transport::sockets::Counted;
    use crate::transport::stream::ServerIo;

    let Some(options) = shared.options.tls.as_ref() else {
        tracing::warn!(remote = %peer.remote, "closing connection: TLS handshake on a server without TLS");
        return;
    };
    let Some(acceptor) = options.acceptor() else {
        tracing::warn!(remote = %peer.remote, "closing connection: the server's TLS is not prepared");
        return;
    };
    let limit = options.handshake_limit();
    let handshake = acceptor.accept(Rewind::new(buf.freeze(), stream));
    let mut phase = shared.phase.subscribe();
    use super::state::{wait_for_phase, Phase};
    let mut tls = tokio::select! {
        done = tokio::time::timeout(limit, handshake) => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::warn!(remote = %peer.remote, "closing connection: TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::warn!(remote = %peer.remote, "closing connection: no TLS handshake within {}ms", limit.as_millis());
                return;
            }
        },
        () = wait_for_phase(&mut phase, |p| p == Phase::Closed) => return,
    };
    let Some(Told {
        detected,
        prefix: buf,
        first_message_by,
    }) = detect(&mut tls, &shared, protocols, false).await
    else {
        return;
    };
    let peer = Peer {
        tls: true,
        first_message_by,
        ..peer
    };
    match detected {
        Detected::Protocol(protocol) => {
            // The bytes detection read through TLS count as read (TLS's own bytes do not).
            stats.read(buf.len());
            stats.set_protocol(protocol.name());
            let io = Counted::new(ServerIo::Tls(Box::new(tls)), stats);
            protocol.serve(io, buf, peer, shared, open).await;
        }
        Detected::Tls | Detected::Unknown(_) => {
            let reason = match detected {
                Detected::Unknown(reason) => reason,
                _ => "TLS inside TLS".to_owned(),
            };
            tracing::warn!(remote = %peer.remote, "closing connection: {reason}");
        }
    }
}

/// Without the `tls` feature a TLS handshake cannot be answered: the connection is closed.
#[cfg(not(feature = "tls"))]
pub(crate) async fn serve_tls(
    stream: TcpStream,
    buf: BytesMut,
    peer: Peer,
    shared: Arc<Shared>,
    protocols: &[Arc<dyn ServerProtocol>],
    open: ConnectionGuard,
    stats: Arc<SocketStats>,
) {
    let _ = (stream, buf, shared, protocols, open, stats);
    tracing::warn!(remote = %peer.remote, "closing connection: TLS handshake on a server without TLS (brisk built without feature `tls`)");
}
