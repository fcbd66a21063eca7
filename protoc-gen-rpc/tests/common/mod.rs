//! Running the real `protoc` with the plugin built by Cargo.

#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The plugin binary Cargo built for these tests.
pub const PLUGIN: &str = env!("CARGO_BIN_EXE_protoc-gen-rpc");

/// `protoc-gen-rpc/`.
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `protoc-gen-rpc/tests/protos/`.
pub fn protos() -> PathBuf {
    manifest_dir().join("tests/protos")
}

/// The `protoc` to run: `$PROTOC` or `protoc` on the `PATH`. Panics (the tests must not pass
/// silently without it) when there is none.
pub fn protoc() -> PathBuf {
    let protoc = std::env::var_os("PROTOC").map_or_else(|| PathBuf::from("protoc"), PathBuf::from);
    match Command::new(&protoc).arg("--version").output() {
        Ok(output) if output.status.success() => protoc,
        Ok(output) => panic!(
            "`{} --version` failed ({}): {}",
            protoc.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => panic!(
            "these tests run the real protoc, and `{}` cannot be run ({error}). Install it \
             (Debian/Ubuntu: `apt-get install protobuf-compiler`; macOS: `brew install \
             protobuf`) or point the PROTOC environment variable at a protoc binary.",
            protoc.display()
        ),
    }
}

/// Runs `protoc --plugin=protoc-gen-rpc=PLUGIN --rpc_out=out [--rpc_opt=opt]... -I include...
/// files...`.
pub fn run_protoc(out: &Path, opts: &[&str], includes: &[&Path], files: &[&str]) -> Output {
    let mut command = Command::new(protoc());
    command
        .arg(format!("--plugin=protoc-gen-rpc={PLUGIN}"))
        .arg(format!("--rpc_out={}", out.display()));
    for opt in opts {
        command.arg(format!("--rpc_opt={opt}"));
    }
    for include in includes {
        command.arg(format!("-I{}", include.display()));
    }
    command.args(files);
    command.output().expect("protoc runs")
}

/// Like [`run_protoc`], panicking with protoc's stderr unless it succeeds.
pub fn generate(out: &Path, opts: &[&str], includes: &[&Path], files: &[&str]) {
    let output = run_protoc(out, opts, includes, files);
    assert!(
        output.status.success(),
        "protoc failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The names of the files in `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Reads one generated file.
pub fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|error| panic!("cannot read {name}: {error}"))
}
