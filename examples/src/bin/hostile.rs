//! Hostile input against a real server: `hostile [--echo-server PATH] [--only NAME]`.
//!
//! Starts an `echo_server`, then sends it one attack after another — random bytes, a flood of
//! connect/close, slowloris, HTTP/2 rapid reset, SETTINGS and CONTINUATION floods, a gRPC
//! message claiming 4 GiB, huge headers, deeply nested JSON, pipelined requests never read —
//! while a probe client calls it over baidu_std. For each it prints what the attacker saw,
//! the probe's worst latency during the attack (and whether every probe call succeeded), and
//! the server's resident memory before and at its peak (VmHWM, Linux), as a markdown table.
//! Exits 1 if a probe call failed or the server died. `--only a,b` runs those attacks alone.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk::Channel;
use brisk_examples::echo::{EchoRequest, EchoServiceClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Hostile clients against a real `echo_server`.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The echo_server binary (default: the one beside this program).
    #[arg(long = "echo-server")]
    echo_server: Option<std::path::PathBuf>,
    /// Only these attacks, comma-separated.
    #[arg(long)]
    only: Option<String>,
}

/// An attack: its name, what it sends, and what the attacker saw.
type Attack = fn(SocketAddr) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>;

const ATTACKS: &[(&str, &str, Attack)] = &[
    (
        "random-bytes",
        "1,000 connections, 4 KiB of random bytes each",
        |a| Box::pin(random_bytes(a)),
    ),
    (
        "connect-close",
        "20,000 connections opened and closed, 64 at a time",
        |a| Box::pin(connect_close(a)),
    ),
    (
        "slowloris",
        "1,000 HTTP/1.1 connections sending a header byte a second for 5 s",
        |a| Box::pin(slowloris(a)),
    ),
    (
        "slowloris-baidu_std",
        "1,000 baidu_std connections, each a frame claiming 60 MiB sent at 1 KiB a second for 12 s",
        |a| Box::pin(slowloris_framed(a)),
    ),
    (
        "h2-rapid-reset",
        "HTTP/2: 50,000 streams each opened and reset at once, one connection",
        |a| Box::pin(rapid_reset(a)),
    ),
    (
        "h2-settings-flood",
        "HTTP/2: 200,000 SETTINGS frames, their ACKs never read",
        |a| Box::pin(settings_flood(a)),
    ),
    (
        "h2-continuation-flood",
        "HTTP/2: HEADERS then 100,000 CONTINUATION frames of 1 KiB, never ending",
        |a| Box::pin(continuation_flood(a)),
    ),
    (
        "grpc-4gib-prefix",
        "gRPC: a message prefix claiming 4 GiB, then 1 MiB of it",
        |a| Box::pin(grpc_huge_prefix(a)),
    ),
    (
        "huge-headers",
        "HTTP/1.1: a request with 1 MiB of headers",
        |a| Box::pin(huge_headers(a)),
    ),
    (
        "nested-json",
        "HTTP/1.1: a JSON body nested 100,000 arrays deep",
        |a| Box::pin(nested_json(a)),
    ),
    (
        "unread-pipeline",
        "baidu_std: 200,000 pipelined requests of 4 KiB, replies never read",
        |a| Box::pin(unread_pipeline(a)),
    ),
];

fn main() -> std::process::ExitCode {
    let Options { echo_server, only } = clap::Parser::parse();
    let program = echo_server.unwrap_or_else(|| {
        std::env::current_exe()
            .expect("own path")
            .with_file_name("echo_server")
    });
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(program, only)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hostile: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The server under attack; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field)?
                    .trim_start_matches(':')
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Resets the peak RSS the kernel reports (VmHWM), so each attack's peak is its own.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

async fn run(program: std::path::PathBuf, only: Option<String>) -> Result<bool, String> {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?;
    let child = Command::new(&program)
        .args(["--listen", &addr.to_string(), "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let mut server = Server(child);
    let pid = server.0.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            return Err("echo_server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let channel = Channel::builder()
        .timeout(Duration::from_secs(5))
        .connect(&addr.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let probe = EchoServiceClient::new(channel);
    println!("| attack | sent | the attacker saw | probe (worst latency, failures) | server RSS before → peak |");
    println!("|---|---|---|---|---|");
    let mut all_well = true;
    for (name, sent, attack) in ATTACKS {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|o| o == *name))
        {
            continue;
        }
        // Settle, then measure from here.
        tokio::time::sleep(Duration::from_millis(300)).await;
        reset_peak(pid);
        let before = memory_kib(pid, "VmRSS");
        let probing = Arc::new(AtomicBool::new(true));
        let worst_us = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let prober = tokio::spawn({
            let (probe, probing, worst_us, failures) = (
                probe.clone(),
                probing.clone(),
                worst_us.clone(),
                failures.clone(),
            );
            async move {
                while probing.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let answered = probe
                        .echo(EchoRequest {
                            message: "probe".into(),
                        })
                        .await;
                    worst_us.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    if answered.is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        let saw = attack(addr).await;
        probing.store(false, Ordering::Relaxed);
        let _ = prober.await;
        let peak = memory_kib(pid, "VmHWM");
        let alive = matches!(server.0.try_wait(), Ok(None));
        let failed = failures.load(Ordering::Relaxed);
        let probe_text = format!(
            "{:.1} ms, {failed} failed{}",
            worst_us.load(Ordering::Relaxed) as f64 / 1000.0,
            if alive { "" } else { "; THE SERVER DIED" }
        );
        println!(
            "| {name} | {sent} | {saw} | {probe_text} | {:.1} → {:.1} MiB |",
            before as f64 / 1024.0,
            peak.max(before) as f64 / 1024.0
        );
        all_well &= alive && failed == 0;
        if !alive {
            break;
        }
    }
    Ok(all_well)
}

/// How a connection ended, after `sent`: what the server answered first (a few bytes, shown)
/// and whether it closed.
async fn ending(stream: &mut TcpStream, wait: Duration) -> String {
    let mut first = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) if first.len() < 64 => {
                    first.extend_from_slice(&buf[..n.min(64 - first.len())])
                }
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    let shown: String = String::from_utf8_lossy(&first)
        .chars()
        .take_while(|c| *c != '\r' && *c != '\n')
        .filter(|c| !c.is_control())
        .collect();
    match (shown.is_empty(), closed) {
        (true, true) => "closed".into(),
        (true, false) => "nothing yet".into(),
        (false, true) => format!("`{shown}`, closed"),
        (false, false) => format!("`{shown}`"),
    }
}

fn pseudo_random(seed: &mut u64) -> u8 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed as u8
}

async fn random_bytes(addr: SocketAddr) -> String {
    let mut closed = 0;
    let mut tasks = Vec::new();
    for i in 0..1_000u64 {
        tasks.push(tokio::spawn(async move {
            let mut seed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let bytes: Vec<u8> = (0..4096).map(|_| pseudo_random(&mut seed)).collect();
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                return false;
            };
            let _ = stream.write_all(&bytes).await;
            ending(&mut stream, Duration::from_secs(15))
                .await
                .ends_with("closed")
        }));
    }
    for task in tasks {
        closed += usize::from(task.await.unwrap_or(false));
    }
    format!("{closed} of 1,000 closed by the server")
}

async fn connect_close(addr: SocketAddr) -> String {
    let started = Instant::now();
    let refused = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let refused = refused.clone();
            tokio::spawn(async move {
                for _ in 0..20_000 / 64 + 1 {
                    match TcpStream::connect(addr).await {
                        Ok(stream) => drop(stream),
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    format!(
        "{} refused, {:.1} s",
        refused.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    )
}

async fn slowloris(addr: SocketAddr) -> String {
    let mut streams = Vec::new();
    for _ in 0..1_000 {
        if let Ok(mut stream) = TcpStream::connect(addr).await {
            let _ = stream
                .write_all(b"POST /example.EchoService/Echo HTTP/1.1\r\n")
                .await;
            streams.push(stream);
        }
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for stream in &mut streams {
            let _ = stream.write_all(b"X").await;
        }
    }
    format!(
        "{} connections held 5 s (closed at request_read_timeout, 30 s)",
        streams.len()
    )
}

async fn slowloris_framed(addr: SocketAddr) -> String {
    let mut streams = Vec::new();
    let mut head = b"PRPC".to_vec();
    head.extend_from_slice(&(60u32 << 20).to_be_bytes()); // body size
    head.extend_from_slice(&16u32.to_be_bytes()); // meta size
    for _ in 0..1_000 {
        if let Ok(mut stream) = TcpStream::connect(addr).await {
            let _ = stream.write_all(&head).await;
            streams.push(stream);
        }
    }
    // A KiB a second each, past the server's first_bytes_timeout (10 s by default): the
    // frames are still far from whole then.
    let mut open_at_5s = 0;
    for second in 1..=12 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for stream in &mut streams {
            let _ = stream.write_all(&[0u8; 1024]).await;
        }
        if second == 5 {
            open_at_5s = still_open(&mut streams).await;
        }
    }
    let open_at_12s = still_open(&mut streams).await;
    format!(
        "{open_at_5s} of {} connections open after 5 s, {open_at_12s} after 12 s (a first frame not whole by first_bytes_timeout, 10 s, is cut off; later frames may take their time, as in brpc)",
        streams.len()
    )
}

/// How many of `streams` the server has not closed.
async fn still_open(streams: &mut [TcpStream]) -> usize {
    let mut open = 0;
    for stream in streams {
        let mut byte = [0u8; 1];
        if let Err(_) | Ok(Ok(1..)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await
        {
            open += 1;
        }
    }
    open
}

/// HTTP/2 over a raw socket: the preface and an empty SETTINGS.
async fn h2_raw(addr: SocketAddr) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .ok()?;
    Some(stream)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A HEADERS block for a gRPC call of `example.EchoService/Echo` (HPACK literals, no Huffman).
fn grpc_headers() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    for (index, value) in [(4u8, "/example.EchoService/Echo"), (1, "localhost")] {
        block.push(index); // literal without indexing, indexed name (:path, :authority)
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    for (name, value) in [("content-type", "application/grpc"), ("te", "trailers")] {
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const CONTINUATION: u8 = 9;
const END_HEADERS: u8 = 4;

async fn rapid_reset(addr: SocketAddr) -> String {
    let Some(mut stream) = h2_raw(addr).await else {
        return "could not connect".into();
    };
    let headers = grpc_headers();
    let mut sent = 0;
    let mut batch = Vec::new();
    for i in 0..50_000u32 {
        let id = 2 * i + 1;
        batch.extend(frame(HEADERS, END_HEADERS, id, &headers));
        batch.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
        if batch.len() > 64 * 1024 {
            if stream.write_all(&batch).await.is_err() {
                break;
            }
            batch.clear();
        }
        sent = i + 1;
    }
    let _ = stream.write_all(&batch).await;
    format!("{sent} streams sent; then {}", h2_ending(&mut stream).await)
}

/// The HTTP/2 frames the server sent until it closed (GOAWAY's error code shown).
async fn h2_ending(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => {
                    if bytes.len() < 1 << 20 {
                        bytes.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
    })
    .await
    .unwrap_or(false);
    let mut goaway = None;
    let mut rest = &bytes[..];
    while rest.len() >= 9 {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        if rest[3] == 7 && rest.len() >= 17 {
            goaway = Some(u32::from_be_bytes([rest[13], rest[14], rest[15], rest[16]]));
        }
        rest = &rest[(9 + len).min(rest.len())..];
    }
    let goaway = match goaway {
        Some(0) => "GOAWAY NO_ERROR".to_owned(),
        Some(1) => "GOAWAY PROTOCOL_ERROR".to_owned(),
        Some(11) => "GOAWAY ENHANCE_YOUR_CALM".to_owned(),
        Some(code) => format!("GOAWAY code {code}"),
        None => "no GOAWAY".to_owned(),
    };
    format!("{goaway}, {}", if closed { "closed" } else { "left open" })
}

async fn settings_flood(addr: SocketAddr) -> String {
    let Some(mut stream) = h2_raw(addr).await else {
        return "could not connect".into();
    };
    let one = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]); // MAX_CONCURRENT_STREAMS=100
    let batch: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * 5_000)
        .collect();
    let mut sent = 0;
    // Writes until the server stops reading (it must not buffer ACKs without bound).
    for _ in 0..40 {
        match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += 5_000,
            _ => break,
        }
    }
    format!("{sent} sent; then {}", h2_ending(&mut stream).await)
}

async fn continuation_flood(addr: SocketAddr) -> String {
    let Some(mut stream) = h2_raw(addr).await else {
        return "could not connect".into();
    };
    let _ = stream
        .write_all(&frame(HEADERS, 0, 1, &grpc_headers()))
        .await;
    let mut filler = Vec::with_capacity(1024);
    for i in 0..1000u32 {
        filler.push(0); // literal, new name
        filler.push(1);
        filler.push(b'a' + (i % 26) as u8);
        filler.push(0);
    }
    let one = frame(CONTINUATION, 0, 1, &filler);
    let mut sent = 0;
    for _ in 0..1_000 {
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 100).collect();
        match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += 100,
            _ => break,
        }
    }
    format!(
        "{sent} CONTINUATION frames sent; then {}",
        h2_ending(&mut stream).await
    )
}

async fn grpc_huge_prefix(addr: SocketAddr) -> String {
    let Ok(io) = TcpStream::connect(addr).await else {
        return "could not connect".into();
    };
    let Ok((mut sender, connection)) = h2::client::handshake(io).await else {
        return "no HTTP/2 handshake".into();
    };
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{addr}/example.EchoService/Echo"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let Ok((response, mut body)) = sender.send_request(request, false) else {
        return "the stream was refused".into();
    };
    let mut prefix = vec![0u8, 0xff, 0xff, 0xff, 0xff];
    prefix.resize(16 * 1024, 0);
    let _ = body.send_data(prefix.into(), false);
    for _ in 0..64 {
        body.reserve_capacity(16 * 1024);
        if body.send_data(vec![0u8; 16 * 1024].into(), false).is_err() {
            break;
        }
    }
    let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(10), response).await else {
        return "no answer".into();
    };
    let status = |headers: &http::HeaderMap| {
        let code = headers.get("grpc-status")?.to_str().ok()?.to_owned();
        let message = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default()
            .replace("%20", " ");
        Some(format!("grpc-status {code} `{message}`"))
    };
    if let Some(status) = status(response.headers()) {
        return status;
    }
    let mut answer = response.into_body();
    while let Some(Ok(_)) = answer.data().await {}
    match answer.trailers().await {
        Ok(Some(trailers)) => status(&trailers).unwrap_or_else(|| "no grpc-status".into()),
        _ => "the stream was reset".into(),
    }
}

async fn huge_headers(addr: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return "could not connect".into();
    };
    let mut request = b"GET /example.EchoService/Echo HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..1024 {
        request.extend_from_slice(format!("x-filler-{i}: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let _ = stream.write_all(&request).await;
    ending(&mut stream, Duration::from_secs(15)).await
}

async fn nested_json(addr: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return "could not connect".into();
    };
    let depth = 100_000;
    let mut body = String::from("{\"message\":");
    body.push_str(&"[".repeat(depth));
    body.push_str(&"]".repeat(depth));
    body.push('}');
    let head = format!(
        "POST /example.EchoService/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    ending(&mut stream, Duration::from_secs(15)).await
}

async fn unread_pipeline(addr: SocketAddr) -> String {
    use prost::Message;
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return "could not connect".into();
    };
    let request = EchoRequest {
        message: "x".repeat(4096),
    }
    .encode_to_vec();
    let mut sent = 0u64;
    let mut batch = Vec::new();
    for id in 0..200_000i64 {
        let meta = brisk::protocol::baidu_std::RpcMeta {
            request: Some(brisk::protocol::baidu_std::RpcRequestMeta {
                service_name: "example.EchoService".into(),
                method_name: "Echo".into(),
                ..Default::default()
            }),
            correlation_id: Some(id),
            ..Default::default()
        }
        .encode_to_vec();
        batch.extend_from_slice(b"PRPC");
        batch.extend_from_slice(&((meta.len() + request.len()) as u32).to_be_bytes());
        batch.extend_from_slice(&(meta.len() as u32).to_be_bytes());
        batch.extend_from_slice(&meta);
        batch.extend_from_slice(&request);
        if batch.len() > 1 << 20 {
            match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&batch)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
            batch.clear();
        }
        sent = id as u64 + 1;
    }
    format!("{sent} requests written before the server stopped reading")
}
