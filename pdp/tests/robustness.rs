//! Whatever a client sends, the PDP answers (developers' guide; TS-0003
//! 7.1.4: what cannot be determined is a Deny): arbitrary decision requests
//! (malformed IDs, unknown operations and resource types, timestamps out of
//! range, non-finite positions, junk tokens, unknown hosting CSEs and ACP
//! IDs) against policies using every rule component, over real gRPC. A
//! unary `Decide` gives a decision or INVALID_ARGUMENT naming fields; a
//! `DecideBatch` gives one decision per request, in order, each PERMIT or
//! DENY with an explanation; and the PDP keeps serving afterwards. A panic
//! in a handler would drop the call, and the test with it.

mod common;

use authz_proto::pb;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_tests::arbitrary::hostile_f64;
use common::*;
use proptest::prelude::*;
use tonic::Code;

const PERMIT: i32 = pb::AuthorizationDecision::Permit as i32;
const DENY: i32 = pb::AuthorizationDecision::Deny as i32;

/// An ACP whose one rule uses every component of table 7.1.3-1.
fn rich_acp() -> pb::AccessControlPolicy {
    let mut a = acp("acpRich", &["Cphone"], 63);
    let ctx = |time: &[&str], ip: Option<pb::IpAddresses>, region| pb::AccessControlContext {
        time_windows: time.iter().map(|s| s.to_string()).collect(),
        ip_addresses: ip,
        location_region: region,
    };
    let rule = pb::AccessControlRule {
        originators: vec![
            "Cphone".into(),
            "C*".into(),
            "/id-mn*/Cmeter*".into(),
            "//partner.example.net".into(),
            "admin@sp.example.com".into(),
            "grp1".into(),
        ],
        operations: 63,
        contexts: vec![
            ctx(
                &["* * 8-18 * * 1-5 *", "0 0 0 1 1 * 2030-2040"],
                Some(pb::IpAddresses {
                    ipv4: vec!["10.0.0.0/8".into()],
                    ipv6: vec!["fd00::/8".into(), "::ffff:192.168.0.0/112".into()],
                }),
                None,
            ),
            ctx(
                &[],
                None,
                Some(pb::LocationRegion {
                    region: Some(pb::location_region::Region::Circle(pb::Circle {
                        latitude: 50.0,
                        longitude: 8.0,
                        radius_m: 1_000.0,
                    })),
                }),
            ),
            ctx(
                &[],
                None,
                Some(pb::LocationRegion {
                    region: Some(pb::location_region::Region::CountryCodes(
                        pb::CountryCodes {
                            codes: vec!["DE".into(), "FR".into()],
                        },
                    )),
                }),
            ),
        ],
        authentication_flag: Some(true),
        object_details: vec![
            pb::ObjectDetails {
                resource_type: Some(3),
                specialization: None,
                child_resource_types: vec![4],
            },
            pb::ObjectDetails {
                resource_type: None,
                specialization: Some(pb::Specialization {
                    kind: Some(pb::specialization::Kind::MgmtDefinition(1001)),
                }),
                child_resource_types: Vec::new(),
            },
        ],
    };
    if let Some(pv) = a.privileges.as_mut() {
        pv.rules.push(rule);
    }
    a
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("*".to_owned()),
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just("///".to_owned()),
        Just("all".to_owned()),
        Just("Cphone".to_owned()),
        Just("Cphone/".to_owned()),
        Just("/id-mn1/Cmeter7".to_owned()),
        Just("//SP.Example.COM/id-in/Cphone".to_owned()),
        Just("//partner.example.net/cse/Cx".to_owned()),
        Just("Sxyz".to_owned()),
        Just("admin@sp.example.com".to_owned()),
        Just("@".to_owned()),
        Just("a@B_".to_owned()),
        Just("grp1".to_owned()),
        Just("cnt".to_owned()),
        Just("cin".to_owned()),
        Just("acpRich".to_owned()),
        Just("x".repeat(5_000)),
        Just("y".repeat(40_000)),
        Just("C\u{0}".to_owned()),
        Just("Cé\u{202e}".to_owned()),
        Just("eyJhbGciOiJub25lIn0.e30.".to_owned()),
        Just("a.b.c".to_owned()),
        Just("a.b.c.d.e".to_owned()),
        "\\PC{0,24}",
        "[a-zA-Z0-9/@.*_-]{0,40}",
    ]
}

fn any_texts() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(any_text(), 0..3)
}

fn any_request() -> impl Strategy<Value = pb::DecisionRequest> {
    let ids = (
        any_text(),
        any_texts(),
        any_texts(),
        any_texts(),
        any_texts(),
        any_text(),
        prop::option::of(any_text()),
        prop::option::of(any_text()),
        any_texts(),
        any_text(),
    );
    let kinds = (
        prop_oneof![-3..=8i32, any::<i32>()],
        prop::option::of(prop_oneof![0..=70u32, any::<u32>()]),
        prop::option::of(prop_oneof![0..=70u32, any::<u32>()]),
        prop::option::of(prop_oneof![
            any::<u32>().prop_map(pb::specialization::Kind::MgmtDefinition),
            any_text().prop_map(pb::specialization::Kind::ContainerDefinition),
        ]),
        prop::option::of((prop_oneof![any::<i64>(), 0..4_102_444_800i64], any::<i32>())),
        any::<[bool; 6]>(),
    );
    let place = (
        prop::option::of(prop_oneof![
            any_text().prop_map(pb::ip_address::Address::Ipv4),
            any_text().prop_map(pb::ip_address::Address::Ipv6),
            Just(pb::ip_address::Address::Ipv4("10.1.2.3".into())),
            Just(pb::ip_address::Address::Ipv6("::ffff:192.168.0.1".into())),
        ]),
        prop::option::of((
            prop::option::of((hostile_f64(), hostile_f64(), hostile_f64())),
            any_texts(),
        )),
    );
    (ids, kinds, place).prop_map(
        |(
            (
                originator,
                role_ids,
                tokens,
                token_ids,
                local_token_ids,
                target,
                cse,
                sp,
                acp_ids,
                rqi,
            ),
            (operation, target_type, resource_type, spec, time, flags),
            (ip, location),
        )| pb::DecisionRequest {
            originator,
            role_ids,
            tokens,
            token_ids,
            local_token_ids,
            token_request_indicator: flags[0],
            operation,
            discovery: flags[1],
            target,
            target_type,
            resource_type,
            specialization: spec.map(|kind| pb::Specialization { kind: Some(kind) }),
            request_time: time.map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
            originator_ip: ip.map(|address| pb::IpAddress {
                address: Some(address),
            }),
            originator_location: location.map(|(position, country_codes)| pb::OriginatorLocation {
                position: position.map(|(latitude, longitude, uncertainty_m)| pb::Position {
                    latitude,
                    longitude,
                    uncertainty_m,
                }),
                country_codes,
            }),
            authenticated: flags[2],
            hosting_cse_id: cse.unwrap_or_default(),
            hosting_sp_id: sp.unwrap_or_default(),
            acp_ids,
            explain: flags[3],
            request_id: rqi,
            updates_acpi: flags[4],
        },
    )
}

#[test]
fn any_request_gets_a_decision_or_invalid_argument_and_the_pdp_keeps_serving() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (pdp, client, _server) = rt.block_on(async {
        let mut cin = resource("cin", None, "Cphone");
        cin.resource_type = 4;
        cin.parent_id = "cnt".into();
        cin.acpi_set = false;
        let pdp = pdp_with(&[snapshot_event(
            1,
            vec![rich_acp(), acp("acpPlain", &["all"], 2)],
            vec![
                resource("cnt", Some(&["acpRich", "acpPlain"]), "Ccreator"),
                resource("cnt2", None, "Ccreator"),
                cin,
            ],
        )]);
        let (channel, server) = serve_pdp(&pdp).await;
        (pdp, PolicyDecisionPointClient::new(channel), server)
    });
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(requests in prop::collection::vec(any_request(), 1..48))| {
        let (unary, batch) = rt.block_on(async {
            let mut unary = Vec::new();
            for r in requests.iter().take(4) {
                unary.push(client.clone().decide(r.clone()).await);
            }
            let batch = client
                .clone()
                .decide_batch(pb::DecideBatchRequest { requests: requests.clone() })
                .await;
            (unary, batch)
        });
        for (r, answer) in requests.iter().zip(unary) {
            match answer {
                Ok(d) => {
                    let d = d.into_inner();
                    prop_assert!(d.decision == PERMIT || d.decision == DENY, "{d:?}");
                    prop_assert!(d.explanation.is_some(), "{d:?}");
                }
                Err(status) => {
                    prop_assert_eq!(status.code(), Code::InvalidArgument, "{:?} for {:?}", status, r);
                }
            }
        }
        let batch = batch.map_err(|s| TestCaseError::fail(format!("batch: {s:?}")))?.into_inner();
        prop_assert_eq!(batch.decisions.len(), requests.len());
        for (r, d) in requests.iter().zip(&batch.decisions) {
            prop_assert_eq!(&d.request_id, &r.request_id);
            prop_assert!(d.decision == PERMIT || d.decision == DENY, "{d:?}");
            prop_assert!(d.explanation.is_some(), "{d:?}");
            if d.decision == PERMIT {
                prop_assert_eq!(d.status, pb::AuthorizationStatus::Ok as i32, "{:?}", d);
            }
        }
    });
    // Still serving: the plain ACP grants everyone RETRIEVE on cnt.
    let d = rt.block_on(async {
        client
            .clone()
            .decide(request("Canyone", pb::Operation::Retrieve, "cnt"))
            .await
            .expect("decide")
            .into_inner()
    });
    assert_eq!(d.decision, PERMIT, "{d:?}");
    drop(pdp);
}
