//! Servers registering themselves in a real etcd on loopback (`ServerBuilder::register`,
//! `EtcdRegistration`): the key and its lease, calls through an `etcd://` channel, deregistering
//! on stop, renewal, a lost lease put back, expiry after a crash, and refusals.

use std::time::{Duration, Instant};

use brisk::etcd::EtcdRegistration;
use brisk::{errno, Channel, Server};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::etcd::Etcd;
use brisk_tests::Echo;

/// The shortest lease etcd grants (its minimum is about 2 s with default settings).
const TTL: Duration = Duration::from_secs(2);

/// Polls `probe` every 50 ms until it holds, for `within` at most; whether it held.
async fn eventually(within: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn builder() -> brisk::ServerBuilder {
    Server::builder().add_service(EchoServiceServer::new(Echo))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_registers_is_called_through_etcd_and_deregisters_on_stop() {
    let etcd = Etcd::start();
    let url = format!("etcd://{}/services/echo", etcd.endpoint());
    let server = builder()
        .register(&url)
        .registration_ttl(TTL)
        .start("127.0.0.1:0")
        .await
        .expect("the server starts and registers");
    let address = server.local_addr().to_string();
    let key = format!("/services/echo/{address}");
    let (value, lease) = etcd.get(&key).expect("the server's key");
    assert_eq!(value, address);
    assert_ne!(lease, 0, "the key lives on a lease");

    // A cluster channel finds it there.
    let channel = Channel::builder()
        .timeout(Duration::from_secs(5))
        .connect_cluster(&url, "rr")
        .await
        .expect("an etcd:// channel");
    let reply = EchoServiceClient::new(channel)
        .echo(EchoRequest {
            message: "found through etcd".into(),
        })
        .await
        .expect("a call through etcd");
    assert_eq!(reply.message, "found through etcd");

    // Stopping takes it out of etcd before anything else.
    server.stop().await;
    assert_eq!(etcd.get(&key), None, "deregistered when stop returns");
    server.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_renewed_and_a_lost_one_is_replaced() {
    let etcd = Etcd::start();
    let url = format!("etcd://{}/renewed", etcd.endpoint());
    let registration = EtcdRegistration::register(&url, "10.1.2.3:80 canary", TTL)
        .await
        .expect("registered");
    assert_eq!(registration.key(), "/renewed/10.1.2.3:80");
    let first = registration.lease_id();
    assert_eq!(
        etcd.get("/renewed/10.1.2.3:80"),
        Some(("10.1.2.3:80 canary".to_owned(), first)),
        "the value is the entry as given, tag included"
    );

    // Past twice the TTL the key is still there, on the same lease.
    tokio::time::sleep(TTL * 2 + Duration::from_millis(500)).await;
    assert_eq!(
        etcd.get("/renewed/10.1.2.3:80").map(|(_, lease)| lease),
        Some(first)
    );

    // Someone revokes the lease: the key goes (unless a renewal in flight puts it back at
    // once), and the next renewal puts it back on a new lease.
    etcd.revoke(first);
    assert!(
        etcd.get("/renewed/10.1.2.3:80")
            .is_none_or(|(_, lease)| lease != first),
        "the revoked lease's key is gone"
    );
    let back = eventually(TTL * 3, || {
        etcd.get("/renewed/10.1.2.3:80")
            .is_some_and(|(_, lease)| lease != 0 && lease != first)
    })
    .await;
    assert!(back, "registered again on a new lease");
    assert_ne!(registration.lease_id(), first);

    registration.deregister().await.expect("deregistered");
    assert_eq!(etcd.get("/renewed/10.1.2.3:80"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_not_deregistered_expires_with_its_lease() {
    let etcd = Etcd::start();
    let url = format!("etcd://{}/crashed", etcd.endpoint());
    let registration = EtcdRegistration::register(&url, "10.1.2.3:80", TTL)
        .await
        .expect("registered");
    // As if the process died: renewals stop, nothing is revoked.
    drop(registration);
    assert!(etcd.get("/crashed/10.1.2.3:80").is_some());
    let gone = eventually(TTL * 4, || etcd.get("/crashed/10.1.2.3:80").is_none()).await;
    assert!(gone, "the key outlived its lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_that_cannot_be_made_fail_the_start() {
    // Nothing listens on etcd's port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let err = builder()
        .register(format!("etcd://127.0.0.1:{port}/services/echo"))
        .start("127.0.0.1:0")
        .await
        .expect_err("etcd is not there");
    assert_eq!(err.code(), errno::ECONNREFUSED, "{err}");

    let etcd = Etcd::start();
    let url = format!("etcd://{}/services/echo", etcd.endpoint());
    // 0.0.0.0 is no address to dial: say which one to register.
    let err = builder()
        .register(&url)
        .start("0.0.0.0:0")
        .await
        .expect_err("nothing to advertise");
    assert_eq!(err.code(), errno::EINVAL, "{err}");
    assert!(err.to_string().contains("advertise"), "{err}");
    let server = builder()
        .register(&url)
        .advertise("127.0.0.1:1234")
        .start("0.0.0.0:0")
        .await
        .expect("advertised");
    assert!(etcd.get("/services/echo/127.0.0.1:1234").is_some());
    server.shutdown().await;
    assert_eq!(etcd.get("/services/echo/127.0.0.1:1234"), None);

    // Schemes registration does not know, and bad URLs.
    for url in ["consul://127.0.0.1:8500/services", "etcd://127.0.0.1:2379"] {
        let err = builder()
            .register(url)
            .start("127.0.0.1:0")
            .await
            .expect_err(url);
        assert_eq!(err.code(), errno::EINVAL, "{url}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistering_after_the_lease_was_lost_is_no_error() {
    let etcd = Etcd::start();
    // Upper case: schemes match without regard to case.
    let url = format!("ETCD://{}/lost", etcd.endpoint());
    // A long TTL: no renewal puts the key back before the deregistration.
    let registration = EtcdRegistration::register(&url, "10.1.2.3:80", Duration::from_secs(60))
        .await
        .expect("registered");
    etcd.revoke(registration.lease_id());
    assert_eq!(etcd.get("/lost/10.1.2.3:80"), None);
    // etcd answers NOT_FOUND for the revoked lease: the key is gone, as asked.
    registration
        .deregister()
        .await
        .expect("a lease gone already is no failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_outlives_an_etcd_restart() {
    let mut etcd = Etcd::start();
    let url = format!("etcd://{}/restarted", etcd.endpoint());
    let registration = EtcdRegistration::register(&url, "10.1.2.3:80", TTL)
        .await
        .expect("registered");
    // Down for longer than the lease: renewals fail meanwhile (and are logged).
    etcd.stop();
    tokio::time::sleep(TTL * 2).await;
    etcd.restart();
    // Renewals reach the restarted etcd (through a new channel) and keep or restore the key.
    let back = eventually(TTL * 5, || etcd.get("/restarted/10.1.2.3:80").is_some()).await;
    assert!(back, "registered again after the restart");
    registration.deregister().await.expect("deregistered");
    assert_eq!(etcd.get("/restarted/10.1.2.3:80"), None);
}
