//! [`Channel`]: the client side of Brisk. A channel sends calls to a server and brings back
//! their answers; generated client stubs wrap one.

mod call;
mod endpoint;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::protocol::baidu_std::DEFAULT_MAX_BODY_SIZE;
use crate::{errno, executor, Protocol, Status};
use endpoint::Endpoint;

/// How a channel uses connections, as brpc's `ChannelOptions.connection_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    /// One connection per server, shared by every call and every channel in the process;
    /// responses are matched to calls by correlation id, in any order. The default.
    #[default]
    Single,
    /// A pool of connections per server; each carries one call at a time.
    Pooled,
    /// A new connection per call, closed after it.
    Short,
}

impl std::str::FromStr for ConnectionType {
    type Err = Status;
    fn from_str(s: &str) -> Result<Self, Status> {
        match s {
            "single" => Ok(ConnectionType::Single),
            "pooled" => Ok(ConnectionType::Pooled),
            "short" => Ok(ConnectionType::Short),
            other => Err(Status::new(
                errno::EINVAL,
                format!("unknown connection type `{other}` (expected single, pooled or short)"),
            )),
        }
    }
}

/// A channel's options. Defaults are brpc's.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// Time allowed to establish a connection (default 200 ms).
    pub connect_timeout: Duration,
    /// Deadline of a whole call, retries included (default 500 ms); `None` waits forever.
    pub timeout: Option<Duration>,
    /// Retries after a broken connection or a stopping server (default 3). Timeouts are never
    /// retried.
    pub max_retry: u32,
    /// The protocol (default baidu_std).
    pub protocol: Protocol,
    /// How connections are used (default single).
    pub connection_type: ConnectionType,
    /// Largest response body accepted (default 64 MiB).
    pub max_body_size: usize,
    /// Channels share `single` connections only within the same group (default: the empty
    /// group), as brpc's `ChannelOptions.connection_group`: give channels different groups to
    /// spread load over several connections to one server.
    pub connection_group: String,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            connect_timeout: Duration::from_millis(200),
            timeout: Some(Duration::from_millis(500)),
            max_retry: 3,
            protocol: Protocol::BaiduStd,
            connection_type: ConnectionType::Single,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            connection_group: String::new(),
        }
    }
}

/// Identifies a method on the wire: full service name and method name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodDescriptor {
    service: &'static str,
    method: &'static str,
}

impl MethodDescriptor {
    /// `service` is the full protobuf name (`example.EchoService`), `method` as in the `.proto`.
    pub const fn new(service: &'static str, method: &'static str) -> Self {
        MethodDescriptor { service, method }
    }

    /// The full service name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The method name.
    pub fn method(&self) -> &'static str {
        self.method
    }
}

/// A client's handle to a server. Cheap to clone; every clone shares the same connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), brisk::Status> {
/// use std::time::Duration;
/// let channel = brisk::Channel::builder()
///     .timeout(Duration::from_millis(500))
///     .max_retry(3)
///     .connect("127.0.0.1:8000")
///     .await?;
/// // let client = echo::EchoServiceClient::new(channel);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Channel {
    inner: Arc<ChannelInner>,
}

struct ChannelInner {
    options: ChannelOptions,
    endpoint: Arc<Endpoint>,
    runtime: Handle,
}

impl Channel {
    /// Starts building a channel.
    pub fn builder() -> ChannelBuilder {
        ChannelBuilder::default()
    }

    /// A channel to `address` (`"host:port"`) with default options.
    pub async fn connect(address: &str) -> Result<Channel, Status> {
        Channel::builder().connect(address).await
    }

    /// The channel's options.
    pub fn options(&self) -> &ChannelOptions {
        &self.inner.options
    }

    /// The server's resolved address.
    pub fn server_addr(&self) -> SocketAddr {
        self.inner.endpoint.addr()
    }

    /// Runs a call to completion on the current thread, for blocking clients.
    ///
    /// Meant for threads outside the async runtime (plain threads, `spawn_blocking`). On an
    /// async worker thread it blocks that worker, as any blocking call would: use the async
    /// client there.
    pub fn block_on<T>(&self, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
        executor::block_on(&self.inner.runtime, call)
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("server", &self.inner.endpoint.addr())
            .field("options", &self.inner.options)
            .finish()
    }
}

/// Builds a [`Channel`]; see [`ChannelOptions`] for the defaults.
#[derive(Clone, Debug, Default)]
pub struct ChannelBuilder {
    options: ChannelOptions,
}

impl ChannelBuilder {
    /// Replaces all options.
    pub fn options(mut self, options: ChannelOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Sets the call deadline (retries included).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Calls wait for their answer without a deadline.
    pub fn no_timeout(mut self) -> Self {
        self.options.timeout = None;
        self
    }

    /// Sets the maximum number of retries.
    pub fn max_retry(mut self, max_retry: u32) -> Self {
        self.options.max_retry = max_retry;
        self
    }

    /// Sets the protocol.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.options.protocol = protocol;
        self
    }

    /// Sets the connection type.
    pub fn connection_type(mut self, connection_type: ConnectionType) -> Self {
        self.options.connection_type = connection_type;
        self
    }

    /// Sets the largest response body accepted.
    pub fn max_body_size(mut self, max_body_size: usize) -> Self {
        self.options.max_body_size = max_body_size;
        self
    }

    /// Puts the channel in a connection group: `single` connections are shared only within
    /// a group.
    pub fn connection_group(mut self, group: impl Into<String>) -> Self {
        self.options.connection_group = group.into();
        self
    }

    /// Builds a channel to `address`, a `"host:port"` whose host is an IP address or a name to
    /// resolve. Connections are made by the first call, as in brpc.
    pub async fn connect(self, address: &str) -> Result<Channel, Status> {
        let addr = resolve(address).await?;
        Ok(self.build(addr, executor::io_handle()))
    }

    /// [`connect`](ChannelBuilder::connect) for code outside an async runtime (blocking
    /// clients). Connections run on Brisk's background runtime.
    pub fn connect_blocking(self, address: &str) -> Result<Channel, Status> {
        let runtime = executor::background().handle().clone();
        let addr = executor::block_on(&runtime, resolve(address))?;
        Ok(self.build(addr, runtime))
    }

    fn build(self, addr: SocketAddr, runtime: Handle) -> Channel {
        let endpoint = Endpoint::shared(addr, &self.options, &runtime);
        Channel {
            inner: Arc::new(ChannelInner {
                options: self.options,
                endpoint,
                runtime,
            }),
        }
    }
}

/// Resolves `"host:port"` to the first address it names.
async fn resolve(address: &str) -> Result<SocketAddr, Status> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if address.contains("://") {
        return Err(Status::new(
            errno::EINVAL,
            format!("`{address}`: naming services are not supported yet; give host:port"),
        ));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(Status::new(
            errno::EINVAL,
            format!("`{address}` is not host:port"),
        ));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(Status::new(
            errno::EINVAL,
            format!("`{address}` is not host:port"),
        ));
    }
    let mut addrs = tokio::net::lookup_host(address).await.map_err(|e| {
        Status::new(
            errno::EHOSTDOWN,
            format!("Fail to resolve `{address}`: {e}"),
        )
    })?;
    addrs
        .next()
        .ok_or_else(|| Status::new(errno::EHOSTDOWN, format!("`{address}` resolves to nothing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_names_and_rejects_bad_addresses() {
        assert_eq!(resolve("127.0.0.1:80").await.unwrap().port(), 80);
        assert!(resolve("localhost:8000").await.unwrap().ip().is_loopback());
        for bad in [
            "",
            "nohost",
            ":80",
            "host:notaport",
            "127.0.0.1:99999",
            "list://a:1",
        ] {
            let err = resolve(bad).await.unwrap_err();
            assert_eq!(err.code(), errno::EINVAL, "{bad}: {err}");
        }
        let err = resolve("no-such-host.invalid:80").await.unwrap_err();
        assert_eq!(err.code(), errno::EHOSTDOWN);
    }
}
