//! Brisk against tonic: the tonic side of the echo benchmark (code generated from the same
//! `echo.proto` as Brisk's examples, plus `compare.proto` for the 1 MiB scenario), and what the
//! binaries share: `--threads`, and the processes of a comparison.

/// tonic's code for `examples/proto/echo.proto` (package `example`).
pub mod echo {
    tonic::include_proto!("example");
}

/// tonic's code for `proto/compare.proto` (package `compare`).
pub mod blob {
    tonic::include_proto!("compare");
}

/// `--threads N`, the size of a binary's tokio runtime (flattened into each binary's options).
#[derive(Debug, clap::Args)]
pub struct Threads {
    /// Worker threads of the tokio runtime (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

impl Threads {
    /// A multi-threaded tokio runtime with `--threads N` workers (default: one per CPU), built
    /// the same way as Brisk's `echo_server` and `bench`.
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime, String> {
        let threads = self.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        );
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))
    }
}

/// A count of at least one (`--conns`, `--runs`, ...).
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("`{text}` is not a count of at least 1")),
        Ok(count) => Ok(count),
    }
}

/// A non-negative, finite number of seconds (`--duration 2.5`).
pub fn seconds(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|seconds| std::time::Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("`{text}` is not a number of seconds"))
}

/// A number of seconds above zero, as a float (`--duration 2.5`).
pub fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value > 0.0 && value.is_finite() => Ok(value),
        _ => Err(format!("`{text}` is not a number of seconds above 0")),
    }
}

/// A number of seconds, zero or more, as a float (`--warmup 0`).
pub fn non_negative_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value >= 0.0 && value.is_finite() => Ok(value),
        _ => Err(format!("`{text}` is not a number of seconds")),
    }
}

/// The processes of a comparison: free ports, waiting for a server, and CPU time from `/proc`.
pub mod procs {
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    /// A loopback port nobody listens on (the server binds it right after).
    pub fn free_port() -> Result<SocketAddr, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
        listener.local_addr().map_err(|e| format!("free port: {e}"))
    }

    /// Waits until `server` accepts on `addr` (10 s at most), or fails if it exits first.
    pub fn wait_until_accepting(server: &mut Child, addr: SocketAddr) -> Result<(), String> {
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
    pub fn process_cpu_ticks(pid: u32) -> Result<u64, String> {
        let fields = stat_fields(&pid.to_string())?;
        Ok(fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0))
    }

    /// cutime + cstime (fields 16 and 17) of this process: the CPU of the children it waited for.
    pub fn children_cpu_ticks() -> Result<u64, String> {
        let fields = stat_fields("self")?;
        Ok(fields.get(13).copied().unwrap_or(0) + fields.get(14).copied().unwrap_or(0))
    }

    /// The kernel's clock ticks per second (what `/proc` counts CPU time in).
    pub fn clock_ticks_per_second() -> f64 {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    }

    /// `program` pinned to `cpu` with `taskset` (which execs it: the child's pid is the
    /// program's own).
    pub fn pinned(cpu: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("taskset");
        command.arg("-c").arg(cpu).arg(program);
        command
    }

    /// Starts a server with its output discarded.
    pub fn spawn_quiet(command: &mut Command) -> Result<Child, String> {
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("start the server: {e}"))
    }

    /// The number after `name=` in a client's one-line output.
    pub fn output_field(stdout: &str, name: &str) -> Result<f64, String> {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no `{name}=` in the client's output `{}`", stdout.trim()))
    }
}
