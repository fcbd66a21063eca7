//! rpcz end to end: one trace across a Brisk→Brisk→Brisk→Brisk chain over baidu_std, h2:grpc
//! and http (trace ids in `RpcMeta`, then in `x-bd-*`/`traceparent` headers), a baidu_std
//! request that sets trace ids as a brpc client does, the `/rpcz` page's listing, tree and
//! filters, its switches, and rpcz off.
//!
//! rpcz is process-wide: the tests here take turns.

use std::net::SocketAddr;
use std::time::Duration;

use brisk::protocol::baidu_std::{encode_request_head, RequestHead};
use brisk::protocol::TraceIds;
use brisk::rpcz::{self, SpanKind};
use brisk::{Server, Status};
use brisk_tests::raw::read_frame;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The tests change rpcz's process-wide switches: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Passes a call down a chain of servers.
#[brisk::service(package = "brisk.rpcz", codec = "json")]
pub trait Hop {
    /// With hops left (`protocol@address` each), calls the first with the rest; at the end,
    /// answers the trace id its handler runs in ("" when untraced). Fails with EINVAL on a
    /// bad hop.
    async fn hop(&self, hops: Vec<String>) -> Result<String, Status>;
    /// Server streaming: passes the call down the chain as `hop` does while opening the
    /// stream, then yields one message, `"<trace id while streaming> <trace id at the end>"`.
    async fn hop_stream(
        &self,
        hops: Vec<String>,
    ) -> Result<brisk::ResponseStream<String>, brisk::Status>;
}

struct Hopper;

impl Hop for Hopper {
    async fn hop(&self, hops: Vec<String>) -> Result<String, Status> {
        let Some((next, rest)) = hops.split_first() else {
            return Ok(rpcz::current().map_or_else(String::new, |ids| ids.trace_id_hex()));
        };
        let (protocol, address) = next
            .split_once('@')
            .ok_or_else(|| Status::new(brisk::errno::EINVAL, format!("bad hop {next}")))?;
        rpcz::annotate(format!("calling {next}"));
        let channel = brisk::Channel::builder()
            .protocol(protocol.to_owned())
            .timeout(TIMEOUT)
            .connect(address)
            .await?;
        HopClient::new(channel).hop(rest.to_vec()).await
    }

    async fn hop_stream(&self, hops: Vec<String>) -> Result<brisk::ResponseStream<String>, Status> {
        let at_the_end = self.hop(hops).await?;
        let message = futures_util::stream::once(async move {
            let streaming = rpcz::current().map_or_else(String::new, |ids| ids.trace_id_hex());
            Ok(format!("{streaming} {at_the_end}"))
        });
        Ok(Box::pin(message))
    }
}

async fn hop_server(
    configure: impl FnOnce(brisk::ServerBuilder) -> brisk::ServerBuilder,
) -> Server {
    configure(Server::builder().add_service(HopServer::new(Hopper)))
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

async fn client(server: &Server, protocol: &str) -> HopClient {
    let channel = brisk::Channel::builder()
        .protocol(protocol.to_owned())
        .timeout(TIMEOUT)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel");
    HopClient::new(channel)
}

/// `GET path` over HTTP/1.1 as curl: (status code, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = brisk_tests::http_get(addr, path, "curl/8").await;
    (status, body)
}

/// The kept spans of trace `trace_id`.
fn spans_of(trace_id: u128) -> Vec<std::sync::Arc<brisk::rpcz::Span>> {
    rpcz::recent()
        .into_iter()
        .filter(|span| span.ids().trace_id == trace_id)
        .collect()
}

/// Turns rpcz on, every call sampled, for a test; off again when dropped.
struct RpczOn;

impl RpczOn {
    fn new() -> Self {
        rpcz::set_max_spans_per_second(1_000_000);
        rpcz::set_enabled(true);
        RpczOn
    }
}

impl Drop for RpczOn {
    fn drop(&mut self) {
        rpcz::set_enabled(false);
        rpcz::set_max_spans_per_second(rpcz::DEFAULT_MAX_SPANS_PER_SECOND);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_crosses_four_brisk_processes_over_three_protocols() {
    let _serial = SERIAL.lock().await;
    let _on = RpczOn::new();
    let (a, b, c) = (
        hop_server(|s| s).await,
        hop_server(|s| s).await,
        hop_server(|s| s).await,
    );
    let hops = vec![
        format!("h2:grpc@{}", b.local_addr()),
        format!("http@{}", c.local_addr()),
    ];
    let seen_at_the_end = client(&a, "baidu_std")
        .await
        .hop(hops)
        .await
        .expect("chain");
    // The last handler runs in the trace the first client started.
    let trace_id = u128::from_str_radix(&seen_at_the_end, 16).expect("traced at the end");
    // Each side's span is kept as it ends: the outer ones end last.
    let mut spans = spans_of(trace_id);
    for _ in 0..100 {
        if spans.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        spans = spans_of(trace_id);
    }
    assert_eq!(spans.len(), 6, "{spans:#?}");
    let find = |kind: SpanKind, protocol: &str| {
        spans
            .iter()
            .find(|s| s.kind() == kind && s.protocol() == protocol)
            .unwrap_or_else(|| panic!("{kind:?} {protocol} in {spans:#?}"))
            .ids()
    };
    let client_a = find(SpanKind::Client, "baidu_std");
    let server_a = find(SpanKind::Server, "baidu_std");
    let client_b = find(SpanKind::Client, "h2:grpc");
    let server_b = find(SpanKind::Server, "h2:grpc");
    let client_c = find(SpanKind::Client, "http");
    let server_c = find(SpanKind::Server, "http");
    // Each server's span is its client's (brpc's way: the same span id, the same parent),
    // and each client span is a child of the handler that made it.
    assert_eq!(client_a.parent_span_id, 0);
    assert_eq!(server_a, client_a);
    assert_eq!(client_b.parent_span_id, server_a.span_id);
    assert_eq!(server_b, client_b);
    assert_eq!(client_c.parent_span_id, server_b.span_id);
    assert_eq!(server_c, client_c);
    let ids: std::collections::HashSet<u64> = [client_a, client_b, client_c]
        .iter()
        .map(|i| i.span_id)
        .collect();
    assert_eq!(ids.len(), 3, "span ids are new for each call");
    // The server span has its timeline and the handler's note.
    let server_a_span = spans
        .iter()
        .find(|s| s.kind() == SpanKind::Server && s.protocol() == "baidu_std")
        .unwrap();
    let events: Vec<String> = server_a_span
        .events()
        .into_iter()
        .map(|e| e.what.into_owned())
        .collect();
    assert_eq!(events.first().map(String::as_str), Some("received"));
    assert_eq!(events.last().map(String::as_str), Some("replied"));
    for expected in ["handler start", "handler end"] {
        assert!(events.iter().any(|e| e == expected), "{events:?}");
    }
    assert!(
        events.iter().any(|e| e.starts_with("calling h2:grpc@")),
        "{events:?}"
    );
    assert_eq!(server_a_span.error_code(), 0);
    assert!(server_a_span.request_size() > 0 && server_a_span.response_size() > 0);
    assert_eq!(server_a_span.service(), "brisk.rpcz.Hop");
    assert_eq!(server_a_span.method(), "Hop");

    // `/rpcz?trace_id=` on any of them shows the trace as a tree: each call's server span
    // under its client span, the next client span under the handler's server span.
    let (status, page) = get(
        b.local_addr(),
        &format!("/rpcz?trace_id={}", seen_at_the_end),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    println!("{page}");
    let lines: Vec<&str> = page.lines().filter(|l| l.contains(" trace=")).collect();
    assert_eq!(lines.len(), 6, "{page}");
    let depth = |line: &str| (line.len() - line.trim_start().len()) / 2;
    let shape: Vec<(usize, String)> = lines
        .iter()
        .map(|line| {
            let side = line.split_whitespace().nth(2).unwrap();
            let protocol = line
                .split(" over ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            (depth(line), format!("{side} {protocol}"))
        })
        .collect();
    let expected: Vec<(usize, String)> = [
        "C baidu_std",
        "S baidu_std",
        "C h2:grpc",
        "S h2:grpc",
        "C http",
        "S http",
    ]
    .iter()
    .enumerate()
    .map(|(depth, what)| (depth, what.to_string()))
    .collect();
    assert_eq!(shape, expected, "{page}");
    assert!(page.contains("handler start"), "{page}");
}

/// A streaming handler runs in its call's span too: while it opens the stream (the calls it
/// makes are children) and while its responses are polled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_handler_runs_in_its_span() {
    let _serial = SERIAL.lock().await;
    let _on = RpczOn::new();
    let (a, b) = (hop_server(|s| s).await, hop_server(|s| s).await);
    let client = client(&a, "h2:grpc").await;
    let mut replies = client
        .hop_stream(vec![format!("http@{}", b.local_addr())])
        .await
        .expect("stream");
    let reply = replies.message().await.unwrap().expect("one message");
    assert!(
        replies.message().await.unwrap().is_none(),
        "one message only"
    );
    let (streaming, at_the_end) = reply.split_once(' ').unwrap();
    assert!(!streaming.is_empty(), "traced while streaming: {reply}");
    assert_eq!(streaming, at_the_end, "one trace: {reply}");
    let trace_id = u128::from_str_radix(streaming, 16).unwrap();
    let mut spans = spans_of(trace_id);
    for _ in 0..100 {
        if spans.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        spans = spans_of(trace_id);
    }
    // The client's span of the streaming call, its server span, the handler's client span,
    // the next server's span.
    for _ in 0..100 {
        if spans.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        spans = spans_of(trace_id);
    }
    let client_a = spans
        .iter()
        .find(|s| s.kind() == SpanKind::Client && s.protocol() == "h2:grpc")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(client_a.method(), "HopStream");
    assert_eq!(client_a.error_code(), 0);
    assert!(client_a.response_size() > 0, "{client_a:?}");
    let server_a = spans
        .iter()
        .find(|s| s.kind() == SpanKind::Server && s.protocol() == "h2:grpc")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(server_a.method(), "HopStream");
    assert_eq!(
        server_a.ids(),
        client_a.ids(),
        "the call's two sides share its span"
    );
    let client_b = spans
        .iter()
        .find(|s| s.kind() == SpanKind::Client && s.protocol() == "http")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(client_b.ids().parent_span_id, server_a.ids().span_id);
    // The channel counted the streaming call in its figures.
    let name = format!(
        "rpc_client_127_0_0_1_{}_brisk_rpcz_hop_hop_stream_count",
        a.local_addr().port()
    );
    let (status, shown) = get(a.local_addr(), &format!("/vars/{name}")).await;
    assert_eq!(
        (status, shown.as_str()),
        (200, format!("{name} : 1\n").as_str())
    );
}

/// A baidu_std request as a brpc client with rpcz on sends it: trace, span and parent span
/// ids in `RpcRequestMeta` fields 4–6. Brisk's server span continues that trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baidu_std_request_that_sets_trace_ids_is_traced_under_them() {
    let _serial = SERIAL.lock().await;
    let _on = RpczOn::new();
    let server = hop_server(|s| s).await;
    let sent = TraceIds {
        trace_id: 0x5eed_0000_1234_5678,
        span_id: 0x0a0b_0c0d_0e0f_1011,
        parent_span_id: 0x77,
    };
    let answer = raw_hop(server.local_addr(), Some(sent)).await;
    // The handler ran in the sender's trace.
    assert_eq!(answer, "\"5eed000012345678\"");
    let spans = spans_of(sent.trace_id);
    let server_span = spans
        .iter()
        .find(|s| s.kind() == SpanKind::Server)
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(server_span.ids(), sent);
    assert_eq!(server_span.protocol(), "baidu_std");
    assert_eq!(server_span.log_id(), 4242);

    // `/rpcz` finds it by trace id, span id and log id, and not by another log id.
    let addr = server.local_addr();
    for query in [
        "trace_id=5eed000012345678",
        "span_id=0a0b0c0d0e0f1011",
        "log_id=4242&trace_id=5eed000012345678",
    ] {
        let (status, page) = get(addr, &format!("/rpcz?{query}")).await;
        assert_eq!(status, 200);
        assert!(page.contains("span=0a0b0c0d0e0f1011"), "{query}: {page}");
    }
    let (_, page) = get(addr, "/rpcz?log_id=4243&trace_id=5eed000012345678").await;
    assert!(page.contains("no span matches"), "{page}");
    let (_, page) = get(addr, "/rpcz?trace_id=5eed000012345678&min_latency=60000000").await;
    assert!(page.contains("no span matches"), "{page}");
    let (status, page) = get(addr, "/rpcz?trace_id=nothex").await;
    assert_eq!(status, 400);
    assert_eq!(page, "`trace_id=nothex' is not a hex trace id\n");
}

/// One `Hop` request over raw baidu_std with log id 4242 and `trace` in its meta, answering
/// the JSON the handler returned.
async fn raw_hop(addr: SocketAddr, trace: Option<TraceIds>) -> String {
    let body = b"[]";
    let mut frame = BytesMut::new();
    encode_request_head(
        &mut frame,
        &RequestHead {
            service_name: "brisk.rpcz.Hop",
            method_name: "Hop",
            log_id: Some(4242),
            timeout_ms: None,
            correlation_id: 1,
            compress_type: 0,
            content_type: 1,
            payload_len: body.len(),
            attachment_len: 0,
            authentication_data: None,
            user_fields: &[],
            stream: None,
            trace,
        },
    );
    frame.extend_from_slice(body);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&frame).await.unwrap();
    let mut buf = BytesMut::new();
    let frame = tokio::time::timeout(TIMEOUT, read_frame(&mut stream, &mut buf))
        .await
        .expect("answered");
    let response = frame.meta.response.unwrap_or_default();
    assert_eq!(response.error_code.unwrap_or_default(), 0, "{response:?}");
    String::from_utf8(frame.body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_rpcz_keeps_nothing_yet_passes_a_callers_trace_on() {
    let _serial = SERIAL.lock().await;
    rpcz::set_enabled(false);
    let server = hop_server(|s| s).await;
    let before = rpcz::recent().len();
    let client = client(&server, "h2:grpc").await;
    // Untraced: the handler sees no trace.
    assert_eq!(client.hop(vec![]).await.unwrap(), "");
    // A caller's trace still reaches the handler (and the calls it makes), as in brpc.
    let sent = TraceIds {
        trace_id: 0x1111,
        span_id: 0x2222,
        parent_span_id: 0,
    };
    assert_eq!(
        raw_hop(server.local_addr(), Some(sent)).await,
        "\"0000000000001111\""
    );
    assert_eq!(raw_hop(server.local_addr(), None).await, "\"\"");
    assert_eq!(spans_of(0x1111).len(), 0);
    assert!(rpcz::recent().len() <= before);
    let (status, page) = get(server.local_addr(), "/rpcz").await;
    assert_eq!(status, 200);
    assert!(page.starts_with("rpcz is off"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switches_need_mutable_flags_and_check_their_values() {
    let _serial = SERIAL.lock().await;
    let fixed = hop_server(|s| s).await;
    let (status, page) = get(fixed.local_addr(), "/rpcz/enable").await;
    assert_eq!(status, 403, "{page}");
    assert!(!rpcz::is_enabled());

    let mutable = hop_server(|s| s.mutable_flags(true)).await;
    let addr = mutable.local_addr();
    let (status, page) = get(addr, "/rpcz/enable").await;
    assert_eq!(
        (status, page.as_str()),
        (200, "Set `enable_rpcz' to true\n")
    );
    assert!(rpcz::is_enabled());
    let (status, _) = get(addr, "/rpcz/disable").await;
    assert_eq!(status, 200);
    assert!(!rpcz::is_enabled());
    for (path, expected) in [
        (
            "/flags/enable_rpcz?setvalue=maybe",
            "Fail to set `enable_rpcz' to `maybe': it must be true or false\n",
        ),
        (
            "/flags/rpcz_max_spans_per_second?setvalue=0",
            "Fail to set `rpcz_max_spans_per_second' to `0': it must be a whole number from 1 to 1000000\n",
        ),
        (
            "/flags/rpcz_capacity?setvalue=-3",
            "Fail to set `rpcz_capacity' to `-3': it must be a whole number from 1 to 1000000\n",
        ),
    ] {
        assert_eq!(get(addr, path).await, (400, expected.to_owned()), "{path}");
    }
    let (status, _) = get(addr, "/flags/rpcz_max_spans_per_second?setvalue=250").await;
    assert_eq!(status, 200);
    assert_eq!(rpcz::max_spans_per_second(), 250);
    let (_, flags) = get(addr, "/flags/rpcz_*").await;
    assert!(
        flags.contains("rpcz_max_spans_per_second | 250 |"),
        "{flags}"
    );
    rpcz::set_max_spans_per_second(rpcz::DEFAULT_MAX_SPANS_PER_SECOND);
    rpcz::set_enabled(false);
}
