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
//! positions changes (everything on `reset`). Answers are cached only while
//! that stream is up, and never when they are older than a change already
//! seen for the same originator, so the cache cannot hold a value the PIP
//! has since changed. Role validity and position freshness are judged
//! locally against the request time, so an expired role or a stale
//! position stops matching without a round trip.
//!
//! When the PIP cannot answer, the rules that need the attribute do not
//! match (TS-0003 7.1.4: indeterminate is Deny) and the decision's status is
//! `MISSING_ATTRIBUTE`, naming the attribute and the reason.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use authz_core::attributes::{AttributeSource, Lookup};
use authz_core::request::Position;
use authz_proto::convert::{position_to_pb, timestamp_field, timestamp_to_pb};
use authz_proto::pb;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

/// Default deadline of a `ResolveAttributes` call on a cache miss.
pub const DEFAULT_FETCH_DEADLINE: Duration = Duration::from_millis(250);

/// Most IP addresses / positions whose countries are cached before the
/// cache of that kind is cleared (a bound on memory, not a policy).
const MAX_COUNTRY_ENTRIES: usize = 100_000;

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
    /// Sorted group IDs whose members include the originator.
    groups: Vec<String>,
    /// Position, the time it stops being fresh, and its countries.
    position: Option<(Position, DateTime<Utc>, Vec<String>)>,
}

/// A cache of PIP attributes, shared by every decision of a PDP.
pub struct PipCache {
    endpoint: String,
    client: PolicyInformationPointClient<Channel>,
    deadline: Duration,
    originators: DashMap<String, Arc<OriginatorEntry>>,
    /// Highest change revision seen per originator (cache insert guard).
    invalidated: DashMap<String, u64>,
    ip_countries: DashMap<IpAddr, Option<String>>,
    position_countries: DashMap<[u64; 3], Vec<String>>,
    /// Revision of the last `reset` (cache insert guard).
    reset_revision: AtomicU64,
    /// Revision of the last change seen on the watch.
    seen_revision: AtomicU64,
    watching: AtomicBool,
}

impl std::fmt::Debug for PipCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipCache")
            .field("endpoint", &self.endpoint)
            .field("deadline", &self.deadline)
            .field("originators", &self.originators.len())
            .field("watching", &self.watching.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why the PIP could not be asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipCacheError {
    /// The endpoint is not a valid URI.
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
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| PipCacheError::Endpoint(endpoint.to_owned(), e.to_string()))?
            .connect_timeout(deadline.max(Duration::from_millis(100)))
            .connect_lazy();
        Ok(Arc::new(Self {
            endpoint: endpoint.to_owned(),
            client: PolicyInformationPointClient::new(channel),
            deadline,
            originators: DashMap::new(),
            invalidated: DashMap::new(),
            ip_countries: DashMap::new(),
            position_countries: DashMap::new(),
            reset_revision: AtomicU64::new(0),
            seen_revision: AtomicU64::new(0),
            watching: AtomicBool::new(false),
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

    /// How many originators have cached attributes.
    pub fn len(&self) -> usize {
        self.originators.len()
    }

    /// True when no originator has cached attributes.
    pub fn is_empty(&self) -> bool {
        self.originators.is_empty()
    }

    /// A view answering for `originator` (absolute) from the cache; `failure`
    /// is the reason given for what the cache does not hold (after a failed
    /// fetch), else "not cached".
    pub fn view(&self, originator: &str, failure: Option<String>) -> CacheView<'_> {
        CacheView {
            cache: self,
            entry: self.originators.get(originator).map(|e| e.clone()),
            fetched: None,
            failure,
            missed: AtomicBool::new(false),
        }
    }

    /// A view answering from a fresh [`Fetched`] answer first (whether or
    /// not it could be cached), then from the cache.
    pub fn view_fetched<'c>(&'c self, fetched: &'c Fetched) -> CacheView<'c> {
        CacheView {
            cache: self,
            entry: Some(fetched.entry.clone()),
            fetched: Some(fetched),
            failure: None,
            missed: AtomicBool::new(false),
        }
    }

    fn clear(&self) {
        self.originators.clear();
        self.invalidated.clear();
        self.ip_countries.clear();
        self.position_countries.clear();
    }

    fn invalidate(&self, originator: &str, revision: u64) {
        self.originators.remove(originator);
        self.invalidated.insert(originator.to_owned(), revision);
    }

    /// Asks the PIP for everything `request` may need and caches the answer
    /// (when it is safe to). The request's `originator` must be absolute.
    pub async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched, String> {
        let req = pb::ResolveAttributesRequest {
            originator: request.originator.to_owned(),
            role_ids: request.role_ids.to_vec(),
            at: Some(timestamp_to_pb(&request.at)),
            originator_ip: request.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            position: request.position.as_ref().map(position_to_pb),
        };
        let mut call = tonic::Request::new(req);
        call.set_timeout(self.deadline);
        let mut client = self.client.clone();
        let answer =
            match tokio::time::timeout(self.deadline, client.resolve_attributes(call)).await {
                Ok(Ok(a)) => a.into_inner(),
                Ok(Err(status)) => {
                    crate::telemetry::record_pip_fetch("error");
                    return Err(format!(
                        "PIP {} unavailable: {} ({:?})",
                        self.endpoint,
                        status.message(),
                        status.code()
                    ));
                }
                Err(_) => {
                    crate::telemetry::record_pip_fetch("timeout");
                    return Err(format!(
                        "PIP {} did not answer within {} ms",
                        self.endpoint,
                        self.deadline.as_millis()
                    ));
                }
            };
        crate::telemetry::record_pip_fetch("ok");
        Ok(self.store(&request, &answer))
    }

    fn store(&self, request: &FetchRequest<'_>, a: &pb::ResolvedAttributes) -> Fetched {
        let fresh_enough = self.is_watching()
            && a.revision >= self.reset_revision.load(Ordering::Acquire)
            && self
                .invalidated
                .get(request.originator)
                .is_none_or(|r| a.revision >= *r);
        // Countries do not depend on the watched state (tables change only
        // with a reset), so they are cached whenever the watch is up.
        if self.is_watching() {
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
        let mut entry = self
            .originators
            .get(request.originator)
            .map(|e| (**e).clone())
            .unwrap_or_default();
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
            let until = timestamp_field(fix.fresh_until.as_ref()?, "fresh_until").ok()?;
            Some((
                Position {
                    lat: p.latitude,
                    lon: p.longitude,
                    uncertainty_m: p.uncertainty_m,
                },
                until,
                a.position_countries.clone(),
            ))
        });
        let entry = Arc::new(entry);
        if fresh_enough {
            self.originators
                .insert(request.originator.to_owned(), entry.clone());
        }
        // Not safe to keep otherwise, but this decision may use it.
        Fetched {
            entry,
            ip_country: request
                .ip
                .map(|ip| (ip, (!a.ip_country.is_empty()).then(|| a.ip_country.clone()))),
            position_countries: request
                .position
                .as_ref()
                .map(|p| (position_key(p), a.request_position_countries.clone())),
        }
    }

    /// Keeps the cache fresh from the PIP's `Watch` stream until the task is
    /// aborted, reconnecting with backoff. While the stream is down nothing
    /// is cached (every miss asks the PIP).
    pub async fn follow(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.watch_once().await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => tracing::debug!(pip = %self.endpoint, error = %e, "PIP watch failed"),
            }
            if self.watching.swap(false, Ordering::AcqRel) {
                tracing::warn!(pip = %self.endpoint, "PIP watch lost; attribute cache cleared");
            }
            self.clear();
            tokio::time::sleep(backoff).await;
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
            self.apply(&ev);
        }
        Ok(())
    }

    /// Applies one watch event (public for tests that feed events).
    pub fn apply(&self, ev: &pb::AttributeChange) {
        use pb::attribute_change::Change;
        self.seen_revision.fetch_max(ev.revision, Ordering::AcqRel);
        match &ev.change {
            Some(Change::Reset(_)) => {
                self.reset_revision.fetch_max(ev.revision, Ordering::AcqRel);
                self.clear();
                self.watching.store(true, Ordering::Release);
                tracing::info!(pip = %self.endpoint, revision = ev.revision, "PIP watch up; attribute cache reset");
            }
            Some(Change::Role(r)) => self.invalidate(&r.holder, ev.revision),
            Some(Change::Group(g)) => {
                for m in &g.affected_members {
                    self.invalidate(m, ev.revision);
                }
            }
            Some(Change::Position(p)) => self.invalidate(&p.subject, ev.revision),
            // Tokens are not cached here.
            Some(Change::Token(_)) | None => {}
        }
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
}

/// One `ResolveAttributes` answer, usable by the decision that asked for
/// it even when it could not be cached.
#[derive(Debug, Clone)]
pub struct Fetched {
    entry: Arc<OriginatorEntry>,
    ip_country: Option<(IpAddr, Option<String>)>,
    position_countries: Option<([u64; 3], Vec<String>)>,
}

/// An [`AttributeSource`] answering one decision from a [`PipCache`].
pub struct CacheView<'c> {
    cache: &'c PipCache,
    entry: Option<Arc<OriginatorEntry>>,
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

    fn entry_for(&self, originator: &str) -> Option<&OriginatorEntry> {
        // The view is built for one originator; the engine asks only about it.
        let _ = originator;
        self.entry.as_deref()
    }
}

impl AttributeSource for CacheView<'_> {
    fn role_verified(&self, originator: &str, role_id: &str, at: DateTime<Utc>) -> Lookup<bool> {
        match self
            .entry_for(originator)
            .and_then(|e| e.roles.get(role_id))
        {
            Some(RoleEntry::Held {
                not_before,
                not_after,
            }) => Lookup::Found(*not_before <= at && at <= *not_after),
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

    fn groups_containing(&self, originator: &str) -> Lookup<Vec<String>> {
        match self.entry_for(originator) {
            Some(e) => Lookup::Found(e.groups.clone()),
            None => self.miss(),
        }
    }

    fn position(&self, originator: &str, at: DateTime<Utc>) -> Lookup<Position> {
        match self.entry_for(originator) {
            Some(e) => match &e.position {
                Some((p, fresh_until, _)) if at < *fresh_until => Lookup::Found(*p),
                _ => Lookup::NotFound,
            },
            None => self.miss(),
        }
    }

    fn countries_of_position(&self, position: &Position) -> Lookup<Vec<String>> {
        if let Some(Some((p, _, countries))) = self.entry.as_deref().map(|e| &e.position)
            && position_key(p) == position_key(position)
        {
            return Lookup::Found(countries.clone());
        }
        if let Some((key, countries)) = self.fetched.and_then(|f| f.position_countries.as_ref())
            && *key == position_key(position)
        {
            return Lookup::Found(countries.clone());
        }
        match self.cache.position_countries.get(&position_key(position)) {
            Some(c) => Lookup::Found(c.clone()),
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
