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
//! - **http** (HTTP/1.1) and **h2:grpc** (gRPC over HTTP/2) own their connections, through
//!   hyper and h2.

pub mod baidu_std;
mod codec;
pub(crate) mod detect;
pub(crate) mod grpc;
pub(crate) mod http;
mod registry;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

pub use codec::{
    ClientCodec, Detection, IncomingRequest, IncomingResponse, Matching, MethodRef, OutFrame,
    OutgoingRequest, OutgoingResponse, ParseError, Payload, ReplyTo, ServerCodec,
};
pub(crate) use registry::{client_codec, client_names, server_codecs};
pub use registry::{register_client, register_server};

use crate::{errno, Error, Status};

/// brpc's default `max_body_size`, the largest body a request or response may carry: 64 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024 * 1024;

/// Protocols implemented on connections of their own (HTTP/1.1 through hyper, HTTP/2 through
/// h2) rather than as codecs on Brisk's framed connections: their names and aliases. No codec
/// may take these names.
pub(crate) const CONNECTION_OWNING: &[(&str, &[&str])] = &[("http", &[]), ("h2:grpc", &["grpc"])];

/// The name `name` stands for: a built-in protocol's alias becomes its name.
pub(crate) fn canonical_name(name: &str) -> &str {
    CONNECTION_OWNING
        .iter()
        .find(|(_, aliases)| aliases.contains(&name))
        .map_or(name, |(canonical, _)| canonical)
}

/// The protocol a [`Channel`](crate::Channel) speaks, by the name it is registered under, as
/// brpc's `ChannelOptions.protocol`: `"baidu_std"` (the default), `"http"`, `"h2:grpc"`
/// (also `"grpc"`), or any protocol registered with [`register_client`]. A name nothing is
/// registered under fails the channel's `connect` with EINVAL.
///
/// ```
/// use brisk::Protocol;
/// let grpc: Protocol = "grpc".parse().unwrap();
/// assert_eq!(grpc, Protocol::GRPC);
/// assert_eq!(grpc.name(), "h2:grpc");
/// assert!("carrier_pigeon".parse::<Protocol>().is_err());
/// assert_eq!(Protocol::from("hulu_pbrpc").name(), "hulu_pbrpc"); // checked by connect
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Protocol(Cow<'static, str>);

impl Protocol {
    /// brpc's default binary protocol.
    pub const BAIDU_STD: Protocol = Protocol(Cow::Borrowed("baidu_std"));
    /// HTTP/1.1, pb methods as `POST /Service/Method`.
    pub const HTTP: Protocol = Protocol(Cow::Borrowed("http"));
    /// gRPC over HTTP/2; the protocol with streaming methods.
    pub const GRPC: Protocol = Protocol(Cow::Borrowed("h2:grpc"));

    /// The protocol registered as `name` (aliases become the name they stand for). Whether
    /// anything is registered under it is checked when a channel connects.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        match canonical_name(&name) {
            canonical if canonical != name => Protocol(Cow::Owned(canonical.to_owned())),
            _ => Protocol(name),
        }
    }

    /// The protocol's registered name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol::BAIDU_STD
    }
}

impl From<&'static str> for Protocol {
    fn from(name: &'static str) -> Self {
        Protocol::new(name)
    }
}

impl From<String> for Protocol {
    fn from(name: String) -> Self {
        Protocol::new(name)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol({:?})", self.name())
    }
}

impl FromStr for Protocol {
    type Err = Error;

    /// A protocol registered now (a built-in one, or one added with [`register_client`]);
    /// EINVAL for any other name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = canonical_name(s);
        let builtin = CONNECTION_OWNING.iter().any(|(name, _)| *name == canonical);
        if builtin || client_codec(canonical).is_some() {
            return Ok(Protocol::new(canonical.to_owned()));
        }
        Err(Error::from_status(unknown_protocol(s)))
    }
}

/// The error for a protocol nothing is registered under.
pub(crate) fn unknown_protocol(name: &str) -> Status {
    let mut known: Vec<&str> = CONNECTION_OWNING.iter().map(|(name, _)| *name).collect();
    known.extend(client_names());
    Status::new(
        errno::EINVAL,
        format!(
            "unknown protocol `{name}` (registered: {})",
            known.join(", ")
        ),
    )
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
