//! [`Server`]: hosts services on one port, many calls per connection, with graceful stop.

//!
//! The modules form a one-way chain: the service model (`context`, `service`, `registry`),
//! the server's shared state (`options`, `state`), what every protocol does with a request
//! (`dispatch`, `body`), the protocols (`framed` for every codec; `grpc`, `health` and `http`
//! for requests on HTTP connections, served by `http1` and `h2`), and the connection's way in
//! (`detect`, `tls`, `conn`), which the accept loop here starts.

mod body;
mod builtin;
mod conn;
mod context;
#[cfg(feature = "json")]
mod descriptor_index;
mod detect;
mod dispatch;
mod framed;
mod grpc;
mod h2;
mod health;
mod http;
mod http1;
pub(crate) mod interceptor;
mod nshead;
mod options;
mod protocol;
pub(crate) mod redis;
#[cfg(feature = "json")]
mod reflection;
mod registration;
mod registry;
mod reporter;
pub mod rpc_dump;
mod service;
mod state;
mod tls;
#[cfg(feature = "tower")]
pub(crate) mod tower;
mod user_flag;

pub use context::ServerContext;
pub use nshead::{NsheadMessage, NsheadPbAdaptor, NsheadService};
pub use options::ServerOptions;
pub use reporter::{Health, HealthReporter};
pub use service::{
    unknown_method, MessageSchema, Service, ServiceFuture, ServiceResponse, StreamingFuture,
    StreamingResponse,
};

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::limiter::MaxConcurrency;
use crate::Error;
use interceptor::Interceptor;
use protocol::ServerProtocol;
use registry::Registry;
use state::{wait_for_phase, ConnectionGuard, Phase, Shared};

/// Builds a [`Server`]: add services, set options, then start it on an address.
#[derive(Default)]
pub struct ServerBuilder {
    services: Vec<Arc<dyn Service>>,
    options: ServerOptions,
    redis: Option<Arc<redis::RedisService>>,
    /// `max_concurrency_of` limits, set when the server starts.
    method_limits: Vec<(String, MaxConcurrency)>,
    /// Methods and services whose handlers run on the blocking pool.
    blocking: Vec<String>,
    /// Checks every request passes, in order.
    interceptors: Vec<Arc<dyn Interceptor>>,
    /// Decides the server's health.
    health_reporter: Option<Arc<dyn HealthReporter>>,
    user_flags: Vec<user_flag::UserFlag>,
    /// Naming services to register the server in.
    registration: registration::Plan,
    /// Where to sample requests, if anywhere.
    rpc_dump: Option<rpc_dump::RpcDumpOptions>,
    /// tower layer stacks around every service's unary calls, innermost first.
    #[cfg(feature = "tower")]
    layers: Vec<tower::Wrap>,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field(
                "services",
                &self
                    .services
                    .iter()
                    .map(|s| s.full_name())
                    .collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish()
    }
}

impl ServerBuilder {
    /// Adds a service (a generated `XxxServer` adapter, or any [`Service`]).
    pub fn add_service(mut self, service: impl Service) -> Self {
        self.services.push(Arc::new(service));
        self
    }

    /// Answers nshead requests (all but public_pbrpc's, which every server answers with its
    /// services) with `service`, as brpc's `ServerOptions.nshead_service`: a raw
    /// [`NsheadService`], or an [`NsheadPbAdaptor`] serving a protobuf service over nshead or
    /// nova_pbrpc. Without one, nshead connections are closed.
    pub fn nshead_service(mut self, service: impl NsheadService) -> Self {
        self.services
            .push(Arc::new(nshead::NsheadServer(Arc::new(service))));
        self
    }

    /// Answers redis clients (`redis-cli`, brpc's and Brisk's redis channels) on the server's
    /// port with `service`'s commands, as brpc's `ServerOptions.redis_service`. Without one, a
    /// connection that speaks redis is closed as unknown.
    pub fn redis_service(mut self, service: redis::RedisService) -> Self {
        self.redis = Some(Arc::new(service));
        self
    }

    /// Limits the HTTP/2 streams (gRPC calls) one connection may have open at once (default:
    /// no limit, as brpc's and grpc-go's servers): see [`ServerOptions::max_concurrent_streams`].
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.options.max_concurrent_streams = Some(max);
        self
    }

    /// Runs at most `max` requests at once, over every protocol, answering the rest with
    /// ELIMIT at once (default 0: no limit): see [`ServerOptions::max_concurrency`].
    pub fn max_concurrency(mut self, max: usize) -> Self {
        self.options.max_concurrency = max;
        self
    }

    /// Limits the requests of the method named `full_method` (`example.EchoService.Echo`)
    /// that run at once, as brpc's `server.MaxConcurrencyOf("example.EchoService.Echo") =
    /// max`: a number (0: no limit, the default), or an adaptive limiter (`"auto"`,
    /// `"timeout"`, or your own; see [`limiter`](crate::limiter)). A request the limiter
    /// refuses is answered at once with ELIMIT `Rejected by example.EchoService.Echo's
    /// ConcurrencyLimiter, concurrency=N`. A method the server does not host fails
    /// [`start`](ServerBuilder::start) with EINVAL. The server-wide
    /// [`max_concurrency`](ServerBuilder::max_concurrency) is checked first.
    ///
    /// ```no_run
    /// # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Error> {
    /// use brisk::limiter::MaxConcurrency;
    /// let server = brisk::Server::builder()
    ///     .add_service(service)
    ///     .max_concurrency_of("example.EchoService.Echo", 100)
    ///     .max_concurrency_of("example.EchoService.Sleep", "auto".parse::<MaxConcurrency>()?)
    ///     .start("127.0.0.1:8000")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn max_concurrency_of(
        mut self,
        full_method: impl Into<String>,
        max: impl Into<MaxConcurrency>,
    ) -> Self {
        self.method_limits.push((full_method.into(), max.into()));
        self
    }

    /// Gives HTTP clients `timeout` to send a request's headers and body (default 30 s): see
    /// [`ServerOptions::request_read_timeout`].
    pub fn request_read_timeout(mut self, timeout: Duration) -> Self {
        self.options.request_read_timeout = Some(timeout);
        self
    }

    /// PINGs HTTP/2 clients every `interval` and closes connections whose PING is not
    /// answered within `timeout` (default: no PINGs): see
    /// [`ServerOptions::http2_keep_alive_interval`].
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.options.http2_keep_alive_interval = Some(interval);
        self.options.http2_keep_alive_timeout = timeout;
        self
    }

    /// Closes connections idle for `timeout` (default: never): see
    /// [`ServerOptions::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.options.idle_timeout = Some(timeout);
        self
    }

    /// Keeps at most `max` connections open at once, closing those accepted past it (default:
    /// no limit): see [`ServerOptions::max_connections`].
    pub fn max_connections(mut self, max: usize) -> Self {
        self.options.max_connections = max;
        self
    }

    /// Runs the handlers of `name` — a method (`example.EchoService.Echo`) or every method of
    /// a service (`example.EchoService`) — on tokio's blocking thread pool, as brpc's
    /// `usercode_in_pthread` runs user code on pthreads. By default a handler runs on the
    /// task that serves its connection, in place (the fastest way, and what every async handler wants); a
    /// handler that blocks its thread (synchronous I/O, a lock held long, heavy computation)
    /// would stall the other requests on that thread. Such handlers belong here. They cost a
    /// thread hand-off per call, and one blocked at the caller's deadline is answered
    /// ERPCTIMEDOUT but runs on to its end. Streaming methods always run on their stream's task.
    /// A name the server does not host fails [`start`](ServerBuilder::start) with EINVAL.
    pub fn blocking(mut self, name: impl Into<String>) -> Self {
        self.blocking.push(name.into());
        self
    }

    /// Adds a check every request passes before its handler runs, on every protocol (brpc's
    /// `ServerOptions.interceptor`): see [`Interceptor`]. Interceptors run in the order they
    /// were added; the first refusal answers the request.
    ///
    /// ```no_run
    /// # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Error> {
    /// use brisk::interceptor::MethodName;
    /// use brisk::{errno, ServerContext, Status};
    ///
    /// let server = brisk::Server::builder()
    ///     .add_service(service)
    ///     .interceptor(|cntl: &mut ServerContext, method: MethodName<'_>| {
    ///         if method.method() == "Drop" && cntl.auth_context().is_none() {
    ///             return Err(Status::new(errno::EPERM, "Drop needs a credential"));
    ///         }
    ///         Ok(())
    ///     })
    ///     .start("127.0.0.1:8000")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Arc::new(interceptor));
        self
    }

    /// Wraps the unary calls of every service added (before or after this) in a tower layer
    /// stack (feature `tower`): existing tower middleware — timeouts, concurrency limits, load
    /// shedding, your own — runs around Brisk handlers on every protocol. The innermost service
    /// is a [`BriskService`](crate::tower::BriskService); a layer's error reaches the client
    /// as its [`Status`](crate::Status) if it is one, else as EINTERNAL with its text. Layers
    /// run after the server's limits and [interceptors](ServerBuilder::interceptor), inside the
    /// request's deadline; a later `layer` call wraps the earlier ones. The stack is cloned
    /// per call, as hyper and tonic clone it: state a layer keeps per clone (tower's
    /// `RateLimit`) needs `tower::buffer` to be shared. Streaming methods are not wrapped.
    ///
    /// ```no_run
    /// # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Error> {
    /// use std::time::Duration;
    ///
    /// let server = brisk::Server::builder()
    ///     .add_service(service)
    ///     // Handlers past 100 ms are cut off: EINTERNAL `request timed out`.
    ///     .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(100)))
    ///     .start("127.0.0.1:8000")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tower")]
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower_layer::Layer<tower::BriskService> + Send + Sync + 'static,
        L::Service: tower_service::Service<tower::ServiceRequest, Response = ServiceResponse>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower_service::Service<tower::ServiceRequest>>::Error:
            Into<Box<dyn std::error::Error + Send + Sync>>,
        <L::Service as tower_service::Service<tower::ServiceRequest>>::Future: Send + 'static,
    {
        self.layers.push(tower::wrap(layer));
        self
    }

    /// Closes a new connection that has not sent the first bytes of its protocol (on framed
    /// protocols and redis: its whole first request) within `timeout` (default 10 s): see
    /// [`ServerOptions::first_bytes_timeout`].
    pub fn first_bytes_timeout(mut self, timeout: Duration) -> Self {
        self.options.first_bytes_timeout = Some(timeout);
        self
    }

    /// Refuses HTTP JSON bodies with unknown fields (400 EREQUEST) rather than skip them, as
    /// brpc does by default.
    pub fn strict_json(mut self, strict: bool) -> Self {
        self.options.strict_json = strict;
        self
    }

    /// Answers gRPC server reflection or not (default: it does): see
    /// [`ServerOptions::reflection`].
    pub fn reflection(mut self, enabled: bool) -> Self {
        self.options.reflection = enabled;
        self
    }

    /// Registers the server in a naming service once its port is open, and deregisters it
    /// first thing when it stops (before new calls get ELOGOFF), so clients watching the name
    /// stop picking it in time: `etcd://host:port/prefix` (feature `etcd`) puts the key
    /// `<prefix>/<address>` on a lease kept alive in the background (see
    /// `brisk::etcd::EtcdRegistration`), what `etcd://` channels list;
    /// `zk://host:port/path` (feature `zookeeper`) creates the ephemeral node
    /// `<path>/<address>` on a session kept alive (see `naming::ZooKeeperRegistration`);
    /// other schemes with [`naming::register_registrar`](crate::naming::register_registrar).
    /// Repeatable. [`start`](ServerBuilder::start) fails if a registration does. A server
    /// dropped without [`stop`](Server::stop) deregisters in the background while it closes.
    ///
    /// The address registered is the listening one, or [`advertise`](ServerBuilder::advertise)'s
    /// (needed when listening on `0.0.0.0`).
    ///
    /// ```no_run
    /// # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Error> {
    /// let server = brisk::Server::builder()
    ///     .add_service(service)
    ///     .register("etcd://127.0.0.1:2379/services/echo")
    ///     .advertise("10.0.0.7:8000")
    ///     .start("0.0.0.0:8000")
    ///     .await?;
    /// // clients: Channel::builder().connect_cluster("etcd://127.0.0.1:2379/services/echo", "rr")
    /// server.shutdown().await; // deregisters, then stops
    /// # Ok(()) }
    /// ```
    pub fn register(mut self, naming_url: impl Into<String>) -> Self {
        self.registration.urls.push(naming_url.into());
        self
    }

    /// The address [`register`](ServerBuilder::register) announces: `host:port`, optionally
    /// followed by whitespace and a tag (as a `list://` entry). Default: the listening address.
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.registration.advertise = Some(address.into());
        self
    }

    /// How long a registration outlives a server that dies without deregistering (the lease's
    /// TTL, renewed every third of it). Default 10 s.
    pub fn registration_ttl(mut self, ttl: Duration) -> Self {
        self.registration.ttl = ttl;
        self
    }

    /// Samples requests into files, as brpc's `-rpc_dump` does, for `brisk replay` (or brpc's
    /// `rpc_replay`) to send again: baidu_std, hulu_pbrpc and sofa_pbrpc requests, at most
    /// `max_requests_per_second` a second, in brpc's file format (see [`rpc_dump`]).
    /// [`start`](ServerBuilder::start) fails if the directory cannot be prepared.
    ///
    /// ```no_run
    /// # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Error> {
    /// use brisk::rpc_dump::RpcDumpOptions;
    ///
    /// let server = brisk::Server::builder()
    ///     .add_service(service)
    ///     .rpc_dump(RpcDumpOptions::new("./rpc_data/rpc_dump/echo"))
    ///     .start("0.0.0.0:8000")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn rpc_dump(mut self, options: rpc_dump::RpcDumpOptions) -> Self {
        self.rpc_dump = Some(options);
        self
    }

    /// Serves the builtin pages (`/status`, `/vars`, `/brpc_metrics`, ...) or not (default:
    /// it does): see [`ServerOptions::builtin_services`].
    pub fn builtin_services(mut self, enabled: bool) -> Self {
        self.options.builtin_services = enabled;
        self
    }

    /// Adds a flag of the program's own to `/flags`: `value` tells its value, and
    /// `/flags/NAME?setvalue=V` (with [`mutable_flags`](Self::mutable_flags)) calls `set`,
    /// whose error is the 400 answer's reason. The log level, through tracing-subscriber's
    /// `reload::Handle`, is the usual one (brpc's `-v` and `-minloglevel` are flags too).
    /// A name must be letters, digits, `_`, `-` and `.`, and neither a builtin flag's nor
    /// another's: [`start`](Self::start) fails with EINVAL otherwise.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let level = Arc::new(Mutex::new("info".to_owned()));
    /// let (shown, set) = (Arc::clone(&level), Arc::clone(&level));
    /// let builder = brisk::Server::builder().mutable_flags(true).flag(
    ///     "log_level",
    ///     "the lowest level logged: error, warn, info, debug or trace",
    ///     move || shown.lock().unwrap().clone(),
    ///     move |value| match value {
    ///         "error" | "warn" | "info" | "debug" | "trace" => {
    ///             // e.g. reload_handle.modify(|filter| *filter = value.parse().unwrap())
    ///             *set.lock().unwrap() = value.to_owned();
    ///             Ok(())
    ///         }
    ///         _ => Err(format!("no level `{value}'")),
    ///     },
    /// );
    /// ```
    pub fn flag(
        mut self,
        name: impl Into<String>,
        what: impl Into<String>,
        value: impl Fn() -> String + Send + Sync + 'static,
        set: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.user_flags.push(user_flag::UserFlag {
            name: name.into(),
            what: what.into(),
            value: Box::new(value),
            set: Box::new(set),
        });
        self
    }

    /// Has `reporter` decide the server's health, for its `/health` page and the gRPC health
    /// service (brpc's `ServerOptions::health_reporter`): see [`HealthReporter`].
    pub fn health_reporter(mut self, reporter: impl HealthReporter) -> Self {
        self.health_reporter = Some(Arc::new(reporter));
        self
    }

    /// Serves the builtin pages only on `port` of the server's host, hiding them from the
    /// public port (brpc's `internal_port`): give it a port only the internal network
    /// reaches. Calls to services are served on both.
    pub fn internal_port(mut self, port: u16) -> Self {
        self.options.internal_port = Some(port);
        self
    }

    /// Lets the `/flags` page set the concurrency limits and rpcz's switches while the server
    /// runs (default: it only shows them): see [`ServerOptions::mutable_flags`].
    pub fn mutable_flags(mut self, enabled: bool) -> Self {
        self.options.mutable_flags = enabled;
        self
    }

    /// Turns [rpcz](crate::rpcz) on (or off) for the process, as brpc's `-enable_rpcz`: calls
    /// are traced (up to [`rpcz::max_spans_per_second`](crate::rpcz::max_spans_per_second)
    /// new traces a second) and `/rpcz` shows them. The same as
    /// [`rpcz::set_enabled`](crate::rpcz::set_enabled), done when the server is built: the
    /// switch is the whole process's, so a later `rpcz(false)` on another server's builder
    /// turns it off for this one too. Leave it out to keep the process's setting.
    pub fn rpcz(self, enabled: bool) -> Self {
        crate::rpcz::set_enabled(enabled);
        self
    }

    /// Sets what the `/version` page shows: see [`ServerOptions::version`].
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.options.version = Some(version.into());
        self
    }

    /// Replaces all options.
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the largest request body accepted.
    pub fn max_body_size(mut self, max_body_size: usize) -> Self {
        self.options.max_body_size = max_body_size;
        self
    }

    /// How long a stopping server lets open streams go on before ending them with ELOGOFF
    /// (default 3 s): a graceful stop waits for streams no longer than this.
    pub fn stream_stop_grace(mut self, grace: Duration) -> Self {
        self.options.stream_stop_grace = grace;
        self
    }

    /// Verifies clients with `authenticator`: once per connection on baidu_std (the first
    /// request's credential), per request on HTTP and gRPC (the `authorization` header).
    /// Failures get ERPCAUTH; on baidu_std the connection is then closed, as in brpc.
    pub fn authenticator(mut self, authenticator: Arc<dyn crate::Authenticator>) -> Self {
        self.options.authenticator = Some(authenticator);
        self
    }

    /// Serves TLS on the port with `options`' certificates (feature `tls`). Plaintext is still
    /// accepted on the same port unless [`force`](crate::tls::ServerTlsOptions::force) is set.
    /// Certificates are loaded by [`start`](ServerBuilder::start), which fails with EINVAL if
    /// one is unusable.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, options: crate::tls::ServerTlsOptions) -> Self {
        self.options.tls = Some(options);
        self
    }

    /// Binds `address` (`"127.0.0.1:8000"`, `"0.0.0.0:0"` for any free port) and starts serving
    /// in the background of the current tokio runtime: for tests, and for programs that serve
    /// while they do other work (a binary that only serves calls [`serve`](ServerBuilder::serve)).
    /// Keep the returned [`Server`]: dropping it stops the server.
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    pub async fn start(mut self, address: &str) -> Result<Server, Error> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.options.tls.as_mut() {
            tls.prepare()
                .map_err(|status| Error::new(crate::ErrorKind::Tls, status.message()))?;
        }
        #[cfg(feature = "tower")]
        let services = {
            let layers = std::mem::take(&mut self.layers);
            std::mem::take(&mut self.services)
                .into_iter()
                .map(|service| layers.iter().fold(service, |service, wrap| wrap(service)))
                .collect()
        };
        #[cfg(not(feature = "tower"))]
        let services = std::mem::take(&mut self.services);
        let registry = Registry::new(services).map_err(Error::from_status)?;
        for (method, max) in &self.method_limits {
            registry.set_max_concurrency_of(method, max)?;
        }
        for name in &self.blocking {
            registry.set_blocking(name)?;
        }
        user_flag::check_names(&self.user_flags).map_err(Error::invalid)?;
        let rpc_dump = match self.rpc_dump.take() {
            Some(options) => {
                let dir = options.dir.display().to_string();
                Some(
                    rpc_dump::RpcDump::start(options)
                        .map_err(|e| Error::io(format!("Fail to prepare rpc_dump in {dir}"), e))?,
                )
            }
            None => None,
        };
        let listener = listen(address)
            .await
            .map_err(|e| Error::io(format!("Fail to listen on {address}"), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::io("Fail to read the listening address", e))?;
        let internal = match self.options.internal_port {
            Some(port) if self.options.builtin_services => {
                Some(listen_internal(local_addr, port).await?)
            }
            _ => None,
        };
        let (phase, _) = watch::channel(Phase::Running);
        let shared = Arc::new(Shared {
            // Read before the options move in.
            max_concurrency: AtomicUsize::new(self.options.max_concurrency),
            registry,
            options: self.options,
            phase,
            local_addr,
            internal_addr: internal.as_ref().and_then(|l| l.local_addr().ok()),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            connections: AtomicUsize::new(0),
            connections_gone: Notify::new(),
            cancelled: AtomicU64::new(0),
            interceptors: std::mem::take(&mut self.interceptors).into(),
            health_reporter: self.health_reporter.take(),
            user_flags: std::mem::take(&mut self.user_flags),
            rpc_dump,
            #[cfg(feature = "json")]
            reflection: std::sync::OnceLock::new(),
        });
        let protocols: Arc<[Arc<dyn ServerProtocol>]> = protocols(self.redis.take()).into();
        crate::metrics::expose_process_metrics();
        let metrics = shared.registry.expose_status(local_addr.port());
        let accept_task = {
            let public = accept_loop(listener, Arc::clone(&shared), Arc::clone(&protocols), false);
            let internal = internal.map(|l| accept_loop(l, Arc::clone(&shared), protocols, true));
            tokio::spawn(async move {
                match internal {
                    Some(internal) => drop(tokio::join!(public, internal)),
                    None => public.await,
                }
            })
        };
        tracing::info!(%local_addr, services = ?shared.registry.names().collect::<Vec<_>>(), "server started");
        let server = Server {
            shared,
            accept_task: std::sync::Mutex::new(Some(accept_task)),
            registered: Default::default(),
            _metrics: metrics,
        };
        // Registered once the port accepts, so a client that sees the entry can connect.
        match self.registration.register(local_addr).await {
            Ok(active) => *server.registered.lock().await = active,
            Err(e) => {
                server.shutdown().await;
                return Err(e);
            }
        }
        Ok(server)
    }

    /// Starts on `address` and serves until the process is asked to stop — Ctrl-C (SIGINT)
    /// or SIGTERM — then stops gracefully (see [`Server`]) and returns; a second signal during
    /// the stop returns at once, without waiting for calls in flight. What a server binary's
    /// `main` calls.
    ///
    /// ```no_run
    /// # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Error> {
    /// brisk::Server::builder()
    ///     .add_service(service)
    ///     .serve("0.0.0.0:8000")
    ///     .await
    /// # }
    /// ```
    pub async fn serve(self, address: &str) -> Result<(), Error> {
        // Listening before the port opens: a signal that comes at once is not lost.
        let mut signals = StopSignals::install();
        let server = self.start(address).await?;
        let which = signals.next().await;
        tracing::info!(local_addr = %server.local_addr(), "{which} received: stopping gracefully (again to stop at once)");
        tokio::select! {
            () = async { server.stop().await; server.join().await } => {}
            which = signals.next() => {
                tracing::warn!("{which} received again: stopping without waiting for calls in flight");
            }
        }
        Ok(())
    }

    /// Starts on `address`, serves until `signal` completes (whatever it yields, so
    /// `tokio::signal::ctrl_c()` works as it is), then stops gracefully and returns.
    ///
    /// ```no_run
    /// # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Error> {
    /// brisk::Server::builder()
    ///     .add_service(service)
    ///     .serve_with_shutdown("0.0.0.0:8000", tokio::signal::ctrl_c())
    ///     .await
    /// # }
    /// ```
    pub async fn serve_with_shutdown<T>(
        self,
        address: &str,
        signal: impl Future<Output = T>,
    ) -> Result<(), Error> {
        let server = self.start(address).await?;
        signal.await;
        tracing::info!(local_addr = %server.local_addr(), "stopping gracefully");
        server.shutdown().await;
        Ok(())
    }
}

/// The signals that stop [`ServerBuilder::serve`]: Ctrl-C (SIGINT) and, on Unix, SIGTERM.
/// Listened for from [`install`](StopSignals::install) on; one that cannot be listened for is
/// logged and never fires.
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(e) => {
                    tracing::warn!("cannot listen for {name}: {e}");
                    None
                }
            };
            StopSignals {
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The name of the next signal that comes.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        if signal.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.interrupt) => "Ctrl-C (SIGINT)",
                () = recv(&mut self.terminate) => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::warn!("cannot listen for Ctrl-C: {e}");
                std::future::pending::<()>().await;
            }
            "Ctrl-C"
        }
    }
}

/// A running server. Stop it with [`stop`](Server::stop) + [`join`](Server::join), or
/// [`shutdown`](Server::shutdown); dropping it stops it too.
///
/// Stopping is graceful, as in brpc: the listener closes, requests that arrive meanwhile are
/// answered with ELOGOFF (clients retry elsewhere), unary calls in flight finish and their
/// replies are written, open streams go on for
/// [`stream_stop_grace`](ServerBuilder::stream_stop_grace) (3 s by default) and then end with
/// ELOGOFF, then connections close.
///
/// ```no_run
/// # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Status> {
/// let server = brisk::Server::builder().add_service(service).start("127.0.0.1:0").await?;
/// println!("listening on {}", server.local_addr());
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[must_use = "dropping a Server stops it at once: keep it (`let server = ...`) for as long as it \
              should serve, or call `ServerBuilder::serve`, which serves until Ctrl-C or SIGTERM"]
pub struct Server {
    shared: Arc<Shared>,
    accept_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Its entries in naming services, removed when it stops.
    registered: tokio::sync::Mutex<registration::Active>,
    /// The methods' figures, shown in `/vars` while the server lives.
    _metrics: Vec<crate::metrics::Exposed>,
}

impl Server {
    /// Starts building a server.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address the server listens on (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Where the builtin pages are served when the server has an
    /// [`internal_port`](ServerOptions::internal_port).
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.shared.internal_addr
    }

    /// Full names of the hosted services.
    pub fn service_names(&self) -> Vec<&'static str> {
        self.shared.registry.names().collect()
    }

    /// How many handlers were cancelled — their futures dropped before they finished — because
    /// their caller's deadline passed (the deadline a client sends, baidu_std `timeout_ms`,
    /// gRPC `grpc-timeout` or HTTP `x-brisk-timeout-ms`, is the handler's too) or because the
    /// caller went away first (a reset gRPC stream, a closed HTTP connection). Work no one
    /// waits for any more.
    pub fn cancelled_handlers(&self) -> u64 {
        self.shared.cancelled.load(Ordering::Relaxed)
    }

    /// The most requests the server runs at once now (0: no limit); see
    /// [`ServerOptions::max_concurrency`].
    pub fn max_concurrency(&self) -> usize {
        self.shared.max_concurrency.load(Ordering::Relaxed)
    }

    /// Changes the most requests the server runs at once (0: no limit), for requests that
    /// arrive from now on: brpc lets its limits be changed while the server runs. Requests
    /// already running are not cut short.
    ///
    /// ```no_run
    /// # async fn demo(server: brisk::Server) {
    /// server.set_max_concurrency(200); // shed load past 200 requests in flight
    /// # }
    /// ```
    pub fn set_max_concurrency(&self, max_concurrency: usize) {
        self.shared
            .max_concurrency
            .store(max_concurrency, Ordering::Relaxed);
    }

    /// The limit of the method named `full_method` (`example.EchoService.Echo`) now: 0 for
    /// none, the latest estimate for an `auto` limiter; EINVAL when the server does not host
    /// it.
    pub fn max_concurrency_of(&self, full_method: &str) -> Result<usize, Error> {
        self.shared.registry.max_concurrency_of(full_method)
    }

    /// Gives the method named `full_method` a new limit while the server runs (a new limiter,
    /// starting afresh), for requests that arrive from now on; EINVAL when the server does not
    /// host it. See [`ServerBuilder::max_concurrency_of`].
    pub fn set_max_concurrency_of(
        &self,
        full_method: &str,
        max: impl Into<MaxConcurrency>,
    ) -> Result<(), Error> {
        self.shared
            .registry
            .set_max_concurrency_of(full_method, &max.into())
    }

    /// Stops accepting connections and returns once the listening port is released (so another
    /// server may bind it). From now on new requests get ELOGOFF; calls in flight go on.
    /// A server that [registered](ServerBuilder::register) itself first leaves the naming
    /// services, all at once, waiting for them 2 s at most (a registration not removed by
    /// then expires with its lease).
    pub async fn stop(&self) {
        // Out of the naming services first: clients stop picking this server.
        self.registered.lock().await.deregister().await;
        self.shared.begin_stop();
        let accept_task = self
            .accept_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = accept_task {
            let _ = task.await;
        }
    }

    /// Waits for calls in flight to finish, then closes every connection once its replies are
    /// written. Call after [`stop`](Server::stop).
    pub async fn join(&self) {
        self.shared.drain_and_close().await;
    }

    /// [`stop`](Server::stop), then [`join`](Server::join).
    pub async fn shutdown(self) {
        self.stop().await;
        self.join().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.begin_stop();
        let shared = Arc::clone(&self.shared);
        let mut registered = std::mem::take(self.registered.get_mut());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { registered.deregister().await });
                runtime.spawn(async move { shared.drain_and_close().await });
            }
            Err(_) => {
                shared.phase.send_replace(Phase::Closed);
            }
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.shared.local_addr)
            .field("services", &self.shared.registry)
            .field("phase", &*self.shared.phase.borrow())
            .finish()
    }
}

/// The protocols a server started now serves, in the order they are tried: the built-in ones
/// (baidu_std, HTTP/2, HTTP/1.1, and redis when it has a redis service), then every framed
/// protocol registered since.
fn protocols(redis: Option<Arc<redis::RedisService>>) -> Vec<Arc<dyn ServerProtocol>> {
    let framed = |codec| Arc::new(framed::FramedProtocol(codec)) as Arc<dyn ServerProtocol>;
    let (builtin, registered) = crate::protocol::server_codecs();
    let mut protocols: Vec<Arc<dyn ServerProtocol>> = builtin.into_iter().map(framed).collect();
    protocols.push(Arc::new(h2::Http2));
    protocols.push(Arc::new(http1::Http1));
    if let Some(service) = redis {
        protocols.push(Arc::new(redis::RedisProtocol(service)));
    }
    protocols.extend(registered.into_iter().map(framed));
    protocols
}

/// The accept queue asked for: brpc's (the kernel caps it at `net.core.somaxconn`). std's
/// and tokio's `bind` ask for 128, which a burst of connections overflows before the accept
/// loop drains it: the kernel then drops SYNs, and each dropped client waits a second to
/// retry.
const LISTEN_BACKLOG: u32 = 65535;

/// Binds and listens on the first address `address` resolves to that can be bound.
async fn listen(address: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(address).await? {
        let socket = match addr {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // As std and tokio do on Unix: a restarted server can bind while old connections
        // linger in TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// Listens on `port` of `public`'s host, for the builtin pages (`internal_port`); EINVAL for
/// the public port itself or port 0, as brpc refuses them.
async fn listen_internal(public: SocketAddr, port: u16) -> Result<TcpListener, Error> {
    if port == 0 || port == public.port() {
        return Err(Error::invalid(format!(
            "internal_port={port} must be a port of its own, not 0 or the server's port {}",
            public.port()
        )));
    }
    let address = SocketAddr::new(public.ip(), port).to_string();
    listen(&address)
        .await
        .map_err(|e| Error::io(format!("Fail to listen on internal_port {address}"), e))
}

/// Accepts connections until the server stops; those on the `internal` port may see the
/// builtin pages when the server has one.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    protocols: Arc<[Arc<dyn ServerProtocol>]>,
    internal: bool,
) {
    let mut phase = shared.phase.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let max = shared.options.max_connections;
                    if max != 0 && shared.connections.load(Ordering::SeqCst) >= max {
                        tracing::warn!(%remote, "closing connection: the server has max_connections={max} open");
                        drop(stream);
                        continue;
                    }
                    // Counted from accept on, so `join` never misses a connection.
                    let open = ConnectionGuard::new(&shared);
                    tokio::spawn(conn::serve_connection(
                        stream,
                        remote,
                        Arc::clone(&shared),
                        Arc::clone(&protocols),
                        open,
                        internal,
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = wait_for_phase(&mut phase, |p| p != Phase::Running) => break,
        }
    }
    tracing::info!(local_addr = %shared.local_addr, "server stopped accepting");
}
