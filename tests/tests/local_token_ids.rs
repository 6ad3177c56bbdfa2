//! Local-Token-IDs that belong to the hosting CSE, not to one PDP process
//! (TS-0001 7.1.16: NCNames "unique per Hosting CSE"; TS-0003 7.3.2.3 steps
//! 6.1.2, 6.2, 7.1, 7.2), over gRPC on loopback: a real PIP, whose token
//! repository holds the assignments, and several real PDPs of one hosting
//! CSE sharing it, as behind a PEP that balances over several endpoints.
//! A DAS that only serves its key set makes the PDPs trust the test's
//! tokens.

use std::time::Duration;

use authz_core::token::{TokenAlgorithm, TokenClaims, TokenPermission, TokenSigner};
use authz_core::{AccessControlRule, SetOfAcrs};
use authz_pdp::{DynamicConfig, Pdp, PdpConfig};
use authz_pip::PipConfig;
use authz_proto::pb;
use authz_proto::pb::dynamic_authorization_server_server::{
    DynamicAuthorizationServer, DynamicAuthorizationServerServer,
};
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_proto::pb::watch_event::Event;
use authz_tests::serving::{Served, serve};
use chrono::Utc;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

const ADMIN: &str = "CAdmin";
const DAS_ISSUER: &str = "//sp.example.com/id-in/CDas";
const DAS_FQDN: &str = "das.example.com";
const DAS_KID: &str = "das-es256-1";
const PERMIT: i32 = pb::AuthorizationDecision::Permit as i32;
const DENY: i32 = pb::AuthorizationDecision::Deny as i32;

fn hosting() -> authz_core::HostingContext {
    authz_core::HostingContext::new("//sp.example.com", "/id-in").expect("hosting")
}

fn das_key(file: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/das/keys")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A DAS that serves only its key set (the example ES256 key): the PDPs
/// trust the tokens this test signs with it.
#[derive(Clone, Default)]
struct KeyDas;

#[tonic::async_trait]
impl DynamicAuthorizationServer for KeyDas {
    async fn consult(
        &self,
        _request: Request<pb::ConsultRequest>,
    ) -> Result<Response<pb::DasResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn issue_token(
        &self,
        _request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    /// Knows no token: those of these tests are in the PIP's repository.
    async fn get_tokens(
        &self,
        request: Request<pb::GetDasTokensRequest>,
    ) -> Result<Response<pb::GetDasTokensResponse>, Status> {
        Ok(Response::new(pb::GetDasTokensResponse {
            tokens: Vec::new(),
            unknown_ids: request.into_inner().token_ids,
        }))
    }

    async fn get_key_set(
        &self,
        _request: Request<pb::GetKeySetRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        Ok(Response::new(pb::KeySet {
            issuer: DAS_ISSUER.into(),
            fqdn: DAS_FQDN.into(),
            role_issuers: Vec::new(),
            request_encryption_jwk: String::new(),
            keys: vec![pb::PublicKey {
                kid: DAS_KID.into(),
                alg: "ES256".into(),
                public_key_pem: String::from_utf8(das_key("es256-public.pem")).expect("PEM"),
            }],
        }))
    }
}

fn absolute(originator: &str) -> String {
    format!("//sp.example.com/id-in/{originator}")
}

/// A token of the DAS granting `holder` RETRIEVE on `cnt`, valid for ten
/// minutes.
fn token(token_id: &str, holder: &str) -> String {
    token_for(token_id, holder, 600)
}

/// [`token`], valid for `seconds` from now.
fn token_for(token_id: &str, holder: &str, seconds: i64) -> String {
    let now = Utc::now();
    let mut claims = TokenClaims::new(
        token_id,
        DAS_ISSUER,
        absolute(holder),
        now - chrono::Duration::seconds(10),
        now + chrono::Duration::seconds(seconds),
    );
    claims.audience = vec!["//sp.example.com/id-in".into()];
    claims.permissions.pm = vec![TokenPermission {
        ris: vec!["cnt".into()],
        pv: Some(SetOfAcrs {
            rules: vec![AccessControlRule {
                originators: vec![absolute(holder)],
                operations: 2,
                ..Default::default()
            }],
        }),
        rids: Vec::new(),
    }];
    TokenSigner::from_pem(
        TokenAlgorithm::Es256,
        DAS_KID,
        &das_key("es256-private.pem"),
    )
    .expect("signer")
    .sign(&claims)
    .expect("sign")
}

/// `acp1` lets `Cowner` do everything on `cnt`: anyone else needs a token.
fn owner_only() -> pb::WatchEvent {
    pb::WatchEvent {
        revision: 1,
        tag: 0,
        event: Some(Event::Snapshot(pb::Snapshot {
            acps: vec![pb::AccessControlPolicy {
                resource_id: Some("acp1".into()),
                privileges: Some(pb::SetOfAcrs {
                    rules: vec![pb::AccessControlRule {
                        originators: vec!["Cowner".into()],
                        operations: 63,
                        ..Default::default()
                    }],
                }),
                self_privileges: Some(pb::SetOfAcrs {
                    rules: vec![pb::AccessControlRule {
                        originators: vec![ADMIN.into()],
                        operations: 63,
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }],
            resources: vec![pb::TargetResource {
                resource_id: "cnt".into(),
                resource_type: 3,
                acpi_set: true,
                acpi: vec!["acp1".into()],
                creator: "Ccreator".into(),
                ..Default::default()
            }],
            dynamic_acps: Vec::new(),
            continued: false,
        })),
    }
}

/// The DAS and the PIP one hosting CSE's PDPs share.
struct Cse {
    das_url: String,
    pip: Served,
    pip_client: PolicyInformationPointClient<Channel>,
}

impl Cse {
    async fn start() -> Self {
        let das_url = serve(
            authz_proto::serving::server(None)
                .expect("a server")
                .add_service(DynamicAuthorizationServerServer::new(KeyDas)),
        )
        .await
        .detach();
        let mut config = PipConfig::new(None, ADMIN, hosting());
        config.country_boundaries = false;
        let service = authz_pip::build(&config).await.expect("pip");
        let pip = serve(authz_pip::router(service).await.expect("router")).await;
        let pip_client = PolicyInformationPointClient::new(pip.channel().await);
        Self {
            das_url,
            pip,
            pip_client,
        }
    }

    /// A PDP of this CSE asking its PIP (as `pip_writer`), served on its
    /// own port, once it trusts the DAS.
    async fn pdp(&self) -> RunningPdp {
        let running = self.pdp_with_pip(&self.pip.url(), ADMIN).await;
        assert!(
            running.pdp.pip_cache().is_some_and(|p| p.is_watching()),
            "the PDP's PIP watch never came up"
        );
        running
    }

    async fn pdp_with_pip(&self, pip_url: &str, pip_writer: &str) -> RunningPdp {
        let mut dynamic = DynamicConfig::new(vec![self.das_url.clone()]);
        dynamic.deadline = Duration::from_secs(5);
        dynamic.pip_writer = pip_writer.to_owned();
        let pdp = Pdp::start(
            PdpConfig::new(hosting())
                .with_pip(pip_url.to_owned())
                .with_dynamic(dynamic),
        )
        .expect("pdp");
        pdp.apply_event(&owner_only()).expect("snapshot");
        for _ in 0..500 {
            if pdp.dynamic().is_some_and(|d| d.keys_loaded()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            pdp.dynamic().is_some_and(|d| d.keys_loaded()),
            "the PDP never loaded the DAS's keys"
        );
        // Local-Token-IDs are cached only while the PIP's watch is up.
        for _ in 0..500 {
            if pdp.pip_cache().is_some_and(|p| p.is_watching()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let served = serve(
            authz_proto::serving::server(None)
                .expect("a server")
                .add_routes(pdp.routes().await.expect("routes")),
        )
        .await;
        let client = PolicyDecisionPointClient::new(served.channel().await);
        RunningPdp {
            client,
            served,
            pdp,
        }
    }
}

struct RunningPdp {
    client: PolicyDecisionPointClient<Channel>,
    served: Served,
    pdp: Pdp,
}

impl RunningPdp {
    /// `originator` retrieves `cnt` with `tokens` and `ltids`.
    async fn retrieve(
        &mut self,
        originator: &str,
        tokens: &[&str],
        ltids: &[&str],
    ) -> pb::Decision {
        let req = pb::DecisionRequest {
            originator: originator.into(),
            operation: pb::Operation::Retrieve as i32,
            target: "cnt".into(),
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            local_token_ids: ltids.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        self.client.decide(req).await.expect("decide").into_inner()
    }

    async fn stop(self) {
        self.served.stop().await;
    }

    /// How many Local-Token-IDs the PDP caches (its `Dynamic`'s Debug).
    fn local_tokens(&self) -> usize {
        let dynamic = format!("{:?}", self.pdp.dynamic().expect("dynamic"));
        dynamic
            .split("local_tokens: ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .expect("local_tokens in Debug")
    }
}

/// The `ati` of a decision, as (Local-Token-ID, Token-ID).
fn ati(d: &pb::Decision) -> Vec<(String, String)> {
    d.assigned_token_ids
        .iter()
        .map(|a| (a.local_token_id.clone(), a.token_id.clone()))
        .collect()
}

/// Decision 10 for tokens a PDP fetches: at a PDP whose DAS has been
/// unreachable since it started (no key set names the token's issuer, and
/// the one that may is not loaded), a Token-ID or Local-Token-ID whose
/// token the PIP holds is indeterminate, MISSING_ATTRIBUTE naming it, as a
/// token sent by value is; not a final "untrusted issuer" Deny (README,
/// trusting a DAS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_token_while_its_das_key_set_is_unreachable_is_undetermined_decision_10() {
    let cse = Cse::start().await;
    // A PDP trusting the DAS assigns the token a Local-Token-ID, which the
    // PIP keeps with the token.
    let mut a = cse.pdp().await;
    let d = a
        .retrieve(
            "Cvisitor",
            &[&token("tkfar@das.example.com", "Cvisitor")],
            &[],
        )
        .await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let (lti, _) = ati(&d).first().cloned().expect("a Local-Token-ID");
    a.stop().await;

    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone_url = format!("http://{}", gone.local_addr().expect("addr"));
    drop(gone);
    let mut dynamic = DynamicConfig::new(vec![gone_url]);
    dynamic.deadline = Duration::from_millis(500);
    dynamic.pip_writer = ADMIN.to_owned();
    let pdp = Pdp::start(
        PdpConfig::new(hosting())
            .with_pip(cse.pip.url())
            .with_dynamic(dynamic),
    )
    .expect("pdp");
    pdp.apply_event(&owner_only()).expect("snapshot");
    let served = serve(
        authz_proto::serving::server(None)
            .expect("a server")
            .add_routes(pdp.routes().await.expect("routes")),
    )
    .await;
    let mut client = PolicyDecisionPointClient::new(served.channel().await);
    let visitor = pb::DecisionRequest {
        originator: "Cvisitor".into(),
        operation: pb::Operation::Retrieve as i32,
        target: "cnt".into(),
        ..Default::default()
    };
    let by_id = pb::DecisionRequest {
        token_ids: vec!["tkfar@das.example.com".into()],
        ..visitor.clone()
    };
    let by_lti = pb::DecisionRequest {
        local_token_ids: vec![lti.clone()],
        ..visitor
    };
    // And a Token-ID the PIP does not hold: the DAS that may was not asked.
    let unknown = pb::DecisionRequest {
        token_ids: vec!["tknowhere@das.example.com".into()],
        ..by_id.clone()
    };
    for (name, req, id, says) in [
        ("tids", by_id, "tkfar@das.example.com", "cannot be verified"),
        ("ltids", by_lti, lti.as_str(), "cannot be verified"),
        (
            "unknown tids",
            unknown,
            "tknowhere@das.example.com",
            "could not be fetched",
        ),
    ] {
        let d = client.decide(req).await.expect("decide").into_inner();
        assert_eq!(d.decision, DENY, "{name}: {d:?}");
        assert_eq!(
            d.status,
            pb::AuthorizationStatus::MissingAttribute as i32,
            "{name}: {}",
            d.summary
        );
        assert!(d.summary.contains(says), "{name}: {}", d.summary);
        // The missing token is named by its ID, as the request gives it.
        assert!(
            d.missing
                .iter()
                .any(|m| m.attribute == "token" && m.name == id),
            "{name}: {d:?}"
        );
    }
    served.stop().await;
}

/// TS-0003 7.4.3 step 2: a Token-ID is looked up in the Token Repository
/// (the PIP) too, not only at the DAS whose FQDN ends it: a token its DAS
/// does not know, stored in the PIP, permits; one neither knows is denied,
/// saying where it was looked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_id_is_found_in_the_pips_token_repository_ts_0003_7_4_3_step_2() {
    let cse = Cse::start().await;
    let mut pip = cse.pip_client.clone();
    pip.put_token(pb::PutTokenRequest {
        originator: ADMIN.into(),
        token: Some(pb::Token {
            token_id: "tkrepo@das.example.com".into(),
            token_object: token("tkrepo@das.example.com", "Cvisitor"),
            ..Default::default()
        }),
    })
    .await
    .expect("put");
    let mut a = cse.pdp().await;
    let by_id = |id: &str| pb::DecisionRequest {
        originator: "Cvisitor".into(),
        operation: pb::Operation::Retrieve as i32,
        target: "cnt".into(),
        token_ids: vec![id.into()],
        ..Default::default()
    };
    let d = a
        .client
        .decide(by_id("tkrepo@das.example.com"))
        .await
        .expect("decide")
        .into_inner();
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let d = a
        .client
        .decide(by_id("tknowhere@das.example.com"))
        .await
        .expect("decide")
        .into_inner();
    assert_eq!(d.decision, DENY, "{d:?}");
    assert!(
        d.summary
            .contains("unknown to its issuer and to the PIP's token repository"),
        "{d:?}"
    );
    a.stop().await;
}

/// TS-0003 7.3.2.3 steps 6.2 and 7.1–7.2, TS-0001 7.1.16: PDP A assigns a
/// Local-Token-ID and reports it in `ati`; the originator's next request,
/// naming the token by it, reaches PDP B of the same hosting CSE, which
/// fetches the token from the PIP (step 6.1.2), verifies it (6.1.3) and
/// permits. Presented by value at B, the token is reported under A's ID,
/// not a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ltid_assigned_by_one_pdp_is_accepted_by_another_ts_0003_7_3_2_3_step_6_1_2() {
    let cse = Cse::start().await;
    let mut a = cse.pdp().await;
    let mut b = cse.pdp().await;
    let visitor = token("tkshared@das.example.com", "Cvisitor");

    let d = a.retrieve("Cvisitor", &[&visitor], &[]).await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let assigned = ati(&d);
    assert_eq!(assigned.len(), 1, "{d:?}");
    let lti = assigned[0].0.clone();
    assert_eq!(assigned[0].1, "tkshared@das.example.com");

    let d = b.retrieve("Cvisitor", &[], &[&lti]).await;
    assert_eq!(d.decision, PERMIT, "B knows A's Local-Token-ID: {d:?}");
    assert!(d.assigned_token_ids.is_empty(), "nothing new: {d:?}");
    // Cached at B now; still permitted.
    let d = b.retrieve("Cvisitor", &[], &[&lti]).await;
    assert_eq!(d.decision, PERMIT, "{d:?}");

    let d = b.retrieve("Cvisitor", &[&visitor], &[]).await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert_eq!(ati(&d), assigned, "the hosting CSE's one assignment");
    // The same token twice in one request: its ID once (step 7.1 reports
    // each Local-Token-ID).
    let d = b.retrieve("Cvisitor", &[&visitor, &visitor], &[]).await;
    assert_eq!(ati(&d), assigned, "{d:?}");
    a.stop().await;
    b.stop().await;
}

/// Deleting a `<token>` from the hosting CSE's repository takes its
/// Local-Token-ID from every PDP of the CSE, also those that cached it (A,
/// which assigned it, and B, which fetched it): TS-0003 7.3.2.3 step 6.1.2
/// finds the token of an ID in the hosting CSE's repository, and a PDP
/// that kept honouring a deleted one would permit what its siblings deny.
/// Presented by value again, the token (still valid) gets a new ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_token_s_ltid_is_refused_by_the_pdps_that_cached_it_ts_0003_7_3_2_3_step_6_1_2() {
    let cse = Cse::start().await;
    let mut a = cse.pdp().await;
    let mut b = cse.pdp().await;
    let visitor = token("tkrevoked@das.example.com", "Cvisitor");
    let d = a.retrieve("Cvisitor", &[&visitor], &[]).await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let lti = ati(&d)[0].0.clone();
    for pdp in [&mut a, &mut b] {
        // Each PDP caches it once it uses it and has seen the PIP's own
        // record of the assignment (which drops a cached object: the admin
        // may replace it).
        let mut cached = false;
        for _ in 0..100 {
            let d = pdp.retrieve("Cvisitor", &[], &[&lti]).await;
            assert_eq!(d.decision, PERMIT, "{d:?}");
            if pdp.local_tokens() == 1 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if pdp.local_tokens() == 1 {
                    cached = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(cached, "the ID is cached before the deletion");
    }

    let mut pip = cse.pip_client.clone();
    pip.delete_token(pb::DeleteTokenRequest {
        originator: ADMIN.into(),
        token_id: "tkrevoked@das.example.com".into(),
    })
    .await
    .expect("delete the token");

    for (name, pdp) in [("A", &mut a), ("B", &mut b)] {
        // The deletion reaches the PDP on the PIP's watch.
        let mut d = pdp.retrieve("Cvisitor", &[], &[&lti]).await;
        for _ in 0..250 {
            if d.decision == DENY {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            d = pdp.retrieve("Cvisitor", &[], &[&lti]).await;
        }
        assert_eq!(
            d.decision, DENY,
            "{name} still honours the deleted token's ID: {d:?}"
        );
        assert!(
            d.summary.contains(&lti),
            "{name}'s Deny names the ID: {}",
            d.summary
        );
    }
    let d = a.retrieve("Cvisitor", &[&visitor], &[]).await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let again = ati(&d);
    assert_eq!(again.len(), 1, "{d:?}");
    assert_ne!(again[0].0, lti, "a new assignment, not the deleted one");
    let d = b.retrieve("Cvisitor", &[], &[&again[0].0]).await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    a.stop().await;
    b.stop().await;
}

/// TS-0001 7.1.16 across a restart: the assignment lives in the PIP, so a
/// new PDP instance (a restart: a new random prefix, an empty cache) with
/// the same PIP accepts the Local-Token-ID its predecessor assigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_pdp_accepts_an_ltid_assigned_before_ts_0001_7_1_16() {
    let cse = Cse::start().await;
    let mut before = cse.pdp().await;
    let d = before
        .retrieve(
            "Cvisitor",
            &[&token("tkrestart@das.example.com", "Cvisitor")],
            &[],
        )
        .await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let lti = ati(&d)[0].0.clone();
    before.stop().await;

    let mut after = cse.pdp().await;
    let d = after.retrieve("Cvisitor", &[], &[&lti]).await;
    assert_eq!(d.decision, PERMIT, "after the restart: {d:?}");
    after.stop().await;
}

/// TS-0003 7.3.2.3 step 6.2 with a PEP balancing one originator's
/// concurrent requests over several PDPs: each PDP sees the token for the
/// first time and assigns an ID of its own, but the PIP keeps the first
/// one stored, and every PDP reports that one (TS-0001 7.1.16: one
/// Local-Token-ID per token at the hosting CSE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_pdps_report_one_local_token_id_ts_0003_7_3_2_3_step_6_2() {
    let cse = Cse::start().await;
    let visitor = token("tkrace@das.example.com", "Cvisitor");
    let mut pdps = Vec::new();
    for _ in 0..4 {
        pdps.push(cse.pdp().await);
    }
    let mut calls = Vec::new();
    for pdp in &pdps {
        let mut client = pdp.client.clone();
        let visitor = visitor.clone();
        calls.push(tokio::spawn(async move {
            let req = pb::DecisionRequest {
                originator: "Cvisitor".into(),
                operation: pb::Operation::Retrieve as i32,
                target: "cnt".into(),
                tokens: vec![visitor],
                ..Default::default()
            };
            client.decide(req).await.expect("decide").into_inner()
        }));
    }
    let mut reported = Vec::new();
    for call in calls {
        let d = call.await.expect("task");
        assert_eq!(d.decision, PERMIT, "{d:?}");
        reported.push(ati(&d));
    }
    assert_eq!(reported[0].len(), 1, "{reported:?}");
    assert!(
        reported.iter().all(|r| r == &reported[0]),
        "one ID: {reported:?}"
    );
    // Each PDP accepts it.
    let lti = reported[0][0].0.clone();
    for pdp in &mut pdps {
        let d = pdp.retrieve("Cvisitor", &[], &[&lti]).await;
        assert_eq!(d.decision, PERMIT, "{d:?}");
    }
    for pdp in pdps {
        pdp.stop().await;
    }
}

/// TS-0003 7.3.2.3 steps 6.1.3–6.1.4: a token reached through a
/// Local-Token-ID the PDP does not hold passes every check a token in the
/// request passes, or the request is denied with the reason. Denied: an ID
/// nobody assigned; another originator using the visitor's ID (holder,
/// step 6.1.3); an ID stored in the PIP for a forged token (the visitor's
/// signature under Mallory's claims).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_forged_ltid_is_a_deny_ts_0003_7_3_2_3_step_6_1_4() {
    let mut cse = Cse::start().await;
    let mut a = cse.pdp().await;
    let mut b = cse.pdp().await;
    let visitor = token("tkvisitor@das.example.com", "Cvisitor");
    let d = a.retrieve("Cvisitor", &[&visitor], &[]).await;
    let lti = ati(&d)[0].0.clone();

    let d = b.retrieve("Cvisitor", &[], &["ltnobody-1"]).await;
    assert_eq!(d.decision, DENY, "{d:?}");
    // The stored policies name no Cvisitor: the Deny keeps their status
    // (Decision 10), with the token's failure leading the summary.
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::NotApplicable as i32,
        "{d:?}"
    );
    assert!(
        d.summary
            .contains("local token ID ltnobody-1 is not assigned"),
        "{}",
        d.summary
    );

    let d = b.retrieve("Cmallory", &[], &[&lti]).await;
    assert_eq!(d.decision, DENY, "not Mallory's token: {d:?}");
    assert!(
        d.summary.contains(&format!(
            "local token ID {lti} (token tkvisitor@das.example.com) rejected: token holder"
        )),
        "{}",
        d.summary
    );
    // The visitor is still permitted with it, at B too.
    let d = b.retrieve("Cvisitor", &[], &[&lti]).await;
    assert_eq!(d.decision, PERMIT, "{d:?}");

    // Mallory's claims with the visitor's signature, stored in the PIP
    // under a Local-Token-ID by someone who may write there.
    let mallory = token("tkmallory@das.example.com", "Cmallory");
    let (v, m) = (
        visitor.split('.').collect::<Vec<_>>(),
        mallory.split('.').collect::<Vec<_>>(),
    );
    let forged = format!("{}.{}.{}", v[0], m[1], v[2]);
    cse.pip_client
        .put_token(pb::PutTokenRequest {
            originator: ADMIN.into(),
            token: Some(pb::Token {
                token_id: "tkmallory@das.example.com".into(),
                token_object: forged,
                local_token_id: "ltforged-1".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("put");
    let d = b.retrieve("Cmallory", &[], &["ltforged-1"]).await;
    assert_eq!(d.decision, DENY, "forged: {d:?}");
    assert!(
        d.summary
            .contains("local token ID ltforged-1 (token tkmallory@das.example.com) rejected: signature does not verify"),
        "{}",
        d.summary
    );
    a.stop().await;
    b.stop().await;
}

/// TS-0001 7.1.16: a Local-Token-ID "may be reused" once its token has
/// expired. PDP B cached the visitor's short-lived token under its ID; after
/// it expired, the hosting CSE's PIP gives the ID to the courier's token.
/// The courier presenting the ID at B is permitted (B asks the PIP again
/// rather than taking its expired cache entry for the answer), and the
/// visitor is denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_tokens_ltid_reused_at_the_pip_is_followed_ts_0001_7_1_16() {
    let mut cse = Cse::start().await;
    let mut a = cse.pdp().await;
    let mut b = cse.pdp().await;
    let d = a
        .retrieve(
            "Cvisitor",
            &[&token_for("tkbrief@das.example.com", "Cvisitor", 1)],
            &[],
        )
        .await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let lti = ati(&d)[0].0.clone();
    let d = b.retrieve("Cvisitor", &[], &[&lti]).await;
    assert_eq!(d.decision, PERMIT, "cached at B now: {d:?}");
    // Past its notAfter (whole seconds) at the PDPs and at the PIP.
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let courier = token("tkcourier@das.example.com", "Ccourier");
    let stored = cse
        .pip_client
        .put_token(pb::PutTokenRequest {
            originator: ADMIN.into(),
            token: Some(pb::Token {
                token_id: "tkcourier@das.example.com".into(),
                token_object: courier,
                not_after: Some(authz_proto::convert::timestamp_to_pb(
                    &(Utc::now() + chrono::Duration::seconds(600)),
                )),
                local_token_id: lti.clone(),
                ..Default::default()
            }),
        })
        .await
        .expect("the expired token's ID is free")
        .into_inner();
    assert_eq!(stored.local_token_id, lti);
    let d = b.retrieve("Ccourier", &[], &[&lti]).await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    let d = b.retrieve("Cvisitor", &[], &[&lti]).await;
    assert_eq!(d.decision, DENY, "{d:?}");
    a.stop().await;
    b.stop().await;
}

/// TS-0003 7.1.4 and Decision 10 for an `ltids` entry the PDP does not hold
/// while its PIP does not answer: a Deny with status MISSING_ATTRIBUTE
/// whose summary names the ID and the PIP, never a panic. And a
/// Local-Token-ID is reported only once the PIP holds it (step 7.1): a PDP
/// whose PIP is down, or refuses its writes, permits with the token by
/// value and assigns none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_pip_that_answers_ltids_are_denied_and_none_assigned_7_1_4() {
    let cse = Cse::start().await;
    // A PIP the PDP reached once (so it holds the group IDs: before, no ID
    // entry decides anything, Decision 3 and 10), and that is gone now.
    let mut config = PipConfig::new(None, ADMIN, hosting());
    config.country_boundaries = false;
    let gone = serve(
        authz_pip::router(authz_pip::build(&config).await.expect("pip"))
            .await
            .expect("router"),
    )
    .await;
    let mut down = cse.pdp_with_pip(&gone.url(), ADMIN).await;
    assert!(
        down.pdp.pip_cache().is_some_and(|p| p.groups_known()),
        "the PDP listed the PIP's groups"
    );
    gone.stop().await;
    let d = down.retrieve("Cvisitor", &[], &["ltsomewhere-1"]).await;
    assert_eq!(d.decision, DENY, "{d:?}");
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{d:?}"
    );
    assert!(
        d.summary
            .contains("local token ID ltsomewhere-1 cannot be retrieved: PIP"),
        "{}",
        d.summary
    );
    // Decision 10: the status comes with the attribute it lacked, named.
    assert!(
        d.missing.iter().any(|m| m.attribute == "token"
            && m.name == "ltsomewhere-1"
            && m.reason.contains("cannot be retrieved: PIP")),
        "{:?}",
        d.missing
    );
    let d = down
        .retrieve(
            "Cvisitor",
            &[&token("tkdown@das.example.com", "Cvisitor")],
            &[],
        )
        .await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert!(d.assigned_token_ids.is_empty(), "not stored: {d:?}");

    let mut refused = cse.pdp_with_pip(&cse.pip.url(), "Cstranger").await;
    let d = refused
        .retrieve(
            "Cvisitor",
            &[&token("tkrefused@das.example.com", "Cvisitor")],
            &[],
        )
        .await;
    assert_eq!(d.decision, PERMIT, "{d:?}");
    assert!(d.assigned_token_ids.is_empty(), "not stored: {d:?}");
    down.stop().await;
    refused.stop().await;
}
