//! The decision cache of [`crate::PepClient`]: off by default, on with
//! [`crate::PepConfig::cache`].
//!
//! Semantics, chosen to be correct rather than clever:
//!
//! - **Key**: the whole decision request (originator, operation, discovery
//!   flag, acpi-change flag, target, target and created types,
//!   specialization, IP address, location, authentication flag, Role-IDs,
//!   `tqi`, hosting CSE, explicit ACP IDs) with the request time
//!   **truncated to the second**; only the
//!   request identifier and the `explain` flag are left out. Time windows
//!   (`actw`) have a granularity of one second, so two requests in the same
//!   second get the same answer from the same policies; a request in the
//!   next second is a different key. A cache therefore helps bursts of
//!   repeated requests (a client retrying, an application polling), never
//!   across a window edge.
//! - **TTL**: an entry also expires [`CacheConfig::ttl`] after it was stored
//!   (default 1 s), which bounds how long an attribute the PDP took from the
//!   PIP (a role, a group membership, a position) can be stale in the cache.
//! - **Invalidation**: every decision carries the revision of the PDP's
//!   policy replica. When a decision (or a `Status` poll, see
//!   [`crate::PepConfig::revision_poll`]) reports a revision newer than the
//!   cache has seen, the whole cache is dropped, and decisions from an older
//!   revision are not stored. Revisions compare within one PRP store: a
//!   decision or poll naming another store (a PRP restarted on a new store
//!   counts from 1 again) drops the whole cache too, and its revision is
//!   the one seen from then on.
//! - **Reusable until**: a decision the PDP says rests on something that
//!   ends (`reusable_until`: a dynamic ACP's lifetime, a token's
//!   `notAfter`, a DAS grant for that decision only, the validity of the
//!   originator's roles, the freshness of its position) is used no longer
//!   than that, not at all when the time has passed, and only for requests
//!   whose time is earlier (the key's second may straddle that end).
//! - **Never cached**: requests carrying tokens, Token-IDs or
//!   Local-Token-IDs (a token's validity and the Local-Token-ID assignments
//!   are per request), decisions assigning Local-Token-IDs, and Denies whose
//!   status is MISSING_ATTRIBUTE, SYNTAX_ERROR or PROCESSING_ERROR (they may
//!   turn on the next try), nor fail-closed or fail-open verdicts.
//! - **Bound**: at most [`CacheConfig::capacity`] entries; when full, expired
//!   entries are dropped, and if that frees nothing the cache is cleared.
//!   A request whose encoded key, or a decision whose encoding, exceeds
//!   [`MAX_ENTRY_BYTES`] is not cached, so the bound in entries is also one
//!   in bytes (about `capacity` × 8 KiB at most) whatever requests an
//!   originator crafts. An expired entry is dropped when it is next looked
//!   up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use authz_proto::pb;
use chrono::{DateTime, Utc};
use prost::Message;

/// Settings of the decision cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries kept.
    pub capacity: usize,
    /// How long an entry is used after it was stored.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            ttl: Duration::from_secs(1),
        }
    }
}

struct Entry {
    decision: pb::Decision,
    /// When it stops being used: `ttl` after it was stored, or earlier
    /// when the PDP said the decision rests on something that ends sooner.
    expires: Instant,
    /// The PDP's `reusable_until`: the entry answers only requests whose
    /// time is earlier (a role that expires, or a position that goes
    /// stale, within the second the key is truncated to).
    reusable_until: Option<DateTime<Utc>>,
}

struct Inner {
    map: HashMap<Vec<u8>, Entry>,
    /// The PRP store `revision` counts in ("" until a PDP names one).
    store: String,
    /// Stores left for another (the newest last): an answer from one of
    /// them arriving late is older than anything of the current store.
    left: Vec<String>,
    revision: u64,
}

/// The largest encoded request key, and the largest encoded decision, the
/// cache keeps. Ordinary requests encode to a few hundred bytes; a longer
/// one (a crafted path, a long Role-ID list) is decided every time rather
/// than letting input size drive the cache's memory.
pub const MAX_ENTRY_BYTES: usize = 4096;

/// How many stores left behind [`Inner`] remembers.
const STORES_REMEMBERED: usize = 8;

impl Inner {
    /// Notes a store and revision a PDP reported: another store, or a
    /// newer revision, drops everything. Whether a decision of that
    /// revision may be stored (it is not older than what was seen). A PDP
    /// that does not name its store is compared by revision alone.
    fn observe(&mut self, store: &str, revision: u64) -> bool {
        if !store.is_empty() && store != self.store {
            if self.left.iter().any(|s| s == store) {
                // A late answer from a store already left: stores have no
                // order, so going back would cache the old policies.
                return false;
            }
            if !self.store.is_empty() {
                if self.left.len() == STORES_REMEMBERED {
                    self.left.remove(0);
                }
                self.left.push(std::mem::take(&mut self.store));
            }
            self.store = store.to_owned();
            self.revision = revision;
            self.map.clear();
            return true;
        }
        if revision > self.revision {
            self.revision = revision;
            self.map.clear();
        }
        revision == self.revision
    }
}

/// The cache itself (shared by the clones of a client).
pub(crate) struct DecisionCache {
    config: CacheConfig,
    inner: Mutex<Inner>,
}

impl DecisionCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                store: String::new(),
                left: Vec::new(),
                revision: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of `req`, or `None` when it must not be cached. `now` stands
    /// in for an absent request time.
    pub(crate) fn key(req: &pb::DecisionRequest, now: DateTime<Utc>) -> Option<Vec<u8>> {
        if !req.tokens.is_empty() || !req.token_ids.is_empty() || !req.local_token_ids.is_empty() {
            return None;
        }
        let seconds = req
            .request_time
            .as_ref()
            .map(|t| t.seconds)
            .unwrap_or_else(|| now.timestamp());
        let mut keyed = req.clone();
        keyed.request_id.clear();
        keyed.explain = false;
        keyed.request_time = Some(prost_types::Timestamp { seconds, nanos: 0 });
        (keyed.encoded_len() <= MAX_ENTRY_BYTES).then(|| keyed.encode_to_vec())
    }

    /// The cached decision for `key`, for a request at `at`, if fresh and
    /// reusable at that time; a stale one is dropped.
    pub(crate) fn get(&self, key: &[u8], at: DateTime<Utc>) -> Option<pb::Decision> {
        let mut inner = self.lock();
        let e = inner.map.get(key)?;
        if Instant::now() < e.expires {
            if e.reusable_until.is_some_and(|until| at >= until) {
                return None;
            }
            return Some(e.decision.clone());
        }
        inner.map.remove(key);
        None
    }

    /// Notes a policy store and revision a PDP reported; another store or
    /// a newer revision drops everything.
    pub(crate) fn observe_revision(&self, store: &str, revision: u64) {
        self.lock().observe(store, revision);
    }

    /// Stores `decision` under `key` when it may be cached. Whether or not
    /// it is stored, a newer revision than seen so far drops everything.
    pub(crate) fn insert(&self, key: Vec<u8>, decision: &pb::Decision) {
        let transient = [
            pb::AuthorizationStatus::MissingAttribute as i32,
            pb::AuthorizationStatus::SyntaxError as i32,
            pb::AuthorizationStatus::ProcessingError as i32,
            pb::AuthorizationStatus::Unspecified as i32,
        ];
        let mut inner = self.lock();
        if !inner.observe(&decision.policy_store, decision.policy_revision) {
            return;
        }
        if transient.contains(&decision.status)
            || !decision.assigned_token_ids.is_empty()
            || key.len() > MAX_ENTRY_BYTES
            || decision.encoded_len() > MAX_ENTRY_BYTES
        {
            return;
        }
        let now = Instant::now();
        // `PepConfig::validate` bounds the TTL; a cache built without it
        // stores nothing rather than overflow.
        let Some(mut expires) = now.checked_add(self.config.ttl) else {
            return;
        };
        let mut reusable_until = None;
        if let Some(until) = &decision.reusable_until {
            // A decision resting on a dynamic ACP, a token, a one-off DAS
            // grant, a role's validity or a position's freshness is used no
            // longer than that lasts (Decision 7); an unreadable time is
            // taken as already past.
            let Ok(until) = authz_proto::convert::timestamp_field(until, "reusable_until") else {
                return;
            };
            let left = (until - Utc::now()).to_std().ok().filter(|l| !l.is_zero());
            match left {
                Some(left) => expires = expires.min(now + left),
                None => return,
            }
            reusable_until = Some(until);
        }
        if inner.map.len() >= self.config.capacity && !inner.map.contains_key(&key) {
            inner.map.retain(|_, e| now < e.expires);
            if inner.map.len() >= self.config.capacity {
                inner.map.clear();
            }
        }
        if self.config.capacity == 0 {
            return;
        }
        inner.map.insert(
            key,
            Entry {
                decision: decision.clone(),
                expires,
                reusable_until,
            },
        );
    }

    /// Number of entries (fresh or not).
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(originator: &str, seconds: i64, nanos: i32) -> pb::DecisionRequest {
        pb::DecisionRequest {
            originator: originator.into(),
            operation: 2,
            target: "frontDoor".into(),
            request_time: Some(prost_types::Timestamp { seconds, nanos }),
            request_id: format!("rq-{nanos}"),
            ..Default::default()
        }
    }

    fn permit(revision: u64) -> pb::Decision {
        pb::Decision {
            decision: 1,
            status: 1,
            policy_revision: revision,
            ..Default::default()
        }
    }

    #[test]
    fn same_second_same_key_other_second_other_key() {
        let now = Utc::now();
        let a = DecisionCache::key(&req("C1", 100, 1), now);
        let b = DecisionCache::key(&req("C1", 100, 999_000), now);
        let c = DecisionCache::key(&req("C1", 101, 1), now);
        let d = DecisionCache::key(&req("C2", 100, 1), now);
        assert!(a.is_some());
        assert_eq!(
            a, b,
            "request ID and sub-second time are not part of the key"
        );
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    /// TS-0001 9.6.1.3.2: an acpi change is judged by `pvs`, the same
    /// Update otherwise by `pv`; the key tells them apart, or a Permit of
    /// one would answer the other.
    #[test]
    fn ts0001_9_6_1_3_2_an_acpi_change_is_another_key() {
        let now = Utc::now();
        let mut update = req("C1", 100, 0);
        update.operation = pb::Operation::Update as i32;
        let mut acpi = update.clone();
        acpi.updates_acpi = true;
        let (a, b) = (
            DecisionCache::key(&update, now),
            DecisionCache::key(&acpi, now),
        );
        assert!(a.is_some() && b.is_some());
        assert_ne!(a, b);
        let cache = DecisionCache::new(CacheConfig::default());
        cache.insert(a.clone().expect("key"), &permit(1));
        assert!(cache.get(&b.expect("key"), Utc::now()).is_none());
    }

    #[test]
    fn tokens_are_never_keyed() {
        let now = Utc::now();
        let mut r = req("C1", 100, 0);
        r.tokens = vec!["a.b.c".into()];
        assert_eq!(DecisionCache::key(&r, now), None);
        let mut r = req("C1", 100, 0);
        r.token_ids = vec!["t@das.example.com".into()];
        assert_eq!(DecisionCache::key(&r, now), None);
        let mut r = req("C1", 100, 0);
        r.local_token_ids = vec!["lt1".into()];
        assert_eq!(DecisionCache::key(&r, now), None);
    }

    #[test]
    fn newer_revision_drops_entries_older_is_not_stored() {
        let cache = DecisionCache::new(CacheConfig::default());
        let key = DecisionCache::key(&req("C1", 100, 0), Utc::now()).expect("key");
        cache.insert(key.clone(), &permit(5));
        assert!(cache.get(&key, Utc::now()).is_some());
        cache.observe_revision("", 5);
        assert!(
            cache.get(&key, Utc::now()).is_some(),
            "same revision keeps entries"
        );
        cache.observe_revision("", 6);
        assert!(cache.get(&key, Utc::now()).is_none());
        cache.insert(key.clone(), &permit(5));
        assert!(
            cache.get(&key, Utc::now()).is_none(),
            "a decision from an older replica"
        );
        cache.insert(key.clone(), &permit(6));
        assert!(cache.get(&key, Utc::now()).is_some());
    }

    /// A PRP on a new store counts revisions from 1 again: a decision or a
    /// poll naming another store drops what the old store's policies
    /// decided, whatever the revisions, and the new store's revisions are
    /// cached from then on.
    #[test]
    fn another_policy_store_drops_entries_and_starts_the_count_again() {
        let cache = DecisionCache::new(CacheConfig::default());
        let key = DecisionCache::key(&req("C1", 100, 0), Utc::now()).expect("key");
        let in_store = |store: &str, revision| pb::Decision {
            policy_store: store.into(),
            ..permit(revision)
        };
        cache.insert(key.clone(), &in_store("old", 500));
        assert!(cache.get(&key, Utc::now()).is_some());
        cache.observe_revision("new", 5);
        assert!(
            cache.get(&key, Utc::now()).is_none(),
            "the old store's decision"
        );
        cache.insert(key.clone(), &in_store("new", 5));
        assert!(
            cache.get(&key, Utc::now()).is_some(),
            "revision 5 of the new store"
        );
        // Through a decision too.
        let other = DecisionCache::key(&req("C2", 100, 0), Utc::now()).expect("key");
        cache.insert(other.clone(), &in_store("newer", 1));
        assert!(cache.get(&key, Utc::now()).is_none() && cache.get(&other, Utc::now()).is_some());
        // An answer of a store already left, arriving late, is not stored
        // and does not take the cache back to that store.
        let late = DecisionCache::key(&req("C3", 100, 0), Utc::now()).expect("key");
        cache.insert(late.clone(), &in_store("old", 501));
        assert!(
            cache.get(&late, Utc::now()).is_none(),
            "a late answer of the old store"
        );
        assert!(
            cache.get(&other, Utc::now()).is_some(),
            "the newer store's entries stay"
        );
    }

    /// A decision the cache does not store (a transient Deny, or one that
    /// assigns Local-Token-IDs) still reports the PDP's newer revision: what
    /// was cached under the older one goes.
    #[test]
    fn unstored_decisions_of_a_newer_revision_drop_entries() {
        let now = Utc::now();
        let a = DecisionCache::key(&req("C1", 100, 0), now).expect("key");
        let b = DecisionCache::key(&req("C2", 100, 0), now).expect("key");
        let missing = pb::Decision {
            decision: 2,
            status: pb::AuthorizationStatus::MissingAttribute as i32,
            policy_revision: 6,
            ..Default::default()
        };
        let with_token_ids = pb::Decision {
            assigned_token_ids: vec![pb::LocalTokenIdAssignment::default()],
            ..permit(7)
        };
        let cache = DecisionCache::new(CacheConfig::default());
        for (revision, newer) in [(5, missing), (6, with_token_ids)] {
            cache.insert(a.clone(), &permit(revision));
            assert!(cache.get(&a, Utc::now()).is_some());
            cache.insert(b.clone(), &newer);
            assert!(cache.get(&b, Utc::now()).is_none(), "not stored");
            assert!(
                cache.get(&a, Utc::now()).is_none(),
                "revision {revision} dropped"
            );
        }
    }

    #[test]
    fn transient_denies_are_not_stored_and_ttl_expires() {
        let cache = DecisionCache::new(CacheConfig {
            capacity: 10,
            ttl: Duration::from_millis(30),
        });
        let key = DecisionCache::key(&req("C1", 100, 0), Utc::now()).expect("key");
        let mut d = permit(1);
        d.decision = 2;
        d.status = pb::AuthorizationStatus::MissingAttribute as i32;
        cache.insert(key.clone(), &d);
        assert!(cache.get(&key, Utc::now()).is_none());
        cache.insert(key.clone(), &permit(1));
        assert!(cache.get(&key, Utc::now()).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(&key, Utc::now()).is_none());
    }

    /// A cache built without `PepConfig::validate` and a TTL `Instant`
    /// cannot add stores nothing instead of panicking.
    #[test]
    fn an_unrepresentable_ttl_stores_nothing() {
        let cache = DecisionCache::new(CacheConfig {
            capacity: 10,
            ttl: Duration::MAX,
        });
        let key = DecisionCache::key(&req("C1", 100, 0), Utc::now()).expect("key");
        cache.insert(key.clone(), &permit(1));
        assert!(cache.get(&key, Utc::now()).is_none());
    }

    /// Decision 7: a Permit resting on a dynamic ACP is used only while
    /// the ACP lasts, and a grant for that decision only (its end at or
    /// before now) is not reused at all.
    #[test]
    fn reusable_until_bounds_an_entry() {
        let cache = DecisionCache::new(CacheConfig {
            capacity: 10,
            ttl: Duration::from_secs(60),
        });
        let key = DecisionCache::key(&req("C1", 100, 0), Utc::now()).expect("key");
        let until = |ms: i64| {
            Some(authz_proto::convert::timestamp_to_pb(
                &(Utc::now() + chrono::Duration::milliseconds(ms)),
            ))
        };
        let one_off = pb::Decision {
            reusable_until: until(0),
            ..permit(1)
        };
        cache.insert(key.clone(), &one_off);
        assert!(
            cache.get(&key, Utc::now()).is_none(),
            "a one-off grant is not reused"
        );
        let ended = pb::Decision {
            reusable_until: until(-5_000),
            ..permit(1)
        };
        cache.insert(key.clone(), &ended);
        assert!(cache.get(&key, Utc::now()).is_none(), "already ended");
        let short = pb::Decision {
            reusable_until: until(1_000),
            ..permit(1)
        };
        cache.insert(key.clone(), &short);
        assert!(
            cache.get(&key, Utc::now()).is_some(),
            "while the grant lasts"
        );
        std::thread::sleep(Duration::from_millis(1_100));
        assert!(
            cache.get(&key, Utc::now()).is_none(),
            "not past its end, though the ttl is a minute"
        );
    }

    /// An entry answers only request times before its `reusable_until`,
    /// though later ones in the same second share its key: a role that
    /// expires at .500 permits a request at .200 and not one at .700.
    #[test]
    fn reusable_until_bounds_the_request_time_within_the_key_second() {
        let cache = DecisionCache::new(CacheConfig {
            capacity: 10,
            ttl: Duration::from_secs(60),
        });
        let second = Utc::now().timestamp() + 30;
        let at = |ms: u32| DateTime::from_timestamp(second, ms * 1_000_000).expect("time");
        let early = req("C1", second, 200_000_000);
        let late = req("C1", second, 700_000_000);
        let key = DecisionCache::key(&early, Utc::now()).expect("key");
        assert_eq!(DecisionCache::key(&late, Utc::now()), Some(key.clone()));
        let permit = pb::Decision {
            reusable_until: Some(authz_proto::convert::timestamp_to_pb(&at(500))),
            ..permit(1)
        };
        cache.insert(key.clone(), &permit);
        assert!(cache.get(&key, at(200)).is_some());
        assert!(cache.get(&key, at(500)).is_none(), "not from then on");
        assert!(cache.get(&key, at(700)).is_none());
    }

    /// Memory follows the entry count, not what originators send: a key
    /// or decision over [`MAX_ENTRY_BYTES`] is decided every time, and a
    /// stale entry goes when it is looked up.
    #[test]
    fn oversized_entries_are_not_cached_and_stale_ones_are_dropped() {
        let now = Utc::now();
        let mut long = req("C1", 100, 0);
        long.target = format!("/id-in/{}", "x".repeat(MAX_ENTRY_BYTES));
        assert_eq!(DecisionCache::key(&long, now), None, "oversized key");
        let mut roles = req("C1", 100, 0);
        roles.role_ids = (0..400)
            .map(|i| format!("r{i}@roles.example.com"))
            .collect();
        assert_eq!(DecisionCache::key(&roles, now), None, "long Role-ID list");

        let cache = DecisionCache::new(CacheConfig {
            capacity: 10,
            ttl: Duration::from_millis(30),
        });
        let key = DecisionCache::key(&req("C1", 100, 0), now).expect("key");
        let mut big = permit(1);
        big.policy_store = "s".repeat(MAX_ENTRY_BYTES + 1);
        cache.insert(key.clone(), &big);
        assert_eq!(cache.len(), 0, "oversized decision");

        cache.insert(key.clone(), &permit(2));
        assert_eq!(cache.len(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(&key, Utc::now()).is_none());
        assert_eq!(cache.len(), 0, "the stale entry was dropped on lookup");
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = DecisionCache::new(CacheConfig {
            capacity: 3,
            ttl: Duration::from_secs(60),
        });
        for i in 0..10 {
            let key = DecisionCache::key(&req(&format!("C{i}"), 100, 0), Utc::now()).expect("key");
            cache.insert(key, &permit(1));
            assert!(cache.len() <= 3);
        }
    }
}
