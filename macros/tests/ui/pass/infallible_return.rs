// A plain return type is an infallible handler; no return type is `()`. Private traits give
// private items, and the trait may live inside a function.
fn main() {
    #[brisk::service(codec = "json")]
    trait Counter {
        async fn count(&self, request: String) -> usize;
        async fn forget(&self, request: String);
    }

    struct C;

    impl Counter for C {
        async fn count(&self, request: String) -> usize {
            request.len()
        }

        async fn forget(&self, _request: String) {}
    }

    let _ = CounterServer::new(C);
    let _ = CounterClient::new;
}
