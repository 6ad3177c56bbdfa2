//! The errors of the PEP SDK. A decision itself never fails: an unreachable
//! PDP becomes a Deny (or a Permit for an opted-in fail-open rule) with a
//! reason, see [`crate::client`]. What remains are requests the PEP cannot
//! turn into a decision request (mapped to 4000 BAD_REQUEST), configuration
//! errors, and calls other than decisions (`Status`) that did not get an
//! answer.

use thiserror::Error;

/// Why the PEP could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PepError {
    /// The request primitive is malformed and cannot be authorized; a CSE
    /// answers it with 4000 BAD_REQUEST.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The hosting CSE's identity is not usable.
    #[error("hosting CSE: {0}")]
    Hosting(String),
    /// No PDP endpoint was configured.
    #[error("no PDP endpoint configured")]
    NoEndpoint,
    /// A PDP endpoint is not a usable URI.
    #[error("PDP endpoint '{endpoint}': {reason}")]
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting of the configuration cannot be used.
    #[error("PepConfig::{setting}: {reason}")]
    Config {
        /// The setting, as the field of [`crate::PepConfig`] is named.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument of a constructor other than [`crate::PepConfig`]'s
    /// cannot be used (`CertificateAuthenticator::with_cse dns_name`).
    #[error("{argument}: {reason}")]
    Argument {
        /// The function and its argument.
        argument: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The PDP did not answer a call (after the retries, within the deadline).
    #[error("PDP unreachable: {0}")]
    Unreachable(String),
    /// The PDP answered, but its replica did not reach the revision or
    /// store version waited for within the timeout
    /// ([`crate::PepClient::wait_for_version`]): a PDP that lags or
    /// follows another PRP store, not a dead one.
    #[error("PDP behind: {0}")]
    Behind(String),
    /// The PDP answered a call with an error that is not about reachability.
    #[error("PDP error: {0}")]
    Pdp(String),
}
