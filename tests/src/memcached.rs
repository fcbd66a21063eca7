//! A real memcached on loopback, for the memcache client's tests.
//!
//! Needs Debian's `memcached`; [`Memcached::start`] panics with that advice when it is
//! missing, so a machine without it fails loudly instead of skipping the tests.

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
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(Memcached { child, addr });
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
