//! nshead, public_pbrpc and nova_pbrpc against the bytes a real brpc 1.17 put on the wire
//! (`tests/golden/{nshead,public_pbrpc,nova_pbrpc}/`; see their README): samples decode as
//! documented; a Brisk server answers brpc's requests as brpc's server (or adaptor) did; a
//! Brisk client sends brpc's requests (public_pbrpc: the correlation id, create time and host
//! aside) and reads brpc's replies.

use std::net::SocketAddr;

use brisk::codec::Raw;
use brisk::protocol::nshead::{
    NsheadHead, PublicPbrpcRequest, PublicPbrpcResponse, RequestBody, RequestHead, ResponseBody,
    ResponseHead,
};
use brisk::{errno, Controller, MethodDescriptor, NsheadMessage, NsheadPbAdaptor, NsheadService};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::raw::HANG_GUARD;
use brisk_tests::{wire_sample, Echo};
use bytes::{Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CID_0: u64 = 4294967298;

fn sample(protocol: &str, name: &str) -> Vec<u8> {
    let path = wire_sample(&format!("{protocol}/{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A sample's header and body.
fn split(bytes: &[u8]) -> (NsheadHead, Vec<u8>) {
    let head = NsheadHead::parse(bytes).expect("a whole header");
    assert_eq!(head.magic_num, 0xfb70_9394);
    assert_eq!(
        bytes.len(),
        36 + head.body_len as usize,
        "one whole message"
    );
    (head, bytes[36..].to_vec())
}

fn join(head: &NsheadHead, body: &[u8]) -> Vec<u8> {
    let mut bytes = BytesMut::new();
    head.encode(&mut bytes, body.len() as u32);
    bytes.extend_from_slice(body);
    bytes.to_vec()
}

/// Reads one whole nshead message; `None` if the peer closes first, without a byte.
async fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = BytesMut::new();
    loop {
        if let Some(head) = NsheadHead::parse(&buf) {
            if buf.len() >= 36 + head.body_len as usize {
                assert_eq!(buf.len(), 36 + head.body_len as usize, "nothing after it");
                return Some(buf.to_vec());
            }
        }
        let read = tokio::time::timeout(HANG_GUARD, stream.read_buf(&mut buf))
            .await
            .expect("a message (or a close) arrives")
            .unwrap_or(0);
        if read == 0 {
            assert!(buf.is_empty(), "closed in the middle of a message");
            return None;
        }
    }
}

/// Answers every nshead body with itself, as brpc's `nshead_extension_c++` server.
struct RawEcho;

impl NsheadService for RawEcho {
    async fn process(
        &self,
        _cntl: &mut brisk::ServerContext,
        request: NsheadMessage,
    ) -> Result<Bytes, brisk::Status> {
        Ok(request.body)
    }
}

async fn server_with(nshead: impl NsheadService) -> brisk::Server {
    brisk::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .nshead_service(nshead)
        .start("127.0.0.1:0")
        .await
        .unwrap()
}

/// Sends `request` on a new connection and returns the reply (`None`: closed without one).
async fn exchange(server: &brisk::Server, request: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_message(&mut stream).await
}

/// A listener standing in for a brpc server: the request a channel of `protocol` sends for
/// `call`, and the reply sent back, then the call's outcome.
async fn against_fake_server<T: Send + 'static>(
    protocol: &str,
    call: impl FnOnce(brisk::Channel) -> tokio::task::JoinHandle<T>,
    answer: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) -> (Vec<u8>, T, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let channel = brisk::Channel::builder()
        .protocol(protocol.to_owned())
        .timeout(HANG_GUARD)
        .connect(&addr.to_string())
        .await
        .unwrap();
    let task = call(channel);
    let (mut stream, _) = tokio::time::timeout(HANG_GUARD, listener.accept())
        .await
        .expect("the channel connects")
        .unwrap();
    let request = read_message(&mut stream).await.expect("a request");
    match answer(&request) {
        Some(reply) => stream.write_all(&reply).await.unwrap(),
        None => drop(stream),
    }
    let outcome = tokio::time::timeout(HANG_GUARD, task)
        .await
        .expect("the call ends")
        .unwrap();
    (request, outcome, addr)
}

fn echo_call(
    channel: brisk::Channel,
    log_id: i64,
) -> tokio::task::JoinHandle<Result<String, brisk::Status>> {
    tokio::spawn(async move {
        let mut cntl = Controller::new();
        cntl.set_log_id(log_id);
        EchoServiceClient::new(channel)
            .echo_with(
                &mut cntl,
                EchoRequest {
                    message: "hello world".into(),
                },
            )
            .await
            .map(|r| r.message)
    })
}

// ---------------------------------------------------------------------------------------------
// nshead

#[test]
fn nshead_samples_decode_as_documented() {
    for (name, log_id) in [("echo_request_0", 0), ("echo_request_1", 1)] {
        let (head, body) = split(&sample("nshead", name));
        assert_eq!(
            head,
            NsheadHead {
                log_id,
                body_len: 11,
                ..NsheadHead::default()
            },
            "{name}"
        );
        assert_eq!(body, b"hello world");
    }
    let (head, body) = split(&sample("nshead", "custom_head_request"));
    assert_eq!(
        (head.id, head.version, head.log_id),
        (0x1234, 0x0102, 0x0102_0304)
    );
    assert_eq!(head.provider(), b"wirecap");
    assert_eq!((head.reserved, head.body_len), (0xa5a5_a5a5, 11));
    assert_eq!(body, b"hello world");
    for (request, response) in [
        ("echo_request_0", "echo_response_0"),
        ("echo_request_1", "echo_response_1"),
        ("custom_head_request", "custom_head_response"),
    ] {
        assert_eq!(
            sample("nshead", request),
            sample("nshead", response),
            "brpc's server echoes body and header"
        );
        let (head, body) = split(&sample("nshead", request));
        assert_eq!(join(&head, &body), sample("nshead", request), "re-encodes");
    }
}

#[tokio::test]
async fn a_brisk_server_echoes_the_nshead_header_as_brpc() {
    let server = server_with(RawEcho).await;
    for (request, response) in [
        ("echo_request_0", "echo_response_0"),
        ("echo_request_1", "echo_response_1"),
        ("custom_head_request", "custom_head_response"),
    ] {
        let reply = exchange(&server, &sample("nshead", request)).await;
        assert_eq!(reply, Some(sample("nshead", response)), "{request}");
    }
}

#[tokio::test]
async fn a_brisk_nshead_client_sends_brpcs_bytes() {
    // A raw body (the `Raw` codec), as brpc's nshead_extension client sends.
    let method = MethodDescriptor::new("any.Service", "Any");
    let (request, reply, _) = against_fake_server(
        "nshead",
        |channel| {
            tokio::spawn(async move {
                let mut cntl = Controller::new();
                cntl.set_log_id(1);
                channel
                    .unary::<Raw, Bytes, Bytes>(
                        &method,
                        &mut cntl,
                        &Bytes::from_static(b"hello world"),
                    )
                    .await
            })
        },
        |_| Some(sample("nshead", "echo_response_1")),
    )
    .await;
    assert_eq!(request, sample("nshead", "echo_request_1"));
    assert_eq!(reply.unwrap(), Bytes::from_static(b"hello world"));
    // A generated client sends its serialized request as the body.
    let (request, reply, _) = against_fake_server(
        "nshead",
        |channel| echo_call(channel, 0),
        |request| Some(request.to_vec()), // brpc's example server echoes
    )
    .await;
    let (head, body) = split(&request);
    assert_eq!(
        head,
        NsheadHead {
            body_len: 13,
            ..NsheadHead::default()
        }
    );
    assert_eq!(
        EchoRequest::decode(&body[..]).unwrap().message,
        "hello world"
    );
    assert_eq!(reply.unwrap(), "hello world");
}

// ---------------------------------------------------------------------------------------------
// public_pbrpc

fn public_request(name: &str) -> (NsheadHead, PublicPbrpcRequest) {
    let (head, body) = split(&sample("public_pbrpc", name));
    (head, PublicPbrpcRequest::decode(&body[..]).unwrap())
}

fn public_response(bytes: &[u8]) -> (NsheadHead, PublicPbrpcResponse) {
    let (head, body) = split(bytes);
    let response = PublicPbrpcResponse::decode(&body[..]).unwrap();
    assert_eq!(response.encode_to_vec(), body, "re-encodes as brpc");
    (head, response)
}

fn public_head(log_id: u32, body_len: u32) -> NsheadHead {
    NsheadHead {
        version: 1000,
        log_id,
        body_len,
        ..NsheadHead::default()
    }
    .with_provider("__pbrpc__")
}

/// What brpc's client sends, its clock and host aside.
fn brpc_public_request(log_id: u64, id: u64, method_id: u32) -> PublicPbrpcRequest {
    PublicPbrpcRequest {
        request_head: Some(RequestHead {
            from_host: Some("127.0.0.1".into()),
            content_type: Some(1),
            connection: Some(true),
            charset: Some("utf-8".into()),
            create_time: Some("20261203213610".into()),
            log_id: Some(log_id),
            ..Default::default()
        }),
        request_body: vec![RequestBody {
            version: Some("pbrpc=1.0".into()),
            charset: Some("utf-8".into()),
            service: "EchoService".into(),
            method_id,
            id,
            serialized_request: Some(Bytes::from_static(b"\x0a\x0bhello world")),
        }],
    }
}

#[test]
fn public_pbrpc_samples_decode_as_documented() {
    for name in ["sink_request_0", "served_request_0"] {
        let (head, mut request) = public_request(name);
        assert_eq!(head, public_head(0, 98), "{name}");
        request.request_head.as_mut().unwrap().create_time = Some("20261203213610".into());
        assert_eq!(request, brpc_public_request(0, CID_0, 0), "{name}");
    }
    let (head, request) = public_request("sink_request_1");
    assert_eq!(head.log_id, 1);
    assert_eq!(request.request_body[0].id, 17179869186);
    let (head, response) = public_response(&sample("public_pbrpc", "served_response_0"));
    assert_eq!(head, public_head(0, 58));
    assert_eq!(
        response,
        PublicPbrpcResponse {
            response_head: Some(ResponseHead {
                code: 0,
                text: Some("success".into()),
                from_host: Some("127.0.0.1".into()),
                compress_type: None,
            }),
            response_body: vec![ResponseBody {
                serialized_response: Some(Bytes::from_static(b"\x0a\x0bhello world")),
                version: Some("pbrpc=1.0".into()),
                error: None,
                id: CID_0,
            }],
        }
    );
    let (_, response) = public_response(&sample("public_pbrpc", "err_resp_unknown_method"));
    let response_head = response.response_head.unwrap();
    assert_eq!(response_head.code, errno::ENOMETHOD);
    assert_eq!(
        response_head.text.as_deref(),
        Some("[127.0.0.1:18400][E1002]Fail to find method by service=EchoService method_id=5")
    );
    // brpc's surprise: this reply names no call (id 0, empty version).
    assert_eq!(response.response_body[0].id, 0);
    assert_eq!(response.response_body[0].version.as_deref(), Some(""));
}

#[tokio::test]
async fn a_brisk_server_answers_public_pbrpc_like_brpcs_adaptor() {
    // No adaptor to install: every server answers public_pbrpc with its services.
    let (server, _arrivals) = brisk_tests::start_server().await;
    for (request, response) in [
        ("served_request_0", "served_response_0"),
        ("served_request_1", "served_response_1"),
    ] {
        let reply = exchange(&server, &sample("public_pbrpc", request)).await;
        assert_eq!(reply, Some(sample("public_pbrpc", response)), "{request}");
    }
    // An unknown method: brpc's code and text, but (unlike brpc) the request's id and version
    // echoed, so the caller can match the reply.
    let reply = exchange(&server, &sample("public_pbrpc", "err_req_unknown_method"))
        .await
        .expect("a reply");
    let (head, response) = public_response(&reply);
    assert_eq!(head, public_head(0, head.body_len));
    let addr = server.local_addr();
    assert_eq!(
        response.response_head,
        Some(ResponseHead {
            code: errno::ENOMETHOD,
            text: Some(format!(
                "[{addr}][E1002]Fail to find method by service=EchoService method_id=5"
            )),
            from_host: Some("127.0.0.1".into()),
            compress_type: None,
        })
    );
    assert_eq!(
        response.response_body,
        [ResponseBody {
            serialized_response: None,
            version: Some("pbrpc=1.0".into()),
            error: None,
            id: CID_0,
        }]
    );
}

#[tokio::test]
async fn a_brisk_public_pbrpc_client_sends_brpcs_request_and_reads_its_replies() {
    let mut sent_id = 0;
    let (request, reply, _) = against_fake_server(
        "public_pbrpc",
        |channel| echo_call(channel, 1),
        |request| {
            let (_, body) = split(request);
            sent_id = PublicPbrpcRequest::decode(&body[..]).unwrap().request_body[0].id;
            let (head, mut response) =
                public_response(&sample("public_pbrpc", "served_response_1"));
            response.response_body[0].id = sent_id;
            Some(join(&head, &response.encode_to_vec()))
        },
    )
    .await;
    assert_eq!(reply.unwrap(), "hello world");
    let (head, body) = split(&request);
    let mut sent = PublicPbrpcRequest::decode(&body[..]).unwrap();
    assert_eq!(head, public_head(1, head.body_len));
    // The clock and the machine's address change; the rest is brpc's.
    let sent_head = sent.request_head.as_mut().unwrap();
    let create_time = sent_head
        .create_time
        .replace("20261203213610".into())
        .unwrap();
    assert!(
        create_time.len() == 14 && create_time.bytes().all(|b| b.is_ascii_digit()),
        "{create_time}"
    );
    let from_host = sent_head.from_host.replace("127.0.0.1".into()).unwrap();
    assert!(from_host.parse::<std::net::IpAddr>().is_ok(), "{from_host}");
    assert_eq!(sent, brpc_public_request(1, sent_id, 0));

    // Over a short connection, the request says the connection is not kept.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let channel = brisk::Channel::builder()
        .protocol("public_pbrpc")
        .connection_type(brisk::ConnectionType::Short)
        .timeout(HANG_GUARD)
        .connect(&listener.local_addr().unwrap().to_string())
        .await
        .unwrap();
    let call = echo_call(channel, 0);
    let (mut stream, _) = listener.accept().await.unwrap();
    let (_, body) = split(&read_message(&mut stream).await.unwrap());
    let sent = PublicPbrpcRequest::decode(&body[..]).unwrap();
    assert_eq!(sent.request_head.unwrap().connection, Some(false));
    drop((stream, call));

    // brpc's unmatched error reply (id 0) still fails the call: the reply answers the
    // connection's one call.
    let (_, reply, addr) = against_fake_server(
        "public_pbrpc",
        |channel| echo_call(channel, 0),
        |_| Some(sample("public_pbrpc", "err_resp_unknown_method")),
    )
    .await;
    let status = reply.unwrap_err();
    assert_eq!(status.code(), errno::ENOMETHOD);
    assert_eq!(
        status.message(),
        "Fail to find method by service=EchoService method_id=5"
    );
    assert_eq!(status.remote_side(), Some(addr));
}

// ---------------------------------------------------------------------------------------------
// nova_pbrpc

#[test]
fn nova_pbrpc_samples_decode_as_documented() {
    for (name, log_id) in [
        ("sink_request_0", 0),
        ("sink_request_1", 1),
        ("served_request_0", 0),
        ("served_response_0", 0),
        ("served_response_1", 1),
    ] {
        let (head, body) = split(&sample("nova_pbrpc", name));
        assert_eq!(
            head,
            NsheadHead {
                log_id,
                body_len: 13,
                ..NsheadHead::default()
            },
            "{name}"
        );
        assert_eq!(
            EchoRequest::decode(&body[..]).unwrap().message,
            "hello world"
        );
    }
    let (head, _) = split(&sample("nova_pbrpc", "err_req_unknown_method"));
    assert_eq!(head.reserved, 5, "the method index");
}

#[tokio::test]
async fn a_brisk_server_answers_nova_pbrpc_like_brpcs_adaptor() {
    let server = server_with(NsheadPbAdaptor::nova(EchoServiceServer::new(Echo))).await;
    for (request, response) in [
        ("served_request_0", "served_response_0"),
        ("served_request_1", "served_response_1"),
    ] {
        let reply = exchange(&server, &sample("nova_pbrpc", request)).await;
        assert_eq!(reply, Some(sample("nova_pbrpc", response)), "{request}");
    }
    // No method 5: no reply, the connection closes (nova has no way to say why).
    let reply = exchange(&server, &sample("nova_pbrpc", "err_req_unknown_method")).await;
    assert_eq!(reply, None);
}

#[tokio::test]
async fn a_brisk_nova_pbrpc_client_sends_brpcs_bytes() {
    let (request, reply, _) = against_fake_server(
        "nova_pbrpc",
        |channel| echo_call(channel, 1),
        |_| Some(sample("nova_pbrpc", "served_response_1")),
    )
    .await;
    assert_eq!(request, sample("nova_pbrpc", "sink_request_1"));
    assert_eq!(reply.unwrap(), "hello world");
}

#[tokio::test]
async fn an_nshead_header_starting_with_tls_s_first_byte_is_still_nshead() {
    // id 0x0316 puts 0x16 0x03 first, as a TLS record starts; no ClientHello at offset 5.
    let server = server_with(RawEcho).await;
    let head = NsheadHead {
        id: 0x0316,
        ..NsheadHead::default()
    };
    let request = join(&head, b"hello world");
    assert_eq!(&request[..2], &[0x16, 0x03]);
    assert_eq!(exchange(&server, &request).await, Some(request));
}
