//! The PIP's stored state and how writes change it, as an
//! [`authz_store::Schema`]: the same durable, revisioned store as the PRP's
//! (redb, one durable transaction per write, a change log for `Watch`).
//!
//! Besides the records, the state keeps a reverse index from member to the
//! groups that list it, so that "which groups is this originator in"
//! starts with one lookup (the PDP asks it once per decision), and one from
//! Local-Token-ID to token, so that a PDP meeting an `ltids` entry it did
//! not assign finds the token (TS-0003 7.3.2.3 step 6.1.2).
//!
//! A token's Local-Token-ID is write-once, and one Local-Token-ID names one
//! token at a time: the checks run in [`Schema::check`], against the state
//! of the one write that commits at a time, so two PDPs that race to assign
//! one to a token both get the first (TS-0001 7.1.16: unique per hosting
//! CSE).
//!
//! # Nested groups
//!
//! A `mid` entry that is itself a stored `<group>` ID (in either reading of
//! an `S...` entry, see [`GroupRecord::entry_readings`]) is that sub-group,
//! as Decision 3 reads `acor` entries (TS-0001 9.6.2.1; spec notes §2.4):
//! its members, transitively, are members of the outer group, and no
//! originator spelled like it is admitted through it. Membership is worked
//! out when asked ([`PipState::groups_of`]), over the reverse index, so a
//! change of a sub-group shows at once, and a cycle ends: each group is
//! visited once, so an answer costs at most one step per stored member
//! entry of the groups reached; there is no depth limit. Once a sub-group is
//! deleted, an entry naming it is an originator ID again, like every entry
//! that names no stored group (and as the PDP reads an `acor` entry that is
//! no group). The groups as stored and listed keep their own entries.
//!
//! Groups are kept by absolute resource ID. Older stores keyed a group's row
//! by its ID as written (`grpFamily`, `/id-in/grpFamily`); such a row is read
//! under the absolute ID for the PIP's hosting CSE ([`PipState::hosted`]),
//! and deleted with the group or when it is replaced.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use authz_core::HostingContext;
use authz_core::ids::canonical_resource_id;
use authz_store::{Row, Schema, StoreError};
use serde::{Deserialize, Serialize};

use crate::records::{GroupRecord, PositionRecord, RoleRecord, TokenRecord};

/// Everything the PIP stores.
#[derive(Debug, Clone, Default)]
pub struct PipState {
    /// Roles by (role ID, holder): one Role-ID is held by many originators,
    /// each through a `<role>` of its own (TS-0003 7.4.2).
    pub roles: BTreeMap<(String, String), RoleRecord>,
    /// Roles loaded from rows keyed by the role ID alone (stores written
    /// when a Role-ID had one holder): deleting one deletes that row too.
    pub legacy_roles: BTreeSet<(String, String)>,
    /// Tokens by token ID.
    pub tokens: BTreeMap<String, TokenRecord>,
    /// Local-Token-ID → the token ID of the token that holds it.
    pub local_token_ids: HashMap<String, String>,
    /// Groups by absolute group ID.
    pub groups: BTreeMap<String, GroupRecord>,
    /// Groups loaded from rows keyed by the ID as written (stores written
    /// before group IDs were stored absolute): absolute ID → those row keys,
    /// deleted when the group is deleted or replaced.
    pub legacy_groups: BTreeMap<String, BTreeSet<String>>,
    /// Member (absolute ID) → the groups listing it.
    pub member_of: HashMap<String, BTreeSet<String>>,
    /// Last position by subject (absolute ID).
    pub positions: HashMap<String, PositionRecord>,
    /// The hosting CSE that group IDs of older rows are read against when a
    /// store loads (`None`: read as written).
    pub hosting: Option<HostingContext>,
}

impl PipState {
    /// An empty state that reads the group rows of older stores against
    /// `hosting` (the PIP's hosting CSE) when a store loads into it.
    pub fn hosted(hosting: HostingContext) -> Self {
        Self {
            hosting: Some(hosting),
            ..Self::default()
        }
    }

    fn index_group(&mut self, g: &GroupRecord) {
        for m in g.member_keys() {
            self.member_of
                .entry(m.clone())
                .or_default()
                .insert(g.group_id.clone());
        }
    }

    fn unindex_group(&mut self, g: &GroupRecord) {
        for m in g.member_keys() {
            if let Some(set) = self.member_of.get_mut(m) {
                set.remove(&g.group_id);
                if set.is_empty() {
                    self.member_of.remove(m);
                }
            }
        }
    }

    /// The rows of older stores that hold the group `group_id` (absolute).
    fn legacy_keys(&self, group_id: &str) -> Vec<String> {
        self.legacy_groups
            .get(group_id)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores `t`, indexing its Local-Token-ID (and dropping from the index
    /// the one a token it replaces held, should they differ).
    fn put_token(&mut self, t: &TokenRecord) {
        if let Some(old) = self.tokens.insert(t.token_id.clone(), t.clone()) {
            self.unindex_token(&old);
        }
        if !t.local_token_id.is_empty() {
            self.local_token_ids
                .insert(t.local_token_id.clone(), t.token_id.clone());
        }
    }

    fn unindex_token(&mut self, t: &TokenRecord) {
        if !t.local_token_id.is_empty()
            && self.local_token_ids.get(&t.local_token_id) == Some(&t.token_id)
        {
            self.local_token_ids.remove(&t.local_token_id);
        }
    }

    /// The token the Local-Token-ID `lti` was assigned to.
    pub fn token_by_local_id(&self, lti: &str) -> Option<&TokenRecord> {
        self.local_token_ids
            .get(lti)
            .and_then(|id| self.tokens.get(id))
    }

    /// Whether the entry of `g` that the member key `key` reads names a
    /// stored group (then it is a sub-group, not an originator ID).
    fn names_group(&self, g: &GroupRecord, key: &str) -> bool {
        g.entry_readings(key)
            .into_iter()
            .any(|r| self.groups.contains_key(r))
    }

    /// The groups that contain `member` (absolute), sorted: those listing it
    /// in an entry that names no stored group, and, transitively, those
    /// listing one of these as a sub-group (see the module doc). An ID that
    /// is a stored group's is in no group: an entry spelled like it names
    /// that group. Each group is visited once, so cycles end.
    pub fn groups_of(&self, member: &str) -> Vec<String> {
        let mut found: BTreeSet<&str> = BTreeSet::new();
        let mut pending: Vec<&str> = Vec::new();
        for id in self.member_of.get(member).into_iter().flatten() {
            let admits = self
                .groups
                .get(id)
                .is_some_and(|g| !self.names_group(g, member));
            if admits && found.insert(id) {
                pending.push(id);
            }
        }
        while let Some(sub) = pending.pop() {
            // `sub` is a stored group, so every entry reading it names it.
            for id in self.member_of.get(sub).into_iter().flatten() {
                if found.insert(id) {
                    pending.push(id);
                }
            }
        }
        found.into_iter().map(str::to_owned).collect()
    }

    /// Whether `member` (absolute) is in the stored group `group_id`
    /// (absolute), directly or through sub-groups: exactly when
    /// [`PipState::groups_of`] names it.
    pub fn is_member(&self, group_id: &str, member: &str) -> bool {
        self.groups.contains_key(group_id)
            && self
                .groups_of(member)
                .binary_search_by(|g| g.as_str().cmp(group_id))
                .is_ok()
    }

    /// The IDs, besides the members of `group_id` before and after, whose
    /// groups change when `group_id` becomes `new` (`None`: deleted): the
    /// members of its sub-groups, transitively, before and after; and, when
    /// the group comes into or goes out of existence, the readings of the
    /// entries of other groups that name it (an originator spelled like it
    /// stops or starts being a member). Sorted.
    fn nested_affected(&self, group_id: &str, new: Option<&GroupRecord>) -> Vec<String> {
        let old = self.groups.get(group_id);
        let mut out: BTreeSet<&str> = BTreeSet::new();
        if old.is_none() != new.is_none() {
            for id in self.member_of.get(group_id).into_iter().flatten() {
                if let Some(outer) = self.groups.get(id) {
                    out.extend(outer.entry_readings(group_id));
                }
            }
        }
        // Stored groups other than `group_id` are the same before and
        // after: one walk over the old and new entries covers both.
        let mut seen: HashSet<&str> = HashSet::from([group_id]);
        let mut pending: Vec<&GroupRecord> = old.into_iter().chain(new).collect();
        while let Some(g) = pending.pop() {
            for key in g.member_keys() {
                out.insert(key.as_str());
                if seen.insert(key.as_str())
                    && let Some(sub) = self.groups.get(key)
                {
                    pending.push(sub);
                }
            }
        }
        // The event names the group's own members anyway.
        for g in old.into_iter().chain(new) {
            for key in g.member_keys() {
                out.remove(key.as_str());
            }
        }
        out.into_iter().map(str::to_owned).collect()
    }
}

/// One committed change (logged and streamed to watchers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PipChange {
    /// A role was created.
    RolePut(RoleRecord),
    /// A role's tokenLink was updated: the role as it is now.
    RoleUpdated {
        /// The role.
        role: RoleRecord,
        /// Stored under the role ID alone ([`PipState::legacy_roles`]):
        /// that row is replaced by one under the role ID and holder.
        #[serde(default)]
        legacy: bool,
    },
    /// A role was deleted (with its holder, for cache invalidation).
    RoleDeleted {
        /// Role ID.
        role_id: String,
        /// Its holder.
        holder: String,
        /// Also stored under the role ID alone ([`PipState::legacy_roles`]).
        #[serde(default)]
        legacy: bool,
    },
    /// A token was stored.
    TokenPut(TokenRecord),
    /// A token was stored under the Local-Token-ID of a token that had
    /// expired (TS-0001 7.1.16: reusable after expiry); that token is
    /// stored again without it.
    TokenPutReusingLocalId {
        /// The token stored.
        token: TokenRecord,
        /// The expired token, without its Local-Token-ID (boxed: the
        /// variant would otherwise double the size of every change).
        expired: Box<TokenRecord>,
    },
    /// A token was deleted.
    TokenDeleted(String),
    /// A group was stored; `previous` are the members it had before.
    GroupPut {
        /// The new content.
        group: GroupRecord,
        /// Members before the write ([`GroupRecord::member_keys`]).
        previous: Vec<String>,
        /// Rows of older stores that held the group, keyed by its ID as
        /// written ([`PipState::legacy_groups`]): deleted.
        #[serde(default)]
        legacy_keys: Vec<String>,
        /// Other IDs whose groups changed through nesting (members of
        /// sub-groups, originators spelled like the group): see
        /// `PipState::nested_affected`. Empty in older logs.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        nested: Vec<String>,
    },
    /// A group was deleted, with the members it had.
    GroupDeleted {
        /// Group ID (absolute).
        group_id: String,
        /// Its members ([`GroupRecord::member_keys`]).
        members: Vec<String>,
        /// Rows of older stores that held the group: deleted too.
        #[serde(default)]
        legacy_keys: Vec<String>,
        /// Other IDs whose groups changed through nesting, as in
        /// [`PipChange::GroupPut`].
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        nested: Vec<String>,
    },
    /// A position was reported.
    PositionPut(PositionRecord),
}

/// One write request.
#[derive(Debug, Clone, PartialEq)]
pub enum PipMutation {
    /// Create a role; one its holder holds already is an error (roles are
    /// write-once).
    CreateRole(RoleRecord),
    /// Set the tokenLink of the role `role_id` of `holder` (absolute), the
    /// one attribute of a `<role>` that may be updated (spec notes §7.3).
    UpdateRoleTokenLink {
        /// Role ID.
        role_id: String,
        /// Its holder.
        holder: String,
        /// The new tokenLink (empty: none).
        token_link: String,
    },
    /// Delete the role `role_id` of `holder` (absolute).
    DeleteRole {
        /// Role ID.
        role_id: String,
        /// Its holder.
        holder: String,
    },
    /// Store a token, write-once: a token of that ID with other attributes
    /// is an error; the same one again may give it its first
    /// Local-Token-ID. A token that has a Local-Token-ID keeps it (the
    /// record's is replaced by it); a new one must not be held by another
    /// token that has not expired at `at`.
    PutToken {
        /// The token.
        token: TokenRecord,
        /// When expiry is judged (now).
        at: DateTime<Utc>,
    },
    /// Delete a token.
    DeleteToken(String),
    /// Store or replace a group (its ID absolute).
    PutGroup(GroupRecord),
    /// Delete a group (by absolute ID).
    DeleteGroup(String),
    /// Record a position, unless the stored one of the subject was measured
    /// later.
    ReportPosition(PositionRecord),
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum PipError {
    /// The ID is taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A token of that ID is stored with other attributes: `<token>`
    /// attributes are NP on Update (spec notes §7.4).
    #[error(
        "token {token_id} already exists with another {}; a <token> cannot be updated (delete it first)",
        differing.join(", ")
    )]
    TokenExists {
        /// The token ID.
        token_id: String,
        /// The wire names of the attributes that differ.
        differing: Vec<&'static str>,
    },
    /// Nothing is stored under the ID.
    #[error("{0} not found")]
    NotFound(String),
    /// A position report measured before the stored position of the same
    /// subject: the newer one is kept.
    #[error(
        "measured_at: {reported} is before the stored position of {subject}, measured at {stored}; the newer position is kept"
    )]
    OlderPosition {
        /// Whose position.
        subject: String,
        /// When the stored position was measured.
        stored: chrono::DateTime<chrono::Utc>,
        /// When the refused report was measured.
        reported: chrono::DateTime<chrono::Utc>,
    },
    /// The Local-Token-ID of a PutToken is held by another token that has
    /// not expired (TS-0001 7.1.16: unique per hosting CSE).
    #[error(
        "token.local_token_id: {local_token_id} is the Local-Token-ID of token {holder}, which has not expired"
    )]
    LocalTokenIdTaken {
        /// The Local-Token-ID.
        local_token_id: String,
        /// The token ID of the token that holds it.
        holder: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The PIP's [`Schema`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PipSchema;

const ROLES: &str = "roles";

/// Where a role is in [`PipState::roles`].
fn role_key(r: &RoleRecord) -> (String, String) {
    (r.role_id.clone(), r.holder.clone())
}

/// The row key of a role: its role ID and holder (neither holds white
/// space).
fn role_row_key(role_id: &str, holder: &str) -> String {
    format!("{role_id} {holder}")
}
const TOKENS: &str = "tokens";
const GROUPS: &str = "groups";
const POSITIONS: &str = "positions";

fn json<T: Serialize>(value: &T) -> Result<Option<String>, StoreError> {
    serde_json::to_string(value)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn row(collection: &str, key: &str, value: Option<String>) -> Row {
    Row {
        collection: collection.to_owned(),
        key: key.to_owned(),
        value,
    }
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, key: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what} {key}: {e}")))
}

impl Schema for PipSchema {
    type State = PipState;
    type Change = PipChange;
    type Mutation = PipMutation;
    type Error = PipError;

    fn check(state: &PipState, mutation: PipMutation) -> Result<PipChange, PipError> {
        Ok(match mutation {
            PipMutation::CreateRole(r) => {
                if state.roles.contains_key(&role_key(&r)) {
                    return Err(PipError::AlreadyExists(format!(
                        "{} of {}",
                        r.role_id, r.holder
                    )));
                }
                PipChange::RolePut(r)
            }
            PipMutation::UpdateRoleTokenLink {
                role_id,
                holder,
                token_link,
            } => {
                let key = (role_id, holder);
                let Some(stored) = state.roles.get(&key) else {
                    return Err(PipError::NotFound(format!("{} of {}", key.0, key.1)));
                };
                PipChange::RoleUpdated {
                    role: RoleRecord {
                        token_link,
                        ..stored.clone()
                    },
                    legacy: state.legacy_roles.contains(&key),
                }
            }
            PipMutation::DeleteRole { role_id, holder } => {
                let key = (role_id, holder);
                if !state.roles.contains_key(&key) {
                    return Err(PipError::NotFound(format!("{} of {}", key.0, key.1)));
                }
                let legacy = state.legacy_roles.contains(&key);
                let (role_id, holder) = key;
                PipChange::RoleDeleted {
                    role_id,
                    holder,
                    legacy,
                }
            }
            PipMutation::PutToken { mut token, at } => {
                let existing = state.tokens.get(&token.token_id);
                if let Some(existing) = existing {
                    // Every `<token>` attribute is NP on Update (spec notes
                    // §7.4): only the same record again (a PDP retrying, or
                    // another PDP of the CSE storing the token it was
                    // shown) is accepted. Else a writer could, say, make a
                    // valid token expired and free its Local-Token-ID.
                    let differing = existing.differing_attributes(&token);
                    if !differing.is_empty() {
                        return Err(PipError::TokenExists {
                            token_id: token.token_id,
                            differing,
                        });
                    }
                }
                let stored = existing
                    .map(|t| t.local_token_id.as_str())
                    .filter(|l| !l.is_empty());
                if let Some(kept) = stored {
                    // The first assignment stands (TS-0003 7.3.2.3 step
                    // 6.2): the originator may have been told it already,
                    // by this PDP or another one racing with it.
                    token.local_token_id = kept.to_owned();
                    return Ok(PipChange::TokenPut(token));
                }
                match state.token_by_local_id(&token.local_token_id) {
                    Some(holder) if holder.token_id != token.token_id => {
                        if !holder.expired_at(at) {
                            return Err(PipError::LocalTokenIdTaken {
                                local_token_id: token.local_token_id,
                                holder: holder.token_id.clone(),
                            });
                        }
                        PipChange::TokenPutReusingLocalId {
                            expired: Box::new(TokenRecord {
                                local_token_id: String::new(),
                                ..holder.clone()
                            }),
                            token,
                        }
                    }
                    _ => PipChange::TokenPut(token),
                }
            }
            PipMutation::DeleteToken(id) => {
                if !state.tokens.contains_key(&id) {
                    return Err(PipError::NotFound(id));
                }
                PipChange::TokenDeleted(id)
            }
            PipMutation::PutGroup(g) => PipChange::GroupPut {
                previous: state
                    .groups
                    .get(&g.group_id)
                    .map(|old| old.member_keys().cloned().collect())
                    .unwrap_or_default(),
                legacy_keys: state.legacy_keys(&g.group_id),
                nested: state.nested_affected(&g.group_id, Some(&g)),
                group: g,
            },
            PipMutation::DeleteGroup(id) => match state.groups.get(&id) {
                Some(g) => PipChange::GroupDeleted {
                    members: g.member_keys().cloned().collect(),
                    legacy_keys: state.legacy_keys(&id),
                    nested: state.nested_affected(&id, None),
                    group_id: id,
                },
                None => return Err(PipError::NotFound(id)),
            },
            PipMutation::ReportPosition(p) => {
                // Reports may arrive out of order: an older one never
                // replaces a newer one (one measured at the same time does).
                if let Some(stored) = state.positions.get(&p.subject)
                    && stored.measured_at > p.measured_at
                {
                    return Err(PipError::OlderPosition {
                        subject: p.subject,
                        stored: stored.measured_at,
                        reported: p.measured_at,
                    });
                }
                PipChange::PositionPut(p)
            }
        })
    }

    fn apply(state: &mut PipState, change: &PipChange) {
        match change {
            PipChange::RolePut(r) => {
                state.roles.insert(role_key(r), r.clone());
            }
            PipChange::RoleUpdated { role, .. } => {
                state.legacy_roles.remove(&role_key(role));
                state.roles.insert(role_key(role), role.clone());
            }
            PipChange::RoleDeleted {
                role_id, holder, ..
            } => {
                let key = (role_id.clone(), holder.clone());
                state.roles.remove(&key);
                state.legacy_roles.remove(&key);
            }
            PipChange::TokenPut(t) => state.put_token(t),
            PipChange::TokenPutReusingLocalId { token, expired } => {
                state.put_token(expired);
                state.put_token(token);
            }
            PipChange::TokenDeleted(id) => {
                if let Some(old) = state.tokens.remove(id) {
                    state.unindex_token(&old);
                }
            }
            PipChange::GroupPut { group, .. } => {
                if let Some(old) = state.groups.insert(group.group_id.clone(), group.clone()) {
                    state.unindex_group(&old);
                }
                state.index_group(group);
                state.legacy_groups.remove(&group.group_id);
            }
            PipChange::GroupDeleted { group_id, .. } => {
                if let Some(old) = state.groups.remove(group_id) {
                    state.unindex_group(&old);
                }
                state.legacy_groups.remove(group_id);
            }
            PipChange::PositionPut(p) => {
                state.positions.insert(p.subject.clone(), p.clone());
            }
        }
    }

    fn rows(change: &PipChange) -> Result<Vec<Row>, StoreError> {
        // A group's own row, and the rows of older stores that held it.
        let group_rows = |own: Row, legacy_keys: &[String]| {
            let mut rows = vec![own];
            rows.extend(legacy_keys.iter().map(|k| row(GROUPS, k, None)));
            rows
        };
        Ok(match change {
            PipChange::RoleDeleted {
                role_id,
                holder,
                legacy: true,
            } => vec![
                row(ROLES, &role_row_key(role_id, holder), None),
                row(ROLES, role_id, None),
            ],
            PipChange::RolePut(r) => {
                vec![row(ROLES, &role_row_key(&r.role_id, &r.holder), json(r)?)]
            }
            PipChange::RoleUpdated { role, legacy } => {
                let mut rows = vec![row(
                    ROLES,
                    &role_row_key(&role.role_id, &role.holder),
                    json(role)?,
                )];
                if *legacy {
                    rows.push(row(ROLES, &role.role_id, None));
                }
                rows
            }
            PipChange::RoleDeleted {
                role_id, holder, ..
            } => vec![row(ROLES, &role_row_key(role_id, holder), None)],
            PipChange::TokenPut(t) => vec![row(TOKENS, &t.token_id, json(t)?)],
            PipChange::TokenPutReusingLocalId { token, expired } => vec![
                row(TOKENS, &expired.token_id, json(expired)?),
                row(TOKENS, &token.token_id, json(token)?),
            ],
            PipChange::TokenDeleted(id) => vec![row(TOKENS, id, None)],
            PipChange::GroupPut {
                group, legacy_keys, ..
            } => group_rows(row(GROUPS, &group.group_id, json(group)?), legacy_keys),
            PipChange::GroupDeleted {
                group_id,
                legacy_keys,
                ..
            } => group_rows(row(GROUPS, group_id, None), legacy_keys),
            PipChange::PositionPut(p) => vec![row(POSITIONS, &p.subject, json(p)?)],
        })
    }

    fn load(
        state: &mut PipState,
        collection: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        match collection {
            ROLES => {
                let r: RoleRecord = parse("role", key, value)?;
                if key == r.role_id {
                    state.legacy_roles.insert(role_key(&r));
                }
                state.roles.insert(role_key(&r), r);
            }
            TOKENS => {
                let mut t: TokenRecord = parse("token", key, value)?;
                // Writes keep one token per Local-Token-ID; should rows
                // disagree all the same, the token valid longer keeps it
                // (an expired one's may be reused, TS-0001 7.1.16).
                if let Some(other) = state.token_by_local_id(&t.local_token_id)
                    && other.token_id != t.token_id
                {
                    let ends = |r: &TokenRecord| r.not_after.unwrap_or(DateTime::<Utc>::MAX_UTC);
                    tracing::warn!(
                        local_token_id = %t.local_token_id,
                        tokens = %format!("{}, {}", other.token_id, t.token_id),
                        "two stored tokens hold one Local-Token-ID; the one valid longer keeps it"
                    );
                    if ends(other) >= ends(&t) {
                        t.local_token_id.clear();
                    } else {
                        let mut other = other.clone();
                        other.local_token_id.clear();
                        state.put_token(&other);
                    }
                }
                state.put_token(&t);
            }
            GROUPS => {
                let mut g: GroupRecord = parse("group", key, value)?;
                if let Some(hosting) = &state.hosting
                    && let Ok(absolute) = canonical_resource_id(&g.group_id, hosting)
                {
                    g.group_id = absolute;
                }
                if key != g.group_id {
                    state
                        .legacy_groups
                        .entry(g.group_id.clone())
                        .or_default()
                        .insert(key.to_owned());
                }
                // The row under the absolute ID wins over older rows of the
                // same group (written in another form, deleted with it);
                // among older rows only, the first in key order. Rows that
                // disagree were two groups before IDs were made absolute:
                // say so, since one of them is no longer used.
                let current = key == g.group_id;
                if let Some(hosting) = &state.hosting
                    && may_hold_members_read_against_this_cse(hosting, &g)
                {
                    tracing::warn!(
                        group = %g.group_id,
                        "a <group> of another CSE lists members of this PIP's CSE: a PIP before \
                         2026-12-07 read relative mid entries against its own CSE, not the \
                         group's (TS-0001 7.2); if they were written relative, put the group again"
                    );
                }
                match state.groups.get(&g.group_id) {
                    None => {
                        state.index_group(&g);
                        state.groups.insert(g.group_id.clone(), g);
                    }
                    Some(kept) => {
                        if kept.members != g.members {
                            tracing::warn!(
                                group = %g.group_id,
                                row = key,
                                used = if current { "this row" } else { "another row" },
                                "rows written in different forms of one <group> ID list different members; one set is used: put the group again to settle it"
                            );
                        }
                        if current {
                            let old = kept.clone();
                            state.unindex_group(&old);
                            state.index_group(&g);
                            state.groups.insert(g.group_id.clone(), g);
                        }
                    }
                }
            }
            POSITIONS => {
                let p: PositionRecord = parse("position", key, value)?;
                state.positions.insert(p.subject.clone(), p);
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown collection {other} in the PIP store"
                )));
            }
        }
        Ok(())
    }
}

/// Whether a stored group of another CSE than the PIP's own lists members
/// under the PIP's own CSE: what a PIP that read relative `mid` entries
/// against its own CSE, rather than the group's, stored for a group
/// written with relative members (or what was written absolute that way).
fn may_hold_members_read_against_this_cse(hosting: &HostingContext, g: &GroupRecord) -> bool {
    let Some(group_cse) = authz_core::ids::resource_cse(&g.group_id, hosting) else {
        return false;
    };
    if group_cse.sp_fqdn() == hosting.sp_fqdn() && group_cse.cse_id() == hosting.cse_id() {
        return false;
    }
    let own = format!("//{}/{}/", hosting.sp_fqdn(), hosting.cse_id());
    g.members.iter().any(|m| m.starts_with(&own))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The upgrade warning for groups stored before relative members were
    /// read against the group's CSE (TS-0001 7.2): a group of /id-mn
    /// listing an AE of /id-in (the PIP's CSE) is flagged, one listing its
    /// own AEs, or a group of /id-in, is not.
    #[test]
    fn groups_of_another_cse_listing_this_cses_aes_are_flagged() {
        let hosting = HostingContext::new("//sp", "/id-in").expect("hosting");
        let group = |id: &str, members: &[&str]| GroupRecord {
            group_id: id.to_owned(),
            members: members.iter().map(|m| m.to_string()).collect(),
            member_aliases: Vec::new(),
        };
        assert!(may_hold_members_read_against_this_cse(
            &hosting,
            &group("//sp/id-mn/grp", &["//sp/id-in/Cae7"])
        ));
        assert!(!may_hold_members_read_against_this_cse(
            &hosting,
            &group("//sp/id-mn/grp", &["//sp/id-mn/Cae7", "//sp/Sae8"])
        ));
        assert!(!may_hold_members_read_against_this_cse(
            &hosting,
            &group("//sp/id-in/grp", &["//sp/id-in/Cae7"])
        ));
    }

    fn group(id: &str, members: &[&str]) -> GroupRecord {
        GroupRecord {
            group_id: id.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
            member_aliases: Vec::new(),
        }
    }

    /// A group held both by a row under its absolute ID and by a row of an
    /// older store under the ID as written: the absolute row's content
    /// counts (rows load in key order, `//...` first), and deleting the
    /// group deletes both rows.
    #[test]
    fn an_older_row_of_a_group_is_deleted_with_it() {
        let hosting = HostingContext::new("//sp.example.com", "/id-in").expect("hosting");
        let mut s = PipState::hosted(hosting);
        let abs = "//sp.example.com/id-in/grp";
        let rows = [
            (abs, group(abs, &["//sp.example.com/id-in/Cnew"])),
            (
                "/id-in/grp",
                group("/id-in/grp", &["//sp.example.com/id-in/Cold"]),
            ),
            ("grp", group("grp", &["//sp.example.com/id-in/Cold"])),
        ];
        for (key, g) in &rows {
            let text = serde_json::to_string(g).expect("json");
            PipSchema::load(&mut s, GROUPS, key, &text).expect("load");
        }
        assert_eq!(s.groups.len(), 1);
        assert_eq!(s.groups_of("//sp.example.com/id-in/Cnew"), vec![abs]);
        assert!(s.groups_of("//sp.example.com/id-in/Cold").is_empty());
        let c = PipSchema::check(&s, PipMutation::DeleteGroup(abs.into())).expect("delete");
        let keys: Vec<(String, bool)> = PipSchema::rows(&c)
            .expect("rows")
            .into_iter()
            .map(|r| (r.key, r.value.is_some()))
            .collect();
        assert_eq!(
            keys,
            [
                (abs.to_owned(), false),
                ("/id-in/grp".to_owned(), false),
                ("grp".to_owned(), false)
            ]
        );
        PipSchema::apply(&mut s, &c);
        assert!(s.groups.is_empty() && s.legacy_groups.is_empty());
    }

    /// Whatever order the rows come in (a key below `/`, such as `-grp`,
    /// sorts first), the row under the absolute ID is the group.
    #[test]
    fn the_row_under_the_absolute_id_wins_in_any_order() {
        let hosting = HostingContext::new("//sp.example.com", "/id-in").expect("hosting");
        let abs = "//sp.example.com/id-in/-grp";
        let current = group(abs, &["//sp.example.com/id-in/Cnew"]);
        let older = group("-grp", &["//sp.example.com/id-in/Cold"]);
        for rows in [
            [("-grp", &older), (abs, &current)],
            [(abs, &current), ("-grp", &older)],
        ] {
            let mut s = PipState::hosted(hosting.clone());
            for (key, g) in rows {
                let text = serde_json::to_string(g).expect("json");
                PipSchema::load(&mut s, GROUPS, key, &text).expect("load");
            }
            assert_eq!(s.groups_of("//sp.example.com/id-in/Cnew"), vec![abs]);
            assert!(s.groups_of("//sp.example.com/id-in/Cold").is_empty());
        }
    }

    fn token(id: &str, lti: &str, not_after: chrono::DateTime<Utc>) -> TokenRecord {
        TokenRecord {
            token_id: id.into(),
            token_object: "a.b.c".into(),
            version: String::new(),
            issuer: String::new(),
            holder: String::new(),
            not_before: None,
            not_after: Some(not_after),
            token_name: String::new(),
            audience: Vec::new(),
            permissions_json: String::new(),
            extension: String::new(),
            local_token_id: lti.into(),
        }
    }

    /// Rows that give one Local-Token-ID to two tokens (writes never do):
    /// whatever their order, the token valid longer keeps it when the store
    /// loads, and the other has none (TS-0001 7.1.16: one token per ID).
    #[test]
    fn of_two_rows_holding_one_local_token_id_the_longer_valid_keeps_it() {
        let now = Utc::now();
        let old = token(
            "tkold@das.example.com",
            "ltZ",
            now - chrono::Duration::hours(1),
        );
        let new = token(
            "tknew@das.example.com",
            "ltZ",
            now + chrono::Duration::hours(1),
        );
        for rows in [[&old, &new], [&new, &old]] {
            let mut s = PipState::default();
            for t in rows {
                let text = serde_json::to_string(t).expect("json");
                PipSchema::load(&mut s, TOKENS, &t.token_id, &text).expect("load");
            }
            assert_eq!(
                s.token_by_local_id("ltZ").map(|t| t.token_id.as_str()),
                Some("tknew@das.example.com")
            );
            assert_eq!(s.tokens["tkold@das.example.com"].local_token_id, "");
        }
    }

    /// A role loaded from a row of an older store (keyed by its role ID
    /// alone) whose tokenLink is updated moves to a row under its role ID
    /// and holder: the old row is deleted, so no stale copy loads again.
    #[test]
    fn a_token_link_update_replaces_an_older_row_of_the_role() {
        let r = RoleRecord {
            role_id: "r@roles.example.com".into(),
            issuer: "//sp.example.com".into(),
            holder: "//sp.example.com/id-in/Calice".into(),
            not_before: Utc::now(),
            not_after: Utc::now(),
            role_name: String::new(),
            token_link: String::new(),
        };
        let mut s = PipState::default();
        let text = serde_json::to_string(&r).expect("json");
        PipSchema::load(&mut s, ROLES, &r.role_id, &text).expect("load");
        let c = PipSchema::check(
            &s,
            PipMutation::UpdateRoleTokenLink {
                role_id: r.role_id.clone(),
                holder: r.holder.clone(),
                token_link: "/id-in/tk1".into(),
            },
        )
        .expect("update");
        let keys: Vec<(String, bool)> = PipSchema::rows(&c)
            .expect("rows")
            .into_iter()
            .map(|row| (row.key, row.value.is_some()))
            .collect();
        assert_eq!(
            keys,
            [
                (role_row_key(&r.role_id, &r.holder), true),
                (r.role_id.clone(), false)
            ]
        );
        PipSchema::apply(&mut s, &c);
        assert!(s.legacy_roles.is_empty());
        assert_eq!(s.roles[&role_key(&r)].token_link, "/id-in/tk1");
    }

    #[test]
    fn the_member_index_follows_group_writes() {
        let mut s = PipState::default();
        let c = PipSchema::check(
            &s,
            PipMutation::PutGroup(group("g1", &["//a/c/A", "//a/c/B"])),
        )
        .expect("put");
        PipSchema::apply(&mut s, &c);
        let c =
            PipSchema::check(&s, PipMutation::PutGroup(group("g2", &["//a/c/B"]))).expect("put");
        PipSchema::apply(&mut s, &c);
        assert_eq!(s.groups_of("//a/c/B"), vec!["g1", "g2"]);
        // Replacing g1 without A removes A's membership and reports the old members.
        let c =
            PipSchema::check(&s, PipMutation::PutGroup(group("g1", &["//a/c/B"]))).expect("put");
        match &c {
            PipChange::GroupPut { previous, .. } => assert_eq!(previous, &["//a/c/A", "//a/c/B"]),
            other => panic!("unexpected {other:?}"),
        }
        PipSchema::apply(&mut s, &c);
        assert!(s.groups_of("//a/c/A").is_empty());
        let c = PipSchema::check(&s, PipMutation::DeleteGroup("g2".into())).expect("delete");
        PipSchema::apply(&mut s, &c);
        assert_eq!(s.groups_of("//a/c/B"), vec!["g1"]);
        assert!(matches!(
            PipSchema::check(&s, PipMutation::DeleteGroup("g2".into())),
            Err(PipError::NotFound(_))
        ));
    }
}
