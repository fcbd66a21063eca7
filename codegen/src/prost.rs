//! The prost front door: a [`prost_build::ServiceGenerator`] that turns prost's services into
//! the [`model`](crate::model) and appends the emitted stubs to prost's output, so stubs and
//! messages of a package share one file and message types resolve by prost's own paths.
//!
//! Problems (e.g. a streaming method) cannot be returned from the `ServiceGenerator` hook, so
//! they are recorded and read back through [`GeneratorErrors`] after prost ran.

use std::sync::{Arc, Mutex, PoisonError};

use crate::comments::ProtoComments;
use crate::emit::{self, EmitOptions};
use crate::error::{Error, ErrorKind};
use crate::model::{Method, Service, DEFAULT_CODEC_PATH};

/// Converts one prost service into the model, using `codec_path` as its codec.
///
/// Fails (one error per method, joined) when a method streams in either direction, which Brisk
/// cannot generate yet.
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
            client_streaming: method.client_streaming,
            server_streaming: method.server_streaming,
            comments: join_comments(method.comments),
            takes_context: true,
            returns_result: true,
        })
        .collect();
    let streaming = model.methods.iter().filter(|method| method.is_streaming());
    let errors = streaming.map(|method| {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "streaming method `{}` is not supported yet (streaming RPC arrives with the \
                 gRPC work)",
                model.method_full_name(method)
            ),
        )
    });
    match Error::combine(errors) {
        Some(error) => Err(error),
        None => Ok(model),
    }
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
}

impl ServiceGenerator {
    /// A generator emitting the parts selected by `options`, with the default codec.
    pub fn new(options: EmitOptions) -> Self {
        ServiceGenerator {
            options,
            codec_path: DEFAULT_CODEC_PATH.to_owned(),
            comments: ProtoComments::default(),
            errors: GeneratorErrors::default(),
        }
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
    fn streaming_is_recorded_not_emitted() {
        use prost_build::ServiceGenerator as _;
        let mut generator = ServiceGenerator::new(EmitOptions::default());
        let errors = generator.errors();
        let mut buf = String::new();
        generator.generate(prost_service(true), &mut buf);
        assert!(buf.is_empty());
        let error = errors.take().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unsupported);
        assert_eq!(
            error.to_string(),
            "streaming method `example.EchoService.Foo` is not supported yet (streaming RPC \
             arrives with the gRPC work)"
        );
        assert!(errors.take().is_ok(), "errors are taken once");
    }
}
