//! `protoc-gen-rpc`: a `protoc` plugin generating prost messages and Brisk services.
//!
//! For each protobuf package with a file to generate it writes one file, `<package>.rs`
//! (`example.rs`, `brisk.test.rs`; `_.rs` for files without a package), holding prost's
//! messages followed by Brisk's service trait, server adapter, async client and blocking client
//! — the same code `brisk_codegen`'s `build.rs` door writes, so `brisk::include_proto!` or a
//! plain `include!` picks it up. Everything lands in one file: no insertion points, no second
//! plugin. Imported files are handed to prost so their types resolve, but only packages holding
//! a `file_to_generate` get an output file. `.proto` comments become doc comments (protoc gives
//! plugins the source info). All four method kinds are generated (unary, server-, client- and
//! bidi-streaming), and a file with services ends with `FILE_DESCRIPTOR_SET`, the encoded
//! `google.protobuf.FileDescriptorSet` of its package's files and their imports, which its
//! servers return from `schema()`.
//!
//! ```sh
//! cargo install --path protoc-gen-rpc
//! mkdir -p src/generated
//! protoc --rpc_out=src/generated --rpc_opt=blocking_client=false -I proto proto/echo.proto
//! ```
//!
//! # Options
//!
//! `--rpc_opt=a,b=c,…`: comma-separated `name`, `name=value` or `name=key=value`; in values `\,`
//! is a comma and `\\` a backslash. Switches are on with a bare `name` (or `name=true`) and off
//! with `name=false`. An unknown option is an error.
//!
//! | option | meaning |
//! |---|---|
//! | `client`, `server`, `blocking_client` | which Brisk parts to emit (all on by default; `server=false` drops the trait and `XServer`) |
//! | `codec_path=::path::Codec` | codec type of the stubs (default `::brisk::codegen::Prost`) |
//! | `extern_path=.proto.path=::rust::path` | use existing Rust types for a protobuf path |
//! | `bytes=.path` | `bytes::Bytes` for matching `bytes` fields (repeatable) |
//! | `btree_map=.path` | `BTreeMap` for matching map fields (repeatable) |
//! | `boxed=.path` | box matching fields |
//! | `type_attribute=.path=#[attr]` | attribute on matching messages and enums |
//! | `message_attribute=.path=#[attr]` | attribute on matching messages |
//! | `enum_attribute=.path=#[attr]` | attribute on matching enums |
//! | `field_attribute=.path=#[attr]` | attribute on matching fields |
//! | `compile_well_known_types` | generate `google.protobuf` types instead of using `prost_types` |
//! | `disable_comments=.path` | no doc comments on matching messages, enums and fields |
//! | `skip_debug=.path` | no `Debug` derive on matching messages and enums |
//! | `retain_enum_prefix` | keep the enum name prefix on variants |
//! | `enable_type_names` | implement `prost::Name` for messages |
//! | `type_name_domain=.path=domain` | type URL domain for `prost::Name` |
//! | `prost_path=::path`, `prost_types_path=::path` | where the `prost` / `prost-types` crates are |
//! | `default_package_filename=name` | file name for files without a package (default `_`) |
//!
//! These are `prost_build::Config`'s settings of the same names. Paths starting with `.` match
//! a fully qualified protobuf name as a prefix; others match as a suffix.
//!
//! # Errors
//!
//! Bad options and models Brisk cannot generate (e.g. methods whose Rust names clash) are
//! reported in `CodeGeneratorResponse.error`, which protoc prints; the plugin never panics (a bug inside
//! prost or the emitters is caught and reported as an internal error).

#![warn(missing_docs)]

pub mod options;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use prost::Message as _;
use prost_build::Module;
use prost_types::compiler::code_generator_response::{Feature, File};
use prost_types::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};

pub use options::{OptionError, Options};

/// Why a plugin run failed; its text goes to `CodeGeneratorResponse.error`.
#[derive(Debug)]
pub struct Error {
    message: String,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<OptionError> for Error {
    fn from(error: OptionError) -> Self {
        Error::new(format!("bad --rpc_opt: {error}"))
    }
}

impl From<brisk_codegen::Error> for Error {
    fn from(error: brisk_codegen::Error) -> Self {
        Error::new(error.to_string())
    }
}

/// Runs the plugin on an encoded `CodeGeneratorRequest` and returns the encoded
/// `CodeGeneratorResponse`. Never panics: every failure is reported in the response's `error`.
pub fn execute(request: &[u8]) -> Vec<u8> {
    respond(request).encode_to_vec()
}

/// Like [`execute`], returning the response undecoded.
pub fn respond(request: &[u8]) -> CodeGeneratorResponse {
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let request = CodeGeneratorRequest::decode(request).map_err(|error| {
            Error::new(format!(
                "cannot decode the CodeGeneratorRequest on stdin ({error}); protoc-gen-rpc is a \
                 protoc plugin: run it through `protoc --rpc_out=DIR`"
            ))
        })?;
        generate(&request)
    }));
    let mut response = match result {
        Ok(Ok(file)) => CodeGeneratorResponse {
            file,
            ..Default::default()
        },
        Ok(Err(error)) => CodeGeneratorResponse {
            error: Some(error.to_string()),
            ..Default::default()
        },
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            CodeGeneratorResponse {
                error: Some(format!(
                    "internal error in protoc-gen-rpc {}: {detail} (please report this bug \
                     with the .proto that triggers it)",
                    env!("CARGO_PKG_VERSION")
                )),
                ..Default::default()
            }
        }
    };
    response.supported_features = Some(Feature::Proto3Optional as u64);
    response
}

/// Generates the output files for a decoded request: one `<package>.rs` per protobuf package
/// that holds a file to generate.
pub fn generate(request: &CodeGeneratorRequest) -> Result<Vec<File>, Error> {
    let options = Options::parse(request.parameter())?;

    let by_name: HashSet<&str> = request.proto_file.iter().map(|file| file.name()).collect();
    let mut wanted = HashSet::new();
    for name in &request.file_to_generate {
        if !by_name.contains(name.as_str()) {
            return Err(Error::new(format!(
                "protoc asked to generate `{name}` but sent no descriptor for it"
            )));
        }
    }
    for file in &request.proto_file {
        if request
            .file_to_generate
            .iter()
            .any(|name| name == file.name())
        {
            wanted.insert(Module::from_protobuf_package_name(file.package()));
        }
    }

    let modules: Vec<(Module, prost_types::FileDescriptorProto)> = request
        .proto_file
        .iter()
        .map(|file| {
            let mut file = file.clone();
            // prost treats `Some("")` as a package named "" (`..Message`); protoc sends none.
            if file.package.as_deref() == Some("") {
                file.package = None;
            }
            (Module::from_protobuf_package_name(file.package()), file)
        })
        .collect();

    let generator = brisk_codegen::prost::ServiceGenerator::new(options.emit)
        .codec_path(options.codec_path.clone())
        .file_descriptors(request.proto_file.clone());
    let errors = generator.errors();
    let mut config = options.prost.config();
    config.service_generator(Box::new(generator));
    let generated = config
        .generate(modules)
        .map_err(|error| Error::new(format!("prost-build failed: {error}")))?;
    errors.take()?;

    Ok(output_files(
        generated,
        &wanted,
        &options.prost.default_package_filename,
    ))
}

/// The files for the wanted modules, sorted by name so the response is deterministic.
fn output_files(
    generated: HashMap<Module, String>,
    wanted: &HashSet<Module>,
    default_package_filename: &str,
) -> Vec<File> {
    let mut files: Vec<File> = generated
        .into_iter()
        .filter(|(module, _)| wanted.contains(module))
        .map(|(module, content)| File {
            name: Some(module.to_file_name_or(default_package_filename)),
            content: Some(content),
            ..Default::default()
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

#[cfg(test)]
mod tests {
    use prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, MethodDescriptorProto,
        ServiceDescriptorProto,
    };

    use super::*;

    fn message(name: &str) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.into()),
            field: vec![FieldDescriptorProto {
                name: Some("message".into()),
                number: Some(1),
                label: Some(1),
                r#type: Some(9),
                json_name: Some("message".into()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn echo_file(package: &str, name: &str, streaming: bool) -> FileDescriptorProto {
        let prefix = if package.is_empty() {
            String::new()
        } else {
            format!(".{package}")
        };
        FileDescriptorProto {
            name: Some(name.into()),
            package: Some(package.into()),
            syntax: Some("proto3".into()),
            message_type: vec![message("EchoRequest"), message("EchoResponse")],
            service: vec![ServiceDescriptorProto {
                name: Some("EchoService".into()),
                method: vec![MethodDescriptorProto {
                    name: Some("Echo".into()),
                    input_type: Some(format!("{prefix}.EchoRequest")),
                    output_type: Some(format!("{prefix}.EchoResponse")),
                    server_streaming: Some(streaming),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn request(parameter: &str, files: Vec<FileDescriptorProto>, generate: &[&str]) -> Vec<u8> {
        CodeGeneratorRequest {
            parameter: Some(parameter.into()),
            file_to_generate: generate.iter().map(|name| (*name).to_owned()).collect(),
            proto_file: files,
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn run(bytes: &[u8]) -> CodeGeneratorResponse {
        CodeGeneratorResponse::decode(execute(bytes).as_slice()).unwrap()
    }

    #[test]
    fn generates_only_requested_packages() {
        let response = run(&request(
            "",
            vec![
                echo_file("dep", "dep.proto", false),
                echo_file("my.pkg", "main.proto", false),
            ],
            &["main.proto"],
        ));
        assert_eq!(response.error, None);
        assert_eq!(
            response.supported_features,
            Some(Feature::Proto3Optional as u64)
        );
        let names: Vec<_> = response.file.iter().map(|file| file.name()).collect();
        assert_eq!(names, ["my.pkg.rs"]);
        let content = response.file[0].content();
        assert!(content.contains("pub struct EchoRequest"), "{content}");
        assert!(content.contains("pub trait EchoService"), "{content}");
        assert!(
            content.contains("pub struct EchoServiceBlockingClient"),
            "{content}"
        );
    }

    #[test]
    fn empty_package_goes_to_underscore_file() {
        let response = run(&request(
            "",
            vec![echo_file("", "x.proto", false)],
            &["x.proto"],
        ));
        assert_eq!(response.error, None);
        assert_eq!(response.file[0].name(), "_.rs");
    }

    #[test]
    fn emit_switches_select_parts() {
        let response = run(&request(
            "server=false,blocking_client=false",
            vec![echo_file("p", "p.proto", false)],
            &["p.proto"],
        ));
        let content = response.file[0].content();
        assert!(
            content.contains("pub struct EchoServiceClient"),
            "{content}"
        );
        assert!(!content.contains("EchoServiceServer"), "{content}");
        assert!(!content.contains("BlockingClient"), "{content}");
    }

    #[test]
    fn streaming_method_and_descriptor_set_are_generated() {
        let response = run(&request(
            "",
            vec![echo_file("p", "p.proto", true)],
            &["p.proto"],
        ));
        assert_eq!(response.error, None);
        let content = response.file[0].content();
        assert!(
            content.contains("-> ::core::result::Result<::brisk::Streaming<EchoResponse>"),
            "{content}"
        );
        assert!(
            content.contains("pub const FILE_DESCRIPTOR_SET: &[u8]"),
            "{content}"
        );
        assert!(
            content.contains("file_descriptor_set: FILE_DESCRIPTOR_SET"),
            "{content}"
        );
    }

    #[test]
    fn bad_option_is_an_error_in_the_response() {
        let response = run(&request(
            "nope",
            vec![echo_file("p", "p.proto", false)],
            &["p.proto"],
        ));
        assert!(response.file.is_empty());
        let error = response.error.unwrap();
        assert!(
            error.starts_with("bad --rpc_opt: unknown option `nope`"),
            "{error}"
        );
    }

    #[test]
    fn garbage_input_is_an_error_not_a_panic() {
        let response = run(b"\xff\xff\xff\xff");
        let error = response.error.unwrap();
        assert!(error.contains("cannot decode"), "{error}");
    }

    #[test]
    fn missing_descriptor_is_an_error() {
        let response = run(&request(
            "",
            vec![echo_file("p", "p.proto", false)],
            &["q.proto"],
        ));
        let error = response.error.unwrap();
        assert!(error.contains("`q.proto`"), "{error}");
    }
}
