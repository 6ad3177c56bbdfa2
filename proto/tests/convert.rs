//! Conversions between the wire messages and the core model: lossless policy
//! round trips, request checks that name the field, and decision encoding.

use authz_core::HostingContext;
use authz_core::decision::{
    AuthorizationStatus, ContextFailure, Decision, Effect, Explanation, FailedCondition,
    MissingAttribute, PrivilegeKind, RuleFailure, RuleRef,
};
use authz_core::model::{self, Specialization};
use authz_core::request::{Operation, Position};
use authz_proto::convert::{
    acp_from_pb, acp_to_pb, decision_from_pb, decision_request_from_pb, decision_request_to_pb,
    decision_to_pb,
};
use authz_proto::{ConversionError, invalid_argument, pb};
use chrono::{DateTime, TimeZone, Utc};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

fn acp_json(value: serde_json::Value) -> model::AccessControlPolicy {
    serde_json::from_value(value).expect("valid m2m:acp")
}

/// A policy using every component of the model.
fn rich_acp() -> model::AccessControlPolicy {
    acp_json(serde_json::json!({
        "rn": "acpLock",
        "ri": "acp7Xk2",
        "pi": "/id-in",
        "ty": 1,
        "ct": "20261123T120000",
        "lt": "20261123T120500",
        "et": "20361123T120000",
        "lbl": ["building/7", "door"],
        "aa": ["lbl"],
        "cstn": "//sp.example.com/id-in/Cowner",
        "x-vendor": {"weight": -3, "ratio": 0.25, "nested": [true, null, "s"]},
        "adri": ["/id-in/pdp1"],
        "apri": ["/id-in/prp1", "/id-in/prp2"],
        "airi": ["/id-in/pip1"],
        "pv": {"acr": [
            {"acor": ["CphoneApp", "/id-in/Cguest*", "tenant@roles.example.com"],
             "acop": 34,
             "acco": [{"actw": ["* * 8-19 * * 1-5 *", "* * * * * 0,6 *"],
                       "acip": {"ipv4": ["192.168.1.0/24"], "ipv6": ["fd00::/8"]},
                       "aclr": {"accr": [48.137, 11.575, 500.0]}},
                      {"aclr": {"accc": ["DE", "KR"]}},
                      {"acip": {"ipv4": ["10.0.0.1"]}},
                      {"aclr": {"accc": []}},
                      {}],
             "acaf": true},
            {"acor": ["Cowner"], "acop": 1, "acaf": false,
             "acod": [{"ty": 3, "chty": [4, 23]},
                      {"ty": 13, "spty": {"mgd": 1001}, "chty": [13]},
                      {"spty": {"cnd": "org.example:lock"}, "chty": []}]}
        ]},
        "pvs": {"acr": [{"acor": ["Cowner"], "acop": 63}]}
    }))
}

fn wire_round_trip<M: Message + Default>(m: &M) -> M {
    M::decode(m.encode_to_vec().as_slice()).expect("decodes")
}

#[test]
fn rich_acp_round_trips_losslessly() {
    let acp = rich_acp();
    let wire = acp_to_pb(&acp).expect("converts");

    assert_eq!(wire.resource_name.as_deref(), Some("acpLock"));
    assert_eq!(wire.resource_id.as_deref(), Some("acp7Xk2"));
    assert_eq!(wire.parent_id.as_deref(), Some("/id-in"));
    assert_eq!(wire.labels, ["building/7", "door"]);
    assert_eq!(wire.expiration_time, "20361123T120000");
    assert_eq!(wire.pdp_addresses, ["/id-in/pdp1"]);
    assert_eq!(wire.prp_addresses, ["/id-in/prp1", "/id-in/prp2"]);
    assert_eq!(wire.pip_addresses, ["/id-in/pip1"]);
    let other = wire.other_attributes.as_ref().expect("other attributes");
    let keys: Vec<&str> = other.fields.keys().map(String::as_str).collect();
    assert_eq!(keys, ["aa", "cstn", "ct", "lt", "ty", "x-vendor"]);

    let pv = wire.privileges.as_ref().unwrap();
    let rule = &pv.rules[0];
    assert_eq!(rule.operations, 34);
    assert_eq!(rule.authentication_flag, Some(true));
    assert_eq!(rule.contexts.len(), 5);
    assert_eq!(
        rule.contexts[0].location_region,
        Some(pb::LocationRegion {
            region: Some(pb::location_region::Region::Circle(pb::Circle {
                latitude: 48.137,
                longitude: 11.575,
                radius_m: 500.0
            }))
        })
    );
    assert_eq!(pv.rules[1].authentication_flag, Some(false));
    assert_eq!(
        pv.rules[1].object_details[1].specialization,
        Some(pb::Specialization {
            kind: Some(pb::specialization::Kind::MgmtDefinition(1001))
        })
    );

    let back = acp_from_pb(&wire_round_trip(&wire)).expect("converts back");
    assert_eq!(back, acp);
    // And the JSON a policy author wrote is unchanged too.
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&acp).unwrap()
    );
}

#[test]
fn minimal_and_odd_shapes_round_trip() {
    let cases = [
        serde_json::json!({}),
        serde_json::json!({"pv": {"acr": []}}),
        serde_json::json!({"rn": "", "pvs": {"acr": [{"acor": [], "acop": 0}]}}),
        // Shapes the typed fields cannot carry stay in other_attributes.
        serde_json::json!({"lbl": [], "et": "", "adri": [], "apri": "not-a-list", "airi": [1]}),
        serde_json::json!({"lbl": ["a", 2]}),
        serde_json::json!({"big": 9007199254740992_u64, "neg": -9007199254740992_i64}),
    ];
    for case in cases {
        let acp = acp_json(case.clone());
        let wire = acp_to_pb(&acp).unwrap_or_else(|e| panic!("{case}: {e:?}"));
        let back = acp_from_pb(&wire_round_trip(&wire)).unwrap_or_else(|e| panic!("{case}: {e:?}"));
        assert_eq!(back, acp, "{case}");
    }
}

fn fields(errors: &[ConversionError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn core_shapes_the_wire_cannot_carry_are_errors() {
    let mut acp = acp_json(serde_json::json!({
        "pv": {"acr": [{"acor": ["C1"], "acop": 2,
            "acco": [{"aclr": {"accc": ["DE"], "accr": [1.0, 2.0, 3.0]}},
                     {"aclr": {"accr": [1.0, 2.0]}}],
            "acod": [{"ty": 3}]}]},
        "huge": 9007199254740993_u64
    }));
    acp.other.insert("rn".into(), "shadow".into());
    let errors = acp_to_pb(&acp).unwrap_err();
    assert_eq!(
        fields(&errors),
        [
            "rn",
            "huge",
            "pv.acr[0].acco[0].aclr",
            "pv.acr[0].acco[1].aclr.accr",
            "pv.acr[0].acod[0].chty",
        ],
        "{errors:?}"
    );
}

#[test]
fn wire_shapes_the_core_cannot_hold_are_errors() {
    let mut other = prost_types::Struct::default();
    for key in ["pv", "lbl"] {
        other.fields.insert(
            key.into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("x".into())),
            },
        );
    }
    let wire = pb::AccessControlPolicy {
        labels: vec!["door".into()],
        privileges: Some(pb::SetOfAcrs {
            rules: vec![pb::AccessControlRule {
                originators: vec!["C1".into()],
                operations: 1,
                object_details: vec![pb::ObjectDetails {
                    specialization: Some(pb::Specialization { kind: None }),
                    child_resource_types: vec![4],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }),
        other_attributes: Some(other),
        ..Default::default()
    };
    let errors = acp_from_pb(&wire).unwrap_err();
    assert_eq!(
        fields(&errors),
        ["other_attributes.pv", "other_attributes.lbl"],
        "{errors:?}"
    );
    // An empty specialization is absent (Decision 11), as `"spty": {}`.
    let wire = pb::AccessControlPolicy {
        other_attributes: None,
        ..wire
    };
    let model = acp_from_pb(&wire).expect("an empty spty is no error");
    let pv = model.privileges.expect("pv");
    assert_eq!(pv.rules[0].object_details[0].specialization, None);
}

/// Decision 11: "An empty list or object imposes no constraint, exactly as
/// if it were absent" — `aclr: {}` (TS-0003 table 7.1.3-2
/// accessControlLocationRegion). The wire's `location_region` with neither
/// `country_codes` nor `circle` is the same: not an error, no constraint,
/// and `aclr: {}` round-trips through it. Both set stays an error.
#[test]
fn decision_11_location_region_with_neither_is_no_constraint() {
    let wire = pb::AccessControlPolicy {
        resource_id: Some("acp1".into()),
        privileges: Some(pb::SetOfAcrs {
            rules: vec![pb::AccessControlRule {
                originators: vec!["Cphone".into()],
                operations: 2,
                contexts: vec![pb::AccessControlContext {
                    location_region: Some(pb::LocationRegion { region: None }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }),
        self_privileges: Some(pb::SetOfAcrs {
            rules: vec![pb::AccessControlRule {
                originators: vec!["CAdmin".into()],
                operations: 63,
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    let acp = acp_from_pb(&wire).expect("neither set is no error");
    assert_eq!(
        serde_json::to_value(&acp).unwrap()["pv"]["acr"][0]["acco"][0],
        serde_json::json!({"aclr": {}})
    );
    // The engine reads it as no constraint: the rule permits without any
    // location known.
    let compiled = authz_core::CompiledAcp::compile("acp1", &acp).expect("compiles");
    let hosting = HostingContext::new("//sp.example.com", "/id-in").unwrap();
    let request = authz_core::DecisionRequest::new(
        "Cphone",
        Operation::Retrieve,
        "cnt1",
        at("2026-11-26T16:00:00Z"),
    );
    let decision = authz_core::decide(
        &request,
        &hosting,
        &[authz_core::Applicable {
            acp: &compiled,
            kind: PrivilegeKind::Privileges,
        }],
        &authz_core::NoAttributes,
        &authz_core::DecideOptions::default(),
    );
    assert_eq!(decision.effect, Effect::Permit);
    // Back to the wire unchanged, and JSON `aclr: {}` takes the same form.
    assert_eq!(acp_to_pb(&acp).expect("to wire"), wire);
    let from_json = acp_json(serde_json::json!({
        "ri": "acp1",
        "pv": {"acr": [{"acor": ["Cphone"], "acop": 2, "acco": [{"aclr": {}}]}]},
        "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}
    }));
    assert_eq!(from_json, acp);
    assert_eq!(acp_to_pb(&from_json).expect("to wire"), wire);

    // Both set is still an error.
    let both = acp_json(serde_json::json!({
        "pv": {"acr": [{"acor": ["Cphone"], "acop": 2,
            "acco": [{"aclr": {"accc": ["DE"], "accr": [1.0, 2.0, 3.0]}}]}]}
    }));
    let errors = acp_to_pb(&both).unwrap_err();
    assert_eq!(fields(&errors), ["pv.acr[0].acco[0].aclr"], "{errors:?}");

    // An empty `accr` or `accc` beside the other is absent, as the engine
    // reads it (`authz check` accepted these while the PRP refused them,
    // and a DAS grant holding one could not be carried as a `dai`).
    let region = |aclr: serde_json::Value| {
        let acp = acp_json(serde_json::json!({
            "pv": {"acr": [{"acor": ["Cphone"], "acop": 2, "acco": [{"aclr": aclr}]}]}
        }));
        let wire = acp_to_pb(&acp).expect("converts");
        wire.privileges.expect("pv").rules[0].contexts[0]
            .location_region
            .clone()
            .expect("region")
            .region
    };
    assert_eq!(region(serde_json::json!({"accr": []})), None);
    assert!(matches!(
        region(serde_json::json!({"accc": [], "accr": [1.0, 2.0, 3.0]})),
        Some(pb::location_region::Region::Circle(_))
    ));
    assert!(matches!(
        region(serde_json::json!({"accc": ["DE"], "accr": []})),
        Some(pb::location_region::Region::CountryCodes(c)) if c.codes == ["DE"]
    ));
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A oneM2M JWT claim set (table 7.3.2.6.2-1), base64url: `jti`
/// `tk@das.example.com`, `iss`, `azp`, `nbf`, `exp`, `tkvr` and `aud`.
const CLAIMS: &str = "eyJqdGkiOiJ0a0BkYXMuZXhhbXBsZS5jb20iLCJpc3MiOiIvL3NwLmV4YW1wbGUuY29tL2lkLWluL0NEYXMiLCJhenAiOiIvL3NwLmV4YW1wbGUuY29tL2lkLWluL0NwaG9uZUFwcCIsIm5iZiI6MTcwMDAwMDAwMCwiZXhwIjoyMDAwMDAwMDAwLCJ0a3ZyIjoiMSIsImF1ZCI6WyIvL3NwLmV4YW1wbGUuY29tL2lkLWluIl19";

fn full_request() -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: "CphoneApp".into(),
        role_ids: vec!["guest@roles.example.com".into()],
        tokens: vec![format!("eyJhbGciOiJFUzI1NiJ9.{CLAIMS}.c2ln")],
        token_ids: vec!["tk42@das.example.com".into()],
        local_token_ids: vec!["lt1".into()],
        token_request_indicator: true,
        operation: pb::Operation::Create as i32,
        discovery: false,
        target: "/id-in/cnt7Xk2".into(),
        target_type: Some(28),
        resource_type: Some(28),
        specialization: Some(pb::Specialization {
            kind: Some(pb::specialization::Kind::ContainerDefinition(
                "org.example:lock".into(),
            )),
        }),
        request_time: Some(prost_types::Timestamp {
            seconds: 1_795_000_000,
            nanos: 5,
        }),
        originator_ip: Some(pb::IpAddress {
            address: Some(pb::ip_address::Address::Ipv6("fd00::1".into())),
        }),
        originator_location: Some(pb::OriginatorLocation {
            position: Some(pb::Position {
                latitude: 48.137,
                longitude: 11.575,
                uncertainty_m: 25.0,
            }),
            country_codes: vec!["DE".into()],
        }),
        authenticated: true,
        hosting_cse_id: "/id-in".into(),
        hosting_sp_id: "//sp.example.com".into(),
        acp_ids: vec!["acp7Xk2".into()],
        explain: true,
        request_id: "rqi-17".into(),
        updates_acpi: false,
    }
}

#[test]
fn full_request_converts_and_round_trips() {
    let wire = full_request();
    let now = at("2030-01-01T00:00:00Z");
    let conv = decision_request_from_pb(&wire, now).expect("valid");
    let r = &conv.request;
    assert_eq!(r.originator, "CphoneApp");
    assert_eq!(r.operation, Operation::Create);
    assert_eq!(r.target_type, Some(28));
    assert_eq!(
        r.specialization,
        Some(Specialization::ContainerDefinition(
            "org.example:lock".into()
        ))
    );
    assert_eq!(r.time, Utc.timestamp_opt(1_795_000_000, 5).unwrap());
    assert_eq!(r.ip, Some("fd00::1".parse().unwrap()));
    assert_eq!(
        r.position,
        Some(Position {
            lat: 48.137,
            lon: 11.575,
            uncertainty_m: 25.0
        })
    );
    assert_eq!(r.countries, ["DE"]);
    assert!(r.authenticated);
    assert_eq!(
        conv.hosting,
        Some(HostingContext::new("//sp.example.com", "/id-in").unwrap())
    );
    assert_eq!(conv.acp_ids, ["acp7Xk2"]);
    assert!(conv.explain && conv.token_request_indicator);
    assert_eq!(conv.request_id, "rqi-17");

    assert_eq!(decision_request_to_pb(&conv), wire);
}

#[test]
fn minimal_request_takes_now() {
    let wire = pb::DecisionRequest {
        originator: "Cx".into(),
        operation: pb::Operation::Retrieve as i32,
        discovery: true,
        target: "/id-in/cnt1".into(),
        ..Default::default()
    };
    let now = at("2026-11-23T12:00:00Z");
    let conv = decision_request_from_pb(&wire, now).expect("valid");
    assert_eq!(conv.request.time, now);
    assert!(conv.request.discovery);
    assert_eq!(conv.hosting, None);
    assert_eq!(conv.request.ip, None);
    assert_eq!(conv.request.position, None);
}

/// An IPv4-mapped IPv6 originator address (`::ffff:a.b.c.d`, as dual-stack
/// sockets report IPv4 peers) is kept as the IPv6 address it was sent as:
/// the engine matches it against the IPv4 entries as its IPv4 peer and
/// against the IPv6 entries as written (`::/0` holds it), the same for a
/// PDP as for `authz check`.
#[test]
fn a_mapped_ipv4_originator_address_is_kept_as_sent() {
    let with_ip = |text: &str| pb::DecisionRequest {
        originator: "Cx".into(),
        operation: pb::Operation::Retrieve as i32,
        target: "/id-in/cnt1".into(),
        originator_ip: Some(pb::IpAddress {
            address: Some(pb::ip_address::Address::Ipv6(text.into())),
        }),
        ..Default::default()
    };
    let now = at("2026-11-23T12:00:00Z");
    let ip = |text: &str| {
        decision_request_from_pb(&with_ip(text), now)
            .expect("valid")
            .request
            .ip
    };
    assert_eq!(
        ip("::ffff:1.2.3.4"),
        Some("::ffff:1.2.3.4".parse().unwrap())
    );
    assert_eq!(ip("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
}

fn errors_of(wire: &pb::DecisionRequest) -> Vec<String> {
    decision_request_from_pb(wire, Utc::now())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn request_errors_name_the_field() {
    let wire = pb::DecisionRequest {
        originator: "Cx".into(),
        target: "/id-in/cnt1".into(),
        originator_ip: Some(pb::IpAddress {
            address: Some(pb::ip_address::Address::Ipv4("300.1.1.1".into())),
        }),
        originator_location: Some(pb::OriginatorLocation {
            position: Some(pb::Position {
                latitude: 95.0,
                longitude: 11.0,
                uncertainty_m: 0.0,
            }),
            country_codes: vec!["DEU".into()],
        }),
        ..Default::default()
    };
    assert_eq!(
        errors_of(&wire),
        [
            "operation: 0 is not an operation (1-5)",
            "originator_ip.ipv4: '300.1.1.1' is not an IPv4 address: an octet is at most 255",
            "originator_location.position.latitude: 95 out of range -90..90",
            "originator_location.country_codes[0]: 'DEU' is not an ISO 3166-1 alpha-2 country code (two letters)",
        ]
    );
}

/// `mgd` is an attribute of a `<mgmtObj>` (13), `cnd` of a
/// `<flexContainer>` (28): a Create of another type has no specialization,
/// so one in the request is malformed (TS-0003 7.1.5 matches `spty`
/// against "the mgmtDefinition or containerDefinition attributes" of the
/// created resource; Decision 13), not a match for an `acod`'s `spty`.
#[test]
fn a_specialization_of_another_resource_type_is_an_invalid_argument() {
    let mgd = Some(pb::Specialization {
        kind: Some(pb::specialization::Kind::MgmtDefinition(1001)),
    });
    let with = |ty: u32, specialization: Option<pb::Specialization>| pb::DecisionRequest {
        resource_type: Some(ty),
        specialization,
        ..full_request()
    };
    assert_eq!(
        errors_of(&with(3, mgd.clone())),
        [
            "specialization: mgd (mgmtDefinition) belongs to a <mgmtObj> (resource type 13), not to the created resource type 3"
        ]
    );
    assert!(decision_request_from_pb(&with(13, mgd), Utc::now()).is_ok());
    // full_request: a flexContainer (28) with its cnd.
    let cnd = full_request().specialization;
    assert!(decision_request_from_pb(&with(28, cnd.clone()), Utc::now()).is_ok());
    assert_eq!(
        errors_of(&with(13, cnd)),
        [
            "specialization: cnd (containerDefinition) belongs to a <flexContainer> (resource type 28), not to the created resource type 13"
        ]
    );
}

/// TS-0001 7.1.16: a Local-Token-ID is an NCName.
#[test]
fn local_token_ids_are_ncnames() {
    for (ltid, ok) in [
        ("lt1", true),
        ("_x.y-z9", true),
        ("1lt", false),
        ("lt/1", false),
        ("a:b", false),
        ("-x", false),
    ] {
        let mut wire = full_request();
        wire.local_token_ids = vec![ltid.into()];
        let fields: Vec<String> = decision_request_from_pb(&wire, Utc::now())
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields.is_empty(), ok, "{ltid}: {fields:?}");
    }
}

/// Decision 9 (TS-0001 7.1.15: a Token-ID is `name@fqdn` naming its
/// issuer): a malformed Token-ID is INVALID_ARGUMENT naming
/// `token_ids[i]`, not a Deny after a failed fetch.
#[test]
fn malformed_token_ids_are_invalid_arguments_decision_9() {
    for bad in [
        "a@b@das.home.example",
        "x@-bad-",
        "abc@DAS.HOME.EXAMPLE",
        "tk@",
        "tk",
    ] {
        let mut wire = full_request();
        wire.token_ids = vec![bad.into()];
        let errors = decision_request_from_pb(&wire, Utc::now()).unwrap_err();
        assert_eq!(fields(&errors), ["token_ids[0]"], "{bad}: {errors:?}");
        let status = invalid_argument(&errors);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("token_ids[0]: "), "{status:?}");
    }
    let mut wire = full_request();
    wire.token_ids = vec!["3f9a0c_x-1.b@das.home.example".into()];
    assert!(decision_request_from_pb(&wire, Utc::now()).is_ok());
}

/// Decision 9: a token that is no JWS (RFC 7515 7.1: three base64url
/// parts, the header and payload JSON objects, the header with `alg`, the
/// payload a oneM2M claim set) or no JWE (five base64url parts, the header
/// a JSON object with `alg` and `enc`, a 96-bit IV and a 128-bit tag) is
/// INVALID_ARGUMENT naming `tokens[i]`, whatever DASes the PDP trusts.
#[test]
fn malformed_tokens_are_invalid_arguments_decision_9() {
    // {"alg":"ES256"} and a claim set.
    let (header, payload) = ("eyJhbGciOiJFUzI1NiJ9", CLAIMS);
    for bad in [
        "x".to_owned(),
        // {"jti":"tk"}: no m2m:tokenClaimSet (no iss, azp, nbf, exp, tkvr).
        format!("{header}.eyJqdGkiOiJ0ayJ9.c2ln"),
        // The same with alg none.
        "eyJhbGciOiJub25lIn0.eyJqdGkiOiJ0ayJ9.".to_owned(),
        "aaaa.bbbb.cccc".to_owned(),
        format!("{header}.{payload}.%%%%"),
        format!("{header}.{payload}.a+b/="),
        // {"typ":"JWT"}: no alg.
        format!("eyJ0eXAiOiJKV1QifQ.{payload}.c2ln"),
        format!("{header}.bm90IGpzb24.c2ln"),
        "a.b.c.d".to_owned(),
        "a.b.c.d.e%".to_owned(),
        // Five parts, but the header is no JSON object.
        "aaaa.bbbb.cccc.dddd.eeee".to_owned(),
        // A readable header, but a 24-bit IV (AES-GCM takes 96 bits).
        "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..cccc.dddd.AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
    ] {
        let mut wire = full_request();
        wire.tokens = vec![bad.clone()];
        let errors = decision_request_from_pb(&wire, Utc::now()).unwrap_err();
        assert_eq!(fields(&errors), ["tokens[0]"], "{bad}: {errors:?}");
    }
    for good in [
        format!("{header}.{payload}.c2ln"),
        // alg none has an empty signature.
        format!("eyJhbGciOiJub25lIn0.{payload}."),
        // {"alg":"dir","enc":"A128GCM"}, no encrypted key, a 96-bit IV and
        // a 128-bit tag: what it holds is read once decrypted.
        "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..AAAAAAAAAAAAAAAA.dddd.AAAAAAAAAAAAAAAAAAAAAA"
            .to_owned(),
    ] {
        let mut wire = full_request();
        wire.tokens = vec![good.clone()];
        assert!(
            decision_request_from_pb(&wire, Utc::now()).is_ok(),
            "{good}"
        );
    }
}

/// Decision 9: an originator that is not an ID (an empty segment, a
/// wildcard, whitespace) makes the request malformed: INVALID_ARGUMENT
/// naming `originator`, not a decision.
#[test]
fn malformed_originator_is_an_invalid_argument() {
    for bad in ["//sp.example.com//x", "/id-in/C*", "C 1", "Cae/"] {
        let mut wire = full_request();
        wire.originator = bad.into();
        let errors = decision_request_from_pb(&wire, Utc::now()).unwrap_err();
        assert_eq!(
            errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["originator"],
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn more_request_errors() {
    let mut wire = full_request();
    wire.originator = String::new();
    wire.target = String::new();
    wire.operation = 9;
    wire.role_ids = vec!["guest".into(), "".into()];
    wire.tokens = vec!["not a token".into(), "a.b".into()];
    wire.token_ids = vec!["tk@".into()];
    wire.local_token_ids = vec!["a:b".into()];
    wire.acp_ids = vec!["acp 1".into()];
    // (An empty specialization is absent: no error.)
    wire.specialization = Some(pb::Specialization { kind: None });
    wire.request_time = Some(prost_types::Timestamp {
        seconds: 0,
        nanos: -1,
    });
    wire.originator_ip = Some(pb::IpAddress {
        address: Some(pb::ip_address::Address::Ipv6("10.0.0.1".into())),
    });
    wire.originator_location = Some(pb::OriginatorLocation {
        position: Some(pb::Position {
            latitude: 0.0,
            longitude: -181.0,
            uncertainty_m: f64::NAN,
        }),
        country_codes: vec![],
    });
    wire.hosting_sp_id = String::new();
    let fields: Vec<String> = decision_request_from_pb(&wire, Utc::now())
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        [
            "originator",
            "target",
            "operation",
            "role_ids[0]",
            "role_ids[1]",
            "tokens[0]",
            "tokens[1]",
            "token_ids[0]",
            "local_token_ids[0]",
            "acp_ids[0]",
            "request_time.nanos",
            "originator_ip.ipv6",
            "originator_location.position.longitude",
            "originator_location.position.uncertainty_m",
            "hosting_sp_id",
        ]
    );

    let mut wire = full_request();
    wire.discovery = true; // with a Create
    wire.hosting_sp_id = "//sp/x".into();
    wire.originator = "/id-in/C*".into();
    wire.originator_ip = Some(pb::IpAddress { address: None });
    assert_eq!(
        errors_of(&wire),
        [
            "originator: must not contain the wildcard '*'",
            "discovery: a discovery (filterUsage 1) must be an OPERATION_RETRIEVE",
            "originator_ip: one of ipv4 or ipv6 must be set",
            "hosting_sp_id: '//sp/x' is not an SP-ID: it holds '/': a domain name has dot-separated labels of letters, digits and '-' (expected //fqdn)",
        ]
    );
}

/// Decision 9: a target no resource can have (white space or control
/// characters, as the PRP refuses them; `//` without an SP domain) is the
/// caller's invalid argument, not a NOT_APPLICABLE Deny.
#[test]
fn a_target_no_resource_can_have_is_an_invalid_argument_decision_9() {
    for bad in ["front\u{1}door", "front door", "//", "///cse/x", "x\u{7f}"] {
        let mut wire = full_request();
        wire.target = bad.into();
        let errors = decision_request_from_pb(&wire, Utc::now()).unwrap_err();
        assert_eq!(
            errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["target"],
            "{bad:?}: {errors:?}"
        );
    }
    // TS-0001 7.2 / 10.2.3.1: an empty path segment names no resource
    // (`/mn1/acpZ/` is not the ACP `/mn1/acpZ`): the check `authz check`
    // makes of `to` (core's `check_resource_id`).
    for bad in ["/mn1/acpZ/", "/mn1//acpZ", "/", "a//b"] {
        let mut wire = full_request();
        wire.target = bad.into();
        let errors = decision_request_from_pb(&wire, Utc::now()).unwrap_err();
        assert_eq!(
            errors
                .iter()
                .map(|e| (e.field.as_str(), e.message.as_str()))
                .collect::<Vec<_>>(),
            [(
                "target",
                format!("'{bad}' has an empty path segment").as_str()
            )],
            "{bad:?}"
        );
    }
    for good in [
        "frontDoor",
        "/id-in/cnt1",
        "//sp.example.com/id-in/cnt1",
        "caf\u{e9}",
        "ae1/cnt*",
    ] {
        let mut wire = full_request();
        wire.target = good.into();
        assert!(
            decision_request_from_pb(&wire, Utc::now()).is_ok(),
            "{good:?}"
        );
    }
}

/// TS-0001 9.6.1.3.2: `updates_acpi` marks an Update that changes only the
/// target's acpi; it is carried both ways, and is an INVALID_ARGUMENT
/// naming the field with another operation or with a target type that
/// has no acpi (an ACP, a contentInstance; spec notes §2.3).
#[test]
fn ts0001_9_6_1_3_2_updates_acpi_is_an_update_of_a_resource_with_acpi() {
    let mut wire = full_request();
    wire.operation = pb::Operation::Update as i32;
    wire.target_type = Some(3);
    wire.resource_type = None;
    wire.specialization = None;
    wire.updates_acpi = true;
    let conv = decision_request_from_pb(&wire, Utc::now()).expect("valid");
    assert!(conv.request.updates_acpi);
    assert_eq!(decision_request_to_pb(&conv), wire);
    wire.updates_acpi = false;
    let conv = decision_request_from_pb(&wire, Utc::now()).expect("valid");
    assert!(!conv.request.updates_acpi, "default: an ordinary request");

    let mut retrieve = request_with_acpi_change(pb::Operation::Retrieve, None);
    assert_eq!(
        errors_of(&retrieve),
        ["updates_acpi: an acpi change (TS-0001 9.6.1.3.2) must be an OPERATION_UPDATE"]
    );
    retrieve.updates_acpi = false;
    assert!(decision_request_from_pb(&retrieve, Utc::now()).is_ok());
    for ty in [1, 4, 58] {
        let errors = errors_of(&request_with_acpi_change(pb::Operation::Update, Some(ty)));
        assert_eq!(errors.len(), 1, "{ty}: {errors:?}");
        assert!(
            errors[0].starts_with(&format!(
                "updates_acpi: the request's target_type {ty} has no accessControlPolicyIDs"
            )),
            "{errors:?}"
        );
    }
    assert!(
        decision_request_from_pb(
            &request_with_acpi_change(pb::Operation::Update, Some(2)),
            Utc::now()
        )
        .is_ok()
    );

    let errors = decision_request_from_pb(
        &request_with_acpi_change(pb::Operation::Retrieve, Some(1)),
        Utc::now(),
    )
    .unwrap_err();
    let status = invalid_argument(&errors);
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad = status.get_details_bad_request().expect("BadRequest detail");
    assert_eq!(bad.field_violations.len(), 2);
    assert!(
        bad.field_violations
            .iter()
            .all(|v| v.field == "updates_acpi"),
        "{bad:?}"
    );
}

fn request_with_acpi_change(op: pb::Operation, target_type: Option<u32>) -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: "Calice".into(),
        operation: op as i32,
        target: "cnt1".into(),
        target_type,
        updates_acpi: true,
        ..Default::default()
    }
}

#[test]
fn invalid_argument_carries_field_violations() {
    let errors = decision_request_from_pb(&pb::DecisionRequest::default(), Utc::now()).unwrap_err();
    let status = invalid_argument(&errors);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "originator: must not be empty; target: must not be empty; operation: 0 is not an operation (1-5)"
    );
    let bad = status.get_details_bad_request().expect("BadRequest detail");
    let got: Vec<(&str, &str)> = bad
        .field_violations
        .iter()
        .map(|v| (v.field.as_str(), v.description.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("originator", "must not be empty"),
            ("target", "must not be empty"),
            ("operation", "0 is not an operation (1-5)"),
        ]
    );
}

/// An INVALID_ARGUMENT status travels in HTTP/2 headers: a long message
/// is cut in its middle (at character boundaries, saying how long it was,
/// so that the reason after a long echoed value survives), and at most `MAX_VIOLATIONS` violations of at most
/// `MAX_VIOLATIONS_TOTAL_BYTES` in all are listed, so the status stays
/// below the 8 KiB of headers a gRPC C-core client takes.
#[test]
fn invalid_argument_stays_small_whatever_it_echoes() {
    use authz_proto::convert::{MAX_VIOLATION_BYTES, MAX_VIOLATIONS, MAX_VIOLATIONS_TOTAL_BYTES};
    // `'` and the x's fill all but one byte of the limit: the two-byte `é`
    // straddles it.
    let long = format!("{}é", "x".repeat(MAX_VIOLATION_BYTES - 2));
    let errors: Vec<ConversionError> = (0..MAX_VIOLATIONS + 5)
        .map(|i| ConversionError {
            field: format!("originator_location.country_codes[{i}]"),
            message: format!("'{long}' is not a country code"),
        })
        .collect();
    let status = invalid_argument(&errors);
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad = status.get_details_bad_request().expect("BadRequest detail");
    // As many as fit MAX_VIOLATIONS_TOTAL_BYTES, at most MAX_VIOLATIONS;
    // the others counted.
    let shown = bad.field_violations.len();
    assert!((1..=MAX_VIOLATIONS).contains(&shown), "{shown}");
    let total: usize = bad
        .field_violations
        .iter()
        .map(|v| v.field.len() + v.description.len())
        .sum();
    assert!(total <= MAX_VIOLATIONS_TOTAL_BYTES, "{total}");
    assert!(
        status
            .message()
            .ends_with(&format!("; and {} more", errors.len() - shown)),
        "{}",
        status.message()
    );
    let first = &bad.field_violations[0];
    assert_eq!(first.field, "originator_location.country_codes[0]");
    // The start and the end are kept: the reason after the long value
    // still reaches the client, with how long the message was.
    assert!(
        first.description.starts_with("'xxx"),
        "{}",
        first.description
    );
    assert!(
        first
            .description
            .contains(&format!("… ({} bytes) …", errors[0].message.len())),
        "{}",
        first.description
    );
    assert!(
        first.description.ends_with("xé' is not a country code"),
        "{}",
        first.description
    );
    assert!(
        first.description.len() <= MAX_VIOLATION_BYTES + 32,
        "{}",
        first.description.len()
    );
    // Cut inside a multi-byte character, either end stays whole.
    let wide = ConversionError {
        field: "hosting_sp_id".into(),
        message: format!("'{}' is not an SP-ID", "é".repeat(MAX_VIOLATION_BYTES)),
    };
    let status = invalid_argument(std::slice::from_ref(&wide));
    let bad = status.get_details_bad_request().expect("BadRequest detail");
    assert!(
        bad.field_violations[0]
            .description
            .ends_with("é' is not an SP-ID"),
        "{}",
        bad.field_violations[0].description
    );
    assert!(status.message().len() < 8 * 1024);
}

fn rule(acp: &str, kind: PrivilegeKind, index: usize) -> RuleRef {
    RuleRef {
        acp: acp.into(),
        privileges: kind,
        rule: index,
    }
}

fn deny_with_everything() -> Decision {
    Decision {
        effect: Effect::Deny,
        status: AuthorizationStatus::MissingAttribute,
        permitted_by: None,
        missing: vec![
            MissingAttribute::Role {
                role: "guest@roles.example.com".into(),
                reason: "PIP unreachable".into(),
            },
            MissingAttribute::GroupMembership {
                group: "/id-in/grp1".into(),
                reason: "no such group".into(),
            },
            MissingAttribute::Position {
                reason: "not in request".into(),
            },
            MissingAttribute::Country {
                reason: "not in request".into(),
            },
            MissingAttribute::DynamicAuthorization {
                das: "http://das.example.com:7300".into(),
                reason: "DAS unreachable".into(),
            },
            MissingAttribute::Token {
                id: "00ff@das.example.com".into(),
                reason: "token ID cannot be retrieved: DAS unreachable".into(),
            },
        ],
        explanation: Some(Explanation {
            matched_originator: None,
            failed_rules: vec![
                RuleFailure {
                    rule: rule("acpA", PrivilegeKind::Privileges, 0),
                    matched_originator: "CphoneApp".into(),
                    failed: FailedCondition::Operation {
                        requested: 4,
                        allowed: 34,
                    },
                },
                RuleFailure {
                    rule: rule("acpA", PrivilegeKind::Privileges, 1),
                    matched_originator: "all".into(),
                    failed: FailedCondition::AuthenticationFlag,
                },
                RuleFailure {
                    rule: rule("acpB", PrivilegeKind::SelfPrivileges, 2),
                    matched_originator: "guest@roles.example.com".into(),
                    failed: FailedCondition::Context {
                        elements: vec![
                            ContextFailure::TimeWindow {
                                next_open: Some(at("2026-11-24T08:00:00Z")),
                            },
                            ContextFailure::TimeWindow { next_open: None },
                            ContextFailure::IpAddress {
                                reason: "10.0.0.1 not in 192.168.1.0/24".into(),
                            },
                            ContextFailure::Location {
                                reason: "outside circle".into(),
                            },
                        ],
                    },
                },
                RuleFailure {
                    rule: rule("acpB", PrivilegeKind::Privileges, 3),
                    matched_originator: "Cowner".into(),
                    failed: FailedCondition::ObjectDetails {
                        elements: vec!["chty lacks 4".into()],
                    },
                },
            ],
            more_failed_rules: 3,
        }),
    }
}

#[test]
fn decision_encodes_decodes_and_converts_back() {
    let d = deny_with_everything();
    let mut wire = decision_to_pb(&d);
    assert_eq!(wire.decision, pb::AuthorizationDecision::Deny as i32);
    assert_eq!(
        wire.status,
        pb::AuthorizationStatus::MissingAttribute as i32
    );
    assert_eq!(wire.missing[1].attribute, "group_membership");
    assert_eq!(wire.missing[1].name, "/id-in/grp1");
    assert!(
        wire.summary.starts_with(
            "DENY (missing attribute): missing role guest@roles.example.com: PIP unreachable; "
        ),
        "{}",
        wire.summary
    );
    assert!(
        wire.summary
            .contains("acpB.pvs.acr[2]: no acco element matched")
    );
    // The rules an explanation counts but does not list.
    assert_eq!(wire.explanation.as_ref().unwrap().more_failed_rules, 3);
    assert!(
        wire.summary.ends_with("; 3 more rules failed"),
        "{}",
        wire.summary
    );

    // The PDP fills in its own fields.
    wire.decision_id = "dec-1".into();
    wire.policy_revision = 42;
    wire.request_id = "rqi-17".into();
    wire.assigned_token_ids = vec![pb::LocalTokenIdAssignment {
        local_token_id: "lt1".into(),
        token_id: "tk42@das.example.com".into(),
    }];
    wire.token_request_info = Some(pb::TokenRequestInfo {
        das_info: vec![pb::DasInfo {
            uri: "http://das.example.com/das".into(),
            das_request: Some(pb::DasRequest {
                originator: "//sp.example.com/id-in/CphoneApp".into(),
                operation: pb::Operation::Update as i32,
                targeted_resource_type: Some(3),
                targeted_resource_id: "/id-in/cnt7Xk2".into(),
                role_ids_from_acps: vec!["guest@roles.example.com".into()],
                ..Default::default()
            }),
            secured_das_request: String::new(),
        }],
    });

    let bytes = wire.encode_to_vec();
    let decoded = pb::Decision::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(decoded, wire);
    assert_eq!(decision_from_pb(&decoded), Ok(d));
}

#[test]
fn permit_summary_and_round_trip() {
    let d = Decision {
        effect: Effect::Permit,
        status: AuthorizationStatus::Ok,
        permitted_by: Some(rule("acpA", PrivilegeKind::Privileges, 0)),
        missing: vec![],
        explanation: Some(Explanation {
            matched_originator: Some("CphoneApp".into()),
            failed_rules: vec![],
            more_failed_rules: 0,
        }),
    };
    let wire = decision_to_pb(&d);
    assert_eq!(wire.summary, "PERMIT by acpA.pv.acr[0] (acor 'CphoneApp')");
    assert_eq!(
        wire.permitted_by,
        Some(pb::RuleRef {
            acp_id: "acpA".into(),
            privileges: pb::PrivilegeKind::Privileges as i32,
            rule_index: 0,
        })
    );
    assert_eq!(decision_from_pb(&wire_round_trip(&wire)), Ok(d));

    let not_applicable = Decision {
        effect: Effect::Deny,
        status: AuthorizationStatus::NotApplicable,
        permitted_by: None,
        missing: vec![],
        explanation: None,
    };
    assert_eq!(
        decision_to_pb(&not_applicable).summary,
        "DENY (not applicable): no rule of the applicable policies names the originator"
    );
}

#[test]
fn malformed_wire_decision_is_rejected() {
    let wire = pb::Decision {
        decision: 0,
        status: 7,
        missing: vec![pb::MissingAttribute {
            attribute: "mood".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let errors = decision_from_pb(&wire).unwrap_err();
    assert_eq!(
        fields(&errors),
        ["decision", "status", "missing[0].attribute"]
    );
}

#[test]
fn descriptor_set_lists_the_package() {
    let fds = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("decodes");
    let names: Vec<&str> = fds.file.iter().map(|f| f.name()).collect();
    for file in [
        "onem2m/authz/v1/acp.proto",
        "onem2m/authz/v1/decision.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
    ] {
        assert!(names.contains(&file), "{file} missing from {names:?}");
    }
    let decision = fds
        .file
        .iter()
        .find(|f| f.name() == "onem2m/authz/v1/decision.proto")
        .unwrap();
    assert_eq!(decision.package(), "onem2m.authz.v1");
    let messages: Vec<&str> = decision.message_type.iter().map(|m| m.name()).collect();
    for m in [
        "DecisionRequest",
        "Decision",
        "DasRequest",
        "DasResponse",
        "DynamicAcpInfo",
    ] {
        assert!(messages.contains(&m), "{m}");
    }
}

/// Spec notes §2.3 / TS-0001 10.2.3.1: an ACP and the types without acpi
/// (contentInstance and the other subordinate types) cannot carry `acpi`,
/// and the latter take their parent's policies, so they need `parent_id`.
#[test]
fn types_without_acpi_reject_acpi_and_need_a_parent() {
    use authz_core::resources::{TY_ACP, TYPES_WITHOUT_ACPI};
    use authz_proto::convert::resource_from_pb;
    let resource = |ty: u32, parent: &str, acpi_set: bool| pb::TargetResource {
        resource_id: "r".into(),
        parent_id: parent.into(),
        resource_type: ty,
        acpi_set,
        ..Default::default()
    };
    let errors = |r: &pb::TargetResource| {
        resource_from_pb(r, "resource")
            .err()
            .map(|e| e.into_iter().map(|e| e.field).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    for ty in TYPES_WITHOUT_ACPI {
        assert_eq!(
            errors(&resource(ty, "cnt", true)),
            ["resource.acpi"],
            "{ty}"
        );
        assert_eq!(
            errors(&resource(ty, "", false)),
            ["resource.parent_id"],
            "{ty}"
        );
        assert_eq!(
            errors(&resource(ty, "", true)),
            ["resource.acpi", "resource.parent_id"],
            "{ty}"
        );
        assert!(errors(&resource(ty, "cnt", false)).is_empty(), "{ty}");
    }
    // An ACP is created with its rules (CreateAcp), never as a resource.
    assert_eq!(
        errors(&resource(TY_ACP, "cb", true)),
        ["resource.resource_type"]
    );
    assert_eq!(
        errors(&resource(TY_ACP, "", false)),
        ["resource.resource_type"]
    );
    // A type with acpi: set, unset, with or without a parent.
    for (parent, acpi_set) in [("", true), ("cb", true), ("", false)] {
        assert!(errors(&resource(3, parent, acpi_set)).is_empty());
    }
}

/// Spec notes §6.4: `daci` sits on every type that has `acpi`, and only
/// there: the types without acpi (which use their parent's DAC, TS-0001
/// 9.6.1.3.2) cannot carry it (and an ACP is no resource record at all).
#[test]
fn types_without_acpi_reject_daci() {
    use authz_core::resources::{TY_ACP, TYPES_WITHOUT_ACPI};
    use authz_proto::convert::resource_from_pb;
    let resource = |ty: u32, parent: &str, acpi_set: bool| pb::TargetResource {
        resource_id: "r".into(),
        parent_id: parent.into(),
        resource_type: ty,
        acpi_set,
        daci: vec!["dac1".into()],
        ..Default::default()
    };
    let errors = |r: &pb::TargetResource| {
        resource_from_pb(r, "resource")
            .err()
            .map(|e| e.into_iter().map(|e| e.field).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    for ty in TYPES_WITHOUT_ACPI {
        assert_eq!(
            errors(&resource(ty, "cnt", false)),
            ["resource.daci"],
            "{ty}"
        );
    }
    assert_eq!(
        errors(&resource(TY_ACP, "cnt", false)),
        ["resource.resource_type"]
    );
    for ty in TYPES_WITHOUT_ACPI {
        assert_eq!(
            errors(&resource(ty, "", true)),
            ["resource.acpi", "resource.daci", "resource.parent_id"],
            "{ty}"
        );
    }
    // A type with acpi may link DACs, with acpi set or not.
    for (parent, acpi_set) in [("", true), ("cb", false)] {
        assert!(errors(&resource(3, parent, acpi_set)).is_empty());
    }
}

/// A status travels in headers: with its details (`grpc-status-details-bin`,
/// base64, repeating the message) they stay under 8 KiB, the default cap of
/// clients on gRPC's C core (Python, C++), which otherwise lose the status
/// for a RESOURCE_EXHAUSTED of their own; the violations that do not fit
/// are counted in the message.
#[test]
fn a_status_of_many_long_violations_fits_8_kib_of_headers() {
    let errors: Vec<ConversionError> = (0..20)
        .map(|i| ConversionError {
            field: format!("resource.acpi[{i}]"),
            message: format!("'a b{}{i}' is not an ACP ID", "x".repeat(1000)),
        })
        .collect();
    let status = invalid_argument(&errors);
    let response: http::Response<()> = status.clone().into_http();
    let bytes: usize = response
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    assert!(bytes < 8192, "{bytes} bytes of headers");
    let bad = status.get_details_bad_request().expect("BadRequest detail");
    assert!(!bad.field_violations.is_empty());
    assert_eq!(bad.field_violations[0].field, "resource.acpi[0]");
    let more = errors.len() - bad.field_violations.len();
    assert!(more > 0);
    assert!(
        status.message().ends_with(&format!("; and {more} more")),
        "{}",
        status.message()
    );
}

/// An empty `Specialization` in a decision request is absent, as in a
/// policy's object details and as `"spty": {}` is in a request document
/// (Decision 11), not an INVALID_ARGUMENT.
#[test]
fn an_empty_specialization_in_a_request_is_absent() {
    let req = pb::DecisionRequest {
        originator: "Calice".into(),
        operation: pb::Operation::Create as i32,
        target: "cnt1".into(),
        resource_type: Some(13),
        specialization: Some(pb::Specialization::default()),
        ..Default::default()
    };
    let converted = decision_request_from_pb(&req, Utc::now()).expect("converts");
    assert_eq!(converted.request.specialization, None);
}
