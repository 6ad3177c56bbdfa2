//! TLS of the gRPC endpoints (rustls with ring).
//!
//! - [`ClientTls`]: what a client trusts for an `https://` endpoint: the
//!   webpki roots (the public CAs) plus extra roots such as a private CA
//!   (`--tls-ca`), or, for a process reaching its own TLS listener, exactly
//!   its own certificate. [`crate::endpoint::endpoint_with`] applies it; an
//!   `https://` endpoint is never used without TLS.
//!   With a [`ClientIdentity`] (`--tls-client-cert`, `--tls-client-key`)
//!   it also presents a client certificate to servers that ask for one.
//! - [`ServerTls`]: the certificate chain and key a server presents
//!   (`--tls-cert`, `--tls-key`), checked when loaded; with client CAs
//!   ([`ServerTls::with_client_ca_pem`], `--tls-client-ca`) it requires
//!   every client to present a certificate chaining to one of them (mutual
//!   TLS), and refuses the handshake otherwise.
//!
//! Revocation (CRLs, OCSP) is not checked: tonic builds the client
//! verifier and takes no revocation lists.
//!
//! With TLS 1.3 a client's handshake is done before the server has checked
//! the client's certificate; a server that refuses it sends an alert the
//! client often never reads (its first request is already on the way, and
//! the server's close resets the connection), so the call fails with
//! `connection closed` or `broken pipe`. [`ClientTls::handshake_refusal`]
//! asks the server again, waiting for its answer, to say why.

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Why PEM data cannot be used for TLS; the message is about the data
/// only, so that the caller names the file or setting it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The certificates: none found, or one that is not valid.
    #[error("{0}")]
    Certificate(String),
    /// The private key: none found, or not usable.
    #[error("{0}")]
    Key(String),
}

/// The certificates of PEM data (`CERTIFICATE` blocks; other blocks are
/// skipped), at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Certificate(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    Ok(certs)
}

/// The trust anchors of the PEM bundle `pem` added to `roots`: fails on a
/// bundle without a certificate or with one that cannot be an anchor.
fn add_anchors(
    roots: &[TrustAnchor<'static>],
    pem: &[u8],
) -> Result<Vec<TrustAnchor<'static>>, TlsError> {
    let mut store = rustls::RootCertStore {
        roots: roots.to_vec(),
    };
    for (i, cert) in certificates(pem)?.into_iter().enumerate() {
        store.add(cert).map_err(|e| {
            TlsError::Certificate(format!("certificate {}: not a CA certificate: {e}", i + 1))
        })?;
    }
    Ok(store.roots)
}

/// A certificate chain and its private key (PEM), checked as rustls checks
/// them when it uses them (a key it can sign with, belonging to the first
/// certificate), and as every peer checks the certificate (valid now), so
/// that a bad pair fails the start instead of every handshake.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certificates(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Key("no PEM private key (-----BEGIN PRIVATE KEY-----) in it".into())
        }
        e => TlsError::Key(format!("not valid PEM: {e}")),
    })?;
    CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            TlsError::Key("does not belong to the (first) certificate".into())
        }
        rustls::Error::InvalidCertificate(_) => {
            TlsError::Certificate(format!("not a valid certificate: {e}"))
        }
        e => TlsError::Key(format!("not usable: {e}")),
    })?;
    valid_now(&chain[0])?;
    Ok((chain, key))
}

/// Fails for a certificate outside its validity period: each peer's
/// verifier refuses it (expired, or not valid yet), so it could only fail
/// every handshake.
fn valid_now(cert: &CertificateDer<'_>) -> Result<(), TlsError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| TlsError::Certificate(format!("not a valid certificate: {e}")))?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before {
        return Err(TlsError::Certificate(format!(
            "the (first) certificate is not valid yet: valid from {} (now {now})",
            validity.not_before
        )));
    }
    if now > validity.not_after {
        return Err(TlsError::Certificate(format!(
            "the (first) certificate expired: valid until {} (now {now})",
            validity.not_after
        )));
    }
    Ok(())
}

/// The crypto provider of every TLS connection of the package: ring, as
/// tonic's `tls-ring` uses (rustls 0.23.48 deprecates it for lacking
/// post-quantum key exchange; aws-lc-rs has it but is a C build of its own).
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A client certificate chain and its private key, which a client presents
/// to servers that ask for one (mutual TLS). Checked when made, as
/// [`ServerTls::from_pem`] checks a server's. A cheap clone.
#[derive(Clone)]
pub struct ClientIdentity {
    identity: Identity,
    /// The chain, the client's certificate first (for
    /// [`ServerTls::check_client`] and [`ClientTls::handshake_refusal`]).
    chain: Arc<Vec<CertificateDer<'static>>>,
    /// Its key (for [`ClientTls::handshake_refusal`]).
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("ClientIdentity")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// From a PEM certificate chain (the client's certificate first, then
    /// any intermediates) and a PEM private key (PKCS#8, PKCS#1 or SEC1)
    /// belonging to the first certificate.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let (chain, key) = certified_key(cert_pem, key_pem)?;
        Ok(Self {
            identity: Identity::from_pem(cert_pem, key_pem),
            chain: Arc::new(chain),
            key: Arc::new(key),
        })
    }
}

/// What a client trusts for `https://` endpoints, and the certificate it
/// presents when a server asks for one. The default trusts the webpki roots
/// (Mozilla's list of public CAs) and presents none;
/// [`ClientTls::with_ca_pem`] adds roots, [`ClientTls::with_identity_pem`]
/// a client certificate. A cheap clone.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// Trust anchors besides the webpki roots.
    roots: Arc<Vec<TrustAnchor<'static>>>,
    /// Set by [`ClientTls::pinned`]: the one server certificate trusted.
    pinned: Option<Arc<PinnedVerifier>>,
    /// The client certificate presented (mutual TLS).
    identity: Option<ClientIdentity>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("extra_roots", &self.roots.len())
            .field("pinned", &self.pinned.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Also trusts the CA certificates of the PEM bundle `pem` (a private
    /// CA). Fails on a bundle without a certificate or with one that is not
    /// valid.
    pub fn with_ca_pem(self, pem: &[u8]) -> Result<Self, TlsError> {
        let roots = add_anchors(&self.roots, pem)?;
        Ok(Self {
            roots: Arc::new(roots),
            ..self
        })
    }

    /// Presents the client certificate chain `cert_pem` (the client's
    /// certificate first) with its private key `key_pem` to servers that
    /// ask for one, on every connection made with this configuration,
    /// pinned or not. Fails as [`ClientIdentity::from_pem`] does.
    pub fn with_identity_pem(self, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Ok(self.with_identity(ClientIdentity::from_pem(cert_pem, key_pem)?))
    }

    /// Presents `identity` to servers that ask for a client certificate.
    pub fn with_identity(self, identity: ClientIdentity) -> Self {
        Self {
            identity: Some(identity),
            ..self
        }
    }

    /// The client certificate presented, if any.
    pub fn identity(&self) -> Option<&ClientIdentity> {
        self.identity.as_ref()
    }

    /// Trusts exactly the certificate `server` presents (whatever names it
    /// carries) and nothing else: how a process reaches its own TLS
    /// listener on loopback, where the certificate's names (a public host
    /// name) do not match `127.0.0.1` and its CA may not be at hand. Only
    /// the holder of `server`'s private key can complete such a handshake.
    /// It presents no client certificate; [`ClientTls::with_identity`]
    /// adds one.
    pub fn pinned(server: &ServerTls) -> Self {
        Self {
            roots: Arc::default(),
            pinned: Some(Arc::new(PinnedVerifier {
                cert: server.cert.clone(),
                provider: Arc::new(provider()),
            })),
            identity: None,
        }
    }

    /// The tonic configuration without trust: the client certificate, if
    /// any.
    fn base_config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new();
        match &self.identity {
            Some(id) => config.identity(id.identity.clone()),
            None => config,
        }
    }

    /// The webpki roots, the extra roots and the client certificate as a
    /// tonic client configuration, for clients built elsewhere (the OTLP
    /// exporter); a pinned certificate is not part of it.
    pub fn tonic_config(&self) -> ClientTlsConfig {
        self.base_config()
            .with_webpki_roots()
            .trust_anchors(self.roots.iter().cloned())
    }

    /// `endpoint` with TLS as configured (the caller checked that it is
    /// `https://`).
    pub(crate) fn apply(&self, endpoint: Endpoint) -> Result<Endpoint, tonic::transport::Error> {
        match &self.pinned {
            Some(verifier) => {
                endpoint.tls_config_with_verifier(self.base_config(), verifier.clone())
            }
            None => endpoint.tls_config(self.tonic_config()),
        }
    }

    /// The rustls configuration of a connection as [`ClientTls::apply`]
    /// makes it (the same trust, the same client certificate), for
    /// [`ClientTls::handshake_refusal`].
    fn rustls_config(&self) -> Result<rustls::ClientConfig, rustls::Error> {
        self.rustls_config_with(self.pinned.as_ref(), &[b"h2"])
    }

    /// The webpki roots, the extra roots and the client certificate as a
    /// rustls configuration for HTTP clients built elsewhere (the OTLP/HTTP
    /// exporter): the trust of [`ClientTls::tonic_config`], a pinned
    /// certificate not part of it either, and no ALPN protocols, which such
    /// a client sets for the HTTP versions it speaks (hyper-rustls refuses a
    /// configuration that names some).
    pub fn http_rustls_config(&self) -> Result<rustls::ClientConfig, rustls::Error> {
        self.rustls_config_with(None, &[])
    }

    /// A rustls configuration trusting `pinned` alone, or else the webpki
    /// and extra roots, presenting the client certificate, offering `alpn`.
    fn rustls_config_with(
        &self,
        pinned: Option<&Arc<PinnedVerifier>>,
        alpn: &[&[u8]],
    ) -> Result<rustls::ClientConfig, rustls::Error> {
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()?;
        let builder = match pinned {
            Some(verifier) => builder
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone()),
            None => {
                let mut roots = rustls::RootCertStore::from_iter(self.roots.iter().cloned());
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                builder.with_root_certificates(roots)
            }
        };
        let mut config = match &self.identity {
            Some(id) => {
                builder.with_client_auth_cert(id.chain.as_ref().clone(), id.key.clone_key())?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// Why the server at `url` (`https://host:port`) refuses a TLS
    /// connection made with this configuration, if it does: connects once,
    /// completes the handshake, then sends nothing and waits up to `wait`
    /// for the server's first data, so that a server refusing the client's
    /// certificate (or its lack of one) closes a connection with nothing
    /// unread and the client reads its alert (`received fatal alert:
    /// CertificateRequired`, `UnknownCA`, ...). `None` when the server
    /// accepted the connection, when it could not be reached at all (the
    /// call's own error says so), and for an `http://` URL. For a client
    /// whose call failed without saying why; it blocks a thread of the
    /// blocking pool for up to about twice `wait`.
    pub async fn handshake_refusal(&self, url: &str, wait: Duration) -> Option<String> {
        let uri: http::Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("https") {
            return None;
        }
        let host = uri.host()?;
        // `[::1]` in a URI, `::1` as a name and an address.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let config = Arc::new(self.rustls_config().ok()?);
        tokio::task::spawn_blocking(move || refusal(config, &host, port, wait))
            .await
            .ok()
            .flatten()
    }
}

/// How long [`ClientTls::unsaid_refusal`] waits for a server's answer.
pub const PROBE_WAIT: Duration = Duration::from_secs(3);

impl ClientTls {
    /// `text` with why the server at `url` refuses this client's TLS
    /// handshake, when a call to it failed with `text` (a transport failure
    /// that does not say so): the alert of a server refusing the client's certificate,
    /// or its lack, races the first request and is often lost (see the
    /// module's doc), so the server is asked again, once
    /// ([`ClientTls::handshake_refusal`], up to [`PROBE_WAIT`]). `None`
    /// for a server's own answer, which is no transport failure, for a
    /// `text` that already says why, and when the server does not refuse.
    pub async fn unsaid_refusal(&self, text: &str, url: &str) -> Option<String> {
        if !text.contains("transport error") || client_certificate_hint(text).is_some() {
            return None;
        }
        self.handshake_refusal(url, PROBE_WAIT)
            .await
            .filter(|why| !text.contains(why.as_str()))
            .map(|why| format!("{text}; the server refuses the TLS handshake: {why}"))
    }

    /// `text`, why a call to `url` failed, with what
    /// [`ClientTls::unsaid_refusal`] and [`client_certificate_hint`] add:
    /// what an operator is shown of a failure to reach a service.
    pub async fn failure_text(&self, text: String, url: &str) -> String {
        let text = self.unsaid_refusal(&text, url).await.unwrap_or(text);
        match client_certificate_hint(&text) {
            Some(hint) => format!("{text} ({hint})"),
            None => text,
        }
    }
}

/// What to do about a TLS alert a server sent about the client's
/// certificate, when `text` (a failure) holds one: rustls names only the
/// alert (`received fatal alert: CertificateRequired`), which does not say
/// that it is about mutual TLS. It names the flags every process of this
/// project gives its client certificate with.
pub fn client_certificate_hint(text: &str) -> Option<&'static str> {
    if text.contains("CertificateRequired") {
        Some(
            "the server requires a client certificate (mutual TLS): give --tls-client-cert and --tls-client-key",
        )
    } else if text.contains("received fatal alert: UnknownCA")
        || text.contains("received fatal alert: BadCertificate")
        || text.contains("received fatal alert: CertificateUnknown")
    {
        Some(
            "the server refused the client certificate of --tls-client-cert: it accepts only certificates of its client CAs",
        )
    } else {
        None
    }
}

/// [`ClientTls::handshake_refusal`], blocking.
fn refusal(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    wait: Duration,
) -> Option<String> {
    let name = ServerName::try_from(host.to_owned()).ok()?;
    let addr = (host, port).to_socket_addrs().ok()?.next()?;
    let mut sock = TcpStream::connect_timeout(&addr, wait).ok()?;
    sock.set_read_timeout(Some(wait)).ok()?;
    sock.set_write_timeout(Some(wait)).ok()?;
    let mut conn = rustls::ClientConnection::new(config, name).ok()?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            return tls_failure(&e);
        }
    }
    // Nothing is written now: the server's close then leaves nothing
    // unread on its side, so it does not reset the connection, which
    // would drop its alert before this reads it.
    let mut stream = rustls::Stream::new(&mut conn, &mut sock);
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        // Data (the server's HTTP/2 settings): accepted; 0: closed cleanly.
        Ok(1..) | Ok(0) => None,
        Err(e) => tls_failure(&e),
    }
}

/// The text of a TLS failure (rustls reports them as `InvalidData`); `None`
/// for I/O errors, such as a timeout while the server says nothing.
fn tls_failure(e: &std::io::Error) -> Option<String> {
    (e.kind() == std::io::ErrorKind::InvalidData).then(|| e.to_string())
}

/// Accepts exactly one server certificate, checking that the server holds
/// its key as any verifier does (the handshake signature).
#[derive(Debug)]
struct PinnedVerifier {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificate chain and private key a server presents, and the CAs
/// its clients' certificates must chain to, if it requires them. Checked
/// when made: the chain has a certificate, the key is one rustls can use,
/// and it belongs to the first certificate.
#[derive(Clone)]
pub struct ServerTls {
    identity: Identity,
    /// The end-entity certificate (for [`ClientTls::pinned`]).
    cert: CertificateDer<'static>,
    /// The chain and key again, for [`ServerTls::rustls_config`].
    chain: Arc<Vec<CertificateDer<'static>>>,
    key: Arc<PrivateKeyDer<'static>>,
    /// The client CAs as given (PEM, each bundle checked), for tonic; empty
    /// without mutual TLS.
    client_ca_pem: Vec<u8>,
    /// The same as trust anchors (for [`ServerTls::check_client`]).
    client_roots: Arc<Vec<TrustAnchor<'static>>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_cas", &self.client_roots.len())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// From a PEM certificate chain (the server's certificate first, then
    /// any intermediates) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    /// It requires no client certificate.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let (chain, key) = certified_key(cert_pem, key_pem)?;
        install_provider();
        Ok(Self {
            identity: Identity::from_pem(cert_pem, key_pem),
            cert: chain[0].clone(),
            chain: Arc::new(chain),
            key: Arc::new(key),
            client_ca_pem: Vec::new(),
            client_roots: Arc::default(),
        })
    }

    /// Requires every client to present a certificate chaining to one of
    /// the CA certificates of the PEM bundle `pem`, or to one of those added
    /// before (repeatable); a client without one, or with one from another
    /// CA, fails the handshake. Fails on a bundle without a certificate or
    /// with one that cannot be a trust anchor.
    pub fn with_client_ca_pem(self, pem: &[u8]) -> Result<Self, TlsError> {
        let roots = add_anchors(&self.client_roots, pem)?;
        let mut client_ca_pem = self.client_ca_pem;
        // PEM bundles concatenate; a bundle need not end with a newline.
        client_ca_pem.extend_from_slice(pem);
        client_ca_pem.push(b'\n');
        Ok(Self {
            client_ca_pem,
            client_roots: Arc::new(roots),
            ..self
        })
    }

    /// Whether clients must present a certificate (client CAs were added).
    pub fn requires_client_certificates(&self) -> bool {
        !self.client_roots.is_empty()
    }

    /// Whether this server would accept `client`'s certificate now: it
    /// chains to a client CA, is valid at this time and may authenticate
    /// a client (its extended key usage, if any, allows `clientAuth`). Any
    /// certificate passes when no client CA was added. For a process that
    /// connects to its own listener, so that a certificate the listener
    /// would refuse stops the start instead of every connection.
    pub fn check_client(&self, client: &ClientIdentity) -> Result<(), TlsError> {
        if !self.requires_client_certificates() {
            return Ok(());
        }
        let roots = rustls::RootCertStore {
            roots: self.client_roots.as_ref().clone(),
        };
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider()))
                .build()
                .map_err(|e| TlsError::Certificate(format!("client CAs not usable: {e}")))?;
        let (end_entity, intermediates) = client
            .chain
            .split_first()
            .ok_or_else(|| TlsError::Certificate("no certificate".into()))?;
        verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map(drop)
            .map_err(|e| TlsError::Certificate(format!("not accepted by the client CAs: {e}")))
    }

    /// A rustls configuration with the same certificate, key and client
    /// CAs, for a listener that is not a tonic server (a CSE's HTTPS
    /// listener). With client CAs, `client_certificates` says whether a
    /// client must present a certificate chaining to one of them, or may
    /// connect without one (and then is not authenticated); a certificate
    /// it does present must chain to them either way. Without client CAs no
    /// certificate is asked for.
    pub fn rustls_config(
        &self,
        client_certificates: ClientCertificates,
    ) -> Result<rustls::ServerConfig, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Key(format!("no protocol version usable: {e}")))?;
        let builder = if self.requires_client_certificates() {
            let roots = rustls::RootCertStore {
                roots: self.client_roots.as_ref().clone(),
            };
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider()));
            if client_certificates == ClientCertificates::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Certificate(format!("client CAs not usable: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        builder
            .with_single_cert(self.chain.as_ref().clone(), self.key.clone_key())
            .map_err(|e| TlsError::Key(format!("not usable: {e}")))
    }

    /// The configuration for `tonic::transport::Server::tls_config`.
    pub fn config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new().identity(self.identity.clone());
        if self.requires_client_certificates() {
            // Required, not optional: tonic's verifier then refuses a
            // handshake without a certificate chaining to these roots.
            config.client_ca_root(Certificate::from_pem(&self.client_ca_pem))
        } else {
            config
        }
    }
}

/// Whether a server with client CAs ([`ServerTls::rustls_config`]) requires
/// every client to present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// A client without a certificate fails the handshake (mutual TLS).
    Required,
    /// A client may connect without one; it is then not authenticated.
    Optional,
}

/// tonic builds its server configuration (and the client-certificate
/// verifier) with the process's default provider: make it ring, which the
/// package is built with, unless the process chose one.
fn install_provider() {
    if CryptoProvider::get_default().is_none() {
        let _ = provider().install_default();
    }
}
