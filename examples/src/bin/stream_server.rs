//! brpc's `streaming_echo_c++` server in Brisk:
//! `cargo run --release --bin stream_server -- --listen 127.0.0.1:8001`.
//!
//! Serves `example.EchoService.Echo` (brpc's echo.proto): each call accepts the stream it
//! opens, answers `Accepted stream`, and every message the stream then carries is printed on a
//! line of its own (as text when it is UTF-8, else as its size). With `--echo`, each message
//! also goes back on the stream. Runs until Ctrl-C (or SIGTERM), then stops gracefully.

use std::io::Write as _;

use brisk::stream_rpc::{Stream, StreamOptions};
use brisk::{ServerContext, Status};
use brisk_examples::echo::{EchoRequest, EchoResponse, EchoService, EchoServiceServer};
use brisk_examples::init_logging;
use futures_util::StreamExt;

/// brpc's streaming echo server.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8001")]
    listen: String,
    /// Writes each message back on the stream.
    #[arg(long)]
    echo: bool,
    /// Logs nothing per message.
    #[arg(long)]
    quiet: bool,
}

/// Accepts each call's stream and prints (or echoes) what it carries.
struct StreamingEcho {
    echo: bool,
    quiet: bool,
}

impl EchoService for StreamingEcho {
    async fn echo(
        &self,
        cntl: &mut ServerContext,
        _request: EchoRequest,
    ) -> Result<EchoResponse, Status> {
        // As brpc's example: a call without a stream fails.
        let stream = cntl
            .accept_stream(StreamOptions::default())
            .map_err(|e| Status::internal(format!("Fail to accept stream: {}", e.message())))?;
        tokio::spawn(receive(stream, self.echo, self.quiet));
        Ok(EchoResponse {
            message: "Accepted stream".into(),
        })
    }
}

/// Prints every message of `stream` until it ends.
async fn receive(mut stream: Stream, echo: bool, quiet: bool) {
    let id = stream.id();
    while let Some(message) = stream.next().await {
        match message {
            Ok(message) => {
                if !quiet {
                    let mut out = std::io::stdout().lock();
                    let _ = match std::str::from_utf8(&message) {
                        Ok(text) => writeln!(out, "{text}"),
                        Err(_) => writeln!(out, "<{} bytes>", message.len()),
                    };
                    let _ = out.flush();
                }
                if echo {
                    if let Err(e) = stream.send(message).await {
                        tracing::warn!("stream {id}: cannot echo: {e}");
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::warn!("stream {id} failed: {e}");
                return;
            }
        }
    }
    tracing::info!("stream {id} is closed");
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Options {
        listen,
        echo,
        quiet,
    } = clap::Parser::parse();
    init_logging();
    let service = StreamingEcho { echo, quiet };
    match brisk::Server::builder()
        .add_service(EchoServiceServer::new(service))
        .serve(&listen)
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stream_server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
