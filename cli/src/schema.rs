//! Where the tool learns a server's messages: a `.proto` file parsed at run time (pure Rust, no
//! `protoc`), or the server itself through gRPC server reflection ([`crate::reflection`]).

use std::path::{Path, PathBuf};

use prost_reflect::{DescriptorPool, MethodDescriptor, ServiceDescriptor};
use protobuf::Message as _;

use crate::reflection::ReflectionClient;
use crate::Failure;

/// `--proto FILE` and `--include DIR`: the schema from a file, or (without them) from the
/// server's reflection service.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SchemaArgs {
    /// The `.proto` file defining the service (default: ask the server by gRPC reflection).
    #[arg(long, value_name = "FILE")]
    pub proto: Option<PathBuf>,
    /// An import directory for `--proto`, repeatable (default: the file's directory).
    #[arg(long = "include", short = 'I', value_name = "DIR")]
    pub includes: Vec<PathBuf>,
}

impl SchemaArgs {
    /// Where these arguments say to read the schema of `server` from.
    pub fn source(&self, server: &str) -> SchemaSource {
        SchemaSource::new(self.proto.clone(), self.includes.clone(), server)
    }
}

/// Where to read the schema from, as the command line says.
#[derive(Debug, Clone)]
pub enum SchemaSource {
    /// A `.proto` file and its import directories (none: the file's own directory).
    ProtoFile {
        /// The file.
        proto: PathBuf,
        /// Import directories.
        includes: Vec<PathBuf>,
    },
    /// gRPC server reflection, asked of the server at this address.
    Reflection {
        /// `host:port`.
        server: String,
    },
}

impl SchemaSource {
    /// `--proto FILE` (with `--include DIR`s) when given, else reflection at `server`.
    pub fn new(proto: Option<PathBuf>, includes: Vec<PathBuf>, server: &str) -> SchemaSource {
        match proto {
            Some(proto) => SchemaSource::ProtoFile { proto, includes },
            None => SchemaSource::Reflection {
                server: server.to_owned(),
            },
        }
    }

    /// The descriptors that define `symbols` (service, method or message names), or the whole
    /// file with reflection's service list when `symbols` is empty.
    pub async fn load(&self, symbols: &[&str]) -> Result<Schema, Failure> {
        match self {
            SchemaSource::ProtoFile { proto, includes } => {
                Schema::from_proto_file(proto, includes).map_err(Failure::usage)
            }
            SchemaSource::Reflection { server } => {
                let client = ReflectionClient::connect(server)
                    .await
                    .map_err(Failure::unreachable)?;
                let services = client.list_services().await.map_err(Failure::unreachable)?;
                let symbols: Vec<String> = if symbols.is_empty() {
                    services.clone()
                } else {
                    symbols.iter().map(|s| symbol_of(s, &services)).collect()
                };
                let pool = client.pool_for(&symbols).await?;
                Ok(Schema {
                    pool,
                    origin: format!("the reflection service of {server}"),
                    hosted: Some(services),
                })
            }
        }
    }
}

/// The full name to ask reflection for a command-line symbol by: a method (`pkg.Service/Method`
/// or `pkg.Service.Method`) by its service's name, as grpcurl does (grpcio's reflection does not
/// know methods as symbols), and a service (alone or before a method) may be named without its
/// package when only one of the `services` has that name. Other names are asked as they are.
fn symbol_of(name: &str, services: &[String]) -> String {
    let dotted = name.replacen('/', ".", 1);
    let service = |name: &str| -> Option<String> {
        if services.iter().any(|s| s == name) {
            return Some(name.to_owned());
        }
        let mut matches = services
            .iter()
            .filter(|s| s.rsplit('.').next() == Some(name));
        match (matches.next(), matches.next()) {
            (Some(only), None) => Some(only.clone()),
            _ => None,
        }
    };
    if let Some(full) = service(&dotted) {
        return full;
    }
    match dotted
        .rsplit_once('.')
        .and_then(|(head, method)| Some((service(head)?, method)))
    {
        Some((service, _method)) => service,
        None => dotted,
    }
}

/// Messages and services, with where they came from (for error messages).
#[derive(Debug, Clone)]
pub struct Schema {
    /// The descriptors.
    pub pool: DescriptorPool,
    /// `` `echo.proto` `` or `the reflection service of HOST:PORT`.
    pub origin: String,
    /// The services the server said it hosts (reflection only: a file may define more).
    pub hosted: Option<Vec<String>>,
}

impl Schema {
    /// Parses `proto`, importing from `includes` (or the file's directory when empty).
    pub fn from_proto_file(proto: &Path, includes: &[PathBuf]) -> Result<Schema, String> {
        if !proto.is_file() {
            return Err(format!("--proto `{}`: no such file", proto.display()));
        }
        let default_include;
        let includes = if includes.is_empty() {
            default_include = match proto.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            };
            std::slice::from_ref(&default_include)
        } else {
            includes
        };
        let set = protobuf_parse::Parser::new()
            .pure()
            .includes(includes)
            .input(proto)
            .file_descriptor_set()
            .map_err(|error| {
                // The chain repeats itself outwards; the message naming the file says it all.
                let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
                let message = chain
                    .iter()
                    .find(|m| m.starts_with("error in "))
                    .or(chain.last())
                    .cloned()
                    .unwrap_or_default();
                format!("cannot parse `{}`: {message}", proto.display())
            })?;
        let bytes = set.write_to_bytes().map_err(|e| {
            format!(
                "cannot serialize the descriptors of `{}`: {e}",
                proto.display()
            )
        })?;
        let pool = DescriptorPool::decode(bytes.as_slice())
            .map_err(|e| format!("cannot load the descriptors of `{}`: {e}", proto.display()))?;
        Ok(Schema {
            pool,
            origin: format!("`{}`", proto.display()),
            hosted: None,
        })
    }

    /// The full names of the services hosted (what reflection listed, those it defines),
    /// or of every service the `.proto` file defines; sorted.
    pub fn services(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.hosted {
            Some(hosted) => self
                .pool
                .services()
                .map(|s| s.full_name().to_owned())
                .filter(|name| hosted.contains(name))
                .collect(),
            None => self
                .pool
                .services()
                .map(|s| s.full_name().to_owned())
                .collect(),
        };
        names.sort();
        names
    }

    /// The service named `name`: its full name, or its name without the package when only
    /// one service has it.
    pub fn service(&self, name: &str) -> Option<ServiceDescriptor> {
        self.pool.get_service_by_name(name).or_else(|| {
            let mut matches = self.pool.services().filter(|s| s.name() == name);
            match (matches.next(), matches.next()) {
                (Some(service), None) => Some(service),
                _ => None,
            }
        })
    }

    /// The method `pkg.Service/Method` or `pkg.Service.Method` (the package may be left out
    /// when the service name is unique). Errors list the methods that exist.
    pub fn method(&self, name: &str) -> Result<MethodDescriptor, String> {
        let all_methods = || {
            let names: Vec<String> = self
                .pool
                .services()
                .flat_map(|s| s.methods().collect::<Vec<_>>())
                .map(|m| m.full_name().to_owned())
                .collect();
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        let split = name.split_once('/').or_else(|| name.rsplit_once('.'));
        let Some((service_name, method_name)) = split else {
            return Err(format!(
                "`{name}` is not package.Service/Method; methods in {}: {}",
                self.origin,
                all_methods()
            ));
        };
        let Some(service) = self.service(service_name) else {
            return Err(format!(
                "unknown service `{service_name}` in {}; methods: {}",
                self.origin,
                all_methods()
            ));
        };
        let found = service.methods().find(|m| m.name() == method_name);
        match found {
            Some(found) => Ok(found),
            None => {
                let methods: Vec<String> = service
                    .methods()
                    .map(|m| m.full_name().to_owned())
                    .collect();
                Err(format!(
                    "service `{}` has no method `{method_name}`; methods: {}",
                    service.full_name(),
                    if methods.is_empty() {
                        "none".to_owned()
                    } else {
                        methods.join(", ")
                    }
                ))
            }
        }
    }
}

/// The runtime's descriptor of `method`, with its index (hulu_pbrpc, public_pbrpc and
/// nova_pbrpc name methods by it).
pub fn call_descriptor(method: &MethodDescriptor) -> brisk::MethodDescriptor {
    brisk::MethodDescriptor::from_names(
        method.parent_service().full_name().to_owned(),
        method.name().to_owned(),
    )
    .with_index(method.index() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Schema {
        let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/proto/echo.proto");
        Schema::from_proto_file(&proto, &[]).unwrap()
    }

    #[test]
    fn method_names_in_every_spelling() {
        let schema = echo();
        for name in [
            "example.EchoService.Echo",
            "example.EchoService/Echo",
            "EchoService.Echo",
            "EchoService/Echo",
        ] {
            assert_eq!(
                schema.method(name).unwrap().full_name(),
                "example.EchoService.Echo"
            );
        }
        let services = [
            "example.EchoService".to_owned(),
            "other.EchoService2".to_owned(),
        ];
        for name in [
            "example.EchoService/Echo",
            "EchoService/Echo",
            "EchoService.Echo",
        ] {
            assert_eq!(symbol_of(name, &services), "example.EchoService");
        }
        assert_eq!(symbol_of("EchoService", &services), "example.EchoService");
        assert_eq!(
            symbol_of("example.EchoRequest", &services),
            "example.EchoRequest"
        );
        let twice = ["a.Svc".to_owned(), "b.Svc".to_owned()];
        assert_eq!(symbol_of("Svc/M", &twice), "Svc.M");
    }

    #[test]
    fn lookups_list_what_exists() {
        let schema = echo();
        let error = schema.method("example.EchoService.Nope").unwrap_err();
        assert!(error.contains("example.EchoService.Echo"), "{error}");
        let error = schema.method("example.Nope.Echo").unwrap_err();
        assert!(error.contains("unknown service `example.Nope`"), "{error}");
        assert!(error.contains("example.EchoService.Echo"), "{error}");
        let error = schema.method("Echo").unwrap_err();
        assert!(error.contains("not package.Service/Method"), "{error}");
        let error = Schema::from_proto_file(Path::new("/no/such.proto"), &[]).unwrap_err();
        assert!(error.contains("no such file"), "{error}");
    }

    #[test]
    fn a_bad_proto_file_names_the_file_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let proto = dir.path().join("bad.proto");
        std::fs::write(&proto, "syntax = \"proto3\";\nmessage A { int32 x = ; }\n").unwrap();
        let error = Schema::from_proto_file(&proto, &[]).unwrap_err();
        assert!(error.contains("bad.proto"), "{error}");
    }
}
