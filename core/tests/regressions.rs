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
