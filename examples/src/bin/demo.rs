//! Brisk in one run: starts the echo server on a free port, calls it with the async and the
//! blocking client (attachment, log id, timeout), prints replies and latencies, and stops the
//! server gracefully. `cargo run --release --bin demo`.

use std::time::Duration;

use brisk::{Controller, Server};
use brisk_examples::echo::{
    EchoRequest, EchoServiceBlockingClient, EchoServiceClient, EchoServiceServer,
};
use brisk_examples::{init_logging, Echo};

#[tokio::main]
async fn main() -> Result<(), brisk::Status> {
    init_logging();
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await?;
    let address = server.local_addr().to_string();
    println!("echo server listening on {address}");

    let channel = brisk::Channel::builder()
        .timeout(Duration::from_millis(500))
        .connect(&address)
        .await?;

    // Async client: a plain call, then one with per-call options.
    let client = EchoServiceClient::new(channel.clone());
    let reply = client
        .echo(EchoRequest {
            message: "hello from the async client".into(),
        })
        .await?;
    println!("async   : {:?}", reply.message);

    let mut cntl = Controller::new();
    cntl.set_log_id(42);
    cntl.set_timeout(Duration::from_millis(100));
    cntl.set_request_attachment(&b"attached bytes"[..]);
    let reply = client
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "with options".into(),
            },
        )
        .await?;
    println!(
        "async   : {:?} attachment={:?} log_id={} from {} in {:?}",
        reply.message,
        String::from_utf8_lossy(cntl.response_attachment()),
        cntl.log_id(),
        cntl.remote_side().expect("answered"),
        cntl.latency()
    );

    // Blocking client, from a plain thread outside the runtime.
    let blocking = EchoServiceBlockingClient::new(channel);
    let reply = tokio::task::spawn_blocking(move || -> Result<_, brisk::Status> {
        let mut cntl = Controller::new();
        cntl.set_log_id(7);
        cntl.set_timeout(Duration::from_millis(100));
        cntl.set_request_attachment(&b"blocking attachment"[..]);
        let reply = blocking.echo_with(
            &mut cntl,
            EchoRequest {
                message: "hello from the blocking client".into(),
            },
        )?;
        Ok((reply, cntl))
    })
    .await
    .expect("blocking task");
    let (reply, cntl) = reply?;
    println!(
        "blocking: {:?} attachment={:?} in {:?}",
        reply.message,
        String::from_utf8_lossy(cntl.response_attachment()),
        cntl.latency()
    );

    // A burst of concurrent calls over the one shared connection.
    let started = std::time::Instant::now();
    let calls = (0..1000).map(|i| {
        let client = client.clone();
        async move {
            client
                .echo(EchoRequest {
                    message: format!("call {i}"),
                })
                .await
        }
    });
    let mut set = tokio::task::JoinSet::new();
    for call in calls {
        set.spawn(call);
    }
    let mut ok = 0;
    while let Some(result) = set.join_next().await {
        if result.expect("task").is_ok() {
            ok += 1;
        }
    }
    println!(
        "burst   : {ok}/1000 concurrent calls answered in {:?}",
        started.elapsed()
    );

    println!("stopping the server gracefully");
    server.shutdown().await;
    println!("done");
    Ok(())
}
