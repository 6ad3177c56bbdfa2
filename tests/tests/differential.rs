//! Differential test: the compiled engine (`authz_core::decide` over
//! `CompiledAcp`) must return the same effect as the naive reference
//! evaluator (`authz_tests::reference`) for every generated case
//! (TS-0003 7.1.4: "For any given sets of inputs, an implementation of the
//! access decision processing shall return the same result as the reference
//! access decision algorithm would return for those inputs").
//!
//! `PROPTEST_CASES` overrides the number of cases (default 100 000).
//!
//! The other tests check the reference itself against examples taken from
//! the spec text; they do not need the compiled engine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use authz_core::CompiledAcp;
use authz_core::attributes::{AttributeSource, InMemoryAttributes, NoAttributes};
use authz_core::decision::{Effect, PrivilegeKind};
use authz_core::eval::{Applicable, DecideOptions, decide};
use authz_core::ids::HostingContext;
use authz_core::model::{
    AccessControlContext, AccessControlPolicy, AccessControlRule, IpAddresses, LocationRegion,
    ObjectDetails, SetOfAcrs, Specialization,
};
use authz_core::request::{DecisionRequest, Operation, Position};
use authz_tests::generators::{Case, case};
use authz_tests::reference::{reference_decide, reference_partials};
use chrono::{DateTime, TimeZone, Utc};
use proptest::prop_assert;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn configured_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// Everything needed to reproduce a case, for a failure message.
fn describe(c: &Case) -> String {
    let acps: Vec<serde_json::Value> = c
        .acps
        .iter()
        .map(|(id, acp)| serde_json::json!({ "id": id, "m2m:acp": acp }))
        .collect();
    format!(
        "hosting: {:?}\napplicable: {:?}\npolicies:\n{}\nrequest: {:#?}\ngranted_roles: {:?}\nattributes: {:#?}",
        c.hosting,
        c.applicable,
        serde_json::to_string_pretty(&acps).unwrap_or_default(),
        c.request,
        c.granted_roles,
        c.attrs,
    )
}

/// Runs one case through both evaluators.
fn check(c: &Case) -> Result<Effect, TestCaseError> {
    let ctx = c.ctx();
    let mut compiled = Vec::with_capacity(c.acps.len());
    for (id, acp) in &c.acps {
        match CompiledAcp::compile(id.as_str(), acp) {
            Ok(acp) => compiled.push(acp),
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "engine rejected a valid generated policy {id}: {:?}\n{}",
                    e.0,
                    describe(c)
                )));
            }
        }
    }
    let applicable: Vec<Applicable<'_>> = c
        .applicable
        .iter()
        .map(|&(i, kind)| Applicable {
            acp: &compiled[i],
            kind,
        })
        .collect();
    let options = DecideOptions {
        explain: false,
        granted_roles: &c.granted_roles,
    };
    let engine = decide(&c.request, &ctx, &applicable, &c.attrs, &options);
    let expected = reference_decide(
        &c.reference_acps(),
        &c.request,
        &ctx,
        &c.attrs,
        &c.granted_roles,
    );
    if engine.effect != expected {
        let explained = decide(
            &c.request,
            &ctx,
            &applicable,
            &c.attrs,
            &DecideOptions {
                explain: true,
                ..options
            },
        );
        return Err(TestCaseError::fail(format!(
            "engine said {:?}, reference said {expected:?}\nengine decision: {}\n{}",
            engine.effect,
            serde_json::to_string_pretty(&explained).unwrap_or_default(),
            describe(c)
        )));
    }
    Ok(expected)
}

#[test]
fn compiled_engine_agrees_with_reference() {
    let cases = configured_cases();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let permits = AtomicU64::new(0);
    let denies = AtomicU64::new(0);
    let started = Instant::now();
    let result = runner.run(&case(), |c| {
        match check(&c)? {
            Effect::Permit => permits.fetch_add(1, Ordering::Relaxed),
            Effect::Deny => denies.fetch_add(1, Ordering::Relaxed),
        };
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (permits, denies) = (permits.into_inner(), denies.into_inner());
    let total = (permits + denies).max(1);
    let permit_share = permits as f64 / total as f64;
    eprintln!(
        "differential: {total} cases in {:.1?}: {permits} Permit ({:.1}%), {denies} Deny ({:.1}%)",
        started.elapsed(),
        100.0 * permit_share,
        100.0 * (1.0 - permit_share),
    );
    if total >= 1_000 {
        assert!(
            (0.2..=0.8).contains(&permit_share),
            "the generated cases are too one-sided to be meaningful: {:.1}% Permit",
            100.0 * permit_share
        );
    }
}

/// The generated cases exercise the interesting parts of the reference
/// (checked without the engine): between 20 % and 80 % are Permit, and
/// each condition of 7.1.5 (res_authn, res_origs, res_ops, res_ctxts,
/// res_objd, and inside res_ctxts res_time, res_ip, res_loc) decides some
/// Deny: in some case a rule fails on that condition alone, so the engine
/// would have to get that condition right to agree with the reference.
#[test]
fn generated_cases_are_balanced() {
    const NAMES: [&str; 8] = [
        "authn", "origs", "ops", "ctxts", "objd", "time", "ip", "loc",
    ];
    let mut runner = TestRunner::new(Config {
        cases: 5_000,
        failure_persistence: None,
        ..Config::default()
    });
    let permits = AtomicU64::new(0);
    let total = AtomicU64::new(0);
    let decided_by: [AtomicU64; 8] = Default::default();
    runner
        .run(&case(), |c| {
            let ctx = c.ctx();
            total.fetch_add(1, Ordering::Relaxed);
            let (acps, attrs) = (c.reference_acps(), &c.attrs);
            if reference_decide(&acps, &c.request, &ctx, attrs, &c.granted_roles) == Effect::Permit
            {
                permits.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let mut decided = [false; 8];
            for p in reference_partials(&acps, &c.request, &ctx, attrs, &c.granted_roles) {
                let failed: Vec<usize> = (0..5).filter(|&i| !p.rule[i]).collect();
                // A Deny: every rule fails at least one condition.
                prop_assert!(!failed.is_empty(), "a rule holds in a Deny: {:?}", p);
                if let [only] = failed[..] {
                    decided[only] = true;
                    if only == 3 {
                        // res_ctxts: an element failing on one part alone.
                        for parts in &p.contexts {
                            if let [part] = (0..3).filter(|&j| !parts[j]).collect::<Vec<_>>()[..] {
                                decided[5 + part] = true;
                            }
                        }
                    }
                }
            }
            for (n, d) in decided_by.iter().zip(decided) {
                n.fetch_add(u64::from(d), Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
    let share = permits.into_inner() as f64 / total.into_inner() as f64;
    let decided_by = decided_by.map(AtomicU64::into_inner);
    eprintln!(
        "reference alone: {:.1}% Permit; Denies decided by one condition: {:?}",
        100.0 * share,
        NAMES.iter().zip(decided_by).collect::<Vec<_>>()
    );
    assert!((0.2..=0.8).contains(&share), "{:.1}% Permit", 100.0 * share);
    for (name, n) in NAMES.iter().zip(decided_by) {
        assert!(n > 0, "no generated Deny is decided by res_{name} alone");
    }
}

// ---------------------------------------------------------------------------
// Hand-written checks of the reference against the spec
// ---------------------------------------------------------------------------

fn ctx() -> HostingContext {
    HostingContext::new("//m2msp.org", "/myCSEID").unwrap()
}

fn at() -> DateTime<Utc> {
    // A Tuesday.
    Utc.with_ymd_and_hms(2024, 3, 5, 10, 3, 17).unwrap()
}

fn rule(acor: &[&str], acop: u32) -> AccessControlRule {
    AccessControlRule {
        originators: acor.iter().map(|s| (*s).to_owned()).collect(),
        operations: acop,
        ..AccessControlRule::default()
    }
}

fn policy(rules: Vec<AccessControlRule>) -> AccessControlPolicy {
    AccessControlPolicy {
        privileges: Some(SetOfAcrs { rules }),
        self_privileges: Some(SetOfAcrs {
            rules: vec![rule(&["Cowner"], 63)],
        }),
        ..AccessControlPolicy::default()
    }
}

fn request(originator: &str, op: Operation) -> DecisionRequest {
    DecisionRequest::new(originator, op, "/myCSEID/cnt1", at())
}

fn decide_ref(
    acp: &AccessControlPolicy,
    req: &DecisionRequest,
    attrs: &dyn AttributeSource,
) -> Effect {
    reference_decide(
        &[("acp1", acp, PrivilegeKind::Privileges)],
        req,
        &ctx(),
        attrs,
        &[],
    )
}

fn permits(acp: &AccessControlPolicy, req: &DecisionRequest) -> bool {
    decide_ref(acp, req, &NoAttributes) == Effect::Permit
}

/// TS-0003 table 7.1.5-1, every row, plus "If the
/// accessControlAuthenticationFlag parameter is not present, then the value
/// is assumed to be FALSE" (7.1.3).
#[test]
fn reference_res_authn_table_7_1_5_1() {
    let rows = [
        (Some(true), true, true),
        (Some(true), false, false),
        (Some(false), true, true),
        (Some(false), false, true),
        (None, true, true),
        (None, false, true),
    ];
    for (acaf, rq_authn, expected) in rows {
        let mut r = rule(&["C1"], 2);
        r.authentication_flag = acaf;
        let mut req = request("C1", Operation::Retrieve);
        req.authenticated = rq_authn;
        assert_eq!(
            permits(&policy(vec![r]), &req),
            expected,
            "acaf {acaf:?} rq_authn {rq_authn}"
        );
    }
}

/// TS-0003 table 7.1.3-2 (wildcard examples), with the hosting CSE
/// `//m2msp.org/myCSEID`; "The scope of a "*" is terminated by a following
/// "/" character".
#[test]
fn reference_wildcards_table_7_1_3_2() {
    let cases: &[(&str, &str, bool)] = &[
        // CSE-ID, absolute.
        ("//m2msp.org/myCSEID", "//m2msp.org/myCSEID", true),
        ("//m2msp.org/myCSEID", "/myCSEID", true),
        ("//m2msp.org/myCSEID", "//other.org/myCSEID", false),
        ("//*/myCSEID", "//other.org/myCSEID", true),
        ("//*/myCSE*", "//other.org/myCSE42", true),
        ("//*/myCSE*", "//m2msp.org/myCSEID/C9886", false),
        // CSE-ID, SP-relative: "Any matching CSE from the SP that is hosting the target resource".
        ("/myCSEID", "/myCSEID", true),
        ("/myCSEID", "//M2MSP.ORG/myCSEID", true),
        ("/myCSEID", "//other.org/myCSEID", false),
        ("/myCSE*", "/myCSE7", true),
        ("/myCSE*", "/myCSEID/C9886", false),
        // AE-ID, absolute.
        ("//m2msp.org/S988", "S988", true),
        ("//m2msp.org/S988", "/S988", true),
        ("//m2msp.org/S988", "//other.org/S988", false),
        ("//*/myCSEID/C9886", "C9886", true),
        ("//*/myCSEID/C9886", "//other.org/myCSEID/C9886", true),
        ("//*/myCSE*/C9886", "/myCSE2/C9886", true),
        ("//*/myCSE*/C9886", "/myCSE2/C9887", false),
        // AE-ID, SP-relative.
        ("/myCSEID/C9886", "C9886", true),
        ("/myCSEID/C98*", "C9812", true),
        ("/myCSEID/C98*", "//other.org/myCSEID/C9812", false),
        ("/myCSE*/C98*", "/myCSEx/C98", true),
        ("/SmyAE*", "SmyAE1", true),
        ("/SmyAE*", "/SmyAE2", true),
        ("/SmyAE*", "/myCSEID/SmyAE2", false),
        // Stems are relative to the hosting CSE (C...) or SP (S...) (Decision 2).
        ("C9886", "/myCSEID/C9886", true),
        ("C9886", "/otherCSE/C9886", false),
        ("C98*", "C9886", true),
        // SP domain entries (Decision 1).
        ("//m2msp.org", "C1", true),
        ("//M2MSP.org", "//m2msp.org/anyCSE", true),
        ("//m2msp.org", "//other.org/myCSEID/C1", false),
        ("//other.org", "//Other.Org/S1", true),
        ("all", "//anywhere.net/x/Cy", true),
    ];
    for &(entry, originator, expected) in cases {
        let acp = policy(vec![rule(&[entry], 2)]);
        let req = request(originator, Operation::Retrieve);
        assert_eq!(
            permits(&acp, &req),
            expected,
            "acor {entry:?} vs From {originator:?}"
        );
    }
}

/// Role-IDs and groups (TS-0003 7.1.3; spec notes §2.4, §8; Decision 3).
#[test]
fn reference_roles_and_groups() {
    let acp = policy(vec![rule(&["guest@roles.example.com", "grp1"], 2)]);
    let attrs = InMemoryAttributes::new()
        .with_role("//m2msp.org/myCSEID/C1", "guest@roles.example.com")
        .with_group("//m2msp.org/myCSEID/grp1", ["//m2msp.org/S7"]);
    let mut req = request("C1", Operation::Retrieve);
    // Verified but not claimed.
    assert_eq!(decide_ref(&acp, &req, &attrs), Effect::Deny);
    req.role_ids = vec!["guest@roles.example.com".into()];
    assert_eq!(decide_ref(&acp, &req, &attrs), Effect::Permit);
    // Claimed but not verified for this originator.
    let mut other = req.clone();
    other.originator = "C2".into();
    assert_eq!(decide_ref(&acp, &other, &attrs), Effect::Deny);
    // Granted by a token.
    let granted = ["guest@roles.example.com".to_owned()];
    let ctx = ctx();
    let applicable = [("acp1", &acp, PrivilegeKind::Privileges)];
    assert_eq!(
        reference_decide(&applicable, &other, &ctx, &attrs, &granted),
        Effect::Permit
    );
    // Group member, in any ID form.
    assert_eq!(
        decide_ref(&acp, &request("S7", Operation::Retrieve), &attrs),
        Effect::Permit
    );
    assert_eq!(
        decide_ref(
            &acp,
            &request("//M2MSP.org/S7", Operation::Retrieve),
            &attrs
        ),
        Effect::Permit
    );
    assert_eq!(
        decide_ref(&acp, &request("S8", Operation::Retrieve), &attrs),
        Effect::Deny
    );
    // An unreachable PIP is indeterminate: Deny (7.1.4).
    let down = InMemoryAttributes {
        unavailable: Some("down".into()),
        ..attrs
    };
    assert_eq!(decide_ref(&acp, &req, &down), Effect::Deny);
}

/// A `<group>` resource ID in acor, in any form (TS-0001 7.2), names the
/// group with that absolute ID for the hosting CSE (Decision 2): the
/// CSE-relative `grp1` of another hosting CSE is another group
/// (TS-0001 9.6.2.1; TS-0003 7.1.3).
#[test]
fn reference_group_ids_are_read_against_the_hosting_cse() {
    let member = "//m2msp.org/myCSEID/C1";
    let attrs = InMemoryAttributes::new().with_group("//m2msp.org/myCSEID/grp1", [member]);
    let other_cse = HostingContext::new("//m2msp.org", "/otherCSE").unwrap();
    for (entry, ctx, expected) in [
        ("grp1", ctx(), Effect::Permit),
        ("/myCSEID/grp1", ctx(), Effect::Permit),
        ("//M2MSP.org/myCSEID/grp1", ctx(), Effect::Permit),
        ("grp1", other_cse.clone(), Effect::Deny),
        ("/myCSEID/grp1", other_cse.clone(), Effect::Permit),
        ("/otherCSE/grp1", ctx(), Effect::Deny),
        ("//m2msp.org/myCSEID/GRP1", ctx(), Effect::Deny),
    ] {
        let acp = policy(vec![rule(&[entry], 2)]);
        let applicable = [("acp1", &acp, PrivilegeKind::Privileges)];
        let req = request(member, Operation::Retrieve);
        assert_eq!(
            reference_decide(&applicable, &req, &ctx, &attrs, &[]),
            expected,
            "acor {entry} at {}",
            ctx.cse_id()
        );
    }
}

/// Decision 3: an `acor` entry the attribute source knows as a `<group>`
/// is a group only: the originator whose ID it is spelled like is not
/// named by it unless the group lists it. `Sgrp` as an entry is the
/// resource ID `//m2msp.org/myCSEID/Sgrp`, as an originator the AE-ID
/// `//m2msp.org/Sgrp`. A source that cannot answer leaves the entry
/// undetermined as an ID (7.1.4; Decision 10): no match, so Deny; one that
/// keeps no group IDs (`NotFound`) leaves it an ID.
#[test]
fn reference_decision_3_a_known_group_entry_is_no_originator_id() {
    let attrs = InMemoryAttributes::new()
        .with_group("//m2msp.org/myCSEID/grp1", ["//m2msp.org/myCSEID/C2"])
        .with_group("//m2msp.org/myCSEID/Sgrp", ["//m2msp.org/myCSEID/C2"]);
    for (entry, originator, expected) in [
        ("grp1", "grp1", Effect::Deny),
        ("/myCSEID/grp1", "//M2MSP.org/myCSEID/grp1", Effect::Deny),
        ("grp1", "C2", Effect::Permit),
        ("Sgrp", "Sgrp", Effect::Deny),
        ("/Sgrp", "Sgrp", Effect::Permit),
        ("Sgrp", "C2", Effect::Permit),
        ("grp2", "grp2", Effect::Permit),
    ] {
        let acp = policy(vec![rule(&[entry], 2)]);
        let req = request(originator, Operation::Retrieve);
        assert_eq!(
            decide_ref(&acp, &req, &attrs),
            expected,
            "acor {entry} vs From {originator}"
        );
    }
    let down = InMemoryAttributes {
        unavailable: Some("down".into()),
        ..attrs
    };
    let acp = policy(vec![rule(&["grp1"], 2)]);
    let req = request("grp1", Operation::Retrieve);
    assert_eq!(decide_ref(&acp, &req, &down), Effect::Deny);
    assert_eq!(decide_ref(&acp, &req, &NoAttributes), Effect::Permit);
}

/// acop bits and discovery (spec notes §1; TS-0003 7.1.3).
#[test]
fn reference_operations_and_discovery() {
    let ops = [
        (Operation::Create, 1),
        (Operation::Retrieve, 2),
        (Operation::Update, 4),
        (Operation::Delete, 8),
        (Operation::Notify, 16),
    ];
    for (op, bit) in ops {
        assert!(permits(
            &policy(vec![rule(&["C1"], bit)]),
            &request("C1", op)
        ));
        assert!(!permits(
            &policy(vec![rule(&["C1"], 63 & !bit)]),
            &request("C1", op)
        ));
    }
    let mut discovery = request("C1", Operation::Retrieve);
    discovery.discovery = true;
    assert!(permits(&policy(vec![rule(&["C1"], 32)]), &discovery));
    assert!(!permits(&policy(vec![rule(&["C1"], 2)]), &discovery));
    assert!(!permits(
        &policy(vec![rule(&["C1"], 32)]),
        &request("C1", Operation::Retrieve)
    ));
}

/// Permit-overrides over rules and ACPs, pv versus pvs (TS-0003 7.1.1, 7.1.5).
#[test]
fn reference_combining() {
    let deny_all = policy(vec![rule(&["C9"], 63)]);
    let permit = policy(vec![rule(&["C9"], 1), rule(&["C1"], 2)]);
    let req = request("C1", Operation::Retrieve);
    let ctx = ctx();
    let both = [
        ("a", &deny_all, PrivilegeKind::Privileges),
        ("b", &permit, PrivilegeKind::Privileges),
    ];
    assert_eq!(
        reference_decide(&both, &req, &ctx, &NoAttributes, &[]),
        Effect::Permit
    );
    let only_self = [("b", &permit, PrivilegeKind::SelfPrivileges)];
    assert_eq!(
        reference_decide(&only_self, &req, &ctx, &NoAttributes, &[]),
        Effect::Deny
    );
    let owner = request("Cowner", Operation::Delete);
    assert_eq!(
        reference_decide(&only_self, &owner, &ctx, &NoAttributes, &[]),
        Effect::Permit
    );
    assert_eq!(
        reference_decide(&[], &req, &ctx, &NoAttributes, &[]),
        Effect::Deny
    );
}

/// Contexts: elements ORed, parts ANDed, empty imposes nothing (TS-0003
/// 7.1.5; Decision 11).
#[test]
fn reference_contexts() {
    let with_contexts = |acco: Vec<AccessControlContext>| {
        let mut r = rule(&["C1"], 2);
        r.contexts = acco;
        policy(vec![r])
    };
    let mut req = request("C1", Operation::Retrieve);
    req.ip = Some("192.168.1.7".parse().unwrap());
    // {} and acip {} impose no constraint.
    assert!(permits(
        &with_contexts(vec![AccessControlContext::default()]),
        &req
    ));
    let empty_ip = AccessControlContext {
        ip_addresses: Some(IpAddresses::default()),
        ..AccessControlContext::default()
    };
    assert!(permits(&with_contexts(vec![empty_ip]), &req));
    // Time window: the spec notes' example, 10:03:17 is inside.
    let window = |w: &str| AccessControlContext {
        time_windows: vec![w.to_owned()],
        ..AccessControlContext::default()
    };
    assert!(permits(
        &with_contexts(vec![window("* 0-5 2,6,10 * * * *")]),
        &req
    ));
    assert!(!permits(
        &with_contexts(vec![window("* 6-59 2,6,10 * * * *")]),
        &req
    ));
    // IP: CIDR and bare address; no IP in the request fails.
    let ip = |v4: &[&str]| AccessControlContext {
        ip_addresses: Some(IpAddresses {
            ipv4: v4.iter().map(|s| (*s).to_owned()).collect(),
            ipv6: vec!["fd00::/8".into()],
        }),
        ..AccessControlContext::default()
    };
    assert!(permits(&with_contexts(vec![ip(&["192.168.1.0/24"])]), &req));
    assert!(!permits(&with_contexts(vec![ip(&["192.168.1.8"])]), &req));
    let mut no_ip = req.clone();
    no_ip.ip = None;
    assert!(!permits(
        &with_contexts(vec![ip(&["192.168.1.0/24"])]),
        &no_ip
    ));
    // Elements ORed, parts ANDed.
    let both = AccessControlContext {
        time_windows: vec!["* * * * * * *".into()],
        ..ip(&["10.0.0.0/8"])
    };
    assert!(!permits(&with_contexts(vec![both.clone()]), &req));
    assert!(permits(
        &with_contexts(vec![both, window("* * * * * 2 2024")]),
        &req
    ));
}

/// Location regions (TS-0003 7.1.3, Annex F; Decision 5).
#[test]
fn reference_location() {
    let with_region = |region: LocationRegion| {
        let mut r = rule(&["C1"], 2);
        r.contexts = vec![AccessControlContext {
            location_region: Some(region),
            ..AccessControlContext::default()
        }];
        policy(vec![r])
    };
    let paris_500m = with_region(LocationRegion {
        country_codes: None,
        circle: Some(vec![48.8566, 2.3522, 500.0]),
    });
    let mut req = request("C1", Operation::Retrieve);
    // Unknown position: Deny.
    assert!(!permits(&paris_500m, &req));
    req.position = Some(Position {
        lat: 48.8566,
        lon: 2.3542, // about 146 m east
        uncertainty_m: 300.0,
    });
    assert!(permits(&paris_500m, &req));
    req.position.as_mut().unwrap().uncertainty_m = 400.0;
    assert!(!permits(&paris_500m, &req));
    // Position from the attribute source.
    let attrs = InMemoryAttributes::new().with_position(
        "//m2msp.org/myCSEID/C1",
        Position {
            lat: 48.857,
            lon: 2.3522,
            uncertainty_m: 0.0,
        },
    );
    let plain = request("C1", Operation::Retrieve);
    assert_eq!(decide_ref(&paris_500m, &plain, &attrs), Effect::Permit);

    let de_fr = with_region(LocationRegion {
        country_codes: Some(vec!["de".into(), "FR".into()]),
        circle: None,
    });
    let mut req = request("C1", Operation::Retrieve);
    assert!(!permits(&de_fr, &req));
    req.countries = vec!["DE".into()];
    assert!(permits(&de_fr, &req));
    req.countries = vec!["DE".into(), "KR".into()];
    assert!(!permits(&de_fr, &req));
    // Derived from the IP, else from the position.
    let attrs = InMemoryAttributes::new()
        .with_ip_country("10.0.0.0/8".parse().unwrap(), "KR")
        .with_country_circle(
            Position {
                lat: 48.8566,
                lon: 2.3522,
                uncertainty_m: 0.0,
            },
            500_000.0,
            "FR",
        );
    let mut req = request("C1", Operation::Retrieve);
    req.position = Some(Position {
        lat: 48.0,
        lon: 2.0,
        uncertainty_m: 0.0,
    });
    assert_eq!(decide_ref(&de_fr, &req, &attrs), Effect::Permit);
    req.ip = Some("10.1.2.3".parse().unwrap());
    assert_eq!(decide_ref(&de_fr, &req, &attrs), Effect::Deny);
    req.ip = Some("11.1.2.3".parse().unwrap());
    assert_eq!(decide_ref(&de_fr, &req, &attrs), Effect::Permit);
}

/// accessControlObjectDetails (TS-0003 7.1.3 table 7.1.3-3, 7.1.5).
#[test]
fn reference_object_details() {
    let mut r = rule(&["C1"], 1 | 2);
    r.object_details = vec![
        ObjectDetails {
            resource_type: Some(3),
            specialization: None,
            child_resource_types: Some(vec![4, 23]),
        },
        ObjectDetails {
            resource_type: Some(13),
            specialization: Some(Specialization::MgmtDefinition(1001)),
            child_resource_types: Some(vec![13]),
        },
    ];
    let acp = policy(vec![r]);
    let create = |target_type: u32, rt: u32, spty: Option<Specialization>| {
        let mut req = request("C1", Operation::Create);
        req.target_type = Some(target_type);
        req.resource_type = Some(rt);
        req.specialization = spty;
        req
    };
    assert!(permits(&acp, &create(3, 4, None)));
    assert!(permits(&acp, &create(3, 23, None)));
    assert!(!permits(&acp, &create(3, 3, None)));
    assert!(!permits(&acp, &create(2, 4, None)));
    assert!(permits(
        &acp,
        &create(13, 13, Some(Specialization::MgmtDefinition(1001)))
    ));
    assert!(!permits(
        &acp,
        &create(13, 13, Some(Specialization::MgmtDefinition(1007)))
    ));
    assert!(!permits(&acp, &create(13, 13, None)));
    // "applies to Create request primitives only".
    let mut retrieve = create(2, 2, None);
    retrieve.operation = Operation::Retrieve;
    assert!(permits(&acp, &retrieve));
}
