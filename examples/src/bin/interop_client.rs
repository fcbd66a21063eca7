//! gRPC's interop client (grpc/grpc's `doc/interop-test-descriptions.md`) in Brisk: runs the
//! cases against any `grpc.testing.TestService` server (Brisk's `interop_server`, grpcio's,
//! grpc-go's, ...) over `h2:grpc`.
//! `cargo run --release --bin interop_client -- --server_host 127.0.0.1 --server_port 10000
//! --test_case all` (or one case's name; `--skip NAME` leaves a case out, for servers that
//! cannot serve it). Prints a line per case; exits non-zero if one failed.

use std::time::Duration;

use brisk::{Channel, Protocol};
use brisk_examples::interop::client::{run, CASES};
use brisk_examples::{init_logging, Args};

const USAGE: &str = "usage: interop_client [--server_host HOST] [--server_port N] \
                     [--test_case NAME|all] [--skip NAME]...";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_logging();
    let args = match Args::parse(&[], &["server_host", "server_port", "test_case", "skip"]) {
        Ok(args) => args,
        Err(e) => return usage(&e),
    };
    let host = args.get_or("server_host", "127.0.0.1");
    let port = args.get_or("server_port", "10000");
    let case = args.get_or("test_case", "all");
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
    let skipped: Vec<&str> = args.get_all("skip").collect();
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
    eprintln!("interop_client: {error}\n{USAGE}");
    std::process::ExitCode::from(2)
}
