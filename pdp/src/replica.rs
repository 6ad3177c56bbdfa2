//! The PDP's local replica of the PRP's data (TS-0003 6.2.2 steps 004-005
//! answered locally): compiled ACPs, target resources and dynamic ACPs.
//!
//! The replica is an immutable [`Snapshot`] behind an [`ArcSwap`]. A decision
//! loads the current snapshot (one atomic load, no lock, no network) and
//! decides against it; applying a Watch event builds a new snapshot
//! (clone-on-write of the maps) and swaps it in atomically, so a decision
//! always sees one consistent revision.
//!
//! [`Replica::follow`] is the follower task: it opens `Watch(from_revision =
//! current)` on the PRP, applies every event, and on any error reconnects
//! with exponential backoff (100 ms doubling to 5 s), recording whether the
//! stream is up and since when the replica is possibly stale. Tests (and
//! processes that feed the replica themselves) call [`Replica::apply_event`].
//!
//! A change is applied only on the state it follows: its revision must be
//! exactly one more than the replica's (lower ones are skipped as already
//! applied), and, when the stream names the PRP's store (the
//! `authz-store-id` metadata of `Watch`), the replica's state must come from
//! that same store. Otherwise nothing of it is applied
//! ([`ReplicaError::Gap`], [`ReplicaError::OtherStore`]) and the follower
//! starts over: it reconnects asking from revision 0, so that the PRP sends
//! a full snapshot, and keeps deciding with the replica it has until then.
//! The follower also sends the ID of its replica's store when it resumes,
//! so that a PRP whose store is another (a new in-memory store after a
//! restart, say) sends a snapshot at once. A PRP that names no store (one
//! older than store IDs) is followed by revision alone; its restart on a
//! new store is then noticed only when the revisions do not follow on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use authz_core::HostingContext;
use authz_core::compile::CompiledAcp;
use authz_core::ids::resource_cse;
use authz_core::resources::{Resource, ResourceView, TY_ACP};
use authz_proto::convert::{ConversionError, acp_from_pb, join_errors, set_of_acrs_from_pb};
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_proto::pb::watch_event::Event;
use authz_proto::serving::STORE_ID_METADATA;
use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use smol_str::SmolStr;
use tokio::sync::watch;

use crate::telemetry;

/// First delay before reconnecting to the PRP.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest delay between reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most Watch events the follower applies on one copy of the replica.
const MAX_BATCH: usize = 1024;

/// A dynamic ACP (Direct Dynamic Authorization, TS-0003 7.3.2.2) bound to a
/// target until it expires.
#[derive(Debug, Clone)]
pub struct DynamicAcp {
    /// Its ID.
    pub id: Arc<str>,
    /// The granted privileges, compiled as the `pv` of a synthetic ACP.
    pub acp: Arc<CompiledAcp>,
    /// When it stops applying.
    pub expires_at: DateTime<Utc>,
}

/// One immutable revision of the replica.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The PRP revision this snapshot reflects (0: nothing received yet).
    pub revision: u64,
    /// The tag the PRP sent with that revision (`WatchEvent.tag`; 0 when
    /// unknown), presented when resuming so that a PRP whose history has
    /// changed under that revision (restored from a backup) sends a
    /// snapshot.
    pub tag: u64,
    /// The ID of the PRP store the state comes from, as the Watch stream
    /// that brought its last snapshot named it; `None` when it named none
    /// (or the snapshot was fed without a stream).
    pub store_id: Option<Arc<str>>,
    /// Compiled ACPs by ID. IDs of up to 23 bytes (nearly all) are held
    /// inline, so a lookup compares them without another cache miss.
    pub acps: FxHashMap<SmolStr, Arc<CompiledAcp>>,
    /// ACPs the PRP sent that could not be converted or compiled, with the
    /// reason. They grant nothing (a missing policy can only remove permits)
    /// but still count as ACP IDs for resolution.
    pub rejected: FxHashMap<Arc<str>, String>,
    /// Target resources by ID (held inline like the ACP IDs).
    pub resources: FxHashMap<SmolStr, Resource>,
    /// Dynamic ACPs by the target they are bound to, including expired ones
    /// the PRP has not removed yet (filtered at decision time).
    pub dynamic: FxHashMap<String, Vec<DynamicAcp>>,
    /// The target of each dynamic ACP, by dynamic ACP ID.
    pub dynamic_targets: FxHashMap<Arc<str>, String>,
    /// `<AE>` and `<remoteCSE>` resources with an `aei` or `csi`
    /// ([`Resource::member_originator`]), by the last `/` segment of that
    /// ID (`member_key`): the part canonicalization never changes, so
    /// the index holds for every hosting CSE a request may name.
    pub member_index: FxHashMap<SmolStr, SmallVec<[SmolStr; 1]>>,
}

/// Whether a resource ID, in the absolute form `mid` is read in, has the
/// shape of another originator's own ID: a CSE-ID or SP-relative AE-ID
/// (`//sp/x`), or an AE-ID whose stem starts with `C` or `S` (TS-0001 7.2).
/// A `<group>` listing that ID lists that originator (spec notes §2.4:
/// both readings are possible), so an `<AE>` or `<remoteCSE>` registered
/// under it must not stand for its own `aei`/`csi` too: otherwise
/// registering `<AE>` `Cmom` with `aei` `Cevil` would make Cevil a member
/// of every group of Cmom.
fn names_another_originator(rid: &str) -> bool {
    let path = rid
        .strip_prefix("//")
        .and_then(|r| r.split_once('/'))
        .map_or("", |(_, path)| path);
    let last = path.rsplit('/').next().unwrap_or(path);
    !path.contains('/') || last.starts_with('C') || last.starts_with('S')
}

/// The key of [`Snapshot::member_index`]: the last `/`-separated segment
/// of an originator ID, the same in every form of it (`Cae1`,
/// `/cse/Cae1`, `//sp/cse/Cae1`).
fn member_key(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

impl Snapshot {
    /// A stored (static) ACP, compiled.
    pub fn acp(&self, id: &str) -> Option<&Arc<CompiledAcp>> {
        self.acps.get(id)
    }

    /// Whether `id` is a stored ACP (one the PDP could not compile too).
    fn holds_acp(&self, id: &str) -> bool {
        // A dynamic ACP is an `<accessControlPolicy>` too (TS-0003 7.3.2.2:
        // a child ACP of its target): a request on it is one on an ACP.
        self.acps.contains_key(id)
            || self.rejected.contains_key(id)
            || self.dynamic_target(id).is_some()
    }

    /// `ty` of `id` as the replica knows it: 1 for a stored ACP (resolution
    /// takes an ID that is both as an ACP), else a registered resource's.
    pub fn resource_type(&self, id: &str) -> Option<u32> {
        if self.holds_acp(id) {
            return Some(TY_ACP);
        }
        self.resources.get(id).map(|r| r.resource_type)
    }

    /// The resource a dynamic ACP is bound to.
    pub fn dynamic_target(&self, id: &str) -> Option<&str> {
        // Asked for every `acpi` entry of a decision: without dynamic ACPs
        // (most replicas, most of the time) no key is hashed.
        if self.dynamic_targets.is_empty() {
            return None;
        }
        self.dynamic_targets.get(id).map(String::as_str)
    }

    /// A dynamic ACP by ID when it is still live at `now`.
    pub fn live_dynamic(&self, id: &str, now: DateTime<Utc>) -> Option<&DynamicAcp> {
        let target = self.dynamic_targets.get(id)?;
        self.dynamic
            .get(target)?
            .iter()
            .find(|d| &*d.id == id && d.expires_at > now)
    }

    /// A [`ResourceView`] of this snapshot for a decision at `now` (dynamic
    /// ACPs that expired by `now` are left out).
    pub fn view(&self, now: DateTime<Utc>) -> SnapshotView<'_> {
        SnapshotView { snap: self, now }
    }

    /// The resources a `<group>` may list in `mid` for `originator`
    /// (absolute, as `hosting` canonicalized it): the `<AE>` resources
    /// whose `aei`, and the `<remoteCSE>` resources whose `csi`, is that
    /// originator, each ID in absolute form ([`HostingContext::canonicalize`],
    /// the function the PIP canonicalizes `mid` with; TS-0001 9.6.2.1, spec
    /// notes §2.4). An `aei`/`csi` is canonicalized with the CSE its
    /// resource's ID names (an AE's stem belongs to the CSE that hosts its
    /// `<AE>`), with the request's hosting CSE when the ID is CSE-relative;
    /// the resource ID with the request's, as the PIP does with `mid`.
    /// Empty for nearly every originator (one hash lookup).
    pub fn member_resources(&self, hosting: &HostingContext, originator: &str) -> Vec<String> {
        let Some(ids) = self.member_index.get(member_key(originator)) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for id in ids {
            let Some(member) = self.resources.get(id).and_then(Resource::member_originator) else {
                continue;
            };
            // An `aei` stem names an AE of the CSE that hosts the `<AE>`
            // resource: the CSE its ID names, when it names one (Decision
            // 2); only a CSE-relative resource ID is taken as the request's.
            let own_cse = resource_cse(id, hosting);
            if !own_cse
                .as_ref()
                .unwrap_or(hosting)
                .canonicalize(member)
                .is_ok_and(|m| m == originator)
            {
                continue;
            }
            if let Ok(rid) = hosting.canonicalize(id)
                && rid != originator
                && !names_another_originator(&rid)
                && !out.iter().any(|o| *o == rid)
            {
                out.push(rid.into_owned());
            }
        }
        out
    }

    /// Stores a resource, keeping [`Snapshot::member_index`] in step.
    fn put_resource(&mut self, r: Resource) {
        let id = SmolStr::new(&r.resource_id);
        if let Some(member) = r.member_originator() {
            let ids = self
                .member_index
                .entry(SmolStr::new(member_key(member)))
                .or_default();
            if !ids.contains(&id) {
                ids.push(id.clone());
            }
        }
        if let Some(old) = self.resources.insert(id, r) {
            self.unindex(&old);
        }
    }

    /// Removes a resource, keeping [`Snapshot::member_index`] in step.
    fn remove_resource(&mut self, id: &str) {
        if let Some(old) = self.resources.remove(id) {
            self.unindex(&old);
        }
    }

    /// Drops the index entry of `old` (replaced or removed) unless the
    /// resource now stored under its ID still has it.
    fn unindex(&mut self, old: &Resource) {
        let Some(member) = old.member_originator() else {
            return;
        };
        let key = member_key(member);
        let still = self
            .resources
            .get(old.resource_id.as_str())
            .and_then(Resource::member_originator)
            .is_some_and(|m| member_key(m) == key);
        if still {
            return;
        }
        if let Some(ids) = self.member_index.get_mut(key) {
            ids.retain(|i| *i != old.resource_id);
            if ids.is_empty() {
                self.member_index.remove(key);
            }
        }
    }

    fn put_acp(&mut self, acp: &pb::AccessControlPolicy) {
        let id: Arc<str> = Arc::from(acp.resource_id.as_deref().unwrap_or_default());
        match compile_acp(acp) {
            Ok(compiled) => {
                self.rejected.remove(&id);
                self.acps.insert(SmolStr::new(&id), Arc::new(compiled));
            }
            Err(reason) => {
                tracing::warn!(acp = %id, %reason, "PRP sent an ACP the PDP cannot compile; it grants nothing");
                self.acps.remove(&*id);
                self.rejected.insert(id, reason);
            }
        }
    }

    fn delete_acp(&mut self, id: &str) {
        self.acps.remove(id);
        self.rejected.remove(id);
    }

    fn put_dynamic(&mut self, rec: &pb::DynamicAcpRecord) {
        self.delete_dynamic(&rec.acp_id);
        match dynamic_from_pb(rec) {
            Ok(d) => {
                self.dynamic_targets
                    .insert(d.id.clone(), rec.target.clone());
                self.dynamic.entry(rec.target.clone()).or_default().push(d);
            }
            Err(reason) => {
                tracing::warn!(acp = %rec.acp_id, %reason, "PRP sent a dynamic ACP the PDP cannot compile; it grants nothing");
            }
        }
    }

    fn delete_dynamic(&mut self, id: &str) {
        let Some(target) = self.dynamic_targets.remove(id) else {
            return;
        };
        if let Some(list) = self.dynamic.get_mut(&target) {
            list.retain(|d| &*d.id != id);
            if list.is_empty() {
                self.dynamic.remove(&target);
            }
        }
    }

    fn from_pb(revision: u64, snap: &pb::Snapshot) -> Self {
        let mut out = Snapshot {
            revision,
            ..Snapshot::default()
        };
        for acp in &snap.acps {
            out.put_acp(acp);
        }
        for r in snap.resources.iter().filter_map(replicated_resource) {
            out.put_resource(r);
        }
        for d in &snap.dynamic_acps {
            out.put_dynamic(d);
        }
        out
    }
}

/// A [`ResourceView`] over a [`Snapshot`] at one instant.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotView<'a> {
    snap: &'a Snapshot,
    now: DateTime<Utc>,
}

impl ResourceView for SnapshotView<'_> {
    fn resource(&self, id: &str) -> Option<&Resource> {
        self.snap.resources.get(id)
    }

    fn is_acp(&self, id: &str) -> bool {
        self.snap.holds_acp(id)
    }

    fn dynamic_acps(&self, target: &str) -> Vec<String> {
        self.snap
            .dynamic
            .get(target)
            .map(|list| {
                list.iter()
                    .filter(|d| d.expires_at > self.now)
                    .map(|d| d.id.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn dynamic_target(&self, id: &str) -> Option<&str> {
        self.snap.dynamic_target(id)
    }
}

/// Converts a wire ACP and compiles it under its `resource_id`.
fn compile_acp(acp: &pb::AccessControlPolicy) -> Result<CompiledAcp, String> {
    let id = acp.resource_id.as_deref().unwrap_or_default();
    if id.is_empty() {
        return Err("resource_id: must not be empty".into());
    }
    let model = acp_from_pb(acp).map_err(|e| join_errors(&e))?;
    CompiledAcp::compile(id, &model).map_err(|e| e.to_string())
}

/// Converts a wire dynamic ACP record; an absent `expires_at` never expires.
fn dynamic_from_pb(rec: &pb::DynamicAcpRecord) -> Result<DynamicAcp, String> {
    if rec.acp_id.is_empty() {
        return Err("acp_id: must not be empty".into());
    }
    let mut errors: Vec<ConversionError> = Vec::new();
    let set = set_of_acrs_from_pb(
        &rec.privileges.clone().unwrap_or_default(),
        "pv",
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(join_errors(&errors));
    }
    let acp = CompiledAcp::from_privileges(rec.acp_id.as_str(), &set).map_err(|e| e.to_string())?;
    let expires_at = match &rec.expires_at {
        Some(ts) => {
            let nanos = u32::try_from(ts.nanos).map_err(|_| "expires_at.nanos: out of range")?;
            DateTime::from_timestamp(ts.seconds, nanos).ok_or("expires_at: out of range")?
        }
        None => DateTime::<Utc>::MAX_UTC,
    };
    Ok(DynamicAcp {
        id: Arc::from(rec.acp_id.as_str()),
        acp: Arc::new(acp),
        expires_at,
    })
}

/// Converts a replicated resource; the PRP validated it, so an invalid one
/// (from a foreign or newer PRP) is logged and left out of the replica.
fn replicated_resource(r: &pb::TargetResource) -> Option<Resource> {
    authz_proto::convert::resource_from_pb(r, "resource")
        .map_err(|e| {
            tracing::warn!(
                resource = %r.resource_id,
                errors = ?e,
                "PRP sent a resource the PDP cannot convert; left out of the replica, requests on it are denied"
            )
        })
        .ok()
}

/// The parts of a snapshot the PRP sends in several events
/// ([`pb::Snapshot::continued`]), gathered until the last one.
#[derive(Default)]
struct SnapshotParts {
    pending: Option<pb::WatchEvent>,
}

impl SnapshotParts {
    /// The event to apply for `event`, if any: a change as it is, a
    /// snapshot once its last part is in (with every part's records);
    /// nothing while parts are missing. A part of another revision, or a
    /// change between parts, is a broken stream.
    fn gather(&mut self, event: pb::WatchEvent) -> Result<Option<pb::WatchEvent>, ReplicaError> {
        let Some(Event::Snapshot(part)) = &event.event else {
            return match self.pending.take() {
                None => Ok(Some(event)),
                Some(p) => Err(ReplicaError::BrokenSnapshot(p.revision)),
            };
        };
        let continued = part.continued;
        let whole = match self.pending.take() {
            None => event,
            Some(mut p) if p.revision == event.revision && p.tag == event.tag => {
                if let (Some(Event::Snapshot(all)), Some(Event::Snapshot(more))) =
                    (p.event.as_mut(), event.event)
                {
                    all.acps.extend(more.acps);
                    all.resources.extend(more.resources);
                    all.dynamic_acps.extend(more.dynamic_acps);
                    all.continued = more.continued;
                }
                p
            }
            Some(p) => return Err(ReplicaError::BrokenSnapshot(p.revision)),
        };
        if continued {
            self.pending = Some(whole);
            Ok(None)
        } else {
            Ok(Some(whole))
        }
    }
}

/// Why Watch events could not be applied (nothing of them was).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// The event carried no change.
    #[error("watch event at revision {0} carries no change")]
    EmptyEvent(u64),
    /// A snapshot sent in parts was broken off: by a change, or by a part
    /// of another revision, before its last part.
    #[error("the parts of the snapshot at revision {0} stopped before the last one")]
    BrokenSnapshot(u64),
    /// A change that does not follow on the replica's revision: changes in
    /// between are missing, so the replica needs a snapshot.
    #[error("watch event at revision {got} does not follow the replica's revision {have}")]
    Gap {
        /// The revision the change had to follow: the replica's, or the one
        /// reached earlier in the same batch.
        have: u64,
        /// The event's revision.
        got: u64,
    },
    /// A change from another store than the one the replica's state comes
    /// from: its revision says nothing about the replica, which needs a
    /// snapshot of that store.
    #[error("watch event from store {got} but the replica holds {}", have.as_deref().unwrap_or("a state of no named store"))]
    OtherStore {
        /// The store of the replica's state, if named.
        have: Option<String>,
        /// The store the event comes from.
        got: String,
    },
}

impl ReplicaError {
    /// Whether the replica has to start over from a full snapshot.
    pub fn needs_snapshot(&self) -> bool {
        matches!(
            self,
            Self::Gap { .. } | Self::OtherStore { .. } | Self::BrokenSnapshot(_)
        )
    }
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The replica moved to this revision.
    Revision(u64),
    /// The event was at or below the replica's revision and was skipped.
    Stale,
}

/// Connection state of the follower.
#[derive(Debug, Clone, Copy)]
struct Connection {
    connected: bool,
    /// The last instant the replica was known current: the moment the Watch
    /// stream went down (or the replica was created).
    last_current: Instant,
}

/// The replica's state as reported by `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Revision of the current snapshot.
    pub revision: u64,
    /// The tag of that revision (0: unknown).
    pub tag: u64,
    /// Whether the Watch stream to the PRP is up.
    pub connected: bool,
    /// Time since the replica was last known current (zero while connected).
    pub staleness: Duration,
    /// Number of ACPs (compiled and rejected).
    pub acps: usize,
    /// Number of target resources.
    pub resources: usize,
    /// Whether a first snapshot has arrived.
    pub ready: bool,
    /// The PRP endpoint followed, if any.
    pub prp_endpoint: Option<String>,
    /// The ID of the PRP store `revision` counts in, if known.
    pub store_id: Option<Arc<str>>,
}

/// The local replica: the current [`Snapshot`], how it is fed, and whether
/// it is current.
#[derive(Debug)]
pub struct Replica {
    current: ArcSwap<Snapshot>,
    /// Serializes writers (the follower and [`Replica::apply_event`]).
    writer: Mutex<()>,
    connection: Mutex<Connection>,
    ready: watch::Sender<bool>,
    endpoint: Option<String>,
    /// How an `https://` endpoint is verified.
    tls: authz_proto::tls::ClientTls,
    /// Set when events could not be applied for want of a snapshot: the
    /// follower then watches from revision 0. Cleared by a snapshot.
    resync: AtomicBool,
}

impl Replica {
    /// An empty replica (revision 0, not ready) that follows `endpoint` once
    /// [`Replica::follow`] runs.
    pub fn new(endpoint: Option<String>) -> Self {
        Self::new_with_tls(endpoint, authz_proto::tls::ClientTls::default())
    }

    /// [`Replica::new`], verifying an `https://` endpoint as `tls` says.
    pub fn new_with_tls(endpoint: Option<String>, tls: authz_proto::tls::ClientTls) -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::default()),
            writer: Mutex::new(()),
            connection: Mutex::new(Connection {
                connected: false,
                last_current: Instant::now(),
            }),
            ready: watch::channel(false).0,
            endpoint,
            tls,
            resync: AtomicBool::new(false),
        }
    }

    /// The current snapshot (an atomic load; never blocks).
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.current.load().revision
    }

    /// Whether a first snapshot has arrived.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Whether the replica is known to be out of step with the PRP (a
    /// change missing, another store) and waits for a snapshot: what it
    /// holds may have been superseded.
    pub fn is_out_of_step(&self) -> bool {
        self.resync.load(Ordering::Relaxed)
    }

    /// A receiver that turns true when the first snapshot arrives.
    pub fn subscribe_ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Waits until a first snapshot has arrived.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        // The sender lives in `self`, so this cannot fail while we wait.
        let _ = rx.wait_for(|r| *r).await;
    }

    /// The PRP endpoint this replica follows.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Revision, connection and staleness.
    pub fn status(&self) -> ReplicaStatus {
        let snap = self.current.load();
        let conn = *self.connection.lock().unwrap_or_else(|e| e.into_inner());
        ReplicaStatus {
            revision: snap.revision,
            tag: snap.tag,
            connected: conn.connected,
            staleness: if conn.connected {
                Duration::ZERO
            } else {
                conn.last_current.elapsed()
            },
            acps: snap.acps.len() + snap.rejected.len(),
            resources: snap.resources.len(),
            ready: self.is_ready(),
            prp_endpoint: self.endpoint.clone(),
            store_id: snap.store_id.clone(),
        }
    }

    fn set_connected(&self, connected: bool) {
        let mut conn = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if conn.connected && !connected {
            conn.last_current = Instant::now();
        }
        conn.connected = connected;
    }

    /// Applies one Watch event: a snapshot replaces the replica; any other
    /// change is applied on a copy that is then swapped in when its revision
    /// is the next one, skipped when it is at or below the current one, and
    /// refused ([`ReplicaError::Gap`]) when revisions are missing in between.
    pub fn apply_event(&self, event: &pb::WatchEvent) -> Result<Applied, ReplicaError> {
        self.apply_events(std::slice::from_ref(event))
    }

    /// Applies events in order as [`Replica::apply_event`] does, but on one
    /// copy of the maps swapped in once at the end (the follower's catch-up
    /// path). An event without a change, or a change that does not follow
    /// on, fails the whole call and nothing of it is applied. Returns the
    /// final revision, or `Stale` when every event was skipped.
    pub fn apply_events(&self, events: &[pb::WatchEvent]) -> Result<Applied, ReplicaError> {
        self.apply_events_from(None, events)
    }

    /// [`Replica::apply_events`] for events of a Watch stream that named
    /// its store `store_id`: a snapshot records it as the store of the
    /// replica's state, and a change is applied only on a state of that
    /// store ([`ReplicaError::OtherStore`] otherwise). With `None` (a
    /// stream that named no store) nothing is checked about stores and a
    /// snapshot records none.
    pub fn apply_events_from(
        &self,
        store_id: Option<&str>,
        events: &[pb::WatchEvent],
    ) -> Result<Applied, ReplicaError> {
        if let Some(empty) = events.iter().find(|e| e.event.is_none()) {
            return Err(ReplicaError::EmptyEvent(empty.revision));
        }
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let base = self.current.load_full();
        let mut work: Option<Snapshot> = None;
        let mut got_snapshot = false;
        for event in events {
            let Some(change) = &event.event else {
                continue;
            };
            if let Event::Snapshot(s) = change {
                let mut snap = Snapshot::from_pb(event.revision, s);
                snap.store_id = store_id.map(Arc::from);
                snap.tag = event.tag;
                work = Some(snap);
                got_snapshot = true;
                continue;
            }
            let state = work.as_ref().unwrap_or(&base);
            if let Some(got) = store_id
                && state.store_id.as_deref() != Some(got)
            {
                return Err(ReplicaError::OtherStore {
                    have: state.store_id.as_deref().map(str::to_owned),
                    got: got.to_owned(),
                });
            }
            let revision = state.revision;
            if event.revision <= revision {
                continue;
            }
            if revision.checked_add(1) != Some(event.revision) {
                return Err(ReplicaError::Gap {
                    have: revision,
                    got: event.revision,
                });
            }
            let next = work.get_or_insert_with(|| Snapshot::clone(&base));
            next.revision = event.revision;
            next.tag = event.tag;
            match change {
                Event::Snapshot(_) => {}
                Event::AcpPut(acp) => next.put_acp(acp),
                Event::AcpDeleted(id) => next.delete_acp(id),
                Event::ResourcePut(r) => match replicated_resource(r) {
                    Some(r) => next.put_resource(r),
                    // Fail closed: the version it replaces (with perhaps a
                    // more permissive acpi) must not stay in force.
                    None => next.remove_resource(r.resource_id.as_str()),
                },
                Event::ResourceDeleted(id) => next.remove_resource(id.as_str()),
                Event::DynamicPut(d) => next.put_dynamic(d),
                Event::DynamicDeleted(id) => next.delete_dynamic(id),
            }
        }
        let Some(next) = work else {
            return Ok(Applied::Stale);
        };
        let revision = next.revision;
        self.current.store(Arc::new(next));
        telemetry::record_revision(revision);
        if got_snapshot {
            self.resync.store(false, Ordering::SeqCst);
            self.ready.send_replace(true);
        }
        tracing::debug!(
            revision,
            events = events.len(),
            snapshot = got_snapshot,
            "replica updated"
        );
        Ok(Applied::Revision(revision))
    }

    /// Follows the PRP at the configured endpoint until the task is aborted:
    /// `Watch(from_revision = current)`, apply each event, reconnect with
    /// exponential backoff on any error. Returns at once when no endpoint is
    /// configured.
    pub async fn follow(self: Arc<Self>) {
        let Some(endpoint) = self.endpoint.clone() else {
            return;
        };
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.watch_once(&endpoint, &mut backoff).await {
                Ok(()) => tracing::warn!(%endpoint, "PRP ended the watch stream"),
                // The causes too (an invalid URL, a refused connection), each
                // once.
                Err(e) => tracing::warn!(
                    %endpoint,
                    error = %authz_proto::endpoint::error_chain(e.as_ref()),
                    "PRP watch failed"
                ),
            }
            self.set_connected(false);
            telemetry::record_staleness(self.status().staleness);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Applies a batch of one stream; an error that needs a snapshot is
    /// returned (the stream has to be dropped), others are logged.
    fn apply_batch(
        &self,
        store_id: Option<&str>,
        batch: &mut Vec<pb::WatchEvent>,
    ) -> Result<(), ReplicaError> {
        batch.retain(|e| {
            let keep = e.event.is_some();
            if !keep {
                tracing::warn!(
                    revision = e.revision,
                    "ignoring a watch event without a change"
                );
            }
            keep
        });
        let result = self.apply_events_from(store_id, batch);
        batch.clear();
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.needs_snapshot() => {
                self.resync.store(true, Ordering::SeqCst);
                Err(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring watch events");
                Ok(())
            }
        }
    }

    /// One connection: returns when the stream ends or fails, or when its
    /// events cannot be applied without a snapshot.
    async fn watch_once(&self, endpoint: &str, backoff: &mut Duration) -> anyhow::Result<()> {
        let channel = authz_proto::endpoint::endpoint_with(endpoint, &self.tls)?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect()
            .await?;
        let mut client = PolicyRetrievalPointClient::new(channel)
            .max_decoding_message_size(authz_proto::convert::MAX_DECODING_MESSAGE_BYTES);
        let current = self.snapshot();
        let resync = self.resync.load(Ordering::SeqCst);
        let from_revision = if resync { 0 } else { current.revision };
        let mut request = tonic::Request::new(pb::WatchRequest {
            from_revision,
            from_tag: if from_revision > 0 { current.tag } else { 0 },
        });
        if let Some(value) = current
            .store_id
            .as_deref()
            .filter(|_| from_revision > 0)
            .and_then(|id| tonic::metadata::MetadataValue::try_from(id).ok())
        {
            request.metadata_mut().insert(STORE_ID_METADATA, value);
        }
        drop(current);
        let response = client.watch(request).await?;
        let store_id: Option<String> = response
            .metadata()
            .get(STORE_ID_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let store_id = store_id.as_deref();
        let mut stream = response.into_inner();
        tracing::info!(%endpoint, from_revision, resync, store = ?store_id, "watching the PRP");
        // A follower that is up to date may hear nothing for a while: it is
        // current once the stream is open. One that starts over from a
        // snapshot knows it lacks changes until that snapshot is applied.
        let mut current = from_revision > 0;
        if current {
            self.now_current(backoff);
        }
        // Apply what has already arrived as one batch: one copy of the maps
        // per batch, not per event, when catching up.
        let mut batch = Vec::new();
        let mut parts = SnapshotParts::default();
        // A snapshot broken off is started over, from a snapshot.
        let mut gather = |event| {
            parts.gather(event).inspect_err(|_| {
                self.resync.store(true, Ordering::SeqCst);
            })
        };
        while let Some(event) = stream.message().await? {
            batch.extend(gather(event)?);
            while batch.len() < MAX_BATCH {
                // Polls once: takes a message only if one is ready now.
                match tokio::time::timeout(Duration::ZERO, stream.message()).await {
                    Ok(Ok(Some(event))) => batch.extend(gather(event)?),
                    Ok(Ok(None)) | Err(_) => break,
                    Ok(Err(e)) => {
                        self.apply_batch(store_id, &mut batch)?;
                        return Err(e.into());
                    }
                }
            }
            if batch.is_empty() {
                // Only parts of a snapshot so far.
                continue;
            }
            if let Err(e) = self.apply_batch(store_id, &mut batch) {
                tracing::warn!(%endpoint, error = %e, "replica out of step with the PRP; starting over from a snapshot");
                return Err(e.into());
            }
            if !current {
                current = true;
                self.now_current(backoff);
            }
        }
        Ok(())
    }

    /// Marks the replica connected and current (staleness 0).
    fn now_current(&self, backoff: &mut Duration) {
        self.set_connected(true);
        *backoff = BACKOFF_MIN;
        telemetry::record_staleness(Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acp(id: &str, originator: &str) -> pb::AccessControlPolicy {
        pb::AccessControlPolicy {
            resource_id: Some(id.to_owned()),
            privileges: Some(pb::SetOfAcrs {
                rules: vec![pb::AccessControlRule {
                    originators: vec![originator.to_owned()],
                    operations: 2,
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }
    }

    fn ev(revision: u64, event: Event) -> pb::WatchEvent {
        pb::WatchEvent {
            revision,
            tag: 0,
            event: Some(event),
        }
    }

    fn dynamic(id: &str, target: &str, expires_in_s: i64) -> pb::DynamicAcpRecord {
        let at = Utc::now() + chrono::Duration::seconds(expires_in_s);
        pb::DynamicAcpRecord {
            acp_id: id.to_owned(),
            target: target.to_owned(),
            privileges: acp(id, "Cdyn").privileges,
            expires_at: Some(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: 0,
            }),
            revision: 0,
            version: None,
        }
    }

    #[test]
    fn snapshot_parts_are_gathered_until_the_last() {
        let part = |revision, id: &str, continued| {
            ev(
                revision,
                Event::Snapshot(pb::Snapshot {
                    acps: vec![acp(id, "Cx")],
                    continued,
                    ..Default::default()
                }),
            )
        };
        let mut parts = SnapshotParts::default();
        assert_eq!(parts.gather(part(4, "a1", true)), Ok(None));
        assert_eq!(parts.gather(part(4, "a2", true)), Ok(None));
        let whole = parts.gather(part(4, "a3", false)).unwrap().expect("whole");
        let Some(Event::Snapshot(s)) = &whole.event else {
            panic!("{whole:?}")
        };
        let ids: Vec<_> = s
            .acps
            .iter()
            .filter_map(|a| a.resource_id.clone())
            .collect();
        assert_eq!(
            (whole.revision, ids, s.continued),
            (4, vec!["a1".into(), "a2".into(), "a3".into()], false)
        );
        // A change passes as it is; one between parts, or a part of
        // another revision, breaks the snapshot off.
        let change = ev(5, Event::AcpDeleted("a1".into()));
        assert_eq!(parts.gather(change.clone()), Ok(Some(change.clone())));
        assert_eq!(parts.gather(part(6, "a1", true)), Ok(None));
        assert_eq!(parts.gather(change), Err(ReplicaError::BrokenSnapshot(6)));
        assert_eq!(parts.gather(part(6, "a1", true)), Ok(None));
        assert_eq!(
            parts.gather(part(7, "a1", false)),
            Err(ReplicaError::BrokenSnapshot(6))
        );
        assert!(ReplicaError::BrokenSnapshot(6).needs_snapshot());
    }

    #[test]
    fn snapshot_then_changes_then_stale_events_are_skipped() {
        let r = Replica::new(None);
        assert!(!r.is_ready());
        let snap = pb::Snapshot {
            acps: vec![acp("a1", "Cx")],
            resources: vec![pb::TargetResource {
                resource_id: "cnt".into(),
                resource_type: 3,
                acpi_set: true,
                acpi: vec!["a1".into()],
                ..Default::default()
            }],
            dynamic_acps: vec![],
            continued: false,
        };
        assert_eq!(
            r.apply_event(&ev(5, Event::Snapshot(snap))),
            Ok(Applied::Revision(5))
        );
        assert!(r.is_ready());
        let before = r.snapshot();
        assert_eq!(
            r.apply_event(&ev(6, Event::AcpPut(acp("a2", "Cy")))),
            Ok(Applied::Revision(6))
        );
        // The old snapshot is untouched (clone-on-write).
        assert_eq!(before.acps.len(), 1);
        assert_eq!(r.load().acps.len(), 2);
        assert_eq!(
            r.apply_event(&ev(6, Event::AcpDeleted("a2".into()))),
            Ok(Applied::Stale)
        );
        assert_eq!(
            r.apply_event(&ev(7, Event::AcpDeleted("a2".into()))),
            Ok(Applied::Revision(7))
        );
        assert_eq!(
            r.apply_event(&ev(8, Event::ResourceDeleted("cnt".into()))),
            Ok(Applied::Revision(8))
        );
        let s = r.status();
        assert_eq!((s.revision, s.acps, s.resources), (8, 1, 0));
        assert_eq!(
            r.apply_event(&pb::WatchEvent {
                revision: 9,
                tag: 0,
                event: None
            }),
            Err(ReplicaError::EmptyEvent(9))
        );
    }

    #[test]
    fn a_batch_is_applied_in_order_on_one_copy() {
        let r = Replica::new(None);
        let events = [
            ev(3, Event::Snapshot(pb::Snapshot::default())),
            ev(4, Event::AcpPut(acp("a1", "Cx"))),
            ev(4, Event::AcpDeleted("a1".into())),
            ev(5, Event::AcpPut(acp("a2", "Cx"))),
            ev(6, Event::AcpDeleted("a2".into())),
        ];
        assert_eq!(r.apply_events(&events), Ok(Applied::Revision(6)));
        assert!(r.is_ready());
        let snap = r.load();
        assert!(snap.acp("a1").is_some() && snap.acp("a2").is_none());
        drop(snap);
        assert_eq!(r.apply_events(&events[1..3]), Ok(Applied::Stale));
        let empty = pb::WatchEvent {
            revision: 9,
            tag: 0,
            event: None,
        };
        assert_eq!(
            r.apply_events(&[ev(7, Event::AcpDeleted("a1".into())), empty]),
            Err(ReplicaError::EmptyEvent(9))
        );
        assert_eq!(r.revision(), 6, "nothing of a failed batch is applied");
    }

    #[test]
    fn an_acp_that_does_not_compile_is_rejected_but_known() {
        let r = Replica::new(None);
        let mut bad = acp("bad", "Cx");
        bad.privileges.as_mut().unwrap().rules[0].originators = vec!["has space".into()];
        r.apply_event(&ev(1, Event::Snapshot(pb::Snapshot::default())))
            .unwrap();
        r.apply_event(&ev(2, Event::AcpPut(bad))).unwrap();
        let snap = r.load();
        assert!(snap.acp("bad").is_none());
        assert!(snap.rejected.contains_key("bad"));
        assert!(snap.view(Utc::now()).is_acp("bad"));
        // Fixed later: compiled again.
        drop(snap);
        r.apply_event(&ev(3, Event::AcpPut(acp("bad", "Cx"))))
            .unwrap();
        assert!(r.load().acp("bad").is_some());
        assert!(r.load().rejected.is_empty());
    }

    #[test]
    fn dynamic_acps_are_filtered_by_expiry_and_removable() {
        let r = Replica::new(None);
        r.apply_event(&ev(
            1,
            Event::Snapshot(pb::Snapshot {
                dynamic_acps: vec![dynamic("d1", "cnt", 3600), dynamic("d2", "cnt", -1)],
                ..Default::default()
            }),
        ))
        .unwrap();
        let now = Utc::now();
        let snap = r.snapshot();
        assert_eq!(snap.view(now).dynamic_acps("cnt"), vec!["d1".to_string()]);
        assert!(snap.live_dynamic("d1", now).is_some());
        assert!(snap.live_dynamic("d2", now).is_none());
        r.apply_event(&ev(2, Event::DynamicDeleted("d1".into())))
            .unwrap();
        assert!(r.load().view(now).dynamic_acps("cnt").is_empty());
        // Re-putting an ID replaces it rather than duplicating it.
        r.apply_event(&ev(3, Event::DynamicPut(dynamic("d2", "cnt", 60))))
            .unwrap();
        r.apply_event(&ev(4, Event::DynamicPut(dynamic("d2", "cnt", 120))))
            .unwrap();
        assert_eq!(r.load().dynamic["cnt"].len(), 1);
    }

    #[test]
    fn resources_convert_acpi_set_and_empty_strings() {
        let r = replicated_resource(&pb::TargetResource {
            resource_id: "x".into(),
            resource_type: 3,
            acpi_set: true,
            creator: "Cc".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.acpi, Some(vec![]));
        assert_eq!(r.parent_id, None);
        assert_eq!(r.custodian, None);
        assert_eq!(r.creator.as_deref(), Some("Cc"));
    }

    #[test]
    fn a_change_that_skips_revisions_is_refused_and_applies_nothing() {
        let r = Replica::new(None);
        r.apply_event(&ev(1, Event::Snapshot(pb::Snapshot::default())))
            .unwrap();
        assert_eq!(
            r.apply_events(&[
                ev(2, Event::AcpPut(acp("a1", "Cx"))),
                ev(5, Event::AcpPut(acp("a2", "Cx"))),
            ]),
            Err(ReplicaError::Gap { have: 2, got: 5 })
        );
        assert!(ReplicaError::Gap { have: 2, got: 5 }.needs_snapshot());
        assert_eq!(r.revision(), 1, "nothing of the batch is applied");
        assert!(r.load().acps.is_empty());
        // Also on an empty replica: a change at 3 is not the first one.
        let fresh = Replica::new(None);
        assert_eq!(
            fresh.apply_event(&ev(3, Event::AcpDeleted("a1".into()))),
            Err(ReplicaError::Gap { have: 0, got: 3 })
        );
        // A snapshot mends it, whatever its revision.
        assert_eq!(
            r.apply_events(&[
                ev(5, Event::Snapshot(pb::Snapshot::default())),
                ev(6, Event::AcpPut(acp("a2", "Cx"))),
            ]),
            Ok(Applied::Revision(6))
        );
    }

    #[test]
    fn a_change_from_another_store_is_refused() {
        let r = Replica::new(None);
        r.apply_events_from(
            Some("store-a"),
            &[ev(1, Event::Snapshot(pb::Snapshot::default()))],
        )
        .unwrap();
        assert_eq!(r.load().store_id.as_deref(), Some("store-a"));
        assert_eq!(
            r.apply_events_from(Some("store-a"), &[ev(2, Event::AcpPut(acp("a1", "Cx")))]),
            Ok(Applied::Revision(2))
        );
        // Revision 3 follows on, but of another store's history.
        let refused =
            r.apply_events_from(Some("store-b"), &[ev(3, Event::AcpDeleted("a1".into()))]);
        assert_eq!(
            refused,
            Err(ReplicaError::OtherStore {
                have: Some("store-a".into()),
                got: "store-b".into()
            })
        );
        assert!(refused.unwrap_err().needs_snapshot());
        assert_eq!(r.revision(), 2);
        assert!(r.load().acp("a1").is_some());
        // A state of no named store is not taken for one.
        let unnamed = Replica::new(None);
        unnamed
            .apply_event(&ev(1, Event::Snapshot(pb::Snapshot::default())))
            .unwrap();
        assert!(matches!(
            unnamed.apply_events_from(Some("store-b"), &[ev(2, Event::AcpDeleted("x".into()))]),
            Err(ReplicaError::OtherStore { have: None, .. })
        ));
        // A snapshot of store-b, then its changes, are applied.
        assert_eq!(
            r.apply_events_from(
                Some("store-b"),
                &[
                    ev(7, Event::Snapshot(pb::Snapshot::default())),
                    ev(8, Event::AcpPut(acp("b1", "Cx"))),
                ]
            ),
            Ok(Applied::Revision(8))
        );
        let snap = r.load();
        assert_eq!(snap.store_id.as_deref(), Some("store-b"));
        assert!(snap.acp("a1").is_none() && snap.acp("b1").is_some());
    }

    #[test]
    fn an_unconvertible_resource_update_removes_the_old_version() {
        let r = Replica::new(None);
        let permissive = pb::TargetResource {
            resource_id: "cnt".into(),
            resource_type: 3,
            acpi_set: true,
            acpi: vec!["open".into()],
            ..Default::default()
        };
        r.apply_event(&ev(
            1,
            Event::Snapshot(pb::Snapshot {
                resources: vec![permissive.clone()],
                ..Default::default()
            }),
        ))
        .unwrap();
        assert!(r.load().resources.contains_key("cnt"));
        // acpi given while acpi_set is false: not a valid resource.
        let broken = pb::TargetResource {
            acpi_set: false,
            acpi: vec!["strict".into()],
            ..permissive
        };
        assert_eq!(
            r.apply_event(&ev(2, Event::ResourcePut(broken))),
            Ok(Applied::Revision(2))
        );
        let snap = r.load();
        assert!(
            !snap.resources.contains_key("cnt"),
            "the old version must not stay in force"
        );
        assert!(matches!(
            authz_core::resources::applicable_policies(&snap.view(Utc::now()), "cnt"),
            Err(authz_core::resources::ResolveError::UnknownResource(_))
        ));
    }

    #[test]
    fn status_without_prp_is_disconnected() {
        let r = Replica::new(None);
        let s = r.status();
        assert!(!s.connected && !s.ready);
        assert_eq!(s.prp_endpoint, None);
    }
}
