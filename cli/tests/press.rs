//! Runs `brisk press` against an echo server started in the test.

use std::io::Write as _;
use std::process::{Command, Output};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use brisk_examples::echo::{EchoRequest, EchoResponse, EchoService, EchoServiceServer};
use brisk_examples::Echo;

const PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/proto/echo.proto");

fn input_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".json")
        .tempfile()
        .expect("temp file");
    file.write_all(text.as_bytes()).expect("write input");
    file
}

/// Runs `brisk press` with `args` off the async workers, so the in-process server keeps
/// serving.
async fn press(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_brisk"))
            .arg("press")
            .args(args)
            .output()
            .expect("run press")
    })
    .await
    .expect("press runner")
}

fn args(server: &str, method: &str, input: &tempfile::NamedTempFile) -> Vec<String> {
    [
        server,
        method,
        "--proto",
        PROTO,
        "--input",
        input.path().to_str().expect("utf-8 temp path"),
        "--duration",
        "1",
        "--qps",
        "200",
        "--concurrency",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The number after `name=` in the summary.
fn field(stdout: &str, name: &str) -> u64 {
    let start = stdout
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name}= in {stdout}"))
        + name.len()
        + 1;
    let digits: String = stdout[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a number")
}

async fn echo_server() -> brisk::Server {
    brisk::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await
        .expect("start echo server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_paces_calls_to_the_requested_qps() {
    let server = echo_server().await;
    let input = input_file("{\"message\": \"hello\"}\n{\"message\": \"world\"}\n");
    let out = press(args(
        &server.local_addr().to_string(),
        "example.EchoService.Echo",
        &input,
    ))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let calls = field(&stdout, "calls");
    assert!((100..=260).contains(&calls), "{calls} calls: {stdout}");
    assert_eq!(field(&stdout, "errors"), 0, "{stdout}");
    assert_eq!(field(&stdout, "ok"), calls, "{stdout}");
    assert!(stdout.contains("p50="), "{stdout}");
    assert!(stdout.contains("p999="), "{stdout}");
    assert!(stderr.contains("[1s] qps="), "progress: {stderr}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_accepts_a_json_array_input() {
    let server = echo_server().await;
    let input = input_file(r#"[{"message": "a"}, {"message": "b"}, {"message": "c"}]"#);
    let mut args = args(
        &server.local_addr().to_string(),
        "example.EchoService.Echo",
        &input,
    );
    // As fast as possible, for a short while.
    let qps = args.iter().position(|a| a == "--qps").expect("--qps") + 1;
    args[qps] = "0".into();
    let duration = args
        .iter()
        .position(|a| a == "--duration")
        .expect("--duration")
        + 1;
    args[duration] = "0.3".into();
    let out = press(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(field(&stdout, "calls") > 0, "{stdout}");
    assert_eq!(field(&stdout, "errors"), 0, "{stdout}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_lists_the_methods_for_an_unknown_one() {
    let input = input_file(r#"{"message": "hi"}"#);
    let out = press(args("127.0.0.1:1", "example.EchoService.Nope", &input)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no method `Nope`"), "{stderr}");
    assert!(stderr.contains("example.EchoService.Echo"), "{stderr}");

    let out = press(args("127.0.0.1:1", "example.Missing.Echo", &input)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("unknown service"), "{stderr}");
    assert!(stderr.contains("example.EchoService.Echo"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_names_the_malformed_input_entry() {
    let input = input_file("{\"message\": \"ok\"}\n{\"message\": }\n");
    let out = press(args("127.0.0.1:1", "example.EchoService.Echo", &input)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("entry 2 (line 2)"), "{stderr}");
    assert!(stderr.contains("invalid JSON"), "{stderr}");

    let input = input_file(r#"[{"message": "ok"}, {"msg": "typo"}]"#);
    let out = press(args("127.0.0.1:1", "example.EchoService.Echo", &input)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("entry 2"), "{stderr}");
    assert!(stderr.contains("msg"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_counts_errors_by_code_when_nothing_listens() {
    // A port that was just free: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let input = input_file(r#"{"message": "hi"}"#);
    let out = press(args(
        &format!("127.0.0.1:{port}"),
        "example.EchoService.Echo",
        &input,
    ))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let calls = field(&stdout, "calls");
    assert!(calls > 0, "{stdout}");
    assert_eq!(field(&stdout, "ok"), 0, "{stdout}");
    assert_eq!(field(&stdout, "errors"), calls, "{stdout}");
    assert!(stdout.contains("errors by code:"), "{stdout}");
    // The first refusal fails the server's connection; as brpc, every call after it (and
    // every retry) is answered at once: "Not connected to … yet".
    assert!(stdout.contains("E112 EHOSTDOWN: "), "{stdout}");
    assert!(stderr.contains("no call succeeded"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_reads_the_schema_from_the_server_by_reflection() {
    let server = echo_server().await;
    let input = input_file(r#"{"message": "hi"}"#);
    let mut args = args(&server.local_addr().to_string(), "EchoService/Echo", &input);
    let proto = args.iter().position(|a| a == "--proto").expect("--proto");
    args.drain(proto..proto + 2);
    let out = press(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("example.EchoService.Echo @ "),
        "{stdout}"
    );
    assert!(field(&stdout, "ok") > 0, "{stdout}");
    assert_eq!(field(&stdout, "errors"), 0, "{stdout}");
    server.shutdown().await;
}

/// An echo service that counts its calls.
struct Counting(Arc<AtomicU64>);

impl EchoService for Counting {
    async fn echo(
        &self,
        _cntl: &mut brisk::ServerContext,
        request: EchoRequest,
    ) -> Result<EchoResponse, brisk::Status> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(EchoResponse {
            message: request.message,
        })
    }
}

async fn counting_server() -> (brisk::Server, Arc<AtomicU64>) {
    let calls = Arc::new(AtomicU64::new(0));
    let server = brisk::Server::builder()
        .add_service(EchoServiceServer::new(Counting(Arc::clone(&calls))))
        .start("127.0.0.1:0")
        .await
        .expect("start echo server");
    (server, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_balances_over_a_naming_url() {
    let ((one, one_calls), (two, two_calls)) = (counting_server().await, counting_server().await);
    let input = input_file(r#"{"message": "hi"}"#);
    let url = format!("list://{},{}", one.local_addr(), two.local_addr());
    let mut args = args(&url, "example.EchoService/Echo", &input);
    args.extend(["--lb".to_owned(), "rr".to_owned()]);
    let out = press(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(field(&stdout, "errors"), 0, "{stdout}");
    // Both servers were called.
    for calls in [&one_calls, &two_calls] {
        assert!(
            calls.load(Ordering::Relaxed) > 0,
            "{one_calls:?} {two_calls:?}: {stdout}"
        );
    }
    one.shutdown().await;
    two.shutdown().await;
}

#[test]
fn press_rejects_bad_arguments_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_brisk"))
        .args(["press", "h:1", "a.B/C", "--input", "x", "--qps", "many"])
        .output()
        .expect("run brisk press");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--qps"), "{stderr}");
    assert!(stderr.contains("--help"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn press_streams_over_grpc() {
    use brisk_examples::interop::testing::TestServiceServer;
    use brisk_examples::interop::TestServiceImpl;

    let server = brisk::Server::builder()
        .add_service(TestServiceServer::new(TestServiceImpl))
        .start("127.0.0.1:0")
        .await
        .expect("start the interop server");
    let address = server.local_addr().to_string();
    let input = input_file(r#"{"responseParameters": [{"size": 4}, {"size": 8}]}"#);
    let args = |protocol: &str| -> Vec<String> {
        [
            &address,
            "grpc.testing.TestService/StreamingOutputCall",
            "--input",
            input.path().to_str().expect("utf-8"),
            "--protocol",
            protocol,
            "--duration",
            "0.5",
            "--qps",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let out = press(args("h2:grpc")).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(field(&stdout, "ok") > 0, "{stdout}");
    assert_eq!(field(&stdout, "errors"), 0, "{stdout}");

    // Streams need gRPC: refused before any call.
    let out = press(args("baidu_std")).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("h2:grpc"));
    server.shutdown().await;
}
