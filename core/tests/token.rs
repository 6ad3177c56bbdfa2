//! oneM2M JWTs (TS-0003 7.3), pinned against the public API of
//! `authz_core::token`:
//!
//! - `table_7_3_2_6_2_1_*`: the claim mapping JWT ↔ `m2m:tokenClaimSet`
//!   (TS-0003 table 7.3.2.6.2-1; TS-0004 6.3.5.41/42; spec notes §7.1;
//!   Decision 6 for `tkvr`/`vr`);
//! - `table_9_6_39_3_*`: the rules of a token permission (TS-0001);
//! - `sign_verify_*`: one round trip per algorithm with the fixture keys in
//!   `tests/keys` (generated with openssl, see its README);
//! - `attack_*`: every way a token must be refused, each with its own
//!   `TokenError` (TS-0003 7.3.2.5, 7.3.2.6.2, 7.3.2.2 step 4.1.1.2, 7.3.2.3
//!   step 6.1.3);
//! - `clause_7_3_2_5_permissions_*`: token permission evaluation.
//!
//! The hosting CSE is `//sp.example.com/id-in`; the DAS's AE-ID is the issuer.

use authz_core::token::{
    DEFAULT_MAX_TOKEN_SIZE, Granted, KeyError, SignError, TokenAlgorithm, TokenClaims, TokenError,
    TokenPermission, TokenPermissions, TokenSecurity, TokenSigner, TrustStore, TrustedIssuer,
    VerificationKey, VerifyContext, audience_matches, encode_unsecured, issuer_fqdn,
};
use authz_core::{
    Applicable, CompiledAcp, DecideOptions, DecisionRequest, Effect, NoAttributes, Operation,
    PrivilegeKind, SetOfAcrs, decide,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const ES256_PRIVATE: &[u8] = include_bytes!("keys/es256-private.pem");
const ES256_PUBLIC: &[u8] = include_bytes!("keys/es256-public.pem");
const ES256_OTHER_PRIVATE: &[u8] = include_bytes!("keys/es256-other-private.pem");
const ES256_OTHER_PUBLIC: &[u8] = include_bytes!("keys/es256-other-public.pem");
const ED25519_PRIVATE: &[u8] = include_bytes!("keys/ed25519-private.pem");
const ED25519_PUBLIC: &[u8] = include_bytes!("keys/ed25519-public.pem");
const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa2048-private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa2048-public.pem");
const HS_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-das-shared-secret";

/// The DAS (ES256 only unless a test says otherwise).
const DAS: &str = "//sp.example.com/id-in/Cdas";
/// A DAS configured for unsecured tokens only.
const OPEN_DAS: &str = "//sp.example.com/id-in/Copen";
/// The hosting CSE.
const HCSE: &str = "//sp.example.com/id-in";
/// The token holder, the legitimate originator.
const PHONE: &str = "//sp.example.com/id-in/Cphone";
/// Another originator.
const MALLORY: &str = "//sp.example.com/id-in/Cmallory";
const TARGET: &str = "/id-in/cnt7Xk2";
const ROLE: &str = "guest@roles.example.com";
const KID: &str = "das-es-1";

fn now() -> DateTime<Utc> {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

/// The spec-notes §7.1 example, valid around [`now`].
fn claims() -> TokenClaims {
    let mut c = TokenClaims::new(
        "tk42@das.example.com",
        DAS,
        PHONE,
        now() - TimeDelta::minutes(1),
        now() + TimeDelta::hours(1),
    );
    c.audience = vec![HCSE.into()];
    c.permissions = TokenPermissions {
        pm: vec![
            TokenPermission {
                ris: vec![TARGET.into()],
                pv: Some(read_by(PHONE)),
                rids: vec![],
            },
            TokenPermission {
                ris: vec![],
                pv: None,
                rids: vec![ROLE.into()],
            },
        ],
    };
    c
}

fn read_by(originator: &str) -> SetOfAcrs {
    serde_json::from_value(json!({"acr": [{"acor": [originator], "acop": 2}]})).unwrap()
}

fn es_signer() -> TokenSigner {
    TokenSigner::from_pem(TokenAlgorithm::Es256, KID, ES256_PRIVATE).unwrap()
}

fn es_issuer() -> TrustedIssuer {
    TrustedIssuer::new(DAS, &[TokenAlgorithm::Es256])
        .with_key(
            KID,
            VerificationKey::from_public_pem(TokenAlgorithm::Es256, ES256_PUBLIC).unwrap(),
        )
        .unwrap()
}

fn store() -> TrustStore {
    TrustStore::new()
        .with_issuer(es_issuer())
        .with_issuer(TrustedIssuer::new(OPEN_DAS, &[]).allow_unsecured(true))
}

fn ctx() -> VerifyContext {
    VerifyContext::new(HCSE, PHONE, now()).unwrap()
}

fn ctx_at(t: DateTime<Utc>) -> VerifyContext {
    VerifyContext::new(HCSE, PHONE, t).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWS over any header and payload, for tokens `TokenSigner` refuses to make.
fn sign_raw(header: Value, payload: Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(&header), b64(&payload));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

fn es_key() -> EncodingKey {
    EncodingKey::from_ec_pem(ES256_PRIVATE).unwrap()
}

fn jwt_payload(c: &TokenClaims) -> Value {
    Value::Object(c.to_jwt_claims())
}

fn es_header() -> Value {
    json!({"alg": "ES256", "typ": "JWT", "kid": KID})
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------
// Claim mapping (table 7.3.2.6.2-1)
// ---------------------------------------------------------------------------

/// The spec-notes §7.1 example in both serializations.
fn example_jwt() -> Value {
    json!({
        "tkvr": "1", "jti": "tk42@das.example.com", "iss": DAS, "azp": PHONE,
        "nbf": 1795000000, "exp": 1795003600, "aud": [HCSE],
        "tknm": "front door", "tkex": "app-data",
        "tkps": {"pm": [
            {"ris": ["//sp.example.com/id-in/cnt7Xk2"],
             "pv": {"acr": [{"acor": [PHONE], "acop": 2}]}},
            {"rids": [ROLE]}
        ]}
    })
}

fn example_claim_set() -> Value {
    // 1795000000 = 2026-11-18T11:06:40Z.
    json!({
        "vr": "1", "tkid": "tk42@das.example.com", "tkis": DAS, "tkhd": PHONE,
        "tknb": "20261118T110640", "tkna": "20261118T120640", "tkau": [HCSE],
        "tknm": "front door", "tkex": "app-data",
        "tkps": {"pm": [
            {"ris": ["//sp.example.com/id-in/cnt7Xk2"],
             "pv": {"acr": [{"acor": [PHONE], "acop": 2}]}},
            {"rids": [ROLE]}
        ]}
    })
}

#[test]
fn table_7_3_2_6_2_1_jwt_to_claim_set_and_back() {
    let c = TokenClaims::from_jwt_claims(&example_jwt()).unwrap();
    assert_eq!(c.version, "1");
    assert_eq!(c.token_id, "tk42@das.example.com");
    assert_eq!(c.issuer, DAS);
    assert_eq!(c.holder, PHONE);
    assert_eq!(c.not_before.timestamp(), 1795000000);
    assert_eq!(c.not_after.timestamp(), 1795003600);
    assert_eq!(c.token_name.as_deref(), Some("front door"));
    assert_eq!(c.audience, vec![HCSE.to_owned()]);
    assert_eq!(c.extension.as_deref(), Some("app-data"));
    assert_eq!(c.permissions.pm.len(), 2);
    assert_eq!(c.permissions.pm[1].rids, vec![ROLE.to_owned()]);

    assert_eq!(c.to_claim_set(), example_claim_set());
    let back = TokenClaims::from_claim_set(&example_claim_set()).unwrap();
    assert_eq!(back, c);
    assert_eq!(Value::Object(back.to_jwt_claims()), example_jwt());
}

#[test]
fn table_7_3_2_6_2_1_decision_6_vr_accepted_tkvr_emitted() {
    let mut jwt = example_jwt();
    let obj = jwt.as_object_mut().unwrap();
    let v = obj.remove("tkvr").unwrap();
    obj.insert("vr".into(), v);
    let c = TokenClaims::from_jwt_claims(&jwt).unwrap();
    assert_eq!(c.version, "1");
    let out = c.to_jwt_claims();
    assert_eq!(out.get("tkvr"), Some(&json!("1")));
    assert!(!out.contains_key("vr"));

    // The claim set takes `tkvr` too, and writes TS-0004's `vr`.
    let mut set = example_claim_set();
    let obj = set.as_object_mut().unwrap();
    let v = obj.remove("vr").unwrap();
    obj.insert("tkvr".into(), v);
    let c = TokenClaims::from_claim_set(&set).unwrap();
    assert_eq!(c.to_claim_set(), example_claim_set());

    // Both, agreeing, is fine; disagreeing is not.
    let mut both = example_jwt();
    both["vr"] = json!("1");
    assert!(TokenClaims::from_jwt_claims(&both).is_ok());
    both["vr"] = json!("2");
    let e = TokenClaims::from_jwt_claims(&both).unwrap_err();
    assert_eq!(e.0[0].path, "tkvr", "{e}");
}

#[test]
fn table_7_3_2_6_2_1_aud_string_or_array() {
    // RFC 7519 4.1.3: a single audience may be a string.
    let mut jwt = example_jwt();
    jwt["aud"] = json!(HCSE);
    let c = TokenClaims::from_jwt_claims(&jwt).unwrap();
    assert_eq!(c.audience, vec![HCSE.to_owned()]);
    // Emitted as an array, as the table says.
    assert_eq!(c.to_jwt_claims()["aud"], json!([HCSE]));

    jwt["aud"] = json!([HCSE, "//sp.example.com/mn-cse"]);
    let c = TokenClaims::from_jwt_claims(&jwt).unwrap();
    assert_eq!(c.audience.len(), 2);

    jwt["aud"] = json!(42);
    let e = TokenClaims::from_jwt_claims(&jwt).unwrap_err();
    assert_eq!(e.0[0].path, "aud");
    jwt["aud"] = json!([HCSE, 7]);
    let e = TokenClaims::from_jwt_claims(&jwt).unwrap_err();
    assert_eq!(e.0[0].path, "aud[1]");
}

#[test]
fn table_7_3_2_6_2_1_numeric_dates() {
    // A numeric version is read as text; fractional NumericDates round so
    // the token never lives longer than it says.
    let mut jwt = example_jwt();
    jwt["tkvr"] = json!(1);
    jwt["nbf"] = json!(1795000000.25);
    jwt["exp"] = json!(1795003600.75);
    let c = TokenClaims::from_jwt_claims(&jwt).unwrap();
    assert_eq!(c.version, "1");
    assert_eq!(c.not_before.timestamp(), 1795000001);
    assert_eq!(c.not_after.timestamp(), 1795003600);

    jwt["exp"] = json!("20261118T104640");
    let e = TokenClaims::from_jwt_claims(&jwt).unwrap_err();
    assert_eq!(e.0[0].path, "exp");
    jwt["exp"] = json!(1e300);
    assert!(TokenClaims::from_jwt_claims(&jwt).is_err());
    // Dates no service can carry (a protobuf Timestamp spans the years
    // 0001-9999) are refused, not used by a PDP that could not keep the
    // token; the range's ends are taken.
    for (nbf, exp, ok) in [
        (-62_135_596_801_i64, 1_795_003_600_i64, false),
        (1_795_000_000, 253_402_300_800, false),
        (-62_135_596_800, 253_402_300_799, true),
    ] {
        jwt["nbf"] = json!(nbf);
        jwt["exp"] = json!(exp);
        let parsed = TokenClaims::from_jwt_claims(&jwt);
        assert_eq!(parsed.is_ok(), ok, "{nbf} {exp}: {parsed:?}");
        if let Err(e) = parsed {
            assert!(e.0[0].message.contains("out of range"), "{e:?}");
        }
    }

    let mut set = example_claim_set();
    set["tkna"] = json!(1795003600);
    let e = TokenClaims::from_claim_set(&set).unwrap_err();
    assert_eq!(e.0[0].path, "tkna");
    set["tkna"] = json!("2026-11-18 10:46");
    assert!(TokenClaims::from_claim_set(&set).is_err());
}

#[test]
fn table_7_3_2_6_2_1_mandatory_and_ignored_claims() {
    // TS-0004 6.3.5.42: version, tokenID, holder, issuer, notBefore and
    // notAfter are mandatory; every missing one is reported, by JWT name.
    let e = TokenClaims::from_jwt_claims(&json!({"aud": [HCSE]})).unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["tkvr", "jti", "azp", "iss", "nbf", "exp"]);
    let e = TokenClaims::from_claim_set(&json!({})).unwrap_err();
    let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["vr", "tkid", "tkhd", "tkis", "tknb", "tkna"]);
    assert!(TokenClaims::from_jwt_claims(&json!([1])).is_err());

    // RFC 7519 4: claims the profile does not use are ignored.
    let mut jwt = example_jwt();
    jwt["sub"] = json!("someone");
    jwt["iat"] = json!(1795000000);
    assert!(TokenClaims::from_jwt_claims(&jwt).is_ok());
}

#[test]
fn table_7_3_2_6_2_1_identifier_and_time_rules() {
    let mut jwt = example_jwt();
    jwt["jti"] = json!("tk42");
    let e = TokenClaims::from_jwt_claims(&jwt).unwrap_err();
    assert_eq!(e.0[0].path, "jti", "{e}");
    jwt["jti"] = json!("tk42@DAS.example.com");
    assert!(
        TokenClaims::from_jwt_claims(&jwt).is_err(),
        "FQDN is lower case"
    );

    let mut jwt = example_jwt();
    jwt["nbf"] = json!(1795003601);
    let e = TokenClaims::from_jwt_claims(&jwt).unwrap_err();
    assert_eq!(e.0[0].path, "nbf", "{e}");

    let mut jwt = example_jwt();
    jwt["azp"] = json!("");
    assert_eq!(
        TokenClaims::from_jwt_claims(&jwt).unwrap_err().0[0].path,
        "azp"
    );

    assert_eq!(issuer_fqdn("tk42@das.example.com"), Some("das.example.com"));
    assert_eq!(issuer_fqdn(ROLE), Some("roles.example.com"));
    assert_eq!(issuer_fqdn("no-at-sign"), None);
    assert_eq!(issuer_fqdn("a b@x.com"), None);
}

#[test]
fn table_9_6_39_3_permission_rules() {
    let with_pm = |pm: Value| {
        let mut jwt = example_jwt();
        jwt["tkps"] = json!({"pm": [pm]});
        TokenClaims::from_jwt_claims(&jwt)
    };
    // pv needs ris (TS-0003 7.3.2.5 step 1; TS-0001 table 9.6.39-3).
    let e = with_pm(json!({"pv": {"acr": [{"acor": [PHONE], "acop": 2}]}})).unwrap_err();
    assert_eq!(e.0[0].path, "tkps.pm[0].ris", "{e}");
    // An empty ris counts as absent (Decision 11).
    let e = with_pm(json!({"ris": [], "pv": {"acr": []}})).unwrap_err();
    assert_eq!(e.0[0].path, "tkps.pm[0].ris", "{e}");
    // At least one of pv and rids.
    let e = with_pm(json!({"ris": [TARGET]})).unwrap_err();
    assert_eq!(e.0[0].path, "tkps.pm[0]", "{e}");
    // rids are Role-IDs.
    let e = with_pm(json!({"rids": ["guest"]})).unwrap_err();
    assert_eq!(e.0[0].path, "tkps.pm[0].rids[0]", "{e}");
    // pv is validated like any setOfAcrs, with the path inside the token.
    let e = with_pm(json!({"ris": [TARGET], "pv": {"acr": [{"acor": [PHONE], "acop": 64}]}}))
        .unwrap_err();
    assert_eq!(e.0[0].path, "tkps.pm[0].pv.acr[0].acop", "{e}");
    // Unknown elements could be constraints; they are refused, not ignored.
    let e = with_pm(json!({"rids": [ROLE], "rcn": 1})).unwrap_err();
    assert!(e.0[0].path.starts_with("tkps.pm[0]"), "{e}");
    // rids alone, with no ris, is fine.
    assert!(with_pm(json!({"rids": [ROLE]})).is_ok());
}

// ---------------------------------------------------------------------------
// Signing and verification, one per algorithm (TS-0003 7.3.2.6.2)
// ---------------------------------------------------------------------------

fn round_trip(signer: TokenSigner, key: VerificationKey) {
    let alg = signer.algorithm();
    let token = signer.sign(&claims()).unwrap();
    // JOSE header: typ JWT, the kid, no cty (TS-0003 7.3.2.6.2).
    let header = decode_part(token.split('.').next().unwrap());
    assert_eq!(
        header,
        json!({"alg": alg.name(), "typ": "JWT", "kid": signer.kid()})
    );
    let store = TrustStore::new().with_issuer(
        TrustedIssuer::new(DAS, &[alg])
            .with_key(signer.kid(), key)
            .unwrap(),
    );
    let v = store.verify(&token, &ctx()).unwrap();
    assert_eq!(v.claims(), &claims());
    assert_eq!(v.compact(), token);
    assert_eq!(v.token_id(), "tk42@das.example.com");
    assert_eq!(v.expires_at(), claims().not_after);
    assert_eq!(
        v.security(),
        &TokenSecurity::Signed {
            algorithm: alg,
            kid: signer.kid().to_owned()
        }
    );
}

#[test]
fn sign_verify_es256() {
    round_trip(
        es_signer(),
        VerificationKey::from_public_pem(TokenAlgorithm::Es256, ES256_PUBLIC).unwrap(),
    );
}

#[test]
fn sign_verify_eddsa() {
    round_trip(
        TokenSigner::from_pem(TokenAlgorithm::EdDsa, "das-ed-1", ED25519_PRIVATE).unwrap(),
        VerificationKey::from_public_pem(TokenAlgorithm::EdDsa, ED25519_PUBLIC).unwrap(),
    );
}

#[test]
fn sign_verify_rs256() {
    round_trip(
        TokenSigner::from_pem(TokenAlgorithm::Rs256, "das-rs-1", RSA_PRIVATE).unwrap(),
        VerificationKey::from_public_pem(TokenAlgorithm::Rs256, RSA_PUBLIC).unwrap(),
    );
}

#[test]
fn sign_verify_hs256() {
    round_trip(
        TokenSigner::from_secret("das-hs-1", HS_SECRET).unwrap(),
        VerificationKey::from_secret(HS_SECRET).unwrap(),
    );
}

#[test]
fn sign_verify_missing_kid_with_exactly_one_key() {
    let token = sign_raw(
        json!({"alg": "ES256", "typ": "JWT"}),
        jwt_payload(&claims()),
        &es_key(),
        Algorithm::ES256,
    );
    let v = store().verify(&token, &ctx()).unwrap();
    assert_eq!(
        v.security(),
        &TokenSecurity::Signed {
            algorithm: TokenAlgorithm::Es256,
            kid: KID.into()
        }
    );
    // With two keys the token must say which.
    let two = TrustStore::new().with_issuer(
        es_issuer()
            .with_key(
                "das-es-2",
                VerificationKey::from_public_pem(TokenAlgorithm::Es256, ES256_OTHER_PUBLIC)
                    .unwrap(),
            )
            .unwrap(),
    );
    assert!(matches!(
        two.verify(&token, &ctx()),
        Err(TokenError::MissingKeyId { .. })
    ));
}

#[test]
fn sign_verify_typ_forms_rfc_7519_5_1() {
    for typ in ["JWT", "jwt", "application/jwt", "Application/JWT"] {
        let token = sign_raw(
            json!({"alg": "ES256", "typ": typ, "kid": KID}),
            jwt_payload(&claims()),
            &es_key(),
            Algorithm::ES256,
        );
        assert!(store().verify(&token, &ctx()).is_ok(), "{typ}");
    }
}

#[test]
fn sign_refuses_invalid_claims_and_bad_keys() {
    let mut c = claims();
    c.token_id = "no-issuer".into();
    assert!(matches!(
        es_signer().sign(&c),
        Err(SignError::InvalidClaims(_))
    ));
    assert!(matches!(
        encode_unsecured(&c),
        Err(SignError::InvalidClaims(_))
    ));
    // Keys of the wrong type or size are refused when configured, not at use.
    assert!(matches!(
        TokenSigner::from_pem(TokenAlgorithm::Es256, KID, ED25519_PRIVATE),
        Err(KeyError::BadKey { .. })
    ));
    assert!(matches!(
        TokenSigner::from_pem(TokenAlgorithm::Hs256, KID, ES256_PRIVATE),
        Err(KeyError::WrongForm(..))
    ));
    assert!(matches!(
        TokenSigner::from_secret(KID, b"short"),
        Err(KeyError::SecretTooShort(5))
    ));
    assert!(matches!(
        TokenSigner::from_pem(TokenAlgorithm::Es256, "", ES256_PRIVATE),
        Err(KeyError::EmptyKid)
    ));
    assert!(matches!(
        VerificationKey::from_public_pem(TokenAlgorithm::EdDsa, ES256_PUBLIC),
        Err(KeyError::BadKey { .. })
    ));
    assert!(matches!(
        VerificationKey::from_public_pem(TokenAlgorithm::Rs256, b"not pem"),
        Err(KeyError::BadKey { .. })
    ));
    assert!(matches!(
        VerificationKey::from_secret(b"short"),
        Err(KeyError::SecretTooShort(5))
    ));
    // RFC 7518 3.3 (the JWS algorithms TS-0003 7.3.2.6 uses): "A key of
    // size 2048 bits or larger MUST be used" with RS256, to sign and to
    // verify alike.
    assert!(matches!(
        VerificationKey::from_public_pem(TokenAlgorithm::Rs256, RSA_1024_PUBLIC),
        Err(KeyError::RsaTooSmall(1024))
    ));
    assert!(matches!(
        TokenSigner::from_pem(TokenAlgorithm::Rs256, "small", RSA_1024_PRIVATE),
        Err(KeyError::RsaTooSmall(1024))
    ));
    // A key for an algorithm the issuer is not permitted, or a duplicate kid.
    let rs = VerificationKey::from_public_pem(TokenAlgorithm::Rs256, RSA_PUBLIC).unwrap();
    assert!(matches!(
        TrustedIssuer::new(DAS, &[TokenAlgorithm::Es256]).with_key("rs", rs),
        Err(KeyError::AlgorithmNotPermitted { .. })
    ));
    let es = VerificationKey::from_public_pem(TokenAlgorithm::Es256, ES256_PUBLIC).unwrap();
    assert!(matches!(
        es_issuer().with_key(KID, es),
        Err(KeyError::DuplicateKid { .. })
    ));
    // No key material in Debug output.
    let dbg = format!("{:?}", VerificationKey::from_secret(HS_SECRET).unwrap());
    assert!(!dbg.contains("0123"), "{dbg}");
}

// ---------------------------------------------------------------------------
// Attack suite: each refused with its own reason
// ---------------------------------------------------------------------------

/// The Deny reason must name the problem, and not be an invalid argument.
fn denied(r: Result<impl std::fmt::Debug, TokenError>) -> TokenError {
    let e = r.expect_err("token must be refused");
    assert!(!e.is_malformed(), "{e} is a Deny, not an invalid argument");
    assert!(!e.to_string().is_empty());
    e
}

#[test]
fn attack_alg_none_from_issuer_not_configured_for_it() {
    // RFC 7519 6 unsecured JWT claiming to be from the ES256-only DAS.
    let token = encode_unsecured(&claims()).unwrap();
    assert!(token.ends_with('.'));
    let e = denied(store().verify(&token, &ctx()));
    assert_eq!(e, TokenError::UnsecuredNotAllowed(DAS.into()));
    assert!(e.to_string().contains("alg none"), "{e}");
}

#[test]
fn clause_7_3_2_6_2_alg_none_accepted_where_configured() {
    let mut c = claims();
    c.issuer = OPEN_DAS.into();
    let token = encode_unsecured(&c).unwrap();
    let v = store().verify(&token, &ctx()).unwrap();
    assert_eq!(v.security(), &TokenSecurity::Unsecured);
    assert_eq!(v.claims(), &c);

    // Only the exact, case-sensitive "none" (RFC 7518 3.6).
    let forged = format!(
        "{}.{}.",
        b64(&json!({"alg": "NONE", "typ": "JWT"})),
        b64(&jwt_payload(&c))
    );
    assert!(matches!(
        denied(store().verify(&forged, &ctx())),
        TokenError::AlgorithmNotPermitted { .. }
    ));
    // An unsecured JWT has an empty signature.
    let with_sig = format!("{token}c2ln");
    let e = store().verify(&with_sig, &ctx()).unwrap_err();
    assert!(e.is_malformed(), "{e}");
}

#[test]
fn attack_signature_by_unknown_key() {
    // Signed by an attacker's key, naming the DAS's kid: the signature fails.
    let attacker = TokenSigner::from_pem(TokenAlgorithm::Es256, KID, ES256_OTHER_PRIVATE).unwrap();
    let token = attacker.sign(&claims()).unwrap();
    assert_eq!(
        denied(store().verify(&token, &ctx())),
        TokenError::BadSignature {
            issuer: DAS.into(),
            kid: KID.into()
        }
    );
    // Naming its own kid: the DAS has no such key.
    let attacker =
        TokenSigner::from_pem(TokenAlgorithm::Es256, "attacker-1", ES256_OTHER_PRIVATE).unwrap();
    let token = attacker.sign(&claims()).unwrap();
    assert_eq!(
        denied(store().verify(&token, &ctx())),
        TokenError::UnknownKey {
            issuer: DAS.into(),
            kid: "attacker-1".into()
        }
    );
}

#[test]
fn attack_wrong_kid() {
    // The DAS signed with key 1 but the header names its key 2.
    let two = TrustStore::new().with_issuer(
        es_issuer()
            .with_key(
                "das-es-2",
                VerificationKey::from_public_pem(TokenAlgorithm::Es256, ES256_OTHER_PUBLIC)
                    .unwrap(),
            )
            .unwrap(),
    );
    let token = sign_raw(
        json!({"alg": "ES256", "typ": "JWT", "kid": "das-es-2"}),
        jwt_payload(&claims()),
        &es_key(),
        Algorithm::ES256,
    );
    assert_eq!(
        denied(two.verify(&token, &ctx())),
        TokenError::BadSignature {
            issuer: DAS.into(),
            kid: "das-es-2".into()
        }
    );
    // A kid of another trusted issuer is unknown here: keys are per issuer.
    let other = TrustStore::new().with_issuer(es_issuer()).with_issuer(
        TrustedIssuer::new("//sp.example.com/id-in/Cdas2", &[TokenAlgorithm::Es256])
            .with_key(
                "das2-key",
                VerificationKey::from_public_pem(TokenAlgorithm::Es256, ES256_OTHER_PUBLIC)
                    .unwrap(),
            )
            .unwrap(),
    );
    let token = TokenSigner::from_pem(TokenAlgorithm::Es256, "das2-key", ES256_OTHER_PRIVATE)
        .unwrap()
        .sign(&claims())
        .unwrap();
    assert!(matches!(
        denied(other.verify(&token, &ctx())),
        TokenError::UnknownKey { .. }
    ));
}

#[test]
fn attack_expired_clause_7_3_2_3_step_6_1_3() {
    let token = es_signer().sign(&claims()).unwrap();
    let exp = claims().not_after;
    // notAfter itself is the last valid second, all of it: the claims'
    // resolution is one second, and a PDP clock 999 ms into it is still
    // in it.
    assert!(store().verify(&token, &ctx_at(exp)).is_ok());
    assert!(
        store()
            .verify(&token, &ctx_at(exp + TimeDelta::milliseconds(999)))
            .is_ok()
    );
    let late = exp + TimeDelta::seconds(1);
    assert_eq!(
        denied(store().verify(&token, &ctx_at(late))),
        TokenError::Expired {
            not_after: exp,
            now: late
        }
    );
    // A configured leeway widens the window by exactly that much.
    let lenient = store().with_leeway(TimeDelta::seconds(30));
    assert!(
        lenient
            .verify(
                &token,
                &ctx_at(exp + TimeDelta::seconds(30) + TimeDelta::milliseconds(500))
            )
            .is_ok()
    );
    assert!(matches!(
        lenient.verify(&token, &ctx_at(exp + TimeDelta::seconds(31))),
        Err(TokenError::Expired { .. })
    ));
}

#[test]
fn attack_not_yet_valid_clause_7_3_2_3_step_6_1_3() {
    let token = es_signer().sign(&claims()).unwrap();
    let nbf = claims().not_before;
    assert!(store().verify(&token, &ctx_at(nbf)).is_ok());
    // The second before notBefore is before it, to its last millisecond.
    assert!(matches!(
        store().verify(&token, &ctx_at(nbf - TimeDelta::milliseconds(1))),
        Err(TokenError::NotYetValid { .. })
    ));
    let early = nbf - TimeDelta::seconds(1);
    assert_eq!(
        denied(store().verify(&token, &ctx_at(early))),
        TokenError::NotYetValid {
            not_before: nbf,
            now: early
        }
    );
}

#[test]
fn attack_wrong_audience_clause_7_3_2_3_step_6_1_3() {
    let verify_aud = |aud: &[&str]| {
        let mut c = claims();
        c.audience = aud.iter().map(|s| s.to_string()).collect();
        store().verify(&es_signer().sign(&c).unwrap(), &ctx())
    };
    for aud in [
        &["//sp.example.com/mn-cse"][..],
        &["//other.example.com/id-in"],
        &["/mn-cse"],
        &["//sp.example.com/id-in/Cphone"],
        &["//sp.example.com"],
        &["id-in"],
        &["//sp.example.com/id-*/x"],
        // SP-relative CSE-IDs: step 6.1.3 asks for Absolute CSE-IDs.
        &["/id-in"],
        &["/*"],
    ] {
        assert!(
            matches!(denied(verify_aud(aud)), TokenError::WrongAudience { .. }),
            "{aud:?}"
        );
    }
    // No audience at all would make the token good at every CSE.
    assert!(matches!(
        denied(verify_aud(&[])),
        TokenError::NoAudience { .. }
    ));
    // Matching forms: absolute, upper-case domain, wildcards within one
    // segment, and one match among several entries.
    for aud in [
        &[HCSE][..],
        &["//SP.Example.com/id-in"],
        &["//*/id-in"],
        &["//sp.example.com/id-*"],
        &["//*.example.com/*"],
        &["//sp.example.com/mn-cse", HCSE],
        &["/id-in", HCSE],
    ] {
        assert!(verify_aud(aud).is_ok(), "{aud:?}");
    }
}

/// TS-0003 7.3.2.3 step 6.1.3: "The HCSE's CSE-ID shall match one of the
/// Absolute CSE-IDs (optionally including wildcards) in the "audience"
/// parameter in the Token." An SP-relative entry (`/id-in`) names a CSE of
/// no particular SP: it matches no hosting CSE, here or in another SP.
#[test]
fn clause_7_3_2_3_step_6_1_3_audience_entries_must_be_absolute() {
    let here = ctx().hosting().clone();
    let other_sp = authz_core::HostingContext::new("//other.example.com", "/id-in").unwrap();
    for entry in ["/id-in", "/*", "/id-*", "id-in", ""] {
        assert!(!audience_matches(entry, &here), "{entry:?}");
        assert!(!audience_matches(entry, &other_sp), "{entry:?}");
    }
    assert!(audience_matches(HCSE, &here));
    assert!(!audience_matches(HCSE, &other_sp));
    assert!(audience_matches("//*/id-in", &other_sp));
    let mut c = claims();
    c.audience = vec!["/id-in".into()];
    assert!(matches!(
        denied(store().verify(&es_signer().sign(&c).unwrap(), &ctx())),
        TokenError::WrongAudience { .. }
    ));
}

#[test]
fn attack_wrong_holder_clause_7_3_2_2_step_4_1_1_2_3() {
    // A token the DAS issued to Mallory, presented by the phone.
    let mut c = claims();
    c.holder = MALLORY.into();
    let token = es_signer().sign(&c).unwrap();
    assert_eq!(
        denied(store().verify(&token, &ctx())),
        TokenError::WrongHolder {
            holder: MALLORY.into(),
            originator: PHONE.into()
        }
    );
    // The originator is made absolute before the exact comparison: the
    // phone's AE-ID stem at its registrar is the same originator.
    let token = es_signer().sign(&claims()).unwrap();
    let stem = VerifyContext::new(HCSE, "Cphone", now()).unwrap();
    assert!(store().verify(&token, &stem).is_ok());
    // The holder must be exact: an SP-relative holder is not the absolute ID.
    let mut c = claims();
    c.holder = "/id-in/Cphone".into();
    let token = es_signer().sign(&c).unwrap();
    assert!(matches!(
        denied(store().verify(&token, &ctx())),
        TokenError::WrongHolder { .. }
    ));
}

#[test]
fn attack_replayed_by_another_originator() {
    // Mallory captured the phone's token and presents it as her own.
    let token = es_signer().sign(&claims()).unwrap();
    let mallory = VerifyContext::new(HCSE, MALLORY, now()).unwrap();
    assert_eq!(
        denied(store().verify(&token, &mallory)),
        TokenError::WrongHolder {
            holder: PHONE.into(),
            originator: MALLORY.into()
        }
    );
    // Also when the token was verified and cached earlier (7.3.2.3 step 6.1.2).
    let cached = store().verify(&token, &ctx()).unwrap();
    assert!(store().check_cached(&cached, &ctx()).is_ok());
    assert!(matches!(
        store().check_cached(&cached, &mallory),
        Err(TokenError::WrongHolder { .. })
    ));
    assert!(matches!(
        store().check_cached(&cached, &ctx_at(claims().not_after + TimeDelta::seconds(1))),
        Err(TokenError::Expired { .. })
    ));
    let mut untrusting = store();
    untrusting.remove(DAS);
    assert!(matches!(
        untrusting.check_cached(&cached, &ctx()),
        Err(TokenError::UntrustedIssuer(_))
    ));
}

#[test]
fn attack_tampered_payload() {
    let token = es_signer().sign(&claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    // Widen the permission to every operation; keep the signature.
    let mut payload = decode_part(parts[1]);
    payload["tkps"]["pm"][0]["pv"]["acr"][0]["acop"] = json!(63);
    let forged = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert_eq!(
        denied(store().verify(&forged, &ctx())),
        TokenError::BadSignature {
            issuer: DAS.into(),
            kid: KID.into()
        }
    );
    // Same for a swapped holder, and for a garbled signature.
    let mut payload = decode_part(parts[1]);
    payload["azp"] = json!(MALLORY);
    let forged = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    let mallory = VerifyContext::new(HCSE, MALLORY, now()).unwrap();
    assert!(matches!(
        denied(store().verify(&forged, &mallory)),
        TokenError::BadSignature { .. }
    ));
    let forged = format!("{}.{}.{}", parts[0], parts[1], "AAAA");
    assert!(matches!(
        denied(store().verify(&forged, &ctx())),
        TokenError::BadSignature { .. }
    ));
    let forged = format!("{}.{}.{}", parts[0], parts[1], "!!");
    assert!(matches!(
        denied(store().verify(&forged, &ctx())),
        TokenError::BadSignature { .. }
    ));
}

#[test]
fn attack_oversized_token() {
    let mut c = claims();
    c.extension = Some("x".repeat(DEFAULT_MAX_TOKEN_SIZE));
    let token = es_signer().sign(&c).unwrap();
    assert!(matches!(
        denied(store().verify(&token, &ctx())),
        TokenError::TooLarge {
            limit: DEFAULT_MAX_TOKEN_SIZE,
            ..
        }
    ));
    // The limit is configurable.
    let token = es_signer().sign(&claims()).unwrap();
    let small = store().with_max_token_size(100);
    assert_eq!(
        denied(small.verify(&token, &ctx())),
        TokenError::TooLarge {
            size: token.len(),
            limit: 100
        }
    );
    assert!(
        store()
            .with_max_token_size(token.len())
            .verify(&token, &ctx())
            .is_ok()
    );
}

/// A request's token is checked for syntax before any issuer is trusted
/// (Decision 9: a malformed one is an invalid argument); one far above any
/// size limit is refused unread, so a few megabytes of junk cost nothing
/// to parse.
#[test]
fn attack_a_huge_token_is_refused_unread() {
    use authz_core::token::{SYNTAX_CHECK_LIMIT, check_syntax};
    let junk = format!("e30.{}.", "A".repeat(SYNTAX_CHECK_LIMIT));
    assert_eq!(
        check_syntax(&junk),
        Err(TokenError::TooLarge {
            size: junk.len(),
            limit: SYNTAX_CHECK_LIMIT
        })
    );
    // Below the limit, the same junk is malformed (Decision 9).
    let small = format!("e30.{}.", "A".repeat(64));
    assert!(check_syntax(&small).is_err_and(|e| e.is_malformed()));
}

/// JWE tokens are decrypted (`tests/jwe.rs`), but only under the key
/// management algorithms of TS-0003 table 8.5.3.2-3: RSA-OAEP with SHA-1
/// is not one (ESData takes RSA-OAEP-256).
#[test]
fn attack_jwe_outside_esdata_algorithms_is_unsupported() {
    let header = b64(&json!({"alg": "RSA-OAEP", "enc": "A256GCM", "typ": "JWT"}));
    // A 96-bit IV and a 128-bit tag: well-formed but for the algorithm.
    let jwe =
        format!("{header}.ZW5jcnlwdGVka2V5.AAAAAAAAAAAAAAAA.Y2lwaGVydGV4dA.AAAAAAAAAAAAAAAAAAAAAA");
    let e = denied(store().verify(&jwe, &ctx()));
    assert!(
        matches!(&e, TokenError::Unsupported(m) if m.contains("8.5.3.2-3")),
        "{e}"
    );
}

/// A JWE of a content encryption outside TS-0003 table 8.5.3.2-4 (AES-CBC
/// with HMAC, RFC 7518 5.2, whose IV is 128 bits) is well formed and
/// unsupported (7.3.2.6.2: "algorithms which are not permitted"), not a
/// malformed AES-GCM token (Decision 9 keeps 4000 for malformed ones).
#[test]
fn attack_jwe_cbc_content_encryption_is_unsupported_not_malformed() {
    for (enc, tag) in [
        ("A128CBC-HS256", "AAAAAAAAAAAAAAAAAAAAAA"),
        (
            "A256CBC-HS512",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
    ] {
        let header = b64(&json!({"alg": "dir", "enc": enc, "typ": "JWT"}));
        let jwe = format!("{header}..AAAAAAAAAAAAAAAAAAAAAA.Y2lwaGVydGV4dA.{tag}");
        assert!(authz_core::token::check_syntax(&jwe).is_ok(), "{enc}");
        let e = denied(store().verify(&jwe, &ctx()));
        assert!(
            matches!(&e, TokenError::Unsupported(m) if m.contains("8.5.3.2-4")),
            "{enc}: {e}"
        );
    }
}

#[test]
fn attack_typ_missing_or_wrong_clause_7_3_2_6_2() {
    for (header, found) in [
        (json!({"alg": "ES256", "kid": KID}), None),
        (
            json!({"alg": "ES256", "typ": "JOSE", "kid": KID}),
            Some("JOSE"),
        ),
        (
            json!({"alg": "ES256", "typ": "at+jwt", "kid": KID}),
            Some("at+jwt"),
        ),
    ] {
        let token = sign_raw(header, jwt_payload(&claims()), &es_key(), Algorithm::ES256);
        assert_eq!(
            denied(store().verify(&token, &ctx())),
            TokenError::NotJwtType(found.map(str::to_owned))
        );
    }
}

#[test]
fn attack_cty_present_clause_7_3_2_6_2() {
    // Only the JWE of a nested JWT has cty; a JWS must not.
    let token = sign_raw(
        json!({"alg": "ES256", "typ": "JWT", "cty": "JWT", "kid": KID}),
        jwt_payload(&claims()),
        &es_key(),
        Algorithm::ES256,
    );
    assert_eq!(
        denied(store().verify(&token, &ctx())),
        TokenError::ContentTypePresent("JWT".into())
    );
}

#[test]
fn attack_alg_not_permitted_key_confusion() {
    // The classic: an HS256 token whose HMAC key is the ES256 issuer's public
    // key (which is public). TS-0003 7.3.2.6.2: discard algorithms the issuer
    // is not permitted.
    let forger = TokenSigner::from_secret(KID, ES256_PUBLIC).unwrap();
    let token = forger.sign(&claims()).unwrap();
    assert_eq!(
        denied(store().verify(&token, &ctx())),
        TokenError::AlgorithmNotPermitted {
            issuer: DAS.into(),
            alg: "HS256".into()
        }
    );
    // Even when the issuer permits HS256 too, an ES256 key never verifies an
    // HS256 token: keys are bound to one algorithm.
    let both = TrustStore::new().with_issuer(
        TrustedIssuer::new(DAS, &[TokenAlgorithm::Es256, TokenAlgorithm::Hs256])
            .with_key(
                KID,
                VerificationKey::from_public_pem(TokenAlgorithm::Es256, ES256_PUBLIC).unwrap(),
            )
            .unwrap()
            .with_key("hs", VerificationKey::from_secret(HS_SECRET).unwrap())
            .unwrap(),
    );
    assert_eq!(
        denied(both.verify(&token, &ctx())),
        TokenError::KeyAlgorithmMismatch {
            issuer: DAS.into(),
            kid: KID.into(),
            key_alg: TokenAlgorithm::Es256,
            alg: TokenAlgorithm::Hs256
        }
    );
    // Unsupported algorithm names are simply not permitted.
    let token = sign_raw(
        json!({"alg": "HS512", "typ": "JWT", "kid": KID}),
        jwt_payload(&claims()),
        &EncodingKey::from_secret(HS_SECRET),
        Algorithm::HS512,
    );
    assert!(matches!(
        denied(store().verify(&token, &ctx())),
        TokenError::AlgorithmNotPermitted { .. }
    ));
}

#[test]
fn attack_untrusted_issuer_clause_7_3_2_2_step_4_1_1_2_1() {
    let mut c = claims();
    c.issuer = "//evil.example.com/in/Cdas".into();
    let token = TokenSigner::from_pem(TokenAlgorithm::Es256, KID, ES256_OTHER_PRIVATE)
        .unwrap()
        .sign(&c)
        .unwrap();
    assert_eq!(
        denied(store().verify(&token, &ctx())),
        TokenError::UntrustedIssuer("//evil.example.com/in/Cdas".into())
    );
    // The issuer is compared exactly.
    let mut c = claims();
    c.issuer = format!("{DAS}/");
    let token = es_signer().sign(&c).unwrap();
    assert!(matches!(
        denied(store().verify(&token, &ctx())),
        TokenError::UntrustedIssuer(_)
    ));
}

#[test]
fn attack_crit_header_is_unsupported() {
    let token = sign_raw(
        json!({"alg": "ES256", "typ": "JWT", "kid": KID, "crit": ["exp"]}),
        jwt_payload(&claims()),
        &es_key(),
        Algorithm::ES256,
    );
    assert!(matches!(
        denied(store().verify(&token, &ctx())),
        TokenError::Unsupported(_)
    ));
}

#[test]
fn decision_9_malformed_tokens_are_invalid_arguments() {
    let good = es_signer().sign(&claims()).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let signed_bad_claims = {
        let mut p = jwt_payload(&claims());
        p["tkps"] = json!({"pm": [{"ris": [TARGET]}]});
        sign_raw(es_header(), p, &es_key(), Algorithm::ES256)
    };
    for bad in [
        String::new(),
        "abc".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", b64(&json!([1])), parts[1], parts[2]),
        format!("{}.{}.{}", b64(&json!({"typ": "JWT"})), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode("not json"),
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            parts[0],
            b64(&json!({"jti": "x@y.z"})),
            parts[2]
        ),
        signed_bad_claims,
    ] {
        let e = store().verify(&bad, &ctx()).unwrap_err();
        assert!(e.is_malformed(), "{bad:?}: {e:?}");
    }
}

/// Decision 9 before any key is looked at: a claim set that is no
/// `m2m:tokenClaimSet` (table 7.3.2.6.2-1) makes the token malformed
/// whoever signed it, a trusted DAS, an unknown issuer or nobody, so that
/// every PDP answers it alike (4000), with or without DASes configured.
#[test]
fn decision_9_check_syntax_reads_the_claim_set_whoever_the_issuer() {
    use authz_core::token::check_syntax;
    let good = es_signer().sign(&claims()).unwrap();
    check_syntax(&good).expect("a well-formed token");
    let mut untrusted = claims();
    untrusted.issuer = "//elsewhere.example/cse/CDas".into();
    check_syntax(&es_signer().sign(&untrusted).unwrap()).expect("well-formed, if untrusted");
    for (what, change) in [
        ("jti", json!({"jti": "notanid"})),
        (
            "nbf after exp",
            json!({"nbf": 2_000_000_000, "exp": 1_000_000_000}),
        ),
        ("pm", json!({"tkps": {"pm": [{"ris": [TARGET]}]}})),
        ("iss", json!({"iss": null})),
        // Lists where table 9.6.39-3 and TS-0004 6.3.5.41 have objects (serde
        // would read a struct from a list of its fields), as in a policy file.
        (
            "tkps a list",
            json!({"tkps": [[{"ris": [TARGET], "rids": [ROLE]}]]}),
        ),
        (
            "pm[0] a list",
            json!({"tkps": {"pm": [[[TARGET], {"acr": []}]]}}),
        ),
        (
            "pv a list",
            json!({"tkps": {"pm": [{"ris": [TARGET], "pv": [[{"acor": [PHONE], "acop": 2}]]}]}}),
        ),
        (
            "acr[0] a list",
            json!({"tkps": {"pm": [{"ris": [TARGET], "pv": {"acr": [[[PHONE], 2]]}}]}}),
        ),
    ] {
        for issuer in [DAS, "//elsewhere.example/cse/CDas"] {
            let mut p = jwt_payload(&claims());
            p["iss"] = json!(issuer);
            for (k, v) in change.as_object().unwrap() {
                if v.is_null() {
                    p.as_object_mut().unwrap().remove(k);
                } else {
                    p[k] = v.clone();
                }
            }
            for token in [
                sign_raw(es_header(), p.clone(), &es_key(), Algorithm::ES256),
                format!(
                    "{}.{}.",
                    b64(&json!({"alg": "none", "typ": "JWT"})),
                    b64(&p)
                ),
            ] {
                let e = check_syntax(&token).expect_err(what);
                assert!(
                    matches!(e, TokenError::InvalidClaims(_)) && e.is_malformed(),
                    "{what} from {issuer}: {e:?}"
                );
            }
        }
    }
    // A JOSE header `kid` that is no string is malformed whoever the
    // issuer, as the verification of a trusted DAS's token finds it.
    for issuer in [DAS, "//elsewhere.example/cse/CDas"] {
        let mut p = jwt_payload(&claims());
        p["iss"] = json!(issuer);
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": 5});
        let token = sign_raw(header, p, &es_key(), Algorithm::ES256);
        let e = check_syntax(&token).expect_err("kid");
        assert!(
            matches!(e, TokenError::Malformed(_)) && e.is_malformed(),
            "kid from {issuer}: {e:?}"
        );
        let e = store().verify(&token, &ctx()).expect_err("kid");
        assert!(e.is_malformed(), "kid from {issuer}: {e:?}");
    }
}

// ---------------------------------------------------------------------------
// Permission evaluation (TS-0003 7.3.2.5)
// ---------------------------------------------------------------------------

fn verified(c: &TokenClaims) -> authz_core::token::VerifiedToken {
    store()
        .verify(&es_signer().sign(c).unwrap(), &ctx())
        .unwrap()
}

#[test]
fn clause_7_3_2_5_permissions_ris_includes_target() {
    let v = verified(&claims());
    let expected = Granted {
        privileges: vec![(0, read_by(PHONE))],
        role_ids: vec![ROLE.into()],
    };
    // The same resource in absolute, SP-relative and CSE-relative form.
    for target in [
        TARGET,
        "//sp.example.com/id-in/cnt7Xk2",
        "//SP.example.com/id-in/cnt7Xk2",
        "cnt7Xk2",
    ] {
        assert_eq!(
            v.token_permissions_for(target, ctx().hosting()),
            expected,
            "{target}"
        );
    }
}

/// 7.3.2.5 checks "the permission element in the permission list one by
/// one": a granted `pv` keeps its position in `tkps.pm`, so an explanation
/// names the permission that was evaluated, not its rank among those that
/// apply to the target.
#[test]
fn clause_7_3_2_5_a_granted_permission_keeps_its_position_in_the_list() {
    let mut c = claims();
    c.permissions.pm = vec![
        TokenPermission {
            ris: vec!["/id-in/cnt-other".into()],
            pv: Some(read_by("Cother")),
            rids: vec![],
        },
        TokenPermission {
            ris: vec![TARGET.into()],
            pv: Some(read_by(PHONE)),
            rids: vec![],
        },
    ];
    let v = verified(&c);
    assert_eq!(
        v.token_permissions_for(TARGET, ctx().hosting()).privileges,
        vec![(1, read_by(PHONE))]
    );
}

#[test]
fn clause_7_3_2_5_permissions_other_resources_get_nothing() {
    // A token whose permissions are all limited to one resource.
    let mut c = claims();
    c.permissions.pm = vec![TokenPermission {
        ris: vec![TARGET.into()],
        pv: Some(read_by(PHONE)),
        rids: vec![ROLE.into()],
    }];
    let v = verified(&c);
    assert_eq!(
        v.token_permissions_for(TARGET, ctx().hosting())
            .privileges
            .len(),
        1
    );
    assert_eq!(
        v.token_permissions_for(TARGET, ctx().hosting()).role_ids,
        vec![ROLE.to_owned()]
    );
    // Another resource, a child, a parent, another CSE's resource with the
    // same path, and an unusable ID: nothing ("shall apply only to the
    // resources specified", exact match).
    for target in [
        "/id-in/cnt-other",
        "/id-in/cnt7Xk2/cin1",
        "/id-in",
        "//other.example.com/id-in/cnt7Xk2",
        "/mn-cse/cnt7Xk2",
        "",
        "cnt 7Xk2",
    ] {
        let g = v.token_permissions_for(target, ctx().hosting());
        assert!(g.is_empty(), "{target}: {g:?}");
    }
    // In the two-permission example, the rids-only permission still applies.
    let v = verified(&claims());
    let g = v.token_permissions_for("/id-in/cnt-other", ctx().hosting());
    assert!(g.privileges.is_empty());
    assert_eq!(g.role_ids, vec![ROLE.to_owned()]);
}

/// TS-0003 7.3.2.5: with `ris`, "the authorization information ... shall
/// apply only to the resources specified by this element", and a
/// CSE-relative resource ID names a resource of the CSE that receives the
/// request. A token verified at CSE A and cached (a Local-Token-ID) is
/// judged, when used at CSE B, with B's context: B's `door` is not A's
/// `//sp.example.com/cse-a/door`, though the token names both CSEs in its
/// audience.
#[test]
fn clause_7_3_2_5_permissions_are_scoped_to_the_requests_hosting_cse() {
    const DOOR_A: &str = "//sp.example.com/cse-a/door";
    let mut c = claims();
    c.audience = vec![
        "//sp.example.com/cse-a".into(),
        "//sp.example.com/cse-b".into(),
    ];
    c.permissions.pm = vec![TokenPermission {
        ris: vec![DOOR_A.into()],
        pv: Some(read_by(PHONE)),
        rids: vec![],
    }];
    let token = es_signer().sign(&c).unwrap();
    let at_a = VerifyContext::new("//sp.example.com/cse-a", PHONE, now()).unwrap();
    let at_b = VerifyContext::new("//sp.example.com/cse-b", PHONE, now()).unwrap();
    // First used at A: A's `door` is the resource the token names.
    let v = store().verify(&token, &at_a).unwrap();
    assert_eq!(
        v.token_permissions_for("door", at_a.hosting())
            .privileges
            .len(),
        1
    );
    // Reused at B (checked as a cached token there: time, audience, holder).
    store().check_cached(&v, &at_b).unwrap();
    for target in ["door", "/cse-b/door", "//sp.example.com/cse-b/door"] {
        let g = v.token_permissions_for(target, at_b.hosting());
        assert!(g.is_empty(), "{target} at B: {g:?}");
    }
    // A's door named absolutely (or SP-relative) is still A's door.
    for target in [DOOR_A, "/cse-a/door"] {
        let g = v.token_permissions_for(target, at_b.hosting());
        assert_eq!(g.privileges.len(), 1, "{target} at B");
    }
}

#[test]
fn clause_7_3_2_5_permissions_join_the_decision() {
    // A permission granting a role and another granting privileges, used the
    // way the PDP uses them: pv as an extra applicable policy, rids as
    // verified roles.
    let mut c = claims();
    c.permissions.pm = vec![
        TokenPermission {
            ris: vec![TARGET.into()],
            pv: Some(read_by(PHONE)),
            rids: vec![],
        },
        TokenPermission {
            ris: vec!["/id-in/lock".into()],
            pv: None,
            rids: vec![ROLE.into()],
        },
    ];
    let v = verified(&c);
    let hosting = ctx().hosting().clone();
    let permit = |target: &str, op: Operation, stored: &[CompiledAcp]| {
        let granted = v.token_permissions_for(target, ctx().hosting());
        let from_token: Vec<CompiledAcp> = granted
            .privileges
            .iter()
            .map(|(i, pv)| {
                CompiledAcp::from_privileges(format!("{}#{i}", v.token_id()), pv).unwrap()
            })
            .collect();
        let applicable: Vec<Applicable<'_>> = stored
            .iter()
            .chain(&from_token)
            .map(|acp| Applicable {
                acp,
                kind: PrivilegeKind::Privileges,
            })
            .collect();
        let request = DecisionRequest::new(PHONE, op, target, now());
        let options = DecideOptions {
            explain: false,
            granted_roles: &granted.role_ids,
        };
        decide(&request, &hosting, &applicable, &NoAttributes, &options).effect == Effect::Permit
    };
    let by_role = CompiledAcp::from_privileges(
        "acp-lock",
        &serde_json::from_value(json!({"acr": [{"acor": [ROLE], "acop": 4}]})).unwrap(),
    )
    .unwrap();
    assert!(permit(TARGET, Operation::Retrieve, &[]));
    assert!(!permit(TARGET, Operation::Update, &[]));
    assert!(!permit("/id-in/other", Operation::Retrieve, &[]));
    assert!(permit(
        "/id-in/lock",
        Operation::Update,
        std::slice::from_ref(&by_role)
    ));
    // The role is only granted on the resources its permission lists.
    assert!(!permit(
        "/id-in/other",
        Operation::Update,
        std::slice::from_ref(&by_role)
    ));
}

/// A 1024-bit RSA key pair (PKCS#8, SPKI): too small for RS256.
const RSA_1024_PRIVATE: &[u8] = b"-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAOLYFn5reb5v0dAh
cqUTdrGogG+8s8CYiBatTZJCZEX4IKDcvvoTPJnpjR2GlY2qssq2uodW1nghUfpj
j2l83pEuvtymb+QjAyIGPEVLiL8Ob+J2t+Kf0oPFI2EMBFMgIpkaXO3Ipy6vzQLi
fiQgf0dAHbAnN9GtgS/aivMyx0FxAgMBAAECgYAil6VGfglAuziZrqAXAFLXYMTF
RVd8BUarfp4Xsbws11vSbBdLd2eEaRM173Ia+m7tbtQfE2T9SMeBkXErOvmNjLmy
DVqxymF58TCnLoC0OR/fBa/d/J66SSKvKOMW0nGZiujCCHTJ82azWVGCoGLEx/Oh
bLm5XRQkR3uYb3upiQJBAPYsHVIOzS/dmsNUl69RO4V0eWgj/XqC8rPovZ9TA+LF
tuAR7KpJs2zi6/KTEoMgM4shIUlaaIJKlmmO/Ay1h0MCQQDr5nBA8ZUNZUBKKh1q
1VZNgDJalNNbL+8hZKPYbKr0ZkJf8Jv1Qc50ilH0WnIi18xF20YpP0Jd14gVcCip
RMc7AkEAqwwx/09bkRO4slp33xBhfDRXG15OhS6xtwJTp33GKG7ax8yMljIJovH1
oiJA7a2VQuntOAvCrC1pX8VDKw2DAwJAf9YKAPep2W+ELmyyMmHX+fm9z96Uxvar
9QGv1KnW3sjHsWwXaAo4UmlezjdxYLZnCXgxhkq0sVwKb+uu7UPLXwJBAKUCVrSe
rKlCuUsD8zh2cKZeKJK3c9idZEVyQbaBe1gfGTnNncW+M4APttgBj4IY6nbCLozI
Z653Kb7f/y7sfio=
-----END PRIVATE KEY-----
";
const RSA_1024_PUBLIC: &[u8] = b"-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDi2BZ+a3m+b9HQIXKlE3axqIBv
vLPAmIgWrU2SQmRF+CCg3L76EzyZ6Y0dhpWNqrLKtrqHVtZ4IVH6Y49pfN6RLr7c
pm/kIwMiBjxFS4i/Dm/idrfin9KDxSNhDARTICKZGlztyKcur80C4n4kIH9HQB2w
JzfRrYEv2orzMsdBcQIDAQAB
-----END PUBLIC KEY-----
";
