//! rpcx's *forking* with a [`ParallelChannel`]: every call goes to all servers and the first
//! answer wins (`success_limit(1)`); the slower sub-calls are cancelled. Starts three echo
//! servers of different speeds in-process, forks calls to them, then stops the fastest.
//! `cargo run --bin forking`.

use std::time::{Duration, Instant};

use brisk::combo::ParallelChannel;
use brisk::{Controller, Server, ServerContext, Status};
use brisk_examples::echo::{
    EchoRequest, EchoResponse, EchoService, EchoServiceClient, EchoServiceServer,
};
use brisk_examples::init_logging;

/// An echo server that takes its time, and says who it is.
struct SlowEcho {
    name: &'static str,
    delay: Duration,
}

impl EchoService for SlowEcho {
    async fn echo(
        &self,
        _cntl: &mut ServerContext,
        request: EchoRequest,
    ) -> Result<EchoResponse, Status> {
        tokio::time::sleep(self.delay).await;
        Ok(EchoResponse {
            message: format!("{} from {}", request.message, self.name),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Status> {
    init_logging();
    let mut servers = Vec::new();
    for (name, millis) in [("tortoise", 300), ("hare", 10), ("snail", 600)] {
        let server = Server::builder()
            .add_service(EchoServiceServer::new(SlowEcho {
                name,
                delay: Duration::from_millis(millis),
            }))
            .start("127.0.0.1:0")
            .await?;
        println!("{name} ({millis} ms) listening on {}", server.local_addr());
        servers.push(server);
    }

    let mut builder = ParallelChannel::builder()
        .timeout(Duration::from_secs(1))
        .success_limit(1);
    for server in &servers {
        let channel = brisk::Channel::builder()
            .max_retry(0)
            .connect(&server.local_addr().to_string())
            .await?;
        builder = builder.add(channel);
    }
    let client = EchoServiceClient::new(builder.build().into());

    for round in 1..=2 {
        let started = Instant::now();
        let mut cntl = Controller::new();
        let reply = client
            .echo_with(
                &mut cntl,
                EchoRequest {
                    message: format!("fork #{round}"),
                },
            )
            .await?;
        println!(
            "forking: {:?} in {:?} (answered by {})",
            reply.message,
            started.elapsed(),
            cntl.remote_side()
                .map_or_else(|| "?".to_owned(), |a| a.to_string())
        );
        for i in 0..cntl.sub_count() {
            if let Some(sub) = cntl.sub(i) {
                let outcome = if sub.failed() {
                    sub.error_text()
                } else {
                    "won".to_owned()
                };
                println!("  sub-call {i}: {outcome} after {:?}", sub.latency());
            }
        }
        if round == 1 {
            let hare = servers.remove(1);
            println!("stopping the hare ({})", hare.local_addr());
            hare.shutdown().await;
        }
    }

    for server in servers {
        server.shutdown().await;
    }
    Ok(())
}
