//! Load generator for Brisk's echo service:
//! `cargo run --release --bin bench -- --server 127.0.0.1:8000 --protocol baidu_std --conns 1
//! --concurrency 64 --size 16 [--attachment-size 0] --duration 10 [--warmup 2]`.
//!
//! Runs `concurrency` calls in flight, spread over `conns` connections, for `duration` seconds
//! after `warmup` seconds that are not counted, then prints one line:
//! `qps=… p50_us=… p99_us=… p999_us=… errors=… mean_us=… max_us=… caller_calls_min=…
//! caller_calls_median=…` (latencies from an HDR histogram; the last two are how many calls
//! the least served caller and the median caller completed, which shows whether some
//! callers starve while others are served again and again).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk::{Channel, Controller, Protocol, Status};
use brisk_examples::echo::{EchoRequest, EchoServiceClient};
use brisk_examples::Args;
use bytes::Bytes;
use hdrhistogram::Histogram;

/// The options bench accepts.
const OPTIONS: &[&str] = &[
    "server",
    "protocol",
    "conns",
    "concurrency",
    "size",
    "attachment-size",
    "duration",
    "warmup",
    "threads",
];

const USAGE: &str = "usage: bench --server HOST:PORT [--protocol baidu_std] [--conns N] \
                     [--concurrency C] [--size BYTES] [--attachment-size BYTES] \
                     [--duration SECONDS] [--warmup SECONDS] [--threads N]";

struct Options {
    server: String,
    protocol: Protocol,
    conns: usize,
    concurrency: usize,
    size: usize,
    attachment_size: usize,
    duration: Duration,
    warmup: Duration,
}

fn parse() -> Result<Options, String> {
    let args = Args::parse(&[], OPTIONS)?;
    let options = Options {
        server: args.get_or("server", "127.0.0.1:8000"),
        protocol: args
            .get_or("protocol", "baidu_std")
            .parse()
            .map_err(|e: brisk::Error| e.message().to_owned())?,
        conns: args.parse_or("conns", 1)?,
        concurrency: args.parse_or("concurrency", 64)?,
        size: args.parse_or("size", 16)?,
        attachment_size: args.parse_or("attachment-size", 0)?,
        duration: Duration::from_secs_f64(args.parse_or("duration", 10.0)?),
        warmup: Duration::from_secs_f64(args.parse_or("warmup", 2.0)?),
    };
    if options.conns == 0 || options.concurrency == 0 {
        return Err("--conns and --concurrency must be at least 1".into());
    }
    Ok(options)
}

/// One caller's results.
struct Tally {
    latencies_us: Histogram<u64>,
    errors: u64,
    first_error: Option<Status>,
}

fn main() -> ExitCode {
    brisk_examples::init_logging();
    let options = match parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // `--threads N` tokio worker threads (default: one per CPU).
    let default_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads =
        match Args::parse(&[], OPTIONS).and_then(|a| a.parse_or("threads", default_threads)) {
            Ok(threads) => threads.max(1),
            Err(e) => {
                eprintln!("bench: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), Status> {
    // One connection group per connection: channels in a group share one connection.
    let mut clients = Vec::with_capacity(options.conns);
    for conn in 0..options.conns {
        let channel = Channel::builder()
            .protocol(options.protocol.clone())
            .timeout(Duration::from_secs(5))
            .connection_group(format!("bench-{conn}"))
            .connect(&options.server)
            .await?;
        clients.push(EchoServiceClient::new(channel));
    }
    let message = "x".repeat(options.size);
    let attachment = Bytes::from(vec![b'a'; options.attachment_size]);
    // Fail fast on a server that is not there, before any load.
    clients[0]
        .echo(EchoRequest {
            message: message.clone(),
        })
        .await?;

    let started = Instant::now();
    let measure_from = started + options.warmup;
    let stop_at = measure_from + options.duration;
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..options.concurrency {
        let client = clients[i % clients.len()].clone();
        let message = message.clone();
        let attachment = attachment.clone();
        let stop = Arc::clone(&stop);
        callers.spawn(async move {
            let mut tally = Tally {
                latencies_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
                errors: 0,
                first_error: None,
            };
            let mut cntl = Controller::new();
            while !stop.load(Ordering::Relaxed) {
                cntl.reset();
                cntl.set_request_attachment(attachment.clone());
                let request = EchoRequest {
                    message: message.clone(),
                };
                let sent = Instant::now();
                let result = client.echo_with(&mut cntl, request).await;
                let done = Instant::now();
                if result.is_err() {
                    // A call refused before any I/O never yields: let the stop timer run.
                    tokio::task::yield_now().await;
                }
                if done < measure_from || done > stop_at {
                    continue;
                }
                match result {
                    Ok(_) => {
                        let us = (done - sent).as_micros().max(1) as u64;
                        tally.latencies_us.saturating_record(us);
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
    // Calls each caller completed in the measured part, fewest first.
    let mut caller_calls = Vec::with_capacity(options.concurrency);
    while let Some(joined) = callers.join_next().await {
        let tally = joined.map_err(|e| Status::internal(format!("caller task failed: {e}")))?;
        caller_calls.push(tally.latencies_us.len());
        all.add(&tally.latencies_us).expect("same bounds");
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    if let Some(e) = first_error {
        eprintln!("bench: first error: {e}");
    }
    caller_calls.sort_unstable();
    let qps = all.len() as f64 / options.duration.as_secs_f64();
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
        caller_calls.first().copied().unwrap_or(0),
        caller_calls
            .get(caller_calls.len() / 2)
            .copied()
            .unwrap_or(0),
    );
    Ok(())
}
