//! The echo server in tonic, for the comparison with Brisk's `echo_server`:
//! `tonic_echo_server --listen 127.0.0.1:8000 --threads N`. Serves `example.EchoService`
//! (the message back) and `compare.BlobService` (the whole request back: the 1 MiB scenario).
//! Runs until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use brisk_compare::blob::blob_service_server::{BlobService, BlobServiceServer};
use brisk_compare::blob::Blob;
use brisk_compare::echo::echo_service_server::{EchoService, EchoServiceServer};
use brisk_compare::echo::{EchoRequest, EchoResponse};
use brisk_compare::Threads;
use tonic::{Request, Response, Status};

struct Echo;

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            message: request.into_inner().message,
        }))
    }
}

#[tonic::async_trait]
impl BlobService for Echo {
    async fn echo(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// Where to listen, and how many threads.
#[derive(Debug, clap::Parser)]
#[command(name = "tonic_echo_server")]
struct Options {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    threads: Threads,
}

fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    let listen = options.listen;
    let runtime = match options.threads.runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tonic_echo_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(
        tonic::transport::Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .add_service(BlobServiceServer::new(Echo))
            .serve_with_shutdown(listen, wait_for_signal()),
    );
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tonic_echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
