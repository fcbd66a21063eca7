//! Interceptors: the server's (brpc's `Interceptor`) see every request's method, peer,
//! metadata and identity before its handler runs, on every protocol, and refuse with brpc's
//! words, now or after waiting; the client's run around every call of a channel, adding
//! metadata, refusing, and observing results.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use brisk::interceptor::{Accept, ClientInterceptor, Interceptor, MethodName};
use brisk::{errno, Channel, Controller, MethodDescriptor, Server, ServerContext, Status};
use brisk_tests::interop::{InteropClient, InteropImpl, InteropServer, Msg};
use brisk_tests::test::{SleepRequest, TestServiceClient, TestServiceServer};
use brisk_tests::TestImpl;
use futures_util::StreamExt;

const HANG_GUARD: Duration = Duration::from_secs(20);

fn sleep(tag: &str) -> SleepRequest {
    SleepRequest {
        tag: tag.into(),
        millis: 0,
    }
}

async fn channel(server: &Server, protocol: &'static str) -> Channel {
    Channel::builder()
        .protocol(protocol)
        .timeout(HANG_GUARD)
        .max_retry(0)
        .connect(&server.local_addr().to_string())
        .await
        .expect("channel")
}

/// What the server's interceptor saw of each request.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl Seen {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Refuses requests whose `x-pass` metadata is not `yes`, recording the method and the peer's
/// address family of each.
struct PassCheck(Arc<Seen>);

impl Interceptor for PassCheck {
    fn accept(&self, cntl: &mut ServerContext, method: MethodName<'_>) -> Accept {
        self.0 .0.lock().unwrap().push(format!(
            "{method} from loopback={}",
            cntl.remote_side().ip().is_loopback()
        ));
        match cntl.user_fields().get("x-pass").map(String::as_str) {
            Some("yes") => Accept::ok(),
            _ => Accept::reject(Status::new(errno::EPERM, "no pass")),
        }
    }
}

/// A `TestService` server whose [`PassCheck`] records what it saw in the returned [`Seen`].
async fn pass_checked_server() -> (Server, Arc<Seen>) {
    let (service, _arrivals) = TestImpl::new();
    let seen = Arc::new(Seen::default());
    let server = Server::builder()
        .add_service(TestServiceServer::new(service))
        .interceptor(PassCheck(seen.clone()))
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    (server, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_interceptor_sees_and_refuses_on_every_protocol() {
    let (server, seen) = pass_checked_server().await;
    for protocol in ["baidu_std", "http", "h2:grpc"] {
        let client = TestServiceClient::new(channel(&server, protocol).await);
        let status = client.sleep(sleep("refused")).await.unwrap_err();
        assert_eq!(status.code(), errno::EPERM, "{protocol}: {status}");
        assert_eq!(
            status.message(),
            "Reject by Interceptor: no pass",
            "{protocol}: brpc's words"
        );

        let mut cntl = Controller::new();
        cntl.set_request_header("x-pass", "yes");
        let reply = client.sleep_with(&mut cntl, sleep("passed")).await;
        assert_eq!(reply.expect(protocol).tag, "passed");
        assert_eq!(
            seen.take(),
            ["brisk.test.TestService.Sleep from loopback=true"; 2],
            "{protocol}"
        );
    }
    // Protocols without metadata have no pass to show: always refused, in brpc's words.
    for protocol in ["hulu_pbrpc", "sofa_pbrpc"] {
        let client = TestServiceClient::new(channel(&server, protocol).await);
        let status = client.sleep(sleep("refused")).await.unwrap_err();
        assert_eq!(status.code(), errno::EPERM, "{protocol}: {status}");
        assert_eq!(
            status.message(),
            "Reject by Interceptor: no pass",
            "{protocol}"
        );
        assert_eq!(seen.take().len(), 1, "{protocol}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptors_run_in_order_wait_within_the_deadline_and_cover_streams() {
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let waits = Arc::new(tokio::sync::Semaphore::new(0));
    let first = {
        let order = order.clone();
        let waits = waits.clone();
        move |cntl: &mut ServerContext, method: MethodName<'_>| -> Accept {
            order
                .lock()
                .unwrap()
                .push(format!("first {}", method.method()));
            cntl.set_response_header("x-first", "seen");
            if cntl.user_fields().contains_key("x-wait") {
                let waits = waits.clone();
                return Accept::later(async move {
                    // Released by the test: the verdict comes from elsewhere, later.
                    waits.acquire().await.expect("open").forget();
                    Ok(())
                });
            }
            Accept::ok()
        }
    };
    struct Second(Arc<Mutex<Vec<String>>>);
    impl Interceptor for Second {
        fn accept(&self, cntl: &mut ServerContext, method: MethodName<'_>) -> Accept {
            self.0
                .lock()
                .unwrap()
                .push(format!("second {}", method.method()));
            match cntl.user_fields().get("x-refuse") {
                Some(text) => Accept::reject(Status::new(errno::EREQUEST, text.clone())),
                None => Accept::ok(),
            }
        }
    }
    let server = Server::builder()
        .add_service(InteropServer::new(InteropImpl))
        .interceptor(first)
        .interceptor(Second(order.clone()))
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    let client = InteropClient::new(channel(&server, "h2:grpc").await);
    let msg = |text: &str| Msg {
        text: text.into(),
        seq: 2,
        ..Msg::default()
    };

    // Both accept: the handler runs and sees what the first set.
    let mut cntl = Controller::new();
    let reply = client.unary_with(&mut cntl, msg("hi")).await.unwrap();
    assert_eq!(reply.text, "hi");
    assert_eq!(cntl.response_header("x-first"), Some("seen"));
    assert_eq!(*order.lock().unwrap(), ["first Unary", "second Unary"]);
    order.lock().unwrap().clear();

    // The second refuses: the first ran, the handler did not.
    let mut cntl = Controller::new();
    cntl.set_request_header("x-refuse", "not today");
    let status = client.unary_with(&mut cntl, msg("hi")).await.unwrap_err();
    assert_eq!(status.code(), errno::EREQUEST);
    assert_eq!(status.message(), "Reject by Interceptor: not today");
    assert_eq!(*order.lock().unwrap(), ["first Unary", "second Unary"]);
    order.lock().unwrap().clear();

    // The first waits: the second is asked only once it accepted.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move {
            let mut cntl = Controller::new();
            cntl.set_request_header("x-wait", "1");
            client.unary_with(&mut cntl, msg("waited")).await
        }
    });
    tokio::time::timeout(HANG_GUARD, async {
        while order.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first interceptor is asked");
    assert_eq!(*order.lock().unwrap(), ["first Unary"]);
    waits.add_permits(1);
    assert_eq!(waiting.await.unwrap().unwrap().text, "waited");
    assert_eq!(*order.lock().unwrap(), ["first Unary", "second Unary"]);
    order.lock().unwrap().clear();

    // A wait past the caller's deadline: ERPCTIMEDOUT, the handler never ran.
    let mut cntl = Controller::new();
    cntl.set_request_header("x-wait", "1");
    cntl.set_timeout(Duration::from_millis(100));
    let status = client.unary_with(&mut cntl, msg("late")).await.unwrap_err();
    assert_eq!(status.code(), errno::ERPCTIMEDOUT, "{status}");
    order.lock().unwrap().clear();

    // A stream is intercepted as it opens.
    let mut cntl = Controller::new();
    cntl.set_request_header("x-refuse", "no streams");
    let status = match client.server_stream_with(&mut cntl, msg("s")).await {
        Err(status) => status,
        Ok(mut stream) => match stream.next().await {
            Some(Err(status)) => status,
            other => panic!("the stream was refused, not {other:?}"),
        },
    };
    assert_eq!(status.message(), "Reject by Interceptor: no streams");
    assert_eq!(
        *order.lock().unwrap(),
        ["first ServerStream", "second ServerStream"]
    );
    let texts: Vec<String> = client
        .server_stream(msg("s"))
        .await
        .unwrap()
        .map(|m| m.unwrap().text)
        .collect()
        .await;
    assert_eq!(texts, ["s-0", "s-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_interceptor_is_einternal_and_the_server_goes_on() {
    let (service, _arrivals) = TestImpl::new();
    let server = Server::builder()
        .add_service(TestServiceServer::new(service))
        .interceptor(|cntl: &mut ServerContext, _: MethodName<'_>| {
            if cntl.user_fields().contains_key("x-panic") {
                panic!("interceptor asked to panic");
            }
            Ok(())
        })
        .start("127.0.0.1:0")
        .await
        .expect("server starts");
    for protocol in ["baidu_std", "http", "h2:grpc"] {
        let client = TestServiceClient::new(channel(&server, protocol).await);
        let mut cntl = Controller::new();
        cntl.set_request_header("x-panic", "1");
        let status = client
            .sleep_with(&mut cntl, sleep("boom"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), errno::EINTERNAL, "{protocol}: {status}");
        assert_eq!(
            client.sleep(sleep("after")).await.expect(protocol).tag,
            "after"
        );
    }
}

/// Adds `x-pass: yes` (unless told to refuse), and records the calls' ends.
struct Passer {
    name: &'static str,
    refuse: bool,
    log: Arc<Mutex<Vec<String>>>,
}

impl ClientInterceptor for Passer {
    fn before(&self, cntl: &mut Controller, method: &MethodDescriptor) -> Result<(), Status> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} before {method}", self.name));
        if self.refuse {
            return Err(Status::new(errno::EPERM, "the client says no"));
        }
        cntl.set_request_header("x-pass", "yes");
        Ok(())
    }

    fn after(&self, cntl: &Controller, _method: &MethodDescriptor) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} after code={}", self.name, cntl.error_code()));
    }
}

/// A client over `protocol` whose channel has two [`Passer`]s, "a" then "b" (which refuses
/// when `b_refuses`), logging to `log`.
async fn passers(
    server: &Server,
    protocol: &'static str,
    b_refuses: bool,
    log: &Arc<Mutex<Vec<String>>>,
) -> TestServiceClient {
    let passer = |name, refuse| Passer {
        name,
        refuse,
        log: log.clone(),
    };
    let channel = Channel::builder()
        .protocol(protocol)
        .timeout(HANG_GUARD)
        .interceptor(passer("a", false))
        .interceptor(passer("b", b_refuses))
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    TestServiceClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_interceptors_add_metadata_refuse_and_observe() {
    let (server, seen) = pass_checked_server().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    for protocol in ["baidu_std", "http", "h2:grpc"] {
        let client = passers(&server, protocol, false, &log).await;
        assert_eq!(client.sleep(sleep("ok")).await.expect(protocol).tag, "ok");
        assert_eq!(
            std::mem::take(&mut *log.lock().unwrap()),
            [
                "a before brisk.test.TestService/Sleep",
                "b before brisk.test.TestService/Sleep",
                "b after code=0",
                "a after code=0",
            ],
            "{protocol}"
        );
        assert_eq!(seen.take().len(), 1);
    }
    // Refused on the client: nothing sent, the call fails with the refusal, and only the
    // interceptors that let it go on see its end.
    let client = passers(&server, "baidu_std", true, &log).await;
    let mut cntl = Controller::new();
    let status = client.sleep_with(&mut cntl, sleep("no")).await.unwrap_err();
    assert_eq!(status.code(), errno::EPERM);
    assert_eq!(status.message(), "the client says no");
    assert_eq!(cntl.error_code(), errno::EPERM);
    assert_eq!(
        std::mem::take(&mut *log.lock().unwrap()),
        [
            "a before brisk.test.TestService/Sleep",
            "b before brisk.test.TestService/Sleep",
            "a after code=1",
        ]
    );
    assert!(seen.take().is_empty(), "nothing reached the server");
}
