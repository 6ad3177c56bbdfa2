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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The rows.
    pub credentials: Vec<Credential>,
}

/// Why a psk-lookup-table does not load.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Not the table's JSON shape.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A row that could never authenticate anyone as meant.
    #[error("credentials[{row}].{field}: {reason}")]
    Invalid {
        /// The row, from 0.
        row: usize,
        /// `kpsaId`, `aeId` or `kpsa`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The shortest key taken: 64 bits in hex, as the example's keys.
const MIN_KEY_HEX_DIGITS: usize = 16;

impl Credentials {
    /// Parses `{"credentials": [{"kpsaId", "aeId", "kpsa"}, ...]}`: each
    /// `kpsaId` once, without white space or `:` (the header's separator),
    /// each `aeId` an AE-ID or CSE-ID, each `kpsa` at least
    /// 16 hexadecimal digits, since an empty or short key authenticates
    /// anyone who guesses it.
    pub fn parse(text: &str) -> Result<Self, CredentialsError> {
        // As every JSON file of the project: a BOM skipped, a repeated key
        // refused; then read again for errors with their line and column.
        authz_core::json::parse_json(text)?;
        let table: Self = serde_json::from_str(text.trim_start_matches('\u{feff}'))?;
        let invalid = |row, field, reason: String| CredentialsError::Invalid { row, field, reason };
        for (row, c) in table.credentials.iter().enumerate() {
            if c.kpsa_id.is_empty() || !c.kpsa_id.bytes().all(|b| b.is_ascii_graphic() && b != b':')
            {
                return Err(invalid(
                    row,
                    "kpsaId",
                    format!(
                        "'{}' is not a PSK identity (printable, no ':')",
                        c.kpsa_id.escape_debug()
                    ),
                ));
            }
            if let Some(first) = table.credentials[..row]
                .iter()
                .position(|e| e.kpsa_id == c.kpsa_id)
            {
                return Err(invalid(
                    row,
                    "kpsaId",
                    format!("{} is credentials[{first}]'s already", c.kpsa_id),
                ));
            }
            if let Err(e) = authz_core::ids::check_originator_id(&c.ae_id) {
                return Err(invalid(row, "aeId", e.to_string()));
            }
            if c.kpsa.len() < MIN_KEY_HEX_DIGITS || !c.kpsa.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    row,
                    "kpsa",
                    format!("a key is at least {MIN_KEY_HEX_DIGITS} hexadecimal digits"),
                ));
            }
        }
        Ok(table)
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

    /// As every JSON file of the project (README: "A leading byte order
    /// mark ... is skipped (RFC 8259 8.1)"; a repeated key is refused).
    #[test]
    fn a_bom_is_skipped_and_a_repeated_key_refused() {
        let row = r#"{"kpsaId": "x", "aeId": "Cx", "kpsa": "0a1b2c3d4e5f6a7b"}"#;
        let with_bom = format!("\u{feff}{{\"credentials\": [{row}]}}");
        let c = Credentials::parse(&with_bom).expect("with a BOM");
        assert_eq!(c.lookup("x", "0a1b2c3d4e5f6a7b"), Some("Cx"));
        let twice = r#"{"credentials": [{"kpsaId": "x", "aeId": "Cx", "aeId": "Cy", "kpsa": "0a1b2c3d4e5f6a7b"}]}"#;
        let err = Credentials::parse(twice).expect_err("a repeated key");
        assert!(err.to_string().contains("aeId"), "{err}");
    }

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

    /// A row that could not authenticate anyone as meant (an empty key, a
    /// second row for one identity, an AE-ID no request can carry) stops
    /// the load, naming the row and field.
    #[test]
    fn rows_that_cannot_authenticate_as_meant_are_refused() {
        let row = |id: &str, ae: &str, key: &str| {
            format!(r#"{{"kpsaId": "{id}", "aeId": "{ae}", "kpsa": "{key}"}}"#)
        };
        let ok = row("x", "Cx", "0a1b2c3d4e5f6a7b");
        for (rows, says) in [
            (vec![row("x", "Cx", "")], "credentials[0].kpsa"),
            (vec![row("x", "Cx", "short")], "credentials[0].kpsa"),
            (
                vec![ok.clone(), row("x", "Cy", "1a2b3c4d5e6f7a8b")],
                "credentials[1].kpsaId",
            ),
            (
                vec![row("a:b", "Cx", "0a1b2c3d4e5f6a7b")],
                "credentials[0].kpsaId",
            ),
            (
                vec![row("x", "C x", "0a1b2c3d4e5f6a7b")],
                "credentials[0].aeId",
            ),
            (
                vec![row("x", "all", "0a1b2c3d4e5f6a7b")],
                "credentials[0].aeId",
            ),
            (
                vec![row("x", "", "0a1b2c3d4e5f6a7b")],
                "credentials[0].aeId",
            ),
        ] {
            let text = format!(r#"{{"credentials": [{}]}}"#, rows.join(","));
            let e = Credentials::parse(&text).expect_err(says);
            assert!(e.to_string().starts_with(says), "{says}: {e}");
        }
        let unknown = r#"{"credentials": [{"kpsaId": "x", "aeId": "Cx", "kpsa": "0a1b2c3d4e5f6a7b", "note": 1}]}"#;
        assert!(Credentials::parse(unknown).is_err());
        assert!(Credentials::parse(&format!(r#"{{"credentials": [{ok}]}}"#)).is_ok());
        // The example's own table loads.
        assert!(Credentials::parse(include_str!("../credentials.json")).is_ok());
    }
}
