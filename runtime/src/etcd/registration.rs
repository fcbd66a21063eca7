//! A server registering itself in etcd: the other side of `etcd://` naming, as rpcx's and brpc
//! users' etcd plug-ins do it. The key lives on a lease that a background task keeps alive, so
//! a server that dies leaves the list within the lease's TTL, and one that stops deregisters at
//! once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::client::{EtcdClient, EtcdUrl, REQUEST_TIMEOUT};
use super::generated::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
};
use crate::naming::list::split_entry;
use crate::naming::{BoxFuture, Registration};
use crate::{errno, Status};

/// How long deregistering waits for a broken connection to etcd to come back.
const REVOKE_PATIENCE: Duration = Duration::from_secs(1);

/// The shortest lease: etcd grants at least its own minimum (a few seconds) anyway.
const MIN_TTL: Duration = Duration::from_secs(1);

/// A server's key in etcd, kept alive until [`deregister`](EtcdRegistration::deregister)
/// (or until it is dropped: the key then goes when its lease expires).
///
/// Under `etcd://host:port/prefix`, the key is `<prefix>/<address>` and its value the address
/// (with a tag after whitespace, if given): what [`EtcdNamingService`](super::EtcdNamingService)
/// lists. The key is put with a lease of `ttl` (`Lease/LeaseGrant`, then `KV/Put`), renewed
/// every third of it (`Lease/LeaseKeepAlive`). If the lease is lost all the same (etcd
/// was unreachable for longer than the TTL, or someone revoked it), the next renewal grants a
/// new one and puts the key again; failures are logged and retried at the next renewal.
///
/// [`ServerBuilder::register`](crate::ServerBuilder::register) does this for a server: it
/// registers once the port is open and deregisters first thing when the server stops.
///
/// ```no_run
/// use std::time::Duration;
/// use brisk::etcd::EtcdRegistration;
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
    client: EtcdClient,
    key: String,
    /// The lease the key lives on now (the keeper replaces it when it is lost).
    lease: Arc<AtomicI64>,
    keeper: Option<JoinHandle<()>>,
}

impl EtcdRegistration {
    /// Puts `address` (`host:port`, optionally followed by whitespace and a tag, as a
    /// `list://` entry) under the prefix of `url` (`etcd://host:port/prefix`, in any case; the
    /// scheme may be left out) on a lease of `ttl`, and keeps it alive in the background.
    ///
    /// Fails with EINVAL for a bad URL or address, and with the error of reaching etcd
    /// (ECONNREFUSED, ERPCTIMEDOUT, ...) when the first registration fails.
    pub async fn register(
        url: &str,
        address: &str,
        ttl: Duration,
    ) -> Result<EtcdRegistration, Status> {
        let parsed = EtcdUrl::parse(url)
            .map_err(|reason| Status::new(errno::EINVAL, format!("{url}: {reason}")))?;
        let entry = address.trim();
        let (host_port, _tag) = split_entry(entry).map_err(|reason| {
            Status::new(
                errno::EINVAL,
                format!("{}: cannot register `{address}`: {reason}", parsed.url),
            )
        })?;
        let key = format!("{}/{host_port}", parsed.prefix);
        let client = EtcdClient::connect(&parsed).await?;
        let lease = Arc::new(AtomicI64::new(0));
        let granted = grant_and_put(&client, &key, entry, whole_seconds(ttl), &lease).await?;
        let keeper = tokio::spawn(keep_alive(
            parsed,
            client.clone(),
            key.clone(),
            entry.to_owned(),
            granted,
            Arc::clone(&lease),
        ));
        tracing::info!(url = %client.url, %key, "registered in etcd");
        Ok(EtcdRegistration {
            client,
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
        let id = self.lease.load(Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        loop {
            let revoked = self.client.lease.lease_revoke(LeaseRevokeRequest { id });
            match revoked.await {
                Ok(_) => break,
                // Expired or revoked already (etcd's gRPC NOT_FOUND, "requested lease not
                // found"): the key is gone either way.
                Err(e) if e.code() == errno::ENOTFOUND => break,
                // The connection broke (etcd restarted) and is not back yet: it soon is.
                Err(e) if e.code() == errno::EHOSTDOWN && started.elapsed() < REVOKE_PATIENCE => {
                    tokio::time::sleep(REVOKE_PATIENCE / 10).await;
                }
                Err(e) => return Err(self.client.failed("revoking the lease", e)),
            }
        }
        tracing::info!(url = %self.client.url, key = %self.key, "deregistered from etcd");
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

impl Registration for EtcdRegistration {
    fn name(&self) -> String {
        format!("{} in {}", self.key, self.client.url)
    }

    fn deregister(self: Box<Self>) -> BoxFuture<'static, Result<(), Status>> {
        Box::pin(EtcdRegistration::deregister(*self))
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
    client: &EtcdClient,
    key: &str,
    value: &str,
    ttl_seconds: u64,
    lease: &AtomicI64,
) -> Result<Duration, Status> {
    let granted = client
        .lease
        .lease_grant(LeaseGrantRequest {
            ttl: i64::try_from(ttl_seconds).unwrap_or(i64::MAX),
            id: 0,
        })
        .await
        .map_err(|e| client.failed("granting a lease", e))?;
    if !granted.error.is_empty() || granted.id == 0 {
        return Err(client.bad_response(format!(
            "no lease granted (ID {}, error `{}`)",
            granted.id, granted.error
        )));
    }
    let granted_ttl = u64::try_from(granted.ttl)
        .ok()
        .filter(|ttl| *ttl > 0)
        .unwrap_or(ttl_seconds);
    lease.store(granted.id, Ordering::Relaxed);
    client
        .kv
        .put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            lease: granted.id,
            ..Default::default()
        })
        .await
        .map_err(|e| client.failed("putting the key", e))?;
    Ok(Duration::from_secs(granted_ttl))
}

/// Renews lease `id` once, on a `LeaseKeepAlive` stream of one request (etcd answers it,
/// then ends the stream as the request side ends): its remaining TTL in seconds, 0 or less
/// once it is gone. [`REQUEST_TIMEOUT`] at most.
async fn renew(client: &EtcdClient, id: i64) -> Result<i64, Status> {
    let renewed = async {
        let request = futures_util::stream::once(std::future::ready(LeaseKeepAliveRequest { id }));
        let mut responses = client.lease.lease_keep_alive(request).await?;
        responses.message().await
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, renewed).await {
        Ok(Ok(Some(response))) => Ok(response.ttl),
        Ok(Ok(None)) => {
            Err(client.bad_response("etcd ended the keep-alive stream without an answer"))
        }
        Ok(Err(e)) => Err(client.failed("renewing the lease", e)),
        Err(_) => Err(Status::new(
            errno::ERPCTIMEDOUT,
            format!(
                "{}: renewing the lease timed out after {REQUEST_TIMEOUT:?}",
                client.url
            ),
        )),
    }
}

/// Renews the lease every third of `ttl`; grants a new one and puts the key again when etcd
/// says it is gone. After a failure the next attempt goes through a new channel (hostnames
/// resolved again: etcd may have moved).
async fn keep_alive(
    url: EtcdUrl,
    mut client: EtcdClient,
    key: String,
    value: String,
    ttl: Duration,
    lease: Arc<AtomicI64>,
) {
    let mut ticks = tokio::time::interval(ttl / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is now: the lease is fresh
    let mut failed = false;
    loop {
        ticks.tick().await;
        if failed {
            match EtcdClient::connect(&url).await {
                Ok(fresh) => client = fresh,
                Err(e) => {
                    tracing::warn!(url = %url.url, %key, error = %e, "reaching etcd failed; trying again");
                    continue;
                }
            }
        }
        let id = lease.load(Ordering::Relaxed);
        match renew(&client, id).await {
            Ok(remaining) if remaining > 0 => {
                failed = false;
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(url = %client.url, %key, error = %e, "renewing the etcd lease failed; trying again");
                failed = true;
                continue;
            }
        }
        match grant_and_put(&client, &key, &value, ttl.as_secs(), &lease).await {
            Ok(_) => {
                failed = false;
                tracing::info!(url = %client.url, %key, "the etcd lease was lost: registered again");
            }
            Err(e) => {
                failed = true;
                tracing::warn!(url = %client.url, %key, error = %e, "registering again in etcd failed; trying again")
            }
        }
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
            ("etcd://a:1,/services", "10.0.0.1:8000"),
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
}
