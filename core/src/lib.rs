//! # authz-core
//!
//! The access control decision of oneM2M TS-0003 clause 7.1, shared by every
//! onem2m-authz service: the `<accessControlPolicy>` model in oneM2M's JSON
//! short names ([`model`], [`json`]), its compilation into an evaluation form
//! with validation that names the failing field ([`compile`]), and the
//! reference decision algorithm of clause 7.1.5 ([`eval`]):
//!
//! ```text
//! res_acrs   = res_acr(1) OR ... OR res_acr(K)                     (permit-overrides)
//! res_acr(k) = res_authn(k) AND res_origs(k) AND res_ops(k) AND res_ctxts(k) AND res_objd(k)
//! ```
//!
//! Attributes the request does not carry come through [`attributes`].

#![warn(missing_docs)]

pub mod attributes;
pub mod compile;
pub mod decision;
pub mod eval;
pub mod ids;
mod index;
pub mod json;
pub mod jwe;
pub mod location;
pub mod model;
pub mod request;
pub mod resources;
pub mod time_window;
pub mod token;

pub use attributes::{AttributeSource, InMemoryAttributes, Lookup, NoAttributes};
pub use compile::{CompiledAcp, ValidationError, ValidationErrors};
pub use decision::{AuthorizationStatus, Decision, Effect, PrivilegeKind, RuleRef};
pub use eval::{Applicable, DecideOptions, decide, decide_canonical, role_ids_for_consultation};
pub use ids::HostingContext;
pub use model::{AccessControlPolicy, AccessControlRule, SetOfAcrs, Specialization};
pub use request::{DecisionRequest, Operation, Position};
