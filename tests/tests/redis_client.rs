//! Brisk's redis client: against brpc 1.17's bytes (`tests/golden/redis/`, see its README),
//! against a real redis-server (Debian's, started on a free loopback port and stopped after),
//! and against a fake server that answers badly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use brisk::codec::MessageCodec;
use brisk::redis::{RedisAuthenticator, RedisReply, RedisRequest, RedisResponse, Resp};
use brisk::{errno, Channel, ConnectionType, Controller};
use brisk_tests::redis::RedisServer;
use brisk_tests::wire_sample;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn sample(name: &str) -> Vec<u8> {
    let path = wire_sample(&format!("redis/{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request(commands: &[&[&str]]) -> RedisRequest {
    let mut request = RedisRequest::new();
    for command in commands {
        request.add_command(command.iter().copied());
    }
    request
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::builder()
        .protocol("redis")
        .timeout(Duration::from_secs(5))
        .connect(&addr.to_string())
        .await
        .expect("a redis channel")
}

async fn call(channel: &Channel, request: &RedisRequest) -> Result<RedisResponse, brisk::Status> {
    channel.redis(&mut Controller::new(), request).await
}

/// A server that reads one request of `expected` bytes and answers `reply`, handing back
/// what it read.
async fn scripted_server(
    expected: usize,
    reply: Vec<u8>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut got = vec![0u8; expected];
        stream.read_exact(&mut got).await.unwrap();
        stream.write_all(&reply).await.unwrap();
        // Keep the connection open until the client is done.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        got
    });
    (addr, task)
}

#[tokio::test]
async fn requests_are_brpcs_bytes_and_brpcs_replies_parse() {
    let cases: [(&str, &[&[&str]]); 3] = [
        ("set_a_b", &[&["SET", "a", "b"]]),
        ("get_a", &[&["GET", "a"]]),
        (
            "pipeline5",
            &[
                &["SET", "k1", "hello world"],
                &["GET", "k1"],
                &["INCR", "counter"],
                &["GET", "nosuchkey"],
                &["HGET", "a", "f"],
            ],
        ),
    ];
    let mut answers = HashMap::new();
    for (name, commands) in cases {
        let expected = sample(&format!("{name}_request"));
        let (addr, server) =
            scripted_server(expected.len(), sample(&format!("{name}_response"))).await;
        let response = call(&channel(addr).await, &request(commands))
            .await
            .unwrap();
        assert_eq!(server.await.unwrap(), expected, "{name}: brpc's bytes");
        answers.insert(name, response);
    }
    assert_eq!(answers["set_a_b"].replies(), [RedisReply::ok()]);
    assert_eq!(answers["get_a"].replies(), [RedisReply::bulk("b")]);
    assert_eq!(
        answers["pipeline5"].replies(),
        [
            RedisReply::ok(),
            RedisReply::bulk("hello world"),
            RedisReply::Integer(1),
            RedisReply::Nil,
            RedisReply::error("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ]
    );
    // As brpc's client prints them; a command's error does not fail the call.
    assert_eq!(
        answers["pipeline5"].to_string(),
        "[OK, \"hello world\", (integer) 1, (nil), (error) WRONGTYPE Operation against a key holding the wrong kind of value]"
    );
    // brpc's own redis server's replies parse too.
    let brpc_server: RedisResponse =
        <Resp as MessageCodec<RedisResponse>>::decode(sample("brpcsrv_pipeline5_response").into())
            .unwrap();
    assert_eq!(
        brpc_server.replies(),
        [
            RedisReply::ok(),
            RedisReply::bulk("hello world"),
            RedisReply::error("ERR unknown command `incr`"),
            RedisReply::Nil,
            RedisReply::error("ERR unknown command `hget`"),
        ]
    );
}

#[tokio::test]
async fn every_reply_kind_from_a_real_redis() {
    let server = RedisServer::start();
    let channel = channel(server.addr()).await;
    let response = call(
        &channel,
        &request(&[
            &["SET", "s", "hello world"],
            &["GET", "s"],
            &["GET", "missing"],
            &["INCRBY", "n", "-5"],
            &["HGET", "s", "f"],
            &["RPUSH", "list", "a", "b", ""],
            &["LRANGE", "list", "0", "-1"],
            &["EVAL", "return {1, {'x', {2}}, 'y'}", "0"],
            &["NOSUCHCOMMAND"],
            &["SET", "bin", "\u{0}\r\n\u{ff}"],
            &["GET", "bin"],
        ]),
    )
    .await
    .unwrap();
    let bulk = RedisReply::bulk;
    assert_eq!(
        response.replies(),
        [
            RedisReply::ok(),
            bulk("hello world"),
            RedisReply::Nil,
            RedisReply::Integer(-5),
            RedisReply::error("WRONGTYPE Operation against a key holding the wrong kind of value"),
            RedisReply::Integer(3),
            RedisReply::Array(vec![bulk("a"), bulk("b"), bulk("")]),
            RedisReply::Array(vec![
                RedisReply::Integer(1),
                RedisReply::Array(vec![
                    bulk("x"),
                    RedisReply::Array(vec![RedisReply::Integer(2)])
                ]),
                bulk("y"),
            ]),
            RedisReply::error("ERR unknown command 'NOSUCHCOMMAND', with args beginning with: "),
            RedisReply::ok(),
            bulk("\u{0}\r\n\u{ff}"),
        ]
    );
}

#[tokio::test]
async fn resp3_replies_after_hello_3() {
    let server = RedisServer::start();
    // HELLO 3 switches its connection: keep it to this channel.
    let channel = Channel::builder()
        .protocol("redis")
        .connection_group("resp3")
        .connect(&server.addr().to_string())
        .await
        .unwrap();
    let response = call(
        &channel,
        &request(&[
            &["HELLO", "3"],
            &["HSET", "h", "f", "v"],
            &["HGETALL", "h"],
            &["SADD", "set", "m"],
            &["SMEMBERS", "set"],
            &["GET", "missing"],
            &["ZADD", "z", "3.5", "m"],
            &["ZSCORE", "z", "m"],
            &["EVAL", "redis.setresp(3); return true", "0"],
        ]),
    )
    .await
    .unwrap();
    let RedisReply::Map(hello) = response.reply(0) else {
        panic!("HELLO 3 answers a map: {}", response.reply(0));
    };
    assert!(hello.contains(&(RedisReply::bulk("proto"), RedisReply::Integer(3))));
    assert_eq!(
        response.replies()[1..],
        [
            RedisReply::Integer(1),
            RedisReply::Map(vec![(RedisReply::bulk("f"), RedisReply::bulk("v"))]),
            RedisReply::Integer(1),
            RedisReply::Set(vec![RedisReply::bulk("m")]),
            RedisReply::Nil,
            RedisReply::Integer(1),
            RedisReply::Double(3.5),
            RedisReply::Boolean(true),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelines_from_64_callers_get_their_own_replies() {
    let server = RedisServer::start();
    let channel = channel(server.addr()).await;
    let mut callers = Vec::new();
    for caller in 0..64 {
        let channel = channel.clone();
        callers.push(tokio::spawn(async move {
            // A pipeline of 1000 commands: 500 SETs and the 500 GETs reading them back.
            let mut big = RedisRequest::new();
            for i in 0..500 {
                big.add_command([
                    "SET".to_string(),
                    format!("k:{caller}:{i}"),
                    format!("v{caller}.{i}"),
                ]);
            }
            for i in 0..500 {
                big.add_command(["GET".to_string(), format!("k:{caller}:{i}")]);
            }
            let response = call(&channel, &big).await.unwrap();
            assert_eq!(response.reply_count(), 1000);
            for i in 0..500 {
                assert_eq!(response.reply(i), &RedisReply::ok());
                assert_eq!(
                    response.reply(500 + i).as_str(),
                    Some(format!("v{caller}.{i}").as_str()),
                    "caller {caller} reads its own value {i}"
                );
            }
            // Then small calls interleaved with the other callers'.
            for i in 0..50 {
                let one = request(&[&["INCR", &format!("counter:{caller}")]]);
                let response = call(&channel, &one).await.unwrap();
                assert_eq!(response.reply(0), &RedisReply::Integer(i + 1));
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
}

#[tokio::test]
async fn auth_and_select_go_once_per_connection() {
    let server = RedisServer::start_with(&["--requirepass", "secret"]);
    let auth = RedisAuthenticator::new("secret").with_db(3);
    let channel = Channel::builder()
        .protocol("redis")
        .authenticator(Arc::new(auth))
        .connect(&server.addr().to_string())
        .await
        .unwrap();
    for i in 0..3 {
        let response = call(&channel, &request(&[&["SET", "in3", &i.to_string()]]))
            .await
            .unwrap();
        assert_eq!(response.reply(0), &RedisReply::ok());
    }
    // The key is in database 3, and the handshake went once: one connection, one AUTH.
    let got = server.cli(&["-a", "secret", "--no-auth-warning", "-n", "3", "GET", "in3"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "2");
    // Three calls, one AUTH and one SELECT (the other three AUTHs and the other SELECT are
    // the test's own: the start-up check that the server is ours, and redis-cli's `-a` on both
    // runs and `-n 3` on the first).
    let stats = server.cli(&["-a", "secret", "--no-auth-warning", "INFO", "commandstats"]);
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.contains("cmdstat_auth:calls=4,"), "{stats}");
    assert!(stats.contains("cmdstat_select:calls=2,"), "{stats}");
    assert!(stats.contains("cmdstat_set:calls=3,"), "{stats}");

    // A wrong password fails the calls with ERPCAUTH, naming redis's answer.
    let wrong = Channel::builder()
        .protocol("redis")
        .max_retry(0)
        .connection_group("wrong")
        .authenticator(Arc::new(RedisAuthenticator::new("guess")))
        .connect(&server.addr().to_string())
        .await
        .unwrap();
    // Calls queued behind the refused handshake fail with it too (none reads NOAUTH).
    let queued: Vec<_> = (0..8)
        .map(|_| {
            let wrong = wrong.clone();
            tokio::spawn(async move { call(&wrong, &request(&[&["GET", "in3"]])).await })
        })
        .collect();
    for call in queued {
        let error = call.await.unwrap().unwrap_err();
        assert!(
            [errno::ERPCAUTH, errno::EHOSTDOWN].contains(&error.code()),
            "{error}"
        );
    }
    let error = call(&wrong, &request(&[&["GET", "in3"]]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), errno::ERPCAUTH, "{error}");
    assert!(
        error
            .message()
            .starts_with("Fail to authenticate with Redis: (error) WRONGPASS"),
        "{error}"
    );
    // Without any credential, redis answers the command itself with NOAUTH.
    let none = Channel::builder()
        .protocol("redis")
        .connection_group("none")
        .connect(&server.addr().to_string())
        .await
        .unwrap();
    let response = call(&none, &request(&[&["GET", "in3"]])).await.unwrap();
    assert!(response.reply(0).as_str().unwrap().starts_with("NOAUTH"));
}

#[tokio::test]
async fn a_server_restart_fails_calls_cleanly_then_they_succeed() {
    let mut server = RedisServer::start();
    let channel = Channel::builder()
        .protocol("redis")
        .timeout(Duration::from_secs(2))
        .max_retry(0)
        .connect(&server.addr().to_string())
        .await
        .unwrap();
    let set = request(&[&["SET", "x", "1"]]);
    call(&channel, &set).await.unwrap();
    server.stop();
    let error = call(&channel, &set).await.unwrap_err();
    assert!(
        [
            errno::EFAILEDSOCKET,
            errno::EEOF,
            errno::ECONNREFUSED,
            errno::EHOSTDOWN
        ]
        .contains(&error.code()),
        "a clean connection error, got {error}"
    );
    server.restart();
    // The channel reconnects; the restarted server is empty.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let response = loop {
        match call(
            &channel,
            &request(&[&["GET", "x"], &["SET", "x", "2"], &["GET", "x"]]),
        )
        .await
        {
            Ok(response) => break response,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no call succeeded after the restart: {e}"),
        }
    };
    assert_eq!(
        response.replies(),
        [RedisReply::Nil, RedisReply::ok(), RedisReply::bulk("2")]
    );
}

#[tokio::test]
async fn pooled_and_short_connections_work_too() {
    let server = RedisServer::start();
    for kind in [ConnectionType::Pooled, ConnectionType::Short] {
        let channel = Channel::builder()
            .protocol("redis")
            .connection_type(kind)
            .connect(&server.addr().to_string())
            .await
            .unwrap();
        let key = format!("kind:{kind}");
        let response = call(&channel, &request(&[&["SET", &key, "v"], &["GET", &key]]))
            .await
            .unwrap();
        assert_eq!(
            response.replies(),
            [RedisReply::ok(), RedisReply::bulk("v")]
        );
    }
}

#[tokio::test]
async fn a_cluster_keeps_each_key_on_one_server() {
    let servers = [
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::start(),
    ];
    let list = servers
        .iter()
        .map(|s| s.addr().to_string())
        .collect::<Vec<_>>()
        .join(",");
    for lb in ["c_murmurhash", "c_md5"] {
        let cluster = Channel::builder()
            .protocol("redis")
            .connect_cluster(&format!("list://{list}"), lb)
            .await
            .unwrap();
        for i in 0..60 {
            let key = format!("{lb}:key{i}");
            let response = call(&cluster, &request(&[&["SET", &key, "v"]]))
                .await
                .unwrap();
            assert_eq!(response.reply(0), &RedisReply::ok());
            // Reading back through the cluster finds it, every time.
            for _ in 0..2 {
                let response = call(&cluster, &request(&[&["GET", &key]])).await.unwrap();
                assert_eq!(response.reply(0), &RedisReply::bulk("v"), "{key}");
            }
        }
        // Each key is on exactly one server, and the keys spread over all three.
        let mut per_server = Vec::new();
        for server in &servers {
            let direct = channel(server.addr()).await;
            let mut exists = RedisRequest::new();
            for i in 0..60 {
                exists.add_command(["EXISTS".to_string(), format!("{lb}:key{i}")]);
            }
            let response = call(&direct, &exists).await.unwrap();
            per_server.push(
                response
                    .replies()
                    .iter()
                    .map(|r| r.as_integer().unwrap())
                    .collect::<Vec<_>>(),
            );
        }
        for i in 0..60 {
            let copies: i64 = per_server.iter().map(|s| s[i]).sum();
            assert_eq!(copies, 1, "{lb}:key{i} is on one server");
        }
        for (n, keys) in per_server.iter().enumerate() {
            assert!(keys.iter().sum::<i64>() > 0, "{lb}: server {n} got no key");
        }
    }
}

#[tokio::test]
async fn bad_requests_fail_with_erequest_before_the_wire() {
    let server = RedisServer::start();
    let channel = channel(server.addr()).await;
    let error = call(&channel, &RedisRequest::new()).await.unwrap_err();
    assert_eq!(error.code(), errno::EREQUEST);
    assert!(
        error.message().contains("request byte size is empty"),
        "{error}"
    );
    let mut broken = RedisRequest::new();
    broken.add_command(Vec::<&str>::new());
    assert_eq!(
        call(&channel, &broken).await.unwrap_err().code(),
        errno::EREQUEST
    );
    // The connection is untouched.
    let response = call(&channel, &request(&[&["PING"]])).await.unwrap();
    assert_eq!(response.reply(0), &RedisReply::status("PONG"));
}

/// A server that answers each connection's first request with `reply`, then closes it or not.
async fn bad_server(reply: &'static [u8], close: bool) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if stream.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let _ = stream.write_all(reply).await;
                if !close {
                    let _ = stream.read(&mut buf).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn bad_replies_fail_the_call_with_eresponse_and_never_hang() {
    let cases: [(&[u8], bool, i32); 5] = [
        (b"?what\r\n", false, errno::ERESPONSE),
        (b"$abc\r\n", false, errno::ERESPONSE),
        (b"$5\r\nhelloXX", false, errno::ERESPONSE),
        (b"$99999999999\r\n", false, errno::ERESPONSE),
        (b"$10\r\nhel", true, errno::EEOF),
    ];
    for (reply, close, code) in cases {
        let addr = bad_server(reply, close).await;
        let channel = Channel::builder()
            .protocol("redis")
            .max_retry(0)
            .timeout(Duration::from_secs(5))
            .connect(&addr.to_string())
            .await
            .unwrap();
        let error = call(&channel, &request(&[&["GET", "a"]]))
            .await
            .unwrap_err();
        assert_eq!(
            error.code(),
            code,
            "{:?}: {error}",
            String::from_utf8_lossy(reply)
        );
    }
    // More replies than commands: the call gets its own, the extra closes the connection.
    let addr = bad_server(b"+OK\r\n+EXTRA\r\n", false).await;
    let channel = channel(addr).await;
    let first = call(&channel, &request(&[&["SET", "a", "b"]])).await;
    assert_eq!(first.unwrap().reply(0), &RedisReply::ok());
    // The extra reply never answers the next call: it fails with the connection or gets its
    // own reply on a new one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Ok(second) = call(&channel, &request(&[&["SET", "a", "b"]])).await {
        assert_eq!(second.reply(0), &RedisReply::ok(), "not the extra reply");
    }
}
