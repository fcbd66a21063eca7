//! `http://`, `https://` and `dns://`: every address a hostname resolves to, re-resolved
//! periodically (brpc's `DomainNamingService`).

use std::time::Duration;

use super::{BoxFuture, NamingService, ServerNode};
use crate::{errno, Error, Status};

/// The shortest interval: shorter ones are raised to it, so a service never busy-loops.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Every address a hostname resolves to: `http://host:port`, `https://host:port`,
/// `dns://host:port`.
///
/// The name is resolved with the system resolver ([`tokio::net::lookup_host`]) to all of its
/// addresses, which are deduplicated and sorted (tags are empty). The first
/// [`next`](NamingService::next) resolves at once; later calls resolve again every
/// [`DEFAULT_INTERVAL`](DnsNamingService::DEFAULT_INTERVAL) (5 s) and return when the
/// addresses changed. A failed resolution is [`errno::EHOSTDOWN`], with the name and the
/// resolver's error (a later call waits one interval before trying again).
///
/// ```no_run
/// use brisk::naming::{DnsNamingService, NamingService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), brisk::Status> {
/// let mut ns = DnsNamingService::new("example.com:8000")?;
/// for server in ns.next().await? {
///     println!("{server}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DnsNamingService {
    /// The hostname or IP literal, IPv6 without brackets.
    host: String,
    /// The port from the URL, if it had one.
    port: Option<u16>,
    /// The port when the URL had none.
    default_port: u16,
    interval: Duration,
    /// The last list returned.
    last: Option<Vec<ServerNode>>,
    /// Whether the first `next` has completed.
    started: bool,
}

impl DnsNamingService {
    /// How often the name is resolved again, unless
    /// [`with_interval`](DnsNamingService::with_interval) says otherwise (brpc's
    /// `-ns_access_interval`, 5 s).
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

    /// The port used when the URL gives none (`http://host`), unless
    /// [`with_default_port`](DnsNamingService::with_default_port) says otherwise.
    pub const DEFAULT_PORT: u16 = 80;

    /// The service for what follows the scheme: `host:port`, `[v6addr]:port`, or a host
    /// alone, which gets port [`DEFAULT_PORT`](DnsNamingService::DEFAULT_PORT), 80, whatever
    /// the scheme was, since this sees only what follows `scheme://` (so `https://host` needs
    /// [`with_default_port(443)`](DnsNamingService::with_default_port)). A path, query or
    /// fragment after the authority (`host:port/index.html`) is ignored.
    ///
    /// Fails with [`errno::EINVAL`] for an empty host, a bad port (not a number in
    /// 1..=65535), an unbracketed IPv6 address, or user credentials (`user@host`). The name is
    /// not resolved here but by [`next`](NamingService::next).
    ///
    /// ```
    /// use brisk::{errno, naming::DnsNamingService};
    ///
    /// assert!(DnsNamingService::new("example.com:8000").is_ok());
    /// assert!(DnsNamingService::new("example.com/path").is_ok()); // port 80
    /// assert!(DnsNamingService::new("[::1]:8000").is_ok());
    /// assert_eq!(DnsNamingService::new(":8000").unwrap_err().code(), errno::EINVAL);
    /// assert_eq!(DnsNamingService::new("example.com:http").unwrap_err().code(), errno::EINVAL);
    /// ```
    pub fn new(rest: &str) -> Result<Self, Error> {
        let (host, port) = parse_authority(rest)
            .map_err(|reason| Error::invalid(format!("`{rest}` is not host[:port]: {reason}")))?;
        Ok(DnsNamingService {
            host: host.to_owned(),
            port,
            default_port: Self::DEFAULT_PORT,
            interval: Self::DEFAULT_INTERVAL,
            last: None,
            started: false,
        })
    }

    /// Uses `port` when the URL gave none, instead of
    /// [`DEFAULT_PORT`](DnsNamingService::DEFAULT_PORT) (say 443 for `https://`). A port
    /// written in the URL wins.
    ///
    /// ```
    /// use brisk::naming::DnsNamingService;
    ///
    /// let ns = DnsNamingService::new("example.com").unwrap().with_default_port(443);
    /// assert_eq!(ns.port(), 443);
    /// let ns = DnsNamingService::new("example.com:8443").unwrap().with_default_port(443);
    /// assert_eq!(ns.port(), 8443);
    /// ```
    pub fn with_default_port(mut self, port: u16) -> Self {
        self.default_port = port;
        self
    }

    /// Resolves the name again every `interval` instead of every
    /// [`DEFAULT_INTERVAL`](DnsNamingService::DEFAULT_INTERVAL) (intervals under a millisecond
    /// are raised to one).
    ///
    /// ```
    /// use std::time::Duration;
    /// use brisk::naming::DnsNamingService;
    ///
    /// let ns = DnsNamingService::new("example.com:80")
    ///     .unwrap()
    ///     .with_interval(Duration::from_secs(30));
    /// # drop(ns);
    /// ```
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(MIN_INTERVAL);
        self
    }

    /// The name resolved (an IPv6 literal without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port the servers listen on: the URL's, or the default port.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.default_port)
    }

    /// `host:port` as written in messages.
    fn name(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port())
        } else {
            format!("{}:{}", self.host, self.port())
        }
    }

    /// All addresses of the name, deduplicated and sorted.
    async fn resolve(&self) -> Result<Vec<ServerNode>, Status> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port()))
            .await
            .map_err(|e| {
                Status::new(
                    errno::EHOSTDOWN,
                    format!("Fail to resolve `{}`: {e}", self.name()),
                )
            })?;
        let mut nodes: Vec<ServerNode> = addrs.map(ServerNode::new).collect();
        nodes.sort();
        nodes.dedup();
        if nodes.is_empty() {
            return Err(Status::new(
                errno::EHOSTDOWN,
                format!("`{}` resolves to no address", self.name()),
            ));
        }
        Ok(nodes)
    }
}

impl NamingService for DnsNamingService {
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<ServerNode>, Status>> {
        Box::pin(async move {
            if !self.started {
                let first = self.resolve().await;
                self.started = true;
                let nodes = first?;
                self.last = Some(nodes.clone());
                return Ok(nodes);
            }
            loop {
                // Waiting first also spaces out errors: one per interval at most.
                tokio::time::sleep(self.interval).await;
                let nodes = self.resolve().await?;
                if self.last.as_ref() != Some(&nodes) {
                    self.last = Some(nodes.clone());
                    return Ok(nodes);
                }
            }
        })
    }
}

/// Splits `host[:port][/path...]` into the host (IPv6 without brackets) and the port, if
/// any. The error is the reason it is bad.
fn parse_authority(rest: &str) -> Result<(&str, Option<u16>), String> {
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .trim();
    if authority.contains('@') {
        return Err("user credentials are not supported".to_owned());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("unbalanced brackets".to_owned());
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected `{after}` after the address")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("an IPv6 address must be written in brackets, as [::1]:80".to_owned())
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".to_owned());
    }
    if host.contains(char::is_whitespace) {
        return Err("whitespace in the host".to_owned());
    }
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("bad port `{port}` (expected 1..=65535)")),
            Ok(port) => Some(port),
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use tokio::time::timeout;

    use super::*;

    #[test]
    fn parses_urls() {
        let ns = DnsNamingService::new("example.com:8000").unwrap();
        assert_eq!((ns.host(), ns.port()), ("example.com", 8000));
        let ns = DnsNamingService::new("example.com").unwrap();
        assert_eq!((ns.host(), ns.port()), ("example.com", 80));
        let ns = DnsNamingService::new("example.com/a/b?c#d").unwrap();
        assert_eq!((ns.host(), ns.port()), ("example.com", 80));
        let ns = DnsNamingService::new("example.com:81/").unwrap();
        assert_eq!((ns.host(), ns.port()), ("example.com", 81));
        let ns = DnsNamingService::new("[::1]:8000/x").unwrap();
        assert_eq!((ns.host(), ns.port()), ("::1", 8000));
        assert_eq!(ns.name(), "[::1]:8000");
        let ns = DnsNamingService::new("[::1]").unwrap();
        assert_eq!((ns.host(), ns.port()), ("::1", 80));
        let ns = DnsNamingService::new("example.com")
            .unwrap()
            .with_default_port(443);
        assert_eq!(ns.port(), 443);
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "",
            "/path",
            ":80",
            "host:",
            "host:http",
            "host:0",
            "host:65536",
            "::1:80",
            "[::1:80",
            "[::1]x",
            "[]:80",
            "user@host:80",
            "a b:80",
        ] {
            let err = DnsNamingService::new(bad).unwrap_err();
            assert_eq!(err.code(), errno::EINVAL, "`{bad}`: {err}");
        }
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let mut ns = DnsNamingService::new("localhost:4321").unwrap();
        let nodes = ns.next().await.unwrap();
        assert!(!nodes.is_empty());
        for node in &nodes {
            assert!(node.addr.ip().is_loopback(), "{node}");
            assert_eq!(node.addr.port(), 4321);
            assert!(node.tag.is_empty());
        }
        let mut sorted = nodes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, nodes);
    }

    #[tokio::test]
    async fn ip_literals_resolve_to_themselves() {
        let mut ns = DnsNamingService::new("[::1]:9").unwrap();
        assert_eq!(
            ns.next().await.unwrap(),
            vec![ServerNode::new("[::1]:9".parse().unwrap())]
        );
        let mut ns = crate::naming::from_url("http://127.0.0.1/index.html").unwrap();
        assert_eq!(
            ns.next().await.unwrap(),
            vec![ServerNode::new("127.0.0.1:80".parse().unwrap())]
        );
    }

    #[tokio::test]
    async fn unchanged_addresses_do_not_return() {
        let mut ns = DnsNamingService::new("localhost:4321")
            .unwrap()
            .with_interval(Duration::from_millis(10));
        ns.next().await.unwrap();
        assert!(timeout(Duration::from_millis(200), ns.next())
            .await
            .is_err());
    }

    #[tokio::test]
    async fn bad_host_is_ehostdown() {
        let mut ns = DnsNamingService::new("no-such-host.invalid:80").unwrap();
        let err = ns.next().await.unwrap_err();
        assert_eq!(err.code(), errno::EHOSTDOWN);
        assert!(err.message().contains("no-such-host.invalid:80"), "{err}");
    }

    #[tokio::test]
    async fn later_failure_waits_an_interval_first() {
        let mut ns = DnsNamingService::new("no-such-host.invalid:80")
            .unwrap()
            .with_interval(Duration::from_millis(50));
        assert!(ns.next().await.is_err());
        let start = std::time::Instant::now();
        assert_eq!(ns.next().await.unwrap_err().code(), errno::EHOSTDOWN);
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
}
