// All four method kinds, with and without the server context; JSON messages.
use brisk::codegen::{MessageSchema, MethodKind, Service as _};
use brisk::{ResponseStream, ServerContext, Status, Streaming};

#[brisk::service(package = "demo", codec = "json")]
pub trait Streams {
    async fn unary(&self, request: u32) -> Result<u32, Status>;
    async fn watch(&self, request: u32) -> Result<brisk::ResponseStream<u32>, brisk::Status>;
    async fn sum(&self, cntl: &mut ServerContext, requests: Streaming<u32>) -> u64;
    async fn chat(&self, requests: brisk::Streaming<String>) -> ResponseStream<String>;
}

struct Impl;

impl Streams for Impl {
    async fn unary(&self, request: u32) -> Result<u32, Status> {
        Ok(request)
    }

    async fn watch(&self, request: u32) -> Result<ResponseStream<u32>, Status> {
        Ok(Box::pin(brisk::codegen::once(std::future::ready(Ok(request)))))
    }

    async fn sum(&self, _cntl: &mut ServerContext, mut requests: Streaming<u32>) -> u64 {
        let mut sum = 0;
        while let Ok(Some(n)) = requests.message().await {
            sum += u64::from(n);
        }
        sum
    }

    async fn chat(&self, requests: Streaming<String>) -> ResponseStream<String> {
        Box::pin(requests)
    }
}

async fn call(client: StreamsClient) -> Result<(), Status> {
    let mut replies: Streaming<u32> = client.watch(1).await?;
    let _: Option<u32> = replies.message().await?;
    let one = brisk::codegen::once(std::future::ready(2u32));
    let _: u64 = client.sum(one).await?;
    let mut cntl = brisk::Controller::new();
    let words = brisk::codegen::once(std::future::ready("hi".to_owned()));
    let _: Streaming<String> = client.chat_with(&mut cntl, words).await?;
    Ok(())
}

fn main() {
    let server = StreamsServer::new(Impl);
    assert_eq!(server.method_names(), ["Unary", "Watch", "Sum", "Chat"]);
    assert_eq!(
        server.method_kinds(),
        [
            MethodKind::Unary,
            MethodKind::ServerStreaming,
            MethodKind::ClientStreaming,
            MethodKind::BidiStreaming
        ]
    );
    assert_eq!(server.schema(), MessageSchema::Json);
    let _ = call;
    // The blocking client has the unary method only.
    let _ = StreamsBlockingClient::unary;
}
