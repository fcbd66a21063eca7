//! A protocol of your own, as brpc users add theirs: `tiny` ([`brisk_examples::tiny`], one
//! file) is registered with Brisk, and then an ordinary server answers it on the same port as
//! baidu_std, and an ordinary channel speaks it — the echo service and its generated client
//! unchanged. `cargo run --release --bin custom_protocol`.

use std::time::Duration;

use brisk::{errno, Channel, Server};
use brisk_examples::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_examples::{init_logging, tiny, Echo};

#[tokio::main]
async fn main() -> Result<(), brisk::Status> {
    init_logging();
    // Both halves, once per process: channels select `tiny` by name; servers started from
    // now on detect it by its magic.
    tiny::register();
    let server = Server::builder()
        .add_service(EchoServiceServer::new(Echo))
        .start("127.0.0.1:0")
        .await?;
    let address = server.local_addr().to_string();
    println!("echo server on {address}, answering tiny and baidu_std");

    let channel = Channel::builder()
        .protocol(tiny::NAME)
        .timeout(Duration::from_secs(2))
        .connect(&address)
        .await?;
    let client = EchoServiceClient::new(channel);
    let reply = client.echo(request("hello over tiny")).await?;
    println!("tiny     : {:?}", reply.message);

    // Many calls at once on one connection: tiny has no correlation id, so the server answers
    // in request order and each call still gets its own reply.
    let calls = (0..100).map(|i| {
        let client = client.clone();
        async move { (i, client.echo(request(&format!("call {i}"))).await) }
    });
    let mut answered = 0;
    for (i, reply) in futures_util::future::join_all(calls).await {
        let reply = reply?;
        if reply.message != format!("call {i}") {
            return Err(brisk::Status::internal(format!(
                "call {i} got `{}`",
                reply.message
            )));
        }
        answered += 1;
    }
    println!("tiny     : {answered} concurrent calls, each answered with its own message");

    // Errors travel as tiny's status codes.
    let method = brisk::MethodDescriptor::new("example.EchoService", "NoSuchMethod");
    let mut cntl = brisk::Controller::new();
    let err = client
        .channel()
        .unary::<brisk::codegen::Prost, EchoRequest, brisk_examples::echo::EchoResponse>(
            &method,
            &mut cntl,
            &request("lost"),
        )
        .await
        .expect_err("no such method");
    assert_eq!(err.code(), errno::ENOMETHOD);
    println!(
        "tiny     : unknown method -> [E{}]{}",
        err.code(),
        err.message()
    );

    // The same port still speaks baidu_std.
    let baidu = EchoServiceClient::new(Channel::connect(&address).await?);
    let reply = baidu.echo(request("hello over baidu_std")).await?;
    println!("baidu_std: {:?}", reply.message);

    server.shutdown().await;
    println!("stopped");
    Ok(())
}

fn request(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.into(),
    }
}
