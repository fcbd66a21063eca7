//! Brisk against tonic: the tonic side of the echo benchmark (code generated from the same
//! `echo.proto` as Brisk's examples, plus `compare.proto` for the 1 MiB scenario), and a tiny
//! `--name value` parser shared by the binaries.

use std::collections::HashMap;

/// tonic's code for `examples/proto/echo.proto` (package `example`).
pub mod echo {
    tonic::include_proto!("example");
}

/// tonic's code for `proto/compare.proto` (package `compare`).
pub mod blob {
    tonic::include_proto!("compare");
}

/// `--name value` (or `--name=value`) arguments.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Parses the process arguments.
    pub fn parse() -> Result<Args, String> {
        let mut parsed = Args::default();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument `{arg}`"))?;
            if let Some((name, value)) = name.split_once('=') {
                parsed.values.insert(name.to_owned(), value.to_owned());
            } else {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                parsed.values.insert(name.to_owned(), value);
            }
        }
        Ok(parsed)
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `--name`, or `default`.
    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// The value of `--name` parsed as `T`, or `default`.
    pub fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse `{v}`")),
            None => Ok(default),
        }
    }
}

/// A multi-threaded tokio runtime with `--threads N` workers (default: one per CPU), built the
/// same way as Brisk's `echo_server` and `bench`.
pub fn runtime(args: &Args) -> Result<tokio::runtime::Runtime, String> {
    let default_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: usize = args.parse_or("threads", default_threads)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}
