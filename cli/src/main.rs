//! `brisk`: call, list, describe and load RPC servers from the command line. See the crate
//! docs ([`brisk_cli`]) for the commands and exit codes.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use brisk_cli::{bench, call, list, press, replay, view, Failure};

/// Call, list, describe and load RPC servers: Brisk, brpc and gRPC alike.
#[derive(Debug, Parser)]
#[command(
    name = "brisk",
    version,
    after_help = "Exit codes: 0 success; 1 the call failed, or a load run had no successful \
                  call; 2 bad arguments, input or schema; 3 the server could not be reached or \
                  did not give its schema.\n\nThe schema comes from --proto FILE (parsed at run \
                  time, no protoc) or from the server by gRPC reflection."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Calls a method with JSON in and JSON out (grpcurl's call).
    ///
    /// Unary responses print as indented JSON; streamed ones one JSON object a line.
    #[command(
        after_help = "Examples:\n  brisk call 127.0.0.1:8000 example.EchoService/Echo \
                            '{\"message\": \"hi\"}'\n  brisk call 127.0.0.1:8000 \
                            example.EchoService/Echo --protocol baidu_std --proto \
                            echo.proto @requests.json"
    )]
    Call(call::Options),
    /// Lists the services a server hosts, or one service's methods.
    List(list::Options),
    /// Shows a service, method, message or enum as .proto source.
    Describe(list::Options),
    /// Load-tests a method at a given QPS, as brpc's rpc_press.
    ///
    /// A progress line goes to stderr each second, the summary to stdout at the end (or on
    /// Ctrl-C).
    Press(press::Options),
    /// Sends requests a server sampled (rpc_dump) to a server again, as brpc's rpc_replay.
    Replay(replay::Options),
    /// Benchmarks Brisk's echo service (echo_server): calls in flight over N connections.
    Bench(bench::Options),
    /// Shows a server's builtin pages on a local port, as brpc's rpc_view.
    View(view::Options),
    /// Prints a shell completion script: `brisk completions bash > /etc/bash_completion.d/brisk`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let threads = match &cli.command {
        Command::Bench(options) => options.threads,
        _ => None,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        runtime.worker_threads(threads as usize);
    }
    let runtime = runtime.enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(run(cli.command));
    // Without waiting for tasks that cannot end: a read of stdin blocks a thread until the
    // next line, which may never come once the call is over.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("brisk: {}", failure.message);
            ExitCode::from(failure.exit_code)
        }
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Call(options) => call::run(options).await,
        Command::List(options) => {
            let lines = list::list(&options).await?;
            print(&(lines.join("\n") + "\n"))
        }
        Command::Describe(options) => print(&list::describe(&options).await?),
        Command::Press(options) => {
            let report = press::run_until(options, ctrl_c()).await?;
            print(&report.to_string())?;
            if report.succeeded == 0 {
                return Err(Failure::call("no call succeeded"));
            }
            Ok(())
        }
        Command::Replay(options) => {
            let report = replay::run_until(options, ctrl_c()).await?;
            print(&report.to_string())?;
            if report.succeeded == 0 {
                return Err(Failure::call("no call succeeded"));
            }
            Ok(())
        }
        Command::Bench(options) => bench::run(&options)
            .await
            .map_err(|status| Failure::call(status.to_string())),
        Command::View(options) => view::run(options, ctrl_c()).await,
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "brisk", &mut out);
            print(&String::from_utf8_lossy(&out))
        }
    }
}

/// Completes on Ctrl-C (never, where the signal cannot be watched).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::call(format!("cannot write to stdout: {e}")))
}

/// Brisk's own warnings (a connection refused, a server gone) go to stderr; `BRISK_LOG=debug`
/// shows more.
fn init_logging() {
    let level = std::env::var("BRISK_LOG")
        .ok()
        .and_then(|level| level.parse().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::WARN);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
