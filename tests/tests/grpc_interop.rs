//! Brisk's gRPC against a real gRPC implementation, grpcio (Python, on gRPC's C core), both
//! ways, over real sockets on 127.0.0.1:
//!
//! - `grpcio_client_*`: `tests/python/interop_client.py` runs one case against a Brisk server
//!   implementing `interop.Interop` (`tests/proto/interop.proto`) in Rust;
//! - `brisk_client_*`: Brisk's generated `InteropClient` on an `h2:grpc` channel calls
//!   `tests/python/interop_server.py`.
//!
//! Needs `python3` with grpcio: `pip install -q -r tests/python/requirements.txt`. The Python
//! stubs are generated once ([`brisk_tests::python`]). Every Python process is killed
//! when its guard drops, and the server also exits when its stdin (a pipe held by the guard)
//! closes, so even a killed test run leaves no process behind.
//!
//! The gzip tests run through a byte-counting TCP relay, which shows that each side really
//! sent gzip (both the request and the reply are far smaller than the messages).
//!
//! Error codes follow brpc's `ErrorCodeToGrpcStatus` / `GrpcStatusToErrorCode`
//! (`src/brpc/grpc.cpp`): EREQUEST → INVALID_ARGUMENT → EINVAL, ENOSERVICE/ENOMETHOD →
//! UNIMPLEMENTED → ENOMETHOD, ERPCTIMEDOUT ↔ DEADLINE_EXCEEDED.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk::{errno, Channel, CompressType, Controller, MethodDescriptor, Protocol, Streaming};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use brisk_tests::interop::{InteropClient, InteropImpl, InteropServer, Msg};
use brisk_tests::python::{python, run_with_limit, stubs, PyServer, PROCESS_GUARD};

/// The channel's deadline for calls that are not about deadlines.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The size of the big-message cases.
const BIG_BLOB_BYTES: usize = 4 * 1024 * 1024;

/// Runs `interop_client.py --case case` against `address` and panics with its output unless it
/// passes.
fn run_grpcio_client(address: &str, case: &str) {
    run_grpcio_client_with(address, case, &[]);
}

/// [`run_grpcio_client`] with more arguments for `interop_client.py` (e.g. `--ca`).
fn run_grpcio_client_with(address: &str, case: &str, extra: &[&str]) {
    let finished = run_with_limit(
        python("interop_client.py")
            .args(["--target", address, "--case", case, "--stubs"])
            .arg(stubs())
            .args(extra),
        PROCESS_GUARD,
    )
    .unwrap_or_else(|e| panic!("interop_client.py --case {case}: {e}"));
    assert!(
        finished.status.success(),
        "interop_client.py --case {case} against Brisk failed: {}",
        finished.report()
    );
    assert!(
        finished.stdout.contains(&format!("ok {case}")),
        "interop_client.py --case {case} did not report success: {}",
        finished.report()
    );
}

// ---------------------------------------------------------------------------------------------
// A byte-counting TCP relay: shows whether a peer really compressed what it sent

/// Forwards every connection to `target`, counting the bytes each way (so a test can tell a
/// gzip-compressed message from a plain one without parsing HTTP/2). Stops accepting on drop.
struct Relay {
    address: SocketAddr,
    upstream: Arc<AtomicU64>,
    downstream: Arc<AtomicU64>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay binds");
        let address = listener.local_addr().expect("relay address");
        let upstream = Arc::new(AtomicU64::new(0));
        let downstream = Arc::new(AtomicU64::new(0));
        let (up, down) = (upstream.clone(), downstream.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(pump(in_read, out_write, up.clone()));
                tokio::spawn(pump(out_read, in_write, down.clone()));
            }
        });
        Relay {
            address,
            upstream,
            downstream,
            acceptor,
        }
    }

    /// Bytes sent so far from clients to the target, and back.
    fn counts(&self) -> (u64, u64) {
        (
            self.upstream.load(Ordering::SeqCst),
            self.downstream.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// Copies `from` to `to`, adding what it copies to `count`, until either side closes.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, count: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = to.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The Brisk server

/// A Brisk server with `interop.Interop` on a free loopback port.
async fn start_brisk() -> brisk::Server {
    brisk::Server::builder()
        .add_service(InteropServer::new(InteropImpl))
        .start("127.0.0.1:0")
        .await
        .expect("Brisk server starts")
}

/// Runs one grpcio client case against a fresh Brisk server.
async fn grpcio_client_case(case: &'static str) {
    let server = start_brisk().await;
    let address = server.local_addr().to_string();
    let outcome = tokio::task::spawn_blocking(move || run_grpcio_client(&address, case)).await;
    server.shutdown().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! grpcio_client_cases {
    ($($test:ident => $case:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                grpcio_client_case($case).await;
            }
        )*
    };
}

/// grpcio sees each Brisk code as the error table's canonical status, with the handler's text
/// alone and the exact code in `brisk-error-code`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_error_table() {
    let table = brisk_tests::ERROR_TABLE
        .iter()
        .map(|row| format!("{}={}", row.code, row.grpc))
        .collect::<Vec<_>>()
        .join(",");
    let server = start_brisk().await;
    let address = server.local_addr().to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        run_grpcio_client_with(&address, "error_table", &["--table", &table])
    })
    .await;
    server.shutdown().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

grpcio_client_cases! {
    grpcio_client_unary => "unary",
    grpcio_client_unary_metadata => "unary_metadata",
    grpcio_client_metadata_in => "metadata_in",
    grpcio_client_server_stream => "server_stream",
    grpcio_client_client_stream => "client_stream",
    grpcio_client_bidi => "bidi",
    grpcio_client_concurrency => "concurrency",
    grpcio_client_deadline => "deadline",
    grpcio_client_error => "error",
    grpcio_client_status_details => "status_details",
    grpcio_client_big => "big",
    grpcio_client_unimplemented => "unimplemented",
    grpcio_client_health => "health",
}

/// The uncompressed size of what the `gzip` case of `interop_client.py` sends: a unary call
/// of 60,000 text bytes and 100,000 zero bytes, then a 3-message client stream of 3,000 bytes.
const GRPCIO_GZIP_CASE_BYTES: u64 = 163_000;

/// The `gzip` case through a counting relay: the call must succeed and what grpcio sent must be
/// far smaller than the messages (it really was gzip, and Brisk really inflated it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_gzip() {
    grpcio_client_compressed("gzip").await;
}

/// The same with gRPC's `deflate` (zlib): a grpcio channel set to `Deflate` is served, and
/// answered in deflate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_deflate() {
    grpcio_client_compressed("deflate").await;
}

/// Runs a compression case (`gzip`, `deflate`) through a counting relay.
async fn grpcio_client_compressed(case: &'static str) {
    let server = start_brisk().await;
    let relay = Relay::start(server.local_addr()).await;
    let address = relay.address.to_string();
    let outcome = tokio::task::spawn_blocking(move || run_grpcio_client(&address, case)).await;
    let (upstream, downstream) = relay.counts();
    drop(relay);
    server.shutdown().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    assert!(
        upstream < GRPCIO_GZIP_CASE_BYTES / 4,
        "grpcio sent {upstream} bytes for {GRPCIO_GZIP_CASE_BYTES} bytes of messages: not {case}?"
    );
    // The Brisk handler answers compressed requests alike (`set_response_compress_type`).
    assert!(
        downstream < GRPCIO_GZIP_CASE_BYTES / 4,
        "Brisk answered with {downstream} bytes for {GRPCIO_GZIP_CASE_BYTES} bytes of replies: not {case}?"
    );
}

// ---------------------------------------------------------------------------------------------
// The Brisk client against grpcio

/// A grpcio server and an `h2:grpc` channel to it (keep the server alive while calling).
async fn grpcio_server() -> (PyServer, Channel) {
    let server = match tokio::task::spawn_blocking(PyServer::start).await {
        Ok(server) => server,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let channel = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(CALL_TIMEOUT)
        .connect(&server.address())
        .await
        .expect("h2:grpc channel to grpcio");
    (server, channel)
}

/// Waits for `future` with a hang guard (the calls carry their own deadlines too).
async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within the hang guard"))
}

fn msg(text: &str, seq: i32) -> Msg {
    Msg {
        text: text.to_owned(),
        seq,
        ..Msg::default()
    }
}

/// `len` bytes that do not compress (xorshift), to carry real payload sizes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// All the messages of `stream`, failing on an error.
async fn collect(mut stream: Streaming<Msg>) -> Vec<Msg> {
    let mut all = Vec::new();
    while let Some(message) = guarded("next streamed message", stream.message())
        .await
        .expect("streamed message")
    {
        all.push(message);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_unary() {
    let (_server, channel) = grpcio_server().await;
    let client = InteropClient::new(channel);
    let request = Msg {
        text: "hello".into(),
        seq: 7,
        blob: vec![0, 1, 0xfe, 0xff],
        ..Msg::default()
    };
    let reply = guarded("unary", client.unary(request.clone()))
        .await
        .expect("unary");
    assert_eq!(reply, request);
    let empty = guarded("empty unary", client.unary(Msg::default()))
        .await
        .expect("empty unary");
    assert_eq!(empty, Msg::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_metadata() {
    let (_server, channel) = grpcio_server().await;
    let client = InteropClient::new(channel);

    let mut cntl = Controller::new();
    cntl.set_request_header("x-echo", "v-42");
    let reply = guarded(
        "unary with x-echo",
        client.unary_with(&mut cntl, msg("meta", 1)),
    )
    .await
    .expect("unary with x-echo");
    assert_eq!(reply.text, "meta|v-42");
    assert_eq!(reply.seq, 1);
    assert_eq!(cntl.response_header("x-echoed"), Some("v-42"));

    let mut cntl = Controller::new();
    let reply = guarded(
        "unary without x-echo",
        client.unary_with(&mut cntl, msg("meta", 1)),
    )
    .await
    .expect("unary without x-echo");
    assert_eq!(reply.text, "meta");
    assert_eq!(cntl.response_header("x-echoed"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_server_stream() {
    let (_server, channel) = grpcio_server().await;
    let client = InteropClient::new(channel);
    let replies = guarded("server_stream", client.server_stream(msg("s", 5)))
        .await
        .expect("server_stream starts");
    let got: Vec<(String, i32)> = collect(replies)
        .await
        .into_iter()
        .map(|m| (m.text, m.seq))
        .collect();
    let want: Vec<(String, i32)> = (0..5).map(|i| (format!("s-{i}"), i)).collect();
    assert_eq!(got, want);

    let none = guarded("empty server_stream", client.server_stream(msg("none", 0)))
        .await
        .expect("empty server_stream starts");
    assert!(collect(none).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_client_stream() {
    let (_server, channel) = grpcio_server().await;
    let client = InteropClient::new(channel);
    let blobs: [&[u8]; 3] = [b"1", b"22", b"\x00\xff\x00"];
    let requests: Vec<Msg> = ["a", "bb", "ccc"]
        .iter()
        .zip(blobs)
        .map(|(text, blob)| Msg {
            text: (*text).to_owned(),
            blob: blob.to_vec(),
            ..Msg::default()
        })
        .collect();
    let reply = guarded(
        "client_stream",
        client.client_stream(futures_util::stream::iter(requests)),
    )
    .await
    .expect("client_stream");
    assert_eq!(reply.text, "a,bb,ccc");
    assert_eq!(reply.seq, 3);
    assert_eq!(&reply.blob[..], b"122\x00\xff\x00");

    let reply = guarded(
        "empty client_stream",
        client.client_stream(futures_util::stream::iter(Vec::<Msg>::new())),
    )
    .await
    .expect("empty client_stream");
    assert_eq!((reply.text.as_str(), reply.seq), ("", 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_bidi() {
    let (_server, channel) = grpcio_server().await;
    let client = InteropClient::new(channel);
    // Ping-pong: each request goes out only after the previous echo came back, so the
    // exchange works only if both sides really stream. The first ping is queued before the
    // call starts (a server need not send headers before its first message).
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let requests = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|message| (message, rx))
    });
    tx.send(msg("ping-0", 0)).expect("queue ping 0");
    let mut replies = guarded("bidi", client.bidi(requests))
        .await
        .expect("bidi starts");
    for i in 0..4 {
        if i > 0 {
            tx.send(msg(&format!("ping-{i}"), i)).expect("queue ping");
        }
        let reply = guarded("bidi echo", replies.message())
            .await
            .expect("bidi echo")
            .unwrap_or_else(|| panic!("the reply stream ended before echo {i}"));
        assert_eq!(
            (reply.text.as_str(), reply.seq),
            (format!("ping-{i}").as_str(), i)
        );
    }
    drop(tx);
    assert_eq!(
        guarded("end of bidi", replies.message())
            .await
            .expect("clean end"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_deadline() {
    let (_server, channel) = grpcio_server().await;
    let client = InteropClient::new(channel);
    let mut cntl = Controller::new();
    cntl.set_timeout(Duration::from_millis(500));
    let slow = Msg {
        text: "slow".into(),
        sleep_ms: 5000,
        ..Msg::default()
    };
    let started = Instant::now();
    let status = guarded("slow unary", client.unary_with(&mut cntl, slow))
        .await
        .expect_err("a call slower than its deadline fails");
    assert_eq!(status.code(), errno::ERPCTIMEDOUT, "{status:?}");
    // The deadline, not the server's reply, ended the call.
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "took {:?}",
        started.elapsed()
    );
    // The channel still works.
    let reply = guarded("unary after a timeout", client.unary(msg("after", 0)))
        .await
        .expect("unary after a timeout");
    assert_eq!(reply.text, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_error() {
    let (_server, channel) = grpcio_server().await;
    let client = InteropClient::new(channel);
    let text = "bad request: café 100% {x}";
    let failing = Msg {
        text: text.into(),
        fail_code: 3, // gRPC INVALID_ARGUMENT
        ..Msg::default()
    };
    let status = guarded("failing unary", client.unary(failing))
        .await
        .expect_err("grpcio aborts the call");
    // brpc's GrpcStatusToErrorCode: INVALID_ARGUMENT → EINVAL.
    assert_eq!(status.code(), errno::EINVAL, "{status:?}");
    assert!(
        status.message().contains(text),
        "the message should carry grpc-message {text:?}: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_gzip() {
    brisk_client_compressed(CompressType::Gzip, "x-gzip-response").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_deflate() {
    brisk_client_compressed(CompressType::Zlib, "x-deflate-response").await;
}

/// A Brisk client's compressed request to grpcio, through a counting relay, asking grpcio
/// (with metadata `ask_response`) to compress its reply alike.
async fn brisk_client_compressed(compress_type: CompressType, ask_response: &str) {
    let name = compress_type.name();
    let server = tokio::task::spawn_blocking(PyServer::start).await;
    let server = server.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let target: SocketAddr = server.address().parse().expect("address");
    let relay = Relay::start(target).await;
    let channel = Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(CALL_TIMEOUT)
        .connect(&relay.address.to_string())
        .await
        .expect("h2:grpc channel through the relay");
    let client = InteropClient::new(channel);
    let request = Msg {
        text: "compress me ".repeat(5000),
        seq: 3,
        blob: vec![0u8; 100_000],
        ..Msg::default()
    };
    let plain_size = 160_000;
    let mut cntl = Controller::new();
    cntl.set_request_compress_type(compress_type);
    // Also asks grpcio to compress its response (it does when the client accepts that).
    cntl.set_request_header(ask_response, "1");
    let reply = guarded(
        "compressed unary",
        client.unary_with(&mut cntl, request.clone()),
    )
    .await
    .expect("compressed unary");
    assert_eq!(reply, request);
    assert_eq!(cntl.response_compress_type(), compress_type);
    let (upstream, downstream) = relay.counts();
    assert!(
        upstream < plain_size / 4,
        "Brisk sent {upstream} bytes for a {plain_size}-byte message: not {name}?"
    );
    // grpcio compresses its reply only if Brisk announced the encoding in
    // grpc-accept-encoding.
    assert!(
        downstream < plain_size / 4,
        "grpcio answered with {downstream} bytes for a {plain_size}-byte message: not {name}?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_big() {
    let (_server, channel) = grpcio_server().await;
    let client = InteropClient::new(channel);
    let blob = noise(BIG_BLOB_BYTES, 0x5eed);
    let request = Msg {
        text: "big".into(),
        blob: blob.clone(),
        ..Msg::default()
    };
    let reply = guarded("4 MiB unary", client.unary(request))
        .await
        .expect("4 MiB unary");
    assert_eq!(reply.blob.len(), BIG_BLOB_BYTES);
    assert!(
        reply.blob[..] == blob[..],
        "the 4 MiB blob came back changed"
    );

    // Two 2 MiB requests streamed, one 4 MiB reply.
    let halves: Vec<Msg> = blob
        .chunks(BIG_BLOB_BYTES / 2)
        .map(|chunk| Msg {
            blob: chunk.to_vec(),
            ..Msg::default()
        })
        .collect();
    let reply = guarded(
        "4 MiB client_stream",
        client.client_stream(futures_util::stream::iter(halves)),
    )
    .await
    .expect("4 MiB client_stream");
    assert_eq!(reply.seq, 2);
    assert!(
        reply.blob[..] == blob[..],
        "the streamed blob came back changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_unknown_method() {
    let (_server, channel) = grpcio_server().await;
    for (service, method) in [
        ("interop.Interop", "NoSuchMethod"),
        ("no.such.Service", "Unary"),
    ] {
        let mut cntl = Controller::new();
        let descriptor = MethodDescriptor::new(service, method);
        let request = Msg::default();
        let call = channel.unary::<brisk::codec::Prost, Msg, Msg>(&descriptor, &mut cntl, &request);
        let status = guarded("unknown method", call)
            .await
            .expect_err("grpcio answers UNIMPLEMENTED");
        // brpc's GrpcStatusToErrorCode: UNIMPLEMENTED → ENOMETHOD.
        assert_eq!(
            status.code(),
            errno::ENOMETHOD,
            "/{service}/{method}: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_over_tls() {
    // A self-signed certificate: the grpcio client trusts it as its root.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let server = brisk::Server::builder()
        .add_service(InteropServer::new(InteropImpl))
        .tls(
            brisk::tls::ServerTlsOptions::from_pem(
                cert_pem.clone(),
                certified.key_pair.serialize_pem(),
            )
            .force(true),
        )
        .start("127.0.0.1:0")
        .await
        .expect("Brisk server starts");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert_pem).unwrap();
    let address = server.local_addr().to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let ca = ca.to_str().unwrap().to_owned();
        for case in ["unary", "server_stream", "bidi"] {
            run_grpcio_client_with(&address, case, &["--ca", &ca, "--server-name", "localhost"]);
        }
    })
    .await;
    server.shutdown().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisk_client_reads_status_details_and_trailing_metadata() {
    let (_server, channel) = grpcio_server().await;
    let client = InteropClient::new(channel);
    // grpcio aborts with INVALID_ARGUMENT (3) and the blob as grpc-status-details-bin.
    let details = b"\x08\x03\x12\x03bad".to_vec();
    let request = Msg {
        text: "with details".into(),
        fail_code: 3,
        blob: details.clone(),
        ..Msg::default()
    };
    let status = guarded("details", client.unary(request)).await.unwrap_err();
    assert_eq!(status.code(), brisk::errno::EINVAL, "{status}");
    assert_eq!(status.details(), &details[..]);
    // Trailing metadata on success reaches the controller with the initial metadata.
    let mut cntl = Controller::new();
    cntl.set_request_header("x-echo", "v-7");
    let reply = guarded("trailers", client.unary_with(&mut cntl, msg("t", 1)))
        .await
        .unwrap();
    assert_eq!(reply.text, "t|v-7");
    assert_eq!(cntl.response_header("x-echoed"), Some("v-7"));
    assert_eq!(cntl.response_header("x-echoed-trailer"), Some("v-7"));
}

// ---------------------------------------------------------------------------------------------
// gRPC's interop suite: grpc.testing.TestService, the cases of grpc/grpc's
// doc/interop-test-descriptions.md (Brisk's side in brisk_examples::interop, grpcio's in
// tests/python/grpc_testing_suite.py)

mod suite {
    use super::*;
    use brisk_examples::interop::client::{run, CASES};
    use brisk_examples::interop::testing::TestServiceServer;
    use brisk_examples::interop::TestServiceImpl;

    /// Cases grpcio's server cannot serve: it does not tell a servicer whether a request came
    /// compressed, so it cannot refuse the uncompressed probe of `client_compressed_unary`.
    const GRPCIO_SERVER_SKIPS: &[&str] = &["client_compressed_unary"];

    async fn brisk_server() -> brisk::Server {
        brisk::Server::builder()
            .add_service(TestServiceServer::new(TestServiceImpl))
            .start("127.0.0.1:0")
            .await
            .expect("interop server starts")
    }

    async fn brisk_client(address: &str, skips: &[&str]) {
        let channel = Channel::builder()
            .protocol(Protocol::GRPC)
            .timeout(CALL_TIMEOUT)
            .connect(address)
            .await
            .expect("channel");
        let mut failures = Vec::new();
        for case in CASES.iter().filter(|case| !skips.contains(case)) {
            if let Err(why) = run(&channel, case).await {
                failures.push(format!("{case}: {why}"));
            }
        }
        assert!(failures.is_empty(), "failed cases: {failures:#?}");
    }

    /// 200,000 small messages each way on one stream: sent one DATA frame each, h2's server
    /// (and client) took them for a flood of small frames and ended the connection
    /// (ENHANCE_YOUR_CALM, "too_many_data_frames"); the messages ready at once now share
    /// frames, both ways.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_small_messages_goes_through_both_ways() {
        use brisk_examples::interop::testing::{
            Payload, ResponseParameters, StreamingInputCallRequest, StreamingOutputCallRequest,
            TestServiceClient,
        };
        let server = brisk_server().await;
        let channel = Channel::builder()
            .protocol(Protocol::GRPC)
            .no_timeout()
            .connect(&server.local_addr().to_string())
            .await
            .expect("channel");
        let client = TestServiceClient::new(channel);
        let count = 200_000;
        let request = StreamingInputCallRequest {
            payload: Some(Payload {
                body: vec![7; 16],
                ..Payload::default()
            }),
            ..StreamingInputCallRequest::default()
        };
        let requests = futures_util::stream::iter((0..count).map(move |_| request.clone()));
        let response = client
            .streaming_input_call(requests)
            .await
            .expect("client to server");
        assert_eq!(response.aggregated_payload_size, 16 * count);
        let request = StreamingOutputCallRequest {
            response_parameters: vec![
                ResponseParameters {
                    size: 1,
                    ..ResponseParameters::default()
                };
                count as usize
            ],
            ..StreamingOutputCallRequest::default()
        };
        let mut responses = client
            .streaming_output_call(request)
            .await
            .expect("the call opens");
        let mut received = 0;
        while let Some(_response) = responses.message().await.expect("server to client") {
            received += 1;
        }
        assert_eq!(received, count);
        server.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_case_brisk_client_to_brisk_server() {
        let server = brisk_server().await;
        brisk_client(&server.local_addr().to_string(), &[]).await;
        server.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_case_grpcio_client_to_brisk_server() {
        let server = brisk_server().await;
        let address = server.local_addr().to_string();
        let finished = tokio::task::spawn_blocking(move || {
            stubs(); // grpcio is importable, or the pip command to run
            run_with_limit(
                python("grpc_testing_suite.py").args(["client", "--target", &address]),
                PROCESS_GUARD,
            )
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("grpc_testing_suite.py client: {e}"));
        assert!(
            finished.status.success(),
            "grpcio's interop client against Brisk failed: {}",
            finished.report()
        );
        let passed = finished
            .stdout
            .lines()
            .filter(|l| l.ends_with(": passed"))
            .count();
        assert_eq!(passed, CASES.len(), "{}", finished.report());
        server.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_case_that_applies_brisk_client_to_grpcio_server() {
        stubs();
        let server = tokio::task::spawn_blocking(|| {
            PyServer::start_script("grpc_testing_suite.py", &["server", "--port", "0"])
        })
        .await
        .unwrap();
        brisk_client(&server.address(), GRPCIO_SERVER_SKIPS).await;
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC server reflection, from the descriptors generated services carry

mod reflection {
    use super::*;
    use brisk::codec::Raw;
    use bytes::Bytes;

    async fn described_server(reflection: bool) -> brisk::Server {
        brisk::Server::builder()
            .add_service(brisk_examples::echo::EchoServiceServer::new(
                brisk_examples::Echo,
            ))
            .add_service(brisk_examples::interop::testing::TestServiceServer::new(
                brisk_examples::interop::TestServiceImpl,
            ))
            .reflection(reflection)
            .start("127.0.0.1:0")
            .await
            .expect("server starts")
    }

    const V1: &str = "grpc.reflection.v1.ServerReflection";
    const V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

    /// A gRPC channel to `address`.
    async fn grpc_channel(address: &str) -> Channel {
        Channel::builder()
            .protocol(Protocol::GRPC)
            .timeout(CALL_TIMEOUT)
            .connect(address)
            .await
            .unwrap()
    }

    /// The answers of one reflection stream (`service`: [`V1`] or [`V1ALPHA`]) to `requests`.
    async fn reflect(
        channel: &Channel,
        service: &'static str,
        requests: Vec<Bytes>,
    ) -> Result<Vec<Bytes>, brisk::Status> {
        let info = MethodDescriptor::new(service, "ServerReflectionInfo");
        let mut responses = channel
            .streaming::<Raw, Bytes, Bytes, _>(
                &info,
                &mut Controller::new(),
                futures_util::stream::iter(requests),
            )
            .await?;
        let mut answers = Vec::new();
        while let Some(answer) = responses.message().await? {
            answers.push(answer);
        }
        Ok(answers)
    }

    /// `list_services`.
    const LIST: Bytes = Bytes::from_static(b"\x3a\x00");

    /// grpcio-reflection's client (v1alpha) lists, loads the descriptors and calls a method
    /// with message classes made from them alone, as grpcurl does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grpcio_reflection_lists_describes_and_calls() {
        let server = described_server(true).await;
        let address = server.local_addr().to_string();
        let finished = tokio::task::spawn_blocking(move || {
            stubs();
            run_with_limit(
                python("reflection_client.py").args(["--target", &address]),
                PROCESS_GUARD,
            )
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("reflection_client.py: {e}"));
        assert!(finished.status.success(), "{}", finished.report());
        let out = &finished.stdout;
        for line in [
            "services: example.EchoService,grpc.testing.TestService",
            "service example.EchoService file=echo.proto methods=Echo",
            "service grpc.testing.TestService file=grpc_testing.proto methods=EmptyCall,UnaryCall,",
            "unknown symbol: not found",
            "echo: through reflection",
        ] {
            assert!(out.contains(line), "no `{line}` in: {}", finished.report());
        }
        server.shutdown().await;
    }

    /// One v1 reflection stream, with Brisk's own client: each request answered in turn, a
    /// file sent again when asked again (only imports go once), NOT_FOUND for what is not
    /// there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v1_answers_each_request_of_a_stream() {
        let server = described_server(true).await;
        let channel = grpc_channel(&server.local_addr().to_string()).await;
        let symbol = |name: &str| {
            let mut request = vec![0x22, name.len() as u8];
            request.extend_from_slice(name.as_bytes());
            Bytes::from(request)
        };
        let requests = vec![
            LIST,
            symbol("grpc.testing.TestService.UnaryCall"),
            symbol("grpc.testing.SimpleRequest"), // the same file again
            symbol("grpc.testing.COMPRESSABLE"),  // an enum value, named beside its enum
            symbol("no.such.Thing"),
        ];
        let answers = reflect(&channel, V1, requests).await.unwrap();
        assert_eq!(answers.len(), 5);
        let has = |answer: &Bytes, needle: &[u8]| answer.windows(needle.len()).any(|w| w == needle);
        // list_services_response (field 6), both services named.
        assert!(has(&answers[0], b"example.EchoService"));
        assert!(has(&answers[0], b"grpc.testing.TestService"));
        // file_descriptor_response (field 4) carrying the file, whose name is its field 1
        // (`0a 12` + 18 bytes); asked again on the stream, it is sent again (only imports go
        // once), as grpc-go's server does.
        let file = b"\x0a\x12grpc_testing.proto";
        for answer in &answers[1..4] {
            assert!(has(answer, b"\x22"), "{answer:02x?}");
            assert!(has(answer, file), "{answer:02x?}");
        }
        // error_response (field 7) { error_code: 5 (NOT_FOUND) }.
        assert!(has(&answers[4], b"\x3a"), "{:02x?}", answers[4]);
        assert!(has(&answers[4], b"\x08\x05"), "{:02x?}", answers[4]);
        assert!(has(&answers[4], b"symbol not found: no.such.Thing"));
        server.shutdown().await;
    }

    /// Reflection asks for the same credential as the server's methods.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reflection_needs_the_servers_credential() {
        #[derive(Debug)]
        struct Secret;
        impl brisk::Authenticator for Secret {
            fn generate_credential(&self) -> Result<String, brisk::Status> {
                Ok("secret".into())
            }
            fn verify_credential(
                &self,
                credential: &str,
                _: SocketAddr,
            ) -> Result<brisk::AuthContext, brisk::Status> {
                if credential == "secret" {
                    Ok(brisk::AuthContext::default())
                } else {
                    Err(brisk::Status::new(errno::ERPCAUTH, "wrong secret"))
                }
            }
        }
        let server = brisk::Server::builder()
            .add_service(brisk_examples::echo::EchoServiceServer::new(
                brisk_examples::Echo,
            ))
            .authenticator(Arc::new(Secret))
            .start("127.0.0.1:0")
            .await
            .unwrap();
        let address = server.local_addr().to_string();
        let anonymous = grpc_channel(&address).await;
        let err = reflect(&anonymous, V1, vec![LIST]).await.unwrap_err();
        assert_eq!(err.code(), errno::ERPCAUTH, "{err}");
        let trusted = Channel::builder()
            .protocol(Protocol::GRPC)
            .timeout(CALL_TIMEOUT)
            .authenticator(Arc::new(Secret))
            .connect(&address)
            .await
            .unwrap();
        let listed = reflect(&trusted, V1, vec![LIST]).await.unwrap();
        assert!(listed[0].windows(19).any(|w| w == b"example.EchoService"));
        server.shutdown().await;
    }

    /// `ServerBuilder::reflection(false)`: UNIMPLEMENTED, as a server without it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reflection_can_be_turned_off() {
        let server = described_server(false).await;
        let channel = grpc_channel(&server.local_addr().to_string()).await;
        let result = reflect(&channel, V1ALPHA, vec![LIST]).await;
        assert_eq!(result.unwrap_err().grpc_code(), 12);
        server.shutdown().await;
    }
}
