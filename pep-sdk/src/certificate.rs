//! Who a TLS client certificate says its holder is, for the `authenticated`
//! flag of a decision request (TS-0003 7.1.2, table 7.1.5-1) and the check
//! that an AE states its own ID as From (TS-0003 7.2.1).
//!
//! TS-0003 8.1.2.4 and 10.1.1 name the identity a certificate carries in
//! its subjectAltName extension:
//!
//! - an **AE-ID certificate** holds "the full URI representation of the
//!   AE-ID" (10.1.1.5), and a match is "a URI ... that is an exact match
//!   for the Absolute AE-ID" (8.1.2.4): a URI `//sp.example/cse/Cxyz`, or
//!   the same with a scheme (`https://sp.example/cse/Cxyz`), whose host is
//!   the SP domain (the CA's name constraints bind it) and whose path is
//!   the SP-relative AE-ID;
//! - a **CSE-ID certificate** holds "the public domain name representation
//!   of the CSE-ID" (10.1.1.7) as a DNS name. The texts here do not say how
//!   that name is formed, so the CSE configures which name stands for which
//!   CSE-ID ([`CertificateAuthenticator::with_cse`]).
//!
//! Certificates "shall not include wildcards" (10.1.1.5, 10.1.1.7): a name
//! with `*` authenticates no one.
//!
//! The TLS acceptor verifies the chain during the handshake, reads the
//! client's end-entity certificate with [`CertifiedIds::from_der`] once per
//! connection and puts the result into every request of that connection as
//! an extension; [`CertificateAuthenticator`] then tells the PEP layer who
//! the sender is.

use crate::error::PepError;
use crate::http::Authenticator;
use crate::request::{CseContext, is_absolute_ae_id};
use authz_core::ids::{check_originator_id, is_fqdn};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The bytes are not a DER X.509 certificate.
    #[error("not a DER X.509 certificate: {0}")]
    NotX509(String),
    /// The subjectAltName extension is present but cannot be read (or
    /// occurs twice).
    #[error("subjectAltName extension not readable: {0}")]
    SubjectAltName(String),
}

/// The oneM2M identities a client certificate's subjectAltName holds:
/// the absolute AE-IDs of its URIs and its DNS names (lower case). Names
/// that are neither (e-mail addresses, IP addresses, URIs that are no
/// AE-ID, names with wildcards) are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertifiedIds {
    ae_ids: Vec<String>,
    dns_names: Vec<String>,
}

impl CertifiedIds {
    /// Reads the subjectAltName of a DER certificate (the client's
    /// end-entity certificate of a verified TLS session). A certificate
    /// without the extension certifies no ID.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| CertificateError::NotX509(e.to_string()))?;
        let mut ids = Self::default();
        let Some(san) = cert
            .subject_alternative_name()
            .map_err(|e| CertificateError::SubjectAltName(e.to_string()))?
        else {
            return Ok(ids);
        };
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => ids.ae_ids.extend(ae_id_from_uri(uri)),
                GeneralName::DNSName(dns) if is_fqdn(dns) => {
                    ids.dns_names.push(dns.to_ascii_lowercase());
                }
                _ => {}
            }
        }
        Ok(ids)
    }

    /// The absolute AE-IDs (`//sp/cse/Cxyz`, `//sp/Sxyz`), in certificate
    /// order.
    pub fn ae_ids(&self) -> &[String] {
        &self.ae_ids
    }

    /// The DNS names (lower case), in certificate order.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }
}

/// The absolute AE-ID a subjectAltName URI represents (TS-0003 10.1.1.5):
/// `[scheme:]//fqdn/path` with no user, port, query or fragment, whose
/// `//fqdn/path` is an AE-ID (`//sp/cse/C...`, `//sp/cse/S...` or
/// `//sp/S...`, no wildcard). The domain is lower-cased, as domains compare
/// case-insensitively; the path is kept as written.
pub fn ae_id_from_uri(uri: &str) -> Option<String> {
    // RFC 3986 3.1: a scheme is a letter followed by letters, digits, `+`,
    // `-` and `.`.
    let is_scheme = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    };
    let hierarchical = match uri.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => rest,
        _ => uri,
    };
    let (host, path) = hierarchical.strip_prefix("//")?.split_once('/')?;
    if !is_fqdn(host) || path.contains(['?', '#', '%']) {
        return None;
    }
    let id = format!("//{}/{path}", host.to_ascii_lowercase());
    (check_originator_id(&id).is_ok() && is_absolute_ae_id(&id)).then_some(id)
}

/// An [`Authenticator`] for a CSE serving TLS with client certificates:
/// the sender is the AE-ID of its certificate ([`CertifiedIds`], put into
/// the request by the acceptor), or the CSE-ID configured for one of its
/// DNS names.
///
/// A certificate may hold several IDs: the one that names the request's
/// From (`X-M2M-Origin`) is taken, otherwise the first, so that an AE
/// stating another AE's ID is refused with 4106 by the layer.
#[derive(Debug, Clone)]
pub struct CertificateAuthenticator {
    cse: CseContext,
    /// `(DNS name, CSE-ID)` pairs, the name lower case.
    cse_names: Vec<(String, String)>,
}

impl CertificateAuthenticator {
    /// For the hosting CSE `cse` (which reads stem and SP-relative From
    /// values), with no CSE-ID certificates known yet.
    pub fn new(cse: CseContext) -> Self {
        Self {
            cse,
            cse_names: Vec::new(),
        }
    }

    /// A CSE-ID certificate with the DNS name `dns_name` (the public domain
    /// name representation of the CSE-ID, TS-0003 10.1.1.7) authenticates
    /// the CSE `cse_id` (`/id-in`, or absolute `//sp/id-in`). Fails, naming
    /// the argument, for a name that is not an FQDN or an ID that is not a
    /// CSE-ID.
    pub fn with_cse(mut self, dns_name: &str, cse_id: &str) -> Result<Self, PepError> {
        if !is_fqdn(dns_name) {
            return Err(PepError::Argument {
                argument: "CertificateAuthenticator::with_cse dns_name",
                reason: format!("'{dns_name}' is not an FQDN"),
            });
        }
        let is_cse_id = cse_id.starts_with('/')
            && !self.cse.names_ae(cse_id)
            && self.cse.hosting().canonicalize(cse_id).is_ok_and(|a| {
                a.strip_prefix("//")
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(_, cse)| !cse.contains('/'))
            });
        if !is_cse_id {
            return Err(PepError::Argument {
                argument: "CertificateAuthenticator::with_cse cse_id",
                reason: format!("'{cse_id}' is not a CSE-ID (/cse-id or //sp/cse-id)"),
            });
        }
        self.cse_names
            .push((dns_name.to_ascii_lowercase(), cse_id.to_owned()));
        Ok(self)
    }
}

impl Authenticator for CertificateAuthenticator {
    fn authenticate(&self, parts: &http::request::Parts) -> Option<String> {
        let ids = parts.extensions.get::<CertifiedIds>()?;
        let cses = ids.dns_names.iter().filter_map(|dns| {
            self.cse_names
                .iter()
                .find(|(name, _)| name == dns)
                .map(|(_, cse)| cse)
        });
        let mut certified = ids.ae_ids.iter().chain(cses);
        let from = parts
            .headers
            .get("x-m2m-origin")
            .and_then(|v| v.to_str().ok());
        if let Some(from) = from
            && let Some(id) = certified
                .clone()
                .find(|id| self.cse.same_originator(id, from))
        {
            return Some(id.clone());
        }
        certified.next().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TS-0003 10.1.1.5: the full URI representation of an AE-ID, with or
    /// without a scheme; anything that is no AE-ID certifies nothing.
    #[test]
    fn ae_ids_from_subject_alt_name_uris_10_1_1_5() {
        for (uri, id) in [
            (
                "//home.example/mn-cse-123456/Clock-AE1",
                "//home.example/mn-cse-123456/Clock-AE1",
            ),
            (
                "https://Home.Example/mn-cse-123456/Clock-AE1",
                "//home.example/mn-cse-123456/Clock-AE1",
            ),
            ("coap://sp.example/S0042", "//sp.example/S0042"),
        ] {
            assert_eq!(ae_id_from_uri(uri).as_deref(), Some(id), "{uri}");
        }
        for uri in [
            "//home.example/mn-cse-123456/C*",         // a wildcard
            "//home.example/mn-cse-123456",            // a CSE-ID
            "//home.example/mn-cse-123456/x/Clock",    // too deep
            "//home.example/mn-cse-123456/Xlock",      // no C or S stem
            "//home.example:8443/mn-cse-123456/Clock", // a port
            "//u@home.example/mn-cse-123456/Clock",    // a user
            "//home.example/mn-cse-123456/Clock?x=1",  // a query
            "//home.example/mn-cse-123456/Clock#f",    // a fragment
            "//home.example/mn-cse-123456/C%41",       // an escape
            "//home.example//Clock",                   // an empty segment
            "//home_example/cse/Clock",                // no FQDN
            "urn:onem2m:Clock",                        // no authority
            "mailto:owner@home.example",
            "",
        ] {
            assert_eq!(ae_id_from_uri(uri), None, "{uri}");
        }
    }
}
