//! The call path end to end: a real Brisk server on loopback, called through `Channel`s with
//! the generated async and blocking clients.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use brisk::{errno, Channel, CompressType, ConnectionType, Controller, Protocol};
use brisk_tests::echo::{EchoRequest, EchoServiceBlockingClient, EchoServiceClient};
use brisk_tests::test::{SleepRequest, TestServiceClient};
use brisk_tests::{channel_to, start_server, start_server_on};

fn echo(message: impl Into<String>) -> EchoRequest {
    EchoRequest {
        message: message.into(),
    }
}

fn sleep(millis: u32, tag: &str) -> SleepRequest {
    SleepRequest {
        millis,
        tag: tag.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_round_trip_fills_the_controller() {
    let (server, _) = start_server().await;
    let client = EchoServiceClient::new(channel_to(&server, Duration::from_secs(5)).await);

    assert_eq!(client.echo(echo("plain")).await.unwrap().message, "plain");

    let mut cntl = Controller::new();
    cntl.set_log_id(42);
    cntl.set_request_attachment(&b"side bytes"[..]);
    let reply = client.echo_with(&mut cntl, echo("hello")).await.unwrap();
    assert_eq!(reply.message, "hello");
    assert_eq!(&cntl.response_attachment()[..], b"side bytes");
    assert_eq!(cntl.remote_side(), Some(server.local_addr()));
    assert!(cntl.local_side().is_some());
    assert!(!cntl.failed());
    assert_eq!(cntl.error_code(), 0);
    assert_eq!(cntl.retried_count(), 0);
    assert!(cntl.latency() > Duration::ZERO);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_client_works_from_plain_and_spawn_blocking_threads() {
    let (server, _) = start_server().await;
    let address = server.local_addr().to_string();
    let channel = channel_to(&server, Duration::from_secs(5)).await;

    let from_runtime_channel = EchoServiceBlockingClient::new(channel);
    let reply =
        tokio::task::spawn_blocking(move || from_runtime_channel.echo(echo("pooled thread")))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(reply.message, "pooled thread");

    let reply = std::thread::spawn(move || {
        let channel = Channel::builder()
            .timeout(Duration::from_secs(5))
            .connect_blocking(&address)
            .unwrap();
        let client = EchoServiceBlockingClient::new(channel);
        let mut cntl = Controller::new();
        cntl.set_request_attachment(&b"att"[..]);
        let reply = client.echo_with(&mut cntl, echo("plain thread")).unwrap();
        (reply.message, cntl.response_attachment().clone())
    })
    .join()
    .unwrap();
    assert_eq!(reply.0, "plain thread");
    assert_eq!(&reply.1[..], b"att");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_share_one_connection_and_each_gets_its_reply() {
    let (server, _) = start_server().await;
    let channel = channel_to(&server, Duration::from_secs(30)).await;
    let client = EchoServiceClient::new(channel);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10_000u32 {
        let client = client.clone();
        tasks.spawn(async move {
            let mut cntl = Controller::new();
            cntl.set_request_attachment(i.to_be_bytes().to_vec());
            let reply = client.echo_with(&mut cntl, echo(format!("call {i}"))).await;
            (
                i,
                reply,
                cntl.response_attachment().clone(),
                cntl.local_side(),
            )
        });
    }
    let mut seen = HashSet::new();
    let mut local_sides = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, reply, attachment, local) = joined.unwrap();
        let reply = reply.unwrap_or_else(|e| panic!("call {i} failed: {e}"));
        assert_eq!(reply.message, format!("call {i}"));
        assert_eq!(&attachment[..], &i.to_be_bytes());
        assert!(seen.insert(i));
        local_sides.insert(local.unwrap());
    }
    assert_eq!(seen.len(), 10_000);
    assert_eq!(
        local_sides.len(),
        1,
        "single connection type must use one connection"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_to_one_server_share_the_single_connection() {
    let (server, _) = start_server().await;
    let a = EchoServiceClient::new(channel_to(&server, Duration::from_secs(5)).await);
    let b = EchoServiceClient::new(channel_to(&server, Duration::from_secs(5)).await);
    let (mut ca, mut cb) = (Controller::new(), Controller::new());
    a.echo_with(&mut ca, echo("a")).await.unwrap();
    b.echo_with(&mut cb, echo("b")).await.unwrap();
    assert_eq!(ca.local_side(), cb.local_side());

    // A different connection group gets its own connection.
    let grouped = Channel::builder()
        .connection_group("other")
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let mut cc = Controller::new();
    EchoServiceClient::new(grouped)
        .echo_with(&mut cc, echo("c"))
        .await
        .unwrap();
    assert_ne!(cc.local_side(), ca.local_side());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_and_short_connections() {
    let (server, _) = start_server().await;
    let address = server.local_addr().to_string();
    for kind in [ConnectionType::Pooled, ConnectionType::Short] {
        let channel = Channel::builder()
            .connection_type(kind)
            .timeout(Duration::from_secs(5))
            .connect(&address)
            .await
            .unwrap();
        let client = EchoServiceClient::new(channel);
        let calls = (0..50).map(|i| {
            let client = client.clone();
            async move {
                let mut cntl = Controller::new();
                let reply = client.echo_with(&mut cntl, echo(format!("{i}"))).await;
                (i, reply.map(|r| r.message), cntl.local_side())
            }
        });
        let mut tasks = tokio::task::JoinSet::new();
        for call in calls {
            tasks.spawn(call);
        }
        let mut local_sides = HashSet::new();
        while let Some(joined) = tasks.join_next().await {
            let (i, reply, local) = joined.unwrap();
            assert_eq!(reply.unwrap(), format!("{i}"), "{kind:?}");
            local_sides.insert(local.unwrap());
        }
        assert!(
            local_sides.len() > 1,
            "{kind:?}: concurrent calls need several connections"
        );
        if kind == ConnectionType::Short {
            let mut sequential = HashSet::new();
            for _ in 0..5 {
                let mut cntl = Controller::new();
                client.echo_with(&mut cntl, echo("s")).await.unwrap();
                sequential.insert(cntl.local_side().unwrap());
            }
            assert_eq!(sequential.len(), 5, "short connections are not reused");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_of_every_size_round_trip() {
    let (server, _) = start_server().await;
    let client = EchoServiceClient::new(channel_to(&server, Duration::from_secs(10)).await);
    for size in [0usize, 1, 4096, 1 << 20, 8 << 20] {
        let attachment: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
        let mut cntl = Controller::new();
        cntl.set_request_attachment(attachment.clone());
        let reply = client
            .echo_with(&mut cntl, echo("with attachment"))
            .await
            .unwrap();
        assert_eq!(reply.message, "with attachment");
        assert_eq!(cntl.response_attachment().len(), size);
        assert!(
            cntl.response_attachment()[..] == attachment[..],
            "size {size}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_type_round_trips() {
    let (server, _) = start_server().await;
    let client = EchoServiceClient::new(channel_to(&server, Duration::from_secs(5)).await);
    let message = "compress me ".repeat(5000);
    for ty in [
        CompressType::None,
        CompressType::Snappy,
        CompressType::Gzip,
        CompressType::Zlib,
        CompressType::Lz4,
        CompressType::Zstd,
    ] {
        let mut cntl = Controller::new();
        cntl.set_request_compress_type(ty);
        cntl.set_request_attachment(&b"never compressed"[..]);
        let reply = client
            .echo_with(&mut cntl, echo(message.clone()))
            .await
            .unwrap();
        assert_eq!(reply.message, message, "{ty:?}");
        // The echo service answers in the request's compression.
        assert_eq!(cntl.response_compress_type(), ty);
        assert_eq!(&cntl.response_attachment()[..], b"never compressed");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_and_zstd_payloads_on_brpcs_protocols() {
    // The compression is named on the wire: the server decodes the request with it and the
    // echo service answers in it.
    let (server, _) = start_server().await;
    let message = "compress me ".repeat(5000);
    for protocol in [
        Protocol::BAIDU_STD,
        Protocol::HULU_PBRPC,
        Protocol::SOFA_PBRPC,
    ] {
        let channel = Channel::builder()
            .protocol(protocol.clone())
            .timeout(Duration::from_secs(5))
            .connect(&server.local_addr().to_string())
            .await
            .unwrap();
        let client = EchoServiceClient::new(channel);
        for ty in [CompressType::Lz4, CompressType::Zstd] {
            let mut cntl = Controller::new();
            cntl.set_request_compress_type(ty);
            let reply = client
                .echo_with(&mut cntl, echo(message.clone()))
                .await
                .unwrap();
            assert_eq!(reply.message, message, "{protocol:?} {ty:?}");
            assert_eq!(cntl.response_compress_type(), ty, "{protocol:?}");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_times_out_within_the_deadline_and_is_not_retried() {
    let (server, _) = start_server().await;
    let client = TestServiceClient::new(channel_to(&server, Duration::from_secs(5)).await);
    let mut cntl = Controller::new();
    cntl.set_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let err = client
        .sleep_with(&mut cntl, sleep(3_000, "slow"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code(), errno::ERPCTIMEDOUT, "{err}");
    assert_eq!(cntl.error_code(), errno::ERPCTIMEDOUT);
    assert_eq!(cntl.retried_count(), 0);
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");

    // The channel's default timeout applies when the controller sets none.
    let short = TestServiceClient::new(channel_to(&server, Duration::from_millis(50)).await);
    let err = short.sleep(sleep(3_000, "default")).await.unwrap_err();
    assert_eq!(err.code(), errno::ERPCTIMEDOUT);

    // And the connection is still fine for the next call.
    assert_eq!(client.sleep(sleep(0, "fast")).await.unwrap().tag, "fast");
    // Not `shutdown()`: that would gracefully wait for the abandoned 3 s handlers.
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_join_from_other_threads() {
    let (server, mut arrivals) = start_server().await;
    let client = TestServiceClient::new(channel_to(&server, Duration::from_secs(30)).await);
    let mut cntl = Controller::new();
    let id = cntl.call_id();

    let canceller = {
        let id = id.clone();
        std::thread::spawn(move || {
            // Wait until the server has the request, then cancel from this thread.
            assert_eq!(arrivals.blocking_recv().as_deref(), Some("long"));
            id.cancel();
        })
    };
    let joiner = {
        let id = id.clone();
        std::thread::spawn(move || {
            id.join_blocking();
            id.is_finished()
        })
    };
    let started = Instant::now();
    let err = client
        .sleep_with(&mut cntl, sleep(20_000, "long"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ECANCELED, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    canceller.join().unwrap();
    assert!(joiner.join().unwrap());
    id.join().await;

    // Cancelled before it starts: ends at once.
    let mut cntl = Controller::new();
    cntl.call_id().cancel();
    let id = cntl.call_id();
    id.cancel();
    let err = client
        .sleep_with(&mut cntl, sleep(20_000, "never"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ECANCELED);
    // Not `shutdown()`: that would gracefully wait for the abandoned 20 s handler.
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_call_future_cancels_it() {
    let (server, mut arrivals) = start_server().await;
    let client = TestServiceClient::new(channel_to(&server, Duration::from_secs(30)).await);
    let mut cntl = Controller::new();
    let id = cntl.call_id();
    {
        let call = client.sleep_with(&mut cntl, sleep(20_000, "dropped"));
        tokio::pin!(call);
        tokio::select! {
            _ = &mut call => panic!("the call cannot finish first"),
            tag = arrivals.recv() => assert_eq!(tag.as_deref(), Some("dropped")),
        }
    }
    assert!(id.is_finished(), "dropping the future ends the call");
    // The shared connection keeps working, and the late reply is simply discarded.
    assert_eq!(client.sleep(sleep(0, "next")).await.unwrap().tag, "next");
    // Not `shutdown()`: that would gracefully wait for the abandoned 20 s handler.
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_finishes_calls_in_flight_and_refuses_new_ones_with_elogoff() {
    let (server, mut arrivals) = start_server().await;
    let client = TestServiceClient::new(channel_to(&server, Duration::from_secs(10)).await);
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.sleep(sleep(300, "in flight")).await })
    };
    assert_eq!(arrivals.recv().await.as_deref(), Some("in flight"));
    server.stop().await;

    let mut cntl = Controller::new();
    cntl.set_max_retry(0);
    let err = client
        .sleep_with(&mut cntl, sleep(0, "late"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ELOGOFF, "{err}");

    assert_eq!(in_flight.await.unwrap().unwrap().tag, "in flight");
    server.join().await;
    // Stopped for good: the port no longer accepts.
    let mut cntl = Controller::new();
    cntl.set_max_retry(0);
    let err = client
        .sleep_with(&mut cntl, sleep(0, "after"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_mid_run_gets_calls_retried_onto_the_new_one() {
    let (old, mut old_arrivals) = start_server().await;
    let address = old.local_addr().to_string();
    let client = TestServiceClient::new(channel_to(&old, Duration::from_secs(10)).await);
    assert_eq!(
        client.sleep(sleep(0, "before")).await.unwrap().tag,
        "before"
    );
    assert_eq!(old_arrivals.recv().await.as_deref(), Some("before"));

    // A call in flight on the old server keeps its connection open while it stops.
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.sleep(sleep(300, "in flight")).await })
    };
    assert_eq!(old_arrivals.recv().await.as_deref(), Some("in flight"));
    old.stop().await;
    let (new, mut new_arrivals) = start_server_on(&address).await;

    // This call reaches the stopping server first (ELOGOFF), then is retried on a fresh
    // connection, which the new server accepts.
    let mut cntl = Controller::new();
    let reply = client
        .sleep_with(&mut cntl, sleep(0, "during restart"))
        .await
        .unwrap();
    assert_eq!(reply.tag, "during restart");
    assert!(cntl.retried_count() >= 1, "expected a retry");
    assert_eq!(new_arrivals.recv().await.as_deref(), Some("during restart"));

    assert_eq!(in_flight.await.unwrap().unwrap().tag, "in flight");
    old.join().await;
    for i in 0..20 {
        let tag = format!("after {i}");
        assert_eq!(client.sleep(sleep(0, &tag)).await.unwrap().tag, tag);
    }
    new.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_and_bad_addresses_fail_clearly() {
    // A port nobody listens on: connection refused; as brpc, the retries find the server's
    // connection failed and are answered at once (EHOSTDOWN), and the text lists them all.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let client = EchoServiceClient::new(Channel::connect(&address).await.unwrap());
    let mut cntl = Controller::new();
    let err = client.echo_with(&mut cntl, echo("x")).await.unwrap_err();
    assert_eq!(err.code(), errno::EHOSTDOWN, "{err}");
    assert_eq!(cntl.retried_count(), 3);
    let text = cntl.error_text();
    assert!(text.starts_with("[E111]"), "{text}");
    assert!(text.contains("[R3][E112]Not connected to"), "{text}");

    for bad in ["no-port", "127.0.0.1:http", "list://127.0.0.1:1"] {
        assert_eq!(
            Channel::connect(bad).await.unwrap_err().code(),
            errno::EINVAL,
            "{bad}"
        );
    }
}
