//! Handlers that block their thread (brpc's `usercode_in_pthread`): by default a handler runs
//! in place on its connection's task, so one that blocks stalls the thread under it; a method
//! named with `ServerBuilder::blocking` runs on the blocking pool instead, and the server keeps
//! answering. The server here runs on a one-thread runtime, which makes the stall visible
//! without timing anything: the fast call's answer must come while the blocking one holds its
//! thread.

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use brisk::{errno, Channel, Server};

/// Generous, only so a broken build fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// A service whose `Hold` blocks its thread until the test lets it go.
#[brisk::service(package = "brisk.blocking", codec = "json")]
pub trait Work {
    /// Blocks its thread (no `.await`) until released; returns its tag.
    async fn hold(&self, tag: String) -> String;
    /// Answers at once.
    async fn quick(&self, tag: String) -> String;
}

struct Holder {
    /// Tells the test that `Hold` started.
    started: Mutex<mpsc::Sender<()>>,
    /// What `Hold` waits for.
    release: Mutex<mpsc::Receiver<()>>,
}

impl Work for Holder {
    async fn hold(&self, tag: String) -> String {
        let _ = self.started.lock().unwrap().send(());
        // A blocking wait, as synchronous I/O or a long computation would do.
        let _ = self.release.lock().unwrap().recv_timeout(HANG_GUARD);
        tag
    }

    async fn quick(&self, tag: String) -> String {
        tag
    }
}

/// Starts the server on a runtime of one thread of its own; the sender releases `Hold`.
fn serve(blocking: Option<&str>) -> (Server, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let holder = Holder {
        started: Mutex::new(started_tx),
        release: Mutex::new(release_rx),
    };
    let blocking = blocking.map(str::to_owned);
    let (server_tx, server_rx) = mpsc::channel();
    // The server's runtime runs on a thread of its own, away from the test's.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut builder = Server::builder().add_service(WorkServer::new(holder));
        if let Some(name) = blocking {
            builder = builder.blocking(name);
        }
        let server = runtime.block_on(builder.start("127.0.0.1:0")).unwrap();
        server_tx.send(server).unwrap();
        runtime.block_on(std::future::pending::<()>());
    });
    let server = server_rx
        .recv_timeout(HANG_GUARD)
        .expect("the server starts");
    (server, started_rx, release_tx)
}

async fn client(server: &Server) -> WorkClient {
    let channel = Channel::builder()
        .timeout(HANG_GUARD)
        .max_retry(0)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    WorkClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_method_on_the_blocking_pool_leaves_the_server_answering() {
    for name in ["brisk.blocking.Work.Hold", "brisk.blocking.Work"] {
        let (server, started, release) = serve(Some(name));
        let client = client(&server).await;
        let held = tokio::spawn({
            let client = client.clone();
            async move { client.hold("held".to_owned()).await }
        });
        tokio::task::spawn_blocking(move || started.recv_timeout(HANG_GUARD))
            .await
            .unwrap()
            .expect("Hold started");
        // While Hold blocks a thread of the pool, the server's own thread answers.
        let quick = tokio::time::timeout(HANG_GUARD, client.quick("quick".to_owned()))
            .await
            .expect("answered while Hold blocks");
        assert_eq!(quick.unwrap(), "quick", "{name}");
        assert!(!held.is_finished(), "Hold is still blocked");
        release.send(()).unwrap();
        assert_eq!(held.await.unwrap().unwrap(), "held");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_it_a_blocking_handler_stalls_its_thread() {
    let (server, started, release) = serve(None);
    let client = client(&server).await;
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.hold("held".to_owned()).await }
    });
    tokio::task::spawn_blocking(move || started.recv_timeout(HANG_GUARD))
        .await
        .unwrap()
        .expect("Hold started");
    // The quick call cannot be answered until Hold lets the server's one thread go.
    let quick = tokio::spawn({
        let client = client.clone();
        async move { client.quick("quick".to_owned()).await }
    });
    // Give the quick call every chance to be answered: it is not.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!quick.is_finished(), "the server's thread is blocked");
    release.send(()).unwrap();
    assert_eq!(held.await.unwrap().unwrap(), "held");
    assert_eq!(quick.await.unwrap().unwrap(), "quick");
}

#[test]
fn a_name_the_server_does_not_host_is_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for name in ["brisk.blocking.Work.Nope", "brisk.blocking.Nope", "Hold"] {
        let (started_tx, _) = mpsc::channel();
        let (_, release_rx) = mpsc::channel();
        let holder = Holder {
            started: Mutex::new(started_tx),
            release: Mutex::new(release_rx),
        };
        let error = runtime
            .block_on(
                Server::builder()
                    .add_service(WorkServer::new(holder))
                    .blocking(name)
                    .start("127.0.0.1:0"),
            )
            .unwrap_err();
        assert_eq!(error.code(), errno::EINVAL, "{name}");
        assert!(
            error
                .to_string()
                .contains("Fail to find service or method="),
            "{error}"
        );
    }
}
