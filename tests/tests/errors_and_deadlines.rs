//! What a new user meets first: one error model on every protocol, deadlines that reach the
//! handler (and cancel it), streams that outlive the channel's default timeout, and graceful
//! stops that answer ELOGOFF and honour the configured stream grace.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use brisk::protocol::baidu_std::{decode_frame, encode_head, request_meta};
use brisk::protocol::DEFAULT_MAX_BODY_SIZE;
use brisk::{errno, Channel, Controller, Protocol, Server, ServerContext, Status};
use brisk_tests::interop::{InteropClient, InteropImpl, InteropServer, Msg};
use brisk_tests::raw::{read_frame_bytes, HANG_GUARD};
use brisk_tests::test::{FailRequest, SleepRequest, SleepResponse, TestServiceClient};
use brisk_tests::ERROR_TABLE;
use bytes::BytesMut;
use futures_util::StreamExt;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A handler that reports the timeout it was given, and whether it was cancelled.
#[brisk::service(package = "brisk.first", name = "Patient")]
pub trait Patient {
    async fn wait(
        &self,
        cntl: &mut ServerContext,
        request: SleepRequest,
    ) -> Result<SleepResponse, Status>;
}

struct PatientImpl {
    events: mpsc::UnboundedSender<String>,
}

/// Reports `<tag>:cancelled` unless the handler got to its end.
struct CancelReport {
    events: mpsc::UnboundedSender<String>,
    tag: String,
    finished: bool,
}

impl Drop for CancelReport {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.events.send(format!("{}:cancelled", self.tag));
        }
    }
}

impl Patient for PatientImpl {
    async fn wait(
        &self,
        cntl: &mut ServerContext,
        request: SleepRequest,
    ) -> Result<SleepResponse, Status> {
        let left = cntl
            .deadline()
            .map(|at| at.saturating_duration_since(Instant::now()).as_millis());
        let _ = self.events.send(format!(
            "{}:timeout_ms={:?}:left={left:?}",
            request.tag,
            cntl.timeout_ms()
        ));
        let mut report = CancelReport {
            events: self.events.clone(),
            tag: request.tag.clone(),
            finished: false,
        };
        tokio::time::sleep(Duration::from_millis(request.millis.into())).await;
        report.finished = true;
        Ok(SleepResponse { tag: request.tag })
    }
}

/// A server with the test, interop and patient services.
async fn start(builder: brisk::ServerBuilder) -> (Server, mpsc::UnboundedReceiver<String>) {
    let (test, _arrivals) = brisk_tests::TestImpl::new();
    let (events, rx) = mpsc::unbounded_channel();
    let server = builder
        .add_service(brisk_tests::test::TestServiceServer::new(test))
        .add_service(InteropServer::new(InteropImpl))
        .add_service(PatientServer::new(PatientImpl { events }))
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    (server, rx)
}

async fn channel(server: &Server, protocol: Protocol) -> Channel {
    Channel::builder()
        .protocol(protocol)
        .max_retry(0)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel")
}

const PROTOCOLS: [Protocol; 3] = [Protocol::BAIDU_STD, Protocol::HTTP, Protocol::GRPC];

async fn next_event(events: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(HANG_GUARD, events.recv())
        .await
        .expect("an event in time")
        .expect("events open")
}

// ---------------------------------------------------------------------------------------------
// One error model.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_error_reaches_brisk_clients_the_same_on_every_protocol() {
    let (server, _events) = start(Server::builder()).await;
    for protocol in PROTOCOLS {
        let client = TestServiceClient::new(channel(&server, protocol.clone()).await);
        for row in ERROR_TABLE {
            let text = format!("failed with {} on {protocol}", row.code);
            let status = client
                .fail(FailRequest {
                    code: row.code,
                    text: text.clone(),
                    panic: false,
                })
                .await
                .expect_err("the handler fails");
            assert_eq!(status.code(), row.code, "{protocol}: {status}");
            assert_eq!(status.message(), text, "{protocol}");
            assert_eq!(
                status.remote_side(),
                Some(server.local_addr()),
                "{protocol}"
            );
            assert_eq!(
                status.to_string(),
                format!("[E{}][{}]{text}", row.code, server.local_addr()),
                "the code and the server once"
            );
            if let Some(constructor) = row.constructor {
                assert_eq!(constructor(String::new()).code(), row.code);
            }
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_in_the_middle_of_a_grpc_stream_keeps_its_code() {
    let (server, _events) = start(Server::builder()).await;
    let client = InteropClient::new(channel(&server, Protocol::GRPC).await);
    let requests = futures_util::stream::iter([
        Msg {
            text: "first".into(),
            ..Msg::default()
        },
        Msg {
            text: "key must not be empty".into(),
            fail_code: 4321,
            ..Msg::default()
        },
    ]);
    let mut replies = client.bidi(requests).await.expect("the stream opens");
    let first = replies
        .next()
        .await
        .expect("a reply")
        .expect("first echoes");
    assert_eq!(first.text, "first");
    let status = replies
        .next()
        .await
        .expect("the end")
        .expect_err("the handler's error");
    assert_eq!(status.code(), 4321, "{status}");
    assert_eq!(status.message(), "key must not be empty");
    assert_eq!(status.remote_side(), Some(server.local_addr()));
    server.shutdown().await;
}

/// A raw HTTP/1.1 exchange: the status code and the `x-bd-error-code` header.
async fn http_status(addr: SocketAddr, path: &str, body: &str) -> (u16, Option<i32>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut reply))
        .await
        .expect("a reply in time")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply).to_string();
    let status = reply[9..12].parse().unwrap();
    let code = reply
        .lines()
        .find_map(|l| l.strip_prefix("x-bd-error-code: "))
        .map(|v| v.trim().parse().unwrap());
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_clients_get_the_tables_status_and_the_exact_code() {
    let (server, _events) = start(Server::builder()).await;
    for row in ERROR_TABLE {
        let body = format!(r#"{{"code":{},"text":"t"}}"#, row.code);
        let (status, code) =
            http_status(server.local_addr(), "/brisk.test.TestService/Fail", &body).await;
        assert_eq!((status, code), (row.http, Some(row.code)), "{row:?}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brpc_clients_get_brpcs_codes_and_error_text() {
    let (server, _events) = start(Server::builder()).await;
    let addr = server.local_addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut buf = BytesMut::new();
    for (i, row) in ERROR_TABLE.iter().enumerate() {
        let payload = FailRequest {
            code: row.code,
            text: "t".into(),
            panic: false,
        }
        .encode_to_vec();
        let meta = request_meta("brisk.test.TestService", "Fail", 0, i as i64, 0, 0, 0);
        let mut frame = BytesMut::new();
        encode_head(&mut frame, &meta, payload.len(), 0);
        frame.extend_from_slice(&payload);
        stream.write_all(&frame).await.unwrap();
        let reply = read_frame_bytes(&mut stream, &mut buf).await;
        let reply = decode_frame(&mut BytesMut::from(&reply[..]), DEFAULT_MAX_BODY_SIZE)
            .unwrap()
            .unwrap();
        let response = reply.meta.response.expect("response meta");
        assert_eq!(response.error_code, Some(row.code));
        assert_eq!(
            response.error_text.as_deref(),
            Some(&*format!("[{addr}][E{}]t", row.code)),
            "brpc's ErrorText form"
        );
    }
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Deadlines reach the handler.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_deadline_reaches_the_handler_and_cancels_it_on_every_protocol() {
    let (server, mut events) = start(Server::builder()).await;
    for (i, protocol) in PROTOCOLS.into_iter().enumerate() {
        let client = PatientClient::new(channel(&server, protocol.clone()).await);
        // A quick call sees its deadline.
        let mut cntl = Controller::new();
        cntl.set_timeout(Duration::from_secs(5));
        let tag = format!("quick-{protocol}");
        let reply = client
            .wait_with(
                &mut cntl,
                SleepRequest {
                    millis: 0,
                    tag: tag.clone(),
                },
            )
            .await
            .expect("a quick call");
        assert_eq!(reply.tag, tag);
        let event = next_event(&mut events).await;
        let timeout_ms: i32 = event
            .split("timeout_ms=Some(")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("{protocol}: no timeout in {event}"));
        assert!((4000..=5000).contains(&timeout_ms), "{protocol}: {event}");
        assert!(event.contains("left=Some("), "{protocol}: {event}");

        // A slow one is cancelled when its caller gives up.
        let mut cntl = Controller::new();
        cntl.set_timeout(Duration::from_millis(100));
        let tag = format!("slow-{protocol}");
        let started = Instant::now();
        let status = client
            .wait_with(
                &mut cntl,
                SleepRequest {
                    millis: 10_000,
                    tag: tag.clone(),
                },
            )
            .await
            .expect_err("the caller gives up");
        assert_eq!(status.code(), errno::ERPCTIMEDOUT, "{protocol}: {status}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(next_event(&mut events)
            .await
            .starts_with(&format!("{tag}:timeout_ms=")));
        assert_eq!(next_event(&mut events).await, format!("{tag}:cancelled"));
        // Counted once, whether the server's timer or the client's going away came first.
        let counted = i as u64 + 1;
        let waiting = Instant::now();
        while server.cancelled_handlers() < counted && waiting.elapsed() < HANG_GUARD {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(server.cancelled_handlers(), counted, "{protocol}");
    }
    // Nothing is left running: the graceful stop is immediate.
    let stopping = Instant::now();
    server.shutdown().await;
    assert!(stopping.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_deadline_is_not_cancelled() {
    let (server, mut events) = start(Server::builder()).await;
    let channel = Channel::builder()
        .no_timeout()
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let client = PatientClient::new(channel);
    let reply = client
        .wait(SleepRequest {
            millis: 50,
            tag: "open".into(),
        })
        .await
        .expect("no deadline, no timeout");
    assert_eq!(reply.tag, "open");
    assert_eq!(
        next_event(&mut events).await,
        "open:timeout_ms=None:left=None"
    );
    assert_eq!(server.cancelled_handlers(), 0);
    server.shutdown().await;
}

/// A brpc client with `-baidu_std_protocol_deliver_timeout_ms` sends `timeout_ms` (field 8 of
/// `RpcRequestMeta`): a Brisk handler gets it as its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brpc_clients_timeout_ms_is_the_handlers_deadline() {
    let (server, mut events) = start(Server::builder()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let payload = SleepRequest {
        millis: 10_000,
        tag: "brpc".into(),
    }
    .encode_to_vec();
    let mut meta = request_meta("brisk.first.Patient", "Wait", 0, 4294967298, 0, 0, 0);
    meta.request.as_mut().unwrap().timeout_ms = Some(150);
    let mut frame = BytesMut::new();
    encode_head(&mut frame, &meta, payload.len(), 0);
    frame.extend_from_slice(&payload);
    stream.write_all(&frame).await.unwrap();
    let event = next_event(&mut events).await;
    assert!(
        event.starts_with("brpc:timeout_ms=Some(150):left=Some("),
        "{event}"
    );
    let reply = read_frame_bytes(&mut stream, &mut BytesMut::new()).await;
    let reply = decode_frame(&mut BytesMut::from(&reply[..]), DEFAULT_MAX_BODY_SIZE)
        .unwrap()
        .unwrap();
    assert_eq!(reply.meta.correlation_id, Some(4294967298));
    let response = reply.meta.response.unwrap();
    assert_eq!(response.error_code, Some(errno::ERPCTIMEDOUT));
    assert_eq!(next_event(&mut events).await, "brpc:cancelled");
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Streams and the channel's timeout.

fn msg(text: &str, sleep_ms: i32) -> Msg {
    Msg {
        text: text.into(),
        sleep_ms,
        ..Msg::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidi_stream_outlives_the_channels_default_timeout() {
    let (server, _events) = start(Server::builder()).await;
    // The channel's default timeout (500 ms) is left as it is.
    let client = InteropClient::new(
        Channel::builder()
            .protocol(Protocol::GRPC)
            .connect(&server.local_addr().to_string())
            .await
            .unwrap(),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let requests = tokio_stream_of(rx);
    let mut replies = client.bidi(requests).await.expect("opens");
    let started = Instant::now();
    for i in 0..4 {
        tx.send(msg(&format!("event-{i}"), 0)).unwrap();
        let reply = replies.next().await.expect("a reply").expect("no timeout");
        assert_eq!(reply.text, format!("event-{i}"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(tx);
    assert!(replies.next().await.is_none(), "the stream ends cleanly");
    assert!(started.elapsed() > Duration::from_millis(900));

    // The caller's own timeout does bound a stream.
    let mut cntl = Controller::new();
    cntl.set_timeout(Duration::from_millis(300));
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let mut replies = client
        .bidi_with(&mut cntl, tokio_stream_of(rx))
        .await
        .expect("opens");
    let status = replies
        .next()
        .await
        .expect("the end")
        .expect_err("the caller's deadline");
    assert_eq!(status.code(), errno::ERPCTIMEDOUT, "{status}");
    drop(tx);

    // The channel's timeout still bounds the opening: a server slow to answer the head.
    let Err(status) = client.server_stream(msg("slow head", 2_000)).await else {
        panic!("the opening times out");
    };
    assert_eq!(status.code(), errno::ERPCTIMEDOUT, "{status}");

    // And a cleared timeout lifts both.
    let mut cntl = Controller::new();
    cntl.clear_timeout();
    let mut slow = msg("slow head", 700);
    slow.seq = 1;
    let mut replies = client
        .server_stream_with(&mut cntl, slow)
        .await
        .expect("no deadline at all");
    assert_eq!(replies.next().await.unwrap().unwrap().text, "slow head-0");
    server.shutdown().await;
}

/// The receiving end of `rx` as a stream.
fn tokio_stream_of<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

// ---------------------------------------------------------------------------------------------
// Stopping.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_grace_is_configurable() {
    let (server, _events) =
        start(Server::builder().stream_stop_grace(Duration::from_millis(200))).await;
    let client = InteropClient::new(channel(&server, Protocol::GRPC).await);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut replies = client.bidi(tokio_stream_of(rx)).await.expect("opens");
    tx.send(msg("before", 0)).unwrap();
    assert_eq!(replies.next().await.unwrap().unwrap().text, "before");
    let stopping = Instant::now();
    server.shutdown().await;
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(1500),
        "stopped after {took:?}"
    );
    let status = replies
        .next()
        .await
        .expect("the end")
        .expect_err("ended by the stop");
    assert_eq!(status.code(), errno::ELOGOFF, "{status}");
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_open_connections_during_a_stop_get_elogoff() {
    for protocol in PROTOCOLS {
        let (server, mut events) = start(Server::builder()).await;
        let client = PatientClient::new(channel(&server, protocol.clone()).await);
        // Opens two connections (HTTP/1.1 carries one call at a time), then leaves them idle.
        let warm = |tag: &str| {
            let request = SleepRequest {
                millis: 100,
                tag: tag.into(),
            };
            let client = client.clone();
            async move { client.wait(request).await }
        };
        let (a, b) = tokio::join!(warm("warm-a"), warm("warm-b"));
        a.unwrap();
        b.unwrap();
        next_event(&mut events).await;
        next_event(&mut events).await;
        let slow = client.clone();
        let in_flight = tokio::spawn(async move {
            let mut cntl = Controller::new();
            cntl.set_timeout(Duration::from_secs(5));
            let request = SleepRequest {
                millis: 800,
                tag: "in flight".into(),
            };
            slow.wait_with(&mut cntl, request).await
        });
        next_event(&mut events).await;
        server.stop().await;
        let status = client
            .wait(SleepRequest {
                millis: 0,
                tag: "late".into(),
            })
            .await
            .expect_err("the server is stopping");
        assert_eq!(status.code(), errno::ELOGOFF, "{protocol}: {status}");
        let reply = in_flight
            .await
            .unwrap()
            .expect("the call in flight finishes");
        assert_eq!(reply.tag, "in flight");
        server.join().await;
    }
}

/// A caller dropping streams that outlived the channel's timeout is not a timeout of their
/// server: with the circuit breaker on, 200 such streams (more than the 150 errors that trip
/// its warm-up window; in two rounds, as a connection carries 128 streams at once) leave the
/// server in rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_long_streams_does_not_trip_the_breaker() {
    let (server, _events) = start(Server::builder()).await;
    let channel = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(Duration::from_millis(200))
        .enable_circuit_breaker(true)
        .connect_cluster(&format!("list://{}", server.local_addr()), "rr")
        .await
        .unwrap();
    let client = InteropClient::new(channel);
    for round in 0..2 {
        let mut streams = Vec::new();
        for i in 0..100 {
            let (tx, rx) = mpsc::unbounded_channel();
            let text = format!("round {round} stream {i}");
            tx.send(msg(&text, 0)).unwrap();
            let mut replies = client.bidi(tokio_stream_of(rx)).await.expect("opens");
            assert_eq!(replies.next().await.unwrap().unwrap().text, text);
            streams.push((tx, replies));
        }
        // Past the channel's timeout; then the caller drops them all.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(streams);
    }
    for i in 0..5 {
        let reply = client
            .unary(msg(&format!("after {i}"), 0))
            .await
            .expect("the server is still in rotation");
        assert_eq!(reply.text, format!("after {i}"));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_text_lists_every_attempt_as_brpcs() {
    // Nothing listens on the port: the first attempt and its 2 retries are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let channel = brisk::Channel::builder()
        .max_retry(2)
        .connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut cntl = brisk::Controller::new();
    let status = brisk_tests::echo::EchoServiceClient::new(channel)
        .echo_with(
            &mut cntl,
            brisk_tests::echo::EchoRequest {
                message: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(cntl.retried_count(), 2);
    let text = cntl.error_text();
    let code = status.code();
    assert!(text.starts_with("[E"), "{text}");
    assert!(
        text.contains(" [R1][E") && text.contains(" [R2][E"),
        "{text}"
    );
    assert!(!text.contains("[R3]"), "{text}");
    assert!(
        text.ends_with(&format!("[E{code}]{}", status.message())),
        "the last attempt's error ends it: {text}"
    );
}

// --- A single-server channel whose server is down (issue 24, item 10) ------------------------

/// A call with three retries to a server that closes every connection at once: brpc's
/// single-server channel fails the server's socket on the first EOF and answers the remaining
/// retries at once with EHOSTDOWN (`Not connected to … yet`), one connection in all; the health
/// check connects again when the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_servers_broken_connection_fails_the_remaining_retries_with_ehostdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
    let closer = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            accepted_tx.send(()).unwrap();
            drop(stream);
        }
    });
    // The health check's first probe comes a second after the failure: long enough that it
    // cannot be taken for a retry's connection below.
    let channel = Channel::builder()
        .timeout(Duration::from_secs(5))
        .max_retry(3)
        .health_check_interval(Duration::from_secs(1))
        .connect(&addr.to_string())
        .await
        .unwrap();
    let client = TestServiceClient::new(channel);
    let mut cntl = Controller::new();
    let started = Instant::now();
    let err = client
        .sleep_with(&mut cntl, sleep_request(0, "down"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "{err:?}");
    assert_eq!(err.code(), errno::EHOSTDOWN, "{err:?}");
    assert_eq!(err.message(), format!("Not connected to {addr} yet"));
    assert_eq!(cntl.retried_count(), 3);
    let text = cntl.error_text();
    assert_eq!(text.matches("[E112]Not connected to").count(), 3, "{text}");
    assert!(text.contains("[R3][E112]"), "{text}");
    // One connection in all.
    assert!(accepted.recv().await.is_some());
    assert!(accepted.try_recv().is_err(), "a retry reconnected");

    // A real server on the same port: the health check finds it and calls go through again.
    closer.abort();
    let _ = closer.await;
    let (server, _arrivals) = brisk_tests::start_server_on(&addr.to_string()).await;
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match client.sleep(sleep_request(0, "back")).await {
            Ok(reply) => {
                assert_eq!(reply.tag, "back");
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), errno::EHOSTDOWN, "{e:?}");
                assert!(
                    Instant::now() < deadline,
                    "the health check never revived {addr}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    server.shutdown().await;
}

/// A refused connection counts as a broken one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_refusing_connections_is_answered_with_ehostdown_at_once() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let channel = Channel::builder()
        .max_retry(2)
        .connect(&addr.to_string())
        .await
        .unwrap();
    let client = TestServiceClient::new(channel);
    let mut cntl = Controller::new();
    let err = client
        .sleep_with(&mut cntl, sleep_request(0, "refused"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EHOSTDOWN, "{err:?}");
    let text = cntl.error_text();
    assert!(text.starts_with("[E111]"), "{text}");
    assert!(
        text.ends_with(&format!("[R2][E112]Not connected to {addr} yet")),
        "{text}"
    );
    // Later calls fail at once too, until the health check (3 s by default) connects.
    let err = client.sleep(sleep_request(0, "again")).await.unwrap_err();
    assert_eq!(err.code(), errno::EHOSTDOWN, "{err:?}");
}

fn sleep_request(millis: u32, tag: &str) -> SleepRequest {
    SleepRequest {
        millis,
        tag: tag.into(),
    }
}

/// A server whose SYNs go unanswered (its accept queue is full): the first attempt's connect
/// times out (200 ms, brpc's default) and, as brpc's, the remaining retries fail at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_that_drops_syns_is_answered_after_one_connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the accept queue: the kernel then drops further SYNs.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let connect = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(100), connect).await {
            fillers.push(stream);
        }
    }
    let channel = Channel::builder()
        .timeout(Duration::from_secs(5))
        .max_retry(3)
        .connect(&addr.to_string())
        .await
        .unwrap();
    let client = TestServiceClient::new(channel);
    let mut cntl = Controller::new();
    let started = Instant::now();
    let err = client
        .sleep_with(&mut cntl, sleep_request(0, "dropped"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code(), errno::EHOSTDOWN, "{err:?}");
    let text = cntl.error_text();
    assert!(
        text.starts_with("[E110]"),
        "the connect timed out first: {text}"
    );
    assert_eq!(text.matches("[E112]").count(), 3, "{text}");
    // One connect timeout, not one per retry (nor the call's whole timeout).
    assert!(elapsed < Duration::from_millis(700), "{elapsed:?}: {text}");
    drop((listener, fillers));
}
