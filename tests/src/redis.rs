//! A real redis-server on loopback, for the redis client's tests, and redis-cli to drive
//! Brisk's redis server.
//!
//! Needs Debian's `redis-server` and `redis-tools`; [`RedisServer::start`] panics with that
//! advice when they are missing, so a machine without them fails loudly instead of skipping
//! the tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    /// Starts redis-server and waits until it answers `PING`.
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
            match ping(self.addr) {
                Ok(()) => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => {
                    self.stop();
                    return Err(format!("redis-server does not answer PING: {e}"));
                }
            }
        }
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

/// Sends `PING` (a password-protected server's `-NOAUTH` counts as an answer).
fn ping(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer)?;
    if n > 0 && (answer[0] == b'+' || answer.starts_with(b"-NOAUTH")) {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "answered {:?}",
            String::from_utf8_lossy(&answer[..n])
        )))
    }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address")
}
