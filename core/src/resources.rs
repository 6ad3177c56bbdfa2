//! Target resources and which policies apply to them (TS-0001 10.2.3.1,
//! TS-0004 7.3.3.15; spec notes §2.3).
//!
//! The PRP stores a [`Resource`] per target the PDP will be asked about; both
//! the PRP (`GetApplicablePolicies`) and the PDP (its local replica) resolve
//! the applicable set with [`applicable_policies`], so the order of the
//! clause exists once:
//!
//! 1. the target is an `<accessControlPolicy>` → its own `pvs`;
//! 2. the target's type has no `acpi` attribute → its parent's set, recursively;
//! 3. `acpi` is set (non-empty) → the `pv` of each referenced ACP;
//! 4. `acpi` is not set → the default policy: full access for the custodian
//!    when set, else for the creator, nobody else.
//!
//! An Update that changes only the target's `acpi` (TS-0001 9.6.1.3.2) is
//! judged differently, by [`acpi_change_policies`]: UPDATE in the `pvs` of
//! the ACPs the target references now; with `acpi` not set, its default
//! policy (as step 4); a target without `acpi` (an ACP, a type of
//! [`TYPES_WITHOUT_ACPI`]) has none to change. [`applicable_policies_for`]
//! picks one or the other for a request.
//!
//! Dynamic ACPs granted by Direct Dynamic Authorization are bound to the
//! resource the grant targeted and join its set until they expire
//! (Decision 7). A resource that takes its policies from its parent (step
//! 2; a contentInstance) counts its own and those of the resources it takes
//! them from ([`dynamic_acp_holders`]), so a grant for a container covers
//! its contentInstances, but one for a contentInstance covers only it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use smallvec::{SmallVec, smallvec};

use crate::decision::PrivilegeKind;
use crate::model::{AccessControlRule, SetOfAcrs, acop};

/// Resource type code of `<accessControlPolicy>`.
pub const TY_ACP: u32 = 1;

/// Resource types that have no `accessControlPolicyIDs` attribute and take
/// their parent's: contentInstance (4), pollingChannel (15),
/// notificationTargetPolicy (26), timeSeriesInstance (30),
/// flexContainerInstance (58) (TS-0001 short-name table; spec notes §2.3).
pub const TYPES_WITHOUT_ACPI: [u32; 5] = [4, 15, 26, 30, 58];

/// Whether a resource of type `ty` has an `accessControlPolicyIDs`
/// attribute: every type but `<accessControlPolicy>` and
/// [`TYPES_WITHOUT_ACPI`] (spec notes §2.3).
pub fn type_has_acpi(ty: u32) -> bool {
    ty != TY_ACP && !TYPES_WITHOUT_ACPI.contains(&ty)
}

/// A target resource as the PRP records it.
///
/// Read strictly, like every policy document: a misspelled attribute
/// (`acpii`) would otherwise leave the resource without its `acpi`, under
/// the default policy, without a word.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// `ri`.
    #[serde(rename = "ri")]
    pub resource_id: String,
    /// `pi`; empty for a root (CSEBase).
    #[serde(rename = "pi", default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// `ty`.
    #[serde(rename = "ty")]
    pub resource_type: u32,
    /// `acpi`; `None` when the attribute is not set.
    #[serde(rename = "acpi", default, skip_serializing_if = "Option::is_none")]
    pub acpi: Option<Vec<String>>,
    /// `daci`: dynamicAuthorizationConsultationIDs.
    #[serde(rename = "daci", default, skip_serializing_if = "Option::is_none")]
    pub daci: Option<Vec<String>>,
    /// `cr`: the originator of the successful Create.
    #[serde(rename = "cr", default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// `cstn`: custodian (Release 4), who replaces the creator in the default policy.
    #[serde(rename = "cstn", default, skip_serializing_if = "Option::is_none")]
    pub custodian: Option<String>,
    /// `dae` dynamicAuthorizationEnabled of a
    /// `<dynamicAuthorizationConsultation>` (ty 34, TS-0001 9.6.40).
    #[serde(rename = "dae", default, skip_serializing_if = "Option::is_none")]
    pub dac_enabled: Option<bool>,
    /// `dap` dynamicAuthorizationPoA of a `<dynamicAuthorizationConsultation>`:
    /// where its DAS is reached.
    #[serde(rename = "dap", default, skip_serializing_if = "Vec::is_empty")]
    pub dac_poa: Vec<String>,
    /// `dal` dynamicAuthorizationLifetime of a
    /// `<dynamicAuthorizationConsultation>` (m2m:timestamp), proposed as `ppl`.
    #[serde(rename = "dal", default, skip_serializing_if = "Option::is_none")]
    pub dac_lifetime: Option<String>,
    /// `aei` AE-ID of an `<AE>` (ty 2): the originator this resource
    /// stands for when a `<group>` lists its resource ID in `mid`
    /// (TS-0001 9.6.2.1; spec notes §2.4). Only on type 2.
    #[serde(rename = "aei", default, skip_serializing_if = "Option::is_none")]
    pub ae_id: Option<String>,
    /// `csi` CSE-ID of a `<remoteCSE>` (ty 16), as `aei` for an `<AE>`.
    /// Only on type 16.
    #[serde(rename = "csi", default, skip_serializing_if = "Option::is_none")]
    pub cse_id: Option<String>,
}

/// `ty` of `<dynamicAuthorizationConsultation>` (TS-0004 6.3.4.2.1).
pub const DYNAMIC_AUTHORIZATION_CONSULTATION: u32 = 34;

/// An attribute a stored resource keeps for life: `pi`, `ty` and `cr` are
/// read-only once the resource exists (TS-0001 9.6.1.3: RO, or WO and not
/// present in an Update; `ri` is the key it is stored under). Each decides
/// who may do what with it: a new `pi` would skip the CREATE check under
/// the new parent, a new `ty` would change how its policies resolve (a type
/// without `acpi` takes its parent's) and skip the CREATE-time `acod`
/// check, a new `cr` would change whom its default policy grants (TS-0001
/// 9.6.1.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FixedAttribute {
    /// `pi` (parentID).
    ParentId,
    /// `ty` (resourceType).
    ResourceType,
    /// `cr` (creator).
    Creator,
}

impl FixedAttribute {
    /// The short name (`pi`, `ty`, `cr`).
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::ParentId => "pi",
            Self::ResourceType => "ty",
            Self::Creator => "cr",
        }
    }

    /// The long name (`parentID`, `resourceType`, `creator`).
    pub const fn long_name(self) -> &'static str {
        match self {
            Self::ParentId => "parentID",
            Self::ResourceType => "resourceType",
            Self::Creator => "creator",
        }
    }
}

impl std::fmt::Display for FixedAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short_name())
    }
}

/// The [`FixedAttribute`]s whose value `new` would change on the stored
/// `old`, in the order `pi`, `ty`, `cr`; empty when `new` keeps them all
/// (putting the same values again is no change). An empty `pi` or `cr`
/// counts as absent.
pub fn fixed_attribute_changes(old: &Resource, new: &Resource) -> Vec<FixedAttribute> {
    fn set(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
    let mut changed = Vec::new();
    if set(&old.parent_id) != set(&new.parent_id) {
        changed.push(FixedAttribute::ParentId);
    }
    if old.resource_type != new.resource_type {
        changed.push(FixedAttribute::ResourceType);
    }
    if set(&old.creator) != set(&new.creator) {
        changed.push(FixedAttribute::Creator);
    }
    changed
}

/// What applies to one target. ACP IDs are borrowed from the resource view
/// where they can be (this runs on every decision of a PDP).
#[derive(Debug, Clone, PartialEq)]
pub enum ApplicableSet<'a> {
    /// These ACPs, with `pv` or `pvs`; dynamic ACPs bound to the target (and
    /// to the resources it takes its policies from) are appended.
    Policies(SmallVec<[(Cow<'a, str>, PrivilegeKind); 4]>),
    /// No `acpi`: the default policy, given as the rule set to evaluate.
    Default {
        /// The rules (full access for the custodian or creator; empty when neither is known).
        rules: SetOfAcrs,
        /// Dynamic ACPs bound to the target (and to the resources it takes
        /// its policies from), which still apply.
        dynamic: Vec<String>,
    },
}

/// Why the applicable set could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The target (or an ancestor) is not registered: the hosting CSE checks
    /// existence (4004) before authorization.
    #[error("resource {0} is not registered")]
    UnknownResource(String),
    /// A parent chain that loops or is too deep: more than
    /// [`MAX_PARENTS_WITHOUT_ACPI`] parents without `acpi` above the target.
    #[error(
        "parent chain of {0} has more than {MAX_PARENTS_WITHOUT_ACPI} parents without acpi (or loops)"
    )]
    ParentLoop(String),
    /// An `acpi` change of a target that has no `acpi`: an ACP, or a type
    /// of [`TYPES_WITHOUT_ACPI`] (TS-0001 9.6.1.3.2; spec notes §2.3).
    #[error(
        "resource {target} (ty {resource_type}) has no accessControlPolicyIDs (acpi) to change"
    )]
    NoAcpi {
        /// The target.
        target: String,
        /// Its type.
        resource_type: u32,
    },
}

/// The resources and ACP IDs resolution looks at.
pub trait ResourceView {
    /// A registered resource.
    fn resource(&self, id: &str) -> Option<&Resource>;
    /// Is `id` a stored ACP?
    fn is_acp(&self, id: &str) -> bool;
    /// IDs of live dynamic ACPs bound to `target`.
    fn dynamic_acps(&self, target: &str) -> Vec<String>;
    /// The resource the dynamic ACP `id` is bound to, if `id` is one
    /// (live or not); `None` for any other ID (the default).
    fn dynamic_target(&self, _id: &str) -> Option<&str> {
        None
    }
}

/// Resolves the applicable set of `target` (TS-0001 10.2.3.1).
pub fn applicable_policies<'a>(
    view: &'a dyn ResourceView,
    target: &'a str,
) -> Result<ApplicableSet<'a>, ResolveError> {
    // 1. A request on an ACP is judged by the ACP's own pvs.
    if view.is_acp(target) {
        return Ok(ApplicableSet::Policies(smallvec![(
            Cow::Borrowed(target),
            PrivilegeKind::SelfPrivileges,
        )]));
    }
    let chain = policy_chain(view, target)?;
    let Some(r) = chain.last().copied() else {
        return Err(ResolveError::UnknownResource(target.to_owned()));
    };
    let id = r.resource_id.as_str();
    if r.resource_type == TY_ACP {
        return Ok(ApplicableSet::Policies(smallvec![(
            Cow::Borrowed(id),
            PrivilegeKind::SelfPrivileges,
        )]));
    }
    let dynamic: Vec<String> = chain
        .iter()
        .flat_map(|r| view.dynamic_acps(&r.resource_id))
        .collect();
    // A dynamic ACP is a grant for the resource it is bound to (Decision
    // 7), which counts through `dynamic` above for that resource and those
    // that take their policies from it; an `acpi` elsewhere naming it gives
    // it no effect there.
    let bound_here = |id: &str| {
        view.dynamic_target(id)
            .is_none_or(|bound| chain.iter().any(|r| r.resource_id == bound))
    };
    Ok(match r.acpi.as_ref().filter(|a| !a.is_empty()) {
        // 3. acpi set: the pv of every referenced ACP.
        Some(acpi) => ApplicableSet::Policies(
            acpi.iter()
                .filter(|a| bound_here(a))
                .map(|a| Cow::Borrowed(a.as_str()))
                .chain(dynamic.into_iter().map(Cow::Owned))
                .map(|a| (a, PrivilegeKind::Privileges))
                .collect(),
        ),
        // 4. acpi not set: only the custodian, else the creator, has access.
        None => ApplicableSet::Default {
            rules: default_policy(r),
            dynamic,
        },
    })
}

/// The applicable set of a request on `target`: with `updates_acpi` (an
/// Update of the target's `acpi` alone) that of [`acpi_change_policies`],
/// otherwise that of [`applicable_policies`].
pub fn applicable_policies_for<'a>(
    view: &'a dyn ResourceView,
    target: &'a str,
    updates_acpi: bool,
) -> Result<ApplicableSet<'a>, ResolveError> {
    if updates_acpi {
        acpi_change_policies(view, target)
    } else {
        applicable_policies(view, target)
    }
}

/// Resolves what authorizes a change of `target`'s `acpi` (TS-0001
/// 9.6.1.3.2): UPDATE in the `pvs` of the ACPs it references now
/// ([`acpi_change_set`]).
///
/// `target` itself is looked at, never its parent: a target without `acpi`
/// (a stored ACP, or a resource of type 1 or of [`TYPES_WITHOUT_ACPI`]) has
/// none to change, which is [`ResolveError::NoAcpi`] rather than a decision
/// on its parent's policies.
pub fn acpi_change_policies<'a>(
    view: &'a dyn ResourceView,
    target: &str,
) -> Result<ApplicableSet<'a>, ResolveError> {
    let no_acpi = |resource_type| ResolveError::NoAcpi {
        target: target.to_owned(),
        resource_type,
    };
    if view.is_acp(target) {
        return Err(no_acpi(TY_ACP));
    }
    let r = view
        .resource(target)
        .ok_or_else(|| ResolveError::UnknownResource(target.to_owned()))?;
    if !type_has_acpi(r.resource_type) {
        return Err(no_acpi(r.resource_type));
    }
    Ok(acpi_change_set(r))
}

/// The applicable set of a change of `r`'s own `acpi` (TS-0001 9.6.1.3.2),
/// the one rule both the PDP (an Update with `updates_acpi`) and the PRP
/// (its `PutResource` writes) apply:
///
/// - `acpi` set (non-empty): the `pvs` (selfPrivileges) of each ACP it
///   references now, "UPDATE in the selfPrivileges of the currently
///   referenced ACPs";
/// - `acpi` not set: the default policy of `r` (full access for its
///   custodian, else its creator), as for any other request on it (TS-0001
///   9.6.1.3.2 gives that originator unrestricted access, and nobody else
///   holds a `pvs` over it).
///
/// Dynamic ACPs never count: a Direct Dynamic Authorization grant is a set
/// of privileges for the target (its `pv`), never selfPrivileges
/// (Decision 7; TS-0001 11.5.2).
pub fn acpi_change_set(r: &Resource) -> ApplicableSet<'_> {
    match r.acpi.as_ref().filter(|a| !a.is_empty()) {
        Some(acpi) => ApplicableSet::Policies(
            acpi.iter()
                .map(|a| (Cow::Borrowed(a.as_str()), PrivilegeKind::SelfPrivileges))
                .collect(),
        ),
        None => ApplicableSet::Default {
            rules: default_policy(r),
            dynamic: Vec::new(),
        },
    }
}

/// The registered resource whose policies apply to `target` (TS-0001
/// 10.2.3.1 step 2): `target` itself, or, when its type has no `acpi`
/// ([`TYPES_WITHOUT_ACPI`]), its nearest ancestor of a type that has one.
pub fn policy_subject<'a>(
    view: &'a dyn ResourceView,
    target: &str,
) -> Result<&'a Resource, ResolveError> {
    policy_chain(view, target)?
        .last()
        .copied()
        .ok_or_else(|| ResolveError::UnknownResource(target.to_owned()))
}

/// The resources whose dynamic ACPs count for a request on `target`
/// (Decision 7): `target` itself and, when it takes its policies from its
/// parent (TS-0001 10.2.3.1 step 2), each resource up to its
/// [`policy_subject`]. A grant bound to a container thus covers its
/// contentInstances, which are judged by the container's policies; one
/// bound to a contentInstance covers nothing else.
pub fn dynamic_acp_holders<'a>(
    view: &'a dyn ResourceView,
    target: &str,
) -> Result<SmallVec<[&'a str; 2]>, ResolveError> {
    Ok(policy_chain(view, target)?
        .iter()
        .map(|r| r.resource_id.as_str())
        .collect())
}

/// The cycle of parents that registering `id` under `parent` would close,
/// as the IDs along it (`[a, b, a]`), if any. A resource tree has no
/// cycles (TS-0001 9.6.1.3: `pi` names the parent, fixed at creation); a
/// registrar that names a parent before it exists can close one, and the
/// policies of a resource in it could not be resolved (TS-0001 10.2.3.1).
/// A cycle elsewhere in the chain, not through `id`, is not this one's.
pub fn closes_parent_cycle(view: &dyn ResourceView, id: &str, parent: &str) -> Option<Vec<String>> {
    let mut path = vec![id.to_owned()];
    let mut seen = std::collections::HashSet::new();
    let mut at = parent;
    loop {
        path.push(at.to_owned());
        if at == id {
            return Some(path);
        }
        if !seen.insert(at) {
            return None;
        }
        at = view.resource(at)?.parent_id.as_deref()?;
    }
}

/// The most parents without `acpi` (types of [`TYPES_WITHOUT_ACPI`]) that
/// resolution walks up from a target of such a type to the resource whose
/// policies apply: a deeper chain is [`ResolveError::ParentLoop`].
pub const MAX_PARENTS_WITHOUT_ACPI: usize = 64;

/// `target` and the ancestors it takes its policies from, ending with its
/// [`policy_subject`]; never empty.
fn policy_chain<'a>(
    view: &'a dyn ResourceView,
    target: &str,
) -> Result<SmallVec<[&'a Resource; 2]>, ResolveError> {
    let mut chain = SmallVec::new();
    let mut id = target;
    // The target, its parents without acpi, and the one whose acpi counts.
    for _ in 0..MAX_PARENTS_WITHOUT_ACPI + 2 {
        let r = view
            .resource(id)
            .ok_or_else(|| ResolveError::UnknownResource(id.to_owned()))?;
        chain.push(r);
        // 2. Types without acpi use their parent's.
        if !TYPES_WITHOUT_ACPI.contains(&r.resource_type) {
            return Ok(chain);
        }
        id = r
            .parent_id
            .as_deref()
            .ok_or_else(|| ResolveError::UnknownResource(format!("parent of {id}")))?;
    }
    Err(ResolveError::ParentLoop(target.to_owned()))
}

/// The ID under which the default policy of `target` is evaluated and
/// reported (`defaultPolicy:<target>`); stored ACP IDs may not use the prefix.
pub fn default_policy_id(target: &str) -> String {
    format!("{DEFAULT_POLICY_PREFIX}{target}")
}

/// The prefix of [`default_policy_id`].
pub const DEFAULT_POLICY_PREFIX: &str = "defaultPolicy:";

/// The default access policy of a resource without `acpi` (TS-0001
/// 9.6.1.3.2): unrestricted access for the custodian if set, else the creator.
///
/// The clause grants access to "the Originator of the successful Create
/// only", so the owner is compiled as an `acor` entry only when it names one
/// originator ([`check_owner_id`]). An owner value that does not (`all`, an
/// SP domain, a wildcard, a Role-ID: a record stored before the PRP checked
/// `cr` and `cstn`) grants nothing; a set custodian still replaces the
/// creator then. An empty value counts as not set.
pub fn default_policy(r: &Resource) -> SetOfAcrs {
    fn set(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
    let owner = set(&r.custodian).or(set(&r.creator));
    SetOfAcrs {
        rules: owner
            .filter(|o| check_owner_id(o).is_ok())
            .map(|o| AccessControlRule {
                originators: vec![o.to_owned()],
                operations: acop::ALL,
                ..AccessControlRule::default()
            })
            .into_iter()
            .collect(),
    }
}

/// Why a `cr` (creator) or `cstn` (custodian) value does not name one
/// originator, as the default policy needs ([`check_owner_id`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerIdError {
    /// `all`.
    #[error("'all' names every originator, not one originator ID")]
    All,
    /// A `*` wildcard.
    #[error("a wildcard '*' names many originators, not one originator ID")]
    Wildcard,
    /// A Role-ID.
    #[error("'@' marks a Role-ID, not an originator ID (an AE-ID or CSE-ID)")]
    RoleId,
    /// Whitespace.
    #[error("must not contain whitespace")]
    Whitespace,
    /// `//fqdn` without a path.
    #[error(
        "an SP domain (//fqdn without a path) names every originator of that SP, not one originator ID"
    )]
    Domain,
    /// Not an identifier at all (empty, or an empty path segment).
    #[error("{0}")]
    Malformed(crate::ids::IdError),
}

/// Checks that `id` (a `cr` or `cstn` value) names one originator: an
/// AE-ID or CSE-ID in stem, SP-relative or absolute form, as opposed to an
/// `acor` entry that names many (`all`, an SP domain `//fqdn`, a wildcard
/// `*`, a Role-ID `name@fqdn`). An ID that is also the resource ID of a
/// `<group>` cannot be told apart here.
pub fn check_owner_id(id: &str) -> Result<(), OwnerIdError> {
    use crate::ids::OriginatorEntry;
    if id == "all" {
        return Err(OwnerIdError::All);
    }
    if id.chars().any(char::is_whitespace) {
        return Err(OwnerIdError::Whitespace);
    }
    if id.contains('*') {
        return Err(OwnerIdError::Wildcard);
    }
    if id.contains('@') {
        return Err(OwnerIdError::RoleId);
    }
    match OriginatorEntry::parse(id) {
        Ok(OriginatorEntry::Exact { .. }) => Ok(()),
        Ok(OriginatorEntry::Domain(_)) => Err(OwnerIdError::Domain),
        Ok(OriginatorEntry::All) => Err(OwnerIdError::All),
        Ok(OriginatorEntry::Role(_)) => Err(OwnerIdError::RoleId),
        Ok(OriginatorEntry::Pattern { .. }) => Err(OwnerIdError::Wildcard),
        Err(e) => Err(OwnerIdError::Malformed(e)),
    }
}

/// `ty` of `<AE>` (TS-0004 6.3.4.2.1).
pub const TY_AE: u32 = 2;

/// `ty` of `<remoteCSE>` (TS-0004 6.3.4.2.1).
pub const TY_REMOTE_CSE: u32 = 16;

/// `ty` of `<CSEBase>` (TS-0004 6.3.4.2.1).
pub const TY_CSE_BASE: u32 = 5;

/// The types an `<accessControlPolicy>` may be created under: CSEBase, AE
/// and remoteCSE (spec notes §2.2).
pub const ACP_PARENT_TYPES: [u32; 3] = [TY_CSE_BASE, TY_AE, TY_REMOTE_CSE];

/// The types a resource under an `<accessControlPolicy>` may have:
/// `<subscription>` (23) and `<transaction>` (51) (spec notes §2.2).
pub const ACP_CHILD_TYPES: [u32; 2] = [23, 51];

impl Resource {
    /// The originator this resource stands for as a `<group>` member: the
    /// `aei` of an `<AE>` or the `csi` of a `<remoteCSE>` (`mid` holds
    /// resource IDs, TS-0001 9.6.2.1; spec notes §2.4). `None` for other
    /// types, and when the attribute is not set or empty.
    pub fn member_originator(&self) -> Option<&str> {
        match self.resource_type {
            TY_AE => self.ae_id.as_deref(),
            TY_REMOTE_CSE => self.cse_id.as_deref(),
            _ => None,
        }
        .filter(|id| !id.is_empty())
    }
}

/// Why an `aei` or `csi` value is refused ([`check_ae_id`], [`check_cse_id`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberIdError {
    /// Not one originator ID.
    #[error(transparent)]
    NotOneOriginator(#[from] OwnerIdError),
    /// A `csi` that is not in CSE-ID form.
    #[error(
        "a CSE-ID is /cse-id (SP-relative) or //sp-fqdn/cse-id (absolute): one segment after the SP"
    )]
    NotCseId,
}

/// Checks an `aei` value: one AE-ID (stem, SP-relative or absolute), as
/// [`check_owner_id`] checks `cr`.
pub fn check_ae_id(id: &str) -> Result<(), MemberIdError> {
    Ok(check_owner_id(id)?)
}

/// Checks a `csi` value: one CSE-ID, `/cse-id` or `//sp-fqdn/cse-id`
/// (TS-0001 7.2); a stem would be read as an AE-ID of the hosting CSE.
pub fn check_cse_id(id: &str) -> Result<(), MemberIdError> {
    check_owner_id(id)?;
    let path = match id.strip_prefix("//") {
        Some(abs) => abs.find('/').map_or("", |i| &abs[i..]),
        None => id,
    };
    match path.strip_prefix('/') {
        Some(cse) if !cse.is_empty() && !cse.contains('/') => Ok(()),
        _ => Err(MemberIdError::NotCseId),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct View {
        resources: HashMap<String, Resource>,
        acps: Vec<String>,
        dynamic: HashMap<String, Vec<String>>,
    }

    impl ResourceView for View {
        fn resource(&self, id: &str) -> Option<&Resource> {
            self.resources.get(id)
        }
        fn is_acp(&self, id: &str) -> bool {
            self.acps.iter().any(|a| a == id)
        }
        fn dynamic_acps(&self, target: &str) -> Vec<String> {
            self.dynamic.get(target).cloned().unwrap_or_default()
        }
        fn dynamic_target(&self, id: &str) -> Option<&str> {
            self.dynamic
                .iter()
                .find(|(_, ids)| ids.iter().any(|d| d == id))
                .map(|(target, _)| target.as_str())
        }
    }

    fn res(id: &str, parent: Option<&str>, ty: u32, acpi: Option<&[&str]>) -> Resource {
        Resource {
            resource_id: id.into(),
            parent_id: parent.map(Into::into),
            resource_type: ty,
            acpi: acpi.map(|a| a.iter().map(|s| s.to_string()).collect()),
            creator: Some("Ccreator".into()),
            ..Resource::default()
        }
    }

    fn view() -> View {
        let mut v = View::default();
        for r in [
            res("cb", None, 5, Some(&["acpCb"])),
            res("cnt", Some("cb"), 3, Some(&["acp1", "acp2"])),
            res("cin", Some("cnt"), 4, None),
            res("cnt2", Some("cb"), 3, None),
        ] {
            v.resources.insert(r.resource_id.clone(), r);
        }
        v.acps = vec!["acp1".into(), "acp2".into(), "acpCb".into()];
        v
    }

    #[test]
    fn ts0001_10_2_3_1_step1_acp_target_uses_self_privileges() {
        assert_eq!(
            applicable_policies(&view(), "acp1").unwrap(),
            ApplicableSet::Policies(smallvec![("acp1".into(), PrivilegeKind::SelfPrivileges)])
        );
    }

    #[test]
    fn ts0001_10_2_3_1_step2_content_instance_uses_parent_acpi() {
        assert_eq!(
            applicable_policies(&view(), "cin").unwrap(),
            ApplicableSet::Policies(smallvec![
                ("acp1".into(), PrivilegeKind::Privileges),
                ("acp2".into(), PrivilegeKind::Privileges)
            ])
        );
    }

    /// A chain of up to [`MAX_PARENTS_WITHOUT_ACPI`] parents without acpi
    /// (contentInstances here, which TS-0001 gives none) resolves to the
    /// first ancestor with acpi; one more is too deep.
    #[test]
    fn ts0001_10_2_3_1_step2_resolves_up_to_64_parents_without_acpi() {
        let mut v = view();
        let mut parent = "cnt".to_owned();
        for i in 0..=MAX_PARENTS_WITHOUT_ACPI {
            let id = format!("c{i}");
            v.resources
                .insert(id.clone(), res(&id, Some(&parent), 4, None));
            parent = id;
        }
        let last = MAX_PARENTS_WITHOUT_ACPI - 1;
        // c63 has c62..c0 (63) parents without acpi, c64 has 64, c65 would
        // have 65.
        assert!(applicable_policies(&v, &format!("c{last}")).is_ok());
        let at_bound = format!("c{MAX_PARENTS_WITHOUT_ACPI}");
        assert_eq!(
            applicable_policies(&v, &at_bound).unwrap(),
            applicable_policies(&v, "cin").unwrap()
        );
        let id = format!("c{}", MAX_PARENTS_WITHOUT_ACPI + 1);
        v.resources
            .insert(id.clone(), res(&id, Some(&at_bound), 4, None));
        let e = applicable_policies(&v, &id).unwrap_err();
        assert_eq!(e, ResolveError::ParentLoop(id.clone()));
        assert!(
            e.to_string().contains("more than 64 parents without acpi"),
            "{e}"
        );
    }

    #[test]
    fn ts0001_10_2_3_1_step4_no_acpi_means_default_policy_not_parent() {
        // Release 3: no inheritance from the parent's acpi (spec notes §2.3).
        let ApplicableSet::Default { rules, .. } = applicable_policies(&view(), "cnt2").unwrap()
        else {
            panic!("expected the default policy")
        };
        assert_eq!(rules.rules[0].originators, vec!["Ccreator".to_string()]);
        assert_eq!(rules.rules[0].operations, 63);
    }

    /// TS-0001 9.6.1.3.2: changing `acpi` is authorized by UPDATE in the
    /// `pvs` of the ACPs the target references now; any other request by
    /// their `pv` (spec notes §2.3).
    #[test]
    fn ts0001_9_6_1_3_2_an_acpi_change_uses_pvs_of_the_referenced_acps() {
        let v = view();
        assert_eq!(
            applicable_policies_for(&v, "cnt", true).unwrap(),
            ApplicableSet::Policies(smallvec![
                ("acp1".into(), PrivilegeKind::SelfPrivileges),
                ("acp2".into(), PrivilegeKind::SelfPrivileges)
            ])
        );
        assert_eq!(
            applicable_policies_for(&v, "cnt", false).unwrap(),
            ApplicableSet::Policies(smallvec![
                ("acp1".into(), PrivilegeKind::Privileges),
                ("acp2".into(), PrivilegeKind::Privileges)
            ])
        );
        assert_eq!(
            applicable_policies_for(&v, "cnt", false).unwrap(),
            applicable_policies(&v, "cnt").unwrap()
        );
        // The CSEBase too: its own acpi, not a parent's.
        assert_eq!(
            acpi_change_policies(&v, "cb").unwrap(),
            ApplicableSet::Policies(smallvec![("acpCb".into(), PrivilegeKind::SelfPrivileges)])
        );
    }

    /// An acpi change of a resource whose acpi is not set: its default
    /// policy (the creator, or the custodian), as for its other requests,
    /// without the dynamic ACPs bound to it (Decision 7: no pvs).
    #[test]
    fn ts0001_9_6_1_3_2_an_acpi_change_without_acpi_uses_the_default_policy() {
        let mut v = view();
        v.dynamic.insert("cnt2".into(), vec!["dyn2".into()]);
        let ApplicableSet::Default { rules, dynamic } =
            applicable_policies_for(&v, "cnt2", true).unwrap()
        else {
            panic!("expected the default policy")
        };
        assert_eq!(rules.rules[0].originators, vec!["Ccreator".to_string()]);
        assert!(dynamic.is_empty(), "{dynamic:?}");
        // An empty acpi is not set.
        let empty = res("cnt3", Some("cb"), 3, Some(&[]));
        assert!(matches!(
            acpi_change_set(&empty),
            ApplicableSet::Default { .. }
        ));
    }

    /// Decision 7: a dynamic ACP grants privileges for its target (a `pv`),
    /// never selfPrivileges, so it does not count for an acpi change, with
    /// acpi set or not; it still counts for every other request.
    #[test]
    fn decision7_dynamic_acps_do_not_count_for_an_acpi_change() {
        let mut v = view();
        v.dynamic.insert("cnt".into(), vec!["dyn1".into()]);
        v.dynamic.insert("cnt2".into(), vec!["dyn2".into()]);
        let ApplicableSet::Policies(p) = applicable_policies_for(&v, "cnt", true).unwrap() else {
            panic!()
        };
        assert!(p.iter().all(|(id, _)| !id.starts_with("dyn")), "{p:?}");
        let ApplicableSet::Policies(p) = applicable_policies_for(&v, "cnt", false).unwrap() else {
            panic!()
        };
        assert_eq!(p.last().unwrap().0, "dyn1");
        let ApplicableSet::Default { dynamic, .. } =
            applicable_policies_for(&v, "cnt2", false).unwrap()
        else {
            panic!()
        };
        assert_eq!(dynamic, ["dyn2"]);
    }

    /// Spec notes §2.3: an ACP and the types of [`TYPES_WITHOUT_ACPI`] have
    /// no acpi, so there is none to change (not their parent's: step 2 of
    /// TS-0001 10.2.3.1 is for requests on them, not for an acpi change).
    #[test]
    fn an_acpi_change_of_a_target_without_acpi_is_an_error() {
        let mut v = view();
        v.resources
            .insert("acpR".into(), res("acpR", Some("cb"), TY_ACP, None));
        for (target, ty) in [("acp1", TY_ACP), ("acpR", TY_ACP), ("cin", 4)] {
            assert_eq!(
                acpi_change_policies(&v, target).unwrap_err(),
                ResolveError::NoAcpi {
                    target: target.into(),
                    resource_type: ty
                },
                "{target}"
            );
        }
        assert_eq!(
            acpi_change_policies(&v, "nope").unwrap_err(),
            ResolveError::UnknownResource("nope".into())
        );
        assert!(type_has_acpi(3) && type_has_acpi(5) && type_has_acpi(2));
        for ty in [TY_ACP, 4, 15, 26, 30, 58] {
            assert!(!type_has_acpi(ty), "{ty}");
        }
    }

    #[test]
    fn custodian_replaces_creator_in_default_policy() {
        let mut r = res("x", None, 3, None);
        r.custodian = Some("Ccustodian".into());
        assert_eq!(
            default_policy(&r).rules[0].originators,
            vec!["Ccustodian".to_string()]
        );
    }

    /// TS-0001 9.6.1.3.2: the default policy is for "the Originator of the
    /// successful Create only"; a stored `cr`/`cstn` that names many
    /// originators grants nothing.
    #[test]
    fn ts0001_9_6_1_3_2_default_policy_grants_nothing_to_a_non_concrete_owner() {
        for owner in [
            "all",
            "//sp.example.com",
            "C*",
            "/id-in/*",
            "//sp.example.com/id-in/C*",
            "guest@roles.example.com",
            "C bob",
            "//sp.example.com//x",
        ] {
            let mut r = res("x", None, 3, None);
            r.creator = Some(owner.into());
            assert!(
                default_policy(&r).rules.is_empty(),
                "creator {owner:?} must grant nothing"
            );
            assert!(check_owner_id(owner).is_err(), "{owner:?}");
            // A custodian that names many replaces the creator all the same.
            let mut r = res("x", None, 3, None);
            r.custodian = Some(owner.into());
            assert!(
                default_policy(&r).rules.is_empty(),
                "custodian {owner:?} must grant nothing (not fall back to the creator)"
            );
        }
        for owner in [
            "Ccreator",
            "SmyAE",
            "/id-in/Cae",
            "/id-in",
            "//sp.example.com/id-in/Cae",
            "//sp.example.com/Sae",
        ] {
            let mut r = res("x", None, 3, None);
            r.creator = Some(owner.into());
            assert_eq!(
                default_policy(&r).rules[0].originators,
                vec![owner.to_string()],
                "{owner:?}"
            );
        }
        // Empty counts as not set: the creator applies.
        let mut r = res("x", None, 3, None);
        r.custodian = Some(String::new());
        assert_eq!(
            default_policy(&r).rules[0].originators,
            vec!["Ccreator".to_string()]
        );
    }

    #[test]
    fn dynamic_acps_join_the_set() {
        let mut v = view();
        v.dynamic.insert("cnt".into(), vec!["dyn1".into()]);
        let ApplicableSet::Policies(p) = applicable_policies(&v, "cnt").unwrap() else {
            panic!()
        };
        assert_eq!(p.last().unwrap().0, "dyn1");
    }

    /// Decision 7: a dynamic ACP is "bound to the targeted resource". An
    /// `acpi` of another resource naming it gives it no effect there (it
    /// would grant a Direct Dynamic Authorization for resources it was not
    /// asked for); on its own target, or one judged by it, it counts once.
    #[test]
    fn decision7_an_acpi_elsewhere_does_not_extend_a_dynamic_acp() {
        let mut v = view();
        v.dynamic.insert("cnt".into(), vec!["dynCnt".into()]);
        let other = res("other", Some("cb"), 3, Some(&["dynCnt", "acp1"]));
        v.resources.insert(other.resource_id.clone(), other);
        assert_eq!(
            applicable_policies(&v, "other").unwrap(),
            ApplicableSet::Policies(smallvec![("acp1".into(), PrivilegeKind::Privileges)])
        );
        // Only the dynamic ACP elsewhere in acpi: nothing applies (acpi is
        // set, so not the default policy either).
        let only = res("only", Some("cb"), 3, Some(&["dynCnt"]));
        v.resources.insert(only.resource_id.clone(), only);
        assert_eq!(
            applicable_policies(&v, "only").unwrap(),
            ApplicableSet::Policies(smallvec![])
        );
        // Its own target and the contentInstances judged by it still count it.
        let ApplicableSet::Policies(p) = applicable_policies(&v, "cin").unwrap() else {
            panic!("cnt's acpi is set")
        };
        assert!(p.iter().any(|(id, _)| id == "dynCnt"), "{p:?}");
    }

    /// Decision 7 ("a dynamic ACP bound to the targeted resource") with
    /// TS-0001 10.2.3.1 step 2: a grant bound to a container counts for the
    /// container and for its contentInstances, which are judged by its
    /// policies; one bound to a contentInstance counts for that
    /// contentInstance only, not for its container or a sibling.
    #[test]
    fn decision7_dynamic_acps_count_for_the_bound_resource_and_those_judged_by_it() {
        let mut v = view();
        let cin2 = res("cin2", Some("cnt"), 4, None);
        v.resources.insert(cin2.resource_id.clone(), cin2);
        assert_eq!(policy_subject(&v, "cin").unwrap().resource_id, "cnt");
        assert_eq!(policy_subject(&v, "cnt").unwrap().resource_id, "cnt");
        assert_eq!(
            policy_subject(&v, "nope").unwrap_err(),
            ResolveError::UnknownResource("nope".into())
        );
        assert_eq!(
            dynamic_acp_holders(&v, "cin").unwrap().as_slice(),
            ["cin", "cnt"]
        );
        assert_eq!(dynamic_acp_holders(&v, "cnt").unwrap().as_slice(), ["cnt"]);
        let counted = |v: &View, target: &str| -> Vec<String> {
            match applicable_policies(v, target).unwrap() {
                ApplicableSet::Policies(p) => p
                    .iter()
                    .map(|(id, _)| id.to_string())
                    .filter(|id| id.starts_with("dyn"))
                    .collect(),
                ApplicableSet::Default { dynamic, .. } => dynamic,
            }
        };
        v.dynamic.insert("cin".into(), vec!["dynCin".into()]);
        assert_eq!(counted(&v, "cin"), ["dynCin"]);
        assert!(
            counted(&v, "cnt").is_empty(),
            "a grant for cin must not cover cnt"
        );
        assert!(
            counted(&v, "cin2").is_empty(),
            "a grant for cin must not cover cin2"
        );
        v.dynamic.insert("cnt".into(), vec!["dynCnt".into()]);
        assert_eq!(counted(&v, "cin"), ["dynCin", "dynCnt"]);
        assert_eq!(counted(&v, "cin2"), ["dynCnt"]);
        assert_eq!(counted(&v, "cnt"), ["dynCnt"]);
    }

    /// TS-0001 9.6.1.3: `pi`, `ty` and `cr` are read-only; the same value
    /// again, or an empty one for an absent one, is no change.
    #[test]
    fn ts0001_9_6_1_3_fixed_attribute_changes() {
        let old = res("cnt", Some("cb"), 3, Some(&["acp1"]));
        let mut same = old.clone();
        same.acpi = None;
        same.daci = Some(vec!["dac1".into()]);
        same.custodian = Some("Cother".into());
        assert!(fixed_attribute_changes(&old, &same).is_empty());
        let mut moved = old.clone();
        moved.parent_id = None;
        moved.resource_type = 9;
        moved.creator = Some("Cother".into());
        assert_eq!(
            fixed_attribute_changes(&old, &moved),
            [
                FixedAttribute::ParentId,
                FixedAttribute::ResourceType,
                FixedAttribute::Creator
            ]
        );
        let mut root = res("cb", None, 5, None);
        root.creator = None;
        let mut empty = root.clone();
        empty.parent_id = Some(String::new());
        empty.creator = Some(String::new());
        assert!(fixed_attribute_changes(&root, &empty).is_empty());
        assert_eq!(FixedAttribute::Creator.to_string(), "cr");
        assert_eq!(FixedAttribute::ParentId.long_name(), "parentID");
    }

    #[test]
    fn unknown_target_is_an_error_not_a_permit() {
        assert_eq!(
            applicable_policies(&view(), "nope").unwrap_err(),
            ResolveError::UnknownResource("nope".into())
        );
    }

    /// Spec notes §2.4: `mid` holds resource IDs of `<AE>` and `<remoteCSE>`
    /// resources, which stand for their `aei` and `csi`; other types stand
    /// for nobody.
    #[test]
    fn member_originator_is_aei_of_an_ae_and_csi_of_a_remote_cse() {
        let mut ae = res("ae1", Some("cb"), TY_AE, None);
        assert_eq!(ae.member_originator(), None);
        ae.ae_id = Some("Cae1".into());
        assert_eq!(ae.member_originator(), Some("Cae1"));
        ae.ae_id = Some(String::new());
        assert_eq!(ae.member_originator(), None);
        let mut csr = res("csr1", Some("cb"), TY_REMOTE_CSE, None);
        csr.cse_id = Some("/mn-cse".into());
        csr.ae_id = Some("Cignored".into());
        assert_eq!(csr.member_originator(), Some("/mn-cse"));
        let mut cnt = res("cnt9", Some("cb"), 3, None);
        cnt.ae_id = Some("Cae1".into());
        assert_eq!(cnt.member_originator(), None);
    }

    #[test]
    fn aei_is_one_ae_id_and_csi_one_cse_id() {
        for good in [
            "Cae1",
            "S123",
            "/mn-cse/Cae1",
            "//sp.example.com/id-in/Cae1",
        ] {
            assert_eq!(check_ae_id(good), Ok(()), "{good}");
        }
        for bad in ["", "all", "C*", "//sp.example.com", "a@b.example", "C x"] {
            assert!(check_ae_id(bad).is_err(), "{bad:?}");
        }
        for good in ["/mn-cse", "//sp.example.com/mn-cse"] {
            assert_eq!(check_cse_id(good), Ok(()), "{good}");
        }
        for bad in [
            "mn-cse",
            "/mn-cse/Cae1",
            "//sp.example.com",
            "//sp.example.com/a/b",
        ] {
            assert!(check_cse_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_cse_id("mn-cse"), Err(MemberIdError::NotCseId));
    }

    #[test]
    fn aei_and_csi_use_their_short_names_in_json() {
        let r: Resource = serde_json::from_str(r#"{"ri": "ae1", "ty": 2, "aei": "Cae1"}"#).unwrap();
        assert_eq!(r.ae_id.as_deref(), Some("Cae1"));
        let text = serde_json::to_string(&Resource {
            cse_id: Some("/mn-cse".into()),
            ..res("csr1", None, TY_REMOTE_CSE, None)
        })
        .unwrap();
        assert!(text.contains(r#""csi":"/mn-cse""#), "{text}");
        assert!(!text.contains("aei"), "{text}");
    }
}
