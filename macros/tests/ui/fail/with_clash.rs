#[brisk::service(codec = "json")]
pub trait S {
    async fn echo(&self, request: String) -> String;
    #[rpc(name = "EchoWithOptions")]
    async fn echo_with(&self, request: String) -> String;
    async fn new(&self, request: String) -> String;
}

fn main() {}
