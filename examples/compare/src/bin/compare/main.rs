//! Brisk against tonic, side by side: `compare [--runs 3] [--duration 10] [--warmup 2]
//! [--threads 1]`. Builds nothing: run it after
//! `cargo build --release -p brisk-examples -p brisk-cli` (Brisk's `echo_server`, and the
//! `brisk` tool whose `brisk bench` drives it) and
//! `cargo build --release --manifest-path examples/compare/Cargo.toml` (tonic's twins).
//!
//! Three contenders (see [`Contender`]): Brisk over baidu_std, Brisk over gRPC (`h2:grpc`, the
//! same `echo_server`, which serves both protocols on one port) and tonic (gRPC). For each
//! scenario and run it starts one contender's echo server pinned to one CPU (`taskset -c 0`),
//! waits until its port accepts, drives it with that contender's load generator pinned to
//! another (`taskset -c 1`), reads both processes' CPU time from `/proc` over the measured part
//! of the run, stops the server, then does the same for the next contender. The order rotates
//! from run to run (run `r` starts with contender `r mod 3`), so each one goes first, second and
//! last equally often over a multiple of three runs. It prints the median of the runs, metric by
//! metric, as a Markdown table, with each Brisk column's QPS as a ratio of tonic's.
//!
//! The last two scenarios are many clients: 1000 and then 10,000 connections with one call in
//! flight each. For them `compare` also builds `../shared/bench/manyconn_probe.c` with `cc` and
//! runs it pinned the same way (the C floor of the machine for each load), and prints a table
//! per load: each contender as a share of that floor, and how evenly its callers were served
//! (p99 and max over the mean, and the least served caller's calls over the median caller's).
//! A load needs an open-file limit above its connections (the processes inherit `compare`'s);
//! one the limit cannot hold is skipped, and the report says so.
//!
//! Last, the busy 1 × 64 load alone and then beside 10,000 idle connections on the same server
//! (see the `idle` module): the p99 ratio of the two, and the server's memory per idle
//! connection. `--idle-only` runs just that part.
//!
//! gRPC has no attachment, so Brisk's `h2:grpc` column skips the scenario with one (`n/a`):
//! Brisk's client refuses to send an attachment over `h2:grpc` ("h2:grpc cannot carry an
//! attachment"), and its echo service has no `bytes` field to carry the bytes instead.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use brisk_compare::procs::{
    children_cpu_ticks, clock_ticks_per_second, free_port, output_field, pinned, process_cpu_ticks,
    spawn_quiet, wait_until_accepting,
};
use brisk_compare::{at_least_one, non_negative_seconds, positive_seconds};

mod floor;
mod idle;

/// One load: `conns` connections, `concurrency` calls in flight, a `size`-byte message and an
/// `attachment`-byte attachment (a `bytes` field on tonic's side).
#[derive(Clone, Copy)]
struct Scenario {
    conns: usize,
    concurrency: usize,
    size: usize,
    attachment: usize,
}

const SCENARIOS: [Scenario; 7] = [
    Scenario {
        conns: 1,
        concurrency: 1,
        size: 16,
        attachment: 0,
    },
    Scenario {
        conns: 1,
        concurrency: 64,
        size: 16,
        attachment: 0,
    },
    Scenario {
        conns: 4,
        concurrency: 256,
        size: 16,
        attachment: 0,
    },
    Scenario {
        conns: 1,
        concurrency: 64,
        size: 4096,
        attachment: 0,
    },
    Scenario {
        conns: 1,
        concurrency: 4,
        size: 16,
        attachment: 1 << 20,
    },
    // Many clients with one call each: every message costs a read and a write a side, no
    // batching can help; set beside the C floor (`manyconn_probe`) measured in the same run.
    Scenario {
        conns: MANY_CONNS[0],
        concurrency: MANY_CONNS[0],
        size: 16,
        attachment: 0,
    },
    Scenario {
        conns: MANY_CONNS[1],
        concurrency: MANY_CONNS[1],
        size: 16,
        attachment: 0,
    },
];

/// The connections of the many-clients scenarios, each with one call in flight.
const MANY_CONNS: [usize; 2] = [1000, 10_000];

/// File descriptors a process needs beyond its connections (listeners, the runtime, stdio).
const SPARE_FDS: u64 = 64;

impl Scenario {
    /// Whether it is one of the many-clients loads, set beside the C floor.
    fn is_many(&self) -> bool {
        MANY_CONNS.contains(&self.conns)
    }

    fn label(&self) -> String {
        let mut label = format!(
            "{} conn × {} in flight, {}",
            self.conns,
            self.concurrency,
            bytes(self.size)
        );
        if self.attachment > 0 {
            let _ = write!(label, " + {} attachment", bytes(self.attachment));
        }
        label
    }
}

fn bytes(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// One server and the load generator that drives it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Contender {
    /// Brisk's `echo_server`, driven by `brisk bench --protocol baidu_std`.
    BriskBaiduStd,
    /// The same `echo_server` (gRPC on the same port), driven by `brisk bench --protocol h2:grpc`.
    BriskGrpc,
    /// tonic's `tonic_echo_server`, driven by `tonic_bench`.
    Tonic,
}

/// All contenders, in the table's column order (tonic, the reference, last).
const CONTENDERS: [Contender; 3] = [
    Contender::BriskBaiduStd,
    Contender::BriskGrpc,
    Contender::Tonic,
];

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::BriskBaiduStd => "Brisk baidu_std",
            Contender::BriskGrpc => "Brisk h2:grpc",
            Contender::Tonic => "tonic",
        }
    }

    /// Its position in [`CONTENDERS`] (which lists the variants in declaration order).
    fn index(self) -> usize {
        self as usize
    }

    /// The `--protocol` given to Brisk's `bench`; `None` for tonic, whose client has no such
    /// option.
    fn protocol(self) -> Option<&'static str> {
        match self {
            Contender::BriskBaiduStd => Some("baidu_std"),
            Contender::BriskGrpc => Some("h2:grpc"),
            Contender::Tonic => None,
        }
    }

    /// Whether it can run `scenario`: gRPC cannot carry Brisk's attachment.
    fn supports(self, scenario: &Scenario) -> bool {
        self != Contender::BriskGrpc || scenario.attachment == 0
    }
}

struct Options {
    runs: usize,
    duration: f64,
    warmup: f64,
    threads: usize,
    server_cpu: String,
    client_cpu: String,
    brisk_server: PathBuf,
    brisk_bench: PathBuf,
    tonic_server: PathBuf,
    tonic_bench: PathBuf,
    idle_holder: PathBuf,
    idle_only: bool,
}

impl Options {
    /// The server and client binaries of `contender`.
    fn binaries(&self, contender: Contender) -> (&Path, &Path) {
        match contender {
            Contender::BriskBaiduStd | Contender::BriskGrpc => {
                (&self.brisk_server, &self.brisk_bench)
            }
            Contender::Tonic => (&self.tonic_server, &self.tonic_bench),
        }
    }
}

/// Brisk against tonic on the same echo loads, pinned, side by side.
#[derive(Debug, clap::Parser)]
#[command(name = "compare")]
struct Flags {
    /// Runs of each contender on each load; the median is reported.
    #[arg(long, default_value = "3", value_parser = at_least_one)]
    runs: usize,
    /// Seconds measured in each run.
    #[arg(long, default_value = "10", value_parser = positive_seconds)]
    duration: f64,
    /// Seconds run first and not counted.
    #[arg(long, default_value = "2", value_parser = non_negative_seconds)]
    warmup: f64,
    /// Worker threads of each server and client.
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    threads: usize,
    /// The CPU servers are pinned to.
    #[arg(long = "server-cpu", default_value = "0")]
    server_cpu: String,
    /// The CPU clients are pinned to.
    #[arg(long = "client-cpu", default_value = "1")]
    client_cpu: String,
    /// Brisk's echo server (default: `echo_server` in the root workspace's release dir).
    #[arg(long = "brisk-server")]
    brisk_server: Option<PathBuf>,
    /// The `brisk` tool, run as `brisk bench` (default: next to the echo server).
    #[arg(long = "brisk-bench")]
    brisk_bench: Option<PathBuf>,
    /// tonic's echo server (default: next to this binary).
    #[arg(long = "tonic-server")]
    tonic_server: Option<PathBuf>,
    /// tonic's load generator (default: next to this binary).
    #[arg(long = "tonic-bench")]
    tonic_bench: Option<PathBuf>,
    /// Brisk's `idle_memory`, which holds the idle connections (default: next to the echo
    /// server).
    #[arg(long = "idle-holder")]
    idle_holder: Option<PathBuf>,
    /// Run only the busy load beside idle connections (no other scenario, no C floor).
    #[arg(long = "idle-only")]
    idle_only: bool,
}

fn parse() -> Result<Options, String> {
    let flags: Flags = clap::Parser::parse();
    // Brisk's binaries: the root workspace's target dir (or $CARGO_TARGET_DIR when set, as then
    // both workspaces build there). tonic's: next to this binary.
    let brisk_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("release"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release"),
    };
    let own_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release"));
    let options = Options {
        runs: flags.runs,
        duration: flags.duration,
        warmup: flags.warmup,
        threads: flags.threads,
        server_cpu: flags.server_cpu,
        client_cpu: flags.client_cpu,
        brisk_server: flags
            .brisk_server
            .unwrap_or_else(|| brisk_dir.join("echo_server")),
        // The `brisk` tool, run as `brisk bench`.
        brisk_bench: flags.brisk_bench.unwrap_or_else(|| brisk_dir.join("brisk")),
        tonic_server: flags
            .tonic_server
            .unwrap_or_else(|| own_dir.join("tonic_echo_server")),
        tonic_bench: flags
            .tonic_bench
            .unwrap_or_else(|| own_dir.join("tonic_bench")),
        idle_holder: flags
            .idle_holder
            .unwrap_or_else(|| brisk_dir.join("idle_memory")),
        idle_only: flags.idle_only,
    };
    for binary in [
        &options.brisk_server,
        &options.brisk_bench,
        &options.tonic_server,
        &options.tonic_bench,
        &options.idle_holder,
    ] {
        if !binary.is_file() {
            return Err(format!(
                "{} not found: build first with `cargo build --release -p brisk-examples -p brisk-cli && \
                 cargo build --release --manifest-path examples/compare/Cargo.toml`",
                binary.display()
            ));
        }
    }
    Ok(options)
}

/// What one run of one contender measured.
#[derive(Clone, Copy, Default)]
struct Sample {
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    errors: f64,
    mean_us: f64,
    max_us: f64,
    /// Calls the least served caller completed, and the median caller.
    caller_calls_min: f64,
    caller_calls_median: f64,
    /// CPU time over the measured part of the run, in % of one core.
    server_cpu: f64,
    client_cpu: f64,
}

impl Sample {
    /// µs of CPU per call of a side that used `percent` of one core.
    fn cpu_us_per_call(&self, percent: f64) -> f64 {
        if self.qps > 0.0 {
            percent / 100.0 / self.qps * 1e6
        } else {
            0.0
        }
    }
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::from(2);
        }
    };
    if Command::new("taskset").arg("-V").output().is_err() {
        eprintln!("compare: `taskset` (util-linux) is needed to pin the processes");
        return ExitCode::FAILURE;
    }
    let tick = clock_ticks_per_second();
    let load_before = load_average();
    let open_files = open_files_limit();
    let fits = |conns: usize| open_files.is_none_or(|limit| conns as u64 + SPARE_FDS <= limit);
    let floor_loads: Vec<usize> = MANY_CONNS
        .into_iter()
        .filter(|&conns| fits(conns) && !options.idle_only)
        .collect();
    let probe = (!floor_loads.is_empty()).then(floor::build);
    let floors: Vec<(usize, Result<f64, String>)> = floor_loads
        .into_iter()
        .map(|conns| {
            let floor = probe
                .as_ref()
                .expect("built for every floor load")
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|probe| floor::median_of_runs(probe, &options, conns));
            if let Err(e) = &floor {
                eprintln!("compare: no C floor for {conns} conns: {e}");
            }
            (conns, floor)
        })
        .collect();
    if let Some(Ok(probe)) = &probe {
        let _ = std::fs::remove_file(probe);
    }
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let scenarios = if options.idle_only {
        &[][..]
    } else {
        &SCENARIOS[..]
    };
    for &scenario in scenarios {
        if !fits(scenario.conns) {
            let limit = open_files.unwrap_or(0);
            eprintln!(
                "compare: {} skipped: the open-file limit is {limit}",
                scenario.label()
            );
            skipped.push(format!(
                "{} skipped: the open-file limit (`ulimit -n`) is {limit}, below {} connections \
                 and {SPARE_FDS} spare descriptors",
                scenario.label(),
                scenario.conns
            ));
            continue;
        }
        let mut samples: [Vec<Sample>; 3] = Default::default();
        let mut first_errors: [Option<String>; 3] = Default::default();
        for run in 0..options.runs {
            let mut order = CONTENDERS;
            order.rotate_left(run % CONTENDERS.len());
            for contender in order.into_iter().filter(|c| c.supports(&scenario)) {
                eprint!(
                    "compare: {} — run {}/{} — {:15}: ",
                    scenario.label(),
                    run + 1,
                    options.runs,
                    contender.name()
                );
                match run_one(&options, contender, scenario, tick) {
                    Ok((sample, client_stderr)) => {
                        eprintln!(
                            "qps={:.0} p50_us={} p99_us={} p999_us={} errors={} cpu server={:.0}% client={:.0}%",
                            sample.qps,
                            sample.p50_us,
                            sample.p99_us,
                            sample.p999_us,
                            sample.errors,
                            sample.server_cpu,
                            sample.client_cpu
                        );
                        if !client_stderr.is_empty() {
                            eprintln!("compare:   client stderr: {client_stderr}");
                            first_errors[contender.index()].get_or_insert(client_stderr);
                        }
                        samples[contender.index()].push(sample);
                    }
                    Err(e) => eprintln!("failed: {e}"),
                }
            }
        }
        let outcomes = CONTENDERS.map(|contender| {
            let i = contender.index();
            if !contender.supports(&scenario) {
                Outcome::NotApplicable
            } else {
                median(&samples[i]).map_or(Outcome::Failed, |median| Outcome::Measured {
                    median,
                    client_stderr: first_errors[i].take(),
                })
            }
        });
        results.push((scenario, outcomes));
    }
    // The idle connections and the busy load's connection, on each side.
    let idle = if fits(idle::IDLE_CONNS + idle::BUSY.conns) {
        Some(idle::measure(&options, tick))
    } else {
        let limit = open_files.unwrap_or(0);
        eprintln!("compare: the idle-connections load skipped: the open-file limit is {limit}");
        skipped.push(format!(
            "{} beside {} idle connections skipped: the open-file limit (`ulimit -n`) is {limit}",
            idle::BUSY.label(),
            idle::IDLE_CONNS
        ));
        None
    };
    let load = format!("{load_before} before, {} after", load_average());
    print!("{}", report(&options, &results, &load, &skipped));
    for (conns, floor) in &floors {
        print!("{}", report_many(&results, *conns, floor));
    }
    if let Some(effects) = &idle {
        print!("{}", idle::report(effects));
    }
    let idle_failed = match &idle {
        Some(effects) => effects.iter().any(Vec::is_empty),
        None => options.idle_only,
    };
    let failed = idle_failed
        || results
            .iter()
            .flat_map(|(_, outcomes)| outcomes)
            .any(|outcome| matches!(outcome, Outcome::Failed));
    if failed {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// One contender's result for one scenario.
enum Outcome {
    /// It cannot run the scenario (see [`Contender::supports`]).
    NotApplicable,
    /// No run succeeded.
    Failed,
    /// The median of the successful runs, and what its client first wrote to stderr (its first
    /// error, when some calls failed), if anything.
    Measured {
        median: Sample,
        client_stderr: Option<String>,
    },
}

impl Outcome {
    fn sample(&self) -> Option<&Sample> {
        match self {
            Outcome::Measured { median, .. } => Some(median),
            Outcome::NotApplicable | Outcome::Failed => None,
        }
    }

    /// The sample formatted by `f`, or why there is none.
    fn show(&self, f: impl Fn(&Sample) -> String) -> String {
        match self {
            Outcome::NotApplicable => "n/a".into(),
            Outcome::Failed => "failed".into(),
            Outcome::Measured { median, .. } => f(median),
        }
    }
}

/// Starts `contender`'s server, drives it with its client, and stops it. Returns what was
/// measured and the client's stderr (trimmed; empty when all went well).
fn run_one(
    options: &Options,
    contender: Contender,
    scenario: Scenario,
    tick: f64,
) -> Result<(Sample, String), String> {
    let (_, bench_bin) = options.binaries(contender);
    let (mut server, addr) = start_server(options, contender)?;
    let result = drive(
        options,
        contender,
        bench_bin,
        &mut server,
        addr,
        scenario,
        tick,
    );
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// Starts `contender`'s echo server on a free port, pinned to the servers' CPU; it and its
/// address ([`drive`] waits until it accepts).
fn start_server(options: &Options, contender: Contender) -> Result<(Child, SocketAddr), String> {
    let (server_bin, _) = options.binaries(contender);
    let addr = free_port()?;
    let threads = options.threads.to_string();
    let server = spawn_quiet(pinned(&options.server_cpu, server_bin).args([
        "--listen",
        &addr.to_string(),
        "--threads",
        &threads,
    ]))
    .map_err(|e| format!("{}: {e}", server_bin.display()))?;
    Ok((server, addr))
}

/// Runs `contender`'s client against the server at `addr`; see [`run_one`].
fn drive(
    options: &Options,
    contender: Contender,
    bench_bin: &Path,
    server: &mut Child,
    addr: SocketAddr,
    scenario: Scenario,
    tick: f64,
) -> Result<(Sample, String), String> {
    wait_until_accepting(server, addr)?;
    let children_before = children_cpu_ticks()?;
    let mut client = pinned(&options.client_cpu, bench_bin);
    if contender != Contender::Tonic {
        client.arg("bench");
    }
    client.args(["--server", &addr.to_string()]);
    if let Some(protocol) = contender.protocol() {
        client.args(["--protocol", protocol]);
    }
    let client = client
        .args(["--conns", &scenario.conns.to_string()])
        .args(["--concurrency", &scenario.concurrency.to_string()])
        .args(["--size", &scenario.size.to_string()])
        .args(["--attachment-size", &scenario.attachment.to_string()])
        .args(["--duration", &options.duration.to_string()])
        .args(["--warmup", &options.warmup.to_string()])
        .args(["--threads", &options.threads.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {}: {e}", bench_bin.display()))?;
    // `taskset` execs the program, so these pids are the server's and the client's own.
    // CPU is counted from the end of the warm-up to the client's exit.
    std::thread::sleep(Duration::from_secs_f64(options.warmup));
    let from = Instant::now();
    let server_from = process_cpu_ticks(server.id())?;
    let client_from = process_cpu_ticks(client.id()).unwrap_or(0);
    let output = client
        .wait_with_output()
        .map_err(|e| format!("wait for the client: {e}"))?;
    let server_to = process_cpu_ticks(server.id())?;
    let wall = from.elapsed().as_secs_f64();
    let client_total = children_cpu_ticks()? - children_before;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if !output.status.success() {
        return Err(format!(
            "client {}: {}{stderr}",
            output.status,
            stdout.trim()
        ));
    }
    let field = |name: &str| output_field(&stdout, name);
    let percent = |ticks: u64| ticks as f64 / tick / wall * 100.0;
    let sample = Sample {
        qps: field("qps")?,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        p999_us: field("p999_us")?,
        errors: field("errors")?,
        mean_us: field("mean_us")?,
        max_us: field("max_us")?,
        caller_calls_min: field("caller_calls_min")?,
        caller_calls_median: field("caller_calls_median")?,
        server_cpu: percent(server_to.saturating_sub(server_from)),
        client_cpu: percent(client_total.saturating_sub(client_from)),
    };
    Ok((sample, stderr))
}

/// The median of each metric on its own.
fn median(samples: &[Sample]) -> Option<Sample> {
    if samples.is_empty() {
        return None;
    }
    let of = |metric: fn(&Sample) -> f64| median_of(samples.iter().map(metric)).unwrap_or(0.0);
    Some(Sample {
        qps: of(|s| s.qps),
        p50_us: of(|s| s.p50_us),
        p99_us: of(|s| s.p99_us),
        p999_us: of(|s| s.p999_us),
        errors: of(|s| s.errors),
        mean_us: of(|s| s.mean_us),
        max_us: of(|s| s.max_us),
        caller_calls_min: of(|s| s.caller_calls_min),
        caller_calls_median: of(|s| s.caller_calls_median),
        server_cpu: of(|s| s.server_cpu),
        client_cpu: of(|s| s.client_cpu),
    })
}

/// The median of some numbers (the mean of the middle two of an even count); `None` when there
/// are none.
fn median_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

/// The 1-minute load average: anything else running skews the numbers.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The Markdown report: a header describing the setup, one table row per scenario, notes.
fn report(
    options: &Options,
    results: &[(Scenario, [Outcome; 3])],
    load: &str,
    skipped: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## Brisk (baidu_std, h2:grpc) vs tonic — echo\n");
    let _ = writeln!(
        out,
        "- date: {}",
        command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    let _ = writeln!(
        out,
        "- machine: {} CPUs (`nproc`), {}, Linux {}",
        command_line("nproc", &[]),
        cpu_model(),
        command_line("uname", &["-r"])
    );
    let _ = writeln!(
        out,
        "- tonic {} (hyper {}, h2 {}), default settings; Brisk baidu_std and h2:grpc (one \
         `echo_server` serving both on one port), default settings",
        locked_version("tonic"),
        locked_version("hyper"),
        locked_version("h2")
    );
    let _ = writeln!(
        out,
        "- each side: server pinned to CPU {}, client to CPU {} (`taskset`), {} tokio worker \
         thread(s) each; median of {} run(s) of {} s after {} s warm-up, order of the three \
         rotated from run to run",
        options.server_cpu,
        options.client_cpu,
        options.threads,
        options.runs,
        options.duration,
        options.warmup
    );
    let _ = writeln!(
        out,
        "- load average (1 min): {load} (anything above ~2 means other work shared the CPUs)"
    );
    let _ = writeln!(out);
    if results.is_empty() {
        for line in skipped {
            let _ = writeln!(out, "**{line}.**\n");
        }
        return out;
    }

    // Columns: QPS of each contender, each Brisk QPS over tonic's, then latency and CPU of each.
    let brisk: Vec<Contender> = CONTENDERS
        .into_iter()
        .filter(|&c| c != Contender::Tonic)
        .collect();
    let tonic = Contender::Tonic.index();
    let mut header = vec!["scenario".to_owned()];
    header.extend(CONTENDERS.iter().map(|c| format!("{} QPS", c.name())));
    header.extend(brisk.iter().map(|c| format!("{}/tonic", c.name())));
    header.extend(
        CONTENDERS
            .iter()
            .map(|c| format!("{} p50/p99/p999 µs", c.name())),
    );
    header.extend(
        CONTENDERS
            .iter()
            .map(|c| format!("{} CPU server/client (µs per call)", c.name())),
    );
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(header.len() - 1));

    let mut notes = Vec::new();
    for (scenario, outcomes) in results {
        let mut row = vec![scenario.label()];
        row.extend(outcomes.iter().map(|o| o.show(|s| format!("{:.0}", s.qps))));
        row.extend(
            brisk
                .iter()
                .map(|c| match (&outcomes[c.index()], outcomes[tonic].sample()) {
                    (Outcome::NotApplicable, _) => "n/a".into(),
                    (Outcome::Measured { median, .. }, Some(t)) if t.qps > 0.0 => {
                        format!("{:.2}×", median.qps / t.qps)
                    }
                    _ => "—".into(),
                }),
        );
        row.extend(
            outcomes.iter().map(|o| {
                o.show(|s| format!("{:.0} / {:.0} / {:.0}", s.p50_us, s.p99_us, s.p999_us))
            }),
        );
        row.extend(outcomes.iter().map(|o| {
            o.show(|s| {
                format!(
                    "{:.0}% / {:.0}% ({:.1} / {:.1})",
                    s.server_cpu,
                    s.client_cpu,
                    s.cpu_us_per_call(s.server_cpu),
                    s.cpu_us_per_call(s.client_cpu)
                )
            })
        }));
        let _ = writeln!(out, "| {} |", row.join(" | "));

        for (contender, outcome) in CONTENDERS.iter().zip(outcomes) {
            if let Outcome::Measured {
                median,
                client_stderr,
            } = outcome
            {
                if median.errors > 0.0 {
                    let mut note = format!(
                        "{}, {}: {} errors (median)",
                        contender.name(),
                        scenario.label(),
                        median.errors
                    );
                    if let Some(stderr) = client_stderr {
                        let _ = write!(note, "; client stderr: `{stderr}`");
                    }
                    notes.push(note);
                }
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CPU is user + system time from `/proc/<pid>/stat` over the measured part of the run, in % \
         of one core, and in brackets µs of CPU per call (that share of a core ÷ QPS). The 1 \
         MiB scenario uses Brisk's real attachment \
         (`Controller::set_request_attachment`, echoed back as the response attachment) over \
         baidu_std; gRPC has no attachment, so tonic sends the same bytes in a `bytes` field \
         (`compare.Blob`, as `Bytes`) and gets them back, and Brisk's h2:grpc column is n/a \
         there (its client refuses an attachment over h2:grpc, and its echo service has no \
         `bytes` field). All run with their default settings (tonic: hyper's 1 MiB HTTP/2 \
         stream and connection windows on the server side)."
    );
    for line in notes {
        let _ = writeln!(out, "\n**{line}**");
    }
    for line in skipped {
        let _ = writeln!(out, "\n**{line}.**");
    }
    out
}

/// The soft limit on open files (`ulimit -n`), which the servers and clients inherit; `None` when
/// unlimited or unknown.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, m)| m.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// A package's version in this crate's Cargo.lock.
fn locked_version(name: &str) -> String {
    let lock = include_str!("../../../Cargo.lock");
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|at| lock[at + needle.len()..].split('"').next())
        .unwrap_or("?")
        .to_owned()
}

/// The many-connections scenario of `conns` connections beside its C floor, with how evenly
/// callers were served.
fn report_many(
    results: &[(Scenario, [Outcome; 3])],
    conns: usize,
    floor: &Result<f64, String>,
) -> String {
    let mut out = String::new();
    let Some((scenario, outcomes)) = results
        .iter()
        .find(|(s, _)| s.is_many() && s.conns == conns)
    else {
        return out;
    };
    let _ = writeln!(
        out,
        "\n### {} — against the floor, and fairness\n",
        scenario.label()
    );
    match floor {
        Ok(rate) => {
            let _ = writeln!(
                out,
                "C floor (`manyconn_probe.c`, one epoll thread a side, pinned the same way, \
                 median of the runs): {rate:.0} msgs/s.\n"
            );
        }
        Err(e) => {
            let _ = writeln!(out, "C floor not measured: {e}.\n");
        }
    }
    let _ = writeln!(
        out,
        "| contender | QPS | % of the C floor | mean µs | p99 ÷ mean | max ÷ mean | calls of the least served caller ÷ median caller's |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (contender, outcome) in CONTENDERS.iter().zip(outcomes) {
        let Some(s) = outcome.sample() else {
            let _ = writeln!(
                out,
                "| {} | {} | | | | | |",
                contender.name(),
                outcome.show(|_| String::new())
            );
            continue;
        };
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.1}", a / b)
            } else {
                "—".to_owned()
            }
        };
        let of_floor = match floor {
            Ok(rate) if *rate > 0.0 => format!("{:.0}%", s.qps / rate * 100.0),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {of_floor} | {:.0} | {} | {} | {} |",
            contender.name(),
            s.qps,
            s.mean_us,
            ratio(s.p99_us, s.mean_us),
            ratio(s.max_us, s.mean_us),
            ratio(s.caller_calls_min, s.caller_calls_median),
        );
    }
    let _ = writeln!(
        out,
        "\nEach caller has a connection of its own and one call in flight, so the mean latency is \
         fixed by Little's law (callers ÷ QPS); p99 and max far above it, or a caller served far \
         less often than the median one, mean some callers wait while others are served again \
         and again."
    );
    out
}
