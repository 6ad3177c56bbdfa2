//! Nested `<group>`s in the PIP, over gRPC on loopback.
//!
//! TS-0001 9.6.2.1 lets `acor` name a `<group>`, whose `mid` members the
//! originator is matched against (spec notes §2.4); project Decision 3 reads
//! an entry that the PIP knows as a `<group>` resource ID as that group. A
//! `mid` entry is read the same way: an entry that is a stored group's ID is
//! that sub-group, whose members (transitively) are members of the outer
//! group, and it never admits an originator merely spelled like it. What the
//! PDP and PRP ask (`ResolveAttributes.groups`) and `CheckMembership` agree,
//! a change of a sub-group shows at once, cycles end, and `Watch` names
//! every originator whose groups changed, so that a PDP's cache drops them.

mod common;

use authz_pip::PipConfig;
use authz_proto::pb;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use common::{ANSWER_WITHIN, Running, groups_of, is_member, next_event};
use tokio_stream::StreamExt;
use tonic::Streaming;
use tonic::transport::Channel;

const ADMIN: &str = "CAdmin";
const OUTER: &str = "//sp.example.com/id-in/grpOuter";
const KIDS: &str = "//sp.example.com/id-in/CkidsGrp";
const CHILD: &str = "//sp.example.com/id-in/Cchild";

fn config() -> PipConfig {
    let hosting = authz_core::HostingContext::new("//sp.example.com", "/id-in").expect("hosting");
    let mut c = PipConfig::new(None, ADMIN, hosting);
    c.country_boundaries = false;
    c
}

async fn put_group(c: &mut PolicyInformationPointClient<Channel>, id: &str, members: &[&str]) {
    c.put_group(pb::PutGroupRequest {
        originator: ADMIN.into(),
        group: Some(pb::Group {
            group_id: id.into(),
            member_ids: members.iter().map(|m| m.to_string()).collect(),
        }),
    })
    .await
    .unwrap_or_else(|e| panic!("put {id}: {e:?}"));
}

async fn delete_group(c: &mut PolicyInformationPointClient<Channel>, id: &str) {
    c.delete_group(pb::DeleteGroupRequest {
        originator: ADMIN.into(),
        group_id: id.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("delete {id}: {e:?}"));
}

/// Both APIs agree that `originator` is in exactly `expected` (absolute,
/// sorted), and `CheckMembership` says so for each group of `all`.
async fn assert_groups(
    c: &mut PolicyInformationPointClient<Channel>,
    originator: &str,
    expected: &[&str],
    all: &[&str],
) {
    assert_eq!(groups_of(c, originator).await, expected, "{originator}");
    for g in all {
        let (is_group, member) = is_member(c, g, originator).await;
        assert!(is_group, "{g}");
        assert_eq!(member, expected.contains(g), "{originator} in {g}");
    }
}

async fn watch(c: &mut PolicyInformationPointClient<Channel>) -> Streaming<pb::AttributeChange> {
    let mut stream = c
        .watch(pb::WatchAttributesRequest { from_revision: 0 })
        .await
        .expect("watch")
        .into_inner();
    let reset = next_event(&mut stream).await;
    assert!(matches!(
        reset.change,
        Some(pb::attribute_change::Change::Reset(_))
    ));
    stream
}

/// The next group change on `stream`.
async fn next_group_change(stream: &mut Streaming<pb::AttributeChange>) -> pb::GroupChanged {
    let event = tokio::time::timeout(ANSWER_WITHIN, stream.next())
        .await
        .expect("an event in time")
        .expect("event")
        .expect("ok");
    match event.change {
        Some(pb::attribute_change::Change::Group(g)) => g,
        other => panic!("unexpected {other:?}"),
    }
}

fn assert_affected(g: &pb::GroupChanged, ids: &[&str]) {
    for id in ids {
        assert!(
            g.affected_members.iter().any(|m| m == id),
            "{id} among the affected members: {g:?}"
        );
    }
}

/// TS-0001 9.6.2.1, spec notes §2.4, Decision 3: the member of a sub-group is
/// a member of the outer group, three levels down too, in both APIs.
#[tokio::test]
async fn a_sub_groups_member_is_a_member_of_the_outer_group_decision_3() {
    let mut pip = Running::start(&config()).await;
    let c = &mut pip.client;
    const TOP: &str = "//sp.example.com/id-in/grpTop";
    put_group(c, "grpOuter", &["CkidsGrp", "Cparent"]).await;
    put_group(c, "CkidsGrp", &["Cchild"]).await;
    // Written in another form: the same group.
    put_group(c, "grpTop", &["/id-in/grpOuter"]).await;
    let all = [OUTER, KIDS, TOP];
    assert_groups(c, "Cchild", &[KIDS, OUTER, TOP], &all).await;
    assert_groups(c, CHILD, &[KIDS, OUTER, TOP], &all).await;
    assert_groups(c, "Cparent", &[OUTER, TOP], &all).await;
    // The stored group keeps its own entries.
    let outer = c
        .get_group(pb::GetGroupRequest {
            group_id: "grpOuter".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        outer.member_ids,
        [KIDS, "//sp.example.com/id-in/Cparent"],
        "{outer:?}"
    );
    pip.stop().await;
}

/// TS-0001 9.6.2.1, spec notes §2.4, Decision 3 (the audit's case): an AE
/// whose ID is spelled like the sub-group `CkidsGrp` is no member of
/// `grpOuter` through that entry, in any form of its ID; nor is the AE of an
/// `S...` entry whose resource-ID reading is a group. Before the sub-group
/// exists the entry is an originator ID, and creating it tells watchers
/// that the AE's groups changed.
#[tokio::test]
async fn an_originator_spelled_like_a_sub_group_is_not_admitted_decision_3() {
    let pip = Running::start(&config()).await;
    let mut c = pip.client.clone();
    let mut events = watch(&mut c).await;
    put_group(&mut c, "grpOuter", &["CkidsGrp"]).await;
    next_group_change(&mut events).await;
    // No group of that ID yet: the entry names an originator.
    assert_groups(&mut c, "CkidsGrp", &[OUTER], &[OUTER]).await;
    put_group(&mut c, "CkidsGrp", &["Cchild"]).await;
    let created = next_group_change(&mut events).await;
    let all = [OUTER, KIDS];
    for form in [
        "CkidsGrp",
        "/id-in/CkidsGrp",
        KIDS,
        "//SP.example.com/id-in/CkidsGrp",
    ] {
        assert_groups(&mut c, form, &[], &all).await;
    }
    assert_groups(&mut c, "Cchild", &[KIDS, OUTER], &all).await;
    assert_affected(&created, &[KIDS, CHILD]);

    // An `S...` entry reads as the AE-ID `//sp/Slamps` and as the resource
    // ID `//sp/id-in/Slamps`; the latter is a group here, so the entry is
    // that group, and neither reading admits an originator.
    const LAMPS: &str = "//sp.example.com/id-in/Slamps";
    const HOUSE: &str = "//sp.example.com/id-in/grpHouse";
    put_group(&mut c, "grpHouse", &["Slamps"]).await;
    put_group(&mut c, "Slamps", &["Clamp1"]).await;
    let all = [HOUSE, LAMPS];
    for form in ["Slamps", "//sp.example.com/Slamps", LAMPS] {
        assert_groups(&mut c, form, &[], &all).await;
    }
    assert_groups(&mut c, "Clamp1", &[LAMPS, HOUSE], &all).await;
    pip.stop().await;
}

/// TS-0001 9.6.2.1, spec notes §2.4, Decision 3: groups that contain each
/// other, or themselves, end and still answer: every member of the cycle's
/// groups is in each of them, and a group's ID is no member of itself.
#[tokio::test]
async fn a_cycle_of_groups_ends_and_answers_decision_3() {
    let mut pip = Running::start(&config()).await;
    let c = &mut pip.client;
    const A: &str = "//sp.example.com/id-in/grpA";
    const B: &str = "//sp.example.com/id-in/grpB";
    const SELF: &str = "//sp.example.com/id-in/grpSelf";
    const OUT: &str = "//sp.example.com/id-in/grpOut";
    put_group(c, "grpA", &["grpB", "Calice"]).await;
    put_group(c, "grpB", &["grpA", "Cbob"]).await;
    put_group(c, "grpSelf", &["grpSelf", "grpA", "Ccarol"]).await;
    put_group(c, "grpOut", &["Cdave"]).await;
    let all = [A, B, SELF, OUT];
    assert_groups(c, "Calice", &[A, B, SELF], &all).await;
    assert_groups(c, "Cbob", &[A, B, SELF], &all).await;
    assert_groups(c, "Ccarol", &[SELF], &all).await;
    assert_groups(c, "Cdave", &[OUT], &all).await;
    for g in ["grpA", "grpB", "grpSelf"] {
        assert_groups(c, g, &[], &all).await;
    }
    // Closing the cycle through a group that was outside it.
    put_group(c, "grpOut", &["Cdave", "grpSelf"]).await;
    put_group(c, "grpA", &["grpB", "Calice", "grpOut"]).await;
    assert_groups(c, "Cdave", &[A, B, OUT, SELF], &all).await;
    assert_groups(c, "Ccarol", &[A, B, OUT, SELF], &all).await;
    pip.stop().await;
}

/// TS-0001 9.6.2.1, spec notes §2.4, Decision 3: a change of a sub-group's
/// members shows at once in the outer group's answers, and `Watch` names
/// every originator whose groups changed, however deep (so that a PDP drops
/// its cached answer), live and when a watcher resumes.
#[tokio::test]
async fn a_sub_groups_change_shows_in_the_outer_group_at_once_decision_3() {
    let pip = Running::start(&config()).await;
    let mut c = pip.client.clone();
    const OTHER: &str = "//sp.example.com/id-in/Cother";
    const GRANDCHILD: &str = "//sp.example.com/id-in/Cgrandchild";
    const BABIES: &str = "//sp.example.com/id-in/grpBabies";
    put_group(&mut c, "grpBabies", &["Cgrandchild"]).await;
    put_group(&mut c, "CkidsGrp", &["Cchild", "grpBabies"]).await;
    let mut events = watch(&mut c).await;
    let before = pip.service.revision();
    // The outer group, written after its sub-groups: their members, two
    // levels down, are affected.
    put_group(&mut c, "grpOuter", &["CkidsGrp"]).await;
    let outer_put = next_group_change(&mut events).await;
    assert_affected(&outer_put, &[KIDS, CHILD, BABIES, GRANDCHILD]);
    let all = [OUTER, KIDS, BABIES];
    assert_groups(&mut c, "Cgrandchild", &[KIDS, BABIES, OUTER], &all).await;

    put_group(&mut c, "CkidsGrp", &["Cother"]).await;
    next_group_change(&mut events).await;
    assert_groups(&mut c, "Cother", &[KIDS, OUTER], &all).await;
    assert_groups(&mut c, "Cchild", &[], &all).await;
    // grpBabies left CkidsGrp: its member left both outer groups.
    assert_groups(&mut c, "Cgrandchild", &[BABIES], &all).await;

    put_group(&mut c, "CkidsGrp", &["Cother", "grpBabies"]).await;
    let back = next_group_change(&mut events).await;
    assert_affected(&back, &[GRANDCHILD]);
    assert_groups(&mut c, "Cgrandchild", &[KIDS, BABIES, OUTER], &all).await;
    // A change two levels down.
    put_group(&mut c, "grpBabies", &["Cchild"]).await;
    next_group_change(&mut events).await;
    assert_groups(&mut c, "Cchild", &[KIDS, BABIES, OUTER], &all).await;
    assert_groups(&mut c, "Cgrandchild", &[], &all).await;
    assert_groups(&mut c, OTHER, &[KIDS, OUTER], &all).await;

    // Replayed from the log, the outer group's write names the same IDs.
    let mut resumed = c
        .watch(pb::WatchAttributesRequest {
            from_revision: before,
        })
        .await
        .expect("resume")
        .into_inner();
    let replayed = next_group_change(&mut resumed).await;
    assert_eq!(replayed, outer_put);
    pip.stop().await;
}

/// TS-0001 9.6.2.1, spec notes §2.4, Decision 3: once the sub-group is
/// deleted, its members are no longer in the outer group, and its former ID,
/// still listed there, is an originator ID like every entry that names no
/// stored group (as the PDP reads an `acor` entry that is no group): the AE
/// of that ID is a member again. `Watch` names both.
#[tokio::test]
async fn deleting_a_sub_group_makes_its_entry_an_originator_id_decision_3() {
    let pip = Running::start(&config()).await;
    let mut c = pip.client.clone();
    put_group(&mut c, "grpOuter", &["CkidsGrp"]).await;
    put_group(&mut c, "CkidsGrp", &["Cchild"]).await;
    assert_groups(&mut c, "Cchild", &[KIDS, OUTER], &[OUTER, KIDS]).await;
    assert_groups(&mut c, "CkidsGrp", &[], &[OUTER, KIDS]).await;
    let mut events = watch(&mut c).await;
    delete_group(&mut c, "CkidsGrp").await;
    let deleted = next_group_change(&mut events).await;
    assert!(deleted.deleted, "{deleted:?}");
    assert_affected(&deleted, &[CHILD, KIDS]);
    assert_groups(&mut c, "Cchild", &[], &[OUTER]).await;
    assert_eq!(
        is_member(&mut c, "CkidsGrp", "Cchild").await,
        (false, false)
    );
    assert_groups(&mut c, "CkidsGrp", &[OUTER], &[OUTER]).await;
    pip.stop().await;
}
