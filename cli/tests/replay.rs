//! `ServerBuilder::rpc_dump` samples requests into brpc's file format, and `brisk replay` sends
//! them to another server: over the protocol each came in on, with its compression and
//! attachment.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brisk::rpc_dump::{read_records, RpcDumpOptions};
use brisk::{Channel, CompressType, Controller, Protocol, Server, ServerContext, Status};
use brisk_examples::echo::{
    EchoRequest, EchoResponse, EchoService, EchoServiceClient, EchoServiceServer,
};

/// What the recording server saw of each call: protocol-independent parts.
type Seen = Arc<Mutex<Vec<(String, CompressType, Vec<u8>)>>>;

/// An echo service that records each request's message, compression and attachment.
struct Recording(Seen);

impl EchoService for Recording {
    async fn echo(
        &self,
        cntl: &mut ServerContext,
        request: EchoRequest,
    ) -> Result<EchoResponse, Status> {
        self.0.lock().unwrap().push((
            request.message.clone(),
            cntl.request_compress_type(),
            cntl.request_attachment().to_vec(),
        ));
        Ok(EchoResponse {
            message: request.message,
        })
    }
}

async fn recording_server() -> (Server, Seen) {
    let seen = Seen::default();
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Recording(Arc::clone(&seen))))
        .start("127.0.0.1:0")
        .await
        .expect("a server");
    (server, seen)
}

/// The records in `dir`'s `requests.*` files.
fn dumped(dir: &std::path::Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("the dump directory") {
        let path = entry.expect("an entry").path();
        let data = std::fs::read(&path).expect("a dump file");
        count += read_records(&data, 1 << 26).expect("records").len();
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_requests_replay_with_their_protocol_compression_and_attachment() {
    let dir = tempfile::tempdir().expect("a directory");
    let dump_dir = dir.path().join("dump");
    std::fs::create_dir_all(&dump_dir).unwrap();
    // A stale file of an earlier run goes when the server starts; other files stay.
    std::fs::write(dump_dir.join("requests.20000101_000000_000000"), b"old").unwrap();
    std::fs::write(dump_dir.join("notes.txt"), b"mine").unwrap();
    let sampling = Server::builder()
        .add_service(EchoServiceServer::new(brisk_examples::Echo))
        .rpc_dump(RpcDumpOptions::new(&dump_dir))
        .start("127.0.0.1:0")
        .await
        .expect("a sampling server");
    assert!(!dump_dir.join("requests.20000101_000000_000000").exists());
    assert!(dump_dir.join("notes.txt").exists());
    std::fs::remove_file(dump_dir.join("notes.txt")).unwrap();

    let address = sampling.local_addr().to_string();
    let calls = [
        (Protocol::BAIDU_STD, CompressType::Zlib, &b"attached"[..]),
        (Protocol::BAIDU_STD, CompressType::None, &b""[..]),
        (
            Protocol::HULU_PBRPC,
            CompressType::Snappy,
            &b"hulu bytes"[..],
        ),
        (Protocol::SOFA_PBRPC, CompressType::Gzip, &b""[..]),
    ];
    for (i, (protocol, compress, attachment)) in calls.iter().enumerate() {
        let channel = Channel::builder()
            .protocol(protocol.clone())
            .connect(&address)
            .await
            .unwrap();
        let mut cntl = Controller::new();
        cntl.set_request_compress_type(*compress);
        cntl.set_request_attachment(attachment.to_vec());
        EchoServiceClient::new(channel)
            .echo_with(
                &mut cntl,
                EchoRequest {
                    message: format!("call {i}"),
                },
            )
            .await
            .expect("a sampled call");
    }
    // Records reach the files within 2 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dumped(&dump_dir) < calls.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} sampled",
            dumped(&dump_dir),
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sampling.shutdown().await;

    // A sample that cannot be sent again (brpc dumps nshead requests too) is skipped.
    let mut nshead = bytes::BytesMut::new();
    brisk::rpc_dump::encode_record(
        &brisk::rpc_dump::RpcDumpMeta {
            protocol_type: Some(13),
            nshead: Some(vec![0; 36]),
            ..Default::default()
        },
        &[b"body"],
        &mut nshead,
    );
    std::fs::write(dump_dir.join("requests.zzzz"), &nshead).unwrap();

    // Replayed twice to another server.
    let (target, seen) = recording_server().await;
    let dump = dump_dir.to_str().unwrap().to_owned();
    let server = target.local_addr().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_brisk"))
            .args([
                "replay",
                &dump,
                &server,
                "--qps",
                "0",
                "--times",
                "2",
                "--concurrency",
                "1",
            ])
            .output()
            .expect("run brisk replay")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("calls=8 ok=8 errors=0"), "{stdout}");
    assert!(stderr.contains("skipped 1 of 5 requests"), "{stderr}");
    assert!(stderr.contains("protocol 13"), "{stderr}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 8, "{seen:?}");
    for (i, (_, compress, attachment)) in calls.iter().enumerate() {
        let message = format!("call {i}");
        let got: Vec<_> = seen.iter().filter(|(m, _, _)| *m == message).collect();
        assert_eq!(got.len(), 2, "{message}: {seen:?}");
        for (_, got_compress, got_attachment) in got {
            assert_eq!(got_compress, compress, "{message}");
            assert_eq!(&got_attachment[..], *attachment, "{message}");
        }
    }
    target.shutdown().await;

    // Nothing to replay, and files that are not dumps: exit code 2.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("requests.bad"), b"not PRPC at all").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_brisk"))
        .args(["replay", empty.to_str().unwrap(), "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("magic"));
}
