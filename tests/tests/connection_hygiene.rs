//! Connection hygiene: a connection that never tells its protocol, or never finishes its
//! first frame, is closed after the server's `first_bytes_timeout`; one that has made a
//! request may idle, and connections past
//! `max_connections` are closed at once; idle connections are closed by the server's
//! `idle_timeout`, and by a channel's for the connections it keeps.

use std::time::Duration;

use brisk::{Channel, Server};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::Echo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Hang guard: the server must have closed by then.
const HANG_GUARD: Duration = Duration::from_secs(10);

async fn server(first_bytes: Duration) -> Server {
    Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .first_bytes_timeout(first_bytes)
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

/// Sends `prefix` and waits for the server to close; how long that took.
async fn closed_after(server: &Server, prefix: &[u8]) -> Duration {
    let started = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(prefix).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(HANG_GUARD, stream.read(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer");
    started.elapsed()
}

#[tokio::test]
async fn silent_and_undecided_connections_are_closed_after_the_first_bytes_timeout() {
    let server = server(Duration::from_millis(300)).await;
    // Nothing at all, and a prefix that could still become baidu_std ("PRPC") or nshead.
    for prefix in [&b""[..], b"PR", b"\x00\x01\x02"] {
        let waited = closed_after(&server, prefix).await;
        assert!(
            waited >= Duration::from_millis(250),
            "{prefix:?}: not before the timeout ({waited:?})"
        );
    }
}

#[tokio::test]
async fn a_first_frame_trickled_past_the_timeout_closes_the_connection() {
    let limit = Duration::from_millis(300);
    let server = server(limit).await;
    let started = tokio::time::Instant::now();
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    // A baidu_std header (a 100-byte body, 10 of it meta): the protocol is told at once, then
    // the body comes a byte every 50 ms, never whole within the limit.
    let trickle = tokio::spawn(async move {
        let mut sent = write.write_all(b"PRPC\0\0\0\x64\0\0\0\x0a").await;
        while sent.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            sent = write.write_all(b"\0").await;
        }
    });
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(HANG_GUARD, read.read(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer");
    let waited = started.elapsed();
    assert!(waited >= limit - Duration::from_millis(50), "{waited:?}");
    trickle.abort();
}

#[tokio::test]
async fn a_connection_whose_protocol_is_known_may_idle_past_it() {
    let server = server(Duration::from_millis(200)).await;
    let channel = Channel::connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let client = EchoServiceClient::new(channel);
    let hello = || EchoRequest {
        message: "hello".into(),
    };
    let mut first = brisk::Controller::new();
    client.echo_with(&mut first, hello()).await.unwrap();
    // Idle for more than the timeout on the same (single) connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut second = brisk::Controller::new();
    client.echo_with(&mut second, hello()).await.unwrap();
    assert_eq!(
        second.local_side(),
        first.local_side(),
        "the same connection still served it"
    );
}

#[test]
fn the_default_is_ten_seconds() {
    assert_eq!(
        brisk::ServerOptions::default().first_bytes_timeout,
        Some(Duration::from_secs(10))
    );
}

#[tokio::test]
async fn connections_past_max_connections_are_closed_at_once() {
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .max_connections(2)
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    // Two connections, each kept open by its own connection group.
    let mut clients = Vec::new();
    for group in ["a", "b"] {
        let channel = Channel::builder()
            .connection_group(group)
            .max_retry(0)
            .connect(&addr)
            .await
            .unwrap();
        let client = EchoServiceClient::new(channel);
        client
            .echo(EchoRequest {
                message: group.into(),
            })
            .await
            .unwrap();
        clients.push(client);
    }
    // A third is closed without an answer, at once.
    let mut third = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(HANG_GUARD, third.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(read, Ok(0) | Err(_)));
    // The two still work; once one closes, a new connection is taken.
    for client in &clients {
        client
            .echo(EchoRequest {
                message: "again".into(),
            })
            .await
            .unwrap();
    }
    drop(clients);
    drop(third);
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let channel = Channel::builder()
            .connection_group("later")
            .max_retry(0)
            .connection_type(brisk::ConnectionType::Short)
            .connect(&addr)
            .await
            .unwrap();
        let answered = EchoServiceClient::new(channel)
            .echo(EchoRequest {
                message: "later".into(),
            })
            .await;
        match answered {
            Ok(_) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no connection was taken after the others closed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_but_not_while_a_call_runs() {
    let (service, mut arrivals) = brisk_tests::TestImpl::new();
    let server = Server::builder()
        .add_service(brisk_tests::test::TestServiceServer::new(service))
        .idle_timeout(Duration::from_millis(200))
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr();
    // A raw baidu_std connection that goes quiet after one call is closed by the server.
    let channel = Channel::builder()
        .max_retry(0)
        .timeout(HANG_GUARD)
        .connect(&addr.to_string())
        .await
        .unwrap();
    let client = brisk_tests::test::TestServiceClient::new(channel);
    let sleep = |millis| brisk_tests::test::SleepRequest {
        tag: "t".into(),
        millis,
    };
    let mut first = brisk::Controller::new();
    client.sleep_with(&mut first, sleep(0)).await.unwrap();
    arrivals.recv().await;
    // A call that runs past the idle timeout keeps its connection: it is answered on it.
    let mut long = brisk::Controller::new();
    client.sleep_with(&mut long, sleep(600)).await.unwrap();
    arrivals.recv().await;
    assert_eq!(
        long.local_side(),
        first.local_side(),
        "not closed under a running call"
    );
    // Then, idle, the connection is closed: the next call goes on a new one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut after = brisk::Controller::new();
    client.sleep_with(&mut after, sleep(0)).await.unwrap();
    assert_ne!(
        after.local_side(),
        first.local_side(),
        "the idle connection was closed"
    );
}

#[tokio::test]
async fn a_raw_idle_connection_sees_the_close() {
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .idle_timeout(Duration::from_millis(200))
        .start("127.0.0.1:0")
        .await
        .unwrap();
    // A connection that told its protocol (a baidu_std header cut short), then went quiet.
    let waited = closed_after(&server, b"PRPC\x00\x00").await;
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_burst_of_connections_finds_room_in_the_accept_queue() {
    // 2,000 connections opened and closed back to back from a thread of their own, faster than
    // the server's one worker accepts them: with std's accept queue of 128 the kernel dropped
    // SYNs, and each dropped client waited a second to retry. brpc asks for 65535 (the kernel
    // caps it at somaxconn).
    let server = server(Duration::from_secs(10)).await;
    let addr = server.local_addr();
    let slowest = tokio::task::spawn_blocking(move || {
        let mut slowest = Duration::ZERO;
        for _ in 0..2_000 {
            let started = std::time::Instant::now();
            let stream = std::net::TcpStream::connect_timeout(&addr, HANG_GUARD).expect("connects");
            slowest = slowest.max(started.elapsed());
            drop(stream);
        }
        slowest
    })
    .await
    .unwrap();
    assert!(
        slowest < Duration::from_millis(900),
        "no connection waited for a SYN retry: {slowest:?}"
    );
}

/// Whether this process has a TCP connection from `local` still established (Linux's
/// `/proc/net/tcp`; state 01).
fn established(local: std::net::SocketAddr) -> bool {
    let std::net::SocketAddr::V4(local) = local else {
        panic!("the test uses IPv4 loopback")
    };
    let wanted = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(local.ip().octets()),
        local.port()
    );
    std::fs::read_to_string("/proc/net/tcp")
        .expect("/proc/net/tcp")
        .lines()
        .skip(1)
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&wanted.as_str()) && fields.get(3) == Some(&"01")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_closes_the_connections_it_keeps_once_they_idle() {
    // The server keeps idle connections: whatever closes them here is the channel.
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    let hello = || EchoRequest {
        message: "hello".into(),
    };
    for (protocol, connection_type) in [
        ("baidu_std", Some(brisk::ConnectionType::Pooled)),
        ("http", None),
    ] {
        let mut builder = Channel::builder()
            .protocol(protocol)
            .idle_timeout(Duration::from_millis(300))
            .timeout(HANG_GUARD);
        if let Some(kind) = connection_type {
            builder = builder.connection_type(kind);
        }
        let client = EchoServiceClient::new(builder.connect(&addr).await.unwrap());
        let mut first = brisk::Controller::new();
        client.echo_with(&mut first, hello()).await.unwrap();
        let local = first.local_side().expect("a connection");
        // Reused while it is wanted. Its idle time starts when this call gives it back, at
        // the earliest when the call starts: measured from there, a test thread that the
        // machine's other work delays cannot make a timely close look early.
        let idle_since = tokio::time::Instant::now();
        let mut second = brisk::Controller::new();
        client.echo_with(&mut second, hello()).await.unwrap();
        assert_eq!(
            second.local_side(),
            Some(local),
            "{protocol}: kept for the next call"
        );
        assert!(established(local), "{protocol}: open between calls");
        // Unused, it is closed at the idle timeout, with no call to notice it.
        while established(local) {
            assert!(
                idle_since.elapsed() < HANG_GUARD,
                "{protocol}: never closed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let idled = idle_since.elapsed();
        assert!(
            idled >= Duration::from_millis(300),
            "{protocol}: closed early, {idled:?}"
        );
        // The next call connects anew.
        let mut third = brisk::Controller::new();
        client.echo_with(&mut third, hello()).await.unwrap();
        assert_ne!(
            third.local_side(),
            Some(local),
            "{protocol}: a new connection"
        );
    }
}

#[test]
fn a_channel_keeps_idle_connections_for_30_seconds_by_default() {
    assert_eq!(
        brisk::ChannelOptions::default().idle_timeout,
        Some(Duration::from_secs(30))
    );
}

/// baidu_std connections (as every framed protocol's) are read by the runtime's dispatchers,
/// not by a task each: with thousands of connections on a busy server, tasks woken by their
/// sockets overflowed a tokio worker's queue into the runtime's shared one and waited there
/// while others were served again and again. A hundred connections, each with a call answered
/// on it, leave the server's runtime with a task each for their writers and none for reading.
#[test]
fn framed_connections_take_no_reading_task_each() {
    const CONNECTIONS: usize = 100;
    let server_runtime = brisk_tests::one_worker_runtime();
    let server = server_runtime.block_on(server(Duration::from_secs(10)));
    let addr = server.local_addr().to_string();
    let (before, after) = brisk_tests::server_tasks_around(&server_runtime, CONNECTIONS, |i| {
        let addr = addr.clone();
        async move {
            let group = format!("group {i}");
            let channel = Channel::builder()
                .connection_group(group.clone())
                .timeout(HANG_GUARD)
                .connect(&addr)
                .await
                .unwrap();
            let client = EchoServiceClient::new(channel);
            let answer = client
                .echo(EchoRequest {
                    message: group.clone(),
                })
                .await
                .unwrap();
            assert_eq!(answer.message, group);
            client
        }
    });
    assert!(
        after < before + CONNECTIONS + CONNECTIONS / 10,
        "{CONNECTIONS} more connections took {} more tasks ({before} -> {after})",
        after.saturating_sub(before)
    );
    drop(server);
}
