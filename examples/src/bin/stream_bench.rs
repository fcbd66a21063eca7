//! Streaming throughput, one stream, client to server:
//! `stream_bench --mode strm|grpc --server HOST:PORT [--size BYTES] [--count N] [--window BYTES]`.
//!
//! - `strm`: a brpc stream opened by an `example.EchoService.Echo` call to `stream_server`
//!   (`--quiet`), `count` messages of `size` bytes, as fast as the window (brpc's 2 MiB by
//!   default) allows; done when the server has reported them all consumed.
//! - `grpc`: a gRPC client-streaming call (`grpc.testing.TestService.StreamingInputCall`) to
//!   `interop_server`, `count` requests carrying `size`-byte payloads; done when the server
//!   answers with the sum of their sizes (checked).
//!
//! Prints one line: `mode=… size=… messages=… secs=… mb_s=… msgs_s=…`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use brisk::stream_rpc::{Stream, StreamOptions};
use brisk::{Channel, Controller};
use brisk_examples::echo::{EchoRequest, EchoServiceClient};
use brisk_examples::init_logging;
use brisk_examples::interop::testing::{Payload, StreamingInputCallRequest, TestServiceClient};
use bytes::Bytes;

/// Throughput of one stream: brpc's (`strm`) or gRPC's client stream (`grpc`).
#[derive(Debug, clap::Parser)]
struct Options {
    /// `strm` (brpc's stream to `stream_server --quiet`) or `grpc` (a client stream to
    /// `interop_server`'s StreamingInputCall).
    #[arg(long, default_value = "strm", value_parser = ["strm", "grpc"])]
    mode: String,
    /// The server.
    #[arg(long, default_value = "127.0.0.1:8001")]
    server: String,
    /// Bytes of each message.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages to send.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// The brpc stream's flow-control window, in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    window: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    init_logging();
    // On a worker of the runtime, beside the connection's tasks, as a server's or a client's
    // code normally runs (the main thread would hand every message to a worker through the
    // kernel's futexes).
    let outcome = tokio::spawn(run(options))
        .await
        .unwrap_or_else(|e| Err(format!("the bench task failed: {e}")));
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stream_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<String, String> {
    let Options {
        mode,
        server,
        size,
        count,
        window,
    } = options;
    let elapsed = match mode.as_str() {
        "grpc" => grpc(&server, size, count).await?,
        _ => strm(&server, size, count, window).await?,
    };
    let secs = elapsed.as_secs_f64();
    Ok(format!(
        "mode={mode} size={size} messages={count} secs={secs:.4} mb_s={:.1} msgs_s={:.0}",
        (count as f64 * size as f64) / secs / 1e6,
        count as f64 / secs
    ))
}

async fn strm(server: &str, size: usize, count: u64, window: u64) -> Result<Duration, String> {
    let channel = Channel::connect(server).await.map_err(|e| e.to_string())?;
    let client = EchoServiceClient::new(channel);
    let mut cntl = Controller::new();
    let stream = Stream::create(&mut cntl, StreamOptions::default().max_buf_size(window));
    client
        .echo_with(&mut cntl, EchoRequest::default())
        .await
        .map_err(|e| format!("the call that opens the stream: {e}"))?;
    let message = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    for _ in 0..count {
        stream
            .send(message.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    // Done when the server has consumed everything (its feedback says so).
    while window > 0 && stream.unconsumed() > 0 {
        if stream.is_closed() {
            return Err("the stream ended before the server consumed everything".into());
        }
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    let elapsed = started.elapsed();
    stream.close();
    Ok(elapsed)
}

async fn grpc(server: &str, size: usize, count: u64) -> Result<Duration, String> {
    let channel = Channel::builder()
        .protocol("h2:grpc")
        .no_timeout()
        .connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let client = TestServiceClient::new(channel);
    let request = StreamingInputCallRequest {
        payload: Some(Payload {
            body: vec![b'x'; size],
            ..Payload::default()
        }),
        ..StreamingInputCallRequest::default()
    };
    let started = Instant::now();
    let requests = futures_util::stream::iter((0..count).map(move |_| request.clone()));
    let response = client
        .streaming_input_call(requests)
        .await
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let expected = count as u128 * size as u128;
    if response.aggregated_payload_size as u128 != expected.min(i32::MAX as u128) {
        return Err(format!(
            "the server counted {} bytes, not {expected}",
            response.aggregated_payload_size
        ));
    }
    Ok(elapsed)
}
