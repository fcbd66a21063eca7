// Generated code compiles warning-free under `#![deny(warnings)]` when a program uses only part
// of it (here: the async client of each service, in a private module), as tonic's does: the
// code of a `.proto` file (the codegen snapshot) and of a `#[brisk::service]` trait.
#![deny(warnings)]

mod from_proto {
    include!("../../../../codegen/tests/snapshots/echo.rs");
}

mod from_trait {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ping {
        #[prost(string, tag = "1")]
        pub text: String,
    }

    #[brisk::service(package = "demo")]
    pub trait Pinger {
        async fn ping(&self, request: Ping) -> Result<Ping, brisk::Status>;
    }
}

async fn call(channel: brisk::Channel) -> Result<(), brisk::Status> {
    let echo = from_proto::EchoServiceClient::new(channel.clone());
    let reply = echo
        .echo(from_proto::EchoRequest {
            message: "hi".into(),
        })
        .await?;
    let pinger = from_trait::PingerClient::new(channel);
    let pong = pinger
        .ping(from_trait::Ping { text: reply.message })
        .await?;
    drop(pong.text);
    Ok(())
}

fn main() {
    let _ = call;
}
