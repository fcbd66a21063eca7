//! TLS on the server's port: handshake, then the same protocol detection inside.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;

use super::conn::Peer;
use super::{ConnectionGuard, Shared};

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
/// handshake, then the protocol inside, detected as on a plain connection (HTTP/2 at once when
/// the client chose `h2` by ALPN).
#[cfg(feature = "tls")]
pub(crate) async fn serve_tls(
    stream: TcpStream,
    buf: BytesMut,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) {
    use crate::protocol::detect::Detected;
    use crate::transport::rewind::Rewind;

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
        () = super::wait_for_phase(&mut phase, |p| p == super::Phase::Closed) => return,
    };
    let peer = Peer { tls: true, ..peer };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    if h2 {
        super::conn::serve_detected(Detected::Http2, tls, BytesMut::new(), peer, shared, open)
            .await;
        return;
    }
    let Some((detected, buf)) = super::conn::read_prefix(&mut tls, &shared).await else {
        return;
    };
    super::conn::serve_detected(detected, tls, buf, peer, shared, open).await;
}

/// Without the `tls` feature a TLS handshake cannot be answered: the connection is closed.
#[cfg(not(feature = "tls"))]
pub(crate) async fn serve_tls(
    stream: TcpStream,
    buf: BytesMut,
    peer: Peer,
    shared: Arc<Shared>,
    open: ConnectionGuard,
) {
    let _ = (stream, buf, shared, open);
    tracing::warn!(remote = %peer.remote, "closing connection: TLS handshake on a server without TLS (brisk built without feature `tls`)");
}
