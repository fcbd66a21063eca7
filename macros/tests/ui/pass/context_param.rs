// Methods may take the server context before the request, under any path to it.
use brisk::ServerContext;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Ping;

#[brisk::service(codec = "json")]
pub trait Pinger {
    async fn ping(&self, cntl: &mut brisk::ServerContext, request: Ping) -> Result<Ping, brisk::Status>;
    async fn pong(&self, _: &mut ServerContext, _: Ping) -> Ping;
}

struct P;

impl Pinger for P {
    async fn ping(&self, cntl: &mut brisk::ServerContext, request: Ping) -> Result<Ping, brisk::Status> {
        let attachment = cntl.request_attachment().clone();
        cntl.set_response_attachment(attachment);
        Ok(request)
    }

    async fn pong(&self, _: &mut ServerContext, request: Ping) -> Ping {
        request
    }
}

fn main() {
    let _ = PingerServer::new(P);
}
