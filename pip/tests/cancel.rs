//! PIP writes whose request goes away while the store commits them (a
//! client that disconnects, a deadline, a stream reset): the change is on
//! disk, so it must also reach every `Watch` stream, in revision order and
//! without gaps (README "PIP": `Watch` "streams ordered changes"; the PDP's
//! cache drops an originator's values only on the change that names it).
//! The PIP equivalent of `prp/tests/cancel.rs`.
//!
//! The store is made slow by a backend around nothing (no hook in the
//! service): its `commit` signals that it started, then sleeps, as a redb
//! commit (its fsync) takes time while later writes wait for it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use authz_pip::geo::IpCountrySources;
use authz_pip::state::PipSchema;
use authz_pip::{PipService, Resolver, Writers};
use authz_proto::pb;
use authz_proto::pb::attribute_change::Change;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_proto::pb::policy_information_point_server::PolicyInformationPoint;
use authz_store::{Backend, Loaded, LoggedChange, Row, Store, StoreError};
use authz_tests::serving::serve;
use tokio::sync::Notify;
use tokio_stream::StreamExt;

const ADMIN: &str = "CAdmin";
const ALICE: &str = "//sp.example.com/id-in/Calice";

/// A backend that keeps nothing and whose `commit` signals `started`, then
/// sleeps `delay_ms`. The [`Store`] serializes commits.
#[derive(Default)]
struct Slow {
    delay_ms: AtomicU64,
    started: Notify,
}

impl Slow {
    fn slow(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }
}

struct SlowBackend(Arc<Slow>);

impl Backend for SlowBackend {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded::default())
    }

    fn commit(&self, _: &[Row], _: &LoggedChange, _: u64) -> Result<(), StoreError> {
        self.0.started.notify_one();
        let ms = self.0.delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
        Ok(())
    }
}

fn service() -> (PipService, Arc<Slow>) {
    let slow = Arc::new(Slow::default());
    let store =
        Store::<PipSchema>::with_backend(Box::new(SlowBackend(slow.clone())), 1000).expect("store");
    let hosting = authz_core::HostingContext::new("//sp.example.com", "/id-in").expect("hosting");
    let resolver = Resolver::new(
        hosting,
        &[],
        Duration::from_secs(300),
        IpCountrySources::new(),
        None,
    );
    let writers = Writers {
        admin: ADMIN.to_owned(),
        location_sources: Vec::new(),
        token_writers: Vec::new(),
    };
    (PipService::new(Arc::new(store), resolver, writers), slow)
}

fn put_group(id: &str, members: &[&str]) -> pb::PutGroupRequest {
    pb::PutGroupRequest {
        originator: ADMIN.into(),
        group: Some(pb::Group {
            group_id: id.into(),
            member_ids: members.iter().map(|m| (*m).to_owned()).collect(),
        }),
    }
}

fn delete_group(id: &str) -> pb::DeleteGroupRequest {
    pb::DeleteGroupRequest {
        originator: ADMIN.into(),
        group_id: id.into(),
    }
}

/// Follows a Watch stream: checks that revisions follow on one by one after
/// the first event (a reset at the current revision), keeps every change
/// and the set of groups that exist.
struct Follower {
    revision: u64,
    groups: BTreeSet<String>,
    changes: Vec<pb::AttributeChange>,
}

impl Follower {
    fn new() -> Self {
        Self {
            revision: 0,
            groups: BTreeSet::new(),
            changes: Vec::new(),
        }
    }

    fn apply(&mut self, ev: pb::AttributeChange) {
        match ev.change.as_ref().expect("a change") {
            Change::Reset(_) => {
                assert_eq!(ev.revision, 0, "only the first event resets");
                self.revision = ev.revision;
                return;
            }
            Change::Group(g) => {
                if g.deleted {
                    self.groups.remove(&g.group_id);
                } else {
                    self.groups.insert(g.group_id.clone());
                }
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            ev.revision,
            self.revision + 1,
            "watchers get every revision, in order"
        );
        self.revision = ev.revision;
        self.changes.push(ev);
    }

    /// The group change at `revision`.
    fn group_change(&self, revision: u64) -> &pb::GroupChanged {
        match self
            .changes
            .iter()
            .find(|c| c.revision == revision)
            .and_then(|c| c.change.as_ref())
        {
            Some(Change::Group(g)) => g,
            other => panic!("no group change at {revision}: {other:?}"),
        }
    }
}

async fn follow_to<S>(stream: &mut S, follower: &mut Follower, revision: u64)
where
    S: tokio_stream::Stream<Item = Result<pb::AttributeChange, tonic::Status>> + Unpin,
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

/// The groups the service serves.
async fn served_groups(service: &PipService) -> BTreeSet<String> {
    service
        .list_groups(tonic::Request::new(pb::ListGroupsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .groups
        .into_iter()
        .map(|g| g.group_id)
        .collect()
}

/// Drops the RPC future `rpc` once the store has started committing it.
async fn cancel_mid_commit<F: std::future::Future>(slow: &Slow, rpc: F) {
    tokio::select! {
        _ = rpc => panic!("the write finished before it was cancelled"),
        _ = slow.started.notified() => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cancelled_mid_commit_reaches_watchers_in_order() {
    let (service, slow) = service();
    let mut watch = service
        .watch(tonic::Request::new(pb::WatchAttributesRequest {
            from_revision: 0,
        }))
        .await
        .expect("watch")
        .into_inner();
    let mut follower = Follower::new();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("reset in time")
        .expect("open")
        .expect("event");
    follower.apply(first);

    service
        .put_group(tonic::Request::new(put_group(
            "/id-in/grp",
            &["Calice", "Cbob"],
        )))
        .await
        .expect("grp");
    // Consume the signal of that (fast) write.
    slow.started.notified().await;

    // The review's case: Alice is removed from the group by a request that
    // gives up while the store commits it; then the group is deleted by
    // another such request.
    slow.slow(300);
    cancel_mid_commit(
        &slow,
        service.put_group(tonic::Request::new(put_group("/id-in/grp", &["Cbob"]))),
    )
    .await;
    slow.slow(0);
    // The next write waits for the cancelled one.
    service
        .put_group(tonic::Request::new(put_group("/id-in/other", &["Cbob"])))
        .await
        .expect("other");
    // Consume the signal of that write (left over, it would end the next
    // `cancel_mid_commit` before that write started).
    slow.started.notified().await;
    let alice = service
        .check_membership(tonic::Request::new(pb::CheckMembershipRequest {
            group_id: "/id-in/grp".into(),
            originator: "Calice".into(),
        }))
        .await
        .expect("check")
        .into_inner();
    assert!(alice.is_group && !alice.is_member, "{alice:?}");

    slow.slow(300);
    cancel_mid_commit(
        &slow,
        service.delete_group(tonic::Request::new(delete_group("/id-in/grp"))),
    )
    .await;
    slow.slow(0);
    service
        .put_group(tonic::Request::new(put_group("/id-in/third", &["Cbob"])))
        .await
        .expect("third");

    assert_eq!(
        service.revision(),
        5,
        "grp, grp without Alice, other, grp deleted, third"
    );
    follow_to(&mut watch, &mut follower, service.revision()).await;
    // The cancelled change names Alice, so a PDP drops her cached groups.
    let removed = follower.group_change(2);
    assert!(
        !removed.deleted && removed.affected_members.contains(&ALICE.to_owned()),
        "{removed:?}"
    );
    assert!(follower.group_change(4).deleted);
    assert_eq!(follower.groups, served_groups(&service).await);
    service.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_their_deadline_reach_watchers_over_grpc() {
    let (service, slow) = service();
    let server = serve(authz_pip::router(service.clone()).await.expect("router")).await;
    let mut client = PolicyInformationPointClient::new(server.channel().await);
    let mut watch = client
        .watch(pb::WatchAttributesRequest { from_revision: 0 })
        .await
        .expect("watch")
        .into_inner();
    let mut follower = Follower::new();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("reset in time")
        .expect("open")
        .expect("event");
    follower.apply(first);

    // Each commit takes 150 ms; each request gives up after 40 ms (the
    // server drops the handler at its deadline). Deletes alternate with
    // puts, so that a lost change shows in the state too.
    slow.slow(150);
    let mut cancelled = 0;
    for i in 0..6 {
        let group = format!("/id-in/g{}", i / 2);
        let result = if i % 2 == 0 {
            let mut req = tonic::Request::new(put_group(&group, &["Calice"]));
            req.set_timeout(Duration::from_millis(40));
            client.put_group(req).await.map(|_| ())
        } else {
            let mut req = tonic::Request::new(delete_group(&group));
            req.set_timeout(Duration::from_millis(40));
            client.delete_group(req).await.map(|_| ())
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
        .put_group(put_group("/id-in/last", &["Cbob"]))
        .await
        .expect("a normal write");

    let revision = service.revision();
    assert!(revision >= 2, "at least one cancelled write committed");
    follow_to(&mut watch, &mut follower, revision).await;
    assert_eq!(follower.groups, served_groups(&service).await);
    // A watcher that resumes from any revision sees the same history.
    let mut resumed = client
        .watch(pb::WatchAttributesRequest { from_revision: 1 })
        .await
        .expect("resume")
        .into_inner();
    let mut from_one = Follower::new();
    from_one.revision = 1;
    from_one.groups = follower.changes[..1]
        .iter()
        .filter_map(|c| match &c.change {
            Some(Change::Group(g)) if !g.deleted => Some(g.group_id.clone()),
            _ => None,
        })
        .collect();
    follow_to(&mut resumed, &mut from_one, revision).await;
    assert_eq!(from_one.groups, follower.groups);
    service.shutdown();
    server.stop().await;
}
