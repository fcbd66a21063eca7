//! Requests sampled into files, as brpc's `rpc_dump` writes them, for `brisk replay` (or
//! brpc's `rpc_replay`) to send again.
//!
//! The files are brpc's: `<dir>/requests.yyyymmdd_hhmmss_uuuuuu`, each a run of records
//! framed like baidu_std (`PRPC`, body size, meta size, big-endian), whose meta is brpc's
//! `RpcDumpMeta` (service, method name or index, compression, protocol, attachment size,
//! credential) and whose body is the request as it arrived: the message (still compressed)
//! and then the attachment. Requests of baidu_std, hulu_pbrpc and sofa_pbrpc are sampled, at
//! most `max_requests_per_second` a second; a file holds `max_requests_in_one_file`, and the
//! oldest of more than `max_files` files is removed. A thread of its own writes, in batches,
//! so serving never waits for the disk; a sample the writer cannot take at once is dropped.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use prost::Message;

use crate::clock::CivilTime;
use crate::protocol::{IncomingRequest, MethodRef};

/// What files are named: `requests.` and the time the file was started.
pub const FILE_PREFIX: &str = "requests.";

/// How long written records may wait in the buffer (brpc's 2 s).
const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Samples the writer may have waiting before new ones are dropped...
const QUEUE: usize = 4096;

/// ...and bytes of them (so large requests cannot pile up gigabytes).
const QUEUE_BYTES: usize = 64 << 20;

/// Where and how much [`ServerBuilder::rpc_dump`](super::ServerBuilder::rpc_dump) samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcDumpOptions {
    /// The directory of the files (created if missing; `requests.*` files already there are
    /// removed when the server starts, as brpc cleans its directory).
    pub dir: PathBuf,
    /// Files kept at most; the oldest goes when a new one would pass it (brpc's
    /// `rpc_dump_max_files`, 32).
    pub max_files: usize,
    /// Records in one file (brpc's `rpc_dump_max_requests_in_one_file`, 1000).
    pub max_requests_in_one_file: usize,
    /// Requests sampled a second at most (brpc's collector budget, 1000).
    pub max_requests_per_second: u64,
}

impl RpcDumpOptions {
    /// Samples into `dir`, with brpc's defaults for the rest.
    pub fn new(dir: impl Into<PathBuf>) -> RpcDumpOptions {
        RpcDumpOptions {
            dir: dir.into(),
            max_files: 32,
            max_requests_in_one_file: 1000,
            max_requests_per_second: 1000,
        }
    }
}

/// brpc's `RpcDumpMeta` (`src/brpc/rpc_dump.proto`).
#[derive(Clone, PartialEq, Message)]
pub struct RpcDumpMeta {
    /// baidu_std, hulu_pbrpc: the service's name.
    #[prost(string, optional, tag = "1")]
    pub service_name: Option<String>,
    /// baidu_std: the method's name; sofa_pbrpc: the method's full name.
    #[prost(string, optional, tag = "2")]
    pub method_name: Option<String>,
    /// hulu_pbrpc: the method's index.
    #[prost(int32, optional, tag = "3")]
    pub method_index: Option<i32>,
    /// brpc's `CompressType` of the message.
    #[prost(int32, optional, tag = "4")]
    pub compress_type: Option<i32>,
    /// brpc's `ProtocolType`: 2 baidu_std, 4 hulu_pbrpc, 5 sofa_pbrpc.
    #[prost(int32, optional, tag = "5")]
    pub protocol_type: Option<i32>,
    /// Bytes of attachment at the end of the body.
    #[prost(int32, optional, tag = "6")]
    pub attachment_size: Option<i32>,
    /// baidu_std's credential.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub authentication_data: Option<Vec<u8>>,
    /// hulu_pbrpc's user data (Brisk's hulu server does not keep it).
    #[prost(bytes = "vec", optional, tag = "8")]
    pub user_data: Option<Vec<u8>>,
    /// nshead's header (not sampled by Brisk).
    #[prost(bytes = "vec", optional, tag = "9")]
    pub nshead: Option<Vec<u8>>,
}

/// brpc's `ProtocolType` of a protocol Brisk samples, by Brisk's name.
pub fn protocol_number(name: &str) -> Option<i32> {
    match name {
        "baidu_std" => Some(2),
        "hulu_pbrpc" => Some(4),
        "sofa_pbrpc" => Some(5),
        _ => None,
    }
}

/// Brisk's name of a protocol brpc numbers `number`, among those sampled.
pub fn protocol_name(number: i32) -> Option<&'static str> {
    match number {
        2 => Some("baidu_std"),
        4 => Some("hulu_pbrpc"),
        5 => Some("sofa_pbrpc"),
        _ => None,
    }
}

/// One record: `PRPC`, body size, meta size, the meta, the body.
pub fn encode_record(meta: &RpcDumpMeta, body: &[&[u8]], out: &mut BytesMut) {
    let meta_size = meta.encoded_len();
    let body_size = meta_size + body.iter().map(|part| part.len()).sum::<usize>();
    out.put_slice(b"PRPC");
    out.put_u32(body_size as u32);
    out.put_u32(meta_size as u32);
    meta.encode(out).expect("a BytesMut grows");
    for part in body {
        out.put_slice(part);
    }
}

/// One record read back: its meta and its body (message, then attachment).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// What the request was.
    pub meta: RpcDumpMeta,
    /// The message as it arrived (compressed with `meta.compress_type`), then the attachment
    /// (`meta.attachment_size` bytes).
    pub body: bytes::Bytes,
}

impl Record {
    /// The message and the attachment, apart; `None` when the attachment size is larger than
    /// the body.
    pub fn split(&self) -> Option<(bytes::Bytes, bytes::Bytes)> {
        let attachment = usize::try_from(self.meta.attachment_size.unwrap_or(0)).ok()?;
        let at = self.body.len().checked_sub(attachment)?;
        Some((self.body.slice(..at), self.body.slice(at..)))
    }
}

/// The records of one file's bytes, in order. Fails (naming the offset) on a record that is
/// not `PRPC`-framed, whose meta does not parse, or that is cut short; as brpc's reader, a
/// body larger than `max_body_size` is refused.
pub fn read_records(data: &[u8], max_body_size: usize) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let head = data
            .get(at..at + 12)
            .ok_or_else(|| format!("a record cut short at byte {at}"))?;
        if &head[..4] != b"PRPC" {
            return Err(format!("no PRPC magic at byte {at}"));
        }
        let body_size = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let meta_size = u32::from_be_bytes([head[8], head[9], head[10], head[11]]) as usize;
        if body_size > max_body_size {
            return Err(format!(
                "a body of {body_size} bytes at byte {at}, over the limit"
            ));
        }
        if meta_size > body_size {
            return Err(format!(
                "meta_size={meta_size} over body_size={body_size} at byte {at}"
            ));
        }
        let body = data
            .get(at + 12..at + 12 + body_size)
            .ok_or_else(|| format!("a record cut short at byte {at}"))?;
        let meta = RpcDumpMeta::decode(&body[..meta_size])
            .map_err(|e| format!("an RpcDumpMeta that does not parse at byte {at}: {e}"))?;
        records.push(Record {
            meta,
            body: bytes::Bytes::copy_from_slice(&body[meta_size..]),
        });
        at += 12 + body_size;
    }
    Ok(records)
}

/// A server's sampler: takes requests as they arrive, within the budget, and hands them to the
/// writing thread.
#[derive(Debug)]
pub(crate) struct RpcDump {
    records: SyncSender<BytesMut>,
    /// Bytes of records queued for the writer.
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max_per_second: u64,
    /// The current second (since the epoch) in the high 32 bits, samples taken in it in the
    /// low 32: one atomic for the budget.
    budget: AtomicU64,
}

impl RpcDump {
    /// Prepares `options.dir` and starts the writing thread.
    pub(crate) fn start(options: RpcDumpOptions) -> io::Result<RpcDump> {
        std::fs::create_dir_all(&options.dir)?;
        for entry in std::fs::read_dir(&options.dir)? {
            let path = entry?.path();
            if is_dump_file(&path) {
                std::fs::remove_file(&path)?;
            }
        }
        let (records, queue) = mpsc::sync_channel(QUEUE);
        let max_per_second = options.max_requests_per_second;
        let queued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let written = std::sync::Arc::clone(&queued);
        std::thread::Builder::new()
            .name("brisk-rpc-dump".to_owned())
            .spawn(move || write_files(options, queue, &written))?;
        Ok(RpcDump {
            records,
            queued,
            max_per_second,
            budget: AtomicU64::new(0),
        })
    }

    /// Samples `request`, which arrived over `protocol`, if the second's budget allows.
    pub(crate) fn sample(&self, protocol: &str, request: &IncomingRequest) {
        let Some(protocol_type) = protocol_number(protocol) else {
            return;
        };
        if !self.take_budget() {
            return;
        }
        let (method_name, method_index) = match &request.method {
            MethodRef::Name(name) if protocol == "sofa_pbrpc" && !request.service.is_empty() => {
                (Some(format!("{}.{name}", request.service)), None)
            }
            MethodRef::Name(name) => (Some(name.clone()), None),
            MethodRef::Index(index) => (None, i32::try_from(*index).ok()),
        };
        let payload = &request.payload;
        let meta = RpcDumpMeta {
            service_name: (protocol != "sofa_pbrpc").then(|| request.service.clone()),
            method_name,
            method_index,
            compress_type: Some(payload.compress_type.as_wire()),
            protocol_type: Some(protocol_type),
            attachment_size: Some(payload.attachment.len() as i32),
            authentication_data: request.credential.as_ref().map(|c| c.to_vec()),
            user_data: None,
            nshead: None,
        };
        let mut record =
            BytesMut::with_capacity(64 + payload.message.len() + payload.attachment.len());
        encode_record(&meta, &[&payload.message, &payload.attachment], &mut record);
        // A writer behind drops samples, never requests.
        let size = record.len();
        if self.queued.fetch_add(size, Ordering::Relaxed) + size > QUEUE_BYTES
            || self.records.try_send(record).is_err()
        {
            self.queued.fetch_sub(size, Ordering::Relaxed);
        }
    }

    fn take_budget(&self) -> bool {
        if self.max_per_second == 0 {
            return false;
        }
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            & 0xffff_ffff;
        let mut current = self.budget.load(Ordering::Relaxed);
        loop {
            let (in_second, taken) = (current >> 32, current & 0xffff_ffff);
            let next = if in_second == second {
                if taken >= self.max_per_second {
                    return false;
                }
                current + 1
            } else {
                (second << 32) | 1
            };
            match self.budget.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

fn is_dump_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(FILE_PREFIX))
}

/// The writing thread: records into files, batched, rotated; ends when the server drops its
/// sampler.
fn write_files(
    options: RpcDumpOptions,
    queue: mpsc::Receiver<BytesMut>,
    queued: &std::sync::atomic::AtomicUsize,
) {
    let mut files: std::collections::VecDeque<PathBuf> = std::collections::VecDeque::new();
    let mut current: Option<(BufWriter<File>, usize)> = None;
    // Written records reach the file within FLUSH_INTERVAL, however steady the samples.
    let mut flush_at = std::time::Instant::now() + FLUSH_INTERVAL;
    loop {
        let wait = flush_at.saturating_duration_since(std::time::Instant::now());
        let received = queue.recv_timeout(wait);
        if std::time::Instant::now() >= flush_at {
            if let Some((writer, _)) = current.as_mut() {
                let _ = writer.flush();
            }
            flush_at = std::time::Instant::now() + FLUSH_INTERVAL;
        }
        let record = match received {
            Ok(record) => record,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        queued.fetch_sub(record.len(), Ordering::Relaxed);
        if current
            .as_ref()
            .is_none_or(|(_, count)| *count >= options.max_requests_in_one_file)
        {
            if let Some((mut writer, _)) = current.take() {
                let _ = writer.flush();
            }
            match new_file(&options.dir) {
                Ok((path, file)) => {
                    files.push_back(path);
                    while files.len() > options.max_files.max(1) {
                        if let Some(oldest) = files.pop_front() {
                            let _ = std::fs::remove_file(oldest);
                        }
                    }
                    current = Some((BufWriter::with_capacity(1 << 20, file), 0));
                }
                Err(e) => {
                    tracing::warn!(dir = %options.dir.display(), error = %e, "cannot start an rpc_dump file; dropping samples");
                    continue;
                }
            }
        }
        if let Some((writer, count)) = current.as_mut() {
            if let Err(e) = writer.write_all(&record) {
                tracing::warn!(dir = %options.dir.display(), error = %e, "writing an rpc_dump file failed");
                current = None;
            } else {
                *count += 1;
            }
        }
    }
    if let Some((mut writer, _)) = current {
        let _ = writer.flush();
    }
}

/// A new file named for now (with a suffix if a file of the same microsecond exists).
fn new_file(dir: &Path) -> io::Result<(PathBuf, File)> {
    let t = CivilTime::utc(SystemTime::now());
    let stem = format!(
        "{FILE_PREFIX}{:04}{:02}{:02}_{:02}{:02}{:02}_{:06}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros
    );
    for attempt in 0..100 {
        let name = match attempt {
            0 => stem.clone(),
            n => format!("{stem}.{n}"),
        };
        let path = dir.join(name);
        match File::options().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free file name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_framed_as_brpc_writes_them() {
        let meta = RpcDumpMeta {
            service_name: Some("example.EchoService".into()),
            method_name: Some("Echo".into()),
            compress_type: Some(0),
            protocol_type: Some(2),
            attachment_size: Some(3),
            ..Default::default()
        };
        let mut out = BytesMut::new();
        encode_record(&meta, &[b"\x0a\x02hi", b"att"], &mut out);
        let meta_len = meta.encoded_len();
        assert_eq!(&out[..4], b"PRPC");
        assert_eq!(
            u32::from_be_bytes(out[4..8].try_into().unwrap()) as usize,
            meta_len + 7
        );
        assert_eq!(
            u32::from_be_bytes(out[8..12].try_into().unwrap()) as usize,
            meta_len
        );
        assert_eq!(RpcDumpMeta::decode(&out[12..12 + meta_len]).unwrap(), meta);
        assert_eq!(&out[12 + meta_len..], b"\x0a\x02hiatt");

        // And back.
        encode_record(&meta, &[b"x", b"abc"], &mut out);
        let records = read_records(&out, 1 << 20).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].split(),
            Some((
                bytes::Bytes::from_static(b"\x0a\x02hi"),
                bytes::Bytes::from_static(b"att")
            ))
        );
        assert_eq!(
            records[1].split().unwrap().0,
            bytes::Bytes::from_static(b"x")
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_offset() {
        let meta = RpcDumpMeta::default();
        let mut out = BytesMut::new();
        encode_record(&meta, &[b"body"], &mut out);
        let whole = out.len();
        assert!(read_records(&out[..whole - 1], 1 << 20)
            .unwrap_err()
            .contains("cut short"));
        let mut bad = out.to_vec();
        bad[0] = b'X';
        assert!(read_records(&bad, 1 << 20).unwrap_err().contains("magic"));
        assert!(read_records(&out, 2)
            .unwrap_err()
            .contains("over the limit"));
        let lying = Record {
            meta: RpcDumpMeta {
                attachment_size: Some(99),
                ..Default::default()
            },
            body: bytes::Bytes::from_static(b"short"),
        };
        assert_eq!(lying.split(), None);
    }

    #[test]
    fn the_budget_resets_each_second() {
        let (records, _queue) = mpsc::sync_channel(1);
        let dump = RpcDump {
            records,
            queued: Default::default(),
            max_per_second: 2,
            budget: AtomicU64::new(0),
        };
        let taken = (0..10).filter(|_| dump.take_budget()).count();
        // Two a second; three when the second turned during the loop.
        assert!((2..=3).contains(&taken), "{taken}");
        // A second that is over leaves no debt.
        dump.budget.store((1 << 32) | 2, Ordering::Relaxed);
        assert!(dump.take_budget());
        // A budget of none samples nothing.
        let (records, _queue) = mpsc::sync_channel(1);
        let off = RpcDump {
            records,
            queued: Default::default(),
            max_per_second: 0,
            budget: AtomicU64::new(0),
        };
        assert!(!off.take_budget());
    }

    #[test]
    fn protocol_numbers_are_brpcs() {
        for name in ["baidu_std", "hulu_pbrpc", "sofa_pbrpc"] {
            assert_eq!(protocol_name(protocol_number(name).unwrap()), Some(name));
        }
        assert_eq!(protocol_number("http"), None);
    }
}
