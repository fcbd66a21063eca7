#[brisk::service(codec = "json")]
pub trait S: Clone {
    type Request;
    const LIMIT: usize;
    async fn echo(&self, request: String) -> String;
}

fn main() {}
