#[brisk::service]
pub trait S {
    // A stream of responses is returned as `ResponseStream`, not `Streaming`.
    async fn a(&self, request: u32) -> Result<brisk::Streaming<u32>, brisk::Status>;
    // A stream of requests is received as `Streaming`, not `ResponseStream`.
    async fn b(&self, requests: brisk::ResponseStream<u32>) -> u32;
    // `Streaming` only as the whole request type.
    async fn c(&self, requests: Vec<brisk::Streaming<u32>>) -> u32;
    // `ResponseStream` only as the whole response type.
    async fn d(&self, request: u32) -> Result<Option<brisk::ResponseStream<u32>>, brisk::Status>;
    // One message type.
    async fn e(&self, requests: brisk::Streaming) -> u32;
    async fn f(&self, request: u32) -> brisk::ResponseStream<u32, u32>;
    // Requests are received by value.
    async fn g(&self, requests: &mut brisk::Streaming<u32>) -> u32;
}

fn main() {}
