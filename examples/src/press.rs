//! `press`, like brpc's `rpc_press`: load-tests any unary method of any server from a `.proto`
//! file and JSON input, with no generated code.
//!
//! The `.proto` file is parsed at run time (pure Rust, no `protoc`), the method's request type
//! is looked up by reflection, and the JSON input (an object, an array of objects, or one object
//! per line) becomes protobuf payloads encoded once, sent with [`brisk::codec::Raw`]. Responses
//! are decoded with the method's response type to check them.
//!
//! `--concurrency` tasks call the server, paced together to `--qps` calls a second (0: as fast
//! as they can) for `--duration` seconds, cycling through the inputs. Each second a progress
//! line goes to stderr; at the end a [`Report`] gives the totals, latency percentiles and the
//! errors counted by code.
//!
//! ```text
//! press --proto examples/proto/echo.proto --method example.EchoService.Echo \
//!       --server 127.0.0.1:8000 --input requests.json --qps 1000 --duration 10 --concurrency 8
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use brisk::{errno, Channel, ConnectionType, Controller, Protocol, Status};
use bytes::Bytes;
use hdrhistogram::Histogram;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor, ReflectMessage as _,
};
use protobuf::Message as _;
use serde_json::Value;
use tokio::sync::watch;

/// The command line, for `--help` and argument errors.
pub const USAGE: &str = "\
usage: press --proto FILE [--include DIR]... --method PACKAGE.SERVICE.METHOD --server HOST:PORT
             --input FILE [--protocol baidu_std] [--qps N] [--duration SECONDS]
             [--concurrency C] [--timeout-ms MS] [--max-retry N]
             [--connection-type single|pooled|short]

  --proto            the .proto file that defines the service
  --include          import directory, repeatable (default: the directory of --proto)
  --method           full method name, e.g. example.EchoService.Echo
  --server           the server to load, host:port
  --input            requests as JSON: one object, an array of objects, or one object per line;
                     calls cycle through them
  --protocol         wire protocol (default baidu_std)
  --qps              calls per second over all tasks, 0 = as fast as possible (default 100)
  --duration         seconds to run, 0 = until Ctrl-C (default 10)
  --concurrency      calling tasks, i.e. calls in flight at most (default 8)
  --timeout-ms       deadline of one call, retries included, 0 = none (default 1000)
  --max-retry        retries of a call on a broken connection (default 3)
  --connection-type  single, pooled or short (default: the protocol's, single or pooled)";

/// What to load, and how hard.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `.proto` file defining the service.
    pub proto: PathBuf,
    /// Import directories; empty means the directory of `proto`.
    pub includes: Vec<PathBuf>,
    /// `package.Service.Method`.
    pub method: String,
    /// `host:port`.
    pub server: String,
    /// The JSON input file.
    pub input: PathBuf,
    /// The wire protocol.
    pub protocol: Protocol,
    /// Calls per second over all tasks; 0 is as fast as possible.
    pub qps: u64,
    /// How long to send calls; `None` runs until the stop signal ([`run_until`]).
    pub duration: Option<Duration>,
    /// Number of calling tasks.
    pub concurrency: usize,
    /// Deadline of a call, retries included; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Retries on broken connections.
    pub max_retry: u32,
    /// How the channel uses connections (`None`: the protocol's default).
    pub connection_type: Option<ConnectionType>,
}

/// Parses `press`'s arguments (without the program name). Errors name the bad argument; print
/// them with [`USAGE`].
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    const OPTIONS: &[&str] = &[
        "proto",
        "include",
        "method",
        "server",
        "input",
        "protocol",
        "qps",
        "duration",
        "concurrency",
        "timeout-ms",
        "max-retry",
        "connection-type",
    ];
    let args = crate::Args::parse_from(args, &[], OPTIONS)?;
    let includes = args.get_all("include").map(PathBuf::from).collect();
    let proto = PathBuf::from(args.required("proto")?);
    let method = args.required("method")?.to_owned();
    let server = args.required("server")?.to_owned();
    let input = PathBuf::from(args.required("input")?);
    let protocol = args
        .get_or("protocol", "baidu_std")
        .parse()
        .map_err(|e: brisk::Error| format!("--protocol: {}", e.message()))?;
    let qps = args.parse_or("qps", 100u64)?;
    let duration = args.parse_or("duration", 10.0f64)?;
    if !duration.is_finite() || duration < 0.0 {
        return Err("--duration must be a number of seconds, 0 or more".into());
    }
    let concurrency = args.parse_or("concurrency", 8usize)?;
    if concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let timeout_ms = args.parse_or("timeout-ms", 1000u64)?;
    let max_retry = args.parse_or("max-retry", 3u32)?;
    let connection_type = match args.get("connection-type") {
        Some(kind) => Some(
            kind.parse()
                .map_err(|e: brisk::Error| format!("--connection-type: {}", e.message()))?,
        ),
        None => None,
    };
    Ok(Options {
        proto,
        includes,
        method,
        server,
        input,
        protocol,
        qps,
        duration: (duration > 0.0).then(|| Duration::from_secs_f64(duration)),
        concurrency,
        timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms)),
        max_retry,
        connection_type,
    })
}

/// Parses `proto` (imports searched in `includes`, or the file's directory when empty) and
/// finds `method` (`package.Service.Method`). Errors list the methods that exist.
pub fn load_method(
    proto: &Path,
    includes: &[PathBuf],
    method: &str,
) -> Result<MethodDescriptor, String> {
    if !proto.is_file() {
        return Err(format!("--proto `{}`: no such file", proto.display()));
    }
    let default_include;
    let includes = if includes.is_empty() {
        default_include = match proto.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::slice::from_ref(&default_include)
    } else {
        includes
    };
    let set = protobuf_parse::Parser::new()
        .pure()
        .includes(includes)
        .input(proto)
        .file_descriptor_set()
        .map_err(|error| {
            // The chain repeats itself outwards; the message naming the file says it all.
            let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
            let message = chain
                .iter()
                .find(|m| m.starts_with("error in "))
                .or(chain.last())
                .cloned()
                .unwrap_or_default();
            format!("cannot parse `{}`: {message}", proto.display())
        })?;
    let bytes = set.write_to_bytes().map_err(|e| {
        format!(
            "cannot serialize the descriptors of `{}`: {e}",
            proto.display()
        )
    })?;
    let pool = DescriptorPool::decode(bytes.as_slice())
        .map_err(|e| format!("cannot load the descriptors of `{}`: {e}", proto.display()))?;

    let all_methods = || {
        let names: Vec<String> = pool
            .services()
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .map(|m| m.full_name().to_owned())
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let Some((service_name, method_name)) = method.rsplit_once('.') else {
        return Err(format!(
            "--method `{method}` is not package.Service.Method; methods in `{}`: {}",
            proto.display(),
            all_methods()
        ));
    };
    // The full name, or a service name without its package when only one service has it.
    let service = pool.get_service_by_name(service_name).or_else(|| {
        let mut matches = pool.services().filter(|s| s.name() == service_name);
        match (matches.next(), matches.next()) {
            (Some(service), None) => Some(service),
            _ => None,
        }
    });
    let Some(service) = service else {
        return Err(format!(
            "unknown service `{service_name}` in `{}`; methods: {}",
            proto.display(),
            all_methods()
        ));
    };
    let Some(found) = service.methods().find(|m| m.name() == method_name) else {
        let methods: Vec<String> = service
            .methods()
            .map(|m| m.full_name().to_owned())
            .collect();
        return Err(format!(
            "service `{}` has no method `{method_name}`; methods: {}",
            service.full_name(),
            if methods.is_empty() {
                "none".to_owned()
            } else {
                methods.join(", ")
            }
        ));
    };
    if found.is_client_streaming() || found.is_server_streaming() {
        return Err(format!(
            "`{}` is a streaming method; press calls unary methods only",
            found.full_name()
        ));
    }
    Ok(found)
}

/// Reads requests of type `desc` from JSON `text`: one object, an array of objects, or objects
/// one after another (one per line, as JSON lines). Errors name the bad entry (1-based, with
/// its line outside arrays).
pub fn parse_input(text: &str, desc: &MessageDescriptor) -> Result<Vec<DynamicMessage>, String> {
    let mut entries: Vec<(String, Value)> = Vec::new();
    if text.trim_start().starts_with('[') {
        let array: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| format!("input is not a JSON array of objects: {e}"))?;
        for (i, value) in array.into_iter().enumerate() {
            entries.push((format!("entry {} (array element {})", i + 1, i + 1), value));
        }
    } else {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        loop {
            let before = stream.byte_offset();
            let entry = entries.len() + 1;
            match stream.next() {
                None => break,
                Some(Ok(value)) => {
                    let start = before
                        + text[before..]
                            .find(|c: char| !c.is_whitespace())
                            .unwrap_or(0);
                    let line = text[..start].matches('\n').count() + 1;
                    entries.push((format!("entry {entry} (line {line})"), value));
                }
                Some(Err(e)) => {
                    return Err(format!(
                        "input entry {entry} (line {}): invalid JSON: {e}",
                        e.line()
                    ))
                }
            }
        }
    }
    if entries.is_empty() {
        return Err("input has no requests (expected JSON objects)".into());
    }
    entries
        .into_iter()
        .map(|(entry, value)| {
            if !value.is_object() {
                return Err(format!(
                    "input {entry}: expected a JSON object for {}, found {}",
                    desc.full_name(),
                    kind(&value)
                ));
            }
            let message = DynamicMessage::deserialize(desc.clone(), value)
                .map_err(|e| format!("input {entry}: not a valid {}: {e}", desc.full_name()))?;
            if let Some(missing) = missing_required(&message, "") {
                return Err(format!(
                    "input {entry}: {} is missing required field `{missing}`",
                    desc.full_name()
                ));
            }
            Ok(message)
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The path of the first proto2 `required` field that is not set, here or in nested messages.
fn missing_required(message: &DynamicMessage, prefix: &str) -> Option<String> {
    use prost_reflect::Value as V;
    for field in message.descriptor().fields() {
        let path = format!("{prefix}{}", field.name());
        if field.is_required() && !message.has_field(&field) {
            return Some(path);
        }
        if !message.has_field(&field) {
            continue;
        }
        let nested = |value: &V| match value {
            V::Message(inner) => missing_required(inner, &format!("{path}.")),
            _ => None,
        };
        let found = match &*message.get_field(&field) {
            V::List(items) => items.iter().find_map(nested),
            V::Map(entries) => entries.values().find_map(nested),
            value => nested(value),
        };
        if found.is_some() {
            return found;
        }
    }
    None
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
pub async fn run(options: Options) -> Result<Report, String> {
    run_until(options, std::future::pending()).await
}

/// [`run`], stopping early when `stop` completes (e.g. on Ctrl-C); with no duration, only
/// `stop` ends the run.
pub async fn run_until(options: Options, stop: impl Future<Output = ()>) -> Result<Report, String> {
    let method = load_method(&options.proto, &options.includes, &options.method)?;
    let text = std::fs::read_to_string(&options.input)
        .map_err(|e| format!("cannot read --input `{}`: {e}", options.input.display()))?;
    let inputs = parse_input(&text, &method.input())
        .map_err(|e| format!("`{}`: {e}", options.input.display()))?;
    let payloads: Arc<[Bytes]> = inputs
        .iter()
        .map(|message| Bytes::from(message.encode_to_vec()))
        .collect();

    let mut builder = Channel::builder()
        .protocol(options.protocol)
        .max_retry(options.max_retry);
    if let Some(connection_type) = options.connection_type {
        builder = builder.connection_type(connection_type);
    }
    builder = match options.timeout {
        Some(timeout) => builder.timeout(timeout),
        None => builder.no_timeout(),
    };
    let channel = builder
        .connect(&options.server)
        .await
        .map_err(|e| format!("--server `{}`: {}", options.server, e.message()))?;
    // The index too: hulu_pbrpc, public_pbrpc and nova_pbrpc name methods by it.
    let descriptor = brisk::MethodDescriptor::from_names(
        method.parent_service().full_name().to_owned(),
        method.name().to_owned(),
    )
    .with_index(method.index() as u32);

    let started = Instant::now();
    let end = options.duration.map(|d| started + d);
    let shared = Arc::new(Shared {
        payloads,
        next_input: AtomicUsize::new(0),
        pacer: (options.qps > 0).then(|| Pacer {
            interval: Duration::from_nanos(1_000_000_000 / options.qps),
            next: Mutex::new(started),
        }),
        end,
        output: method.output(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tallies = Vec::with_capacity(options.concurrency);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency {
        let tally = Arc::new(Mutex::new(Tally::default()));
        tallies.push(Arc::clone(&tally));
        tasks.spawn(caller(
            channel.clone(),
            descriptor.clone(),
            Arc::clone(&shared),
            tally,
            stop_rx.clone(),
        ));
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
    tokio::pin!(ended, stop);
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
        }
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    // Calls in flight finish (within their timeout) and count.
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| format!("a calling task failed: {e}"))?;
    }
    totals.drain(&tallies);
    Ok(Report {
        method: method.full_name().to_owned(),
        server: options.server,
        calls: totals.calls,
        succeeded: totals.succeeded,
        errors: totals.errors,
        elapsed,
        latency_us: totals.latency_us,
    })
}

/// What the calling tasks share.
struct Shared {
    payloads: Arc<[Bytes]>,
    next_input: AtomicUsize,
    pacer: Option<Pacer>,
    end: Option<Instant>,
    output: MessageDescriptor,
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

/// One calling task: takes a slot, sends the next input, checks and counts the answer.
async fn caller(
    channel: Channel,
    method: brisk::MethodDescriptor,
    shared: Arc<Shared>,
    tally: Arc<Mutex<Tally>>,
    mut stop: watch::Receiver<bool>,
) {
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
        let index = shared.next_input.fetch_add(1, Ordering::Relaxed) % shared.payloads.len();
        cntl.reset();
        let sent = Instant::now();
        let result = channel
            .unary::<brisk::codec::Raw, Bytes, Bytes>(&method, &mut cntl, &shared.payloads[index])
            .await;
        let latency = sent.elapsed();
        let result = result.and_then(|response| {
            DynamicMessage::decode(shared.output.clone(), response).map_err(|e| {
                Status::new(
                    errno::ERESPONSE,
                    format!(
                        "Fail to parse response as {}: {e}",
                        shared.output.full_name()
                    ),
                )
            })
        });
        let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_method() -> MethodDescriptor {
        let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/echo.proto");
        load_method(&proto, &[], "example.EchoService.Echo").unwrap()
    }

    fn messages(text: &str) -> Result<Vec<String>, String> {
        let method = echo_method();
        let parsed = parse_input(text, &method.input())?;
        Ok(parsed
            .iter()
            .map(|m| {
                m.get_field_by_name("message")
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect())
    }

    #[test]
    fn input_one_object() {
        assert_eq!(messages(r#" {"message": "hi"} "#).unwrap(), ["hi"]);
        let pretty = "{\n  \"message\": \"multi\"\n}\n";
        assert_eq!(messages(pretty).unwrap(), ["multi"]);
    }

    #[test]
    fn input_array_of_objects() {
        assert_eq!(
            messages(r#"[{"message": "a"}, {"message": "b"}]"#).unwrap(),
            ["a", "b"]
        );
        let error = messages(r#"[{"message": "a"}, {"mesage": "b"}]"#).unwrap_err();
        assert!(error.contains("entry 2 (array element 2)"), "{error}");
        assert!(error.contains("mesage"), "{error}");
        let error = messages(r#"[{"message": "a"}, 3]"#).unwrap_err();
        assert!(
            error.contains("entry 2") && error.contains("a number"),
            "{error}"
        );
        let error = messages(r#"[{"message": "a"},"#).unwrap_err();
        assert!(error.contains("not a JSON array"), "{error}");
    }

    #[test]
    fn input_json_lines() {
        let text = "{\"message\": \"1\"}\n{\"message\": \"2\"}\n\n{\"message\": \"3\"}\n";
        assert_eq!(messages(text).unwrap(), ["1", "2", "3"]);
        let error = messages("{\"message\": \"1\"}\n{\"message\": 2}\n").unwrap_err();
        assert!(error.contains("entry 2 (line 2)"), "{error}");
        let error = messages("{\"message\": \"1\"}\n\n{\"message\": \"2\"\n").unwrap_err();
        assert!(error.contains("entry 2 (line 4)"), "{error}");
        assert!(error.contains("invalid JSON"), "{error}");
    }

    #[test]
    fn input_checks_required_fields_and_emptiness() {
        let error = messages("{}").unwrap_err();
        assert!(
            error.contains("missing required field `message`"),
            "{error}"
        );
        let error = messages("  \n").unwrap_err();
        assert!(error.contains("no requests"), "{error}");
    }

    #[test]
    fn method_lookup_lists_what_exists() {
        let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/echo.proto");
        let short = load_method(&proto, &[], "EchoService.Echo").unwrap();
        assert_eq!(short.full_name(), "example.EchoService.Echo");
        let error = load_method(&proto, &[], "example.EchoService.Nope").unwrap_err();
        assert!(error.contains("example.EchoService.Echo"), "{error}");
        let error = load_method(&proto, &[], "example.Nope.Echo").unwrap_err();
        assert!(error.contains("unknown service `example.Nope`"), "{error}");
        assert!(error.contains("example.EchoService.Echo"), "{error}");
        let error = load_method(Path::new("/no/such.proto"), &[], "a.B.C").unwrap_err();
        assert!(error.contains("no such file"), "{error}");
    }

    #[test]
    fn arguments() {
        let args = |s: &str| parse_args(s.split_whitespace().map(str::to_owned));
        let options = args(
            "--proto p.proto --include a --include=b --method x.S.M --server h:1 --input i.json \
             --qps 0 --duration 0 --timeout-ms 0 --connection-type pooled",
        )
        .unwrap();
        assert_eq!(options.includes, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(options.qps, 0);
        assert_eq!(options.duration, None);
        assert_eq!(options.timeout, None);
        assert_eq!(options.concurrency, 8);
        assert_eq!(options.connection_type, Some(ConnectionType::Pooled));
        let error = args("--proto p --method x.S.M --input i").unwrap_err();
        assert!(error.contains("--server"), "{error}");
        let error = args("--proto p --method m --server s --input i --qps x").unwrap_err();
        assert!(error.contains("--qps"), "{error}");
        let error = args("--proto p --method m --server s --input i --bogus 1").unwrap_err();
        assert!(error.contains("--bogus"), "{error}");
        let error = args("--proto p --method m --server s --input i --protocol h2").unwrap_err();
        assert!(error.contains("h2"), "{error}");
    }
}
