//! The access decision algorithm of TS-0003 clause 7.1.5, over compiled
//! policies.
//!
//! ```text
//! res_acrs       = res_acr(1) OR ... OR res_acr(K)      over every applicable ACP (permit-overrides)
//! res_acr(k)     = res_authn(k) AND res_origs(k) AND res_ops(k) AND res_ctxts(k) AND res_objd(k)
//! res_ctxts(k)   = res_context(k,1) OR ... OR res_context(k,M)   (TRUE when acco is absent)
//! res_context    = res_time AND res_ip AND res_loc
//! res_objd(k)    = res_objdetails(k,1) OR ... (CREATE only; TRUE otherwise or when acod is absent)
//! res_objdetails = res_resourceType AND res_specializationID AND res_childResource
//! ```
//!
//! `res_origs` is answered by the originator index first: only rules that name
//! the originator (by ID, wildcard, SP domain, `all` or a verified Role-ID)
//! are evaluated, and the first that permits ends the decision (7.1.5: the
//! algorithm "can stop without evaluating any other applicable access control
//! rules"). Entries that may be `<group>` resource IDs need the attribute
//! source, so they are tried only when no direct match permits. An ID entry
//! that the source knows as a `<group>` is that group only (Decision 3): it
//! is no direct match, whatever originator ID it is spelled like.
//!
//! Whatever cannot be determined (an unknown IP, position or country, an
//! unavailable attribute) makes its condition FALSE: indeterminate is Deny
//! (7.1.4).

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::attributes::{AttributeSource, Lookup};
use crate::compile::{
    CompiledAcp, CompiledAcrs, CompiledContext, CompiledRule, LocationConstraint,
};
use crate::decision::{
    AuthorizationStatus, ContextFailure, Decision, Effect, Explanation, FailedCondition,
    MAX_EXPLAINED, MissingAttribute, PrivilegeKind, RuleFailure, RuleRef,
};
use crate::ids::{
    AbsoluteId, HostingContext, canonical_resource_id, with_canonical_originator,
    with_canonical_resource_id,
};
use crate::index::{EntryRef, Key, KeyKind, Originator};
use crate::location::pack_country;
use crate::model::Specialization;
use crate::request::{DecisionRequest, Operation, Position};
use crate::time_window::TimeParts;

/// One ACP of the applicable set and which of its privileges apply.
#[derive(Debug, Clone, Copy)]
pub struct Applicable<'a> {
    /// The ACP.
    pub acp: &'a CompiledAcp,
    /// `pv`, or `pvs` when the target is the ACP itself (TS-0003 7.1.1).
    pub kind: PrivilegeKind,
}

/// Options of one decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecideOptions<'a> {
    /// Build an [`Explanation`] (costs time only on a Deny).
    pub explain: bool,
    /// Roles already verified by other means (e.g. the `rids` of a verified
    /// token), matched like verified `rids`.
    pub granted_roles: &'a [String],
}

/// Decides one request against the applicable policies (TS-0003 7.1.4, 7.1.5).
///
/// Never panics on any input: an originator that is not an ID is a Deny with
/// status `SyntaxError`.
pub fn decide(
    request: &DecisionRequest,
    ctx: &HostingContext,
    policies: &[Applicable<'_>],
    attributes: &dyn AttributeSource,
    options: &DecideOptions<'_>,
) -> Decision {
    with_canonical_originator(ctx, &request.originator, |originator| match originator {
        Ok(originator) => decide_canonical(request, originator, ctx, policies, attributes, options),
        Err(_) => Decision {
            effect: Effect::Deny,
            status: AuthorizationStatus::SyntaxError,
            permitted_by: None,
            missing: Vec::new(),
            explanation: options.explain.then(Explanation::default),
        },
    })
}

/// [`decide`] for a caller that already holds the originator in absolute
/// form, as [`with_canonical_originator`] gave it for `request.originator`
/// (a PDP that needed it to key its attribute cache).
pub fn decide_canonical(
    request: &DecisionRequest,
    originator: AbsoluteId<'_>,
    ctx: &HostingContext,
    policies: &[Applicable<'_>],
    attributes: &dyn AttributeSource,
    options: &DecideOptions<'_>,
) -> Decision {
    let originator = Originator::new(originator, ctx);
    let mut ev = Evaluation::new(request, &originator, ctx, attributes, options);

    // First pass: rules that name the originator directly.
    let mut candidates: SmallVec<[EntryRef; 8]> = SmallVec::new();
    for p in policies {
        let acrs = p.acp.rules(p.kind);
        candidates.clear();
        ev.direct_candidates(acrs, &mut candidates);
        for at in &candidates {
            if let Some(permit) = ev.evaluate(p, acrs, *at) {
                return permit;
            }
        }
        ev.undetermined_origs(acrs, |rule| candidates.iter().any(|c| c.rule == rule));
    }
    // Second pass: literal entries that turn out to be groups with the
    // originator among their members (TS-0001 9.6.2.1).
    if !policies
        .iter()
        .any(|p| p.acp.rules(p.kind).index.has_groups())
    {
        return ev.deny();
    }
    // The source lists the originator's groups (absolute IDs): each is
    // looked up in every rule set's group entries under every form an
    // entry of this hosting CSE may name it by, without copying the list.
    let mut named: SmallVec<[(u32, EntryRef); 8]> = SmallVec::new();
    let listed = attributes.for_each_group_containing(ev.originator.absolute, &mut |group| {
        let Some(absolute) = absolute_group_id(group, ctx) else {
            return;
        };
        for form in group_entry_forms(&absolute, ctx).into_iter().flatten() {
            let key = Key::new(KeyKind::Group, form);
            for (i, p) in policies.iter().enumerate() {
                if let Some(group_index) = p.acp.rules(p.kind).index.groups() {
                    candidates.clear();
                    group_index.extend_into(key, &mut candidates);
                    named.extend(candidates.iter().map(|at| (i as u32, *at)));
                }
            }
        }
    });
    if matches!(listed, Lookup::Found(())) {
        named.sort_by_key(|&(i, at)| (i, at.rule, at.entry));
        let mut policy = None;
        let mut done: SmallVec<[u32; 8]> = SmallVec::new();
        for (i, at) in named {
            let p = &policies[i as usize];
            let acrs = p.acp.rules(p.kind);
            if policy != Some(i) {
                // Rules of this policy the first pass evaluated already.
                policy = Some(i);
                done = ev.direct_rules(acrs, &mut candidates);
            }
            if done.contains(&at.rule) {
                continue;
            }
            done.push(at.rule);
            if let Some(permit) = ev.evaluate(p, acrs, at) {
                return permit;
            }
        }
        return ev.deny();
    }
    // Otherwise ask entry by entry, which names what is unavailable.
    for p in policies {
        let acrs = p.acp.rules(p.kind);
        let Some(group_index) = acrs.index.groups() else {
            continue;
        };
        let mut done = ev.direct_rules(acrs, &mut candidates);
        candidates.clear();
        for (group, at) in group_index.iter() {
            if done.contains(&at.rule) {
                continue;
            }
            // The source knows groups by absolute ID; an entry that is no
            // resource ID names no group.
            let Ok(group) = canonical_resource_id(group, ctx) else {
                continue;
            };
            // Nor does one the source knows is no group (from the group IDs
            // it keeps, also while it cannot list members): it is an
            // originator ID only, which the first pass matched already, and
            // asking about its members would report a group that does not
            // exist as missing (Decision 3).
            // (Only a `Found(false)`: a source that does not keep group IDs
            // answers `NotFound` and may still know the members.)
            if matches!(ev.attrs.is_group(&group), Lookup::Found(false)) {
                continue;
            }
            match ev.is_group_member(&group) {
                Ok(true) => candidates.push(at),
                Ok(false) => {}
                Err(missing) => ev.rare().unknown_origs.push((at, missing)),
            }
        }
        for at in &candidates {
            if done.contains(&at.rule) {
                continue;
            }
            done.push(at.rule);
            if let Some(permit) = ev.evaluate(p, acrs, *at) {
                return permit;
            }
        }
        ev.undetermined_origs(acrs, |rule| done.contains(&rule));
    }
    ev.deny()
}

/// The absolute form of a group ID an attribute source lists (sources list
/// absolute IDs; the domain is lower-cased, and anything else is read as
/// [`canonical_resource_id`] reads it), borrowed when it is one already.
fn absolute_group_id<'g>(group: &'g str, ctx: &HostingContext) -> Option<Cow<'g, str>> {
    let canonical = group.strip_prefix("//").is_some_and(|abs| {
        !abs.bytes()
            .take_while(|&b| b != b'/')
            .any(|b| b.is_ascii_uppercase())
    });
    if canonical {
        Some(Cow::Borrowed(group))
    } else {
        canonical_resource_id(group, ctx).ok().map(Cow::Owned)
    }
}

/// The texts by which an `acor` entry of a request hosted at `ctx` names the
/// `<group>` with the absolute ID `group` (TS-0001 7.2; Decision 2): the
/// absolute ID itself; in the hosting SP, its SP-relative form `/cse/rest`;
/// on the hosting CSE, also its CSE-relative form `rest`. Slices of
/// `group`: a group of another CSE is never named by a CSE-relative entry.
fn group_entry_forms<'g>(group: &'g str, ctx: &HostingContext) -> [Option<&'g str>; 3] {
    let mut forms = [Some(group), None, None];
    let Some(abs) = group.strip_prefix("//") else {
        return forms;
    };
    let domain_end = abs.find('/').unwrap_or(abs.len());
    let sp_relative = &abs[domain_end..];
    if &abs[..domain_end] != ctx.sp_fqdn() || sp_relative.is_empty() {
        return forms;
    }
    forms[1] = Some(sp_relative);
    let cse_and_rest = &sp_relative[1..];
    if let Some((cse, rest)) = cse_and_rest.split_once('/')
        && cse == ctx.cse_id()
        && !rest.is_empty()
    {
        forms[2] = Some(rest);
    }
    forms
}

/// The Role-IDs a hosting CSE sends a DAS as `rfa` (roleIDsFromACPs; TS-0003
/// 7.3.2.2 step 2.2.1): the Role-IDs in `acor` of the applicable rules
/// whose operations (`res_ops`) and contexts (`res_ctxts`) match the
/// request, whoever the originator is. Sorted and deduplicated; empty for an
/// originator that is not an ID.
pub fn role_ids_for_consultation(
    request: &DecisionRequest,
    ctx: &HostingContext,
    policies: &[Applicable<'_>],
    attributes: &dyn AttributeSource,
) -> Vec<String> {
    let Ok(originator) = ctx.canonicalize(&request.originator) else {
        return Vec::new();
    };
    let options = DecideOptions::default();
    let originator = Originator::new(AbsoluteId::parse(&originator), ctx);
    let mut ev = Evaluation::new(request, &originator, ctx, attributes, &options);
    let mut out: Vec<String> = Vec::new();
    for p in policies {
        for rule in p.acp.rules(p.kind).rules.iter() {
            let roles = rule.originators.iter().filter(|e| e.contains('@'));
            if roles.clone().next().is_none() {
                continue;
            }
            if ev.res_ops(rule).is_ok() && ev.res_ctxts(rule).is_ok() {
                out.extend(roles.map(|r| r.to_string()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The state of one decision: the request, lazily fetched attributes, and
/// what went wrong so far.
struct Evaluation<'r, 'o> {
    req: &'r DecisionRequest,
    originator: &'r Originator<'o>,
    /// The request's claimed Role-IDs (`true`: to be verified) and the
    /// granted roles (`false`), hashed once.
    role_keys: SmallVec<[(Key<'r>, bool); 2]>,
    ctx: &'r HostingContext,
    attrs: &'r dyn AttributeSource,
    options: &'r DecideOptions<'r>,
    op_bit: u32,
    any_rule_named_originator: bool,
    // Attributes, fetched on first use (plain `Vec`s: most decisions need
    // none, and an empty `Vec` costs nothing to create or drop).
    time: Option<TimeParts>,
    position: Option<Option<Position>>,
    /// Whether the source could not say where the originator is (as
    /// opposed to knowing no position for it).
    position_unavailable: bool,
    countries: Option<(SmallVec<[u16; 2]>, bool)>,
    /// Claimed roles looked up so far, with the answer (a decision with
    /// claimed roles allocates for these anyway).
    /// `None`: the source could not say (the reason is in
    /// `Rare::unavailable_roles`).
    roles: Vec<(&'r str, Option<bool>)>,
    /// Whether the source may know groups, and whether the originator's
    /// absolute ID is a `<group>` it knows (Decision 3), once asked.
    knows_groups: Option<bool>,
    originator_is_group: Option<bool>,
    /// Set by the condition just evaluated when it failed for want of an
    /// attribute (undetermined) rather than being certainly FALSE.
    undetermined: bool,
    rare: Option<Box<Rare>>,
}

/// The state most decisions never touch, behind one pointer: a decision
/// that needs none of it neither builds nor drops it.
#[derive(Default)]
struct Rare {
    /// Groups looked up so far, with the answer.
    groups: Vec<(Box<str>, Result<bool, MissingAttribute>)>,
    /// Claimed roles the source could not verify, with its reason.
    unavailable_roles: Vec<(String, String)>,
    /// Entries of the rule set being probed that name the originator only
    /// through a role or `<group>` the source could not answer (`res_origs`
    /// undetermined), with what is missing.
    unknown_origs: Vec<(EntryRef, MissingAttribute)>,
    /// Attributes the decision needed and could not get (Decision 10).
    missing: Vec<MissingAttribute>,
    /// The rules that named the originator and failed, when explaining:
    /// the first [`MAX_EXPLAINED`].
    failures: Vec<RuleFailure>,
    /// How many more failed (counted, not explained).
    more_failures: usize,
    /// What the rule being evaluated lacked; it joins `missing` only when
    /// the rule ends undetermined, not when another of its conditions is
    /// certainly FALSE (then the Deny is a final result: 7.1.4).
    pending: Vec<MissingAttribute>,
    /// What fetching the position and the countries lacked, noted again
    /// for every rule that uses the cached answer.
    position_notes: Vec<MissingAttribute>,
    countries_notes: Vec<MissingAttribute>,
}

impl<'r, 'o> Evaluation<'r, 'o> {
    // Inlined so the state is built in the caller's frame, not copied there.
    #[inline(always)]
    fn new(
        req: &'r DecisionRequest,
        originator: &'r Originator<'o>,
        ctx: &'r HostingContext,
        attrs: &'r dyn AttributeSource,
        options: &'r DecideOptions<'r>,
    ) -> Self {
        let mut role_keys = SmallVec::new();
        for r in &req.role_ids {
            role_keys.push((Key::new(KeyKind::Role, r), true));
        }
        for r in options.granted_roles {
            role_keys.push((Key::new(KeyKind::Role, r), false));
        }
        Self {
            req,
            originator,
            role_keys,
            ctx,
            attrs,
            options,
            op_bit: req.acop_bit(),
            any_rule_named_originator: false,
            time: None,
            position: None,
            position_unavailable: false,
            countries: None,
            roles: Vec::new(),
            knows_groups: None,
            originator_is_group: None,
            undetermined: false,
            rare: None,
        }
    }

    /// The rare state, made on first use.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// How many attributes the rule being evaluated has noted as missing.
    fn pending_len(&self) -> usize {
        self.rare.as_ref().map_or(0, |r| r.pending.len())
    }

    /// Forgets the notes of the rule being evaluated from `mark` on.
    fn truncate_pending(&mut self, mark: usize) {
        if let Some(r) = &mut self.rare {
            r.pending.truncate(mark);
        }
    }

    /// `res_origs` through the index: every rule with an entry that names
    /// the originator without needing a group lookup, ordered by rule.
    fn direct_candidates(&mut self, acrs: &CompiledAcrs, out: &mut SmallVec<[EntryRef; 8]>) {
        let idx = &acrs.index;
        if idx.has_all() {
            out.extend_from_slice(idx.all());
        }
        let ids_start = out.len();
        let ids_end = idx.literals.extend_with_originator(self.originator, out);
        // Only a rule set whose ID entries may be groups (not the default
        // policy's owner) has entries to drop.
        if ids_end > ids_start && idx.has_groups() {
            self.drop_known_groups(acrs, ids_start, ids_end, out);
        }
        for p in idx.patterns_for(self.originator) {
            if p.matches(self.originator) {
                out.push(p.at);
            }
        }
        if !idx.literals.is_empty() {
            for i in 0..self.role_keys.len() {
                let (key, claimed) = self.role_keys[i];
                if !idx.literals.contains(key) {
                    continue;
                }
                // A claimed role counts once the source verifies it; a
                // granted one is verified already.
                match if claimed {
                    self.role_verified(key.text)
                } else {
                    Some(true)
                } {
                    Some(true) => idx.literals.extend_into(key, out),
                    Some(false) => {}
                    None => {
                        let missing = self.role_missing(key.text);
                        let mut entries: SmallVec<[EntryRef; 8]> = SmallVec::new();
                        idx.literals.extend_into(key, &mut entries);
                        let rare = self.rare();
                        rare.unknown_origs
                            .extend(entries.into_iter().map(|at| (at, missing.clone())));
                    }
                }
            }
        }
        if out.len() > 1 {
            out.sort_by_key(|at| (at.rule, at.entry));
            out.dedup_by_key(|at| at.rule);
        }
    }

    /// Decision 3: drops from `out[start..end]` (entries naming the
    /// originator by ID) those that, read as resource IDs of the hosting
    /// CSE, are `<group>`s the source knows. Such an entry is that group
    /// only; the second pass matches it against the group's members.
    ///
    /// An entry that names the originator by ID reads, as a resource ID,
    /// as the originator's own absolute ID (an absolute entry is it, `/cse/x`
    /// is `//sp/cse/x`, a stem `x` is `//sp/hosting-cse/x`), so one question
    /// about the originator settles them all. The exception is an `S` stem:
    /// as an AE-ID `Sxyz` is `//sp/Sxyz`, as a resource ID
    /// `//sp/hosting-cse/Sxyz`, asked about on its own.
    ///
    /// An entry the source cannot tell a group or not (one that has not
    /// loaded its group IDs yet) is dropped too: as an originator ID it is
    /// undetermined (7.1.4; Decision 10), noted with what is missing; as a
    /// group it may still match in the second pass.
    fn drop_known_groups(
        &mut self,
        acrs: &CompiledAcrs,
        start: usize,
        end: usize,
        out: &mut SmallVec<[EntryRef; 8]>,
    ) {
        let knows_groups = *self
            .knows_groups
            .get_or_insert_with(|| self.attrs.knows_groups());
        if !knows_groups {
            return;
        }
        // `//sp/Sxyz`: an `S` stem entry may have named it.
        let s_ae = self
            .originator
            .sp_relative()
            .is_some_and(|r| r.starts_with("/S"));
        if !s_ae {
            match self.originator_is_group() {
                Ok(false) => {}
                Ok(true) => {
                    out.drain(start..end);
                }
                Err(missing) => {
                    let undetermined: SmallVec<[EntryRef; 8]> = out.drain(start..end).collect();
                    self.note_undetermined(&undetermined, &missing);
                }
            }
            return;
        }
        let mut i = start;
        let mut end = end;
        while i < end {
            let at = out[i];
            let entry = acrs
                .rules
                .get(at.rule as usize)
                .and_then(|r| r.originators.get(at.entry as usize))
                .map_or("", |e| &**e);
            let is_group = if entry.starts_with('S') {
                with_canonical_resource_id(entry, self.ctx, |g| match self.attrs.is_group(g) {
                    Lookup::Found(known) => Ok(known),
                    Lookup::NotFound => Ok(false),
                    Lookup::Unavailable(reason) => Err(MissingAttribute::GroupKind {
                        id: g.to_owned(),
                        reason,
                    }),
                })
            } else {
                self.originator_is_group()
            };
            match is_group {
                Ok(false) => i += 1,
                Ok(true) => {
                    out.remove(i);
                    end -= 1;
                }
                Err(missing) => {
                    out.remove(i);
                    end -= 1;
                    self.note_undetermined(&[at], &missing);
                }
            }
        }
    }

    /// Notes entries whose `res_origs` is undetermined for want of `missing`.
    fn note_undetermined(&mut self, entries: &[EntryRef], missing: &MissingAttribute) {
        if entries.is_empty() {
            return;
        }
        let rare = self.rare();
        rare.unknown_origs
            .extend(entries.iter().map(|&at| (at, missing.clone())));
    }

    /// Whether the originator's absolute ID is a `<group>` the source
    /// knows (asked once per decision); `Err` when the source cannot tell.
    fn originator_is_group(&mut self) -> Result<bool, MissingAttribute> {
        if let Some(known) = self.originator_is_group {
            return Ok(known);
        }
        let known = match self.attrs.is_group(self.originator.absolute) {
            Lookup::Found(known) => known,
            Lookup::NotFound => false,
            // Not kept: asked again, which a source without its group IDs
            // answers at once (and this is rare).
            Lookup::Unavailable(reason) => {
                return Err(MissingAttribute::GroupKind {
                    id: self.originator.absolute.to_owned(),
                    reason,
                });
            }
        };
        self.originator_is_group = Some(known);
        Ok(known)
    }

    /// The rules of `acrs` the first pass evaluated (those of
    /// [`Evaluation::direct_candidates`]), using `scratch` for the entries.
    fn direct_rules(
        &mut self,
        acrs: &CompiledAcrs,
        scratch: &mut SmallVec<[EntryRef; 8]>,
    ) -> SmallVec<[u32; 8]> {
        scratch.clear();
        let unknown = self.rare.as_ref().map_or(0, |r| r.unknown_origs.len());
        self.direct_candidates(acrs, scratch);
        // The first pass took those entries already.
        if let Some(r) = &mut self.rare {
            r.unknown_origs.truncate(unknown);
        }
        scratch.iter().map(|c| c.rule).collect()
    }

    /// `res_acr(k)` for a rule whose originators matched; `Some` is a Permit.
    fn evaluate(
        &mut self,
        p: &Applicable<'_>,
        acrs: &CompiledAcrs,
        at: EntryRef,
    ) -> Option<Decision> {
        self.any_rule_named_originator = true;
        let rule = &acrs.rules[at.rule as usize];
        let rule_ref = || RuleRef {
            acp: p.acp.id().clone(),
            privileges: p.kind,
            rule: at.rule as usize,
        };
        let matched = || rule.originators[at.entry as usize].to_string();
        self.truncate_pending(0);
        self.undetermined = false;
        let result = self.res_acr(rule);
        if result.is_err() && self.undetermined {
            // Undetermined: what it lacked explains the Deny (Decision 10).
            for m in std::mem::take(&mut self.rare().pending) {
                self.record_missing(m);
            }
        }
        match result {
            Ok(()) => Some(Decision {
                effect: Effect::Permit,
                status: AuthorizationStatus::Ok,
                permitted_by: Some(rule_ref()),
                missing: Vec::new(),
                explanation: self.options.explain.then(|| Explanation {
                    matched_originator: Some(matched()),
                    failed_rules: Vec::new(),
                    more_failed_rules: 0,
                }),
            }),
            Err(failed) => {
                if self.explaining() {
                    self.rare().failures.push(RuleFailure {
                        rule: rule_ref(),
                        matched_originator: matched(),
                        failed,
                    });
                } else if self.options.explain {
                    self.rare().more_failures += 1;
                }
                None
            }
        }
    }

    /// `res_acr` of the rules of `acrs` whose `res_origs` is undetermined
    /// (they name the originator only through a role or `<group>` the
    /// source could not answer), other than those `evaluated` already
    /// (their `res_origs` held through another entry). Such a rule never
    /// permits; what it lacks is missing unless another of its conditions
    /// is certainly FALSE, which makes the rule FALSE whatever the role or
    /// group would have been (7.1.4; Decision 10).
    fn undetermined_origs(&mut self, acrs: &CompiledAcrs, evaluated: impl Fn(u32) -> bool) {
        let Some(mut unknown) = self
            .rare
            .as_mut()
            .map(|r| std::mem::take(&mut r.unknown_origs))
            .filter(|u| !u.is_empty())
        else {
            return;
        };
        unknown.sort_by_key(|(at, _)| (at.rule, at.entry));
        let mut i = 0;
        while i < unknown.len() {
            let rule_index = unknown[i].0.rule;
            let end = i + unknown[i..]
                .iter()
                .take_while(|(at, _)| at.rule == rule_index)
                .count();
            if !evaluated(rule_index)
                && let Some(rule) = acrs.rules.get(rule_index as usize)
            {
                self.truncate_pending(0);
                self.undetermined = false;
                let certainly_false = self.res_acr(rule).is_err() && !self.undetermined;
                if !certainly_false {
                    for m in std::mem::take(&mut self.rare().pending) {
                        self.record_missing(m);
                    }
                    for (_, m) in &unknown[i..end] {
                        self.record_missing(m.clone());
                    }
                }
                self.truncate_pending(0);
            }
            i = end;
        }
    }

    /// The Deny after every candidate failed. Takes what it reports out of
    /// the evaluation instead of consuming it, which would copy the whole
    /// (large) evaluation state into the call.
    fn deny(&mut self) -> Decision {
        let (missing, failures, more_failed_rules) = match self.rare.take() {
            Some(rare) => (rare.missing, rare.failures, rare.more_failures),
            None => (Vec::new(), Vec::new(), 0),
        };
        let status = if !missing.is_empty() {
            AuthorizationStatus::MissingAttribute
        } else if self.any_rule_named_originator {
            AuthorizationStatus::Ok
        } else {
            AuthorizationStatus::NotApplicable
        };
        Decision {
            effect: Effect::Deny,
            status,
            permitted_by: None,
            missing,
            explanation: self.options.explain.then_some(Explanation {
                matched_originator: None,
                failed_rules: failures,
                more_failed_rules,
            }),
        }
    }

    /// `res_acr(k)` once `res_origs(k)` holds, reporting the first condition
    /// that failed.
    ///
    /// Three-valued: a condition that failed for want of an attribute sets
    /// `undetermined`, and the conditions after it are still evaluated, since
    /// one of them certainly FALSE makes the rule certainly FALSE whatever
    /// the missing attribute would have been.
    // Inlined into `evaluate`, the hot caller (as it was with one caller).
    #[inline(always)]
    fn res_acr(&mut self, rule: &CompiledRule) -> Result<(), FailedCondition> {
        self.res_ops(rule)?;
        self.res_authn(rule)?;
        self.undetermined = false;
        let ctxts = self.res_ctxts(rule);
        self.and_then(ctxts, |ev| ev.res_objd(rule))
    }

    /// `a AND b` over three values: `a` as evaluated (with `undetermined`
    /// as it left it), `b` evaluated unless `a` is certainly FALSE. The
    /// result is undetermined unless a side is certainly FALSE; the failure
    /// reported is the one that decides: a certainly FALSE side, else the
    /// first.
    #[inline(always)]
    fn and_then<F>(
        &mut self,
        a: Result<(), F>,
        b: impl FnOnce(&mut Self) -> Result<(), F>,
    ) -> Result<(), F> {
        if a.is_err() && !self.undetermined {
            return a;
        }
        self.undetermined = false;
        let b = b(self);
        match (a, b) {
            (Ok(()), b) => b,
            // `a` undetermined, `b` certainly FALSE (`undetermined` is
            // false already): `b` is why, whatever `a` would have been.
            (Err(_), Err(decisive)) if !self.undetermined => Err(decisive),
            (Err(first), _) => {
                // `a` undetermined: so is the conjunction.
                self.undetermined = true;
                Err(first)
            }
        }
    }

    /// `res_ops(k) = ismember(Operation, acr(k)_accessControlOperations)`.
    fn res_ops(&self, rule: &CompiledRule) -> Result<(), FailedCondition> {
        if rule.operations & self.op_bit != 0 {
            Ok(())
        } else {
            Err(FailedCondition::Operation {
                requested: self.op_bit,
                allowed: rule.operations,
            })
        }
    }

    /// Table 7.1.5-1: FALSE only when the flag is TRUE and rq_authn is FALSE.
    fn res_authn(&self, rule: &CompiledRule) -> Result<(), FailedCondition> {
        if rule.authentication_flag && !self.req.authenticated {
            Err(FailedCondition::AuthenticationFlag)
        } else {
            Ok(())
        }
    }

    /// `res_ctxts(k) = res_context(k,1) OR ... OR res_context(k,M_k)`; a rule
    /// without contexts admits any context (7.1.3: "For pairs, any context
    /// parameters ... are admissible").
    fn res_ctxts(&mut self, rule: &CompiledRule) -> Result<(), FailedCondition> {
        if rule.contexts.is_empty() {
            return Ok(());
        }
        let mut elements = Vec::new();
        let mark = self.pending_len();
        let mut undetermined = false;
        for context in rule.contexts.iter() {
            self.undetermined = false;
            let element_mark = self.pending_len();
            match self.res_context(context) {
                Ok(()) => {
                    // What the elements before lacked did not matter.
                    self.truncate_pending(mark);
                    self.undetermined = false;
                    return Ok(());
                }
                Err(f) => {
                    if !self.undetermined {
                        // Certainly FALSE: what it lacked did not matter.
                        self.truncate_pending(element_mark);
                    }
                    undetermined |= self.undetermined;
                    if self.explaining() && elements.len() < MAX_EXPLAINED {
                        elements.push(f);
                    }
                }
            }
        }
        self.undetermined = undetermined;
        Err(FailedCondition::Context { elements })
    }

    /// `res_context(k,m) = res_time(k,m) AND res_ip(k,m) AND res_loc(k,m)`.
    /// Certainly FALSE when one part is; otherwise undetermined when one
    /// part lacked its attribute. The failure reported is the first that
    /// is certainly FALSE, else the first.
    fn res_context(&mut self, c: &CompiledContext) -> Result<(), ContextFailure> {
        // The time is always known (7.1.2: the request time).
        self.res_time(c)?;
        self.undetermined = false;
        let ip = self.res_ip(c);
        self.and_then(ip, |ev| ev.res_loc(c))
    }

    /// `res_time = ismember(rq_time, accessControlTimeWindow)`.
    fn res_time(&mut self, c: &CompiledContext) -> Result<(), ContextFailure> {
        if c.time_windows.is_empty() {
            return Ok(());
        }
        let t = *self
            .time
            .get_or_insert_with(|| TimeParts::of(self.req.time));
        if c.time_windows.iter().any(|w| w.matches(&t)) {
            return Ok(());
        }
        let next_open = if self.explaining() {
            c.time_windows
                .iter()
                .filter_map(|w| w.next_match(self.req.time))
                .min()
        } else {
            None
        };
        Err(ContextFailure::TimeWindow { next_open })
    }

    /// `res_ip = ismember(rq_ip, accessControlIpAddress)`.
    fn res_ip(&mut self, c: &CompiledContext) -> Result<(), ContextFailure> {
        let Some(ranges) = &c.ip else { return Ok(()) };
        match self.req.ip {
            Some(ip) if ranges.contains(ip) => Ok(()),
            Some(ip) => Err(ContextFailure::IpAddress {
                reason: self.why(|| format!("{ip} is in no listed range")),
            }),
            None => {
                // Indeterminate, so Deny, reported as such (7.1.4; Decision 10).
                self.undetermined = true;
                self.note_missing(MissingAttribute::IpAddress {
                    reason: "not given in the request".to_owned(),
                });
                Err(ContextFailure::IpAddress {
                    reason: self.why(|| "originator IP address unknown".to_owned()),
                })
            }
        }
    }

    /// `res_loc = ismember(rq_loc, accessControlLocationRegion)` (Annex F;
    /// Decision 5).
    fn res_loc(&mut self, c: &CompiledContext) -> Result<(), ContextFailure> {
        match &c.location {
            None => Ok(()),
            Some(LocationConstraint::Circle(circle)) => match self.position() {
                Some(p) if circle.contains(&p) => Ok(()),
                Some(p) => Err(ContextFailure::Location {
                    reason: self.why(|| {
                        format!(
                            "position ({}, {}) ±{} m is not inside the circle ({}, {}) r={} m",
                            p.lat, p.lon, p.uncertainty_m, circle.lat, circle.lon, circle.radius_m
                        )
                    }),
                }),
                None => {
                    self.undetermined = true;
                    Err(ContextFailure::Location {
                        reason: self.why(|| "originator position unknown".to_owned()),
                    })
                }
            },
            Some(LocationConstraint::Countries(allowed)) => {
                let (countries, determined) = self.countries();
                if countries.is_empty() {
                    // Known to be in no country (at sea) is an answer.
                    self.undetermined = !determined;
                    Err(ContextFailure::Location {
                        reason: self.why(|| {
                            if determined {
                                "originator is in no country".to_owned()
                            } else {
                                "originator country unknown".to_owned()
                            }
                        }),
                    })
                } else if countries.iter().all(|c| allowed.contains(c)) {
                    Ok(())
                } else {
                    Err(ContextFailure::Location {
                        reason: self.why(|| {
                            // Every country must be listed: name the ones
                            // that are not, of all the originator is in.
                            let unlisted: SmallVec<[u16; 4]> = countries
                                .iter()
                                .copied()
                                .filter(|c| !allowed.contains(c))
                                .collect();
                            if countries.len() == 1 {
                                format!(
                                    "originator country {} is not listed",
                                    unpack_countries(&unlisted)
                                )
                            } else {
                                format!(
                                    "originator countries {}: {} not listed",
                                    unpack_countries(&countries),
                                    unpack_countries(&unlisted)
                                )
                            }
                        }),
                    })
                }
            }
        }
    }

    /// `res_objd(k)`: CREATE only (7.1.5), OR over the `acod` elements.
    ///
    /// A part the request does not give (the target's type, the created
    /// resource's type, or the specialization of a created `<mgmtObj>` or
    /// `<flexContainer>`) is indeterminate: FALSE, and reported as missing
    /// (Decision 10).
    fn res_objd(&mut self, rule: &CompiledRule) -> Result<(), FailedCondition> {
        if self.req.operation != Operation::Create || rule.object_details.is_empty() {
            return Ok(());
        }
        let mut reasons = Vec::new();
        let mark = self.pending_len();
        let mut undetermined = false;
        for d in rule.object_details.iter() {
            let element_mark = self.pending_len();
            // res_objdetails = res_resourceType AND res_specializationID AND
            // res_childResource: FALSE when one part is; undetermined when
            // none is and one lacks its input. The reason is the first
            // certainly FALSE part's, else the first's.
            let mut reason: Option<String> = None;
            let mut certain = false;
            let mut unknown = false;
            // res_resourceType: the type of the targeted (parent) resource.
            if let Some(ty) = d.resource_type
                && self.req.target_type != Some(ty)
            {
                match self.req.target_type {
                    Some(t) => {
                        certain = true;
                        reason = Some(self.why(|| format!("target type {t} is not ty {ty}")));
                    }
                    None => {
                        unknown = true;
                        self.note_missing(MissingAttribute::TargetType {
                            reason: format!("not given in the request; acod ty {ty} needs it"),
                        });
                        reason =
                            Some(self.why(|| format!("target type unknown, ty {ty} required")));
                    }
                }
            }
            // res_specializationID: the mgd/cnd of the created resource (Decision 13).
            if !certain
                && let Some(spty) = &d.specialization
                && self.req.specialization.as_ref() != Some(spty)
            {
                // Only a <mgmtObj> has an `mgd` and only a <flexContainer> a
                // `cnd`: for another created type (known) its absence is an
                // answer, not an unknown.
                let specializable = self
                    .req
                    .resource_type
                    .is_none_or(|rt| spty.check_created_type(rt).is_ok());
                let why = match &self.req.specialization {
                    Some(given) => self.why(|| {
                        format!(
                            "specialization {} of the created resource is not {}",
                            specialization_text(given),
                            specialization_text(spty)
                        )
                    }),
                    None if specializable => self.why(|| {
                        format!(
                            "specialization of the created resource unknown, {} required",
                            specialization_text(spty)
                        )
                    }),
                    // Known to have none of that kind: a certain FALSE, not
                    // an unknown.
                    None => self.why(|| {
                        let kind = match spty {
                            Specialization::MgmtDefinition(_) => "mgd",
                            Specialization::ContainerDefinition(_) => "cnd",
                        };
                        format!(
                            "the created resource (ty {}) has no {kind}, {} required",
                            self.req.resource_type.unwrap_or_default(),
                            specialization_text(spty)
                        )
                    }),
                };
                if self.req.specialization.is_none() && specializable {
                    unknown = true;
                    self.note_missing(MissingAttribute::Specialization {
                        reason: format!(
                            "not given in the request; acod spty {} needs it",
                            specialization_text(spty)
                        ),
                    });
                    reason.get_or_insert(why);
                } else {
                    // Certainly FALSE: it, not an unknown before, is why.
                    certain = true;
                    reason = Some(why);
                }
            }
            // res_childResource = ismember(Resource Type, childResourceType).
            if !certain {
                match self.req.resource_type {
                    Some(rt) if d.child_resource_types.contains(&rt) => {}
                    Some(rt) => {
                        certain = true;
                        reason = Some(self.why(|| {
                            format!(
                                "resource type {rt} not in chty {}",
                                crate::decision::list_text(&d.child_resource_types)
                            )
                        }));
                    }
                    None => {
                        unknown = true;
                        self.note_missing(MissingAttribute::ResourceType {
                            reason: "the type of the resource being created is not given"
                                .to_owned(),
                        });
                        let why = self.why(|| "resource type of the CREATE unknown".to_owned());
                        reason.get_or_insert(why);
                    }
                }
            }
            if !certain && !unknown {
                // What the elements before lacked did not matter.
                self.truncate_pending(mark);
                self.undetermined = false;
                return Ok(());
            }
            if certain {
                // Certainly FALSE: what it lacked did not matter.
                self.truncate_pending(element_mark);
            }
            undetermined |= !certain;
            if self.explaining() && reasons.len() < MAX_EXPLAINED {
                reasons.extend(reason);
            }
        }
        self.undetermined = undetermined;
        Err(FailedCondition::ObjectDetails { elements: reasons })
    }

    /// Notes an attribute the rule being evaluated needs and could not get
    /// ([`Evaluation::evaluate`] records it if the rule ends undetermined).
    fn note_missing(&mut self, missing: MissingAttribute) {
        self.rare().pending.push(missing);
    }

    /// Records an attribute the decision needed and could not get (once
    /// per kind: the first reason is the one reported).
    fn record_missing(&mut self, missing: MissingAttribute) {
        let same_kind = |m: &MissingAttribute| {
            std::mem::discriminant(m) == std::mem::discriminant(&missing)
                && match (m, &missing) {
                    (
                        MissingAttribute::Role { role: a, .. },
                        MissingAttribute::Role { role: b, .. },
                    ) => a == b,
                    (
                        MissingAttribute::GroupMembership { group: a, .. },
                        MissingAttribute::GroupMembership { group: b, .. },
                    )
                    | (
                        MissingAttribute::GroupKind { id: a, .. },
                        MissingAttribute::GroupKind { id: b, .. },
                    ) => a == b,
                    _ => true,
                }
        };
        let rare = self.rare();
        if !rare.missing.iter().any(same_kind) {
            rare.missing.push(missing);
        }
    }

    /// A reason text, built only when explaining.
    fn why(&self, text: impl FnOnce() -> String) -> String {
        if self.explaining() {
            text()
        } else {
            String::new()
        }
    }

    /// Whether the rule being evaluated is explained: when explaining, the
    /// first [`MAX_EXPLAINED`] failed rules are, so that an explanation,
    /// and the work of making it (a time window's next opening), stay
    /// bounded whatever a policy holds.
    fn explaining(&self) -> bool {
        self.options.explain
            && self
                .rare
                .as_ref()
                .is_none_or(|r| r.failures.len() < MAX_EXPLAINED)
    }

    /// Whether the source verifies the claimed role `role` for the
    /// originator: `Some(bool)`, or `None` when the source cannot say (the
    /// rules naming the role are then undetermined, not FALSE:
    /// [`Evaluation::undetermined_origs`]; [`Evaluation::role_missing`]
    /// says why).
    fn role_verified(&mut self, role: &'r str) -> Option<bool> {
        if let Some((_, answer)) = self.roles.iter().find(|(r, _)| *r == role) {
            return *answer;
        }
        let answer = match self
            .attrs
            .role_verified(self.originator.absolute, role, self.req.time)
        {
            Lookup::Found(v) => Some(v),
            Lookup::NotFound => Some(false),
            Lookup::Unavailable(reason) => {
                self.rare()
                    .unavailable_roles
                    .push((role.to_owned(), reason));
                None
            }
        };
        self.roles.push((role, answer));
        answer
    }

    /// What is missing for a role [`Evaluation::role_verified`] could not
    /// answer.
    fn role_missing(&self, role: &str) -> MissingAttribute {
        let reason = self.rare.as_ref().and_then(|r| {
            r.unavailable_roles
                .iter()
                .find(|(name, _)| name == role)
                .map(|(_, why)| why.clone())
        });
        MissingAttribute::Role {
            role: role.to_owned(),
            reason: reason.unwrap_or_default(),
        }
    }

    /// Whether `group` has the originator among its members, like
    /// [`Evaluation::role_verified`].
    fn is_group_member(&mut self, group: &str) -> Result<bool, MissingAttribute> {
        if let Some((_, answer)) = self
            .rare
            .as_ref()
            .and_then(|r| r.groups.iter().find(|(g, _)| &**g == group))
        {
            return answer.clone();
        }
        let answer = match self.attrs.group_has_member(group, self.originator.absolute) {
            Lookup::Found(v) => Ok(v),
            Lookup::NotFound => Ok(false),
            Lookup::Unavailable(reason) => Err(MissingAttribute::GroupMembership {
                group: group.to_owned(),
                reason,
            }),
        };
        self.rare().groups.push((group.into(), answer.clone()));
        answer
    }

    /// The originator's position: the request's, else the attribute source's.
    fn position(&mut self) -> Option<Position> {
        if let Some(p) = self.position {
            if let Some(r) = &mut self.rare {
                let notes = r.position_notes.clone();
                r.pending.extend(notes);
            }
            return p;
        }
        let mark = self.pending_len();
        let p = self.req.position.or_else(|| {
            match self.attrs.position(self.originator.absolute, self.req.time) {
                Lookup::Found(p) => Some(p),
                Lookup::NotFound => {
                    self.note_missing(MissingAttribute::Position {
                        reason: "not given in the request, and no position is known".to_owned(),
                    });
                    None
                }
                Lookup::Unavailable(reason) => {
                    self.position_unavailable = true;
                    self.note_missing(MissingAttribute::Position { reason });
                    None
                }
            }
        });
        self.position = Some(p);
        if let Some(r) = &mut self.rare {
            r.position_notes = r.pending[mark..].to_vec();
        }
        p
    }

    /// The originator's countries: the request's, else the country of its IP
    /// address, else of its position (Annex F.2.2); and whether they are
    /// known (none and known: at sea).
    fn countries(&mut self) -> (SmallVec<[u16; 2]>, bool) {
        if let Some(c) = &self.countries {
            let c = c.clone();
            if let Some(r) = &mut self.rare {
                let notes = r.countries_notes.clone();
                r.pending.extend(notes);
            }
            return c;
        }
        let mark = self.pending_len();
        // A code that is not alpha-2 can be in no list: it stays, as
        // UNLISTED, so that it denies instead of being skipped.
        let mut found: SmallVec<[u16; 2]> = self
            .req
            .countries
            .iter()
            .map(|c| pack_country(c).unwrap_or(UNLISTED))
            .collect();
        // The position counts only when the IP address gives no country
        // (Annex F.2.2: "if [it] cannot distinguish the country using the
        // Originator's IP address"), not while the IP's country is
        // unavailable: that one might be another country.
        let mut ip_unavailable = false;
        if found.is_empty()
            && let Some(ip) = self.req.ip
        {
            // An IPv4-mapped address is the IPv4 peer it stands for, as
            // in `acip` (compile.rs).
            match self.attrs.country_of_ip(ip.to_canonical()) {
                Lookup::Found(cc) => found.push(pack_country(&cc).unwrap_or(UNLISTED)),
                Lookup::NotFound => {}
                Lookup::Unavailable(reason) => {
                    self.note_missing(MissingAttribute::Country { reason });
                    ip_unavailable = true;
                }
            }
        }
        // Known to be in no country (at sea) is an answer; not known is not.
        let mut determined = !found.is_empty();
        let position = if found.is_empty() && !ip_unavailable {
            let before = self.pending_len();
            let p = self.position();
            // A position nobody knows is said by the country's own note
            // below ("neither ... its position gives one"); one the source
            // could not look up is worth its own.
            if p.is_none() && !self.position_unavailable {
                self.truncate_pending(before);
            }
            p
        } else {
            None
        };
        if let Some(p) = position {
            match self.attrs.countries_of_position(&p) {
                Lookup::Found(list) => {
                    determined = true;
                    found.extend(list.iter().map(|cc| pack_country(cc).unwrap_or(UNLISTED)))
                }
                Lookup::NotFound => {}
                Lookup::Unavailable(reason) => {
                    self.note_missing(MissingAttribute::Country { reason });
                }
            }
        }
        if !determined && !ip_unavailable {
            self.note_missing(MissingAttribute::Country {
                reason: "not given in the request, and neither its IP address nor its position gives one".to_owned(),
            });
        }
        self.countries = Some((found.clone(), determined));
        if let Some(r) = &mut self.rare {
            r.countries_notes = r.pending[mark..].to_vec();
        }
        (found, determined)
    }
}

/// A specialization as written in JSON: `{"mgd":1001}` or `{"cnd":"..."}`.
fn specialization_text(s: &Specialization) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// A country the originator is in that no `accc` list can contain (a
/// malformed code from the request or the attribute source, or a marker
/// such as the PIP's `--` for an uncertainty disk that reaches the sea).
const UNLISTED: u16 = 0;

fn unpack_countries(codes: &[u16]) -> String {
    codes
        .iter()
        .map(|c| {
            let [a, b] = c.to_be_bytes();
            if *c == UNLISTED {
                "(no country: at sea, or not a country code)".to_owned()
            } else {
                format!("{}{}", a as char, b as char)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}
