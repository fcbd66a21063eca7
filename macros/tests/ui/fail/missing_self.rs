#[brisk::service(codec = "json")]
pub trait S {
    async fn echo(request: String) -> String;
    async fn ping() -> String;
}

fn main() {}
