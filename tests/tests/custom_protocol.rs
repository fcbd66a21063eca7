//! A protocol registered by its user (the examples' `tiny`: length-prefixed, no correlation
//! id) on real servers and channels: generated clients over every connection type, replies in
//! request order though handlers finish out of order, errors, bad input, clusters, and the
//! one port it shares with every other protocol.

use std::time::Duration;

use brisk::{errno, Channel, ConnectionType, Controller};
use brisk_examples::tiny;
use brisk_tests::echo::{EchoRequest, EchoServiceClient};
use brisk_tests::raw::HANG_GUARD;
use brisk_tests::test::{FailRequest, SleepRequest, TestServiceClient};
use bytes::{Buf, BufMut, BytesMut};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn tiny_channel(server: &brisk::Server, connection_type: ConnectionType) -> Channel {
    tiny::register();
    Channel::builder()
        .protocol(tiny::NAME)
        .connection_type(connection_type)
        .timeout(TIMEOUT)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel")
}

fn sleep(millis: u32, tag: &str) -> SleepRequest {
    SleepRequest {
        millis,
        tag: tag.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_clients_call_over_tiny_on_every_connection_type() {
    tiny::register();
    let (server, _arrivals) = brisk_tests::start_server().await;
    for connection_type in [
        ConnectionType::Single,
        ConnectionType::Pooled,
        ConnectionType::Short,
    ] {
        let channel = tiny_channel(&server, connection_type).await;
        let echo = EchoServiceClient::new(channel.clone());
        let reply = echo
            .echo(EchoRequest {
                message: format!("{connection_type:?}"),
            })
            .await
            .unwrap();
        assert_eq!(reply.message, format!("{connection_type:?}"));
        // Slow calls first: with no ids, replies leave in request order, yet every call gets
        // its own.
        let test = TestServiceClient::new(channel);
        let calls = (0..20u32).map(|i| {
            let test = test.clone();
            async move { test.sleep(sleep(40 - 2 * i, &i.to_string())).await }
        });
        for (i, reply) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(reply.unwrap().tag, i.to_string(), "{connection_type:?}");
        }
    }
    server.shutdown().await;
}

/// A `tiny` request frame by hand.
fn request_frame(method: &str, message: &[u8]) -> Vec<u8> {
    let mut frame = BytesMut::new();
    frame.put_slice(tiny::MAGIC);
    frame.put_u32((2 + method.len() + message.len()) as u32);
    frame.put_u16(method.len() as u16);
    frame.put_slice(method.as_bytes());
    frame.put_slice(message);
    frame.to_vec()
}

/// Reads one `tiny` response: its status and body.
async fn read_response(stream: &mut TcpStream, buf: &mut BytesMut) -> (i32, Vec<u8>) {
    loop {
        if buf.len() >= 8 {
            let len = u32::from_be_bytes(buf[4..8].try_into().unwrap()) as usize;
            if buf.len() >= 8 + len {
                assert_eq!(&buf[..4], tiny::MAGIC);
                buf.advance(8);
                let mut body = buf.split_to(len);
                let status = body.get_i32();
                return (status, body.to_vec());
            }
        }
        let n = tokio::time::timeout(HANG_GUARD, stream.read_buf(buf))
            .await
            .expect("a response within the hang guard")
            .expect("read");
        assert_ne!(n, 0, "connection closed before a whole response arrived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_in_request_order_on_the_wire() {
    tiny::register();
    let (server, mut arrivals) = brisk_tests::start_server().await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    // The slow request first, the fast one right behind it, in one write.
    let mut bytes = request_frame(
        "brisk.test.TestService/Sleep",
        &sleep(300, "slow").encode_to_vec(),
    );
    bytes.extend(request_frame(
        "brisk.test.TestService/Sleep",
        &sleep(0, "fast").encode_to_vec(),
    ));
    stream.write_all(&bytes).await.unwrap();
    // Both handlers have started (and the fast one finishes at once)...
    for _ in 0..2 {
        arrivals.recv().await.unwrap();
    }
    // ...yet the slow one's reply comes first.
    let mut buf = BytesMut::new();
    let (status, body) = read_response(&mut stream, &mut buf).await;
    assert_eq!(status, 0);
    assert_eq!(
        brisk_tests::test::SleepResponse::decode(&body[..])
            .unwrap()
            .tag,
        "slow"
    );
    let (status, body) = read_response(&mut stream, &mut buf).await;
    assert_eq!(status, 0);
    assert_eq!(
        brisk_tests::test::SleepResponse::decode(&body[..])
            .unwrap()
            .tag,
        "fast"
    );

    // Answered at once, still in order: an unknown method, an unknown service.
    let mut bytes = request_frame("example.EchoService/Nope", b"");
    bytes.extend(request_frame("NoService/Echo", b""));
    stream.write_all(&bytes).await.unwrap();
    let (status, body) = read_response(&mut stream, &mut buf).await;
    assert_eq!(
        status,
        errno::ENOMETHOD,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _) = read_response(&mut stream, &mut buf).await;
    assert_eq!(status, errno::ENOSERVICE);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_travel_and_bad_input_closes_only_its_connection() {
    tiny::register();
    let (server, _arrivals) = brisk_tests::start_server().await;
    let channel = tiny_channel(&server, ConnectionType::Single).await;
    let test = TestServiceClient::new(channel.clone());
    let err = test
        .fail(FailRequest {
            code: 4321,
            text: "application says no".into(),
            panic: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (4321, "application says no"),
        "{err}"
    );
    let err = test
        .fail(FailRequest {
            panic: true,
            ..FailRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EINTERNAL, "{err}");

    // What tiny cannot carry is refused before anything is sent.
    let mut cntl = Controller::new();
    cntl.set_request_attachment("extra");
    let err = EchoServiceClient::new(channel.clone())
        .echo_with(&mut cntl, EchoRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EREQUEST, "{err}");

    // A frame the codec cannot parse closes that connection...
    let mut bad = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut garbage = request_frame("no-slash-here", b"");
    garbage.extend_from_slice(b"TINY");
    bad.write_all(&garbage).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(HANG_GUARD, bad.read_to_end(&mut rest))
        .await
        .expect("closed within the hang guard");
    assert!(
        read.is_err() || rest.is_empty(),
        "no reply to garbage: {rest:?}"
    );
    // ...and the others go on.
    let reply = EchoServiceClient::new(channel)
        .echo(EchoRequest {
            message: "still here".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.message, "still here");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_balances_over_tiny_and_unknown_protocols_are_refused() {
    tiny::register();
    let (a, _) = brisk_tests::start_server().await;
    let (b, _) = brisk_tests::start_server().await;
    let url = format!("list://{},{}", a.local_addr(), b.local_addr());
    let channel = Channel::builder()
        .protocol(tiny::NAME)
        .timeout(TIMEOUT)
        .connect_cluster(&url, "rr")
        .await
        .unwrap();
    let client = EchoServiceClient::new(channel);
    let mut seen = Vec::new();
    for i in 0..4 {
        let mut cntl = Controller::new();
        let message = format!("{i}");
        let reply = client
            .echo_with(&mut cntl, EchoRequest { message })
            .await
            .unwrap();
        assert_eq!(reply.message, i.to_string());
        seen.push(cntl.remote_side().unwrap());
    }
    assert_eq!(seen[0], seen[2]);
    assert_eq!(seen[1], seen[3]);
    assert_ne!(seen[0], seen[1]);

    let err = Channel::builder()
        .protocol("carrier_pigeon")
        .connect(&a.local_addr().to_string())
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EINVAL, "{err}");
    assert!(err.message().contains("tiny"), "lists what exists: {err}");
    a.shutdown().await;
    b.shutdown().await;
}
