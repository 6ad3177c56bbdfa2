//! The DAS over gRPC on loopback, with real key files: tokens from `Consult`
//! verify against the published key set; the policies grant nothing outside
//! their originators, operations, targets and time windows; dynamic ACPs;
//! `IssueToken` authentication, and its originator IP taken from the
//! transport; consultants authenticated by their secrets on `Consult` and
//! `GetTokens`; tokens named by ID given only to CSEs in their audience;
//! field-named errors; durability across a restart and expiry;
//! configuration errors naming file and field (roles under conditions,
//! audiences that name no CSE, consultant secrets).

use std::path::{Path, PathBuf};
use std::time::Duration;

use authz_core::json::{format_timestamp, parse_timestamp};
use authz_core::token::{
    TokenAlgorithm, TokenClaims, TokenError, TokenSecurity, TrustStore, TrustedIssuer,
    VerificationKey, VerifyContext,
};
use authz_das::DasConfig;
use authz_proto::pb;
use authz_proto::pb::dynamic_authorization_server_client::DynamicAuthorizationServerClient;
use authz_tests::arbitrary::temp_path;
use authz_tests::serving::{Served, serve};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const HCSE: &str = "//home.example/mn-cse-123456";
const ISSUER: &str = "//home.example/mn-cse-123456/CDas";
const FQDN: &str = "das.home.example";
const GUEST_SECRET: &str = "guest-secret-0123456789";
const OTHER_SECRET: &str = "other-secret-0123456789";
const CSE_SECRET: &str = "hosting-cse-secret-0123456789";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/keys")
}

fn key(kid: &str, alg: &str, name: &str) -> Value {
    let dir = keys_dir();
    json!({
        "kid": kid, "alg": alg,
        "private_key_pem": dir.join(format!("{name}-private.pem")),
        "public_key_pem": dir.join(format!("{name}-public.pem")),
    })
}

fn config_json() -> Value {
    json!({
        "issuer": ISSUER,
        "fqdn": FQDN,
        "sp_id": "//home.example",
        "cse_id": "/mn-cse-123456",
        "audience": [HCSE, "/in-cse"],
        "signing_keys": [key("k-es256", "ES256", "es256"), key("k-ed25519", "EdDSA", "ed25519")],
        "clients": [
            {"originator": "Cguest", "secret": GUEST_SECRET},
            {"originator": "/mn-cse-123456/Cother", "secret": OTHER_SECRET}
        ],
        "consultants": [HCSE],
        "policies": [
            {"name": "guest-front-door",
             "rule": {"acor": ["Cguest"], "acop": 4, "acco": [{"actw": ["* * 8-17 * * * *"]}]},
             "targets": ["frontDoor", "/mn-cse-123456/lights/*"],
             "grant": {"acop": 4, "mode": "token"},
             "max_lifetime_s": 3600},
            {"name": "window-dynamic",
             "rule": {"acor": ["Cwindow"], "acop": 2},
             "targets": ["window"],
             "resource_types": [3],
             "grant": {"mode": "dynamic_acp"},
             "max_lifetime_s": 600},
            {"name": "guest-state",
             "rule": {"acor": ["Cguest"], "acop": 2},
             "targets": ["frontDoorState"],
             "grant": {"acop": 2, "roles": ["guest@das.home.example", "visitor@das.home.example"],
                       "mode": "both"},
             "max_lifetime_s": 1800},
            {"name": "lan-light",
             "rule": {"acor": ["Cguest"], "acop": 2,
                      "acco": [{"acip": {"ipv4": ["192.168.1.0/24"]}}]},
             "targets": ["lanLight"],
             "grant": {"mode": "token"},
             "max_lifetime_s": 600},
            {"name": "loopback-light",
             "rule": {"acor": ["Cguest"], "acop": 2,
                      "acco": [{"acip": {"ipv4": ["127.0.0.0/8"], "ipv6": ["::1/128"]}}]},
             "targets": ["loopLight"],
             "grant": {"mode": "token"},
             "max_lifetime_s": 600}
        ],
        "max_request_skew_s": 86400
    })
}

fn load(v: &Value) -> DasConfig {
    DasConfig::from_json(&v.to_string(), Path::new("test-das.json"), Path::new("."))
        .expect("valid config")
}

struct Running {
    client: DynamicAuthorizationServerClient<Channel>,
    service: authz_das::DasService,
    server: Served,
}

impl Running {
    async fn start(config: DasConfig, data_dir: Option<&Path>) -> Self {
        let service = authz_das::build(config, data_dir).await.expect("build");
        let server = serve(authz_das::router(service.clone()).await.expect("router")).await;
        Self {
            client: DynamicAuthorizationServerClient::new(server.channel().await),
            service,
            server,
        }
    }

    async fn stop(self) {
        self.service.shutdown();
        self.server.stop().await;
    }
}

fn dreq(or: &str, op: pb::Operation, trid: &str) -> pb::DasRequest {
    pb::DasRequest {
        originator: or.into(),
        operation: op as i32,
        targeted_resource_id: trid.into(),
        targeted_resource_type: Some(3),
        ..Default::default()
    }
}

/// Today at `hour`:00 UTC, as an m2m:timestamp (always within a day of now).
fn today_at(hour: u32) -> String {
    let date = Utc::now().date_naive();
    format_timestamp(date.and_hms_opt(hour, 0, 0).expect("valid time").and_utc())
}

fn consult(d: pb::DasRequest) -> pb::ConsultRequest {
    pb::ConsultRequest {
        hosting_cse_id: HCSE.into(),
        das_request: Some(d),
    }
}

/// `IssueToken` of `d`, as the guest client (its secret presented).
fn as_guest(d: pb::DasRequest) -> tonic::Request<pb::IssueTokenRequest> {
    with_bearer(
        pb::IssueTokenRequest {
            das_request: Some(d),
            ..Default::default()
        },
        Some(GUEST_SECRET),
    )
}

/// `IssueToken` as the guest for a Retrieve of `frontDoorState`, which the
/// configuration grants: the token issued.
async fn guest_reads_the_state(
    c: &mut DynamicAuthorizationServerClient<Channel>,
) -> pb::IssueTokenResponse {
    c.issue_token(as_guest(dreq(
        "Cguest",
        pb::Operation::Retrieve,
        "frontDoorState",
    )))
    .await
    .expect("issued")
    .into_inner()
}

fn with_bearer<T>(message: T, secret: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Some(s) = secret {
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {s}").parse().expect("ascii metadata"),
        );
    }
    r
}

async fn trust_store(client: &mut DynamicAuthorizationServerClient<Channel>) -> TrustStore {
    let ks = client
        .get_key_set(pb::GetKeySetRequest {})
        .await
        .expect("key set")
        .into_inner();
    assert_eq!(ks.issuer, ISSUER);
    assert_eq!(ks.fqdn, FQDN);
    let kids: Vec<&str> = ks.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["k-es256", "k-ed25519"]);
    let mut issuer =
        TrustedIssuer::new(&ks.issuer, &[TokenAlgorithm::Es256, TokenAlgorithm::EdDsa]);
    for k in &ks.keys {
        let alg = TokenAlgorithm::from_name(&k.alg).expect("known alg");
        let public =
            VerificationKey::from_public_pem(alg, k.public_key_pem.as_bytes()).expect("public key");
        issuer = issuer.with_key(k.kid.clone(), public).expect("key");
    }
    TrustStore::new().with_issuer(issuer)
}

fn verify(
    store: &TrustStore,
    token: &str,
    cse: &str,
    originator: &str,
) -> Result<TokenClaims, TokenError> {
    let ctx = VerifyContext::new(cse, originator, Utc::now()).expect("context");
    store.verify(token, &ctx).map(|v| {
        assert_eq!(
            v.security(),
            &TokenSecurity::Signed {
                algorithm: TokenAlgorithm::Es256,
                kid: "k-es256".into()
            },
            "the first key signs"
        );
        v.into_claims()
    })
}

fn lifetime(c: &TokenClaims) -> i64 {
    (c.not_after - c.not_before).num_seconds()
}

fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn consult_grants_a_token_that_verifies_with_the_published_keys() {
    let mut das = Running::start(load(&config_json()), None).await;
    let trust = trust_store(&mut das.client).await;
    let c = &mut das.client;

    let mut d = dreq("Cguest", pb::Operation::Update, "frontDoor");
    d.request_timestamp = today_at(12);
    let before = Utc::now();
    let res = c
        .consult(consult(d.clone()))
        .await
        .expect("consult")
        .into_inner();
    assert!(res.dynamic_acp_info.is_none(), "mode token grants no dai");
    assert_eq!(res.tokens.len(), 1);
    let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
    assert_eq!(claims.issuer, ISSUER);
    assert_eq!(claims.holder, "//home.example/mn-cse-123456/Cguest");
    assert_eq!(
        claims.audience,
        vec![HCSE.to_owned()],
        "only the consulting CSE"
    );
    assert!(claims.token_id.ends_with("@das.home.example"));
    assert_eq!(claims.token_name.as_deref(), Some("guest-front-door"));
    assert_eq!(claims.permissions.pm.len(), 1);
    let pm = &claims.permissions.pm[0];
    assert_eq!(pm.ris, vec!["//home.example/mn-cse-123456/frontDoor"]);
    let rule = &pm.pv.as_ref().expect("pv").rules[0];
    assert_eq!(rule.originators, vec![claims.holder.clone()]);
    assert_eq!(rule.operations, 4);
    assert_eq!(
        rule.contexts[0].time_windows,
        vec!["* * 8-17 * * * *"],
        "the time window travels with the grant"
    );
    assert!(pm.rids.is_empty());
    assert_eq!(lifetime(&claims), 3600);
    assert!(claims.not_before.timestamp() <= Utc::now().timestamp());
    assert!(claims.not_before.timestamp() >= before.timestamp());

    // The token is for this holder at this CSE only.
    assert!(matches!(
        verify(&trust, &res.tokens[0], HCSE, "Cburglar"),
        Err(TokenError::WrongHolder { .. })
    ));
    assert!(matches!(
        verify(&trust, &res.tokens[0], "//home.example/other-cse", "Cguest"),
        Err(TokenError::WrongAudience { .. })
    ));

    // A proposed lifetime shorter than the maximum (3600 s) is honoured; a
    // longer one is cut to the maximum. notBefore is the DAS's clock at the
    // consultation, in whole seconds, so it lies in [before, after] taken
    // around the RPC; a relative `ppl` (milliseconds, m2m:absRelTimestamp)
    // counts from then, an absolute one is the end itself. Each case asks
    // for another light, so that none is answered with a stored token.
    enum End {
        /// notAfter this many seconds after notBefore.
        After(i64),
        /// notAfter at this instant (Unix seconds).
        At(i64),
    }
    let in_20_min = format_timestamp(Utc::now() + TimeDelta::minutes(20));
    let at_20_min = parse_timestamp(&in_20_min).expect("ppl").timestamp();
    for (i, (ppl, end)) in [
        ("600000".to_owned(), End::After(600)),
        (in_20_min, End::At(at_20_min)),
        ("86400000".to_owned(), End::After(3600)),
        // Milliseconds beyond the clock's range: no less well-formed, and
        // bounded by the policy like any long proposal.
        ("9000000000000000".to_owned(), End::After(3600)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut d = d.clone();
        d.targeted_resource_id = format!("/mn-cse-123456/lights/ppl{i}");
        d.proposed_privileges_lifetime = ppl.clone();
        let before = Utc::now().timestamp();
        let res = c.consult(consult(d)).await.expect("consult").into_inner();
        let after = Utc::now().timestamp();
        let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
        let (nbf, exp) = (claims.not_before.timestamp(), claims.not_after.timestamp());
        assert!(
            (before..=after).contains(&nbf),
            "ppl {ppl}: notBefore {nbf} not in {before}..={after}"
        );
        match end {
            End::At(at) => assert_eq!(exp, at, "ppl {ppl}: notAfter is the proposed end"),
            End::After(s) => {
                assert_eq!(lifetime(&claims), s, "ppl {ppl}");
                assert!(
                    (before + s..=after + s).contains(&exp),
                    "ppl {ppl}: notAfter {exp} not in {}..={}",
                    before + s,
                    after + s
                );
            }
        }
    }

    // A prefix target; the token names the exact resource asked for.
    let mut d = dreq(
        "//home.example/mn-cse-123456/Cguest",
        pb::Operation::Update,
        "/mn-cse-123456/lights/kitchen",
    );
    d.request_timestamp = today_at(9);
    let res = c.consult(consult(d)).await.expect("consult").into_inner();
    let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
    assert_eq!(
        claims.permissions.pm[0].ris,
        vec!["//home.example/mn-cse-123456/lights/kitchen"]
    );
    das.stop().await;
}

#[tokio::test]
async fn consult_grants_nothing_outside_the_policies() {
    let mut das = Running::start(load(&config_json()), None).await;
    let c = &mut das.client;
    let cases = [
        (
            "outside the time window",
            "Cguest",
            pb::Operation::Update,
            "frontDoor",
            22,
        ),
        (
            "wrong operation",
            "Cguest",
            pb::Operation::Delete,
            "frontDoor",
            12,
        ),
        (
            "wrong originator",
            "Cburglar",
            pb::Operation::Update,
            "frontDoor",
            12,
        ),
        (
            "other target",
            "Cguest",
            pb::Operation::Update,
            "backDoor",
            12,
        ),
        (
            "prefix is not a parent",
            "Cguest",
            pb::Operation::Update,
            "/mn-cse-123456/lightsOut",
            12,
        ),
    ];
    for (what, or, op, trid, hour) in cases {
        let mut d = dreq(or, op, trid);
        d.request_timestamp = today_at(hour);
        let res = c.consult(consult(d)).await.expect("consult").into_inner();
        assert_eq!(res, pb::DasResponse::default(), "{what}");
    }
    // resource_types: the window policy needs trt 3.
    let mut d = dreq("Cwindow", pb::Operation::Retrieve, "window");
    d.targeted_resource_type = Some(4);
    let res = c.consult(consult(d)).await.expect("consult").into_inner();
    assert_eq!(res, pb::DasResponse::default(), "wrong resource type");
    assert_eq!(das.service.stored_tokens(), 0);
    das.stop().await;
}

#[tokio::test]
async fn dynamic_acp_mode_returns_dai_and_both_mode_narrows_roles_to_rfa() {
    let mut das = Running::start(load(&config_json()), None).await;
    let trust = trust_store(&mut das.client).await;
    let c = &mut das.client;

    let before = Utc::now().timestamp();
    let res = c
        .consult(consult(dreq("Cwindow", pb::Operation::Retrieve, "window")))
        .await
        .expect("consult")
        .into_inner();
    let after = Utc::now().timestamp();
    assert!(res.tokens.is_empty());
    let dai = res.dynamic_acp_info.expect("dai");
    let gp = dai.granted_privileges.expect("gp");
    assert_eq!(gp.rules.len(), 1);
    assert_eq!(
        gp.rules[0].originators,
        vec!["//home.example/mn-cse-123456/Cwindow"]
    );
    assert_eq!(gp.rules[0].operations, 2);
    // The policy's maximum lifetime (600 s) from the consultation, in whole
    // seconds: within [before + 600, after + 600] taken around the RPC.
    let pl: DateTime<Utc> = parse_timestamp(&dai.privileges_lifetime).expect("pl absolute");
    assert!(
        (before + 600..=after + 600).contains(&pl.timestamp()),
        "pl {} not in {}..={}",
        dai.privileges_lifetime,
        before + 600,
        after + 600
    );

    let mut d = dreq("Cguest", pb::Operation::Retrieve, "frontDoorState");
    d.role_ids_from_acps = vec![
        "visitor@das.home.example".into(),
        "owner@roles.example.com".into(),
    ];
    let res = c.consult(consult(d)).await.expect("consult").into_inner();
    assert!(res.dynamic_acp_info.is_some(), "mode both");
    assert_eq!(res.tokens.len(), 1);
    let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
    assert_eq!(
        claims.permissions.pm[0].rids,
        vec!["visitor@das.home.example"]
    );
    assert_eq!(lifetime(&claims), 1800);
    das.stop().await;
}

/// TS-0003 table 7.3.2.2-1: `rfa` ("Role IDs From ACPs") is the set of
/// Role-IDs of the ACPs associated with this DAS. The hosting CSE sends one
/// per DAS, empty when its ACPs name only other issuers' Role-IDs or none,
/// and on the wire an absent `rfa` is an empty one: either way none of this
/// DAS's roles helps, so none is granted, on `Consult` as on `IssueToken`
/// (whose `dreq` is the Token Request Information the hosting CSE built the
/// same way). A grant left with nothing issues and stores no token.
#[tokio::test]
async fn empty_rfa_grants_no_roles_table_7_3_2_2_1() {
    let mut v = config_json();
    v["policies"].as_array_mut().expect("policies").push(json!({
        "name": "resident-only",
        "rule": {"acor": ["Cguest"], "acop": 2},
        "targets": ["hallLight"],
        "grant": {"acop": 0, "roles": ["resident@das.home.example"], "mode": "token"},
        "max_lifetime_s": 600
    }));
    let mut das = Running::start(load(&v), None).await;
    let trust = trust_store(&mut das.client).await;
    let c = &mut das.client;

    // The ACP on the target names only guest@roles.other.example: the PDP's
    // rfa for this DAS is empty; sent unfiltered, it names no role of ours.
    for rfa in [vec![], vec!["guest@roles.other.example".to_owned()]] {
        // Operations and roles (guest-state): a token with the operations
        // and no role.
        let mut d = dreq("Cguest", pb::Operation::Retrieve, "frontDoorState");
        d.role_ids_from_acps = rfa.clone();
        let res = c
            .consult(consult(d.clone()))
            .await
            .expect("consult")
            .into_inner();
        assert_eq!(res.tokens.len(), 1, "rfa {rfa:?}");
        let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
        let pm = &claims.permissions.pm[0];
        assert!(pm.rids.is_empty(), "Consult, rfa {rfa:?}: {:?}", pm.rids);
        assert_eq!(pm.pv.as_ref().expect("pv").rules[0].operations, 2);

        let res = c
            .issue_token(as_guest(d))
            .await
            .expect("issued")
            .into_inner();
        assert_eq!(res.tokens.len(), 1, "rfa {rfa:?}");
        let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
        assert!(
            claims.permissions.pm[0].rids.is_empty(),
            "IssueToken, rfa {rfa:?}: {:?}",
            claims.permissions.pm[0].rids
        );

        // Roles only (resident-only): nothing granted, nothing stored.
        let stored = das.service.stored_tokens();
        let mut d = dreq("Cguest", pb::Operation::Retrieve, "hallLight");
        d.role_ids_from_acps = rfa.clone();
        let res = c
            .consult(consult(d.clone()))
            .await
            .expect("consult")
            .into_inner();
        assert_eq!(res, pb::DasResponse::default(), "Consult, rfa {rfa:?}");
        let res = c
            .issue_token(as_guest(d))
            .await
            .expect("answered")
            .into_inner();
        assert_eq!(
            res,
            pb::IssueTokenResponse::default(),
            "IssueToken, rfa {rfa:?}"
        );
        assert_eq!(das.service.stored_tokens(), stored, "rfa {rfa:?}");
    }

    // The role the ACPs ask for is granted.
    let mut d = dreq("Cguest", pb::Operation::Retrieve, "hallLight");
    d.role_ids_from_acps = vec!["resident@das.home.example".into()];
    let res = c
        .consult(consult(d.clone()))
        .await
        .expect("consult")
        .into_inner();
    let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
    assert_eq!(
        claims.permissions.pm[0].rids,
        vec!["resident@das.home.example"]
    );
    assert!(claims.permissions.pm[0].pv.is_none(), "roles only");
    let res = c
        .issue_token(as_guest(d))
        .await
        .expect("issued")
        .into_inner();
    let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
    assert_eq!(
        claims.permissions.pm[0].rids,
        vec!["resident@das.home.example"]
    );
    das.stop().await;
}

/// The `trt` of an `IssueToken` is the originator's own word (TS-0003
/// 7.3.2.3 step 3), and a token has no field binding a type: a policy that
/// lists `resource_types` grants through a hosting CSE's `Consult` only,
/// where the hosting CSE states the type, never to an originator claiming
/// it (a container claimed as a `<contentInstance>` got a token for it).
#[tokio::test]
async fn issue_token_does_not_take_the_originators_word_for_the_target_type() {
    let mut v = config_json();
    v["policies"] = json!([
        {"name": "guest-instances",
         "rule": {"acor": ["Cguest"], "acop": 2},
         "targets": ["backDoor"],
         "resource_types": [4],
         "grant": {"acop": 2, "mode": "token"},
         "max_lifetime_s": 600}
    ]);
    let mut das = Running::start(load(&v), None).await;
    let c = &mut das.client;
    for trt in [3, 4] {
        let mut d = dreq("Cguest", pb::Operation::Retrieve, "backDoor");
        d.targeted_resource_type = Some(trt);
        let res = c
            .issue_token(as_guest(d))
            .await
            .expect("answered")
            .into_inner();
        assert_eq!(
            res,
            pb::IssueTokenResponse::default(),
            "IssueToken, trt {trt}"
        );
    }
    // Through a hosting CSE, which states the type, the policy grants.
    let mut d = dreq("Cguest", pb::Operation::Retrieve, "backDoor");
    d.targeted_resource_type = Some(4);
    let res = c
        .consult(consult(d.clone()))
        .await
        .expect("consult")
        .into_inner();
    assert_eq!(res.tokens.len(), 1, "{res:?}");
    d.targeted_resource_type = Some(3);
    let res = c.consult(consult(d)).await.expect("consult").into_inner();
    assert!(res.tokens.is_empty(), "{res:?}");
    das.stop().await;
}

#[tokio::test]
async fn issue_token_authenticates_the_originator() {
    let mut das = Running::start(load(&config_json()), None).await;
    let trust = trust_store(&mut das.client).await;
    let c = &mut das.client;
    let ask = || pb::IssueTokenRequest {
        das_request: Some(dreq("Cguest", pb::Operation::Retrieve, "frontDoorState")),
        ..Default::default()
    };

    let e = c
        .issue_token(with_bearer(ask(), None))
        .await
        .expect_err("no secret");
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = c
        .issue_token(with_bearer(ask(), Some("not-a-client-secret-at-all")))
        .await
        .expect_err("wrong secret");
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = c
        .issue_token(with_bearer(ask(), Some(OTHER_SECRET)))
        .await
        .expect_err("someone else's request");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    let res = c
        .issue_token(with_bearer(ask(), Some(GUEST_SECRET)))
        .await
        .expect("issued")
        .into_inner();
    assert_eq!(res.token_ids.len(), 1);
    assert_eq!(res.tokens.len(), 1);
    assert!(res.token_ids[0].ends_with("@das.home.example"));
    let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
    assert_eq!(claims.token_id, res.token_ids[0]);
    // TS-0003 7.3.2.3 step 6.1.3: absolute CSE-IDs; the SP-relative
    // `/in-cse` of the configuration is made absolute at load.
    assert_eq!(
        claims.audience,
        vec![HCSE.to_owned(), "//home.example/in-cse".to_owned()]
    );
    assert!(
        claims.permissions.pm[0].rids.is_empty(),
        "no rfa: no role helps (TS-0003 table 7.3.2.2-1), only the operations are granted"
    );
    // Also valid at the other audience CSE.
    verify(
        &trust,
        &res.tokens[0],
        "//home.example/in-cse",
        "//home.example/mn-cse-123456/Cguest",
    )
    .expect("second audience");

    // The originator's rts is ignored: a request for something the policies
    // do not grant it gets nothing, not an error.
    let nothing = c
        .issue_token(as_guest(dreq(
            "Cguest",
            pb::Operation::Delete,
            "frontDoorState",
        )))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(nothing, pb::IssueTokenResponse::default());

    let unknown = "00000000000000000000000000000000@das.home.example".to_owned();
    let got = c
        .get_tokens(pb::GetDasTokensRequest {
            hosting_cse_id: HCSE.into(),
            token_ids: vec![unknown.clone(), res.token_ids[0].clone()],
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.tokens, res.tokens);
    assert_eq!(got.unknown_ids, vec![unknown]);
    // Each ID once: a small request may not ask for one token many times.
    let e = c
        .get_tokens(pb::GetDasTokensRequest {
            hosting_cse_id: HCSE.into(),
            token_ids: vec![res.token_ids[0].clone(); 2],
        })
        .await
        .expect_err("a repeated ID");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(fields(&e), vec!["token_ids[1]"]);
    das.stop().await;
}

#[tokio::test]
async fn callers_and_arguments_are_checked_with_named_fields() {
    let mut das = Running::start(load(&config_json()), None).await;
    let c = &mut das.client;

    let mut from_elsewhere = consult(dreq("Cguest", pb::Operation::Update, "frontDoor"));
    from_elsewhere.hosting_cse_id = "//home.example/other-cse".into();
    let e = c
        .consult(from_elsewhere)
        .await
        .expect_err("not a consultant");
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = c
        .get_tokens(pb::GetDasTokensRequest {
            hosting_cse_id: "/other-cse".into(),
            token_ids: vec![],
        })
        .await
        .expect_err("not a consultant");
    assert_eq!(e.code(), Code::PermissionDenied);
    // SP-relative is the same CSE as absolute.
    let mut relative = consult(dreq("Cwindow", pb::Operation::Retrieve, "window"));
    relative.hosting_cse_id = "/mn-cse-123456".into();
    c.consult(relative).await.expect("SP-relative consultant");

    let mut bad_op = dreq("Cguest", pb::Operation::Update, "frontDoor");
    bad_op.operation = 0;
    let e = c.consult(consult(bad_op)).await.expect_err("invalid");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(fields(&e), vec!["das_request.operation"]);

    let mut several = dreq("", pb::Operation::Update, "");
    several.proposed_privileges_lifetime = "an hour".into();
    let e = c.consult(consult(several)).await.expect_err("invalid");
    assert_eq!(
        fields(&e),
        vec![
            "das_request.originator",
            "das_request.targeted_resource_id",
            "das_request.proposed_privileges_lifetime"
        ]
    );

    let e = c
        .consult(pb::ConsultRequest {
            hosting_cse_id: HCSE.into(),
            das_request: None,
        })
        .await
        .expect_err("invalid");
    assert_eq!(fields(&e), vec!["das_request"]);
    let e = c
        .consult(pb::ConsultRequest {
            hosting_cse_id: String::new(),
            das_request: Some(dreq("Cguest", pb::Operation::Update, "frontDoor")),
        })
        .await
        .expect_err("invalid");
    assert_eq!(fields(&e), vec!["hosting_cse_id"]);

    let mut stale = dreq("Cguest", pb::Operation::Update, "frontDoor");
    stale.request_timestamp = format_timestamp(Utc::now() - TimeDelta::days(3));
    let e = c
        .consult(consult(stale))
        .await
        .expect_err("too far from now");
    assert_eq!(fields(&e), vec!["das_request.request_timestamp"]);

    let e = c
        .issue_token(with_bearer(
            pb::IssueTokenRequest {
                das_request: Some(dreq("Cguest", pb::Operation::Update, "front door")),
                ..Default::default()
            },
            Some(GUEST_SECRET),
        ))
        .await
        .expect_err("invalid");
    assert_eq!(fields(&e), vec!["das_request.targeted_resource_id"]);
    das.stop().await;
}

#[tokio::test]
async fn issued_tokens_survive_a_restart_and_are_dropped_when_expired() {
    let (_guard, dir) = temp_path("das-grpc", "restart");
    let das = Running::start(load(&config_json()), Some(&dir)).await;
    let mut c = das.client.clone();
    let issued = guest_reads_the_state(&mut c).await;
    // A one-second token, to watch it expire.
    let mut short = dreq("Cguest", pb::Operation::Retrieve, "frontDoorState");
    short.proposed_privileges_lifetime = "1000".into();
    let short_token = c
        .consult(consult(short))
        .await
        .expect("consult")
        .into_inner()
        .tokens
        .remove(0);
    // A Direct token, for this hosting CSE alone.
    let mut direct = dreq("Cguest", pb::Operation::Update, "frontDoor");
    direct.request_timestamp = today_at(12);
    let direct_token = c
        .consult(consult(direct))
        .await
        .expect("consult")
        .into_inner()
        .tokens
        .remove(0);
    das.stop().await;

    let das = Running::start(load(&config_json()), Some(&dir)).await;
    let mut c = das.client.clone();
    let got = c
        .get_tokens(pb::GetDasTokensRequest {
            hosting_cse_id: HCSE.into(),
            token_ids: issued.token_ids.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.tokens, issued.tokens, "kept across the restart");

    // Consult with tids returns the holder's stored tokens, not others'.
    let mut with_tids = dreq("Cguest", pb::Operation::Delete, "frontDoorState");
    with_tids.token_ids = vec![jti(&direct_token)];
    let res = c
        .consult(consult(with_tids.clone()))
        .await
        .expect("consult")
        .into_inner();
    assert_eq!(res.tokens, vec![direct_token]);
    with_tids.originator = "Cwindow".into();
    let res = c
        .consult(consult(with_tids))
        .await
        .expect("consult")
        .into_inner();
    assert!(res.tokens.is_empty());

    // Expiry: hidden at once, deleted by the sweeper.
    assert_eq!(das.service.stored_tokens(), 3);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let short_id = {
        let claims: Value = serde_json::from_slice(&base64_url_decode(
            short_token.split('.').nth(1).expect("payload"),
        ))
        .expect("claims");
        claims["jti"].as_str().expect("jti").to_owned()
    };
    let got = c
        .get_tokens(pb::GetDasTokensRequest {
            hosting_cse_id: HCSE.into(),
            token_ids: vec![short_id.clone()],
        })
        .await
        .expect("get")
        .into_inner();
    assert!(got.tokens.is_empty());
    assert_eq!(got.unknown_ids, vec![short_id]);
    // A malformed Token-ID is no unknown one: INVALID_ARGUMENT naming it,
    // as Consult names `das_request.token_ids[i]` (Decision 9).
    let err = c
        .get_tokens(pb::GetDasTokensRequest {
            hosting_cse_id: HCSE.into(),
            token_ids: vec!["ok@das.example.com".into(), "bad id".into(), String::new()],
        })
        .await
        .expect_err("malformed Token-IDs");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let fields: Vec<String> = err
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["token_ids[1]", "token_ids[2]"], "{err:?}");
    assert_eq!(
        das.service.sweep_expired(Utc::now()).await.expect("sweep"),
        1
    );
    assert_eq!(das.service.stored_tokens(), 2);
    das.stop().await;
}

fn ip4(a: &str) -> Option<pb::IpAddress> {
    Some(pb::IpAddress {
        address: Some(pb::ip_address::Address::Ipv4(a.into())),
    })
}

/// IssueToken (TS-0003 7.3.2.3 step 3): `acip` is decided on the address
/// the call came from, not on the `oip` the originator writes in its own
/// request. From loopback, an `oip` inside the LAN range gets nothing and
/// one outside the loopback range does not stop a grant; the granted `pv`
/// carries the `acip` for the hosting CSE to check at every use. Consult
/// (7.3.2.2) takes `oip` from the consulting hosting CSE.
#[tokio::test]
async fn issue_token_decides_acip_on_the_callers_address_7_3_2_3() {
    let mut das = Running::start(load(&config_json()), None).await;
    let trust = trust_store(&mut das.client).await;
    let c = &mut das.client;
    let ask = |trid: &str, oip: &str| {
        let mut d = dreq("Cguest", pb::Operation::Retrieve, trid);
        d.originator_ip = ip4(oip);
        pb::IssueTokenRequest {
            das_request: Some(d),
            ..Default::default()
        }
    };

    let res = c
        .issue_token(with_bearer(
            ask("lanLight", "192.168.1.5"),
            Some(GUEST_SECRET),
        ))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(
        res,
        pb::IssueTokenResponse::default(),
        "a self-asserted LAN oip from loopback gets nothing"
    );

    let res = c
        .issue_token(with_bearer(
            ask("loopLight", "192.168.1.5"),
            Some(GUEST_SECRET),
        ))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(res.tokens.len(), 1, "the caller's loopback address counts");
    let claims = verify(&trust, &res.tokens[0], HCSE, "Cguest").expect("verifies");
    let rule = &claims.permissions.pm[0].pv.as_ref().expect("pv").rules[0];
    let acip = rule.contexts[0].ip_addresses.as_ref().expect("acip");
    assert_eq!(acip.ipv4, vec!["127.0.0.0/8"], "re-checked at every use");

    // A malformed oip is still an invalid argument.
    let e = c
        .issue_token(with_bearer(
            ask("loopLight", "300.1.1.1"),
            Some(GUEST_SECRET),
        ))
        .await
        .expect_err("invalid");
    assert_eq!(fields(&e), vec!["das_request.originator_ip.ipv4"]);

    // Consult: the hosting CSE's oip is used.
    let mut d = dreq("Cguest", pb::Operation::Retrieve, "lanLight");
    d.originator_ip = ip4("192.168.1.5");
    let res = c.consult(consult(d)).await.expect("consult").into_inner();
    assert_eq!(res.tokens.len(), 1, "the consultant's oip is in the LAN");
    das.stop().await;
}

/// Consult (TS-0003 7.3.2.2) and GetTokens (7.3.2.3 step 5) as a consultant
/// with a secret need `authorization: Bearer <secret>`: missing or wrong is
/// UNAUTHENTICATED (a client's IssueToken secret too), the right one is
/// answered. A consultant listed without a secret is still taken at its
/// word; a CSE not listed is PERMISSION_DENIED.
#[tokio::test]
async fn consultants_with_a_secret_must_present_it_7_3_2_2_7_3_2_3() {
    let mut v = config_json();
    v["consultants"] = json!([{"cse_id": "/mn-cse-123456", "secret": CSE_SECRET}, "/other-cse"]);
    let mut das = Running::start(load(&v), None).await;
    let c = &mut das.client;
    let ask = || consult(dreq("Cwindow", pb::Operation::Retrieve, "window"));
    for (what, secret) in [
        ("no secret", None),
        ("wrong secret", Some("not-the-cse-secret-at-all")),
        ("a client's secret", Some(GUEST_SECRET)),
    ] {
        let e = c.consult(with_bearer(ask(), secret)).await.expect_err(what);
        assert_eq!(e.code(), Code::Unauthenticated, "{what}: {e:?}");
        let e = c
            .get_tokens(with_bearer(
                pb::GetDasTokensRequest {
                    hosting_cse_id: HCSE.into(),
                    token_ids: vec![],
                },
                secret,
            ))
            .await
            .expect_err(what);
        assert_eq!(e.code(), Code::Unauthenticated, "{what}: {e:?}");
    }
    let res = c
        .consult(with_bearer(ask(), Some(CSE_SECRET)))
        .await
        .expect("consult")
        .into_inner();
    assert!(res.dynamic_acp_info.is_some());
    let issued = guest_reads_the_state(c).await;
    let got = c
        .get_tokens(with_bearer(
            pb::GetDasTokensRequest {
                hosting_cse_id: HCSE.into(),
                token_ids: issued.token_ids.clone(),
            },
            Some(CSE_SECRET),
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.tokens, issued.tokens);

    // Listed without a secret: answered on its word.
    let mut other = ask();
    other.hosting_cse_id = "//home.example/other-cse".into();
    c.consult(other).await.expect("no secret configured for it");
    let mut stranger = ask();
    stranger.hosting_cse_id = "/third-cse".into();
    let e = c.consult(stranger).await.expect_err("not a consultant");
    assert_eq!(e.code(), Code::PermissionDenied);
    das.stop().await;
}

/// Base64url without padding (RFC 4648 5), enough to read a test payload.
fn base64_url_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {c}"),
        }
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        acc = (acc << 6) | value(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).expect("byte"));
        }
    }
    out
}

#[test]
fn config_errors_name_the_file_and_the_field() {
    let (_guard, dir) = temp_path("das-grpc", "config");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("das.json");
    let check = |v: &Value, field: &str| {
        std::fs::write(&file, v.to_string()).expect("write");
        let e = DasConfig::load(&file).expect_err("invalid");
        let text = e.to_string();
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(text.contains(field), "{field} not in {text}");
    };

    let mut v = config_json();
    v["policies"][0]["grant"]["mode"] = json!("tokens");
    check(&v, "policies[0].grant.mode");

    let mut v = config_json();
    v.as_object_mut().expect("object").remove("issuer");
    check(&v, "issuer");

    let mut v = config_json();
    v["signing_keys"][0]["private_key_pem"] = json!("keys/missing.pem");
    check(&v, "signing_keys[0].private_key_pem");

    let mut v = config_json();
    v["signing_keys"][0]["public_key_pem"] = json!(keys_dir().join("es256-other-public.pem"));
    check(&v, "signing_keys[0].public_key_pem");

    let mut v = config_json();
    v["policies"][2]["rule"]["acco"] = json!([{"actw": ["* * 25 * * * *"]}]);
    check(&v, "policies[2].rule.acco[0].actw[0]");

    let mut v = config_json();
    v["clients"][1]["secret"] = json!(GUEST_SECRET);
    check(&v, "clients[1].secret");

    let mut v = config_json();
    v["policies"][1]["rule"]["acxx"] = json!(1);
    check(&v, "policies[1].rule");

    // A `trt` of 0 is refused in every request, so the entry could never
    // match (spec notes §4: m2m:resourceType starts at 1).
    let mut v = config_json();
    v["policies"][0]["resource_types"] = json!([3, 0]);
    check(&v, "policies[0].resource_types[1]");

    // `rts` has whole seconds: a skew of 0 would refuse every Consult.
    let mut v = config_json();
    v["max_request_skew_s"] = json!(0);
    check(&v, "max_request_skew_s");

    // TS-0003 7.3.2.5: a granted role carries no condition, so a role under
    // a time window or an IP range would hold outside them.
    let mut v = config_json();
    v["policies"][2] = json!({
        "name": "guest-role",
        "rule": {"acor": ["Cguest"], "acop": 4,
                 "acco": [{"actw": ["* * 7-19 * * * *"], "acip": {"ipv4": ["192.168.1.0/24"]}}]},
        "targets": ["frontDoor"],
        "grant": {"roles": ["guest@das.home.example"], "mode": "token"},
        "max_lifetime_s": 86400
    });
    check(&v, "policies[2].grant.roles");

    // TS-0003 7.3.2.6.2: "A oneM2M JWT may use any algorithm supported by
    // ESData for the JWS Compact Representation", and table 8.5.3.3-2 has
    // no EdDSA: the signing (first) key is ES256 or RS256; an EdDSA key may
    // follow (published only).
    let mut v = config_json();
    v["signing_keys"] = json!([
        key("k-ed25519", "EdDSA", "ed25519"),
        key("k-es256", "ES256", "es256")
    ]);
    check(&v, "signing_keys[0].alg");

    // TS-0003 7.3.2.3 step 6.1.3: audience entries must name a CSE.
    for (bad, field) in [
        (json!([HCSE, "in-cse"]), "audience[1]"),
        (json!(["//home.example"]), "audience[0]"),
        (json!(["/mn-cse-123456/frontDoor"]), "audience[0]"),
        (json!([HCSE, "/"]), "audience[1]"),
        // An SP domain that is no domain name matches no CSE.
        (json!(["//home.example:8080/mn-cse-123456"]), "audience[0]"),
        (json!([HCSE, "//a..b/in-cse"]), "audience[1]"),
    ] {
        let mut v = config_json();
        v["audience"] = bad;
        check(&v, field);
    }

    for (consultants, field) in [
        (
            json!([{"cse_id": HCSE, "secret": "short"}]),
            "consultants[0].secret",
        ),
        (
            json!([{"cse_id": HCSE, "secret": GUEST_SECRET}]),
            "consultants[0].secret",
        ),
        (
            json!([{"cse_id": HCSE, "secret": "with spaces in the secret"}]),
            "consultants[0].secret",
        ),
        (json!([{"cse_id": HCSE}]), "consultants[0].secret"),
        (
            json!([{"cse_id": HCSE, "secret": CSE_SECRET, "scret": 1}]),
            "consultants[0]",
        ),
        (json!([HCSE, "/mn-cse-123456"]), "consultants[1]"),
        (json!(["mn-cse-123456"]), "consultants[0]"),
    ] {
        let mut v = config_json();
        v["consultants"] = consultants;
        check(&v, field);
    }

    std::fs::write(&file, "{\"issuer\": ").expect("write");
    let e = DasConfig::load(&file).expect_err("not JSON");
    assert!(e.to_string().contains("das.json"), "{e}");
}

#[test]
fn the_example_config_loads_with_keys_relative_to_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/das/door-lock-das.json");
    let config = DasConfig::load(&path).expect("example loads");
    assert_eq!(config.issuer, ISSUER);
    assert_eq!(config.keys.len(), 2);
    assert_eq!(config.policies[0].name, "guest-unlocks-front-door");
    assert_eq!(
        config.clients[0].originator,
        "//home.example/mn-cse-123456/Cguest"
    );
}

/// TS-0003 7.3.2.3 step 6.1.3: the configured audience is kept in absolute
/// form (SP-relative entries read in the DAS's SP, the SP domain in lower
/// case, `*` kept, repeats dropped); consultants are absolute too.
#[test]
fn audience_and_consultants_are_made_absolute_at_load() {
    let mut v = config_json();
    v["audience"] = json!([
        "/mn-cse-123456",
        "//HOME.example/mn-cse-123456",
        "/in-*",
        "//*.example/cse"
    ]);
    v["consultants"] =
        json!(["/mn-cse-123456", {"cse_id": "//Other.example/cse", "secret": CSE_SECRET}]);
    let config = load(&v);
    assert_eq!(
        config.audience,
        vec![HCSE, "//home.example/in-*", "//*.example/cse"]
    );
    let ids: Vec<&str> = config
        .consultants
        .iter()
        .map(|c| c.cse_id.as_str())
        .collect();
    assert_eq!(ids, [HCSE, "//other.example/cse"]);
    assert!(!config.consultants[0].has_secret());
    assert!(config.consultants[1].secret_matches(CSE_SECRET.as_bytes()));
    let shown = format!("{:?}", config.consultants);
    assert!(!shown.contains(CSE_SECRET), "{shown}");
}

/// `GetTokens` gives a token only to a CSE its audience names: the CSE that
/// will verify it (TS-0003 7.3.2.2 step 4.1.1.2.2, 7.3.2.3 step 5). A token
/// meant for other CSEs is listed with the unknown IDs, so a consultant
/// learns nothing of it; a call that names no CSE is refused.
#[tokio::test]
async fn get_tokens_answers_only_cses_in_the_audience_7_3_2_3() {
    let mut v = config_json();
    v["consultants"] = json!([HCSE, "/in-cse", "/other-cse"]);
    let mut das = Running::start(load(&v), None).await;
    let trust = trust_store(&mut das.client).await;
    let c = &mut das.client;

    // Through IssueToken: audience HCSE and /in-cse (configured).
    let issued = guest_reads_the_state(c).await;
    let wide = issued.token_ids[0].clone();
    // Through Consult by HCSE: audience HCSE only.
    let mut d = dreq("Cguest", pb::Operation::Update, "frontDoor");
    d.request_timestamp = today_at(12);
    let res = c.consult(consult(d)).await.expect("consult").into_inner();
    let narrow = verify(&trust, &res.tokens[0], HCSE, "Cguest")
        .expect("verifies")
        .token_id;

    let get = |cse: &str| {
        let req = pb::GetDasTokensRequest {
            hosting_cse_id: cse.into(),
            token_ids: vec![wide.clone(), narrow.clone()],
        };
        let mut c = c.clone();
        async move { c.get_tokens(req).await }
    };
    let at_hcse = get(HCSE).await.expect("HCSE").into_inner();
    assert_eq!(
        at_hcse.tokens,
        vec![issued.tokens[0].clone(), res.tokens[0].clone()]
    );
    assert!(at_hcse.unknown_ids.is_empty());

    let at_in = get("/in-cse").await.expect("in-cse").into_inner();
    assert_eq!(at_in.tokens, issued.tokens, "only the token naming /in-cse");
    assert_eq!(at_in.unknown_ids, vec![narrow.clone()]);

    let elsewhere = get("/other-cse").await.expect("other-cse").into_inner();
    assert!(elsewhere.tokens.is_empty(), "{elsewhere:?}");
    assert_eq!(elsewhere.unknown_ids, vec![wide.clone(), narrow.clone()]);

    let e = get("").await.expect_err("no CSE named");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("hosting_cse_id"), "{e:?}");
    das.stop().await;
}

/// TS-0003 7.3.2.2 step 3.1: "The 'audience' parameter shall contain only
/// the HCSEs CSE-ID", so a token named in `dreq.tids` is returned only to
/// the one CSE its `aud` names. A token issued for CSE A and named in a
/// Consult from CSE B is dropped like an unknown ID (B learns nothing of
/// it); the same token is returned to A. A token from IssueToken, whose
/// audience is the configured one (A and /in-cse), is returned to neither.
#[tokio::test]
async fn consult_returns_named_tokens_only_to_cses_in_their_audience_7_3_2_2() {
    const OTHER: &str = "//home.example/other-cse";
    let mut v = config_json();
    v["consultants"] = json!([HCSE, OTHER]);
    let mut das = Running::start(load(&v), None).await;
    let trust = trust_store(&mut das.client).await;
    let c = &mut das.client;

    // Issued for A (HCSE) through Consult: audience A only.
    let mut d = dreq("Cguest", pb::Operation::Update, "frontDoor");
    d.request_timestamp = today_at(12);
    let for_a = c.consult(consult(d)).await.expect("consult").into_inner();
    assert_eq!(for_a.tokens.len(), 1);
    let for_a_id = verify(&trust, &for_a.tokens[0], HCSE, "Cguest")
        .expect("verifies")
        .token_id;
    // Issued through IssueToken: the configured audience (HCSE, /in-cse).
    let wide = guest_reads_the_state(c).await;
    let unknown = "00000000000000000000000000000000@das.home.example".to_owned();

    // The same holder (absolute, so it is the same originator at either
    // CSE) asks for something no policy grants, naming the tokens: only the
    // tokens themselves could be in the answer.
    let mut named = dreq(
        "//home.example/mn-cse-123456/Cguest",
        pb::Operation::Delete,
        "frontDoorState",
    );
    named.token_ids = vec![for_a_id.clone(), wide.token_ids[0].clone(), unknown];
    let ask = |cse: &str| pb::ConsultRequest {
        hosting_cse_id: cse.into(),
        das_request: Some(named.clone()),
    };

    let at_b = c.consult(ask(OTHER)).await.expect("B").into_inner();
    assert_eq!(
        at_b,
        pb::DasResponse::default(),
        "B gets neither A's token nor one whose audience omits B"
    );
    let at_a = c.consult(ask(HCSE)).await.expect("A").into_inner();
    assert_eq!(
        at_a.tokens,
        vec![for_a.tokens[0].clone()],
        "A gets the token naming A alone, not the one also naming /in-cse"
    );
    assert!(at_a.dynamic_acp_info.is_none());
    das.stop().await;

    // A token whose one audience entry is a wildcard naming both CSEs
    // (IssueToken with the configured audience `//home.example/*`) is
    // returned to neither: its audience is not the consulting CSE alone.
    let mut v = config_json();
    v["consultants"] = json!([HCSE, OTHER]);
    v["audience"] = json!(["//home.example/*"]);
    let mut das = Running::start(load(&v), None).await;
    let c = &mut das.client;
    let wildcard = guest_reads_the_state(c).await;
    named.token_ids = vec![wildcard.token_ids[0].clone()];
    for cse in [HCSE, OTHER] {
        let got = c
            .consult(pb::ConsultRequest {
                hosting_cse_id: cse.into(),
                das_request: Some(named.clone()),
            })
            .await
            .expect("consult")
            .into_inner();
        assert!(got.tokens.is_empty(), "{cse}: {got:?}");
    }
    das.stop().await;
}

/// The Token-ID (`jti`) of a compact token, read without verifying it.
fn jti(token: &str) -> String {
    let claims: Value = serde_json::from_slice(&base64_url_decode(
        token.split('.').nth(1).expect("payload"),
    ))
    .expect("claims");
    claims["jti"].as_str().expect("jti").to_owned()
}

/// A client that repeats a request (a retry loop: a PDP consults again for
/// each retry of a request that `acaf` then denies) gets the stored token
/// again, Token-ID included, and nothing more is stored, on `Consult` as on
/// `IssueToken`, across a restart too. A stored token that would outlast
/// the new one, or has less than half the new one's lifetime left, is not
/// reused.
#[tokio::test]
async fn repeated_requests_get_the_stored_token_again() {
    let (_guard, dir) = temp_path("das-grpc", "reuse");
    let das = Running::start(load(&config_json()), Some(&dir)).await;
    let mut c = das.client.clone();
    let mut d = dreq("Cguest", pb::Operation::Update, "frontDoor");
    d.request_timestamp = today_at(12);
    let first = c
        .consult(consult(d.clone()))
        .await
        .expect("consult")
        .into_inner();
    assert_eq!(first.tokens.len(), 1);
    for _ in 0..4 {
        let again = c
            .consult(consult(d.clone()))
            .await
            .expect("consult")
            .into_inner();
        assert_eq!(again.tokens, first.tokens, "the same token, same Token-ID");
    }
    assert_eq!(das.service.stored_tokens(), 1);

    // Named in `tids` as well: listed once.
    let mut named = d.clone();
    named.token_ids = vec![jti(&first.tokens[0])];
    let res = c
        .consult(consult(named))
        .await
        .expect("consult")
        .into_inner();
    assert_eq!(res.tokens, first.tokens);

    let issued = guest_reads_the_state(&mut c).await;
    for _ in 0..3 {
        let again = c
            .issue_token(as_guest(dreq(
                "Cguest",
                pb::Operation::Retrieve,
                "frontDoorState",
            )))
            .await
            .expect("issued")
            .into_inner();
        assert_eq!(again, issued);
    }
    assert_eq!(das.service.stored_tokens(), 2);

    // A shorter proposed lifetime: the stored hour-long token would outlast
    // it, so a new one (4 s), given again while it has at least 2 s left.
    let mut short = d.clone();
    short.proposed_privileges_lifetime = "4000".into();
    let short_1 = c
        .consult(consult(short.clone()))
        .await
        .expect("consult")
        .into_inner();
    assert_ne!(short_1.tokens, first.tokens);
    let short_2 = c
        .consult(consult(short.clone()))
        .await
        .expect("consult")
        .into_inner();
    assert_eq!(short_2.tokens, short_1.tokens);
    assert_eq!(das.service.stored_tokens(), 3);
    // Past half its lifetime (notAfter is at most 4 s after the first
    // consultation began): a new one.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let short_3 = c
        .consult(consult(short))
        .await
        .expect("consult")
        .into_inner();
    assert_ne!(short_3.tokens, short_1.tokens);
    assert_eq!(das.service.stored_tokens(), 4);
    das.stop().await;

    // What makes a token reusable is stored with it.
    let das = Running::start(load(&config_json()), Some(&dir)).await;
    let mut c = das.client.clone();
    let res = c.consult(consult(d)).await.expect("consult").into_inner();
    assert_eq!(res.tokens, first.tokens, "reused after a restart");
    das.stop().await;
}

/// A stored token is given again only in the form the configuration asks
/// for now (TS-0003 7.3.2.2 step 3.1: encrypted "such that the Token can be
/// decrypted by the Hosting CSE"): after the CSE's `token_encryption` key
/// changes, or encryption is dropped, a new token is issued, not the JWE
/// for a key the CSE may no longer hold.
#[tokio::test]
async fn a_stored_token_is_not_reused_after_token_encryption_changes_7_3_2_2() {
    let public = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/das/keys/cse-encryption-public.jwk.json");
    let published: Value =
        serde_json::from_str(&std::fs::read_to_string(&public).expect("jwk")).expect("json");
    let with_key = |kid: &str| {
        let mut jwk = published.clone();
        jwk["kid"] = json!(kid);
        let mut v = config_json();
        v["token_encryption"] = json!([{"cse_id": "/mn-cse-123456", "jwk": jwk}]);
        v
    };
    let kid_of = |token: &str| -> String {
        let header = token.split('.').next().expect("header");
        let header: Value =
            serde_json::from_slice(&base64_url_decode(header)).expect("header json");
        header["kid"].as_str().unwrap_or("").to_owned()
    };
    let (_guard, dir) = temp_path("das-grpc", "reuse-encryption");
    let mut d = dreq("Cguest", pb::Operation::Update, "frontDoor");
    d.request_timestamp = today_at(12);
    let consult_once = |config: Value| {
        let (dir, d) = (dir.clone(), d.clone());
        async move {
            let das = Running::start(load(&config), Some(&dir)).await;
            let mut c = das.client.clone();
            let token = c
                .consult(consult(d.clone()))
                .await
                .expect("consult")
                .into_inner()
                .tokens
                .remove(0);
            let again = c.consult(consult(d)).await.expect("consult").into_inner();
            assert_eq!(again.tokens, vec![token.clone()], "reused while unchanged");
            das.stop().await;
            token
        }
    };
    let first = consult_once(with_key("cse-enc-1")).await;
    assert_eq!(first.split('.').count(), 5, "a JWE");
    assert_eq!(kid_of(&first), "cse-enc-1");
    let rotated = consult_once(with_key("cse-enc-2")).await;
    assert_eq!(kid_of(&rotated), "cse-enc-2", "encrypted to the new key");
    let plain = consult_once(config_json()).await;
    assert_eq!(plain.split('.').count(), 3, "a JWS once encryption is off");
}

/// Distinct requests each get a token, but a holder holds at most
/// `MAX_TOKENS_PER_HOLDER` (32) valid tokens: the next distinct request is
/// RESOURCE_EXHAUSTED naming the holder, and every token issued stays
/// retrievable by Token-ID until it expires (TS-0003 7.3.2.3 step 5; issue
/// 5: "kept until they expire"). A request equal to an earlier one still
/// gets its stored token.
#[tokio::test]
async fn a_holder_with_32_valid_tokens_gets_no_more_and_keeps_them_all() {
    const CAP: usize = authz_das::state::MAX_TOKENS_PER_HOLDER;
    let mut das = Running::start(load(&config_json()), None).await;
    let c = &mut das.client;
    let request = |i: usize| {
        let mut d = dreq(
            "Cguest",
            pb::Operation::Update,
            &format!("/mn-cse-123456/lights/l{i}"),
        );
        d.request_timestamp = today_at(12);
        d.proposed_privileges_lifetime = format!("{}", (600 + i) * 1000);
        d
    };
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..CAP {
        let res = c
            .consult(consult(request(i)))
            .await
            .expect("consult")
            .into_inner();
        assert_eq!(res.tokens.len(), 1, "light {i}");
        ids.push(jti(&res.tokens[0]));
        tokens.push(res.tokens[0].clone());
    }
    let refused = c
        .consult(consult(request(CAP)))
        .await
        .expect_err("the 33rd distinct token");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .contains("//home.example/mn-cse-123456/Cguest")
            && refused.message().contains("32 valid tokens"),
        "{refused:?}"
    );
    // The same request as the first: its stored token again.
    let again = c
        .consult(consult(request(0)))
        .await
        .expect("consult again")
        .into_inner();
    assert_eq!(again.tokens, vec![tokens[0].clone()]);
    assert_eq!(das.service.stored_tokens(), CAP);
    let got = c
        .get_tokens(pb::GetDasTokensRequest {
            hosting_cse_id: HCSE.into(),
            token_ids: ids.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert!(got.unknown_ids.is_empty(), "{:?}", got.unknown_ids);
    assert_eq!(got.tokens, tokens);
    das.stop().await;
}

/// `token_encryption` (TS-0003 7.3.2.6.2, Nested Sign-then-encrypt): each
/// entry names one CSE, a usable JWK (inline or a file) and an `enc` of
/// table 8.5.3.2-4; errors name the entry's field. A token is encrypted
/// only when its audience is exactly that CSE.
#[test]
fn token_encryption_entries_are_checked_at_load_7_3_2_6_2() {
    let public = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/das/keys/cse-encryption-public.jwk.json");
    let mut v = config_json();
    v["token_encryption"] = json!([
        {"cse_id": "/mn-cse-123456", "jwk": public.to_string_lossy()},
        {"cse_id": "/in-cse", "enc": "A128GCM",
         "jwk": {"kty": "oct", "kid": "shared", "alg": "A128KW", "k": "AAAAAAAAAAAAAAAAAAAAAA"}}
    ]);
    let config = load(&v);
    let first = config
        .encryption_for(&[HCSE.to_owned()])
        .expect("the hosting CSE's");
    assert_eq!(first.key.kid(), "mn-cse-enc-1");
    assert_eq!(
        first.enc,
        authz_core::jwe::ContentEncryption::A256Gcm,
        "the default"
    );
    assert!(
        config
            .encryption_for(&["//home.example/in-cse".to_owned()])
            .is_some()
    );
    // Two recipients cannot share one compact JWE: such a token is signed only.
    assert!(
        config
            .encryption_for(&[HCSE.to_owned(), "//home.example/in-cse".to_owned()])
            .is_none()
    );

    for (entry, field) in [
        (
            json!({"cse_id": "/in-*", "jwk": public.to_string_lossy()}),
            "token_encryption[0].cse_id",
        ),
        (
            json!({"cse_id": "/in-cse", "jwk": public.to_string_lossy(), "enc": "A128CBC-HS256"}),
            "token_encryption[0].enc",
        ),
        (
            json!({"cse_id": "/in-cse", "jwk": "no-such-file.json"}),
            "token_encryption[0].jwk",
        ),
        (
            json!({"cse_id": "/in-cse", "jwk": {"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A128KW", "x": "AA", "y": "AA"}}),
            "token_encryption[0].jwk.kid",
        ),
        // A 16-byte `dir` key is the content key of A128GCM only.
        (
            json!({"cse_id": "/in-cse", "jwk": {"kty": "oct", "kid": "d", "alg": "dir", "k": "AAAAAAAAAAAAAAAAAAAAAA"}}),
            "token_encryption[0].enc",
        ),
    ] {
        let mut v = config_json();
        v["token_encryption"] = json!([entry]);
        let e = DasConfig::from_json(&v.to_string(), Path::new("test-das.json"), Path::new("."))
            .expect_err("invalid");
        assert_eq!(e.fields(), [field], "{e}");
    }
}

/// `request_decryption_keys` (secured DAS requests, TS-0003 7.3.2.3 step
/// 2.2): a JWK Set of private keys of key pairs, inline or a file; the
/// public half of the first is published by `GetKeySet` (no private
/// member), and a shared secret, which cannot be published, is refused.
#[tokio::test]
async fn request_decryption_keys_are_checked_and_the_first_is_published_7_3_2_3() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/das/keys/das-request-keys.json");
    let mut v = config_json();
    v["request_decryption_keys"] = json!(file.to_string_lossy());
    let config = load(&v);
    assert_eq!(config.request_keys.len(), 1);
    let mut das = Running::start(config, None).await;
    let set = das
        .client
        .get_key_set(pb::GetKeySetRequest {})
        .await
        .expect("key set")
        .into_inner();
    let published: Value = serde_json::from_str(&set.request_encryption_jwk).expect("a JWK");
    assert_eq!(published["kid"], "das-request-1");
    assert_eq!(published["alg"], "ECDH-ES+A256KW");
    assert!(
        published.get("d").is_none(),
        "no private member: {published}"
    );
    // It is a key a hosting CSE can encrypt to, and the DAS decrypts.
    let key = authz_core::jwe::EncryptionKey::from_jwk(&published, "jwk").expect("public key");
    let dreq = dreq("Cguest", pb::Operation::Retrieve, "frontDoorState");
    let sdr = authz_core::jwe::encrypt(
        authz_proto::das_json::das_request_to_json(&dreq)
            .to_string()
            .as_bytes(),
        &key,
        authz_core::jwe::ContentEncryption::A256Gcm,
        false,
    )
    .expect("encrypts");
    let secured = |sdr: String| {
        with_bearer(
            pb::IssueTokenRequest {
                secured_das_request: sdr,
                ..Default::default()
            },
            Some(GUEST_SECRET),
        )
    };
    let issued = das
        .client
        .issue_token(secured(sdr.clone()))
        .await
        .expect("issued")
        .into_inner();
    assert_eq!(issued.tokens.len(), 1, "the guest-state grant: {issued:?}");
    // Another client presenting the guest's sdr is not its `or`.
    let err = das
        .client
        .issue_token(with_bearer(
            pb::IssueTokenRequest {
                secured_das_request: sdr,
                ..Default::default()
            },
            Some(OTHER_SECRET),
        ))
        .await
        .expect_err("not the other client's");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // Encrypted text that is no dreq names the field.
    let not_dreq = authz_core::jwe::encrypt(
        b"[1, 2]",
        &key,
        authz_core::jwe::ContentEncryption::A256Gcm,
        false,
    )
    .expect("encrypts");
    let err = das
        .client
        .issue_token(secured(not_dreq))
        .await
        .expect_err("no dreq");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("secured_das_request"), "{err:?}");
    das.stop().await;

    // Without keys an sdr is refused, and none is published.
    let mut plain = Running::start(load(&config_json()), None).await;
    let set = plain
        .client
        .get_key_set(pb::GetKeySetRequest {})
        .await
        .expect("key set")
        .into_inner();
    assert!(set.request_encryption_jwk.is_empty());
    let err = plain
        .client
        .issue_token(secured("a.b.c.d.e".into()))
        .await
        .expect_err("no key");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    plain.stop().await;

    for (keys, field) in [
        (
            json!({"keys": [{"kty": "oct", "kid": "s", "alg": "A128KW", "k": "AAAAAAAAAAAAAAAAAAAAAA"}]}),
            "request_decryption_keys.keys[0].alg",
        ),
        (json!({"keys": []}), "request_decryption_keys"),
        (json!("no-such-file.json"), "request_decryption_keys"),
        (
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "p", "alg": "ECDH-ES+A128KW", "x": "AA", "y": "AA"}]}),
            "request_decryption_keys.keys[0].d",
        ),
    ] {
        let mut v = config_json();
        v["request_decryption_keys"] = keys;
        let e = DasConfig::from_json(&v.to_string(), Path::new("test-das.json"), Path::new("."))
            .expect_err("invalid");
        assert_eq!(e.fields(), [field], "{e}");
    }
}
