//! The streaming side of the comparison in tonic: `tonic_stream_server --listen 127.0.0.1:8001
//! [--threads N]`. Serves `compare.SinkService.StreamingInputCall` (a client stream whose
//! payload sizes it sums, as grpc.testing's, which Brisk's `interop_server` serves). Runs
//! until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use brisk_compare::blob::sink_service_server::{SinkService, SinkServiceServer};
use brisk_compare::blob::{SinkRequest, SinkResponse};
use brisk_compare::{runtime, Args};
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

const USAGE: &str = "usage: tonic_stream_server [--listen HOST:PORT] [--threads N]";

fn main() -> ExitCode {
    let (args, listen) = match Args::parse().and_then(|args| {
        let listen: std::net::SocketAddr =
            args.parse_or("listen", ([127, 0, 0, 1], 8001).into())?;
        Ok((args, listen))
    }) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("tonic_stream_server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime(&args) {
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
