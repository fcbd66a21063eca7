//! A gRPC server reflection client: the services a server hosts and the `.proto` files that
//! define them, asked of the server itself (grpcurl's way). It speaks `grpc.reflection.v1`,
//! and `v1alpha` to servers that only have the older one (grpcio-reflection before 1.62, many
//! Java and C++ servers). Every Brisk server answers reflection on its one port, whatever
//! protocol its calls use.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use brisk::codec::Prost;
use brisk::{errno, Channel, Controller, MethodDescriptor, Protocol};
use prost::Message as _;
use prost_reflect::prost_types::{FileDescriptorProto, FileDescriptorSet};
use prost_reflect::DescriptorPool;

use crate::reflection_v1::server_reflection_request::MessageRequest;
use crate::reflection_v1::server_reflection_response::MessageResponse;
use crate::reflection_v1::{ServerReflectionRequest, ServerReflectionResponse};
use crate::Failure;

/// The two versions of the reflection method, newest first (the same messages).
const VERSIONS: [MethodDescriptor; 2] = [
    MethodDescriptor::new(
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
    ),
    MethodDescriptor::new(
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
    ),
];

/// gRPC's NOT_FOUND, in an `error_response`: the server has no such symbol or file.
const NOT_FOUND: i32 = 5;

/// How long one reflection exchange may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a server's reflection service.
#[derive(Debug)]
pub struct ReflectionClient {
    channel: Channel,
    server: String,
    /// The version the server answered (an index into [`VERSIONS`]).
    version: usize,
}

impl ReflectionClient {
    /// Connects to `server` over gRPC and finds which reflection version it serves.
    pub async fn connect(server: &str) -> Result<ReflectionClient, String> {
        let builder = Channel::builder().protocol(Protocol::GRPC).timeout(TIMEOUT);
        let channel = crate::connect(builder, server, "rr").await?;
        let mut client = ReflectionClient {
            channel,
            server: server.to_owned(),
            version: 0,
        };
        let mut refusals = Vec::new();
        for version in 0..VERSIONS.len() {
            client.version = version;
            match client
                .exchange(MessageRequest::ListServices(String::new()))
                .await
            {
                Ok(_) => return Ok(client),
                Err(Refused::Unimplemented(message)) => refusals.push(message),
                Err(Refused::Other(message)) => {
                    return Err(format!("cannot ask `{server}` for its schema: {message}"))
                }
            }
        }
        Err(format!(
            "`{server}` does not serve gRPC reflection ({}); give the schema with --proto",
            refusals.join("; ")
        ))
    }

    /// The services the server lists, sorted.
    pub async fn list_services(&self) -> Result<Vec<String>, String> {
        match self
            .ask(MessageRequest::ListServices(String::new()))
            .await?
        {
            MessageResponse::ListServicesResponse(list) => {
                let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
                names.sort();
                Ok(names)
            }
            other => Err(self.unexpected("a service list", &other)),
        }
    }

    /// The descriptors of the files defining `symbols` (services, methods, messages, by full
    /// name) and everything they import, as one pool. A symbol the server does not know is a
    /// usage failure (exit code 2); anything else going wrong is the server's (exit code 3).
    pub async fn pool_for(&self, symbols: &[String]) -> Result<DescriptorPool, Failure> {
        let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
        for symbol in symbols {
            let answer = match self
                .exchange(MessageRequest::FileContainingSymbol(symbol.clone()))
                .await
            {
                Ok(MessageResponse::ErrorResponse(error)) if error.error_code == NOT_FOUND => {
                    return Err(Failure::usage(format!(
                        "`{symbol}`: {} has no such symbol ({})",
                        self.server, error.error_message
                    )))
                }
                Ok(answer) => answer,
                Err(Refused::Unimplemented(message) | Refused::Other(message)) => {
                    return Err(Failure::unreachable(format!("`{symbol}`: {message}")))
                }
            };
            let answer = Self::answer(answer)
                .map_err(|e| Failure::unreachable(format!("`{symbol}`: {e}")))?;
            self.add_files(answer, &mut files)
                .map_err(Failure::unreachable)?;
        }
        self.add_imports(&mut files)
            .await
            .map_err(Failure::unreachable)?;
        let set = FileDescriptorSet {
            file: dependency_order(files),
        };
        DescriptorPool::from_file_descriptor_set(set).map_err(|e| {
            Failure::unreachable(format!(
                "the descriptors `{}` sent do not load: {e}",
                self.server
            ))
        })
    }

    /// Adds the imports the answers left out (a server sends each file once per stream; some
    /// send none), asked for by name, each once; well-known types come from the built-in pool
    /// if the server does not have them.
    async fn add_imports(
        &self,
        files: &mut BTreeMap<String, FileDescriptorProto>,
    ) -> Result<(), String> {
        let mut asked = HashSet::new();
        loop {
            let missing: Vec<String> = files
                .values()
                .flat_map(|file| file.dependency.iter())
                .filter(|name| !files.contains_key(*name))
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            for name in missing {
                let answer = if asked.insert(name.clone()) {
                    self.ask(MessageRequest::FileByFilename(name.clone())).await
                } else {
                    // Asked already, and the answer did not have it under that name.
                    Err(format!("`{}` did not send it", self.server))
                };
                match answer {
                    Ok(answer) => self.add_files(answer, files)?,
                    Err(e) => match DescriptorPool::global().get_file_by_name(&name) {
                        Some(known) => {
                            files.insert(name, known.file_descriptor_proto().clone());
                        }
                        None => return Err(format!("import `{name}`: {e}")),
                    },
                }
            }
        }
    }

    fn add_files(
        &self,
        answer: MessageResponse,
        files: &mut BTreeMap<String, FileDescriptorProto>,
    ) -> Result<(), String> {
        let MessageResponse::FileDescriptorResponse(found) = answer else {
            return Err(self.unexpected("file descriptors", &answer));
        };
        for bytes in found.file_descriptor_proto {
            let file = FileDescriptorProto::decode(bytes.as_slice()).map_err(|e| {
                format!("`{}` sent an undecodable file descriptor: {e}", self.server)
            })?;
            files.insert(file.name().to_owned(), file);
        }
        Ok(())
    }

    fn unexpected(&self, wanted: &str, got: &MessageResponse) -> String {
        let got = match got {
            MessageResponse::FileDescriptorResponse(_) => "file descriptors",
            MessageResponse::AllExtensionNumbersResponse(_) => "extension numbers",
            MessageResponse::ListServicesResponse(_) => "a service list",
            MessageResponse::ErrorResponse(_) => "an error",
        };
        format!(
            "`{}`'s reflection service answered {got} where {wanted} was asked for",
            self.server
        )
    }

    /// One request, one answer; an `error_response` becomes an error naming its code.
    async fn ask(&self, request: MessageRequest) -> Result<MessageResponse, String> {
        match self.exchange(request).await {
            Ok(answer) => Self::answer(answer),
            Err(Refused::Unimplemented(message) | Refused::Other(message)) => Err(message),
        }
    }

    /// `answer`, or its `error_response` as an error naming the code.
    fn answer(answer: MessageResponse) -> Result<MessageResponse, String> {
        match answer {
            MessageResponse::ErrorResponse(error) => Err(format!(
                "{} (gRPC code {})",
                error.error_message, error.error_code
            )),
            answer => Ok(answer),
        }
    }

    /// Sends `request` on a stream of its own and reads the one answer.
    async fn exchange(&self, request: MessageRequest) -> Result<MessageResponse, Refused> {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        };
        let mut cntl = Controller::new();
        cntl.set_timeout(TIMEOUT);
        let opened = self
            .channel
            .streaming::<Prost, ServerReflectionRequest, ServerReflectionResponse, _>(
                &VERSIONS[self.version],
                &mut cntl,
                futures_util::stream::iter([request]),
            )
            .await;
        let refused = |status: brisk::Status| {
            let message = format!("{}: {status}", VERSIONS[self.version].service());
            if matches!(status.code(), errno::ENOSERVICE | errno::ENOMETHOD) {
                Refused::Unimplemented(message)
            } else {
                Refused::Other(message)
            }
        };
        let mut responses = opened.map_err(refused)?;
        match responses.message().await.map_err(refused)? {
            Some(ServerReflectionResponse {
                message_response: Some(answer),
                ..
            }) => Ok(answer),
            _ => Err(Refused::Other(format!(
                "`{}`'s reflection service ended the stream without an answer",
                self.server
            ))),
        }
    }
}

/// Why an exchange failed: the version is not served, or anything else.
enum Refused {
    Unimplemented(String),
    Other(String),
}

/// `files` with every file after the files it imports (descriptor pools are built in that
/// order). A dependency missing from `files` is left for the pool to report.
fn dependency_order(mut files: BTreeMap<String, FileDescriptorProto>) -> Vec<FileDescriptorProto> {
    let mut ordered = Vec::with_capacity(files.len());
    let names: Vec<String> = files.keys().cloned().collect();
    // Files whose imports are being placed: an import cycle (which protoc refuses) ends here.
    let mut visiting = HashSet::new();
    for name in names {
        // Depth-first without recursion: (file, whether its imports were pushed).
        let mut stack = vec![(name, false)];
        while let Some((name, expanded)) = stack.pop() {
            if expanded {
                if let Some(file) = files.remove(&name) {
                    ordered.push(file);
                }
                continue;
            }
            let Some(file) = files.get(&name) else {
                continue; // placed already, or not sent
            };
            if !visiting.insert(name.clone()) {
                continue;
            }
            let imports = file.dependency.clone();
            stack.push((name, true));
            stack.extend(imports.into_iter().map(|import| (import, false)));
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, imports: &[&str]) -> (String, FileDescriptorProto) {
        let file = FileDescriptorProto {
            name: Some(name.to_owned()),
            dependency: imports.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        (name.to_owned(), file)
    }

    #[test]
    fn imports_come_first() {
        let files = BTreeMap::from([
            file("a.proto", &["c.proto", "b.proto"]),
            file("b.proto", &["c.proto"]),
            file("c.proto", &[]),
            file("d.proto", &["missing.proto"]),
        ]);
        let order: Vec<String> = dependency_order(files)
            .into_iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(order, ["c.proto", "b.proto", "a.proto", "d.proto"]);
    }

    #[test]
    fn an_import_cycle_ends() {
        let files = BTreeMap::from([file("a.proto", &["b.proto"]), file("b.proto", &["a.proto"])]);
        assert_eq!(dependency_order(files).len(), 2);
    }
}
