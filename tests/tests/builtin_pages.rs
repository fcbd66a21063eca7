//! The builtin pages on a server's own port: `/status` and `/vars` count every call of every
//! protocol (errors by code), `/brpc_metrics` parses with Prometheus's own parser
//! (`prometheus_client`, PyPI), browsers get HTML and curl text, HTTP/2 is served too, and
//! `builtin_services(false)` hides them.

use std::process::Command;
use std::time::Duration;

use brisk::errno;
use brisk::Server;
use brisk_tests::test::{FailRequest, SleepRequest, TestServiceServer};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn server(configure: impl FnOnce(brisk::ServerBuilder) -> brisk::ServerBuilder) -> Server {
    let (service, arrivals) = brisk_tests::TestImpl::new();
    // The test does not wait on arrivals.
    std::mem::forget(arrivals);
    configure(Server::builder().add_service(TestServiceServer::new(service)))
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

/// `GET path` over HTTP/1.1 with `user_agent`: (status code, content type, body).
async fn get(server: &Server, path: &str, user_agent: &str) -> (u16, String, String) {
    get_at(server.local_addr(), path, user_agent).await
}

async fn get_at(addr: std::net::SocketAddr, path: &str, user_agent: &str) -> (u16, String, String) {
    brisk_tests::http_get(addr, path, user_agent).await
}

/// `/vars/NAME`'s value.
async fn var(server: &Server, name: &str) -> u64 {
    let (status, _, body) = get(server, &format!("/vars/{name}"), "curl/8").await;
    assert_eq!(status, 200, "{name}: {body}");
    let value = body.trim().rsplit(" : ").next().unwrap();
    value.parse().unwrap_or_else(|_| panic!("{name}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_of_every_protocol_is_counted_with_errors_by_code() {
    let server = server(|b| b).await;
    let port = server.local_addr().port();
    let mut made = 0;
    // Channels keep their figures while they live: keep them.
    let mut clients = Vec::new();
    for protocol in ["baidu_std", "h2:grpc", "http", "hulu_pbrpc", "sofa_pbrpc"] {
        let client = brisk_tests::test_client(&server, protocol, TIMEOUT).await;
        clients.push(client.clone());
        for _ in 0..5 {
            let request = SleepRequest {
                millis: 0,
                tag: "t".into(),
            };
            client.sleep(request).await.expect(protocol);
            made += 1;
        }
        for code in [errno::EINTERNAL, errno::EPERM, errno::EPERM] {
            let request = FailRequest {
                code,
                text: "no".into(),
                panic: false,
            };
            let status = client.fail(request).await.expect_err(protocol);
            assert_eq!(status.code(), code, "{protocol}");
        }
    }
    let prefix = format!("rpc_server_{port}_brisk_test_test_service");
    assert_eq!(var(&server, &format!("{prefix}_sleep_count")).await, made);
    assert_eq!(var(&server, &format!("{prefix}_sleep_error")).await, 0);
    assert_eq!(var(&server, &format!("{prefix}_fail_count")).await, 0);
    assert_eq!(var(&server, &format!("{prefix}_fail_error")).await, 15);
    assert_eq!(var(&server, &format!("{prefix}_fail_concurrency")).await, 0);
    // The channels' side: channels to one server share their figures.
    let client = format!("rpc_client_127_0_0_1_{port}_brisk_test_test_service");
    assert_eq!(var(&server, &format!("{client}_sleep_count")).await, made);
    assert_eq!(var(&server, &format!("{client}_fail_error")).await, 15);
    // Bytes of requests and responses, the same on both sides.
    let request = SleepRequest {
        millis: 0,
        tag: "t".into(),
    };
    let request_bytes = var(&server, &format!("{prefix}_sleep_request_bytes")).await;
    assert_eq!(
        request_bytes,
        made * prost::Message::encoded_len(&request) as u64
    );
    assert_eq!(
        var(&server, &format!("{client}_sleep_request_bytes")).await,
        request_bytes
    );
    let response_bytes = var(&server, &format!("{prefix}_sleep_response_bytes")).await;
    assert!(response_bytes > 0);
    assert_eq!(
        var(&server, &format!("{client}_sleep_response_bytes")).await,
        response_bytes
    );
    let (status, content_type, page) = get(&server, "/status", "curl/8").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        page.contains("brisk.test.TestService\n  Sleep\n    count: 25  error: 0"),
        "{page}"
    );
    assert!(page.contains("error: 15 (EPERM×10, EINTERNAL×5)"), "{page}");
    // A glob, percent-encoded or not; a name that matches nothing is a 404.
    let (_, _, listed) = get(&server, &format!("/vars/{prefix}_sleep_%2Acount"), "curl/8").await;
    assert_eq!(listed.trim(), format!("{prefix}_sleep_count : 25"));
    let (status, _, _) = get(&server, "/vars/no_such_metric", "curl/8").await;
    assert_eq!(status, 404);
}

/// One row of a `/connections` table, by column name.
type Row = std::collections::HashMap<String, String>;

/// `/connections` as curl reads it: the server's rows and the client ones.
async fn connections(server: &Server) -> (Vec<Row>, Vec<Row>) {
    let (status, _, page) = get(server, "/connections", "curl/8").await;
    assert_eq!(status, 200, "{page}");
    let mut tables = page.split("\n\n").map(|table| {
        let mut lines = table.lines().skip(1);
        let head: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(" | ")
            .map(|c| c.trim().to_owned())
            .collect();
        lines
            .map(|line| {
                head.iter()
                    .cloned()
                    .zip(line.split(" | ").map(|c| c.trim().to_owned()))
                    .collect::<Row>()
            })
            .collect::<Vec<Row>>()
    });
    (tables.next().unwrap(), tables.next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_shows_what_each_connection_carried_on_both_sides() {
    let server = server(|b| b).await;
    let addr = server.local_addr().to_string();
    let mut clients = Vec::new();
    for (protocol, calls) in [("baidu_std", 10), ("h2:grpc", 4), ("http", 3)] {
        let client = brisk_tests::test_client(&server, protocol, TIMEOUT).await;
        for _ in 0..calls {
            let request = SleepRequest {
                millis: 0,
                tag: "t".into(),
            };
            client.sleep(request).await.expect(protocol);
        }
        clients.push((protocol, calls, client));
    }
    // The two ends of each connection agree on what crossed it, once the last writes are
    // counted.
    let mut last = String::new();
    for _ in 0..50 {
        let (served, opened) = connections(&server).await;
        let mut agreed = 0;
        for (protocol, calls, _) in &clients {
            let client_end = opened
                .iter()
                .find(|r| r["remote"] == addr && r["protocol"] == *protocol);
            let server_end =
                client_end.and_then(|c| served.iter().find(|s| s["remote"] == c["local"]));
            let (Some(client_end), Some(server_end)) = (client_end, server_end) else {
                last = format!("{protocol}: no pair in {served:?} {opened:?}");
                continue;
            };
            // The server names the connection by what it detected: HTTP/2 carries gRPC and
            // more.
            let detected = if *protocol == "h2:grpc" {
                "h2"
            } else {
                protocol
            };
            assert_eq!(server_end["protocol"], detected);
            assert_eq!(server_end["tls"], "no");
            let calls = calls.to_string();
            let pair_agrees = server_end["in_msgs"] == calls
                && server_end["out_msgs"] == calls
                && client_end["in_msgs"] == calls
                && client_end["out_msgs"] == calls
                && server_end["in_bytes"] == client_end["out_bytes"]
                && server_end["out_bytes"] == client_end["in_bytes"]
                && server_end["in_bytes"] != "0";
            if pair_agrees {
                agreed += 1;
            } else {
                last = format!("{protocol}: server {server_end:?} client {client_end:?}");
            }
        }
        if agreed == clients.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!("the ends disagree: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_shows_the_last_seconds_rates() {
    let server = server(|b| b).await;
    let client = brisk_tests::test_client(&server, "baidu_std", TIMEOUT).await;
    let began = std::time::Instant::now();
    // Calls for over two seconds: one whole second of the sampler's falls inside.
    while began.elapsed() < Duration::from_millis(2300) {
        let request = SleepRequest {
            millis: 1,
            tag: "t".into(),
        };
        client.sleep(request).await.unwrap();
    }
    // The last reply reached the client, but the server's writer counts its bytes as written
    // only once its write returns, which may be a moment after: ask until it has.
    let mut asked = 0;
    let row = loop {
        let (served, _) = connections(&server).await;
        let row = served
            .into_iter()
            .find(|r| r["protocol"] == "baidu_std")
            .expect("the baidu_std connection");
        asked += 1;
        if row["unwritten"] == "0" || asked == 25 {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    };
    let per_second: u64 = row["in_msgs/s"].parse().unwrap();
    // Each call sleeps 1 ms: at most about a thousand a second, and surely more than ten.
    assert!((10..=1100).contains(&per_second), "{row:?}");
    assert!(
        row["in_bytes/s"].parse::<u64>().unwrap() > per_second * 10,
        "{row:?}"
    );
    assert_eq!(row["unwritten"], "0", "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotspots_draws_a_cpu_profile_as_a_flame_graph() {
    let server = server(|b| b).await;
    let client = brisk_tests::test_client(&server, "baidu_std", TIMEOUT).await;
    // Work to see: calls the whole time.
    let _traffic = AbortOnDrop(tokio::spawn(async move {
        loop {
            let request = SleepRequest {
                millis: 0,
                tag: "t".into(),
            };
            if client.sleep(request).await.is_err() {
                // A call that fails before any I/O (the server gone) returns without waiting:
                // yield, or this loop never lets the runtime stop it.
                tokio::task::yield_now().await;
            }
        }
    }));
    let addr = server.local_addr();
    let profile =
        tokio::spawn(async move { get_at(addr, "/hotspots/cpu?seconds=2", "curl/8").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // One profile at a time.
    let (status, _, body) = get(&server, "/hotspots/cpu?seconds=1", "curl/8").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "Another profiler is running, try again later\n")
    );
    let (status, content_type, svg) = profile.await.unwrap();
    assert_eq!(status, 200, "{svg}");
    assert_eq!(content_type, "image/svg+xml");
    assert!(svg.contains("<svg"), "{svg}");
    // Frames of the server's own code are in it, by name.
    assert!(svg.contains("brisk::"), "no brisk frame in the profile");
    let (status, _, body) = get(&server, "/hotspots/cpu?seconds=0", "curl/8").await;
    assert_eq!(
        (status, body.as_str()),
        (400, "`seconds=0' is not a whole number from 1 to 60\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_channel_keeps_figures_for_the_cluster_and_for_each_server() {
    let (a, b) = (server(|s| s).await, server(|s| s).await);
    let url = format!("list://{},{}", a.local_addr(), b.local_addr());
    let channel = brisk::Channel::builder()
        .timeout(TIMEOUT)
        .connect_cluster(&url, "rr")
        .await
        .unwrap();
    let client = brisk_tests::test::TestServiceClient::new(channel);
    for _ in 0..10 {
        let request = SleepRequest {
            millis: 0,
            tag: "t".into(),
        };
        client.sleep(request).await.unwrap();
    }
    // Round robin: five calls each, under each server's address.
    for server in [&a, &b] {
        let name = format!(
            "rpc_client_127_0_0_1_{}_brisk_test_test_service_sleep_count",
            server.local_addr().port()
        );
        assert_eq!(var(&a, &name).await, 5, "{name}");
    }
    // And ten under the cluster's URL.
    let (_, _, listed) = get(&a, "/vars/rpc_client_list_*_sleep_count", "curl/8").await;
    assert!(listed.trim_end().ends_with(" : 10"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_of_the_programs_own_is_listed_checked_and_set() {
    use std::sync::{Arc, Mutex};
    let level = Arc::new(Mutex::new("info".to_owned()));
    let (shown, set) = (Arc::clone(&level), Arc::clone(&level));
    let server = server(|b| {
        b.mutable_flags(true).flag(
            "log_level",
            "the lowest level logged",
            move || shown.lock().unwrap().clone(),
            move |value| match value {
                "error" | "warn" | "info" | "debug" | "trace" => {
                    *set.lock().unwrap() = value.to_owned();
                    Ok(())
                }
                _ => Err(format!("no level `{value}'")),
            },
        )
    })
    .await;
    let (_, _, listing) = get(&server, "/flags/log_*", "curl/8").await;
    assert_eq!(
        listing,
        "log_level | info | the lowest level logged (settable)\n"
    );
    let (status, _, body) = get(&server, "/flags/log_level?setvalue=loud", "curl/8").await;
    assert_eq!(
        (status, body.as_str()),
        (400, "Fail to set `log_level' to `loud': no level `loud'\n")
    );
    assert_eq!(*level.lock().unwrap(), "info");
    let (status, _, body) = get(&server, "/flags/log_level?setvalue=debug", "curl/8").await;
    assert_eq!((status, body.as_str()), (200, "Set `log_level' to debug\n"));
    assert_eq!(*level.lock().unwrap(), "debug");
    // A builtin flag's name cannot be taken.
    let started = Server::builder()
        .flag("enable_rpcz", "mine", String::new, |_| Ok(()))
        .start("127.0.0.1:0")
        .await;
    let Err(taken) = started else {
        panic!("a builtin flag's name was taken")
    };
    assert!(
        taken
            .to_string()
            .contains("flag name `enable_rpcz' is a builtin flag's"),
        "{taken}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_page_parses_with_prometheus_client() {
    let server = server(|b| b).await;
    let client = brisk_tests::test_client(&server, "baidu_std", TIMEOUT).await;
    for _ in 0..3 {
        let request = SleepRequest {
            millis: 1,
            tag: "t".into(),
        };
        client.sleep(request).await.unwrap();
    }
    // Let a second close, so the windows hold the calls.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for path in ["/brpc_metrics", "/metrics"] {
        let (status, content_type, text) = get(&server, path, "Prometheus/2.53").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
port = sys.argv[1]
summary = families["rpc_server_%s_brisk_test_test_service_sleep" % port]
assert summary.type == "summary", summary.type
samples = {(s.name, s.labels.get("quantile")): s.value for s in summary.samples}
assert samples[(summary.name + "_count", None)] == 3, samples
assert samples[(summary.name, "0.99")] >= 1000, samples
assert samples[(summary.name + "_sum", None)] >= 3000, samples
assert families["process_memory_resident"].type == "gauge"
assert families["rpc_server_%s_brisk_test_test_service_sleep_error" % port].type == "counter"
print(len(families))
"#;
        let port = server.local_addr().port().to_string();
        let input = text.clone();
        let output = tokio::task::spawn_blocking(move || {
            let mut python = Command::new("python3")
                .args(["-c", script, &port])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("python3");
            use std::io::Write;
            let mut stdin = python.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
            drop(stdin);
            python.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "prometheus_client rejected {path}:\n{}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn browsers_get_html_and_curl_gets_text() {
    let server = server(|b| b.version("test-server 1.2")).await;
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    for path in ["/", "/status", "/vars"] {
        let (status, content_type, html) = get(&server, path, firefox).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        assert!(
            html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"),
            "{html}"
        );
        let (_, content_type, _) = get(&server, &format!("{path}?console=1"), firefox).await;
        assert!(content_type.starts_with("text/plain"), "{path}?console=1");
    }
    let (_, _, status_page) = get(&server, "/status", firefox).await;
    assert!(status_page.contains("<h2 class=\"service\">brisk.test.TestService</h2>"));
    assert!(status_page.contains("<svg"), "charts");
    assert_eq!(get(&server, "/health", "curl/8").await.2, "OK\n");
    assert_eq!(
        get(&server, "/version", "curl/8").await.2,
        "test-server 1.2\n"
    );
}

#[tokio::test]
async fn pages_are_served_over_http2_too() {
    let server = server(|b| b).await;
    let url = format!("http://{}/health", server.local_addr());
    // curl blocks its thread: off the runtime serving the page.
    let output = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "--max-time", "10", "--http2-prior-knowledge"])
            .args(["-w", "\n%{http_version}", &url])
            .output()
            .expect("curl")
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "OK\n\n2");
}

#[tokio::test]
async fn builtin_services_false_hides_the_pages() {
    let server = server(|b| b.builtin_services(false)).await;
    for path in ["/status", "/vars", "/brpc_metrics", "/health"] {
        let (status, _, _) = get(&server, path, "curl/8").await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn an_internal_port_hides_the_pages_from_the_public_one() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let server = server(|b| b.internal_port(port)).await;
    let internal = server
        .internal_addr()
        .expect("listening on the internal port");
    assert_eq!(internal.port(), port);
    for path in ["/status", "/vars", "/brpc_metrics", "/health"] {
        assert_eq!(get(&server, path, "curl/8").await.0, 404, "public {path}");
        assert_eq!(
            get_at(internal, path, "curl/8").await.0,
            200,
            "internal {path}"
        );
    }
    // Services answer on both ports.
    let channel = brisk::Channel::builder()
        .timeout(TIMEOUT)
        .connect(&internal.to_string())
        .await
        .unwrap();
    let client = brisk_tests::test::TestServiceClient::new(channel);
    let request = SleepRequest {
        millis: 0,
        tag: "t".into(),
    };
    client
        .sleep(request)
        .await
        .expect("served on the internal port");
    // The public port, or 0, is refused.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = free.local_addr().unwrap().port();
    drop(free);
    for (address, bad) in [
        ("127.0.0.1:0".to_owned(), 0),
        (format!("127.0.0.1:{other}"), other),
    ] {
        let (service, _arrivals) = brisk_tests::TestImpl::new();
        let started = Server::builder()
            .add_service(TestServiceServer::new(service))
            .internal_port(bad)
            .start(&address)
            .await;
        let e = started.expect_err("refused");
        assert!(e.to_string().contains("must be a port of its own"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_list_options_and_set_limits_checking_values() {
    // Read-only unless the server says otherwise.
    let fixed = server(|b| b).await;
    let (status, _, body) = get(&fixed, "/flags/max_concurrency?setvalue=5", "curl/8").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("mutable_flags"), "{body}");
    let server = server(|b| b.mutable_flags(true)).await;
    let (status, _, listing) = get(&server, "/flags", "curl/8").await;
    assert_eq!(status, 200);
    assert!(listing.contains("max_concurrency | 0 | "), "{listing}");
    assert!(
        listing.contains("first_bytes_timeout | 10000ms | "),
        "{listing}"
    );
    let sleep_flag = "max_concurrency_of(brisk.test.TestService.Sleep)";
    assert!(
        listing.contains(&format!("{sleep_flag} | 0 | ")),
        "{listing}"
    );
    // Bad values, flags that cannot be set, flags that do not exist.
    for (path, code, says) in [
        (
            format!("/flags/{sleep_flag}?setvalue=lots"),
            400,
            "unknown max_concurrency `lots`",
        ),
        (
            "/flags/max_concurrency?setvalue=auto".to_owned(),
            400,
            "per method",
        ),
        (
            "/flags/max_body_size?setvalue=1".to_owned(),
            403,
            "cannot be set",
        ),
        (
            "/flags/no_such?setvalue=1".to_owned(),
            404,
            "Fail to find flag",
        ),
        (
            "/flags/max_concurrency_of(no.Such)?setvalue=1".to_owned(),
            404,
            "no.Such",
        ),
    ] {
        let (status, _, body) = get(&server, &path, "curl/8").await;
        assert_eq!(status, code, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    // A limit set here holds: one Sleep at a time, the second refused with ELIMIT.
    let (status, _, body) = get(
        &server,
        &format!("/flags/{sleep_flag}?setvalue=1"),
        "curl/8",
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, format!("Set `{sleep_flag}' to 1\n").as_str())
    );
    let (_, _, shown) = get(&server, &format!("/flags/{sleep_flag}"), "curl/8").await;
    assert!(
        shown.starts_with(&format!("{sleep_flag} | 1 | ")),
        "{shown}"
    );
    let client = brisk_tests::test_client(&server, "baidu_std", TIMEOUT).await;
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            let request = SleepRequest {
                millis: 500,
                tag: "slow".into(),
            };
            client.sleep(request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let request = SleepRequest {
        millis: 0,
        tag: "second".into(),
    };
    let refused = client.sleep(request).await.expect_err("over the limit");
    assert_eq!(refused.code(), errno::ELIMIT, "{refused}");
    slow.await.unwrap().expect("the first runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobufs_shows_each_definition_as_proto_source_protoc_accepts() {
    let server = server(|b| b).await;
    let (status, _, listing) = get(&server, "/protobufs", "curl/8").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(names.first(), Some(&"brisk.test.TestService"), "{listing}");
    assert!(names.contains(&"brisk.test.SleepRequest"), "{listing}");
    let (_, _, service) = get(&server, "/protobufs/brisk.test.TestService", "curl/8").await;
    assert!(
        service.contains(
            "  rpc Sleep(.brisk.test.SleepRequest) returns (.brisk.test.SleepResponse);\n"
        ),
        "{service}"
    );
    assert_eq!(get(&server, "/protobufs/no.Such", "curl/8").await.0, 404);
    // Every definition shown, put in one file of the package, is a .proto protoc compiles.
    let mut source = String::from("syntax = \"proto3\";\npackage brisk.test;\n");
    for name in &names {
        let (status, _, definition) = get(&server, &format!("/protobufs/{name}"), "curl/8").await;
        assert_eq!(status, 200, "{name}");
        source.push_str(&definition);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shown.proto"), &source).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("protoc")
            .arg(format!("--proto_path={}", dir.path().display()))
            .args(["--descriptor_set_out=/dev/null", "shown.proto"])
            .output()
            .expect("protoc")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "protoc: {}\n{source}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs headless Chromium (Debian's `chromium`) with `args` on `url`: its stdout.
async fn chromium(args: &[&str], url: String) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let output = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(&args)
            .arg(&url)
            .output()
            .expect("chromium (Debian's `chromium`; the README's test command installs it)");
        assert!(
            output.status.success(),
            "chromium {args:?} {url}: {output:?}"
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_pages_while_calls_run() {
    let server = server(|b| b).await;
    let base = format!("http://{}", server.local_addr());
    // Traffic the whole time, so the pages show live figures.
    let client = brisk_tests::test_client(&server, "baidu_std", TIMEOUT).await;
    let _traffic = AbortOnDrop(tokio::spawn(async move {
        loop {
            let request = SleepRequest {
                millis: 1,
                tag: "t".into(),
            };
            if client.sleep(request).await.is_err() {
                // A call that fails before any I/O (the server gone) returns without waiting:
                // yield, or this loop never lets the runtime stop it.
                tokio::task::yield_now().await;
            }
        }
    }));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for (path, expected) in [
        (
            "/",
            &[
                "<a href=\"/status\">/status</a>",
                "<a href=\"/vars\">/vars</a>",
                "<a href=\"/flags\">/flags</a>",
                "<a href=\"/protobufs\">/protobufs</a>",
            ][..],
        ),
        (
            "/status",
            &[
                "<h2 class=\"service\">brisk.test.TestService</h2>",
                "<h3>Sleep</h3>",
                "<polyline",
            ][..],
        ),
        ("/vars", &["<table>", "_sleep_count</a>"][..]),
        ("/flags", &["<td>max_concurrency</td>"][..]),
        (
            "/connections",
            &[
                "<table id=\"server-connections\">",
                "<table id=\"client-connections\">",
                "<td>baidu_std</td>",
            ][..],
        ),
        (
            "/protobufs",
            &["<a href=\"/protobufs/brisk.test.TestService\">"][..],
        ),
    ] {
        let dom = chromium(&["--dump-dom"], format!("{base}{path}")).await;
        for element in expected {
            assert!(dom.contains(element), "{path} lacks {element}:\n{dom}");
        }
    }
    // With rpcz on, /rpcz lists the traced calls, each trace id a link to its tree.
    brisk::rpcz::set_enabled(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dom = chromium(&["--dump-dom"], format!("{base}/rpcz")).await;
    for element in [
        "<table id=\"rpcz\">",
        "<a href=\"/rpcz?trace_id=",
        "<td>brisk.test.TestService.Sleep</td>",
    ] {
        assert!(dom.contains(element), "/rpcz lacks {element}:\n{dom}");
    }
    let trace = dom
        .split("<a href=\"/rpcz?trace_id=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let dom = chromium(&["--dump-dom"], format!("{base}/rpcz?trace_id={trace}")).await;
    for element in [
        "<div id=\"rpcz-trace\">",
        "handler start",
        &format!("trace={trace}"),
    ] {
        assert!(
            dom.contains(element),
            "/rpcz?trace_id={trace} lacks {element}:\n{dom}"
        );
    }
    brisk::rpcz::set_enabled(false);
    // A picture of /status for people to look at.
    let shots = std::env::temp_dir().join("brisk-builtin-pages");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("status.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            "--window-size=1200,900",
            &format!("--screenshot={}", shot.display()),
        ],
        format!("{base}/status"),
    )
    .await;
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    println!("screenshot of /status: {}", shot.display());
}

/// Stops a task when dropped: also when the test fails first.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
