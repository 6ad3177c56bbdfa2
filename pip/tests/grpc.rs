//! The PIP over gRPC on loopback: repositories, role verification (TS-0003
//! 7.4.3 step 4), field-named INVALID_ARGUMENT that stores nothing, write
//! permissions, the ordered `Watch` stream, and durability across restarts.

mod common;

use std::path::PathBuf;

use authz_pip::PipConfig;
use authz_proto::pb;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_tests::arbitrary::temp_path;
use chrono::{DateTime, Utc};
use common::{Running, groups_of, is_member, next_event};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const ADMIN: &str = "CAdmin";
const AUTHORITY: &str = "//sp.example.com/id-in/CAuthority";

fn hosting() -> authz_core::HostingContext {
    authz_core::HostingContext::new("//sp.example.com", "/id-in").expect("hosting")
}

fn config(dir: Option<PathBuf>) -> PipConfig {
    let mut c = PipConfig::new(dir, ADMIN, hosting());
    c.trusted_issuers = vec![AUTHORITY.to_owned()];
    c.location_sources = vec!["CLocationServer".to_owned()];
    c.country_boundaries = false;
    c
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    authz_proto::convert::timestamp_to_pb(&t)
}

fn role(id: &str, issuer: &str, holder: &str, hours: (i64, i64)) -> pb::Role {
    let now = Utc::now();
    pb::Role {
        role_id: id.into(),
        issuer: issuer.into(),
        holder: holder.into(),
        not_before: Some(ts(now + chrono::Duration::hours(hours.0))),
        not_after: Some(ts(now + chrono::Duration::hours(hours.1))),
        role_name: "a role".into(),
        token_link: String::new(),
    }
}

fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn roles_are_verified_per_7_4_3_with_reasons() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    for (id, issuer, holder, hours) in [
        ("doctor@roles.example.com", AUTHORITY, "Calice", (-1, 1)),
        ("old@roles.example.com", AUTHORITY, "Calice", (-3, -2)),
        ("later@roles.example.com", AUTHORITY, "Calice", (2, 3)),
        (
            "fake@roles.example.com",
            "//evil.example.net/x/CIssuer",
            "Calice",
            (-1, 1),
        ),
        ("bobs@roles.example.com", AUTHORITY, "Cbob", (-1, 1)),
    ] {
        c.create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(role(id, issuer, holder, hours)),
        })
        .await
        .expect("create");
    }
    // Holder stored in absolute form.
    let stored = c
        .get_role(pb::GetRoleRequest {
            role_id: "doctor@roles.example.com".into(),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(stored.holder, "//sp.example.com/id-in/Calice");

    let verdicts = c
        .resolve_roles(pb::ResolveRolesRequest {
            originator: "Calice".into(),
            role_ids: vec![
                "doctor@roles.example.com".into(),
                "old@roles.example.com".into(),
                "later@roles.example.com".into(),
                "fake@roles.example.com".into(),
                "bobs@roles.example.com".into(),
                "none@roles.example.com".into(),
            ],
            at: None,
        })
        .await
        .expect("resolve")
        .into_inner()
        .verdicts;
    let v: Vec<(bool, &str)> = verdicts
        .iter()
        .map(|v| (v.verified, v.reason.as_str()))
        .collect();
    assert!(v[0].0, "{v:?}");
    assert!(!v[1].0 && v[1].1.contains("expired"), "{v:?}");
    assert!(!v[2].0 && v[2].1.contains("not valid before"), "{v:?}");
    assert!(!v[3].0 && v[3].1.contains("not a trusted"), "{v:?}");
    assert!(!v[4].0 && v[4].1.contains("held by"), "{v:?}");
    assert!(!v[5].0 && v[5].1.contains("no such role"), "{v:?}");
    // A role is write-once (TS-0001 9.6.38: NP on update): the same
    // Role-ID for the same holder again is taken.
    let again = c
        .create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(role(
                "doctor@roles.example.com",
                AUTHORITY,
                "Calice",
                (-1, 1),
            )),
        })
        .await
        .expect_err("taken");
    assert_eq!(again.code(), Code::AlreadyExists);
    // Another originator holds the same Role-ID through a <role> of its own
    // (TS-0003 7.4.2: a <role> describes the role assigned to one
    // originator; the Role-ID names the role, which many may hold).
    c.create_role(pb::CreateRoleRequest {
        originator: ADMIN.into(),
        role: Some(role("doctor@roles.example.com", AUTHORITY, "Cbob", (-1, 1))),
    })
    .await
    .expect("a second holder");
    let verified = |c: &mut PolicyInformationPointClient<Channel>, who: &'static str| {
        let mut c = c.clone();
        async move {
            c.resolve_roles(pb::ResolveRolesRequest {
                originator: who.into(),
                role_ids: vec!["doctor@roles.example.com".into()],
                at: None,
            })
            .await
            .expect("resolve")
            .into_inner()
            .verdicts[0]
                .verified
        }
    };
    assert!(verified(c, "Calice").await && verified(c, "Cbob").await);
    // Reading or deleting it then names the holder.
    let which = c
        .get_role(pb::GetRoleRequest {
            role_id: "doctor@roles.example.com".into(),
            ..Default::default()
        })
        .await
        .expect_err("two holders");
    assert_eq!(fields(&which), ["holder"]);
    c.delete_role(pb::DeleteRoleRequest {
        originator: ADMIN.into(),
        role_id: "doctor@roles.example.com".into(),
        holder: "Calice".into(),
    })
    .await
    .expect("delete Alice's");
    assert!(!verified(c, "Calice").await && verified(c, "Cbob").await);
    let listed = c
        .list_roles(pb::ListRolesRequest {
            holder: "Cbob".into(),
        })
        .await
        .expect("list")
        .into_inner()
        .roles;
    assert_eq!(listed.len(), 2);
    pip.stop().await;
}

#[tokio::test]
async fn invalid_input_names_the_field_and_stores_nothing() {
    let mut pip = Running::start(&config(None)).await;
    let before = pip.service.revision();
    let c = &mut pip.client;
    let mut bad = role("no-at-sign", "", "", (1, -1));
    bad.holder = String::new();
    let err = c
        .create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(bad),
        })
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);
    let f = fields(&err);
    for field in [
        "role.role_id",
        "role.issuer",
        "role.holder",
        "role.not_after",
    ] {
        assert!(f.iter().any(|x| x == field), "{field} in {f:?}");
    }
    let err = put_group(
        c,
        "family@roles.example.com".into(),
        vec!["Calice".into(), "//bad//id".into()],
    )
    .await
    .expect_err("invalid");
    let f = fields(&err);
    assert!(f.contains(&"group.group_id".to_owned()), "{f:?}");
    assert!(f.contains(&"group.member_ids[1]".to_owned()), "{f:?}");
    // Every field at fault at once, the originator's too.
    let err = c
        .put_group(pb::PutGroupRequest {
            originator: String::new(),
            group: Some(pb::Group {
                group_id: "all".into(),
                member_ids: vec!["*".into()],
            }),
        })
        .await
        .expect_err("invalid");
    assert_eq!(
        fields(&err),
        ["originator", "group.group_id", "group.member_ids[0]"]
    );
    let err = c
        .delete_group(pb::DeleteGroupRequest {
            originator: "all".into(),
            group_id: "*".into(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(fields(&err), ["originator", "group_id"]);
    let err = c
        .check_membership(pb::CheckMembershipRequest {
            group_id: "*".into(),
            originator: "all".into(),
        })
        .await
        .expect_err("invalid");
    assert_eq!(fields(&err), ["originator", "group_id"]);
    let err = c
        .report_position(pb::ReportPositionRequest {
            originator: ADMIN.into(),
            subject: "Calice".into(),
            position: Some(pb::Position {
                latitude: 91.0,
                longitude: 0.0,
                uncertainty_m: -1.0,
            }),
            measured_at: None,
        })
        .await
        .expect_err("invalid");
    let f = fields(&err);
    assert!(f.contains(&"position.latitude".to_owned()), "{f:?}");
    assert!(f.contains(&"position.uncertainty_m".to_owned()), "{f:?}");
    let err = c
        .put_token(pb::PutTokenRequest {
            originator: ADMIN.into(),
            token: Some(pb::Token {
                token_id: "tk1@das.example.com".into(),
                token_object: "not a jwt".into(),
                ..Default::default()
            }),
        })
        .await
        .expect_err("invalid");
    assert_eq!(fields(&err), vec!["token.token_object".to_owned()]);
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    pip.stop().await;
}

/// Group members (`mid`, spec notes §2.4), role holders (§7.3, TS-0003 7.4.3:
/// `holder` == Originator) and position subjects (Annex F.2.1) name one
/// originator: an AE-ID or CSE-ID, never `all`, a Role-ID, an SP domain or a
/// wildcard. A role's issuer (§7.3, m2m:ID of the Authorization Authority) is
/// one identifier. A group ID is what acor reads as an exact ID (Decision
/// 3), not an SP domain or a wildcard pattern. Each is INVALID_ARGUMENT
/// naming the field, and nothing is stored.
#[tokio::test]
async fn ids_that_name_no_single_originator_are_refused_2_4_and_7_3() {
    let mut pip = Running::start(&config(None)).await;
    let before = pip.service.revision();
    let c = &mut pip.client;
    for member in ["all", "guest@roles.example.com", "//sp.example.com", "C*"] {
        let err = put_group(c, "/id-in/grpFamily".into(), vec![member.into()])
            .await
            .expect_err(member);
        assert_eq!(err.code(), Code::InvalidArgument, "{member}: {err:?}");
        assert_eq!(fields(&err), ["group.member_ids[0]"], "{member}");
    }
    for group_id in ["C*", "//sp.example.com", "/id-in/grp 1", "all"] {
        let err = put_group(c, group_id.into(), vec!["Calice".into()])
            .await
            .expect_err(group_id);
        assert_eq!(err.code(), Code::InvalidArgument, "{group_id}: {err:?}");
        assert_eq!(fields(&err), ["group.group_id"], "{group_id}");
    }
    for holder in [
        "all",
        "guest@roles.example.com",
        "//sp.example.com",
        "/id-in/C*",
    ] {
        let err = c
            .create_role(pb::CreateRoleRequest {
                originator: ADMIN.into(),
                role: Some(role("doctor@roles.example.com", AUTHORITY, holder, (-1, 1))),
            })
            .await
            .expect_err(holder);
        assert_eq!(err.code(), Code::InvalidArgument, "{holder}: {err:?}");
        assert_eq!(fields(&err), ["role.holder"], "{holder}");
    }
    for issuer in [
        "all",
        "x y",
        "guest@roles.example.com",
        "//sp.example.com/C*",
    ] {
        let err = c
            .create_role(pb::CreateRoleRequest {
                originator: ADMIN.into(),
                role: Some(role("doctor@roles.example.com", issuer, "Calice", (-1, 1))),
            })
            .await
            .expect_err(issuer);
        assert_eq!(err.code(), Code::InvalidArgument, "{issuer}: {err:?}");
        assert_eq!(fields(&err), ["role.issuer"], "{issuer}");
    }
    for subject in ["all", "guest@roles.example.com", "//sp.example.com"] {
        let err = c
            .report_position(pb::ReportPositionRequest {
                originator: ADMIN.into(),
                subject: subject.into(),
                position: Some(pb::Position {
                    latitude: 48.85,
                    longitude: 2.35,
                    uncertainty_m: 0.0,
                }),
                measured_at: None,
            })
            .await
            .expect_err(subject);
        assert_eq!(err.code(), Code::InvalidArgument, "{subject}: {err:?}");
        assert_eq!(fields(&err), ["subject"], "{subject}");
    }
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    let listed = c
        .list_groups(pb::ListGroupsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.groups, []);
    // Accepted: an AE-ID stem, an `<AE>` resource ID (SP-relative), a CSE-ID,
    // and the SP's domain as issuer (the M2M SP issues Role-IDs, §7.2).
    put_group(
        c,
        "/id-in/grpFamily".into(),
        vec!["Calice".into(), "/id-in/ae-light".into(), "/mn-cse".into()],
    )
    .await
    .expect("valid group");
    c.create_role(pb::CreateRoleRequest {
        originator: ADMIN.into(),
        role: Some(role(
            "doctor@roles.example.com",
            "//sp.example.com",
            "//sp.example.com/mn-cse",
            (-1, 1),
        )),
    })
    .await
    .expect("valid role");
    pip.stop().await;
}

/// A `<token>` holder (`tkhd`, TS-0001 9.6.39) is stored in absolute form,
/// as README "PIP" says of every holder (Decision 2), and checked like a
/// role's holder; a given issuer (`tkis`) or audience entry (`tkau`, m2m:ID
/// list) may not be blank or hold whitespace or other than printable ASCII,
/// and permissions (`tkps`) are m2m:tokenPermissions. An absent holder
/// stays absent.
#[tokio::test]
async fn token_holder_is_stored_absolute_and_ids_are_checked_9_6_39() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let token = |id: &str| pb::Token {
        token_id: id.into(),
        token_object: "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ0azEifQ.c2ln".into(),
        ..Default::default()
    };
    let put = c
        .put_token(pb::PutTokenRequest {
            originator: ADMIN.into(),
            token: Some(pb::Token {
                holder: "CAlice".into(),
                issuer: "//sp.example.com/id-in/Cdas".into(),
                audience: vec!["/id-in".into()],
                ..token("tk1@das.example.com")
            }),
        })
        .await
        .expect("put")
        .into_inner();
    assert_eq!(put.holder, "//sp.example.com/id-in/CAlice");
    let read = c
        .get_tokens(pb::GetTokensRequest {
            token_ids: vec!["tk1@das.example.com".into()],
            local_token_ids: Vec::new(),
        })
        .await
        .expect("get")
        .into_inner()
        .tokens;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].holder, "//sp.example.com/id-in/CAlice");
    assert_eq!(read[0].issuer, "//sp.example.com/id-in/Cdas");
    // No holder given: none stored.
    let put = c
        .put_token(pb::PutTokenRequest {
            originator: ADMIN.into(),
            token: Some(token("tk2@das.example.com")),
        })
        .await
        .expect("put")
        .into_inner();
    assert_eq!(put.holder, "");

    let before = pip.service.revision();
    for (bad, field) in [
        (
            pb::Token {
                holder: "all".into(),
                ..token("tk3@das.example.com")
            },
            "token.holder",
        ),
        (
            pb::Token {
                holder: "guest@roles.example.com".into(),
                ..token("tk3@das.example.com")
            },
            "token.holder",
        ),
        (
            pb::Token {
                issuer: "   ".into(),
                ..token("tk3@das.example.com")
            },
            "token.issuer",
        ),
        (
            pb::Token {
                audience: vec!["/id-in".into(), " ".into()],
                ..token("tk3@das.example.com")
            },
            "token.audience[1]",
        ),
        (
            pb::Token {
                audience: vec![String::new()],
                ..token("tk3@das.example.com")
            },
            "token.audience[0]",
        ),
        // IDs are printable ASCII.
        (
            pb::Token {
                issuer: "a\u{1}b".into(),
                ..token("tk3@das.example.com")
            },
            "token.issuer",
        ),
        (
            pb::Token {
                audience: vec!["/id-in".into(), "\u{e9}".into()],
                ..token("tk3@das.example.com")
            },
            "token.audience[1]",
        ),
        // `tkps` is m2m:tokenPermissions (TS-0004 6.3.5.41), each
        // permission with pv or rids, and ris with pv (TS-0001 table
        // 9.6.39-3), as in a token's own claims.
        (
            pb::Token {
                permissions_json: "42".into(),
                ..token("tk3@das.example.com")
            },
            "token.permissions_json",
        ),
        (
            pb::Token {
                permissions_json: r#"{"pm":[{"ris":["x"]}]}"#.into(),
                ..token("tk3@das.example.com")
            },
            "token.permissions_json.pm[0]",
        ),
        (
            pb::Token {
                permissions_json: r#"{"pm":[{"pv":{"acr":[]}}]}"#.into(),
                ..token("tk3@das.example.com")
            },
            "token.permissions_json.pm[0].ris",
        ),
        (
            pb::Token {
                permissions_json: r#"{"pm":[{"rids":["bad"]}]}"#.into(),
                ..token("tk3@das.example.com")
            },
            "token.permissions_json.pm[0].rids[0]",
        ),
    ] {
        let err = c
            .put_token(pb::PutTokenRequest {
                originator: ADMIN.into(),
                token: Some(bad),
            })
            .await
            .expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(fields(&err), [field]);
    }
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    pip.stop().await;
}

/// An empty ID is invalid input, as in the PRP (README "PIP": invalid input
/// is INVALID_ARGUMENT naming each field and stores nothing), not a lookup
/// that finds nothing: every RPC that takes an ID names the empty field, and
/// changes nothing.
#[tokio::test]
async fn an_empty_id_is_invalid_argument_naming_the_field_in_every_rpc() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let role_id = "doctor@roles.example.com";
    let token_id = "tk1@das.example.com";
    c.create_role(pb::CreateRoleRequest {
        originator: ADMIN.into(),
        role: Some(role(role_id, AUTHORITY, "Calice", (-1, 1))),
    })
    .await
    .expect("role");
    let token = pb::Token {
        token_id: token_id.into(),
        token_object: "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ0azEifQ.c2ln".into(),
        ..Default::default()
    };
    c.put_token(pb::PutTokenRequest {
        originator: ADMIN.into(),
        token: Some(token.clone()),
    })
    .await
    .expect("token");
    let group = pb::Group {
        group_id: "/id-in/grp".into(),
        member_ids: vec!["Calice".into()],
    };
    c.put_group(pb::PutGroupRequest {
        originator: ADMIN.into(),
        group: Some(group.clone()),
    })
    .await
    .expect("group");
    let before = pip.service.revision();

    let expect = |rpc: &str, result: Result<(), tonic::Status>, want: &[&str]| {
        let err = result.expect_err(rpc);
        assert_eq!(err.code(), Code::InvalidArgument, "{rpc}: {err:?}");
        assert_eq!(fields(&err), want, "{rpc}");
    };
    let r = c.get_role(pb::GetRoleRequest {
        role_id: String::new(),
        ..Default::default()
    });
    expect("GetRole", r.await.map(drop), &["role_id"]);
    let r = c.delete_role(pb::DeleteRoleRequest {
        originator: ADMIN.into(),
        role_id: String::new(),
        ..Default::default()
    });
    expect("DeleteRole", r.await.map(drop), &["role_id"]);
    let r = c.delete_role(pb::DeleteRoleRequest {
        originator: String::new(),
        role_id: role_id.into(),
        ..Default::default()
    });
    expect("DeleteRole originator", r.await.map(drop), &["originator"]);
    let r = c.create_role(pb::CreateRoleRequest {
        originator: String::new(),
        role: Some(role("nurse@roles.example.com", AUTHORITY, "Cbob", (-1, 1))),
    });
    expect("CreateRole", r.await.map(drop), &["originator"]);
    let r = c.resolve_roles(pb::ResolveRolesRequest {
        originator: "Calice".into(),
        role_ids: vec![role_id.into(), String::new()],
        at: None,
    });
    expect("ResolveRoles", r.await.map(drop), &["role_ids[1]"]);
    // A Role-ID that is no `issuerRelativeID@issuerID` (spec notes §7.2)
    // is named too, as the PDP names it in `role_ids`, not "no such role".
    let r = c.resolve_roles(pb::ResolveRolesRequest {
        originator: "Calice".into(),
        role_ids: vec![
            "BAD ROLE".into(),
            role_id.into(),
            "guest*@roles.example.com".into(),
        ],
        at: None,
    });
    expect(
        "ResolveRoles",
        r.await.map(drop),
        &["role_ids[0]", "role_ids[2]"],
    );
    let r = c.get_role(pb::GetRoleRequest {
        role_id: "Bad Role".into(),
        ..Default::default()
    });
    expect("GetRole", r.await.map(drop), &["role_id"]);
    let r = c.put_token(pb::PutTokenRequest {
        originator: String::new(),
        token: Some(token),
    });
    expect("PutToken", r.await.map(drop), &["originator"]);
    let r = c.get_tokens(pb::GetTokensRequest {
        token_ids: vec![String::new(), token_id.into()],
        local_token_ids: Vec::new(),
    });
    expect("GetTokens", r.await.map(drop), &["token_ids[0]"]);
    let r = c.delete_token(pb::DeleteTokenRequest {
        originator: ADMIN.into(),
        token_id: String::new(),
    });
    expect("DeleteToken", r.await.map(drop), &["token_id"]);
    let r = c.put_group(pb::PutGroupRequest {
        originator: String::new(),
        group: Some(group),
    });
    expect("PutGroup", r.await.map(drop), &["originator"]);
    let r = c.get_group(pb::GetGroupRequest {
        group_id: String::new(),
    });
    expect("GetGroup", r.await.map(drop), &["group_id"]);
    let r = c.delete_group(pb::DeleteGroupRequest {
        originator: String::new(),
        group_id: String::new(),
    });
    expect(
        "DeleteGroup",
        r.await.map(drop),
        &["originator", "group_id"],
    );
    let r = c.check_membership(pb::CheckMembershipRequest {
        group_id: String::new(),
        originator: "Calice".into(),
    });
    expect("CheckMembership", r.await.map(drop), &["group_id"]);
    let r = c.report_position(pb::ReportPositionRequest {
        originator: String::new(),
        subject: "Calice".into(),
        position: Some(pb::Position {
            latitude: 48.85,
            longitude: 2.35,
            uncertainty_m: 10.0,
        }),
        measured_at: None,
    });
    expect("ReportPosition", r.await.map(drop), &["originator"]);
    let r = c.get_position(pb::GetPositionRequest {
        originator: String::new(),
        at: None,
    });
    expect("GetPosition", r.await.map(drop), &["originator"]);
    let r = c.resolve_attributes(pb::ResolveAttributesRequest {
        originator: "Calice".into(),
        role_ids: vec![String::new()],
        ..Default::default()
    });
    expect("ResolveAttributes", r.await.map(drop), &["role_ids[0]"]);

    assert_eq!(pip.service.revision(), before, "nothing was written");
    c.get_role(pb::GetRoleRequest {
        role_id: role_id.into(),
        ..Default::default()
    })
    .await
    .expect("the role is still there");
    let tokens = c
        .get_tokens(pb::GetTokensRequest {
            token_ids: vec![token_id.into()],
            local_token_ids: Vec::new(),
        })
        .await
        .expect("tokens")
        .into_inner();
    assert_eq!(tokens.tokens.len(), 1, "the token is still there");
    let member = c
        .check_membership(pb::CheckMembershipRequest {
            group_id: "/id-in/grp".into(),
            originator: "Calice".into(),
        })
        .await
        .expect("check")
        .into_inner();
    assert!(
        member.is_group && member.is_member,
        "the group is unchanged"
    );
    pip.stop().await;
}

/// A token's validity period (`tknb`, `tkna`, TS-0001 9.6.39) is checked as
/// a role's (9.6.38): `not_after` before `not_before` is INVALID_ARGUMENT
/// naming `token.not_after`, and the token stored under that ID stays.
#[tokio::test]
async fn a_token_valid_until_before_it_is_valid_from_is_refused() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let now = Utc::now();
    let token = |not_before: DateTime<Utc>, not_after: DateTime<Utc>| pb::Token {
        token_id: if not_before == not_after {
            // Another token: a stored one is write-once.
            "tk2@das.example.com".into()
        } else {
            "tk1@das.example.com".into()
        },
        token_object: "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ0azEifQ.c2ln".into(),
        not_before: Some(ts(not_before)),
        not_after: Some(ts(not_after)),
        ..Default::default()
    };
    let hour = chrono::Duration::hours(1);
    let stored = c
        .put_token(pb::PutTokenRequest {
            originator: ADMIN.into(),
            token: Some(token(now - hour, now + hour)),
        })
        .await
        .expect("a valid token")
        .into_inner();
    let before = pip.service.revision();
    let err = c
        .put_token(pb::PutTokenRequest {
            originator: ADMIN.into(),
            token: Some(token(now + hour, now - hour)),
        })
        .await
        .expect_err("reversed validity");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(fields(&err), vec!["token.not_after".to_owned()]);
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    let tokens = c
        .get_tokens(pb::GetTokensRequest {
            token_ids: vec!["tk1@das.example.com".into()],
            local_token_ids: Vec::new(),
        })
        .await
        .expect("tokens")
        .into_inner();
    assert_eq!(tokens.tokens, vec![stored], "the stored token is unchanged");
    // An empty period (not_after == not_before) is allowed, as for roles.
    c.put_token(pb::PutTokenRequest {
        originator: ADMIN.into(),
        token: Some(token(now, now)),
    })
    .await
    .expect("not_after equal to not_before");
    pip.stop().await;
}

#[tokio::test]
async fn only_the_admin_writes_and_location_sources_report() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let err = c
        .put_group(pb::PutGroupRequest {
            originator: "Cmallory".into(),
            group: Some(pb::Group {
                group_id: "/id-in/grp".into(),
                member_ids: vec!["Cmallory".into()],
            }),
        })
        .await
        .expect_err("denied");
    assert_eq!(err.code(), Code::PermissionDenied);
    let report = |originator: &str| pb::ReportPositionRequest {
        originator: originator.into(),
        subject: "Calice".into(),
        position: Some(pb::Position {
            latitude: 48.85,
            longitude: 2.35,
            uncertainty_m: 10.0,
        }),
        measured_at: None,
    };
    let err = c
        .report_position(report("Cmallory"))
        .await
        .expect_err("denied");
    assert_eq!(err.code(), Code::PermissionDenied);
    c.report_position(report("CLocationServer"))
        .await
        .expect("a configured location source reports");
    let fix = c
        .get_position(pb::GetPositionRequest {
            originator: "//sp.example.com/id-in/Calice".into(),
            at: None,
        })
        .await
        .expect("get")
        .into_inner()
        .fix
        .expect("fresh");
    assert_eq!(fix.position.map(|p| p.uncertainty_m), Some(10.0));
    pip.stop().await;
}

#[tokio::test]
async fn watch_streams_changes_in_order_and_resumes() {
    let mut pip = Running::start(&config(None)).await;
    let mut c = pip.client.clone();
    let mut stream = c
        .watch(pb::WatchAttributesRequest { from_revision: 0 })
        .await
        .expect("watch")
        .into_inner();
    let first = next_event(&mut stream).await;
    assert!(matches!(
        first.change,
        Some(pb::attribute_change::Change::Reset(_))
    ));
    put_group(
        &mut pip.client,
        "/id-in/grp".into(),
        vec!["Calice".into(), "Cbob".into()],
    )
    .await
    .expect("put");
    put_group(&mut pip.client, "/id-in/grp".into(), vec!["Cbob".into()])
        .await
        .expect("put");
    let e1 = next_event(&mut stream).await;
    let e2 = next_event(&mut stream).await;
    assert_eq!((e1.revision, e2.revision), (1, 2));
    // The second change names Alice, who left, among the affected members.
    match e2.change {
        Some(pb::attribute_change::Change::Group(g)) => {
            assert!(
                g.affected_members
                    .contains(&"//sp.example.com/id-in/Calice".to_owned()),
                "{g:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // Resuming from revision 1 replays revision 2 only.
    let mut resumed = c
        .watch(pb::WatchAttributesRequest { from_revision: 1 })
        .await
        .expect("watch")
        .into_inner();
    let r = next_event(&mut resumed).await;
    assert_eq!(r.revision, 2);
    let membership = c
        .check_membership(pb::CheckMembershipRequest {
            group_id: "/id-in/grp".into(),
            originator: "Calice".into(),
        })
        .await
        .expect("check")
        .into_inner();
    assert!(membership.is_group && !membership.is_member);
    pip.stop().await;
}

#[tokio::test]
async fn the_store_survives_a_restart() {
    let (_guard, dir) = temp_path("pip-grpc", "durable");
    let mut pip = Running::start(&config(Some(dir.clone()))).await;
    pip.client
        .create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(role(
                "doctor@roles.example.com",
                AUTHORITY,
                "Calice",
                (-1, 1),
            )),
        })
        .await
        .expect("create");
    // One Role-ID, two holders, one of them deleted again: each <role> is
    // its own row.
    for holder in ["Cbob", "Ccarol"] {
        pip.client
            .create_role(pb::CreateRoleRequest {
                originator: ADMIN.into(),
                role: Some(role("doctor@roles.example.com", AUTHORITY, holder, (-1, 1))),
            })
            .await
            .expect("another holder");
    }
    pip.client
        .delete_role(pb::DeleteRoleRequest {
            originator: ADMIN.into(),
            role_id: "doctor@roles.example.com".into(),
            holder: "Ccarol".into(),
        })
        .await
        .expect("delete Carol's");
    pip.client
        .put_token(pb::PutTokenRequest {
            originator: ADMIN.into(),
            token: Some(pb::Token {
                token_id: "tk1@das.example.com".into(),
                token_object: "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ0azEifQ.c2ln".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("token");
    pip.stop().await;

    let mut pip = Running::start(&config(Some(dir.clone()))).await;
    assert_eq!(pip.service.revision(), 5);
    for (who, held) in [("Calice", true), ("Cbob", true), ("Ccarol", false)] {
        let v = pip
            .client
            .resolve_roles(pb::ResolveRolesRequest {
                originator: who.into(),
                role_ids: vec!["doctor@roles.example.com".into()],
                at: None,
            })
            .await
            .expect("resolve")
            .into_inner();
        assert_eq!(v.verdicts[0].verified, held, "{who}: {v:?}");
    }
    let tokens = pip
        .client
        .get_tokens(pb::GetTokensRequest {
            token_ids: vec!["tk1@das.example.com".into(), "tk2@das.example.com".into()],
            local_token_ids: Vec::new(),
        })
        .await
        .expect("tokens")
        .into_inner();
    assert_eq!(tokens.tokens.len(), 1);
    assert_eq!(tokens.unknown_ids, vec!["tk2@das.example.com".to_owned()]);
    pip.stop().await;
}

fn position_report(lat: f64, measured_at: Option<DateTime<Utc>>) -> pb::ReportPositionRequest {
    pb::ReportPositionRequest {
        originator: "CLocationServer".into(),
        subject: "Cwalker".into(),
        position: Some(pb::Position {
            latitude: lat,
            longitude: 2.35,
            uncertainty_m: 10.0,
        }),
        measured_at: measured_at.map(ts),
    }
}

async fn position_at(
    c: &mut PolicyInformationPointClient<Channel>,
    at: DateTime<Utc>,
) -> Option<pb::PositionFix> {
    c.get_position(pb::GetPositionRequest {
        originator: "Cwalker".into(),
        at: Some(ts(at)),
    })
    .await
    .expect("get position")
    .into_inner()
    .fix
}

/// Annex F.2.1 positions (Decision 5 uses them): a report measured more than
/// the allowed clock skew in the future is INVALID_ARGUMENT naming
/// `measured_at` and stores nothing, since it would stay fresh for that much
/// longer; one within the skew is taken.
#[tokio::test]
async fn a_position_measured_in_the_future_is_refused_beyond_the_skew_annex_f() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let before = pip.service.revision();
    let now = Utc::now();
    let err = c
        .report_position(position_report(
            48.0,
            Some(now + chrono::Duration::seconds(60)),
        ))
        .await
        .expect_err("a minute in the future");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(fields(&err), vec!["measured_at".to_owned()]);
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    assert!(
        position_at(c, now + chrono::Duration::seconds(61))
            .await
            .is_none()
    );
    // Within the skew (5 s): accepted, and usable from its measuring time.
    let soon = Utc::now() + chrono::Duration::seconds(2);
    c.report_position(position_report(48.5, Some(soon)))
        .await
        .expect("within the skew");
    let fix = position_at(c, soon)
        .await
        .expect("fresh at its measuring time");
    assert_eq!(fix.position.map(|p| p.latitude), Some(48.5));
    pip.stop().await;
}

/// Reports may arrive out of order: a report measured before the stored one
/// is FAILED_PRECONDITION and the newer position is kept; one measured at
/// the same time replaces it.
#[tokio::test]
async fn an_older_position_report_never_replaces_a_newer_one_annex_f() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let newer = Utc::now() - chrono::Duration::seconds(10);
    let older = newer - chrono::Duration::seconds(50);
    c.report_position(position_report(48.1, Some(newer)))
        .await
        .expect("newer");
    let revision = pip.service.revision();
    let err = c
        .report_position(position_report(40.0, Some(older)))
        .await
        .expect_err("older than the stored one");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().starts_with("measured_at: "),
        "{}",
        err.message()
    );
    assert_eq!(pip.service.revision(), revision, "nothing was stored");
    let fix = position_at(c, Utc::now()).await.expect("the newer one");
    assert_eq!(fix.position.map(|p| p.latitude), Some(48.1));
    // Same measuring time: the later report wins.
    c.report_position(position_report(48.2, Some(newer)))
        .await
        .expect("same time");
    let fix = position_at(c, Utc::now()).await.expect("replaced");
    assert_eq!(fix.position.map(|p| p.latitude), Some(48.2));
    pip.stop().await;
}

/// A fix measured after the time a decision is about says nothing about
/// where the originator was then: `GetPosition` does not give it for an
/// earlier `at`, and gives it from its measuring time until it is stale
/// (`--max-position-age`). `ResolveAttributes`, which fills the PDP's
/// cache, gives it for any `at`, with its measuring time and end of
/// freshness, so that the cache judges each request time and does not keep
/// "no position" for the requests after one stamped too early or too late.
#[tokio::test]
async fn a_position_is_usable_only_from_its_measuring_time_until_stale_annex_f() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let measured = Utc::now() - chrono::Duration::seconds(30);
    c.report_position(position_report(48.3, Some(measured)))
        .await
        .expect("report");
    let second = chrono::Duration::seconds(1);
    assert!(position_at(c, measured - second).await.is_none());
    assert!(position_at(c, measured).await.is_some());
    // Default max age: 300 s.
    let stale = measured + chrono::Duration::seconds(300);
    assert!(position_at(c, stale - second).await.is_some());
    assert!(position_at(c, stale).await.is_none());
    let resolved = c
        .resolve_attributes(pb::ResolveAttributesRequest {
            originator: "Cwalker".into(),
            at: Some(ts(measured - second)),
            ..Default::default()
        })
        .await
        .expect("resolve")
        .into_inner();
    let early = resolved.position.expect("the current fix, for a cache");
    assert_eq!(
        early.measured_at.map(|t| t.seconds),
        Some(measured.timestamp()),
        "with the time it applies from"
    );
    let resolved = c
        .resolve_attributes(pb::ResolveAttributesRequest {
            originator: "Cwalker".into(),
            at: Some(ts(stale)),
            ..Default::default()
        })
        .await
        .expect("resolve")
        .into_inner();
    let late = resolved.position.expect("the current fix, for a cache");
    assert_eq!(
        late.fresh_until.map(|t| t.seconds),
        Some(stale.timestamp()),
        "with the time it stops applying"
    );
    let resolved = c
        .resolve_attributes(pb::ResolveAttributesRequest {
            originator: "Cwalker".into(),
            at: Some(ts(measured + second)),
            ..Default::default()
        })
        .await
        .expect("resolve")
        .into_inner();
    assert!(resolved.position.is_some(), "{resolved:?}");
    pip.stop().await;
}

/// `PutGroup` as the admin.
async fn put_group(
    c: &mut PolicyInformationPointClient<Channel>,
    group_id: String,
    member_ids: Vec<String>,
) -> Result<tonic::Response<pb::Group>, tonic::Status> {
    c.put_group(pb::PutGroupRequest {
        originator: ADMIN.into(),
        group: Some(pb::Group {
            group_id,
            member_ids,
        }),
    })
    .await
}

/// A `<group>` of 120 000 members given in absolute form (a 5 MB
/// PutGroup, over tonic's 4 MiB default) is taken, and read back by a
/// client that decodes as much (the services' own clients do).
#[tokio::test]
async fn a_group_larger_than_4_mib_is_written_and_read() {
    let pip = Running::start(&config(None)).await;
    let mut c = pip
        .client
        .clone()
        .max_decoding_message_size(authz_proto::convert::MAX_DECODING_MESSAGE_BYTES);
    let members: Vec<String> = (0..120_000u64)
        .map(|i| format!("//sp.example.com/id-in/C{i:016x}"))
        .collect();
    let put = put_group(&mut c, "grpFleet".into(), members.clone())
        .await
        .expect("a 5 MB PutGroup")
        .into_inner();
    assert_eq!(put.member_ids.len(), members.len());
    assert_eq!(
        is_member(&mut c, "grpFleet", &members[119_999][23..]).await,
        (true, true)
    );
    pip.stop().await;
}

/// TS-0001 9.6.2.1 and 7.2 with Decision 2: a `<group>` resource ID names one
/// group in each of its forms (CSE-relative `grpFamily`, SP-relative
/// `/id-in/grpFamily`, absolute `//sp/id-in/grpFamily` with the domain in any
/// case), read against the PIP's hosting CSE. The group is stored and
/// reported by its absolute ID, so that the PDP matches `acor` entries of any
/// hosting CSE against the group they name; `/id-mn/grpFamily` is another
/// CSE's group.
#[tokio::test]
async fn group_ids_are_absolute_and_accepted_in_any_form_9_6_2_1() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    const ABSOLUTE: &str = "//sp.example.com/id-in/grpFamily";
    let put = put_group(c, "grpFamily".into(), vec!["Calice".into()])
        .await
        .expect("put")
        .into_inner();
    assert_eq!(put.group_id, ABSOLUTE);
    // The SP-relative form is the same group: this replaces it.
    put_group(c, "/id-in/grpFamily".into(), vec!["Cbob".into()])
        .await
        .expect("put again");
    let listed = c
        .list_groups(pb::ListGroupsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .groups;
    assert_eq!(
        listed,
        [pb::Group {
            group_id: ABSOLUTE.into(),
            member_ids: vec!["//sp.example.com/id-in/Cbob".into()],
        }]
    );
    // The IDs alone (what a PDP loads, Decision 3), with the revision they
    // reflect, so that a watcher skips the changes the listing holds.
    let ids = c
        .list_groups(pb::ListGroupsRequest { ids_only: true })
        .await
        .expect("list IDs")
        .into_inner();
    assert_eq!(
        ids.groups,
        [pb::Group {
            group_id: ABSOLUTE.into(),
            member_ids: Vec::new(),
        }]
    );
    assert_eq!(ids.revision, pip.service.revision());
    for form in [
        "grpFamily",
        "/id-in/grpFamily",
        ABSOLUTE,
        "//SP.Example.com/id-in/grpFamily",
    ] {
        let got = c
            .get_group(pb::GetGroupRequest {
                group_id: form.into(),
            })
            .await
            .expect(form)
            .into_inner();
        assert_eq!(got.group_id, ABSOLUTE, "{form}");
        assert_eq!(is_member(c, form, "Cbob").await, (true, true), "{form}");
        assert_eq!(is_member(c, form, "Calice").await, (true, false), "{form}");
    }
    assert_eq!(groups_of(c, "Cbob").await, [ABSOLUTE]);
    assert!(groups_of(c, "Calice").await.is_empty());
    // Another CSE's group of the same relative ID, and another path case.
    for other in ["/id-mn/grpFamily", "//sp.example.com/id-in/GRPFAMILY"] {
        let err = c
            .get_group(pb::GetGroupRequest {
                group_id: other.into(),
            })
            .await
            .expect_err(other);
        assert_eq!(err.code(), Code::NotFound, "{other}: {err:?}");
        assert_eq!(is_member(c, other, "Cbob").await, (false, false), "{other}");
    }
    let err = c
        .get_group(pb::GetGroupRequest {
            group_id: "grp Family".into(),
        })
        .await
        .expect_err("whitespace");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(fields(&err), ["group_id"]);
    c.delete_group(pb::DeleteGroupRequest {
        originator: ADMIN.into(),
        group_id: "//SP.EXAMPLE.COM/id-in/grpFamily".into(),
    })
    .await
    .expect("delete in another form");
    assert!(groups_of(c, "Cbob").await.is_empty());
    assert_eq!(is_member(c, "grpFamily", "Cbob").await, (false, false));

    // TS-0001 7.2: a resource of a CSE is `//sp/cse/name...`. A CSE-ID
    // (`/id-in`, `//sp/id-in`, another CSE's), this CSE's own ID and an
    // SP-relative AE-ID (`/Sgrp`) name a CSE or an AE: as a group, they
    // would turn every acor entry naming it into the group's.
    let before = pip.service.revision();
    for not_a_group in [
        "/id-in",
        "//sp.example.com/id-in",
        "/id-mn",
        "id-in",
        "/Sgrp",
        "//sp.example.com/Sgrp",
    ] {
        let err = put_group(c, not_a_group.into(), vec!["Cq".into()])
            .await
            .expect_err(not_a_group);
        assert_eq!(err.code(), Code::InvalidArgument, "{not_a_group}: {err:?}");
        assert_eq!(fields(&err), ["group.group_id"], "{not_a_group}");
    }
    assert_eq!(pip.service.revision(), before, "nothing stored");
    pip.stop().await;
}

/// Spec notes §2.4 with TS-0001 7.2: a member `mid` written `Slight` is an
/// SP-relative AE-ID stem (`//sp/Slight`) or the CSE-relative resource ID of
/// an `<AE>` (`//sp/id-in/Slight`); the group is found by either, and a
/// change of the group names both as affected (the PDP's cache drops both).
/// `GetGroup` reports the member as an AE-ID, as given.
#[tokio::test]
async fn an_s_member_is_found_as_ae_id_and_as_resource_id_2_4() {
    let pip = Running::start(&config(None)).await;
    let mut c = pip.client.clone();
    let mut watch = c
        .watch(pb::WatchAttributesRequest { from_revision: 0 })
        .await
        .expect("watch")
        .into_inner();
    let _reset = next_event(&mut watch).await;
    const GROUP: &str = "//sp.example.com/id-in/grpLights";
    let put = put_group(
        &mut c,
        "grpLights".into(),
        vec!["Slight".into(), "Cbob".into()],
    )
    .await
    .expect("put")
    .into_inner();
    assert_eq!(
        put.member_ids,
        ["//sp.example.com/Slight", "//sp.example.com/id-in/Cbob"]
    );
    for who in [
        "Slight",
        "//sp.example.com/Slight",
        "/id-in/Slight",
        "//sp.example.com/id-in/Slight",
    ] {
        assert_eq!(groups_of(&mut c, who).await, [GROUP], "{who}");
        assert_eq!(
            is_member(&mut c, "grpLights", who).await,
            (true, true),
            "{who}"
        );
    }
    // Not the same AE on another CSE.
    assert!(
        groups_of(&mut c, "//sp.example.com/id-mn/Slight")
            .await
            .is_empty()
    );
    match next_event(&mut watch).await.change {
        Some(pb::attribute_change::Change::Group(g)) => {
            for id in ["//sp.example.com/Slight", "//sp.example.com/id-in/Slight"] {
                assert!(g.affected_members.contains(&id.to_owned()), "{id}: {g:?}");
            }
        }
        other => panic!("unexpected {other:?}"),
    }
    put_group(&mut c, "grpLights".into(), vec!["Cbob".into()])
        .await
        .expect("put without the light");
    for who in ["Slight", "//sp.example.com/id-in/Slight"] {
        assert!(groups_of(&mut c, who).await.is_empty(), "{who}");
    }
    match next_event(&mut watch).await.change {
        Some(pb::attribute_change::Change::Group(g)) => {
            for id in ["//sp.example.com/Slight", "//sp.example.com/id-in/Slight"] {
                assert!(g.affected_members.contains(&id.to_owned()), "{id}: {g:?}");
            }
        }
        other => panic!("unexpected {other:?}"),
    }
    pip.stop().await;
}

/// Writes rows as a PIP did when it kept a group under its ID as written in
/// `acor`: `(key, group JSON)` in the `groups` collection, one revision each.
fn write_old_group_rows(path: &std::path::Path, rows: &[(&str, &str)]) {
    use authz_store::Backend;
    let backend = authz_store::RedbBackend::open(path).expect("open redb");
    for (i, (key, group)) in rows.iter().enumerate() {
        let revision = i as u64 + 1;
        let change = format!(r#"{{"GroupPut":{{"group":{group},"previous":[]}}}}"#);
        backend
            .commit(
                &[authz_store::Row {
                    collection: "groups".into(),
                    key: (*key).into(),
                    value: Some((*group).into()),
                }],
                // Versions of that time kept no tags.
                &authz_store::LoggedChange {
                    revision,
                    change,
                    tag: 0,
                },
                0,
            )
            .expect("commit");
    }
}

/// A store written before group IDs were stored absolute keeps a group's row
/// under the ID as written (`grpFamily`, `/id-in/grpOld`). Such a group is
/// read under its absolute ID for the hosting CSE (TS-0001 7.2, Decision 2),
/// found in any form, deletable, and replaced without its old row coming
/// back after a restart.
#[tokio::test]
async fn group_rows_of_older_stores_are_read_and_deleted() {
    let (_guard, dir) = temp_path("pip-grpc", "old-groups");
    write_old_group_rows(
        &dir.join(authz_pip::REDB_FILE),
        &[
            (
                "grpFamily",
                r#"{"group_id":"grpFamily","members":["//sp.example.com/id-in/Calice"]}"#,
            ),
            (
                "/id-in/grpOld",
                r#"{"group_id":"/id-in/grpOld","members":["//sp.example.com/id-in/Calice"]}"#,
            ),
        ],
    );
    const FAMILY: &str = "//sp.example.com/id-in/grpFamily";
    const OLD: &str = "//sp.example.com/id-in/grpOld";
    let mut pip = Running::start(&config(Some(dir.clone()))).await;
    assert_eq!(pip.service.revision(), 2);
    let c = &mut pip.client;
    assert_eq!(groups_of(c, "Calice").await, [FAMILY, OLD]);
    for form in ["grpFamily", "/id-in/grpFamily", FAMILY] {
        let got = c
            .get_group(pb::GetGroupRequest {
                group_id: form.into(),
            })
            .await
            .expect(form)
            .into_inner();
        assert_eq!(got.group_id, FAMILY, "{form}");
        assert_eq!(is_member(c, form, "Calice").await, (true, true), "{form}");
    }
    c.delete_group(pb::DeleteGroupRequest {
        originator: ADMIN.into(),
        group_id: "/id-in/grpFamily".into(),
    })
    .await
    .expect("delete the old row's group");
    put_group(c, "grpOld".into(), vec!["Cbob".into()])
        .await
        .expect("replace the other");
    assert_eq!(groups_of(c, "Calice").await, Vec::<String>::new());
    pip.stop().await;

    let mut pip = Running::start(&config(Some(dir.clone()))).await;
    let c = &mut pip.client;
    let listed = c
        .list_groups(pb::ListGroupsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .groups;
    assert_eq!(
        listed,
        [pb::Group {
            group_id: OLD.into(),
            member_ids: vec!["//sp.example.com/id-in/Cbob".into()],
        }]
    );
    assert!(groups_of(c, "Calice").await.is_empty());
    let err = c
        .get_group(pb::GetGroupRequest {
            group_id: "grpFamily".into(),
        })
        .await
        .expect_err("deleted for good");
    assert_eq!(err.code(), Code::NotFound);
    pip.stop().await;
}

/// A token stored with `local_token_id` (as a PDP stores the Local-Token-IDs
/// it assigns), valid from an hour ago for `hours` hours (negative: expired),
/// in whole seconds.
fn token_with_lti(id: &str, lti: &str, hours: i64) -> pb::Token {
    let now = Utc::now();
    token_at(id, lti, hours, now)
}

/// [`token_with_lti`] as it would be at `now`: the same record again for
/// the same `now` (a `<token>` is write-once, spec notes §7.4).
fn token_at(id: &str, lti: &str, hours: i64, now: DateTime<Utc>) -> pb::Token {
    pb::Token {
        token_id: id.into(),
        token_object: "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ0azEifQ.c2ln".into(),
        holder: "Cguest".into(),
        not_before: Some(ts(now - chrono::Duration::hours(1))),
        not_after: Some(ts(now + chrono::Duration::hours(hours))),
        local_token_id: lti.into(),
        ..Default::default()
    }
}

async fn put_token_as(
    c: &mut PolicyInformationPointClient<Channel>,
    originator: &str,
    token: pb::Token,
) -> Result<pb::Token, tonic::Status> {
    c.put_token(pb::PutTokenRequest {
        originator: originator.into(),
        token: Some(token),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn tokens_by(
    c: &mut PolicyInformationPointClient<Channel>,
    token_ids: &[&str],
    local_token_ids: &[&str],
) -> pb::GetTokensResponse {
    c.get_tokens(pb::GetTokensRequest {
        token_ids: token_ids.iter().map(|t| t.to_string()).collect(),
        local_token_ids: local_token_ids.iter().map(|t| t.to_string()).collect(),
    })
    .await
    .expect("get tokens")
    .into_inner()
}

/// TS-0003 7.3.2.3 step 6.2 with several PDPs per hosting CSE: a token's
/// Local-Token-ID is assigned once. A PutToken for a token that has one
/// keeps it, whatever the request names (or when it names none), and
/// answers it; GetTokens finds the token by it (step 6.1.2), listing
/// unknown Local-Token-IDs with the unknown IDs, after the token IDs.
#[tokio::test]
async fn a_tokens_first_local_token_id_is_kept_ts_0003_7_3_2_3_step_6_2() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let now = Utc::now();
    let first = put_token_as(c, ADMIN, token_at("tk1@das.example.com", "ltA-1", 1, now))
        .await
        .expect("put");
    assert_eq!(first.local_token_id, "ltA-1");
    let revision = pip.service.revision();
    for asked in ["ltB-1", ""] {
        let again = put_token_as(c, ADMIN, token_at("tk1@das.example.com", asked, 1, now))
            .await
            .expect("put again");
        assert_eq!(again.local_token_id, "ltA-1", "asked {asked:?}");
    }
    // Nothing changed: no revision for the watchers to fetch.
    assert_eq!(pip.service.revision(), revision);
    put_token_as(c, ADMIN, token_with_lti("tk2@das.example.com", "", 1))
        .await
        .expect("a token without one");
    let got = tokens_by(
        c,
        &["tk2@das.example.com", "tk9@das.example.com"],
        &["ltB-1", "ltA-1"],
    )
    .await;
    let found: Vec<(&str, &str)> = got
        .tokens
        .iter()
        .map(|t| (t.token_id.as_str(), t.local_token_id.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("tk2@das.example.com", ""),
            ("tk1@das.example.com", "ltA-1")
        ]
    );
    assert_eq!(got.unknown_ids, ["tk9@das.example.com", "ltB-1"]);
    pip.stop().await;
}

/// TS-0001 7.1.16: Local-Token-IDs are unique per hosting CSE and may be
/// reused once their token has expired. One a live token holds is refused
/// for another token (ALREADY_EXISTS naming `token.local_token_id`, nothing
/// stored); an expired token's goes to the new token, and the expired one
/// no longer has it; a deleted token's is free.
#[tokio::test]
async fn a_local_token_id_names_one_live_token_ts_0001_7_1_16() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    put_token_as(c, ADMIN, token_with_lti("tk1@das.example.com", "ltX", 1))
        .await
        .expect("put");
    let before = pip.service.revision();
    let err = put_token_as(c, ADMIN, token_with_lti("tk2@das.example.com", "ltX", 1))
        .await
        .expect_err("taken");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(fields(&err), ["token.local_token_id"]);
    assert!(err.message().contains("tk1@das.example.com"), "{err:?}");
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    let got = tokens_by(c, &["tk2@das.example.com"], &["ltX"]).await;
    assert_eq!(got.unknown_ids, ["tk2@das.example.com"]);
    assert_eq!(got.tokens[0].token_id, "tk1@das.example.com");

    // Expired: its Local-Token-ID may be reused.
    put_token_as(c, ADMIN, token_with_lti("tk3@das.example.com", "ltY", -1))
        .await
        .expect("an expired token");
    let reused = put_token_as(c, ADMIN, token_with_lti("tk4@das.example.com", "ltY", 1))
        .await
        .expect("reuse");
    assert_eq!(reused.local_token_id, "ltY");
    let got = tokens_by(c, &["tk3@das.example.com"], &["ltY"]).await;
    let found: Vec<(&str, &str)> = got
        .tokens
        .iter()
        .map(|t| (t.token_id.as_str(), t.local_token_id.as_str()))
        .collect();
    assert_eq!(
        found,
        [("tk3@das.example.com", ""), ("tk4@das.example.com", "ltY")]
    );

    // Deleted: free.
    c.delete_token(pb::DeleteTokenRequest {
        originator: ADMIN.into(),
        token_id: "tk1@das.example.com".into(),
    })
    .await
    .expect("delete");
    assert_eq!(tokens_by(c, &[], &["ltX"]).await.unknown_ids, ["ltX"]);
    let taken = put_token_as(c, ADMIN, token_with_lti("tk2@das.example.com", "ltX", 1))
        .await
        .expect("free again");
    assert_eq!(taken.local_token_id, "ltX");
    pip.stop().await;
}

/// TS-0001 7.1.16: a Local-Token-ID is an NCName (`ltids` is a list of
/// xs:NCName, spec notes §6.1). PutToken refuses another one naming
/// `token.local_token_id`, GetTokens naming `local_token_ids[i]`; an empty
/// entry of the list is invalid as in `token_ids`.
#[tokio::test]
async fn local_token_ids_are_ncnames_ts_0001_7_1_16() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let before = pip.service.revision();
    for bad in ["1lt", "lt:1", "lt 1", "-lt", "lt/1"] {
        let err = put_token_as(c, ADMIN, token_with_lti("tk1@das.example.com", bad, 1))
            .await
            .expect_err(bad);
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
        assert_eq!(fields(&err), ["token.local_token_id"], "{bad}");
    }
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    for (asked, field) in [
        (vec!["lt1", "lt:2"], "local_token_ids[1]"),
        (vec![""], "local_token_ids[0]"),
    ] {
        let err = c
            .get_tokens(pb::GetTokensRequest {
                token_ids: Vec::new(),
                local_token_ids: asked.iter().map(|a| a.to_string()).collect(),
            })
            .await
            .expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(fields(&err), [field]);
    }
    // Every field at fault is named, not only those of the first kind.
    let err = c
        .get_tokens(pb::GetTokensRequest {
            token_ids: vec!["bad".into(), "tk1@das.example.com".into()],
            local_token_ids: vec!["1x".into(), String::new()],
        })
        .await
        .expect_err("three bad fields");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        fields(&err),
        ["token_ids[0]", "local_token_ids[0]", "local_token_ids[1]"]
    );
    // Each ID once: a small request may not ask for one large answer many
    // times over.
    let err = c
        .get_tokens(pb::GetTokensRequest {
            token_ids: vec!["tk1@das.example.com".into(); 3],
            local_token_ids: vec!["lt1".into(), "lt2".into(), "lt1".into()],
        })
        .await
        .expect_err("repeated IDs");
    assert_eq!(
        fields(&err),
        ["token_ids[1]", "token_ids[2]", "local_token_ids[2]"]
    );
    // Bounded as a PDP reads them: a token object over 64 KiB (a PDP
    // refuses it unread), a Local-Token-ID or audience entry over 2048
    // bytes, a token record over 1 MiB.
    let mut big_object = token_with_lti("tk2@das.example.com", "lt2", 1);
    big_object.token_object = format!("{}.b.c", "a".repeat(64 * 1024));
    let mut long_lti = token_with_lti("tk2@das.example.com", "lt2", 1);
    long_lti.local_token_id = format!("lt{}", "x".repeat(2047));
    let mut long_audience = token_with_lti("tk2@das.example.com", "lt2", 1);
    long_audience.audience = vec!["a".repeat(2049)];
    let mut huge = token_with_lti("tk2@das.example.com", "lt2", 1);
    huge.token_name = "n".repeat(1 << 20);
    for (token, field) in [
        (big_object, "token.token_object"),
        (long_lti, "token.local_token_id"),
        (long_audience, "token.audience[0]"),
        (huge, "token"),
    ] {
        let err = put_token_as(c, ADMIN, token).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(fields(&err), [field]);
    }
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    pip.stop().await;
}

/// TS-0003 7.3.2.3 step 6.2, two PDPs of one hosting CSE assigning a
/// Local-Token-ID to the same new token at once: every PutToken answers the
/// one that committed first, so both report one ID (TS-0001 7.1.16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_assignments_yield_one_local_token_id_ts_0001_7_1_16() {
    let pip = Running::start(&config(None)).await;
    let mut calls = Vec::new();
    let now = Utc::now();
    for i in 0..8 {
        let mut c = pip.client.clone();
        calls.push(tokio::spawn(async move {
            put_token_as(
                &mut c,
                ADMIN,
                token_at("tkrace@das.example.com", &format!("ltPdp{i}-1"), 1, now),
            )
            .await
            .expect("put")
            .local_token_id
        }));
    }
    let mut answered = Vec::new();
    for call in calls {
        answered.push(call.await.expect("task"));
    }
    answered.dedup();
    assert_eq!(answered.len(), 1, "{answered:?}");
    let mut c = pip.client.clone();
    let got = tokens_by(&mut c, &[], &[answered[0].as_str()]).await;
    assert_eq!(got.tokens[0].token_id, "tkrace@das.example.com");
    pip.stop().await;
}

/// The PIP's token writers (`--token-writer`, a PDP's `--pip-writer`) may
/// store tokens and nothing else; Local-Token-IDs survive a restart of a
/// durable PIP, still indexed (TS-0003 7.3.2.3 step 6.1.2 after a restart).
#[tokio::test]
async fn token_writers_store_local_token_ids_that_survive_a_restart() {
    let (_guard, dir) = temp_path("pip-grpc", "lti");
    let mut cfg = config(Some(dir.clone()));
    cfg.token_writers = vec!["CPdp".into()];
    let mut pip = Running::start(&cfg).await;
    let c = &mut pip.client;
    let now = Utc::now();
    put_token_as(c, "CPdp", token_at("tk1@das.example.com", "ltP-1", 1, now))
        .await
        .expect("a token writer stores tokens");
    let err = put_token_as(
        c,
        "Cmallory",
        token_with_lti("tk2@das.example.com", "ltM-1", 1),
    )
    .await
    .expect_err("not a token writer");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = c
        .delete_token(pb::DeleteTokenRequest {
            originator: "CPdp".into(),
            token_id: "tk1@das.example.com".into(),
        })
        .await
        .expect_err("token writers only store");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let err = c
        .put_group(pb::PutGroupRequest {
            originator: "CPdp".into(),
            group: Some(pb::Group {
                group_id: "/id-in/grp".into(),
                member_ids: vec!["CPdp".into()],
            }),
        })
        .await
        .expect_err("token writers only store tokens");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // A token writer cannot rewrite a stored token (here the admin's):
    // made expired, its Local-Token-ID would be free for another token
    // while it is still valid (TS-0001 7.1.16; spec notes §7.4: NP on
    // Update). It may give the same token without one its first.
    put_token_as(c, ADMIN, token_at("tk3@das.example.com", "ltA-1", 1, now))
        .await
        .expect("the admin stores a token");
    let mut rewrite = token_at("tk3@das.example.com", "ltA-1", -1, now);
    rewrite.holder = "Cmallory".into();
    let err = put_token_as(c, "CPdp", rewrite)
        .await
        .expect_err("a <token> is write-once");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = put_token_as(c, "CPdp", token_at("tk4@das.example.com", "ltA-1", 1, now))
        .await
        .expect_err("ltA-1 is still tk3's");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    put_token_as(c, ADMIN, token_at("tk5@das.example.com", "", 1, now))
        .await
        .expect("the admin stores a token without a Local-Token-ID");
    let kept = put_token_as(c, "CPdp", token_at("tk5@das.example.com", "ltP-5", 1, now))
        .await
        .expect("an assignment");
    assert_eq!(kept.local_token_id, "ltP-5");
    assert_eq!(kept.holder, "//sp.example.com/id-in/Cguest", "{kept:?}");
    pip.stop().await;

    let mut pip = Running::start(&cfg).await;
    let got = tokens_by(&mut pip.client, &[], &["ltP-1"]).await;
    assert_eq!(got.tokens.len(), 1, "{got:?}");
    assert_eq!(got.tokens[0].token_id, "tk1@das.example.com");
    // Still write-once after the restart.
    let again = put_token_as(
        &mut pip.client,
        "CPdp",
        token_at("tk1@das.example.com", "ltQ-1", 1, now),
    )
    .await
    .expect("put again");
    assert_eq!(again.local_token_id, "ltP-1");
    pip.stop().await;
}

/// TS-0003 7.4.3 step 4: a trusted Authorization Authority named by the
/// SP's own domain (`//fqdn`, which issues Role-IDs, spec notes §7.2)
/// trusts a role whose issuer names that domain in another case: domains
/// compare case-insensitively. Another domain stays untrusted.
#[tokio::test]
async fn an_sp_domain_issuer_is_trusted_in_any_case_7_4_3() {
    let mut config = config(None);
    config.trusted_issuers = vec!["//roles.example.com".to_owned()];
    let mut pip = Running::start(&config).await;
    let c = &mut pip.client;
    for (id, issuer) in [
        ("a@roles.example.com", "//Roles.Example.com"),
        ("b@roles.example.com", "//other.example.com"),
    ] {
        c.create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(role(id, issuer, "Calice", (-1, 1))),
        })
        .await
        .expect("create");
    }
    let verdicts = c
        .resolve_roles(pb::ResolveRolesRequest {
            originator: "Calice".into(),
            role_ids: vec!["a@roles.example.com".into(), "b@roles.example.com".into()],
            at: None,
        })
        .await
        .expect("resolve")
        .into_inner()
        .verdicts;
    assert!(verdicts[0].verified, "{verdicts:?}");
    assert!(
        !verdicts[1].verified && verdicts[1].reason.contains("not a trusted"),
        "{verdicts:?}"
    );
}

/// A read about an originator names one AE-ID or CSE-ID, as a role's
/// holder or a position's subject does when stored: `all`, an SP domain, a
/// wildcard or a Role-ID name many originators or none, and are
/// INVALID_ARGUMENT naming `originator`, not an answer about nobody.
#[tokio::test]
async fn reads_about_an_originator_take_one_originator_id() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    for who in ["all", "//sp.example.com", "C*", "guest@roles.example.com"] {
        let err = c
            .resolve_roles(pb::ResolveRolesRequest {
                originator: who.into(),
                role_ids: Vec::new(),
                at: None,
            })
            .await
            .expect_err(who);
        assert_eq!(err.code(), Code::InvalidArgument, "{who}");
        assert_eq!(fields(&err), ["originator"], "{who}");
        let err = c
            .get_position(pb::GetPositionRequest {
                originator: who.into(),
                at: None,
            })
            .await
            .expect_err(who);
        assert_eq!(fields(&err), ["originator"], "{who}");
        let err = c
            .check_membership(pb::CheckMembershipRequest {
                group_id: "/id-in/grp".into(),
                originator: who.into(),
            })
            .await
            .expect_err(who);
        assert_eq!(fields(&err), ["originator"], "{who}");
    }
}

/// Spec notes §7.4: every `<token>` attribute is NP on Update, so a token is
/// write-once. A PutToken naming a stored token ID with other attributes is
/// ALREADY_EXISTS naming the token ID (from the admin as from a token
/// writer) and changes nothing; the same record again stays OK (PDPs retry,
/// and the PDPs of one CSE store the token they were shown), and may give
/// the token its first Local-Token-ID, which then stays.
#[tokio::test]
async fn a_token_is_write_once_spec_notes_7_4_np_on_update() {
    let mut cfg = config(None);
    cfg.token_writers = vec!["CPdp".into()];
    let mut pip = Running::start(&cfg).await;
    let c = &mut pip.client;
    let now = Utc::now();
    let id = "tk1@das.example.com";
    let original = token_at(id, "", 1, now);
    put_token_as(c, ADMIN, original.clone())
        .await
        .expect("stored");
    let before = pip.service.revision();
    let mut later = original.clone();
    later.not_after = Some(ts(now + chrono::Duration::hours(5)));
    let mut other_object = original.clone();
    other_object.token_object = "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ0azIifQ.c2ln".into();
    let mut other_holder = original.clone();
    other_holder.holder = "Cmallory".into();
    for (what, changed) in [
        ("not_after", later),
        ("token_object", other_object),
        ("holder", other_holder),
    ] {
        for writer in [ADMIN, "CPdp"] {
            let err = put_token_as(c, writer, changed.clone())
                .await
                .expect_err(what);
            assert_eq!(
                err.code(),
                Code::AlreadyExists,
                "{what} by {writer}: {err:?}"
            );
            assert!(err.message().contains(id), "{err:?}");
            assert!(err.message().contains(what), "{err:?}");
        }
    }
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    let got = tokens_by(c, &[id], &[]).await;
    assert_eq!(got.tokens[0].not_after, original.not_after);
    assert_eq!(got.tokens[0].token_object, original.token_object);
    assert_eq!(got.tokens[0].holder, "//sp.example.com/id-in/Cguest");

    // The same record again: OK, from either writer; with a Local-Token-ID
    // it is the token's first, kept by later ones.
    put_token_as(c, ADMIN, original.clone())
        .await
        .expect("idempotent");
    let assigned = put_token_as(c, "CPdp", token_at(id, "ltP-1", 1, now))
        .await
        .expect("the same token with a Local-Token-ID");
    assert_eq!(assigned.local_token_id, "ltP-1");
    let again = put_token_as(c, "CPdp", token_at(id, "ltQ-1", 1, now))
        .await
        .expect("a retry");
    assert_eq!(again.local_token_id, "ltP-1");
    pip.stop().await;
}

/// Every timestamp the PIP takes lies in the protobuf Timestamp range
/// 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z (nanos 0..=999999999): a
/// stored time outside it would be answered in GetRole, ListRoles and the
/// verdicts as a Timestamp standard clients cannot serialize. Outside is
/// INVALID_ARGUMENT naming `<field>.seconds` and stores nothing; the bounds
/// themselves are accepted and read back.
#[tokio::test]
async fn timestamps_are_bounded_to_the_protobuf_timestamp_range() {
    const MIN: i64 = -62_135_596_800;
    const MAX: i64 = 253_402_300_799;
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let at = |seconds, nanos| Some(prost_types::Timestamp { seconds, nanos });
    let before = pip.service.revision();
    for (not_before, not_after, field) in [
        (at(0, 0), at(2_534_023_008_000, 0), "role.not_after.seconds"),
        (at(0, 0), at(MAX + 1, 0), "role.not_after.seconds"),
        (at(-62_135_596_900, 0), at(0, 0), "role.not_before.seconds"),
        (
            at(MIN - 1, 999_999_999),
            at(0, 0),
            "role.not_before.seconds",
        ),
    ] {
        let err = c
            .create_role(pb::CreateRoleRequest {
                originator: ADMIN.into(),
                role: Some(pb::Role {
                    not_before,
                    not_after,
                    ..role("r@roles.example.com", AUTHORITY, "Calice", (-1, 1))
                }),
            })
            .await
            .expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(fields(&err), [field]);
        assert!(err.message().contains("0001-01-01T00:00:00Z"), "{err:?}");
    }
    let err = c
        .report_position(pb::ReportPositionRequest {
            originator: "CLocationServer".into(),
            subject: "Calice".into(),
            position: Some(pb::Position {
                latitude: 48.0,
                longitude: 2.0,
                uncertainty_m: 0.0,
            }),
            measured_at: at(MIN - 100, 0),
        })
        .await
        .expect_err("before year 1");
    assert_eq!(fields(&err), ["measured_at.seconds"]);
    let err = put_token_as(
        c,
        ADMIN,
        pb::Token {
            not_after: at(MAX + 1, 0),
            ..token_with_lti("tk1@das.example.com", "", 1)
        },
    )
    .await
    .expect_err("after 9999");
    assert_eq!(fields(&err), ["token.not_after.seconds"]);
    let err = c
        .resolve_roles(pb::ResolveRolesRequest {
            originator: "Calice".into(),
            role_ids: Vec::new(),
            at: at(MAX + 1, 0),
        })
        .await
        .expect_err("at after 9999");
    assert_eq!(fields(&err), ["at.seconds"]);
    assert_eq!(pip.service.revision(), before, "nothing was stored");

    // The bounds: stored and read back as given.
    c.create_role(pb::CreateRoleRequest {
        originator: ADMIN.into(),
        role: Some(pb::Role {
            not_before: at(MIN, 0),
            not_after: at(MAX, 999_999_999),
            ..role("r@roles.example.com", AUTHORITY, "Calice", (-1, 1))
        }),
    })
    .await
    .expect("the whole range");
    let listed = c
        .list_roles(pb::ListRolesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .roles;
    assert_eq!(listed[0].not_before, at(MIN, 0));
    assert_eq!(listed[0].not_after, at(MAX, 999_999_999));
    pip.stop().await;
}

/// README "PIP": invalid input is INVALID_ARGUMENT naming the field, in
/// reads and deletes as in writes. An ID no role, token or group can have
/// (checked as CreateRole, PutToken and PutGroup check it: a Role-ID or
/// Token-ID is `name@fqdn` with a lower-case FQDN, spec notes §7.2; a group
/// ID is what acor reads as an exact ID, Decision 3) is refused, never
/// NOT_FOUND, an unknown ID or "no group". A well-formed unknown ID stays
/// NOT_FOUND (or unknown).
#[tokio::test]
async fn malformed_ids_are_invalid_argument_on_reads_and_deletes() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let before = pip.service.revision();
    for role_id in ["bad", "x*@roles.example", "x@Roles.example"] {
        let err = c
            .delete_role(pb::DeleteRoleRequest {
                originator: ADMIN.into(),
                role_id: role_id.into(),
                holder: String::new(),
            })
            .await
            .expect_err(role_id);
        assert_eq!(err.code(), Code::InvalidArgument, "{role_id}: {err:?}");
        assert_eq!(fields(&err), ["role_id"], "{role_id}");
    }
    let err = c
        .delete_token(pb::DeleteTokenRequest {
            originator: ADMIN.into(),
            token_id: "bad".into(),
        })
        .await
        .expect_err("bad");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(fields(&err), ["token_id"]);
    for group_id in ["all", "grp*"] {
        let err = c
            .delete_group(pb::DeleteGroupRequest {
                originator: ADMIN.into(),
                group_id: group_id.into(),
            })
            .await
            .expect_err(group_id);
        assert_eq!(err.code(), Code::InvalidArgument, "{group_id}: {err:?}");
        assert_eq!(fields(&err), ["group_id"], "{group_id}");
    }
    let err = c
        .get_group(pb::GetGroupRequest {
            group_id: "a@b.example".into(),
        })
        .await
        .expect_err("a Role-ID");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(fields(&err), ["group_id"]);
    let err = c
        .check_membership(pb::CheckMembershipRequest {
            group_id: "all".into(),
            originator: "Calice".into(),
        })
        .await
        .expect_err("all");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(fields(&err), ["group_id"]);
    for (ids, field) in [
        (vec!["bad id"], "token_ids[0]"),
        (vec![""], "token_ids[0]"),
        (vec!["tk1@das.example.com", "bad"], "token_ids[1]"),
    ] {
        let err = c
            .get_tokens(pb::GetTokensRequest {
                token_ids: ids.iter().map(|i| i.to_string()).collect(),
                local_token_ids: Vec::new(),
            })
            .await
            .expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{ids:?}: {err:?}");
        assert_eq!(fields(&err), [field], "{ids:?}");
    }
    assert_eq!(pip.service.revision(), before, "nothing changed");

    // Well-formed and unknown.
    let err = c
        .delete_role(pb::DeleteRoleRequest {
            originator: ADMIN.into(),
            role_id: "none@roles.example.com".into(),
            holder: String::new(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = c
        .delete_token(pb::DeleteTokenRequest {
            originator: ADMIN.into(),
            token_id: "tk9@das.example.com".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = c
        .delete_group(pb::DeleteGroupRequest {
            originator: ADMIN.into(),
            group_id: "grpNone".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = c
        .get_group(pb::GetGroupRequest {
            group_id: "/id-in/grpNone".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let unknown = tokens_by(c, &["tk9@das.example.com"], &[]).await;
    assert_eq!(unknown.unknown_ids, ["tk9@das.example.com"]);
    pip.stop().await;
}

/// Spec notes §7.3: a role's tokenLink (`rltl`) is an anyURI, which holds no
/// white space or control characters (RFC 3986): such a link is
/// INVALID_ARGUMENT naming `role.token_link` and nothing is stored. A URI
/// (or none) is accepted.
#[tokio::test]
async fn a_token_link_is_an_any_uri_spec_notes_7_3() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let before = pip.service.revision();
    for link in [
        "a b",
        " /id-in/tk1",
        "/id-in/tk1\n",
        "/id-in/\u{7}tk1",
        "a\tb",
    ] {
        let err = c
            .create_role(pb::CreateRoleRequest {
                originator: ADMIN.into(),
                role: Some(pb::Role {
                    token_link: link.into(),
                    ..role("r@roles.example.com", AUTHORITY, "Calice", (-1, 1))
                }),
            })
            .await
            .expect_err(link);
        assert_eq!(err.code(), Code::InvalidArgument, "{link:?}: {err:?}");
        assert_eq!(fields(&err), ["role.token_link"], "{link:?}");
    }
    assert_eq!(pip.service.revision(), before, "nothing was stored");
    let stored = c
        .create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(pb::Role {
                token_link: "//sp.example.com/id-in/tk-1".into(),
                ..role("r@roles.example.com", AUTHORITY, "Calice", (-1, 1))
            }),
        })
        .await
        .expect("a URI")
        .into_inner();
    assert_eq!(stored.token_link, "//sp.example.com/id-in/tk-1");
    pip.stop().await;
}

/// TS-0003 7.4.2.3 step 5: the Authorization Authority updates the tokenLink
/// of a `<role>` with the address of the `<token>` it issued; spec notes
/// §7.3: tokenLink is O on Update (every other attribute NP).
/// UpdateRoleTokenLink changes that one attribute of a stored role (the
/// admin only), durably, streamed to watchers as a role change; an unknown
/// role is NOT_FOUND, a link that is no anyURI INVALID_ARGUMENT naming
/// `token_link`, and neither changes anything.
#[tokio::test]
async fn a_roles_token_link_is_updated_ts_0003_7_4_2_3_step_5() {
    let (_guard, dir) = temp_path("pip-grpc", "token-link");
    let mut pip = Running::start(&config(Some(dir.clone()))).await;
    let c = &mut pip.client;
    let created = c
        .create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(role("r@roles.example.com", AUTHORITY, "Calice", (-1, 1))),
        })
        .await
        .expect("create")
        .into_inner();
    let mut watch = c
        .watch(pb::WatchAttributesRequest {
            from_revision: pip.service.revision(),
        })
        .await
        .expect("watch")
        .into_inner();
    let update = |role_id: &str, link: &str| pb::UpdateRoleTokenLinkRequest {
        originator: ADMIN.into(),
        role_id: role_id.into(),
        holder: "Calice".into(),
        token_link: link.into(),
    };
    let before = pip.service.revision();
    for (req, code, field) in [
        (
            update("r@roles.example.com", "a b"),
            Code::InvalidArgument,
            "token_link",
        ),
        (
            update("r@Roles.example.com", "/id-in/tk1"),
            Code::InvalidArgument,
            "role_id",
        ),
        (
            update("none@roles.example.com", "/id-in/tk1"),
            Code::NotFound,
            "",
        ),
        (
            pb::UpdateRoleTokenLinkRequest {
                originator: "Cmallory".into(),
                ..update("r@roles.example.com", "/id-in/tk1")
            },
            Code::PermissionDenied,
            "",
        ),
    ] {
        let err = c
            .update_role_token_link(req.clone())
            .await
            .expect_err("refused");
        assert_eq!(err.code(), code, "{req:?}: {err:?}");
        if !field.is_empty() {
            assert_eq!(fields(&err), [field], "{req:?}");
        }
    }
    assert_eq!(pip.service.revision(), before, "nothing changed");

    let link = "//sp.example.com/id-in/tk-1";
    let updated = c
        .update_role_token_link(update("r@roles.example.com", link))
        .await
        .expect("update")
        .into_inner();
    assert_eq!(
        updated,
        pb::Role {
            token_link: link.into(),
            ..created.clone()
        },
        "only the tokenLink changed"
    );
    let event = next_event(&mut watch).await;
    assert_eq!(event.revision, before + 1);
    assert_eq!(
        event.change,
        Some(pb::attribute_change::Change::Role(pb::RoleChanged {
            role_id: "r@roles.example.com".into(),
            holder: "//sp.example.com/id-in/Calice".into(),
            deleted: false,
        }))
    );
    pip.stop().await;

    let mut pip = Running::start(&config(Some(dir.clone()))).await;
    let stored = pip
        .client
        .get_role(pb::GetRoleRequest {
            role_id: "r@roles.example.com".into(),
            holder: String::new(),
        })
        .await
        .expect("after a restart")
        .into_inner();
    assert_eq!(stored.token_link, link);
    pip.stop().await;
}

/// Decision 9: a write whose originator is no AE-ID or CSE-ID is the
/// request's fault, INVALID_ARGUMENT naming `originator` (not a
/// PERMISSION_DENIED that hides the typo); an ID longer than 2048 bytes,
/// as given or in the absolute form the PIP stores, is refused naming its
/// field. Nothing is stored.
#[tokio::test]
async fn malformed_writers_and_overlong_ids_are_invalid_arguments_decision_9() {
    let mut pip = Running::start(&config(None)).await;
    let c = &mut pip.client;
    let long_stem = format!("C{}", "x".repeat(2048));
    // 2048 bytes as given, longer in the absolute form it is compared in.
    let grows_writer = format!("C{}", "x".repeat(2047));
    for who in [
        "a b",
        "all",
        "Cx*",
        long_stem.as_str(),
        grows_writer.as_str(),
    ] {
        let err = c
            .put_group(pb::PutGroupRequest {
                originator: who.into(),
                group: Some(pb::Group {
                    group_id: "grpW".into(),
                    member_ids: vec!["Calice".into()],
                }),
            })
            .await
            .expect_err(who);
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{who}: {err:?}");
        assert_eq!(fields(&err), ["originator"], "{who}");
    }
    let err = put_group(c, "grpW".into(), vec![long_stem.clone()])
        .await
        .expect_err("an overlong member");
    assert_eq!(fields(&err), ["group.member_ids[0]"], "{err:?}");
    // A member of 2048 bytes as given is longer in the absolute form the
    // PIP stores it in and the PDP asks about it by: refused too, or it
    // could never be asked about.
    let grows = format!("C{}", "x".repeat(2047));
    let err = put_group(c, "grpW".into(), vec!["Cok".into(), grows.clone()])
        .await
        .expect_err("a member too long in absolute form");
    assert_eq!(fields(&err), ["group.member_ids[1]"], "{err:?}");
    assert!(err.message().contains("absolute form"), "{err:?}");
    let err = put_group(c, grows.clone(), vec!["Cok".into()])
        .await
        .expect_err("a group ID too long in absolute form");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let err = c
        .create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(role("r1@roles.example.com", AUTHORITY, &grows, (-1, 1))),
        })
        .await
        .expect_err("a holder too long in absolute form");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let long_role = format!("{}@roles.example.com", "r".repeat(2048));
    let err = c
        .create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(role(&long_role, AUTHORITY, "Calice", (-1, 1))),
        })
        .await
        .expect_err("an overlong Role-ID");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(fields(&err), ["role.role_id"], "{err:?}");
    let mut huge = role("r2@roles.example.com", AUTHORITY, "Calice", (-1, 1));
    huge.role_name = "n".repeat(1 << 20);
    let err = c
        .create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(huge),
        })
        .await
        .expect_err("a role record over 1 MiB");
    assert_eq!(fields(&err), ["role"], "{err:?}");
    assert_eq!(pip.service.revision(), 0, "nothing stored");
}
