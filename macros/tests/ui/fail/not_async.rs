#[brisk::service(codec = "json")]
pub trait S {
    fn echo(&self, request: String) -> String;
}

fn main() {}
