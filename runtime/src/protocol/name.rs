//! [`Protocol`]: a protocol as channels select it, by the name it is registered under.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::registry::{canonical_name, client_codec, client_names, CONNECTION_OWNING};
use crate::{errno, Error, Status};

/// The protocol a [`Channel`](crate::Channel) speaks, by the name it is registered under, as
/// brpc's `ChannelOptions.protocol`: `"baidu_std"` (the default), `"http"`, `"h2:grpc"`
/// (also `"grpc"`), `"hulu_pbrpc"`, `"sofa_pbrpc"`, `"nshead"`, `"public_pbrpc"`,
/// `"nova_pbrpc"`, or any protocol registered with
/// [`register_client`](super::register_client). A name nothing is registered under fails the
/// channel's `connect` with EINVAL.
///
/// ```
/// use brisk::Protocol;
/// let grpc: Protocol = "grpc".parse().unwrap();
/// assert_eq!(grpc, Protocol::GRPC);
/// assert_eq!(grpc.name(), "h2:grpc");
/// assert!("carrier_pigeon".parse::<Protocol>().is_err());
/// assert_eq!("hulu_pbrpc".parse::<Protocol>().unwrap(), Protocol::HULU_PBRPC);
/// assert_eq!(Protocol::from("my_own").name(), "my_own"); // checked by connect
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
    /// hulu_pbrpc, Baidu's hulu RPC ([`hulu_pbrpc`](super::hulu_pbrpc)).
    pub const HULU_PBRPC: Protocol = Protocol(Cow::Borrowed("hulu_pbrpc"));
    /// sofa_pbrpc ([`sofa_pbrpc`](super::sofa_pbrpc)).
    pub const SOFA_PBRPC: Protocol = Protocol(Cow::Borrowed("sofa_pbrpc"));
    /// nshead, a 36-byte header and an agreed body ([`nshead`](super::nshead)); `pooled` or
    /// `short` connections.
    pub const NSHEAD: Protocol = Protocol(Cow::Borrowed("nshead"));
    /// public_pbrpc, pbrpc over nshead; `pooled` or `short` connections.
    pub const PUBLIC_PBRPC: Protocol = Protocol(Cow::Borrowed("public_pbrpc"));
    /// nova_pbrpc, pbrpc over nshead; `pooled` or `short` connections.
    pub const NOVA_PBRPC: Protocol = Protocol(Cow::Borrowed("nova_pbrpc"));

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

    /// The name, without copying a builtin one.
    pub(crate) fn name_cow(&self) -> Cow<'static, str> {
        self.0.clone()
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

    /// A protocol registered now (a built-in one, or one added with [`register_client`](super::register_client));
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
