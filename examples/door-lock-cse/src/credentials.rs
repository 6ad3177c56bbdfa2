//! Who a request's sender is: a stand-in for the Security Association the
//! developer guide describes (TLS-PSK between the locks and the home gateway,
//! clause 7.1.2, with a psk-lookup-table of `KpsaID → (AE-ID, Kpsa)`).
//!
//! This example serves plain HTTP, so the sender presents its PSK identity
//! and key in a header, `X-Demo-Psk: <KpsaID>:<Kpsa>`, and the CSE looks them
//! up in the same kind of table ([`Credentials`], loaded from
//! `credentials.json`). A match makes the table's AE-ID the authenticated
//! identity; the PEP then sets `authenticated` when `X-M2M-Origin` names that
//! AE (`acaf` rules need it). **The header is not a security mechanism**:
//! over plain HTTP anyone on the path can read the key.
//!
//! Served over HTTPS with client CAs (`--tls-client-ca`), the CSE takes the
//! identity from the client's certificate instead, as a real CSE does: the
//! AE-ID in its subjectAltName (TS-0003 10.1.1.5,
//! [`authz_pep::CertificateAuthenticator`]). [`Senders`] asks the
//! certificate first, and the header when the client presented none (or one
//! that certifies no ID this CSE knows).

use authz_pep::{Authenticator, CertificateAuthenticator, CseContext};
use serde::Deserialize;

/// The demo's PSK header.
pub const X_DEMO_PSK: &str = "x-demo-psk";

/// One row of the psk-lookup-table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Credential {
    /// `KpsaID`, the PSK identity.
    #[serde(rename = "kpsaId")]
    pub kpsa_id: String,
    /// The AE-ID bound to it.
    #[serde(rename = "aeId")]
    pub ae_id: String,
    /// `Kpsa`, the key (hex).
    pub kpsa: String,
}

/// The psk-lookup-table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    /// The rows.
    pub credentials: Vec<Credential>,
}

impl Credentials {
    /// Parses `{"credentials": [{"kpsaId", "aeId", "kpsa"}, ...]}`.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The AE-ID of `kpsa_id` when `kpsa` is its key.
    pub fn lookup(&self, kpsa_id: &str, kpsa: &str) -> Option<&str> {
        self.credentials
            .iter()
            .find(|c| c.kpsa_id == kpsa_id)
            .filter(|c| constant_time_eq(c.kpsa.as_bytes(), kpsa.as_bytes()))
            .map(|c| c.ae_id.as_str())
    }
}

impl Authenticator for Credentials {
    fn authenticate(&self, parts: &http::request::Parts) -> Option<String> {
        let value = parts.headers.get(X_DEMO_PSK)?.to_str().ok()?;
        let (id, key) = value.trim().rsplit_once(':')?;
        self.lookup(id, key).map(str::to_owned)
    }
}

/// Who the sender is: the AE-ID of its TLS client certificate, if it
/// presented one that certifies an ID, otherwise the PSK header's.
pub struct Senders {
    certificates: CertificateAuthenticator,
    psk: Credentials,
}

impl Senders {
    /// For the hosting CSE `cse`, with the psk-lookup-table `psk`.
    pub fn new(cse: CseContext, psk: Credentials) -> Self {
        Self {
            certificates: CertificateAuthenticator::new(cse),
            psk,
        }
    }
}

impl Authenticator for Senders {
    fn authenticate(&self, parts: &http::request::Parts) -> Option<String> {
        self.certificates
            .authenticate(parts)
            .or_else(|| self.psk.authenticate(parts))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_header() {
        let c = Credentials::parse(
            r#"{"credentials": [{"kpsaId": "AE123456789012-Lock@in.provider.com", "aeId": "Clock-AE1", "kpsa": "1a2b3c4d5e6f7a8b"}]}"#,
        )
        .expect("parse");
        assert_eq!(
            c.lookup("AE123456789012-Lock@in.provider.com", "1a2b3c4d5e6f7a8b"),
            Some("Clock-AE1")
        );
        assert_eq!(
            c.lookup("AE123456789012-Lock@in.provider.com", "1a2b3c4d5e6f7a8c"),
            None
        );
        let parts = http::Request::builder()
            .header(
                X_DEMO_PSK,
                "AE123456789012-Lock@in.provider.com:1a2b3c4d5e6f7a8b",
            )
            .body(())
            .expect("request")
            .into_parts()
            .0;
        assert_eq!(c.authenticate(&parts).as_deref(), Some("Clock-AE1"));
    }
}
