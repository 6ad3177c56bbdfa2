//! The reference workload expressed in Cedar (`cedar-policy` 4, with its
//! `ipaddr` and `decimal` extensions), for comparing decision cost.
//!
//! Translation, per generated rule and per target that links its ACP:
//!
//! ```text
//! permit(principal, action in [Action::"retrieve", ...], resource == Resource::"/id-in/cnt00042")
//! when { principal == Originator::"//m2m.example.com/id-in/Csensor0042"   // exact AE-ID
//!     || principal.aid like "//m2m.example.com/id-in/Csensor00*"         // wildcard
//!     || principal.roles.contains("operator7@roles.example.com")          // Role-ID
//!     || principal in Group::"/id-in/grp3" }                              // <group>
//! when { context.authenticated }                                          // acaf
//! when { (context.hour >= 8 && context.hour <= 18
//!         && context.dow >= 1 && context.dow <= 5)                        // actw
//!        && (context has ip && (context.ip.isInRange(ip("10.7.0.0/16")) || ...))  // acip
//!        && context.countries.containsAny(["DE", "FR"]) }                 // aclr accc
//! when { action != Action::"create"
//!        || (context has rrt && [4, 23].contains(context.rrt) && context.tgty == 3) }  // acod
//! ```
//!
//! `all` drops the principal condition. `acco` elements are ORed, the parts
//! of one element ANDed, as in TS-0003 7.1.5. One `PolicySet` per target
//! holds exactly the policies of the ACPs in its `acpi` (built up front), so
//! Cedar never scans policies of other resources.
//!
//! Translation gaps, and why they do not change any decision of this workload:
//!
//! - **Wildcards.** Cedar's `like` `*` also matches `/`; oneM2M's stays within
//!   one segment. No generated originator has more segments than the
//!   patterns it could match, so the two agree here.
//! - **Circles (`accr`).** Cedar has no trigonometry, so a circle becomes its
//!   bounding box in `decimal` degrees (4 places). Request positions are
//!   generated either within 0.3 radii of a centre or at least ~2.8 radii away,
//!   never near the edge, so box and haversine agree.
//! - **Time windows.** Cedar's `datetime` extension (enabled: it is a default
//!   feature of cedar-policy 4.14) has no day-of-week or hour accessor (and
//!   Cedar has no `%`), so the PEP side passes the UTC hour and day of week
//!   (0 = Sunday) as integers, computed per request. That is also cheaper for
//!   Cedar than `datetime` arithmetic, so it does not flatter our engine.
//! - **Roles** are passed as the principal's `roles` attribute, trusting the
//!   claimed Role-IDs, exactly like the engine's attribute source in the
//!   benchmark ([`crate::CachedAttributes`], which takes claimed roles as
//!   verified).
//! - **Groups** become entity parents of the principal; the Cedar PEP looks up
//!   the originator's groups in a map, as our engine asks its attribute
//!   source once for the originator's groups (`for_each_group_containing`).
//! - **Canonical IDs.** The Cedar path canonicalizes `From` with the same
//!   [`HostingContext::canonicalize`] the engine uses.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;

use authz_core::{DecisionRequest, HostingContext, Operation};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use chrono::{Datelike, Timelike};
use rustc_hash::FxHashMap;

use crate::workload::{GenContext, GenLocation, GenRule, OrigEntry, Workload};

/// The workload's policies in Cedar, and what a Cedar PEP needs per request.
pub struct CedarWorkload {
    ctx: HostingContext,
    authorizer: Authorizer,
    /// One policy set per target resource ID.
    policy_sets: FxHashMap<Box<str>, PolicySet>,
    /// Absolute originator ID -> the `Group` entities it belongs to.
    member_of: FxHashMap<String, Vec<EntityUid>>,
    originator_type: EntityTypeName,
    resource_type: EntityTypeName,
    /// create, retrieve, update, delete, notify, discover.
    actions: [EntityUid; 6],
    /// Total number of policies over all sets.
    pub policies: usize,
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(ty).expect("valid type name"),
        EntityId::new(id),
    )
}

const ACTION_NAMES: [&str; 6] = [
    "create", "retrieve", "update", "delete", "notify", "discover",
];

fn write_actions(out: &mut String, acop: u32) {
    out.push('[');
    let mut first = true;
    for (bit, name) in ACTION_NAMES.iter().enumerate() {
        if acop & (1 << bit) != 0 {
            if !first {
                out.push_str(", ");
            }
            first = false;
            let _ = write!(out, "Action::\"{name}\"");
        }
    }
    out.push(']');
}

fn context_condition(c: &GenContext) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !c.windows.is_empty() {
        let ws: Vec<String> = c
            .windows
            .iter()
            .map(|w| {
                let mut s = format!(
                    "(context.hour >= {} && context.hour <= {}",
                    w.hours.0, w.hours.1
                );
                if let Some((a, b)) = w.days {
                    let _ = write!(s, " && context.dow >= {a} && context.dow <= {b}");
                }
                s.push(')');
                s
            })
            .collect();
        parts.push(format!("({})", ws.join(" || ")));
    }
    if !c.ipv4.is_empty() || !c.ipv6.is_empty() {
        let nets: Vec<String> = c
            .ipv4
            .iter()
            .map(ToString::to_string)
            .chain(c.ipv6.iter().map(ToString::to_string))
            .map(|n| format!("context.ip.isInRange(ip(\"{n}\"))"))
            .collect();
        parts.push(format!("(context has ip && ({}))", nets.join(" || ")));
    }
    match &c.location {
        None => {}
        Some(GenLocation::Circle { lat, lon, radius_m }) => {
            let dlat = radius_m / 111_320.0;
            let dlon = radius_m / (111_320.0 * lat.to_radians().cos());
            parts.push(format!(
                "(context has lat && context.lat.greaterThanOrEqual(decimal(\"{:.4}\")) \
                 && context.lat.lessThanOrEqual(decimal(\"{:.4}\")) \
                 && context.lon.greaterThanOrEqual(decimal(\"{:.4}\")) \
                 && context.lon.lessThanOrEqual(decimal(\"{:.4}\")))",
                lat - dlat,
                lat + dlat,
                lon - dlon,
                lon + dlon
            ));
        }
        Some(GenLocation::Countries(cs)) => {
            let list: Vec<String> = cs.iter().map(|c| format!("\"{c}\"")).collect();
            parts.push(format!(
                "context.countries.containsAny([{}])",
                list.join(", ")
            ));
        }
    }
    format!("({})", parts.join(" && "))
}

/// The Cedar `permit` policy for one rule on one target.
pub fn policy_text(rule: &GenRule, target: &str) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("permit(principal, action in ");
    write_actions(&mut s, rule.operations);
    let _ = writeln!(s, ", resource == Resource::\"{target}\")");
    if !rule.originators.iter().any(|o| matches!(o, OrigEntry::All)) {
        let origs: Vec<String> = rule
            .originators
            .iter()
            .map(|o| match o {
                OrigEntry::All => unreachable!(),
                OrigEntry::Exact { identity, .. } => {
                    format!("principal == Originator::\"{}\"", identity.absolute)
                }
                OrigEntry::Pattern { absolute, .. } => format!("principal.aid like \"{absolute}\""),
                OrigEntry::Role(r) => format!("principal.roles.contains(\"{r}\")"),
                OrigEntry::Group { group_id, .. } => {
                    format!("principal in Group::\"{group_id}\"")
                }
            })
            .collect();
        let _ = writeln!(s, "when {{ {} }}", origs.join(" || "));
    }
    if rule.authentication {
        s.push_str("when { context.authenticated }\n");
    }
    if !rule.contexts.is_empty() {
        let cs: Vec<String> = rule.contexts.iter().map(context_condition).collect();
        let _ = writeln!(s, "when {{ {} }}", cs.join(" || "));
    }
    if !rule.object_details.is_empty() {
        let ds: Vec<String> = rule
            .object_details
            .iter()
            .map(|d| {
                let chty: Vec<String> = d.chty.iter().map(ToString::to_string).collect();
                let mut e = format!(
                    "(context has rrt && [{}].contains(context.rrt)",
                    chty.join(", ")
                );
                if let Some(ty) = d.ty {
                    let _ = write!(e, " && context.tgty == {ty}");
                }
                e.push(')');
                e
            })
            .collect();
        let _ = writeln!(
            s,
            "when {{ action != Action::\"create\" || {} }}",
            ds.join(" || ")
        );
    }
    s.push_str(";\n");
    s
}

impl CedarWorkload {
    /// Translates the workload: one policy set per target, parsed up front.
    pub fn new(workload: &Workload, ctx: HostingContext) -> Result<Self, String> {
        let mut policy_sets = FxHashMap::default();
        let mut policies = 0;
        for t in &workload.targets {
            let mut text = String::new();
            for &a in &t.acpi {
                for rule in &workload.acps[a].rules {
                    text.push_str(&policy_text(rule, &t.id));
                    policies += 1;
                }
            }
            let set = PolicySet::from_str(&text).map_err(|e| format!("{}: {e:?}\n{text}", t.id))?;
            policy_sets.insert(t.id.clone().into_boxed_str(), set);
        }
        let mut member_of: FxHashMap<String, Vec<EntityUid>> = FxHashMap::default();
        for (g, members) in &workload.groups {
            for m in members {
                member_of
                    .entry(m.clone())
                    .or_default()
                    .push(uid("Group", g));
            }
        }
        Ok(Self {
            ctx,
            authorizer: Authorizer::new(),
            policy_sets,
            member_of,
            originator_type: EntityTypeName::from_str("Originator").expect("valid"),
            resource_type: EntityTypeName::from_str("Resource").expect("valid"),
            actions: ACTION_NAMES.map(|a| uid("Action", a)),
            policies,
        })
    }

    /// What a Cedar PEP does per request: canonicalize the originator, build
    /// the principal entity (with its groups and roles), the context and the
    /// request. `None` when the originator is not an ID (a Deny).
    pub fn build(&self, req: &DecisionRequest) -> Option<(Request, Entities)> {
        let absolute = self.ctx.canonicalize(&req.originator).ok()?;
        let principal = EntityUid::from_type_name_and_id(
            self.originator_type.clone(),
            EntityId::new(absolute.as_ref()),
        );
        let parents: HashSet<EntityUid> = self
            .member_of
            .get(absolute.as_ref())
            .map(|gs| gs.iter().cloned().collect())
            .unwrap_or_default();
        let attrs = HashMap::from([
            (
                "aid".to_owned(),
                RestrictedExpression::new_string(absolute.into_owned()),
            ),
            (
                "roles".to_owned(),
                RestrictedExpression::new_set(
                    req.role_ids
                        .iter()
                        .map(|r| RestrictedExpression::new_string(r.clone())),
                ),
            ),
        ]);
        let entity = Entity::new(principal.clone(), attrs, parents).ok()?;
        let entities = Entities::from_entities([entity], None).ok()?;

        let action = match (req.operation, req.discovery) {
            (Operation::Create, _) => 0,
            (Operation::Retrieve, false) => 1,
            (Operation::Update, _) => 2,
            (Operation::Delete, _) => 3,
            (Operation::Notify, _) => 4,
            (Operation::Retrieve, true) => 5,
        };
        let resource = EntityUid::from_type_name_and_id(
            self.resource_type.clone(),
            EntityId::new(&req.target),
        );

        let mut ctx: Vec<(String, RestrictedExpression)> = Vec::with_capacity(10);
        ctx.push((
            "hour".into(),
            RestrictedExpression::new_long(i64::from(req.time.hour())),
        ));
        ctx.push((
            "dow".into(),
            RestrictedExpression::new_long(i64::from(req.time.weekday().num_days_from_sunday())),
        ));
        ctx.push((
            "authenticated".into(),
            RestrictedExpression::new_bool(req.authenticated),
        ));
        if let Some(ip) = req.ip {
            ctx.push(("ip".into(), RestrictedExpression::new_ip(ip.to_string())));
        }
        if let Some(p) = req.position {
            ctx.push((
                "lat".into(),
                RestrictedExpression::new_decimal(format!("{:.4}", p.lat)),
            ));
            ctx.push((
                "lon".into(),
                RestrictedExpression::new_decimal(format!("{:.4}", p.lon)),
            ));
        }
        ctx.push((
            "countries".into(),
            RestrictedExpression::new_set(
                req.countries
                    .iter()
                    .map(|c| RestrictedExpression::new_string(c.clone())),
            ),
        ));
        ctx.push((
            "tgty".into(),
            RestrictedExpression::new_long(i64::from(req.target_type.unwrap_or(0))),
        ));
        if let Some(rt) = req.resource_type {
            ctx.push(("rrt".into(), RestrictedExpression::new_long(i64::from(rt))));
        }
        let context = Context::from_pairs(ctx).ok()?;
        let request = Request::new(
            principal,
            self.actions[action].clone(),
            resource,
            context,
            None,
        )
        .ok()?;
        Some((request, entities))
    }

    /// Evaluates a built request against its target's policy set.
    /// Returns (permit, number of evaluation errors).
    pub fn authorize(&self, target: &str, request: &Request, entities: &Entities) -> (bool, usize) {
        let Some(set) = self.policy_sets.get(target) else {
            return (false, 0);
        };
        let response = self.authorizer.is_authorized(request, set, entities);
        (
            response.decision() == Decision::Allow,
            response.diagnostics().errors().count(),
        )
    }

    /// Build and authorize: the whole per-request cost of the Cedar path.
    pub fn decide(&self, req: &DecisionRequest) -> bool {
        match self.build(req) {
            Some((request, entities)) => self.authorize(&req.target, &request, &entities).0,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::WorkloadConfig;

    /// Cedar agrees with the oracle on the translated workload, with no
    /// evaluation errors.
    #[test]
    fn cedar_agrees_with_the_oracle() {
        let wl = Workload::generate(WorkloadConfig {
            requests: 1_000,
            ..WorkloadConfig::default()
        });
        let cedar = CedarWorkload::new(&wl, crate::hosting_context()).unwrap();
        let mut errors = 0;
        for (i, r) in wl.requests.iter().enumerate() {
            let (request, entities) = cedar.build(&r.request).expect("builds");
            let (permit, errs) = cedar.authorize(&r.request.target, &request, &entities);
            errors += errs;
            assert_eq!(permit, r.expected_permit, "request {i}: {:?}", r.request);
        }
        assert_eq!(errors, 0);
    }
}
