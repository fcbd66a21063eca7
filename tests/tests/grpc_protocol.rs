//! gRPC over HTTP/2 (`h2:grpc`): a real Brisk server and a real Brisk client on loopback, all
//! four method kinds, deadlines, errors, metadata, gzip, size limits, the health service, bad
//! input from a hand-driven HTTP/2 client, and brpc's own h2:grpc client traffic replayed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brisk::codec::Raw;
use brisk::codegen::{
    BytesStream, MethodKind, Service, ServiceFuture, ServiceResponse, StreamingFuture,
    StreamingResponse,
};
use brisk::{errno, AuthContext, Authenticator, Channel, CompressType, Controller, Protocol};
use brisk::{MethodDescriptor, Server, ServerContext, Status, Streaming};
use brisk_tests::echo::{EchoRequest, EchoServiceClient};
use brisk_tests::{wire_sample, Echo};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Generous, only so a broken build fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(20);

const SERVICE: &str = "brisk.grpctest.Streamer";
const ECHO: MethodDescriptor = MethodDescriptor::new(SERVICE, "Echo");
const SPLIT: MethodDescriptor = MethodDescriptor::new(SERVICE, "Split");
const CONCAT: MethodDescriptor = MethodDescriptor::new(SERVICE, "Concat");
const CHAT: MethodDescriptor = MethodDescriptor::new(SERVICE, "Chat");
const HEALTH_CHECK: MethodDescriptor = MethodDescriptor::new("grpc.health.v1.Health", "Check");
const HEALTH_WATCH: MethodDescriptor = MethodDescriptor::new("grpc.health.v1.Health", "Watch");

/// A hand-written service with every method kind, on raw bytes:
/// - `Echo` (unary) echoes, except for a few commands (see [`echo`]);
/// - `Split` (server streaming) answers each comma-separated part; a part `err` fails;
/// - `Concat` (client streaming) joins all requests with commas;
/// - `Chat` (bidi) answers `re:<request>` to each request as it arrives.
struct Streamer;

impl Service for Streamer {
    fn full_name(&self) -> &'static str {
        SERVICE
    }

    fn method_names(&self) -> &'static [&'static str] {
        &["Echo", "Split", "Concat", "Chat"]
    }

    fn method_kinds(&self) -> &'static [MethodKind] {
        &[
            MethodKind::Unary,
            MethodKind::ServerStreaming,
            MethodKind::ClientStreaming,
            MethodKind::BidiStreaming,
        ]
    }

    fn call(&self, method: usize, context: ServerContext, request: Bytes) -> ServiceFuture {
        Box::pin(async move {
            let mut context = context;
            let result = match method {
                0 => echo(&mut context, request).await,
                _ => Err(Status::new(errno::ENOMETHOD, "not unary")),
            };
            ServiceResponse::new(context, result)
        })
    }

    fn call_streaming(
        &self,
        method: usize,
        context: ServerContext,
        requests: BytesStream,
    ) -> StreamingFuture {
        Box::pin(async move {
            let result: Result<BytesStream, Status> = match method {
                1 => split(requests).await,
                2 => concat(requests).await,
                3 => Ok(Box::pin(requests.map(|request| {
                    request.map(|r| Bytes::from([&b"re:"[..], &r[..]].concat()))
                }))),
                _ => Err(Status::new(errno::ENOMETHOD, "not streaming")),
            };
            StreamingResponse { context, result }
        })
    }
}

/// `fail` fails with EREQUEST, `custom` with code 4242, `sleep` sleeps 30 s, `timeout` answers
/// the client's timeout, `meta` answers metadata `x-req` and sets `x-resp`, `who` answers the
/// authenticated user, `gzip` answers compressed, `panic` panics, `big` answers 2 MiB; anything
/// else is echoed.
async fn echo(context: &mut ServerContext, request: Bytes) -> Result<Bytes, Status> {
    match &request[..] {
        b"fail" => Err(Status::new(errno::EREQUEST, "bad input: fail")),
        b"custom" => Err(Status::new(4242, "custom failure")),
        b"sleep" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(request)
        }
        b"timeout" => Ok(format!("{:?}", context.timeout_ms()).into()),
        b"meta" => {
            context.set_response_header("x-resp", "pong");
            let value = context.user_fields().get("x-req").cloned();
            let mut keys: Vec<&String> = context.user_fields().keys().collect();
            keys.sort();
            Ok(format!("x-req={value:?} keys={keys:?}").into())
        }
        b"who" => Ok(context
            .auth_context()
            .map_or("nobody".to_owned(), |who| who.user.clone())
            .into()),
        b"panic" => panic!("asked to panic"),
        b"big" => Ok(vec![b'b'; 2 << 20].into()),
        _ if request.starts_with(b"gzip") => {
            context.set_response_compress_type(CompressType::Gzip);
            Ok(format!("{:?}", context.request_compress_type()).into())
        }
        _ if request.starts_with(b"deflate") => {
            context.set_response_compress_type(CompressType::Zlib);
            Ok(format!("{:?}", context.request_compress_type()).into())
        }
        _ if request.starts_with(b"zstd") => {
            context.set_response_compress_type(CompressType::Zstd);
            Ok(format!("{:?}", context.request_compress_type()).into())
        }
        _ => Ok(request),
    }
}

async fn split(mut requests: BytesStream) -> Result<BytesStream, Status> {
    let request = match requests.next().await {
        Some(request) => request?,
        None => return Err(Status::new(errno::EREQUEST, "no request")),
    };
    let parts: Vec<Result<Bytes, Status>> = request
        .split(|b| *b == b',')
        .map(|part| {
            if part == b"err" {
                Err(Status::new(errno::EREQUEST, "asked to fail mid-stream"))
            } else {
                Ok(Bytes::copy_from_slice(part))
            }
        })
        .collect();
    Ok(Box::pin(stream::iter(parts)))
}

async fn concat(mut requests: BytesStream) -> Result<BytesStream, Status> {
    let mut parts = Vec::new();
    while let Some(request) = requests.next().await {
        parts.push(request?);
    }
    let joined = parts.join(&b","[..]);
    Ok(Box::pin(stream::once(
        async move { Ok(Bytes::from(joined)) },
    )))
}

/// `user:secret` credentials.
#[derive(Debug)]
struct Secret(&'static str);

impl Authenticator for Secret {
    fn generate_credential(&self) -> Result<String, Status> {
        Ok(self.0.to_owned())
    }

    fn verify_credential(&self, credential: &str, _: SocketAddr) -> Result<AuthContext, Status> {
        match credential.split_once(':') {
            Some((user, "secret")) => Ok(AuthContext {
                user: user.to_owned(),
                ..AuthContext::default()
            }),
            _ => Err(Status::new(errno::ERPCAUTH, "wrong secret")),
        }
    }
}

async fn start(builder: brisk::ServerBuilder) -> Server {
    builder
        .add_service(Streamer)
        .add_service(brisk_tests::echo::EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

async fn start_default() -> Server {
    start(Server::builder()).await
}

async fn grpc_channel(server: &Server) -> Channel {
    Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(HANG_GUARD)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel")
}

async fn unary(channel: &Channel, cntl: &mut Controller, request: &[u8]) -> Result<Bytes, Status> {
    channel
        .unary::<Raw, Bytes, Bytes>(&ECHO, cntl, &Bytes::copy_from_slice(request))
        .await
}

async fn collect(mut responses: Streaming<Bytes>) -> (Vec<Bytes>, Result<(), Status>) {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(HANG_GUARD, responses.message()).await {
            Err(_) => panic!("stream hung"),
            Ok(Ok(Some(message))) => got.push(message),
            Ok(Ok(None)) => return (got, Ok(())),
            Ok(Err(status)) => return (got, Err(status)),
        }
    }
}

fn byte_stream(items: &[&str]) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    let items: Vec<Bytes> = items
        .iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect();
    stream::iter(items)
}

#[tokio::test]
async fn unary_calls_round_trip() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    let mut cntl = Controller::new();
    let reply = unary(&channel, &mut cntl, b"hello").await.unwrap();
    assert_eq!(&reply[..], b"hello");
    assert_eq!(cntl.response_header("grpc-status"), Some("0"));
    assert_eq!(
        cntl.response_header("content-type"),
        Some("application/grpc")
    );
    assert_eq!(cntl.remote_side(), Some(server.local_addr()));
    // Many calls share the connection, concurrently.
    let calls = (0..50).map(|i| {
        let channel = channel.clone();
        async move {
            let text = format!("call {i}");
            let mut cntl = Controller::new();
            let reply = unary(&channel, &mut cntl, text.as_bytes()).await.unwrap();
            assert_eq!(reply, text.as_bytes());
        }
    });
    futures_util::future::join_all(calls).await;
    // An empty message is a message too.
    assert!(unary(&channel, &mut Controller::new(), b"")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn generated_clients_speak_grpc() {
    let server = start_default().await;
    let client = EchoServiceClient::new(grpc_channel(&server).await);
    let reply = client
        .echo(EchoRequest {
            message: "hi over h2".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.message, "hi over h2");
}

#[tokio::test]
async fn server_streaming() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    let mut cntl = Controller::new();
    let responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(&SPLIT, &mut cntl, byte_stream(&["a,b,c"]))
        .await
        .unwrap();
    assert_eq!(
        cntl.response_header("content-type"),
        Some("application/grpc")
    );
    let (got, end) = collect(responses).await;
    assert_eq!(got, ["a", "b", "c"]);
    end.unwrap();

    // An Err item ends the stream with its status, after what came before it.
    let responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(
            &SPLIT,
            &mut Controller::new(),
            byte_stream(&["x,err,y"]),
        )
        .await
        .unwrap();
    let (got, end) = collect(responses).await;
    assert_eq!(got, ["x"]);
    let status = end.unwrap_err();
    // The handler's exact code and text, from `brisk-error-code` beside INVALID_ARGUMENT.
    assert_eq!(status.code(), errno::EREQUEST, "{status}");
    assert_eq!(status.message(), "asked to fail mid-stream", "{status}");
}

#[tokio::test]
async fn client_streaming() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    let responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(
            &CONCAT,
            &mut Controller::new(),
            byte_stream(&["x", "y", "z"]),
        )
        .await
        .unwrap();
    let (got, end) = collect(responses).await;
    end.unwrap();
    assert_eq!(got, ["x,y,z"]);

    let responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(&CONCAT, &mut Controller::new(), byte_stream(&[]))
        .await
        .unwrap();
    let (got, end) = collect(responses).await;
    end.unwrap();
    assert_eq!(got, [""]);
}

#[tokio::test]
async fn bidi_streaming_interleaves() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let requests = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    tx.send(Bytes::from_static(b"1")).unwrap();
    let mut responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(&CHAT, &mut Controller::new(), requests)
        .await
        .unwrap();
    // Each answer arrives before the next request is even sent.
    for i in 1..=5 {
        let reply = tokio::time::timeout(HANG_GUARD, responses.message())
            .await
            .expect("reply in time")
            .unwrap()
            .expect("a reply");
        assert_eq!(reply, format!("re:{i}").as_bytes());
        if i < 5 {
            tx.send(Bytes::from(format!("{}", i + 1))).unwrap();
        }
    }
    drop(tx);
    let (rest, end) = collect(responses).await;
    assert!(rest.is_empty());
    end.unwrap();
}

#[tokio::test]
async fn deadlines_bound_calls() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;

    // The server sees the client's grpc-timeout.
    let mut cntl = Controller::new();
    cntl.set_timeout(Duration::from_secs(7));
    let reply = unary(&channel, &mut cntl, b"timeout").await.unwrap();
    let millis: i32 = std::str::from_utf8(&reply)
        .unwrap()
        .trim_start_matches("Some(")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    assert!((6000..=7000).contains(&millis), "{millis}");

    // The client gives up at its deadline.
    let mut cntl = Controller::new();
    cntl.set_timeout(Duration::from_millis(300));
    let status = unary(&channel, &mut cntl, b"sleep").await.unwrap_err();
    assert_eq!(status.code(), errno::ERPCTIMEDOUT, "{status}");

    // The server enforces grpc-timeout by itself: DEADLINE_EXCEEDED.
    let reply = raw_call(
        &server,
        "/brisk.grpctest.Streamer/Echo",
        &[("grpc-timeout", "200m")],
        framed(b"sleep"),
    )
    .await;
    assert_eq!(reply.grpc_status(), Some(4), "{reply:?}");
    assert!(
        reply.grpc_message().starts_with("Reached timeout=200ms"),
        "{reply:?}"
    );

    // A streaming call's deadline covers the whole stream.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let requests = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut cntl = Controller::new();
    cntl.set_timeout(Duration::from_millis(400));
    let responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(&CHAT, &mut cntl, requests)
        .await
        .unwrap();
    tx.send(Bytes::from_static(b"one")).unwrap();
    let (got, end) = collect(responses).await;
    assert_eq!(got, ["re:one"]);
    assert_eq!(end.unwrap_err().code(), errno::ERPCTIMEDOUT);
    drop(tx);

    // The connection is still good.
    assert_eq!(
        &unary(&channel, &mut Controller::new(), b"ok")
            .await
            .unwrap()[..],
        b"ok"
    );
}

#[tokio::test]
async fn handler_errors_become_statuses() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    let mut cntl = Controller::new();
    let status = unary(&channel, &mut cntl, b"fail").await.unwrap_err();
    // The handler's own code and text, as over baidu_std (not INVALID_ARGUMENT's EINVAL).
    assert_eq!(status.code(), errno::EREQUEST, "{status}");
    assert_eq!(status.message(), "bad input: fail", "{status}");
    assert_eq!(status.remote_side(), Some(server.local_addr()));
    assert_eq!(cntl.error_code(), errno::EREQUEST);

    let status = unary(&channel, &mut Controller::new(), b"custom")
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        4242,
        "an application's code survives: {status}"
    );
    assert_eq!(status.message(), "custom failure", "{status}");

    let status = unary(&channel, &mut Controller::new(), b"panic")
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::EINTERNAL, "{status}");
    assert!(status.message().contains("asked to panic"), "{status}");

    let reply = raw_call(
        &server,
        "/brisk.grpctest.Streamer/Echo",
        &[],
        framed(b"fail"),
    )
    .await;
    assert_eq!(reply.grpc_status(), Some(3));
    assert_eq!(reply.grpc_message(), "bad input: fail", "{reply:?}");
    assert_eq!(
        reply.headers.get("brisk-error-code").map(|v| v.as_bytes()),
        Some(&b"1003"[..])
    );
    assert!(reply.trailers.is_none(), "trailers-only: {reply:?}");
    assert!(reply.data.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_wait_do_not_hold_up_their_connection() {
    // The server runs handlers in place on the connection's task until one has to wait: the
    // waiting ones (30 s sleeps) must move off it, and the answers of the others, many at once,
    // must all come back, on the one connection the channel has.
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    let sleepers: Vec<_> = (0..8)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move {
                let mut cntl = Controller::new();
                cntl.set_timeout(Duration::from_secs(60));
                unary(&channel, &mut cntl, b"sleep").await
            })
        })
        .collect();
    let calls = (0..200).map(|i| {
        let channel = channel.clone();
        async move {
            let request = format!("call {i}");
            let reply = unary(&channel, &mut Controller::new(), request.as_bytes()).await;
            (request, reply)
        }
    });
    let replies = tokio::time::timeout(HANG_GUARD, futures_util::future::join_all(calls))
        .await
        .expect("the other calls are answered while the sleepers sleep");
    for (request, reply) in replies {
        assert_eq!(reply.unwrap(), request.as_bytes());
    }
    for sleeper in &sleepers {
        assert!(!sleeper.is_finished(), "sleepers still sleep");
    }
    // Cancelled calls reset their streams, and the server drops their handlers: stopping does
    // not wait out the sleeps.
    for sleeper in sleepers {
        sleeper.abort();
    }
    tokio::time::timeout(HANG_GUARD, server.shutdown())
        .await
        .expect("cancelled calls end their handlers");
}

#[tokio::test]
async fn metadata_flows_both_ways() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    let mut cntl = Controller::new();
    cntl.set_request_header("x-req", "ping");
    let reply = unary(&channel, &mut cntl, b"meta").await.unwrap();
    // Only custom metadata: no content-type, te, user-agent, grpc-* or authorization.
    assert_eq!(
        std::str::from_utf8(&reply).unwrap(),
        r#"x-req=Some("ping") keys=["x-req"]"#
    );
    assert_eq!(cntl.response_header("x-resp"), Some("pong"));
    // On a streaming call the response headers are there before the first message.
    let mut cntl = Controller::new();
    cntl.set_request_header("x-trace", "t1");
    let responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(&SPLIT, &mut cntl, byte_stream(&["m"]))
        .await
        .unwrap();
    assert_eq!(
        cntl.response_header("content-type"),
        Some("application/grpc")
    );
    let (got, end) = collect(responses).await;
    end.unwrap();
    assert_eq!(got, ["m"]);
}

#[tokio::test]
async fn gzip_requests_and_responses() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    let mut cntl = Controller::new();
    cntl.set_request_compress_type(CompressType::Gzip);
    let reply = unary(&channel, &mut cntl, b"gzip please").await.unwrap();
    assert_eq!(&reply[..], b"Gzip", "the handler saw a gzip request");
    assert_eq!(cntl.response_compress_type(), CompressType::Gzip);
    assert_eq!(cntl.response_header("grpc-encoding"), Some("gzip"));

    // gRPC's deflate is zlib.
    let mut cntl = Controller::new();
    cntl.set_request_compress_type(CompressType::Zlib);
    let reply = unary(&channel, &mut cntl, b"deflate please").await.unwrap();
    assert_eq!(&reply[..], b"Zlib", "the handler saw a deflate request");
    assert_eq!(cntl.response_compress_type(), CompressType::Zlib);
    assert_eq!(cntl.response_header("grpc-encoding"), Some("deflate"));

    // zstd, as tonic and grpc-go offer it (feature `zstd`), advertised both ways.
    let mut cntl = Controller::new();
    cntl.set_request_compress_type(CompressType::Zstd);
    let reply = unary(&channel, &mut cntl, b"zstd please").await.unwrap();
    assert_eq!(&reply[..], b"Zstd", "the handler saw a zstd request");
    assert_eq!(cntl.response_compress_type(), CompressType::Zstd);
    assert_eq!(cntl.response_header("grpc-encoding"), Some("zstd"));
    assert_eq!(
        cntl.response_header("grpc-accept-encoding"),
        Some("gzip,deflate,zstd")
    );

    // Streaming messages are compressed one by one.
    let mut cntl = Controller::new();
    cntl.set_request_compress_type(CompressType::Gzip);
    let responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(&CONCAT, &mut cntl, byte_stream(&["p", "q"]))
        .await
        .unwrap();
    let (got, end) = collect(responses).await;
    end.unwrap();
    assert_eq!(got, ["p,q"]);

    // Compressions gRPC does not know are refused before sending.
    for ty in [CompressType::Snappy, CompressType::Lz4] {
        let mut cntl = Controller::new();
        cntl.set_request_compress_type(ty);
        assert_eq!(
            unary(&channel, &mut cntl, b"x").await.unwrap_err().code(),
            errno::EREQUEST
        );
    }

    // By hand: a gzip message is decompressed; an unknown encoding is UNIMPLEMENTED; a
    // compressed flag without an encoding is refused.
    let mut packed = BytesMut::new();
    brisk::compress(CompressType::Gzip, b"gzip by hand", &mut packed).unwrap();
    let body = prefixed(true, &packed);
    let reply = raw_call(
        &server,
        "/brisk.grpctest.Streamer/Echo",
        &[("grpc-encoding", "gzip")],
        body.to_vec(),
    )
    .await;
    assert_eq!(reply.grpc_status(), Some(0), "{reply:?}");
    assert_eq!(
        &reply.data[5..],
        b"Gzip",
        "not compressed: the client did not accept gzip"
    );
    let reply = raw_call(
        &server,
        "/brisk.grpctest.Streamer/Echo",
        &[("grpc-encoding", "snappy")],
        framed(b"x"),
    )
    .await;
    assert_eq!(reply.grpc_status(), Some(12), "{reply:?}");
    let reply = raw_call(&server, "/brisk.grpctest.Streamer/Echo", &[], body.to_vec()).await;
    assert_eq!(reply.grpc_status(), Some(3), "{reply:?}");
}

#[tokio::test]
async fn large_messages_and_the_size_limit() {
    let server = start(Server::builder().max_body_size(5 << 20)).await;
    let channel = grpc_channel(&server).await;
    let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let reply = unary(&channel, &mut Controller::new(), &big).await.unwrap();
    assert_eq!(reply.len(), big.len());
    assert!(reply[..] == big[..]);

    // Streamed too.
    let responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(
            &CHAT,
            &mut Controller::new(),
            stream::iter(vec![Bytes::from(big.clone()), Bytes::from_static(b"small")]),
        )
        .await
        .unwrap();
    let (got, end) = collect(responses).await;
    end.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].len(), big.len() + 3);

    // Over the server's limit: RESOURCE_EXHAUSTED.
    let huge = vec![7u8; 6 << 20];
    let mut cntl = Controller::new();
    cntl.set_max_retry(0);
    let status = unary(&channel, &mut cntl, &huge).await.unwrap_err();
    assert_eq!(status.code(), errno::ELIMIT, "{status}");
    assert!(status.message().contains("max_body_size"), "{status}");
    let reply = raw_call(&server, "/brisk.grpctest.Streamer/Echo", &[], framed(&huge)).await;
    assert_eq!(reply.grpc_status(), Some(8), "{reply:?}");

    // Over the client's limit: ERESPONSE.
    let small_client = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(HANG_GUARD)
        .max_body_size(1 << 20)
        .connection_group("small")
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let status = unary(&small_client, &mut Controller::new(), b"big")
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::ERESPONSE, "{status}");
    assert!(status.message().contains("max_body_size"), "{status}");
    // And it refuses to send more than that.
    let status = unary(&small_client, &mut Controller::new(), &big[..2 << 20])
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::EREQUEST, "{status}");

    // The connection survives all of it.
    assert_eq!(
        &unary(&channel, &mut Controller::new(), b"ok")
            .await
            .unwrap()[..],
        b"ok"
    );
}

#[tokio::test]
async fn unknown_methods_and_services() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    for method in [
        MethodDescriptor::new(SERVICE, "Nope"),
        MethodDescriptor::new("brisk.grpctest.Nothing", "Echo"),
    ] {
        let status = channel
            .unary::<Raw, Bytes, Bytes>(&method, &mut Controller::new(), &Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(status.code(), errno::ENOMETHOD, "{status}");
        assert!(
            status.message().contains("Fail to find method="),
            "{status}"
        );
    }
    let reply = raw_call(&server, "/no-slash-here", &[], framed(b"")).await;
    assert_eq!(reply.grpc_status(), Some(12), "{reply:?}");
    // Non-streaming protocols cannot call streaming methods.
    let baidu = Channel::connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let status = baidu
        .streaming::<Raw, Bytes, Bytes, _>(&SPLIT, &mut Controller::new(), byte_stream(&["a"]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::EREQUEST);
    assert!(status.message().contains("h2:grpc"), "{status}");
}

/// A `Watch` of the whole server's health.
async fn watch_health(channel: &Channel) -> Streaming<Bytes> {
    channel
        .streaming::<Raw, Bytes, Bytes, _>(
            &HEALTH_WATCH,
            &mut Controller::new(),
            stream::iter(vec![health_request("")]),
        )
        .await
        .unwrap()
}

/// The next status a `Watch` sends.
async fn next_health(watch: &mut Streaming<Bytes>) -> Bytes {
    let next = tokio::time::timeout(HANG_GUARD, watch.message()).await;
    next.expect("a status in time").unwrap().expect("a status")
}

fn health_request(service: &str) -> Bytes {
    let mut buf = vec![0x0a, service.len() as u8];
    buf.extend_from_slice(service.as_bytes());
    buf.into()
}

#[tokio::test]
async fn a_health_reporter_decides_grpc_health_and_the_health_page() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let warm = Arc::new(AtomicBool::new(false));
    let ready = Arc::clone(&warm);
    let server = start(Server::builder().health_reporter(move || {
        if ready.load(Ordering::Relaxed) {
            brisk::Health::ok()
        } else {
            brisk::Health::not_serving("warming up")
        }
    }))
    .await;
    let channel = grpc_channel(&server).await;
    let check = || async {
        channel
            .unary::<Raw, Bytes, Bytes>(&HEALTH_CHECK, &mut Controller::new(), &health_request(""))
            .await
            .unwrap()
    };
    let page = || async {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    };
    assert_eq!(
        &check().await[..],
        b"\x08\x02",
        "NOT_SERVING while warming up"
    );
    // A watcher hears the change when it comes.
    let mut watch = watch_health(&channel).await;
    assert_eq!(&next_health(&mut watch).await[..], b"\x08\x02");
    let reply = page().await;
    assert!(
        reply.starts_with("HTTP/1.1 503") && reply.ends_with("\r\n\r\nwarming up\n"),
        "{reply}"
    );
    warm.store(true, Ordering::Relaxed);
    assert_eq!(&check().await[..], b"\x08\x01", "SERVING once warm");
    assert_eq!(
        &next_health(&mut watch).await[..],
        b"\x08\x01",
        "the watcher hears it"
    );
    let reply = page().await;
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("\r\n\r\nOK\n"),
        "{reply}"
    );
}

#[tokio::test]
async fn health_service() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    for service in ["", SERVICE, "example.EchoService"] {
        let reply = channel
            .unary::<Raw, Bytes, Bytes>(
                &HEALTH_CHECK,
                &mut Controller::new(),
                &health_request(service),
            )
            .await
            .unwrap();
        assert_eq!(&reply[..], b"\x08\x01", "{service:?} is SERVING");
    }
    let reply = raw_call(
        &server,
        "/grpc.health.v1.Health/Check",
        &[],
        framed(&health_request("no.Such")),
    )
    .await;
    assert_eq!(reply.grpc_status(), Some(5), "NOT_FOUND: {reply:?}");

    // Watch: the current status, then NOT_SERVING when the server stops.
    let mut watch = watch_health(&channel).await;
    assert_eq!(&next_health(&mut watch).await[..], b"\x08\x01");
    server.stop().await;
    let (rest, end) = collect(watch).await;
    end.unwrap();
    assert_eq!(rest, [&b"\x08\x02"[..]]);

    // A stopping server says NOT_SERVING, and refuses calls with UNAVAILABLE.
    let reply = channel
        .unary::<Raw, Bytes, Bytes>(&HEALTH_CHECK, &mut Controller::new(), &health_request(""))
        .await
        .unwrap();
    assert_eq!(&reply[..], b"\x08\x02");
    let mut cntl = Controller::new();
    cntl.set_max_retry(0);
    let status = unary(&channel, &mut cntl, b"late").await.unwrap_err();
    assert_eq!(status.code(), errno::ELOGOFF, "{status}");
    server.join().await;
}

#[tokio::test]
async fn authentication_per_request() {
    let server = start(Server::builder().authenticator(Arc::new(Secret("server:unused")))).await;
    let good = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(HANG_GUARD)
        .authenticator(Arc::new(Secret("alice:secret")))
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    assert_eq!(
        &unary(&good, &mut Controller::new(), b"who").await.unwrap()[..],
        b"alice"
    );
    let bad = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(HANG_GUARD)
        .authenticator(Arc::new(Secret("mallory:guess")))
        .connection_group("bad")
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let status = unary(&bad, &mut Controller::new(), b"who")
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::ERPCAUTH, "{status}");
    assert!(
        status.message().starts_with("Fail to authenticate"),
        "{status}"
    );
    let reply = raw_call(
        &server,
        "/brisk.grpctest.Streamer/Echo",
        &[],
        framed(b"who"),
    )
    .await;
    assert_eq!(reply.grpc_status(), Some(16), "UNAUTHENTICATED: {reply:?}");
}

#[tokio::test]
async fn truncated_and_malformed_bodies() {
    let server = start_default().await;
    // A message cut short by the end of the stream.
    let reply = raw_call(
        &server,
        "/brisk.grpctest.Streamer/Echo",
        &[],
        vec![0, 0, 0, 0, 10, b'a', b'b'],
    )
    .await;
    assert_eq!(reply.grpc_status(), Some(3), "{reply:?}");
    assert!(
        reply.grpc_message().contains("ended inside a message"),
        "{reply:?}"
    );
    // Half a prefix; a bad flag; no message; two messages to a unary method.
    for body in [
        vec![0, 0],
        vec![9, 0, 0, 0, 0],
        Vec::new(),
        [framed(b"a"), framed(b"b")].concat(),
    ] {
        let reply = raw_call(&server, "/brisk.grpctest.Streamer/Echo", &[], body.clone()).await;
        assert_eq!(reply.grpc_status(), Some(3), "{body:?}: {reply:?}");
    }
    // The same into a streaming method ends its stream with an error.
    let reply = raw_call(
        &server,
        "/brisk.grpctest.Streamer/Concat",
        &[],
        [framed(b"a"), vec![0, 0, 0, 0, 10, b'x']].concat(),
    )
    .await;
    assert_eq!(reply.grpc_status(), Some(3), "{reply:?}");
    // The server is fine afterwards.
    let channel = grpc_channel(&server).await;
    assert_eq!(
        &unary(&channel, &mut Controller::new(), b"ok")
            .await
            .unwrap()[..],
        b"ok"
    );
}

#[tokio::test]
async fn baidu_std_shares_the_port() {
    let server = start_default().await;
    let grpc = EchoServiceClient::new(grpc_channel(&server).await);
    let baidu = EchoServiceClient::new(
        Channel::builder()
            .timeout(HANG_GUARD)
            .connect(&server.local_addr().to_string())
            .await
            .unwrap(),
    );
    for client in [&grpc, &baidu, &grpc] {
        let reply = client
            .echo(EchoRequest {
                message: "both".into(),
            })
            .await
            .unwrap();
        assert_eq!(reply.message, "both");
    }
}

/// A loopback address nothing listens on: connecting is refused.
async fn refused_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn streaming_calls_retry_before_sending_and_report_to_health_checks() {
    let live = start_default().await;
    let dead = refused_addr().await;
    let channel = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(HANG_GUARD)
        // Long enough that the dead server stays isolated for the whole test.
        .health_check_interval(Duration::from_secs(60))
        .connect_cluster(&format!("list://{dead},{}", live.local_addr()), "rr")
        .await
        .unwrap();
    // Every call opens, whichever server the balancer picks first: a refused connection sent
    // nothing, so the call moves to the other server, as a unary call does.
    let mut retried = 0;
    for _ in 0..4 {
        let mut cntl = Controller::new();
        let responses = channel
            .streaming::<Raw, Bytes, Bytes, _>(&SPLIT, &mut cntl, byte_stream(&["a,b"]))
            .await
            .expect("the stream opens on the live server");
        assert_eq!(cntl.remote_side(), Some(live.local_addr()));
        retried += cntl.retried_count();
        let (got, end) = collect(responses).await;
        end.unwrap();
        assert_eq!(got, ["a", "b"]);
    }
    // The refusal isolated the dead server: one retry at most, then calls go straight to the
    // live one.
    assert_eq!(
        retried, 1,
        "the dead server left rotation after its first refusal"
    );

    // A channel of its own to the dead server shares its (isolated) endpoint, as brpc's
    // channels share a server's socket: the stream fails at once, EHOSTDOWN.
    let lone = Channel::builder()
        .protocol(Protocol::GRPC)
        .max_retry(0)
        .connect(&dead.to_string())
        .await
        .unwrap();
    let err = lone
        .streaming::<Raw, Bytes, Bytes, _>(&SPLIT, &mut Controller::new(), byte_stream(&["a"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EHOSTDOWN, "{err}");
    assert_eq!(err.message(), format!("Not connected to {dead} yet"));

    // Once open, a stream is not retried: a handler's error ends it.
    let mut cntl = Controller::new();
    let responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(&SPLIT, &mut cntl, byte_stream(&["a,err"]))
        .await
        .unwrap();
    let (got, end) = collect(responses).await;
    assert_eq!(got, ["a"]);
    assert!(end.is_err());
    assert_eq!(cntl.retried_count(), 0);
    live.shutdown().await;
}

#[tokio::test]
async fn requests_the_protocol_cannot_carry_count_against_no_server() {
    let server = start_default().await;
    let channel = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(HANG_GUARD)
        .enable_circuit_breaker(true)
        .connect_cluster(&format!("list://{}", server.local_addr()), "rr")
        .await
        .unwrap();
    // gRPC has no attachment: refused before anything is sent, every time...
    for _ in 0..300 {
        let mut cntl = Controller::new();
        cntl.set_request_attachment("nope");
        let err = unary(&channel, &mut cntl, b"x").await.unwrap_err();
        assert_eq!(err.code(), errno::EREQUEST, "{err}");
    }
    // ...and the server is no worse for it: the breaker did not isolate it.
    let mut cntl = Controller::new();
    assert_eq!(&unary(&channel, &mut cntl, b"ok").await.unwrap()[..], b"ok");

    // A streaming call on a protocol without them fails before any server is picked.
    let baidu = Channel::builder()
        .connect_cluster(&format!("list://{}", server.local_addr()), "rr")
        .await
        .unwrap();
    let mut cntl = Controller::new();
    let err = baidu
        .streaming::<Raw, Bytes, Bytes, _>(&SPLIT, &mut cntl, byte_stream(&["a"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EREQUEST, "{err}");
    assert_eq!(cntl.remote_side(), None, "no server was picked");
    server.shutdown().await;
}

#[tokio::test]
async fn clusters_stream_and_calls_can_be_cancelled() {
    let a = start_default().await;
    let b = start_default().await;
    let channel = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(HANG_GUARD)
        .connect_cluster(
            &format!("list://{},{}", a.local_addr(), b.local_addr()),
            "rr",
        )
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let mut cntl = Controller::new();
        let responses = channel
            .streaming::<Raw, Bytes, Bytes, _>(&SPLIT, &mut cntl, byte_stream(&["a,b"]))
            .await
            .unwrap();
        seen.insert(cntl.remote_side().unwrap());
        let (got, end) = collect(responses).await;
        end.unwrap();
        assert_eq!(got, ["a", "b"]);
        let mut cntl = Controller::new();
        assert_eq!(&unary(&channel, &mut cntl, b"u").await.unwrap()[..], b"u");
        seen.insert(cntl.remote_side().unwrap());
    }
    assert_eq!(seen.len(), 2, "both servers took calls: {seen:?}");

    // A CallId cancels a streaming call mid-stream.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let requests = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut cntl = Controller::new();
    let id = cntl.call_id();
    let mut responses = channel
        .streaming::<Raw, Bytes, Bytes, _>(&CHAT, &mut cntl, requests)
        .await
        .unwrap();
    tx.send(Bytes::from_static(b"x")).unwrap();
    let first = tokio::time::timeout(HANG_GUARD, responses.message())
        .await
        .unwrap();
    assert_eq!(&first.unwrap().unwrap()[..], b"re:x");
    id.cancel();
    let (rest, end) = collect(responses).await;
    assert!(rest.is_empty());
    assert_eq!(end.unwrap_err().code(), errno::ECANCELED);
    tokio::time::timeout(HANG_GUARD, id.join())
        .await
        .expect("the call is finished");
}

#[tokio::test]
async fn blocking_clients_call_over_grpc() {
    let server = start_default().await;
    let addr = server.local_addr().to_string();
    let replies = tokio::task::spawn_blocking(move || {
        let channel = Channel::builder()
            .protocol(Protocol::GRPC)
            .timeout(HANG_GUARD)
            .connect_blocking(&addr)
            .unwrap();
        (0..3)
            .map(|i| {
                let request = Bytes::from(format!("blocking {i}"));
                channel
                    .block_on(channel.unary::<Raw, Bytes, Bytes>(
                        &ECHO,
                        &mut Controller::new(),
                        &request,
                    ))
                    .unwrap()
            })
            .collect::<Vec<_>>()
    });
    let replies = tokio::time::timeout(HANG_GUARD, replies)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replies, ["blocking 0", "blocking 1", "blocking 2"]);
}

/// brpc 1.17's echo_client -protocol=h2:grpc, byte for byte: two calls on one connection.
#[tokio::test]
async fn brpc_h2grpc_client_traffic_replays() {
    let server = start_default().await;
    let c2s = std::fs::read(wire_sample("h2grpc_c2s.bin")).expect("sample");
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(&c2s).await.unwrap();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut ended = 0;
    while ended < 2 {
        let n = tokio::time::timeout(HANG_GUARD, stream.read_buf(&mut buf))
            .await
            .expect("the server answers both calls")
            .unwrap();
        assert_ne!(n, 0, "connection closed early; frames so far: {frames:?}");
        while let Some(frame) = next_h2_frame(&mut buf) {
            if frame.kind == 1 && frame.flags & 1 != 0 {
                ended += 1;
            }
            frames.push(frame);
        }
    }
    let data: Vec<u8> = frames
        .iter()
        .filter(|f| f.kind == 0)
        .flat_map(|f| f.payload.clone())
        .collect();
    let hello = b"\x0a\x0bhello world";
    let echoed = data.windows(hello.len()).filter(|w| w == hello).count();
    assert_eq!(echoed, 2, "{frames:?}");
    for stream_id in [1, 3] {
        let data: Vec<u8> = frames
            .iter()
            .filter(|f| f.kind == 0 && f.stream == stream_id)
            .flat_map(|f| f.payload.clone())
            .collect();
        assert_eq!(
            data,
            [&b"\0\0\0\0\x0d"[..], hello].concat(),
            "stream {stream_id}"
        );
    }
    for goaway in frames.iter().filter(|f| f.kind == 7) {
        let code = u32::from_be_bytes(goaway.payload[4..8].try_into().unwrap());
        assert_eq!(code, 0, "GOAWAY with an error: {goaway:?}");
    }
    assert!(
        !frames.iter().any(|f| f.kind == 3),
        "no stream was reset: {frames:?}"
    );
}

/// One HTTP/2 frame, as read off the wire.
#[derive(Debug)]
struct H2Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn next_h2_frame(buf: &mut BytesMut) -> Option<H2Frame> {
    if buf.len() < 9 {
        return None;
    }
    let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
    if buf.len() < 9 + len {
        return None;
    }
    let kind = buf[3];
    let flags = buf[4];
    let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
    buf.advance(9);
    let payload = buf.split_to(len).to_vec();
    Some(H2Frame {
        kind,
        flags,
        stream,
        payload,
    })
}

/// A message with its 5-byte prefix.
fn framed(message: &[u8]) -> Vec<u8> {
    prefixed(false, message)
}

/// A message with its 5-byte prefix: the compressed flag and the big-endian length.
fn prefixed(compressed: bool, message: &[u8]) -> Vec<u8> {
    let mut buf = vec![u8::from(compressed)];
    buf.extend_from_slice(&(message.len() as u32).to_be_bytes());
    buf.extend_from_slice(message);
    buf
}

/// Undoes gRPC's percent-encoding of `grpc-message`.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a hand-driven HTTP/2 client got back.
#[derive(Debug)]
struct RawReply {
    headers: http::HeaderMap,
    data: Vec<u8>,
    trailers: Option<http::HeaderMap>,
}

impl RawReply {
    fn status_source(&self) -> &http::HeaderMap {
        self.trailers.as_ref().unwrap_or(&self.headers)
    }

    fn grpc_status(&self) -> Option<u32> {
        self.status_source()
            .get("grpc-status")?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    fn grpc_message(&self) -> String {
        let raw = self
            .status_source()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        percent_decode(raw)
    }
}

/// One gRPC request from a plain hyper HTTP/2 client, with `body` as is.
async fn raw_call(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> RawReply {
    let call = async {
        let stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let mut request = http::Request::post(format!("http://{}{path}", server.local_addr()))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        let (parts, mut body) = response.into_parts();
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        RawReply {
            headers: parts.headers,
            data,
            trailers,
        }
    };
    tokio::time::timeout(HANG_GUARD, call)
        .await
        .expect("raw call hung")
}

#[tokio::test]
async fn stalled_clients_do_not_hold_shutdown() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    // A bidi call whose client never ends its requests, and a unary call whose body never
    // ends: neither may keep `shutdown` waiting.
    // Calls that outlive the test's guard: only the server may end them.
    let long = Duration::from_secs(600);
    let mut cntl = Controller::new();
    cntl.set_timeout(long);
    let chat = channel
        .streaming::<Raw, Bytes, Bytes, _>(&CHAT, &mut cntl, stream::pending::<Bytes>())
        .await
        .expect("the stream opens");
    // The unary call by hand, so the test knows when the server has it: its HEADERS and a
    // message prefix promising 10 bytes that never come, then a PING, which the server
    // answers only after reading what came before it on the connection.
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (client, mut connection) = h2::client::handshake(stream).await.unwrap();
    let mut ping_pong = connection.ping_pong().expect("a ping handle");
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://{}/{SERVICE}/Echo", server.local_addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (stalled_unary, mut body) = client.send_request(request, false).unwrap();
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 10]), false)
        .unwrap();
    tokio::time::timeout(HANG_GUARD, ping_pong.ping(h2::Ping::opaque()))
        .await
        .expect("pong within the hang guard")
        .expect("pong");
    tokio::time::timeout(HANG_GUARD, server.shutdown())
        .await
        .expect("shutdown finishes although clients stall");
    // The stream ended with an error, not cleanly.
    let (_, end) = collect(chat).await;
    assert!(end.is_err(), "{end:?}");
    let _ = tokio::time::timeout(HANG_GUARD, stalled_unary).await;
    driver.abort();
}

#[tokio::test]
async fn ended_calls_reset_their_request_streams() {
    let server = start_default().await;
    let channel = grpc_channel(&server).await;
    // Two bidi calls whose requests never end: one reaches its deadline, the other is dropped
    // by its caller. Each must reset its HTTP/2 stream, so the server's handlers see their
    // request streams end and no call is left for shutdown's 3 s grace to cut.
    let mut cntl = Controller::new();
    cntl.set_timeout(Duration::from_millis(300));
    let timed = channel
        .streaming::<Raw, Bytes, Bytes, _>(&CHAT, &mut cntl, stream::pending::<Bytes>())
        .await
        .expect("the stream opens");
    let dropped = channel
        .streaming::<Raw, Bytes, Bytes, _>(
            &CHAT,
            &mut Controller::new(),
            stream::pending::<Bytes>(),
        )
        .await
        .expect("the stream opens");
    let (_, end) = collect(timed).await;
    assert_eq!(end.unwrap_err().code(), errno::ERPCTIMEDOUT);
    drop(dropped);
    // The connection still carries calls.
    assert_eq!(
        &unary(&channel, &mut Controller::new(), b"ok")
            .await
            .unwrap()[..],
        b"ok"
    );
    let started = std::time::Instant::now();
    tokio::time::timeout(HANG_GUARD, server.shutdown())
        .await
        .expect("shutdown finishes");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited {:?} for calls the client had ended",
        started.elapsed()
    );
}

/// `count` unary calls of rendezvous group `group` at once over one h2:grpc channel: each is
/// held in the server until all have arrived. Their results.
async fn crowd(
    server: &Server,
    group: &str,
    count: i32,
    timeout: Duration,
) -> Vec<Result<i32, Status>> {
    use brisk_tests::interop::{InteropClient, Msg};
    let channel = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(timeout)
        .max_retry(0)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let client = InteropClient::new(channel);
    let calls = (0..count).map(|seq| {
        let client = client.clone();
        let request = Msg {
            text: group.to_owned(),
            seq,
            rendezvous: count,
            ..Msg::default()
        };
        async move { client.unary(request).await.map(|reply| reply.seq) }
    });
    futures_util::future::join_all(calls).await
}

async fn interop_server(builder: brisk::ServerBuilder) -> Server {
    use brisk_tests::interop::{InteropImpl, InteropServer};
    builder
        .add_service(InteropServer::new(InteropImpl))
        .start("127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sets_no_stream_limit_unless_asked() {
    // 500 calls that can only complete together: the server lets them all in at once.
    let server = interop_server(Server::builder()).await;
    let results = crowd(&server, "unlimited", 500, Duration::from_secs(30)).await;
    let seqs: Vec<i32> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(seqs, (0..500).collect::<Vec<_>>());
    // With a limit of 50 streams per connection, 100 such calls can never all be in: every one
    // waits out its deadline.
    let limited = interop_server(Server::builder().max_concurrent_streams(50)).await;
    let results = crowd(&limited, "limited", 100, Duration::from_millis(500)).await;
    for result in results {
        let e = result.unwrap_err();
        assert_eq!(e.code(), errno::ERPCTIMEDOUT, "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_details_and_trailing_metadata_cross_brisk_to_brisk() {
    use brisk_tests::interop::{InteropClient, Msg};
    let server = interop_server(Server::builder()).await;
    let channel = Channel::builder()
        .protocol(Protocol::GRPC)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let client = InteropClient::new(channel);
    let status = client
        .unary(Msg {
            text: "no".into(),
            fail_code: 4321,
            blob: b"\x08\x09".to_vec(),
            ..Msg::default()
        })
        .await
        .unwrap_err();
    assert_eq!((status.code(), status.message()), (4321, "no"));
    assert_eq!(status.details(), b"\x08\x09");
    let mut cntl = Controller::new();
    cntl.set_request_header("x-echo", "e");
    client
        .unary_with(
            &mut cntl,
            Msg {
                text: "t".into(),
                ..Msg::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cntl.response_header("x-echoed-trailer"), Some("e"));
}

/// An HTTP/2 server that refuses the first `refusals` streams it gets (RST_STREAM with
/// REFUSED_STREAM, as a server does to streams past the limit its SETTINGS set, when a client
/// opened them before the SETTINGS arrived) and answers the others with the message `hi`.
/// Its address, and the count of streams it got.
async fn refusing_server(refusals: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = Arc::new(AtomicUsize::new(0));
    let counted = streams.clone();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::handshake(socket).await.unwrap();
        while let Some(Ok((_request, mut respond))) = connection.accept().await {
            if counted.fetch_add(1, Ordering::SeqCst) < refusals {
                respond.send_reset(h2::Reason::REFUSED_STREAM);
                continue;
            }
            let head = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut body = respond.send_response(head, false).unwrap();
            let message = Bytes::from_static(&[0, 0, 0, 0, 2, b'h', b'i']);
            body.send_data(message, false).unwrap();
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            body.send_trailers(trailers).unwrap();
        }
    });
    (addr, streams)
}

/// A stream the server refused processed nothing, so the client sends it once more without
/// spending the call's retries (gRPC's transparent retry); refused again, the call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_is_sent_once_more() {
    for (refusals, streams_sent) in [(1, 2), (2, 2)] {
        let (addr, streams) = refusing_server(refusals).await;
        let channel = Channel::builder()
            .protocol(Protocol::GRPC)
            .timeout(HANG_GUARD)
            .max_retry(0)
            .connect(&addr.to_string())
            .await
            .unwrap();
        let mut cntl = Controller::new();
        let result = unary(&channel, &mut cntl, b"x").await;
        match refusals {
            1 => assert_eq!(result.unwrap(), "hi"),
            _ => {
                let status = result.unwrap_err();
                assert_eq!(status.code(), errno::EFAILEDSOCKET, "{status}");
                assert!(status.message().contains("refused"), "{status}");
            }
        }
        assert_eq!(streams.load(Ordering::SeqCst), streams_sent);
        assert_eq!(cntl.retried_count(), 0);
    }
}

/// An HTTP/2 frame: its 9-byte head (length, type, flags, stream), then `payload`.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The HPACK block of a gRPC request for `path` (nothing indexed, no Huffman coding).
fn grpc_request_block(authority: &str, path: &str) -> Vec<u8> {
    // :method POST and :scheme http, from the static table.
    let mut block = vec![0x83, 0x86];
    // Literals without indexing, names from the static table: :path (4), :authority (1),
    // content-type (31, past the 4-bit prefix: 15 + 16).
    for (name, value) in [
        (&[0x04][..], path),
        (&[0x01], authority),
        (&[0x0f, 0x10], "application/grpc"),
    ] {
        block.extend_from_slice(name);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block.extend_from_slice(b"\x00\x02te\x08trailers");
    block
}

/// Callers that give up together (a deadline shared by a crowd of calls) cancel streams the
/// server has read but not yet taken up. `h2` takes more than 20 such streams in one go for
/// the "rapid reset" attack and ends the connection with every other call on it; the server
/// lets a burst of 100 pass, and answers the next call on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_cancelled_streams_leaves_the_connection_open() {
    const BURST: u32 = 100;
    let server = start_default().await;
    let addr = server.local_addr();
    let block = grpc_request_block(&addr.to_string(), &format!("/{SERVICE}/Echo"));
    let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    wire.extend(h2_frame(0x4, 0, 0, &[]));
    for i in 0..BURST {
        let stream = 2 * i + 1;
        // HEADERS (END_HEADERS), then RST_STREAM (CANCEL).
        wire.extend(h2_frame(0x1, 0x4, stream, &block));
        wire.extend(h2_frame(0x3, 0, stream, &8u32.to_be_bytes()));
    }
    let last = 2 * BURST + 1;
    wire.extend(h2_frame(0x1, 0x4, last, &block));
    // DATA (END_STREAM): a 2-byte message behind its gRPC prefix.
    wire.extend(h2_frame(0x0, 0x1, last, &[0, 0, 0, 0, 2, b'h', b'i']));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&wire).await.unwrap();
    // Frames until the last call's answer (DATA on its stream); GOAWAY or the end of the
    // connection first is the failure.
    let read = async {
        loop {
            let mut head = [0u8; 9];
            if stream.read_exact(&mut head).await.is_err() {
                return "the server closed the connection";
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).await.unwrap();
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            match head[3] {
                0x7 => return "the server sent GOAWAY",
                0x0 if id == last => return "answered",
                _ => {}
            }
        }
    };
    let outcome = tokio::time::timeout(HANG_GUARD, read)
        .await
        .expect("an answer or GOAWAY within the hang guard");
    assert_eq!(outcome, "answered");
}

/// HTTP/2 connections are served by the runtime's dispatchers, not by a task each: with
/// thousands of connections on a busy server, tasks woken by their sockets overflowed a tokio
/// worker's queue into the runtime's shared one and waited there while others were served
/// again and again. A hundred connections, each with a call answered on it, leave the server's
/// runtime with about as many tasks as one did.
#[test]
fn http2_connections_take_no_task_each() {
    const CONNECTIONS: usize = 100;
    let server_runtime = brisk_tests::one_worker_runtime();
    let server = server_runtime.block_on(start_default());
    let addr = server.local_addr();
    let (before, after) =
        brisk_tests::server_tasks_around(&server_runtime, CONNECTIONS, |_| async {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (client, connection) = h2::client::handshake(stream).await.unwrap();
            let driver = tokio::spawn(connection);
            let mut client = client.ready().await.unwrap();
            let request = http::Request::post(format!("http://{addr}/{SERVICE}/Echo"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())
                .unwrap();
            let (response, mut body) = client.send_request(request, false).unwrap();
            let message = Bytes::from_static(&[0, 0, 0, 0, 2, b'h', b'i']);
            body.send_data(message.clone(), true).unwrap();
            let response = tokio::time::timeout(HANG_GUARD, response)
                .await
                .expect("an answer within the hang guard")
                .expect("an answer");
            let mut body = response.into_body();
            let mut answered = BytesMut::new();
            while let Some(data) = body.data().await {
                answered.extend_from_slice(&data.unwrap());
            }
            assert_eq!(answered.freeze(), message, "the message is echoed");
            (client, driver)
        });
    assert!(
        after < before + CONNECTIONS / 10,
        "{CONNECTIONS} more connections took {} more tasks ({before} -> {after})",
        after.saturating_sub(before)
    );
    drop(server);
}
