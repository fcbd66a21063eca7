#[brisk::service(codec = "json", version = "2")]
pub trait S {
    #[rpc(name = "Echo", timeout = 5)]
    async fn echo(&self, request: String) -> String;
    #[inline]
    async fn ping(&self, request: String) -> String;
}

fn main() {}
