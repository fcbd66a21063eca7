//! rpcx's *broadcast* with a [`ParallelChannel`]: every call goes to all servers and succeeds
//! only if every server answers (`fail_limit(1)`). Starts three echo servers in-process,
//! broadcasts to them, then stops one and broadcasts again. `cargo run --bin broadcast`.

use std::time::Duration;

use brisk::combo::{typed_mapper, typed_merger, MergeResult, ParallelChannel, SubCall};
use brisk::{Controller, Server};
use brisk_examples::echo::{EchoRequest, EchoResponse, EchoServiceClient, EchoServiceServer};
use brisk_examples::{init_logging, Echo};

#[tokio::main]
async fn main() -> Result<(), brisk::Status> {
    init_logging();
    let mut servers = Vec::new();
    for _ in 0..3 {
        let server = Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .start("127.0.0.1:0")
            .await?;
        println!("echo server listening on {}", server.local_addr());
        servers.push(server);
    }

    // One sub-channel per server; any failure fails the call.
    let mut builder = ParallelChannel::builder()
        .timeout(Duration::from_millis(500))
        .fail_limit(1)
        // Each server gets its own greeting...
        .call_mapper(typed_mapper(|index, count, request: &EchoRequest| {
            SubCall::request(EchoRequest {
                message: format!("{} ({}/{count})", request.message, index + 1),
            })
        }))
        // ... and the answers are joined (protobuf's default merge would keep the last).
        .response_merger(typed_merger(
            |response: &mut EchoResponse, sub: EchoResponse| {
                response.message.push_str(" + ");
                response.message.push_str(&sub.message);
                MergeResult::Merged
            },
        ));
    for server in &servers {
        let channel = brisk::Channel::builder()
            .max_retry(0)
            .connect(&server.local_addr().to_string())
            .await?;
        builder = builder.add(channel);
    }
    let client = EchoServiceClient::new(builder.build().into());

    let mut cntl = Controller::new();
    let reply = client
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "hello".into(),
            },
        )
        .await?;
    println!("broadcast: {:?} in {:?}", reply.message, cntl.latency());
    report(&cntl);

    let stopped = servers.remove(1);
    println!("stopping {}", stopped.local_addr());
    stopped.shutdown().await;
    let mut cntl = Controller::new();
    match client
        .echo_with(
            &mut cntl,
            EchoRequest {
                message: "anyone?".into(),
            },
        )
        .await
    {
        Ok(reply) => println!("broadcast: unexpectedly answered {:?}", reply.message),
        Err(status) => println!("broadcast failed, as it must: {status}"),
    }
    report(&cntl);

    for server in servers {
        server.shutdown().await;
    }
    Ok(())
}

/// Prints what happened to each sub-call.
fn report(cntl: &Controller) {
    for i in 0..cntl.sub_count() {
        match cntl.sub(i) {
            Some(sub) if sub.failed() => println!("  sub-call {i}: failed: {}", sub.error_text()),
            Some(sub) => println!(
                "  sub-call {i}: answered by {} in {:?}",
                sub.remote_side()
                    .map_or_else(|| "?".to_owned(), |a| a.to_string()),
                sub.latency()
            ),
            None => println!("  sub-call {i}: skipped"),
        }
    }
}
