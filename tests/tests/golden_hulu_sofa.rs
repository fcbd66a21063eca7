//! hulu_pbrpc and sofa_pbrpc against the bytes a real brpc 1.17 put on the wire
//! (`tests/golden/hulu_pbrpc/`, `tests/golden/sofa_pbrpc/`; see their README):
//!
//! - every sample decodes to the fields its README documents, and its meta re-encodes to the
//!   same bytes;
//! - a Brisk server answers brpc's requests with brpc's responses, byte for byte (the server's
//!   address in error texts aside);
//! - a Brisk client sends brpc's request bytes (the correlation id aside) and understands brpc's
//!   responses, errors included.

use std::net::SocketAddr;

use brisk::protocol::hulu_pbrpc::{HuluRpcRequestMeta, HuluRpcResponseMeta};
use brisk::protocol::sofa_pbrpc::{SofaRpcMeta, REQUEST, RESPONSE};
use brisk::{errno, Controller};
use brisk_tests::echo::{EchoRequest, EchoResponse, EchoServiceClient};
use brisk_tests::raw::HANG_GUARD;
use brisk_tests::{start_server, wire_sample};
use bytes::{Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The correlation ids of the `_0` and `_1` samples.
const CID_0: u64 = 4294967298;
const CID_1: u64 = 12884901890;
/// Where brpc's server listened when the error samples were captured.
const BRPC_ADDR: &str = "127.0.0.1:18100";

fn sample(protocol: &str, name: &str) -> Vec<u8> {
    let path = wire_sample(&format!("{protocol}/{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn le32(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

fn le64(bytes: &[u8], at: usize) -> usize {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize
}

/// The two protocols' frame layouts.
#[derive(Clone, Copy, Debug)]
enum Proto {
    Hulu,
    Sofa,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Hulu => "hulu_pbrpc",
            Proto::Sofa => "sofa_pbrpc",
        }
    }

    fn header_len(self) -> usize {
        match self {
            Proto::Hulu => 12,
            Proto::Sofa => 24,
        }
    }

    /// `(meta, rest)` of a whole frame, checking its header's sizes.
    fn split(self, frame: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (meta_len, rest_len) = match self {
            Proto::Hulu => {
                assert_eq!(&frame[..4], b"HULU");
                let (body, meta) = (le32(frame, 4), le32(frame, 8));
                (meta, body - meta)
            }
            Proto::Sofa => {
                assert_eq!(&frame[..4], b"SOFA");
                let (meta, body, total) = (le32(frame, 4), le64(frame, 8), le64(frame, 16));
                assert_eq!(total, meta + body, "message_size = meta + body");
                (meta, body)
            }
        };
        let at = self.header_len();
        assert_eq!(frame.len(), at + meta_len + rest_len, "one whole frame");
        (
            frame[at..at + meta_len].to_vec(),
            frame[at + meta_len..].to_vec(),
        )
    }

    /// A frame of `meta` and `rest`.
    fn join(self, meta: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        match self {
            Proto::Hulu => {
                frame.extend_from_slice(b"HULU");
                frame.extend_from_slice(&((meta.len() + rest.len()) as u32).to_le_bytes());
                frame.extend_from_slice(&(meta.len() as u32).to_le_bytes());
            }
            Proto::Sofa => {
                frame.extend_from_slice(b"SOFA");
                frame.extend_from_slice(&(meta.len() as u32).to_le_bytes());
                frame.extend_from_slice(&(rest.len() as u64).to_le_bytes());
                frame.extend_from_slice(&((meta.len() + rest.len()) as u64).to_le_bytes());
            }
        }
        frame.extend_from_slice(meta);
        frame.extend_from_slice(rest);
        frame
    }

    /// Reads one whole frame.
    async fn read_frame(self, stream: &mut TcpStream) -> Vec<u8> {
        let mut buf = BytesMut::new();
        loop {
            let header = self.header_len();
            if buf.len() >= header {
                let total = header
                    + match self {
                        Proto::Hulu => le32(&buf, 4),
                        Proto::Sofa => le64(&buf, 16),
                    };
                if buf.len() >= total {
                    assert_eq!(buf.len(), total, "nothing after the frame");
                    return buf.to_vec();
                }
            }
            let read = tokio::time::timeout(HANG_GUARD, stream.read_buf(&mut buf))
                .await
                .expect("a frame arrives")
                .unwrap();
            assert!(read > 0, "connection closed before a whole frame");
        }
    }

    /// The frame of response sample `name` with the correlation id set to `cid` and brpc's
    /// address in the error text set to `addr`.
    fn patched_response(self, name: &str, cid: u64, addr: Option<SocketAddr>) -> Vec<u8> {
        let (meta, rest) = self.split(&sample(self.name(), name));
        let fix_text = |text: &mut Option<String>| {
            if let (Some(text), Some(addr)) = (text.as_mut(), addr) {
                let brpc = format!("[{BRPC_ADDR}]");
                assert!(text.starts_with(&brpc), "{text}");
                *text = text.replacen(&brpc, &format!("[{addr}]"), 1);
            }
        };
        let meta = match self {
            Proto::Hulu => {
                let mut meta = HuluRpcResponseMeta::decode(&meta[..]).unwrap();
                meta.correlation_id = Some(cid as i64);
                fix_text(&mut meta.error_text);
                meta.encode_to_vec()
            }
            Proto::Sofa => {
                let mut meta = SofaRpcMeta::decode(&meta[..]).unwrap();
                meta.sequence_id = cid;
                fix_text(&mut meta.reason);
                meta.encode_to_vec()
            }
        };
        self.join(&meta, &rest)
    }
}

/// The sample pairs of both protocols: request, response.
const PAIRS: [(&str, &str); 6] = [
    ("echo_noattach_request_0", "echo_noattach_response_0"),
    ("echo_noattach_request_1", "echo_noattach_response_1"),
    ("echo_attach_request_0", "echo_attach_response_0"),
    ("echo_attach_request_1", "echo_attach_response_1"),
    ("err_req_unknown_method", "err_resp_unknown_method"),
    ("err_req_unknown_service", "err_resp_unknown_service"),
];

fn echo_message(bytes: &[u8]) -> String {
    EchoRequest::decode(bytes).expect("an EchoRequest").message
}

// ---------------------------------------------------------------------------------------------
// The samples, as documented.

#[test]
fn hulu_requests_decode_as_documented() {
    for (name, method_index, service, cid, log_id, attachment) in [
        (
            "echo_noattach_request_0",
            0,
            "EchoService",
            CID_0,
            0,
            &b""[..],
        ),
        ("echo_noattach_request_1", 0, "EchoService", CID_1, 1, b""),
        ("echo_attach_request_0", 0, "EchoService", CID_0, 0, b"foo"),
        ("echo_attach_request_1", 0, "EchoService", CID_1, 1, b"foo"),
        ("err_req_unknown_method", 5, "EchoService", CID_0, 0, b""),
        ("err_req_unknown_service", 0, "EchoServicX", CID_0, 0, b""),
    ] {
        let (meta_bytes, rest) = Proto::Hulu.split(&sample("hulu_pbrpc", name));
        let meta = HuluRpcRequestMeta::decode(&meta_bytes[..]).unwrap();
        let has_attachment = !attachment.is_empty();
        assert_eq!(
            meta,
            HuluRpcRequestMeta {
                service_name: service.into(),
                method_index,
                compress_type: Some(0),
                correlation_id: Some(cid as i64),
                log_id: Some(log_id),
                user_message_size: has_attachment.then_some(13),
                ..Default::default()
            },
            "{name}"
        );
        assert_eq!(
            meta.encode_to_vec(),
            meta_bytes,
            "{name}: re-encodes as brpc"
        );
        assert_eq!(echo_message(&rest[..13]), "hello world", "{name}");
        assert_eq!(&rest[13..], attachment, "{name}");
    }
}

#[test]
fn hulu_responses_decode_as_documented() {
    for (name, cid, attachment) in [
        ("echo_noattach_response_0", CID_0, &b""[..]),
        ("echo_noattach_response_1", CID_1, b""),
        ("echo_attach_response_0", CID_0, b"foo"),
        ("echo_attach_response_1", CID_1, b"foo"),
    ] {
        let bytes = sample("hulu_pbrpc", name);
        let (meta_bytes, rest) = Proto::Hulu.split(&bytes);
        let meta = HuluRpcResponseMeta::decode(&meta_bytes[..]).unwrap();
        assert_eq!(
            meta,
            HuluRpcResponseMeta {
                error_code: Some(0),
                correlation_id: Some(cid as i64),
                compress_type: Some(0),
                user_message_size: (!attachment.is_empty()).then_some(13),
                ..Default::default()
            },
            "{name}"
        );
        assert_eq!(meta.encode_to_vec(), meta_bytes, "{name}");
        // The correlation id is a zigzag sint64 in responses: 4294967298 is 8589934596.
        if cid == CID_0 {
            assert_eq!(&meta_bytes[2..8], b"\x18\x84\x80\x80\x80\x20", "{name}");
        }
        assert_eq!(echo_message(&rest[..13]), "hello world");
        assert_eq!(&rest[13..], attachment);
    }
    for (name, text) in [
        (
            "err_resp_unknown_method",
            "[127.0.0.1:18100][E1002]Fail to find method=5 of service=EchoService",
        ),
        (
            "err_resp_unknown_service",
            "[127.0.0.1:18100][E1002]Fail to find method=0 of service=EchoServicX",
        ),
    ] {
        let (meta_bytes, rest) = Proto::Hulu.split(&sample("hulu_pbrpc", name));
        let meta = HuluRpcResponseMeta::decode(&meta_bytes[..]).unwrap();
        assert_eq!(meta.error_code, Some(errno::ENOMETHOD), "{name}");
        assert_eq!(meta.error_text.as_deref(), Some(text));
        assert_eq!(meta.correlation_id, Some(CID_0 as i64));
        assert_eq!(meta.encode_to_vec(), meta_bytes, "{name}");
        assert!(rest.is_empty(), "{name}: an error has no message");
    }
}

#[test]
fn sofa_samples_decode_as_documented() {
    for (name, method, cid) in [
        ("echo_noattach_request_0", "example.EchoService.Echo", CID_0),
        ("echo_noattach_request_1", "example.EchoService.Echo", CID_1),
        ("echo_attach_request_0", "example.EchoService.Echo", CID_0),
        ("err_req_unknown_method", "example.EchoService.Nope", CID_0),
        ("err_req_unknown_service", "example.EchoServicX.Echo", CID_0),
    ] {
        let (meta_bytes, rest) = Proto::Sofa.split(&sample("sofa_pbrpc", name));
        let meta = SofaRpcMeta::decode(&meta_bytes[..]).unwrap();
        assert_eq!(
            meta,
            SofaRpcMeta {
                r#type: REQUEST,
                sequence_id: cid,
                method: Some(method.into()),
                compress_type: Some(0),
                ..Default::default()
            },
            "{name}"
        );
        assert_eq!(meta.encode_to_vec(), meta_bytes, "{name}");
        assert_eq!(echo_message(&rest), "hello world", "{name}: no attachment");
    }
    // brpc's client drops the attachment: the samples are the same bytes.
    assert_eq!(
        sample("sofa_pbrpc", "echo_attach_request_0"),
        sample("sofa_pbrpc", "echo_noattach_request_0")
    );
    for (name, cid, error) in [
        ("echo_noattach_response_0", CID_0, None),
        ("echo_noattach_response_1", CID_1, None),
        (
            "err_resp_unknown_method",
            CID_0,
            Some("[127.0.0.1:18100][E1002]Fail to find method=example.EchoService.Nope"),
        ),
        (
            "err_resp_unknown_service",
            CID_0,
            Some("[127.0.0.1:18100][E1002]Fail to find method=example.EchoServicX.Echo"),
        ),
    ] {
        let (meta_bytes, rest) = Proto::Sofa.split(&sample("sofa_pbrpc", name));
        let meta = SofaRpcMeta::decode(&meta_bytes[..]).unwrap();
        assert_eq!(
            meta,
            SofaRpcMeta {
                r#type: RESPONSE,
                sequence_id: cid,
                failed: Some(error.is_some()),
                error_code: Some(if error.is_some() { errno::ENOMETHOD } else { 0 }),
                reason: error.map(Into::into),
                compress_type: Some(0),
                ..Default::default()
            },
            "{name}"
        );
        assert_eq!(meta.encode_to_vec(), meta_bytes, "{name}");
        match error {
            None => assert_eq!(echo_message(&rest), "hello world"),
            Some(_) => assert!(rest.is_empty()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A Brisk server answering brpc's requests.

async fn server_answers_like_brpc(proto: Proto) {
    let (server, _arrivals) = start_server().await;
    let addr = server.local_addr();
    for (request, response) in PAIRS {
        if matches!(proto, Proto::Sofa) && request.starts_with("echo_attach") {
            continue; // the same bytes as the no-attachment samples
        }
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&sample(proto.name(), request))
            .await
            .unwrap();
        let reply = proto.read_frame(&mut stream).await;
        let cid = if request.ends_with("_1") {
            CID_1
        } else {
            CID_0
        };
        assert_eq!(
            reply,
            proto.patched_response(response, cid, Some(addr)),
            "{}: Brisk's reply to {request} differs from brpc's {response}",
            proto.name()
        );
        if !request.starts_with("err") {
            // Brisk's reply is brpc's byte for byte, not merely re-encoded alike.
            assert_eq!(reply, sample(proto.name(), response), "{request}");
        }
    }
}

#[tokio::test]
async fn a_brisk_server_answers_hulu_requests_like_brpc() {
    server_answers_like_brpc(Proto::Hulu).await;
}

#[tokio::test]
async fn a_brisk_server_answers_sofa_requests_like_brpc() {
    server_answers_like_brpc(Proto::Sofa).await;
}

// ---------------------------------------------------------------------------------------------
// A Brisk client talking to a fake brpc server.

/// One Echo call (log id `log_id`, attachment `attachment`) from a Brisk client of `proto`
/// against a listener that checks the request is brpc's `request` (the correlation id aside),
/// then answers brpc's `response` (with the call's correlation id). The call's result.
async fn client_round_trip(
    proto: Proto,
    request: &str,
    response: &str,
    log_id: i64,
    attachment: &'static [u8],
) -> (Result<EchoResponse, brisk::Status>, Bytes, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let channel = brisk::Channel::builder()
        .protocol(proto.name())
        .timeout(HANG_GUARD)
        .connect(&addr.to_string())
        .await
        .unwrap();
    let client = EchoServiceClient::new(channel);
    let call = tokio::spawn(async move {
        let mut cntl = Controller::new();
        cntl.set_log_id(log_id);
        cntl.set_request_attachment(attachment);
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
    let got = proto.read_frame(&mut stream).await;
    let (meta, rest) = proto.split(&got);
    // Brisk's meta is the canonical encoding of what it says (fields in brpc's order, each
    // once), as brpc's samples are: so patching the correlation id and re-encoding compares
    // the bytes themselves.
    let canonical = match proto {
        Proto::Hulu => HuluRpcRequestMeta::decode(&meta[..])
            .unwrap()
            .encode_to_vec(),
        Proto::Sofa => SofaRpcMeta::decode(&meta[..]).unwrap().encode_to_vec(),
    };
    assert_eq!(
        canonical,
        meta,
        "Brisk's {} meta is canonical",
        proto.name()
    );
    let (cid, meta) = match proto {
        Proto::Hulu => {
            let mut meta = HuluRpcRequestMeta::decode(&meta[..]).unwrap();
            let cid = meta.correlation_id.take().expect("a correlation id") as u64;
            meta.correlation_id = Some(CID_0 as i64);
            (cid, meta.encode_to_vec())
        }
        Proto::Sofa => {
            let mut meta = SofaRpcMeta::decode(&meta[..]).unwrap();
            let cid = std::mem::replace(&mut meta.sequence_id, CID_0);
            (cid, meta.encode_to_vec())
        }
    };
    assert_eq!(
        proto.join(&meta, &rest),
        sample(proto.name(), request),
        "Brisk's {} request differs from brpc's {request}",
        proto.name()
    );
    stream
        .write_all(&proto.patched_response(response, cid, None))
        .await
        .unwrap();
    let (reply, response_attachment) = tokio::time::timeout(HANG_GUARD, call)
        .await
        .expect("the call ends")
        .unwrap();
    (reply, response_attachment, addr)
}

#[tokio::test]
async fn a_brisk_hulu_client_sends_brpcs_bytes_and_reads_brpcs_replies() {
    for (request, response, attachment) in [
        (
            "echo_noattach_request_0",
            "echo_noattach_response_0",
            &b""[..],
        ),
        ("echo_attach_request_0", "echo_attach_response_0", b"foo"),
    ] {
        let (reply, attached, _) =
            client_round_trip(Proto::Hulu, request, response, 0, attachment).await;
        assert_eq!(reply.unwrap().message, "hello world");
        assert_eq!(attached, attachment);
    }
    let (reply, _, addr) = client_round_trip(
        Proto::Hulu,
        "echo_noattach_request_0",
        "err_resp_unknown_method",
        0,
        b"",
    )
    .await;
    let status = reply.unwrap_err();
    assert_eq!(status.code(), errno::ENOMETHOD);
    assert_eq!(
        status.message(),
        "Fail to find method=5 of service=EchoService",
        "brpc's address prefix is taken off"
    );
    assert_eq!(status.remote_side(), Some(addr));
}

#[tokio::test]
async fn a_brisk_sofa_client_sends_brpcs_bytes_and_reads_brpcs_replies() {
    let (reply, _, _) = client_round_trip(
        Proto::Sofa,
        "echo_noattach_request_0",
        "echo_noattach_response_0",
        0,
        b"",
    )
    .await;
    assert_eq!(reply.unwrap().message, "hello world");
    let (reply, _, _) = client_round_trip(
        Proto::Sofa,
        "echo_noattach_request_0",
        "err_resp_unknown_method",
        0,
        b"",
    )
    .await;
    let status = reply.unwrap_err();
    assert_eq!(status.code(), errno::ENOMETHOD);
    assert_eq!(
        status.message(),
        "Fail to find method=example.EchoService.Nope"
    );
}

#[tokio::test]
async fn a_brisk_sofa_client_refuses_an_attachment_instead_of_dropping_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let channel = brisk::Channel::builder()
        .protocol("sofa_pbrpc")
        .timeout(HANG_GUARD)
        .connect(&listener.local_addr().unwrap().to_string())
        .await
        .unwrap();
    let mut cntl = Controller::new();
    cntl.set_request_attachment(&b"foo"[..]);
    let status = EchoServiceClient::new(channel)
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "hello world".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::EREQUEST, "{status}");
    assert!(status.message().contains("attachment"), "{status}");
}
