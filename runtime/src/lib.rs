//! # Brisk
//!
//! A fast RPC framework for Rust in the spirit of [Apache brpc]: real protocols that talk to
//! real peers byte for byte, one connection carrying many calls, and typed stubs generated
//! from `.proto` files.
//!
//! ## A tour
//!
//! - **Code generation** — `brisk-codegen` turns a `.proto` service into a service trait, a
//!   server adapter, an async client and a blocking client, from `build.rs` with no `protoc`
//!   needed. [`include_proto!`] pulls the generated code in.
//! - **[`#[brisk::service]`](macro@service)** — the same four items from a plain Rust trait, no
//!   `.proto`: prost messages (wire-compatible with a `.proto` service of the same name) or serde
//!   types carried as JSON ([`codec::Json`], feature `json`, on by default).
//! - **[`Server`]** — hosts many services on one port, dispatching by full
//!   (`example.EchoService`) or short (`EchoService`) name; each request runs concurrently with
//!   the others on its connection; errors reach the client with brpc's codes ([`errno`]);
//!   [`ServerBuilder::serve`] runs until Ctrl-C or SIGTERM; stopping is graceful (ELOGOFF for
//!   late arrivals, calls in flight finish). The caller's deadline is the handler's
//!   ([`ServerContext::deadline`]): past it the handler is cancelled. Load past what a method
//!   can take is shed with ELIMIT by its concurrency limiter ([`limiter`]: a constant, brpc's
//!   adaptive `auto`, `timeout`, or your own [`ConcurrencyLimiter`](limiter::ConcurrencyLimiter)).
//!   [`interceptor`]s check requests before handlers run (brpc's `Interceptor`, and async
//!   ones), and wrap a channel's calls on the client side.
//! - **[`Channel`]** — the client side. `single` connections (the default) are shared by every
//!   call and every channel in the process and matched by correlation id; `pooled` and `short`
//!   are there too. A deadline covers the whole call (for a stream, only one set on its
//!   [`Controller`]: the channel's timeout bounds a stream's opening) and reaches the server;
//!   failed attempts are retried (timeouts never are); as brpc's, a channel to one server whose
//!   shared connection broke answers EHOSTDOWN at once until a health check connects again.
//! - **Clusters** — [`ChannelBuilder::connect_cluster`] reaches every server a
//!   [naming service](naming) lists (`list://`, `file://`, `http://`/`dns://`, `etcd://`,
//!   `zk://`, or any scheme added with [`naming::register_scheme`]; servers register
//!   themselves in etcd and ZooKeeper with [`ServerBuilder::register`])
//!   through a [load balancer](lb) (`rr`, `wrr`, `random`, `wr`, `la`, `c_murmurhash`, `c_md5`,
//!   `p2c`). Retries go to servers not yet tried ([`RetryPolicy`]); broken servers are isolated
//!   and health-checked back; brpc's circuit breaker and backup requests
//!   ([`BackupRequestPolicy`]) keep calls succeeding while servers come and go.
//! - **[Combo channels](combo)** — [`ParallelChannel`] (fan-out with call mappers and
//!   response mergers: rpcx's broadcast and forking), [`SelectiveChannel`] (balancing and
//!   failover between groups of servers) and [`PartitionChannel`] (partitions from
//!   naming-service tags), all usable wherever a [`Channel`] is.
//! - **[`Controller`]** — per-call options (timeout, retries, log id, attachment, compression)
//!   and results (error, latency, remote side, retries), plus a [`CallId`] another task or
//!   thread can join or cancel.
//! - **baidu_std** ([`protocol::baidu_std`]) — brpc's protocol, byte-compatible with brpc 1.17,
//!   with snappy, gzip and zlib payload compression ([`CompressType`]) and raw attachments;
//!   HTTP/1.1 and HTTP/2 with JSON, protobuf or proto-text bodies (feature `proto-text`), gRPC
//!   (with the health service and server reflection, for `grpcurl`), and brpc's older protocols
//!   ([`protocol::hulu_pbrpc`], [`protocol::sofa_pbrpc`], [`protocol::nshead`] with
//!   public_pbrpc and nova_pbrpc; raw nshead bodies through [`NsheadService`]), all on the
//!   same port.
//! - **[Streaming RPC](stream_rpc)** — brpc's streams: a [`Controller`] offers one to its
//!   call ([`stream_rpc::Stream::create`]), the handler accepts it
//!   ([`ServerContext::accept_stream`]), and ordered messages then flow both ways on the call's
//!   connection under brpc's flow control, read as a `futures` stream or by a
//!   [`StreamHandler`](stream_rpc::StreamHandler); `STRM` frames byte-compatible with brpc 1.17.
//! - **[redis] and [memcache]** — caches through the same [`Channel`]
//!   ([`Channel::redis`], [`Channel::memcache`]): commands pipelined on one connection and
//!   answered in order, key-hashed across a cluster, byte-compatible with brpc 1.17's clients;
//!   and Brisk as a redis server ([`redis::RedisService`] on
//!   [`ServerBuilder::redis_service`]).
//! - **[Protocols](protocol) as plug-ins** — a framed protocol is a
//!   [`ClientCodec`](protocol::ClientCodec) and a [`ServerCodec`](protocol::ServerCodec),
//!   I/O-free, registered by name ([`protocol::register_client`],
//!   [`protocol::register_server`]); channels select it with
//!   [`ChannelBuilder::protocol`], servers detect it, and Brisk's shared connections, call path
//!   and server loop do the rest.
//! - **Errors** — a failed call is a [`Status`] (brpc's code and text, [`errno`], the same on
//!   every protocol; constructors for gRPC's canonical kinds such as [`Status::not_found`]);
//!   a set-up that
//!   cannot work (a bad address, a port in use, TLS material that does not load) is an
//!   [`Error`], which keeps its cause.
//! - **Speed** — frames from concurrent callers are batched into vectored writes by one writer
//!   per connection; responses are cut from the read buffer without copying; no global lock
//!   sits on the call path.
//!
//! ## Example
//!
//! ```ignore
//! // build.rs: brisk_codegen::compile_protos("proto/echo.proto")?;
//! mod echo { brisk::include_proto!("example"); }
//! use echo::{EchoRequest, EchoResponse, EchoService, EchoServiceClient, EchoServiceServer};
//!
//! struct Echo;
//! impl EchoService for Echo {
//!     async fn echo(&self, cntl: &mut brisk::ServerContext, req: EchoRequest)
//!         -> Result<EchoResponse, brisk::Status> {
//!         let attachment = cntl.request_attachment().clone();
//!         cntl.set_response_attachment(attachment);
//!         Ok(EchoResponse { message: req.message })
//!     }
//! }
//!
//! # async fn run() -> Result<(), brisk::Status> {
//! let server = brisk::Server::builder()
//!     .add_service(EchoServiceServer::new(Echo))
//!     .start("127.0.0.1:0")
//!     .await?;
//! let channel = brisk::Channel::connect(&server.local_addr().to_string()).await?;
//! let client = EchoServiceClient::new(channel);
//! let reply = client.echo(EchoRequest { message: "hi".into() }).await?;
//! assert_eq!(reply.message, "hi");
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Without a `.proto`:
//!
//! ```
//! #[derive(serde::Serialize, serde::Deserialize)]
//! pub struct Add { a: i64, b: i64 }
//!
//! #[brisk::service(package = "calc", codec = "json")]
//! pub trait Calculator {
//!     async fn add(&self, request: Add) -> i64;
//! }
//!
//! struct Calc;
//! impl Calculator for Calc {
//!     async fn add(&self, request: Add) -> i64 {
//!         request.a + request.b
//!     }
//! }
//! # async fn run() -> Result<(), brisk::Status> {
//! let server = brisk::Server::builder()
//!     .add_service(CalculatorServer::new(Calc))
//!     .start("127.0.0.1:0")
//!     .await?;
//! let channel = brisk::Channel::connect(&server.local_addr().to_string()).await?;
//! assert_eq!(CalculatorClient::new(channel).add(Add { a: 1, b: 2 }).await?, 3);
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! - `json` (default): [`codec::Json`], for `#[brisk::service(codec = "json")]` services of
//!   serde types. It adds `serde` and `serde_json`; the macros already bring `syn`, so this
//!   costs little, and `codec = "json"` works without extra set-up.
//! - `proto-text` (default): HTTP bodies in protobuf's text format.
//! - `tls`: TLS with rustls on servers and channels.
//! - `etcd`: the `etcd://` naming service, and servers registering themselves in etcd
//!   (the `etcd` module: etcd's gRPC API through stubs Brisk generates, over a [`Channel`]).
//! - `zookeeper`: the `zk://` naming service, and servers registering themselves in
//!   ZooKeeper (Brisk's own client of its protocol: no dependency).
//! - `lz4`, `zstd`: LZ4 and zstd payload compression ([`CompressType`]), and gRPC's `zstd`.
//! - `hotspots`: `/hotspots/cpu`, a CPU flame graph of the running server (pprof-rs).
//! - `tower`: `ServerBuilder::layer` wraps services in tower middleware (the `tower` module).
//!
//! [Apache brpc]: https://brpc.apache.org

#![warn(missing_docs)]

// Generated stubs name the crate `::brisk`, as in a user's crate; the etcd client is such
// stubs, compiled here.
#[cfg(feature = "etcd")]
extern crate self as brisk;

pub mod auth;
mod channel;
mod clock;
pub mod codec;
pub mod codegen;
pub mod combo;
mod compress;
mod controller;
mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
mod executor;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod global;
pub mod interceptor;
#[cfg(feature = "json")]
mod json;
pub mod lb;
pub mod limiter;
pub mod memcache;
mod method;
pub mod metrics;
pub mod naming;
#[cfg(feature = "json")]
pub mod proto_source;
pub mod protocol;
pub mod redis;
mod required;
mod response_metadata;
pub mod rpcz;
mod server;
mod streaming;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tower")]
pub mod tower;
mod transport;

pub use auth::{AuthContext, Authenticator};
pub use channel::{
    BackupRequestPolicy, Channel, ChannelBuilder, ChannelOptions, DefaultRetryPolicy,
    RateLimitedBackupPolicy, RetryPolicy,
};
pub use combo::{ParallelChannel, PartitionChannel, SelectiveChannel};
pub use compress::{compress, decompress, CompressType};
pub use controller::{CallId, Controller};
pub use error::{errno, Error, ErrorKind, Status};
pub use method::MethodDescriptor;
pub use protocol::{ConnectionType, Protocol};
pub use server::rpc_dump;
pub use server::{
    Health, HealthReporter, MessageSchema, NsheadMessage, NsheadPbAdaptor, NsheadService, Server,
    ServerBuilder, ServerContext, ServerOptions, Service, ServiceFuture, ServiceResponse,
    StreamingFuture, StreamingResponse,
};
pub use streaming::{BytesStream, MethodKind, ResponseStream, Streaming};
pub use transport::stream_rpc;

pub use brisk_macros::service;

/// Includes the code `brisk-codegen` generated for protobuf package `$package` (messages and
/// services) from `OUT_DIR`.
///
/// ```ignore
/// pub mod echo {
///     brisk::include_proto!("example");
/// }
/// ```
#[macro_export]
macro_rules! include_proto {
    ($package:tt) => {
        include!(concat!(env!("OUT_DIR"), concat!("/", $package, ".rs")));
    };
}
