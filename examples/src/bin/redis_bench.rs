//! Load generator for a redis server through Brisk's redis client:
//! `cargo run --release --bin redis_bench -- --server 127.0.0.1:6379 --op get --concurrency 64
//! --size 16 --duration 10 [--warmup 2] [--threads N] [--timeout-ms 5000]`.
//!
//! Runs `concurrency` callers on one shared connection (each call one `GET key` or
//! `SET key <size bytes>`), for `duration` seconds after `warmup` seconds that are not counted,
//! then prints one line: `qps=… p50_us=… p99_us=… p999_us=… errors=…`, the format of `bench`
//! (and of the `redis` crate's twin in `examples/compare`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk::redis::RedisRequest;
use brisk::{Channel, Controller, Status};
use hdrhistogram::Histogram;

/// Load for a redis server through Brisk's redis client.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The redis server.
    #[arg(long, default_value = "127.0.0.1:6379")]
    server: String,
    /// The command: `get` or `set`.
    #[arg(long, default_value = "get", value_parser = ["get", "set"])]
    op: String,
    /// Commands in flight.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Bytes of each value.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warm-up, not measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Deadline of a command in milliseconds; 0 is none.
    #[arg(long = "timeout-ms", default_value_t = 5000)]
    timeout_ms: u64,
}

fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    brisk_examples::init_logging();
    let Options {
        server,
        op,
        concurrency,
        size,
        duration,
        warmup,
        threads,
        timeout_ms,
    } = options;
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (duration, warmup) = (
        Duration::from_secs_f64(duration.max(0.0)),
        Duration::from_secs_f64(warmup.max(0.0)),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms));
    let run = run(
        &server,
        &op,
        concurrency.max(1),
        size,
        duration,
        warmup,
        timeout,
    );
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    server: &str,
    op: &str,
    concurrency: usize,
    size: usize,
    duration: Duration,
    warmup: Duration,
    timeout: Option<Duration>,
) -> Result<(), Status> {
    let builder = Channel::builder().protocol("redis");
    let builder = match timeout {
        Some(timeout) => builder.timeout(timeout),
        None => builder.no_timeout(),
    };
    let channel = builder.connect(server).await?;
    let value = "v".repeat(size);
    let mut request = RedisRequest::new();
    match op {
        "set" => request.add_command(["SET", "key:bench", &value]),
        _ => request.add_command(["GET", "key:bench"]),
    };
    // The key exists for GET, and a server that is not there fails before any load.
    let mut set = RedisRequest::new();
    set.add_command(["SET", "key:bench", &value]);
    channel.redis(&mut Controller::new(), &set).await?;

    let measure_from = Instant::now() + warmup;
    let stop_at = measure_from + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let request = Arc::new(request);
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (channel, request, stop) = (channel.clone(), Arc::clone(&request), Arc::clone(&stop));
        callers.spawn(async move {
            let mut latencies_us =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let (mut errors, mut first_error) = (0u64, None);
            let mut cntl = Controller::new();
            while !stop.load(Ordering::Relaxed) {
                cntl.reset();
                let sent = Instant::now();
                let result = channel.redis(&mut cntl, &request).await;
                let done = Instant::now();
                if done < measure_from || done > stop_at {
                    continue;
                }
                match result {
                    Ok(response) if !response.reply(0).is_error() => {
                        latencies_us.saturating_record((done - sent).as_micros().max(1) as u64);
                    }
                    Ok(response) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| Status::internal(response.to_string()));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                        tokio::task::yield_now().await;
                    }
                }
            }
            (latencies_us, errors, first_error)
        });
    }
    tokio::time::sleep_until(stop_at.into()).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let (mut errors, mut first_error) = (0, None);
    while let Some(joined) = callers.join_next().await {
        let (latencies, caller_errors, caller_first) =
            joined.map_err(|e| Status::internal(format!("caller task failed: {e}")))?;
        all.add(&latencies).expect("same bounds");
        errors += caller_errors;
        first_error = first_error.or(caller_first);
    }
    if let Some(e) = first_error {
        eprintln!("redis_bench: first error: {e}");
    }
    println!(
        "qps={:.0} p50_us={} p99_us={} p999_us={} errors={}",
        all.len() as f64 / duration.as_secs_f64(),
        all.value_at_quantile(0.50),
        all.value_at_quantile(0.99),
        all.value_at_quantile(0.999),
        errors
    );
    Ok(())
}
