//! The tokens the DAS issued, kept until they expire, as an
//! [`authz_store::Schema`]: the durable store of the PRP and the PIP (redb,
//! one durable transaction per write). Tokens must survive a restart, since
//! a hosting CSE may fetch one by Token-ID at any time of its validity
//! (TS-0003 7.3.2.3 step 5).
//!
//! Expired tokens are deleted by a sweeper ([`DasSchema`] mutation
//! [`DasMutation::Remove`]); reads also skip expired tokens, so an answer
//! never depends on when the sweeper last ran.

use std::collections::BTreeMap;

use authz_core::HostingContext;
use authz_core::token::audience_matches;
use authz_store::{Row, Schema, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
}

impl IssuedToken {
    /// Is the token past its notAfter at `now`?
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now > self.expires_at
    }
}

/// Everything the DAS stores: tokens by ID.
#[derive(Debug, Clone, Default)]
pub struct DasState {
    /// Issued tokens by Token-ID.
    pub tokens: BTreeMap<String, IssuedToken>,
}

impl DasState {
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
}

/// One write request.
#[derive(Debug, Clone, PartialEq)]
pub enum DasMutation {
    /// Store a newly issued token; its ID must be new.
    Issue(IssuedToken),
    /// Remove these tokens; IDs not stored are ignored.
    Remove(Vec<String>),
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum DasStoreError {
    /// A token with this ID exists already.
    #[error("token {0} already exists")]
    AlreadyExists(String),
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
            DasMutation::Issue(t) => {
                if state.tokens.contains_key(&t.token_id) {
                    return Err(DasStoreError::AlreadyExists(t.token_id));
                }
                DasChange::Issued(t)
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
            DasChange::Issued(t) => {
                state.tokens.insert(t.token_id.clone(), t.clone());
            }
            DasChange::Removed(ids) => {
                for id in ids {
                    state.tokens.remove(id);
                }
            }
        }
    }

    fn rows(change: &DasChange) -> Result<Vec<Row>, StoreError> {
        Ok(match change {
            DasChange::Issued(t) => vec![Row {
                collection: TOKENS.to_owned(),
                key: t.token_id.clone(),
                value: Some(
                    serde_json::to_string(t).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ),
            }],
            DasChange::Removed(ids) => ids
                .iter()
                .map(|id| Row {
                    collection: TOKENS.to_owned(),
                    key: id.clone(),
                    value: None,
                })
                .collect(),
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
        state.tokens.insert(t.token_id.clone(), t);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_store::Store;
    use chrono::TimeDelta;

    fn token(id: &str, expires_at: DateTime<Utc>) -> IssuedToken {
        IssuedToken {
            audience: vec!["//sp/cse".into()],
            token_id: id.into(),
            jwt: "a.b.c".into(),
            holder: "//home.example/mn-cse-123456/Cguest".into(),
            expires_at,
        }
    }

    #[test]
    fn expired_tokens_are_hidden_then_removed() {
        let store: Store<DasSchema> = Store::memory(1);
        let now = Utc::now();
        store
            .apply(DasMutation::Issue(token(
                "old@das.example",
                now - TimeDelta::seconds(1),
            )))
            .expect("issue");
        store
            .apply(DasMutation::Issue(token(
                "new@das.example",
                now + TimeDelta::hours(1),
            )))
            .expect("issue");
        assert!(matches!(
            store.apply(DasMutation::Issue(token("new@das.example", now))),
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
