//! proptest strategies for the differential test: random but *valid*
//! `<accessControlPolicy>` resources, decision requests and attribute
//! sources, all drawn from one small shared vocabulary (a few SPs, CSEs,
//! AEs, roles, groups, addresses, places, countries and crontab values) so
//! that originators, contexts and object details match often and roughly
//! half of the generated cases are Permit.

use std::collections::HashSet;
use std::net::IpAddr;

use authz_core::attributes::InMemoryAttributes;
use authz_core::decision::PrivilegeKind;
use authz_core::ids::HostingContext;
use authz_core::model::{
    AccessControlContext, AccessControlPolicy, AccessControlRule, IpAddresses, LocationRegion,
    ObjectDetails, SetOfAcrs, Specialization,
};
use authz_core::request::{DecisionRequest, Operation, Position};
use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use crate::reference::canonicalize;

// ---------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------

/// Hosting contexts `(SP-ID, CSE-ID)` as configured (mixed spellings).
pub const HOSTING: &[(&str, &str)] = &[
    ("//m2msp.org", "/myCSE"),
    ("//M2MSP.ORG", "cse2"),
    ("//other.org", "/myCSE"),
];
/// SP domains (canonical lower case).
const DOMAINS: &[&str] = &["m2msp.org", "other.org"];
/// CSE-IDs without the leading `/`.
const CSES: &[&str] = &["myCSE", "cse2"];
/// Registrar-assigned AE-ID stems, and a CSE-relative ID with a `/`
/// (Decision 2 reads `Cab/x` as `//sp/hosting-cse/Cab/x` like any other).
const C_AES: &[&str] = &["C1", "C2", "Cab", "Cab/x"];
/// SP-assigned AE-ID stems.
const S_AES: &[&str] = &["S1", "SmyAE"];
/// SP domain `acor` entries (no wildcard, Decision 1).
const SP_DOMAIN_ENTRIES: &[&str] = &["//m2msp.org", "//M2MSP.org", "//other.org", "//Other.ORG"];
/// Role-IDs.
pub const ROLES: &[&str] = &[
    "guest@roles.example.com",
    "admin@roles.example.com",
    "op@other.example.com",
];
/// `<group>` resource IDs as written in `acor`, in every form (TS-0001 7.2):
/// CSE-relative, SP-relative, absolute with the domain in any case. Which
/// group a relative one names depends on the hosting CSE (Decision 2).
/// One looks like an AE stem, one like an `S` AE-ID stem.
///
/// `C*` is a pattern, never a group ("Wildcard characters are not applicable
/// to ... resource-IDs of `<group>` resources", TS-0003 7.1.3), although the
/// source has a group of that ID.
pub const GROUPS: &[&str] = &[
    "grp1",
    "/myCSE/grp2",
    "//m2msp.org/cse2/grp3",
    "C2",
    "C*",
    "//M2MSP.org/myCSE/grp1",
    "/cse2/grp1",
    "grp3",
    "Sgrp",
];

/// The `<group>`s an attribute source knows, by absolute resource ID: the
/// same relative ID on several CSEs and SPs, so that reading an entry against
/// the wrong CSE or SP shows.
pub const GROUP_IDS: &[&str] = &[
    "//m2msp.org/myCSE/grp1",
    "//m2msp.org/myCSE/grp2",
    "//m2msp.org/cse2/grp3",
    "//m2msp.org/cse2/grp1",
    "//other.org/myCSE/grp1",
    "//m2msp.org/myCSE/C2",
    "//m2msp.org/myCSE/C*",
    "//m2msp.org/cse2/Sgrp",
    "//other.org/myCSE/Sgrp",
];

/// Originator IDs spelled like `<group>` resource IDs of [`GROUP_IDS`]
/// (for some hosting CSE), so that an `acor` entry the source knows as a
/// group is often written like the originator too, and mostly the group
/// does not list it (Decision 3). `Sgrp` is the AE-ID `//sp/Sgrp`, while
/// the entry `Sgrp` is the resource ID `//sp/cse/Sgrp`.
const GROUP_LIKE_ORIGINATORS: &[&str] = &[
    "grp1",
    "/myCSE/grp2",
    "//m2msp.org/cse2/grp3",
    "//M2MSP.org/myCSE/grp1",
    "/cse2/grp1",
    "grp3",
    "Sgrp",
];

const V4: &[&str] = &[
    "10.0.0.1",
    "10.0.1.5",
    "192.168.1.10",
    "172.16.5.4",
    "8.8.8.8",
];
const V4_NEAR: &[&str] = &["10.0.0.200", "10.9.9.9", "192.168.2.1", "172.16.200.1"];
// With IPv4-mapped addresses: as entries they give both mapped ranges
// (prefix 112, 128) and plain IPv6 ranges that cover the mapped block (8-64).
const V6: &[&str] = &[
    "fd00::1",
    "fd00::1:5",
    "2001:db8::5",
    "2001:db8:1::9",
    "::ffff:10.0.0.1",
    "::ffff:192.168.1.10",
];
const V6_NEAR: &[&str] = &[
    "fd00::ffff",
    "fd12::1",
    "2001:db8:2::1",
    "2001:db9::1",
    "::ffff:10.0.0.200",
];
const V4_PREFIXES: &[u8] = &[8, 16, 24, 32];
const V6_PREFIXES: &[u8] = &[8, 16, 32, 48, 64, 112, 128];

/// Paris, Berlin, Seoul, New York as (lat, lon).
const PLACES: &[(f64, f64)] = &[
    (48.8566, 2.3522),
    (52.52, 13.405),
    (37.5665, 126.978),
    (40.7128, -74.006),
];
const COUNTRIES: &[&str] = &["FR", "DE", "KR", "US"];
const RADII_M: &[f64] = &[
    500.0,
    5_000.0,
    50_000.0,
    200_000.0,
    1_000_000.0,
    2_000_000.0,
];
/// Offsets on a log scale (1 degree of latitude is about 111 km) so that
/// distances land on either side of every radius, with or without uncertainty.
const OFFSETS_DEG: &[f64] = &[
    0.0, 0.0005, 0.002, 0.005, 0.02, 0.05, 0.2, 0.5, 2.0, 5.0, 10.0,
];
const UNCERTAINTIES_M: &[f64] = &[
    0.0, 0.0, 0.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 500_000.0,
];

/// Resource types used for target types, `ty` and `chty`.
const TARGET_TYPES: &[u32] = &[2, 3, 5, 13, 28];
const CHILD_TYPES: &[u32] = &[2, 3, 4, 13, 23, 28];
const MGDS: &[u32] = &[1001, 1007];
const CNDS: &[&str] = &["org.onem2m.home.lock", "org.onem2m.home.light"];

/// Values of each crontab field that both windows and request times favour.
const SECS: &[u32] = &[0, 15, 30, 59];
const MINS: &[u32] = &[0, 5, 30, 59];
const HOURS: &[u32] = &[0, 8, 12, 17, 23];
const DOMS: &[u32] = &[1, 10, 15, 28, 31];
const MONS: &[u32] = &[1, 2, 6, 12];
const DOWS: &[u32] = &[0, 1, 3, 6];
const YEARS: &[u32] = &[2000, 2024, 2025, 2050, 2100];

// ---------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------

/// A CSE (`cse` set, `ae` unset), an AE under a CSE (`C...`) or an SP-level
/// AE (`S...`, no CSE) of an SP domain.
#[derive(Debug, Clone, Copy)]
struct Ident {
    domain: &'static str,
    cse: Option<&'static str>,
    ae: Option<&'static str>,
}

impl Ident {
    /// The absolute ID (canonical: lower-case domain).
    fn absolute(&self) -> String {
        let mut id = format!("//{}", self.domain);
        for seg in self.cse.iter().chain(&self.ae) {
            id.push('/');
            id.push_str(seg);
        }
        id
    }
}

fn ident() -> BoxedStrategy<Ident> {
    prop_oneof![
        1 => (select(DOMAINS), select(CSES)).prop_map(|(domain, cse)| Ident {
            domain,
            cse: Some(cse),
            ae: None
        }),
        3 => (select(DOMAINS), select(CSES), select(C_AES)).prop_map(|(domain, cse, ae)| Ident {
            domain,
            cse: Some(cse),
            ae: Some(ae)
        }),
        1 => (select(DOMAINS), select(S_AES)).prop_map(|(domain, ae)| Ident {
            domain,
            cse: None,
            ae: Some(ae)
        }),
    ]
    .boxed()
}

/// How an ID is written (TS-0001 7.2). Rendering may change which entity is
/// meant (an SP-relative form always means the *hosting* SP); that is fine,
/// the result is still in the vocabulary.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// `//domain/...` with the domain lower case, upper case, or capitalised.
    Absolute(u8),
    /// `/cse/...` or `/S...`.
    SpRelative,
    /// `C...` or `S...` alone (falls back to SP-relative for a CSE).
    Stem,
}

fn form() -> BoxedStrategy<Form> {
    prop_oneof![
        3 => (0u8..3).prop_map(Form::Absolute),
        2 => Just(Form::SpRelative),
        3 => Just(Form::Stem),
    ]
    .boxed()
}

/// The ID as a prefix (`//`, `/` or empty) and its `/`-separated segments.
fn render(id: Ident, form: Form) -> (&'static str, Vec<String>) {
    let tail: Vec<String> = id
        .cse
        .iter()
        .chain(&id.ae)
        .map(|s| (*s).to_owned())
        .collect();
    match form {
        Form::Absolute(case) => {
            let domain = match case {
                0 => id.domain.to_owned(),
                1 => id.domain.to_ascii_uppercase(),
                _ => {
                    let mut d = id.domain.to_owned();
                    d[..1].make_ascii_uppercase();
                    d
                }
            };
            let mut segs = vec![domain];
            segs.extend(tail);
            ("//", segs)
        }
        Form::Stem if id.ae.is_some() => ("", vec![id.ae.unwrap_or_default().to_owned()]),
        Form::SpRelative | Form::Stem => ("/", tail),
    }
}

fn join(prefix: &str, segs: &[String]) -> String {
    format!("{prefix}{}", segs.join("/"))
}

/// An originator ID in any form, without wildcard.
fn originator_id() -> BoxedStrategy<String> {
    (ident(), form())
        .prop_map(|(id, f)| {
            let (prefix, segs) = render(id, f);
            join(prefix, &segs)
        })
        .boxed()
}

/// A wildcard version of one segment; `kind` picks the shape.
fn glob_segment_variant(seg: &str, kind: u8) -> String {
    let first = &seg[..1];
    let last = &seg[seg.len() - 1..];
    match kind % 6 {
        0 => "*".to_owned(),
        1 => format!("{first}*"),
        2 => format!("*{last}"),
        3 => format!("{first}*{last}"),
        4 => format!("{seg}*"),
        _ => "X*".to_owned(), // matches nothing in the vocabulary
    }
}

/// An ID with at least one `*` (TS-0003 table 7.1.3-2 shapes).
fn pattern_id() -> BoxedStrategy<String> {
    (
        ident(),
        form(),
        vec(proptest::option::weighted(0.4, 0u8..6), 3),
    )
        .prop_map(|(id, f, kinds)| {
            let (prefix, mut segs) = render(id, f);
            let mut any = false;
            for (seg, kind) in segs.iter_mut().zip(&kinds) {
                if let Some(kind) = kind {
                    *seg = glob_segment_variant(seg, *kind);
                    any = true;
                }
            }
            if !any {
                let last = segs.len() - 1;
                segs[last] = glob_segment_variant(&segs[last], kinds.len() as u8);
            }
            join(prefix, &segs)
        })
        .boxed()
}

/// One `accessControlOriginators` entry.
fn acor_entry() -> BoxedStrategy<String> {
    prop_oneof![
        1 => Just("all".to_owned()),
        8 => originator_id(),
        4 => pattern_id(),
        2 => select(SP_DOMAIN_ENTRIES).prop_map(str::to_owned),
        3 => select(ROLES).prop_map(str::to_owned),
        3 => select(GROUPS).prop_map(str::to_owned),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Crontab
// ---------------------------------------------------------------------------

/// A value of a field: mostly one of the favoured ones, else any in range.
fn field_value(min: u32, max: u32, favoured: &'static [u32]) -> BoxedStrategy<u32> {
    prop_oneof![3 => select(favoured), 1 => min..=max].boxed()
}

/// One non-`*` list item: `a`, `a-b` or `a-b/n`.
fn crontab_item(min: u32, max: u32, favoured: &'static [u32]) -> BoxedStrategy<String> {
    let v = move || field_value(min, max, favoured);
    prop_oneof![
        3 => v().prop_map(|a| a.to_string()),
        2 => (v(), v()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        1 => (v(), v(), 1u32..=5).prop_map(|(a, b, n)| format!("{}-{}/{n}", a.min(b), a.max(b))),
    ]
    .boxed()
}

/// One crontab field (TS-0004 7.4.9.1; Decision 4).
fn crontab_field(min: u32, max: u32, favoured: &'static [u32]) -> BoxedStrategy<String> {
    prop_oneof![
        10 => Just("*".to_owned()),
        2 => (1u32..=4).prop_map(|n| format!("*/{n}")),
        6 => crontab_item(min, max, favoured),
        2 => vec(crontab_item(min, max, favoured), 2..=3).prop_map(|items| items.join(",")),
    ]
    .boxed()
}

/// An extended-crontab window: `sec min hour dom mon dow year`.
pub fn crontab() -> BoxedStrategy<String> {
    // Years: keep to 2000-2100 and a few ranges; `9999` now and then.
    let year = prop_oneof![
        6 => Just("*".to_owned()),
        2 => select(YEARS).prop_map(|y| y.to_string()),
        2 => (2000u32..=2100, 0u32..=60).prop_map(|(a, d)| format!("{a}-{}", (a + d).min(9999))),
        1 => Just("2000-9999".to_owned()),
        1 => (1u32..=3).prop_map(|n| format!("*/{n}")),
    ];
    (
        crontab_field(0, 59, SECS),
        crontab_field(0, 59, MINS),
        crontab_field(0, 23, HOURS),
        crontab_field(1, 31, DOMS),
        crontab_field(1, 12, MONS),
        crontab_field(0, 6, DOWS),
        year,
    )
        .prop_map(|(s, mi, h, d, mo, w, y)| format!("{s} {mi} {h} {d} {mo} {w} {y}"))
        .boxed()
}

/// A request time in 2000-2100, biased toward favoured field values.
fn request_time() -> BoxedStrategy<DateTime<Utc>> {
    (
        field_value(2000, 2100, YEARS),
        field_value(1, 12, MONS),
        field_value(1, 31, DOMS),
        field_value(0, 23, HOURS),
        field_value(0, 59, MINS),
        field_value(0, 59, SECS),
    )
        .prop_map(|(y, mo, d, h, mi, s)| {
            let date = NaiveDate::from_ymd_opt(y as i32, mo, d)
                .or_else(|| NaiveDate::from_ymd_opt(y as i32, mo, 28))
                .expect("day 28 exists in every month");
            date.and_hms_opt(h, mi, s)
                .expect("valid time of day")
                .and_utc()
        })
        .boxed()
}

// ---------------------------------------------------------------------------
// IP addresses and locations
// ---------------------------------------------------------------------------

fn cidr(addrs: &'static [&'static str], prefixes: &'static [u8]) -> BoxedStrategy<String> {
    prop_oneof![
        4 => (select(addrs), select(prefixes)).prop_map(|(a, p)| {
            let addr: IpAddr = a.parse().expect("vocabulary address");
            IpNet::new(addr, p).expect("valid prefix").trunc().to_string()
        }),
        1 => select(addrs).prop_map(str::to_owned),
    ]
    .boxed()
}

fn ip_addresses() -> BoxedStrategy<IpAddresses> {
    prop_oneof![
        8 => (vec(cidr(V4, V4_PREFIXES), 0..=2), vec(cidr(V6, V6_PREFIXES), 0..=2))
            .prop_map(|(ipv4, ipv6)| IpAddresses { ipv4, ipv6 }),
        1 => Just(IpAddresses::default()),
    ]
    .boxed()
}

fn request_ip() -> BoxedStrategy<Option<IpAddr>> {
    prop_oneof![
        1 => Just(None),
        2 => select(V4).prop_map(|a| Some(a.parse().expect("vocabulary address"))),
        1 => select(V4_NEAR).prop_map(|a| Some(a.parse().expect("vocabulary address"))),
        2 => select(V6).prop_map(|a| Some(a.parse().expect("vocabulary address"))),
        1 => select(V6_NEAR).prop_map(|a| Some(a.parse().expect("vocabulary address"))),
    ]
    .boxed()
}

/// A position near one of the places.
fn position() -> BoxedStrategy<Position> {
    (
        select(PLACES),
        select(OFFSETS_DEG),
        select(OFFSETS_DEG),
        any::<(bool, bool)>(),
        select(UNCERTAINTIES_M),
    )
        .prop_map(
            |((lat, lon), dlat, dlon, (nlat, nlon), uncertainty_m)| Position {
                lat: lat + if nlat { -dlat } else { dlat },
                lon: lon + if nlon { -dlon } else { dlon },
                uncertainty_m,
            },
        )
        .boxed()
}

fn country_code() -> BoxedStrategy<String> {
    (select(COUNTRIES), any::<bool>())
        .prop_map(|(c, lower)| {
            if lower {
                c.to_ascii_lowercase()
            } else {
                c.to_owned()
            }
        })
        .boxed()
}

fn location_region() -> BoxedStrategy<LocationRegion> {
    prop_oneof![
        (select(PLACES), select(OFFSETS_DEG), select(RADII_M)).prop_map(|((lat, lon), d, r)| {
            LocationRegion {
                country_codes: None,
                circle: Some(vec![lat + d / 10.0, lon, r]),
            }
        }),
        vec(country_code(), 1..=3).prop_map(|codes| LocationRegion {
            country_codes: Some(codes),
            circle: None,
        }),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------

fn context() -> BoxedStrategy<AccessControlContext> {
    (
        proptest::option::weighted(0.45, vec(crontab(), 1..=2)),
        proptest::option::weighted(0.3, ip_addresses()),
        proptest::option::weighted(0.3, location_region()),
    )
        .prop_map(|(actw, acip, aclr)| AccessControlContext {
            time_windows: actw.unwrap_or_default(),
            ip_addresses: acip,
            location_region: aclr,
        })
        .boxed()
}

fn specialization() -> BoxedStrategy<Specialization> {
    prop_oneof![
        select(MGDS).prop_map(Specialization::MgmtDefinition),
        select(CNDS).prop_map(|c| Specialization::ContainerDefinition(c.to_owned())),
    ]
    .boxed()
}

/// One `acod` element; `spty` is present when `ty` is 13 (`mgd`) or 28 (`cnd`).
fn object_details() -> BoxedStrategy<ObjectDetails> {
    let chty = vec(select(CHILD_TYPES), 1..=3);
    prop_oneof![
        // No ty: maybe a spty of either kind.
        (
            proptest::option::weighted(0.3, specialization()),
            chty.clone()
        )
            .prop_map(|(spty, chty)| ObjectDetails {
                resource_type: None,
                specialization: spty,
                child_resource_types: Some(chty),
            }),
        (select(&[2u32, 3, 5][..]), chty.clone()).prop_map(|(ty, chty)| ObjectDetails {
            resource_type: Some(ty),
            specialization: None,
            child_resource_types: Some(chty),
        }),
        (select(MGDS), chty.clone()).prop_map(|(mgd, chty)| ObjectDetails {
            resource_type: Some(13),
            specialization: Some(Specialization::MgmtDefinition(mgd)),
            child_resource_types: Some(chty),
        }),
        (select(CNDS), chty).prop_map(|(cnd, chty)| ObjectDetails {
            resource_type: Some(28),
            specialization: Some(Specialization::ContainerDefinition(cnd.to_owned())),
            child_resource_types: Some(chty),
        }),
    ]
    .boxed()
}

fn rule() -> BoxedStrategy<AccessControlRule> {
    (
        vec(acor_entry(), 1..=4),
        0u32..=63,
        prop_oneof![2 => Just(Vec::new()), 3 => vec(context(), 1..=3)],
        prop_oneof![Just(None), Just(Some(false)), Just(Some(true))],
        prop_oneof![3 => Just(Vec::new()), 1 => vec(object_details(), 1..=2)],
    )
        .prop_map(|(acor, acop, acco, acaf, acod)| AccessControlRule {
            originators: acor,
            operations: acop,
            contexts: acco,
            authentication_flag: acaf,
            object_details: acod,
        })
        .boxed()
}

fn set_of_acrs() -> BoxedStrategy<SetOfAcrs> {
    vec(rule(), 1..=8)
        .prop_map(|rules| SetOfAcrs { rules })
        .boxed()
}

/// A valid `<accessControlPolicy>` with 1-8 rules in both `pv` and `pvs`.
pub fn acp() -> BoxedStrategy<AccessControlPolicy> {
    (set_of_acrs(), set_of_acrs())
        .prop_map(|(pv, pvs)| AccessControlPolicy {
            privileges: Some(pv),
            self_privileges: Some(pvs),
            ..AccessControlPolicy::default()
        })
        .boxed()
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

fn operation() -> BoxedStrategy<Operation> {
    prop_oneof![
        2 => Just(Operation::Create),
        2 => Just(Operation::Retrieve),
        1 => Just(Operation::Update),
        1 => Just(Operation::Delete),
        1 => Just(Operation::Notify),
    ]
    .boxed()
}

/// A decision request over the vocabulary.
pub fn request() -> BoxedStrategy<DecisionRequest> {
    (
        (
            prop_oneof![
                9 => originator_id(),
                1 => select(GROUP_LIKE_ORIGINATORS).prop_map(str::to_owned),
            ],
            subsequence(ROLES, 0..=2),
            operation(),
            any::<bool>(),
        ),
        (
            proptest::option::weighted(0.85, select(TARGET_TYPES)),
            proptest::option::weighted(0.9, select(CHILD_TYPES)),
            proptest::option::weighted(0.5, specialization()),
        ),
        request_time(),
        request_ip(),
        proptest::option::weighted(0.5, position()),
        prop_oneof![2 => Just(Vec::new()), 1 => vec(country_code(), 1..=2)],
        any::<bool>(),
    )
        .prop_map(
            |(
                (originator, roles, operation, discovery),
                (target_type, resource_type, specialization),
                time,
                ip,
                position,
                countries,
                authenticated,
            )| {
                let mut req = DecisionRequest::new(originator, operation, "/myCSE/cnt1", time);
                req.role_ids = roles.into_iter().map(str::to_owned).collect();
                req.discovery = discovery && operation == Operation::Retrieve;
                req.target_type = target_type;
                req.resource_type = resource_type;
                req.specialization = specialization;
                req.ip = ip;
                req.position = position;
                req.countries = countries;
                req.authenticated = authenticated;
                req
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------

/// Extra attributes about the request's own originator, applied once its
/// canonical ID is known (so that verified roles, group membership and
/// positions hit the originator often).
#[derive(Debug, Clone)]
struct OriginatorBias {
    role: Option<usize>,
    group: Option<usize>,
    position: Option<Position>,
}

fn attributes() -> BoxedStrategy<InMemoryAttributes> {
    let any_ident_abs = ident().prop_map(|i| i.absolute());
    (
        prop_oneof![9 => Just(false), 1 => Just(true)],
        vec((any_ident_abs.clone(), select(ROLES)), 0..=4),
        vec(vec(any_ident_abs.clone(), 0..=4), GROUP_IDS.len()),
        vec((any_ident_abs, position()), 0..=3),
        subsequence((0..4).collect::<Vec<usize>>(), 0..=4),
        subsequence((0..5).collect::<Vec<usize>>(), 0..=5),
        prop_oneof![19 => Just(None), 1 => Just(Some("PIP unreachable".to_owned()))],
    )
        .prop_map(
            |(trust, roles, groups, positions, country_circles, ip_countries, unavailable)| {
                let mut a = InMemoryAttributes::new();
                a.trust_claimed_roles = trust;
                for (id, role) in roles {
                    a.roles.insert((id, role.to_owned()));
                }
                for (group, members) in GROUP_IDS.iter().zip(groups) {
                    a.groups.insert(
                        (*group).to_owned(),
                        members.into_iter().collect::<HashSet<_>>(),
                    );
                }
                for (id, p) in positions {
                    a.positions.insert(id, p);
                }
                let circles = [
                    (PLACES[0], 500_000.0, "FR"),
                    (PLACES[1], 300_000.0, "DE"),
                    (PLACES[2], 300_000.0, "KR"),
                    (PLACES[3], 1_000_000.0, "US"),
                ];
                for i in country_circles {
                    let ((lat, lon), r, cc) = circles[i];
                    a = a.with_country_circle(
                        Position {
                            lat,
                            lon,
                            uncertainty_m: 0.0,
                        },
                        r,
                        cc,
                    );
                }
                let nets = [
                    ("10.0.0.0/16", "FR"),
                    ("10.0.0.0/8", "DE"),
                    ("192.168.0.0/16", "KR"),
                    ("fd00::/8", "DE"),
                    ("2001:db8::/32", "US"),
                ];
                for i in ip_countries {
                    let (net, cc) = nets[i];
                    a = a.with_ip_country(net.parse().expect("vocabulary net"), cc);
                }
                a.unavailable = unavailable;
                a
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------
// Whole cases
// ---------------------------------------------------------------------------

/// One differential test case.
#[derive(Debug, Clone)]
pub struct Case {
    /// The hosting CSE as configured: (SP-ID, CSE-ID).
    pub hosting: (&'static str, &'static str),
    /// The ACPs with their IDs.
    pub acps: Vec<(String, AccessControlPolicy)>,
    /// The applicable set: index into `acps` and which privileges apply.
    pub applicable: Vec<(usize, PrivilegeKind)>,
    /// The request.
    pub request: DecisionRequest,
    /// The attribute source.
    pub attrs: InMemoryAttributes,
    /// Roles granted by other means (tokens).
    pub granted_roles: Vec<String>,
}

impl Case {
    /// The hosting context.
    pub fn ctx(&self) -> HostingContext {
        HostingContext::new(self.hosting.0, self.hosting.1).expect("vocabulary hosting context")
    }

    /// The applicable set in the reference evaluator's shape.
    pub fn reference_acps(&self) -> Vec<(&str, &AccessControlPolicy, PrivilegeKind)> {
        self.applicable
            .iter()
            .map(|&(i, kind)| (self.acps[i].0.as_str(), &self.acps[i].1, kind))
            .collect()
    }
}

/// How the applicable set is built from the ACPs.
#[derive(Debug, Clone, Copy)]
enum Selection {
    /// `pv` of every ACP (a request on an ordinary resource).
    AllPrivileges,
    /// `pvs` of one ACP (a request on that ACP).
    OneSelf(usize),
    /// A random mix of `pv` and `pvs` per ACP.
    Mixed,
    /// No applicable policy.
    Empty,
}

/// A whole case: hosting context, 1-3 ACPs, applicable set, request,
/// attributes and granted roles.
pub fn case() -> BoxedStrategy<Case> {
    let selection = prop_oneof![
        8 => Just(Selection::AllPrivileges),
        6 => (0usize..3).prop_map(Selection::OneSelf),
        5 => Just(Selection::Mixed),
        1 => Just(Selection::Empty),
    ];
    let bias = (
        proptest::option::weighted(0.5, 0..ROLES.len()),
        proptest::option::weighted(0.4, 0..GROUP_IDS.len()),
        proptest::option::weighted(0.4, position()),
    )
        .prop_map(|(role, group, position)| OriginatorBias {
            role,
            group,
            position,
        });
    (
        select(HOSTING),
        vec(acp(), 1..=3),
        selection,
        vec(any::<bool>(), 3),
        request(),
        attributes(),
        bias,
        prop_oneof![4 => Just(Vec::new()), 1 => select(ROLES).prop_map(|r| vec![r.to_owned()])],
    )
        .prop_map(
            |(hosting, acps, selection, self_kinds, request, mut attrs, bias, granted_roles)| {
                let acps: Vec<(String, AccessControlPolicy)> = acps
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut acp)| {
                        let id = format!("acp{}", i + 1);
                        acp.resource_id = Some(id.clone());
                        (id, acp)
                    })
                    .collect();
                let applicable = match selection {
                    Selection::AllPrivileges => (0..acps.len())
                        .map(|i| (i, PrivilegeKind::Privileges))
                        .collect(),
                    Selection::OneSelf(i) => vec![(i % acps.len(), PrivilegeKind::SelfPrivileges)],
                    Selection::Mixed => (0..acps.len())
                        .map(|i| {
                            let kind = if self_kinds[i] {
                                PrivilegeKind::SelfPrivileges
                            } else {
                                PrivilegeKind::Privileges
                            };
                            (i, kind)
                        })
                        .collect(),
                    Selection::Empty => Vec::new(),
                };
                let ctx =
                    HostingContext::new(hosting.0, hosting.1).expect("vocabulary hosting context");
                let originator = canonicalize(&request.originator, &ctx);
                if let Some(r) = bias.role {
                    // Verify a role: one the request claims when it claims any.
                    let role = request
                        .role_ids
                        .get(r % request.role_ids.len().max(1))
                        .cloned()
                        .unwrap_or_else(|| ROLES[r].to_owned());
                    attrs.roles.insert((originator.clone(), role));
                }
                if let Some(g) = bias.group {
                    attrs
                        .groups
                        .entry(GROUP_IDS[g].to_owned())
                        .or_default()
                        .insert(originator.clone());
                }
                if let Some(p) = bias.position {
                    attrs.positions.insert(originator, p);
                }
                Case {
                    hosting,
                    acps,
                    applicable,
                    request,
                    attrs,
                    granted_roles,
                }
            },
        )
        .boxed()
}
