//! Brisk against tonic: the tonic side of the echo benchmark (code generated from the same
//! `echo.proto` as Brisk's examples, plus `compare.proto` for the 1 MiB scenario), and a tiny
//! `--name value` parser shared by the binaries.

use std::collections::HashMap;

/// tonic's code for `examples/proto/echo.proto` (package `example`).
pub mod echo {
    tonic::include_proto!("example");
}

/// tonic's code for `proto/compare.proto` (package `compare`).
pub mod blob {
    tonic::include_proto!("compare");
}

/// `--name value` (or `--name=value`) arguments.
#[derive(Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Parses the process arguments.
    pub fn parse() -> Result<Args, String> {
        let mut parsed = Args::default();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument `{arg}`"))?;
            if let Some((name, value)) = name.split_once('=') {
                parsed.values.insert(name.to_owned(), value.to_owned());
            } else {
                let value = args
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                parsed.values.insert(name.to_owned(), value);
            }
        }
        Ok(parsed)
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `--name`, or `default`.
    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    /// The value of `--name` parsed as `T`, or `default`.
    pub fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse `{v}`")),
            None => Ok(default),
        }
    }
}

/// A multi-threaded tokio runtime with `--threads N` workers (default: one per CPU), built the
/// same way as Brisk's `echo_server` and `bench`.
pub fn runtime(args: &Args) -> Result<tokio::runtime::Runtime, String> {
    let default_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: usize = args.parse_or("threads", default_threads)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
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
