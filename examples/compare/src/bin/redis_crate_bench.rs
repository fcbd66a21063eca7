//! The `redis` crate's side of the redis client comparison: `redis_crate_bench --server
//! 127.0.0.1:6379 --op get --concurrency 64 --size 16 --duration 10 [--warmup 1]`. Callers
//! share one `MultiplexedConnection` (the crate's pipelining async connection), each call one
//! `GET key` or `SET key <size bytes>`; prints `qps=… p50_us=… p99_us=… p999_us=… errors=…`,
//! as Brisk's `redis_bench` does.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk_compare::{runtime, Args};
use hdrhistogram::Histogram;

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("redis_crate_bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime(&args) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("redis_crate_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_crate_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let server = args.get_or("server", "127.0.0.1:6379");
    let op = args.get_or("op", "get");
    let concurrency: usize = args.parse_or("concurrency", 1)?;
    let size: usize = args.parse_or("size", 16)?;
    let duration = Duration::from_secs_f64(args.parse_or("duration", 10.0)?);
    let warmup = Duration::from_secs_f64(args.parse_or("warmup", 1.0)?);
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
