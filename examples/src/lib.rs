//! Shared pieces of Brisk's examples: the code generated from `proto/echo.proto`, the echo
//! service, logging set-up and [`tiny`] (a protocol of one's own, for `custom_protocol`).
//! The binaries parse their command lines with clap.

/// Code generated from `proto/echo.proto` (package `example`).
pub mod echo {
    brisk::include_proto!("example");
}

pub mod interop;
pub mod kv_store;
pub mod tiny;

/// The user guide (`docs/src/`): each chapter's Rust blocks compile (and most run) as this
/// crate's doc tests, against the code generated from `proto/echo.proto`.
#[cfg(doctest)]
pub mod guide {
    macro_rules! chapters {
        ($($name:ident => $file:literal),* $(,)?) => {
            $(
                #[doc = include_str!(concat!("../../docs/src/", $file))]
                pub struct $name;
            )*
            /// The chapters included above, for the test that none is left out.
            pub const FILES: &[&str] = &[$($file),*];
        };
    }
    chapters! {
        Introduction => "introduction.md",
        GettingStarted => "getting-started.md",
        Codegen => "codegen.md",
        Clusters => "clusters.md",
        Protocols => "protocols.md",
        Observability => "observability.md",
        Tuning => "tuning.md",
        Cli => "cli.md",
        FromTonic => "from-tonic.md",
        FromBrpc => "from-brpc.md",
    }
}

use echo::{EchoRequest, EchoResponse};

/// brpc's echo service: returns the message, and the request attachment as the response
/// attachment.
#[derive(Debug, Default)]
pub struct Echo;

impl echo::EchoService for Echo {
    async fn echo(
        &self,
        cntl: &mut brisk::ServerContext,
        request: EchoRequest,
    ) -> Result<EchoResponse, brisk::Status> {
        let attachment = cntl.request_attachment().clone();
        cntl.set_response_attachment(attachment);
        cntl.set_response_compress_type(cntl.request_compress_type());
        Ok(EchoResponse {
            message: request.message,
        })
    }
}

/// Answers every nshead request with its own body (and header), as brpc's
/// `nshead_extension_c++` example server: what `echo_server` hosts for nshead clients.
#[derive(Debug, Clone, Copy, Default)]
pub struct NsheadEcho;

impl brisk::NsheadService for NsheadEcho {
    async fn process(
        &self,
        _cntl: &mut brisk::ServerContext,
        request: brisk::NsheadMessage,
    ) -> Result<bytes::Bytes, brisk::Status> {
        Ok(request.body)
    }
}

/// Logs to stderr at `info` (or `RUST_LOG`-free `debug` with `BRISK_DEBUG=1`), in colour only
/// on a terminal. Brisk logs through `tracing`: without a subscriber such as this one, its
/// messages (a server's address, a connection closed for bad input, ...) go nowhere.
pub fn init_logging() {
    let _ = init_logging_with_level();
}

/// The level [`init_logging_with_level`] logs at, changeable while the program runs (a server
/// offers it on `/flags` as `log_level`).
#[derive(Clone, Debug)]
pub struct LogLevel(
    tracing_subscriber::reload::Handle<
        tracing_subscriber::filter::LevelFilter,
        tracing_subscriber::Registry,
    >,
);

impl LogLevel {
    /// The lowest level logged now.
    pub fn get(&self) -> String {
        self.0.clone_current().map_or_else(
            || "unknown".to_owned(),
            |level| level.to_string().to_lowercase(),
        )
    }

    /// Logs from `level` (`error`, `warn`, `info`, `debug`, `trace` or `off`) up.
    pub fn set(&self, level: &str) -> Result<(), String> {
        let level: tracing_subscriber::filter::LevelFilter = level
            .parse()
            .map_err(|_| format!("no level `{level}' (error, warn, info, debug, trace, off)"))?;
        self.0.reload(level).map_err(|e| e.to_string())
    }
}

/// [`init_logging`], with a handle on the level; `None` if a subscriber was set already.
pub fn init_logging_with_level() -> Option<LogLevel> {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let level = if std::env::var_os("BRISK_DEBUG").is_some() {
        tracing_subscriber::filter::LevelFilter::DEBUG
    } else {
        tracing_subscriber::filter::LevelFilter::INFO
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(level);
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .ok()
        .map(|()| LogLevel(handle))
}
