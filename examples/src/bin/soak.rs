//! A chaos soak: `soak --servers N --duration SECS`.
//!
//! Starts N `echo_server` processes behind a `file://` naming service (or `--naming list`),
//! calls them through one cluster channel at a fixed load, and meanwhile, one phase after
//! another: kills a server with SIGKILL and restarts it, stops one gracefully (SIGTERM) and
//! restarts it, edits the naming file to drop a server and add it back. Prints each phase's
//! calls, failures, retries and p99, then the totals as its last line:
//!
//! ```text
//! calls=119988 failed=0 retried=41 p99_us=1870
//! ```
//!
//! Exits 1 if any call failed: with one server down at a time and retries left, none should.
//! Options: `--callers C` (32), `--rate QPS` (2000, over all callers), `--max-retry N` (3),
//! `--timeout-ms MS` (1000), `--naming file|list` (`list` skips the naming edit),
//! `--echo-server PATH` (default: the `echo_server` beside this program).

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brisk::{Channel, Controller};
use brisk_examples::echo::{EchoRequest, EchoServiceClient};
use hdrhistogram::Histogram;

/// A chaos soak of a cluster channel over `echo_server`s.
#[derive(Debug, clap::Parser)]
struct Options {
    /// Servers in the cluster (at least 2).
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Seconds in all (at least 5), split into the phases.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Calling tasks.
    #[arg(long, default_value_t = 32)]
    callers: usize,
    /// Calls a second, over all callers.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Retries of a call.
    #[arg(long = "max-retry", default_value_t = 3)]
    max_retry: u32,
    /// Deadline of a call in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 1_000)]
    timeout_ms: u64,
    /// The naming service: `file` or `list`.
    #[arg(long, default_value = "file", value_parser = ["file", "list"])]
    naming: String,
    /// The echo_server binary (default: the one beside this program).
    #[arg(long = "echo-server")]
    echo_server: Option<PathBuf>,
}

/// What the driver does to the servers, one phase after another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing: the baseline.
    Steady,
    /// SIGKILL a server mid-load; restart it half-way through the phase.
    Kill,
    /// SIGTERM a server (it stops gracefully); restart it half-way through.
    Graceful,
    /// Drop a server from the naming file; add it back half-way through.
    Rename,
    /// Nothing again: everything has recovered.
    Recovered,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Steady,
        Phase::Kill,
        Phase::Graceful,
        Phase::Rename,
        Phase::Recovered,
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::Steady => "steady",
            Phase::Kill => "kill-9",
            Phase::Graceful => "graceful-stop",
            Phase::Rename => "naming-edit",
            Phase::Recovered => "recovered",
        }
    }
}

/// What the callers saw in one phase.
struct PhaseStats {
    calls: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
    first_failure: Mutex<Option<String>>,
}

impl PhaseStats {
    fn new() -> Self {
        PhaseStats {
            calls: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            latency_us: Mutex::new(Histogram::new_with_max(60_000_000, 3).expect("histogram")),
            first_failure: Mutex::new(None),
        }
    }

    fn line(&self) -> String {
        let p99 = self.latency_us.lock().unwrap().value_at_quantile(0.99);
        format!(
            "calls={} failed={} retried={} p99_us={p99}",
            self.calls.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
        )
    }
}

/// One `echo_server` process on a fixed port.
struct Node {
    addr: SocketAddr,
    program: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) -> Result<(), String> {
        let child = Command::new(&self.program)
            .args(["--listen", &self.addr.to_string(), "--threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        self.child = Some(child);
        // Up once it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!("echo_server on {} did not start", self.addr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Accepting, and ours: a server that failed to bind would have exited.
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => Ok(()),
            _ => Err(format!("echo_server on {} exited at start", self.addr)),
        }
    }

    /// SIGKILL: the process and its connections vanish at once.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM: the server stops gracefully (new requests get ELOGOFF, calls in flight
    /// finish), then exits.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory of the naming file, removed at the end.
struct NamingDir(PathBuf);

impl NamingDir {
    fn new() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("brisk-soak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(NamingDir(dir))
    }
}

impl Drop for NamingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free port on loopback (bound, then released for the server to take).
fn free_addr() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))
}

/// Writes the naming file listing `addrs`, replacing it in one rename so the naming service
/// never reads half a file.
fn write_naming(path: &Path, addrs: &[SocketAddr]) -> Result<(), String> {
    let staging = path.with_extension("new");
    let mut file = std::fs::File::create(&staging).map_err(|e| e.to_string())?;
    for addr in addrs {
        writeln!(file, "{addr}").map_err(|e| e.to_string())?;
    }
    drop(file);
    std::fs::rename(&staging, path).map_err(|e| e.to_string())
}

struct Settings {
    servers: usize,
    duration: Duration,
    callers: usize,
    rate: u64,
    max_retry: u32,
    timeout: Duration,
    file_naming: bool,
    echo_server: PathBuf,
}

fn settings() -> Result<Settings, String> {
    let options: Options = clap::Parser::parse();
    let echo_server = match options.echo_server {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("echo_server"),
    };
    Ok(Settings {
        servers: options.servers.max(2),
        duration: Duration::from_secs(options.duration.max(5)),
        callers: options.callers.max(1),
        rate: options.rate.max(1),
        max_retry: options.max_retry,
        timeout: Duration::from_millis(options.timeout_ms),
        file_naming: options.naming == "file",
        echo_server,
    })
}

fn main() -> std::process::ExitCode {
    let settings = match settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("soak: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(soak(settings)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs the soak; whether no call failed.
async fn soak(settings: Settings) -> Result<bool, String> {
    let mut nodes = Vec::with_capacity(settings.servers);
    for _ in 0..settings.servers {
        let mut node = Node {
            addr: free_addr()?,
            program: settings.echo_server.clone(),
            child: None,
        };
        node.start()?;
        nodes.push(node);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let dir = NamingDir::new()?;
    let naming_file = dir.0.join("servers");
    let url = if settings.file_naming {
        write_naming(&naming_file, &addrs)?;
        format!("file://{}", naming_file.display())
    } else {
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        format!("list://{}", list.join(","))
    };
    let channel = Channel::builder()
        .timeout(settings.timeout)
        .max_retry(settings.max_retry)
        .health_check_interval(Duration::from_millis(200))
        .connect_cluster(&url, "rr")
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let client = EchoServiceClient::new(channel);

    let stats: Arc<Vec<PhaseStats>> =
        Arc::new(Phase::ALL.iter().map(|_| PhaseStats::new()).collect());
    let phase = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let per_caller = Duration::from_secs_f64(settings.callers as f64 / settings.rate as f64);
    let settings_callers = settings.callers;
    let callers: Vec<_> = (0..settings.callers)
        .map(|i| {
            let (client, stats, phase, running) = (
                client.clone(),
                Arc::clone(&stats),
                Arc::clone(&phase),
                Arc::clone(&running),
            );
            tokio::spawn(async move {
                // Spread over the period, so the load is even.
                tokio::time::sleep(per_caller.mul_f64(i as f64) / settings_callers as u32).await;
                let mut ticks = tokio::time::interval(per_caller);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while running.load(Ordering::Relaxed) {
                    ticks.tick().await;
                    let stats = &stats[phase.load(Ordering::Relaxed)];
                    let mut cntl = Controller::new();
                    let started = Instant::now();
                    let result = client
                        .echo_with(
                            &mut cntl,
                            EchoRequest {
                                message: "soak".into(),
                            },
                        )
                        .await;
                    stats.calls.fetch_add(1, Ordering::Relaxed);
                    stats
                        .retried
                        .fetch_add(u64::from(cntl.retried_count()), Ordering::Relaxed);
                    match result {
                        Ok(_) => {
                            let us = started.elapsed().as_micros() as u64;
                            let _ = stats.latency_us.lock().unwrap().record(us.max(1));
                        }
                        Err(status) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            stats
                                .first_failure
                                .lock()
                                .unwrap()
                                .get_or_insert_with(|| status.to_string());
                        }
                    }
                }
            })
        })
        .collect();

    // The driver: each phase lasts a fifth of the run; its disruption is undone half-way.
    let phase_time = settings.duration / Phase::ALL.len() as u32;
    let mut nodes = nodes;
    for (index, current) in Phase::ALL.into_iter().enumerate() {
        phase.store(index, Ordering::Relaxed);
        let victim = index % nodes.len();
        let started = Instant::now();
        match current {
            Phase::Steady | Phase::Recovered => {}
            Phase::Kill => nodes[victim].kill(),
            Phase::Graceful => {
                let node = &mut nodes[victim];
                tokio::task::block_in_place(|| node.stop());
            }
            Phase::Rename if settings.file_naming => {
                let kept: Vec<SocketAddr> = addrs
                    .iter()
                    .copied()
                    .filter(|a| *a != addrs[victim])
                    .collect();
                write_naming(&naming_file, &kept)?;
            }
            Phase::Rename => {}
        }
        tokio::time::sleep((phase_time / 2).saturating_sub(started.elapsed())).await;
        match current {
            Phase::Kill | Phase::Graceful => {
                let node = &mut nodes[victim];
                tokio::task::block_in_place(|| node.start())?;
            }
            Phase::Rename if settings.file_naming => write_naming(&naming_file, &addrs)?,
            _ => {}
        }
        tokio::time::sleep(phase_time.saturating_sub(started.elapsed())).await;
        let stats = &stats[index];
        println!("phase={} {}", current.name(), stats.line());
        if let Some(failure) = stats.first_failure.lock().unwrap().as_deref() {
            eprintln!("phase={}: first failure: {failure}", current.name());
        }
    }
    running.store(false, Ordering::Relaxed);
    for caller in callers {
        let _ = caller.await;
    }

    let total = PhaseStats::new();
    for phase in stats.iter() {
        for (sum, part) in [
            (&total.calls, &phase.calls),
            (&total.failed, &phase.failed),
            (&total.retried, &phase.retried),
        ] {
            sum.fetch_add(part.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let _ = total
            .latency_us
            .lock()
            .unwrap()
            .add(&*phase.latency_us.lock().unwrap());
    }
    println!("{}", total.line());
    Ok(total.failed.load(Ordering::Relaxed) == 0)
}
