//! A protocol as a server serves it: does a connection speak it, and serving one that does.
//! Framed protocols get the shared loop ([`super::framed`]); HTTP/1.1 and HTTP/2 own their
//! connections ([`super::http1`], [`super::h2`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;

use super::state::{ConnectionGuard, Peer, Shared};
use crate::protocol::Detection;
use crate::transport::sockets::Counted;
use crate::transport::stream::ServerIo;

/// A connection being served, until it closes.
pub(crate) type ServeFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One protocol on the server's port.
pub(crate) trait ServerProtocol: Send + Sync + 'static {
    /// The protocol's name, for logs.
    fn name(&self) -> &'static str;

    /// Whether a connection whose first bytes are `prefix` speaks this protocol.
    fn detect(&self, prefix: &[u8]) -> Detection;

    /// Serves a connection that speaks it, whose first bytes (already read, and counted) are
    /// `prefix`; its reads and writes are counted for `/connections`.
    fn serve(
        &self,
        io: Counted<ServerIo>,
        prefix: BytesMut,
        peer: Peer,
        shared: Arc<Shared>,
        open: ConnectionGuard,
    ) -> ServeFuture;
}
