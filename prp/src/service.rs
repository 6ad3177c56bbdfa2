//! The `PolicyRetrievalPoint` gRPC service: a thin adapter between the wire
//! contract (`prp.proto`), the core engine and a [`PolicyStore`].
//!
//! - Input is converted and validated first ([`acp_from_pb`],
//!   [`CompiledAcp::compile`], [`check_create`]); any error is
//!   `INVALID_ARGUMENT` with a `google.rpc.BadRequest` naming each field, and
//!   nothing is stored.
//! - Writes are serialized: under one lock the service reads its in-memory
//!   mirror of the store, authorizes the originator with [`decide`], applies
//!   the write to the store (durable when it returns), updates the mirror and
//!   publishes the change to watchers, so live events leave in revision
//!   order. The last three steps are one unit that cancelling the request
//!   (a client gone, a deadline) cannot split: they run on a blocking task
//!   that holds the lock until all three are done, whether or not the
//!   request still waits for it.
//! - ACPs, dynamic ACPs and resources share one ID space: `CreateAcp` with
//!   a resource's or a dynamic ACP's ID, `PutResource` with an ACP's or a
//!   dynamic ACP's, and `CreateDynamicAcp` with an ACP's or a resource's are
//!   ALREADY_EXISTS for every originator, since a request to an ACP's ID is
//!   judged by its `pvs` (TS-0001 10.2.3.1) and a dynamic ACP is the
//!   `<accessControlPolicy>` a Direct Dynamic Authorization grant creates
//!   (TS-0003 7.3.2.2). The store checks this when it commits
//!   ([`Mutation`]'s preconditions); the service asks the same check of its
//!   mirror first, to name the request field.
//! - A stored resource's `pi`, `ty` and `cr` never change (TS-0001
//!   9.6.1.3): `PutResource` that changes one is INVALID_ARGUMENT naming
//!   the field for every originator, the admin and bundles included, and
//!   the store refuses it too ([`StoreError::ReadOnly`]). Putting the same
//!   values again is no change.
//! - Reads are answered from the mirror, a [`StoreSnapshot`] kept equal to
//!   the store.
//! - `CreateDynamicAcp` binds the dynamic ACP to its target itself
//!   (Decision 7): resolution counts it for the target and for the
//!   resources that take their policies from it (a container's
//!   contentInstances), never for the target's parent or siblings.
//!   Without an `acp_id`, a grant equal to a live dynamic ACP (same target,
//!   same privileges) is that ACP: its expiry moves to the later of the two
//!   (one revision, streamed as a put of that ID) or stays, and its ID is
//!   returned, so a repeated request stores nothing new. A target holds at
//!   most [`MAX_DYNAMIC_ACPS_PER_TARGET`] live dynamic ACPs; one more is
//!   RESOURCE_EXHAUSTED naming the target.
//! - `Watch` tells the watcher the store's ID in the response metadata
//!   ([`STORE_ID_METADATA`]); a watcher that resumes from a revision and
//!   names another store in its request gets a snapshot first, as one
//!   asking from 0 does; so does one whose `from_tag` is not the tag of
//!   the change at its revision (another history of this store: one
//!   restored from a backup that has written since).
//!
//! Write authorization (the configured admin originator always passes):
//!
//! | RPC | needs |
//! | --- | --- |
//! | `CreateAcp` | a `parent_id` naming a resource registered in the PRP, and CREATE in that parent's applicable set (TS-0001 10.2.3.1) with resource type 1 as the created type (`rrt`, for `acod` `chty`) and the parent's `ty` as the target type (for `acod` `ty`) (TS-0001 9.6.2, TS-0003 7.1.1, 7.1.5); no or an unknown parent: PERMISSION_DENIED |
//! | `UpdateAcp` | UPDATE in the stored ACP's `pvs` |
//! | `DeleteAcp` | DELETE in the stored ACP's `pvs` |
//! | `PutResource`, new resource | as `CreateAcp`, with the new resource's `ty` as the created type: CREATE in its parent's applicable set; no or an unknown parent: PERMISSION_DENIED |
//! | `PutResource`, new resource with `aei` or `csi` | the admin: the originator it names takes the `<group>` memberships listed under the resource ID (spec notes §2.4), which groups may list still after a deletion; others: PERMISSION_DENIED |
//! | `PutResource`, `pi`, `ty` or `cr` changed | INVALID_ARGUMENT naming the field, for the admin too: read-only once the resource exists (TS-0001 9.6.1.3) |
//! | `PutResource`, `aei` or `csi` changed | INVALID_ARGUMENT naming `resource.ae_id` / `resource.cse_id`, for the admin too: fixed once the resource exists (TS-0001 9.6.4, 9.6.5); they decide which `<group>` memberships the resource gives |
//! | `PutResource`, `acpi` or `cstn` changed | UPDATE in the `pvs` of the ACPs the resource references now, or in its default policy when `acpi` is not set (TS-0001 9.6.1.3.2; `cstn` replaces the creator in the default policy) |
//! | `PutResource`, other attributes changed | UPDATE in the resource's applicable set |
//! | `DeleteResource` | DELETE in the resource's applicable set |
//! | `CreateDynamicAcp` | originator is the admin or one of `dynamic_acp_originators` |
//!
//! The originator of a PRP write is taken as authenticated (`acaf` rules
//! pass): the PRP's callers are trusted CSEs and operators that assert it.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use authz_core::compile::{
    check_authorization_addresses, check_create, check_entry_lengths, check_set_entry_lengths,
};
use authz_core::decision::Effect;
use authz_core::model::{AccessControlPolicy, SetOfAcrs};
use authz_core::resources::{
    ACP_CHILD_TYPES, ACP_PARENT_TYPES, ApplicableSet, FixedAttribute, ResolveError, Resource,
    ResourceView, TY_ACP, acpi_change_set, applicable_policies, applicable_policies_for,
    closes_parent_cycle, fixed_attribute_changes,
};
use authz_core::{
    Applicable, CompiledAcp, DecideOptions, DecisionRequest, HostingContext, Operation,
    PrivilegeKind, ValidationErrors, decide,
};
use authz_proto::convert::{
    ConversionError, acp_from_pb, acp_to_pb, echo, field_status, is_usable_id, set_of_acrs_from_pb,
    set_of_acrs_to_pb, summary, timestamp_field, unusable_id_reason,
};
use authz_proto::invalid_argument;
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_server::PolicyRetrievalPoint;
use authz_proto::serving::STORE_ID_METADATA;
use chrono::Utc;
use tokio::sync::{broadcast, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::PrpConfig;
use crate::store::{
    Change, DynamicAcp, LogEntry, Mutation, PolicyStore, StoreError, StoreSnapshot,
};
use crate::writers::{WriterAttributes, WriterGroups};

pub use authz_core::resources::{DEFAULT_POLICY_PREFIX, default_policy_id};

/// An ID no request could name (white space, control characters) or too
/// long to carry ([`authz_proto::convert::MAX_ID_BYTES`]), which would be
/// stored and never used. (Emptiness the callers report.)
fn unusable_id(id: &str, field: &str) -> Option<ConversionError> {
    (!id.is_empty() && !is_usable_id(id)).then(|| violation(field, unusable_id_reason(id)))
}

/// What is wrong with the ID of a new ACP or dynamic ACP, if anything: it
/// is unusable ([`unusable_id`]) or one of the default policies' reserved IDs.
/// Why an update may not leave an ACP without selfPrivileges.
pub(crate) const PVS_REMOVED: &str =
    "an update must not remove every selfPrivileges rule (TS-0004 7.4.2.2.3)";

/// Why an ACP's own ID may not be SP-relative or absolute.
pub(crate) fn acp_id_not_cse_relative(id: &str) -> Option<String> {
    id.starts_with('/').then(|| {
        format!(
            "{id} is not an ACP's own ID: an ACP is held under its CSE-relative ri \
             (no leading /); acpi entries may name it in any form"
        )
    })
}

fn id_problem(id: &str, field: &str) -> Option<ConversionError> {
    if let Some(e) = unusable_id(id, field) {
        return Some(e);
    }
    // The rule `authz check` holds an ACP's `ri` to (core): an empty `/`
    // segment, beyond what `unusable_id` refuses, names no ACP either.
    // (Emptiness the callers report, or fill in an ID.)
    if !id.is_empty()
        && let Err(e) = authz_core::ids::check_resource_id(id)
    {
        return Some(violation(field, e.to_string()));
    }
    // An ACP's ID is its resource ID, `ri`, which is CSE-relative (TS-0001
    // 7.2): the form `acpi` entries are stored and resolved in.
    if let Some(why) = acp_id_not_cse_relative(id) {
        return Some(violation(field, why));
    }
    id.starts_with(DEFAULT_POLICY_PREFIX).then(|| {
        violation(
            field,
            format!(
                "IDs starting with '{DEFAULT_POLICY_PREFIX}' are reserved for default policies"
            ),
        )
    })
}

/// The most live dynamic ACPs one target may have. Grants come from
/// consultations that originators trigger, so without a bound a client
/// could grow the store, and every PDP's replica, at will; equal grants
/// are merged (`CreateDynamicAcp`), so this bounds distinct ones.
pub const MAX_DYNAMIC_ACPS_PER_TARGET: usize = 64;

/// The current time in Unix seconds.
fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// The PRP service; cheap to clone (all clones share one state).
#[derive(Clone)]
pub struct PrpService {
    inner: Arc<Inner>,
}

struct Inner {
    hosting: HostingContext,
    admin: Option<String>,
    dynamic_originators: Vec<String>,
    store: Arc<dyn PolicyStore>,
    mirror: RwLock<StoreSnapshot>,
    /// Held from a write's checks until its change is in the store, the
    /// mirror and the broadcast (see [`PrpService::commit`]).
    write_lock: Arc<tokio::sync::Mutex<()>>,
    events: broadcast::Sender<pb::WatchEvent>,
    closing: watch::Sender<bool>,
    id_counter: AtomicU64,
    /// Where a writer's groups are learned (Decision 3).
    writers: std::sync::OnceLock<WriterGroups>,
}

/// The write lock, owned so that the commit unit can hold it past the
/// request that took it.
struct WriteGuard {
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Inner {
    /// The commit unit of [`PrpService::commit`], blocking: store, mirror,
    /// broadcast. The caller holds the write lock.
    fn commit_unit(&self, mutation: Mutation) -> Result<LogEntry, StoreError> {
        let entry = self.store.apply(mutation)?;
        self.mirror
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .apply(&entry);
        match change_event(&entry) {
            // No receiver is fine.
            Ok(ev) => {
                let _ = self.events.send(ev);
            }
            Err(e) => tracing::error!(error = %e, "change cannot be streamed"),
        }
        Ok(entry)
    }
}

impl std::fmt::Debug for PrpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrpService")
            .field("hosting", &self.inner.hosting)
            .field("admin", &self.inner.admin)
            .finish_non_exhaustive()
    }
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::AlreadyExists(id) => Status::already_exists(format!("{id} already exists")),
        e @ StoreError::IdInUse { .. } => Status::already_exists(e.to_string()),
        // Only PutResource changes a resource: its fields are `resource.*`.
        ref e @ StoreError::ReadOnly { ref attributes, .. } => invalid_argument(
            &attributes
                .iter()
                .map(|a| violation(format!("resource.{}", fixed_field(*a)), e.to_string()))
                .collect::<Vec<_>>(),
        ),
        StoreError::NotFound(id) => Status::not_found(format!("{id} not found")),
        ref e @ StoreError::UnknownTarget(_) => field_status(
            tonic::Code::FailedPrecondition,
            &[violation("target", e.to_string())],
        ),
        StoreError::MissingId => {
            invalid_argument(&[violation("resource_id", "is mandatory: it is the ACP's ID")])
        }
        other => {
            tracing::error!(error = %other, "PRP store failure");
            Status::internal(format!("store: {other}"))
        }
    }
}

/// [`store_status`], except that an ID in use, by a record of the same kind
/// ([`StoreError::AlreadyExists`]) or of the other
/// ([`StoreError::IdInUse`]), is ALREADY_EXISTS naming `field`, the request
/// field that carries the ID. The ID is quoted cut ([`echo`]) and the
/// status bounded ([`field_status`]): its `BadRequest` travels in headers,
/// and echoing a 40 000-byte ID whole made them too large for the client,
/// which then got an HTTP/2 error instead of ALREADY_EXISTS.
fn id_conflict(e: StoreError, field: &str) -> Status {
    match e {
        StoreError::AlreadyExists(id) => field_status(
            tonic::Code::AlreadyExists,
            &[violation(field, format!("{} already exists", echo(&id)))],
        ),
        StoreError::IdInUse { id, holder } => field_status(
            tonic::Code::AlreadyExists,
            &[violation(
                field,
                format!(
                    "{} is already the ID of {holder}: ACPs, dynamic ACPs and resources share \
                     one ID space (TS-0001 10.2.3.1, TS-0003 7.3.2.2)",
                    echo(&id)
                ),
            )],
        ),
        other => store_status(other),
    }
}

/// The wire field (of `TargetResource`) of a [`FixedAttribute`].
fn fixed_field(attribute: FixedAttribute) -> &'static str {
    match attribute {
        FixedAttribute::ParentId => "parent_id",
        FixedAttribute::ResourceType => "resource_type",
        FixedAttribute::Creator => "creator",
    }
}

/// One violation, naming `resource.<field>`, per [`FixedAttribute`] that
/// `new` would change on the stored `old` (TS-0001 9.6.1.3).
fn fixed_violations(old: &Resource, new: &Resource) -> Vec<ConversionError> {
    let text = |v: &Option<String>| format!("{:?}", v.as_deref().unwrap_or(""));
    fixed_attribute_changes(old, new)
        .into_iter()
        .map(|attribute| {
            let (from, to, why) = match attribute {
                FixedAttribute::ParentId => (
                    text(&old.parent_id),
                    text(&new.parent_id),
                    "a move would skip the CREATE check under the new parent",
                ),
                FixedAttribute::ResourceType => (
                    old.resource_type.to_string(),
                    new.resource_type.to_string(),
                    "it decides how the resource's policies resolve (TS-0001 10.2.3.1) and was checked against acod at its Create",
                ),
                FixedAttribute::Creator => (
                    text(&old.creator),
                    text(&new.creator),
                    "it decides whom the default policy grants (TS-0001 9.6.1.3.2)",
                ),
            };
            violation(
                format!("resource.{}", fixed_field(attribute)),
                format!(
                    "cannot change from {from} to {to}: {} ({}) is read-only once a resource exists (TS-0001 9.6.1.3), for the admin too; {why}; delete the resource and register it again instead",
                    attribute.long_name(),
                    attribute.short_name()
                ),
            )
        })
        .collect()
}

fn violation(field: impl Into<String>, message: impl Into<String>) -> ConversionError {
    ConversionError {
        field: field.into(),
        message: message.into(),
    }
}

/// `aei` and `csi` cannot change once a resource exists (the AE-ID of an
/// `<AE>` is read-only, the CSE-ID of a `<remoteCSE>` write-once; TS-0001
/// 9.6.5, 9.6.4): the PDP counts the originator they name as the resource
/// in `<group>` member lists, so a new value would hand the resource's
/// group memberships to another originator.
fn fixed_member_ids(old: &Resource, new: &Resource) -> Vec<ConversionError> {
    [
        ("resource.ae_id", &old.ae_id, &new.ae_id, "AE-ID (aei)"),
        ("resource.cse_id", &old.cse_id, &new.cse_id, "CSE-ID (csi)"),
    ]
    .into_iter()
    .filter(|(_, was, now, _)| was != now)
    .map(|(field, was, now, name)| {
        violation(
            field,
            format!(
                "cannot change from {:?} to {:?}: the {name} is fixed once the resource exists \
                 (TS-0001 9.6.4, 9.6.5); it decides which <group> memberships the resource gives",
                was.as_deref().unwrap_or(""),
                now.as_deref().unwrap_or("")
            ),
        )
    })
    .collect()
}

fn validation_errors(errors: ValidationErrors) -> Vec<ConversionError> {
    errors
        .0
        .into_iter()
        .map(|e| violation(e.path, e.message))
        .collect()
}

/// [`validation_errors`] of an ACP, naming `adri` and `apri` by the request
/// field that carried them: `pdp_addresses` / `prp_addresses`, or
/// `other_attributes.adri` / `.apri` for a value that is not a list of
/// strings.
fn acp_validation_errors(
    errors: ValidationErrors,
    wire: Option<&pb::AccessControlPolicy>,
) -> Vec<ConversionError> {
    let mut out = validation_errors(errors);
    for e in &mut out {
        let typed = match e.field.as_str() {
            "adri" => (
                "pdp_addresses",
                wire.is_some_and(|w| !w.pdp_addresses.is_empty()),
            ),
            "apri" => (
                "prp_addresses",
                wire.is_some_and(|w| !w.prp_addresses.is_empty()),
            ),
            _ => continue,
        };
        e.message = format!("{} {}", e.field, e.message);
        e.field = match typed {
            (field, true) => field.to_owned(),
            (_, false) => format!("other_attributes.{}", e.field),
        };
    }
    out
}

// ---------------------------------------------------------------------------
// Conversions of PRP messages
// ---------------------------------------------------------------------------

pub use authz_proto::convert::{resource_from_pb, resource_to_pb};

fn stored_acp_to_pb(acp: &AccessControlPolicy) -> Result<pb::AccessControlPolicy, Status> {
    acp_to_pb(acp).map_err(|errors| {
        tracing::error!(?errors, "stored ACP cannot be converted to its wire form");
        Status::internal("a stored ACP cannot be converted to its wire form")
    })
}

/// The stored ACP's `pvs`, compiled, for judging an update or a deletion
/// of it (TS-0003 7.1.1). One stored by an earlier version that a later
/// check refuses no longer compiles: it then has no `pvs` that grants, so
/// the admin alone may repair or delete it (not an INTERNAL error for
/// everyone).
fn stored_pvs(id: &str, stored: &AccessControlPolicy) -> Policies {
    let mut out = Policies::default();
    out.push(
        id,
        CompiledAcp::compile(id, stored),
        PrivilegeKind::SelfPrivileges,
    );
    out
}

/// The compiled policies of an authorization check, and the stored ACPs
/// among them that no longer compile (stored by an earlier version that a
/// later check refuses): those grant nothing, and a refusal says so
/// rather than that no rule named the writer.
#[derive(Default)]
struct Policies {
    compiled: Vec<(CompiledAcp, PrivilegeKind)>,
    /// `id: reason` of each stored ACP that does not compile.
    uncompiled: Vec<String>,
}

impl Policies {
    fn push(
        &mut self,
        id: &str,
        compiled: Result<CompiledAcp, ValidationErrors>,
        kind: PrivilegeKind,
    ) {
        match compiled {
            Ok(c) => self.compiled.push((c, kind)),
            Err(e) => {
                // Said in the refusal it causes (and by the PDPs, which
                // log it once when they load the ACP), not per check.
                tracing::debug!(acp = %id, error = %e, "stored ACP does not compile; only the admin may update or delete it");
                self.uncompiled.push(format!("{id} ({e})"));
            }
        }
    }
}

fn set_to_pb(set: &SetOfAcrs) -> pb::SetOfAcrs {
    let mut errors: Vec<ConversionError> = Vec::new();
    let out = set_of_acrs_to_pb(set, "pv", &mut errors);
    if !errors.is_empty() {
        tracing::warn!(?errors, "rule set not fully representable on the wire");
    }
    out
}

fn dynamic_to_pb(d: &DynamicAcp, revision: u64) -> pb::DynamicAcpRecord {
    pb::DynamicAcpRecord {
        acp_id: d.id.clone(),
        target: d.target.clone(),
        privileges: Some(set_to_pb(&d.privileges)),
        expires_at: Some(prost_types::Timestamp {
            seconds: d.expires_at,
            nanos: 0,
        }),
        revision,
        version: None,
    }
}

/// The most bytes of records one part of a `Watch` snapshot (or one page of
/// `ListAcps`) carries, each counted as encoded in its list: with a record
/// at most 1 MiB, a part stays under the 4 MiB a gRPC client decodes by
/// default, so a store of any size replicates and lists
/// ([`pb::Snapshot::continued`]).
pub const SNAPSHOT_PART_BYTES: usize = 3 << 20;

/// What `record` adds to a list of records encoded: its tag, its length
/// and itself.
fn listed_len(record: &impl prost::Message) -> usize {
    let len = record.encoded_len();
    1 + prost::length_delimiter_len(len) + len
}

/// The store's state at its revision as `Watch` events: one snapshot, in
/// parts of about [`SNAPSHOT_PART_BYTES`] each when large.
fn snapshot_events(snap: &StoreSnapshot, now: i64) -> Result<Vec<pb::WatchEvent>, Status> {
    let part = |s: pb::Snapshot| pb::WatchEvent {
        revision: snap.revision,
        tag: snap.tag,
        event: Some(pb::watch_event::Event::Snapshot(s)),
    };
    let mut parts = Vec::new();
    let mut current = pb::Snapshot::default();
    let mut size = 0usize;
    // Starts a new part when the record would take this one past the size.
    let mut room = |current: &mut pb::Snapshot, size: &mut usize, len: usize| {
        if *size > 0 && *size + len > SNAPSHOT_PART_BYTES {
            let mut full = std::mem::take(current);
            full.continued = true;
            parts.push(part(full));
            *size = 0;
        }
        *size += len;
    };
    for acp in snap.acps.values() {
        let acp = stored_acp_to_pb(acp)?;
        room(&mut current, &mut size, listed_len(&acp));
        current.acps.push(acp);
    }
    for r in snap.resources.values() {
        let r = resource_to_pb(r);
        room(&mut current, &mut size, listed_len(&r));
        current.resources.push(r);
    }
    for d in snap.dynamic.values().filter(|d| !d.is_expired(now)) {
        let d = dynamic_to_pb(d, snap.revision);
        room(&mut current, &mut size, listed_len(&d));
        current.dynamic_acps.push(d);
    }
    parts.push(part(current));
    Ok(parts)
}

fn change_event(entry: &LogEntry) -> Result<pb::WatchEvent, Status> {
    use pb::watch_event::Event;
    let event = match &entry.change {
        Change::AcpPut(acp) => Event::AcpPut(stored_acp_to_pb(acp)?),
        Change::AcpDeleted(id) => Event::AcpDeleted(id.clone()),
        Change::ResourcePut(r) => Event::ResourcePut(resource_to_pb(r)),
        Change::ResourceDeleted(id) => Event::ResourceDeleted(id.clone()),
        Change::DynamicPut(d) => Event::DynamicPut(dynamic_to_pb(d, entry.revision)),
        Change::DynamicDeleted(id) => Event::DynamicDeleted(id.clone()),
    };
    Ok(pb::WatchEvent {
        revision: entry.revision,
        tag: entry.tag,
        event: Some(event),
    })
}

// ---------------------------------------------------------------------------
// Resolution over a snapshot
// ---------------------------------------------------------------------------

/// [`ResourceView`] over a snapshot at time `now`: expired dynamic ACPs are
/// ignored.
struct View<'a> {
    snap: &'a StoreSnapshot,
    now: i64,
}

impl ResourceView for View<'_> {
    fn resource(&self, id: &str) -> Option<&Resource> {
        self.snap.resources.get(id)
    }

    fn is_acp(&self, id: &str) -> bool {
        // As the PDP reads it: a request on a dynamic ACP is one on an ACP.
        self.snap.holds_acp(id)
    }

    fn dynamic_acps(&self, target: &str) -> Vec<String> {
        self.snap
            .dynamic
            .values()
            .filter(|d| d.target == target && !d.is_expired(self.now))
            .map(|d| d.id.clone())
            .collect()
    }

    fn dynamic_target(&self, id: &str) -> Option<&str> {
        self.snap.dynamic.get(id).map(|d| d.target.as_str())
    }
}

fn resolve_status(e: ResolveError) -> Status {
    match e {
        ResolveError::UnknownResource(_) => Status::not_found(e.to_string()),
        ResolveError::ParentLoop(_) => Status::failed_precondition(e.to_string()),
        ResolveError::NoAcpi { .. } => Status::invalid_argument(e.to_string()),
    }
}

/// Compiles the policies of an applicable set for an authorization check.
fn compile_set(snap: &StoreSnapshot, set: &ApplicableSet, now: i64, target: &str) -> Policies {
    let mut out = Policies::default();
    let mut dynamic_ids: &[String] = &[];
    match set {
        ApplicableSet::Policies(list) => {
            for (id, kind) in list {
                let id: &str = id;
                if let Some(acp) = snap.acps.get(id) {
                    out.push(id, CompiledAcp::compile(id, acp), *kind);
                } else if let Some(d) = snap.dynamic.get(id).filter(|d| !d.is_expired(now)) {
                    // A dynamic ACP holds privileges only: nothing for a set
                    // of selfPrivileges (an acpi change, Decision 7).
                    if *kind == PrivilegeKind::Privileges
                        && let Ok(c) = CompiledAcp::from_privileges(id, &d.privileges)
                    {
                        out.compiled.push((c, PrivilegeKind::Privileges));
                    }
                } else {
                    tracing::debug!(acp = %id, "applicable ACP is not stored");
                }
            }
        }
        ApplicableSet::Default { rules, dynamic } => {
            if let Ok(c) = CompiledAcp::default_policy(target, rules) {
                out.compiled.push((c, PrivilegeKind::Privileges));
            }
            dynamic_ids = dynamic;
        }
    }
    for id in dynamic_ids {
        if let Some(d) = snap.dynamic.get(id).filter(|d| !d.is_expired(now))
            && let Ok(c) = CompiledAcp::from_privileges(id.as_str(), &d.privileges)
        {
            out.compiled.push((c, PrivilegeKind::Privileges));
        }
    }
    out
}

/// The resource types an authorization check passes to the engine.
#[derive(Debug, Clone, Copy, Default)]
struct Types {
    /// `ty` of the target (for `acod` `ty`).
    target: Option<u32>,
    /// `rrt`, the type of the resource a CREATE makes (for `acod` `chty`).
    created: Option<u32>,
}

/// One authorization check of a write: `operation` on `target` against
/// `policies`.
struct WriteCheck {
    operation: Operation,
    target: String,
    types: Types,
    policies: Policies,
    what: String,
}

/// The check of a CREATE of a resource of type `created` under `parent`
/// (TS-0001 9.6.2 for an ACP, TS-0003 7.1.5): CREATE in the parent's
/// applicable policies (TS-0001 10.2.3.1), with the parent's `ty` as the
/// target type and `created` as `rrt`, so that `acod` applies. Without a
/// parent registered in the PRP there is nothing to authorize against:
/// PERMISSION_DENIED (the admin, who passes every check, is not asked).
fn create_check(
    snap: &StoreSnapshot,
    now: i64,
    originator: &str,
    parent: Option<&str>,
    created: u32,
    what: &str,
) -> Result<WriteCheck, Status> {
    let kind = if created == TY_ACP {
        "an ACP"
    } else {
        "a resource"
    };
    let outside = |why: String| {
        Status::permission_denied(format!(
            "{originator} may not {what}: {why}; only the admin may create {kind} \
             outside a registered parent"
        ))
    };
    let Some(parent) = parent.filter(|p| !p.is_empty()) else {
        return Err(outside("it names no parent_id".into()));
    };
    // An ACP is a parent too, of a subscription or a transaction (spec
    // notes §2.2): the Create is judged by its pvs (TS-0003 7.1.1); a
    // dynamic ACP's, which it has none of, grant it to nobody.
    let parent_type = match snap.resources.get(parent) {
        Some(r) => r.resource_type,
        None if snap.holds_acp(parent) => TY_ACP,
        None => {
            return Err(outside(format!(
                "its parent {parent} is not a resource registered in the PRP"
            )));
        }
    };
    let view = View { snap, now };
    let set = applicable_policies(&view, parent).map_err(resolve_status)?;
    Ok(WriteCheck {
        operation: Operation::Create,
        target: parent.to_owned(),
        types: Types {
            target: Some(parent_type),
            created: Some(created),
        },
        policies: compile_set(snap, &set, now, parent),
        what: format!(
            "{what} (CREATE of resource type {created} in the applicable policies of its parent {parent})"
        ),
    })
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

impl PrpService {
    /// A service over `store`, loading its state; spawns the expiry sweeper
    /// (which stops when the last clone of the service is dropped).
    ///
    /// Must be called inside a tokio runtime.
    pub async fn new(config: &PrpConfig, store: Arc<dyn PolicyStore>) -> Result<Self, StoreError> {
        let loader = store.clone();
        let snapshot = tokio::task::spawn_blocking(move || loader.snapshot())
            .await
            .map_err(|e| StoreError::backend(format!("loading task failed: {e}")))??;
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let (closing, _) = watch::channel(false);
        let admin = (!config.admin_originator.is_empty()).then(|| config.admin_originator.clone());
        let inner = Arc::new(Inner {
            hosting: config.hosting.clone(),
            admin,
            dynamic_originators: config.dynamic_acp_originators.clone(),
            store,
            mirror: RwLock::new(snapshot),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            events,
            closing,
            id_counter: AtomicU64::new(0),
            writers: std::sync::OnceLock::new(),
        });
        spawn_sweeper(Arc::downgrade(&inner), config.sweep_interval);
        Ok(Self { inner })
    }

    /// Authorizes writes with the `<group>`s the PIP at `endpoint` holds
    /// (Decision 3; see the `writers` module): once, before the first
    /// write (later calls change nothing). Without it no ID is a group.
    pub fn ask_pip_for_writers(
        &self,
        endpoint: &str,
        tls: &authz_proto::tls::ClientTls,
    ) -> Result<(), String> {
        let writers = WriterGroups::new(Some(endpoint), tls)?;
        let _ = self.inner.writers.set(writers);
        Ok(())
    }

    /// The attributes `originator` writes with: none for the admin, who
    /// passes every check.
    async fn writer_attributes(
        &self,
        originator: &str,
        role_ids: &[String],
    ) -> Result<WriterAttributes, Status> {
        let malformed: Vec<ConversionError> = role_ids
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                authz_core::ids::check_role_id(r)
                    .err()
                    .map(|e| violation(format!("role_ids[{i}]"), e.to_string()))
            })
            .collect();
        if !malformed.is_empty() {
            return Err(invalid_argument(&malformed));
        }
        match self.inner.writers.get() {
            Some(writers) if !self.is_admin(originator) => {
                writers.of(originator, role_ids, &self.inner.hosting).await
            }
            _ => Ok(WriterAttributes::none()),
        }
    }

    /// A resource or ACP ID a read, a delete or a grant names, in the
    /// CSE-relative form records are held under: SP-relative `/cse-id/x`
    /// and absolute `//sp/cse-id/x` of this CSE name `x`, and `/cse-id` or
    /// `//sp/cse-id` the CSEBase `cse-id`, as in a decision (TS-0001 7.2);
    /// any other ID is kept as given.
    fn held_id(&self, id: String) -> String {
        match self.inner.hosting.held_resource_id(&id) {
            Some(held) if held != id => held.to_owned(),
            _ => id,
        }
    }

    /// The current revision of the served state.
    pub fn revision(&self) -> u64 {
        self.read(|s| s.revision)
    }

    /// The ID of the store served (see [`PolicyStore::store_id`]).
    pub fn store_id(&self) -> &str {
        self.inner.store.store_id()
    }

    /// Which change of this store's history `revision` is, as write answers
    /// name it for a caller that waits until a PDP decides with it (the
    /// tag 0 once the log no longer holds the revision).
    fn version(&self, revision: u64) -> Option<pb::StoreVersion> {
        Some(pb::StoreVersion {
            store_id: self.store_id().to_owned(),
            revision,
            tag: self.inner.store.tag_at(revision).unwrap_or(0),
        })
    }

    /// A dynamic ACP as a write answers it, with its [`Self::version`].
    fn dynamic_record(&self, d: &DynamicAcp, revision: u64) -> pb::DynamicAcpRecord {
        pb::DynamicAcpRecord {
            version: self.version(revision),
            ..dynamic_to_pb(d, revision)
        }
    }

    /// Ends every open `Watch` stream and stops the expiry sweeper (call on
    /// shutdown, so that a graceful server shutdown does not wait for
    /// watchers).
    pub fn shutdown(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Deletes every expired dynamic ACP (one change, `dynamic_deleted`,
    /// each); the sweeper calls this periodically. Returns how many it
    /// deleted.
    pub async fn sweep_expired(&self) -> Result<usize, Status> {
        let now = now_secs();
        let expired: Vec<String> = self.read(|s| {
            s.dynamic
                .values()
                .filter(|d| d.is_expired(now))
                .map(|d| d.id.clone())
                .collect()
        });
        let mut deleted = 0;
        for id in expired {
            let guard = self.lock_writes().await;
            // Replaced (with a later expiry) or removed since it was listed.
            if !self.read(|s| s.dynamic.get(&id).is_some_and(|d| d.is_expired(now))) {
                continue;
            }
            self.commit(guard, Mutation::DeleteDynamic(id.clone()))
                .await?;
            tracing::info!(dynamic_acp = %id, "dynamic ACP expired");
            deleted += 1;
        }
        Ok(deleted)
    }

    fn read<T>(&self, f: impl FnOnce(&StoreSnapshot) -> T) -> T {
        let guard = self
            .inner
            .mirror
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&guard)
    }

    /// Takes the write lock: a writer holds it from reading the mirror for
    /// its checks until [`Self::commit`] has finished with its change.
    async fn lock_writes(&self) -> WriteGuard {
        WriteGuard {
            _held: self.inner.write_lock.clone().lock_owned().await,
        }
    }

    /// Applies a write under the write lock `guard`: commits it to the
    /// store (durable when that returns), applies it to the mirror and
    /// broadcasts it to watchers, as one unit that cancelling the caller
    /// cannot split. The unit runs on a blocking task that owns the guard,
    /// and a blocking task runs to its end even when its awaiter is dropped
    /// (a client that disconnects, a deadline, a stream reset). So a change
    /// on disk is always also in the mirror and on the broadcast, in
    /// revision order, before the next writer reads the mirror.
    async fn commit(&self, guard: WriteGuard, mutation: Mutation) -> Result<LogEntry, Status> {
        self.commit_all(guard, vec![mutation])
            .await?
            .pop()
            .ok_or_else(|| Status::internal("a committed write left no log entry"))
    }

    /// [`Self::commit`] of several writes in order, under one `guard`, so
    /// that no other write comes between them: each is its own revision
    /// (and watch event). Stops at the first that fails; the ones before
    /// stay committed.
    async fn commit_all(
        &self,
        guard: WriteGuard,
        mutations: Vec<Mutation>,
    ) -> Result<Vec<LogEntry>, Status> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let result = mutations
                .into_iter()
                .map(|m| inner.commit_unit(m))
                .collect::<Result<Vec<_>, _>>();
            drop(guard);
            result
        })
        .await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
        .map_err(store_status)
    }

    /// `delete` preceded by the deletion of every dynamic ACP bound to `id`:
    /// a `dai` grant is a child `<accessControlPolicy>` of its target
    /// (TS-0003 7.3.2.2), gone with it, so that whatever is registered under
    /// the ID later inherits none. Committed with [`Self::commit_all`], the
    /// grants first: a crash between leaves them gone and the record still
    /// there, never a grant without its target.
    fn deleting_bound_grants(&self, id: &str, delete: Mutation) -> Vec<Mutation> {
        let mut writes: Vec<Mutation> = self.read(|snap| {
            snap.dynamic
                .values()
                .filter(|d| d.target == id)
                .map(|d| Mutation::DeleteDynamic(d.id.clone()))
                .collect()
        });
        writes.push(delete);
        writes
    }

    fn is_one_of(&self, originator: &str, list: &[&str]) -> bool {
        let canon = self.inner.hosting.canonicalize(originator).ok();
        list.iter().any(|candidate| {
            *candidate == originator
                || match (&canon, self.inner.hosting.canonicalize(candidate)) {
                    (Some(a), Ok(b)) => *a == b,
                    _ => false,
                }
        })
    }

    fn is_admin(&self, originator: &str) -> bool {
        match &self.inner.admin {
            Some(admin) => self.is_one_of(originator, &[admin.as_str()]),
            None => false,
        }
    }

    /// [`Self::authorize`] for one [`WriteCheck`].
    fn authorize_write(
        &self,
        originator: &str,
        attrs: &WriterAttributes,
        check: &WriteCheck,
    ) -> Result<(), Status> {
        self.authorize(
            originator,
            attrs,
            check.operation,
            &check.target,
            check.types,
            &check.policies,
            &check.what,
        )
    }

    /// Authorizes `operation` on `target` against `policies`; admin passes.
    /// (A refusal is logged where the call ends, by the servers' layer
    /// `authz_proto::serving::RefusalLogLayer`.)
    #[allow(clippy::too_many_arguments)]
    fn authorize(
        &self,
        originator: &str,
        attrs: &WriterAttributes,
        operation: Operation,
        target: &str,
        types: Types,
        policies: &Policies,
        what: &str,
    ) -> Result<(), Status> {
        if self.is_admin(originator) {
            return Ok(());
        }
        let mut request = DecisionRequest::new(originator, operation, target, Utc::now());
        request.authenticated = true;
        request.target_type = types.target;
        request.resource_type = types.created;
        let applicable: Vec<Applicable<'_>> = policies
            .compiled
            .iter()
            .map(|(acp, kind)| Applicable { acp, kind: *kind })
            .collect();
        let decision = decide(
            &request,
            &self.inner.hosting,
            &applicable,
            attrs.source(),
            &DecideOptions {
                explain: true,
                // Verified by the PIP already (TS-0003 7.4.3).
                granted_roles: attrs.verified_roles(),
            },
        );
        if decision.effect == Effect::Permit {
            Ok(())
        } else if !policies.uncompiled.is_empty() {
            // The rules that may have named the writer are in an ACP that
            // grants nothing now: say that, not "no rule names you".
            Err(Status::permission_denied(format!(
                "{originator} may not {what}: applicable ACPs stored by an earlier version no \
                 longer compile and grant nothing until the admin updates or deletes them: {}; \
                 of the others: {}",
                policies.uncompiled.join("; "),
                summary(&decision)
            )))
        } else {
            Err(Status::permission_denied(format!(
                "{originator} may not {what}: {}",
                summary(&decision)
            )))
        }
    }
}

/// An ID a request names must not be empty (INVALID_ARGUMENT naming the
/// field, not NOT_FOUND).
/// The ID a read or delete names: mandatory, and one a record could have
/// (no white space or control character, at most 2048 bytes), else
/// INVALID_ARGUMENT naming `field` rather than a NOT_FOUND hiding the typo.
/// (An empty `/` segment is not refused here: a store written before such
/// IDs were refused may hold one, which must stay readable and deletable.)
fn check_id_field(id: &str, field: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(invalid_argument(&[violation(field, "is mandatory")]));
    }
    match unusable_id(id, field) {
        Some(v) => Err(invalid_argument(&[v])),
        None => Ok(()),
    }
}

/// A write's originator is an AE-ID or CSE-ID, checked as a decision's
/// (Decision 9), in the absolute form it is compared in too: one that is
/// none is the request's fault, INVALID_ARGUMENT naming `originator`, not a
/// PERMISSION_DENIED (or a PIP's refusal) that would hide the typo.
fn check_originator(hosting: &HostingContext, originator: &str) -> Result<(), Status> {
    if originator.is_empty() {
        return Err(invalid_argument(&[violation("originator", "is mandatory")]));
    }
    authz_core::ids::check_originator_id(originator)
        .and_then(|()| hosting.check_absolute_length(originator))
        .map_err(|e| invalid_argument(&[violation("originator", e.to_string())]))
}

/// Converts and validates a wire ACP: `resource_id` mandatory, conversion
/// errors, then the core validator.
fn acp_input(
    acp: Option<&pb::AccessControlPolicy>,
) -> Result<(String, AccessControlPolicy), Vec<ConversionError>> {
    let Some(acp) = acp else {
        return Err(vec![violation("acp", "is mandatory")]);
    };
    if let Some(too_large) = authz_proto::convert::record_size_violation(acp, "acp") {
        return Err(vec![too_large]);
    }
    let mut errors = Vec::new();
    let id = acp.resource_id.clone().filter(|id| !id.is_empty());
    match &id {
        None => errors.push(violation("resource_id", "is mandatory: it is the ACP's ID")),
        Some(id) => errors.extend(id_problem(id, "resource_id")),
    }
    let model = match acp_from_pb(acp) {
        Ok(m) => Some(m),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    if let Some(model) = &model {
        // Named as the wire names them.
        errors.extend(
            model
                .common_attribute_errors()
                .into_iter()
                .map(|(name, message)| {
                    let field = match name {
                        "pi" => "parent_id",
                        "rn" => "resource_name",
                        // Where the caller gave it: the typed field, or
                        // `other_attributes` (acp_from_pb refuses both).
                        "et" if acp.expiration_time.is_empty() => "other_attributes.et",
                        "et" => "expiration_time",
                        "ty" => "other_attributes.ty",
                        other => other,
                    };
                    violation(field, message)
                }),
        );
    }
    if let (Some(id), Some(model)) = (&id, &model)
        && let Err(e) = CompiledAcp::compile(id.as_str(), model)
    {
        errors.extend(validation_errors(e));
    }
    match (id, model) {
        (Some(id), Some(model)) if errors.is_empty() => Ok((id, model)),
        _ => Err(errors),
    }
}

/// A wire time as whole seconds, checked as every service checks one
/// ([`timestamp_field`]): a time the PDP could not convert would be stored
/// here and dropped there, so the two would disagree for good. Lifetimes
/// are kept to the second, rounded down: a grant never outlives its time.
fn timestamp_secs(ts: &prost_types::Timestamp, field: &str) -> Result<i64, ConversionError> {
    timestamp_field(ts, field).map(|t| t.timestamp())
}

fn spawn_sweeper(inner: Weak<Inner>, every: Duration) {
    let every = every.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Hold the service only while there is work, so that dropping
            // the last handle closes the store promptly.
            let Some(inner) = inner.upgrade() else { break };
            if *inner.closing.borrow() {
                break;
            }
            let service = PrpService { inner };
            let now = now_secs();
            if !service.read(|s| s.dynamic.values().any(|d| d.is_expired(now))) {
                continue;
            }
            if let Err(e) = service.sweep_expired().await {
                tracing::warn!(error = %e, "sweeping expired dynamic ACPs failed");
            }
        }
    });
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl PolicyRetrievalPoint for PrpService {
    async fn create_acp(
        &self,
        request: Request<pb::CreateAcpRequest>,
    ) -> Result<Response<pb::AcpRecord>, Status> {
        let req = request.into_inner();
        check_originator(&self.inner.hosting, &req.originator)?;
        let (id, mut acp) = acp_input(req.acp.as_ref()).map_err(|e| invalid_argument(&e))?;
        // An attribute given as null is absent.
        acp.other.retain(|_, v| !v.is_null());
        check_entry_lengths(&acp, &self.inner.hosting)
            .map_err(|e| invalid_argument(&validation_errors(e)))?;
        check_create(&acp)
            .map_err(|e| invalid_argument(&acp_validation_errors(e, req.acp.as_ref())))?;
        // A child is hosted where its parent is (TS-0001 7.2): an ACP of
        // this CSE under another CSE's resource would be no child of any.
        if let Some(pi) = acp.parent_id.as_deref()
            && self.inner.hosting.held_resource_id(pi).is_none()
        {
            return Err(invalid_argument(&[violation(
                "parent_id",
                format!(
                    "{pi} is a resource of another CSE than this one (//{}/{}); an ACP \
                     stored here is a child of one of its own resources",
                    self.inner.hosting.sp_fqdn(),
                    self.inner.hosting.cse_id()
                ),
            )]));
        }
        // Before the write lock: a slow PIP holds up no other write.
        let attrs = self
            .writer_attributes(&req.originator, &req.role_ids)
            .await?;
        let guard = self.lock_writes().await;
        // The store's own precondition, checked again when it commits: the
        // ID must not name an ACP, a dynamic ACP or a resource (a request
        // to an ACP's ID is judged by its pvs, TS-0001 10.2.3.1).
        self.read(|s| s.check(Mutation::CreateAcp(acp.clone())))
            .map_err(|e| id_conflict(e, "resource_id"))?;
        // The parent as resources are held, CSE-relative (TS-0001 7.2): a
        // `pi` in another form names the same parent, and passes its checks
        // (its type, who may create under it) only as that parent.
        let parent = acp
            .parent_id
            .as_deref()
            .map(|pi| self.inner.hosting.held_resource_id(pi).unwrap_or(pi));
        // An ACP is a child of a CSEBase, an AE or a remoteCSE only.
        let misplaced = self.read(|s| {
            let pi = parent?;
            // A stored ACP is a parent of type 1 (its children are
            // subscriptions and transactions only, spec notes §2.2), and so
            // is a dynamic ACP (TS-0003 7.3.2.2: an ACP too).
            if s.holds_acp(pi) {
                return Some((pi.to_owned(), TY_ACP));
            }
            s.resources
                .get(pi)
                .filter(|parent| !ACP_PARENT_TYPES.contains(&parent.resource_type))
                .map(|parent| (parent.resource_id.clone(), parent.resource_type))
        });
        if let Some((parent, ty)) = misplaced {
            return Err(invalid_argument(&[violation(
                "parent_id",
                format!(
                    "{parent} is of type {ty}: an ACP is created under a CSEBase (5), an AE \
                     (2) or a remoteCSE (16) only"
                ),
            )]));
        }
        // A resourceName is unique among its parent's children (TS-0001
        // 9.6.1.3), so `parent/rn` names one resource.
        if let (Some(pi), Some(rn)) = (parent, acp.resource_name.as_deref())
            && let Some(sibling) = self.read(|s| {
                s.acps
                    .values()
                    .find(|a| {
                        a.resource_name.as_deref() == Some(rn)
                            && a.parent_id
                                .as_deref()
                                .map(|p| self.inner.hosting.held_resource_id(p).unwrap_or(p))
                                == Some(pi)
                    })
                    .map(|a| a.id().unwrap_or_default().to_owned())
            })
        {
            return Err(Status::already_exists(format!(
                "resource_name: ACP {sibling} under {pi} is named {rn} already; a resourceName is \
                 unique among its parent's children (TS-0001 9.6.1.3)"
            )));
        }
        // A Create is addressed to the parent and judged by the parent's
        // policies (TS-0001 9.6.2, TS-0003 7.1.1): the new ACP's own pvs
        // govern requests to it only once it exists.
        if !self.is_admin(&req.originator) {
            // An ID that resources still reference (its ACP was deleted)
            // would hand them to whoever re-creates it: the hosting CSE
            // assigns IDs in oneM2M, so only the admin may reuse one.
            if let Some(user) = self.read(|s| {
                s.resources
                    .values()
                    .find(|r| r.acpi.iter().flatten().any(|a| *a == id))
                    .map(|r| r.resource_id.clone())
            }) {
                return Err(Status::permission_denied(format!(
                    "{} may not create ACP {id}: resource {user} still references that ID in its acpi; only the admin may re-create it",
                    req.originator
                )));
            }
            let now = now_secs();
            let check = self.read(|snap| {
                create_check(
                    snap,
                    now,
                    &req.originator,
                    parent,
                    TY_ACP,
                    &format!("create ACP {id}"),
                )
            })?;
            self.authorize_write(&req.originator, &attrs, &check)?;
        }
        let entry = self.commit(guard, Mutation::CreateAcp(acp.clone())).await?;
        tracing::info!(acp = %id, revision = entry.revision, "ACP created");
        Ok(Response::new(pb::AcpRecord {
            acp: Some(stored_acp_to_pb(&acp)?),
            revision: entry.revision,
            version: self.version(entry.revision),
        }))
    }

    async fn update_acp(
        &self,
        request: Request<pb::UpdateAcpRequest>,
    ) -> Result<Response<pb::AcpRecord>, Status> {
        let req = request.into_inner();
        check_originator(&self.inner.hosting, &req.originator)?;
        let (id, mut acp) = acp_input(req.acp.as_ref()).map_err(|e| invalid_argument(&e))?;
        check_entry_lengths(&acp, &self.inner.hosting)
            .map_err(|e| invalid_argument(&validation_errors(e)))?;
        // Before the write lock: a slow PIP holds up no other write.
        let attrs = self
            .writer_attributes(&req.originator, &req.role_ids)
            .await?;
        let guard = self.lock_writes().await;
        let Some(stored) = self.read(|s| s.acps.get(&id).cloned()) else {
            return Err(Status::not_found(format!("ACP {id} not found")));
        };
        // `pi` is read-only (TS-0001 9.6.1.3), as for resources: a move
        // would pass the new parent's CREATE check by an update. The same
        // parent in another ID form (TS-0001 7.2) is no change.
        let held = |pi: &str| {
            let hosting = &self.inner.hosting;
            hosting.held_resource_id(pi).unwrap_or(pi).to_owned()
        };
        if acp
            .parent_id
            .as_deref()
            .is_some_and(|p| Some(held(p)) != stored.parent_id.as_deref().map(held))
        {
            return Err(invalid_argument(&[violation(
                "parent_id",
                format!(
                    "pi of ACP {id} is {:?} and cannot change (read-only, TS-0001 9.6.1.3)",
                    stored.parent_id.as_deref().unwrap_or("")
                ),
            )]));
        }
        // The parent as stored, in whatever form the update named it.
        acp.parent_id = stored.parent_id.clone();
        // An update changes what it gives: absent pv, pvs, rn and other
        // attributes keep their stored value.
        if acp.privileges.is_none() {
            acp.privileges = stored.privileges.clone();
        }
        if acp.self_privileges.is_none() {
            acp.self_privileges = stored.self_privileges.clone();
        }
        // `rn` is write-once (TS-0001 9.6.1.3): given again, it must be the
        // stored one.
        match (&acp.resource_name, &stored.resource_name) {
            (None, _) => acp.resource_name = stored.resource_name.clone(),
            (Some(new), old) if Some(new) != old.as_ref() => {
                return Err(invalid_argument(&[violation(
                    "resource_name",
                    format!(
                        "rn of ACP {id} is {:?} and cannot change (write-once, TS-0001 9.6.1.3)",
                        old.as_deref().unwrap_or("")
                    ),
                )]));
            }
            _ => {}
        }
        // Kept unless a later version refuses the attribute (an `acpi`
        // stored before it was refused): an update then repairs the ACP.
        for (k, v) in &stored.other {
            if authz_core::json::other_attribute_name_error(k, false).is_none() {
                acp.other.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        // An attribute the update gives as null is deleted (oneM2M's
        // Update), not stored as null; `pv`, `pvs` and `rn` given as null
        // are absent above, so kept.
        acp.other.retain(|_, v| !v.is_null());
        if acp
            .self_privileges
            .as_ref()
            .is_none_or(|p| p.rules.is_empty())
        {
            return Err(invalid_argument(&[violation("pvs.acr", PVS_REMOVED)]));
        }
        // On the ACP the update leaves: an update that omits pv keeps the
        // stored, non-NULL one.
        check_authorization_addresses(&acp)
            .map_err(|e| invalid_argument(&acp_validation_errors(e, req.acp.as_ref())))?;
        self.authorize(
            &req.originator,
            &attrs,
            Operation::Update,
            &id,
            Types::default(),
            &stored_pvs(&id, &stored),
            "update this ACP (UPDATE in its pvs)",
        )?;
        // What the update keeps of the stored ACP must still compile: a
        // `pv` or `pvs` stored by an earlier version that a later check
        // refuses would go on granting nothing while the update reported
        // success. (What the update gives compiled in `acp_input`.)
        if let Err(e) = CompiledAcp::compile(&id, &acp) {
            let mut errors = validation_errors(e);
            for e in &mut errors {
                e.message.push_str(
                    " (stored, and kept by this update, which does not give it: give a corrected one)",
                );
            }
            return Err(invalid_argument(&errors));
        }
        // No change (the same file applied again): nothing is written, no
        // revision made, nothing sent to the PDPs (whose PEPs would drop
        // their caches); the answer names the current revision, as for a
        // resource.
        if acp == stored {
            let revision = self.read(|s| s.revision);
            return Ok(Response::new(pb::AcpRecord {
                acp: Some(stored_acp_to_pb(&acp)?),
                revision,
                version: self.version(revision),
            }));
        }
        let entry = self.commit(guard, Mutation::UpdateAcp(acp.clone())).await?;
        tracing::info!(acp = %id, revision = entry.revision, "ACP updated");
        Ok(Response::new(pb::AcpRecord {
            acp: Some(stored_acp_to_pb(&acp)?),
            revision: entry.revision,
            version: self.version(entry.revision),
        }))
    }

    async fn get_acp(
        &self,
        request: Request<pb::GetAcpRequest>,
    ) -> Result<Response<pb::AcpRecord>, Status> {
        let id = request.into_inner().acp_id;
        check_id_field(&id, "acp_id")?;
        let id = self.held_id(id);
        let (acp, revision) = self.read(|s| (s.acps.get(&id).cloned(), s.revision));
        let acp = acp.ok_or_else(|| Status::not_found(format!("ACP {id} not found")))?;
        Ok(Response::new(pb::AcpRecord {
            acp: Some(stored_acp_to_pb(&acp)?),
            revision,
            version: self.version(revision),
        }))
    }

    async fn delete_acp(
        &self,
        request: Request<pb::DeleteAcpRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let req = request.into_inner();
        check_originator(&self.inner.hosting, &req.originator)?;
        check_id_field(&req.acp_id, "acp_id")?;
        let id = self.held_id(req.acp_id);
        // Before the write lock: a slow PIP holds up no other write.
        let attrs = self
            .writer_attributes(&req.originator, &req.role_ids)
            .await?;
        let guard = self.lock_writes().await;
        let Some(stored) = self.read(|s| s.acps.get(&id).cloned()) else {
            return Err(Status::not_found(format!("ACP {id} not found")));
        };
        self.authorize(
            &req.originator,
            &attrs,
            Operation::Delete,
            &id,
            Types::default(),
            &stored_pvs(&id, &stored),
            "delete this ACP (DELETE in its pvs)",
        )?;
        let writes = self.deleting_bound_grants(&id, Mutation::DeleteAcp(id.clone()));
        let entries = self.commit_all(guard, writes).await?;
        let revision = entries.last().map_or(0, |e| e.revision);
        tracing::info!(acp = %id, revision, "ACP deleted");
        Ok(Response::new(pb::WriteResponse {
            revision,
            version: self.version(revision),
        }))
    }

    async fn list_acps(
        &self,
        request: Request<pb::ListAcpsRequest>,
    ) -> Result<Response<pb::ListAcpsResponse>, Status> {
        use std::ops::Bound;
        let after = request.into_inner().page_token;
        self.read(|s| {
            let from = if after.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(after.clone())
            };
            // A page of about the size of a snapshot part, so that a store
            // of any size lists: no one message outgrows what a client
            // decodes.
            let mut page = pb::ListAcpsResponse {
                revision: s.revision,
                ..Default::default()
            };
            let mut size = 0usize;
            for (id, acp) in s.acps.range((from, Bound::Unbounded)) {
                let acp = stored_acp_to_pb(acp)?;
                let len = listed_len(&acp);
                if size > 0 && size + len > SNAPSHOT_PART_BYTES {
                    break;
                }
                size += len;
                page.next_page_token.clone_from(id);
                page.acps.push(acp);
            }
            let last = s.acps.keys().next_back();
            if last.is_none_or(|last| *last == page.next_page_token) {
                page.next_page_token.clear();
            }
            Ok(Response::new(page))
        })
    }

    async fn put_resource(
        &self,
        request: Request<pb::PutResourceRequest>,
    ) -> Result<Response<pb::ResourceRecord>, Status> {
        let req = request.into_inner();
        check_originator(&self.inner.hosting, &req.originator)?;
        let Some(wire) = req.resource.as_ref() else {
            return Err(invalid_argument(&[violation("resource", "is mandatory")]));
        };
        if let Some(too_large) = authz_proto::convert::record_size_violation(wire, "resource") {
            return Err(invalid_argument(&[too_large]));
        }
        let mut resource = resource_from_pb(wire, "resource").map_err(|e| invalid_argument(&e))?;
        // `acpi` names ACPs and `daci` DACs in any ID form (TS-0001 7.2);
        // they are this CSE's, held under their CSE-relative IDs, so that is
        // how they are stored and resolved. One of another CSE would never
        // resolve (and a `daci` that does not resolve would let the
        // parent's DAC stand in for a DAC that turns Dynamic Authorization
        // off).
        let mut foreign = Vec::new();
        for (field, what, list) in [
            ("acpi", "an ACP", &mut resource.acpi),
            ("daci", "a DAC", &mut resource.daci),
        ] {
            for (i, entry) in list.iter_mut().flatten().enumerate() {
                match self.inner.hosting.cse_relative(entry) {
                    Some(relative) => *entry = relative.to_owned(),
                    None => foreign.push(violation(
                        format!("resource.{field}[{i}]"),
                        format!(
                            "{entry} is not {what} of this CSE (//{}/{}); only its own are held and resolved here",
                            self.inner.hosting.sp_fqdn(),
                            self.inner.hosting.cse_id()
                        ),
                    )),
                }
            }
        }
        // The same ACP twice (in any form) adds nothing but work to every
        // decision on the resource: a mistake, named.
        for (field, list) in [("acpi", &resource.acpi), ("daci", &resource.daci)] {
            let mut first: std::collections::HashMap<&str, usize> = Default::default();
            for (i, entry) in list.iter().flatten().enumerate() {
                if let Some(j) = first.insert(entry.as_str(), i) {
                    first.insert(entry.as_str(), j);
                    foreign.push(violation(
                        format!("resource.{field}[{i}]"),
                        format!("{entry} is listed already, as {field}[{j}]"),
                    ));
                }
            }
        }
        // Every ID as the PDP reads a target (TS-0001 7.2): one with an
        // empty `/` segment names no resource, and the record's own and
        // its parent's are held CSE-relative, the form a decision's
        // target is read in, so `/cse/x` or `//sp/cse/x` would never be
        // found.
        let mut ids: Vec<(String, &str)> = vec![(
            "resource.resource_id".to_owned(),
            resource.resource_id.as_str(),
        )];
        ids.extend(
            resource
                .parent_id
                .as_deref()
                .map(|p| ("resource.parent_id".to_owned(), p)),
        );
        for (i, a) in resource.acpi.iter().flatten().enumerate() {
            ids.push((format!("resource.acpi[{i}]"), a.as_str()));
        }
        for (i, d) in resource.daci.iter().flatten().enumerate() {
            ids.push((format!("resource.daci[{i}]"), d.as_str()));
        }
        for (field, id) in ids {
            if let Err(e) = authz_core::ids::check_resource_id(id) {
                foreign.push(violation(field, e.to_string()));
            } else if id.starts_with('/') && !field.contains("[") {
                foreign.push(violation(
                    field,
                    format!(
                        "{id} is held under its CSE-relative ID (no leading /), the form \
                         a decision's target is read in"
                    ),
                ));
            }
        }
        // The originator IDs are compared in absolute form (Decision 2),
        // which must be an ID too: one a relative ID grows past the bound
        // would name nobody, as an `acor` entry or a write's originator
        // that long is refused.
        for (field, id) in [
            ("creator", &resource.creator),
            ("custodian", &resource.custodian),
            ("ae_id", &resource.ae_id),
            ("cse_id", &resource.cse_id),
        ] {
            if let Some(id) = id
                && let Err(e) = self.inner.hosting.check_absolute_length(id)
            {
                foreign.push(violation(format!("resource.{field}"), e.to_string()));
            }
        }
        if !foreign.is_empty() {
            return Err(invalid_argument(&foreign));
        }
        let id = resource.resource_id.clone();
        // Before the write lock: a slow PIP holds up no other write.
        let attrs = self
            .writer_attributes(&req.originator, &req.role_ids)
            .await?;
        let guard = self.lock_writes().await;
        // A dynamic ACP is a grant bound to its target (Decision 7), not a
        // policy other resources can reference: named in an `acpi` it would
        // extend a Direct Dynamic Authorization to resources it was never
        // asked for (resolution ignores it there too).
        let dynamic_refs: Vec<ConversionError> = self.read(|s| {
            resource
                .acpi
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, a)| {
                    s.dynamic.get(a).map(|d| {
                        violation(
                            format!("resource.acpi[{i}]"),
                            format!(
                                "{a} is a dynamic ACP, a grant bound to {} (Decision 7), \
                                 not an ACP a resource can reference",
                                d.target
                            ),
                        )
                    })
                })
                .collect()
        });
        if !dynamic_refs.is_empty() {
            return Err(invalid_argument(&dynamic_refs));
        }
        // A reference the put adds must name a stored ACP: an `acpi` of
        // missing ACPs gives its resource no policy at all, and its `acpi`
        // could then be changed by no one but the admin (an `acpi` change is
        // judged by the pvs of the ACPs referenced now, spec notes §2.3).
        // References the resource holds already are kept as they are, so a
        // put of its other attributes goes through after an ACP's deletion.
        // (A `daci` entry may name a DAC registered later, even a child of
        // the resource; only the admin may register a DAC ID that a `daci`
        // names, below.)
        let missing_refs: Vec<ConversionError> = self.read(|s| {
            let held: &[String] = s
                .resources
                .get(&id)
                .and_then(|r| r.acpi.as_deref())
                .unwrap_or_default();
            resource
                .acpi
                .iter()
                .flatten()
                .enumerate()
                // Entries are CSE-relative by now, as ACPs are held.
                .filter(|(_, a)| !held.contains(a) && !s.acps.contains_key(a.as_str()))
                .map(|(i, a)| {
                    violation(
                        format!("resource.acpi[{i}]"),
                        format!("{a} names no stored ACP; create the ACP first"),
                    )
                })
                .collect()
        });
        if !missing_refs.is_empty() {
            return Err(invalid_argument(&missing_refs));
        }
        // `cr` is read-only once the resource exists (TS-0001 9.6.1.3): a
        // put that leaves it out keeps it, so an unchanged bundle without
        // `cr` applies again.
        if resource.creator.is_none() {
            resource.creator = self.read(|s| s.resources.get(&id).and_then(|r| r.creator.clone()));
        }
        // `cr` is the originator of the successful Create (TS-0001
        // 9.6.1.3.2): a registration by anyone but the admin (who loads the
        // resources of others) is by its creator, named or not.
        if !self.is_admin(&req.originator) && self.read(|s| !s.resources.contains_key(&id)) {
            match &resource.creator {
                None => resource.creator = Some(req.originator.clone()),
                Some(cr) if self.is_one_of(cr, &[req.originator.as_str()]) => {}
                Some(cr) => {
                    return Err(invalid_argument(&[violation(
                        "resource.creator",
                        format!(
                            "{cr} is not {}: the creator of a resource is the originator of \
                             its Create (TS-0001 9.6.1.3.2); only the admin registers \
                             resources for others",
                            req.originator
                        ),
                    )]));
                }
            }
        }
        // The same originator in another ID form (Decision 2: `Cae` is
        // `//sp/cse/Cae`) is the same `cr`, `aei` or `csi`: the stored
        // spelling stays, so a bundle naming it otherwise applies again.
        if let Some(old) = self.read(|s| s.resources.get(&id).cloned()) {
            for (was, now) in [
                (&old.creator, &mut resource.creator),
                (&old.ae_id, &mut resource.ae_id),
                (&old.cse_id, &mut resource.cse_id),
            ] {
                if let (Some(was), Some(given)) = (was, now.as_deref())
                    && was != given
                    && self.is_one_of(given, &[was.as_str()])
                {
                    *now = Some(was.clone());
                }
            }
        }
        // `pi`, `ty` and `cr` are fixed once a resource exists, for every
        // originator, the admin included (RO, NP on Update, TS-0001
        // 9.6.1.3; see `FixedAttribute`). Putting the same values again is
        // no change. The store checks this again when it commits; here each
        // changed field is named.
        let fixed = self.read(|s| {
            s.resources
                .get(&id)
                .map(|old| {
                    let mut fixed = fixed_violations(old, &resource);
                    fixed.extend(fixed_member_ids(old, &resource));
                    fixed
                })
                .unwrap_or_default()
        });
        if !fixed.is_empty() {
            return Err(invalid_argument(&fixed));
        }
        // The store's own precondition, checked again when it commits: the
        // ID must not name an ACP or a dynamic ACP (TS-0001 10.2.3.1).
        self.read(|s| s.check(Mutation::PutResource(resource.clone())))
            .map_err(|e| id_conflict(e, "resource.resource_id"))?;
        // Under an ACP (stored or dynamic) only a subscription or a
        // transaction (spec notes §2.2): anything else there would resolve
        // its policies nowhere.
        if let Some(parent) = resource.parent_id.as_deref()
            && !ACP_CHILD_TYPES.contains(&resource.resource_type)
            && self.read(|s| s.holds_acp(parent))
        {
            return Err(invalid_argument(&[violation(
                "resource.parent_id",
                format!(
                    "{parent} is an ACP, whose children are <subscription> (ty 23) and \
                     <transaction> (ty 51) only (spec notes §2.2), not ty {}",
                    resource.resource_type
                ),
            )]));
        }
        if !self.is_admin(&req.originator) {
            let now = now_secs();
            // Each check, with another that satisfies it as well.
            let checks = self.read(|snap| -> Result<Vec<(WriteCheck, Option<WriteCheck>)>, Status> {
                let Some(old) = snap.resources.get(&id) else {
                    // An ID that stored resources still name as their
                    // parent, or that a live dynamic ACP is bound to (its
                    // resource was deleted), would hand those children,
                    // whose policies are their parent's (TS-0001 10.2.3.1),
                    // or that grant to whoever registers it again: as for
                    // ACP IDs, only the admin may reuse one.
                    let child = snap
                        .resources
                        .values()
                        .find(|r| r.parent_id.as_deref() == Some(id.as_str()))
                        .map(|r| format!("resource {} still names it as its parent", r.resource_id));
                    let bound = snap
                        .dynamic
                        .values()
                        .find(|d| d.target == id && !d.is_expired(now))
                        .map(|d| format!("dynamic ACP {} is still bound to it", d.id));
                    // A DAC ID that resources' `daci` still name: whoever
                    // registered it would set their `dae` and `dap`.
                    let consulted = snap
                        .resources
                        .values()
                        .find(|r| r.daci.iter().flatten().any(|d| *d == id))
                        .map(|r| {
                            format!("resource {} still references it in its daci", r.resource_id)
                        });
                    if let Some(why) = child.or(bound).or(consulted) {
                        return Err(Status::permission_denied(format!(
                            "{} may not register resource {id}: {why}; only the admin may re-create it",
                            req.originator
                        )));
                    }
                    // The AE-ID or CSE-ID of an `<AE>` or `<remoteCSE>`
                    // takes every `<group>` membership listed under the
                    // resource's ID (spec notes §2.4), which groups may
                    // still list after the resource was deleted: who
                    // registers it again with another `aei` would hold
                    // them. Such a registration is the admin's (the hosting
                    // CSE's), as re-creating a referenced ACP is.
                    if let Some(member) = resource.member_originator() {
                        return Err(Status::permission_denied(format!(
                            "{} may not register resource {id} with the originator ID {member} \
                             (aei/csi): it would take the <group> memberships listed under \
                             {id}; only the admin may",
                            req.originator
                        )));
                    }
                    // A new resource: the hosting CSE's Create of it, which
                    // CREATE in its parent's applicable policies allows.
                    return Ok(vec![(
                        create_check(
                            snap,
                            now,
                            &req.originator,
                            resource.parent_id.as_deref(),
                            resource.resource_type,
                            &format!("register resource {id}"),
                        )?,
                        None,
                    )]);
                };
                let update = |policies, what: &str| WriteCheck {
                    operation: Operation::Update,
                    target: id.clone(),
                    types: Types::default(),
                    policies,
                    what: what.to_owned(),
                };
                let mut checks = Vec::new();
                // `cstn` replaces the creator in the default policy, so
                // changing it is changing who holds the resource: like
                // `acpi`, it needs UPDATE in the pvs. A type without `acpi`
                // (a contentInstance) takes its parent's policies, never a
                // default policy of its own (spec notes §2.3): there a
                // custodian change is an Update like any other.
                let has_acpi = authz_core::resources::type_has_acpi(old.resource_type);
                let acpi_changed = old.acpi != resource.acpi;
                let custodian_changed = has_acpi && old.custodian != resource.custodian;
                if acpi_changed || custodian_changed {
                    // TS-0001 9.6.1.3.2: UPDATE in the pvs of the ACPs
                    // referenced now; with acpi not set, the default
                    // policy. The PDP's rule for `updates_acpi`, from core.
                    let policies = compile_set(snap, &acpi_change_set(old), now, &id);
                    let changed = match (acpi_changed, custodian_changed) {
                        (true, true) => "acpi and custodian",
                        (true, false) => "acpi",
                        _ => "custodian",
                    };
                    checks.push((
                        update(
                            policies,
                            &format!(
                                "change its {changed} (UPDATE in the pvs of the ACPs it references, \
                                 or in its default policy when acpi is not set)"
                            ),
                        ),
                        None,
                    ));
                }
                let mut others = resource.clone();
                others.acpi = old.acpi.clone();
                if has_acpi {
                    others.custodian = old.custodian.clone();
                }
                // The same values again are still an Update, by whoever may
                // update the resource: nobody else learns from an OK that
                // they match what is stored.
                if &others != old || checks.is_empty() {
                    let view = View { snap, now };
                    let set = applicable_policies(&view, &id).map_err(resolve_status)?;
                    // Nothing changes at all: the put may also be read as
                    // an Update holding only the `acpi` it has now, which
                    // UPDATE in the pvs of those ACPs authorizes (TS-0001
                    // 9.6.1.3.2), as the PDP judges it (`updates_acpi`).
                    let unchanged = has_acpi && checks.is_empty() && &others == old;
                    let as_acpi_update = unchanged.then(|| {
                        update(
                            compile_set(snap, &acpi_change_set(old), now, &id),
                            "set its acpi (UPDATE in the pvs of the ACPs it references, \
                             or in its default policy when acpi is not set)",
                        )
                    });
                    checks.push((
                        update(
                            compile_set(snap, &set, now, &id),
                            "update this resource (UPDATE in its applicable policies)",
                        ),
                        as_acpi_update,
                    ));
                }
                Ok(checks)
            })?;
            for (check, or_else) in &checks {
                let Some(other) = or_else else {
                    self.authorize_write(&req.originator, &attrs, check)?;
                    continue;
                };
                // Either check allows the write.
                if let Err(refused) = self.authorize(
                    &req.originator,
                    &attrs,
                    check.operation,
                    &check.target,
                    check.types,
                    &check.policies,
                    &check.what,
                ) && self
                    .authorize_write(&req.originator, &attrs, other)
                    .is_err()
                {
                    return Err(refused);
                }
            }
        }
        // A parent named before it exists (the admin may) can close a cycle,
        // on whose resources no policy could be resolved: refused for
        // everyone, as bad input. `pi` is fixed, so only a new resource can.
        // Checked once the write is authorized, so that the cycle it names
        // is shown to nobody who may not make it.
        let cycle = resource.parent_id.as_deref().and_then(|parent| {
            self.read(|s| closes_parent_cycle(&View { snap: s, now: 0 }, &id, parent))
        });
        if let Some(cycle) = cycle {
            return Err(invalid_argument(&[violation(
                "resource.parent_id",
                format!(
                    "closes a cycle of parents ({}): a resource cannot be its own ancestor",
                    cycle
                        .iter()
                        .map(|r| authz_proto::convert::echo(r))
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
            )]));
        }
        // No change: nothing is written, no revision made, nothing sent to
        // the PDPs; the answer names the current revision, which holds
        // these values.
        let unchanged =
            self.read(|s| (s.resources.get(&id) == Some(&resource)).then_some(s.revision));
        if let Some(revision) = unchanged {
            return Ok(Response::new(pb::ResourceRecord {
                resource: Some(resource_to_pb(&resource)),
                revision,
                version: self.version(revision),
            }));
        }
        let entry = self
            .commit(guard, Mutation::PutResource(resource.clone()))
            .await?;
        tracing::info!(resource = %id, revision = entry.revision, "resource stored");
        Ok(Response::new(pb::ResourceRecord {
            resource: Some(resource_to_pb(&resource)),
            revision: entry.revision,
            version: self.version(entry.revision),
        }))
    }

    async fn get_resource(
        &self,
        request: Request<pb::GetResourceRequest>,
    ) -> Result<Response<pb::ResourceRecord>, Status> {
        let id = request.into_inner().resource_id;
        check_id_field(&id, "resource_id")?;
        let id = self.held_id(id);
        let (resource, revision) = self.read(|s| (s.resources.get(&id).cloned(), s.revision));
        // The NOT_FOUND names the ID as this PRP would hold it (a
        // `google.rpc.ResourceInfo`), so that a client can tell two forms of
        // one unregistered ID are one (`authz policy apply` does).
        let resource = resource.ok_or_else(|| {
            use tonic_types::{ErrorDetails, StatusExt};
            Status::with_error_details(
                tonic::Code::NotFound,
                format!("resource {id} not found"),
                ErrorDetails::with_resource_info("resource", id.as_str(), "", "not registered"),
            )
        })?;
        Ok(Response::new(pb::ResourceRecord {
            resource: Some(resource_to_pb(&resource)),
            revision,
            version: self.version(revision),
        }))
    }

    async fn delete_resource(
        &self,
        request: Request<pb::DeleteResourceRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let req = request.into_inner();
        check_originator(&self.inner.hosting, &req.originator)?;
        check_id_field(&req.resource_id, "resource_id")?;
        let id = self.held_id(req.resource_id);
        // Before the write lock: a slow PIP holds up no other write.
        let attrs = self
            .writer_attributes(&req.originator, &req.role_ids)
            .await?;
        let guard = self.lock_writes().await;
        if !self.read(|s| s.resources.contains_key(&id)) {
            return Err(Status::not_found(format!("resource {id} not found")));
        }
        if !self.is_admin(&req.originator) {
            let now = now_secs();
            let policies = self.read(|snap| {
                applicable_policies(&View { snap, now }, &id)
                    .map(|set| compile_set(snap, &set, now, &id))
                    .map_err(resolve_status)
            })?;
            self.authorize(
                &req.originator,
                &attrs,
                Operation::Delete,
                &id,
                Types::default(),
                &policies,
                "delete this resource (DELETE in its applicable policies)",
            )?;
        }
        let writes = self.deleting_bound_grants(&id, Mutation::DeleteResource(id.clone()));
        let grants = writes.len() - 1;
        let entries = self.commit_all(guard, writes).await?;
        let revision = entries.last().map_or(0, |e| e.revision);
        tracing::info!(resource = %id, revision, dynamic_acps = grants, "resource removed");
        Ok(Response::new(pb::WriteResponse {
            revision,
            version: self.version(revision),
        }))
    }

    async fn get_applicable_policies(
        &self,
        request: Request<pb::GetApplicablePoliciesRequest>,
    ) -> Result<Response<pb::ApplicablePolicies>, Status> {
        let pb::GetApplicablePoliciesRequest {
            target,
            updates_acpi,
        } = request.into_inner();
        check_id_field(&target, "target")?;
        let target = self.held_id(target);
        let now = now_secs();
        let out = self.read(|snap| -> Result<pb::ApplicablePolicies, Status> {
            let view = View { snap, now };
            let set = applicable_policies_for(&view, &target, updates_acpi).map_err(|e| match e {
                ResolveError::NoAcpi { .. } => {
                    invalid_argument(&[violation("updates_acpi", e.to_string())])
                }
                e => resolve_status(e),
            })?;
            let mut policies = Vec::new();
            let push_dynamic = |id: &str, policies: &mut Vec<pb::ApplicablePolicy>| {
                if let Some(d) = snap.dynamic.get(id).filter(|d| !d.is_expired(now)) {
                    policies.push(pb::ApplicablePolicy {
                        acp: Some(pb::AccessControlPolicy {
                            resource_id: Some(d.id.clone()),
                            privileges: Some(set_to_pb(&d.privileges)),
                            ..Default::default()
                        }),
                        privileges: pb::PrivilegeKind::Privileges as i32,
                        dynamic: true,
                    });
                }
            };
            let default_policy = match &set {
                ApplicableSet::Policies(list) => {
                    for (id, kind) in list {
                        let id: &str = id;
                        if let Some(acp) = snap.acps.get(id) {
                            policies.push(pb::ApplicablePolicy {
                                acp: Some(stored_acp_to_pb(acp)?),
                                privileges: pb::PrivilegeKind::from(*kind) as i32,
                                dynamic: false,
                            });
                        } else if *kind == PrivilegeKind::SelfPrivileges
                            && let Some(d) = snap.dynamic.get(id).filter(|d| !d.is_expired(now))
                        {
                            // A request on a dynamic ACP: it holds privileges
                            // only, so its selfPrivileges grant nothing.
                            policies.push(pb::ApplicablePolicy {
                                acp: Some(pb::AccessControlPolicy {
                                    resource_id: Some(d.id.clone()),
                                    privileges: Some(set_to_pb(&d.privileges)),
                                    self_privileges: Some(pb::SetOfAcrs::default()),
                                    ..Default::default()
                                }),
                                privileges: pb::PrivilegeKind::SelfPrivileges as i32,
                                dynamic: true,
                            });
                        } else if snap.dynamic.contains_key(id) {
                            push_dynamic(id, &mut policies);
                        } else {
                            tracing::warn!(acp = %id, %target, "acpi names an ACP that is not stored");
                        }
                    }
                    false
                }
                ApplicableSet::Default { rules, dynamic } => {
                    policies.push(pb::ApplicablePolicy {
                        acp: Some(pb::AccessControlPolicy {
                            resource_id: Some(default_policy_id(&target)),
                            privileges: Some(set_to_pb(rules)),
                            ..Default::default()
                        }),
                        privileges: pb::PrivilegeKind::Privileges as i32,
                        dynamic: false,
                    });
                    for id in dynamic {
                        push_dynamic(id, &mut policies);
                    }
                    true
                }
            };
            Ok(pb::ApplicablePolicies {
                policies,
                default_policy,
                revision: snap.revision,
                combining_algorithm: pb::CombiningAlgorithm::PermitOverrides as i32,
            })
        })?;
        Ok(Response::new(out))
    }

    async fn create_dynamic_acp(
        &self,
        request: Request<pb::CreateDynamicAcpRequest>,
    ) -> Result<Response<pb::DynamicAcpRecord>, Status> {
        let mut req = request.into_inner();
        check_originator(&self.inner.hosting, &req.originator)?;
        let mut errors = Vec::new();
        if req.target.is_empty() {
            errors.push(violation("target", "is mandatory"));
        }
        // The target is a resource ID as a decision's is: one with an
        // empty `/` segment names no resource (and no record is stored
        // under one: PutResource refuses it).
        if !req.target.is_empty()
            && let Err(e) = authz_core::ids::check_resource_id(&req.target)
        {
            errors.push(violation("target", e.to_string()));
        }
        req.target = self.held_id(std::mem::take(&mut req.target));
        errors.extend(id_problem(&req.acp_id, "acp_id"));
        let privileges = match &req.privileges {
            None => {
                errors.push(violation("privileges", "is mandatory"));
                None
            }
            Some(p) if authz_proto::convert::record_size_violation(p, "privileges").is_some() => {
                errors.extend(authz_proto::convert::record_size_violation(p, "privileges"));
                None
            }
            Some(p) => {
                // Named by the request's field, `privileges.acr[i]...`: the
                // request has no `pv`.
                let mut conv = Vec::new();
                let set = set_of_acrs_from_pb(p, "privileges", &mut conv);
                if conv.is_empty() {
                    if let Err(e) = CompiledAcp::from_privileges("dynamic", &set) {
                        errors.extend(validation_errors(e).into_iter().map(|mut v| {
                            if let Some(rest) = v.field.strip_prefix("pv") {
                                v.field = format!("privileges{rest}");
                            }
                            v
                        }));
                    }
                    if let Err(e) = check_set_entry_lengths("privileges", &set, &self.inner.hosting)
                    {
                        errors.extend(validation_errors(e));
                    }
                    Some(set)
                } else {
                    errors.extend(conv);
                    None
                }
            }
        };
        let now = now_secs();
        let expires_at = match &req.expires_at {
            None => {
                errors.push(violation("expires_at", "is mandatory"));
                None
            }
            Some(ts) => match timestamp_secs(ts, "expires_at") {
                Ok(secs) if secs <= now => {
                    errors.push(violation(
                        "expires_at",
                        "lies in the past (lifetimes are kept to the second, rounded down)",
                    ));
                    None
                }
                Ok(secs) => Some(secs),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        let (Some(privileges), Some(expires_at), true) =
            (privileges, expires_at, errors.is_empty())
        else {
            return Err(invalid_argument(&errors));
        };
        let dynamic: Vec<&str> = self
            .inner
            .dynamic_originators
            .iter()
            .map(String::as_str)
            .collect();
        if !self.is_admin(&req.originator) && !self.is_one_of(&req.originator, &dynamic) {
            return Err(Status::permission_denied(format!(
                "{} may not store dynamic ACPs (only the admin and the configured PDP originators)",
                req.originator
            )));
        }
        let guard = self.lock_writes().await;
        if req.acp_id.is_empty() {
            // The same grant again (a retried request, another PDP): the
            // live dynamic ACP that has it lasts until the later end, never
            // shortened, instead of a new one per request.
            let same = self.read(|s| {
                s.dynamic
                    .values()
                    .filter(|d| {
                        d.target == req.target && d.privileges == privileges && !d.is_expired(now)
                    })
                    .max_by_key(|d| d.expires_at)
                    .map(|d| (d.clone(), s.revision))
            });
            if let Some((mut d, revision)) = same {
                if d.expires_at >= expires_at {
                    drop(guard);
                    tracing::info!(dynamic_acp = %d.id, target = %d.target, expires_at = d.expires_at, "dynamic ACP granted again: already stored");
                    return Ok(Response::new(self.dynamic_record(&d, revision)));
                }
                d.expires_at = expires_at;
                let entry = self.commit(guard, Mutation::PutDynamic(d.clone())).await?;
                tracing::info!(dynamic_acp = %d.id, target = %d.target, expires_at, revision = entry.revision, "dynamic ACP granted again: extended");
                return Ok(Response::new(self.dynamic_record(&d, entry.revision)));
            }
        }
        // A generated ID skips any ID already held (ACPs, dynamic ACPs and
        // resources share one ID space); the counter makes each try new.
        let id = if req.acp_id.is_empty() {
            loop {
                let candidate = format!(
                    "dacp-{}-{}",
                    Utc::now().timestamp_micros(),
                    self.inner.id_counter.fetch_add(1, Ordering::Relaxed)
                );
                if !self.read(|s| {
                    s.acps.contains_key(&candidate)
                        || s.dynamic.contains_key(&candidate)
                        || s.resources.contains_key(&candidate)
                }) {
                    break candidate;
                }
            }
        } else {
            req.acp_id
        };
        // Bound to the target itself (Decision 7): bound to a
        // contentInstance's parent, it would grant on the parent and its
        // other children too.
        let d = DynamicAcp {
            id: id.clone(),
            target: req.target,
            privileges,
            expires_at,
        };
        // The store's own precondition, checked again when it commits: the
        // ID must not name an ACP or a resource (TS-0003 7.3.2.2: a dynamic
        // ACP is an <accessControlPolicy>).
        self.read(|s| s.check(Mutation::PutDynamic(d.clone())))
            .map_err(|e| id_conflict(e, "acp_id"))?;
        // Expired ones do not count (they grant nothing and the sweeper
        // removes them), nor the one this put replaces.
        let live = self.read(|s| {
            s.dynamic
                .values()
                .filter(|o| o.target == d.target && o.id != d.id && !o.is_expired(now))
                .count()
        });
        if live >= MAX_DYNAMIC_ACPS_PER_TARGET {
            return Err(Status::resource_exhausted(format!(
                "target {} already has {live} live dynamic ACPs, the most one target may have \
                 ({MAX_DYNAMIC_ACPS_PER_TARGET}); a new one may be stored once one expires",
                d.target
            )));
        }
        let entry = self.commit(guard, Mutation::PutDynamic(d.clone())).await?;
        tracing::info!(dynamic_acp = %id, target = %d.target, expires_at, revision = entry.revision, "dynamic ACP stored");
        Ok(Response::new(self.dynamic_record(&d, entry.revision)))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let store_id = self.inner.store.store_id().to_owned();
        // A revision of another store says nothing about this one.
        let other_store = request
            .metadata()
            .get(STORE_ID_METADATA)
            .is_some_and(|theirs| theirs.to_str().ok() != Some(store_id.as_str()));
        let pb::WatchRequest {
            from_revision: from,
            from_tag,
        } = request.into_inner();
        // Subscribe before reading, so that no change falls in between.
        let live = self.inner.events.subscribe();
        let closing = self.inner.closing.subscribe();
        let initial: Vec<pb::WatchEvent> = if from == 0 || other_store {
            self.read(|s| snapshot_events(s, now_secs()))?
        } else {
            let store = self.inner.store.clone();
            let log = tokio::task::spawn_blocking(move || store.changes_since(from, from_tag))
                .await
                .map_err(|e| Status::internal(format!("store task failed: {e}")))?
                .map_err(store_status)?;
            match log {
                Some(entries) => entries.iter().map(change_event).collect::<Result<_, _>>()?,
                None => self.read(|s| snapshot_events(s, now_secs()))?,
            }
        };
        let service = self.clone();
        let stream = authz_proto::serving::watch_stream(initial, from, live, closing, move || {
            service.read(|s| snapshot_events(s, now_secs()))
        });
        let mut response = Response::new(Box::pin(stream) as Self::WatchStream);
        match tonic::metadata::MetadataValue::try_from(store_id.as_str()) {
            Ok(value) => {
                response.metadata_mut().insert(STORE_ID_METADATA, value);
            }
            Err(e) => tracing::error!(error = %e, "store ID cannot be sent as metadata"),
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// An ACP stored before a check that now refuses it (here an `acor`
    /// domain that is no domain name) has no `pvs` that grants: the admin
    /// alone may update or delete it, instead of an INTERNAL error for
    /// everyone; one that compiles is judged by its `pvs`.
    #[test]
    fn a_stored_acp_that_no_longer_compiles_has_no_granting_pvs() {
        let acp = |entry: &str| -> AccessControlPolicy {
            authz_core::json::parse_policies(&format!(
                r#"{{"m2m:acp": {{"ri": "acp1", "pv": {{"acr": []}},
                    "pvs": {{"acr": [{{"acor": ["Cowner", "{entry}"], "acop": 63}}]}}}}}}"#
            ))
            .map(|mut v| v.remove(0))
            .unwrap_or_else(|e| panic!("{entry}: {e}"))
        };
        assert_eq!(
            stored_pvs("acp1", &acp("//ok.example/cse/Cx"))
                .compiled
                .len(),
            1
        );
        let mut old = acp("//ok.example/cse/Cx");
        if let Some(pvs) = old.self_privileges.as_mut() {
            pvs.rules[0].originators[1] = "//bad_host.example/cse/Cx".into();
        }
        let refused = stored_pvs("acp1", &old);
        assert!(refused.compiled.is_empty());
        assert_eq!(refused.uncompiled.len(), 1, "named in a refusal");
    }

    /// A snapshot of many small records comes in parts each under the
    /// 4 MiB a gRPC client decodes by default, counting what each record
    /// adds to its list (its tag and length too), and the parts together
    /// hold every record once.
    #[test]
    fn snapshot_parts_stay_under_4_mib_as_encoded() {
        let mut snap = StoreSnapshot {
            revision: 7,
            ..Default::default()
        };
        for i in 0..120_000 {
            let id = format!("resource-{i:06}-{}", "x".repeat(20));
            snap.resources.insert(
                id.clone(),
                Resource {
                    resource_id: id,
                    resource_type: 3,
                    creator: Some("Cx".into()),
                    ..Resource::default()
                },
            );
        }
        let parts = snapshot_events(&snap, 0).expect("parts");
        assert!(parts.len() >= 2, "{} part(s)", parts.len());
        let mut total = 0;
        for (i, part) in parts.iter().enumerate() {
            assert!(
                part.encoded_len() < 4 << 20,
                "part {i}: {}",
                part.encoded_len()
            );
            let Some(pb::watch_event::Event::Snapshot(s)) = &part.event else {
                panic!("part {i} is no snapshot");
            };
            assert_eq!(s.continued, i + 1 < parts.len(), "part {i}");
            assert_eq!(part.revision, 7);
            total += s.resources.len();
        }
        assert_eq!(total, 120_000);
    }
}
