//! `brisk call`, `list`, `describe`, `bench` and `completions` against Brisk servers started in
//! the test (the echo service and gRPC's interop `TestService`, with streaming methods), and
//! against grpcio's server (`tests/python/interop_server.py --reflection`, whose reflection
//! speaks only v1alpha).

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brisk_examples::echo::EchoServiceServer;
use brisk_examples::interop::testing::TestServiceServer;
use brisk_examples::interop::TestServiceImpl;
use brisk_examples::Echo;
use brisk_tests::python::{stubs, ChildGuard, PyServer};

const ECHO_PROTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/proto/echo.proto");

/// A Brisk server with the echo service and the interop `TestService`.
async fn brisk_server() -> brisk::Server {
    brisk::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .add_service(TestServiceServer::new(TestServiceImpl))
        .start("127.0.0.1:0")
        .await
        .expect("start the server")
}

/// What a run of `brisk` left.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The longest a run of `brisk` may take before the test kills it and fails.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Runs `brisk args...` with `stdin` as its input, off the async workers (the in-process
/// server keeps serving); killed and failed after [`HANG_GUARD`].
async fn brisk(args: &[&str], stdin: &str) -> Run {
    brisk_with(args, Some(stdin), HANG_GUARD).await
}

/// [`brisk`] with stdin written and closed (`Some`) or kept open and silent (`None`), killed
/// after `limit`.
async fn brisk_with(args: &[&str], stdin: Option<&str>, limit: Duration) -> Run {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut child = ChildGuard(
            Command::new(env!("CARGO_BIN_EXE_brisk"))
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run brisk"),
        );
        let mut pipe = child.0.stdin.take().expect("stdin");
        let _open_stdin = match stdin {
            Some(text) => {
                // A command that does not read stdin may have exited already.
                let _ = pipe.write_all(text.as_bytes());
                drop(pipe); // end of input
                None
            }
            None => Some(pipe),
        };
        // Output is read on threads, so a full pipe cannot stall the child.
        let mut stdout = child.0.stdout.take().expect("stdout");
        let mut stderr = child.0.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("brisk's status") {
                break status;
            }
            assert!(
                started.elapsed() < limit,
                "brisk {args:?} still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Run {
            code: status.code(),
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    })
    .await
    .expect("runner")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_describe_through_reflection() {
    let server = brisk_server().await;
    let address = server.local_addr().to_string();

    let run = brisk(&["list", &address], "").await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout, "example.EchoService\ngrpc.testing.TestService\n",
        "{run:?}"
    );

    // A service named without its package, as it is unique.
    let run = brisk(&["list", &address, "EchoService"], "").await;
    assert_eq!(run.stdout, "example.EchoService.Echo\n", "{run:?}");

    let run = brisk(&["describe", &address, "example.EchoRequest"], "").await;
    assert_eq!(
        run.stdout,
        "example.EchoRequest is a message:\nmessage EchoRequest {\n  required string message = 1;\n}\n",
        "{run:?}"
    );
    let run = brisk(
        &[
            "describe",
            &address,
            "grpc.testing.TestService/FullDuplexCall",
        ],
        "",
    )
    .await;
    assert_eq!(
        run.stdout,
        "grpc.testing.TestService.FullDuplexCall is a method:\nrpc FullDuplexCall(stream \
         .grpc.testing.StreamingOutputCallRequest) returns (stream \
         .grpc.testing.StreamingOutputCallResponse);\n",
        "{run:?}"
    );
    let run = brisk(&["describe", &address], "").await;
    assert!(
        run.stdout
            .starts_with("example.EchoService is a service:\nservice EchoService {\n"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("grpc.testing.TestService is a service:"),
        "{run:?}"
    );

    // What the server does not have is the caller's mistake: exit code 2.
    let run = brisk(&["describe", &address, "example.Nope"], "").await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("example.Nope"), "{run:?}");

    // The same from the .proto file, without asking the server.
    let run = brisk(&["list", "127.0.0.1:1", "--proto", ECHO_PROTO], "").await;
    assert_eq!(run.stdout, "example.EchoService\n", "{run:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_unary_over_several_protocols() {
    let server = brisk_server().await;
    let address = server.local_addr().to_string();

    let run = brisk(
        &[
            "call",
            &address,
            "example.EchoService/Echo",
            r#"{"message": "hi"}"#,
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "{\n  \"message\": \"hi\"\n}\n", "{run:?}");

    // brpc's protocols, the schema from reflection or from the file; one call per object.
    for protocol in ["baidu_std", "hulu_pbrpc", "sofa_pbrpc", "http"] {
        let run = brisk(
            &[
                "call",
                &address,
                "EchoService.Echo",
                "--protocol",
                protocol,
                "--compact",
                r#"[{"message": "a"}, {"message": "b"}]"#,
            ],
            "",
        )
        .await;
        assert_eq!(
            run.stdout, "{\"message\":\"a\"}\n{\"message\":\"b\"}\n",
            "{protocol}: {run:?}"
        );
    }
    for (protocol, compress) in [
        ("baidu_std", "lz4"),
        ("baidu_std", "zstd"),
        ("h2:grpc", "zstd"),
    ] {
        let run = brisk(
            &[
                "call",
                &address,
                "example.EchoService/Echo",
                "--protocol",
                protocol,
                "--compress",
                compress,
                "--compact",
                r#"{"message": "squeezed"}"#,
            ],
            "",
        )
        .await;
        assert_eq!(
            run.stdout, "{\"message\":\"squeezed\"}\n",
            "{protocol} {compress}: {run:?}"
        );
    }
    let run = brisk(
        &[
            "call",
            &address,
            "example.EchoService/Echo",
            "--proto",
            ECHO_PROTO,
            "--protocol",
            "baidu_std",
            "@-",
        ],
        "{\"message\": \"from stdin\"}\n",
    )
    .await;
    assert_eq!(
        run.stdout, "{\n  \"message\": \"from stdin\"\n}\n",
        "{run:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_streaming_methods() {
    let server = brisk_server().await;
    let address = server.local_addr().to_string();

    // Server streaming: one line per response.
    let run = brisk(
        &[
            "call",
            &address,
            "grpc.testing.TestService/StreamingOutputCall",
            r#"{"responseParameters": [{"size": 1}, {"size": 2}, {"size": 3}]}"#,
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "{\"payload\":{\"body\":\"AA==\"}}\n{\"payload\":{\"body\":\"AAA=\"}}\n\
         {\"payload\":{\"body\":\"AAAA\"}}\n",
        "{run:?}"
    );

    // Client streaming from stdin, one object a line.
    let run = brisk(
        &[
            "call",
            &address,
            "grpc.testing.TestService/StreamingInputCall",
        ],
        "{\"payload\": {\"body\": \"YWJj\"}}\n\n{\"payload\": {\"body\": \"ZA==\"}}\n",
    )
    .await;
    assert_eq!(
        run.stdout, "{\n  \"aggregatedPayloadSize\": 4\n}\n",
        "{run:?}"
    );

    // Bidirectional: each request answered as it is read.
    let run = brisk(
        &["call", &address, "grpc.testing.TestService/FullDuplexCall"],
        "{\"responseParameters\": [{\"size\": 2}]}\n{\"responseParameters\": [{\"size\": 1}]}\n",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout, "{\"payload\":{\"body\":\"AAA=\"}}\n{\"payload\":{\"body\":\"AA==\"}}\n",
        "{run:?}"
    );

    // Several objects on one line are each sent.
    let run = brisk(
        &["call", &address, "grpc.testing.TestService/FullDuplexCall"],
        "{\"responseParameters\": [{\"size\": 1}]} {\"responseParameters\": [{\"size\": 2}]}\n",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout, "{\"payload\":{\"body\":\"AA==\"}}\n{\"payload\":{\"body\":\"AAA=\"}}\n",
        "{run:?}"
    );

    // A bad line cancels the call (as grpcurl does: the server must not take a truncated
    // stream for a whole one): exit code 2, the line named; at most the answers to what
    // came before it were printed.
    let run = brisk(
        &["call", &address, "grpc.testing.TestService/FullDuplexCall"],
        "{\"responseParameters\": [{\"size\": 2}]}\n{\"bogus\": 1}\n",
    )
    .await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        "{\"payload\":{\"body\":\"AAA=\"}}\n".starts_with(&run.stdout),
        "{run:?}"
    );
    assert!(run.stderr.contains("stdin line 2"), "{run:?}");
    assert!(run.stderr.contains("bogus"), "{run:?}");

    // The call ends (here its deadline passes) while stdin stays open: brisk exits at once,
    // without waiting for a line that may never come.
    let started = Instant::now();
    let run = brisk_with(
        &[
            "call",
            &address,
            "grpc.testing.TestService/FullDuplexCall",
            "--timeout-ms",
            "300",
        ],
        None,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("ERPCTIMEDOUT"), "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // Streams need gRPC.
    let run = brisk(
        &[
            "call",
            &address,
            "grpc.testing.TestService/StreamingOutputCall",
            "--protocol",
            "baidu_std",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--protocol h2:grpc"), "{run:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_failures_have_their_exit_codes() {
    let server = brisk_server().await;
    let address = server.local_addr().to_string();

    // The server's error: exit code 1, brpc's code and name, the server's text once.
    let run = brisk(
        &[
            "call",
            &address,
            "grpc.testing.TestService/UnaryCall",
            r#"{"responseStatus": {"code": 5, "message": "no such item"}}"#,
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.ends_with(": no such item\n"), "{run:?}");

    // A request the server cannot take (a required field is missing): the server says so.
    let run = brisk(
        &[
            "call",
            &address,
            "example.EchoService/Echo",
            "--protocol",
            "baidu_std",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("EREQUEST"), "{run:?}");

    // Bad JSON, an unknown method, a bad protocol name: exit code 2, nothing sent.
    for (args, says) in [
        (
            vec![
                "call",
                &address,
                "example.EchoService/Echo",
                "{\"message\": }",
            ],
            "invalid JSON",
        ),
        (
            vec![
                "call",
                &address,
                "example.EchoService/Echo",
                r#"{"msg": "x"}"#,
            ],
            "msg",
        ),
        (
            vec!["call", &address, "example.EchoService/Nope", "{}"],
            "no method `Nope`; methods: example.EchoService.Echo",
        ),
        (
            vec![
                "call",
                &address,
                "example.EchoService/Echo",
                "--protocol",
                "carrier_pigeon",
            ],
            "carrier_pigeon",
        ),
    ] {
        let run = brisk(&args, "").await;
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stderr.contains(says), "{args:?}: {run:?}");
    }

    // A compression gRPC has no name for: refused before anything is sent.
    let run = brisk(
        &[
            "call",
            &address,
            "example.EchoService/Echo",
            "--compress",
            "lz4",
            "{}",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--compress lz4"), "{run:?}");

    // Nothing listening: exit code 3, whether the schema was to come from the server or from
    // a file.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let gone = format!("127.0.0.1:{port}");
    let run = brisk(&["call", &gone, "example.EchoService/Echo", "{}"], "").await;
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(run.stderr.contains(&gone), "{run:?}");
    let run = brisk(
        &[
            "call",
            &gone,
            "example.EchoService/Echo",
            "--proto",
            ECHO_PROTO,
            "--protocol",
            "baidu_std",
            r#"{"message": "anyone?"}"#,
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(3), "{run:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_prints_its_figures() {
    let server = brisk_server().await;
    let address = server.local_addr().to_string();
    let run = brisk(
        &[
            "bench",
            &address,
            "--concurrency",
            "4",
            "--duration",
            "0.5",
            "--warmup",
            "0.1",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    for field in [
        "qps=",
        "p50_us=",
        "p99_us=",
        "p999_us=",
        "errors=0 ",
        "mean_us=",
        "max_us=",
        "caller_calls_min=",
        "caller_calls_median=",
    ] {
        assert!(run.stdout.contains(field), "{field}: {run:?}");
    }
    // `--server`, as compare and tonic_bench name it.
    let run = brisk(
        &[
            "bench",
            "--server",
            &address,
            "--duration",
            "0.2",
            "--warmup",
            "0",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_completions() {
    for command in [
        "call",
        "list",
        "describe",
        "press",
        "bench",
        "view",
        "completions",
    ] {
        let run = brisk(&[command, "--help"], "").await;
        assert_eq!(run.code, Some(0), "{command}: {run:?}");
        assert!(
            run.stdout.contains(&format!("Usage: brisk {command}")),
            "{run:?}"
        );
    }
    let run = brisk(&["--help"], "").await;
    assert!(run.stdout.contains("Exit codes:"), "{run:?}");
    let run = brisk(&["completions", "bash"], "").await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("complete -F _brisk"), "{run:?}");
    let run = brisk(&["frobnicate"], "").await;
    assert_eq!(run.code, Some(2), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_grpcio_with_v1alpha_reflection() {
    let server = tokio::task::spawn_blocking(|| {
        let stubs = stubs().to_str().expect("a UTF-8 path").to_owned();
        PyServer::start_script(
            "interop_server.py",
            &["--port", "0", "--stubs", &stubs, "--reflection"],
        )
    })
    .await
    .expect("grpcio server");
    let address = server.address();

    let run = brisk(&["list", &address], "").await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("interop.Interop\n"), "{run:?}");
    let run = brisk(&["list", &address, "Interop"], "").await;
    assert_eq!(
        run.stdout,
        "interop.Interop.Unary\ninterop.Interop.ServerStream\ninterop.Interop.ClientStream\n\
         interop.Interop.Bidi\n",
        "{run:?}"
    );
    let run = brisk(&["describe", &address, "interop.Msg"], "").await;
    assert!(
        run.stdout
            .starts_with("interop.Msg is a message:\nmessage Msg {\n"),
        "{run:?}"
    );

    let run = brisk(
        &[
            "call",
            &address,
            "interop.Interop/Unary",
            r#"{"text": "hi", "seq": 3}"#,
            "-H",
            "x-echo: yo",
        ],
        "",
    )
    .await;
    assert_eq!(
        run.stdout, "{\n  \"text\": \"hi|yo\",\n  \"seq\": 3\n}\n",
        "{run:?}"
    );
    let run = brisk(
        &[
            "call",
            &address,
            "interop.Interop/ServerStream",
            r#"{"text": "s", "seq": 2}"#,
        ],
        "",
    )
    .await;
    assert_eq!(
        run.stdout, "{\"text\":\"s-0\"}\n{\"text\":\"s-1\",\"seq\":1}\n",
        "{run:?}"
    );
    let run = brisk(
        &["call", &address, "interop.Interop/ClientStream"],
        "{\"text\": \"a\"}\n{\"text\": \"b\"}\n",
    )
    .await;
    assert_eq!(
        run.stdout, "{\n  \"text\": \"a,b\",\n  \"seq\": 2\n}\n",
        "{run:?}"
    );
    let run = brisk(
        &[
            "call",
            &address,
            "interop.Interop/Unary",
            r#"{"text": "nope", "failCode": 5}"#,
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.ends_with(": nope\n"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_shows_the_builtin_pages_on_a_local_port() {
    use std::io::BufRead as _;

    let server = brisk_server().await;
    let address = server.local_addr().to_string();
    // Killed when the guard drops, whatever the test does.
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_brisk"))
            .args(["view", &address, "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run brisk view"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await
    .expect("reader")
    .expect("brisk view's first line");
    let url = line.split_whitespace().next().unwrap_or_default();
    let local: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("no local URL in {line:?}"));
    assert!(line.contains(&address), "{line}");

    let (code, _, body) = brisk_tests::http_get(local, "/status", "curl/8").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("example.EchoService"), "{body}");
    // Calls through it work too: the relay carries any protocol.
    let run = brisk(
        &[
            "call",
            &local.to_string(),
            "example.EchoService/Echo",
            r#"{"message": "relayed"}"#,
        ],
        "",
    )
    .await;
    assert_eq!(run.stdout, "{\n  \"message\": \"relayed\"\n}\n", "{run:?}");
    drop(child);

    // A server that is not there: exit code 3 at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let run = brisk(
        &[
            "view",
            &format!("127.0.0.1:{port}"),
            "--listen",
            "127.0.0.1:0",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(3), "{run:?}");
    server.shutdown().await;
}
