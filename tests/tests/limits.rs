//! Server governance: the server-wide concurrency limit (brpc's `max_concurrency`, its
//! "constant" limiter), over every protocol, and changed while the server runs.

use std::time::Duration;

use brisk::{errno, Controller, Server};
use brisk_tests::test::{SleepRequest, TestServiceClient, TestServiceServer};
use brisk_tests::{test_client, TestImpl};
use tokio::sync::mpsc;

/// Hang guard for waits that must end.
const HANG_GUARD: Duration = Duration::from_secs(20);

async fn limited_server(max: usize) -> (Server, mpsc::UnboundedReceiver<String>) {
    let (service, arrivals) = TestImpl::new();
    let server = Server::builder()
        .max_concurrency(max)
        .add_service(TestServiceServer::new(service))
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    (server, arrivals)
}

fn sleep(tag: &str, millis: u32) -> SleepRequest {
    SleepRequest {
        tag: tag.into(),
        millis,
    }
}

/// Two 3-second Sleep calls over baidu_std, returned once both have arrived (their arrival is
/// announced, not guessed): they hold two places in whatever limit the server has.
async fn hold_two(
    server: &Server,
    arrivals: &mut mpsc::UnboundedReceiver<String>,
) -> (
    TestServiceClient,
    Vec<tokio::task::JoinHandle<Result<brisk_tests::test::SleepResponse, brisk::Status>>>,
) {
    let holder = test_client(server, "baidu_std", HANG_GUARD).await;
    let held = (0..2)
        .map(|i| {
            let holder = holder.clone();
            tokio::spawn(async move { holder.sleep(sleep(&format!("held {i}"), 3_000)).await })
        })
        .collect();
    for _ in 0..2 {
        tokio::time::timeout(HANG_GUARD, arrivals.recv())
            .await
            .expect("the held calls arrive");
    }
    (holder, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_max_concurrency_get_elimit_on_every_protocol() {
    let (server, mut arrivals) = limited_server(2).await;
    assert_eq!(server.max_concurrency(), 2);
    // Two calls hold the server's two places.
    let (_holder, held) = hold_two(&server, &mut arrivals).await;
    for protocol in ["baidu_std", "http", "h2:grpc", "hulu_pbrpc"] {
        let client = test_client(&server, protocol, HANG_GUARD).await;
        let status = client.sleep(sleep("third", 0)).await.unwrap_err();
        assert_eq!(status.code(), errno::ELIMIT, "{protocol}: {status}");
        assert_eq!(
            status.message(),
            "Reached server's max_concurrency=2",
            "{protocol}: brpc's words"
        );
    }
    // Lifted while the server runs: the next call goes through beside the held two.
    server.set_max_concurrency(0);
    let client = test_client(&server, "baidu_std", HANG_GUARD).await;
    let mut cntl = Controller::new();
    client
        .sleep_with(&mut cntl, sleep("after", 0))
        .await
        .expect("no limit now");
    for call in held {
        call.await.unwrap().expect("the held calls finish");
    }
    // And set again: a limit of 1 refuses the second of two at once.
    server.set_max_concurrency(1);
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(sleep("one", 3_000)).await }
    });
    tokio::time::timeout(HANG_GUARD, async {
        while arrivals.recv().await.as_deref() != Some("one") {}
    })
    .await
    .expect("the first call arrives");
    let status = client.sleep(sleep("two", 0)).await.unwrap_err();
    assert_eq!(status.message(), "Reached server's max_concurrency=1");
    first.await.unwrap().expect("the first call finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_methods_max_concurrency_limits_that_method_alone() {
    let (service, mut arrivals) = TestImpl::new();
    let server = Server::builder()
        .add_service(TestServiceServer::new(service))
        .max_concurrency_of("brisk.test.TestService.Sleep", 2)
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    assert_eq!(
        server
            .max_concurrency_of("brisk.test.TestService.Sleep")
            .unwrap(),
        2
    );
    assert_eq!(
        server
            .max_concurrency_of("brisk.test.TestService.Fail")
            .unwrap(),
        0
    );
    let (holder, held) = hold_two(&server, &mut arrivals).await;
    for protocol in ["baidu_std", "http", "h2:grpc", "hulu_pbrpc", "sofa_pbrpc"] {
        let client = test_client(&server, protocol, HANG_GUARD).await;
        let status = client.sleep(sleep("third", 0)).await.unwrap_err();
        assert_eq!(status.code(), errno::ELIMIT, "{protocol}: {status}");
        assert_eq!(
            status.message(),
            "Rejected by brisk.test.TestService.Sleep's ConcurrencyLimiter, concurrency=3",
            "{protocol}: brpc's words"
        );
        // Another method of the service is not limited: it runs (and fails as asked).
        let failed = client
            .fail(brisk_tests::test::FailRequest {
                code: errno::EINTERNAL,
                text: "as asked".into(),
                panic: false,
            })
            .await
            .unwrap_err();
        assert_eq!(failed.code(), errno::EINTERNAL, "{protocol}: {failed}");
    }
    // Lifted while the server runs.
    server
        .set_max_concurrency_of("brisk.test.TestService.Sleep", 0)
        .unwrap();
    holder.sleep(sleep("after", 0)).await.expect("no limit now");
    for call in held {
        call.await.unwrap().expect("the held calls finish");
    }
    // A rejected call gave its place back: with a limit of 1, one call runs.
    server
        .set_max_concurrency_of("brisk.test.TestService.Sleep", 1)
        .unwrap();
    holder
        .sleep(sleep("alone", 0))
        .await
        .expect("one place, free");
}

#[tokio::test]
async fn a_limit_on_a_method_the_server_does_not_host_is_refused() {
    let (service, _arrivals) = TestImpl::new();
    let error = Server::builder()
        .add_service(TestServiceServer::new(service))
        .max_concurrency_of("brisk.test.TestService.Nope", 1)
        .start("127.0.0.1:0")
        .await
        .unwrap_err();
    assert_eq!(error.code(), errno::EINVAL);
    assert!(
        error
            .to_string()
            .contains("Fail to find method=brisk.test.TestService.Nope"),
        "{error}"
    );
    let (service, _arrivals) = TestImpl::new();
    let server = Server::builder()
        .add_service(TestServiceServer::new(service))
        .start("127.0.0.1:0")
        .await
        .unwrap();
    assert!(server.set_max_concurrency_of("Sleep", 1).is_err());
    assert!(server.max_concurrency_of("nope.Svc.Sleep").is_err());
}
