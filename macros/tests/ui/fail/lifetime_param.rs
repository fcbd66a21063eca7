#[brisk::service(codec = "json")]
pub trait S {
    async fn echo<'a>(&self, request: &'a str) -> String;
}

fn main() {}
