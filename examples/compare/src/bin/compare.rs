//! Brisk against tonic, side by side: `compare [--runs 3] [--duration 10] [--warmup 2]
//! [--threads 1]`. Builds nothing: run it after
//! `cargo build --release -p brisk-examples` (Brisk's `echo_server` and `bench`) and
//! `cargo build --release --manifest-path examples/compare/Cargo.toml` (tonic's twins).
//!
//! For each scenario and run it starts one framework's echo server pinned to one CPU
//! (`taskset -c 0`), waits until its port accepts, drives it with that framework's own load
//! generator pinned to another (`taskset -c 1`), reads both processes' CPU time from `/proc`
//! over the measured part of the run, stops the server, then does the same for the other
//! framework (Brisk first on even runs, tonic first on odd ones). It prints the median of the
//! runs, metric by metric, as a Markdown table.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use brisk_compare::Args;

const USAGE: &str = "usage: compare [--runs N] [--duration SECONDS] [--warmup SECONDS] \
                     [--threads N] [--server-cpu CPU] [--client-cpu CPU] \
                     [--brisk-server PATH] [--brisk-bench PATH] [--tonic-server PATH] \
                     [--tonic-bench PATH]";

/// One load: `conns` connections, `concurrency` calls in flight, a `size`-byte message and an
/// `attachment`-byte attachment (a `bytes` field on tonic's side).
#[derive(Clone, Copy)]
struct Scenario {
    conns: usize,
    concurrency: usize,
    size: usize,
    attachment: usize,
}

const SCENARIOS: [Scenario; 5] = [
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
];

impl Scenario {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framework {
    Brisk,
    Tonic,
}

impl Framework {
    fn name(self) -> &'static str {
        match self {
            Framework::Brisk => "Brisk",
            Framework::Tonic => "tonic",
        }
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
}

impl Options {
    fn binaries(&self, framework: Framework) -> (&Path, &Path) {
        match framework {
            Framework::Brisk => (&self.brisk_server, &self.brisk_bench),
            Framework::Tonic => (&self.tonic_server, &self.tonic_bench),
        }
    }
}

fn parse() -> Result<Options, String> {
    let args = Args::parse()?;
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
    let path = |name: &str, default: PathBuf| args.get(name).map(PathBuf::from).unwrap_or(default);
    let options = Options {
        runs: args.parse_or("runs", 3)?,
        duration: args.parse_or("duration", 10.0)?,
        warmup: args.parse_or("warmup", 2.0)?,
        threads: args.parse_or("threads", 1)?,
        server_cpu: args.get_or("server-cpu", "0"),
        client_cpu: args.get_or("client-cpu", "1"),
        brisk_server: path("brisk-server", brisk_dir.join("echo_server")),
        brisk_bench: path("brisk-bench", brisk_dir.join("bench")),
        tonic_server: path("tonic-server", own_dir.join("tonic_echo_server")),
        tonic_bench: path("tonic-bench", own_dir.join("tonic_bench")),
    };
    if options.runs == 0 || options.threads == 0 || options.duration <= 0.0 {
        return Err("--runs, --threads and --duration must be positive".into());
    }
    for binary in [
        &options.brisk_server,
        &options.brisk_bench,
        &options.tonic_server,
        &options.tonic_bench,
    ] {
        if !binary.is_file() {
            return Err(format!(
                "{} not found: build first with `cargo build --release -p brisk-examples && \
                 cargo build --release --manifest-path examples/compare/Cargo.toml`",
                binary.display()
            ));
        }
    }
    Ok(options)
}

/// What one run of one framework measured.
#[derive(Clone, Copy, Default)]
struct Sample {
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    errors: f64,
    /// CPU time over the measured part of the run, in % of one core.
    server_cpu: f64,
    client_cpu: f64,
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("compare: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if Command::new("taskset").arg("-V").output().is_err() {
        eprintln!("compare: `taskset` (util-linux) is needed to pin the processes");
        return ExitCode::FAILURE;
    }
    let tick = clock_ticks_per_second();
    let load_before = load_average();
    let mut results = Vec::new();
    for scenario in SCENARIOS {
        let mut samples = [Vec::new(), Vec::new()];
        for run in 0..options.runs {
            let order = if run % 2 == 0 {
                [Framework::Brisk, Framework::Tonic]
            } else {
                [Framework::Tonic, Framework::Brisk]
            };
            for framework in order {
                eprint!(
                    "compare: {} — run {}/{} — {:5}: ",
                    scenario.label(),
                    run + 1,
                    options.runs,
                    framework.name()
                );
                match run_one(&options, framework, scenario, tick) {
                    Ok(sample) => {
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
                        samples[(framework == Framework::Tonic) as usize].push(sample);
                    }
                    Err(e) => eprintln!("failed: {e}"),
                }
            }
        }
        let [brisk, tonic] = samples;
        results.push((scenario, median(&brisk), median(&tonic)));
    }
    let load = format!("{load_before} before, {} after", load_average());
    print!("{}", report(&options, &results, &load));
    if results.iter().any(|(_, b, t)| b.is_none() || t.is_none()) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Starts `framework`'s server, drives it with its client, and stops it.
fn run_one(
    options: &Options,
    framework: Framework,
    scenario: Scenario,
    tick: f64,
) -> Result<Sample, String> {
    let (server_bin, bench_bin) = options.binaries(framework);
    let addr = free_port()?;
    let threads = options.threads.to_string();
    let mut server = Command::new("taskset")
        .arg("-c")
        .arg(&options.server_cpu)
        .arg(server_bin)
        .args(["--listen", &addr.to_string(), "--threads", &threads])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", server_bin.display()))?;
    let result = drive(options, bench_bin, &mut server, addr, scenario, tick);
    let _ = server.kill();
    let _ = server.wait();
    result
}

fn drive(
    options: &Options,
    bench_bin: &Path,
    server: &mut Child,
    addr: SocketAddr,
    scenario: Scenario,
    tick: f64,
) -> Result<Sample, String> {
    wait_until_accepting(server, addr)?;
    let children_before = children_cpu_ticks()?;
    let client = Command::new("taskset")
        .arg("-c")
        .arg(&options.client_cpu)
        .arg(bench_bin)
        .args(["--server", &addr.to_string()])
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
    if !output.status.success() {
        return Err(format!(
            "client {}: {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let field = |name: &str| -> Result<f64, String> {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no `{name}=` in the client's output `{}`", stdout.trim()))
    };
    let percent = |ticks: u64| ticks as f64 / tick / wall * 100.0;
    Ok(Sample {
        qps: field("qps")?,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        p999_us: field("p999_us")?,
        errors: field("errors")?,
        server_cpu: percent(server_to.saturating_sub(server_from)),
        client_cpu: percent(client_total.saturating_sub(client_from)),
    })
}

/// A loopback port nobody listens on (the server binds it right after).
fn free_port() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    listener.local_addr().map_err(|e| format!("free port: {e}"))
}

fn wait_until_accepting(server: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = server.try_wait() {
            return Err(format!("the server exited before accepting: {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!("the server did not accept on {addr} within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 onwards).
fn stat_fields(pid: &str) -> Result<Vec<u64>, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?
        .1;
    // Field 3 (the state) is a letter: keep the positions, parse the numbers.
    Ok(rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect())
}

/// utime + stime (fields 14 and 15) of a process, in clock ticks.
fn process_cpu_ticks(pid: u32) -> Result<u64, String> {
    let fields = stat_fields(&pid.to_string())?;
    Ok(fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0))
}

/// cutime + cstime (fields 16 and 17) of this process: the CPU of the children it waited for.
fn children_cpu_ticks() -> Result<u64, String> {
    let fields = stat_fields("self")?;
    Ok(fields.get(13).copied().unwrap_or(0) + fields.get(14).copied().unwrap_or(0))
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The median of each metric on its own.
fn median(samples: &[Sample]) -> Option<Sample> {
    if samples.is_empty() {
        return None;
    }
    let of = |metric: fn(&Sample) -> f64| {
        let mut values: Vec<f64> = samples.iter().map(metric).collect();
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        }
    };
    Some(Sample {
        qps: of(|s| s.qps),
        p50_us: of(|s| s.p50_us),
        p99_us: of(|s| s.p99_us),
        p999_us: of(|s| s.p999_us),
        errors: of(|s| s.errors),
        server_cpu: of(|s| s.server_cpu),
        client_cpu: of(|s| s.client_cpu),
    })
}

/// The 1-minute load average: anything else running skews the numbers.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn report(
    options: &Options,
    results: &[(Scenario, Option<Sample>, Option<Sample>)],
    load: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n## Brisk vs tonic — echo\n");
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
        "- tonic {} (hyper {}, h2 {}), default settings; Brisk baidu_std, default settings",
        locked_version("tonic"),
        locked_version("hyper"),
        locked_version("h2")
    );
    let _ = writeln!(
        out,
        "- each side: server pinned to CPU {}, client to CPU {} (`taskset`), {} tokio worker \
         thread(s) each; median of {} run(s) of {} s after {} s warm-up, frameworks alternated",
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
    let _ = writeln!(
        out,
        "| scenario | Brisk QPS | tonic QPS | Brisk/tonic | Brisk p50/p99/p999 µs | \
         tonic p50/p99/p999 µs | Brisk CPU server/client | tonic CPU server/client |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut errors = Vec::new();
    for (scenario, brisk, tonic) in results {
        let qps = |s: &Option<Sample>| s.map_or("failed".into(), |s| format!("{:.0}", s.qps));
        let lat = |s: &Option<Sample>| {
            s.map_or("—".into(), |s| {
                format!("{:.0} / {:.0} / {:.0}", s.p50_us, s.p99_us, s.p999_us)
            })
        };
        let cpu = |s: &Option<Sample>| {
            s.map_or("—".into(), |s| {
                format!("{:.0}% / {:.0}%", s.server_cpu, s.client_cpu)
            })
        };
        let ratio = match (brisk, tonic) {
            (Some(b), Some(t)) if t.qps > 0.0 => format!("{:.2}×", b.qps / t.qps),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            scenario.label(),
            qps(brisk),
            qps(tonic),
            ratio,
            lat(brisk),
            lat(tonic),
            cpu(brisk),
            cpu(tonic)
        );
        for (name, sample) in [("Brisk", brisk), ("tonic", tonic)] {
            if let Some(s) = sample.filter(|s| s.errors > 0.0) {
                errors.push(format!(
                    "{name}, {}: {} errors (median)",
                    scenario.label(),
                    s.errors
                ));
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CPU is user + system time from `/proc/<pid>/stat` over the measured part of the run, in % \
         of one core. The 1 MiB scenario uses Brisk's real attachment \
         (`Controller::set_request_attachment`, echoed back as the response attachment); gRPC has \
         no attachment, so tonic sends the same bytes in a `bytes` field (`compare.Blob`, as \
         `Bytes`) and gets them back. Both frameworks run with their default settings (tonic: \
         hyper's 1 MiB HTTP/2 stream and connection windows on the server side)."
    );
    for line in errors {
        let _ = writeln!(out, "\n**{line}**");
    }
    out
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
    let lock = include_str!("../../Cargo.lock");
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|at| lock[at + needle.len()..].split('"').next())
        .unwrap_or("?")
        .to_owned()
}
