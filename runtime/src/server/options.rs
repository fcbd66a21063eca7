//! [`ServerOptions`]: what a server is configured with.

use std::sync::Arc;
use std::time::Duration;

use crate::protocol::DEFAULT_MAX_BODY_SIZE;

/// A server's options. Defaults are brpc's.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Largest request body accepted; a bigger frame closes its connection (default 64 MiB).
    pub max_body_size: usize,
    /// How long a stopping server lets open streams go on before it ends them with ELOGOFF
    /// (default 3 s): [`Server::join`](crate::Server::join) waits for streams no longer than
    /// this. Unary calls in flight are always waited for.
    pub stream_stop_grace: Duration,
    /// HTTP/2 streams (gRPC calls) one connection may have open at once, the
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` the server advertises (default `None`: no limit, as
    /// brpc's, grpc-go's and tonic's servers). Calls beyond it wait in the client until one ends.
    pub max_concurrent_streams: Option<u32>,
    /// The most requests the server runs at once, over every protocol (brpc's
    /// `ServerOptions.max_concurrency`, its "constant" limiter; default 0: no limit). A request
    /// past it is answered at once with ELIMIT `Reached server's max_concurrency=N` (HTTP 503,
    /// gRPC `RESOURCE_EXHAUSTED`), which clients retry on another server. A gRPC stream counts
    /// as one request while it is open. [`Server::set_max_concurrency`](crate::Server) changes
    /// it while the server runs.
    pub max_concurrency: usize,
    /// How long a new connection may take to send the first bytes that tell its protocol
    /// and, on the framed protocols (baidu_std, hulu_pbrpc, sofa_pbrpc, nshead) and redis, its
    /// whole first request (inside TLS, timed from the handshake's end), before the server
    /// closes it (default 10 s; `None`: no limit). A connection that says nothing, or trickles
    /// its first frame, would otherwise hold a socket and a task forever. After its first
    /// request a connection may idle as long as it likes (unless [`idle_timeout`](Self::idle_timeout)
    /// is set), and a later frame may take its time, as in brpc; HTTP requests are bounded by
    /// [`request_read_timeout`](Self::request_read_timeout).
    pub first_bytes_timeout: Option<Duration>,
    /// The most connections the server keeps open at once (default 0: no limit). A connection
    /// accepted past it is closed at once, the refusal logged, so a flood of connections
    /// cannot take every file descriptor and task.
    pub max_connections: usize,
    /// Closes a connection that has sent nothing for this long while it has no request in
    /// flight, as brpc's `ServerOptions.idle_timeout_sec` (default `None`: never, as brpc's; HTTP/1.1
    /// connections are closed idle at `request_read_timeout` anyway). On the
    /// framed protocols (baidu_std, hulu_pbrpc, sofa_pbrpc, nshead) an open brpc stream keeps
    /// the connection; HTTP/2 connections are sent GOAWAY first; on HTTP/1.1 it bounds the
    /// wait for a next request's headers (with `request_read_timeout`); redis connections are
    /// closed as redis's `timeout` closes them.
    pub idle_timeout: Option<Duration>,
    /// How long an HTTP client may take to send a request's headers (HTTP/1.1), and then its
    /// body (HTTP/1.1 and HTTP/2; for gRPC, a unary call's request when the call has no
    /// deadline of its own) before the server gives up on it: 408 on HTTP, the connection
    /// closed if the headers never came (default 30 s, hyper's header timeout; `None` or zero:
    /// no limit). On HTTP/1.1 it also bounds how long a keep-alive connection may wait for its
    /// next request (hyper runs one timer for both), so an idle HTTP/1.1 connection is closed
    /// after it even without `idle_timeout`, and an `idle_timeout` longer than it changes
    /// nothing there. A client trickling its request (slowloris) would otherwise hold a task and its
    /// buffers for as long as it likes.
    pub request_read_timeout: Option<Duration>,
    /// Sends HTTP/2 PINGs every this long on each HTTP/2 connection (default `None` or zero:
    /// none), and closes a connection whose PING is not answered within
    /// `http2_keep_alive_timeout`: a client gone without closing its socket (a dead host, a lost
    /// NAT path) then stops holding the connection and its streams. PINGs go out whether or not
    /// other frames flow (hyper's only when the connection is quiet), so a live client whose
    /// socket is so backed up that a PING waits past the timeout is closed too.
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long a keep-alive PING may wait for its answer (default 20 s, hyper's; zero turns
    /// the PINGs off).
    pub http2_keep_alive_timeout: Duration,
    /// Refuses HTTP JSON bodies with fields the method's message does not have (400 EREQUEST
    /// naming the field) instead of skipping them as brpc does (default false).
    pub strict_json: bool,
    /// Answers gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) from the hosted
    /// services' descriptors, so `grpcurl list` and `describe` work (default true, as brpc shows
    /// its services' `.proto` definitions on its builtin pages; needs the `json` feature).
    pub reflection: bool,
    /// Serves the builtin pages — `/`, `/status`, `/vars`, `/brpc_metrics` (and `/metrics`),
    /// `/health`, `/version` — to `GET` requests on the server's port (default true, as
    /// brpc's `has_builtin_services`).
    pub builtin_services: bool,
    /// Serves the builtin pages only on this port (of the server's host), not on the public
    /// one (default none: on the public port), as brpc's `internal_port`. 0 or the public port
    /// itself fails `start` with EINVAL.
    pub internal_port: Option<u16>,
    /// Lets `/flags/NAME?setvalue=V` change the concurrency limits while the server runs
    /// (default false: `/flags` only shows them). Anyone who reaches the page could, so
    /// keep the pages on an [`internal_port`](Self::internal_port) when this is on.
    pub mutable_flags: bool,
    /// What `/version` shows (default `brisk_server_<port>`), as brpc's `Server::set_version`.
    pub version: Option<String>,
    /// Verifies clients' credentials (default none): see [`crate::auth`].
    pub authenticator: Option<Arc<dyn crate::Authenticator>>,
    /// TLS on the port (default none: TLS handshakes are closed): see
    /// [`ServerBuilder::tls`](crate::ServerBuilder::tls).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::ServerTlsOptions>,
}

/// The default [`ServerOptions::first_bytes_timeout`].
pub const DEFAULT_FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`ServerOptions::request_read_timeout`].
pub const DEFAULT_REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`ServerOptions::stream_stop_grace`].
pub const DEFAULT_STREAM_STOP_GRACE: Duration = Duration::from_secs(3);

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            stream_stop_grace: DEFAULT_STREAM_STOP_GRACE,
            max_concurrent_streams: None,
            max_concurrency: 0,
            first_bytes_timeout: Some(DEFAULT_FIRST_BYTES_TIMEOUT),
            max_connections: 0,
            idle_timeout: None,
            request_read_timeout: Some(DEFAULT_REQUEST_READ_TIMEOUT),
            http2_keep_alive_interval: None,
            http2_keep_alive_timeout: crate::transport::h2_keep_alive::DEFAULT_TIMEOUT,
            strict_json: false,
            reflection: true,
            builtin_services: true,
            internal_port: None,
            mutable_flags: false,
            version: None,
            authenticator: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}
