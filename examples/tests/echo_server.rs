//! The `echo_server` example serves until SIGTERM, then stops gracefully and exits 0 (Unix:
//! the test sends the signal with the shell's `kill`).
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use brisk_examples::echo::{EchoRequest, EchoServiceClient};

/// Kills the server if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of `echo_server`'s log (stderr) as they come.
fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a log line containing `needle`.
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!("no `{needle}` in the log:\n{}", seen.join("\n")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_server_serves_until_sigterm_and_stops_gracefully() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo_server"))
        .args(["--listen", "127.0.0.1:0", "--threads", "1"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run echo_server");
    let lines = log_lines(&mut child);
    let server = Running(child);
    let mut seen = Vec::new();
    let started = wait_for(&lines, "server started", &mut seen);
    let address = started
        .split("local_addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in `{started}`"))
        .to_owned();

    let client = EchoServiceClient::new(brisk::Channel::connect(&address).await.unwrap());
    let reply = client
        .echo(EchoRequest {
            message: "before SIGTERM".into(),
        })
        .await
        .expect("the server serves");
    assert_eq!(reply.message, "before SIGTERM");

    let pid = server.0.id().to_string();
    // The shell's own `kill` (a builtin), so no procps is needed.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for(&lines, "SIGTERM received", &mut seen);
    wait_for(&lines, "stopped", &mut seen);
    let mut server = server;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.0.wait();
        (status, server)
    })
    .await
    .unwrap()
    .0
    .expect("echo_server exits");
    assert!(status.success(), "{status:?}\n{}", seen.join("\n"));
}
