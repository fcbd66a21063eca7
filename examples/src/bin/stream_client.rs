//! brpc's `streaming_echo_c++` client in Brisk:
//! `cargo run --release --bin stream_client -- --server 127.0.0.1:8001`.
//!
//! Opens a stream with an `example.EchoService.Echo` call (message
//! `I'm a RPC to connect stream`), then writes brpc's example pair,
//! `abcdefghijklmnopqrstuvwxyz` and `0123456789`, once a second (every `--interval-ms`), until
//! Ctrl-C or `--count` pairs, and closes the stream.
//!
//! With `--size B`, it writes `--count` messages (default 100000) of `B` bytes as fast as the
//! flow-control window (`--window`, default brpc's 2 MiB) allows, waits until the server has
//! consumed them all, and prints the throughput.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use brisk::stream_rpc::{Stream, StreamOptions};
use brisk::{Channel, Controller, Status};
use brisk_examples::echo::{EchoRequest, EchoServiceClient};
use brisk_examples::init_logging;
use bytes::Bytes;

/// brpc's streaming echo client.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The stream server.
    #[arg(long, default_value = "127.0.0.1:8001")]
    server: String,
    /// Pairs to write (default: until Ctrl-C), or with `--size` messages (default 100000).
    #[arg(long)]
    count: Option<u64>,
    /// Writes messages of this many bytes as fast as the window allows, and prints the
    /// throughput (default: brpc's example pair, once an interval).
    #[arg(long)]
    size: Option<usize>,
    /// Milliseconds between messages.
    #[arg(long = "interval-ms", default_value_t = 1000)]
    interval_ms: u64,
    /// The stream's flow-control window, in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    window: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    init_logging();
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stream_client: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let Options {
        server,
        count,
        size,
        interval_ms,
        window,
    } = options;
    let interval = Duration::from_millis(interval_ms);

    let channel = Channel::connect(&server).await.map_err(|e| e.to_string())?;
    let client = EchoServiceClient::new(channel);
    let mut cntl = Controller::new();
    // brpc's example client reads nothing from its stream: the server may not write to it.
    let options = StreamOptions::default()
        .max_buf_size(window)
        .accept_messages(false);
    let stream = Stream::create(&mut cntl, options);
    let request = EchoRequest {
        message: "I'm a RPC to connect stream".into(),
    };
    let response = client
        .echo_with(&mut cntl, request)
        .await
        .map_err(|e| format!("Fail to connect stream, {e}"))?;
    tracing::info!("created stream {}: {}", stream.id(), response.message);

    let sent = match size {
        Some(size) => throughput(&stream, count.unwrap_or(100_000), size, window).await,
        None => pairs(&stream, count, interval).await,
    };
    // Close, and wait (a little) for the server's CLOSE in answer: everything sent has
    // reached it before this process exits.
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.close_and_wait()).await;
    sent.map_err(|e: Status| e.to_string())
}

/// brpc's example: the pair of messages every `interval`, `count` times or until Ctrl-C.
async fn pairs(stream: &Stream, count: Option<u64>, interval: Duration) -> Result<(), Status> {
    let mut sent = 0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while count.is_none_or(|count| sent < count) {
        stream
            .send(Bytes::from_static(b"abcdefghijklmnopqrstuvwxyz"))
            .await?;
        stream.send(Bytes::from_static(b"0123456789")).await?;
        sent += 1;
        if count == Some(sent) {
            break;
        }
        tokio::select! {
            _ = &mut ctrl_c => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    Ok(())
}

/// `count` messages of `size` bytes as fast as the window allows; prints the rate once the
/// server has consumed them all.
async fn throughput(stream: &Stream, count: u64, size: usize, window: u64) -> Result<(), Status> {
    let message = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    for _ in 0..count {
        stream.send(message.clone()).await?;
    }
    // The server's feedback says when it has consumed everything (without a window it sends
    // none: the time is the sending's).
    while window > 0 && stream.unconsumed() > 0 && !stream.is_closed() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = count as f64 * size as f64;
    println!(
        "{count} messages of {size} B in {elapsed:.3} s: {:.1} MB/s, {:.0} messages/s",
        bytes / elapsed / 1e6,
        count as f64 / elapsed
    );
    Ok(())
}
