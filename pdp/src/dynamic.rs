//! Tokens and Dynamic Authorization at the PDP (TS-0003 7.3).
//!
//! - **Tokens in a request** (7.3.2.3 steps 5–7): `tkns` are verified with
//!   the [`TrustStore`] (the issuers are the configured DASes, whose public
//!   keys are fetched with `GetKeySet`, and again, at most once per 5 s,
//!   when a token names a `kid` its DAS had no key for: a rotation);
//!   `tids` are fetched from the DAS
//!   their FQDN names (Decision 8), else from the PIP's token repository;
//!   `ltids` name tokens verified before (step 6.1.2). Each token's
//!   permissions for the target join the decision (7.3.2.5): its `pv` as
//!   extra applicable privileges, its `rids` as verified roles. When every
//!   token of the request passed, each new one gets a Local-Token-ID
//!   (`lt<16 hex digits random per instance>-<n>`), returned in the
//!   decision (`ati`, step 7.1); a request whose tokens fail assigns none,
//!   so none goes unreported. With a PIP, Local-Token-IDs belong to the
//!   hosting CSE, not to this process (TS-0001 7.1.16: unique per hosting
//!   CSE): an assignment is stored in the PIP's token repository before it
//!   is reported (the PIP keeps a token's first one, so PDPs racing to
//!   assign one agree), and an `ltids` entry this PDP does not hold is
//!   fetched from the PIP and verified like any token, so that another PDP
//!   of the CSE, or this one after a restart, accepts it. Without a PIP
//!   they live in this process only. A malformed token in
//!   `tkns` is an invalid argument; any token that cannot be retrieved, that
//!   the DAS or PIP returns malformed, or that fails verification makes the
//!   decision a Deny with the reason (7.3.2.3 step 6.1.4, Decision 9).
//! - **Direct** (7.3.2.2): when the stored policies deny and the target (or
//!   its parent) links an enabled `<dynamicAuthorizationConsultation>` whose
//!   `dap` is a configured DAS — or a default DAS is configured — the PDP
//!   consults it with the `rfa` Role-IDs and a deadline, verifies and caches
//!   the returned tokens, and decides again with them and the `dai` grant.
//!   The `dai` is stored in the PRP as a dynamic ACP until its lifetime `pl`
//!   (m2m:absRelTimestamp: `YYYYMMDDThhmmss`, or milliseconds from the
//!   decision's time), bound to the target itself (Decision 7; for a
//!   contentInstance, not its parent, whose other children it would cover)
//!   so that later requests on the target find it; without `pl` it counts
//!   for this decision only, and a
//!   `dai` that cannot be used (a `pl` that is not an m2m:absRelTimestamp, an
//!   invalid `gp`) is ignored with a reason while the tokens of the same
//!   response still count. Identical concurrent consultations share one call.
//! - **Indirect** (7.3.2.3 steps 1–2): a Deny of a request with the token
//!   request indicator carries Token Request Information: for each DAS, its
//!   URI and the `dreq` to present to it, whose `rfa` holds the Role-IDs
//!   that DAS issues (grouped per DAS as for a consultation, 7.3.2.2 step
//!   2.2.1).
//!
//! Only DASes in the configuration are consulted or trusted: a `dap` naming
//! another endpoint is skipped, so a DAC cannot route grants to an
//! untrusted server.
//!
//! A DAS may require its consulting CSEs to authenticate (its
//! `consultants[].secret`): the PDP then presents the secret configured for
//! that DAS ([`DynamicConfig::das_secrets`]) as `authorization: Bearer
//! <secret>` on `Consult` and `GetTokens`.

use smol_str::SmolStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use authz_core::compile::CompiledAcp;
use authz_core::json::AbsRelTimestamp;
use authz_core::json::format_timestamp;
use authz_core::resources::{DYNAMIC_AUTHORIZATION_CONSULTATION, ResourceView};
use authz_core::token::{
    TokenAlgorithm, TokenError, TrustStore, TrustedIssuer, VerificationKey, VerifiedToken,
    VerifyContext, issuer_fqdn,
};
use authz_core::{HostingContext, SetOfAcrs};
use authz_proto::convert::set_of_acrs_from_pb;
use authz_proto::endpoint::status_message;
use authz_proto::pb;
use authz_proto::pb::dynamic_authorization_server_client::DynamicAuthorizationServerClient;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::OnceCell;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

use crate::pip::{PipCache, TokensChanged};
use crate::replica::Snapshot;

/// Configuration of tokens and dynamic authorization.
#[derive(Debug, Clone)]
pub struct DynamicConfig {
    /// The DASes this PDP trusts and may consult (gRPC endpoints of
    /// `DynamicAuthorizationServer`).
    pub dases: Vec<String>,
    /// The DAS consulted for a target that links no enabled DAC (the
    /// "system default" of TS-0001 9.6.1.3.2); `None`: only targets with a
    /// DAC trigger Direct Dynamic Authorization.
    pub default_das: Option<String>,
    /// Deadline of one DAS or PIP call.
    pub deadline: Duration,
    /// The originator the PDP writes dynamic ACPs to the PRP as.
    pub prp_writer: String,
    /// The PIP whose token repository resolves Token-IDs no DAS claims and
    /// holds the Local-Token-IDs this PDP assigns.
    pub pip: Option<String>,
    /// The originator this PDP stores tokens in the PIP as, with their
    /// Local-Token-IDs (the PIP's admin or one of its token writers).
    pub pip_writer: String,
    /// The PRP dynamic ACPs are stored in.
    pub prp: Option<String>,
    /// Secrets presented to DASes that authenticate their consultants; each
    /// must name a DAS of `dases` or `default_das`.
    pub das_secrets: Vec<DasSecret>,
    /// Where to connect to a DAS of `dases` or `default_das` that this PDP
    /// does not reach at its endpoint; each must name such a DAS.
    pub das_addresses: Vec<DasAddress>,
    /// The keys JWE tokens sent to this CSE are decrypted with (TS-0003
    /// 7.3.2.6.2; [`authz_core::jwe`]); none: every JWE is refused.
    pub decryption_keys: authz_core::jwe::DecryptionKeys,
    /// How `https://` DAS, PIP and PRP endpoints are verified (webpki
    /// roots by default); a [`crate::Pdp`] sets its own
    /// ([`crate::PdpConfig::tls`]).
    pub tls: authz_proto::tls::ClientTls,
}

/// The address this PDP connects to for one DAS whose endpoint (the URL
/// that originators are told and DACs name) is not reachable from it, such
/// as a DAS in the same process advertised under a public URL (`authz up
/// --advertise-url`).
#[derive(Debug, Clone)]
pub struct DasAddress {
    /// The DAS endpoint, as written in `dases` or `default_das`.
    pub endpoint: String,
    /// The URL this PDP connects to instead.
    pub connect: String,
}

/// The secret this PDP presents to one DAS as `authorization: Bearer
/// <secret>` when it calls `Consult` and `GetTokens` (the secret of the
/// hosting CSE in the DAS's `consultants`). `Debug` does not show it.
#[derive(Clone)]
pub struct DasSecret {
    /// The DAS endpoint, as written in `dases` or `default_das`.
    pub endpoint: String,
    /// The secret (printable ASCII).
    pub secret: String,
}

impl std::fmt::Debug for DasSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DasSecret")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl DynamicConfig {
    /// Trusts `dases`, consults them only for targets with a DAC, 500 ms
    /// deadline, writes dynamic ACPs and tokens as `CAdmin`.
    pub fn new(dases: Vec<String>) -> Self {
        Self {
            dases,
            default_das: None,
            deadline: Duration::from_millis(500),
            prp_writer: "CAdmin".to_owned(),
            pip: None,
            pip_writer: "CAdmin".to_owned(),
            prp: None,
            das_secrets: Vec::new(),
            das_addresses: Vec::new(),
            decryption_keys: authz_core::jwe::DecryptionKeys::new(),
            tls: authz_proto::tls::ClientTls::default(),
        }
    }
}

/// Why the tokens of a request are not usable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenFailure {
    /// A token the originator sent (`tkns`) is not a well-formed oneM2M JWT,
    /// or the originator is not an ID (an invalid argument, 4000, naming
    /// `field`: `tokens[i]`, `originator`).
    #[error("{field}: {message}")]
    Malformed {
        /// The request field, with its index (`tokens[0]`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A token was rejected, including one the DAS or PIP returned for a
    /// Token-ID that is not a well-formed oneM2M JWT (a Deny, 4103).
    #[error("{0}")]
    Rejected(String),
    /// A token (sent by value, or fetched for a Token-ID or
    /// Local-Token-ID) could not be judged: its issuer is no issuer this
    /// PDP trusts while a configured DAS's key set (which would name that
    /// DAS's issuer) could not be fetched (Decision 10: indeterminate, a
    /// Deny with the token missing, not a final rejection).
    #[error("{field} cannot be verified: {reason}")]
    Unverifiable {
        /// How the request gave it: `tokens[0]`, `token ID <id>`, `local
        /// token ID <id>`.
        field: String,
        /// What its `missing` entry names: the request field for a token
        /// sent by value, else the Token-ID or Local-Token-ID.
        id: String,
        /// Why.
        reason: String,
    },
    /// A token could not be retrieved (DAS or PIP unreachable; a Deny with
    /// the token missing).
    #[error("{what} {id} cannot be retrieved: {reason}")]
    Unavailable {
        /// `token ID` or `local token ID`.
        what: &'static str,
        /// The Token-ID or Local-Token-ID as the request gives it.
        id: String,
        /// Why it could not be retrieved.
        reason: String,
    },
}

/// What the tokens of a request grant for its target.
#[derive(Debug, Default, Clone)]
pub struct TokenGrant {
    /// Extra applicable privileges (the tokens' `pv`, 7.3.2.5).
    pub acps: Vec<Arc<CompiledAcp>>,
    /// Extra verified roles (the tokens' `rids`).
    pub roles: Vec<String>,
    /// Local-Token-IDs assigned to tokens seen for the first time.
    pub assigned: Vec<(String, String)>,
    /// Token-IDs used, for the summary.
    pub used: Vec<String>,
    /// Why a token (verified, held by the originator) grants nothing on
    /// the target, for the summary of a Deny: one line per such token.
    pub inapplicable: Vec<String>,
    /// The earliest end of what `acps` and `roles` hold (a token's
    /// `notAfter`, a `dai`'s `pl`, the epoch for a `dai` without `pl`,
    /// which counts for the decision only); `None` while they hold nothing. A Permit resting on
    /// them must not be reused from then on (`reusable_until`).
    pub valid_until: Option<DateTime<Utc>>,
    /// When each of `acps` ends, by its ID: no time window of it opens
    /// after that ([`authz_core::decision::Explanation::end_openings`]).
    pub ends: Vec<(SmolStr, DateTime<Utc>)>,
    /// The first instant each of `acps` no longer counts at (the same
    /// order): the second after its token's `notAfter`, or its `dai`'s
    /// `pl`; `None` for a `dai` without `pl`, which counts for this
    /// decision whatever the clock.
    acps_until: Vec<Option<DateTime<Utc>>>,
    /// The first instant each of `roles` no longer counts at: the second
    /// after its token's `notAfter`.
    roles_until: Vec<DateTime<Utc>>,
}

/// The first instant a token no longer counts at: its `notAfter` names the
/// last valid second, all of it ("expired after this time", TS-0003
/// 7.3.2.4), as verification reads it.
fn token_over_at(token: &VerifiedToken) -> DateTime<Utc> {
    token
        .expires_at()
        .checked_add_signed(chrono::TimeDelta::seconds(1))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl TokenGrant {
    /// The granted ACPs that still count at `now`: a decision pass after a
    /// network wait (the PIP, a DAS) reads the clock again, and a token
    /// counts only while "the current time" is within its validity
    /// (TS-0003 7.3.2.2 step 4.1.1.2.4), a `dai` only until its `pl`.
    pub fn live_acps(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Arc<CompiledAcp>> {
        self.acps
            .iter()
            .zip(&self.acps_until)
            .filter(move |(_, until)| until.is_none_or(|u| now < u))
            .map(|(acp, _)| acp)
    }

    /// The granted roles that still count at `now` (as [`Self::live_acps`]);
    /// borrowed while every one does.
    pub fn live_roles(&self, now: DateTime<Utc>) -> std::borrow::Cow<'_, [String]> {
        if self.roles_until.iter().all(|u| now < *u) {
            return std::borrow::Cow::Borrowed(&self.roles);
        }
        std::borrow::Cow::Owned(
            self.roles
                .iter()
                .zip(&self.roles_until)
                .filter(|(_, u)| now < **u)
                .map(|(r, _)| r.clone())
                .collect(),
        )
    }

    /// Adds a granted ACP that counts until `until` (see `acps_until`).
    fn push_acp(&mut self, acp: CompiledAcp, until: Option<DateTime<Utc>>) {
        self.acps.push(Arc::new(acp));
        self.acps_until.push(until);
    }

    /// Adds what `other` grants (its assignments too).
    pub fn extend(&mut self, other: TokenGrant) {
        self.acps.extend(other.acps);
        self.acps_until.extend(other.acps_until);
        self.roles.extend(other.roles);
        self.roles_until.extend(other.roles_until);
        self.assigned.extend(other.assigned);
        self.used.extend(other.used);
        self.inapplicable.extend(other.inapplicable);
        self.ends.extend(other.ends);
        if let Some(until) = other.valid_until {
            self.limit(until);
        }
    }

    /// Notes that something granted ends at `until`.
    pub fn limit(&mut self, until: DateTime<Utc>) {
        self.valid_until = Some(self.valid_until.map_or(until, |v| v.min(until)));
    }

    /// Adds what `token` grants on `target` at the hosting CSE `hosting`:
    /// the CSE of this request, since a cached token may be used at another
    /// CSE than the one it was first verified for (TS-0003 7.3.2.5, `ris`).
    fn add(&mut self, token: &VerifiedToken, target: &str, hosting: &HostingContext) {
        let granted = token.token_permissions_for(target, hosting);
        for (i, pv) in &granted.privileges {
            // The claims were validated, so this compiles; a failure grants nothing.
            if let Ok(acp) =
                CompiledAcp::from_privileges(format!("token:{}#{i}", token.token_id()), pv)
            {
                self.ends.push((acp.id().clone(), token.expires_at()));
                self.push_acp(acp, Some(token_over_at(token)));
            }
        }
        if granted.privileges.is_empty() && granted.role_ids.is_empty() {
            // TS-0003 7.3.2.5: a permission applies only to the resources in
            // its `ris` (every resource when it has none).
            self.inapplicable.push(format!(
                "token {} grants nothing on {target}: no permission of it names this resource in ris",
                token.token_id()
            ));
        }
        if !granted.privileges.is_empty() || !granted.role_ids.is_empty() {
            self.limit(token.expires_at());
        }
        self.roles_until
            .extend(granted.role_ids.iter().map(|_| token_over_at(token)));
        self.roles.extend(granted.role_ids);
        self.used.push(token.token_id().to_owned());
    }
}

/// What one Direct consultation gave (7.3.2.2 step 4.1).
#[derive(Debug, Default, Clone)]
pub struct Consultation {
    /// What the verified tokens and the usable `dai` grant on the target.
    pub grant: TokenGrant,
    /// Why parts of the response were not used: each token that failed
    /// verification, and the `dai` when it could not be used. The other
    /// parts count all the same (7.3.2.2 step 4.1.1 verifies each token on
    /// its own; step 4.1.2 creates the dynamic ACP whatever the tokens).
    pub ignored: Vec<String>,
}

/// A usable `dai`: the dynamic ACP and until when it may be stored.
struct DaiGrant {
    acp: CompiledAcp,
    /// The end of `pl`; `None` when `pl` is absent: the grant counts for the
    /// current decision only and is not stored.
    until: Option<DateTime<Utc>>,
}

/// The dynamic ACP a `dai` from the DAS at `endpoint` grants; `Ok(None)` when
/// it grants no rule.
///
/// `pl` is an m2m:absRelTimestamp (TS-0004; TS-0003 table 7.3.2.2-2 makes it
/// optional): `YYYYMMDDThhmmss`, or milliseconds counted from `now` (the
/// decision's time, taken before the consultation, so a relative lifetime
/// never ends later than the DAS meant). An empty `pl` is absent.
///
/// A `pl` that ends by `request_time` (the request's `rq_time`, when later
/// than `now`) grants nothing for it, as a stored dynamic ACP that ended
/// by then does not count (Decision 7).
fn dai_grant(
    endpoint: &str,
    dai: &pb::DynamicAcpInfo,
    now: DateTime<Utc>,
    request_time: DateTime<Utc>,
) -> Result<Option<DaiGrant>, String> {
    let privileges: SetOfAcrs = match &dai.granted_privileges {
        Some(gp) => {
            let mut errors: Vec<authz_proto::ConversionError> = Vec::new();
            let set = set_of_acrs_from_pb(gp, "gp", &mut errors);
            if !errors.is_empty() {
                return Err(format!(
                    "gp invalid: {}",
                    authz_proto::convert::join_errors(&errors)
                ));
            }
            set
        }
        None => SetOfAcrs::default(),
    };
    let until = if dai.privileges_lifetime.is_empty() {
        None
    } else {
        let end = AbsRelTimestamp::parse(&dai.privileges_lifetime)
            .and_then(|t| t.resolve(now))
            .ok_or_else(|| {
                format!(
                    "pl '{}' is not an m2m:absRelTimestamp (YYYYMMDDThhmmss or milliseconds)",
                    dai.privileges_lifetime
                )
            })?;
        if end <= now.max(request_time) {
            return Err(format!(
                "pl '{}' ends at {}, by the time of the request",
                dai.privileges_lifetime,
                format_timestamp(end)
            ));
        }
        Some(end)
    };
    if privileges.rules.is_empty() {
        return Ok(None);
    }
    let acp = CompiledAcp::from_privileges(format!("dai:{endpoint}"), &privileges)
        .map_err(|e| format!("gp invalid: {e}"))?;
    Ok(Some(DaiGrant { acp, until }))
}

struct Das {
    endpoint: String,
    client: DynamicAuthorizationServerClient<Channel>,
    /// `Bearer <secret>` for `Consult` and `GetTokens`, when configured.
    authorization: Option<AsciiMetadataValue>,
    /// Who it is, once its key set was fetched.
    identity: RwLock<Option<DasIdentity>>,
    /// When its key set was last fetched again for a token naming a `kid`
    /// it did not have (at most once per [`KEY_REFETCH_INTERVAL`]).
    refetched: std::sync::Mutex<Option<Instant>>,
}

/// A DAS as its key set describes it.
#[derive(Debug, Clone)]
struct DasIdentity {
    /// The `iss` of its tokens.
    issuer: String,
    /// The FQDN of its Token-IDs (and of Role-IDs it grants).
    fqdn: String,
    /// More FQDNs of Role-IDs it grants (Decision 8's table).
    role_issuers: Vec<String>,
    /// The key it reads secured DAS requests (`sdr`) with, if it publishes one.
    request_key: Option<authz_core::jwe::EncryptionKey>,
}

impl DasIdentity {
    /// Does `role` identify this DAS (TS-0003 7.3.2.2 step 2.2.1; Decision
    /// 8: by the FQDN after `@`)?
    fn issues_role(&self, role: &str) -> bool {
        issuer_fqdn(role)
            .is_some_and(|f| f == self.fqdn || self.role_issuers.iter().any(|r| r == f))
    }
}

impl Das {
    fn identity(&self) -> std::sync::RwLockReadGuard<'_, Option<DasIdentity>> {
        self.identity
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The key a DAS's key set publishes for secured DAS requests
/// (`request_encryption_jwk`; empty: none). A key set with one that is no
/// public key of a key pair is refused like one with a bad verification
/// key: a shared secret published to all is no secret.
fn request_key(jwk: &str) -> Result<Option<authz_core::jwe::EncryptionKey>, String> {
    if jwk.is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_str(jwk).map_err(|e| format!("request_encryption_jwk: not JSON: {e}"))?;
    let key = authz_core::jwe::EncryptionKey::from_jwk(&value, "request_encryption_jwk")
        .map_err(|e| e.to_string())?;
    if key.algorithm().is_shared_secret() {
        return Err(format!(
            "request_encryption_jwk: {} is a shared secret, not a public key",
            key.algorithm()
        ));
    }
    Ok(Some(key))
}

/// How a `dreq` goes in Token Request Information ([`Dynamic::protect`]).
enum Protection {
    /// As `sdr`, encrypted to the DAS; the clear `dreq` without `rfa`.
    Secured(String),
    /// In the clear, `rfa` included: the DAS publishes no request key.
    Clear,
    /// Without `rfa`, and no `sdr`: the DAS's key set is not known.
    Withheld,
}

/// The `sdr` plaintext is padded to a multiple of this many bytes.
const SDR_PADDING_BLOCK: usize = 256;

/// The least time between two fetches of one DAS's key set for tokens
/// whose `kid` it has no key for, however many such tokens arrive.
const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// The outcome of one consultation, shared by coalesced callers.
type Consulted = Result<Consultation, String>;

/// Most tokens held under Local-Token-IDs, and most holders of tokens from
/// Direct consultations: bounds on memory (every DAS answer adds tokens).
/// Past the bound, expired tokens are dropped first; a holder's list keeps
/// its [`MAX_TOKENS_PER_HOLDER`] newest.
pub const MAX_CACHED_TOKENS: usize = 100_000;
/// Most tokens from Direct consultations kept for one holder.
pub const MAX_TOKENS_PER_HOLDER: usize = 32;

/// Tokens and dynamic authorization state of a PDP.
pub struct Dynamic {
    config: DynamicConfig,
    dases: Vec<Das>,
    trust: RwLock<TrustStore>,
    /// Local-Token-ID → token. With a PIP, a cache of the assignments the
    /// PIP holds (those this PDP made or fetched); without one, the only
    /// record: an ID is then valid on the PDP that assigned it, unknown (a
    /// Deny) on another PDP of the same CSE or after a restart (README,
    /// Tokens and Dynamic Authorization).
    local: DashMap<String, Arc<VerifiedToken>>,
    /// Token-ID → Local-Token-ID.
    local_by_token: DashMap<String, String>,
    /// With a PIP whose watch the PDP follows: the PDP's cache of it. The
    /// `<token>` repository's deletions then drop cached Local-Token-IDs,
    /// and IDs are cached only while the watch is up, so a PDP does not
    /// accept an ID the PIP no longer holds while its other PDPs deny it
    /// ([`Dynamic::follow_pip_tokens`]).
    pip_watch: std::sync::OnceLock<Arc<PipCache>>,
    /// Bumped by every drop of cached Local-Token-IDs, under
    /// `token_cache_lock` like every insert: an ID fetched or assigned
    /// before a drop is not cached after it.
    token_epoch: AtomicU64,
    token_cache_lock: std::sync::Mutex<()>,
    /// Tokens from Direct consultations, by holder (absolute).
    direct_tokens: DashMap<String, Vec<Arc<VerifiedToken>>>,
    inflight: DashMap<Vec<u8>, Arc<OnceCell<Consulted>>>,
    pip: Option<PolicyInformationPointClient<Channel>>,
    prp: Option<PolicyRetrievalPointClient<Channel>>,
}

impl std::fmt::Debug for Dynamic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dynamic")
            .field("dases", &self.config.dases)
            .field("default_das", &self.config.default_das)
            .field("local_tokens", &self.local.len())
            .finish_non_exhaustive()
    }
}

fn lazy_channel(
    endpoint: &str,
    deadline: Duration,
    tls: &authz_proto::tls::ClientTls,
) -> Result<Channel, String> {
    Ok(authz_proto::endpoint::endpoint_with(endpoint, tls)
        .map_err(|e| format!("{endpoint}: {e}"))?
        .connect_timeout(deadline.max(Duration::from_millis(100)))
        .connect_lazy())
}

/// 16 hex digits, different for every call: a hash keyed by the process's
/// random `RandomState` seed (which differs between processes, and between
/// instances in one process), of the time and process ID. Local-Token-IDs
/// and decision IDs start with one.
pub(crate) fn random_prefix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// A new Local-Token-ID: `lt` and 128 random bits in hex. An NCName,
/// unique per hosting CSE (TS-0001 7.1.16) without coordination between
/// its PDPs or across restarts, and not guessable: a request that is not
/// authenticated names its holder in From, so an ID that could be
/// counted on from one seen would let anyone use another holder's token.
fn new_local_token_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("lt{hex}"))
}

fn canonical_endpoint(e: &str) -> &str {
    e.trim_end_matches('/')
}

impl Das {
    /// A call to this DAS, with its `authorization` metadata when a secret
    /// is configured for it.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        authz_proto::serving::inject_trace_context(request.metadata_mut());
        if let Some(a) = &self.authorization {
            request.metadata_mut().insert("authorization", a.clone());
        }
        request
    }
}

impl Dynamic {
    /// State for `config`; connections are made lazily. Call
    /// [`Dynamic::load_keys`] (the PDP spawns it) to trust the DASes.
    pub fn new(config: DynamicConfig) -> Result<Arc<Self>, String> {
        let mut dases = Vec::new();
        let mut endpoints: Vec<String> = config.dases.clone();
        if let Some(d) = &config.default_das
            && !endpoints
                .iter()
                .any(|e| canonical_endpoint(e) == canonical_endpoint(d))
        {
            endpoints.push(d.clone());
        }
        for a in &config.das_addresses {
            let e = canonical_endpoint(&a.endpoint);
            if !endpoints.iter().any(|d| canonical_endpoint(d) == e) {
                return Err(format!("DAS address for {e}: not a configured DAS"));
            }
        }
        for endpoint in endpoints {
            let connect = config
                .das_addresses
                .iter()
                .find(|a| canonical_endpoint(&a.endpoint) == canonical_endpoint(&endpoint))
                .map_or(endpoint.as_str(), |a| a.connect.as_str());
            let channel = lazy_channel(connect, config.deadline, &config.tls)?;
            dases.push(Das {
                endpoint: canonical_endpoint(&endpoint).to_owned(),
                client: DynamicAuthorizationServerClient::new(channel),
                authorization: None,
                identity: RwLock::new(None),
                refetched: std::sync::Mutex::new(None),
            });
        }
        for s in &config.das_secrets {
            let e = canonical_endpoint(&s.endpoint);
            let das = dases
                .iter_mut()
                .find(|d| d.endpoint == e)
                .ok_or_else(|| format!("DAS secret for {e}: not a configured DAS"))?;
            if das.authorization.is_some() {
                return Err(format!("DAS secret for {e}: given twice"));
            }
            if s.secret.is_empty() || !s.secret.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "DAS secret for {e}: must be printable ASCII without spaces"
                ));
            }
            let value = MetadataValue::try_from(format!("Bearer {}", s.secret))
                .map_err(|_| format!("DAS secret for {e}: not valid gRPC metadata"))?;
            das.authorization = Some(value);
        }
        let pip = match &config.pip {
            Some(e) => Some(PolicyInformationPointClient::new(lazy_channel(
                e,
                config.deadline,
                &config.tls,
            )?)),
            None => None,
        };
        let prp = match &config.prp {
            Some(e) => Some(PolicyRetrievalPointClient::new(lazy_channel(
                e,
                config.deadline,
                &config.tls,
            )?)),
            None => None,
        };
        let trust = TrustStore::new().with_decryption_keys(config.decryption_keys.clone());
        Ok(Arc::new(Self {
            config,
            dases,
            trust: RwLock::new(trust),
            local: DashMap::new(),
            local_by_token: DashMap::new(),
            pip_watch: std::sync::OnceLock::new(),
            token_epoch: AtomicU64::new(0),
            token_cache_lock: std::sync::Mutex::new(()),
            direct_tokens: DashMap::new(),
            inflight: DashMap::new(),
            pip,
            prp,
        }))
    }

    fn trust(&self) -> std::sync::RwLockReadGuard<'_, TrustStore> {
        self.trust
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fetches every DAS's key set until each answered once (backoff up to
    /// 5 s), trusting its issuer with its keys.
    pub async fn load_keys(self: Arc<Self>) {
        let mut pending: Vec<usize> = (0..self.dases.len()).collect();
        let mut backoff = Duration::from_millis(100);
        let mut attempts = 0u32;
        while !pending.is_empty() {
            attempts += 1;
            let mut still = Vec::new();
            for i in pending {
                if let Err(e) = self.load_key_set(i).await {
                    // A DAS started alongside may not listen yet; after that
                    // an operator should hear of it: its tokens are refused.
                    if attempts > 3 {
                        tracing::warn!(das = %self.dases[i].endpoint, error = %e, "DAS key set not loaded yet; until it is, its tokens are not accepted and it is sent no Role-IDs");
                    } else {
                        tracing::debug!(das = %self.dases[i].endpoint, error = %e, "DAS key set not loaded yet");
                    }
                    still.push(i);
                }
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }

    async fn load_key_set(&self, i: usize) -> Result<(), String> {
        let das = &self.dases[i];
        let mut client = das.client.clone();
        let set = tokio::time::timeout(
            self.config.deadline,
            client.get_key_set(pb::GetKeySetRequest {}),
        )
        .await
        .map_err(|_| "timed out".to_owned())?
        // `Code: message: cause`, as every failed call in a log line.
        .map_err(|s| authz_proto::endpoint::status_chain(&s))?
        .into_inner();
        let mut algorithms = Vec::new();
        let mut keys = Vec::new();
        let mut unusable = Vec::new();
        for k in &set.keys {
            // One unusable key (an unknown algorithm, an RSA key too short,
            // an old key kept through a rotation) verifies nothing; the
            // others still verify the DAS's tokens.
            let loaded = TokenAlgorithm::from_name(&k.alg)
                .ok_or_else(|| format!("key {}: unknown algorithm {}", k.kid, k.alg))
                .and_then(|alg| {
                    VerificationKey::from_public_pem(alg, k.public_key_pem.as_bytes())
                        .map(|key| (alg, key))
                        .map_err(|e| format!("key {}: {e}", k.kid))
                });
            match loaded {
                Ok((alg, key)) => {
                    if !algorithms.contains(&alg) {
                        algorithms.push(alg);
                    }
                    keys.push((k.kid.clone(), key));
                }
                Err(why) => {
                    tracing::warn!(das = %das.endpoint, reason = %why, "DAS key not used");
                    unusable.push(why);
                }
            }
        }
        if keys.is_empty() && !unusable.is_empty() {
            return Err(unusable.join("; "));
        }
        let request_key = request_key(&set.request_encryption_jwk)?;
        let mut issuer = TrustedIssuer::new(set.issuer.clone(), &algorithms);
        for (kid, key) in keys {
            issuer = issuer.with_key(kid, key).map_err(|e| e.to_string())?;
        }
        self.trust
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(issuer);
        *das.identity
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(DasIdentity {
            issuer: set.issuer.clone(),
            fqdn: set.fqdn.clone(),
            role_issuers: set.role_issuers.clone(),
            request_key,
        });
        tracing::info!(das = %das.endpoint, issuer = %set.issuer, keys = set.keys.len(), "DAS trusted");
        Ok(())
    }

    /// Whether every DAS's keys are loaded.
    pub fn keys_loaded(&self) -> bool {
        self.dases.iter().all(|d| d.identity().is_some())
    }

    /// The endpoints of the DASes whose key set is not loaded, joined for
    /// a message; `None` when every one is.
    fn unloaded_dases(&self) -> Option<String> {
        let unloaded: Vec<&str> = self
            .dases
            .iter()
            .filter(|d| d.identity().is_none())
            .map(|d| d.endpoint.as_str())
            .collect();
        (!unloaded.is_empty()).then(|| unloaded.join(", "))
    }

    /// The DAS whose Token-IDs end with `@fqdn`.
    fn das_for_fqdn(&self, fqdn: &str) -> Option<&Das> {
        self.dases
            .iter()
            .find(|d| d.identity().as_ref().is_some_and(|i| i.fqdn == fqdn))
    }

    /// The Role-IDs of `rfa` that the DAS at `endpoint` issues (TS-0003
    /// 7.3.2.2 step 2.2.1 groups Role-IDs per DAS; Decision 8: by the FQDN
    /// after `@`, its own or one of its `role_issuers`). None while its
    /// identity (from its key set) is not known: which Role-IDs are its
    /// cannot be told then, and another issuer's are not its business.
    pub fn roles_for_das(&self, endpoint: &str, rfa: &[String]) -> Vec<String> {
        let Some(das) = self.das_for_endpoint(endpoint) else {
            return Vec::new();
        };
        match das.identity().as_ref() {
            Some(identity) => rfa
                .iter()
                .filter(|r| identity.issues_role(r))
                .cloned()
                .collect(),
            None => Vec::new(),
        }
    }

    /// The DASes the Role-IDs of `rfa` identify (TS-0003 7.3.2.2 step
    /// 2.2.1, Decision 8), in configuration order: with the DACs' (step
    /// 2.2.2) they are the DASes a denied request may be authorized by.
    pub fn dases_for_roles(&self, rfa: &[String]) -> Vec<String> {
        self.dases
            .iter()
            .filter(|d| {
                d.identity()
                    .as_ref()
                    .is_some_and(|i| rfa.iter().any(|r| i.issues_role(r)))
            })
            .map(|d| d.endpoint.clone())
            .collect()
    }

    fn das_for_endpoint(&self, endpoint: &str) -> Option<&Das> {
        let e = canonical_endpoint(endpoint);
        self.dases.iter().find(|d| d.endpoint == e)
    }

    async fn verify(
        &self,
        token: &str,
        ctx: &VerifyContext,
        what: &str,
    ) -> Result<VerifiedToken, TokenFailure> {
        self.verify_refetching(token, ctx)
            .await
            .map_err(|e: TokenError| {
                if e.is_malformed() {
                    TokenFailure::Malformed {
                        field: what.to_owned(),
                        message: e.to_string(),
                    }
                } else if let Some(failure) = self.unverifiable(&e, what, what) {
                    failure
                } else {
                    TokenFailure::Rejected(format!("{what} rejected: {e}"))
                }
            })
    }

    /// A token whose issuer no loaded key set names, while a configured
    /// DAS's key set (which may name it) could not be fetched, is
    /// indeterminate (Decision 10): `Unverifiable`, a Deny with the token
    /// missing, not a final "untrusted issuer". `None` for any other error.
    /// The same for a token sent by value, by Token-ID or by
    /// Local-Token-ID: `what` says how the request gave it, `id` names its
    /// `missing` entry.
    fn unverifiable(&self, e: &TokenError, what: &str, id: &str) -> Option<TokenFailure> {
        let (TokenError::UntrustedIssuer(issuer), Some(unloaded)) = (e, self.unloaded_dases())
        else {
            return None;
        };
        Some(TokenFailure::Unverifiable {
            field: what.to_owned(),
            id: id.to_owned(),
            reason: format!(
                "its issuer {issuer:?} is none this PDP trusts, and the key set of \
                 {unloaded} (whose issuer it may be) could not be fetched"
            ),
        })
    }

    /// Verifies `token` ([`Dynamic::verify_once_refetching`]), and that
    /// its Token-ID names its issuer: "A Token-ID shall identify the issuer
    /// of the Token" (TS-0001 7.1.15), and Token-IDs are resolved to a DAS
    /// by their FQDN (Decision 8), so a DAS whose tokens carried IDs under
    /// another DAS's FQDN could stand in for that DAS's tokens.
    async fn verify_refetching(
        &self,
        token: &str,
        ctx: &VerifyContext,
    ) -> Result<VerifiedToken, TokenError> {
        let verified = self.verify_once_refetching(token, ctx).await?;
        let own_fqdn = self.dases.iter().find_map(|d| {
            d.identity()
                .as_ref()
                .filter(|i| i.issuer == verified.claims().issuer)
                .map(|i| i.fqdn.clone())
        });
        match own_fqdn {
            Some(fqdn) if issuer_fqdn(verified.token_id()) != Some(fqdn.as_str()) => {
                Err(TokenError::ForeignTokenId {
                    token_id: verified.token_id().to_owned(),
                    issuer: verified.claims().issuer.clone(),
                    fqdn,
                })
            }
            _ => Ok(verified),
        }
    }

    /// Fetches the key sets not loaded yet (DASes unreachable so far), each
    /// as often as a refetch may be; true when one was loaded.
    async fn load_missing_key_sets(&self) -> bool {
        let mut loaded = false;
        for i in 0..self.dases.len() {
            if self.dases[i].identity().is_none() && self.may_refetch(i) {
                match self.load_key_set(i).await {
                    Ok(()) => loaded = true,
                    Err(e) => {
                        tracing::debug!(das = %self.dases[i].endpoint, error = %e, "DAS key set still not loaded")
                    }
                }
            }
        }
        loaded
    }

    /// Verifies `token`; when its issuer is a configured DAS that has no
    /// key with the token's `kid` (or none of its `alg`) — the DAS rotated its keys, putting the
    /// new one first, after this PDP fetched them — fetches that DAS's key
    /// set again (at most once per [`KEY_REFETCH_INTERVAL`]) and verifies
    /// once more.
    async fn verify_once_refetching(
        &self,
        token: &str,
        ctx: &VerifyContext,
    ) -> Result<VerifiedToken, TokenError> {
        let first = self.trust().verify(token, ctx);
        // An issuer none of the loaded key sets names may be that of a DAS
        // whose key set is not loaded yet (unreachable at start): fetched
        // now, as often as a refetch may be.
        if matches!(first, Err(TokenError::UntrustedIssuer(_))) && !self.keys_loaded() {
            if self.load_missing_key_sets().await {
                return self.trust().verify(token, ctx);
            }
            return first;
        }
        // A new key may also be of an algorithm the old set had none of.
        let (Err(TokenError::UnknownKey { issuer, .. })
        | Err(TokenError::AlgorithmNotPermitted { issuer, .. })) = &first
        else {
            return first;
        };
        let Some(i) = self
            .dases
            .iter()
            .position(|d| d.identity().as_ref().is_some_and(|id| id.issuer == *issuer))
        else {
            return first;
        };
        if !self.may_refetch(i) {
            return first;
        }
        if let Err(e) = self.load_key_set(i).await {
            tracing::warn!(das = %self.dases[i].endpoint, error = %e, "DAS key set not fetched again");
            return first;
        }
        self.trust().verify(token, ctx)
    }

    /// Whether the key set of DAS `i` may be fetched again now; if so,
    /// records that it is.
    fn may_refetch(&self, i: usize) -> bool {
        let mut last = self.dases[i]
            .refetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < KEY_REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Gives `token` a Local-Token-ID unless it has one, recording the
    /// assignment in `grant`.
    ///
    /// A token that has one already reports it again: every answer to a
    /// request presenting the token names its Local-Token-ID, so an answer
    /// that never reached the originator (a caller's deadline, a dropped
    /// stream) does not lose the assignment for good (TS-0003 7.3.2.3 steps
    /// 7.1, 7.2). Only the holder gets here: the token was verified for the
    /// request's originator.
    ///
    /// With a PIP, the assignment is stored there first and the ID the PIP
    /// answers is the one used: the token's first, when this PDP or another
    /// one of the CSE assigned it one before (TS-0001 7.1.16: unique per
    /// hosting CSE). A PIP that cannot store it leaves the token without
    /// one: the originator keeps presenting it by value or Token-ID, and the
    /// next request tries again. Reporting an ID the PIP does not hold would
    /// have the other PDPs of the CSE deny it.
    async fn assign_local(&self, token: &Arc<VerifiedToken>, grant: &mut TokenGrant) {
        let id = token.token_id().to_owned();
        // The same token twice in one request is reported once.
        if grant.assigned.iter().any(|(_, t)| *t == id) {
            return;
        }
        let known = self.local_by_token.get(&id).map(|lti| lti.clone());
        if let Some(lti) = known {
            // Token-IDs are unique (TS-0001 7.1.15), but a DAS that reuses
            // one for another token (another holder's, or other rights)
            // must not have its holder handed an ID that names the first
            // token: used by it, that one's rights would count instead.
            let same = self
                .local
                .get(lti.as_str())
                .map(|t| t.claims() == token.claims());
            match same {
                Some(true) => {
                    grant.assigned.push((lti, id));
                    return;
                }
                Some(false) => return,
                // The token it named was dropped after a change at the PIP
                // (this PDP's own store of it, heard back, too): which
                // token it names now, the PIP says, below (the same token
                // gets its ID back, another none).
                None if self.pip.is_some() => {}
                None => return,
            }
        }
        if !self.make_room() {
            // Still full of live tokens: this one is used by value only
            // (the originator keeps sending it, not a Local-Token-ID).
            return;
        }
        let Some(proposed) = new_local_token_id() else {
            tracing::warn!(token = %id, "no Local-Token-ID assigned: no randomness");
            return;
        };
        let epoch = self.token_epoch();
        let lti = match &self.pip {
            None => proposed,
            Some(pip) => match self.store_local(pip, token, &proposed).await {
                Ok(Some(lti)) => lti,
                Ok(None) => {
                    // A PIP that predates Local-Token-IDs stored the token
                    // without one: the ID is this process's, as without a
                    // PIP.
                    tracing::warn!(token = %id, "the PIP keeps no Local-Token-IDs (an older version); this one is valid on this PDP only");
                    proposed
                }
                Err(why) => {
                    tracing::warn!(token = %id, reason = %why, "no Local-Token-ID assigned: the PIP did not store it");
                    return;
                }
            },
        };
        self.cache_local(&lti, token, epoch);
        grant.assigned.push((lti, id));
    }

    /// Whether the Local-Token-ID cache has room for one more token, after
    /// dropping expired ones when it was full (they grant nothing).
    fn make_room(&self) -> bool {
        if self.local.len() < MAX_CACHED_TOKENS {
            return true;
        }
        let now = Utc::now();
        self.local.retain(|_, t| t.expires_at() > now);
        self.local_by_token
            .retain(|_, lti| self.local.contains_key(lti.as_str()));
        self.local.len() < MAX_CACHED_TOKENS
    }

    /// Caches `lti` as the Local-Token-ID of `token`. An ID the PIP gave
    /// another, expired, token before (7.1.16 lets it be reused) no longer
    /// names that one here either.
    ///
    /// `epoch` is [`Dynamic::token_epoch`] read before the PIP was asked:
    /// nothing is cached when cached IDs were dropped since, or while the
    /// PIP's watch, which would report a deletion, is down.
    fn cache_local(&self, lti: &str, token: &Arc<VerifiedToken>, epoch: u64) {
        let _guard = self
            .token_cache_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.token_epoch.load(Ordering::Acquire) != epoch
            || self.pip_watch.get().is_some_and(|c| !c.is_watching())
        {
            return;
        }
        if let Some(old) = self.local.insert(lti.to_owned(), token.clone())
            && old.token_id() != token.token_id()
        {
            self.local_by_token
                .remove_if(old.token_id(), |_, l| l.as_str() == lti);
        }
        self.local_by_token
            .insert(token.token_id().to_owned(), lti.to_owned());
    }

    /// The count of drops of cached Local-Token-IDs so far: read before
    /// asking the PIP, passed to [`Dynamic::cache_local`] after.
    fn token_epoch(&self) -> u64 {
        self.token_epoch.load(Ordering::Acquire)
    }

    /// Follows the `<token>` repository of the PIP `cache` watches, when it
    /// is the PIP this PDP stores Local-Token-IDs in: a deleted `<token>`'s
    /// ID is dropped from this PDP's cache, every cached ID is dropped when
    /// the cache is cleared (a `reset`, a lost watch), and none is cached
    /// while the watch is down. The next request naming a dropped ID asks
    /// the PIP, as any PDP of the CSE would. False when the PIPs differ or
    /// this was set up before.
    pub fn follow_pip_tokens(self: &Arc<Self>, cache: &Arc<PipCache>) -> bool {
        let same_pip = self
            .config
            .pip
            .as_deref()
            .is_some_and(|e| canonical_endpoint(e) == canonical_endpoint(cache.endpoint()));
        if !same_pip || self.pip_watch.get().is_some() {
            return false;
        }
        let this = Arc::downgrade(self);
        let listening = cache.on_tokens_changed(move |change| {
            if let Some(this) = this.upgrade() {
                this.forget_local(change);
            }
        });
        // Caching waits on the watch only once deletions are heard.
        listening && self.pip_watch.set(cache.clone()).is_ok()
    }

    /// Drops the cached Local-Token-IDs a change of the PIP's `<token>`
    /// repository may have made wrong.
    fn forget_local(&self, change: TokensChanged<'_>) {
        let _guard = self
            .token_cache_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match change {
            // Its ID is write-once (TS-0001 7.1.16), so the token keeps the
            // one this PDP knows (and reports when it is presented again,
            // without writing to the PIP); the PIP's `<token>` is write-once
            // too, but one deleted and stored again may hold another object,
            // which is fetched again at its next use by ID, so that every
            // PDP of the CSE uses the one the PIP holds. (A fetch already
            // under way may still cache the object it got.)
            TokensChanged::Stored(token_id) => {
                if let Some(lti) = self.local_by_token.get(token_id) {
                    self.local
                        .remove_if(lti.as_str(), |_, t| t.token_id() == token_id);
                }
            }
            TokensChanged::Deleted(token_id) => {
                self.token_epoch.fetch_add(1, Ordering::AcqRel);
                if let Some((_, lti)) = self.local_by_token.remove(token_id) {
                    self.local.remove_if(&lti, |_, t| t.token_id() == token_id);
                }
            }
            TokensChanged::All => {
                self.token_epoch.fetch_add(1, Ordering::AcqRel);
                self.local.clear();
                self.local_by_token.clear();
            }
        }
    }

    /// Stores `token` in the PIP's token repository with the Local-Token-ID
    /// `proposed`, and returns the one the PIP holds for it: `proposed`, or
    /// the token's first when it had one (TS-0003 7.3.2.3 step 6.2). `None`:
    /// the PIP stored the token without one (it predates the field).
    async fn store_local(
        &self,
        pip: &PolicyInformationPointClient<Channel>,
        token: &VerifiedToken,
        proposed: &str,
    ) -> Result<Option<String>, String> {
        let claims = token.claims();
        let record = pb::Token {
            token_id: claims.token_id.clone(),
            token_object: token.compact().to_owned(),
            version: claims.version.clone(),
            issuer: claims.issuer.clone(),
            holder: claims.holder.clone(),
            not_before: Some(authz_proto::convert::timestamp_to_pb(&claims.not_before)),
            not_after: Some(authz_proto::convert::timestamp_to_pb(&claims.not_after)),
            token_name: claims.token_name.clone().unwrap_or_default(),
            audience: claims.audience.clone(),
            // `tkps` in its short-name form, as the `<token>` resource holds it.
            permissions_json: claims
                .to_claim_set()
                .get("tkps")
                .map(ToString::to_string)
                .unwrap_or_default(),
            extension: claims.extension.clone().unwrap_or_default(),
            local_token_id: proposed.to_owned(),
        };
        let mut client = pip.clone();
        let call = client.put_token(pb::PutTokenRequest {
            originator: self.config.pip_writer.clone(),
            token: Some(record),
        });
        let stored = tokio::time::timeout(self.config.deadline, call)
            .await
            .map_err(|_| "PIP timed out".to_owned())?
            .map_err(|s| format!("PIP refused: {}", status_message(&s)))?
            .into_inner();
        if stored.local_token_id.is_empty() {
            return Ok(None);
        }
        // Reported to the originator as is, and sent back in `ltids`, which
        // must be an NCName.
        if stored.token_id != claims.token_id
            || !authz_proto::convert::is_ncname(&stored.local_token_id)
        {
            return Err(format!(
                "the PIP answered token {} with Local-Token-ID '{}'",
                stored.token_id, stored.local_token_id
            ));
        }
        Ok(Some(stored.local_token_id))
    }

    /// The token of a Local-Token-ID this PDP does not hold (TS-0003
    /// 7.3.2.3 step 6.1.2): from the PIP, where another PDP of the hosting
    /// CSE, or this one before a restart, stored it; verified like a token
    /// in the request (signature, issuer, audience, holder, validity: step
    /// 6.1.3), then cached. Without a PIP the ID is unknown: a Deny.
    async fn fetch_local(
        &self,
        lti: &str,
        ctx: &VerifyContext,
    ) -> Result<Arc<VerifiedToken>, TokenFailure> {
        let Some(pip) = &self.pip else {
            return Err(TokenFailure::Rejected(format!(
                "local token ID {lti} is not assigned here"
            )));
        };
        let unavailable = |why: String| TokenFailure::Unavailable {
            what: "local token ID",
            id: lti.to_owned(),
            reason: why,
        };
        let epoch = self.token_epoch();
        let mut client = pip.clone();
        let call = client.get_tokens(pb::GetTokensRequest {
            token_ids: Vec::new(),
            local_token_ids: vec![lti.to_owned()],
        });
        let answer = tokio::time::timeout(self.config.deadline, call)
            .await
            .map_err(|_| unavailable("PIP timed out".to_owned()))?
            .map_err(|s| unavailable(format!("PIP: {}", status_message(&s))))?
            .into_inner();
        let stored = answer
            .tokens
            .into_iter()
            .find(|t| t.local_token_id == lti)
            .ok_or_else(|| {
                TokenFailure::Rejected(format!(
                    "local token ID {lti} is not assigned at this hosting CSE (the PIP's token repository does not hold it)"
                ))
            })?;
        // A token from the repository is the originator's only once it
        // passes every check a token in the request passes.
        let verified = self
            .verify_refetching(&stored.token_object, ctx)
            .await
            .map_err(|e| {
                if e.is_malformed() {
                    TokenFailure::Rejected(format!(
                        "local token ID {lti} cannot be used: the PIP holds a token for it that is not a well-formed oneM2M JWT ({e})"
                    ))
                } else if let Some(failure) =
                    self.unverifiable(&e, &format!("local token ID {lti}"), lti)
                {
                    failure
                } else {
                    TokenFailure::Rejected(format!(
                        "local token ID {lti} (token {}) rejected: {e}",
                        stored.token_id
                    ))
                }
            })?;
        if verified.token_id() != stored.token_id {
            return Err(TokenFailure::Rejected(format!(
                "local token ID {lti}: the PIP holds token {} under token ID {}",
                verified.token_id(),
                stored.token_id
            )));
        }
        let verified = Arc::new(verified);
        if self.make_room() {
            self.cache_local(lti, &verified, epoch);
        }
        Ok(verified)
    }

    async fn fetch_token(
        &self,
        token_id: &str,
        hosting_cse_id: &str,
    ) -> Result<String, TokenFailure> {
        let unavailable = |why: String| TokenFailure::Unavailable {
            what: "token ID",
            id: token_id.to_owned(),
            reason: why,
        };
        let fqdn = issuer_fqdn(token_id);
        let mut das = fqdn.and_then(|f| self.das_for_fqdn(f));
        // Its DAS may be one whose key set (which names its FQDN) is not
        // loaded yet: fetched now, as for a token sent by value.
        if das.is_none() && !self.keys_loaded() && self.load_missing_key_sets().await {
            das = fqdn.and_then(|f| self.das_for_fqdn(f));
        }
        // Still not known: a DAS that could not be asked may issue it, so
        // its not being found anywhere decides nothing (Decision 10).
        let unasked = || {
            self.unloaded_dases().map(|u| {
                unavailable(format!(
                    "no loaded DAS key set names its FQDN, and the key set of {u} (which may) could not be fetched"
                ))
            })
        };
        // Its issuer first (Decision 8), then the Token Repository, the
        // PIP (TS-0003 7.4.3 step 2): a token stored there, whose DAS does
        // not know it or cannot be asked, is found all the same.
        let from_das = match das {
            Some(das) => {
                let mut client = das.client.clone();
                let call = client.get_tokens(das.request(pb::GetDasTokensRequest {
                    hosting_cse_id: hosting_cse_id.to_owned(),
                    token_ids: vec![token_id.to_owned()],
                }));
                let answer = tokio::time::timeout(self.config.deadline, call)
                    .await
                    .map_err(|_| unavailable(format!("DAS {} timed out", das.endpoint)))
                    .and_then(|r| {
                        r.map_err(|s| {
                            unavailable(format!("DAS {}: {}", das.endpoint, status_message(&s)))
                        })
                    })
                    .map(|r| r.into_inner().tokens);
                match answer {
                    Ok(mut tokens) if !tokens.is_empty() => return Ok(tokens.swap_remove(0)),
                    other => Some(other),
                }
            }
            None => None,
        };
        let Some(pip) = &self.pip else {
            return Err(match from_das {
                Some(Err(failure)) => failure,
                Some(Ok(_)) => {
                    TokenFailure::Rejected(format!("token ID {token_id} is unknown to its issuer"))
                }
                None => unasked().unwrap_or_else(|| {
                    unavailable("no configured DAS issues it and no PIP is configured".to_owned())
                }),
            });
        };
        let mut client = pip.clone();
        let call = client.get_tokens(pb::GetTokensRequest {
            token_ids: vec![token_id.to_owned()],
            local_token_ids: Vec::new(),
        });
        let stored = tokio::time::timeout(self.config.deadline, call)
            .await
            .map_err(|_| unavailable("PIP timed out".to_owned()))
            .and_then(|r| r.map_err(|s| unavailable(format!("PIP: {}", status_message(&s)))));
        if let Ok(r) = &stored
            && let Some(t) = r.get_ref().tokens.first()
        {
            return Ok(t.token_object.clone());
        }
        match (stored, from_das) {
            // What could not be asked leaves the token undetermined.
            (_, Some(Err(failure))) | (Err(failure), _) => Err(failure),
            (Ok(_), Some(Ok(_))) => Err(TokenFailure::Rejected(format!(
                "token ID {token_id} is unknown to its issuer and to the PIP's token repository"
            ))),
            (Ok(_), None) => Err(unasked().unwrap_or_else(|| {
                TokenFailure::Rejected(format!(
                    "token ID {token_id} is unknown to the PIP's token repository"
                ))
            })),
        }
    }

    /// Resolves and verifies the tokens of a request (`tkns`, `tids`,
    /// `ltids`) and what they grant on `target`. Local-Token-IDs are
    /// assigned to its new tokens only when all of them passed, so that each
    /// assignment reaches the originator in the grant (7.3.2.3 step 7.1).
    pub async fn resolve_tokens(
        &self,
        req: &pb::DecisionRequest,
        hosting: &HostingContext,
        target: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenGrant, TokenFailure> {
        let ctx =
            VerifyContext::with_hosting(hosting.clone(), &req.originator, now).map_err(|e| {
                TokenFailure::Malformed {
                    field: "originator".to_owned(),
                    message: e.to_string(),
                }
            })?;
        let hosting_cse_id = ctx.hosting_cse_id();
        let mut grant = TokenGrant::default();
        // Tokens from `tkns` and `tids`, which get a Local-Token-ID once
        // every token of the request passed.
        let mut fresh: Vec<Arc<VerifiedToken>> = Vec::new();
        for (i, token) in req.tokens.iter().enumerate() {
            let verified = Arc::new(self.verify(token, &ctx, &format!("tokens[{i}]")).await?);
            grant.add(&verified, target, ctx.hosting());
            fresh.push(verified);
        }
        for token_id in &req.token_ids {
            let compact = self.fetch_token(token_id, &hosting_cse_id).await?;
            // A malformed token from the DAS or PIP is a retrieval failure,
            // not the originator's invalid argument (7.3.2.3 step 6.1.4,
            // Decision 9): a Deny.
            let verified = self.verify_refetching(&compact, &ctx).await.map_err(|e| {
                if e.is_malformed() {
                    TokenFailure::Rejected(format!(
                        "token ID {token_id} cannot be used: its issuer returned a token that is not a well-formed oneM2M JWT ({e})"
                    ))
                } else if let Some(failure) =
                    self.unverifiable(&e, &format!("token ID {token_id}"), token_id)
                {
                    failure
                } else {
                    TokenFailure::Rejected(format!("token {token_id} rejected: {e}"))
                }
            })?;
            if verified.token_id() != token_id {
                return Err(TokenFailure::Rejected(format!(
                    "token {token_id}: its issuer returned token {}",
                    verified.token_id()
                )));
            }
            let verified = Arc::new(verified);
            grant.add(&verified, target, ctx.hosting());
            fresh.push(verified);
        }
        for lti in &req.local_token_ids {
            let cached = self.local.get(lti).map(|t| t.clone());
            let token = match cached {
                Some(token) => {
                    // Bound first: the trust store's guard must not live
                    // across the PIP call below.
                    let checked = self.trust().check_cached(&token, &ctx);
                    match checked {
                        Ok(()) => token,
                        Err(e) => {
                            let expired = matches!(e, TokenError::Expired { .. });
                            if expired {
                                self.local.remove(lti);
                                self.local_by_token.remove(token.token_id());
                            }
                            if expired && self.pip.is_some() {
                                // TS-0001 7.1.16: once its token expired, the
                                // PIP may have given the ID to another token.
                                self.fetch_local(lti, &ctx).await?
                            } else if let Some(failure) =
                                self.unverifiable(&e, &format!("local token ID {lti}"), lti)
                            {
                                return Err(failure);
                            } else {
                                return Err(TokenFailure::Rejected(format!(
                                    "local token ID {lti} (token {}) rejected: {e}",
                                    token.token_id()
                                )));
                            }
                        }
                    }
                }
                None => self.fetch_local(lti, &ctx).await?,
            };
            grant.add(&token, target, ctx.hosting());
        }
        // Only now: a request that fails answers with an error and no `ati`
        // (7.3.2.3 step 6.1.4), so an ID assigned before a later token
        // failed would never be reported as new (step 7.1).
        for token in &fresh {
            self.assign_local(token, &mut grant).await;
        }
        Ok(grant)
    }

    /// Tokens a Direct consultation gave this originator that are still
    /// valid for this request.
    pub fn direct_grant(
        &self,
        hosting: &HostingContext,
        originator: &str,
        target: &str,
        now: DateTime<Utc>,
    ) -> TokenGrant {
        let mut grant = TokenGrant::default();
        let Ok(ctx) = VerifyContext::with_hosting(hosting.clone(), originator, now) else {
            return grant;
        };
        if let Some(mut tokens) = self.direct_tokens.get_mut(ctx.originator()) {
            let trust = self.trust();
            tokens.retain(|t| {
                !matches!(trust.check_cached(t, &ctx), Err(TokenError::Expired { .. }))
            });
            for t in tokens.iter() {
                if trust.check_cached(t, &ctx).is_ok() {
                    grant.add(t, target, ctx.hosting());
                }
            }
        }
        grant
    }

    /// The DASes to consult or name for `target`: the `dap` of an enabled
    /// DAC of the target, else of its parent, that are configured DASes;
    /// else the default DAS. With the DAC's `dal`. `None` when the `daci`
    /// that decides (the target's, else its parent's) links DACs but none
    /// enabled: dynamic authorization is switched off for the target (spec
    /// notes §6.3 step 3: 4103, no other DAS either).
    pub fn dases_for(
        &self,
        snap: &Snapshot,
        target: &str,
        now: DateTime<Utc>,
    ) -> Option<(Vec<String>, Option<String>)> {
        let view = snap.view(now);
        let mut subject = view.resource(target);
        for _ in 0..2 {
            let Some(r) = subject else { break };
            let mut found = Vec::new();
            let mut lifetime = None;
            // Whether `daci` links any DAC at all: then it is set and valid,
            // and it decides, also when every DAC it links is disabled (the
            // owner's off switch: 4103, no parent, no default; spec notes
            // §6.3 steps 2-3).
            let (mut linked, mut enabled) = (false, false);
            for dac_id in r.daci.iter().flatten() {
                let Some(dac) = view
                    .resource(dac_id)
                    .filter(|d| d.resource_type == DYNAMIC_AUTHORIZATION_CONSULTATION)
                else {
                    continue;
                };
                linked = true;
                if dac.dac_enabled == Some(true) {
                    enabled = true;
                    for poa in &dac.dac_poa {
                        match self.das_for_endpoint(poa) {
                            Some(d) => found.push(d.endpoint.clone()),
                            None => {
                                tracing::warn!(dac = %dac_id, poa = %poa, "DAC names a DAS that is not configured; skipped")
                            }
                        }
                    }
                    lifetime = lifetime.or_else(|| dac.dac_lifetime.clone());
                }
            }
            if linked {
                return enabled.then_some((found, lifetime));
            }
            // TS-0001 9.6.1.3.2: `daci` unset or invalid → the parent's.
            subject = r.parent_id.as_deref().and_then(|p| view.resource(p));
        }
        Some((
            self.config
                .default_das
                .iter()
                .map(|d| canonical_endpoint(d).to_owned())
                .collect(),
            None,
        ))
    }

    /// Consults `endpoint` with `dreq` (Direct DA, 7.3.2.2), coalescing
    /// identical concurrent consultations; verifies and caches the returned
    /// tokens, stores a `dai` grant that has a lifetime in the PRP, bound to
    /// the target (see [`Consultation`] for
    /// a `dai` that cannot be used), and returns what was granted on the
    /// target. An error (DAS unreachable, slow or refusing, or a returned
    /// token that fails verification) grants nothing.
    pub async fn consult(
        &self,
        endpoint: &str,
        dreq: pb::DasRequest,
        hosting: &HostingContext,
        now: DateTime<Utc>,
    ) -> Result<Consultation, String> {
        let das = self
            .das_for_endpoint(endpoint)
            .ok_or_else(|| format!("DAS {endpoint} is not configured"))?;
        let hosting_cse_id = format!("//{}/{}", hosting.sp_fqdn(), hosting.cse_id());
        // Identical means the whole request the DAS would see: two requests
        // that differ in any of it (IP, location, claimed roles, time,
        // Token-IDs) may get different answers, so neither may take the
        // other's tokens or grant.
        let key = {
            use prost::Message;
            let mut key = format!("{}\n{}\n", das.endpoint, hosting_cse_id).into_bytes();
            // Encoding into a `Vec` cannot run out of room.
            dreq.encode(&mut key)
                .map_err(|e| format!("DAS request: {e}"))?;
            key
        };
        let cell = self
            .inflight
            .entry(key.clone())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let deadline = self.config.deadline;
        // The first caller consults and processes the answer; callers that
        // asked the same meanwhile share the result, so its tokens are
        // cached and its dai stored once.
        let outcome = cell
            .get_or_init(|| async {
                let mut client = das.client.clone();
                let call = client.consult(das.request(pb::ConsultRequest {
                    hosting_cse_id: hosting_cse_id.clone(),
                    das_request: Some(dreq.clone()),
                }));
                let response = match tokio::time::timeout(deadline, call).await {
                    Ok(Ok(r)) => r.into_inner(),
                    Ok(Err(s)) => {
                        return Err(format!(
                            "DAS {} refused: {}",
                            das.endpoint,
                            status_message(&s)
                        ));
                    }
                    Err(_) => {
                        return Err(format!(
                            "DAS {} did not answer within {} ms",
                            das.endpoint,
                            deadline.as_millis()
                        ));
                    }
                };
                self.take_response(das, &response, &dreq, hosting, now)
                    .await
            })
            .await
            .clone();
        // Later requests consult again (the grant is cached instead).
        self.inflight.remove(&key);
        outcome
    }

    /// How many tokens from Direct consultations are kept for `holder`
    /// (absolute ID).
    pub fn direct_tokens_of(&self, holder: &str) -> usize {
        self.direct_tokens.get(holder).map_or(0, |t| t.len())
    }

    /// Keeps a token from a Direct consultation for its holder: once per
    /// Token-ID, without the holder's expired tokens, at most
    /// [`MAX_TOKENS_PER_HOLDER`] per holder (the newest) and
    /// [`MAX_CACHED_TOKENS`] holders (past that, holders whose tokens all
    /// expired are dropped, then everyone: the DAS is consulted again).
    fn keep_direct_token(&self, holder: &str, token: Arc<VerifiedToken>, now: DateTime<Utc>) {
        if self.direct_tokens.len() >= MAX_CACHED_TOKENS && !self.direct_tokens.contains_key(holder)
        {
            self.direct_tokens.retain(|_, tokens| {
                tokens.retain(|t| t.expires_at() > now);
                !tokens.is_empty()
            });
            if self.direct_tokens.len() >= MAX_CACHED_TOKENS {
                self.direct_tokens.clear();
            }
        }
        let mut tokens = self.direct_tokens.entry(holder.to_owned()).or_default();
        tokens.retain(|t| t.expires_at() > now && t.token_id() != token.token_id());
        tokens.push(token);
        let excess = tokens.len().saturating_sub(MAX_TOKENS_PER_HOLDER);
        tokens.drain(..excess);
    }

    /// What a DAS's answer grants (7.3.2.2 step 4.1): its tokens verified
    /// and cached for the originator, its `dai` stored as a dynamic ACP.
    async fn take_response(
        &self,
        das: &Das,
        response: &pb::DasResponse,
        dreq: &pb::DasRequest,
        hosting: &HostingContext,
        now: DateTime<Utc>,
    ) -> Result<Consultation, String> {
        // The answer is judged when it arrives, not when it was asked for:
        // a token or grant that ended during the call has ended.
        let now = Utc::now().max(now);
        let target = dreq.targeted_resource_id.as_str();
        let ctx = VerifyContext::with_hosting(hosting.clone(), &dreq.originator, now)
            .map_err(|e| format!("originator: {e}"))?;
        let das_issuer = das.identity().as_ref().map(|i| i.issuer.clone());
        let mut grant = TokenGrant::default();
        let mut ignored = Vec::new();
        for (i, token) in response.tokens.iter().enumerate() {
            // 7.3.2.2 step 4.1.1: verify each token before use; one that
            // fails is not used, and takes nothing else with it.
            let verified = match self.verify(token, &ctx, &format!("DAS token {i}")).await {
                Ok(v) => v,
                Err(e) => {
                    ignored.push(e.to_string());
                    continue;
                }
            };
            if das_issuer.as_deref() != Some(verified.claims().issuer.as_str()) {
                ignored.push(format!(
                    "DAS token {i} was issued by {}, not by the consulted DAS",
                    verified.claims().issuer
                ));
                continue;
            }
            let verified = Arc::new(verified);
            grant.add(&verified, target, ctx.hosting());
            self.keep_direct_token(ctx.originator(), verified, now);
        }
        let tokens_failed = !ignored.is_empty();
        if let Some(dai) = &response.dynamic_acp_info {
            // 7.3.2.2 step 4.1.2; a dai that cannot be used does not take
            // the tokens verified above with it.
            // The request's own time, as the DAS was told it (`rts`).
            let request_time = AbsRelTimestamp::parse(&dreq.request_timestamp)
                .and_then(|t| t.resolve(now))
                .unwrap_or(now);
            match dai_grant(&das.endpoint, dai, now, request_time) {
                Ok(Some(DaiGrant { acp, until })) => {
                    grant.ends.push((acp.id().clone(), until.unwrap_or(now)));
                    grant.push_acp(acp, until);
                    // Without `pl` it counts for this decision only: not
                    // reusable at all, said with a time before any clock's
                    // (the epoch), so that a PEP whose clock lags this
                    // PDP's does not read the decision's own time as still
                    // to come.
                    grant.limit(until.unwrap_or(DateTime::<Utc>::UNIX_EPOCH));
                    match until {
                        Some(until) => {
                            // Bound to the target itself (Decision 7): bound
                            // to a contentInstance's parent, it would also
                            // grant on the parent and its other children.
                            self.store_dynamic(target, &dai.granted_privileges, until)
                                .await
                        }
                        None => {
                            tracing::debug!(das = %das.endpoint, target = %target, "dai without pl: counted for this decision only")
                        }
                    }
                }
                Ok(None) => {}
                Err(why) => {
                    tracing::warn!(das = %das.endpoint, target = %target, reason = %why, "dai ignored");
                    ignored.push(format!("DAS {} dai ignored: {why}", das.endpoint));
                }
            }
        }
        // Nothing usable, and a token failed: no usable answer (the Deny is
        // then indeterminate, as for a DAS that did not answer).
        if tokens_failed && grant.acps.is_empty() && grant.roles.is_empty() {
            return Err(ignored.join("; "));
        }
        for why in &ignored {
            tracing::warn!(das = %das.endpoint, target = %target, reason = %why, "part of a DAS answer ignored");
        }
        Ok(Consultation { grant, ignored })
    }

    /// Stores a `dai` grant as a dynamic ACP bound to `target`, the
    /// resource the grant was for (Decision 7).
    async fn store_dynamic(
        &self,
        target: &str,
        privileges: &Option<pb::SetOfAcrs>,
        expires_at: DateTime<Utc>,
    ) {
        let Some(prp) = &self.prp else { return };
        let mut client = prp.clone();
        let call = client.create_dynamic_acp(pb::CreateDynamicAcpRequest {
            originator: self.config.prp_writer.clone(),
            target: target.to_owned(),
            privileges: privileges.clone(),
            expires_at: Some(authz_proto::convert::timestamp_to_pb(&expires_at)),
            acp_id: String::new(),
        });
        match tokio::time::timeout(self.config.deadline, call).await {
            Ok(Ok(r)) => {
                tracing::info!(target = %target, id = %r.get_ref().acp_id, until = %expires_at, "dynamic ACP stored")
            }
            Ok(Err(s)) => {
                tracing::warn!(target = %target, error = %status_message(&s), "dynamic ACP not stored")
            }
            Err(_) => tracing::warn!(target = %target, "dynamic ACP not stored: PRP timed out"),
        }
    }

    /// The `dreq` for a request (TS-0004 dynAuthDasRequest) on `target`
    /// (the request's, CSE-relative when it is of the hosting CSE). Its
    /// `trt`, mandatory in TS-0003 table 7.3.2.2-1 and TS-0004 7.5.1.2.10,
    /// is the request's `target_type`, else the target's `ty` in `snap`.
    pub fn das_request(
        req: &pb::DecisionRequest,
        target: &str,
        snap: &Snapshot,
        originator: &str,
        now: DateTime<Utc>,
        rfa: Vec<String>,
        lifetime: Option<String>,
    ) -> pb::DasRequest {
        let rts = req
            .request_time
            .as_ref()
            .and_then(|t| authz_proto::convert::timestamp_field(t, "request_time").ok())
            .unwrap_or(now);
        pb::DasRequest {
            originator: originator.to_owned(),
            targeted_resource_type: req.target_type.or_else(|| snap.resource_type(target)),
            operation: req.operation,
            originator_ip: req.originator_ip.clone(),
            originator_location: req.originator_location.as_ref().and_then(|l| {
                if !l.country_codes.is_empty() {
                    Some(pb::LocationRegion {
                        region: Some(pb::location_region::Region::CountryCodes(
                            pb::CountryCodes {
                                codes: l.country_codes.clone(),
                            },
                        )),
                    })
                } else {
                    l.position.as_ref().map(|p| pb::LocationRegion {
                        region: Some(pb::location_region::Region::Circle(pb::Circle {
                            latitude: p.latitude,
                            longitude: p.longitude,
                            radius_m: p.uncertainty_m,
                        })),
                    })
                }
            }),
            originator_role_ids: req.role_ids.clone(),
            request_timestamp: format_timestamp(rts),
            targeted_resource_id: target.to_owned(),
            proposed_privileges_lifetime: lifetime.unwrap_or_default(),
            role_ids_from_acps: rfa,
            token_ids: req.token_ids.clone(),
            author_sign_indicator: None,
        }
    }

    /// `dreq` as sent to, or named for, the DAS at `endpoint`: with only
    /// the Role-IDs of `rfa` that this DAS issues ([`Self::roles_for_das`]),
    /// as 7.3.2.2 step 2.2.1 groups them per DAS (7.3.2.3 step 2.2 forms
    /// the Indirect list the same way).
    pub fn das_request_for(&self, endpoint: &str, dreq: &pb::DasRequest) -> pb::DasRequest {
        pb::DasRequest {
            role_ids_from_acps: self.roles_for_das(endpoint, &dreq.role_ids_from_acps),
            ..dreq.clone()
        }
    }

    /// Token Request Information for a denied request (7.3.2.3 step 2):
    /// each DAS of `endpoints` with its own `dreq`
    /// ([`Self::das_request_for`]), whose `trid` is absolute at `hosting`
    /// like its `or`: the originator presents this `dreq` to the DAS (steps
    /// 2.2 and 3), which reads a relative ID at its own CSE, not at the
    /// hosting CSE.
    pub fn token_request_info(
        &self,
        endpoints: &[String],
        dreq: &pb::DasRequest,
        hosting: &HostingContext,
    ) -> pb::TokenRequestInfo {
        let trid = authz_core::ids::canonical_resource_id(&dreq.targeted_resource_id, hosting)
            .unwrap_or_else(|_| dreq.targeted_resource_id.clone());
        pb::TokenRequestInfo {
            das_info: endpoints
                .iter()
                .map(|uri| {
                    let full = pb::DasRequest {
                        targeted_resource_id: trid.clone(),
                        ..self.das_request_for(uri, dreq)
                    };
                    let (das_request, secured_das_request) = match self.protect(uri, &full) {
                        // The DAS shows none: its Role-IDs in the clear.
                        Protection::Clear => (full, String::new()),
                        // The Role-IDs go to the DAS only (7.3.2.3 step 2.2),
                        // and, while this PDP cannot encrypt to it (its key
                        // set not known yet), to no one.
                        protection => (
                            pb::DasRequest {
                                role_ids_from_acps: Vec::new(),
                                ..full
                            },
                            match protection {
                                Protection::Secured(sdr) => sdr,
                                _ => String::new(),
                            },
                        ),
                    };
                    pb::DasInfo {
                        uri: uri.clone(),
                        das_request: Some(das_request),
                        secured_das_request,
                    }
                })
                .collect(),
        }
    }

    /// How the `dreq` for the DAS at `endpoint` goes in Token Request
    /// Information: encrypted to the key the DAS publishes, as `sdr`
    /// (TS-0003 7.3.2.3 step 2.2: ESData applied so the originator does not
    /// see the Role-IDs), in the clear when the DAS publishes none, and
    /// withheld while this PDP does not know the DAS's key set (it may
    /// publish one) or cannot encrypt (the system's random source).
    fn protect(&self, endpoint: &str, dreq: &pb::DasRequest) -> Protection {
        let Some(das) = self.das_for_endpoint(endpoint) else {
            return Protection::Withheld;
        };
        let identity = das.identity();
        let Some(identity) = identity.as_ref() else {
            return Protection::Withheld;
        };
        let Some(key) = identity.request_key.as_ref() else {
            return Protection::Clear;
        };
        let mut plaintext = authz_proto::das_json::das_request_to_json(dreq).to_string();
        // Padded with JSON white space to a multiple of the block, so that
        // the ciphertext's length says little about the Role-IDs inside.
        let padded = plaintext.len().div_ceil(SDR_PADDING_BLOCK) * SDR_PADDING_BLOCK;
        plaintext.extend(std::iter::repeat_n(' ', padded - plaintext.len()));
        match authz_core::jwe::encrypt(
            plaintext.as_bytes(),
            key,
            authz_core::jwe::ContentEncryption::A256Gcm,
            false,
        ) {
            Ok(sdr) => Protection::Secured(sdr),
            Err(e) => {
                tracing::error!(das = %endpoint, error = %e, "sdr not made; the Role-IDs are withheld");
                Protection::Withheld
            }
        }
    }

    /// The configured DAS endpoints.
    pub fn endpoints(&self) -> Vec<String> {
        self.dases.iter().map(|d| d.endpoint.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DAS's published request key: none when empty; a public key of a
    /// key pair; anything else (no JSON, no usable JWK, a shared secret,
    /// which a published set cannot hold secretly) refuses the key set.
    #[test]
    fn request_key_is_a_public_key_or_none() {
        assert!(matches!(request_key(""), Ok(None)));
        let public = r#"{"kty":"EC","crv":"P-256","kid":"k","alg":"ECDH-ES+A256KW",
            "x":"CIstZ1YmRPTBW4JBwzMHFXJMWGWd13n8ndFpKXdJ5eU",
            "y":"lEbmBsk_LG9TLPtBO7JdP4UriumjeEKD2S37uVh3WEk"}"#;
        match request_key(public) {
            Ok(Some(key)) => assert_eq!(key.kid(), "k"),
            other => panic!("{other:?}"),
        }
        for bad in [
            "not json",
            r#"{"kty":"oct","kid":"s","alg":"A128KW","k":"AAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x":"AA","y":"AA"}"#,
        ] {
            let e = request_key(bad).expect_err(bad);
            assert!(e.contains("request_encryption_jwk"), "{e}");
        }
    }
}
