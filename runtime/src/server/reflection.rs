//! gRPC server reflection (`grpc.reflection.v1.ServerReflection`, and `v1alpha`, which older
//! clients such as grpcio-reflection speak), answered by the server itself from the descriptor
//! sets generated services carry ([`MessageSchema::Protobuf`](super::MessageSchema)), so
//! `grpcurl list`/`describe` and other reflection clients work against a Brisk server.
//!
//! `list_services` names the hosted services that have descriptors (grpc-go's also lists the
//! reflection and health services, whose descriptors Brisk does not carry);
//! `file_by_filename` and `file_containing_symbol` (a service, method, message, enum, enum
//! value, field or extension name) answer the file and its imports, each import once per
//! stream, as grpc-go's server does;
//! `file_containing_extension` and `all_extension_numbers_of_type` answer from the extensions
//! the files declare. What is not found is an `error_response` with gRPC's NOT_FOUND (5).
//! Served unless `ServerOptions::reflection` is off, or a service of the same name is hosted;
//! a server with an authenticator asks reflection calls for the same credential as others.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message;
use prost_reflect::FileDescriptor;

use super::body::{RequestBody, ResponseBody};
use super::descriptor_index::DescriptorIndex;
use super::grpc::{failure_response, GrpcError, ResponseFrames, StreamGuard};
use super::state::{Peer, Phase, Shared};
use crate::compress::CompressType;
use crate::transport::grpc_body::{BodyMessages, Reader};
use crate::{errno, Status};

/// The reflection services' full names: v1, and v1alpha (the same messages).
pub(super) const SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Largest reflection request accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// gRPC's NOT_FOUND, in `ErrorResponse.error_code`.
const NOT_FOUND: i32 = 5;

/// `ServerReflectionRequest`.
#[derive(Clone, PartialEq, Message)]
struct ServerReflectionRequest {
    #[prost(string, tag = "1")]
    host: String,
    #[prost(oneof = "MessageRequest", tags = "3, 4, 5, 6, 7")]
    message_request: Option<MessageRequest>,
}

/// `ServerReflectionRequest.message_request`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum MessageRequest {
    #[prost(string, tag = "3")]
    FileByFilename(String),
    #[prost(string, tag = "4")]
    FileContainingSymbol(String),
    #[prost(message, tag = "5")]
    FileContainingExtension(ExtensionRequest),
    #[prost(string, tag = "6")]
    AllExtensionNumbersOfType(String),
    #[prost(string, tag = "7")]
    ListServices(String),
}

/// `ExtensionRequest`.
#[derive(Clone, PartialEq, Message)]
struct ExtensionRequest {
    #[prost(string, tag = "1")]
    containing_type: String,
    #[prost(int32, tag = "2")]
    extension_number: i32,
}

/// `ServerReflectionResponse`.
#[derive(Clone, PartialEq, Message)]
struct ServerReflectionResponse {
    #[prost(string, tag = "1")]
    valid_host: String,
    #[prost(message, optional, tag = "2")]
    original_request: Option<ServerReflectionRequest>,
    #[prost(oneof = "MessageResponse", tags = "4, 5, 6, 7")]
    message_response: Option<MessageResponse>,
}

/// `ServerReflectionResponse.message_response`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum MessageResponse {
    /// `file_descriptor_response`.
    #[prost(message, tag = "4")]
    Files(FileDescriptorResponse),
    /// `all_extension_numbers_response`.
    #[prost(message, tag = "5")]
    ExtensionNumbers(ExtensionNumberResponse),
    /// `list_services_response`.
    #[prost(message, tag = "6")]
    Services(ListServiceResponse),
    /// `error_response`.
    #[prost(message, tag = "7")]
    Error(ErrorResponse),
}

/// `FileDescriptorResponse`: serialized `FileDescriptorProto`s.
#[derive(Clone, PartialEq, Message)]
struct FileDescriptorResponse {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file_descriptor_proto: Vec<Vec<u8>>,
}

/// `ExtensionNumberResponse`.
#[derive(Clone, PartialEq, Message)]
struct ExtensionNumberResponse {
    #[prost(string, tag = "1")]
    base_type_name: String,
    #[prost(int32, repeated, tag = "2")]
    extension_number: Vec<i32>,
}

/// `ListServiceResponse`.
#[derive(Clone, PartialEq, Message)]
struct ListServiceResponse {
    #[prost(message, repeated, tag = "1")]
    service: Vec<ServiceResponse>,
}

/// `ServiceResponse`.
#[derive(Clone, PartialEq, Message)]
struct ServiceResponse {
    #[prost(string, tag = "1")]
    name: String,
}

/// `ErrorResponse`.
#[derive(Clone, PartialEq, Message)]
struct ErrorResponse {
    #[prost(int32, tag = "1")]
    error_code: i32,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// `file` and what it imports, transitively. The file itself always goes out; imports
/// already `sent` on this stream are left out (and those sent now marked), as grpc-go's
/// server does.
fn with_imports(file: FileDescriptor, sent: &mut HashSet<String>) -> FileDescriptorResponse {
    sent.insert(file.name().to_owned());
    let mut files = vec![file.file_descriptor_proto().encode_to_vec()];
    let mut queue: Vec<FileDescriptor> = file.dependencies().collect();
    while let Some(file) = queue.pop() {
        if !sent.insert(file.name().to_owned()) {
            continue;
        }
        files.push(file.file_descriptor_proto().encode_to_vec());
        queue.extend(file.dependencies());
    }
    FileDescriptorResponse {
        file_descriptor_proto: files,
    }
}

/// The answer to one request, from what `index` knows.
fn answer(
    index: &DescriptorIndex,
    request: &MessageRequest,
    sent: &mut HashSet<String>,
) -> MessageResponse {
    let not_found = |what: String| {
        MessageResponse::Error(ErrorResponse {
            error_code: NOT_FOUND,
            error_message: what,
        })
    };
    let pool = index.pool();
    match request {
        MessageRequest::ListServices(_) => MessageResponse::Services(ListServiceResponse {
            service: index
                .services()
                .iter()
                .map(|name| ServiceResponse { name: name.clone() })
                .collect(),
        }),
        MessageRequest::FileByFilename(name) => match pool.get_file_by_name(name) {
            Some(file) => MessageResponse::Files(with_imports(file, sent)),
            None => not_found(format!("file not found: {name}")),
        },
        MessageRequest::FileContainingSymbol(symbol) => match index.file_containing(symbol) {
            Some(file) => MessageResponse::Files(with_imports(file, sent)),
            None => not_found(format!("symbol not found: {symbol}")),
        },
        MessageRequest::FileContainingExtension(request) => {
            let extension =
                pool.get_message_by_name(&request.containing_type)
                    .and_then(|message| {
                        message
                            .extensions()
                            .find(|e| e.number() as i32 == request.extension_number)
                    });
            match extension {
                Some(extension) => {
                    MessageResponse::Files(with_imports(extension.parent_file(), sent))
                }
                None => not_found(format!(
                    "extension {} of {} not found",
                    request.extension_number, request.containing_type
                )),
            }
        }
        MessageRequest::AllExtensionNumbersOfType(name) => match pool.get_message_by_name(name) {
            Some(message) => MessageResponse::ExtensionNumbers(ExtensionNumberResponse {
                base_type_name: name.clone(),
                extension_number: message.extensions().map(|e| e.number() as i32).collect(),
            }),
            None => not_found(format!("type not found: {name}")),
        },
    }
}

/// Answers a reflection stream: one response per request, until the client ends its side.
pub(super) async fn serve(
    request: http::Request<RequestBody>,
    peer: Peer,
    shared: Arc<Shared>,
) -> http::Response<ResponseBody> {
    let fail = |status: Status| failure_response(&GrpcError::from_status(&status), &[], &[]);
    if shared.phase_now() != Phase::Running {
        return fail(Status::new(errno::ELOGOFF, "Server is stopping"));
    }
    // The schema is no more public than the methods: the same credential is asked for.
    let (parts, body) = request.into_parts();
    if let Err(status) = super::grpc::authenticate(&parts.headers, &shared, peer.remote) {
        return fail(status);
    }
    let index = Arc::clone(
        shared
            .reflection
            .get_or_init(|| Arc::new(DescriptorIndex::of(&shared.registry))),
    );
    let inflight = StreamGuard::new(&shared);
    drop(shared);
    let messages = BodyMessages::new(body, CompressType::Gzip, MAX_REQUEST, Reader::Server);
    let responses = messages.scan(
        (index, HashSet::new(), false),
        |(index, sent, failed), message| {
            if *failed {
                return std::future::ready(None);
            }
            let answer = message.and_then(|bytes| {
                let request = ServerReflectionRequest::decode(bytes).map_err(|e| {
                    Status::new(
                        errno::EREQUEST,
                        format!("Fail to parse ServerReflectionRequest: {e}"),
                    )
                })?;
                let message_request = request.message_request.as_ref().ok_or_else(|| {
                    Status::new(errno::EREQUEST, "a reflection request asks nothing")
                })?;
                let response = ServerReflectionResponse {
                    valid_host: request.host.clone(),
                    message_response: Some(answer(index, message_request, sent)),
                    original_request: Some(request),
                };
                Ok(Bytes::from(response.encode_to_vec()))
            });
            *failed = answer.is_err();
            std::future::ready(Some(answer))
        },
    );
    let frames = ResponseFrames {
        messages: Some(Box::pin(responses)),
        deadline: None,
        timed_out: Status::new(errno::ERPCTIMEDOUT, "Reached timeout"),
        encoding: CompressType::None,
        trailing: Vec::new(),
        inflight,
        ended: None,
        rpcz_span: None,
    };
    super::grpc::streaming_response(frames, &[], CompressType::None)
}

/// The answer to a call of a reflection method that does not exist.
pub(super) fn unknown_method(service: &str, method: &str) -> http::Response<ResponseBody> {
    failure_response(
        &GrpcError::from_status(&Status::new(
            errno::ENOMETHOD,
            format!("Fail to find method={service}/{method}"),
        )),
        &[],
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_grpc_reflection() {
        // list_services = "" (field 7): what grpcurl sends first.
        let request = ServerReflectionRequest::decode(&b"\x3a\x00"[..]).unwrap();
        assert_eq!(
            request.message_request,
            Some(MessageRequest::ListServices(String::new()))
        );
        // file_containing_symbol = "a.B" (field 4), host "h" (field 1).
        let request = ServerReflectionRequest::decode(&b"\x0a\x01h\x22\x03a.B"[..]).unwrap();
        assert_eq!(request.host, "h");
        assert_eq!(
            request.message_request,
            Some(MessageRequest::FileContainingSymbol("a.B".into()))
        );
        // list_services_response (field 6) { service (1) { name (1) "a.B" } }.
        let response = ServerReflectionResponse {
            valid_host: String::new(),
            original_request: None,
            message_response: Some(MessageResponse::Services(ListServiceResponse {
                service: vec![ServiceResponse { name: "a.B".into() }],
            })),
        };
        assert_eq!(response.encode_to_vec(), b"\x32\x07\x0a\x05\x0a\x03a.B");
    }
}
