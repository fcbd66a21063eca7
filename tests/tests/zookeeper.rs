//! `zk://` naming and registration against a real ZooKeeper on loopback, with ZooKeeper's own
//! `zkCli.sh` as the independent peer: nodes it writes are listed and watched, nodes Brisk
//! registers are what it sees; a server registers, is called through `zk://` and leaves on
//! stop; a registration whose connection is cut resumes its session (the node stays), one
//! whose session expires registers again on a new one; one dropped expires with its session.

use std::time::{Duration, Instant};

use brisk::naming::{from_url, ZooKeeperRegistration};
use brisk::{errno, Channel, Server};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::naming::{next_within, node};
use brisk_tests::zookeeper::ZooKeeper;
use brisk_tests::Echo;
use tokio::time::timeout;

/// How soon a change in ZooKeeper must reach `next`.
const CHANGE_DEADLINE: Duration = Duration::from_secs(3);

/// Hang guard for calls that answer at once or fail.
const HANG_GUARD: Duration = Duration::from_secs(10);

/// The shortest session the test server grants (two ticks of 500 ms), so expiry is quick.
const SESSION: Duration = Duration::from_secs(1);

/// A session long enough that a busy machine's pauses do not end it: for the tests that
/// check that nothing changes.
const STEADY_SESSION: Duration = Duration::from_secs(4);

/// `zkCli.sh` off the async workers (it is a JVM: a second or two).
async fn cli(zk: &ZooKeeper, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::block_in_place(|| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        zk.cli(&args)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_children_zkcli_writes() {
    let zk = ZooKeeper::start();
    // The node does not exist yet: no server, and its creation is watched.
    let mut ns = from_url(&format!("zk://{}/services/echo", zk.endpoint())).expect("zk URL");
    assert_eq!(next_within(&mut ns, HANG_GUARD).await, []);

    cli(&zk, &["create", "/services", ""]).await;
    cli(&zk, &["create", "/services/echo", ""]).await;
    cli(&zk, &["create", "/services/echo/a", "127.0.0.1:8001"]).await;
    let mut list = next_within(&mut ns, CHANGE_DEADLINE).await;
    // The node's creation and its first child may come as one change or two.
    if list.is_empty() {
        list = next_within(&mut ns, CHANGE_DEADLINE).await;
    }
    assert_eq!(list, [node("127.0.0.1:8001", "")]);

    // Data with a tag; rpcx's way (the address as the name, metadata as the data); a bad
    // entry skipped.
    cli(
        &zk,
        &["create", "/services/echo/b", "127.0.0.1:8002 canary"],
    )
    .await;
    cli(
        &zk,
        &["create", "/services/echo/tcp@127.0.0.1:8003", "tps=0"],
    )
    .await;
    cli(&zk, &["create", "/services/echo/bad", "not an address"]).await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + CHANGE_DEADLINE * 3;
    while seen.len() != 3 && Instant::now() < deadline {
        seen = next_within(&mut ns, CHANGE_DEADLINE).await;
    }
    assert_eq!(
        seen,
        [
            node("127.0.0.1:8001", ""),
            node("127.0.0.1:8002", "canary"),
            node("127.0.0.1:8003", ""),
        ]
    );

    cli(&zk, &["delete", "/services/echo/a"]).await;
    assert_eq!(
        next_within(&mut ns, CHANGE_DEADLINE).await,
        [node("127.0.0.1:8002", "canary"), node("127.0.0.1:8003", "")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_registers_is_called_through_zk_and_leaves_on_stop() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
    let zk = ZooKeeper::start();
    let url = format!("zk://{}/brisk/services/echo", zk.endpoint());
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .register(&url)
        .start("127.0.0.1:0")
        .await
        .expect("the server starts and registers");
    let address = server.local_addr().to_string();

    // ZooKeeper's own client sees the node, ephemeral, with the address as its data.
    let path = format!("/brisk/services/echo/{address}");
    let got = cli(&zk, &["get", &path]).await;
    assert!(got.contains(&address), "{got}");
    let stat = cli(&zk, &["stat", &path]).await;
    assert!(
        stat.lines()
            .any(|l| l.starts_with("ephemeralOwner = ") && !l.ends_with("= 0x0")),
        "{stat}"
    );

    let channel = Channel::builder()
        .timeout(Duration::from_secs(5))
        .connect_cluster(&url, "rr")
        .await
        .expect("a zk:// channel");
    let reply = EchoServiceClient::new(channel)
        .echo(EchoRequest {
            message: "found through ZooKeeper".into(),
        })
        .await
        .expect("a call through ZooKeeper");
    assert_eq!(reply.message, "found through ZooKeeper");

    server.stop().await;
    let children = cli(&zk, &["ls", "/brisk/services/echo"]).await;
    assert!(children.contains("[]"), "deregistered on stop: {children}");
    server.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_stays_while_its_session_lives_and_leaves_on_deregister() {
    let zk = ZooKeeper::start();
    let url = format!("zk://{}/kept", zk.endpoint());
    let registration = ZooKeeperRegistration::register(&url, "10.1.2.3:80 canary", STEADY_SESSION)
        .await
        .expect("registered");
    assert_eq!(registration.path(), "/kept/10.1.2.3:80");
    let mut ns = from_url(&url).expect("zk URL");
    assert_eq!(
        next_within(&mut ns, HANG_GUARD).await,
        [node("10.1.2.3:80", "canary")]
    );

    // Past its session timeout, pings keep it alive.
    tokio::time::sleep(STEADY_SESSION + Duration::from_secs(1)).await;
    assert!(cli(&zk, &["ls", "/kept"]).await.contains("[10.1.2.3:80]"));

    registration.deregister().await.expect("deregistered");
    assert_eq!(next_within(&mut ns, CHANGE_DEADLINE).await, []);
}

/// A TCP relay to `target` whose connections can be cut (as a network failure would), and
/// which can stop accepting for a while (ZooKeeper out of reach).
struct Relay {
    address: std::net::SocketAddr,
    target: std::net::SocketAddr,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    acceptor: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let mut relay = Relay {
            address: listener.local_addr().expect("an address"),
            target,
            connections: Default::default(),
            acceptor: None,
        };
        relay.accept_on(listener);
        relay
    }

    fn accept_on(&mut self, listener: tokio::net::TcpListener) {
        let held = std::sync::Arc::clone(&self.connections);
        let target = self.target;
        self.acceptor = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let pump = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                held.lock().unwrap().push(pump);
            }
        }));
    }

    /// Closes every connection relayed so far.
    fn cut(&self) {
        for pump in self.connections.lock().unwrap().drain(..) {
            pump.abort();
        }
    }

    /// Cuts every connection and refuses new ones until [`Relay::reopen`].
    fn close(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
        }
        self.cut();
    }

    /// Accepts again, on the same address.
    async fn reopen(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.address)
            .await
            .expect("binds again");
        self.accept_on(listener);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.close();
    }
}

/// The `ephemeralOwner` (session id) of `path`, as `zkCli.sh stat` prints it.
async fn owner(zk: &ZooKeeper, path: &str) -> Option<String> {
    // A missing node is no error here.
    let (_, stat) = tokio::task::block_in_place(|| zk.try_cli(&["stat", path]));
    stat.lines()
        .find_map(|l| l.strip_prefix("ephemeralOwner = "))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_resumes_the_session_and_an_expired_one_registers_again() {
    let zk = ZooKeeper::start();
    let mut relay = Relay::start(zk.endpoint()).await;
    let url = format!("zk://{}/cut", relay.address);
    let registration = ZooKeeperRegistration::register(&url, "10.1.2.3:80", STEADY_SESSION)
        .await
        .expect("registered");
    let first = owner(&zk, "/cut/10.1.2.3:80")
        .await
        .expect("an ephemeral node");

    // A cut connection: the session is resumed on a new one, as ZooKeeper's own clients do,
    // and the node, still its own, never leaves.
    relay.cut();
    tokio::time::sleep(STEADY_SESSION + Duration::from_secs(1)).await;
    assert_eq!(owner(&zk, "/cut/10.1.2.3:80").await, Some(first.clone()));

    // Out of reach for longer than the session: it expires and its node goes; once ZooKeeper
    // is back, the node is created again on a new session.
    relay.close();
    let deadline = Instant::now() + STEADY_SESSION * 3;
    while owner(&zk, "/cut/10.1.2.3:80").await.is_some() {
        assert!(Instant::now() < deadline, "the session did not expire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    relay.reopen().await;
    let deadline = Instant::now() + HANG_GUARD;
    let mut latest = owner(&zk, "/cut/10.1.2.3:80").await;
    while latest.is_none() {
        assert!(Instant::now() < deadline, "not registered again");
        tokio::time::sleep(Duration::from_millis(200)).await;
        latest = owner(&zk, "/cut/10.1.2.3:80").await;
    }
    assert_ne!(latest, Some(first), "a new session owns it");
    registration.deregister().await.expect("deregistered");
    assert_eq!(owner(&zk, "/cut/10.1.2.3:80").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_registration_leaves_with_its_session() {
    let zk = ZooKeeper::start();
    let url = format!("zk://{}/crashed", zk.endpoint());
    let registration = ZooKeeperRegistration::register(&url, "10.1.2.3:80", SESSION)
        .await
        .expect("registered");
    let mut ns = from_url(&url).expect("zk URL");
    assert_eq!(
        next_within(&mut ns, HANG_GUARD).await,
        [node("10.1.2.3:80", "")]
    );
    // As if the process died: no pings, no delete.
    drop(registration);
    assert_eq!(
        next_within(&mut ns, SESSION * 4 + CHANGE_DEADLINE).await,
        [],
        "the node outlived its session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_zookeeper_and_bad_urls() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let err = ZooKeeperRegistration::register(
        &format!("zk://127.0.0.1:{port}/services"),
        "10.1.2.3:80",
        SESSION,
    )
    .await
    .expect_err("nobody listens");
    assert_eq!(err.code(), errno::ECONNREFUSED, "{err}");
    let mut ns = from_url(&format!("zk://127.0.0.1:{port}/services")).expect("zk URL");
    let err = timeout(HANG_GUARD, ns.next())
        .await
        .expect("fails at once")
        .expect_err("nobody listens");
    assert_eq!(err.code(), errno::ECONNREFUSED, "{err}");

    for (url, address) in [
        ("zk://127.0.0.1:2181", "10.1.2.3:80"),
        ("zk://127.0.0.1:2181/a//b", "10.1.2.3:80"),
        ("zk://127.0.0.1:2181/a", "no port"),
    ] {
        let err = ZooKeeperRegistration::register(url, address, SESSION)
            .await
            .expect_err(url);
        assert_eq!(err.code(), errno::EINVAL, "{url} {address}: {err}");
    }
    // A second ensemble member that answers when the first does not.
    let zk = ZooKeeper::start();
    let mut ns =
        from_url(&format!("zk://127.0.0.1:{port},{}/services", zk.endpoint())).expect("zk URL");
    assert_eq!(next_within(&mut ns, HANG_GUARD).await, []);
}
