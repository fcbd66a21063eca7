//! The loopback floor for many connections: `manyconn_probe.c` from `../shared/bench/` (one
//! epoll thread a side, one 16-byte message in flight per connection), built with `cc` and run
//! pinned as the contenders are.

use std::path::{Path, PathBuf};
use std::process::Command;

use brisk_compare::procs::{free_port, output_field, pinned, spawn_quiet, wait_until_accepting};

use super::Options;

/// Builds the probe into the temporary directory; its path.
pub fn build() -> Result<PathBuf, String> {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/manyconn_probe.c");
    if !source.is_file() {
        return Err(format!("{} not found", source.display()));
    }
    let probe = std::env::temp_dir().join(format!("brisk-compare-mc-{}", std::process::id()));
    let built = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&probe)
        .arg(&source)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "cc {}: {}",
            source.display(),
            String::from_utf8_lossy(&built.stderr).trim()
        ));
    }
    Ok(probe)
}

/// The median of `options.runs` runs over `conns` connections, each printed as it ends.
pub fn median_of_runs(probe: &Path, options: &Options, conns: usize) -> Result<f64, String> {
    let mut runs = Vec::new();
    for run in 0..options.runs {
        eprint!(
            "compare: C floor, {conns} conns × 1 — run {}/{}: ",
            run + 1,
            options.runs
        );
        match measure(probe, options, conns) {
            Ok(rate) => {
                eprintln!("{rate:.0} msgs/s");
                runs.push(rate);
            }
            Err(e) => eprintln!("failed: {e}"),
        }
    }
    super::median_of(runs.into_iter()).ok_or_else(|| "every run failed".to_owned())
}

/// One run: messages a second over `conns` connections.
fn measure(probe: &Path, options: &Options, conns: usize) -> Result<f64, String> {
    let addr = free_port()?;
    let port = addr.port().to_string();
    let mut server = spawn_quiet(pinned(&options.server_cpu, probe).args(["server", &port]))?;
    let measured = (|| {
        wait_until_accepting(&mut server, addr)?;
        let output = pinned(&options.client_cpu, probe)
            .args(["client", &port, &conns.to_string()])
            .arg(options.duration.to_string())
            .output()
            .map_err(|e| format!("probe client: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "probe client {}: {}{}",
                output.status,
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        output_field(&stdout, "msgs/s")
    })();
    let _ = server.kill();
    let _ = server.wait();
    measured
}
