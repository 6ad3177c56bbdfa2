//! Durable storage of the PRP: ACPs, target resources and dynamic ACPs, a
//! monotonic revision and a bounded change log.
//!
//! [`PolicyStore`] is the backend interface (synchronous and object safe, so
//! that a PostgreSQL backend can follow); [`RedbStore`] keeps everything in
//! one redb file and [`MemoryStore`] in memory (tests, `data_dir = None`).
//!
//! Every [`PolicyStore::apply`] is one atomic write: it checks the
//! [`Mutation`]'s precondition, changes the data, bumps the revision by one
//! and appends the [`Change`] to the log, which keeps the last `log_limit`
//! entries. [`RedbStore`] commits with [`redb::Durability::Immediate`], so a
//! write that `apply` acknowledged is on disk and survives a crash.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use authz_core::model::{AccessControlPolicy, SetOfAcrs};
use authz_core::resources::Resource;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// Default number of change-log entries kept for `Watch` resumption.
pub const DEFAULT_LOG_LIMIT: usize = 10_000;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The revision after the change.
    pub revision: u64,
    /// The change.
    pub change: Change,
}

/// One write, with its precondition.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Store a new ACP; [`StoreError::AlreadyExists`] when its ID names a
    /// stored ACP or dynamic ACP.
    CreateAcp(AccessControlPolicy),
    /// Replace a stored ACP; [`StoreError::NotFound`] when absent.
    UpdateAcp(AccessControlPolicy),
    /// Delete a stored ACP; [`StoreError::NotFound`] when absent.
    DeleteAcp(String),
    /// Register or replace a resource.
    PutResource(Resource),
    /// Remove a resource; [`StoreError::NotFound`] when absent.
    DeleteResource(String),
    /// Store or replace a dynamic ACP; [`StoreError::AlreadyExists`] when its
    /// ID names a (static) ACP.
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
    /// Nothing is stored under the ID.
    #[error("{0} not found")]
    NotFound(String),
    /// An ACP without `ri`.
    #[error("the ACP has no resource ID")]
    MissingId,
    /// Stored bytes that do not decode.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The backend failed (I/O, database).
    #[error("storage backend: {0}")]
    Backend(String),
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Backend(e.to_string())
            }
        }
    )*};
}
redb_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    std::io::Error
);

/// The whole state at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreSnapshot {
    /// The revision of the last change included.
    pub revision: u64,
    /// ACPs by ID.
    pub acps: BTreeMap<String, AccessControlPolicy>,
    /// Resources by ID.
    pub resources: BTreeMap<String, Resource>,
    /// Dynamic ACPs by ID (expired ones included until swept).
    pub dynamic: BTreeMap<String, DynamicAcp>,
}

impl StoreSnapshot {
    /// Checks `mutation` against this state and returns the change it makes.
    pub fn check(&self, mutation: Mutation) -> Result<Change, StoreError> {
        Ok(match mutation {
            Mutation::CreateAcp(acp) => {
                let id = acp_id(&acp)?;
                if self.acps.contains_key(&id) || self.dynamic.contains_key(&id) {
                    return Err(StoreError::AlreadyExists(id));
                }
                Change::AcpPut(acp)
            }
            Mutation::UpdateAcp(acp) => {
                let id = acp_id(&acp)?;
                if !self.acps.contains_key(&id) {
                    return Err(StoreError::NotFound(id));
                }
                Change::AcpPut(acp)
            }
            Mutation::DeleteAcp(id) => {
                if !self.acps.contains_key(&id) {
                    return Err(StoreError::NotFound(id));
                }
                Change::AcpDeleted(id)
            }
            Mutation::PutResource(r) => Change::ResourcePut(r),
            Mutation::DeleteResource(id) => {
                if !self.resources.contains_key(&id) {
                    return Err(StoreError::NotFound(id));
                }
                Change::ResourceDeleted(id)
            }
            Mutation::PutDynamic(d) => {
                if self.acps.contains_key(&d.id) {
                    return Err(StoreError::AlreadyExists(d.id));
                }
                Change::DynamicPut(d)
            }
            Mutation::DeleteDynamic(id) => {
                if !self.dynamic.contains_key(&id) {
                    return Err(StoreError::NotFound(id));
                }
                Change::DynamicDeleted(id)
            }
        })
    }

    /// Applies a committed change (already checked) at `revision`.
    pub fn apply(&mut self, entry: &LogEntry) {
        match &entry.change {
            Change::AcpPut(acp) => {
                if let Some(id) = acp.resource_id.clone() {
                    self.acps.insert(id, acp.clone());
                }
            }
            Change::AcpDeleted(id) => {
                self.acps.remove(id);
            }
            Change::ResourcePut(r) => {
                self.resources.insert(r.resource_id.clone(), r.clone());
            }
            Change::ResourceDeleted(id) => {
                self.resources.remove(id);
            }
            Change::DynamicPut(d) => {
                self.dynamic.insert(d.id.clone(), d.clone());
            }
            Change::DynamicDeleted(id) => {
                self.dynamic.remove(id);
            }
        }
        self.revision = entry.revision;
    }
}

fn acp_id(acp: &AccessControlPolicy) -> Result<String, StoreError> {
    acp.resource_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or(StoreError::MissingId)
}

/// A PRP storage backend.
///
/// Implementations serialize writes: each [`apply`](Self::apply) is atomic
/// and durable when it returns, and revisions increase by one per change.
pub trait PolicyStore: Send + Sync {
    /// The current revision (0 for an empty store).
    fn revision(&self) -> Result<u64, StoreError>;
    /// The whole state, consistent at one revision.
    fn snapshot(&self) -> Result<StoreSnapshot, StoreError>;
    /// The changes after `from_revision`, in order; `None` when the log no
    /// longer holds all of them (or `from_revision` is ahead of the store),
    /// in which case the caller needs a snapshot.
    fn changes_since(&self, from_revision: u64) -> Result<Option<Vec<LogEntry>>, StoreError>;
    /// Checks and performs one write; returns the logged change.
    fn apply(&self, mutation: Mutation) -> Result<LogEntry, StoreError>;
}

fn log_window(
    from_revision: u64,
    current: u64,
    oldest: Option<u64>,
) -> Result<Option<()>, StoreError> {
    if from_revision > current {
        return Ok(None);
    }
    if from_revision == current {
        return Ok(Some(()));
    }
    match oldest {
        Some(oldest) if oldest <= from_revision + 1 => Ok(Some(())),
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------
// In memory
// ---------------------------------------------------------------------------

#[derive(Default)]
struct MemoryState {
    data: StoreSnapshot,
    log: VecDeque<LogEntry>,
}

/// A store that keeps everything in memory (lost when dropped).
pub struct MemoryStore {
    state: Mutex<MemoryState>,
    log_limit: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_LOG_LIMIT)
    }
}

impl MemoryStore {
    /// An empty store keeping the last `log_limit` changes (at least 1).
    pub fn new(log_limit: usize) -> Self {
        Self {
            state: Mutex::new(MemoryState::default()),
            log_limit: log_limit.max(1),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryState>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }
}

impl PolicyStore for MemoryStore {
    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.data.revision)
    }

    fn snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        Ok(self.lock()?.data.clone())
    }

    fn changes_since(&self, from_revision: u64) -> Result<Option<Vec<LogEntry>>, StoreError> {
        let state = self.lock()?;
        let oldest = state.log.front().map(|e| e.revision);
        Ok(
            log_window(from_revision, state.data.revision, oldest)?.map(|()| {
                state
                    .log
                    .iter()
                    .filter(|e| e.revision > from_revision)
                    .cloned()
                    .collect()
            }),
        )
    }

    fn apply(&self, mutation: Mutation) -> Result<LogEntry, StoreError> {
        let mut state = self.lock()?;
        let change = state.data.check(mutation)?;
        let entry = LogEntry {
            revision: state.data.revision + 1,
            change,
        };
        state.data.apply(&entry);
        state.log.push_back(entry.clone());
        while state.log.len() > self.log_limit {
            state.log.pop_front();
        }
        Ok(entry)
    }
}

// ---------------------------------------------------------------------------
// redb
// ---------------------------------------------------------------------------

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ACPS: TableDefinition<&str, &str> = TableDefinition::new("acps");
const RESOURCES: TableDefinition<&str, &str> = TableDefinition::new("resources");
const DYNAMIC: TableDefinition<&str, &str> = TableDefinition::new("dynamic_acps");
const LOG: TableDefinition<u64, &str> = TableDefinition::new("change_log");
const REVISION_KEY: &str = "revision";

/// A store in one redb file, `<dir>/prp.redb`.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    log_limit: usize,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("log_limit", &self.log_limit)
            .finish()
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl RedbStore {
    /// Opens (or creates) `<dir>/prp.redb`, creating `dir` when needed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_log_limit(dir, DEFAULT_LOG_LIMIT)
    }

    /// Like [`open`](Self::open), keeping the last `log_limit` changes (at
    /// least 1).
    pub fn open_with_log_limit(
        dir: impl AsRef<Path>,
        log_limit: usize,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir.as_ref())?;
        let path = dir.as_ref().join(REDB_FILE);
        let db = Database::create(&path)?;
        // Create the tables so that readers never meet a missing one.
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut meta = txn.open_table(META)?;
            if meta.get(REVISION_KEY)?.is_none() {
                meta.insert(REVISION_KEY, 0)?;
            }
            txn.open_table(ACPS)?;
            txn.open_table(RESOURCES)?;
            txn.open_table(DYNAMIC)?;
            txn.open_table(LOG)?;
        }
        txn.commit()?;
        Ok(Self {
            db,
            path,
            log_limit: log_limit.max(1),
        })
    }

    /// The path of the redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_all<T: for<'de> Deserialize<'de>>(
    table: &impl ReadableTable<&'static str, &'static str>,
    what: &str,
) -> Result<BTreeMap<String, T>, StoreError> {
    let mut out = BTreeMap::new();
    for item in table.iter()? {
        let (k, v) = item?;
        let key = k.value().to_owned();
        let value = from_json(&format!("{what} {key}"), v.value())?;
        out.insert(key, value);
    }
    Ok(out)
}

impl PolicyStore for RedbStore {
    fn revision(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(REVISION_KEY)?.map(|g| g.value()).unwrap_or(0))
    }

    fn snapshot(&self) -> Result<StoreSnapshot, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let revision = meta.get(REVISION_KEY)?.map(|g| g.value()).unwrap_or(0);
        let acps = read_all(&txn.open_table(ACPS)?, "acp")?;
        let resources = read_all(&txn.open_table(RESOURCES)?, "resource")?;
        let dynamic = read_all(&txn.open_table(DYNAMIC)?, "dynamic acp")?;
        Ok(StoreSnapshot {
            revision,
            acps,
            resources,
            dynamic,
        })
    }

    fn changes_since(&self, from_revision: u64) -> Result<Option<Vec<LogEntry>>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let current = meta.get(REVISION_KEY)?.map(|g| g.value()).unwrap_or(0);
        let log = txn.open_table(LOG)?;
        let oldest = log.first()?.map(|(k, _)| k.value());
        if log_window(from_revision, current, oldest)?.is_none() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for item in log.range(from_revision.saturating_add(1)..)? {
            let (k, v) = item?;
            let revision = k.value();
            let change = from_json(&format!("log entry {revision}"), v.value())?;
            out.push(LogEntry { revision, change });
        }
        Ok(Some(out))
    }

    fn apply(&self, mutation: Mutation) -> Result<LogEntry, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let entry = {
            let mut meta = txn.open_table(META)?;
            let mut acps = txn.open_table(ACPS)?;
            let mut resources = txn.open_table(RESOURCES)?;
            let mut dynamic = txn.open_table(DYNAMIC)?;
            let mut log = txn.open_table(LOG)?;
            let revision = meta.get(REVISION_KEY)?.map(|g| g.value()).unwrap_or(0) + 1;

            let change = match mutation {
                Mutation::CreateAcp(acp) => {
                    let id = acp_id(&acp)?;
                    if acps.get(id.as_str())?.is_some() || dynamic.get(id.as_str())?.is_some() {
                        return Err(StoreError::AlreadyExists(id));
                    }
                    acps.insert(id.as_str(), to_json(&acp)?.as_str())?;
                    Change::AcpPut(acp)
                }
                Mutation::UpdateAcp(acp) => {
                    let id = acp_id(&acp)?;
                    if acps.get(id.as_str())?.is_none() {
                        return Err(StoreError::NotFound(id));
                    }
                    acps.insert(id.as_str(), to_json(&acp)?.as_str())?;
                    Change::AcpPut(acp)
                }
                Mutation::DeleteAcp(id) => {
                    if acps.remove(id.as_str())?.is_none() {
                        return Err(StoreError::NotFound(id));
                    }
                    Change::AcpDeleted(id)
                }
                Mutation::PutResource(r) => {
                    resources.insert(r.resource_id.as_str(), to_json(&r)?.as_str())?;
                    Change::ResourcePut(r)
                }
                Mutation::DeleteResource(id) => {
                    if resources.remove(id.as_str())?.is_none() {
                        return Err(StoreError::NotFound(id));
                    }
                    Change::ResourceDeleted(id)
                }
                Mutation::PutDynamic(d) => {
                    if acps.get(d.id.as_str())?.is_some() {
                        return Err(StoreError::AlreadyExists(d.id));
                    }
                    dynamic.insert(d.id.as_str(), to_json(&d)?.as_str())?;
                    Change::DynamicPut(d)
                }
                Mutation::DeleteDynamic(id) => {
                    if dynamic.remove(id.as_str())?.is_none() {
                        return Err(StoreError::NotFound(id));
                    }
                    Change::DynamicDeleted(id)
                }
            };
            let entry = LogEntry { revision, change };
            log.insert(revision, to_json(&entry.change)?.as_str())?;
            meta.insert(REVISION_KEY, revision)?;
            // Trim the log to the last `log_limit` entries.
            let keep_from = revision.saturating_sub(self.log_limit as u64 - 1);
            log.retain_in(..keep_from, |_, _| false)?;
            entry
        };
        // Returning early above drops `txn` uncommitted: nothing is written.
        txn.commit()?;
        Ok(entry)
    }
}
