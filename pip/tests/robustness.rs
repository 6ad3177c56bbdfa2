//! Whatever a client sends, the PIP answers with a proper status and a
//! refused write changes nothing (developers' guide): arbitrary role,
//! token, group and position writes and reads, `LocateIp`,
//! `LocatePosition` and `ResolveAttributes` (empty, white-space,
//! 40 000-byte and unicode IDs, malformed Role-IDs and JWTs, NaN and
//! infinite coordinates and uncertainties, out-of-range timestamps and
//! nanos, junk IP addresses), by the admin, by a location source and by
//! others, against a real PIP (redb store, an IP table, the country
//! boundaries) over gRPC. Every answer is OK or a proper status, never
//! INTERNAL or UNKNOWN (a panicking handler or an HTTP/2 error would be
//! one of those); INVALID_ARGUMENT carries a `BadRequest` naming at least
//! one field; an answer other than OK, and every read, leaves the store
//! revision, the roles and the groups as they were; the PIP keeps serving;
//! and after a restart on the same store it answers the same roles,
//! groups, positions and tokens.

mod common;

use authz_pip::PipConfig;
use authz_proto::pb;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_tests::arbitrary::{hostile_f64, mostly, one_of, shown, temp_dir};
use chrono::Utc;
use common::Running;
use proptest::prelude::*;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const ADMIN: &str = "CAdmin";
const SOURCE: &str = "CLocationServer";
const AUTHORITY: &str = "//sp.example.com/id-in/CAuthority";

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
        Just("//sp.example.com".to_owned()),
        Just("//sp.example.com/id-in/Calice".to_owned()),
        Just("/id-in/grp1".to_owned()),
        Just("@".to_owned()),
        Just("x".repeat(5_000)),
        Just("y".repeat(40_000)),
        Just("C\u{0}".to_owned()),
        Just("Cé\u{202e}".to_owned()),
        "\\PC{0,24}",
        "[a-zA-Z0-9/@.*_-]{0,40}",
    ]
    .boxed()
}

fn any_texts() -> BoxedStrategy<Vec<String>> {
    prop::collection::vec(any_text(), 0..3).boxed()
}

/// An originator, holder, member or subject ID.
fn any_originator() -> BoxedStrategy<String> {
    mostly(
        one_of(&[
            "Calice",
            "Calice",
            "Cbob",
            "/id-mn/Cmeter",
            "//sp.example.com/id-in/Calice",
            "/id-mn",
            "Sxyz",
        ]),
        prop_oneof![
            one_of(&["all", "C*", "//sp.example.com", "guest@roles.example.com"]),
            any_text()
        ],
    )
}

/// Who asks for a write: mostly the admin (or the location source for a
/// position), so that writes pass as well as fail.
fn any_writer() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just(ADMIN.to_owned()),
        1 => Just("//sp.example.com/id-in/CAdmin".to_owned()),
        1 => Just(SOURCE.to_owned()),
        1 => any_originator(),
    ]
    .boxed()
}

/// A Role-ID or Token-ID: stored, well-formed, or not.
fn any_scoped_id() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            one_of(&["doctor@roles.example.com", "t1@das.example.com"]),
            "[a-z0-9._-]{1,8}@[a-z0-9-]{1,8}\\.example\\.com",
        ],
        prop_oneof![
            one_of(&[
                "guest@Roles.example.com",
                "guest@roles..com",
                "guest",
                "@x.com"
            ]),
            Just(format!("guest@{}.com", "a".repeat(64))),
            any_text(),
        ],
    )
}

fn any_scoped_ids() -> BoxedStrategy<Vec<String>> {
    prop::collection::vec(any_scoped_id(), 0..3).boxed()
}

fn any_group_id() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            one_of(&[
                "grp1",
                "/id-in/grp1",
                "//sp.example.com/id-in/grp1",
                "//other.example.net/cse/grp",
            ]),
            "[a-z]{1,4}[0-9]{0,2}",
        ],
        prop_oneof![
            one_of(&["all", "g*", "//sp.example.com", "r@x.example.com"]),
            any_text()
        ],
    )
}

/// A position: on land, at sea, near a pole or the antimeridian, with
/// any uncertainty from none to the whole Earth and beyond; else junk.
fn any_position() -> BoxedStrategy<pb::Position> {
    let at = |((latitude, longitude), uncertainty_m)| pb::Position {
        latitude,
        longitude,
        uncertainty_m,
    };
    mostly(
        (
            prop_oneof![
                Just((50.11, 8.68)),
                Just((22.3, 114.17)),
                Just((0.0, -30.0)),
                Just((89.999, 0.0)),
                Just((-90.0, 180.0)),
                Just((65.0, -179.999)),
                (-90.0..=90.0f64, -180.0..=180.0f64),
            ],
            prop_oneof![
                Just(0.0),
                Just(10.0),
                Just(50_000.0),
                Just(20_000_000.0),
                Just(1e12),
                Just(f64::MAX),
                0.0..1e7f64,
            ],
        )
            .prop_map(at),
        ((hostile_f64(), hostile_f64()), hostile_f64()).prop_map(at),
    )
}

/// A protobuf timestamp: around now, else absent, at the edges of what
/// chrono represents, or with junk nanos.
fn any_timestamp() -> BoxedStrategy<Option<prost_types::Timestamp>> {
    let now = Utc::now().timestamp();
    let at = |(seconds, nanos)| Some(prost_types::Timestamp { seconds, nanos });
    mostly(
        prop_oneof![
            Just(None),
            ((now - 100_000)..(now + 100_000), 0..1_000_000_000i32).prop_map(at),
        ],
        prop_oneof![
            Just(None),
            (
                prop_oneof![
                    Just(now + 3),
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
            (Just(now), prop_oneof![Just(-1i32), Just(1_000_000_000i32)]).prop_map(at),
        ],
    )
}

/// A validity period: mostly both ends, in order, around now.
fn any_validity() -> BoxedStrategy<(
    Option<prost_types::Timestamp>,
    Option<prost_types::Timestamp>,
)> {
    let now = Utc::now().timestamp();
    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    mostly(
        ((now - 100_000)..now, 1..200_000i64).prop_map(move |(nb, len)| (at(nb), at(nb + len))),
        (any_timestamp(), any_timestamp()),
    )
}

fn any_ip() -> BoxedStrategy<String> {
    mostly(
        one_of(&[
            "10.1.2.3",
            "::ffff:10.1.2.3",
            "2001:db8::1",
            "192.0.2.1",
            "::",
        ]),
        prop_oneof![
            one_of(&["300.1.1.1", "10.0.0.0/8", "fe80::1%eth0", "", " 10.1.2.3"]),
            any_text(),
        ],
    )
}

fn any_jwt() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            Just("eyJhbGciOiJub25lIn0.e30.sig".to_owned()),
            Just("a.b.c.d.e".to_owned()),
            "[A-Za-z0-9_-]{1,20}\\.[A-Za-z0-9_-]{1,20}\\.[A-Za-z0-9_-]{0,20}",
        ],
        prop_oneof![
            one_of(&["a.b", "a.b.c=", "", "a..b.c.d.e.f"]),
            Just(format!("{}.b.c", "a".repeat(40_000))),
            any_text(),
        ],
    )
}

/// Text kept as given (names, links, versions): anything.
fn any_label() -> BoxedStrategy<String> {
    mostly(one_of(&["", "a name"]), any_text())
}

fn any_role() -> BoxedStrategy<pb::Role> {
    (
        any_scoped_id(),
        mostly(
            one_of(&[AUTHORITY, AUTHORITY, "//sp.example.com", "/id-in/COther"]),
            prop_oneof![
                one_of(&["all", "guest@roles.example.com", "C*"]),
                any_text()
            ],
        ),
        any_originator(),
        any_validity(),
        any_label(),
        any_label(),
    )
        .prop_map(
            |(role_id, issuer, holder, (not_before, not_after), role_name, token_link)| pb::Role {
                role_id,
                issuer,
                holder,
                not_before,
                not_after,
                role_name,
                token_link,
            },
        )
        .boxed()
}

fn any_token() -> BoxedStrategy<pb::Token> {
    let optional_id = || {
        mostly(
            prop_oneof![Just(String::new()), any_originator()],
            any_text(),
        )
    };
    (
        (any_scoped_id(), any_jwt(), any_label(), optional_id()),
        (
            optional_id(),
            prop_oneof![any_validity(), (any_timestamp(), any_timestamp())],
        ),
        (
            any_label(),
            mostly(
                prop::collection::vec(one_of(&["/id-in", "//sp.example.com/id-mn"]), 0..3),
                any_texts(),
            ),
            mostly(
                one_of(&["", r#"{"rset": []}"#]),
                prop_oneof![
                    one_of(&["{", "1e999", "[1,]"]),
                    Just("[".repeat(200)),
                    Just(format!("{}{}", "[".repeat(5_000), "]".repeat(5_000))),
                    any_text(),
                ],
            ),
            any_label(),
        ),
        // `<token>`'s localTokenID: an NCName or not (TS-0001 7.1.16).
        mostly(one_of(&["", "lt1", "lt-a.b_c", "lt2"]), any_text()),
    )
        .prop_map(
            |(
                (token_id, token_object, version, issuer),
                (holder, (not_before, not_after)),
                (token_name, audience, permissions_json, extension),
                local_token_id,
            )| pb::Token {
                token_id,
                token_object,
                version,
                issuer,
                holder,
                not_before,
                not_after,
                token_name,
                audience,
                permissions_json,
                extension,
                local_token_id,
            },
        )
        .boxed()
}

/// One PIP request.
#[derive(Debug, Clone)]
enum Op {
    CreateRole(pb::CreateRoleRequest),
    DeleteRole(pb::DeleteRoleRequest),
    UpdateRoleTokenLink(pb::UpdateRoleTokenLinkRequest),
    GetRole(pb::GetRoleRequest),
    ListRoles(pb::ListRolesRequest),
    ResolveRoles(pb::ResolveRolesRequest),
    PutToken(pb::PutTokenRequest),
    GetTokens(pb::GetTokensRequest),
    DeleteToken(pb::DeleteTokenRequest),
    PutGroup(pb::PutGroupRequest),
    GetGroup(pb::GetGroupRequest),
    DeleteGroup(pb::DeleteGroupRequest),
    CheckMembership(pb::CheckMembershipRequest),
    ReportPosition(pb::ReportPositionRequest),
    GetPosition(pb::GetPositionRequest),
    LocateIp(pb::LocateIpRequest),
    LocatePosition(pb::LocatePositionRequest),
    ResolveAttributes(pb::ResolveAttributesRequest),
}

impl Op {
    fn is_write(&self) -> bool {
        matches!(
            self,
            Op::CreateRole(_)
                | Op::DeleteRole(_)
                | Op::UpdateRoleTokenLink(_)
                | Op::PutToken(_)
                | Op::DeleteToken(_)
                | Op::PutGroup(_)
                | Op::DeleteGroup(_)
                | Op::ReportPosition(_)
        )
    }
}

fn any_op() -> BoxedStrategy<Op> {
    let writes = prop_oneof![
        (any_writer(), mostly(any_role().prop_map(Some), Just(None))).prop_map(
            |(originator, role)| { Op::CreateRole(pb::CreateRoleRequest { originator, role }) }
        ),
        (any_writer(), any_scoped_id(), any_originator()).prop_map(
            |(originator, role_id, holder)| Op::DeleteRole(pb::DeleteRoleRequest {
                originator,
                role_id,
                holder,
            })
        ),
        (
            any_writer(),
            any_scoped_id(),
            any_originator(),
            mostly(Just("/id-in/tk1".to_owned()), any_text())
        )
            .prop_map(|(originator, role_id, holder, token_link)| {
                Op::UpdateRoleTokenLink(pb::UpdateRoleTokenLinkRequest {
                    originator,
                    role_id,
                    holder,
                    token_link,
                })
            }),
        (any_writer(), mostly(any_token().prop_map(Some), Just(None))).prop_map(
            |(originator, token)| { Op::PutToken(pb::PutTokenRequest { originator, token }) }
        ),
        (any_writer(), any_scoped_id()).prop_map(|(originator, token_id)| {
            Op::DeleteToken(pb::DeleteTokenRequest {
                originator,
                token_id,
            })
        }),
        (
            any_writer(),
            mostly(
                (
                    any_group_id(),
                    prop::collection::vec(any_originator(), 0..4)
                )
                    .prop_map(Some),
                Just(None)
            ),
        )
            .prop_map(|(originator, group)| Op::PutGroup(pb::PutGroupRequest {
                originator,
                group: group.map(|(group_id, member_ids)| pb::Group {
                    group_id,
                    member_ids,
                }),
            })),
        (any_writer(), any_group_id()).prop_map(|(originator, group_id)| {
            Op::DeleteGroup(pb::DeleteGroupRequest {
                originator,
                group_id,
            })
        }),
        (
            prop_oneof![Just(SOURCE.to_owned()), any_writer()],
            any_originator(),
            mostly(any_position().prop_map(Some), Just(None)),
            any_timestamp(),
        )
            .prop_map(|(originator, subject, position, measured_at)| {
                Op::ReportPosition(pb::ReportPositionRequest {
                    originator,
                    subject,
                    position,
                    measured_at,
                })
            }),
    ];
    let reads = prop_oneof![
        (
            any_scoped_id(),
            prop_oneof![Just(String::new()), any_originator()]
        )
            .prop_map(|(role_id, holder)| Op::GetRole(pb::GetRoleRequest { role_id, holder })),
        prop_oneof![Just(String::new()), any_originator()]
            .prop_map(|holder| Op::ListRoles(pb::ListRolesRequest { holder })),
        (any_originator(), any_scoped_ids(), any_timestamp()).prop_map(
            |(originator, role_ids, at)| Op::ResolveRoles(pb::ResolveRolesRequest {
                originator,
                role_ids,
                at,
            })
        ),
        (
            any_scoped_ids(),
            mostly(
                prop::collection::vec(one_of(&["lt1", "lt2"]), 0..2),
                any_texts()
            )
        )
            .prop_map(
                |(token_ids, local_token_ids)| Op::GetTokens(pb::GetTokensRequest {
                    token_ids,
                    local_token_ids,
                })
            ),
        any_group_id().prop_map(|group_id| Op::GetGroup(pb::GetGroupRequest { group_id })),
        (any_group_id(), any_originator()).prop_map(|(group_id, originator)| {
            Op::CheckMembership(pb::CheckMembershipRequest {
                group_id,
                originator,
            })
        }),
        (any_originator(), any_timestamp()).prop_map(|(originator, at)| Op::GetPosition(
            pb::GetPositionRequest { originator, at }
        )),
        any_ip().prop_map(|ip| Op::LocateIp(pb::LocateIpRequest { ip })),
        prop::option::of(any_position())
            .prop_map(|position| Op::LocatePosition(pb::LocatePositionRequest { position })),
        (
            any_originator(),
            any_scoped_ids(),
            any_timestamp(),
            any_ip(),
            prop::option::of(any_position()),
        )
            .prop_map(|(originator, role_ids, at, originator_ip, position)| {
                Op::ResolveAttributes(pb::ResolveAttributesRequest {
                    originator,
                    role_ids,
                    at,
                    originator_ip,
                    position,
                })
            }),
    ];
    prop_oneof![writes, reads].boxed()
}

type Client = PolicyInformationPointClient<Channel>;

/// Sends `op`; the status when it failed.
async fn send(c: &mut Client, op: Op) -> Result<(), tonic::Status> {
    match op {
        Op::CreateRole(r) => c.create_role(r).await.map(drop),
        Op::DeleteRole(r) => c.delete_role(r).await.map(drop),
        Op::UpdateRoleTokenLink(r) => c.update_role_token_link(r).await.map(drop),
        Op::GetRole(r) => c.get_role(r).await.map(drop),
        Op::ListRoles(r) => c.list_roles(r).await.map(drop),
        Op::ResolveRoles(r) => c.resolve_roles(r).await.map(drop),
        Op::PutToken(r) => c.put_token(r).await.map(drop),
        Op::GetTokens(r) => c.get_tokens(r).await.map(drop),
        Op::DeleteToken(r) => c.delete_token(r).await.map(drop),
        Op::PutGroup(r) => c.put_group(r).await.map(drop),
        Op::GetGroup(r) => c.get_group(r).await.map(drop),
        Op::DeleteGroup(r) => c.delete_group(r).await.map(drop),
        Op::CheckMembership(r) => c.check_membership(r).await.map(drop),
        Op::ReportPosition(r) => c.report_position(r).await.map(drop),
        Op::GetPosition(r) => c.get_position(r).await.map(drop),
        Op::LocateIp(r) => c.locate_ip(r).await.map(drop),
        Op::LocatePosition(r) => c.locate_position(r).await.map(drop),
        Op::ResolveAttributes(r) => c.resolve_attributes(r).await.map(drop),
    }
}

/// Whether `status` is one the PIP means: no INTERNAL, UNKNOWN (what a
/// panicking handler gives), UNAVAILABLE or other transport code, and no
/// HTTP/2 error the client reads as a status (a header block too large for
/// the peer); INVALID_ARGUMENT names at least one field.
fn check_status(status: &tonic::Status) -> Result<(), String> {
    if status.message().contains("h2 protocol error") {
        return Err(format!("an HTTP/2 error, not the PIP's status: {status:?}"));
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
        Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::OutOfRange => Ok(()),
        _ => Err(format!("not a proper status: {status:?}")),
    }
}

/// What a refused write must leave as it was: the revision, every role
/// and every group.
type State = (u64, Vec<pb::Role>, Vec<pb::Group>);

async fn state(c: &mut Client, service: &authz_pip::PipService) -> Result<State, String> {
    let roles = c
        .list_roles(pb::ListRolesRequest::default())
        .await
        .map_err(|s| format!("ListRoles: {s:?}"))?
        .into_inner()
        .roles;
    let groups = c
        .list_groups(pb::ListGroupsRequest { ids_only: false })
        .await
        .map_err(|s| format!("ListGroups: {s:?}"))?
        .into_inner()
        .groups;
    Ok((service.revision(), roles, groups))
}

/// The stored positions of the subjects requests name, and the seeded
/// token: what a restart must load as it was besides roles and groups.
async fn positions_and_tokens(c: &mut Client) -> (Vec<Option<pb::PositionFix>>, Vec<pb::Token>) {
    let mut fixes = Vec::new();
    for subject in ["Calice", "Cbob", "/id-mn/Cmeter", "/id-mn", "Sxyz"] {
        let attributes = c
            .resolve_attributes(pb::ResolveAttributesRequest {
                originator: subject.into(),
                ..Default::default()
            })
            .await
            .expect("ResolveAttributes")
            .into_inner();
        fixes.push(attributes.position);
    }
    let tokens = c
        .get_tokens(pb::GetTokensRequest {
            token_ids: vec!["t1@das.example.com".into()],
            local_token_ids: vec!["lt1".into(), "lt2".into()],
        })
        .await
        .expect("GetTokens")
        .into_inner()
        .tokens;
    (fixes, tokens)
}

/// A role `doctor@roles.example.com` of Calice, a token `t1@das.example.com`,
/// a group `grp1` with Calice and a CSE, and a position of Calice.
async fn seed(c: &mut Client) {
    let now = Utc::now();
    let ts = |t: chrono::DateTime<Utc>| Some(authz_proto::convert::timestamp_to_pb(&t));
    c.create_role(pb::CreateRoleRequest {
        originator: ADMIN.into(),
        role: Some(pb::Role {
            role_id: "doctor@roles.example.com".into(),
            issuer: AUTHORITY.into(),
            holder: "Calice".into(),
            not_before: ts(now - chrono::TimeDelta::hours(1)),
            not_after: ts(now + chrono::TimeDelta::hours(1)),
            ..Default::default()
        }),
    })
    .await
    .expect("seed role");
    c.put_token(pb::PutTokenRequest {
        originator: ADMIN.into(),
        token: Some(pb::Token {
            token_id: "t1@das.example.com".into(),
            token_object: "eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into(),
            ..Default::default()
        }),
    })
    .await
    .expect("seed token");
    c.put_group(pb::PutGroupRequest {
        originator: ADMIN.into(),
        group: Some(pb::Group {
            group_id: "grp1".into(),
            member_ids: vec!["Calice".into(), "/id-mn".into()],
        }),
    })
    .await
    .expect("seed group");
    c.report_position(pb::ReportPositionRequest {
        originator: SOURCE.into(),
        subject: "Calice".into(),
        position: Some(pb::Position {
            latitude: 50.11,
            longitude: 8.68,
            uncertainty_m: 100.0,
        }),
        measured_at: None,
    })
    .await
    .expect("seed position");
}

#[test]
fn any_request_gets_a_proper_status_refusals_change_nothing_and_the_pip_keeps_serving() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = temp_dir("pip-robustness", "robustness");
    let csv = dir.path().join("countries.csv");
    std::fs::write(&csv, "10.0.0.0/8,DE\n2001:db8::/32,FR\n").expect("csv");
    let mut config = PipConfig::new(
        Some(dir.path().to_path_buf()),
        ADMIN,
        authz_core::HostingContext::new("//sp.example.com", "/id-in").expect("hosting"),
    );
    config.trusted_issuers = vec![AUTHORITY.to_owned()];
    config.location_sources = vec![SOURCE.to_owned()];
    config.ip_csv = vec![csv];
    let mut running = rt.block_on(async {
        let mut running = Running::start(&config).await;
        seed(&mut running.client).await;
        running
    });
    let proptest_config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(proptest_config, |(ops in prop::collection::vec(any_op(), 1..12))| {
        let mut client = running.client.clone();
        let service = &running.service;
        let outcome: Result<(), String> = rt.block_on(async {
            for op in ops {
                let before = state(&mut client, service).await?;
                let answer = send(&mut client, op.clone()).await;
                if let Err(status) = &answer {
                    check_status(status).map_err(|e| format!("{e}\nfor {}", shown(&op)))?;
                }
                let after = state(&mut client, service)
                    .await
                    .map_err(|e| format!("{e}\nafter {}", shown(&op)))?;
                let changed = before != after;
                match answer {
                    Ok(()) if op.is_write() => {}
                    Ok(()) if changed => {
                        return Err(format!("a read changed the store: {}", shown(&op)));
                    }
                    Ok(()) => {}
                    Err(status) if changed => {
                        return Err(format!(
                            "refused with {:?} ({}) yet the store changed: revision {} -> {}\nfor {}",
                            status.code(),
                            status.message(),
                            before.0,
                            after.0,
                            shown(&op)
                        ));
                    }
                    Err(_) => {}
                }
            }
            Ok(())
        });
        outcome.map_err(TestCaseError::fail)?;
    });
    // Still serving: Frankfurt is in Germany, and a new group is stored.
    // And what was stored loads again: a restart on the same store
    // answers the same roles and groups at the same revision.
    rt.block_on(async {
        let c = &mut running.client;
        let answer = c
            .locate_position(pb::LocatePositionRequest {
                position: Some(pb::Position {
                    latitude: 50.11,
                    longitude: 8.68,
                    uncertainty_m: 0.0,
                }),
            })
            .await
            .expect("still serving reads")
            .into_inner();
        assert_eq!(answer.countries, ["DE"]);
        c.put_group(pb::PutGroupRequest {
            originator: ADMIN.into(),
            group: Some(pb::Group {
                group_id: "grpAfterwards".into(),
                member_ids: vec!["Cbob".into()],
            }),
        })
        .await
        .expect("still serving writes");
        let stored = (
            state(&mut running.client, &running.service)
                .await
                .expect("state"),
            positions_and_tokens(&mut running.client).await,
        );
        running.stop().await;
        let mut restarted = Running::start(&config).await;
        let reloaded = (
            state(&mut restarted.client, &restarted.service)
                .await
                .expect("state after a restart"),
            positions_and_tokens(&mut restarted.client).await,
        );
        assert_eq!(reloaded, stored, "the store loads as it was");
        restarted.stop().await;
    });
}
