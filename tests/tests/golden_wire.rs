//! Brisk against the bytes real brpc 1.17 put on the wire (`tests/golden/`, see its README).
//!
//! - every baidu_std sample decodes to the fields its `.meta.txt` documents;
//! - re-encoding a decoded sample, or building it with `request_meta`/`response_meta`,
//!   reproduces the file byte for byte;
//! - a Brisk server answers brpc's requests with brpc's responses, byte for byte;
//! - a Brisk client sends brpc's request bytes and understands brpc's responses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use brisk::protocol::baidu_std::{
    decode_frame, request_meta, response_meta, Frame, RpcMeta, DEFAULT_MAX_BODY_SIZE,
};
use brisk_tests::echo::{EchoRequest, EchoResponse, EchoServiceClient};
use brisk_tests::raw::{frame_bytes, read_frame_bytes, HANG_GUARD};
use brisk_tests::{start_server, wire_sample};
use bytes::{Bytes, BytesMut};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// The correlation id of the `_0` samples (and of the error samples, which derive from them).
const CID_0: i64 = 4294967298;
/// The address brpc's server listened on when the error samples were captured.
const BRPC_ADDR: &str = "127.0.0.1:18000";

/// The baidu_std samples: every request with the response brpc gave it.
const PAIRS: [(&str, &str); 6] = [
    ("echo_noattach_request_0", "echo_noattach_response_0"),
    ("echo_noattach_request_1", "echo_noattach_response_1"),
    ("echo_attach_request_0", "echo_attach_response_0"),
    ("echo_attach_request_1", "echo_attach_response_1"),
    ("err_req_unknown_method", "err_resp_unknown_method"),
    ("err_req_unknown_service", "err_resp_unknown_service"),
];

fn sample(name: &str) -> Vec<u8> {
    let path = wire_sample(&format!("{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Decodes a sample that must hold exactly one frame.
fn decode_sample(name: &str) -> Frame {
    let mut buf = BytesMut::from(&sample(name)[..]);
    let frame = decode_frame(&mut buf, DEFAULT_MAX_BODY_SIZE)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .unwrap_or_else(|| panic!("{name}: incomplete frame"));
    assert!(buf.is_empty(), "{name}: {} bytes left over", buf.len());
    frame
}

/// A frame re-encoded with its meta changed by `edit`.
fn reencode_with(frame: &Frame, edit: impl FnOnce(&mut RpcMeta)) -> Vec<u8> {
    let mut meta = frame.meta.clone();
    edit(&mut meta);
    let (payload, attachment) = frame.split_body().expect("body splits");
    frame_bytes(&meta, &payload, &attachment)
}

/// `(body_size, meta_size)` from a frame's header.
fn header_sizes(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..4], b"PRPC");
    (
        u32::from_be_bytes(bytes[4..8].try_into().unwrap()),
        u32::from_be_bytes(bytes[8..12].try_into().unwrap()),
    )
}

/// The metadata fields every brpc 1.17 frame carries, whatever its direction.
fn assert_common_fields(name: &str, meta: &RpcMeta, correlation_id: i64, attachment: &[u8]) {
    assert_eq!(meta.compress_type, Some(0), "{name}: compress_type");
    assert_eq!(
        meta.correlation_id,
        Some(correlation_id),
        "{name}: correlation_id"
    );
    let attachment_size = (!attachment.is_empty()).then_some(attachment.len() as i32);
    assert_eq!(
        meta.attachment_size, attachment_size,
        "{name}: attachment_size"
    );
    assert_eq!(meta.content_type, Some(0), "{name}: content_type PB");
    assert_eq!(meta.checksum_type, Some(0), "{name}: checksum_type");
    assert_eq!(
        meta.checksum_value.as_deref(),
        Some(&b""[..]),
        "{name}: checksum_value"
    );
    assert_eq!(meta.checksum_with_attachment, None, "{name}");
    assert_eq!(meta.chunk_info, None, "{name}");
    assert_eq!(meta.authentication_data, None, "{name}");
    assert_eq!(meta.stream_settings, None, "{name}");
    assert!(meta.user_fields.is_empty(), "{name}");
}

/// Checks a request sample field by field; the payload is EchoRequest "hello world".
fn check_request(
    name: &str,
    service: &str,
    method: &str,
    log_id: i64,
    correlation_id: i64,
    attachment: &[u8],
) {
    let frame = decode_sample(name);
    let request = frame.meta.request.as_ref().expect("request meta");
    assert!(frame.meta.response.is_none(), "{name}: no response meta");
    assert_eq!(request.service_name, service, "{name}");
    assert_eq!(request.method_name, method, "{name}");
    assert_eq!(request.log_id, Some(log_id), "{name}: log_id");
    assert_eq!(request.trace_id, None, "{name}");
    assert_eq!(request.span_id, None, "{name}");
    assert_eq!(request.parent_span_id, None, "{name}");
    assert_eq!(request.request_id, None, "{name}");
    assert_eq!(request.timeout_ms, None, "{name}");
    assert_common_fields(name, &frame.meta, correlation_id, attachment);
    let (payload, got_attachment) = frame.split_body().expect("body splits");
    assert_eq!(&payload[..], b"\x0a\x0bhello world", "{name}: payload");
    let message = EchoRequest::decode(payload).expect("EchoRequest");
    assert_eq!(message.message, "hello world");
    assert_eq!(&got_attachment[..], attachment, "{name}: attachment");
}

/// Checks a response sample field by field: a successful one carries EchoResponse
/// "hello world", a failed one `error` and no payload.
fn check_response(name: &str, correlation_id: i64, attachment: &[u8], error: Option<(i32, &str)>) {
    let frame = decode_sample(name);
    let response = frame.meta.response.as_ref().expect("response meta");
    assert!(frame.meta.request.is_none(), "{name}: no request meta");
    assert_common_fields(name, &frame.meta, correlation_id, attachment);
    let (payload, got_attachment) = frame.split_body().expect("body splits");
    assert_eq!(&got_attachment[..], attachment, "{name}: attachment");
    match error {
        None => {
            assert_eq!(response.error_code, Some(0), "{name}: error_code");
            assert_eq!(response.error_text, None, "{name}: no error_text");
            let message = EchoResponse::decode(payload).expect("EchoResponse");
            assert_eq!(message.message, "hello world");
        }
        Some((code, text)) => {
            assert_eq!(response.error_code, Some(code), "{name}: error_code");
            assert_eq!(response.error_text.as_deref(), Some(text), "{name}");
            assert!(payload.is_empty(), "{name}: an error carries no payload");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding each sample.

#[test]
fn echo_noattach_request_0_decodes_as_documented() {
    check_request(
        "echo_noattach_request_0",
        "example.EchoService",
        "Echo",
        0,
        CID_0,
        b"",
    );
    let bytes = sample("echo_noattach_request_0");
    assert_eq!(bytes.len(), 70);
    assert_eq!(header_sizes(&bytes), (58, 45));
}

#[test]
fn echo_noattach_request_1_decodes_as_documented() {
    check_request(
        "echo_noattach_request_1",
        "example.EchoService",
        "Echo",
        1,
        8589934598,
        b"",
    );
}

#[test]
fn echo_attach_request_0_decodes_as_documented() {
    check_request(
        "echo_attach_request_0",
        "example.EchoService",
        "Echo",
        0,
        CID_0,
        b"foo",
    );
    let bytes = sample("echo_attach_request_0");
    assert_eq!(bytes.len(), 75);
    assert_eq!(&bytes[bytes.len() - 3..], b"foo");
}

#[test]
fn echo_attach_request_1_decodes_as_documented() {
    check_request(
        "echo_attach_request_1",
        "example.EchoService",
        "Echo",
        1,
        12884901890,
        b"foo",
    );
}

#[test]
fn echo_noattach_response_0_decodes_as_documented() {
    check_response("echo_noattach_response_0", CID_0, b"", None);
    let bytes = sample("echo_noattach_response_0");
    assert_eq!(bytes.len(), 43);
    assert_eq!(header_sizes(&bytes), (31, 18));
}

#[test]
fn echo_noattach_response_1_decodes_as_documented() {
    check_response("echo_noattach_response_1", 8589934598, b"", None);
}

#[test]
fn echo_attach_response_0_decodes_as_documented() {
    check_response("echo_attach_response_0", CID_0, b"foo", None);
    assert_eq!(sample("echo_attach_response_0").len(), 48);
}

#[test]
fn echo_attach_response_1_decodes_as_documented() {
    check_response("echo_attach_response_1", 12884901890, b"foo", None);
}

#[test]
fn err_req_unknown_method_decodes_as_documented() {
    check_request(
        "err_req_unknown_method",
        "example.EchoService",
        "Nope",
        0,
        CID_0,
        b"",
    );
}

#[test]
fn err_req_unknown_service_decodes_as_documented() {
    check_request(
        "err_req_unknown_service",
        "example.EchoServicX",
        "Echo",
        0,
        CID_0,
        b"",
    );
}

#[test]
fn err_resp_unknown_method_decodes_as_documented() {
    check_response(
        "err_resp_unknown_method",
        CID_0,
        b"",
        Some((
            1002,
            "[127.0.0.1:18000][E1002]Fail to find method=example.EchoService/Nope",
        )),
    );
    let bytes = sample("err_resp_unknown_method");
    assert_eq!(bytes.len(), 101);
    assert_eq!(header_sizes(&bytes), (89, 89), "meta only, no payload");
}

#[test]
fn err_resp_unknown_service_decodes_as_documented() {
    // brpc says ENOMETHOD (1002), not ENOSERVICE, for an unknown service.
    check_response(
        "err_resp_unknown_service",
        CID_0,
        b"",
        Some((
            1002,
            "[127.0.0.1:18000][E1002]Fail to find method=example.EchoServicX/Echo",
        )),
    );
    assert_eq!(header_sizes(&sample("err_resp_unknown_service")), (89, 89));
}

#[test]
fn two_samples_back_to_back_decode_in_order() {
    let mut buf = BytesMut::from(&sample("echo_attach_request_0")[..]);
    buf.extend_from_slice(&sample("echo_noattach_request_1"));
    let first = decode_frame(&mut buf, DEFAULT_MAX_BODY_SIZE)
        .unwrap()
        .unwrap();
    let second = decode_frame(&mut buf, DEFAULT_MAX_BODY_SIZE)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    assert_eq!(first.meta.attachment_size, Some(3));
    assert_eq!(&first.body[first.body.len() - 3..], b"foo");
    assert_eq!(second.meta.correlation_id, Some(8589934598));
    assert_eq!(second.meta.attachment_size, None);
}

// ---------------------------------------------------------------------------------------------
// Encoding.

#[test]
fn reencoding_every_sample_reproduces_it_byte_for_byte() {
    for (request, response) in PAIRS {
        for name in [request, response] {
            let frame = decode_sample(name);
            let (payload, attachment) = frame.split_body().unwrap();
            assert_eq!(
                frame_bytes(&frame.meta, &payload, &attachment),
                sample(name),
                "{name}"
            );
        }
    }
}

#[test]
fn request_meta_builds_brpc_request_bytes() {
    let payload = EchoRequest {
        message: "hello world".into(),
    }
    .encode_to_vec();
    let cases = [
        ("echo_noattach_request_0", "Echo", 0, CID_0, &b""[..]),
        ("echo_noattach_request_1", "Echo", 1, 8589934598, b""),
        ("echo_attach_request_0", "Echo", 0, CID_0, b"foo"),
        ("echo_attach_request_1", "Echo", 1, 12884901890, b"foo"),
        ("err_req_unknown_method", "Nope", 0, CID_0, b""),
    ];
    for (name, method, log_id, cid, attachment) in cases {
        let meta = request_meta(
            "example.EchoService",
            method,
            log_id,
            cid,
            0,
            attachment.len(),
            0,
        );
        assert_eq!(
            frame_bytes(&meta, &payload, attachment),
            sample(name),
            "{name}"
        );
    }
    let meta = request_meta("example.EchoServicX", "Echo", 0, CID_0, 0, 0, 0);
    assert_eq!(
        frame_bytes(&meta, &payload, b""),
        sample("err_req_unknown_service")
    );
}

#[test]
fn response_meta_builds_brpc_response_bytes() {
    let payload = EchoResponse {
        message: "hello world".into(),
    }
    .encode_to_vec();
    let cases = [
        ("echo_noattach_response_0", CID_0, &b""[..]),
        ("echo_noattach_response_1", 8589934598, b""),
        ("echo_attach_response_0", CID_0, b"foo"),
        ("echo_attach_response_1", 12884901890, b"foo"),
    ];
    for (name, cid, attachment) in cases {
        let meta = response_meta(cid, 0, attachment.len(), None);
        assert_eq!(
            frame_bytes(&meta, &payload, attachment),
            sample(name),
            "{name}"
        );
    }
    for (name, target) in [
        ("err_resp_unknown_method", "example.EchoService/Nope"),
        ("err_resp_unknown_service", "example.EchoServicX/Echo"),
    ] {
        let text = format!("[{BRPC_ADDR}][E1002]Fail to find method={target}");
        let meta = response_meta(CID_0, 0, 0, Some((1002, text)));
        assert_eq!(frame_bytes(&meta, b"", b""), sample(name), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// A Brisk server answering brpc's requests.

/// What a Brisk server at `addr` must answer to `request`: brpc's response, with brpc's address
/// in the error text replaced by Brisk's.
fn expected_reply(response: &str, addr: SocketAddr) -> Vec<u8> {
    let frame = decode_sample(response);
    let Some(text) = frame
        .meta
        .response
        .as_ref()
        .and_then(|r| r.error_text.clone())
    else {
        return sample(response);
    };
    let brpc_prefix = format!("[{BRPC_ADDR}]");
    assert!(text.starts_with(&brpc_prefix), "{text}");
    let text = text.replacen(&brpc_prefix, &format!("[{addr}]"), 1);
    reencode_with(&frame, |meta| {
        meta.response.as_mut().unwrap().error_text = Some(text);
    })
}

async fn replay_one(request: &str, response: &str) {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&sample(request)).await.unwrap();
    let mut buf = BytesMut::new();
    let reply = read_frame_bytes(&mut stream, &mut buf).await;
    assert_eq!(
        reply,
        expected_reply(response, addr),
        "{request}: reply differs from brpc's {response}"
    );
    assert!(buf.is_empty(), "nothing but the reply");
}

#[tokio::test]
async fn server_answers_echo_noattach_request_0_like_brpc() {
    replay_one("echo_noattach_request_0", "echo_noattach_response_0").await;
}

#[tokio::test]
async fn server_answers_echo_noattach_request_1_like_brpc() {
    replay_one("echo_noattach_request_1", "echo_noattach_response_1").await;
}

#[tokio::test]
async fn server_answers_echo_attach_request_0_like_brpc() {
    replay_one("echo_attach_request_0", "echo_attach_response_0").await;
}

#[tokio::test]
async fn server_answers_echo_attach_request_1_like_brpc() {
    replay_one("echo_attach_request_1", "echo_attach_response_1").await;
}

#[tokio::test]
async fn server_answers_unknown_method_like_brpc() {
    replay_one("err_req_unknown_method", "err_resp_unknown_method").await;
    // And the exact text, spelled out.
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&sample("err_req_unknown_method"))
        .await
        .unwrap();
    let reply = read_frame_bytes(&mut stream, &mut BytesMut::new()).await;
    let frame = decode_frame(&mut BytesMut::from(&reply[..]), DEFAULT_MAX_BODY_SIZE)
        .unwrap()
        .unwrap();
    let response = frame.meta.response.unwrap();
    assert_eq!(response.error_code, Some(1002));
    assert_eq!(
        response.error_text.unwrap(),
        format!("[{addr}][E1002]Fail to find method=example.EchoService/Nope")
    );
    assert_eq!(frame.meta.correlation_id, Some(CID_0));
    assert!(frame.body.is_empty());
}

#[tokio::test]
async fn server_answers_unknown_service_like_brpc() {
    replay_one("err_req_unknown_service", "err_resp_unknown_service").await;
}

#[tokio::test]
async fn server_answers_every_golden_request_sent_in_one_write_on_one_connection() {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    // The samples share correlation ids (every `_0` one is 4294967298), so give each pair its
    // own before sending them together.
    let mut wire = Vec::new();
    let mut expected: HashMap<i64, (&str, Vec<u8>)> = HashMap::new();
    for (i, (request, response)) in PAIRS.into_iter().enumerate() {
        let cid = 1000 + i as i64;
        wire.extend(reencode_with(&decode_sample(request), |m| {
            m.correlation_id = Some(cid)
        }));
        let reply = expected_reply(response, addr);
        let reply = decode_frame(&mut BytesMut::from(&reply[..]), DEFAULT_MAX_BODY_SIZE)
            .unwrap()
            .unwrap();
        let reply = reencode_with(&reply, |m| m.correlation_id = Some(cid));
        expected.insert(cid, (request, reply));
    }
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&wire).await.unwrap();
    let mut buf = BytesMut::new();
    for _ in 0..PAIRS.len() {
        let reply = read_frame_bytes(&mut stream, &mut buf).await;
        let frame = decode_frame(&mut BytesMut::from(&reply[..]), DEFAULT_MAX_BODY_SIZE)
            .unwrap()
            .unwrap();
        let cid = frame.meta.correlation_id.expect("correlation id");
        let (request, want) = expected
            .remove(&cid)
            .unwrap_or_else(|| panic!("unexpected or repeated correlation id {cid}"));
        assert_eq!(reply, want, "reply to {request}");
    }
    assert!(expected.is_empty());
    assert!(buf.is_empty());
}

// ---------------------------------------------------------------------------------------------
// A Brisk client talking to a fake brpc server.

/// Runs one Echo call from a Brisk client against a raw listener that checks the request
/// against `request` (correlation id aside) and answers with `response` (correlation id
/// patched to the one received). Without `timeout` the call has no deadline, as brpc's
/// clients send none by default; with one, the request must be brpc's with `timeout_ms` (what
/// a brpc client sends with `-baidu_std_protocol_deliver_timeout_ms`).
async fn client_round_trip(
    request: &str,
    response: &str,
    attachment: &'static [u8],
    timeout: Option<Duration>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let channel = brisk::Channel::builder()
        .timeout(HANG_GUARD)
        .connect(&addr.to_string())
        .await
        .unwrap();
    let client = EchoServiceClient::new(channel);
    let call = tokio::spawn(async move {
        let mut cntl = brisk::Controller::new();
        // brpc's echo_client sets log ids (0, 1, ...), so its requests carry the field.
        cntl.set_log_id(0);
        match timeout {
            Some(timeout) => cntl.set_timeout(timeout),
            None => cntl.clear_timeout(),
        }
        if !attachment.is_empty() {
            cntl.set_request_attachment(attachment);
        }
        let reply = client
            .echo_with(
                &mut cntl,
                EchoRequest {
                    message: "hello world".into(),
                },
            )
            .await;
        (reply, cntl.response_attachment().clone())
    });

    let (mut stream, _) = tokio::time::timeout(HANG_GUARD, listener.accept())
        .await
        .expect("the channel connects")
        .unwrap();
    let mut buf = BytesMut::new();
    let got = read_frame_bytes(&mut stream, &mut buf).await;
    let frame = decode_frame(&mut BytesMut::from(&got[..]), DEFAULT_MAX_BODY_SIZE)
        .unwrap()
        .unwrap();
    let cid = frame.meta.correlation_id.expect("correlation id");
    let sent_timeout = frame.meta.request.as_ref().and_then(|r| r.timeout_ms);
    match timeout {
        None => assert_eq!(sent_timeout, None),
        Some(timeout) => {
            let ms = sent_timeout.expect("a call with a deadline sends timeout_ms");
            let full = timeout.as_millis() as i32;
            assert!(ms <= full && ms > full - 1000, "timeout_ms={ms} of {full}");
        }
    }
    let want = reencode_with(&decode_sample(request), |m| {
        m.correlation_id = Some(cid);
        if let Some(request) = m.request.as_mut() {
            request.timeout_ms = sent_timeout;
        }
    });
    assert_eq!(got, want, "Brisk's request differs from brpc's {request}");

    let reply = reencode_with(&decode_sample(response), |m| m.correlation_id = Some(cid));
    stream.write_all(&reply).await.unwrap();
    let (reply, response_attachment) = tokio::time::timeout(HANG_GUARD, call)
        .await
        .expect("the call ends")
        .unwrap();
    assert_eq!(reply.expect("call succeeds").message, "hello world");
    assert_eq!(response_attachment, Bytes::from_static(attachment));
}

#[tokio::test]
async fn client_sends_brpc_request_bytes_and_reads_brpc_response() {
    client_round_trip(
        "echo_noattach_request_0",
        "echo_noattach_response_0",
        b"",
        None,
    )
    .await;
}

#[tokio::test]
async fn client_sends_its_deadline_as_brpcs_timeout_ms() {
    let timeout = Some(Duration::from_secs(3));
    client_round_trip(
        "echo_noattach_request_0",
        "echo_noattach_response_0",
        b"",
        timeout,
    )
    .await;
}

#[tokio::test]
async fn client_sends_brpc_request_bytes_with_attachment_and_reads_it_back() {
    client_round_trip(
        "echo_attach_request_0",
        "echo_attach_response_0",
        b"foo",
        None,
    )
    .await;
}

#[tokio::test]
async fn client_reports_brpc_error_response() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let channel = brisk::Channel::builder()
        .timeout(HANG_GUARD)
        .connect(&addr.to_string())
        .await
        .unwrap();
    let client = EchoServiceClient::new(channel);
    let call = tokio::spawn(async move {
        client
            .echo(EchoRequest {
                message: "hello world".into(),
            })
            .await
    });
    let (mut stream, _) = tokio::time::timeout(HANG_GUARD, listener.accept())
        .await
        .expect("the channel connects")
        .unwrap();
    let got = read_frame_bytes(&mut stream, &mut BytesMut::new()).await;
    let frame = decode_frame(&mut BytesMut::from(&got[..]), DEFAULT_MAX_BODY_SIZE)
        .unwrap()
        .unwrap();
    let cid = frame.meta.correlation_id.unwrap();
    let reply = reencode_with(&decode_sample("err_resp_unknown_method"), |m| {
        m.correlation_id = Some(cid)
    });
    stream.write_all(&reply).await.unwrap();
    let err = tokio::time::timeout(HANG_GUARD, call)
        .await
        .expect("the call ends")
        .unwrap()
        .expect_err("brpc's error reply fails the call");
    // brpc's `[address][E1002]` prefix is taken off the text; the server is named once.
    assert_eq!(err.code(), 1002);
    assert_eq!(
        err.message(),
        "Fail to find method=example.EchoService/Nope"
    );
    assert_eq!(err.remote_side(), Some(addr));
    assert_eq!(
        err.to_string(),
        format!("[E1002][{addr}]Fail to find method=example.EchoService/Nope")
    );
}

#[tokio::test]
async fn a_call_without_a_log_id_sends_none_as_brpc() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let channel = brisk::Channel::builder()
        .timeout(HANG_GUARD)
        .connect(&listener.local_addr().unwrap().to_string())
        .await
        .unwrap();
    let call = tokio::spawn(async move {
        EchoServiceClient::new(channel)
            .echo(EchoRequest {
                message: "hello world".into(),
            })
            .await
    });
    let (mut stream, _) = listener.accept().await.unwrap();
    let got = read_frame_bytes(&mut stream, &mut BytesMut::new()).await;
    let frame = decode_frame(&mut BytesMut::from(&got[..]), DEFAULT_MAX_BODY_SIZE)
        .unwrap()
        .unwrap();
    assert_eq!(frame.meta.request.unwrap().log_id, None);
    drop((stream, call));
}
