//! [`ServerContext`]: what a handler knows about its request, and what it can set on its
//! response besides the message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::protocol::streaming_rpc::StreamSetup;
use crate::transport::stream_rpc::table::StreamTable;
use crate::transport::stream_rpc::{Stream, StreamCore, StreamOptions};
use crate::{errno, CompressType, Status};
use std::sync::{Arc, OnceLock};

/// The deadline `timeout_ms` after a request arrived, as a client sent it (baidu_std's
/// `timeout_ms`, HTTP's `x-brisk-timeout-ms`); none for a value that is not positive, which
/// brpc clients never send (they leave the field out).
pub(crate) fn deadline_after(arrived: Instant, timeout_ms: i32) -> Option<Instant> {
    arrived.checked_add(client_timeout(Some(timeout_ms))?)
}

/// The time a client gave its request, from its `timeout_ms` (none when absent or not
/// positive).
pub(crate) fn client_timeout(timeout_ms: Option<i32>) -> Option<Duration> {
    let ms = u64::try_from(timeout_ms?).ok().filter(|ms| *ms > 0)?;
    Some(Duration::from_millis(ms))
}

/// Per-request information and response options for a service handler (the server side of
/// brpc's `Controller`).
///
/// ```
/// use brisk::ServerContext;
/// let mut cntl = ServerContext::new("127.0.0.1:5000".parse().unwrap(), "127.0.0.1:8000".parse().unwrap());
/// cntl.set_response_attachment("bytes after the message");
/// assert_eq!(cntl.log_id(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct ServerContext {
    pub(crate) remote_side: SocketAddr,
    pub(crate) local_side: SocketAddr,
    pub(crate) log_id: i64,
    pub(crate) timeout_ms: Option<i32>,
    /// When the caller gives up: the handler is cancelled then.
    pub(crate) deadline: Option<Instant>,
    pub(crate) request_attachment: Bytes,
    pub(crate) request_compress_type: CompressType,
    pub(crate) response_attachment: Bytes,
    pub(crate) response_compress_type: CompressType,
    pub(crate) user_fields: HashMap<String, String>,
    /// Every header of an HTTP request, every metadata entry of a gRPC call (repeated names
    /// and transport headers included); empty on other protocols.
    pub(crate) request_headers: http::HeaderMap,
    /// Metadata to send back: HTTP response headers, gRPC initial metadata.
    pub(crate) response_headers: Vec<(String, String)>,
    /// gRPC trailing metadata to send back.
    pub(crate) response_trailers: Vec<(String, String)>,
    /// The identity an [`Authenticator`](crate::Authenticator) verified, if any.
    pub(crate) auth_context: Option<std::sync::Arc<crate::auth::AuthContext>>,
    /// Whether the request came over TLS.
    pub(crate) tls: bool,
    /// The brpc stream the request offers, and the one the handler accepted.
    pub(crate) stream_offer: Option<StreamOffer>,
}

/// A stream a request offers (brpc's streaming RPC), on the request's connection.
#[derive(Debug, Clone)]
pub(crate) struct StreamOffer {
    /// The caller's stream.
    pub(crate) remote: StreamSetup,
    /// The connection's streams.
    pub(crate) table: Arc<StreamTable>,
    /// The server's stream, once the handler accepted; shared with the server's reply path,
    /// which announces it even when the handler does not return its context (it timed out).
    pub(crate) accepted: Arc<OnceLock<Arc<StreamCore>>>,
}

impl ServerContext {
    /// A context for a request from `remote_side` received on `local_side` (for tests of
    /// handlers; the server builds the real ones).
    pub fn new(remote_side: SocketAddr, local_side: SocketAddr) -> Self {
        ServerContext {
            remote_side,
            local_side,
            log_id: 0,
            timeout_ms: None,
            deadline: None,
            request_attachment: Bytes::new(),
            request_compress_type: CompressType::None,
            response_attachment: Bytes::new(),
            response_compress_type: CompressType::None,
            user_fields: HashMap::new(),
            request_headers: http::HeaderMap::new(),
            response_headers: Vec::new(),
            response_trailers: Vec::new(),
            auth_context: None,
            tls: false,
            stream_offer: None,
        }
    }

    /// The client's address.
    pub fn remote_side(&self) -> SocketAddr {
        self.remote_side
    }

    /// The address the request arrived on.
    pub fn local_side(&self) -> SocketAddr {
        self.local_side
    }

    /// The log id the client sent.
    pub fn log_id(&self) -> i64 {
        self.log_id
    }

    /// The time the client said the call had left when the request arrived, in
    /// milliseconds, when it sent one (baidu_std `timeout_ms`, gRPC `grpc-timeout`, HTTP
    /// `x-brisk-timeout-ms`).
    pub fn timeout_ms(&self) -> Option<i32> {
        self.timeout_ms
    }

    /// When the caller gives up on this call, if it said: the server cancels the handler (drops
    /// its future) at this instant and answers ERPCTIMEDOUT, so work past it is wasted. A
    /// handler can check it before starting something long, or pass it on to the calls it
    /// makes.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Gives the call the client's `timeout_ms`, counted from now (done by the server).
    pub(crate) fn set_client_timeout(&mut self, timeout_ms: Option<i32>) {
        self.timeout_ms = timeout_ms;
        self.deadline = timeout_ms.and_then(|ms| deadline_after(Instant::now(), ms));
    }

    /// Raw bytes the client sent after the request message.
    pub fn request_attachment(&self) -> &Bytes {
        &self.request_attachment
    }

    /// How the request message was compressed.
    pub fn request_compress_type(&self) -> CompressType {
        self.request_compress_type
    }

    /// Sets raw bytes to send after the response message.
    pub fn set_response_attachment(&mut self, attachment: impl Into<Bytes>) {
        self.response_attachment = attachment.into();
    }

    /// The response attachment set so far.
    pub fn response_attachment(&self) -> &Bytes {
        &self.response_attachment
    }

    /// Compresses the response message with `compress_type` (none by default, as in brpc).
    pub fn set_response_compress_type(&mut self, compress_type: CompressType) {
        self.response_compress_type = compress_type;
    }

    /// How the response message will be compressed.
    pub fn response_compress_type(&self) -> CompressType {
        self.response_compress_type
    }

    /// Key/value pairs the client put in `RpcMeta.user_fields` (HTTP and gRPC: the custom
    /// headers, the last of repeated names winning; see
    /// [`request_header_values`](ServerContext::request_header_values) for all of them).
    pub fn user_fields(&self) -> &HashMap<String, String> {
        &self.user_fields
    }

    /// The first value of HTTP request header or gRPC metadata `name` (any case), transport
    /// headers such as `authorization`, `user-agent` and `te` included; `None` on protocols
    /// without headers (baidu_std: see [`user_fields`](ServerContext::user_fields)) and for
    /// values that are not visible ASCII.
    pub fn request_header(&self, name: &str) -> Option<&str> {
        self.request_headers.get(name)?.to_str().ok()
    }

    /// Every value of request header or metadata `name`, in the order sent (a name sent
    /// twice has two).
    pub fn request_header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.request_headers
            .get_all(name)
            .into_iter()
            .filter_map(|value| value.to_str().ok())
    }

    /// The bytes of binary gRPC metadata `name` (a `-bin` name, sent base64-encoded: `trace-bin:
    /// AAH//g` gives `[0x00, 0x01, 0xff, 0xfe]`); `None` when absent or not base64.
    pub fn request_binary_header(&self, name: &str) -> Option<Vec<u8>> {
        crate::protocol::grpc::decode_binary_value(self.request_header(name)?)
    }

    /// Every request header or metadata entry, in the order received.
    pub fn request_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.request_headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
    }

    /// Adds metadata to the response: an HTTP header, or gRPC initial metadata.
    pub fn set_response_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.response_headers.push((name.into(), value.into()));
    }

    /// Adds gRPC trailing metadata, sent with the call's status when it ends (successful or
    /// not; `-bin` names carry base64). Other protocols have no trailers and ignore it.
    pub fn set_response_trailer(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.response_trailers.push((name.into(), value.into()));
    }

    /// The response metadata set so far.
    pub fn response_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.response_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether the request came over TLS (brpc's `is_ssl`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Who the client proved to be, when the server has an
    /// [`Authenticator`](crate::Authenticator).
    pub fn auth_context(&self) -> Option<&crate::auth::AuthContext> {
        self.auth_context.as_deref()
    }

    /// Whether the request offers a brpc stream ([`Stream::create`] on the client) that the
    /// handler has not accepted yet.
    pub fn has_stream(&self) -> bool {
        self.stream_offer
            .as_ref()
            .is_some_and(|offer| offer.accepted.get().is_none())
    }

    /// Accepts the stream the request offers (brpc's `StreamAccept`): the reply tells the
    /// caller the server's stream, and the stream's messages flow once the reply has gone
    /// (sends wait until then). EINVAL when the request offers none (it came over another
    /// protocol, or its caller created none) or it was accepted already.
    ///
    /// ```no_run
    /// # fn handler(cntl: &mut brisk::ServerContext) -> Result<(), brisk::Status> {
    /// use brisk::stream_rpc::StreamOptions;
    /// use futures_util::StreamExt;
    /// let mut stream = cntl.accept_stream(StreamOptions::default())?;
    /// tokio::spawn(async move {
    ///     while let Some(Ok(message)) = stream.next().await {
    ///         println!("{}", String::from_utf8_lossy(&message));
    ///     }
    /// });
    /// # Ok(()) }
    /// ```
    pub fn accept_stream(&mut self, options: StreamOptions) -> Result<Stream, Status> {
        let Some(offer) = self.stream_offer.as_mut() else {
            return Err(Status::new(
                errno::EINVAL,
                "the request offers no stream to accept",
            ));
        };
        let accepted_already =
            || Status::new(errno::EINVAL, "the request's stream is accepted already");
        if offer.accepted.get().is_some() {
            return Err(accepted_already());
        }
        let core = offer.table.accept(offer.remote, options)?;
        if offer.accepted.set(Arc::clone(&core)).is_err() {
            core.close();
            return Err(accepted_already());
        }
        Ok(Stream::from_core(core))
    }
}
