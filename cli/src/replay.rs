//! `brisk replay`, as brpc's `rpc_replay`: sends the requests a server sampled
//! ([`ServerBuilder::rpc_dump`](brisk::ServerBuilder::rpc_dump), or brpc's `-rpc_dump`) to a
//! server again, at a given QPS, and reports the answers by error code.
//!
//! Each request goes out over the protocol it came in on (baidu_std, hulu_pbrpc, sofa_pbrpc;
//! `--protocol` overrides), to the method it named, with its message (decompressed, and
//! compressed again the same way) and attachment. `--times` passes go through the files in
//! order (default one); `--duration` bounds the run. Samples that cannot be sent again (a
//! protocol Brisk does not replay, such as nshead; a message that does not decompress, as a
//! server samples requests before it refuses them) are skipped, counted on stderr.
//!
//! ```text
//! brisk replay ./rpc_data/rpc_dump/echo 10.0.0.8:8000 --qps 500 --times 3
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brisk::rpc_dump::{protocol_name, read_records, Record, FILE_PREFIX};
use brisk::{CompressType, MethodDescriptor, Protocol};

use crate::press::{Call, Load, LoadArgs, Report};
use crate::Failure;

/// The largest sampled request read back (brpc's default `max_body_size`).
const MAX_BODY_SIZE: usize = 64 << 20;

/// `brisk replay`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The directory of `requests.*` files a server dumped (or one such file).
    pub dir: PathBuf,
    /// The server to send them to: `host:port`, or a naming-service URL (then `--lb` picks).
    pub server: String,
    /// Sends every request over this protocol instead of the one it came in on.
    #[arg(long, value_parser = crate::protocol)]
    pub protocol: Option<Protocol>,
    /// The load balancer, when the server is a naming-service URL.
    #[arg(long, default_value = "rr")]
    pub lb: String,
    /// Passes through the requests; 0 repeats them until `--duration` ends or Ctrl-C.
    #[arg(long, default_value_t = 1)]
    pub times: u64,
    /// Seconds to run at most; 0 is no bound.
    #[arg(long, default_value_t = 0.0, value_parser = crate::press::seconds)]
    pub duration: f64,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Replays the requests, until done or `stop` completes.
pub async fn run_until(
    options: Options,
    stop: impl Future<Output = ()>,
) -> Result<Report, Failure> {
    let records = read_dir(&options.dir)?;
    if records.is_empty() {
        return Err(Failure::usage(format!(
            "no sampled request in `{}`",
            options.dir.display()
        )));
    }
    let mut channels = Vec::new();
    let mut channel_of: HashMap<String, usize> = HashMap::new();
    let mut calls = Vec::with_capacity(records.len());
    let mut skipped = Vec::new();
    for (number, record) in records.iter().enumerate() {
        let what = |reason: String| format!("request {}: {reason}", number + 1);
        let protocol = match &options.protocol {
            Some(protocol) => protocol.clone(),
            None => {
                let number = record.meta.protocol_type.unwrap_or(0);
                let Some(name) = protocol_name(number) else {
                    skipped.push(what(format!("protocol {number} is not replayed")));
                    continue;
                };
                crate::protocol(name).map_err(Failure::usage)?
            }
        };
        let channel = match channel_of.get(protocol.name()) {
            Some(&index) => index,
            None => {
                let builder = options.load.channel(protocol.clone());
                let connected = crate::connect(builder, &options.server, &options.lb)
                    .await
                    .map_err(Failure::unreachable)?;
                channels.push(connected);
                channel_of.insert(protocol.name().to_owned(), channels.len() - 1);
                channels.len() - 1
            }
        };
        match call(record, channel) {
            Ok(call) => calls.push(call),
            Err(reason) => skipped.push(what(reason)),
        }
    }
    if !skipped.is_empty() {
        eprintln!(
            "brisk replay: skipped {} of {} requests (first: {})",
            skipped.len(),
            records.len(),
            skipped[0]
        );
    }
    if calls.is_empty() {
        return Err(Failure::usage(format!(
            "`{}`: no request can be sent again",
            options.dir.display()
        )));
    }
    let limit = (options.times > 0).then(|| options.times * calls.len() as u64);
    let load = Load {
        label: format!("{} requests from {}", records.len(), options.dir.display()),
        channels,
        calls,
        output: None,
        qps: options.load.qps,
        duration: (options.duration > 0.0).then(|| Duration::from_secs_f64(options.duration)),
        concurrency: options.load.concurrency,
        limit,
        server: options.server,
    };
    load.run(stop).await
}

/// The records of `path`: a file, or every `requests.*` file of a directory, by name (brpc
/// names them by time, so in the order they were written).
fn read_dir(path: &Path) -> Result<Vec<Record>, Failure> {
    let unreadable =
        |e: std::io::Error| Failure::usage(format!("cannot read `{}`: {e}", path.display()));
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(unreadable)? {
            let file = entry.map_err(unreadable)?.path();
            let dumped = file
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(FILE_PREFIX));
            if dumped {
                files.push(file);
            }
        }
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut records = Vec::new();
    for file in files {
        let data = std::fs::read(&file)
            .map_err(|e| Failure::usage(format!("cannot read `{}`: {e}", file.display())))?;
        let read = read_records(&data, MAX_BODY_SIZE)
            .map_err(|e| Failure::usage(format!("`{}`: {e}", file.display())))?;
        records.extend(read);
    }
    Ok(records)
}

/// The call that sends `record` again on channel `channel`.
fn call(record: &Record, channel: usize) -> Result<Call, String> {
    let meta = &record.meta;
    let method = match (&meta.service_name, &meta.method_name, meta.method_index) {
        // baidu_std: service and method names.
        (Some(service), Some(method), _) if !service.is_empty() => {
            MethodDescriptor::from_names(service.clone(), method.clone())
        }
        // sofa_pbrpc: the method's full name.
        (_, Some(full), _) => {
            let (service, method) = full
                .rsplit_once('.')
                .ok_or_else(|| format!("method `{full}` is not Service.Method"))?;
            MethodDescriptor::from_names(service.to_owned(), method.to_owned())
        }
        // hulu_pbrpc: the service and the method's index.
        (Some(service), None, Some(index)) => {
            let index = u32::try_from(index).map_err(|_| format!("method index {index}"))?;
            MethodDescriptor::from_names(service.clone(), String::new()).with_index(index)
        }
        _ => return Err("no method named".to_owned()),
    };
    let (message, attachment) = record
        .split()
        .ok_or_else(|| "an attachment larger than the request".to_owned())?;
    let wire = meta.compress_type.unwrap_or(0);
    let compress = CompressType::from_wire(wire).ok_or_else(|| format!("compress type {wire}"))?;
    // Sent compressed as it came: the channel compresses the message again.
    let message = brisk::decompress(compress, message, MAX_BODY_SIZE)
        .map_err(|e| format!("the message does not decompress: {e}"))?;
    Ok(Call {
        channel,
        method,
        message,
        attachment,
        compress,
        streaming: false,
    })
}
