//! A real etcd server on loopback, for the `etcd://` naming service's tests.
//!
//! Needs the `etcd` binary (Debian: `apt-get install -y etcd-server`); [`Etcd::start`] panics
//! with that advice when it is missing, so a machine without etcd fails loudly instead of
//! skipping the tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, wait_until_ready};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// How long etcd may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Hang guard for one request to etcd.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A single-member etcd cluster on free loopback ports with a fresh data directory; killed,
/// and its directory removed, when dropped.
#[derive(Debug)]
pub struct Etcd {
    child: Option<Child>,
    binary: PathBuf,
    dir: tempfile::TempDir,
    client: SocketAddr,
    peer: SocketAddr,
}

impl Etcd {
    /// Starts etcd and waits (10 s at most) until it answers; panics if it is not installed
    /// or does not come up (showing the end of its log).
    pub fn start() -> Etcd {
        let binary = find_etcd();
        let mut last_error = String::new();
        // A port picked free may be taken before etcd binds it: try a few times.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("brisk-etcd-")
                .tempdir()
                .expect("a temporary directory for etcd");
            let mut etcd = Etcd {
                child: None,
                binary: binary.clone(),
                dir,
                client: free_port(),
                peer: free_port(),
            };
            match etcd.launch() {
                Ok(()) => return etcd,
                Err(error) => last_error = error,
            }
        }
        panic!("etcd did not start: {last_error}");
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn client_url(&self) -> String {
        format!("http://{}", self.client)
    }

    /// The client endpoint, `127.0.0.1:PORT` (what follows `etcd://`, before the prefix).
    pub fn endpoint(&self) -> SocketAddr {
        self.client
    }

    /// Sets `key` to `value`; panics if etcd does not accept it.
    pub fn put(&self, key: &str, value: &str) {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            BASE64.encode(key),
            BASE64.encode(value)
        );
        self.post("/v3/kv/put", &body)
            .unwrap_or_else(|e| panic!("etcd put {key}={value}: {e}"));
    }

    /// Deletes `key`; panics if etcd does not accept it.
    pub fn delete(&self, key: &str) {
        let body = format!(r#"{{"key":"{}"}}"#, BASE64.encode(key));
        self.post("/v3/kv/deleterange", &body)
            .unwrap_or_else(|e| panic!("etcd delete {key}: {e}"));
    }

    /// `key`'s value and the lease it lives on (0: none), or `None` when there is no such key.
    pub fn get(&self, key: &str) -> Option<(String, i64)> {
        let body = format!(r#"{{"key":"{}"}}"#, BASE64.encode(key));
        let answer = self
            .post("/v3/kv/range", &body)
            .unwrap_or_else(|e| panic!("etcd get {key}: {e}"));
        let answer: serde_json::Value =
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("etcd get {key}: {e}"));
        let kv = answer.get("kvs")?.get(0)?;
        let value = BASE64
            .decode(kv.get("value")?.as_str()?)
            .expect("a base64 value");
        let lease = kv
            .get("lease")
            .and_then(|lease| lease.as_str())
            .map_or(0, |lease| lease.parse().expect("a lease id"));
        Some((String::from_utf8(value).expect("a UTF-8 value"), lease))
    }

    /// Revokes lease `id` (which deletes its keys); panics if etcd does not accept it.
    pub fn revoke(&self, id: i64) {
        self.post("/v3/lease/revoke", &format!(r#"{{"ID":"{id}"}}"#))
            .unwrap_or_else(|e| panic!("etcd revoke {id}: {e}"));
    }

    /// Kills etcd (keeping its data): clients see their connections drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again after [`stop`](Etcd::stop), on the same ports with the same data;
    /// panics if it does not come up.
    pub fn restart(&mut self) {
        self.stop();
        // The old process's listening sockets are closed once it is reaped; retry briefly in
        // case a port is still being released.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(error) if Instant::now() >= deadline => {
                    panic!("etcd did not restart: {error}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Runs etcd and waits until it answers; on failure, kills it and explains.
    fn launch(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("etcd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("etcd's log file");
        let client = format!("http://{}", self.client);
        let peer = format!("http://{}", self.peer);
        let child = Command::new(&self.binary)
            .arg("--name")
            .arg("default")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("default={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd's log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        // Out of `self` while waiting, so the probe may borrow `self`.
        let mut running = Some(child);
        let result = wait_until_ready(
            "etcd",
            &mut running,
            &log_path,
            START_TIMEOUT,
            Duration::from_millis(50),
            || matches!(self.request("GET", "/health", ""), Ok(body) if body.contains("true")),
        );
        self.child = running;
        result
    }

    fn post(&self, path: &str, body: &str) -> Result<String, String> {
        self.request("POST", path, body)
    }

    /// One HTTP/1.1 request on a fresh connection; the body of a 200 response.
    fn request(&self, method: &str, path: &str, body: &str) -> Result<String, String> {
        let mut stream = TcpStream::connect_timeout(&self.client, REQUEST_TIMEOUT)
            .map_err(|e| format!("connect to {}: {e}", self.client))?;
        stream
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(REQUEST_TIMEOUT)))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.client,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("send {path}: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|e| format!("read {path}: {e}"))?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("{path}: {response}"));
        }
        Ok(body.to_owned())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        // `dir` removes the data directory when dropped, after the process is gone.
    }
}

/// The etcd binary: `/usr/bin/etcd`, else `etcd` on PATH; panics with install advice.
fn find_etcd() -> PathBuf {
    let usr_bin = Path::new("/usr/bin/etcd");
    if usr_bin.is_file() {
        return usr_bin.to_owned();
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("etcd");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "etcd is not installed: the etcd naming tests need a real etcd server (3.4 or later) \
         as /usr/bin/etcd or `etcd` on PATH. On Debian: \
         `apt-get update && apt-get install -y etcd-server`"
    );
}
