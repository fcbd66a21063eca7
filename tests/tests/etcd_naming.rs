//! The `etcd://` naming service against a real etcd server on loopback.

use std::time::{Duration, Instant};

use brisk::errno;
use brisk::naming::from_url;
use brisk_tests::etcd::Etcd;
use brisk_tests::naming::{next_within, node};
use tokio::time::timeout;

/// How soon a change in etcd must reach `next`.
const CHANGE_DEADLINE: Duration = Duration::from_secs(1);

/// Hang guard for calls that answer at once or fail.
const HANG_GUARD: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_keys_under_the_prefix() {
    let etcd = Etcd::start();
    etcd.put("/prefix/a", "127.0.0.1:8001");
    etcd.put("/prefix/b", "127.0.0.1:8002 canary");
    etcd.put("/prefix/bad", "not an address");
    etcd.put("/prefixx/a", "127.0.0.1:9001");
    etcd.put("/prefix", "127.0.0.1:9002");
    etcd.put("/other/a", "127.0.0.1:9003");

    let mut ns = from_url(&format!("etcd://{}/prefix", etcd.endpoint())).expect("etcd URL");
    let list = next_within(&mut ns, HANG_GUARD).await;
    assert_eq!(
        list,
        [node("127.0.0.1:8001", ""), node("127.0.0.1:8002", "canary")]
    );

    etcd.put("/prefix/c", "127.0.0.1:8003 1/3");
    let list = next_within(&mut ns, CHANGE_DEADLINE).await;
    assert_eq!(
        list,
        [
            node("127.0.0.1:8001", ""),
            node("127.0.0.1:8002", "canary"),
            node("127.0.0.1:8003", "1/3"),
        ]
    );

    etcd.delete("/prefix/a");
    let list = next_within(&mut ns, CHANGE_DEADLINE).await;
    assert_eq!(
        list,
        [
            node("127.0.0.1:8002", "canary"),
            node("127.0.0.1:8003", "1/3")
        ]
    );

    // An unparsable value, keys outside the prefix and a duplicate change nothing; the next
    // real change returns the list without them.
    etcd.put("/prefix/bad2", "127.0.0.1:notaport");
    etcd.put("/prefixx/b", "127.0.0.1:9004");
    etcd.put("/prefix", "127.0.0.1:9005");
    etcd.put("/prefix/c-again", "127.0.0.1:8003 1/3");
    etcd.put("/prefix/d", "127.0.0.1:8004");
    let list = next_within(&mut ns, CHANGE_DEADLINE).await;
    assert_eq!(
        list,
        [
            node("127.0.0.1:8002", "canary"),
            node("127.0.0.1:8003", "1/3"),
            node("127.0.0.1:8004", ""),
        ]
    );

    // A server whose value turns unparsable leaves the list.
    etcd.put("/prefix/b", "garbage");
    let list = next_within(&mut ns, CHANGE_DEADLINE).await;
    assert_eq!(
        list,
        [node("127.0.0.1:8003", "1/3"), node("127.0.0.1:8004", "")]
    );

    // Changing a tag is a change.
    etcd.put("/prefix/d", "127.0.0.1:8004 10");
    let list = next_within(&mut ns, CHANGE_DEADLINE).await;
    assert_eq!(
        list,
        [node("127.0.0.1:8003", "1/3"), node("127.0.0.1:8004", "10")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_prefix_gives_an_empty_list() {
    let etcd = Etcd::start();
    let mut ns = from_url(&format!("etcd://{}/nothing/here/", etcd.endpoint())).unwrap();
    assert_eq!(next_within(&mut ns, HANG_GUARD).await, []);
    etcd.put("/nothing/here/x", "127.0.0.1:7000");
    assert_eq!(
        next_within(&mut ns, CHANGE_DEADLINE).await,
        [node("127.0.0.1:7000", "")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_fails_at_once_and_retries_slowly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port(); // closed again when the listener drops
    let mut ns = from_url(&format!("etcd://127.0.0.1:{port}/prefix")).unwrap();

    let err = timeout(HANG_GUARD, ns.next())
        .await
        .expect("the first next fails instead of hanging")
        .expect_err("nothing listens there");
    assert_eq!(err.code(), errno::ECONNREFUSED, "{err}");
    assert!(
        err.message().contains(&format!("127.0.0.1:{port}")),
        "the error names the endpoint: {err}"
    );

    // The next attempt waits a second after the failure: no busy loop.
    let started = Instant::now();
    let err = timeout(HANG_GUARD, ns.next())
        .await
        .expect("no hang")
        .expect_err("still nothing there");
    assert_eq!(err.code(), errno::ECONNREFUSED, "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retried after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_an_etcd_restart() {
    let mut etcd = Etcd::start();
    etcd.put("/svc/a", "127.0.0.1:8001");
    let mut ns = from_url(&format!("etcd://{}/svc", etcd.endpoint())).unwrap();
    assert_eq!(
        next_within(&mut ns, HANG_GUARD).await,
        [node("127.0.0.1:8001", "")]
    );

    etcd.stop();
    let err = timeout(HANG_GUARD, ns.next())
        .await
        .expect("a broken watch is noticed")
        .expect_err("etcd is down");
    assert_eq!(err.code(), errno::ECONNREFUSED, "{err}");

    etcd.restart();
    etcd.put("/svc/b", "127.0.0.1:8002");
    // As the channel does: call again after an error.
    let deadline = Instant::now() + HANG_GUARD;
    let list = loop {
        match timeout(HANG_GUARD, ns.next()).await.expect("no hang") {
            Ok(list) => break list,
            Err(err) if Instant::now() < deadline => {
                eprintln!("still reconnecting: {err}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(err) => panic!("no reconnection: {err}"),
        }
    };
    assert_eq!(
        list,
        [node("127.0.0.1:8001", ""), node("127.0.0.1:8002", "")]
    );

    // The new watch works.
    etcd.delete("/svc/a");
    assert_eq!(
        next_within(&mut ns, CHANGE_DEADLINE).await,
        [node("127.0.0.1:8002", "")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_endpoints_outlive_a_dead_one() {
    let etcd = Etcd::start();
    etcd.put("/multi/a", "127.0.0.1:8001");
    // A port nothing listens on (the listener closes it again as it drops).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap();
    // Both orders: the dead endpoint is tried first in one of them.
    for endpoints in [
        format!("{dead},{}", etcd.endpoint()),
        format!("{},{dead}", etcd.endpoint()),
    ] {
        let mut ns = from_url(&format!("etcd://{endpoints}/multi")).expect("etcd URL");
        assert_eq!(
            next_within(&mut ns, HANG_GUARD).await,
            [node("127.0.0.1:8001", "")],
            "{endpoints}"
        );
        etcd.put("/multi/b", "127.0.0.1:8002");
        assert_eq!(
            next_within(&mut ns, CHANGE_DEADLINE).await,
            [node("127.0.0.1:8001", ""), node("127.0.0.1:8002", "")],
            "{endpoints}"
        );
        etcd.delete("/multi/b");
    }
}
