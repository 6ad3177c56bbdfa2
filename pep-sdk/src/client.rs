//! [`PepClient`]: the PEP's connection to the PDP (TS-0003 6.2.2 step 003).
//!
//! - **Endpoints**: one or more PDP endpoints (`http://host:port`), each a
//!   lazily connected HTTP/2 channel. Decisions go round robin over the
//!   endpoints in service; one that gives no answer (unreachable, or the
//!   deadline passed) is set aside until a `Status` probe in the background
//!   answers ([`crate::FIRST_PROBE_AFTER`] later, then twice as long each
//!   time up to [`crate::LAST_PROBE_AFTER`]), so a frozen PDP costs the
//!   decision that found it, not half of all decisions. Clones of a client
//!   share the channels.
//! - **Deadline**: [`PepConfig::deadline`] bounds one decision *including
//!   its retries*; it is also sent to the PDP as the gRPC timeout.
//! - **Retries**: a call that gets no answer (UNAVAILABLE: connection
//!   refused or reset; CANCELLED by a PDP shutting down; a broken
//!   transport) is retried after an exponential backoff
//!   ([`RetryPolicy`], default 4 attempts from 10 ms) while the deadline
//!   allows; with several endpoints the retry goes to another in service.
//!   Other errors are not retried.
//! - **Failure mode**: a decision never fails. When the PDP gives no
//!   decision (unreachable, deadline exceeded, a full decision stream, an
//!   unexpected error), the verdict is a Deny with status PROCESSING_ERROR,
//!   source [`DecisionSource::FailClosed`] and the summary
//!   `DENY (fail-closed): PDP unreachable: <reason>`, unless the request
//!   matches an entry of the explicit fail-open list ([`FailOpenRule`], by
//!   operation and target prefix), which makes it a Permit with source
//!   [`DecisionSource::FailOpen`] and the summary
//!   `PERMIT (fail-open rule for '<prefix>*'): PDP unreachable: <reason>`.
//!   To tell such a verdict from the PDP's, test [`Verdict::source`]: the
//!   summary is text for people and logs. A request the PDP rejects as
//!   malformed (INVALID_ARGUMENT) is a Deny with status SYNTAX_ERROR, which
//!   [`crate::Enforcement`] answers with 4000.
//! - **Cache**: see [`crate::cache`]; off unless [`PepConfig::cache`] is set.
//! - **Forms**: [`PepClient::decide`] (unary `Decide`),
//!   [`PepClient::decide_batch`] (`DecideBatch`, answers in request order)
//!   and [`PepClient::stream`] (a kept-open `DecideStream`, reopened when it
//!   breaks; see [`DecisionStream`] for how it keeps one slow request from
//!   holding up the others and how it is bounded).
//!
//! Every request is stamped with the request time when it has none, so the
//! decision (and the cache key) uses the time the CSE asked, not the time the
//! PDP received it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authz_proto::pb;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;

use crate::cache::{CacheConfig, DecisionCache};
use crate::endpoints::{Client, Endpoints};
use crate::error::PepError;
use crate::response::{DenyDetail, Enforcement};

/// How UNAVAILABLE calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
        }
    }
}

/// A class of requests permitted when the PDP gives no decision (explicit
/// opt-in; everything else fails closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailOpenRule {
    /// Operations the rule covers; empty means every operation.
    pub operations: Vec<pb::Operation>,
    /// The rule covers targets (the decision request's `target`) starting
    /// with this prefix; empty means every target.
    pub target_prefix: String,
}

impl FailOpenRule {
    /// A rule covering `operations` (empty: all) on targets starting with
    /// `target_prefix`.
    pub fn new(operations: Vec<pb::Operation>, target_prefix: impl Into<String>) -> Self {
        Self {
            operations,
            target_prefix: target_prefix.into(),
        }
    }

    /// Whether the rule covers `req`.
    pub fn covers(&self, req: &pb::DecisionRequest) -> bool {
        (self.operations.is_empty() || self.operations.iter().any(|o| *o as i32 == req.operation))
            && req.target.starts_with(&self.target_prefix)
    }
}

/// Default of [`PepConfig::stream_capacity`].
pub const DEFAULT_STREAM_CAPACITY: usize = 1024;

/// The longest [`PepConfig::deadline`] accepted. Far above any useful
/// decision deadline, and low enough that the deadline's arithmetic and the
/// gRPC timeout header it becomes cannot overflow (tonic panics on a timeout
/// it cannot encode).
pub const MAX_DEADLINE: Duration = Duration::from_secs(3600);

/// The longest [`PepConfig::revision_poll`] accepted: a longer period could
/// overflow the poller's timer, and is no use against a cache whose entries
/// live seconds.
pub const MAX_REVISION_POLL: Duration = Duration::from_secs(86_400);

/// The longest [`CacheConfig::ttl`] accepted: a cached decision answers for
/// that long after a `<group>` or role changes at the PIP, and a longer
/// one could overflow the clock arithmetic of an entry's expiry.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(86_400);

/// Default [`PepConfig::keepalive`]: a connection that stopped answering
/// is dropped within about twice this.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(5);

/// Configuration of a [`PepClient`].
#[derive(Debug, Clone)]
pub struct PepConfig {
    /// PDP endpoints (`http://host:port`, or `https://host:port` for TLS
    /// with the PDP's certificate verified); several are load-balanced.
    pub endpoints: Vec<String>,
    /// Time budget of one decision, retries included.
    pub deadline: Duration,
    /// Timeout of establishing a connection to one endpoint.
    pub connect_timeout: Duration,
    /// HTTP/2 keepalive: a PING this often on every connection (also while
    /// idle), and the connection dropped when one is not answered within
    /// as long again, so that a connection that died without a word (a
    /// crashed host, a partition, a load balancer that forgot it, a frozen
    /// PDP) is dialled anew instead of failing every decision closed until
    /// TCP gives up. `None` sends no PING.
    pub keepalive: Option<Duration>,
    /// Retries of UNAVAILABLE calls.
    pub retry: RetryPolicy,
    /// Requests permitted when the PDP gives no decision; empty (the
    /// default) fails closed for everything.
    pub fail_open: Vec<FailOpenRule>,
    /// The decision cache; `None` (the default) caches nothing.
    pub cache: Option<CacheConfig>,
    /// With a cache: ask the PDP for its replica revision this often, so a
    /// policy change drops the cache even when no uncached decision reports
    /// it. `None` learns revisions from decisions only.
    pub revision_poll: Option<Duration>,
    /// Requests one [`DecisionStream`] holds awaiting their answers at most
    /// (default [`DEFAULT_STREAM_CAPACITY`]). A decision beyond it fails
    /// closed at once instead of queueing, so a PDP slower than the
    /// requests arriving cannot make the backlog, and the memory it takes,
    /// grow without end.
    pub stream_capacity: usize,
    /// CA certificates (a PEM bundle, such as a private CA's) trusted for
    /// `https://` endpoints besides the webpki roots (the public CAs);
    /// `None` (the default): the webpki roots only.
    pub tls_ca: Option<Vec<u8>>,
    /// The client certificate presented to `https://` PDPs that require
    /// one (mutual TLS, `authz pdp --tls-client-ca`); `None` (the default):
    /// none. See [`PepConfig::with_tls_identity`].
    pub tls_identity: Option<TlsIdentity>,
}

/// A client certificate chain and its private key, PEM
/// ([`PepConfig::with_tls_identity`]). Its `Debug` shows only sizes: a
/// certificate file may hold the key too.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate chain, the client's certificate first, then any
    /// intermediates.
    pub cert_pem: Vec<u8>,
    /// The private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem_bytes", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

impl PepConfig {
    /// Defaults for `endpoints`: a 500 ms deadline, 250 ms connect timeout,
    /// keepalive every [`DEFAULT_KEEPALIVE`], 4 attempts, fail-closed, no
    /// cache.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            deadline: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(250),
            keepalive: Some(DEFAULT_KEEPALIVE),
            retry: RetryPolicy::default(),
            fail_open: Vec::new(),
            cache: None,
            revision_poll: None,
            stream_capacity: DEFAULT_STREAM_CAPACITY,
            tls_ca: None,
            tls_identity: None,
        }
    }

    /// Trusts the CA certificates of the PEM bundle `pem` for `https://`
    /// endpoints, besides the webpki roots.
    pub fn with_tls_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca = Some(pem.into());
        self
    }

    /// Presents the client certificate chain `cert_pem` (PEM, the client's
    /// certificate first, then any intermediates) with its private key
    /// `key_pem` (PEM: PKCS#8, PKCS#1 or SEC1) to `https://` PDPs that
    /// require client certificates (mutual TLS). The key must belong to the
    /// first certificate; [`PepConfig::validate`] checks both. A PDP that
    /// refuses the certificate gives no decision: the request fails closed
    /// (or open, for a fail-open rule).
    pub fn with_tls_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_identity = Some(TlsIdentity {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        });
        self
    }

    /// What `https://` endpoints are verified against, and the client
    /// certificate presented to them.
    fn client_tls(&self) -> Result<authz_proto::tls::ClientTls, PepError> {
        let mut tls = authz_proto::tls::ClientTls::default();
        if let Some(pem) = &self.tls_ca {
            tls = tls.with_ca_pem(pem).map_err(|e| PepError::Config {
                setting: "tls_ca",
                reason: e.to_string(),
            })?;
        }
        if let Some(id) = &self.tls_identity {
            tls = tls
                .with_identity_pem(&id.cert_pem, &id.key_pem)
                .map_err(|e| PepError::Config {
                    setting: match e {
                        authz_proto::tls::TlsError::Certificate(_) => "tls_identity.cert_pem",
                        authz_proto::tls::TlsError::Key(_) => "tls_identity.key_pem",
                    },
                    reason: e.to_string(),
                })?;
        }
        Ok(tls)
    }

    /// Sets the deadline of one decision.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Turns the decision cache on.
    pub fn with_cache(mut self, cache: CacheConfig) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Adds a fail-open rule.
    pub fn with_fail_open(mut self, rule: FailOpenRule) -> Self {
        self.fail_open.push(rule);
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets how many requests one [`DecisionStream`] holds awaiting their
    /// answers at most.
    pub fn with_stream_capacity(mut self, capacity: usize) -> Self {
        self.stream_capacity = capacity;
        self
    }

    /// Checks the settings that would otherwise fail without an error later
    /// (a panic in the spawned revision poller stops cache invalidation
    /// silently; an unrepresentable deadline panics in a decision):
    /// `deadline` between 1 ns and [`MAX_DEADLINE`], `connect_timeout` and
    /// `keepalive` (when set) above zero, `retry.max_attempts` at least 1, `revision_poll` between 1 ns
    /// and [`MAX_REVISION_POLL`], `cache.ttl` (with a cache) between 1 ns
    /// and [`MAX_CACHE_TTL`], `stream_capacity` between 1 and
    /// [`tokio::sync::Semaphore::MAX_PERMITS`], `tls_ca` (when set) PEM
    /// with at least one certificate, each valid, `tls_identity` (when set)
    /// a PEM certificate chain and a PEM key that belongs to its first
    /// certificate. [`PepClient::new`] and
    /// [`PepClient::with_channel`] call it; the error names the setting.
    pub fn validate(&self) -> Result<(), PepError> {
        let invalid =
            |setting: &'static str, reason: String| Err(PepError::Config { setting, reason });
        if self.deadline.is_zero() {
            return invalid("deadline", "must be longer than zero".into());
        }
        if self.deadline > MAX_DEADLINE {
            return invalid(
                "deadline",
                format!(
                    "{:?} is longer than the maximum of {MAX_DEADLINE:?}",
                    self.deadline
                ),
            );
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout", "must be longer than zero".into());
        }
        if self.keepalive.is_some_and(|k| k.is_zero()) {
            return invalid(
                "keepalive",
                "must be longer than zero (None sends no PING)".into(),
            );
        }
        if self.retry.max_attempts == 0 {
            return invalid(
                "retry.max_attempts",
                "must be at least 1 (the first attempt counts)".into(),
            );
        }
        match self.revision_poll {
            Some(every) if every.is_zero() => {
                return invalid(
                    "revision_poll",
                    "must be longer than zero (None turns polling off)".into(),
                );
            }
            Some(every) if every > MAX_REVISION_POLL => {
                return invalid(
                    "revision_poll",
                    format!("{every:?} is longer than the maximum of {MAX_REVISION_POLL:?}"),
                );
            }
            _ => {}
        }
        if let Some(cache) = &self.cache {
            if cache.ttl.is_zero() {
                return invalid(
                    "cache.ttl",
                    "must be longer than zero (cache None caches nothing)".into(),
                );
            }
            if cache.ttl > MAX_CACHE_TTL {
                return invalid(
                    "cache.ttl",
                    format!(
                        "{:?} is longer than the maximum of {MAX_CACHE_TTL:?}",
                        cache.ttl
                    ),
                );
            }
        }
        // The stream's send queue is a Tokio channel of this size, which
        // panics on 0 and above MAX_PERMITS.
        if self.stream_capacity == 0 || self.stream_capacity > tokio::sync::Semaphore::MAX_PERMITS {
            return invalid(
                "stream_capacity",
                format!(
                    "{} is not between 1 and {}",
                    self.stream_capacity,
                    tokio::sync::Semaphore::MAX_PERMITS
                ),
            );
        }
        self.client_tls()?;
        Ok(())
    }
}

/// Where a verdict came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionSource {
    /// The PDP decided it.
    Pdp,
    /// The decision cache answered (a PDP decision made earlier).
    Cache,
    /// The PDP gave no decision the PEP may enforce; denied (fail-closed),
    /// and never cached. Three cases, told apart by the summary:
    /// - no answer: status PROCESSING_ERROR, summary
    ///   `DENY (fail-closed): PDP unreachable: <reason>`;
    /// - a PERMIT without status OK (no final result, TS-0003 7.1.4): the
    ///   PDP's status (PROCESSING_ERROR if it gave none), summary
    ///   `DENY (fail-closed): the PDP answered PERMIT with status <n>, ...`;
    /// - a PERMIT of an `updates_acpi` request by a PDP older than that
    ///   field (it judged `pv`, not `pvs`): status PROCESSING_ERROR, summary
    ///   `DENY (fail-closed): the PDP did not judge the request as an acpi
    ///   change ...`.
    FailClosed,
    /// The PDP gave no decision; permitted by a fail-open rule. The
    /// decision's status is PROCESSING_ERROR and its summary
    /// `PERMIT (fail-open rule for '<prefix>*'): PDP unreachable: <reason>`.
    FailOpen,
}

/// A decision and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The decision (for a fail-closed or fail-open verdict, synthesized by
    /// the PEP with a summary naming the reason).
    pub decision: pb::Decision,
    /// Where it came from.
    pub source: DecisionSource,
}

impl Verdict {
    /// Whether access is granted.
    pub fn is_permit(&self) -> bool {
        self.decision.decision == pb::AuthorizationDecision::Permit as i32
    }

    /// What the CSE does with the request ([`Enforcement::of`]).
    pub fn enforcement(&self, detail: DenyDetail) -> Enforcement {
        Enforcement::of(self, detail)
    }
}

/// Why a call produced no decision.
#[derive(Debug)]
enum CallFailure {
    /// INVALID_ARGUMENT: the request is malformed.
    Invalid(String),
    /// No answer: unreachable, deadline exceeded, or another error.
    NoAnswer(String),
}

struct Inner {
    endpoints: Arc<Endpoints>,
    config: PepConfig,
    cache: Option<Arc<DecisionCache>>,
    poller: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(p) = &self.poller {
            p.abort();
        }
    }
}

/// A client of one or more PDPs. Cheap to clone; clones share the channel
/// and the cache.
#[derive(Clone)]
pub struct PepClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PepClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PepClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl PepClient {
    /// A client for `config.endpoints`. Connects lazily (the first decision
    /// connects), so a PDP that is down at start is not an error. Must run
    /// inside a Tokio runtime. Fails on an endpoint that is not an
    /// `http://` or `https://` URI with a host, on no endpoint, and on a
    /// setting [`PepConfig::validate`] rejects.
    pub fn new(config: PepConfig) -> Result<Self, PepError> {
        config.validate()?;
        let tls = config.client_tls()?;
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for e in &config.endpoints {
            // Every call to an endpoint that is no http(s) URL with a host
            // would fail closed; a start-up error says it better.
            let endpoint = authz_proto::endpoint::endpoint_with(e, &tls)
                .map_err(|err| PepError::Endpoint {
                    endpoint: e.clone(),
                    reason: err.to_string(),
                })?
                .connect_timeout(config.connect_timeout)
                .tcp_nodelay(true);
            let endpoint = match config.keepalive {
                Some(every) => endpoint
                    .http2_keep_alive_interval(every)
                    .keep_alive_timeout(every)
                    .keep_alive_while_idle(true),
                None => endpoint,
            };
            endpoints.push(endpoint);
        }
        if endpoints.is_empty() {
            return Err(PepError::NoEndpoint);
        }
        // A lazy channel per endpoint, not one balanced channel: a refused
        // connection is UNAVAILABLE at once, and the client itself sets
        // aside an endpoint that stops answering (`endpoints`).
        let clients = endpoints
            .into_iter()
            .map(|e| PolicyDecisionPointClient::new(e.connect_lazy()))
            .collect();
        Self::with_clients(clients, config)
    }

    /// A client over an existing channel (for example one with TLS). The
    /// channel is used as it was built: the settings that shape a channel,
    /// `config.endpoints`, `connect_timeout`, `keepalive`, `tls_ca` and
    /// the TLS identity, are not applied to it (build them into the
    /// channel); the others (deadline, retries, cache, fail-open rules,
    /// revision polling) are. Fails on a setting [`PepConfig::validate`]
    /// rejects, the unused ones included.
    pub fn with_channel(channel: Channel, config: PepConfig) -> Result<Self, PepError> {
        Self::with_clients(vec![PolicyDecisionPointClient::new(channel)], config)
    }

    /// A client over one client per endpoint.
    fn with_clients(clients: Vec<Client>, config: PepConfig) -> Result<Self, PepError> {
        config.validate()?;
        let endpoints = Arc::new(Endpoints::new(clients, config.deadline));
        let cache = config.cache.map(|c| Arc::new(DecisionCache::new(c)));
        let poller = match (&cache, config.revision_poll) {
            (Some(cache), Some(every)) => {
                let cache = cache.clone();
                let endpoints = endpoints.clone();
                let deadline = config.deadline;
                Some(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        let (_, mut client) = endpoints.pick();
                        let mut req = tonic::Request::new(pb::StatusRequest {});
                        req.set_timeout(deadline);
                        if let Ok(Ok(s)) = tokio::time::timeout(deadline, client.status(req)).await
                        {
                            {
                                let s = s.into_inner();
                                cache.observe_revision(&s.policy_store, s.replica_revision);
                            }
                        }
                    }
                }))
            }
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                endpoints,
                config,
                cache,
                poller,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PepConfig {
        &self.inner.config
    }

    /// Number of entries in the decision cache (0 without a cache).
    pub fn cache_len(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, |c| c.len())
    }

    /// Decides one request (unary `Decide`, or the cache).
    pub async fn decide(&self, mut req: pb::DecisionRequest) -> Verdict {
        stamp(&mut req);
        let key = self.cached(&req);
        if let Some(Ok(hit)) = &key {
            return hit.clone();
        }
        let result = self
            .with_retries(|mut client, remaining| {
                let mut call = tonic::Request::new(req.clone());
                call.set_timeout(remaining);
                async move { client.decide(call).await.map(|r| r.into_inner()) }
            })
            .await
            .and_then(|d| answer_to(&req.request_id, &req.request_id, d));
        self.settle(&req, key.and_then(Result::err), result)
    }

    /// Decides many requests in one `DecideBatch` call (answers in request
    /// order; cached ones are answered from the cache and not sent). A
    /// request the PDP finds malformed gets a SYNTAX_ERROR Deny; when the
    /// call gets no answer, each request is judged by the failure mode.
    pub async fn decide_batch(&self, reqs: Vec<pb::DecisionRequest>) -> Vec<Verdict> {
        let mut out: Vec<Option<Verdict>> = vec![None; reqs.len()];
        let mut misses: Vec<(usize, pb::DecisionRequest, Option<Vec<u8>>)> = Vec::new();
        for (i, mut req) in reqs.into_iter().enumerate() {
            stamp(&mut req);
            match self.cached(&req) {
                Some(Ok(hit)) => out[i] = Some(hit),
                Some(Err(key)) => misses.push((i, req, Some(key))),
                None => misses.push((i, req, None)),
            }
        }
        if !misses.is_empty() {
            // Numbered like the stream's requests: answers are matched by
            // the `request_id` they echo, not by their place alone, so a
            // PDP that answers out of order cannot hand one resource's
            // Permit to another, even when callers' `rqi`s repeat.
            let batch = pb::DecideBatchRequest {
                requests: misses
                    .iter()
                    .enumerate()
                    .map(|(n, (_, r, _))| pb::DecisionRequest {
                        request_id: stream_request_id(n as u64, &r.request_id),
                        ..r.clone()
                    })
                    .collect(),
            };
            let result = self
                .with_retries(|mut client, remaining| {
                    let mut call = tonic::Request::new(batch.clone());
                    call.set_timeout(remaining);
                    async move { client.decide_batch(call).await.map(|r| r.into_inner()) }
                })
                .await;
            let decisions = match result {
                Ok(r) if r.decisions.len() == misses.len() => r
                    .decisions
                    .into_iter()
                    .zip(&misses)
                    .enumerate()
                    .map(|(n, (d, (_, req, _)))| {
                        let sent = stream_request_id(n as u64, &req.request_id);
                        answer_to(&sent, &req.request_id, d)
                    })
                    .collect::<Vec<_>>(),
                Ok(r) => {
                    let why = format!(
                        "the PDP answered {} decisions for {} requests",
                        r.decisions.len(),
                        misses.len()
                    );
                    misses
                        .iter()
                        .map(|_| Err(CallFailure::NoAnswer(why.clone())))
                        .collect()
                }
                Err(CallFailure::Invalid(m)) => misses
                    .iter()
                    .map(|_| Err(CallFailure::Invalid(m.clone())))
                    .collect(),
                Err(CallFailure::NoAnswer(m)) => misses
                    .iter()
                    .map(|_| Err(CallFailure::NoAnswer(m.clone())))
                    .collect(),
            };
            for ((i, req, key), d) in misses.into_iter().zip(decisions) {
                out[i] = Some(self.settle(&req, key, d));
            }
        }
        out.into_iter()
            .map(|v| v.unwrap_or_else(|| fail_closed_decision("no decision", "")))
            .collect()
    }

    /// A kept-open `DecideStream` for deciding many requests, concurrently
    /// or one after another, over a single HTTP/2 stream.
    pub fn stream(&self) -> DecisionStream {
        DecisionStream {
            client: self.clone(),
            state: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The PDP's replica status (`Status`), with the same deadline and
    /// retries as a decision.
    pub async fn status(&self) -> Result<pb::StatusResponse, PepError> {
        let result = self
            .with_retries(|mut client, remaining| {
                let mut call = tonic::Request::new(pb::StatusRequest {});
                call.set_timeout(remaining);
                async move { client.status(call).await.map(|r| r.into_inner()) }
            })
            .await;
        match result {
            Ok(s) => {
                if let Some(c) = &self.inner.cache {
                    c.observe_revision(&s.policy_store, s.replica_revision);
                }
                Ok(s)
            }
            Err(CallFailure::Invalid(m)) => Err(PepError::Pdp(m)),
            Err(CallFailure::NoAnswer(m)) => Err(PepError::Unreachable(m)),
        }
    }

    /// Waits until the PDP decides with the PRP write whose answer named
    /// `version` (its `version` field), polling `Status`; returns the
    /// revision seen. The PDP must follow that store (`policy_store`) and
    /// hold that revision with the same tag, or a later one: revision
    /// numbers alone mislead when the PDP still holds a PRP's earlier store
    /// (one restarted on a fresh store, or restored from a backup, counts
    /// anew). A `version` without a store ID (a PRP of an earlier version)
    /// is waited for by revision only. Fails when `timeout` passes first.
    ///
    /// One case stays open: after a restore, a PDP that still holds a
    /// *later* revision of the lost history than `version` counts as there
    /// until it reconnects (within seconds, when the PRP's tags send it a
    /// snapshot); tags are compared only at equal revisions.
    pub async fn wait_for_version(
        &self,
        version: &pb::StoreVersion,
        timeout: Duration,
    ) -> Result<u64, PepError> {
        let reached = |s: &pb::StatusResponse| {
            if version.store_id.is_empty() {
                return s.replica_revision >= version.revision;
            }
            s.policy_store == version.store_id
                && (s.replica_revision > version.revision
                    || (s.replica_revision == version.revision
                        && (version.tag == 0
                            || s.replica_tag == 0
                            || s.replica_tag == version.tag)))
        };
        self.wait_for_status(reached, timeout, || {
            format!(
                "revision {} of store {}",
                version.revision, version.store_id
            )
        })
        .await
    }

    /// Polls `Status` until `reached`; the revision seen.
    async fn wait_for_status(
        &self,
        reached: impl Fn(&pb::StatusResponse) -> bool,
        timeout: Duration,
        wanted: impl Fn() -> String,
    ) -> Result<u64, PepError> {
        // A timeout too long to represent is no timeout.
        let until = Instant::now().checked_add(timeout);
        loop {
            // Whether the last call was answered: a PDP that answers but
            // lags is `Behind`, one that does not answer `Unreachable`.
            let (answered, last) = match self.status().await {
                Ok(s) if reached(&s) => return Ok(s.replica_revision),
                Ok(s) => (
                    true,
                    format!(
                        "replica at revision {} of store {}",
                        s.replica_revision, s.policy_store
                    ),
                ),
                Err(e) => (false, e.to_string()),
            };
            if until.is_some_and(|until| Instant::now() >= until) {
                let why = format!(
                    "the PDP did not reach {} within {timeout:?} ({last})",
                    wanted()
                );
                return Err(if answered {
                    PepError::Behind(why)
                } else {
                    PepError::Unreachable(why)
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the PDP's replica has reached `revision`, polling
    /// `Status`; returns the revision seen. Fails when `timeout` passes
    /// first. The number alone: after a PRP write prefer
    /// [`PepClient::wait_for_version`] with the version its answer names,
    /// which also tells one store's revision from another's.
    pub async fn wait_for_revision(
        &self,
        revision: u64,
        timeout: Duration,
    ) -> Result<u64, PepError> {
        self.wait_for_status(
            |s| s.replica_revision >= revision,
            timeout,
            || format!("revision {revision}"),
        )
        .await
    }

    /// `Some(Ok(hit))` on a cache hit, `Some(Err(key))` on a miss of a
    /// cacheable request, `None` without a cache or for an uncacheable one.
    fn cached(&self, req: &pb::DecisionRequest) -> Option<Result<Verdict, Vec<u8>>> {
        let cache = self.inner.cache.as_ref()?;
        let now = Utc::now();
        let key = DecisionCache::key(req, now)?;
        let at = req
            .request_time
            .as_ref()
            .and_then(|t| authz_proto::convert::timestamp_field(t, "request_time").ok())
            .unwrap_or(now);
        Some(match cache.get(&key, at) {
            Some(mut decision) => {
                decision.request_id = req.request_id.clone();
                Ok(Verdict {
                    decision,
                    source: DecisionSource::Cache,
                })
            }
            None => Err(key),
        })
    }

    /// Turns a call's result into a verdict, feeding the cache.
    fn settle(
        &self,
        req: &pb::DecisionRequest,
        key: Option<Vec<u8>>,
        result: Result<pb::Decision, CallFailure>,
    ) -> Verdict {
        match result {
            // A PDP that predates `updates_acpi` judged an acpi change by
            // `pv` (TS-0001 9.6.1.3.2 wants `pvs`): its Permit is no answer.
            Ok(decision)
                if req.updates_acpi
                    && decision.decision == pb::AuthorizationDecision::Permit as i32
                    && !decision.judged_acpi_change =>
            {
                tracing::warn!(target = %req.target, "the PDP ignores updates_acpi (older than the field); failing closed");
                Verdict {
                    decision: pb::Decision {
                        decision: pb::AuthorizationDecision::Deny as i32,
                        status: pb::AuthorizationStatus::ProcessingError as i32,
                        summary: "DENY (fail-closed): the PDP did not judge the request as an \
                                  acpi change (it is older than updates_acpi; upgrade it)"
                            .to_owned(),
                        request_id: req.request_id.clone(),
                        ..Default::default()
                    },
                    source: DecisionSource::FailClosed,
                }
            }
            // A Permit is final only with status OK (TS-0003 7.1.4: a
            // decision that reached no final result is a Deny; Decision 10).
            Ok(decision)
                if decision.decision == pb::AuthorizationDecision::Permit as i32
                    && decision.status != pb::AuthorizationStatus::Ok as i32 =>
            {
                let status = pb::AuthorizationStatus::try_from(decision.status)
                    .ok()
                    .filter(|s| *s != pb::AuthorizationStatus::Unspecified)
                    .unwrap_or(pb::AuthorizationStatus::ProcessingError);
                tracing::warn!(target = %req.target, status = decision.status, "the PDP answered PERMIT without status OK; failing closed");
                Verdict {
                    decision: pb::Decision {
                        decision: pb::AuthorizationDecision::Deny as i32,
                        status: status as i32,
                        summary: format!(
                            "DENY (fail-closed): the PDP answered PERMIT with status {}, which is \
                             no final result",
                            decision.status
                        ),
                        request_id: req.request_id.clone(),
                        ..Default::default()
                    },
                    source: DecisionSource::FailClosed,
                }
            }
            Ok(decision) => {
                if let Some(cache) = &self.inner.cache {
                    match key {
                        Some(key) => cache.insert(key, &decision),
                        None => {
                            cache.observe_revision(&decision.policy_store, decision.policy_revision)
                        }
                    }
                }
                Verdict {
                    decision,
                    source: DecisionSource::Pdp,
                }
            }
            Err(CallFailure::Invalid(message)) => Verdict {
                decision: pb::Decision {
                    decision: pb::AuthorizationDecision::Deny as i32,
                    status: pb::AuthorizationStatus::SyntaxError as i32,
                    summary: format!("DENY (syntax error): {message}"),
                    request_id: req.request_id.clone(),
                    ..Default::default()
                },
                source: DecisionSource::Pdp,
            },
            Err(CallFailure::NoAnswer(reason)) => {
                match self.inner.config.fail_open.iter().find(|r| r.covers(req)) {
                    Some(rule) => {
                        tracing::warn!(%reason, target = %req.target, "PDP unreachable; fail-open rule permits");
                        Verdict {
                            decision: pb::Decision {
                                decision: pb::AuthorizationDecision::Permit as i32,
                                status: pb::AuthorizationStatus::ProcessingError as i32,
                                summary: format!(
                                    "PERMIT (fail-open rule for '{}*'): PDP unreachable: {reason}",
                                    rule.target_prefix
                                ),
                                request_id: req.request_id.clone(),
                                ..Default::default()
                            },
                            source: DecisionSource::FailOpen,
                        }
                    }
                    None => {
                        tracing::warn!(%reason, target = %req.target, "PDP unreachable; denied (fail-closed)");
                        fail_closed_decision(&reason, &req.request_id)
                    }
                }
            }
        }
    }

    /// Runs `call` (given a client of the endpoint [`Endpoints::pick`]
    /// chose for the attempt, and the remaining time) until it succeeds,
    /// fails with something other than UNAVAILABLE, runs out of attempts, or
    /// the deadline passes. An endpoint that gives no answer is set aside
    /// (a retry goes to another), one that answers is in service.
    async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, CallFailure>
    where
        F: FnMut(Client, Duration) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let endpoints = &self.inner.endpoints;
        self.retry_loop(|remaining| {
            let (slot, client) = endpoints.pick();
            (Some(slot), call(client, remaining))
        })
        .await
    }

    /// [`Self::with_retries`] for calls that choose their endpoint
    /// themselves (`None`: not reported on any).
    async fn retry_loop<T, F, Fut>(&self, mut call: F) -> Result<T, CallFailure>
    where
        F: FnMut(Duration) -> (Option<usize>, Fut),
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let config = &self.inner.config;
        let endpoints = &self.inner.endpoints;
        let missed = |slot: Option<usize>| slot.into_iter().for_each(|i| endpoints.missed(i));
        // PepConfig::validate bounds the deadline; checked all the same, as
        // an overflow here would panic in the middle of a decision.
        let Some(deadline) = Instant::now().checked_add(config.deadline) else {
            return Err(CallFailure::NoAnswer(format!(
                "the deadline of {:?} cannot be represented",
                config.deadline
            )));
        };
        let mut backoff = config.retry.initial_backoff;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(CallFailure::NoAnswer(deadline_text(config, attempt - 1)));
            }
            let (slot, attempted) = call(remaining);
            let status = match tokio::time::timeout(remaining, attempted).await {
                Ok(Ok(v)) => {
                    slot.into_iter().for_each(|i| endpoints.answered(i));
                    return Ok(v);
                }
                Ok(Err(status)) => status,
                Err(_) => {
                    missed(slot);
                    return Err(CallFailure::NoAnswer(deadline_text(config, attempt)));
                }
            };
            // The call's own timer (`set_timeout`, which tonic reports as
            // CANCELLED "Timeout expired", or a transport error cut off at
            // the deadline) or the PDP's, near the deadline: the deadline
            // ran out, which is what the caller set. A DEADLINE_EXCEEDED
            // well before it is the PDP's answer (its own wait ran out),
            // not a PDP that kept silent. Any other transport failure (a
            // refused or reset connection, one a PDP shutting down
            // cancels) is a call that got no answer: retried, elsewhere
            // when it can be.
            let near_deadline = deadline.saturating_duration_since(Instant::now()) < DEADLINE_SLACK;
            let timed_out =
                near_deadline && (status.code() == Code::DeadlineExceeded || no_answer(&status));
            let lost = !timed_out && no_answer(&status);
            if timed_out || lost {
                missed(slot);
            } else {
                slot.into_iter().for_each(|i| endpoints.answered(i));
            }
            match status.code() {
                Code::InvalidArgument => return Err(CallFailure::Invalid(invalid_text(&status))),
                _ if timed_out => {
                    return Err(CallFailure::NoAnswer(deadline_text(config, attempt)));
                }
                _ if lost && attempt < config.retry.max_attempts => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left <= backoff {
                        return Err(CallFailure::NoAnswer(unanswered_text(&status, attempt)));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(config.retry.max_backoff);
                }
                _ if lost => {
                    return Err(CallFailure::NoAnswer(unanswered_text(&status, attempt)));
                }
                code => {
                    return Err(CallFailure::NoAnswer(format!(
                        "{code:?}: {}",
                        authz_proto::endpoint::status_message(&status)
                    )));
                }
            }
        }
    }
}

/// Whether `status` says the call got no answer from the PDP (a transport
/// failure), rather than being the PDP's answer: UNAVAILABLE, CANCELLED,
/// or the UNKNOWN / INTERNAL status tonic makes of a broken transport or
/// HTTP/2 stream (a PDP that answers INTERNAL itself says something else).
fn no_answer(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Cancelled => true,
        Code::Unknown | Code::Internal => {
            let m = status.message();
            m.starts_with("transport error") || m.starts_with("h2 protocol error")
        }
        _ => false,
    }
}

/// The reason of a call whose deadline ran out.
fn deadline_text(config: &PepConfig, attempts: u32) -> String {
    format!(
        "deadline of {} ms exceeded after {attempts} attempt(s)",
        config.deadline.as_millis()
    )
}

/// How close to the deadline a cancelled call counts as timed out: the
/// transport's timer and ours fire a hair apart.
const DEADLINE_SLACK: Duration = Duration::from_millis(5);

/// The reason of a call that got no answer ([`no_answer`]) on its last
/// attempt.
fn unanswered_text(status: &tonic::Status, attempts: u32) -> String {
    let code = match status.code() {
        Code::Unavailable => "UNAVAILABLE",
        Code::Cancelled => "CANCELLED",
        _ => "transport failure",
    };
    format!(
        "{code} after {attempts} attempt(s): {}",
        authz_proto::endpoint::status_message(status)
    )
}

/// The message of an INVALID_ARGUMENT status, with its field violations.
fn invalid_text(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        status.message().to_owned()
    } else {
        fields.join("; ")
    }
}

/// Fills an absent request time with now.
fn stamp(req: &mut pb::DecisionRequest) {
    if req.request_time.is_none() {
        req.request_time = Some(authz_proto::convert::timestamp_to_pb(&Utc::now()));
    }
}

fn fail_closed_decision(reason: &str, request_id: &str) -> Verdict {
    Verdict {
        decision: pb::Decision {
            decision: pb::AuthorizationDecision::Deny as i32,
            status: pb::AuthorizationStatus::ProcessingError as i32,
            summary: format!("DENY (fail-closed): PDP unreachable: {reason}"),
            request_id: request_id.to_owned(),
            ..Default::default()
        },
        source: DecisionSource::FailClosed,
    }
}

/// What a waiter of the stream receives.
type Answer = Result<pb::Decision, tonic::Status>;

/// The requests of one open stream awaiting their answers, by the number the
/// client gave each on the stream.
type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Answer>>>>;

fn lock_waiters(
    waiters: &Waiters,
) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
    // A panic while holding the lock leaves the map consistent (every
    // operation on it is a single insert or remove), so a poisoned lock is
    // still usable.
    waiters.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `request_id` a request carries on the stream or in a batch: its
/// number on the stream (its place in the batch), a colon, and the caller's
/// `rqi` (kept so the PDP still sees it).
fn stream_request_id(id: u64, rqi: &str) -> String {
    format!("{id}:{rqi}")
}

/// `decision` as the answer to the request sent with `request_id` `sent`,
/// given back the caller's `rqi`. The PDP echoes every request's
/// `request_id`: an answer that names another request answers nothing here
/// (a malformed answer fails closed; it is never taken for this request's).
fn answer_to(
    sent: &str,
    rqi: &str,
    mut decision: pb::Decision,
) -> Result<pb::Decision, CallFailure> {
    if decision.request_id != sent {
        let named: String = decision.request_id.chars().take(80).collect();
        return Err(CallFailure::NoAnswer(format!(
            "the PDP's answer names request_id {named:?}, not {sent:?}"
        )));
    }
    decision.request_id = rqi.to_owned();
    Ok(decision)
}

/// The number of the request a decision answers, from its echoed
/// `request_id` ([`stream_request_id`]).
fn answered_id(request_id: &str) -> Option<u64> {
    let (id, _) = request_id.split_once(':')?;
    id.parse().ok()
}

/// An open `DecideStream` call.
struct OpenStream {
    tx: mpsc::Sender<(u64, pb::DecisionRequest)>,
    waiters: Waiters,
    /// Whether it is alive, and when it last answered.
    health: Arc<StreamHealth>,
    /// The endpoint it goes to.
    slot: usize,
    /// The number of the next request on this stream.
    next_id: u64,
    reader: JoinHandle<()>,
}

/// Whether a decision stream is alive, and when it last answered.
struct StreamHealth {
    alive: AtomicBool,
    /// When it was opened.
    opened: Instant,
    /// When (ms after `opened`) it last brought an answer (0: none yet).
    last_answer_ms: AtomicU64,
}

impl StreamHealth {
    /// Whether an answer came on the stream after `at`.
    fn answered_since(&self, at: Instant) -> bool {
        let last = self.last_answer_ms.load(Ordering::Acquire);
        last > 0 && self.opened + Duration::from_millis(last) > at
    }
}

/// Where one decision on a stream went: the endpoint, and the stream once
/// the request was on one.
struct Sent {
    slot: usize,
    stream: Option<Arc<StreamHealth>>,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Removes a waiter when its call ends, whether answered or abandoned: a
/// caller whose deadline fired drops its call, and with it this guard, so
/// its entry does not stay behind; the answer that may still come for it is
/// then dropped by the reader.
struct WaiterGuard {
    waiters: Waiters,
    id: u64,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        lock_waiters(&self.waiters).remove(&self.id);
    }
}

/// Decisions over one kept-open `DecideStream`. Opened on first use and
/// reopened after it breaks; each decision has the client's deadline,
/// retries, cache and failure mode. Cheap to clone; clones share the stream.
///
/// Requests are answered as the PDP decides them, not in request order: the
/// client gives each request a number unique on the stream, sends it in the
/// request's `request_id` (`<number>:<rqi>`, which the PDP echoes) and hands
/// each answer to the caller waiting for that number, with the caller's own
/// `rqi` put back. So a slow request (a DAS consultation, a PIP fetch) does
/// not hold up the requests behind it. A caller whose deadline fires stops
/// waiting and its late answer is dropped; a request that was still queued
/// then is not sent at all. At most [`PepConfig::stream_capacity`] requests
/// await answers at once; a decision beyond that fails closed at once (its
/// reason says the stream is full), as does one that finds the send queue
/// full because the PDP is not reading.
#[derive(Clone)]
pub struct DecisionStream {
    client: PepClient,
    state: Arc<tokio::sync::Mutex<Option<OpenStream>>>,
}

impl std::fmt::Debug for DecisionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionStream").finish_non_exhaustive()
    }
}

impl DecisionStream {
    /// Decides one request over the stream.
    pub async fn decide(&self, mut req: pb::DecisionRequest) -> Verdict {
        stamp(&mut req);
        let key = self.client.cached(&req);
        if let Some(Ok(hit)) = &key {
            return hit.clone();
        }
        let started = Instant::now();
        let sent: Mutex<Option<Sent>> = Mutex::new(None);
        let result = self
            .client
            .retry_loop(|_| (None, self.send(req.clone(), &sent)))
            .await;
        // No answer within the deadline: the endpoint the request went to
        // is set aside like one a unary call got nothing from, and its
        // stream is given up, so the next decision opens one to an
        // endpoint in service (a frozen PDP keeps the stream open and would
        // take every decision sent on it). A stream that answered other
        // decisions meanwhile is alive, this one only slow (one waiting on
        // a DAS, say); one already given up or replaced is not blamed for
        // what it did before.
        let sent = sent.into_inner().unwrap_or_else(|e| e.into_inner());
        if result.is_err()
            && started.elapsed() + DEADLINE_SLACK >= self.client.inner.config.deadline
            && let Some(sent) = sent
        {
            match &sent.stream {
                Some(stream) if stream.answered_since(started) => {}
                Some(stream) => {
                    if stream.alive.swap(false, Ordering::AcqRel) {
                        self.client.inner.endpoints.missed(sent.slot);
                    }
                }
                // Its stream never opened.
                None => self.client.inner.endpoints.missed(sent.slot),
            }
        }
        self.client.settle(&req, key.and_then(Result::err), result)
    }

    /// Sends one request on the open stream (opening it first if needed)
    /// and waits for its answer.
    async fn send(&self, mut req: pb::DecisionRequest, sent: &Mutex<Option<Sent>>) -> Answer {
        let capacity = self.client.inner.config.stream_capacity;
        let full = || {
            tonic::Status::resource_exhausted(format!(
                "the decision stream is full: {capacity} requests await answers \
                 (PepConfig::stream_capacity)"
            ))
        };
        let rqi = std::mem::take(&mut req.request_id);
        let (rx, _guard) = {
            let mut state = self.state.lock().await;
            if !state
                .as_ref()
                .is_some_and(|s| s.health.alive.load(Ordering::Acquire))
            {
                *state = Some(self.open(sent).await?);
            }
            let Some(open) = state.as_mut() else {
                return Err(tonic::Status::unavailable("stream not open"));
            };
            *sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(Sent {
                slot: open.slot,
                stream: Some(open.health.clone()),
            });
            let id = open.next_id;
            open.next_id += 1;
            req.request_id = stream_request_id(id, &rqi);
            let (tx, rx) = oneshot::channel();
            // The waiter is registered before the request is sent, under
            // the lock the reader takes too, so an answer cannot arrive
            // before its waiter.
            let mut waiters = lock_waiters(&open.waiters);
            // The reader marks the stream dead and fails its waiters under
            // this lock: checked here, no waiter is left behind unanswered.
            if !open.health.alive.load(Ordering::Acquire) {
                return Err(tonic::Status::unavailable("decision stream ended"));
            }
            if waiters.len() >= capacity {
                return Err(full());
            }
            waiters.insert(id, tx);
            match open.tx.try_send((id, req)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    waiters.remove(&id);
                    return Err(full());
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    waiters.remove(&id);
                    open.health.alive.store(false, Ordering::Release);
                    return Err(tonic::Status::unavailable("decision stream closed"));
                }
            }
            drop(waiters);
            (
                rx,
                WaiterGuard {
                    waiters: open.waiters.clone(),
                    id,
                },
            )
        };
        match rx.await {
            Ok(Ok(mut decision)) => {
                decision.request_id = rqi;
                Ok(decision)
            }
            Ok(Err(status)) => Err(status),
            Err(_) => Err(tonic::Status::unavailable("decision stream closed")),
        }
    }

    async fn open(&self, sent: &Mutex<Option<Sent>>) -> Result<OpenStream, tonic::Status> {
        // Bounded like the waiters: a PDP that stops reading makes the queue
        // fill, and further decisions fail closed at once.
        let capacity = self.client.inner.config.stream_capacity.max(1);
        let (tx, rx) = mpsc::channel::<(u64, pb::DecisionRequest)>(capacity);
        let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
        // A request whose caller gave up before it left the queue is not
        // sent: nobody would read its answer.
        let outgoing = {
            let waiters = waiters.clone();
            tokio_stream::StreamExt::filter_map(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                move |(id, req)| lock_waiters(&waiters).contains_key(&id).then_some(req),
            )
        };
        let endpoints = &self.client.inner.endpoints;
        let (slot, mut client) = endpoints.pick();
        *sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(Sent { slot, stream: None });
        // The stream stays open across decisions: no gRPC timeout on it;
        // each decision is bounded by the client's deadline instead.
        let mut responses = match client.decide_stream(outgoing).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                if status.code() == Code::Unavailable {
                    endpoints.missed(slot);
                }
                return Err(status);
            }
        };
        let health = Arc::new(StreamHealth {
            alive: AtomicBool::new(true),
            opened: Instant::now(),
            last_answer_ms: AtomicU64::new(0),
        });
        let (w, h) = (waiters.clone(), health.clone());
        let reader = tokio::spawn(async move {
            let end = loop {
                match responses.message().await {
                    Ok(Some(d)) => {
                        let ms = u64::try_from(h.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
                        h.last_answer_ms.store(ms.max(1), Ordering::Release);
                        let waiter =
                            answered_id(&d.request_id).and_then(|id| lock_waiters(&w).remove(&id));
                        match waiter {
                            Some(waiter) => {
                                let _ = waiter.send(Ok(d));
                            }
                            // Its caller's deadline fired: nobody waits.
                            None => tracing::debug!(
                                request_id = %d.request_id,
                                "answer on the decision stream with no waiter dropped"
                            ),
                        }
                    }
                    Ok(None) => break tonic::Status::unavailable("decision stream ended"),
                    Err(status) => break status,
                }
            };
            let waiters: Vec<_> = {
                let mut waiters = lock_waiters(&w);
                h.alive.store(false, Ordering::Release);
                waiters.drain().map(|(_, tx)| tx).collect()
            };
            for waiter in waiters {
                let _ = waiter.send(Err(end.clone()));
            }
        });
        Ok(OpenStream {
            tx,
            waiters,
            health,
            slot,
            next_id: 0,
            reader,
        })
    }
}

#[cfg(test)]
mod tests {
    /// A certificate file may hold the key as well: the identity's Debug
    /// (and so a `PepConfig`'s) prints neither PEM.
    #[test]
    fn a_tls_identity_debug_shows_no_key() {
        let id = super::TlsIdentity {
            cert_pem: b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n".to_vec(),
            key_pem: b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n".to_vec(),
        };
        let shown = format!("{id:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }

    use super::*;

    fn config() -> PepConfig {
        PepConfig::new(["http://127.0.0.1:9"])
    }

    /// The setting an invalid configuration is rejected for.
    fn rejected(config: PepConfig) -> &'static str {
        match config.validate() {
            Err(PepError::Config { setting, reason }) => {
                assert!(!reason.is_empty());
                setting
            }
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn bad_settings_are_errors_naming_the_setting() {
        assert_eq!(config().validate(), Ok(()));
        assert_eq!(rejected(config().with_deadline(Duration::ZERO)), "deadline");
        assert_eq!(rejected(config().with_deadline(Duration::MAX)), "deadline");
        assert_eq!(
            rejected(config().with_deadline(MAX_DEADLINE + Duration::from_nanos(1))),
            "deadline"
        );
        assert_eq!(config().with_deadline(MAX_DEADLINE).validate(), Ok(()));
        let mut c = config();
        c.connect_timeout = Duration::ZERO;
        assert_eq!(rejected(c), "connect_timeout");
        let c = config().with_retry(RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        });
        assert_eq!(rejected(c), "retry.max_attempts");
        let mut c = config().with_cache(CacheConfig::default());
        c.revision_poll = Some(Duration::ZERO);
        assert_eq!(rejected(c.clone()), "revision_poll");
        c.revision_poll = Some(Duration::MAX);
        assert_eq!(rejected(c.clone()), "revision_poll");
        c.revision_poll = Some(MAX_REVISION_POLL);
        assert_eq!(c.validate(), Ok(()));
        // A TTL past what `Instant` can add used to panic in every
        // cacheable decision.
        for ttl in [
            Duration::ZERO,
            Duration::MAX,
            MAX_CACHE_TTL + Duration::from_nanos(1),
        ] {
            let c = config().with_cache(CacheConfig {
                ttl,
                ..CacheConfig::default()
            });
            assert_eq!(rejected(c), "cache.ttl", "{ttl:?}");
        }
        let c = config().with_cache(CacheConfig {
            ttl: MAX_CACHE_TTL,
            ..CacheConfig::default()
        });
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            rejected(config().with_stream_capacity(0)),
            "stream_capacity"
        );
        assert_eq!(
            rejected(config().with_stream_capacity(usize::MAX)),
            "stream_capacity"
        );
        let e = config()
            .with_deadline(Duration::ZERO)
            .validate()
            .expect_err("zero deadline");
        assert_eq!(
            e.to_string(),
            "PepConfig::deadline: must be longer than zero"
        );
    }

    /// A zero `revision_poll` used to panic inside the spawned poller
    /// (`tokio::time::interval(0)`), silently ending cache invalidation by
    /// polling; now both constructors refuse it.
    #[tokio::test]
    async fn the_constructors_refuse_a_bad_configuration() {
        let mut c = config().with_cache(CacheConfig::default());
        c.revision_poll = Some(Duration::ZERO);
        assert!(matches!(
            PepClient::new(c.clone()),
            Err(PepError::Config {
                setting: "revision_poll",
                ..
            })
        ));
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        assert!(matches!(
            PepClient::with_channel(channel, c),
            Err(PepError::Config {
                setting: "revision_poll",
                ..
            })
        ));
    }

    /// An endpoint without a scheme or a host would make every call fail
    /// closed; the constructor refuses it, naming it.
    #[tokio::test]
    async fn an_endpoint_that_is_no_http_url_is_refused() {
        for bad in ["pdp.local:7171", "notaurl", "ftp://pdp.local"] {
            let c = PepConfig::new([bad]);
            match PepClient::new(c) {
                Err(PepError::Endpoint { endpoint, .. }) => assert_eq!(endpoint, bad),
                other => panic!("{bad}: {:?}", other.err()),
            }
        }
        assert!(PepClient::new(PepConfig::new(["https://pdp.local:7171"])).is_ok());
    }

    /// The longest deadline accepted decides (here: fails closed against a
    /// port where nothing listens) without overflowing anything.
    #[tokio::test]
    async fn the_longest_deadline_decides() {
        let client = PepClient::new(
            config()
                .with_deadline(MAX_DEADLINE)
                .with_retry(RetryPolicy {
                    max_attempts: 1,
                    ..RetryPolicy::default()
                }),
        )
        .expect("client");
        let v = client
            .decide(pb::DecisionRequest {
                originator: "C1".into(),
                operation: pb::Operation::Retrieve as i32,
                target: "x".into(),
                ..Default::default()
            })
            .await;
        assert_eq!(v.source, DecisionSource::FailClosed, "{v:?}");
    }
}
