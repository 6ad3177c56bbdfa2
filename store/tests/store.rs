//! The store against a tiny key-value schema, in memory and on redb:
//! revisions, failed writes, change-log windows, durability across a reopen
//! and a backend that fails.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use authz_store::{
    Backend, DEFAULT_LOG_LIMIT, Loaded, LogEntry, LoggedChange, Row, Schema, Store, StoreError,
};
use common::temp_path;
use serde::{Deserialize, Serialize};

/// A map of strings; one collection, `kv`.
struct Kv;

enum Mutation {
    Put(&'static str, &'static str),
    Delete(&'static str),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Change {
    Put(String, String),
    Deleted(String),
}

#[derive(Debug, thiserror::Error)]
enum KvError {
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Schema for Kv {
    type State = BTreeMap<String, String>;
    type Change = Change;
    type Mutation = Mutation;
    type Error = KvError;

    fn check(state: &Self::State, mutation: Mutation) -> Result<Change, KvError> {
        match mutation {
            Mutation::Put(k, v) => Ok(Change::Put(k.into(), v.into())),
            Mutation::Delete(k) if state.contains_key(k) => Ok(Change::Deleted(k.into())),
            Mutation::Delete(k) => Err(KvError::NotFound(k.into())),
        }
    }

    fn apply(state: &mut Self::State, change: &Change) {
        match change {
            Change::Put(k, v) => {
                state.insert(k.clone(), v.clone());
            }
            Change::Deleted(k) => {
                state.remove(k);
            }
        }
    }

    fn rows(change: &Change) -> Result<Vec<Row>, StoreError> {
        let (key, value) = match change {
            Change::Put(k, v) => (k, Some(serde_json::to_string(v).expect("a string"))),
            Change::Deleted(k) => (k, None),
        };
        Ok(vec![Row {
            collection: "kv".into(),
            key: key.clone(),
            value,
        }])
    }

    fn load(
        state: &mut Self::State,
        collection: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        if collection != "kv" {
            return Err(StoreError::Corrupt(format!("collection {collection}")));
        }
        let value = serde_json::from_str(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        state.insert(key.into(), value);
        Ok(())
    }
}

fn revisions(log: &[LogEntry<Change>]) -> Vec<u64> {
    log.iter().map(|e| e.revision).collect()
}

/// The same sequence against any store (empty when called).
fn exercise(store: &Store<Kv>) {
    assert_eq!(store.revision(), 0);
    assert_eq!(store.changes_since(0), Some(vec![]));
    for (i, m) in [
        Mutation::Put("a", "1"),
        Mutation::Put("b", "2"),
        Mutation::Put("a", "3"),
    ]
    .into_iter()
    .enumerate()
    {
        let e = store.apply(m).expect("put");
        assert_eq!(e.revision, i as u64 + 1, "one revision per write");
        assert_eq!(store.revision(), e.revision);
    }
    // A failed check changes nothing, not even the revision.
    let before = store.snapshot();
    assert!(matches!(
        store.apply(Mutation::Delete("zzz")),
        Err(KvError::NotFound(k)) if k == "zzz"
    ));
    assert_eq!(store.snapshot(), before);
    assert_eq!(store.revision(), 3);

    let e = store.apply(Mutation::Delete("b")).expect("delete");
    assert_eq!(
        e,
        LogEntry {
            revision: 4,
            change: Change::Deleted("b".into()),
            tag: e.tag,
        }
    );
    assert_ne!(e.tag, 0, "a committed change has a tag");
    let (revision, state) = store.snapshot();
    assert_eq!(revision, 4);
    assert_eq!(state, BTreeMap::from([("a".to_string(), "3".to_string())]));
    store.read(|revision, state| {
        assert_eq!(revision, 4);
        assert_eq!(state.get("a").map(String::as_str), Some("3"));
    });

    let log = store.changes_since(2).expect("in window");
    assert_eq!(revisions(&log), vec![3, 4]);
    assert_eq!(log[0].change, Change::Put("a".into(), "3".into()));
    assert_eq!(
        revisions(&store.changes_since(0).expect("all")),
        vec![1, 2, 3, 4]
    );
    assert_eq!(store.changes_since(4), Some(vec![]), "from == current");
    assert_eq!(store.changes_since(5), None, "ahead");
}

/// Five puts into a store keeping two changes: the window is 3.. .
fn exercise_trim(store: &Store<Kv>) {
    for k in ["a", "b", "c", "d", "e"] {
        store.apply(Mutation::Put(k, "x")).expect("put");
    }
    assert_eq!(store.changes_since(2), None, "3 was trimmed");
    assert_eq!(store.changes_since(0), None, "1 was trimmed");
    assert_eq!(
        revisions(&store.changes_since(3).expect("window")),
        vec![4, 5]
    );
    assert_eq!(revisions(&store.changes_since(4).expect("window")), vec![5]);
    assert_eq!(store.changes_since(5), Some(vec![]));
}

#[test]
fn memory_store_revisions_failures_and_log() {
    exercise(&Store::memory(DEFAULT_LOG_LIMIT));
}

#[test]
fn redb_store_revisions_failures_and_log() {
    let (_guard, dir) = temp_path("store", "exercise");
    exercise(&Store::open_redb(&dir.join("kv.redb"), DEFAULT_LOG_LIMIT).expect("open"));
}

#[test]
fn memory_log_is_trimmed_to_its_limit() {
    exercise_trim(&Store::memory(2));
    // A limit of 0 keeps one change: the last one.
    let store = Store::<Kv>::memory(0);
    store.apply(Mutation::Put("a", "1")).expect("put");
    store.apply(Mutation::Put("a", "2")).expect("put");
    assert_eq!(revisions(&store.changes_since(1).expect("window")), vec![2]);
    assert_eq!(store.changes_since(0), None);
}

#[test]
fn redb_log_is_trimmed_to_its_limit_also_on_disk() {
    let (_guard, dir) = temp_path("store", "trim");
    let path = dir.join("nested").join("kv.redb");
    exercise_trim(&Store::open_redb(&path, 2).expect("open"));
    // Reopened with a larger limit, the log still starts at 4: the file was
    // trimmed too.
    let store = Store::<Kv>::open_redb(&path, 100).expect("reopen");
    assert_eq!(store.changes_since(2), None);
    assert_eq!(
        revisions(&store.changes_since(3).expect("window")),
        vec![4, 5]
    );
    drop(store);
}

/// What a start killed while making its store file left beside it
/// (`.NAME.new-PID` of a process that is gone) is removed by the next open;
/// one of a running process (PID 1 here), of another name, a PID not as
/// a process ID is written, or a symbolic link named like one, stays.
#[cfg(target_os = "linux")]
#[test]
fn an_open_removes_what_a_killed_start_left_beside_the_file() {
    let (_guard, dir) = temp_path("store", "abandoned");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("kv.redb");
    // Above any Linux pid_max (at most 2^22): no such process.
    let gone = dir.join(".kv.redb.new-999999999");
    let running = dir.join(".kv.redb.new-1");
    let other = [
        dir.join(".kv.redb.new-x"),
        dir.join(".other.redb.new-999999999"),
        dir.join(".kv.redb.new-+999999998"),
        dir.join(".kv.redb.new-0999999997"),
    ];
    for f in [&gone, &running].into_iter().chain(&other) {
        std::fs::write(f, b"half made").expect("write");
    }
    let link = dir.join(".kv.redb.new-999999996");
    std::os::unix::fs::symlink(&other[0], &link).expect("symlink");
    for _ in 0..2 {
        // Made afresh, then opened as it exists: both remove it.
        drop(Store::<Kv>::open_redb(&path, 10).expect("open"));
        assert!(!gone.exists());
        assert!(running.exists());
        assert!(other.iter().all(|f| f.exists()));
        assert!(link.symlink_metadata().is_ok());
        std::fs::write(&gone, b"half made").expect("write");
    }
}

/// The log also keeps no more than its byte limit of changes (as logged):
/// large records written over and over would otherwise hold gigabytes.
/// The last change always stays; the backend's log is trimmed alike.
#[test]
fn the_log_is_trimmed_to_its_byte_limit_also_on_disk() {
    let big: &'static str = Box::leak("x".repeat(1000).into_boxed_str());
    let (_guard, dir) = temp_path("store", "bytes");
    let path = dir.join("kv.redb");
    for store in [
        Store::<Kv>::memory(DEFAULT_LOG_LIMIT).with_log_byte_limit(3_500),
        Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT)
            .expect("open")
            .with_log_byte_limit(3_500),
    ] {
        for _ in 0..5 {
            store.apply(Mutation::Put("k", big)).expect("put");
        }
        // About 1 015 bytes each: three fit in 3 500.
        assert_eq!(
            revisions(&store.changes_since(2).expect("window")),
            vec![3, 4, 5]
        );
        assert_eq!(store.changes_since(1), None);
        let tiny = store.with_log_byte_limit(10);
        tiny.apply(Mutation::Put("k", big)).expect("put");
        assert_eq!(
            revisions(&tiny.changes_since(5).expect("the last")),
            vec![6]
        );
        assert_eq!(tiny.changes_since(4), None);
    }
    // Reopened, the file's log holds what was kept.
    let store = Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("reopen");
    assert_eq!(revisions(&store.changes_since(5).expect("window")), vec![6]);
    assert_eq!(store.changes_since(4), None);
}

#[test]
fn redb_reopen_restores_state_revision_and_log() {
    let (_guard, dir) = temp_path("store", "reopen");
    let path = dir.join("kv.redb");
    let (before, log_before) = {
        let store = Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("open");
        exercise(&store);
        (store.snapshot(), store.changes_since(0).expect("log"))
    };
    let store = Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("reopen");
    // The state rebuilt from rows equals the state before the reopen.
    assert_eq!(store.snapshot(), before);
    assert_eq!(store.revision(), 4);
    assert_eq!(store.changes_since(0), Some(log_before));
    assert_eq!(
        revisions(&store.changes_since(2).expect("window")),
        vec![3, 4]
    );
    // The next write continues the revision sequence.
    assert_eq!(
        store.apply(Mutation::Delete("a")).expect("delete").revision,
        5
    );
    drop(store);

    // Reopened with a smaller limit, the memory log keeps only the last one.
    let store = Store::<Kv>::open_redb(&path, 1).expect("reopen small");
    assert_eq!(store.revision(), 5);
    assert!(store.snapshot().1.is_empty());
    assert_eq!(store.changes_since(3), None);
    assert_eq!(revisions(&store.changes_since(4).expect("window")), vec![5]);
    drop(store);
}

/// A copy of a store's file (a backup) shares its ID and, up to the copy's
/// revision, its tags; a change the restored copy commits under a revision
/// number the original had used gets another tag, which is how a watcher
/// that saw the original's tells the two histories apart.
#[test]
fn a_restored_backup_shares_tags_up_to_its_revision_and_no_further() {
    let (_guard, dir) = temp_path("store", "backup");
    let (path, backup) = (dir.join("kv.redb"), dir.join("backup.redb"));
    let original = Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("open");
    assert_eq!(original.tag_at(0), None, "revision 0 has no change");
    original.apply(Mutation::Put("a", "1")).expect("put");
    original.apply(Mutation::Put("b", "2")).expect("put");
    drop(original);
    std::fs::copy(&path, &backup).expect("back up");
    let original = Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("reopen");
    let third = original.apply(Mutation::Put("c", "3")).expect("put");
    let (tag1, tag2) = (original.tag_at(1), original.tag_at(2));
    assert!(tag1.is_some_and(|t| t != 0) && tag2.is_some_and(|t| t != 0));
    assert_ne!(tag1, tag2);
    assert_eq!(original.tag_at(3), Some(third.tag));
    assert_eq!(original.tag_at(4), None, "ahead of the store");
    let (revision, tag, state) = original.tagged_snapshot();
    assert_eq!((revision, tag, state.len()), (3, third.tag, 3));
    let id = original.store_id().to_owned();
    drop(original);

    std::fs::copy(&backup, &path).expect("restore");
    let restored = Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("open restored");
    assert_eq!(restored.store_id(), id, "a copy keeps the ID");
    assert_eq!((restored.tag_at(1), restored.tag_at(2)), (tag1, tag2));
    assert_eq!(restored.tag_at(3), None);
    let other = restored.apply(Mutation::Put("d", "4")).expect("put");
    assert_eq!(other.revision, 3);
    assert_ne!(other.tag, third.tag, "another change under revision 3");
    drop(restored);
}

/// With a one-entry log, only the current revision's tag is known.
#[test]
fn tags_leave_the_log_with_their_changes() {
    let store = Store::<Kv>::memory(1);
    store.apply(Mutation::Put("a", "1")).expect("put");
    let second = store.apply(Mutation::Put("a", "2")).expect("put");
    assert_eq!(store.tag_at(1), None, "trimmed");
    assert_eq!(store.tag_at(2), Some(second.tag));
}

#[test]
fn a_file_that_is_not_redb_is_an_error_and_kept() {
    let (_guard, dir) = temp_path("store", "garbage");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("kv.redb");
    std::fs::write(&path, b"not a database, but not empty either").expect("write");
    assert!(matches!(
        Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT),
        Err(StoreError::Backend(_))
    ));
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"not a database, but not empty either"
    );
}

/// An open error names the file: here a file another store holds open
/// (another process using the same data directory).
#[test]
fn an_open_error_names_the_file() {
    let (_guard, dir) = temp_path("store", "in-use");
    let path = dir.join("kv.redb");
    let _first = Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("open");
    match Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT) {
        Err(e @ StoreError::Backend(_)) => {
            assert!(e.to_string().contains(&path.display().to_string()), "{e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened twice"),
    }
}

/// A backend whose commits fail while its flag is set.
struct Flaky(Arc<AtomicBool>);

impl Backend for Flaky {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded::default())
    }

    fn commit(&self, _: &[Row], _: &LoggedChange, _: u64) -> Result<(), StoreError> {
        if self.0.load(Ordering::SeqCst) {
            Err(StoreError::Backend("disk full".into()))
        } else {
            Ok(())
        }
    }
}

#[test]
fn a_failed_commit_changes_nothing_in_memory() {
    let fail = Arc::new(AtomicBool::new(false));
    let store = Store::<Kv>::with_backend(Box::new(Flaky(fail.clone())), 10).expect("open");
    store.apply(Mutation::Put("a", "1")).expect("put");
    fail.store(true, Ordering::SeqCst);
    let err = store
        .apply(Mutation::Put("a", "2"))
        .expect_err("commit fails");
    assert_eq!(err.to_string(), "storage backend: disk full");
    assert_eq!(store.revision(), 1);
    assert_eq!(store.snapshot().1.get("a").map(String::as_str), Some("1"));
    assert_eq!(revisions(&store.changes_since(0).expect("log")), vec![1]);
    fail.store(false, Ordering::SeqCst);
    assert_eq!(
        store.apply(Mutation::Put("a", "2")).expect("put").revision,
        2
    );
}

/// A backend whose stored log has a gap.
struct Torn;

impl Backend for Torn {
    fn load(&self) -> Result<Loaded, StoreError> {
        let change = serde_json::to_string(&Change::Deleted("a".into())).expect("json");
        Ok(Loaded {
            revision: 3,
            rows: vec![],
            log: [1, 3]
                .map(|revision| LoggedChange {
                    revision,
                    change: change.clone(),
                    tag: 0,
                })
                .to_vec(),
            ..Loaded::default()
        })
    }

    fn commit(&self, _: &[Row], _: &LoggedChange, _: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

#[test]
fn a_log_with_a_gap_is_corrupt() {
    assert!(matches!(
        Store::<Kv>::with_backend(Box::new(Torn), 10),
        Err(StoreError::Corrupt(_))
    ));
}

/// Stores hold tokens (the PIP's and the DAS's) and policies (TR-0008 9.4:
/// tokens are confidentiality protected): a store file the backend creates
/// is its owner's only (0600), as is every directory it creates for it
/// (0700). A file that exists keeps the modes its operator gave it.
#[cfg(unix)]
#[test]
fn a_new_store_and_its_new_directories_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_guard, dir) = temp_path("modes", "data");
    let path = dir.join("nested").join("pip.redb");
    let backend = authz_store::RedbBackend::open(&path).expect("open");
    drop(backend);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "store file");
    assert_eq!(mode(&dir.join("nested")), 0o700, "its directory");
    assert_eq!(mode(&dir), 0o700, "its parent made with it");
    // An existing file keeps its modes.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    drop(authz_store::RedbBackend::open(&path).expect("reopen"));
    assert_eq!(mode(&path), 0o640);
}

/// A page that redb cannot read (disk damage) makes it panic rather than
/// answer an error: the open is refused with an error naming the file and
/// saying what to do, the panic does not escape, and the refused file is
/// left exactly as it was (no commit, no recovery flag written into it).
#[test]
fn a_damaged_page_is_an_error_naming_the_file_not_a_panic() {
    let (_guard, dir) = temp_path("store", "damaged");
    let path = dir.join("kv.redb");
    {
        let store = Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("open");
        for i in 0..300 {
            let key: &'static str = Box::leak(format!("key{i:04}").into_boxed_str());
            let value: &'static str = Box::leak("v".repeat(40 + i % 50).into_boxed_str());
            store.apply(Mutation::Put(key, value)).expect("put");
        }
    }
    let original = std::fs::read(&path).expect("read");
    let mut refused = 0;
    for page in 1..(original.len() / 4096).min(48) {
        let damaged = dir.join(format!("damaged-{page}.redb"));
        let mut bytes = original.clone();
        bytes[page * 4096..(page + 1) * 4096].fill(0);
        std::fs::write(&damaged, &bytes).expect("write");
        // A page the store does not use opens.
        if let Err(e) = Store::<Kv>::open_redb(&damaged, DEFAULT_LOG_LIMIT) {
            let text = e.to_string();
            assert!(
                text.contains(&damaged.display().to_string()),
                "page {page}: {text}"
            );
            assert_eq!(
                std::fs::read(&damaged).expect("read"),
                bytes,
                "page {page}: the refused file changed ({text})"
            );
            refused += 1;
        }
    }
    assert!(refused > 0, "no damaged page was noticed");
}

/// A new store file appears at its path only once it is a complete,
/// initialized database (made beside it, then linked), so that a start cut
/// short (`kill -9`) never leaves a file that no later start opens; and
/// nothing else is left in its directory.
#[test]
fn a_new_store_file_leaves_nothing_beside_it() {
    let (_guard, dir) = temp_path("store", "new");
    let path = dir.join("kv.redb");
    drop(Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("open"));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["kv.redb"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // The file is complete: it opens, with its store ID, revision 0.
    let store = Store::<Kv>::open_redb(&path, DEFAULT_LOG_LIMIT).expect("reopen");
    assert_eq!(store.revision(), 0);
    assert!(!store.store_id().is_empty());
}
