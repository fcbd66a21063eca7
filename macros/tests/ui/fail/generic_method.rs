#[brisk::service(codec = "json")]
pub trait S {
    async fn echo<T>(&self, request: T) -> String;
    async fn bounded(&self, request: String) -> String
    where
        Self: Sized;
}

fn main() {}
