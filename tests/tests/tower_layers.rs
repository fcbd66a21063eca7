//! tower interop: real tower middleware (`tower::timeout`, `tower::limit`, a layer of one's
//! own) around Brisk services with `ServerBuilder::layer`, over several protocols, and a
//! hosted service called as a plain `tower::Service`.

use std::time::{Duration, Instant};

use brisk::tower::{BriskService, ServiceRequest};
use brisk::{errno, Server, ServerContext, Status};
use brisk_tests::test::{SleepRequest, TestServiceServer};
use brisk_tests::{test_client, TestImpl};
use prost::Message;
use tower::ServiceExt;

const HANG_GUARD: Duration = Duration::from_secs(20);

fn sleep(tag: &str, millis: u32) -> SleepRequest {
    SleepRequest {
        tag: tag.into(),
        millis,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn towers_timeout_layer_cuts_slow_handlers_on_every_protocol() {
    let (service, _arrivals) = TestImpl::new();
    let server = Server::builder()
        .add_service(TestServiceServer::new(service))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
            100,
        )))
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    for protocol in ["baidu_std", "http", "h2:grpc", "hulu_pbrpc"] {
        let client = test_client(&server, protocol, HANG_GUARD).await;
        assert_eq!(
            client.sleep(sleep("quick", 0)).await.expect(protocol).tag,
            "quick"
        );
        let started = Instant::now();
        let status = client.sleep(sleep("slow", 2_000)).await.unwrap_err();
        assert_eq!(status.code(), errno::EINTERNAL, "{protocol}: {status}");
        assert_eq!(
            status.message(),
            "request timed out",
            "{protocol}: tower's words"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{protocol}: cut at 100 ms"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn towers_concurrency_limit_queues_calls_beyond_it() {
    let (service, mut arrivals) = TestImpl::new();
    let server = Server::builder()
        .add_service(TestServiceServer::new(service))
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    let client = test_client(&server, "baidu_std", HANG_GUARD).await;
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(sleep("held", 300)).await }
    });
    tokio::time::timeout(HANG_GUARD, arrivals.recv())
        .await
        .expect("the first call arrives");
    // The second waits for the first's place (tower queues; it does not refuse).
    let started = Instant::now();
    client
        .sleep(sleep("queued", 0))
        .await
        .expect("served after");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "queued behind the held call: {:?}",
        started.elapsed()
    );
    held.await.unwrap().expect("the held call finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_of_ones_own_sees_the_request_and_answers_with_a_status() {
    // Refuses Sleep calls tagged "no" with a Brisk status; lets the rest through.
    let refuse_no = tower::layer::layer_fn(|inner: BriskService| {
        tower::service_fn(move |request: ServiceRequest| {
            let inner = inner.clone();
            async move {
                let tag = SleepRequest::decode(request.payload.clone())
                    .map(|r| r.tag)
                    .unwrap_or_default();
                if request.name.method() == "Sleep" && tag == "no" {
                    return Err(Status::new(
                        errno::EPERM,
                        format!("{} refused", request.name),
                    ));
                }
                inner.oneshot(request).await.map_err(|never| match never {})
            }
        })
    });
    let (service, _arrivals) = TestImpl::new();
    let server = Server::builder()
        .add_service(TestServiceServer::new(service))
        .layer(refuse_no)
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    for protocol in ["baidu_std", "h2:grpc"] {
        let client = test_client(&server, protocol, HANG_GUARD).await;
        let status = client.sleep(sleep("no", 0)).await.unwrap_err();
        assert_eq!(status.code(), errno::EPERM, "{protocol}: {status}");
        assert_eq!(status.message(), "brisk.test.TestService.Sleep refused");
        assert_eq!(
            client.sleep(sleep("yes", 0)).await.expect(protocol).tag,
            "yes"
        );
    }
}

#[tokio::test]
async fn a_hosted_service_is_a_tower_service() {
    let (service, _arrivals) = TestImpl::new();
    let service = BriskService::new(TestServiceServer::new(service));
    let context = ServerContext::new(
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
    );
    let payload = sleep("direct", 0).encode_to_vec().into();
    let request = service.request("Sleep", context, payload).unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    let reply = brisk_tests::test::SleepResponse::decode(response.result.unwrap()).unwrap();
    assert_eq!(reply.tag, "direct");
    let context = ServerContext::new(
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
    );
    let unknown = service
        .request("Nope", context, Default::default())
        .unwrap_err();
    assert_eq!(unknown.code(), errno::ENOMETHOD);
}
