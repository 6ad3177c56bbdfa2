//! placeholder
use crate::{attributes::AttributeSource, compile::CompiledAcp, decision::*, ids::HostingContext, request::DecisionRequest};

/// One ACP of the applicable set and which of its privileges apply.
#[derive(Debug, Clone, Copy)]
pub struct Applicable<'a> { pub acp: &'a CompiledAcp, pub kind: PrivilegeKind }

/// Options of one decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecideOptions<'a> {
    /// Build an [`Explanation`].
    pub explain: bool,
    /// Roles already verified by other means (e.g. token `rids`), matched like verified `rids`.
    pub granted_roles: &'a [String],
}

/// Decides one request against the applicable policies (TS-0003 7.1.5).
pub fn decide(_req: &DecisionRequest, _ctx: &HostingContext, _policies: &[Applicable<'_>], _attrs: &dyn AttributeSource, _opts: &DecideOptions<'_>) -> Decision { todo!() }
