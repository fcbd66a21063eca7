#[brisk::service(codec = "json")]
pub trait S {
    async fn echo(&mut self, request: String) -> String;
    async fn owned(self, request: String) -> String;
}

fn main() {}
