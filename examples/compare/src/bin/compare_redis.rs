//! redis, side by side: `compare_redis [--runs 3] [--duration 5] [--server-cpu 0]
//! [--client-cpu 1] [--bin-dir ../../target/release] [--crate-dir target/release]`. Builds
//! nothing: run it after `cargo build --release -p brisk-examples` and `cargo build --release
//! --manifest-path examples/compare/Cargo.toml`. Needs `redis-server` and `redis-benchmark`.
//!
//! **Clients**, against one real redis-server: Brisk's redis client (`redis_bench`, without a
//! deadline as the others, and with a 5 s timeout), the `redis` crate's multiplexed connection
//! (`redis_crate_bench`), and `redis-benchmark` (C, hiredis-style pipelining: `-c 1 -P N`),
//! each on one connection with 1 and 64 commands in flight, GET and SET of 16 bytes.
//!
//! **Servers**, driven by `redis-benchmark -t set,get -P 16 -c 50 -d 16`: Brisk's
//! `redis_server` example against a real redis-server.
//!
//! Servers are pinned to one CPU and clients to another (`taskset`); CPU time of both comes
//! from `/proc`. Each figure is the median of the runs (by throughput); the tables are
//! Markdown, with ratios.

use std::path::PathBuf;
use std::process::{Child, ExitCode, Stdio};

use brisk_compare::procs::{
    children_cpu_ticks, clock_ticks_per_second, free_port, output_field, pinned, process_cpu_ticks,
    spawn_quiet, wait_until_accepting,
};
use brisk_compare::{at_least_one, positive_seconds};

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Sample {
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    /// Server and client CPU seconds per call, in microseconds.
    cpu_us: f64,
}

/// redis, side by side: Brisk's redis client and server against the redis crate,
/// redis-benchmark and redis-server.
#[derive(Debug, clap::Parser)]
#[command(name = "compare_redis")]
struct Options {
    /// Runs of each contender; the median is reported.
    #[arg(long, default_value = "3", value_parser = at_least_one)]
    runs: usize,
    /// Seconds measured in each run.
    #[arg(long, default_value = "5", value_parser = positive_seconds)]
    duration: f64,
    /// The CPU servers are pinned to.
    #[arg(long = "server-cpu", default_value = "0")]
    server_cpu: String,
    /// The CPU clients are pinned to.
    #[arg(long = "client-cpu", default_value = "1")]
    client_cpu: String,
    /// Where Brisk's release binaries are (`redis_bench`, `redis_server`).
    #[arg(long = "bin-dir", default_value = "../../target/release")]
    bin_dir: PathBuf,
    /// Where this crate's release binaries are (`redis_crate_bench`).
    #[arg(long = "crate-dir", default_value = "target/release")]
    crate_dir: PathBuf,
}

fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare_redis: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    let tick = clock_ticks_per_second();
    let mut clients = String::from(
        "| op | in flight | client | qps | p50 µs | p99 µs | CPU µs/call | Brisk vs it (with timeout) |\n|---|---:|---|---:|---:|---:|---:|---:|\n",
    );
    for op in ["get", "set"] {
        for inflight in [1usize, 64] {
            // Brisk without a deadline (as the redis crate and redis-benchmark call), and with
            // the 5 s one a brpc user would set.
            let mut samples: [Vec<Sample>; 4] = Default::default();
            let brisk_bench = options.bin_dir.join("redis_bench");
            let crate_bench = options.crate_dir.join("redis_crate_bench");
            for run in 0..options.runs {
                let server = RedisServer::start(&options.server_cpu, "redis-server")?;
                // Rotate the order, so no client always runs on a warmer server.
                for turn in 0..4 {
                    let contender = (run + turn) % 4;
                    let sample = server.measure(tick, || match contender {
                        0 => bench_client(
                            options,
                            &brisk_bench,
                            &["--timeout-ms", "0"],
                            server.addr,
                            op,
                            inflight,
                        ),
                        1 => bench_client(
                            options,
                            &brisk_bench,
                            &["--timeout-ms", "5000"],
                            server.addr,
                            op,
                            inflight,
                        ),
                        2 => bench_client(options, &crate_bench, &[], server.addr, op, inflight),
                        _ => redis_benchmark(
                            &options.client_cpu,
                            server.addr,
                            op,
                            inflight,
                            options.duration,
                            1,
                        ),
                    })?;
                    samples[contender].push(sample);
                }
            }
            let [brisk, brisk_deadline, krate, native] = samples.map(median);
            for (name, sample) in [
                ("Brisk", brisk),
                ("Brisk, 5 s timeout", brisk_deadline),
                ("redis crate", krate),
                ("redis-benchmark", native),
            ] {
                clients.push_str(&format!(
                    "| {op} | {inflight} | {name} | {:.0} | {:.0} | {:.0} | {:.2} | {} |\n",
                    sample.qps,
                    sample.p50_us,
                    sample.p99_us,
                    sample.cpu_us,
                    if name.starts_with("Brisk") {
                        "".to_owned()
                    } else {
                        format!(
                            "{:.2}× ({:.2}×)",
                            brisk.qps / sample.qps,
                            brisk_deadline.qps / sample.qps
                        )
                    }
                ));
            }
            eprintln!("compare_redis: {op} at {inflight} in flight done");
        }
    }
    println!("Clients (one connection to one redis-server):\n\n{clients}");

    let mut servers = String::from(
        "| op | server | requests/s | p50 µs | p99 µs | server CPU µs/request | Brisk vs redis |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    let brisk_server = options.bin_dir.join("redis_server");
    for op in ["set", "get"] {
        let mut brisk = Vec::new();
        let mut real = Vec::new();
        for run in 0..options.runs {
            for turn in 0..2 {
                let brisk_turn = (run + turn) % 2 == 0;
                let program = if brisk_turn {
                    brisk_server.as_os_str()
                } else {
                    "redis-server".as_ref()
                };
                let server = RedisServer::start(&options.server_cpu, program)?;
                let sample = server.measure_server_only(tick, || {
                    redis_benchmark(
                        &options.client_cpu,
                        server.addr,
                        op,
                        16,
                        options.duration,
                        50,
                    )
                })?;
                if brisk_turn {
                    brisk.push(sample);
                } else {
                    real.push(sample);
                }
            }
        }
        let (brisk, real) = (median(brisk), median(real));
        for (name, sample) in [("Brisk redis_server", brisk), ("redis-server", real)] {
            servers.push_str(&format!(
                "| {op} | {name} | {:.0} | {:.0} | {:.0} | {:.2} | {} |\n",
                sample.qps,
                sample.p50_us,
                sample.p99_us,
                sample.cpu_us,
                if name == "redis-server" {
                    "".to_owned()
                } else {
                    format!("{:.2}×", brisk.qps / real.qps)
                }
            ));
        }
        eprintln!("compare_redis: server {op} done");
    }
    println!("Servers (redis-benchmark -P 16 -c 50 -d 16):\n\n{servers}");
    Ok(())
}

/// A redis server (the real one, or Brisk's example) pinned to a CPU; killed when dropped.
struct RedisServer {
    child: Child,
    addr: std::net::SocketAddr,
}

impl RedisServer {
    fn start(cpu: &str, program: impl AsRef<std::ffi::OsStr>) -> Result<RedisServer, String> {
        let addr = free_port()?;
        let program = program.as_ref();
        let mut command = pinned(cpu, program);
        if program == "redis-server" {
            command.args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"]);
            command.args(["--save", "", "--appendonly", "no"]);
        } else {
            command.args(["--listen", &addr.to_string()]);
        }
        let mut child = spawn_quiet(&mut command)?;
        wait_until_accepting(&mut child, addr)?;
        Ok(RedisServer { child, addr })
    }

    /// Runs a client, adding the server's CPU to the client's in the sample.
    fn measure(
        &self,
        tick: f64,
        client: impl FnOnce() -> Result<(Sample, f64, f64), String>,
    ) -> Result<Sample, String> {
        let server_before = process_cpu_ticks(self.child.id())?;
        let (mut sample, client_cpu_s, calls) = client()?;
        let server_cpu_s = (process_cpu_ticks(self.child.id())? - server_before) as f64 / tick;
        sample.cpu_us = (server_cpu_s + client_cpu_s) / calls.max(1.0) * 1e6;
        Ok(sample)
    }

    /// Runs a client, counting only the server's CPU.
    fn measure_server_only(
        &self,
        tick: f64,
        client: impl FnOnce() -> Result<(Sample, f64, f64), String>,
    ) -> Result<Sample, String> {
        let server_before = process_cpu_ticks(self.child.id())?;
        let (mut sample, _, calls) = client()?;
        let server_cpu_s = (process_cpu_ticks(self.child.id())? - server_before) as f64 / tick;
        sample.cpu_us = server_cpu_s / calls.max(1.0) * 1e6;
        Ok(sample)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one of the two Rust bench clients: its sample, its CPU seconds, and its call count.
fn bench_client(
    options: &Options,
    program: &std::path::Path,
    extra: &[&str],
    addr: std::net::SocketAddr,
    op: &str,
    inflight: usize,
) -> Result<(Sample, f64, f64), String> {
    let tick = clock_ticks_per_second();
    let before = children_cpu_ticks()?;
    let output = pinned(&options.client_cpu, program)
        .args(["--server", &addr.to_string(), "--op", op])
        .args(["--concurrency", &inflight.to_string(), "--size", "16"])
        .args(["--duration", &options.duration.to_string(), "--warmup", "1"])
        .args(extra)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let cpu_s = (children_cpu_ticks()? - before) as f64 / tick;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || output_field(&stdout, "errors")? > 0.0 {
        return Err(format!("{} failed: {stdout}", program.display()));
    }
    let qps = output_field(&stdout, "qps")?;
    let sample = Sample {
        qps,
        p50_us: output_field(&stdout, "p50_us")?,
        p99_us: output_field(&stdout, "p99_us")?,
        cpu_us: 0.0,
    };
    // Warmup calls are not in qps but are in the CPU: count them at the same rate.
    Ok((sample, cpu_s, qps * (options.duration + 1.0)))
}

/// Runs `redis-benchmark` with `clients` connections of `pipeline` commands in flight each,
/// for about `duration` seconds: its sample, its CPU seconds, and its request count.
fn redis_benchmark(
    cpu: &str,
    addr: std::net::SocketAddr,
    op: &str,
    pipeline: usize,
    duration: f64,
    clients: usize,
) -> Result<(Sample, f64, f64), String> {
    let tick = clock_ticks_per_second();
    // A first short run finds the rate; the measured one lasts about `duration`.
    let probe = run_redis_benchmark(cpu, addr, op, pipeline, clients, 20_000 * pipeline.min(16))?;
    let requests = ((probe.qps * duration) as usize).max(10_000);
    let before = children_cpu_ticks()?;
    let sample = run_redis_benchmark(cpu, addr, op, pipeline, clients, requests)?;
    let cpu_s = (children_cpu_ticks()? - before) as f64 / tick;
    Ok((sample, cpu_s, requests as f64))
}

fn run_redis_benchmark(
    cpu: &str,
    addr: std::net::SocketAddr,
    op: &str,
    pipeline: usize,
    clients: usize,
    requests: usize,
) -> Result<Sample, String> {
    let output = pinned(cpu, "redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "-t",
            op,
            "-d",
            "16",
        ])
        .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
        .args(["-n", &requests.to_string(), "--csv"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
    // "p99_latency_ms","max_latency_ms", then one row per test.
    let row = stdout
        .lines()
        .find(|l| l.starts_with(&format!("\"{}\"", op.to_uppercase())))
        .ok_or_else(|| format!("redis-benchmark printed no {op} row: {stdout}"))?;
    let fields: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|f| f.trim_matches('"').parse().unwrap_or(0.0))
        .collect();
    if fields.len() < 6 {
        return Err(format!("redis-benchmark's row is short: {row}"));
    }
    Ok(Sample {
        qps: fields[0],
        p50_us: fields[3] * 1000.0,
        p99_us: fields[5] * 1000.0,
        cpu_us: 0.0,
    })
}

fn median(mut samples: Vec<Sample>) -> Sample {
    samples.sort_by(|a, b| a.qps.total_cmp(&b.qps));
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
