//! The streaming side of the comparison in tonic: `tonic_stream_server --listen 127.0.0.1:8001
//! [--threads N]`. Serves `compare.SinkService.StreamingInputCall` (a client stream whose
//! payload sizes it sums, as grpc.testing's, which Brisk's `interop_server` serves). Runs
//! until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use brisk_compare::blob::sink_service_server::{SinkService, SinkServiceServer};
use brisk_compare::blob::{SinkRequest, SinkResponse};
use brisk_compare::Threads;
use tonic::{Request, Response, Status, Streaming};

struct Sink;

#[tonic::async_trait]
impl SinkService for Sink {
    async fn streaming_input_call(
        &self,
        request: Request<Streaming<SinkRequest>>,
    ) -> Result<Response<SinkResponse>, Status> {
        let mut requests = request.into_inner();
        let mut size = 0usize;
        while let Some(request) = requests.message().await? {
            size += request.payload.map_or(0, |p| p.body.len());
        }
        Ok(Response::new(SinkResponse {
            aggregated_payload_size: i32::try_from(size).unwrap_or(i32::MAX),
        }))
    }
}

/// Where to listen, and how many threads.
#[derive(Debug, clap::Parser)]
#[command(name = "tonic_stream_server")]
struct Options {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8001")]
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
            eprintln!("tonic_stream_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(
        tonic::transport::Server::builder()
            .add_service(SinkServiceServer::new(Sink))
            .serve_with_shutdown(listen, async {
                let _ = tokio::signal::ctrl_c().await;
            }),
    );
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tonic_stream_server: {e}");
            ExitCode::FAILURE
        }
    }
}
