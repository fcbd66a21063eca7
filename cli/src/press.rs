//! `brisk press`, as brpc's `rpc_press`: load-tests any method of any server with requests
//! given as JSON, with no generated code. A streaming method (over h2:grpc) is one stream a
//! call: the request sent, every response read.
//!
//! The schema comes from a `.proto` file parsed at run time or from the server's reflection
//! service ([`crate::schema`]); the JSON input (an object, an array of objects, or one object
//! per line) becomes protobuf payloads encoded once, sent with [`brisk::codec::Raw`].
//! Responses are decoded with the method's response type to check them. The server may be one
//! address or a naming-service URL (`list://`, `file://`, `dns://`, `etcd://`) with a load
//! balancer.
//!
//! `--concurrency` tasks call the server, paced together to `--qps` calls a second (0: as fast
//! as they can) for `--duration` seconds, cycling through the inputs. Each second a progress
//! line goes to stderr; at the end a [`Report`] gives the totals, latency percentiles and the
//! errors counted by code.
//!
//! ```text
//! brisk press 127.0.0.1:8000 example.EchoService/Echo --proto examples/proto/echo.proto \
//!       --input requests.json --qps 1000 --duration 10 --concurrency 8
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use brisk::{errno, Channel, ConnectionType, Controller, Protocol, Status};
use bytes::Bytes;
use hdrhistogram::Histogram;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tokio::sync::watch;

use crate::schema::{call_descriptor, SchemaArgs};
use crate::Failure;

/// `brisk press`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The server: `host:port`, or a naming-service URL such as `list://h1:p1,h2:p2`
    /// (then `--lb` picks a server for each call).
    pub server: String,
    /// The method: `package.Service/Method` (or `package.Service.Method`).
    pub method: String,
    /// The requests, as JSON: one object, an array of objects, or one object per line; calls
    /// cycle through them. `-` reads stdin.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub input: PathBuf,
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// The wire protocol: baidu_std, h2:grpc, http, hulu_pbrpc, sofa_pbrpc, ...
    #[arg(long, default_value = "baidu_std", value_parser = crate::protocol)]
    pub protocol: Protocol,
    /// The load balancer, when the server is a naming-service URL: rr, wrr, random, la,
    /// c_murmurhash, ...
    #[arg(long, default_value = "rr")]
    pub lb: String,
    /// Seconds to run; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub duration: f64,
    #[command(flatten)]
    pub load: LoadArgs,
    /// How the channel uses connections: single, pooled or short (default: the protocol's).
    #[arg(long)]
    pub connection_type: Option<ConnectionType>,
}

/// How hard `press` and `replay` load the server.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Calls per second over all tasks; 0 is as fast as the server answers.
    #[arg(long, default_value_t = 100)]
    pub qps: u64,
    /// Calling tasks, i.e. calls in flight at most.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Deadline of one call, retries included, in milliseconds; 0 is none.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Retries of a call on a broken connection.
    #[arg(long, default_value_t = 3)]
    pub max_retry: u32,
}

impl LoadArgs {
    /// A channel builder for `protocol` with these retries and deadline.
    pub(crate) fn channel(&self, protocol: Protocol) -> brisk::ChannelBuilder {
        let builder = Channel::builder()
            .protocol(protocol)
            .max_retry(self.max_retry);
        crate::with_timeout(builder, self.timeout_ms)
    }
}

/// A number of seconds, 0 or more.
pub(crate) fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("`{text}` is not a number of seconds, 0 or more")),
    }
}

/// One code's errors: how many, and the first one's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCount {
    /// Calls that failed with this code.
    pub count: u64,
    /// The text of the first of them.
    pub first_message: String,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// `package.Service.Method`.
    pub method: String,
    /// The server, as given.
    pub server: String,
    /// Calls made (answered or failed).
    pub calls: u64,
    /// Calls answered with a response that decodes.
    pub succeeded: u64,
    /// Failed calls by error code.
    pub errors: BTreeMap<i32, ErrorCount>,
    /// How long calls were being sent.
    pub elapsed: Duration,
    /// Latencies of the successful calls, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Report {
    /// Failed calls.
    pub fn failed(&self) -> u64 {
        self.calls - self.succeeded
    }

    /// Calls a second over the run.
    pub fn qps(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    /// The summary: totals, latency percentiles, errors by code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} @ {}", self.method, self.server)?;
        writeln!(
            f,
            "calls={} ok={} errors={} elapsed_s={:.2} qps={:.1}",
            self.calls,
            self.succeeded,
            self.failed(),
            self.elapsed.as_secs_f64(),
            self.qps()
        )?;
        let h = &self.latency_us;
        if h.is_empty() {
            writeln!(f, "latency_us: no successful call")?;
        } else {
            writeln!(
                f,
                "latency_us p50={} p90={} p99={} p999={} max={}",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            )?;
        }
        if !self.errors.is_empty() {
            writeln!(f, "errors by code:")?;
            for (code, error) in &self.errors {
                let name = errno::name(*code).map_or(String::new(), |n| format!(" {n}"));
                writeln!(
                    f,
                    "  E{code}{name}: {} (first: {})",
                    error.count, error.first_message
                )?;
            }
        }
        Ok(())
    }
}

/// Loads the server as `options` say, until `options.duration` is over. Progress goes to
/// stderr each second.
pub async fn run(options: Options) -> Result<Report, Failure> {
    run_until(options, std::future::pending()).await
}

/// [`run`], stopping early when `stop` completes (e.g. on Ctrl-C); with no duration, only
/// `stop` ends the run.
pub async fn run_until(
    options: Options,
    stop: impl Future<Output = ()>,
) -> Result<Report, Failure> {
    let schema = options
        .schema
        .source(&options.server)
        .load(&[&options.method])
        .await?;
    let method = schema.method(&options.method).map_err(Failure::usage)?;
    let streaming = method.is_client_streaming() || method.is_server_streaming();
    if streaming && options.protocol != Protocol::GRPC {
        return Err(Failure::usage(format!(
            "`{}` is a streaming method: press it with --protocol h2:grpc",
            method.full_name()
        )));
    }
    let text = crate::input::read(&options.input).map_err(Failure::usage)?;
    let inputs = crate::input::parse_input(&text, &method.input())
        .map_err(|e| Failure::usage(format!("`{}`: {e}", options.input.display())))?;
    let payloads: Arc<[Bytes]> = inputs
        .iter()
        .map(|message| Bytes::from(message.encode_to_vec()))
        .collect();

    let mut builder = options.load.channel(options.protocol.clone());
    if let Some(connection_type) = options.connection_type {
        builder = builder.connection_type(connection_type);
    }
    let channel = crate::connect(builder, &options.server, &options.lb)
        .await
        .map_err(Failure::unreachable)?;
    let descriptor = call_descriptor(&method);
    let calls = payloads
        .iter()
        .map(|message| Call {
            channel: 0,
            method: descriptor.clone(),
            message: message.clone(),
            attachment: Bytes::new(),
            compress: brisk::CompressType::None,
            streaming,
        })
        .collect();
    let load = Load {
        channels: vec![channel],
        calls,
        output: Some(method.output()),
        qps: options.load.qps,
        duration: (options.duration > 0.0).then(|| Duration::from_secs_f64(options.duration)),
        concurrency: options.load.concurrency,
        limit: None,
        label: method.full_name().to_owned(),
        server: options.server,
    };
    load.run(stop).await
}

/// One call a load makes: which channel, which method, what bytes.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// Index into [`Load::channels`].
    pub(crate) channel: usize,
    pub(crate) method: brisk::MethodDescriptor,
    /// The message, encoded (not compressed: `compress` asks the channel to).
    pub(crate) message: Bytes,
    pub(crate) attachment: Bytes,
    pub(crate) compress: brisk::CompressType,
    /// A streaming method (h2:grpc): the call sends `message` as its one request and ends
    /// when the server has sent every response (each must decode).
    pub(crate) streaming: bool,
}

/// A load: calls cycled through by `concurrency` tasks, paced to `qps` (0: as fast as they are
/// answered), for `duration` or until `limit` calls are made.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) channels: Vec<Channel>,
    pub(crate) calls: Vec<Call>,
    /// The response type, to check answers decode; `None`: any answer is a success.
    pub(crate) output: Option<MessageDescriptor>,
    pub(crate) qps: u64,
    pub(crate) duration: Option<Duration>,
    pub(crate) concurrency: u32,
    pub(crate) limit: Option<u64>,
    /// What the report names: the method, or how many.
    pub(crate) label: String,
    pub(crate) server: String,
}

impl Load {
    /// Runs until the duration or the limit, or `stop`; a progress line a second to stderr.
    pub(crate) async fn run(self, stop: impl Future<Output = ()>) -> Result<Report, Failure> {
        let started = Instant::now();
        let end = self.duration.map(|d| started + d);
        let shared = Arc::new(Shared {
            channels: self.channels,
            calls: self.calls.into(),
            next_input: AtomicU64::new(0),
            limit: self.limit,
            pacer: (self.qps > 0).then(|| Pacer {
                interval: Duration::from_nanos(1_000_000_000 / self.qps),
                next: Mutex::new(started),
            }),
            end,
            output: self.output,
            callers: AtomicUsize::new(self.concurrency as usize),
            callers_done: tokio::sync::Notify::new(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tallies = Vec::with_capacity(self.concurrency as usize);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency {
            let tally = Arc::new(Mutex::new(Tally::default()));
            tallies.push(Arc::clone(&tally));
            tasks.spawn(caller(Arc::clone(&shared), tally, stop_rx.clone()));
        }
        let mut totals = Totals::default();
        let mut second = 0u64;
        let mut ticker = tokio::time::interval_at(
            (started + Duration::from_secs(1)).into(),
            Duration::from_secs(1),
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = async {
            match end {
                Some(end) => tokio::time::sleep_until(end.into()).await,
                None => std::future::pending().await,
            }
        };
        // With a limit, the run also ends when every caller has (the limit reached);
        // without, callers end with the duration, which ends the run itself.
        let limited = self.limit.is_some();
        let all_done = async {
            if limited {
                shared.callers_done.notified().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(ended, stop, all_done);
        loop {
            tokio::select! {
                biased;
                _ = ticker.tick() => {
                    second += 1;
                    let this_second = totals.drain(&tallies);
                    let h = &this_second.latency_us;
                    let (p50, p99) = if h.is_empty() {
                        ("-".to_owned(), "-".to_owned())
                    } else {
                        (h.value_at_quantile(0.5).to_string(), h.value_at_quantile(0.99).to_string())
                    };
                    eprintln!(
                        "[{second}s] qps={} p50_us={p50} p99_us={p99} errors={}",
                        this_second.calls, this_second.errors
                    );
                }
                () = &mut ended => break,
                () = &mut stop => break,
                () = &mut all_done => break,
            }
        }
        let elapsed = started.elapsed();
        let _ = stop_tx.send(true);
        // Calls in flight finish (within their timeout) and count.
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| Failure::call(format!("a calling task failed: {e}")))?;
        }
        totals.drain(&tallies);
        Ok(Report {
            method: self.label,
            server: self.server,
            calls: totals.calls,
            succeeded: totals.succeeded,
            errors: totals.errors,
            elapsed,
            latency_us: totals.latency_us,
        })
    }
}

/// What the calling tasks share.
struct Shared {
    channels: Vec<Channel>,
    calls: Arc<[Call]>,
    next_input: AtomicU64,
    limit: Option<u64>,
    pacer: Option<Pacer>,
    end: Option<Instant>,
    output: Option<MessageDescriptor>,
    /// Callers still running, and the signal that the last one ended.
    callers: AtomicUsize,
    callers_done: tokio::sync::Notify,
}

/// Global pacing: each call takes the next free slot, `interval` after the previous one, so
/// all tasks together send `qps` calls a second. A slot already past is taken as "now": a
/// server slower than the rate gets fewer calls, never a burst to catch up.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn take(&self) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = (*next).max(Instant::now());
        *next = slot + self.interval;
        slot
    }
}

/// One task's numbers since the last drain.
#[derive(Debug)]
struct Tally {
    latency_us: Histogram<u64>,
    /// Failures by code: code, count, first text.
    errors: Vec<(i32, u64, String)>,
    error_count: u64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency_us: new_histogram(),
            errors: Vec::new(),
            error_count: 0,
        }
    }
}

/// Sums of the drained tallies.
#[derive(Debug)]
struct Totals {
    calls: u64,
    succeeded: u64,
    errors: BTreeMap<i32, ErrorCount>,
    latency_us: Histogram<u64>,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            calls: 0,
            succeeded: 0,
            errors: BTreeMap::new(),
            latency_us: new_histogram(),
        }
    }
}

/// One interval's numbers, for a progress line.
struct Interval {
    calls: u64,
    errors: u64,
    latency_us: Histogram<u64>,
}

impl Totals {
    /// Moves the tasks' numbers into the totals and returns them as one interval.
    fn drain(&mut self, tallies: &[Arc<Mutex<Tally>>]) -> Interval {
        let mut interval = Interval {
            calls: 0,
            errors: 0,
            latency_us: new_histogram(),
        };
        for tally in tallies {
            let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
            interval
                .latency_us
                .add(&tally.latency_us)
                .expect("same bounds");
            tally.latency_us.reset();
            interval.errors += tally.error_count;
            tally.error_count = 0;
            for (code, count, message) in tally.errors.drain(..) {
                self.errors
                    .entry(code)
                    .or_insert_with(|| ErrorCount {
                        count: 0,
                        first_message: message,
                    })
                    .count += count;
            }
        }
        let succeeded = interval.latency_us.len();
        interval.calls = succeeded + interval.errors;
        self.calls += interval.calls;
        self.succeeded += succeeded;
        self.latency_us
            .add(&interval.latency_us)
            .expect("same bounds");
        interval
    }
}

/// Whether `response` decodes as `output` (any response does when there is none to check).
fn check(output: Option<&MessageDescriptor>, response: Bytes) -> Result<(), Status> {
    match output {
        Some(output) => DynamicMessage::decode(output.clone(), response)
            .map(drop)
            .map_err(|e| {
                Status::new(
                    errno::ERESPONSE,
                    format!("Fail to parse response as {}: {e}", output.full_name()),
                )
            }),
        None => Ok(()),
    }
}

/// A streaming call: `call.message` as the one request, every response read and checked.
async fn stream_once(
    channel: &Channel,
    call: &Call,
    cntl: &mut Controller,
    output: Option<&MessageDescriptor>,
) -> Result<(), Status> {
    let requests = futures_util::stream::iter([call.message.clone()]);
    let mut responses = channel
        .streaming::<brisk::codec::Raw, Bytes, Bytes, _>(&call.method, cntl, requests)
        .await?;
    while let Some(response) = responses.message().await? {
        check(output, response)?;
    }
    Ok(())
}

/// One calling task: takes a slot, sends the next call, checks and counts the answer.
async fn caller(shared: Arc<Shared>, tally: Arc<Mutex<Tally>>, stop: watch::Receiver<bool>) {
    call_until_done(&shared, &tally, stop).await;
    if shared.callers.fetch_sub(1, Ordering::AcqRel) == 1 {
        shared.callers_done.notify_one();
    }
}

async fn call_until_done(shared: &Shared, tally: &Mutex<Tally>, mut stop: watch::Receiver<bool>) {
    let mut cntl = Controller::new();
    loop {
        if *stop.borrow() {
            break;
        }
        if let Some(pacer) = &shared.pacer {
            let slot = pacer.take();
            if shared.end.is_some_and(|end| slot >= end) {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(slot.into()) => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        } else if shared.end.is_some_and(|end| Instant::now() >= end) {
            break;
        }
        let index = shared.next_input.fetch_add(1, Ordering::Relaxed);
        if shared.limit.is_some_and(|limit| index >= limit) {
            break;
        }
        let call = &shared.calls[(index % shared.calls.len() as u64) as usize];
        cntl.reset();
        cntl.set_request_attachment(call.attachment.clone());
        cntl.set_request_compress_type(call.compress);
        let sent = Instant::now();
        let channel = &shared.channels[call.channel];
        let result = if call.streaming {
            stream_once(channel, call, &mut cntl, shared.output.as_ref()).await
        } else {
            channel
                .unary::<brisk::codec::Raw, Bytes, Bytes>(&call.method, &mut cntl, &call.message)
                .await
                .and_then(|response| check(shared.output.as_ref(), response))
        };
        let latency = sent.elapsed();
        if result.is_err() {
            // A call refused before any I/O never yields: let the stop signal run.
            tokio::task::yield_now().await;
        }
        let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => {
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                tally.latency_us.saturating_record(us.max(1));
            }
            Err(status) => {
                tally.error_count += 1;
                match tally
                    .errors
                    .iter_mut()
                    .find(|(c, _, _)| *c == status.code())
                {
                    Some((_, count, _)) => *count += 1,
                    None => tally
                        .errors
                        .push((status.code(), 1, status.message().to_owned())),
                }
            }
        }
    }
}
