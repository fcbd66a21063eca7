//! The `build.rs` API: parse `.proto` files in pure Rust (no `protoc`), generate prost
//! messages plus Brisk stubs, write one `<package>.rs` per protobuf package.

use std::env;
use std::path::{Path, PathBuf};

use prost::Message as _;
use protobuf::Message as _;

use crate::comments::ProtoComments;
use crate::emit::EmitOptions;
use crate::error::{Error, ErrorKind};
use crate::model::DEFAULT_CODEC_PATH;
use crate::parse_error;
use crate::prost::ServiceGenerator;
use crate::prost_options::ProstOptions;

/// Starts configuring code generation; finish with [`Builder::compile`].
pub fn configure() -> Builder {
    Builder::default()
}

/// Compiles one `.proto` file with default settings; its parent directory is the include path.
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     brisk_codegen::compile_protos("proto/echo.proto")?;
///     Ok(())
/// }
/// ```
pub fn compile_protos(proto: impl AsRef<Path>) -> Result<(), Error> {
    let proto = proto.as_ref();
    let include = match proto.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    configure().compile(&[proto], &[include])
}

/// Settings for one code generation run. Created by [`configure`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    emit: EmitOptions,
    codec_path: String,
    out_dir: Option<PathBuf>,
    emit_rerun_if_changed: Option<bool>,
    prost: ProstOptions,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            emit: EmitOptions::default(),
            codec_path: DEFAULT_CODEC_PATH.to_owned(),
            out_dir: None,
            emit_rerun_if_changed: None,
            prost: ProstOptions::default(),
        }
    }
}

impl Builder {
    /// Whether to generate the async clients `XClient` (default `true`).
    pub fn build_client(mut self, enable: bool) -> Self {
        self.emit.client = enable;
        self
    }

    /// Whether to generate the service traits and `XServer` adapters (default `true`).
    pub fn build_server(mut self, enable: bool) -> Self {
        self.emit.server = enable;
        self
    }

    /// Whether to generate the blocking clients `XBlockingClient` (default `true`). They wrap
    /// the async clients, which are then generated as well.
    pub fn build_blocking_client(mut self, enable: bool) -> Self {
        self.emit.blocking_client = enable;
        self
    }

    /// Where to write the generated files. Defaults to the `OUT_DIR` environment variable, as
    /// Cargo sets it for build scripts, so `brisk::include_proto!("package")` finds them.
    pub fn out_dir(mut self, out_dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(out_dir.as_ref().to_owned());
        self
    }

    /// Rust path of the codec type used by the stubs (default `::brisk::codegen::Prost`).
    pub fn codec_path(mut self, codec_path: impl Into<String>) -> Self {
        self.codec_path = codec_path.into();
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for the `.proto` files read. By default they
    /// are printed when running inside a build script (`OUT_DIR` and `CARGO` are set).
    pub fn emit_rerun_if_changed(mut self, enable: bool) -> Self {
        self.emit_rerun_if_changed = Some(enable);
        self
    }

    /// Uses existing Rust types for a protobuf path instead of generating them; see
    /// [`prost_build::Config::extern_path`].
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.prost
            .extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Adds an attribute to matching messages and enums; see
    /// [`prost_build::Config::type_attribute`].
    pub fn type_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.prost
            .type_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Adds an attribute to matching fields; see [`prost_build::Config::field_attribute`].
    pub fn field_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.prost
            .field_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Adds an attribute to matching messages; see
    /// [`prost_build::Config::message_attribute`].
    pub fn message_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.prost
            .message_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Generates `bytes::Bytes` instead of `Vec<u8>` for matching `bytes` fields; see
    /// [`prost_build::Config::bytes`].
    pub fn bytes(mut self, paths: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.prost
            .bytes
            .extend(paths.into_iter().map(|path| path.as_ref().to_owned()));
        self
    }

    /// Generates `BTreeMap` instead of `HashMap` for matching map fields; see
    /// [`prost_build::Config::btree_map`].
    pub fn btree_map(mut self, paths: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        self.prost
            .btree_map
            .extend(paths.into_iter().map(|path| path.as_ref().to_owned()));
        self
    }

    /// Parses `protos` (each must lie under one of `includes`; imports are looked up there,
    /// `google/protobuf/*.proto` are built in), then writes one `<package>.rs` per protobuf
    /// package to the output directory.
    ///
    /// Each file that has services also gets a `FILE_DESCRIPTOR_SET` constant (the encoded
    /// `google.protobuf.FileDescriptorSet` of the package's files and all their imports), which
    /// its servers return from `schema()` and its clients attach to their methods (for JSON
    /// over HTTP).
    ///
    /// Fails with `path:line:column: reason` for a broken `.proto`.
    pub fn compile(
        self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Error> {
        let protos: Vec<&Path> = protos.iter().map(AsRef::as_ref).collect();
        let includes: Vec<&Path> = includes.iter().map(AsRef::as_ref).collect();
        let rerun = self
            .emit_rerun_if_changed
            .unwrap_or_else(|| env::var_os("OUT_DIR").is_some() && env::var_os("CARGO").is_some());
        if rerun {
            for proto in &protos {
                println!("cargo:rerun-if-changed={}", proto.display());
            }
        }

        // protobuf-parse panics on some malformed files (found by the `proto_codegen` fuzz
        // target): a clear error instead of a build script's panic.
        let parsed = catch_panic("the .proto parser", || {
            protobuf_parse::Parser::new()
                .pure()
                .includes(&includes)
                .inputs(&protos)
                .parse_and_typecheck()
        })?
        .map_err(|error| parse_error::from_protobuf_parse(error.as_ref(), &protos))?;

        let inputs: Vec<&str> = parsed.relative_paths.iter().map(|p| p.to_str()).collect();
        let mut comments = ProtoComments::default();
        // Every parsed file, for the descriptor sets; those to generate, for prost.
        let all = to_prost(parsed.file_descriptors.clone())?;
        let mut files = Vec::with_capacity(parsed.file_descriptors.len());
        for file in parsed.file_descriptors {
            let name = file.name().to_owned();
            let is_input = inputs.contains(&name.as_str());
            // The built-in well-known types go to prost too: they map to `::prost_types`, so
            // it generates nothing for them, but it looks their messages up (whether a message
            // that holds one can derive `Copy`) and panicked when they were missing.
            if !is_input && name.starts_with("google/protobuf/") {
                files.push(file);
                continue;
            }
            if let Some(path) = find_in_includes(&includes, &name) {
                if rerun && !is_input {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
                if let Ok(source) = std::fs::read_to_string(&path) {
                    comments.add_file(file.package(), &source);
                }
            }
            files.push(file);
        }
        let set = prost_types::FileDescriptorSet {
            file: to_prost(files)?,
        };

        let generator = ServiceGenerator::new(self.emit)
            .codec_path(self.codec_path.clone())
            .with_comments(comments)
            .file_descriptors(all);
        let errors = generator.errors();
        let mut config = self.prost_config();
        config.service_generator(Box::new(generator));
        // prost-build panics on some descriptors it does not expect: a clear error instead of
        // a build script's panic.
        catch_panic("prost-build", || config.compile_fds(set))??;
        errors.take()
    }

    fn prost_config(&self) -> prost_build::Config {
        let mut config = self.prost.config();
        if let Some(out_dir) = &self.out_dir {
            config.out_dir(out_dir);
        }
        config
    }
}

/// Runs `work` of a dependency (`who`) that may panic on input it does not expect; its panic
/// becomes an `Unsupported` error naming it.
fn catch_panic<T>(who: &str, work: impl FnOnce() -> T) -> Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Error::new(
            ErrorKind::Unsupported,
            format!("{who} failed on these files ({what}); please report them"),
        )
    })
}

/// protobuf-parse's descriptors as prost's (through their encoding).
fn to_prost(
    files: Vec<protobuf::descriptor::FileDescriptorProto>,
) -> Result<Vec<prost_types::FileDescriptorProto>, Error> {
    let mut set = protobuf::descriptor::FileDescriptorSet::new();
    set.file = files;
    let bytes = set.write_to_bytes().map_err(|error| {
        Error::with_source(
            ErrorKind::Parse,
            format!("cannot serialize file descriptors: {error}"),
            error,
        )
    })?;
    prost_types::FileDescriptorSet::decode(bytes.as_slice())
        .map(|set| set.file)
        .map_err(|error| {
            Error::with_source(
                ErrorKind::Parse,
                format!("cannot convert file descriptors for prost: {error}"),
                error,
            )
        })
}

/// The file an import name (`a/b.proto`) resolves to: the first include dir that has it.
fn find_in_includes(includes: &[&Path], name: &str) -> Option<PathBuf> {
    includes
        .iter()
        .map(|include| include.join(name))
        .find(|path| path.is_file())
}
