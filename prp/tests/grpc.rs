//! The PolicyRetrievalPoint service over a real gRPC connection.

mod common;

use std::time::Duration;

use authz_proto::pb;
use authz_proto::pb::watch_event::Event;
use common::*;
use tonic::Code;
use tonic_types::StatusExt;

const ALL: u32 = 63;

fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// An empty ID is a malformed request naming the field, not a lookup that
/// finds nothing.
#[tokio::test]
async fn empty_ids_are_invalid_arguments() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let get = c
        .get_acp(pb::GetAcpRequest {
            acp_id: String::new(),
        })
        .await
        .expect_err("empty");
    assert_eq!(get.code(), Code::InvalidArgument);
    assert_eq!(violations(&get), ["acp_id"]);
    let delete = c
        .delete_resource(pb::DeleteResourceRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            resource_id: String::new(),
        })
        .await
        .expect_err("empty");
    assert_eq!(violations(&delete), ["resource_id"]);
    prp.shutdown().await;
}

#[tokio::test]
async fn acp_create_get_list_update_delete() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;

    let created = c
        .create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.revision, 1);
    assert_eq!(
        created.acp.as_ref().and_then(|a| a.resource_id.as_deref()),
        Some("acp1")
    );

    let got = c
        .get_acp(pb::GetAcpRequest {
            acp_id: "acp1".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.acp, created.acp);

    let dup = c
        .create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect_err("duplicate");
    assert_eq!(dup.code(), Code::AlreadyExists);
    // Named like every other refused field: the one that carries the ID.
    let bad = dup.get_details_bad_request().expect("a BadRequest detail");
    assert_eq!(bad.field_violations[0].field, "resource_id", "{dup:?}");
    assert_eq!(bad.field_violations[0].description, "acp1 already exists");

    c.create_acp(create_req(ADMIN, acp("acp2", &["CBob"], &[ADMIN], ALL)))
        .await
        .expect("create acp2");
    let list = c
        .list_acps(pb::ListAcpsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.acps.len(), 2);
    assert_eq!(list.revision, 2);

    // Update without pvs keeps the stored pvs.
    let mut new = acp("acp1", &["CCarol"], &[ADMIN], ALL);
    new.self_privileges = None;
    let updated = c
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp: Some(new),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.revision, 3);
    let acp1 = updated.acp.expect("acp");
    assert_eq!(
        acp1.privileges
            .as_ref()
            .map(|p| p.rules[0].originators.clone()),
        Some(vec!["CCarol".to_string()])
    );
    assert_eq!(
        acp1.self_privileges.as_ref().map(|p| p.rules.len()),
        Some(1)
    );

    // The same ACP again (a file applied twice) is no change: no
    // revision, nothing for the PDPs (whose PEPs would drop their caches).
    let mut same = acp("acp1", &["CCarol"], &[ADMIN], ALL);
    same.self_privileges = None;
    let again = c
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp: Some(same),
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(again.revision, 3, "no new revision for no change");
    assert_eq!(again.acp.expect("acp"), acp1);
    // ... but only the ACP's owner may even try: a no-change update by
    // someone without UPDATE in its pvs is still refused.
    let mut same = acp("acp1", &["CCarol"], &[ADMIN], ALL);
    same.self_privileges = None;
    let refused = c
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: "CMallory".into(),
            acp: Some(same),
        })
        .await
        .expect_err("no UPDATE in pvs");
    assert_eq!(refused.code(), Code::PermissionDenied);

    let missing = c
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp: Some(acp("nope", &["x"], &[ADMIN], ALL)),
        })
        .await
        .expect_err("absent");
    assert_eq!(missing.code(), Code::NotFound);

    let deleted = c
        .delete_acp(pb::DeleteAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp_id: "acp1".into(),
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.revision, 4);
    let gone = c
        .get_acp(pb::GetAcpRequest {
            acp_id: "acp1".into(),
        })
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
    prp.shutdown().await;
}

#[tokio::test]
async fn invalid_acp_names_the_field_and_stores_nothing() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let mut bad = acp("acp1", &["CAlice"], &[ADMIN], ALL);
    if let Some(pv) = bad.privileges.as_mut() {
        pv.rules[0].contexts = vec![pb::AccessControlContext {
            time_windows: vec!["not a crontab".into()],
            ..Default::default()
        }];
    }
    let err = c
        .create_acp(create_req(ADMIN, bad))
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields = violations(&err);
    assert!(
        fields.iter().any(|f| f == "pv.acr[0].acco[0].actw[0]"),
        "{fields:?}"
    );

    // A missing resource_id is named too.
    let mut anonymous = acp("x", &["CAlice"], &[ADMIN], ALL);
    anonymous.resource_id = None;
    let err = c
        .create_acp(create_req(ADMIN, anonymous))
        .await
        .expect_err("no id");
    assert_eq!(violations(&err), vec!["resource_id".to_string()]);

    // The default policy's synthetic IDs are reserved.
    let err = c
        .create_acp(create_req(
            ADMIN,
            acp("defaultPolicy:x", &["CAlice"], &[ADMIN], ALL),
        ))
        .await
        .expect_err("reserved");
    assert_eq!(violations(&err), vec!["resource_id".to_string()]);
    // So is an ID no request could name (an `acpi` entry may not hold it).
    let err = c
        .create_acp(create_req(ADMIN, acp("acp 1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect_err("white space");
    assert_eq!(violations(&err), vec!["resource_id".to_string()]);
    // An acor entry whose absolute form at this CSE is longer than an ID
    // may be (2048 bytes: TS-0001 7.2, README) can match no originator and
    // name no group: refused, on a create as on an update.
    let long_stem = format!("C{}", "a".repeat(2040));
    let err = c
        .create_acp(create_req(
            ADMIN,
            acp("acpLong", &[&long_stem], &[ADMIN], ALL),
        ))
        .await
        .expect_err("too long in absolute form");
    assert_eq!(violations(&err), vec!["pv.acr[0].acor[0]".to_string()]);
    assert!(
        err.message().contains("absolute form") || format!("{err:?}").contains("absolute form"),
        "{err:?}"
    );
    let err = c
        .update_acp(pb::UpdateAcpRequest {
            originator: ADMIN.into(),
            acp: Some(acp("acpLong", &["CAlice"], &[&long_stem], ALL)),
            ..Default::default()
        })
        .await
        .expect_err("too long in absolute form");
    assert_eq!(violations(&err), vec!["pvs.acr[0].acor[0]".to_string()]);

    let list = c
        .list_acps(pb::ListAcpsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(list.acps.is_empty());
    assert_eq!(list.revision, 0);
    prp.shutdown().await;
}

#[tokio::test]
async fn create_without_pvs_rule_is_invalid_ts0004_7_4_2_2_1() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let mut empty = acp("acp1", &["CAlice"], &[ADMIN], ALL);
    empty.self_privileges = Some(set(vec![]));
    let err = c
        .create_acp(create_req(ADMIN, empty))
        .await
        .expect_err("empty pvs");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), vec!["pvs.acr".to_string()]);

    let mut absent = acp("acp1", &["CAlice"], &[ADMIN], ALL);
    absent.self_privileges = None;
    absent.privileges = None;
    let err = c
        .create_acp(create_req(ADMIN, absent))
        .await
        .expect_err("no pv, pvs");
    assert_eq!(violations(&err), vec!["pv".to_string(), "pvs".to_string()]);

    // An update may not remove every pvs rule either (TS-0004 7.4.2.2.3).
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("create");
    let mut wipe = acp("acp1", &["CAlice"], &[ADMIN], ALL);
    wipe.self_privileges = Some(set(vec![]));
    let err = c
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp: Some(wipe),
        })
        .await
        .expect_err("wipe pvs");
    assert_eq!(err.code(), Code::InvalidArgument);
    prp.shutdown().await;
}

/// TS-0001 9.6.2.0 (spec notes §2.2): if pv is non-NULL, adri and apri
/// shall not be present. pv is mandatory on Create and an Update without pv
/// keeps the stored one, so the PRP refuses both on create and on update,
/// naming pdp_addresses / prp_addresses, and stores nothing; airi
/// (pip_addresses) stays allowed.
#[tokio::test]
async fn adri_and_apri_need_a_null_pv_ts0001_9_6_2_0() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    let before = stored_state(c).await;
    let with = |id: &str, pdp: &[&str], prp_: &[&str]| {
        let mut a = acp(id, &["CAlice"], &[ADMIN], ALL);
        a.pdp_addresses = pdp.iter().map(|s| s.to_string()).collect();
        a.prp_addresses = prp_.iter().map(|s| s.to_string()).collect();
        a
    };
    for (bad, fields) in [
        (with("acp2", &["/id-in/pdp1"], &[]), vec!["pdp_addresses"]),
        (with("acp2", &[], &["/id-in/prp1"]), vec!["prp_addresses"]),
        (
            with("acp2", &["/id-in/pdp1"], &["/id-in/prp1"]),
            vec!["pdp_addresses", "prp_addresses"],
        ),
    ] {
        let err = c
            .create_acp(create_req(ADMIN, bad))
            .await
            .expect_err("create with pv and adri/apri");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violations(&err), fields);
        assert!(err.message().contains("non-NULL"), "{}", err.message());
    }
    // The same attribute given as an untyped value is named where it was.
    let mut untyped = acp("acp2", &["CAlice"], &[ADMIN], ALL);
    untyped.other_attributes = Some(prost_types::Struct {
        fields: [(
            "apri".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("/id-in/prp1".into())),
            },
        )]
        .into(),
    });
    let err = c
        .create_acp(create_req(ADMIN, untyped))
        .await
        .expect_err("apri in other_attributes");
    assert_eq!(violations(&err), ["other_attributes.apri"]);

    // Update: pv omitted (the stored one stays) or given, for the admin too.
    for (pv, fields) in [
        (false, vec!["prp_addresses"]),
        (true, vec!["pdp_addresses"]),
    ] {
        let mut update = if pv {
            with("acp1", &["/id-in/pdp1"], &[])
        } else {
            with("acp1", &[], &["/id-in/prp1"])
        };
        if !pv {
            update.privileges = None;
        }
        let err = c
            .update_acp(pb::UpdateAcpRequest {
                role_ids: Vec::new(),
                originator: ADMIN.into(),
                acp: Some(update),
            })
            .await
            .expect_err("update leaving pv with adri/apri");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violations(&err), fields);
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");

    // airi is not restricted.
    let mut airi = acp("acp3", &["CAlice"], &[ADMIN], ALL);
    airi.pip_addresses = vec!["/id-in/pip1".into()];
    c.create_acp(create_req(ADMIN, airi))
        .await
        .expect("pip_addresses with pv");
    prp.shutdown().await;
}

/// TS-0003 7.1.1: requests *to* an ACP are judged by its selfPrivileges
/// (its creation is not: see `create_acp_is_authorized_by_the_parent_*`).
#[tokio::test]
async fn self_privileges_guard_acp_writes() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;

    // Being in the new ACP's own pvs does not let Alice create it.
    let err = c
        .create_acp(create_req(
            "CAlice",
            acp("acpA", &["CAlice"], &["CAlice"], ALL),
        ))
        .await
        .expect_err("no parent");
    assert_eq!(err.code(), Code::PermissionDenied);
    c.create_acp(create_req(
        ADMIN,
        acp("acpA", &["CAlice"], &["CAlice"], ALL),
    ))
    .await
    .expect("the admin creates it");

    // Updating and deleting need UPDATE / DELETE in the stored pvs.
    let update = |originator: &str| pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: originator.into(),
        acp: Some(acp("acpA", &["CAlice", "CBob"], &["CAlice"], ALL)),
    };
    let err = c.update_acp(update("CBob")).await.expect_err("Bob");
    assert_eq!(err.code(), Code::PermissionDenied);
    c.update_acp(update(ADMIN)).await.expect("admin bypasses");
    // The absolute form of Alice's ID is the same originator.
    c.update_acp(update("//sp.example.com/id-in/CAlice"))
        .await
        .expect("Alice, absolute");

    // Alice keeps only RETRIEVE|UPDATE in pvs: she can no longer delete.
    c.update_acp(pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: "CAlice".into(),
        acp: Some(acp("acpA", &["CAlice"], &["CAlice"], 2 | 4)),
    })
    .await
    .expect("Alice narrows pvs");
    let delete = |originator: &str| pb::DeleteAcpRequest {
        role_ids: Vec::new(),
        originator: originator.into(),
        acp_id: "acpA".into(),
    };
    let err = c.delete_acp(delete("CAlice")).await.expect_err("no DELETE");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c.delete_acp(delete("CBob")).await.expect_err("Bob");
    assert_eq!(err.code(), Code::PermissionDenied);
    c.delete_acp(delete(ADMIN)).await.expect("admin deletes");

    // An empty originator is invalid, not denied.
    let err = c
        .delete_acp(delete(""))
        .await
        .expect_err("empty originator");
    assert_eq!(err.code(), Code::InvalidArgument);
    prp.shutdown().await;
}

/// An `acod` element (TS-0003 7.1.5): `ty` the parent must have, `chty`
/// the types that may be created under it.
fn acod(ty: Option<u32>, chty: &[u32]) -> pb::ObjectDetails {
    pb::ObjectDetails {
        resource_type: ty,
        child_resource_types: chty.to_vec(),
        ..Default::default()
    }
}

/// An ACP with `parent_id` set.
fn acp_under(id: &str, parent: &str, pvs_originators: &[&str]) -> pb::AccessControlPolicy {
    let mut a = acp(id, &["all"], pvs_originators, ALL);
    a.parent_id = Some(parent.into());
    a
}

const ONLY_ADMIN_ACP: &str = "only the admin may create an ACP outside a registered parent";
const ONLY_ADMIN_RESOURCE: &str =
    "only the admin may create a resource outside a registered parent";

/// TS-0001 9.6.2 / TS-0003 7.1.1, 7.1.5: a Create of an
/// `<accessControlPolicy>` is addressed to its parent (CSEBase, AE,
/// remoteCSE) and needs CREATE there, `acod` `chty` applying with resource
/// type 1; the new ACP's own pvs do not authorize its creation.
#[tokio::test]
async fn create_acp_is_authorized_by_the_parent_ts0001_9_6_2_ts0003_7_1_1() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    // pv of acpCb: Alice may create ACPs (chty [1]); Bob only containers
    // (chty [3]); Carol ACPs, but only under a CSEBase (ty 5).
    let mut acp_cb = acp("acpCb", &["all"], &[ADMIN], ALL);
    acp_cb.privileges = Some(set(vec![
        pb::AccessControlRule {
            object_details: vec![acod(None, &[1])],
            ..rule(&["CAlice"], 1)
        },
        pb::AccessControlRule {
            object_details: vec![acod(None, &[3])],
            ..rule(&["CBob"], 1)
        },
        pb::AccessControlRule {
            object_details: vec![acod(Some(5), &[1])],
            ..rule(&["CCarol"], 1)
        },
    ]));
    c.create_acp(create_req(ADMIN, acp_cb))
        .await
        .expect("acpCb");
    c.put_resource(put_req(ADMIN, resource("cb", "", 5, Some(&["acpCb"]), "")))
        .await
        .expect("cb");
    c.put_resource(put_req(
        ADMIN,
        resource("ae1", "cb", 2, Some(&["acpCb"]), ""),
    ))
    .await
    .expect("ae1");

    // Mallory names herself in the new ACP's pvs: without a parent only
    // the admin may create it.
    let err = c
        .create_acp(create_req(
            "CMallory",
            acp("acpX", &["all"], &["CMallory"], ALL),
        ))
        .await
        .expect_err("no parent");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains(ONLY_ADMIN_ACP), "{}", err.message());
    // ... nor under a parent the PRP does not know.
    let err = c
        .create_acp(create_req(
            "CMallory",
            acp_under("acpX", "nowhere", &["CMallory"]),
        ))
        .await
        .expect_err("unknown parent");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains(ONLY_ADMIN_ACP), "{}", err.message());
    // ... nor under cb, whose policies do not name her.
    let err = c
        .create_acp(create_req(
            "CMallory",
            acp_under("acpX", "cb", &["CMallory"]),
        ))
        .await
        .expect_err("not in cb's pv");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("DENY"), "{}", err.message());

    // chty [1]: Alice may create an ACP under cb.
    c.create_acp(create_req(
        "CAlice",
        acp_under("acpAlice", "cb", &["CAlice"]),
    ))
    .await
    .expect("CREATE with chty [1] in cb's pv");
    // chty [3] only: Bob may not.
    let err = c
        .create_acp(create_req("CBob", acp_under("acpBob", "cb", &["CBob"])))
        .await
        .expect_err("chty [3] does not list resource type 1");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("not in chty"), "{}", err.message());
    // acod ty 5: Carol may create under the CSEBase, not under the AE.
    c.create_acp(create_req(
        "CCarol",
        acp_under("acpCarol", "cb", &["CCarol"]),
    ))
    .await
    .expect("parent of type 5");
    let err = c
        .create_acp(create_req(
            "CCarol",
            acp_under("acpCarol2", "ae1", &["CCarol"]),
        ))
        .await
        .expect_err("parent of type 2");
    assert_eq!(err.code(), Code::PermissionDenied);

    // The admin always may, with or without a parent.
    c.create_acp(create_req(ADMIN, acp("acpAdmin", &["all"], &[ADMIN], ALL)))
        .await
        .expect("admin, no parent");
    c.create_acp(create_req(
        ADMIN,
        acp_under("acpAdmin2", "nowhere", &[ADMIN]),
    ))
    .await
    .expect("admin, unknown parent");

    // A deleted ACP that a resource still references cannot be re-created
    // by whoever names themselves in its pvs.
    c.create_acp(create_req(
        ADMIN,
        acp("acpGone", &["CAlice"], &[ADMIN], ALL),
    ))
    .await
    .expect("acpGone");
    c.put_resource(put_req(
        ADMIN,
        resource("cnt", "cb", 3, Some(&["acpGone"]), ""),
    ))
    .await
    .expect("cnt");
    c.delete_acp(pb::DeleteAcpRequest {
        role_ids: Vec::new(),
        originator: ADMIN.into(),
        acp_id: "acpGone".into(),
    })
    .await
    .expect("delete acpGone");
    let mut takeover = acp("acpGone", &["CMallory"], &["CMallory"], ALL);
    takeover.privileges = Some(set(vec![rule(&["CMallory"], ALL)]));
    let err = c
        .create_acp(create_req("CMallory", takeover))
        .await
        .expect_err("takeover");
    assert_eq!(err.code(), Code::PermissionDenied);
    // Not even by Alice, who may create ACPs under cb: a referenced ID is
    // the admin's to reuse.
    let err = c
        .create_acp(create_req(
            "CAlice",
            acp_under("acpGone", "cb", &["CAlice"]),
        ))
        .await
        .expect_err("referenced ID");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("still references"),
        "{}",
        err.message()
    );
    let gone = c
        .get_acp(pb::GetAcpRequest {
            acp_id: "acpGone".into(),
        })
        .await
        .expect_err("still deleted");
    assert_eq!(gone.code(), Code::NotFound);
    prp.shutdown().await;
}

/// The whole stored state, as a watcher from revision 0 sees it (a
/// snapshot): a rejected write must leave it equal.
async fn stored_state(
    c: &mut pb::policy_retrieval_point_client::PolicyRetrievalPointClient<
        tonic::transport::Channel,
    >,
) -> pb::WatchEvent {
    let mut w = c
        .watch(pb::WatchRequest {
            from_revision: 0,
            from_tag: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    next(&mut w).await
}

/// `(ID, pv|pvs, dynamic)` of each policy applicable to `target`.
async fn applicable_ids(
    c: &mut pb::policy_retrieval_point_client::PolicyRetrievalPointClient<
        tonic::transport::Channel,
    >,
    target: &str,
) -> Vec<(String, i32, bool)> {
    ids(&c
        .get_applicable_policies(pb::GetApplicablePoliciesRequest {
            target: target.into(),
            ..Default::default()
        })
        .await
        .expect("applicable")
        .into_inner())
}

/// TS-0001 10.2.3.1 step 1 (spec notes §2.3): a target's `pvs` apply only
/// when the target IS an `<accessControlPolicy>`. An ACP created with a
/// resource's ID would have every request to that resource judged by the
/// ACP's pvs, so ACPs and resources share one ID space: CreateAcp refuses a
/// resource's ID and PutResource an ACP's (ALREADY_EXISTS naming the
/// field), for the admin too, and the store is left unchanged.
#[tokio::test]
async fn acp_cannot_take_a_resource_id_ts0001_10_2_3_1() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    // Alice's container cntAlice, guarded by acpAlice (pv: Alice, all).
    let mut acp_alice = acp("acpAlice", &["CAlice"], &[ADMIN], ALL);
    acp_alice.privileges = Some(set(vec![rule(&["CAlice"], ALL)]));
    c.create_acp(create_req(ADMIN, acp_alice))
        .await
        .expect("acpAlice");
    for r in [
        resource("cb", "", 5, Some(&["acpAlice"]), ""),
        // Bob's AE without acpi: the default policy gives its creator, Bob,
        // every operation on it, CREATE of an ACP under it included.
        resource("CBob", "cb", 2, None, "CBob"),
        resource("cntAlice", "cb", 3, Some(&["acpAlice"]), "CAlice"),
    ] {
        c.put_resource(put_req(ADMIN, r)).await.expect("resource");
    }
    let before = stored_state(c).await;
    let alice_policies = applicable_ids(c, "cntAlice").await;
    assert_eq!(
        alice_policies,
        vec![(
            "acpAlice".to_string(),
            pb::PrivilegeKind::Privileges as i32,
            false
        )]
    );

    // Bob may create ACPs under his AE, but not one named cntAlice.
    let mut hijack = acp("cntAlice", &["CBob"], &["CBob"], ALL);
    hijack.parent_id = Some("CBob".into());
    for originator in ["CBob", ADMIN] {
        let err = c
            .create_acp(create_req(originator, hijack.clone()))
            .await
            .expect_err("the ID of a resource");
        assert_eq!(err.code(), Code::AlreadyExists, "{originator}");
        assert_eq!(violations(&err), ["resource_id"], "{originator}");
        assert!(
            err.message()
                .contains("cntAlice is already the ID of a resource"),
            "{}",
            err.message()
        );
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");
    assert_eq!(
        applicable_ids(c, "cntAlice").await,
        alice_policies,
        "still acpAlice's pv"
    );
    let err = c
        .get_acp(pb::GetAcpRequest {
            acp_id: "cntAlice".into(),
        })
        .await
        .expect_err("no such ACP");
    assert_eq!(err.code(), Code::NotFound);

    // The other way round: a resource may not take an ACP's ID.
    for (originator, parent) in [("CBob", "CBob"), (ADMIN, "cb")] {
        let err = c
            .put_resource(put_req(
                originator,
                resource("acpAlice", parent, 3, None, "CBob"),
            ))
            .await
            .expect_err("the ID of an ACP");
        assert_eq!(err.code(), Code::AlreadyExists, "{originator}");
        assert_eq!(violations(&err), ["resource.resource_id"], "{originator}");
        assert!(
            err.message()
                .contains("acpAlice is already the ID of an ACP"),
            "{}",
            err.message()
        );
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");

    // Bob may still create an ACP under his AE with an ID nobody holds.
    let mut own = acp("acpBob", &["CBob"], &["CBob"], ALL);
    own.parent_id = Some("CBob".into());
    c.create_acp(create_req("CBob", own))
        .await
        .expect("a fresh ID");
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3: `pi` cannot change once a resource exists; moving it
/// would skip the CREATE check under the new parent.
#[tokio::test]
async fn parent_of_a_stored_resource_is_fixed_ts0001_9_6_1_3() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(
        ADMIN,
        acp("acp1", &["CAlice"], &["CAlice"], ALL),
    ))
    .await
    .expect("acp1");
    for (id, parent) in [("cb", ""), ("cb2", "")] {
        c.put_resource(put_req(ADMIN, resource(id, parent, 5, Some(&["acp1"]), "")))
            .await
            .expect("root");
    }
    c.put_resource(put_req(
        ADMIN,
        resource("cnt", "cb", 3, Some(&["acp1"]), ""),
    ))
    .await
    .expect("cnt");
    let err = c
        .put_resource(put_req(
            "CAlice",
            resource("cnt", "cb2", 3, Some(&["acp1"]), ""),
        ))
        .await
        .expect_err("move");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), ["resource.parent_id"]);
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3.2 / TS-0003 7.1.5: registering a new resource is its
/// Create, which needs CREATE of its type in the parent's applicable
/// policies (the parent's default policy when its acpi is not set).
#[tokio::test]
async fn new_resource_needs_create_in_its_parent_ts0003_7_1_5() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    // pv of acpCb: Alice may create containers (chty [3]); Bob may retrieve.
    let mut acp_cb = acp("acpCb", &["CBob"], &[ADMIN], ALL);
    if let Some(pv) = acp_cb.privileges.as_mut() {
        pv.rules.push(pb::AccessControlRule {
            object_details: vec![acod(None, &[3])],
            ..rule(&["CAlice"], 1)
        });
    }
    c.create_acp(create_req(ADMIN, acp_cb))
        .await
        .expect("acpCb");
    c.put_resource(put_req(ADMIN, resource("cb", "", 5, Some(&["acpCb"]), "")))
        .await
        .expect("cb");

    // Bob has no CREATE in cb's policies.
    let err = c
        .put_resource(put_req("CBob", resource("cntB", "cb", 3, None, "CBob")))
        .await
        .expect_err("Bob may only retrieve");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("DENY"), "{}", err.message());
    // Alice may create a container, not an AE (chty [3]).
    c.put_resource(put_req("CAlice", resource("cntA", "cb", 3, None, "CAlice")))
        .await
        .expect("Alice creates a container");
    let err = c
        .put_resource(put_req("CAlice", resource("aeA", "cb", 2, None, "CAlice")))
        .await
        .expect_err("chty [3] does not list 2");
    assert_eq!(err.code(), Code::PermissionDenied);
    // No parent, or one the PRP does not know: only the admin.
    for parent in ["", "nowhere"] {
        let err = c
            .put_resource(put_req(
                "CAlice",
                resource("orphan", parent, 3, None, "CAlice"),
            ))
            .await
            .expect_err("outside a registered parent");
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(
            err.message().contains(ONLY_ADMIN_RESOURCE),
            "{}",
            err.message()
        );
        c.put_resource(put_req(ADMIN, resource("orphan", parent, 3, None, "")))
            .await
            .expect("the admin may");
        c.delete_resource(pb::DeleteResourceRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            resource_id: "orphan".into(),
        })
        .await
        .expect("cleanup");
    }
    // cntA has no acpi: its default policy gives its creator, Alice, every
    // right, so she may create a contentInstance in it; Bob may not.
    c.put_resource(put_req(
        "CAlice",
        resource("cin1", "cntA", 4, None, "CAlice"),
    ))
    .await
    .expect("the creator of the parent");
    let err = c
        .put_resource(put_req("CBob", resource("cin2", "cntA", 4, None, "CBob")))
        .await
        .expect_err("not the creator of the parent");
    assert_eq!(err.code(), Code::PermissionDenied);
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3.2: the default policy grants "the Originator of the
/// successful Create only", so `cr` and `cstn` must each name one
/// originator, not an `acor` pattern that names many.
#[tokio::test]
async fn creator_and_custodian_must_name_one_originator_ts0001_9_6_1_3_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    for bad in [
        "all",
        "//sp.example.com",
        "C*",
        "//sp.example.com/id-in/C*",
        "guest@roles.example.com",
        "C bob",
    ] {
        let err = c
            .put_resource(put_req(ADMIN, resource("cnt", "", 3, None, bad)))
            .await
            .expect_err("creator");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(
            violations(&err),
            vec!["resource.creator".to_string()],
            "{bad}"
        );
        let mut r = resource("cnt", "", 3, None, "CAlice");
        r.custodian = bad.into();
        let err = c
            .put_resource(put_req(ADMIN, r))
            .await
            .expect_err("custodian");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(
            violations(&err),
            vec!["resource.custodian".to_string()],
            "{bad}"
        );
    }
    let err = c
        .get_resource(pb::GetResourceRequest {
            resource_id: "cnt".into(),
        })
        .await
        .expect_err("nothing stored");
    assert_eq!(err.code(), Code::NotFound);
    // One originator in any form is fine; empty means absent. (One
    // resource each: `cr` is read-only once a resource exists.)
    for (i, good) in [
        "CAlice",
        "SAlice",
        "/id-in/CAlice",
        "//sp.example.com/id-in/CAlice",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = resource(&format!("cnt{i}"), "", 3, None, good);
        r.custodian = good.into();
        c.put_resource(put_req(ADMIN, r)).await.expect(good);
    }
    prp.shutdown().await;
}

#[tokio::test]
async fn acpi_change_needs_update_in_pvs_of_current_acps_ts0001_9_6_1_3_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    // pv of both lets everyone RETRIEVE; pvs: acp1 -> Alice UPDATE, acp2 -> Bob UPDATE.
    c.create_acp(create_req(ADMIN, acp("acp1", &["all"], &["CAlice"], 4)))
        .await
        .expect("acp1");
    c.create_acp(create_req(ADMIN, acp("acp2", &["all"], &["CBob"], 4)))
        .await
        .expect("acp2");
    c.put_resource(put_req(ADMIN, resource("cb", "", 5, Some(&["acp1"]), "")))
        .await
        .expect("cb");
    c.put_resource(put_req(
        ADMIN,
        resource("cnt", "cb", 3, Some(&["acp1"]), "CAlice"),
    ))
    .await
    .expect("cnt");

    let to = |acpi: &[&str]| resource("cnt", "cb", 3, Some(acpi), "CAlice");
    let err = c
        .put_resource(put_req("CBob", to(&["acp2"])))
        .await
        .expect_err("Bob is not in acp1's pvs");
    assert_eq!(err.code(), Code::PermissionDenied);
    c.put_resource(put_req("CAlice", to(&["acp2"])))
        .await
        .expect("Alice has UPDATE in acp1's pvs");
    // Now acp2 is referenced: Alice may not change it back, Bob may.
    let err = c
        .put_resource(put_req("CAlice", to(&["acp1"])))
        .await
        .expect_err("Alice is not in acp2's pvs");
    assert_eq!(err.code(), Code::PermissionDenied);
    c.put_resource(put_req("CBob", to(&["acp1", "acp2"])))
        .await
        .expect("Bob has UPDATE in acp2's pvs");
    // The same acpi again changes nothing, and may be read as an Update
    // holding only that acpi: UPDATE in the pvs of the ACPs it references
    // (Bob's) allows it, as the PDP's `updates_acpi` decision does; someone
    // with UPDATE in neither pv nor pvs is still refused.
    c.put_resource(put_req("CBob", to(&["acp1", "acp2"])))
        .await
        .expect("Bob re-sends the acpi he may set");
    let err = c
        .put_resource(put_req("CEve", to(&["acp1", "acp2"])))
        .await
        .expect_err("Eve has UPDATE in no pvs");
    assert_eq!(err.code(), Code::PermissionDenied);

    // Changing another attribute needs UPDATE in pv: nobody but the admin has it.
    let mut other = to(&["acp1", "acp2"]);
    other.daci = vec!["dac1".into()];
    let err = c
        .put_resource(put_req("CBob", other.clone()))
        .await
        .expect_err("pv has RETRIEVE only");
    assert_eq!(err.code(), Code::PermissionDenied);
    c.put_resource(put_req(ADMIN, other)).await.expect("admin");

    // A resource without acpi: its acpi is set under the default policy (the creator).
    c.put_resource(put_req(ADMIN, resource("cnt2", "cb", 3, None, "CCarol")))
        .await
        .expect("cnt2");
    let err = c
        .put_resource(put_req(
            "CBob",
            resource("cnt2", "cb", 3, Some(&["acp2"]), "CCarol"),
        ))
        .await
        .expect_err("Bob is not the creator");
    assert_eq!(err.code(), Code::PermissionDenied);
    c.put_resource(put_req(
        "CCarol",
        resource("cnt2", "cb", 3, Some(&["acp2"]), "CCarol"),
    ))
    .await
    .expect("the creator may set acpi");

    // Deleting a resource needs DELETE in its applicable set.
    let err = c
        .delete_resource(pb::DeleteResourceRequest {
            role_ids: Vec::new(),
            originator: "CCarol".into(),
            resource_id: "cnt2".into(),
        })
        .await
        .expect_err("acp2's pv has RETRIEVE only");
    assert_eq!(err.code(), Code::PermissionDenied);
    c.delete_resource(pb::DeleteResourceRequest {
        role_ids: Vec::new(),
        originator: ADMIN.into(),
        resource_id: "cnt2".into(),
    })
    .await
    .expect("admin deletes");
    let err = c
        .get_resource(pb::GetResourceRequest {
            resource_id: "cnt2".into(),
        })
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3: `ty` (resourceType) and `cr` (creator) are read-only,
/// like `pi`; spec notes §2.3 / TS-0001 9.6.1.3.2: changing `acpi` needs
/// UPDATE in the pvs, and `cstn` (custodian), which replaces the creator in
/// the default policy, is treated the same. UPDATE in pv is not enough for
/// any of these, and a refused write stores nothing.
#[tokio::test]
async fn type_creator_and_custodian_are_not_pv_updates_ts0001_9_6_1_3() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    // acpCb: Bob may do anything under cb. acpCnt: pv gives Bob RETRIEVE
    // and UPDATE, pvs only the admin.
    let mut acp_cb = acp("acpCb", &["CBob"], &[ADMIN], ALL);
    acp_cb.privileges = Some(set(vec![rule(&["CBob"], ALL)]));
    let mut acp_cnt = acp("acpCnt", &["CBob"], &[ADMIN], ALL);
    acp_cnt.privileges = Some(set(vec![rule(&["CBob"], 2 | 4)]));
    for a in [acp_cb, acp_cnt] {
        c.create_acp(create_req(ADMIN, a)).await.expect("acp");
    }
    c.put_resource(put_req(ADMIN, resource("cb", "", 5, Some(&["acpCb"]), "")))
        .await
        .expect("cb");
    c.put_resource(put_req(
        ADMIN,
        resource("cnt", "cb", 3, Some(&["acpCnt"]), "CAlice"),
    ))
    .await
    .expect("cnt");
    // Alice's container without acpi: its default policy is hers.
    c.put_resource(put_req(ADMIN, resource("cntA", "cb", 3, None, "CAlice")))
        .await
        .expect("cntA");
    let before = stored_state(c).await;
    let cnt_policies = applicable_ids(c, "cnt").await;

    // UPDATE in pv is enough for other attributes.
    let mut daci = resource("cnt", "cb", 3, Some(&["acpCnt"]), "CAlice");
    daci.daci = vec!["dac1".into()];
    c.put_resource(put_req("CBob", daci))
        .await
        .expect("daci with UPDATE in pv");
    let before_daci = stored_state(c).await;
    assert_ne!(before_daci, before);
    let mut base = resource("cnt", "cb", 3, Some(&["acpCnt"]), "CAlice");
    base.daci = vec!["dac1".into()];

    // ty 3 -> 4 would make cnt take cb's acpi (Bob: all) instead of its
    // own (a type 4 cannot carry acpi or daci, so the re-put leaves them
    // unset).
    let mut retyped = base.clone();
    retyped.resource_type = 4;
    retyped.acpi_set = false;
    retyped.acpi.clear();
    retyped.daci.clear();
    let err = c
        .put_resource(put_req("CBob", retyped))
        .await
        .expect_err("ty is read-only");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), ["resource.resource_type"]);
    assert!(err.message().contains("from 3 to 4"), "{}", err.message());
    // ... nor to another type with acpi (9, group): it would escape the
    // CREATE-time acod chty check all the same.
    let mut regrouped = base.clone();
    regrouped.resource_type = 9;
    let err = c
        .put_resource(put_req("CBob", regrouped))
        .await
        .expect_err("ty is read-only");
    assert_eq!(violations(&err), ["resource.resource_type"]);
    // cr is read-only: it decides the default policy once acpi is unset.
    let mut recreated = base.clone();
    recreated.creator = "CBob".into();
    let err = c
        .put_resource(put_req("CBob", recreated))
        .await
        .expect_err("cr is read-only");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), ["resource.creator"]);
    // Both at once: both named.
    let mut both = base.clone();
    both.resource_type = 9;
    both.creator = "CBob".into();
    let err = c
        .put_resource(put_req("CBob", both))
        .await
        .expect_err("ty and cr");
    assert_eq!(
        violations(&err),
        ["resource.resource_type", "resource.creator"]
    );
    // cstn needs UPDATE in acpCnt's pvs (the admin only), not in its pv.
    let mut custodian = base.clone();
    custodian.custodian = "CBob".into();
    let err = c
        .put_resource(put_req("CBob", custodian.clone()))
        .await
        .expect_err("cstn needs UPDATE in pvs");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("change its custodian"),
        "{}",
        err.message()
    );
    assert_eq!(stored_state(c).await, before_daci, "nothing stored");
    assert_eq!(applicable_ids(c, "cnt").await, cnt_policies);

    // Without acpi the default policy decides: Alice, its creator, may
    // hand cntA to Carol; then Bob may not take it, nor Alice back.
    let mut to_carol = resource("cntA", "cb", 3, None, "CAlice");
    to_carol.custodian = "CCarol".into();
    c.put_resource(put_req("CAlice", to_carol))
        .await
        .expect("the creator sets cstn");
    let after_carol = stored_state(c).await;
    for originator in ["CBob", "CAlice"] {
        let mut take = resource("cntA", "cb", 3, None, "CAlice");
        take.custodian = originator.into();
        let err = c
            .put_resource(put_req(originator, take))
            .await
            .expect_err("only the custodian now");
        assert_eq!(err.code(), Code::PermissionDenied, "{originator}");
    }
    assert_eq!(stored_state(c).await, after_carol, "nothing stored");
    // The admin may still change the custodian (not pi, ty or cr: see
    // parent_type_and_creator_are_fixed_for_the_admin_and_bundles).
    c.put_resource(put_req(ADMIN, custodian))
        .await
        .expect("admin");
    prp.shutdown().await;
}

/// Spec notes §2.3: a contentInstance has no `acpi` and takes its
/// container's policies, never a default policy of its own, so its
/// custodian is no holder: changing it is an Update like any other, by
/// UPDATE in the container's policies. Its creator (CREATE only there) may
/// not hand it to someone, nor that someone take it back.
#[tokio::test]
async fn a_content_instance_custodian_change_is_an_update_by_its_containers_policies() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    // Mallory may create contentInstances in cnt (CREATE, acod chty 4);
    // Bob may update there.
    let mut acp_cnt = acp("acpCnt", &["CMallory"], &[ADMIN], ALL);
    acp_cnt.privileges = Some(set(vec![rule(&["CMallory"], 1), rule(&["CBob"], 4)]));
    c.create_acp(create_req(ADMIN, acp_cnt)).await.expect("acp");
    c.put_resource(put_req(
        ADMIN,
        resource("cnt", "", 3, Some(&["acpCnt"]), ""),
    ))
    .await
    .expect("cnt");
    c.put_resource(put_req(
        "CMallory",
        resource("cin", "cnt", 4, None, "CMallory"),
    ))
    .await
    .expect("Mallory's contentInstance");
    let before = stored_state(c).await;
    for (who, to) in [("CMallory", "CBabysitter"), ("CBabysitter", "CMallory")] {
        let mut handed = resource("cin", "cnt", 4, None, "CMallory");
        handed.custodian = to.into();
        let err = c
            .put_resource(put_req(who, handed))
            .await
            .expect_err("no UPDATE in the container's policies");
        assert_eq!(err.code(), Code::PermissionDenied, "{who}: {err:?}");
    }
    // Nor an unchanged put: nobody learns from an OK that it matches.
    let err = c
        .put_resource(put_req(
            "CMallory",
            resource("cin", "cnt", 4, None, "CMallory"),
        ))
        .await
        .expect_err("unchanged");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(stored_state(c).await, before, "nothing stored");
    // Bob, with UPDATE in the container's pv, may.
    let mut handed = resource("cin", "cnt", 4, None, "CMallory");
    handed.custodian = "CBob".into();
    c.put_resource(put_req("CBob", handed))
        .await
        .expect("UPDATE in the container's pv");
    prp.shutdown().await;
}

/// Spec notes §2.2: an ACP's permitted parents are a CSEBase, an AE and a
/// remoteCSE; an ACP's own children are subscriptions and transactions.
/// An ACP under another ACP is INVALID_ARGUMENT naming `parent_id`, for
/// the admin too.
#[tokio::test]
async fn an_acp_is_not_created_under_an_acp_spec_notes_2_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(
        ADMIN,
        acp("acpTop", &["CBob"], &["CBob", ADMIN], ALL),
    ))
    .await
    .expect("acpTop");
    let before = stored_state(c).await;
    for who in ["CBob", ADMIN] {
        let mut child = acp("acpChild", &["CBob"], &["CBob"], ALL);
        child.parent_id = Some("acpTop".into());
        let err = c
            .create_acp(create_req(who, child))
            .await
            .expect_err("an ACP under an ACP");
        assert_eq!(err.code(), Code::InvalidArgument, "{who}: {err:?}");
        assert_eq!(violations(&err), ["parent_id"], "{who}");
        assert!(err.message().contains("of type 1"), "{}", err.message());
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");
    prp.shutdown().await;
}

/// Spec notes §2.3: every type has acpi except accessControlPolicy,
/// contentInstance and the other subordinate types; TS-0001 10.2.3.1 step 2
/// resolves those through their parent. An acpi on such a type would be
/// stored and silently ignored, and one without parent_id would fail only
/// when asked about: both are INVALID_ARGUMENT naming the field, for the
/// admin too, and nothing is stored.
#[tokio::test]
async fn types_without_acpi_reject_acpi_and_need_a_parent_ts0001_10_2_3_1() {
    use authz_core::resources::{TY_ACP, TYPES_WITHOUT_ACPI};
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, Some(&["acp1"]), "")))
        .await
        .expect("cnt");
    let before = stored_state(c).await;
    for ty in TYPES_WITHOUT_ACPI {
        for (parent, acpi, fields) in [
            ("cnt", Some(&["acp1"][..]), vec!["resource.acpi"]),
            ("cnt", Some(&[][..]), vec!["resource.acpi"]),
            ("", None, vec!["resource.parent_id"]),
            (
                "",
                Some(&["acp1"][..]),
                vec!["resource.acpi", "resource.parent_id"],
            ),
        ] {
            let err = c
                .put_resource(put_req(ADMIN, resource("child", parent, ty, acpi, "")))
                .await
                .expect_err("no acpi on this type");
            assert_eq!(err.code(), Code::InvalidArgument, "{ty}");
            assert_eq!(violations(&err), fields, "{ty} {parent:?} {acpi:?}");
        }
    }
    // An ACP is created with its rules (CreateAcp), never as a bare
    // resource record, with or without acpi.
    for acpi in [Some(&["acp1"][..]), None] {
        let err = c
            .put_resource(put_req(ADMIN, resource("child", "cnt", TY_ACP, acpi, "")))
            .await
            .expect_err("an ACP is no PutResource");
        assert_eq!(violations(&err), ["resource.resource_type"]);
        assert!(err.message().contains("CreateAcp"), "{}", err.message());
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");

    // With a parent and no acpi: stored, and the parent's policies apply.
    c.put_resource(put_req(ADMIN, resource("cin", "cnt", 4, None, "")))
        .await
        .expect("cin");
    assert_eq!(
        applicable_ids(c, "cin").await,
        vec![(
            "acp1".to_string(),
            pb::PrivilegeKind::Privileges as i32,
            false
        )]
    );
    prp.shutdown().await;
}

/// An ID no request can name (empty, or with white space) in `resource_id`,
/// `parent_id`, `acpi` or `daci` would be stored and never used:
/// INVALID_ARGUMENT naming the field and the entry, and nothing is stored.
#[tokio::test]
async fn unusable_ids_are_invalid_arguments() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    let before = stored_state(c).await;
    let mut daci = resource("cnt", "", 3, Some(&["acp1"]), "");
    daci.daci = vec!["dac 1".into()];
    for (r, fields) in [
        (
            resource("cnt", "", 3, Some(&["", "a b", "acp1"]), ""),
            vec!["resource.acpi[0]", "resource.acpi[1]"],
        ),
        (
            resource("ws id", "", 3, Some(&["acp1"]), ""),
            vec!["resource.resource_id"],
        ),
        (
            resource("cin", "par\tent", 4, None, ""),
            vec!["resource.parent_id"],
        ),
        (daci, vec!["resource.daci[0]"]),
    ] {
        let err = c
            .put_resource(put_req(ADMIN, r))
            .await
            .expect_err("unusable ID");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violations(&err), fields);
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");
    prp.shutdown().await;
}

/// Spec notes §6.4: `daci` sits on every resource type that has `acpi`, and
/// only there. An `<accessControlPolicy>` is judged by its own pvs, and the
/// types without acpi (a contentInstance, ...) take their parent's
/// policies and, for Direct Dynamic Authorization, their parent's DAC
/// (TS-0001 9.6.1.3.2, 10.2.3.1): a daci on one of them would be stored and
/// never consulted. INVALID_ARGUMENT naming `resource.daci`, for the admin
/// too, and nothing is stored; a type with acpi keeps its daci.
#[tokio::test]
async fn types_without_acpi_reject_daci_ts0001_9_6_1_3_2() {
    use authz_core::resources::TYPES_WITHOUT_ACPI;
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, Some(&["acp1"]), "")))
        .await
        .expect("cnt");
    let before = stored_state(c).await;
    for ty in TYPES_WITHOUT_ACPI {
        let mut child = resource("child", "cnt", ty, None, "");
        child.daci = vec!["dac1".into()];
        let err = c
            .put_resource(put_req(ADMIN, child))
            .await
            .expect_err("no daci on this type");
        assert_eq!(err.code(), Code::InvalidArgument, "{ty}");
        assert_eq!(violations(&err), ["resource.daci"], "{ty}");
        assert!(err.message().contains("daci"), "{}", err.message());
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");

    // A container has acpi, so it may link a DAC; its contentInstance,
    // without daci, is stored and uses its parent's.
    let mut cnt = resource("cnt", "", 3, Some(&["acp1"]), "");
    cnt.daci = vec!["dac1".into()];
    c.put_resource(put_req(ADMIN, cnt))
        .await
        .expect("daci on ty 3");
    c.put_resource(put_req(ADMIN, resource("cin", "cnt", 4, None, "")))
        .await
        .expect("cin without daci");
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3: `pi`, `ty` and `cr` are read-only once a resource
/// exists, for every originator, the admin included: PutResource, and a
/// bundle applied through it (`authz policy apply`, `authz up`), is
/// INVALID_ARGUMENT naming the field and stores nothing. Re-putting the
/// same values is no change: an unchanged bundle applies again, and the
/// admin may still change other attributes. A resource registered wrongly
/// is deleted and registered again.
#[tokio::test]
async fn parent_type_and_creator_are_fixed_for_the_admin_and_bundles_ts0001_9_6_1_3() {
    use authz_prp::bundle::{ApplyError, Bundle, apply};
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    for id in ["cb", "cb2"] {
        c.put_resource(put_req(ADMIN, resource(id, "", 5, Some(&["acp1"]), "")))
            .await
            .expect("root");
    }
    let cnt = || resource("cnt", "cb", 3, Some(&["acp1"]), "CAlice");
    c.put_resource(put_req(ADMIN, cnt())).await.expect("cnt");
    let before = stored_state(c).await;

    let mut moved = cnt();
    moved.parent_id = "cb2".into();
    let mut orphaned = cnt();
    orphaned.parent_id = String::new();
    let mut retyped = cnt();
    retyped.resource_type = 9;
    let mut taken = cnt();
    taken.creator = "CBob".into();
    let mut all = moved.clone();
    all.resource_type = 9;
    all.creator = "CBob".into();
    for (changed, fields) in [
        (moved, &["resource.parent_id"][..]),
        (orphaned, &["resource.parent_id"]),
        (retyped, &["resource.resource_type"]),
        (taken, &["resource.creator"]),
        (
            all,
            &[
                "resource.parent_id",
                "resource.resource_type",
                "resource.creator",
            ],
        ),
    ] {
        let err = c
            .put_resource(put_req(ADMIN, changed))
            .await
            .expect_err("read-only for the admin too");
        assert_eq!(err.code(), Code::InvalidArgument, "{fields:?}");
        assert_eq!(violations(&err), fields);
        assert!(err.message().contains("read-only"), "{}", err.message());
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");
    // Left out (NP on Update), `cr` is kept, not erased: no change.
    let mut anonymous = cnt();
    anonymous.creator = String::new();
    let kept = c
        .put_resource(put_req(ADMIN, anonymous))
        .await
        .expect("cr left out")
        .into_inner();
    assert_eq!(kept.resource.expect("resource").creator, "CAlice");
    assert_eq!(stored_state(c).await, before, "nothing written");

    // A bundle goes through the same PutResource.
    let bundle = |cr: &str, daci: &str| {
        Bundle::parse(&format!(
            r#"{{"resources": [{{"ri": "cnt", "pi": "cb", "ty": 3, "acpi": ["acp1"],
                "cr": "{cr}", "daci": [{daci}]}}]}}"#
        ))
        .expect("bundle")
    };
    match apply(c, ADMIN, &bundle("CBob", "")).await {
        Err(ApplyError::Refused { status, .. }) => {
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(violations(&status), ["resource.creator"]);
        }
        other => panic!("a bundle changing cr must be refused: {other:?}"),
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");
    // The same values again are no change; other attributes may change.
    apply(c, ADMIN, &bundle("CAlice", ""))
        .await
        .expect("unchanged");
    apply(c, ADMIN, &bundle("CAlice", r#""dac1""#))
        .await
        .expect("daci");

    // Delete and register again to change one.
    c.delete_resource(pb::DeleteResourceRequest {
        role_ids: Vec::new(),
        originator: ADMIN.into(),
        resource_id: "cnt".into(),
    })
    .await
    .expect("delete");
    let mut again = cnt();
    again.creator = "CBob".into();
    again.parent_id = "cb2".into();
    c.put_resource(put_req(ADMIN, again))
        .await
        .expect("registered anew");
    prp.shutdown().await;
}

fn ids(p: &pb::ApplicablePolicies) -> Vec<(String, i32, bool)> {
    p.policies
        .iter()
        .map(|a| {
            (
                a.acp
                    .as_ref()
                    .and_then(|a| a.resource_id.clone())
                    .unwrap_or_default(),
                a.privileges,
                a.dynamic,
            )
        })
        .collect()
}

/// ACPs `acp1`, `acp2`, `acpCb` (Alice, all operations), and a CSE base
/// `cb` (acpi `acpCb`) with a container `cnt` (acpi `acp2`, `acp1`), its
/// contentInstance `cin`, and a container `cnt2` without `acpi` created by
/// `CCreator`.
async fn store_cb_cnt_cin_cnt2(
    c: &mut pb::policy_retrieval_point_client::PolicyRetrievalPointClient<
        tonic::transport::Channel,
    >,
) {
    for id in ["acp1", "acp2", "acpCb"] {
        c.create_acp(create_req(ADMIN, acp(id, &["CAlice"], &[ADMIN], ALL)))
            .await
            .expect("acp");
    }
    for r in [
        resource("cb", "", 5, Some(&["acpCb"]), ""),
        resource("cnt", "cb", 3, Some(&["acp2", "acp1"]), "CAlice"),
        resource("cin", "cnt", 4, None, "CAlice"),
        resource("cnt2", "cb", 3, None, "CCreator"),
    ] {
        c.put_resource(put_req(ADMIN, r)).await.expect("resource");
    }
}

#[tokio::test]
async fn applicable_policies_follow_ts0001_10_2_3_1() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    let get = |target: &str| pb::GetApplicablePoliciesRequest {
        target: target.into(),
        ..Default::default()
    };
    const PV: i32 = pb::PrivilegeKind::Privileges as i32;
    const PVS: i32 = pb::PrivilegeKind::SelfPrivileges as i32;

    // 1. An ACP target: its own pvs.
    let p = c
        .get_applicable_policies(get("acp1"))
        .await
        .expect("acp")
        .into_inner();
    assert_eq!(ids(&p), vec![("acp1".into(), PVS, false)]);
    assert!(!p.default_policy);

    // 3. acpi set: pv of each, in acpi order.
    let p = c
        .get_applicable_policies(get("cnt"))
        .await
        .expect("cnt")
        .into_inner();
    assert_eq!(
        ids(&p),
        vec![("acp2".into(), PV, false), ("acp1".into(), PV, false)]
    );
    // TS-0003 6.2.2 step 005: with the policies, how they combine (7.1.5).
    assert_eq!(
        p.combining_algorithm,
        pb::CombiningAlgorithm::PermitOverrides as i32
    );

    // 2. contentInstance: the parent's acpi.
    let p = c
        .get_applicable_policies(get("cin"))
        .await
        .expect("cin")
        .into_inner();
    assert_eq!(
        ids(&p),
        vec![("acp2".into(), PV, false), ("acp1".into(), PV, false)]
    );
    assert_eq!(p.revision, 7);

    // 4. acpi not set: the default policy, full access for the creator.
    let p = c
        .get_applicable_policies(get("cnt2"))
        .await
        .expect("cnt2")
        .into_inner();
    assert!(p.default_policy);
    assert_eq!(
        ids(&p),
        vec![(authz_prp::default_policy_id("cnt2"), PV, false)]
    );
    let rules = &p.policies[0]
        .acp
        .as_ref()
        .and_then(|a| a.privileges.clone())
        .expect("pv")
        .rules;
    assert_eq!(rules[0].originators, vec!["CCreator".to_string()]);
    assert_eq!(rules[0].operations, ALL);

    // ... or for the custodian when set.
    let mut r = resource("cnt2", "cb", 3, None, "CCreator");
    r.custodian = "CCustodian".into();
    c.put_resource(put_req(ADMIN, r)).await.expect("custodian");
    let p = c
        .get_applicable_policies(get("cnt2"))
        .await
        .expect("cnt2")
        .into_inner();
    let rules = &p.policies[0]
        .acp
        .as_ref()
        .and_then(|a| a.privileges.clone())
        .expect("pv")
        .rules;
    assert_eq!(rules[0].originators, vec!["CCustodian".to_string()]);

    let err = c
        .get_applicable_policies(get("nope"))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3.2: an Update of a resource's `acpi` is authorized by
/// the `pvs` of the ACPs it references now, so `updates_acpi` answers those
/// (in `acpi` order), never the `pv`, never the parent's; a resource
/// without `acpi` gives the default policy, which is what judges the change
/// then; a target that has no `acpi` to change is INVALID_ARGUMENT naming
/// `updates_acpi`.
#[tokio::test]
async fn applicable_policies_of_an_acpi_change_are_the_referenced_pvs_ts0001_9_6_1_3_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    let change = |target: &str| pb::GetApplicablePoliciesRequest {
        target: target.into(),
        updates_acpi: true,
    };
    const PV: i32 = pb::PrivilegeKind::Privileges as i32;
    const PVS: i32 = pb::PrivilegeKind::SelfPrivileges as i32;

    let p = c
        .get_applicable_policies(change("cnt"))
        .await
        .expect("cnt")
        .into_inner();
    assert_eq!(
        ids(&p),
        vec![("acp2".into(), PVS, false), ("acp1".into(), PVS, false)]
    );
    assert!(!p.default_policy);

    let p = c
        .get_applicable_policies(change("cnt2"))
        .await
        .expect("cnt2")
        .into_inner();
    assert!(p.default_policy);
    assert_eq!(
        ids(&p),
        vec![(authz_prp::default_policy_id("cnt2"), PV, false)]
    );

    for target in ["cin", "acp1"] {
        let err = c
            .get_applicable_policies(change(target))
            .await
            .expect_err(target);
        assert_eq!(err.code(), Code::InvalidArgument, "{target}: {err:?}");
        assert_eq!(violations(&err), ["updates_acpi"], "{target}");
    }
    let err = c
        .get_applicable_policies(change("nope"))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    prp.shutdown().await;
}

/// An error that echoes what the client sent is still that error when the
/// echo is long: the longest unknown ID a record could have (2048 bytes)
/// gives NOT_FOUND with the message cut, not an HTTP/2 protocol error
/// (INTERNAL) from headers too large; a 40 000-byte one no record could
/// have is INVALID_ARGUMENT naming the field, not quoted.
#[tokio::test]
async fn an_error_echoing_a_huge_id_keeps_its_code() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let longest = "y".repeat(2048);
    let e = c
        .get_acp(pb::GetAcpRequest {
            acp_id: longest.clone(),
        })
        .await
        .expect_err("no such ACP");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("yyyy"), "{}", e.message());
    assert!(
        e.message().len() <= authz_proto::serving::MAX_STATUS_MESSAGE_BYTES,
        "{}",
        e.message().len()
    );
    let e = c
        .get_applicable_policies(pb::GetApplicablePoliciesRequest {
            target: longest,
            ..Default::default()
        })
        .await
        .expect_err("no such resource");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let huge = "y".repeat(40_000);
    let e = c
        .get_acp(pb::GetAcpRequest { acp_id: huge })
        .await
        .expect_err("no ACP has such an ID");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(violations(&e), ["acp_id"]);
    assert!(e.message().len() < 200, "{}", e.message());
    prp.shutdown().await;
}

/// A read or delete naming an ID no record could have (white space, a
/// control character) is INVALID_ARGUMENT naming the field, not a
/// NOT_FOUND that hides the typo (Decision 9).
#[tokio::test]
async fn reads_and_deletes_of_impossible_ids_are_invalid_arguments_decision_9() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    for id in ["a b", "x\u{0}y"] {
        let e = c
            .get_resource(pb::GetResourceRequest {
                resource_id: id.into(),
            })
            .await
            .expect_err(id);
        assert_eq!(violations(&e), ["resource_id"], "{id:?}: {e:?}");
        let e = c
            .delete_acp(pb::DeleteAcpRequest {
                role_ids: Vec::new(),
                originator: ADMIN.into(),
                acp_id: id.into(),
            })
            .await
            .expect_err(id);
        assert_eq!(violations(&e), ["acp_id"], "{id:?}: {e:?}");
        let e = c
            .get_applicable_policies(pb::GetApplicablePoliciesRequest {
                target: id.into(),
                ..Default::default()
            })
            .await
            .expect_err(id);
        assert_eq!(violations(&e), ["target"], "{id:?}: {e:?}");
    }
    prp.shutdown().await;
}

/// Pins a defect `robustness.rs` found: an ID already held by a record of the
/// other kind was echoed whole in the ALREADY_EXISTS `BadRequest`, whose
/// headers a 40 000-byte ID made too large for the client, so it got an
/// HTTP/2 error (RESOURCE_EXHAUSTED) instead. Every conflict of the shared
/// ID space is ALREADY_EXISTS naming the field, with the ID quoted cut. An
/// ID longer than `MAX_ID_BYTES` is refused, not quoted.
#[tokio::test]
async fn a_huge_id_already_in_use_is_already_exists() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let huge = "y".repeat(40_000);
    let e = c
        .put_resource(put_req(ADMIN, resource(&huge, "", 3, None, "")))
        .await
        .expect_err("an ID of 40 000 bytes");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(violations(&e), ["resource.resource_id"]);
    assert!(
        e.message().contains("at most 2048") && e.message().len() < 200,
        "{}",
        e.message()
    );
    let long = "y".repeat(authz_proto::convert::MAX_ID_BYTES);
    c.put_resource(put_req(ADMIN, resource(&long, "", 3, None, "")))
        .await
        .expect("a resource with a long ID");
    let e = c
        .create_acp(create_req(ADMIN, acp(&long, &["all"], &[ADMIN], ALL)))
        .await
        .expect_err("the ID of a resource");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert_eq!(violations(&e), ["resource_id"]);
    assert!(
        e.message().contains("is already the ID of a resource"),
        "{}",
        e.message()
    );
    let e = c
        .create_dynamic_acp(pb::CreateDynamicAcpRequest {
            originator: ADMIN.into(),
            target: "cnt".into(),
            acp_id: long,
            privileges: Some(set(vec![rule(&["CAlice"], 2)])),
            expires_at: Some(prost_types::Timestamp {
                seconds: chrono::Utc::now().timestamp() + 3_600,
                nanos: 0,
            }),
        })
        .await
        .expect_err("the ID of a resource");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    prp.shutdown().await;
}

/// The rule `authz check` holds an ACP's `ri` to (core
/// `check_resource_id`): an ID with an empty `/` segment names no ACP that
/// a request could target (TS-0001 7.2, 10.2.3.1), so CreateAcp refuses it
/// naming `resource_id`, as it refuses white space.
#[tokio::test]
async fn an_acp_id_with_an_empty_segment_is_invalid_ts_0001_7_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    for bad in ["acp/", "a//b"] {
        let e = c
            .create_acp(create_req(ADMIN, acp(bad, &["all"], &[ADMIN], ALL)))
            .await
            .expect_err(bad);
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert_eq!(violations(&e), ["resource_id"]);
        assert!(
            e.message().contains("has an empty path segment"),
            "{}",
            e.message()
        );
    }
    prp.shutdown().await;
}

#[tokio::test]
async fn dynamic_acp_applies_until_it_expires() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, Some(&["acp1"]), "")))
        .await
        .expect("cnt");
    let mut watch = c
        .watch(pb::WatchRequest {
            from_revision: 2,
            from_tag: 0,
        })
        .await
        .expect("watch")
        .into_inner();

    let expires = chrono::Utc::now().timestamp() + 2;
    let grant = |originator: &str| pb::CreateDynamicAcpRequest {
        originator: originator.into(),
        target: "cnt".into(),
        acp_id: String::new(),
        privileges: Some(set(vec![rule(&["CBob"], 2)])),
        expires_at: Some(prost_types::Timestamp {
            seconds: expires,
            nanos: 0,
        }),
    };
    let err = c
        .create_dynamic_acp(grant("CBob"))
        .await
        .expect_err("Bob is no PDP");
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut past = grant("CPdp");
    past.expires_at = Some(prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    });
    let err = c.create_dynamic_acp(past).await.expect_err("past");
    assert_eq!(violations(&err), vec!["expires_at".to_string()]);
    // A time the PDP could not convert would be stored here and dropped
    // there: the PRP and its PDPs would disagree for good.
    let mut beyond = grant("CPdp");
    beyond.expires_at = Some(prost_types::Timestamp {
        seconds: i64::MAX,
        nanos: 0,
    });
    let err = c.create_dynamic_acp(beyond).await.expect_err("beyond");
    assert_eq!(violations(&err), vec!["expires_at.seconds".to_string()]);
    // IDs no request could name are refused, not stored and never used.
    let mut spaced = grant("CPdp");
    spaced.target = "my cnt".into();
    spaced.acp_id = "dyn\t1".into();
    let err = c.create_dynamic_acp(spaced).await.expect_err("spaced");
    assert_eq!(
        violations(&err),
        vec!["target".to_string(), "acp_id".to_string()]
    );
    // An acor ID too long in absolute form to match anyone, as for a
    // stored ACP.
    let mut long = grant("CPdp");
    long.privileges = Some(set(vec![rule(
        &["CBob", &format!("C{}", "x".repeat(2040))],
        2,
    )]));
    let err = c.create_dynamic_acp(long).await.expect_err("too long");
    // Named by the request's field: it has no `pv`.
    assert_eq!(
        violations(&err),
        vec!["privileges.acr[0].acor[1]".to_string()]
    );
    // TS-0001 7.2: a target with an empty `/` segment names no resource:
    // the request's fault, as for a decision's target, not a missing one.
    for target in ["cnt/", "a//cnt", "/"] {
        let mut empty_segment = grant("CPdp");
        empty_segment.target = target.into();
        let err = c
            .create_dynamic_acp(empty_segment)
            .await
            .expect_err("empty segment");
        assert_eq!(err.code(), Code::InvalidArgument, "{target}: {err:?}");
        assert_eq!(violations(&err), vec!["target".to_string()], "{target}");
    }

    let rec = c
        .create_dynamic_acp(grant("CPdp"))
        .await
        .expect("grant")
        .into_inner();
    assert!(!rec.acp_id.is_empty(), "an ID is generated");
    assert_eq!(rec.revision, 3);

    assert_eq!(
        applicable_ids(c, "cnt").await,
        vec![
            ("acp1".into(), pb::PrivilegeKind::Privileges as i32, false),
            (
                rec.acp_id.clone(),
                pb::PrivilegeKind::Privileges as i32,
                true
            )
        ]
    );
    // A request on the dynamic ACP itself is one on an ACP (TS-0003
    // 7.1.1, 7.3.2.2), as the PDP judges it: its selfPrivileges, which it
    // has none of, not "no such resource"; and it has no acpi to change.
    let on_itself = c
        .get_applicable_policies(pb::GetApplicablePoliciesRequest {
            target: rec.acp_id.clone(),
            ..Default::default()
        })
        .await
        .expect("a dynamic ACP is an ACP")
        .into_inner();
    assert_eq!(
        ids(&on_itself),
        vec![(
            rec.acp_id.clone(),
            pb::PrivilegeKind::SelfPrivileges as i32,
            true
        )]
    );
    assert!(
        on_itself.policies[0]
            .acp
            .as_ref()
            .and_then(|a| a.self_privileges.as_ref())
            .is_some_and(|s| s.rules.is_empty()),
        "{on_itself:?}"
    );
    let err = c
        .get_applicable_policies(pb::GetApplicablePoliciesRequest {
            target: rec.acp_id.clone(),
            updates_acpi: true,
        })
        .await
        .expect_err("an ACP has no acpi");
    assert_eq!(violations(&err), ["updates_acpi"], "{err:?}");
    // Being an ACP, it is no parent of an ACP, nor of anything but a
    // subscription or a transaction (spec notes §2.2).
    let mut under = acp("acpUnder", &["CAlice"], &[ADMIN], ALL);
    under.parent_id = Some(rec.acp_id.clone());
    let err = c
        .create_acp(create_req(ADMIN, under))
        .await
        .expect_err("an ACP under a dynamic ACP");
    assert_eq!(violations(&err), ["parent_id"], "{err:?}");
    let err = c
        .put_resource(put_req(
            ADMIN,
            resource("cntUnder", &rec.acp_id, 3, Some(&["acp1"]), ""),
        ))
        .await
        .expect_err("a container under a dynamic ACP");
    assert_eq!(violations(&err), ["resource.parent_id"], "{err:?}");
    // A subscription there is a Create on that ACP, judged by its
    // selfPrivileges, which it has none of: refused as such, not as a
    // parent that does not exist.
    let err = c
        .put_resource(put_req(
            "CBob",
            resource("subUnder", &rec.acp_id, 23, None, "CBob"),
        ))
        .await
        .expect_err("a subscription under a dynamic ACP");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        !err.message().contains("not a resource registered"),
        "{err:?}"
    );
    assert!(err.message().contains(&rec.acp_id), "{err:?}");

    // Watch: the put, then the sweeper's delete.
    let ev = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("event in time")
        .expect("stream")
        .expect("event");
    assert_eq!(ev.revision, 3);
    assert!(matches!(ev.event, Some(Event::DynamicPut(ref d)) if d.acp_id == rec.acp_id));
    let ev = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("expiry in time")
        .expect("stream")
        .expect("event");
    assert_eq!(ev.revision, 4);
    assert_eq!(ev.event, Some(Event::DynamicDeleted(rec.acp_id.clone())));

    let p = c
        .get_applicable_policies(pb::GetApplicablePoliciesRequest {
            target: "cnt".into(),
            ..Default::default()
        })
        .await
        .expect("applicable")
        .into_inner();
    assert_eq!(p.policies.len(), 1, "the dynamic ACP has expired");
    prp.shutdown().await;
}

/// Decision 7: a `dai` grant becomes a dynamic ACP "bound to the targeted
/// resource and counted in its applicable policy set". A contentInstance
/// (ty 4) has no `acpi` and takes its container's policies (TS-0001
/// 10.2.3.1 step 2), but a grant for it is bound to it: the record says so,
/// its applicable set counts it, and neither the container's nor a
/// sibling's does, so it gives no DELETE of the container. A grant for the
/// container counts for the container and its contentInstances. A target
/// the PRP does not know keeps its ID.
#[tokio::test]
async fn decision_7_a_dynamic_acp_for_a_content_instance_is_bound_to_it() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, Some(&["acp1"]), "")))
        .await
        .expect("cnt");
    for cin in ["cin", "cin2"] {
        c.put_resource(put_req(ADMIN, resource(cin, "cnt", 4, None, "CAlice")))
            .await
            .expect("cin");
    }
    let expires = chrono::Utc::now().timestamp() + 600;
    // RETRIEVE + DELETE for Bob.
    let grant = |target: &str| pb::CreateDynamicAcpRequest {
        originator: "CPdp".into(),
        target: target.into(),
        acp_id: String::new(),
        privileges: Some(set(vec![rule(&["CBob"], 2 | 8)])),
        expires_at: Some(prost_types::Timestamp {
            seconds: expires,
            nanos: 0,
        }),
    };
    let acp1 = (
        "acp1".to_string(),
        pb::PrivilegeKind::Privileges as i32,
        false,
    );
    let dynamic = |id: &str| (id.to_string(), pb::PrivilegeKind::Privileges as i32, true);
    let rec = c
        .create_dynamic_acp(grant("cin"))
        .await
        .expect("grant")
        .into_inner();
    assert_eq!(rec.target, "cin");
    for (target, want) in [
        ("cin", vec![acp1.clone(), dynamic(&rec.acp_id)]),
        ("cin2", vec![acp1.clone()]),
        ("cnt", vec![acp1.clone()]),
    ] {
        let p = c
            .get_applicable_policies(pb::GetApplicablePoliciesRequest {
                target: target.into(),
                ..Default::default()
            })
            .await
            .expect("applicable")
            .into_inner();
        assert_eq!(ids(&p), want, "{target}");
    }
    let err = c
        .delete_resource(pb::DeleteResourceRequest {
            role_ids: Vec::new(),
            originator: "CBob".into(),
            resource_id: "cnt".into(),
        })
        .await
        .expect_err("the grant for cin gives nothing on cnt");
    assert_eq!(err.code(), Code::PermissionDenied);

    let on_cnt = c
        .create_dynamic_acp(grant("cnt"))
        .await
        .expect("grant")
        .into_inner();
    assert_eq!(on_cnt.target, "cnt");
    for (target, want) in [
        (
            "cin",
            vec![acp1.clone(), dynamic(&rec.acp_id), dynamic(&on_cnt.acp_id)],
        ),
        ("cin2", vec![acp1.clone(), dynamic(&on_cnt.acp_id)]),
        ("cnt", vec![acp1.clone(), dynamic(&on_cnt.acp_id)]),
    ] {
        let p = c
            .get_applicable_policies(pb::GetApplicablePoliciesRequest {
                target: target.into(),
                ..Default::default()
            })
            .await
            .expect("applicable")
            .into_inner();
        assert_eq!(ids(&p), want, "{target}");
    }
    // No resource, no child ACP (7.3.2.2 step 4.1.2): a grant for an ID
    // nothing is registered under is refused, naming the target, so that
    // a resource registered there later inherits nothing.
    let err = c
        .create_dynamic_acp(grant("unknown"))
        .await
        .expect_err("no such target");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("target") && err.message().contains("unknown"),
        "{}",
        err.message()
    );
    prp.shutdown().await;
}

/// TS-0003 7.3.2.2 and Decision 7: a `dai` grant is stored as a dynamic
/// ACP, the `<accessControlPolicy>` the hosting CSE creates for the target,
/// so its ID is an ACP's ID, and a request to an ACP's ID is judged by that
/// ACP (TS-0001 10.2.3.1 step 1). ACPs, dynamic ACPs and resources share one
/// ID space: PutResource refuses a dynamic ACP's ID, CreateDynamicAcp a
/// resource's or an ACP's, CreateAcp a dynamic ACP's (ALREADY_EXISTS naming
/// the field), for the admin too, and nothing is stored.
#[tokio::test]
async fn dynamic_acps_share_the_id_space_ts0003_7_3_2_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, Some(&["acp1"]), "")))
        .await
        .expect("cnt");
    let expires = chrono::Utc::now().timestamp() + 600;
    let grant = |originator: &str, acp_id: &str| pb::CreateDynamicAcpRequest {
        originator: originator.into(),
        target: "cnt".into(),
        acp_id: acp_id.into(),
        privileges: Some(set(vec![rule(&["CBob"], 2)])),
        expires_at: Some(prost_types::Timestamp {
            seconds: expires,
            nanos: 0,
        }),
    };
    c.create_dynamic_acp(grant("CPdp", "dyn1"))
        .await
        .expect("dyn1");
    let before = stored_state(c).await;
    let cnt_policies = applicable_ids(c, "cnt").await;

    // A resource may not take a dynamic ACP's ID.
    for (originator, parent) in [(ADMIN, ""), ("CAlice", "cnt")] {
        let err = c
            .put_resource(put_req(
                originator,
                resource("dyn1", parent, 3, None, "CAlice"),
            ))
            .await
            .expect_err("the ID of a dynamic ACP");
        assert_eq!(err.code(), Code::AlreadyExists, "{originator}");
        assert_eq!(violations(&err), ["resource.resource_id"], "{originator}");
        assert!(
            err.message()
                .contains("dyn1 is already the ID of a dynamic ACP"),
            "{}",
            err.message()
        );
    }
    // A dynamic ACP may not take a resource's ID, nor an ACP's.
    for (id, holder) in [("cnt", "a resource"), ("acp1", "an ACP")] {
        for originator in [ADMIN, "CPdp"] {
            let err = c
                .create_dynamic_acp(grant(originator, id))
                .await
                .expect_err("an ID in use");
            assert_eq!(err.code(), Code::AlreadyExists, "{id} {originator}");
            assert_eq!(violations(&err), ["acp_id"], "{id} {originator}");
            let expected = format!("{id} is already the ID of {holder}");
            assert!(err.message().contains(&expected), "{}", err.message());
        }
    }
    // An ACP may not take a dynamic ACP's ID.
    let err = c
        .create_acp(create_req(ADMIN, acp("dyn1", &["CBob"], &[ADMIN], ALL)))
        .await
        .expect_err("the ID of a dynamic ACP");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(violations(&err), ["resource_id"]);
    assert!(
        err.message()
            .contains("dyn1 is already the ID of a dynamic ACP"),
        "{}",
        err.message()
    );
    assert_eq!(stored_state(c).await, before, "nothing stored");
    assert_eq!(applicable_ids(c, "cnt").await, cnt_policies);

    // The dynamic ACP itself may be granted again (replaced), and a fresh
    // ID is free.
    c.create_dynamic_acp(grant("CPdp", "dyn1"))
        .await
        .expect("dyn1 again");
    c.create_dynamic_acp(grant("CPdp", "dyn2"))
        .await
        .expect("dyn2");
    prp.shutdown().await;
}

async fn next(stream: &mut tonic::Streaming<pb::WatchEvent>) -> pb::WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("event in time")
        .expect("stream ok")
        .expect("stream open")
}

#[tokio::test]
async fn watch_sends_a_snapshot_then_ordered_changes_and_resumes() {
    let mut cfg = config();
    cfg.log_limit = 3;
    let mut prp = start(cfg).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");

    let mut w = c
        .watch(pb::WatchRequest {
            from_revision: 0,
            from_tag: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let ev = next(&mut w).await;
    assert_eq!(ev.revision, 1);
    let Some(Event::Snapshot(s)) = ev.event else {
        panic!("expected a snapshot first, got {ev:?}")
    };
    assert_eq!(s.acps.len(), 1);

    c.put_resource(put_req(ADMIN, resource("cb", "", 5, Some(&["acp1"]), "")))
        .await
        .expect("cb");
    c.create_acp(create_req(ADMIN, acp("acp2", &["CBob"], &[ADMIN], ALL)))
        .await
        .expect("acp2");
    c.delete_acp(pb::DeleteAcpRequest {
        role_ids: Vec::new(),
        originator: ADMIN.into(),
        acp_id: "acp2".into(),
    })
    .await
    .expect("delete");
    let evs = [next(&mut w).await, next(&mut w).await, next(&mut w).await];
    assert_eq!(
        evs.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert!(matches!(evs[0].event, Some(Event::ResourcePut(ref r)) if r.resource_id == "cb"));
    assert!(
        matches!(evs[1].event, Some(Event::AcpPut(ref a)) if a.resource_id.as_deref() == Some("acp2"))
    );
    assert_eq!(evs[2].event, Some(Event::AcpDeleted("acp2".into())));

    // Resume from 3: only revision 4, then live events.
    let mut r = c
        .watch(pb::WatchRequest {
            from_revision: 3,
            from_tag: 0,
        })
        .await
        .expect("resume")
        .into_inner();
    let ev = next(&mut r).await;
    assert_eq!(ev.revision, 4);
    assert_eq!(ev.event, Some(Event::AcpDeleted("acp2".into())));
    c.delete_resource(pb::DeleteResourceRequest {
        role_ids: Vec::new(),
        originator: ADMIN.into(),
        resource_id: "cb".into(),
    })
    .await
    .expect("delete cb");
    let ev = next(&mut r).await;
    assert_eq!(ev.revision, 5);
    assert_eq!(ev.event, Some(Event::ResourceDeleted("cb".into())));
    assert_eq!(next(&mut w).await.revision, 5);

    // Up to date: nothing to replay.
    let mut current = c
        .watch(pb::WatchRequest {
            from_revision: 5,
            from_tag: 0,
        })
        .await
        .expect("current")
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), current.message())
            .await
            .is_err(),
        "nothing happened after 5"
    );

    // From 1 the log (3 entries: 3, 4, 5) no longer has revision 2: snapshot.
    let mut old = c
        .watch(pb::WatchRequest {
            from_revision: 1,
            from_tag: 0,
        })
        .await
        .expect("old")
        .into_inner();
    let ev = next(&mut old).await;
    assert_eq!(ev.revision, 5);
    assert!(matches!(ev.event, Some(Event::Snapshot(_))));
    // From 2 it does.
    let mut two = c
        .watch(pb::WatchRequest {
            from_revision: 2,
            from_tag: 0,
        })
        .await
        .expect("two")
        .into_inner();
    assert_eq!(next(&mut two).await.revision, 3);
    prp.shutdown().await;
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let prp = start(config()).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", prp.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "onem2m.authz.v1.PolicyRetrievalPoint".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    prp.shutdown().await;
}

#[tokio::test]
async fn a_lagging_watcher_gets_a_new_snapshot() {
    use authz_proto::pb::policy_retrieval_point_server::PolicyRetrievalPoint;
    use tokio_stream::StreamExt;

    let mut cfg = config();
    cfg.event_capacity = 4;
    // In process, so that no transport buffer absorbs the backlog: the
    // stream's own buffer (64) fills, then the live channel (4) overflows.
    let service = authz_prp::build(&cfg).await.expect("build");
    let mut w = service
        .watch(tonic::Request::new(pb::WatchRequest {
            from_revision: 0,
            from_tag: 0,
        }))
        .await
        .expect("watch")
        .into_inner();
    const WRITES: u64 = 150;
    for i in 0..WRITES {
        service
            .put_resource(tonic::Request::new(put_req(
                ADMIN,
                resource(&format!("r{i}"), "", 3, None, "CAlice"),
            )))
            .await
            .expect("put");
    }
    let mut last = None;
    let mut snapshots = 0;
    while last.is_none_or(|l| l < WRITES) {
        let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        assert!(
            last.is_none_or(|l| ev.revision > l),
            "revisions increase: {} after {last:?}",
            ev.revision
        );
        if let Some(Event::Snapshot(s)) = &ev.event {
            snapshots += 1;
            assert_eq!(s.resources.len() as u64, ev.revision);
        }
        last = Some(ev.revision);
    }
    assert!(
        snapshots >= 2,
        "a snapshot first, and one after falling behind"
    );
    service.shutdown();
}

/// Spec notes §2.4 (TS-0001 9.6.2.1): `aei` (`ae_id`) belongs to an `<AE>`
/// (type 2) and `csi` (`cse_id`) to a `<remoteCSE>` (type 16), each one ID
/// of its kind, since the PDP counts the originator they name as the
/// resource in `<group>` member lists. Anything else is INVALID_ARGUMENT
/// naming the field, and stores nothing.
#[tokio::test]
async fn aei_and_csi_only_on_their_types_and_valid_spec_notes_2_4() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.put_resource(put_req(ADMIN, resource("cb", "", 5, None, "")))
        .await
        .expect("cb");
    let before = stored_state(c).await;
    let with = |ty: u32, ae_id: &str, cse_id: &str| {
        let mut r = resource("member", "cb", ty, None, "CAlice");
        r.ae_id = ae_id.into();
        r.cse_id = cse_id.into();
        r
    };
    for (r, field) in [
        (with(3, "Clight", ""), "resource.ae_id"),
        (with(16, "Clight", "/mn-cse"), "resource.ae_id"),
        (with(2, "", "/mn-cse"), "resource.cse_id"),
        (with(2, "all", ""), "resource.ae_id"),
        (with(2, "C*", ""), "resource.ae_id"),
        (with(2, "//sp.example.com", ""), "resource.ae_id"),
        (with(2, "guest@roles.example.com", ""), "resource.ae_id"),
        (with(16, "", "mn-cse"), "resource.cse_id"),
        (with(16, "", "/mn-cse/Clight"), "resource.cse_id"),
    ] {
        let err = c
            .put_resource(put_req(ADMIN, r.clone()))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{r:?}");
        assert_eq!(violations(&err), vec![field.to_string()], "{r:?}");
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");
    // Valid ones are stored and read back.
    for r in [
        with(2, "Clight", ""),
        with(2, "//sp.example.com/id-in/Clight", ""),
        with(16, "", "/mn-cse"),
        with(16, "", "//sp.example.com/mn-cse"),
    ] {
        let mut r = r;
        r.resource_id = format!("m{}{}", r.resource_type, r.ae_id.len() + r.cse_id.len());
        c.put_resource(put_req(ADMIN, r.clone()))
            .await
            .expect("valid");
        let got = c
            .get_resource(pb::GetResourceRequest {
                resource_id: r.resource_id.clone(),
            })
            .await
            .expect("get")
            .into_inner()
            .resource
            .expect("resource");
        assert_eq!((got.ae_id, got.cse_id), (r.ae_id, r.cse_id));
    }
    prp.shutdown().await;
}

/// `aei` is read-only and `csi` write-once (TS-0001 9.6.5, 9.6.4): one who
/// may update an `<AE>` resource cannot point it at another AE-ID, which
/// would hand that AE-ID the resource's `<group>` memberships; nor can one
/// who may create register it (again, after a deletion) with an `aei`.
#[tokio::test]
async fn aei_cannot_change_once_the_resource_exists_ts0001_9_6_5() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let mut acp_cb = acp("acpCb", &["CBob"], &[ADMIN], ALL);
    acp_cb.privileges = Some(set(vec![rule(&["CBob"], ALL)]));
    c.create_acp(create_req(ADMIN, acp_cb)).await.expect("acp");
    c.put_resource(put_req(ADMIN, resource("cb", "", 5, Some(&["acpCb"]), "")))
        .await
        .expect("cb");
    let mut ae = resource("ae-light", "cb", 2, Some(&["acpCb"]), "CBob");
    ae.ae_id = "Clight".into();
    // Registering an `<AE>` with its `aei` is the admin's (the hosting
    // CSE's): the AE-ID takes the `<group>` memberships listed under the
    // resource ID, which groups may list still after a deletion. Bob, who
    // may create under `cb`, may not; without `aei` he may.
    let err = c
        .put_resource(put_req("CBob", ae.clone()))
        .await
        .expect_err("Bob may not name an aei");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("aei/csi"), "{}", err.message());
    let mut plain = resource("ae-plain", "cb", 2, Some(&["acpCb"]), "CBob");
    plain.ae_id = String::new();
    c.put_resource(put_req("CBob", plain))
        .await
        .expect("an <AE> without aei");
    c.put_resource(put_req(ADMIN, ae.clone()))
        .await
        .expect("the admin registers the AE resource");
    let before = stored_state(c).await;
    for new in ["CBob", ""] {
        let mut changed = ae.clone();
        changed.ae_id = new.into();
        let err = c
            .put_resource(put_req("CBob", changed))
            .await
            .expect_err("aei is read-only");
        assert_eq!(err.code(), Code::InvalidArgument, "{new:?}");
        assert_eq!(violations(&err), ["resource.ae_id"], "{new:?}");
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");
    // Other attributes may still change with UPDATE.
    let mut labelled = ae.clone();
    labelled.daci = vec!["dac1".into()];
    c.put_resource(put_req("CBob", labelled))
        .await
        .expect("UPDATE of other attributes");
    prp.shutdown().await;
}

/// `acpRoot` (CREATE for `creators`, everything in its pvs for the admin)
/// and the resource `root` (type 5) that references it, stored by the
/// admin.
async fn root_granting_create(
    c: &mut pb::policy_retrieval_point_client::PolicyRetrievalPointClient<
        tonic::transport::Channel,
    >,
    creators: &[&str],
) {
    let root_acp = pb::AccessControlPolicy {
        resource_id: Some("acpRoot".into()),
        privileges: Some(set(vec![rule(creators, 1)])),
        self_privileges: Some(set(vec![rule(&[ADMIN], 63)])),
        ..Default::default()
    };
    c.create_acp(create_req(ADMIN, root_acp))
        .await
        .expect("acpRoot");
    c.put_resource(put_req(
        ADMIN,
        resource("root", "", 5, Some(&["acpRoot"]), ""),
    ))
    .await
    .expect("root");
}

/// A deleted resource's ID is not free for anyone to take: its children,
/// whose policies are their parent's (TS-0001 10.2.3.1), stay in the store
/// naming it as `pi`, so whoever registered it again would hold them. As for
/// an ACP ID still in an `acpi`, only the admin may re-create it.
#[tokio::test]
async fn a_deleted_parent_id_is_not_free_for_others_ts0001_10_2_3_1() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    root_granting_create(c, &["CBob", "CAlice"]).await;
    for r in [
        resource("cntA", "root", 3, None, "CAlice"),
        resource("cinA", "cntA", 4, None, "CAlice"),
    ] {
        c.put_resource(put_req(ADMIN, r)).await.expect("resource");
    }
    // Alice, the creator, deletes her container; its contentInstance stays.
    c.delete_resource(pb::DeleteResourceRequest {
        role_ids: Vec::new(),
        originator: "CAlice".into(),
        resource_id: "cntA".into(),
    })
    .await
    .expect("the creator deletes it");
    // Bob may create under root, but not take cntA's place.
    let err = c
        .put_resource(put_req("CBob", resource("cntA", "root", 3, None, "CBob")))
        .await
        .expect_err("Bob would hold cinA");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("cinA"), "{}", err.message());
    c.put_resource(put_req("CBob", resource("cntB", "root", 3, None, "CBob")))
        .await
        .expect("a fresh ID under root");
    c.put_resource(put_req(ADMIN, resource("cntA", "root", 3, None, "CAlice")))
        .await
        .expect("the admin may re-create it");
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3: an ACP's `pi` is read-only, as a resource's is (a move
/// would pass the new parent's CREATE check by an update); an update keeps
/// what it omits (TS-0004 7.4.2.2.3 for pv and pvs), and `authz policy
/// apply` updates an existing ACP with a document that omits `pv`.
#[tokio::test]
async fn acp_updates_keep_pi_and_what_they_omit_ts0001_9_6_1_3() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let mut stored = acp("acpCb", &["CAlice"], &["CBob"], ALL);
    stored.parent_id = Some("cb".into());
    stored.labels = vec!["keep".into()];
    c.create_acp(create_req(ADMIN, stored))
        .await
        .expect("acpCb");
    let update = |acp: pb::AccessControlPolicy| pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: "CBob".into(),
        acp: Some(acp),
    };
    let mut moved = acp("acpCb", &["CAlice"], &["CBob"], ALL);
    moved.parent_id = Some("other".into());
    let err = c
        .update_acp(update(moved))
        .await
        .expect_err("pi is read-only");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), ["parent_id"]);
    // The same parent in another ID form (TS-0001 7.2) is no move.
    for same in ["/id-in/cb", "//sp.example.com/id-in/cb"] {
        let mut named = acp("acpCb", &["CAlice"], &["CBob"], ALL);
        named.parent_id = Some(same.into());
        c.update_acp(update(named)).await.expect(same);
    }

    let mut only_pvs = acp("acpCb", &["CAlice"], &["CBob"], ALL);
    only_pvs.privileges = None;
    c.update_acp(update(only_pvs))
        .await
        .expect("an update without pv or pi");
    let got = c
        .get_acp(pb::GetAcpRequest {
            acp_id: "acpCb".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .acp
        .expect("acp");
    assert_eq!(got.parent_id.as_deref(), Some("cb"));
    assert_eq!(got.labels, ["keep"]);
    assert!(
        got.privileges.is_some_and(|p| !p.rules.is_empty()),
        "pv kept"
    );

    // The same through a bundle: an existing ACP is updated, pv omitted
    // (and kept), pvs changed.
    let bundle = authz_prp::bundle::Bundle::parse(
        r#"{"acps": [{"m2m:acp": {"ri": "acpCb", "pvs": {"acr": [{"acor": ["CBob", "CCarol"], "acop": 63}]}}}]}"#,
    )
    .expect("bundle");
    let applied = authz_prp::bundle::apply(c, "CBob", &bundle)
        .await
        .expect("an update without pv");
    assert_eq!(
        (applied.created, applied.updated, applied.unchanged),
        (0, 1, 0)
    );
    prp.shutdown().await;
}

/// A stored ACP as the model's JSON (short names, other attributes flat).
async fn acp_json(
    c: &mut pb::policy_retrieval_point_client::PolicyRetrievalPointClient<
        tonic::transport::Channel,
    >,
    id: &str,
) -> serde_json::Value {
    let acp = c
        .get_acp(pb::GetAcpRequest { acp_id: id.into() })
        .await
        .expect("get")
        .into_inner()
        .acp
        .expect("acp");
    serde_json::to_value(authz_proto::convert::acp_from_pb(&acp).expect("model")).expect("json")
}

/// An attribute an update gives as null is deleted, not stored as null (a
/// policy author's `"et": null` removes the expiration time), and one a
/// create gives as null is absent; what the update omits stays.
#[tokio::test]
async fn an_acp_attribute_given_as_null_is_deleted_not_stored() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let rules = format!(
        r#""pv": {{"acr": [{{"acor": ["CAlice"], "acop": 2}}]}}, "pvs": {{"acr": [{{"acor": ["{ADMIN}"], "acop": 63}}]}}"#
    );
    let apply = |body: String| {
        authz_prp::bundle::Bundle::parse(&format!(r#"{{"acps": [{{"m2m:acp": {{{body}}}}}]}}"#))
            .expect("bundle")
    };
    authz_prp::bundle::apply(
        c,
        ADMIN,
        &apply(format!(
            r#""ri": "acpN", "et": "20301231T000000", "lbl": ["a"], "vnd": {{"x": 1}}, "cstn": null, {rules}"#
        )),
    )
    .await
    .expect("create");
    let created = acp_json(c, "acpN").await;
    assert_eq!(created["et"], "20301231T000000", "{created}");
    assert!(created.get("cstn").is_none(), "{created}");
    authz_prp::bundle::apply(
        c,
        ADMIN,
        &apply(format!(
            r#""ri": "acpN", "et": null, "vnd": null, "pvs": {{"acr": [{{"acor": ["{ADMIN}"], "acop": 63}}]}}"#
        )),
    )
    .await
    .expect("update");
    let updated = acp_json(c, "acpN").await;
    for gone in ["et", "vnd"] {
        assert!(updated.get(gone).is_none(), "{gone}: {updated}");
    }
    assert_eq!(updated["lbl"], serde_json::json!(["a"]), "{updated}");
    assert!(updated.get("pv").is_some(), "{updated}");
    prp.shutdown().await;
}

/// `authz policy apply` says what it changed: a bundle applied again is
/// reported unchanged (the PRP made no revision for it), a partly changed
/// one counts only what changed; and an ACP whose ID a resource holds is
/// refused as the create was (ALREADY_EXISTS naming the shared ID space),
/// not as an ACP missing for the update tried after it.
#[tokio::test]
async fn bundle_apply_reports_what_it_changed_and_why_an_id_is_taken() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let bundle = |label: &str| {
        authz_prp::bundle::Bundle::parse(&format!(
            r#"{{"acps": [
                {{"m2m:acp": {{"ri": "acpB1", "pv": {{"acr": [{{"acor": ["CAlice"], "acop": 2}}]}},
                  "pvs": {{"acr": [{{"acor": ["{ADMIN}"], "acop": 63}}]}}}}}},
                {{"m2m:acp": {{"ri": "acpB2", "lbl": ["{label}"], "pv": {{"acr": [{{"acor": ["CBob"], "acop": 2}}]}},
                  "pvs": {{"acr": [{{"acor": ["{ADMIN}"], "acop": 63}}]}}}}}}],
              "resources": [{{"ri": "cntB", "ty": 3, "acpi": ["acpB1"]}}]}}"#
        ))
        .expect("bundle")
    };
    let first = authz_prp::bundle::apply(c, ADMIN, &bundle("a"))
        .await
        .expect("first");
    assert_eq!((first.created, first.updated, first.unchanged), (2, 0, 0));
    assert_eq!((first.resources, first.resources_unchanged), (1, 0));
    let again = authz_prp::bundle::apply(c, ADMIN, &bundle("a"))
        .await
        .expect("again");
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 2));
    assert_eq!((again.resources, again.resources_unchanged), (0, 1));
    assert_eq!(again.revision, first.revision, "no revision made");
    assert!(
        again
            .to_string()
            .starts_with("nothing changed: 2 ACP(s) and 1 resource(s)")
    );
    let relabelled = authz_prp::bundle::apply(c, ADMIN, &bundle("b"))
        .await
        .expect("relabelled");
    assert_eq!(
        (
            relabelled.updated,
            relabelled.unchanged,
            relabelled.resources_unchanged
        ),
        (1, 1, 1)
    );
    assert_eq!(relabelled.revision, first.revision + 1);

    let taken = authz_prp::bundle::Bundle::parse(&format!(
        r#"{{"m2m:acp": {{"ri": "cntB", "pv": {{"acr": [{{"acor": ["CAlice"], "acop": 2}}]}},
             "pvs": {{"acr": [{{"acor": ["{ADMIN}"], "acop": 63}}]}}}}}}"#
    ))
    .expect("bundle");
    match authz_prp::bundle::apply(c, ADMIN, &taken).await {
        Err(authz_prp::bundle::ApplyError::Refused { what, status, .. }) => {
            assert_eq!(what, "cntB");
            assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
            assert!(status.message().contains("share"), "{status:?}");
        }
        other => panic!("{other:?}"),
    }
    prp.shutdown().await;
}

/// Decision 7: a dynamic ACP counts until it expires, also before the
/// sweeper removes it: a request on it then lists no policy (as the PDP,
/// whose replica no longer counts it), not its privileges.
#[tokio::test]
async fn an_expired_dynamic_acp_is_no_policy_before_it_is_swept_decision_7() {
    let mut c = config();
    c.sweep_interval = Duration::from_secs(3600);
    let mut prp = start(c).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, Some(&["acp1"]), "")))
        .await
        .expect("cnt");
    let ends = chrono::Utc::now().timestamp() + 1;
    let rec = c
        .create_dynamic_acp(pb::CreateDynamicAcpRequest {
            originator: "CPdp".into(),
            target: "cnt".into(),
            acp_id: "dynShort".into(),
            privileges: Some(set(vec![rule(&["CGuest"], 2)])),
            expires_at: Some(prost_types::Timestamp {
                seconds: ends,
                nanos: 0,
            }),
        })
        .await
        .expect("grant")
        .into_inner();
    let live = applicable_ids(c, &rec.acp_id).await;
    assert_eq!(live.len(), 1, "{live:?}");
    while chrono::Utc::now().timestamp() < ends {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Not swept yet: still an ACP, with no policy.
    let expired = applicable_ids(c, &rec.acp_id).await;
    assert!(expired.is_empty(), "{expired:?}");
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3: a resourceName is unique among its parent's
/// children, so two ACPs of one bundle with one `rn` under one parent,
/// named in any ID form of it, are refused before the first write (the
/// PRP would refuse the second after writing the first); under a parent
/// of another CSE, or another parent, they apply.
#[tokio::test]
async fn a_bundle_with_one_rn_twice_under_one_parent_writes_nothing_ts_0001_9_6_1_3() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.put_resource(put_req(ADMIN, resource("id-in", "", 5, None, "")))
        .await
        .expect("CSEBase");
    c.put_resource(put_req(ADMIN, resource("CAE1", "id-in", 2, None, "")))
        .await
        .expect("AE");
    let before = prp.service.revision();
    let bundle = |a: &str, b: &str| {
        let acp = |ri: &str, pi: &str| {
            format!(
                r#"{{"ri": "{ri}", "rn": "door", "pi": "{pi}", "pv": {{"acr": [{{"acor": ["CAlice"], "acop": 2}}]}},
                "pvs": {{"acr": [{{"acor": ["{ADMIN}"], "acop": 63}}]}}}}"#
            )
        };
        authz_prp::bundle::Bundle::parse(&format!(
            r#"{{"acps": [{}, {}]}}"#,
            acp("acpA", a),
            acp("acpB", b)
        ))
        .expect("bundle")
    };
    for (a, b) in [
        ("id-in", "/id-in"),
        ("/id-in", "//SP.example.com/id-in"),
        ("CAE1", "//sp.example.com/id-in/CAE1"),
        // Not registered (yet: a first bundle creates its ACPs before it
        // registers their parents), read as the PRP reads it all the same.
        ("CAE9", "/id-in/CAE9"),
    ] {
        match authz_prp::bundle::apply(c, ADMIN, &bundle(a, b)).await {
            Err(authz_prp::bundle::ApplyError::Invalid(errors)) => assert_eq!(
                errors,
                [format!(
                    "acps[1] (acpB).rn: door under {b} is also acps[0] (acpA).rn; a \
                     resourceName is unique among its parent's children (TS-0001 9.6.1.3)"
                )]
            ),
            other => panic!("{a} / {b}: {other:?}"),
        }
        assert_eq!(prp.service.revision(), before, "{a} / {b}: nothing written");
    }
    // Two parents.
    let applied = authz_prp::bundle::apply(c, ADMIN, &bundle("CAE1", "/id-in/CAE2"))
        .await
        .expect("two parents");
    assert_eq!(applied.created, 2);
    // A parent of another CSE, where no ACP of this one is a child.
    let mut foreign = acp("acpF", &["CAlice"], &[ADMIN], ALL);
    foreign.parent_id = Some("/id-other/CAE1".into());
    let err = c
        .create_acp(create_req(ADMIN, foreign))
        .await
        .expect_err("a parent of another CSE");
    assert_eq!(violations(&err), ["parent_id"], "{err:?}");
    prp.shutdown().await;
}

/// TS-0003 7.3.2.2: a `dai` grant is a child `<accessControlPolicy>` of
/// the targeted resource, so deleting the resource deletes its dynamic
/// ACPs (each a revision of its own, streamed as a delete, before the
/// resource's): a resource the admin registers under the ID afterwards
/// does not inherit them, and others may register it again.
#[tokio::test]
async fn deleting_a_resource_deletes_its_dynamic_acps_ts0003_7_3_2_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, Some(&["acp1"]), "")))
        .await
        .expect("cnt");
    c.put_resource(put_req(
        ADMIN,
        resource("other", "", 3, Some(&["acp1"]), ""),
    ))
    .await
    .expect("other");
    let now = chrono::Utc::now().timestamp();
    let everyone = || set(vec![rule(&["all"], ALL)]);
    let on_cnt = c
        .create_dynamic_acp(dynamic_grant("cnt", everyone(), now + 600))
        .await
        .expect("grant")
        .into_inner();
    let on_other = c
        .create_dynamic_acp(dynamic_grant("other", everyone(), now + 600))
        .await
        .expect("grant")
        .into_inner();
    let mut watch = c
        .watch(pb::WatchRequest {
            from_revision: on_other.revision,
            from_tag: 0,
        })
        .await
        .expect("watch")
        .into_inner();

    let deleted = c
        .delete_resource(pb::DeleteResourceRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            resource_id: "cnt".into(),
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(
        deleted.revision,
        on_other.revision + 2,
        "the grant, then the resource"
    );
    let ev = next(&mut watch).await;
    assert_eq!(ev.event, Some(Event::DynamicDeleted(on_cnt.acp_id.clone())));
    let ev = next(&mut watch).await;
    assert_eq!(ev.event, Some(Event::ResourceDeleted("cnt".into())));
    let Some(Event::Snapshot(s)) = stored_state(c).await.event else {
        panic!("expected a snapshot")
    };
    let left: Vec<&str> = s.dynamic_acps.iter().map(|d| d.acp_id.as_str()).collect();
    assert_eq!(left, [on_other.acp_id.as_str()], "the other grant stays");

    // Registered again (by the admin, under the default policy of its new
    // creator): no grant of the old resource applies to it.
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, None, "CNew")))
        .await
        .expect("cnt again");
    let ids: Vec<String> = applicable_ids(c, "cnt")
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert!(!ids.contains(&on_cnt.acp_id), "{ids:?}");
    prp.shutdown().await;
}

/// An ACP gets no dynamic ACP: a request on it is authorized by its
/// selfPrivileges alone (TS-0003 7.1.1), and a grant is privileges, so
/// one bound to its ID could only outlive it. And an ACP is held under its
/// CSE-relative `ri` (TS-0001 7.2), the form `acpi` entries are stored in:
/// an ID with a leading `/` is refused.
#[tokio::test]
async fn an_acp_gets_no_dynamic_acp_and_acp_ids_are_relative() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    let now = chrono::Utc::now().timestamp();
    let err = c
        .create_dynamic_acp(dynamic_grant(
            "acp1",
            set(vec![rule(&["all"], ALL)]),
            now + 600,
        ))
        .await
        .expect_err("a grant on an ACP");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("selfPrivileges"), "{err:?}");

    for id in ["/id-in/acp2", "//sp.example.com/id-in/acp2"] {
        let err = c
            .create_acp(create_req(ADMIN, acp(id, &["CAlice"], &[ADMIN], ALL)))
            .await
            .expect_err(id);
        assert_eq!(err.code(), Code::InvalidArgument, "{id}: {err:?}");
        assert_eq!(violations(&err), ["resource_id"], "{id}");
    }
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3.2: `cr` is the originator of the successful Create, so
/// a registration by anyone but the admin names its originator as creator
/// or none (the PRP sets it): Alice cannot make a resource she creates
/// Bob's (or nobody's), which would hand it to him under the default policy.
#[tokio::test]
async fn the_creator_of_a_registration_is_its_originator_ts0001_9_6_1_3_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    root_granting_create(c, &["CAlice"]).await;

    let err = c
        .put_resource(put_req("CAlice", resource("c1", "root", 3, None, "CBob")))
        .await
        .expect_err("another creator");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .starts_with("resource.creator: CBob is not CAlice"),
        "{err:?}"
    );

    let stored = c
        .put_resource(put_req("CAlice", resource("c2", "root", 3, None, "")))
        .await
        .expect("no creator named")
        .into_inner();
    assert_eq!(stored.resource.expect("resource").creator, "CAlice");
    // Her ID in another form is her.
    let stored = c
        .put_resource(put_req(
            "CAlice",
            resource("c3", "root", 3, None, "//sp.example.com/id-in/CAlice"),
        ))
        .await
        .expect("herself, absolute")
        .into_inner();
    assert_eq!(
        stored.resource.expect("resource").creator,
        "//sp.example.com/id-in/CAlice"
    );
    // The admin loads resources for others.
    c.put_resource(put_req(ADMIN, resource("c4", "root", 3, None, "CBob")))
        .await
        .expect("the admin");
    prp.shutdown().await;
}

/// TS-0001 7.2: `acpi` names ACPs in any ID form; the PRP holds this CSE's
/// ACPs under their CSE-relative IDs, so an SP-relative or absolute entry
/// of this CSE is stored in that form (and resolves), and one of another
/// CSE, which would never resolve, or one naming an ACP listed already, is
/// INVALID_ARGUMENT naming it.
#[tokio::test]
async fn acpi_entries_in_any_id_form_name_this_cses_acps_ts0001_7_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    c.create_acp(create_req(ADMIN, acp("acp2", &["CBob"], &[ADMIN], ALL)))
        .await
        .expect("acp2");
    let stored = c
        .put_resource(put_req(
            ADMIN,
            resource(
                "cnt",
                "",
                3,
                Some(&["/id-in/acp1", "//SP.example.com/id-in/acp2"]),
                "",
            ),
        ))
        .await
        .expect("cnt")
        .into_inner();
    assert_eq!(stored.resource.expect("resource").acpi, ["acp1", "acp2"]);
    let ids: Vec<String> = applicable_ids(c, "cnt")
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(ids, ["acp1", "acp2"]);

    // The same ACP twice, in two forms: a mistake, named, nothing stored.
    let err = c
        .put_resource(put_req(
            ADMIN,
            resource(
                "cnt3",
                "",
                3,
                Some(&["acp1", "//sp.example.com/id-in/acp1"]),
                "",
            ),
        ))
        .await
        .expect_err("acp1 twice");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err), ["resource.acpi[1]"]);

    let err = c
        .put_resource(put_req(
            ADMIN,
            resource("cnt2", "", 3, Some(&["acp1", "/id-mn/acp1"]), ""),
        ))
        .await
        .expect_err("another CSE's ACP");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err), ["resource.acpi[1]"]);

    // `daci` the same way: this CSE's DACs in any form are held
    // CSE-relative (so that a DAC with `dae` false is found, not passed
    // over for the parent's); twice in two forms, or another CSE's, is
    // named.
    let mut with_dacs = resource("cnt4", "", 3, Some(&["acp1"]), "");
    with_dacs.daci = vec!["/id-in/dac1".into(), "//sp.example.com/id-in/dac2".into()];
    let stored = c
        .put_resource(put_req(ADMIN, with_dacs))
        .await
        .expect("daci in other forms")
        .into_inner();
    assert_eq!(stored.resource.expect("resource").daci, ["dac1", "dac2"]);
    for (daci, field) in [
        (vec!["dac1", "/id-in/dac1"], "resource.daci[1]"),
        (vec!["//other.example.com/id-in/dac1"], "resource.daci[0]"),
    ] {
        let mut r = resource("cnt5", "", 3, Some(&["acp1"]), "");
        r.daci = daci.iter().map(|d| d.to_string()).collect();
        let err = c
            .put_resource(put_req(ADMIN, r))
            .await
            .expect_err("daci refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{daci:?}: {err:?}");
        assert_eq!(violations(&err), [field], "{daci:?}");
        if daci[0].starts_with("//other") {
            // This CSE named in a form an ID has (TS-0001 7.2).
            assert!(
                err.message().contains("(//sp.example.com/id-in)"),
                "{}",
                err.message()
            );
        }
    }
    prp.shutdown().await;
}

/// A dynamic ACP grant for `target` until `expires_at` (Unix seconds),
/// stored by the PDP's originator, its ID generated.
fn dynamic_grant(
    target: &str,
    privileges: pb::SetOfAcrs,
    expires_at: i64,
) -> pb::CreateDynamicAcpRequest {
    pb::CreateDynamicAcpRequest {
        originator: "CPdp".into(),
        target: target.into(),
        acp_id: String::new(),
        privileges: Some(privileges),
        expires_at: Some(prost_types::Timestamp {
            seconds: expires_at,
            nanos: 0,
        }),
    }
}

/// A PDP that consults again for each retry of a request stores the same
/// grant each time: it is one dynamic ACP, whose expiry moves to the later
/// end (one revision, streamed as a put of that ID) and never back, and
/// whose ID is returned each time. Other privileges, or an explicit
/// `acp_id`, are another dynamic ACP.
#[tokio::test]
async fn an_equal_grant_extends_the_stored_dynamic_acp_and_never_shortens_it() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, Some(&["acp1"]), "")))
        .await
        .expect("cnt");
    let mut watch = c
        .watch(pb::WatchRequest {
            from_revision: 2,
            from_tag: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let now = chrono::Utc::now().timestamp();
    let bob = || set(vec![rule(&["CBob"], 2)]);

    let first = c
        .create_dynamic_acp(dynamic_grant("cnt", bob(), now + 600))
        .await
        .expect("grant")
        .into_inner();
    assert_eq!(first.revision, 3);
    let later = c
        .create_dynamic_acp(dynamic_grant("cnt", bob(), now + 900))
        .await
        .expect("again, later")
        .into_inner();
    assert_eq!(later.acp_id, first.acp_id, "the same dynamic ACP");
    assert_eq!(
        later.expires_at.as_ref().map(|t| t.seconds),
        Some(now + 900)
    );
    assert_eq!(later.revision, 4, "one revision for the extension");
    let earlier = c
        .create_dynamic_acp(dynamic_grant("cnt", bob(), now + 300))
        .await
        .expect("again, earlier")
        .into_inner();
    assert_eq!(earlier.acp_id, first.acp_id);
    assert_eq!(
        earlier.expires_at.as_ref().map(|t| t.seconds),
        Some(now + 900),
        "never shortened"
    );
    assert_eq!(earlier.revision, 4, "nothing written");

    let ev = next(&mut watch).await;
    assert_eq!(ev.revision, 3);
    assert!(matches!(ev.event, Some(Event::DynamicPut(ref d)) if d.acp_id == first.acp_id));
    let ev = next(&mut watch).await;
    assert_eq!(ev.revision, 4);
    // The watched record is the written one, without the version a write
    // answers (the event's own revision and tag say it).
    let written = pb::DynamicAcpRecord {
        version: None,
        ..later.clone()
    };
    assert_eq!(ev.event, Some(Event::DynamicPut(written.clone())));
    let version = later.version.as_ref().expect("a write names its version");
    assert_eq!((version.revision, version.tag), (4, ev.tag));

    let dynamic = |id: &str| (id.to_string(), pb::PrivilegeKind::Privileges as i32, true);
    let acp1 = (
        "acp1".to_string(),
        pb::PrivilegeKind::Privileges as i32,
        false,
    );
    assert_eq!(
        applicable_ids(c, "cnt").await,
        vec![acp1.clone(), dynamic(&first.acp_id)]
    );
    let Some(Event::Snapshot(s)) = stored_state(c).await.event else {
        panic!("expected a snapshot")
    };
    assert_eq!(s.dynamic_acps, vec![written]);

    // Other privileges, or a named ID: other dynamic ACPs.
    let other = c
        .create_dynamic_acp(dynamic_grant(
            "cnt",
            set(vec![rule(&["CBob"], 2 | 8)]),
            now + 600,
        ))
        .await
        .expect("other privileges")
        .into_inner();
    assert_ne!(other.acp_id, first.acp_id);
    let mut named = dynamic_grant("cnt", bob(), now + 600);
    named.acp_id = "dyn-named".into();
    c.create_dynamic_acp(named).await.expect("named");
    assert_eq!(
        applicable_ids(c, "cnt").await,
        vec![
            acp1,
            dynamic(&first.acp_id),
            dynamic(&other.acp_id),
            dynamic("dyn-named")
        ]
    );
    // The no-op wrote nothing: the next change is revision 5.
    let ev = next(&mut watch).await;
    assert_eq!(ev.revision, 5);
    assert!(matches!(ev.event, Some(Event::DynamicPut(ref d)) if d.acp_id == other.acp_id));
    prp.shutdown().await;
}

/// A target holds at most 64 live dynamic ACPs: one more is
/// RESOURCE_EXHAUSTED naming the target, while an equal grant (an
/// extension), a replacement by ID and another target are not refused, and
/// expired ones do not count.
#[tokio::test]
async fn a_target_holds_at_most_64_live_dynamic_acps() {
    const CAP: usize = authz_prp::service::MAX_DYNAMIC_ACPS_PER_TARGET;
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    for id in ["cnt", "cnt2"] {
        c.put_resource(put_req(ADMIN, resource(id, "", 3, None, "")))
            .await
            .expect(id);
    }
    let now = chrono::Utc::now().timestamp();
    let for_originator = |o: &str| set(vec![rule(&[o], 2)]);
    let mut ids = Vec::new();
    for i in 0..CAP - 1 {
        let rec = c
            .create_dynamic_acp(dynamic_grant(
                "cnt",
                for_originator(&format!("CGuest{i}")),
                now + 600,
            ))
            .await
            .expect("under the cap")
            .into_inner();
        ids.push(rec.acp_id);
    }
    // The 64th ends in (at least) a second.
    let short_end = chrono::Utc::now().timestamp() + 2;
    c.create_dynamic_acp(dynamic_grant("cnt", for_originator("CShort"), short_end))
        .await
        .expect("the 64th");

    let err = c
        .create_dynamic_acp(dynamic_grant("cnt", for_originator("CExtra"), now + 600))
        .await
        .expect_err("the 65th");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("target cnt"), "{}", err.message());

    let again = c
        .create_dynamic_acp(dynamic_grant("cnt", for_originator("CGuest0"), now + 900))
        .await
        .expect("an equal grant adds nothing")
        .into_inner();
    assert_eq!(again.acp_id, ids[0]);
    let mut replace = dynamic_grant("cnt", for_originator("CGuest1b"), now + 600);
    replace.acp_id = ids[1].clone();
    c.create_dynamic_acp(replace)
        .await
        .expect("a replacement adds nothing");
    c.create_dynamic_acp(dynamic_grant("cnt2", for_originator("CExtra"), now + 600))
        .await
        .expect("another target");

    // Once CShort's has expired (swept or not), there is room again.
    while chrono::Utc::now().timestamp() < short_end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.create_dynamic_acp(dynamic_grant("cnt", for_originator("CExtra"), now + 600))
        .await
        .expect("expired ones do not count");
    prp.shutdown().await;
}

/// A resource tree has no cycles (TS-0001 9.6.1.3: `pi` names the parent,
/// fixed at creation), and the policies of a resource in one could not be
/// resolved (TS-0001 10.2.3.1 step 2 follows `pi`). The admin may register
/// a child before its parent; registering that parent under the child, or
/// a resource under itself, is INVALID_ARGUMENT naming
/// `resource.parent_id` with the cycle, for the admin too, and stores
/// nothing.
#[tokio::test]
async fn a_write_that_closes_a_cycle_of_parents_is_refused_ts0001_10_2_3_1() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    // a ← b ← c, with `a` under `c`, which is not registered yet.
    for (id, parent) in [("a", "c"), ("b", "a")] {
        c.put_resource(put_req(ADMIN, resource(id, parent, 4, None, "")))
            .await
            .expect(id);
    }
    let before = stored_state(c).await;
    for (id, parent, cycle) in [
        ("c", "b", "c → b → a → c"),
        ("self", "self", "its own parent"),
    ] {
        let err = c
            .put_resource(put_req(ADMIN, resource(id, parent, 3, Some(&["acp1"]), "")))
            .await
            .expect_err("a cycle");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(violations(&err), ["resource.parent_id"]);
        assert!(err.message().contains(cycle), "{}", err.message());
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");
    // `c` under a resource outside the chain ends it.
    c.put_resource(put_req(ADMIN, resource("root", "", 5, Some(&["acp1"]), "")))
        .await
        .expect("root");
    c.put_resource(put_req(
        ADMIN,
        resource("c", "root", 3, Some(&["acp1"]), ""),
    ))
    .await
    .expect("c");
    assert_eq!(
        applicable_ids(c, "b").await,
        vec![(
            "acp1".to_string(),
            pb::PrivilegeKind::Privileges as i32,
            false
        )],
        "b → a → c, whose acpi apply"
    );
    prp.shutdown().await;
}

/// Putting a resource's stored values again is an Update (TS-0001
/// 10.2.3.1): refused to an originator without UPDATE in its applicable
/// policies, as any other change is; for one with it, no change: OK with
/// the revision that holds the values, and nothing committed or sent to
/// the PDPs.
#[tokio::test]
async fn the_same_resource_again_needs_update_and_writes_nothing() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    // CAlice may update (pv: all operations); CBob is named nowhere.
    let mut acp1 = acp("acp1", &[], &[ADMIN], ALL);
    acp1.privileges = Some(common::set(vec![common::rule(&["CAlice"], ALL)]));
    c.create_acp(create_req(ADMIN, acp1)).await.expect("acp1");
    c.put_resource(put_req(ADMIN, resource("cnt", "", 3, Some(&["acp1"]), "")))
        .await
        .expect("cnt");
    let stored = c
        .put_resource(put_req(ADMIN, resource("cin", "cnt", 4, None, "")))
        .await
        .expect("cin")
        .into_inner();
    let before = stored_state(c).await;
    for id in ["cnt", "cin"] {
        let again = if id == "cnt" {
            resource("cnt", "", 3, Some(&["acp1"]), "")
        } else {
            resource("cin", "cnt", 4, None, "")
        };
        let err = c
            .put_resource(put_req("CBob", again.clone()))
            .await
            .expect_err("CBob may not update");
        assert_eq!(err.code(), Code::PermissionDenied, "{id}: {err:?}");
        let ok = c
            .put_resource(put_req("CAlice", again))
            .await
            .expect("no change")
            .into_inner();
        assert_eq!(ok.revision, stored.revision, "{id}: no new revision");
    }
    assert_eq!(stored_state(c).await, before, "nothing committed");
    prp.shutdown().await;
}

/// Decision 9: a write whose originator is no AE-ID or CSE-ID is the
/// request's fault, INVALID_ARGUMENT naming `originator` (not a
/// PERMISSION_DENIED that hides the typo), and nothing is stored.
#[tokio::test]
async fn a_malformed_writer_is_an_invalid_argument_decision_9() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    let long_stem = format!("C{}", "x".repeat(2048));
    // 2048 bytes as given, longer in the absolute form it is compared in
    // (Decision 2): the request's fault too, not the PIP's or a refusal.
    let grows = format!("C{}", "x".repeat(2047));
    for who in ["a b", "all", "Cx*", long_stem.as_str(), grows.as_str()] {
        let err = c
            .create_acp(create_req(who, acp("acpW", &["CAlice"], &[ADMIN], ALL)))
            .await
            .expect_err(who);
        assert_eq!(err.code(), Code::InvalidArgument, "{who}: {err:?}");
        assert_eq!(violations(&err), ["originator"], "{who}");
    }
    let err = c
        .put_resource(put_req(&grows, resource("res1", "", 3, None, "")))
        .await
        .expect_err("a writer too long in absolute form");
    assert_eq!(violations(&err), ["originator"], "{err:?}");
    // A creator, custodian or AE-ID that long would name nobody.
    let mut named = resource("res1", "", 2, None, &grows);
    named.custodian = grows.clone();
    named.ae_id = grows.clone();
    let err = c
        .put_resource(put_req(ADMIN, named))
        .await
        .expect_err("IDs too long in absolute form");
    assert_eq!(
        violations(&err),
        ["resource.creator", "resource.custodian", "resource.ae_id"],
        "{err:?}"
    );
    assert!(err.message().contains("absolute form"), "{err:?}");
    assert_eq!(prp.service.revision(), 0, "nothing stored");
    prp.shutdown().await;
}

/// TS-0001 7.2 and Decision 9: a registration whose IDs no decision could
/// name is refused, naming the field: an empty `/` segment anywhere, and a
/// resource or parent ID not in the CSE-relative form the PDP reads a
/// target in. Nothing is stored.
#[tokio::test]
async fn a_registration_with_ids_no_target_could_name_is_refused_ts_0001_7_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acp1", &["CAlice"], &[ADMIN], ALL)))
        .await
        .expect("acp1");
    let before = prp.service.revision();
    for (id, parent, acpi, field) in [
        ("resSl/", "", "acp1", "resource.resource_id"),
        ("a//b", "", "acp1", "resource.resource_id"),
        ("/id-in/resAbs", "", "acp1", "resource.resource_id"),
        (
            "//sp.example.com/id-in/resAbs",
            "",
            "acp1",
            "resource.resource_id",
        ),
        ("res1", "cnt/", "acp1", "resource.parent_id"),
        ("res1", "/id-in/cnt", "acp1", "resource.parent_id"),
        ("res1", "", "acp1/", "resource.acpi[0]"),
    ] {
        let err = c
            .put_resource(put_req(ADMIN, resource(id, parent, 3, Some(&[acpi]), "")))
            .await
            .expect_err(id);
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{id} {parent} {acpi}: {err:?}"
        );
        assert_eq!(violations(&err), [field], "{id} {parent} {acpi}");
    }
    // A DAC's `dap` entries are addresses a hosting CSE consults.
    for poa in ["", "not a url", "das.example.com"] {
        let mut dac = resource("dac1", "", 34, None, "");
        dac.dac_enabled = Some(true);
        dac.dac_poa = vec![poa.to_owned()];
        let err = c.put_resource(put_req(ADMIN, dac)).await.expect_err(poa);
        assert_eq!(violations(&err), ["resource.dac_poa[0]"], "{poa:?}");
    }
    // An ACP's own common attributes: its parent, name and expiry.
    let mut bad = acp("acpX", &["CAlice"], &[ADMIN], ALL);
    bad.parent_id = Some("a b".into());
    bad.resource_name = Some("a/b".into());
    bad.expiration_time = "notatime".into();
    let err = c
        .create_acp(create_req(ADMIN, bad))
        .await
        .expect_err("bad attributes");
    let mut fields = violations(&err);
    fields.sort();
    assert_eq!(
        fields,
        ["expiration_time", "parent_id", "resource_name"],
        "{err:?}"
    );
    // The same `et` given among the other attributes is named there.
    let mut bad = acp("acpX", &["CAlice"], &[ADMIN], ALL);
    bad.other_attributes = Some(prost_types::Struct {
        fields: [(
            "et".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("zz".into())),
            },
        )]
        .into(),
    });
    let err = c
        .create_acp(create_req(ADMIN, bad))
        .await
        .expect_err("bad et");
    assert_eq!(violations(&err), ["other_attributes.et"], "{err:?}");
    // A name is bounded like an ID, and the record as a whole (1 MiB
    // encoded), so no write makes a message a PDP cannot decode.
    let mut long = acp("acpX", &["CAlice"], &[ADMIN], ALL);
    long.resource_name = Some("n".repeat(2049));
    let err = c
        .create_acp(create_req(ADMIN, long))
        .await
        .expect_err("a 2049-byte name");
    assert_eq!(violations(&err), ["resource_name"], "{err:?}");
    let mut huge = acp("acpX", &["CAlice"], &[ADMIN], ALL);
    huge.labels = vec!["l".repeat(1024); 1100];
    let err = c
        .create_acp(create_req(ADMIN, huge))
        .await
        .expect_err("a record over 1 MiB");
    assert_eq!(violations(&err), ["acp"], "{err:?}");
    let mut big_resource = resource("big", "", 3, None, "");
    big_resource.dac_poa = vec![format!("http://{}", "h".repeat(1 << 20))];
    let err = c
        .put_resource(put_req(ADMIN, big_resource))
        .await
        .expect_err("a resource over 1 MiB");
    assert_eq!(violations(&err), ["resource"], "{err:?}");
    // A `ty` other than 1 (spec notes §4), on create and on update alike:
    // what `authz check` refuses is not stored either.
    let stated = |ty: prost_types::value::Kind| {
        let mut a = acp("acpTy", &["CAlice"], &[ADMIN], ALL);
        a.other_attributes = Some(prost_types::Struct {
            fields: [("ty".to_owned(), prost_types::Value { kind: Some(ty) })]
                .into_iter()
                .collect(),
        });
        a
    };
    use prost_types::value::Kind;
    for ty in [Kind::NumberValue(2.0), Kind::StringValue("x".into())] {
        let err = c
            .create_acp(create_req(ADMIN, stated(ty.clone())))
            .await
            .expect_err("not an ACP's type");
        assert_eq!(violations(&err), ["other_attributes.ty"], "{err:?}");
        let err = c
            .update_acp(pb::UpdateAcpRequest {
                role_ids: Vec::new(),
                originator: ADMIN.into(),
                acp: Some(stated(ty)),
            })
            .await
            .expect_err("not an ACP's type");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    // An attribute name that would silently drop rules, refused as in a
    // file (`authz check`, `policy apply`): a long name, a resource root,
    // a rule's attribute beside `pv`.
    for key in ["privileges", "m2m:acp", "acr", "PV"] {
        let mut a = acp("acpTy", &["CAlice"], &[ADMIN], ALL);
        a.other_attributes = Some(prost_types::Struct {
            fields: [(
                key.to_owned(),
                prost_types::Value {
                    kind: Some(Kind::StringValue("x".into())),
                },
            )]
            .into_iter()
            .collect(),
        });
        let err = c.create_acp(create_req(ADMIN, a)).await.expect_err(key);
        assert_eq!(
            violations(&err),
            [format!("other_attributes.{key}")],
            "{err:?}"
        );
    }
    c.create_acp(create_req(ADMIN, stated(Kind::NumberValue(1.0))))
        .await
        .expect("ty 1 is an ACP's");
    assert_eq!(
        prp.service.revision(),
        before + 1,
        "only the valid one stored"
    );
    prp.shutdown().await;
}

/// Decision 7: a dynamic ACP is a grant bound to its target, not a policy a
/// resource can reference; naming one in an `acpi` is INVALID_ARGUMENT
/// naming the entry, and stores nothing.
#[tokio::test]
async fn an_acpi_cannot_name_a_dynamic_acp_decision_7() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    let now = chrono::Utc::now().timestamp();
    let granted = c
        .create_dynamic_acp(dynamic_grant(
            "cnt",
            set(vec![rule(&["CBob"], 63)]),
            now + 600,
        ))
        .await
        .expect("grant")
        .into_inner();
    let before = stored_state(c).await;
    let err = c
        .put_resource(put_req(
            ADMIN,
            resource("other", "cb", 3, Some(&["acp1", &granted.acp_id]), "CAlice"),
        ))
        .await
        .expect_err("a dynamic ACP in acpi");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err), ["resource.acpi[1]"], "{err:?}");
    assert!(err.message().contains("bound to cnt"), "{err:?}");
    assert_eq!(stored_state(c).await, before, "nothing stored");
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3: `cr` is read-only once the resource exists, so a put
/// that leaves it out keeps it: a registration by its creator, put again
/// unchanged without `cr` (an unchanged bundle applied again), is no change.
#[tokio::test]
async fn a_put_without_cr_keeps_the_creator_ts0001_9_6_1_3() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    root_granting_create(c, &["CAlice"]).await;
    let first = c
        .put_resource(put_req("CAlice", resource("c1", "root", 3, None, "")))
        .await
        .expect("registered")
        .into_inner();
    assert_eq!(first.resource.as_ref().expect("resource").creator, "CAlice");
    let again = c
        .put_resource(put_req("CAlice", resource("c1", "root", 3, None, "")))
        .await
        .expect("the same again, without cr")
        .into_inner();
    assert_eq!(again.revision, first.revision, "no change");
    assert_eq!(again.resource.expect("resource").creator, "CAlice");
    prp.shutdown().await;
}

/// Spec notes §2.2: an `<accessControlPolicy>` is created under a CSEBase,
/// an AE or a remoteCSE only; under a container it is INVALID_ARGUMENT
/// naming `parent_id`, for the admin too, whatever ID form names it.
#[tokio::test]
async fn an_acp_is_created_under_a_cse_base_ae_or_remote_cse_only() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    for parent in ["cnt", "cin"] {
        let err = c
            .create_acp(create_req(
                ADMIN,
                acp_under("acpMisplaced", parent, &[ADMIN]),
            ))
            .await
            .expect_err("under a container or a contentInstance");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert_eq!(violations(&err), ["parent_id"], "{err:?}");
    }
    // The container in another ID form (TS-0001 7.2) is the same parent,
    // refused too, not taken for an unregistered one that escapes the check.
    for parent in ["/id-in/cnt", "//SP.example.com/id-in/cnt", "/id-in/cin"] {
        let err = c
            .create_acp(create_req(
                ADMIN,
                acp_under("acpMisplaced", parent, &[ADMIN]),
            ))
            .await
            .expect_err(parent);
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert_eq!(violations(&err), ["parent_id"], "{parent}: {err:?}");
    }
    c.create_acp(create_req(ADMIN, acp_under("acpPlaced", "cb", &[ADMIN])))
        .await
        .expect("under the CSEBase");
    c.create_acp(create_req(
        ADMIN,
        acp_under("acpPlaced2", "/id-in/cb", &[ADMIN]),
    ))
    .await
    .expect("under the CSEBase, named SP-relative");
    prp.shutdown().await;
}

/// Spec notes §2.2: an ACP's children are `<subscription>` (23) and
/// `<transaction>` (51). Registering one is a Create on the ACP, judged by
/// its pvs (TS-0003 7.1.1: a request on an ACP uses its selfPrivileges);
/// any other type under an ACP is INVALID_ARGUMENT naming `parent_id`, for
/// the admin too (its policies would resolve nowhere).
#[tokio::test]
async fn a_subscription_under_an_acp_is_created_by_its_pvs_spec_notes_2_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    c.create_acp(create_req(ADMIN, acp_under("acpSub", "cb", &["CBoss"])))
        .await
        .expect("an ACP whose pvs lets CBoss do anything");
    c.put_resource(put_req(
        "CBoss",
        resource("sub1", "acpSub", 23, None, "CBoss"),
    ))
    .await
    .expect("CREATE in the ACP's pvs");
    let err = c
        .put_resource(put_req(
            "CAlice",
            resource("sub2", "acpSub", 23, None, "CAlice"),
        ))
        .await
        .expect_err("not in the pvs");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    for who in ["CBoss", ADMIN] {
        let err = c
            .put_resource(put_req(who, resource("cnt9", "acpSub", 3, None, "CBoss")))
            .await
            .expect_err("a container under an ACP");
        assert_eq!(err.code(), Code::InvalidArgument, "{who}: {err:?}");
        assert_eq!(violations(&err), ["resource.parent_id"], "{who}: {err:?}");
    }
    prp.shutdown().await;
}

/// Decision 3 and 10 at the PRP: with a PIP to ask which `acor` entries are
/// `<group>`s, a PIP that does not answer leaves no entry decidable, so a
/// write by anyone but the admin is UNAVAILABLE (and stores nothing); the
/// admin, who passes every check, still writes.
#[tokio::test]
async fn a_write_that_cannot_learn_the_groups_is_unavailable_decision_3() {
    // A port nothing listens on any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let mut config = config();
    config.pip_endpoint = Some(closed);
    let mut prp = start(config).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    let before = stored_state(c).await;
    let err = c
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: "CAlice".into(),
            acp: Some(acp("acp1", &["CAlice"], &["CAlice"], ALL)),
        })
        .await
        .expect_err("no PIP to ask");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("Decision 3"), "{err:?}");
    assert_eq!(stored_state(c).await, before, "nothing stored");
    c.update_acp(pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: ADMIN.into(),
        acp: Some(acp("acp1", &["CAlice"], &[ADMIN], ALL)),
    })
    .await
    .expect("the admin");
    prp.shutdown().await;
}

/// An `acpi` change to an ACP that does not exist would leave its resource
/// with no policy, and its `acpi` changeable by no one but the admin (an
/// `acpi` change is judged by the pvs of the ACPs referenced now, spec
/// notes §2.3): a reference a put adds must name a stored ACP
/// (INVALID_ARGUMENT naming `resource.acpi[i]`, nothing stored). A
/// reference the resource holds already stays, so its other attributes can
/// still be put after that ACP is deleted.
#[tokio::test]
async fn an_acpi_may_add_only_stored_acps_spec_notes_2_3() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    let before = stored_state(c).await;
    let err = c
        .put_resource(put_req(
            ADMIN,
            resource("cnt", "cb", 3, Some(&["acp1", "nope"]), "CAlice"),
        ))
        .await
        .expect_err("nope names no ACP");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err), ["resource.acpi[1]"], "{err:?}");
    assert_eq!(stored_state(c).await, before, "nothing stored");
    // Referenced in any ID form of this CSE.
    c.put_resource(put_req(
        ADMIN,
        resource("cnt2", "cb", 3, Some(&["/id-in/acp2"]), "CCreator"),
    ))
    .await
    .expect("acp2, SP-relative");
    // After acp1's deletion, cnt (which references it) can still be put.
    c.delete_acp(pb::DeleteAcpRequest {
        originator: ADMIN.into(),
        acp_id: "acp1".into(),
        role_ids: Vec::new(),
    })
    .await
    .expect("delete acp1");
    c.put_resource(put_req(
        ADMIN,
        resource("cnt", "cb", 3, Some(&["acp2", "acp1"]), "CAlice"),
    ))
    .await
    .expect("a reference held already");
    prp.shutdown().await;
}

/// A claimed Role-ID that is no `issuerRelativeID@issuerID` (spec notes
/// §7.2) is the writer's invalid argument, naming `role_ids[i]`, and the
/// write stores nothing; a well-formed one no PIP verifies counts for
/// nothing (TS-0003 7.4.3).
#[tokio::test]
async fn claimed_role_ids_are_checked_and_count_only_verified() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    c.update_acp(pb::UpdateAcpRequest {
        originator: ADMIN.into(),
        acp: Some(acp("acp1", &["CAlice"], &["editor@roles.example.com"], ALL)),
        role_ids: Vec::new(),
    })
    .await
    .expect("the admin");
    let before = stored_state(c).await;
    let update = |roles: &[&str]| pb::UpdateAcpRequest {
        originator: "CAlice".into(),
        acp: Some(acp("acp1", &["CAlice"], &["CAlice"], ALL)),
        role_ids: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    let err = c
        .update_acp(update(&["editor@roles.example.com", "no role"]))
        .await
        .expect_err("malformed");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(violations(&err), ["role_ids[1]"], "{err:?}");
    // This PRP asks no PIP: the claim is not verified.
    let err = c
        .update_acp(update(&["editor@roles.example.com"]))
        .await
        .expect_err("unverified");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert_eq!(stored_state(c).await, before, "nothing stored");
    prp.shutdown().await;
}

/// Decision 3 at the PRP with a PIP that keeps no group IDs: a PIP without
/// `ListGroups` (it answers UNIMPLEMENTED, as a server without the PIP
/// service does) is read as a PDP reads it, with no ID a group, so the
/// write is decided on the entries as originator IDs rather than refused.
#[tokio::test]
async fn a_pip_without_list_groups_keeps_no_group_ids_decision_3() {
    // A gRPC server with the health service only: every PIP call is
    // UNIMPLEMENTED.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut config = config();
    config.pip_endpoint = Some(url);
    let mut prp = start(config).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    c.update_acp(pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: ADMIN.into(),
        acp: Some(acp("acp1", &["CAlice"], &["CAlice"], ALL)),
    })
    .await
    .expect("the admin");
    c.update_acp(pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: "CAlice".into(),
        acp: Some(acp("acp1", &["CAlice", "CBob"], &["CAlice"], ALL)),
    })
    .await
    .expect("CAlice is named in pvs: decided, not UNAVAILABLE");
    let err = c
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: "CBob".into(),
            acp: Some(acp("acp1", &["CBob"], &["CBob"], ALL)),
        })
        .await
        .expect_err("CBob is not in pvs");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    prp.shutdown().await;
    server.abort();
}

/// TS-0001 7.2: a resource or ACP ID of this CSE may be given CSE-relative,
/// SP-relative or absolute; reads, deletes, applicable policies and grants
/// take every form, as a decision takes its target, and an ID of another
/// CSE stays NOT_FOUND.
#[tokio::test]
async fn reads_deletes_and_grants_take_any_id_form_of_this_cse_ts0001_7_2() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    store_cb_cnt_cin_cnt2(c).await;
    for form in ["/id-in/cnt", "//SP.example.com/id-in/cnt"] {
        let r = c
            .get_resource(pb::GetResourceRequest {
                resource_id: form.into(),
            })
            .await
            .expect(form)
            .into_inner();
        assert_eq!(r.resource.expect("resource").resource_id, "cnt");
        assert_eq!(
            applicable_ids(c, form).await,
            applicable_ids(c, "cnt").await
        );
    }
    // The CSEBase, held under its resource ID (the CSE-ID without `/`), by
    // its CSE-ID SP-relative or absolute, as a decision names it.
    c.put_resource(put_req(
        ADMIN,
        resource("id-in", "", 5, Some(&["acpCb"]), ""),
    ))
    .await
    .expect("the CSEBase");
    for form in ["/id-in", "//SP.example.com/id-in", "id-in"] {
        let r = c
            .get_resource(pb::GetResourceRequest {
                resource_id: form.into(),
            })
            .await
            .expect(form)
            .into_inner();
        assert_eq!(r.resource.expect("resource").resource_id, "id-in", "{form}");
        let applicable = applicable_ids(c, form).await;
        assert_eq!(applicable.len(), 1, "{form}: {applicable:?}");
        assert_eq!(applicable[0].0, "acpCb", "{form}");
    }
    let acp = c
        .get_acp(pb::GetAcpRequest {
            acp_id: "//sp.example.com/id-in/acp1".into(),
        })
        .await
        .expect("absolute ACP ID")
        .into_inner();
    assert_eq!(acp.acp.expect("acp").resource_id.as_deref(), Some("acp1"));
    let now = chrono::Utc::now().timestamp();
    let granted = c
        .create_dynamic_acp(dynamic_grant(
            "/id-in/cnt2",
            set(vec![rule(&["CBob"], 2)]),
            now + 600,
        ))
        .await
        .expect("a grant naming its target SP-relative")
        .into_inner();
    assert_eq!(granted.target, "cnt2");
    c.delete_resource(pb::DeleteResourceRequest {
        role_ids: Vec::new(),
        originator: ADMIN.into(),
        resource_id: "/id-in/cin".into(),
    })
    .await
    .expect("delete by SP-relative ID");
    let err = c
        .get_resource(pb::GetResourceRequest {
            resource_id: "/other-cse/cnt".into(),
        })
        .await
        .expect_err("another CSE's");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    prp.shutdown().await;
}

/// A DAC ID that a resource's `daci` names (its DAC deleted, or never
/// registered) would set that resource's `dae` and `dap` for whoever
/// registers it: as for ACP IDs in `acpi`, only the admin may (the hosting
/// CSE assigns IDs in oneM2M; TS-0001 9.6.40, spec notes §6.4).
#[tokio::test]
async fn a_dac_id_that_a_daci_names_is_the_admins_to_register() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    // Bob may create anything under `cb`.
    let mut acp_cb = acp("acpCb", &["CBob"], &[ADMIN], ALL);
    acp_cb.privileges = Some(set(vec![rule(&["CBob"], ALL)]));
    c.create_acp(create_req(ADMIN, acp_cb)).await.expect("acp");
    c.put_resource(put_req(ADMIN, resource("cb", "", 5, Some(&["acpCb"]), "")))
        .await
        .expect("cb");
    let dac = |id: &str, enabled: bool| pb::TargetResource {
        dac_enabled: Some(enabled),
        dac_poa: vec!["http://das.example.com".into()],
        ..resource(id, "cb", 34, Some(&["acpCb"]), "")
    };
    c.put_resource(put_req(ADMIN, dac("dacOff", false)))
        .await
        .expect("dacOff");
    let mut door = resource("door", "cb", 3, Some(&["acpCb"]), "CBob");
    // In any ID form (TS-0001 7.2): held as `ghost`.
    door.daci = vec!["dacOff".into(), "//sp.example.com/id-in/ghost".into()];
    c.put_resource(put_req(ADMIN, door)).await.expect("door");
    c.delete_resource(pb::DeleteResourceRequest {
        originator: ADMIN.into(),
        resource_id: "dacOff".into(),
        role_ids: Vec::new(),
    })
    .await
    .expect("delete dacOff");
    let before = stored_state(c).await;
    for id in ["dacOff", "ghost"] {
        let err = c
            .put_resource(put_req("CBob", dac(id, true)))
            .await
            .expect_err(id);
        assert_eq!(err.code(), Code::PermissionDenied, "{id}: {err:?}");
        assert!(
            err.message()
                .contains("door still references it in its daci"),
            "{}",
            err.message()
        );
    }
    assert_eq!(stored_state(c).await, before, "nothing stored");
    // An ID no daci names is Bob's to register, and the admin may re-create.
    c.put_resource(put_req("CBob", dac("dacBob", true)))
        .await
        .expect("a fresh DAC ID");
    c.put_resource(put_req(ADMIN, dac("dacOff", false)))
        .await
        .expect("the admin re-creates dacOff");
    prp.shutdown().await;
}

/// `cr`, `aei` and `csi` name an originator, so the same one in another ID
/// form (Decision 2) is no change: a bundle that writes the creator as a
/// stem after registering it absolute applies again, unchanged.
#[tokio::test]
async fn the_same_creator_or_ae_id_in_another_id_form_is_no_change() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.create_acp(create_req(ADMIN, acp("acpCb", &["CBob"], &[ADMIN], ALL)))
        .await
        .expect("acp");
    c.put_resource(put_req(ADMIN, resource("cb", "", 5, Some(&["acpCb"]), "")))
        .await
        .expect("cb");
    let mut ae = resource(
        "ae9",
        "cb",
        2,
        Some(&["acpCb"]),
        "//sp.example.com/id-in/Cae9",
    );
    ae.ae_id = "Cae9".into();
    let first = c
        .put_resource(put_req(ADMIN, ae.clone()))
        .await
        .expect("ae9")
        .into_inner();
    for (creator, ae_id) in [
        ("Cae9", "//sp.example.com/id-in/Cae9"),
        ("/id-in/Cae9", "//SP.example.com/id-in/Cae9"),
    ] {
        let mut again = ae.clone();
        again.creator = creator.into();
        again.ae_id = ae_id.into();
        let r = c
            .put_resource(put_req(ADMIN, again))
            .await
            .unwrap_or_else(|e| panic!("{creator} / {ae_id}: {e:?}"))
            .into_inner();
        assert_eq!(r.revision, first.revision, "no change: no revision");
        let got = r.resource.expect("resource");
        assert_eq!(
            (got.creator.as_str(), got.ae_id.as_str()),
            ("//sp.example.com/id-in/Cae9", "Cae9"),
            "the stored spelling stays"
        );
    }
    // Another originator is still a change, refused.
    let mut other = ae.clone();
    other.creator = "Cae10".into();
    let err = c
        .put_resource(put_req(ADMIN, other))
        .await
        .expect_err("cr is read-only");
    assert_eq!(violations(&err), ["resource.creator"]);
    prp.shutdown().await;
}

/// TS-0001 9.6.1.3: `rn` is write-once, and unique among the parent's
/// children: an update that renames an ACP is refused naming
/// `resource_name`, and a second ACP with the same `rn` under the same
/// parent (in any ID form) is ALREADY_EXISTS.
#[tokio::test]
async fn an_acps_rn_is_write_once_and_unique_under_its_parent_ts0001_9_6_1_3() {
    let mut prp = start(config()).await;
    let c = &mut prp.client;
    c.put_resource(put_req(ADMIN, resource("cb", "", 5, None, ADMIN)))
        .await
        .expect("cb");
    let named = |id: &str, rn: &str, pi: &str| pb::AccessControlPolicy {
        resource_name: Some(rn.into()),
        parent_id: Some(pi.into()),
        ..acp(id, &["CBob"], &[ADMIN], ALL)
    };
    c.create_acp(create_req(ADMIN, named("a1", "same", "cb")))
        .await
        .expect("a1");
    let before = stored_state(c).await;
    for pi in ["cb", "/id-in/cb", "//sp.example.com/id-in/cb"] {
        let err = c
            .create_acp(create_req(ADMIN, named("a2", "same", pi)))
            .await
            .expect_err(pi);
        assert_eq!(err.code(), Code::AlreadyExists, "{pi}: {err:?}");
        assert!(err.message().contains("resource_name"), "{}", err.message());
    }
    let update = |acp| pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: ADMIN.into(),
        acp: Some(acp),
    };
    let err = c
        .update_acp(update(named("a1", "renamed", "cb")))
        .await
        .expect_err("rn is write-once");
    assert_eq!(violations(&err), ["resource_name"]);
    assert_eq!(stored_state(c).await, before, "nothing stored");
    // The same rn again, or none, is no rename.
    c.update_acp(update(named("a1", "same", "cb")))
        .await
        .expect("same rn");
    c.update_acp(update(acp("a1", &["CBob"], &[ADMIN], ALL)))
        .await
        .expect("rn omitted");
    // Another name, or another parent, is free.
    c.create_acp(create_req(ADMIN, named("a3", "other", "cb")))
        .await
        .expect("another rn");
    prp.shutdown().await;
}

/// An ACP stored by an earlier version that a later check refuses (here an
/// `acip` prefix with host bits set, written to the store directly, as an
/// earlier PRP stored it): a write its pvs would allow is refused, saying
/// the ACP no longer compiles (it said "no rule names the originator");
/// the admin's update that omits `pv` is refused naming the stored `pv`
/// (it was reported as applied while the ACP went on granting nothing);
/// one that gives a corrected `pv` repairs it.
#[tokio::test]
async fn an_acp_stored_before_a_later_check_is_named_and_repaired_by_the_admin() {
    use authz_prp::store::{self, Mutation, PolicyStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let old = authz_core::json::parse_policies(
        r#"{"m2m:acp": {"ri": "acpOld",
            "pv": {"acr": [{"acor": ["Cowner"], "acop": 2, "acco": [{"acip": {"ipv4": ["10.0.0.5/8"]}}]}]},
            "pvs": {"acr": [{"acor": ["CAdmin", "Cowner"], "acop": 63}]}}}"#,
    )
    .map(|mut v| v.remove(0))
    .expect("parses (the check is the compiler's)");
    {
        let s = store::open(dir.path()).expect("open");
        (&s as &dyn PolicyStore)
            .apply(Mutation::CreateAcp(old))
            .expect("stored as an earlier version did");
    }
    let mut c = config();
    c.data_dir = Some(dir.path().to_path_buf());
    let mut prp = start(c).await;
    let c = &mut prp.client;
    let update = |originator: &str, acp: pb::AccessControlPolicy| pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: originator.into(),
        acp: Some(acp),
    };
    let fixed = acp("acpOld", &["Cowner"], &[ADMIN, "Cowner"], ALL);
    let err = c
        .update_acp(update("Cowner", fixed.clone()))
        .await
        .expect_err("its pvs grant nothing now");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("no longer compile") && err.message().contains("host bits"),
        "{}",
        err.message()
    );
    let pvs_only = pb::AccessControlPolicy {
        privileges: None,
        ..fixed.clone()
    };
    let err = c
        .update_acp(update(ADMIN, pvs_only))
        .await
        .expect_err("the kept pv does not compile");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violations(&err), ["pv.acr[0].acco[0].acip.ipv4[0]"]);
    assert!(
        err.message().contains("kept by this update"),
        "{}",
        err.message()
    );
    c.update_acp(update(ADMIN, fixed))
        .await
        .expect("the admin repairs it");
    prp.shutdown().await;
}
