//! Every call runs inside a `tracing` span on both sides (target `brisk::server` or
//! `brisk::client`, name `rpc`, debug level), so a subscriber sees Brisk calls with no code of
//! the user's: here a subscriber that records the spans opened, on every thread. A call rpcz
//! traces records its trace id in both spans.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use brisk::{Channel, Controller, Server};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::Echo;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Records each span opened as `target name field=value ...`.
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Fields(String::new());
        attrs.record(&mut fields);
        let meta = attrs.metadata();
        let line = format!("{} {}{}", meta.target(), meta.name(), fields.0);
        self.0.lock().unwrap().push(line);
    }

    fn on_record(&self, _id: &Id, values: &tracing::span::Record<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields(String::new());
        values.record(&mut fields);
        self.0.lock().unwrap().push(format!("recorded{}", fields.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_in_spans_on_both_sides() {
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Recorder(Arc::clone(&recorded)));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await
        .unwrap();
    for protocol in ["baidu_std", "h2:grpc", "http"] {
        let channel = Channel::builder()
            .protocol(protocol)
            .timeout(Duration::from_secs(10))
            .connect(&server.local_addr().to_string())
            .await
            .unwrap();
        let mut cntl = Controller::new();
        cntl.set_log_id(4242);
        let request = EchoRequest {
            message: protocol.into(),
        };
        EchoServiceClient::new(channel)
            .echo_with(&mut cntl, request)
            .await
            .expect(protocol);
    }
    let spans = recorded.lock().unwrap().clone();
    let server_spans: Vec<&String> = spans
        .iter()
        .filter(|s| s.starts_with("brisk::server rpc "))
        .collect();
    let client_spans: Vec<&String> = spans
        .iter()
        .filter(|s| s.starts_with("brisk::client rpc "))
        .collect();
    assert_eq!(server_spans.len(), 3, "{spans:#?}");
    assert_eq!(client_spans.len(), 3, "{spans:#?}");
    for span in &server_spans {
        assert!(
            span.contains("service=\"example.EchoService\" method=\"Echo\" peer=127.0.0.1:"),
            "{span}"
        );
        assert!(span.ends_with("log_id=4242"), "{span}");
    }
    assert!(client_spans
        .iter()
        .all(|s| s.contains("service=\"example.EchoService\" method=\"Echo\"")));
    assert!(
        !spans.iter().any(|s| s.starts_with("recorded")),
        "untraced calls carry no trace id: {spans:#?}"
    );

    // A call rpcz traces: both spans get its trace id.
    brisk::rpcz::set_max_spans_per_second(1_000_000);
    brisk::rpcz::set_enabled(true);
    let channel = Channel::builder()
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let request = EchoRequest {
        message: "traced".into(),
    };
    EchoServiceClient::new(channel).echo(request).await.unwrap();
    brisk::rpcz::set_enabled(false);
    let spans = recorded.lock().unwrap().clone();
    let trace_ids: Vec<&String> = spans
        .iter()
        .filter(|s| s.starts_with("recorded trace_id="))
        .collect();
    assert_eq!(trace_ids.len(), 2, "{spans:#?}");
    assert_eq!(trace_ids[0], trace_ids[1], "one trace on both sides");
}
