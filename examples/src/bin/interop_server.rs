//! gRPC's interop server (grpc/grpc's `doc/interop-test-descriptions.md`) in Brisk: serves
//! `grpc.testing.TestService` over gRPC (and every other protocol of the port).
//! `cargo run --release --bin interop_server -- --port 10000`; `--port 0` picks a free port.
//! Prints `listening on HOST:PORT`, then serves until Ctrl-C, or until its
//! standard input closes with `--exit_on_stdin_close` (for tests that start it).

use brisk_examples::init_logging;
use brisk_examples::interop::testing::TestServiceServer;
use brisk_examples::interop::TestServiceImpl;

/// gRPC's interop server.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 10000)]
    port: u16,
    /// Stops when standard input closes (for tests that start it).
    #[arg(long = "exit_on_stdin_close")]
    exit_on_stdin_close: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Options {
        port,
        exit_on_stdin_close,
    } = clap::Parser::parse();
    init_logging();
    let server = match brisk::Server::builder()
        .add_service(TestServiceServer::new(TestServiceImpl))
        .start(&format!("127.0.0.1:{port}"))
        .await
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("interop_server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("listening on {}", server.local_addr());
    if exit_on_stdin_close {
        // Reading blocks a thread, not the runtime.
        let _ = tokio::task::spawn_blocking(|| {
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
        })
        .await;
    } else {
        let _ = tokio::signal::ctrl_c().await;
    }
    server.shutdown().await;
    std::process::ExitCode::SUCCESS
}
