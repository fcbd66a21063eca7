//! gRPC's interop client (grpc/grpc's `doc/interop-test-descriptions.md`) in Brisk: runs the
//! cases against any `grpc.testing.TestService` server (Brisk's `interop_server`, grpcio's,
//! grpc-go's, ...) over `h2:grpc`.
//! `cargo run --release --bin interop_client -- --server_host 127.0.0.1 --server_port 10000
//! --test_case all` (or one case's name; `--skip NAME` leaves a case out, for servers that
//! cannot serve it). Prints a line per case; exits non-zero if one failed.

use std::time::Duration;

use brisk::{Channel, Protocol};
use brisk_examples::init_logging;
use brisk_examples::interop::client::{run, CASES};

/// gRPC's interop client.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The server's host.
    #[arg(long = "server_host", default_value = "127.0.0.1")]
    server_host: String,
    /// The server's port.
    #[arg(long = "server_port", default_value_t = 10000)]
    server_port: u16,
    /// The case to run, or `all`.
    #[arg(long = "test_case", default_value = "all")]
    test_case: String,
    /// A case to leave out (repeatable), for servers that cannot serve it.
    #[arg(long)]
    skip: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options: Options = clap::Parser::parse();
    init_logging();
    let (host, port, case) = (
        &options.server_host,
        options.server_port,
        &options.test_case,
    );
    let cases: Vec<&str> = if case == "all" {
        CASES.to_vec()
    } else if let Some(known) = CASES.iter().find(|c| **c == case) {
        vec![*known]
    } else {
        return usage(&format!(
            "no test case `{case}` (cases: {})",
            CASES.join(", ")
        ));
    };
    let channel = match Channel::builder()
        .protocol(Protocol::GRPC)
        .timeout(Duration::from_secs(10))
        .connect(&format!("{host}:{port}"))
        .await
    {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("interop_client: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let skipped: Vec<&str> = options.skip.iter().map(String::as_str).collect();
    let mut failed = 0;
    for case in cases {
        if skipped.contains(&case) {
            println!("{case}: skipped");
            continue;
        }
        match run(&channel, case).await {
            Ok(()) => println!("{case}: passed"),
            Err(why) => {
                failed += 1;
                println!("{case}: FAILED: {why}");
            }
        }
    }
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

fn usage(error: &str) -> std::process::ExitCode {
    eprintln!("interop_client: {error} (see --help)");
    std::process::ExitCode::from(2)
}
