//! The hostile-input attacks that run in seconds, against a real `echo_server`: the server
//! survives each, answers a probe client throughout, and every attacker is refused or cut
//! off as the README's table says.
#![cfg(target_os = "linux")]

use std::process::Command;

#[test]
fn the_server_survives_hostile_input_and_keeps_serving() {
    let attacks = "random-bytes,h2-rapid-reset,h2-continuation-flood,grpc-4gib-prefix,\
                   huge-headers,nested-json";
    let output = Command::new(env!("CARGO_BIN_EXE_hostile"))
        .args(["--echo-server", env!("CARGO_BIN_EXE_echo_server")])
        .args(["--only", attacks])
        .output()
        .expect("run hostile");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = |name: &str| {
        table
            .lines()
            .find(|line| line.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no {name} row:\n{table}"))
            .to_owned()
    };
    assert!(
        row("random-bytes").contains("1000 of 1,000 closed"),
        "{table}"
    );
    assert!(
        row("h2-rapid-reset").contains("GOAWAY ENHANCE_YOUR_CALM, closed"),
        "{table}"
    );
    assert!(row("h2-continuation-flood").contains("GOAWAY"), "{table}");
    assert!(
        row("grpc-4gib-prefix")
            .contains("grpc-status 8 `message of 4294967295 bytes exceeds max_body_size"),
        "{table}"
    );
    assert!(row("huge-headers").contains("431"), "{table}");
    assert!(row("nested-json").contains("400"), "{table}");
    for line in table.lines().skip(2) {
        assert!(
            line.contains(", 0 failed"),
            "the probe was answered throughout: {line}"
        );
    }
}
