//! How much memory an idle connection costs a Brisk client (and, read from outside, the
//! server): `idle_memory --server 127.0.0.1:8000 --conns 1000`.
//!
//! Opens `--conns` connections (one channel per connection group), makes one echo call on
//! each so every buffer has been used, lets them sit idle for `--idle-ms`, and prints the
//! process's resident memory before and after, per connection. Read the server's resident
//! memory (`/proc/PID/status`, VmRSS) before and after the same way to get its side.

use std::process::ExitCode;
use std::time::Duration;

use brisk::{Channel, Status};
use brisk_examples::echo::{EchoRequest, EchoServiceClient};
use brisk_examples::Args;

const USAGE: &str = "usage: idle_memory [--server HOST:PORT] [--conns N] [--idle-ms MS]";

fn main() -> ExitCode {
    brisk_examples::init_logging();
    let args = match Args::parse(&[], &["server", "conns", "idle-ms"]) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("idle_memory: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let parsed = (|| -> Result<(String, usize, u64), String> {
        Ok((
            args.get_or("server", "127.0.0.1:8000"),
            args.parse_or("conns", 1000)?,
            args.parse_or("idle-ms", 2000)?,
        ))
    })();
    let (server, conns, idle_ms) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("idle_memory: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(&server, conns, Duration::from_millis(idle_ms))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idle_memory: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(server: &str, conns: usize, idle: Duration) -> Result<(), Status> {
    // Warm the allocator and the runtime with one connection before measuring.
    let warm = Channel::builder()
        .connection_group("warm-up")
        .connect(server)
        .await?;
    call(&warm).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = resident_kib();
    let mut channels = Vec::with_capacity(conns);
    for i in 0..conns {
        let channel = Channel::builder()
            .timeout(Duration::from_secs(5))
            .connection_group(format!("idle-{i}"))
            .connect(server)
            .await?;
        call(&channel).await?;
        channels.push(channel);
    }
    tokio::time::sleep(idle).await;
    let after = resident_kib();
    println!(
        "conns={conns} client_rss_before_kib={before} client_rss_after_kib={after} client_kib_per_idle_conn={:.1}",
        (after.saturating_sub(before)) as f64 / conns.max(1) as f64
    );
    // Keep them open (and idle) while the server side is read.
    tokio::time::sleep(idle).await;
    drop(channels);
    Ok(())
}

async fn call(channel: &Channel) -> Result<(), Status> {
    EchoServiceClient::new(channel.clone())
        .echo(EchoRequest {
            message: "x".repeat(16),
        })
        .await
        .map(drop)
}

/// This process's resident memory, from /proc (0 where there is none).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
