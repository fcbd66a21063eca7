//! Shared pieces of Brisk's examples: the code generated from `proto/echo.proto`, the echo
//! service, a tiny command-line parser, and [`press`], the logic of the `press` load tester.

use std::collections::HashMap;

/// Code generated from `proto/echo.proto` (package `example`).
pub mod echo {
    brisk::include_proto!("example");
}

pub mod press;

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

/// Logs to stderr at `info` (or `RUST_LOG`-free `debug` with `BRISK_DEBUG=1`).
pub fn init_logging() {
    let level = if std::env::var_os("BRISK_DEBUG").is_some() {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `--name value` and `--flag` arguments.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    /// Parses the process arguments; `flags` lists the names that take no value.
    pub fn parse(flags: &[&str]) -> Result<Args, String> {
        Self::parse_from(std::env::args().skip(1), flags)
    }

    /// Parses `args`; `flags` lists the names that take no value.
    pub fn parse_from(
        args: impl IntoIterator<Item = String>,
        flags: &[&str],
    ) -> Result<Args, String> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument `{arg}`"))?;
            if let Some((name, value)) = name.split_once('=') {
                parsed.values.insert(name.to_owned(), value.to_owned());
            } else if flags.contains(&name) {
                parsed.flags.push(name.to_owned());
            } else {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                parsed.values.insert(name.to_owned(), value);
            }
        }
        Ok(parsed)
    }

    /// The value of `--name`, or `default`.
    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.values
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `--name` parsed as `T`, or `default`.
    pub fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.values.get(name) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse `{v}`")),
            None => Ok(default),
        }
    }

    /// Whether `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}
