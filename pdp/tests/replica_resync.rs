//! The replica starts over from a snapshot when the PRP's changes do not
//! follow on its state: revisions that skip (a gap), or a PRP whose store is
//! another one than the replica's state came from (a PRP restarted on a new
//! store whose revisions passed the replica's). Each time the replica ends
//! equal to the PRP's state, and decisions follow it.
//!
//! The PRP is a scripted fake on 127.0.0.1 that behaves like the real one
//! (snapshot from 0, log replay, store ID metadata), and can be told to skip
//! revisions or to ignore the store a watcher names.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authz_pdp::{Pdp, PdpConfig};
use authz_proto::pb;
use authz_proto::pb::watch_event::Event;
use authz_proto::serving::STORE_ID_METADATA;
use common::{
    PrpBehaviour, Running, WatchStream, acp, eventually, hosting, request, resource, serve_prp,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const PERMIT: i32 = pb::AuthorizationDecision::Permit as i32;
const DENY: i32 = pb::AuthorizationDecision::Deny as i32;
const RETRIEVE: u32 = 2;

type Sink = mpsc::Sender<Result<pb::WatchEvent, Status>>;

#[derive(Default)]
struct State {
    /// The store ID sent as metadata (`None`: a PRP older than store IDs).
    store_id: Option<String>,
    /// Whether a watcher naming another store gets a snapshot.
    honours_store_id: bool,
    revision: u64,
    acps: BTreeMap<String, pb::AccessControlPolicy>,
    resources: BTreeMap<String, pb::TargetResource>,
    log: Vec<pb::WatchEvent>,
    watchers: Vec<Sink>,
    /// Every Watch request: (from_revision, store named).
    requests: Vec<(u64, Option<String>)>,
    /// Whether a new watcher waits for [`ScriptedPrp::unmute`] before it
    /// gets anything (a PRP slow to send its snapshot).
    mute: bool,
}

impl State {
    fn snapshot(&self) -> pb::WatchEvent {
        pb::WatchEvent {
            revision: self.revision,
            tag: 0,
            event: Some(Event::Snapshot(pb::Snapshot {
                acps: self.acps.values().cloned().collect(),
                resources: self.resources.values().cloned().collect(),
                dynamic_acps: Vec::new(),
                continued: false,
            })),
        }
    }

    fn change(&mut self, event: &Event) {
        match event {
            Event::AcpPut(a) => {
                self.acps
                    .insert(a.resource_id.clone().unwrap_or_default(), a.clone());
            }
            Event::AcpDeleted(id) => {
                self.acps.remove(id);
            }
            Event::ResourcePut(r) => {
                self.resources.insert(r.resource_id.clone(), r.clone());
            }
            Event::ResourceDeleted(id) => {
                self.resources.remove(id);
            }
            other => panic!("not scripted: {other:?}"),
        }
    }
}

#[derive(Clone, Default)]
struct ScriptedPrp {
    state: Arc<Mutex<State>>,
}

impl ScriptedPrp {
    fn new(store_id: Option<&str>, honours_store_id: bool) -> Self {
        let prp = Self::default();
        {
            let mut s = prp.state.lock().unwrap();
            s.store_id = store_id.map(str::to_owned);
            s.honours_store_id = honours_store_id;
        }
        prp
    }

    /// One change at the next revision, logged and streamed.
    fn publish(&self, event: Event) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.change(&event);
        s.revision += 1;
        let ev = pb::WatchEvent {
            revision: s.revision,
            tag: 0,
            event: Some(event),
        };
        s.log.push(ev.clone());
        s.watchers.retain(|w| w.try_send(Ok(ev.clone())).is_ok());
        s.revision
    }

    /// One change at the next revision that is neither logged nor streamed:
    /// watchers will see the revision after it without it.
    fn lose(&self, event: Event) {
        let mut s = self.state.lock().unwrap();
        s.change(&event);
        s.revision += 1;
    }

    /// Sends the waiting watchers their snapshot.
    fn unmute(&self) {
        let mut s = self.state.lock().unwrap();
        s.mute = false;
        let snapshot = s.snapshot();
        s.watchers
            .retain(|w| w.try_send(Ok(snapshot.clone())).is_ok());
    }

    fn requests(&self) -> Vec<(u64, Option<String>)> {
        self.state.lock().unwrap().requests.clone()
    }

    fn state(&self) -> (u64, Vec<String>, Vec<String>) {
        let s = self.state.lock().unwrap();
        (
            s.revision,
            s.acps.keys().cloned().collect(),
            s.resources.keys().cloned().collect(),
        )
    }

    fn serve(&self, listener: TcpListener) -> Running<ScriptedPrp> {
        serve_prp(self, listener)
    }
}

impl PrpBehaviour for ScriptedPrp {
    fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let named = request
            .metadata()
            .get(STORE_ID_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let from = request.get_ref().from_revision;
        let (tx, rx) = mpsc::channel(1024);
        let mut s = self.state.lock().unwrap();
        s.requests.push((from, named.clone()));
        let other_store = s.honours_store_id && named.is_some() && named != s.store_id;
        if s.mute {
        } else if from == 0 || from > s.revision || other_store {
            tx.try_send(Ok(s.snapshot())).unwrap();
        } else {
            for ev in s.log.iter().filter(|e| e.revision > from) {
                tx.try_send(Ok(ev.clone())).unwrap();
            }
        }
        s.watchers.push(tx);
        let mut response = Response::new(Box::pin(ReceiverStream::new(rx)) as WatchStream);
        if let Some(id) = &s.store_id {
            response
                .metadata_mut()
                .insert(STORE_ID_METADATA, id.parse().unwrap());
        }
        Ok(response)
    }

    fn kill_watchers(&self) {
        let watchers = std::mem::take(&mut self.state.lock().unwrap().watchers);
        for w in watchers {
            let _ = w.try_send(Err(Status::unavailable("PRP shutting down")));
        }
    }
}

/// The PDP's replica as (revision, ACP IDs, resource IDs), like
/// [`ScriptedPrp::state`].
fn replica_state(pdp: &Pdp) -> (u64, Vec<String>, Vec<String>) {
    let snap = pdp.replica().snapshot();
    let mut acps: Vec<String> = snap.acps.keys().map(|k| k.to_string()).collect();
    acps.extend(snap.rejected.keys().map(|k| k.to_string()));
    acps.sort();
    let mut resources: Vec<String> = snap.resources.keys().map(|k| k.to_string()).collect();
    resources.sort();
    (snap.revision, acps, resources)
}

async fn converges(pdp: &Pdp, prp: &ScriptedPrp) -> bool {
    eventually(Duration::from_secs(10), || {
        let same = replica_state(pdp) == prp.state();
        async move { same }
    })
    .await
}

fn decide(pdp: &Pdp, originator: &str) -> i32 {
    pdp.service()
        .decide_pb(&request(originator, pb::Operation::Retrieve, "cnt"))
        .expect("decision")
        .decision
}

/// A PRP that names no store (only revisions tell the replica anything)
/// holding `acp1` (RETRIEVE for `Cphone`) and `cnt` linking it, and a PDP
/// that has followed it: `Cphone` may retrieve `cnt`.
async fn following_acp1_on_cnt() -> (ScriptedPrp, Running<ScriptedPrp>, Pdp) {
    let prp = ScriptedPrp::new(None, false);
    prp.publish(Event::AcpPut(acp("acp1", &["Cphone"], RETRIEVE)));
    prp.publish(Event::ResourcePut(resource(
        "cnt",
        Some(&["acp1"]),
        "Ccreator",
    )));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = prp.serve(listener);
    let pdp = Pdp::start(PdpConfig::new(hosting()).with_prp(format!("http://{addr}"))).unwrap();
    assert!(converges(&pdp, &prp).await, "first snapshot");
    assert_eq!(decide(&pdp, "Cphone"), PERMIT);
    (prp, running, pdp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_makes_the_replica_start_over_from_a_snapshot() {
    let (prp, running, pdp) = following_acp1_on_cnt().await;

    // The PRP revokes acp1 (cnt now links acp2) but that change never
    // reaches the watcher; the next one does.
    prp.lose(Event::ResourcePut(resource(
        "cnt",
        Some(&["acp2"]),
        "Ccreator",
    )));
    prp.publish(Event::AcpPut(acp("acp2", &["Cother"], RETRIEVE)));
    assert!(
        converges(&pdp, &prp).await,
        "the replica {:?} never caught up with the PRP {:?}",
        replica_state(&pdp),
        prp.state()
    );
    assert_eq!(decide(&pdp, "Cphone"), DENY, "the revocation holds");
    assert_eq!(decide(&pdp, "Cother"), PERMIT);
    let requests = prp.requests();
    assert_eq!(
        requests.iter().filter(|(from, _)| *from == 0).count(),
        2,
        "the first watch and the resynchronization ask from 0: {requests:?}"
    );
    // Followed live again afterwards.
    prp.publish(Event::AcpDeleted("acp2".into()));
    assert!(converges(&pdp, &prp).await);
    assert_eq!(decide(&pdp, "Cother"), DENY);
    running.kill().await;
}

/// Decision 10 (expired data is indeterminate): once the replica knows it
/// is out of step (a change is missing), what it holds may have been
/// superseded, so not even its Permits stand: every decision is a Deny
/// with PROCESSING_ERROR until the snapshot arrives (here a PRP slow to
/// send it), then the PRP's policies decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_step_replica_denies_until_its_snapshot_decision_10() {
    let (prp, running, pdp) = following_acp1_on_cnt().await;

    prp.state.lock().unwrap().mute = true;
    prp.lose(Event::ResourcePut(resource(
        "cnt",
        Some(&["acp2"]),
        "Ccreator",
    )));
    prp.publish(Event::AcpPut(acp("acp2", &["Cother"], RETRIEVE)));
    let noticed = eventually(Duration::from_secs(10), || {
        let out = pdp.replica().is_out_of_step();
        async move { out }
    })
    .await;
    assert!(noticed, "the gap was never noticed");
    let d = pdp
        .service()
        .decide_pb(&request("Cphone", pb::Operation::Retrieve, "cnt"))
        .expect("decision");
    assert_eq!(d.decision, DENY, "{d:?}");
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::ProcessingError as i32,
        "{d:?}"
    );
    assert!(d.summary.contains("out of step"), "{d:?}");

    prp.unmute();
    assert!(converges(&pdp, &prp).await, "the snapshot");
    assert!(!pdp.replica().is_out_of_step());
    assert_eq!(decide(&pdp, "Cphone"), DENY, "the revocation holds");
    assert_eq!(decide(&pdp, "Cother"), PERMIT);
    running.kill().await;
}

/// A PRP restarted on a new store whose revisions passed the replica's
/// while the PDP was away: a real PRP sends a snapshot when the watcher
/// names another store; one that does not (`honours` false) is caught by
/// the replica itself.
async fn a_new_store_behind_the_same_address(honours: bool) {
    let old = ScriptedPrp::new(Some("store-old"), true);
    old.publish(Event::AcpPut(acp("acp1", &["Cphone"], RETRIEVE)));
    old.publish(Event::ResourcePut(resource(
        "cnt",
        Some(&["acp1"]),
        "Ccreator",
    )));
    old.publish(Event::AcpPut(acp("acpX", &["Cx"], RETRIEVE)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = old.serve(listener);
    let pdp = Pdp::start(PdpConfig::new(hosting()).with_prp(format!("http://{addr}"))).unwrap();
    assert!(converges(&pdp, &old).await, "first snapshot");
    assert_eq!(
        pdp.replica().snapshot().store_id.as_deref(),
        Some("store-old")
    );
    assert_eq!(decide(&pdp, "Cphone"), PERMIT);
    // Decisions and the status name the store their revision counts in, so
    // that a PEP's cache tells the new store's revisions from the old's.
    let store_of = |pdp: &Pdp| {
        let d = pdp
            .service()
            .decide_pb(&request("Cphone", pb::Operation::Retrieve, "cnt"))
            .expect("decision");
        let status = pdp.service().status_pb();
        assert_eq!(d.policy_store, status.policy_store);
        d.policy_store
    };
    assert_eq!(store_of(&pdp), "store-old");
    running.kill().await;

    // The new store: a different history, past revision 3 before the PDP
    // is back. Replayed from 3 on top of the old state, it would leave acp1
    // (deleted nowhere in it) in force.
    let new = ScriptedPrp::new(Some("store-new"), honours);
    new.publish(Event::ResourcePut(resource(
        "cnt",
        Some(&["acp9"]),
        "Ccreator",
    )));
    new.publish(Event::AcpPut(acp("acp9", &["Cother"], RETRIEVE)));
    new.publish(Event::AcpPut(acp("acp8", &["Cother"], RETRIEVE)));
    new.publish(Event::AcpPut(acp("acp7", &["Cother"], RETRIEVE)));
    new.publish(Event::AcpDeleted("acp7".into()));
    let listener = TcpListener::bind(addr).await.unwrap();
    let running = new.serve(listener);
    assert!(
        converges(&pdp, &new).await,
        "the replica {:?} never became the new store's state {:?}",
        replica_state(&pdp),
        new.state()
    );
    assert_eq!(
        pdp.replica().snapshot().store_id.as_deref(),
        Some("store-new")
    );
    assert_eq!(decide(&pdp, "Cphone"), DENY);
    assert_eq!(decide(&pdp, "Cother"), PERMIT);
    assert_eq!(store_of(&pdp), "store-new");
    let requests = new.requests();
    assert_eq!(
        requests.first(),
        Some(&(3, Some("store-old".to_owned()))),
        "the PDP resumes naming the store of its revision"
    );
    if !honours {
        assert!(
            requests.iter().skip(1).any(|(from, _)| *from == 0),
            "the replica refused the other store's changes and asked from 0: {requests:?}"
        );
    }
    // Live changes of the new store follow.
    new.publish(Event::AcpDeleted("acp9".into()));
    assert!(converges(&pdp, &new).await);
    assert_eq!(decide(&pdp, "Cother"), DENY);
    running.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prp_on_a_new_store_sends_a_snapshot_to_a_replica_of_the_old() {
    a_new_store_behind_the_same_address(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_refuses_changes_of_another_store_by_itself() {
    a_new_store_behind_the_same_address(false).await;
}

#[tokio::test]
async fn an_unconvertible_resource_update_denies_instead_of_keeping_the_old_version() {
    let pdp = Pdp::start(PdpConfig::new(hosting())).unwrap();
    pdp.apply_event(&common::snapshot_event(
        1,
        vec![acp("open", &["Cphone"], RETRIEVE)],
        vec![resource("cnt", Some(&["open"]), "Ccreator")],
    ))
    .unwrap();
    assert_eq!(decide(&pdp, "Cphone"), PERMIT);
    // An update the PDP cannot read (acpi given with acpi_set false).
    let mut broken = resource("cnt", None, "Ccreator");
    broken.acpi = vec!["strict".into()];
    pdp.apply_event(&pb::WatchEvent {
        revision: 2,
        tag: 0,
        event: Some(Event::ResourcePut(broken)),
    })
    .unwrap();
    let d = pdp
        .service()
        .decide_pb(&request("Cphone", pb::Operation::Retrieve, "cnt"))
        .expect("decision");
    assert_eq!(d.decision, DENY, "{}", d.summary);
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::NotApplicable as i32,
        "an unknown resource: {}",
        d.summary
    );
    assert_eq!(pdp.replica().revision(), 2);
}

/// A replica that starts over from a snapshot lacks changes until that
/// snapshot is applied: Status does not call it connected (its staleness
/// grows) while the Watch stream is open but the snapshot has not come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_not_current_before_its_snapshot_is_applied() {
    let prp = ScriptedPrp::new(None, false);
    prp.publish(Event::AcpPut(acp("acp1", &["Cphone"], RETRIEVE)));
    prp.state.lock().unwrap().mute = true;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _running = prp.serve(listener);
    let pdp = Pdp::start(PdpConfig::new(hosting()).with_prp(format!("http://{addr}"))).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            let asked = !prp.requests().is_empty();
            async move { asked }
        })
        .await,
        "the PDP watches"
    );
    // The stream is open: give the PDP time to (wrongly) call itself current.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = pdp.replica().status();
    assert!(!status.ready);
    assert!(
        !status.connected,
        "connected before the snapshot: {status:?}"
    );

    prp.unmute();
    assert!(converges(&pdp, &prp).await, "snapshot applied");
    assert!(
        eventually(Duration::from_secs(10), || {
            let connected = pdp.replica().status().connected;
            async move { connected }
        })
        .await,
        "current once the snapshot is applied"
    );
}
