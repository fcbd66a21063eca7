//! The plugin's output for `tests/protos/` (checked in under `tests/generated/`, kept current by
//! the snapshot test) compiles and serves calls: proto2 with nested messages, proto3 with
//! well-known types, maps, oneofs and `optional`, two packages importing each other, and a
//! server-streaming method next to a unary one.

use std::sync::Mutex;
use std::time::Duration;

use brisk::{Controller, ServerContext, Status};

#[allow(dead_code)] // not every generated item is called here
mod p2 {
    pub mod echo {
        include!("generated/p2.echo.rs");
    }
}

#[allow(dead_code)]
mod p3 {
    pub mod types {
        include!("generated/p3.types.rs");
    }
}

#[allow(dead_code)]
mod multi {
    pub mod common {
        include!("generated/multi.common.rs");
    }
    pub mod app {
        include!("generated/multi.app.rs");
    }
}

#[allow(dead_code)]
mod streaming {
    include!("generated/streaming.rs");
}

const TIMEOUT: Duration = Duration::from_secs(5);

async fn start(builder: brisk::ServerBuilder) -> (brisk::Server, brisk::Channel) {
    let server = builder.start("127.0.0.1:0").await.expect("server starts");
    let channel = brisk::Channel::builder()
        .timeout(TIMEOUT)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel");
    (server, channel)
}

struct Echo;

impl p2::echo::EchoService for Echo {
    async fn echo(
        &self,
        cntl: &mut ServerContext,
        request: p2::echo::EchoRequest,
    ) -> Result<p2::echo::EchoResponse, Status> {
        let attachment = cntl.request_attachment().clone();
        cntl.set_response_attachment(attachment);
        Ok(p2::echo::EchoResponse {
            message: request.message.repeat(request.repeat() as usize),
            first_tag: request.tags.into_iter().next(),
        })
    }

    async fn shout(
        &self,
        _cntl: &mut ServerContext,
        request: p2::echo::EchoRequest,
    ) -> Result<p2::echo::EchoResponse, Status> {
        Ok(p2::echo::EchoResponse {
            message: request.message.to_uppercase(),
            first_tag: None,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto2_with_nested_messages_and_defaults() {
    use p2::echo::{echo_request::Tag, EchoRequest, EchoServiceBlockingClient, EchoServiceClient};

    let (server, channel) =
        start(brisk::Server::builder().add_service(p2::echo::EchoServiceServer::new(Echo))).await;
    let client = EchoServiceClient::new(channel.clone());
    let tag = Tag {
        name: Some("first".to_owned()),
    };
    let mut cntl = Controller::new();
    cntl.set_request_attachment(&b"bytes"[..]);
    let reply = client
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "ab".to_owned(),
                repeat: None, // proto2 default: 1
                tags: vec![tag.clone()],
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.message, "ab");
    assert_eq!(reply.first_tag, Some(tag));
    assert_eq!(&cntl.response_attachment()[..], b"bytes");

    let blocking = EchoServiceBlockingClient::new(channel);
    let reply = tokio::task::spawn_blocking(move || {
        blocking.shout(EchoRequest {
            message: "quiet".to_owned(),
            repeat: Some(3),
            tags: Vec::new(),
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(reply.message, "QUIET");
    server.shutdown().await;
}

#[derive(Default)]
struct Log {
    events: Mutex<Vec<p3::types::Event>>,
}

impl p3::types::EventLog for Log {
    async fn record(
        &self,
        _cntl: &mut ServerContext,
        request: p3::types::Event,
    ) -> Result<(), Status> {
        self.events.lock().unwrap().push(request);
        Ok(())
    }

    async fn list(
        &self,
        _cntl: &mut ServerContext,
        _request: (),
    ) -> Result<p3::types::EventList, Status> {
        Ok(p3::types::EventList {
            events: self.events.lock().unwrap().clone(),
        })
    }

    async fn now(
        &self,
        _cntl: &mut ServerContext,
        _request: (),
    ) -> Result<prost_types::Timestamp, Status> {
        Ok(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto3_with_well_known_types() {
    use p3::types::{event, Event, EventLogClient, EventLogServer};

    let (server, channel) =
        start(brisk::Server::builder().add_service(EventLogServer::new(Log::default()))).await;
    let client = EventLogClient::new(channel);
    let event = Event {
        kind: event::Kind::Start as i32,
        at: Some(prost_types::Timestamp {
            seconds: 12,
            nanos: 34,
        }),
        took: Some(prost_types::Duration {
            seconds: 1,
            nanos: 500,
        }),
        note: Some(String::new()), // proto3 `optional`: present though empty
        details: [(
            "k".to_owned(),
            event::Detail {
                key: "v".to_owned(),
                deeper: Some(event::detail::Deeper {
                    values: vec![1, -2, 3],
                }),
            },
        )]
        .into_iter()
        .collect(),
        target: Some(event::Target::Port(8000)),
        payload: vec![0, 1, 2],
    };
    client.record(event.clone()).await.unwrap();
    let second = Event {
        note: None,
        target: Some(event::Target::Host("h".to_owned())),
        ..Event::default()
    };
    client.record(second.clone()).await.unwrap();
    assert_eq!(client.list(()).await.unwrap().events, [event, second]);
    assert_eq!(
        client.now(()).await.unwrap(),
        prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5
        }
    );
    server.shutdown().await;
}

struct Bank;

impl multi::common::Exchange for Bank {
    async fn convert(
        &self,
        _cntl: &mut ServerContext,
        request: multi::common::ConvertRequest,
    ) -> Result<multi::common::Money, Status> {
        let from = request
            .from
            .ok_or_else(|| Status::new(brisk::errno::EREQUEST, "no amount"))?;
        Ok(multi::common::Money {
            currency: request.currency,
            units: from.units * 2,
        })
    }
}

impl multi::app::Payments for Bank {
    async fn pay(
        &self,
        _cntl: &mut ServerContext,
        request: multi::app::PayRequest,
    ) -> Result<multi::app::PayResponse, Status> {
        let amount = request.amount.unwrap_or_default();
        Ok(multi::app::PayResponse {
            receipt: format!("{} paid {}", request.account, amount.units),
            balance: Some(multi::common::Money {
                currency: amount.currency,
                units: 100 - amount.units,
            }),
        })
    }

    async fn balance(
        &self,
        _cntl: &mut ServerContext,
        _request: multi::app::PayRequest,
    ) -> Result<multi::common::Money, Status> {
        Ok(multi::common::Money {
            currency: "EUR".to_owned(),
            units: 100,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_packages_with_imports_on_one_server() {
    use multi::app::{PayRequest, PaymentsClient, PaymentsServer};
    use multi::common::{ConvertRequest, ExchangeClient, ExchangeServer, Money};

    let (server, channel) = start(
        brisk::Server::builder()
            .add_service(PaymentsServer::new(Bank))
            .add_service(ExchangeServer::new(Bank)),
    )
    .await;
    let eur = |units| Money {
        currency: "EUR".to_owned(),
        units,
    };
    let payments = PaymentsClient::new(channel.clone());
    let reply = payments
        .pay(PayRequest {
            account: "alice".to_owned(),
            amount: Some(eur(30)),
        })
        .await
        .unwrap();
    assert_eq!(reply.receipt, "alice paid 30");
    assert_eq!(reply.balance, Some(eur(70)));
    assert_eq!(
        payments.balance(PayRequest::default()).await.unwrap(),
        eur(100)
    );

    let exchange = ExchangeClient::new(channel);
    let converted = exchange
        .convert(ConvertRequest {
            from: Some(eur(5)),
            currency: "USD".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(converted.units, 10);
    let error = exchange
        .convert(ConvertRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), brisk::errno::EREQUEST);
    server.shutdown().await;
}

struct Ticker;

impl streaming::Ticker for Ticker {
    async fn once(
        &self,
        _cntl: &mut ServerContext,
        request: streaming::Tick,
    ) -> Result<streaming::Tick, Status> {
        Ok(streaming::Tick { n: request.n + 1 })
    }

    async fn watch(
        &self,
        _cntl: &mut ServerContext,
        request: streaming::Tick,
    ) -> Result<brisk::ResponseStream<streaming::Tick>, Status> {
        let next = streaming::Tick { n: request.n * 2 };
        Ok(Box::pin(brisk::codegen::once(std::future::ready(Ok(next)))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_next_to_unary() {
    use brisk::codegen::{MessageSchema, MethodKind, Prost, Service as _};
    use prost::Message as _;

    let adapter = streaming::TickerServer::new(Ticker);
    assert_eq!(
        adapter.method_kinds(),
        [MethodKind::Unary, MethodKind::ServerStreaming]
    );
    assert_eq!(
        adapter.schema(),
        MessageSchema::Protobuf {
            file_descriptor_set: streaming::FILE_DESCRIPTOR_SET
        }
    );
    // The adapter runs the streaming method on its own, without a transport.
    let cntl = ServerContext::new(
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
    );
    let request = brisk::codegen::Bytes::from(streaming::Tick { n: 21 }.encode_to_vec());
    let requests: brisk::BytesStream =
        Box::pin(brisk::codegen::once(std::future::ready(Ok(request))));
    let response = adapter.call_streaming(1, cntl, requests).await;
    let mut replies =
        brisk::Streaming::<streaming::Tick>::responses::<Prost>(response.result.unwrap());
    assert_eq!(
        replies.message().await.unwrap(),
        Some(streaming::Tick { n: 42 })
    );
    assert_eq!(replies.message().await.unwrap(), None);

    // The unary method works over baidu_std; the streaming one is refused there.
    let (server, channel) = start(brisk::Server::builder().add_service(adapter)).await;
    let client = streaming::TickerClient::new(channel.clone());
    assert_eq!(
        client.once(streaming::Tick { n: 1 }).await.unwrap(),
        streaming::Tick { n: 2 }
    );
    let blocking = streaming::TickerBlockingClient::new(channel);
    let answer = tokio::task::spawn_blocking(move || blocking.once(streaming::Tick { n: 5 })).await;
    assert_eq!(answer.unwrap().unwrap(), streaming::Tick { n: 6 });
    assert!(client.watch(streaming::Tick { n: 1 }).await.is_err());
    server.shutdown().await;
}
