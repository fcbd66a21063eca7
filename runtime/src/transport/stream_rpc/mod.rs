//! brpc's streaming RPC: ordered, flow-controlled streams of messages that a baidu_std call
//! opens, on the same connection as the call.
//!
//! The client attaches a [`Stream`] to a call's [`Controller`](crate::Controller) with
//! [`Stream::create`]; the server's handler accepts it with
//! [`ServerContext::accept_stream`](crate::ServerContext::accept_stream). Once the call is
//! answered, each side sends messages with [`Stream::send`] (waiting while the peer's window
//! is full) and receives them as a [`Stream`](futures_core::Stream); either side closes it, and dropping
//! the handle closes it too.
//!
//! ```no_run
//! # async fn demo(channel: brisk::Channel) -> Result<(), brisk::Status> {
//! use brisk::stream_rpc::{Stream, StreamOptions};
//! use brisk::{codec::Raw, Controller, MethodDescriptor};
//! use bytes::Bytes;
//! use futures_util::StreamExt;
//!
//! let mut cntl = Controller::new();
//! let mut stream = Stream::create(&mut cntl, StreamOptions::default());
//! // Any call opens it (a generated client's too); the server's handler accepts it.
//! let echo = MethodDescriptor::new("example.EchoService", "Echo");
//! let _: Bytes = channel.unary::<Raw, _, _>(&echo, &mut cntl, &Bytes::new()).await?;
//! stream.send(Bytes::from_static(b"abcdefghijklmnopqrstuvwxyz")).await?;
//! while let Some(message) = stream.next().await {
//!     println!("{:?}", message?);
//! }
//! # Ok(()) }
//! ```

mod core;
mod handler;
mod options;
mod stream;
pub(crate) mod table;

pub(crate) use self::core::StreamCore;
pub use self::handler::StreamHandler;
pub use self::options::StreamOptions;
pub use self::stream::{Stream, StreamWriter};
