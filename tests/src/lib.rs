//! What Brisk's integration tests share: generated code, test services, and server start-up.

use std::time::Duration;

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
