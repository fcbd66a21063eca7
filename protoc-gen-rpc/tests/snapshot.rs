//! Golden tests: the plugin's output, produced by a real `protoc`, must match the checked-in
//! files byte for byte. Those files are also compiled and called: `../tests/plugin_generated/`
//! by `tests/tests/plugin_interop.rs`, `tests/generated/` by `tests/serve.rs`.
//!
//! Run with `BRISK_BLESS=1` to accept a change.

mod common;

use std::path::{Path, PathBuf};

use common::{file_names, generate, manifest_dir, protos};

/// Runs protoc on `files` and compares every produced file with the one in `snapshots`; the
/// set of produced files must be `expected`.
fn check(includes: &[&Path], files: &[&str], snapshots: &Path, expected: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    generate(out.path(), &[], includes, files);
    assert_eq!(file_names(out.path()), expected);
    for name in expected {
        let actual = std::fs::read_to_string(out.path().join(name)).unwrap();
        assert_snapshot(&snapshots.join(name), &actual);
    }
}

/// Panics with the first differing lines and how to update the snapshot.
fn assert_snapshot(path: &Path, actual: &str) {
    let new_path = PathBuf::from(format!("{}.new", path.display()));
    if std::env::var_os("BRISK_BLESS").is_some_and(|value| value == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        let _ = std::fs::remove_file(&new_path);
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected == actual {
        let _ = std::fs::remove_file(&new_path);
        return;
    }
    let expected_lines: Vec<&str> = expected.lines().collect();
    let actual_lines: Vec<&str> = actual.lines().collect();
    let first = expected_lines
        .iter()
        .zip(&actual_lines)
        .position(|(e, a)| e != a)
        .unwrap_or(expected_lines.len().min(actual_lines.len()));
    let window = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(first.saturating_sub(2))
            .take(6)
            .map(|(n, line)| format!("{:>5} | {line}\n", n + 1))
            .collect::<String>()
    };
    std::fs::write(&new_path, actual).unwrap();
    panic!(
        "the plugin's output differs from the snapshot {} at line {} ({} expected lines, {} \
         actual)\n--- expected\n{}+++ actual\n{}\n\
         The full output was written to {}; compare with\n    diff -u {} {}\n\
         If the change is intended, re-run with BRISK_BLESS=1 to update the snapshots:\n    \
         BRISK_BLESS=1 cargo test -p protoc-gen-rpc --test snapshot",
        path.display(),
        first + 1,
        expected_lines.len(),
        actual_lines.len(),
        window(&expected_lines),
        window(&actual_lines),
        new_path.display(),
        path.display(),
        new_path.display(),
    );
}

/// The workspace's `tests/plugin_generated/`.
fn plugin_generated() -> PathBuf {
    manifest_dir().join("../tests/plugin_generated")
}

#[test]
fn brpc_echo_proto() {
    let include = manifest_dir().join("../examples/proto");
    check(
        &[&include],
        &["echo.proto"],
        &plugin_generated(),
        &["example.rs"],
    );
}

#[test]
fn integration_test_proto() {
    let include = manifest_dir().join("../tests/proto");
    check(
        &[&include],
        &["test.proto"],
        &plugin_generated(),
        &["brisk.test.rs"],
    );
}

#[test]
fn plugin_test_protos() {
    check(
        &[&protos()],
        &[
            "proto2/echo.proto",
            "proto3/types.proto",
            "multi/common/money.proto",
            "multi/app/pay.proto",
            "streaming.proto",
        ],
        &manifest_dir().join("tests/generated"),
        &[
            "multi.app.rs",
            "multi.common.rs",
            "p2.echo.rs",
            "p3.types.rs",
            "streaming.rs",
        ],
    );
}
