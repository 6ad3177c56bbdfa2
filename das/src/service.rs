//! The `DynamicAuthorizationServer` gRPC service (`das.proto`): a thin
//! adapter between the wire messages, the configured [`policy`](crate::policy)
//! evaluation, the token signer and the [`Store`] of issued tokens.
//!
//! - `Consult` (Direct DA, TS-0003 7.3.2.2): the caller's `hosting_cse_id`
//!   must be a configured consultant (any CSE when none are configured), and
//!   when that consultant has a secret the call must present it as
//!   `authorization: Bearer <secret>` (UNAUTHENTICATED when missing or
//!   wrong; without a secret the DAS takes the `hosting_cse_id` at the
//!   caller's word); the `dreq` is checked (INVALID_ARGUMENT naming
//!   `das_request.<field>`) and evaluated at its `rts`; the first matching
//!   policy grants a token whose `aud` is **only** the consulting CSE
//!   (7.3.2.2 step 3.1) and/or a `dai`.
//!   Tokens listed in `dreq.tids` that this DAS issued to the same holder,
//!   that are still valid and whose audience names the consulting CSE (as
//!   for `GetTokens`) are returned in `tkns` too; other IDs are left out
//!   alike. Nothing granted → an empty `DasResponse`.
//! - `IssueToken` (Indirect DA, 7.3.2.3 step 3): the originator
//!   authenticates with `authorization: Bearer <secret>` (UNAUTHENTICATED
//!   when missing or unknown); `dreq.or` must be that client's originator
//!   (PERMISSION_DENIED otherwise); policies are evaluated at the DAS clock,
//!   with the address the call came from (the transport peer) as the
//!   originator's IP: an `oip` in the request is checked for syntax and then
//!   ignored, since the originator would choose it. Its `olo` is the
//!   originator's own claim and only pre-filters: the conditions travel in
//!   the token's `pv`, which the hosting CSE checks at every use. Tokens
//!   carry the configured `audience`.
//! - `GetTokens` (7.3.2.3 step 5): valid stored tokens by ID whose
//!   audience names the caller's `hosting_cse_id` (required); unknown,
//!   expired IDs and tokens meant for other CSEs are listed apart, alike;
//!   restricted to consultants, and authenticated, like `Consult`.
//! - `GetKeySet`: the issuer, the FQDN and the public keys, for PDPs to
//!   configure their trust store.
//!
//! Every issued token is stored durably before it is returned. A request
//! that would get a token equal to one stored (same holder, audience,
//! policy, target, privileges, roles, issuer and signing key) that ends no
//! later and has at least half the new lifetime left gets that token again,
//! Token-ID included, and nothing is written; and a holder holds at most
//! [`MAX_TOKENS_PER_HOLDER`](crate::state::MAX_TOKENS_PER_HOLDER) valid
//! tokens: past that, issuing is RESOURCE_EXHAUSTED until one expires (see
//! [`state`](crate::state)).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use authz_proto::convert::set_of_acrs_to_pb;
use authz_proto::pb::dynamic_authorization_server_server::DynamicAuthorizationServer;
use authz_proto::{ConversionError, invalid_argument, pb};
use authz_store::Store;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::config::{Client, DasConfig, absolute_cse_id, cse_id_string};
use crate::policy::{Award, Channel, evaluate};
use crate::request::das_request_from_pb;
use crate::state::{DasMutation, DasSchema, DasStoreError, IssuedToken, TokenGrant};

struct Inner {
    config: Arc<DasConfig>,
    store: Arc<Store<DasSchema>>,
    closing: watch::Sender<bool>,
}

/// The DAS service; cheap to clone.
#[derive(Clone)]
pub struct DasService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DasService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DasService")
            .field("issuer", &self.inner.config.issuer)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

fn bad(field: &str, message: impl Into<String>) -> Status {
    invalid_argument(&[ConversionError {
        field: field.to_owned(),
        message: message.into(),
    }])
}

fn store_status(e: DasStoreError) -> Status {
    if let DasStoreError::HolderFull { .. } = e {
        // The client's own doing, not a fault of the DAS.
        tracing::warn!(error = %e, "token refused");
        return Status::resource_exhausted(e.to_string());
    }
    tracing::error!(error = %e, "DAS store failure");
    Status::internal(format!("store: {e}"))
}

/// A new Token-ID: 128 random bits in hex, `@fqdn` (TS-0001 7.1.15: it
/// names its issuer and is not guessable).
fn new_token_id(fqdn: &str) -> Result<String, Status> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Status::internal(format!("no randomness for a Token-ID: {e}")))?;
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{name}@{fqdn}"))
}

/// Who is calling, as the transport and the metadata tell: what a handler
/// needs beyond the message to authenticate and evaluate a call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The `authorization` metadata value, if any (`Bearer <secret>`).
    pub authorization: Option<&'a str>,
    /// The address the call came from (the TCP peer), if known.
    pub peer: Option<IpAddr>,
}

impl<'a> Caller<'a> {
    /// The caller of a gRPC request: its `authorization` metadata and its
    /// peer address (an IPv4-mapped IPv6 address as the IPv4 address). A
    /// non-ASCII `authorization` value is UNAUTHENTICATED.
    pub fn of<T>(request: &'a Request<T>) -> Result<Self, Status> {
        let authorization = match request.metadata().get("authorization") {
            Some(v) => Some(v.to_str().map_err(|_| {
                Status::unauthenticated("the authorization metadata is not ASCII text")
            })?),
            None => None,
        };
        Ok(Self {
            authorization,
            peer: request.remote_addr().map(|a| a.ip().to_canonical()),
        })
    }
}

/// The secret of `authorization: Bearer <secret>`.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, secret) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| secret.trim())
        .filter(|s| !s.is_empty())
}

impl DasService {
    /// A service answering with `config`, keeping tokens in `store`.
    pub fn new(config: Arc<DasConfig>, store: Arc<Store<DasSchema>>) -> Self {
        let (closing, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                closing,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DasConfig {
        &self.inner.config
    }

    /// Stops the sweeper (call on shutdown).
    pub fn shutdown(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves the `hosting_cse_id` of a request and checks that it may
    /// consult: a configured consultant (anyone when none are configured)
    /// and, when that consultant has a secret, a caller presenting it.
    /// Returns its hosting context.
    fn consultant(
        &self,
        hosting_cse_id: &str,
        authorization: Option<&str>,
    ) -> Result<authz_core::HostingContext, Status> {
        let config = &self.inner.config;
        if hosting_cse_id.is_empty() {
            return Err(bad("hosting_cse_id", "required"));
        }
        let hosting = absolute_cse_id(hosting_cse_id, config.hosting.sp_fqdn())
            .map_err(|m| bad("hosting_cse_id", m))?;
        let cse = cse_id_string(&hosting);
        if config.consultants.is_empty() {
            return Ok(hosting);
        }
        let consultant = config.consultant(&cse).ok_or_else(|| {
            Status::permission_denied(format!("{cse} is not a configured consultant of this DAS"))
        })?;
        if consultant.has_secret() {
            let secret = authorization.and_then(bearer).ok_or_else(|| {
                Status::unauthenticated(format!(
                    "calls as consultant {cse} need `authorization: Bearer <secret>` metadata"
                ))
            })?;
            if !consultant.secret_matches(secret.as_bytes()) {
                return Err(Status::unauthenticated(format!(
                    "the bearer secret is not that of consultant {cse}"
                )));
            }
        }
        Ok(hosting)
    }

    /// Authenticates an `IssueToken` caller from its `authorization`
    /// metadata value.
    fn authenticate(&self, authorization: Option<&str>) -> Result<&Client, Status> {
        let secret = authorization.and_then(bearer).ok_or_else(|| {
            Status::unauthenticated("IssueToken needs `authorization: Bearer <secret>` metadata")
        })?;
        self.inner
            .config
            .client_by_secret(secret.as_bytes())
            .ok_or_else(|| Status::unauthenticated("the bearer secret is not that of a client"))
    }

    /// The token of `award` for `audience` at `now`: a stored one with the
    /// same holder, audience and grant when it ends no later than a new one
    /// would and has at least half a new one's lifetime left, else a new
    /// one, signed and stored. Returns its ID and the token.
    ///
    /// Reuse keeps a client that repeats a request (a retry loop) from
    /// adding a durable token each time; the half keeps it from being
    /// handed a token about to expire.
    async fn issue(
        &self,
        award: &Award,
        audience: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<(String, String), Status> {
        let config = &self.inner.config;
        let key = config
            .signing_key()
            .ok_or_else(|| Status::internal("no signing key configured"))?;
        // Nested Sign-then-encrypt for a CSE configured for it (TS-0003
        // 7.3.2.6.2).
        let encryption = config.encryption_for(&audience);
        let grant = TokenGrant {
            issuer: config.issuer.clone(),
            kid: key.kid.clone(),
            policy: award.policy.clone(),
            target: award.target.clone(),
            privileges: award.privileges.clone(),
            roles: award.roles.clone(),
            encrypted_to: encryption.map(|e| {
                format!(
                    "{} {} {} {}",
                    e.cse_id,
                    e.key.kid(),
                    e.key.algorithm().name(),
                    e.enc.name()
                )
            }),
        };
        let min_remaining = (award.not_after - award.not_before) / 2;
        let reused = self.inner.store.read(|_, s| {
            s.reusable(
                &award.holder,
                &audience,
                &grant,
                now,
                award.not_after,
                min_remaining,
            )
            .map(|t| (t.token_id.clone(), t.jwt.clone(), t.expires_at))
        });
        if let Some((token_id, jwt, not_after)) = reused {
            tracing::info!(
                token_id = %token_id, holder = %award.holder, policy = %award.policy,
                target = %award.target, not_after = %not_after, "stored token given again"
            );
            return Ok((token_id, jwt));
        }
        let token_id = new_token_id(&config.fqdn)?;
        let claims = award
            .token_claims(token_id.clone(), &config.issuer, audience)
            .ok_or_else(|| Status::internal("the grant has no token"))?;
        let mut jwt = key
            .signer
            .sign(&claims)
            .map_err(|e| Status::internal(format!("cannot sign: {e}")))?;
        if let Some(e) = encryption {
            jwt = authz_core::jwe::encrypt(jwt.as_bytes(), &e.key, e.enc, true)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        let record = IssuedToken {
            token_id: token_id.clone(),
            jwt: jwt.clone(),
            holder: claims.holder.clone(),
            expires_at: claims.not_after,
            audience: claims.audience.clone(),
            grant: Some(Box::new(grant)),
        };
        self.commit(DasMutation::Issue { token: record, now })
            .await?;
        tracing::info!(
            token_id = %token_id, holder = %claims.holder, policy = %award.policy,
            target = %award.target, not_after = %claims.not_after, "token issued"
        );
        Ok((token_id, jwt))
    }

    async fn commit(&self, mutation: DasMutation) -> Result<(), Status> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.apply(mutation))
            .await
            .map_err(|e| Status::internal(format!("store task failed: {e}")))?
            .map_err(store_status)?;
        Ok(())
    }

    /// Answers `Consult` from `caller` at `now` (also used in-process by
    /// tests).
    pub async fn consult(
        &self,
        caller: Caller<'_>,
        req: &pb::ConsultRequest,
        now: DateTime<Utc>,
    ) -> Result<pb::DasResponse, Status> {
        let config = &self.inner.config;
        let hosting = self.consultant(&req.hosting_cse_id, caller.authorization)?;
        let dreq = req
            .das_request
            .as_ref()
            .ok_or_else(|| bad("das_request", "required"))?;
        let request = das_request_from_pb(
            dreq,
            "das_request",
            &hosting,
            now,
            Some(config.max_request_skew),
        )
        .map_err(|e| invalid_argument(&e))?;

        // Tokens asked for by ID (`tids`): this holder's, still valid, and
        // meant for this hosting CSE only (TS-0003 7.3.2.2 step 3.1: "The
        // 'audience' parameter shall contain only the HCSEs CSE-ID"; a token
        // also naming other CSEs, as IssueToken's configured audience may,
        // is not a Direct token). Others are dropped like unknown IDs.
        // That one entry is the consulting CSE's own ID, not a wildcard
        // that also names it.
        let consulting = format!("//{}/{}", hosting.sp_fqdn(), hosting.cse_id());
        let known = self.inner.store.read(|_, s| {
            request
                .token_ids
                .iter()
                .filter_map(|id| s.valid_for(id, &hosting, now))
                .filter(|t| t.audience.len() == 1 && t.audience[0] == consulting)
                .filter(|t| t.holder == request.originator)
                .map(|t| t.jwt.clone())
                .collect()
        });
        let mut response = pb::DasResponse {
            tokens: known,
            ..Default::default()
        };
        let Some(award) = evaluate(
            &config.policies,
            &request,
            &config.hosting,
            now,
            Channel::Consult,
        ) else {
            tracing::info!(
                consultant = %cse_id_string(&hosting), originator = %request.originator,
                target = %request.target, "nothing granted"
            );
            return Ok(response);
        };
        if let Some((gp, pl)) = award.dynamic_acp_info() {
            let mut errors = Vec::new();
            let gp = set_of_acrs_to_pb(&gp, "gp", &mut errors);
            if !errors.is_empty() {
                return Err(Status::internal(format!(
                    "granted privileges do not convert: {}",
                    authz_proto::convert::join_errors(&errors)
                )));
            }
            response.dynamic_acp_info = Some(pb::DynamicAcpInfo {
                granted_privileges: Some(gp),
                privileges_lifetime: pl,
            });
            tracing::info!(
                holder = %award.holder, policy = %award.policy, target = %award.target,
                not_after = %award.not_after, "dynamic ACP granted"
            );
        }
        if award.token {
            let (_, jwt) = self
                .issue(&award, vec![cse_id_string(&hosting)], now)
                .await?;
            // A reused token may also have been asked for in `tids`.
            if !response.tokens.contains(&jwt) {
                response.tokens.push(jwt);
            }
        }
        Ok(response)
    }

    /// Answers `IssueToken` for `caller` (its `authorization` metadata
    /// authenticates it; its `peer` address is the originator's IP the
    /// policies see, whatever `oip` says), at `now`.
    pub async fn issue_token(
        &self,
        caller: Caller<'_>,
        req: &pb::IssueTokenRequest,
        now: DateTime<Utc>,
    ) -> Result<pb::IssueTokenResponse, Status> {
        let config = &self.inner.config;
        let client = self.authenticate(caller.authorization)?;
        // Decrypted only for an authenticated client: the DAS is no
        // decryption service for anyone who asks.
        let secured;
        let (dreq, field) = if req.secured_das_request.is_empty() {
            let dreq = req
                .das_request
                .as_ref()
                .ok_or_else(|| bad("das_request", "required (or secured_das_request)"))?;
            (dreq, "das_request")
        } else {
            secured = self.secured_request(&req.secured_das_request)?;
            (&secured, "secured_das_request")
        };
        let mut request = das_request_from_pb(dreq, field, &config.hosting, now, None)
            .map_err(|e| invalid_argument(&e))?;
        // The originator would choose its own `oip`: `acip` is decided on
        // the address the call came from (none known: an `acip` rule does
        // not match).
        if request.ip.is_some_and(|ip| Some(ip) != caller.peer) {
            tracing::debug!(
                oip = ?request.ip, peer = ?caller.peer,
                "IssueToken: oip differs from the caller's address; the address is used"
            );
        }
        request.ip = caller.peer;
        if request.originator != client.originator {
            return Err(Status::permission_denied(format!(
                "{field}.originator {} is not the authenticated client {}",
                request.originator, client.originator
            )));
        }
        let mut response = pb::IssueTokenResponse::default();
        if let Some(award) = evaluate(
            &config.policies,
            &request,
            &config.hosting,
            now,
            Channel::IssueToken,
        ) && award.token
        {
            let (token_id, jwt) = self.issue(&award, config.audience.clone(), now).await?;
            response.token_ids.push(token_id);
            response.tokens.push(jwt);
        } else {
            tracing::info!(
                originator = %request.originator, target = %request.target,
                "no token granted"
            );
        }
        Ok(response)
    }

    /// The `dreq` a secured DAS request (`sdr`) carries: a JWE to one of
    /// this DAS's `request_decryption_keys` whose plaintext is the `dreq`
    /// in JSON short names (TS-0003 7.3.2.3 step 2.2). Anyone may encrypt
    /// to the published key, so it proves nothing of who wrote it: it is
    /// read like a `dreq` in the clear.
    fn secured_request(&self, sdr: &str) -> Result<pb::DasRequest, Status> {
        const FIELD: &str = "secured_das_request";
        let keys = &self.inner.config.request_keys;
        if keys.is_empty() {
            return Err(bad(
                FIELD,
                "this DAS publishes no request encryption key, so it reads no secured DAS request",
            ));
        }
        let decrypted = authz_core::jwe::decrypt(sdr, keys)
            .map_err(|e| bad(FIELD, format!("cannot be decrypted: {e}")))?;
        let value: serde_json::Value = serde_json::from_slice(&decrypted.plaintext)
            .map_err(|_| bad(FIELD, "its plaintext is not a dreq in JSON"))?;
        authz_proto::das_json::das_request_from_json(&value, FIELD)
            .map_err(|e| invalid_argument(&e))
    }

    /// Answers `GetTokens` from `caller` at `now`.
    pub fn get_tokens(
        &self,
        caller: Caller<'_>,
        req: &pb::GetDasTokensRequest,
        now: DateTime<Utc>,
    ) -> Result<pb::GetDasTokensResponse, Status> {
        // Only a CSE in a token's audience may have it (the one that will
        // verify it, TS-0003 7.3.2.2 step 4.1.1.2.2): the caller names
        // itself, as a consultant and authenticated like `Consult`.
        let hosting = self.consultant(&req.hosting_cse_id, caller.authorization)?;
        // A malformed Token-ID is the request's fault, named as `Consult`
        // names one in `das_request.token_ids` (Decision 9).
        let mut malformed: Vec<_> = req
            .token_ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| {
                authz_core::token::check_scoped_id(id)
                    .err()
                    .map(|e| authz_proto::ConversionError {
                        field: format!("token_ids[{i}]"),
                        message: if id.is_empty() {
                            "must not be empty".to_owned()
                        } else {
                            format!("not a Token-ID: {e}")
                        },
                    })
            })
            .collect();
        malformed.extend(authz_proto::convert::repeated_entries(
            &req.token_ids,
            "token_ids",
        ));
        if !malformed.is_empty() {
            return Err(invalid_argument(&malformed));
        }
        Ok(self.inner.store.read(|_, s| {
            let mut response = pb::GetDasTokensResponse::default();
            for id in &req.token_ids {
                match s.valid_for(id, &hosting, now) {
                    Some(t) => response.tokens.push(t.jwt.clone()),
                    // Not told apart from unknown: the caller learns nothing
                    // of tokens meant for other CSEs.
                    None => response.unknown_ids.push(id.clone()),
                }
            }
            response
        }))
    }

    /// The key set: issuer, FQDN and public keys.
    pub fn key_set(&self) -> pb::KeySet {
        let config = &self.inner.config;
        pb::KeySet {
            issuer: config.issuer.clone(),
            fqdn: config.fqdn.clone(),
            role_issuers: config.role_issuers.clone(),
            request_encryption_jwk: config.request_encryption_jwk.clone().unwrap_or_default(),
            keys: config
                .keys
                .iter()
                .map(|k| pb::PublicKey {
                    kid: k.kid.clone(),
                    alg: k.algorithm.name().to_owned(),
                    public_key_pem: k.public_key_pem.clone(),
                })
                .collect(),
        }
    }

    /// The number of stored tokens (expired ones included until swept).
    pub fn stored_tokens(&self) -> usize {
        self.inner.store.read(|_, s| s.tokens.len())
    }

    /// Deletes the tokens expired at `now`; returns how many.
    pub async fn sweep_expired(&self, now: DateTime<Utc>) -> Result<usize, Status> {
        let expired = self.inner.store.read(|_, s| s.expired(now));
        if expired.is_empty() {
            return Ok(0);
        }
        let n = expired.len();
        self.commit(DasMutation::Remove(expired)).await?;
        tracing::info!(removed = n, "expired tokens swept");
        Ok(n)
    }

    /// Starts the sweeper: every `sweep_interval` (and once at once) it
    /// deletes expired tokens, until [`DasService::shutdown`].
    pub fn start_sweeper(&self) -> JoinHandle<()> {
        let service = self.clone();
        let mut closing = self.inner.closing.subscribe();
        let period = self.inner.config.sweep_interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    // The guard `wait_for` returns is dropped here, not
                    // held across the sweep.
                    () = async { drop(closing.wait_for(|c| *c).await) } => return,
                    _ = tick.tick() => {
                        if let Err(e) = service.sweep_expired(Utc::now()).await {
                            tracing::warn!(error = %e.message(), "sweeping expired tokens failed");
                        }
                    }
                }
            }
        })
    }
}

#[tonic::async_trait]
impl DynamicAuthorizationServer for DasService {
    async fn consult(
        &self,
        request: Request<pb::ConsultRequest>,
    ) -> Result<Response<pb::DasResponse>, Status> {
        let caller = Caller::of(&request)?;
        DasService::consult(self, caller, request.get_ref(), Utc::now())
            .await
            .map(Response::new)
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let caller = Caller::of(&request)?;
        DasService::issue_token(self, caller, request.get_ref(), Utc::now())
            .await
            .map(Response::new)
    }

    async fn get_tokens(
        &self,
        request: Request<pb::GetDasTokensRequest>,
    ) -> Result<Response<pb::GetDasTokensResponse>, Status> {
        let caller = Caller::of(&request)?;
        DasService::get_tokens(self, caller, request.get_ref(), Utc::now()).map(Response::new)
    }

    async fn get_key_set(
        &self,
        _request: Request<pb::GetKeySetRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        Ok(Response::new(self.key_set()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_secrets_are_read_from_the_metadata_value() {
        assert_eq!(bearer("Bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer("bearer   s3cret "), Some("s3cret"));
        assert_eq!(bearer("Basic s3cret"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("s3cret"), None);
    }

    #[test]
    fn token_ids_are_random_and_name_the_das() {
        let a = new_token_id("das.home.example").expect("id");
        let b = new_token_id("das.home.example").expect("id");
        assert_ne!(a, b);
        assert!(a.ends_with("@das.home.example"));
        assert_eq!(authz_core::token::issuer_fqdn(&a), Some("das.home.example"));
    }
}
