//! One etcd cluster as Brisk reaches it: a gRPC channel to its endpoints and the generated
//! clients of the services the naming service and registration call.

use std::time::Duration;

use super::generated::etcdserverpb::{KvClient, LeaseClient, WatchClient};
use crate::naming::list::split_entry;
use crate::{errno, Channel, Status};

/// How long connecting to an etcd endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How often an etcd endpoint whose connection broke is probed.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_millis(300);

/// How long a call to etcd may take; for the streams (watch, lease keep-alive), how long
/// opening one may take.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What follows `etcd://`, parsed: `host:port[,host:port...]/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EtcdUrl {
    /// The whole URL, for messages: `etcd://host:port/prefix`.
    pub(super) url: String,
    /// etcd's client endpoints, `host:port` each.
    pub(super) endpoints: Vec<String>,
    /// The key prefix, with one leading `/` and no trailing one: `/services/echo`.
    pub(super) prefix: String,
}

impl EtcdUrl {
    /// Parses `rest`, what follows `etcd://` (the scheme may be there too): one or more
    /// comma-separated endpoints, then the key prefix. Trailing slashes are ignored. The
    /// error says what is wrong, without the URL.
    pub(super) fn parse(rest: &str) -> Result<EtcdUrl, String> {
        let rest = match rest.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("etcd://") => &rest[7..],
            _ => rest,
        };
        let Some((authority, path)) = rest.split_once('/') else {
            return Err("no key prefix (expected etcd://host:port/prefix)".to_owned());
        };
        if authority.is_empty() {
            return Err("no etcd endpoint (expected etcd://host:port/prefix)".to_owned());
        }
        let mut endpoints = Vec::new();
        for endpoint in authority.split(',') {
            if endpoint.is_empty()
                || endpoint.contains(char::is_whitespace)
                || endpoint.contains('@')
            {
                return Err(format!("`{endpoint}` is not host:port"));
            }
            split_entry(endpoint)?;
            endpoints.push(endpoint.to_owned());
        }
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Err("empty key prefix (expected etcd://host:port/prefix)".to_owned());
        }
        Ok(EtcdUrl {
            url: format!("etcd://{rest}"),
            endpoints,
            prefix: format!("/{path}"),
        })
    }
}

/// The clients of etcd's services, sharing one channel (one HTTP/2 connection per endpoint).
#[derive(Debug, Clone)]
pub(super) struct EtcdClient {
    /// The URL, for messages.
    pub(super) url: String,
    pub(super) kv: KvClient,
    pub(super) watch: WatchClient,
    pub(super) lease: LeaseClient,
}

impl EtcdClient {
    /// A gRPC channel to `url`'s endpoints (round robin over several, a failed call retried
    /// on another). Nothing is sent until the first call; a hostname is resolved now.
    pub(super) async fn connect(url: &EtcdUrl) -> Result<EtcdClient, Status> {
        let builder = Channel::builder()
            .protocol("h2:grpc")
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // An endpoint whose connection broke answers EHOSTDOWN until a probe connects
            // again: probe often, etcd restarts are short.
            .health_check_interval(HEALTH_CHECK_INTERVAL);
        let channel = match url.endpoints.as_slice() {
            // A retry would go to the same endpoint, marked down by the failure, and only
            // turn its ECONNREFUSED into EHOSTDOWN: the callers retry on their own schedule.
            [endpoint] => builder.max_retry(0).connect(endpoint).await,
            endpoints => {
                builder
                    .connect_cluster(&format!("list://{}", endpoints.join(",")), "rr")
                    .await
            }
        }
        .map_err(|e| Status::new(e.code(), format!("{}: {}", url.url, e.message())))?;
        Ok(EtcdClient {
            url: url.url.clone(),
            kv: KvClient::new(channel.clone()),
            watch: WatchClient::new(channel.clone()),
            lease: LeaseClient::new(channel),
        })
    }

    /// `status`, from doing `what`, with the URL in front.
    pub(super) fn failed(&self, what: &str, status: Status) -> Status {
        Status::new(
            status.code(),
            format!("{}: {what}: {}", self.url, status.message()),
        )
    }

    /// An ERESPONSE: etcd answered something Brisk cannot use.
    pub(super) fn bad_response(&self, what: impl std::fmt::Display) -> Status {
        Status::new(errno::ERESPONSE, format!("{}: {what}", self.url))
    }
}

/// The end of the range of keys starting with `key`: `key` with its last byte below 0xff
/// incremented (and the 0xff bytes after it dropped); `\0` (every key from `key` on) when all
/// its bytes are 0xff.
pub(super) fn range_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let url = EtcdUrl::parse("127.0.0.1:2379/services/echo/").unwrap();
        assert_eq!(url.url, "etcd://127.0.0.1:2379/services/echo/");
        assert_eq!(url.endpoints, ["127.0.0.1:2379"]);
        assert_eq!(url.prefix, "/services/echo");
        let url = EtcdUrl::parse("Etcd://a:1,[::1]:2,localhost:3//x").unwrap();
        assert_eq!(url.endpoints, ["a:1", "[::1]:2", "localhost:3"]);
        assert_eq!(url.prefix, "//x");
    }

    #[test]
    fn rejects_bad_urls() {
        for (bad, why) in [
            ("127.0.0.1:2379", "no key prefix"),
            ("/prefix", "no etcd endpoint"),
            ("127.0.0.1:2379/", "empty key prefix"),
            ("127.0.0.1:2379///", "empty key prefix"),
            ("127.0.0.1/prefix", "host:port"),
            ("127.0.0.1:0/prefix", "port"),
            ("127.0.0.1:99999/prefix", "port"),
            (":2379/prefix", "host"),
            ("a:1,/prefix", "``"),
            ("user@a:1/prefix", "host:port"),
            ("a b:1/prefix", "host:port"),
        ] {
            let err = EtcdUrl::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn computes_range_ends() {
        assert_eq!(range_end(b"/a/"), b"/a0");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff\xff"), b"\0");
        assert_eq!(range_end(b""), b"\0");
    }
}
