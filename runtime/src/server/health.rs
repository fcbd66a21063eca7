//! The standard gRPC health service, `grpc.health.v1.Health`, answered by the server itself
//! (unless a service of that name is registered).
//!
//! `Check` answers SERVING for the empty service name (the whole server) and for every hosted
//! service, NOT_SERVING once the server is stopping or while its
//! [`HealthReporter`](crate::HealthReporter) says so, and gRPC status NOT_FOUND for a service
//! the server does not host. `Watch` streams the current status (SERVICE_UNKNOWN for an
//! unknown service), each change the health reporter makes, then NOT_SERVING once the
//! server stops, and ends. Health calls need no
//! credential, so load balancers can probe.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::body::{RequestBody, ResponseBody};
use super::grpc::{
    failure_response, message_response, single_message, split_path, GrpcError, ResponseFrames,
    StreamGuard,
};
use super::state::{wait_for_phase, Phase, Shared};
use crate::compress::CompressType;
use crate::streaming::BytesStream;
use crate::transport::grpc_body::{BodyMessages, Reader};
use crate::{errno, Status};

/// The health service's full name.
pub(super) const SERVICE: &str = "grpc.health.v1.Health";

/// Largest health request accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct HealthCheckRequest {
    /// The service asked about; empty for the whole server.
    #[prost(string, tag = "1")]
    pub(super) service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct HealthCheckResponse {
    /// A [`ServingStatus`] value.
    #[prost(enumeration = "ServingStatus", tag = "1")]
    pub(super) status: i32,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(super) enum ServingStatus {
    /// Not known.
    Unknown = 0,
    /// Taking calls.
    Serving = 1,
    /// Not taking calls.
    NotServing = 2,
    /// No such service (only `Watch` answers it).
    ServiceUnknown = 3,
}

/// Answers a call to the health service.
pub(super) async fn serve(
    request: http::Request<RequestBody>,
    shared: Arc<Shared>,
) -> http::Response<ResponseBody> {
    let (parts, body) = request.into_parts();
    let method = split_path(parts.uri.path()).map_or("", |(_, method)| method);
    let fail = |status: Status| failure_response(&GrpcError::from_status(&status), &[], &[]);
    let watch = match method {
        "Check" => false,
        "Watch" => true,
        other => {
            return fail(Status::new(
                errno::ENOMETHOD,
                format!("Fail to find method={SERVICE}/{other}"),
            ))
        }
    };
    let mut messages = BodyMessages::new(body, CompressType::Gzip, MAX_REQUEST, Reader::Server);
    let request = match single_message(&mut messages).await {
        Ok(payload) => payload,
        Err(status) => return fail(status),
    };
    let request = match HealthCheckRequest::decode(request) {
        Ok(request) => request,
        Err(e) => {
            return fail(Status::new(
                errno::EREQUEST,
                format!("Fail to parse HealthCheckRequest: {e}"),
            ))
        }
    };
    let status = serving_status(&shared, &request.service);
    if !watch {
        return match status {
            ServingStatus::ServiceUnknown => failure_response(
                &GrpcError::from_status(&Status::not_found(format!(
                    "unknown service `{}`",
                    request.service
                ))),
                &[],
                &[],
            ),
            status => message_response(
                encode(status),
                crate::compress::CompressType::None,
                &[],
                &[],
            ),
        };
    }
    let inflight = StreamGuard::new(&shared);
    let updates = watch_updates(shared, request.service, status);
    let frames = ResponseFrames {
        messages: Some(updates),
        deadline: None,
        timed_out: Status::new(errno::ERPCTIMEDOUT, "Reached timeout"),
        encoding: crate::compress::CompressType::None,
        trailing: Vec::new(),
        inflight,
        ended: None,
        rpcz_span: None,
    };
    super::grpc::streaming_response(frames, &[], crate::compress::CompressType::None)
}

/// The health of `service` ("" for the server) as of now.
fn serving_status(shared: &Shared, service: &str) -> ServingStatus {
    let known = service.is_empty() || service == SERVICE || shared.registry.has_service(service);
    if !known {
        ServingStatus::ServiceUnknown
    } else if shared.health().serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

fn encode(status: ServingStatus) -> Bytes {
    HealthCheckResponse {
        status: status as i32,
    }
    .encode_to_vec()
    .into()
}

/// How often `Watch` asks the server's health reporter again.
const REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// `Watch`'s messages: the current status; then, for a known service, each change the
/// server's health reporter makes (asked once a second), and NOT_SERVING once the server
/// stops; the stream ends when the server stops.
fn watch_updates(shared: Arc<Shared>, service: String, current: ServingStatus) -> BytesStream {
    use futures_util::StreamExt;
    let first = futures_util::stream::once(std::future::ready(Ok(encode(current))));
    if shared.phase_now() != Phase::Running {
        return Box::pin(first);
    }
    let mut phase = shared.phase.subscribe();
    let known = current != ServingStatus::ServiceUnknown;
    if !known || shared.health_reporter.is_none() {
        drop(shared);
        let later = futures_util::stream::once(async move {
            wait_for_phase(&mut phase, |p| p != Phase::Running).await;
        })
        .filter_map(move |()| {
            std::future::ready(known.then(|| Ok(encode(ServingStatus::NotServing))))
        });
        return Box::pin(first.chain(later));
    }
    // (shared, phase, last sent); `None` once the stop was sent.
    let state = Some((shared, phase, current));
    let later = futures_util::stream::unfold(state, move |state| {
        let service = service.clone();
        async move {
            let (shared, mut phase, last) = state?;
            loop {
                tokio::select! {
                    () = wait_for_phase(&mut phase, |p| p != Phase::Running) => {
                        return Some((Ok(encode(ServingStatus::NotServing)), None));
                    }
                    () = tokio::time::sleep(REPORT_INTERVAL) => {
                        let now = serving_status(&shared, &service);
                        if now != last {
                            return Some((Ok(encode(now)), Some((shared, phase, now))));
                        }
                    }
                }
            }
        }
    });
    Box::pin(first.chain(later))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_grpc_health_v1() {
        // service = "a.B" (field 1, length-delimited).
        let request = HealthCheckRequest::decode(&b"\x0a\x03a.B"[..]).unwrap();
        assert_eq!(request.service, "a.B");
        // status = SERVING (field 1, varint 1).
        assert_eq!(&encode(ServingStatus::Serving)[..], b"\x08\x01");
        assert_eq!(&encode(ServingStatus::NotServing)[..], b"\x08\x02");
        assert_eq!(&encode(ServingStatus::ServiceUnknown)[..], b"\x08\x03");
    }
}
