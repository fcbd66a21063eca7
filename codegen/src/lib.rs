//! Code generation for Brisk RPC.
//!
//! One [service model](model) sits at the centre: front doors fill it in, and one set of
//! [emitters](emit) turns it into Rust, so every front door produces the same shapes. Today's
//! front door is `build.rs` ([`configure`] / [`compile_protos`]), which parses `.proto` files in
//! pure Rust — **no `protoc` needed** — and hands them to `prost-build`; Brisk's
//! [`prost::ServiceGenerator`] appends the stubs to prost's messages.
//!
//! # Using it from `build.rs`
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     brisk_codegen::configure()
//!         .build_blocking_client(false) // optional: clients and servers are all on by default
//!         .compile(&["proto/echo.proto"], &["proto"])?;
//!     Ok(())
//! }
//! ```
//!
//! Each protobuf package becomes `$OUT_DIR/<package>.rs` (`_.rs` for no package), holding
//! prost's messages followed by the Brisk items; include it with
//! `brisk::include_proto!("example")`. For `service EchoService` this generates:
//!
//! - `trait EchoService`: implement it with plain `async fn`s, one per RPC, taking
//!   `&mut brisk::ServerContext` and the request (a `brisk::Streaming<Req>` of requests when the
//!   client streams) and returning the response (a `brisk::ResponseStream<Resp>` when the server
//!   streams);
//! - `EchoServiceServer<T>`: serves an implementation, implementing `brisk::codegen::Service`;
//! - `EchoServiceClient`: async client over a `brisk::Channel`, with `echo(req)` and
//!   `echo_with(&mut Controller, req)`; streaming methods take any `Stream` of requests and
//!   return a `brisk::Streaming<Resp>` of responses where they stream;
//! - `EchoServiceBlockingClient`: the same calls, blocking (unary methods only);
//! - `FILE_DESCRIPTOR_SET`: the encoded `google.protobuf.FileDescriptorSet` of the package's
//!   files and their imports, which the servers return from `schema()` and the clients attach
//!   to their methods, so HTTP can carry the messages as JSON.
//!
//! All four method kinds are generated: unary, server-, client- and bidi-streaming (streaming
//! calls need the `h2:grpc` protocol). A broken `.proto` fails the build with
//! `path:line:column: reason`. Well-known types
//! (`google/protobuf/*.proto`) are built in and map to `::prost_types`; the crate using the
//! generated code then needs `prost` (and `prost-types` when it uses well-known types).
//!
//! # Features
//!
//! - `build` (default): the `build.rs` front door above, with prost-build and protobuf-parse.
//!   Turn it off (`default-features = false`) to get only the [model] and the [emitters](emit);
//!   `brisk-macros` (`#[brisk::service]`) does, so those crates stay out of its users' builds.
//!
//! # Comments
//!
//! protobuf-parse does not record `source_code_info`, so prost sees no comments and generated
//! messages carry none. The comment directly above a `service` or an `rpc` is recovered by a
//! small scanner and becomes the stubs' documentation.

#![warn(missing_docs)]

#[cfg(feature = "build")]
mod builder;
#[cfg(feature = "build")]
mod comments;
pub mod emit;
// Some constructors are only used by the `build` front door.
#[cfg_attr(not(feature = "build"), allow(dead_code))]
mod error;
pub mod model;
#[cfg(feature = "build")]
mod parse_error;
#[cfg(feature = "build")]
pub mod prost;
#[cfg(feature = "build")]
mod prost_options;

#[cfg(feature = "build")]
pub use builder::{compile_protos, configure, Builder};
pub use emit::EmitOptions;
pub use error::{Error, ErrorKind};
#[cfg(feature = "build")]
pub use prost_options::ProstOptions;
