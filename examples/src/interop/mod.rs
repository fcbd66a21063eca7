//! gRPC's interop suite (grpc/grpc's `doc/interop-test-descriptions.md`) for Brisk: the
//! `grpc.testing.TestService` server the descriptions ask for ([`TestServiceImpl`], served by
//! the `interop_server` example) and the client cases ([`client`], run by `interop_client`).

pub mod client;

use std::time::Duration;

use brisk::{CompressType, ResponseStream, ServerContext, Status, Streaming};
use futures_util::StreamExt;

/// Code generated from `proto/grpc_testing.proto` (package `grpc.testing`).
pub mod testing {
    brisk::include_proto!("grpc.testing");
}

use testing::{
    EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse,
};

/// Initial metadata the server echoes back as initial metadata (the `custom_metadata` case).
pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
/// Binary metadata the server echoes back as trailing metadata.
pub const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";

/// `grpc.testing.TestService` as the interop descriptions' server section specifies it.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestServiceImpl;

/// A payload of `size` zero bytes.
pub fn zeros(size: i32) -> Payload {
    Payload {
        r#type: 0,
        body: vec![0; usize::try_from(size).unwrap_or(0)],
    }
}

/// The status a request asks the server to answer with, if any.
fn requested_status(status: Option<&EchoStatus>) -> Result<(), Status> {
    match status {
        Some(status) if status.code != 0 => Err(Status::from_grpc_code(
            u32::try_from(status.code).unwrap_or(2),
            status.message.clone(),
        )),
        _ => Ok(()),
    }
}

/// Echoes the custom metadata: the initial entry as initial metadata, the binary one as
/// trailing metadata (as it came: base64).
fn echo_metadata(cntl: &mut ServerContext) {
    if let Some(value) = cntl.request_header(ECHO_INITIAL).map(str::to_owned) {
        cntl.set_response_header(ECHO_INITIAL, value);
    }
    if let Some(value) = cntl.request_header(ECHO_TRAILING).map(str::to_owned) {
        cntl.set_response_trailer(ECHO_TRAILING, value);
    }
}

/// The responses one streaming request asks for, each after its interval.
fn responses_for(
    parameters: Vec<ResponseParameters>,
) -> impl futures_util::Stream<Item = Result<StreamingOutputCallResponse, Status>> {
    futures_util::stream::iter(parameters).then(|parameters| async move {
        if parameters.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(parameters.interval_us as u64)).await;
        }
        Ok(StreamingOutputCallResponse {
            payload: Some(zeros(parameters.size)),
        })
    })
}

impl testing::TestService for TestServiceImpl {
    async fn empty_call(&self, cntl: &mut ServerContext, _: Empty) -> Result<Empty, Status> {
        echo_metadata(cntl);
        Ok(Empty {})
    }

    async fn unary_call(
        &self,
        cntl: &mut ServerContext,
        request: SimpleRequest,
    ) -> Result<SimpleResponse, Status> {
        echo_metadata(cntl);
        let compressed = cntl.request_compress_type() != CompressType::None;
        if request.expect_compressed.is_some_and(|e| e.value) && !compressed {
            return Err(Status::invalid_argument(
                "expected a compressed request, got an uncompressed one",
            ));
        }
        requested_status(request.response_status.as_ref())?;
        if request.response_compressed.is_some_and(|c| c.value) {
            cntl.set_response_compress_type(CompressType::Gzip);
        }
        Ok(SimpleResponse {
            payload: Some(zeros(request.response_size)),
            ..SimpleResponse::default()
        })
    }

    async fn streaming_output_call(
        &self,
        cntl: &mut ServerContext,
        request: StreamingOutputCallRequest,
    ) -> Result<ResponseStream<StreamingOutputCallResponse>, Status> {
        echo_metadata(cntl);
        requested_status(request.response_status.as_ref())?;
        if request
            .response_parameters
            .iter()
            .any(|p| p.compressed.is_some_and(|c| c.value))
        {
            cntl.set_response_compress_type(CompressType::Gzip);
        }
        Ok(Box::pin(responses_for(request.response_parameters)))
    }

    async fn streaming_input_call(
        &self,
        cntl: &mut ServerContext,
        mut requests: Streaming<StreamingInputCallRequest>,
    ) -> Result<StreamingInputCallResponse, Status> {
        echo_metadata(cntl);
        let compressed = cntl.request_compress_type() != CompressType::None;
        let mut size = 0usize;
        while let Some(request) = requests.message().await? {
            if request.expect_compressed.is_some_and(|e| e.value) && !compressed {
                return Err(Status::invalid_argument(
                    "expected a compressed request, got an uncompressed one",
                ));
            }
            size += request.payload.map_or(0, |p| p.body.len());
        }
        Ok(StreamingInputCallResponse {
            aggregated_payload_size: i32::try_from(size).unwrap_or(i32::MAX),
        })
    }

    async fn full_duplex_call(
        &self,
        cntl: &mut ServerContext,
        requests: Streaming<StreamingOutputCallRequest>,
    ) -> Result<ResponseStream<StreamingOutputCallResponse>, Status> {
        echo_metadata(cntl);
        let responses = requests.flat_map(|request| match request {
            Err(status) => futures_util::stream::iter(vec![Err(status)]).boxed(),
            Ok(request) => match requested_status(request.response_status.as_ref()) {
                Err(status) => futures_util::stream::iter(vec![Err(status)]).boxed(),
                Ok(()) => responses_for(request.response_parameters).boxed(),
            },
        });
        // The stream ends at its first error.
        Ok(Box::pin(responses.scan(false, |failed, item| {
            let item = (!*failed).then(|| {
                *failed = item.is_err();
                item
            });
            futures_util::future::ready(item)
        })))
    }

    async fn half_duplex_call(
        &self,
        cntl: &mut ServerContext,
        mut requests: Streaming<StreamingOutputCallRequest>,
    ) -> Result<ResponseStream<StreamingOutputCallResponse>, Status> {
        echo_metadata(cntl);
        let mut parameters = Vec::new();
        while let Some(request) = requests.message().await? {
            requested_status(request.response_status.as_ref())?;
            parameters.extend(request.response_parameters);
        }
        Ok(Box::pin(responses_for(parameters)))
    }

    async fn unimplemented_call(&self, _: &mut ServerContext, _: Empty) -> Result<Empty, Status> {
        Err(Status::unimplemented(
            "grpc.testing.TestService/UnimplementedCall is not implemented",
        ))
    }
}
