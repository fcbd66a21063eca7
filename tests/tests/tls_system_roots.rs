//! `ClientTlsOptions::system_roots`: the operating system's trust store, here the bundle that
//! `SSL_CERT_FILE` names (honoured on Linux as OpenSSL and curl honour it).
//!
//! Its own test binary with one test, because it sets an environment variable: nothing else
//! runs (or reads the environment) in this process while it does.

use std::time::Duration;

use brisk::tls::{ClientTlsOptions, ServerTlsOptions};
use brisk::{errno, Channel, Server};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::pki::Pki;
use brisk_tests::Echo;

#[test]
fn system_roots_come_from_the_operating_systems_store() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &pki.ca_pem).unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();

    // A store with nothing usable is a clear error, not a channel that fails every call.
    // This binary's only test, and no other thread exists yet.
    std::env::set_var("SSL_CERT_FILE", &empty);
    std::env::set_var("SSL_CERT_DIR", dir.path().join("no-such-dir"));
    let err = ClientTlsOptions::system_roots().unwrap_err();
    assert_eq!(err.code(), errno::EINVAL, "{err}");
    assert!(err.message().contains("system trust store"), "{err}");

    std::env::set_var("SSL_CERT_FILE", &bundle);
    let trusted = ClientTlsOptions::system_roots().expect("the test CA is the system's store");
    assert!(format!("{trusted:?}").contains("system trust store of 1 certificates"));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .tls(
                ServerTlsOptions::from_pem(pki.server.cert_pem.clone(), pki.server.key_pem.clone())
                    .force(true),
            )
            .start("127.0.0.1:0")
            .await
            .unwrap();
        let port = server.local_addr().port();
        let call = |options: ClientTlsOptions| async move {
            let channel = Channel::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .tls(options)
                .connect(&format!("localhost:{port}"))
                .await?;
            let request = EchoRequest {
                message: "system".to_owned(),
            };
            EchoServiceClient::new(channel).echo(request).await
        };
        let reply = call(trusted)
            .await
            .expect("the system store trusts the server");
        assert_eq!(reply.message, "system");
        // The Mozilla roots do not hold the test CA: the same server is refused.
        let err = call(ClientTlsOptions::new()).await.unwrap_err();
        assert_eq!(err.code(), errno::ESSL, "{err}");
        server.shutdown().await;
    });
}
