//! TLS with rustls (feature `tls`): server certificates (with SNI), client roots and server
//! names.
//!
//! A server given [`ServerTlsOptions`] ([`ServerBuilder::tls`](crate::ServerBuilder::tls))
//! serves TLS and plaintext on the same port, as brpc does: a connection whose first byte is a
//! TLS handshake record is decrypted, and the protocol inside (baidu_std, HTTP/1.1, HTTP/2,
//! gRPC) is detected as on a plain connection. [`ServerTlsOptions::force`] closes plaintext
//! connections instead.
//!
//! A channel given [`ClientTlsOptions`] ([`ChannelBuilder::tls`](crate::ChannelBuilder::tls))
//! wraps every connection in TLS; `https://host:port` does the same with default options
//! (the Mozilla roots; [`ClientTlsOptions::system_roots`] trusts the operating system's store).
//!
//! ```no_run
//! # async fn demo(service: impl brisk::Service) -> Result<(), brisk::Error> {
//! use brisk::tls::{ClientTlsOptions, ServerTlsOptions};
//! let server = brisk::Server::builder()
//!     .add_service(service)
//!     .tls(
//!         ServerTlsOptions::from_pem_files("server.crt", "server.key")
//!             .sni_cert_files(["*.example.com"], "example.crt", "example.key"),
//!     )
//!     .start("0.0.0.0:8443")
//!     .await?;
//! let channel = brisk::Channel::builder()
//!     .tls(ClientTlsOptions::from_ca_file("ca.crt")?.with_server_name("localhost"))
//!     .connect("127.0.0.1:8443")
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Cryptography is rustls's `ring` provider; TLS 1.2 and 1.3 are accepted.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{errno, Error, ErrorKind, Status};

/// The rustls Brisk is built with, for [`ClientTlsOptions::from_config`] and for tests that
/// drive a TLS client of their own.
pub use rustls;

/// How long a server waits for a client's TLS handshake by default.
const DEFAULT_SERVER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client waits for a server's TLS handshake by default.
const DEFAULT_CLIENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The ALPN protocols a server offers by default, in its order of preference.
const DEFAULT_SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto provider every Brisk TLS config uses (explicit, so no process-wide default is
/// needed).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

fn invalid(message: impl Into<String>) -> Status {
    Status::new(errno::EINVAL, message)
}

/// TLS material that cannot be used, as a set-up error.
fn tls_error(status: Status) -> Error {
    Error::new(ErrorKind::Tls, status.message())
}

// ---------------------------------------------------------------------------------------------
// PEM sources and parsing
// ---------------------------------------------------------------------------------------------

/// PEM text given inline or a file to read it from.
#[derive(Clone)]
enum Pem {
    Text(Arc<str>),
    File(PathBuf),
}

impl fmt::Debug for Pem {
    // Never prints the text: it may be a private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::Text(text) => write!(f, "<inline PEM, {} bytes>", text.len()),
            Pem::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Pem {
    /// The PEM bytes (reading the file, if it is one).
    fn load(&self) -> Result<Vec<u8>, Status> {
        match self {
            Pem::Text(text) => Ok(text.as_bytes().to_vec()),
            Pem::File(path) => std::fs::read(path)
                .map_err(|e| invalid(format!("Fail to read `{}`: {e}", path.display()))),
        }
    }
}

/// Every certificate in `pem`, in order; an error if there is none or one is malformed.
fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("malformed PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the PEM".to_owned());
    }
    Ok(certs)
}

/// The first private key in `pem` (PKCS#8, PKCS#1 or SEC1).
fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    match rustls_pemfile::private_key(&mut &pem[..]) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err("no PRIVATE KEY block in the PEM".to_owned()),
        Err(e) => Err(format!("malformed PEM: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// A certificate chain and its private key.
#[derive(Clone, Debug)]
struct CertSource {
    chain: Pem,
    key: Pem,
}

impl CertSource {
    /// Parses the chain and the key and checks that they belong together.
    fn load(&self, what: &str) -> Result<Arc<CertifiedKey>, Status> {
        let chain = parse_certs(&self.chain.load()?).map_err(|e| {
            invalid(format!(
                "TLS {what}: bad certificate chain {:?}: {e}",
                self.chain
            ))
        })?;
        let key = parse_key(&self.key.load()?)
            .map_err(|e| invalid(format!("TLS {what}: bad private key {:?}: {e}", self.key)))?;
        CertifiedKey::from_der(chain, key, &provider())
            .map(Arc::new)
            .map_err(|e| {
                invalid(format!(
                    "TLS {what}: unusable certificate {:?} with key {:?}: {e}",
                    self.chain, self.key
                ))
            })
    }
}

/// A certificate served to clients asking (by SNI) for one of `names`.
#[derive(Clone, Debug)]
struct SniCert {
    names: Vec<String>,
    cert: CertSource,
}

/// The TLS side of a [`Server`](crate::Server): its certificates, whether plaintext is still
/// accepted, and the handshake limits. Set it with
/// [`ServerBuilder::tls`](crate::ServerBuilder::tls).
///
/// - A **default certificate** (PEM chain, leaf first, and PEM private key) answers clients
///   that send no server name (SNI) or a name no other certificate serves.
/// - **SNI certificates** ([`sni_cert`](ServerTlsOptions::sni_cert)) answer clients asking for
///   one of their names: exact (`api.example.com`) or one-level wildcards (`*.example.com`
///   matches `a.example.com`, not `example.com` nor `a.b.example.com`). Exact names win.
/// - **ALPN**: the server offers `h2` and `http/1.1` (in that order of preference); a client
///   choosing `h2` speaks HTTP/2 (gRPC) at once, anything else is detected from its first
///   bytes, so baidu_std clients need no ALPN.
///
/// Nothing is read or parsed until [`ServerBuilder::start`](crate::ServerBuilder::start),
/// which fails with [`errno::EINVAL`] if a file is missing, a PEM is malformed, or a key does
/// not match its certificate.
///
/// ```
/// use brisk::tls::ServerTlsOptions;
/// let options = ServerTlsOptions::from_pem_files("server.crt", "server.key")
///     .sni_cert_files(["*.example.com", "example.com"], "example.crt", "example.key")
///     .force(true);
/// assert!(options.is_forced());
/// ```
#[derive(Clone)]
pub struct ServerTlsOptions {
    default_cert: CertSource,
    sni_certs: Vec<SniCert>,
    force: bool,
    handshake_timeout: Duration,
    alpn: Vec<Vec<u8>>,
    /// Built by [`prepare`](ServerTlsOptions::prepare) when the server starts.
    acceptor: Option<TlsAcceptor>,
}

impl fmt::Debug for ServerTlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsOptions")
            .field("default_cert", &self.default_cert)
            .field("sni_certs", &self.sni_certs)
            .field("force", &self.force)
            .field("handshake_timeout", &self.handshake_timeout)
            .field(
                "alpn",
                &self
                    .alpn
                    .iter()
                    .map(|p| String::from_utf8_lossy(p))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ServerTlsOptions {
    fn with_default(default_cert: CertSource) -> Self {
        ServerTlsOptions {
            default_cert,
            sni_certs: Vec::new(),
            force: false,
            handshake_timeout: DEFAULT_SERVER_HANDSHAKE_TIMEOUT,
            alpn: DEFAULT_SERVER_ALPN.iter().map(|p| p.to_vec()).collect(),
            acceptor: None,
        }
    }

    /// Options whose default certificate is `cert_chain_pem` (the server's certificate first,
    /// then intermediates) with the private key `key_pem` (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_chain_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        Self::with_default(CertSource {
            chain: Pem::Text(cert_chain_pem.into().into()),
            key: Pem::Text(key_pem.into().into()),
        })
    }

    /// Options whose default certificate and key are read from PEM files when the server
    /// starts.
    pub fn from_pem_files(cert_chain_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Self {
        Self::with_default(CertSource {
            chain: Pem::File(cert_chain_path.as_ref().to_path_buf()),
            key: Pem::File(key_path.as_ref().to_path_buf()),
        })
    }

    /// Adds a certificate (PEM chain and key) served to clients asking for one of `names`
    /// (`"api.example.com"`, `"*.example.com"`).
    pub fn sni_cert(
        mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
        cert_chain_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Self {
        self.sni_certs.push(SniCert {
            names: names.into_iter().map(Into::into).collect(),
            cert: CertSource {
                chain: Pem::Text(cert_chain_pem.into().into()),
                key: Pem::Text(key_pem.into().into()),
            },
        });
        self
    }

    /// [`sni_cert`](ServerTlsOptions::sni_cert) with the certificate and key read from PEM
    /// files when the server starts.
    pub fn sni_cert_files(
        mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Self {
        self.sni_certs.push(SniCert {
            names: names.into_iter().map(Into::into).collect(),
            cert: CertSource {
                chain: Pem::File(cert_chain_path.as_ref().to_path_buf()),
                key: Pem::File(key_path.as_ref().to_path_buf()),
            },
        });
        self
    }

    /// Accepts only TLS (brpc's `force_ssl`): plaintext connections are logged and closed.
    /// Off by default: plaintext and TLS share the port.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Whether plaintext connections are refused.
    pub fn is_forced(&self) -> bool {
        self.force
    }

    /// How long a client may take to complete its handshake before the connection is closed
    /// (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Replaces the ALPN protocols offered, in order of preference (default `h2`,
    /// `http/1.1`). A client that offers ALPN but none of these fails its handshake, so add
    /// e.g. `baidu_std` for brpc clients configured to offer it. An empty list turns ALPN off.
    pub fn alpn_protocols(
        mut self,
        protocols: impl IntoIterator<Item = impl Into<Vec<u8>>>,
    ) -> Self {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Loads and checks every certificate and builds the acceptor the server's connections
    /// use. Called by `ServerBuilder::start`.
    pub(crate) fn prepare(&mut self) -> Result<(), Status> {
        let resolver = SniResolver::load(&self.default_cert, &self.sni_certs)?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Status::new(errno::ESSL, format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = self.alpn.clone();
        self.acceptor = Some(TlsAcceptor::from(Arc::new(config)));
        Ok(())
    }

    /// The acceptor built by [`prepare`](ServerTlsOptions::prepare).
    pub(crate) fn acceptor(&self) -> Option<&TlsAcceptor> {
        self.acceptor.as_ref()
    }

    /// The handshake timeout.
    pub(crate) fn handshake_limit(&self) -> Duration {
        self.handshake_timeout
    }
}

/// A server name an SNI certificate serves.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SniPattern {
    /// Exactly this name (lower case).
    Exact(String),
    /// Any single label followed by `.` and this suffix (lower case): `*.example.com`.
    Wildcard(String),
}

/// Checks and normalises one SNI name (`api.example.com`, `*.example.com`).
fn sni_pattern(name: &str) -> Result<SniPattern, String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let (wildcard, host) = match name.strip_prefix("*.") {
        Some(suffix) => (true, suffix.to_owned()),
        None => (false, name.clone()),
    };
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.is_empty() || !host.split('.').all(valid_label) {
        return Err(format!("`{name}` is not a host name or `*.domain` pattern"));
    }
    Ok(if wildcard {
        SniPattern::Wildcard(host)
    } else {
        SniPattern::Exact(host)
    })
}

/// Picks the certificate for a client's SNI: an exact name, else a wildcard, else the
/// default.
struct SniResolver<K> {
    default: K,
    exact: HashMap<String, K>,
    wildcard: HashMap<String, K>,
}

impl<K> fmt::Debug for SniResolver<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<K: Clone> SniResolver<K> {
    /// A resolver answering `default` until names are added.
    fn new(default: K) -> Self {
        SniResolver {
            default,
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        }
    }

    /// Serves `key` for `pattern`; an error if another certificate already serves it.
    fn add(&mut self, pattern: SniPattern, key: K) -> Result<(), String> {
        let (map, name, shown) = match pattern {
            SniPattern::Exact(name) => (&mut self.exact, name.clone(), name),
            SniPattern::Wildcard(suffix) => {
                (&mut self.wildcard, suffix.clone(), format!("*.{suffix}"))
            }
        };
        if map.insert(name, key).is_some() {
            return Err(format!("`{shown}` is served by two certificates"));
        }
        Ok(())
    }

    /// The certificate for a client asking for `server_name` (`None`: no SNI).
    fn lookup(&self, server_name: Option<&str>) -> &K {
        let Some(name) = server_name else {
            return &self.default;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return key;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

impl SniResolver<Arc<CertifiedKey>> {
    /// Loads every certificate of a server's options.
    fn load(default_cert: &CertSource, sni_certs: &[SniCert]) -> Result<Self, Status> {
        let mut resolver = SniResolver::new(default_cert.load("default certificate")?);
        for sni in sni_certs {
            if sni.names.is_empty() {
                return Err(invalid(format!(
                    "TLS SNI certificate {:?}: no server names given",
                    sni.cert.chain
                )));
            }
            let what = format!("SNI certificate for {:?}", sni.names);
            let key = sni.cert.load(&what)?;
            for name in &sni.names {
                let pattern = sni_pattern(name).map_err(|e| invalid(format!("TLS {what}: {e}")))?;
                resolver
                    .add(pattern, Arc::clone(&key))
                    .map_err(|e| invalid(format!("TLS {what}: {e}")))?;
            }
        }
        Ok(resolver)
    }
}

impl ResolvesServerCert for SniResolver<Arc<CertifiedKey>> {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.lookup(client_hello.server_name())))
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// Which servers a client trusts.
#[derive(Clone)]
enum Trust {
    /// The Mozilla root certificates (webpki-roots).
    WebPki,
    /// The certificates of a CA bundle.
    Bundle(Arc<[CertificateDer<'static>]>),
    /// The usable certificates of the operating system's trust store.
    System(Arc<[CertificateDer<'static>]>),
    /// A rustls configuration given whole.
    Config(Arc<ClientConfig>),
}

impl PartialEq for Trust {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Trust::WebPki, Trust::WebPki) => true,
            (Trust::Bundle(a), Trust::Bundle(b)) => a == b,
            (Trust::System(a), Trust::System(b)) => a == b,
            (Trust::Config(a), Trust::Config(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Trust {}

impl Hash for Trust {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Trust::WebPki => {}
            Trust::Bundle(certs) | Trust::System(certs) => certs.hash(state),
            Trust::Config(config) => (Arc::as_ptr(config) as usize).hash(state),
        }
    }
}

/// The TLS side of a [`Channel`](crate::Channel): which servers it trusts and the name it
/// asks for. Set it with [`ChannelBuilder::tls`](crate::ChannelBuilder::tls); `https://`
/// addresses use [`ClientTlsOptions::new`].
///
/// - **Trust**: the Mozilla root certificates by default ([`new`](ClientTlsOptions::new)), or
///   the operating system's trust store ([`system_roots`](ClientTlsOptions::system_roots)), or
///   a CA bundle ([`from_ca_pem`](ClientTlsOptions::from_ca_pem),
///   [`from_ca_file`](ClientTlsOptions::from_ca_file)), or a whole rustls configuration
///   ([`from_config`](ClientTlsOptions::from_config), e.g. for client certificates).
/// - **Server name** (sent as SNI and checked against the certificate): the one given with
///   [`with_server_name`](ClientTlsOptions::with_server_name); else the host of the address
///   the channel was built with when it is a name (`localhost:8000` → `localhost`); else the
///   server's IP address (which the certificate must then list).
/// - **ALPN**: chosen by the protocol: `h2` for `h2:grpc`, `http/1.1` for `http`, none for
///   baidu_std.
///
/// Options that compare equal share connections, as channels without TLS do.
///
/// ```
/// # fn demo(ca_pem: &str) -> Result<(), brisk::Status> {
/// use brisk::tls::ClientTlsOptions;
/// let options = ClientTlsOptions::from_ca_pem(ca_pem)?.with_server_name("api.example.com");
/// assert_eq!(options.server_name(), Some("api.example.com"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientTlsOptions {
    trust: Trust,
    server_name: Option<String>,
    handshake_timeout: Duration,
    /// The rustls configuration without ALPN, built on first use and shared by clones.
    config: Arc<OnceLock<Result<Arc<ClientConfig>, Status>>>,
}

impl PartialEq for ClientTlsOptions {
    fn eq(&self, other: &Self) -> bool {
        self.trust == other.trust
            && self.server_name == other.server_name
            && self.handshake_timeout == other.handshake_timeout
    }
}

impl Eq for ClientTlsOptions {}

impl Hash for ClientTlsOptions {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.trust.hash(state);
        self.server_name.hash(state);
        self.handshake_timeout.hash(state);
    }
}

impl fmt::Debug for ClientTlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trust = match &self.trust {
            Trust::WebPki => "webpki roots".to_owned(),
            Trust::Bundle(certs) => format!("CA bundle of {} certificates", certs.len()),
            Trust::System(certs) => format!("system trust store of {} certificates", certs.len()),
            Trust::Config(_) => "custom rustls config".to_owned(),
        };
        f.debug_struct("ClientTlsOptions")
            .field("trust", &trust)
            .field("server_name", &self.server_name)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl Default for ClientTlsOptions {
    fn default() -> Self {
        Self::with_trust(Trust::WebPki)
    }
}

impl ClientTlsOptions {
    fn with_trust(trust: Trust) -> Self {
        ClientTlsOptions {
            trust,
            server_name: None,
            handshake_timeout: DEFAULT_CLIENT_HANDSHAKE_TIMEOUT,
            config: Arc::default(),
        }
    }

    /// Trusts the Mozilla root certificates (the webpki-roots crate), as browsers do.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the operating system's trust store, as brpc (through OpenSSL) and curl do:
    /// on Linux the distribution's bundle (`/etc/ssl/certs` and the like, or the files that
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` name), on macOS the keychain, on Windows the system
    /// store. The store is read now, once; certificates rustls cannot use are skipped.
    ///
    /// [`errno::EINVAL`] if the store holds no usable certificate (say a container without
    /// the `ca-certificates` package), with what went wrong reading it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), brisk::Status> {
    /// use brisk::tls::ClientTlsOptions;
    /// let channel = brisk::Channel::builder()
    ///     .tls(ClientTlsOptions::system_roots()?)
    ///     .connect("https://internal.example.com")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn system_roots() -> Result<Self, Error> {
        let loaded = rustls_native_certs::load_native_certs();
        let usable: Vec<CertificateDer<'static>> = loaded
            .certs
            .into_iter()
            .filter(|cert| RootCertStore::empty().add(cert.clone()).is_ok())
            .collect();
        if usable.is_empty() {
            let reasons: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
            return Err(Error::new(
                ErrorKind::Tls,
                format!(
                    "TLS: the system trust store has no usable CA certificate{}",
                    if reasons.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", reasons.join("; "))
                    }
                ),
            ));
        }
        Ok(Self::with_trust(Trust::System(usable.into())))
    }

    /// Trusts the CA certificates in `ca_pem` (one or more `CERTIFICATE` blocks) and nothing
    /// else. [`errno::EINVAL`] if there is none or one is malformed.
    pub fn from_ca_pem(ca_pem: &str) -> Result<Self, Error> {
        Self::from_ca_bytes(ca_pem.as_bytes(), "the CA bundle").map_err(tls_error)
    }

    /// [`from_ca_pem`](ClientTlsOptions::from_ca_pem) with the bundle read from a file.
    pub fn from_ca_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let pem = Pem::File(path.to_path_buf()).load().map_err(tls_error)?;
        Self::from_ca_bytes(&pem, &format!("`{}`", path.display())).map_err(tls_error)
    }

    fn from_ca_bytes(pem: &[u8], source: &str) -> Result<Self, Status> {
        let certs =
            parse_certs(pem).map_err(|e| invalid(format!("TLS CA bundle {source}: {e}")))?;
        // Checked now, so a bad certificate fails here and not at the first call.
        trust_store(&certs).map_err(|e| invalid(format!("TLS CA bundle {source}: {e}")))?;
        Ok(Self::with_trust(Trust::Bundle(certs.into())))
    }

    /// Uses `config` as it is (roots, client certificates, versions); only its ALPN list is
    /// replaced per protocol.
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        Self::with_trust(Trust::Config(config))
    }

    /// Sends `name` as SNI and requires the server's certificate to be valid for it (a DNS
    /// name or an IP address).
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The server name set with [`with_server_name`](ClientTlsOptions::with_server_name) (or
    /// taken from the channel's address).
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// How long the handshake may take after the TCP connection is made (default 5 s); the
    /// call's deadline still applies.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration, without ALPN.
    fn base_config(&self) -> Result<Arc<ClientConfig>, Status> {
        self.config
            .get_or_init(|| {
                let roots = match &self.trust {
                    Trust::Config(config) => return Ok(Arc::clone(config)),
                    Trust::WebPki => RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    },
                    Trust::Bundle(certs) | Trust::System(certs) => {
                        trust_store(certs).map_err(invalid)?
                    }
                };
                let config = ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| Status::new(errno::ESSL, format!("TLS: {e}")))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Ok(Arc::new(config))
            })
            .clone()
    }

    /// The rustls configuration offering `alpn`.
    fn config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, Status> {
        let base = self.base_config()?;
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        if base.alpn_protocols == alpn {
            return Ok(base);
        }
        let mut config = (*base).clone();
        config.alpn_protocols = alpn;
        Ok(Arc::new(config))
    }

    /// The name sent to and checked against `addr`'s server.
    fn server_name_for(&self, addr: SocketAddr) -> Result<ServerName<'static>, Status> {
        match &self.server_name {
            Some(name) => ServerName::try_from(name.clone())
                .map_err(|_| invalid(format!("`{name}` is not a valid TLS server name"))),
            None => Ok(ServerName::IpAddress(addr.ip().into())),
        }
    }

    /// Runs the client handshake on `tcp`, connected to `addr`, offering `alpn`.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        alpn: &[&[u8]],
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Status> {
        let name = self.server_name_for(addr)?;
        let connector = TlsConnector::from(self.config(alpn)?);
        let shown = name.to_str().into_owned();
        match tokio::time::timeout(self.handshake_timeout, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(Status::new(
                errno::ESSL,
                format!("Fail to establish TLS with {addr} as `{shown}`: {e}"),
            )),
            Err(_) => Err(Status::new(
                errno::ETIMEDOUT,
                format!(
                    "Fail to establish TLS with {addr} as `{shown}`: no handshake within {}ms",
                    self.handshake_timeout.as_millis()
                ),
            )),
        }
    }
}

/// A root store of `certs`.
fn trust_store(certs: &[CertificateDer<'static>]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in certs {
        store
            .add(cert.clone())
            .map_err(|e| format!("unusable CA certificate: {e}"))?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (cert.cert.pem(), cert.key_pair.serialize_pem())
    }

    #[test]
    fn parses_pem_certificates_and_keys() {
        let (cert, key) = self_signed("localhost");
        assert_eq!(parse_certs(cert.as_bytes()).unwrap().len(), 1);
        let two = format!("{cert}{cert}");
        assert_eq!(parse_certs(two.as_bytes()).unwrap().len(), 2);
        assert!(parse_key(key.as_bytes()).is_ok());

        assert!(parse_certs(b"").unwrap_err().contains("no CERTIFICATE"));
        assert!(parse_certs(key.as_bytes())
            .unwrap_err()
            .contains("no CERTIFICATE"));
        assert!(parse_key(cert.as_bytes())
            .unwrap_err()
            .contains("no PRIVATE KEY"));
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(parse_certs(broken.as_bytes()).is_err());
    }

    #[test]
    fn checks_and_normalises_sni_names() {
        assert_eq!(
            sni_pattern("API.Example.com."),
            Ok(SniPattern::Exact("api.example.com".into()))
        );
        assert_eq!(
            sni_pattern("*.example.com"),
            Ok(SniPattern::Wildcard("example.com".into()))
        );
        for bad in ["", "*", "*.", "a..b", "a b", "*.*.example.com", "x.*.com"] {
            assert!(sni_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sni_lookup_prefers_exact_then_wildcard_then_default() {
        let mut resolver = SniResolver::new("default");
        resolver
            .add(sni_pattern("*.example.com").unwrap(), "wild")
            .unwrap();
        resolver
            .add(sni_pattern("api.example.com").unwrap(), "api")
            .unwrap();
        assert_eq!(*resolver.lookup(None), "default");
        assert_eq!(*resolver.lookup(Some("api.example.com")), "api");
        assert_eq!(*resolver.lookup(Some("API.EXAMPLE.COM")), "api");
        assert_eq!(*resolver.lookup(Some("www.example.com")), "wild");
        assert_eq!(*resolver.lookup(Some("example.com")), "default");
        assert_eq!(*resolver.lookup(Some("a.b.example.com")), "default");
        assert_eq!(*resolver.lookup(Some("other.test")), "default");
        assert!(resolver
            .add(sni_pattern("*.EXAMPLE.com").unwrap(), "again")
            .is_err());
    }

    #[test]
    fn server_options_fail_clearly_on_bad_certificates() {
        let (cert, key) = self_signed("localhost");
        let (_, other_key) = self_signed("other.test");
        let mut good = ServerTlsOptions::from_pem(cert.clone(), key.clone());
        good.prepare().unwrap();
        assert!(good.acceptor().is_some());

        let cases = [
            (
                ServerTlsOptions::from_pem("garbage", key.clone()),
                "bad certificate chain",
            ),
            (
                ServerTlsOptions::from_pem(cert.clone(), "garbage"),
                "bad private key",
            ),
            (
                ServerTlsOptions::from_pem(cert.clone(), other_key),
                "unusable certificate",
            ),
            (
                ServerTlsOptions::from_pem_files("/no/such/cert.pem", "/no/such/key.pem"),
                "Fail to read",
            ),
            (
                ServerTlsOptions::from_pem(cert.clone(), key.clone()).sni_cert(
                    Vec::<String>::new(),
                    cert.clone(),
                    key.clone(),
                ),
                "no server names",
            ),
            (
                ServerTlsOptions::from_pem(cert.clone(), key.clone()).sni_cert(
                    ["bad name"],
                    cert.clone(),
                    key.clone(),
                ),
                "not a host name",
            ),
        ];
        for (mut options, expected) in cases {
            let err = options.prepare().unwrap_err();
            assert_eq!(err.code(), errno::EINVAL, "{err}");
            assert!(err.message().contains(expected), "{err}");
        }
    }

    #[test]
    fn debug_never_shows_private_keys() {
        let (cert, key) = self_signed("localhost");
        let options = ServerTlsOptions::from_pem(cert, key.clone());
        let shown = format!("{options:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("inline PEM"), "{shown}");
    }

    #[test]
    fn client_options_compare_by_content() {
        let (cert, _) = self_signed("localhost");
        let a = ClientTlsOptions::from_ca_pem(&cert).unwrap();
        let b = ClientTlsOptions::from_ca_pem(&cert).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, ClientTlsOptions::new());
        assert_ne!(a, b.clone().with_server_name("localhost"));
        let hash = |o: &ClientTlsOptions| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            o.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&b));

        let err = ClientTlsOptions::from_ca_pem("nothing here").unwrap_err();
        assert_eq!(err.code(), errno::EINVAL);
        assert!(err.message().contains("no CERTIFICATE"), "{err}");
        let err = ClientTlsOptions::from_ca_file("/no/such/ca.pem").unwrap_err();
        assert_eq!(err.code(), errno::EINVAL);
    }

    #[test]
    fn client_server_names_default_to_the_ip_address() {
        let addr: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let options = ClientTlsOptions::new();
        assert_eq!(options.server_name_for(addr).unwrap().to_str(), "127.0.0.1");
        let named = options.clone().with_server_name("example.com");
        assert_eq!(named.server_name_for(addr).unwrap().to_str(), "example.com");
        let bad = options.with_server_name("not a name");
        assert_eq!(bad.server_name_for(addr).unwrap_err().code(), errno::EINVAL);
    }

    #[test]
    fn client_configs_offer_the_callers_alpn() {
        let options = ClientTlsOptions::new();
        assert!(options.config(&[]).unwrap().alpn_protocols.is_empty());
        assert_eq!(
            options.config(&[b"h2"]).unwrap().alpn_protocols,
            vec![b"h2".to_vec()]
        );
        // The shared base is untouched.
        assert!(options.base_config().unwrap().alpn_protocols.is_empty());
    }
}
