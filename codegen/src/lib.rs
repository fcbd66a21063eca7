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
//!   `&mut brisk::ServerContext` and the request;
//! - `EchoServiceServer<T>`: serves an implementation, implementing `brisk::codegen::Service`;
//! - `EchoServiceClient`: async client over a `brisk::Channel`, with `echo(req)` and
//!   `echo_with(&mut Controller, req)`;
//! - `EchoServiceBlockingClient`: the same calls, blocking.
//!
//! A broken `.proto` fails the build with `path:line:column: reason`. Streaming methods are
//! rejected for now (they arrive with the gRPC work). Well-known types
//! (`google/protobuf/*.proto`) are built in and map to `::prost_types`; the crate using the
//! generated code then needs `prost` (and `prost-types` when it uses well-known types).
//!
//! # Comments
//!
//! protobuf-parse does not record `source_code_info`, so prost sees no comments and generated
//! messages carry none. The comment directly above a `service` or an `rpc` is recovered by a
//! small scanner and becomes the stubs' documentation.

#![warn(missing_docs)]

mod builder;
mod comments;
pub mod emit;
mod error;
pub mod model;
mod parse_error;
pub mod prost;

pub use builder::{compile_protos, configure, Builder};
pub use emit::EmitOptions;
pub use error::{Error, ErrorKind};
