// A service of prost messages: the four generated items, with the codec and names a `.proto`
// service `example.EchoService` would have.
use brisk::codegen::Service as _;

#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    #[prost(string, tag = "1")]
    pub message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoResponse {
    #[prost(string, tag = "1")]
    pub message: String,
}

/// Echoes.
#[brisk::service(package = "example")]
pub trait EchoService {
    /// Sends the message back.
    async fn echo(&self, request: EchoRequest) -> Result<EchoResponse, brisk::Status>;
}

struct Echo;

impl EchoService for Echo {
    async fn echo(&self, request: EchoRequest) -> Result<EchoResponse, brisk::Status> {
        Ok(EchoResponse {
            message: request.message,
        })
    }
}

fn clients(channel: brisk::Channel) -> (EchoServiceClient, EchoServiceBlockingClient) {
    (
        EchoServiceClient::new(channel.clone()),
        EchoServiceBlockingClient::new(channel),
    )
}

fn main() {
    let server = EchoServiceServer::new(Echo);
    assert_eq!(server.full_name(), "example.EchoService");
    assert_eq!(server.method_names(), ["Echo"]);
    assert_eq!(EchoServiceServer::<Echo>::SERVICE_NAME, "example.EchoService");
    let _ = clients;
}
