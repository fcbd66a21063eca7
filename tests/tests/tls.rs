//! TLS (feature `tls`) end to end: certificates made at test time with rcgen, real servers on
//! loopback, Brisk channels and a rustls client driven directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use brisk::tls::rustls;
use brisk::tls::{ClientTlsOptions, ServerTlsOptions};
use brisk::{errno, Channel, Protocol, Server, Status};
use brisk_tests::echo::{EchoRequest, EchoServiceClient, EchoServiceServer};
use brisk_tests::pki::Pki;
use brisk_tests::Echo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound on anything that must not hang (never used to wait for something).
const HANG_GUARD: Duration = Duration::from_secs(20);

fn server_tls(pki: &Pki) -> ServerTlsOptions {
    ServerTlsOptions::from_pem(pki.server.cert_pem.clone(), pki.server.key_pem.clone())
}

async fn start(tls: Option<ServerTlsOptions>) -> Server {
    let mut builder = Server::builder().add_service(EchoServiceServer::new(Echo));
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    builder.start("127.0.0.1:0").await.expect("server starts")
}

/// A channel builder with timeouts generous enough for a loaded machine.
fn builder() -> brisk::ChannelBuilder {
    Channel::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
}

fn ca_options(pki: &Pki) -> ClientTlsOptions {
    ClientTlsOptions::from_ca_pem(&pki.ca_pem).expect("CA bundle")
}

async fn echo(channel: Channel, message: &str) -> Result<String, Status> {
    let client = EchoServiceClient::new(channel);
    let request = EchoRequest {
        message: message.to_owned(),
    };
    tokio::time::timeout(HANG_GUARD, client.echo(request))
        .await
        .expect("the call does not hang")
        .map(|reply| reply.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baidu_std_over_tls_with_a_ca_bundle() {
    let pki = Pki::new();
    // Forced, so a call that silently went out in plaintext would fail.
    let server = start(Some(server_tls(&pki).force(true))).await;
    let port = server.local_addr().port();

    // By name: the server name is the host, `localhost`.
    let by_name = builder()
        .tls(ca_options(&pki))
        .connect(&format!("localhost:{port}"))
        .await
        .unwrap();
    assert_eq!(by_name.options().protocol, Protocol::BAIDU_STD);
    assert_eq!(
        by_name.options().tls.as_ref().unwrap().server_name(),
        Some("localhost")
    );
    assert_eq!(echo(by_name.clone(), "by name").await.unwrap(), "by name");
    // Many calls share the connection.
    let messages: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    let calls = messages.iter().map(|m| echo(by_name.clone(), m));
    let replies = futures_util::future::join_all(calls).await;
    for (message, reply) in messages.iter().zip(replies) {
        assert_eq!(&reply.unwrap(), message);
    }

    // By IP: the certificate lists 127.0.0.1.
    let by_ip = builder()
        .tls(ca_options(&pki))
        .connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    assert_eq!(echo(by_ip, "by ip").await.unwrap(), "by ip");

    // A big message crosses many TLS records.
    let big = "x".repeat(3 << 20);
    let channel = builder()
        .tls(ca_options(&pki).with_server_name("localhost"))
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    assert_eq!(echo(channel, &big).await.unwrap().len(), big.len());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_tls_share_the_port() {
    let pki = Pki::new();
    let server = start(Some(server_tls(&pki))).await;
    let address = server.local_addr().to_string();
    let tls = builder()
        .tls(ca_options(&pki))
        .connect(&address)
        .await
        .unwrap();
    let plain = builder().connect(&address).await.unwrap();
    for round in 0..3 {
        assert_eq!(
            echo(tls.clone(), "tls").await.unwrap(),
            "tls",
            "round {round}"
        );
        assert_eq!(
            echo(plain.clone(), "plain").await.unwrap(),
            "plain",
            "round {round}"
        );
    }
    // The TLS channel really speaks TLS there: distrusting the certificate fails it.
    let distrusting = builder()
        .tls(ca_options(&Pki::new()))
        .connect(&address)
        .await
        .unwrap();
    assert_eq!(
        echo(distrusting, "x").await.unwrap_err().code(),
        errno::ESSL
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_tls_rejects_plaintext() {
    let pki = Pki::new();
    let server = start(Some(server_tls(&pki).force(true))).await;
    let address = server.local_addr().to_string();

    let tls = builder()
        .tls(ca_options(&pki))
        .connect(&address)
        .await
        .unwrap();
    assert_eq!(echo(tls, "tls").await.unwrap(), "tls");

    let plain = builder().max_retry(0).connect(&address).await.unwrap();
    let err = echo(plain, "plain").await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            errno::EEOF | errno::EFAILEDSOCKET | errno::ECONNRESET
        ),
        "{err}"
    );

    // Raw bytes: baidu_std and HTTP/1.1 openings both get the connection closed.
    for opening in [
        &b"PRPC\0\0\0\x10\0\0\0\x08"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(opening).await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(HANG_GUARD, stream.read(&mut buf))
            .await
            .expect("the server closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    server.shutdown().await;
}

/// Connects with rustls directly (blocking, on a thread of its own), asking for `sni` (`None`:
/// connect by IP, which sends no SNI), and returns the DER of the certificate the server showed.
async fn peer_certificate(pki: &Pki, port: u16, sni: Option<&str>) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pem_certs(&pki.ca_pem) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = sni.unwrap_or("127.0.0.1").to_owned();
    tokio::task::spawn_blocking(move || {
        let name = rustls::pki_types::ServerName::try_from(name).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(HANG_GUARD)).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).expect("handshake");
        }
        let der = conn.peer_certificates().expect("a certificate")[0].to_vec();
        // Say goodbye properly; the server may answer by closing.
        conn.send_close_notify();
        let _ = conn.complete_io(&mut tcp);
        der
    })
    .await
    .unwrap()
}

/// The certificates of a PEM text, as rustls wants them.
fn rustls_pem_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate() {
    let pki = Pki::new();
    let options = server_tls(&pki).sni_cert(
        ["other.test", "*.wild.test"],
        pki.other.cert_pem.clone(),
        pki.other.key_pem.clone(),
    );
    let server = start(Some(options)).await;
    let port = server.local_addr().port();
    assert_ne!(pki.server.cert_der, pki.other.cert_der);
    for (sni, expected, which) in [
        (Some("other.test"), &pki.other.cert_der, "other"),
        (Some("a.wild.test"), &pki.other.cert_der, "other (wildcard)"),
        (Some("localhost"), &pki.server.cert_der, "default"),
        (None, &pki.server.cert_der, "default (no SNI)"),
    ] {
        let got = peer_certificate(&pki, port, sni).await;
        assert!(
            &got == expected,
            "{sni:?} should get the {which} certificate"
        );
    }

    // A Brisk channel asking for other.test gets (and accepts) the other certificate.
    let channel = builder()
        .tls(ca_options(&pki).with_server_name("other.test"))
        .connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    assert_eq!(echo(channel, "sni").await.unwrap(), "sni");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_wrong_ca_fails_clearly() {
    let pki = Pki::new();
    let stranger = Pki::new(); // another CA, same names
    let server = start(Some(server_tls(&pki))).await;
    let channel = builder()
        .tls(ca_options(&stranger))
        .connect(&format!("localhost:{}", server.local_addr().port()))
        .await
        .unwrap();
    let started = Instant::now();
    let err = echo(channel, "x").await.unwrap_err();
    assert_eq!(err.code(), errno::ESSL, "{err}");
    assert!(err.message().contains("certificate"), "{err}");
    assert!(started.elapsed() < HANG_GUARD);

    // The right CA but a name the certificate does not list.
    let channel = builder()
        .tls(ca_options(&pki).with_server_name("nobody.test"))
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let err = echo(channel, "x").await.unwrap_err();
    assert_eq!(err.code(), errno::ESSL, "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_server_without_tls_fails_clearly() {
    let pki = Pki::new();
    let server = start(None).await;
    let channel = builder()
        .tls(ca_options(&pki))
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let err = echo(channel, "x").await.unwrap_err();
    assert_eq!(err.code(), errno::ESSL, "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_cut_off() {
    let pki = Pki::new();
    let options = server_tls(&pki).handshake_timeout(Duration::from_millis(300));
    let server = start(Some(options)).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    // The start of a ClientHello record (what tells TLS apart, as brpc: 0x16, a 0x03 version,
    // a length, then the ClientHello type 0x01), then nothing.
    stream
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(HANG_GUARD, stream.read(&mut buf))
        .await
        .expect("the server gives up on the handshake");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The server still serves TLS.
    let channel = builder()
        .tls(ca_options(&pki))
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    assert_eq!(echo(channel, "after").await.unwrap(), "after");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_fail_the_start() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let cases = [
        ServerTlsOptions::from_pem("not a pem", pki.server.key_pem.clone()),
        ServerTlsOptions::from_pem(pki.server.cert_pem.clone(), "not a pem"),
        // A key that is not the certificate's.
        ServerTlsOptions::from_pem(pki.server.cert_pem.clone(), stranger.server.key_pem.clone()),
        ServerTlsOptions::from_pem_files("/no/such/cert.pem", "/no/such/key.pem"),
        server_tls(&pki).sni_cert(["other.test"], "garbage", pki.other.key_pem.clone()),
    ];
    for (i, options) in cases.into_iter().enumerate() {
        let err = Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .tls(options)
            .start("127.0.0.1:0")
            .await
            .unwrap_err();
        assert_eq!(err.code(), errno::EINVAL, "case {i}: {err}");
        assert!(
            err.message().starts_with("TLS") || err.message().contains("Fail to read"),
            "case {i}: {err}"
        );
    }

    // Files work as well as strings.
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.crt");
    let key = dir.path().join("server.key");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&cert, &pki.server.cert_pem).unwrap();
    std::fs::write(&key, &pki.server.key_pem).unwrap();
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let server = start(Some(ServerTlsOptions::from_pem_files(&cert, &key))).await;
    let channel = builder()
        .tls(ClientTlsOptions::from_ca_file(&ca).unwrap())
        .connect(&format!("localhost:{}", server.local_addr().port()))
        .await
        .unwrap();
    assert_eq!(echo(channel, "files").await.unwrap(), "files");
    server.shutdown().await;
}

// HTTP and gRPC over TLS: these need the HTTP server and the http / h2:grpc clients.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_tls_with_an_https_address() {
    let pki = Pki::new();
    let server = start(Some(server_tls(&pki))).await;
    let channel = builder()
        .tls(ca_options(&pki))
        .connect(&format!("https://localhost:{}", server.local_addr().port()))
        .await
        .unwrap();
    assert_eq!(channel.options().protocol, Protocol::HTTP);
    assert_eq!(
        channel.options().tls.as_ref().unwrap().server_name(),
        Some("localhost")
    );
    assert_eq!(echo(channel.clone(), "https").await.unwrap(), "https");
    assert_eq!(echo(channel, "again").await.unwrap(), "again");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_named_by_an_https_url_uses_tls() {
    let pki = Pki::new();
    let server = start(Some(server_tls(&pki).force(true))).await;
    // `localhost` may resolve to ::1 too, where nothing listens: retries go to 127.0.0.1.
    let channel = builder()
        .max_retry(3)
        .tls(ca_options(&pki))
        .connect_cluster(
            &format!("https://localhost:{}", server.local_addr().port()),
            "rr",
        )
        .await
        .unwrap();
    assert_eq!(channel.options().protocol, Protocol::HTTP);
    assert_eq!(
        channel.options().tls.as_ref().unwrap().server_name(),
        Some("localhost"),
        "the URL's host is the name the certificate is checked against"
    );
    for message in ["cluster", "over", "https"] {
        assert_eq!(echo(channel.clone(), message).await.unwrap(), message);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_with_alpn_h2() {
    let pki = Pki::new();
    let server = start(Some(server_tls(&pki))).await;
    let channel = builder()
        .protocol(Protocol::GRPC)
        .tls(ca_options(&pki))
        .connect(&format!("localhost:{}", server.local_addr().port()))
        .await
        .unwrap();
    assert_eq!(echo(channel.clone(), "grpc").await.unwrap(), "grpc");
    assert_eq!(echo(channel, "again").await.unwrap(), "again");
    server.shutdown().await;
}

/// Runs curl (installed by the test command) with `args`; its stdout.
fn curl(args: &[&str]) -> String {
    let output = std::process::Command::new("curl")
        .args(args)
        .output()
        .expect("curl runs (the README's test command installs it)");
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_calls_json_over_tls_with_http1_and_h2() {
    let pki = Pki::new();
    let server = start(Some(server_tls(&pki).force(true))).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let url = format!(
        "https://localhost:{}/example.EchoService/Echo",
        server.local_addr().port()
    );
    let ca = ca.to_str().unwrap().to_owned();
    for version in ["--http1.1", "--http2"] {
        let (url, ca) = (url.clone(), ca.clone());
        let out = tokio::task::spawn_blocking(move || {
            curl(&[
                "-sS",
                version,
                "--cacert",
                &ca,
                "-d",
                r#"{"message":"over tls"}"#,
                "-w",
                " %{http_version}",
                &url,
            ])
        })
        .await
        .unwrap();
        let expected_version = if version == "--http2" { "2" } else { "1.1" };
        assert_eq!(
            out,
            format!(r#"{{"message":"over tls"}} {expected_version}"#),
            "{version}"
        );
    }
    server.shutdown().await;
}
