#[brisk::service(codec = "json")]
pub trait S {
    async fn add(&self, (a, b): (i64, i64)) -> i64;
    async fn push(&self, mut list: Vec<i64>) -> Vec<i64>;
}

fn main() {}
