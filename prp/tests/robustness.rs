//! Whatever a client sends, the PRP answers with a proper status and a
//! refused write changes nothing (developers' guide): arbitrary
//! `CreateAcp`, `UpdateAcp`, `DeleteAcp`, `PutResource`, `DeleteResource`,
//! `GetApplicablePolicies` and `CreateDynamicAcp` requests (empty,
//! white-space, 40 000-byte and unicode IDs, NaN circles, huge and unknown
//! enum values, out-of-range timestamps, junk time windows and CIDRs,
//! `other_attributes` of every JSON kind), by the admin, by permitted and by
//! unknown originators, against a real PRP on a redb store over gRPC, whose
//! resources include a parent chain deeper than resolution follows and a
//! child registered before its parent (whose registration under the child,
//! closing a cycle, is refused). Every answer is OK or a proper status, never INTERNAL or
//! UNKNOWN (a panicking handler or an HTTP/2 error would be one of those);
//! INVALID_ARGUMENT carries a `BadRequest` naming at least one field; an
//! answer other than OK leaves the store revision and every ACP as they
//! were; the PRP keeps serving; and after a restart on the same store it
//! sends the same snapshot.

mod common;

use std::time::Duration;

use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_tests::arbitrary::{hostile_f64, mostly, one_of, shown, some};
use common::*;
use proptest::prelude::*;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const ALL: u32 = 63;

/// How deep the seeded chain of contentInstance-typed resources goes:
/// past the 64 parents resolution follows.
const DEEP: usize = 70;

/// IDs the seeded state holds (ACPs, then resources), so that arbitrary
/// requests hit stored records as well as unknown ones.
const KNOWN_IDS: &[&str] = &[
    "acpOpen", "acpOwn", "cse", "ae1", "cnt", "cin", "deep0", "deep69", "deep70", "loopA", "loopB",
];

fn any_text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("\t".to_owned()),
        Just("*".to_owned()),
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just("all".to_owned()),
        Just("C*".to_owned()),
        Just("a b".to_owned()),
        Just("defaultPolicy:cnt".to_owned()),
        Just("//sp.example.com".to_owned()),
        Just("//sp.example.com/id-in/CAlice".to_owned()),
        Just("/id-in/cnt".to_owned()),
        Just("role@x.example.com".to_owned()),
        Just("@".to_owned()),
        Just("x".repeat(5_000)),
        Just("y".repeat(40_000)),
        Just("C\u{0}".to_owned()),
        Just("Cé\u{202e}".to_owned()),
        Just("\u{feff}acp".to_owned()),
        "\\PC{0,24}",
        "[a-zA-Z0-9/@.*_:-]{0,40}",
    ]
    .boxed()
}

/// A stored ID, a fresh well-formed one, or any text.
fn any_id() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            prop::sample::select(KNOWN_IDS).prop_map(str::to_owned),
            "[a-z]{1,3}[0-9]{0,2}",
        ],
        any_text(),
    )
}

/// A stored ACP's ID, a fresh one, or any text.
fn any_acp_id() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![one_of(&["acpOpen", "acpOwn"]), "acp[a-z0-9]{1,2}"],
        any_text(),
    )
}

/// A stored resource's ID, a fresh one, or any text.
fn any_resource_id() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            prop::sample::select(&KNOWN_IDS[2..]).prop_map(str::to_owned),
            "r[a-z0-9]{1,2}",
        ],
        any_text(),
    )
}

fn any_originator() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            3 => Just(ADMIN.to_owned()),
            1 => Just("//sp.example.com/CAdmin".to_owned()),
            2 => Just("CAlice".to_owned()),
            2 => Just("COther".to_owned()),
            1 => Just("CPdp".to_owned()),
        ],
        any_text(),
    )
}

/// A resource type: common ones, or any number.
fn any_type() -> BoxedStrategy<u32> {
    mostly(
        prop::sample::select(&[2u32, 3, 4, 5, 13, 16, 28, 34][..]),
        prop_oneof![0..=70u32, any::<u32>()],
    )
}

/// m2m:timestamp text: absent or valid, else impossible or junk.
fn any_time_text() -> BoxedStrategy<String> {
    mostly(
        one_of(&["", "", "20301231T235959"]),
        prop_oneof![
            one_of(&[
                "20300230T000000",
                "99999999T999999",
                "00000101T000000",
                "2030-12-31T23:59:59Z",
            ]),
            any_text(),
        ],
    )
}

/// A protobuf timestamp: far enough ahead to stay live for the whole test
/// (the sweeper must not change the store between two reads of a check),
/// else absent, past, at the edges of what chrono represents, or with junk
/// nanos.
fn any_timestamp() -> BoxedStrategy<Option<prost_types::Timestamp>> {
    let now = chrono::Utc::now().timestamp();
    let at = |(seconds, nanos)| Some(prost_types::Timestamp { seconds, nanos });
    mostly(
        ((now + 3_600)..(now + 100_000_000), 0..1_000_000_000i32).prop_map(at),
        prop_oneof![
            Just(None),
            (
                prop_oneof![
                    Just(now - 10),
                    Just(0i64),
                    Just(i64::MAX),
                    Just(i64::MIN),
                    Just(chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp()),
                    Just(chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp() + 1),
                    Just(chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp()),
                    any::<i64>(),
                ],
                prop_oneof![Just(0i32), any::<i32>()],
            )
                .prop_map(at),
            (
                Just(now + 7_200),
                prop_oneof![Just(-1i32), Just(1_000_000_000i32)]
            )
                .prop_map(at),
        ],
    )
}

fn any_window() -> BoxedStrategy<String> {
    mostly(
        one_of(&[
            "* * * * * * *",
            "* * 8-18 * * 1-5 *",
            "0 0 0 1 1 * 2030-2040",
            "*/15 * * * * * *",
        ]),
        prop_oneof![
            one_of(&[
                "0 0 0 31 2 * *",
                "* * * * * * 0-99999",
                "* * * * * * 9999999999",
                "60 * * * * * *",
                "*/0 * * * * * *",
                "1-0 * * * * * *",
                "* * * * *",
                "",
            ]),
            "[0-9*/,-]{1,6}( [0-9*/,-]{1,6}){6}",
            any_text(),
        ],
    )
}

fn any_cidr(v6: bool) -> BoxedStrategy<String> {
    let valid = if v6 {
        one_of(&["fd00::/8", "::ffff:192.168.0.0/112", "2001:db8::1"])
    } else {
        one_of(&["10.0.0.0/8", "192.168.1.7", "0.0.0.0/0"])
    };
    mostly(
        valid,
        prop_oneof![
            one_of(&[
                "10.0.0.0/33",
                "10.0.0.1/-1",
                "1.2.3.4/",
                "300.1.1.1",
                "::/129",
                "fe80::1%eth0",
                "fd00::/8",
                "10.0.0.0/8",
                "",
            ]),
            any_text(),
        ],
    )
}

fn any_region() -> BoxedStrategy<Option<pb::location_region::Region>> {
    use pb::location_region::Region;
    let codes = |codes| Some(Region::CountryCodes(pb::CountryCodes { codes }));
    let circle = |(latitude, longitude, radius_m)| {
        Some(Region::Circle(pb::Circle {
            latitude,
            longitude,
            radius_m,
        }))
    };
    mostly(
        prop_oneof![
            Just(None),
            some(one_of(&["DE", "FR", "JP"]), 2).prop_map(codes),
            (-90.0..=90.0f64, -180.0..=180.0f64, 0.0..1e6f64).prop_map(circle),
        ],
        prop_oneof![
            some(
                mostly(
                    one_of(&["DE"]),
                    prop_oneof![one_of(&["fr", "XX", "DEU", ""]), any_text()]
                ),
                3
            )
            .prop_map(codes),
            (hostile_f64(), hostile_f64(), hostile_f64()).prop_map(circle),
        ],
    )
}

fn any_context() -> BoxedStrategy<pb::AccessControlContext> {
    (
        some(any_window(), 2),
        prop::option::of((some(any_cidr(false), 2), some(any_cidr(true), 2))),
        prop::option::of(any_region()),
    )
        .prop_map(|(time_windows, ip, region)| pb::AccessControlContext {
            time_windows,
            ip_addresses: ip.map(|(ipv4, ipv6)| pb::IpAddresses { ipv4, ipv6 }),
            location_region: region.map(|region| pb::LocationRegion { region }),
        })
        .boxed()
}

fn any_specialization() -> BoxedStrategy<pb::Specialization> {
    let kind = mostly(
        prop_oneof![
            (1001..=1026u32).prop_map(pb::specialization::Kind::MgmtDefinition),
            Just(pb::specialization::Kind::ContainerDefinition(
                "org.onem2m.home.door".into()
            )),
        ]
        .prop_map(Some),
        prop_oneof![
            Just(None),
            any::<u32>().prop_map(|n| Some(pb::specialization::Kind::MgmtDefinition(n))),
            any_text().prop_map(|t| Some(pb::specialization::Kind::ContainerDefinition(t))),
        ],
    );
    kind.prop_map(|kind| pb::Specialization { kind }).boxed()
}

fn any_rule() -> BoxedStrategy<pb::AccessControlRule> {
    let originator = mostly(
        one_of(&[
            "all",
            ADMIN,
            "CAlice",
            "COther",
            "C*",
            "//sp.example.com",
            "guest@roles.example.com",
            "cnt",
        ]),
        any_text(),
    );
    let object_details = (
        prop::option::of(any_type()),
        prop::option::of(any_specialization()),
        mostly(prop::collection::vec(any_type(), 1..=2), Just(Vec::new())),
    )
        .prop_map(
            |(resource_type, specialization, child_resource_types)| pb::ObjectDetails {
                resource_type,
                specialization,
                child_resource_types,
            },
        );
    (
        mostly(prop::collection::vec(originator, 1..=2), Just(Vec::new())),
        mostly(prop_oneof![Just(ALL), 0..=63u32], any::<u32>()),
        prop_oneof![3 => Just(Vec::new()), 1 => some(any_context(), 2)],
        prop::option::of(any::<bool>()),
        prop_oneof![3 => Just(Vec::new()), 1 => some(object_details.boxed(), 2)],
    )
        .prop_map(
            |(originators, operations, contexts, authentication_flag, object_details)| {
                pb::AccessControlRule {
                    originators,
                    operations,
                    contexts,
                    authentication_flag,
                    object_details,
                }
            },
        )
        .boxed()
}

/// A set of rules; `non_empty` for a pvs (TS-0004 7.4.2.2.1), though now
/// and then empty anyway.
fn any_set(non_empty: bool) -> BoxedStrategy<pb::SetOfAcrs> {
    let rules = if non_empty {
        mostly(prop::collection::vec(any_rule(), 1..=2), Just(Vec::new()))
    } else {
        some(any_rule(), 2)
    };
    rules.prop_map(|rules| pb::SetOfAcrs { rules }).boxed()
}

/// A JSON-like value of every kind, numbers included that JSON cannot hold.
fn any_value() -> BoxedStrategy<prost_types::Value> {
    use prost_types::value::Kind;
    let leaf = prop_oneof![
        Just(None),
        Just(Some(Kind::NullValue(0))),
        Just(Some(Kind::NullValue(7))),
        any::<bool>().prop_map(|b| Some(Kind::BoolValue(b))),
        hostile_f64().prop_map(|f| Some(Kind::NumberValue(f))),
        any_text().prop_map(|s| Some(Kind::StringValue(s))),
    ]
    .prop_map(|kind| prost_types::Value { kind });
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|values| prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue { values })),
            }),
            prop::collection::btree_map(any_key(), inner, 0..3).prop_map(|fields| {
                prost_types::Value {
                    kind: Some(Kind::StructValue(prost_types::Struct { fields })),
                }
            }),
        ]
    })
    .boxed()
}

/// Attribute names: ones with a typed field, common ones, and any text.
fn any_key() -> BoxedStrategy<String> {
    prop_oneof![
        one_of(&[
            "lbl", "et", "adri", "apri", "airi", "ty", "ct", "lt", "cr", "pv", "pvs", "ri", "pi",
            "rn",
        ]),
        any_text(),
    ]
    .boxed()
}

fn any_acp() -> BoxedStrategy<pb::AccessControlPolicy> {
    let other = mostly(
        prop_oneof![
            Just(None),
            Just(Some(
                [("ty".to_owned(), 1.0), ("st".to_owned(), 0.0)]
                    .into_iter()
                    .map(|(k, n)| {
                        let kind = Some(prost_types::value::Kind::NumberValue(n));
                        (k, prost_types::Value { kind })
                    })
                    .collect()
            )),
        ],
        prop::option::of(prop::collection::btree_map(any_key(), any_value(), 0..3)),
    );
    let addresses = mostly(Just(Vec::new()), some(any_text(), 2));
    (
        mostly(any_acp_id().prop_map(Some), Just(None)),
        prop::option::of(any_text()),
        prop_oneof![Just(None), any_resource_id().prop_map(Some)],
        mostly(some(one_of(&["front", "door"]), 2), some(any_text(), 2)),
        any_time_text(),
        mostly(any_set(false).prop_map(Some), Just(None)),
        mostly(any_set(true).prop_map(Some), Just(None)),
        (addresses.clone(), addresses.clone(), addresses),
        other,
    )
        .prop_map(
            |(id, rn, pi, labels, et, pv, pvs, (adri, apri, airi), other)| {
                pb::AccessControlPolicy {
                    resource_id: id,
                    resource_name: rn,
                    parent_id: pi,
                    labels,
                    expiration_time: et,
                    privileges: pv,
                    self_privileges: pvs,
                    pdp_addresses: adri,
                    prp_addresses: apri,
                    pip_addresses: airi,
                    other_attributes: other.map(|fields| prost_types::Struct { fields }),
                }
            },
        )
        .boxed()
}

/// A resource: its attributes mostly consistent with its type (acpi only
/// when acpi_set, dac_* on a type 34, aei on an AE, csi on a remoteCSE),
/// now and then not.
fn any_resource() -> BoxedStrategy<pb::TargetResource> {
    let owner = || mostly(one_of(&["", "", "CAlice", "COther"]), any_text());
    (
        (
            any_resource_id(),
            mostly(
                prop_oneof![
                    prop::sample::select(&KNOWN_IDS[2..]).prop_map(str::to_owned),
                    Just(String::new())
                ],
                any_id(),
            ),
            any_type(),
            any::<bool>(),
            some(any_acp_id(), 2),
            mostly(Just(Vec::new()), some(any_id(), 2)),
        ),
        (
            owner(),
            owner(),
            any::<bool>(),
            mostly(Just(None), any::<Option<bool>>()),
            mostly(one_of(&["http://das.example.com"]), any_text()),
            any_time_text(),
            mostly(one_of(&["CAe1"]), any_text()),
            mostly(one_of(&["/id-mn"]), any_text()),
        ),
    )
        .prop_map(
            |(
                (resource_id, parent_id, resource_type, acpi_set, acpi, daci),
                (creator, custodian, dae, dac_junk, poa, dal, ae_id, cse_id),
            )| {
                let dac = resource_type == 34;
                pb::TargetResource {
                    resource_id,
                    parent_id,
                    resource_type,
                    acpi_set,
                    acpi: if acpi_set { acpi } else { Vec::new() },
                    daci,
                    creator,
                    custodian,
                    dac_enabled: if dac { Some(dae) } else { dac_junk },
                    dac_poa: if dac { vec![poa] } else { Vec::new() },
                    dac_lifetime: if dac { dal } else { String::new() },
                    ae_id: if resource_type == 2 {
                        ae_id
                    } else {
                        String::new()
                    },
                    cse_id: if resource_type == 16 {
                        cse_id
                    } else {
                        String::new()
                    },
                }
            },
        )
        .boxed()
}

/// One PRP request.
#[derive(Debug, Clone)]
enum Op {
    CreateAcp(pb::CreateAcpRequest),
    UpdateAcp(pb::UpdateAcpRequest),
    DeleteAcp(pb::DeleteAcpRequest),
    PutResource(pb::PutResourceRequest),
    DeleteResource(pb::DeleteResourceRequest),
    Applicable(pb::GetApplicablePoliciesRequest),
    Dynamic(pb::CreateDynamicAcpRequest),
    GetAcp(pb::GetAcpRequest),
    GetResource(pb::GetResourceRequest),
}

impl Op {
    fn is_write(&self) -> bool {
        !matches!(self, Op::Applicable(_) | Op::GetAcp(_) | Op::GetResource(_))
    }
}

fn any_op() -> BoxedStrategy<Op> {
    let acp = || mostly(any_acp().prop_map(Some), Just(None));
    prop_oneof![
        3 => (any_originator(), acp()).prop_map(|(originator, acp)| {
            Op::CreateAcp(pb::CreateAcpRequest { originator, acp, role_ids: Vec::new() })
        }),
        2 => (any_originator(), acp()).prop_map(|(originator, acp)| {
            Op::UpdateAcp(pb::UpdateAcpRequest { originator, acp, role_ids: Vec::new() })
        }),
        1 => (any_originator(), any_acp_id()).prop_map(|(originator, acp_id)| {
            Op::DeleteAcp(pb::DeleteAcpRequest { originator, acp_id, role_ids: Vec::new() })
        }),
        4 => (any_originator(), mostly(any_resource().prop_map(Some), Just(None))).prop_map(
            |(originator, resource)| Op::PutResource(pb::PutResourceRequest {
                originator,
                resource,
                role_ids: Vec::new(),
            })
        ),
        1 => (any_originator(), any_resource_id()).prop_map(|(originator, resource_id)| {
            Op::DeleteResource(pb::DeleteResourceRequest {
                originator,
                resource_id,
                role_ids: Vec::new(),
            })
        }),
        2 => (any_id(), any::<bool>()).prop_map(|(target, updates_acpi)| {
            Op::Applicable(pb::GetApplicablePoliciesRequest {
                target,
                updates_acpi,
            })
        }),
        2 => (
            mostly(Just("CPdp".to_owned()), any_originator()),
            any_resource_id(),
            prop_oneof![Just(String::new()), any_acp_id().prop_map(|id| format!("d{id}"))],
            mostly(any_set(false).prop_map(Some), Just(None)),
            any_timestamp(),
        )
            .prop_map(|(originator, target, acp_id, privileges, expires_at)| {
                Op::Dynamic(pb::CreateDynamicAcpRequest {
                    originator,
                    target,
                    acp_id,
                    privileges,
                    expires_at,
                })
            }),
        1 => any_id().prop_map(|acp_id| Op::GetAcp(pb::GetAcpRequest { acp_id })),
        1 => any_id().prop_map(|resource_id| Op::GetResource(pb::GetResourceRequest {
            resource_id
        })),
    ]
    .boxed()
}

type Client = PolicyRetrievalPointClient<Channel>;

/// Sends `op`; the status when it failed.
async fn send(client: &mut Client, op: Op) -> Result<(), tonic::Status> {
    match op {
        Op::CreateAcp(r) => client.create_acp(r).await.map(drop),
        Op::UpdateAcp(r) => client.update_acp(r).await.map(drop),
        Op::DeleteAcp(r) => client.delete_acp(r).await.map(drop),
        Op::PutResource(r) => client.put_resource(r).await.map(drop),
        Op::DeleteResource(r) => client.delete_resource(r).await.map(drop),
        Op::Applicable(r) => client.get_applicable_policies(r).await.map(drop),
        Op::Dynamic(r) => client.create_dynamic_acp(r).await.map(drop),
        Op::GetAcp(r) => client.get_acp(r).await.map(drop),
        Op::GetResource(r) => client.get_resource(r).await.map(drop),
    }
}

/// Whether `status` is one the PRP means for `op`: no INTERNAL, UNKNOWN
/// (what a panicking handler gives), UNAVAILABLE or other transport code,
/// and no HTTP/2 error the client reads as a status (a header block too
/// large for the peer); RESOURCE_EXHAUSTED only for the per-target bound of
/// `CreateDynamicAcp`; INVALID_ARGUMENT names at least one field.
fn check_status(status: &tonic::Status, op: &Op) -> Result<(), String> {
    if status.message().contains("h2 protocol error") {
        return Err(format!("an HTTP/2 error, not the PRP's status: {status:?}"));
    }
    match status.code() {
        Code::InvalidArgument => {
            let fields: Vec<String> = status
                .get_details_bad_request()
                .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                .unwrap_or_default();
            if fields.is_empty() || fields.iter().any(String::is_empty) {
                return Err(format!("INVALID_ARGUMENT without field names: {status:?}"));
            }
            Ok(())
        }
        Code::ResourceExhausted if matches!(op, Op::Dynamic(_)) => Ok(()),
        Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::OutOfRange => Ok(()),
        _ => Err(format!("not a proper status: {status:?}")),
    }
}

/// What a refused write must leave as it was: the store revision and every
/// ACP.
async fn state(
    client: &mut Client,
    service: &authz_prp::PrpService,
) -> Result<(u64, Vec<pb::AccessControlPolicy>), String> {
    let list = client
        .list_acps(pb::ListAcpsRequest::default())
        .await
        .map_err(|s| format!("ListAcps: {s:?}"))?
        .into_inner();
    Ok((service.revision(), list.acps))
}

/// The first event of a watch from revision 0: the whole stored state.
async fn snapshot(client: &mut Client) -> Result<pb::WatchEvent, String> {
    let mut watch = client
        .watch(pb::WatchRequest {
            from_revision: 0,
            from_tag: 0,
        })
        .await
        .map_err(|s| format!("Watch: {s:?}"))?
        .into_inner();
    watch
        .message()
        .await
        .map_err(|s| format!("snapshot: {s:?}"))?
        .ok_or_else(|| "no snapshot".to_owned())
}

fn admin_put(r: pb::TargetResource) -> pb::PutResourceRequest {
    put_req(ADMIN, r)
}

/// ACPs `acpOpen` (everyone may do everything, the admin and CAlice hold
/// its pvs) and `acpOwn` (CAlice alone); a CSEBase, an AE, a container
/// and a contentInstance; a chain of contentInstance-typed resources
/// deeper than resolution follows; and two that name each other as parent.
async fn seed(running: &mut Running) {
    let c = &mut running.client;
    for a in [
        acp("acpOpen", &["all"], &[ADMIN, "CAlice"], ALL),
        acp("acpOwn", &["CAlice"], &["CAlice"], ALL),
    ] {
        let mut a = a;
        if let Some(pv) = a.privileges.as_mut() {
            pv.rules[0].operations = ALL;
        }
        c.create_acp(create_req(ADMIN, a)).await.expect("seed ACP");
    }
    let mut ae = resource("ae1", "cse", 2, Some(&["acpOwn"]), "CAlice");
    ae.ae_id = "CAlice".into();
    for r in [
        resource("cse", "", 5, Some(&["acpOpen"]), ""),
        ae,
        resource("cnt", "ae1", 3, Some(&["acpOpen"]), "CAlice"),
        resource("cin", "cnt", 4, None, "CAlice"),
        resource("deep0", "cse", 3, Some(&["acpOpen"]), ""),
    ] {
        c.put_resource(admin_put(r)).await.expect("seed resource");
    }
    for i in 1..=DEEP {
        c.put_resource(admin_put(resource(
            &format!("deep{i}"),
            &format!("deep{}", i - 1),
            4,
            None,
            "",
        )))
        .await
        .expect("seed chain");
    }
    // A parent the admin may name before it exists; registering that
    // parent under its child would close a cycle, refused as bad input
    // and changing nothing.
    c.put_resource(admin_put(resource("loopA", "loopB", 4, None, "")))
        .await
        .expect("seed a resource under a parent not registered yet");
    let refused = c
        .put_resource(admin_put(resource("loopB", "loopA", 4, None, "")))
        .await
        .expect_err("a cycle of parents");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("resource.parent_id")
            && refused.message().contains("loopB → loopA → loopB"),
        "{refused:?}"
    );
}

#[test]
fn any_request_gets_a_proper_status_refusals_change_nothing_and_the_prp_keeps_serving() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = temp_dir("robustness");
    let mut prp_config = config();
    prp_config.data_dir = Some(dir.path().to_path_buf());
    // Generated lifetimes end an hour or more from now: no sweep may change
    // the store between the two reads of a check.
    prp_config.sweep_interval = Duration::from_secs(3_600);
    let mut running = rt.block_on(async {
        let mut running = start(prp_config.clone()).await;
        seed(&mut running).await;
        running
    });
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in prop::collection::vec(any_op(), 1..12))| {
        let mut client = running.client.clone();
        let service = &running.service;
        let outcome: Result<(), String> = rt.block_on(async {
            for op in ops {
                let before = state(&mut client, service).await?;
                let answer = send(&mut client, op.clone()).await;
                if let Err(status) = &answer {
                    check_status(status, &op).map_err(|e| format!("{e}\nfor {}", shown(&op)))?;
                }
                let after = state(&mut client, service)
                    .await
                    .map_err(|e| format!("{e}\nafter {}", shown(&op)))?;
                match answer {
                    Ok(()) if op.is_write() => {}
                    Ok(()) => {
                        if before != after {
                            return Err(format!("a read changed the store: {}", shown(&op)));
                        }
                    }
                    Err(status) => {
                        if before != after {
                            return Err(format!(
                                "refused with {:?} ({}) yet the store changed: revision {} -> {}\nfor {}",
                                status.code(),
                                status.message(),
                                before.0,
                                after.0,
                                shown(&op)
                            ));
                        }
                    }
                }
            }
            // A watcher's snapshot holds everything stored: every stored
            // record converts to its wire form.
            snapshot(&mut client).await.map(drop)
        });
        outcome.map_err(TestCaseError::fail)?;
    });
    // Still serving: the admin creates an ACP under the CSEBase, and reads
    // what applies to it. And what was stored loads again: a restart on the
    // same store sends the same snapshot.
    rt.block_on(async {
        let c = &mut running.client;
        // Under a CSEBase of its own: the random writes may have made `cse`
        // a resource no ACP can be created under.
        c.put_resource(put_req(
            ADMIN,
            // No acpi: the random writes may have deleted every ACP, and a
            // put may add references to stored ACPs only.
            resource("cseAfterwards", "", 5, None, ""),
        ))
        .await
        .expect("still serving writes");
        let mut fresh = acp("acpAfterwards", &["all"], &[ADMIN], ALL);
        fresh.parent_id = Some("cseAfterwards".into());
        c.create_acp(create_req(ADMIN, fresh))
            .await
            .expect("still serving writes");
        c.get_applicable_policies(pb::GetApplicablePoliciesRequest {
            target: "acpAfterwards".into(),
            updates_acpi: false,
        })
        .await
        .expect("still serving reads");
        let stored = snapshot(c).await.expect("a snapshot");
        running.shutdown().await;
        let mut restarted = start(prp_config).await;
        let reloaded = snapshot(&mut restarted.client)
            .await
            .expect("a snapshot after a restart");
        assert_eq!(reloaded, stored, "the store loads as it was");
        restarted.shutdown().await;
    });
}
