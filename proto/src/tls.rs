//! TLS of the gRPC endpoints (rustls with ring).
//!
//! - [`ClientTls`]: what a client trusts for an `https://` endpoint: the
//!   webpki roots (the public CAs) plus extra roots such as a private CA
//!   (`--tls-ca`), or, for a process reaching its own TLS listener, exactly
//!   its own certificate. [`crate::endpoint::endpoint_with`] applies it; an
//!   `https://` endpoint is never used without TLS.
//! - [`ServerTls`]: the certificate chain and key a server presents
//!   (`--tls-cert`, `--tls-key`), checked when loaded.
//!
//! Client certificates (mutual TLS) are not implemented.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::transport::{ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

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

/// The crypto provider of every TLS connection of the package: ring, as
/// tonic's `tls-ring` uses (rustls 0.23.48 deprecates it for lacking
/// post-quantum key exchange; aws-lc-rs has it but is a C build of its own).
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// What a client trusts for `https://` endpoints. The default trusts the
/// webpki roots (Mozilla's list of public CAs); [`ClientTls::with_ca_pem`]
/// adds more. A cheap clone.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// Trust anchors besides the webpki roots.
    roots: Arc<Vec<TrustAnchor<'static>>>,
    /// Set by [`ClientTls::pinned`]: the one server certificate trusted.
    pinned: Option<Arc<PinnedVerifier>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("extra_roots", &self.roots.len())
            .field("pinned", &self.pinned.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Also trusts the CA certificates of the PEM bundle `pem` (a private
    /// CA). Fails on a bundle without a certificate or with one that is not
    /// valid.
    pub fn with_ca_pem(self, pem: &[u8]) -> Result<Self, TlsError> {
        let mut store = rustls::RootCertStore {
            roots: self.roots.as_ref().clone(),
        };
        for (i, cert) in certificates(pem)?.into_iter().enumerate() {
            store.add(cert).map_err(|e| {
                TlsError::Certificate(format!("certificate {}: not a CA certificate: {e}", i + 1))
            })?;
        }
        Ok(Self {
            roots: Arc::new(store.roots),
            pinned: self.pinned,
        })
    }

    /// Trusts exactly the certificate `server` presents (whatever names it
    /// carries) and nothing else: how a process reaches its own TLS
    /// listener on loopback, where the certificate's names (a public host
    /// name) do not match `127.0.0.1` and its CA may not be at hand. Only
    /// the holder of `server`'s private key can complete such a handshake.
    pub fn pinned(server: &ServerTls) -> Self {
        Self {
            roots: Arc::default(),
            pinned: Some(Arc::new(PinnedVerifier {
                cert: server.cert.clone(),
                provider: Arc::new(provider()),
            })),
        }
    }

    /// The webpki roots and the extra roots as a tonic client configuration,
    /// for clients built elsewhere (the OTLP exporter); a pinned
    /// certificate is not part of it.
    pub fn tonic_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .with_webpki_roots()
            .trust_anchors(self.roots.iter().cloned())
    }

    /// `endpoint` with TLS as configured (the caller checked that it is
    /// `https://`).
    pub(crate) fn apply(&self, endpoint: Endpoint) -> Result<Endpoint, tonic::transport::Error> {
        match &self.pinned {
            Some(verifier) => {
                endpoint.tls_config_with_verifier(ClientTlsConfig::new(), verifier.clone())
            }
            None => endpoint.tls_config(self.tonic_config()),
        }
    }
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

/// The certificate chain and private key a server presents. Checked when
/// made: the chain has a certificate, the key is one rustls can use, and it
/// belongs to the first certificate.
#[derive(Clone)]
pub struct ServerTls {
    identity: Identity,
    /// The end-entity certificate (for [`ClientTls::pinned`]).
    cert: CertificateDer<'static>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// From a PEM certificate chain (the server's certificate first, then
    /// any intermediates) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = certificates(cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                TlsError::Key("no PEM private key (-----BEGIN PRIVATE KEY-----) in it".into())
            }
            e => TlsError::Key(format!("not valid PEM: {e}")),
        })?;
        // What tonic does with them when serving, done now so that a bad
        // key fails the start instead of every handshake.
        let cert = chain[0].clone();
        rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => {
                    TlsError::Key("does not belong to the (first) certificate".into())
                }
                rustls::Error::InvalidCertificate(_) => {
                    TlsError::Certificate(format!("not a valid certificate: {e}"))
                }
                e => TlsError::Key(format!("not usable: {e}")),
            })?;
        // tonic builds its server configuration with the process's default
        // provider: make it ring, which the package is built with, unless
        // the process chose one.
        if CryptoProvider::get_default().is_none() {
            let _ = provider().install_default();
        }
        Ok(Self {
            identity: Identity::from_pem(cert_pem, key_pem),
            cert,
        })
    }

    /// The configuration for `tonic::transport::Server::tls_config`.
    pub fn config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone())
    }
}
