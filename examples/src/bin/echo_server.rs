//! brpc's echo server in Brisk: `cargo run --release --bin echo_server -- --listen 127.0.0.1:8000`.
//! Answers every protocol on its one port: baidu_std, HTTP, gRPC, hulu_pbrpc, sofa_pbrpc and
//! public_pbrpc with `example.EchoService`, and nshead (nova_pbrpc too) by echoing the body
//! with the header, as brpc's `nshead_extension_c++` server does.
//! Runs until Ctrl-C (or SIGTERM), then stops gracefully. `--log-requests` logs every request
//! with the server's own address, so a person exercising a cluster sees who answered.
//!
//! Its port also serves the builtin pages (`curl 127.0.0.1:8000/status`, or a browser):
//! `--rpcz` turns rpcz on (`/rpcz` lists traced calls), and `--mutable-flags` lets `/flags`
//! and `/rpcz/enable` change limits and rpcz while it runs.
//!
//! To try limits from the shell with `bench`:
//! - `--max-concurrency N` runs at most N requests at once (the rest get ELIMIT);
//!   `--max-concurrency auto` or `timeout` gives Echo brpc's adaptive limiter of that name.
//! - `--sleep-ms MS` makes each Echo wait that long before answering, and `--workers N` lets
//!   only N Echos wait at once (the rest queue), as a service with N worker threads would:
//!   load past `N / MS` thousand calls a second then shows as queueing, which `auto` sheds.

use std::sync::Arc;

use brisk::limiter::MaxConcurrency;

use brisk_examples::echo::{EchoRequest, EchoResponse, EchoService, EchoServiceServer};
use brisk_examples::{init_logging_with_level, Echo, NsheadEcho};

/// brpc's echo server.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: String,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Logs every request with the server's own address.
    #[arg(long = "log-requests")]
    log_requests: bool,
    /// Turns rpcz on (`/rpcz` lists traced calls).
    #[arg(long)]
    rpcz: bool,
    /// Lets `/flags` and `/rpcz/enable` change settings while the server runs.
    #[arg(long = "mutable-flags")]
    mutable_flags: bool,
    /// A limit: N requests at once for the server, or `auto`/`timeout` (brpc's adaptive
    /// limiters) for Echo.
    #[arg(long = "max-concurrency", default_value = "unlimited", value_parser = max_concurrency)]
    max_concurrency: MaxConcurrency,
    /// Milliseconds each Echo waits before answering.
    #[arg(long = "sleep-ms", default_value_t = 0)]
    sleep_ms: u64,
    /// Echos that may wait at once (0: any number), as a service with N worker threads.
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

fn max_concurrency(text: &str) -> Result<MaxConcurrency, String> {
    text.parse()
        .map_err(|e: brisk::Error| e.message().to_owned())
}

/// [`Echo`], logging each request with the address it arrived on (`log`), after waiting
/// `sleep` (if not zero) in one of the `workers` places (if limited).
struct ShellEcho {
    log: bool,
    sleep: std::time::Duration,
    workers: Option<Arc<tokio::sync::Semaphore>>,
}

impl EchoService for ShellEcho {
    async fn echo(
        &self,
        cntl: &mut brisk::ServerContext,
        request: EchoRequest,
    ) -> Result<EchoResponse, brisk::Status> {
        if self.log {
            tracing::info!(
                "{} answers log_id={} from {}: {:?}",
                cntl.local_side(),
                cntl.log_id(),
                cntl.remote_side(),
                request.message
            );
        }
        if !self.sleep.is_zero() {
            let _worker = match &self.workers {
                Some(workers) => Some(workers.acquire().await.expect("never closed")),
                None => None,
            };
            tokio::time::sleep(self.sleep).await;
        }
        Echo.echo(cntl, request).await
    }
}

fn main() -> std::process::ExitCode {
    let options: Options = clap::Parser::parse();
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(serve(options))
}

async fn serve(options: Options) -> std::process::ExitCode {
    let log_level = init_logging_with_level();
    let Options {
        listen,
        log_requests,
        rpcz,
        mutable_flags,
        max_concurrency,
        sleep_ms,
        workers,
        ..
    } = options;
    let builder = brisk::Server::builder()
        .nshead_service(NsheadEcho)
        .rpcz(rpcz)
        .mutable_flags(mutable_flags);
    // `/flags/log_level?setvalue=debug` (with --mutable-flags) turns the log up while it runs.
    let builder = match log_level {
        Some(level) => {
            let shown = level.clone();
            builder.flag(
                "log_level",
                "the lowest level logged: error, warn, info, debug, trace or off",
                move || shown.get(),
                move |value| level.set(value),
            )
        }
        None => builder,
    };
    // A number limits the whole server (brpc's `ServerOptions.max_concurrency`); an adaptive
    // limiter is per method in brpc, so Echo gets it.
    let builder = match max_concurrency {
        MaxConcurrency::Unlimited => builder,
        MaxConcurrency::Constant(max) => builder.max_concurrency(max),
        adaptive => builder.max_concurrency_of("example.EchoService.Echo", adaptive),
    };
    let builder = if log_requests || sleep_ms > 0 {
        builder.add_service(EchoServiceServer::new(ShellEcho {
            log: log_requests,
            sleep: std::time::Duration::from_millis(sleep_ms),
            workers: (workers > 0).then(|| Arc::new(tokio::sync::Semaphore::new(workers))),
        }))
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
