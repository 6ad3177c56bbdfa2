//! Store IDs: made when the storage is created, kept by a redb file for
//! life (also one written before IDs existed, from its first open on), new
//! for every memory store and for a backend that keeps none.

mod common;

use std::collections::BTreeSet;

use authz_store::{Backend, Loaded, LoggedChange, Row, Schema, Store, StoreError};
use common::temp_path;
use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};

/// A set of strings; one collection, `set`.
struct Set;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Added(String);

impl Schema for Set {
    type State = BTreeSet<String>;
    type Change = Added;
    type Mutation = &'static str;
    type Error = StoreError;

    fn check(_: &Self::State, mutation: &'static str) -> Result<Added, StoreError> {
        Ok(Added(mutation.into()))
    }

    fn apply(state: &mut Self::State, change: &Added) {
        state.insert(change.0.clone());
    }

    fn rows(change: &Added) -> Result<Vec<Row>, StoreError> {
        Ok(vec![Row {
            collection: "set".into(),
            key: change.0.clone(),
            value: Some("true".into()),
        }])
    }

    fn load(state: &mut Self::State, _: &str, key: &str, _: &str) -> Result<(), StoreError> {
        state.insert(key.into());
        Ok(())
    }
}

fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn every_memory_store_has_its_own_id() {
    let ids: BTreeSet<String> = (0..100)
        .map(|_| Store::<Set>::memory(10).store_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 100);
    assert!(ids.iter().all(|id| is_id(id)), "{ids:?}");
}

#[test]
fn a_redb_file_keeps_its_id_and_another_file_has_another() {
    let (_guard, dir) = temp_path("store-id", "redb");
    let path = dir.join("a.redb");
    let first = {
        let store = Store::<Set>::open_redb(&path, 10).expect("open");
        store.apply("x").expect("write");
        store.store_id().to_owned()
    };
    assert!(is_id(&first), "{first}");
    let store = Store::<Set>::open_redb(&path, 10).expect("reopen");
    assert_eq!(store.store_id(), first);
    assert_eq!(store.revision(), 1);
    drop(store);
    let other = Store::<Set>::open_redb(&dir.join("b.redb"), 10).expect("other");
    assert_ne!(other.store_id(), first);
    drop(other);
}

#[test]
fn a_file_written_before_ids_gets_one_on_first_open_and_keeps_it() {
    // The layout of an earlier version: meta, rows and change_log only.
    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    const ROWS: TableDefinition<(&str, &str), &str> = TableDefinition::new("rows");
    const LOG: TableDefinition<u64, &str> = TableDefinition::new("change_log");
    let (_guard, dir) = temp_path("store-id", "old");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("old.redb");
    {
        let db = Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            txn.open_table(META)
                .expect("meta")
                .insert("revision", 1)
                .expect("revision");
            txn.open_table(ROWS)
                .expect("rows")
                .insert(("set", "x"), "true")
                .expect("row");
            let change = serde_json::to_string(&Added("x".into())).expect("json");
            txn.open_table(LOG)
                .expect("log")
                .insert(1, change.as_str())
                .expect("log entry");
        }
        txn.commit().expect("commit");
    }
    let id = {
        let store = Store::<Set>::open_redb(&path, 10).expect("open old file");
        assert_eq!(store.revision(), 1);
        assert!(store.snapshot().1.contains("x"));
        store.store_id().to_owned()
    };
    assert!(is_id(&id), "{id}");
    let store = Store::<Set>::open_redb(&path, 10).expect("reopen");
    assert_eq!(store.store_id(), id, "the ID given on first open is kept");
    drop(store);
}

/// A backend that keeps no ID (nor anything else).
struct NoId;

impl Backend for NoId {
    fn load(&self) -> Result<Loaded, StoreError> {
        Ok(Loaded::default())
    }

    fn commit(&self, _: &[Row], _: &LoggedChange, _: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

#[test]
fn a_backend_without_an_id_gets_a_new_one_at_each_open() {
    let a = Store::<Set>::with_backend(Box::new(NoId), 10).expect("open");
    let b = Store::<Set>::with_backend(Box::new(NoId), 10).expect("open again");
    assert!(is_id(a.store_id()) && is_id(b.store_id()));
    assert_ne!(a.store_id(), b.store_id());
}
