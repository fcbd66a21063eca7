//! Busy calls beside idle connections: each contender's server serves the 1 × 64 load twice,
//! first alone, then while `idle_memory --hold` keeps [`IDLE_CONNS`] more connections open and
//! idle on it (each called once first, so every buffer on both sides has been used). The two
//! runs are back to back on the same server process, so the machine's drift between them is
//! small; the busy calls' p99 beside the idle connections over their p99 alone is what the idle
//! connections cost the busy ones, and the server's resident memory before and after the idle
//! connections opened, per connection, is what they cost at rest.
//!
//! tonic has no load generator that holds idle connections: Brisk's `idle_memory` holds them
//! for it too, over `h2:grpc` (the same echo service).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};

use brisk_compare::procs::pinned;

use super::{
    drive, median, median_of, start_server, Contender, Options, Sample, Scenario, CONTENDERS,
};

/// The idle connections held beside the busy load.
pub const IDLE_CONNS: usize = 10_000;

/// The busy load: one connection, 64 calls in flight, 16 bytes.
pub const BUSY: Scenario = Scenario {
    conns: 1,
    concurrency: 64,
    size: 16,
    attachment: 0,
};

/// What one run of one contender measured.
pub struct Effect {
    /// The busy load on its own.
    pub alone: Sample,
    /// The same load beside the idle connections.
    pub beside_idle: Sample,
    /// The server's resident memory per idle connection, in KiB.
    pub server_kib_per_conn: f64,
    /// What the client first wrote to stderr in either run (its first error), if anything.
    pub client_stderr: Option<String>,
}

/// Every contender, `options.runs` times, the order rotated from run to run as in the main
/// scenarios; indexed as [`CONTENDERS`].
pub fn measure(options: &Options, tick: f64) -> [Vec<Effect>; 3] {
    let mut effects: [Vec<Effect>; 3] = Default::default();
    for run in 0..options.runs {
        let mut order = CONTENDERS;
        order.rotate_left(run % CONTENDERS.len());
        for contender in order {
            eprint!(
                "compare: {} beside {IDLE_CONNS} idle — run {}/{} — {:15}: ",
                BUSY.label(),
                run + 1,
                options.runs,
                contender.name()
            );
            match run_one(options, contender, tick) {
                Ok(effect) => {
                    eprintln!(
                        "alone qps={:.0} p99_us={}; beside idle qps={:.0} p99_us={} errors={}; \
                         server {:.1} KiB per idle connection",
                        effect.alone.qps,
                        effect.alone.p99_us,
                        effect.beside_idle.qps,
                        effect.beside_idle.p99_us,
                        effect.beside_idle.errors,
                        effect.server_kib_per_conn
                    );
                    effects[contender.index()].push(effect);
                }
                Err(e) => eprintln!("failed: {e}"),
            }
        }
    }
    effects
}

/// One run: the busy load alone, then beside the idle connections, on one server.
fn run_one(options: &Options, contender: Contender, tick: f64) -> Result<Effect, String> {
    let (_, bench_bin) = options.binaries(contender);
    let (mut server, addr) = start_server(options, contender)?;
    let measured = (|| {
        let (alone, alone_stderr) =
            drive(options, contender, bench_bin, &mut server, addr, BUSY, tick)?;
        let before = resident_kib(server.id())?;
        let mut holder = Holder::start(options, contender, addr)?;
        let after = resident_kib(server.id())?;
        let (beside_idle, beside_stderr) =
            drive(options, contender, bench_bin, &mut server, addr, BUSY, tick)?;
        holder.still_holding()?;
        Ok(Effect {
            alone,
            beside_idle,
            server_kib_per_conn: after.saturating_sub(before) as f64 / IDLE_CONNS as f64,
            client_stderr: [alone_stderr, beside_stderr]
                .into_iter()
                .find(|stderr| !stderr.is_empty()),
        })
    })();
    let _ = server.kill();
    let _ = server.wait();
    measured
}

/// `idle_memory --hold`: the idle connections, open while this lives.
struct Holder(Child);

impl Holder {
    /// Starts it pinned to the clients' CPU and waits until its connections are open and have
    /// each been called once (it prints its line then).
    fn start(options: &Options, contender: Contender, addr: SocketAddr) -> Result<Self, String> {
        let protocol = contender.protocol().unwrap_or("h2:grpc");
        let child = pinned(&options.client_cpu, &options.idle_holder)
            .args(["--server", &addr.to_string()])
            .args(["--conns", &IDLE_CONNS.to_string()])
            .args(["--protocol", protocol, "--hold"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {}: {e}", options.idle_holder.display()))?;
        let mut holder = Holder(child);
        let mut line = String::new();
        let stdout = holder.0.stdout.take().expect("stdout is piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("read the idle holder's output: {e}"))?;
        if line.is_empty() {
            let status = holder.0.wait().map_err(|e| e.to_string())?;
            return Err(format!("the idle holder exited before holding: {status}"));
        }
        Ok(holder)
    }

    /// Fails if it has exited (its connections closed while they should have been held).
    fn still_holding(&mut self) -> Result<(), String> {
        match self.0.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the idle holder exited while holding: {status}")),
            Err(e) => Err(format!("the idle holder: {e}")),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process's resident memory (`VmRSS` in `/proc/<pid>/status`), in KiB.
fn resident_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// The report's section: each contender's busy load alone and beside the idle connections.
pub fn report(effects: &[Vec<Effect>; 3]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### {} — alone, and beside {IDLE_CONNS} idle connections\n",
        BUSY.label()
    );
    let _ = writeln!(
        out,
        "| contender | QPS alone | QPS beside idle | p99 µs alone | p99 µs beside idle | p99 beside idle ÷ alone | server KiB per idle connection |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let mut notes = Vec::new();
    for contender in CONTENDERS {
        let runs = &effects[contender.index()];
        let alone: Vec<Sample> = runs.iter().map(|e| e.alone).collect();
        let beside: Vec<Sample> = runs.iter().map(|e| e.beside_idle).collect();
        let (Some(alone), Some(beside)) = (median(&alone), median(&beside)) else {
            let _ = writeln!(out, "| {} | failed | | | | | |", contender.name());
            continue;
        };
        // The ratio of each run's back-to-back pair, then their median: the pairs share a
        // server process and a few seconds, the runs do not.
        let p99_ratio = median_of(
            runs.iter()
                .filter(|e| e.alone.p99_us > 0.0)
                .map(|e| e.beside_idle.p99_us / e.alone.p99_us),
        );
        let kib = median_of(runs.iter().map(|e| e.server_kib_per_conn));
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |",
            contender.name(),
            alone.qps,
            beside.qps,
            alone.p99_us,
            beside.p99_us,
            p99_ratio.map_or("—".into(), |r| format!("{r:.2}×")),
            kib.map_or("—".into(), |k| format!("{k:.1}")),
        );
        if alone.errors > 0.0 || beside.errors > 0.0 {
            let mut note = format!(
                "{}: {} errors alone, {} beside the idle connections (medians)",
                contender.name(),
                alone.errors,
                beside.errors
            );
            if let Some(stderr) = runs.iter().find_map(|e| e.client_stderr.as_deref()) {
                let _ = write!(note, "; client stderr: `{stderr}`");
            }
            notes.push(note);
        }
    }
    let _ = writeln!(
        out,
        "\nEach run starts one server, measures the busy load alone, opens the idle connections \
         (`idle_memory --hold`, pinned with the clients, each connection called once), reads the \
         server's resident memory before and after they open, and measures the busy load again. \
         The p99 ratio is the median of the runs' own ratios. tonic's idle connections are \
         Brisk `h2:grpc` clients."
    );
    for note in notes {
        let _ = writeln!(out, "\n**{note}.**");
    }
    out
}
