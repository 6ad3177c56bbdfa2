//! Certificates for TLS tests, made on the fly: a test CA, and a server
//! and a client certificate it signed, as PEM text and as files; and a
//! TLS client for the HTTPS endpoints ([`connect`], [`http_get`]).

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

/// A TLS connection to `to` (a certificate for `127.0.0.1`) trusting the
/// CA of `ca_pem`, presenting the client certificate of `client` when
/// given; an error if the handshake is not done within
/// [`HANG_LIMIT`](crate::process::HANG_LIMIT). With TLS 1.3 a server
/// refuses a client's certificate after the client's handshake is done:
/// the refusal shows on the first read.
pub async fn connect(
    to: std::net::SocketAddr,
    ca_pem: &str,
    client: Option<&TestPki>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    // ring, as the services use (deprecated in rustls 0.23.48 for lacking
    // post-quantum key exchange, which these tests do not need).
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(pki) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(pki.client_cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client PEM"),
                PrivateKeyDer::from_pem_slice(pki.client_key_pem.as_bytes()).expect("key"),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(to).await?;
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
    };
    // A server that stalls (another process, stopped or wedged) would
    // leave the handshake waiting for ever.
    let limit = crate::process::HANG_LIMIT;
    tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| std::io::Error::other(format!("no TLS handshake with {to} in {limit:?}")))?
}

/// A minimal HTTP/1.1 GET of `path` with `headers` over `stream`
/// (`Connection: close`): the whole answer as text, or the error that
/// ended it (a refused TLS client certificate shows here).
pub async fn http_get<S>(
    mut stream: S,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut raw),
    )
    .await
    .map_err(|_| std::io::Error::other("no answer in 10 s"))??;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}
