#[brisk::service]
pub struct S;

fn main() {}
