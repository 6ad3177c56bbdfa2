//! The PDP's cache of PIP attributes (TS-0003 6.2.2 steps 006-007).
//!
//! The engine asks for attributes synchronously, through
//! [`AttributeSource`]; a [`CacheView`] answers from this cache and reports
//! what it does not hold as [`Lookup::Unavailable`], remembering the miss.
//! The service then fetches everything the request may need with one
//! `ResolveAttributes` call (short deadline), fills the cache and decides
//! again. A Permit by stored policies with cached (or no) attributes never
//! waits on the network.
//!
//! Freshness: a follower task keeps a `Watch` stream open and drops the
//! cached values of an originator the moment one of its roles, groups or
//! positions changes (everything on `reset`, and everything when the stream
//! ends or fails). The connection sends HTTP/2 keepalive pings (every 10 s,
//! 5 s to answer), so a PIP that stops answering without closing the
//! connection ends the stream too. Answers are cached only while that
//! stream is up, and never when they are older than a change already seen
//! for the same originator: the answer's revision is compared with the
//! originator's last change under the same map-entry lock that the watch
//! takes to record a change, so an answer fetched before a change can never
//! be stored after it. Role validity and position freshness are judged
//! locally against the request time, so an expired role, a stale position
//! or one measured after the request time does not match, without a round
//! trip.
//!
//! A `<group>` may list the originator by the resource ID of its `<AE>` or
//! `<remoteCSE>` resource (TS-0001 9.6.2.1); the groups of such an ID are
//! fetched with the originator's and cached under the ID like an
//! originator's ([`FetchRequest::member_resources`],
//! [`crate::members`]), so the watch drops them when a group listing the ID
//! changes.
//!
//! When the PIP cannot answer, the rules that need the attribute do not
//! match (TS-0003 7.1.4: indeterminate is Deny) and the decision's status is
//! `MISSING_ATTRIBUTE`, naming the attribute and the reason.
//!
//! Which IDs are `<group>`s (Decision 3: an `acor` entry the PIP knows as a
//! group is a group, not an originator ID) is asked on the path of a Permit,
//! so the cache keeps every group ID the PIP holds, without members: listed
//! (`ListGroups`, IDs only) each time the watch comes up, before its
//! `reset` is applied, and kept by the watch's group changes after the
//! listing's revision. While the watch is down the set stays as last known
//! (group IDs change rarely, and dropping them would turn every group entry
//! into an originator ID); the memberships themselves are not cached then.
//! Before the first listing, or from a PIP that has no `ListGroups`, no ID
//! is known as a group and every entry is also read as an originator ID.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use authz_core::attributes::{AttributeSource, Lookup};
use authz_core::request::Position;
use authz_proto::convert::{position_to_pb, timestamp_field, timestamp_to_pb};
use authz_proto::pb;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use rustc_hash::FxHashSet;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// Default deadline of a `ResolveAttributes` call on a cache miss.
pub const DEFAULT_FETCH_DEADLINE: Duration = Duration::from_millis(250);

/// Most IP addresses / positions whose countries are cached before the
/// cache of that kind is cleared (a bound on memory, not a policy).
const MAX_COUNTRY_ENTRIES: usize = 100_000;

/// Most originators whose attributes are cached before the whole cache is
/// cleared (as after a reset: a new epoch, so no fetch in flight can put a
/// stale answer back). Originator IDs come from requests, so without a
/// bound any caller could grow the PDP's memory at will.
pub const MAX_ORIGINATOR_ENTRIES: usize = 100_000;

/// The most claimed roles the cache keeps per originator: the latest
/// answer's, then older ones up to this. A caller claiming new Role-IDs
/// request after request would otherwise grow one entry without end.
pub const MAX_ROLES_PER_ORIGINATOR: usize = 256;

/// The most bytes of Role-IDs the cache holds in all (roughly: each
/// answer's are counted as it is cached): past it the cache is cleared,
/// as past [`MAX_ORIGINATOR_ENTRIES`]. Role-IDs come from requests, up to
/// 2 048 bytes each.
pub const MAX_CACHED_ROLE_BYTES: usize = 64 << 20;

/// What the cache knows about one claimed role of an originator.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RoleEntry {
    /// Trusted and held by the originator; verified when the request time
    /// lies in `[not_before, not_after]`.
    Held {
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    },
    /// Unknown, untrusted or held by someone else.
    Refused,
}

/// The cached attributes of one originator (absolute ID).
#[derive(Debug, Clone, Default)]
struct OriginatorEntry {
    roles: HashMap<String, RoleEntry>,
    /// Sorted group IDs (absolute, as the PIP reports them) whose members
    /// include the originator.
    groups: Vec<String>,
    /// The PIP's fresh position of the originator.
    position: Option<CachedFix>,
}

/// A position of the PIP with the window in which it may be used.
#[derive(Debug, Clone)]
struct CachedFix {
    position: Position,
    /// When it was measured: it is no position for an earlier request time.
    measured_at: DateTime<Utc>,
    /// When it stops being fresh.
    fresh_until: DateTime<Utc>,
    /// Its countries (with its uncertainty disk).
    countries: Vec<String>,
}

/// One originator's place in the cache.
#[derive(Debug, Default)]
struct Slot {
    /// The cached attributes, if any.
    entry: Option<Arc<OriginatorEntry>>,
    /// Revision of the newest answer in `entry`.
    entry_revision: u64,
    /// Revision of the last watched change that concerned the originator;
    /// an answer of an older revision is never stored.
    changed_at: u64,
}

/// HTTP/2 keepalive of the connection to the PIP (as the PRP replica's):
/// a ping every this often, also while no call is in flight...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// ...and the connection, with the `Watch` stream, is dropped when the
/// answer takes longer than this.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long listing the PIP's group IDs may take when the watch comes up
/// (the watch waits for it; failing, it is set up again).
const LIST_GROUPS_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an `acor` entry cannot be told a `<group>` or an originator ID.
const GROUPS_NOT_LISTED: &str = "the PIP's group IDs are not listed yet";

/// The `<group>` IDs the PIP holds (Decision 3), as last known.
#[derive(Debug, Clone, Default)]
struct KnownGroups {
    /// Listed at least once (before, no ID is known as a group or not).
    loaded: bool,
    /// The PIP cannot list its groups (no `ListGroups`): every `acor` entry
    /// is then also read as an originator ID, as before such a listing.
    unlistable: bool,
    /// The PIP revision of the listing: watched changes up to it are in it.
    revision: u64,
    /// The cache's epoch when it was listed ([`PipCache::epoch`]): a
    /// listing of an earlier epoch may be of another PIP store.
    epoch: u64,
    /// Absolute group IDs, as the PIP reports them (an admin writes them,
    /// so a fast hash: a decision hashes its originator's ID against them).
    ids: FxHashSet<Box<str>>,
}

/// Failed tries to open the PIP's watch said at DEBUG only: a PIP started
/// alongside may not listen yet. The next failure is a WARN, once per
/// outage.
const WATCH_FAILURES_BEFORE_WARNING: u32 = 3;

/// A cache of PIP attributes, shared by every decision of a PDP.
pub struct PipCache {
    endpoint: String,
    client: PolicyInformationPointClient<Channel>,
    deadline: Duration,
    /// Cached attributes and the last change seen, per originator. A
    /// change and an insert for one originator take the same entry lock.
    originators: DashMap<String, Slot>,
    ip_countries: DashMap<IpAddr, Option<String>>,
    position_countries: DashMap<[u64; 3], Vec<String>>,
    /// Revision of the last `reset` (cache insert guard).
    reset_revision: AtomicU64,
    /// Bumped by every clear (a `reset`, a lost watch): an answer fetched
    /// before it is not cached after it. Revisions alone cannot tell, since
    /// a PIP restarted on another store counts its revisions anew.
    epoch: AtomicU64,
    /// Revision of the last change seen on the watch.
    seen_revision: AtomicU64,
    watching: AtomicBool,
    /// Bytes of Role-IDs cached since the last clear (see
    /// [`MAX_CACHED_ROLE_BYTES`]).
    role_bytes: AtomicUsize,
    /// Every group ID the PIP holds, swapped whole: read by decisions
    /// without a lock, written by the watch only.
    known_groups: ArcSwap<KnownGroups>,
    /// [`PipCache::groups_known`], for those who wait for it.
    groups_known: tokio::sync::watch::Sender<bool>,
    /// Wakes [`PipCache::follow`] from its backoff: a fetch got an answer,
    /// so the PIP is back and the watch should be too.
    watch_retry: tokio::sync::Notify,
    /// Told of every `<token>` change the watch reports and of every
    /// clear, so the Local-Token-IDs a PDP caches follow the PIP's token
    /// repository ([`PipCache::on_tokens_changed`]).
    token_listener: OnceLock<TokenListener>,
}

/// What [`PipCache::on_tokens_changed`] calls.
type TokenListener = Box<dyn Fn(TokensChanged<'_>) + Send + Sync>;

/// A change of the PIP's `<token>` repository, as the watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokensChanged<'a> {
    /// The token with this Token-ID was stored (its Local-Token-ID, once
    /// it has one, never changes: TS-0001 7.1.16).
    Stored(&'a str),
    /// The token with this Token-ID was deleted.
    Deleted(&'a str),
    /// Anything may have changed: the cache was cleared (a `reset`, or the
    /// watch was lost and changes may go unseen until it is back).
    All,
}

impl std::fmt::Debug for PipCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipCache")
            .field("endpoint", &self.endpoint)
            .field("deadline", &self.deadline)
            .field("originators", &self.originators.len())
            .field("watching", &self.watching.load(Ordering::Relaxed))
            .field("known_groups", &self.known_groups.load().ids.len())
            .finish_non_exhaustive()
    }
}

/// Why the PIP could not be asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipCacheError {
    /// The endpoint is not an `http://` or `https://` URI with a host.
    #[error("PIP endpoint {0}: {1}")]
    Endpoint(String, String),
}

fn position_key(p: &Position) -> [u64; 3] {
    [p.lat.to_bits(), p.lon.to_bits(), p.uncertainty_m.to_bits()]
}

impl PipCache {
    /// A cache in front of the PIP at `endpoint` (`http://host:port`); the
    /// connection is made lazily. Call [`PipCache::follow`] to keep it fresh.
    pub fn new(endpoint: &str, deadline: Duration) -> Result<Arc<Self>, PipCacheError> {
        Self::new_with_tls(endpoint, deadline, &authz_proto::tls::ClientTls::default())
    }

    /// [`PipCache::new`], verifying an `https://` endpoint as `tls` says.
    pub fn new_with_tls(
        endpoint: &str,
        deadline: Duration,
        tls: &authz_proto::tls::ClientTls,
    ) -> Result<Arc<Self>, PipCacheError> {
        let channel = authz_proto::endpoint::endpoint_with(endpoint, tls)
            .map_err(|e| PipCacheError::Endpoint(endpoint.to_owned(), e.to_string()))?
            .connect_timeout(deadline.max(Duration::from_millis(100)))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Arc::new(Self {
            endpoint: endpoint.to_owned(),
            // A group listing (or a PIP that predates `ids_only` and lists
            // members too) may exceed tonic's 4 MiB default, which would fail
            // every watch set-up; as for the PRP's snapshots.
            client: PolicyInformationPointClient::new(channel)
                .max_decoding_message_size(authz_proto::convert::MAX_DECODING_MESSAGE_BYTES),
            deadline,
            originators: DashMap::new(),
            ip_countries: DashMap::new(),
            position_countries: DashMap::new(),
            reset_revision: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            seen_revision: AtomicU64::new(0),
            watching: AtomicBool::new(false),
            role_bytes: AtomicUsize::new(0),
            known_groups: ArcSwap::from_pointee(KnownGroups::default()),
            groups_known: tokio::sync::watch::channel(false).0,
            watch_retry: tokio::sync::Notify::new(),
            token_listener: OnceLock::new(),
        }))
    }

    /// The PIP endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the `Watch` stream is up (answers are cached only then).
    pub fn is_watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }

    /// The highest PIP revision the watch has applied (0 before it is up).
    pub fn seen_revision(&self) -> u64 {
        self.seen_revision.load(Ordering::Acquire)
    }

    /// Whether `group_id` (absolute) is a `<group>` the PIP holds, as last
    /// listed and watched; `None` before the PIP's groups were listed.
    pub fn is_known_group(&self, group_id: &str) -> Option<bool> {
        let known = self.known_groups.load();
        known.loaded.then(|| known.ids.contains(group_id))
    }

    /// Whether the PIP's group IDs are in place (listed, or the PIP cannot
    /// list them): before, an `acor` entry that may name a `<group>` is
    /// undetermined as an originator ID (Decision 3, 10).
    pub fn groups_known(&self) -> bool {
        *self.groups_known.borrow()
    }

    /// Waits until [`PipCache::groups_known`] (the watch lists them once it
    /// reaches the PIP).
    pub async fn wait_groups_known(&self) {
        let mut rx = self.groups_known.subscribe();
        // The sender lives in `self`, so the wait ends only when they are.
        let _ = rx.wait_for(|known| *known).await;
    }

    /// How many originators have cached attributes.
    pub fn len(&self) -> usize {
        self.originators
            .iter()
            .filter(|s| s.entry.is_some())
            .count()
    }

    /// True when no originator has cached attributes.
    pub fn is_empty(&self) -> bool {
        !self.originators.iter().any(|s| s.entry.is_some())
    }

    /// A view answering for `originator` (absolute) from the cache; `failure`
    /// is the reason given for what the cache does not hold (after a failed
    /// fetch), else "not cached". Asked about another ID (a resource ID
    /// standing for the originator in `<group>` member lists), it answers
    /// from that ID's cached entry.
    ///
    /// `now` is the PDP's clock for the decision: a role counts only while
    /// it is valid then as well as at the request time.
    pub fn view<'c>(
        &'c self,
        originator: &'c str,
        failure: Option<String>,
        now: DateTime<Utc>,
    ) -> CacheView<'c> {
        CacheView {
            cache: self,
            originator,
            now,
            // Looked up when the engine first asks: most decisions (a rule
            // naming the originator by ID) ask nothing, and a lookup takes
            // a shard lock every decision of that originator shares.
            entry: OnceLock::new(),
            fetched: None,
            failure,
            missed: AtomicBool::new(false),
        }
    }

    /// A view answering from a fresh [`Fetched`] answer first (whether or
    /// not it could be cached), with the answers for its member resources,
    /// then from the cache.
    pub fn view_fetched<'c>(&'c self, fetched: &'c Fetched, now: DateTime<Utc>) -> CacheView<'c> {
        CacheView {
            cache: self,
            originator: &fetched.originator,
            now,
            entry: OnceLock::from(Some(fetched.entry.clone())),
            fetched: Some(fetched),
            failure: None,
            missed: AtomicBool::new(false),
        }
    }

    /// Drops every cached attribute (a full cache makes room this way).
    fn clear(&self) {
        // Before the maps are cleared, like `watching` and `reset_revision`.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.originators.clear();
        self.ip_countries.clear();
        self.position_countries.clear();
        self.role_bytes.store(0, Ordering::Release);
    }

    /// [`PipCache::clear`] where changes may have gone unseen (a `reset`, a
    /// lost watch): the Local-Token-IDs the PDP caches are dropped too.
    fn clear_unseen(&self) {
        self.clear();
        self.tokens_changed(TokensChanged::All);
    }

    /// Has `listener` told of every `<token>` change the watch reports,
    /// and of every clear of the cache (at a `reset`, and when the watch is
    /// lost). One listener per cache: false when one is set already.
    pub fn on_tokens_changed(
        &self,
        listener: impl Fn(TokensChanged<'_>) + Send + Sync + 'static,
    ) -> bool {
        self.token_listener.set(Box::new(listener)).is_ok()
    }

    fn tokens_changed(&self, change: TokensChanged<'_>) {
        if let Some(listener) = self.token_listener.get() {
            listener(change);
        }
    }

    /// Drops the originator's cached attributes and records the change's
    /// revision, under the originator's entry lock.
    fn invalidate(&self, originator: &str, revision: u64) {
        let mut slot = self.originators.entry(originator.to_owned()).or_default();
        slot.entry = None;
        slot.entry_revision = 0;
        slot.changed_at = slot.changed_at.max(revision);
    }

    /// Caches `fresh` (an answer of `revision`) for `originator`, merged
    /// with what is cached (the newer answer's groups and position win),
    /// unless the watch is down or the answer predates the last reset or
    /// the last change seen for the originator. Every check is made under
    /// the originator's entry lock, the lock [`PipCache::invalidate`] takes:
    /// a change recorded before the insert is seen by the check, and one
    /// recorded after it drops the insert.
    fn insert_if_current(
        &self,
        originator: &str,
        epoch: u64,
        revision: u64,
        fresh: &OriginatorEntry,
    ) {
        // `reset` and a lost watch change these before they clear the map,
        // so a check made under an entry lock is either seen by the clear
        // or sees them.
        let current = |cache: &Self| {
            cache.is_watching()
                && cache.epoch.load(Ordering::Acquire) == epoch
                && revision >= cache.reset_revision.load(Ordering::Acquire)
        };
        match self.originators.entry(originator.to_owned()) {
            dashmap::Entry::Occupied(mut slot) => {
                if !current(self) || revision < slot.get().changed_at {
                    return;
                }
                let slot = slot.get_mut();
                let merged = match &slot.entry {
                    Some(old) if slot.entry_revision > revision => merge(fresh, old),
                    Some(old) => merge(old, fresh),
                    None => fresh.clone(),
                };
                slot.entry = Some(Arc::new(merged));
                slot.entry_revision = slot.entry_revision.max(revision);
            }
            dashmap::Entry::Vacant(slot) => {
                if current(self) {
                    slot.insert(Slot {
                        entry: Some(Arc::new(fresh.clone())),
                        entry_revision: revision,
                        changed_at: 0,
                    });
                }
            }
        }
    }

    /// Asks the PIP for everything `request` may need and caches the answer
    /// (when it is safe to). The request's `originator` must be absolute.
    ///
    /// With `member_resources`, the groups of each of those resource IDs
    /// are asked for as well, in concurrent calls, and cached under the ID
    /// like an originator's (so the watch drops them when a group listing
    /// the ID changes). Any call failing fails the fetch.
    pub async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched, String> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let req = pb::ResolveAttributesRequest {
            originator: request.originator.to_owned(),
            role_ids: request.role_ids.to_vec(),
            at: Some(timestamp_to_pb(&request.at)),
            originator_ip: request.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            position: request.position.as_ref().map(position_to_pb),
        };
        let members = request.member_resources.iter().map(|member| {
            self.resolve(pb::ResolveAttributesRequest {
                originator: member.clone(),
                at: Some(timestamp_to_pb(&request.at)),
                ..Default::default()
            })
        });
        let (answer, member_answers) =
            tokio::join!(self.resolve(req), futures_util::future::join_all(members));
        let answer = answer?;
        self.relist_if_unwatched(answer.revision).await;
        let mut fetched = self.store_fetched(epoch, &request, &answer);
        for (member, answer) in request.member_resources.iter().zip(member_answers) {
            let as_member = FetchRequest {
                originator: member,
                role_ids: &[],
                at: request.at,
                ip: None,
                position: None,
                member_resources: &[],
            };
            let entry = self.store_fetched(epoch, &as_member, &answer?).entry;
            fetched.members.push((member.clone(), entry));
        }
        Ok(fetched)
    }

    /// While the watch is down the group IDs are as last listed, but every
    /// fetched answer is fresh: a `<group>` put or deleted meanwhile would
    /// be a group to the one and an originator ID to the other, admitting
    /// both its members and the originator spelled like it (Decision 3
    /// makes an entry one or the other). So before such an answer is used
    /// the IDs are listed again, unless the listing is of the answer's
    /// revision and of this epoch; a listing that fails leaves the IDs
    /// unknown (entries that may name a group decide nothing, Decision 10)
    /// rather than stale. And the watch is asked to come back at once: the
    /// PIP answers.
    async fn relist_if_unwatched(&self, revision: u64) {
        if self.is_watching() {
            return;
        }
        self.watch_retry.notify_one();
        let known = self.known_groups.load();
        let current = known.loaded
            && known.revision == revision
            && known.epoch == self.epoch.load(Ordering::Acquire);
        if known.unlistable || current {
            return;
        }
        let listed = tokio::time::timeout(self.deadline, self.list_groups(self.deadline))
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no listing in time")));
        if let Err(status) = listed {
            tracing::debug!(pip = %self.endpoint, error = %authz_proto::endpoint::status_chain(&status), "PIP group listing failed while its watch is down; group IDs unknown");
            self.known_groups.rcu(|known| KnownGroups {
                loaded: false,
                ids: FxHashSet::default(),
                ..KnownGroups::clone(known)
            });
        }
    }

    /// One `ResolveAttributes` call, within the deadline.
    async fn resolve(
        &self,
        req: pb::ResolveAttributesRequest,
    ) -> Result<pb::ResolvedAttributes, String> {
        let mut call = tonic::Request::new(req);
        // gRPC carries at most 99 999 999 hours (tonic panics beyond); a
        // day is longer than any deadline worth waiting for.
        call.set_timeout(self.deadline.min(Duration::from_secs(86_400)));
        authz_proto::serving::inject_trace_context(call.metadata_mut());
        let mut client = self.client.clone();
        // Counted when this ends, also when the caller gives up on it.
        let mut count = FetchCount::default();
        let started = std::time::Instant::now();
        let no_answer = || {
            format!(
                "PIP {} did not answer within {} ms",
                self.endpoint,
                self.deadline.as_millis()
            )
        };
        let answer =
            match tokio::time::timeout(self.deadline, client.resolve_attributes(call)).await {
                Ok(Ok(a)) => a.into_inner(),
                // The call's own timer (`set_timeout`, which tonic reports
                // as CANCELLED "Timeout expired") or the PIP's ran out
                // before ours: the deadline passed all the same.
                Ok(Err(status))
                    if matches!(
                        status.code(),
                        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                    ) && started.elapsed() + TIMER_SLACK >= self.deadline =>
                {
                    return Err(no_answer());
                }
                Ok(Err(status)) => {
                    count.result = "error";
                    return Err(format!(
                        "PIP {} unavailable: {} ({:?})",
                        self.endpoint,
                        authz_proto::endpoint::status_message(&status),
                        status.code()
                    ));
                }
                Err(_) => return Err(no_answer()),
            };
        count.result = "ok";
        Ok(answer)
    }

    /// [`PipCache::store_fetched`] of an answer fetched just now.
    #[cfg(test)]
    fn store(&self, request: &FetchRequest<'_>, a: &pb::ResolvedAttributes) -> Fetched {
        self.store_fetched(self.epoch.load(Ordering::Acquire), request, a)
    }

    /// Caches an answer fetched in `epoch` where it is still current.
    fn store_fetched(
        &self,
        epoch: u64,
        request: &FetchRequest<'_>,
        a: &pb::ResolvedAttributes,
    ) -> Fetched {
        // Countries do not depend on the watched state (tables change only
        // with a reset), so they are cached whenever the watch is up and
        // has not been reset since the fetch.
        if self.is_watching() && self.epoch.load(Ordering::Acquire) == epoch {
            if let Some(ip) = request.ip {
                if self.ip_countries.len() >= MAX_COUNTRY_ENTRIES {
                    self.ip_countries.clear();
                }
                let country = (!a.ip_country.is_empty()).then(|| a.ip_country.clone());
                self.ip_countries.insert(ip, country);
            }
            if let Some(p) = &request.position {
                if self.position_countries.len() >= MAX_COUNTRY_ENTRIES {
                    self.position_countries.clear();
                }
                self.position_countries
                    .insert(position_key(p), a.request_position_countries.clone());
            }
        }
        let fetched = answer_to_fetched(request, a);
        let role_bytes: usize = fetched.entry.roles.keys().map(String::len).sum();
        let cached_role_bytes = self.role_bytes.fetch_add(role_bytes, Ordering::AcqRel);
        if (self.originators.len() >= MAX_ORIGINATOR_ENTRIES
            && !self.originators.contains_key(request.originator))
            || cached_role_bytes + role_bytes > MAX_CACHED_ROLE_BYTES
        {
            // This answer is not cached (its epoch is over); the next is.
            self.clear();
        }
        self.insert_if_current(request.originator, epoch, a.revision, &fetched.entry);
        // Whether or not it could be cached, this decision may use it.
        fetched
    }

    /// Keeps the cache fresh from the PIP's `Watch` stream until the task is
    /// aborted, reconnecting with backoff. While the stream is down nothing
    /// is cached (every miss asks the PIP).
    pub async fn follow(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            let result = self.watch_once().await;
            let lost = self.watching.swap(false, Ordering::AcqRel);
            if lost {
                tracing::warn!(pip = %self.endpoint, "PIP watch lost; attribute cache cleared");
                // This outage is said: its failed retries are not (also
                // when the PIP ended the watch cleanly, stopping).
                failures = WATCH_FAILURES_BEFORE_WARNING + 1;
            }
            match result {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    if !lost {
                        failures = 0;
                    }
                }
                Err(e) => {
                    failures += 1;
                    // A PIP started alongside may not listen yet; after that
                    // an operator should hear of it, once per outage (the
                    // INFO "PIP watch up" ends it): nothing is cached.
                    if failures == WATCH_FAILURES_BEFORE_WARNING + 1 {
                        tracing::warn!(pip = %self.endpoint, error = %authz_proto::endpoint::status_chain(&e), "PIP watch failed; attributes are fetched on every miss until it is back (said once; retried every 5 s at most)");
                    } else {
                        tracing::debug!(pip = %self.endpoint, error = %authz_proto::endpoint::status_chain(&e), "PIP watch failed");
                    }
                }
            }
            self.clear_unseen();
            // A fetch that reached the PIP cuts the backoff short, though
            // not below the first step (a PIP that answers fetches but
            // refuses the watch is not asked in a loop).
            let attempt = std::time::Instant::now();
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.watch_retry.notified() => {
                    let first = Duration::from_millis(100);
                    tokio::time::sleep(first.saturating_sub(attempt.elapsed())).await;
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn watch_once(&self) -> Result<(), tonic::Status> {
        let mut client = self.client.clone();
        // From 0: the PIP answers `reset` first, which is where caching starts.
        let mut stream = client
            .watch(pb::WatchAttributesRequest { from_revision: 0 })
            .await?
            .into_inner();
        while let Some(ev) = stream.next().await {
            let ev = ev?;
            if matches!(ev.change, Some(pb::attribute_change::Change::Reset(_))) {
                // Before the reset is applied: the watch is reported up
                // (`seen_revision`) only with the group IDs in place. The
                // changes after the reset wait in the stream meanwhile.
                self.list_groups(LIST_GROUPS_TIMEOUT).await?;
            }
            self.apply(&ev);
        }
        Ok(())
    }

    /// Lists the PIP's group IDs into [`PipCache::known_groups`]. A PIP
    /// without `ListGroups` leaves them as they were, unknown unless listed
    /// before (every `acor` entry is then also read as an originator ID);
    /// any other failure fails the watch, which is set up again.
    async fn list_groups(&self, timeout: Duration) -> Result<(), tonic::Status> {
        let mut call = tonic::Request::new(pb::ListGroupsRequest { ids_only: true });
        call.set_timeout(timeout.min(Duration::from_secs(86_400)));
        let mut client = self.client.clone();
        let listing = match client.list_groups(call).await {
            Ok(listing) => listing.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                tracing::warn!(pip = %self.endpoint, "PIP cannot list groups; acor entries naming groups are also read as originator IDs");
                self.mark_groups_unlistable();
                return Ok(());
            }
            Err(status) => return Err(status),
        };
        self.set_known_groups(
            listing.groups.into_iter().map(|g| g.group_id),
            listing.revision,
        );
        Ok(())
    }

    /// Notes that the PIP cannot list its groups: the IDs listed before,
    /// if any, stay as last known; without them no ID is known as a group.
    fn mark_groups_unlistable(&self) {
        self.known_groups.rcu(|known| {
            let mut next = KnownGroups::clone(known);
            next.unlistable = true;
            next
        });
        self.groups_known.send_replace(true);
    }

    /// Replaces the known group IDs with a listing of `revision`.
    fn set_known_groups(&self, ids: impl IntoIterator<Item = String>, revision: u64) {
        self.known_groups.store(Arc::new(KnownGroups {
            loaded: true,
            unlistable: false,
            revision,
            epoch: self.epoch.load(Ordering::Acquire),
            ids: ids.into_iter().map(String::into_boxed_str).collect(),
        }));
        self.groups_known.send_replace(true);
    }

    /// Follows a watched group change: `group_id` stored, or deleted. A
    /// change the listing holds already (not after its revision) is
    /// skipped; a listing of revision 0 (a PIP that does not say) takes
    /// every change, which ends in the same set.
    fn note_group(&self, group_id: &str, deleted: bool, revision: u64) {
        self.known_groups.rcu(|known| {
            let stale = !known.loaded || (known.revision != 0 && revision <= known.revision);
            if stale || known.ids.contains(group_id) != deleted {
                // Nothing to do (present when stored, absent when deleted).
                return Arc::clone(known);
            }
            let mut next = KnownGroups::clone(known);
            if deleted {
                next.ids.remove(group_id);
            } else {
                next.ids.insert(group_id.into());
            }
            Arc::new(next)
        });
    }

    /// Applies one watch event (public for tests that feed events).
    pub fn apply(&self, ev: &pb::AttributeChange) {
        use pb::attribute_change::Change;
        self.seen_revision.fetch_max(ev.revision, Ordering::AcqRel);
        match &ev.change {
            Some(Change::Reset(_)) => {
                // Not the maximum: a PIP restarted on another store counts
                // anew, and its reset is where its revisions start.
                self.seen_revision.store(ev.revision, Ordering::Release);
                self.reset_revision.store(ev.revision, Ordering::Release);
                self.clear_unseen();
                self.watching.store(true, Ordering::Release);
                tracing::info!(pip = %self.endpoint, revision = ev.revision, "PIP watch up; attribute cache reset");
            }
            Some(Change::Role(r)) => self.invalidate(&r.holder, ev.revision),
            Some(Change::Group(g)) => {
                for m in &g.affected_members {
                    self.invalidate(m, ev.revision);
                }
                self.note_group(&g.group_id, g.deleted, ev.revision);
            }
            Some(Change::Position(p)) => self.invalidate(&p.subject, ev.revision),
            // Tokens are not cached here; the PDP's Local-Token-IDs are.
            Some(Change::Token(t)) => self.tokens_changed(if t.deleted {
                TokensChanged::Deleted(&t.token_id)
            } else {
                TokensChanged::Stored(&t.token_id)
            }),
            None => {}
        }
    }
}

/// The answer as cache content, for the decision that asked.
fn answer_to_fetched(request: &FetchRequest<'_>, a: &pb::ResolvedAttributes) -> Fetched {
    let mut entry = OriginatorEntry::default();
    for v in &a.roles {
        let held = match (&v.not_before, &v.not_after) {
            (Some(nb), Some(na)) => match (
                timestamp_field(nb, "not_before"),
                timestamp_field(na, "not_after"),
            ) {
                (Ok(not_before), Ok(not_after)) => Some(RoleEntry::Held {
                    not_before,
                    not_after,
                }),
                _ => None,
            },
            _ => None,
        };
        entry
            .roles
            .insert(v.role_id.clone(), held.unwrap_or(RoleEntry::Refused));
    }
    entry.groups = a.groups.clone();
    entry.groups.sort();
    entry.position = a.position.as_ref().and_then(|fix| {
        let p = fix.position.as_ref()?;
        let measured_at = timestamp_field(fix.measured_at.as_ref()?, "measured_at").ok()?;
        let fresh_until = timestamp_field(fix.fresh_until.as_ref()?, "fresh_until").ok()?;
        Some(CachedFix {
            position: Position {
                lat: p.latitude,
                lon: p.longitude,
                uncertainty_m: p.uncertainty_m,
            },
            measured_at,
            fresh_until,
            countries: a.position_countries.clone(),
        })
    });
    Fetched {
        originator: request.originator.to_owned(),
        entry: Arc::new(entry),
        members: Vec::new(),
        ip_country: request
            .ip
            .map(|ip| (ip, (!a.ip_country.is_empty()).then(|| a.ip_country.clone()))),
        position_countries: request
            .position
            .as_ref()
            .map(|p| (position_key(p), a.request_position_countries.clone())),
    }
}

/// Two answers for the same originator, neither older than a change seen
/// for it: the groups and position of `newer`, and the role verdicts of
/// both (those of `newer` where both judged a role).
fn merge(older: &OriginatorEntry, newer: &OriginatorEntry) -> OriginatorEntry {
    let mut merged = newer.clone();
    for (role, verdict) in &older.roles {
        if merged.roles.len() >= MAX_ROLES_PER_ORIGINATOR {
            // Dropped ones are asked again when claimed again.
            break;
        }
        merged.roles.entry(role.clone()).or_insert(*verdict);
    }
    merged
}

/// How much earlier than the fetch's deadline another timer may report it
/// ran out (timers count from slightly different instants).
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Counts one PIP fetch in `authz_pip_fetches_total` when it ends, by its
/// `result`: `timeout` unless set otherwise, so that a fetch dropped
/// unfinished (the caller's deadline ended the decision first) counts too.
struct FetchCount {
    result: &'static str,
}

impl Default for FetchCount {
    fn default() -> Self {
        Self { result: "timeout" }
    }
}

impl Drop for FetchCount {
    fn drop(&mut self) {
        crate::telemetry::record_pip_fetch(self.result);
    }
}

/// What a fetch asks the PIP about.
#[derive(Debug, Clone)]
pub struct FetchRequest<'a> {
    /// The originator, absolute.
    pub originator: &'a str,
    /// Claimed Role-IDs.
    pub role_ids: &'a [String],
    /// Request time.
    pub at: DateTime<Utc>,
    /// Originator IP.
    pub ip: Option<IpAddr>,
    /// Position the request carries.
    pub position: Option<Position>,
    /// Resource IDs (absolute) of `<AE>`/`<remoteCSE>` resources that stand
    /// for the originator in `<group>` member lists, whose groups are
    /// fetched too (TS-0001 9.6.2.1; spec notes §2.4).
    pub member_resources: &'a [String],
}

/// One `ResolveAttributes` answer, usable by the decision that asked for
/// it even when it could not be cached.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Whose answer it is (absolute).
    originator: String,
    entry: Arc<OriginatorEntry>,
    /// The answers for the resource IDs that stand for the originator in
    /// `<group>` member lists ([`FetchRequest::member_resources`]).
    members: Vec<(String, Arc<OriginatorEntry>)>,
    ip_country: Option<(IpAddr, Option<String>)>,
    position_countries: Option<([u64; 3], Vec<String>)>,
}

/// An [`AttributeSource`] answering one decision from a [`PipCache`].
pub struct CacheView<'c> {
    cache: &'c PipCache,
    /// The originator the view is for (absolute).
    originator: &'c str,
    /// The PDP's clock for the decision.
    now: DateTime<Utc>,
    /// The originator's cached entry, once looked up.
    entry: OnceLock<Option<Arc<OriginatorEntry>>>,
    fetched: Option<&'c Fetched>,
    failure: Option<String>,
    missed: AtomicBool,
}

impl CacheView<'_> {
    /// Whether the engine asked for something the cache does not hold.
    pub fn missed(&self) -> bool {
        self.missed.load(Ordering::Relaxed)
    }

    fn miss<T>(&self) -> Lookup<T> {
        self.missed.store(true, Ordering::Relaxed);
        Lookup::Unavailable(
            self.failure
                .clone()
                .unwrap_or_else(|| "not in the PDP's PIP cache".to_owned()),
        )
    }

    /// The entry of `id`: the originator's, held since the view was built;
    /// another ID's (a resource ID that stands for the originator in
    /// `<group>` member lists) from the fetched answer, else the cache.
    /// The originator's cached entry.
    fn entry(&self) -> Option<&OriginatorEntry> {
        self.entry
            .get_or_init(|| {
                self.cache
                    .originators
                    .get(self.originator)
                    .and_then(|s| s.entry.clone())
            })
            .as_deref()
    }

    /// The first time after `at` at which what the view holds of the
    /// originator may judge a request differently: a role of it becoming
    /// valid or ceasing to be (at the request time or at the PDP's clock,
    /// since it counts only while valid at both), its position starting or
    /// ending to be fresh. A decision at `at` is not reused for a request
    /// from then on (`reusable_until`), however the request's time is
    /// rounded.
    pub fn changes_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let entry = self.entry()?;
        let now = self.now;
        let roles = entry.roles.values().flat_map(|r| {
            let times = match r {
                // Ended at either time: it never counts again for this
                // request, whose time and the clock only move on.
                RoleEntry::Held { not_after, .. } if at.max(now) > *not_after => None,
                RoleEntry::Held {
                    not_before,
                    not_after,
                } => Some([at, now].map(|t| {
                    if t < *not_before {
                        *not_before
                    } else {
                        // Valid up to and including `not_after`.
                        *not_after + chrono::TimeDelta::nanoseconds(1)
                    }
                })),
                RoleEntry::Refused => None,
            };
            times.into_iter().flatten()
        });
        let position = entry.position.as_ref().and_then(|fix| {
            if at < fix.measured_at {
                Some(fix.measured_at)
            } else {
                (at < fix.fresh_until).then_some(fix.fresh_until)
            }
        });
        // A change past the last instant a Timestamp holds (a role valid
        // to 9999-12-31T23:59:59.999999999) never comes: no bound, rather
        // than a `reusable_until` clients cannot read.
        let last =
            DateTime::from_timestamp(authz_proto::convert::MAX_TIMESTAMP_SECONDS, 999_999_999);
        roles
            .chain(position)
            .filter(|t| last.is_some_and(|last| *t <= last))
            .min()
    }

    fn entry_for(&self, id: &str) -> Option<EntryRef<'_>> {
        if id == self.originator {
            return self.entry().map(EntryRef::Borrowed);
        }
        if let Some((_, e)) = self
            .fetched
            .and_then(|f| f.members.iter().find(|(m, _)| m == id))
        {
            return Some(EntryRef::Borrowed(e));
        }
        self.cache
            .originators
            .get(id)
            .and_then(|s| s.entry.clone())
            .map(EntryRef::Shared)
    }
}

/// A cached entry, borrowed from the view or shared from the cache.
enum EntryRef<'a> {
    Borrowed(&'a OriginatorEntry),
    Shared(Arc<OriginatorEntry>),
}

impl std::ops::Deref for EntryRef<'_> {
    type Target = OriginatorEntry;

    fn deref(&self) -> &OriginatorEntry {
        match self {
            Self::Borrowed(e) => e,
            Self::Shared(e) => e,
        }
    }
}

impl AttributeSource for CacheView<'_> {
    fn knows_groups(&self) -> bool {
        let known = self.cache.known_groups.load();
        // Before the first listing any ID may be a group (Decision 3):
        // the engine asks, and hears that it cannot be told yet.
        (!known.loaded && !known.unlistable) || !known.ids.is_empty()
    }

    fn is_group(&self, group_id: &str) -> Lookup<bool> {
        // From the IDs kept locally, never a fetch: this is asked on the
        // path of a Permit.
        let known = self.cache.known_groups.load();
        if known.loaded {
            Lookup::Found(known.ids.contains(group_id))
        } else if known.unlistable {
            // A PIP that cannot list its groups keeps no group IDs: it
            // knows members only (`NotFound`, as the trait says).
            Lookup::NotFound
        } else {
            Lookup::Unavailable(GROUPS_NOT_LISTED.to_owned())
        }
    }

    fn role_verified(&self, originator: &str, role_id: &str, at: DateTime<Utc>) -> Lookup<bool> {
        match self
            .entry_for(originator)
            .as_deref()
            .and_then(|e| e.roles.get(role_id))
        {
            // Valid at the request time and still valid now: "only valid
            // roles/tokens shall be used" (TS-0003 7.4.3 step 4), so a
            // request time inside a validity that has ended (a queued or
            // stale `rtm`) does not revive the role.
            Some(RoleEntry::Held {
                not_before,
                not_after,
            }) => Lookup::Found(
                [at, self.now]
                    .iter()
                    .all(|t| not_before <= t && t <= not_after),
            ),
            Some(RoleEntry::Refused) => Lookup::Found(false),
            None => self.miss(),
        }
    }

    fn group_has_member(&self, group_id: &str, originator: &str) -> Lookup<bool> {
        match self.entry_for(originator) {
            Some(e) => Lookup::Found(
                e.groups
                    .binary_search_by(|g| g.as_str().cmp(group_id))
                    .is_ok(),
            ),
            None => self.miss(),
        }
    }

    fn for_each_group_containing(
        &self,
        originator: &str,
        visit: &mut dyn FnMut(&str),
    ) -> Lookup<()> {
        match self.entry_for(originator) {
            Some(e) => {
                for g in &e.groups {
                    visit(g);
                }
                Lookup::Found(())
            }
            None => self.miss(),
        }
    }

    fn position(&self, originator: &str, at: DateTime<Utc>) -> Lookup<Position> {
        match self.entry_for(originator) {
            Some(e) => match &e.position {
                // Measured by the request time and fresh then, and not
                // stale at the PDP's clock: a request time inside a
                // freshness that has ended (a queued or stale `rtm`) does
                // not revive the fix, as for roles (Decision 10: expired
                // data is no data).
                Some(fix)
                    if fix.measured_at <= at
                        && at < fix.fresh_until
                        && self.now < fix.fresh_until =>
                {
                    Lookup::Found(fix.position)
                }
                Some(fix) if self.now >= fix.fresh_until => Lookup::Unavailable(format!(
                    "the last position reported was measured at {} and went stale at {}",
                    fix.measured_at.format("%Y%m%dT%H%M%S"),
                    fix.fresh_until.format("%Y%m%dT%H%M%S"),
                )),
                // Known, but not for this instant (Decision 10: say why).
                Some(fix) => Lookup::Unavailable(format!(
                    "the last position reported was measured at {} and is fresh until {}, \
                     which does not cover the request time {}",
                    fix.measured_at.format("%Y%m%dT%H%M%S"),
                    fix.fresh_until.format("%Y%m%dT%H%M%S"),
                    at.format("%Y%m%dT%H%M%S"),
                )),
                None => Lookup::NotFound,
            },
            None => self.miss(),
        }
    }

    fn countries_of_position(&self, position: &Position) -> Lookup<Vec<String>> {
        if let Some(Some(fix)) = self.entry().map(|e| &e.position)
            && position_key(&fix.position) == position_key(position)
        {
            return known_countries(&fix.countries);
        }
        if let Some((key, countries)) = self.fetched.and_then(|f| f.position_countries.as_ref())
            && *key == position_key(position)
        {
            return known_countries(countries);
        }
        match self.cache.position_countries.get(&position_key(position)) {
            Some(c) => known_countries(&c),
            None => self.miss(),
        }
    }

    fn country_of_ip(&self, ip: IpAddr) -> Lookup<String> {
        if let Some((asked, country)) = self.fetched.and_then(|f| f.ip_country.as_ref())
            && *asked == ip
        {
            return country.clone().map_or(Lookup::NotFound, Lookup::Found);
        }
        match self.cache.ip_countries.get(&ip) {
            Some(c) => match &*c {
                Some(cc) => Lookup::Found(cc.clone()),
                None => Lookup::NotFound,
            },
            None => self.miss(),
        }
    }
}

/// The PIP's answer on a position's countries: empty means it does not know
/// (a PIP without a country dataset; `CountryAnswer`), which is not "in no
/// country" (at sea, answered as `--`): the country is missing.
fn known_countries(countries: &[String]) -> Lookup<Vec<String>> {
    if countries.is_empty() {
        Lookup::NotFound
    } else {
        Lookup::Found(countries.to_vec())
    }
}

#[cfg(test)]
mod tests {
    //! The cache's freshness guard (TS-0003 6.2.2 steps 006-007: the PDP
    //! asks the PIP for what the request does not carry; the cache must
    //! never answer with a value the PIP has since changed). The race of a
    //! fetch with a watched change is forced by calling the two halves of
    //! [`PipCache::store`] around [`PipCache::apply`].

    use super::*;

    /// An originator's entry keeps the latest answer's roles, then older
    /// ones up to [`MAX_ROLES_PER_ORIGINATOR`]: claiming new Role-IDs
    /// request after request does not grow it without end.
    #[test]
    fn an_entry_keeps_at_most_its_bound_of_roles() {
        let with_roles = |from: usize, to: usize| OriginatorEntry {
            roles: (from..to)
                .map(|i| (format!("r{i}@roles.example.com"), RoleEntry::Refused))
                .collect(),
            ..OriginatorEntry::default()
        };
        let older = with_roles(0, 300);
        let newer = with_roles(1000, 1010);
        let merged = merge(&older, &newer);
        assert_eq!(merged.roles.len(), MAX_ROLES_PER_ORIGINATOR);
        assert!((1000..1010).all(|i| {
            merged
                .roles
                .contains_key(&format!("r{i}@roles.example.com"))
        }));
    }

    /// README: `authz_pip_fetches_total{result}` counts every fetch on a
    /// cache miss. One the caller's deadline cut short is dropped before
    /// it ends: it counts as a timeout; one that ended counts as it ended.
    #[test]
    fn a_fetch_dropped_unfinished_counts_as_a_timeout() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            drop(FetchCount::default());
            drop(FetchCount { result: "ok" });
        });
        let text = handle.render();
        assert!(
            text.contains(r#"authz_pip_fetches_total{result="timeout"} 1"#),
            "{text}"
        );
    }

    /// A PIP that accepts the connection and never answers (frozen): each
    /// fetch ends at the deadline and counts as a timeout, whichever timer
    /// (the call's own, which tonic reports as CANCELLED, or ours) ends it
    /// first.
    #[test]
    fn a_fetch_the_pip_never_answers_counts_as_a_timeout() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        rt.spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let cache = {
            let _entered = rt.enter();
            PipCache::new(&format!("http://{addr}"), Duration::from_millis(150)).expect("cache")
        };
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..4 {
                let answer = rt.block_on(cache.resolve(pb::ResolveAttributesRequest::default()));
                let reason = answer.expect_err("no answer");
                assert!(reason.contains("did not answer within 150 ms"), "{reason}");
            }
        });
        let text = handle.render();
        assert!(
            text.contains(r#"authz_pip_fetches_total{result="timeout"} 4"#),
            "{text}"
        );
        assert!(!text.contains(r#"result="error""#), "{text}");
    }

    const ALICE: &str = "//sp.example.com/id-in/Calice";

    fn cache() -> Arc<PipCache> {
        // Port 9 (discard) on loopback: nothing in these tests connects.
        PipCache::new("http://127.0.0.1:9", DEFAULT_FETCH_DEADLINE).expect("endpoint")
    }

    fn event(revision: u64, change: pb::attribute_change::Change) -> pb::AttributeChange {
        pb::AttributeChange {
            revision,
            change: Some(change),
        }
    }

    fn reset(revision: u64) -> pb::AttributeChange {
        event(revision, pb::attribute_change::Change::Reset(pb::Reset {}))
    }

    fn group_changed(revision: u64, members: &[&str]) -> pb::AttributeChange {
        event(
            revision,
            pb::attribute_change::Change::Group(pb::GroupChanged {
                group_id: "//sp.example.com/id-in/family".into(),
                affected_members: members.iter().map(|m| m.to_string()).collect(),
                deleted: false,
            }),
        )
    }

    fn role_changed(revision: u64, holder: &str) -> pb::AttributeChange {
        event(
            revision,
            pb::attribute_change::Change::Role(pb::RoleChanged {
                role_id: "guest@roles.example.com".into(),
                holder: holder.into(),
                deleted: true,
            }),
        )
    }

    fn answer(revision: u64, groups: &[&str]) -> pb::ResolvedAttributes {
        pb::ResolvedAttributes {
            revision,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn request(at: DateTime<Utc>) -> FetchRequest<'static> {
        FetchRequest {
            originator: ALICE,
            role_ids: &[],
            at,
            ip: None,
            position: None,
            member_resources: &[],
        }
    }

    fn unavailable<T>(lookup: &Lookup<T>) -> bool {
        matches!(lookup, Lookup::Unavailable(_))
    }

    fn cached_groups(cache: &PipCache) -> Lookup<Vec<String>> {
        cache.view(ALICE, None, Utc::now()).groups_containing(ALICE)
    }

    /// Originator IDs come from requests: past [`MAX_ORIGINATOR_ENTRIES`]
    /// the cache starts again (a new epoch) instead of growing, and what it
    /// holds afterwards is cached anew.
    #[tokio::test]
    async fn the_cache_is_bounded_in_originators() {
        let cache = cache();
        cache.apply(&reset(5));
        let ids: Vec<String> = (0..MAX_ORIGINATOR_ENTRIES)
            .map(|i| format!("//sp.example.com/id-in/C{i}"))
            .collect();
        let a = answer(7, &["//sp.example.com/id-in/family"]);
        for id in &ids {
            let mut r = request(Utc::now());
            r.originator = id;
            cache.store(&r, &a);
        }
        assert_eq!(cache.originators.len(), MAX_ORIGINATOR_ENTRIES);
        let epoch = cache.epoch.load(Ordering::Acquire);
        // One more: the cache is cleared, this answer is not kept...
        cache.store(&request(Utc::now()), &a);
        assert_eq!(cache.originators.len(), 0);
        assert_eq!(cache.epoch.load(Ordering::Acquire), epoch + 1);
        // ... the next one is.
        cache.store(&request(Utc::now()), &a);
        assert_eq!(cache.originators.len(), 1);
        assert_eq!(
            cached_groups(&cache),
            Lookup::Found(vec!["//sp.example.com/id-in/family".to_owned()])
        );
    }

    /// The reviewed race: an answer fetched at revision 7 (Alice in the
    /// group), the watch then records revision 8 (Alice removed), and only
    /// then the answer is inserted. It must not be stored; with the old
    /// check-at-start guard it was, and Alice kept her membership until the
    /// next change.
    #[tokio::test]
    async fn an_answer_fetched_before_a_change_is_not_stored_after_it() {
        let cache = cache();
        cache.apply(&reset(5));
        let epoch = cache.epoch.load(Ordering::Acquire);
        let a = answer(7, &["//sp.example.com/id-in/family"]);
        let fetched = answer_to_fetched(&request(Utc::now()), &a);
        cache.apply(&group_changed(8, &[ALICE]));
        cache.insert_if_current(ALICE, epoch, a.revision, &fetched.entry);
        assert!(unavailable(&cached_groups(&cache)), "stale answer cached");
        assert_eq!(cache.len(), 0);
        // The decision that asked still uses its own answer.
        assert_eq!(
            cache
                .view_fetched(&fetched, Utc::now())
                .groups_containing(ALICE),
            Lookup::Found(vec!["//sp.example.com/id-in/family".to_owned()])
        );
        // An answer at or after the change is stored.
        cache.store(&request(Utc::now()), &answer(8, &[]));
        assert_eq!(cached_groups(&cache), Lookup::Found(vec![]));
    }

    /// The other order: inserted first, the change drops it.
    #[tokio::test]
    async fn a_change_after_the_insert_drops_the_answer() {
        let cache = cache();
        cache.apply(&reset(5));
        cache.store(
            &request(Utc::now()),
            &answer(7, &["//sp.example.com/id-in/family"]),
        );
        assert_eq!(
            cached_groups(&cache),
            Lookup::Found(vec!["//sp.example.com/id-in/family".to_owned()])
        );
        cache.apply(&group_changed(8, &[ALICE]));
        assert!(unavailable(&cached_groups(&cache)));
        assert!(cache.is_empty());
    }

    /// A reset between fetch and insert, and a lost watch: neither lets an
    /// older answer in.
    #[tokio::test]
    async fn a_reset_or_a_lost_watch_between_fetch_and_insert_keeps_the_answer_out() {
        let cache = cache();
        // Not watching yet: nothing is cached.
        cache.store(
            &request(Utc::now()),
            &answer(3, &["//sp.example.com/id-in/family"]),
        );
        assert!(cache.is_empty());
        cache.apply(&reset(5));
        let epoch = cache.epoch.load(Ordering::Acquire);
        let a = answer(7, &["//sp.example.com/id-in/family"]);
        let fetched = answer_to_fetched(&request(Utc::now()), &a);
        cache.apply(&reset(9));
        cache.insert_if_current(ALICE, epoch, a.revision, &fetched.entry);
        assert!(cache.is_empty());
        // The watch is lost (what `follow` does when the stream ends or fails).
        cache.watching.store(false, Ordering::Release);
        cache.clear();
        cache.store(
            &request(Utc::now()),
            &answer(10, &["//sp.example.com/id-in/family"]),
        );
        assert!(cache.is_empty());
    }

    /// A PIP restarted on another store counts its revisions anew: after
    /// its reset, its answers are cached again although their revisions
    /// are lower than the old store's, and an answer fetched from the old
    /// one before the watch was lost is not, whatever its revision.
    #[tokio::test]
    async fn a_pip_on_a_new_store_with_lower_revisions_is_cached_again() {
        let cache = cache();
        cache.apply(&reset(500));
        cache.store(
            &request(Utc::now()),
            &answer(501, &["//sp.example.com/id-in/old"]),
        );
        assert_eq!(
            cached_groups(&cache),
            Lookup::Found(vec!["//sp.example.com/id-in/old".to_owned()])
        );
        let epoch = cache.epoch.load(Ordering::Acquire);
        let in_flight = answer(502, &["//sp.example.com/id-in/old"]);
        let fetched = answer_to_fetched(&request(Utc::now()), &in_flight);
        // The watch is lost; the new PIP's stream starts with its reset.
        cache.watching.store(false, Ordering::Release);
        cache.clear();
        cache.apply(&reset(3));
        cache.insert_if_current(ALICE, epoch, in_flight.revision, &fetched.entry);
        assert!(cache.is_empty(), "an answer of the old store was cached");
        cache.store(
            &request(Utc::now()),
            &answer(4, &["//sp.example.com/id-in/new"]),
        );
        assert_eq!(
            cached_groups(&cache),
            Lookup::Found(vec!["//sp.example.com/id-in/new".to_owned()])
        );
        // Its changes drop what it answered, as ever.
        cache.apply(&group_changed(5, &[ALICE]));
        assert!(unavailable(&cached_groups(&cache)));
    }

    /// Merging a newer answer into the cached entry happens under the same
    /// lock: a role verdict cached before a change of Alice's roles is not
    /// carried into the entry stored after it.
    #[tokio::test]
    async fn a_merge_never_carries_a_verdict_from_before_a_change() {
        let cache = cache();
        cache.apply(&reset(5));
        let now = Utc::now();
        let held = pb::ResolvedAttributes {
            revision: 6,
            roles: vec![pb::RoleVerdict {
                role_id: "guest@roles.example.com".into(),
                verified: true,
                reason: String::new(),
                not_before: Some(timestamp_to_pb(&(now - chrono::Duration::hours(1)))),
                not_after: Some(timestamp_to_pb(&(now + chrono::Duration::hours(1)))),
            }],
            ..Default::default()
        };
        let claims = vec!["guest@roles.example.com".to_owned()];
        let with_role = FetchRequest {
            role_ids: &claims,
            ..request(now)
        };
        cache.store(&with_role, &held);
        let view = cache.view(ALICE, None, Utc::now());
        assert_eq!(
            view.role_verified(ALICE, "guest@roles.example.com", now),
            Lookup::Found(true)
        );
        // A fetch without that claim, answered at 8, races the role's
        // deletion at 7.
        let epoch = cache.epoch.load(Ordering::Acquire);
        let a = answer(8, &[]);
        let fetched = answer_to_fetched(&request(now), &a);
        cache.apply(&role_changed(7, ALICE));
        cache.insert_if_current(ALICE, epoch, a.revision, &fetched.entry);
        let view = cache.view(ALICE, None, Utc::now());
        assert!(unavailable(&view.role_verified(
            ALICE,
            "guest@roles.example.com",
            now
        )));
        assert_eq!(view.groups_containing(ALICE), Lookup::Found(vec![]));
    }

    /// Two answers arriving out of order (both after the last change): the
    /// older one does not replace the newer one's groups.
    #[tokio::test]
    async fn an_older_answer_does_not_replace_a_newer_one() {
        let cache = cache();
        cache.apply(&reset(5));
        cache.store(
            &request(Utc::now()),
            &answer(9, &["//sp.example.com/id-in/new"]),
        );
        cache.store(
            &request(Utc::now()),
            &answer(7, &["//sp.example.com/id-in/old"]),
        );
        assert_eq!(
            cached_groups(&cache),
            Lookup::Found(vec!["//sp.example.com/id-in/new".to_owned()])
        );
        cache.store(&request(Utc::now()), &answer(10, &[]));
        assert_eq!(cached_groups(&cache), Lookup::Found(vec![]));
    }

    /// Spec notes §2.4: the groups of a resource that stands for the
    /// originator in `<group>` member lists are cached under the resource's
    /// ID like an originator's: a cached answer needs no fetch, a group
    /// change naming the resource drops it, and what is not cached is a
    /// miss (a fetch; the failure's reason when the PIP cannot answer).
    #[tokio::test]
    async fn member_resource_groups_are_cached_like_an_originators() {
        const LIGHT: &str = "//sp.example.com/id-in/ae-light";
        let grp = || Lookup::Found(vec!["//sp.example.com/id-in/grpLights".to_owned()]);
        let cache = cache();
        cache.apply(&reset(5));
        let now = Utc::now();
        cache.store(&request(now), &answer(6, &[]));
        let view = cache.view(ALICE, None, Utc::now());
        assert!(unavailable(&view.groups_containing(LIGHT)));
        assert!(view.missed());
        let as_member = FetchRequest {
            originator: LIGHT,
            ..request(now)
        };
        cache.store(
            &as_member,
            &answer(7, &["//sp.example.com/id-in/grpLights"]),
        );
        let view = cache.view(ALICE, None, Utc::now());
        assert_eq!(view.groups_containing(LIGHT), grp());
        assert_eq!(
            view.group_has_member("//sp.example.com/id-in/grpLights", LIGHT),
            Lookup::Found(true)
        );
        assert_eq!(view.groups_containing(ALICE), Lookup::Found(vec![]));
        assert!(!view.missed(), "a cached answer needs no fetch");
        cache.apply(&group_changed(8, &[LIGHT]));
        let view = cache.view(ALICE, None, Utc::now());
        assert!(unavailable(&view.groups_containing(LIGHT)));
        assert_eq!(view.groups_containing(ALICE), Lookup::Found(vec![]));
        // A fetch's answer carries its member resources' answers.
        let mut fetched = answer_to_fetched(&request(now), &answer(9, &[]));
        let light = answer_to_fetched(
            &as_member,
            &answer(9, &["//sp.example.com/id-in/grpLights"]),
        );
        fetched.members.push((LIGHT.to_owned(), light.entry));
        assert_eq!(
            cache
                .view_fetched(&fetched, Utc::now())
                .groups_containing(LIGHT),
            grp()
        );
        let view = cache.view(ALICE, Some("PIP down".into()), Utc::now());
        assert_eq!(
            view.groups_containing(LIGHT),
            Lookup::Unavailable("PIP down".into())
        );
    }

    fn group_event(revision: u64, group_id: &str, deleted: bool) -> pb::AttributeChange {
        event(
            revision,
            pb::attribute_change::Change::Group(pb::GroupChanged {
                group_id: group_id.into(),
                affected_members: Vec::new(),
                deleted,
            }),
        )
    }

    /// Decision 3: which IDs are groups is answered from the IDs the
    /// watch keeps, without a fetch: unknown before the first listing, then
    /// the listing, then the watched changes after its revision (those up
    /// to it are in the listing already); kept as last known when the
    /// watch is lost.
    #[tokio::test]
    async fn group_ids_follow_the_listing_and_the_watch() {
        const FAMILY: &str = "//sp.example.com/id-in/family";
        const LIGHTS: &str = "//sp.example.com/id-in/lights";
        let cache = cache();
        let view = cache.view(ALICE, None, Utc::now());
        // Before the listing any ID may be a group: the engine must ask,
        // and hears that it cannot be told (Decision 10).
        assert!(view.knows_groups());
        assert!(!cache.groups_known());
        assert!(unavailable(&view.is_group(FAMILY)));
        // Changes before the first listing are in it.
        cache.apply(&group_event(3, LIGHTS, false));
        assert_eq!(cache.is_known_group(LIGHTS), None);
        cache.set_known_groups([FAMILY.to_owned()], 5);
        cache.apply(&reset(4));
        let view = cache.view(ALICE, None, Utc::now());
        assert!(view.knows_groups());
        assert!(cache.groups_known());
        assert_eq!(view.is_group(FAMILY), Lookup::Found(true));
        assert_eq!(view.is_group(LIGHTS), Lookup::Found(false));
        assert!(!view.missed(), "no fetch for a group ID");
        // A change up to the listing's revision is skipped: the listing
        // says what holds at 5, whatever the changes before it said.
        cache.apply(&group_event(5, LIGHTS, false));
        assert_eq!(cache.is_known_group(LIGHTS), Some(false));
        cache.apply(&group_event(6, LIGHTS, false));
        assert_eq!(cache.is_known_group(LIGHTS), Some(true));
        cache.apply(&group_event(7, FAMILY, true));
        assert_eq!(cache.is_known_group(FAMILY), Some(false));
        // The watch is lost: memberships go, the group IDs stay.
        cache.watching.store(false, Ordering::Release);
        cache.clear();
        assert_eq!(cache.is_known_group(LIGHTS), Some(true));
        // The next listing replaces them.
        cache.set_known_groups(Vec::new(), 2);
        cache.apply(&reset(2));
        let view = cache.view(ALICE, None, Utc::now());
        assert!(!view.knows_groups());
        assert_eq!(view.is_group(LIGHTS), Lookup::Found(false));
    }

    /// A PIP without `ListGroups` keeps no group IDs: the engine reads
    /// every `acor` entry as an originator ID too, and a group's members
    /// are asked entry by entry (`NotFound`, not undetermined).
    #[tokio::test]
    async fn a_pip_that_cannot_list_groups_leaves_entries_ids() {
        let cache = cache();
        cache.mark_groups_unlistable();
        let view = cache.view(ALICE, None, Utc::now());
        assert!(!view.knows_groups());
        assert!(cache.groups_known());
        assert_eq!(
            view.is_group("//sp.example.com/id-in/family"),
            Lookup::NotFound
        );
    }

    /// A PIP answer (revision 2) holding a position fix measured at
    /// `measured`, fresh until `until`.
    fn fix_answer(
        measured: chrono::DateTime<Utc>,
        until: chrono::DateTime<Utc>,
    ) -> pb::ResolvedAttributes {
        pb::ResolvedAttributes {
            revision: 2,
            position: Some(pb::PositionFix {
                position: Some(pb::Position {
                    latitude: 48.85,
                    longitude: 2.35,
                    uncertainty_m: 10.0,
                }),
                measured_at: Some(timestamp_to_pb(&measured)),
                fresh_until: Some(timestamp_to_pb(&until)),
            }),
            ..Default::default()
        }
    }

    /// Annex F.2.1: a cached fix is a position only from its measuring time
    /// until it stops being fresh; for an earlier or a later request time it
    /// is none.
    #[tokio::test]
    async fn a_cached_fix_is_no_position_before_it_was_measured() {
        let cache = cache();
        cache.apply(&reset(1));
        let measured = Utc::now();
        let until = measured + chrono::Duration::seconds(300);
        let a = fix_answer(measured, until);
        cache.store(&request(measured), &a);
        let view = cache.view(ALICE, None, Utc::now());
        let second = chrono::Duration::seconds(1);
        // Outside it, no position, and the reason says one is known
        // (Decision 10), without counting as a cache miss to fetch again.
        let not_fresh = |at| match view.position(ALICE, at) {
            Lookup::Unavailable(reason) => reason.contains("does not cover the request time"),
            _ => false,
        };
        assert!(not_fresh(measured - second));
        assert!(matches!(view.position(ALICE, measured), Lookup::Found(_)));
        assert!(matches!(
            view.position(ALICE, until - second),
            Lookup::Found(_)
        ));
        assert!(not_fresh(until));
        assert!(!view.missed());
    }

    /// Decision 10 (expired data is no data), as for roles (TS-0003 7.4.3
    /// step 4): a fix that has gone stale at the PDP's clock is no position,
    /// even for a request stamped while it was fresh (a queued or backdated
    /// `rtm` must not revive it).
    #[tokio::test]
    async fn a_stale_fix_is_not_revived_by_an_earlier_request_time() {
        let cache = cache();
        cache.apply(&reset(1));
        let now = Utc::now();
        let measured = now - chrono::Duration::seconds(400);
        let until = now - chrono::Duration::seconds(100);
        let a = fix_answer(measured, until);
        let stamped = now - chrono::Duration::seconds(350);
        cache.store(&request(stamped), &a);
        // Viewed while the fix was fresh, the stamped time has it...
        let then = cache.view(ALICE, None, stamped);
        assert!(matches!(then.position(ALICE, stamped), Lookup::Found(_)));
        // ...at the PDP's clock now, it is stale whatever the request says.
        let view = cache.view(ALICE, None, now);
        match view.position(ALICE, stamped) {
            Lookup::Unavailable(reason) => assert!(reason.contains("went stale"), "{reason}"),
            other => panic!("a stale fix revived: {other:?}"),
        }
        assert!(!view.missed());
    }
}
