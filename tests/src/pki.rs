//! Certificates made at test time (rcgen) for the TLS tests: a CA and leaves it signs.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA and certificates it signed.
#[derive(Debug)]
pub struct Pki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// For `localhost` and `127.0.0.1`.
    pub server: Leaf,
    /// For `other.test` and `*.wild.test`.
    pub other: Leaf,
}

/// A certificate (PEM and DER) and its key.
#[derive(Debug)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key, PEM.
    pub key_pem: String,
}

/// A self-signed certificate authority.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert.pem())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate for `names` (DNS names or IP addresses), signed by this CA.
    pub fn sign(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Pki {
    /// A new CA and its two certificates.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Pki {
        let ca = Ca::new("Brisk test CA");
        Pki {
            ca_pem: ca.cert.pem(),
            server: ca.sign(&["localhost", "127.0.0.1"]),
            other: ca.sign(&["other.test", "*.wild.test"]),
        }
    }
}
