//! A real ZooKeeper server on loopback (Debian's `zookeeper` package, run in the foreground
//! with a configuration of its own), for the `zk://` naming and registration tests, and its
//! own command-line client, `zkCli.sh`, as an independent peer.
//!
//! [`ZooKeeper::start`] panics with the install advice when ZooKeeper is missing, so a machine
//! without it fails loudly instead of skipping the tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{free_port, wait_until_ready};

/// Where Debian's `zookeeper` package puts its scripts.
const BIN: &str = "/usr/share/zookeeper/bin";

/// How long ZooKeeper (a JVM) may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A standalone ZooKeeper on a free loopback port with a fresh data directory and a 500 ms
/// tick (sessions of 1 to 10 s); killed, and its directory removed, when dropped.
#[derive(Debug)]
pub struct ZooKeeper {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client: SocketAddr,
}

impl ZooKeeper {
    /// Starts ZooKeeper and waits until it answers `ruok`; panics if it is not installed or
    /// does not come up (showing the end of its log).
    pub fn start() -> ZooKeeper {
        let script = Path::new(BIN).join("zkServer.sh");
        assert!(
            script.exists(),
            "ZooKeeper is not installed ({} is missing): apt-get install -y zookeeper",
            script.display()
        );
        let mut last_error = String::new();
        // A port picked free may be taken before ZooKeeper binds it: try a few times.
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("brisk-zookeeper-")
                .tempdir()
                .expect("a temporary directory for ZooKeeper");
            let mut zk = ZooKeeper {
                child: None,
                dir,
                client: free_port(),
            };
            match zk.launch(&script) {
                Ok(()) => return zk,
                Err(error) => last_error = error,
            }
        }
        panic!("ZooKeeper did not start: {last_error}");
    }

    /// The client endpoint, `127.0.0.1:PORT` (what follows `zk://`, before the path).
    pub fn endpoint(&self) -> SocketAddr {
        self.client
    }

    /// Runs `zkCli.sh` (ZooKeeper's own client) with `args` against this server; its output,
    /// or a panic with it when it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let (ok, text) = self.try_cli(args);
        assert!(ok, "zkCli.sh {args:?}: {text}");
        text
    }

    /// [`ZooKeeper::cli`] that does not panic: whether it succeeded, and its output.
    pub fn try_cli(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(Path::new(BIN).join("zkCli.sh"))
            .arg("-server")
            .arg(self.client.to_string())
            .args(args)
            .env("ZOO_LOG_DIR", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run zkCli.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    fn launch(&mut self, script: &Path) -> Result<(), String> {
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let config = self.dir.path().join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
                 4lw.commands.whitelist=ruok\nmaxSessionTimeout=10000\n",
                data.display(),
                self.client.port()
            ),
        )
        .map_err(|e| e.to_string())?;
        let log_path = self.dir.path().join("zookeeper.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let child = Command::new(script)
            .arg("start-foreground")
            .arg(&config)
            .env("ZOOCFGDIR", self.dir.path())
            .env("ZOO_LOG_DIR", self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        // Out of `self` while waiting, so the probe may borrow `self`.
        let mut running = Some(child);
        let result = wait_until_ready(
            "ZooKeeper",
            &mut running,
            &log_path,
            START_TIMEOUT,
            Duration::from_millis(100),
            || self.ruok() && self.accepts_sessions(),
        );
        self.child = running;
        result
    }

    /// Whether the server answers the `ruok` four-letter word with `imok`.
    fn ruok(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.client, Duration::from_secs(1))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = String::new();
        stream.write_all(b"ruok").is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer == "imok"
    }

    /// Whether the server grants a session: `ruok` answers as soon as the process runs, while
    /// sessions are refused (the connection closed) until its database is loaded.
    fn accepts_sessions(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.client, Duration::from_secs(1))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        // A ConnectRequest (protocol 0, zxid 0, 1 s, no session, empty password, not
        // read-only), with its length first.
        let mut request = Vec::new();
        request.extend_from_slice(&45i32.to_be_bytes());
        request.extend_from_slice(&0i32.to_be_bytes());
        request.extend_from_slice(&0i64.to_be_bytes());
        request.extend_from_slice(&1000i32.to_be_bytes());
        request.extend_from_slice(&0i64.to_be_bytes());
        request.extend_from_slice(&16i32.to_be_bytes());
        request.extend_from_slice(&[0; 17]);
        let mut length = [0u8; 4];
        stream.write_all(&request).is_ok()
            && stream.read_exact(&mut length).is_ok()
            && i32::from_be_bytes(length) > 0
    }

    /// Kills ZooKeeper.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}
