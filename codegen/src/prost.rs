//! The prost front door: a [`prost_build::ServiceGenerator`] that turns prost's services into
//! the [`model`](crate::model) and appends the emitted stubs to prost's output, so stubs and
//! messages of a package share one file and message types resolve by prost's own paths.
//!
//! Problems (e.g. an invalid model) cannot be returned from the `ServiceGenerator` hook, so
//! they are recorded and read back through [`GeneratorErrors`] after prost ran.
//!
//! Given the parsed `.proto` files ([`ServiceGenerator::file_descriptors`]), the generator also
//! ends each package's file with [`FILE_DESCRIPTOR_SET_CONST`], the encoded
//! `google.protobuf.FileDescriptorSet` of the package's files and everything they import, and its
//! servers answer `Service::schema()` with it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use prost::Message as _;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

use crate::comments::ProtoComments;
use crate::emit::{self, EmitOptions};
use crate::error::Error;
use crate::model::{Method, Schema, Service, DEFAULT_CODEC_PATH};

/// The name of the constant holding a generated file's encoded `FileDescriptorSet`.
pub const FILE_DESCRIPTOR_SET_CONST: &str = "FILE_DESCRIPTOR_SET";

/// Converts one prost service into the model, using `codec_path` as its codec. All four method
/// kinds (unary, server-, client- and bidi-streaming) are supported, so this does not fail
/// today; the `Result` leaves room for constructs Brisk cannot generate.
pub fn convert_service(service: prost_build::Service, codec_path: &str) -> Result<Service, Error> {
    let mut model = Service::new(service.proto_name, service.package);
    model.rust_name = service.name;
    model.comments = join_comments(service.comments);
    model.codec_path = codec_path.to_owned();
    model.methods = service
        .methods
        .into_iter()
        .map(|method| Method {
            proto_name: method.proto_name,
            rust_name: method.name,
            input_type: method.input_type,
            output_type: method.output_type,
            input_message: method.input_proto_type.trim_start_matches('.').to_owned(),
            client_streaming: method.client_streaming,
            server_streaming: method.server_streaming,
            comments: join_comments(method.comments),
            takes_context: true,
            returns_result: true,
        })
        .collect();
    Ok(model)
}

/// Leading comments, then (after an empty line) trailing ones; detached comments are dropped.
fn join_comments(comments: prost_build::Comments) -> Vec<String> {
    let mut lines = comments.leading;
    if !lines.is_empty() && !comments.trailing.is_empty() {
        lines.push(String::new());
    }
    lines.extend(comments.trailing);
    lines
}

/// A shared handle on the errors recorded by a [`ServiceGenerator`].
#[derive(Debug, Clone, Default)]
pub struct GeneratorErrors {
    errors: Arc<Mutex<Vec<Error>>>,
}

impl GeneratorErrors {
    fn push(&self, error: Error) {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(error);
    }

    /// Takes the recorded errors; `Err` with all of them joined if there were any.
    pub fn take(&self) -> Result<(), Error> {
        let errors =
            std::mem::take(&mut *self.errors.lock().unwrap_or_else(PoisonError::into_inner));
        match Error::combine(errors) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Brisk's [`prost_build::ServiceGenerator`]: plug it into a [`prost_build::Config`] to get
/// Brisk stubs next to prost's messages.
///
/// ```no_run
/// let generator = brisk_codegen::prost::ServiceGenerator::new(Default::default());
/// let errors = generator.errors();
/// let mut config = prost_build::Config::new();
/// config.service_generator(Box::new(generator));
/// // config.compile_fds(fds)?; then:
/// errors.take()?;
/// # Ok::<(), brisk_codegen::Error>(())
/// ```
#[derive(Debug)]
pub struct ServiceGenerator {
    options: EmitOptions,
    codec_path: String,
    comments: ProtoComments,
    errors: GeneratorErrors,
    files: Option<Vec<FileDescriptorProto>>,
}

impl ServiceGenerator {
    /// A generator emitting the parts selected by `options`, with the default codec.
    pub fn new(options: EmitOptions) -> Self {
        ServiceGenerator {
            options,
            codec_path: DEFAULT_CODEC_PATH.to_owned(),
            comments: ProtoComments::default(),
            errors: GeneratorErrors::default(),
            files: None,
        }
    }

    /// Describes the messages with `files`: the `.proto` files being compiled and everything
    /// they import, dependencies included (e.g. `CodeGeneratorRequest.proto_file`). Each
    /// package's generated file then ends with a [`FILE_DESCRIPTOR_SET_CONST`] constant holding
    /// the encoded `FileDescriptorSet` of the package's files and their transitive imports
    /// (without source info), and the package's servers return it from `schema()` as
    /// `MessageSchema::Protobuf` and its clients attach it to their `MethodDescriptor`s.
    /// Without it, servers keep the default schema.
    pub fn file_descriptors(mut self, files: Vec<FileDescriptorProto>) -> Self {
        self.files = Some(files);
        self
    }

    /// Uses another codec type (a Rust path) for all services.
    pub fn codec_path(mut self, codec_path: impl Into<String>) -> Self {
        self.codec_path = codec_path.into();
        self
    }

    /// Comments to use when prost has none (descriptors without `source_code_info`).
    pub(crate) fn with_comments(mut self, comments: ProtoComments) -> Self {
        self.comments = comments;
        self
    }

    /// A handle to read the errors recorded while prost runs the generator.
    pub fn errors(&self) -> GeneratorErrors {
        self.errors.clone()
    }

    fn fill_missing_comments(&self, service: &mut Service) {
        let Some(found) = self.comments.service(&service.package, &service.proto_name) else {
            return;
        };
        if service.comments.is_empty() {
            service.comments = found.leading.clone();
        }
        for method in &mut service.methods {
            if method.comments.is_empty() {
                if let Some(lines) = found.methods.get(&method.proto_name) {
                    method.comments = lines.clone();
                }
            }
        }
    }
}

impl prost_build::ServiceGenerator for ServiceGenerator {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        let rendered = convert_service(service, &self.codec_path).and_then(|mut service| {
            self.fill_missing_comments(&mut service);
            // Servers answer `schema()` with it; clients attach it to their methods (for
            // JSON over HTTP).
            if (self.options.server || self.options.client) && self.files.is_some() {
                service.schema = Schema::Protobuf(FILE_DESCRIPTOR_SET_CONST.to_owned());
            }
            emit::render(&service, &self.options)
        });
        match rendered {
            Ok(code) => {
                if !code.is_empty() {
                    buf.push('\n');
                    buf.push_str(&code);
                }
            }
            Err(error) => self.errors.push(error),
        }
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        let Some(files) = &self.files else {
            return;
        };
        if !self.options.server && !self.options.client {
            return;
        }
        let set = package_descriptor_set(files, package);
        buf.push('\n');
        buf.push_str(&render_descriptor_constant(package, &set.encode_to_vec()));
    }
}

/// The files of `package` and, transitively, everything they import, dependencies before the
/// files that import them, without source info. Imports missing from `files` are left out.
pub fn package_descriptor_set(files: &[FileDescriptorProto], package: &str) -> FileDescriptorSet {
    let by_name: HashMap<&str, &FileDescriptorProto> =
        files.iter().map(|file| (file.name(), file)).collect();
    let mut seen = HashSet::new();
    let mut ordered = Vec::new();
    // Iterative post-order walk, so a deep import chain cannot overflow the stack.
    for root in files.iter().filter(|file| file.package() == package) {
        if !seen.insert(root.name()) {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        while let Some((file, next)) = stack.pop() {
            if let Some(dependency) = file.dependency.get(next) {
                stack.push((file, next + 1));
                if let Some(&found) = by_name.get(dependency.as_str()) {
                    if seen.insert(found.name()) {
                        stack.push((found, 0));
                    }
                }
            } else {
                let mut file = file.clone();
                file.source_code_info = None;
                ordered.push(file);
            }
        }
    }
    FileDescriptorSet { file: ordered }
}

/// Width of one line of the byte-string literal, in escaped characters.
const LITERAL_LINE_WIDTH: usize = 96;

/// The Rust source of the descriptor-set constant: a byte-string literal split over lines with
/// `\`-newline continuations, so the generated file stays readable.
pub fn render_descriptor_constant(package: &str, bytes: &[u8]) -> String {
    let shown = if package.is_empty() {
        "(no package)".to_owned()
    } else {
        format!("`{package}`")
    };
    let mut out = format!(
        "/// The encoded `google.protobuf.FileDescriptorSet` of package {shown}:\n\
         /// its `.proto` files and everything they import. The servers above return it from\n\
         /// `schema()`, so HTTP can carry their messages as JSON.\n\
         #[allow(dead_code)]\n\
         pub const {FILE_DESCRIPTOR_SET_CONST}: &[u8] = b\"\\\n"
    );
    let mut line = String::new();
    for &byte in bytes {
        let escaped = escape_byte(byte, line.is_empty());
        if line.len() + escaped.len() > LITERAL_LINE_WIDTH {
            out.push_str("    ");
            out.push_str(&line);
            out.push_str("\\\n");
            line.clear();
            line.push_str(&escape_byte(byte, true));
        } else {
            line.push_str(&escaped);
        }
    }
    out.push_str("    ");
    out.push_str(&line);
    out.push_str("\";\n");
    out
}

/// One byte inside a byte-string literal. A space that starts a line is escaped, since a
/// `\`-newline continuation swallows the whitespace that follows it; a zero byte is `\x00`, as
/// `\0` before a digit reads as an octal escape (clippy's `octal_escapes`).
fn escape_byte(byte: u8, line_start: bool) -> String {
    match byte {
        b'\\' => "\\\\".to_owned(),
        b'"' => "\\\"".to_owned(),
        b'\n' => "\\n".to_owned(),
        b'\r' => "\\r".to_owned(),
        b'\t' => "\\t".to_owned(),
        b' ' if !line_start => " ".to_owned(),
        0x21..=0x7e => char::from(byte).to_string(),
        _ => format!("\\x{byte:02x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prost_service(client_streaming: bool) -> prost_build::Service {
        prost_build::Service {
            name: "EchoService".into(),
            proto_name: "EchoService".into(),
            package: "example".into(),
            comments: prost_build::Comments {
                leading: vec![" Echo.".into()],
                ..Default::default()
            },
            methods: vec![prost_build::Method {
                name: "foo".into(),
                proto_name: "Foo".into(),
                comments: Default::default(),
                input_type: "EchoRequest".into(),
                output_type: "EchoResponse".into(),
                input_proto_type: ".example.EchoRequest".into(),
                output_proto_type: ".example.EchoResponse".into(),
                options: Default::default(),
                client_streaming,
                server_streaming: false,
            }],
            options: Default::default(),
        }
    }

    #[test]
    fn converts_unary_service() {
        let service = convert_service(prost_service(false), DEFAULT_CODEC_PATH).unwrap();
        assert_eq!(service.full_name(), "example.EchoService");
        assert_eq!(service.comments, [" Echo."]);
        assert_eq!(service.methods[0].rust_name, "foo");
        assert_eq!(service.methods[0].input_type, "EchoRequest");
    }

    #[test]
    fn streaming_is_emitted() {
        use prost_build::ServiceGenerator as _;
        let mut generator = ServiceGenerator::new(EmitOptions::default());
        let errors = generator.errors();
        let mut buf = String::new();
        generator.generate(prost_service(true), &mut buf);
        errors.take().unwrap();
        assert!(
            buf.contains("requests: ::brisk::Streaming<EchoRequest>"),
            "{buf}"
        );
        assert!(buf.contains("fn call_streaming("), "{buf}");
        // Without descriptors there is no schema and no constant.
        generator.finalize_package("example", &mut buf);
        assert!(!buf.contains("fn schema("), "{buf}");
        assert!(!buf.contains(FILE_DESCRIPTOR_SET_CONST), "{buf}");
    }

    fn file(name: &str, package: &str, deps: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            package: Some(package.into()),
            dependency: deps.iter().map(|dep| (*dep).to_owned()).collect(),
            source_code_info: Some(Default::default()),
            ..Default::default()
        }
    }

    fn names(set: &FileDescriptorSet) -> Vec<&str> {
        set.file.iter().map(|file| file.name()).collect()
    }

    #[test]
    fn descriptor_set_holds_the_package_and_its_transitive_imports() {
        let files = vec![
            file(
                "app.proto",
                "app",
                &["mid.proto", "google/protobuf/empty.proto"],
            ),
            file("other.proto", "other", &[]),
            file("mid.proto", "mid", &["base.proto"]),
            file("base.proto", "base", &[]),
            file("google/protobuf/empty.proto", "google.protobuf", &[]),
            file("app2.proto", "app", &["base.proto", "missing.proto"]),
        ];
        let set = package_descriptor_set(&files, "app");
        assert_eq!(
            names(&set),
            [
                "base.proto",
                "mid.proto",
                "google/protobuf/empty.proto",
                "app.proto",
                "app2.proto"
            ]
        );
        assert!(set.file.iter().all(|file| file.source_code_info.is_none()));
        assert_eq!(
            names(&package_descriptor_set(&files, "base")),
            ["base.proto"]
        );
        assert!(package_descriptor_set(&files, "nope").file.is_empty());
    }

    #[test]
    fn import_cycles_do_not_loop() {
        let files = vec![
            file("a.proto", "a", &["b.proto"]),
            file("b.proto", "b", &["a.proto"]),
        ];
        assert_eq!(
            names(&package_descriptor_set(&files, "a")),
            ["b.proto", "a.proto"]
        );
    }

    #[test]
    fn descriptor_constant_round_trips_through_rust() {
        let mut bytes: Vec<u8> = (0..=255u8).collect();
        bytes.extend_from_slice(b"   spaces \\ \" quotes\n");
        bytes.extend(std::iter::repeat_n(b' ', 300));
        for data in [Vec::new(), bytes] {
            let code = render_descriptor_constant("a.b", &data);
            assert!(code.lines().all(|line| line.len() <= 110), "{code}");
            let file = syn::parse_file(&code).unwrap();
            let syn::Item::Const(item) = &file.items[0] else {
                panic!("not a const: {code}");
            };
            assert_eq!(item.ident, FILE_DESCRIPTOR_SET_CONST);
            let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::ByteStr(literal),
                ..
            }) = &*item.expr
            else {
                panic!("not a byte string: {code}");
            };
            assert_eq!(literal.value(), data);
        }
        // A zero byte before a digit must not read as an octal escape (clippy's
        // `octal_escapes` fires on `\02` in generated code).
        let code = render_descriptor_constant("a", b"\x002");
        assert!(code.contains("\\x002"), "{code}");
    }

    #[test]
    fn generator_with_descriptors_emits_schema_and_constant() {
        use prost_build::ServiceGenerator as _;
        let files = vec![file("echo.proto", "example", &[])];
        let mut generator =
            ServiceGenerator::new(EmitOptions::default()).file_descriptors(files.clone());
        let mut buf = String::new();
        generator.generate(prost_service(false), &mut buf);
        generator.finalize_package("example", &mut buf);
        generator.errors().take().unwrap();
        assert!(
            buf.contains("file_descriptor_set: FILE_DESCRIPTOR_SET"),
            "{buf}"
        );
        assert_eq!(buf.matches("pub const FILE_DESCRIPTOR_SET").count(), 1);
        syn::parse_file(&buf).unwrap();

        // A client alone still carries the descriptors, for JSON over HTTP.
        let mut generator = ServiceGenerator::new(EmitOptions {
            server: false,
            ..EmitOptions::default()
        })
        .file_descriptors(files.clone());
        let mut buf = String::new();
        generator.generate(prost_service(false), &mut buf);
        generator.finalize_package("example", &mut buf);
        assert!(
            buf.contains(".with_file_descriptor_set(FILE_DESCRIPTOR_SET)"),
            "{buf}"
        );
        assert_eq!(buf.matches("pub const FILE_DESCRIPTOR_SET").count(), 1);

        // Neither server nor client: nothing needs the constant.
        let mut generator = ServiceGenerator::new(EmitOptions {
            server: false,
            client: false,
            blocking_client: false,
        })
        .file_descriptors(files);
        let mut buf = String::new();
        generator.generate(prost_service(false), &mut buf);
        generator.finalize_package("example", &mut buf);
        assert!(!buf.contains(FILE_DESCRIPTOR_SET_CONST), "{buf}");
    }
}
