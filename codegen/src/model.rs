//! The IDL-agnostic service model.
//!
//! Every front door of Brisk's code generation fills in these two plain structs: the
//! `build.rs` API (through prost, see `crate::prost`), the protoc plugin and the
//! `#[brisk::service]` proc-macro. The emitters in [`crate::emit`] only ever see this model, so
//! every front door produces the same Rust shapes.

/// The codec path used when a front door does not pick one: Brisk's protobuf codec.
pub const DEFAULT_CODEC_PATH: &str = "::brisk::codegen::Prost";

/// The codec path for serde types carried as JSON (`#[brisk::service(codec = "json")]`).
pub const JSON_CODEC_PATH: &str = "::brisk::codec::Json";

/// One RPC service, e.g. `example.EchoService`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service name as written in the IDL, e.g. `"EchoService"`.
    pub proto_name: String,
    /// The protobuf package, e.g. `"example"`; empty when the IDL declares none.
    pub package: String,
    /// The Rust type name used for the generated items, e.g. `"EchoService"`: the trait is
    /// `EchoService`, the stubs `EchoServiceServer`, `EchoServiceClient` and
    /// `EchoServiceBlockingClient`.
    pub rust_name: String,
    /// Documentation lines (without the comment markers), emitted as `///` docs.
    pub comments: Vec<String>,
    /// The methods, in IDL order. The position of a method is its index on the wire.
    pub methods: Vec<Method>,
    /// Rust path of the codec type that (de)serializes messages, e.g.
    /// [`DEFAULT_CODEC_PATH`].
    pub codec_path: String,
    /// Visibility of the generated items (trait, server adapter, clients) as Rust source:
    /// `"pub"` (the default), `"pub(crate)"`, or `""` for private.
    pub visibility: String,
    /// What the server adapter's `schema()` answers: how HTTP can describe the messages.
    pub schema: Schema,
}

/// Where a generated server's `schema()` (`::brisk::codegen::MessageSchema`) comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Schema {
    /// No `schema()` is generated: the runtime's default, `MessageSchema::Opaque`.
    #[default]
    Opaque,
    /// `MessageSchema::Json`: the messages are JSON already (the JSON codec).
    Json,
    /// `MessageSchema::Protobuf`, with the encoded `google.protobuf.FileDescriptorSet` found in
    /// the `&'static [u8]` constant at this Rust path (relative to the generated code), e.g.
    /// `"FILE_DESCRIPTOR_SET"`.
    Protobuf(String),
}

impl Service {
    /// A service with no methods, no comments, the Rust name equal to `proto_name` and the
    /// default codec ([`DEFAULT_CODEC_PATH`]).
    pub fn new(proto_name: impl Into<String>, package: impl Into<String>) -> Self {
        let proto_name = proto_name.into();
        Service {
            rust_name: proto_name.clone(),
            proto_name,
            package: package.into(),
            comments: Vec::new(),
            methods: Vec::new(),
            codec_path: DEFAULT_CODEC_PATH.to_owned(),
            visibility: "pub".to_owned(),
            schema: Schema::Opaque,
        }
    }

    /// The fully qualified protobuf name: `"example.EchoService"`, or just `"EchoService"` when
    /// the package is empty.
    pub fn full_name(&self) -> String {
        if self.package.is_empty() {
            self.proto_name.clone()
        } else {
            format!("{}.{}", self.package, self.proto_name)
        }
    }

    /// The fully qualified name of one of this service's methods, e.g.
    /// `"example.EchoService.Echo"`; used in docs and error messages.
    pub fn method_full_name(&self, method: &Method) -> String {
        format!("{}.{}", self.full_name(), method.proto_name)
    }
}

/// One RPC method of a [`Service`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// The method name as written in the IDL, e.g. `"Echo"`; this is what goes on the wire.
    pub proto_name: String,
    /// The Rust method name, e.g. `"echo"` (may be a raw identifier such as `"r#type"`).
    pub rust_name: String,
    /// Rust path of the request type as seen from the module the code is emitted into, e.g.
    /// `"EchoRequest"`, `"super::other::Foo"` or `"::prost_types::Empty"`.
    pub input_type: String,
    /// Rust path of the response type, like [`Method::input_type`].
    pub output_type: String,
    /// The request message's full protobuf name, e.g. `"example.EchoRequest"`, which parse
    /// errors name; empty when there is none (then they name the Rust type).
    pub input_message: String,
    /// Whether the client sends a stream of requests.
    pub client_streaming: bool,
    /// Whether the server answers with a stream of responses.
    pub server_streaming: bool,
    /// Documentation lines (without the comment markers), emitted as `///` docs.
    pub comments: Vec<String>,
    /// Whether the trait method takes `cntl: &mut ::brisk::ServerContext` before the request
    /// (the default; `#[brisk::service]` traits may leave it out).
    pub takes_context: bool,
    /// Whether the trait method returns `Result<Response, ::brisk::Status>` (the default) or
    /// just the response (an infallible handler). Clients always return a `Result`.
    pub returns_result: bool,
}

impl Method {
    /// A unary method with no comments, taking the server context and returning a `Result`.
    pub fn new(
        proto_name: impl Into<String>,
        rust_name: impl Into<String>,
        input_type: impl Into<String>,
        output_type: impl Into<String>,
    ) -> Self {
        Method {
            proto_name: proto_name.into(),
            rust_name: rust_name.into(),
            input_type: input_type.into(),
            output_type: output_type.into(),
            input_message: String::new(),
            client_streaming: false,
            server_streaming: false,
            comments: Vec::new(),
            takes_context: true,
            returns_result: true,
        }
    }

    /// Whether either side streams.
    pub fn is_streaming(&self) -> bool {
        self.client_streaming || self.server_streaming
    }

    /// The method's kind, from its two streaming flags.
    pub fn kind(&self) -> MethodKind {
        match (self.client_streaming, self.server_streaming) {
            (false, false) => MethodKind::Unary,
            (false, true) => MethodKind::ServerStreaming,
            (true, false) => MethodKind::ClientStreaming,
            (true, true) => MethodKind::BidiStreaming,
        }
    }
}

/// The four kinds of RPC method, as `.proto` declares them with `stream` (mirrors the runtime's
/// `brisk::MethodKind`, whose variant of the same name the generated code names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses.
    ServerStreaming,
    /// A stream of requests, one response.
    ClientStreaming,
    /// Streams both ways.
    BidiStreaming,
}

impl MethodKind {
    /// The variant's name, as in `::brisk::codegen::MethodKind::<name>`.
    pub fn variant_name(self) -> &'static str {
        match self {
            MethodKind::Unary => "Unary",
            MethodKind::ServerStreaming => "ServerStreaming",
            MethodKind::ClientStreaming => "ClientStreaming",
            MethodKind::BidiStreaming => "BidiStreaming",
        }
    }

    /// A short human name: `"unary"`, `"server-streaming"`, `"client-streaming"`, `"bidi-streaming"`.
    pub fn description(self) -> &'static str {
        match self {
            MethodKind::Unary => "unary",
            MethodKind::ServerStreaming => "server-streaming",
            MethodKind::ClientStreaming => "client-streaming",
            MethodKind::BidiStreaming => "bidi-streaming",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_name_with_and_without_package() {
        let mut service = Service::new("EchoService", "example");
        assert_eq!(service.full_name(), "example.EchoService");
        let method = Method::new("Echo", "echo", "EchoRequest", "EchoResponse");
        assert_eq!(
            service.method_full_name(&method),
            "example.EchoService.Echo"
        );
        service.package.clear();
        assert_eq!(service.full_name(), "EchoService");
        assert_eq!(service.codec_path, DEFAULT_CODEC_PATH);
        assert!(!method.is_streaming());
        assert!(method.takes_context && method.returns_result);
        assert_eq!(service.visibility, "pub");
        assert_eq!(service.schema, Schema::Opaque);
        assert_eq!(method.kind(), MethodKind::Unary);
    }

    #[test]
    fn kinds_follow_the_streaming_flags() {
        let mut method = Method::new("M", "m", "A", "B");
        method.server_streaming = true;
        assert_eq!(method.kind(), MethodKind::ServerStreaming);
        method.client_streaming = true;
        assert_eq!(method.kind(), MethodKind::BidiStreaming);
        method.server_streaming = false;
        assert_eq!(method.kind(), MethodKind::ClientStreaming);
        assert!(method.is_streaming());
        assert_eq!(method.kind().variant_name(), "ClientStreaming");
    }
}
