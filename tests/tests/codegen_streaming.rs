//! The code `brisk-codegen` generates for streaming methods (`tests/proto/interop.proto`, all
//! four method kinds), end to end:
//!
//! - the server adapter on its own: method kinds, the protobuf schema, `call_streaming` for each
//!   kind and `call` refusing streaming methods (no transport involved);
//! - a real Brisk server on 127.0.0.1 called by the generated `InteropClient` over an `h2:grpc`
//!   channel, for every kind;
//! - the same server over `baidu_std`: unary works, a streaming method is refused.

use std::time::Duration;

use brisk::codegen::{BytesStream, MessageSchema, MethodKind, Prost, Service as _};
use brisk::{
    errno, Channel, Controller, MethodDescriptor, Protocol, ServerContext, Status, Streaming,
};
use bytes::Bytes;
use futures_util::stream;
use prost::Message as _;

/// Code generated from `tests/proto/interop.proto`.
use brisk_tests::interop::{self, InteropClient, InteropImpl, InteropServer, Msg};

const TIMEOUT: Duration = Duration::from_secs(30);

fn msg(text: &str, seq: i32) -> Msg {
    Msg {
        text: text.to_owned(),
        seq,
        ..Msg::default()
    }
}

fn context() -> ServerContext {
    let addr = "127.0.0.1:1".parse().unwrap();
    ServerContext::new(addr, addr)
}

/// Encoded messages as the runtime hands them to `call_streaming`.
fn encoded(messages: &[Msg]) -> BytesStream {
    let items: Vec<Result<Bytes, Status>> = messages
        .iter()
        .map(|m| Ok(Bytes::from(m.encode_to_vec())))
        .collect();
    Box::pin(stream::iter(items))
}

/// Runs `call_streaming` on the generated adapter and collects the decoded responses.
async fn call_streaming(method: usize, requests: &[Msg]) -> Result<Vec<Msg>, Status> {
    let server = InteropServer::new(InteropImpl);
    let response = server
        .call_streaming(method, context(), encoded(requests))
        .await;
    let mut responses = Streaming::<Msg>::responses::<Prost>(response.result?);
    let mut out = Vec::new();
    while let Some(message) = responses.message().await? {
        out.push(message);
    }
    Ok(out)
}

// Minimal `google.protobuf.FileDescriptorSet` decoding, enough to check the schema.
#[derive(Clone, PartialEq, prost::Message)]
struct FileDescriptorSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FileDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    package: Option<String>,
    #[prost(message, repeated, tag = "6")]
    service: Vec<ServiceDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ServiceDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    method: Vec<MethodDescriptorProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MethodDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(bool, optional, tag = "5")]
    client_streaming: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    server_streaming: Option<bool>,
}

#[test]
fn adapter_declares_method_kinds_and_the_protobuf_schema() {
    let server = InteropServer::new(InteropImpl);
    assert_eq!(server.full_name(), "interop.Interop");
    assert_eq!(
        server.method_names(),
        ["Unary", "ServerStream", "ClientStream", "Bidi"]
    );
    assert_eq!(
        server.method_kinds(),
        [
            MethodKind::Unary,
            MethodKind::ServerStreaming,
            MethodKind::ClientStreaming,
            MethodKind::BidiStreaming
        ]
    );
    let MessageSchema::Protobuf {
        file_descriptor_set,
    } = server.schema()
    else {
        panic!("expected a protobuf schema, got {:?}", server.schema());
    };
    assert_eq!(file_descriptor_set, interop::FILE_DESCRIPTOR_SET);
    let set = FileDescriptorSet::decode(file_descriptor_set).expect("a FileDescriptorSet");
    assert_eq!(set.file.len(), 1, "interop.proto imports nothing");
    let file = &set.file[0];
    assert_eq!(file.name.as_deref(), Some("interop.proto"));
    assert_eq!(file.package.as_deref(), Some("interop"));
    let methods: Vec<(&str, bool, bool)> = file.service[0]
        .method
        .iter()
        .map(|m| {
            (
                m.name.as_deref().unwrap_or_default(),
                m.client_streaming.unwrap_or_default(),
                m.server_streaming.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        methods,
        [
            ("Unary", false, false),
            ("ServerStream", false, true),
            ("ClientStream", true, false),
            ("Bidi", true, true)
        ]
    );
}

#[tokio::test]
async fn adapter_runs_each_streaming_kind() {
    // Server streaming: exactly one request in, `seq` responses out.
    let replies = call_streaming(1, &[msg("s", 3)]).await.unwrap();
    let texts: Vec<&str> = replies.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["s-0", "s-1", "s-2"]);

    // Client streaming: the one response goes out as a one-item stream.
    let replies = call_streaming(2, &[msg("a", 0), msg("b", 0), msg("c", 0)])
        .await
        .unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].text, "a,b,c");
    assert_eq!(replies[0].seq, 3);

    // Bidi: every request echoed.
    let replies = call_streaming(3, &[msg("x", 1), msg("y", 2)])
        .await
        .unwrap();
    assert_eq!(replies, [msg("x", 1), msg("y", 2)]);
}

#[tokio::test]
async fn adapter_reports_streaming_errors() {
    // A server-streaming call needs exactly one request.
    for requests in [vec![], vec![msg("a", 1), msg("b", 1)]] {
        let error = call_streaming(1, &requests).await.unwrap_err();
        assert_eq!(error.code(), errno::EREQUEST, "{error:?}");
    }
    // A request that does not decode.
    let server = InteropServer::new(InteropImpl);
    let garbage: BytesStream = Box::pin(stream::iter([Ok(Bytes::from_static(b"\xff\xff"))]));
    let response = server.call_streaming(1, context(), garbage).await;
    let error = response.result.err().expect("undecodable request fails");
    assert_eq!(error.code(), errno::EREQUEST, "{error:?}");
    // The handler's own failure, before and after streaming.
    let mut failing = msg("no", 0);
    failing.fail_code = errno::EINTERNAL;
    let error = call_streaming(1, std::slice::from_ref(&failing))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (errno::EINTERNAL, "no"),
        "{error:?}"
    );
    let error = call_streaming(3, &[msg("ok", 0), failing])
        .await
        .unwrap_err();
    assert_eq!(error.code(), errno::EINTERNAL, "{error:?}");
    // Unary and unknown indexes are not streaming methods.
    for method in [0, 4, 99] {
        let error = call_streaming(method, &[msg("u", 0)]).await.unwrap_err();
        assert_eq!(error.code(), errno::ENOMETHOD, "{method}: {error:?}");
    }
}

#[tokio::test]
async fn call_refuses_streaming_methods() {
    let server = InteropServer::new(InteropImpl);
    let request = Bytes::from(msg("u", 0).encode_to_vec());
    let response = server.call(0, context(), request.clone()).await;
    assert_eq!(Msg::decode(response.result.unwrap()).unwrap(), msg("u", 0));
    for (method, name) in [(1, "ServerStream"), (2, "ClientStream"), (3, "Bidi")] {
        let response = server.call(method, context(), request.clone()).await;
        let error = response.result.unwrap_err();
        assert_eq!(error.code(), errno::EREQUEST, "{error:?}");
        assert_eq!(
            error.message(),
            format!("streaming method `interop.Interop.{name}` needs protocol h2:grpc")
        );
    }
}

async fn start_server() -> brisk::Server {
    brisk::Server::builder()
        .add_service(InteropServer::new(InteropImpl))
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

async fn channel(server: &brisk::Server, protocol: Protocol) -> Channel {
    Channel::builder()
        .protocol(protocol)
        .timeout(TIMEOUT)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel")
}

/// Waits for `future`, failing the test instead of hanging it.
async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(TIMEOUT + Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_methods_refused_over_baidu_std() {
    let server = start_server().await;
    let channel = channel(&server, Protocol::BAIDU_STD).await;
    let client = InteropClient::new(channel.clone());
    let echoed = guarded("unary", client.unary(msg("plain", 7))).await;
    assert_eq!(echoed.unwrap(), msg("plain", 7));

    // A streaming method reached through a unary protocol is an error, not a hang.
    let method = MethodDescriptor::new("interop.Interop", "Bidi");
    let mut cntl = Controller::new();
    let result = guarded(
        "bidi over baidu_std",
        channel.unary::<Prost, Msg, Msg>(&method, &mut cntl, &msg("b", 0)),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    // And a streaming call on a baidu_std channel fails (only h2:grpc streams).
    let result = guarded("streaming client", client.bidi(stream::iter([msg("b", 0)]))).await;
    assert!(result.is_err());
    server.shutdown().await;
}

/// All four kinds through the generated client, an `h2:grpc` channel and a real server. Needs
/// the gRPC transport behind `Channel::streaming` and `Service::call_streaming`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_kinds_over_h2_grpc() {
    let server = start_server().await;
    let client = InteropClient::new(channel(&server, Protocol::GRPC).await);

    let echoed = guarded("unary", client.unary(msg("u", 1))).await;
    assert_eq!(echoed.expect("unary over h2:grpc"), msg("u", 1));

    // Server streaming.
    let mut replies = guarded("server_stream", client.server_stream(msg("s", 4)))
        .await
        .expect("server_stream starts");
    let mut texts = Vec::new();
    while let Some(reply) = guarded("server_stream reply", replies.message())
        .await
        .expect("server_stream reply")
    {
        texts.push(reply.text);
    }
    assert_eq!(texts, ["s-0", "s-1", "s-2", "s-3"]);

    // Server streaming that fails before streaming.
    let mut failing = msg("refused", 1);
    failing.fail_code = errno::EINTERNAL;
    let outcome = guarded("failing server_stream", async {
        let mut replies = client.server_stream(failing.clone()).await?;
        replies.message().await
    })
    .await;
    assert!(outcome.is_err(), "{outcome:?}");

    // Client streaming, with the per-call-options variant.
    let requests: Vec<Msg> = (0..5)
        .map(|i| Msg {
            text: format!("c{i}"),
            blob: vec![i as u8],
            ..Msg::default()
        })
        .collect();
    let mut cntl = Controller::new();
    let summary = guarded(
        "client_stream",
        client.client_stream_with(&mut cntl, stream::iter(requests)),
    )
    .await
    .expect("client_stream");
    assert_eq!(summary.text, "c0,c1,c2,c3,c4");
    assert_eq!(summary.seq, 5);
    assert_eq!(&summary.blob[..], [0, 1, 2, 3, 4]);

    let empty = guarded(
        "empty client_stream",
        client.client_stream(stream::iter(Vec::<Msg>::new())),
    )
    .await
    .expect("empty client_stream");
    assert_eq!((empty.seq, empty.text.as_str()), (0, ""));

    // Bidi, in lock step: each reply arrives before the next request is sent.
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let requests = stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|m| (m, receiver))
    });
    sender.send(msg("b0", 0)).unwrap();
    let mut replies = guarded("bidi", client.bidi(requests))
        .await
        .expect("bidi starts");
    for i in 0..3 {
        let reply = guarded("bidi reply", replies.message())
            .await
            .expect("bidi reply")
            .expect("a reply before the end");
        assert_eq!(reply, msg(&format!("b{i}"), i));
        if i < 2 {
            sender.send(msg(&format!("b{}", i + 1), i + 1)).unwrap();
        }
    }
    drop(sender);
    let end = guarded("bidi end", replies.message()).await;
    assert_eq!(end.expect("clean end"), None);

    server.shutdown().await;
}
