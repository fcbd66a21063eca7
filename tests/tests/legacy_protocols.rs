//! Brisk to Brisk over brpc's other protocols — hulu_pbrpc, sofa_pbrpc, nshead, public_pbrpc,
//! nova_pbrpc — all answered on one server port: generated clients with nothing changed but
//! the channel's protocol, on every connection type each allows, with attachments and
//! compression where the protocol has them, errors, and a cluster.

use std::time::Duration;

use brisk::{errno, Channel, CompressType, ConnectionType, Controller, NsheadPbAdaptor};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::test::{FailRequest, SleepRequest, TestServiceClient, TestServiceServer};
use brisk_tests::{Echo, TestImpl};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A server with the echo and test services, serving nshead bodies with `nshead`.
async fn server_with_nshead(nshead: NsheadPbAdaptor) -> brisk::Server {
    let (test, _arrivals) = TestImpl::new();
    brisk::Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .add_service(TestServiceServer::new(test))
        .nshead_service(nshead)
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

/// nova_pbrpc serves the server's first service, as brpc's adaptor.
async fn server() -> brisk::Server {
    server_with_nshead(NsheadPbAdaptor::nova(EchoServiceServer::new(Echo))).await
}

async fn channel(
    server: &brisk::Server,
    protocol: &'static str,
    connection_type: Option<ConnectionType>,
) -> Result<Channel, brisk::Error> {
    let mut builder = Channel::builder().protocol(protocol).timeout(TIMEOUT);
    if let Some(connection_type) = connection_type {
        builder = builder.connection_type(connection_type);
    }
    builder.connect(&server.local_addr().to_string()).await
}

async fn echo(
    channel: &Channel,
    message: &str,
    attachment: &'static [u8],
    compress_type: CompressType,
) -> Result<(String, bytes::Bytes, CompressType), brisk::Status> {
    let mut cntl = Controller::new();
    cntl.set_request_attachment(attachment);
    cntl.set_request_compress_type(compress_type);
    let reply = EchoServiceClient::new(channel.clone())
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: message.into(),
            },
        )
        .await?;
    Ok((
        reply.message,
        cntl.response_attachment().clone(),
        cntl.response_compress_type(),
    ))
}

/// What each protocol can do.
struct Caps {
    protocol: &'static str,
    single: bool,
    attachment: bool,
    compressions: &'static [CompressType],
}

const ALL_COMPRESSIONS: &[CompressType] = &[
    CompressType::None,
    CompressType::Snappy,
    CompressType::Gzip,
    CompressType::Zlib,
];

const PROTOCOLS: [Caps; 5] = [
    Caps {
        protocol: "hulu_pbrpc",
        single: true,
        attachment: true,
        compressions: ALL_COMPRESSIONS,
    },
    Caps {
        protocol: "sofa_pbrpc",
        single: true,
        attachment: false,
        compressions: ALL_COMPRESSIONS,
    },
    Caps {
        protocol: "public_pbrpc",
        single: false,
        attachment: false,
        compressions: &[CompressType::None, CompressType::Snappy],
    },
    Caps {
        protocol: "nova_pbrpc",
        single: false,
        attachment: false,
        compressions: &[CompressType::None, CompressType::Snappy],
    },
    Caps {
        protocol: "nshead",
        single: false,
        attachment: false,
        compressions: &[CompressType::None],
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_clients_call_over_every_protocol_and_connection_type() {
    let server = server().await;
    // nshead (not nova) needs the pb adaptor for one method.
    let nshead_server =
        server_with_nshead(NsheadPbAdaptor::new(EchoServiceServer::new(Echo), "Echo").unwrap())
            .await;
    for caps in &PROTOCOLS {
        let server = if caps.protocol == "nshead" {
            &nshead_server
        } else {
            &server
        };
        let mut types = vec![
            None,
            Some(ConnectionType::Pooled),
            Some(ConnectionType::Short),
        ];
        if caps.single {
            types.push(Some(ConnectionType::Single));
        }
        for connection_type in types {
            let what = format!("{} over {connection_type:?}", caps.protocol);
            let channel = channel(server, caps.protocol, connection_type)
                .await
                .unwrap();
            for &compress_type in caps.compressions {
                let attachment: &'static [u8] = if caps.attachment { b"att" } else { b"" };
                let (message, attached, compressed) =
                    echo(&channel, &what, attachment, compress_type)
                        .await
                        .unwrap_or_else(|e| panic!("{what} {compress_type:?}: {e}"));
                assert_eq!(message, what);
                assert_eq!(attached, attachment, "{what}");
                if caps.protocol != "nshead" {
                    assert_eq!(
                        compressed, compress_type,
                        "{what}: the response is compressed alike"
                    );
                }
            }
            // Many calls at once, each answered with its own reply.
            let calls = (0..16).map(|i| {
                let channel = channel.clone();
                async move { echo(&channel, &i.to_string(), b"", CompressType::None).await }
            });
            for (i, reply) in futures_util::future::join_all(calls)
                .await
                .into_iter()
                .enumerate()
            {
                assert_eq!(reply.unwrap().0, i.to_string(), "{what}");
            }
        }
    }
}

#[tokio::test]
async fn protocols_without_a_correlation_id_refuse_single_connections() {
    let server = server().await;
    for protocol in ["nshead", "public_pbrpc", "nova_pbrpc"] {
        let error = channel(&server, protocol, Some(ConnectionType::Single))
            .await
            .unwrap_err();
        assert_eq!(error.code(), errno::EINVAL, "{protocol}: {error}");
        assert!(
            error
                .to_string()
                .contains("does not support connection type single"),
            "{error}"
        );
    }
    // Names parse as brpc spells them.
    for protocol in [
        "hulu_pbrpc",
        "sofa_pbrpc",
        "nshead",
        "public_pbrpc",
        "nova_pbrpc",
    ] {
        let parsed: brisk::Protocol = protocol.parse().unwrap();
        assert_eq!(parsed.name(), protocol);
    }
}

#[tokio::test]
async fn handler_errors_keep_their_code_and_text_where_the_protocol_carries_errors() {
    let server = server().await;
    for protocol in ["hulu_pbrpc", "sofa_pbrpc", "public_pbrpc"] {
        let channel = channel(&server, protocol, None).await.unwrap();
        let status = TestServiceClient::new(channel.clone())
            .fail(FailRequest {
                code: 4321,
                text: "no luck".into(),
                panic: false,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), 4321, "{protocol}");
        assert_eq!(status.message(), "no luck", "{protocol}");
        assert_eq!(
            status.remote_side(),
            Some(server.local_addr()),
            "{protocol}"
        );
        // The connection (or pool) goes on serving.
        let (message, ..) = echo(&channel, "after", b"", CompressType::None)
            .await
            .unwrap();
        assert_eq!(message, "after");
    }
}

#[tokio::test]
async fn unknown_methods_are_answered_as_brpc_answers_them() {
    let server = server().await;
    let method = brisk::MethodDescriptor::new("example.EchoService", "Nope").with_index(7);
    for (protocol, text) in [
        ("hulu_pbrpc", "Fail to find method=7 of service=EchoService"),
        ("sofa_pbrpc", "Fail to find method=example.EchoService.Nope"),
        (
            "public_pbrpc",
            "Fail to find method by service=EchoService method_id=7",
        ),
    ] {
        let channel = channel(&server, protocol, None).await.unwrap();
        let status = channel
            .unary::<brisk::codec::Raw, bytes::Bytes, bytes::Bytes>(
                &method,
                &mut Controller::new(),
                &bytes::Bytes::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), errno::ENOMETHOD, "{protocol}: {status}");
        assert_eq!(status.message(), text, "{protocol}");
    }
    // nova_pbrpc cannot say why: the server closes the connection, and the call fails.
    let channel = Channel::builder()
        .protocol("nova_pbrpc")
        .timeout(TIMEOUT)
        .max_retry(0)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let status = channel
        .unary::<brisk::codec::Raw, bytes::Bytes, bytes::Bytes>(
            &method,
            &mut Controller::new(),
            &bytes::Bytes::new(),
        )
        .await
        .unwrap_err();
    assert_ne!(
        status.code(),
        errno::ERPCTIMEDOUT,
        "fails at once: {status}"
    );
    // A method descriptor without an index cannot be called over protocols that need one.
    let unnumbered = brisk::MethodDescriptor::new("example.EchoService", "Echo");
    for protocol in ["hulu_pbrpc", "public_pbrpc", "nova_pbrpc"] {
        let channel = channel_for(&server, protocol).await;
        let status = channel
            .unary::<brisk::codec::Raw, bytes::Bytes, bytes::Bytes>(
                &unnumbered,
                &mut Controller::new(),
                &bytes::Bytes::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), errno::EREQUEST, "{protocol}: {status}");
        assert!(status.message().contains("with_index"), "{status}");
    }
}

async fn channel_for(server: &brisk::Server, protocol: &'static str) -> Channel {
    channel(server, protocol, None).await.unwrap()
}

#[tokio::test]
async fn an_nshead_server_without_an_nshead_service_closes_nshead_connections() {
    let (server, _arrivals) = brisk_tests::start_server().await;
    let channel = Channel::builder()
        .protocol("nova_pbrpc")
        .timeout(TIMEOUT)
        .max_retry(0)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let status = echo(&channel, "x", b"", CompressType::None)
        .await
        .unwrap_err();
    assert_ne!(status.code(), errno::ERPCTIMEDOUT, "{status}");
    // public_pbrpc needs no nshead service.
    let channel = channel_for(&server, "public_pbrpc").await;
    assert_eq!(
        echo(&channel, "x", b"", CompressType::None)
            .await
            .unwrap()
            .0,
        "x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_hulu_servers_shares_calls_round_robin() {
    let (a, b) = (server().await, server().await);
    let url = format!("list://{},{}", a.local_addr(), b.local_addr());
    let channel = Channel::builder()
        .protocol("hulu_pbrpc")
        .timeout(TIMEOUT)
        .connect_cluster(&url, "rr")
        .await
        .unwrap();
    let test = TestServiceClient::new(channel);
    let mut seen = std::collections::HashSet::new();
    for i in 0..8 {
        let mut cntl = Controller::new();
        let reply = test
            .sleep_with(
                &mut cntl,
                SleepRequest {
                    millis: 0,
                    tag: i.to_string(),
                },
            )
            .await
            .unwrap();
        assert_eq!(reply.tag, i.to_string());
        seen.insert(cntl.remote_side().expect("the server that answered"));
    }
    assert_eq!(
        seen,
        [a.local_addr(), b.local_addr()].into_iter().collect(),
        "rr spreads calls over both"
    );
}
