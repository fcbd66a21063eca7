#[brisk::service(codec = "json")]
pub trait S {
    async fn echo(&self, request: impl Into<String>) -> String;
}

fn main() {}
