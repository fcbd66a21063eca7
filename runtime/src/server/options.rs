//! [`ServerOptions`]: what a server is configured with.

use std::sync::Arc;

use crate::protocol::DEFAULT_MAX_BODY_SIZE;

/// A server's options. Defaults are brpc's.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Largest request body accepted; a bigger frame closes its connection (default 64 MiB).
    pub max_body_size: usize,
    /// Verifies clients' credentials (default none): see [`crate::auth`].
    pub authenticator: Option<Arc<dyn crate::Authenticator>>,
    /// TLS on the port (default none: TLS handshakes are closed): see
    /// [`ServerBuilder::tls`](crate::ServerBuilder::tls).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::ServerTlsOptions>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            authenticator: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}
