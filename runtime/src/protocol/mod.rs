//! Wire protocols, and how a protocol plugs into Brisk. Everything here is I/O-free: bytes in,
//! frames out.
//!
//! A protocol is known by its name ([`Protocol`]), as brpc names them: a channel selects one
//! ([`ChannelBuilder::protocol`](crate::ChannelBuilder::protocol)) and a server detects each
//! connection's from its first bytes, every protocol on one port.
//!
//! - **baidu_std** ([`baidu_std`]), brpc's default, and any protocol of your own are *framed*
//!   protocols: a [`ClientCodec`] and a [`ServerCodec`] turn calls into frames and back, and
//!   Brisk's shared connections carry them (batched writes, responses matched by correlation id
//!   or in order, detection, dispatch, authentication, graceful stop). Register yours with
//!   [`register_client`] and [`register_server`]; `examples/src/bin/custom_protocol.rs` does,
//!   for a tiny length-prefixed protocol.
//! - **hulu_pbrpc** ([`hulu_pbrpc`]), **sofa_pbrpc** ([`sofa_pbrpc`]), and **nshead**,
//!   **public_pbrpc** and **nova_pbrpc** ([`nshead`]), brpc's older protocols, are framed
//!   codecs too, registered by Brisk itself.
//! - **redis** ([`redis`]): RESP, answered in order, several commands per call; a client
//!   codec (channels call with [`Channel::redis`](crate::Channel::redis)).
//! - **memcache** ([`memcache`]): memcached's binary protocol, answered in order, several
//!   operations per call; a client codec (channels call with
//!   [`Channel::memcache`](crate::Channel::memcache)).
//! - **http** (HTTP/1.1) and **h2:grpc** (gRPC over HTTP/2) own their connections, through
//!   hyper and h2.
//! - **streaming_rpc** ([`streaming_rpc`]): the `STRM` frames of brpc's streaming RPC, the
//!   streams a baidu_std call opens (the codec and its golden tests so far; channels and
//!   servers do not open streams yet).

pub mod baidu_std;
mod codec;
mod cut;
pub(crate) mod detect;
pub(crate) mod grpc;
pub(crate) mod http;
pub mod hulu_pbrpc;
pub mod memcache;
mod name;
pub mod nshead;
mod pipelined;
pub mod redis;
mod registry;
pub mod sofa_pbrpc;
pub mod streaming_rpc;
mod trace;

use std::str::FromStr;

pub use codec::{
    millis_left, ClientCodec, Detection, IncomingRequest, IncomingResponse, Matching, MethodRef,
    OutFrame, OutgoingRequest, OutgoingResponse, ParseError, Payload, ReplyTo, RequestParseFailure,
    ServerCodec, StreamSetup,
};
pub(crate) use name::unknown_protocol;
pub use name::Protocol;
pub(crate) use registry::{client_codec, server_codecs};
pub use registry::{register_client, register_server};
pub use trace::{
    format_trace_id, TraceIds, BRPC_PARENT_SPAN_ID, BRPC_SPAN_ID, BRPC_TRACE_ID, TRACEPARENT,
};

use crate::Error;

/// brpc's default `max_body_size`, the largest body a request or response may carry: 64 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024 * 1024;

/// brpc's error text: the server's address and the code before the handler's words,
/// `[127.0.0.1:8000][E1002]Fail to find method=...` (what brpc servers send, on every protocol
/// that carries error text).
pub(crate) fn brpc_error_text(server: std::net::SocketAddr, code: i32, text: &str) -> String {
    format!("[{server}][E{code}]{text}")
}

/// How a channel uses connections, as brpc's `ChannelOptions.connection_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConnectionType {
    /// One connection per server, shared by every call and every channel in the process;
    /// responses are matched to calls by correlation id (or in order). The default.
    #[default]
    Single,
    /// A pool of connections per server; each carries one call at a time.
    Pooled,
    /// A new connection per call, closed after it.
    Short,
}

impl ConnectionType {
    /// Its name, as brpc spells it: `single`, `pooled`, `short`.
    pub fn name(self) -> &'static str {
        match self {
            ConnectionType::Single => "single",
            ConnectionType::Pooled => "pooled",
            ConnectionType::Short => "short",
        }
    }
}

impl std::fmt::Display for ConnectionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ConnectionType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "single" => Ok(ConnectionType::Single),
            "pooled" => Ok(ConnectionType::Pooled),
            "short" => Ok(ConnectionType::Short),
            other => Err(Error::invalid(format!(
                "unknown connection type `{other}` (expected single, pooled or short)"
            ))),
        }
    }
}
