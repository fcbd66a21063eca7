#[brisk::service(codec = "json")]
pub trait S {
    async fn add(&self, a: i64, b: i64) -> i64;
    async fn add3(&self, cntl: &mut brisk::ServerContext, a: i64, b: i64) -> i64;
}

fn main() {}
