//! Cluster channels against several real Brisk servers on loopback: naming services, load
//! balancers, retries to other servers, health checks, the circuit breaker and backup
//! requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk::{errno, Channel, Controller, Status};
use brisk_tests::echo::{
    EchoRequest, EchoResponse, EchoService, EchoServiceClient, EchoServiceServer,
};

/// How one test server behaves; changed while it runs.
#[derive(Debug, Default)]
struct Behaviour {
    delay_ms: AtomicU64,
    failing: AtomicBool,
    /// The code a failing server answers with (EINTERNAL when 0).
    fail_code: AtomicI32,
}

#[derive(Clone)]
struct ControlledEcho(Arc<Behaviour>);

impl EchoService for ControlledEcho {
    async fn echo(
        &self,
        _cntl: &mut brisk::ServerContext,
        request: EchoRequest,
    ) -> Result<EchoResponse, Status> {
        let delay = self.0.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.0.failing.load(Ordering::Relaxed) {
            let code = match self.0.fail_code.load(Ordering::Relaxed) {
                0 => errno::EINTERNAL,
                code => code,
            };
            return Err(Status::new(code, "asked to fail"));
        }
        Ok(EchoResponse {
            message: request.message,
        })
    }
}

/// An echo server in a runtime of its own, so a test can kill it abruptly (every connection
/// dropped, calls in flight lost) as a crashed process would be.
struct TestServer {
    addr: SocketAddr,
    behaviour: Arc<Behaviour>,
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<brisk::Server>,
}

impl TestServer {
    fn start() -> TestServer {
        TestServer::start_on("127.0.0.1:0")
    }

    fn start_on(address: &str) -> TestServer {
        // Built on a thread of its own: tests call this from inside their own runtime.
        let address = address.to_owned();
        std::thread::spawn(move || TestServer::start_here(&address))
            .join()
            .expect("server thread")
    }

    fn start_here(address: &str) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let behaviour = Arc::new(Behaviour::default());
        let service = ControlledEcho(Arc::clone(&behaviour));
        let server = runtime
            .block_on(
                brisk::Server::builder()
                    .add_service(EchoServiceServer::new(service))
                    .start(address),
            )
            .expect("server starts");
        TestServer {
            addr: server.local_addr(),
            behaviour,
            runtime: Some(runtime),
            server: Some(server),
        }
    }

    /// Kills the server: its runtime stops, its sockets close.
    fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            std::mem::forget(server);
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn list_url(servers: &[&TestServer], tags: &[&str]) -> String {
    let entries: Vec<String> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| match tags.get(i) {
            Some(tag) => format!("{} {tag}", s.addr),
            None => s.addr.to_string(),
        })
        .collect();
    format!("list://{}", entries.join(","))
}

async fn call(client: &EchoServiceClient, cntl: &mut Controller) -> Result<SocketAddr, Status> {
    client
        .echo_with(
            cntl,
            EchoRequest {
                message: "hi".into(),
            },
        )
        .await?;
    Ok(cntl.remote_side().expect("remote side"))
}

/// Makes `n` sequential calls and counts who answered.
async fn distribution(client: &EchoServiceClient, n: usize) -> HashMap<SocketAddr, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let addr = call(client, &mut Controller::new()).await.expect("call");
        *counts.entry(addr).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_visits_every_server_in_turn() {
    let servers = [
        TestServer::start(),
        TestServer::start(),
        TestServer::start(),
    ];
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    let channel = Channel::builder()
        .connect_cluster(&url, "rr")
        .await
        .unwrap();
    assert_eq!(channel.servers().len(), 3);
    let client = EchoServiceClient::new(channel);
    let mut order = Vec::new();
    for _ in 0..9 {
        order.push(call(&client, &mut Controller::new()).await.unwrap());
    }
    for i in 3..9 {
        assert_eq!(order[i], order[i - 3], "rr order: {order:?}");
    }
    let distinct: std::collections::HashSet<_> = order[..3].iter().collect();
    assert_eq!(distinct.len(), 3, "{order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_tags() {
    let servers = [
        TestServer::start(),
        TestServer::start(),
        TestServer::start(),
    ];
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &["1", "2", "3"]);
    let client = EchoServiceClient::new(
        Channel::builder()
            .connect_cluster(&url, "wrr")
            .await
            .unwrap(),
    );
    let counts = distribution(&client, 600).await;
    for (server, weight) in servers.iter().zip([1, 2, 3]) {
        assert_eq!(counts[&server.addr], 100 * weight, "{counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_weighted_random_spread_calls() {
    let servers = [TestServer::start(), TestServer::start()];
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &["1", "3"]);
    for (lb, expected_first) in [("random", 0.5), ("wr", 0.25)] {
        let client =
            EchoServiceClient::new(Channel::builder().connect_cluster(&url, lb).await.unwrap());
        let counts = distribution(&client, 2000).await;
        let share = counts.get(&servers[0].addr).copied().unwrap_or(0) as f64 / 2000.0;
        assert!(
            (share - expected_first).abs() < 0.06,
            "{lb}: first server's share {share}, expected {expected_first}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_keeps_a_key_on_one_server() {
    let servers = [
        TestServer::start(),
        TestServer::start(),
        TestServer::start(),
    ];
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    for lb in ["c_murmurhash", "c_md5"] {
        let client =
            EchoServiceClient::new(Channel::builder().connect_cluster(&url, lb).await.unwrap());
        let mut seen = std::collections::HashSet::new();
        for key in 0..200u64 {
            let mut first = Controller::new();
            first.set_request_code(key.wrapping_mul(0x9e37_79b9) & 0xffff_ffff);
            let a = call(&client, &mut first).await.unwrap();
            let mut again = Controller::new();
            again.set_request_code(key.wrapping_mul(0x9e37_79b9) & 0xffff_ffff);
            assert_eq!(
                call(&client, &mut again).await.unwrap(),
                a,
                "{lb} key {key}"
            );
            seen.insert(a);
        }
        assert_eq!(seen.len(), 3, "{lb}: 200 keys should reach every server");
        let err = call(&client, &mut Controller::new()).await.unwrap_err();
        assert!(
            err.message().contains("request code") || err.message().contains("request_code"),
            "{lb} without a request code: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cluster_arguments_are_rejected() {
    for (url, lb) in [
        ("list://127.0.0.1:1", "no_such_lb"),
        ("list://127.0.0.1:1", "rr:bogus=1"),
        ("nope://x", "rr"),
        ("list://127.0.0.1", "rr"),
    ] {
        let err = Channel::builder()
            .connect_cluster(url, lb)
            .await
            .unwrap_err();
        assert_eq!(err.code(), errno::EINVAL, "{url} {lb}: {err}");
    }
    let err = Channel::connect("list://127.0.0.1:1").await.unwrap_err();
    assert_eq!(err.code(), errno::EINVAL);
    // A cluster with no server fails calls with EHOSTDOWN, quickly.
    let channel = Channel::builder()
        .naming_filter(|_: &brisk::naming::ServerNode| false)
        .connect_cluster("list://127.0.0.1:1", "rr")
        .await
        .unwrap();
    let err = call(&EchoServiceClient::new(channel), &mut Controller::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EHOSTDOWN, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_filters_drop_servers_by_tag() {
    let servers = [TestServer::start(), TestServer::start()];
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &["canary", "stable"]);
    let channel = Channel::builder()
        .naming_filter(|node: &brisk::naming::ServerNode| node.tag == "stable")
        .connect_cluster(&url, "rr")
        .await
        .unwrap();
    assert_eq!(channel.servers(), vec![servers[1].addr]);
    let counts = distribution(&EchoServiceClient::new(channel), 20).await;
    assert_eq!(counts.get(&servers[1].addr), Some(&20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_loses_no_call() {
    let mut servers = [
        TestServer::start(),
        TestServer::start(),
        TestServer::start(),
    ];
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    let channel = Channel::builder()
        .timeout(Duration::from_secs(2))
        .health_check_interval(Duration::from_millis(200))
        .connect_cluster(&url, "rr")
        .await
        .unwrap();
    let client = EchoServiceClient::new(channel);
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let stop = Arc::clone(&stop);
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut retried) = (0u32, Vec::new(), 0u32);
            while !stop.load(Ordering::Relaxed) {
                let mut cntl = Controller::new();
                match call(&client, &mut cntl).await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e),
                }
                retried += cntl.retried_count();
            }
            (ok, failed, retried)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = servers[1].addr;
    servers[1].kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut retried) = (0, 0);
    for worker in workers {
        let (o, failed, r) = worker.await.unwrap();
        assert!(
            failed.is_empty(),
            "calls failed after a server was killed: {failed:?}"
        );
        ok += o;
        retried += r;
    }
    assert!(ok > 100, "only {ok} calls made");
    // The killed server is out of rotation: calls now go to the others without retrying.
    let counts = distribution(&client, 30).await;
    assert!(!counts.contains_key(&killed), "{counts:?}");
    eprintln!("{ok} calls, {retried} retries around the killed server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_returns_after_a_health_check() {
    let mut servers = [TestServer::start(), TestServer::start()];
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    let client = EchoServiceClient::new(
        Channel::builder()
            .health_check_interval(Duration::from_millis(100))
            .connect_cluster(&url, "rr")
            .await
            .unwrap(),
    );
    distribution(&client, 10).await;
    let addr = servers[0].addr;
    servers[0].kill();
    let counts = distribution(&client, 20).await;
    assert_eq!(counts.get(&servers[1].addr), Some(&20), "{counts:?}");
    servers[0] = TestServer::start_on(&addr.to_string());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let counts = distribution(&client, 10).await;
        if counts.contains_key(&addr) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted server never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_go_to_servers_not_yet_tried() {
    let mut dead = [TestServer::start(), TestServer::start()];
    let alive = TestServer::start();
    let dead_addrs = [dead[0].addr, dead[1].addr];
    dead[0].kill();
    dead[1].kill();
    let url = list_url(&[&dead[0], &dead[1], &alive], &[]);
    let client = EchoServiceClient::new(
        Channel::builder()
            .max_retry(2)
            .connect_cluster(&url, "rr")
            .await
            .unwrap(),
    );
    // Whatever rr starts with, two retries are enough to reach the live server.
    for _ in 0..6 {
        let mut cntl = Controller::new();
        assert_eq!(call(&client, &mut cntl).await.unwrap(), alive.addr);
    }
    assert!(!dead_addrs.contains(&alive.addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locality_aware_moves_traffic_away_from_a_slow_server() {
    let servers = [
        TestServer::start(),
        TestServer::start(),
        TestServer::start(),
    ];
    servers[0].behaviour.delay_ms.store(20, Ordering::Relaxed);
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    let client = EchoServiceClient::new(
        Channel::builder()
            .timeout(Duration::from_secs(2))
            .connect_cluster(&url, "la")
            .await
            .unwrap(),
    );
    // Warm up, then measure with 8 calls in flight.
    let mut counts: HashMap<SocketAddr, usize> = HashMap::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        let mut batch = Vec::new();
        for _ in 0..8 {
            let client = client.clone();
            batch.push(tokio::spawn(async move {
                call(&client, &mut Controller::new()).await
            }));
        }
        for call in batch {
            let addr = call.await.unwrap().unwrap();
            if started.elapsed() > Duration::from_millis(500) {
                *counts.entry(addr).or_default() += 1;
            }
        }
    }
    let slow = counts.get(&servers[0].addr).copied().unwrap_or(0);
    let fast = counts.get(&servers[1].addr).copied().unwrap_or(0)
        + counts.get(&servers[2].addr).copied().unwrap_or(0);
    assert!(
        slow * 10 < fast,
        "the slow server still got {slow} calls against {fast}: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_requests_cut_the_tail() {
    let servers = [TestServer::start(), TestServer::start()];
    servers[0].behaviour.delay_ms.store(300, Ordering::Relaxed);
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    let client = EchoServiceClient::new(
        Channel::builder()
            .timeout(Duration::from_secs(2))
            .backup_request(Duration::from_millis(20))
            .connect_cluster(&url, "rr")
            .await
            .unwrap(),
    );
    for _ in 0..10 {
        let mut cntl = Controller::new();
        let addr = call(&client, &mut cntl).await.unwrap();
        assert_eq!(addr, servers[1].addr);
        assert!(
            cntl.latency() < Duration::from_millis(200),
            "a backup should have answered: {:?}",
            cntl.latency()
        );
    }
    // Without backups half the calls wait for the slow server.
    let client = EchoServiceClient::new(
        Channel::builder()
            .timeout(Duration::from_secs(2))
            .connect_cluster(&url, "rr")
            .await
            .unwrap(),
    );
    let mut slow = 0;
    for _ in 0..4 {
        let mut cntl = Controller::new();
        call(&client, &mut cntl).await.unwrap();
        if cntl.latency() >= Duration::from_millis(300) {
            slow += 1;
        }
    }
    assert_eq!(slow, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_isolates_a_failing_server_until_it_recovers() {
    let servers = [TestServer::start(), TestServer::start()];
    servers[0].behaviour.failing.store(true, Ordering::Relaxed);
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    let client = EchoServiceClient::new(
        Channel::builder()
            .enable_circuit_breaker(true)
            .health_check_interval(Duration::from_millis(100))
            .connect_cluster(&url, "rr")
            .await
            .unwrap(),
    );
    let (mut failed, mut ok) = (0, 0);
    for _ in 0..2000 {
        match call(&client, &mut Controller::new()).await {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), errno::EINTERNAL);
                failed += 1;
            }
        }
    }
    // Without the breaker, rr would send half the calls (1000) to the failing server. Each
    // trip needs 150 failures in the breaker's warm-up window and isolates the server for
    // 100 ms, then 200 ms, ...
    assert!(failed < 700, "{failed} calls failed, {ok} succeeded");
    assert!(
        failed >= 150,
        "the breaker tripped too early: {failed} failures"
    );
    // Healthy again: after its isolation it takes calls once more.
    servers[0].behaviour.failing.store(false, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counts = distribution(&client, 10).await;
        if counts.contains_key(&servers[0].addr) {
            break;
        }
        assert!(Instant::now() < deadline, "the server never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_naming_follows_edits_within_a_second() {
    let servers = [TestServer::start(), TestServer::start()];
    let path = std::env::temp_dir().join(format!("brisk-servers-{}.txt", std::process::id()));
    std::fs::write(&path, format!("# the cluster\n{}\n", servers[0].addr)).unwrap();
    let channel = Channel::builder()
        .connect_cluster(&format!("file://{}", path.display()), "rr")
        .await
        .unwrap();
    assert_eq!(channel.servers(), vec![servers[0].addr]);
    std::fs::write(
        &path,
        format!("{}\n{} # added\n", servers[0].addr, servers[1].addr),
    )
    .unwrap();
    let edited = Instant::now();
    while channel.servers().len() != 2 {
        assert!(edited.elapsed() < Duration::from_secs(1), "edit not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = distribution(&EchoServiceClient::new(channel.clone()), 10).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    std::fs::write(&path, format!("{}\n", servers[1].addr)).unwrap();
    let edited = Instant::now();
    while channel.servers() != vec![servers[1].addr] {
        assert!(
            edited.elapsed() < Duration::from_secs(1),
            "removal not seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_naming_resolves_localhost() {
    let server = TestServer::start();
    let channel = Channel::builder()
        .connect_cluster(&format!("http://localhost:{}", server.addr.port()), "rr")
        .await
        .unwrap();
    assert!(
        channel.servers().contains(&server.addr),
        "{:?}",
        channel.servers()
    );
    let client = EchoServiceClient::new(channel);
    for _ in 0..5 {
        assert_eq!(
            call(&client, &mut Controller::new()).await.unwrap(),
            server.addr
        );
    }
}

#[test]
fn blocking_clients_reach_clusters() {
    let servers = [TestServer::start(), TestServer::start()];
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    let channel = Channel::builder()
        .connect_cluster_blocking(&url, "rr")
        .unwrap();
    let client = brisk_tests::echo::EchoServiceBlockingClient::new(channel);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let mut cntl = Controller::new();
        client
            .echo_with(
                &mut cntl,
                EchoRequest {
                    message: "x".into(),
                },
            )
            .unwrap();
        seen.insert(cntl.remote_side().unwrap());
    }
    assert_eq!(seen.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_naming_follows_keys_within_a_second() {
    let servers = [TestServer::start(), TestServer::start()];
    let etcd = brisk_tests::etcd::Etcd::start();
    etcd.put("/echo/a", &servers[0].addr.to_string());
    let channel = Channel::builder()
        .connect_cluster(&format!("etcd://{}/echo", etcd.endpoint()), "rr")
        .await
        .unwrap();
    assert_eq!(channel.servers(), vec![servers[0].addr]);
    etcd.put("/echo/b", &format!("{} 1", servers[1].addr));
    let changed = Instant::now();
    while channel.servers().len() != 2 {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "added key not seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = distribution(&EchoServiceClient::new(channel.clone()), 10).await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    etcd.delete("/echo/a");
    let changed = Instant::now();
    while channel.servers() != vec![servers[1].addr] {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "deleted key not seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let counts = distribution(&EchoServiceClient::new(channel), 10).await;
    assert_eq!(counts.get(&servers[1].addr), Some(&10), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_prefers_the_faster_server() {
    let servers = [TestServer::start(), TestServer::start()];
    servers[0].behaviour.delay_ms.store(20, Ordering::Relaxed);
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    let client = EchoServiceClient::new(
        Channel::builder()
            .timeout(Duration::from_secs(2))
            .connect_cluster(&url, "p2c")
            .await
            .unwrap(),
    );
    let counts = distribution(&client, 200).await;
    let slow = counts.get(&servers[0].addr).copied().unwrap_or(0);
    assert!(
        slow < 20,
        "the slow server got {slow} of 200 calls: {counts:?}"
    );
}

/// Retries everything the default policy does, and also a handler's EINTERNAL.
#[derive(Debug)]
struct RetryInternalErrors;

impl brisk::RetryPolicy for RetryInternalErrors {
    fn do_retry(&self, status: &Status, _cntl: &Controller) -> bool {
        status.code() == errno::EINTERNAL || status.is_retryable()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_policy_decides_what_is_retried() {
    let servers = [TestServer::start(), TestServer::start()];
    servers[0].behaviour.failing.store(true, Ordering::Relaxed);
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    // The default policy never retries an error the handler returned.
    let default = EchoServiceClient::new(
        Channel::builder()
            .connect_cluster(&url, "rr")
            .await
            .unwrap(),
    );
    let mut failures = 0;
    for _ in 0..10 {
        if call(&default, &mut Controller::new()).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 5);
    // This one moves such calls to the other server.
    let retrying = EchoServiceClient::new(
        Channel::builder()
            .retry_policy(RetryInternalErrors)
            .connect_cluster(&url, "rr")
            .await
            .unwrap(),
    );
    let mut retried = 0;
    for _ in 0..10 {
        let mut cntl = Controller::new();
        assert_eq!(call(&retrying, &mut cntl).await.unwrap(), servers[1].addr);
        retried += cntl.retried_count();
    }
    // rr's turn also moves on a retry, so most calls meet the failing server first.
    assert!((5..=10).contains(&retried), "{retried} retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_a_server_answers_with_do_not_isolate_it() {
    let servers = [TestServer::start(), TestServer::start()];
    // A middle tier forwarding its backend's failure: codes that would mean a broken
    // connection had the connection failed.
    servers[0].behaviour.failing.store(true, Ordering::Relaxed);
    servers[0]
        .behaviour
        .fail_code
        .store(errno::ECONNREFUSED, Ordering::Relaxed);
    let url = list_url(&servers.iter().collect::<Vec<_>>(), &[]);
    let client = EchoServiceClient::new(
        Channel::builder()
            .connect_cluster(&url, "rr")
            .await
            .unwrap(),
    );
    for _ in 0..4 {
        // Retried (ECONNREFUSED is retryable) on the other server.
        assert_eq!(
            call(&client, &mut Controller::new()).await.unwrap(),
            servers[1].addr
        );
    }
    servers[0].behaviour.failing.store(false, Ordering::Relaxed);
    // Still in rotation: no health check (3 s) to wait for.
    let counts = distribution(&client, 10).await;
    assert_eq!(counts.get(&servers[0].addr), Some(&5), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_names_the_server_the_call_waited_for_as_brpc() {
    let slow = TestServer::start();
    slow.behaviour.delay_ms.store(2_000, Ordering::Relaxed);
    let channel = Channel::builder()
        .timeout(Duration::from_millis(100))
        .connect_cluster(&list_url(&[&slow], &[]), "rr")
        .await
        .unwrap();
    let status = EchoServiceClient::new(channel)
        .echo(EchoRequest {
            message: "late".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), errno::ERPCTIMEDOUT);
    assert_eq!(
        status.message(),
        format!("Reached timeout=100ms @{}", slow.addr),
        "the server, not a dump of the cluster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_timer_with_no_retry_left_ends_the_call_as_brpc() {
    // brpc checks the retries left before sending a backup: with none, the timer ends the call
    // with EBACKUPREQUEST rather than wait on.
    let slow = TestServer::start();
    slow.behaviour.delay_ms.store(2_000, Ordering::Relaxed);
    let client = EchoServiceClient::new(
        Channel::builder()
            .timeout(Duration::from_secs(5))
            .max_retry(0)
            .backup_request(Duration::from_millis(50))
            .connect_cluster(&list_url(&[&slow], &[]), "rr")
            .await
            .unwrap(),
    );
    let mut cntl = Controller::new();
    let status = call(&client, &mut cntl).await.unwrap_err();
    assert_eq!(status.code(), errno::EBACKUPREQUEST, "{status}");
    assert_eq!(
        status.message(),
        format!("Reached backup timeout=50ms @{}", slow.addr)
    );
    assert_eq!(cntl.retried_count(), 0);
    // With a retry left, the backup goes out and the call waits for an answer.
    let fast = TestServer::start();
    let client = EchoServiceClient::new(
        Channel::builder()
            .timeout(Duration::from_secs(5))
            .max_retry(1)
            .backup_request(Duration::from_millis(50))
            .connect_cluster(&list_url(&[&slow, &fast], &[]), "rr")
            .await
            .unwrap(),
    );
    for _ in 0..2 {
        assert_eq!(
            call(&client, &mut Controller::new()).await.unwrap(),
            fast.addr
        );
    }
}
