//! Cases found by the differential test's exploration outside its generator.

use authz_core::json::parse_and_validate;
use authz_core::{
    Applicable, CompiledAcp, DecideOptions, DecisionRequest, Effect, HostingContext,
    InMemoryAttributes, Operation, PrivilegeKind, decide,
};
use chrono::{TimeZone, Utc};

#[test]
fn decision_5_malformed_request_country_is_not_skipped() {
    // The request's countries win (README); a code that is not alpha-2 is in
    // no list, so it must deny rather than fall back to the IP's country.
    let acps = parse_and_validate(
        r#"{"m2m:acp": {"ri": "a", "pv": {"acr": [{"acor": ["C1"], "acop": 63,
            "acco": [{"aclr": {"accc": ["DE"]}}]}]}}}"#,
    )
    .unwrap();
    let acp = CompiledAcp::compile("a", &acps[0]).unwrap();
    let ctx = HostingContext::new("//m2msp.org", "/myCSE").unwrap();
    let attrs = InMemoryAttributes::new().with_ip_country("10.0.0.0/8".parse().unwrap(), "DE");
    let mut req = DecisionRequest::new(
        "C1",
        Operation::Retrieve,
        "x",
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    );
    req.ip = Some("10.1.1.1".parse().unwrap());
    let applicable = [Applicable {
        acp: &acp,
        kind: PrivilegeKind::Privileges,
    }];
    let run = |req: &DecisionRequest| {
        decide(req, &ctx, &applicable, &attrs, &DecideOptions::default()).effect
    };
    assert_eq!(run(&req), Effect::Permit, "country from the IP");
    req.countries = vec!["DEU".into()];
    assert_eq!(run(&req), Effect::Deny);
    req.countries = vec!["DEU".into(), "DE".into()];
    assert_eq!(run(&req), Effect::Deny);
}

/// An attribute source that itself decides (a PIP answering `<group>`
/// membership from another policy) runs a decision inside a decision. The
/// inner one must not share the outer one's per-thread originator buffer:
/// both originators are stems, so both are written out in absolute form
/// (Decision 2), and the outer one must still be intact after the inner
/// decision, when its group pass asks about it (TS-0001 9.6.2.1).
#[test]
fn a_decision_inside_an_attribute_lookup_keeps_both_originators() {
    use authz_core::{AttributeSource, Lookup, Position};
    use std::net::IpAddr;
    use std::sync::Mutex;

    struct DecidingSource {
        ctx: HostingContext,
        inner: CompiledAcp,
        asked: Mutex<Vec<(String, String)>>,
    }
    impl AttributeSource for DecidingSource {
        fn role_verified(&self, _: &str, _: &str, _: chrono::DateTime<Utc>) -> Lookup<bool> {
            Lookup::NotFound
        }
        fn group_has_member(&self, group_id: &str, originator: &str) -> Lookup<bool> {
            self.asked
                .lock()
                .unwrap()
                .push((group_id.to_owned(), originator.to_owned()));
            let req = DecisionRequest::new(
                "Cinner",
                Operation::Retrieve,
                group_id,
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            );
            let applicable = [Applicable {
                acp: &self.inner,
                kind: PrivilegeKind::Privileges,
            }];
            let inner = decide(
                &req,
                &self.ctx,
                &applicable,
                &authz_core::NoAttributes,
                &DecideOptions::default(),
            );
            Lookup::Found(
                inner.effect == Effect::Permit && originator == "//m2msp.org/myCSE/Cmember",
            )
        }
        fn position(&self, _: &str, _: chrono::DateTime<Utc>) -> Lookup<Position> {
            Lookup::NotFound
        }
        fn countries_of_position(&self, _: &Position) -> Lookup<Vec<String>> {
            Lookup::NotFound
        }
        fn country_of_ip(&self, _: IpAddr) -> Lookup<String> {
            Lookup::NotFound
        }
    }

    let compile = |json: &str| {
        let acps = parse_and_validate(json).unwrap();
        CompiledAcp::compile("a", &acps[0]).unwrap()
    };
    let outer =
        compile(r#"{"m2m:acp": {"ri": "a", "pv": {"acr": [{"acor": ["grp1"], "acop": 2}]}}}"#);
    let source = DecidingSource {
        ctx: HostingContext::new("//m2msp.org", "/myCSE").unwrap(),
        inner: compile(
            r#"{"m2m:acp": {"ri": "b", "pv": {"acr": [{"acor": ["Cinner"], "acop": 2}]}}}"#,
        ),
        asked: Mutex::new(Vec::new()),
    };
    let applicable = [Applicable {
        acp: &outer,
        kind: PrivilegeKind::Privileges,
    }];
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let run = |originator: &str| {
        let req = DecisionRequest::new(originator, Operation::Retrieve, "x", at);
        decide(
            &req,
            &source.ctx,
            &applicable,
            &source,
            &DecideOptions::default(),
        )
        .effect
    };
    assert_eq!(run("Cmember"), Effect::Permit, "member of grp1");
    assert_eq!(run("Cstranger"), Effect::Deny, "not a member");
    assert_eq!(
        source.asked.lock().unwrap().as_slice(),
        [
            (
                "//m2msp.org/myCSE/grp1".to_owned(),
                "//m2msp.org/myCSE/Cmember".to_owned()
            ),
            (
                "//m2msp.org/myCSE/grp1".to_owned(),
                "//m2msp.org/myCSE/Cstranger".to_owned()
            ),
        ]
    );
}

/// An explanation stays bounded whatever a policy holds: of 100 rules that
/// name the originator and fail (7.1.5 res_ops), the first 64 are listed
/// and the rest counted; of a rule's 100 `acco` elements (each a closed
/// time window), the first 64. The decision itself is the same.
#[test]
fn an_explanation_lists_the_first_failures_and_counts_the_rest() {
    use authz_core::decision::{FailedCondition, MAX_EXPLAINED};
    let rules: Vec<String> = (0..100)
        .map(|_| r#"{"acor": ["C1"], "acop": 1}"#.to_owned())
        .collect();
    let many_rules = format!(
        r#"{{"m2m:acp": {{"ri": "many", "pv": {{"acr": [{}]}}}}}}"#,
        rules.join(",")
    );
    let windows: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"actw": ["0 {} 3 * * * *"]}}"#, i % 60))
        .collect();
    let many_contexts = format!(
        r#"{{"m2m:acp": {{"ri": "wide", "pv": {{"acr": [{{"acor": ["C1"], "acop": 2, "acco": [{}]}}]}}}}}}"#,
        windows.join(",")
    );
    let ctx = HostingContext::new("//m2msp.org", "/myCSE").unwrap();
    let attrs = InMemoryAttributes::new();
    let req = DecisionRequest::new(
        "C1",
        Operation::Retrieve,
        "x",
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap(),
    );
    let explain = DecideOptions {
        explain: true,
        ..DecideOptions::default()
    };
    // The explanation of the Deny of `req` by the one ACP `text`.
    let explained = |text: &str| {
        let acps = parse_and_validate(text).unwrap();
        let acp = CompiledAcp::compile("a", &acps[0]).unwrap();
        let applicable = [Applicable {
            acp: &acp,
            kind: PrivilegeKind::Privileges,
        }];
        let d = decide(&req, &ctx, &applicable, &attrs, &explain);
        assert_eq!(d.effect, Effect::Deny);
        d.explanation.expect("explanation")
    };

    let e = explained(&many_rules);
    assert_eq!(e.failed_rules.len(), MAX_EXPLAINED);
    assert_eq!(e.more_failed_rules, 100 - MAX_EXPLAINED);
    assert_eq!(e.failed_rules[63].rule.rule, 63);

    let e = explained(&many_contexts);
    assert_eq!(e.failed_rules.len(), 1);
    match &e.failed_rules[0].failed {
        FailedCondition::Context { elements } => assert_eq!(elements.len(), MAX_EXPLAINED),
        other => panic!("{other:?}"),
    }
}
