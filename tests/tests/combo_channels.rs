//! Combo channels against real Brisk servers on loopback: `ParallelChannel` (mappers,
//! mergers, limits, sub-controllers, deadline and cancellation, nesting), `SelectiveChannel`
//! (round-robin, retries on other sub-channels, backup requests, changes at runtime) and
//! `PartitionChannel` (sub-channels from naming-service tags).

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use brisk::combo::{
    typed_mapper, typed_merger, DefaultPartitionParser, MergeResult, ParallelChannel, Partition,
    PartitionChannel, PartitionParser, SelectiveChannel, SubCall,
};
use brisk::{errno, Channel, Controller, Server};
use brisk_tests::echo::{EchoRequest, EchoResponse, EchoServiceClient, EchoServiceServer};
use brisk_tests::test::{SleepRequest, SleepResponse, TestServiceClient, TestServiceServer};
use brisk_tests::{Echo, TestImpl};
use tokio::sync::mpsc::UnboundedReceiver;

/// Generous, only so a broken build fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A request of a sharded lookup; its response has a repeated field, to see protobuf's merge.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LookupRequest {
    #[prost(string, tag = "1")]
    pub key: String,
}

/// Each server answers with one item and its name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LookupResponse {
    #[prost(string, repeated, tag = "1")]
    pub items: Vec<String>,
    #[prost(string, tag = "2")]
    pub server: String,
}

/// A prost service with a repeated field in its response.
#[brisk::service(package = "brisk.combo")]
pub trait Shard {
    /// Returns `["<server>:<key>"]` and the server's name.
    async fn lookup(&self, request: LookupRequest) -> LookupResponse;
}

struct ShardImpl {
    name: String,
}

impl Shard for ShardImpl {
    async fn lookup(&self, request: LookupRequest) -> LookupResponse {
        LookupResponse {
            items: vec![format!("{}:{}", self.name, request.key)],
            server: self.name.clone(),
        }
    }
}

/// A JSON service: serde types, whose encodings do not merge by concatenation.
#[brisk::service(package = "brisk.combo", codec = "json")]
pub trait Doubler {
    /// Twice the number.
    async fn double(&self, request: i64) -> i64;
}

struct DoublerImpl;

impl Doubler for DoublerImpl {
    async fn double(&self, request: i64) -> i64 {
        request * 2
    }
}

/// A server with the echo, test, shard and doubler services, and the test service's arrivals.
struct TestServer {
    server: Server,
    arrivals: UnboundedReceiver<String>,
}

impl TestServer {
    async fn start(name: &str) -> TestServer {
        let (test, arrivals) = TestImpl::new();
        let server = Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .add_service(TestServiceServer::new(test))
            .add_service(ShardServer::new(ShardImpl {
                name: name.to_owned(),
            }))
            .add_service(DoublerServer::new(DoublerImpl))
            .start("127.0.0.1:0")
            .await
            .expect("server starts");
        TestServer { server, arrivals }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    async fn channel(&self) -> Channel {
        brisk_tests::channel_to(&self.server, TIMEOUT).await
    }

    /// The tags of the `Sleep` calls that arrived so far.
    fn arrived(&mut self) -> Vec<String> {
        let mut tags = Vec::new();
        while let Ok(tag) = self.arrivals.try_recv() {
            tags.push(tag);
        }
        tags
    }
}

async fn start_servers(n: usize) -> Vec<TestServer> {
    let mut servers = Vec::with_capacity(n);
    for i in 0..n {
        servers.push(TestServer::start(&format!("s{i}")).await);
    }
    servers
}

/// A channel to a loopback port nothing listens on: calls fail with ECONNREFUSED.
async fn down_channel() -> Channel {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    Channel::builder()
        .timeout(TIMEOUT)
        .max_retry(0)
        .connect(&address)
        .await
        .unwrap()
}

fn echo(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
    }
}

fn sleep(millis: u32, tag: &str) -> SleepRequest {
    SleepRequest {
        millis,
        tag: tag.to_owned(),
    }
}

/// A call mapper of sleep requests, as a closure.
type SleepMapper = dyn Fn(usize, usize, &SleepRequest) -> SubCall + Send + Sync;

/// Joins echo messages with `|`.
fn join_messages() -> impl brisk::combo::ResponseMerger {
    typed_merger(|response: &mut EchoResponse, sub: EchoResponse| {
        response.message.push('|');
        response.message.push_str(&sub.message);
        MergeResult::Merged
    })
}

/// Joins sleep tags with `|`.
fn join_tags() -> impl brisk::combo::ResponseMerger {
    typed_merger(|response: &mut SleepResponse, sub: SleepResponse| {
        response.tag.push('|');
        response.tag.push_str(&sub.tag);
        MergeResult::Merged
    })
}

/// Tags each sub-call's echo message with its index and count.
fn tag_messages() -> impl brisk::combo::CallMapper {
    typed_mapper(|index, count, request: &EchoRequest| {
        SubCall::request(echo(&format!("{}#{index}/{count}", request.message)))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_every_server_and_merges_with_a_merger() {
    let servers = start_servers(3).await;
    let mut builder = ParallelChannel::builder()
        .timeout(TIMEOUT)
        .call_mapper(tag_messages())
        .response_merger(join_messages());
    for server in &servers {
        builder = builder.add(server.channel().await);
    }
    let client = EchoServiceClient::new(builder.build().into());

    let mut cntl = Controller::new();
    cntl.set_request_attachment(&b"ab"[..]);
    let reply = client.echo_with(&mut cntl, echo("hi")).await.unwrap();
    assert_eq!(reply.message, "hi#0/3|hi#1/3|hi#2/3");
    assert!(!cntl.failed());
    // Each server echoed the attachment: concatenated in sub-channel order.
    assert_eq!(&cntl.response_attachment()[..], b"ababab");
    assert_eq!(cntl.remote_side(), Some(servers[0].addr()));

    // Each sub-call's controller.
    assert_eq!(cntl.sub_count(), 3);
    for (i, server) in servers.iter().enumerate() {
        let sub = cntl.sub(i).expect("a sub-call per server");
        assert!(!sub.failed(), "{:?}", sub.error());
        assert_eq!(sub.remote_side(), Some(server.addr()));
        assert!(sub.latency() > Duration::ZERO);
        assert!(sub.latency() <= cntl.latency());
        assert_eq!(&sub.response_attachment()[..], b"ab");
    }
    assert!(cntl.sub(3).is_none());

    // The controller can be reused; sub-controllers are replaced by the next call.
    let reply = client.echo_with(&mut cntl, echo("again")).await.unwrap();
    assert_eq!(reply.message, "again#0/3|again#1/3|again#2/3");
    assert_eq!(cntl.sub_count(), 3);
    for server in servers {
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_merge_is_protobuf_merge_from() {
    let servers = start_servers(3).await;
    let mut builder = ParallelChannel::builder().timeout(TIMEOUT);
    for server in &servers {
        builder = builder.add(server.channel().await);
    }
    let channel: Channel = builder.build().into();

    // Repeated fields are appended in sub-channel order, singular fields: the last one wins.
    let client = ShardClient::new(channel.clone());
    let reply = client
        .lookup(LookupRequest { key: "k".into() })
        .await
        .unwrap();
    assert_eq!(reply.items, ["s0:k", "s1:k", "s2:k"]);
    assert_eq!(reply.server, "s2");

    // EchoResponse.message is a singular string: the last sub-channel's value.
    let client = EchoServiceClient::new(
        ParallelChannel::builder()
            .timeout(TIMEOUT)
            .add(servers[0].channel().await)
            .add(servers[1].channel().await)
            .add(servers[2].channel().await)
            .call_mapper(tag_messages())
            .build()
            .into(),
    );
    assert_eq!(client.echo(echo("m")).await.unwrap().message, "m#2/3");

    // A failed sub-call is left out (by default the call fails only if every sub-call does).
    let client = ShardClient::new(
        ParallelChannel::builder()
            .timeout(TIMEOUT)
            .add(servers[0].channel().await)
            .add(servers[1].channel().await)
            .add(down_channel().await)
            .build()
            .into(),
    );
    let mut cntl = Controller::new();
    let reply = client
        .lookup_with(&mut cntl, LookupRequest { key: "x".into() })
        .await
        .unwrap();
    assert_eq!(reply.items, ["s0:x", "s1:x"]);
    assert_eq!(reply.server, "s1");
    assert_eq!(
        cntl.sub(2).map(Controller::error_code),
        Some(errno::ECONNREFUSED)
    );
    for server in servers {
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_mappers_skip_refuse_and_replace_requests() {
    let mut servers = start_servers(3).await;
    let channels = [
        servers[0].channel().await,
        servers[1].channel().await,
        servers[2].channel().await,
    ];
    let parallel = |mapper: Box<SleepMapper>| {
        let mut builder = ParallelChannel::builder()
            .timeout(TIMEOUT)
            .call_mapper(typed_mapper(mapper))
            .response_merger(join_tags());
        for channel in &channels {
            builder = builder.add(channel.clone());
        }
        TestServiceClient::new(builder.build().into())
    };

    // Skip: the middle sub-channel gets nothing and has no controller.
    let client = parallel(Box::new(|index, _, request| {
        if index == 1 {
            SubCall::Skip
        } else {
            SubCall::request(sleep(0, &format!("{}-{index}", request.tag)))
        }
    }));
    let mut cntl = Controller::new();
    let reply = client.sleep_with(&mut cntl, sleep(0, "t")).await.unwrap();
    assert_eq!(reply.tag, "t-0|t-2");
    assert_eq!(cntl.sub_count(), 3);
    assert!(cntl.sub(0).is_some() && cntl.sub(2).is_some());
    assert!(cntl.sub(1).is_none());
    assert_eq!(servers[0].arrived(), ["t-0"]);
    assert!(servers[1].arrived().is_empty());
    assert_eq!(servers[2].arrived(), ["t-2"]);

    // Same: the caller's request as it is.
    let client = parallel(Box::new(|_, _, _| SubCall::Same));
    assert_eq!(
        client.sleep(sleep(0, "same")).await.unwrap().tag,
        "same|same|same"
    );
    for server in &mut servers {
        assert_eq!(server.arrived(), ["same"]);
    }

    // Everything skipped: ECANCELED, and no server is called.
    let client = parallel(Box::new(|_, _, _| SubCall::Skip));
    let mut cntl = Controller::new();
    let err = client
        .sleep_with(&mut cntl, sleep(0, "none"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ECANCELED, "{err}");
    assert_eq!(cntl.sub_count(), 3);
    assert!((0..3).all(|i| cntl.sub(i).is_none()));

    // Bad: EREQUEST at once, before any sub-call starts.
    let client = parallel(Box::new(|index, _, _| {
        if index == 2 {
            SubCall::Bad
        } else {
            SubCall::Same
        }
    }));
    let err = client.sleep(sleep(0, "bad")).await.unwrap_err();
    assert_eq!(err.code(), errno::EREQUEST, "{err}");
    assert!(err.message().contains("sub-channel 2"), "{err}");

    // A replacement of the wrong type is a bad request too.
    let client = parallel(Box::new(|_, _, _| SubCall::request(42u32)));
    let err = client.sleep(sleep(0, "wrong type")).await.unwrap_err();
    assert_eq!(err.code(), errno::EREQUEST, "{err}");

    // The untyped closure form sees the request as `dyn Any`.
    let untyped = |index: usize, _count: usize, request: &(dyn Any + Send + Sync)| {
        let request = request
            .downcast_ref::<SleepRequest>()
            .expect("a SleepRequest");
        SubCall::request(sleep(0, &format!("{}{index}", request.tag)))
    };
    let client = TestServiceClient::new(
        ParallelChannel::builder()
            .timeout(TIMEOUT)
            .add_with(channels[0].clone(), untyped, join_tags())
            .add_with(channels[1].clone(), untyped, join_tags())
            .build()
            .into(),
    );
    assert_eq!(client.sleep(sleep(0, "u")).await.unwrap().tag, "u0|u1");

    for server in servers {
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_limit_ends_the_call_with_etoomanyfails() {
    let mut slow = TestServer::start("slow").await;
    let client = TestServiceClient::new(
        ParallelChannel::builder()
            .timeout(TIMEOUT)
            .add(down_channel().await)
            .add(down_channel().await)
            .add(slow.channel().await)
            .fail_limit(2)
            .build()
            .into(),
    );
    let started = Instant::now();
    let mut cntl = Controller::new();
    let err = client
        .sleep_with(&mut cntl, sleep(5_000, "slow"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the slow server was waited for"
    );
    assert_eq!(err.code(), errno::ETOOMANYFAILS, "{err}");
    assert!(err.message().contains("2/3"), "{err}");
    assert!(err.message().contains("[C0]"), "{err}");
    assert!(err.message().contains("[C1]"), "{err}");
    assert!(!err.message().contains("[C2]"), "{err}");
    assert_eq!(cntl.error_code(), errno::ETOOMANYFAILS);
    assert_eq!(
        cntl.sub(0).map(Controller::error_code),
        Some(errno::ECONNREFUSED)
    );
    assert_eq!(
        cntl.sub(1).map(Controller::error_code),
        Some(errno::ECONNREFUSED)
    );
    // The slow sub-call was cancelled when the limit was reached.
    assert_eq!(
        cntl.sub(2).map(Controller::error_code),
        Some(errno::ECANCELED)
    );
    let _ = slow.arrived();

    // Default fail_limit: the call fails only when every sub-call failed.
    let client = EchoServiceClient::new(
        ParallelChannel::builder()
            .timeout(TIMEOUT)
            .add(down_channel().await)
            .add(down_channel().await)
            .build()
            .into(),
    );
    let err = client.echo(echo("x")).await.unwrap_err();
    assert_eq!(err.code(), errno::ETOOMANYFAILS, "{err}");
    assert!(err.message().contains("2/2"), "{err}");

    // An error the server returns counts too.
    let client = TestServiceClient::new(
        ParallelChannel::builder()
            .timeout(TIMEOUT)
            .add(slow.channel().await)
            .add(slow.channel().await)
            .fail_limit(1)
            .build()
            .into(),
    );
    let err = client
        .fail(brisk_tests::test::FailRequest {
            code: errno::EINTERNAL,
            text: "no".into(),
            panic: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ETOOMANYFAILS, "{err}");
    assert!(err.message().contains("[E2001]["), "{err}");
    assert!(err.message().ends_with("]no"), "{err}");

    // A parallel channel without sub-channels fails clearly.
    let empty = EchoServiceClient::new(ParallelChannel::builder().build().into());
    let err = empty.echo(echo("x")).await.unwrap_err();
    assert_eq!(err.code(), errno::EPERM, "{err}");

    // Not `shutdown()`: that would gracefully wait for the abandoned 5 s handler.
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_limit_ends_early_without_waiting_for_slow_servers() {
    let servers = start_servers(3).await;
    // Sub-channel 1 answers at once; 0 and 2 take 5 s.
    let mapper = typed_mapper(|index, _, request: &SleepRequest| {
        let millis = if index == 1 { 0 } else { 5_000 };
        SubCall::request(sleep(millis, &format!("{}{index}", request.tag)))
    });
    let mut builder = ParallelChannel::builder()
        .timeout(TIMEOUT)
        .call_mapper(mapper)
        .success_limit(1);
    for server in &servers {
        builder = builder.add(server.channel().await);
    }
    let client = TestServiceClient::new(builder.build().into());

    let started = Instant::now();
    let mut cntl = Controller::new();
    let reply = client.sleep_with(&mut cntl, sleep(0, "f")).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(reply.tag, "f1");
    assert_eq!(cntl.remote_side(), Some(servers[1].addr()));
    assert!(!cntl.sub(1).unwrap().failed());
    for i in [0, 2] {
        assert_eq!(
            cntl.sub(i).map(Controller::error_code),
            Some(errno::ECANCELED)
        );
    }

    // success_limit is ignored once fail_limit is set (as in brpc): the call waits for all.
    let mapper = typed_mapper(|index, _, _: &SleepRequest| {
        SubCall::request(sleep(if index == 0 { 300 } else { 0 }, &index.to_string()))
    });
    let client = TestServiceClient::new(
        ParallelChannel::builder()
            .timeout(TIMEOUT)
            .add(servers[0].channel().await)
            .add(servers[1].channel().await)
            .call_mapper(mapper)
            .response_merger(join_tags())
            .success_limit(1)
            .fail_limit(2)
            .build()
            .into(),
    );
    assert_eq!(client.sleep(sleep(0, "")).await.unwrap().tag, "0|1");
    drop(servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_and_cancellation_end_every_sub_call() {
    let mut servers = start_servers(3).await;
    let mut builder = ParallelChannel::builder().timeout(Duration::from_millis(200));
    for server in &servers {
        builder = builder.add(server.channel().await);
    }
    let client = TestServiceClient::new(builder.build().into());

    // The parallel channel's timeout, not the sub-channels' (10 s).
    let started = Instant::now();
    let mut cntl = Controller::new();
    let err = client
        .sleep_with(&mut cntl, sleep(5_000, "late"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(err.code(), errno::ERPCTIMEDOUT, "{err}");
    assert_eq!(cntl.sub_count(), 3);
    for i in 0..3 {
        assert_eq!(
            cntl.sub(i).map(Controller::error_code),
            Some(errno::ERPCTIMEDOUT),
            "sub-call {i}"
        );
    }

    // The controller's timeout overrides it.
    let mut cntl = Controller::new();
    cntl.set_timeout(Duration::from_millis(50));
    let err = client
        .sleep_with(&mut cntl, sleep(5_000, "later"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ERPCTIMEDOUT, "{err}");
    assert!(err.message().contains("50ms"), "{err}");

    // Cancelling through the CallId once every server has the request.
    for server in &mut servers {
        let _ = server.arrived();
    }
    let mut cntl = Controller::new();
    cntl.set_timeout(TIMEOUT);
    let id = cntl.call_id();
    let mut arrivals: Vec<_> = servers
        .iter_mut()
        .map(|s| std::mem::replace(&mut s.arrivals, tokio::sync::mpsc::unbounded_channel().1))
        .collect();
    let canceller = tokio::spawn(async move {
        for arrivals in &mut arrivals {
            while arrivals.recv().await.as_deref() != Some("cancel me") {}
        }
        id.cancel();
    });
    let err = client
        .sleep_with(&mut cntl, sleep(5_000, "cancel me"))
        .await
        .unwrap_err();
    canceller.await.unwrap();
    assert_eq!(err.code(), errno::ECANCELED, "{err}");
    for i in 0..3 {
        assert_eq!(
            cntl.sub(i).map(Controller::error_code),
            Some(errno::ECANCELED),
            "sub-call {i}"
        );
    }
    // Not `shutdown()`: that would gracefully wait for the abandoned handlers.
    drop(servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parallel_channel_nests_a_selective_channel() {
    let servers = start_servers(3).await;
    // Sub-channel 0: a selective channel whose first choice is down.
    let selective = SelectiveChannel::builder()
        .add(down_channel().await)
        .add(servers[0].channel().await)
        .timeout(TIMEOUT)
        .build();
    // Sub-channel 2: another parallel channel, merged by bytes too.
    let inner = ParallelChannel::builder()
        .timeout(TIMEOUT)
        .add(servers[2].channel().await)
        .build();
    let parallel: Channel = ParallelChannel::builder()
        .timeout(TIMEOUT)
        .add(selective)
        .add(servers[1].channel().await)
        .add(inner)
        .build()
        .into();
    let client = ShardClient::new(parallel);
    let mut cntl = Controller::new();
    let reply = client
        .lookup_with(&mut cntl, LookupRequest { key: "n".into() })
        .await
        .unwrap();
    assert_eq!(reply.items, ["s0:n", "s1:n", "s2:n"]);

    // Sub-controllers nest too.
    let selective_cntl = cntl.sub(0).unwrap();
    assert!(!selective_cntl.failed());
    assert_eq!(selective_cntl.retried_count(), 1);
    assert_eq!(selective_cntl.remote_side(), Some(servers[0].addr()));
    assert_eq!(selective_cntl.sub_count(), 1);
    assert_eq!(
        selective_cntl.sub(0).unwrap().remote_side(),
        Some(servers[0].addr())
    );
    let inner_cntl = cntl.sub(2).unwrap();
    assert_eq!(
        inner_cntl.sub(0).unwrap().remote_side(),
        Some(servers[2].addr())
    );

    // A nested channel whose merger decoded the response needs a merger on the outer one.
    let decoding_inner = ParallelChannel::builder()
        .timeout(TIMEOUT)
        .add(servers[2].channel().await)
        .add(servers[2].channel().await)
        .response_merger(typed_merger(|r: &mut LookupResponse, s: LookupResponse| {
            r.items.extend(s.items);
            MergeResult::Merged
        }))
        .build();
    let outer = |merge: bool| {
        let builder = ParallelChannel::builder().timeout(TIMEOUT);
        let builder = builder.add(decoding_inner.clone());
        let builder = if merge {
            builder.add_with_merger(
                decoding_inner.clone(),
                typed_merger(|r: &mut LookupResponse, s: LookupResponse| {
                    r.items.extend(s.items);
                    MergeResult::Merged
                }),
            )
        } else {
            builder.add(decoding_inner.clone())
        };
        ShardClient::new(builder.build().into())
    };
    let err = outer(false)
        .lookup(LookupRequest { key: "d".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ERESPONSE, "{err}");
    let reply = outer(true)
        .lookup(LookupRequest { key: "d".into() })
        .await
        .unwrap();
    assert_eq!(reply.items, ["s2:d"; 4]);
    for server in servers {
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mergers_can_fail_a_sub_call_or_the_whole_call() {
    let servers = start_servers(3).await;
    let channels = [
        servers[0].channel().await,
        servers[1].channel().await,
        servers[2].channel().await,
    ];
    // Rejects the response of server s1.
    let picky = || {
        typed_merger(|r: &mut LookupResponse, s: LookupResponse| {
            if s.server == "s1" {
                return MergeResult::Fail;
            }
            r.items.extend(s.items);
            MergeResult::Merged
        })
    };
    let build = |fail_limit: Option<usize>| {
        let mut builder = ParallelChannel::builder()
            .timeout(TIMEOUT)
            .response_merger(picky());
        for channel in &channels {
            builder = builder.add(channel.clone());
        }
        if let Some(limit) = fail_limit {
            builder = builder.fail_limit(limit);
        }
        ShardClient::new(builder.build().into())
    };
    let mut cntl = Controller::new();
    let reply = build(None)
        .lookup_with(&mut cntl, LookupRequest { key: "m".into() })
        .await
        .unwrap();
    assert_eq!(reply.items, ["s0:m", "s2:m"]);
    assert_eq!(
        cntl.sub(1).map(Controller::error_code),
        Some(errno::ERESPONSE)
    );
    let err = build(Some(1))
        .lookup(LookupRequest { key: "m".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ETOOMANYFAILS, "{err}");

    let fail_all = ParallelChannel::builder()
        .timeout(TIMEOUT)
        .add(channels[0].clone())
        .add_with_merger(
            channels[1].clone(),
            |_: &mut (dyn Any + Send), _: Box<dyn Any + Send>| MergeResult::FailAll,
        )
        .build();
    let err = ShardClient::new(fail_all.into())
        .lookup(LookupRequest { key: "m".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ERESPONSE, "{err}");
    for server in servers {
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_responses_need_a_merger_unless_one_answer_is_enough() {
    let servers = start_servers(2).await;
    let channels = [servers[0].channel().await, servers[1].channel().await];
    let build = |builder: brisk::combo::ParallelChannelBuilder| {
        let builder = builder
            .timeout(TIMEOUT)
            .add(channels[0].clone())
            .add(channels[1].clone());
        DoublerClient::new(builder.build().into())
    };
    let err = build(ParallelChannel::builder())
        .double(21)
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EREQUEST, "{err}");
    assert!(err.message().contains("ResponseMerger"), "{err}");

    let sum = typed_merger(|total: &mut i64, sub: i64| {
        *total += sub;
        MergeResult::Merged
    });
    let merged = build(ParallelChannel::builder().response_merger(sum));
    assert_eq!(merged.double(21).await.unwrap(), 84);

    let forking = build(ParallelChannel::builder().success_limit(1));
    assert_eq!(forking.double(21).await.unwrap(), 42);
    for server in servers {
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_goes_round_robin_over_sub_channels() {
    let servers = start_servers(3).await;
    let mut builder = SelectiveChannel::builder().timeout(TIMEOUT);
    for server in &servers {
        builder = builder.add(server.channel().await);
    }
    let client = EchoServiceClient::new(builder.build().into());
    let mut counts: HashMap<SocketAddr, usize> = HashMap::new();
    for i in 0..9 {
        let mut cntl = Controller::new();
        let reply = client
            .echo_with(&mut cntl, echo(&i.to_string()))
            .await
            .unwrap();
        assert_eq!(reply.message, i.to_string());
        assert_eq!(cntl.retried_count(), 0);
        assert_eq!(cntl.sub_count(), 1);
        let remote = cntl.remote_side().unwrap();
        assert_eq!(cntl.sub(0).unwrap().remote_side(), Some(remote));
        *counts.entry(remote).or_default() += 1;
    }
    for server in &servers {
        assert_eq!(counts.get(&server.addr()), Some(&3), "{counts:?}");
    }
    for server in servers {
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_retries_move_to_another_sub_channel() {
    let server = TestServer::start("up").await;
    let build = |max_retry: u32, down: Channel, up: Channel| {
        // The down channel is first: the first call tries it first. A failed sub-channel is
        // passed over for a minute: far longer than the test.
        EchoServiceClient::new(
            SelectiveChannel::builder()
                .add(down)
                .add(up)
                .timeout(TIMEOUT)
                .max_retry(max_retry)
                .pass_over_for(Duration::from_secs(60))
                .build()
                .into(),
        )
    };
    let client = build(3, down_channel().await, server.channel().await);
    let mut cntl = Controller::new();
    let reply = client.echo_with(&mut cntl, echo("moved")).await.unwrap();
    assert_eq!(reply.message, "moved");
    assert_eq!(cntl.retried_count(), 1);
    assert_eq!(cntl.remote_side(), Some(server.addr()));
    // The down sub-channel is passed over: the next calls go straight up, although it is
    // the down one's turn every other call.
    for again in 0..2 {
        let mut cntl = Controller::new();
        client.echo_with(&mut cntl, echo("again")).await.unwrap();
        assert_eq!(cntl.retried_count(), 0, "call {again}");
        assert_eq!(cntl.remote_side(), Some(server.addr()));
    }

    // Without retries the failure is the caller's.
    let client = build(0, down_channel().await, server.channel().await);
    let mut cntl = Controller::new();
    let err = client
        .echo_with(&mut cntl, echo("stuck"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::ECONNREFUSED, "{err}");
    assert_eq!(
        cntl.sub(0).map(Controller::error_code),
        Some(errno::ECONNREFUSED)
    );

    // The controller's max_retry overrides the channel's.
    let client = build(0, down_channel().await, server.channel().await);
    let mut cntl = Controller::new();
    cntl.set_max_retry(1);
    client.echo_with(&mut cntl, echo("allowed")).await.unwrap();
    assert_eq!(cntl.retried_count(), 1);

    // All down: the last error once every sub-channel was tried.
    let client = build(5, down_channel().await, down_channel().await);
    let mut cntl = Controller::new();
    let err = client.echo_with(&mut cntl, echo("none")).await.unwrap_err();
    assert_eq!(err.code(), errno::ECONNREFUSED, "{err}");
    assert_eq!(cntl.retried_count(), 1);

    // Errors from the server's handler are not retried.
    let client = TestServiceClient::new(
        SelectiveChannel::builder()
            .add(server.channel().await)
            .add(server.channel().await)
            .timeout(TIMEOUT)
            .build()
            .into(),
    );
    let mut cntl = Controller::new();
    let err = client
        .fail_with(
            &mut cntl,
            brisk_tests::test::FailRequest {
                code: errno::EINTERNAL,
                text: "handler".into(),
                panic: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EINTERNAL);
    assert_eq!(cntl.retried_count(), 0);
    server.server.shutdown().await;
}

/// An echo service that answers after a delay: a slow cluster.
struct SlowEcho(Duration);

impl brisk_tests::echo::EchoService for SlowEcho {
    async fn echo(
        &self,
        _cntl: &mut brisk::ServerContext,
        request: EchoRequest,
    ) -> Result<EchoResponse, brisk::Status> {
        tokio::time::sleep(self.0).await;
        Ok(EchoResponse {
            message: request.message,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_backup_requests_go_to_another_sub_channel() {
    const SLOW: Duration = Duration::from_millis(500);
    const BACKUP: Duration = Duration::from_millis(20);
    // Generous: a backup answers in about BACKUP, the slow server only after SLOW.
    const FAST_ENOUGH: Duration = Duration::from_millis(200);
    let slow = Server::builder()
        .add_service(EchoServiceServer::new(SlowEcho(SLOW)))
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    let fast = TestServer::start("fast").await;
    // The slow sub-channel is first: a new selective channel's first call starts there.
    let selective = |backup: Option<Duration>, slow_channel: Channel, fast_channel: Channel| {
        let mut builder = SelectiveChannel::builder()
            .add(slow_channel)
            .add(fast_channel)
            .timeout(TIMEOUT);
        if let Some(delay) = backup {
            builder = builder.backup_request(delay);
        }
        EchoServiceClient::new(builder.build().into())
    };
    let slow_channel = || brisk_tests::channel_to(&slow, TIMEOUT);

    // Each call answers soon: from the fast sub-channel, directly or by a backup that
    // counts as a retry; sub(0) is the sub-call that answered.
    let check_fast = |cntl: &Controller, elapsed: Duration, reply: &EchoResponse, i: usize| {
        assert_eq!(reply.message, i.to_string());
        assert!(elapsed < FAST_ENOUGH, "call {i} took {elapsed:?}");
        assert_eq!(cntl.remote_side(), Some(fast.addr()));
        assert_eq!(cntl.sub_count(), 1);
        let sub = cntl.sub(0).unwrap();
        assert!(!sub.failed(), "{:?}", sub.error());
        assert_eq!(sub.remote_side(), Some(fast.addr()));
        assert_eq!(sub.retried_count(), 0);
        assert_eq!(sub.backup_request(), None);
        assert!(cntl.retried_count() <= 1);
    };
    let client = selective(Some(BACKUP), slow_channel().await, fast.channel().await);
    let mut backups = 0;
    for i in 0..6 {
        let mut cntl = Controller::new();
        let started = Instant::now();
        let reply = client
            .echo_with(&mut cntl, echo(&i.to_string()))
            .await
            .unwrap();
        check_fast(&cntl, started.elapsed(), &reply, i);
        backups += cntl.retried_count();
    }
    assert!(backups >= 1, "no call started on the slow sub-channel");

    // The controller's delay works as well, on a channel without one.
    let client = selective(None, slow_channel().await, fast.channel().await);
    let mut backups = 0;
    for i in 0..4 {
        let mut cntl = Controller::new();
        cntl.set_backup_request(BACKUP);
        let started = Instant::now();
        let reply = client
            .echo_with(&mut cntl, echo(&i.to_string()))
            .await
            .unwrap();
        check_fast(&cntl, started.elapsed(), &reply, i);
        backups += cntl.retried_count();
    }
    assert!(backups >= 1, "no call started on the slow sub-channel");

    // Without a backup, the calls that start on the slow sub-channel wait for it: half.
    let client = selective(None, slow_channel().await, fast.channel().await);
    let mut slow_calls = 0;
    for i in 0..4 {
        let mut cntl = Controller::new();
        let started = Instant::now();
        client
            .echo_with(&mut cntl, echo(&i.to_string()))
            .await
            .unwrap();
        assert_eq!(cntl.retried_count(), 0);
        if cntl.remote_side() == Some(slow.local_addr()) {
            assert!(started.elapsed() >= SLOW - Duration::from_millis(50));
            slow_calls += 1;
        }
    }
    assert_eq!(slow_calls, 2);

    // A backup is a retry: without retries left, none is sent, and (as brpc) the backup
    // timer ends the call with EBACKUPREQUEST instead of waiting for the slow sub-channel.
    let client = selective(Some(BACKUP), slow_channel().await, fast.channel().await);
    let mut cntl = Controller::new();
    cntl.set_max_retry(0);
    let status = client.echo_with(&mut cntl, echo("wait")).await.unwrap_err();
    assert_eq!(status.code(), errno::EBACKUPREQUEST, "{status}");
    assert_eq!(cntl.retried_count(), 0);
    assert_eq!(cntl.remote_side(), Some(slow.local_addr()));

    slow.shutdown().await;
    fast.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_sub_channels_change_at_runtime() {
    let servers = start_servers(2).await;
    let selective = SelectiveChannel::builder()
        .add(servers[0].channel().await)
        .timeout(TIMEOUT)
        .build();
    let first = selective.handles()[0];
    let client = EchoServiceClient::new(selective.clone().into());
    let remotes = |n: usize| {
        let client = client.clone();
        async move {
            let mut seen = Vec::new();
            for _ in 0..n {
                let mut cntl = Controller::new();
                client.echo_with(&mut cntl, echo("x")).await.unwrap();
                seen.push(cntl.remote_side().unwrap());
            }
            seen.sort();
            seen.dedup();
            seen
        }
    };
    assert_eq!(remotes(4).await, [servers[0].addr()]);

    let second = selective.add_channel(servers[1].channel().await);
    assert_eq!(selective.channel_count(), 2);
    let mut both = vec![servers[0].addr(), servers[1].addr()];
    both.sort();
    assert_eq!(remotes(4).await, both);

    assert!(selective.remove_channel(first));
    assert_eq!(remotes(4).await, [servers[1].addr()]);

    assert!(selective.remove_channel(second));
    assert!(!selective.remove_channel(second));
    let err = client.echo(echo("x")).await.unwrap_err();
    assert_eq!(err.code(), errno::EHOSTDOWN, "{err}");
    for server in servers {
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_channel_calls_each_partition_once() {
    let mut servers = start_servers(4).await;
    // Three partitions of three, plus a server of another partitioning (ignored).
    let url = format!(
        "list://{} 0/3,{} 1/3,{} 2/3,{} 0/2",
        servers[0].addr(),
        servers[1].addr(),
        servers[2].addr(),
        servers[3].addr()
    );
    let mapper = typed_mapper(|index, count, request: &SleepRequest| {
        SubCall::request(sleep(0, &format!("{}{index}/{count}", request.tag)))
    });
    let partition = PartitionChannel::builder()
        .timeout(TIMEOUT)
        .call_mapper(mapper)
        .response_merger(join_tags())
        .connect(3, &url, "rr", DefaultPartitionParser)
        .await
        .unwrap();
    assert_eq!(partition.num_partitions(), 3);
    for (i, server) in servers.iter().take(3).enumerate() {
        assert_eq!(
            partition.partition(i).unwrap().servers(),
            [server.addr()],
            "partition {i}"
        );
    }
    let client = TestServiceClient::new(partition.into());
    for call in 0..5 {
        let mut cntl = Controller::new();
        let reply = client
            .sleep_with(&mut cntl, sleep(0, &format!("c{call}:")))
            .await
            .unwrap();
        assert_eq!(reply.tag, format!("c{call}:0/3|c{call}:1/3|c{call}:2/3"));
        assert_eq!(cntl.sub_count(), 3);
        for (i, server) in servers.iter_mut().take(3).enumerate() {
            assert_eq!(cntl.sub(i).unwrap().remote_side(), Some(server.addr()));
            assert_eq!(server.arrived(), [format!("c{call}:{i}/3")]);
        }
    }
    assert!(servers[3].arrived().is_empty());

    // A partition without servers fails its sub-call: with fail_limit(1), the call.
    let url = format!("list://{} 0/2", servers[0].addr());
    let custom = |tag: &str| DefaultPartitionParser.parse(tag);
    let partition = PartitionChannel::builder()
        .timeout(TIMEOUT)
        .fail_limit(1)
        .connect(2, &url, "rr", custom)
        .await
        .unwrap();
    let client = EchoServiceClient::new(partition.into());
    let mut cntl = Controller::new();
    let err = client.echo_with(&mut cntl, echo("p")).await.unwrap_err();
    assert_eq!(err.code(), errno::ETOOMANYFAILS, "{err}");
    assert!(err.message().contains("PartitionChannel"), "{err}");
    assert!(
        !cntl.sub(0).unwrap().failed() || cntl.sub(0).unwrap().error_code() == errno::ECANCELED
    );
    assert_eq!(
        cntl.sub(1).map(Controller::error_code),
        Some(errno::EHOSTDOWN)
    );

    // Bad arguments fail clearly.
    let err = PartitionChannel::connect(3, "nope://x", "rr", DefaultPartitionParser)
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EINVAL, "{err}");
    let err = PartitionChannel::connect(3, &url, "no-such-lb", |_: &str| None::<Partition>)
        .await
        .unwrap_err();
    assert_eq!(err.code(), errno::EINVAL, "{err}");
    for server in servers {
        server.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_combo_channel_containing_itself_fails_instead_of_recursing() {
    let server = TestServer::start("s").await;
    let selective = SelectiveChannel::builder().timeout(TIMEOUT).build();
    let handle = selective.add_channel(selective.clone());
    let parallel: Channel = ParallelChannel::builder()
        .timeout(TIMEOUT)
        .add(selective.clone())
        .add(server.channel().await)
        .build()
        .into();
    let mut cntl = Controller::new();
    let reply = EchoServiceClient::new(parallel)
        .echo_with(&mut cntl, echo("loop"))
        .await
        .unwrap();
    assert_eq!(reply.message, "loop");
    assert_eq!(cntl.sub(0).map(Controller::error_code), Some(errno::EINVAL));
    assert!(cntl.sub(0).unwrap().error_text().contains("nested"));

    // Once the loop is removed, the channel works again.
    selective.remove_channel(handle);
    selective.add_channel(server.channel().await);
    let client = EchoServiceClient::new(selective.into());
    assert_eq!(client.echo(echo("fine")).await.unwrap().message, "fine");
    server.server.shutdown().await;
}
