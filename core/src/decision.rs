//! What the engine answers: Permit or Deny (TS-0003 7.1.4), a status in the
//! terms of oneM2M's `m2m:authorizationStatus` (TS-0004; spec notes §7.5),
//! the rule that permitted, and for a Deny why each rule that named the
//! originator did not permit.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use smol_str::SmolStr;

/// `m2m:authorizationDecision`: 1 PERMIT, 2 DENY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Effect {
    /// Access granted.
    Permit,
    /// Access refused.
    Deny,
}

impl Effect {
    /// The `m2m:authorizationDecision` code.
    pub fn code(self) -> u32 {
        match self {
            Effect::Permit => 1,
            Effect::Deny => 2,
        }
    }
}

/// `m2m:authorizationStatus` (TS-0001 9.6.41).
///
/// How the engine uses it: `Ok` for a Permit and for a Deny where some rule
/// named the originator but its conditions failed; `NotApplicable` for a Deny
/// where no rule of the applicable policies names the originator (or there
/// are no applicable policies); `MissingAttribute` for a Deny where a rule
/// could not be decided because an attribute was unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizationStatus {
    /// 1: decided.
    Ok,
    /// 2: no applicable rule.
    NotApplicable,
    /// 3: an attribute the decision needed was unavailable.
    MissingAttribute,
    /// 4: the request or a policy was malformed.
    SyntaxError,
    /// 5: the decision could not be processed.
    ProcessingError,
}

impl AuthorizationStatus {
    /// The `m2m:authorizationStatus` code.
    pub fn code(self) -> u32 {
        match self {
            Self::Ok => 1,
            Self::NotApplicable => 2,
            Self::MissingAttribute => 3,
            Self::SyntaxError => 4,
            Self::ProcessingError => 5,
        }
    }
}

/// Which set of rules of an ACP applies (TS-0003 7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivilegeKind {
    /// `pv`: for requests on resources that link the ACP.
    Privileges,
    /// `pvs`: for requests on the ACP itself.
    SelfPrivileges,
}

impl PrivilegeKind {
    /// The short name, `pv` or `pvs`.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Privileges => "pv",
            Self::SelfPrivileges => "pvs",
        }
    }
}

/// Identifies one rule: ACP, which privileges, index in `acr`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RuleRef {
    /// The ACP's ID (held inline when short, so naming it in a Permit
    /// neither touches another cache line nor counts a reference).
    pub acp: SmolStr,
    /// `pv` or `pvs`.
    pub privileges: PrivilegeKind,
    /// Index of the rule in `acr`.
    pub rule: usize,
}

impl RuleRef {
    /// Appends the [`Display`](fmt::Display) form to `out` without the
    /// formatting machinery (every Permit's summary names its rule).
    pub fn write_to(&self, out: &mut String) {
        out.push_str(&self.acp);
        out.push('.');
        out.push_str(self.privileges.short_name());
        out.push_str(".acr[");
        out.push_str(itoa::Buffer::new().format(self.rule));
        out.push(']');
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.acr[{}]",
            self.acp,
            self.privileges.short_name(),
            self.rule
        )
    }
}

/// An attribute the engine needed and could not get.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "attribute", rename_all = "snake_case")]
pub enum MissingAttribute {
    /// Whether the originator holds this role.
    Role {
        /// The Role-ID.
        role: String,
        /// Why it could not be verified.
        reason: String,
    },
    /// Whether the originator is a member of this group.
    GroupMembership {
        /// The group resource ID.
        group: String,
        /// Why it could not be resolved.
        reason: String,
    },
    /// Whether an `acor` entry, read as a resource ID, names a `<group>`
    /// (Decision 3): until that is known the entry is undetermined as an
    /// originator ID.
    GroupKind {
        /// The entry as an absolute resource ID.
        id: String,
        /// Why it could not be told.
        reason: String,
    },
    /// The originator's IP address (`rq_ip`).
    IpAddress {
        /// Why it is unknown.
        reason: String,
    },
    /// The originator's position.
    Position {
        /// Why it is unknown.
        reason: String,
    },
    /// The originator's country.
    Country {
        /// Why it is unknown.
        reason: String,
    },
    /// The type of the target resource (`tgty`), which an `acod` `ty` needs.
    TargetType {
        /// Why it is unknown.
        reason: String,
    },
    /// The type of the resource a CREATE makes (`rrt`), which `chty` needs.
    ResourceType {
        /// Why it is unknown.
        reason: String,
    },
    /// The specialization (`mgd`/`cnd`) of a created `<mgmtObj>` or
    /// `<flexContainer>`, which an `acod` `spty` needs.
    Specialization {
        /// Why it is unknown.
        reason: String,
    },
    /// What a DAS consulted for the request (Direct Dynamic Authorization,
    /// TS-0003 7.3.2.2) would have granted: it gave no usable answer.
    DynamicAuthorization {
        /// The DAS endpoint.
        das: String,
        /// Why its answer is missing.
        reason: String,
    },
    /// A token the request names by Token-ID or Local-Token-ID that could
    /// not be retrieved (TS-0003 7.3.2.3 steps 5 and 6.1.2: DAS or PIP
    /// unreachable).
    Token {
        /// The Token-ID or Local-Token-ID as the request gives it.
        id: String,
        /// Why it could not be retrieved.
        reason: String,
    },
}

impl fmt::Display for MissingAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role { role, reason } => write!(f, "role {role}: {reason}"),
            Self::GroupMembership { group, reason } => {
                write!(f, "membership of group {group}: {reason}")
            }
            Self::GroupKind { id, reason } => write!(f, "whether {id} is a <group>: {reason}"),
            Self::IpAddress { reason } => write!(f, "originator IP address: {reason}"),
            Self::Position { reason } => write!(f, "originator position: {reason}"),
            Self::Country { reason } => write!(f, "originator country: {reason}"),
            Self::TargetType { reason } => write!(f, "target resource type: {reason}"),
            Self::ResourceType { reason } => write!(f, "type of the created resource: {reason}"),
            Self::Specialization { reason } => {
                write!(f, "specialization of the created resource: {reason}")
            }
            Self::DynamicAuthorization { das, reason } => {
                write!(f, "dynamic authorization by {das}: {reason}")
            }
            Self::Token { id, reason } => write!(f, "token {id}: {reason}"),
        }
    }
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Permit or Deny.
    pub effect: Effect,
    /// How the decision was reached.
    pub status: AuthorizationStatus,
    /// For a Permit: the rule that permitted.
    pub permitted_by: Option<RuleRef>,
    /// Attributes that were needed and unavailable.
    pub missing: Vec<MissingAttribute>,
    /// Present when an explanation was asked for.
    pub explanation: Option<Explanation>,
}

impl Decision {
    /// True for a Permit.
    pub fn is_permit(&self) -> bool {
        self.effect == Effect::Permit
    }
}

/// Why the engine decided as it did.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Explanation {
    /// For a Permit: the `acor` entry that matched the originator in the permitting rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_originator: Option<String>,
    /// For a Deny: every rule whose originators matched, with the first
    /// condition that failed: the first [`MAX_EXPLAINED`] of them, each
    /// with its first [`MAX_EXPLAINED`] `acco` or `acod` elements.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_rules: Vec<RuleFailure>,
    /// How many more rules failed than `failed_rules` lists.
    #[serde(skip_serializing_if = "is_zero", default)]
    pub more_failed_rules: usize,
}

/// How many failed rules an explanation lists, and `acco` or `acod`
/// elements per failed rule: a policy within the record bound (1 MiB) can
/// hold 100 000 rules, whose full account would be a message no peer
/// decodes (tonic's default limit is 4 MiB) and would cost more than the
/// decision.
pub const MAX_EXPLAINED: usize = 64;

/// How many list entries (`chty`, ...) a failure's text shows.
const MAX_LISTED: usize = 16;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `[a, b, ...]` of at most [`MAX_LISTED`] entries, then how many in all.
pub(crate) fn list_text<T: fmt::Debug>(items: &[T]) -> String {
    if items.len() <= MAX_LISTED {
        return format!("{items:?}");
    }
    let shown: Vec<String> = items[..MAX_LISTED]
        .iter()
        .map(|i| format!("{i:?}"))
        .collect();
    format!("[{}, ... ({} in all)]", shown.join(", "), items.len())
}

impl Explanation {
    /// Drops the openings of time windows at or after `until` from the
    /// failed rules of the ACP `acp`: a policy that ends then (a dynamic
    /// ACP's lifetime, a token's notAfter) opens nothing after it, so such
    /// a window "never opens again" for this request.
    pub fn end_openings(&mut self, acp: &str, until: DateTime<Utc>) {
        for failure in self.failed_rules.iter_mut().filter(|f| f.rule.acp == acp) {
            if let FailedCondition::Context { elements } = &mut failure.failed {
                for element in elements {
                    if let ContextFailure::TimeWindow { next_open } = element
                        && next_open.is_some_and(|t| t >= until)
                    {
                        *next_open = None;
                    }
                }
            }
        }
    }
}

/// A rule that named the originator but did not permit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFailure {
    /// The rule.
    pub rule: RuleRef,
    /// The `acor` entry that matched the originator.
    pub matched_originator: String,
    /// The first condition that failed, in the order operation,
    /// authentication flag, contexts, object details.
    pub failed: FailedCondition,
}

/// The first condition of a rule that failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "condition", rename_all = "snake_case")]
pub enum FailedCondition {
    /// `acop` lacks the requested operation's bit.
    Operation {
        /// The bit the request needs.
        requested: u32,
        /// The rule's `acop`.
        allowed: u32,
    },
    /// `acaf` is true and the originator is not authenticated (table 7.1.5-1).
    AuthenticationFlag,
    /// No `acco` element matched; one entry per element, in order.
    Context {
        /// The first failing part of each element.
        elements: Vec<ContextFailure>,
    },
    /// No `acod` element matched the CREATE.
    ObjectDetails {
        /// Why, per element.
        elements: Vec<String>,
    },
}

/// The first failing part of one `acco` element.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "part", rename_all = "snake_case")]
pub enum ContextFailure {
    /// `actw`: the request time is outside every window.
    TimeWindow {
        /// When the earliest window of this element next opens, if ever.
        next_open: Option<DateTime<Utc>>,
    },
    /// `acip`: the IP address is in no listed range (or unknown).
    IpAddress {
        /// Why.
        reason: String,
    },
    /// `aclr`: the location is outside the region (or unknown).
    Location {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for FailedCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operation { requested, allowed } => {
                write!(f, "operation bit {requested} not in acop {allowed}")
            }
            Self::AuthenticationFlag => f.write_str("acaf requires an authenticated originator"),
            Self::Context { elements } => {
                f.write_str("no acco element matched: ")?;
                for (i, e) in elements.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "acco[{i}] {e}")?;
                }
                Ok(())
            }
            Self::ObjectDetails { elements } => {
                write!(f, "no acod element matched: {}", elements.join("; "))
            }
        }
    }
}

impl fmt::Display for ContextFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TimeWindow { next_open: Some(t) } => {
                write!(f, "outside actw, next opens {}", t.format("%Y%m%dT%H%M%S"))
            }
            Self::TimeWindow { next_open: None } => f.write_str("outside actw, never opens again"),
            Self::IpAddress { reason } => write!(f, "acip: {reason}"),
            Self::Location { reason } => write!(f, "aclr: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-built form of a rule reference is its `Display` form.
    #[test]
    fn rule_ref_write_to_equals_display() {
        for (acp, privileges, rule) in [
            ("acpFrontDoor", PrivilegeKind::Privileges, 0),
            ("/id-in/acp-x", PrivilegeKind::SelfPrivileges, 12_345),
        ] {
            let r = RuleRef {
                acp: acp.into(),
                privileges,
                rule,
            };
            let mut s = String::from("x ");
            r.write_to(&mut s);
            assert_eq!(s, format!("x {r}"));
        }
        assert_eq!(
            RuleRef {
                acp: "a".into(),
                privileges: PrivilegeKind::SelfPrivileges,
                rule: 3
            }
            .to_string(),
            "a.pvs.acr[3]"
        );
    }
}
