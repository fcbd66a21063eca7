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

/// brpc's `redis_cli`: commands through Brisk's redis client.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The redis server.
    #[arg(long, default_value = "127.0.0.1:6379")]
    server: String,
    /// A command, e.g. `set k v` (repeatable: pipelined in order).
    #[arg(long, required = true)]
    command: Vec<String>,
    /// Authenticates with this password (AUTH).
    #[arg(long)]
    password: Option<String>,
    /// The user to authenticate as (with --password).
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Selects this database (SELECT).
    #[arg(long)]
    db: Option<u32>,
    /// single, pooled or short.
    #[arg(long = "connection-type", default_value = "single")]
    connection_type: ConnectionType,
    /// Deadline in milliseconds.
    #[arg(long = "timeout-ms", default_value_t = 1000)]
    timeout_ms: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options: Options = clap::Parser::parse();
    brisk_examples::init_logging();
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_cli: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let mut request = RedisRequest::new();
    for command in &options.command {
        request
            .add_command_str(command)
            .map_err(|e| format!("`{command}`: {}", e.message()))?;
    }
    let mut builder = Channel::builder()
        .protocol("redis")
        .connection_type(options.connection_type)
        .timeout(Duration::from_millis(options.timeout_ms));
    if options.password.is_some() || options.db.is_some() {
        let mut auth = match &options.password {
            Some(password) => RedisAuthenticator::new(password.as_str()),
            None => RedisAuthenticator::without_password(),
        };
        if let Some(user) = &options.user {
            auth = auth.with_user(user.as_str());
        }
        if let Some(db) = options.db {
            auth = auth.with_db(db);
        }
        builder = builder.authenticator(Arc::new(auth));
    }
    let server = options.server;
    let channel = builder.connect(&server).await.map_err(|e| e.to_string())?;
    let response = channel
        .redis(&mut Controller::new(), &request)
        .await
        .map_err(|e| format!("Fail to access redis, {e}"))?;
    println!("{response}");
    Ok(())
}
