//! [`Channel`]: the client side of Brisk. A channel sends calls to a server and brings back
//! their answers; generated client stubs wrap one.

mod call;
mod circuit_breaker;
mod cluster;
mod endpoint;
mod figures;
mod health;
pub(crate) mod interceptor;
mod options;
mod policy;
pub(crate) mod retry;
mod streaming;
mod target;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::lb::LoadBalancer;
use crate::naming::{resolve, NamingService, NamingServiceFilter};
use crate::protocol::{ConnectionType, Protocol};
use crate::transport::client::{self, CallSettings, ClientProtocol};
use crate::{executor, Error, ErrorKind, Status};
use cluster::Cluster;
use endpoint::Endpoint;
use interceptor::ClientInterceptor;
use options::call_settings;
pub use options::ChannelOptions;
pub(crate) use policy::FixedBackupDelay;
pub use policy::{BackupRequestPolicy, DefaultRetryPolicy, RateLimitedBackupPolicy, RetryPolicy};
pub(crate) use target::{Combo, ErasedRequest, Reply, Target};

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
    /// Each method's calls, errors and latency, shown in `/vars` (none for combo channels,
    /// whose sub-channels keep theirs).
    figures: Option<figures::ChannelFigures>,
    /// A cluster channel's figures for each of its servers.
    server_figures: Option<figures::ServerFigures>,
    target: Target,
    /// The protocol's client (`None` for combo channels, whose sub-channels have theirs).
    protocol: Option<ClientProtocol>,
    runtime: Handle,
    /// What this channel's calls decide for themselves on shared connections.
    settings: CallSettings,
}

impl Channel {
    /// Starts building a channel.
    pub fn builder() -> ChannelBuilder {
        ChannelBuilder::default()
    }

    /// A channel to `address` (`"host:port"`) with default options.
    pub async fn connect(address: &str) -> Result<Channel, Error> {
        Channel::builder().connect(address).await
    }

    /// The channel's options.
    pub fn options(&self) -> &ChannelOptions {
        &self.inner.options
    }

    /// The server's resolved address, for a channel to one server (`None` for clusters and
    /// combo channels).
    pub fn server_addr(&self) -> Option<SocketAddr> {
        match &self.inner.target {
            Target::Single(endpoint) => Some(endpoint.addr()),
            _ => None,
        }
    }

    /// The addresses of a cluster channel's current servers (the single server's address for a
    /// channel to one server; empty for combo channels).
    pub fn servers(&self) -> Vec<SocketAddr> {
        match &self.inner.target {
            Target::Single(endpoint) => vec![endpoint.addr()],
            Target::Cluster(cluster) => cluster.servers().iter().map(|b| b.addr()).collect(),
            Target::Combo(_) => Vec::new(),
        }
    }

    /// The request code for calls about `key`: what a cluster behind a key-hashing balancer
    /// (`c_murmurhash`, `c_md5`) routes by, hashed with the balancer's function, so every call
    /// about one key reaches the same server. `None` for a single server, a combo channel, or
    /// a balancer that ignores request codes. Pass it to
    /// [`Controller::set_request_code`](crate::Controller::set_request_code); redis calls set
    /// it from their first key by themselves.
    pub fn request_code_for(&self, key: &[u8]) -> Option<u64> {
        match &self.inner.target {
            Target::Cluster(cluster) => cluster.balancer().request_code_for(key),
            Target::Single(_) | Target::Combo(_) => None,
        }
    }

    /// A channel over `combo`, for combo channels' `into_channel`.
    pub(crate) fn from_combo(combo: Arc<dyn Combo>, options: ChannelOptions) -> Channel {
        Channel {
            inner: Arc::new(ChannelInner {
                settings: call_settings(&options),
                options,
                target: Target::Combo(combo),
                protocol: None,
                runtime: executor::io_handle(),
                figures: None,
                server_figures: None,
            }),
        }
    }

    /// What the channel sends to, for error messages.
    pub(crate) fn describe_target(&self) -> String {
        match &self.inner.target {
            Target::Single(endpoint) => endpoint.addr().to_string(),
            Target::Cluster(cluster) => cluster.describe(),
            Target::Combo(combo) => format!("{combo:?}"),
        }
    }

    /// ERPCTIMEDOUT as brpc words it: the timeout, and the server the call was waiting for
    /// (`server`), else what the channel sends to.
    pub(crate) fn reached_timeout(
        &self,
        timeout: Option<std::time::Duration>,
        server: Option<SocketAddr>,
    ) -> Status {
        let target = server.map_or_else(|| self.describe_target(), |addr| addr.to_string());
        Status::new(
            crate::errno::ERPCTIMEDOUT,
            format!(
                "Reached timeout={}ms @{target}",
                timeout.unwrap_or_default().as_millis()
            ),
        )
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
            .field("target", &self.inner.target)
            .field("options", &self.inner.options)
            .finish()
    }
}

/// Builds a [`Channel`]; see [`ChannelOptions`] for the defaults.
#[derive(Clone, Default)]
pub struct ChannelBuilder {
    options: ChannelOptions,
    filter: Option<Arc<dyn NamingServiceFilter>>,
    /// The naming service's URL, which names a cluster channel's figures.
    naming_url: Option<String>,
}

impl fmt::Debug for ChannelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBuilder")
            .field("options", &self.options)
            .field("filter", &self.filter.is_some())
            .finish()
    }
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

    /// Sets the deadline of each unary call (retries included) and of each stream's opening
    /// (default 500 ms). A stream's life is bounded only by a timeout set on its
    /// [`Controller`](crate::Controller); the server learns the time left either way.
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

    /// Sets the policy that decides which failures are retried.
    pub fn retry_policy(mut self, policy: impl RetryPolicy) -> Self {
        self.options.retry_policy = Arc::new(policy);
        self
    }

    /// Sends a backup request when a call has had no answer after `delay`: the same request
    /// goes to another server of the cluster (or again to the one server) and the first answer
    /// wins. The backup counts as a retry: with no retry left (`max_retry(0)`), the timer ends
    /// the call with EBACKUPREQUEST instead, as brpc's does. `Controller::set_backup_request`
    /// overrides it per call.
    pub fn backup_request(self, delay: Duration) -> Self {
        self.backup_request_policy(policy::FixedBackupDelay(delay))
    }

    /// Decides backup requests with `policy`, e.g. [`RateLimitedBackupPolicy`].
    pub fn backup_request_policy(mut self, policy: impl BackupRequestPolicy) -> Self {
        self.options.backup_request_policy = Some(Arc::new(policy));
        self
    }

    /// Sets how often an isolated server is probed.
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.options.health_check_interval = interval;
        self
    }

    /// Turns brpc's circuit breaker on (or off).
    pub fn enable_circuit_breaker(mut self, enable: bool) -> Self {
        self.options.enable_circuit_breaker = enable;
        self
    }

    /// Keeps only the servers `filter` accepts from the naming service's lists.
    pub fn naming_filter(mut self, filter: impl NamingServiceFilter) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Sets the protocol, by name or as a [`Protocol`]: `"baidu_std"` (the default),
    /// `"http"`, `"h2:grpc"`, or one registered with
    /// [`protocol::register_client`](crate::protocol::register_client). `connect` fails with
    /// EINVAL for a name nothing is registered under.
    pub fn protocol(mut self, protocol: impl Into<Protocol>) -> Self {
        self.options.protocol = protocol.into();
        self
    }

    /// PINGs the server of each HTTP/2 connection every `interval`, and drops a connection
    /// whose PING is not answered within `timeout` (default: no PINGs): see
    /// [`ChannelOptions::http2_keep_alive_interval`].
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.options.http2_keep_alive_interval = Some(interval);
        self.options.http2_keep_alive_timeout = timeout;
        self
    }

    /// Closes a connection the channel keeps for its next calls (`pooled`, and `http`'s
    /// keep-alive ones) once it has waited `timeout` unused (default 30 s, as brpc's
    /// `-idle_timeout_second`; zero keeps them until a call takes them): see
    /// [`ChannelOptions::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.options.idle_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Adds code every call of the channel passes through, before it is sent (to add metadata,
    /// or refuse it) and after it ended (to observe it): see [`ClientInterceptor`].
    /// Interceptors run `before` in the order they were added, and `after` in reverse.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), brisk::Error> {
    /// use brisk::interceptor::ClientInterceptor;
    /// use brisk::{Controller, MethodDescriptor, Status};
    ///
    /// struct LogSlowCalls;
    ///
    /// impl ClientInterceptor for LogSlowCalls {
    ///     fn after(&self, cntl: &Controller, method: &MethodDescriptor) {
    ///         if cntl.latency() > std::time::Duration::from_millis(100) {
    ///             tracing::warn!("{method} took {:?}", cntl.latency());
    ///         }
    ///     }
    /// }
    ///
    /// let channel = brisk::Channel::builder()
    ///     .interceptor(LogSlowCalls)
    ///     .connect("127.0.0.1:8000")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn interceptor(mut self, interceptor: impl ClientInterceptor) -> Self {
        self.options.interceptors.push(Arc::new(interceptor));
        self
    }

    /// On protocol `http`, sends requests as JSON bodies (`application/json`, protobuf's
    /// canonical JSON mapping) and reads JSON responses, as brpc's HTTP clients do, instead of
    /// protobuf bodies (`application/proto`). Needs the method's descriptors, which generated
    /// clients of `.proto` services carry; methods without them fail with EREQUEST.
    pub fn http_json(mut self, json: bool) -> Self {
        self.options.http_json = json;
        self
    }

    /// Sends credentials from `authenticator`: with a connection's first requests on baidu_std,
    /// in the `authorization` header of every request on HTTP and gRPC.
    pub fn authenticator(mut self, authenticator: Arc<dyn crate::Authenticator>) -> Self {
        self.options.authenticator = Some(authenticator);
        self
    }

    /// Sets the connection type (by default the protocol's: `single` for most, `pooled` for
    /// protocols without a correlation id). `connect` fails with EINVAL on a type the protocol
    /// cannot work on (`single` for nshead, as in brpc).
    pub fn connection_type(mut self, connection_type: ConnectionType) -> Self {
        self.options.connection_type = Some(connection_type);
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

    /// Wraps every connection in TLS with `options` (feature `tls`). Without a server name
    /// in `options`, the host of the address given to [`connect`](ChannelBuilder::connect) is
    /// used when it is a name, else the server's IP address.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, options: crate::tls::ClientTlsOptions) -> Self {
        self.options.tls = Some(options);
        self
    }

    /// Builds a channel to `address`, a `"host:port"` whose host is an IP address or a name to
    /// resolve. Connections are made by the first call, as in brpc. A naming-service URL needs
    /// a load balancer: use [`connect_cluster`](ChannelBuilder::connect_cluster).
    ///
    /// As in brpc, `http://host[:port]` selects protocol `http` (if the protocol is still
    /// baidu_std), and `https://host[:port]` does too, with TLS (feature `tls`; default port
    /// 443, server name `host`).
    pub async fn connect(mut self, address: &str) -> Result<Channel, Error> {
        let address = &self.apply_web_scheme(address)?;
        if address.contains("://") {
            return Err(Error::invalid(format!("`{address}` is a naming service: give a load balancer too (connect_cluster(url, \"rr\"))"),
            ));
        }
        let protocol = self.client_protocol()?;
        let addr = resolve(address).await.map_err(Error::from_status)?;
        Ok(self.build_single(addr, protocol, executor::io_handle()))
    }

    /// Builds a channel to the cluster `naming_url` lists ([`crate::naming`]), with the load
    /// balancer `load_balancer` names ([`crate::lb`]). Waits for the naming service's first
    /// list, and fails if it fails.
    ///
    /// `http://host[:port]` and `https://host[:port]` name every address `host` resolves to
    /// and, as [`connect`](ChannelBuilder::connect) does for one server, select protocol
    /// `http` (if the protocol is still baidu_std); `https://` turns TLS on with `host` as the
    /// server name (feature `tls`). `dns://host:port` resolves the same way and changes
    /// nothing else.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), brisk::Status> {
    /// let channel = brisk::Channel::builder()
    ///     .connect_cluster("list://127.0.0.1:8001,127.0.0.1:8002", "rr")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_cluster(
        mut self,
        naming_url: &str,
        load_balancer: &str,
    ) -> Result<Channel, Error> {
        self.apply_naming_scheme(naming_url)?;
        let naming = crate::naming::from_url(naming_url)?;
        let balancer = crate::lb::from_spec(load_balancer)?;
        self.naming_url = Some(naming_url.to_owned());
        self.connect_with(naming, balancer).await
    }

    /// [`connect_cluster`](ChannelBuilder::connect_cluster) with a naming service and a load
    /// balancer of your own (or built with [`crate::naming::from_url`] and
    /// [`crate::lb::from_spec`]).
    pub async fn connect_with(
        mut self,
        naming: Box<dyn NamingService>,
        balancer: Box<dyn LoadBalancer>,
    ) -> Result<Channel, Error> {
        let runtime = executor::io_handle();
        let protocol = self.client_protocol()?;
        let cluster = Cluster::start(
            naming,
            balancer,
            self.filter.clone(),
            protocol.clone(),
            self.options.clone(),
            runtime.clone(),
        )
        .await
        .map_err(naming_failed)?;
        Ok(self.build(Target::Cluster(cluster), protocol, runtime))
    }

    /// [`connect`](ChannelBuilder::connect) for code outside an async runtime (blocking
    /// clients). Connections run on Brisk's background runtime.
    pub fn connect_blocking(mut self, address: &str) -> Result<Channel, Error> {
        let runtime = executor::background().handle().clone();
        let address = &self.apply_web_scheme(address)?;
        if address.contains("://") {
            return Err(Error::invalid(format!(
                "`{address}` is a naming service: use connect_cluster_blocking(url, lb)"
            )));
        }
        let protocol = self.client_protocol()?;
        let addr = executor::block_on(&runtime, resolve(address)).map_err(Error::from_status)?;
        Ok(self.build_single(addr, protocol, runtime))
    }

    /// [`connect_cluster`](ChannelBuilder::connect_cluster) for code outside an async runtime.
    pub fn connect_cluster_blocking(
        mut self,
        naming_url: &str,
        load_balancer: &str,
    ) -> Result<Channel, Error> {
        self.apply_naming_scheme(naming_url)?;
        self.naming_url = Some(naming_url.to_owned());
        let runtime = executor::background().handle().clone();
        let naming = crate::naming::from_url(naming_url)?;
        let balancer = crate::lb::from_spec(load_balancer)?;
        let protocol = self.client_protocol()?;
        let filter = self.filter.clone();
        let options = self.options.clone();
        let cluster = executor::block_on(
            &runtime,
            Cluster::start(
                naming,
                balancer,
                filter,
                protocol.clone(),
                options,
                runtime.clone(),
            ),
        )
        .map_err(naming_failed)?;
        Ok(self.build(Target::Cluster(cluster), protocol, runtime))
    }

    /// Strips `http://` or `https://` from `address`, applying what they mean (protocol
    /// `http`, TLS); fills in the TLS server name from the host when it is a name. Returns
    /// `host:port`; other addresses come back as they are.
    fn apply_web_scheme(&mut self, address: &str) -> Result<String, Error> {
        let web = parse_web_address(address)?;
        let address = match &web {
            Some(web) => web.host_port.clone(),
            None => address.to_owned(),
        };
        self.apply_scheme(web.map(|web| web.tls), host_name(&address))?;
        Ok(address)
    }

    /// Applies what an `http://` or `https://` naming URL means, as
    /// [`apply_web_scheme`](Self::apply_web_scheme) does for one server: protocol `http`, TLS
    /// for `https://`, and the URL's host as the TLS server name. Other naming services leave
    /// the options as they are (each server's TLS name is then its IP address).
    fn apply_naming_scheme(&mut self, naming_url: &str) -> Result<(), Error> {
        let Some((scheme, rest)) = naming_url.split_once("://") else {
            return Ok(());
        };
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return Ok(()),
        };
        let host = crate::naming::DnsNamingService::new(rest)?
            .host()
            .to_owned();
        let host = host.parse::<std::net::IpAddr>().is_err().then_some(host);
        self.apply_scheme(Some(tls), host)
    }

    /// `web_tls` is `Some(tls)` for an `http://` (false) or `https://` (true) address: it
    /// selects protocol `http` (when the protocol is still baidu_std) and, for `https://`,
    /// TLS. With TLS on and no server name given, `host` (a name, not an IP) becomes it.
    fn apply_scheme(&mut self, web_tls: Option<bool>, host: Option<String>) -> Result<(), Error> {
        if web_tls.is_some() && self.options.protocol == Protocol::BAIDU_STD {
            self.options.protocol = Protocol::HTTP;
        }
        let tls_wanted = web_tls == Some(true);
        #[cfg(feature = "tls")]
        {
            if tls_wanted && self.options.tls.is_none() {
                self.options.tls = Some(crate::tls::ClientTlsOptions::new());
            }
            if let Some(tls) = self.options.tls.take() {
                self.options.tls = Some(match (tls.server_name(), host) {
                    (None, Some(host)) => tls.with_server_name(host),
                    _ => tls,
                });
            }
        }
        #[cfg(not(feature = "tls"))]
        if tls_wanted {
            let _ = host;
            return Err(Error::invalid("https needs brisk's `tls` feature"));
        }
        Ok(())
    }

    /// The channel's protocol, with the connection type settled: the one asked for, if the
    /// protocol works on it, else the protocol's default.
    fn client_protocol(&mut self) -> Result<ClientProtocol, Error> {
        let protocol = client::lookup(&self.options.protocol).map_err(Error::from_status)?;
        let connection_type = protocol
            .connection_type(self.options.connection_type)
            .map_err(Error::from_status)?;
        self.options.connection_type = Some(connection_type);
        Ok(protocol)
    }

    fn build_single(self, addr: SocketAddr, protocol: ClientProtocol, runtime: Handle) -> Channel {
        let endpoint = Endpoint::shared(addr, &protocol, &self.options, &runtime);
        self.build(Target::Single(endpoint), protocol, runtime)
    }

    fn build(self, target: Target, protocol: ClientProtocol, runtime: Handle) -> Channel {
        let label = match &target {
            Target::Single(endpoint) => Some(endpoint.addr().to_string()),
            Target::Cluster(_) => Some(self.naming_url.clone().unwrap_or_else(|| "cluster".into())),
            Target::Combo(_) => None,
        };
        let server_figures = matches!(target, Target::Cluster(_)).then(Default::default);
        Channel {
            inner: Arc::new(ChannelInner {
                figures: label.map(|label| figures::ChannelFigures::new(&label)),
                server_figures,
                settings: call_settings(&self.options),
                options: self.options,
                target,
                protocol: Some(protocol),
                runtime,
            }),
        }
    }
}

/// A naming service's first list failed: the channel cannot start.
fn naming_failed(status: Status) -> Error {
    Error::new(ErrorKind::Naming, status.message()).with_source(status)
}

/// An `http://` or `https://` address, as `host:port`.
#[derive(Debug, PartialEq, Eq)]
struct WebAddress {
    host_port: String,
    tls: bool,
}

/// Parses `http://host[:port][/]` and `https://host[:port][/]` (default ports 80 and 443);
/// `None` for any other address. A path after the host is an error: a channel names a server.
fn parse_web_address(address: &str) -> Result<Option<WebAddress>, Error> {
    let Some((scheme, rest)) = address.split_once("://") else {
        return Ok(None);
    };
    let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "http" => (false, 80),
        "https" => (true, 443),
        _ => return Ok(None),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') {
        return Err(Error::invalid(format!(
            "`{address}` is not {scheme}://host[:port]"
        )));
    }
    // `[::1]` and `host` lack a port; `[::1]:80` and `host:80` have one.
    let has_port = match rest.rfind(']') {
        Some(end) => rest[end..].contains(':'),
        None => rest.contains(':'),
    };
    let host_port = if has_port {
        rest.to_owned()
    } else {
        format!("{rest}:{default_port}")
    };
    Ok(Some(WebAddress { host_port, tls }))
}

/// The host of `host:port` when it is a name rather than an IP address (the TLS server name
/// a channel asks for by default).
fn host_name(host_port: &str) -> Option<String> {
    let (host, _) = host_port.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errno;

    #[test]
    fn web_addresses_give_host_port_and_tls() {
        let web = |host_port: &str, tls| {
            Some(WebAddress {
                host_port: host_port.into(),
                tls,
            })
        };
        assert_eq!(
            parse_web_address("https://a.test:8443").unwrap(),
            web("a.test:8443", true)
        );
        assert_eq!(
            parse_web_address("https://a.test/").unwrap(),
            web("a.test:443", true)
        );
        assert_eq!(
            parse_web_address("HTTP://127.0.0.1").unwrap(),
            web("127.0.0.1:80", false)
        );
        assert_eq!(
            parse_web_address("http://[::1]").unwrap(),
            web("[::1]:80", false)
        );
        assert_eq!(
            parse_web_address("https://[::1]:8443").unwrap(),
            web("[::1]:8443", true)
        );
        for other in [
            "127.0.0.1:80",
            "list://a:1,b:2",
            "file:///x",
            "dns://a:1",
            "etcd://a/b",
        ] {
            assert_eq!(parse_web_address(other).unwrap(), None, "{other}");
        }
        for bad in ["https://", "http://a:1/path", "https:///"] {
            assert_eq!(
                parse_web_address(bad).unwrap_err().code(),
                errno::EINVAL,
                "{bad}"
            );
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_server_names_default_to_host_names_only() {
        assert_eq!(host_name("localhost:80").as_deref(), Some("localhost"));
        assert_eq!(host_name("127.0.0.1:80"), None);
        assert_eq!(host_name("[::1]:80"), None);
        assert_eq!(host_name("nohost"), None);
    }

    #[tokio::test]
    async fn web_schemes_select_http_and_tls() {
        let channel = Channel::builder()
            .connect("http://127.0.0.1:1")
            .await
            .unwrap();
        assert_eq!(channel.options().protocol, Protocol::HTTP);
        let grpc = Channel::builder()
            .protocol(Protocol::GRPC)
            .connect("http://127.0.0.1:1")
            .await
            .unwrap();
        assert_eq!(grpc.options().protocol, Protocol::GRPC);
        #[cfg(feature = "tls")]
        {
            let channel = Channel::builder()
                .connect("https://localhost:1")
                .await
                .unwrap();
            assert_eq!(channel.options().protocol, Protocol::HTTP);
            let tls = channel.options().tls.as_ref().expect("https turns TLS on");
            assert_eq!(tls.server_name(), Some("localhost"));
            let named = Channel::builder()
                .tls(crate::tls::ClientTlsOptions::new().with_server_name("x.test"))
                .connect("localhost:1")
                .await
                .unwrap();
            let tls = named.options().tls.as_ref().unwrap();
            assert_eq!(
                tls.server_name(),
                Some("x.test"),
                "an explicit name is kept"
            );
            assert_eq!(named.options().protocol, Protocol::BAIDU_STD);
        }
    }

    #[tokio::test]
    async fn web_naming_urls_select_http_and_tls_for_clusters() {
        let channel = Channel::builder()
            .connect_cluster("http://127.0.0.1:1", "rr")
            .await
            .unwrap();
        assert_eq!(channel.options().protocol, Protocol::HTTP);
        let dns = Channel::builder()
            .connect_cluster("dns://127.0.0.1:1", "rr")
            .await
            .unwrap();
        assert_eq!(dns.options().protocol, Protocol::BAIDU_STD);
        let bad = Channel::builder()
            .connect_cluster("https://:443", "rr")
            .await
            .unwrap_err();
        assert_eq!(bad.code(), errno::EINVAL, "{bad}");
        #[cfg(feature = "tls")]
        {
            let channel = Channel::builder()
                .connect_cluster("HTTPS://localhost:1", "rr")
                .await
                .unwrap();
            assert_eq!(channel.options().protocol, Protocol::HTTP);
            let tls = channel.options().tls.as_ref().expect("https turns TLS on");
            assert_eq!(tls.server_name(), Some("localhost"));
            let by_ip = Channel::builder()
                .connect_cluster_blocking("https://127.0.0.1:1", "rr")
                .unwrap();
            let tls = by_ip.options().tls.as_ref().expect("https turns TLS on");
            assert_eq!(tls.server_name(), None, "each server's IP is its name");
            assert!(dns.options().tls.is_none());
        }
    }
}
