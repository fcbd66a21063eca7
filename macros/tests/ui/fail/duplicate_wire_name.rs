#[brisk::service(codec = "json")]
pub trait S {
    async fn echo(&self, request: String) -> String;
    #[rpc(name = "Echo")]
    async fn echo_again(&self, request: String) -> String;
}

fn main() {}
