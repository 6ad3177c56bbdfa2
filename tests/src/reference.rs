//! The reference access decision algorithm of TS-0003 clause 7.1.5, written
//! as a literal, deliberately naive transcription over the *uncompiled* model
//! so that a reviewer can hold it next to the spec text.
//!
//! Nothing here is shared with the compiled engine (`authz_core::compile`,
//! `authz_core::eval`): identifiers are canonicalized, wildcards matched,
//! crontab windows parsed, CIDRs parsed and distances computed by this file
//! alone, each time a rule is evaluated. Where the spec leaves a choice open
//! the project's "Decisions" (spec-notes.md) are followed and cited as
//! `Decision n`.
//!
//! Every partial result is a function named after the spec variable:
//!
//! ```text
//! res_acrs          = res_acr(1) OR ... OR res_acr(K)                         (7.1.5)
//! res_acr(k)        = res_authn(k) AND res_origs(k) AND res_ops(k)
//!                     AND res_ctxts(k) AND res_objd(k)
//! res_ctxts(k)      = res_context(k, 1) OR ... OR res_context(k, M_k)
//! res_context(k, m) = res_time(k, m) AND res_ip(k, m) AND res_loc(k, m)
//! res_objd(k)       = res_objdetails(k, 1) OR ... OR res_objdetails(k, M_k)   (Create only)
//! res_objdetails    = res_resourceType AND res_specializationID AND res_childResource
//! ```
//!
//! Anything unknown or indeterminate makes the condition that needed it
//! FALSE (TS-0003 7.1.4; Decision 10).

use std::net::IpAddr;

use authz_core::attributes::{AttributeSource, Lookup};
use authz_core::decision::{Effect, PrivilegeKind};
use authz_core::ids::HostingContext;
use authz_core::model::{
    AccessControlContext, AccessControlPolicy, AccessControlRule, IpAddresses, LocationRegion,
    ObjectDetails,
};
use authz_core::request::{DecisionRequest, Operation, Position};
use chrono::{Datelike, Timelike};
use geo::{Distance, Haversine, Point};
use ipnet::IpNet;

/// Everything a rule is evaluated against: the request parameters of tables
/// 7.1.2-1 to 7.1.2-3 plus what the hosting CSE knows.
struct Rq<'a> {
    req: &'a DecisionRequest,
    ctx: &'a HostingContext,
    attrs: &'a dyn AttributeSource,
    granted_roles: &'a [String],
    /// "the Originator variable refers to the authenticated identity of the
    /// originator of the request primitive which matches the From parameter"
    /// (7.1.5), in absolute form (Decision 2).
    originator: String,
}

impl<'a> Rq<'a> {
    fn new(
        req: &'a DecisionRequest,
        ctx: &'a HostingContext,
        attrs: &'a dyn AttributeSource,
        granted_roles: &'a [String],
    ) -> Self {
        Self {
            req,
            ctx,
            attrs,
            granted_roles,
            originator: canonicalize(&req.originator, ctx),
        }
    }
}

/// The access decision (7.1.4): Permit iff `res_acrs` is TRUE.
///
/// `acps` is the applicable ACP set with, for each ACP, which of its rule
/// sets applies ("Access requests to ACP's itself are evaluated against the
/// selfPrivileges attribute of that ACP. Access requests to instances of all
/// other resource types, are evaluated against the privileges attributes",
/// 7.1.1). `granted_roles` are Role-IDs verified by other means (tokens).
pub fn reference_decide(
    acps: &[(&str, &AccessControlPolicy, PrivilegeKind)],
    req: &DecisionRequest,
    ctx: &HostingContext,
    attrs: &dyn AttributeSource,
    granted_roles: &[String],
) -> Effect {
    let rq = Rq::new(req, ctx, attrs, granted_roles);
    // "If the access decision algorithm yields the result res_acrs = TRUE, then
    // the access decision for the requested resource shall be "Permit". If ...
    // res_acrs = FALSE, or the access decision algorithm is not capable of
    // deriving a final result ... the access decision ... shall be "Deny"." (7.1.4)
    if res_acrs(acps, &rq) {
        Effect::Permit
    } else {
        Effect::Deny
    }
}

/// The partial results of one rule (7.1.5), for tests that check which
/// condition decides the generated cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePartials {
    /// `[res_authn, res_origs, res_ops, res_ctxts, res_objd]`.
    pub rule: [bool; 5],
    /// `[res_time, res_ip, res_loc]` of each `acco` element.
    pub contexts: Vec<[bool; 3]>,
}

/// [`RulePartials`] of every rule [`reference_decide`] evaluates, in its
/// order; `reference_decide` is Permit iff one has all of `rule` TRUE.
pub fn reference_partials(
    acps: &[(&str, &AccessControlPolicy, PrivilegeKind)],
    req: &DecisionRequest,
    ctx: &HostingContext,
    attrs: &dyn AttributeSource,
    granted_roles: &[String],
) -> Vec<RulePartials> {
    let rq = Rq::new(req, ctx, attrs, granted_roles);
    let rules = acps.iter().filter_map(|(_, acp, kind)| match kind {
        PrivilegeKind::Privileges => acp.privileges.as_ref(),
        PrivilegeKind::SelfPrivileges => acp.self_privileges.as_ref(),
    });
    rules
        .flat_map(|acrs| &acrs.rules)
        .map(|acr| RulePartials {
            rule: [
                res_authn(acr, &rq),
                res_origs(acr, &rq),
                res_ops(acr, &rq),
                res_ctxts(acr, &rq),
                res_objd(acr, &rq),
            ],
            contexts: (acr.contexts.iter())
                .map(|c| [res_time(c, &rq), res_ip(c, &rq), res_loc(c, &rq)])
                .collect(),
        })
        .collect()
}

/// "res_acrs = res_acr(1) OR res_acr(2) ... OR res_acr(K)" (7.1.5), taken over
/// every rule of every ACP of the set: "if multiple ACP instances are assigned
/// to the protected resource, the reference access decision algorithm
/// combines the partial access control results obtained for the individual
/// ACPs of an ACP set" with "Permit-overrides" (7.1.5).
fn res_acrs(acps: &[(&str, &AccessControlPolicy, PrivilegeKind)], rq: &Rq<'_>) -> bool {
    let mut result = false;
    for (_id, acp, kind) in acps {
        let acrs = match kind {
            PrivilegeKind::Privileges => acp.privileges.as_ref(),
            PrivilegeKind::SelfPrivileges => acp.self_privileges.as_ref(),
        };
        // An absent privileges attribute contributes no rule.
        let Some(acrs) = acrs else { continue };
        for acr in &acrs.rules {
            result = result || res_acr(acr, rq);
        }
    }
    result
}

/// "res_acr(k) = res_authn(k) AND res_origs(k) AND res_ops(k) AND
/// res_ctxts(k) AND res_objd(k), k = 1…K." (7.1.5)
fn res_acr(acr: &AccessControlRule, rq: &Rq<'_>) -> bool {
    res_authn(acr, rq)
        && res_origs(acr, rq)
        && res_ops(acr, rq)
        && res_ctxts(acr, rq)
        && res_objd(acr, rq)
}

// ---------------------------------------------------------------------------
// res_authn
// ---------------------------------------------------------------------------

/// "The first partial logical result variable res_authn(k) ... shall be
/// evaluated according to table 7.1.5-1", and "If the
/// accessControlAuthenticationFlag parameter is not present, then the value is
/// assumed to be FALSE" (7.1.3).
fn res_authn(acr: &AccessControlRule, rq: &Rq<'_>) -> bool {
    let acaf = acr.authentication_flag.unwrap_or(false);
    let rq_authn = rq.req.authenticated;
    // Table 7.1.5-1, row by row.
    match (acaf, rq_authn) {
        (true, true) => true,
        (true, false) => false,
        (false, true) => true,
        (false, false) => true,
    }
}

// ---------------------------------------------------------------------------
// res_origs
// ---------------------------------------------------------------------------

/// "res_origs(k) = ismember(Originator, acr(k)_accessControlOriginators)" (7.1.5).
fn res_origs(acr: &AccessControlRule, rq: &Rq<'_>) -> bool {
    acr.originators
        .iter()
        .any(|entry| ismember_originator_entry(entry, rq))
}

/// Does one `acor` entry contain the Originator? "The accessControlOriginators
/// parameter comprises a list of SP domain names, CSE-IDs, AE-IDs,
/// resource-IDs of <group> resources and/or Role IDs ... If access for all
/// originators is to be allowed, the reserved keyword "all" may be included"
/// (7.1.3). Entry kinds per Decision 3.
fn ismember_originator_entry(entry: &str, rq: &Rq<'_>) -> bool {
    if entry == "all" {
        // "the reserved keyword "all"" (7.1.3).
        return true;
    }
    if entry.contains('@') {
        // Decision 3: an entry containing `@` is a Role-ID.
        return role_entry_matches(entry, rq);
    }
    if let Some(fqdn) = sp_domain_of_entry(entry) {
        // "Using a SP domain name in accessControlOriginators means all AE-IDs
        // and CSE-IDs matching the given domain name can be authorized" (7.1.3);
        // no wildcard in domain entries (Decision 1).
        let prefix = format!("//{}/", fqdn.to_ascii_lowercase());
        return rq.originator.starts_with(&prefix);
    }
    // Decision 3: "an entry that the PIP knows as a <group> resource ID is a
    // group": then it contains the group's members only, whatever
    // originator ID it is spelled like. No wildcard in a group ID ("Wildcard
    // characters are not applicable to ... resource-IDs of <group>
    // resources", 7.1.3). A source that cannot say whether it is a group
    // leaves it undetermined as an ID (7.1.4; Decision 10): it may still
    // match as a group whose members the source lists.
    if !entry.contains('*') {
        match rq.attrs.is_group(&absolute_resource_id(entry, rq.ctx)) {
            Lookup::Found(true) | Lookup::Unavailable(_) => return group_entry_matches(entry, rq),
            Lookup::Found(false) | Lookup::NotFound => {}
        }
    }
    // A CSE-ID or AE-ID, possibly with wildcards (Decision 1, 2) ...
    if id_matches(&canonicalize(entry, rq.ctx), &rq.originator) {
        return true;
    }
    // ... or, without wildcard, the resource-ID of a <group> whose members
    // include the Originator (spec-notes §2.4).
    !entry.contains('*') && group_entry_matches(entry, rq)
}

/// Does the `acor` entry name a `<group>` that has the Originator among its
/// members? The entry is a resource ID, read against the hosting CSE
/// (Decision 2; TS-0001 7.2); the attribute source names the Originator's
/// groups by resource ID too. Both are made absolute and compared.
fn group_entry_matches(entry: &str, rq: &Rq<'_>) -> bool {
    let wanted = absolute_resource_id(entry, rq.ctx);
    match rq.attrs.groups_containing(&rq.originator) {
        Lookup::Found(groups) => groups
            .iter()
            .any(|g| absolute_resource_id(g, rq.ctx) == wanted),
        // A group that cannot be retrieved matches nothing (TS-0001 9.6.2.1).
        Lookup::NotFound | Lookup::Unavailable(_) => false,
    }
}

/// The absolute form of a resource ID (TS-0001 7.2; Decision 2): `//fqdn/...`
/// as is (the domain compared lower-case); SP-relative `/cse/...` under the
/// hosting SP; CSE-relative `x/...` under the hosting CSE, whatever its first
/// letter (unlike an AE-ID stem, an `S...` resource ID is not SP-relative).
pub fn absolute_resource_id(id: &str, ctx: &HostingContext) -> String {
    if let Some(after) = id.strip_prefix("//") {
        let (fqdn, rest) = after.split_at(after.find('/').unwrap_or(after.len()));
        format!("//{}{}", fqdn.to_ascii_lowercase(), rest)
    } else if id.starts_with('/') {
        format!("//{}{}", ctx.sp_fqdn(), id)
    } else {
        format!("//{}/{}/{}", ctx.sp_fqdn(), ctx.cse_id(), id)
    }
}

/// A Role-ID entry matches a role of the Originator that is verified (spec
/// notes §8: "Role entries match when one of the Originator's *verified*
/// roles equals the entry"): a claimed `rids` value the attribute source
/// verifies at rq_time, or a role granted by other means.
fn role_entry_matches(entry: &str, rq: &Rq<'_>) -> bool {
    let claimed_and_verified = rq.req.role_ids.iter().any(|claimed| {
        claimed == entry
            && rq.attrs.role_verified(&rq.originator, claimed, rq.req.time) == Lookup::Found(true)
    });
    let granted = rq.granted_roles.iter().any(|g| g == entry);
    claimed_and_verified || granted
}

/// `//fqdn` with nothing after the domain is an SP domain entry.
fn sp_domain_of_entry(entry: &str) -> Option<&str> {
    let after = entry.strip_prefix("//")?;
    if after.contains('/') {
        None
    } else {
        Some(after)
    }
}

/// Decision 2: the absolute form `//sp-fqdn/...` of an ID (originator or
/// `acor` entry), using the hosting CSE's SP-ID and CSE-ID:
/// - `//fqdn/...` is already absolute; its domain is compared lower-case;
/// - `/...` is SP-relative: `//sp/...`;
/// - an AE-ID stem `S...` is SP-relative: `//sp/S...`;
/// - any other stem `C...` is an AE registered with the hosting CSE: `//sp/cse/C...`.
pub fn canonicalize(id: &str, ctx: &HostingContext) -> String {
    if let Some(after) = id.strip_prefix("//") {
        let (fqdn, rest) = match after.find('/') {
            Some(slash) => after.split_at(slash),
            None => (after, ""),
        };
        format!("//{}{}", fqdn.to_ascii_lowercase(), rest)
    } else if id.starts_with('/') {
        format!("//{}{}", ctx.sp_fqdn(), id)
    } else if id.starts_with('S') {
        format!("//{}/{}", ctx.sp_fqdn(), id)
    } else {
        format!("//{}/{}/{}", ctx.sp_fqdn(), ctx.cse_id(), id)
    }
}

/// Compares a canonical entry (maybe with `*`) with a canonical originator:
/// "The scope of a "*" is terminated by a following "/" character" (7.1.3), so
/// both are split on `/` and compared segment by segment.
pub fn id_matches(canonical_entry: &str, canonical_originator: &str) -> bool {
    let entry_segments: Vec<&str> = canonical_entry.split('/').collect();
    let originator_segments: Vec<&str> = canonical_originator.split('/').collect();
    entry_segments.len() == originator_segments.len()
        && entry_segments
            .iter()
            .zip(&originator_segments)
            .all(|(pattern, text)| wildcard_segment(pattern.as_bytes(), text.as_bytes()))
}

/// `*` matches any run of characters (possibly empty) inside one segment.
pub fn wildcard_segment(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| wildcard_segment(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && wildcard_segment(rest, &text[1..]),
    }
}

// ---------------------------------------------------------------------------
// res_ops
// ---------------------------------------------------------------------------

/// "res_ops(k) = ismember(Operation, acr(k)_accessControlOperations)" (7.1.5).
///
/// acop is a bitmask, 1 C, 2 R, 4 U, 8 D, 16 N, 32 Discovery (spec notes §1);
/// "the Discovery operation is indicated by op = Retrieve in combination with
/// the provisioning of fc and Disrestype parameters" (7.1.3): such a Retrieve
/// needs the Discovery bit only.
fn res_ops(acr: &AccessControlRule, rq: &Rq<'_>) -> bool {
    let operation_bit: u32 = match rq.req.operation {
        Operation::Create => 1,
        Operation::Retrieve if rq.req.discovery => 32,
        Operation::Retrieve => 2,
        Operation::Update => 4,
        Operation::Delete => 8,
        Operation::Notify => 16,
    };
    acr.operations & operation_bit != 0
}

// ---------------------------------------------------------------------------
// res_ctxts
// ---------------------------------------------------------------------------

/// "res_ctxts(k) = res_context(k, 1) ... OR res_context(k, m) ... OR
/// res_context(k, M_k)" (7.1.5). "For pairs [rules without
/// accessControlContexts], any context parameters associated with a request
/// message are admissible" (7.1.3); an empty list is the same (Decision 11).
fn res_ctxts(acr: &AccessControlRule, rq: &Rq<'_>) -> bool {
    if acr.contexts.is_empty() {
        return true;
    }
    acr.contexts.iter().any(|context| res_context(context, rq))
}

/// "res_context(k, m) = res_time(k, m) AND res_ip(k, m) AND res_loc(k, m)" (7.1.5).
fn res_context(context: &AccessControlContext, rq: &Rq<'_>) -> bool {
    res_time(context, rq) && res_ip(context, rq) && res_loc(context, rq)
}

/// "res_time(k, m) = ismember(rq_time, acr(k)_accessControlTimeWindow(m))"
/// (7.1.5): "when the rq_time parameter ... falls into such interval" of any
/// listed extended-crontab element (7.1.3). Absent or empty: no constraint
/// (Decision 11).
fn res_time(context: &AccessControlContext, rq: &Rq<'_>) -> bool {
    if context.time_windows.is_empty() {
        return true;
    }
    context
        .time_windows
        .iter()
        .any(|window| crontab_contains(window, rq.req.time))
}

/// "res_ip(k, m) = ismember(rq_ip, acr(k)_accessControlIpAddress(m))" (7.1.5):
/// "If the rq_[ip] parameter ... matches one of these addresses, access may be
/// granted" (7.1.3). Absent, `{}` or all lists empty: no constraint (Decision
/// 11). Otherwise a request without an IP is indeterminate: FALSE.
fn res_ip(context: &AccessControlContext, rq: &Rq<'_>) -> bool {
    let Some(IpAddresses { ipv4, ipv6 }) = &context.ip_addresses else {
        return true;
    };
    if ipv4.is_empty() && ipv6.is_empty() {
        return true;
    }
    let Some(rq_ip) = rq.req.ip else {
        return false;
    };
    // `ismember` in the request address's own family. Project choice
    // (README): an IPv4-mapped IPv6 address `::ffff:a.b.c.d` and the IPv4
    // address `a.b.c.d` are also the same peer (a dual-stack socket reports
    // one, a single-stack one the other). That peer matches the IPv4
    // entries and the IPv6 entries written in the mapped form (inside
    // `::ffff:0:0/96`); any other IPv6 entry holds IPv6 addresses only, so
    // it admits the mapped form (as an IPv6 address) but not `a.b.c.d`.
    let peer_v4 = match rq_ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    let mapped_block: IpNet = "::ffff:0:0/96".parse().expect("valid net");
    ipv4.iter().chain(ipv6).any(|entry| {
        let Some(net) = parse_ip_entry(entry) else {
            return false;
        };
        match (net, peer_v4) {
            (IpNet::V4(_), Some(v4)) => net.contains(&IpAddr::V4(v4)),
            (IpNet::V4(_), None) => false,
            (IpNet::V6(_), Some(v4)) => {
                (mapped_block.contains(&net) && net.contains(&IpAddr::V6(v4.to_ipv6_mapped())))
                    || (rq_ip.is_ipv6() && net.contains(&rq_ip))
            }
            (IpNet::V6(_), None) => !mapped_block.contains(&net) && net.contains(&rq_ip),
        }
    })
}

/// `a.b.c.d/n` or `x:y::/n`; a bare address is `/32` or `/128` (spec notes §2.1).
fn parse_ip_entry(entry: &str) -> Option<IpNet> {
    if let Ok(net) = entry.parse::<IpNet>() {
        return Some(net.trunc());
    }
    entry.parse::<IpAddr>().ok().map(IpNet::from)
}

/// "res_loc(k, m) = ismember(rq_loc, acr(k)_accessControlLocationRegion(m))"
/// (7.1.5). "These can be represented by a 2-character country code or a
/// circle with radius R centred at a point defined in terms of longitude and
/// latitude parameters" (7.1.3). Absent: no constraint.
fn res_loc(context: &AccessControlContext, rq: &Rq<'_>) -> bool {
    let Some(LocationRegion {
        country_codes,
        circle,
    }) = &context.location_region
    else {
        return true;
    };
    let circle_ok = circle
        .as_ref()
        .is_none_or(|circle| rq_loc_in_circle(circle, rq));
    let country_ok = country_codes
        .as_ref()
        .is_none_or(|codes| rq_loc_in_countries(codes, rq));
    circle_ok && country_ok
}

/// The originator's position: the request's, else the attribute source's.
fn rq_position(rq: &Rq<'_>) -> Option<Position> {
    if let Some(position) = rq.req.position {
        return Some(position);
    }
    match rq.attrs.position(&rq.originator, rq.req.time) {
        Lookup::Found(position) => Some(position),
        Lookup::NotFound | Lookup::Unavailable(_) => None,
    }
}

/// Decision 5: `[lat, lon, radius_m]` contains the position iff the whole
/// uncertainty disk lies inside: haversine distance + uncertainty <= radius,
/// give or take the formula's rounding (a micrometre: one point written
/// two ways, such as longitude 180 and -180, is 1e-9 m from itself).
fn rq_loc_in_circle(circle: &[f64], rq: &Rq<'_>) -> bool {
    let [lat, lon, radius_m] = circle else {
        return false;
    };
    let Some(position) = rq_position(rq) else {
        return false;
    };
    // geo points are x = longitude, y = latitude.
    let distance_m = Haversine.distance(
        Point::new(*lon, *lat),
        Point::new(position.lon, position.lat),
    );
    distance_m + position.uncertainty_m <= *radius_m + 1e-6
}

/// Decision 5: the originator's country is in the list. The countries are
/// those of the request if it names any (then every one must be listed),
/// else the country of the request's IP address, else (when the IP gives
/// none) the country of the originator's position; unknown does not match.
fn rq_loc_in_countries(codes: &[String], rq: &Rq<'_>) -> bool {
    let listed = |country: &str| codes.iter().any(|code| code.eq_ignore_ascii_case(country));
    if !rq.req.countries.is_empty() {
        return rq.req.countries.iter().all(|country| listed(country));
    }
    // An IPv4-mapped IPv6 address is the IPv4 peer it stands for. The
    // position counts only when the IP gives no country (Annex F.2.2), not
    // when the IP's country is unavailable.
    if let Some(ip) = rq.req.ip {
        match rq.attrs.country_of_ip(ip.to_canonical()) {
            Lookup::Found(country) => return listed(&country),
            Lookup::NotFound => {}
            Lookup::Unavailable(_) => return false,
        }
    }
    if let Some(position) = rq_position(rq)
        && let Lookup::Found(countries) = rq.attrs.countries_of_position(&position)
    {
        // Every country the uncertainty disk may reach must be listed.
        return !countries.is_empty() && countries.iter().all(|country| listed(country));
    }
    false
}

// ---------------------------------------------------------------------------
// Extended crontab (TS-0004 7.4.9.1; spec notes §3; Decision 4)
// ---------------------------------------------------------------------------

/// Field bounds in order: second, minute, hour, day-of-month, month,
/// day-of-week (0 = Sunday), year.
const CRONTAB_FIELDS: [(u32, u32); 7] = [
    (0, 59),
    (0, 59),
    (0, 23),
    (1, 31),
    (1, 12),
    (0, 6),
    (2000, 9999),
];

/// Is `time` (UTC) inside the window, i.e. does it match all 7 fields? An
/// entry that does not parse matches nothing.
pub fn crontab_contains(window: &str, time: chrono::DateTime<chrono::Utc>) -> bool {
    let fields: Vec<&str> = window.split_whitespace().collect();
    if fields.len() != 7 {
        return false;
    }
    let values = [
        time.second(),
        time.minute(),
        time.hour(),
        time.day(),
        time.month(),
        time.weekday().num_days_from_sunday(),
        u32::try_from(time.year()).unwrap_or(0),
    ];
    fields
        .iter()
        .zip(values)
        .zip(CRONTAB_FIELDS)
        .all(|((field, value), (min, max))| crontab_field_contains(field, value, min, max))
}

/// A field is a comma list; the value must be a member of at least one item.
/// Items: `*`, `*/n` (min..=max step n), `a`, `a-b`, `a-b/n`.
fn crontab_field_contains(field: &str, value: u32, min: u32, max: u32) -> bool {
    field
        .split(',')
        .any(|item| crontab_item_contains(item, value, min, max) == Some(true))
}

/// `None` when the item does not parse.
fn crontab_item_contains(item: &str, value: u32, min: u32, max: u32) -> Option<bool> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step.parse::<u32>().ok()?)),
        None => (item, None),
    };
    let step = match step {
        Some(0) => return None,
        Some(n) => n,
        None => 1,
    };
    let (first, last) = if range == "*" {
        (min, max)
    } else if let Some((a, b)) = range.split_once('-') {
        (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)
    } else {
        // A single number; a step after a single number is not defined.
        if item.contains('/') {
            return None;
        }
        let a = range.parse::<u32>().ok()?;
        (a, a)
    };
    if first < min || last > max || first > last {
        return None;
    }
    Some(first <= value && value <= last && (value - first).is_multiple_of(step))
}

// ---------------------------------------------------------------------------
// res_objd
// ---------------------------------------------------------------------------

/// "The fourth partial logical result res_objd(k) applies to Create request
/// primitives only and is derived as res_objd(k) = res_objdetails(k, 1) ...
/// OR res_objdetails(k, M_k)" (7.1.5). "An access control rule which does not
/// include any accessControlObjectDetails parameters applies to all child
/// resource types of the target resource" (7.1.3); empty is absent (Decision 11).
fn res_objd(acr: &AccessControlRule, rq: &Rq<'_>) -> bool {
    if rq.req.operation != Operation::Create {
        return true;
    }
    if acr.object_details.is_empty() {
        return true;
    }
    acr.object_details
        .iter()
        .any(|details| res_objdetails(details, rq))
}

/// "res_objdetails(k, m) = res_resourceType(k, m) AND
/// res_specializationID(k, m) AND res_childResource(k, m)" (7.1.5).
fn res_objdetails(details: &ObjectDetails, rq: &Rq<'_>) -> bool {
    res_resource_type(details, rq)
        && res_specialization_id(details, rq)
        && res_child_resource(details, rq)
}

/// res_resourceType(k, m): TRUE when resourceType is absent, else
/// resourceType == targetResourceTypeID, "the resource type identifier
/// associated with the resource addressed in the To parameter of the Create
/// request primitive" (7.1.5). An unknown target type is FALSE.
fn res_resource_type(details: &ObjectDetails, rq: &Rq<'_>) -> bool {
    match details.resource_type {
        None => true,
        Some(resource_type) => rq.req.target_type == Some(resource_type),
    }
}

/// res_specializationID(k, m): TRUE when absent; "If specializationID is
/// present, it shall be matched against the mgmtDefinition or
/// containerDefinition attributes given in the Content parameter of the
/// Create request primitive" (7.1.5; Decision 13).
fn res_specialization_id(details: &ObjectDetails, rq: &Rq<'_>) -> bool {
    match &details.specialization {
        None => true,
        Some(specialization) => rq.req.specialization.as_ref() == Some(specialization),
    }
}

/// "res_childResource(k, m) = ismember(Resource Type, childResourceType(k, m, j))
/// where Resource Type refers to the value of the parameter of the given
/// Create request primitive" (7.1.5). "The childResourceType element is
/// mandatory"; without it, or without a Resource Type, FALSE.
fn res_child_resource(details: &ObjectDetails, rq: &Rq<'_>) -> bool {
    match (&details.child_resource_types, rq.req.resource_type) {
        (Some(child_types), Some(resource_type)) => child_types.contains(&resource_type),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn wildcard_segment_is_anchored() {
        assert!(wildcard_segment(b"myCSE*", b"myCSE12"));
        assert!(wildcard_segment(b"*", b""));
        assert!(wildcard_segment(b"a*b*c", b"axxbyyc"));
        assert!(!wildcard_segment(b"a*b*c", b"axxbyyd"));
        assert!(!wildcard_segment(b"C98*", b"XC98"));
        assert!(!wildcard_segment(b"a*a", b"a"));
        assert!(wildcard_segment(b"ab", b"ab"));
        assert!(!wildcard_segment(b"ab", b"abc"));
    }

    #[test]
    fn crontab_items() {
        assert_eq!(crontab_item_contains("*", 5, 0, 59), Some(true));
        assert_eq!(crontab_item_contains("*/2", 5, 0, 59), Some(false));
        assert_eq!(crontab_item_contains("*/2", 3, 1, 31), Some(true));
        assert_eq!(crontab_item_contains("0-23/2", 22, 0, 23), Some(true));
        assert_eq!(crontab_item_contains("0-23/2", 23, 0, 23), Some(false));
        assert_eq!(crontab_item_contains("5/10", 5, 0, 59), None);
        assert_eq!(crontab_item_contains("7", 7, 0, 59), Some(true));
        assert_eq!(crontab_item_contains("6-2", 3, 0, 6), None);
        assert_eq!(crontab_item_contains("*/0", 3, 0, 6), None);
        assert_eq!(crontab_item_contains("MON", 1, 0, 6), None);
    }

    #[test]
    fn crontab_windows() {
        // Spec notes §3: 02:00:00–02:05:59, 06:00–06:05:59 and 10:00–10:05:59 every day.
        let w = "* 0-5 2,6,10 * * * *";
        let at = |h, m, s| chrono::Utc.with_ymd_and_hms(2024, 3, 5, h, m, s).unwrap();
        assert!(crontab_contains(w, at(2, 0, 0)));
        assert!(crontab_contains(w, at(6, 5, 59)));
        assert!(crontab_contains(w, at(10, 3, 17)));
        assert!(!crontab_contains(w, at(10, 6, 0)));
        assert!(!crontab_contains(w, at(3, 0, 0)));
        // 2024-03-05 is a Tuesday (dow 2); 0 = Sunday.
        assert!(crontab_contains("* * * * * 2 2024", at(0, 0, 0)));
        assert!(!crontab_contains("* * * * * 1 *", at(0, 0, 0)));
        assert!(!crontab_contains("* * * * * 2 2025", at(0, 0, 0)));
        // Six fields is not a window.
        assert!(!crontab_contains("* * * * * *", at(0, 0, 0)));
    }

    #[test]
    fn canonical_forms_decision_2() {
        let ctx = HostingContext::new("//M2MSP.org", "/myCSEID").unwrap();
        assert_eq!(canonicalize("C9886", &ctx), "//m2msp.org/myCSEID/C9886");
        assert_eq!(canonicalize("S988", &ctx), "//m2msp.org/S988");
        assert_eq!(canonicalize("/cse2/C1", &ctx), "//m2msp.org/cse2/C1");
        assert_eq!(canonicalize("//Other.ORG/x/C1", &ctx), "//other.org/x/C1");
        assert_eq!(canonicalize("//*/myCSE*", &ctx), "//*/myCSE*");
    }
}
