//! Which protocol a new connection speaks: its first bytes are offered to every protocol the
//! server serves (and to TLS), as brpc tries its parsers, until one says yes or all say no.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio::time::Instant;

use super::protocol::ServerProtocol;
use super::state::{wait_for_phase, Phase, Shared};
use crate::protocol::{detect::tls, Detection};
use crate::transport::read_buffer::read_some;

/// Most bytes read to tell a connection's protocol: a protocol still unsure past them is taken
/// as a no.
const MAX_PREFIX: usize = 1024;

/// What a connection's first bytes say.
pub(crate) enum Detected {
    /// A TLS handshake: the protocol is inside.
    Tls,
    /// This protocol.
    Protocol(Arc<dyn ServerProtocol>),
    /// Nothing the server speaks, with a description for the log.
    Unknown(String),
}

/// What the first bytes told, the bytes, and when the connection's first message must have
/// arrived whole (`first_bytes_timeout` after detection began; `None`: no limit).
pub(crate) struct Told {
    pub(crate) detected: Detected,
    pub(crate) prefix: BytesMut,
    pub(crate) first_message_by: Option<Instant>,
}

/// Reads until the first bytes tell the protocol (among `protocols`, and TLS when
/// `tls_allowed`); `None` if the connection ends (or the server closes) first.
pub(crate) async fn detect<S: AsyncRead + Unpin>(
    io: &mut S,
    shared: &Shared,
    protocols: &[Arc<dyn ServerProtocol>],
    tls_allowed: bool,
) -> Option<Told> {
    let mut phase = shared.phase.subscribe();
    let mut buf = BytesMut::new();
    let limit = shared.options.first_bytes_timeout;
    // A limit too far to count is none.
    let first_message_by = limit.and_then(|limit| Instant::now().checked_add(limit));
    let timeout = async {
        match first_message_by {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    loop {
        if let Some(detected) = classify(&buf, protocols, tls_allowed) {
            return Some(Told {
                detected,
                prefix: buf,
                first_message_by,
            });
        }
        tokio::select! {
            read = read_some(io, &mut buf) => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
            () = wait_for_phase(&mut phase, |p| p == Phase::Closed) => return None,
            () = &mut timeout => {
                tracing::warn!(
                    "closing connection: no protocol told by its first bytes within {}ms ({} bytes came)",
                    limit.unwrap_or_default().as_millis(),
                    buf.len()
                );
                return None;
            }
        }
    }
}

/// The protocol `prefix` starts, or `None` while some protocol needs more bytes to tell.
fn classify(
    prefix: &[u8],
    protocols: &[Arc<dyn ServerProtocol>],
    tls_allowed: bool,
) -> Option<Detected> {
    if prefix.is_empty() {
        return None;
    }
    let mut undecided = false;
    match tls(prefix) {
        Detection::Yes if tls_allowed => return Some(Detected::Tls),
        Detection::Yes => return Some(Detected::Unknown("TLS inside TLS".to_owned())),
        Detection::NeedMore => undecided = true,
        Detection::No => {}
    }
    for protocol in protocols {
        match protocol.detect(prefix) {
            Detection::Yes => return Some(Detected::Protocol(Arc::clone(protocol))),
            Detection::NeedMore => undecided = true,
            Detection::No => {}
        }
    }
    if undecided && prefix.len() < MAX_PREFIX {
        return None;
    }
    let shown = &prefix[..prefix.len().min(8)];
    if undecided {
        return Some(Detected::Unknown(format!(
            "no protocol recognised the first {} bytes, starting {shown:02x?}",
            prefix.len()
        )));
    }
    Some(Detected::Unknown(format!(
        "unknown protocol, first bytes {shown:02x?}"
    )))
}
