//! Validation and compilation of `<accessControlPolicy>` resources into the
//! form the evaluator runs on.
//!
//! One pass does both: every component is checked and turned into its
//! evaluation form, and every problem is reported with the path of the field
//! in oneM2M short names (`pv.acr[2].acco[0].actw[1]: day-of-week 7 out of
//! range 0-6`). What compilation produces:
//!
//! - time windows (`actw`) as per-field bitsets ([`TimeWindow`]);
//! - IP lists (`acip`) as sorted, merged address ranges searched by bisection;
//! - location regions (`aclr`) as a circle or a packed set of country codes;
//! - originators (`acor`) as an `OriginatorIndex` per set of rules, so a
//!   decision looks up the rules that name the originator instead of scanning
//!   them all.

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use smallvec::SmallVec;
use smol_str::SmolStr;
use thiserror::Error;

use crate::decision::PrivilegeKind;
use crate::ids::{EntryScope, OriginatorEntry};
use crate::index::{EntryRef, KeyKind, LiteralIndex, OriginatorIndex, Pattern};
use crate::location::{Circle, country_code_fault, pack_country};
use crate::model::{
    AccessControlContext, AccessControlPolicy, AccessControlRule, LocationRegion, ObjectDetails,
    SetOfAcrs, Specialization, acop,
};
use crate::time_window::TimeWindow;

/// One invalid field: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    /// Path of the field in oneM2M short names, e.g. `pv.acr[0].acop`.
    pub path: String,
    /// Why the value is invalid.
    pub message: String,
}

/// Every invalid field of one input, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl ValidationErrors {
    /// Prefixes every path, e.g. with the index of the resource in a file.
    pub fn prefixed(self, prefix: &str) -> Self {
        Self(
            self.0
                .into_iter()
                .map(|e| ValidationError {
                    path: format!("{prefix}{}", e.path),
                    message: e.message,
                })
                .collect(),
        )
    }
}

/// Collects errors while walking a document.
#[derive(Default)]
struct Errors(Vec<ValidationError>);

impl Errors {
    fn add(&mut self, path: impl fmt::Display, message: impl fmt::Display) {
        self.0.push(ValidationError {
            path: path.to_string(),
            message: message.to_string(),
        });
    }
}

/// An `<accessControlPolicy>` compiled for evaluation.
///
/// `repr(C)`, `pv` first: most decisions read only the header of `pv`'s
/// index; `pvs` (requests on the ACP itself) sits behind a pointer so the
/// ACP stays small where it is stored inline (a hash table's bucket).
#[derive(Debug, Clone)]
#[repr(C)]
pub struct CompiledAcp {
    privileges: CompiledAcrs,
    id: SmolStr,
    self_privileges: Box<CompiledAcrs>,
}

impl CompiledAcp {
    /// Validates and compiles an ACP under the given ID.
    ///
    /// Absent `pv` or `pvs` compile to empty rule sets; the oneM2M rule that a
    /// created ACP holds at least one `pvs` rule is [`check_create`]'s job.
    pub fn compile(
        id: impl AsRef<str>,
        acp: &AccessControlPolicy,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = Errors::default();
        let empty = SetOfAcrs::default();
        let privileges = compile_acrs(
            "pv",
            acp.privileges.as_ref().unwrap_or(&empty),
            Entries::MayNameGroups,
            &mut errors,
        );
        let self_privileges = compile_acrs(
            "pvs",
            acp.self_privileges.as_ref().unwrap_or(&empty),
            Entries::MayNameGroups,
            &mut errors,
        );
        if errors.0.is_empty() {
            Ok(Self {
                id: SmolStr::new(id),
                privileges,
                self_privileges: Box::new(self_privileges),
            })
        } else {
            Err(ValidationErrors(errors.0))
        }
    }

    /// Compiles a bare set of rules (e.g. a token's or a dynamic grant's `pv`)
    /// as the privileges of a synthetic ACP.
    pub fn from_privileges(
        id: impl AsRef<str>,
        privileges: &SetOfAcrs,
    ) -> Result<Self, ValidationErrors> {
        Self::synthetic(id, privileges, Entries::MayNameGroups)
    }

    /// Compiles the default access policy of the resource `target`
    /// ([`crate::resources::default_policy`]) under
    /// [`crate::resources::default_policy_id`]. Its `acor` names the
    /// Originator of the successful Create (or the custodian) as an ID only:
    /// never as a `<group>` whose members it would admit too (TS-0001
    /// 9.6.1.3.2, "the Originator of the successful Create only").
    pub fn default_policy(target: &str, rules: &SetOfAcrs) -> Result<Self, ValidationErrors> {
        Self::synthetic(
            crate::resources::default_policy_id(target),
            rules,
            Entries::OriginatorIdsOnly,
        )
    }

    fn synthetic(
        id: impl AsRef<str>,
        privileges: &SetOfAcrs,
        entries: Entries,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = Errors::default();
        let compiled = compile_acrs("pv", privileges, entries, &mut errors);
        if errors.0.is_empty() {
            Ok(Self {
                id: SmolStr::new(id),
                privileges: compiled,
                self_privileges: Box::default(),
            })
        } else {
            Err(ValidationErrors(errors.0))
        }
    }

    /// The ACP's ID.
    pub fn id(&self) -> &SmolStr {
        &self.id
    }

    /// The rules of `pv` or `pvs`.
    pub fn rules(&self, kind: PrivilegeKind) -> &CompiledAcrs {
        match kind {
            PrivilegeKind::Privileges => &self.privileges,
            PrivilegeKind::SelfPrivileges => &self.self_privileges,
        }
    }
}

/// The oneM2M rules for *creating* an ACP on top of [`CompiledAcp::compile`]:
/// `pv` and `pvs` are mandatory and `pvs` holds at least one rule (TS-0004
/// 7.4.2.2.1), and [`check_authorization_addresses`].
pub fn check_create(acp: &AccessControlPolicy) -> Result<(), ValidationErrors> {
    let mut errors = Errors::default();
    if acp.privileges.is_none() {
        let distributed = ["adri", "apri"]
            .iter()
            .any(|k| acp.other.get(*k).is_some_and(|v| !v.is_null()));
        errors.add(
            "pv",
            if distributed {
                "a NULL pv with adri or apri (distributed authorization, TS-0001 9.6.2.0) \
                 is not supported: the PDP decides with the ACP's own privileges, so pv is \
                 mandatory when an ACP is created (TS-0004 7.4.2.2.1)"
            } else {
                "privileges are mandatory when an ACP is created (TS-0004 7.4.2.2.1)"
            },
        );
    }
    match &acp.self_privileges {
        None => errors.add(
            "pvs",
            "selfPrivileges are mandatory when an ACP is created (TS-0004 7.4.2.2.1)",
        ),
        Some(pvs) if pvs.rules.is_empty() => errors.add(
            "pvs.acr",
            "selfPrivileges must hold at least one rule (TS-0004 7.4.2.2.1)",
        ),
        Some(_) => {}
    }
    if let Err(e) = check_authorization_addresses(acp) {
        errors.0.extend(e.0);
    }
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors.0))
    }
}

/// TS-0001 9.6.2.0 (spec notes §2.2): `adri` (the PDPs) and `apri` (the
/// PRPs) of distributed authorization belong to an ACP whose `pv` is NULL:
/// when `pv` is non-NULL neither may be present, and when it is NULL not
/// both. `airi` (the PIPs) is not restricted. A `null` or an empty list
/// counts as absent, since it names no PDP or PRP.
///
/// Check an update on the ACP it would leave (its `pv` merged with the
/// stored one).
pub fn check_authorization_addresses(acp: &AccessControlPolicy) -> Result<(), ValidationErrors> {
    let present = |key: &str| match acp.other.get(key) {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    };
    let (adri, apri) = (present("adri"), present("apri"));
    let mut errors = Errors::default();
    if acp.privileges.is_some() {
        for (key, what) in [("adri", adri), ("apri", apri)] {
            if what {
                errors.add(
                    key,
                    "must not be present when pv is non-NULL: the ACP's own privileges decide, \
                     not a distributed PDP or PRP (TS-0001 9.6.2.0)",
                );
            }
        }
    } else if adri && apri {
        for (key, other) in [("adri", "apri"), ("apri", "adri")] {
            errors.add(
                key,
                format_args!(
                    "must not be present together with {other}: an ACP with a NULL pv \
                     names a PDP (adri) or a PRP (apri), never both (TS-0001 9.6.2.0)"
                ),
            );
        }
    }
    errors.into_result()
}

/// The compiled rules of one `pv` or `pvs`, with their originator index.
///
/// `repr(C)`: the index header, which every decision reads, comes first.
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub struct CompiledAcrs {
    pub(crate) index: OriginatorIndex,
    pub(crate) rules: Box<[CompiledRule]>,
}

impl CompiledAcrs {
    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// One compiled `acr`.
#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    /// `acop` bitmask.
    pub(crate) operations: u32,
    /// `acaf`, absent = false.
    pub(crate) authentication_flag: bool,
    /// `acco` elements; empty = no constraint.
    pub(crate) contexts: Box<[CompiledContext]>,
    /// `acod` elements; empty = no constraint.
    pub(crate) object_details: Box<[CompiledObjectDetails]>,
    /// `acor` as written, for explanations.
    pub(crate) originators: Box<[Box<str>]>,
}

/// One compiled `acco` element; `None`/empty parts impose no constraint.
#[derive(Debug, Clone)]
pub(crate) struct CompiledContext {
    pub(crate) time_windows: Box<[TimeWindow]>,
    pub(crate) ip: Option<IpRanges>,
    pub(crate) location: Option<LocationConstraint>,
}

/// A compiled `aclr`.
#[derive(Debug, Clone)]
pub(crate) enum LocationConstraint {
    /// `accc`, packed upper-case codes.
    Countries(SmallVec<[u16; 4]>),
    /// `accr`.
    Circle(Circle),
}

/// One compiled `acod` element.
#[derive(Debug, Clone)]
pub(crate) struct CompiledObjectDetails {
    pub(crate) resource_type: Option<u32>,
    pub(crate) specialization: Option<Specialization>,
    pub(crate) child_resource_types: SmallVec<[u32; 4]>,
}

/// `acip` as inclusive ranges, sorted and merged, one list per family.
///
/// A request address is in the ranges of its own family that contain it
/// (`ismember`, TS-0003 7.1.5). An IPv4 address and its IPv4-mapped IPv6
/// form (`::ffff:a.b.c.d`, as dual-stack sockets report IPv4 peers) are
/// also the same peer: an entry written in the mapped form (inside
/// `::ffff:0:0/96`) is kept as the IPv4 range it stands for, and a mapped
/// request address is tested as the IPv4 address it is as well as
/// literally. Other IPv6 entries hold IPv6 addresses only: `::/0` holds
/// every IPv6 address, mapped ones included, but no address given as IPv4
/// (table 7.1.3-3 keeps the two lists apart).
#[derive(Debug, Clone, Default)]
pub(crate) struct IpRanges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpRanges {
    fn from_nets(nets: &[IpNet]) -> Self {
        let mut v4: Vec<(u32, u32)> = Vec::new();
        let mut v6: Vec<(u128, u128)> = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((n.network().into(), n.broadcast().into())),
                IpNet::V6(n) => match (
                    n.prefix_len() >= 96,
                    n.network().to_ipv4_mapped(),
                    n.broadcast().to_ipv4_mapped(),
                ) {
                    (true, Some(lo), Some(hi)) => v4.push((lo.into(), hi.into())),
                    _ => v6.push((n.network().into(), n.broadcast().into())),
                },
            }
        }
        Self {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// Is `ip` inside one of the ranges (a mapped address as its IPv4 form
    /// or as itself)?
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => in_ranges(&self.v4, u32::from(a)),
            IpAddr::V6(a) => {
                a.to_ipv4_mapped()
                    .is_some_and(|v4| in_ranges(&self.v4, u32::from(v4)))
                    || in_ranges(&self.v6, u128::from(a))
            }
        }
    }
}

fn merge<T: Ord + Copy + num_like::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.succ() => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    // First range whose start is beyond x; the candidate is the one before.
    let i = ranges.partition_point(|&(lo, _)| lo <= x);
    i > 0 && x <= ranges[i - 1].1
}

mod num_like {
    /// Saturating successor, to merge adjacent ranges.
    pub trait Succ {
        fn succ(self) -> Self;
    }
    impl Succ for u32 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> Self {
            self.saturating_add(1)
        }
    }
}

/// What the literal `acor` entries of a rule set may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entries {
    /// An originator ID, or a `<group>` with that resource ID (Decision 3).
    MayNameGroups,
    /// An originator ID only (the default policy's owner).
    OriginatorIdsOnly,
}

fn compile_acrs(
    name: &str,
    acrs: &SetOfAcrs,
    entries: Entries,
    errors: &mut Errors,
) -> CompiledAcrs {
    let mut rules = Vec::with_capacity(acrs.rules.len());
    let mut all = Vec::new();
    let mut literals: Vec<(KeyKind, String, EntryRef)> = Vec::new();
    let mut groups: Vec<(KeyKind, String, EntryRef)> = Vec::new();
    let mut patterns = Vec::new();

    for (k, rule) in acrs.rules.iter().enumerate() {
        let path = format!("{name}.acr[{k}]");
        for (j, raw) in rule.originators.iter().enumerate() {
            let at = EntryRef {
                rule: k as u32,
                entry: j as u32,
            };
            match OriginatorEntry::parse(raw) {
                Ok(OriginatorEntry::All) => all.push(at),
                Ok(OriginatorEntry::Role(role)) => literals.push((KeyKind::Role, role, at)),
                Ok(OriginatorEntry::Domain(fqdn)) => literals.push((KeyKind::Domain, fqdn, at)),
                Ok(OriginatorEntry::Exact { scope, key }) => {
                    if entries == Entries::MayNameGroups {
                        // A possible `<group>` resource ID, as written: its
                        // scope is read against each request's hosting CSE
                        // (TS-0001 7.2, Decision 2). An absolute one is the
                        // key, whose SP domain is lower-cased (domains
                        // compare case-insensitively).
                        let group = match scope {
                            EntryScope::Absolute => key.clone(),
                            _ => raw.clone(),
                        };
                        groups.push((KeyKind::Group, group, at));
                    }
                    let kind = match scope {
                        EntryScope::Absolute => KeyKind::Absolute,
                        EntryScope::SpRelative => KeyKind::SpRelative,
                        EntryScope::CseStem => KeyKind::CseStem,
                    };
                    literals.push((kind, key, at));
                }
                Ok(OriginatorEntry::Pattern { scope, segments }) => {
                    patterns.push(Pattern::new(scope, &segments, at))
                }
                Err(e) => errors.add(format_args!("{path}.acor[{j}]"), e),
            }
        }
        rules.push(compile_rule(&path, rule, errors));
    }

    let table = |entries: &[(KeyKind, String, EntryRef)]| {
        let borrowed: Vec<(KeyKind, &str, EntryRef)> = entries
            .iter()
            .map(|(kind, text, at)| (*kind, text.as_str(), *at))
            .collect();
        LiteralIndex::build(&borrowed)
    };
    CompiledAcrs {
        index: OriginatorIndex::new(all, table(&literals), patterns, table(&groups)),
        rules: rules.into_boxed_slice(),
    }
}

fn compile_rule(path: &str, rule: &AccessControlRule, errors: &mut Errors) -> CompiledRule {
    if rule.originators.is_empty() {
        // `acor` is mandatory (spec notes §2.1); an empty list is not
        // "no constraint" (Decision 11 names contexts and object details)
        // but a rule that can never apply.
        errors.add(
            format_args!("{path}.acor"),
            "names no originator: a rule applies only to the originators it lists",
        );
    }
    if rule.operations & !acop::ALL != 0 {
        errors.add(
            format_args!("{path}.acop"),
            format_args!(
                "{} sets bits outside the defined operations (1 C, 2 R, 4 U, 8 D, 16 N, 32 Discovery; at most 63)",
                rule.operations
            ),
        );
    }
    let contexts = rule
        .contexts
        .iter()
        .enumerate()
        .filter_map(|(m, c)| compile_context(&format!("{path}.acco[{m}]"), c, errors))
        .collect::<Vec<_>>();
    // An acco list whose every element is empty constrains nothing (Decision 11).
    let contexts = if contexts.iter().any(CompiledContext::is_unconstrained) {
        Vec::new()
    } else {
        contexts
    };
    let object_details = rule
        .object_details
        .iter()
        .enumerate()
        .filter_map(|(m, d)| compile_object_details(&format!("{path}.acod[{m}]"), d, errors))
        .collect::<Vec<_>>();
    CompiledRule {
        operations: rule.operations,
        authentication_flag: rule.authentication_flag.unwrap_or(false),
        contexts: contexts.into_boxed_slice(),
        object_details: object_details.into_boxed_slice(),
        originators: rule.originators.iter().map(|o| o.as_str().into()).collect(),
    }
}

impl CompiledContext {
    /// An element with no constraint admits every request, which makes the
    /// whole OR of `acco` true.
    fn is_unconstrained(&self) -> bool {
        self.time_windows.is_empty() && self.ip.is_none() && self.location.is_none()
    }
}

fn compile_context(
    path: &str,
    ctx: &AccessControlContext,
    errors: &mut Errors,
) -> Option<CompiledContext> {
    let before = errors.0.len();
    // Each window once: the same one again adds nothing to the OR but its
    // cost (a decision's, an explanation's next opening, memory).
    let mut seen = std::collections::HashSet::new();
    let time_windows = ctx
        .time_windows
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match TimeWindow::parse(s) {
            Ok(w) => seen.insert(s.as_str()).then_some(w),
            Err(e) => {
                errors.add(format_args!("{path}.actw[{i}]"), e);
                None
            }
        })
        .collect::<Vec<_>>();
    let ip = ctx.ip_addresses.as_ref().and_then(|acip| {
        let mut nets = Vec::new();
        for (i, s) in acip.ipv4.iter().enumerate() {
            match parse_ipv4_cidr(s) {
                Ok(n) => nets.push(IpNet::V4(n)),
                Err(m) => errors.add(format_args!("{path}.acip.ipv4[{i}]"), m),
            }
        }
        for (i, s) in acip.ipv6.iter().enumerate() {
            match parse_ipv6_cidr(s) {
                Ok(n) => nets.push(IpNet::V6(n)),
                Err(m) => errors.add(format_args!("{path}.acip.ipv6[{i}]"), m),
            }
        }
        // An acip with no address constrains nothing (Decision 11).
        (!nets.is_empty()).then(|| IpRanges::from_nets(&nets))
    });
    let location = ctx
        .location_region
        .as_ref()
        .and_then(|r| compile_location(&format!("{path}.aclr"), r, errors));
    (errors.0.len() == before).then(|| CompiledContext {
        time_windows: time_windows.into_boxed_slice(),
        ip,
        location,
    })
}

/// The `acor` entries of `acp` that name one ID (no wildcard) whose
/// absolute form at `hosting` is longer than an ID may be
/// ([`crate::ids::MAX_ID_BYTES`]): such an entry can match no originator
/// (a longer one is refused as a request's originator) and name no
/// `<group>` (the PIP refuses such a group ID), so it is refused where the
/// hosting CSE is known (a PRP write, `authz check`), naming its path.
pub fn check_entry_lengths(
    acp: &AccessControlPolicy,
    hosting: &crate::HostingContext,
) -> Result<(), ValidationErrors> {
    let mut errors = Errors::default();
    for (name, set) in [("pv", &acp.privileges), ("pvs", &acp.self_privileges)] {
        if let Some(set) = set {
            entry_lengths(name, set, hosting, &mut errors);
        }
    }
    errors.into_result()
}

/// [`check_entry_lengths`] of one set of rules (a dynamic ACP's
/// privileges), its paths under `name`.
pub fn check_set_entry_lengths(
    name: &str,
    set: &SetOfAcrs,
    hosting: &crate::HostingContext,
) -> Result<(), ValidationErrors> {
    let mut errors = Errors::default();
    entry_lengths(name, set, hosting, &mut errors);
    errors.into_result()
}

fn entry_lengths(
    name: &str,
    set: &SetOfAcrs,
    hosting: &crate::HostingContext,
    errors: &mut Errors,
) {
    for (i, rule) in set.rules.iter().enumerate() {
        for (j, entry) in rule.originators.iter().enumerate() {
            if let Ok(OriginatorEntry::Exact { .. }) = OriginatorEntry::parse(entry)
                && let Err(e) = hosting.check_absolute_length(entry)
            {
                errors.add(format_args!("{name}.acr[{i}].acor[{j}]"), e);
            }
        }
    }
}

impl Errors {
    fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.0))
        }
    }
}

/// An `acip` IPv4 entry, `a.b.c.d[/n]` (TS-0003 table 7.1.3-3): dotted
/// decimal without leading zeros, and a prefix without host bits set; the
/// error says why. Every reader of IPv4 prefixes (the PIP's country tables
/// too) uses it, so a spelling means the same wherever it is written.
pub fn parse_ipv4_cidr(s: &str) -> Result<Ipv4Net, String> {
    let (addr, prefix) = split_cidr(s, 32)
        .ok_or_else(|| format!("'{s}' is not an IPv4 address with optional /0-32 suffix"))?;
    let addr = addr
        .parse::<std::net::Ipv4Addr>()
        .map_err(|_| format!("'{s}' is not an IPv4 address: {}", ipv4_fault(addr)))?;
    let net = Ipv4Net::new(addr, prefix.unwrap_or(32))
        .map_err(|_| format!("'{s}' is not an IPv4 address with optional /0-32 suffix"))?;
    if net.trunc() != net {
        return Err(host_bits_fault(s, net.trunc().into(), addr.into()));
    }
    Ok(net)
}

/// Why a prefix with host bits set is refused rather than read as the
/// network holding its address, which would silently widen what the author
/// wrote (`::ffff:10.0.0.0/8` is `::/8`, every IPv4-mapped address), and
/// what to write instead.
fn host_bits_fault(s: &str, network: IpNet, addr: IpAddr) -> String {
    let mapped = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        IpAddr::V4(_) => None,
    };
    let n = network.prefix_len();
    let hint = match mapped {
        // An IPv4 prefix length on the mapped form: the likely slip. The
        // suggestion is itself a valid prefix (the IPv4 network of `/n`).
        Some(v4) if n <= 32 => format!(
            "an IPv4-mapped prefix is 96 + the IPv4 prefix length, e.g. ::ffff:{}/{}",
            Ipv4Net::new(v4, n).map_or(v4, |net| net.network()),
            96 + n
        ),
        // As IPv6, `/n` would hold every mapped address and more: no
        // network worth suggesting.
        Some(_) if n < 96 => format!(
            "an IPv4-mapped prefix is /96 to /128 (96 + the IPv4 prefix length); as IPv6, /{n} \
             is {network}, which holds every IPv4-mapped address"
        ),
        _ => format!("write {network} for the network, or {addr} for the host"),
    };
    format!("'{s}' has host bits set beyond its /{n} prefix: {hint}")
}

/// Why `text`, which [`std::net::Ipv4Addr`] does not read, is no IPv4
/// address in dotted decimal: the first fault, so that a policy author or
/// a CSE sees that `192.168.1.023` is refused for its leading zero.
pub fn ipv4_fault(text: &str) -> &'static str {
    let octets: Vec<&str> = text.split('.').collect();
    if octets.len() != 4 {
        return "dotted decimal is four octets separated by '.'";
    }
    for o in octets {
        if o.is_empty() || o.len() > 3 || !o.bytes().all(|b| b.is_ascii_digit()) {
            return "an octet is one to three decimal digits";
        }
        if o.parse::<u16>().is_ok_and(|n| n > 255) {
            return "an octet is at most 255";
        }
        if o.len() > 1 && o.starts_with('0') {
            return "an octet has no leading zero (octal to some tools)";
        }
    }
    "not dotted decimal"
}

/// An `acip` IPv6 entry, `addr[/n]`, without host bits set (see
/// [`parse_ipv4_cidr`]).
pub fn parse_ipv6_cidr(s: &str) -> Result<Ipv6Net, String> {
    let (addr, prefix) = split_cidr(s, 128)
        .ok_or_else(|| format!("'{s}' is not an IPv6 address with optional /0-128 suffix"))?;
    let addr = addr
        .parse::<std::net::Ipv6Addr>()
        .map_err(|_| format!("'{s}' is not an IPv6 address"))?;
    let net = Ipv6Net::new(addr, prefix.unwrap_or(128))
        .map_err(|_| format!("'{s}' is not an IPv6 address with optional /0-128 suffix"))?;
    if net.trunc() != net {
        return Err(host_bits_fault(s, net.trunc().into(), addr.into()));
    }
    Ok(net)
}

/// `address[/prefix]`: the address (parsed by the standard library either
/// way, so `192.168.001.010` is refused with a suffix as without one: a
/// leading zero reads as octal to some tools) and the prefix length, plain
/// decimal without a leading zero, at most `max`. `None` for a bad prefix.
fn split_cidr(s: &str, max: u8) -> Option<(&str, Option<u8>)> {
    let Some((addr, prefix)) = s.split_once('/') else {
        return Some((s, None));
    };
    let plain = !prefix.is_empty()
        && prefix.len() <= 3
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && (prefix == "0" || !prefix.starts_with('0'));
    let n: u8 = prefix.parse().ok().filter(|_| plain)?;
    (n <= max).then_some((addr, Some(n)))
}

fn compile_location(
    path: &str,
    region: &LocationRegion,
    errors: &mut Errors,
) -> Option<LocationConstraint> {
    // Empty lists count as absent (Decision 11).
    let countries = region.country_codes.as_ref().filter(|c| !c.is_empty());
    let circle = region.circle.as_ref().filter(|c| !c.is_empty());
    match (countries, circle) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            errors.add(
                path,
                "locationRegion holds exactly one of accc and accr, not both",
            );
            None
        }
        (Some(codes), None) => {
            let mut packed = SmallVec::new();
            for (i, code) in codes.iter().enumerate() {
                match pack_country(code) {
                    Some(p) => packed.push(p),
                    None => errors.add(
                        format_args!("{path}.accc[{i}]"),
                        country_code_fault(code).unwrap_or_default(),
                    ),
                }
            }
            Some(LocationConstraint::Countries(packed))
        }
        (None, Some(c)) => {
            if c.len() != 3 {
                errors.add(
                    format_args!("{path}.accr"),
                    format_args!(
                        "expected [latitude, longitude, radius], found {} numbers",
                        c.len()
                    ),
                );
                return None;
            }
            let (lat, lon, radius_m) = (c[0], c[1], c[2]);
            let mut ok = true;
            if !(-90.0..=90.0).contains(&lat) {
                errors.add(
                    format_args!("{path}.accr[0]"),
                    format_args!("latitude {lat} out of range -90..90"),
                );
                ok = false;
            }
            if !(-180.0..=180.0).contains(&lon) {
                errors.add(
                    format_args!("{path}.accr[1]"),
                    format_args!("longitude {lon} out of range -180..180"),
                );
                ok = false;
            }
            if !(radius_m.is_finite() && radius_m >= 0.0) {
                errors.add(
                    format_args!("{path}.accr[2]"),
                    format_args!("radius {radius_m} must be a finite number of metres >= 0"),
                );
                ok = false;
            }
            ok.then_some(LocationConstraint::Circle(Circle { lat, lon, radius_m }))
        }
    }
}

fn compile_object_details(
    path: &str,
    d: &ObjectDetails,
    errors: &mut Errors,
) -> Option<CompiledObjectDetails> {
    let before = errors.0.len();
    match &d.child_resource_types {
        None => errors.add(
            format_args!("{path}.chty"),
            "childResourceType is mandatory in an acod element (TS-0003 7.1.5)",
        ),
        Some(c) if c.is_empty() => errors.add(
            format_args!("{path}.chty"),
            "childResourceType must list at least one resource type",
        ),
        Some(types) => {
            for (i, _) in types.iter().enumerate().filter(|(_, t)| **t == 0) {
                errors.add(
                    format_args!("{path}.chty[{i}]"),
                    crate::model::NO_RESOURCE_TYPE_0,
                );
            }
        }
    }
    if d.resource_type == Some(0) {
        errors.add(format_args!("{path}.ty"), crate::model::NO_RESOURCE_TYPE_0);
    }
    if matches!(d.resource_type, Some(13) | Some(28)) && d.specialization.is_none() {
        errors.add(
            format_args!("{path}.spty"),
            format_args!(
                "specialization is required when ty is {} ({}) (TS-0003 7.1.5)",
                d.resource_type.unwrap_or_default(),
                if d.resource_type == Some(13) {
                    "mgmtObj"
                } else {
                    "flexContainer"
                }
            ),
        );
    }
    if let Some(Specialization::ContainerDefinition(uri)) = &d.specialization
        && uri.is_empty()
    {
        errors.add(
            format_args!("{path}.spty.cnd"),
            "containerDefinition must not be empty",
        );
    }
    (errors.0.len() == before).then(|| CompiledObjectDetails {
        resource_type: d.resource_type,
        specialization: d.specialization.clone(),
        child_resource_types: d.child_resource_types.iter().flatten().copied().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same `actw` entry twice in one `acco` element is one window
    /// (the OR of 7.1.5 res_time is the same), compiled and searched once,
    /// so repeating an expensive window costs nothing.
    #[test]
    fn a_repeated_time_window_is_compiled_once() {
        let ctx = AccessControlContext {
            time_windows: std::iter::repeat_n("* * * 29 2 * 2001-9999/4".to_owned(), 1000)
                .chain(["* * 8-18 * * 1-5 *".to_owned()])
                .collect(),
            ..Default::default()
        };
        let mut errors = Errors::default();
        let compiled = compile_context("pv.acr[0].acco[0]", &ctx, &mut errors).expect("compiles");
        assert_eq!(compiled.time_windows.len(), 2);
    }
}
