//! `#[brisk::service]` end to end: macro services on a real `brisk::Server`, called over
//! loopback with their generated async and blocking clients, and wire compatibility with the
//! code generated from `examples/proto/echo.proto` in both directions, and streaming methods
//! of all four kinds over `h2:grpc`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use brisk::{errno, Controller, ServerContext, Status};
use brisk_tests::echo::{EchoRequest, EchoResponse, EchoServiceClient, EchoServiceServer};
use brisk_tests::raw::read_frame;
use bytes::BytesMut;
use serde::{Deserialize, Serialize};

/// Generous, only so a broken build fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddRequest {
    pub a: i64,
    pub b: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddResponse {
    pub sum: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
    pub tags: Vec<String>,
}

/// A calculator with no `.proto`: serde types carried as JSON.
#[brisk::service(package = "brisk.macro", codec = "json")]
pub trait Calculator {
    /// Adds; fails with EINVAL ahead of an overflow.
    async fn add(&self, request: AddRequest) -> Result<AddResponse, brisk::Status>;
    /// Infallible, no context: counts the calls so far, this one included.
    async fn count(&self, request: ()) -> u64;
    /// Context-taking: echoes the note with the caller's log id as a tag, and the request
    /// attachment back as the response attachment.
    async fn annotate(&self, cntl: &mut ServerContext, request: Note) -> Note;
    /// Context-taking and fallible: fails with the code and text it is given.
    #[rpc(name = "FailWith")]
    async fn fail(
        &self,
        cntl: &mut brisk::ServerContext,
        request: (i32, String),
    ) -> Result<(), brisk::Status>;
}

#[derive(Debug, Default)]
struct Calc {
    calls: AtomicU64,
}

impl Calculator for Calc {
    async fn add(&self, request: AddRequest) -> Result<AddResponse, Status> {
        let sum = request
            .a
            .checked_add(request.b)
            .ok_or_else(|| Status::new(errno::EINVAL, "the sum overflows i64"))?;
        Ok(AddResponse { sum })
    }

    async fn count(&self, _request: ()) -> u64 {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1
    }

    async fn annotate(&self, cntl: &mut ServerContext, mut request: Note) -> Note {
        request.tags.push(format!("log_id={}", cntl.log_id()));
        let attachment = cntl.request_attachment().clone();
        cntl.set_response_attachment(attachment);
        request
    }

    async fn fail(&self, _cntl: &mut ServerContext, request: (i32, String)) -> Result<(), Status> {
        Err(Status::new(request.0, request.1))
    }
}

/// The `.proto`'s `example.EchoService`, written as a trait with its own Rust names.
#[brisk::service(package = "example", name = "EchoService")]
pub trait MacroEcho {
    #[rpc(name = "Echo")]
    async fn say(&self, request: EchoRequest) -> Result<EchoResponse, brisk::Status>;
}

/// Answers with a marker, so tests can tell which server answered.
#[derive(Debug)]
struct MacroEchoImpl;

impl MacroEcho for MacroEchoImpl {
    async fn say(&self, request: EchoRequest) -> Result<EchoResponse, Status> {
        Ok(EchoResponse {
            message: format!("macro:{}", request.message),
        })
    }
}

async fn start(service: impl brisk::codegen::Service) -> brisk::Server {
    brisk::Server::builder()
        .add_service(service)
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

async fn channel(server: &brisk::Server) -> brisk::Channel {
    brisk_tests::channel_to(server, TIMEOUT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_service_async_client() {
    let server = start(CalculatorServer::new(Calc::default())).await;
    let client = CalculatorClient::new(channel(&server).await);

    let reply = client.add(AddRequest { a: 40, b: 2 }).await.unwrap();
    assert_eq!(reply, AddResponse { sum: 42 });

    // Infallible, no context.
    assert_eq!(client.count(()).await.unwrap(), 1);
    assert_eq!(client.count(()).await.unwrap(), 2);

    // Context: the log id reaches the handler, the attachment goes there and back.
    let mut cntl = Controller::new();
    cntl.set_log_id(77);
    cntl.set_request_attachment(&b"raw"[..]);
    let note = Note {
        text: "hi".into(),
        tags: vec!["a".into()],
    };
    let reply = client.annotate_with(&mut cntl, note).await.unwrap();
    assert_eq!(reply.text, "hi");
    assert_eq!(reply.tags, ["a", "log_id=77"]);
    assert_eq!(&cntl.response_attachment()[..], b"raw");
    assert!(!cntl.failed());

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_service_handler_errors_reach_the_client() {
    let server = start(CalculatorServer::new(Calc::default())).await;
    let client = CalculatorClient::new(channel(&server).await);

    let status = client
        .add(AddRequest { a: i64::MAX, b: 1 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::EINVAL);
    assert_eq!(status.message(), "the sum overflows i64");

    let mut cntl = Controller::new();
    let status = client
        .fail_with(&mut cntl, (4242, "custom failure".into()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), 4242);
    assert_eq!(status.message(), "custom failure", "{status}");
    assert_eq!(cntl.error_code(), 4242);
    assert_eq!(
        cntl.error_text(),
        "[E4242]custom failure",
        "brpc's ErrorText"
    );

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_service_blocking_client() {
    let server = start(CalculatorServer::new(Calc::default())).await;
    let client = CalculatorBlockingClient::new(channel(&server).await);

    let (sum, count, note, status) = tokio::task::spawn_blocking(move || {
        let sum = client.add(AddRequest { a: 1, b: 2 }).unwrap().sum;
        let count = client.count(()).unwrap();
        let mut cntl = Controller::new();
        cntl.set_log_id(5);
        let note = client
            .annotate_with(
                &mut cntl,
                Note {
                    text: "blocking".into(),
                    tags: Vec::new(),
                },
            )
            .unwrap();
        let status = client.fail((7, "seven".into())).unwrap_err();
        (sum, count, note, status)
    })
    .await
    .unwrap();
    assert_eq!(sum, 3);
    assert_eq!(count, 1);
    assert_eq!(note.text, "blocking");
    assert_eq!(note.tags, ["log_id=5"]);
    assert_eq!(status.code(), 7);
    assert_eq!(status.message(), "seven", "{status}");

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_service_rejects_a_request_it_cannot_parse() {
    // A request the JSON codec cannot decode is EREQUEST, as for protobuf: send a prost
    // EchoRequest to the JSON calculator's `Add` by calling through a trait whose wire names
    // match it but whose codec is prost.
    #[brisk::service(package = "brisk.macro", name = "Calculator")]
    trait ProstCalculator {
        #[rpc(name = "Add")]
        async fn add(&self, request: EchoRequest) -> EchoResponse;
    }

    let server = start(CalculatorServer::new(Calc::default())).await;
    let client = ProstCalculatorClient::new(channel(&server).await);
    let status = client
        .add(EchoRequest {
            message: "not json".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::EREQUEST, "{status}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_requests_say_json_in_the_meta() {
    // A bare listener stands in for the server, to look at the request frame itself.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let call = tokio::spawn(async move {
        let channel = brisk::Channel::builder()
            .timeout(TIMEOUT)
            .max_retry(0)
            .connect(&address)
            .await
            .unwrap();
        CalculatorClient::new(channel)
            .add(AddRequest { a: 1, b: 2 })
            .await
    });
    let (mut stream, _) = listener.accept().await.unwrap();
    let frame = read_frame(&mut stream, &mut BytesMut::new()).await;
    let request = frame.meta.request.as_ref().unwrap();
    assert_eq!(request.service_name, "brisk.macro.Calculator");
    assert_eq!(request.method_name, "Add");
    assert_eq!(frame.meta.content_type, Some(1), "JSON");
    let (payload, _) = frame.split_body().unwrap();
    assert_eq!(&payload[..], br#"{"a":1,"b":2}"#);
    drop(stream);
    // No answer: the call fails, it does not hang.
    assert!(call.await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macro_server_serves_the_proto_client() {
    let server = start(MacroEchoServer::new(MacroEchoImpl)).await;
    let client = EchoServiceClient::new(channel(&server).await);
    let reply = client
        .echo(EchoRequest {
            message: "from proto".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.message, "macro:from proto");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macro_client_calls_the_proto_server() {
    let server = start(EchoServiceServer::new(brisk_tests::Echo)).await;
    let channel = channel(&server).await;

    let client = MacroEchoClient::new(channel.clone());
    let mut cntl = Controller::new();
    cntl.set_request_attachment(&b"att"[..]);
    let reply = client
        .say_with(
            &mut cntl,
            EchoRequest {
                message: "from macro".into(),
            },
        )
        .await
        .unwrap();
    // brisk_tests::Echo answers with the message unchanged and the attachment echoed.
    assert_eq!(reply.message, "from macro");
    assert_eq!(&cntl.response_attachment()[..], b"att");

    let blocking = MacroEchoBlockingClient::new(channel);
    let reply = tokio::task::spawn_blocking(move || {
        blocking.say(EchoRequest {
            message: "blocking macro".into(),
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(reply.message, "blocking macro");
    server.shutdown().await;
}

#[test]
fn macro_service_has_the_proto_names() {
    use brisk::codegen::Service as _;
    let macro_server = MacroEchoServer::new(MacroEchoImpl);
    let proto_server = EchoServiceServer::new(brisk_tests::Echo);
    assert_eq!(macro_server.full_name(), proto_server.full_name());
    assert_eq!(macro_server.method_names(), proto_server.method_names());
    let calc = CalculatorServer::new(Calc::default());
    assert_eq!(calc.full_name(), "brisk.macro.Calculator");
    assert_eq!(
        calc.method_names(),
        ["Add", "Count", "Annotate", "FailWith"]
    );
    // JSON messages describe themselves; prost ones have no descriptors in the macro door.
    assert_eq!(calc.schema(), brisk::MessageSchema::Json);
    assert_eq!(macro_server.schema(), brisk::MessageSchema::Opaque);
    assert!(calc.method_kinds().is_empty(), "all unary: the default");
}

/// Streaming in the macro door: all four kinds, prost messages.
#[brisk::service(package = "brisk.macro")]
pub trait Streams {
    /// Unary, next to the streaming methods.
    async fn upper(&self, request: EchoRequest) -> Result<EchoResponse, Status>;
    /// Server streaming: the message's words, one by one.
    async fn words(
        &self,
        request: EchoRequest,
    ) -> Result<brisk::ResponseStream<EchoResponse>, brisk::Status>;
    /// Client streaming: the messages joined with `+`.
    async fn join(&self, requests: brisk::Streaming<EchoRequest>) -> Result<EchoResponse, Status>;
    /// Bidi, infallible, with the context: each message reversed.
    async fn reverse(
        &self,
        cntl: &mut ServerContext,
        requests: brisk::Streaming<EchoRequest>,
    ) -> brisk::ResponseStream<EchoResponse>;
}

struct StreamsImpl;

fn reply(message: impl Into<String>) -> EchoResponse {
    EchoResponse {
        message: message.into(),
    }
}

impl Streams for StreamsImpl {
    async fn upper(&self, request: EchoRequest) -> Result<EchoResponse, Status> {
        Ok(reply(request.message.to_uppercase()))
    }

    async fn words(
        &self,
        request: EchoRequest,
    ) -> Result<brisk::ResponseStream<EchoResponse>, Status> {
        let words: Vec<Result<EchoResponse, Status>> = request
            .message
            .split(' ')
            .map(|word| Ok(reply(word)))
            .collect();
        Ok(Box::pin(futures_util::stream::iter(words)))
    }

    async fn join(
        &self,
        mut requests: brisk::Streaming<EchoRequest>,
    ) -> Result<EchoResponse, Status> {
        let mut parts = Vec::new();
        while let Some(request) = requests.message().await? {
            parts.push(request.message);
        }
        Ok(reply(parts.join("+")))
    }

    async fn reverse(
        &self,
        _cntl: &mut ServerContext,
        requests: brisk::Streaming<EchoRequest>,
    ) -> brisk::ResponseStream<EchoResponse> {
        use futures_util::StreamExt;
        Box::pin(
            requests.map(|request| Ok(reply(request?.message.chars().rev().collect::<String>()))),
        )
    }
}

fn request(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
    }
}

async fn collect(mut replies: brisk::Streaming<EchoResponse>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(reply) = replies.message().await.expect("a reply") {
        out.push(reply.message);
    }
    out
}

/// Waits for `future`, failing the test instead of hanging it.
async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(TIMEOUT * 2, future)
        .await
        .expect("the call finishes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macro_streaming_methods_over_h2_grpc() {
    let server = start(StreamsServer::new(StreamsImpl)).await;
    let channel = brisk::Channel::builder()
        .protocol(brisk::Protocol::GRPC)
        .timeout(TIMEOUT)
        .connect(&server.local_addr().to_string())
        .await
        .expect("h2:grpc channel");
    let client = StreamsClient::new(channel);

    let upper = within(client.upper(request("hi"))).await;
    assert_eq!(upper.unwrap().message, "HI");

    let words =
        within(async { collect(client.words(request("a b c")).await.expect("words")).await }).await;
    assert_eq!(words, ["a", "b", "c"]);

    let parts = futures_util::stream::iter([request("x"), request("y")]);
    let mut cntl = Controller::new();
    let joined = within(client.join_with(&mut cntl, parts)).await;
    assert_eq!(joined.unwrap().message, "x+y");

    let reversed = within(async {
        let requests = futures_util::stream::iter([request("abc"), request("de")]);
        collect(client.reverse(requests).await.expect("reverse")).await
    })
    .await;
    assert_eq!(reversed, ["cba", "ed"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn macro_services_work_over_brpcs_other_protocols_unchanged() {
    // nova_pbrpc serves one service through its adaptor; the others reach every service.
    let server = brisk::Server::builder()
        .add_service(CalculatorServer::new(Calc::default()))
        .add_service(MacroEchoServer::new(MacroEchoImpl))
        .nshead_service(brisk::NsheadPbAdaptor::nova(CalculatorServer::new(
            Calc::default(),
        )))
        .start("127.0.0.1:0")
        .await
        .unwrap();
    for protocol in ["hulu_pbrpc", "sofa_pbrpc", "public_pbrpc", "nova_pbrpc"] {
        let channel = brisk::Channel::builder()
            .protocol(protocol)
            .timeout(TIMEOUT)
            .connect(&server.local_addr().to_string())
            .await
            .unwrap();
        let calculator = CalculatorClient::new(channel.clone());
        let sum = calculator.add(AddRequest { a: 40, b: 2 }).await.unwrap();
        assert_eq!(sum, AddResponse { sum: 42 }, "{protocol}");
        if protocol == "nova_pbrpc" {
            continue;
        }
        let status = calculator
            .add(AddRequest { a: i64::MAX, b: 1 })
            .await
            .unwrap_err();
        assert_eq!(status.code(), errno::EINVAL, "{protocol}");
        let echo = MacroEchoClient::new(channel);
        let reply = echo
            .say(EchoRequest {
                message: protocol.into(),
            })
            .await
            .unwrap();
        assert_eq!(reply.message, format!("macro:{protocol}"));
    }
}
