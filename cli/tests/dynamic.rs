//! Dynamic Authorization end to end (TS-0003 7.3), with `authz prp`,
//! `authz pip`, `authz pdp` and `authz das` as real processes on loopback.
//!
//! - Direct (7.3.2.2): a target linking an enabled DAC; the DAS grants a
//!   `dai` (stored as a dynamic ACP until its lifetime ends) or tokens.
//! - Indirect (7.3.2.3): a Deny with Token Request Information, `IssueToken`
//!   at the DAS, and retries with the token, its Token-ID and the
//!   Local-Token-ID the PDP assigned.
//! - Attacks: each forged or misused token is denied with its own reason.
//!
//! The DAS authenticates the hosting CSE by a secret (`consultants[].secret`)
//! that the PDP presents (`--das-secret-file`) on `Consult` and `GetTokens`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use authz_core::token::{
    TokenAlgorithm, TokenClaims, TokenPermission, TokenSigner, encode_unsecured,
};
use authz_proto::pb;
use authz_proto::pb::dynamic_authorization_server_client::DynamicAuthorizationServerClient;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_tests::process::{HANG_LIMIT, run_within};
use chrono::Utc;
use common::*;
use tonic::transport::Channel;

const DAS_ISSUER: &str = "//home.example/mn-cse-123456/CDas";
const HOSTING_CSE: &str = "//home.example/mn-cse-123456";
const GUEST_SECRET: &str = "guest-secret-for-tests";
const CSE_SECRET: &str = "hosting-cse-secret-for-tests";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/das/keys")
}

fn das_config(dir: &Path, encrypt: bool) -> PathBuf {
    let keys = keys_dir();
    let key = |f: &str| keys.join(f).to_string_lossy().into_owned();
    let mut config = serde_json::json!({
        "issuer": DAS_ISSUER,
        "fqdn": "das.home.example",
        "sp_id": "//home.example",
        "cse_id": "/mn-cse-123456",
        "audience": [HOSTING_CSE],
        "signing_keys": [{"kid": "das-es256-1", "alg": "ES256",
                          "private_key_pem": key("es256-private.pem"),
                          "public_key_pem": key("es256-public.pem")}],
        "clients": [{"originator": "Cguest", "secret": GUEST_SECRET}],
        "consultants": [{"cse_id": HOSTING_CSE, "secret": CSE_SECRET}],
        "policies": [
            {"name": "visitor-direct",
             "rule": {"acor": ["Cvisitor"], "acop": 2},
             "targets": ["frontDoor"],
             "grant": {"acop": 2, "mode": "dynamic_acp"},
             "max_lifetime_s": 3},
            {"name": "courier-direct-token",
             "rule": {"acor": ["Ccourier"], "acop": 2},
             "targets": ["frontDoor"],
             "grant": {"acop": 2, "mode": "token"},
             "max_lifetime_s": 600},
            {"name": "guest-indirect",
             "rule": {"acor": ["Cguest"], "acop": 4},
             "targets": ["backDoor"],
             "grant": {"acop": 4, "mode": "token"},
             "max_lifetime_s": 600}
        ]
    });
    if encrypt {
        // Nested Sign-then-encrypt to the hosting CSE's P-256 key.
        config["token_encryption"] = serde_json::json!([
            {"cse_id": HOSTING_CSE, "jwk": key("cse-encryption-public.jwk.json")}
        ]);
    }
    let path = dir.join("das.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
    path
}

/// PRP, PIP, DAS and PDP processes, and the policies of the door lock.
struct Stack {
    _procs: Vec<Proc>,
    prp: PolicyRetrievalPointClient<Channel>,
    pdp: PolicyDecisionPointClient<Channel>,
    das: DynamicAuthorizationServerClient<Channel>,
    das_url: String,
    pdp_url: String,
    /// Removed when the stack drops, after its processes (declared first).
    dir: tempfile::TempDir,
}

async fn stack(name: &str) -> Stack {
    stack_with(name, false).await
}

/// [`stack`], with the DAS encrypting tokens to the hosting CSE and the PDP
/// holding the key when `encrypt`.
async fn stack_with(name: &str, encrypt: bool) -> Stack {
    stack_full(name, encrypt, false).await
}

/// The Role-ID the DAS grants in the stacks with secured requests.
const LOCKSMITH: &str = "locksmith@das.home.example";

/// Makes the DAS of the config at `path` read secured DAS requests (its
/// `request_decryption_keys`, published by `GetKeySet`) and grant the guest
/// only the role [`LOCKSMITH`] for `backDoor`. It takes consultations from
/// another CSE only, so the hosting CSE's Direct consultation for the role
/// (7.3.2.2 step 2.2.1) is refused and the grant is the Indirect flow's.
fn secure_requests(path: &Path) {
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    config["request_decryption_keys"] = keys_dir()
        .join("das-request-keys.json")
        .to_string_lossy()
        .into_owned()
        .into();
    let policies = config["policies"].as_array_mut().expect("policies");
    policies.retain(|p| p["name"] != "guest-indirect");
    policies.push(serde_json::json!({
        "name": "guest-locksmith-role",
        "rule": {"acor": ["Cguest"], "acop": 4},
        "targets": ["backDoor"],
        "grant": {"acop": 0, "roles": [LOCKSMITH], "mode": "token"},
        "max_lifetime_s": 600}));
    config["consultants"] = serde_json::json!(["//home.example/other-cse"]);
    std::fs::write(path, serde_json::to_vec_pretty(&config).expect("json")).expect("write");
}

/// [`stack_with`], and with the DAS reading secured DAS requests
/// ([`secure_requests`]) when `secured`.
async fn stack_full(name: &str, encrypt: bool, secured: bool) -> Stack {
    let dir = tempdir(name);
    let (prp_proc, prp_url) = start(
        &["prp", "--listen", "127.0.0.1:0", "--data-dir", "memory"],
        "PRP",
    );
    let (pip_proc, pip_url) = start_pip_in_memory();
    let config = das_config(dir.path(), encrypt);
    if secured {
        secure_requests(&config);
    }
    let secret_file = dir.path().join("das-secret");
    // Surrounding whitespace is trimmed.
    std::fs::write(&secret_file, format!("{CSE_SECRET}\n")).expect("secret file");
    let (das_proc, das_url) = start(
        &[
            "das",
            "--config",
            config.to_str().expect("path"),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "memory",
        ],
        "DAS",
    );
    let (pdp_proc, pdp_url) = start(
        &[
            "pdp",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "off",
            "--prp",
            &prp_url,
            "--pip",
            &pip_url,
            "--das",
            &das_url,
            "--das-secret-file",
            &format!("{das_url}={}", secret_file.display()),
            "--token-decryption-keys",
            &if encrypt {
                keys_dir().join("cse-decryption-keys.json")
            } else {
                // An empty set: a JWE is refused.
                let empty = dir.path().join("no-keys.json");
                std::fs::write(&empty, r#"{"keys": []}"#).expect("write");
                empty
            }
            .to_string_lossy(),
        ],
        "PDP",
    );
    let mut prp = PolicyRetrievalPointClient::new(channel(&prp_url).await);
    let revision = door_lock_with_dac(&mut prp, &das_url).await;
    let mut pdp = PolicyDecisionPointClient::new(channel(&pdp_url).await);
    caught_up(&mut pdp, revision).await;
    let das = DynamicAuthorizationServerClient::new(channel(&das_url).await);
    Stack {
        _procs: vec![prp_proc, pip_proc, das_proc, pdp_proc],
        prp,
        pdp,
        das,
        das_url,
        pdp_url,
        dir,
    }
}

/// `acpOwner` (everything for `CownerPhone`), `frontDoor` linking an enabled
/// DAC whose `dap` is `das_url`, and `backDoor`; returns the PRP revision.
async fn door_lock_with_dac(prp: &mut PolicyRetrievalPointClient<Channel>, das_url: &str) -> u64 {
    prp.create_acp(pb::CreateAcpRequest {
        role_ids: Vec::new(),
        originator: "CAdmin".into(),
        acp: Some(acp("acpOwner", "CownerPhone", 63)),
    })
    .await
    .expect("acp");
    let dac = pb::TargetResource {
        resource_id: "dacFront".into(),
        resource_type: 34,
        dac_enabled: Some(true),
        dac_poa: vec![das_url.to_owned()],
        creator: "CAdmin".into(),
        ..Default::default()
    };
    let mut front = resource("frontDoor", &["acpOwner"]);
    front.daci = vec!["dacFront".into()];
    let mut revision = 0;
    for r in [dac, front, resource("backDoor", &["acpOwner"])] {
        revision = prp
            .put_resource(pb::PutResourceRequest {
                role_ids: Vec::new(),
                originator: "CAdmin".into(),
                resource: Some(r),
            })
            .await
            .expect("resource")
            .into_inner()
            .revision;
    }
    revision
}

/// Waits until the PDP's replica has reached `revision` (20 s at most).
async fn caught_up(pdp: &mut PolicyDecisionPointClient<Channel>, revision: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while pdp
        .status(pb::StatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .replica_revision
        < revision
    {
        assert!(Instant::now() < deadline, "the PDP never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Decides `r` until `done` holds (15 s at most); returns that decision.
async fn until(
    pdp: &mut PolicyDecisionPointClient<Channel>,
    r: &pb::DecisionRequest,
    done: impl Fn(&pb::Decision) -> bool,
) -> pb::Decision {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let d = decide(pdp, r.clone()).await;
        if done(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "last decision: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn permitted_by(d: &pb::Decision) -> String {
    d.permitted_by
        .as_ref()
        .map(|r| r.acp_id.clone())
        .unwrap_or_default()
}

/// TS-0003 7.3.2.2 and Decision 7: the DAS's `dai` grant permits, lives on as
/// a dynamic ACP in the PRP (the DAC switched off, no more consultations),
/// and once its lifetime ends the same request is denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_grant_becomes_a_dynamic_acp_that_expires_7_3_2_2() {
    let mut s = stack("direct").await;
    let visitor = request("Cvisitor", "frontDoor", pb::Operation::Retrieve);
    let first = until(&mut s.pdp, &visitor, is_permit).await;
    assert!(
        permitted_by(&first).starts_with("dai:"),
        "granted by the DAS's dai: {first:?}"
    );
    // No more consultations: the grant must now come from the replica.
    let mut dac = pb::TargetResource {
        resource_id: "dacFront".into(),
        resource_type: 34,
        dac_enabled: Some(false),
        dac_poa: vec![s.das_url.clone()],
        creator: "CAdmin".into(),
        ..Default::default()
    };
    s.prp
        .put_resource(pb::PutResourceRequest {
            role_ids: Vec::new(),
            originator: "CAdmin".into(),
            resource: Some(dac.clone()),
        })
        .await
        .expect("disable DAC");
    let stored = until(&mut s.pdp, &visitor, |d| {
        is_permit(d) && !permitted_by(d).starts_with("dai:")
    })
    .await;
    assert!(!permitted_by(&stored).is_empty(), "{stored:?}");
    // The lifetime (3 s, the DAS policy's maximum) ends: Deny.
    let denied = until(&mut s.pdp, &visitor, |d| !is_permit(d)).await;
    assert_eq!(denied.decision, pb::AuthorizationDecision::Deny as i32);
    // The DAS only grants its policy's originators: nothing for a stranger.
    dac.dac_enabled = Some(true);
    s.prp
        .put_resource(pb::PutResourceRequest {
            role_ids: Vec::new(),
            originator: "CAdmin".into(),
            resource: Some(dac),
        })
        .await
        .expect("enable DAC");
    let stranger = until(
        &mut s.pdp,
        &request("Cstranger", "frontDoor", pb::Operation::Retrieve),
        |d| d.summary.contains("granted nothing"),
    )
    .await;
    assert!(!is_permit(&stranger));
}

/// TS-0003 7.3.2.2 step 4.1.1: tokens returned by the DAS are verified and
/// cached, and permit the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tokens_are_verified_and_permit_7_3_2_2() {
    let mut s = stack("direct-token").await;
    let courier = request("Ccourier", "frontDoor", pb::Operation::Retrieve);
    let d = until(&mut s.pdp, &courier, is_permit).await;
    assert!(permitted_by(&d).starts_with("token:"), "{d:?}");
    // The cached token serves the next request too.
    let again = decide(&mut s.pdp, courier.clone()).await;
    assert!(is_permit(&again), "{again:?}");
    // It grants RETRIEVE only.
    let delete = decide(
        &mut s.pdp,
        request("Ccourier", "frontDoor", pb::Operation::Delete),
    )
    .await;
    assert!(!is_permit(&delete));
}

fn with_token_request(mut r: pb::DecisionRequest) -> pb::DecisionRequest {
    r.token_request_indicator = true;
    r
}

async fn issue_token(
    das: &mut DynamicAuthorizationServerClient<Channel>,
    dreq: pb::DasRequest,
    secret: &str,
) -> Result<pb::IssueTokenResponse, tonic::Status> {
    let mut call = tonic::Request::new(pb::IssueTokenRequest {
        das_request: Some(dreq),
        secured_das_request: String::new(),
    });
    call.metadata_mut().insert(
        "authorization",
        format!("Bearer {secret}").parse().expect("metadata"),
    );
    das.issue_token(call).await.map(|r| r.into_inner())
}

/// TS-0003 7.3.2.3: denied with Token Request Information, the originator
/// gets a token from the DAS, and the retry is permitted with the token,
/// then with its Token-ID, then with the Local-Token-ID the PDP assigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indirect_flow_token_then_token_id_then_local_token_id_7_3_2_3() {
    let mut s = stack("indirect").await;
    let unlock = request("Cguest", "backDoor", pb::Operation::Update);
    let denied = decide(&mut s.pdp, with_token_request(unlock.clone())).await;
    assert!(!is_permit(&denied));
    let tqf = denied
        .token_request_info
        .expect("token request information");
    assert_eq!(tqf.das_info.len(), 1);
    assert_eq!(tqf.das_info[0].uri, s.das_url.trim_end_matches('/'));
    let dreq = tqf.das_info[0].das_request.clone().expect("dreq");
    // Absolute, like `or` (7.3.2.3 steps 2.2 and 3).
    assert_eq!(
        dreq.targeted_resource_id,
        "//home.example/mn-cse-123456/backDoor"
    );
    assert_eq!(dreq.originator, "//home.example/mn-cse-123456/Cguest");

    // The DAS authenticates the originator (7.3.2.3 step 3).
    let err = issue_token(&mut s.das, dreq.clone(), "wrong")
        .await
        .expect_err("wrong secret");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let issued = issue_token(&mut s.das, dreq, GUEST_SECRET)
        .await
        .expect("tokens");
    assert_eq!(issued.tokens.len(), 1);
    let token_id = issued.token_ids[0].clone();
    assert!(token_id.ends_with("@das.home.example"), "{token_id}");

    // Retry with the token (the PDP may still be loading the DAS's keys).
    let mut with_token = unlock.clone();
    with_token.tokens = issued.tokens.clone();
    let ok = until(&mut s.pdp, &with_token, is_permit).await;
    let assigned = ok.assigned_token_ids.clone();
    assert_eq!(assigned.len(), 1, "{ok:?}");
    assert_eq!(assigned[0].token_id, token_id);
    // With the Token-ID: fetched from the DAS its FQDN names (step 5), the
    // PDP presenting the hosting CSE's secret; without it the DAS refuses.
    let mut with_id = unlock.clone();
    with_id.token_ids = vec![token_id.clone()];
    let ok = decide(&mut s.pdp, with_id).await;
    assert!(is_permit(&ok), "{ok:?}");
    let get = || pb::GetDasTokensRequest {
        hosting_cse_id: HOSTING_CSE.into(),
        token_ids: vec![token_id.clone()],
    };
    let err = s.das.get_tokens(get()).await.expect_err("no secret");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let mut call = tonic::Request::new(get());
    call.metadata_mut().insert(
        "authorization",
        format!("Bearer {CSE_SECRET}").parse().expect("metadata"),
    );
    let got = s.das.get_tokens(call).await.expect("with the secret");
    assert_eq!(got.into_inner().tokens, issued.tokens);
    // With the Local-Token-ID.
    let mut with_local = unlock.clone();
    with_local.local_token_ids = vec![assigned[0].local_token_id.clone()];
    let ok = decide(&mut s.pdp, with_local).await;
    assert!(is_permit(&ok), "{ok:?}");
    // The token grants UPDATE on backDoor only.
    let mut elsewhere = request("Cguest", "frontDoor", pb::Operation::Update);
    elsewhere.tokens = issued.tokens.clone();
    let d = decide(&mut s.pdp, elsewhere).await;
    assert!(!is_permit(&d), "{d:?}");
}

/// TS-0003 7.3.2.6.2: a DAS configured to encrypt to the hosting CSE
/// issues Nested Sign-then-encrypt tokens (a JWE whose header says `cty`
/// JWT, its plaintext the signed JWS), which the PDP decrypts with the
/// CSE's key: the flow permits as with a JWS, by the token, its Token-ID
/// and its Local-Token-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indirect_flow_with_a_nested_sign_then_encrypt_token_7_3_2_6_2() {
    use base64::Engine;
    let mut s = stack_with("indirect-jwe", true).await;
    let unlock = request("Cguest", "backDoor", pb::Operation::Update);
    let denied = decide(&mut s.pdp, with_token_request(unlock.clone())).await;
    let dreq = denied.token_request_info.expect("tqf").das_info[0]
        .das_request
        .clone()
        .expect("dreq");
    let issued = issue_token(&mut s.das, dreq, GUEST_SECRET)
        .await
        .expect("tokens");
    let jwe = issued.tokens[0].clone();
    let parts: Vec<&str> = jwe.split('.').collect();
    assert_eq!(parts.len(), 5, "a JWE compact serialization: {jwe}");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .expect("base64url"),
    )
    .expect("JSON");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["cty"], "JWT", "nested: the plaintext is a JWT");
    assert_eq!(header["alg"], "ECDH-ES+A256KW");
    assert_eq!(header["enc"], "A256GCM");
    assert_eq!(header["kid"], "mn-cse-enc-1");

    let mut with_token = unlock.clone();
    with_token.tokens = vec![jwe.clone()];
    let ok = until(&mut s.pdp, &with_token, is_permit).await;
    let assigned = ok.assigned_token_ids.clone();
    assert_eq!(assigned.len(), 1, "{ok:?}");
    let mut with_id = unlock.clone();
    with_id.token_ids = issued.token_ids.clone();
    let ok = decide(&mut s.pdp, with_id).await;
    assert!(is_permit(&ok), "{ok:?}");
    let mut with_local = unlock.clone();
    with_local.local_token_ids = vec![assigned[0].local_token_id.clone()];
    let ok = decide(&mut s.pdp, with_local).await;
    assert!(is_permit(&ok), "{ok:?}");

    // The same token tampered with (another first ciphertext character)
    // does not decrypt.
    let mut bad = parts.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let first = if bad[3].starts_with('A') { "B" } else { "A" };
    bad[3].replace_range(..1, first);
    let mut tampered = unlock.clone();
    tampered.tokens = vec![bad.join(".")];
    let d = decide(&mut s.pdp, tampered).await;
    assert!(!is_permit(&d), "{d:?}");
}

/// TS-0003 7.3.2.3 step 2.2: the hosting CSE may apply ESData to the
/// Role-IDs so the originator does not see them. With a DAS that publishes
/// a request key, Token Request Information carries `sdr` (the `dreq`
/// encrypted to the DAS, Role-IDs included) and a `dreq` without `rfa`;
/// `IssueToken` with the `sdr` grants the role, with the clear `dreq` it
/// grants nothing (no Role-ID of the ACPs was named), and the role's token
/// permits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indirect_flow_with_a_secured_das_request_hides_the_role_ids_7_3_2_3() {
    let mut s = stack_full("indirect-sdr", false, true).await;
    // backDoor also links an ACP that grants Update to the locksmith role.
    s.prp
        .create_acp(pb::CreateAcpRequest {
            role_ids: Vec::new(),
            originator: "CAdmin".into(),
            acp: Some(acp("acpLocksmith", LOCKSMITH, 4)),
        })
        .await
        .expect("acp");
    let revision = s
        .prp
        .put_resource(pb::PutResourceRequest {
            role_ids: Vec::new(),
            originator: "CAdmin".into(),
            resource: Some(resource("backDoor", &["acpOwner", "acpLocksmith"])),
        })
        .await
        .expect("resource")
        .into_inner()
        .revision;
    caught_up(&mut s.pdp, revision).await;

    let unlock = request("Cguest", "backDoor", pb::Operation::Update);
    // The PDP reads the DAS's request key with its key set, which it may
    // still be fetching.
    let denied = until(&mut s.pdp, &with_token_request(unlock.clone()), |d| {
        d.token_request_info
            .as_ref()
            .is_some_and(|t| !t.das_info[0].secured_das_request.is_empty())
    })
    .await;
    assert!(!is_permit(&denied));
    let info = denied.token_request_info.expect("tqf").das_info[0].clone();
    let dreq = info.das_request.clone().expect("dreq");
    assert!(dreq.role_ids_from_acps.is_empty(), "hidden: {dreq:?}");
    assert_eq!(dreq.originator, "//home.example/mn-cse-123456/Cguest");
    let sdr = info.secured_das_request.clone();
    assert_eq!(
        sdr.split('.').count(),
        5,
        "a JWE compact serialization: {sdr}"
    );
    assert!(!sdr.contains(LOCKSMITH));

    // What the DAS reads: the whole dreq, decrypted with its private key
    // (the same key file the DAS is configured with).
    let keys = authz_core::jwe::DecryptionKeys::from_jwk_set(
        &std::fs::read_to_string(keys_dir().join("das-request-keys.json")).expect("keys"),
    )
    .expect("jwk set");
    let plain = authz_core::jwe::decrypt(&sdr, &keys).expect("decrypts");
    let inner: serde_json::Value = serde_json::from_slice(&plain.plaintext).expect("json");
    assert_eq!(inner["rfa"], serde_json::json!([LOCKSMITH]), "{inner}");
    assert_eq!(inner["or"], "//home.example/mn-cse-123456/Cguest");
    assert_eq!(inner["trid"], "//home.example/mn-cse-123456/backDoor");
    assert_eq!(inner["op"], pb::Operation::Update as i32);

    // The clear dreq names no role of the ACPs: the DAS grants none.
    let clear = issue_token(&mut s.das, dreq, GUEST_SECRET)
        .await
        .expect("answer");
    assert!(clear.tokens.is_empty(), "{clear:?}");

    // The secured request: a token with the role, which permits.
    let issued = issue_secured(&mut s.das, &sdr, GUEST_SECRET)
        .await
        .expect("tokens");
    assert_eq!(issued.tokens.len(), 1, "{issued:?}");
    let mut with_token = unlock.clone();
    with_token.tokens = issued.tokens.clone();
    let ok = until(&mut s.pdp, &with_token, is_permit).await;
    assert_eq!(permitted_by(&ok), "acpLocksmith", "{ok:?}");

    // Another client cannot present the guest's sdr, nor can anyone
    // present one the DAS cannot decrypt.
    let err = issue_secured(&mut s.das, &sdr, "wrong")
        .await
        .expect_err("unauthenticated");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = issue_secured(&mut s.das, "a.b.c.d.e", GUEST_SECRET)
        .await
        .expect_err("garbage");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("secured_das_request"), "{err:?}");
}

async fn issue_secured(
    das: &mut DynamicAuthorizationServerClient<Channel>,
    sdr: &str,
    secret: &str,
) -> Result<pb::IssueTokenResponse, tonic::Status> {
    let mut call = tonic::Request::new(pb::IssueTokenRequest {
        das_request: None,
        secured_das_request: sdr.to_owned(),
    });
    call.metadata_mut().insert(
        "authorization",
        format!("Bearer {secret}").parse().expect("metadata"),
    );
    das.issue_token(call).await.map(|r| r.into_inner())
}

/// `authz decide` as a process through the same flow: `--tqi` prints the
/// Token Request Information (`tqf`, TS-0003 7.3.2.3 step 2), `--token`
/// the Local-Token-ID assigned (`ati`, step 7.1), `--local-token-id` and
/// `--token-id` are permitted, and a malformed token is exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_carries_tokens_and_prints_tqf_and_ati_7_3_2_3() {
    let mut s = stack("decide-tokens").await;
    let request = s.dir.path().join("unlock.json");
    std::fs::write(&request, r#"{"fr": "Cguest", "to": "backDoor", "op": 3}"#).expect("write");
    let decide_cli = |extra: &[&str]| {
        let mut args = vec![
            "decide",
            "--pdp",
            &s.pdp_url,
            "-r",
            request.to_str().expect("path"),
        ];
        args.extend_from_slice(extra);
        let out = run_within(
            std::process::Command::new(env!("CARGO_BIN_EXE_authz")).args(&args),
            HANG_LIMIT,
        );
        let json = serde_json::from_slice::<serde_json::Value>(&out.stdout).ok();
        (
            out.status.code(),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = decide_cli(&["--tqi"]);
    assert_eq!(code, Some(0), "{err}");
    let out = out.expect("JSON");
    assert_eq!(out["dec"], 2, "{out}");
    assert_eq!(
        out["tqf"]["dasi"][0]["uri"],
        s.das_url.trim_end_matches('/'),
        "{out}"
    );
    assert_eq!(
        out["tqf"]["dasi"][0]["dreq"]["or"], "//home.example/mn-cse-123456/Cguest",
        "{out}"
    );
    let (code, out, _) = decide_cli(&[]);
    assert_eq!(code, Some(0));
    assert!(
        out.expect("JSON").get("tqf").is_none(),
        "no tqf without --tqi"
    );

    let dreq = decide(&mut s.pdp, with_token_request(request_cguest_unlock()))
        .await
        .token_request_info
        .and_then(|t| t.das_info.into_iter().next())
        .and_then(|d| d.das_request)
        .expect("dreq");
    let issued = issue_token(&mut s.das, dreq, GUEST_SECRET)
        .await
        .expect("tokens");
    let token = issued.tokens[0].clone();
    // The PDP may still be loading the DAS's keys.
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let (code, out, err) = decide_cli(&["--token", &token]);
        assert_eq!(code, Some(0), "{err}");
        let out = out.expect("JSON");
        if out["dec"] == 1 || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(out["dec"], 1, "{out}");
    assert_eq!(out["ati"][0]["tkid"], issued.token_ids[0].as_str(), "{out}");
    let lti = out["ati"][0]["lti"].as_str().expect("lti").to_owned();
    let (_, out, _) = decide_cli(&["--local-token-id", &lti]);
    assert_eq!(out.expect("JSON")["dec"], 1);
    let (_, out, _) = decide_cli(&["--token-id", &issued.token_ids[0]]);
    assert_eq!(out.expect("JSON")["dec"], 1);
    let (code, _, err) = decide_cli(&["--token", "not-a-token"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tokens[0]"), "{err}");
}

fn request_cguest_unlock() -> pb::DecisionRequest {
    request("Cguest", "backDoor", pb::Operation::Update)
}

/// `jws` as the plaintext of a Nested Sign-then-encrypt JWE to the demo
/// key of the hosting CSE (`examples/das/keys/cse-encryption-public.jwk.json`).
fn encrypted_to_the_cse(jws: &str) -> String {
    let public: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(keys_dir().join("cse-encryption-public.jwk.json")).expect("read"),
    )
    .expect("JSON");
    let key = authz_core::jwe::EncryptionKey::from_jwk(&public, "jwk").expect("key");
    authz_core::jwe::encrypt(
        jws.as_bytes(),
        &key,
        authz_core::jwe::ContentEncryption::A128Gcm,
        true,
    )
    .expect("encrypt")
}

fn signer() -> TokenSigner {
    let pem = std::fs::read(keys_dir().join("es256-private.pem")).expect("key");
    TokenSigner::from_pem(TokenAlgorithm::Es256, "das-es256-1", &pem).expect("signer")
}

fn claims(holder: &str, from_now_s: (i64, i64), audience: &str, ris: &str) -> TokenClaims {
    let now = Utc::now();
    let mut c = TokenClaims::new(
        format!(
            "forged{}@das.home.example",
            now.timestamp_nanos_opt().unwrap_or(0)
        ),
        DAS_ISSUER,
        holder,
        now + chrono::Duration::seconds(from_now_s.0),
        now + chrono::Duration::seconds(from_now_s.1),
    );
    c.audience = vec![audience.to_owned()];
    c.permissions.pm = vec![TokenPermission {
        ris: vec![ris.to_owned()],
        pv: Some(
            serde_json::from_value(serde_json::json!({"acr": [{"acor": [holder], "acop": 4}]}))
                .expect("pv"),
        ),
        rids: Vec::new(),
    }];
    c
}

/// TS-0003 7.3.2.5, 7.3.2.6.2 and Decision 9: each misuse of a well-formed
/// token is a Deny that names its reason; a token that is not a oneM2M JWT
/// is an invalid argument naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_misused_tokens_are_denied_with_their_reason_7_3_2_6() {
    let mut s = stack("attacks").await;
    let guest = "//home.example/mn-cse-123456/Cguest";
    let good = signer()
        .sign(&claims(guest, (-10, 600), HOSTING_CSE, "backDoor"))
        .expect("sign");
    let unlock = request("Cguest", "backDoor", pb::Operation::Update);
    // A correctly signed token permits once the PDP trusts the DAS's keys.
    let mut r = unlock.clone();
    r.tokens = vec![good.clone()];
    until(&mut s.pdp, &r, is_permit).await;

    let other_key = {
        let pem = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../core/tests/keys/es256-other-private.pem"),
        )
        .expect("other key");
        TokenSigner::from_pem(TokenAlgorithm::Es256, "das-es256-1", &pem).expect("signer")
    };
    let unknown_kid = {
        let pem = std::fs::read(keys_dir().join("es256-private.pem")).expect("key");
        TokenSigner::from_pem(TokenAlgorithm::Es256, "no-such-kid", &pem).expect("signer")
    };
    // The payload of another token of the same DAS (one granting more:
    // every operation, on frontDoor) under `good`'s header and signature:
    // well-formed, so it is judged, and the signature does not cover it.
    let tampered = {
        let mut more = claims(guest, (-10, 600), HOSTING_CSE, "frontDoor");
        more.permissions.pm[0].pv = Some(
            serde_json::from_value(serde_json::json!({"acr": [{"acor": [guest], "acop": 63}]}))
                .expect("pv"),
        );
        let other = signer().sign(&more).expect("sign");
        let good: Vec<&str> = good.split('.').collect();
        let other: Vec<&str> = other.split('.').collect();
        format!("{}.{}.{}", good[0], other[1], good[2])
    };
    // A JWS whose payload is base64url but not JSON (bytes 0, 0, 0): it
    // passes the request's shape check (3 base64url parts) and is refused
    // by the token parser.
    let not_json = {
        let good: Vec<&str> = good.split('.').collect();
        format!("{}.AAAA.{}", good[0], good[2])
    };
    // Decision 9: a token that is not syntactically a oneM2M JWT is the
    // originator's invalid argument (4000, INVALID_ARGUMENT naming the
    // field); every other failure of verification is a Deny (4103) whose
    // summary names the reason.
    enum Expect<'a> {
        Deny(&'a str),
        InvalidArgument(&'a str),
    }
    use Expect::{Deny, InvalidArgument};
    let oversized = format!("{good}{}", "A".repeat(20_000));
    let oversized_reason = format!(
        "token is {} bytes, more than the {} allowed",
        oversized.len(),
        authz_core::token::DEFAULT_MAX_TOKEN_SIZE
    );
    let cases: Vec<(&str, String, &str, Expect)> = vec![
        (
            "alg none",
            encode_unsecured(&claims(guest, (-10, 600), HOSTING_CSE, "backDoor")).expect("none"),
            "Cguest",
            Deny("unsecured token (alg none)"),
        ),
        (
            "signed by an unknown key",
            other_key
                .sign(&claims(guest, (-10, 600), HOSTING_CSE, "backDoor"))
                .expect("sign"),
            "Cguest",
            Deny("signature does not verify"),
        ),
        (
            "unknown kid",
            unknown_kid
                .sign(&claims(guest, (-10, 600), HOSTING_CSE, "backDoor"))
                .expect("sign"),
            "Cguest",
            Deny("no key \"no-such-kid\""),
        ),
        (
            "expired",
            signer()
                .sign(&claims(guest, (-600, -10), HOSTING_CSE, "backDoor"))
                .expect("sign"),
            "Cguest",
            Deny("token expired at"),
        ),
        (
            "not yet valid",
            signer()
                .sign(&claims(guest, (300, 600), HOSTING_CSE, "backDoor"))
                .expect("sign"),
            "Cguest",
            Deny("not valid before"),
        ),
        (
            "wrong audience",
            signer()
                .sign(&claims(
                    guest,
                    (-10, 600),
                    "//other.example/in-cse",
                    "backDoor",
                ))
                .expect("sign"),
            "Cguest",
            Deny("does not include the hosting CSE"),
        ),
        (
            "replayed by another originator",
            good.clone(),
            "Cmallory",
            Deny("is not the originator"),
        ),
        (
            "tampered payload",
            tampered,
            "Cguest",
            Deny("signature does not verify"),
        ),
        // Too large to parse: refused by size alone, a Deny (the size is no
        // syntax error of the token).
        ("oversized", oversized, "Cguest", Deny(&oversized_reason)),
        (
            "payload not JSON",
            not_json,
            "Cguest",
            InvalidArgument("malformed token: payload is not JSON"),
        ),
        // `good` encrypted to a CSE key this PDP does not hold (TS-0003
        // 7.3.2.6.2; this stack's PDP has an empty key set).
        (
            "encrypted to a key the PDP lacks",
            encrypted_to_the_cse(&good),
            "Cguest",
            Deny("no decryption key \"mn-cse-enc-1\""),
        ),
    ];
    for (name, token, originator, expect) in cases {
        let mut r = request(originator, "backDoor", pb::Operation::Update);
        r.tokens = vec![token];
        let answer = s.pdp.decide(r).await;
        match (expect, answer) {
            (Deny(reason), Ok(d)) => {
                let d = d.into_inner();
                assert!(!is_permit(&d), "{name}: {d:?}");
                // The stored policies name neither Cguest nor Cmallory on
                // backDoor: the Deny keeps their status (Decision 10).
                assert_eq!(
                    d.status,
                    pb::AuthorizationStatus::NotApplicable as i32,
                    "{name}: {d:?}"
                );
                assert!(
                    d.summary.starts_with("DENY (token): tokens[0] rejected: ")
                        && d.summary.contains(reason),
                    "{name}: a Deny naming '{reason}': {}",
                    d.summary
                );
            }
            (InvalidArgument(reason), Err(status)) => {
                assert_eq!(
                    status.code(),
                    tonic::Code::InvalidArgument,
                    "{name}: {status:?}"
                );
                assert!(
                    status.message().starts_with("tokens[0]: ")
                        && status.message().contains(reason),
                    "{name}: an invalid tokens[0] naming '{reason}': {status:?}"
                );
            }
            (Deny(reason), Err(status)) => {
                panic!("{name}: expected a Deny naming '{reason}', got {status:?}")
            }
            (InvalidArgument(reason), Ok(d)) => panic!(
                "{name}: expected INVALID_ARGUMENT naming '{reason}', got {:?}",
                d.into_inner()
            ),
        }
    }
    // A valid token for other resources grants nothing here (ris).
    let mut r = unlock.clone();
    r.tokens = vec![
        signer()
            .sign(&claims(guest, (-10, 600), HOSTING_CSE, "frontDoor"))
            .expect("sign"),
    ];
    let d = decide(&mut s.pdp, r).await;
    assert!(!is_permit(&d), "{d:?}");
    // Denied with its own reason, naming the resource and `ris` (7.3.2.5).
    assert!(
        d.summary.contains("grants nothing on") && d.summary.contains("ris"),
        "{}",
        d.summary
    );
    // An unknown Local-Token-ID.
    let mut r = unlock.clone();
    r.local_token_ids = vec!["lt999".into()];
    let d = decide(&mut s.pdp, r).await;
    assert!(!is_permit(&d) && d.summary.contains("lt999"), "{d:?}");
}

/// An unreachable DAS: a Deny that says why (TS-0003 7.1.4: indeterminate
/// is Deny); the PDP's DAS deadline bounds the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn das_down_denies_within_the_deadline_with_the_reason() {
    let mut s = stack("das-down").await;
    // Stop the DAS process (SIGKILL).
    drop(s._procs.remove(2));
    let visitor = request("Cvisitor", "frontDoor", pb::Operation::Retrieve);
    let d = decide(&mut s.pdp, visitor).await;
    assert!(!is_permit(&d), "{d:?}");
    assert!(
        d.summary.contains("DAS"),
        "the reason names the DAS: {}",
        d.summary
    );
    // Indeterminate, not a settled Deny (TS-0003 7.1.4, Decision 10): the
    // status says so and names the DAS, and the summary's label agrees.
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{d:?}"
    );
    assert!(
        d.missing
            .iter()
            .any(|m| m.attribute == "dynamic_authorization" && !m.name.is_empty()),
        "{d:?}"
    );
    assert!(
        d.summary.starts_with("DENY (missing attribute): "),
        "{}",
        d.summary
    );
}

/// `authz up --das-config` with a DAS that authenticates its consultants
/// (TS-0003 7.3.2.2): the in-process PDP consults as the hosting CSE with
/// that CSE's secret from the DAS configuration, so the direct grant
/// permits; a caller without the secret is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_pdp_presents_its_consultant_secret_7_3_2_2() {
    let dir = tempdir("up-das-secret");
    let config = das_config(dir.path(), false);
    let data = dir.path().join("data");
    let (_up, url) = start_up(
        &data,
        &["--no-demo", "--das-config", config.to_str().expect("path")],
        &[],
    );
    let url = url.trim_end_matches('/').to_owned();
    let mut prp = PolicyRetrievalPointClient::new(channel(&url).await);
    let revision = door_lock_with_dac(&mut prp, &url).await;
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    caught_up(&mut pdp, revision).await;
    let visitor = request("Cvisitor", "frontDoor", pb::Operation::Retrieve);
    let d = until(&mut pdp, &visitor, is_permit).await;
    assert!(permitted_by(&d).starts_with("dai:"), "{d:?}");

    let mut das = DynamicAuthorizationServerClient::new(channel(&url).await);
    let err = das
        .consult(pb::ConsultRequest {
            hosting_cse_id: HOSTING_CSE.into(),
            das_request: Some(pb::DasRequest {
                originator: "Cvisitor".into(),
                operation: pb::Operation::Retrieve as i32,
                targeted_resource_id: "frontDoor".into(),
                ..Default::default()
            }),
        })
        .await
        .expect_err("no secret");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
}

/// `authz up --das-config` wires its PDP to its PIP, whose token repository
/// holds the Local-Token-IDs the PDP assigns (TS-0003 7.3.2.3 step 6.2;
/// TS-0001 7.1.16: unique per hosting CSE, not per process): the ID
/// reported with the guest's token (step 7.1) still names it after `authz
/// up` restarts on the same data directory (step 7.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_local_token_ids_survive_a_restart_7_3_2_3() {
    let dir = tempdir("up-lti-restart");
    let config = das_config(dir.path(), false);
    let data = dir.path().join("data");
    let args = ["--no-demo", "--das-config", config.to_str().expect("path")];
    let (up, url) = start_up(&data, &args, &[]);
    let url = url.trim_end_matches('/').to_owned();
    let mut prp = PolicyRetrievalPointClient::new(channel(&url).await);
    let revision = door_lock_with_dac(&mut prp, &url).await;
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    caught_up(&mut pdp, revision).await;
    let unlock = request("Cguest", "backDoor", pb::Operation::Update);
    let denied = decide(&mut pdp, with_token_request(unlock.clone())).await;
    let dreq = denied
        .token_request_info
        .and_then(|t| t.das_info.into_iter().next())
        .and_then(|d| d.das_request)
        .expect("dreq");
    let mut das = DynamicAuthorizationServerClient::new(channel(&url).await);
    let issued = issue_token(&mut das, dreq, GUEST_SECRET)
        .await
        .expect("tokens");
    let mut with_token = unlock.clone();
    with_token.tokens = issued.tokens;
    let ok = until(&mut pdp, &with_token, is_permit).await;
    assert_eq!(ok.assigned_token_ids.len(), 1, "{ok:?}");
    let lti = ok.assigned_token_ids[0].local_token_id.clone();
    drop(up);

    let (_up, url) = start_up(&data, &args, &[]);
    let mut pdp = PolicyDecisionPointClient::new(channel(url.trim_end_matches('/')).await);
    let mut with_local = unlock;
    with_local.local_token_ids = vec![lti];
    // Until the restarted PDP has its snapshot and the DAS's keys.
    let ok = until(&mut pdp, &with_local, is_permit).await;
    assert!(ok.assigned_token_ids.is_empty(), "{ok:?}");
}

/// `authz up --das-config --advertise-url URL`: the DAS is named by URL
/// (not by the listen address) in Token Request Information and in the DACs
/// it serves, while the PDP reaches it on the listener: a DAC whose `dap`
/// is URL is consulted and grants, although URL itself does not resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_names_its_das_by_the_advertised_url() {
    const ADVERTISED: &str = "http://authz.home.example.invalid:7171";
    let dir = tempdir("up-das-advertised");
    let config = das_config(dir.path(), false);
    let data = dir.path().join("data");
    let (_up, url) = start_up(
        &data,
        &[
            "--no-demo",
            "--das-config",
            config.to_str().expect("path"),
            "--advertise-url",
            &format!("{ADVERTISED}/"),
        ],
        &[],
    );
    let mut prp = PolicyRetrievalPointClient::new(channel(&url).await);
    let revision = door_lock_with_dac(&mut prp, ADVERTISED).await;
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    caught_up(&mut pdp, revision).await;
    let visitor = request("Cvisitor", "frontDoor", pb::Operation::Retrieve);
    let d = until(&mut pdp, &visitor, is_permit).await;
    assert!(permitted_by(&d).starts_with("dai:"), "{d:?}");

    let unlock = request("Cguest", "backDoor", pb::Operation::Update);
    let denied = decide(&mut pdp, with_token_request(unlock)).await;
    assert!(!is_permit(&denied));
    let tqf = denied
        .token_request_info
        .expect("token request information");
    assert_eq!(tqf.das_info.len(), 1);
    assert_eq!(tqf.das_info[0].uri, ADVERTISED);
}

/// --advertise-url is for the DAS of --das-config, and must be a URI.
#[test]
fn advertise_url_needs_a_das_config_and_a_uri() {
    let dir = tempdir("up-advertise-bad");
    let data = dir.path().to_str().expect("path");
    let up = |extra: &[&str]| {
        let mut args = vec!["up", "--listen", "127.0.0.1:0", "--metrics", "off"];
        args.extend_from_slice(&["--data-dir", data]);
        args.extend_from_slice(extra);
        run_within(
            std::process::Command::new(env!("CARGO_BIN_EXE_authz")).args(args),
            HANG_LIMIT,
        )
    };
    let out = up(&["--advertise-url", "http://authz.example:7171"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--das-config"), "{err}");

    let config = das_config(dir.path(), false);
    let out = up(&[
        "--das-config",
        config.to_str().expect("path"),
        "--advertise-url",
        "not a url",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--advertise-url not a url: not a URI"),
        "{err}"
    );
}

/// Runs `authz ARGS` (logs off) to its exit, at most `limit`; its exit code
/// and standard error. A process still running then (a server that
/// started) is killed and the test fails.
fn run_to_exit(args: &[&str], limit: Duration) -> (Option<i32>, String) {
    use std::io::Read;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_authz"))
        .args(args)
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn authz");
    let mut proc = Proc(child);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = proc.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "authz {args:?} still running after {limit:?}: it started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut stderr) = proc.0.stderr.take() {
        stderr.read_to_string(&mut err).expect("stderr");
    }
    (status.code(), err)
}

/// A DAS configuration that does not load (here a granted role that is
/// not a Role-ID `name@fqdn`) stops `authz das` and `authz up
/// --das-config` with exit code 2 and an error naming the file and the
/// field, before anything is written to the data directory.
#[test]
fn a_das_config_that_does_not_load_stops_before_the_data_directory() {
    let dir = tempdir("das-foreign-role");
    let path = das_config(dir.path(), false);
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
    config["policies"][2]["grant"]["roles"] = serde_json::json!(["guest"]);
    std::fs::write(&path, config.to_string()).expect("write");
    let config = path.to_str().expect("path");
    let data = dir.path().join("data");
    let data_dir = data.to_str().expect("path");
    for args in [
        vec![
            "das",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config,
            "--data-dir",
            data_dir,
        ],
        vec![
            "up",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "off",
            "--data-dir",
            data_dir,
            "--das-config",
            config,
        ],
    ] {
        let (code, err) = run_to_exit(&args, Duration::from_secs(30));
        assert_eq!(code, Some(2), "authz {}: {err}", args[0]);
        for part in [
            config,
            "policies[2].grant.roles[0]",
            "'guest' is not a Role-ID (name@fqdn)",
        ] {
            assert!(
                err.contains(part),
                "authz {}: {part:?} not in {err}",
                args[0]
            );
        }
        assert!(!data.exists(), "authz {} wrote {data_dir}", args[0]);
    }
}

/// TS-0003 7.3.2.3 steps 6.2 and 7.2 with a Token-ID a DAS reused for
/// another holder's token (TS-0001 7.1.15 forbids it), at a PDP with a PIP.
/// The PIP's record of the first token's assignment reaches the PDP's watch
/// before or after the PDP cached the token (after, the PDP drops the
/// object, to fetch it at its next use); either way the other holder must
/// be told no Local-Token-ID, which would stand for the first token's
/// rights. Ten rounds, so that both orders come up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_token_id_is_never_told_the_first_tokens_local_token_id_7_3_2_3() {
    let mut s = stack("reused-jti").await;
    let guest = "//home.example/mn-cse-123456/Cguest";
    let other = "//home.example/mn-cse-123456/Cother";
    let mut warm = request("Cguest", "backDoor", pb::Operation::Update);
    warm.tokens = vec![
        signer()
            .sign(&claims(guest, (-10, 600), HOSTING_CSE, "backDoor"))
            .expect("sign"),
    ];
    until(&mut s.pdp, &warm, is_permit).await;
    for round in 0..10 {
        let first = claims(guest, (-10, 600), HOSTING_CSE, "backDoor");
        let mut reused = claims(other, (-10, 600), HOSTING_CSE, "backDoor");
        reused.token_id = first.token_id.clone();
        let mut r = request("Cguest", "backDoor", pb::Operation::Update);
        r.tokens = vec![signer().sign(&first).expect("sign")];
        let d = s.pdp.decide(r).await.expect("decide").into_inner();
        assert!(is_permit(&d), "round {round}: {d:?}");
        assert_eq!(d.assigned_token_ids.len(), 1, "round {round}: {d:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut r = request("Cother", "backDoor", pb::Operation::Update);
        r.tokens = vec![signer().sign(&reused).expect("sign")];
        let d = s.pdp.decide(r).await.expect("decide").into_inner();
        assert!(is_permit(&d), "round {round}: by value: {d:?}");
        assert!(
            d.assigned_token_ids.is_empty(),
            "round {round}: the first token's Local-Token-ID handed to another holder: {d:?}"
        );
    }
}
