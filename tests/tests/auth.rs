//! Authentication on baidu_std, as brpc: the client's credential is verified once per
//! connection, handlers see who the client is, and a bad credential gets ERPCAUTH and a closed
//! connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brisk::protocol::baidu_std::request_meta;
use brisk::{errno, AuthContext, Authenticator, ServerContext, Status};
use brisk_tests::raw::{frame_bytes, read_frame};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous, only so a broken build fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `user:password` credentials; the server knows one password, and counts verifications.
#[derive(Debug, Default)]
struct Password {
    credential: String,
    verified: AtomicUsize,
}

impl Password {
    fn client(credential: &str) -> Arc<Password> {
        Arc::new(Password {
            credential: credential.to_owned(),
            ..Password::default()
        })
    }
}

impl Authenticator for Password {
    fn generate_credential(&self) -> Result<String, Status> {
        Ok(self.credential.clone())
    }

    fn verify_credential(
        &self,
        credential: &str,
        _client: SocketAddr,
    ) -> Result<AuthContext, Status> {
        self.verified.fetch_add(1, Ordering::SeqCst);
        match credential.split_once(':') {
            Some((user, "open sesame")) => Ok(AuthContext {
                user: user.to_owned(),
                group: "staff".to_owned(),
                ..AuthContext::default()
            }),
            _ => Err(Status::new(errno::ERPCAUTH, "wrong password")),
        }
    }
}

/// Tells callers who the server thinks they are.
#[brisk::service(package = "brisk.auth", codec = "json")]
pub trait WhoAmI {
    /// The verified user and group, or "nobody".
    async fn who(&self, cntl: &mut ServerContext, request: ()) -> String;
}

struct WhoAmIImpl;

impl WhoAmI for WhoAmIImpl {
    async fn who(&self, cntl: &mut ServerContext, _request: ()) -> String {
        match cntl.auth_context() {
            Some(who) => format!("{}/{}", who.user, who.group),
            None => "nobody".to_owned(),
        }
    }
}

async fn server(auth: Arc<Password>) -> brisk::Server {
    brisk::Server::builder()
        .add_service(WhoAmIServer::new(WhoAmIImpl))
        .authenticator(auth)
        .start("127.0.0.1:0")
        .await
        .expect("server starts")
}

async fn client(server: &brisk::Server, auth: Option<Arc<Password>>) -> WhoAmIClient {
    let mut builder = brisk::Channel::builder()
        .timeout(TIMEOUT)
        .max_retry(0)
        // Each test gets connections of its own.
        .connection_group(format!("auth-{:?}", std::thread::current().id()));
    if let Some(auth) = auth {
        builder = builder.authenticator(auth);
    }
    WhoAmIClient::new(
        builder
            .connect(&server.local_addr().to_string())
            .await
            .expect("channel"),
    )
}

#[tokio::test]
async fn a_good_credential_is_verified_once_and_handlers_see_the_identity() {
    let verifier = Password::client("");
    let server = server(Arc::clone(&verifier)).await;
    let client = client(&server, Some(Password::client("alice:open sesame"))).await;
    // Many calls at once on a fresh connection: whichever reaches the server first carries
    // the credential.
    let calls: Vec<_> = (0..20).map(|_| client.who(())).collect();
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.expect("call succeeds"), "alice/staff");
    }
    assert_eq!(client.who(()).await.unwrap(), "alice/staff");
    assert_eq!(
        verifier.verified.load(Ordering::SeqCst),
        1,
        "once per connection"
    );
}

#[tokio::test]
async fn a_bad_credential_gets_erpcauth() {
    let server = server(Password::client("")).await;
    let client = client(&server, Some(Password::client("mallory:guess"))).await;
    let err = client.who(()).await.unwrap_err();
    assert_eq!(err.code(), errno::ERPCAUTH, "{err}");
    assert!(err.message().contains("wrong password"), "{err}");
    // The connection was closed: once the channel connects again, the next call fails the
    // same way (with retries, since it may first be sent on the closing connection). Until
    // the health check has connected again, a call may be answered EHOSTDOWN at once, as
    // brpc's single-server channel answers after its connection broke.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let err = loop {
        let mut cntl = brisk::Controller::new();
        cntl.set_max_retry(3);
        let err = client.who_with(&mut cntl, ()).await.unwrap_err();
        if err.code() != errno::EHOSTDOWN || std::time::Instant::now() >= deadline {
            break err;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(err.code(), errno::ERPCAUTH, "{err}");
}

#[tokio::test]
async fn no_credential_gets_erpcauth() {
    let server = server(Password::client("")).await;
    let client = client(&server, None).await;
    let err = client.who(()).await.unwrap_err();
    assert_eq!(err.code(), errno::ERPCAUTH, "{err}");
}

#[tokio::test]
async fn the_server_answers_erpcauth_then_closes_the_connection() {
    let server = server(Password::client("")).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut meta = request_meta("brisk.auth.WhoAmI", "Who", 0, 77, 0, 0, 0);
    meta.authentication_data = Some(bytes::Bytes::from_static(b"eve:nope"));
    let request = frame_bytes(&meta, b"null", b"");
    stream.write_all(&request).await.unwrap();
    // A second request right behind it is never answered.
    let mut second = request_meta("brisk.auth.WhoAmI", "Who", 0, 78, 0, 0, 0);
    second.authentication_data = None;
    stream
        .write_all(&frame_bytes(&second, b"null", b""))
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let reply = tokio::time::timeout(TIMEOUT, read_frame(&mut stream, &mut buf))
        .await
        .expect("reply");
    assert_eq!(reply.meta.correlation_id, Some(77));
    let response = reply.meta.response.expect("response meta");
    assert_eq!(response.error_code, Some(errno::ERPCAUTH));
    // brpc's words (baidu_rpc_protocol.cpp, VerifyRpcRequest), without the `[address][E1004]`
    // prefix its other errors carry, then the authenticator's reason.
    let text = response.error_text.as_deref().unwrap_or_default();
    assert!(text.starts_with("Fail to authenticate: "), "{text}");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection");
    assert!(
        read.is_ok() && buf.is_empty() && rest.is_empty(),
        "{rest:?}"
    );
}
