//! What a call attempt is to every client protocol: the request encoded once, the answer,
//! why an attempt failed, the settings connections are made with, and the connections of
//! protocols that own theirs.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::runtime::Handle;

use crate::protocol::Payload;
use crate::response_metadata::ResponseMetadata;
use crate::streaming::BytesStream;
use crate::transport::h2_keep_alive::KeepAlive;
use crate::transport::stream::Security;
use crate::{errno, Authenticator, CompressType, ConnectionType, MethodDescriptor, Status};

/// A boxed future, as protocol clients that own their connections return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request encoded (and compressed) once per call, sent as is by every attempt.
#[derive(Debug)]
pub(crate) struct EncodedRequest {
    /// The message, its attachment and its compression.
    pub(crate) payload: Payload,
    /// brpc's content type of the message: 0 protobuf, 1 JSON.
    pub(crate) content_type: i32,
    /// The controller's log id, if one was set.
    pub(crate) log_id: Option<i64>,
    /// The controller's request metadata (HTTP headers, gRPC metadata, baidu_std user fields).
    pub(crate) headers: Vec<(String, String)>,
    /// When the call must end: protocols that carry a deadline (gRPC's `grpc-timeout`) send
    /// what is left of it.
    pub(crate) deadline: Option<Instant>,
    /// The brpc stream the call offers its server ([`Stream::create`]).
    ///
    /// [`Stream::create`]: crate::transport::stream_rpc::Stream::create
    pub(crate) stream: Option<std::sync::Arc<crate::transport::stream_rpc::StreamCore>>,
    /// The call's rpcz span ids, when it is traced: sent as the protocol carries them.
    pub(crate) trace: Option<crate::protocol::TraceIds>,
}

#[cfg(test)]
impl EncodedRequest {
    /// An uncompressed request without attachment or metadata.
    pub(crate) fn for_tests(message: &'static [u8]) -> Self {
        EncodedRequest {
            payload: Payload {
                message: Bytes::from_static(message),
                ..Payload::default()
            },
            content_type: 0,
            log_id: None,
            headers: Vec::new(),
            deadline: None,
            stream: None,
            trace: None,
        }
    }
}

/// A successful attempt: the response's (decompressed) message, its attachment, and the
/// connection's addresses.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) payload: Bytes,
    pub(crate) attachment: Bytes,
    pub(crate) compress_type: CompressType,
    pub(crate) remote: SocketAddr,
    pub(crate) local: SocketAddr,
    /// Response metadata (HTTP headers, gRPC headers and trailers).
    pub(crate) headers: ResponseMetadata,
}

/// Why an attempt failed, and whose doing it was.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub(crate) status: Status,
    pub(crate) cause: Cause,
}

/// Whose doing a failed attempt was: what health checks and balancers learn from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Connecting, writing or reading failed, or the server is stopping: the server may be
    /// down.
    Transport,
    /// The server answered with an error (or an undecodable response). It stays in rotation.
    Server,
    /// The request could not be sent as it is (something the protocol cannot carry, a
    /// credential that could not be made), or this process stopped its connection (the
    /// runtime running it shut down): no server is judged by it.
    Request,
}

impl Failure {
    /// Connecting, writing or reading failed, or the server is going away.
    pub(crate) fn transport(status: Status) -> Self {
        Failure {
            status,
            cause: Cause::Transport,
        }
    }

    /// The server answered with an error (or an undecodable response).
    pub(crate) fn server(status: Status) -> Self {
        Failure {
            status,
            cause: Cause::Server,
        }
    }

    /// The request cannot be sent as it is.
    pub(crate) fn request(status: Status) -> Self {
        Failure {
            status,
            cause: Cause::Request,
        }
    }

    /// Whether the connection, not the server's answer, failed.
    #[cfg(test)]
    pub(crate) fn is_transport(&self) -> bool {
        self.cause == Cause::Transport
    }
}

/// What connections to one server share, whichever channel uses them: channels with equal
/// settings share a server's connections.
#[derive(Clone, Debug)]
pub(crate) struct EndpointSettings {
    /// The server's address.
    pub(crate) addr: SocketAddr,
    /// Largest response body accepted.
    pub(crate) max_body_size: usize,
    /// TLS or not.
    pub(crate) security: Security,
    /// The runtime the channel that created the connections was made on: it runs their tasks
    /// (Brisk's background runtime takes over if it shuts down).
    pub(crate) runtime: Handle,
}

/// What each channel decides for its own calls on shared connections.
#[derive(Clone)]
pub(crate) struct CallSettings {
    /// Time allowed to connect.
    pub(crate) connect_timeout: Duration,
    /// Single, pooled or short connections.
    pub(crate) connection_type: ConnectionType,
    /// Generates the credential requests carry.
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    /// `http` sends pb requests as JSON.
    pub(crate) http_json: bool,
    /// HTTP/2 connections PING the server.
    pub(crate) h2_keep_alive: Option<KeepAlive>,
    /// How long a pooled connection may wait unused before it is closed.
    pub(crate) idle_timeout: Option<Duration>,
}

impl fmt::Debug for CallSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallSettings")
            .field("connect_timeout", &self.connect_timeout)
            .field("connection_type", &self.connection_type)
            .field("authenticator", &self.authenticator.is_some())
            .field("http_json", &self.http_json)
            .field("h2_keep_alive", &self.h2_keep_alive)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

#[cfg(test)]
impl CallSettings {
    /// brpc's defaults, without an authenticator.
    pub(crate) fn for_tests() -> Self {
        CallSettings {
            connect_timeout: Duration::from_millis(200),
            connection_type: ConnectionType::Single,
            authenticator: None,
            http_json: false,
            h2_keep_alive: None,
            idle_timeout: Some(super::idle_pool::DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// A streaming call as a protocol sends it: the method, what goes in the head, and the request
/// messages (serialized, not yet framed or compressed).
pub(crate) struct StreamRequest<'a> {
    /// The method called.
    pub(crate) method: &'a MethodDescriptor,
    /// Request metadata.
    pub(crate) headers: &'a [(String, String)],
    /// The controller's attachment (which gRPC cannot carry).
    pub(crate) attachment: &'a Bytes,
    /// When the call must end.
    pub(crate) deadline: Option<Instant>,
    /// The call's rpcz span ids, when it is traced.
    pub(crate) trace: Option<crate::protocol::TraceIds>,
    /// brpc's log id, if one was set.
    pub(crate) log_id: Option<i64>,
    /// How request messages are compressed.
    pub(crate) compress_type: CompressType,
    /// The request messages. An attempt takes them once it commits to a server (the stream
    /// is open): until then a failed attempt leaves them, and the call can go elsewhere.
    pub(crate) requests: &'a Mutex<Option<BytesStream>>,
}

/// An open streaming call: the response's head, and its messages, which end with the call's
/// status (`None` after the last message of a call that succeeded, an error item otherwise).
pub(crate) struct OpenStream {
    /// Response metadata.
    pub(crate) headers: ResponseMetadata,
    /// How response messages are compressed.
    pub(crate) compress_type: CompressType,
    /// The connection's local address.
    pub(crate) local: SocketAddr,
    /// The response messages, decompressed.
    pub(crate) messages: BytesStream,
}

/// The connections of protocols that own theirs (HTTP/1.1, HTTP/2): each call's future is boxed.
pub(crate) trait OwnedConnections: Send + Sync + fmt::Debug + 'static {
    /// One attempt of a unary call.
    fn call<'a>(
        &'a self,
        settings: &'a CallSettings,
        method: &'a MethodDescriptor,
        request: &'a EncodedRequest,
    ) -> BoxFuture<'a, Result<Answer, Failure>>;

    /// Opens a streaming call (the protocols that stream); EREQUEST by default.
    fn open_stream<'a>(
        &'a self,
        settings: &'a CallSettings,
        request: StreamRequest<'a>,
    ) -> BoxFuture<'a, Result<OpenStream, Failure>> {
        let _ = (settings, request);
        Box::pin(std::future::ready(Err(Failure::request(Status::new(
            errno::EREQUEST,
            "streaming methods need protocol h2:grpc",
        )))))
    }

    /// Connects for a health check, keeping the connection for later calls.
    fn probe<'a>(&'a self, settings: &'a CallSettings) -> BoxFuture<'a, Result<(), Status>>;
}

/// The `authorization` header HTTP and gRPC requests carry when the channel has an
/// authenticator; ERPCAUTH when it fails or makes a credential no header can hold.
pub(crate) fn authorization(
    settings: &CallSettings,
) -> Result<Option<::http::HeaderValue>, Status> {
    let Some(authenticator) = settings.authenticator.as_deref() else {
        return Ok(None);
    };
    let credential = crate::auth::generate_credential(authenticator)?;
    ::http::HeaderValue::from_str(&credential)
        .map(Some)
        .map_err(|_| {
            Status::new(
                errno::ERPCAUTH,
                "the credential is not a valid header value",
            )
        })
}

/// The `Host` / `:authority` of HTTP and gRPC requests to `addr`: the TLS server name when the
/// connection has one (virtual hosts route by it), else the address.
pub(crate) fn authority(addr: SocketAddr, security: &Security) -> String {
    match security.server_name() {
        Some(name) => format!("{name}:{}", addr.port()),
        None => addr.to_string(),
    }
}
