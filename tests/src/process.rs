//! What the harnesses of real servers (etcd, ZooKeeper, redis) share: a free loopback port,
//! the end of a log, and the wait for a child server to answer.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A loopback port free at the moment.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// The last 20 lines of the log at `path`.
pub fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Polls `ready` every `every` until it holds (`Ok`), the child in `child` exits (it is taken
/// out), or `timeout` passes (the child is killed and reaped). Errors name `name` and end with
/// the last lines of `log`.
pub fn wait_until_ready(
    name: &str,
    child: &mut Option<Child>,
    log: &Path,
    timeout: Duration,
    every: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            *child = None;
            return Err(format!(
                "{name} exited with {status}; its log ends with:\n{}",
                log_tail(log)
            ));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if let Some(mut running) = child.take() {
                let _ = running.kill();
                let _ = running.wait();
            }
            return Err(format!(
                "{name} did not answer within {timeout:?}; its log ends with:\n{}",
                log_tail(log)
            ));
        }
        std::thread::sleep(every);
    }
}
