//! The chaos soak, short: 3 servers for 30 s through a `file://` naming service while one is
//! killed (SIGKILL) and restarted, one stopped gracefully and restarted, and one dropped from
//! the naming file and added back. No call may fail: each had retries left and a live server
//! to go to.
#![cfg(unix)]

use std::process::Command;

#[test]
fn thirty_seconds_of_chaos_lose_no_call() {
    let output = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--servers", "3", "--duration", "30", "--rate", "1000"])
        .args(["--echo-server", env!("CARGO_BIN_EXE_echo_server")])
        .output()
        .expect("run soak");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "soak failed:\n{stdout}\n{stderr}");
    let phases: Vec<&str> = stdout.lines().filter(|l| l.starts_with("phase=")).collect();
    assert_eq!(phases.len(), 5, "{stdout}");
    for phase in &phases {
        assert!(phase.contains(" failed=0 "), "{phase}");
        let calls: u64 = field(phase, "calls");
        // 1,000 calls a second for 6 s a phase: most of them made, whatever the phase.
        assert!(calls > 4_000, "the load held: {phase}");
    }
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("calls=") && last.contains(" failed=0 "),
        "{last}"
    );
    assert!(field(last, "p99_us") > 0, "{last}");
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in `{line}`"))
}
