//! pb methods over HTTP/1.1 and HTTP/2 (h2c): JSON and protobuf bodies from curl, brpc's own
//! HTTP client bytes, and Brisk's `http` channel, next to baidu_std on the same port.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use brisk::codegen::{Bytes, MessageSchema, MethodKind, Service, ServiceFuture, ServiceResponse};
use brisk::{
    errno, AuthContext, Authenticator, Channel, Controller, Protocol, ServerContext, Status,
};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::test::{FailRequest, TestServiceClient, TestServiceServer};
use brisk_tests::{Echo, TestImpl};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous, only so a broken build fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(20);

// --- Descriptors ---------------------------------------------------------------------------
// A hand-built `google.protobuf.FileDescriptorSet` for echo.proto and test.proto, so the JSON
// tests do not wait for generated services to implement `schema()`.

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    package: Option<String>,
    #[prost(message, repeated, tag = "4")]
    message_type: Vec<DescriptorProto>,
    #[prost(message, repeated, tag = "6")]
    service: Vec<ServiceDescriptorProto>,
    #[prost(string, optional, tag = "12")]
    syntax: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct DescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    field: Vec<FieldDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct FieldDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(int32, optional, tag = "3")]
    number: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    label: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    r#type: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    method: Vec<MethodDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct MethodDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    input_type: Option<String>,
    #[prost(string, optional, tag = "3")]
    output_type: Option<String>,
}

const OPTIONAL: i32 = 1;
const REQUIRED: i32 = 2;
const TYPE_BOOL: i32 = 8;
const TYPE_STRING: i32 = 9;
const TYPE_INT32: i32 = 5;
const TYPE_UINT32: i32 = 13;

fn field(name: &str, number: i32, label: i32, ty: i32) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(label),
        r#type: Some(ty),
    }
}

fn message(name: &str, field: Vec<FieldDescriptorProto>) -> DescriptorProto {
    DescriptorProto {
        name: Some(name.into()),
        field,
    }
}

fn method(name: &str, package: &str, input: &str, output: &str) -> MethodDescriptorProto {
    MethodDescriptorProto {
        name: Some(name.into()),
        input_type: Some(format!(".{package}.{input}")),
        output_type: Some(format!(".{package}.{output}")),
    }
}

/// echo.proto (proto2, `required string message`) and test.proto (proto3).
fn descriptor_set() -> &'static [u8] {
    let echo = FileDescriptorProto {
        name: Some("echo.proto".into()),
        package: Some("example".into()),
        syntax: Some("proto2".into()),
        message_type: vec![
            message(
                "EchoRequest",
                vec![field("message", 1, REQUIRED, TYPE_STRING)],
            ),
            message(
                "EchoResponse",
                vec![field("message", 1, REQUIRED, TYPE_STRING)],
            ),
        ],
        service: vec![ServiceDescriptorProto {
            name: Some("EchoService".into()),
            method: vec![method("Echo", "example", "EchoRequest", "EchoResponse")],
        }],
    };
    let test = FileDescriptorProto {
        name: Some("test.proto".into()),
        package: Some("brisk.test".into()),
        syntax: Some("proto3".into()),
        message_type: vec![
            message(
                "SleepRequest",
                vec![
                    field("millis", 1, OPTIONAL, TYPE_UINT32),
                    field("tag", 2, OPTIONAL, TYPE_STRING),
                ],
            ),
            message(
                "SleepResponse",
                vec![field("tag", 1, OPTIONAL, TYPE_STRING)],
            ),
            message(
                "FailRequest",
                vec![
                    field("code", 1, OPTIONAL, TYPE_INT32),
                    field("text", 2, OPTIONAL, TYPE_STRING),
                    field("panic", 3, OPTIONAL, TYPE_BOOL),
                ],
            ),
            message("FailResponse", vec![]),
            message("RawRequest", vec![]),
            message("RawResponse", vec![]),
        ],
        service: vec![ServiceDescriptorProto {
            name: Some("TestService".into()),
            method: vec![
                method("Sleep", "brisk.test", "SleepRequest", "SleepResponse"),
                method("Fail", "brisk.test", "FailRequest", "FailResponse"),
                method("Raw", "brisk.test", "RawRequest", "RawResponse"),
            ],
        }],
    };
    let set = FileDescriptorSet {
        file: vec![echo, test],
    };
    Box::leak(set.encode_to_vec().into_boxed_slice())
}

/// A service with the schema a test chooses, delegating calls to a generated server.
struct WithSchema<S> {
    inner: S,
    schema: MessageSchema,
}

impl<S: Service> Service for WithSchema<S> {
    fn full_name(&self) -> &'static str {
        self.inner.full_name()
    }
    fn method_names(&self) -> &'static [&'static str] {
        self.inner.method_names()
    }
    fn call(&self, method: usize, context: ServerContext, request: Bytes) -> ServiceFuture {
        self.inner.call(method, context, request)
    }
    fn method_kinds(&self) -> &'static [MethodKind] {
        self.inner.method_kinds()
    }
    fn schema(&self) -> MessageSchema {
        self.schema
    }
}

fn described<S: Service>(inner: S) -> WithSchema<S> {
    WithSchema {
        inner,
        schema: MessageSchema::Protobuf {
            file_descriptor_set: descriptor_set(),
        },
    }
}

/// A server-streaming method, which HTTP must refuse, and a unary method that echoes what the
/// handler sees (log id, a header, the verified user) as JSON.
struct Inspect;

impl Service for Inspect {
    fn full_name(&self) -> &'static str {
        "brisk.http.Inspect"
    }
    fn method_names(&self) -> &'static [&'static str] {
        &["Watch", "Look"]
    }
    fn method_kinds(&self) -> &'static [MethodKind] {
        &[MethodKind::ServerStreaming, MethodKind::Unary]
    }
    fn schema(&self) -> MessageSchema {
        MessageSchema::Json
    }
    fn call(&self, _method: usize, mut context: ServerContext, request: Bytes) -> ServiceFuture {
        Box::pin(async move {
            let seen = serde_json::json!({
                "log_id": context.log_id(),
                "x_tag": context.user_fields().get("x-tag"),
                "user": context.auth_context().map(|a| a.user.clone()),
                "request": String::from_utf8_lossy(&request),
            });
            context.set_response_header("x-inspected", "yes");
            ServiceResponse::new(context, Ok(Bytes::from(seen.to_string())))
        })
    }
}

/// Starts a server with the echo and test services (described, so JSON works) and `Inspect`;
/// with `opaque_echo` the echo service has no descriptors (protobuf bodies only).
async fn start(options: brisk::ServerOptions, opaque_echo: bool) -> brisk::Server {
    let (test, _arrivals) = TestImpl::new();
    let echo = EchoServiceServer::new(Echo);
    let echo = if opaque_echo {
        WithSchema {
            inner: echo,
            schema: MessageSchema::Opaque,
        }
    } else {
        described(echo)
    };
    brisk::Server::builder()
        .options(options)
        .add_service(echo)
        .add_service(described(TestServiceServer::new(test)))
        .add_service(Inspect)
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

async fn start_default() -> brisk::Server {
    start(brisk::ServerOptions::default(), false).await
}

// --- curl ----------------------------------------------------------------------------------

/// What curl got back.
#[derive(Debug)]
struct Reply {
    status: u16,
    http_version: String,
    headers: String,
    body: Vec<u8>,
    stderr: String,
}

impl Reply {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().rev().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// Asserts a brpc error reply: status, JSON content type, error code, text fragment.
    /// An error as brpc answers it: the status, `x-bd-error-code`, and a `text/plain` body
    /// `[address][E<code>]text` (`[code]text` for authentication) containing `text`.
    fn assert_error(&self, status: u16, code: i32, text: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("text/plain"),
            "{self:?}"
        );
        assert_eq!(
            self.header("x-bd-error-code"),
            Some(code.to_string()),
            "{self:?}"
        );
        let body = String::from_utf8_lossy(&self.body);
        let prefixed = body.starts_with(&format!("[{code}]"))
            || (body.starts_with('[') && body.contains(&format!("][E{code}]")));
        assert!(prefixed, "{body:?} should start with brpc's prefix");
        assert!(!body.ends_with('\n'), "no newline after the text, as brpc");
        assert!(body.contains(text), "{body:?} should contain {text:?}");
    }

    /// An error as a JSON body, for a client that asked for JSON.
    fn assert_json_error(&self, status: u16, code: i32, text: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/json"),
            "{self:?}"
        );
        let body = self.json();
        assert_eq!(body["error_code"], code, "{body}");
        let got = body["error_text"].as_str().expect("error_text");
        assert!(got.contains(text), "{got:?} should contain {text:?}");
    }
}

/// Runs curl with `args` (plus output options), `stdin` as its input. Fails the test with a
/// clear message when curl is not installed.
async fn curl(args: Vec<String>, stdin: Vec<u8>) -> Reply {
    tokio::task::spawn_blocking(move || curl_blocking(&args, &stdin))
        .await
        .expect("curl thread")
}

fn curl_blocking(args: &[String], stdin: &[u8]) -> Reply {
    let dir = tempfile::tempdir().expect("temp dir");
    let body_path = dir.path().join("body");
    let headers_path = dir.path().join("headers");
    let mut child = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o"])
        .arg(&body_path)
        .arg("-D")
        .arg(&headers_path)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("these tests need curl (`apt-get install curl`), which failed to start: {e}")
        });
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write curl's stdin");
    drop(input);
    let out = child.wait_with_output().expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curl {args:?} failed: {stderr}");
    let (status, http_version) = stdout.split_once(' ').expect("status and version");
    Reply {
        status: status.parse().expect("status code"),
        http_version: http_version.to_owned(),
        headers: std::fs::read_to_string(&headers_path).unwrap_or_default(),
        body: std::fs::read(&body_path).unwrap_or_default(),
        stderr,
    }
}

fn url(server: &brisk::Server, path: &str) -> String {
    format!("http://{}{path}", server.local_addr())
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// POSTs `body` (from stdin) to `path` with `content_type`.
async fn post(server: &brisk::Server, path: &str, content_type: &str, body: &[u8]) -> Reply {
    let header = format!("Content-Type: {content_type}");
    let url = url(server, path);
    curl(
        args(&["--data-binary", "@-", "-H", &header, &url]),
        body.to_vec(),
    )
    .await
}

// --- Server: JSON and protobuf bodies --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_posts_json_to_the_full_and_short_paths() {
    let server = start_default().await;
    for path in ["/example.EchoService/Echo", "/EchoService/Echo"] {
        // Exactly what a person types: curl sends application/x-www-form-urlencoded.
        let reply = curl(
            args(&["-d", r#"{"message":"hi"}"#, &url(&server, path)]),
            vec![],
        )
        .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.http_version, "1.1");
        assert_eq!(reply.json(), serde_json::json!({"message": "hi"}));
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bodies_come_back_as_protobuf() {
    let server = start_default().await;
    let request = EchoRequest {
        message: "binary hello".into(),
    }
    .encode_to_vec();
    for content_type in ["application/proto", "application/x-protobuf"] {
        let reply = post(&server, "/example.EchoService/Echo", content_type, &request).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("content-type").as_deref(), Some(content_type));
        let response = brisk_tests::echo::EchoResponse::decode(&reply.body[..]).expect("pb");
        assert_eq!(response.message, "binary hello");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_is_400_and_unknown_fields_are_skipped_unless_strict() {
    let server = start_default().await;
    let path = "/example.EchoService/Echo";
    let reply = post(&server, path, "application/json", br#"{"message":"#).await;
    reply.assert_error(400, errno::EREQUEST, "Fail to parse JSON");
    // brpc accepts unknown fields (tests/golden/http-errors/unknown_json_field.txt).
    let unknown = br#"{"message":"hi","bogus":1}"#;
    let reply = post(&server, path, "application/json", unknown).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, br#"{"message":"hi"}"#);
    let mut strict = brisk::ServerOptions::default();
    strict.strict_json = true;
    let strict = start(strict, false).await;
    let reply = post(&strict, path, "application/json", unknown).await;
    reply.assert_error(400, errno::EREQUEST, "bogus");
    let reply = post(&server, path, "application/json", b"{}").await;
    reply.assert_error(400, errno::EREQUEST, "Missing required field");
    let reply = post(&server, path, "application/proto", b"\xff\xff\xff").await;
    reply.assert_error(400, errno::EREQUEST, "");
    // A protobuf body lacking a proto2 required field is refused too, as brpc's protobuf does.
    let reply = post(&server, path, "application/proto", b"").await;
    reply.assert_error(
        400,
        errno::EREQUEST,
        "Fail to parse request=example.EchoRequest: missing required fields: message",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_after_the_method_are_ignored_as_brpc() {
    // tests/golden/http-errors/extra_path_segment.txt: brpc serves the method.
    let server = start_default().await;
    let reply = post(
        &server,
        "/example.EchoService/Echo/extra",
        "application/json",
        br#"{"message":"hi"}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, br#"{"message":"hi"}"#);
}

/// A brpc capture of `tests/golden/http-errors/`: its head, and its body with the port of
/// `server` where brpc's was.
fn brpc_capture(name: &str, server: SocketAddr) -> (String, String) {
    let capture =
        std::fs::read_to_string(brisk_tests::wire_sample(&format!("http-errors/{name}"))).unwrap();
    let (head, body) = capture
        .split_once("\r\n\r\n")
        .expect("head, blank line, body");
    (
        head.to_owned(),
        body.replace("PORT", &server.port().to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_as_brpc_answers() {
    // brpc answers an unknown service and an unknown method alike: 404, E1002, text/plain
    // (tests/golden/http-errors/unknown_*.txt).
    let server = start_default().await;
    let addr = server.local_addr();
    let body = br#"{"message":"x"}"#;
    for (path, golden) in [
        ("/example.NoSuchService/Echo", "unknown_service_full.txt"),
        ("/NoSuchService/Echo", "unknown_service_short.txt"),
        ("/example.EchoService/Nope", "unknown_method.txt"),
    ] {
        let reply = post(&server, path, "application/json", body).await;
        reply.assert_error(
            404,
            errno::ENOMETHOD,
            &format!("Fail to find method on `{path}'"),
        );
        // brpc's body, byte for byte, with this server's address.
        let (_, brpc_body) = brpc_capture(golden, addr);
        assert_eq!(String::from_utf8_lossy(&reply.body), brpc_body, "{path}");
    }
    let reply = post(&server, "/favicon.ico", "application/json", body).await;
    reply.assert_error(404, errno::ENOMETHOD, "/favicon.ico");
    // A client that asks for JSON gets its error as JSON.
    let url = url(&server, "/example.EchoService/Nope");
    let reply = curl(
        args(&[
            "-H",
            "Accept: application/json",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            &url,
        ]),
        body.to_vec(),
    )
    .await;
    reply.assert_json_error(404, errno::ENOMETHOD, "Fail to find method on");
}

/// brpc serves `application/proto-text` bodies (protobuf's text format) and answers in it
/// (tests/golden/http-errors/proto_text.txt, bad_proto_text.txt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_text_bodies_are_served_as_brpc_serves_them() {
    let server = start_default().await;
    let golden = |name: &str| brpc_capture(name, server.local_addr());
    let path = "/example.EchoService/Echo";
    let reply = post(&server, path, "application/proto-text", b"message: \"hi\"").await;
    let (head, body) = golden("proto_text.txt");
    assert!(
        head.contains("Content-Type: application/proto-text"),
        "{head}"
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/proto-text")
    );
    assert_eq!(String::from_utf8_lossy(&reply.body), body);

    let reply = post(&server, path, "application/proto-text", b"message: hi").await;
    let (_, body) = golden("bad_proto_text.txt");
    reply.assert_error(400, errno::EREQUEST, "Fail to parse http proto-text body");
    assert_eq!(String::from_utf8_lossy(&reply.body), body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_body_size_are_413() {
    let mut options = brisk::ServerOptions::default();
    options.max_body_size = 1024;
    let server = start(options, false).await;
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(4000));
    let path = "/example.EchoService/Echo";
    let reply = post(&server, path, "application/json", big.as_bytes()).await;
    reply.assert_error(413, errno::EREQUEST, "max_body_size=1024");
    // Chunked: no Content-Length to refuse early, so the limit cuts the read.
    let url = url(&server, path);
    let chunked = curl(
        args(&[
            "--data-binary",
            "@-",
            "-H",
            "Transfer-Encoding: chunked",
            &url,
        ]),
        big.into_bytes(),
    )
    .await;
    chunked.assert_error(413, errno::EREQUEST, "max_body_size=1024");
    // A small body still works.
    let ok = post(&server, path, "application/json", br#"{"message":"ok"}"#).await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_expect_continue_and_gzip_bodies_are_read() {
    let server = start_default().await;
    let url = url(&server, "/example.EchoService/Echo");
    let message = "y".repeat(3000);
    let body = format!(r#"{{"message":"{message}"}}"#);

    let chunked = curl(
        args(&[
            "--data-binary",
            "@-",
            "-H",
            "Transfer-Encoding: chunked",
            &url,
        ]),
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(chunked.status, 200, "{chunked:?}");
    assert_eq!(chunked.json()["message"], message.as_str());

    let expect = curl(
        args(&[
            "-v",
            "--data-binary",
            "@-",
            "-H",
            "Expect: 100-continue",
            &url,
        ]),
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(expect.status, 200, "{expect:?}");
    assert!(
        expect.stderr.contains("HTTP/1.1 100 Continue"),
        "the server should answer Expect: 100-continue: {}",
        expect.stderr
    );
    assert_eq!(expect.json()["message"], message.as_str());

    let mut gz = bytes::BytesMut::new();
    brisk::compress(brisk::CompressType::Gzip, body.as_bytes(), &mut gz).expect("gzip");
    let gzipped = curl(
        args(&[
            "--data-binary",
            "@-",
            "-H",
            "Content-Encoding: gzip",
            "-H",
            "Content-Type: application/json",
            &url,
        ]),
        gz.to_vec(),
    )
    .await;
    assert_eq!(gzipped.status, 200, "{gzipped:?}");
    assert_eq!(gzipped.json()["message"], message.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_serves_pb_methods() {
    let server = start_default().await;
    let url = url(&server, "/example.EchoService/Echo");
    let reply = curl(
        args(&[
            "--http2-prior-knowledge",
            "-d",
            r#"{"message":"over h2"}"#,
            "-H",
            "Content-Type: application/json",
            &url,
        ]),
        vec![],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.http_version, "2");
    assert_eq!(reply.json(), serde_json::json!({"message": "over h2"}));
    let request = EchoRequest {
        message: "pb over h2".into(),
    };
    let reply = curl(
        args(&[
            "--http2-prior-knowledge",
            "--data-binary",
            "@-",
            "-H",
            "Content-Type: application/proto",
            &url,
        ]),
        request.encode_to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let response = brisk_tests::echo::EchoResponse::decode(&reply.body[..]).expect("pb");
    assert_eq!(response.message, "pb over h2");
    let missing = curl(
        args(&[
            "--http2-prior-knowledge",
            "-d",
            "{}",
            &url.replace("Echo", "Nope"),
        ]),
        vec![],
    )
    .await;
    missing.assert_error(404, errno::ENOMETHOD, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_map_to_statuses_and_json_bodies() {
    let server = start_default().await;
    let path = "/brisk.test.TestService/Fail";
    let cases = [
        (
            r#"{"code":5555,"text":"app failure"}"#,
            500,
            5555,
            "app failure",
        ),
        (
            r#"{"code":1008,"text":"too slow"}"#,
            504,
            errno::ERPCTIMEDOUT,
            "too slow",
        ),
        (r#"{"code":1,"text":"no way"}"#, 403, errno::EPERM, "no way"),
        (r#"{"code":2004,"text":"busy"}"#, 503, errno::ELIMIT, "busy"),
        (r#"{"code":1003,"text":"bad"}"#, 400, errno::EREQUEST, "bad"),
        (
            r#"{"code":-3,"text":"negative"}"#,
            500,
            errno::EINTERNAL,
            "negative",
        ),
        (r#"{"panic":true}"#, 500, errno::EINTERNAL, "asked to panic"),
    ];
    for (body, status, code, text) in cases {
        let reply = post(&server, path, "application/json", body.as_bytes()).await;
        reply.assert_error(status, code, text);
    }
    // Proto3 JSON: lowerCamelCase out, defaults left out.
    let sleep = post(
        &server,
        "/TestService/Sleep",
        "application/json",
        br#"{"millis":1,"tag":"zzz"}"#,
    )
    .await;
    assert_eq!(sleep.json(), serde_json::json!({"tag": "zzz"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_needs_a_schema_and_streaming_needs_grpc() {
    let server = start(brisk::ServerOptions::default(), true).await;
    let path = "/example.EchoService/Echo";
    let reply = post(&server, path, "application/json", br#"{"message":"x"}"#).await;
    reply.assert_error(415, errno::EREQUEST, "application/proto");
    let pb = EchoRequest {
        message: "still fine".into(),
    }
    .encode_to_vec();
    let reply = post(&server, path, "application/proto", &pb).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let reply = post(
        &server,
        "/brisk.http.Inspect/Watch",
        "application/json",
        b"{}",
    )
    .await;
    reply.assert_error(400, errno::EREQUEST, "served over gRPC only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_log_id_headers_and_set_response_headers() {
    let server = start_default().await;
    let url = url(&server, "/brisk.http.Inspect/Look");
    let reply = curl(
        args(&[
            "-H",
            "log-id: 77",
            "-H",
            "X-Tag: tagged",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"raw":true}"#,
            &url,
        ]),
        vec![],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-inspected").as_deref(), Some("yes"));
    let seen = reply.json();
    assert_eq!(seen["log_id"], 77);
    assert_eq!(seen["x_tag"], "tagged");
    assert_eq!(
        seen["request"], r#"{"raw":true}"#,
        "JSON services get the body as is"
    );
    // GET with no body works too.
    let get = curl(args(&[&url]), vec![]).await;
    assert_eq!(get.status, 200, "{get:?}");
    assert_eq!(get.json()["request"], "");
}

// --- brpc's bytes, stopping, baidu_std on the same port -------------------------------------

/// Reads from `stream` until `count` whole HTTP/1.1 responses (with Content-Length) arrived.
async fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<(u16, String)> {
    let mut buf = Vec::new();
    let mut responses = Vec::new();
    loop {
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length");
            if buf.len() < end + 4 + length {
                break;
            }
            let status = head[9..12].parse().expect("status");
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
            buf.drain(..end + 4 + length);
            responses.push((status, body));
        }
        if responses.len() >= count {
            return responses;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(HANG_GUARD, stream.read(&mut chunk))
            .await
            .expect("responses within the hang guard")
            .expect("read");
        assert_ne!(n, 0, "connection closed after {responses:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brpc_http_client_bytes_get_two_answers() {
    let server = start_default().await;
    let bytes = std::fs::read(brisk_tests::wire_sample("http_json_c2s.bin"))
        .expect("tests/golden/http_json_c2s.bin");
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let responses = read_responses(&mut stream, 2).await;
    assert_eq!(responses.len(), 2);
    for (status, body) in responses {
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"message":"hello world"}"#);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_requests_one_after_another() {
    let server = start_default().await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    for message in ["one", "two", "three"] {
        let body = format!(r#"{{"message":"{message}"}}"#);
        let request = format!(
            "POST /EchoService/Echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let (status, reply) = read_responses(&mut stream, 1).await.remove(0);
        assert_eq!((status, reply), (200, body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_answers_503_elogoff() {
    let server = start_default().await;
    let request = b"POST /example.EchoService/Echo HTTP/1.1\r\nHost: x\r\n\
        Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"message\":\"a\"}";
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(request).await.unwrap();
    assert_eq!(read_responses(&mut stream, 1).await[0].0, 200);
    server.stop().await;
    stream.write_all(request).await.unwrap();
    let (status, body) = read_responses(&mut stream, 1).await.remove(0);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("[E2003]Server is stopping"), "{body}");
    tokio::time::timeout(HANG_GUARD, server.join())
        .await
        .expect("join returns once the connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baidu_std_still_works_on_the_same_port() {
    let server = start_default().await;
    let json = post(
        &server,
        "/example.EchoService/Echo",
        "application/json",
        br#"{"message":"http"}"#,
    )
    .await;
    assert_eq!(json.status, 200);
    let channel = Channel::builder()
        .timeout(HANG_GUARD)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let response = EchoServiceClient::new(channel)
        .echo(EchoRequest {
            message: "baidu_std".into(),
        })
        .await
        .unwrap();
    assert_eq!(response.message, "baidu_std");
}

// --- Authentication ---------------------------------------------------------------------------

#[derive(Debug)]
struct Token(&'static str);

impl Authenticator for Token {
    fn generate_credential(&self) -> Result<String, Status> {
        Ok(self.0.to_owned())
    }
    fn verify_credential(
        &self,
        credential: &str,
        _client: SocketAddr,
    ) -> Result<AuthContext, Status> {
        match credential.split_once(':') {
            Some((user, "s3cret")) => Ok(AuthContext {
                user: user.to_owned(),
                ..AuthContext::default()
            }),
            _ => Err(Status::new(errno::ERPCAUTH, "wrong secret")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_authenticated_one_by_one() {
    let mut options = brisk::ServerOptions::default();
    options.authenticator = Some(Arc::new(Token("server:s3cret")));
    let server = start(options, false).await;
    let url = url(&server, "/brisk.http.Inspect/Look");
    let none = curl(args(&["-d", "{}", &url]), vec![]).await;
    none.assert_error(403, errno::ERPCAUTH, "no credential");
    let wrong = curl(
        args(&["-H", "Authorization: ann:guess", "-d", "{}", &url]),
        vec![],
    )
    .await;
    wrong.assert_error(403, errno::ERPCAUTH, "wrong secret");
    let right = curl(
        args(&["-H", "Authorization: ann:s3cret", "-d", "{}", &url]),
        vec![],
    )
    .await;
    assert_eq!(right.status, 200, "{right:?}");
    assert_eq!(right.json()["user"], "ann");

    let client = |token: &'static str| {
        let addr = server.local_addr().to_string();
        async move {
            let channel = Channel::builder()
                .protocol(Protocol::HTTP)
                .timeout(HANG_GUARD)
                .authenticator(Arc::new(Token(token)))
                .connect(&addr)
                .await
                .unwrap();
            EchoServiceClient::new(channel)
                .echo(EchoRequest {
                    message: "authed".into(),
                })
                .await
        }
    };
    assert_eq!(client("bob:s3cret").await.unwrap().message, "authed");
    assert_eq!(
        client("bob:nope").await.unwrap_err().code(),
        errno::ERPCAUTH
    );
}

// --- The `http` channel protocol ------------------------------------------------------------

async fn http_channel(address: &str) -> Channel {
    http_channel_with(address, false).await
}

/// An `http` channel that sends JSON bodies when `json` is set.
async fn http_channel_with(address: &str, json: bool) -> Channel {
    Channel::builder()
        .protocol(Protocol::HTTP)
        .http_json(json)
        .timeout(HANG_GUARD)
        .connect(address)
        .await
        .expect("channel")
}

/// A server with only the echo service (its generated adapter, descriptors included).
async fn start_echo() -> brisk::Server {
    brisk::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_channels_call_pb_methods() {
    let server = start_default().await;
    let client = EchoServiceClient::new(http_channel(&server.local_addr().to_string()).await);
    for i in 0..3 {
        let mut cntl = Controller::new();
        cntl.set_log_id(9);
        let message = format!("call {i}");
        let response = client
            .echo_with(
                &mut cntl,
                EchoRequest {
                    message: message.clone(),
                },
            )
            .await
            .expect("echo over http");
        assert_eq!(response.message, message);
        assert_eq!(cntl.remote_side(), Some(server.local_addr()));
        assert!(cntl.local_side().is_some());
    }
    // gzip-compressed requests travel with Content-Encoding: gzip.
    let mut cntl = Controller::new();
    cntl.set_request_compress_type(brisk::CompressType::Gzip);
    let response = client
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "zipped".repeat(100),
            },
        )
        .await
        .expect("gzip echo");
    assert_eq!(response.message, "zipped".repeat(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_channels_report_server_errors() {
    let server = start_default().await;
    let channel = http_channel(&server.local_addr().to_string()).await;
    let tests = TestServiceClient::new(channel.clone());
    let err = tests
        .fail(FailRequest {
            code: 4321,
            text: "told to fail".into(),
            panic: false,
        })
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (4321, "told to fail"));

    let mut cntl = Controller::new();
    cntl.set_request_attachment("not over http");
    let err = EchoServiceClient::new(channel.clone())
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EREQUEST);

    let mut cntl = Controller::new();
    cntl.set_request_compress_type(brisk::CompressType::Snappy);
    let err = EchoServiceClient::new(channel.clone())
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EREQUEST);

    // A server without the test service: brpc's ENOMETHOD, read from x-bd-error-code.
    let echo_only = brisk::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let err = TestServiceClient::new(http_channel(&echo_only.local_addr().to_string()).await)
        .fail(FailRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ENOMETHOD, "{err:?}");
    assert_eq!(
        err.message(),
        "Fail to find method on `/brisk.test.TestService/Fail'",
        "brpc's address prefix is taken off"
    );

    // Nobody listening: a transport error, not a hang.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = EchoServiceClient::new(
        Channel::builder()
            .protocol(Protocol::HTTP)
            .timeout(HANG_GUARD)
            .max_retry(0)
            .connect(&format!("127.0.0.1:{port}"))
            .await
            .unwrap(),
    )
    .echo(EchoRequest {
        message: "x".into(),
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), errno::ECONNREFUSED, "{err:?}");
}

/// A one-connection HTTP server answering every request with `response` (raw bytes).
async fn canned_server(response: &'static [u8]) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::new();
        loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    buf.drain(..end + 4 + length);
                    if stream.write_all(response).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_channels_check_what_servers_send() {
    let big: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\nContent-Length: 1000\r\n\r\n{}",
            "\0".repeat(1000)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let addr = canned_server(big).await;
    let channel = Channel::builder()
        .protocol(Protocol::HTTP)
        .timeout(HANG_GUARD)
        .max_body_size(100)
        .max_retry(0)
        .connect(&addr.to_string())
        .await
        .unwrap();
    let err = EchoServiceClient::new(channel)
        .echo(EchoRequest {
            message: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ERESPONSE, "{err:?}");

    let plain: &'static [u8] =
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nupstream down";
    let addr = canned_server(plain).await;
    let err = EchoServiceClient::new(http_channel(&addr.to_string()).await)
        .echo(EchoRequest {
            message: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EHTTP, "{err:?}");
    assert!(err.message().contains("upstream down"), "{err:?}");
}

/// brpc's HTTP client reports an error status without `x-bd-error-code` as EHTTP with the
/// status line and the body (http_rpc_protocol.cpp), and its default retry policy does not
/// retry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_of_foreign_servers_are_ehttp_with_the_status_line_and_not_retried() {
    let cases: [(&'static [u8], &str); 3] = [
        (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
            "HTTP/1.1 503 Service Unavailable: busy",
        ),
        (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 404 Not Found",
        ),
        (
            b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\n:(",
            "HTTP/1.1 500 Oops: :(",
        ),
    ];
    for (response, text) in cases {
        let addr = canned_server(response).await;
        let client = EchoServiceClient::new(http_channel(&addr.to_string()).await);
        let mut cntl = Controller::new();
        let err = client
            .echo_with(
                &mut cntl,
                EchoRequest {
                    message: "x".into(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), errno::EHTTP, "{err:?}");
        assert_eq!(err.message(), text);
        assert_eq!(cntl.retried_count(), 0, "{}", cntl.error_text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_channels_balance_over_a_list() {
    let first = start_default().await;
    let second = start_default().await;
    let url = format!("list://{},{}", first.local_addr(), second.local_addr());
    let channel = Channel::builder()
        .protocol(Protocol::HTTP)
        .timeout(HANG_GUARD)
        .connect_cluster(&url, "rr")
        .await
        .unwrap();
    let client = EchoServiceClient::new(channel);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let mut cntl = Controller::new();
        let response = client
            .echo_with(
                &mut cntl,
                EchoRequest {
                    message: "rr".into(),
                },
            )
            .await
            .expect("call");
        assert_eq!(response.message, "rr");
        seen.insert(cntl.remote_side().expect("remote"));
    }
    assert_eq!(
        seen,
        [first.local_addr(), second.local_addr()]
            .into_iter()
            .collect()
    );
    // One server gone: calls still succeed on the other.
    drop(first);
    for _ in 0..4 {
        let response = client
            .echo(EchoRequest {
                message: "still".into(),
            })
            .await
            .expect("the other server answers");
        assert_eq!(response.message, "still");
    }
}

// --- Depends on generated services implementing `schema()` ----------------------------------

/// Generated `XxxServer`s describe their messages themselves (no wrapper here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_services_serve_json_without_a_wrapper() {
    let (server, _arrivals) = brisk_tests::start_server().await;
    let reply = curl(
        args(&[
            "-d",
            r#"{"message":"generated"}"#,
            &url(&server, "/example.EchoService/Echo"),
        ]),
        vec![],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json(), serde_json::json!({"message": "generated"}));
}

/// A one-shot HTTP server: answers the first request on the first connection with
/// `response`, and hands back the request it read.
async fn one_shot_server(response: &'static str) -> (SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        // Headers, then as much body as Content-Length says.
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the client closed early");
            request.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
        }
        stream.write_all(response.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (addr, task)
}

#[tokio::test]
async fn http_json_channels_send_and_read_json() {
    let body = r#"{"message":"hi from json","fieldFromTheFuture":1}"#;
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let (addr, server) = one_shot_server(response).await;
    let channel = http_channel_with(&addr.to_string(), true).await;
    let reply = EchoServiceClient::new(channel)
        .echo(EchoRequest {
            message: "hi".into(),
        })
        .await
        .expect("a JSON reply maps back, unknown fields skipped");
    assert_eq!(reply.message, "hi from json");
    let request = server.await.unwrap().to_ascii_lowercase();
    assert!(
        request.starts_with("post /example.echoservice/echo http/1.1"),
        "{request}"
    );
    assert!(
        request.contains("content-type: application/json"),
        "{request}"
    );
    assert!(request.ends_with(r#"{"message":"hi"}"#), "{request}");
}

#[tokio::test]
async fn http_json_round_trips_with_a_brisk_server() {
    let server = start_echo().await;
    let channel = http_channel_with(&server.local_addr().to_string(), true).await;
    let client = EchoServiceClient::new(channel);
    let mut cntl = brisk::Controller::new();
    cntl.set_request_compress_type(brisk::CompressType::Gzip);
    let reply = client
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "über".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.message, "über");
    assert_eq!(
        cntl.response_header("content-type"),
        Some("application/json")
    );
}

#[tokio::test]
async fn http_json_without_descriptors_is_erequest() {
    let server = start_echo().await;
    let channel = http_channel_with(&server.local_addr().to_string(), true).await;
    const BARE: brisk::MethodDescriptor =
        brisk::MethodDescriptor::new("example.EchoService", "Echo");
    let err = channel
        .unary::<brisk::codec::Prost, EchoRequest, brisk_tests::echo::EchoResponse>(
            &BARE,
            &mut brisk::Controller::new(),
            &EchoRequest {
                message: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), brisk::errno::EREQUEST, "{err}");
    assert!(err.message().contains("descriptors"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_services_take_the_body_as_attachment_and_answer_with_theirs() {
    // As brpc: a method whose request message has no fields gets the body as its request
    // attachment, whatever its type; a response attachment is the response body.
    let server = start_default().await;
    let reply = post(
        &server,
        "/brisk.test.TestService/Raw",
        "application/octet-stream",
        b"\x00any bytes\xff",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, b"raw:\x00any bytes\xff");
    assert_eq!(reply.header("content-type").as_deref(), Some("text/plain"));
    // JSON is not parsed for such a method either.
    let reply = post(
        &server,
        "/brisk.test.TestService/Raw",
        "application/json",
        b"not json",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, b"raw:not json");
}
