//! Errors and brpc's error codes.
//!
//! Brisk reports every failure as a [`Status`]: a numeric code and a message. The codes are brpc's
//! (`src/brpc/errno.proto`) so a brpc peer and a Brisk peer agree on what went wrong, plus the
//! handful of system `errno` values brpc uses (`ECANCELED`, `ETIMEDOUT`, `ECONNREFUSED`, ...).

use std::fmt;

/// The message a panic carried (`panic!("...")` or a formatted one), for logs and replies.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "unknown panic"
    }
}

/// brpc's error codes, and the system errno values brpc reports, as `i32` constants.
///
/// ```
/// use brisk::{errno, Status};
/// let status = Status::new(errno::ENOMETHOD, "Fail to find method=example.EchoService/Nope");
/// assert_eq!(status.code(), 1002);
/// ```
pub mod errno {
    /// The service was not found on the server.
    pub const ENOSERVICE: i32 = 1001;
    /// The method was not found in the service.
    pub const ENOMETHOD: i32 = 1002;
    /// The request was malformed (undecodable payload, bad attachment size, ...).
    pub const EREQUEST: i32 = 1003;
    /// Authentication failed.
    pub const ERPCAUTH: i32 = 1004;
    /// Too many sub-calls of a parallel channel failed.
    pub const ETOOMANYFAILS: i32 = 1005;
    /// A parallel channel finished early (internal).
    pub const EPCHANFINISH: i32 = 1006;
    /// A backup request was sent (internal).
    pub const EBACKUPREQUEST: i32 = 1007;
    /// The call's deadline passed. Never retried.
    pub const ERPCTIMEDOUT: i32 = 1008;
    /// The connection broke during the call.
    pub const EFAILEDSOCKET: i32 = 1009;
    /// Bad HTTP call.
    pub const EHTTP: i32 = 1010;
    /// Too many bytes are waiting to be written to the connection.
    pub const EOVERCROWDED: i32 = 1011;
    /// The peer closed the connection.
    pub const EEOF: i32 = 1014;
    /// TLS error.
    pub const ESSL: i32 = 1016;
    /// Rejected by the load balancer's recovery throttling.
    pub const EREJECT: i32 = 1018;
    /// The server hit an internal error (also what a handler's code `<= 0` becomes).
    pub const EINTERNAL: i32 = 2001;
    /// The response was malformed (undecodable payload, bad attachment size, ...).
    pub const ERESPONSE: i32 = 2002;
    /// The server is stopping. Retried by clients, which go elsewhere.
    pub const ELOGOFF: i32 = 2003;
    /// The server's concurrency limit was reached.
    pub const ELIMIT: i32 = 2004;
    /// The connection was closed by the peer.
    pub const ECLOSE: i32 = 2005;

    /// System errno: invalid argument (misuse of the API).
    pub const EINVAL: i32 = 22;
    /// System errno: operation not permitted (e.g. a blocking call inside an async runtime).
    pub const EPERM: i32 = 1;
    /// System errno: connection reset by peer.
    pub const ECONNRESET: i32 = 104;
    /// System errno: *connect* timed out. Unlike [`ERPCTIMEDOUT`] this one is retried.
    pub const ETIMEDOUT: i32 = 110;
    /// System errno: connection refused.
    pub const ECONNREFUSED: i32 = 111;
    /// System errno: host unreachable or name not resolved.
    pub const EHOSTDOWN: i32 = 112;
    /// System errno: the call was cancelled (through its [`CallId`](crate::CallId) or by
    /// dropping its future).
    pub const ECANCELED: i32 = 125;
    /// System errno: what was to be created exists already (brpc's code for gRPC's
    /// `ALREADY_EXISTS`).
    pub const EEXIST: i32 = 17;
    /// System errno: try again (a stream's flow-control window is full, as brpc's
    /// `StreamWrite` answers).
    pub const EAGAIN: i32 = 11;
    /// System errno: bad descriptor (a stream whose peer does not read, as brpc's
    /// `StreamWrite` answers).
    pub const EBADF: i32 = 9;

    // Brisk's own codes, for the canonical gRPC kinds brpc has no code for: 3000 plus the
    // gRPC status code, so they survive a trip through any protocol.

    /// Brisk: an error of unknown kind (gRPC `UNKNOWN`).
    pub const EUNKNOWN: i32 = 3002;
    /// Brisk: what was asked for does not exist (gRPC `NOT_FOUND`).
    pub const ENOTFOUND: i32 = 3005;
    /// Brisk: the system is not in a state that allows the call (gRPC `FAILED_PRECONDITION`).
    pub const EFAILEDPRECONDITION: i32 = 3009;
    /// Brisk: the operation was aborted, e.g. by a concurrency conflict (gRPC `ABORTED`).
    pub const EABORTED: i32 = 3010;
    /// Brisk: past the valid range (gRPC `OUT_OF_RANGE`).
    pub const EOUTOFRANGE: i32 = 3011;
    /// Brisk: the service cannot serve for now; trying again may help (gRPC `UNAVAILABLE`).
    pub const EUNAVAILABLE: i32 = 3014;
    /// Brisk: unrecoverable loss or corruption of data (gRPC `DATA_LOSS`).
    pub const EDATALOSS: i32 = 3015;

    /// The symbolic name of a code, e.g. `"ERPCTIMEDOUT"` for 1008, or `None` if unknown.
    pub fn name(code: i32) -> Option<&'static str> {
        Some(match code {
            ENOSERVICE => "ENOSERVICE",
            ENOMETHOD => "ENOMETHOD",
            EREQUEST => "EREQUEST",
            ERPCAUTH => "ERPCAUTH",
            ETOOMANYFAILS => "ETOOMANYFAILS",
            EPCHANFINISH => "EPCHANFINISH",
            EBACKUPREQUEST => "EBACKUPREQUEST",
            ERPCTIMEDOUT => "ERPCTIMEDOUT",
            EFAILEDSOCKET => "EFAILEDSOCKET",
            EHTTP => "EHTTP",
            EOVERCROWDED => "EOVERCROWDED",
            EEOF => "EEOF",
            ESSL => "ESSL",
            EREJECT => "EREJECT",
            EINTERNAL => "EINTERNAL",
            ERESPONSE => "ERESPONSE",
            ELOGOFF => "ELOGOFF",
            ELIMIT => "ELIMIT",
            ECLOSE => "ECLOSE",
            EINVAL => "EINVAL",
            EPERM => "EPERM",
            ECONNRESET => "ECONNRESET",
            ETIMEDOUT => "ETIMEDOUT",
            ECONNREFUSED => "ECONNREFUSED",
            EHOSTDOWN => "EHOSTDOWN",
            ECANCELED => "ECANCELED",
            EEXIST => "EEXIST",
            EAGAIN => "EAGAIN",
            EBADF => "EBADF",
            EUNKNOWN => "EUNKNOWN",
            ENOTFOUND => "ENOTFOUND",
            EFAILEDPRECONDITION => "EFAILEDPRECONDITION",
            EABORTED => "EABORTED",
            EOUTOFRANGE => "EOUTOFRANGE",
            EUNAVAILABLE => "EUNAVAILABLE",
            EDATALOSS => "EDATALOSS",
            _ => return None,
        })
    }
}

/// The outcome of a failed call: a brpc error code, a human-readable message and, for an
/// error a server answered with, that server's address.
///
/// Handlers return it to fail a request, and the client sees the same code and message over
/// every protocol (baidu_std, HTTP, gRPC; see the error table in the README). Clients get it
/// back from every failed call.
///
/// The constructors named after gRPC's canonical kinds ([`Status::not_found`],
/// [`Status::unavailable`], ...) use brpc's code for the kind where brpc has one
/// ([`errno::EINVAL`], [`errno::ELIMIT`], ...) and Brisk's own otherwise ([`errno::ENOTFOUND`],
/// ...); a foreign gRPC peer sees the canonical `grpc-status`.
///
/// Two statuses are equal when their codes, messages, servers and details are: compare
/// [`code`](Status::code) and [`message`](Status::message) to ignore where an error came from.
///
/// ```
/// use brisk::{errno, Status};
/// let status = Status::new(errno::EREQUEST, "message too short");
/// assert_eq!(status.to_string(), "[E1003]message too short");
/// assert_eq!(Status::not_found("no key `a`").code(), errno::ENOTFOUND);
/// ```
#[derive(Clone)]
pub struct Status {
    code: i32,
    message: String,
    remote: Option<std::net::SocketAddr>,
    /// Binary details (boxed: most statuses have none, and a `Status` travels in every
    /// `Result` of the call path).
    details: Option<Box<bytes::Bytes>>,
    /// Set when a request message did not parse, so that the protocol can word the failure
    /// as its brpc server does (boxed for the same reason as `details`).
    unparsed: Option<Box<UnparsedRequest>>,
}

/// What a status says of a request message that did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnparsedRequest {
    /// The message's full protobuf name (`example.EchoRequest`).
    pub(crate) message: &'static str,
    /// brpc's number for the codec's content type (0 protobuf, 1 JSON).
    pub(crate) content_type: i32,
}

/// Generates the constructors for gRPC's canonical kinds.
macro_rules! canonical_constructors {
    ($($(#[$doc:meta])* $name:ident => $code:path;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Self {
                Status::new($code, message)
            }
        )*
    };
}

impl Status {
    /// A status with `code` (see [`errno`]) and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
            remote: None,
            details: None,
            unparsed: None,
        }
    }

    /// Marks the status as the failure to parse a request message.
    pub(crate) fn with_unparsed_request(mut self, unparsed: UnparsedRequest) -> Self {
        self.unparsed = Some(Box::new(unparsed));
        self
    }

    /// The request message that did not parse, when that is what failed.
    pub(crate) fn unparsed_request(&self) -> Option<UnparsedRequest> {
        self.unparsed.as_deref().copied()
    }

    /// Attaches binary details: by convention an encoded `google.rpc.Status` whose `details`
    /// say more (retry info, field violations). Brisk's gRPC server sends them as
    /// `grpc-status-details-bin` (what grpcio's `rpc_status.from_call` and tonic read), and its
    /// gRPC client reads them back; other protocols have no place for them.
    ///
    /// ```
    /// let status = brisk::Status::invalid_argument("bad page size").with_details(&b"\x08\x03"[..]);
    /// assert_eq!(status.details(), b"\x08\x03");
    /// ```
    pub fn with_details(mut self, details: impl Into<bytes::Bytes>) -> Self {
        let details = details.into();
        self.details = (!details.is_empty()).then(|| Box::new(details));
        self
    }

    /// The binary details ([`with_details`](Status::with_details)); empty when there are none.
    pub fn details(&self) -> &[u8] {
        self.details.as_deref().map_or(&[], |d| &d[..])
    }

    /// [`errno::EREQUEST`] with `message`: the request was not acceptable (brpc's code for a
    /// request it cannot parse or use; gRPC `INVALID_ARGUMENT`).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Status::new(errno::EREQUEST, message)
    }

    canonical_constructors! {
        /// gRPC `CANCELLED`: [`errno::ECANCELED`].
        cancelled => errno::ECANCELED;
        /// gRPC `UNKNOWN`: [`errno::EUNKNOWN`].
        unknown => errno::EUNKNOWN;
        /// gRPC `INVALID_ARGUMENT`: [`errno::EINVAL`] (see also [`Status::invalid_request`]).
        invalid_argument => errno::EINVAL;
        /// gRPC `DEADLINE_EXCEEDED`: [`errno::ERPCTIMEDOUT`].
        deadline_exceeded => errno::ERPCTIMEDOUT;
        /// gRPC `NOT_FOUND`: [`errno::ENOTFOUND`].
        not_found => errno::ENOTFOUND;
        /// gRPC `ALREADY_EXISTS`: [`errno::EEXIST`].
        already_exists => errno::EEXIST;
        /// gRPC `PERMISSION_DENIED`: [`errno::EPERM`].
        permission_denied => errno::EPERM;
        /// gRPC `RESOURCE_EXHAUSTED`: [`errno::ELIMIT`] (which clients retry elsewhere).
        resource_exhausted => errno::ELIMIT;
        /// gRPC `FAILED_PRECONDITION`: [`errno::EFAILEDPRECONDITION`].
        failed_precondition => errno::EFAILEDPRECONDITION;
        /// gRPC `ABORTED`: [`errno::EABORTED`].
        aborted => errno::EABORTED;
        /// gRPC `OUT_OF_RANGE`: [`errno::EOUTOFRANGE`].
        out_of_range => errno::EOUTOFRANGE;
        /// gRPC `UNIMPLEMENTED`: [`errno::ENOMETHOD`].
        unimplemented => errno::ENOMETHOD;
        /// gRPC `INTERNAL`: [`errno::EINTERNAL`].
        internal => errno::EINTERNAL;
        /// gRPC `UNAVAILABLE`: [`errno::EUNAVAILABLE`] (which clients retry).
        unavailable => errno::EUNAVAILABLE;
        /// gRPC `DATA_LOSS`: [`errno::EDATALOSS`].
        data_loss => errno::EDATALOSS;
        /// gRPC `UNAUTHENTICATED`: [`errno::ERPCAUTH`].
        unauthenticated => errno::ERPCAUTH;
    }

    /// The error code, one of [`errno`] or an application-defined value.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The error text, as the side that failed wrote it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The server that answered with this error, for errors a server sent back; `None` for
    /// failures on this side (timeouts, refused connections, ...).
    pub fn remote_side(&self) -> Option<std::net::SocketAddr> {
        self.remote
    }

    /// Marks the status as answered by the server at `remote` (done by the call path).
    pub(crate) fn with_remote(mut self, remote: std::net::SocketAddr) -> Self {
        self.remote.get_or_insert(remote);
        self
    }

    /// The status a server sent as `code` and `text`, without the `[address][E<code>]` prefix
    /// that brpc servers (and Brisk's, for them) put before the text on baidu_std and HTTP: the
    /// code and the server are kept apart, not pasted into the message.
    pub(crate) fn from_server_text(code: i32, text: &str) -> Self {
        Status::new(code, strip_brpc_prefix(code, text))
    }

    /// Whether a call that failed with this status may be tried again on a fresh connection,
    /// as brpc's default retry policy decides: broken or refused connections, connect timeouts,
    /// a stopping server (ELOGOFF), a server over its limits (EOVERCROWDED, ELIMIT), no
    /// server to take it (EHOSTDOWN), a service unavailable for now (EUNAVAILABLE, gRPC's
    /// retryable kind). Never [`errno::ERPCTIMEDOUT`] or [`errno::ECANCELED`].
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.code,
            errno::EFAILEDSOCKET
                | errno::EEOF
                | errno::ELOGOFF
                | errno::ETIMEDOUT
                | errno::ECONNREFUSED
                | errno::ECONNRESET
                | errno::EOVERCROWDED
                | errno::ELIMIT
                | errno::EHOSTDOWN
                | errno::EUNAVAILABLE
        )
    }

    pub(crate) fn from_io(context: impl fmt::Display, err: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        let code = match err.kind() {
            ErrorKind::ConnectionRefused => errno::ECONNREFUSED,
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => errno::ECONNRESET,
            ErrorKind::TimedOut => errno::ETIMEDOUT,
            ErrorKind::UnexpectedEof => errno::EEOF,
            _ => errno::EFAILEDSOCKET,
        };
        Status::new(code, format!("{context}: {err}"))
    }
}

/// `text` without a leading `[address][E<code>]` (brpc's form of a server's error text); the
/// address may be missing. Text of any other form is left as it is.
/// brpc's error text split into its code and words: `[127.0.0.1:8000][E1002]text` or
/// `[E1002]text` → `(1002, "text")`; `None` for text without that prefix.
pub(crate) fn split_brpc_error_text(text: &str) -> Option<(i32, &str)> {
    let rest = match text.strip_prefix('[') {
        // `[address]` first, unless the first bracket is the code itself.
        Some(after) if !after.starts_with('E') => &after[after.find(']')? + 1..],
        _ => text,
    };
    let rest = rest.strip_prefix("[E")?;
    let end = rest.find(']')?;
    let code = rest[..end].parse::<i32>().ok()?;
    Some((code, &rest[end + 1..]))
}

fn strip_brpc_prefix(code: i32, text: &str) -> &str {
    let marker = format!("[E{code}]");
    if let Some(message) = text.strip_prefix(marker.as_str()) {
        return message;
    }
    // brpc's HTTP authentication failure: `[1004]Fail to authenticate`.
    if let Some(message) = text.strip_prefix(format!("[{code}]").as_str()) {
        return message;
    }
    if text.starts_with('[') {
        if let Some(at) = text.find(&marker[..]) {
            // `[address]` before the marker: the address cannot contain `[E`.
            if at > 1 && text[..at].ends_with(']') && !text[1..at - 1].contains("[E") {
                return &text[at + marker.len()..];
            }
        }
    }
    text
}

impl fmt::Display for Status {
    /// `[E<code>]message`, with the answering server when there is one:
    /// `[E1003][127.0.0.1:8000]key must not be empty`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.remote {
            Some(remote) => write!(f, "[E{}][{remote}]{}", self.code, self.message),
            None => write!(f, "[E{}]{}", self.code, self.message),
        }
    }
}

impl PartialEq for Status {
    fn eq(&self, other: &Status) -> bool {
        // What a status says, not how the server came to say it (`unparsed` is a hint for the
        // protocol's wording).
        self.code == other.code
            && self.message == other.message
            && self.remote == other.remote
            && self.details == other.details
    }
}

impl Eq for Status {}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Status");
        d.field("code", &self.code);
        if let Some(name) = errno::name(self.code) {
            d.field("name", &name);
        }
        d.field("message", &self.message);
        if let Some(remote) = &self.remote {
            d.field("remote", remote);
        }
        if let Some(details) = &self.details {
            d.field("details", &format_args!("{} bytes", details.len()));
        }
        d.finish()
    }
}

impl std::error::Error for Status {}

/// Why something could not be set up — a channel, a server, a naming service, a load
/// balancer, TLS, a protocol: an option or address that is not valid, a name that does not
/// resolve, a port that cannot be bound, a certificate that does not load. Distinct from
/// [`Status`], which is how a call fails. It keeps its cause
/// ([`source`](std::error::Error::source)) and converts into a [`Status`] with the brpc code
/// brpc reports for the same failure ([`code`](Error::code)), so `?` works in functions
/// returning either.
///
/// ```
/// # async fn demo() {
/// use std::error::Error as _;
/// let taken = brisk::Server::builder().start("127.0.0.1:0").await.unwrap();
/// let err = brisk::Server::builder()
///     .start(&taken.local_addr().to_string())
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), brisk::ErrorKind::Io);
/// let io: &std::io::Error = err.source().unwrap().downcast_ref().unwrap();
/// assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
/// # }
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What kind of set-up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An option, address, URL, spec or name that is not valid (brpc's EINVAL).
    InvalidArgument,
    /// A host name that does not resolve (EHOSTDOWN).
    Resolve,
    /// The operating system refused: a port to bind, a file to read.
    Io,
    /// A certificate, a key or a trust store that cannot be used.
    Tls,
    /// A naming service whose first list of servers failed.
    Naming,
}

impl Error {
    /// An error of `kind`.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// [`ErrorKind::InvalidArgument`].
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// An I/O failure, its message prefixed with `context`.
    pub(crate) fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("{context}: {err}")).with_source(err)
    }

    /// Says where it happened: `context: message`.
    pub(crate) fn in_context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Keeps `source` as the cause.
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// A set-up step that reported a [`Status`] (a helper shared with the call path): its
    /// code gives the kind, and it stays the cause.
    pub(crate) fn from_status(status: Status) -> Self {
        let kind = match status.code() {
            errno::EINVAL => ErrorKind::InvalidArgument,
            errno::EHOSTDOWN => ErrorKind::Resolve,
            errno::ESSL => ErrorKind::Tls,
            _ => ErrorKind::Io,
        };
        Error::new(kind, status.message()).with_source(status)
    }

    /// What kind of set-up failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The brpc code brpc reports for the same failure: EINVAL for a bad argument or unusable
    /// TLS material, EHOSTDOWN for a name that does not resolve, the cause's code for a
    /// naming service's first failure, and the operating system's failure as a call would
    /// see it.
    pub fn code(&self) -> i32 {
        match self.kind {
            ErrorKind::InvalidArgument | ErrorKind::Tls => errno::EINVAL,
            ErrorKind::Resolve => errno::EHOSTDOWN,
            ErrorKind::Naming | ErrorKind::Io => match self.source_status() {
                Some(status) => status.code(),
                None => match self.source_io() {
                    Some(io) => Status::from_io("", io).code(),
                    None => errno::EINTERNAL,
                },
            },
        }
    }

    fn source_status(&self) -> Option<&Status> {
        self.source.as_deref()?.downcast_ref::<Status>()
    }

    fn source_io(&self) -> Option<&std::io::Error> {
        self.source.as_deref()?.downcast_ref::<std::io::Error>()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for Status {
    /// The call-path view of a set-up failure: its [`code`](Error::code) and message.
    fn from(error: Error) -> Status {
        Status::new(error.code(), error.message)
    }
}

/// Codes that say a server cannot be reached right now (refused, reset, broken or timed-out
/// connections, a stopping server, no server at all): a cluster isolates such a server until a
/// health check reconnects, and a `SelectiveChannel` passes over such a sub-channel for a while.
pub(crate) fn is_connection_failure(code: i32) -> bool {
    matches!(
        code,
        errno::ECONNREFUSED
            | errno::ECONNRESET
            | errno::ETIMEDOUT
            | errno::EFAILEDSOCKET
            | errno::EEOF
            | errno::ELOGOFF
            | errno::EHOSTDOWN
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brpc_error_texts_split_into_code_and_words() {
        assert_eq!(
            split_brpc_error_text("[127.0.0.1:8000][E1002]Fail to find method"),
            Some((1002, "Fail to find method"))
        );
        assert_eq!(
            split_brpc_error_text("[E404]no such item"),
            Some((404, "no such item"))
        );
        assert_eq!(split_brpc_error_text("[E404]"), Some((404, "")));
        for plain in [
            "no prefix",
            "[addr] no code",
            "[Ex]x",
            "[127.0.0.1:1][E12",
            "",
        ] {
            assert_eq!(split_brpc_error_text(plain), None, "{plain}");
        }
    }

    #[test]
    fn set_up_errors_keep_their_cause_and_map_to_codes() {
        use std::error::Error as _;
        let invalid = Error::invalid("`x` is not host:port");
        assert_eq!(invalid.code(), errno::EINVAL);
        assert!(invalid.source().is_none());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let io = Error::io("Fail to listen on 127.0.0.1:1", refused);
        assert_eq!(io.kind(), ErrorKind::Io);
        assert_eq!(io.code(), errno::ECONNREFUSED);
        assert!(io.source().unwrap().is::<std::io::Error>());
        let naming = Error::new(ErrorKind::Naming, "first list failed")
            .with_source(Status::new(errno::ECONNREFUSED, "etcd is down"));
        assert_eq!(naming.code(), errno::ECONNREFUSED);
        let status: Status =
            Error::from_status(Status::new(errno::EHOSTDOWN, "no such host")).into();
        assert_eq!(
            (status.code(), status.message()),
            (errno::EHOSTDOWN, "no such host")
        );
    }

    #[test]
    fn server_texts_lose_brpcs_prefix_but_keep_everything_else() {
        let cases = [
            (
                1003,
                "[127.0.0.1:8001][E1003]key must not be empty",
                "key must not be empty",
            ),
            // brpc's HTTP authentication failure names the code alone.
            (
                1004,
                "[1004]Fail to authenticate: bad token",
                "Fail to authenticate: bad token",
            ),
            (1003, "[E1003]no address", "no address"),
            (1002, "[[::1]:80][E1002]v6", "v6"),
            (
                1002,
                "[10.0.0.1:80][E1003]other code",
                "[10.0.0.1:80][E1003]other code",
            ),
            (4321, "plain text", "plain text"),
            (4321, "[unclosed", "[unclosed"),
            (1, "", ""),
        ];
        for (code, text, message) in cases {
            assert_eq!(
                Status::from_server_text(code, text).message(),
                message,
                "{text}"
            );
        }
        let remote: std::net::SocketAddr = "127.0.0.1:8001".parse().unwrap();
        let status =
            Status::from_server_text(1003, "[127.0.0.1:8001][E1003]empty key").with_remote(remote);
        assert_eq!(status.to_string(), "[E1003][127.0.0.1:8001]empty key");
        assert_eq!(status.remote_side(), Some(remote));
    }

    #[test]
    fn canonical_constructors_use_brpcs_codes_where_brpc_has_them() {
        assert_eq!(Status::invalid_argument("").code(), errno::EINVAL);
        assert_eq!(Status::unimplemented("").code(), errno::ENOMETHOD);
        assert_eq!(Status::unauthenticated("").code(), errno::ERPCAUTH);
        assert_eq!(Status::deadline_exceeded("").code(), errno::ERPCTIMEDOUT);
        assert_eq!(Status::already_exists("").code(), errno::EEXIST);
        assert_eq!(Status::not_found("").code(), errno::ENOTFOUND);
        assert_eq!(errno::name(errno::ENOTFOUND), Some("ENOTFOUND"));
        assert!(Status::unavailable("").is_retryable());
    }

    #[test]
    fn display_matches_brpc_style() {
        let s = Status::new(errno::ERPCTIMEDOUT, "Reached timeout=500ms");
        assert_eq!(s.to_string(), "[E1008]Reached timeout=500ms");
        assert!(format!("{s:?}").contains("ERPCTIMEDOUT"));
    }

    #[test]
    fn retry_policy_matches_brpc_defaults() {
        assert!(Status::new(errno::EFAILEDSOCKET, "").is_retryable());
        assert!(Status::new(errno::ELOGOFF, "").is_retryable());
        assert!(Status::new(errno::ECONNREFUSED, "").is_retryable());
        assert!(Status::new(errno::ELIMIT, "").is_retryable());
        assert!(Status::new(errno::EHOSTDOWN, "").is_retryable());
        assert!(!Status::new(errno::ERPCTIMEDOUT, "").is_retryable());
        assert!(!Status::new(errno::ECANCELED, "").is_retryable());
        assert!(!Status::new(errno::ENOMETHOD, "").is_retryable());
    }
}
