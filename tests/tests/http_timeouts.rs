//! Timeouts beyond the framed protocols': `idle_timeout` on HTTP/1.1, HTTP/2 (GOAWAY first)
//! and redis connections; `request_read_timeout` on slow HTTP headers and bodies (slowloris);
//! HTTP/2 keep-alive PINGs closing a server's silent client, and a channel's silent server.
//! Real sockets, timeouts of a few hundred milliseconds, and a hang guard on every wait.

use std::time::Duration;

use brisk::redis::{RedisReply, RedisService};
use brisk::{errno, Channel, Server};
use brisk_tests::interop::{InteropClient, InteropImpl, InteropServer, Msg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Hang guard: the server must have acted by then.
const HANG_GUARD: Duration = Duration::from_secs(10);
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

async fn server(configure: impl FnOnce(brisk::ServerBuilder) -> brisk::ServerBuilder) -> Server {
    let mut redis = RedisService::new();
    redis
        .add_command("ping", |_, _| RedisReply::status("PONG"))
        .unwrap();
    configure(
        Server::builder()
            .add_service(InteropServer::new(InteropImpl))
            .redis_service(redis),
    )
    .start("127.0.0.1:0")
    .await
    .expect("server starts")
}

/// Reads until the server closes; what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    tokio::time::timeout(HANG_GUARD, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    seen
}

/// The types of the HTTP/2 frames in `bytes` (which start at a frame).
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

const GOAWAY: u8 = 7;
const PING: u8 = 6;

#[tokio::test]
async fn idle_http1_http2_and_redis_connections_are_closed() {
    let idle = Duration::from_millis(300);
    let server = server(|b| b.idle_timeout(idle)).await;

    // HTTP/1.1: answered, then closed once it idles.
    let mut http1 = TcpStream::connect(server.local_addr()).await.unwrap();
    http1
        .write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let seen = read_to_close(&mut http1).await;
    assert!(
        seen.starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    assert!(
        started.elapsed() >= idle - Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );

    // HTTP/2: GOAWAY, then closed.
    let mut http2 = TcpStream::connect(server.local_addr()).await.unwrap();
    http2.write_all(PREFACE).await.unwrap();
    http2.write_all(SETTINGS).await.unwrap();
    let started = Instant::now();
    let frames = frame_types(&read_to_close(&mut http2).await);
    assert!(
        started.elapsed() >= idle - Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    // (h2's graceful GOAWAY is followed by a PING, to learn when the client has seen it.)
    assert!(frames.contains(&GOAWAY), "{frames:?}");

    // redis: answered, then closed as redis's `timeout` closes it.
    let mut redis = TcpStream::connect(server.local_addr()).await.unwrap();
    redis.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let started = Instant::now();
    assert_eq!(read_to_close(&mut redis).await, b"+PONG\r\n");
    assert!(
        started.elapsed() >= idle - Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_with_a_call_running_is_not_idle() {
    let server = server(|b| b.idle_timeout(Duration::from_millis(200))).await;
    let channel = Channel::builder()
        .protocol("h2:grpc")
        .timeout(HANG_GUARD)
        .max_retry(0)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let client = InteropClient::new(channel);
    // A call of 600 ms, three idle timeouts long, finishes on its connection, which is still
    // open for the next call (no GOAWAY came while the call ran).
    let mut slow = brisk::Controller::new();
    let reply = client
        .unary_with(
            &mut slow,
            Msg {
                text: "slow".into(),
                sleep_ms: 600,
                ..Msg::default()
            },
        )
        .await
        .expect("not cut off");
    assert_eq!(reply.text, "slow");
    let mut next = brisk::Controller::new();
    client.unary_with(&mut next, Msg::default()).await.unwrap();
    assert_eq!(next.local_side(), slow.local_side(), "the same connection");
    // Once the connection has idled away, the channel connects again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut after = brisk::Controller::new();
    client
        .unary_with(&mut after, Msg::default())
        .await
        .expect("reconnected");
    assert_ne!(after.local_side(), slow.local_side(), "a new connection");
}

#[tokio::test]
async fn slow_http_requests_are_cut_off_at_request_read_timeout() {
    let read = Duration::from_millis(300);
    let server = server(|b| b.request_read_timeout(read)).await;

    // Headers that never end: closed.
    let mut headers = TcpStream::connect(server.local_addr()).await.unwrap();
    headers
        .write_all(b"POST /interop.Interop/Unary HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let seen = read_to_close(&mut headers).await;
    assert!(
        started.elapsed() >= read - Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );

    // A body that stops short of its length: 408, EREQUEST.
    let mut body = TcpStream::connect(server.local_addr()).await.unwrap();
    body.write_all(
        b"POST /interop.Interop/Unary HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"text\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(HANG_GUARD, body.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(
        started.elapsed() >= read - Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_read_timeout=300ms"), "{answer}");

    // A gRPC call whose request never comes, without a deadline or with a far one: answered
    // at the read timeout, not held.
    for deadline in [None, Some("1000S")] {
        grpc_request_never_comes(&server, read, deadline).await;
    }
}

async fn grpc_request_never_comes(server: &Server, read: Duration, deadline: Option<&str>) {
    let io = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut sender, connection) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::post(format!(
        "http://{}/interop.Interop/Unary",
        server.local_addr()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers");
    if let Some(deadline) = deadline {
        request = request.header("grpc-timeout", deadline);
    }
    let request = request.body(()).unwrap();
    let (response, _request_body) = sender.send_request(request, false).unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(HANG_GUARD, response)
        .await
        .expect("answered")
        .unwrap();
    assert!(
        started.elapsed() >= read - Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let mut body = response.into_body();
    let trailers = match status {
        Some(status) => status,
        None => {
            while body.data().await.is_some() {}
            let trailers = body.trailers().await.unwrap().expect("trailers");
            trailers["grpc-status"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(
        trailers, "3",
        "INVALID_ARGUMENT, for EREQUEST ({deadline:?})"
    );
}

#[tokio::test]
async fn keep_alive_pings_close_a_silent_http2_client() {
    let server =
        server(|b| b.http2_keep_alive(Duration::from_millis(200), Duration::from_millis(300)))
            .await;
    // Says its preface, then never answers anything.
    let mut silent = TcpStream::connect(server.local_addr()).await.unwrap();
    silent.write_all(PREFACE).await.unwrap();
    silent.write_all(SETTINGS).await.unwrap();
    let started = Instant::now();
    let frames = frame_types(&read_to_close(&mut silent).await);
    assert!(frames.contains(&PING), "{frames:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450),
        "a PING and its timeout: {waited:?}"
    );

    // A client that answers (any HTTP/2 client does) keeps its connection.
    let channel = Channel::builder()
        .protocol("h2:grpc")
        .timeout(HANG_GUARD)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let client = InteropClient::new(channel);
    let mut first = brisk::Controller::new();
    client.unary_with(&mut first, Msg::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut second = brisk::Controller::new();
    client
        .unary_with(&mut second, Msg::default())
        .await
        .unwrap();
    assert_eq!(
        second.local_side(),
        first.local_side(),
        "the same connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channels_keep_alive_gives_up_on_a_silent_server() {
    // An HTTP/2 "server" that says its SETTINGS, then never answers anything.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.write_all(SETTINGS).await.unwrap();
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let channel = Channel::builder()
        .protocol("h2:grpc")
        .timeout(HANG_GUARD)
        .max_retry(0)
        .http2_keep_alive(Duration::from_millis(200), Duration::from_millis(300))
        .connect(&addr.to_string())
        .await
        .unwrap();
    let client = InteropClient::new(channel);
    let started = Instant::now();
    let status = client.unary(Msg::default()).await.unwrap_err();
    let waited = started.elapsed();
    assert_ne!(
        status.code(),
        errno::ERPCTIMEDOUT,
        "not left to the call's timeout: {status}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "gave up at the PING's timeout: {waited:?} {status}"
    );
}

#[tokio::test]
async fn a_redis_first_command_must_be_whole_within_the_first_bytes_timeout() {
    let limit = Duration::from_millis(300);
    let server = server(|b| b.first_bytes_timeout(limit)).await;
    // Told (a RESP array), then never finished: closed at the limit, unanswered.
    let started = Instant::now();
    let mut cut = TcpStream::connect(server.local_addr()).await.unwrap();
    cut.write_all(b"*1\r\n$4\r\nPI").await.unwrap();
    assert_eq!(read_to_close(&mut cut).await, b"");
    let waited = started.elapsed();
    assert!(waited >= limit - Duration::from_millis(50), "{waited:?}");
    // A whole first command: the connection may then idle past the limit.
    let mut whole = TcpStream::connect(server.local_addr()).await.unwrap();
    whole.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    whole.read_exact(&mut buf).await.unwrap();
    tokio::time::sleep(limit * 2).await;
    whole.write_all(b"PING\r\n").await.unwrap();
    whole.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}
