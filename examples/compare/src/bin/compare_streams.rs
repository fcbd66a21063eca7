//! Streaming throughput, Brisk against tonic, side by side: `compare_streams [--runs 3]
//! [--server-cpu 0] [--client-cpu 1] [--bin-dir ../../target/release] [--tonic-dir
//! target/release]`. Builds nothing: run it after `cargo build --release -p brisk-examples`
//! and `cargo build --release --manifest-path examples/compare/Cargo.toml`.
//!
//! One stream, client to server, for each message size: `count` messages sent as fast as the
//! stream's flow control allows, timed until the server has them all. Three contenders:
//! - **Brisk STRM**: brpc's streaming RPC (`stream_bench --mode strm` to `stream_server
//!   --quiet`), done when the server's feedback has counted every byte consumed;
//! - **Brisk gRPC**: a client-streaming gRPC call (`stream_bench --mode grpc` to
//!   `interop_server`'s `StreamingInputCall`), done when the server answers with the sum;
//! - **tonic**: the same call and the same bytes in tonic (`tonic_stream_bench` to
//!   `tonic_stream_server`).
//!
//! Each server is pinned to one CPU and its client to another (`taskset`); CPU time of both
//! comes from `/proc`. The order of the contenders rotates from run to run. It prints the median
//! of the runs as a Markdown table, with each Brisk column's throughput as a ratio of tonic's.

use std::path::PathBuf;
use std::process::{Child, ExitCode, Stdio};

use brisk_compare::at_least_one;
use brisk_compare::procs::{
    children_cpu_ticks, clock_ticks_per_second, free_port, output_field, pinned, process_cpu_ticks,
    spawn_quiet, wait_until_accepting,
};

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Strm,
    Grpc,
    Tonic,
}

const CONTENDERS: [Contender; 3] = [Contender::Strm, Contender::Grpc, Contender::Tonic];

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Strm => "Brisk STRM",
            Contender::Grpc => "Brisk gRPC",
            Contender::Tonic => "tonic",
        }
    }
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Sample {
    mb_s: f64,
    msgs_s: f64,
    /// Server and client CPU seconds per message, in microseconds.
    cpu_us_per_msg: f64,
}

struct Options {
    runs: usize,
    server_cpu: String,
    client_cpu: String,
    bin_dir: PathBuf,
    tonic_dir: PathBuf,
    /// Message sizes and how many of each.
    loads: Vec<(usize, u64)>,
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("compare_streams: {e}");
            return ExitCode::from(2);
        }
    };
    let tick = clock_ticks_per_second();
    let mut table = String::from(
        "| message | contender | MB/s | messages/s | CPU µs/message | vs tonic |\n|---|---|---:|---:|---:|---:|\n",
    );
    for &(size, count) in &options.loads {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); CONTENDERS.len()];
        for run in 0..options.runs {
            for k in 0..CONTENDERS.len() {
                let index = (run + k) % CONTENDERS.len();
                match run_one(&options, CONTENDERS[index], size, count, tick) {
                    Ok(sample) => samples[index].push(sample),
                    Err(e) => eprintln!("{} {size} B: {e}", CONTENDERS[index].name()),
                }
            }
        }
        let medians: Vec<Option<Sample>> = samples.iter().map(|s| median(s)).collect();
        let tonic = medians[2].map(|s| s.mb_s);
        for (contender, sample) in CONTENDERS.iter().zip(&medians) {
            let Some(sample) = sample else {
                table.push_str(&format!(
                    "| {} | {} | failed | | | |\n",
                    bytes(size),
                    contender.name()
                ));
                continue;
            };
            let ratio = match (tonic, *contender) {
                (Some(tonic), c) if c != Contender::Tonic && tonic > 0.0 => {
                    format!("{:.2}×", sample.mb_s / tonic)
                }
                _ => String::new(),
            };
            table.push_str(&format!(
                "| {} | {} | {:.1} | {:.0} | {:.2} | {ratio} |\n",
                bytes(size),
                contender.name(),
                sample.mb_s,
                sample.msgs_s,
                sample.cpu_us_per_msg
            ));
        }
    }
    println!(
        "one stream, client to server; median of {} runs; server on CPU {}, client on CPU {}\n\n{table}",
        options.runs, options.server_cpu, options.client_cpu
    );
    ExitCode::SUCCESS
}

/// One client-streaming call of many messages: Brisk's streaming RPC and gRPC against tonic.
#[derive(Debug, clap::Parser)]
#[command(name = "compare_streams")]
struct Flags {
    /// Runs of each contender; the median is reported.
    #[arg(long, default_value = "3", value_parser = at_least_one)]
    runs: usize,
    /// The CPU servers are pinned to.
    #[arg(long = "server-cpu", default_value = "0")]
    server_cpu: String,
    /// The CPU clients are pinned to.
    #[arg(long = "client-cpu", default_value = "1")]
    client_cpu: String,
    /// Where Brisk's release binaries are.
    #[arg(long = "bin-dir", default_value = "../../target/release")]
    bin_dir: PathBuf,
    /// Where this crate's release binaries are (tonic's).
    #[arg(long = "tonic-dir", default_value = "target/release")]
    tonic_dir: PathBuf,
    /// 64-byte messages in a stream.
    #[arg(long = "small-count", default_value_t = 1_000_000)]
    small_count: u64,
    /// 1 MiB messages in a stream.
    #[arg(long = "large-count", default_value_t = 2_000)]
    large_count: u64,
}

fn parse() -> Result<Options, String> {
    let flags: Flags = clap::Parser::parse();
    Ok(Options {
        runs: flags.runs,
        server_cpu: flags.server_cpu,
        client_cpu: flags.client_cpu,
        bin_dir: flags.bin_dir,
        tonic_dir: flags.tonic_dir,
        loads: vec![(64, flags.small_count), (1 << 20, flags.large_count)],
    })
}

fn bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} B")
    }
}

fn median(samples: &[Sample]) -> Option<Sample> {
    if samples.is_empty() {
        return None;
    }
    let pick = |f: fn(&Sample) -> f64| {
        let mut values: Vec<f64> = samples.iter().map(f).collect();
        values.sort_by(|a, b| a.total_cmp(b));
        values[values.len() / 2]
    };
    Some(Sample {
        mb_s: pick(|s| s.mb_s),
        msgs_s: pick(|s| s.msgs_s),
        cpu_us_per_msg: pick(|s| s.cpu_us_per_msg),
    })
}

/// Starts `contender`'s server, runs its client once, stops the server.
fn run_one(
    options: &Options,
    contender: Contender,
    size: usize,
    count: u64,
    tick: f64,
) -> Result<Sample, String> {
    let addr = free_port()?;
    let mut server = match contender {
        Contender::Strm => {
            let mut c = pinned(&options.server_cpu, options.bin_dir.join("stream_server"));
            c.args(["--quiet", "--listen", &addr.to_string()]);
            c
        }
        Contender::Grpc => {
            let mut c = pinned(&options.server_cpu, options.bin_dir.join("interop_server"));
            c.args(["--port", &addr.port().to_string()]);
            c
        }
        Contender::Tonic => {
            let mut c = pinned(
                &options.server_cpu,
                options.tonic_dir.join("tonic_stream_server"),
            );
            c.args(["--listen", &addr.to_string(), "--threads", "1"]);
            c
        }
    };
    let mut server = spawn_quiet(&mut server)?;
    let result = drive(options, contender, &mut server, addr, size, count, tick);
    let _ = server.kill();
    let _ = server.wait();
    result
}

fn drive(
    options: &Options,
    contender: Contender,
    server: &mut Child,
    addr: std::net::SocketAddr,
    size: usize,
    count: u64,
    tick: f64,
) -> Result<Sample, String> {
    wait_until_accepting(server, addr)?;
    let (program, mode) = match contender {
        Contender::Strm => (options.bin_dir.join("stream_bench"), Some("strm")),
        Contender::Grpc => (options.bin_dir.join("stream_bench"), Some("grpc")),
        Contender::Tonic => (options.tonic_dir.join("tonic_stream_bench"), None),
    };
    let mut client = pinned(&options.client_cpu, program);
    if let Some(mode) = mode {
        client.args(["--mode", mode]);
    } else {
        client.args(["--threads", "1"]);
    }
    client
        .args(["--server", &addr.to_string()])
        .args(["--size", &size.to_string()])
        .args(["--count", &count.to_string()]);
    let children_before = children_cpu_ticks()?;
    let server_before = process_cpu_ticks(server.id())?;
    let output = client
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run the client: {e}"))?;
    let server_after = process_cpu_ticks(server.id())?;
    let client_ticks = children_cpu_ticks()? - children_before;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "client {}: {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let field = |name: &str| output_field(&stdout, name);
    let cpu_secs = (server_after.saturating_sub(server_before) + client_ticks) as f64 / tick;
    Ok(Sample {
        mb_s: field("mb_s")?,
        msgs_s: field("msgs_s")?,
        cpu_us_per_msg: cpu_secs / count as f64 * 1e6,
    })
}
