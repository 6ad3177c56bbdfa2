//! Writes whose request goes away while the store commits them (a client
//! that disconnects, a deadline, a stream reset): the change is on disk, so
//! it must also reach the PRP's reads and every watcher, in revision order
//! and without gaps, before the next write is checked.
//!
//! The store is made slow by a wrapper around a real store (no hook in the
//! service): its `apply` signals that it started, then sleeps, inside the
//! wrapper's own write lock, as a backend's commit (its fsync) takes time
//! while later writes wait for it.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_server::PolicyRetrievalPoint;
use authz_proto::pb::watch_event::Event;
use authz_prp::store::{self, LogEntry, Mutation, StoreSnapshot};
use authz_prp::{PolicyStore, PrpService, PrpStore, StoreError};
use common::*;
use tokio::sync::Notify;
use tokio_stream::StreamExt;

const ALL: u32 = 63;

/// A real memory store whose `apply` signals `started`, then sleeps
/// `delay_ms` before writing, one write at a time.
struct SlowStore {
    inner: PrpStore,
    delay_ms: AtomicU64,
    started: Notify,
    writing: Mutex<()>,
}

impl SlowStore {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: store::memory(1000),
            delay_ms: AtomicU64::new(0),
            started: Notify::new(),
            writing: Mutex::new(()),
        })
    }

    fn slow(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
}

impl PolicyStore for SlowStore {
    fn store_id(&self) -> &str {
        PolicyStore::store_id(&self.inner)
    }
    fn revision(&self) -> Result<u64, StoreError> {
        PolicyStore::revision(&self.inner)
    }
    fn snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        PolicyStore::snapshot(&self.inner)
    }
    fn changes_since(&self, from: u64, tag: u64) -> Result<Option<Vec<LogEntry>>, StoreError> {
        PolicyStore::changes_since(&self.inner, from, tag)
    }
    fn apply(&self, mutation: Mutation) -> Result<LogEntry, StoreError> {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        self.started.notify_one();
        let ms = self.delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
        PolicyStore::apply(&self.inner, mutation)
    }
}

/// The ACP IDs and resource IDs of a state.
type Ids = (BTreeSet<String>, BTreeSet<String>);

fn ids_of(snap: &StoreSnapshot) -> Ids {
    (
        snap.acps.keys().cloned().collect(),
        snap.resources.keys().cloned().collect(),
    )
}

/// Follows a Watch stream: checks that revisions follow on one by one after
/// the first event (a snapshot), and applies the events to a model.
struct Follower {
    revision: u64,
    acps: BTreeSet<String>,
    resources: BTreeSet<String>,
}

impl Follower {
    fn new() -> Self {
        Self {
            revision: 0,
            acps: BTreeSet::new(),
            resources: BTreeSet::new(),
        }
    }

    fn apply(&mut self, ev: pb::WatchEvent) {
        match ev.event.expect("a change") {
            Event::Snapshot(s) => {
                self.acps = s.acps.into_iter().filter_map(|a| a.resource_id).collect();
                self.resources = s.resources.into_iter().map(|r| r.resource_id).collect();
                self.revision = ev.revision;
                return;
            }
            Event::AcpPut(a) => {
                self.acps.insert(a.resource_id.expect("id"));
            }
            Event::AcpDeleted(id) => {
                self.acps.remove(&id);
            }
            Event::ResourcePut(r) => {
                self.resources.insert(r.resource_id);
            }
            Event::ResourceDeleted(id) => {
                self.resources.remove(&id);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            ev.revision,
            self.revision + 1,
            "watchers get every revision, in order"
        );
        self.revision = ev.revision;
    }

    fn ids(&self) -> Ids {
        (self.acps.clone(), self.resources.clone())
    }
}

async fn follow_to<S>(stream: &mut S, follower: &mut Follower, revision: u64)
where
    S: tokio_stream::Stream<Item = Result<pb::WatchEvent, tonic::Status>> + Unpin,
{
    while follower.revision < revision {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "revision {revision} in time (at {}: a revision never came)",
                    follower.revision
                )
            })
            .expect("stream open")
            .expect("event");
        follower.apply(ev);
    }
}

/// What the service serves equals what the store holds.
async fn assert_reads_match(service: &PrpService, slow: &SlowStore) -> StoreSnapshot {
    let stored = PolicyStore::snapshot(&slow.inner).expect("snapshot");
    assert_eq!(service.revision(), stored.revision, "mirror revision");
    let listed = service
        .list_acps(tonic::Request::new(pb::ListAcpsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.revision, stored.revision);
    let listed: BTreeSet<String> = listed
        .acps
        .into_iter()
        .filter_map(|a| a.resource_id)
        .collect();
    assert_eq!(listed, ids_of(&stored).0, "ACPs served");
    for id in stored.resources.keys() {
        service
            .get_resource(tonic::Request::new(pb::GetResourceRequest {
                resource_id: id.clone(),
            }))
            .await
            .expect("a stored resource is served");
    }
    stored
}

/// Drops the RPC future `rpc` once the store has started committing it.
async fn cancel_mid_commit<F: std::future::Future>(slow: &SlowStore, rpc: F) {
    tokio::select! {
        _ = rpc => panic!("the write finished before it was cancelled"),
        _ = slow.started.notified() => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cancelled_mid_commit_reaches_reads_and_watchers() {
    let slow = SlowStore::new();
    let service = PrpService::new(&config(), slow.clone())
        .await
        .expect("service");
    let mut watch = service
        .watch(tonic::Request::new(pb::WatchRequest {
            from_revision: 0,
            from_tag: 0,
        }))
        .await
        .expect("watch")
        .into_inner();
    let mut follower = Follower::new();
    let ev = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("snapshot in time")
        .expect("open")
        .expect("event");
    follower.apply(ev);

    service
        .create_acp(tonic::Request::new(create_req(
            ADMIN,
            acp("acp1", &["CAlice"], &[ADMIN], ALL),
        )))
        .await
        .expect("acp1");
    // Consume the signal of that (fast) write.
    slow.started.notified().await;

    // A create, then a delete (a revoked permission), each cancelled while
    // the store commits it.
    slow.slow(300);
    cancel_mid_commit(
        &slow,
        service.create_acp(tonic::Request::new(create_req(
            ADMIN,
            acp("acp2", &["CBob"], &[ADMIN], ALL),
        ))),
    )
    .await;
    slow.slow(0);
    // The next write waits for the cancelled one, and is checked against
    // the state that includes it: acp2 exists, so this is ALREADY_EXISTS.
    let again = service
        .create_acp(tonic::Request::new(create_req(
            ADMIN,
            acp("acp2", &["CBob"], &[ADMIN], ALL),
        )))
        .await
        .expect_err("acp2 was created by the cancelled request");
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");

    slow.slow(300);
    cancel_mid_commit(
        &slow,
        service.delete_acp(tonic::Request::new(pb::DeleteAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp_id: "acp1".into(),
        })),
    )
    .await;
    slow.slow(0);
    service
        .put_resource(tonic::Request::new(put_req(
            ADMIN,
            resource("cnt", "", 3, Some(&["acp2"]), ""),
        )))
        .await
        .expect("cnt");

    let stored = assert_reads_match(&service, &slow).await;
    assert_eq!(stored.revision, 4, "acp1, acp2, acp1 deleted, cnt");
    let gone = service
        .get_acp(tonic::Request::new(pb::GetAcpRequest {
            acp_id: "acp1".into(),
        }))
        .await
        .expect_err("the deleted ACP is gone from reads");
    assert_eq!(gone.code(), tonic::Code::NotFound);
    follow_to(&mut watch, &mut follower, stored.revision).await;
    assert_eq!(follower.ids(), ids_of(&stored));
    service.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_their_deadline_reach_reads_and_watchers_over_grpc() {
    let slow = SlowStore::new();
    let service = PrpService::new(&config(), slow.clone())
        .await
        .expect("service");
    let running = serve(service.clone()).await;
    let mut client = running.client.clone();
    let mut watch = client
        .watch(pb::WatchRequest {
            from_revision: 0,
            from_tag: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut follower = Follower::new();
    let ev = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("snapshot in time")
        .expect("open")
        .expect("event");
    follower.apply(ev);

    // Each commit takes 150 ms; each request gives up after 40 ms (the
    // server drops the handler at its deadline). Deletes alternate with
    // creates, so that a lost change shows in the state too.
    slow.slow(150);
    let mut cancelled = 0;
    for i in 0..6 {
        let result = if i % 2 == 0 {
            let mut req = tonic::Request::new(create_req(
                ADMIN,
                acp(&format!("a{}", i / 2), &["CAlice"], &[ADMIN], ALL),
            ));
            req.set_timeout(Duration::from_millis(40));
            client.create_acp(req).await.map(|_| ())
        } else {
            let mut req = tonic::Request::new(pb::DeleteAcpRequest {
                role_ids: Vec::new(),
                originator: ADMIN.into(),
                acp_id: format!("a{}", i / 2),
            });
            req.set_timeout(Duration::from_millis(40));
            client.delete_acp(req).await.map(|_| ())
        };
        match result {
            Err(status) => {
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::DeadlineExceeded
                            | tonic::Code::Cancelled
                            | tonic::Code::NotFound
                    ),
                    "{status:?}"
                );
                if status.code() != tonic::Code::NotFound {
                    cancelled += 1;
                }
            }
            Ok(()) => panic!("a 150 ms commit answered within 40 ms"),
        }
    }
    assert!(cancelled > 0);
    slow.slow(0);
    // A write that completes: it runs after every cancelled one.
    client
        .put_resource(put_req(ADMIN, resource("cnt", "", 3, None, "CAlice")))
        .await
        .expect("a normal write");

    let stored = assert_reads_match(&service, &slow).await;
    assert!(
        stored.revision >= 2,
        "at least one cancelled write committed"
    );
    follow_to(&mut watch, &mut follower, stored.revision).await;
    assert_eq!(follower.ids(), ids_of(&stored));
    // A watcher that resumes from any revision sees the same history.
    let mut resumed = client
        .watch(pb::WatchRequest {
            from_revision: 1,
            from_tag: 0,
        })
        .await
        .expect("resume")
        .into_inner();
    let mut from_one = Follower::new();
    from_one.revision = 1;
    from_one.acps = ["a0".to_owned()].into();
    follow_to(&mut resumed, &mut from_one, stored.revision).await;
    assert_eq!(from_one.ids(), ids_of(&stored));
    running.shutdown().await;
}
