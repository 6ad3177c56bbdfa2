//! The PRP's storage: ACPs, target resources and dynamic ACPs in an
//! [`authz_store::Store`]: the whole state in memory, a revision that grows
//! by one per write, a bounded change log for `Watch` resumption, and every
//! write one atomic commit, durable when it returns.
//!
//! [`PrpSchema`] says what the PRP stores and how a [`Mutation`] is checked;
//! [`memory`] and [`open`] build a [`PrpStore`] (in memory, or in the redb
//! file `<dir>/prp.redb`). The service talks to the object-safe
//! [`PolicyStore`] interface, so that another backend (PostgreSQL) can
//! follow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use authz_core::model::{AccessControlPolicy, SetOfAcrs};
use authz_core::resources::{FixedAttribute, Resource, fixed_attribute_changes};
use authz_store::{Row, Schema, Store};
use serde::{Deserialize, Serialize};

pub use authz_store::DEFAULT_LOG_LIMIT;

/// Name of the redb file inside the data directory.
pub const REDB_FILE: &str = "prp.redb";

/// A dynamic ACP granted by Direct Dynamic Authorization (TS-0003 7.3.2.2):
/// privileges bound to one target until `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicAcp {
    /// Its ID.
    pub id: String,
    /// The target resource it is bound to.
    pub target: String,
    /// `gp`: the granted privileges.
    pub privileges: SetOfAcrs,
    /// End of its lifetime, Unix seconds; it no longer applies from then on.
    pub expires_at: i64,
}

impl DynamicAcp {
    /// True when the ACP no longer applies at `now` (Unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }
}

/// One change, as recorded in the log and streamed to watchers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// An ACP was created or updated (its new content).
    AcpPut(AccessControlPolicy),
    /// An ACP was deleted.
    AcpDeleted(String),
    /// A resource was registered or updated.
    ResourcePut(Resource),
    /// A resource was removed.
    ResourceDeleted(String),
    /// A dynamic ACP was stored.
    DynamicPut(DynamicAcp),
    /// A dynamic ACP expired or was removed.
    DynamicDeleted(String),
}

/// A committed change and the revision it brought the store to.
pub type LogEntry = authz_store::LogEntry<Change>;

/// One write, with its precondition.
///
/// ACPs, dynamic ACPs and resources share one ID space: a write that would
/// give an ID held by a record of one kind to a record of another is
/// [`StoreError::IdInUse`].
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Store a new ACP; [`StoreError::AlreadyExists`] when its ID names a
    /// stored ACP, [`StoreError::IdInUse`] when it names a dynamic ACP or a
    /// resource.
    CreateAcp(AccessControlPolicy),
    /// Replace a stored ACP; [`StoreError::NotFound`] when absent.
    UpdateAcp(AccessControlPolicy),
    /// Delete a stored ACP; [`StoreError::NotFound`] when absent.
    DeleteAcp(String),
    /// Register or replace a resource; [`StoreError::IdInUse`] when its ID
    /// names an ACP or a dynamic ACP, [`StoreError::ReadOnly`] when it
    /// replaces a stored resource with another `pi`, `ty` or `cr`.
    PutResource(Resource),
    /// Remove a resource; [`StoreError::NotFound`] when absent.
    DeleteResource(String),
    /// Store or replace a dynamic ACP; [`StoreError::IdInUse`] when its ID
    /// names a (static) ACP or a resource.
    PutDynamic(DynamicAcp),
    /// Remove a dynamic ACP; [`StoreError::NotFound`] when absent.
    DeleteDynamic(String),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The ID is taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The ID is held by a record of another kind: ACPs, dynamic ACPs and
    /// resources share one ID space, because a request to an ID that names
    /// an ACP is judged by that ACP's `pvs` (TS-0001 10.2.3.1), so an ACP
    /// that took a resource's ID would take over that resource, and a
    /// dynamic ACP is the `<accessControlPolicy>` a Direct Dynamic
    /// Authorization grant creates (TS-0003 7.3.2.2).
    #[error("{id} is already the ID of {holder}")]
    IdInUse {
        /// The ID.
        id: String,
        /// What holds it.
        holder: IdHolder,
    },
    /// A write would change an attribute of a stored resource that is
    /// read-only once it exists ([`FixedAttribute`]: `pi`, `ty`, `cr`;
    /// TS-0001 9.6.1.3).
    #[error(
        "resource {id}: {} cannot change once it exists (read-only, TS-0001 9.6.1.3)",
        names(attributes)
    )]
    ReadOnly {
        /// The resource.
        id: String,
        /// The attributes the write would change, in the order `pi`, `ty`,
        /// `cr`.
        attributes: Vec<FixedAttribute>,
    },
    /// Nothing is stored under the ID.
    #[error("{0} not found")]
    NotFound(String),
    /// A dynamic ACP for a target that is no resource of the store: a
    /// grant is a child `<accessControlPolicy>` of the resource it is bound
    /// to (TS-0003 7.3.2.2 step 4.1.2; Decision 7), and one stored before
    /// its resource would go to whatever is registered under the ID later;
    /// nor is one for an ACP, which only its own selfPrivileges authorize
    /// requests on (TS-0003 7.1.1), while a grant is privileges.
    #[error(
        "{0} is not a registered resource (an ACP is authorized by its selfPrivileges alone, which no grant gives)"
    )]
    UnknownTarget(String),
    /// An ACP without `ri`.
    #[error("the ACP has no resource ID")]
    MissingId,
    /// The storage itself failed: corrupt data or a backend error.
    #[error(transparent)]
    Store(#[from] authz_store::StoreError),
}

/// `pi, ty and cr`.
fn names(attributes: &[FixedAttribute]) -> String {
    let names: Vec<&str> = attributes.iter().map(|a| a.short_name()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The kind of record that holds an ID ([`StoreError::IdInUse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdHolder {
    /// A stored ACP.
    Acp,
    /// A dynamic ACP (Direct Dynamic Authorization).
    DynamicAcp,
    /// A registered resource.
    Resource,
}

impl std::fmt::Display for IdHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Acp => "an ACP",
            Self::DynamicAcp => "a dynamic ACP",
            Self::Resource => "a resource",
        })
    }
}

impl StoreError {
    /// A backend failure described by `message`.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::Store(authz_store::StoreError::Backend(message.into()))
    }
}

type Acps = BTreeMap<String, AccessControlPolicy>;
type Resources = BTreeMap<String, Resource>;
type Dynamic = BTreeMap<String, DynamicAcp>;

/// The PRP's state: what [`PrpStore`] keeps in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyState {
    /// ACPs by ID.
    pub acps: Acps,
    /// Resources by ID.
    pub resources: Resources,
    /// Dynamic ACPs by ID (expired ones included until swept).
    pub dynamic: Dynamic,
}

impl PolicyState {
    /// Checks `mutation` against this state and returns the change it makes.
    pub fn check(&self, mutation: Mutation) -> Result<Change, StoreError> {
        check(&self.acps, &self.resources, &self.dynamic, mutation)
    }

    /// Applies a checked change.
    pub fn apply(&mut self, change: &Change) {
        apply(
            &mut self.acps,
            &mut self.resources,
            &mut self.dynamic,
            change,
        );
    }
}

/// The whole state at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreSnapshot {
    /// The revision of the last change included.
    pub revision: u64,
    /// The tag of that change ([`authz_store::LogEntry::tag`]; 0 when
    /// unknown).
    pub tag: u64,
    /// ACPs by ID.
    pub acps: Acps,
    /// Resources by ID.
    pub resources: Resources,
    /// Dynamic ACPs by ID (expired ones included until swept).
    pub dynamic: Dynamic,
}

impl StoreSnapshot {
    /// Whether `id` is an ACP: a stored one or a dynamic one (TS-0003
    /// 7.3.2.2: a child `<accessControlPolicy>` of its target; expired
    /// ones until swept), as a request on it or a child under it reads it.
    pub fn holds_acp(&self, id: &str) -> bool {
        self.acps.contains_key(id) || self.dynamic.contains_key(id)
    }

    /// `state` at `revision`, whose change had tag `tag`.
    pub fn new(revision: u64, tag: u64, state: PolicyState) -> Self {
        let PolicyState {
            acps,
            resources,
            dynamic,
        } = state;
        Self {
            revision,
            tag,
            acps,
            resources,
            dynamic,
        }
    }

    /// Checks `mutation` against this state and returns the change it makes.
    pub fn check(&self, mutation: Mutation) -> Result<Change, StoreError> {
        check(&self.acps, &self.resources, &self.dynamic, mutation)
    }

    /// Applies a committed change (already checked) at its revision.
    pub fn apply(&mut self, entry: &LogEntry) {
        apply(
            &mut self.acps,
            &mut self.resources,
            &mut self.dynamic,
            &entry.change,
        );
        self.revision = entry.revision;
        self.tag = entry.tag;
    }
}

// The checks and changes are written once, over the three maps, so that the
// store's state and a service's mirror ([`StoreSnapshot`]) cannot disagree.

/// What holds `id` among the kinds not in `except`.
fn holder(
    acps: &Acps,
    resources: &Resources,
    dynamic: &Dynamic,
    id: &str,
    except: IdHolder,
) -> Option<IdHolder> {
    [
        (IdHolder::Acp, acps.contains_key(id)),
        (IdHolder::DynamicAcp, dynamic.contains_key(id)),
        (IdHolder::Resource, resources.contains_key(id)),
    ]
    .into_iter()
    .find(|&(kind, held)| held && kind != except)
    .map(|(kind, _)| kind)
}

/// [`StoreError::IdInUse`] when a record of another kind than `kind` holds
/// `id` (ACPs, dynamic ACPs and resources share one ID space).
fn id_free(
    acps: &Acps,
    resources: &Resources,
    dynamic: &Dynamic,
    id: &str,
    kind: IdHolder,
) -> Result<(), StoreError> {
    match holder(acps, resources, dynamic, id, kind) {
        Some(holder) => Err(StoreError::IdInUse {
            id: id.to_owned(),
            holder,
        }),
        None => Ok(()),
    }
}

fn check(
    acps: &Acps,
    resources: &Resources,
    dynamic: &Dynamic,
    mutation: Mutation,
) -> Result<Change, StoreError> {
    Ok(match mutation {
        Mutation::CreateAcp(acp) => {
            let id = acp_id(&acp)?;
            if acps.contains_key(&id) {
                return Err(StoreError::AlreadyExists(id));
            }
            id_free(acps, resources, dynamic, &id, IdHolder::Acp)?;
            Change::AcpPut(acp)
        }
        Mutation::UpdateAcp(acp) => {
            let id = acp_id(&acp)?;
            if !acps.contains_key(&id) {
                return Err(StoreError::NotFound(id));
            }
            Change::AcpPut(acp)
        }
        Mutation::DeleteAcp(id) => {
            if !acps.contains_key(&id) {
                return Err(StoreError::NotFound(id));
            }
            Change::AcpDeleted(id)
        }
        Mutation::PutResource(r) => {
            id_free(acps, resources, dynamic, &r.resource_id, IdHolder::Resource)?;
            if let Some(old) = resources.get(&r.resource_id) {
                let attributes = fixed_attribute_changes(old, &r);
                if !attributes.is_empty() {
                    return Err(StoreError::ReadOnly {
                        id: r.resource_id,
                        attributes,
                    });
                }
            }
            Change::ResourcePut(r)
        }
        Mutation::DeleteResource(id) => {
            if !resources.contains_key(&id) {
                return Err(StoreError::NotFound(id));
            }
            Change::ResourceDeleted(id)
        }
        Mutation::PutDynamic(d) => {
            id_free(acps, resources, dynamic, &d.id, IdHolder::DynamicAcp)?;
            if !resources.contains_key(&d.target) {
                return Err(StoreError::UnknownTarget(d.target));
            }
            Change::DynamicPut(d)
        }
        Mutation::DeleteDynamic(id) => {
            if !dynamic.contains_key(&id) {
                return Err(StoreError::NotFound(id));
            }
            Change::DynamicDeleted(id)
        }
    })
}

fn apply(acps: &mut Acps, resources: &mut Resources, dynamic: &mut Dynamic, change: &Change) {
    match change {
        Change::AcpPut(acp) => {
            if let Some(id) = acp.resource_id.clone() {
                acps.insert(id, acp.clone());
            }
        }
        Change::AcpDeleted(id) => {
            acps.remove(id);
        }
        Change::ResourcePut(r) => {
            resources.insert(r.resource_id.clone(), r.clone());
        }
        Change::ResourceDeleted(id) => {
            resources.remove(id);
        }
        Change::DynamicPut(d) => {
            dynamic.insert(d.id.clone(), d.clone());
        }
        Change::DynamicDeleted(id) => {
            dynamic.remove(id);
        }
    }
}

fn acp_id(acp: &AccessControlPolicy) -> Result<String, StoreError> {
    acp.resource_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or(StoreError::MissingId)
}

// ---------------------------------------------------------------------------
// The schema and the store
// ---------------------------------------------------------------------------

/// Row collections of a durable backend.
const ACP_ROWS: &str = "acp";
const RESOURCE_ROWS: &str = "resource";
const DYNAMIC_ROWS: &str = "dynamic_acp";

/// What the PRP stores: [`PolicyState`], changed by [`Mutation`]s into
/// [`Change`]s; one row per ACP, resource and dynamic ACP.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrpSchema;

fn row<T: Serialize>(
    collection: &str,
    key: &str,
    value: Option<&T>,
) -> Result<Row, authz_store::StoreError> {
    let value = value
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| authz_store::StoreError::Corrupt(format!("{collection} {key}: {e}")))?;
    Ok(Row {
        collection: collection.into(),
        key: key.into(),
        value,
    })
}

fn from_json<T: for<'de> Deserialize<'de>>(
    collection: &str,
    key: &str,
    text: &str,
) -> Result<T, authz_store::StoreError> {
    serde_json::from_str(text)
        .map_err(|e| authz_store::StoreError::Corrupt(format!("{collection} {key}: {e}")))
}

impl Schema for PrpSchema {
    type State = PolicyState;
    type Change = Change;
    type Mutation = Mutation;
    type Error = StoreError;

    fn check(state: &PolicyState, mutation: Mutation) -> Result<Change, StoreError> {
        state.check(mutation)
    }

    fn apply(state: &mut PolicyState, change: &Change) {
        state.apply(change);
    }

    fn rows(change: &Change) -> Result<Vec<Row>, authz_store::StoreError> {
        let row = match change {
            Change::AcpPut(acp) => {
                // `check` guarantees the ID; a change without one is a bug.
                let id = acp.resource_id.as_deref().ok_or_else(|| {
                    authz_store::StoreError::Corrupt("an ACP change without resource ID".into())
                })?;
                row(ACP_ROWS, id, Some(acp))?
            }
            Change::AcpDeleted(id) => row::<()>(ACP_ROWS, id, None)?,
            Change::ResourcePut(r) => row(RESOURCE_ROWS, &r.resource_id, Some(r))?,
            Change::ResourceDeleted(id) => row::<()>(RESOURCE_ROWS, id, None)?,
            Change::DynamicPut(d) => row(DYNAMIC_ROWS, &d.id, Some(d))?,
            Change::DynamicDeleted(id) => row::<()>(DYNAMIC_ROWS, id, None)?,
        };
        Ok(vec![row])
    }

    fn load(
        state: &mut PolicyState,
        collection: &str,
        key: &str,
        value: &str,
    ) -> Result<(), authz_store::StoreError> {
        let key_owned = key.to_owned();
        match collection {
            ACP_ROWS => {
                state
                    .acps
                    .insert(key_owned, from_json(collection, key, value)?);
            }
            RESOURCE_ROWS => {
                state
                    .resources
                    .insert(key_owned, from_json(collection, key, value)?);
            }
            DYNAMIC_ROWS => {
                state
                    .dynamic
                    .insert(key_owned, from_json(collection, key, value)?);
            }
            other => {
                return Err(authz_store::StoreError::Corrupt(format!(
                    "unknown collection {other:?}"
                )));
            }
        }
        Ok(())
    }
}

/// The PRP's store (in memory or on redb).
pub type PrpStore = Store<PrpSchema>;

/// An empty in-memory store keeping the last `log_limit` changes (at least
/// 1); lost when dropped (tests, `data_dir = None`).
pub fn memory(log_limit: usize) -> PrpStore {
    Store::memory(log_limit)
}

/// The redb file of the store in `dir`: `<dir>/prp.redb`.
pub fn redb_path(dir: &Path) -> PathBuf {
    dir.join(REDB_FILE)
}

/// Opens (or creates) `<dir>/prp.redb`, creating `dir` when needed.
pub fn open(dir: impl AsRef<Path>) -> Result<PrpStore, StoreError> {
    open_with_log_limit(dir, DEFAULT_LOG_LIMIT)
}

/// Like [`open`], keeping the last `log_limit` changes (at least 1).
pub fn open_with_log_limit(
    dir: impl AsRef<Path>,
    log_limit: usize,
) -> Result<PrpStore, StoreError> {
    Ok(Store::open_redb(&redb_path(dir.as_ref()), log_limit)?)
}

/// A PRP storage backend.
///
/// Implementations serialize writes: each [`apply`](Self::apply) is atomic
/// and durable when it returns, and revisions increase by one per change.
pub trait PolicyStore: Send + Sync {
    /// The store's ID, made when its storage was created (see
    /// [`authz_store::Store::store_id`]): `Watch` hands it to watchers, so
    /// that a PDP resuming from a revision of another store starts over.
    fn store_id(&self) -> &str;
    /// The current revision (0 for an empty store).
    fn revision(&self) -> Result<u64, StoreError>;
    /// The whole state, consistent at one revision.
    fn snapshot(&self) -> Result<StoreSnapshot, StoreError>;
    /// The changes after `from_revision`, in order; `None` when the log no
    /// longer holds all of them, `from_revision` is ahead of the store, or
    /// `from_tag` is not 0 and the change that brought the store to
    /// `from_revision` is not logged or has another tag (the watcher saw
    /// another history of the store, e.g. before it was restored from a
    /// backup): the caller needs a snapshot.
    fn changes_since(
        &self,
        from_revision: u64,
        from_tag: u64,
    ) -> Result<Option<Vec<LogEntry>>, StoreError>;
    /// Checks and performs one write; returns the logged change.
    fn apply(&self, mutation: Mutation) -> Result<LogEntry, StoreError>;
    /// The tag of the change that made `revision`, while the log holds it
    /// (see [`authz_store::Store::tag_at`]); `None` otherwise, and from a
    /// backend that keeps no tags (the default).
    fn tag_at(&self, _revision: u64) -> Option<u64> {
        None
    }
}

impl PolicyStore for PrpStore {
    fn store_id(&self) -> &str {
        Store::store_id(self)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(Store::revision(self))
    }

    fn snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        let (revision, tag, state) = Store::tagged_snapshot(self);
        Ok(StoreSnapshot::new(revision, tag, state))
    }

    fn changes_since(
        &self,
        from_revision: u64,
        from_tag: u64,
    ) -> Result<Option<Vec<LogEntry>>, StoreError> {
        // A tag of 0 on either side is unknown (a watcher or a log entry of
        // a version without tags): nothing to compare.
        if from_tag != 0
            && from_revision > 0
            && !self
                .tag_at(from_revision)
                .is_some_and(|tag| tag == from_tag || tag == 0)
        {
            return Ok(None);
        }
        Ok(Store::changes_since(self, from_revision))
    }

    fn apply(&self, mutation: Mutation) -> Result<LogEntry, StoreError> {
        Store::apply(self, mutation)
    }

    fn tag_at(&self, revision: u64) -> Option<u64> {
        Store::tag_at(self, revision)
    }
}
