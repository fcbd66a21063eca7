//! What Brisk's integration tests share: generated code, test services, and server start-up.

use std::time::Duration;

pub mod etcd;
pub use brisk_examples::echo;
pub use brisk_examples::Echo;

/// Code generated from `proto/test.proto` (package `brisk.test`).
pub mod test {
    brisk::include_proto!("brisk.test");
}

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

/// A channel to `server` with the given timeout.
pub async fn channel_to(server: &brisk::Server, timeout: Duration) -> brisk::Channel {
    brisk::Channel::builder()
        .timeout(timeout)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel")
}

/// The path of a file in `../shared/wire/` (brpc 1.17 captures).
pub fn wire_sample(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/wire")
        .join(name)
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
