//! Whatever a client sends, the DAS answers with a proper status and a
//! refused call stores no token (developers' guide): arbitrary `Consult`,
//! `IssueToken` and `GetTokens` requests (empty, white-space, 40 000-byte
//! and unicode IDs, unknown operations and resource types, junk and
//! out-of-range `rts` and `ppl`, junk IP addresses, NaN circles, malformed
//! Role-IDs and Token-IDs), from the consultant with and without its
//! secret, from unknown CSEs, and from clients with right, wrong,
//! malformed and non-ASCII `authorization` metadata, against a real DAS
//! (redb store, signing keys) over gRPC. Every answer is OK or a proper
//! status, never INTERNAL or UNKNOWN (a panicking handler or an HTTP/2
//! error would be one of those); INVALID_ARGUMENT carries a `BadRequest`
//! naming at least one field; an answer other than OK leaves the stored
//! tokens as they were; every token answered is a signed JWS; the DAS keeps
//! serving; and after a restart on the same store it answers the issued
//! tokens as before.

use std::path::Path;

use authz_das::DasConfig;
use authz_proto::pb;
use authz_proto::pb::dynamic_authorization_server_client::DynamicAuthorizationServerClient;
use authz_tests::arbitrary::{hostile_f64, mostly, one_of, shown, temp_dir};
use authz_tests::serving::{Served, serve};
use chrono::Utc;
use proptest::prelude::*;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const HCSE: &str = "//home.example/mn-cse-123456";
const ISSUER: &str = "//home.example/mn-cse-123456/CDas";
const GUEST_SECRET: &str = "guest-secret-0123456789";
const CSE_SECRET: &str = "hosting-cse-secret-0123456789";

fn key(kid: &str, alg: &str, name: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/keys");
    json!({
        "kid": kid, "alg": alg,
        "private_key_pem": dir.join(format!("{name}-private.pem")),
        "public_key_pem": dir.join(format!("{name}-public.pem")),
    })
}

/// Policies of every grant mode, with time window, IP and role conditions;
/// one consultant with a secret and one without.
fn config() -> DasConfig {
    let v = json!({
        "issuer": ISSUER,
        "fqdn": "das.home.example",
        "sp_id": "//home.example",
        "cse_id": "/mn-cse-123456",
        "audience": [HCSE, "/in-cse"],
        "signing_keys": [key("k-es256", "ES256", "es256")],
        "clients": [{"originator": "Cguest", "secret": GUEST_SECRET}],
        "consultants": [{"cse_id": "/mn-cse-123456", "secret": CSE_SECRET}, "/in-cse"],
        "policies": [
            {"name": "guest-front-door",
             "rule": {"acor": ["Cguest"], "acop": 4, "acco": [{"actw": ["* * 0-23 * * * *"]}]},
             "targets": ["frontDoor", "/mn-cse-123456/lights/*"],
             "grant": {"acop": 4, "mode": "token"},
             "max_lifetime_s": 3600},
            {"name": "window-dynamic",
             "rule": {"acor": ["Cwindow", "Cguest"], "acop": 2},
             "targets": ["window"],
             "resource_types": [3],
             "grant": {"mode": "dynamic_acp"},
             "max_lifetime_s": 600},
            {"name": "guest-state",
             "rule": {"acor": ["Cguest"], "acop": 63},
             "targets": ["frontDoorState"],
             "grant": {"acop": 2, "roles": ["guest@das.home.example"], "mode": "both"},
             "max_lifetime_s": 1800},
            {"name": "lan-light",
             "rule": {"acor": ["all"], "acop": 2,
                      "acco": [{"acip": {"ipv4": ["127.0.0.0/8"], "ipv6": ["::1/128"]},
                                "aclr": {"accc": ["DE"]}}]},
             "targets": ["lanLight"],
             "grant": {"mode": "token"},
             "max_lifetime_s": 600}
        ],
        "request_decryption_keys": request_keys_file(),
        "max_request_skew_s": 86400
    });
    DasConfig::from_json(&v.to_string(), Path::new("robust-das.json"), Path::new("."))
        .expect("valid config")
}

/// The demo DAS's key pair for secured DAS requests (`sdr`).
fn request_keys_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/das/keys/das-request-keys.json")
        .to_string_lossy()
        .into_owned()
}

/// `plaintext` encrypted to the DAS's published request key.
fn encrypted_for_das(plaintext: &[u8]) -> String {
    let keys = authz_core::jwe::DecryptionKeys::from_jwk_set(
        &std::fs::read_to_string(request_keys_file()).expect("keys"),
    )
    .expect("jwk set");
    let key = keys.iter().next().expect("a key");
    authz_core::jwe::encrypt(
        plaintext,
        &key.into(),
        authz_core::jwe::ContentEncryption::A128Gcm,
        false,
    )
    .expect("encrypts")
}

/// `secured_das_request`: mostly none; else any `dreq` encrypted to the
/// DAS, encrypted text that is no `dreq`, or no JWE at all.
fn any_sdr() -> BoxedStrategy<String> {
    mostly(
        Just(String::new()),
        prop_oneof![
            any_das_request().prop_map(|d| {
                encrypted_for_das(
                    authz_proto::das_json::das_request_to_json(&d)
                        .to_string()
                        .as_bytes(),
                )
            }),
            any_text().prop_map(|t| encrypted_for_das(t.as_bytes())),
            any_text(),
            Just("a.b.c.d.e".to_owned()),
        ],
    )
}

fn any_text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("*".to_owned()),
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just("all".to_owned()),
        Just("a b".to_owned()),
        Just("//home.example".to_owned()),
        Just("@".to_owned()),
        Just("x".repeat(5_000)),
        Just("y".repeat(40_000)),
        Just("C\u{0}".to_owned()),
        Just("Cé\u{202e}".to_owned()),
        "\\PC{0,24}",
        "[a-zA-Z0-9/@.*_-]{0,40}",
    ]
    .boxed()
}

fn any_originator() -> BoxedStrategy<String> {
    mostly(
        one_of(&[
            "Cguest",
            "Cguest",
            "/mn-cse-123456/Cguest",
            "//home.example/mn-cse-123456/Cguest",
            "Cwindow",
            "/in-cse",
            "Cother",
        ]),
        prop_oneof![
            one_of(&["all", "C*", "//home.example", "g@das.home.example"]),
            any_text()
        ],
    )
}

fn any_target() -> BoxedStrategy<String> {
    mostly(
        one_of(&[
            "frontDoor",
            "window",
            "frontDoorState",
            "lanLight",
            "/mn-cse-123456/lights/l1",
            "//home.example/mn-cse-123456/window",
            "/in-cse/elsewhere",
        ]),
        prop_oneof![
            Just(format!("/mn-cse-123456/lights/{}", "l".repeat(40_000))),
            any_text()
        ],
    )
}

/// Role-IDs or Token-IDs: mostly none or well-formed (this DAS's or
/// another's).
fn any_scoped_ids() -> BoxedStrategy<Vec<String>> {
    let id = mostly(
        prop_oneof![
            one_of(&[
                "guest@das.home.example",
                "0123456789abcdef0123456789abcdef@das.home.example",
            ]),
            "[a-z0-9]{1,8}@[a-z]{1,8}\\.example",
        ],
        prop_oneof![
            one_of(&["guest@Das.home.example", "guest", "@x.example"]),
            any_text()
        ],
    );
    prop_oneof![Just(Vec::new()), prop::collection::vec(id, 1..3)].boxed()
}

/// m2m:absRelTimestamp text: mostly absent or valid, else out of range or
/// junk.
fn any_abs_rel() -> BoxedStrategy<String> {
    let now = Utc::now();
    mostly(
        prop_oneof![
            Just(String::new()),
            Just(authz_core::json::format_timestamp(now)),
            Just(authz_core::json::format_timestamp(
                now + chrono::TimeDelta::minutes(10)
            )),
            Just("600000".to_owned()),
            Just("-1000".to_owned()),
        ],
        prop_oneof![
            one_of(&[
                "19700101T000000",
                "20300101T000000",
                "99991231T235959",
                "20300230T000000",
                "9223372036854775807",
                "-9223372036854775808",
                "9223372036854775808",
                "1e3",
            ]),
            any::<i64>().prop_map(|n| n.to_string()),
            any_text(),
        ],
    )
}

fn any_das_request() -> BoxedStrategy<pb::DasRequest> {
    use pb::ip_address::Address;
    use pb::location_region::Region;
    let ip = mostly(
        prop_oneof![
            Just(None),
            Just(Some(Some(Address::Ipv4("127.0.0.1".into())))),
            Just(Some(Some(Address::Ipv6("::1".into())))),
        ],
        prop_oneof![
            Just(Some(None)),
            Just(Some(Some(Address::Ipv4("300.1.1.1".into())))),
            Just(Some(Some(Address::Ipv6("10.0.0.1".into())))),
            any_text().prop_map(|a| Some(Some(Address::Ipv4(a)))),
            any_text().prop_map(|a| Some(Some(Address::Ipv6(a)))),
        ],
    );
    let codes = |codes| Some(Some(Region::CountryCodes(pb::CountryCodes { codes })));
    let circle = |(latitude, longitude, radius_m)| {
        Some(Some(Region::Circle(pb::Circle {
            latitude,
            longitude,
            radius_m,
        })))
    };
    let location = mostly(
        prop_oneof![
            Just(None),
            prop::collection::vec(one_of(&["DE", "FR"]), 1..3).prop_map(codes),
            (40.0..60.0f64, 0.0..20.0f64, 0.0..1e5f64).prop_map(circle),
        ],
        prop_oneof![
            Just(Some(None)),
            prop::collection::vec(prop_oneof![one_of(&["de", "DEU", ""]), any_text()], 0..3)
                .prop_map(codes),
            (hostile_f64(), hostile_f64(), hostile_f64()).prop_map(circle),
        ],
    );
    (
        (
            any_originator(),
            mostly(
                prop_oneof![Just(None), Just(Some(3u32))],
                prop::option::of(prop_oneof![0..=70u32, any::<u32>()]),
            ),
            mostly(1..=5i32, prop_oneof![Just(0i32), -1..=8i32, any::<i32>()]),
            ip,
            location,
        ),
        (
            any_scoped_ids(),
            any_abs_rel(),
            any_target(),
            any_abs_rel(),
            any_scoped_ids(),
            any_scoped_ids(),
            prop::option::of(any::<bool>()),
        ),
    )
        .prop_map(
            |(
                (originator, trt, operation, ip, location),
                (orid, rts, trid, ppl, rfa, tids, asi),
            )| pb::DasRequest {
                originator,
                targeted_resource_type: trt,
                operation,
                originator_ip: ip.map(|address| pb::IpAddress { address }),
                originator_location: location.map(|region| pb::LocationRegion { region }),
                originator_role_ids: orid,
                request_timestamp: rts,
                targeted_resource_id: trid,
                proposed_privileges_lifetime: ppl,
                role_ids_from_acps: rfa,
                token_ids: tids,
                author_sign_indicator: asi,
            },
        )
        .boxed()
}

/// The `authorization` metadata: mostly `secret`, else none, another's,
/// malformed, or bytes that are not ASCII.
fn any_authorization(secret: &'static str) -> BoxedStrategy<Option<Vec<u8>>> {
    mostly(
        Just(Some(format!("Bearer {secret}").into_bytes())),
        prop_oneof![
            Just(None),
            Just(Some(format!("Bearer {CSE_SECRET}").into_bytes())),
            Just(Some(format!("Bearer {GUEST_SECRET}").into_bytes())),
            Just(Some(b"Bearer wrong".to_vec())),
            Just(Some(b"Basic Z3Vlc3Q=".to_vec())),
            Just(Some(b"Bearer ".to_vec())),
            Just(Some(format!("Bearer {}", "s".repeat(5_000)).into_bytes())),
            Just(Some(b"Bearer \xff\xfe".to_vec())),
            "[ -~]{0,40}".prop_map(|s| Some(s.into_bytes())),
        ],
    )
}

fn any_hosting_cse() -> BoxedStrategy<String> {
    mostly(
        one_of(&[HCSE, HCSE, "/mn-cse-123456", "/in-cse"]),
        prop_oneof![
            one_of(&["/other-cse", "//other.example/mn-cse-123456", ""]),
            any_text(),
        ],
    )
}

/// One DAS call.
#[derive(Debug, Clone)]
enum Op {
    Consult(pb::ConsultRequest),
    IssueToken(pb::IssueTokenRequest),
    GetTokens(pb::GetDasTokensRequest),
}

/// A call and its `authorization` metadata: mostly the consultant's secret
/// for `Consult` and `GetTokens` (the `/in-cse` consultant has none) and
/// the guest's for `IssueToken`.
fn any_call() -> BoxedStrategy<(Op, Option<Vec<u8>>)> {
    let dreq = || mostly(any_das_request().prop_map(Some), Just(None));
    prop_oneof![
        3 => ((any_hosting_cse(), dreq()), any_authorization(CSE_SECRET)).prop_map(
            |((hosting_cse_id, das_request), authorization)| (
                Op::Consult(pb::ConsultRequest {
                    hosting_cse_id,
                    das_request,
                }),
                authorization
            )
        ),
        3 => (dreq(), any_sdr(), any_authorization(GUEST_SECRET)).prop_map(
            |(das_request, secured_das_request, authorization)| (
                Op::IssueToken(pb::IssueTokenRequest {
                    das_request,
                    secured_das_request,
                }),
                authorization
            )
        ),
        1 => ((any_hosting_cse(), any_scoped_ids()), any_authorization(CSE_SECRET)).prop_map(
            |((hosting_cse_id, token_ids), authorization)| (
                Op::GetTokens(pb::GetDasTokensRequest {
                    hosting_cse_id,
                    token_ids,
                }),
                authorization
            )
        ),
    ]
    .boxed()
}

fn with_metadata<T>(message: T, authorization: &Option<Vec<u8>>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Some(value) = authorization
        && let Ok(v) = tonic::metadata::AsciiMetadataValue::try_from(value.as_slice())
    {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

type Client = DynamicAuthorizationServerClient<Channel>;

/// A DAS on the redb store in `dir`, served over gRPC on 127.0.0.1.
async fn start(dir: &Path) -> (authz_das::DasService, Served, Client) {
    let service = authz_das::build(config(), Some(dir)).await.expect("build");
    let server = serve(authz_das::router(service.clone()).await.expect("router")).await;
    let client = DynamicAuthorizationServerClient::new(server.channel().await);
    (service, server, client)
}

/// The tokens of `ids`, as the consultant gets them.
async fn tokens(client: &Client, ids: &[String]) -> pb::GetDasTokensResponse {
    client
        .clone()
        .get_tokens(with_metadata(
            pb::GetDasTokensRequest {
                hosting_cse_id: HCSE.into(),
                token_ids: ids.to_vec(),
            },
            &Some(format!("Bearer {CSE_SECRET}").into_bytes()),
        ))
        .await
        .expect("GetTokens")
        .into_inner()
}

/// A compact JWS: three base64url parts.
fn is_jws(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Sends a call; checks what an OK answer holds, and returns the
/// Token-IDs `IssueToken` gave.
async fn send(
    c: &mut Client,
    op: Op,
    authorization: &Option<Vec<u8>>,
) -> Result<Result<Vec<String>, String>, tonic::Status> {
    Ok(match op {
        Op::Consult(r) => {
            let res = c
                .consult(with_metadata(r, authorization))
                .await?
                .into_inner();
            if let Some(bad) = res.tokens.iter().find(|t| !is_jws(t)) {
                Err(format!("Consult answered a token that is no JWS: {bad}"))
            } else if let Some(dai) = res.dynamic_acp_info.as_ref().filter(|d| {
                d.granted_privileges
                    .as_ref()
                    .is_none_or(|p| p.rules.is_empty())
                    || authz_core::json::parse_timestamp(&d.privileges_lifetime).is_none()
            }) {
                Err(format!("Consult answered an unusable dai: {dai:?}"))
            } else {
                Ok(Vec::new())
            }
        }
        Op::IssueToken(r) => {
            let res = c
                .issue_token(with_metadata(r, authorization))
                .await?
                .into_inner();
            if res.tokens.len() != res.token_ids.len() || !res.tokens.iter().all(|t| is_jws(t)) {
                Err(format!("IssueToken answered {res:?}"))
            } else {
                Ok(res.token_ids)
            }
        }
        Op::GetTokens(r) => {
            let res = c
                .get_tokens(with_metadata(r, authorization))
                .await?
                .into_inner();
            if res.tokens.iter().all(|t| is_jws(t)) {
                Ok(Vec::new())
            } else {
                Err(format!("GetTokens answered {res:?}"))
            }
        }
    })
}

/// Whether `status` is one the DAS means: no INTERNAL, UNKNOWN (what a
/// panicking handler gives), UNAVAILABLE or other transport code, and no
/// HTTP/2 error the client reads as a status (a header block too large for
/// the peer); INVALID_ARGUMENT names at least one field.
fn check_status(status: &tonic::Status) -> Result<(), String> {
    if status.message().contains("h2 protocol error") {
        return Err(format!("an HTTP/2 error, not the DAS's status: {status:?}"));
    }
    match status.code() {
        Code::InvalidArgument => {
            let fields: Vec<String> = status
                .get_details_bad_request()
                .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                .unwrap_or_default();
            if fields.is_empty() || fields.iter().any(String::is_empty) {
                return Err(format!("INVALID_ARGUMENT without field names: {status:?}"));
            }
            Ok(())
        }
        Code::Unauthenticated | Code::PermissionDenied | Code::ResourceExhausted => Ok(()),
        _ => Err(format!("not a proper status: {status:?}")),
    }
}

#[test]
fn any_request_gets_a_proper_status_refusals_store_nothing_and_the_das_keeps_serving() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = temp_dir("das-robustness", "robustness");
    let (service, server, client) = rt.block_on(start(dir.path()));
    // The Token-IDs issued, to ask for after a restart.
    let issued = std::sync::Mutex::new(Vec::<String>::new());
    let proptest_config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(proptest_config, |(calls in prop::collection::vec(any_call(), 1..12))| {
        let mut client = client.clone();
        let outcome: Result<(), String> = rt.block_on(async {
            for (op, authorization) in calls {
                let before = service.stored_tokens();
                let answer = send(&mut client, op.clone(), &authorization).await;
                let after = service.stored_tokens();
                match answer {
                    Ok(checked) => {
                        let ids = checked.map_err(|e| format!("{e}\nfor {}", shown(&op)))?;
                        issued
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .extend(ids);
                    }
                    Err(status) => {
                        check_status(&status).map_err(|e| format!("{e}\nfor {}", shown(&op)))?;
                        if before != after {
                            return Err(format!(
                                "refused with {:?} ({}) yet tokens were stored: {before} -> {after}\nfor {}",
                                status.code(),
                                status.message(),
                                shown(&op)
                            ));
                        }
                    }
                }
            }
            Ok(())
        });
        outcome.map_err(TestCaseError::fail)?;
    });
    // Still serving: the consultant gets a dynamic ACP for the window. And
    // what was stored loads again: after a restart on the same store the
    // issued tokens are answered as before.
    let mut ids = issued
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A token given again on a repeated request is one token: asked once
    // (GetTokens refuses a repeated ID).
    ids.sort();
    ids.dedup();
    let stored = rt.block_on(async {
        let answer = client
            .clone()
            .consult(with_metadata(
                pb::ConsultRequest {
                    hosting_cse_id: HCSE.into(),
                    das_request: Some(pb::DasRequest {
                        originator: "Cwindow".into(),
                        operation: pb::Operation::Retrieve as i32,
                        targeted_resource_id: "window".into(),
                        targeted_resource_type: Some(3),
                        ..Default::default()
                    }),
                },
                &Some(format!("Bearer {CSE_SECRET}").into_bytes()),
            ))
            .await
            .expect("still serving")
            .into_inner();
        assert!(answer.dynamic_acp_info.is_some(), "{answer:?}");
        (service.stored_tokens(), tokens(&client, &ids).await)
    });
    service.shutdown();
    rt.block_on(server.stop());
    // The last handle on the store: it must be closed to be opened again.
    drop(service);
    rt.block_on(async {
        let (service, server, client) = start(dir.path()).await;
        let reloaded = (service.stored_tokens(), tokens(&client, &ids).await);
        assert_eq!(reloaded, stored, "the store loads as it was");
        service.shutdown();
        server.stop().await;
    });
}
