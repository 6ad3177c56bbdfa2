//! `rfa` (roleIDsFromACPs) of a Direct Dynamic Authorization request: TS-0003
//! 7.3.2.2 step 2.2.1 — the Role-IDs found in `acor` of the applicable rules
//! whose `acop` and `acco` match the request, whoever the originator is.

use authz_core::compile::CompiledAcp;
use authz_core::model::SetOfAcrs;
use authz_core::{
    Applicable, DecisionRequest, HostingContext, NoAttributes, Operation, PrivilegeKind,
    role_ids_for_consultation,
};
use chrono::{DateTime, Utc};

fn host() -> HostingContext {
    HostingContext::new("//m2msp.org", "/id-in").expect("hosting")
}

fn acp(rules: serde_json::Value) -> CompiledAcp {
    let set: SetOfAcrs = serde_json::from_value(serde_json::json!({ "acr": rules })).expect("acrs");
    CompiledAcp::from_privileges("acp1", &set).expect("compiles")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

#[test]
fn rfa_holds_role_ids_of_rules_whose_operation_and_context_match_7_3_2_2() {
    let policy = acp(serde_json::json!([
        // Operation matches (UPDATE = 4), no context: included.
        {"acor": ["guest@roles.m2msp.org", "Cowner"], "acop": 4},
        // Operation does not match (RETRIEVE only): excluded.
        {"acor": ["reader@roles.m2msp.org"], "acop": 2},
        // Operation matches but the time window is closed at noon: excluded.
        {"acor": ["night@roles.m2msp.org"], "acop": 4, "acco": [{"actw": ["* * 0-5 * * * *"]}]},
        // Operation and window match: included; duplicates collapse.
        {"acor": ["day@roles.m2msp.org", "guest@roles.m2msp.org"], "acop": 6,
         "acco": [{"actw": ["* * 9-17 * * * *"]}]},
        // No Role-ID at all.
        {"acor": ["all"], "acop": 63, "acco": [{"actw": ["* * 0-1 * * * *"]}]}
    ]));
    // The originator is named by no rule: rfa does not depend on it.
    let req = DecisionRequest::new(
        "Cstranger",
        Operation::Update,
        "/id-in/door",
        at("2024-03-15T12:00:00Z"),
    );
    let applicable = [Applicable {
        acp: &policy,
        kind: PrivilegeKind::Privileges,
    }];
    let rfa = role_ids_for_consultation(&req, &host(), &applicable, &NoAttributes);
    assert_eq!(rfa, vec!["day@roles.m2msp.org", "guest@roles.m2msp.org"]);
    // At night the window flips.
    let night = DecisionRequest::new(
        "Cstranger",
        Operation::Update,
        "/id-in/door",
        at("2024-03-15T03:00:00Z"),
    );
    let rfa = role_ids_for_consultation(&night, &host(), &applicable, &NoAttributes);
    assert_eq!(rfa, vec!["guest@roles.m2msp.org", "night@roles.m2msp.org"]);
}
