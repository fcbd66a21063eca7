//! Concurrency limiters beyond a constant (brpc's `ConcurrencyLimiter`): brpc's adaptive
//! "auto" limiter holding an overloaded method near its no-load latency and shedding the
//! excess with ELIMIT, which a cluster client retries on another server; the "timeout" limiter
//! refusing requests that would be answered too late; and a user's own limiter, told of every
//! request and how it ended on every protocol.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brisk::limiter::{ConcurrencyLimiter, MaxConcurrency, TimeoutLimiterOptions};
use brisk::{errno, Channel, Controller, Server, Status};
use brisk_tests::test::{FailRequest, SleepRequest, TestServiceServer};
use brisk_tests::{test_client, TestImpl};

/// Hang guard for calls that must end.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// A method whose every call takes `LATENCY` in one of `WORKERS` places, as a service with that
/// many worker threads: past `WORKERS` calls at once, the rest queue and latency grows.
#[brisk::service(package = "brisk.limits", codec = "json")]
pub trait Workers {
    /// Waits for a worker, then holds it for `LATENCY`.
    async fn work(&self, request: ()) -> ();
}

const WORKERS: usize = 50;
const LATENCY: Duration = Duration::from_millis(10);
const CALLERS: usize = 200;
const WORK: &str = "brisk.limits.Workers.Work";

struct Pool(tokio::sync::Semaphore);

impl Workers for Pool {
    async fn work(&self, _request: ()) {
        let _worker = self.0.acquire().await.expect("never closed");
        tokio::time::sleep(LATENCY).await;
    }
}

async fn workers_server(max: MaxConcurrency) -> Server {
    Server::builder()
        .add_service(WorkersServer::new(Pool(tokio::sync::Semaphore::new(
            WORKERS,
        ))))
        .max_concurrency_of(WORK, max)
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

/// What the callers saw while measured.
#[derive(Debug, Default)]
struct Load {
    latencies: Vec<Duration>,
    limited: u64,
    retried: u64,
    other_errors: Vec<Status>,
}

impl Load {
    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort();
        let at = ((self.latencies.len() as f64 - 1.0) * p) as usize;
        self.latencies.get(at).copied().unwrap_or_default()
    }
}

/// `CALLERS` callers call Work back to back for `warmup + measured`; what they saw in the
/// measured part. A caller refused backs off 20 ms, as a client with nowhere else to go.
async fn drive(client: &WorkersClient, warmup: Duration, measured: Duration) -> Load {
    let start = Instant::now();
    let (from, until) = (start + warmup, start + warmup + measured);
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut load = Load::default();
                while Instant::now() < until {
                    let began = Instant::now();
                    let mut cntl = Controller::new();
                    let result = client.work_with(&mut cntl, ()).await;
                    if began < from {
                        continue;
                    }
                    load.retried += u64::from(cntl.retried_count());
                    match result {
                        Ok(()) => load.latencies.push(began.elapsed()),
                        Err(status) if status.code() == errno::ELIMIT => {
                            load.limited += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(status) => load.other_errors.push(status),
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Load::default();
    for caller in callers {
        let load = caller.await.expect("caller");
        total.latencies.extend(load.latencies);
        total.limited += load.limited;
        total.retried += load.retried;
        total.other_errors.extend(load.other_errors);
    }
    total
}

async fn workers_client(address: &str, max_retry: u32) -> WorkersClient {
    let builder = Channel::builder().timeout(HANG_GUARD).max_retry(max_retry);
    let channel = if address.contains("://") {
        builder.connect_cluster(address, "rr").await
    } else {
        builder.connect(address).await
    };
    WorkersClient::new(channel.expect("channel"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_keeps_latency_near_the_noload_latency_and_sheds_the_excess() {
    // No limit: 200 callers queue for 50 workers, so a call takes about 200 / 50 × 10 ms.
    let unlimited = workers_server(MaxConcurrency::Unlimited).await;
    let client = workers_client(&unlimited.local_addr().to_string(), 0).await;
    let mut queued = drive(&client, Duration::from_millis(500), Duration::from_secs(2)).await;
    assert!(queued.other_errors.is_empty(), "{:?}", queued.other_errors);
    assert_eq!(queued.limited, 0);
    let (queued_p50, queued_p99) = (queued.percentile(0.5), queued.percentile(0.99));

    // brpc's auto limiter: it measures the no-load latency (10 ms) and the best QPS (5,000), keeps
    // about 50 × (1 + explore) calls running, and refuses the rest at once.
    let auto = workers_server("auto".parse().unwrap()).await;
    let client = workers_client(&auto.local_addr().to_string(), 0).await;
    let mut limited = drive(&client, Duration::from_secs(1), Duration::from_secs(2)).await;
    assert!(
        limited.other_errors.is_empty(),
        "{:?}",
        limited.other_errors
    );
    let (limited_p50, limited_p99) = (limited.percentile(0.5), limited.percentile(0.99));
    let estimate = auto.max_concurrency_of(WORK).unwrap();
    eprintln!(
        "{CALLERS} callers, {WORKERS} workers of {LATENCY:?}: unlimited p50={queued_p50:?} \
         p99={queued_p99:?} ok={}; auto p50={limited_p50:?} p99={limited_p99:?} ok={} \
         elimit={} max_concurrency={estimate}",
        queued.latencies.len(),
        limited.latencies.len(),
        limited.limited,
    );
    assert!(queued_p50 >= LATENCY * 3, "queueing shows: {queued_p50:?}");
    assert!(limited.limited > 0, "the excess is refused");
    assert!(
        limited_p50 * 2 < queued_p50,
        "auto holds latency near 10 ms: {limited_p50:?} (unlimited {queued_p50:?})"
    );
    assert!(
        (WORKERS / 2..3 * WORKERS).contains(&estimate),
        "about the workers, explored a little: {estimate}"
    );

    // A cluster client retries a refusal on another server: two auto-limited servers, which
    // together run twice what one did; the 200 callers still overload them.
    let other = workers_server("auto".parse().unwrap()).await;
    let url = format!("list://{},{}", auto.local_addr(), other.local_addr());
    let client = workers_client(&url, 3).await;
    let mut cluster = drive(&client, Duration::from_millis(500), Duration::from_secs(2)).await;
    eprintln!(
        "cluster of 2: ok={} p50={:?} retried={} elimit after retries={}",
        cluster.latencies.len(),
        cluster.percentile(0.5),
        cluster.retried,
        cluster.limited,
    );
    assert!(
        cluster.other_errors.is_empty(),
        "{:?}",
        cluster.other_errors
    );
    assert!(
        cluster.retried > 0,
        "refusals were retried on the other server"
    );
    assert!(
        cluster.latencies.len() * 2 > limited.latencies.len() * 3,
        "the second server took what the first refused: {} calls answered (one server: {})",
        cluster.latencies.len(),
        limited.latencies.len()
    );
}

fn sleep(tag: &str, millis: u32) -> SleepRequest {
    SleepRequest {
        tag: tag.into(),
        millis,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_refuses_requests_the_average_latency_would_make_late() {
    // brpc's limiter, with windows of 20 to 40 samples instead of 100 to 200, so the calls
    // below surely fill some even on a busy machine (where answers bunch up and fewer are
    // sampled).
    let mut options = TimeoutLimiterOptions::default();
    options.min_sample_count = 20;
    options.max_sample_count = 40;
    let (service, mut arrivals) = TestImpl::new();
    let server = Server::builder()
        .add_service(TestServiceServer::new(service))
        .max_concurrency_of(
            "brisk.test.TestService.Sleep",
            MaxConcurrency::Timeout(options),
        )
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    let client = test_client(&server, "baidu_std", HANG_GUARD).await;
    // 20 callers, a millisecond apart, 20 calls of 20 ms each: answers every millisecond or so,
    // enough samples to learn the 20 ms average.
    let callers: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i)).await;
                for _ in 0..20 {
                    client.sleep(sleep("learn", 20)).await.expect("admitted");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    // One call running: a second whose caller gives it 10 ms is refused, as the method takes
    // 20 ms; one given a second runs.
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.sleep(sleep("held", 3_000)).await }
    });
    tokio::time::timeout(HANG_GUARD, async {
        while arrivals.recv().await.as_deref() != Some("held") {}
    })
    .await
    .expect("the held call arrives");
    for protocol in ["baidu_std", "h2:grpc", "http"] {
        // Connected first (connections are shared), so the 10 ms are not spent connecting.
        let warm = test_client(&server, protocol, HANG_GUARD).await;
        warm.sleep(sleep("warm", 0)).await.expect("warm");
        let hurried = test_client(&server, protocol, Duration::from_millis(10)).await;
        let status = match hurried.sleep(sleep("hurried", 0)).await {
            Err(status) => status,
            Ok(_) => panic!("{protocol}: a 10 ms caller of a 20 ms method was admitted"),
        };
        assert_eq!(status.code(), errno::ELIMIT, "{protocol}: {status}");
        assert!(
            status
                .message()
                .starts_with("Rejected by brisk.test.TestService.Sleep's ConcurrencyLimiter"),
            "{protocol}: {status}"
        );
    }
    client
        .sleep(sleep("patient", 0))
        .await
        .expect("within its time");
    held.await.unwrap().expect("the held call finishes");
    // Alone, a request always runs (so the average can recover).
    let hurried = test_client(&server, "baidu_std", Duration::from_millis(10)).await;
    hurried.sleep(sleep("alone", 0)).await.expect("alone");
}

/// Admits requests whose caller gave them at least 100 ms (or said nothing), and records what
/// it hears.
#[derive(Default)]
struct Recording {
    requested: Mutex<Vec<(usize, Option<Duration>)>>,
    responded: Mutex<Vec<i32>>,
}

impl ConcurrencyLimiter for Recording {
    fn on_requested(&self, concurrency: usize, timeout: Option<Duration>) -> bool {
        self.requested.lock().unwrap().push((concurrency, timeout));
        timeout.is_none_or(|t| t >= Duration::from_millis(100))
    }

    fn on_responded(&self, error_code: i32, _latency: Duration) {
        self.responded.lock().unwrap().push(error_code);
    }

    fn max_concurrency(&self) -> usize {
        7
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_limiter_hears_every_request_and_its_end_on_every_protocol() {
    let (service, _arrivals) = TestImpl::new();
    let recording = Arc::new(Recording::default());
    let server = Server::builder()
        .add_service(TestServiceServer::new(service))
        .max_concurrency_of(
            "brisk.test.TestService.Fail",
            MaxConcurrency::Custom(recording.clone()),
        )
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    assert_eq!(
        server
            .max_concurrency_of("brisk.test.TestService.Fail")
            .unwrap(),
        7
    );
    let fail = FailRequest {
        code: 4321,
        text: "as asked".into(),
        panic: false,
    };
    for protocol in ["baidu_std", "http", "h2:grpc", "hulu_pbrpc", "sofa_pbrpc"] {
        recording.requested.lock().unwrap().clear();
        recording.responded.lock().unwrap().clear();
        // Given 5 s: admitted, and it fails as asked.
        let patient = test_client(&server, protocol, Duration::from_secs(5)).await;
        let status = patient.fail(fail.clone()).await.unwrap_err();
        assert_eq!(status.code(), 4321, "{protocol}: {status}");
        // Given 50 ms: refused wherever the protocol carries the caller's timeout.
        let hurried = test_client(&server, protocol, Duration::from_millis(50)).await;
        let hurried = hurried.fail(fail.clone()).await.unwrap_err();
        let requested = recording.requested.lock().unwrap().clone();
        let responded = recording.responded.lock().unwrap().clone();
        let carries_timeout = !matches!(protocol, "hulu_pbrpc" | "sofa_pbrpc");
        if carries_timeout {
            assert_eq!(hurried.code(), errno::ELIMIT, "{protocol}: {hurried}");
            assert_eq!(responded, [4321, errno::ELIMIT], "{protocol}");
            // What was left of the caller's time when the request left it.
            let given: Vec<_> = requested.iter().map(|(_, t)| t.unwrap()).collect();
            assert!(
                matches!(given[..], [five_s, fifty_ms]
                    if five_s > Duration::from_secs(4) && five_s <= Duration::from_secs(5)
                        && fifty_ms > Duration::ZERO && fifty_ms <= Duration::from_millis(50)),
                "{protocol}: {given:?}"
            );
        } else {
            assert_eq!(hurried.code(), 4321, "{protocol}: {hurried}");
            assert_eq!(responded, [4321, 4321], "{protocol}");
            assert_eq!(
                requested.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
                [None, None]
            );
        }
        assert!(
            requested.iter().all(|(concurrency, _)| *concurrency == 1),
            "{requested:?}"
        );
    }
    // Success is 0; a handler's panic is EINTERNAL.
    recording.responded.lock().unwrap().clear();
    let client = test_client(&server, "baidu_std", Duration::from_secs(5)).await;
    let panicked = client
        .fail(FailRequest {
            panic: true,
            ..fail.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(panicked.code(), errno::EINTERNAL);
    assert_eq!(*recording.responded.lock().unwrap(), [errno::EINTERNAL]);
}
