//! # authz-store
//!
//! A durable revisioned store, shared by the services that keep state (the
//! PRP's policies, the PIP's attributes). A [`Schema`] says what the store
//! holds and how a write changes it; [`Store`] keeps the whole state in
//! memory, so that reads need no I/O, and commits every write to a
//! [`Backend`] before it changes memory.
//!
//! Every [`Store::apply`] is one atomic, durable write: it checks the
//! mutation against the current state, commits the rows it changes, the new
//! revision (one more than the last) and the change itself in one backend
//! transaction, then applies the change in memory. The change log keeps the
//! last `log_limit` changes (fewer when they add up to more than
//! [`LOG_BYTE_LIMIT`]), in memory and in the backend, so that a `Watch`
//! stream can resume from a revision instead of starting over with a
//! snapshot, also after a restart.
//!
//! [`Store::memory`] keeps no durable copy (tests, services without a data
//! directory); [`Store::open_redb`] keeps everything in one redb file
//! ([`RedbBackend`]).
//!
//! Every store has an ID ([`Store::store_id`]), made when its storage is
//! created: a redb file keeps its ID for life (a file written by an earlier
//! version gets one the first time this version opens it), a memory store
//! gets a new one each time it is made. Revisions only mean something
//! within one store, so a watcher that resumes from a revision can present
//! the ID of the store that revision came from, and a different ID means
//! it has to start over. A copy of a redb file (a restored backup) keeps
//! the original's ID, so the ID tells stores apart, not two copies of one.
//! What tells two histories of one store apart is the tag of each change
//! ([`LogEntry::tag`]): a random number drawn when the change is committed
//! and logged with it, so a watcher that resumes can present the tag of its
//! revision ([`Store::tag_at`]) and one restored from a backup that has
//! written since holds another change under that revision number.

#![warn(missing_docs)]

mod redb_backend;

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use redb_backend::RedbBackend;

/// Default number of change-log entries kept for `Watch` resumption.
pub const DEFAULT_LOG_LIMIT: usize = 10_000;

/// The most bytes of changes (as logged, JSON) the change log keeps, in
/// memory and in the backend, besides [`DEFAULT_LOG_LIMIT`] entries: large
/// records written over and over (a 1 MiB ACP, a group of 100 000 members)
/// would otherwise keep gigabytes for resumption alone. A watcher further
/// behind gets a snapshot. The latest change is always kept.
pub const LOG_BYTE_LIMIT: usize = 64 << 20;

/// Why the store failed, independently of what it holds.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Stored data that does not decode or is inconsistent.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The backend failed (I/O, database).
    #[error("storage backend: {0}")]
    Backend(String),
}

macro_rules! backend_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Backend(e.to_string())
            }
        }
    )*};
}
impl StoreError {
    /// This error of the store in the file at `path`, naming the file.
    fn in_file(self, path: &Path) -> Self {
        match self {
            Self::Corrupt(m) => Self::Corrupt(format!("{}: {m}", path.display())),
            Self::Backend(m) => Self::Backend(format!("{}: {m}", path.display())),
        }
    }
}

backend_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    std::io::Error
);

/// One stored row: a value (JSON text) under (collection, key); `value:
/// None` deletes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The collection (a table of the schema, e.g. `acp`).
    pub collection: String,
    /// The key within the collection.
    pub key: String,
    /// The value as JSON text; `None` deletes the row.
    pub value: Option<String>,
}

/// What a store holds and how writes change it.
pub trait Schema: Send + Sync + 'static {
    /// The whole state, kept in memory.
    type State: Default + Clone + Send + Sync + 'static;
    /// One checked change, as logged and streamed to watchers.
    type Change: Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug
        + PartialEq
        + Send
        + Sync
        + 'static;
    /// One requested write, with its precondition.
    type Mutation: Send + 'static;
    /// Why a write failed (a failed precondition or a [`StoreError`]).
    type Error: From<StoreError> + Send + 'static;

    /// Checks `mutation` against `state`; returns the change it makes
    /// (nothing is changed on error).
    fn check(state: &Self::State, mutation: Self::Mutation) -> Result<Self::Change, Self::Error>;

    /// Applies a checked change to the in-memory state.
    fn apply(state: &mut Self::State, change: &Self::Change);

    /// The rows `change` writes in a durable backend.
    fn rows(change: &Self::Change) -> Result<Vec<Row>, StoreError>;

    /// Rebuilds state from one stored row when a durable store opens.
    fn load(
        state: &mut Self::State,
        collection: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError>;
}

/// A committed change and the revision it brought the store to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry<C> {
    /// The revision after the change.
    pub revision: u64,
    /// The change.
    pub change: C,
    /// A random number drawn when the change was committed ([`new_tag`]);
    /// 0 when unknown (logged by a version without tags).
    #[serde(default)]
    pub tag: u64,
}

/// Creates `dir` and its missing parents as directories only their owner
/// may enter (mode 0700 on Unix): they hold stores of tokens and policies.
/// Directories that exist keep their modes.
pub fn create_private_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new store ID: 32 hex digits (128 bits) hashed from the process's
/// random hash seed (which std draws from the operating system's random
/// source), the time, the process ID and a counter, so that two stores
/// made anywhere do not share one in practice.
pub fn new_store_id() -> String {
    format!("{:016x}{:016x}", random_word(), random_word())
}

/// A new change tag ([`LogEntry::tag`]): 64 random bits, never 0 (which
/// means unknown).
pub fn new_tag() -> u64 {
    random_word().max(1)
}

/// 64 bits hashed from the process's random hash seed (which std draws
/// from the operating system's random source), the time, the process ID
/// and a counter.
fn random_word() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // Each `RandomState` has its own keys (seeded once per thread from the
    // OS, then stepped), so two words come from different keys.
    let mut h = RandomState::new().build_hasher();
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.write_u64(count);
    h.finish()
}

/// Everything a [`Backend`] holds, as read when a store opens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The store's ID, made when the backend's storage was created (see
    /// [`Store::store_id`]); `None` when the backend keeps none, in which
    /// case the [`Store`] makes a new one each time it opens the backend.
    pub store_id: Option<String>,
    /// The revision of the last committed write (0 when empty).
    pub revision: u64,
    /// Every stored row (`value` is always `Some`).
    pub rows: Vec<Row>,
    /// The change log in increasing revision order.
    pub log: Vec<LoggedChange>,
}

/// One change-log entry as a [`Backend`] stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoggedChange {
    /// The revision after the change.
    pub revision: u64,
    /// The change as JSON.
    pub change: String,
    /// Its tag ([`LogEntry::tag`]); 0 when the backend kept none.
    pub tag: u64,
}

/// A durable backend: loads everything at open, commits one write atomically
/// and durably.
///
/// The [`Store`] serializes writes; a backend only has to make each
/// [`commit`](Self::commit) all-or-nothing and durable when it returns.
pub trait Backend: Send + Sync {
    /// Reads the stored ID, revision, rows and change log.
    fn load(&self) -> Result<Loaded, StoreError>;

    /// In one atomic, durable transaction: writes `rows` (a `None` value
    /// deletes), sets the revision to `change.revision`, logs `change` and
    /// deletes the log entries below `keep_log_from`.
    fn commit(
        &self,
        rows: &[Row],
        change: &LoggedChange,
        keep_log_from: u64,
    ) -> Result<(), StoreError>;
}

/// The in-memory copy: the state, its revision and the recent changes.
struct Data<S: Schema> {
    revision: u64,
    state: S::State,
    /// Contiguous revisions ending at `revision` (or empty).
    log: VecDeque<LogEntry<S::Change>>,
    /// The logged size of each entry of `log`, and their sum.
    log_sizes: VecDeque<usize>,
    log_bytes: usize,
}

impl<S: Schema> Data<S> {
    /// Appends `entry` of logged size `size`, then drops the oldest entries
    /// before `keep_from`.
    fn push_log(&mut self, entry: LogEntry<S::Change>, size: usize, keep_from: u64) {
        self.log.push_back(entry);
        self.log_sizes.push_back(size);
        self.log_bytes += size;
        while self.log.front().is_some_and(|e| e.revision < keep_from) {
            self.log.pop_front();
            self.log_bytes -= self.log_sizes.pop_front().unwrap_or_default();
        }
    }

    /// The first revision the log keeps once a change of logged size `size`
    /// at `revision` is added: the last `log_limit` changes, fewer when
    /// they add up to more than `byte_limit` (the new one always kept).
    fn keep_from(&self, revision: u64, size: usize, log_limit: usize, byte_limit: usize) -> u64 {
        let mut keep = keep_log_from(revision, log_limit);
        let mut bytes = self.log_bytes + size;
        for (entry, entry_size) in self.log.iter().zip(&self.log_sizes) {
            if bytes <= byte_limit {
                break;
            }
            bytes -= entry_size;
            keep = keep.max(entry.revision + 1);
        }
        keep
    }
}

/// A revisioned store: the whole state in memory (read without I/O), every
/// write committed to the backend first.
pub struct Store<S: Schema> {
    backend: Option<Box<dyn Backend>>,
    id: String,
    log_limit: usize,
    /// [`LOG_BYTE_LIMIT`], unless set otherwise.
    log_byte_limit: usize,
    data: RwLock<Data<S>>,
    /// Held for a whole write (check, commit, apply), so that the checked
    /// state is still current when the change is applied; readers only wait
    /// for the in-memory apply, not for the backend.
    writer: Mutex<()>,
}

impl<S: Schema> std::fmt::Debug for Store<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("id", &self.id)
            .field("revision", &self.revision())
            .field("durable", &self.backend.is_some())
            .field("log_limit", &self.log_limit)
            .finish_non_exhaustive()
    }
}

/// The first revision the log keeps after a write at `revision`.
fn keep_log_from(revision: u64, log_limit: usize) -> u64 {
    let span = u64::try_from(log_limit.saturating_sub(1)).unwrap_or(u64::MAX);
    revision.saturating_sub(span)
}

impl<S: Schema> Store<S> {
    /// An empty store without durability, keeping the last `log_limit`
    /// changes (at least 1).
    pub fn memory(log_limit: usize) -> Self {
        Self {
            backend: None,
            id: new_store_id(),
            log_limit: log_limit.max(1),
            log_byte_limit: LOG_BYTE_LIMIT,
            data: RwLock::new(Data {
                revision: 0,
                state: S::State::default(),
                log: VecDeque::new(),
                log_sizes: VecDeque::new(),
                log_bytes: 0,
            }),
            writer: Mutex::new(()),
        }
    }

    /// This store keeping at most `bytes` of logged changes instead of
    /// [`LOG_BYTE_LIMIT`] (from its next write on).
    pub fn with_log_byte_limit(mut self, bytes: usize) -> Self {
        self.log_byte_limit = bytes;
        self
    }

    /// Opens (or creates) the redb file at `path`, creating its parent
    /// directories when needed. Its errors name the file.
    pub fn open_redb(path: &Path, log_limit: usize) -> Result<Self, StoreError> {
        Self::open_redb_with_state(path, log_limit, S::State::default())
    }

    /// [`Store::open_redb`], loading the stored rows into `initial` instead
    /// of an empty state: for a schema whose [`Schema::load`] needs
    /// configuration (which the state then carries).
    pub fn open_redb_with_state(
        path: &Path,
        log_limit: usize,
        initial: S::State,
    ) -> Result<Self, StoreError> {
        Self::with_backend_and_state(Box::new(RedbBackend::open(path)?), log_limit, initial)
            .map_err(|e| e.in_file(path))
    }

    /// A store over `backend`, its state rebuilt from the stored rows, its
    /// log from the stored log (the last `log_limit` changes, at least 1)
    /// and its ID from the stored ID (a new one when the backend keeps
    /// none).
    pub fn with_backend(backend: Box<dyn Backend>, log_limit: usize) -> Result<Self, StoreError> {
        Self::with_backend_and_state(backend, log_limit, S::State::default())
    }

    /// [`Store::with_backend`], loading the stored rows into `initial`.
    pub fn with_backend_and_state(
        backend: Box<dyn Backend>,
        log_limit: usize,
        initial: S::State,
    ) -> Result<Self, StoreError> {
        let log_limit = log_limit.max(1);
        let loaded = backend.load()?;
        let mut state = initial;
        for row in &loaded.rows {
            if let Some(value) = &row.value {
                S::load(&mut state, &row.collection, &row.key, value)?;
            }
        }
        // The last `log_limit` changes, fewer when they add up to more than
        // the byte limit (the last one always kept).
        let mut keep_from = keep_log_from(loaded.revision, log_limit);
        let mut bytes = 0usize;
        for logged in loaded.log.iter().rev() {
            bytes += logged.change.len();
            if bytes > LOG_BYTE_LIMIT && logged.revision < loaded.revision {
                keep_from = keep_from.max(logged.revision + 1);
                break;
            }
        }
        let mut log = VecDeque::new();
        let mut log_sizes = VecDeque::new();
        let mut log_bytes = 0usize;
        let mut previous: Option<u64> = None;
        for logged in &loaded.log {
            let revision = logged.revision;
            // A gap or an entry past the revision means a torn or foreign
            // log: resuming from it would skip changes silently.
            if previous.is_some_and(|p| p.checked_add(1) != Some(revision))
                || revision > loaded.revision
            {
                return Err(StoreError::Corrupt(format!(
                    "change log entry {revision} out of sequence (store revision {})",
                    loaded.revision
                )));
            }
            previous = Some(revision);
            if revision < keep_from {
                continue;
            }
            let change = serde_json::from_str(&logged.change)
                .map_err(|e| StoreError::Corrupt(format!("change log entry {revision}: {e}")))?;
            log.push_back(LogEntry {
                revision,
                change,
                tag: logged.tag,
            });
            log_sizes.push_back(logged.change.len());
            log_bytes += logged.change.len();
        }
        if let Some(last) = previous
            && last != loaded.revision
        {
            return Err(StoreError::Corrupt(format!(
                "change log ends at {last} but the store is at revision {}",
                loaded.revision
            )));
        }
        let id = loaded
            .store_id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(new_store_id);
        Ok(Self {
            backend: Some(backend),
            id,
            log_limit,
            log_byte_limit: LOG_BYTE_LIMIT,
            data: RwLock::new(Data {
                revision: loaded.revision,
                state,
                log,
                log_sizes,
                log_bytes,
            }),
            writer: Mutex::new(()),
        })
    }

    /// The store's ID: made when its storage was created and kept with it
    /// (for life in a redb file; a memory store's dies with it). Revisions
    /// of two stores with different IDs have nothing to do with each other.
    pub fn store_id(&self) -> &str {
        &self.id
    }

    /// The current revision (0 for an empty store).
    pub fn revision(&self) -> u64 {
        self.read(|revision, _| revision)
    }

    /// Calls `f` with the current revision and state, under a read lock
    /// (keep `f` short: writes wait for it).
    pub fn read<T>(&self, f: impl FnOnce(u64, &S::State) -> T) -> T {
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        f(data.revision, &data.state)
    }

    /// A copy of the current revision and state.
    pub fn snapshot(&self) -> (u64, S::State) {
        self.read(|revision, state| (revision, state.clone()))
    }

    /// The changes after `from_revision`, in order. `None` when the log no
    /// longer holds every change after `from_revision` or `from_revision` is
    /// ahead of the store: the caller needs a snapshot instead.
    pub fn changes_since(&self, from_revision: u64) -> Option<Vec<LogEntry<S::Change>>> {
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        if from_revision > data.revision {
            return None;
        }
        if from_revision == data.revision {
            return Some(Vec::new());
        }
        let oldest = data.log.front()?.revision;
        if oldest > from_revision + 1 {
            return None;
        }
        // The log is contiguous: the first wanted entry is at a known index.
        let skip = usize::try_from(from_revision + 1 - oldest).ok()?;
        Some(data.log.iter().skip(skip).cloned().collect())
    }

    /// The tag of the change that brought the store to `revision`
    /// ([`LogEntry::tag`]), while the log holds it; `None` otherwise
    /// (revision 0 included).
    pub fn tag_at(&self, revision: u64) -> Option<u64> {
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        let oldest = data.log.front()?.revision;
        let index = usize::try_from(revision.checked_sub(oldest)?).ok()?;
        data.log.get(index).map(|e| e.tag)
    }

    /// Like [`Store::snapshot`], with the tag of the current revision
    /// ([`Store::tag_at`]; 0 when the log does not hold it).
    pub fn tagged_snapshot(&self) -> (u64, u64, S::State) {
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        let tag = data
            .log
            .back()
            .filter(|e| e.revision == data.revision)
            .map_or(0, |e| e.tag);
        (data.revision, tag, data.state.clone())
    }

    /// Checks `mutation`, commits the change to the backend (durable when
    /// this returns), applies it in memory and appends it to the log. One
    /// write at a time; a failed write changes nothing, not even the
    /// revision.
    pub fn apply(&self, mutation: S::Mutation) -> Result<LogEntry<S::Change>, S::Error> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let (current, change) =
            self.read(|revision, state| S::check(state, mutation).map(|c| (revision, c)))?;
        let revision = current
            .checked_add(1)
            .ok_or_else(|| StoreError::Backend("revision counter exhausted".into()))?;
        let tag = new_tag();
        // Its logged size counts towards the log's byte limit, for a memory
        // store too.
        let json = serde_json::to_string(&change)
            .map_err(|e| StoreError::Corrupt(format!("change does not serialize: {e}")))?;
        let size = json.len();
        let keep_from = {
            let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
            data.keep_from(revision, size, self.log_limit, self.log_byte_limit)
        };
        if let Some(backend) = &self.backend {
            let rows = S::rows(&change)?;
            backend.commit(
                &rows,
                &LoggedChange {
                    revision,
                    change: json,
                    tag,
                },
                keep_from,
            )?;
        }
        let entry = LogEntry {
            revision,
            change,
            tag,
        };
        let mut data = self.data.write().unwrap_or_else(PoisonError::into_inner);
        S::apply(&mut data.state, &entry.change);
        data.revision = revision;
        data.push_log(entry.clone(), size, keep_from);
        Ok(entry)
    }
}
