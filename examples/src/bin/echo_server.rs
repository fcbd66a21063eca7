//! brpc's echo server in Brisk: `cargo run --release --bin echo_server -- --listen 127.0.0.1:8000`.
//! Answers every protocol on its one port: baidu_std, HTTP, gRPC, hulu_pbrpc, sofa_pbrpc and
//! public_pbrpc with `example.EchoService`, and nshead (nova_pbrpc too) by echoing the body
//! with the header, as brpc's `nshead_extension_c++` server does.
//! Runs until Ctrl-C (or SIGTERM), then stops gracefully. `--log-requests` logs every request
//! with the server's own address, so a person exercising a cluster sees who answered.

/// The options echo_server accepts.
const OPTIONS: &[&str] = &["listen", "threads"];
/// Its flags.
const FLAGS: &[&str] = &["log-requests"];
const USAGE: &str = "usage: echo_server [--listen HOST:PORT] [--threads N] [--log-requests]";

use brisk_examples::echo::{EchoRequest, EchoResponse, EchoService, EchoServiceServer};
use brisk_examples::{init_logging, Args, Echo, NsheadEcho};

/// [`Echo`], logging each request with the address it arrived on.
struct LoggedEcho;

impl EchoService for LoggedEcho {
    async fn echo(
        &self,
        cntl: &mut brisk::ServerContext,
        request: EchoRequest,
    ) -> Result<EchoResponse, brisk::Status> {
        tracing::info!(
            "{} answers log_id={} from {}: {:?}",
            cntl.local_side(),
            cntl.log_id(),
            cntl.remote_side(),
            request.message
        );
        Echo.echo(cntl, request).await
    }
}

fn main() -> std::process::ExitCode {
    // `--threads N` tokio worker threads (default: one per CPU).
    let default_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads =
        match Args::parse(FLAGS, OPTIONS).and_then(|a| a.parse_or("threads", default_threads)) {
            Ok(threads) => threads.max(1),
            Err(e) => {
                eprintln!("echo_server: {e}\n{USAGE}");
                return std::process::ExitCode::from(2);
            }
        };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(serve())
}

async fn serve() -> std::process::ExitCode {
    init_logging();
    let args = match Args::parse(FLAGS, OPTIONS) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("echo_server: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let listen = args.get_or("listen", "127.0.0.1:8000");
    let builder = brisk::Server::builder().nshead_service(NsheadEcho);
    let builder = if args.flag("log-requests") {
        builder.add_service(EchoServiceServer::new(LoggedEcho))
    } else {
        builder.add_service(EchoServiceServer::new(Echo))
    };
    // Serves until Ctrl-C or SIGTERM, then stops gracefully: calls in flight finish, new
    // ones get ELOGOFF (clients retry elsewhere). Brisk logs the address it listens on.
    match builder.serve(&listen).await {
        Ok(()) => {
            tracing::info!("stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo_server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
