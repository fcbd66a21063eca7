//! What Brisk's integration tests share: generated code, test services, and server start-up.

use std::time::Duration;

pub mod etcd;
pub mod memcached;
pub mod naming;
pub mod pki;
pub mod process;
pub mod python;
pub mod redis;
pub mod zookeeper;
pub use brisk_examples::echo;
pub use brisk_examples::Echo;

/// Code generated from `proto/test.proto` (package `brisk.test`).
pub mod test {
    brisk::include_proto!("brisk.test");
}

/// Code generated from `proto/interop.proto` (package `interop`), and the service as the
/// proto's comments define it, shared by the gRPC and interop tests.
pub mod interop {
    brisk::include_proto!("interop");

    use std::time::Duration;

    use brisk::{CompressType, ResponseStream, ServerContext, Status, Streaming};
    use futures_util::StreamExt;

    /// `interop.Interop` as the proto's comments define it.
    #[derive(Debug)]
    pub struct InteropImpl;

    /// Calls that asked for a rendezvous so far, by group (`text`), and the signal that more
    /// have come.
    static RENDEZVOUS: std::sync::LazyLock<(
        std::sync::Mutex<std::collections::HashMap<String, i32>>,
        tokio::sync::Notify,
    )> = std::sync::LazyLock::new(Default::default);

    /// Holds a call of group `group` until `count` calls of the group have arrived.
    async fn rendezvous(group: &str, count: i32) {
        let (arrived, more) = &*RENDEZVOUS;
        let here = |add: i32| {
            let mut arrived = arrived.lock().unwrap_or_else(|e| e.into_inner());
            let n = arrived.entry(group.to_owned()).or_default();
            *n += add;
            *n
        };
        here(1);
        more.notify_waiters();
        loop {
            let notified = more.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if here(0) >= count {
                return;
            }
            notified.await;
        }
    }

    /// Applies a request's `rendezvous`, its `sleep_ms`, then its `fail_code` (a Brisk error
    /// code).
    async fn obey(request: &Msg) -> Result<(), Status> {
        if request.rendezvous > 0 {
            rendezvous(&request.text, request.rendezvous).await;
        }
        if request.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(
                request.sleep_ms.unsigned_abs().into(),
            ))
            .await;
        }
        if request.fail_code != 0 {
            return Err(Status::new(request.fail_code, request.text.clone())
                .with_details(request.blob.clone()));
        }
        Ok(())
    }

    /// The echo of a request: its text, seq and blob.
    fn echo_of(request: Msg) -> Msg {
        Msg {
            text: request.text,
            seq: request.seq,
            blob: request.blob,
            ..Msg::default()
        }
    }

    impl Interop for InteropImpl {
        async fn unary(&self, cntl: &mut ServerContext, request: Msg) -> Result<Msg, Status> {
            obey(&request).await?;
            if request.text == "inspect-metadata" {
                let dup: Vec<&str> = cntl.request_header_values("x-dup").collect();
                let text = format!(
                    "dup={}|auth={}|ua={}",
                    dup.join(","),
                    cntl.request_header("authorization").unwrap_or_default(),
                    cntl.request_header("user-agent").is_some()
                );
                let blob = cntl.request_binary_header("trace-bin").unwrap_or_default();
                return Ok(Msg {
                    text,
                    blob,
                    ..Msg::default()
                });
            }
            let mut reply = echo_of(request);
            if let Some(value) = cntl.user_fields().get("x-echo").cloned() {
                reply.text = format!("{}|{value}", reply.text);
                cntl.set_response_trailer("x-echoed-trailer", value.clone());
                cntl.set_response_header("x-echoed", value);
            }
            // Answers in the request's compression (gzip or deflate).
            if matches!(
                cntl.request_compress_type(),
                CompressType::Gzip | CompressType::Zlib
            ) {
                cntl.set_response_compress_type(cntl.request_compress_type());
            }
            Ok(reply)
        }

        async fn server_stream(
            &self,
            _cntl: &mut ServerContext,
            request: Msg,
        ) -> Result<ResponseStream<Msg>, Status> {
            obey(&request).await?;
            let replies = (0..request.seq.max(0)).map(move |i| {
                Ok(Msg {
                    text: format!("{}-{i}", request.text),
                    seq: i,
                    ..Msg::default()
                })
            });
            Ok(Box::pin(futures_util::stream::iter(
                replies.collect::<Vec<_>>(),
            )))
        }

        async fn client_stream(
            &self,
            _cntl: &mut ServerContext,
            mut requests: Streaming<Msg>,
        ) -> Result<Msg, Status> {
            let mut texts = Vec::new();
            let mut blob = Vec::new();
            while let Some(request) = requests.message().await? {
                obey(&request).await?;
                texts.push(request.text);
                blob.extend_from_slice(&request.blob);
            }
            Ok(Msg {
                seq: i32::try_from(texts.len()).unwrap_or(i32::MAX),
                text: texts.join(","),
                blob,
                ..Msg::default()
            })
        }

        async fn bidi(
            &self,
            _cntl: &mut ServerContext,
            requests: Streaming<Msg>,
        ) -> Result<ResponseStream<Msg>, Status> {
            Ok(Box::pin(requests.then(|request| async move {
                let request = request?;
                obey(&request).await?;
                Ok(echo_of(request))
            })))
        }
    }
}

/// One row of the README's error table: how an error a Brisk handler returns reaches each kind
/// of client.
#[derive(Debug, Clone, Copy)]
pub struct ErrorRow {
    /// The code the handler fails with (and a Brisk client sees, on every protocol).
    pub code: i32,
    /// The `Status` constructor for it, if there is one.
    pub constructor: Option<fn(String) -> brisk::Status>,
    /// The canonical `grpc-status` a foreign gRPC client sees.
    pub grpc: &'static str,
    /// The HTTP status a plain HTTP client sees.
    pub http: u16,
}

macro_rules! rows {
    ($($code:expr, $ctor:expr, $grpc:literal, $http:literal;)*) => {
        [$(ErrorRow { code: $code, constructor: $ctor, grpc: $grpc, http: $http }),*]
    };
}

/// The README's error table, row for row.
pub const ERROR_TABLE: [ErrorRow; 22] = {
    use brisk::Status as S;
    rows! {
        125, Some(S::cancelled), "CANCELLED", 500;
        3002, Some(S::unknown), "UNKNOWN", 500;
        22, Some(S::invalid_argument), "INVALID_ARGUMENT", 400;
        1003, Some(S::invalid_request), "INVALID_ARGUMENT", 400;
        1008, Some(S::deadline_exceeded), "DEADLINE_EXCEEDED", 504;
        3005, Some(S::not_found), "NOT_FOUND", 404;
        17, Some(S::already_exists), "ALREADY_EXISTS", 409;
        1, Some(S::permission_denied), "PERMISSION_DENIED", 403;
        2004, Some(S::resource_exhausted), "RESOURCE_EXHAUSTED", 503;
        3009, Some(S::failed_precondition), "FAILED_PRECONDITION", 400;
        3010, Some(S::aborted), "ABORTED", 409;
        3011, Some(S::out_of_range), "OUT_OF_RANGE", 400;
        1002, Some(S::unimplemented), "UNIMPLEMENTED", 404;
        1001, None, "UNIMPLEMENTED", 404;
        2001, Some(S::internal), "INTERNAL", 500;
        3014, Some(S::unavailable), "UNAVAILABLE", 503;
        2003, None, "UNAVAILABLE", 503;
        3015, Some(S::data_loss), "DATA_LOSS", 500;
        1004, Some(S::unauthenticated), "UNAUTHENTICATED", 401;
        110, None, "INTERNAL", 504;
        1010, None, "INTERNAL", 500;
        4321, None, "INTERNAL", 500;
    }
};

use test::{FailRequest, FailResponse, SleepRequest, SleepResponse};
use tokio::sync::mpsc;

/// The test service: `Sleep` announces each arrival on `arrivals` (so tests can synchronise on
/// "the server has the request" without sleeping), `Fail` fails or panics on demand.
#[derive(Debug, Clone)]
pub struct TestImpl {
    arrivals: mpsc::UnboundedSender<String>,
}

impl TestImpl {
    /// The service and the receiving end of its arrival announcements.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (arrivals, rx) = mpsc::unbounded_channel();
        (TestImpl { arrivals }, rx)
    }
}

impl test::TestService for TestImpl {
    async fn sleep(
        &self,
        _cntl: &mut brisk::ServerContext,
        request: SleepRequest,
    ) -> Result<SleepResponse, brisk::Status> {
        let _ = self.arrivals.send(request.tag.clone());
        tokio::time::sleep(Duration::from_millis(u64::from(request.millis))).await;
        Ok(SleepResponse { tag: request.tag })
    }

    async fn fail(
        &self,
        _cntl: &mut brisk::ServerContext,
        request: FailRequest,
    ) -> Result<FailResponse, brisk::Status> {
        if request.panic {
            panic!("asked to panic");
        }
        Err(brisk::Status::new(request.code, request.text))
    }

    async fn raw(
        &self,
        cntl: &mut brisk::ServerContext,
        _request: test::RawRequest,
    ) -> Result<test::RawResponse, brisk::Status> {
        let mut reply = b"raw:".to_vec();
        reply.extend_from_slice(cntl.request_attachment());
        cntl.set_response_attachment(reply);
        cntl.set_response_header("content-type", "text/plain");
        Ok(test::RawResponse {})
    }
}

/// A server with the echo and test services on a free loopback port, and the test service's
/// arrival announcements.
pub async fn start_server() -> (brisk::Server, mpsc::UnboundedReceiver<String>) {
    start_server_on("127.0.0.1:0").await
}

/// [`start_server`] on a given address (to restart a server on the same port).
pub async fn start_server_on(address: &str) -> (brisk::Server, mpsc::UnboundedReceiver<String>) {
    let (service, arrivals) = TestImpl::new();
    let server = brisk::Server::builder()
        .add_service(echo::EchoServiceServer::new(Echo))
        .add_service(test::TestServiceServer::new(service))
        .start(address)
        .await
        .expect("server starts");
    (server, arrivals)
}

/// A `TestService` client of `server` over `protocol`, with `timeout` and no retries, so a
/// test sees each call's own outcome.
pub async fn test_client(
    server: &brisk::Server,
    protocol: &'static str,
    timeout: Duration,
) -> test::TestServiceClient {
    let channel = brisk::Channel::builder()
        .protocol(protocol)
        .timeout(timeout)
        .max_retry(0)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel");
    test::TestServiceClient::new(channel)
}

/// `GET path` from `addr` over HTTP/1.1 with `user_agent`, the connection closed after it:
/// (status code, content type, body). Fails the test if the answer takes over 10 s.
pub async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    user_agent: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {user_agent}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("answered")
        .unwrap();
    let response = String::from_utf8(response).expect("UTF-8");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    (status, content_type, body.to_owned())
}

/// A channel to `server` with the given timeout.
pub async fn channel_to(server: &brisk::Server, timeout: Duration) -> brisk::Channel {
    brisk::Channel::builder()
        .timeout(timeout)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel")
}

/// The path of a golden sample in `tests/golden/` (brpc 1.17 captures; see its README).
pub fn wire_sample(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name)
}

/// A multi-thread runtime with one worker, for a server whose tasks a test counts with
/// [`server_tasks_around`] (its metrics count the tasks of that runtime alone).
pub fn one_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a one-worker runtime")
}

/// The tasks alive on a server's runtime before and after `connections` more connections
/// (`open(i)` opens one, makes a call on it and returns what keeps it open), opened from a
/// runtime of their own so that only the server's tasks are counted. One connection is opened
/// first, so that what the server starts with its first connection is in both counts.
pub fn server_tasks_around<T, F>(
    server_runtime: &tokio::runtime::Runtime,
    connections: usize,
    open: impl Fn(usize) -> F,
) -> (usize, usize)
where
    F: std::future::Future<Output = T>,
{
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a client runtime");
    client_runtime.block_on(async {
        let first = open(0).await;
        let before = server_runtime.metrics().num_alive_tasks();
        let mut kept = Vec::with_capacity(connections);
        for i in 1..=connections {
            kept.push(open(i).await);
        }
        let after = server_runtime.metrics().num_alive_tasks();
        drop((first, kept));
        (before, after)
    })
}

/// Raw-socket helpers for tests that speak baidu_std bytes directly.
pub mod raw {
    use std::time::Duration;

    use brisk::protocol::baidu_std::{
        decode_frame, encode_head, Frame, RpcMeta, DEFAULT_MAX_BODY_SIZE,
    };
    use bytes::BytesMut;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    /// Hang guard for socket reads; never used to wait for something to happen.
    pub const HANG_GUARD: Duration = Duration::from_secs(5);

    /// A whole frame: header, meta, payload, attachment.
    pub fn frame_bytes(meta: &RpcMeta, payload: &[u8], attachment: &[u8]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode_head(&mut buf, meta, payload.len(), attachment.len());
        buf.extend_from_slice(payload);
        buf.extend_from_slice(attachment);
        buf.to_vec()
    }

    /// Reads one complete frame's bytes from `stream` (`buf` carries extra bytes over to the
    /// next call); panics if the connection closes first.
    pub async fn read_frame_bytes(stream: &mut TcpStream, buf: &mut BytesMut) -> Vec<u8> {
        loop {
            let mut probe = buf.clone();
            if decode_frame(&mut probe, DEFAULT_MAX_BODY_SIZE)
                .expect("valid frame")
                .is_some()
            {
                let len = buf.len() - probe.len();
                return buf.split_to(len).to_vec();
            }
            let n = tokio::time::timeout(HANG_GUARD, stream.read_buf(buf))
                .await
                .expect("a frame within the hang guard")
                .expect("read");
            assert_ne!(n, 0, "connection closed before a whole frame arrived");
        }
    }

    /// Reads and decodes the next frame; panics if the connection closes first.
    pub async fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut) -> Frame {
        let bytes = read_frame_bytes(stream, buf).await;
        decode_frame(&mut BytesMut::from(&bytes[..]), DEFAULT_MAX_BODY_SIZE)
            .expect("valid frame")
            .expect("whole frame")
    }
}
