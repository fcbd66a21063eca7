// Wire names chosen by attribute, to serve or call a service defined in a `.proto`.
use brisk::codegen::Service as _;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Req {
    #[prost(int32, tag = "1")]
    pub n: i32,
}

#[brisk::service(package = "brpc.test.v1", name = "EchoService")]
pub trait MyEcho {
    #[rpc(name = "Echo")]
    async fn say(&self, request: Req) -> Result<Req, brisk::Status>;
    async fn get_user_info(&self, request: Req) -> Req;
    #[rpc(name = "type")]
    async fn r#type(&self, request: Req) -> Req;
}

struct E;

impl MyEcho for E {
    async fn say(&self, request: Req) -> Result<Req, brisk::Status> {
        Ok(request)
    }

    async fn get_user_info(&self, request: Req) -> Req {
        request
    }

    async fn r#type(&self, request: Req) -> Req {
        request
    }
}

fn main() {
    let server = MyEchoServer::new(E);
    assert_eq!(server.full_name(), "brpc.test.v1.EchoService");
    assert_eq!(server.method_names(), ["Echo", "GetUserInfo", "type"]);
    let _ = MyEchoClient::type_with;
}
