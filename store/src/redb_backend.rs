//! The redb [`Backend`]: one database file with five tables, `meta` (the
//! revision), `identity` (the store ID, made when the file is created, or
//! when a file without one is first opened), `rows` ((collection, key) →
//! JSON text), `change_log` (revision → change JSON) and `change_tag`
//! (revision → the change's tag; a file written before tags has none for
//! its older entries). Every commit is one write transaction with
//! [`Durability::Immediate`], so an acknowledged write survives a crash.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use crate::{Backend, Loaded, LoggedChange, Row, StoreError, new_store_id};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ROWS: TableDefinition<(&str, &str), &str> = TableDefinition::new("rows");
const LOG: TableDefinition<u64, &str> = TableDefinition::new("change_log");
const TAGS: TableDefinition<u64, u64> = TableDefinition::new("change_tag");
const IDENTITY: TableDefinition<&str, &str> = TableDefinition::new("identity");
const REVISION_KEY: &str = "revision";
const STORE_ID_KEY: &str = "store_id";

/// The name [`RedbBackend::create_new_file`] makes a new store file under
/// before linking it to `path`: `.NAME.new-PID`, beside it.
fn new_file_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.new-")
}

/// Removes the files a start killed while making the store file at `path`
/// left beside it (`.NAME.new-PID` of a process no longer running), so
/// that a `kill -9` at the wrong moment leaves no litter in a data
/// directory for good. One of a running process (another start making the
/// file now) is its own; without `/proc` nothing is removed. Best effort:
/// a file that cannot be removed stays, as it did.
fn remove_abandoned_new_files(path: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = new_file_prefix(path);
    let dir = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        // A PID as `create_new_file` writes it (no sign, no leading zero),
        // on a regular file (a link named like one is not its doing).
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix.as_str()))
            .filter(|pid| pid.parse::<u32>().is_ok_and(|n| n.to_string() == *pid))
        else {
            continue;
        };
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if regular && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A [`Backend`] in one redb file.
pub struct RedbBackend {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbBackend {
    /// Opens the redb file at `path`, creating it (and its parent
    /// directories) when missing. A file that exists but is not a redb
    /// database is an error, never overwritten. A file without a store ID
    /// (new, or written by an earlier version) is given one, durably. Its
    /// errors name the file (a lock held by another process, a directory
    /// without write permission).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        unpanicked(|| Self::create(path)).map_err(|e| e.in_file(path))
    }

    fn create(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::create_private_dir_all(parent)?;
        }
        remove_abandoned_new_files(path);
        if let Err(e) = std::fs::symlink_metadata(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e.into());
            }
            Self::create_new_file(path)?;
        } else {
            Self::check_readable(path)?;
        }
        // `create` opens a valid database and initializes only a missing or
        // empty file (an operator's empty file: initialized in place).
        let db = Database::create(path)?;
        Self::initialize(&db)?;
        Ok(Self {
            db,
            path: path.to_owned(),
        })
    }

    /// Makes a new, initialized store file at `path`: in a file of its own
    /// first, linked to `path` once complete, so that a start cut short
    /// (`kill -9`) leaves no half-made file that every later start would
    /// refuse as no redb database. A link, unlike a rename, never replaces
    /// a file another process made meanwhile.
    fn create_new_file(path: &Path) -> Result<(), StoreError> {
        let tmp = path.with_file_name(format!("{}{}", new_file_prefix(path), std::process::id()));
        // One left by an earlier process of the same ID, cut short.
        let _ = std::fs::remove_file(&tmp);
        let made = (|| {
            // Stores hold tokens and policies: a new file is its owner's
            // only (an existing one keeps the modes its operator gave it).
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(&tmp)?;
            Self::initialize(&Database::create(&tmp)?)?;
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => {}
                // Another process made it meanwhile: that one is opened.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError::from(e)),
            }
            // The link durable before anything is written through it.
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        })();
        let _ = std::fs::remove_file(&tmp);
        made
    }

    /// Reads all of an existing file through a read-only handle, which
    /// writes nothing, so that a file with damaged pages is refused as it
    /// is: opened for writing first, it would get a commit (and redb's
    /// recovery flag) before the damage showed. A file that cannot be
    /// opened so (one that needs the recovery a `kill -9` leaves, one
    /// another process holds, an empty one) is left to the writable open,
    /// which recovers it or says why not.
    fn check_readable(path: &Path) -> Result<(), StoreError> {
        let Ok(db) = redb::ReadOnlyDatabase::open(path) else {
            return Ok(());
        };
        // Only a panic is damage here: an error (a table an older file
        // lacks) is the writable open's to mend or report.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // The table directory too, which the writable open reads.
            if let Ok(txn) = db.begin_read()
                && let Ok(tables) = txn.list_tables()
            {
                tables.for_each(drop);
            }
            read_all(&db)
        }))
        .map(drop)
        .map_err(damaged)
    }

    /// Whether a store file has its revision, every table and a store ID.
    fn is_initialized(db: &Database) -> Result<bool, StoreError> {
        let txn = db.begin_read()?;
        let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
        let has = |name: &str| tables.iter().any(|t| t == name);
        if ![
            META.name(),
            ROWS.name(),
            LOG.name(),
            TAGS.name(),
            IDENTITY.name(),
        ]
        .into_iter()
        .all(has)
        {
            return Ok(false);
        }
        let revision = txn.open_table(META)?.get(REVISION_KEY)?.is_some();
        let id = txn
            .open_table(IDENTITY)?
            .get(STORE_ID_KEY)?
            .is_some_and(|g| !g.value().is_empty());
        Ok(revision && id)
    }

    /// Gives a store file its revision, tables and store ID where it lacks
    /// them, durably; refuses a file of another layout.
    fn initialize(db: &Database) -> Result<(), StoreError> {
        // A file that has it all is not written to: a start commits
        // nothing (a commit also rewrites redb's list of freed pages, which
        // no read looks at: damage there shows at the first write instead,
        // as that write's error).
        if Self::is_initialized(db)? {
            return Ok(());
        }
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let had_rows = txn.list_tables()?.any(|t| t.name() == ROWS.name());
            let mut meta = txn.open_table(META)?;
            let revision = meta.get(REVISION_KEY)?.map(|g| g.value());
            match revision {
                // A revision without a rows table: a file of another layout
                // (e.g. an older PRP); opening it as empty would lose data.
                Some(revision) if revision > 0 && !had_rows => {
                    return Err(StoreError::Corrupt(format!(
                        "at revision {revision} but has no `rows` table (not an authz-store file)"
                    )));
                }
                Some(_) => {}
                None => {
                    meta.insert(REVISION_KEY, 0)?;
                }
            }
            // Create the tables so that readers never meet a missing one.
            txn.open_table(ROWS)?;
            txn.open_table(LOG)?;
            txn.open_table(TAGS)?;
            let mut identity = txn.open_table(IDENTITY)?;
            let has_id = identity
                .get(STORE_ID_KEY)?
                .is_some_and(|g| !g.value().is_empty());
            if !has_id {
                identity.insert(STORE_ID_KEY, new_store_id().as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The path of the redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `f`, with a panic inside it (redb panics on some damaged pages instead
/// of answering an error) turned into [`StoreError::Corrupt`], so that the
/// caller can name the file.
fn unpanicked<T>(f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| Err(damaged(p)))
}

/// The error of a panic redb raised reading a page.
fn damaged(panic: Box<dyn std::any::Any + Send>) -> StoreError {
    let why = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    StoreError::Corrupt(format!(
        "a page could not be read ({why}); restore the file from a backup"
    ))
}

/// Everything a store file holds ([`Backend::load`]).
fn read_all(db: &impl ReadableDatabase) -> Result<Loaded, StoreError> {
    let txn = db.begin_read()?;
    let revision = txn
        .open_table(META)?
        .get(REVISION_KEY)?
        .map(|g| g.value())
        .unwrap_or(0);
    let mut rows = Vec::new();
    for item in txn.open_table(ROWS)?.iter()? {
        let (k, v) = item?;
        let (collection, key) = k.value();
        rows.push(Row {
            collection: collection.to_owned(),
            key: key.to_owned(),
            value: Some(v.value().to_owned()),
        });
    }
    let tags = txn.open_table(TAGS)?;
    let mut log = Vec::new();
    for item in txn.open_table(LOG)?.iter()? {
        let (k, v) = item?;
        let revision = k.value();
        log.push(LoggedChange {
            revision,
            change: v.value().to_owned(),
            tag: tags.get(revision)?.map_or(0, |g| g.value()),
        });
    }
    let store_id = txn
        .open_table(IDENTITY)?
        .get(STORE_ID_KEY)?
        .map(|g| g.value().to_owned());
    Ok(Loaded {
        store_id,
        revision,
        rows,
        log,
    })
}

impl Backend for RedbBackend {
    fn load(&self) -> Result<Loaded, StoreError> {
        unpanicked(|| read_all(&self.db)).map_err(|e| e.in_file(&self.path))
    }

    fn commit(
        &self,
        rows: &[Row],
        change: &LoggedChange,
        keep_log_from: u64,
    ) -> Result<(), StoreError> {
        unpanicked(|| self.commit_durably(rows, change, keep_log_from))
            .map_err(|e| e.in_file(&self.path))
    }
}

impl RedbBackend {
    /// One write transaction with [`Durability::Immediate`] ([`Backend::commit`]).
    fn commit_durably(
        &self,
        rows: &[Row],
        change: &LoggedChange,
        keep_log_from: u64,
    ) -> Result<(), StoreError> {
        let revision = change.revision;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(ROWS)?;
            for row in rows {
                let key = (row.collection.as_str(), row.key.as_str());
                match &row.value {
                    Some(value) => {
                        table.insert(key, value.as_str())?;
                    }
                    None => {
                        table.remove(key)?;
                    }
                }
            }
            let mut log = txn.open_table(LOG)?;
            log.insert(revision, change.change.as_str())?;
            log.retain_in(..keep_log_from, |_, _| false)?;
            let mut tags = txn.open_table(TAGS)?;
            tags.insert(revision, change.tag)?;
            tags.retain_in(..keep_log_from, |_, _| false)?;
            txn.open_table(META)?.insert(REVISION_KEY, revision)?;
        }
        // An early return above drops `txn` uncommitted: nothing is written.
        txn.commit()?;
        Ok(())
    }
}
