//! The `redis` crate's side of the redis client comparison: `redis_crate_bench --server
//! 127.0.0.1:6379 --op get --concurrency 64 --size 16 --duration 10 [--warmup 1]`. Callers
//! share one `MultiplexedConnection` (the crate's pipelining async connection), each call one
//! `GET key` or `SET key <size bytes>`; prints `qps=… p50_us=… p99_us=… p999_us=… errors=…`,
//! as Brisk's `redis_bench` does.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk_compare::{at_least_one, seconds, Threads};
use hdrhistogram::Histogram;

/// The twin of `redis_bench`'s flags.
#[derive(Debug, clap::Parser)]
#[command(name = "redis_crate_bench")]
struct Options {
    /// The redis server, `host:port`.
    #[arg(long, default_value = "127.0.0.1:6379")]
    server: String,
    /// The command each call sends.
    #[arg(long, default_value = "get", value_parser = ["get", "set"])]
    op: String,
    /// Calls in flight.
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    concurrency: usize,
    /// Bytes of the value.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Seconds measured.
    #[arg(long, default_value = "10", value_parser = seconds)]
    duration: Duration,
    /// Seconds run first and not counted.
    #[arg(long, default_value = "1", value_parser = seconds)]
    warmup: Duration,
    #[command(flatten)]
    threads: Threads,
}

fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    let runtime = match options.threads.runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("redis_crate_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_crate_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: &Options) -> Result<(), String> {
    let Options {
        server,
        op,
        concurrency,
        size,
        duration,
        warmup,
        ..
    } = options;
    let (concurrency, size, duration, warmup) = (*concurrency, *size, *duration, *warmup);
    let client =
        redis::Client::open(format!("redis://{server}/")).map_err(|e| format!("client: {e}"))?;
    let connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let value = "v".repeat(size);
    let mut setup = connection.clone();
    redis::cmd("SET")
        .arg("key:bench")
        .arg(&value)
        .query_async::<()>(&mut setup)
        .await
        .map_err(|e| format!("SET: {e}"))?;
    let mut command = redis::cmd(if op == "set" { "SET" } else { "GET" });
    command.arg("key:bench");
    if op == "set" {
        command.arg(&value);
    }
    let measure_from = Instant::now() + warmup;
    let stop_at = measure_from + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (mut connection, command, stop) =
            (connection.clone(), command.clone(), Arc::clone(&stop));
        callers.spawn(async move {
            let mut latencies_us =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let result = command.query_async::<redis::Value>(&mut connection).await;
                let done = Instant::now();
                if done < measure_from || done > stop_at {
                    continue;
                }
                match result {
                    Ok(_) => {
                        latencies_us.saturating_record((done - sent).as_micros().max(1) as u64)
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies_us, errors)
        });
    }
    tokio::time::sleep_until(stop_at.into()).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut errors = 0;
    while let Some(joined) = callers.join_next().await {
        let (latencies, caller_errors) = joined.map_err(|e| format!("caller: {e}"))?;
        all.add(&latencies).expect("same bounds");
        errors += caller_errors;
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
