//! The gRPC services: `PolicyDecisionPoint` (TS-0003 6.2.2 steps 003 and
//! 008-009) and `Echo`, a thin adapter between the wire messages and
//! [`authz_core::decide`] over the local [`Replica`].
//!
//! Per request: convert and check it ([`decision_request_from_pb`]); take
//! the hosting CSE from the request or the configured default; build the
//! applicable set from the explicit `acp_ids` (the `pv` of each) or, when
//! there are none, with [`applicable_policies_for`] over the replica (the
//! default policy is compiled on the fly); an `updates_acpi` request (an
//! Update of the target's `acpi` alone) takes the `pvs` of those ACPs
//! instead, and no dynamic ACP, token `pv` or DAS consultation (TS-0001
//! 9.6.1.3.2); decide with an explanation; fill
//! `decision_id`, `policy_revision` and `request_id`. The network is waited
//! on only for a PIP fetch (an attribute a Deny may turn on that the cache
//! lacks) and for tokens and dynamic authorization ([`crate::dynamic`]).
//! Without a [`crate::DynamicConfig`], tokens in a request are not used:
//! the stored policies decide, and a Deny of a request carrying tokens,
//! Token-IDs or Local-Token-IDs says that they cannot be verified (TS-0003
//! 7.3.2.3 step 6.1.4).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use authz_core::compile::CompiledAcp;
use authz_core::decision::{
    AuthorizationStatus, Decision, Effect, Explanation, MissingAttribute, PrivilegeKind,
};
use authz_core::ids::with_canonical_originator;
use authz_core::resources::{
    ApplicableSet, ResolveError, ResourceView, acpi_change_policies, applicable_policies_for,
    dynamic_acp_holders,
};
use authz_core::{
    Applicable, AttributeSource, DecideOptions, HostingContext, decide, decide_canonical,
    role_ids_for_consultation,
};
use authz_proto::ConvertedRequest;
use authz_proto::convert::{
    decision_request_from_pb, decision_to_pb, invalid_argument, missing_to_pb,
};
use authz_proto::pb;
use authz_proto::pb::echo_server::Echo;
use authz_proto::pb::policy_decision_point_server::PolicyDecisionPoint;
use chrono::Utc;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use smallvec::{SmallVec, smallvec};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::dynamic::{Dynamic, TokenFailure, TokenGrant};
use crate::members::WithMemberResources;
use crate::pip::{FetchRequest, Fetched, PipCache};
use crate::replica::{Replica, Snapshot};
use crate::telemetry;

/// The reason of every Deny while the replica has had no snapshot.
const REPLICA_NOT_LOADED: &str =
    "the PDP's replica has no snapshot from the PRP yet, so it holds no policies";

/// Why a PDP whose replica is known to be out of step denies.
const REPLICA_OUT_OF_STEP: &str = "the PDP's replica is out of step with the PRP (a change \
     is missing, or the PRP holds another store) and waits for a snapshot: the policies it \
     holds may have been superseded";

/// Generates unique decision IDs: a per-process random prefix and a counter.
#[derive(Debug)]
struct DecisionIds {
    /// Tells this PDP's blocks from another's in a thread's cache.
    instance: u64,
    prefix: String,
    next: AtomicU64,
}

/// Decision IDs a thread takes from the shared counter at once: one
/// contended atomic per block instead of per decision.
const ID_BLOCK: u64 = 256;

static ID_INSTANCES: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The block of decision IDs this thread hands out: (instance, next, end).
    static ID_RANGE: std::cell::Cell<(u64, u64, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

impl DecisionIds {
    fn new() -> Self {
        Self {
            instance: ID_INSTANCES.fetch_add(1, Ordering::Relaxed),
            prefix: crate::dynamic::random_prefix(),
            next: AtomicU64::new(1),
        }
    }

    /// A new ID, unique within this PDP (increasing within a thread, not
    /// across threads).
    fn next(&self) -> String {
        let n = ID_RANGE.with(|range| {
            let (instance, mut next, mut end) = range.get();
            if instance != self.instance || next == end {
                next = self.next.fetch_add(ID_BLOCK, Ordering::Relaxed);
                end = next + ID_BLOCK;
            }
            range.set((self.instance, next + 1, end));
            next
        });
        let mut id = String::with_capacity(self.prefix.len() + 21);
        id.push_str(&self.prefix);
        id.push('-');
        id.push_str(itoa::Buffer::new().format(n));
        id
    }
}

/// When a decision started: the monotonic clock for its latency, the wall
/// clock for the request time it defaults to. Lifetimes are judged at
/// [`Job::clock`] instead, read again by each pass.
#[derive(Clone, Copy)]
struct At {
    start: Instant,
    now: chrono::DateTime<Utc>,
}

impl At {
    fn now() -> Self {
        Self {
            start: Instant::now(),
            now: Utc::now(),
        }
    }
}

/// One wire request being decided: the request, its conversion (done once,
/// whatever passes the decision takes), and when it started.
struct Job<'r> {
    req: &'r pb::DecisionRequest,
    conv: ConvertedRequest,
    at: At,
    /// When the caller stops waiting (its `grpc-timeout`), if it said.
    caller_deadline: Option<Instant>,
}

impl Job<'_> {
    /// The PDP's clock when a pass of the decision runs, not when the
    /// request arrived: a token, role, position or dynamic ACP whose
    /// lifetime ends while the request waits (on the network, or in a
    /// stream's queue) has ended for it (TS-0003 7.3.2.3 step 6.1.3
    /// compares "the current time"; Decision 7).
    fn clock(&self) -> chrono::DateTime<Utc> {
        Utc::now().max(self.at.now)
    }
}

/// The state shared by every clone of [`PdpService`].
struct Inner {
    replica: Arc<Replica>,
    hosting: HostingContext,
    attributes: Arc<dyn AttributeSource>,
    /// When set, attributes come from the PIP through this cache (and
    /// `attributes` is not used).
    pip: Option<Arc<PipCache>>,
    /// Tokens and dynamic authorization, when DASes are configured.
    dynamic: Option<Arc<Dynamic>>,
    ids: DecisionIds,
    /// Whether the last PIP fetch failed: an outage is logged when it
    /// starts and when it ends, not once per decision it denies.
    pip_failing: std::sync::atomic::AtomicBool,
}

/// The attributes a decision pass uses.
#[derive(Clone, Copy)]
enum Pass<'a> {
    /// The cache as it is (a miss ends the pass with [`Outcome::Fetch`]).
    Cached,
    /// The cache after a fetch: its answer first.
    Fetched(&'a Fetched),
    /// The cache after a failed fetch: misses are unavailable for this reason.
    FetchFailed(&'a str),
}

/// A resolved applicable set. Stored ACPs are borrowed from the replica
/// snapshot: cloning their `Arc` would make every decision on a hot ACP
/// bounce its reference count between cores.
struct Applicables<'s> {
    acps: SmallVec<[(AcpRef<'s>, PrivilegeKind); 4]>,
    /// ACP IDs named but not in the replica.
    unknown: Vec<String>,
    /// Live dynamic ACPs named (`acp_ids`) that are bound to another
    /// resource: they grant nothing on this target (Decision 7).
    unbound: Vec<String>,
    /// ACPs named that the replica holds but this PDP could not compile,
    /// with why: what their rules say is unknown (7.1.4).
    rejected: Vec<(String, String)>,
    /// When each dynamic ACP of `acps` ends: no time window of it opens
    /// after that (explanations).
    ends: Vec<(&'s str, chrono::DateTime<chrono::Utc>)>,
}

/// One ACP of an applicable set: borrowed from the replica or a token
/// grant, or owned (a default policy compiled for this decision) behind a
/// `Box`, so that the set stays small to move (a `Cow` would hold a whole
/// `CompiledAcp` inline in every slot).
enum AcpRef<'s> {
    Borrowed(&'s CompiledAcp),
    Owned(Box<CompiledAcp>),
}

impl std::ops::Deref for AcpRef<'_> {
    type Target = CompiledAcp;

    fn deref(&self) -> &CompiledAcp {
        match self {
            Self::Borrowed(acp) => acp,
            Self::Owned(acp) => acp,
        }
    }
}

/// The result of one decision pass.
enum Outcome {
    /// The decision.
    Done(pb::Decision),
    /// A Deny that may turn on attributes the cache does not hold: fetch
    /// them and decide again.
    Fetch(OwnedFetch),
}

/// An owned [`FetchRequest`].
struct OwnedFetch {
    originator: String,
    role_ids: Vec<String>,
    at: chrono::DateTime<Utc>,
    ip: Option<std::net::IpAddr>,
    position: Option<authz_core::Position>,
    member_resources: Vec<String>,
}

impl OwnedFetch {
    fn as_request(&self) -> FetchRequest<'_> {
        FetchRequest {
            originator: &self.originator,
            role_ids: &self.role_ids,
            at: self.at,
            ip: self.ip,
            position: self.position,
            member_resources: &self.member_resources,
        }
    }
}

/// How far a decision got without waiting on the network.
enum Step {
    /// The decision.
    Decided(pb::Decision),
    /// The decision waits for this.
    Wait(Wait),
}

/// What an undecided request waits for, with what it has so far.
enum Wait {
    /// Its tokens, Token-IDs and Local-Token-IDs to resolve and verify.
    Tokens(Arc<Dynamic>),
    /// Attributes from the PIP before the stored policies decide with `grant`.
    Attributes {
        grant: TokenGrant,
        fetch: OwnedFetch,
    },
    /// The DASes to consult about a request the stored policies and `grant`
    /// deny (`decision`, boxed: a wait holds it rarely, a `Step` always
    /// has room for the largest variant).
    Das {
        dynamic: Arc<Dynamic>,
        grant: TokenGrant,
        decision: Box<pb::Decision>,
    },
}

/// The `PolicyDecisionPoint` service. Cheap to clone; every clone decides
/// against the same replica.
#[derive(Clone)]
pub struct PdpService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PdpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdpService")
            .field("hosting", &self.inner.hosting)
            .field("revision", &self.inner.replica.revision())
            .finish_non_exhaustive()
    }
}

pub use authz_core::resources::{DEFAULT_POLICY_PREFIX, default_policy_id};

impl PdpService {
    /// A service deciding against `replica`, with `hosting` for requests
    /// that name no hosting CSE, asking `attributes` for what requests do not
    /// carry.
    pub fn new(
        replica: Arc<Replica>,
        hosting: HostingContext,
        attributes: Arc<dyn AttributeSource>,
    ) -> Self {
        Self::with_pip(replica, hosting, attributes, None)
    }

    /// Like [`PdpService::new`]; with `pip`, attributes come from the PIP
    /// through that cache instead of `attributes`.
    pub fn with_pip(
        replica: Arc<Replica>,
        hosting: HostingContext,
        attributes: Arc<dyn AttributeSource>,
        pip: Option<Arc<PipCache>>,
    ) -> Self {
        Self::with_sources(replica, hosting, attributes, pip, None)
    }

    /// Like [`PdpService::with_pip`], with tokens and dynamic authorization
    /// handled by `dynamic`.
    pub fn with_sources(
        replica: Arc<Replica>,
        hosting: HostingContext,
        attributes: Arc<dyn AttributeSource>,
        pip: Option<Arc<PipCache>>,
        dynamic: Option<Arc<Dynamic>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                replica,
                hosting,
                attributes,
                pip,
                dynamic,
                ids: DecisionIds::new(),
                pip_failing: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The replica this service decides with.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.inner.replica
    }

    /// Decides one wire request against the current replica, fetching
    /// attributes from the PIP when the cache lacks one a Deny may turn on.
    /// A request that does not convert is returned as the conversion errors.
    pub async fn decide_resolving_pb(
        &self,
        req: &pb::DecisionRequest,
    ) -> Result<pb::Decision, Vec<authz_proto::ConversionError>> {
        self.decide_until(req, None).await
    }

    /// [`Self::decide_resolving_pb`] for a caller that stops waiting at
    /// `caller_deadline`: network waits end a little before it with a Deny
    /// that says so.
    async fn decide_until(
        &self,
        req: &pb::DecisionRequest,
        caller_deadline: Option<Instant>,
    ) -> Result<pb::Decision, Vec<authz_proto::ConversionError>> {
        let snap = self.inner.replica.load();
        let mut job = self.prepare(&snap, req, At::now())?;
        job.caller_deadline = caller_deadline;
        let out = self.decide_resolving(&snap, &job).await?;
        Ok(Self::answered(out, job.at.start))
    }

    /// Decides one wire request from local data only (replica and attribute
    /// cache), never waiting on the network: an attribute the PIP cache does
    /// not hold counts as missing.
    pub fn decide_pb(
        &self,
        req: &pb::DecisionRequest,
    ) -> Result<pb::Decision, Vec<authz_proto::ConversionError>> {
        let snap = self.inner.replica.load();
        let job = self.prepare(&snap, req, At::now())?;
        match self.decide_with(
            &snap,
            &job,
            Pass::FetchFailed("not in the PDP's PIP cache (local-only decision)"),
            &TokenGrant::default(),
        ) {
            Outcome::Done(d) => Ok(Self::answered(d, job.at.start)),
            Outcome::Fetch(_) => Err(vec![]),
        }
    }

    /// Converts and checks a wire request once for every pass of its
    /// decision. A CREATE that does not say its target's type gets it from
    /// the replica: an `acod` `ty` is compared with the type of the targeted
    /// (parent) resource (TS-0003 7.1.5 res_resourceType).
    fn prepare<'r>(
        &self,
        snap: &Snapshot,
        req: &'r pb::DecisionRequest,
        at: At,
    ) -> Result<Job<'r>, Vec<authz_proto::ConversionError>> {
        let mut conv = decision_request_from_pb(req, at.now)?;
        // A target in any ID form of the hosting CSE (TS-0001 7.2: `x`,
        // `/cse/x`, `//sp/cse/x`) names the resource the replica holds
        // under its CSE-relative ID; a forwarded request names it
        // SP-relative. One of another CSE is no resource of this one.
        let hosting = conv.hosting.as_ref().unwrap_or(&self.inner.hosting);
        // The originator is judged, cached and sent to the PIP in absolute
        // form, which must be a valid ID too.
        if let Err(e) = hosting.check_absolute_length(&conv.request.originator) {
            return Err(vec![authz_proto::ConversionError {
                field: "originator".to_owned(),
                message: e.to_string(),
            }]);
        }
        // The CSEBase by its CSE-ID (`/cse`, `//sp/cse`) is held under its
        // resource ID, the CSE-ID without `/`, as the PEP names it.
        if let Some(held) = hosting.held_resource_id(&conv.request.target)
            && held != conv.request.target
        {
            conv.request.target = held.to_owned();
        }
        // A resource's type never changes (TS-0001 9.6.1.3): a
        // `target_type` other than the one the replica holds is a wrong
        // claim, which an `acod` `ty` must not be compared with (7.1.5).
        // Looked up only when the request says a type or a CREATE needs
        // one: most decisions need neither.
        let is_create = conv.request.operation == authz_core::request::Operation::Create;
        if conv.request.target_type.is_some() || is_create {
            let known_type = snap
                .resource_type(&conv.request.target)
                .filter(|&ty| ty != 0);
            match (conv.request.target_type, known_type) {
                (Some(claimed), Some(ty)) if claimed != ty => {
                    return Err(vec![authz_proto::ConversionError {
                        field: "target_type".to_owned(),
                        message: format!(
                            "the target {} is of resource type {ty}, not {claimed}",
                            conv.request.target
                        ),
                    }]);
                }
                (None, known) => conv.request.target_type = known,
                _ => {}
            }
        }
        // An acpi change of a target the replica knows has none (an ACP, a
        // contentInstance): as invalid as one whose `target_type` says so
        // (TS-0001 9.6.1.3.2; spec notes §2.3). A type never changes
        // (TS-0001 9.6.1.3), so the replica's is not stale.
        if conv.request.updates_acpi
            && let Err(e @ ResolveError::NoAcpi { .. }) =
                acpi_change_policies(&snap.view(at.now), &conv.request.target)
        {
            return Err(vec![authz_proto::ConversionError {
                field: "updates_acpi".to_owned(),
                message: e.to_string(),
            }]);
        }
        Ok(Job {
            req,
            conv,
            at,
            caller_deadline: None,
        })
    }

    /// The hosting CSE of a job: the request's, else the configured one.
    fn hosting<'a>(&'a self, job: &'a Job<'_>) -> &'a HostingContext {
        job.conv.hosting.as_ref().unwrap_or(&self.inner.hosting)
    }

    /// A decision with tokens and dynamic authorization (TS-0003 7.3): as
    /// far as it goes without waiting ([`Self::decide_now`]), then, when it
    /// has to wait on the network, the rest ([`Self::decide_waiting`]).
    ///
    /// What waits on the network ends in time for the caller to get the
    /// answer: a little before its deadline, a Deny saying what did not
    /// answer (Decision 10), instead of an answer it no longer waits for.
    async fn decide_resolving(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
    ) -> Result<pb::Decision, Vec<authz_proto::ConversionError>> {
        let wait = match self.decide_now(snap, job) {
            Step::Decided(decision) => return Ok(decision),
            Step::Wait(wait) => wait,
        };
        let Some(deadline) = job.caller_deadline else {
            return self.decide_waiting(snap, job, wait).await;
        };
        let until = tokio::time::Instant::from_std(answer_by(deadline));
        match tokio::time::timeout_at(until, self.decide_waiting(snap, job, wait)).await {
            Ok(result) => result,
            Err(_) => Ok(self.caller_deadline_deny(snap, job)),
        }
    }

    /// The Deny of a stream's request that would wait on the network while
    /// [`STREAM_IN_FLIGHT`] others wait and [`STREAM_QUEUED`] more are
    /// queued: indeterminate (Decision 10), the stream and its connection
    /// go on.
    fn stream_full_deny(&self, snap: &Snapshot, job: &Job<'_>) -> pb::Decision {
        let summary = format!(
            "DENY (indeterminate): this DecideStream has {STREAM_IN_FLIGHT} requests waiting on \
             the PIP, a DAS or a token issuer and its queue is full ({STREAM_QUEUED} requests or \
             {} MiB); send fewer at once, or open another stream",
            STREAM_QUEUED_BYTES >> 20
        );
        let deny = self.unevaluated_deny(snap, job, AuthorizationStatus::ProcessingError, summary);
        self.with_token_request_info(snap, job, deny)
    }

    /// The Deny of a decision still waiting on the PIP, a DAS or a token
    /// issuer when the caller's deadline comes: indeterminate (Decision 10).
    fn caller_deadline_deny(&self, snap: &Snapshot, job: &Job<'_>) -> pb::Decision {
        let summary = "DENY (indeterminate): the PIP, a DAS or a token issuer did not answer \
                       within the caller's deadline (grpc-timeout)";
        let deny = self.unevaluated_deny(
            snap,
            job,
            AuthorizationStatus::MissingAttribute,
            summary.into(),
        );
        self.with_token_request_info(snap, job, deny)
    }

    /// `deny` with Token Request Information when the request has the
    /// token request indicator (TS-0003 7.3.2.3 step 2: every Deny of such
    /// a request tells the originator where to get tokens; the DASes are
    /// known locally, so also when the decision could not finish).
    fn with_token_request_info(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
        mut deny: pb::Decision,
    ) -> pb::Decision {
        if job.req.token_request_indicator
            && let Some(dynamic) = &self.inner.dynamic
            && let Ok((dases, dreq)) = self.das_request_for(snap, job, dynamic)
        {
            deny.token_request_info =
                Self::token_request_info(dynamic, dases, &dreq, self.hosting(job));
        }
        deny
    }

    /// A Deny with `status` and `summary`, no rule evaluated (an
    /// explanation without rules).
    fn unevaluated_deny(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
        status: AuthorizationStatus,
        summary: String,
    ) -> pb::Decision {
        let decision = Decision {
            effect: Effect::Deny,
            status,
            permitted_by: None,
            missing: Vec::new(),
            explanation: Some(Explanation::default()),
        };
        let mut out = decision_to_pb(&decision);
        out.summary = summary;
        self.finish(out, snap, &job.conv.request_id)
    }

    /// The part of a decision that needs no network: the stored policies
    /// (with what an earlier Direct consultation gave the originator) over
    /// the cached attributes. Most decisions end here; the others say what
    /// they wait for.
    fn decide_now(&self, snap: &Snapshot, job: &Job<'_>) -> Step {
        if self.inner.replica.is_out_of_step() {
            // Decided by `finish` alone: no token is taken up, no DAS asked
            // about what the superseded replica holds.
            let decision = Decision {
                effect: Effect::Deny,
                status: AuthorizationStatus::ProcessingError,
                permitted_by: None,
                missing: Vec::new(),
                explanation: None,
            };
            let out = decision_to_pb(&decision);
            return Step::Decided(self.finish(out, snap, &job.conv.request_id));
        }
        let grant = match &self.inner.dynamic {
            None => TokenGrant::default(),
            // The request's tokens first (Token-IDs are fetched).
            Some(dynamic) if has_tokens(job.req) => {
                return Step::Wait(Wait::Tokens(dynamic.clone()));
            }
            // Tokens an earlier Direct consultation gave this originator.
            Some(dynamic) => dynamic.direct_grant(
                self.hosting(job),
                &job.req.originator,
                &job.conv.request.target,
                job.clock(),
            ),
        };
        self.decide_stored(snap, job, grant)
    }

    /// The rest of a decision [`Self::decide_now`] left waiting on the
    /// network: the request's tokens, attributes from the PIP, the DASes.
    async fn decide_waiting(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
        mut wait: Wait,
    ) -> Result<pb::Decision, Vec<authz_proto::ConversionError>> {
        loop {
            let step = match wait {
                Wait::Tokens(dynamic) => self.decide_tokens(snap, job, &dynamic).await?,
                Wait::Attributes { grant, fetch } => {
                    let decision = self.decide_fetched(snap, job, &grant, fetch).await?;
                    self.after_stored(job.req, decision, grant)
                }
                Wait::Das {
                    dynamic,
                    grant,
                    decision,
                } => {
                    return self
                        .consult_dases(snap, job, &dynamic, grant, *decision)
                        .await;
                }
            };
            match step {
                Step::Decided(decision) => return Ok(decision),
                Step::Wait(next) => wait = next,
            }
        }
    }

    /// The stored policies and `grant` decide over the cached attributes,
    /// then [`Self::after_stored`]; or the attributes to fetch first.
    fn decide_stored(&self, snap: &Snapshot, job: &Job<'_>, grant: TokenGrant) -> Step {
        match self.decide_with(snap, job, Pass::Cached, &grant) {
            Outcome::Done(decision) => self.after_stored(job.req, decision, grant),
            Outcome::Fetch(fetch) => Step::Wait(Wait::Attributes { grant, fetch }),
        }
    }

    /// What follows the stored policies' decision. At a PDP without tokens
    /// and dynamic authorization the decision stands; when it denies, tokens
    /// the request carries are an error (TS-0003 7.3.2.3 step 6.1.4,
    /// Decision 9: a Deny with the reason, 4103). With them, a Deny goes to
    /// the DASes (the stored policies decide first: TS-0001 10.2.3.1 order).
    fn after_stored(
        &self,
        req: &pb::DecisionRequest,
        mut decision: pb::Decision,
        grant: TokenGrant,
    ) -> Step {
        let denied = decision.decision == pb::AuthorizationDecision::Deny as i32
            && decision.status != pb::AuthorizationStatus::SyntaxError as i32;
        match &self.inner.dynamic {
            None => {
                if denied && has_tokens(req) {
                    decision.summary.push_str(NO_TOKEN_ISSUER);
                }
                Step::Decided(decision)
            }
            // What a DAS grants for the target (a `dai`, a token's `pv`) are
            // privileges, never selfPrivileges: an acpi change is not taken
            // to the DASes (TS-0001 9.6.1.3.2; Decision 7).
            Some(_) if denied && req.updates_acpi => {
                decision.summary.push_str(ACPI_CHANGE_NOT_CONSULTED);
                Step::Decided(with_assigned_token_ids(decision, &grant))
            }
            Some(dynamic) if denied => Step::Wait(Wait::Das {
                dynamic: dynamic.clone(),
                grant,
                decision: Box::new(decision),
            }),
            Some(_) => Step::Decided(with_assigned_token_ids(decision, &grant)),
        }
    }

    /// The request's tokens, Token-IDs and Local-Token-IDs resolved and
    /// verified (TS-0003 7.3.2.3), then the stored policies with what they
    /// grant.
    async fn decide_tokens(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
        dynamic: &Dynamic,
    ) -> Result<Step, Vec<authz_proto::ConversionError>> {
        let (req, now) = (job.req, job.clock());
        let hosting = self.hosting(job);
        let target = job.conv.request.target.as_str();
        let mut grant = match dynamic.resolve_tokens(req, hosting, target, now).await {
            Ok(grant) => grant,
            Err(TokenFailure::Malformed { field, message }) => {
                // The field with its index (`tokens[0]`), as the
                // conversion names it.
                return Err(vec![authz_proto::ConversionError { field, message }]);
            }
            Err(failure) => {
                // The stored policies decide first (TS-0001 10.2.3.1 order,
                // spec notes §2.3: Indirect Dynamic Authorization only for a
                // request they deny), as at a PDP without DASes: their
                // Permit stands; otherwise the tokens' failure is the answer
                // (7.3.2.3 step 6.1.4). Alone: tokens an earlier Direct
                // consultation left for the originator are dynamic
                // authorization too, and a rejected token is not excused by
                // what this PDP happens to hold.
                let decision = self
                    .decide_attributes(snap, job, &TokenGrant::default())
                    .await?;
                if decision.decision == pb::AuthorizationDecision::Permit as i32 {
                    return Ok(Step::Decided(decision));
                }
                // An originator whose token expired or cannot be found is
                // the one that needs new tokens: with the indicator, its
                // error names the DASes too (7.3.2.3 steps 1 and 2.3).
                let deny = Self::token_deny(decision, &failure);
                return Ok(Step::Decided(self.with_token_request_info(snap, job, deny)));
            }
        };
        // Tokens an earlier Direct consultation gave this originator.
        grant.extend(dynamic.direct_grant(hosting, &req.originator, target, now));
        Ok(self.decide_stored(snap, job, grant))
    }

    /// A request the stored policies and `grant` deny (`decision`): Direct
    /// Dynamic Authorization (TS-0003 7.3.2.2) with the target's DASes, and
    /// for a Deny that stays, Token Request Information (7.3.2.3 step 2).
    async fn consult_dases(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
        dynamic: &Dynamic,
        mut grant: TokenGrant,
        mut decision: pb::Decision,
    ) -> Result<pb::Decision, Vec<authz_proto::ConversionError>> {
        let req = job.req;
        let hosting = self.hosting(job);
        let (dases, dreq) = match self.das_request_for(snap, job, dynamic) {
            Ok(set_up) => set_up,
            Err(why) => {
                decision.summary.push_str(why);
                return Ok(with_assigned_token_ids(decision, &grant));
            }
        };
        // Direct (7.3.2.2): consult the target's DAS(es) and decide again.
        let mut reasons = Vec::new();
        // DASes that gave no usable answer (down, slow, refusing, or a
        // token that fails verification): the Deny is then indeterminate.
        let mut unanswered: Vec<(String, String)> = Vec::new();
        for endpoint in &dases {
            // Each DAS gets the Role-IDs its FQDN issues (7.3.2.2 step 2.2.1).
            let for_das = dynamic.das_request_for(endpoint, &dreq);
            match dynamic
                .consult(endpoint, for_das, hosting, job.clock())
                .await
            {
                Ok(c) if c.grant.acps.is_empty() && c.grant.roles.is_empty() => {
                    if c.ignored.is_empty() {
                        reasons.push(format!("DAS {endpoint} granted nothing"));
                    }
                    reasons.extend(c.ignored);
                }
                Ok(c) => {
                    reasons.extend(c.ignored);
                    grant.extend(c.grant);
                    decision = self.decide_attributes(snap, job, &grant).await?;
                    if decision.decision == pb::AuthorizationDecision::Permit as i32 {
                        break;
                    }
                }
                Err(reason) => {
                    unanswered.push((endpoint.clone(), reason.clone()));
                    reasons.push(reason);
                }
            }
        }
        if decision.decision == pb::AuthorizationDecision::Deny as i32 {
            if !unanswered.is_empty() {
                mark_indeterminate(&mut decision, &unanswered);
            }
            if !grant.inapplicable.is_empty() {
                decision.summary.push_str("; ");
                decision.summary.push_str(&grant.inapplicable.join("; "));
            }
            if !reasons.is_empty() {
                decision.summary.push_str("; dynamic authorization: ");
                decision.summary.push_str(&reasons.join("; "));
            }
            // Indirect (7.3.2.3 step 2): tell the originator where to get tokens.
            if req.token_request_indicator {
                decision.token_request_info =
                    Self::token_request_info(dynamic, dases, &dreq, hosting);
            }
        }
        Ok(with_assigned_token_ids(decision, &grant))
    }

    /// What Dynamic Authorization asks DASes about a request (TS-0003
    /// 7.3.2.2 steps 2.1-2.2): the DASes of the target's DACs (or the
    /// default DAS) and those the applicable Role-IDs identify, and the DAS
    /// request; or, for a request no DAS is asked about, what the summary
    /// adds to say why.
    fn das_request_for(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
        dynamic: &Dynamic,
    ) -> Result<(Vec<String>, pb::DasRequest), &'static str> {
        let (req, conv, now) = (job.req, &job.conv, job.clock());
        // Existence (4004) comes before authorization (spec notes §2.3): a
        // target the replica holds neither as a resource nor as an ACP is
        // not taken to a DAS, so that nothing is granted, and no dynamic ACP
        // stored, for a resource that does not exist (and would apply to
        // whatever is registered under its ID later; the PRP deletes the
        // grants of a resource or ACP with it). With the applicable ACPs
        // named in the request, the resource is the CSE's own affair.
        let view = snap.view(now);
        let target = conv.request.target.as_str();
        if conv.acp_ids.is_empty() && view.resource(target).is_none() && !view.is_acp(target) {
            return Err("");
        }
        // A request on an ACP is authorized by its selfPrivileges alone
        // (TS-0003 7.1.1); what a DAS grants is privileges (a `dai`, a
        // token's `pv`), so it is not asked, as for an acpi change.
        if view.is_acp(target) {
            return Err(ACP_TARGET_NOT_CONSULTED);
        }
        let hosting = self.hosting(job);
        let Some((mut dases, lifetime)) = dynamic.dases_for(snap, &conv.request.target, now) else {
            return Err(DAC_DISABLED);
        };
        let originator = hosting
            .canonicalize(&conv.request.originator)
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| conv.request.originator.clone());
        let rfa = self.role_ids_from_acps(snap, conv, hosting, &originator, now);
        // 7.3.2.2 step 2.2: the DASes the Role-IDs identify (2.2.1) join
        // those of the target's DACs, or the default DAS (2.2.2).
        for endpoint in dynamic.dases_for_roles(&rfa) {
            if !dases.contains(&endpoint) {
                dases.push(endpoint);
            }
        }
        let dreq = Dynamic::das_request(
            req,
            &conv.request.target,
            snap,
            &originator,
            now,
            rfa,
            lifetime,
        );
        // `trt` is mandatory (TS-0003 table 7.3.2.2-1): a target the
        // replica does not hold (explicit `acp_ids`), of a request that
        // gives no `target_type`, cannot be described to a DAS.
        if dreq.targeted_resource_type.is_none() {
            return Err(TARGET_TYPE_UNKNOWN);
        }
        Ok((dases, dreq))
    }

    /// Token Request Information for a Deny of a request with the token
    /// request indicator (TS-0003 7.3.2.3 step 2.3): the DASes to get
    /// tokens from (all configured ones when the request names none), with
    /// the DAS request.
    fn token_request_info(
        dynamic: &Dynamic,
        dases: Vec<String>,
        dreq: &pb::DasRequest,
        hosting: &HostingContext,
    ) -> Option<pb::TokenRequestInfo> {
        let endpoints = if dases.is_empty() {
            dynamic.endpoints()
        } else {
            dases
        };
        (!endpoints.is_empty()).then(|| dynamic.token_request_info(&endpoints, dreq, hosting))
    }

    /// TS-0003 7.3.2.2 step 2.2.1: the Role-IDs of applicable rules whose
    /// operations and contexts match (`rfa`). `originator`: the request's,
    /// in absolute form (it keys the PIP cache).
    fn role_ids_from_acps(
        &self,
        snap: &Snapshot,
        conv: &ConvertedRequest,
        hosting: &HostingContext,
        originator: &str,
        now: chrono::DateTime<Utc>,
    ) -> Vec<String> {
        let Ok(Applicables { acps, .. }) = self.applicable_set(snap, conv, now) else {
            return Vec::new();
        };
        let applicable: SmallVec<[Applicable<'_>; 4]> = acps
            .iter()
            .map(|(acp, kind)| Applicable { acp, kind: *kind })
            .collect();
        match &self.inner.pip {
            Some(cache) => {
                let view = cache.view(originator, None, now);
                role_ids_for_consultation(&conv.request, hosting, &applicable, &view)
            }
            None => role_ids_for_consultation(
                &conv.request,
                hosting,
                &applicable,
                &*self.inner.attributes,
            ),
        }
    }

    /// The Deny of a request whose tokens cannot be used (7.3.2.3 step
    /// 6.1.4; Decision 9: the reason maps to 4103), made from `stored`, the
    /// stored policies' Deny of it: their status, missing attributes and
    /// explanation stand (one indeterminate without the tokens is still
    /// indeterminate, Decision 10; rules were evaluated), and tokens that
    /// could not be retrieved or verified are missing attributes too. The
    /// summary leads with the tokens' failure.
    fn token_deny(stored: pb::Decision, failure: &TokenFailure) -> pb::Decision {
        let mut out = stored;
        let missing = match failure {
            TokenFailure::Unavailable { what, id, reason } => Some(MissingAttribute::Token {
                id: id.clone(),
                reason: format!("{what} cannot be retrieved: {reason}"),
            }),
            TokenFailure::Unverifiable { id, reason, .. } => Some(MissingAttribute::Token {
                id: id.clone(),
                reason: format!("cannot be verified: {reason}"),
            }),
            _ => None,
        };
        if let Some(missing) = missing {
            out.status = pb::AuthorizationStatus::MissingAttribute as i32;
            out.missing
                .push(authz_proto::convert::missing_to_pb(&missing));
        }
        let stored_summary = out.summary.split_once(": ").map_or("", |(_, d)| d);
        out.summary = format!("DENY (token): {failure}; without the tokens: {stored_summary}");
        out
    }

    /// A decision with PIP attributes: from the cache, then, when a Deny may
    /// turn on an attribute the cache lacks, after one fetch.
    async fn decide_attributes(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
        grant: &TokenGrant,
    ) -> Result<pb::Decision, Vec<authz_proto::ConversionError>> {
        match self.decide_with(snap, job, Pass::Cached, grant) {
            Outcome::Done(d) => Ok(d),
            Outcome::Fetch(fetch) => self.decide_fetched(snap, job, grant, fetch).await,
        }
    }

    /// The decision pass after fetching what a pass from the cache lacked
    /// (`fetch`), or after the fetch failed.
    async fn decide_fetched(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
        grant: &TokenGrant,
        fetch: OwnedFetch,
    ) -> Result<pb::Decision, Vec<authz_proto::ConversionError>> {
        let Some(cache) = &self.inner.pip else {
            // Only a PIP-backed pass asks for a fetch.
            return Err(vec![]);
        };
        use std::sync::atomic::Ordering::Relaxed;
        let failing = &self.inner.pip_failing;
        let outcome = match cache.fetch(fetch.as_request()).await {
            Ok(fetched) => {
                // Read first: every fetch of every core would otherwise
                // write the flag's cache line.
                if failing.load(Relaxed) && failing.swap(false, Relaxed) {
                    tracing::info!("PIP attributes available again");
                }
                self.decide_with(snap, job, Pass::Fetched(&fetched), grant)
            }
            Err(reason) => {
                if failing.swap(true, Relaxed) {
                    tracing::debug!(error = %reason, "PIP attributes unavailable");
                } else {
                    tracing::warn!(
                        error = %reason,
                        "PIP attributes unavailable; the decisions that need them deny \
                         with MISSING_ATTRIBUTE (authz_pip_fetches_total counts each failure; \
                         logged again when a fetch succeeds)"
                    );
                }
                self.decide_with(snap, job, Pass::FetchFailed(&reason), grant)
            }
        };
        match outcome {
            Outcome::Done(d) => Ok(d),
            // A pass after a fetch always completes; be safe anyway.
            Outcome::Fetch(_) => Err(vec![]),
        }
    }

    /// Decides one wire request; a request that does not convert becomes a
    /// Deny with status SYNTAX_ERROR and the errors in `summary` (the batch
    /// and stream form).
    pub async fn decide_or_syntax_error(&self, req: &pb::DecisionRequest) -> pb::Decision {
        let snap = self.inner.replica.load();
        let at = At::now();
        let result = match self.prepare(&snap, req, at) {
            Ok(job) => self.decide_resolving(&snap, &job).await,
            Err(errors) => Err(errors),
        };
        self.or_syntax_error(&snap, req, result, at.start)
    }

    fn or_syntax_error(
        &self,
        snap: &Snapshot,
        req: &pb::DecisionRequest,
        result: Result<pb::Decision, Vec<authz_proto::ConversionError>>,
        start: Instant,
    ) -> pb::Decision {
        match result {
            Ok(d) => Self::answered(d, start),
            Err(errors) => {
                let text = authz_proto::convert::join_errors(&errors);
                telemetry::record_decision(
                    Effect::Deny,
                    AuthorizationStatus::SyntaxError,
                    start.elapsed(),
                );
                let out = pb::Decision {
                    decision: pb::AuthorizationDecision::Deny as i32,
                    status: pb::AuthorizationStatus::SyntaxError as i32,
                    decision_id: self.inner.ids.next(),
                    summary: format!("DENY (syntax error): {text}"),
                    policy_revision: snap.revision,
                    policy_store: snap.store_id.as_deref().unwrap_or_default().to_owned(),
                    request_id: req.request_id.clone(),
                    // Every decision carries one; no rule was evaluated.
                    explanation: Some(pb::Explanation::default()),
                    ..pb::Decision::default()
                };
                log_decision(&out);
                out
            }
        }
    }

    /// The applicable set of a converted request (TS-0001 10.2.3.1, or the
    /// explicit `acp_ids`), with the IDs not in the replica; or the status and
    /// reason of a Deny when the target cannot be resolved.
    fn applicable_set<'s>(
        &self,
        snap: &'s Snapshot,
        conv: &ConvertedRequest,
        now: chrono::DateTime<Utc>,
    ) -> Result<Applicables<'s>, (AuthorizationStatus, String)> {
        // A dynamic ACP counts until its lifetime ends (Decision 7), both
        // at the PDP's clock (the PRP removes it then) and at the request's
        // time (7.1.2 rq_time), so that a Permit never outlasts its own
        // `reusable_until`.
        let now = now.max(conv.request.time);
        let target = conv.request.target.as_str();
        // Explicit ACP IDs in any form (TS-0001 7.2) name the hosting CSE's
        // ACPs, held under their CSE-relative IDs.
        let hosting = conv.hosting.as_ref().unwrap_or(&self.inner.hosting);
        // Each once, in whatever forms it is named: evaluating one twice
        // changes nothing but the cost, which a caller repeating an
        // expensive ACP would otherwise multiply at will.
        let mut named = std::collections::HashSet::new();
        let acp_ids = conv
            .acp_ids
            .iter()
            .map(|id| hosting.cse_relative(id).unwrap_or(id))
            .filter(move |id| named.insert(*id));
        let mut acps: SmallVec<[(AcpRef<'s>, PrivilegeKind); 4]> = SmallVec::new();
        let mut unknown: Vec<String> = Vec::new();
        let mut unbound: Vec<String> = Vec::new();
        let mut rejected: Vec<(String, String)> = Vec::new();
        let mut ends: Vec<(&'s str, chrono::DateTime<chrono::Utc>)> = Vec::new();
        // `bound`: when the caller named the ACPs, the resources a dynamic
        // ACP must be bound to (resolution lists only those bound to them).
        let mut lookup = |acps: &mut SmallVec<[_; 4]>,
                          id: &str,
                          kind: PrivilegeKind,
                          bound: Option<&[&str]>| match snap.acp(id) {
            Some(acp) => acps.push((AcpRef::Borrowed(acp), kind)),
            None => match snap.live_dynamic(id, now) {
                Some(d)
                    if kind == PrivilegeKind::Privileges
                        && bound.is_none_or(|holders| {
                            snap.dynamic_target(id)
                                .is_some_and(|b| holders.contains(&b))
                        }) =>
                {
                    ends.push((&*d.id, d.expires_at));
                    acps.push((AcpRef::Borrowed(&d.acp), kind))
                }
                // A dynamic ACP holds privileges for its target, no
                // selfPrivileges: nothing for an acpi change (Decision 7).
                Some(_) if kind == PrivilegeKind::SelfPrivileges => {}
                // Named, live, but another resource's.
                Some(_) => unbound.push(id.to_owned()),
                _ => match snap.rejected.get(id) {
                    Some(why) => rejected.push((id.to_owned(), why.clone())),
                    None => unknown.push(id.to_owned()),
                },
            },
        };
        // An acpi change is judged by the pvs of the target's ACPs (TS-0001
        // 9.6.1.3.2), any other request by their pv.
        let updates_acpi = conv.request.updates_acpi;
        if conv.acp_ids.is_empty() {
            match applicable_policies_for(&snap.view(now), target, updates_acpi) {
                Ok(ApplicableSet::Policies(list)) => {
                    for (id, kind) in &list {
                        lookup(&mut acps, id, *kind, None);
                    }
                }
                Ok(ApplicableSet::Default { rules, dynamic }) => {
                    match CompiledAcp::default_policy(target, &rules) {
                        Ok(acp) => {
                            acps.push((AcpRef::Owned(Box::new(acp)), PrivilegeKind::Privileges))
                        }
                        Err(e) => {
                            // A creator or custodian that is not a valid acor
                            // entry; the default policy then grants nothing.
                            tracing::warn!(%target, error = %e, "default policy does not compile");
                        }
                    }
                    for id in &dynamic {
                        lookup(&mut acps, id, PrivilegeKind::Privileges, None);
                    }
                }
                Err(e) => {
                    let status = match e {
                        ResolveError::UnknownResource(_) => AuthorizationStatus::NotApplicable,
                        ResolveError::ParentLoop(_) => AuthorizationStatus::ProcessingError,
                        // Refused before (`prepare`); a syntax error all the same.
                        ResolveError::NoAcpi { .. } => AuthorizationStatus::SyntaxError,
                    };
                    return Err((status, e.to_string()));
                }
            }
        } else if snap.view(now).is_acp(target) {
            // A request on an ACP is judged by its own pvs, whatever acpi
            // the caller names (TS-0003 7.1.1; an ACP has no acpi).
            lookup(&mut acps, target, PrivilegeKind::SelfPrivileges, None);
        } else if conv.request.target_type == Some(authz_core::resources::TY_ACP)
            && !snap.resources.contains_key(target)
        {
            // The caller says the target is an ACP, which the replica does
            // not hold: only its own pvs could decide (TS-0001 10.2.3.1),
            // never the pv of the ACPs named (an ACP has no acpi).
            return Err((
                AuthorizationStatus::NotApplicable,
                format!(
                    "{target} is an ACP (target_type 1) the replica does not hold: a request on \
                     an ACP is judged by its own pvs, not by the acp_ids given"
                ),
            ));
        } else if updates_acpi {
            // Explicit acpi, changed: the pvs of each ACP named (TS-0001
            // 9.6.1.3.2); a dynamic ACP among them has none.
            for id in acp_ids {
                lookup(&mut acps, id, PrivilegeKind::SelfPrivileges, None);
            }
        } else {
            // Explicit acpi: a dynamic ACP counts only for the resource it
            // is bound to, and those that take their policies from it (a
            // contentInstance of it; Decision 7), as in resolution. A target
            // not in the replica counts only those bound to itself.
            let view = snap.view(now);
            let holders = dynamic_acp_holders(&view, target).unwrap_or_else(|_| smallvec![target]);
            for id in acp_ids {
                lookup(&mut acps, id, PrivilegeKind::Privileges, Some(&holders));
            }
        }
        Ok(Applicables {
            acps,
            unknown,
            unbound,
            rejected,
            ends,
        })
    }

    /// One pass of the stored policies (and `grant`) over the attributes of
    /// `pass`.
    fn decide_with(
        &self,
        snap: &Snapshot,
        job: &Job<'_>,
        pass: Pass<'_>,
        grant: &TokenGrant,
    ) -> Outcome {
        let (now, conv) = (job.clock(), &job.conv);
        let hosting = self.hosting(job);

        let Applicables {
            mut acps,
            unknown,
            unbound,
            rejected,
            ends,
        } = match self.applicable_set(snap, conv, now) {
            Ok(a) => a,
            Err((status, reason)) => {
                let decision = Decision {
                    effect: Effect::Deny,
                    status,
                    permitted_by: None,
                    missing: Vec::new(),
                    // No rule was evaluated: an explanation without rules.
                    explanation: Some(Explanation::default()),
                };
                let mut out = decision_to_pb(&decision);
                let label = match status {
                    AuthorizationStatus::NotApplicable => "not applicable",
                    _ => "processing error",
                };
                out.summary = format!("DENY ({label}): {reason}");
                return Outcome::Done(self.finish(out, snap, &conv.request_id));
            }
        };
        // Token permissions join the applicable policies (TS-0003 7.3.2.5),
        // as privileges (`pv`) of the target: never for an acpi change,
        // which needs selfPrivileges (TS-0001 9.6.1.3.2), nor for a request
        // on an ACP, which only its selfPrivileges authorize (TS-0003
        // 7.1.1). Roles the tokens give still count there (`granted_roles`).
        let needs_pvs = conv.request.updates_acpi || snap.view(now).is_acp(&conv.request.target);
        // What the tokens grant counts only while valid at this pass's
        // clock: a token verified before a network wait may have expired
        // during it (TS-0003 7.3.2.2 step 4.1.1.2.4).
        if !needs_pvs {
            acps.extend(
                grant
                    .live_acps(now)
                    .map(|a| (AcpRef::Borrowed(a), PrivilegeKind::Privileges)),
            );
        }
        let granted_roles = grant.live_roles(now);
        let applicable: SmallVec<[Applicable<'_>; 4]> = acps
            .iter()
            .map(|(acp, kind)| Applicable { acp, kind: *kind })
            .collect();
        let options = DecideOptions {
            explain: true,
            granted_roles: &granted_roles,
        };
        // With a PIP cache, the engine asks about the originator in absolute
        // form, which also keys the cache (built without an allocation).
        // Without one, or for an originator that is not an ID (a
        // SyntaxError Deny), `decide` does it all.
        // `<group>` members given as resource IDs (TS-0001 9.6.2.1) stand
        // for the originator named by their `aei`/`csi`.
        let decide_alone = || {
            decide(
                &conv.request,
                hosting,
                &applicable,
                &WithMemberResources::new(&*self.inner.attributes, snap, hosting, None),
                &options,
            )
        };
        let (decision, attributes_change) = match &self.inner.pip {
            None => (decide_alone(), None),
            Some(cache) => {
                let judged = with_canonical_originator(hosting, &conv.request.originator, |o| {
                    let Ok(originator) = o else {
                        return Ok((decide_alone(), None));
                    };
                    let view = match pass {
                        Pass::Cached => cache.view(originator.as_str(), None, now),
                        Pass::Fetched(f) => cache.view_fetched(f, now),
                        Pass::FetchFailed(reason) => {
                            cache.view(originator.as_str(), Some(reason.to_owned()), now)
                        }
                    };
                    let source =
                        WithMemberResources::new(&view, snap, hosting, Some(originator.as_str()));
                    let decision = decide_canonical(
                        &conv.request,
                        originator,
                        hosting,
                        &applicable,
                        &source,
                        &options,
                    );
                    let changes = view.changes_after(conv.request.time);
                    if matches!(pass, Pass::Cached)
                        && decision.effect == Effect::Deny
                        && view.missed()
                    {
                        return Err(Box::new(OwnedFetch {
                            originator: originator.as_str().to_owned(),
                            role_ids: conv.request.role_ids.clone(),
                            at: conv.request.time,
                            // The engine asks for the country of a mapped
                            // address's IPv4 peer (Annex F.2.2): fetch that.
                            ip: conv.request.ip.map(|ip| ip.to_canonical()),
                            position: conv.request.position,
                            member_resources: source
                                .member_resources()
                                .map(<[String]>::to_vec)
                                .unwrap_or_default(),
                        }));
                    }
                    Ok((decision, changes))
                });
                match judged {
                    Ok(judged) => judged,
                    // Boxed out of the closure: it is rare and large.
                    Err(fetch) => return Outcome::Fetch(*fetch),
                }
            }
        };
        let mut decision = decision;
        if let Some(explanation) = decision.explanation.as_mut() {
            let grant_ends = grant.ends.iter().map(|(acp, until)| (acp.as_str(), *until));
            for (acp, until) in ends.iter().copied().chain(grant_ends) {
                explanation.end_openings(acp, until);
            }
        }
        // A Deny where an ACP that could not be compiled applies is no final
        // result: its rules might have permitted (indeterminate, 7.1.4;
        // Decision 10).
        let indeterminate = decision.effect == Effect::Deny
            && !rejected.is_empty()
            && decision.status != AuthorizationStatus::SyntaxError;
        if indeterminate {
            decision.status = AuthorizationStatus::ProcessingError;
        }
        let mut out = decision_to_pb(&decision);
        if indeterminate {
            let listed: Vec<String> = rejected
                .iter()
                .map(|(id, why)| format!("{id} ({why})"))
                .collect();
            let head = "DENY (processing error): ";
            let rest = out.summary.strip_prefix(head).unwrap_or(&out.summary);
            out.summary = format!(
                "{head}applicable ACPs this PDP could not compile: {}; {rest}",
                listed.join(", ")
            );
        }
        out.judged_acpi_change = conv.request.updates_acpi;
        let permit_ends = (decision.effect == Effect::Permit)
            .then(|| reusable_until(snap, &decision, grant, now))
            .flatten();
        // Permit or Deny, a decision that may turn when a role's validity
        // or a position's freshness does is not reused past that.
        out.reusable_until = [permit_ends, attributes_change]
            .into_iter()
            .flatten()
            .min()
            .map(|t| authz_proto::convert::timestamp_to_pb(&t));
        if decision.effect == Effect::Deny && !unknown.is_empty() {
            out.summary.push_str(&format!(
                "; ACPs not in the replica: {}",
                unknown.join(", ")
            ));
        }
        if decision.effect == Effect::Deny && !unbound.is_empty() {
            out.summary.push_str(&format!(
                "; dynamic ACPs bound to another resource: {}",
                unbound.join(", ")
            ));
        }
        if decision.effect == Effect::Deny && needs_pvs && !grant.acps.is_empty() {
            out.summary.push_str(if conv.request.updates_acpi {
                TOKEN_PV_NOT_PVS
            } else {
                TOKEN_PV_NOT_ACP
            });
        }
        Outcome::Done(self.finish(out, snap, &conv.request_id))
    }

    fn finish(&self, mut out: pb::Decision, snap: &Snapshot, request_id: &str) -> pb::Decision {
        if self.inner.replica.is_out_of_step() {
            // Known superseded data (Decision 10: expired data is
            // indeterminate): not even a Permit stands until the snapshot.
            out.decision = pb::AuthorizationDecision::Deny as i32;
            out.status = pb::AuthorizationStatus::ProcessingError as i32;
            out.permitted_by = None;
            out.reusable_until = None;
            // What the superseded replica made of it is no account of this.
            out.explanation = out.explanation.map(|_| pb::Explanation::default());
            out.summary = format!("DENY (processing error): {REPLICA_OUT_OF_STEP}");
        } else if out.decision != pb::AuthorizationDecision::Permit as i32
            && !self.inner.replica.is_ready()
        {
            // Without a first snapshot the replica is empty, so "not
            // registered" or "no rule" would be false: the decision is
            // indeterminate (Decision 10).
            out.status = pb::AuthorizationStatus::ProcessingError as i32;
            // The label of what the empty replica made of it would
            // contradict the status: the reason leads, then that.
            let detail = out.summary.split_once(": ").map_or("", |(_, d)| d);
            out.summary = format!("DENY (processing error): {REPLICA_NOT_LOADED}; {detail}");
        }
        out.decision_id = self.inner.ids.next();
        out.policy_revision = snap.revision;
        out.policy_store = snap.store_id.as_deref().unwrap_or_default().to_owned();
        out.request_id = request_id.to_owned();
        out
    }

    /// Counts and logs `out`, the answer to one request, once: where it
    /// leaves the PDP, not where a pass of it ends (a request decided again
    /// after a DAS or with its tokens' failure would count twice). A PDP
    /// that started without its PRP counts its processing errors, so that
    /// an alert on them sees it.
    fn answered(out: pb::Decision, start: Instant) -> pb::Decision {
        let effect = if out.decision == pb::AuthorizationDecision::Permit as i32 {
            Effect::Permit
        } else {
            Effect::Deny
        };
        let status = match pb::AuthorizationStatus::try_from(out.status) {
            Ok(pb::AuthorizationStatus::Ok) => AuthorizationStatus::Ok,
            Ok(pb::AuthorizationStatus::NotApplicable) => AuthorizationStatus::NotApplicable,
            Ok(pb::AuthorizationStatus::MissingAttribute) => AuthorizationStatus::MissingAttribute,
            Ok(pb::AuthorizationStatus::SyntaxError) => AuthorizationStatus::SyntaxError,
            _ => AuthorizationStatus::ProcessingError,
        };
        telemetry::record_decision(effect, status, start.elapsed());
        log_decision(&out);
        out
    }

    /// The `Status` answer.
    pub fn status_pb(&self) -> pb::StatusResponse {
        let s = self.inner.replica.status();
        telemetry::record_staleness(s.staleness);
        pb::StatusResponse {
            replica_revision: s.revision,
            prp_connected: s.connected,
            staleness_ms: u64::try_from(s.staleness.as_millis()).unwrap_or(u64::MAX),
            acps: s.acps as u64,
            resources: s.resources as u64,
            prp_endpoint: s.prp_endpoint.unwrap_or_default(),
            policy_store: s.store_id.as_deref().unwrap_or_default().to_owned(),
            replica_tag: s.tag,
        }
    }
}

/// Logs a decision at debug level under the target `authz_pdp::decision`
/// (`RUST_LOG=authz_pdp::decision=debug`): a PEP that keeps the reasons
/// from the originator shows only the decision ID, and this is where an
/// operator finds them. Formatted only when enabled.
fn log_decision(out: &pb::Decision) {
    let permit = out.decision == pb::AuthorizationDecision::Permit as i32;
    tracing::debug!(
        target: "authz_pdp::decision",
        decision_id = %out.decision_id,
        request_id = %out.request_id,
        decision = if permit { "PERMIT" } else { "DENY" },
        status = ?pb::AuthorizationStatus::try_from(out.status).unwrap_or_default(),
        summary = %out.summary,
        explanation = ?out.explanation,
        "decided"
    );
}

/// Appended to the summary of a Deny of a request with tokens at a PDP
/// without tokens and dynamic authorization.
const NO_TOKEN_ISSUER: &str =
    "; the request's tokens cannot be verified: no token issuer (DAS) is configured at this PDP";

/// Appended to the summary of a Deny of an acpi change at a PDP with
/// dynamic authorization: the DASes were not asked.
const ACPI_CHANGE_NOT_CONSULTED: &str = "; an acpi change needs selfPrivileges (pvs) of the \
     target's ACPs (TS-0001 9.6.1.3.2), which dynamic authorization does not grant: no DAS \
     was consulted";

/// Appended to the summary of a Deny that no DAS could be asked about for
/// want of the target's type.
const TARGET_TYPE_UNKNOWN: &str = "; no DAS was consulted: the target's type (trt, mandatory \
     in TS-0003 table 7.3.2.2-1) is unknown, as the replica does not hold the target; give \
     target_type";

/// Appended to the summary of a Deny of a request whose target (or, when
/// it links none, its parent) links only disabled DACs.
const DAC_DISABLED: &str = "; dynamic authorization is disabled for the target (its DACs have \
     dae false; TS-0001 9.6.40): no DAS was consulted";

/// Appended to the summary of a Deny of a request on an ACP at a PDP with
/// dynamic authorization: the DASes were not asked.
const ACP_TARGET_NOT_CONSULTED: &str = "; a request on an ACP needs its selfPrivileges (pvs; \
     TS-0003 7.1.1), which dynamic authorization does not grant: no DAS was consulted";

/// Appended to the summary of a Deny of a request on an ACP whose tokens
/// grant privileges: those are `pv`, not `pvs`.
const TOKEN_PV_NOT_ACP: &str = "; the tokens' privileges (pv) do not authorize a request on an \
     ACP, which needs its selfPrivileges (pvs; TS-0003 7.1.1)";

/// Appended to the summary of a Deny of an acpi change whose tokens grant
/// privileges: those are `pv`, not `pvs`.
const TOKEN_PV_NOT_PVS: &str = "; the tokens' privileges (pv) do not authorize an acpi change, \
     which needs selfPrivileges (pvs; TS-0001 9.6.1.3.2)";

/// Whether `req` carries tokens, Token-IDs or Local-Token-IDs.
/// When the caller stops waiting: its `grpc-timeout` header (gRPC over
/// HTTP/2: at most 8 digits and a unit, H M S m u n) from now.
fn caller_deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Instant> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Instant::now().checked_add(timeout)
}

fn has_tokens(req: &pb::DecisionRequest) -> bool {
    !(req.tokens.is_empty() && req.token_ids.is_empty() && req.local_token_ids.is_empty())
}

/// `decision` with the Local-Token-IDs `grant` assigned (TS-0003 7.3.2.3
/// step 7.1).
/// Until when a Permit may be reused (`reusable_until`): the end of the
/// dynamic ACP that permitted, and of anything tokens or a DAS granted for
/// the decision (its roles may be what matched); `None` for a Permit by
/// stored policies alone, which holds until the revision changes.
fn reusable_until(
    snap: &Snapshot,
    decision: &Decision,
    grant: &TokenGrant,
    now: chrono::DateTime<Utc>,
) -> Option<chrono::DateTime<Utc>> {
    let dynamic = decision
        .permitted_by
        .as_ref()
        .filter(|r| snap.acp(&r.acp).is_none())
        .and_then(|r| snap.live_dynamic(&r.acp, now))
        .map(|d| d.expires_at);
    [dynamic, grant.valid_until].into_iter().flatten().min()
}

fn with_assigned_token_ids(mut decision: pb::Decision, grant: &TokenGrant) -> pb::Decision {
    decision.assigned_token_ids = grant
        .assigned
        .iter()
        .map(|(lti, tkid)| pb::LocalTokenIdAssignment {
            local_token_id: lti.clone(),
            token_id: tkid.clone(),
        })
        .collect();
    decision
}

/// Marks a Deny that Direct Dynamic Authorization could not settle: a DAS
/// gave no usable answer, so the decision is indeterminate (TS-0003 7.1.4,
/// Decision 10). The status becomes MISSING_ATTRIBUTE, with a
/// `dynamic_authorization` entry naming each such DAS, so that a caller
/// (the PEP's cache among them) takes it as worth asking again.
/// When an answer due by the caller's `deadline` must be ready: a fifth of
/// the time left, at most 50 ms, before it, to encode and send the answer
/// before the caller gives up.
fn answer_by(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline - (left / 5).min(Duration::from_millis(50))
}

fn mark_indeterminate(decision: &mut pb::Decision, unanswered: &[(String, String)]) {
    if decision.status == pb::AuthorizationStatus::SyntaxError as i32 {
        return;
    }
    decision.status = pb::AuthorizationStatus::MissingAttribute as i32;
    decision
        .missing
        .extend(unanswered.iter().map(|(das, reason)| {
            missing_to_pb(&MissingAttribute::DynamicAuthorization {
                das: das.clone(),
                reason: reason.clone(),
            })
        }));
    // The summary's label names the status: `DENY (ok): …` → `DENY (missing attribute): …`.
    if let Some(rest) = decision.summary.strip_prefix("DENY (")
        && let Some(end) = rest.find(')')
    {
        decision.summary = format!("DENY (missing attribute){}", &rest[end + 1..]);
    }
}

fn decision_label(decision: i32) -> &'static str {
    match pb::AuthorizationDecision::try_from(decision) {
        Ok(pb::AuthorizationDecision::Permit) => "permit",
        _ => "deny",
    }
}

fn status_label(status: i32) -> &'static str {
    pb::AuthorizationStatus::try_from(status)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN")
}

/// How many requests of one `DecideStream` wait on the network (a PIP,
/// DAS or token issuer round trip) at once, which bounds the work one
/// stream can start; a PEP that needs more opens more streams. 64 keeps a
/// 2-core PDP busy (the load test's `--window`) while a few slow requests
/// leave room for the fast ones.
pub const STREAM_IN_FLIGHT: usize = 64;

/// How many more requests of one `DecideStream` that must wait may queue
/// behind [`STREAM_IN_FLIGHT`] (not started, so no network call), and how
/// many bytes they may hold. The stream is read on all the same, and the
/// requests that need no network are answered as they are read: a stream
/// that is not read lets its sender's small messages pile up in HTTP/2,
/// whose server ends the whole connection (GOAWAY `ENHANCE_YOUR_CALM`)
/// before flow control would hold the sender back. A request that would
/// wait beyond these bounds is answered at once with an indeterminate Deny
/// (PROCESSING_ERROR) saying so.
pub const STREAM_QUEUED: usize = 4096;
/// See [`STREAM_QUEUED`].
pub const STREAM_QUEUED_BYTES: usize = 16 << 20;

/// The response stream of `DecideStream`.
pub type DecisionStream = Pin<Box<dyn Stream<Item = Result<pb::Decision, Status>> + Send>>;

#[tonic::async_trait]
impl PolicyDecisionPoint for PdpService {
    async fn decide(
        &self,
        request: Request<pb::DecisionRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let deadline = caller_deadline(request.metadata());
        match self.decide_until(request.get_ref(), deadline).await {
            Ok(d) => {
                // The RPC's span (when traces are exported) carries the answer.
                let span = tracing::Span::current();
                span.record("authz.decision", decision_label(d.decision));
                span.record("authz.status", status_label(d.status));
                Ok(Response::new(d))
            }
            Err(errors) => {
                telemetry::record_rpc_error("Decide");
                Err(invalid_argument(&errors))
            }
        }
    }

    async fn decide_batch(
        &self,
        request: Request<pb::DecideBatchRequest>,
    ) -> Result<Response<pb::DecideBatchResponse>, Status> {
        // One snapshot for the whole batch: every answer has one revision.
        let snap = self.inner.replica.load();
        // In order, one at a time: a batch whose attributes are cached never
        // awaits anything.
        let requests = &request.get_ref().requests;
        // The time to send the answer is kept once for the whole batch:
        // each item keeping its own out of what the items before it left
        // would end the last ones too close to the caller's deadline.
        let deadline = caller_deadline(request.metadata()).map(answer_by);
        let mut decisions = Vec::with_capacity(requests.len());
        for r in requests {
            // Each request at its own time: one decided after others waited
            // on the network must not see a lifetime that ended meanwhile
            // as still running.
            let at = At::now();
            let result = match self.prepare(&snap, r, at) {
                Ok(mut job) => {
                    job.caller_deadline = deadline;
                    self.decide_resolving(&snap, &job).await
                }
                Err(errors) => Err(errors),
            };
            decisions.push(self.or_syntax_error(&snap, r, result, at.start));
        }
        // As an i64: OpenTelemetry's tracing layer writes a u64 as text.
        let count = i64::try_from(decisions.len()).unwrap_or(i64::MAX);
        tracing::Span::current().record("authz.decisions", count);
        Ok(Response::new(pb::DecideBatchResponse { decisions }))
    }

    type DecideStreamStream = DecisionStream;

    /// Answers each request of the stream as soon as it is decided, so the
    /// answers may come out of request order: the client matches them by
    /// `request_id`, which every decision echoes. A request that needs no
    /// network (the stored policies over cached attributes, most of them) is
    /// decided as it is read; one that waits (a PIP fetch, tokens, a DAS
    /// consultation) joins up to [`STREAM_IN_FLIGHT`] others that wait,
    /// while the requests behind it are read and answered. Deciding one at a
    /// time would hold every request behind a slow one until it is done,
    /// past the PEP's deadline. With that many waiting no further request is
    /// read, so HTTP/2 flow control holds the sender back.
    async fn decide_stream(
        &self,
        request: Request<Streaming<pb::DecisionRequest>>,
    ) -> Result<Response<Self::DecideStreamStream>, Status> {
        Ok(Response::new(Box::pin(StreamDecisions {
            // The RPC's span, held by the stream: it lasts as long as the
            // stream, and the stream's decisions are made inside it.
            span: tracing::Span::current(),
            service: self.clone(),
            requests: request.into_inner(),
            requests_ended: false,
            waiting: FuturesUnordered::new(),
            queued: std::collections::VecDeque::new(),
            queued_bytes: 0,
        })))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.status_pb()))
    }
}

/// The answers of one `DecideStream` (see `decide_stream`).
struct StreamDecisions {
    /// The `DecideStream` RPC's span (see `decide_stream`).
    span: tracing::Span,
    service: PdpService,
    requests: Streaming<pb::DecisionRequest>,
    requests_ended: bool,
    /// The decisions waiting on the network, at most [`STREAM_IN_FLIGHT`].
    /// Only these are boxed: a decision made as its request is read goes
    /// out without a future of its own.
    waiting: FuturesUnordered<BoxFuture<'static, pb::Decision>>,
    /// Decisions that must wait, not started yet (a future does nothing
    /// until polled), with their requests' sizes: at most
    /// [`STREAM_QUEUED`] and [`STREAM_QUEUED_BYTES`].
    queued: std::collections::VecDeque<(BoxFuture<'static, pb::Decision>, usize)>,
    queued_bytes: usize,
}

impl StreamDecisions {
    /// Decides `req` now when that needs no network; otherwise it joins
    /// `waiting`.
    fn take(&mut self, req: pb::DecisionRequest) -> Option<pb::Decision> {
        let service = &self.service;
        let snap = service.inner.replica.load();
        let at = At::now();
        let result = match service.prepare(&snap, &req, at) {
            Ok(job) => match service.decide_now(&snap, &job) {
                Step::Decided(decision) => Ok(decision),
                Step::Wait(_)
                    if self.waiting.len() >= STREAM_IN_FLIGHT && !self.may_queue(&req) =>
                {
                    let deny = service.stream_full_deny(&snap, &job);
                    return Some(PdpService::answered(deny, at.start));
                }
                Step::Wait(wait) => {
                    drop(snap);
                    let service = service.clone();
                    let conv = job.conv;
                    let size = prost::Message::encoded_len(&req);
                    let decision: BoxFuture<'static, pb::Decision> = Box::pin(async move {
                        // The replica as it is when the decision starts (a
                        // queued one may start long after it was read: an
                        // ACP changed meanwhile has changed for it), then
                        // the same snapshot for the rest: one revision per
                        // answer.
                        let snap = service.inner.replica.snapshot();
                        // A stream's grpc-timeout bounds the whole
                        // stream, not one answer.
                        let job = Job {
                            req: &req,
                            conv,
                            at,
                            caller_deadline: None,
                        };
                        let result = service.decide_waiting(&snap, &job, wait).await;
                        service.or_syntax_error(&snap, &req, result, at.start)
                    });
                    if self.waiting.len() < STREAM_IN_FLIGHT {
                        self.waiting.push(decision);
                    } else {
                        self.queued_bytes += size;
                        self.queued.push_back((decision, size));
                    }
                    return None;
                }
            },
            Err(errors) => Err(errors),
        };
        Some(service.or_syntax_error(&snap, &req, result, at.start))
    }

    /// Whether `req`, which must wait while [`STREAM_IN_FLIGHT`] others do,
    /// fits in the queue.
    fn may_queue(&self, req: &pb::DecisionRequest) -> bool {
        self.queued.len() < STREAM_QUEUED
            && self.queued_bytes + prost::Message::encoded_len(req) <= STREAM_QUEUED_BYTES
    }

    /// Starts queued decisions while fewer than [`STREAM_IN_FLIGHT`] wait.
    fn start_queued(&mut self) {
        while self.waiting.len() < STREAM_IN_FLIGHT {
            let Some((decision, size)) = self.queued.pop_front() else {
                break;
            };
            self.queued_bytes -= size;
            self.waiting.push(decision);
        }
    }
}

impl Stream for StreamDecisions {
    type Item = Result<pb::Decision, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let span = this.span.clone();
        let _in_rpc = span.enter();
        this.start_queued();
        if let Poll::Ready(Some(decision)) = this.waiting.poll_next_unpin(cx) {
            return Poll::Ready(Some(Ok(decision)));
        }
        // Read on whatever waits (see STREAM_QUEUED): the requests that need
        // no network are answered now, the others wait or queue.
        while !this.requests_ended {
            match Pin::new(&mut this.requests).poll_next(cx) {
                Poll::Ready(Some(Ok(req))) => {
                    if let Some(decision) = this.take(req) {
                        return Poll::Ready(Some(Ok(decision)));
                    }
                }
                Poll::Ready(Some(Err(status))) => {
                    telemetry::record_rpc_error("DecideStream");
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(None) => this.requests_ended = true,
                Poll::Pending => break,
            }
        }
        // Polls the decisions that just joined (and registers their wakers).
        match this.waiting.poll_next_unpin(cx) {
            Poll::Ready(Some(decision)) => Poll::Ready(Some(Ok(decision))),
            Poll::Ready(None) if this.requests_ended && this.queued.is_empty() => Poll::Ready(None),
            // Nothing waits but some are queued (not expected: they start
            // as soon as room is made): poll again to start them.
            Poll::Ready(None) if !this.queued.is_empty() => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            // Nothing waits and the requests are pending: their waker is set.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

/// The `Echo` service: answers PERMIT without evaluating anything, to
/// measure the cost of gRPC alone on the same server runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(
        &self,
        _request: Request<pb::DecisionRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        Ok(Response::new(pb::Decision {
            decision: pb::AuthorizationDecision::Permit as i32,
            ..pb::Decision::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::DecisionIds;
    use std::collections::HashSet;

    /// Decision IDs come from per-thread blocks of one counter: unique
    /// across threads, and across two PDPs that one thread serves in turn.
    #[test]
    fn decision_ids_are_unique_across_threads_and_instances() {
        let ids = std::sync::Arc::new(DecisionIds::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..1000).map(|_| ids.next()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for t in threads {
            for id in t.join().expect("thread") {
                assert!(seen.insert(id.clone()), "{id} twice");
            }
        }
        assert_eq!(seen.len(), 4000);

        // `a` takes a block; `b`, served next by the same thread, must not
        // hand out numbers of `a`'s block, which would repeat once `b`
        // takes blocks of its own counter.
        let (a, b) = (DecisionIds::new(), DecisionIds::new());
        let (mut of_a, mut of_b) = (HashSet::new(), HashSet::new());
        assert!(of_a.insert(a.next()));
        for _ in 0..300 {
            assert!(of_b.insert(b.next()));
        }
        for _ in 0..600 {
            assert!(of_a.insert(a.next()));
            assert!(of_b.insert(b.next()));
        }
    }
}
