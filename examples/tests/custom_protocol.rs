//! Runs the `custom_protocol` example end to end: it registers `tiny`, serves the echo service
//! over it beside baidu_std on one port, and checks its own calls.

use std::process::Command;

#[test]
fn the_custom_protocol_example_runs() {
    let output = Command::new(env!("CARGO_BIN_EXE_custom_protocol"))
        .output()
        .expect("run custom_protocol");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "tiny     : \"hello over tiny\"",
        "tiny     : 100 concurrent calls, each answered with its own message",
        "tiny     : unknown method -> [E1002]Fail to find method=example.EchoService/NoSuchMethod",
        "baidu_std: \"hello over baidu_std\"",
        "stopped",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}
