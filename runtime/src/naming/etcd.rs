//! `etcd://`: servers registered as keys in etcd, watched for changes (feature `etcd`).
//!
//! Speaks etcd's v3 API through its HTTP/JSON gateway (served at `/v3/...` on the client port
//! since etcd 3.4): `POST /v3/kv/range` lists the keys, `POST /v3/watch` streams the changes
//! that follow as newline-separated JSON objects on a chunked HTTP/1.1 response. Keys and
//! values travel base64-encoded.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::etcd_gateway::{
    parse_url, range_end, ConnTask, Gateway, MAX_MESSAGE_SIZE, REQUEST_TIMEOUT,
};
use super::list::split_entry;
use super::{BoxFuture, NamingService, ServerNode};
use crate::{errno, Error, Status};

/// The shortest time between two failed attempts to reach etcd.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Servers registered under a key prefix in etcd, watched for changes:
/// `etcd://127.0.0.1:2379/services/echo`.
///
/// Every key under `<prefix>/` (here `/services/echo/`) is one server, whatever the rest of
/// its name; its value is `host:port`, optionally followed by whitespace and a tag, as a
/// `list://` entry is written (`10.0.0.1:8000`, `10.0.0.2:8000 canary`, `[::1]:8000 1/3`).
/// A value that does not parse (or a hostname that does not resolve) is logged with
/// `tracing::warn!` and skipped. Keys merely starting with the prefix (`/services/echo2/a`)
/// do not count. Hostnames resolve to their first address. The list is sorted and servers
/// with the same address and tag are kept once.
///
/// A server registers itself with `etcdctl put /services/echo/host-1 '10.0.0.1:8000'`
/// (ideally with a lease, so that its key disappears when it dies) and leaves with
/// `etcdctl del /services/echo/host-1`.
///
/// The first [`next`](NamingService::next) lists the keys and fails if etcd cannot be
/// reached ([`errno::ECONNREFUSED`], [`errno::ETIMEDOUT`], ... with the address and the
/// reason; connecting may take 3 s and the request 5 s at most). It also starts a watch on
/// the prefix; each later call returns when a change seen by the watch changes the list.
/// If the watch breaks (etcd restarted, the connection dropped, the watch was compacted),
/// the keys are listed again and a new watch started, after a pause of at least a second
/// since the last failure: a later call returns the new list if it differs, or fails if etcd
/// still cannot be reached. A dead peer that never closes the connection is not detected.
///
/// Only one endpoint is supported, plain HTTP, without authentication. Needs brisk's `etcd`
/// feature.
///
/// ```no_run
/// use brisk::naming::{EtcdNamingService, NamingService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), brisk::Status> {
/// let mut ns = EtcdNamingService::new("127.0.0.1:2379/services/echo")?;
/// let servers = ns.next().await?; // the keys under /services/echo/ now
/// println!("{} servers", servers.len());
/// let servers = ns.next().await?; // after the next change to them
/// println!("now {} servers", servers.len());
/// # Ok(())
/// # }
/// ```
pub struct EtcdNamingService {
    /// etcd's endpoint and the URL.
    gateway: Gateway,
    /// The first key of the range: the prefix followed by `/`.
    key: Vec<u8>,
    /// The end of the range (excluded).
    range_end: Vec<u8>,
    /// The servers, by key, as last seen.
    nodes: BTreeMap<Vec<u8>, ServerNode>,
    /// Changes received but not applied to `nodes` yet.
    pending: VecDeque<Change>,
    /// The watch, while it is running.
    watch: Option<Watch>,
    /// Whether the keys were ever listed.
    synced: bool,
    /// The last list returned.
    last: Option<Vec<ServerNode>>,
    /// When the last attempt to reach etcd failed, or the watch broke.
    last_failure: Option<Instant>,
}

impl fmt::Debug for EtcdNamingService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdNamingService")
            .field("url", &self.gateway.url)
            .field("servers", &self.nodes.len())
            .field("watching", &self.watch.is_some())
            .finish()
    }
}

/// One change a watch reported.
#[derive(Debug)]
enum Change {
    /// The key was set to the value.
    Put(Vec<u8>, Vec<u8>),
    /// The key was deleted.
    Delete(Vec<u8>),
}

impl EtcdNamingService {
    /// Parses what follows `etcd://`: `host:port/prefix`, as in `127.0.0.1:2379/services/echo`
    /// (trailing slashes are ignored: `/services/echo/` is the same prefix). Nothing is
    /// contacted until the first [`next`](NamingService::next).
    ///
    /// Fails with [`errno::EINVAL`] if the endpoint has no port, a port that is not a number
    /// in 1..=65535, an empty host, or several hosts, and if the prefix is missing or empty.
    ///
    /// ```
    /// use brisk::{errno, naming::EtcdNamingService};
    ///
    /// assert!(EtcdNamingService::new("127.0.0.1:2379/services/echo").is_ok());
    /// let err = EtcdNamingService::new("127.0.0.1:2379").unwrap_err(); // no prefix
    /// assert_eq!(err.code(), errno::EINVAL);
    /// ```
    pub fn new(rest: &str) -> Result<Self, Error> {
        let url = format!("etcd://{rest}");
        let (authority, prefix) =
            parse_url(rest).map_err(|reason| Error::invalid(format!("{url}: {reason}")))?;
        let mut key = prefix.into_bytes();
        key.push(b'/');
        let range_end = range_end(&key);
        Ok(EtcdNamingService {
            gateway: Gateway { url, authority },
            key,
            range_end,
            nodes: BTreeMap::new(),
            pending: VecDeque::new(),
            watch: None,
            synced: false,
            last: None,
            last_failure: None,
        })
    }

    /// The list in `nodes`, if it is not the one last returned (always on the first call).
    fn changed(&mut self) -> Option<Vec<ServerNode>> {
        let mut list: Vec<ServerNode> = self.nodes.values().cloned().collect();
        list.sort();
        list.dedup();
        if self.last.as_ref() == Some(&list) {
            return None;
        }
        self.last = Some(list.clone());
        Some(list)
    }

    /// Applies the pending changes. Cancel-safe: a change leaves the queue once applied.
    async fn apply_pending(&mut self) {
        while let Some(change) = self.pending.front() {
            match change {
                Change::Put(key, value) => match parse_value(&self.gateway.url, key, value).await {
                    Some(node) => {
                        self.nodes.insert(key.clone(), node);
                    }
                    None => {
                        // The key no longer names a server it may have named before.
                        self.nodes.remove(key);
                    }
                },
                Change::Delete(key) => {
                    self.nodes.remove(key);
                }
            }
            self.pending.pop_front();
        }
    }

    /// Waits until at least [`RETRY_INTERVAL`] has passed since the last failure.
    async fn back_off(&self) {
        if let Some(failed) = self.last_failure {
            tokio::time::sleep_until(failed + RETRY_INTERVAL).await;
        }
    }

    /// Lists the keys and starts a watch from the revision listed; replaces `nodes` and the
    /// watch only when both succeeded (so a cancelled or failed attempt changes nothing).
    async fn sync(&mut self) -> Result<(), Status> {
        let (revision, kvs) = tokio::time::timeout(REQUEST_TIMEOUT, self.range())
            .await
            .map_err(|_| self.gateway.timed_out("listing the keys"))??;
        let mut nodes = BTreeMap::new();
        for (key, value) in kvs {
            if let Some(node) = parse_value(&self.gateway.url, &key, &value).await {
                nodes.insert(key, node);
            }
        }
        let watch = tokio::time::timeout(REQUEST_TIMEOUT, self.start_watch(revision + 1))
            .await
            .map_err(|_| self.gateway.timed_out("starting the watch"))??;
        self.nodes = nodes;
        self.pending.clear();
        self.watch = Some(watch);
        self.synced = true;
        Ok(())
    }

    /// `POST /v3/kv/range` over the prefix: the store's revision and the keys and values.
    async fn range(&self) -> Result<(i64, Vec<(Vec<u8>, Vec<u8>)>), Status> {
        let request = json!({
            "key": BASE64.encode(&self.key),
            "range_end": BASE64.encode(&self.range_end),
        });
        let response = self.gateway.call("/v3/kv/range", &request).await?;
        let revision = response
            .pointer("/header/revision")
            .and_then(as_i64)
            .ok_or_else(|| {
                self.gateway
                    .bad_response("the range response has no header.revision")
            })?;
        let mut kvs = Vec::new();
        if let Some(items) = response.get("kvs").and_then(Value::as_array) {
            for kv in items {
                let key = decode_field(kv, "key").ok_or_else(|| {
                    self.gateway
                        .bad_response("a range response key is not base64")
                })?;
                let value = decode_field(kv, "value").ok_or_else(|| {
                    self.gateway
                        .bad_response("a range response value is not base64")
                })?;
                kvs.push((key, value));
            }
        }
        Ok((revision, kvs))
    }

    /// `POST /v3/watch` over the prefix from `revision`, up to etcd's confirmation.
    async fn start_watch(&self, revision: i64) -> Result<Watch, Status> {
        let request = json!({
            "create_request": {
                "key": BASE64.encode(&self.key),
                "range_end": BASE64.encode(&self.range_end),
                "start_revision": revision.to_string(),
            }
        });
        let (body, conn) = self.gateway.post("/v3/watch", &request).await?;
        let mut watch = Watch {
            body,
            buf: Vec::new(),
            _conn: conn,
        };
        let created = watch.message(&self.gateway.url).await?;
        match self.watch_result(&created)? {
            WatchResult::Created => Ok(watch),
            _ => Err(self.gateway.bad_response(format!(
                "expected the watch's creation, got {}",
                truncated(&created)
            ))),
        }
    }

    /// What a watch message says.
    fn watch_result(&self, message: &Value) -> Result<WatchResult, Status> {
        if let Some(error) = message.get("error") {
            let text = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            return Err(Status::new(
                errno::EFAILEDSOCKET,
                format!("{}: the watch failed: {text}", self.gateway.url),
            ));
        }
        let Some(result) = message.get("result") else {
            return Err(self
                .gateway
                .bad_response(format!("unexpected watch message {}", truncated(message))));
        };
        if result.get("canceled").and_then(Value::as_bool) == Some(true) {
            let reason = result
                .get("cancel_reason")
                .and_then(Value::as_str)
                .unwrap_or("");
            let compacted = result.get("compact_revision").and_then(as_i64).unwrap_or(0);
            return Err(Status::new(
                errno::ECANCELED,
                format!(
                    "{}: etcd canceled the watch (reason `{reason}`, compact revision {compacted})",
                    self.gateway.url
                ),
            ));
        }
        if result.get("created").and_then(Value::as_bool) == Some(true) {
            return Ok(WatchResult::Created);
        }
        let mut changes = Vec::new();
        if let Some(events) = result.get("events").and_then(Value::as_array) {
            for event in events {
                let kv = event.get("kv").unwrap_or(&Value::Null);
                let key = decode_field(kv, "key").ok_or_else(|| {
                    self.gateway
                        .bad_response("a watch event's key is not base64")
                })?;
                // PUT is the enum's zero value, which the gateway leaves out.
                match event.get("type").and_then(Value::as_str).unwrap_or("PUT") {
                    "PUT" => {
                        let value = decode_field(kv, "value").ok_or_else(|| {
                            self.gateway
                                .bad_response("a watch event's value is not base64")
                        })?;
                        changes.push(Change::Put(key, value));
                    }
                    "DELETE" => changes.push(Change::Delete(key)),
                    other => {
                        return Err(self
                            .gateway
                            .bad_response(format!("unknown watch event `{other}`")))
                    }
                }
            }
        }
        Ok(WatchResult::Changes(changes))
    }
}

impl NamingService for EtcdNamingService {
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<ServerNode>, Status>> {
        Box::pin(async move {
            loop {
                self.apply_pending().await;
                if self.synced {
                    if let Some(list) = self.changed() {
                        return Ok(list);
                    }
                }
                let Some(watch) = self.watch.as_mut() else {
                    self.back_off().await;
                    if let Err(e) = self.sync().await {
                        self.last_failure = Some(Instant::now());
                        return Err(e);
                    }
                    self.last_failure = None;
                    continue;
                };
                let result = match watch.message(&self.gateway.url).await {
                    Ok(message) => self.watch_result(&message),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(WatchResult::Changes(changes)) => self.pending.extend(changes),
                    Ok(WatchResult::Created) => {}
                    Err(e) => {
                        tracing::warn!(
                            url = %self.gateway.url,
                            error = %e,
                            "etcd watch broke; listing the keys again"
                        );
                        self.watch = None;
                        self.last_failure = Some(Instant::now());
                    }
                }
            }
        })
    }
}

/// A watch message's meaning.
enum WatchResult {
    /// The watch was created.
    Created,
    /// Keys changed (possibly none: a progress notification).
    Changes(Vec<Change>),
}

/// A running watch: the streamed response and the task driving its connection.
struct Watch {
    body: Incoming,
    /// Bytes received and not parsed yet.
    buf: Vec<u8>,
    _conn: ConnTask,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl Watch {
    /// The next JSON object of the stream. Cancel-safe: partial data stays buffered.
    async fn message(&mut self, url: &str) -> Result<Value, Status> {
        loop {
            let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            match values.next() {
                Some(Ok(value)) => {
                    let used = values.byte_offset();
                    self.buf.drain(..used);
                    return Ok(value);
                }
                Some(Err(e)) if !e.is_eof() => {
                    return Err(Status::new(
                        errno::ERESPONSE,
                        format!("{url}: the watch stream is not JSON: {e}"),
                    ));
                }
                // Only whitespace.
                None => self.buf.clear(),
                // An incomplete object: wait for the rest.
                Some(Err(_)) => {}
            }
            if self.buf.len() > MAX_MESSAGE_SIZE {
                return Err(Status::new(
                    errno::ERESPONSE,
                    format!("{url}: a watch message exceeds {MAX_MESSAGE_SIZE} bytes"),
                ));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    return Err(Status::new(
                        errno::EFAILEDSOCKET,
                        format!("{url}: the watch stream broke: {e}"),
                    ));
                }
                None => {
                    return Err(Status::new(
                        errno::EEOF,
                        format!("{url}: etcd ended the watch stream"),
                    ));
                }
            }
        }
    }
}

/// The server a key's value names, or `None` (logged) when the value does not parse.
async fn parse_value(url: &str, key: &[u8], value: &[u8]) -> Option<ServerNode> {
    let key = String::from_utf8_lossy(key);
    let Ok(entry) = std::str::from_utf8(value) else {
        tracing::warn!(url, %key, "skipping an etcd key: its value is not UTF-8");
        return None;
    };
    let parsed = match split_entry(entry) {
        Ok(_) => super::parse_entry(entry).await.map_err(|e| e.to_string()),
        Err(reason) => Err(reason),
    };
    match parsed {
        Ok(node) => Some(node),
        Err(reason) => {
            tracing::warn!(
                url,
                %key,
                value = entry,
                %reason,
                "skipping an etcd key: its value is not `host:port [tag]`"
            );
            None
        }
    }
}

/// A base64 field of a JSON object, decoded; empty when absent (the gateway leaves empty
/// values out), `None` when not base64.
fn decode_field(object: &Value, name: &str) -> Option<Vec<u8>> {
    match object.get(name) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::String(text)) => BASE64.decode(text).ok(),
        Some(_) => None,
    }
}

/// An int64 as the gateway writes it (a string), or as a number.
fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => text.parse().ok(),
        other => other.as_i64(),
    }
}

/// A JSON value for a message, cut to a readable length.
fn truncated(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let ns = EtcdNamingService::new("127.0.0.1:2379/services/echo").unwrap();
        assert_eq!(ns.gateway.authority, "127.0.0.1:2379");
        assert_eq!(ns.key, b"/services/echo/");
        assert_eq!(ns.range_end, b"/services/echo0");
        assert_eq!(ns.gateway.url, "etcd://127.0.0.1:2379/services/echo");

        let ns = EtcdNamingService::new("etcd.local:2379/a/b//").unwrap();
        assert_eq!(ns.gateway.authority, "etcd.local:2379");
        assert_eq!(ns.key, b"/a/b/");

        let ns = EtcdNamingService::new("[::1]:2379/p").unwrap();
        assert_eq!(ns.gateway.authority, "[::1]:2379");
        assert_eq!(ns.key, b"/p/");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "",
            "127.0.0.1:2379",
            "127.0.0.1:2379/",
            "127.0.0.1:2379///",
            "/prefix",
            "127.0.0.1/prefix",
            "127.0.0.1:/prefix",
            "127.0.0.1:0/prefix",
            "127.0.0.1:65536/prefix",
            "127.0.0.1:x/prefix",
            ":2379/prefix",
            "::1:2379/prefix",
            "h1:2379,h2:2379/prefix",
            "user@h:2379/prefix",
            "h :2379/prefix",
        ] {
            let err = EtcdNamingService::new(bad).expect_err(bad);
            assert_eq!(err.code(), errno::EINVAL, "{bad}: {err:?}");
            assert!(err.message().starts_with("etcd://"), "{bad}: {err:?}");
        }
    }

    #[test]
    fn from_url_makes_an_etcd_service() {
        assert!(crate::naming::from_url("etcd://127.0.0.1:2379/services").is_ok());
        let err = crate::naming::from_url("etcd://127.0.0.1:2379").unwrap_err();
        assert_eq!(err.code(), errno::EINVAL);
    }

    #[test]
    fn computes_range_ends() {
        assert_eq!(range_end(b"/prefix/"), b"/prefix0");
        assert_eq!(range_end(b"a"), b"b");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"ab\xff\xff"), b"ac");
        assert_eq!(range_end(b"\xff\xff"), b"\0");
        assert_eq!(range_end(b""), b"\0");
    }

    #[test]
    fn decodes_fields() {
        let kv = json!({"key": "L3MvYQ==", "value": "MTI3LjAuMC4xOjgwMDA="});
        assert_eq!(decode_field(&kv, "key").unwrap(), b"/s/a");
        assert_eq!(decode_field(&kv, "value").unwrap(), b"127.0.0.1:8000");
        assert_eq!(decode_field(&kv, "lease").unwrap(), b"");
        assert!(decode_field(&json!({"key": "!!"}), "key").is_none());
        assert_eq!(as_i64(&json!("42")), Some(42));
        assert_eq!(as_i64(&json!(42)), Some(42));
        assert_eq!(as_i64(&json!("x")), None);
    }

    #[test]
    fn reads_watch_results() {
        let ns = EtcdNamingService::new("127.0.0.1:2379/s").unwrap();
        let created = json!({"result": {"header": {"revision": "2"}, "created": true}});
        assert!(matches!(
            ns.watch_result(&created),
            Ok(WatchResult::Created)
        ));
        let events = json!({"result": {"events": [
            {"kv": {"key": "L3MvYQ==", "value": "MTI3LjAuMC4xOjgwMDA="}},
            {"type": "DELETE", "kv": {"key": "L3MvYg==", "mod_revision": "4"}},
        ]}});
        let Ok(WatchResult::Changes(changes)) = ns.watch_result(&events) else {
            panic!("changes expected");
        };
        assert!(
            matches!(&changes[..], [Change::Put(k1, v), Change::Delete(k2)]
                if k1 == b"/s/a" && v == b"127.0.0.1:8000" && k2 == b"/s/b")
        );
        let canceled = json!({"result": {"canceled": true, "compact_revision": "7"}});
        let err = ns.watch_result(&canceled).err().unwrap();
        assert_eq!(err.code(), errno::ECANCELED);
        assert!(err.message().contains("compact revision 7"), "{err:?}");
        let error = json!({"error": {"grpc_code": 14, "message": "etcdserver: no leader"}});
        let err = ns.watch_result(&error).err().unwrap();
        assert!(err.message().contains("no leader"), "{err:?}");
    }

    #[tokio::test]
    async fn skips_bad_values() {
        let url = "etcd://127.0.0.1:2379/s";
        assert_eq!(
            parse_value(url, b"/s/a", b"127.0.0.1:8000 canary").await,
            Some(ServerNode::with_tag(
                "127.0.0.1:8000".parse().unwrap(),
                "canary"
            ))
        );
        for bad in [&b"not an address"[..], b"", b"127.0.0.1:0", b"\xff\xfe"] {
            assert_eq!(parse_value(url, b"/s/a", bad).await, None);
        }
    }
}
