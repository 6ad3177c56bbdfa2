//! # authz-proto
//!
//! The wire contract of onem2m-authz: the protobuf package `onem2m.authz.v1`
//! ([`pb`]) whose shared messages every service (PDP, PRP, PIP, DAS) uses,
//! and the conversions between those messages and the core model
//! ([`convert`]) or oneM2M's JSON short names ([`das_json`] for `dreq`).
//!
//! The `.proto` files live in `proto/onem2m/authz/v1/` of this crate and are
//! compiled by `build.rs` with protox, so no system `protoc` is needed:
//!
//! - `acp.proto`: the `<accessControlPolicy>` resource and its rules
//!   (TS-0003 7.1.3; TS-0004 6.3.5.26-28);
//! - `pip.proto`: the Policy Information Point (roles, tokens, groups,
//!   positions, countries; TS-0003 6.2.2, 7.4.3, Annex F);
//! - `decision.proto`: the decision request of TS-0003 Annex G, the decision,
//!   its explanation, and the dynamic authorization data types (TS-0004
//!   6.3.5.41-48).
//!
//! Errors from converting a request surface to gRPC callers through
//! [`invalid_argument`], which carries a `google.rpc.BadRequest` naming each
//! field.
//!
//! Around the contract, what every process shares to serve and to connect:
//! [`tls`] (certificates, keys, client CAs), [`endpoint`], [`serving`] and
//! [`listener`] (the gRPC servers), and [`https`] (HTTP endpoints over TLS).

#![warn(missing_docs)]

pub mod convert;
pub mod das_json;
pub mod endpoint;
pub mod https;
pub mod listener;
pub mod serving;
pub mod tls;

pub use convert::{ConversionError, ConvertedRequest, invalid_argument};

/// Messages, clients and servers generated from package
/// `onem2m.authz.v1`.
// The .proto comments name oneM2M resources as the specifications write
// them (`<role>`, `<mgmtObj>`), which rustdoc would read as HTML tags.
#[allow(
    clippy::all,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls,
    rustdoc::broken_intra_doc_links
)]
pub mod pb {
    tonic::include_proto!("onem2m.authz.v1");

    /// The encoded `google.protobuf.FileDescriptorSet` of the package (with
    /// its imports), for registration with gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("onem2m_authz_descriptor");
}
