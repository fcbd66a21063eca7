//! What a framed protocol implements to plug into Brisk: a [`ClientCodec`] for channels and a
//! [`ServerCodec`] for servers, both free of I/O (bytes in, frames out), as brpc's protocols are
//! rows of parse / pack / process functions.
//!
//! Brisk runs the connections around them: for a client, a writer that batches frames from many
//! calls into few syscalls and a reader that hands each response to its call (by correlation id,
//! or in order for protocols without one); for a server, detection on the shared port, the read
//! loop, dispatch to the services, authentication, limits, graceful stop and the same batched
//! writes. A codec only turns calls into frames and frames into calls.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use super::{ConnectionType, TraceIds};
use crate::{errno, CompressType, MethodDescriptor, Status};

/// One side's stream as a call announces it (brpc's streaming RPC,
/// [`streaming_rpc`](super::streaming_rpc)): in a request, the caller's stream; in the reply,
/// the server's (baidu_std's `RpcMeta.stream_settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSetup {
    /// The announcing side's stream id: the id its peer's frames are addressed to.
    pub stream_id: i64,
    /// Whether the peer must report what it consumes (FEEDBACK frames): the announcing side
    /// has a flow-control window.
    pub need_feedback: bool,
    /// Whether the announcing side reads messages: its peer may write to it.
    pub writable: bool,
}

/// Whether a connection's first bytes are a protocol's, as [`ServerCodec::detect`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detection {
    /// They are: the connection speaks this protocol.
    Yes,
    /// They are not.
    No,
    /// Too few bytes to tell: read more and ask again.
    NeedMore,
}

impl Detection {
    /// Whether `prefix` starts with `magic` ([`Yes`](Detection::Yes)), is a prefix of it
    /// ([`NeedMore`](Detection::NeedMore)), or neither.
    ///
    /// ```
    /// use brisk::protocol::Detection;
    /// assert_eq!(Detection::by_magic(b"PRPC\0\0", b"PRPC"), Detection::Yes);
    /// assert_eq!(Detection::by_magic(b"PR", b"PRPC"), Detection::NeedMore);
    /// assert_eq!(Detection::by_magic(b"GET /", b"PRPC"), Detection::No);
    /// ```
    pub fn by_magic(prefix: &[u8], magic: &[u8]) -> Detection {
        let n = prefix.len().min(magic.len());
        if prefix[..n] != magic[..n] {
            Detection::No
        } else if n == magic.len() {
            Detection::Yes
        } else {
            Detection::NeedMore
        }
    }
}

/// How a client protocol matches responses to the calls that are waiting for them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Matching {
    /// By the correlation id each response carries: many calls share a connection and are
    /// answered in any order (baidu_std, hulu_pbrpc, sofa_pbrpc).
    #[default]
    CorrelationId,
    /// In the order the requests were written: calls still share a connection (pipelined), but
    /// each response answers the oldest call waiting (nshead, redis, memcache).
    InOrder,
}

/// Why bytes on a connection are not (or no longer) valid for its protocol. The connection is
/// closed and the reason logged: nothing after a framing error can be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(String);

impl ParseError {
    /// An error with a reason for the log.
    pub fn new(reason: impl Into<String>) -> Self {
        ParseError(reason.into())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// An encoded frame in up to three pieces, written back to back without copying: what a codec
/// hands to the connection's writer.
#[derive(Debug, Default, Clone)]
pub struct OutFrame {
    /// Header and meta (and the payload, when it was encoded in place).
    pub head: Bytes,
    /// Payload, when kept separate.
    pub payload: Bytes,
    /// Attachment.
    pub attachment: Bytes,
}

impl OutFrame {
    /// A frame of one buffer.
    pub fn whole(bytes: impl Into<Bytes>) -> Self {
        OutFrame {
            head: bytes.into(),
            ..OutFrame::default()
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len() + self.attachment.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A message as it crosses the wire: the (possibly compressed) serialized message, the raw
/// attachment after it, and how the message is compressed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload {
    /// The serialized message, compressed with `compress_type`.
    pub message: Bytes,
    /// Raw bytes after the message (brpc's attachment); empty for protocols without one.
    pub attachment: Bytes,
    /// How `message` is compressed.
    pub compress_type: CompressType,
}

/// One call's request, as a [`ClientCodec`] encodes it. The message is serialized (and
/// compressed) once per call; every attempt encodes the same bytes.
#[derive(Debug)]
#[non_exhaustive]
pub struct OutgoingRequest<'a> {
    /// The method called.
    pub method: &'a MethodDescriptor,
    /// This attempt's id, unique in the process: protocols that match responses by id send it.
    pub correlation_id: u64,
    /// The request.
    pub payload: &'a Payload,
    /// brpc's `RpcMeta.content_type` of the message: 0 protobuf, 1 JSON.
    pub content_type: i32,
    /// The log id set on the call's controller, if one was (brpc's clients send the field
    /// only then).
    pub log_id: Option<i64>,
    /// Metadata set on the controller (baidu_std's `user_fields`).
    pub metadata: &'a [(String, String)],
    /// The credential of the channel's authenticator, on a connection's first requests (until
    /// the server first answers), for protocols that carry one.
    pub credential: Option<&'a [u8]>,
    /// When the call must end, for protocols that tell the server how long it has left
    /// (`None`: no deadline).
    pub deadline: Option<std::time::Instant>,
    /// The kind of connection the request goes over (public_pbrpc tells the server whether it
    /// is kept).
    pub connection_type: ConnectionType,
    /// The caller's stream, when the call opens one (brpc's streaming RPC; only codecs whose
    /// [`ClientCodec::carries_streams`] is true are given one).
    pub stream: Option<StreamSetup>,
    /// The call's rpcz span, when it is traced: protocols that carry trace ids send them.
    pub trace: Option<TraceIds>,
}

impl<'a> OutgoingRequest<'a> {
    /// A request for `method` carrying `payload`, the other fields empty (for tests of a
    /// codec; Brisk makes the real ones).
    pub fn new(method: &'a MethodDescriptor, payload: &'a Payload) -> Self {
        OutgoingRequest {
            method,
            correlation_id: 0,
            payload,
            content_type: 0,
            log_id: None,
            metadata: &[],
            credential: None,
            deadline: None,
            connection_type: ConnectionType::Single,
            stream: None,
            trace: None,
        }
    }

    /// The method's index in its service, for protocols that name methods by it
    /// (`protocol`, for the error); EREQUEST if the method descriptor has none.
    pub fn method_index(&self, protocol: &str) -> Result<u32, Status> {
        self.method.index().ok_or_else(|| {
            Status::new(
                crate::errno::EREQUEST,
                format!(
                    "{protocol} names methods by index, and {} has none (MethodDescriptor::with_index; generated clients set it)",
                    self.method
                ),
            )
        })
    }

    /// The time left until the deadline in whole milliseconds, rounded up and at least 1 (a
    /// deadline that passed still says "1 ms": the server gives up at once); `None` without a
    /// deadline. What protocols with a `timeout_ms` field (baidu_std's) send.
    pub fn timeout_ms(&self) -> Option<i32> {
        self.deadline.map(millis_left)
    }
}

/// The time left until `deadline` in whole milliseconds, rounded up, at least 1 and at most
/// `i32::MAX`: what a client tells a server its call has left.
pub fn millis_left(deadline: std::time::Instant) -> i32 {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let millis = left.as_nanos().div_ceil(1_000_000).max(1);
    i32::try_from(millis).unwrap_or(i32::MAX)
}

/// A response a [`ClientCodec`] cut from a connection.
#[derive(Debug)]
#[non_exhaustive]
pub struct IncomingResponse {
    /// The id of the call it answers (ignored by [`Matching::InOrder`] protocols).
    pub correlation_id: u64,
    /// The response, or the error the server answered with (or that the codec found in this
    /// one response: an unknown compression, say).
    pub result: Result<Payload, Status>,
    /// The server's stream, when it accepted the one the call offered.
    pub stream: Option<StreamSetup>,
}

impl IncomingResponse {
    /// A successful response to call `correlation_id`.
    pub fn ok(correlation_id: u64, payload: Payload) -> Self {
        IncomingResponse {
            correlation_id,
            result: Ok(payload),
            stream: None,
        }
    }

    /// A failed response to call `correlation_id`.
    pub fn error(correlation_id: u64, status: Status) -> Self {
        IncomingResponse {
            correlation_id,
            result: Err(status),
            stream: None,
        }
    }
}

/// The client half of a framed protocol: how a call's request becomes a frame, and how the
/// frames a server sends back become responses. Free of I/O.
///
/// ```
/// use bytes::{Buf, BufMut, BytesMut};
/// use brisk::protocol::{ClientCodec, IncomingResponse, Matching, OutFrame, OutgoingRequest,
///     ParseError, Payload};
///
/// /// `u32 length | payload` both ways; answers come back in order.
/// struct Tiny;
///
/// impl ClientCodec for Tiny {
///     fn name(&self) -> &'static str { "tiny" }
///     fn matching(&self) -> Matching { Matching::InOrder }
///     fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, brisk::Status> {
///         let mut head = BytesMut::new();
///         head.put_u32(request.payload.message.len() as u32);
///         Ok(OutFrame { head: head.freeze(), payload: request.payload.message.clone(), ..Default::default() })
///     }
///     fn decode_response(&self, buf: &mut BytesMut, max_body_size: usize)
///         -> Result<Option<IncomingResponse>, ParseError> {
///         if buf.len() < 4 { return Ok(None); }
///         let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
///         if len > max_body_size { return Err(ParseError::new("too big")); }
///         if buf.len() < 4 + len { return Ok(None); }
///         buf.advance(4);
///         let message = buf.split_to(len).freeze();
///         Ok(Some(IncomingResponse::ok(0, Payload { message, ..Default::default() })))
///     }
/// }
/// ```
pub trait ClientCodec: Send + Sync + 'static {
    /// The protocol's name, as channels select it (`"baidu_std"`).
    fn name(&self) -> &'static str;

    /// How responses are matched to calls (by correlation id unless overridden).
    fn matching(&self) -> Matching {
        Matching::CorrelationId
    }

    /// The connection types the protocol works on, its default first (as brpc's
    /// `supported_connection_type`). All three by default; a protocol without a correlation id
    /// that cannot pipeline (nshead) leaves `single` out, so a channel defaults to `pooled`
    /// and refuses `single` with EINVAL.
    fn connection_types(&self) -> &'static [ConnectionType] {
        &[
            ConnectionType::Single,
            ConnectionType::Pooled,
            ConnectionType::Short,
        ]
    }

    /// The frame of one attempt's request. An error (a request the protocol cannot carry)
    /// fails the call with it, without touching the connection.
    fn encode_request(&self, request: &OutgoingRequest<'_>) -> Result<OutFrame, Status>;

    /// Cuts the next response off the front of `buf`: `Ok(None)` until a whole one has
    /// arrived. `max_body_size` bounds what a response may claim; an error closes the
    /// connection, failing every call waiting on it.
    fn decode_response(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingResponse>, ParseError>;

    /// Whether the protocol carries brpc's streams (`STRM` frames beside its own, on the same
    /// connection; see [`streaming_rpc`](super::streaming_rpc)): baidu_std's. Such a codec
    /// announces a call's stream in its request and reads the server's from its response.
    fn carries_streams(&self) -> bool {
        false
    }

    /// How many responses answer `request`, for [`Matching::InOrder`] protocols whose one
    /// request may carry several commands, each answered (redis: a reply per command). The
    /// connection cuts that many with [`decode_response`](ClientCodec::decode_response) and
    /// hands the call their messages joined, in order (or the first error among them). One
    /// by default; zero counts as one.
    fn responses_expected(&self, request: &OutgoingRequest<'_>) -> usize {
        let _ = request;
        1
    }

    /// A request sent once on each connection before its first call's, made from the
    /// channel's credential, with how many responses answer it: redis's `AUTH` and `SELECT`.
    /// Asked of [`Matching::InOrder`] protocols only (the others' requests carry the
    /// credential). A codec that has one gets no credential in its requests; `None` (the
    /// default) leaves the credential to the requests.
    fn handshake(&self, credential: &[u8]) -> Option<(OutFrame, usize)> {
        let _ = credential;
        None
    }

    /// Judges the (joined) answer to the [`handshake`](ClientCodec::handshake): an error
    /// closes the connection and fails the calls on it with that error.
    fn check_handshake(&self, answer: Result<Payload, Status>) -> Result<(), Status> {
        answer.map(drop)
    }
}

/// Which method a request names: by name, or (protocols that number methods) by index into the
/// service's methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MethodRef {
    /// The method's name as in the `.proto`.
    Name(String),
    /// The method's position in the service.
    Index(usize),
}

impl fmt::Display for MethodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MethodRef::Name(name) => f.write_str(name),
            MethodRef::Index(index) => write!(f, "#{index}"),
        }
    }
}

/// What a server codec needs to answer a request: its correlation id, and whatever else the
/// protocol echoes back (a header, say), opaque to the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyTo {
    /// The request's correlation id (0 for protocols without one).
    pub correlation_id: u64,
    /// Protocol-specific bytes the reply needs (empty for most).
    pub context: Bytes,
    /// The caller's stream id, when the request offered a stream: brpc's servers answer such a
    /// call inside a `STRM` DATA frame to it
    /// ([`streaming_rpc::wrap_reply`](super::streaming_rpc::wrap_reply)).
    pub stream: Option<i64>,
}

/// A request a [`ServerCodec`] cut from a connection.
#[derive(Debug)]
#[non_exhaustive]
pub struct IncomingRequest {
    /// How to address the reply.
    pub reply_to: ReplyTo,
    /// The service, by full (`example.EchoService`) or short (`EchoService`) name.
    pub service: String,
    /// The method.
    pub method: MethodRef,
    /// The request message and attachment.
    pub payload: Payload,
    /// The client's log id (0 when none).
    pub log_id: i64,
    /// The time the client said the call has left, in milliseconds, when it sent one (a
    /// deadline for the handler: counted from when the request was read).
    pub timeout_ms: Option<i32>,
    /// The credential, for the server's authenticator (verified once per connection, on its
    /// first request, as brpc does).
    pub credential: Option<Bytes>,
    /// Metadata (baidu_std's `user_fields`).
    pub metadata: HashMap<String, String>,
    /// Set when the codec found the request unanswerable although the connection is fine
    /// (an attachment size beyond the body, an unknown compression): the server answers this
    /// error once it has found the method.
    pub rejected: Option<Status>,
    /// The caller's stream, when the request offers one (brpc's streaming RPC): the handler
    /// may accept it.
    pub stream: Option<StreamSetup>,
    /// The caller's trace ids, when it traces the call (rpcz): the server's span continues
    /// its trace.
    pub trace: Option<TraceIds>,
}

impl IncomingRequest {
    /// A request for `service`'s `method` carrying `payload`; the other fields empty.
    pub fn new(
        reply_to: ReplyTo,
        service: impl Into<String>,
        method: MethodRef,
        payload: Payload,
    ) -> Self {
        IncomingRequest {
            reply_to,
            service: service.into(),
            method,
            payload,
            log_id: 0,
            timeout_ms: None,
            credential: None,
            metadata: HashMap::new(),
            rejected: None,
            stream: None,
            trace: None,
        }
    }
}

/// A reply, as a [`ServerCodec`] encodes it.
#[derive(Debug)]
#[non_exhaustive]
pub struct OutgoingResponse<'a> {
    /// The request's addressing.
    pub reply_to: &'a ReplyTo,
    /// The response (its message already compressed as `compress_type` says; the codec may
    /// move its bytes into the frame), or the failure.
    pub result: Result<Payload, &'a Status>,
    /// The server's address (brpc prefixes error texts with it).
    pub server_addr: SocketAddr,
    /// The server's stream, when the handler accepted the one the request offered.
    pub stream: Option<StreamSetup>,
    /// Whether an error's text goes out without brpc's prefix.
    verbatim_error: bool,
}

impl<'a> OutgoingResponse<'a> {
    /// A reply to `reply_to` (for tests of a codec; Brisk makes the real ones).
    pub fn new(
        reply_to: &'a ReplyTo,
        result: Result<Payload, &'a Status>,
        server_addr: SocketAddr,
    ) -> Self {
        OutgoingResponse {
            reply_to,
            result,
            server_addr,
            stream: None,
            verbatim_error: false,
        }
    }

    /// The same reply announcing the server's stream (the handler accepted the request's).
    pub fn with_stream(mut self, stream: Option<StreamSetup>) -> Self {
        self.stream = stream;
        self
    }

    /// The same reply with its error's text sent as it is (brpc's authentication failures
    /// carry no prefix: `Fail to authenticate`).
    pub(crate) fn with_verbatim_error(mut self) -> Self {
        self.verbatim_error = true;
        self
    }

    /// The text of an error reply as brpc's servers write it: the server's address and the
    /// code before the words, `[127.0.0.1:8000][E1002]Fail to find method=...`, except for an
    /// authentication failure, whose words go alone.
    pub fn error_text(&self, status: &Status) -> String {
        if self.verbatim_error {
            status.message().to_owned()
        } else {
            super::brpc_error_text(self.server_addr, status.code(), status.message())
        }
    }
}

/// A request whose message did not parse, or lacked a proto2 required field, for
/// [`ServerCodec::request_parse_failure`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestParseFailure<'a> {
    /// The message's full protobuf name (`example.EchoRequest`).
    pub message: &'a str,
    /// brpc's number for the payload's content type (0 protobuf, 1 JSON).
    pub content_type: i32,
    /// How the message was compressed.
    pub compress_type: CompressType,
    /// The request's size as it arrived: the (compressed) message and the attachment.
    pub size: usize,
}

impl<'a> RequestParseFailure<'a> {
    /// A failure to parse a `message` request of `size` bytes (for tests of a codec; the
    /// server makes the real ones).
    pub fn new(
        message: &'a str,
        content_type: i32,
        compress_type: CompressType,
        size: usize,
    ) -> Self {
        RequestParseFailure {
            message,
            content_type,
            compress_type,
            size,
        }
    }
}

/// The server half of a framed protocol: whether a connection speaks it, how requests are cut
/// from it, and how replies are written. Free of I/O; the server runs the connection: cuts
/// requests with the codec, verifies the connection's credential on its first request,
/// dispatches each request to its service concurrently with the others, and batches the
/// replies' writes.
pub trait ServerCodec: Send + Sync + 'static {
    /// The protocol's name (`"baidu_std"`).
    fn name(&self) -> &'static str;

    /// Whether a connection whose first bytes are `prefix` speaks this protocol. Decide
    /// within the first 1 KiB: a protocol still answering
    /// [`NeedMore`](Detection::NeedMore) past it is taken as a no. The built-in protocols
    /// (baidu_std, HTTP/2, HTTP/1.1) are asked first, so a registered one cannot shadow them.
    fn detect(&self, prefix: &[u8]) -> Detection;

    /// Cuts the next request off the front of `buf`: `Ok(None)` until a whole one has
    /// arrived. `max_body_size` bounds what a request may claim; an error closes the
    /// connection.
    fn decode_request(
        &self,
        buf: &mut BytesMut,
        max_body_size: usize,
    ) -> Result<Option<IncomingRequest>, ParseError>;

    /// The frame of a reply. An error (a response the protocol cannot carry: too large, say)
    /// is answered instead, as a failure with that status.
    fn encode_response(&self, response: OutgoingResponse<'_>) -> Result<OutFrame, Status>;

    /// The error for a request naming a service or method the server does not host, worded as
    /// the protocol's brpc server words it (hulu_pbrpc: ENOMETHOD `Fail to find method=5 of
    /// service=EchoService`). `None`, the default: the server's own words, baidu_std's
    /// (ENOSERVICE for an unknown short service name, else ENOMETHOD).
    fn method_not_found(&self, service: &str, method: &MethodRef) -> Option<Status> {
        let _ = (service, method);
        None
    }

    /// Whether replies must leave in the order the requests came (protocols without a
    /// correlation id). Requests still run concurrently; the server holds early replies back.
    fn replies_in_order(&self) -> bool {
        false
    }

    /// Whether the protocol carries brpc's streams (`STRM` frames beside its own, on the same
    /// connection): baidu_std's. The server then routes `STRM` frames to the connection's
    /// streams, offers a request's stream to its handler, and the codec announces the
    /// accepted stream in the reply and wraps the reply for the caller's stream.
    fn carries_streams(&self) -> bool {
        false
    }

    /// The error for a request whose message did not parse, worded as the protocol's brpc
    /// server words it. The default is hulu_pbrpc's (and public_pbrpc's and nova_pbrpc's):
    /// EREQUEST `Fail to parse request message, CompressType=none, request_size=0`.
    fn request_parse_failure(&self, failure: &RequestParseFailure<'_>) -> Status {
        Status::new(
            errno::EREQUEST,
            format!(
                "Fail to parse request message, CompressType={}, request_size={}",
                failure.compress_type.name(),
                failure.size
            ),
        )
    }
}
