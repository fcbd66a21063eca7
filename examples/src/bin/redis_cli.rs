//! brpc's `redis_cli` in Brisk: sends redis commands through a `Channel` of protocol `redis`
//! and prints the replies as brpc prints them (`OK`, `"hello"`, `(integer) 1`, `(nil)`,
//! `(error) ...`, `[a, b]` for several).
//!
//! ```sh
//! cargo run --release --bin redis_cli -- --server 127.0.0.1:6379 --command "SET greeting 'hello world'"
//! cargo run --release --bin redis_cli -- --server 127.0.0.1:6379 --password secret --db 2 \
//!     --command "INCR hits" --command "GET hits"
//! ```
//!
//! Each `--command` is split on spaces as brpc's `AddCommand` splits it (quotes keep spaces);
//! all of them go in one request, pipelined, and their replies print on one line.
//! `--password`/`--db` set up a `RedisAuthenticator` (`AUTH` and `SELECT` once per connection).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use brisk::redis::{RedisAuthenticator, RedisRequest};
use brisk::{Channel, ConnectionType, Controller};
use brisk_examples::Args;

const OPTIONS: &[&str] = &[
    "server",
    "command",
    "password",
    "user",
    "db",
    "connection-type",
    "timeout-ms",
];
const USAGE: &str = "usage: redis_cli [--server HOST:PORT] --command CMD [--command CMD ...] \
                     [--password PW [--user NAME]] [--db N] [--connection-type single|pooled|short] \
                     [--timeout-ms MS]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    brisk_examples::init_logging();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_cli: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = Args::parse(&[], OPTIONS).map_err(|e| format!("{e}\n{USAGE}"))?;
    let mut request = RedisRequest::new();
    for command in args.get_all("command") {
        request
            .add_command_str(command)
            .map_err(|e| format!("`{command}`: {}", e.message()))?;
    }
    if request.is_empty() {
        return Err(format!("no command\n{USAGE}"));
    }
    let connection_type: ConnectionType = args
        .get_or("connection-type", "single")
        .parse()
        .map_err(|e: brisk::Error| e.message().to_owned())?;
    let mut builder = Channel::builder()
        .protocol("redis")
        .connection_type(connection_type)
        .timeout(Duration::from_millis(args.parse_or("timeout-ms", 1000)?));
    if args.get("password").is_some() || args.get("db").is_some() {
        let mut auth = match args.get("password") {
            Some(password) => RedisAuthenticator::new(password),
            None => RedisAuthenticator::without_password(),
        };
        if let Some(user) = args.get("user") {
            auth = auth.with_user(user);
        }
        if let Some(db) = args.get("db") {
            auth = auth.with_db(
                db.parse()
                    .map_err(|_| format!("--db: `{db}` is not a number"))?,
            );
        }
        builder = builder.authenticator(Arc::new(auth));
    }
    let server = args.get_or("server", "127.0.0.1:6379");
    let channel = builder.connect(&server).await.map_err(|e| e.to_string())?;
    let response = channel
        .redis(&mut Controller::new(), &request)
        .await
        .map_err(|e| format!("Fail to access redis, {e}"))?;
    println!("{response}");
    Ok(())
}
