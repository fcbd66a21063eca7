//! `brisk`, the command-line tool of the [Brisk](brisk) RPC framework: brpc's `rpc_press` and
//! grpcurl's `list`/`describe`/call in one binary, for Brisk, brpc and gRPC servers alike.
//!
//! | command | what it does |
//! |---|---|
//! | `brisk call ADDR SERVICE/METHOD '{json}'` | one call, JSON in and JSON out, over any client protocol; streaming methods read and print one JSON message a line ([`call`]) |
//! | `brisk list ADDR [SERVICE]` | the services a server hosts, or a service's methods ([`list`]) |
//! | `brisk describe ADDR [SYMBOL]` | a service, method, message or enum as `.proto` source ([`list`]) |
//! | `brisk press ADDR SERVICE/METHOD --input FILE` | load at a given QPS, with a progress line a second and a summary ([`press`]) |
//! | `brisk replay DIR ADDR` | sends requests a server sampled (`ServerBuilder::rpc_dump`, brpc's `-rpc_dump`) again, as brpc's `rpc_replay` ([`replay`]) |
//! | `brisk bench ADDR` | Brisk's echo benchmark: calls in flight over N connections, latency percentiles ([`bench`]) |
//! | `brisk view ADDR` | a server's builtin pages on a local port, as brpc's `rpc_view` ([`view`]) |
//! | `brisk completions SHELL` | shell completions |
//!
//! The schema of a server's messages comes from `--proto FILE` (parsed at run time: no
//! `protoc`, no generated code) or from the server itself by gRPC server reflection
//! ([`reflection`]), which every Brisk server answers on its one port.
//!
//! Exit codes: 0 success; 1 the call failed (its error is printed as `E<code> <name>: text`)
//! or a load run had no successful call; 2 bad arguments, input or schema; 3 the server could
//! not be reached or did not give its schema.

pub mod bench;
pub mod call;
pub mod input;
pub mod list;
pub mod press;
pub mod reflection;
pub mod replay;
pub mod schema;
pub mod view;

/// Code generated from `proto/reflection.proto`: the reflection messages.
pub mod reflection_v1 {
    brisk::include_proto!("grpc.reflection.v1");
}

use brisk::{Channel, ChannelBuilder};

/// A failure, with the exit code it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The process's exit code.
    pub exit_code: u8,
    /// What to print to stderr.
    pub message: String,
}

impl Failure {
    /// Exit code 1: the call failed.
    pub fn call(message: impl Into<String>) -> Failure {
        Failure {
            exit_code: 1,
            message: message.into(),
        }
    }

    /// Exit code 2: bad arguments, input or schema.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit_code: 2,
            message: message.into(),
        }
    }

    /// Exit code 3: the server could not be reached, or did not give its schema.
    pub fn unreachable(message: impl Into<String>) -> Failure {
        Failure {
            exit_code: 3,
            message: message.into(),
        }
    }
}

/// Writes `line` and a newline to stdout, flushed (a test or a script may be waiting for it).
pub fn print_line(line: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::call(format!("cannot write to stdout: {e}")))
}

/// A protocol name as the command line gives it: one registered now (`Protocol` also
/// converts from any string, which would defer the error to the first call).
pub fn protocol(name: &str) -> Result<brisk::Protocol, String> {
    name.parse()
        .map_err(|e: brisk::Error| e.message().to_owned())
}

/// `builder` with a deadline of `timeout_ms` milliseconds a call (0: none), as the commands'
/// `--timeout-ms` says.
pub fn with_timeout(builder: ChannelBuilder, timeout_ms: u64) -> ChannelBuilder {
    match timeout_ms {
        0 => builder.no_timeout(),
        ms => builder.timeout(std::time::Duration::from_millis(ms)),
    }
}

/// Connects `builder` to `server`: one `host:port`, or a naming-service URL (`list://`,
/// `file://`, `dns://`, `etcd://`) whose servers `lb` balances.
pub async fn connect(builder: ChannelBuilder, server: &str, lb: &str) -> Result<Channel, String> {
    let connected = if server.contains("://") {
        builder.connect_cluster(server, lb).await
    } else {
        builder.connect(server).await
    };
    connected.map_err(|e| format!("cannot reach `{server}`: {}", e.message()))
}
