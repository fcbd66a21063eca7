//! The twin of Brisk's `stream_bench --mode grpc` in tonic: `tonic_stream_bench --server
//! 127.0.0.1:8001 [--size BYTES] [--count N] [--threads N]`. One client-streaming call
//! (`compare.SinkService.StreamingInputCall`) carrying `count` messages with `size`-byte
//! payloads; done when the server answers with the sum of their sizes (checked). Prints the
//! same line as Brisk's: `mode=tonic size=… messages=… secs=… mb_s=… msgs_s=…`.

use std::process::ExitCode;
use std::time::Instant;

use brisk_compare::blob::sink_service_client::SinkServiceClient;
use brisk_compare::blob::{SinkPayload, SinkRequest};
use brisk_compare::Threads;
use prost::bytes::Bytes;

/// The twin of `stream_bench --mode grpc`'s flags.
#[derive(Debug, clap::Parser)]
#[command(name = "tonic_stream_bench")]
struct Options {
    /// The server, `host:port`.
    #[arg(long, default_value = "127.0.0.1:8001")]
    server: String,
    /// Bytes in each message's payload.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages in the stream.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    #[command(flatten)]
    threads: Threads,
}

fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    let result = options.threads.runtime().and_then(|runtime| {
        let Options {
            server,
            size,
            count,
            ..
        } = options;
        // On a worker of the runtime, as Brisk's stream_bench runs.
        runtime.block_on(async move {
            tokio::spawn(run(server, size, count))
                .await
                .unwrap_or_else(|e| Err(format!("the bench task failed: {e}")))
        })
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tonic_stream_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(server: String, size: usize, count: u64) -> Result<String, String> {
    let mut client = SinkServiceClient::connect(format!("http://{server}"))
        .await
        .map_err(|e| format!("connect: {e}"))?
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let request = SinkRequest {
        payload: Some(SinkPayload {
            r#type: 0,
            body: Bytes::from(vec![b'x'; size]),
        }),
    };
    let started = Instant::now();
    let requests = futures_util::stream::iter((0..count).map(move |_| request.clone()));
    let response = client
        .streaming_input_call(requests)
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let secs = started.elapsed().as_secs_f64();
    let expected = (count as u128 * size as u128).min(i32::MAX as u128);
    if response.aggregated_payload_size as u128 != expected {
        return Err(format!(
            "the server counted {} bytes, not {expected}",
            response.aggregated_payload_size
        ));
    }
    Ok(format!(
        "mode=tonic size={size} messages={count} secs={secs:.4} mb_s={:.1} msgs_s={:.0}",
        (count as f64 * size as f64) / secs / 1e6,
        count as f64 / secs
    ))
}
