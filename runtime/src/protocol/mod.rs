//! Wire protocols. Each codec here is pure: bytes in, frames out, no I/O.

pub mod baidu_std;
pub(crate) mod detect;
pub mod grpc;
pub mod http;

use std::fmt;
use std::str::FromStr;

/// The protocol a [`Channel`](crate::Channel) speaks, named as in brpc's `ChannelOptions.protocol`.
///
/// ```
/// use brisk::Protocol;
/// let p: Protocol = "baidu_std".parse().unwrap();
/// assert_eq!(p, Protocol::BaiduStd);
/// assert!("carrier_pigeon".parse::<Protocol>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// brpc's default binary protocol (`"baidu_std"`).
    #[default]
    BaiduStd,
    /// HTTP/1.1, pb methods as `POST /Service/Method` (`"http"`).
    Http,
    /// gRPC over HTTP/2 (`"h2:grpc"`); the only protocol with streaming methods.
    Grpc,
}

impl Protocol {
    /// The protocol's registered name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::BaiduStd => "baidu_std",
            Protocol::Http => "http",
            Protocol::Grpc => "h2:grpc",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = crate::Status;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "baidu_std" => Ok(Protocol::BaiduStd),
            "http" => Ok(Protocol::Http),
            "h2:grpc" | "grpc" => Ok(Protocol::Grpc),
            other => Err(crate::Status::new(
                crate::errno::EINVAL,
                format!("unknown protocol `{other}` (supported: baidu_std, http, h2:grpc)"),
            )),
        }
    }
}
