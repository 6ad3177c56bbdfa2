//! Tokens and Dynamic Authorization at the PDP (TS-0003 7.3) against fake
//! DASes served on loopback:
//!
//! - Direct (7.3.2.2): identical concurrent consultations share one call,
//!   and the `dreq` carries what the clause asks for; the `dai` lifetime
//!   `pl` (m2m:absRelTimestamp, optional in table 7.3.2.2-2) relative,
//!   absent or malformed, and the tokens of the same response; a `dai` for
//!   a contentInstance is bound to that contentInstance, not to its parent
//!   (Decision 7);
//! - Indirect (7.3.2.3 steps 5 and 6.1.4, Decision 9): a token the DAS
//!   returns malformed for a Token-ID is a Deny, not an invalid argument;
//!   Token Request Information gives each DAS the Role-IDs it issues
//!   (step 2.2) and an absolute `trid`; Local-Token-IDs are assigned only with a response that
//!   reports them (step 7.1), and two PDPs without a PIP never assign the
//!   same one (TS-0001 7.1.16); the `dreq`'s mandatory `trt` comes from the
//!   replica when the request has none;
//! - a DAS that rotated its keys: a token under the new `kid` makes the
//!   PDP fetch its key set again (rate-limited);
//! - a malformed token: INVALID_ARGUMENT naming `tokens[i]`;
//! - a PDP without DASes: tokens cannot be verified, which a Deny says;
//! - a DAS that authenticates its consultants: the PDP presents the secret
//!   configured for it on `Consult` and `GetTokens`.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authz_core::token::{TokenAlgorithm, TokenClaims, TokenPermission, TokenSigner};
use authz_core::{AccessControlRule, SetOfAcrs};
use authz_pdp::{DasSecret, DynamicConfig, Pdp, PdpConfig};
use authz_proto::convert::timestamp_to_pb;
use authz_proto::pb;
use authz_proto::pb::dynamic_authorization_server_server::{
    DynamicAuthorizationServer, DynamicAuthorizationServerServer,
};
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use chrono::{SubsecRound, Utc};
use common::{
    FakePrp, acp, eventually, hosting, pdp_with, request, resource, serve_pdp, snapshot_event,
};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// Grants RETRIEVE to the consulting originator for a minute, after a
/// delay, and remembers every `dreq`.
#[derive(Clone, Default)]
struct FakeDas {
    consultations: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<pb::DasRequest>>>,
}

#[tonic::async_trait]
impl DynamicAuthorizationServer for FakeDas {
    async fn consult(
        &self,
        request: Request<pb::ConsultRequest>,
    ) -> Result<Response<pb::DasResponse>, Status> {
        self.consultations.fetch_add(1, Ordering::SeqCst);
        let dreq = request.into_inner().das_request.unwrap_or_default();
        self.seen.lock().await.push(dreq.clone());
        // Long enough for the concurrent callers to pile up.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let until = chrono::Utc::now() + chrono::Duration::seconds(60);
        Ok(Response::new(pb::DasResponse {
            dynamic_acp_info: Some(pb::DynamicAcpInfo {
                granted_privileges: Some(pb::SetOfAcrs {
                    rules: vec![pb::AccessControlRule {
                        originators: vec![dreq.originator.clone()],
                        operations: 2,
                        ..Default::default()
                    }],
                }),
                privileges_lifetime: authz_core::json::format_timestamp(until),
            }),
            tokens: Vec::new(),
            author_sign_request_info: false,
        }))
    }

    async fn issue_token(
        &self,
        _request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_tokens(
        &self,
        _request: Request<pb::GetDasTokensRequest>,
    ) -> Result<Response<pb::GetDasTokensResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_key_set(
        &self,
        _request: Request<pb::GetKeySetRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        // It issues the Role-IDs of `roles.example.com`: those go to it as
        // `rfa` (7.3.2.2 step 2.2.1) once the PDP has this.
        Ok(Response::new(pb::KeySet {
            issuer: DAS_ISSUER.into(),
            fqdn: DAS_FQDN.into(),
            role_issuers: vec!["roles.example.com".into()],
            keys: vec![public_key(DAS_KID, "ES256", "es256-public.pem")],
            request_encryption_jwk: String::new(),
        }))
    }
}

type ServeTask = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn serve_das<S: DynamicAuthorizationServer>(das: S) -> (String, ServeTask) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = Box::pin(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(DynamicAuthorizationServerServer::new(das))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    (url, task)
}

/// A PDP whose only DAS is `das`, over `cnt` bound to `acp1`, which names
/// a Role-ID for UPDATE and RETRIEVE (it goes out as `rfa`), once it has
/// the DAS's key set.
async fn pdp_consulting(das: &FakeDas) -> (Pdp, authz_pdp::PdpService) {
    let (url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url.clone()]);
    dynamic.default_das = Some(url);
    dynamic.deadline = Duration::from_secs(5);
    let pdp = Pdp::start(PdpConfig::new(hosting()).with_dynamic(dynamic)).expect("pdp");
    let loaded = eventually(Duration::from_secs(10), || {
        let ready = pdp.dynamic().is_some_and(|d| d.keys_loaded());
        async move { ready }
    })
    .await;
    assert!(loaded, "the PDP never loaded the DAS's keys");
    let mut policy = acp("acp1", &["Cowner"], 63);
    if let Some(pv) = policy.privileges.as_mut() {
        pv.rules.push(pb::AccessControlRule {
            originators: vec!["visitor@roles.example.com".into()],
            operations: 6,
            ..Default::default()
        });
    }
    pdp.apply_event(&snapshot_event(
        1,
        vec![policy],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    ))
    .expect("snapshot");
    let service = pdp.service();
    (pdp, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_concurrent_consultations_are_coalesced_7_3_2_2() {
    let das = FakeDas::default();
    let (_pdp, service) = pdp_consulting(&das).await;
    let mut visitor = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    // One request time for all eight: the DAS sees it (rts).
    visitor.request_time = Some(timestamp_to_pb(&chrono::Utc::now()));
    let mut calls = Vec::new();
    for _ in 0..8 {
        let service = service.clone();
        let visitor = visitor.clone();
        calls.push(tokio::spawn(async move {
            service.decide_resolving_pb(&visitor).await
        }));
    }
    for call in calls {
        let d = call.await.expect("task").expect("decision");
        assert_eq!(
            d.decision,
            pb::AuthorizationDecision::Permit as i32,
            "granted by the DAS: {d:?}"
        );
    }
    assert_eq!(
        das.consultations.load(Ordering::SeqCst),
        1,
        "eight identical requests, one consultation"
    );
    let seen = das.seen.lock().await;
    let dreq = &seen[0];
    // 7.3.2.2 / TS-0004 dynAuthDasRequest: or absolute, op, trid, rts, rfa.
    assert_eq!(dreq.originator, "//sp.example.com/id-in/Cvisitor");
    assert_eq!(dreq.operation, pb::Operation::Retrieve as i32);
    assert_eq!(dreq.targeted_resource_id, "cnt");
    assert!(!dreq.request_timestamp.is_empty());
    assert_eq!(dreq.role_ids_from_acps, vec!["visitor@roles.example.com"]);
}

/// 7.3.2.2: only *identical* consultations share one call. Two concurrent
/// requests that differ only in what the DAS decides on besides the
/// originator, operation and target (here the originator's IP) are two
/// consultations: neither may take the tokens or grant made for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consultations_that_differ_in_context_are_not_coalesced_7_3_2_2() {
    let das = FakeDas::default();
    let (_pdp, service) = pdp_consulting(&das).await;
    let mut calls = Vec::new();
    for ip in ["192.0.2.1", "198.51.100.7"] {
        let service = service.clone();
        let mut visitor = request("Cvisitor", pb::Operation::Retrieve, "cnt");
        visitor.originator_ip = Some(pb::IpAddress {
            address: Some(pb::ip_address::Address::Ipv4(ip.into())),
        });
        calls.push(tokio::spawn(async move {
            service.decide_resolving_pb(&visitor).await
        }));
    }
    for call in calls {
        call.await.expect("task").expect("decision");
    }
    assert_eq!(das.consultations.load(Ordering::SeqCst), 2);
    let mut ips: Vec<String> = das
        .seen
        .lock()
        .await
        .iter()
        .map(|d| format!("{:?}", d.originator_ip))
        .collect();
    ips.sort();
    assert!(
        ips[0].contains("192.0.2.1") && ips[1].contains("198.51.100.7"),
        "{ips:?}"
    );
}

/// The issuer, FQDN and key of [`ScriptedDas`] (the example DAS key pair).
const DAS_ISSUER: &str = "//sp.example.com/id-in/CDas";
const DAS_FQDN: &str = "das.example.com";
const DAS_KID: &str = "das-es256-1";

fn das_key(file: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/das/keys")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn public_key(kid: &str, alg: &str, file: &str) -> pb::PublicKey {
    pb::PublicKey {
        kid: kid.into(),
        alg: alg.into(),
        public_key_pem: String::from_utf8(das_key(file)).expect("PEM"),
    }
}

/// A DAS whose answers the test sets: its key set (so the PDP trusts it),
/// the `dres` of every consultation, and the token it returns for any
/// Token-ID.
#[derive(Clone, Default)]
struct ScriptedDas {
    /// Its issuer and FQDN in its key set; `None`: [`DAS_ISSUER`] and
    /// [`DAS_FQDN`].
    identity: Option<(&'static str, &'static str)>,
    response: Arc<Mutex<pb::DasResponse>>,
    token: Arc<Mutex<String>>,
    consultations: Arc<AtomicUsize>,
    /// The `dreq` of each consultation.
    requests: Arc<Mutex<Vec<pb::DasRequest>>>,
    /// How long each consultation takes, in milliseconds.
    delay_ms: Arc<AtomicUsize>,
    /// The `authorization` metadata of each `Consult` and `GetTokens` call.
    authorizations: Arc<Mutex<Vec<Called>>>,
    /// The `role_issuers` of its key set.
    role_issuers: Vec<&'static str>,
    /// The keys of its key set; empty: the ES256 key [`DAS_KID`].
    keys: Arc<Mutex<Vec<pb::PublicKey>>>,
    /// How many times its key set was fetched.
    key_set_calls: Arc<AtomicUsize>,
    /// The `request_encryption_jwk` of its key set.
    request_jwk: String,
}

/// An RPC and the `authorization` metadata it came with.
type Called = (&'static str, Option<String>);

fn authorization<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl ScriptedDas {
    async fn answer(&self, response: pb::DasResponse) {
        *self.response.lock().await = response;
    }
}

#[tonic::async_trait]
impl DynamicAuthorizationServer for ScriptedDas {
    async fn consult(
        &self,
        request: Request<pb::ConsultRequest>,
    ) -> Result<Response<pb::DasResponse>, Status> {
        self.authorizations
            .lock()
            .await
            .push(("Consult", authorization(&request)));
        self.consultations.fetch_add(1, Ordering::SeqCst);
        self.requests
            .lock()
            .await
            .push(request.get_ref().das_request.clone().unwrap_or_default());
        let delay = self.delay_ms.load(Ordering::SeqCst) as u64;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        Ok(Response::new(self.response.lock().await.clone()))
    }

    async fn issue_token(
        &self,
        _request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_tokens(
        &self,
        request: Request<pb::GetDasTokensRequest>,
    ) -> Result<Response<pb::GetDasTokensResponse>, Status> {
        self.authorizations
            .lock()
            .await
            .push(("GetTokens", authorization(&request)));
        let token = self.token.lock().await.clone();
        Ok(Response::new(pb::GetDasTokensResponse {
            tokens: request
                .get_ref()
                .token_ids
                .iter()
                .map(|_| token.clone())
                .collect(),
            unknown_ids: Vec::new(),
        }))
    }

    async fn get_key_set(
        &self,
        _request: Request<pb::GetKeySetRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        self.key_set_calls.fetch_add(1, Ordering::SeqCst);
        let (issuer, fqdn) = self.identity.unwrap_or((DAS_ISSUER, DAS_FQDN));
        let mut keys = self.keys.lock().await.clone();
        if keys.is_empty() {
            keys.push(public_key(DAS_KID, "ES256", "es256-public.pem"));
        }
        Ok(Response::new(pb::KeySet {
            issuer: issuer.into(),
            fqdn: fqdn.into(),
            role_issuers: self.role_issuers.iter().map(|r| r.to_string()).collect(),
            keys,
            request_encryption_jwk: self.request_jwk.clone(),
        }))
    }
}

/// `acp1` lets `Cowner` do everything on `cnt`; nobody else may do anything.
fn owner_only() -> pb::WatchEvent {
    snapshot_event(
        1,
        vec![acp("acp1", &["Cowner"], 63)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )
}

/// A PDP that trusts and always consults `das` (its default DAS) and stores
/// dynamic ACPs in `prp`, once it has loaded the DAS's keys.
async fn pdp_with_das(das: &ScriptedDas, prp: Option<String>) -> Pdp {
    pdp_with_das_secret(das, prp, None).await
}

/// [`pdp_with_das`], presenting `secret` to the DAS when given.
async fn pdp_with_das_secret(das: &ScriptedDas, prp: Option<String>, secret: Option<&str>) -> Pdp {
    let (url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url.clone()]);
    dynamic.default_das = Some(url.clone());
    dynamic.deadline = Duration::from_secs(5);
    dynamic.prp = prp;
    if let Some(secret) = secret {
        // Written with a trailing `/`: the same DAS.
        dynamic.das_secrets.push(DasSecret {
            endpoint: format!("{url}/"),
            secret: secret.to_owned(),
        });
    }
    pdp_trusting(dynamic, &owner_only()).await
}

/// A PDP with `dynamic`, its replica fed `snapshot`, once it has loaded
/// the keys of every DAS it trusts.
async fn pdp_trusting(dynamic: DynamicConfig, snapshot: &pb::WatchEvent) -> Pdp {
    pdp_trusting_at(hosting(), dynamic, snapshot).await
}

/// [`pdp_trusting`] for the hosting CSE `at`.
async fn pdp_trusting_at(
    at: authz_core::HostingContext,
    dynamic: DynamicConfig,
    snapshot: &pb::WatchEvent,
) -> Pdp {
    let pdp = Pdp::start(PdpConfig::new(at).with_dynamic(dynamic)).expect("pdp");
    pdp.apply_event(snapshot).expect("snapshot");
    let loaded = eventually(Duration::from_secs(10), || {
        let ready = pdp.dynamic().is_some_and(|d| d.keys_loaded());
        async move { ready }
    })
    .await;
    assert!(loaded, "the PDP never loaded the DASes' keys");
    pdp
}

fn absolute(originator: &str) -> String {
    format!("//sp.example.com/id-in/{originator}")
}

/// `gp`: RETRIEVE for `originator` (absolute).
fn retrieve_for(originator: &str) -> pb::SetOfAcrs {
    pb::SetOfAcrs {
        rules: vec![pb::AccessControlRule {
            originators: vec![absolute(originator)],
            operations: 2,
            ..Default::default()
        }],
    }
}

fn dai(originator: &str, pl: &str) -> Option<pb::DynamicAcpInfo> {
    Some(pb::DynamicAcpInfo {
        granted_privileges: Some(retrieve_for(originator)),
        privileges_lifetime: pl.into(),
    })
}

/// `claims` signed with the scripted DAS's ES256 key [`DAS_KID`].
fn sign_es256(claims: &TokenClaims) -> String {
    TokenSigner::from_pem(
        TokenAlgorithm::Es256,
        DAS_KID,
        &das_key("es256-private.pem"),
    )
    .expect("signer")
    .sign(claims)
    .expect("sign")
}

/// A token of the scripted DAS granting `holder` RETRIEVE on `cnt` for ten
/// minutes.
fn retrieve_token(token_id: &str, holder: &str) -> String {
    retrieve_token_signed(
        token_id,
        holder,
        TokenAlgorithm::Es256,
        DAS_KID,
        "es256-private.pem",
    )
}

/// [`retrieve_token`] signed with the key `kid` (`alg`, private key `file`).
fn retrieve_token_signed(
    token_id: &str,
    holder: &str,
    alg: TokenAlgorithm,
    kid: &str,
    file: &str,
) -> String {
    token_granting(token_id, holder, 2, (alg, kid, file))
}

/// A token of the scripted DAS for `holder` granting it `operations` on
/// `cnt`, signed with `(alg, kid, private key file)`.
fn token_granting(
    token_id: &str,
    holder: &str,
    operations: u32,
    (alg, kid, file): (TokenAlgorithm, &str, &str),
) -> String {
    let now = Utc::now();
    let mut claims = TokenClaims::new(
        token_id,
        DAS_ISSUER,
        absolute(holder),
        now - chrono::Duration::seconds(10),
        now + chrono::Duration::seconds(600),
    );
    claims.audience = vec!["//sp.example.com/id-in".into()];
    claims.permissions.pm = vec![TokenPermission {
        ris: vec!["cnt".into()],
        pv: Some(SetOfAcrs {
            rules: vec![AccessControlRule {
                originators: vec![absolute(holder)],
                operations,
                ..Default::default()
            }],
        }),
        rids: Vec::new(),
    }];
    TokenSigner::from_pem(alg, kid, &das_key(file))
        .expect("signer")
        .sign(&claims)
        .expect("sign")
}

/// A PRP, a DAS granting `Cvisitor` RETRIEVE for an hour (a `dai` with
/// `pl` 3600000), and a PDP consulting it and storing dynamic ACPs in the
/// PRP.
async fn visitor_granted_an_hour() -> (FakePrp, common::Running<FakePrp>, ScriptedDas, Pdp) {
    let prp = FakePrp::default();
    let running = prp.serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    let das = ScriptedDas::default();
    das.answer(pb::DasResponse {
        dynamic_acp_info: dai("Cvisitor", "3600000"),
        ..Default::default()
    })
    .await;
    let pdp = pdp_with_das(&das, Some(format!("http://{}", running.addr))).await;
    (prp, running, das, pdp)
}

/// A DAS that answers every consultation with a token granting `Cvisitor`
/// RETRIEVE on `cnt`, and a PDP consulting it.
async fn visitor_given_a_retrieve_token() -> (ScriptedDas, Pdp) {
    let das = ScriptedDas::default();
    das.answer(pb::DasResponse {
        tokens: vec![retrieve_token("tkv@das.example.com", "Cvisitor")],
        ..Default::default()
    })
    .await;
    let pdp = pdp_with_das(&das, None).await;
    (das, pdp)
}

/// 7.3.2.2 step 4.1.1: a token the DAS returns is kept for its holder
/// once per Token-ID. A token that does not grant the request (here
/// RETRIEVE only, asked DELETE) brings the originator back to the DAS on
/// every request, each answer returning the same token: it must not pile
/// up in the PDP's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_token_returned_again_is_kept_once_7_3_2_2() {
    let (das, pdp) = visitor_given_a_retrieve_token().await;
    let service = pdp.service();
    for _ in 0..5 {
        let d = service
            .decide_resolving_pb(&request("Cvisitor", pb::Operation::Delete, "cnt"))
            .await
            .expect("decision");
        assert_eq!(d.decision, DENY, "{d:?}");
    }
    assert_eq!(das.consultations.load(Ordering::SeqCst), 5);
    let dynamic = pdp.dynamic().expect("dynamic authorization");
    assert_eq!(dynamic.direct_tokens_of(&absolute("Cvisitor")), 1);

    // The kept token permits a RETRIEVE; the Permit is reusable only until
    // the token's notAfter (ten minutes from its signing), not longer.
    let before = chrono::Utc::now().timestamp();
    let d = service
        .decide_resolving_pb(&request("Cvisitor", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision");
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let until = d.reusable_until.expect("reusable_until").seconds;
    assert!(
        (before..=before + 600).contains(&until),
        "the token's end, not later: {until} vs {before}"
    );
}

/// 7.3.2.3 step 6.1.4: a token the request carries that fails
/// verification is an error, whatever tokens an earlier Direct
/// consultation left this PDP for the originator: the stored policies
/// alone may still permit (TS-0001 10.2.3.1 order), a kept Direct token
/// may not, so the answer does not depend on what the PDP holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_direct_token_does_not_excuse_a_rejected_one_7_3_2_3_step_6_1_4() {
    let (das, pdp) = visitor_given_a_retrieve_token().await;
    let service = pdp.service();
    let plain = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    let d = service.decide_resolving_pb(&plain).await.expect("decision");
    assert_eq!(d.decision, PERMIT, "by the Direct token: {d:?}");

    // Held by someone else: rejected, though the kept token would permit.
    let mut foreign = plain.clone();
    foreign.tokens = vec![retrieve_token("tkx@das.example.com", "Cother")];
    let d = service
        .decide_resolving_pb(&foreign)
        .await
        .expect("decision");
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(d.summary.contains("rejected"), "{}", d.summary);
    // Without the bad token the kept one permits again.
    let d = service.decide_resolving_pb(&plain).await.expect("decision");
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(das.consultations.load(Ordering::SeqCst), 1);
}

fn permitted_by(d: &pb::Decision) -> &str {
    d.permitted_by.as_ref().map_or("", |r| r.acp_id.as_str())
}

const PERMIT: i32 = pb::AuthorizationDecision::Permit as i32;
const DENY: i32 = pb::AuthorizationDecision::Deny as i32;

/// TS-0003 table 7.3.2.2-2 / TS-0004 m2m:absRelTimestamp: a relative `pl`
/// ("3600000") is that many milliseconds from now; the grant permits and is
/// stored in the PRP as a dynamic ACP ending then (Decision 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_pl_is_milliseconds_from_now_7_3_2_2() {
    let (prp, running, _das, pdp) = visitor_granted_an_hour().await;
    let before = Utc::now().timestamp();
    let d = pdp
        .service()
        .decide_resolving_pb(&request("Cvisitor", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision");
    let after = Utc::now().timestamp();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert!(permitted_by(&d).starts_with("dai:"), "{d:?}");
    let stored = prp.dynamic_acps();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].target, "cnt");
    assert_eq!(stored[0].privileges, Some(retrieve_for("Cvisitor")));
    let expires = stored[0].expires_at.as_ref().expect("expires_at").seconds;
    assert!(
        (before + 3600..=after + 3600).contains(&expires),
        "an hour from the decision: {expires} not in {}..={}",
        before + 3600,
        after + 3600
    );
    running.kill().await;
}

/// Existence (4004) is checked before authorization (spec notes §2.3): a
/// target the replica does not hold is denied without consulting a DAS, so
/// nothing is granted or stored for a resource that does not exist (a grant
/// stored for its ID would apply to whatever is registered there later).
/// Named with explicit `acp_ids` (and its type), the resource is the CSE's
/// affair and the DAS is consulted as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_das_is_consulted_for_a_target_that_is_not_registered() {
    let (prp, running, das, pdp) = visitor_granted_an_hour().await;
    let d = pdp
        .service()
        .decide_resolving_pb(&request("Cvisitor", pb::Operation::Retrieve, "ghost"))
        .await
        .expect("decision");
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(d.summary.contains("not registered"), "{d:?}");
    assert_eq!(das.consultations.load(Ordering::SeqCst), 0);
    assert!(prp.dynamic_acps().is_empty());

    let mut named = request("Cvisitor", pb::Operation::Retrieve, "ghost");
    named.acp_ids = vec!["acp1".into()];
    // The replica cannot give its type (`trt`), so the request does.
    named.target_type = Some(3);
    let d = pdp
        .service()
        .decide_resolving_pb(&named)
        .await
        .expect("decision");
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(das.consultations.load(Ordering::SeqCst), 1);
    running.kill().await;
}

/// 7.3.2.2 step 4.1: requests that share one consultation share its
/// processing too: the `dai` is stored as one dynamic ACP, not one per
/// waiting request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_consultation_stores_its_dai_once_7_3_2_2() {
    let (prp, running, das, pdp) = visitor_granted_an_hour().await;
    das.delay_ms.store(300, Ordering::SeqCst);
    let service = pdp.service();
    // One request time for all six: the DAS sees it (rts), so requests in
    // different seconds would be different consultations.
    let mut visitor = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    visitor.request_time = Some(timestamp_to_pb(&chrono::Utc::now()));
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let service = service.clone();
            let visitor = visitor.clone();
            tokio::spawn(async move { service.decide_resolving_pb(&visitor).await })
        })
        .collect();
    for call in calls {
        let d = call.await.expect("task").expect("decision");
        assert_eq!(d.decision, PERMIT, "{d:?}");
    }
    assert_eq!(das.consultations.load(Ordering::SeqCst), 1);
    assert_eq!(prp.dynamic_acps().len(), 1, "{:?}", prp.dynamic_acps());
    running.kill().await;
}

/// TS-0003 table 7.3.2.2-2: Privileges Lifetime is optional. Without `pl`
/// the grant counts for the decision that consulted only: nothing is
/// stored, and the next request consults the DAS again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_pl_grants_for_this_decision_only_7_3_2_2() {
    let prp = FakePrp::default();
    let running = prp.serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    let das = ScriptedDas::default();
    das.answer(pb::DasResponse {
        dynamic_acp_info: dai("Cvisitor", ""),
        ..Default::default()
    })
    .await;
    let pdp = pdp_with_das(&das, Some(format!("http://{}", running.addr))).await;
    let visitor = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    for n in 1..=2 {
        let d = pdp
            .service()
            .decide_resolving_pb(&visitor)
            .await
            .expect("decision");
        assert_eq!(d.decision, PERMIT, "request {n}: {d:?}");
        assert!(permitted_by(&d).starts_with("dai:"), "request {n}: {d:?}");
        assert_eq!(das.consultations.load(Ordering::SeqCst), n);
        // For this decision only: a PEP must not reuse it
        // (`reusable_until` at or before the decision), whatever its clock
        // says: the epoch.
        let until = d.reusable_until.expect("reusable_until");
        assert_eq!((until.seconds, until.nanos), (0, 0), "request {n}: {d:?}");
    }
    assert!(prp.dynamic_acps().is_empty(), "{:?}", prp.dynamic_acps());
    running.kill().await;
}

/// TS-0003 7.3.2.2 step 4.1.1.2.4: a token counts while "the current
/// time" is within its validity. A request's token verified at the start
/// of a decision that then waits for a DAS must not count after it
/// expired during the wait: here the token gives the Role-ID that the
/// DAS's `dai` names, and the DAS answers after the token's last second.
/// The same request with a token valid for longer is permitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_while_the_das_answers_no_longer_counts_7_3_2_2() {
    const ROLE: &str = "guest@das.example.com";
    let das = ScriptedDas::default();
    das.answer(pb::DasResponse {
        dynamic_acp_info: Some(pb::DynamicAcpInfo {
            granted_privileges: Some(pb::SetOfAcrs {
                rules: vec![pb::AccessControlRule {
                    originators: vec![ROLE.into()],
                    operations: 2,
                    ..Default::default()
                }],
            }),
            privileges_lifetime: String::new(),
        }),
        ..Default::default()
    })
    .await;
    das.delay_ms.store(2500, Ordering::SeqCst);
    let pdp = pdp_with_das(&das, None).await;
    let role_token = |id: &str, valid_s: i64| {
        let now = Utc::now().trunc_subsecs(0);
        let mut claims = TokenClaims::new(
            id,
            DAS_ISSUER,
            absolute("Cvisitor"),
            now - chrono::Duration::seconds(10),
            now + chrono::Duration::seconds(valid_s),
        );
        claims.audience = vec!["//sp.example.com/id-in".into()];
        claims.permissions.pm = vec![TokenPermission {
            ris: vec!["cnt".into()],
            pv: None,
            rids: vec![ROLE.into()],
        }];
        sign_es256(&claims)
    };
    let mut visitor = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    visitor.tokens = vec![role_token("tk-long@das.example.com", 600)];
    let d = pdp
        .service()
        .decide_resolving_pb(&visitor)
        .await
        .expect("decision");
    assert_eq!(d.decision, PERMIT, "the role from a valid token: {d:?}");
    // Valid through the next second only: over by the time the DAS answers.
    visitor.tokens = vec![role_token("tk-short@das.example.com", 1)];
    let d = pdp
        .service()
        .decide_resolving_pb(&visitor)
        .await
        .expect("decision");
    assert_eq!(das.consultations.load(Ordering::SeqCst), 2);
    assert_ne!(
        d.decision, PERMIT,
        "the role of a token expired meanwhile: {d:?}"
    );
}

/// TS-0003 7.3.2.2 step 4.1: a `pl` that is not an m2m:absRelTimestamp makes
/// the `dai` unusable, but the tokens verified from the same response still
/// permit (4.1.1); without tokens the Deny names the bad `pl`. A `pl` that
/// has already ended grants nothing either, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pl_keeps_the_tokens_of_the_response_7_3_2_2() {
    let prp = FakePrp::default();
    let running = prp.serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    let das = ScriptedDas::default();
    das.answer(pb::DasResponse {
        dynamic_acp_info: dai("Cvisitor", "soon"),
        tokens: vec![retrieve_token("tkv@das.example.com", "Cvisitor")],
        ..Default::default()
    })
    .await;
    let pdp = pdp_with_das(&das, Some(format!("http://{}", running.addr))).await;
    let service = pdp.service();
    let d = service
        .decide_resolving_pb(&request("Cvisitor", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision");
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert!(permitted_by(&d).starts_with("token:"), "{d:?}");

    // The same bad pl without a token: a Deny that says why.
    das.answer(pb::DasResponse {
        dynamic_acp_info: dai("Cother", "soon"),
        ..Default::default()
    })
    .await;
    let d = service
        .decide_resolving_pb(&request("Cother", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision");
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(
        d.summary
            .contains("dai ignored: pl 'soon' is not an m2m:absRelTimestamp"),
        "{}",
        d.summary
    );

    // A relative pl in the past has ended: nothing granted.
    das.answer(pb::DasResponse {
        dynamic_acp_info: dai("Cother", "-1000"),
        ..Default::default()
    })
    .await;
    let d = service
        .decide_resolving_pb(&request("Cother", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision");
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(
        d.summary.contains("dai ignored: pl '-1000' ends at"),
        "{}",
        d.summary
    );
    assert!(prp.dynamic_acps().is_empty(), "{:?}", prp.dynamic_acps());

    // Decision 7: a grant counts "until its pl ends", judged at the
    // request's time as a stored dynamic ACP is: a pl of 8 s grants nothing
    // to a request stamped a minute ahead.
    das.answer(pb::DasResponse {
        dynamic_acp_info: dai("Cother", "8000"),
        ..Default::default()
    })
    .await;
    let mut ahead = request("Cother", pb::Operation::Retrieve, "cnt");
    ahead.request_time = Some(authz_proto::convert::timestamp_to_pb(
        &(chrono::Utc::now() + chrono::Duration::seconds(60)),
    ));
    let d = service.decide_resolving_pb(&ahead).await.expect("decision");
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(
        d.summary.contains("dai ignored: pl '8000' ends at"),
        "{}",
        d.summary
    );
    running.kill().await;
}

/// TS-0003 7.3.2.2 step 4.1.1 verifies each returned token on its own, and
/// step 4.1.2 "shall create" the dynamic ACP of a `dai` whatever the tokens:
/// a token that fails (held by another originator) is left out and named,
/// and the `dai` still permits and is stored. A failing token alone is no
/// usable answer: an indeterminate Deny that names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_does_not_take_the_dai_with_it_7_3_2_2_step_4_1() {
    let prp = FakePrp::default();
    let running = prp.serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    let das = ScriptedDas::default();
    das.answer(pb::DasResponse {
        dynamic_acp_info: dai("Cvisitor", "600"),
        tokens: vec![retrieve_token("tkother@das.example.com", "Cother")],
        ..Default::default()
    })
    .await;
    let pdp = pdp_with_das(&das, Some(format!("http://{}", running.addr))).await;
    let service = pdp.service();
    let d = service
        .decide_resolving_pb(&request("Cvisitor", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision");
    assert_eq!(d.decision, PERMIT, "the dai permits: {d:?}");
    assert!(!permitted_by(&d).starts_with("token:"), "{d:?}");
    assert_eq!(prp.dynamic_acps().len(), 1, "the dai is stored");

    // The failing token alone: nothing usable, an indeterminate Deny.
    das.answer(pb::DasResponse {
        tokens: vec![retrieve_token("tkother2@das.example.com", "Cother")],
        ..Default::default()
    })
    .await;
    let d = service
        .decide_resolving_pb(&request("Cstranger", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision");
    assert_eq!(d.decision, DENY, "{d:?}");
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{d:?}"
    );
    assert!(d.summary.contains("DAS token 0"), "{}", d.summary);
    running.kill().await;
}

/// TS-0003 7.3.2.3 steps 5 and 6.1.4, Decision 9: a well-formed Token-ID
/// whose DAS returns a malformed token ("x") is a retrieval failure: a Deny
/// with the reason (4103), not INVALID_ARGUMENT, which stays for a
/// malformed token the originator itself sent (4000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_token_from_the_das_is_a_deny_7_3_2_3() {
    let das = ScriptedDas::default();
    *das.token.lock().await = "x".into();
    let pdp = pdp_with_das(&das, None).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let mut by_id = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    by_id.token_ids = vec!["tk1@das.example.com".into()];
    let d = client
        .decide(by_id)
        .await
        .expect("a decision, not an error")
        .into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert_ne!(
        d.status,
        pb::AuthorizationStatus::SyntaxError as i32,
        "{d:?}"
    );
    assert!(
        d.summary
            .starts_with("DENY (token): token ID tk1@das.example.com")
            && d.summary.contains("not a well-formed oneM2M JWT"),
        "{}",
        d.summary
    );
    assert_eq!(d.explanation, Some(pb::Explanation::default()), "{d:?}");

    let mut sent = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    sent.tokens = vec!["x".into()];
    let status = client.decide(sent).await.expect_err("invalid argument");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // The stored policies decide first (TS-0001 10.2.3.1 order, spec notes
    // §2.3), as at a PDP without DASes: the owner's Permit stands whatever
    // its unusable Token-ID or unknown Local-Token-ID.
    let mut owner = request("Cowner", pb::Operation::Retrieve, "cnt");
    owner.token_ids = vec!["tk1@das.example.com".into()];
    owner.local_token_ids = vec!["lt9".into()];
    let d = client.decide(owner).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
}

/// TS-0003 7.3.2.3 step 6.1.4 and Decision 9 at a PDP with no DAS: the
/// stored ACPs decide first (a Permit stands whatever the tokens); when they
/// deny, the Deny says the request's tokens cannot be verified because no
/// token issuer is configured — for `tkns`, `tids` and `ltids` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_a_das_are_denied_with_the_reason_7_3_2_3() {
    let pdp = pdp_with(&[owner_only()]);
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let visitor = request("Cvisitor", pb::Operation::Retrieve, "cnt");

    let mut with_token = visitor.clone();
    with_token.tokens = vec![retrieve_token("tkv@das.example.com", "Cvisitor")];
    let mut with_id = visitor.clone();
    with_id.token_ids = vec!["tk1@das.example.com".into()];
    let mut with_local = visitor.clone();
    with_local.local_token_ids = vec!["lt1".into()];
    for (name, r) in [
        ("tkns", with_token),
        ("tids", with_id),
        ("ltids", with_local),
    ] {
        let d = client.decide(r).await.expect("decision").into_inner();
        assert_eq!(d.decision, DENY, "{name}: {d:?}");
        assert!(
            d.summary
                .contains("tokens cannot be verified: no token issuer (DAS) is configured"),
            "{name}: {}",
            d.summary
        );
    }

    // Without tokens, the Deny does not mention them.
    let d = client.decide(visitor).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(!d.summary.contains("token"), "{}", d.summary);

    // The stored ACPs permit: the (well-formed, unverifiable) tokens do not
    // matter. A malformed one would be INVALID_ARGUMENT whatever the ACPs
    // say, as the request's conversion checks its syntax (Decision 9).
    let mut owner = request("Cowner", pb::Operation::Retrieve, "cnt");
    owner.tokens = vec![retrieve_token("tko@das.example.com", "Cowner")];
    owner.token_ids = vec!["tk1@das.example.com".into()];
    owner.local_token_ids = vec!["lt1".into()];
    let d = client.decide(owner).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert!(!d.summary.contains("token"), "{}", d.summary);

    let mut malformed = request("Cowner", pb::Operation::Retrieve, "cnt");
    malformed.tokens = vec!["x".into()];
    let status = client.decide(malformed).await.expect_err("invalid");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // Shaped like a JWS but with no JSON header: malformed here too, as at
    // a PDP with DASes (a_malformed_token_is_named_by_its_index_decision_9),
    // though the stored ACPs permit the owner.
    let mut shaped = request("Cowner", pb::Operation::Retrieve, "cnt");
    shaped.tokens = vec![
        retrieve_token("tko@das.example.com", "Cowner"),
        "aaaa.bbbb.cccc".into(),
    ];
    let status = client.decide(shaped).await.expect_err("invalid");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("tokens[1]"), "{status:?}");
}

/// Decision 10: an unreachable DAS makes a decision indeterminate, a Deny
/// "reported with a status explaining why". A token sent by value whose
/// issuer no loaded key set names, while a configured DAS's key set (which
/// may name it) cannot be fetched, is MISSING_ATTRIBUTE naming the token,
/// not a final rejection of an untrusted issuer (which a PEP would cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_while_its_das_key_set_is_unreachable_is_undetermined_decision_10() {
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", gone.local_addr().expect("addr"));
    drop(gone);
    let mut dynamic = DynamicConfig::new(vec![url.clone()]);
    dynamic.deadline = Duration::from_millis(500);
    let pdp = Pdp::start(PdpConfig::new(hosting()).with_dynamic(dynamic)).expect("pdp");
    pdp.apply_event(&owner_only()).expect("snapshot");
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let mut with_token = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    with_token.tokens = vec![retrieve_token("tkv@das.example.com", "Cvisitor")];
    let d = client
        .decide(with_token)
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{}",
        d.summary
    );
    assert!(
        d.summary.contains("tokens[0] cannot be verified"),
        "{}",
        d.summary
    );
    assert!(d.summary.contains(&url), "names the DAS: {}", d.summary);
    assert_eq!(d.missing.len(), 1, "{d:?}");
}

/// A DAS that authenticates its consulting CSEs (its `consultants[].secret`):
/// the PDP presents the secret configured for that DAS as `authorization:
/// Bearer <secret>` on `Consult` (TS-0003 7.3.2.2 step 3) and on `GetTokens`
/// (7.3.2.3 step 5), never on the public `GetKeySet`; without a configured
/// secret it sends none. A secret for a DAS the PDP does not know, or one
/// that cannot be sent as metadata, is a configuration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_das_secret_goes_with_consult_and_get_tokens_7_3_2_2_7_3_2_3() {
    const SECRET: &str = "consultant-secret-0123";
    let das = ScriptedDas::default();
    das.answer(pb::DasResponse {
        dynamic_acp_info: dai("Cvisitor", ""),
        ..Default::default()
    })
    .await;
    *das.token.lock().await = retrieve_token("tk1@das.example.com", "Cholder");
    let pdp = pdp_with_das_secret(&das, None, Some(SECRET)).await;
    let service = pdp.service();
    let d = service
        .decide_resolving_pb(&request("Cvisitor", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision");
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let mut by_id = request("Cholder", pb::Operation::Retrieve, "cnt");
    by_id.token_ids = vec!["tk1@das.example.com".into()];
    let d = service.decide_resolving_pb(&by_id).await.expect("decision");
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let bearer = Some(format!("Bearer {SECRET}"));
    assert_eq!(
        *das.authorizations.lock().await,
        vec![("Consult", bearer.clone()), ("GetTokens", bearer)]
    );

    // No secret configured: none sent.
    let plain = ScriptedDas::default();
    plain
        .answer(pb::DasResponse {
            dynamic_acp_info: dai("Cvisitor", ""),
            ..Default::default()
        })
        .await;
    let pdp = pdp_with_das(&plain, None).await;
    let d = pdp
        .service()
        .decide_resolving_pb(&request("Cvisitor", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision");
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(*plain.authorizations.lock().await, vec![("Consult", None)]);

    for (endpoint, secret, why) in [
        ("http://127.0.0.1:1", SECRET, "not a configured DAS"),
        (
            "http://127.0.0.1:2",
            "with space 0123456789",
            "printable ASCII",
        ),
    ] {
        let mut dynamic = DynamicConfig::new(vec!["http://127.0.0.1:2".into()]);
        dynamic.das_secrets.push(DasSecret {
            endpoint: endpoint.into(),
            secret: secret.into(),
        });
        let e = authz_pdp::Dynamic::new(dynamic).expect_err("refused");
        assert!(e.contains(why), "{e}");
        assert!(!e.contains(secret), "the secret is not shown: {e}");
    }
}

/// A DAS address (where the PDP connects to a DAS it names by another
/// URL) must name a configured DAS.
#[tokio::test]
async fn a_das_address_must_name_a_configured_das() {
    let mut dynamic = DynamicConfig::new(vec!["http://127.0.0.1:2".into()]);
    dynamic.das_addresses.push(authz_pdp::DasAddress {
        endpoint: "http://127.0.0.1:1".into(),
        connect: "http://127.0.0.1:3".into(),
    });
    let e = authz_pdp::Dynamic::new(dynamic).expect_err("refused");
    assert!(
        e.contains("DAS address for http://127.0.0.1:1: not a configured DAS"),
        "{e}"
    );
}

/// TS-0003 7.3.2.3 step 2.2: the Hosting CSE forms the list of DAS Servers
/// "and associated Role-ID(s)" as in 7.3.2.2 step 2.2.1, which groups the
/// Role-IDs "according to the DAS Server AE-ID identified by the Role-ID"
/// (Decision 8: the FQDN after `@`). Each `dasi` entry of the Token Request
/// Information carries in its `dreq.rfa` only the Role-IDs its DAS issues,
/// not every Role-ID of the applicable rules.
/// Two DASes trusted (no DAC, no default DAS) and `acp1` granting RETRIEVE
/// of `cnt` to `roles`: the Token Request Information of a visitor's
/// denied RETRIEVE with `tqi`, and the DASes' URLs.
async fn denied_with_tqf(
    dases: [&ScriptedDas; 2],
    roles: &[&str],
) -> ([String; 2], pb::TokenRequestInfo) {
    let mut urls = Vec::new();
    for das in dases {
        let (url, task) = serve_das(das.clone()).await;
        tokio::spawn(task);
        urls.push(url);
    }
    let (_pdp, tqf) = tqf_at(&urls, roles, true).await;
    assert_eq!(tqf.das_info.len(), 2, "{tqf:?}");
    let [a, b]: [String; 2] = urls.try_into().expect("two");
    ([a, b], tqf)
}

/// A PDP trusting the DASes at `urls` (no DAC, no default DAS), once it
/// has their key sets when `keys_first`, with `acp1` granting RETRIEVE of
/// `cnt` to `roles`; and the Token Request Information of a visitor's
/// denied RETRIEVE with `tqi`.
async fn tqf_at(urls: &[String], roles: &[&str], keys_first: bool) -> (Pdp, pb::TokenRequestInfo) {
    let mut dynamic = DynamicConfig::new(urls.to_vec());
    dynamic.deadline = Duration::from_secs(if keys_first { 5 } else { 1 });
    let mut policy = acp("acp1", &["Cowner"], 63);
    if let Some(pv) = policy.privileges.as_mut() {
        pv.rules.push(pb::AccessControlRule {
            originators: roles.iter().map(|r| r.to_string()).collect(),
            operations: 2,
            ..Default::default()
        });
    }
    let snapshot = snapshot_event(
        1,
        vec![policy],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    );
    let pdp = if keys_first {
        pdp_trusting(dynamic, &snapshot).await
    } else {
        let pdp = Pdp::start(PdpConfig::new(hosting()).with_dynamic(dynamic)).expect("pdp");
        pdp.apply_event(&snapshot).expect("snapshot");
        pdp
    };
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let mut visitor = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    visitor.token_request_indicator = true;
    let d = client.decide(visitor).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    let tqf = d.token_request_info.expect("tqf");
    (pdp, tqf)
}

/// TS-0003 7.3.2.3 step 1: the request with the token request indicator
/// "may include a combination of Tokens, tokenIDs, Local-Token-IDs" that do
/// not suffice, and step 2.3 answers it with the DASes to ask. A token that
/// fails verification (step 6.1.4: an error) is no exception: its holder
/// is the one that needs a new token, so the error carries `tqf` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_failure_with_the_indicator_carries_token_request_info_7_3_2_3() {
    let das = ScriptedDas::default();
    let (url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let (pdp, _) = tqf_at(std::slice::from_ref(&url), &[], true).await;
    let service = pdp.service();
    let mut visitor = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    // Held by someone else: rejected (step 6.1.3).
    visitor.tokens = vec![retrieve_token("tkx@das.example.com", "Cother")];
    let d = service
        .decide_resolving_pb(&visitor)
        .await
        .expect("decision");
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(d.summary.contains("rejected"), "{}", d.summary);
    assert!(
        d.token_request_info.is_none(),
        "no indicator, no tqf: {d:?}"
    );
    visitor.token_request_indicator = true;
    let d = service
        .decide_resolving_pb(&visitor)
        .await
        .expect("decision");
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(d.summary.contains("rejected"), "{}", d.summary);
    let tqf = d.token_request_info.expect("tqf with the token's error");
    assert_eq!(tqf.das_info.len(), 1, "{tqf:?}");
    assert_eq!(tqf.das_info[0].uri, url, "{tqf:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_info_groups_role_ids_per_das_7_3_2_3() {
    let first = ScriptedDas::default();
    let second = ScriptedDas {
        identity: Some(("//sp.example.com/id-in/CDas2", "das2.example.com")),
        ..Default::default()
    };
    // No DAC and no default DAS: the DASes the Role-IDs identify are the
    // DASes of step 2.2 (7.3.2.2 step 2.2.1); each is consulted and named in
    // the Token Request Information, with its own Role-IDs. One Role-ID no
    // configured DAS issues.
    let ([first_url, second_url], tqf) = denied_with_tqf(
        [&first, &second],
        &[
            "guest@das.example.com",
            "guest@das2.example.com",
            "guest@roles.example.com",
        ],
    )
    .await;
    let rfa_of = |uri: &str| {
        tqf.das_info
            .iter()
            .find(|i| i.uri == uri)
            .and_then(|i| i.das_request.as_ref())
            .map(|r| r.role_ids_from_acps.clone())
    };
    assert_eq!(tqf.das_info.len(), 2, "{tqf:?}");
    assert_eq!(
        rfa_of(&first_url),
        Some(vec!["guest@das.example.com".to_owned()]),
        "{tqf:?}"
    );
    assert_eq!(
        rfa_of(&second_url),
        Some(vec!["guest@das2.example.com".to_owned()]),
        "{tqf:?}"
    );
    for das in [&first, &second] {
        assert_eq!(das.consultations.load(Ordering::SeqCst), 1);
    }
    assert_eq!(
        first.requests.lock().await[0].role_ids_from_acps,
        ["guest@das.example.com"]
    );
    assert_eq!(
        second.requests.lock().await[0].role_ids_from_acps,
        ["guest@das2.example.com"]
    );
}

/// TS-0003 7.3.2.3 step 2.2: for a DAS that publishes a request key, the
/// Token Request Information carries `sdr`, the whole `dreq` encrypted to
/// that key, and a clear `dreq` without the Role-IDs; a DAS that publishes
/// none gets the clear `dreq` with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_info_encrypts_the_dreq_for_a_das_that_publishes_a_key_7_3_2_3() {
    let keys_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/das/keys/das-request-keys.json");
    let set: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&keys_file).expect("keys")).expect("json");
    let mut public = set["keys"][0].clone();
    public.as_object_mut().expect("jwk").remove("d");
    let first = ScriptedDas {
        request_jwk: public.to_string(),
        ..Default::default()
    };
    let second = ScriptedDas {
        identity: Some(("//sp.example.com/id-in/CDas2", "das2.example.com")),
        ..Default::default()
    };
    let ([first_url, second_url], tqf) = denied_with_tqf(
        [&first, &second],
        &["guest@das.example.com", "guest@das2.example.com"],
    )
    .await;
    let info = |uri: &str| {
        tqf.das_info
            .iter()
            .find(|i| i.uri == uri)
            .cloned()
            .expect("named")
    };
    let secured = info(&first_url);
    let clear = secured.das_request.clone().expect("dreq");
    assert!(clear.role_ids_from_acps.is_empty(), "hidden: {clear:?}");
    assert_eq!(clear.originator, "//sp.example.com/id-in/Cvisitor");
    let keys = authz_core::jwe::DecryptionKeys::from_jwk_set(
        &std::fs::read_to_string(&keys_file).expect("keys"),
    )
    .expect("jwk set");
    let plain = authz_core::jwe::decrypt(&secured.secured_das_request, &keys).expect("decrypts");
    let inner: serde_json::Value = serde_json::from_slice(&plain.plaintext).expect("json");
    let read = authz_proto::das_json::das_request_from_json(&inner, "sdr").expect("a dreq");
    assert_eq!(read.role_ids_from_acps, ["guest@das.example.com"]);
    assert_eq!(
        read,
        pb::DasRequest {
            role_ids_from_acps: read.role_ids_from_acps.clone(),
            ..clear
        },
        "the clear dreq is the secured one without rfa"
    );
    let plain_das = info(&second_url);
    assert!(plain_das.secured_das_request.is_empty());
    assert_eq!(
        plain_das.das_request.expect("dreq").role_ids_from_acps,
        ["guest@das2.example.com"]
    );
}

/// TS-0003 7.3.2.3 step 2.2: while the PDP does not know a DAS's key set
/// (the DAS is down, or publishes a request key that is no public key), it
/// cannot tell whether the DAS wants the Role-IDs hidden, so the Token
/// Request Information names the DAS without them (and without `sdr`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_info_withholds_role_ids_while_the_das_key_set_is_unknown_7_3_2_3() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let down = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let secret_key = ScriptedDas {
        request_jwk: r#"{"kty":"oct","kid":"s","alg":"A128KW","k":"AAAAAAAAAAAAAAAAAAAAAA"}"#
            .into(),
        ..Default::default()
    };
    let (published, task) = serve_das(secret_key.clone()).await;
    tokio::spawn(task);
    for url in [down, published] {
        let (pdp, tqf) = tqf_at(
            std::slice::from_ref(&url),
            &["guest@das.example.com"],
            false,
        )
        .await;
        assert_eq!(tqf.das_info.len(), 1, "{tqf:?}");
        assert_eq!(tqf.das_info[0].uri, url);
        let dreq = tqf.das_info[0].das_request.clone().expect("dreq");
        assert!(dreq.role_ids_from_acps.is_empty(), "{url}: {dreq:?}");
        assert!(tqf.das_info[0].secured_das_request.is_empty());
        assert!(!pdp.dynamic().is_some_and(|d| d.keys_loaded()), "{url}");
    }
    assert!(
        secret_key.key_set_calls.load(Ordering::SeqCst) >= 1,
        "the key set was asked for, and refused"
    );
}

/// TS-0003 7.3.2.2 step 2.2.1: the Role-IDs of the ACPs go to a DAS
/// "grouped according to the DAS Server AE-ID identified by the Role-ID"
/// (table 7.3.2.2-1: those "associated with the DAS Server AE-ID"). While
/// the PDP does not know the DAS's identity (its key set, here refused for
/// a secret request key, so never), it cannot tell which are its: a
/// consultation of it, as the default DAS, carries none, neither its own
/// nor another issuer's, as Token Request Information does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_das_of_unknown_identity_is_consulted_without_role_ids_7_3_2_2() {
    let das = ScriptedDas {
        request_jwk: r#"{"kty":"oct","kid":"s","alg":"A128KW","k":"AAAAAAAAAAAAAAAAAAAAAA"}"#
            .into(),
        ..Default::default()
    };
    let (url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url.clone()]);
    dynamic.deadline = Duration::from_secs(5);
    dynamic.default_das = Some(url);
    let mut policy = acp("acp1", &["Cowner"], 63);
    if let Some(pv) = policy.privileges.as_mut() {
        pv.rules.push(pb::AccessControlRule {
            originators: vec![
                "guest@das.example.com".into(),
                "other@elsewhere.example".into(),
            ],
            operations: 2,
            ..Default::default()
        });
    }
    let pdp = Pdp::start(PdpConfig::new(hosting()).with_dynamic(dynamic)).expect("pdp");
    pdp.apply_event(&snapshot_event(
        1,
        vec![policy],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    ))
    .expect("snapshot");
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let d = client
        .decide(request("Cvisitor", pb::Operation::Retrieve, "cnt"))
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    let sent = das.requests.lock().await.clone();
    assert_eq!(sent.len(), 1, "consulted once: {sent:?}");
    assert!(sent[0].role_ids_from_acps.is_empty(), "{:?}", sent[0]);
    assert!(das.key_set_calls.load(Ordering::SeqCst) >= 1);
    assert!(!pdp.dynamic().is_some_and(|d| d.keys_loaded()));
}

/// TS-0003 7.3.2.3 steps 2.2 and 3: the originator presents the `dreq` of
/// the Token Request Information to the DAS, which reads a CSE-relative ID
/// at its own CSE. So `trid` is absolute at the hosting CSE (`/in-cse`
/// here), like `or`, whatever the PEP sent (`frontDoor`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_info_trid_is_absolute_7_3_2_3() {
    let das = ScriptedDas::default();
    let (url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url.clone()]);
    dynamic.deadline = Duration::from_secs(5);
    let at = authz_core::HostingContext::new("//sp.example.com", "/in-cse").expect("hosting");
    let pdp = pdp_trusting_at(
        at,
        dynamic,
        &snapshot_event(
            1,
            vec![acp("acp1", &["Cowner"], 63)],
            vec![
                resource("frontDoor", Some(&["acp1"]), "Ccreator"),
                // The CSEBase, under its resource ID (the CSE-ID without `/`).
                resource("in-cse", Some(&["acp1"]), "Ccreator"),
            ],
        ),
    )
    .await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    // The CSEBase named by its CSE-ID is `//sp/cse`, not a child of it
    // named like the CSE.
    for (target, trid) in [
        ("frontDoor", "//sp.example.com/in-cse/frontDoor"),
        ("/in-cse", "//sp.example.com/in-cse"),
        ("in-cse", "//sp.example.com/in-cse"),
    ] {
        let mut visitor = request("Cvisitor", pb::Operation::Retrieve, target);
        visitor.token_request_indicator = true;
        let d = client.decide(visitor).await.expect("decision").into_inner();
        assert_eq!(d.decision, DENY, "{d:?}");
        let tqf = d.token_request_info.expect("tqf");
        assert_eq!(tqf.das_info.len(), 1, "{tqf:?}");
        let dreq = tqf.das_info[0].das_request.as_ref().expect("dreq");
        assert_eq!(dreq.targeted_resource_id, trid, "{target}");
        assert_eq!(dreq.originator, "//sp.example.com/in-cse/Cvisitor");
    }
}

/// Decision 9: a malformed token in `tkns` is the originator's invalid
/// argument (4000), and the INVALID_ARGUMENT names the token by its index
/// (`tokens[1]`), as the request conversion names its fields, on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_token_is_named_by_its_index_decision_9() {
    let das = ScriptedDas::default();
    let pdp = pdp_with_das(&das, None).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let mut r = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    // Shaped like a JWS (the conversion passes it), but no JSON header.
    r.tokens = vec![
        retrieve_token("tkok@das.example.com", "Cvisitor"),
        "aaaa.bbbb.cccc".into(),
    ];
    let status = client.decide(r).await.expect_err("invalid argument");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("tokens[1]: "), "{status:?}");
    let bad = tonic_types::StatusExt::get_details_bad_request(&status).expect("BadRequest");
    let fields: Vec<&str> = bad
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["tokens[1]"], "{status:?}");
}

/// TS-0001 7.1.15: "A Token-ID shall identify the issuer of the Token",
/// and a Token-ID's FQDN names the DAS it is fetched from (Decision 8). A
/// token signed by the trusted DAS whose Token-ID is under another FQDN
/// would let that DAS mint IDs in another's name: a Deny saying so. The
/// same token under the DAS's own FQDN permits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_id_under_another_issuers_fqdn_is_refused_ts_0001_7_1_15() {
    let das = ScriptedDas::default();
    let pdp = pdp_with_das(&das, None).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let mut foreign = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    foreign.tokens = vec![retrieve_token("tkforeign@other.example.com", "Cvisitor")];
    let d = client.decide(foreign).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(
        d.summary.contains("does not name its issuer") && d.summary.contains(DAS_FQDN),
        "{d:?}"
    );
    let mut own = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    own.tokens = vec![retrieve_token(&format!("tkown@{DAS_FQDN}"), "Cvisitor")];
    let d = client.decide(own).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
}

/// A DAS rotates its keys by putting the new key first in its key set
/// (README, DAS `signing_keys`). A token signed with the new key, whose
/// `kid` the PDP did not have when it fetched the key set, makes the PDP
/// fetch that DAS's key set again and verify once more (TS-0003 7.3.2.3
/// step 6.1.1: the token is verified with its issuer's key); a second
/// unknown `kid` right after does not make it fetch again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_under_a_rotated_das_key_is_verified_7_3_2_3() {
    let das = ScriptedDas::default();
    let pdp = pdp_with_das(&das, None).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let loaded = das.key_set_calls.load(Ordering::SeqCst);

    // With a key the PDP cannot use listed too (an EC key called RS256):
    // it is left out, the others still verify.
    *das.keys.lock().await = vec![
        public_key("das-broken", "RS256", "es256-public.pem"),
        public_key("das-ed25519-2", "EdDSA", "ed25519-public.pem"),
        public_key(DAS_KID, "ES256", "es256-public.pem"),
    ];
    let mut rotated = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    rotated.tokens = vec![retrieve_token_signed(
        "tkrotated@das.example.com",
        "Cvisitor",
        TokenAlgorithm::EdDsa,
        "das-ed25519-2",
        "ed25519-private.pem",
    )];
    let d = client.decide(rotated).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(das.key_set_calls.load(Ordering::SeqCst), loaded + 1);

    // The old key still verifies.
    let mut old = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    old.tokens = vec![retrieve_token("tkold@das.example.com", "Cvisitor")];
    let d = client.decide(old).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");

    // A kid the DAS does not have either: denied, without another fetch
    // so soon (rate-limited per DAS).
    let mut unknown = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    unknown.tokens = vec![retrieve_token_signed(
        "tkunknown@das.example.com",
        "Cvisitor",
        TokenAlgorithm::EdDsa,
        "das-ed25519-3",
        "ed25519-private.pem",
    )];
    let d = client.decide(unknown).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert_eq!(das.key_set_calls.load(Ordering::SeqCst), loaded + 1);
}

/// TS-0003 7.3.2.3 step 7.1: "For each new Local-Token-ID(s) that has been
/// assigned, the Hosting CSE provides the Local-Token-ID and corresponding
/// tokenID in the response parameters." A request whose second token fails
/// verification (step 6.1.3: another holder) is answered with an error and
/// no `ati` (step 6.1.4), so its first, valid token gets no Local-Token-ID
/// then: the next request presenting it alone is told its new one, which
/// then names the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_token_ids_are_assigned_only_when_reported_7_3_2_3() {
    let das = ScriptedDas::default();
    let pdp = pdp_with_das(&das, None).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let valid = retrieve_token("tkvalid@das.example.com", "Cvisitor");
    let foreign = retrieve_token("tkforeign@das.example.com", "Cother");

    let mut both = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    both.tokens = vec![valid.clone(), foreign];
    let d = client.decide(both).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(
        d.summary.starts_with("DENY (token): tokens[1] rejected"),
        "{}",
        d.summary
    );
    assert!(d.assigned_token_ids.is_empty(), "{d:?}");

    let mut alone = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    alone.tokens = vec![valid.clone()];
    let d = client.decide(alone).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let assigned: Vec<(String, String)> = d
        .assigned_token_ids
        .iter()
        .map(|a| (a.local_token_id.clone(), a.token_id.clone()))
        .collect();
    assert_eq!(assigned.len(), 1, "the token is new here: {d:?}");
    assert_eq!(assigned[0].1, "tkvalid@das.example.com");

    // Presented again by value, the token's Local-Token-ID is reported
    // again: had the answer above been lost, the originator would
    // otherwise never learn it (step 7.2 needs it).
    // The same token: one signed again a second later would have other
    // claims (`nbf`, `exp`), another token under the same Token-ID.
    let mut again = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    again.tokens = vec![valid];
    let d = client.decide(again).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let again: Vec<(String, String)> = d
        .assigned_token_ids
        .iter()
        .map(|a| (a.local_token_id.clone(), a.token_id.clone()))
        .collect();
    assert_eq!(again, assigned, "the same assignment, reported again");

    let mut by_local = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    by_local.local_token_ids = vec![assigned[0].0.clone()];
    let d = client
        .decide(by_local)
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert!(d.assigned_token_ids.is_empty(), "nothing new: {d:?}");
}

/// TS-0003 7.3.2.3 step 7.2: "the Originator may use the Local-Token-ID
/// instead of the Token". A DAS that reuses a Token-ID (which TS-0001
/// 7.1.15 forbids) for another holder must not have that holder told the
/// first holder's Local-Token-ID: the ID would name a token it does not
/// hold, and deny it. Its token still decides by value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_token_id_of_another_holder_gets_no_local_token_id_7_3_2_3() {
    let das = ScriptedDas::default();
    let pdp = pdp_with_das(&das, None).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    let mut first = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    first.tokens = vec![retrieve_token("tkdup@das.example.com", "Cvisitor")];
    let d = client.decide(first).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(d.assigned_token_ids.len(), 1, "{d:?}");

    let mut second = request("Cother", pb::Operation::Retrieve, "cnt");
    second.tokens = vec![retrieve_token("tkdup@das.example.com", "Cother")];
    let d = client.decide(second).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert!(
        d.assigned_token_ids.is_empty(),
        "the first holder's Local-Token-ID is not handed to another: {d:?}"
    );
}

/// TS-0003 7.3.2.3 steps 6.1.2/6.2 with a Token-ID a DAS reused for another
/// token of the same holder (TS-0001 7.1.15 forbids it): the second token,
/// granting DELETE, is used by value and told no Local-Token-ID, since the
/// one assigned names the first token, which grants RETRIEVE only; that ID
/// still means the first token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_token_id_of_another_token_of_the_holder_gets_no_local_token_id_7_3_2_3() {
    let das = ScriptedDas::default();
    let pdp = pdp_with_das(&das, None).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let key = (TokenAlgorithm::Es256, DAS_KID, "es256-private.pem");

    let mut first = request("Cvisitor", pb::Operation::Retrieve, "cnt");
    first.tokens = vec![token_granting("tkre@das.example.com", "Cvisitor", 2, key)];
    let d = client.decide(first).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(d.assigned_token_ids.len(), 1, "{d:?}");
    let lti = d.assigned_token_ids[0].local_token_id.clone();

    let mut second = request("Cvisitor", pb::Operation::Delete, "cnt");
    second.tokens = vec![token_granting("tkre@das.example.com", "Cvisitor", 8, key)];
    let d = client.decide(second).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert!(
        d.assigned_token_ids.is_empty(),
        "the first token's Local-Token-ID is not handed out for another: {d:?}"
    );

    let by_id = |op: pb::Operation| {
        let mut r = request("Cvisitor", op, "cnt");
        r.local_token_ids = vec![lti.clone()];
        r
    };
    let d = client
        .decide(by_id(pb::Operation::Retrieve))
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let d = client
        .decide(by_id(pb::Operation::Delete))
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
}

/// TS-0003 7.3.2.3 step 6.1.4: a request whose token fails, and that the
/// stored policies deny, is answered with the token's failure. The stored
/// policies' Deny underneath still counts: one indeterminate for want of
/// the originator's IP stays MISSING_ATTRIBUTE naming it (Decision 10), one
/// whose rules do not name the originator NOT_APPLICABLE, and the rules
/// that were evaluated are in the explanation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_keeps_the_stored_policies_status_7_3_2_3_decision_10() {
    let mut policy = acp("acp1", &["Cowner"], 63);
    if let Some(pv) = policy.privileges.as_mut() {
        pv.rules.push(pb::AccessControlRule {
            originators: vec!["Cipae".into()],
            operations: 2,
            contexts: vec![pb::AccessControlContext {
                ip_addresses: Some(pb::IpAddresses {
                    ipv4: vec!["10.0.0.0/8".into()],
                    ipv6: Vec::new(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let (url, task) = serve_das(ScriptedDas::default()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url]);
    dynamic.deadline = Duration::from_secs(5);
    let pdp = pdp_trusting(
        dynamic,
        &snapshot_event(
            1,
            vec![policy],
            vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
        ),
    )
    .await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    // Another holder's token: rejected for this originator.
    let theirs = retrieve_token("tkother@das.example.com", "Cother");

    let mut no_ip = request("Cipae", pb::Operation::Retrieve, "cnt");
    no_ip.tokens = vec![theirs.clone()];
    let d = client.decide(no_ip).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{d:?}"
    );
    assert!(
        d.missing.iter().any(|m| m.attribute == "ip_address"),
        "{d:?}"
    );
    assert!(
        d.summary.starts_with("DENY (token): tokens[0]"),
        "{}",
        d.summary
    );
    let explanation = d.explanation.expect("explanation");
    assert_eq!(explanation.failed_rules.len(), 1, "{explanation:?}");

    let mut nobody = request("Cnobody", pb::Operation::Retrieve, "cnt");
    nobody.tokens = vec![theirs];
    let d = client.decide(nobody).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::NotApplicable as i32,
        "{d:?}"
    );
}

/// A token of the scripted DAS for `holder` (absolute), for CSE A and CSE B
/// of `sp.example.com`, granting it UPDATE on the resources `ris` only.
fn door_token(token_id: &str, holder: &str, ris: &[&str]) -> String {
    let now = Utc::now();
    let mut claims = TokenClaims::new(
        token_id,
        DAS_ISSUER,
        holder,
        now - chrono::Duration::seconds(10),
        now + chrono::Duration::seconds(600),
    );
    claims.audience = vec![
        "//sp.example.com/cse-a".into(),
        "//sp.example.com/cse-b".into(),
    ];
    claims.permissions.pm = vec![TokenPermission {
        ris: ris.iter().map(|r| r.to_string()).collect(),
        pv: Some(SetOfAcrs {
            rules: vec![AccessControlRule {
                originators: vec![holder.to_owned()],
                operations: 4,
                ..Default::default()
            }],
        }),
        rids: Vec::new(),
    }];
    sign_es256(&claims)
}

/// A PDP trusting the scripted DAS, with `door` under `acpOwner` (which
/// grants `Cowner` only), for the tokens-at-two-CSEs tests.
async fn door_pdp(dynamic: DynamicConfig) -> Pdp {
    pdp_trusting(
        dynamic,
        &snapshot_event(
            1,
            vec![acp("acpOwner", &["Cowner"], 63)],
            vec![resource("door", Some(&["acpOwner"]), "Ccreator")],
        ),
    )
    .await
}

/// [`door_pdp`] trusting the scripted DAS (no default DAS: a Deny of the
/// tokens is not followed by a consultation), served on a loopback port,
/// and a client of it.
async fn door_pdp_served() -> (
    Pdp,
    tokio::task::JoinHandle<()>,
    PolicyDecisionPointClient<tonic::transport::Channel>,
) {
    let (url, task) = serve_das(ScriptedDas::default()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url]);
    dynamic.deadline = Duration::from_secs(5);
    let pdp = door_pdp(dynamic).await;
    let (channel, server) = serve_pdp(&pdp).await;
    (pdp, server, PolicyDecisionPointClient::new(channel))
}

/// UPDATE of `door` by `originator` received by the CSE `cse` of
/// `//sp.example.com`.
fn door_update_at(originator: &str, cse: &str) -> pb::DecisionRequest {
    let mut r = request(originator, pb::Operation::Update, "door");
    r.hosting_sp_id = "//sp.example.com".into();
    r.hosting_cse_id = cse.into();
    r
}

/// TS-0003 7.1.1: "For requests to <accessControlPolicy> resource type,
/// authorization is granted if the request is evaluated to Permit for at
/// least one selfPrivileges attribute". A token's permissions are
/// privileges (`pv`): one naming the ACP in `ris` does not authorize an
/// UPDATE of that ACP, and the Deny says why; it still authorizes one on
/// the resource it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_privileges_do_not_authorize_a_request_on_an_acp_7_1_1() {
    let (_pdp, _server, mut client) = door_pdp_served().await;
    let visitor = "//sp.example.com/cse-a/Cvisitor";
    let token = door_token(
        "tkacp@das.example.com",
        visitor,
        &[
            "//sp.example.com/cse-a/acpOwner",
            "//sp.example.com/cse-a/door",
        ],
    );
    let mut on_acp = request(visitor, pb::Operation::Update, "acpOwner");
    on_acp.hosting_sp_id = "//sp.example.com".into();
    on_acp.hosting_cse_id = "/cse-a".into();
    on_acp.tokens = vec![token.clone()];
    let d = client.decide(on_acp).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(d.summary.contains("selfPrivileges"), "{}", d.summary);
    let mut on_door = door_update_at(visitor, "/cse-a");
    on_door.tokens = vec![token];
    let d = client.decide(on_door).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
}

/// TS-0003 7.3.2.5: a token permission with `ris` "shall apply only to the
/// resources specified by this element". A `ris` naming the CSEBase by its
/// CSE-ID, SP-relative or absolute, is the CSEBase however the request
/// names it (`/cse-a`, `//sp.example.com/cse-a`, or its resource ID
/// `cse-a`), and grants nothing on its children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_the_cse_base_grants_on_it_7_3_2_5() {
    let (url, task) = serve_das(ScriptedDas::default()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url]);
    dynamic.deadline = Duration::from_secs(5);
    let pdp = pdp_trusting(
        dynamic,
        &snapshot_event(
            1,
            vec![acp("acpOwner", &["Cowner"], 63)],
            vec![
                resource("door", Some(&["acpOwner"]), "Ccreator"),
                resource("cse-a", Some(&["acpOwner"]), "Ccreator"),
            ],
        ),
    )
    .await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let visitor = "//sp.example.com/cse-a/Cvisitor";
    for (i, ris) in ["/cse-a", "//sp.example.com/cse-a", "//SP.example.com/cse-a"]
        .into_iter()
        .enumerate()
    {
        let token = door_token(&format!("tkbase{i}@das.example.com"), visitor, &[ris]);
        for to in ["/cse-a", "//sp.example.com/cse-a", "cse-a", "door"] {
            let mut r = door_update_at(visitor, "/cse-a");
            r.target = to.into();
            r.tokens = vec![token.clone()];
            let d = client.decide(r).await.expect("decision").into_inner();
            let expected = if to == "door" { DENY } else { PERMIT };
            assert_eq!(d.decision, expected, "ris {ris}, to {to}: {d:?}");
        }
    }
}

/// TS-0003 7.3.2.5: a token permission with `ris` "shall apply only to the
/// resources specified by this element", and a CSE-relative resource ID
/// names a resource of the CSE that received the request. One PDP serves
/// CSE A and CSE B; a token for A's `door` (`ris`
/// `//sp.example.com/cse-a/door`, audience A and B) first used at A gets a
/// Local-Token-ID. Presented by it at B, for B's `door`, it grants nothing:
/// its permissions are read in B's context, not in that of its first use.
/// At A the Local-Token-ID still permits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_token_id_reused_at_another_cse_is_scoped_to_it_7_3_2_5() {
    let (_pdp, _server, mut client) = door_pdp_served().await;
    let visitor = "//sp.example.com/cse-a/Cvisitor";
    let at = |cse: &str| door_update_at(visitor, cse);

    let mut first = at("/cse-a");
    first.tokens = vec![door_token(
        "tkdoor@das.example.com",
        visitor,
        &["//sp.example.com/cse-a/door"],
    )];
    let d = client.decide(first).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(d.assigned_token_ids.len(), 1, "{d:?}");
    let lti = d.assigned_token_ids[0].local_token_id.clone();

    let mut at_b = at("/cse-b");
    at_b.local_token_ids = vec![lti.clone()];
    let d = client.decide(at_b).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "B's door is not A's: {d:?}");
    assert!(
        d.summary.contains("grants nothing on door"),
        "{}",
        d.summary
    );

    let mut at_a = at("/cse-a");
    at_a.local_token_ids = vec![lti];
    let d = client.decide(at_a).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
}

/// TS-0003 7.3.2.5 for the tokens a Direct consultation (7.3.2.2 step
/// 4.1.1) gave: they are kept for their holder and used for its later
/// requests, each judged at the CSE that received that request. A token
/// the DAS returned when CSE A consulted it, for A's `door`, grants nothing
/// on B's `door` when the holder's next request comes through B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_token_kept_for_its_holder_is_scoped_to_each_requests_cse_7_3_2_5() {
    let das = ScriptedDas::default();
    let visitor = "//sp.example.com/cse-a/Cvisitor";
    das.answer(pb::DasResponse {
        tokens: vec![door_token(
            "tkdirect@das.example.com",
            visitor,
            &["//sp.example.com/cse-a/door"],
        )],
        ..Default::default()
    })
    .await;
    let (url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url.clone()]);
    dynamic.default_das = Some(url);
    dynamic.deadline = Duration::from_secs(5);
    let pdp = door_pdp(dynamic).await;
    let service = pdp.service();
    let at = |cse: &str| door_update_at(visitor, cse);
    let d = service
        .decide_resolving_pb(&at("/cse-a"))
        .await
        .expect("decision");
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(das.consultations.load(Ordering::SeqCst), 1);
    let dynamic = pdp.dynamic().expect("dynamic authorization");
    assert_eq!(dynamic.direct_tokens_of(visitor), 1);

    // From now on the DAS grants nothing: only the kept token could permit.
    das.answer(pb::DasResponse::default()).await;
    let d = service
        .decide_resolving_pb(&at("/cse-b"))
        .await
        .expect("decision");
    assert_eq!(d.decision, DENY, "B's door is not A's: {d:?}");
    let d = service
        .decide_resolving_pb(&at("/cse-a"))
        .await
        .expect("decision");
    assert_eq!(d.decision, PERMIT, "{d:?}");
}

/// TS-0001 7.1.16 (spec notes §6.3): a Local-Token-ID is unique per hosting
/// CSE and reusable only after expiry. Two PDPs of one CSE without a PIP
/// (or one PDP before and after a restart) each assign their first one to
/// the same token: the IDs differ, and each is an NCName that the PDP that
/// assigned it accepts back in `ltids`. (PDPs sharing a PIP share their
/// assignments: `tests/tests/local_token_ids.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pdps_never_hand_out_the_same_local_token_id_ts_0001_7_1_16() {
    let token = retrieve_token("tkshared@das.example.com", "Cvisitor");
    let mut first_ids = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let das = ScriptedDas::default();
        let pdp = pdp_with_das(&das, None).await;
        let (channel, server) = serve_pdp(&pdp).await;
        let mut client = PolicyDecisionPointClient::new(channel);
        let mut r = request("Cvisitor", pb::Operation::Retrieve, "cnt");
        r.tokens = vec![token.clone()];
        let d = client.decide(r).await.expect("decision").into_inner();
        assert_eq!(d.decision, PERMIT, "{d:?}");
        assert_eq!(d.assigned_token_ids.len(), 1, "{d:?}");
        first_ids.push(d.assigned_token_ids[0].local_token_id.clone());
        clients.push((client, server, pdp));
    }
    assert_ne!(first_ids[0], first_ids[1]);
    for ((client, _, _), lti) in clients.iter_mut().zip(&first_ids) {
        assert!(lti.starts_with("lt"), "{lti}");
        let mut by_local = request("Cvisitor", pb::Operation::Retrieve, "cnt");
        by_local.local_token_ids = vec![lti.clone()];
        let d = client
            .decide(by_local)
            .await
            .expect("an NCName")
            .into_inner();
        assert_eq!(d.decision, PERMIT, "{lti}: {d:?}");
    }
}

/// Decision 7 (TS-0003 7.3.2.2 step 4.1.2): a `dai` grant becomes a dynamic
/// ACP "bound to the targeted resource and counted in its applicable policy
/// set" until `pl` ends. A contentInstance (ty 4) has no `acpi` and is
/// judged by its container's policies (TS-0001 10.2.3.1 step 2), but a
/// grant for it is bound to it, not to the container: it must not let the
/// originator DELETE the container or RETRIEVE a sibling. Once the PRP's
/// Watch brings it to the replica, the next request on the contentInstance
/// is permitted by it without consulting the DAS again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_7_a_dai_for_a_content_instance_is_bound_to_it_not_its_parent() {
    let prp = FakePrp::default();
    prp.put_acp(acp("acpOwner", &["Cowner"], 63));
    prp.put_resource(resource("cnt", Some(&["acpOwner"]), "Ccreator"));
    for cin in ["cin1", "cin2"] {
        prp.put_resource(pb::TargetResource {
            resource_id: cin.into(),
            parent_id: "cnt".into(),
            resource_type: 4,
            creator: "Cowner".into(),
            ..Default::default()
        });
    }
    let running = prp.serve(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    let prp_url = format!("http://{}", running.addr);
    let das = ScriptedDas::default();
    // RETRIEVE + DELETE for the guest, as the DAS's policy for cnt/cin1 says.
    let mut granted = retrieve_for("Cguest");
    granted.rules[0].operations = 2 | 8;
    das.answer(pb::DasResponse {
        dynamic_acp_info: Some(pb::DynamicAcpInfo {
            granted_privileges: Some(granted),
            privileges_lifetime: "3600000".into(),
        }),
        ..Default::default()
    })
    .await;
    let (das_url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![das_url.clone()]);
    dynamic.default_das = Some(das_url);
    dynamic.deadline = Duration::from_secs(5);
    dynamic.prp = Some(prp_url.clone());
    let pdp = Pdp::start(
        PdpConfig::new(hosting())
            .with_prp(prp_url)
            .with_dynamic(dynamic),
    )
    .expect("pdp");
    let ready = eventually(Duration::from_secs(10), || {
        let ready = pdp.replica().load().resources.contains_key("cin2")
            && pdp.dynamic().is_some_and(|d| d.keys_loaded());
        async move { ready }
    })
    .await;
    assert!(ready, "the PDP never followed the PRP or trusted the DAS");
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let guest = |op, target: &str| request("Cguest", op, target);

    let d = client
        .decide(guest(pb::Operation::Retrieve, "cin1"))
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert!(permitted_by(&d).starts_with("dai:"), "{d:?}");
    let stored = prp.dynamic_acps();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        stored[0].target, "cin1",
        "bound to the targeted resource: {stored:?}"
    );

    let replicated = eventually(Duration::from_secs(10), || {
        let has = pdp.replica().load().dynamic_target("dyn1").is_some();
        async move { has }
    })
    .await;
    assert!(replicated, "the dynamic ACP never reached the replica");
    // From now on the DAS grants nothing: what is permitted, dyn1 permits.
    das.answer(pb::DasResponse::default()).await;
    for op in [pb::Operation::Retrieve, pb::Operation::Delete] {
        let d = client
            .decide(guest(op, "cin1"))
            .await
            .expect("decision")
            .into_inner();
        assert_eq!(d.decision, PERMIT, "{op:?} cin1: {d:?}");
        assert_eq!(permitted_by(&d), "dyn1", "{d:?}");
    }
    assert_eq!(das.consultations.load(Ordering::SeqCst), 1);
    for (op, target) in [
        (pb::Operation::Delete, "cnt"),
        (pb::Operation::Retrieve, "cnt"),
        (pb::Operation::Retrieve, "cin2"),
        (pb::Operation::Delete, "cin2"),
    ] {
        let d = client
            .decide(guest(op, target))
            .await
            .expect("decision")
            .into_inner();
        assert_eq!(d.decision, DENY, "{op:?} {target}: {d:?}");
    }
    running.kill().await;
}

/// A scripted DAS on a loopback port, a configuration trusting it as the
/// default DAS (5 s deadline), and its URL.
async fn scripted_default_das() -> (ScriptedDas, DynamicConfig, String) {
    let das = ScriptedDas::default();
    let (url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url.clone()]);
    dynamic.default_das = Some(url.clone());
    dynamic.deadline = Duration::from_secs(5);
    (das, dynamic, url)
}

/// TS-0003 table 7.3.2.2-1 marks Originator Resource Type (`trt`) M, and
/// TS-0004 7.5.1.2.10 requires it. A request without `target_type` still
/// gets one in its `dreq`, consulted (Direct) or named in the Token Request
/// Information (Indirect): the target's `ty` in the replica (4 for a
/// contentInstance). A `target_type` the request gives is the replica's
/// (another is INVALID_ARGUMENT, TS-0001 9.6.1.3). A request
/// on an ACP is not taken to a DAS at all: only the ACP's selfPrivileges
/// authorize it (TS-0003 7.1.1), and a DAS grants privileges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dreq_trt_falls_back_to_the_replica_7_3_2_2() {
    let (das, dynamic, _) = scripted_default_das().await;
    let pdp = pdp_trusting(
        dynamic,
        &snapshot_event(
            1,
            vec![acp("acp1", &["Cowner"], 63)],
            vec![
                resource("cnt", Some(&["acp1"]), "Ccreator"),
                pb::TargetResource {
                    resource_id: "cin".into(),
                    parent_id: "cnt".into(),
                    resource_type: 4,
                    creator: "Cowner".into(),
                    ..Default::default()
                },
            ],
        ),
    )
    .await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);

    for (target, given, want) in [("cnt", None, 3), ("cin", None, 4), ("cin", Some(4), 4)] {
        let mut visitor = request("Cvisitor", pb::Operation::Retrieve, target);
        visitor.target_type = given;
        visitor.token_request_indicator = true;
        let d = client.decide(visitor).await.expect("decision").into_inner();
        assert_eq!(d.decision, DENY, "{target}: {d:?}");
        let consulted = das.requests.lock().await.pop().expect("consulted");
        assert_eq!(
            consulted.targeted_resource_type,
            Some(want),
            "{target}: {consulted:?}"
        );
        let named = d
            .token_request_info
            .as_ref()
            .and_then(|t| t.das_info.first())
            .and_then(|i| i.das_request.as_ref())
            .and_then(|r| r.targeted_resource_type);
        assert_eq!(named, Some(want), "{target}: {d:?}");
    }
    let mut on_acp = request("Cvisitor", pb::Operation::Update, "acp1");
    on_acp.token_request_indicator = true;
    let d = client.decide(on_acp).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(das.requests.lock().await.is_empty(), "the DAS was asked");
    assert!(d.token_request_info.is_none(), "{d:?}");
    assert!(d.summary.contains("no DAS was consulted"), "{}", d.summary);
}

/// TS-0003 table 7.3.2.2-1 makes `trt` mandatory in a `dreq`: a request
/// naming its ACPs (`acp_ids`) on a target the replica does not hold, and
/// giving no `target_type`, is not taken to a DAS (the Deny says why); with
/// `target_type` it is, and the `dreq` carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dreq_without_its_mandatory_trt_7_3_2_2() {
    let (das, dynamic, _) = scripted_default_das().await;
    let pdp = pdp_trusting(dynamic, &owner_only()).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let mut untyped = request("Cvisitor", pb::Operation::Retrieve, "elsewhere");
    untyped.acp_ids = vec!["acp1".into()];
    let d = client
        .decide(untyped.clone())
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(d.summary.contains("trt"), "{}", d.summary);
    assert_eq!(das.consultations.load(Ordering::SeqCst), 0);
    let mut typed = untyped;
    typed.target_type = Some(3);
    let d = client.decide(typed).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    let consulted = das.requests.lock().await.pop().expect("consulted");
    assert_eq!(consulted.targeted_resource_type, Some(3));
}

/// Spec notes §6.3 steps 2-3 (TS-0001 9.6.1.3.2, 9.6.40): the target's
/// `daci` decides which DAS is consulted; only when it is unset or
/// invalid (it links no DAC) do the parent's DACs or the default DAS
/// apply. A target linking only a disabled DAC (`dae` false) is not taken
/// to any DAS: the owner switched dynamic authorization off for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_dac_switches_dynamic_authorization_off_ts_0001_9_6_40() {
    let (das, dynamic, url) = scripted_default_das().await;
    let dac = |id: &str, enabled: bool| pb::TargetResource {
        resource_id: id.into(),
        resource_type: 34,
        dac_enabled: Some(enabled),
        dac_poa: vec![url.clone()],
        creator: "Cowner".into(),
        ..Default::default()
    };
    let door = |id: &str, daci: &[&str]| {
        let mut r = resource(id, Some(&["acp1"]), "Ccreator");
        r.parent_id = "home".into();
        r.daci = daci.iter().map(|d| d.to_string()).collect();
        r
    };
    let mut home = resource("home", Some(&["acp1"]), "Ccreator");
    home.daci = vec!["dacOn".into()];
    let pdp = pdp_trusting(
        dynamic,
        &snapshot_event(
            1,
            vec![acp("acp1", &["Cowner"], 63)],
            vec![
                home,
                dac("dacOn", true),
                dac("dacOff", false),
                door("doorOff", &["dacOff"]),
                door("doorLost", &["nosuchdac"]),
                door("doorPlain", &[]),
            ],
        ),
    )
    .await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let visitor = |target: &str| request("Cvisitor", pb::Operation::Retrieve, target);

    let d = client
        .decide(visitor("doorOff"))
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(d.summary.contains("disabled"), "{}", d.summary);
    assert_eq!(das.consultations.load(Ordering::SeqCst), 0, "no DAS asked");
    // An invalid daci, or none: the parent's enabled DAC.
    for (i, target) in ["doorLost", "doorPlain"].into_iter().enumerate() {
        let d = client
            .decide(visitor(target))
            .await
            .expect("decision")
            .into_inner();
        assert_eq!(d.decision, DENY, "{target}: {d:?}");
        assert_eq!(das.consultations.load(Ordering::SeqCst), i + 1, "{target}");
    }
}

/// TS-0003 7.3.2.2 step 2.2 and Decision 8: a DAS that a Role-ID of an
/// applicable rule identifies (by the FQDN after `@`: the DAS's own, or one
/// of the `role_issuers` its key set publishes) is consulted with that
/// Role-ID in `rfa` (step 2.2.1), and listed with it in Token Request
/// Information, also when the target links no DAC and no default DAS is
/// configured (step 2.2.2 gives none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_das_a_role_id_identifies_is_consulted_7_3_2_2_step_2_2_1() {
    let das = ScriptedDas {
        role_issuers: vec!["roles.example.com"],
        ..ScriptedDas::default()
    };
    let (url, task) = serve_das(das.clone()).await;
    tokio::spawn(task);
    let mut dynamic = DynamicConfig::new(vec![url]);
    dynamic.deadline = Duration::from_secs(5);
    let mut policy = acp("acp1", &["Cowner"], 63);
    if let Some(pv) = policy.privileges.as_mut() {
        pv.rules.push(pb::AccessControlRule {
            originators: vec!["guest@roles.example.com".into()],
            operations: 2,
            ..Default::default()
        });
    }
    let snapshot = snapshot_event(
        1,
        vec![policy],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    );
    let pdp = pdp_trusting(dynamic, &snapshot).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let mut req = request("Cguest", pb::Operation::Retrieve, "cnt");
    req.token_request_indicator = true;
    let d = client.decide(req).await.expect("decide").into_inner();
    assert_eq!(d.decision, pb::AuthorizationDecision::Deny as i32);
    assert_eq!(das.consultations.load(Ordering::SeqCst), 1, "{}", d.summary);
    let rfa = ["guest@roles.example.com".to_string()];
    assert_eq!(das.requests.lock().await[0].role_ids_from_acps, rfa);
    let tqf = d.token_request_info.expect("Token Request Information");
    assert_eq!(tqf.das_info.len(), 1);
    assert_eq!(
        tqf.das_info[0]
            .das_request
            .as_ref()
            .map(|r| r.role_ids_from_acps.clone()),
        Some(rfa.to_vec())
    );
}

/// TS-0001 9.6.1.3.2 with Decision 7: an acpi change needs UPDATE in the
/// selfPrivileges (`pvs`) of the target's ACPs. What Dynamic Authorization
/// grants for a target are privileges (a `dai`'s `gp`, a token's `pv`),
/// never selfPrivileges: the DAS is not consulted for an acpi change, and a
/// token granting UPDATE permits the ordinary Update only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_authorization_does_not_authorize_an_acpi_change_ts0001_9_6_1_3_2() {
    // Direct: the DAS would grant the visitor UPDATE on cnt for a minute.
    let das = ScriptedDas::default();
    let until = Utc::now() + chrono::Duration::seconds(60);
    das.answer(pb::DasResponse {
        dynamic_acp_info: Some(pb::DynamicAcpInfo {
            granted_privileges: Some(pb::SetOfAcrs {
                rules: vec![pb::AccessControlRule {
                    originators: vec![absolute("Cvisitor")],
                    operations: 4,
                    ..Default::default()
                }],
            }),
            privileges_lifetime: authz_core::json::format_timestamp(until),
        }),
        ..Default::default()
    })
    .await;
    let pdp = pdp_with_das(&das, None).await;
    let (channel, _server) = serve_pdp(&pdp).await;
    let mut client = PolicyDecisionPointClient::new(channel);
    let mut change = request("Cvisitor", pb::Operation::Update, "cnt");
    change.updates_acpi = true;
    let d = client
        .decide(change.clone())
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(d.summary.contains("no DAS was consulted"), "{}", d.summary);
    assert_eq!(das.consultations.load(Ordering::SeqCst), 0);
    // The ordinary Update is granted by the DAS, and the grant, now held
    // for the target, still does not authorize the acpi change.
    let update = request("Cvisitor", pb::Operation::Update, "cnt");
    let d = client.decide(update).await.expect("decision").into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(das.consultations.load(Ordering::SeqCst), 1);
    let d = client.decide(change).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert_eq!(das.consultations.load(Ordering::SeqCst), 1);

    // Indirect: a token granting the visitor UPDATE on the door (its pv).
    let (_pdp, _server, mut client) = door_pdp_served().await;
    let visitor = "//sp.example.com/cse-a/Cvisitor";
    let mut update = door_update_at(visitor, "/cse-a");
    update.tokens = vec![door_token(
        "tkacpi@das.example.com",
        visitor,
        &["//sp.example.com/cse-a/door"],
    )];
    let d = client
        .decide(update.clone())
        .await
        .expect("decision")
        .into_inner();
    assert_eq!(d.decision, PERMIT, "the ordinary Update: {d:?}");
    let mut change = update;
    change.updates_acpi = true;
    let d = client.decide(change).await.expect("decision").into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(
        d.summary
            .contains("the tokens' privileges (pv) do not authorize an acpi change"),
        "{}",
        d.summary
    );
}
