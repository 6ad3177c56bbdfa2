//! # authz-pep
//!
//! The Policy Enforcement Point SDK of onem2m-authz: what a Rust CSE embeds
//! to enforce access control decisions (TS-0003 6.2.2: the PEP turns a
//! request into a decision request, step 002, asks the PDP, step 003, and
//! enforces the decision, steps 010-011).
//!
//! - [`request`]: a oneM2M request primitive ([`RequestPrimitive`]) and the
//!   hosting CSE's knowledge about it ([`RequestContext`]) into a decision
//!   request ([`DecisionRequestBuilder`]);
//! - [`client`]: [`PepClient`], a client of one or more PDPs (an HTTP/2
//!   channel each, round robin over those in service, an endpoint that
//!   stops answering set aside until a probe answers, per-decision
//!   deadline, retries of unavailable endpoints, fail-closed by default
//!   with an opt-in fail-open list) deciding one request, a batch, or over
//!   a kept-open stream;
//! - [`cache`]: the optional decision cache ([`CacheConfig`]);
//! - [`response`]: a decision as a oneM2M response ([`Enforcement`]):
//!   Permit → proceed, Deny → 4103 with Token Request Information, malformed
//!   → 4000, assigned Local-Token-IDs → `ati`;
//! - [`http`]: [`PepLayer`], a `tower` layer for the oneM2M HTTP binding
//!   (TS-0009) that authorizes every request before the CSE's handler runs
//!   (reading the `mgd`/`cnd` of a `<mgmtObj>` or `<flexContainer>` Create
//!   from its content for `acod` `spty`);
//! - [`certificate`]: who a TLS client certificate says its holder is
//!   ([`CertifiedIds`], [`CertificateAuthenticator`]: the AE-ID of its
//!   subjectAltName URI, or a configured CSE-ID for its DNS name);
//! - [`clock`]: where the request time comes from ([`Clock`]).
//!
//! Embedding the layer in an axum CSE:
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use authz_pep::{CseContext, PepClient, PepConfig, PepLayer};
//!
//! let pdp = PepClient::new(PepConfig::new(["http://127.0.0.1:7171"]))?;
//! let cse = CseContext::new("//home.example", "/mn-cse-123456")?;
//! let app: axum::Router = axum::Router::new()
//!     .fallback(|| async { "the CSE's own request handling" })
//!     .layer(PepLayer::new(pdp, cse));
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! Or deciding directly, for a CSE with its own binding:
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use authz_pep::{CseContext, DecisionRequestBuilder, PepClient, PepConfig, RequestPrimitive};
//! use authz_pep::Operation;
//!
//! let pdp = PepClient::new(PepConfig::new(["http://127.0.0.1:7171"]))?;
//! let cse = CseContext::new("//home.example", "/mn-cse-123456")?;
//! let primitive = RequestPrimitive::new(Operation::Retrieve, "frontDoor", "CownerPhone", "rq-1");
//! let request = DecisionRequestBuilder::new(&cse, &primitive)
//!     .authenticated_as("CownerPhone")
//!     .build()?;
//! let verdict = pdp.decide(request).await;
//! if !verdict.is_permit() {
//!     let rejection = verdict.enforcement(authz_pep::DenyDetail::Minimal);
//!     # let _ = rejection;
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod cache;
pub mod certificate;
pub mod client;
pub mod clock;
mod endpoints;
pub mod error;
pub mod http;
pub mod request;
pub mod response;

pub use cache::CacheConfig;
pub use certificate::{CertificateAuthenticator, CertificateError, CertifiedIds};
pub use client::{
    DEFAULT_KEEPALIVE, DecisionSource, DecisionStream, FailOpenRule, MAX_CACHE_TTL, PepClient,
    PepConfig, RetryPolicy, TlsIdentity, Verdict,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use endpoints::{FIRST_PROBE_AFTER, LAST_PROBE_AFTER};
pub use error::PepError;
pub use http::{
    AcpiChangeReader, AuthenticatedIdentity, Authenticator, AuthorizedRequest, DiscoveryRequest,
    ExtensionIdentity, JsonAcpiChange, JsonSpecialization, OriginatorIp, PepLayer, PepService,
    RegistrationWithoutOrigin, SpecializationReader, Target, TargetResolver, UnstructuredIds,
};
pub use request::{CseContext, DecisionRequestBuilder, RequestContext, RequestPrimitive};
pub use response::{DenyDetail, Enforcement, Rejection, ResponseStatusCode};

/// The wire types the SDK's API takes and gives (`pb::Operation`,
/// `pb::DecisionRequest`, `pb::Decision`), so that an embedding CSE needs
/// no direct dependency on `authz-proto`.
pub use authz_proto::pb;
/// The operation of a request primitive (TS-0004 6.4.1 `op`).
pub use authz_proto::pb::Operation;
