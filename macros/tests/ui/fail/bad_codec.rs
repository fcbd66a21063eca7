#[brisk::service(codec = "bincode")]
pub trait S {
    async fn echo(&self, request: String) -> String;
}

fn main() {}
