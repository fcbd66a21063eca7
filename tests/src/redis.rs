//! A real redis-server on loopback, for the redis client's tests, and redis-cli to drive
//! Brisk's redis server.
//!
//! Needs Debian's `redis-server` and `redis-tools`; [`RedisServer::start`] panics with that
//! advice when they are missing, so a machine without them fails loudly instead of skipping
//! the tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

/// How long redis-server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-server on a free loopback port, without persistence; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    addr: SocketAddr,
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts redis-server and waits until it answers, as itself (its process id).
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts redis-server with extra arguments (`["--requirepass", "secret"]`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut last_error = String::new();
        // A port picked free may be taken before redis binds it: try a few times.
        for _ in 0..3 {
            let mut server = RedisServer {
                child: None,
                addr: free_port(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                dir: tempfile::Builder::new()
                    .prefix("brisk-redis-")
                    .tempdir()
                    .expect("a temporary directory for redis"),
            };
            match server.launch() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills it: clients see their connections drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing persists).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(error) if Instant::now() >= deadline => {
                    panic!("redis-server did not restart: {error}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let port = self.addr.port().to_string();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().map_err(|e| {
            format!("cannot run redis-server ({e}); install it: apt-get install -y redis-server redis-tools")
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("redis-server exited: {status}"));
            }
            let ours = self.child.as_ref().map(Child::id);
            match server_pid(self.addr, self.password()) {
                Ok(pid) if Some(pid) == ours => return Ok(()),
                Ok(pid) => {
                    self.stop();
                    return Err(format!("another redis-server (pid {pid}) has the port"));
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => {
                    self.stop();
                    return Err(format!("redis-server does not answer INFO: {e}"));
                }
            }
        }
    }

    /// The `--requirepass` it was started with.
    fn password(&self) -> Option<&str> {
        let at = self.extra.iter().position(|a| a == "--requirepass")?;
        self.extra.get(at + 1).map(String::as_str)
    }

    /// Runs `redis-cli` against it (`-p PORT` and `args`).
    pub fn cli(&self, args: &[&str]) -> Output {
        redis_cli(self.addr, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `redis-cli -h 127.0.0.1 -p PORT args...`, for any redis-speaking server.
pub fn redis_cli(addr: SocketAddr, args: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs (apt-get install -y redis-tools)")
}

/// Asks the server on `addr` for its process id (`INFO server`, after `AUTH password` if it
/// has one), so a server that took the port first is not mistaken for ours.
fn server_pid(addr: SocketAddr, password: Option<&str>) -> std::io::Result<u32> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut request = Vec::new();
    if let Some(password) = password {
        request.extend_from_slice(
            format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len()).as_bytes(),
        );
    }
    request.extend_from_slice(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n");
    stream.write_all(&request)?;
    // Read until the process id's line has ended (or the server stops sending).
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !has_pid_line(&answer) && answer.len() < 64 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no process_id in {text:?}")))
}

/// Whether `answer` holds a whole `process_id:` line.
fn has_pid_line(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    text.find("process_id:")
        .is_some_and(|at| text[at..].contains("\r\n"))
}
