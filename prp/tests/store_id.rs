//! `Watch` names the PRP's store (metadata `authz-store-id`) and starts a
//! watcher that resumes from a revision of another store over with a
//! snapshot; a redb store keeps its ID across restarts, a memory store does
//! not.

mod common;

use std::time::Duration;

use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_server::PolicyRetrievalPoint;
use authz_proto::pb::watch_event::Event;
use authz_proto::serving::STORE_ID_METADATA;
use common::*;

const ALL: u32 = 63;

async fn next(stream: &mut tonic::Streaming<pb::WatchEvent>) -> pb::WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("event in time")
        .expect("stream ok")
        .expect("stream open")
}

/// Opens a Watch from `from`, naming `store` when given; returns the store
/// the PRP names and the stream.
async fn watch(
    prp: &mut Running,
    from: u64,
    store: Option<&str>,
) -> (String, tonic::Streaming<pb::WatchEvent>) {
    watch_tagged(prp, from, 0, store).await
}

/// [`watch`] presenting `tag` as the tag of revision `from`.
async fn watch_tagged(
    prp: &mut Running,
    from: u64,
    tag: u64,
    store: Option<&str>,
) -> (String, tonic::Streaming<pb::WatchEvent>) {
    let mut req = tonic::Request::new(pb::WatchRequest {
        from_revision: from,
        from_tag: tag,
    });
    if let Some(id) = store {
        req.metadata_mut()
            .insert(STORE_ID_METADATA, id.parse().expect("ascii"));
    }
    let resp = prp.client.watch(req).await.expect("watch");
    let named = resp
        .metadata()
        .get(STORE_ID_METADATA)
        .expect("the PRP names its store")
        .to_str()
        .expect("ascii")
        .to_owned();
    (named, resp.into_inner())
}

async fn write_acps(prp: &mut Running, ids: &[&str]) {
    for id in ids {
        prp.client
            .create_acp(create_req(ADMIN, acp(id, &["CAlice"], &[ADMIN], ALL)))
            .await
            .expect("create");
    }
}

#[tokio::test]
async fn a_watcher_naming_another_store_gets_a_snapshot() {
    let mut prp = start(config()).await;
    write_acps(&mut prp, &["a1", "a2", "a3"]).await;
    let (id, _) = watch(&mut prp, 0, None).await;
    assert_eq!(id, prp.service.store_id());
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));

    // Its own store: resumes after revision 2.
    let (_, mut same) = watch(&mut prp, 2, Some(&id)).await;
    let ev = next(&mut same).await;
    assert_eq!(ev.revision, 3);
    assert!(matches!(ev.event, Some(Event::AcpPut(_))), "{ev:?}");

    // No store named (a watcher older than store IDs): resumes too.
    let (_, mut unnamed) = watch(&mut prp, 2, None).await;
    assert_eq!(next(&mut unnamed).await.revision, 3);

    // Another store: revision 2 means nothing here, a snapshot comes first.
    let other = "0123456789abcdef0123456789abcdef";
    let (_, mut foreign) = watch(&mut prp, 2, Some(other)).await;
    let ev = next(&mut foreign).await;
    assert_eq!(ev.revision, 3);
    let Some(Event::Snapshot(s)) = ev.event else {
        panic!("expected a snapshot, got {ev:?}")
    };
    assert_eq!(s.acps.len(), 3);
    // Then live changes, as for any watcher.
    write_acps(&mut prp, &["a4"]).await;
    assert_eq!(next(&mut foreign).await.revision, 4);
    prp.shutdown().await;
}

/// Every event carries the tag drawn for its revision (a snapshot, its
/// revision's); a watcher that presents the tag of its revision resumes,
/// one that presents another (it saw another history under that number)
/// or a revision the log no longer holds gets a snapshot, and 0 (a watcher
/// without tags) is not checked.
#[tokio::test]
async fn a_watcher_whose_tag_is_not_the_revisions_gets_a_snapshot() {
    let mut prp = start(config()).await;
    write_acps(&mut prp, &["a1", "a2", "a3"]).await;
    let (id, mut all) = watch(&mut prp, 0, None).await;
    let snapshot = next(&mut all).await;
    assert!(matches!(snapshot.event, Some(Event::Snapshot(_))));
    let (_, mut from_one) = watch(&mut prp, 1, Some(&id)).await;
    let (second, third) = (next(&mut from_one).await, next(&mut from_one).await);
    assert_eq!((second.revision, third.revision), (2, 3));
    assert_ne!(second.tag, 0);
    assert_ne!(second.tag, third.tag);
    assert_eq!(
        snapshot.tag, third.tag,
        "a snapshot carries its revision's tag"
    );

    let (_, mut same) = watch_tagged(&mut prp, 2, second.tag, Some(&id)).await;
    let ev = next(&mut same).await;
    assert_eq!((ev.revision, ev.tag), (3, third.tag));
    assert!(matches!(ev.event, Some(Event::AcpPut(_))), "{ev:?}");

    let (_, mut other) = watch_tagged(&mut prp, 2, second.tag ^ 1, Some(&id)).await;
    let ev = next(&mut other).await;
    assert_eq!(ev.revision, 3);
    let Some(Event::Snapshot(s)) = ev.event else {
        panic!("expected a snapshot, got {ev:?}")
    };
    assert_eq!(s.acps.len(), 3);

    let (_, mut untagged) = watch_tagged(&mut prp, 2, 0, Some(&id)).await;
    assert!(matches!(
        next(&mut untagged).await.event,
        Some(Event::AcpPut(_))
    ));
    prp.shutdown().await;
}

#[tokio::test]
async fn a_redb_store_keeps_its_id_across_restarts_and_a_memory_store_does_not() {
    let dir = temp_dir("store-id");
    let mut cfg = config();
    cfg.data_dir = Some(dir.path().to_path_buf());
    let first = {
        // In process and without watchers, so that the file is closed when
        // the service is dropped.
        let service = authz_prp::build(&cfg).await.expect("build");
        for id in ["a1", "a2"] {
            service
                .create_acp(tonic::Request::new(create_req(
                    ADMIN,
                    acp(id, &["CAlice"], &[ADMIN], ALL),
                )))
                .await
                .expect("create");
        }
        service.shutdown();
        service.store_id().to_owned()
    };
    let mut prp = start(cfg).await;
    let (again, _) = watch(&mut prp, 0, None).await;
    assert_eq!(again, first, "the redb file keeps its store ID");
    // So a watcher that had revision 1 resumes from the log.
    let (_, mut resumed) = watch(&mut prp, 1, Some(&first)).await;
    let ev = next(&mut resumed).await;
    assert_eq!(ev.revision, 2);
    assert!(matches!(ev.event, Some(Event::AcpPut(_))), "{ev:?}");
    prp.shutdown().await;

    // A memory store is a new store at each start, even at equal revisions.
    let mut a = start(config()).await;
    write_acps(&mut a, &["x1", "x2"]).await;
    let (id_a, _) = watch(&mut a, 0, None).await;
    a.shutdown().await;
    let mut b = start(config()).await;
    write_acps(&mut b, &["y1", "y2", "y3"]).await;
    let (id_b, _) = watch(&mut b, 0, None).await;
    assert_ne!(id_a, id_b);
    // A watcher of `a` at revision 2 is given `b`'s state, not revision 3
    // of `b` on top of `a`'s.
    let (_, mut moved) = watch(&mut b, 2, Some(&id_a)).await;
    let ev = next(&mut moved).await;
    let Some(Event::Snapshot(s)) = ev.event else {
        panic!("expected a snapshot, got {ev:?}")
    };
    let mut ids: Vec<_> = s.acps.into_iter().filter_map(|a| a.resource_id).collect();
    ids.sort();
    assert_eq!(ids, ["y1", "y2", "y3"]);
    b.shutdown().await;
}
