//! brpc's echo client in Brisk:
//! `cargo run --release --bin echo_client -- --server 127.0.0.1:8000 [--attachment foo] [--count N] [--blocking]`.
//! Prints each reply's message and attachment; exits non-zero on error.

use std::process::ExitCode;
use std::time::Duration;

use brisk::{Controller, Status};
use brisk_examples::echo::{EchoRequest, EchoServiceBlockingClient, EchoServiceClient};
use brisk_examples::{init_logging, Args};

const USAGE: &str = "usage: echo_client [--server HOST:PORT] [--message TEXT] [--attachment BYTES] \
                     [--count N] [--timeout-ms MS] [--connection-type single|pooled|short] [--blocking]";

struct Options {
    server: String,
    message: String,
    attachment: String,
    count: u64,
    timeout: Duration,
    connection_type: brisk::ConnectionType,
}

fn main() -> ExitCode {
    init_logging();
    let (options, blocking) = match parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("echo_client: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = if blocking {
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

fn parse() -> Result<(Options, bool), String> {
    let args = Args::parse(
        &["blocking"],
        &[
            "server",
            "message",
            "attachment",
            "count",
            "timeout-ms",
            "connection-type",
        ],
    )?;
    let options = Options {
        server: args.get_or("server", "127.0.0.1:8000"),
        message: args.get_or("message", "hello world"),
        attachment: args.get_or("attachment", ""),
        count: args.parse_or("count", 1)?,
        timeout: Duration::from_millis(args.parse_or("timeout-ms", 500)?),
        connection_type: args
            .parse_or("connection-type", brisk::ConnectionType::Single)
            .map_err(|_| "--connection-type: expected single, pooled or short".to_owned())?,
    };
    Ok((options, args.flag("blocking")))
}

fn builder(options: &Options) -> brisk::ChannelBuilder {
    brisk::Channel::builder()
        .timeout(options.timeout)
        .connection_type(options.connection_type)
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

async fn run_async(options: &Options) -> Result<(), Status> {
    let client = EchoServiceClient::new(builder(options).connect(&options.server).await?);
    for i in 0..options.count {
        let (mut cntl, req) = request(options, i);
        let reply = client.echo_with(&mut cntl, req).await?;
        report(i, &cntl, &reply.message);
    }
    Ok(())
}

fn run_blocking(options: &Options) -> Result<(), Status> {
    let client =
        EchoServiceBlockingClient::new(builder(options).connect_blocking(&options.server)?);
    for i in 0..options.count {
        let (mut cntl, req) = request(options, i);
        let reply = client.echo_with(&mut cntl, req)?;
        report(i, &cntl, &reply.message);
    }
    Ok(())
}
