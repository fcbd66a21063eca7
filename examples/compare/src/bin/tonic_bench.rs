//! Load generator for the tonic echo server, the twin of `brisk bench` (same flags, same
//! measurement, same output line):
//! `tonic_bench --server 127.0.0.1:8000 --conns 1 --concurrency 64 --size 16
//! [--attachment-size 0] --duration 10 [--warmup 2] [--threads N]`.
//!
//! Runs `concurrency` calls in flight, spread over `conns` HTTP/2 connections, for `duration`
//! seconds after `warmup` seconds that are not counted, then prints one line, as `brisk
//! bench` does: `qps=… p50_us=… p99_us=… p999_us=… errors=… mean_us=… max_us=…
//! caller_calls_min=… caller_calls_median=…` (percentiles from an HDR histogram; the calls the
//! least served caller and the median caller completed).
//! gRPC has no attachment: with `--attachment-size N` each call sends `compare.Blob` with the N
//! bytes in its `data` field (and gets them back) instead of `example.EchoRequest`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk_compare::blob::blob_service_client::BlobServiceClient;
use brisk_compare::blob::Blob;
use brisk_compare::echo::echo_service_client::EchoServiceClient;
use brisk_compare::echo::EchoRequest;
use brisk_compare::{at_least_one, seconds, Threads};
use hdrhistogram::Histogram;
use prost::bytes::Bytes;
use tonic::transport::{Channel, Endpoint};

/// The twin of `brisk bench`'s flags.
#[derive(Debug, clap::Parser)]
#[command(
    name = "tonic_bench",
    about = "Load generator for the tonic echo server"
)]
struct Options {
    /// The server, `host:port`.
    #[arg(long, default_value = "127.0.0.1:8000")]
    server: String,
    /// HTTP/2 connections.
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    conns: usize,
    /// Calls in flight, spread over the connections.
    #[arg(long, default_value = "64", value_parser = at_least_one)]
    concurrency: usize,
    /// Bytes in each request's `message`.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Send `compare.Blob` with this many bytes instead (gRPC has no attachment).
    #[arg(long = "attachment-size", default_value_t = 0)]
    attachment_size: usize,
    /// Seconds measured.
    #[arg(long, default_value = "10", value_parser = seconds)]
    duration: Duration,
    /// Seconds run first and not counted.
    #[arg(long, default_value = "2", value_parser = seconds)]
    warmup: Duration,
    #[command(flatten)]
    threads: Threads,
}

/// One caller's results.
struct Tally {
    /// Each call's latency, merged into one histogram at the end: a histogram per caller
    /// (140 KB each) made recording a cache miss per call with thousands of callers, which
    /// the benchmark then charged to the framework.
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<tonic::Status>,
}

fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    let runtime = match options.threads.runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tonic_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tonic_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One call of the scenario: an echo of `message`, or of a blob when there is an attachment.
async fn call(
    echo: &mut EchoServiceClient<Channel>,
    blob: &mut BlobServiceClient<Channel>,
    message: &str,
    data: &Bytes,
) -> Result<(), tonic::Status> {
    if data.is_empty() {
        echo.echo(EchoRequest {
            message: message.to_owned(),
        })
        .await?;
    } else {
        blob.echo(Blob {
            message: message.to_owned(),
            data: data.clone(),
        })
        .await?;
    }
    Ok(())
}

async fn run(options: Options) -> Result<(), String> {
    let uri = if options.server.contains("://") {
        options.server.clone()
    } else {
        format!("http://{}", options.server)
    };
    // One Channel per connection: clones of a Channel share its HTTP/2 connection.
    let mut channels = Vec::with_capacity(options.conns);
    for _ in 0..options.conns {
        let channel = Endpoint::from_shared(uri.clone())
            .map_err(|e| format!("{uri}: {e}"))?
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| format!("connect {uri}: {e}"))?;
        channels.push(channel);
    }
    let message = "x".repeat(options.size);
    let data = Bytes::from(vec![b'a'; options.attachment_size]);
    // Fail fast on a server that is not there, before any load.
    call(
        &mut EchoServiceClient::new(channels[0].clone()),
        &mut BlobServiceClient::new(channels[0].clone()),
        &message,
        &data,
    )
    .await
    .map_err(|e| e.to_string())?;

    let started = Instant::now();
    let measure_from = started + options.warmup;
    let stop_at = measure_from + options.duration;
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..options.concurrency {
        let channel = channels[i % channels.len()].clone();
        let mut echo = EchoServiceClient::new(channel.clone());
        let mut blob = BlobServiceClient::new(channel);
        let message = message.clone();
        let data = data.clone();
        let stop = Arc::clone(&stop);
        callers.spawn(async move {
            let mut tally = Tally {
                latencies_us: Vec::new(),
                errors: 0,
                first_error: None,
            };
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let result = call(&mut echo, &mut blob, &message, &data).await;
                let done = Instant::now();
                if done < measure_from || done > stop_at {
                    continue;
                }
                match result {
                    Ok(()) => {
                        let us = (done - sent).as_micros().clamp(1, u32::MAX as u128) as u32;
                        tally.latencies_us.push(us);
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(e);
                    }
                }
            }
            tally
        });
    }
    tokio::time::sleep_until(stop_at.into()).await;
    stop.store(true, Ordering::Relaxed);

    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut errors = 0;
    let mut first_error = None;
    // Calls each caller completed, for the spread between callers (starved ones).
    let mut per_caller = Vec::with_capacity(options.concurrency);
    while let Some(joined) = callers.join_next().await {
        let tally = joined.map_err(|e| format!("caller task failed: {e}"))?;
        per_caller.push(tally.latencies_us.len());
        for &us in &tally.latencies_us {
            all.saturating_record(u64::from(us));
        }
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    if let Some(e) = first_error {
        eprintln!("tonic_bench: first error: {e}");
    }
    let qps = all.len() as f64 / options.duration.as_secs_f64();
    per_caller.sort_unstable();
    println!(
        "qps={:.0} p50_us={} p99_us={} p999_us={} errors={} mean_us={:.0} max_us={} \
         caller_calls_min={} caller_calls_median={}",
        qps,
        all.value_at_quantile(0.50),
        all.value_at_quantile(0.99),
        all.value_at_quantile(0.999),
        errors,
        all.mean(),
        all.max(),
        per_caller.first().copied().unwrap_or(0),
        per_caller.get(per_caller.len() / 2).copied().unwrap_or(0),
    );
    Ok(())
}
