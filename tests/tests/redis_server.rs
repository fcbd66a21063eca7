//! Brisk as a redis server: brpc's client bytes (`tests/golden/redis/`) answered as brpc's
//! example redis server answered them, Debian's `redis-cli` and `redis-benchmark` against the
//! `redis_server` example's store, Brisk's own redis client, and bad input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brisk::redis::{RedisCommandHandler, RedisContext, RedisReply, RedisRequest, RedisService};
use brisk::{Channel, Controller, Server};
use brisk_examples::kv_store::{self, KvStore};
use brisk_tests::echo::EchoServiceServer;
use brisk_tests::redis::redis_cli;
use brisk_tests::{wire_sample, Echo};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HANG_GUARD: Duration = Duration::from_secs(5);

fn sample(name: &str) -> Vec<u8> {
    let path = wire_sample(&format!("redis/{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn kv_server(password: Option<&str>) -> Server {
    let service = kv_store::service(Arc::new(KvStore::new()), password.map(str::to_owned));
    Server::builder()
        .redis_service(service)
        .add_service(EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await
        .expect("a server")
}

/// Sends `bytes` on a new connection and reads until `expected_len` bytes came back (or the
/// server closed).
async fn exchange(addr: SocketAddr, bytes: &[u8], expected_len: usize) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(HANG_GUARD, async {
        let mut buf = [0u8; 4096];
        while got.len() < expected_len {
            match stream.read(&mut buf).await.unwrap_or(0) {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server answers in time");
    got
}

/// brpc's example redis server, as far as the captures exercise it: `AUTH user password`
/// opens a session, `SET` and `GET` need one, anything else is unknown.
fn brpc_example_service() -> RedisService {
    type Db = std::sync::Mutex<std::collections::HashMap<Bytes, Bytes>>;
    let db: Arc<Db> = Arc::default();
    let mut service = RedisService::new();
    service
        .add_command("auth", |ctx, args| match args {
            [_, user, password] if &user[..] == b"db1" && &password[..] == b"123456" => {
                ctx.set_session(user.clone());
                RedisReply::ok()
            }
            _ => RedisReply::error("ERR invalid user or password"),
        })
        .unwrap();
    let store = Arc::clone(&db);
    service
        .add_command("set", move |ctx, args| {
            if ctx.session::<Bytes>().is_none() {
                return RedisReply::error("ERR No auth session");
            }
            store
                .lock()
                .unwrap()
                .insert(args[1].clone(), args[2].clone());
            RedisReply::ok()
        })
        .unwrap();
    service
        .add_command("get", move |ctx, args| {
            if ctx.session::<Bytes>().is_none() {
                return RedisReply::error("ERR No auth session");
            }
            db.lock().unwrap().get(&args[1]).cloned().into()
        })
        .unwrap();
    service
}

#[tokio::test]
async fn brpcs_client_bytes_get_brpcs_server_replies() {
    let server = Server::builder()
        .redis_service(brpc_example_service())
        .start("127.0.0.1:0")
        .await
        .unwrap();
    // One connection, as brpc's client used: AUTH, SET, GET, then the pipeline of five.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    for name in ["auth", "set_a_b", "get_a", "pipeline5"] {
        let request = if name == "auth" {
            sample("brpcsrv_auth_request")
        } else {
            sample(&format!("{name}_request"))
        };
        let expected = sample(&format!("brpcsrv_{name}_response"));
        stream.write_all(&request).await.unwrap();
        let mut got = vec![0u8; expected.len()];
        tokio::time::timeout(HANG_GUARD, stream.read_exact(&mut got))
            .await
            .expect("answered in time")
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{name}"
        );
    }
}

// redis-cli blocks its thread: the server runs on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_runs_every_command_of_the_example() {
    let server = kv_server(None).await;
    let addr = server.local_addr();
    let cli = |args: &[&str]| {
        let out = redis_cli(addr, args);
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["PING", "hi there"]), "hi there");
    assert_eq!(cli(&["SET", "k", "hello world"]), "OK");
    assert_eq!(cli(&["GET", "k"]), "hello world");
    assert_eq!(cli(&["GET", "missing"]), "");
    assert_eq!(cli(&["INCR", "n"]), "1");
    assert_eq!(cli(&["INCR", "n"]), "2");
    assert_eq!(
        cli(&["INCR", "k"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(cli(&["MGET", "k", "missing", "n"]), "hello world\n\n2");
    assert_eq!(cli(&["EXPIRE", "k", "100"]), "1");
    // 100, or 99 on a machine slow enough to spend half a second between the two runs.
    let ttl = |key: &str| cli(&["TTL", key]).parse::<i64>().unwrap();
    assert!((99..=100).contains(&ttl("k")));
    assert_eq!(cli(&["TTL", "n"]), "-1");
    assert_eq!(cli(&["TTL", "missing"]), "-2");
    assert_eq!(cli(&["SET", "t", "v", "PX", "100000"]), "OK");
    assert!((99..=100).contains(&ttl("t")));
    assert_eq!(
        cli(&["EXPIRE", "t", "9223372036854775807"]),
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(cli(&["DEL", "k", "n", "missing"]), "2");
    assert_eq!(cli(&["GET", "k"]), "");
    assert_eq!(cli(&["HGET", "h", "f"]), "ERR unknown command `hget`");
    assert_eq!(
        cli(&["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        cli(&["AUTH", "x"]),
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
}

// redis-cli blocks its thread: the server runs on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_guards_the_store() {
    let server = kv_server(Some("secret")).await;
    let addr = server.local_addr();
    // What redis-cli prints, its warnings (a failed AUTH) included.
    let cli = |args: &[&str]| {
        let out = redis_cli(addr, args);
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        text.trim().to_owned()
    };
    assert_eq!(cli(&["GET", "k"]), "NOAUTH Authentication required.");
    assert_eq!(
        cli(&["-a", "secret", "--no-auth-warning", "SET", "k", "v"]),
        "OK"
    );
    assert!(cli(&["-a", "wrong", "--no-auth-warning", "GET", "k"]).contains("WRONGPASS"));
    // Brisk's client with its authenticator.
    let channel = Channel::builder()
        .protocol("redis")
        .authenticator(Arc::new(brisk::redis::RedisAuthenticator::new("secret")))
        .connect(&addr.to_string())
        .await
        .unwrap();
    let mut request = RedisRequest::new();
    request.add_command(["GET", "k"]);
    let response = channel
        .redis(&mut Controller::new(), &request)
        .await
        .unwrap();
    assert_eq!(response.reply(0), &RedisReply::bulk("v"));
}

#[tokio::test]
async fn redis_benchmark_pipelined_gets_no_error() {
    let server = kv_server(None).await;
    let addr = server.local_addr();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .args(["-t", "set,get", "-n", "20000", "-P", "16", "-c", "20", "-q"])
            .output()
            .expect("redis-benchmark runs (apt-get install -y redis-tools)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let finals: Vec<&str> = stdout
        .split(['\r', '\n'])
        .filter(|line| line.contains("requests per second"))
        .collect();
    assert!(finals.iter().any(|l| l.starts_with("SET:")), "{stdout}");
    assert!(finals.iter().any(|l| l.starts_with("GET:")), "{stdout}");
    assert!(
        !stdout.contains("ERR") && !stderr.contains("ERR"),
        "{stdout}\n{stderr}"
    );
}

#[tokio::test]
async fn brisks_client_and_rpc_share_the_port_with_redis() {
    let server = kv_server(None).await;
    let addr = server.local_addr().to_string();
    let redis = Channel::builder()
        .protocol("redis")
        .connect(&addr)
        .await
        .unwrap();
    let mut request = RedisRequest::new();
    for i in 0..100 {
        request.add_command(["SET".to_string(), format!("k{i}"), format!("v{i}")]);
    }
    request.add_command(["MGET", "k0", "k99", "nope"]);
    let response = redis.redis(&mut Controller::new(), &request).await.unwrap();
    assert_eq!(response.reply_count(), 101);
    assert_eq!(
        response.reply(100),
        &RedisReply::Array(vec!["v0".into(), "v99".into(), RedisReply::Nil])
    );
    // The same port answers baidu_std.
    let rpc = Channel::connect(&addr).await.unwrap();
    let echoed = brisk_tests::echo::EchoServiceClient::new(rpc)
        .echo(brisk_tests::echo::EchoRequest {
            message: "hi".into(),
        })
        .await
        .unwrap();
    assert_eq!(echoed.message, "hi");
}

#[tokio::test]
async fn pipelined_and_inline_commands_are_answered_in_order() {
    let server = kv_server(None).await;
    let addr = server.local_addr();
    let mut batch = Vec::new();
    for _ in 0..50 {
        batch.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n");
    }
    let expected: String = (1..=50).map(|i| format!(":{i}\r\n")).collect();
    let got = exchange(addr, &batch, expected.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), expected);
    // Inline commands, as telnet sends them, with empty lines skipped.
    let got = exchange(addr, b"PING\r\n\r\nSET s 'a b'\r\nGET s\n", 21).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+PONG\r\n+OK\r\n$3\r\na b\r\n"
    );
}

struct SlowEcho;

impl RedisCommandHandler for SlowEcho {
    async fn run(&self, ctx: &mut RedisContext, args: &[Bytes]) -> RedisReply {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let _ = ctx.remote_side();
        args.get(1).cloned().into()
    }
}

#[tokio::test]
async fn async_handlers_keep_the_order() {
    let mut service = RedisService::new();
    service.add_async_command("slowecho", SlowEcho).unwrap();
    service
        .add_command("fastecho", |_, args| args.get(1).cloned().into())
        .unwrap();
    let server = Server::builder()
        .redis_service(service)
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let redis = Channel::builder()
        .protocol("redis")
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let mut request = RedisRequest::new();
    request
        .add_command(["SLOWECHO", "1"])
        .add_command(["fastecho", "2"])
        .add_command(["SlowEcho", "3"]);
    let response = redis.redis(&mut Controller::new(), &request).await.unwrap();
    assert_eq!(
        response.replies(),
        [
            RedisReply::bulk("1"),
            RedisReply::bulk("2"),
            RedisReply::bulk("3")
        ]
    );
}

#[tokio::test]
async fn bad_input_gets_a_protocol_error_and_the_connection_closes() {
    let server = kv_server(None).await;
    let addr = server.local_addr();
    let cases: [&[u8]; 4] = [
        b"*1\r\n:1\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$abc\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\nkXY",
    ];
    for bad in cases {
        let got = exchange(addr, bad, usize::MAX).await;
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("-ERR Protocol error"),
            "{:?} -> {text:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // A command claiming more than max_body_size: refused at once, not waited for.
    let small = Server::builder()
        .redis_service(kv_store::service(Arc::new(KvStore::new()), None))
        .max_body_size(1024)
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let got = exchange(
        small.local_addr(),
        b"*2\r\n$3\r\nSET\r\n$100000\r\n",
        usize::MAX,
    )
    .await;
    assert!(String::from_utf8_lossy(&got).starts_with("-ERR Protocol error"));
    // Commands before the bad one are answered.
    let got = exchange(addr, b"PING\r\n*1\r\n:1\r\n", usize::MAX).await;
    assert!(String::from_utf8_lossy(&got).starts_with("+PONG\r\n-ERR Protocol error"));
}

#[tokio::test]
async fn a_server_without_a_redis_service_closes_redis_connections() {
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await
        .unwrap();
    // Long enough for every protocol to tell (a shorter one waits for more bytes, as it might
    // still become nshead's 36-byte header: brpc waits too).
    let command = format!("*2\r\n$4\r\nECHO\r\n$40\r\n{}\r\n", "x".repeat(40));
    let got = exchange(server.local_addr(), command.as_bytes(), usize::MAX).await;
    assert!(got.is_empty(), "closed without an answer: {got:?}");
}
