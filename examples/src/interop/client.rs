//! The client side of gRPC's interop cases, as grpc/grpc's `doc/interop-test-descriptions.md`
//! describes them, over a Brisk `h2:grpc` channel. Each case returns what went wrong.

use std::time::Duration;

use brisk::{Channel, CompressType, Controller, Status};
use futures_util::Stream;

use super::testing::{
    BoolValue, EchoStatus, Empty, ResponseParameters, SimpleRequest, StreamingInputCallRequest,
    StreamingOutputCallRequest, TestServiceClient, UnimplementedServiceClient,
};
use super::{zeros, ECHO_INITIAL, ECHO_TRAILING};

/// Every case the client runs, in the descriptions' order.
pub const CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
];

/// The descriptions' sizes.
const REQUEST_SIZE: i32 = 271_828;
const RESPONSE_SIZE: i32 = 314_159;
const STREAM_REQUEST_SIZES: [i32; 4] = [27_182, 8, 1_828, 45_904];
const STREAM_RESPONSE_SIZES: [i32; 4] = [31_415, 9, 2_653, 58_979];

/// What a failed case says.
type Outcome = Result<(), String>;

fn check(condition: bool, what: impl FnOnce() -> String) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(what())
    }
}

/// Checks that `result` failed with gRPC status `code` (and `message`, when given).
fn expect_status<T>(result: Result<T, Status>, code: u32, message: Option<&str>) -> Outcome {
    match result {
        Ok(_) => Err(format!("succeeded; expected gRPC status {code}")),
        Err(status) => {
            let got = status.grpc_code();
            check(got == code, || {
                format!("gRPC status {got} ({status}); expected {code}")
            })?;
            match message {
                Some(message) => check(status.message() == message, || {
                    format!("message {:?}; expected {message:?}", status.message())
                }),
                None => Ok(()),
            }
        }
    }
}

/// A stream of requests fed by the returned sender: the case decides when each goes out, and
/// when the stream ends (when the sender is dropped).
fn request_feed<T: Send + 'static>() -> (
    tokio::sync::mpsc::UnboundedSender<T>,
    impl Stream<Item = T> + Send + 'static,
) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    (sender, stream)
}

fn streaming_request(response_size: i32, payload_size: i32) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters {
            size: response_size,
            ..ResponseParameters::default()
        }],
        payload: Some(zeros(payload_size)),
        ..StreamingOutputCallRequest::default()
    }
}

fn payload_size(payload: &Option<super::testing::Payload>) -> usize {
    payload.as_ref().map_or(0, |p| p.body.len())
}

/// The longest a case may take: a stream's messages have no deadline of their own (the
/// channel's timeout bounds its opening), so a stalled peer would otherwise hang the case.
pub const CASE_LIMIT: Duration = Duration::from_secs(60);

/// Runs case `name` on `channel`, failing it if it takes over [`CASE_LIMIT`].
pub async fn run(channel: &Channel, name: &str) -> Outcome {
    tokio::time::timeout(CASE_LIMIT, run_case(channel, name))
        .await
        .unwrap_or_else(|_| Err(format!("took over {CASE_LIMIT:?}")))
}

async fn run_case(channel: &Channel, name: &str) -> Outcome {
    let client = TestServiceClient::new(channel.clone());
    match name {
        "empty_unary" => {
            client
                .empty_call(Empty {})
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        "large_unary" => large_unary(&client, &mut Controller::new(), false).await,
        "client_compressed_unary" => {
            // The probe: a server that checks compression refuses an uncompressed request
            // that says it is compressed.
            let probe = SimpleRequest {
                expect_compressed: Some(BoolValue { value: true }),
                response_size: RESPONSE_SIZE,
                payload: Some(zeros(REQUEST_SIZE)),
                ..SimpleRequest::default()
            };
            expect_status(client.unary_call(probe).await, 3, None)?;
            let mut cntl = Controller::new();
            cntl.set_request_compress_type(CompressType::Gzip);
            large_unary(&client, &mut cntl, true).await?;
            large_unary(&client, &mut Controller::new(), false).await
        }
        "server_compressed_unary" => {
            for compressed in [true, false] {
                let mut cntl = Controller::new();
                let request = SimpleRequest {
                    response_compressed: Some(BoolValue { value: compressed }),
                    response_size: RESPONSE_SIZE,
                    payload: Some(zeros(REQUEST_SIZE)),
                    ..SimpleRequest::default()
                };
                let response = client
                    .unary_call_with(&mut cntl, request)
                    .await
                    .map_err(|e| e.to_string())?;
                check(
                    payload_size(&response.payload) == RESPONSE_SIZE as usize,
                    || "wrong response size".into(),
                )?;
                let got = cntl.response_compress_type() != CompressType::None;
                check(got == compressed, || {
                    format!("response compressed: {got}; asked for {compressed}")
                })?;
            }
            Ok(())
        }
        "client_streaming" => {
            let requests = STREAM_REQUEST_SIZES.map(|size| StreamingInputCallRequest {
                payload: Some(zeros(size)),
                ..StreamingInputCallRequest::default()
            });
            let response = client
                .streaming_input_call(futures_util::stream::iter(requests))
                .await
                .map_err(|e| e.to_string())?;
            check(response.aggregated_payload_size == 74_922, || {
                format!("aggregated {}", response.aggregated_payload_size)
            })
        }
        "server_streaming" => {
            let request = StreamingOutputCallRequest {
                response_parameters: STREAM_RESPONSE_SIZES
                    .map(|size| ResponseParameters {
                        size,
                        ..ResponseParameters::default()
                    })
                    .to_vec(),
                ..StreamingOutputCallRequest::default()
            };
            let mut responses = client
                .streaming_output_call(request)
                .await
                .map_err(|e| e.to_string())?;
            let mut sizes = Vec::new();
            while let Some(response) = responses.message().await.map_err(|e| e.to_string())? {
                sizes.push(payload_size(&response.payload) as i32);
            }
            check(sizes == STREAM_RESPONSE_SIZES, || {
                format!("sizes {sizes:?}")
            })
        }
        "ping_pong" => {
            let (sender, requests) = request_feed();
            let mut requests = Some(requests);
            let mut responses = None;
            for (response_size, request_size) in
                STREAM_RESPONSE_SIZES.into_iter().zip(STREAM_REQUEST_SIZES)
            {
                sender
                    .send(streaming_request(response_size, request_size))
                    .map_err(|_| "the request stream closed".to_owned())?;
                // The call opens once its first request is queued: a stream's opening waits
                // for the response headers, which some servers (grpcio's) send only with the
                // first response.
                if let Some(requests) = requests.take() {
                    let opened = client.full_duplex_call(requests).await;
                    responses = Some(opened.map_err(|e| e.to_string())?);
                }
                let responses = responses.as_mut().ok_or("no stream")?;
                let response = responses
                    .message()
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the response stream ended early")?;
                check(
                    payload_size(&response.payload) == response_size as usize,
                    || format!("response of {} bytes", payload_size(&response.payload)),
                )?;
            }
            drop(sender);
            let mut responses = responses.ok_or("no stream")?;
            let rest = responses.message().await.map_err(|e| e.to_string())?;
            check(rest.is_none(), || "a response too many".into())
        }
        "empty_stream" => {
            let mut responses = client
                .full_duplex_call(futures_util::stream::empty())
                .await
                .map_err(|e| e.to_string())?;
            let first = responses.message().await.map_err(|e| e.to_string())?;
            check(first.is_none(), || "a response to no request".into())
        }
        "timeout_on_sleeping_server" => {
            let (sender, requests) = request_feed();
            sender
                .send(StreamingOutputCallRequest {
                    payload: Some(zeros(27_182)),
                    ..StreamingOutputCallRequest::default()
                })
                .map_err(|_| "the request stream closed".to_owned())?;
            let mut cntl = Controller::new();
            cntl.set_timeout(Duration::from_millis(1));
            let result = async {
                let mut responses = client.full_duplex_call_with(&mut cntl, requests).await?;
                responses.message().await
            }
            .await;
            drop(sender);
            expect_status(result, 4, None)
        }
        "cancel_after_begin" => {
            let (sender, requests) = request_feed::<StreamingInputCallRequest>();
            let mut cntl = Controller::new();
            let call_id = cntl.call_id();
            let canceller = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                call_id.cancel();
            });
            let result = client.streaming_input_call_with(&mut cntl, requests).await;
            drop(sender);
            canceller.await.map_err(|e| e.to_string())?;
            expect_status(result, 1, None)
        }
        "cancel_after_first_response" => {
            let (sender, requests) = request_feed();
            let mut cntl = Controller::new();
            let call_id = cntl.call_id();
            // Queued before the call opens (see ping_pong).
            sender
                .send(streaming_request(31_415, 27_182))
                .map_err(|_| "the request stream closed".to_owned())?;
            let mut responses = client
                .full_duplex_call_with(&mut cntl, requests)
                .await
                .map_err(|e| e.to_string())?;
            responses
                .message()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no first response")?;
            call_id.cancel();
            let result = responses.message().await;
            drop(sender);
            expect_status(result, 1, None)
        }
        "custom_metadata" => {
            let set_metadata = |cntl: &mut Controller| {
                cntl.set_request_header(ECHO_INITIAL, "test_initial_metadata_value");
                cntl.set_request_header(ECHO_TRAILING, "q6ur");
            };
            let mut cntl = Controller::new();
            set_metadata(&mut cntl);
            let request = SimpleRequest {
                response_size: RESPONSE_SIZE,
                payload: Some(zeros(REQUEST_SIZE)),
                ..SimpleRequest::default()
            };
            client
                .unary_call_with(&mut cntl, request)
                .await
                .map_err(|e| e.to_string())?;
            check(
                cntl.response_header(ECHO_INITIAL) == Some("test_initial_metadata_value"),
                || format!("initial metadata {:?}", cntl.response_header(ECHO_INITIAL)),
            )?;
            // 0xababab in base64 (three bytes: no padding either way).
            let echoed = cntl.response_header(ECHO_TRAILING);
            check(echoed == Some("q6ur"), || {
                format!("trailing metadata {echoed:?}")
            })?;
            // The same over a stream: Brisk's streams report initial metadata (trailing
            // metadata ends the stream unseen).
            let mut cntl = Controller::new();
            set_metadata(&mut cntl);
            let (sender, requests) = request_feed();
            let mut responses = client
                .full_duplex_call_with(&mut cntl, requests)
                .await
                .map_err(|e| e.to_string())?;
            sender
                .send(streaming_request(RESPONSE_SIZE, REQUEST_SIZE))
                .map_err(|_| "the request stream closed".to_owned())?;
            drop(sender);
            while responses
                .message()
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {}
            check(
                cntl.response_header(ECHO_INITIAL) == Some("test_initial_metadata_value"),
                || {
                    format!(
                        "stream's initial metadata {:?}",
                        cntl.response_header(ECHO_INITIAL)
                    )
                },
            )
        }
        "status_code_and_message" => status_case(&client, "test status message").await,
        "special_status_message" => {
            status_case(
                &client,
                "\t\ntest with whitespace\r\nand Unicode BMP \u{263a} and non-BMP \u{1f608}\t\n",
            )
            .await
        }
        "unimplemented_method" => {
            expect_status(client.unimplemented_call(Empty {}).await, 12, None)
        }
        "unimplemented_service" => {
            let other = UnimplementedServiceClient::new(channel.clone());
            expect_status(other.unimplemented_call(Empty {}).await, 12, None)
        }
        other => Err(format!("no case named {other}")),
    }
}

/// A large unary call: 271828 bytes in, 314159 out; `expect_compressed` asks the server to
/// check that the request came compressed.
async fn large_unary(
    client: &TestServiceClient,
    cntl: &mut Controller,
    expect_compressed: bool,
) -> Outcome {
    let request = SimpleRequest {
        response_size: RESPONSE_SIZE,
        payload: Some(zeros(REQUEST_SIZE)),
        expect_compressed: Some(BoolValue {
            value: expect_compressed,
        }),
        ..SimpleRequest::default()
    };
    let response = client
        .unary_call_with(cntl, request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response.payload.map(|p| p.body).unwrap_or_default();
    check(
        body.len() == RESPONSE_SIZE as usize && body.iter().all(|b| *b == 0),
        || format!("a response payload of {} bytes", body.len()),
    )
}

/// `status_code_and_message` with `message`: the server answers with the status the request
/// asks for (UNKNOWN), over a unary call and over a stream.
async fn status_case(client: &TestServiceClient, message: &str) -> Outcome {
    let status = EchoStatus {
        code: 2,
        message: message.to_owned(),
    };
    let request = SimpleRequest {
        response_status: Some(status.clone()),
        ..SimpleRequest::default()
    };
    expect_status(client.unary_call(request).await, 2, Some(message))?;
    let request = StreamingOutputCallRequest {
        response_status: Some(status),
        ..StreamingOutputCallRequest::default()
    };
    let result = async {
        let mut responses = client
            .full_duplex_call(futures_util::stream::iter([request]))
            .await?;
        responses.message().await
    }
    .await;
    expect_status(result, 2, Some(message))
}
