// serde types need `codec = "json"`: the default codec carries protobuf (prost) messages.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub struct Ping {
    pub n: u32,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
pub struct Pong {
    pub n: u32,
}

#[brisk::service(package = "demo")]
pub trait Pinger {
    async fn ping(&self, request: Ping) -> Pong;
}

fn main() {}
