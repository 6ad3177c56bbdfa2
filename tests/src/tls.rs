//! Certificates for TLS tests, made on the fly: a test CA, and a server
//! and a client certificate it signed, as PEM text and as files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};

/// A number for the next CA's name: two CAs of a test have different
/// names, as real ones do (a verifier finds the issuer by name).
fn next_ca() -> usize {
    static CAS: AtomicUsize = AtomicUsize::new(1);
    CAS.fetch_add(1, Ordering::Relaxed)
}

/// A test CA, a server certificate for `names` and a client certificate
/// (extended key usage `clientAuth`) signed by it (PEM).
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate: what a client trusts (`--tls-ca`), and what a
    /// server requiring client certificates trusts (`--tls-client-ca`).
    pub ca_pem: String,
    /// The server certificate (`--tls-cert`).
    pub cert_pem: String,
    /// The server's private key, PKCS#8 (`--tls-key`).
    pub key_pem: String,
    /// The client certificate (`--tls-client-cert`).
    pub client_cert_pem: String,
    /// The client's private key, PKCS#8 (`--tls-client-key`).
    pub client_key_pem: String,
}

/// A name in a client certificate's subjectAltName.
#[derive(Debug, Clone, Copy)]
pub enum ClientName<'a> {
    /// A `uniformResourceIdentifier` (an AE-ID certificate's).
    Uri(&'a str),
    /// A `dNSName` (a CSE-ID certificate's).
    Dns(&'a str),
}

/// Where [`TestPki::write`] put the PEM files.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `cert.pem`.
    pub cert: PathBuf,
    /// `key.pem`.
    pub key: PathBuf,
    /// `client.pem`.
    pub client_cert: PathBuf,
    /// `client-key.pem`.
    pub client_key: PathBuf,
}

impl TestPki {
    /// A new CA, a server certificate for `names` (DNS names, or IP
    /// addresses such as `127.0.0.1`) and a client certificate.
    pub fn new(names: &[&str]) -> Self {
        Self::with_client_names(names, &[])
    }

    /// [`TestPki::new`] with a client certificate whose subjectAltName
    /// holds `client_names` (as an AE-ID or CSE-ID certificate does,
    /// TS-0003 10.1.1.5, 10.1.1.7).
    pub fn with_client_names(names: &[&str], client_names: &[ClientName<'_>]) -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            DnType::CommonName,
            format!("onem2m-authz test CA {}", next_ca()),
        );
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = CertificateParams::new(names)
            .expect("server params")
            .signed_by(&key, &ca)
            .expect("server certificate");
        let client_key = KeyPair::generate().expect("client key");
        let mut client = CertificateParams::new(Vec::<String>::new()).expect("client params");
        client
            .distinguished_name
            .push(DnType::CommonName, "onem2m-authz test client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client.subject_alt_names = client_names
            .iter()
            .map(|n| match n {
                ClientName::Uri(u) => SanType::URI((*u).try_into().expect("an IA5 URI")),
                ClientName::Dns(d) => SanType::DnsName((*d).try_into().expect("an IA5 name")),
            })
            .collect();
        let client = client
            .signed_by(&client_key, &ca)
            .expect("client certificate");
        Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// Writes `ca.pem`, `cert.pem`, `key.pem`, `client.pem` and
    /// `client-key.pem` into `dir`.
    pub fn write(&self, dir: &Path) -> PkiFiles {
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client-key.pem"),
        };
        std::fs::write(&files.ca, &self.ca_pem).expect("write ca.pem");
        std::fs::write(&files.cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&files.key, &self.key_pem).expect("write key.pem");
        std::fs::write(&files.client_cert, &self.client_cert_pem).expect("write client.pem");
        std::fs::write(&files.client_key, &self.client_key_pem).expect("write client-key.pem");
        files
    }
}
