//! `etcd://`: servers registered as keys in etcd, watched for changes (feature `etcd`).
//!
//! Speaks etcd's v3 API through its HTTP/JSON gateway (served at `/v3/...` on the client port
//! since etcd 3.4): `POST /v3/kv/range` lists the keys, `POST /v3/watch` streams the changes
//! that follow as newline-separated JSON objects on a chunked HTTP/1.1 response. Keys and
//! values travel base64-encoded.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::list::split_entry;
use super::{BoxFuture, NamingService, ServerNode};
use crate::{errno, Error, Status};

/// How long connecting to etcd may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a whole range request, or setting up a watch (up to etcd's confirmation that the
/// watch is created), may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The shortest time between two failed attempts to reach etcd.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The largest range response, or watch message, accepted.
const MAX_MESSAGE_SIZE: usize = 64 << 20;

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
    /// The URL, for messages: `etcd://host:port/prefix`.
    url: String,
    /// etcd's client endpoint, `host:port` (also the `Host` header).
    authority: String,
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
            .field("url", &self.url)
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
            url,
            authority,
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
                Change::Put(key, value) => match parse_value(&self.url, key, value).await {
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
            .map_err(|_| self.timed_out("listing the keys"))??;
        let mut nodes = BTreeMap::new();
        for (key, value) in kvs {
            if let Some(node) = parse_value(&self.url, &key, &value).await {
                nodes.insert(key, node);
            }
        }
        let watch = tokio::time::timeout(REQUEST_TIMEOUT, self.start_watch(revision + 1))
            .await
            .map_err(|_| self.timed_out("starting the watch"))??;
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
        let (body, _conn) = self.post("/v3/kv/range", &request).await?;
        let body = Limited::new(body, MAX_MESSAGE_SIZE)
            .collect()
            .await
            .map_err(|e| {
                Status::new(
                    errno::EFAILEDSOCKET,
                    format!("{}: reading the keys failed: {e}", self.url),
                )
            })?
            .to_bytes();
        let response: Value = serde_json::from_slice(&body)
            .map_err(|e| self.bad_response(format!("the range response is not JSON: {e}")))?;
        let revision = response
            .pointer("/header/revision")
            .and_then(as_i64)
            .ok_or_else(|| self.bad_response("the range response has no header.revision"))?;
        let mut kvs = Vec::new();
        if let Some(items) = response.get("kvs").and_then(Value::as_array) {
            for kv in items {
                let key = decode_field(kv, "key")
                    .ok_or_else(|| self.bad_response("a range response key is not base64"))?;
                let value = decode_field(kv, "value")
                    .ok_or_else(|| self.bad_response("a range response value is not base64"))?;
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
        let (body, conn) = self.post("/v3/watch", &request).await?;
        let mut watch = Watch {
            body,
            buf: Vec::new(),
            _conn: conn,
        };
        let created = watch.message(&self.url).await?;
        match self.watch_result(&created)? {
            WatchResult::Created => Ok(watch),
            _ => Err(self.bad_response(format!(
                "expected the watch's creation, got {}",
                truncated(&created)
            ))),
        }
    }

    /// Sends `body` as a POST to `path` on a new connection; the response body once the
    /// status is 200, and the task driving the connection.
    async fn post(&self, path: &str, body: &Value) -> Result<(Incoming, ConnTask), Status> {
        let addr = super::resolve(&self.authority)
            .await
            .map_err(|e| Status::new(e.code(), format!("{}: {}", self.url, e.message())))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                Status::new(
                    errno::ETIMEDOUT,
                    format!(
                        "{}: connecting to {addr} timed out after {CONNECT_TIMEOUT:?}",
                        self.url
                    ),
                )
            })?
            .map_err(|e| self.io_error(addr, e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn): (SendRequest<Full<Bytes>>, _) =
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| self.http_error(addr, e))?;
        let conn = ConnTask(tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "etcd connection ended");
            }
        }));
        let request = Request::post(path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| Status::internal(format!("{}: building a request: {e}", self.url)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.http_error(addr, e))?;
        let status = response.status();
        if status != StatusCode::OK {
            let text = match Limited::new(response.into_body(), 4096).collect().await {
                Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                Err(_) => String::new(),
            };
            return Err(Status::new(
                errno::EHTTP,
                format!("{}: {path} answered {status}: {}", self.url, text.trim()),
            ));
        }
        Ok((response.into_body(), conn))
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
                format!("{}: the watch failed: {text}", self.url),
            ));
        }
        let Some(result) = message.get("result") else {
            return Err(
                self.bad_response(format!("unexpected watch message {}", truncated(message)))
            );
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
                    self.url
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
                let key = decode_field(kv, "key")
                    .ok_or_else(|| self.bad_response("a watch event's key is not base64"))?;
                // PUT is the enum's zero value, which the gateway leaves out.
                match event.get("type").and_then(Value::as_str).unwrap_or("PUT") {
                    "PUT" => {
                        let value = decode_field(kv, "value").ok_or_else(|| {
                            self.bad_response("a watch event's value is not base64")
                        })?;
                        changes.push(Change::Put(key, value));
                    }
                    "DELETE" => changes.push(Change::Delete(key)),
                    other => {
                        return Err(self.bad_response(format!("unknown watch event `{other}`")))
                    }
                }
            }
        }
        Ok(WatchResult::Changes(changes))
    }

    fn bad_response(&self, what: impl fmt::Display) -> Status {
        Status::new(errno::ERESPONSE, format!("{}: {what}", self.url))
    }

    fn timed_out(&self, what: &str) -> Status {
        Status::new(
            errno::ETIMEDOUT,
            format!("{}: {what} timed out after {REQUEST_TIMEOUT:?}", self.url),
        )
    }

    fn io_error(&self, addr: SocketAddr, e: io::Error) -> Status {
        let code = match e.kind() {
            io::ErrorKind::ConnectionRefused => errno::ECONNREFUSED,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => errno::ECONNRESET,
            io::ErrorKind::TimedOut => errno::ETIMEDOUT,
            _ => errno::EFAILEDSOCKET,
        };
        Status::new(
            code,
            format!("{}: cannot connect to etcd at {addr}: {e}", self.url),
        )
    }

    fn http_error(&self, addr: SocketAddr, e: hyper::Error) -> Status {
        Status::new(
            errno::EFAILEDSOCKET,
            format!(
                "{}: HTTP exchange with etcd at {addr} failed: {e}",
                self.url
            ),
        )
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
                let result = match watch.message(&self.url).await {
                    Ok(message) => self.watch_result(&message),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(WatchResult::Changes(changes)) => self.pending.extend(changes),
                    Ok(WatchResult::Created) => {}
                    Err(e) => {
                        tracing::warn!(
                            url = %self.url,
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

/// The task driving an HTTP connection, stopped when dropped.
#[derive(Debug)]
struct ConnTask(JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Splits what follows `etcd://` into the endpoint (`host:port`) and the key prefix
/// (starting with `/`, without trailing slashes). The error is the reason the URL is bad.
fn parse_url(rest: &str) -> Result<(String, String), String> {
    let Some((authority, path)) = rest.split_once('/') else {
        return Err("no key prefix (expected etcd://host:port/prefix)".to_owned());
    };
    if authority.is_empty() {
        return Err("no etcd endpoint (expected etcd://host:port/prefix)".to_owned());
    }
    if authority.contains(',') {
        return Err("only one etcd endpoint is supported".to_owned());
    }
    if authority.contains(char::is_whitespace) || authority.contains('@') {
        return Err(format!("`{authority}` is not host:port"));
    }
    split_entry(authority)?;
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return Err("empty key prefix (expected etcd://host:port/prefix)".to_owned());
    }
    Ok((authority.to_owned(), format!("/{path}")))
}

/// The end of the range of keys starting with `key` (etcd's `GetPrefixRangeEnd`): `key` with
/// its last byte below 0xff incremented and what follows it dropped; `[0]` (every key) when
/// all bytes are 0xff.
fn range_end(key: &[u8]) -> Vec<u8> {
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
        assert_eq!(ns.authority, "127.0.0.1:2379");
        assert_eq!(ns.key, b"/services/echo/");
        assert_eq!(ns.range_end, b"/services/echo0");
        assert_eq!(ns.url, "etcd://127.0.0.1:2379/services/echo");

        let ns = EtcdNamingService::new("etcd.local:2379/a/b//").unwrap();
        assert_eq!(ns.authority, "etcd.local:2379");
        assert_eq!(ns.key, b"/a/b/");

        let ns = EtcdNamingService::new("[::1]:2379/p").unwrap();
        assert_eq!(ns.authority, "[::1]:2379");
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
