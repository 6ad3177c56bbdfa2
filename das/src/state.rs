//! The tokens the DAS issued, kept until they expire, as an
//! [`authz_store::Schema`]: the durable store of the PRP and the PIP (redb,
//! one durable transaction per write). Tokens must survive a restart, since
//! a hosting CSE may fetch one by Token-ID at any time of its validity
//! (TS-0003 7.3.2.3 step 5).
//!
//! Expired tokens are deleted by a sweeper ([`DasSchema`] mutation
//! [`DasMutation::Remove`]); reads also skip expired tokens, so an answer
//! never depends on when the sweeper last ran.
//!
//! Client requests decide what is issued, so the store is bounded per
//! holder: at most [`MAX_TOKENS_PER_HOLDER`] tokens each. Issuing one more
//! removes, in the same write, the holder's expired tokens; a holder with
//! that many valid tokens gets no new one ([`DasStoreError::HolderFull`])
//! until one expires, since a token is kept, and given out by Token-ID,
//! until it expires (TS-0003 7.3.2.3 step 5). The service also hands out a
//! stored token again rather than issuing an equal one
//! ([`DasState::reusable`]), so a client retrying one request does not
//! fill its quota.

use std::collections::{BTreeMap, BTreeSet};

use authz_core::HostingContext;
use authz_core::model::SetOfAcrs;
use authz_core::token::audience_matches;
use authz_store::{Row, Schema, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// The most tokens stored per holder (as the PDP keeps at most 32 Direct
/// tokens per holder): past it, a holder gets no new token until one of its
/// tokens expires.
pub const MAX_TOKENS_PER_HOLDER: usize = 32;

/// What a token grants besides its holder, audience and validity, and who
/// signed it: two tokens of the same holder and audience with equal grants
/// are interchangeable, so the DAS may give out a stored one again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// The issuer (`iss`).
    pub issuer: String,
    /// The `kid` of the key that signed it: after a key change a stored
    /// token is not reused, since PDPs may no longer trust the old key.
    pub kid: String,
    /// The DAS policy that granted it (`tknm`).
    pub policy: String,
    /// The target (`ris` of its one permission), absolute.
    pub target: String,
    /// The granted rules (`pv`).
    pub privileges: Option<SetOfAcrs>,
    /// The granted Role-IDs (`rids`).
    pub roles: Vec<String>,
    /// The key it is encrypted to (`cse-id kid alg enc`), or `None` for a
    /// plain JWS: after the CSE's `token_encryption` changes (a new key, or
    /// none) a stored token is not reused, since that CSE may no longer
    /// hold the old key. Records from before the field are plain here, and
    /// [`DasState::reusable`] checks their form as well.
    #[serde(default)]
    pub encrypted_to: Option<String>,
}

/// One issued token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The Token-ID (`jti`), `name@fqdn`.
    pub token_id: String,
    /// The token (JWS compact serialization).
    pub jwt: String,
    /// Its holder, absolute.
    pub holder: String,
    /// Its notAfter: valid up to and including this instant.
    pub expires_at: DateTime<Utc>,
    /// Its audience (`aud`), as signed: `Consult` and `GetTokens` give the
    /// token only to a CSE it names ([`DasState::valid_for`]). Records
    /// written before the field existed have none, and are given to no one.
    #[serde(default)]
    pub audience: Vec<String>,
    /// What it grants (boxed: most of a record's size). Records written
    /// before the field existed have none, and are never reused.
    #[serde(default)]
    pub grant: Option<Box<TokenGrant>>,
}

impl IssuedToken {
    /// Is the token past its notAfter at `now`? At the claims' one-second
    /// resolution, as a PDP judges it: the whole `exp` second is valid.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        use chrono::SubsecRound;
        now.trunc_subsecs(0) > self.expires_at
    }
}

/// Everything the DAS stores: tokens by ID.
#[derive(Debug, Clone, Default)]
pub struct DasState {
    /// Issued tokens by Token-ID.
    pub tokens: BTreeMap<String, IssuedToken>,
    /// The Token-IDs of each holder, so that reuse and the per-holder cap
    /// look at that holder's tokens only.
    by_holder: BTreeMap<String, BTreeSet<String>>,
}

impl DasState {
    /// Every stored token of `holder` (expired ones included until swept).
    pub fn holder_tokens<'a>(&'a self, holder: &str) -> impl Iterator<Item = &'a IssuedToken> {
        self.by_holder
            .get(holder)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tokens.get(id))
    }

    /// A stored token that may be given out again instead of issuing a new
    /// one to `holder` for `audience` with `grant`, ending at `not_after`:
    /// the same holder, audience and grant, ending no later than the new
    /// one would (it grants nothing a new one would not) and valid for at
    /// least `min_remaining` more from `now` (so that it is not nearly
    /// over). The one ending last, if several.
    pub fn reusable(
        &self,
        holder: &str,
        audience: &[String],
        grant: &TokenGrant,
        now: DateTime<Utc>,
        not_after: DateTime<Utc>,
        min_remaining: TimeDelta,
    ) -> Option<&IssuedToken> {
        // A JWE compact serialization has five parts, a JWS three.
        let encrypted = |t: &IssuedToken| t.jwt.split('.').count() == 5;
        self.holder_tokens(holder)
            .filter(|t| t.audience == audience && t.grant.as_deref() == Some(grant))
            .filter(|t| encrypted(t) == grant.encrypted_to.is_some())
            .filter(|t| {
                !t.is_expired(now)
                    && t.expires_at <= not_after
                    && t.expires_at - now >= min_remaining
            })
            .max_by_key(|t| t.expires_at)
    }

    /// Makes room for one more token of `holder` within
    /// [`MAX_TOKENS_PER_HOLDER`] at `now`: the IDs of its expired tokens to
    /// remove (none while it is under the cap), or, when its valid tokens
    /// alone fill the cap, [`DasStoreError::HolderFull`]: a valid token is
    /// never removed to make room.
    fn room_for_one(&self, holder: &str, now: DateTime<Utc>) -> Result<Vec<String>, DasStoreError> {
        let held: Vec<&IssuedToken> = self.holder_tokens(holder).collect();
        if held.len() < MAX_TOKENS_PER_HOLDER {
            return Ok(Vec::new());
        }
        let (expired, valid): (Vec<&IssuedToken>, Vec<&IssuedToken>) =
            held.into_iter().partition(|t| t.is_expired(now));
        if valid.len() >= MAX_TOKENS_PER_HOLDER {
            return Err(DasStoreError::HolderFull {
                holder: holder.to_owned(),
                first_expiry: valid.iter().map(|t| t.expires_at).min().unwrap_or(now),
            });
        }
        Ok(expired.into_iter().map(|t| t.token_id.clone()).collect())
    }

    fn insert(&mut self, t: IssuedToken) {
        self.by_holder
            .entry(t.holder.clone())
            .or_default()
            .insert(t.token_id.clone());
        self.tokens.insert(t.token_id.clone(), t);
    }

    fn remove(&mut self, id: &str) {
        let Some(t) = self.tokens.remove(id) else {
            return;
        };
        if let Some(ids) = self.by_holder.get_mut(&t.holder) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_holder.remove(&t.holder);
            }
        }
    }

    /// The token with this ID if it is still valid at `now`.
    pub fn valid(&self, token_id: &str, now: DateTime<Utc>) -> Option<&IssuedToken> {
        self.tokens.get(token_id).filter(|t| !t.is_expired(now))
    }

    /// The token with this ID if it is still valid at `now` and its audience
    /// names `hosting`: only a CSE that will verify the token may be given it
    /// (TS-0003 7.3.2.2 step 3.1 for `Consult`, 7.3.2.3 step 5 for
    /// `GetTokens`).
    pub fn valid_for(
        &self,
        token_id: &str,
        hosting: &HostingContext,
        now: DateTime<Utc>,
    ) -> Option<&IssuedToken> {
        self.valid(token_id, now)
            .filter(|t| t.audience.iter().any(|a| audience_matches(a, hosting)))
    }

    /// The IDs of the tokens expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> Vec<String> {
        self.tokens
            .values()
            .filter(|t| t.is_expired(now))
            .map(|t| t.token_id.clone())
            .collect()
    }
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DasChange {
    /// A token was issued.
    Issued(IssuedToken),
    /// Tokens were removed (expired).
    Removed(Vec<String>),
    /// A token was issued to a holder that had [`MAX_TOKENS_PER_HOLDER`]
    /// already, and these expired tokens of the holder's were removed to
    /// make room.
    /// A variant of its own, so that change-log entries written before the
    /// cap still read as [`DasChange::Issued`].
    IssuedOverCap {
        /// The new token.
        token: IssuedToken,
        /// The IDs removed.
        removed: Vec<String>,
    },
}

/// One write request.
#[derive(Debug, Clone, PartialEq)]
pub enum DasMutation {
    /// Store a newly issued token; its ID must be new. When its holder has
    /// [`MAX_TOKENS_PER_HOLDER`] tokens already, those expired at `now` are
    /// removed in the same write; when they are all valid, the write is
    /// refused ([`DasStoreError::HolderFull`]).
    Issue {
        /// The token.
        token: IssuedToken,
        /// When it is issued.
        now: DateTime<Utc>,
    },
    /// Remove these tokens; IDs not stored are ignored.
    Remove(Vec<String>),
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum DasStoreError {
    /// A token with this ID exists already.
    #[error("token {0} already exists")]
    AlreadyExists(String),
    /// The holder has [`MAX_TOKENS_PER_HOLDER`] valid tokens already.
    #[error(
        "holder {holder} holds {MAX_TOKENS_PER_HOLDER} valid tokens, the most the DAS keeps per holder; the first of them expires at {first_expiry}"
    )]
    HolderFull {
        /// The holder.
        holder: String,
        /// When the first of its tokens expires (and a new one may be issued).
        first_expiry: DateTime<Utc>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The DAS [`Schema`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DasSchema;

const TOKENS: &str = "tokens";

impl Schema for DasSchema {
    type State = DasState;
    type Change = DasChange;
    type Mutation = DasMutation;
    type Error = DasStoreError;

    fn check(state: &DasState, mutation: DasMutation) -> Result<DasChange, DasStoreError> {
        Ok(match mutation {
            DasMutation::Issue { token, now } => {
                if state.tokens.contains_key(&token.token_id) {
                    return Err(DasStoreError::AlreadyExists(token.token_id));
                }
                let removed = state.room_for_one(&token.holder, now)?;
                if removed.is_empty() {
                    DasChange::Issued(token)
                } else {
                    DasChange::IssuedOverCap { token, removed }
                }
            }
            DasMutation::Remove(ids) => DasChange::Removed(
                ids.into_iter()
                    .filter(|id| state.tokens.contains_key(id))
                    .collect(),
            ),
        })
    }

    fn apply(state: &mut DasState, change: &DasChange) {
        match change {
            DasChange::Issued(t) => state.insert(t.clone()),
            DasChange::Removed(ids) => {
                for id in ids {
                    state.remove(id);
                }
            }
            DasChange::IssuedOverCap { token, removed } => {
                for id in removed {
                    state.remove(id);
                }
                state.insert(token.clone());
            }
        }
    }

    fn rows(change: &DasChange) -> Result<Vec<Row>, StoreError> {
        let put = |t: &IssuedToken| -> Result<Row, StoreError> {
            Ok(Row {
                collection: TOKENS.to_owned(),
                key: t.token_id.clone(),
                value: Some(
                    serde_json::to_string(t).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ),
            })
        };
        let delete = |id: &String| Row {
            collection: TOKENS.to_owned(),
            key: id.clone(),
            value: None,
        };
        Ok(match change {
            DasChange::Issued(t) => vec![put(t)?],
            DasChange::Removed(ids) => ids.iter().map(delete).collect(),
            DasChange::IssuedOverCap { token, removed } => {
                let mut rows: Vec<Row> = removed.iter().map(delete).collect();
                rows.push(put(token)?);
                rows
            }
        })
    }

    fn load(
        state: &mut DasState,
        collection: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        if collection != TOKENS {
            return Err(StoreError::Corrupt(format!(
                "unknown collection {collection} in the DAS store"
            )));
        }
        let t: IssuedToken = serde_json::from_str(value)
            .map_err(|e| StoreError::Corrupt(format!("token {key}: {e}")))?;
        state.insert(t);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_store::Store;
    use chrono::{TimeDelta, TimeZone};

    fn token(id: &str, expires_at: DateTime<Utc>) -> IssuedToken {
        IssuedToken {
            audience: vec!["//sp/cse".into()],
            token_id: id.into(),
            jwt: "a.b.c".into(),
            holder: "//home.example/mn-cse-123456/Cguest".into(),
            expires_at,
            grant: None,
        }
    }

    /// A token is valid through the whole second of its notAfter (the
    /// claims' resolution), as a PDP judges it: expired from the next.
    #[test]
    fn a_token_expires_after_its_exp_second() {
        let exp = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
        let t = token("tk@das.example", exp);
        assert!(!t.is_expired(exp));
        assert!(!t.is_expired(exp + TimeDelta::milliseconds(999)));
        assert!(t.is_expired(exp + TimeDelta::seconds(1)));
    }

    fn issue(now: DateTime<Utc>, token: IssuedToken) -> DasMutation {
        DasMutation::Issue { token, now }
    }

    fn grant(target: &str) -> TokenGrant {
        TokenGrant {
            issuer: "//sp/cse/CDas".into(),
            kid: "k1".into(),
            policy: "p".into(),
            target: target.into(),
            privileges: None,
            roles: vec!["r@das.example".into()],
            encrypted_to: None,
        }
    }

    /// At the cap, issuing removes the holder's expired tokens only; with
    /// the cap filled by valid tokens, issuing is refused and nothing
    /// changes, since a token is kept until it expires (TS-0003 7.3.2.3
    /// step 5). Other holders are untouched; the holder index follows the
    /// removals, and the rows delete what the change removes.
    #[test]
    fn at_the_cap_only_expired_tokens_make_room_and_valid_ones_are_kept() {
        let store: Store<DasSchema> = Store::memory(1);
        let now = Utc::now();
        let mut other = token("other@das.example", now - TimeDelta::hours(1));
        other.holder = "//sp/cse/Cother".into();
        store.apply(issue(now, other)).expect("other");
        store
            .apply(issue(
                now,
                token("expired@das.example", now - TimeDelta::seconds(1)),
            ))
            .expect("expired");
        for i in 1..MAX_TOKENS_PER_HOLDER {
            let id = format!("t{i:02}@das.example");
            let ends = now + TimeDelta::minutes(i64::try_from(i).expect("small"));
            store.apply(issue(now, token(&id, ends))).expect("issue");
        }
        let holder = "//home.example/mn-cse-123456/Cguest";
        assert_eq!(
            store.read(|_, s| s.holder_tokens(holder).count()),
            MAX_TOKENS_PER_HOLDER
        );
        let entry = store
            .apply(issue(
                now,
                token("new@das.example", now + TimeDelta::hours(2)),
            ))
            .expect("issue");
        assert_eq!(
            entry.change,
            DasChange::IssuedOverCap {
                token: token("new@das.example", now + TimeDelta::hours(2)),
                removed: vec!["expired@das.example".into()],
            }
        );
        let rows = DasSchema::rows(&entry.change).expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].key.as_str(), rows[0].value.is_none()),
            ("expired@das.example", true)
        );
        assert_eq!(rows[1].key, "new@das.example");
        // Now all 32 are valid: the next is refused, naming the holder and
        // when room frees up (t01 ends first, in a minute).
        match store.apply(issue(
            now,
            token("newer@das.example", now + TimeDelta::hours(3)),
        )) {
            Err(DasStoreError::HolderFull {
                holder: h,
                first_expiry,
            }) => {
                assert_eq!(h, holder);
                assert_eq!(first_expiry, now + TimeDelta::minutes(1));
            }
            other => panic!("expected HolderFull, got {other:?}"),
        }
        store.read(|_, s| {
            assert_eq!(s.holder_tokens(holder).count(), MAX_TOKENS_PER_HOLDER);
            assert!(s.valid("t01@das.example", now).is_some());
            assert!(!s.tokens.contains_key("newer@das.example"));
            assert!(s.tokens.contains_key("other@das.example"));
        });
        // Once t01 has expired, it makes room.
        let later = now + TimeDelta::minutes(1) + TimeDelta::seconds(1);
        let entry = store
            .apply(issue(
                later,
                token("newer@das.example", now + TimeDelta::hours(3)),
            ))
            .expect("issue after an expiry");
        assert!(
            matches!(&entry.change, DasChange::IssuedOverCap { removed, .. } if removed == &["t01@das.example"]),
            "{entry:?}"
        );
    }

    #[test]
    fn a_token_is_reusable_only_with_the_same_grant_and_enough_time_left() {
        let store: Store<DasSchema> = Store::memory(1);
        let now = Utc::now();
        let holder = "//home.example/mn-cse-123456/Cguest";
        let aud = vec!["//sp/cse".to_owned()];
        let mut t = token("t@das.example", now + TimeDelta::minutes(50));
        t.grant = Some(Box::new(grant("//sp/cse/door")));
        store.apply(issue(now, t)).expect("issue");
        let end = now + TimeDelta::hours(1);
        let half = TimeDelta::minutes(30);
        store.read(|_, s| {
            let found = |holder: &str, aud: &[String], g: &TokenGrant, end, min| {
                s.reusable(holder, aud, g, now, end, min)
                    .map(|t| t.token_id.clone())
            };
            let g = grant("//sp/cse/door");
            assert_eq!(
                found(holder, &aud, &g, end, half).as_deref(),
                Some("t@das.example")
            );
            // Another target, holder, audience or key: not the same token.
            assert_eq!(
                found(holder, &aud, &grant("//sp/cse/window"), end, half),
                None
            );
            assert_eq!(found("//sp/cse/Cother", &aud, &g, end, half), None);
            assert_eq!(
                found(holder, &["//sp/other".to_owned()], &g, end, half),
                None
            );
            let mut rotated = g.clone();
            rotated.kid = "k2".into();
            assert_eq!(found(holder, &aud, &rotated, end, half), None);
            // Too little left, or ending after the new one would.
            assert_eq!(found(holder, &aud, &g, end, TimeDelta::minutes(51)), None);
            assert_eq!(
                found(holder, &aud, &g, now + TimeDelta::minutes(49), half),
                None
            );
        });
        // Records without a grant are never reused.
        let mut old = token("old@das.example", now + TimeDelta::minutes(50));
        old.holder = "//sp/cse/Cold".into();
        store.apply(issue(now, old)).expect("issue");
        store.read(|_, s| {
            assert!(
                s.reusable(
                    "//sp/cse/Cold",
                    &aud,
                    &grant("//sp/cse/door"),
                    now,
                    end,
                    half
                )
                .is_none()
            );
        });
    }

    #[test]
    fn expired_tokens_are_hidden_then_removed() {
        let store: Store<DasSchema> = Store::memory(1);
        let now = Utc::now();
        store
            .apply(issue(
                now,
                token("old@das.example", now - TimeDelta::seconds(1)),
            ))
            .expect("issue");
        store
            .apply(issue(
                now,
                token("new@das.example", now + TimeDelta::hours(1)),
            ))
            .expect("issue");
        assert!(matches!(
            store.apply(issue(now, token("new@das.example", now))),
            Err(DasStoreError::AlreadyExists(_))
        ));
        store.read(|_, s| {
            assert!(s.valid("old@das.example", now).is_none());
            assert!(s.valid("new@das.example", now).is_some());
            // notAfter itself is still valid.
            assert!(
                s.valid("new@das.example", now + TimeDelta::hours(1))
                    .is_some()
            );
        });
        let expired = store.read(|_, s| s.expired(now));
        assert_eq!(expired, vec!["old@das.example"]);
        let entry = store
            .apply(DasMutation::Remove(vec![
                "old@das.example".into(),
                "gone@das.example".into(),
            ]))
            .expect("remove");
        assert_eq!(
            entry.change,
            DasChange::Removed(vec!["old@das.example".into()])
        );
        assert_eq!(store.read(|_, s| s.tokens.len()), 1);
    }

    /// A record stored before tokens kept their audience still loads, with
    /// none (so `GetTokens` gives it to no CSE).
    #[test]
    fn records_without_an_audience_load_with_none() {
        let t: IssuedToken = serde_json::from_str(
            r#"{"token_id":"t@das.example","jwt":"a.b.c","holder":"//sp/cse/Cae","expires_at":"2026-12-05T00:00:00Z"}"#,
        )
        .expect("old record");
        assert!(t.audience.is_empty());
    }
}
