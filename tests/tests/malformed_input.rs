//! A Brisk server fed bad input over raw sockets.
//!
//! Input that breaks the framing (bad magic, oversized body, meta bigger than the body,
//! undecodable meta, a frame that is not a request) closes that connection and nothing else;
//! a bad request inside a good frame gets an error reply and the connection stays usable.

use std::net::SocketAddr;

use brisk::protocol::baidu_std::{
    decode_frame, request_meta, response_meta, Frame, DEFAULT_MAX_BODY_SIZE,
};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::raw::{frame_bytes, read_frame, HANG_GUARD};
use brisk_tests::test::{FailRequest, SleepRequest, TestServiceClient};
use brisk_tests::{channel_to, start_server, Echo};
use bytes::BytesMut;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn echo_payload(message: &str) -> Vec<u8> {
    EchoRequest {
        message: message.into(),
    }
    .encode_to_vec()
}

/// A valid Echo request with correlation id `cid`.
fn echo_frame(cid: i64, message: &str) -> Vec<u8> {
    frame_bytes(
        &request_meta("example.EchoService", "Echo", 0, cid, 0, 0, 0),
        &echo_payload(message),
        b"",
    )
}

/// A header with arbitrary sizes.
fn header(body_size: u32, meta_size: u32) -> Vec<u8> {
    let mut h = b"PRPC".to_vec();
    h.extend_from_slice(&body_size.to_be_bytes());
    h.extend_from_slice(&meta_size.to_be_bytes());
    h
}

async fn connect(server: &brisk::Server) -> TcpStream {
    TcpStream::connect(server.local_addr()).await.unwrap()
}

/// Sends `request` and returns the reply's `(correlation_id, error_code, error_text, frame)`.
async fn round_trip(stream: &mut TcpStream, request: &[u8]) -> (i64, i32, String, Frame) {
    stream.write_all(request).await.unwrap();
    let frame = read_frame(stream, &mut BytesMut::new()).await;
    let response = frame.meta.response.clone().expect("response meta");
    (
        frame.meta.correlation_id.expect("correlation id"),
        response.error_code.unwrap_or(0),
        response.error_text.unwrap_or_default(),
        frame,
    )
}

/// Waits for the server to close the connection: EOF or a reset. Returns what arrived before.
async fn expect_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(HANG_GUARD, stream.read(&mut chunk))
            .await
            .expect("the server closes the connection");
        match read {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Err(e) => panic!("unexpected read error: {e}"),
        }
    }
}

/// Checks the server still answers a normal client correctly.
async fn assert_serves(server: &brisk::Server) {
    let client = EchoServiceClient::new(channel_to(server, HANG_GUARD).await);
    let mut cntl = brisk::Controller::new();
    cntl.set_request_attachment("att");
    let reply = client
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "still here".into(),
            },
        )
        .await
        .expect("the server still serves");
    assert_eq!(reply.message, "still here");
    assert_eq!(&cntl.response_attachment()[..], b"att");
}

/// Sends `bad` on a fresh connection, expects the server to close it without replying, then
/// checks the server still serves.
async fn assert_closes_silently(server: &brisk::Server, bad: &[u8]) {
    let mut stream = connect(server).await;
    stream.write_all(bad).await.unwrap();
    let received = expect_closed(&mut stream).await;
    assert!(
        received.is_empty(),
        "no reply expected, got {} bytes",
        received.len()
    );
    assert_serves(server).await;
}

/// A valid request on `stream` gets its normal answer.
async fn assert_connection_usable(stream: &mut TcpStream, cid: i64) {
    let (got_cid, code, text, frame) = round_trip(stream, &echo_frame(cid, "again")).await;
    assert_eq!(got_cid, cid);
    assert_eq!(code, 0, "{text}");
    let (payload, _) = frame.split_body().unwrap();
    assert_eq!(
        brisk_tests::echo::EchoResponse::decode(payload)
            .unwrap()
            .message,
        "again"
    );
}

/// `[addr][E<code>]` as every Brisk (and brpc) error text starts.
fn prefix(addr: SocketAddr, code: i32) -> String {
    format!("[{addr}][E{code}]")
}

// ---------------------------------------------------------------------------------------------
// Input that closes the connection.

#[tokio::test]
async fn a_garbled_http_request_closes_connection() {
    // Detected as HTTP/1.1 by its method, then refused by the HTTP parser: hyper answers
    // 400 and closes.
    let (server, _arrivals) = start_server().await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
        .await
        .unwrap();
    let reply = expect_closed(&mut stream).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );
    assert_serves(&server).await;
}

/// The HTTP/2 frames in `bytes` as `(type, stream id, payload)`; a truncated last frame is
/// left out.
fn h2_frames(bytes: &[u8]) -> Vec<(u8, u32, &[u8])> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        if rest.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        frames.push((rest[3], stream, &rest[9..9 + len]));
        rest = &rest[9 + len..];
    }
    frames
}

#[tokio::test]
async fn a_bad_h2_preface_closes_connection() {
    // `PRI * HTTP/2.0` then something other than `SM`: neither HTTP/2 nor HTTP/1.1.
    let (server, _arrivals) = start_server().await;
    // 28 bytes or more: nshead's magic number sits at offset 24, so fewer bytes cannot rule it
    // out (brpc waits for them too).
    assert_closes_silently(&server, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n\0\0\0\0").await;
    // The preface cut short, then the client half-closes: nothing to serve.
    let mut stream = connect(&server).await;
    stream.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    stream.shutdown().await.unwrap();
    assert!(expect_closed(&mut stream).await.is_empty());
    assert_serves(&server).await;
}

#[tokio::test]
async fn a_good_h2_preface_then_garbage_gets_goaway_protocol_error() {
    // The preface is right but what follows is not a SETTINGS frame (RFC 9113 §3.4): the
    // server answers GOAWAY with PROTOCOL_ERROR (1) and closes.
    let (server, _arrivals) = start_server().await;
    let mut stream = connect(&server).await;
    let mut bad = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // A 4-byte PING-typed frame on stream 1 where SETTINGS must come (and PING is 8 bytes).
    bad.extend_from_slice(&[0, 0, 4, 0x6, 0, 0, 0, 0, 1, 1, 2, 3, 4]);
    stream.write_all(&bad).await.unwrap();
    let reply = expect_closed(&mut stream).await;
    let frames = h2_frames(&reply);
    let goaway = frames
        .iter()
        .find(|(kind, _, _)| *kind == 0x7)
        .unwrap_or_else(|| panic!("a GOAWAY frame in {frames:?}"));
    let (_, stream_id, payload) = goaway;
    assert_eq!(*stream_id, 0);
    let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
    assert_eq!(code, 1, "PROTOCOL_ERROR");
    assert_serves(&server).await;
}

#[tokio::test]
async fn a_plain_http_get_of_an_unknown_path_is_404() {
    let (server, _arrivals) = start_server().await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = expect_closed(&mut stream).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(reply.contains("x-bd-error-code: 1002"), "{reply}");
    assert!(
        reply.ends_with("[E1002]Fail to find method on `/nope'"),
        "{reply}"
    );
}

#[tokio::test]
async fn random_bytes_close_connection() {
    let (server, _arrivals) = start_server().await;
    // Deterministic pseudo-random bytes (xorshift), not starting with 'P'.
    let mut x: u32 = 0x9e37_79b9;
    let mut bytes: Vec<u8> = (0..512)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    bytes[0] = 0x01;
    assert_closes_silently(&server, &bytes).await;
}

#[tokio::test]
async fn short_wrong_prefix_closes_connection() {
    // Two bytes show it is not "PRPC", "HULU", "SOFA" nor HTTP; nshead's magic number (offset
    // 24) is not there either once 28 bytes have come.
    let (server, _arrivals) = start_server().await;
    let mut stream = connect(&server).await;
    stream.write_all(b"PX").await.unwrap();
    stream.write_all(&[0; 26]).await.unwrap();
    assert!(expect_closed(&mut stream).await.is_empty());
    // Fewer bytes, then the client half-closes: the server closes too.
    let mut stream = connect(&server).await;
    stream.write_all(b"PX").await.unwrap();
    stream.shutdown().await.unwrap();
    assert!(expect_closed(&mut stream).await.is_empty());
    assert_serves(&server).await;
}

#[tokio::test]
async fn bad_magic_after_a_valid_frame_closes_connection() {
    let (server, _arrivals) = start_server().await;
    let mut stream = connect(&server).await;
    let (cid, code, text, _) = round_trip(&mut stream, &echo_frame(7, "first")).await;
    assert_eq!((cid, code), (7, 0), "{text}");
    let mut bad = echo_frame(8, "second");
    bad[..4].copy_from_slice(b"PRPX");
    stream.write_all(&bad).await.unwrap();
    assert!(expect_closed(&mut stream).await.is_empty());
    assert_serves(&server).await;
}

#[tokio::test]
async fn bad_magic_in_the_same_write_as_a_valid_frame_closes_connection() {
    // The valid frame's reply may or may not make it out before the close (brpc does not
    // promise it either); if anything arrives it is that reply, whole.
    let (server, _arrivals) = start_server().await;
    let mut stream = connect(&server).await;
    let mut wire = echo_frame(7, "first");
    wire.extend_from_slice(b"XXXXXXXXXXXXXXXX");
    stream.write_all(&wire).await.unwrap();
    let received = expect_closed(&mut stream).await;
    if !received.is_empty() {
        let mut buf = BytesMut::from(&received[..]);
        let frame = decode_frame(&mut buf, DEFAULT_MAX_BODY_SIZE)
            .unwrap()
            .expect("a whole reply");
        assert!(buf.is_empty());
        assert_eq!(frame.meta.correlation_id, Some(7));
    }
    assert_serves(&server).await;
}

#[tokio::test]
async fn body_bigger_than_default_max_body_size_closes_connection() {
    let (server, _arrivals) = start_server().await;
    // Only the header: the size alone must be enough to refuse (no 64 MiB allocation).
    let too_big = DEFAULT_MAX_BODY_SIZE as u32 + 1;
    assert_closes_silently(&server, &header(too_big, 20)).await;
}

#[tokio::test]
async fn body_bigger_than_configured_max_body_size_closes_connection() {
    let server = brisk::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .max_body_size(1024)
        .start("127.0.0.1:0")
        .await
        .unwrap();
    // Within the limit: served.
    let mut stream = connect(&server).await;
    let small = "x".repeat(900);
    let (_, code, text, _) = round_trip(&mut stream, &echo_frame(1, &small)).await;
    assert_eq!(code, 0, "{text}");
    // A well-formed 2048-byte-body frame: refused, connection closed, no reply.
    let big = (1900..2100)
        .map(|n| echo_frame(2, &"y".repeat(n)))
        .find(|f| f.len() == 12 + 2048)
        .expect("a message length giving a 2048-byte body");
    assert_eq!(
        u32::from_be_bytes(big[4..8].try_into().unwrap()),
        2048,
        "body size"
    );
    stream.write_all(&big).await.unwrap();
    assert!(expect_closed(&mut stream).await.is_empty());
    assert_serves(&server).await;
}

#[tokio::test]
async fn meta_size_bigger_than_body_size_closes_connection() {
    let (server, _arrivals) = start_server().await;
    let mut bad = header(10, 11);
    bad.extend_from_slice(&[0u8; 10]);
    assert_closes_silently(&server, &bad).await;
}

#[tokio::test]
async fn undecodable_meta_closes_connection() {
    let (server, _arrivals) = start_server().await;
    let payload = echo_payload("hello world");
    let mut bad = header(2 + payload.len() as u32, 2);
    bad.extend_from_slice(&[0xff, 0xff]);
    bad.extend_from_slice(&payload);
    assert_closes_silently(&server, &bad).await;
}

#[tokio::test]
async fn response_meta_instead_of_request_meta_closes_connection() {
    let (server, _arrivals) = start_server().await;
    let bad = frame_bytes(
        &response_meta(5, 0, 0, None),
        &echo_payload("hello world"),
        b"",
    );
    assert_closes_silently(&server, &bad).await;
}

#[tokio::test]
async fn truncated_frame_then_half_close_closes_connection() {
    let (server, _arrivals) = start_server().await;
    let mut stream = connect(&server).await;
    let whole = echo_frame(3, "hello world");
    stream.write_all(&whole[..whole.len() - 4]).await.unwrap();
    stream.shutdown().await.unwrap();
    assert!(expect_closed(&mut stream).await.is_empty());
    assert_serves(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Bad requests in good frames: an error reply, and the connection stays up.

#[tokio::test]
async fn attachment_size_larger_than_body_is_erequest_and_connection_survives() {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = connect(&server).await;
    let mut meta = request_meta("example.EchoService", "Echo", 0, 11, 0, 0, 0);
    meta.attachment_size = Some(100);
    let bad = frame_bytes(&meta, &echo_payload("hello world"), b"");
    let (cid, code, text, frame) = round_trip(&mut stream, &bad).await;
    assert_eq!((cid, code), (11, 1003), "{text}");
    assert!(text.starts_with(&prefix(addr, 1003)), "{text}");
    assert!(text.contains("attachment_size=100"), "{text}");
    assert!(frame.body.is_empty(), "an error carries no payload");
    assert_connection_usable(&mut stream, 12).await;
}

#[tokio::test]
async fn undecodable_request_payload_is_erequest_with_brpc_text_and_connection_survives() {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = connect(&server).await;
    let meta = request_meta("example.EchoService", "Echo", 0, 21, 0, 0, 0);
    let (cid, code, text, _) =
        round_trip(&mut stream, &frame_bytes(&meta, &[0xff, 0xff], b"")).await;
    assert_eq!((cid, code), (21, 1003), "{text}");
    assert_eq!(
        text,
        format!(
            "{}Fail to parse request=example.EchoRequest, ContentType=pb, CompressType=none, \
             ChecksumType=none, request_size=2",
            prefix(addr, 1003)
        )
    );
    assert_connection_usable(&mut stream, 22).await;
}

#[tokio::test]
async fn empty_payload_missing_a_required_field_is_erequest_as_in_brpc() {
    // EchoRequest is proto2 with `required string message = 1`: brpc's protobuf refuses an
    // empty payload, and so does Brisk (prost alone would decode it as message "").
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = connect(&server).await;
    let meta = request_meta("example.EchoService", "Echo", 0, 31, 0, 0, 0);
    let (cid, code, text, _) = round_trip(&mut stream, &frame_bytes(&meta, b"", b"")).await;
    assert_eq!((cid, code), (31, 1003), "{text}");
    assert_eq!(
        text,
        format!(
            "{}Fail to parse request=example.EchoRequest, ContentType=pb, CompressType=none, \
             ChecksumType=none, request_size=0",
            prefix(addr, 1003)
        )
    );
    // brpc's request_size counts the attachment too.
    let meta = request_meta("example.EchoService", "Echo", 0, 32, 0, 3, 0);
    let (_, code, text, _) = round_trip(&mut stream, &frame_bytes(&meta, b"", b"att")).await;
    assert_eq!(code, 1003, "{text}");
    assert!(text.ends_with(", request_size=3"), "{text}");
    assert_connection_usable(&mut stream, 33).await;
}

#[tokio::test]
async fn a_missing_required_field_over_hulu_is_worded_as_brpcs_hulu_server() {
    use brisk::protocol::hulu_pbrpc::HuluRpcRequestMeta;
    let (server, _arrivals) = start_server().await;
    let meta = HuluRpcRequestMeta {
        service_name: "EchoService".into(),
        method_index: 0,
        correlation_id: Some(9),
        ..Default::default()
    };
    let reply = hulu_round_trip(&server, &meta, b"").await;
    assert_eq!(reply.error_code, Some(brisk::errno::EREQUEST));
    assert_eq!(
        reply.error_text.unwrap(),
        format!(
            "[{}][E1003]Fail to parse request message, CompressType=none, request_size=0",
            server.local_addr()
        )
    );
}

#[tokio::test]
async fn unsupported_compress_type_is_erequest_and_connection_survives() {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = connect(&server).await;
    // 6: no compression has that number (brpc's end at LZ4, 4; Brisk's zstd is 5).
    let meta = request_meta("example.EchoService", "Echo", 0, 41, 6, 0, 0);
    let bad = frame_bytes(&meta, &echo_payload("hello world"), b"");
    let (cid, code, text, _) = round_trip(&mut stream, &bad).await;
    assert_eq!((cid, code), (41, 1003), "{text}");
    assert!(text.starts_with(&prefix(addr, 1003)), "{text}");
    assert!(text.contains("compress_type=6"), "{text}");
    assert_connection_usable(&mut stream, 42).await;
    // LZ4 and zstd flags on payloads that are not LZ4 or zstd: EREQUEST too.
    for (compress, cid) in [(4, 43), (5, 44)] {
        let meta = request_meta("example.EchoService", "Echo", 0, cid, compress, 0, 0);
        let bad = frame_bytes(&meta, &echo_payload("hello world"), b"");
        let (got, code, text, _) = round_trip(&mut stream, &bad).await;
        assert_eq!((got, code), (cid, 1003), "{text}");
    }
    assert_connection_usable(&mut stream, 45).await;
}

#[tokio::test]
async fn gzip_flag_on_a_plain_payload_is_erequest_and_connection_survives() {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = connect(&server).await;
    let meta = request_meta("example.EchoService", "Echo", 0, 51, 2, 0, 0);
    let bad = frame_bytes(&meta, &echo_payload("hello world"), b"");
    let (cid, code, text, _) = round_trip(&mut stream, &bad).await;
    assert_eq!((cid, code), (51, 1003), "{text}");
    assert!(text.starts_with(&prefix(addr, 1003)), "{text}");
    assert!(text.contains("decompress"), "{text}");
    assert_connection_usable(&mut stream, 52).await;
}

#[tokio::test]
async fn unknown_method_and_service_are_enomethod_with_brpc_text() {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = connect(&server).await;
    let payload = echo_payload("hello world");
    for (cid, service, method) in [
        (61, "example.EchoService", "Nope"),
        (62, "example.EchoServicX", "Echo"),
        (63, "brisk.test.TestService", "Echo"),
    ] {
        let meta = request_meta(service, method, 0, cid, 0, 0, 0);
        let (got_cid, code, text, frame) =
            round_trip(&mut stream, &frame_bytes(&meta, &payload, b"")).await;
        assert_eq!((got_cid, code), (cid, 1002));
        assert_eq!(
            text,
            format!("[{addr}][E1002]Fail to find method={service}/{method}")
        );
        assert!(frame.body.is_empty());
    }
    assert_connection_usable(&mut stream, 64).await;
}

#[tokio::test]
async fn unknown_short_service_name_is_enoservice_like_brpc() {
    // brpc (baidu_rpc_protocol.cpp, ProcessRpcRequest): a service name without '.' is looked up
    // by short name first (for jprotobuf); when that fails the reply is ENOSERVICE.
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = connect(&server).await;
    let meta = request_meta("NoSuchService", "Echo", 0, 65, 0, 0, 0);
    let (cid, code, text, _) =
        round_trip(&mut stream, &frame_bytes(&meta, &echo_payload("x"), b"")).await;
    assert_eq!((cid, code), (65, 1001), "{text}");
    assert_eq!(
        text,
        format!("[{addr}][E1001]Fail to find service=NoSuchService")
    );
    assert_connection_usable(&mut stream, 66).await;
}

#[tokio::test]
async fn known_short_service_name_with_unknown_method_is_enomethod() {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = connect(&server).await;
    let meta = request_meta("EchoService", "Nope", 0, 67, 0, 0, 0);
    let (cid, code, text, _) =
        round_trip(&mut stream, &frame_bytes(&meta, &echo_payload("x"), b"")).await;
    assert_eq!((cid, code), (67, 1002), "{text}");
    assert_eq!(
        text,
        format!("[{addr}][E1002]Fail to find method=EchoService/Nope")
    );
    // The short name itself is served.
    let meta = request_meta("EchoService", "Echo", 0, 68, 0, 0, 0);
    let (cid, code, text, _) =
        round_trip(&mut stream, &frame_bytes(&meta, &echo_payload("x"), b"")).await;
    assert_eq!((cid, code), (68, 0), "{text}");
}

#[tokio::test]
async fn handler_error_reaches_the_client_with_its_code_and_text() {
    let (server, _arrivals) = start_server().await;
    let client = TestServiceClient::new(channel_to(&server, HANG_GUARD).await);
    let mut cntl = brisk::Controller::new();
    let err = client
        .fail_with(
            &mut cntl,
            FailRequest {
                code: 4321,
                text: "custom".into(),
                panic: false,
            },
        )
        .await
        .expect_err("the handler fails");
    assert_eq!(err.code(), 4321);
    assert!(err.message().contains("custom"), "{err}");
    // The wire carries brpc's `[address][E4321]custom`; the client keeps code, server and
    // text apart.
    assert_eq!(err.message(), "custom");
    assert_eq!(err.remote_side(), Some(server.local_addr()));
    assert_eq!(
        err.to_string(),
        format!("[E4321][{}]custom", server.local_addr())
    );
    assert_eq!(cntl.error_code(), 4321);
    assert_serves(&server).await;
}

#[tokio::test]
async fn handler_panic_is_einternal_and_server_keeps_serving() {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let client = TestServiceClient::new(channel_to(&server, HANG_GUARD).await);
    let panic_request = FailRequest {
        code: 0,
        text: String::new(),
        panic: true,
    };
    let err = client
        .fail(panic_request.clone())
        .await
        .expect_err("the handler panics");
    assert_eq!(err.code(), 2001, "{err}");
    assert!(err.message().starts_with("handler panicked"), "{err}");
    assert_eq!(err.remote_side(), Some(addr));
    assert_serves(&server).await;

    // The raw connection that carried the panicking request stays usable too.
    let mut stream = connect(&server).await;
    let meta = request_meta("brisk.test.TestService", "Fail", 0, 71, 0, 0, 0);
    let bad = frame_bytes(&meta, &panic_request.encode_to_vec(), b"");
    let (cid, code, text, _) = round_trip(&mut stream, &bad).await;
    assert_eq!((cid, code), (71, 2001), "{text}");
    assert_connection_usable(&mut stream, 72).await;
}

#[tokio::test]
async fn oversized_body_on_one_connection_does_not_disturb_calls_in_flight() {
    let (server, mut arrivals) = start_server().await;
    let client = TestServiceClient::new(channel_to(&server, HANG_GUARD).await);
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .sleep(SleepRequest {
                        millis: 200,
                        tag: format!("call-{i}"),
                    })
                    .await
            })
        })
        .collect();
    // Every call is in the server's hands before the bad frame goes out.
    let mut arrived = Vec::new();
    for _ in 0..calls.len() {
        let tag = tokio::time::timeout(HANG_GUARD, arrivals.recv())
            .await
            .expect("the call arrives")
            .expect("server alive");
        arrived.push(tag);
    }
    arrived.sort();
    assert_eq!(arrived, ["call-0", "call-1", "call-2", "call-3"]);

    let mut stream = connect(&server).await;
    stream
        .write_all(&header(DEFAULT_MAX_BODY_SIZE as u32 + 1, 10))
        .await
        .unwrap();
    assert!(expect_closed(&mut stream).await.is_empty());

    for (i, call) in calls.into_iter().enumerate() {
        let reply = tokio::time::timeout(HANG_GUARD, call)
            .await
            .expect("the call ends")
            .unwrap()
            .unwrap_or_else(|e| panic!("call-{i} failed: {e}"));
        assert_eq!(reply.tag, format!("call-{i}"));
    }
    assert_serves(&server).await;
}

/// A registered protocol that can never make up its mind about a connection of `z`s (and says
/// no to anything else, so this binary's other tests are unaffected).
struct Undecided;

impl brisk::protocol::ServerCodec for Undecided {
    fn name(&self) -> &'static str {
        "undecided"
    }

    fn detect(&self, prefix: &[u8]) -> brisk::protocol::Detection {
        if prefix.iter().all(|&b| b == b'z') {
            brisk::protocol::Detection::NeedMore
        } else {
            brisk::protocol::Detection::No
        }
    }

    fn decode_request(
        &self,
        _buf: &mut BytesMut,
        _max_body_size: usize,
    ) -> Result<Option<brisk::protocol::IncomingRequest>, brisk::protocol::ParseError> {
        Err(brisk::protocol::ParseError::new("never reached"))
    }

    fn encode_response(
        &self,
        _response: brisk::protocol::OutgoingResponse<'_>,
    ) -> Result<brisk::protocol::OutFrame, brisk::Status> {
        Err(brisk::Status::internal("never reached"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_reads_a_bounded_prefix_and_registered_protocols_come_after_the_builtins() {
    // Registered once per test process.
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| brisk::protocol::register_server(Undecided).unwrap());
    let (server, _) = start_server().await;
    // Bytes no protocol claims, in one stream: the server reads 1 KiB or so, not forever.
    let mut stream = connect(&server).await;
    let junk = vec![b'z'; 64 * 1024];
    let written = tokio::time::timeout(HANG_GUARD, stream.write_all(&junk)).await;
    let received = expect_closed(&mut stream).await;
    assert!(received.is_empty());
    drop(written);
    // baidu_std, HTTP/1.1 and HTTP/2 are still recognised at once.
    assert_serves(&server).await;
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// brpc's other protocols: hulu_pbrpc, sofa_pbrpc, nshead (and public_pbrpc, nova_pbrpc on it).

/// A hulu_pbrpc frame: `HULU`, little-endian body and meta sizes, then `meta` and `rest`.
fn hulu_frame(meta: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut frame = b"HULU".to_vec();
    frame.extend_from_slice(&((meta.len() + rest.len()) as u32).to_le_bytes());
    frame.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    frame.extend_from_slice(meta);
    frame.extend_from_slice(rest);
    frame
}

fn hulu_echo(cid: i64) -> Vec<u8> {
    use brisk::protocol::hulu_pbrpc::HuluRpcRequestMeta;
    let meta = HuluRpcRequestMeta {
        service_name: "EchoService".into(),
        method_index: 0,
        correlation_id: Some(cid),
        ..Default::default()
    };
    hulu_frame(&meta.encode_to_vec(), &echo_payload("hulu"))
}

/// Sends one hulu_pbrpc request (`meta`, then `rest`) on a new connection and reads the meta
/// of the reply.
async fn hulu_round_trip(
    server: &brisk::Server,
    meta: &brisk::protocol::hulu_pbrpc::HuluRpcRequestMeta,
    rest: &[u8],
) -> brisk::protocol::hulu_pbrpc::HuluRpcResponseMeta {
    let mut stream = connect(server).await;
    stream
        .write_all(&hulu_frame(&meta.encode_to_vec(), rest))
        .await
        .unwrap();
    let mut header = [0u8; 12];
    tokio::time::timeout(HANG_GUARD, stream.read_exact(&mut header))
        .await
        .unwrap()
        .unwrap();
    let body_len = u32::from_le_bytes(header[4..8].try_into().unwrap()) as usize;
    let mut body = vec![0; body_len];
    stream.read_exact(&mut body).await.unwrap();
    brisk::protocol::hulu_pbrpc::HuluRpcResponseMeta::decode(&body[..]).unwrap()
}

/// A sofa_pbrpc header with the given sizes.
fn sofa_header(meta: u32, body: u64, total: u64) -> Vec<u8> {
    let mut header = b"SOFA".to_vec();
    header.extend_from_slice(&meta.to_le_bytes());
    header.extend_from_slice(&body.to_le_bytes());
    header.extend_from_slice(&total.to_le_bytes());
    header
}

/// An nshead header claiming `body_len` bytes, `provider` set.
fn nshead_header(body_len: u32, provider: &str) -> Vec<u8> {
    let mut bytes = BytesMut::new();
    brisk::protocol::nshead::NsheadHead::default()
        .with_provider(provider)
        .encode(&mut bytes, body_len);
    bytes.to_vec()
}

/// Sends `bad`, half-closes, and expects the server to close without a reply.
async fn assert_closes_after_half_close(server: &brisk::Server, bad: &[u8]) {
    let mut stream = connect(server).await;
    stream.write_all(bad).await.unwrap();
    stream.shutdown().await.unwrap();
    assert!(expect_closed(&mut stream).await.is_empty());
    assert_serves(server).await;
}

#[tokio::test]
async fn bad_hulu_frames_close_their_connection_only() {
    let (server, _arrivals) = start_server().await;
    // A good frame is answered (with hulu's magic).
    let mut stream = connect(&server).await;
    stream.write_all(&hulu_echo(9)).await.unwrap();
    let mut head = [0u8; 4];
    tokio::time::timeout(HANG_GUARD, stream.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&head, b"HULU");
    // Bad magic after it closes the connection.
    let mut bad = hulu_echo(10);
    bad[3] = b'X';
    stream.write_all(&bad).await.unwrap();
    let rest = expect_closed(&mut stream).await;
    assert!(!rest.is_empty(), "the first reply still arrives");
    // Body over max_body_size, meta bigger than body, undecodable meta.
    let mut too_big = b"HULU".to_vec();
    too_big.extend_from_slice(&(DEFAULT_MAX_BODY_SIZE as u32 + 1).to_le_bytes());
    too_big.extend_from_slice(&0u32.to_le_bytes());
    assert_closes_silently(&server, &too_big).await;
    let mut meta_over_body = b"HULU".to_vec();
    meta_over_body.extend_from_slice(&4u32.to_le_bytes());
    meta_over_body.extend_from_slice(&5u32.to_le_bytes());
    meta_over_body.extend_from_slice(&[0; 4]);
    assert_closes_silently(&server, &meta_over_body).await;
    assert_closes_silently(&server, &hulu_frame(b"\xff\xff\xff", b"")).await;
    // Truncated: a header and half a body, then the client leaves.
    assert_closes_after_half_close(&server, &hulu_echo(11)[..20]).await;
}

#[tokio::test]
async fn bad_sofa_frames_close_their_connection_only() {
    let (server, _arrivals) = start_server().await;
    // message_size must be meta_size + body_size.
    assert_closes_silently(&server, &sofa_header(1, 2, 4)).await;
    assert_closes_silently(&server, &sofa_header(1, u64::MAX, 0)).await;
    let huge = DEFAULT_MAX_BODY_SIZE as u64 + 1;
    assert_closes_silently(&server, &sofa_header(0, huge, huge)).await;
    // An undecodable meta, and a response where a request belongs.
    let mut garbage = sofa_header(3, 0, 3);
    garbage.extend_from_slice(b"\xff\xff\xff");
    assert_closes_silently(&server, &garbage).await;
    use brisk::protocol::sofa_pbrpc::{SofaRpcMeta, RESPONSE};
    let meta = SofaRpcMeta {
        r#type: RESPONSE,
        sequence_id: 1,
        ..Default::default()
    }
    .encode_to_vec();
    let mut response = sofa_header(meta.len() as u32, 0, meta.len() as u64);
    response.extend_from_slice(&meta);
    assert_closes_silently(&server, &response).await;
    assert_closes_after_half_close(&server, &sofa_header(0, 10, 10)).await;
}

#[tokio::test]
async fn bad_nshead_messages_close_their_connection_only() {
    let (server, _arrivals) = start_server().await;
    // Over max_body_size.
    assert_closes_silently(
        &server,
        &nshead_header(DEFAULT_MAX_BODY_SIZE as u32 + 1, ""),
    )
    .await;
    // public_pbrpc bodies that do not decode, or carry no request body.
    let mut garbage = nshead_header(3, "__pbrpc__");
    garbage.extend_from_slice(b"\xff\xff\xff");
    assert_closes_silently(&server, &garbage).await;
    let empty = nshead_header(0, "__pbrpc__");
    assert_closes_silently(&server, &empty).await;
    // Plain nshead to a server with no NsheadService: nothing can answer it.
    let mut plain = nshead_header(2, "");
    plain.extend_from_slice(b"hi");
    assert_closes_silently(&server, &plain).await;
    // Truncated.
    assert_closes_after_half_close(&server, &nshead_header(10, "")[..36]).await;
}

#[tokio::test]
async fn an_nshead_handler_error_closes_the_connection_after_earlier_replies() {
    /// Fails bodies that say "fail", echoes the others.
    struct FailOnAsk;
    impl brisk::NsheadService for FailOnAsk {
        async fn process(
            &self,
            _cntl: &mut brisk::ServerContext,
            request: brisk::NsheadMessage,
        ) -> Result<bytes::Bytes, brisk::Status> {
            if &request.body[..] == b"fail" {
                return Err(brisk::Status::new(brisk::errno::EINTERNAL, "asked to fail"));
            }
            Ok(request.body)
        }
    }
    let server = brisk::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .nshead_service(FailOnAsk)
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let mut ok = nshead_header(2, "");
    ok.extend_from_slice(b"ok");
    let mut fail = nshead_header(4, "");
    fail.extend_from_slice(b"fail");
    let mut stream = connect(&server).await;
    stream
        .write_all(&[ok.clone(), fail, ok.clone()].concat())
        .await
        .unwrap();
    let received = expect_closed(&mut stream).await;
    assert_eq!(received, ok, "the reply before the failure, then the close");
    assert_serves(&server).await;
}

#[tokio::test]
async fn a_negative_hulu_method_index_is_named_as_it_came() {
    use brisk::protocol::hulu_pbrpc::HuluRpcRequestMeta;
    let (server, _arrivals) = start_server().await;
    let meta = HuluRpcRequestMeta {
        service_name: "EchoService".into(),
        method_index: -3,
        correlation_id: Some(5),
        ..Default::default()
    };
    let reply = hulu_round_trip(&server, &meta, &echo_payload("x")).await;
    assert_eq!(reply.error_code, Some(brisk::errno::ENOMETHOD));
    assert_eq!(
        reply.error_text.unwrap(),
        format!(
            "[{}][E1002]Fail to find method=-3 of service=EchoService",
            server.local_addr()
        )
    );
    assert_eq!(reply.correlation_id, Some(5));
}
