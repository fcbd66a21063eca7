//! A server registering itself in etcd (feature `etcd`): the other side of `etcd://` naming,
//! as rpcx's and brpc users' etcd plug-ins do it. The key lives on a lease that a background
//! task keeps alive, so a server that dies leaves the list within the lease's TTL, and one that
//! stops deregisters at once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::etcd_gateway::{parse_url, Gateway};
use super::list::split_entry;
use crate::{errno, Status};

/// The shortest lease: etcd grants at least its own minimum (a few seconds) anyway.
const MIN_TTL: Duration = Duration::from_secs(1);

/// A server's key in etcd, kept alive until [`deregister`](EtcdRegistration::deregister)
/// (or until it is dropped: the key then goes when its lease expires).
///
/// Under `etcd://host:port/prefix`, the key is `<prefix>/<address>` and its value the address
/// (with a tag after whitespace, if given): what [`EtcdNamingService`](super::EtcdNamingService)
/// lists. The key is put with a lease of `ttl`, renewed every third of it. If the lease is lost
/// all the same (etcd was unreachable for longer than the TTL, or someone revoked it), the
/// next renewal grants a new one and puts the key again; failures are logged and retried at
/// the next renewal.
///
/// [`ServerBuilder::register`](crate::ServerBuilder::register) does this for a server: it
/// registers once the port is open and deregisters first thing when the server stops.
///
/// ```no_run
/// use std::time::Duration;
/// use brisk::naming::EtcdRegistration;
///
/// # async fn demo() -> Result<(), brisk::Status> {
/// let registration = EtcdRegistration::register(
///     "etcd://127.0.0.1:2379/services/echo",
///     "10.0.0.7:8000",
///     Duration::from_secs(10),
/// )
/// .await?;
/// assert_eq!(registration.key(), "/services/echo/10.0.0.7:8000");
/// // ... serve ...
/// registration.deregister().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EtcdRegistration {
    gateway: Gateway,
    key: String,
    /// The lease the key lives on now (the keeper replaces it when it is lost).
    lease: Arc<AtomicI64>,
    keeper: Option<JoinHandle<()>>,
}

impl EtcdRegistration {
    /// Puts `address` (`host:port`, optionally followed by whitespace and a tag, as a
    /// `list://` entry) under the prefix of `url` (`etcd://host:port/prefix`; the scheme may be
    /// left out) on a lease of `ttl`, and keeps it alive in the background.
    ///
    /// Fails with EINVAL for a bad URL or address, and with the error of reaching etcd
    /// (ECONNREFUSED, ETIMEDOUT, EHTTP, ...) when the first registration fails.
    pub async fn register(
        url: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<EtcdRegistration, Status> {
        let rest = url.strip_prefix("etcd://").unwrap_or(url);
        let url = format!("etcd://{rest}");
        let (authority, prefix) = parse_url(rest)
            .map_err(|reason| Status::new(errno::EINVAL, format!("{url}: {reason}")))?;
        let entry = address.trim();
        let (host_port, _tag) = split_entry(entry).map_err(|reason| {
            Status::new(
                errno::EINVAL,
                format!("{url}: cannot register `{address}`: {reason}"),
            )
        })?;
        let gateway = Gateway { url, authority };
        let key = format!("{prefix}/{host_port}");
        let lease = Arc::new(AtomicI64::new(0));
        let granted = grant_and_put(&gateway, &key, entry, whole_seconds(ttl), &lease).await?;
        let keeper = tokio::spawn(keep_alive(
            gateway.clone(),
            key.clone(),
            entry.to_owned(),
            granted,
            Arc::clone(&lease),
        ));
        tracing::info!(url = %gateway.url, %key, "registered in etcd");
        Ok(EtcdRegistration {
            gateway,
            key,
            lease,
            keeper: Some(keeper),
        })
    }

    /// The key: `<prefix>/<host:port>`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The id of the lease the key lives on now.
    pub fn lease_id(&self) -> i64 {
        self.lease.load(Ordering::Relaxed)
    }

    /// Stops renewing and revokes the lease, which deletes the key at once: watchers see the
    /// server leave before it stops answering.
    pub async fn deregister(mut self) -> Result<(), Status> {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
            let _ = keeper.await;
        }
        let lease = self.lease.load(Ordering::Relaxed);
        match self
            .gateway
            .call("/v3/lease/revoke", &json!({ "ID": lease.to_string() }))
            .await
        {
            Ok(_) => {}
            // Expired or revoked already: the key is gone either way.
            Err(e) if e.message().contains("lease not found") => {}
            Err(e) => return Err(e),
        }
        tracing::info!(url = %self.gateway.url, key = %self.key, "deregistered from etcd");
        Ok(())
    }
}

impl Drop for EtcdRegistration {
    fn drop(&mut self) {
        // Not deregistered: the key goes when its lease expires.
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
    }
}

/// `ttl` in whole seconds, rounded up (etcd's leases count seconds), at least one.
fn whole_seconds(ttl: Duration) -> u64 {
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    seconds.max(MIN_TTL.as_secs())
}

/// Grants a lease of `ttl_seconds`, records its id in `lease` (before the key is put, so a
/// deregistration racing with this revokes the lease the key is on), and puts `key` = `value`
/// on it. The TTL etcd granted (at least its own minimum).
async fn grant_and_put(
    gateway: &Gateway,
    key: &str,
    value: &str,
    ttl_seconds: u64,
    lease: &AtomicI64,
) -> Result<Duration, Status> {
    let granted = gateway
        .call(
            "/v3/lease/grant",
            &json!({ "TTL": ttl_seconds.to_string() }),
        )
        .await?;
    let id = granted
        .get("ID")
        .and_then(as_i64)
        .filter(|id| *id != 0)
        .ok_or_else(|| gateway.bad_response(format!("a lease grant without an ID: {granted}")))?;
    let granted_ttl = granted
        .get("TTL")
        .and_then(as_i64)
        .and_then(|ttl| u64::try_from(ttl).ok())
        .filter(|ttl| *ttl > 0)
        .unwrap_or(ttl_seconds);
    lease.store(id, Ordering::Relaxed);
    gateway
        .call(
            "/v3/kv/put",
            &json!({
                "key": BASE64.encode(key),
                "value": BASE64.encode(value),
                "lease": id.to_string(),
            }),
        )
        .await?;
    Ok(Duration::from_secs(granted_ttl))
}

/// Renews the lease every third of `ttl`; grants a new one and puts the key again when etcd
/// says it is gone.
async fn keep_alive(
    gateway: Gateway,
    key: String,
    value: String,
    ttl: Duration,
    lease: Arc<AtomicI64>,
) {
    let mut ticks = tokio::time::interval(ttl / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is now: the lease is fresh
    loop {
        ticks.tick().await;
        let id = lease.load(Ordering::Relaxed);
        let renewed = gateway
            .call("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))
            .await;
        let alive = match &renewed {
            // `{"result": {"ID": ..., "TTL": ...}}`; no TTL (or 0) once the lease is gone.
            Ok(answer) => answer
                .pointer("/result/TTL")
                .and_then(as_i64)
                .is_some_and(|ttl| ttl > 0),
            Err(e) => {
                tracing::warn!(url = %gateway.url, %key, error = %e, "renewing the etcd lease failed; trying again");
                continue;
            }
        };
        if alive {
            continue;
        }
        match grant_and_put(&gateway, &key, &value, ttl.as_secs(), &lease).await {
            Ok(_) => {
                tracing::info!(url = %gateway.url, %key, "the etcd lease was lost: registered again");
            }
            Err(e) => {
                tracing::warn!(url = %gateway.url, %key, error = %e, "registering again in etcd failed; trying again")
            }
        }
    }
}

/// etcd's JSON gateway writes 64-bit integers as strings.
fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::String(text) => text.parse().ok(),
        other => other.as_i64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_urls_and_addresses_are_einval_before_any_io() {
        for (url, address) in [
            ("etcd://127.0.0.1:2379", "10.0.0.1:8000"),
            ("etcd://127.0.0.1:2379/", "10.0.0.1:8000"),
            ("etcd://a:1,b:2/services", "10.0.0.1:8000"),
            ("etcd://127.0.0.1:2379/services", "no port"),
            ("etcd://127.0.0.1:2379/services", ""),
        ] {
            let err = EtcdRegistration::register(url, address, Duration::from_secs(5))
                .await
                .unwrap_err();
            assert_eq!(err.code(), errno::EINVAL, "{url} {address}: {err}");
        }
    }

    #[test]
    fn ttls_are_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(10)), 10);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn reads_the_gateways_integers() {
        assert_eq!(as_i64(&json!("7587869389282941")), Some(7587869389282941));
        assert_eq!(as_i64(&json!(10)), Some(10));
        assert_eq!(as_i64(&json!("x")), None);
    }
}
