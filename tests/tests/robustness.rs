//! Peers and callers that misbehave: floods of unread replies, runtimes that shut down under a
//! shared connection, oversized requests, absurd timeouts, panicking services, blocking calls
//! on busy runtimes.

use std::time::Duration;

use brisk::codegen::{Bytes, Service, ServiceFuture};
use brisk::protocol::baidu_std::{request_meta, Frame};
use brisk::{errno, Channel, Controller, ServerContext};
use brisk_tests::echo::{EchoRequest, EchoServiceBlockingClient, EchoServiceClient};
use brisk_tests::raw::{frame_bytes, read_frame};
use brisk_tests::{channel_to, start_server};
use bytes::BytesMut;
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn echo(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
    }
}

fn error_code(frame: &Frame) -> i32 {
    frame
        .meta
        .response
        .as_ref()
        .and_then(|r| r.error_code)
        .unwrap_or(0)
}

/// Writes `count` echo requests with 1 MiB attachments without reading any reply.
async fn flood_without_reading(stream: &mut TcpStream, count: i64) {
    let attachment = vec![7u8; 1 << 20];
    let payload = echo("flood").encode_to_vec();
    for cid in 1..=count {
        let meta = request_meta(
            "example.EchoService",
            "Echo",
            0,
            cid,
            0,
            attachment.len(),
            0,
        );
        stream
            .write_all(&frame_bytes(&meta, &payload, &attachment))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_gets_eovercrowded_instead_of_unbounded_memory() {
    let (server, _) = start_server().await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    flood_without_reading(&mut stream, 100).await;

    let mut buf = BytesMut::new();
    let (mut ok, mut overcrowded) = (0, 0);
    for _ in 0..100 {
        let frame = read_frame(&mut stream, &mut buf).await;
        match error_code(&frame) {
            0 => ok += 1,
            errno::EOVERCROWDED => overcrowded += 1,
            other => panic!("unexpected error {other}"),
        }
    }
    assert!(ok >= 64, "at least 64 MiB of replies are queued: {ok}");
    assert!(
        overcrowded > 0,
        "100 MiB of unread replies must hit the 64 MiB limit"
    );
    // Once drained, the connection serves normally again.
    let meta = request_meta("example.EchoService", "Echo", 0, 1000, 0, 0, 0);
    stream
        .write_all(&frame_bytes(&meta, &echo("after").encode_to_vec(), b""))
        .await
        .unwrap();
    assert_eq!(error_code(&read_frame(&mut stream, &mut buf).await), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_even_when_a_peer_never_reads_its_replies() {
    let (server, _) = start_server().await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    flood_without_reading(&mut stream, 40).await;
    tokio::time::timeout(Duration::from_secs(20), server.shutdown())
        .await
        .expect("shutdown gives up on a peer that does not read");
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_connection_survives_the_runtime_that_created_it_shutting_down() {
    let (server, _) = start_server().await;
    let address = server.local_addr().to_string();

    // Channel A, on its own runtime, creates the process-wide endpoint and its connection.
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let first = {
        let address = address.clone();
        other
            .spawn(async move {
                let channel = Channel::connect(&address).await.unwrap();
                EchoServiceClient::new(channel.clone())
                    .echo(echo("on the other runtime"))
                    .await
                    .unwrap();
                channel
            })
            .await
            .unwrap()
    };
    // Channel B, here, shares that endpoint.
    let client = EchoServiceClient::new(channel_to(&server, Duration::from_secs(5)).await);
    let mut cntl = Controller::new();
    client.echo_with(&mut cntl, echo("shared")).await.unwrap();

    other.shutdown_background();
    for i in 0..5 {
        let message = format!("after shutdown {i}");
        assert_eq!(client.echo(echo(&message)).await.unwrap().message, message);
    }
    drop(first);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_before_they_reach_the_wire() {
    let (server, _) = start_server().await;
    let channel = Channel::builder()
        .max_body_size(1024)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let client = EchoServiceClient::new(channel);
    let mut cntl = Controller::new();
    cntl.set_request_attachment(vec![0u8; 2048]);
    let err = client.echo_with(&mut cntl, echo("big")).await.unwrap_err();
    assert_eq!(err.code(), errno::EREQUEST, "{err}");
    assert!(err.message().contains("max_body_size"), "{err}");
    assert_eq!(cntl.retried_count(), 0);
    assert_eq!(client.echo(echo("small")).await.unwrap().message, "small");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enormous_timeout_means_no_deadline() {
    let (server, _) = start_server().await;
    let client = EchoServiceClient::new(channel_to(&server, Duration::MAX).await);
    let mut cntl = Controller::new();
    cntl.set_timeout(Duration::MAX);
    assert_eq!(
        client
            .echo_with(&mut cntl, echo("patient"))
            .await
            .unwrap()
            .message,
        "patient"
    );
    server.shutdown().await;
}

/// A hand-written service whose `call` panics before returning a future.
struct PanicsOnCall;

impl Service for PanicsOnCall {
    fn full_name(&self) -> &'static str {
        "brisk.test.PanicsOnCall"
    }
    fn method_names(&self) -> &'static [&'static str] {
        &["Boom"]
    }
    fn call(&self, _method: usize, _context: ServerContext, _request: Bytes) -> ServiceFuture {
        panic!("synchronous panic in Service::call");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_panics_while_building_its_future_gets_einternal() {
    let server = brisk::Server::builder()
        .add_service(PanicsOnCall)
        .add_service(brisk_tests::echo::EchoServiceServer::new(brisk_tests::Echo))
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let meta = request_meta("brisk.test.PanicsOnCall", "Boom", 0, 5, 0, 0, 0);
    stream
        .write_all(&frame_bytes(&meta, b"", b""))
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let reply = read_frame(&mut stream, &mut buf).await;
    assert_eq!(reply.meta.correlation_id, Some(5));
    assert_eq!(error_code(&reply), errno::EINTERNAL);
    // Same connection, next request: still served.
    let meta = request_meta("example.EchoService", "Echo", 0, 6, 0, 0, 0);
    stream
        .write_all(&frame_bytes(
            &meta,
            &echo("still here").encode_to_vec(),
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(error_code(&read_frame(&mut stream, &mut buf).await), 0);
    server.shutdown().await;
}

#[test]
fn a_blocking_call_inside_a_task_of_a_one_worker_runtime_does_not_starve_its_connection() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (server, _) = start_server().await;
        let channel = channel_to(&server, Duration::from_secs(5)).await;
        let reply = tokio::spawn(async move {
            // Misuse, but it must not deadlock: the connection's I/O runs on this same
            // one-worker runtime.
            EchoServiceBlockingClient::new(channel).echo(echo("from a worker"))
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(reply.message, "from a worker");
        server.shutdown().await;
    });
}
