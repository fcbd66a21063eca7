//! `brisk call`: one method call with JSON in and JSON out, as grpcurl makes it, over any client
//! protocol.
//!
//! - Unary and server-streaming methods take the request from the command line (`'{json}'`,
//!   `@FILE`, or `@-` for stdin; none is the empty message `{}`). Several objects (an array,
//!   or one object a line) make one call each, in order, as grpcurl does.
//! - Client- and bidirectionally streaming methods send every object given; with none given,
//!   they read stdin one JSON object a line and send each as it is read, so a bidirectional
//!   call can be driven by hand.
//! - A unary response prints as indented JSON (`--compact`: one line); streamed responses print
//!   one JSON object a line, as they arrive.
//!
//! ```text
//! brisk call 127.0.0.1:8000 example.EchoService/Echo '{"message": "hi"}'
//! brisk call 127.0.0.1:8000 example.EchoService/Echo --protocol baidu_std \
//!     --proto examples/proto/echo.proto @requests.json
//! ```

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use brisk::codec::Raw;
use brisk::{Channel, Controller, Protocol, Status};
use bytes::Bytes;
use futures_util::StreamExt as _;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, SerializeOptions};
use tokio::io::AsyncBufReadExt as _;

use crate::schema::{call_descriptor, SchemaArgs};
use crate::Failure;

/// `brisk call`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The server: `host:port`, or a naming-service URL (`list://`, `dns://`, ...).
    pub server: String,
    /// The method: `package.Service/Method` (or `package.Service.Method`).
    pub method: String,
    /// The request as JSON, `@FILE` to read it from a file, `@-` from stdin. Left out: `{}`,
    /// or stdin a line at a time for a client-streaming method.
    pub data: Option<String>,
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// The wire protocol: h2:grpc, baidu_std, http, hulu_pbrpc, sofa_pbrpc, ... Streaming
    /// methods need h2:grpc.
    #[arg(long, default_value = "h2:grpc", value_parser = crate::protocol)]
    pub protocol: Protocol,
    /// The load balancer, when the server is a naming-service URL.
    #[arg(long, default_value = "rr")]
    pub lb: String,
    /// Deadline of the call in milliseconds (a stream's whole life); 0 is none.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// A request header or gRPC metadata entry, `name: value`; repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = header)]
    pub headers: Vec<(String, String)>,
    /// Compresses the request: gzip, zlib, snappy, lz4 or zstd (what the protocol carries:
    /// h2:grpc takes gzip, zlib (gRPC's deflate) and zstd).
    #[arg(long, value_name = "TYPE")]
    pub compress: Option<brisk::CompressType>,
    /// The log id sent with the call (brpc's `log_id`).
    #[arg(long)]
    pub log_id: Option<i64>,
    /// Prints fields that hold their default value too.
    #[arg(long)]
    pub emit_defaults: bool,
    /// Prints a unary response on one line.
    #[arg(long)]
    pub compact: bool,
}

fn header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        }
        _ => Err(format!("`{text}` is not `name: value`")),
    }
}

/// Makes the call `options` describe, printing responses to stdout as they arrive.
pub async fn run(options: Options) -> Result<(), Failure> {
    let schema = options
        .schema
        .source(&options.server)
        .load(&[&options.method])
        .await?;
    let method = schema.method(&options.method).map_err(Failure::usage)?;
    let streaming_requests = method.is_client_streaming();
    let streaming_responses = method.is_server_streaming();
    if (streaming_requests || streaming_responses) && options.protocol != Protocol::GRPC {
        return Err(Failure::usage(format!(
            "`{}` is a streaming method: call it with --protocol h2:grpc",
            method.full_name()
        )));
    }
    if let Some(compress) = options.compress {
        let grpc_has_it = matches!(
            compress,
            brisk::CompressType::None
                | brisk::CompressType::Gzip
                | brisk::CompressType::Zlib
                | brisk::CompressType::Zstd
        );
        if options.protocol == Protocol::GRPC && !grpc_has_it {
            return Err(Failure::usage(format!(
                "--compress {}: h2:grpc compresses with gzip, zlib (deflate) or zstd",
                compress.name()
            )));
        }
    }
    let requests = match (&options.data, streaming_requests) {
        (None, true) => None, // stdin, a line at a time
        (None, false) => Some(vec![DynamicMessage::new(method.input())]),
        (Some(data), _) => Some(requests_from(data, &method.input())?),
    };

    let mut builder = Channel::builder().protocol(options.protocol.clone());
    builder = crate::with_timeout(builder, options.timeout_ms);
    let channel = crate::connect(builder, &options.server, &options.lb)
        .await
        .map_err(Failure::unreachable)?;
    let descriptor = call_descriptor(&method);
    let printer = Printer::new(&options, method.output(), streaming_responses);
    let new_controller = || {
        let mut cntl = Controller::new();
        if options.timeout_ms > 0 {
            cntl.set_timeout(Duration::from_millis(options.timeout_ms));
        }
        for (name, value) in &options.headers {
            cntl.set_request_header(name.clone(), value.clone());
        }
        if let Some(log_id) = options.log_id {
            cntl.set_log_id(log_id);
        }
        if let Some(compress) = options.compress {
            cntl.set_request_compress_type(compress);
        }
        cntl
    };

    if streaming_requests {
        let bad_line = Arc::new(Mutex::new(None));
        let mut cntl = new_controller();
        let payloads: futures_util::stream::BoxStream<'static, Bytes> = match requests {
            Some(requests) => {
                futures_util::stream::iter(requests.iter().map(encode).collect::<Vec<_>>()).boxed()
            }
            None => stdin_requests(method.input(), Arc::clone(&bad_line), cntl.call_id()),
        };
        let opened = channel
            .streaming::<Raw, Bytes, Bytes, _>(&descriptor, &mut cntl, payloads)
            .await;
        let ended = match opened {
            Ok(mut responses) => print_stream(&mut responses, &printer).await,
            Err(status) => Err(failed(status)),
        };
        // A bad line cancelled the call: say why, not "cancelled".
        let bad_line = bad_line
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        return match bad_line {
            Some(error) => Err(Failure::usage(error)),
            None => ended,
        };
    }
    for request in requests.unwrap_or_default() {
        let mut cntl = new_controller();
        if streaming_responses {
            let one = futures_util::stream::iter([encode(&request)]);
            let mut responses = channel
                .streaming::<Raw, Bytes, Bytes, _>(&descriptor, &mut cntl, one)
                .await
                .map_err(failed)?;
            print_stream(&mut responses, &printer).await?;
        } else {
            let response = channel
                .unary::<Raw, Bytes, Bytes>(&descriptor, &mut cntl, &encode(&request))
                .await
                .map_err(failed)?;
            printer.print(response)?;
        }
    }
    Ok(())
}

fn encode(message: &DynamicMessage) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// A failed call: exit code 3 when the server could not be reached (nothing was answered),
/// 1 otherwise.
fn failed(status: Status) -> Failure {
    use brisk::errno;
    let name = errno::name(status.code()).map_or(String::new(), |n| format!(" {n}"));
    let message = format!("E{}{name}: {}", status.code(), status.message());
    let unreachable = matches!(
        status.code(),
        errno::ECONNREFUSED | errno::EHOSTDOWN | errno::ETIMEDOUT | errno::EFAILEDSOCKET
    );
    if unreachable && status.remote_side().is_none() {
        Failure::unreachable(message)
    } else {
        Failure::call(message)
    }
}

/// The requests in `data`: JSON text, or `@FILE` / `@-`.
fn requests_from(data: &str, input: &MessageDescriptor) -> Result<Vec<DynamicMessage>, Failure> {
    let (text, origin) = match data.strip_prefix('@') {
        Some(path) => (
            crate::input::read(Path::new(path)).map_err(Failure::usage)?,
            format!("`{path}`"),
        ),
        None => (data.to_owned(), "the request".to_owned()),
    };
    crate::input::parse_input(&text, input).map_err(|e| Failure::usage(format!("{origin}: {e}")))
}

/// Requests read from stdin one JSON object a line (or several on a line), sent as each line
/// is read. A line that is not a valid request is reported through `bad_line` and cancels the
/// call (`call`), so the server sees the stream reset, not a stream that ended cleanly.
fn stdin_requests(
    input: MessageDescriptor,
    bad_line: Arc<Mutex<Option<String>>>,
    call: brisk::CallId,
) -> futures_util::stream::BoxStream<'static, Bytes> {
    let lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let refuse = move |error: String| {
        *bad_line.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
        call.cancel();
    };
    futures_util::stream::unfold((lines, 0usize), move |(mut lines, mut number)| {
        let input = input.clone();
        let refuse = refuse.clone();
        async move {
            loop {
                number += 1;
                let line = match lines.next_line().await {
                    Ok(Some(line)) => line,
                    Ok(None) => return None,
                    Err(e) => {
                        refuse(format!("cannot read stdin: {e}"));
                        return std::future::pending().await;
                    }
                };
                if line.trim().is_empty() {
                    continue;
                }
                match crate::input::parse_input(&line, &input) {
                    Ok(messages) => {
                        let payloads: Vec<Bytes> = messages.iter().map(encode).collect();
                        return Some((payloads, (lines, number)));
                    }
                    Err(e) => {
                        refuse(format!("stdin line {number}: {e}"));
                        return std::future::pending().await;
                    }
                }
            }
        }
    })
    .flat_map(futures_util::stream::iter)
    .boxed()
}

async fn print_stream(
    responses: &mut brisk::Streaming<Bytes>,
    printer: &Printer,
) -> Result<(), Failure> {
    while let Some(response) = responses.message().await.map_err(failed)? {
        printer.print(response)?;
    }
    Ok(())
}

/// Writes responses as JSON.
struct Printer {
    output: MessageDescriptor,
    options: SerializeOptions,
    one_line: bool,
}

impl Printer {
    fn new(options: &Options, output: MessageDescriptor, streaming: bool) -> Printer {
        Printer {
            output,
            options: SerializeOptions::new()
                .skip_default_fields(!options.emit_defaults)
                .stringify_64_bit_integers(true),
            one_line: options.compact || streaming,
        }
    }

    fn print(&self, payload: Bytes) -> Result<(), Failure> {
        let message = DynamicMessage::decode(self.output.clone(), payload).map_err(|e| {
            Failure::call(format!(
                "the response is not a valid {}: {e}",
                self.output.full_name()
            ))
        })?;
        let mut text = Vec::new();
        let written = if self.one_line {
            let mut serializer = serde_json::Serializer::new(&mut text);
            message.serialize_with_options(&mut serializer, &self.options)
        } else {
            let mut serializer = serde_json::Serializer::pretty(&mut text);
            message.serialize_with_options(&mut serializer, &self.options)
        };
        written.map_err(|e| Failure::call(format!("cannot write the response as JSON: {e}")))?;
        text.push(b'\n');
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&text)
            .and_then(|()| stdout.flush())
            .map_err(|e| Failure::call(format!("cannot write to stdout: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_name_colon_value() {
        assert_eq!(
            header("X-Token: abc:def").unwrap(),
            ("x-token".to_owned(), "abc:def".to_owned())
        );
        assert!(header("no colon").is_err());
        assert!(header(": empty name").is_err());
    }
}
