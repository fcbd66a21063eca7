//! `brisk bench`: load for Brisk's echo service (`example.EchoService.Echo`, brpc's echo
//! example; `echo_server` hosts it), as fast as the server answers.
//!
//! Runs `--concurrency` calls in flight, spread over `--conns` connections, for `--duration`
//! seconds after `--warmup` seconds that are not counted, then prints one line:
//! `qps=… p50_us=… p99_us=… p999_us=… errors=… mean_us=… max_us=… caller_calls_min=…
//! caller_calls_median=…` (latencies from an HDR histogram; the last two are how many calls
//! the least served caller and the median caller completed, which shows whether some
//! callers starve while others are served again and again). `compare` reads these fields.
//!
//! ```text
//! brisk bench 127.0.0.1:8000 --protocol baidu_std --conns 1 --concurrency 64 --size 16
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk::codec::Prost;
use brisk::{Channel, Controller, MethodDescriptor, Protocol, Status};
use bytes::Bytes;
use hdrhistogram::Histogram;

/// `brisk bench`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The echo server, `host:port` (default 127.0.0.1:8000).
    pub address: Option<String>,
    /// The echo server, as an option (how `compare` and `tonic_bench` name it).
    #[arg(long, conflicts_with = "address")]
    pub server: Option<String>,
    /// The wire protocol: baidu_std, h2:grpc, http, hulu_pbrpc, sofa_pbrpc, ...
    #[arg(long, default_value = "baidu_std", value_parser = crate::protocol)]
    pub protocol: Protocol,
    /// Connections (each its own connection group).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,
    /// Calls in flight, spread over the connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Bytes of the echoed message.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Bytes of the request attachment (echoed back).
    #[arg(long, default_value_t = 0)]
    pub attachment_size: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0, value_parser = crate::press::seconds)]
    pub duration: f64,
    /// Seconds of calls before measuring.
    #[arg(long, default_value_t = 2.0, value_parser = crate::press::seconds)]
    pub warmup: f64,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
}

impl Options {
    /// The server to load.
    pub fn target(&self) -> &str {
        self.address
            .as_deref()
            .or(self.server.as_deref())
            .unwrap_or("127.0.0.1:8000")
    }
}

/// `example.EchoRequest` (`examples/proto/echo.proto`).
#[derive(Clone, PartialEq, prost::Message)]
struct EchoRequest {
    #[prost(string, required, tag = "1")]
    message: String,
}

/// `example.EchoResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct EchoResponse {
    #[prost(string, required, tag = "1")]
    message: String,
}

const ECHO: MethodDescriptor = MethodDescriptor::new("example.EchoService", "Echo");

/// One caller's results.
struct Tally {
    /// Each call's latency, merged into one histogram at the end: a histogram per caller
    /// (140 KB each) made recording a cache miss per call with thousands of callers, which
    /// the benchmark then charged to the framework.
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<Status>,
}

/// Runs the benchmark; the summary line goes to stdout, the first error (if any) to stderr.
pub async fn run(options: &Options) -> Result<(), Status> {
    // One connection group per connection: channels in a group share one connection.
    let mut channels = Vec::with_capacity(options.conns as usize);
    for conn in 0..options.conns {
        let channel = Channel::builder()
            .protocol(options.protocol.clone())
            .timeout(Duration::from_secs(5))
            .connection_group(format!("bench-{conn}"))
            .connect(options.target())
            .await?;
        channels.push(channel);
    }
    let message = "x".repeat(options.size);
    let attachment = Bytes::from(vec![b'a'; options.attachment_size]);
    // Fail fast on a server that is not there, before any load.
    let first = EchoRequest {
        message: message.clone(),
    };
    channels[0]
        .unary::<Prost, EchoRequest, EchoResponse>(&ECHO, &mut Controller::new(), &first)
        .await?;

    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(options.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(options.duration);
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..options.concurrency {
        let channel = channels[i as usize % channels.len()].clone();
        let message = message.clone();
        let attachment = attachment.clone();
        let stop = Arc::clone(&stop);
        callers.spawn(async move {
            let mut tally = Tally {
                latencies_us: Vec::new(),
                errors: 0,
                first_error: None,
            };
            let mut cntl = Controller::new();
            // Made once: a call borrows its request (tonic's client takes it by value, so a
            // tonic caller clones it for each call).
            let request = EchoRequest { message };
            while !stop.load(Ordering::Relaxed) {
                cntl.reset();
                cntl.set_request_attachment(attachment.clone());
                let sent = Instant::now();
                let result = channel
                    .unary::<Prost, EchoRequest, EchoResponse>(&ECHO, &mut cntl, &request)
                    .await;
                let done = Instant::now();
                if result.is_err() {
                    // A call refused before any I/O never yields: let the stop timer run.
                    tokio::task::yield_now().await;
                }
                if done < measure_from || done > stop_at {
                    continue;
                }
                match result {
                    Ok(_) => {
                        let us = (done - sent).as_micros().clamp(1, u32::MAX as u128) as u32;
                        tally.latencies_us.push(us);
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(e);
                    }
                }
            }
            tally
        });
    }
    tokio::time::sleep_until(stop_at.into()).await;
    stop.store(true, Ordering::Relaxed);

    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut errors = 0;
    let mut first_error = None;
    // Calls each caller completed in the measured part, fewest first.
    let mut caller_calls = Vec::with_capacity(options.concurrency as usize);
    while let Some(joined) = callers.join_next().await {
        let tally = joined.map_err(|e| Status::internal(format!("caller task failed: {e}")))?;
        caller_calls.push(tally.latencies_us.len());
        for &us in &tally.latencies_us {
            all.saturating_record(u64::from(us));
        }
        errors += tally.errors;
        if first_error.is_none() {
            first_error = tally.first_error;
        }
    }
    if let Some(e) = first_error {
        eprintln!("bench: first error: {e}");
    }
    caller_calls.sort_unstable();
    let qps = all.len() as f64 / options.duration.max(1e-9);
    println!(
        "qps={:.0} p50_us={} p99_us={} p999_us={} errors={} mean_us={:.0} max_us={} \
         caller_calls_min={} caller_calls_median={}",
        qps,
        all.value_at_quantile(0.50),
        all.value_at_quantile(0.99),
        all.value_at_quantile(0.999),
        errors,
        all.mean(),
        all.max(),
        caller_calls.first().copied().unwrap_or(0),
        caller_calls
            .get(caller_calls.len() / 2)
            .copied()
            .unwrap_or(0),
    );
    Ok(())
}
