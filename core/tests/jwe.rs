//! JWE oneM2M JWTs (TS-0003 7.3.2.6.2, "oneM2M JWT Security Profile"): the
//! Encryption-only and Nested Sign-then-encrypt ESData classes, with every
//! key management algorithm of TS-0003 table 8.5.3.2-3 and content
//! encryption algorithm of table 8.5.3.2-4.
//!
//! The tokens in `jwe/fixtures.json` were made by `jwe/generate.py` with
//! Python's `cryptography` package, an implementation independent of the
//! code under test; their inner JWSs are signed with `keys/es256-private.pem`.
//! The claim set is the example of spec notes §7.1.

use authz_core::jwe::{
    ContentEncryption, DecryptionKey, DecryptionKeys, EncryptionKey, JweError, KeyManagement,
    encrypt,
};
use authz_core::token::{
    Encryption, TokenAlgorithm, TokenError, TokenSecurity, TrustStore, TrustedIssuer,
    VerificationKey, VerifyContext, check_syntax,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const FIXTURES: &str = include_str!("jwe/fixtures.json");
const ES256_PUBLIC: &[u8] = include_bytes!("keys/es256-public.pem");
const DAS: &str = "//sp.example.com/id-in/Cdas";
const HCSE: &str = "//sp.example.com/id-in";
const PHONE: &str = "//sp.example.com/id-in/Cphone";
const MALLORY: &str = "//sp.example.com/id-in/Cmallory";

fn fixtures() -> Value {
    serde_json::from_str(FIXTURES).unwrap()
}

fn token(name: &str) -> String {
    fixtures()["tokens"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .to_owned()
}

fn keys() -> DecryptionKeys {
    DecryptionKeys::from_jwk_set(&fixtures()["jwks"].to_string()).unwrap()
}

/// Between the example's nbf (1795000000) and exp (1795003600).
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_001_800, 0).unwrap()
}

fn store() -> TrustStore {
    TrustStore::new()
        .with_issuer(
            TrustedIssuer::new(DAS, &[TokenAlgorithm::Es256])
                .with_key(
                    "das-es-1",
                    VerificationKey::from_public_pem(TokenAlgorithm::Es256, ES256_PUBLIC).unwrap(),
                )
                .unwrap(),
        )
        .with_decryption_keys(keys())
}

fn ctx() -> VerifyContext {
    VerifyContext::new(HCSE, PHONE, now()).unwrap()
}

fn verify(name: &str) -> Result<TokenSecurity, TokenError> {
    store().verify(&token(name), &ctx()).map(|v| {
        assert_eq!(v.claims().token_id, "tk42@das.example.com");
        assert_eq!(v.claims().holder, PHONE);
        assert_eq!(v.compact(), token(name), "the token as received is kept");
        v.security().clone()
    })
}

fn signed() -> Box<TokenSecurity> {
    Box::new(TokenSecurity::Signed {
        algorithm: TokenAlgorithm::Es256,
        kid: "das-es-1".into(),
    })
}

fn nested(algorithm: KeyManagement, content: ContentEncryption, kid: &str) -> TokenSecurity {
    TokenSecurity::SignedThenEncrypted {
        encryption: Encryption {
            algorithm,
            content,
            kid: kid.into(),
        },
        signature: signed(),
    }
}

/// "When the Nested-Sign-then-encrypt ESData security class is used, then
/// the JWT claims are the payload of a JWS, and the JWS becomes the payload
/// of a JWE" (7.3.2.6.2), under each algorithm of tables 8.5.3.2-3/-4.
#[test]
fn clause_7_3_2_6_2_nested_sign_then_encrypt_under_every_esdata_key_management() {
    use ContentEncryption::*;
    use KeyManagement::*;
    for (name, expected) in [
        (
            "nested_rsa_oaep_256_a256gcm",
            nested(RsaOaep256, A256Gcm, "cse-rsa"),
        ),
        (
            "nested_ecdh_es_a128kw_a128gcm_apu_apv",
            nested(EcdhEsA128Kw, A128Gcm, "cse-ec"),
        ),
        (
            "nested_a256kw_a256gcm",
            nested(A256Kw, A256Gcm, "shared-kw"),
        ),
        (
            "nested_a128kw_a192gcm",
            nested(A128Kw, A192Gcm, "shared-kw128"),
        ),
        ("nested_dir_a128gcm", nested(Dir, A128Gcm, "shared-dir")),
        // No kid: the only A256KW key.
        ("nested_without_kid", nested(A256Kw, A256Gcm, "shared-kw")),
    ] {
        assert_eq!(verify(name), Ok(expected), "{name}");
    }
}

/// A decrypted token grants what its claims say (7.3.2.5), as a JWS does.
#[test]
fn clause_7_3_2_5_a_decrypted_token_grants_its_permissions() {
    let v = store()
        .verify(&token("nested_ecdh_es_a128kw_a128gcm_apu_apv"), &ctx())
        .unwrap();
    let hosting = authz_core::HostingContext::new("sp.example.com", "id-in").unwrap();
    let granted = v.token_permissions_for("/id-in/cnt7Xk2", &hosting);
    assert_eq!(granted.privileges.len(), 1, "the permission on cnt7Xk2");
    assert_eq!(granted.role_ids, vec!["guest@roles.example.com".to_owned()]);
}

/// Encryption-only: the claims are the JWE's plaintext and the JWE has no
/// `cty` (7.3.2.6.2). Under a secret shared with the issuer it names, only
/// that issuer could have made it.
#[test]
fn clause_7_3_2_6_2_encryption_only_under_a_secret_shared_with_the_issuer() {
    assert_eq!(
        verify("encryption_only_a192kw_shared_with_issuer"),
        Ok(TokenSecurity::Encrypted(Encryption {
            algorithm: KeyManagement::A192Kw,
            content: ContentEncryption::A256Gcm,
            kid: "das-only".into(),
        }))
    );
}

/// Encrypted to the CSE's public key, or under a key that is not the
/// issuer's, an Encryption-only token says nothing about who made it: the
/// CSE is configured with "the combinations of ESData Security classes and
/// algorithms permitted by the Token Issuer" (7.3.2.6.2), and these are not.
#[test]
fn clause_7_3_2_6_2_encryption_only_under_a_key_anyone_may_use_is_refused() {
    for (name, kid) in [
        ("encryption_only_rsa_oaep_256", "cse-rsa"),
        ("encryption_only_a256kw_not_bound_to_issuer", "shared-kw"),
    ] {
        assert_eq!(
            verify(name),
            Err(TokenError::EncryptionOnlyNotAuthenticated {
                issuer: DAS.into(),
                kid: kid.into(),
            }),
            "{name}"
        );
    }
    // And from an issuer the CSE does not trust at all.
    let untrusted = TrustStore::new().with_decryption_keys(keys());
    assert_eq!(
        untrusted
            .verify(&token("encryption_only_a192kw_shared_with_issuer"), &ctx())
            .unwrap_err(),
        TokenError::UntrustedIssuer(DAS.into())
    );
}

/// The inner JWS is verified as any JWS: signed by a key the issuer does
/// not have, it is refused.
#[test]
fn nested_jws_signed_by_an_unknown_key_is_refused() {
    assert_eq!(
        verify("nested_inner_signed_by_unknown_key"),
        Err(TokenError::BadSignature {
            issuer: DAS.into(),
            kid: "das-es-1".into(),
        })
    );
}

/// Content checks of 7.3.2.5 (holder, validity) still apply once decrypted.
#[test]
fn clause_7_3_2_5_holder_and_validity_are_checked_after_decryption() {
    let jwe = token("nested_a256kw_a256gcm");
    let as_mallory = VerifyContext::new(HCSE, MALLORY, now()).unwrap();
    assert!(matches!(
        store().verify(&jwe, &as_mallory),
        Err(TokenError::WrongHolder { .. })
    ));
    let later = VerifyContext::new(
        HCSE,
        PHONE,
        DateTime::from_timestamp(1_795_003_601, 0).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        store().verify(&jwe, &later),
        Err(TokenError::Expired { .. })
    ));
}

#[test]
fn keys_are_chosen_by_kid_and_bound_to_one_algorithm() {
    assert_eq!(
        verify("nested_unknown_kid"),
        Err(TokenError::Decryption(JweError::UnknownKey(
            "nobody".into()
        )))
    );
    assert_eq!(
        verify("nested_kid_of_other_algorithm"),
        Err(TokenError::Decryption(JweError::KeyAlgorithmMismatch {
            kid: "shared-kw".into(),
            key_alg: KeyManagement::A256Kw,
            alg: KeyManagement::A128Kw,
        }))
    );
    // A CSE without decryption keys decrypts nothing.
    let plain = TrustStore::new();
    assert_eq!(
        plain
            .verify(&token("nested_rsa_oaep_256_a256gcm"), &ctx())
            .unwrap_err(),
        TokenError::Decryption(JweError::UnknownKey("cse-rsa".into()))
    );
}

/// AES-GCM authenticates the ciphertext, the tag and the protected header
/// (the additional authenticated data, RFC 7516 5.1 step 14).
#[test]
fn tampered_ciphertext_tag_or_header_does_not_decrypt() {
    for (name, kid) in [
        ("nested_dir_a128gcm_ciphertext_tampered", "shared-dir"),
        ("nested_dir_a128gcm_tag_tampered", "shared-dir"),
        ("nested_dir_a128gcm_header_tampered", "shared-dir"),
        ("nested_a256kw_a256gcm_ciphertext_tampered", "shared-kw"),
        ("nested_a256kw_a256gcm_tag_tampered", "shared-kw"),
    ] {
        assert_eq!(
            verify(name),
            Err(TokenError::Decryption(JweError::Undecryptable(kid.into()))),
            "{name}"
        );
    }
}

/// The JOSE header of the JWE: `typ` JWT; `cty` none or JWT (7.3.2.6.2);
/// algorithms from ESData's tables; no compression.
#[test]
fn clause_7_3_2_6_2_jwe_header_rules() {
    assert_eq!(
        verify("nested_without_typ"),
        Err(TokenError::NotJwtType(None))
    );
    assert_eq!(
        verify("nested_cty_not_jwt"),
        Err(TokenError::NotNestedJwt("json".into()))
    );
    assert!(
        matches!(verify("nested_a128cbc_hs256"), Err(TokenError::Unsupported(m)) if m.contains("8.5.3.2-4")),
    );
    assert!(
        matches!(verify("nested_with_zip"), Err(TokenError::Unsupported(m)) if m.contains("zip")),
    );
}

/// Decision 9: a JWE whose header is readable passes the syntax check
/// (what it holds is judged once decrypted); one whose header is not JSON
/// or names no `alg`/`enc` is malformed.
#[test]
fn decision_9_syntax_of_a_jwe() {
    for name in [
        "nested_rsa_oaep_256_a256gcm",
        "nested_with_zip",
        "nested_unknown_kid",
    ] {
        check_syntax(&token(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let good = token("nested_dir_a128gcm");
    let rest = good.split_once('.').unwrap().1;
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    for bad_header in [
        URL_SAFE_NO_PAD.encode("not json"),
        b64(&json!({"alg": "dir", "typ": "JWT"})),
        b64(&json!({"enc": "A128GCM", "typ": "JWT"})),
        b64(&json!({"alg": 7, "enc": "A128GCM"})),
    ] {
        let e = check_syntax(&format!("{bad_header}.{rest}")).unwrap_err();
        assert!(e.is_malformed(), "{bad_header}: {e}");
    }
}

/// What this crate encrypts, it decrypts, for every algorithm pair (the
/// fixtures above pin the format against an independent implementation).
#[test]
fn encrypt_then_verify_round_trips_every_algorithm_pair() {
    let inner = fixtures()["inner_jws"].as_str().unwrap().to_owned();
    let jwks = fixtures()["jwks"]["keys"].clone();
    for jwk in jwks.as_array().unwrap() {
        let key = DecryptionKey::from_jwk(jwk, "k").unwrap();
        for enc in ContentEncryption::ALL {
            if key.algorithm() == KeyManagement::Dir {
                // `dir` is the content key itself: only the enc of its size.
                let k = URL_SAFE_NO_PAD.decode(jwk["k"].as_str().unwrap()).unwrap();
                if k.len() != enc.key_len() {
                    continue;
                }
            }
            let jwe = encrypt(inner.as_bytes(), &EncryptionKey::from(&key), enc, true).unwrap();
            assert_eq!(
                store().verify(&jwe, &ctx()).map(|v| v.security().clone()),
                Ok(nested(key.algorithm(), enc, key.kid())),
                "{} / {enc}",
                key.algorithm()
            );
        }
    }
}

/// A token issuer holds only the CSE's public key.
#[test]
fn encryption_keys_read_public_jwks() {
    let jwks = fixtures()["jwks"]["keys"].clone();
    let inner = fixtures()["inner_jws"].as_str().unwrap().to_owned();
    for private in jwks.as_array().unwrap() {
        if private["kty"] == "oct" {
            continue;
        }
        let mut public = private.clone();
        for member in ["d", "p", "q", "dp", "dq", "qi"] {
            public.as_object_mut().unwrap().remove(member);
        }
        let key = EncryptionKey::from_jwk(&public, "k").unwrap();
        let jwe = encrypt(inner.as_bytes(), &key, ContentEncryption::A256Gcm, true).unwrap();
        assert!(store().verify(&jwe, &ctx()).is_ok(), "{}", key.kid());
    }
}

/// As every JSON file of the project: a leading BOM is skipped (RFC 8259
/// 8.1), and a member written twice in a key is an error, not "the last
/// one wins" (which `kid` or `k` counts would be the parser's guess).
#[test]
fn a_jwk_set_skips_a_bom_and_refuses_a_repeated_member() {
    let text = fixtures()["jwks"].to_string();
    assert!(DecryptionKeys::from_jwk_set(&format!("\u{feff}{text}")).is_ok());
    let twice = r#"{"keys": [{"kty": "oct", "kid": "a", "kid": "b", "alg": "A128KW", "k": "AAAAAAAAAAAAAAAAAAAAAA"}]}"#;
    let e = DecryptionKeys::from_jwk_set(twice).unwrap_err();
    assert!(e.reason.contains("kid"), "{e:?}");
}

/// Configuration errors name the key and member.
#[test]
fn jwk_set_errors_name_the_member() {
    let err = |jwks: Value| DecryptionKeys::from_jwk_set(&jwks.to_string()).unwrap_err();
    let e = err(json!({"keys": [{"kty": "oct", "alg": "A128KW", "k": "AAAAAAAAAAAAAAAAAAAAAA"}]}));
    assert_eq!(e.path, "keys[0].kid");
    let e = err(
        json!({"keys": [{"kty": "oct", "kid": "a", "alg": "A256KW", "k": "AAAAAAAAAAAAAAAAAAAAAA"}]}),
    );
    assert_eq!(
        (e.path.as_str(), e.reason.contains("32")),
        ("keys[0].k", true)
    );
    let e = err(
        json!({"keys": [{"kty": "RSA", "kid": "a", "alg": "A128KW", "k": "AAAAAAAAAAAAAAAAAAAAAA"}]}),
    );
    assert_eq!(e.path, "keys[0].kty");
    let e = err(json!({"keys": [{"kty": "oct", "kid": "a", "alg": "RSA1_5", "k": "AA"}]}));
    assert_eq!(e.path, "keys[0].alg");
    let e = err(
        json!({"keys": [{"kty": "oct", "kid": "a", "alg": "A128KW", "use": "sig", "k": "AAAAAAAAAAAAAAAAAAAAAA"}]}),
    );
    assert_eq!(e.path, "keys[0].use");
    let ec = fixtures()["jwks"]["keys"][1].clone();
    let mut with_iss = ec.clone();
    with_iss["iss"] = json!(DAS);
    let e = err(json!({"keys": [with_iss]}));
    assert_eq!(
        e.path, "keys[0].iss",
        "a public-key algorithm cannot belong to an issuer"
    );
    let mut wrong_point = ec.clone();
    wrong_point["x"] = fixtures()["jwks"]["keys"][0]["e"].clone();
    assert!(err(json!({"keys": [wrong_point]})).reason.contains("P-256"));
    let e = err(json!({"keys": [ec.clone(), ec]}));
    assert_eq!(e.path, "keys[1].kid");
    assert_eq!(err(json!([])).path, "keys");
}

/// Decision 9: what makes a JWE malformed whatever the key (an IV or tag of
/// the wrong size, `dir` with an encrypted key, an `epk` off P-256) is
/// found before any key is chosen, so the token is an invalid argument at
/// every CSE alike, one holding the `kid` or not.
#[test]
fn decision_9_a_malformed_jwe_is_malformed_whatever_keys_the_cse_holds() {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let good = token("nested_dir_a128gcm");
    let parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let with = |i: usize, part: String| {
        let mut p = parts.clone();
        p[i] = part;
        p.join(".")
    };
    let header = |kid: &str| {
        b64(&json!({"alg": "dir", "enc": "A128GCM", "typ": "JWT", "cty": "JWT", "kid": kid}))
    };
    let ecdh = |kid: &str, x: &str| {
        b64(
            &json!({"alg": "ECDH-ES+A128KW", "enc": "A128GCM", "typ": "JWT", "cty": "JWT",
                    "kid": kid, "epk": {"kty": "EC", "crv": "P-256", "x": x, "y": x}}),
        )
    };
    for kid in ["shared-dir", "nobody"] {
        let headed = |h: String| {
            let mut p = parts.clone();
            p[0] = h;
            p
        };
        let mut no_iv = headed(header(kid));
        no_iv[2] = String::new();
        let mut short_tag = headed(header(kid));
        short_tag[4] = URL_SAFE_NO_PAD.encode([0u8; 15]);
        let mut dir_with_key = headed(header(kid));
        dir_with_key[1] = URL_SAFE_NO_PAD.encode([1u8; 24]);
        let off_curve = headed(ecdh(kid, &URL_SAFE_NO_PAD.encode([7u8; 32])));
        for (what, bad) in [
            ("empty IV", no_iv),
            ("15-byte tag", short_tag),
            ("dir with an encrypted key", dir_with_key),
            ("epk off P-256", off_curve),
        ] {
            let bad = bad.join(".");
            let e = check_syntax(&bad).unwrap_err();
            assert!(e.is_malformed(), "{what}, kid {kid}: {e}");
            let e = store().verify(&bad, &ctx()).unwrap_err();
            assert!(e.is_malformed(), "{what}, kid {kid}: {e}");
        }
    }
    // The untouched token is well-formed.
    check_syntax(&with(0, parts[0].clone())).unwrap();
}

/// A secret shared with one issuer (its JWK's `iss`) carries that issuer's
/// tokens only, nested ones too: a token of another issuer under it is
/// refused even when its signature verifies.
#[test]
fn a_key_shared_with_one_issuer_carries_only_its_tokens() {
    let partner = json!({"kty": "oct", "kid": "partner", "alg": "A128KW",
                         "k": URL_SAFE_NO_PAD.encode([9u8; 16]),
                         "iss": "//sp.example.com/id-in/Cpartner"});
    let mut keys = keys();
    keys.insert(DecryptionKey::from_jwk(&partner, "partner").unwrap());
    let store = store().with_decryption_keys(keys.clone());
    let inner = fixtures()["inner_jws"].as_str().unwrap().to_owned();
    let key = EncryptionKey::from_jwk(&partner, "partner").unwrap();
    let jwe = encrypt(inner.as_bytes(), &key, ContentEncryption::A128Gcm, true).unwrap();
    assert_eq!(
        store.verify(&jwe, &ctx()).unwrap_err(),
        TokenError::KeyOfAnotherIssuer {
            kid: "partner".into(),
            owner: "//sp.example.com/id-in/Cpartner".into(),
            issuer: DAS.into(),
        }
    );
    // Under the key shared with the token's own issuer, it is accepted.
    let das_only = keys.iter().find(|k| k.kid() == "das-only").unwrap();
    let jwe = encrypt(
        inner.as_bytes(),
        &EncryptionKey::from(das_only),
        ContentEncryption::A128Gcm,
        true,
    )
    .unwrap();
    assert!(store.verify(&jwe, &ctx()).is_ok());
}

/// A token issuer holds the recipient's public key only: a JWK with the
/// private member `d` is refused as an encryption key.
#[test]
fn an_encryption_key_with_private_members_is_refused() {
    let private = fixtures()["jwks"]["keys"][1].clone();
    let e = EncryptionKey::from_jwk(&private, "jwk").unwrap_err();
    assert_eq!(e.path, "jwk.d", "{e}");
    let rsa = fixtures()["jwks"]["keys"][0].clone();
    assert_eq!(
        EncryptionKey::from_jwk(&rsa, "jwk").unwrap_err().path,
        "jwk.d"
    );
}
