//! A redis server written with Brisk: `cargo run --release --bin redis_server -- --listen
//! 127.0.0.1:6380`, then `redis-cli -p 6380 set k v` or `redis-benchmark -p 6380 -t set,get`.
//! An in-memory key-value store (`brisk_examples::kv_store`: PING, AUTH, GET, SET, DEL, INCR,
//! MGET, EXPIRE, TTL) on a [`RedisService`](brisk::redis::RedisService), sharing its port with
//! the echo service (baidu_std, HTTP, gRPC), as brpc's `redis_server` example. `--password PW`
//! makes commands wait for `AUTH PW`. Runs until Ctrl-C (or SIGTERM), then stops gracefully.

use std::sync::Arc;

use brisk_examples::echo::EchoServiceServer;
use brisk_examples::kv_store::{self, KvStore};
use brisk_examples::{init_logging, Echo};

/// A redis server written with Brisk.
#[derive(Debug, clap::Parser)]
struct Options {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:6380")]
    listen: String,
    /// Commands wait for `AUTH` with this password.
    #[arg(long)]
    password: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let Options { listen, password } = clap::Parser::parse();
    init_logging();
    let service = kv_store::service(Arc::new(KvStore::new()), password);
    let server = brisk::Server::builder()
        .redis_service(service)
        .add_service(EchoServiceServer::new(Echo));
    match server.serve(&listen).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("redis_server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
