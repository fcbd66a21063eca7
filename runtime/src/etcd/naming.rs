//! `etcd://`: servers registered as keys in etcd, watched for changes.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::client::{range_end, EtcdClient, EtcdUrl, REQUEST_TIMEOUT};
use super::generated::etcdserverpb::{
    watch_request, RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use super::generated::mvccpb::event::EventType;
use crate::naming::list::split_entry;
use crate::naming::{parse_entry, BoxFuture, NamingService, ServerNode};
use crate::{errno, Error, Status, Streaming};

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
/// A server registers itself with [`ServerBuilder::register`](crate::ServerBuilder::register)
/// (or [`EtcdRegistration`](super::EtcdRegistration)), or by hand with
/// `etcdctl put /services/echo/host-1 '10.0.0.1:8000'` (ideally with a lease, so that its key
/// disappears when it dies), and leaves with `etcdctl del /services/echo/host-1`.
///
/// etcd is called through its gRPC API (`etcdserverpb.KV/Range`, `etcdserverpb.Watch/Watch`)
/// with stubs Brisk generates from etcd's `.proto` files, over a Brisk [`Channel`](crate::Channel):
/// one HTTP/2 connection per endpoint carries the listing and the watch. Several endpoints,
/// comma-separated (`etcd://10.0.0.1:2379,10.0.0.2:2379/services/echo`), are balanced round
/// robin.
///
/// The first [`next`](NamingService::next) lists the keys and fails if etcd cannot be
/// reached ([`errno::ECONNREFUSED`], [`errno::ERPCTIMEDOUT`], ... with the URL and the
/// reason; connecting may take 3 s and the request 5 s at most). It also starts a watch on
/// the prefix; each later call returns when a change seen by the watch changes the list.
/// If the watch breaks (etcd restarted, the connection dropped, the watch was compacted),
/// the keys are listed again and a new watch started (through a new channel, so hostnames
/// are resolved again), after a pause of at least a second since the last failure: a later
/// call returns the new list if it differs, or fails if etcd still cannot be reached
/// ([`errno::EHOSTDOWN`] too, while Brisk's health check has not reconnected to the endpoint,
/// as for any channel). A dead peer that never closes the connection is not detected.
///
/// Plain HTTP/2 (no TLS) and no authentication. Needs brisk's `etcd` feature.
///
/// ```no_run
/// use brisk::etcd::EtcdNamingService;
/// use brisk::naming::NamingService;
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
    url: EtcdUrl,
    /// The clients, once made (again after a failure).
    client: Option<EtcdClient>,
    /// The first key of the range: the prefix followed by `/`.
    key: Vec<u8>,
    /// The end of the range (excluded).
    range_end: Vec<u8>,
    /// The servers, by key, as last seen.
    nodes: BTreeMap<Vec<u8>, ServerNode>,
    /// Changes received but not applied to `nodes` yet.
    pending: VecDeque<Change>,
    /// The watch's responses, while it is running.
    watch: Option<Streaming<WatchResponse>>,
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
            .field("url", &self.url.url)
            .field("servers", &self.nodes.len())
            .field("watching", &self.watch.is_some())
            .finish()
    }
}

/// One change a watch reported.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// The key was set to the value.
    Put(Vec<u8>, Vec<u8>),
    /// The key was deleted.
    Delete(Vec<u8>),
}

impl EtcdNamingService {
    /// Parses what follows `etcd://`: `host:port/prefix`, as in `127.0.0.1:2379/services/echo`
    /// (trailing slashes are ignored: `/services/echo/` is the same prefix), or several
    /// endpoints, comma-separated. Nothing is contacted until the first
    /// [`next`](NamingService::next).
    ///
    /// Fails with [`errno::EINVAL`] if an endpoint has no port, a port that is not a number
    /// in 1..=65535, or an empty host, and if the prefix is missing or empty.
    ///
    /// ```
    /// use brisk::{errno, etcd::EtcdNamingService};
    ///
    /// assert!(EtcdNamingService::new("127.0.0.1:2379/services/echo").is_ok());
    /// let err = EtcdNamingService::new("127.0.0.1:2379").unwrap_err(); // no prefix
    /// assert_eq!(err.code(), errno::EINVAL);
    /// ```
    pub fn new(rest: &str) -> Result<Self, Error> {
        let url = EtcdUrl::parse(rest)
            .map_err(|reason| Error::invalid(format!("etcd://{rest}: {reason}")))?;
        let mut key = url.prefix.clone().into_bytes();
        key.push(b'/');
        let range_end = range_end(&key);
        Ok(EtcdNamingService {
            url,
            client: None,
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
                Change::Put(key, value) => match parse_value(&self.url.url, key, value).await {
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

    /// Waits until at least [`RETRY_INTERVAL`] has passed since the last failure. (`&mut`:
    /// the service is `Send` but not `Sync`, its watch stream being so, and `next`'s future
    /// must be `Send`.)
    async fn back_off(&mut self) {
        if let Some(failed) = self.last_failure {
            tokio::time::sleep_until(failed + RETRY_INTERVAL).await;
        }
    }

    /// Lists the keys and starts a watch from the revision listed; replaces `nodes` and the
    /// watch only when both succeeded (so a cancelled or failed attempt changes nothing).
    async fn sync(&mut self) -> Result<(), Status> {
        let client = match &self.client {
            Some(client) => client.clone(),
            None => EtcdClient::connect(&self.url).await?,
        };
        let listed = client
            .kv
            .range(RangeRequest {
                key: self.key.clone(),
                range_end: self.range_end.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| client.failed("listing the keys", e))?;
        let revision = listed
            .header
            .map(|header| header.revision)
            .ok_or_else(|| client.bad_response("the range response has no header"))?;
        let mut nodes = BTreeMap::new();
        for kv in listed.kvs {
            if let Some(node) = parse_value(&self.url.url, &kv.key, &kv.value).await {
                nodes.insert(kv.key, node);
            }
        }
        let watch = self.start_watch(&client, revision + 1).await?;
        self.client = Some(client);
        self.nodes = nodes;
        self.pending.clear();
        self.watch = Some(watch);
        self.synced = true;
        Ok(())
    }

    /// Opens a watch over the prefix from `revision`, up to etcd's confirmation. The request
    /// stream stays open for as long as the watch runs, as etcd's own client keeps it (one
    /// stream could carry more watches; this one carries one).
    async fn start_watch(
        &mut self,
        client: &EtcdClient,
        revision: i64,
    ) -> Result<Streaming<WatchResponse>, Status> {
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: self.key.clone(),
                    range_end: self.range_end.clone(),
                    start_revision: revision,
                    ..Default::default()
                },
            )),
        };
        let requests = futures_util::stream::once(std::future::ready(create))
            .chain(futures_util::stream::pending());
        let opened = async {
            let mut watch = client.watch.watch(requests).await?;
            let created = watch.message().await?;
            Ok::<_, Status>((watch, created))
        };
        let (watch, created) = tokio::time::timeout(REQUEST_TIMEOUT, opened)
            .await
            .map_err(|_| {
                Status::new(
                    errno::ERPCTIMEDOUT,
                    format!(
                        "{}: starting the watch timed out after {REQUEST_TIMEOUT:?}",
                        self.url.url
                    ),
                )
            })?
            .map_err(|e| client.failed("starting the watch", e))?;
        let Some(created) = created else {
            return Err(
                client.bad_response("etcd ended the watch stream before creating the watch")
            );
        };
        match watch_result(&self.url.url, created)? {
            WatchResult::Created => Ok(watch),
            WatchResult::Changes(_) => {
                Err(client.bad_response("the first watch response is not the watch's creation"))
            }
        }
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
                let result = match watch.message().await {
                    Ok(Some(response)) => watch_result(&self.url.url, response),
                    Ok(None) => Err(Status::new(
                        errno::EEOF,
                        format!("{}: etcd ended the watch stream", self.url.url),
                    )),
                    Err(e) => Err(Status::new(
                        e.code(),
                        format!("{}: the watch broke: {}", self.url.url, e.message()),
                    )),
                };
                match result {
                    Ok(WatchResult::Changes(changes)) => self.pending.extend(changes),
                    Ok(WatchResult::Created) => {}
                    Err(e) => {
                        tracing::warn!(
                            url = %self.url.url,
                            error = %e,
                            "etcd watch broke; listing the keys again"
                        );
                        // A new channel for the next attempt: hostnames resolved again.
                        self.watch = None;
                        self.client = None;
                        self.last_failure = Some(Instant::now());
                    }
                }
            }
        })
    }
}

/// A watch response's meaning.
#[derive(Debug, PartialEq, Eq)]
enum WatchResult {
    /// The watch was created.
    Created,
    /// Keys changed (possibly none: a progress notification).
    Changes(Vec<Change>),
}

/// What `response` says, or the error of a canceled watch.
fn watch_result(url: &str, response: WatchResponse) -> Result<WatchResult, Status> {
    if response.canceled {
        return Err(Status::new(
            errno::ECANCELED,
            format!(
                "{url}: etcd canceled the watch (reason `{}`, compact revision {})",
                response.cancel_reason, response.compact_revision
            ),
        ));
    }
    if response.created {
        return Ok(WatchResult::Created);
    }
    let mut changes = Vec::with_capacity(response.events.len());
    for event in response.events {
        let Some(kv) = event.kv else {
            return Err(Status::new(
                errno::ERESPONSE,
                format!("{url}: a watch event without its key"),
            ));
        };
        match EventType::try_from(event.r#type) {
            Ok(EventType::Put) => changes.push(Change::Put(kv.key, kv.value)),
            Ok(EventType::Delete) => changes.push(Change::Delete(kv.key)),
            Err(_) => {
                return Err(Status::new(
                    errno::ERESPONSE,
                    format!("{url}: unknown watch event type {}", event.r#type),
                ))
            }
        }
    }
    Ok(WatchResult::Changes(changes))
}

/// The server a key's value names, or `None` (logged) when the value does not parse.
async fn parse_value(url: &str, key: &[u8], value: &[u8]) -> Option<ServerNode> {
    let key = String::from_utf8_lossy(key);
    let Ok(entry) = std::str::from_utf8(value) else {
        tracing::warn!(url, %key, "skipping an etcd key: its value is not UTF-8");
        return None;
    };
    let parsed = match split_entry(entry) {
        Ok(_) => parse_entry(entry).await.map_err(|e| e.to_string()),
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

#[cfg(test)]
mod tests {
    use super::super::generated::mvccpb::{Event, KeyValue};
    use super::*;

    #[test]
    fn parses_urls() {
        let ns = EtcdNamingService::new("127.0.0.1:2379/services/echo").unwrap();
        assert_eq!(ns.url.endpoints, ["127.0.0.1:2379"]);
        assert_eq!(ns.key, b"/services/echo/");
        assert_eq!(ns.range_end, b"/services/echo0");
        assert_eq!(ns.url.url, "etcd://127.0.0.1:2379/services/echo");

        let ns = EtcdNamingService::new("etcd.local:2379,[::1]:2379/a/b//").unwrap();
        assert_eq!(ns.url.endpoints, ["etcd.local:2379", "[::1]:2379"]);
        assert_eq!(ns.key, b"/a/b/");
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
            "h1:2379,/prefix",
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

    fn kv(key: &[u8], value: &[u8]) -> Option<KeyValue> {
        Some(KeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            ..Default::default()
        })
    }

    #[test]
    fn reads_watch_responses() {
        let url = "etcd://127.0.0.1:2379/s";
        let created = WatchResponse {
            created: true,
            ..Default::default()
        };
        assert_eq!(watch_result(url, created), Ok(WatchResult::Created));
        let events = WatchResponse {
            events: vec![
                Event {
                    r#type: EventType::Put as i32,
                    kv: kv(b"/s/a", b"127.0.0.1:8000"),
                    prev_kv: None,
                },
                Event {
                    r#type: EventType::Delete as i32,
                    kv: kv(b"/s/b", b""),
                    prev_kv: None,
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            watch_result(url, events),
            Ok(WatchResult::Changes(vec![
                Change::Put(b"/s/a".to_vec(), b"127.0.0.1:8000".to_vec()),
                Change::Delete(b"/s/b".to_vec()),
            ]))
        );
        let canceled = WatchResponse {
            canceled: true,
            compact_revision: 7,
            cancel_reason: "mvcc: required revision has been compacted".into(),
            ..Default::default()
        };
        let err = watch_result(url, canceled).unwrap_err();
        assert_eq!(err.code(), errno::ECANCELED);
        assert!(err.message().contains("compact revision 7"), "{err:?}");
        for bad in [
            Event {
                r#type: 9,
                kv: kv(b"/s/a", b""),
                prev_kv: None,
            },
            Event {
                r#type: 0,
                kv: None,
                prev_kv: None,
            },
        ] {
            let response = WatchResponse {
                events: vec![bad],
                ..Default::default()
            };
            assert_eq!(
                watch_result(url, response).unwrap_err().code(),
                errno::ERESPONSE
            );
        }
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
