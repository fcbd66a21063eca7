//! How much memory an idle connection costs a Brisk client (and, read from outside, the
//! server): `idle_memory --server 127.0.0.1:8000 --conns 1000`.
//!
//! Opens `--conns` connections (one channel per connection group), makes one echo call on
//! each so every buffer has been used, lets them sit idle for `--idle-ms`, and prints the
//! process's resident memory before and after, per connection. Read the server's resident
//! memory (`/proc/PID/status`, VmRSS) before and after the same way to get its side.
//!
//! With `--hold` it prints the same line as soon as the connections are open and called once,
//! then keeps them open, idle, until it is killed: `compare` uses it to measure active calls
//! beside 10,000 idle connections.

use std::process::ExitCode;
use std::time::Duration;

use brisk::{Channel, Status};
use brisk_examples::echo::{EchoRequest, EchoServiceClient};

/// How much memory an idle Brisk client connection costs.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The echo server, `host:port`.
    #[arg(long, default_value = "127.0.0.1:8000")]
    server: String,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// How long they sit idle before and after the line is printed, in milliseconds (not used
    /// with `--hold`).
    #[arg(long = "idle-ms", default_value_t = 2000)]
    idle_ms: u64,
    /// The protocol the connections speak: `baidu_std`, `h2:grpc`, ...
    #[arg(long, default_value = "baidu_std")]
    protocol: String,
    /// Print as soon as the connections are open, then hold them until killed.
    #[arg(long)]
    hold: bool,
}

fn main() -> ExitCode {
    let Options {
        server,
        conns,
        idle_ms,
        protocol,
        hold,
    } = clap::Parser::parse();
    brisk_examples::init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(
        &server,
        &protocol,
        conns,
        Duration::from_millis(idle_ms),
        hold,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idle_memory: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    server: &str,
    protocol: &str,
    conns: usize,
    idle: Duration,
    hold: bool,
) -> Result<(), Status> {
    // Warm the allocator and the runtime with one connection before measuring.
    let warm = Channel::builder()
        .protocol(protocol.to_string())
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
            .protocol(protocol.to_string())
            .connection_group(format!("idle-{i}"))
            .connect(server)
            .await?;
        call(&channel).await?;
        channels.push(channel);
    }
    if !hold {
        tokio::time::sleep(idle).await;
    }
    let after = resident_kib();
    println!(
        "conns={conns} client_rss_before_kib={before} client_rss_after_kib={after} client_kib_per_idle_conn={:.1}",
        (after.saturating_sub(before)) as f64 / conns.max(1) as f64
    );
    if hold {
        // Rust's stdout is line-buffered: the line above is out already.
        std::future::pending::<()>().await;
    }
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
