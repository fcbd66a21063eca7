#[brisk::service(codec = "json")]
pub trait S {
    async fn echo(&self, request: String) -> String {
        request
    }
}

fn main() {}
