//! Brisk's memcache client against a real memcached (Debian's, started on a free loopback port
//! and stopped after), and against a fake server that answers badly.

use std::time::Duration;

use brisk::memcache::{MemcacheRequest, MemcacheResponse, MemcacheStatus};
use brisk::{errno, Channel, Controller};
use brisk_tests::memcached::Memcached;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::builder()
        .protocol("memcache")
        .timeout(Duration::from_secs(5))
        .connect(&addr.to_string())
        .await
        .expect("a memcache channel")
}

async fn call(channel: &Channel, request: &MemcacheRequest) -> MemcacheResponse {
    channel
        .memcache(&mut Controller::new(), request)
        .await
        .expect("memcached answers")
}

#[tokio::test]
async fn every_operation_against_a_real_memcached() {
    let memcached = Memcached::start();
    let channel = channel(memcached.addr()).await;
    let mut request = MemcacheRequest::new();
    request
        .set("k", "hello", 0xf1a9, 0, 0)
        .get("k")
        .add("k", "again", 0, 0, 0)
        .add("fresh", "new", 0, 0, 0)
        .replace("missing", "x", 0, 0, 0)
        .replace("fresh", "newer", 0, 0, 0)
        .append("k", " world", 0, 0, 0)
        .prepend("k", ">> ", 0, 0, 0)
        .get("k")
        .increment("n", 5, 10, 0)
        .increment("n", 5, 10, 0)
        .decrement("n", 100, 0, 0)
        .increment("k", 1, 0, 0)
        .delete("fresh")
        .delete("fresh")
        .get("fresh")
        .touch("k", 1000)
        .touch("missing", 1000)
        .version();
    let mut response = call(&channel, &request).await;
    assert_eq!(response.reply_count(), 19);
    let cas = response.pop_set().unwrap();
    assert_ne!(cas, 0, "memcached gives every store a CAS");
    let got = response.pop_get().unwrap();
    assert_eq!(
        (&got.value[..], got.flags, got.cas),
        (&b"hello"[..], 0xf1a9, cas)
    );
    let exists = response.pop_add().unwrap_err();
    assert_eq!(exists.status, Some(MemcacheStatus::KeyExists));
    response.pop_add().unwrap();
    let missing = response.pop_replace().unwrap_err();
    assert_eq!(missing.status, Some(MemcacheStatus::KeyNotFound));
    assert_eq!(missing.message, "Not found");
    response.pop_replace().unwrap();
    response.pop_append().unwrap();
    response.pop_prepend().unwrap();
    assert_eq!(response.pop_get().unwrap().value, ">> hello world");
    assert_eq!(
        response.pop_increment().unwrap(),
        10,
        "a missing key starts at initial"
    );
    assert_eq!(response.pop_increment().unwrap(), 15);
    assert_eq!(response.pop_decrement().unwrap(), 0, "not below zero");
    let not_a_number = response.pop_increment().unwrap_err();
    assert_eq!(not_a_number.status, Some(MemcacheStatus::BadDelta));
    response.pop_delete().unwrap();
    assert_eq!(
        response.pop_delete().unwrap_err().status,
        Some(MemcacheStatus::KeyNotFound)
    );
    assert_eq!(
        response.pop_get().unwrap_err().status,
        Some(MemcacheStatus::KeyNotFound)
    );
    response.pop_touch().unwrap();
    assert!(response.pop_touch().is_err());
    let version = response.pop_version().unwrap();
    assert!(version.starts_with("1."), "{version}");
    assert_eq!(response.reply_count(), 0);
}

#[tokio::test]
async fn cas_conflicts_and_expiry() {
    let memcached = Memcached::start();
    let channel = channel(memcached.addr()).await;
    let mut set = MemcacheRequest::new();
    set.set("c", "v1", 0, 0, 0);
    let first = call(&channel, &set).await.pop_set().unwrap();
    // A store with the current CAS wins and changes it; one with the old CAS then loses.
    let mut with_cas = MemcacheRequest::new();
    with_cas
        .set("c", "v2", 0, 0, first)
        .set("c", "v3", 0, 0, first)
        .get("c");
    let mut response = call(&channel, &with_cas).await;
    let second = response.pop_set().unwrap();
    assert_ne!(second, first);
    let conflict = response.pop_set().unwrap_err();
    assert_eq!(conflict.status, Some(MemcacheStatus::KeyExists));
    assert_eq!(response.pop_get().unwrap().value, "v2");
    // An expiry past 30 days is a Unix time: one in the past expires the item at once, with
    // no waiting. One in the future keeps it.
    let mut expiring = MemcacheRequest::new();
    expiring
        .set("old", "v", 0, 30 * 24 * 3600 + 1, 0)
        .get("old")
        .set("later", "v", 0, 3600, 0)
        .get("later");
    let mut response = call(&channel, &expiring).await;
    response.pop_set().unwrap();
    assert_eq!(
        response.pop_get().unwrap_err().status,
        Some(MemcacheStatus::KeyNotFound)
    );
    response.pop_set().unwrap();
    assert_eq!(response.pop_get().unwrap().value, "v");
    // Flush empties the server.
    let mut flush = MemcacheRequest::new();
    flush.flush(0).get("later");
    let mut response = call(&channel, &flush).await;
    response.pop_flush().unwrap();
    assert!(response.pop_get().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pipeline_of_1000_from_concurrent_callers() {
    let memcached = Memcached::start();
    let channel = channel(memcached.addr()).await;
    let mut callers = Vec::new();
    for caller in 0..16 {
        let channel = channel.clone();
        callers.push(tokio::spawn(async move {
            let mut request = MemcacheRequest::new();
            for i in 0..500 {
                request.set(format!("k:{caller}:{i}"), format!("v{caller}.{i}"), i, 0, 0);
            }
            for i in 0..500 {
                request.get(format!("k:{caller}:{i}"));
            }
            let mut response = call(&channel, &request).await;
            for _ in 0..500 {
                response.pop_set().unwrap();
            }
            for i in 0..500 {
                let got = response.pop_get().unwrap();
                assert_eq!(
                    got.value,
                    format!("v{caller}.{i}"),
                    "caller {caller} value {i}"
                );
                assert_eq!(got.flags, i);
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
}

#[tokio::test]
async fn a_cluster_keeps_each_key_on_one_server() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let list = servers
        .iter()
        .map(|s| s.addr().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let cluster = Channel::builder()
        .protocol("memcache")
        .connect_cluster(&format!("list://{list}"), "c_md5")
        .await
        .unwrap();
    for i in 0..60 {
        let mut set = MemcacheRequest::new();
        set.set(format!("key{i}"), "v", 0, 0, 0);
        call(&cluster, &set).await.pop_set().unwrap();
        let mut get = MemcacheRequest::new();
        get.get(format!("key{i}"));
        assert_eq!(call(&cluster, &get).await.pop_get().unwrap().value, "v");
    }
    let mut holders = vec![0; 60];
    for server in &servers {
        let direct = channel(server.addr()).await;
        let mut get = MemcacheRequest::new();
        for i in 0..60 {
            get.get(format!("key{i}"));
        }
        let mut response = call(&direct, &get).await;
        let mut held = 0;
        for holder in holders.iter_mut() {
            if response.pop_get().is_ok() {
                *holder += 1;
                held += 1;
            }
        }
        assert!(held > 0, "every server holds some keys");
    }
    assert!(
        holders.iter().all(|&n| n == 1),
        "each key on one server: {holders:?}"
    );
}

#[tokio::test]
async fn bad_requests_and_bad_responses() {
    let memcached = Memcached::start();
    let channel = channel(memcached.addr()).await;
    let error = channel
        .memcache(&mut Controller::new(), &MemcacheRequest::new())
        .await
        .unwrap_err();
    assert_eq!(error.code(), errno::EREQUEST);
    let mut empty_append = MemcacheRequest::new();
    empty_append.append("k", "", 0, 0, 0);
    let error = channel
        .memcache(&mut Controller::new(), &empty_append)
        .await
        .unwrap_err();
    assert_eq!(error.code(), errno::EREQUEST);

    // A server that answers with what is not a memcache response.
    for reply in [
        &b"HTTP/1.1 400 Bad Request\r\n\r\n"[..],
        &[
            0x81, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ][..],
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reply = reply.to_vec();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(&reply).await;
            let _ = stream.read(&mut buf).await;
        });
        let bad = Channel::builder()
            .protocol("memcache")
            .max_retry(0)
            .timeout(Duration::from_secs(5))
            .connect(&addr.to_string())
            .await
            .unwrap();
        let mut get = MemcacheRequest::new();
        get.get("k");
        let error = bad
            .memcache(&mut Controller::new(), &get)
            .await
            .unwrap_err();
        assert_eq!(error.code(), errno::ERESPONSE, "{error}");
    }
}
