//! The deterministic reference workload: ACPs, target resources and
//! requests, plus a small independent oracle that labels each request with
//! the decision TS-0003 7.1.5 should give for it.
//!
//! Everything is generated from a seed with [`Rng`], and ACP number `i`
//! depends only on `(seed, i)`, so a store of 10 000 ACPs contains exactly
//! the 1 000 ACPs of the small store plus 9 000 more.
//!
//! The generator keeps its own structured form of every rule ([`GenRule`]).
//! The oneM2M model ([`GenAcp::policy`]), the Cedar translation
//! ([`crate::cedar`]) and the oracle ([`Oracle`]) are all derived
//! from it, so the three describe the same policies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use authz_core::model::{
    AccessControlContext, AccessControlPolicy, AccessControlRule, IpAddresses, LocationRegion,
    ObjectDetails, SetOfAcrs,
};
use authz_core::{DecisionRequest, Operation, Position};
use chrono::{DateTime, Datelike, Timelike, Utc};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustc_hash::FxHashMap;

use crate::rng::Rng;

/// SP domain of the hosting CSE.
pub const SP_FQDN: &str = "m2m.example.com";
/// CSE-ID of the hosting CSE.
pub const CSE_ID: &str = "id-in";
/// A second SP whose AEs also send requests.
pub const PARTNER_FQDN: &str = "partner.example.net";
/// Issuer domain of every Role-ID.
pub const ROLE_ISSUER: &str = "roles.example.com";

const KINDS: [&str; 5] = ["sensor", "meter", "cam", "app", "gw"];
const ROLE_NAMES: [&str; 4] = ["operator", "tenant", "maintainer", "auditor"];
const ROLES_PER_NAME: u32 = 30;
const COUNTRIES: [&str; 10] = ["DE", "FR", "KR", "US", "JP", "GB", "IT", "ES", "NL", "SE"];
/// (latitude, longitude, country) of the cities circles are drawn around.
const CITIES: [(f64, f64, &str); 8] = [
    (48.1372, 11.5756, "DE"),
    (52.5200, 13.4050, "DE"),
    (48.8566, 2.3522, "FR"),
    (37.5665, 126.9780, "KR"),
    (40.7128, -74.0060, "US"),
    (35.6762, 139.6503, "JP"),
    (51.5074, -0.1278, "GB"),
    (59.3293, 18.0686, "SE"),
];
/// Number of `<group>` resources; each has 3-12 local AEs as members.
pub const GROUPS: usize = 100;
/// Number of remote CSEs (`/id-mn1` ... `/id-mn20`) in the hosting SP.
const REMOTE_CSES: u32 = 20;
/// Number of CSEs of the partner SP.
const PARTNER_CSES: u32 = 5;
/// AE numbers run from 0 to 9999 per kind.
const AE_NUMBERS: u32 = 10_000;
/// 2026-01-01T00:00:00Z (a Thursday).
const YEAR_START: i64 = 1_767_225_600;
const YEAR_START_DOW: u32 = 4;

const STREAM_ACP: u64 = 1;
const STREAM_TARGET: u64 = 2;
const STREAM_REQUEST: u64 = 3;
const STREAM_GROUP: u64 = 4;

/// Sizes of a workload.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadConfig {
    /// Seed of everything.
    pub seed: u64,
    /// ACPs that targets may reference: ids `acp0` .. `acp{n-1}`.
    pub referenced_acps: usize,
    /// Target resources.
    pub targets: usize,
    /// Requests.
    pub requests: usize,
    /// Share of requests constructed to be permitted.
    pub permit_share: f64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            seed: 0x6f6e_654d_324d,
            referenced_acps: 1_000,
            targets: 2_000,
            requests: 4_096,
            permit_share: 0.5,
        }
    }
}

/// An originator identity: what it sends in `From`, and its absolute form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `fr` value.
    pub sent: String,
    /// `//sp/...` (Decision 2).
    pub absolute: String,
}

/// Where an ID or wildcard entry is anchored, as generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// An AE registered with the hosting CSE (entry is a `C...` stem).
    Local,
    /// An AE on a remote CSE of the hosting SP (entry is `/id-mnN/C...`).
    Remote,
    /// An SP-assigned `S...` stem.
    SStem,
    /// An AE of the partner SP (entry is absolute).
    Partner,
}

/// One generated `acor` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum OrigEntry {
    /// `all`.
    All,
    /// A concrete AE-ID.
    Exact {
        /// As written in `acor`.
        entry: String,
        /// The identity it names.
        identity: Identity,
        /// How it is anchored.
        anchor: Anchor,
    },
    /// A wildcard AE-ID: `C{kind}{prefix}*` in the chosen anchor; remote
    /// patterns also wildcard the CSE (`/id-mn*/...`), partner patterns the
    /// partner CSE (`//partner/*/...`).
    Pattern {
        /// As written in `acor`.
        entry: String,
        /// Absolute form with `*` (one per segment at most).
        absolute: String,
        /// How it is anchored.
        anchor: Anchor,
        /// AE kind.
        kind: &'static str,
        /// Leading digits of the 4-digit AE number.
        prefix: String,
    },
    /// A Role-ID.
    Role(String),
    /// The resource ID of a `<group>`.
    Group {
        /// As written in `acor`: CSE-relative, SP-relative or absolute
        /// (TS-0001 7.2), so that a decision maps it to the group.
        entry: String,
        /// The group's absolute ID, as the attribute source knows it.
        group_id: String,
    },
}

impl OrigEntry {
    /// The `acor` text.
    pub fn text(&self) -> &str {
        match self {
            Self::All => "all",
            Self::Exact { entry, .. } | Self::Pattern { entry, .. } | Self::Group { entry, .. } => {
                entry
            }
            Self::Role(r) => r,
        }
    }
}

/// An `actw` entry restricted to hours and days of week:
/// `* * {h0}-{h1} * * {d0}-{d1} *`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive hour range (UTC).
    pub hours: (u32, u32),
    /// Inclusive day-of-week range, 0 = Sunday; `None` = `*`.
    pub days: Option<(u32, u32)>,
}

impl Window {
    /// The extended crontab text.
    pub fn crontab(&self) -> String {
        let days = match self.days {
            Some((a, b)) => format!("{a}-{b}"),
            None => "*".to_owned(),
        };
        format!("* * {}-{} * * {days} *", self.hours.0, self.hours.1)
    }

    /// Does a request time fall inside?
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let h = t.hour();
        let d = t.weekday().num_days_from_sunday();
        (self.hours.0..=self.hours.1).contains(&h)
            && self.days.is_none_or(|(a, b)| (a..=b).contains(&d))
    }
}

/// A generated `aclr`.
#[derive(Debug, Clone, PartialEq)]
pub enum GenLocation {
    /// `accr`.
    Circle {
        /// Centre latitude.
        lat: f64,
        /// Centre longitude.
        lon: f64,
        /// Radius in metres.
        radius_m: f64,
    },
    /// `accc`.
    Countries(Vec<&'static str>),
}

/// One generated `acco` element; its parts are ANDed, absent parts impose nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GenContext {
    /// `actw` (ORed); empty = no time constraint.
    pub windows: Vec<Window>,
    /// `acip.ipv4`.
    pub ipv4: Vec<Ipv4Net>,
    /// `acip.ipv6`.
    pub ipv6: Vec<Ipv6Net>,
    /// `aclr`.
    pub location: Option<GenLocation>,
}

impl GenContext {
    fn has_ip(&self) -> bool {
        !self.ipv4.is_empty() || !self.ipv6.is_empty()
    }
}

/// One generated `acod` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenObjectDetails {
    /// `ty`: the type the CREATE's target (parent) must have.
    pub ty: Option<u32>,
    /// `chty`: creatable child types.
    pub chty: Vec<u32>,
}

/// One generated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRule {
    /// `acor`.
    pub originators: Vec<OrigEntry>,
    /// `acop`.
    pub operations: u32,
    /// `acco` (ORed).
    pub contexts: Vec<GenContext>,
    /// `acaf`.
    pub authentication: bool,
    /// `acod` (ORed; CREATE only).
    pub object_details: Vec<GenObjectDetails>,
}

/// One generated ACP.
#[derive(Debug, Clone)]
pub struct GenAcp {
    /// Its resource ID (`acp{i}`).
    pub id: Arc<str>,
    /// Its `pv` rules.
    pub rules: Vec<GenRule>,
}

/// A target resource: ID, type, and `acpi` (indices into [`Workload::acps`]).
#[derive(Debug, Clone)]
pub struct Target {
    /// Resource ID (`/id-in/cnt00042`).
    pub id: String,
    /// Resource type (2 AE, 3 container, 13 mgmtObj, 28 flexContainer).
    pub ty: u32,
    /// `acpi`, as indices of ACPs; ids are `acp{i}`.
    pub acpi: Vec<usize>,
}

/// What made a constructed request a Deny (or that it was built to Permit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Construction {
    /// Built to satisfy one rule.
    Permit,
    /// Another originator.
    Originator,
    /// An operation the rule does not allow.
    Operation,
    /// A time outside the windows.
    Time,
    /// An IP outside the lists.
    Ip,
    /// A location outside the region.
    Location,
    /// Not authenticated where `acaf` asks for it.
    Authentication,
    /// A CREATE of a child type `acod` does not allow.
    ObjectDetails,
}

/// A generated request and the decision the oracle expects.
#[derive(Debug, Clone)]
pub struct GenRequest {
    /// The request.
    pub request: DecisionRequest,
    /// Index of the target in [`Workload::targets`].
    pub target: usize,
    /// The oracle's decision.
    pub expected_permit: bool,
    /// How it was built.
    pub construction: Construction,
}

/// The whole workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The sizes it was built with.
    pub config: WorkloadConfig,
    /// The referenced ACPs `acp0` ..; index = number.
    pub acps: Vec<GenAcp>,
    /// Target resources.
    pub targets: Vec<Target>,
    /// `<group>` resource IDs (absolute) and their members' absolute IDs.
    pub groups: Vec<(String, Vec<String>)>,
    /// The requests.
    pub requests: Vec<GenRequest>,
}

/// `acp{i}`.
pub fn acp_id(i: usize) -> String {
    format!("acp{i}")
}

fn local(kind: &str, n: u32) -> Identity {
    let stem = format!("C{kind}{n:04}");
    Identity {
        absolute: format!("//{SP_FQDN}/{CSE_ID}/{stem}"),
        sent: stem,
    }
}

fn remote(cse: u32, kind: &str, n: u32) -> Identity {
    let rel = format!("/id-mn{cse}/C{kind}{n:04}");
    Identity {
        absolute: format!("//{SP_FQDN}{rel}"),
        sent: rel,
    }
}

fn s_stem(kind: &str, n: u32) -> Identity {
    let stem = format!("S{kind}{n:04}");
    Identity {
        absolute: format!("//{SP_FQDN}/{stem}"),
        sent: stem,
    }
}

fn partner(cse: u32, kind: &str, n: u32) -> Identity {
    let abs = format!("//{PARTNER_FQDN}/cse-p{cse}/C{kind}{n:04}");
    Identity {
        sent: abs.clone(),
        absolute: abs,
    }
}

fn random_identity(rng: &mut Rng) -> Identity {
    let kind = *rng.pick(&KINDS);
    let n = rng.below(u64::from(AE_NUMBERS)) as u32;
    match rng.weighted(&[60, 20, 8, 12]) {
        0 => {
            let mut id = local(kind, n);
            if rng.chance(0.2) {
                // Sometimes a local AE is addressed in absolute form.
                id.sent = id.absolute.clone();
            }
            id
        }
        1 => remote(rng.range(1, REMOTE_CSES), kind, n),
        2 => s_stem(kind, n),
        _ => partner(rng.range(1, PARTNER_CSES), kind, n),
    }
}

fn random_role(rng: &mut Rng) -> String {
    format!(
        "{}{}@{ROLE_ISSUER}",
        rng.pick(&ROLE_NAMES),
        rng.below(u64::from(ROLES_PER_NAME))
    )
}

fn gen_groups(seed: u64) -> Vec<(String, Vec<String>)> {
    (0..GROUPS)
        .map(|g| {
            let mut rng = Rng::for_item(seed, STREAM_GROUP, g as u64);
            let n = rng.range(3, 12);
            let members = (0..n)
                .map(|_| {
                    local(
                        rng.pick::<&str>(&KINDS),
                        rng.below(u64::from(AE_NUMBERS)) as u32,
                    )
                    .absolute
                })
                .collect();
            (format!("//{SP_FQDN}/{CSE_ID}/grp{g}"), members)
        })
        .collect()
}

fn gen_entry(rng: &mut Rng) -> OrigEntry {
    let kind = *rng.pick(&KINDS);
    let n = rng.below(u64::from(AE_NUMBERS)) as u32;
    match rng.weighted(&[30, 12, 5, 5, 12, 5, 3, 15, 10, 3]) {
        0 => {
            let identity = local(kind, n);
            OrigEntry::Exact {
                entry: identity.sent.clone(),
                identity,
                anchor: Anchor::Local,
            }
        }
        1 => {
            let identity = remote(rng.range(1, REMOTE_CSES), kind, n);
            OrigEntry::Exact {
                entry: identity.sent.clone(),
                identity,
                anchor: Anchor::Remote,
            }
        }
        2 => {
            let identity = s_stem(kind, n);
            OrigEntry::Exact {
                entry: identity.sent.clone(),
                identity,
                anchor: Anchor::SStem,
            }
        }
        3 => {
            let identity = partner(rng.range(1, PARTNER_CSES), kind, n);
            OrigEntry::Exact {
                entry: identity.sent.clone(),
                identity,
                anchor: Anchor::Partner,
            }
        }
        4..=6 => {
            // 2 or 3 leading digits: 100 or 10 matching AE numbers per kind.
            let digits = rng.range(2, 3) as usize;
            let prefix = format!("{n:04}")[..digits].to_owned();
            let (anchor, entry, absolute) = match rng.weighted(&[12, 5, 3]) {
                0 => (
                    Anchor::Local,
                    format!("C{kind}{prefix}*"),
                    format!("//{SP_FQDN}/{CSE_ID}/C{kind}{prefix}*"),
                ),
                1 => (
                    Anchor::Remote,
                    format!("/id-mn*/C{kind}{prefix}*"),
                    format!("//{SP_FQDN}/id-mn*/C{kind}{prefix}*"),
                ),
                _ => {
                    let e = format!("//{PARTNER_FQDN}/*/C{kind}{prefix}*");
                    (Anchor::Partner, e.clone(), e)
                }
            };
            OrigEntry::Pattern {
                entry,
                absolute,
                anchor,
                kind,
                prefix,
            }
        }
        7 => OrigEntry::Role(random_role(rng)),
        8 => {
            let g = rng.index(GROUPS);
            // The written form follows the AE number drawn above, which a
            // group entry does not use otherwise (no extra draw: the rest of
            // the workload stays as it was).
            let entry = match n % 4 {
                0 => format!("grp{g}"),
                1 => format!("/{CSE_ID}/grp{g}"),
                2 => format!("//{SP_FQDN}/{CSE_ID}/grp{g}"),
                _ => format!("//{}/{CSE_ID}/grp{g}", SP_FQDN.to_ascii_uppercase()),
            };
            OrigEntry::Group {
                entry,
                group_id: format!("//{SP_FQDN}/{CSE_ID}/grp{g}"),
            }
        }
        _ => OrigEntry::All,
    }
}

fn gen_window(rng: &mut Rng) -> Window {
    let h0 = rng.range(0, 12);
    let h1 = rng.range(h0 + 4, 23);
    let days = match rng.weighted(&[50, 20, 30]) {
        0 => Some((1, 5)),
        1 => None,
        _ => {
            let a = rng.range(0, 5);
            Some((a, rng.range(a + 1, 6)))
        }
    };
    Window {
        hours: (h0, h1),
        days,
    }
}

fn gen_ipv4(rng: &mut Rng) -> Ipv4Net {
    let a = rng.below(256) as u8;
    let (addr, len) = match rng.weighted(&[40, 30, 20, 10]) {
        0 => (Ipv4Addr::new(10, a, 0, 0), 16),
        1 => (Ipv4Addr::new(192, 168, a, 0), 24),
        2 => (Ipv4Addr::new(172, 16 + (a >> 4), (a & 15) << 4, 0), 20),
        _ => (Ipv4Addr::new(100, 64, a, rng.below(256) as u8), 32),
    };
    Ipv4Net::new(addr, len)
        .expect("valid prefix length")
        .trunc()
}

fn gen_ipv6(rng: &mut Rng) -> Ipv6Net {
    let a = rng.below(0x1_0000) as u16;
    let (addr, len) = if rng.chance(0.5) {
        (Ipv6Addr::new(0xfd00, a, 0, 0, 0, 0, 0, 0), 32)
    } else {
        (Ipv6Addr::new(0x2001, 0xdb8, a, 0, 0, 0, 0, 0), 48)
    };
    Ipv6Net::new(addr, len)
        .expect("valid prefix length")
        .trunc()
}

fn gen_location(rng: &mut Rng) -> GenLocation {
    if rng.chance(0.5) {
        let (lat, lon, _) = *rng.pick(&CITIES);
        GenLocation::Circle {
            lat: round4(lat + (rng.unit() - 0.5) * 0.1),
            lon: round4(lon + (rng.unit() - 0.5) * 0.1),
            radius_m: f64::from(rng.range(300, 5_000)),
        }
    } else {
        let n = rng.range(1, 3) as usize;
        let mut cs: Vec<&'static str> = Vec::with_capacity(n);
        while cs.len() < n {
            let c = *rng.pick(&COUNTRIES);
            if !cs.contains(&c) {
                cs.push(c);
            }
        }
        GenLocation::Countries(cs)
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

struct ContextShape {
    time: bool,
    ip: bool,
    location: bool,
}

fn gen_context(rng: &mut Rng, shape: &ContextShape) -> GenContext {
    let mut c = GenContext::default();
    if shape.time {
        c.windows.push(gen_window(rng));
        if rng.chance(0.2) {
            c.windows.push(gen_window(rng));
        }
    }
    if shape.ip {
        let (v4, v6) = match rng.weighted(&[60, 15, 25]) {
            0 => (rng.range(1, 3), 0),
            1 => (0, rng.range(1, 2)),
            _ => (rng.range(1, 3), rng.range(1, 2)),
        };
        c.ipv4 = (0..v4).map(|_| gen_ipv4(rng)).collect();
        c.ipv6 = (0..v6).map(|_| gen_ipv6(rng)).collect();
    }
    if shape.location {
        c.location = Some(gen_location(rng));
    }
    c
}

const ACOP_CHOICES: [(u32, u32); 11] = [
    (2, 20),
    (2 | 32, 15),
    (1 | 2, 10),
    (1 | 2 | 4 | 8, 8),
    (63, 7),
    (2 | 4, 10),
    (16, 5),
    (1, 8),
    (4, 5),
    (2 | 16, 7),
    (8, 5),
];
const CHILD_TYPES: [u32; 5] = [2, 3, 4, 23, 28];

fn gen_rule(rng: &mut Rng) -> GenRule {
    let n_orig = rng.weighted(&[60, 30, 10]) + 1;
    let originators = (0..n_orig).map(|_| gen_entry(rng)).collect();
    let weights: Vec<u32> = ACOP_CHOICES.iter().map(|(_, w)| *w).collect();
    let mut operations = ACOP_CHOICES[rng.weighted(&weights)].0;

    let shape = ContextShape {
        time: rng.chance(1.0 / 3.0),
        ip: rng.chance(1.0 / 3.0),
        location: rng.chance(0.15),
    };
    let mut contexts = Vec::new();
    if shape.time || shape.ip || shape.location {
        let n = if rng.chance(0.2) { 2 } else { 1 };
        contexts = (0..n).map(|_| gen_context(rng, &shape)).collect();
    }

    let mut object_details = Vec::new();
    if rng.chance(0.15) {
        operations |= 1;
        let n = rng.range(1, 2);
        object_details = (0..n)
            .map(|_| {
                let ty = if rng.chance(0.5) {
                    None
                } else {
                    // Not 13 or 28: those need an `spty`, which the
                    // workload does not use.
                    Some(*rng.pick(&[2, 3, 3, 5]))
                };
                let k = rng.range(1, 3) as usize;
                let mut chty = Vec::with_capacity(k);
                while chty.len() < k {
                    let t = *rng.pick(&CHILD_TYPES);
                    if !chty.contains(&t) {
                        chty.push(t);
                    }
                }
                GenObjectDetails { ty, chty }
            })
            .collect();
    }

    GenRule {
        originators,
        operations,
        contexts,
        authentication: rng.chance(0.2),
        object_details,
    }
}

/// ACP number `i` of the full generator (1-8 rules of mixed kinds).
pub fn gen_acp(seed: u64, i: usize) -> GenAcp {
    let mut rng = Rng::for_item(seed, STREAM_ACP, i as u64);
    let n_rules = rng.range(1, 8);
    GenAcp {
        id: acp_id(i).into(),
        rules: (0..n_rules).map(|_| gen_rule(&mut rng)).collect(),
    }
}

impl GenRule {
    /// The oneM2M `acr`.
    pub fn to_model(&self) -> AccessControlRule {
        AccessControlRule {
            originators: self
                .originators
                .iter()
                .map(|o| o.text().to_owned())
                .collect(),
            operations: self.operations,
            contexts: self
                .contexts
                .iter()
                .map(|c| AccessControlContext {
                    time_windows: c.windows.iter().map(Window::crontab).collect(),
                    ip_addresses: c.has_ip().then(|| IpAddresses {
                        ipv4: c.ipv4.iter().map(net_text_v4).collect(),
                        ipv6: c.ipv6.iter().map(ToString::to_string).collect(),
                    }),
                    location_region: c.location.as_ref().map(|l| match l {
                        GenLocation::Circle { lat, lon, radius_m } => LocationRegion {
                            country_codes: None,
                            circle: Some(vec![*lat, *lon, *radius_m]),
                        },
                        GenLocation::Countries(cs) => LocationRegion {
                            country_codes: Some(cs.iter().map(|c| (*c).to_owned()).collect()),
                            circle: None,
                        },
                    }),
                })
                .collect(),
            authentication_flag: self.authentication.then_some(true),
            object_details: self
                .object_details
                .iter()
                .map(|d| ObjectDetails {
                    resource_type: d.ty,
                    specialization: None,
                    child_resource_types: Some(d.chty.clone()),
                })
                .collect(),
        }
    }
}

/// A single host is written without `/32`, like `122.77.12.1` in TS-0004.
fn net_text_v4(n: &Ipv4Net) -> String {
    if n.prefix_len() == 32 {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

impl GenAcp {
    /// The `<accessControlPolicy>` resource: the generated `pv`, and a `pvs`
    /// for an administrator.
    pub fn policy(&self) -> AccessControlPolicy {
        AccessControlPolicy {
            resource_name: None,
            resource_id: Some(self.id.to_string()),
            parent_id: Some(format!("/{CSE_ID}")),
            privileges: Some(SetOfAcrs {
                rules: self.rules.iter().map(GenRule::to_model).collect(),
            }),
            self_privileges: Some(SetOfAcrs {
                rules: vec![AccessControlRule {
                    originators: vec!["Cadmin".to_owned()],
                    operations: 63,
                    ..AccessControlRule::default()
                }],
            }),
            other: serde_json::Map::new(),
        }
    }
}

/// A cheap filler ACP for large stores: one rule naming one AE that never
/// sends a request, RETRIEVE only. No request's target links it.
pub fn filler_policy(i: usize) -> AccessControlPolicy {
    AccessControlPolicy {
        resource_id: Some(acp_id(i)),
        privileges: Some(SetOfAcrs {
            rules: vec![AccessControlRule {
                originators: vec![format!("Cfiller{i}")],
                operations: 2,
                ..AccessControlRule::default()
            }],
        }),
        ..AccessControlPolicy::default()
    }
}

fn gen_target(seed: u64, i: usize, referenced: usize) -> Target {
    let mut rng = Rng::for_item(seed, STREAM_TARGET, i as u64);
    let (ty, prefix) = *rng.pick(&[
        (2, "ae"),
        (3, "cnt"),
        (3, "cnt"),
        (3, "cnt"),
        (13, "mgo"),
        (28, "fcnt"),
    ]);
    let n = rng.weighted(&[50, 35, 15]) + 1;
    let mut acpi = Vec::with_capacity(n);
    while acpi.len() < n {
        let a = rng.index(referenced);
        if !acpi.contains(&a) {
            acpi.push(a);
        }
    }
    Target {
        id: format!("/{CSE_ID}/{prefix}{i:05}"),
        ty,
        acpi,
    }
}

// ---------------------------------------------------------------------------
// The oracle

/// What the oracle needs besides the policies.
pub struct Oracle<'a> {
    acps: &'a [GenAcp],
    /// Absolute group ID -> members (absolute IDs).
    groups: FxHashMap<&'a str, &'a [String]>,
}

impl<'a> Oracle<'a> {
    /// An oracle over these ACPs and groups.
    pub fn new(acps: &'a [GenAcp], groups: &'a [(String, Vec<String>)]) -> Self {
        Self {
            acps,
            groups: groups
                .iter()
                .map(|(g, m)| (g.as_str(), m.as_slice()))
                .collect(),
        }
    }

    /// TS-0003 7.1.5 over the target's `acpi`, for the generated subset of
    /// the language: permit-overrides over every rule.
    pub fn permits(&self, target: &Target, req: &DecisionRequest, absolute: &str) -> bool {
        target.acpi.iter().any(|&a| {
            self.acps[a]
                .rules
                .iter()
                .any(|r| self.rule_permits(r, req, absolute))
        })
    }

    fn rule_permits(&self, r: &GenRule, req: &DecisionRequest, absolute: &str) -> bool {
        r.originators
            .iter()
            .any(|o| self.originator_matches(o, req, absolute))
            && r.operations & oracle_op_bit(req) != 0
            && (!r.authentication || req.authenticated)
            && (r.contexts.is_empty() || r.contexts.iter().any(|c| context_matches(c, req)))
            && (req.operation != Operation::Create
                || r.object_details.is_empty()
                || r.object_details.iter().any(|d| {
                    d.ty.is_none_or(|t| Some(t) == req.target_type)
                        && req.resource_type.is_some_and(|rt| d.chty.contains(&rt))
                }))
    }

    fn originator_matches(&self, o: &OrigEntry, req: &DecisionRequest, absolute: &str) -> bool {
        match o {
            OrigEntry::All => true,
            // No exact entry is a group ID (Decision 3 would make it one):
            // `no_exact_entry_is_a_group_id` checks.
            OrigEntry::Exact { identity, .. } => identity.absolute == absolute,
            OrigEntry::Pattern { absolute: p, .. } => segment_glob(p, absolute),
            OrigEntry::Role(role) => req.role_ids.iter().any(|r| r == role),
            OrigEntry::Group { group_id, .. } => self
                .groups
                .get(group_id.as_str())
                .is_some_and(|m| m.iter().any(|x| x == absolute)),
        }
    }
}

/// `*` matches within one `/` segment; patterns here have at most a trailing
/// `*` per segment, or a lone `*`.
fn segment_glob(pattern: &str, text: &str) -> bool {
    let mut t = text.split('/');
    pattern.split('/').all(|p| {
        t.next().is_some_and(|seg| match p.strip_suffix('*') {
            Some(prefix) => seg.starts_with(prefix),
            None => seg == p,
        })
    }) && t.next().is_none()
}

fn context_matches(c: &GenContext, req: &DecisionRequest) -> bool {
    let time = c.windows.is_empty() || c.windows.iter().any(|w| w.contains(req.time));
    let ip = !c.has_ip()
        || req.ip.is_some_and(|ip| match ip {
            IpAddr::V4(a) => c.ipv4.iter().any(|n| n.contains(&a)),
            IpAddr::V6(a) => c.ipv6.iter().any(|n| n.contains(&a)),
        });
    let loc = match &c.location {
        None => true,
        Some(GenLocation::Circle { lat, lon, radius_m }) => req
            .position
            .is_some_and(|p| oracle_distance_m(*lat, *lon, &p) + p.uncertainty_m <= *radius_m),
        Some(GenLocation::Countries(cs)) => req.countries.iter().any(|c| cs.contains(&c.as_str())),
    };
    time && ip && loc
}

// ---------------------------------------------------------------------------
// Request construction

fn time_at(day: u32, hour: u32, rng: &mut Rng) -> DateTime<Utc> {
    let secs = YEAR_START
        + i64::from(day) * 86_400
        + i64::from(hour) * 3_600
        + i64::from(rng.range(0, 3_599));
    DateTime::from_timestamp(secs, 0).expect("in range")
}

fn random_time(rng: &mut Rng) -> DateTime<Utc> {
    let day = rng.range(0, 364);
    let hour = rng.range(0, 23);
    time_at(day, hour, rng)
}

fn time_in(w: &Window, rng: &mut Rng) -> DateTime<Utc> {
    let hour = rng.range(w.hours.0, w.hours.1);
    loop {
        let day = rng.range(0, 364);
        let dow = (YEAR_START_DOW + day) % 7;
        if w.days.is_none_or(|(a, b)| (a..=b).contains(&dow)) {
            return time_at(day, hour, rng);
        }
    }
}

fn host_in(net: &IpNet, rng: &mut Rng) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let host_bits = 32 - u32::from(n.prefix_len());
            let mask = if host_bits == 0 {
                0
            } else {
                (1u64 << host_bits) - 1
            };
            let base = u32::from(n.network());
            IpAddr::V4(Ipv4Addr::from(base | (rng.next_u64() & mask) as u32))
        }
        IpNet::V6(n) => {
            let base = u128::from(n.network());
            IpAddr::V6(Ipv6Addr::from(base | u128::from(rng.next_u64())))
        }
    }
}

fn random_ip(rng: &mut Rng) -> IpAddr {
    if rng.chance(0.7) {
        host_in(&IpNet::V4(gen_ipv4(rng)), rng)
    } else {
        host_in(&IpNet::V6(gen_ipv6(rng)), rng)
    }
}

/// An address no generated `acip` contains (TEST-NET-2 and 3fff::/20).
fn outside_ip(rng: &mut Rng) -> IpAddr {
    if rng.chance(0.7) {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, rng.below(256) as u8))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0x3fff,
            0,
            rng.below(0x1_0000) as u16,
            0,
            0,
            0,
            0,
            1,
        ))
    }
}

/// A point `dist_m` metres from (lat, lon) in a random direction.
fn offset(lat: f64, lon: f64, dist_m: f64, rng: &mut Rng) -> Position {
    let bearing = rng.unit() * std::f64::consts::TAU;
    let dlat = dist_m * bearing.cos() / 111_320.0;
    let dlon = dist_m * bearing.sin() / (111_320.0 * lat.to_radians().cos());
    Position {
        lat: lat + dlat,
        lon: lon + dlon,
        uncertainty_m: 0.0,
    }
}

/// A position 20-50 km from a city centre, so at least ~2.8 radii from any
/// generated circle: never near a circle's edge, where a bounding-box
/// translation (Cedar) could disagree with the haversine test.
fn background_position(rng: &mut Rng) -> (Position, &'static str) {
    let (lat, lon, cc) = *rng.pick(&CITIES);
    (
        offset(lat, lon, f64::from(rng.range(20_000, 50_000)), rng),
        cc,
    )
}

/// The `acop` bits of TS-0003 table 7.1.3-1 (m2m:accessControlOperations,
/// spec notes §2): Discover is a Retrieve with `fu` = 1. Written out here
/// rather than taken from the engine, so the oracle shares no code with it.
const ACOP_BITS: [(u32, Operation, bool); 6] = [
    (1, Operation::Create, false),
    (2, Operation::Retrieve, false),
    (4, Operation::Update, false),
    (8, Operation::Delete, false),
    (16, Operation::Notify, false),
    (32, Operation::Retrieve, true),
];

/// The oracle's own `acop` bit of a request.
fn oracle_op_bit(req: &DecisionRequest) -> u32 {
    ACOP_BITS
        .iter()
        .find(|(_, op, discovery)| *op == req.operation && *discovery == req.discovery)
        .map_or(0, |(bit, _, _)| *bit)
}

/// The oracle's own great-circle distance (haversine over the mean Earth
/// radius of IUGG, 6 371 008.8 m), not the engine's: generated positions lie
/// far enough inside or outside every circle that the formulas' rounding
/// cannot disagree.
fn oracle_distance_m(a_lat: f64, a_lon: f64, b: &Position) -> f64 {
    const R: f64 = 6_371_008.8;
    let (p1, p2) = (a_lat.to_radians(), b.lat.to_radians());
    let (dp, dl) = ((b.lat - a_lat).to_radians(), (b.lon - a_lon).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * h.sqrt().min(1.0).asin()
}

fn op_choices(acop: u32) -> Vec<(Operation, bool)> {
    ACOP_BITS
        .iter()
        .filter(|(bit, _, _)| acop & bit != 0)
        .map(|(_, op, d)| (*op, *d))
        .collect()
}

fn set_op(req: &mut DecisionRequest, op: Operation, discovery: bool, rng: &mut Rng) {
    req.operation = op;
    req.discovery = discovery;
    req.resource_type = (op == Operation::Create).then(|| *rng.pick(&CHILD_TYPES));
}

struct Builder<'a> {
    acps: &'a [GenAcp],
    groups: &'a [(String, Vec<String>)],
    oracle: Oracle<'a>,
}

impl Builder<'_> {
    fn identity_for(&self, o: &OrigEntry, rng: &mut Rng) -> (Identity, Vec<String>) {
        let mut roles = Vec::new();
        if rng.chance(0.1) {
            roles.push(random_role(rng));
        }
        let id = match o {
            OrigEntry::All => random_identity(rng),
            OrigEntry::Exact {
                identity, anchor, ..
            } => {
                let mut id = identity.clone();
                if *anchor == Anchor::Local && rng.chance(0.2) {
                    id.sent = id.absolute.clone();
                }
                id
            }
            OrigEntry::Pattern {
                anchor,
                kind,
                prefix,
                ..
            } => {
                let rest = 10u64.pow(4 - prefix.len() as u32);
                let n: u32 = format!("{prefix}{:0w$}", rng.below(rest), w = 4 - prefix.len())
                    .parse()
                    .expect("digits");
                match anchor {
                    Anchor::Local | Anchor::SStem => local(kind, n),
                    Anchor::Remote => remote(rng.range(1, REMOTE_CSES), kind, n),
                    Anchor::Partner => partner(rng.range(1, PARTNER_CSES), kind, n),
                }
            }
            OrigEntry::Role(r) => {
                roles.insert(0, r.clone());
                let mut id = random_identity(rng);
                // Roles are held by AEs of the hosting SP.
                if id.absolute.starts_with(&format!("//{PARTNER_FQDN}")) {
                    id = local(
                        rng.pick::<&str>(&KINDS),
                        rng.below(u64::from(AE_NUMBERS)) as u32,
                    );
                }
                id
            }
            OrigEntry::Group { group_id, .. } => {
                let (_, members) = self
                    .groups
                    .iter()
                    .find(|(id, _)| id == group_id)
                    .expect("generated group exists");
                let abs = rng.pick(members).clone();
                let stem = abs.rsplit('/').next().expect("non-empty").to_owned();
                Identity {
                    sent: stem,
                    absolute: abs,
                }
            }
        };
        (id, roles)
    }

    /// A request that the chosen rule permits (so the target permits it),
    /// or `None` if the rule cannot permit any request on this target.
    fn permitted(
        &self,
        ti: usize,
        target: &Target,
        rng: &mut Rng,
    ) -> Option<(DecisionRequest, Identity, GenRule)> {
        let acp = &self.acps[*rng.pick(&target.acpi)];
        let rule = rng.pick(&acp.rules).clone();
        let entry = rng.pick(&rule.originators);
        let (identity, roles) = self.identity_for(entry, rng);
        let (op, discovery) = *rng.pick(&op_choices(rule.operations));

        let mut req = DecisionRequest::new(
            identity.sent.clone(),
            op,
            target.id.clone(),
            random_time(rng),
        );
        req.role_ids = roles;
        req.target_type = Some(target.ty);
        set_op(&mut req, op, discovery, rng);
        req.authenticated = rule.authentication || rng.chance(0.7);
        req.ip = Some(random_ip(rng));
        if rng.chance(0.6) {
            let (p, cc) = background_position(rng);
            req.position = Some(p);
            req.countries = vec![cc.to_owned()];
        }

        if op == Operation::Create && !rule.object_details.is_empty() {
            let ok: Vec<&GenObjectDetails> = rule
                .object_details
                .iter()
                .filter(|d| d.ty.is_none_or(|t| t == target.ty))
                .collect();
            if ok.is_empty() {
                return None;
            }
            let d = *rng.pick(&ok);
            req.resource_type = Some(*rng.pick(&d.chty));
        }

        if !rule.contexts.is_empty() {
            let c = rng.pick(&rule.contexts);
            if !c.windows.is_empty() {
                req.time = time_in(rng.pick(&c.windows), rng);
            }
            if c.has_ip() {
                let nets: Vec<IpNet> = c
                    .ipv4
                    .iter()
                    .map(|n| IpNet::V4(*n))
                    .chain(c.ipv6.iter().map(|n| IpNet::V6(*n)))
                    .collect();
                req.ip = Some(host_in(rng.pick(&nets), rng));
            }
            match &c.location {
                None => {}
                Some(GenLocation::Circle { lat, lon, radius_m }) => {
                    req.position = Some(offset(*lat, *lon, radius_m * 0.3 * rng.unit(), rng));
                    let cc = CITIES
                        .iter()
                        .min_by(|a, b| {
                            let da = (a.0 - lat).abs() + (a.1 - lon).abs();
                            let db = (b.0 - lat).abs() + (b.1 - lon).abs();
                            da.total_cmp(&db)
                        })
                        .expect("cities")
                        .2;
                    req.countries = vec![cc.to_owned()];
                }
                Some(GenLocation::Countries(cs)) => {
                    req.countries = vec![(*rng.pick(cs)).to_owned()];
                }
            }
        }
        // Checked in every build: the benchmark's agreement with the
        // oracle counts these requests too.
        assert!(
            self.oracle.permits(target, &req, &identity.absolute),
            "a request built to be permitted on target {ti} is denied by the oracle"
        );
        Some((req, identity, rule))
    }

    /// A permitted request with one condition broken, if the target then denies it.
    fn denied(
        &self,
        ti: usize,
        target: &Target,
        rng: &mut Rng,
    ) -> Option<(DecisionRequest, Construction)> {
        let (mut req, mut identity, rule) = self.permitted(ti, target, rng)?;
        let has_time = rule.contexts.iter().any(|c| !c.windows.is_empty());
        let has_ip = rule.contexts.iter().any(GenContext::has_ip);
        let has_loc = rule.contexts.iter().any(|c| c.location.is_some());
        let create_acod = req.operation == Operation::Create && !rule.object_details.is_empty();
        // Breaking the originator almost always yields a Deny, a context
        // condition less often (another rule may still permit), so the
        // weights favour the latter to keep the mix of Deny causes varied.
        let weights = [
            30,
            if rule.operations != 63 { 20 } else { 0 },
            if has_time { 25 } else { 0 },
            if has_ip { 25 } else { 0 },
            if has_loc { 10 } else { 0 },
            if rule.authentication { 10 } else { 0 },
            if create_acod { 10 } else { 0 },
        ];
        let how = match rng.weighted(&weights) {
            0 => {
                identity = random_identity(rng);
                req.originator = identity.sent.clone();
                req.role_ids.clear();
                if rng.chance(0.3) {
                    req.role_ids.push(random_role(rng));
                }
                Construction::Originator
            }
            1 => {
                let (op, discovery) = *rng.pick(&op_choices(63 & !rule.operations));
                set_op(&mut req, op, discovery, rng);
                Construction::Operation
            }
            2 => {
                // A time outside every window of the rule, if one is found.
                for _ in 0..20 {
                    req.time = random_time(rng);
                    let inside = rule
                        .contexts
                        .iter()
                        .flat_map(|c| &c.windows)
                        .any(|w| w.contains(req.time));
                    if !inside {
                        break;
                    }
                }
                Construction::Time
            }
            3 => {
                req.ip = Some(outside_ip(rng));
                Construction::Ip
            }
            4 => {
                let (p, cc) = background_position(rng);
                req.position = Some(p);
                let other = loop {
                    let c = *rng.pick(&COUNTRIES);
                    if c != cc {
                        break c;
                    }
                };
                req.countries = vec![other.to_owned()];
                Construction::Location
            }
            5 => {
                req.authenticated = false;
                Construction::Authentication
            }
            _ => {
                let allowed: Vec<u32> = rule
                    .object_details
                    .iter()
                    .flat_map(|d| d.chty.iter().copied())
                    .collect();
                let other = [1, 2, 3, 4, 9, 16, 23, 28]
                    .into_iter()
                    .find(|t| !allowed.contains(t))
                    .expect("chty never lists all");
                req.resource_type = Some(other);
                Construction::ObjectDetails
            }
        };
        (!self.oracle.permits(target, &req, &identity.absolute)).then_some((req, how))
    }
}

impl Workload {
    /// Generates the workload.
    pub fn generate(config: WorkloadConfig) -> Self {
        let acps: Vec<GenAcp> = (0..config.referenced_acps)
            .map(|i| gen_acp(config.seed, i))
            .collect();
        let targets: Vec<Target> = (0..config.targets)
            .map(|i| gen_target(config.seed, i, config.referenced_acps))
            .collect();
        let groups = gen_groups(config.seed);
        let requests = {
            let b = Builder {
                acps: &acps,
                groups: &groups,
                oracle: Oracle::new(&acps, &groups),
            };
            (0..config.requests)
                .map(|i| {
                    let mut rng = Rng::for_item(config.seed, STREAM_REQUEST, i as u64);
                    let want_permit = rng.chance(config.permit_share);
                    loop {
                        let ti = rng.index(targets.len());
                        let t = &targets[ti];
                        let built = if want_permit {
                            b.permitted(ti, t, &mut rng)
                                .map(|(r, _, _)| (r, Construction::Permit))
                        } else {
                            (0..8).find_map(|_| b.denied(ti, t, &mut rng))
                        };
                        if let Some((request, construction)) = built {
                            break GenRequest {
                                request,
                                target: ti,
                                expected_permit: want_permit,
                                construction,
                            };
                        }
                    }
                })
                .collect()
        };
        Self {
            config,
            acps,
            targets,
            groups,
            requests,
        }
    }

    /// The oracle over this workload's ACPs and groups.
    pub fn oracle(&self) -> Oracle<'_> {
        Oracle::new(&self.acps, &self.groups)
    }

    /// Share of requests the oracle expects to be permitted.
    pub fn expected_permit_share(&self) -> f64 {
        self.requests.iter().filter(|r| r.expected_permit).count() as f64
            / self.requests.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_segment_bound() {
        assert!(segment_glob(
            "//sp/id-in/Csensor00*",
            "//sp/id-in/Csensor0012"
        ));
        assert!(!segment_glob(
            "//sp/id-in/Csensor00*",
            "//sp/id-in/Csensor0112"
        ));
        assert!(segment_glob(
            "//sp/id-mn*/Cmeter1*",
            "//sp/id-mn3/Cmeter1234"
        ));
        assert!(!segment_glob(
            "//sp/id-mn*/Cmeter1*",
            "//sp/id-in/x/Cmeter1234"
        ));
        assert!(segment_glob("//p/*/Cgw1*", "//p/cse-p1/Cgw1000"));
    }

    #[test]
    fn windows_render_as_crontab() {
        let w = Window {
            hours: (8, 18),
            days: Some((1, 5)),
        };
        assert_eq!(w.crontab(), "* * 8-18 * * 1-5 *");
        // 2026-01-05 is a Monday.
        let t = DateTime::from_timestamp(YEAR_START + 4 * 86_400 + 9 * 3_600, 0).unwrap();
        assert!(w.contains(t));
        assert!(!w.contains(t + chrono::Duration::days(5)));
    }

    #[test]
    fn deterministic_and_balanced() {
        let cfg = WorkloadConfig {
            requests: 1_000,
            ..WorkloadConfig::default()
        };
        let a = Workload::generate(cfg);
        let b = Workload::generate(cfg);
        assert_eq!(a.requests.len(), 1_000);
        for (x, y) in a.requests.iter().zip(&b.requests) {
            assert_eq!(x.request, y.request);
        }
        let share = a.expected_permit_share();
        assert!((0.45..=0.55).contains(&share), "{share}");
        // The oracle agrees with the construction.
        let ctx = crate::hosting_context();
        let oracle = a.oracle();
        for r in &a.requests {
            let abs = ctx.canonicalize(&r.request.originator).unwrap();
            assert_eq!(
                oracle.permits(&a.targets[r.target], &r.request, &abs),
                r.expected_permit
            );
        }
    }
}
