//! Benchmark workloads for onem2m-authz.
//!
//! - [`workload`]: a deterministic reference workload (ACPs, target
//!   resources, requests) with an independent oracle of the expected decision;
//! - [`AcpStore`] / [`Engine`]: how the benchmark stores compiled ACPs and
//!   makes one decision (look up the target's `acpi`, build the applicable
//!   set on the stack, call [`authz_core::decide`]);
//! - [`cedar`]: the same workload translated into Cedar policies;
//! - [`measure`]: per-decision latency percentiles and process RSS.
//!
//! The reference workload (defaults of [`workload::WorkloadConfig`]): ACP
//! number `i` (`acp{i}`) is generated from the seed and `i` alone, with 1-8
//! rules. A rule names 1-3 originators: exact AE-ID stems (`Csensor0042`),
//! SP-relative AE-IDs on remote CSEs (`/id-mn3/Cmeter0017`), `S` stems,
//! absolute AE-IDs of a partner SP, wildcards (`Csensor00*`,
//! `/id-mn*/Cmeter01*`, `//partner.example.net/*/Cgw12*`), Role-IDs,
//! `<group>` IDs and, rarely, `all`. Its `acop` is one of the usual bitmasks;
//! about a third of the rules have a time window (`* * 8-18 * * 1-5 *`
//! style), a third an IPv4/IPv6 CIDR list, 15 % a circle or country list
//! (a fifth of the rules with contexts have two `acco` elements), 20 %
//! `acaf`, 15 % an `acod` for CREATE. 2 000 target resources each link
//! 1-3 of the first 1 000 ACPs. 4 096 requests go to those targets; half are
//! built to satisfy one rule of the target, half are built from such a
//! request by breaking one condition (another originator, another operation,
//! a time outside the window, an IP outside the lists, a location outside
//! the region, unauthenticated, a child type `acod` forbids) and kept only if
//! the oracle then says Deny. Larger stores add ACPs that no target links.

#![warn(missing_docs)]

pub mod cedar;
pub mod measure;
pub mod rng;
pub mod workload;

use std::sync::Arc;

use authz_core::{
    AccessControlPolicy, Applicable, AttributeSource, CompiledAcp, DecideOptions, Decision,
    DecisionRequest, HostingContext, Lookup, PrivilegeKind, decide,
};
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use smol_str::SmolStr;

use crate::workload::{CSE_ID, SP_FQDN, Workload, filler_policy, gen_acp};

/// The hosting CSE of the workload: `//m2m.example.com`, `/id-in`.
pub fn hosting_context() -> HostingContext {
    HostingContext::new(&format!("//{SP_FQDN}"), &format!("/{CSE_ID}")).expect("valid context")
}

/// Compiled ACPs by ID.
pub type AcpStore = FxHashMap<SmolStr, CompiledAcp>;

/// Target resource ID -> its `acpi`.
pub type ResourceTable = FxHashMap<SmolStr, SmallVec<[SmolStr; 3]>>;

fn compile(id: &Arc<str>, acp: &AccessControlPolicy) -> CompiledAcp {
    CompiledAcp::compile(id.clone(), acp).unwrap_or_else(|e| panic!("{id} does not compile: {e}"))
}

/// A store of `total` ACPs: the workload's referenced ACPs, then more ACPs of
/// the full generator up to `full`, then cheap [`filler_policy`] ACPs up to
/// `total`. Only the referenced ones are linked by any target.
pub fn build_store(workload: &Workload, full: usize, total: usize) -> AcpStore {
    let mut store = AcpStore::default();
    store.reserve(total);
    for acp in &workload.acps {
        store.insert(SmolStr::new(&acp.id), compile(&acp.id, &acp.policy()));
    }
    for i in workload.acps.len()..full.min(total) {
        let acp = gen_acp(workload.config.seed, i);
        store.insert(SmolStr::new(&acp.id), compile(&acp.id, &acp.policy()));
    }
    for i in full.max(workload.acps.len())..total {
        let id: Arc<str> = workload::acp_id(i).into();
        let compiled = compile(&id, &filler_policy(i));
        store.insert(SmolStr::new(&id), compiled);
    }
    store
}

/// What a decision needs besides the ACP store.
pub struct Engine {
    /// The hosting CSE.
    pub ctx: HostingContext,
    /// Target -> `acpi`.
    pub resources: ResourceTable,
    /// Groups, and claimed roles taken as verified.
    pub attrs: CachedAttributes,
}

/// An attribute source shaped like the PDP's attribute cache: group
/// membership indexed both ways, so a decision costs one lookup for the
/// originator's groups (the [`InMemoryAttributes`](authz_core::InMemoryAttributes) test double scans every
/// group instead). Claimed roles are taken as verified.
pub struct CachedAttributes {
    members: FxHashMap<String, FxHashSet<String>>,
    member_of: FxHashMap<String, Vec<String>>,
}

impl CachedAttributes {
    /// Indexes `groups` (absolute group ID, members' absolute IDs).
    pub fn new(groups: &[(String, Vec<String>)]) -> Self {
        let mut member_of: FxHashMap<String, Vec<String>> = FxHashMap::default();
        for (g, members) in groups {
            for m in members {
                member_of.entry(m.clone()).or_default().push(g.clone());
            }
        }
        Self {
            members: groups
                .iter()
                .map(|(g, m)| (g.clone(), m.iter().cloned().collect()))
                .collect(),
            member_of,
        }
    }
}

impl AttributeSource for CachedAttributes {
    fn role_verified(&self, _: &str, _: &str, _: chrono::DateTime<chrono::Utc>) -> Lookup<bool> {
        Lookup::Found(true)
    }
    fn knows_groups(&self) -> bool {
        !self.members.is_empty()
    }
    fn is_group(&self, group_id: &str) -> Lookup<bool> {
        Lookup::Found(self.members.contains_key(group_id))
    }
    fn group_has_member(&self, group_id: &str, originator: &str) -> Lookup<bool> {
        match self.members.get(group_id) {
            Some(m) => Lookup::Found(m.contains(originator)),
            None => Lookup::NotFound,
        }
    }
    fn for_each_group_containing(
        &self,
        originator: &str,
        visit: &mut dyn FnMut(&str),
    ) -> Lookup<()> {
        for g in self.member_of.get(originator).into_iter().flatten() {
            visit(g);
        }
        Lookup::Found(())
    }
    fn position(&self, _: &str, _: chrono::DateTime<chrono::Utc>) -> Lookup<authz_core::Position> {
        Lookup::NotFound
    }
    fn countries_of_position(&self, _: &authz_core::Position) -> Lookup<Vec<String>> {
        Lookup::NotFound
    }
    fn country_of_ip(&self, _: std::net::IpAddr) -> Lookup<String> {
        Lookup::NotFound
    }
}

impl Engine {
    /// The engine side of a workload.
    pub fn new(workload: &Workload) -> Self {
        let resources = workload
            .targets
            .iter()
            .map(|t| {
                (
                    SmolStr::new(&t.id),
                    t.acpi
                        .iter()
                        .map(|&a| SmolStr::new(&workload.acps[a].id))
                        .collect(),
                )
            })
            .collect();
        Self {
            ctx: hosting_context(),
            resources,
            attrs: CachedAttributes::new(&workload.groups),
        }
    }

    /// One decision: look up the target's `acpi`, each ACP in the store,
    /// build the applicable set on the stack and decide (no explanation).
    #[inline]
    pub fn decide(&self, store: &AcpStore, req: &DecisionRequest) -> Decision {
        let mut applicable: SmallVec<[Applicable<'_>; 4]> = SmallVec::new();
        if let Some(ids) = self.resources.get(req.target.as_str()) {
            for id in ids {
                if let Some(acp) = store.get(id) {
                    applicable.push(Applicable {
                        acp,
                        kind: PrivilegeKind::Privileges,
                    });
                }
            }
        }
        decide(
            req,
            &self.ctx,
            &applicable,
            &self.attrs,
            &DecideOptions {
                explain: false,
                granted_roles: &[],
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::WorkloadConfig;

    /// Every generated ACP compiles, and the engine's decisions equal the
    /// oracle's on the whole request set.
    #[test]
    fn engine_agrees_with_the_oracle() {
        let wl = Workload::generate(WorkloadConfig {
            requests: 2_000,
            ..WorkloadConfig::default()
        });
        let store = build_store(&wl, 2_000, 3_000);
        assert_eq!(store.len(), 3_000);
        let engine = Engine::new(&wl);
        let mut permits = 0;
        for (i, r) in wl.requests.iter().enumerate() {
            let d = engine.decide(&store, &r.request);
            assert_eq!(
                d.is_permit(),
                r.expected_permit,
                "request {i} ({:?}): {:?}\n{d:?}",
                r.construction,
                r.request
            );
            permits += usize::from(d.is_permit());
        }
        let share = permits as f64 / wl.requests.len() as f64;
        assert!((0.45..=0.55).contains(&share), "{share}");
    }

    /// The oracle matches an exact entry by the originator's ID alone,
    /// which Decision 3 allows only for an entry that is no `<group>` ID:
    /// no exact entry of the workload, read as a resource ID of the hosting
    /// CSE, is one of its groups (AE-IDs and `grpN` never meet).
    #[test]
    fn no_exact_entry_is_a_group_id() {
        let wl = Workload::generate(WorkloadConfig {
            requests: 10,
            ..WorkloadConfig::default()
        });
        let ctx = hosting_context();
        let groups: FxHashSet<&str> = wl.groups.iter().map(|(g, _)| g.as_str()).collect();
        let mut exact = 0;
        for acp in &wl.acps {
            for rule in &acp.rules {
                for o in &rule.originators {
                    if let workload::OrigEntry::Exact { entry, .. } = o {
                        let id = authz_core::ids::canonical_resource_id(entry, &ctx)
                            .expect("resource ID");
                        assert!(!groups.contains(id.as_str()), "{entry} is a group");
                        exact += 1;
                    }
                }
            }
        }
        assert!(exact > 1_000, "{exact}");
    }
}
