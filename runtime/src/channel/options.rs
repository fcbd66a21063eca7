//! [`ChannelOptions`]: what a channel is configured with, and what follows from them for its
//! connections.

use std::sync::Arc;
use std::time::Duration;

use super::interceptor::ClientInterceptors;
use super::policy::{BackupRequestPolicy, DefaultRetryPolicy, RetryPolicy};
use crate::protocol::{ConnectionType, Protocol, DEFAULT_MAX_BODY_SIZE};
use crate::transport::client::CallSettings;
use crate::transport::h2_keep_alive::KeepAlive;
use crate::transport::stream::Security;

/// A channel's options. Defaults are brpc's; [`ChannelBuilder`](crate::ChannelBuilder) sets them one by one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ChannelOptions {
    /// Time allowed to establish a connection (default 200 ms). Also bounds each health-check
    /// connect.
    pub connect_timeout: Duration,
    /// Deadline of a whole unary call, retries included, and of a stream's opening (default
    /// 500 ms; a stream's life is bounded only by a timeout set on its `Controller`); `None`
    /// waits forever.
    pub timeout: Option<Duration>,
    /// Retries after a broken connection or a stopping server (default 3). Timeouts are never
    /// retried. On a cluster, each retry goes to a server the call has not tried yet.
    pub max_retry: u32,
    /// Decides which failures are retried (default [`DefaultRetryPolicy`]).
    pub retry_policy: Arc<dyn RetryPolicy>,
    /// Backup requests (default none): see [`ChannelBuilder::backup_request`](crate::ChannelBuilder::backup_request).
    pub backup_request_policy: Option<Arc<dyn BackupRequestPolicy>>,
    /// How often an isolated server of a cluster is probed with a connect (default 3 s, as
    /// brpc's `-health_check_interval`).
    pub health_check_interval: Duration,
    /// Isolates a cluster's server whose calls fail too often, brpc's circuit breaker
    /// (default off, as in brpc).
    pub enable_circuit_breaker: bool,
    /// The protocol (default baidu_std).
    pub protocol: Protocol,
    /// How connections are used (default `None`: the protocol's own default, as brpc's
    /// `CONNECTION_TYPE_UNKNOWN` — `single` where the protocol can match responses to calls,
    /// `pooled` for protocols without a correlation id, such as nshead). A type the protocol
    /// cannot work on fails `connect` with EINVAL.
    pub connection_type: Option<ConnectionType>,
    /// Largest response body accepted (default 64 MiB).
    pub max_body_size: usize,
    /// Channels share `single` connections only within the same group (default: the empty
    /// group), as brpc's `ChannelOptions.connection_group`: give channels different groups to
    /// spread load over several connections to one server.
    pub connection_group: String,
    /// Generates the credential sent to servers (default none): see [`crate::auth`].
    pub authenticator: Option<Arc<dyn crate::Authenticator>>,
    /// On protocol `http`, sends pb requests as JSON (protobuf's canonical mapping) instead of
    /// `application/proto` (default false): see [`ChannelBuilder::http_json`](crate::ChannelBuilder::http_json).
    pub http_json: bool,
    /// PINGs each HTTP/2 connection's server this often (default `None` or zero: none), and drops a
    /// connection whose PING is not answered within `http2_keep_alive_timeout`, failing its
    /// calls (to be retried) instead of letting them wait on a server that is gone. HTTP/2
    /// connections are shared by every channel in the process: the first channel to connect
    /// to a server sets this for the connection.
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long a keep-alive PING may wait for its answer (default 20 s).
    pub http2_keep_alive_timeout: Duration,
    /// How long a connection the channel keeps for its next calls may wait unused before it
    /// is closed (default 30 s, as brpc's `-idle_timeout_second`; `None` keeps it until a call
    /// takes it): `pooled` connections, and `http`'s keep-alive ones. A `single` connection is
    /// closed when no channel uses its server any more.
    pub idle_timeout: Option<Duration>,
    /// Code every call passes through, before and after (default none): see
    /// [`ChannelBuilder::interceptor`](crate::ChannelBuilder::interceptor).
    pub interceptors: ClientInterceptors,
    /// Wraps connections in TLS (default none; feature `tls`): see [`ChannelBuilder::tls`](crate::ChannelBuilder::tls).
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::ClientTlsOptions>,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            connect_timeout: Duration::from_millis(200),
            timeout: Some(Duration::from_millis(500)),
            max_retry: 3,
            retry_policy: Arc::new(DefaultRetryPolicy),
            backup_request_policy: None,
            health_check_interval: Duration::from_secs(3),
            enable_circuit_breaker: false,
            protocol: Protocol::BAIDU_STD,
            connection_type: None,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            connection_group: String::new(),
            authenticator: None,
            http_json: false,
            http2_keep_alive_interval: None,
            http2_keep_alive_timeout: crate::transport::h2_keep_alive::DEFAULT_TIMEOUT,
            idle_timeout: Some(crate::transport::client::DEFAULT_IDLE_TIMEOUT),
            interceptors: ClientInterceptors::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// How `options` secure connections: TLS or not.
pub(crate) fn security(options: &ChannelOptions) -> Security {
    #[cfg(feature = "tls")]
    {
        Security::tls(options.tls.clone())
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = options;
        Security::default()
    }
}

/// What a channel with `options` decides for its own calls on shared connections.
pub(crate) fn call_settings(options: &ChannelOptions) -> CallSettings {
    CallSettings {
        connect_timeout: options.connect_timeout,
        connection_type: options.connection_type.unwrap_or_default(),
        authenticator: options.authenticator.clone(),
        http_json: options.http_json,
        h2_keep_alive: options.http2_keep_alive_interval.map(|interval| KeepAlive {
            interval,
            timeout: options.http2_keep_alive_timeout,
        }),
        idle_timeout: options.idle_timeout,
    }
}
