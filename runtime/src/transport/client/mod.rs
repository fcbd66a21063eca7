//! How a channel's calls reach one server: each protocol's client, on the connection
//! discipline it needs.
//!
//! - *Framed* protocols (baidu_std and every registered [`ClientCodec`]) share one discipline,
//!   [`framed`]: a connection with a batching writer and a reader that hands each response to
//!   its call, by correlation id ([`Matching::CorrelationId`]) or in order
//!   ([`Matching::InOrder`]); `single`, `pooled` and `short` connections.
//! - `http` (HTTP/1.1, one call per connection at a time, keep-alive pool) is [`http`];
//! - `h2:grpc` is [`grpc`], on the HTTP/2 streams of [`h2`].
//!
//! The channel sees none of them: it finds a protocol by name ([`lookup`]), asks it for the
//! [`Connections`] to each server, and runs attempts on those.
//!
//! [`ClientCodec`]: crate::protocol::ClientCodec
//! [`Matching::CorrelationId`]: crate::protocol::Matching::CorrelationId
//! [`Matching::InOrder`]: crate::protocol::Matching::InOrder

mod call;
pub(crate) mod framed;
pub(crate) mod grpc;
pub(crate) mod h2;
pub(crate) mod http;
mod idle_pool;
mod in_order;
pub(crate) mod pending;

use std::fmt;
use std::sync::Arc;

use crate::protocol::{self, ClientCodec, ConnectionType, Protocol};
use crate::{errno, MethodDescriptor, Status};
pub(crate) use call::{
    Answer, CallSettings, Cause, EncodedRequest, EndpointSettings, Failure, OpenStream,
    OwnedConnections, StreamRequest,
};
pub(crate) use idle_pool::DEFAULT_IDLE_TIMEOUT;

/// A client protocol as a channel sees it: a name, and the connections it makes to a server.
#[derive(Clone)]
pub(crate) struct ClientProtocol {
    name: &'static str,
    kind: Kind,
}

/// How a protocol's connections are made.
#[derive(Clone)]
enum Kind {
    /// A registered codec on the framed discipline.
    Framed(Arc<dyn ClientCodec>),
    /// A protocol that owns its connections, whether it has streaming calls, and whether all
    /// calls to a server share one connection (HTTP/2) or a pool (HTTP/1.1).
    Owned {
        connections: fn(EndpointSettings) -> Box<dyn OwnedConnections>,
        streams: bool,
        shares_connection: bool,
    },
}

impl fmt::Debug for ClientProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl ClientProtocol {
    /// The name the protocol is registered under.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The connections to one server; none is made until a call or a probe needs one.
    pub(crate) fn connections(&self, settings: EndpointSettings) -> Connections {
        Connections(match &self.kind {
            Kind::Framed(codec) => {
                Discipline::Framed(framed::FramedConnections::new(Arc::clone(codec), settings))
            }
            Kind::Owned { connections, .. } => Discipline::Owned(connections(settings)),
        })
    }

    /// The connection type a channel asking for `requested` uses: that one, if the protocol
    /// works on it (EINVAL if not), or the protocol's default (the first it lists).
    pub(crate) fn connection_type(
        &self,
        requested: Option<ConnectionType>,
    ) -> Result<ConnectionType, Status> {
        let Kind::Framed(codec) = &self.kind else {
            // HTTP and HTTP/2 manage their own connections.
            return Ok(requested.unwrap_or_default());
        };
        let supported = codec.connection_types();
        match requested.or_else(|| supported.first().copied()) {
            Some(kind) if supported.contains(&kind) => Ok(kind),
            kind => Err(Status::new(
                errno::EINVAL,
                format!(
                    "{} does not support connection type {} (it works on {})",
                    self.name,
                    kind.map_or("<none>", ConnectionType::name),
                    supported
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Whether every call of a channel with `connection_type` to a server goes over one shared
    /// connection: brpc's `single` sockets (and HTTP/2's one connection), which a single-server
    /// channel takes out of use when they fail. Pooled and short connections, and HTTP/1.1's
    /// pool, fail one at a time.
    pub(crate) fn shares_connection(&self, connection_type: ConnectionType) -> bool {
        match &self.kind {
            Kind::Framed(_) => connection_type == ConnectionType::Single,
            Kind::Owned {
                shares_connection, ..
            } => *shares_connection,
        }
    }

    /// Whether an attempt that failed with `code` means the shared connection to the server
    /// is gone (see [`shares_connection`](ClientProtocol::shares_connection)): refused, timed
    /// out connecting, or (on a framed protocol) broken. A stopping server (ELOGOFF) is not:
    /// the next connection may reach its successor. Over HTTP/2 only connecting counts: a
    /// reset stream or a GOAWAY leaves the server in use.
    pub(crate) fn breaks_shared_connection(&self, code: i32) -> bool {
        match self.kind {
            Kind::Framed(_) => code != errno::ELOGOFF && crate::error::is_connection_failure(code),
            Kind::Owned { .. } => matches!(code, errno::ECONNREFUSED | errno::ETIMEDOUT),
        }
    }

    /// EREQUEST unless the protocol has streaming calls: checked before any server is picked,
    /// so a call the protocol cannot make counts against no server.
    pub(crate) fn check_streaming(&self) -> Result<(), Status> {
        match self.kind {
            Kind::Owned { streams: true, .. } => Ok(()),
            _ => Err(no_streaming(self.name)),
        }
    }
}

/// The error for a streaming call on a protocol without streaming calls.
fn no_streaming(protocol: &str) -> Status {
    Status::new(
        errno::EREQUEST,
        format!("streaming methods need protocol h2:grpc, not {protocol}"),
    )
}

/// The built-in protocols that own their connections.
const CONNECTION_OWNING: [ClientProtocol; 2] = [
    ClientProtocol {
        name: "http",
        kind: Kind::Owned {
            connections: http::connections,
            streams: false,
            shares_connection: false,
        },
    },
    ClientProtocol {
        name: "h2:grpc",
        kind: Kind::Owned {
            connections: grpc::connections,
            streams: true,
            shares_connection: true,
        },
    },
];

/// The client of the protocol `protocol` names: a built-in one that owns its connections, or a
/// registered codec on the framed discipline. EINVAL for a name nothing is registered under.
pub(crate) fn lookup(protocol: &Protocol) -> Result<ClientProtocol, Status> {
    let name = protocol.name();
    if let Some(owning) = CONNECTION_OWNING.iter().find(|p| p.name == name) {
        return Ok(owning.clone());
    }
    match protocol::client_codec(name) {
        Some(codec) => Ok(ClientProtocol {
            name: codec.name(),
            kind: Kind::Framed(codec),
        }),
        None => Err(protocol::unknown_protocol(name)),
    }
}

/// A protocol's connections to one server.
#[derive(Debug)]
pub(crate) struct Connections(Discipline);

/// The disciplines: framed connections, inline on the call path (the common case, and the
/// fast one: no boxed future per call); or a protocol that owns its connections.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per server, read in place on every call
enum Discipline {
    Framed(framed::FramedConnections),
    Owned(Box<dyn OwnedConnections>),
}

impl Connections {
    /// One attempt of a unary call.
    pub(crate) async fn call(
        &self,
        settings: &CallSettings,
        method: &MethodDescriptor,
        request: &EncodedRequest,
    ) -> Result<Answer, Failure> {
        match &self.0 {
            Discipline::Framed(framed) => framed.call(settings, method, request).await,
            Discipline::Owned(_) if request.stream.is_some() => Err(Failure::request(Status::new(
                errno::EREQUEST,
                "brpc streams need protocol baidu_std, not a protocol of its own connections",
            ))),
            Discipline::Owned(owned) => owned.call(settings, method, request).await,
        }
    }

    /// Opens a streaming call.
    pub(crate) async fn open_stream(
        &self,
        settings: &CallSettings,
        request: StreamRequest<'_>,
    ) -> Result<OpenStream, Failure> {
        match &self.0 {
            Discipline::Framed(framed) => Err(Failure::request(no_streaming(framed.protocol()))),
            Discipline::Owned(owned) => owned.open_stream(settings, request).await,
        }
    }

    /// Connects for a health check; the connection is kept for later calls.
    pub(crate) async fn probe(&self, settings: &CallSettings) -> Result<(), Status> {
        match &self.0 {
            Discipline::Framed(framed) => framed.probe(settings.connect_timeout).await,
            Discipline::Owned(owned) => owned.probe(settings).await,
        }
    }
}
