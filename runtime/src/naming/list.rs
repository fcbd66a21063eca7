//! `list://`: a fixed list of servers written in the URL itself (brpc's `ListNamingService`).

use std::collections::HashSet;

use super::{BoxFuture, NamingService, ServerNode};
use crate::{Error, Status};

/// Servers listed in a `list://` URL: `list://10.0.0.1:8000,10.0.0.2:8000 tag,host:9000`.
///
/// Entries are separated by commas. Each is `host:port`, optionally followed by whitespace and
/// a tag (everything up to the next comma, trimmed). Empty entries, as a trailing comma makes,
/// are skipped. IPv6 addresses are written in brackets: `[::1]:8000`.
///
/// The syntax is checked by [`parse`](ListNamingService::parse); hostnames are resolved (to
/// their first address) by the first [`next`](NamingService::next), which fails with
/// [`errno::EHOSTDOWN`](crate::errno::EHOSTDOWN) if one of them does not resolve (a later call tries again). Entries
/// with the same address and tag are kept once, in the order first written. The list never
/// changes, so every later `next` waits forever.
///
/// ```
/// use brisk::naming::{ListNamingService, NamingService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), brisk::Status> {
/// let mut ns = ListNamingService::parse("127.0.0.1:8000,127.0.0.1:8001 canary,")?;
/// let servers = ns.next().await?;
/// assert_eq!(servers.len(), 2);
/// assert_eq!(servers[1].addr.port(), 8001);
/// assert_eq!(servers[1].tag, "canary");
///
/// assert!(ListNamingService::parse("127.0.0.1").is_err()); // no port
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ListNamingService {
    /// The `host:port [tag]` entries, syntax already checked.
    entries: Vec<String>,
    /// Whether the list has been returned once.
    returned: bool,
}

impl ListNamingService {
    /// Parses what follows `list://`: comma-separated `host:port [tag]` entries.
    ///
    /// Fails with [`errno::EINVAL`](crate::errno::EINVAL), naming the entry, if an entry has no port, a port that is
    /// not a number in 1..=65535, or an empty host, and if the list has no entry at all.
    /// Hostnames are not resolved here but by the first [`next`](NamingService::next).
    ///
    /// ```
    /// use brisk::{errno, naming::ListNamingService};
    ///
    /// assert!(ListNamingService::parse("10.0.0.1:8000,example.com:80 1/3").is_ok());
    /// let err = ListNamingService::parse("10.0.0.1:8000,:80").unwrap_err();
    /// assert_eq!(err.code(), errno::EINVAL);
    /// ```
    pub fn parse(rest: &str) -> Result<Self, Error> {
        let mut entries = Vec::new();
        for entry in rest.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            split_entry(entry).map_err(|reason| {
                Error::invalid(format!("list://{rest}: bad entry `{entry}`: {reason}"))
            })?;
            entries.push(entry.to_owned());
        }
        if entries.is_empty() {
            return Err(Error::invalid(format!("list://{rest}: no server listed")));
        }
        Ok(ListNamingService {
            entries,
            returned: false,
        })
    }

    async fn resolve_all(&self) -> Result<Vec<ServerNode>, Status> {
        let mut nodes = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let node = super::parse_entry(entry).await.map_err(|e| {
                Status::new(e.code(), format!("list entry `{entry}`: {}", e.message()))
            })?;
            nodes.push(node);
        }
        Ok(dedupe(nodes))
    }
}

impl NamingService for ListNamingService {
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<ServerNode>, Status>> {
        Box::pin(async move {
            if self.returned {
                // The list is static: nothing will ever change.
                return std::future::pending().await;
            }
            let nodes = self.resolve_all().await?;
            self.returned = true;
            Ok(nodes)
        })
    }
}

/// Splits a `host:port [tag]` entry (already trimmed, comments removed) into the address and
/// the tag (empty when none), checking the address's syntax. The error is the reason the
/// entry is bad. Shared with `file://`.
pub(crate) fn split_entry(entry: &str) -> Result<(&str, &str), String> {
    let entry = entry.trim();
    let (address, tag) = match entry.split_once(char::is_whitespace) {
        Some((address, tag)) => (address, tag.trim()),
        None => (entry, ""),
    };
    if address.is_empty() {
        return Err("empty entry".to_owned());
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("`{address}` has no port (expected host:port)"));
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("`{address}` has an empty host"));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.contains(':') && !bracketed {
        return Err(format!(
            "`{address}`: an IPv6 address must be written in brackets, as [::1]:8000"
        ));
    }
    if host.starts_with('[') != host.ends_with(']') {
        return Err(format!("`{address}` has unbalanced brackets"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "`{address}` has a bad port `{port}` (expected 1..=65535)"
        )),
        Ok(_) => Ok((address, tag)),
    }
}

/// Drops repeated nodes (same address and tag), keeping the first of each, in order.
pub(super) fn dedupe(nodes: Vec<ServerNode>) -> Vec<ServerNode> {
    let mut seen = HashSet::with_capacity(nodes.len());
    let before = nodes.len();
    let unique: Vec<ServerNode> = nodes
        .into_iter()
        .filter(|node| seen.insert(node.clone()))
        .collect();
    if unique.len() < before {
        tracing::debug!(
            removed = before - unique.len(),
            "removed duplicated servers"
        );
    }
    unique
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::errno;

    fn node(addr: &str, tag: &str) -> ServerNode {
        ServerNode::with_tag(addr.parse().unwrap(), tag)
    }

    #[test]
    fn split_entry_accepts_good_entries() {
        assert_eq!(split_entry("1.2.3.4:80"), Ok(("1.2.3.4:80", "")));
        assert_eq!(split_entry(" host:9000  tag "), Ok(("host:9000", "tag")));
        assert_eq!(split_entry("h:1\t1/3"), Ok(("h:1", "1/3")));
        assert_eq!(split_entry("[::1]:8000 a b"), Ok(("[::1]:8000", "a b")));
    }

    #[test]
    fn split_entry_rejects_bad_entries() {
        for bad in [
            "",
            "1.2.3.4",
            ":80",
            "host:",
            "host:x",
            "host:0",
            "host:65536",
            "::1:80",
            "[::1:80",
            "[]:80",
        ] {
            assert!(split_entry(bad).is_err(), "`{bad}` should be rejected");
        }
    }

    #[tokio::test]
    async fn parses_entries_tags_and_skips_empty_ones() {
        let mut ns =
            ListNamingService::parse(" 127.0.0.1:8000 ,, 127.0.0.1:8001  canary ,").unwrap();
        let nodes = ns.next().await.unwrap();
        assert_eq!(
            nodes,
            vec![node("127.0.0.1:8000", ""), node("127.0.0.1:8001", "canary")]
        );
    }

    #[tokio::test]
    async fn bad_entries_are_einval_and_named() {
        for (rest, bad) in [
            ("127.0.0.1:8000,127.0.0.2", "127.0.0.2"),
            ("127.0.0.1:http", "127.0.0.1:http"),
            ("127.0.0.1:80,:80 tag", ":80 tag"),
            ("127.0.0.1:99999", "127.0.0.1:99999"),
        ] {
            let err = ListNamingService::parse(rest).unwrap_err();
            assert_eq!(err.code(), errno::EINVAL, "{rest}");
            assert!(err.message().contains(bad), "{rest}: {err}");
        }
        assert_eq!(
            ListNamingService::parse(" , ").unwrap_err().code(),
            errno::EINVAL
        );
        assert_eq!(
            ListNamingService::parse("").unwrap_err().code(),
            errno::EINVAL
        );
    }

    #[tokio::test]
    async fn removes_duplicates_but_keeps_different_tags() {
        let mut ns = ListNamingService::parse(
            "127.0.0.1:1,127.0.0.1:1,127.0.0.1:1 a,127.0.0.1:1 a,127.0.0.1:1 b,127.0.0.1:2",
        )
        .unwrap();
        assert_eq!(
            ns.next().await.unwrap(),
            vec![
                node("127.0.0.1:1", ""),
                node("127.0.0.1:1", "a"),
                node("127.0.0.1:1", "b"),
                node("127.0.0.1:2", ""),
            ]
        );
    }

    #[tokio::test]
    async fn resolves_hostnames() {
        let mut ns = ListNamingService::parse("localhost:8000 t").unwrap();
        let nodes = ns.next().await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert!(nodes[0].addr.ip().is_loopback());
        assert_eq!(nodes[0].addr.port(), 8000);
        assert_eq!(nodes[0].tag, "t");
    }

    #[tokio::test]
    async fn unresolvable_host_fails_first_next() {
        let mut ns = ListNamingService::parse("127.0.0.1:1,no-such-host.invalid:80").unwrap();
        let err = ns.next().await.unwrap_err();
        assert_eq!(err.code(), errno::EHOSTDOWN);
        assert!(err.message().contains("no-such-host.invalid"), "{err}");
    }

    #[tokio::test]
    async fn later_next_never_returns() {
        let mut ns = ListNamingService::parse("127.0.0.1:1").unwrap();
        ns.next().await.unwrap();
        let later = tokio::time::timeout(Duration::from_millis(50), ns.next()).await;
        assert!(later.is_err(), "a static list must not change");
    }
}
