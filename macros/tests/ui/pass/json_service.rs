// A service of serde types carried as JSON; no package, so the wire name is the trait's.
use brisk::codegen::Service as _;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Add {
    pub a: i64,
    pub b: i64,
}

#[brisk::service(codec = "json")]
pub trait Calculator {
    async fn add(&self, request: Add) -> Result<i64, brisk::Status>;
    async fn negate_all(&self, request: Vec<i64>) -> Result<Vec<i64>, brisk::Status>;
}

struct Calc;

impl Calculator for Calc {
    async fn add(&self, request: Add) -> Result<i64, brisk::Status> {
        Ok(request.a + request.b)
    }

    async fn negate_all(&self, request: Vec<i64>) -> Result<Vec<i64>, brisk::Status> {
        Ok(request.into_iter().map(|n| -n).collect())
    }
}

async fn call(client: CalculatorClient) -> Result<i64, brisk::Status> {
    let mut cntl = brisk::Controller::new();
    client.add_with(&mut cntl, Add { a: 1, b: 2 }).await
}

fn main() {
    let server = CalculatorServer::new(Calc);
    assert_eq!(server.full_name(), "Calculator");
    assert_eq!(server.method_names(), ["Add", "NegateAll"]);
    let _ = call;
    let _ = CalculatorBlockingClient::new;
}
