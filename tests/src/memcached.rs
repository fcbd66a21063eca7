//! A real memcached on loopback, for the memcache client's tests.
//!
//! Needs Debian's `memcached`; [`Memcached::start`] panics with that advice when it is
//! missing, so a machine without it fails loudly instead of skipping the tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long memcached may take to start accepting.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A memcached on a free loopback port (TCP only); killed when dropped.
#[derive(Debug)]
pub struct Memcached {
    child: Child,
    addr: SocketAddr,
}

impl Memcached {
    /// Starts memcached and waits until it accepts connections.
    pub fn start() -> Memcached {
        let mut last_error = String::new();
        // A port picked free may be taken before memcached binds it: try a few times.
        for _ in 0..3 {
            match Memcached::launch() {
                Ok(memcached) => return memcached,
                Err(error) => last_error = error,
            }
        }
        panic!("memcached did not start: {last_error}");
    }

    fn launch() -> Result<Memcached, String> {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?;
        let mut command = Command::new("memcached");
        command
            .args(["-l", "127.0.0.1", "-p", &addr.port().to_string(), "-U", "0"])
            .args(["-m", "64"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // memcached refuses to run as root unless told which user to be.
        if std::env::var("USER").as_deref() == Ok("root") || is_root() {
            command.args(["-u", "root"]);
        }
        let mut child = command.spawn().map_err(|e| {
            format!("cannot run memcached ({e}); install it: apt-get install -y memcached")
        })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("memcached exited: {status}"));
            }
            match server_pid(addr) {
                Ok(pid) if pid == child.id() => return Ok(Memcached { child, addr }),
                Ok(pid) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("another memcached (pid {pid}) has the port"));
                }
                Err(_) => {}
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("memcached does not accept on {addr}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The process id the memcached on `addr` reports (`stats`), so one that took the port first
/// is not mistaken for ours.
fn server_pid(addr: SocketAddr) -> std::io::Result<u32> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(100))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(b"stats\r\n")?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(b"END\r\n") && answer.len() < 64 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines()
        .find_map(|line| line.strip_prefix("STAT pid "))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no pid in {text:?}")))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
