#[brisk::service(codec = "json")]
pub trait S {
    async fn shared(&self, cntl: &brisk::ServerContext, request: String) -> String;
    async fn only(&self, cntl: &mut brisk::ServerContext) -> String;
    async fn borrowed(&self, request: &String) -> String;
    async fn fails(&self, request: String) -> Result<String, std::io::Error>;
}

fn main() {}
