//! brpc's echo client in Brisk:
//! `cargo run --release --bin echo_client -- --server 127.0.0.1:8000 [--attachment foo] [--count N] [--blocking]`.
//! Prints each reply's message, attachment and the server that answered; exits non-zero if a
//! call failed.
//!
//! `--server` may also name a cluster through a naming service, with `--lb` picking the load
//! balancer (default `rr`) and `--interval-ms` spacing the calls so servers can be started and
//! stopped while it runs:
//! `echo_client --server list://127.0.0.1:8001,127.0.0.1:8002 --lb rr --count 100 --interval-ms 200`.
//!
//! `--protocol` picks how calls travel: `baidu_std` (default), `http` (JSON-free: protobuf
//! bodies over HTTP/1.1), `h2:grpc`, `hulu_pbrpc`, `sofa_pbrpc`, `nshead` (the EchoRequest
//! as the nshead body), `public_pbrpc` or `nova_pbrpc`; the echo server answers them all on
//! one port. `--connection-type` defaults to the protocol's own (`pooled` for the nshead
//! family, which has no correlation id; `single` for the others).

use std::process::ExitCode;
use std::time::Duration;

use brisk::{Controller, Status};
use brisk_examples::echo::{EchoRequest, EchoServiceBlockingClient, EchoServiceClient};
use brisk_examples::init_logging;

/// brpc's echo client.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The server, `host:port`, or a naming-service URL (`list://...`, `file://...`).
    #[arg(long, default_value = "127.0.0.1:8000")]
    server: String,
    /// The load balancer for a naming-service URL: rr, wrr, random, wr, la, c_murmurhash,
    /// c_md5, p2c (default rr).
    #[arg(long)]
    lb: Option<String>,
    /// Milliseconds between calls.
    #[arg(long = "interval-ms", default_value = "0", value_parser = millis)]
    interval: Duration,
    /// Retries of a call.
    #[arg(long = "max-retry", default_value_t = 3)]
    max_retry: u32,
    /// Sends a backup request after this many milliseconds without an answer.
    #[arg(long = "backup-ms", value_parser = millis)]
    backup: Option<Duration>,
    /// The message to echo.
    #[arg(long, default_value = "hello world")]
    message: String,
    /// The request attachment.
    #[arg(long, default_value = "")]
    attachment: String,
    /// Calls to make.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Deadline of a call in milliseconds.
    #[arg(long = "timeout-ms", default_value = "500", value_parser = millis)]
    timeout: Duration,
    /// single, pooled or short (default: the protocol's own).
    #[arg(long = "connection-type")]
    connection_type: Option<brisk::ConnectionType>,
    /// baidu_std, http, h2:grpc, hulu_pbrpc, sofa_pbrpc, nshead, public_pbrpc or nova_pbrpc.
    #[arg(long, default_value = "baidu_std", value_parser = protocol)]
    protocol: brisk::Protocol,
    /// Calls with the blocking client, from a plain thread.
    #[arg(long)]
    blocking: bool,
}

fn millis(text: &str) -> Result<Duration, String> {
    text.parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("`{text}` is not a number of milliseconds"))
}

fn protocol(name: &str) -> Result<brisk::Protocol, String> {
    name.parse()
        .map_err(|e: brisk::Error| e.message().to_owned())
}

fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    init_logging();
    let result = if options.blocking {
        run_blocking(&options)
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(run_async(&options))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_client: call failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn builder(options: &Options) -> brisk::ChannelBuilder {
    let mut builder = brisk::Channel::builder()
        .timeout(options.timeout)
        .max_retry(options.max_retry)
        .protocol(options.protocol.clone());
    if let Some(connection_type) = options.connection_type {
        builder = builder.connection_type(connection_type);
    }
    match options.backup {
        Some(delay) => builder.backup_request(delay),
        None => builder,
    }
}

/// A naming-service URL with its balancer (default `rr`), or `None` for one server.
fn cluster(options: &Options) -> Option<(&str, &str)> {
    let web = options.server.starts_with("http://") || options.server.starts_with("https://");
    if (options.server.contains("://") && !web) || options.lb.is_some() {
        Some((&options.server, options.lb.as_deref().unwrap_or("rr")))
    } else {
        None
    }
}

fn request(options: &Options, i: u64) -> (Controller, EchoRequest) {
    let mut cntl = Controller::new();
    cntl.set_log_id(i as i64);
    cntl.set_request_attachment(options.attachment.clone().into_bytes());
    let request = EchoRequest {
        message: options.message.clone(),
    };
    (cntl, request)
}

fn report(i: u64, cntl: &Controller, message: &str) {
    println!(
        "reply #{i} from {}: message={message:?} attachment={:?} latency={}us",
        cntl.remote_side()
            .map_or_else(|| "?".into(), |a| a.to_string()),
        String::from_utf8_lossy(cntl.response_attachment()),
        cntl.latency().as_micros()
    );
}

/// Reports a failed call and keeps going, so a cluster can be watched while servers come
/// and go; the first error is returned at the end.
fn report_error(i: u64, cntl: &Controller, error: Status, first: &mut Option<Status>) {
    eprintln!(
        "call #{i} failed after {} retries: {error}",
        cntl.retried_count()
    );
    first.get_or_insert(error);
}

async fn run_async(options: &Options) -> Result<(), Status> {
    let channel = match cluster(options) {
        Some((url, lb)) => builder(options).connect_cluster(url, lb).await?,
        None => builder(options).connect(&options.server).await?,
    };
    let client = EchoServiceClient::new(channel);
    let mut first_error = None;
    for i in 0..options.count {
        if i > 0 && !options.interval.is_zero() {
            tokio::time::sleep(options.interval).await;
        }
        let (mut cntl, req) = request(options, i);
        match client.echo_with(&mut cntl, req).await {
            Ok(reply) => report(i, &cntl, &reply.message),
            Err(e) => report_error(i, &cntl, e, &mut first_error),
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn run_blocking(options: &Options) -> Result<(), Status> {
    let channel = match cluster(options) {
        Some((url, lb)) => builder(options).connect_cluster_blocking(url, lb)?,
        None => builder(options).connect_blocking(&options.server)?,
    };
    let client = EchoServiceBlockingClient::new(channel);
    let mut first_error = None;
    for i in 0..options.count {
        if i > 0 && !options.interval.is_zero() {
            std::thread::sleep(options.interval);
        }
        let (mut cntl, req) = request(options, i);
        match client.echo_with(&mut cntl, req) {
            Ok(reply) => report(i, &cntl, &reply.message),
            Err(e) => report_error(i, &cntl, e, &mut first_error),
        }
    }
    first_error.map_or(Ok(()), Err)
}
