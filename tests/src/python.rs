//! Python peers (grpcio) for the interop tests: `tests/python/`'s scripts run as child
//! processes that are killed when their guards drop, and the grpcio stubs they import,
//! generated once (content-addressed by `tests/proto/interop.proto`, under the system's temp
//! directory, so concurrent and later runs share them).

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest a Python process may take (start-up included) before the test gives up on it.
pub const PROCESS_GUARD: Duration = Duration::from_secs(180);
/// What installs grpcio.
pub const PIP_HINT: &str = "pip install -q -r tests/python/requirements.txt";

// ---------------------------------------------------------------------------------------------
// Python processes

/// `tests/python/`.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// `tests/proto/interop.proto`.
pub fn proto_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/interop.proto")
}

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished process left: exit status and its output.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Finished {
    /// Status and output, for a failed assertion.
    pub fn report(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `command` to completion with its output in anonymous files, killing it after `limit`.
pub fn run_with_limit(command: &mut Command, limit: Duration) -> Result<Finished, String> {
    let mut stdout = tempfile::tempfile().map_err(|e| format!("temp file: {e}"))?;
    let mut stderr = tempfile::tempfile().map_err(|e| format!("temp file: {e}"))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(clone_file(&stdout)?)
        .stderr(clone_file(&stderr)?)
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let mut guard = ChildGuard(child);
    let started = Instant::now();
    let status = loop {
        match guard.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                return Err(format!("{command:?} still running after {limit:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {command:?}: {e}")),
        }
    };
    Ok(Finished {
        status,
        stdout: read_all(&mut stdout)?,
        stderr: read_all(&mut stderr)?,
    })
}

pub fn clone_file(file: &File) -> Result<File, String> {
    file.try_clone().map_err(|e| format!("dup: {e}"))
}

pub fn read_all(file: &mut File) -> Result<String, String> {
    let mut text = String::new();
    file.rewind().map_err(|e| format!("rewind: {e}"))?;
    file.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    Ok(text)
}

/// A `python3` command running `script` from `tests/python/`.
pub fn python(script: &str) -> Command {
    let mut command = Command::new("python3");
    command
        .arg(python_dir().join(script))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// The stubs directory, made once per test process; panics with the pip command to run when
/// grpcio is missing.
pub fn stubs() -> &'static Path {
    static STUBS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match STUBS.get_or_init(prepare_python) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// Checks that grpcio is importable and generates the stubs (content-addressed by the proto, so
/// concurrent and later runs share them safely).
pub fn prepare_python() -> Result<PathBuf, String> {
    let check = run_with_limit(
        Command::new("python3").args(["-c", "import grpc, grpc_tools"]),
        PROCESS_GUARD,
    )
    .map_err(|e| {
        format!("python3 is needed for the gRPC interop tests ({e}); then run: {PIP_HINT}")
    })?;
    if !check.status.success() {
        return Err(format!(
            "grpcio is not importable by python3; run: {PIP_HINT}\n{}",
            check.report()
        ));
    }
    let proto = std::fs::read(proto_file()).map_err(|e| format!("interop.proto: {e}"))?;
    let mut hasher = DefaultHasher::new();
    proto.hash(&mut hasher);
    let base = std::env::temp_dir().join("brisk-grpc-interop");
    let dir = base.join(format!("stubs-{:016x}", hasher.finish()));
    if dir.join("interop_pb2_grpc.py").exists() {
        return Ok(dir);
    }
    // Generated aside, then renamed into place whole.
    let scratch = base.join(format!("gen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let generated = run_with_limit(python("interop_common.py").arg(&scratch), PROCESS_GUARD)?;
    if !generated.status.success() {
        return Err(format!(
            "generating the Python stubs failed: {}",
            generated.report()
        ));
    }
    if std::fs::rename(&scratch, &dir).is_err() {
        // Another run won the race; its stubs are the same.
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if dir.join("interop_pb2_grpc.py").exists() {
        Ok(dir)
    } else {
        Err(format!("no stubs in {}", dir.display()))
    }
}

/// `interop_server.py` on a free loopback port; killed on drop.
#[derive(Debug)]
pub struct PyServer {
    _child: ChildGuard,
    port: u16,
}

impl PyServer {
    /// Starts the server and waits (up to [`PROCESS_GUARD`]) for the port it prints.
    pub fn start() -> PyServer {
        let stubs = stubs().to_str().expect("a UTF-8 path");
        PyServer::start_script("interop_server.py", &["--port", "0", "--stubs", stubs])
    }

    /// Starts `script` with `args`, a server that prints its port on its first line and serves
    /// until its stdin closes.
    pub fn start_script(script: &str, args: &[&str]) -> PyServer {
        let mut child = python(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 {script} does not start: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let guard = ChildGuard(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        let line = match rx.recv_timeout(PROCESS_GUARD) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading {script}'s port: {e}"),
            Err(_) => panic!("{script} printed no port within {PROCESS_GUARD:?}"),
        };
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("{script} printed {line:?} instead of its port (see its stderr)")
        });
        PyServer {
            _child: guard,
            port,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
