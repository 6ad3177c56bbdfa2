//! The `PolicyInformationPoint` gRPC service (`pip.proto`): a thin adapter
//! between the wire messages, the [`Store`] of [`PipSchema`] and the
//! [`Resolver`].
//!
//! Reads answer from the store's in-memory state without I/O. Writes are
//! checked (INVALID_ARGUMENT naming the field; PERMISSION_DENIED for an
//! originator that may not write), committed durably one at a time, then
//! broadcast to `Watch` streams in revision order; the commit and the
//! broadcast are one unit that a cancelled request cannot split.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use authz_core::HostingContext;
use authz_core::request::Position;
use authz_proto::convert::{is_ncname, position_from_pb, timestamp_field, timestamp_to_pb};
use authz_proto::pb::policy_information_point_server::PolicyInformationPoint;
use authz_proto::{ConversionError, invalid_argument, pb};
use authz_store::{LogEntry, Store};
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::records::{
    canonical_group_id, canonical_id, check_token_link, fix_to_pb, group_from_pb, group_to_pb,
    position_report_from_pb, role_from_pb, role_to_pb, token_from_pb, token_id_violation,
    token_to_pb,
};
use crate::resolve::{Resolver, RoleVerdict};
use crate::state::{PipChange, PipError, PipMutation, PipSchema, PipState};

/// Who may write what.
#[derive(Debug, Clone, Default)]
pub struct Writers {
    /// May write everything (empty: nobody).
    pub admin: String,
    /// May report positions, besides the admin.
    pub location_sources: Vec<String>,
    /// May store tokens (`PutToken`), besides the admin: the PDPs that
    /// record the Local-Token-IDs they assign (TS-0003 7.3.2.3 step 6.2).
    pub token_writers: Vec<String>,
}

struct Inner {
    store: Arc<Store<PipSchema>>,
    resolver: Resolver,
    writers: Writers,
    /// Held by a write from before its commit until its change is on the
    /// broadcast (see [`PipService::commit`]), so that changes are
    /// broadcast in revision order.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    events: broadcast::Sender<pb::AttributeChange>,
    closing: watch::Sender<bool>,
}

impl Inner {
    /// The commit unit of [`PipService::commit`], blocking: store, then
    /// broadcast. The caller holds the write lock.
    fn commit_unit(&self, mutation: PipMutation) -> Result<LogEntry<PipChange>, PipError> {
        let entry = self.store.apply(mutation)?;
        // No receiver is fine.
        let _ = self.events.send(change_event(&entry));
        Ok(entry)
    }
}

/// The PIP service; cheap to clone.
#[derive(Clone)]
pub struct PipService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PipService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipService")
            .field("resolver", &self.inner.resolver)
            .field("writers", &self.inner.writers)
            .finish_non_exhaustive()
    }
}

/// The response stream of `Watch`.
pub type AttributeChangeStream =
    Pin<Box<dyn Stream<Item = Result<pb::AttributeChange, Status>> + Send>>;

fn pip_status(e: PipError) -> Status {
    match e {
        PipError::AlreadyExists(id) => Status::already_exists(format!("{id} already exists")),
        e @ PipError::TokenExists { .. } => Status::already_exists(e.to_string()),
        PipError::NotFound(id) => Status::not_found(format!("{id} not found")),
        e @ PipError::OlderPosition { .. } => Status::failed_precondition(e.to_string()),
        PipError::LocalTokenIdTaken {
            local_token_id,
            holder,
        } => authz_proto::convert::field_status(
            tonic::Code::AlreadyExists,
            &[ConversionError {
                field: "token.local_token_id".to_owned(),
                message: format!(
                    "{local_token_id} is the Local-Token-ID of token {holder}, which has not expired"
                ),
            }],
        ),
        PipError::Store(e) => {
            tracing::error!(error = %e, "PIP store failure");
            Status::internal(format!("store: {e}"))
        }
    }
}

fn bad(field: &str, message: impl Into<String>) -> Status {
    invalid_argument(&[ConversionError {
        field: field.to_owned(),
        message: message.into(),
    }])
}

/// The IDs a request names, as (field, ID), must not be empty: an empty one
/// is INVALID_ARGUMENT naming its field (every empty one), not NOT_FOUND, an
/// unknown group or PERMISSION_DENIED; as the PRP's `check_id_field`.
fn check_ids<'a, F: Into<String>>(
    ids: impl IntoIterator<Item = (F, &'a str)>,
) -> Result<(), Status> {
    let errors: Vec<ConversionError> = ids
        .into_iter()
        .filter(|(_, id)| id.is_empty())
        .map(|(field, _)| ConversionError {
            field: field.into(),
            message: "required".to_owned(),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_argument(&errors))
    }
}

/// A write's originator is an AE-ID or CSE-ID, checked as a decision's
/// (Decision 9), in the absolute form it is compared in too: one that is
/// none is INVALID_ARGUMENT naming `originator`, not a PERMISSION_DENIED
/// that would hide the typo.
fn check_writer_id(hosting: &HostingContext, originator: &str) -> Result<(), Status> {
    writer_id_errors(hosting, originator).map_err(|e| invalid_argument(&e))
}

/// [`check_writer_id`]'s fault, `required` for an empty originator.
fn writer_id_errors(
    hosting: &HostingContext,
    originator: &str,
) -> Result<(), Vec<ConversionError>> {
    let message = if originator.is_empty() {
        "required".to_owned()
    } else {
        match authz_core::ids::check_originator_id(originator)
            .and_then(|()| hosting.check_absolute_length(originator))
        {
            Ok(()) => return Ok(()),
            Err(e) => e.to_string(),
        }
    };
    Err(vec![ConversionError {
        field: "originator".to_owned(),
        message,
    }])
}

/// Every field at fault among `checks` (each one field's, or a few's)
/// in one INVALID_ARGUMENT, so that a request with several bad fields
/// names them all at once.
fn all_fields(
    checks: impl IntoIterator<Item = Result<(), Vec<ConversionError>>>,
) -> Result<(), Status> {
    let errors: Vec<ConversionError> = checks
        .into_iter()
        .filter_map(Result::err)
        .flatten()
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_argument(&errors))
    }
}

/// Role-IDs asked about: each must be `issuerRelativeID@issuerID` (spec
/// notes §7.2), named as the PDP names it in `role_ids`, so that a typo is
/// INVALID_ARGUMENT rather than "no such role".
fn check_role_ids<'a>(ids: impl IntoIterator<Item = (String, &'a str)>) -> Result<(), Status> {
    let errors: Vec<ConversionError> = ids
        .into_iter()
        .filter_map(|(field, id)| authz_proto::convert::role_id_violation(id, &field))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_argument(&errors))
    }
}

/// The `role_ids[i]` of a request, for [`check_role_ids`].
fn role_id_list(ids: &[String]) -> impl Iterator<Item = (String, &str)> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| (format!("role_ids[{i}]"), id.as_str()))
}

fn time_or_now(ts: Option<&prost_types::Timestamp>, field: &str) -> Result<DateTime<Utc>, Status> {
    match ts {
        Some(t) => timestamp_field(t, field).map_err(|e| invalid_argument(&[e])),
        None => Ok(Utc::now()),
    }
}

fn verdict_to_pb(v: &RoleVerdict) -> pb::RoleVerdict {
    pb::RoleVerdict {
        role_id: v.role_id.clone(),
        verified: v.verified,
        reason: v.reason.clone(),
        not_before: v.validity.map(|(nb, _)| timestamp_to_pb(&nb)),
        not_after: v.validity.map(|(_, na)| timestamp_to_pb(&na)),
    }
}

/// The watch event of a committed change.
fn change_event(entry: &LogEntry<PipChange>) -> pb::AttributeChange {
    use pb::attribute_change::Change;
    let change = match &entry.change {
        PipChange::RolePut(r) => Change::Role(pb::RoleChanged {
            role_id: r.role_id.clone(),
            holder: r.holder.clone(),
            deleted: false,
        }),
        PipChange::RoleUpdated { role: r, .. } => Change::Role(pb::RoleChanged {
            role_id: r.role_id.clone(),
            holder: r.holder.clone(),
            deleted: false,
        }),
        PipChange::RoleDeleted {
            role_id, holder, ..
        } => Change::Role(pb::RoleChanged {
            role_id: role_id.clone(),
            holder: holder.clone(),
            deleted: true,
        }),
        // The expired token whose Local-Token-ID was reused changed too,
        // but only in that ID, which no watcher caches.
        PipChange::TokenPut(t) | PipChange::TokenPutReusingLocalId { token: t, .. } => {
            Change::Token(pb::TokenChanged {
                token_id: t.token_id.clone(),
                deleted: false,
            })
        }
        PipChange::TokenDeleted(id) => Change::Token(pb::TokenChanged {
            token_id: id.clone(),
            deleted: true,
        }),
        PipChange::GroupPut {
            group,
            previous,
            nested,
            ..
        } => {
            let mut affected: Vec<String> = group
                .member_keys()
                .chain(previous)
                .chain(nested)
                .cloned()
                .collect();
            affected.sort();
            affected.dedup();
            Change::Group(pb::GroupChanged {
                group_id: group.group_id.clone(),
                affected_members: affected,
                deleted: false,
            })
        }
        PipChange::GroupDeleted {
            group_id,
            members,
            nested,
            ..
        } => {
            let mut affected: Vec<String> = members.iter().chain(nested).cloned().collect();
            affected.sort();
            affected.dedup();
            Change::Group(pb::GroupChanged {
                group_id: group_id.clone(),
                affected_members: affected,
                deleted: true,
            })
        }
        PipChange::PositionPut(p) => Change::Position(pb::PositionChanged {
            subject: p.subject.clone(),
        }),
    };
    pb::AttributeChange {
        revision: entry.revision,
        change: Some(change),
    }
}

fn reset_event(revision: u64) -> pb::AttributeChange {
    pb::AttributeChange {
        revision,
        change: Some(pb::attribute_change::Change::Reset(pb::Reset {})),
    }
}

impl PipService {
    /// A service over `store`, answering with `resolver`, letting `writers`
    /// write.
    pub fn new(store: Arc<Store<PipSchema>>, resolver: Resolver, writers: Writers) -> Self {
        let (events, _) = broadcast::channel(1024);
        let (closing, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                store,
                resolver,
                writers,
                write_lock: Arc::new(tokio::sync::Mutex::new(())),
                events,
                closing,
            }),
        }
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.inner.store.revision()
    }

    /// Ends every open `Watch` stream (call on shutdown).
    pub fn shutdown(&self) {
        self.inner.closing.send_replace(true);
    }

    fn read<T>(&self, f: impl FnOnce(&PipState) -> T) -> T {
        self.inner.store.read(|_, s| f(s))
    }

    fn same_id(&self, a: &str, b: &str) -> bool {
        let h = self.inner.resolver.hosting();
        a == b || matches!((h.canonicalize(a), h.canonicalize(b)), (Ok(x), Ok(y)) if x == y)
    }

    fn is_admin(&self, originator: &str) -> bool {
        let admin = &self.inner.writers.admin;
        !admin.is_empty() && self.same_id(originator, admin)
    }

    fn require_admin(&self, originator: &str) -> Result<(), Status> {
        check_writer_id(self.inner.resolver.hosting(), originator)?;
        if self.is_admin(originator) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "originator '{originator}' may not write to the PIP"
            )))
        }
    }

    /// The admin, or one of `writers`, else PERMISSION_DENIED with
    /// `denial`.
    fn require_writer(
        &self,
        originator: &str,
        writers: &[String],
        denial: &str,
    ) -> Result<(), Status> {
        check_writer_id(self.inner.resolver.hosting(), originator)?;
        if self.is_admin(originator) || writers.iter().any(|s| self.same_id(originator, s)) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "originator '{originator}' {denial}"
            )))
        }
    }

    /// Commits a write and broadcasts it; returns the new revision.
    ///
    /// The durable commit and the broadcast to watchers run as one unit
    /// that cancelling the caller cannot split: a blocking task that owns
    /// the write lock, and a blocking task runs to its end even when its
    /// awaiter is dropped (a deadline, a disconnect, a stream reset). So a
    /// change on disk always reaches `Watch` streams, in revision order,
    /// before the next write commits; without that, a PDP would skip the
    /// revision and keep the attributes it changed (README "PIP", `Watch`).
    async fn commit(&self, mutation: PipMutation) -> Result<u64, Status> {
        Ok(self.commit_entry(mutation).await?.revision)
    }

    /// [`Self::commit`], returning the committed change (what was stored,
    /// which a check may have changed from what was asked).
    async fn commit_entry(&self, mutation: PipMutation) -> Result<LogEntry<PipChange>, Status> {
        let guard = self.inner.write_lock.clone().lock_owned().await;
        let inner = self.inner.clone();
        let entry = tokio::task::spawn_blocking(move || {
            let result = inner.commit_unit(mutation);
            drop(guard);
            result
        })
        .await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
        .map_err(pip_status)?;
        Ok(entry)
    }

    /// The holder a request on the role `role_id` means: `holder` in
    /// absolute form; when it is empty, the role's only holder (a Role-ID
    /// held by several originators needs `holder`).
    /// The holder of the stored role an admin's write names (DeleteRole,
    /// UpdateRoleTokenLink), after checking the IDs (as GetRole: a
    /// malformed Role-ID names no role, and NOT_FOUND would hide the typo),
    /// the request's `other` fields, and that the originator is the admin.
    fn admin_role_write(
        &self,
        originator: &str,
        role_id: &str,
        holder: &str,
        other: impl FnOnce() -> Result<(), Status>,
    ) -> Result<String, Status> {
        check_ids([("originator", originator), ("role_id", role_id)])?;
        check_role_ids([("role_id".to_owned(), role_id)])?;
        other()?;
        self.require_admin(originator)?;
        self.role_holder(role_id, holder)
    }

    fn role_holder(&self, role_id: &str, holder: &str) -> Result<String, Status> {
        if !holder.is_empty() {
            return self.canonical("holder", holder);
        }
        let holders: Vec<String> = self.read(|s| {
            s.roles
                .range((role_id.to_owned(), String::new())..)
                .take_while(|((id, _), _)| id == role_id)
                .take(2)
                .map(|((_, h), _)| h.clone())
                .collect()
        });
        match holders.as_slice() {
            [] => Err(Status::not_found(format!("{role_id} not found"))),
            [only] => Ok(only.clone()),
            _ => Err(invalid_argument(&[ConversionError {
                field: "holder".to_owned(),
                message: format!("required: {role_id} is held by several originators"),
            }])),
        }
    }

    fn canonical(&self, field: &str, id: &str) -> Result<String, Status> {
        canonical_id(self.inner.resolver.hosting(), field, id).map_err(|e| invalid_argument(&e))
    }

    /// A `<group>` ID in any form, absolute as groups are stored.
    fn group_id(&self, field: &str, id: &str) -> Result<String, Status> {
        canonical_group_id(self.inner.resolver.hosting(), field, id)
            .map_err(|e| invalid_argument(&e))
    }

    /// Answers `ResolveAttributes` (also used in-process by tests).
    pub fn resolve_attributes(
        &self,
        req: &pb::ResolveAttributesRequest,
    ) -> Result<pb::ResolvedAttributes, Status> {
        let originator = self.canonical("originator", &req.originator)?;
        check_role_ids(role_id_list(&req.role_ids))?;
        let at = time_or_now(req.at.as_ref(), "at")?;
        let ip: Option<IpAddr> = if req.originator_ip.is_empty() {
            None
        } else {
            Some(req.originator_ip.parse().map_err(|_| {
                bad(
                    "originator_ip",
                    format!("'{}' is not an IP address", req.originator_ip),
                )
            })?)
        };
        let request_position: Option<Position> = match &req.position {
            Some(p) => Some(position_from_pb(p, "position").map_err(|e| invalid_argument(&e))?),
            None => None,
        };
        let resolver = &self.inner.resolver;
        let (revision, roles, groups, fix) = self.inner.store.read(|revision, state| {
            let roles: Vec<pb::RoleVerdict> = req
                .role_ids
                .iter()
                .map(|r| verdict_to_pb(&resolver.verify_role(state, &originator, r, at)))
                .collect();
            let groups = state.groups_of(&originator);
            // The consumer (the PDP's cache) uses the fix only for request
            // times from its measurement to its end of freshness.
            let fix = resolver
                .current_position(state, &originator)
                .map(|(p, until)| (p.clone(), until));
            (revision, roles, groups, fix)
        });
        let (position, position_countries) = match fix {
            Some((p, until)) => (
                Some(fix_to_pb(&p, until)),
                resolver.countries_of_position(&p.position()),
            ),
            None => (None, Vec::new()),
        };
        Ok(pb::ResolvedAttributes {
            revision,
            roles,
            groups,
            position,
            position_countries,
            ip_country: ip
                .and_then(|ip| resolver.country_of_ip(ip))
                .unwrap_or_default(),
            request_position_countries: request_position
                .map(|p| resolver.countries_of_position(&p))
                .unwrap_or_default(),
            ip_sources_configured: resolver.has_ip_sources(),
        })
    }
}

#[tonic::async_trait]
impl PolicyInformationPoint for PipService {
    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let req = request.into_inner();
        check_ids([("originator", req.originator.as_str())])?;
        let role = req.role.as_ref().ok_or_else(|| bad("role", "required"))?;
        let record =
            role_from_pb(self.inner.resolver.hosting(), role).map_err(|e| invalid_argument(&e))?;
        self.require_admin(&req.originator)?;
        let revision = self.commit(PipMutation::CreateRole(record.clone())).await?;
        tracing::info!(role = %record.role_id, holder = %record.holder, revision, "role created");
        Ok(Response::new(role_to_pb(&record)))
    }

    async fn get_role(
        &self,
        request: Request<pb::GetRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let req = request.get_ref();
        check_role_ids([("role_id".to_owned(), req.role_id.as_str())])?;
        let id = req.role_id.clone();
        let holder = self.role_holder(&req.role_id, &req.holder)?;
        self.read(|s| s.roles.get(&(id.clone(), holder.clone())).map(role_to_pb))
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("{id} of {holder} not found")))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::PipWriteResponse>, Status> {
        let req = request.into_inner();
        let holder =
            self.admin_role_write(&req.originator, &req.role_id, &req.holder, || Ok(()))?;
        let revision = self
            .commit(PipMutation::DeleteRole {
                role_id: req.role_id,
                holder,
            })
            .await?;
        Ok(Response::new(pb::PipWriteResponse { revision }))
    }

    async fn update_role_token_link(
        &self,
        request: Request<pb::UpdateRoleTokenLinkRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let req = request.into_inner();
        let holder = self.admin_role_write(&req.originator, &req.role_id, &req.holder, || {
            check_token_link("token_link", &req.token_link).map_err(|e| invalid_argument(&e))
        })?;
        let entry = self
            .commit_entry(PipMutation::UpdateRoleTokenLink {
                role_id: req.role_id,
                holder,
                token_link: req.token_link,
            })
            .await?;
        let PipChange::RoleUpdated { role, .. } = entry.change else {
            return Err(Status::internal(format!(
                "UpdateRoleTokenLink committed an unexpected change: {:?}",
                entry.change
            )));
        };
        tracing::info!(role = %role.role_id, holder = %role.holder, revision = entry.revision, "role tokenLink updated");
        Ok(Response::new(role_to_pb(&role)))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let holder = &request.get_ref().holder;
        let holder = if holder.is_empty() {
            None
        } else {
            Some(self.canonical("holder", holder)?)
        };
        let roles = self.read(|s| {
            s.roles
                .values()
                .filter(|r| holder.as_ref().is_none_or(|h| &r.holder == h))
                .map(role_to_pb)
                .collect()
        });
        Ok(Response::new(pb::ListRolesResponse { roles }))
    }

    async fn resolve_roles(
        &self,
        request: Request<pb::ResolveRolesRequest>,
    ) -> Result<Response<pb::ResolveRolesResponse>, Status> {
        let req = request.get_ref();
        let originator = self.canonical("originator", &req.originator)?;
        check_role_ids(role_id_list(&req.role_ids))?;
        let at = time_or_now(req.at.as_ref(), "at")?;
        let verdicts = self.read(|s| {
            req.role_ids
                .iter()
                .map(|r| verdict_to_pb(&self.inner.resolver.verify_role(s, &originator, r, at)))
                .collect()
        });
        Ok(Response::new(pb::ResolveRolesResponse { verdicts }))
    }

    async fn put_token(
        &self,
        request: Request<pb::PutTokenRequest>,
    ) -> Result<Response<pb::Token>, Status> {
        let req = request.into_inner();
        check_ids([("originator", req.originator.as_str())])?;
        let token = req.token.as_ref().ok_or_else(|| bad("token", "required"))?;
        let record = token_from_pb(self.inner.resolver.hosting(), token)
            .map_err(|e| invalid_argument(&e))?;
        self.require_writer(
            &req.originator,
            &self.inner.writers.token_writers,
            "may not store tokens in the PIP",
        )?;
        // The same token again (a PDP's retry, another PDP of the CSE
        // shown it) with nothing to add: answered as stored, without a
        // revision that every watcher would fetch for nothing. One without
        // a Local-Token-ID that this put proposes one for is a change.
        let unchanged = self.read(|s| {
            s.tokens
                .get(&record.token_id)
                .filter(|stored| {
                    stored.differing_attributes(&record).is_empty()
                        && (!stored.local_token_id.is_empty() || record.local_token_id.is_empty())
                })
                .map(token_to_pb)
        });
        if let Some(stored) = unchanged {
            return Ok(Response::new(stored));
        }
        let entry = self
            .commit_entry(PipMutation::PutToken {
                token: record,
                at: Utc::now(),
            })
            .await?;
        // As stored: with the Local-Token-ID the token already had, when it
        // had one, whatever this request asked.
        let stored = match entry.change {
            PipChange::TokenPut(t) | PipChange::TokenPutReusingLocalId { token: t, .. } => t,
            other => {
                return Err(Status::internal(format!(
                    "PutToken committed an unexpected change: {other:?}"
                )));
            }
        };
        if !stored.local_token_id.is_empty() {
            tracing::debug!(token = %stored.token_id, local_token_id = %stored.local_token_id, revision = entry.revision, "token stored with its Local-Token-ID");
        }
        Ok(Response::new(token_to_pb(&stored)))
    }

    async fn get_tokens(
        &self,
        request: Request<pb::GetTokensRequest>,
    ) -> Result<Response<pb::GetTokensResponse>, Status> {
        let req = request.get_ref();
        let ids = &req.token_ids;
        // Every field at fault, named once: empty, or a malformed Token-ID
        // (no token's: INVALID_ARGUMENT, as in PutToken, not an unknown
        // ID), or a Local-Token-ID that is no NCName.
        let required = |field: String| ConversionError {
            field,
            message: "required".to_owned(),
        };
        let mut errors: Vec<ConversionError> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let field = format!("token_ids[{i}]");
            if id.is_empty() {
                errors.push(required(field));
            } else if let Some(e) = token_id_violation(id, &field) {
                errors.push(e);
            }
        }
        for (i, l) in req.local_token_ids.iter().enumerate() {
            let field = format!("local_token_ids[{i}]");
            if l.is_empty() {
                errors.push(required(field));
            } else if !is_ncname(l) {
                errors.push(ConversionError {
                    field,
                    message: authz_proto::convert::not_ncname_message(l),
                });
            }
        }
        errors.extend(authz_proto::convert::repeated_entries(ids, "token_ids"));
        errors.extend(authz_proto::convert::repeated_entries(
            &req.local_token_ids,
            "local_token_ids",
        ));
        if !errors.is_empty() {
            return Err(invalid_argument(&errors));
        }
        let (tokens, unknown_ids) = self.read(|s| {
            let mut tokens = Vec::new();
            let mut unknown = Vec::new();
            for id in ids {
                match s.tokens.get(id) {
                    Some(t) => tokens.push(token_to_pb(t)),
                    None => unknown.push(id.clone()),
                }
            }
            // TS-0003 7.3.2.3 step 6.1.2, for a PDP that did not assign
            // the ID: expired tokens too, so that its Deny says so.
            for lti in &req.local_token_ids {
                match s.token_by_local_id(lti) {
                    Some(t) => tokens.push(token_to_pb(t)),
                    None => unknown.push(lti.clone()),
                }
            }
            (tokens, unknown)
        });
        Ok(Response::new(pb::GetTokensResponse {
            tokens,
            unknown_ids,
        }))
    }

    async fn delete_token(
        &self,
        request: Request<pb::DeleteTokenRequest>,
    ) -> Result<Response<pb::PipWriteResponse>, Status> {
        let req = request.into_inner();
        check_ids([
            ("originator", req.originator.as_str()),
            ("token_id", req.token_id.as_str()),
        ])?;
        if let Some(e) = token_id_violation(&req.token_id, "token_id") {
            return Err(invalid_argument(&[e]));
        }
        self.require_admin(&req.originator)?;
        let revision = self.commit(PipMutation::DeleteToken(req.token_id)).await?;
        Ok(Response::new(pb::PipWriteResponse { revision }))
    }

    async fn put_group(
        &self,
        request: Request<pb::PutGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let req = request.into_inner();
        let record = match req.group.as_ref() {
            Some(group) => group_from_pb(self.inner.resolver.hosting(), group),
            None => Err(vec![ConversionError {
                field: "group".to_owned(),
                message: "required".to_owned(),
            }]),
        };
        all_fields([
            writer_id_errors(self.inner.resolver.hosting(), &req.originator),
            record.as_ref().map(drop).map_err(Clone::clone),
        ])?;
        let record = record.map_err(|e| invalid_argument(&e))?;
        self.require_admin(&req.originator)?;
        let revision = self.commit(PipMutation::PutGroup(record.clone())).await?;
        tracing::info!(group = %record.group_id, members = record.members.len(), revision, "group stored");
        Ok(Response::new(group_to_pb(&record)))
    }

    async fn get_group(
        &self,
        request: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        let id = &request.get_ref().group_id;
        check_ids([("group_id", id.as_str())])?;
        let id = self.group_id("group_id", id)?;
        self.read(|s| s.groups.get(&id).map(group_to_pb))
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("{id} not found")))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::PipWriteResponse>, Status> {
        let req = request.into_inner();
        let hosting = self.inner.resolver.hosting();
        let group_id = canonical_group_id(hosting, "group_id", &req.group_id);
        all_fields([
            writer_id_errors(self.inner.resolver.hosting(), &req.originator),
            group_id.as_ref().map(drop).map_err(Clone::clone),
        ])?;
        let group_id = group_id.map_err(|e| invalid_argument(&e))?;
        self.require_admin(&req.originator)?;
        let revision = self.commit(PipMutation::DeleteGroup(group_id)).await?;
        Ok(Response::new(pb::PipWriteResponse { revision }))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let ids_only = request.get_ref().ids_only;
        // The revision read with the groups, so that a watcher knows which
        // of its changes the listing holds already.
        let (revision, groups) = self.inner.store.read(|revision, s| {
            let groups = s.groups.values().map(|g| {
                if ids_only {
                    pb::Group {
                        group_id: g.group_id.clone(),
                        member_ids: Vec::new(),
                    }
                } else {
                    group_to_pb(g)
                }
            });
            (revision, groups.collect())
        });
        Ok(Response::new(pb::ListGroupsResponse { groups, revision }))
    }

    async fn check_membership(
        &self,
        request: Request<pb::CheckMembershipRequest>,
    ) -> Result<Response<pb::CheckMembershipResponse>, Status> {
        let req = request.get_ref();
        let hosting = self.inner.resolver.hosting();
        let originator = canonical_id(hosting, "originator", &req.originator);
        let group_id = canonical_group_id(hosting, "group_id", &req.group_id);
        all_fields([
            originator.as_ref().map(drop).map_err(Clone::clone),
            group_id.as_ref().map(drop).map_err(Clone::clone),
        ])?;
        let originator = originator.map_err(|e| invalid_argument(&e))?;
        let group_id = group_id.map_err(|e| invalid_argument(&e))?;
        // Through sub-groups too, as `ResolveAttributes` answers.
        let (is_group, is_member) = self.read(|s| {
            (
                s.groups.contains_key(&group_id),
                s.is_member(&group_id, &originator),
            )
        });
        Ok(Response::new(pb::CheckMembershipResponse {
            is_group,
            is_member,
        }))
    }

    async fn report_position(
        &self,
        request: Request<pb::ReportPositionRequest>,
    ) -> Result<Response<pb::PipWriteResponse>, Status> {
        let req = request.into_inner();
        check_ids([("originator", req.originator.as_str())])?;
        let record = position_report_from_pb(self.inner.resolver.hosting(), &req, Utc::now())
            .map_err(|e| invalid_argument(&e))?;
        self.require_writer(
            &req.originator,
            &self.inner.writers.location_sources,
            "is not a configured location source",
        )?;
        let revision = self.commit(PipMutation::ReportPosition(record)).await?;
        Ok(Response::new(pb::PipWriteResponse { revision }))
    }

    async fn get_position(
        &self,
        request: Request<pb::GetPositionRequest>,
    ) -> Result<Response<pb::GetPositionResponse>, Status> {
        let req = request.get_ref();
        let subject = self.canonical("originator", &req.originator)?;
        let at = time_or_now(req.at.as_ref(), "at")?;
        let fix = self.read(|s| {
            self.inner
                .resolver
                .fresh_position(s, &subject, at)
                .map(|(p, until)| fix_to_pb(p, until))
        });
        Ok(Response::new(pb::GetPositionResponse { fix }))
    }

    async fn locate_ip(
        &self,
        request: Request<pb::LocateIpRequest>,
    ) -> Result<Response<pb::CountryAnswer>, Status> {
        let text = &request.get_ref().ip;
        let ip: IpAddr = text
            .parse()
            .map_err(|_| bad("ip", format!("'{text}' is not an IP address")))?;
        Ok(Response::new(pb::CountryAnswer {
            countries: self.inner.resolver.country_of_ip(ip).into_iter().collect(),
        }))
    }

    async fn locate_position(
        &self,
        request: Request<pb::LocatePositionRequest>,
    ) -> Result<Response<pb::CountryAnswer>, Status> {
        let p = request
            .get_ref()
            .position
            .as_ref()
            .ok_or_else(|| bad("position", "required"))?;
        let p = position_from_pb(p, "position").map_err(|e| invalid_argument(&e))?;
        Ok(Response::new(pb::CountryAnswer {
            countries: self.inner.resolver.countries_of_position(&p),
        }))
    }

    async fn resolve_attributes(
        &self,
        request: Request<pb::ResolveAttributesRequest>,
    ) -> Result<Response<pb::ResolvedAttributes>, Status> {
        PipService::resolve_attributes(self, request.get_ref()).map(Response::new)
    }

    type WatchStream = AttributeChangeStream;

    async fn watch(
        &self,
        request: Request<pb::WatchAttributesRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let from = request.into_inner().from_revision;
        // Subscribe before reading, so that no change falls in between.
        let live = self.inner.events.subscribe();
        let closing = self.inner.closing.subscribe();
        let store = self.inner.store.clone();
        let initial: Vec<pb::AttributeChange> = if from == 0 {
            vec![reset_event(store.revision())]
        } else {
            let log = tokio::task::spawn_blocking(move || store.changes_since(from))
                .await
                .map_err(|e| Status::internal(format!("store task failed: {e}")))?;
            match log {
                Some(entries) => entries.iter().map(change_event).collect(),
                None => vec![reset_event(self.revision())],
            }
        };
        let service = self.clone();
        let stream = authz_proto::serving::watch_stream(initial, from, live, closing, move || {
            Ok(vec![reset_event(service.revision())])
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
