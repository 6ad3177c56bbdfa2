//! JWE compact serializations (RFC 7516) of oneM2M JWTs.
//!
//! TS-0003 7.3.2.6.2 lets a oneM2M JWT use any ESData security class: a JWS
//! (Signature-only, [`crate::token`]), a JWE whose plaintext is the claim set
//! (Encryption-only), or a JWE whose plaintext is a JWS (Nested
//! Sign-then-encrypt, `cty: "JWT"`), with "any algorithm supported by ESData
//! for the [...] JWE Compact Representation". Those are the key management
//! algorithms of TS-0003 table 8.5.3.2-3 ([`KeyManagement`]) and the content
//! encryption algorithms of table 8.5.3.2-4 ([`ContentEncryption`]).
//!
//! This module holds the keys a CSE decrypts with ([`DecryptionKeys`], read
//! from a JWK Set, RFC 7517), decryption ([`decrypt`]) and encryption
//! ([`encrypt`], for a token issuer and for tests). What a decrypted token
//! must then be is [`crate::token::TrustStore::verify`]'s business.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::generic_array::typenum::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value};
use thiserror::Error;
use zeroize::Zeroizing;

/// The shortest RSA modulus accepted, in bits (RFC 7518 4.3: "A key of size
/// 2048 bits or larger MUST be used").
pub const MIN_RSA_BITS: usize = 2048;

/// A JWE key management algorithm (`alg`) of TS-0003 table 8.5.3.2-3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyManagement {
    /// `dir`: the shared key is the content encryption key.
    Dir,
    /// `A128KW`: AES Key Wrap (RFC 3394) with a 128-bit shared key.
    A128Kw,
    /// `A192KW`.
    A192Kw,
    /// `A256KW`.
    A256Kw,
    /// `RSA-OAEP-256`: RSAES-OAEP with SHA-256 and MGF1 with SHA-256.
    RsaOaep256,
    /// `ECDH-ES+A128KW`: ephemeral-static ECDH (P-256), Concat KDF, A128KW.
    EcdhEsA128Kw,
    /// `ECDH-ES+A192KW`.
    EcdhEsA192Kw,
    /// `ECDH-ES+A256KW`.
    EcdhEsA256Kw,
}

impl KeyManagement {
    /// Every algorithm of TS-0003 table 8.5.3.2-3.
    pub const ALL: [Self; 8] = [
        Self::Dir,
        Self::A128Kw,
        Self::A192Kw,
        Self::A256Kw,
        Self::RsaOaep256,
        Self::EcdhEsA128Kw,
        Self::EcdhEsA192Kw,
        Self::EcdhEsA256Kw,
    ];

    /// The JOSE `alg` value (RFC 7518 4.1).
    pub fn name(self) -> &'static str {
        match self {
            Self::Dir => "dir",
            Self::A128Kw => "A128KW",
            Self::A192Kw => "A192KW",
            Self::A256Kw => "A256KW",
            Self::RsaOaep256 => "RSA-OAEP-256",
            Self::EcdhEsA128Kw => "ECDH-ES+A128KW",
            Self::EcdhEsA192Kw => "ECDH-ES+A192KW",
            Self::EcdhEsA256Kw => "ECDH-ES+A256KW",
        }
    }

    /// The algorithm of an `alg` value (case-sensitive, RFC 7516 4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether the key is a secret shared with the token's issuer (`dir`,
    /// AES Key Wrap), which only that issuer could have encrypted with, as
    /// opposed to the recipient's public key, which anyone could.
    pub fn is_shared_secret(self) -> bool {
        matches!(self, Self::Dir | Self::A128Kw | Self::A192Kw | Self::A256Kw)
    }

    /// The size in bytes of the AES key wrap key, for the wrapping algorithms.
    fn wrap_key_len(self) -> Option<usize> {
        match self {
            Self::A128Kw | Self::EcdhEsA128Kw => Some(16),
            Self::A192Kw | Self::EcdhEsA192Kw => Some(24),
            Self::A256Kw | Self::EcdhEsA256Kw => Some(32),
            Self::Dir | Self::RsaOaep256 => None,
        }
    }
}

impl fmt::Display for KeyManagement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A JWE content encryption algorithm (`enc`) of TS-0003 table 8.5.3.2-4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentEncryption {
    /// `A128GCM`.
    A128Gcm,
    /// `A192GCM`.
    A192Gcm,
    /// `A256GCM`.
    A256Gcm,
}

impl ContentEncryption {
    /// Every algorithm of TS-0003 table 8.5.3.2-4.
    pub const ALL: [Self; 3] = [Self::A128Gcm, Self::A192Gcm, Self::A256Gcm];

    /// The JOSE `enc` value (RFC 7518 5.1).
    pub fn name(self) -> &'static str {
        match self {
            Self::A128Gcm => "A128GCM",
            Self::A192Gcm => "A192GCM",
            Self::A256Gcm => "A256GCM",
        }
    }

    /// The algorithm of an `enc` value (case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The content encryption key's size in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::A128Gcm => 16,
            Self::A192Gcm => 24,
            Self::A256Gcm => 32,
        }
    }

    fn seal(self, cek: &[u8], iv: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        let nonce = Nonce::<U12>::from_slice(iv);
        match self {
            Self::A128Gcm => aes_gcm::Aes128Gcm::new_from_slice(cek)
                .ok()?
                .encrypt(nonce, payload),
            Self::A192Gcm => AesGcm::<aes_gcm::aes::Aes192, U12>::new_from_slice(cek)
                .ok()?
                .encrypt(nonce, payload),
            Self::A256Gcm => aes_gcm::Aes256Gcm::new_from_slice(cek)
                .ok()?
                .encrypt(nonce, payload),
        }
        .ok()
    }

    /// `ciphertext || tag` opened, or `None` when the tag does not verify.
    fn open(self, cek: &[u8], iv: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let payload = Payload { msg: sealed, aad };
        let nonce = Nonce::<U12>::from_slice(iv);
        match self {
            Self::A128Gcm => aes_gcm::Aes128Gcm::new_from_slice(cek)
                .ok()?
                .decrypt(nonce, payload),
            Self::A192Gcm => AesGcm::<aes_gcm::aes::Aes192, U12>::new_from_slice(cek)
                .ok()?
                .decrypt(nonce, payload),
            Self::A256Gcm => aes_gcm::Aes256Gcm::new_from_slice(cek)
                .ok()?
                .decrypt(nonce, payload),
        }
        .ok()
    }
}

impl fmt::Display for ContentEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// A JWK that cannot be used: which member of which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {reason}")]
pub struct JwkError {
    /// Where, e.g. `keys[2].d`.
    pub path: String,
    /// Why.
    pub reason: String,
}

fn jwk_err(path: impl fmt::Display, reason: impl fmt::Display) -> JwkError {
    JwkError {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// The private part of a [`DecryptionKey`].
#[derive(Clone)]
enum Material {
    /// `kty: oct` (`dir`, AES Key Wrap).
    Secret(Zeroizing<Vec<u8>>),
    /// `kty: RSA` (`RSA-OAEP-256`).
    Rsa(Box<RsaPrivateKey>),
    /// `kty: EC`, `crv: P-256` (`ECDH-ES+A*KW`).
    P256(p256::SecretKey),
}

/// A key a CSE decrypts tokens with, bound to one algorithm (RFC 8725 3.1)
/// and known by its `kid`.
#[derive(Clone)]
pub struct DecryptionKey {
    kid: String,
    algorithm: KeyManagement,
    material: Material,
    issuer: Option<String>,
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key material stays out of logs.
        f.debug_struct("DecryptionKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl DecryptionKey {
    /// Reads one private JWK (RFC 7517, RFC 7518 6): `kid` and `alg` (one of
    /// [`KeyManagement`]) are required; `kty` must fit `alg` (`oct` with
    /// `k` of the algorithm's size for `dir`/`A*KW` — for `dir`, 16, 24 or
    /// 32 bytes, the size of the content key it is —, `RSA` with `n`, `e`,
    /// `d`, `p`, `q` of at least [`MIN_RSA_BITS`] for `RSA-OAEP-256`, `EC`
    /// with `crv: P-256`, `x`, `y`, `d` for `ECDH-ES+A*KW`); `use`, when
    /// present, must be `enc`. An `iss` member names the one token issuer a
    /// shared (`oct`) key belongs to, which lets it carry Encryption-only
    /// tokens of that issuer. `path` prefixes error paths.
    pub fn from_jwk(jwk: &Value, path: &str) -> Result<Self, JwkError> {
        let read = read_jwk(jwk, path, true)?;
        let material = match read.key {
            ReadKey::Secret(k) => Material::Secret(k),
            ReadKey::RsaPrivate(k) => Material::Rsa(k),
            ReadKey::P256Private(k) => Material::P256(k),
            ReadKey::RsaPublic(_) | ReadKey::P256Public(_) => {
                return Err(jwk_err(
                    format!("{path}.d"),
                    "missing: a decryption key is private",
                ));
            }
        };
        Ok(Self {
            kid: read.kid,
            algorithm: read.algorithm,
            material,
            issuer: read.issuer,
        })
    }

    /// The key ID.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key is used with.
    pub fn algorithm(&self) -> KeyManagement {
        self.algorithm
    }

    /// The issuer a shared key belongs to (its `iss` member), if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }
}

/// A key as a JWK gives it.
enum ReadKey {
    Secret(Zeroizing<Vec<u8>>),
    RsaPrivate(Box<RsaPrivateKey>),
    RsaPublic(Box<RsaPublicKey>),
    P256Private(p256::SecretKey),
    P256Public(p256::PublicKey),
}

/// What [`read_jwk`] reads.
struct ReadJwk {
    kid: String,
    algorithm: KeyManagement,
    issuer: Option<String>,
    key: ReadKey,
}

/// Reads one JWK as [`DecryptionKey::from_jwk`] describes; an RSA or EC key
/// without `d` is read as a public key unless `private` is asked for.
fn read_jwk(jwk: &Value, path: &str, private: bool) -> Result<ReadJwk, JwkError> {
    let obj = jwk
        .as_object()
        .ok_or_else(|| jwk_err(path, "a JWK is a JSON object"))?;
    let text = |name: &str| -> Result<Option<&str>, JwkError> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(jwk_err(format!("{path}.{name}"), "expected a string")),
        }
    };
    let required = |name: &str| -> Result<&str, JwkError> {
        text(name)?.ok_or_else(|| jwk_err(format!("{path}.{name}"), "missing"))
    };
    let bytes = |name: &str| -> Result<Zeroizing<Vec<u8>>, JwkError> {
        URL_SAFE_NO_PAD
            .decode(required(name)?)
            .map(Zeroizing::new)
            .map_err(|e| jwk_err(format!("{path}.{name}"), format!("not base64url: {e}")))
    };
    let kid = required("kid")?;
    if kid.is_empty() {
        return Err(jwk_err(format!("{path}.kid"), "must not be empty"));
    }
    let alg_name = required("alg")?;
    let algorithm = KeyManagement::from_name(alg_name).ok_or_else(|| {
        jwk_err(
            format!("{path}.alg"),
            format!(
                "{alg_name:?} is not a JWE key management algorithm of TS-0003 table 8.5.3.2-3 ({})",
                KeyManagement::ALL.map(KeyManagement::name).join(", ")
            ),
        )
    })?;
    if let Some(u) = text("use")?
        && u != "enc"
    {
        return Err(jwk_err(
            format!("{path}.use"),
            "an encryption key's use is \"enc\"",
        ));
    }
    let kty = required("kty")?;
    let want = match algorithm {
        KeyManagement::RsaOaep256 => "RSA",
        KeyManagement::EcdhEsA128Kw | KeyManagement::EcdhEsA192Kw | KeyManagement::EcdhEsA256Kw => {
            "EC"
        }
        _ => "oct",
    };
    if kty != want {
        return Err(jwk_err(
            format!("{path}.kty"),
            format!("{alg_name} takes a kty {want:?} key, not {kty:?}"),
        ));
    }
    let has_private = obj.contains_key("d");
    if want != "oct" && private != has_private {
        return Err(if private {
            jwk_err(format!("{path}.d"), "missing: a decryption key is private")
        } else {
            // A token issuer needs the recipient's public key only; holding
            // its private key would let the issuer read every token.
            jwk_err(
                format!("{path}.d"),
                "an encryption key is the recipient's public key: leave out the private members",
            )
        });
    }
    let key = match want {
        "oct" => {
            let k = bytes("k")?;
            let ok = match algorithm.wrap_key_len() {
                Some(n) => k.len() == n,
                None => ContentEncryption::ALL
                    .iter()
                    .any(|e| e.key_len() == k.len()),
            };
            if !ok {
                let want = algorithm
                    .wrap_key_len()
                    .map_or("16, 24 or 32".to_owned(), |n| n.to_string());
                return Err(jwk_err(
                    format!("{path}.k"),
                    format!("{alg_name} needs a key of {want} bytes, got {}", k.len()),
                ));
            }
            ReadKey::Secret(k)
        }
        "RSA" => {
            let int = |name: &str| bytes(name).map(|b| BigUint::from_bytes_be(&b));
            let too_small = |bits: usize| {
                jwk_err(
                    format!("{path}.n"),
                    format!("an RSA key needs at least {MIN_RSA_BITS} bits, got {bits}"),
                )
            };
            if has_private {
                let key = RsaPrivateKey::from_components(
                    int("n")?,
                    int("e")?,
                    int("d")?,
                    vec![int("p")?, int("q")?],
                )
                .and_then(|k| k.validate().map(|()| k))
                .map_err(|e| jwk_err(path, format!("not a valid RSA private key: {e}")))?;
                if key.size() * 8 < MIN_RSA_BITS {
                    return Err(too_small(key.size() * 8));
                }
                ReadKey::RsaPrivate(Box::new(key))
            } else {
                let key = RsaPublicKey::new(int("n")?, int("e")?)
                    .map_err(|e| jwk_err(path, format!("not a valid RSA public key: {e}")))?;
                if key.size() * 8 < MIN_RSA_BITS {
                    return Err(too_small(key.size() * 8));
                }
                ReadKey::RsaPublic(Box::new(key))
            }
        }
        _ => {
            let crv = required("crv")?;
            if crv != "P-256" {
                return Err(jwk_err(
                    format!("{path}.crv"),
                    format!("only P-256 keys are supported, not {crv:?}"),
                ));
            }
            let parsed: p256::elliptic_curve::JwkEcKey = serde_json::from_value(ec_members(jwk))
                .map_err(|e| jwk_err(path, format!("not an EC JWK: {e}")))?;
            if has_private {
                // Also checks that x and y are the public key of d.
                ReadKey::P256Private(
                    p256::SecretKey::from_jwk(&parsed)
                        .map_err(|_| jwk_err(path, "d, x and y are not one P-256 key pair"))?,
                )
            } else {
                ReadKey::P256Public(
                    p256::PublicKey::from_jwk(&parsed)
                        .map_err(|_| jwk_err(path, "x and y are not a point of P-256"))?,
                )
            }
        }
    };
    let issuer = text("iss")?.map(str::to_owned);
    if issuer.is_some() && !algorithm.is_shared_secret() {
        return Err(jwk_err(
            format!("{path}.iss"),
            "only a shared (oct) key can belong to an issuer: anyone may encrypt to a public key",
        ));
    }
    Ok(ReadJwk {
        kid: kid.to_owned(),
        algorithm,
        issuer,
        key,
    })
}

/// The keys a CSE decrypts JWE tokens with, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct DecryptionKeys {
    keys: BTreeMap<String, DecryptionKey>,
}

impl DecryptionKeys {
    /// No keys: every JWE is undecryptable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a JWK Set (RFC 7517 5, `{"keys": [...]}`) of private keys, each
    /// as [`DecryptionKey::from_jwk`] reads it. Two keys with one `kid` are
    /// an error.
    pub fn from_jwk_set(text: &str) -> Result<Self, JwkError> {
        // As every JSON file: a BOM skipped, a repeated key refused (two
        // `kid`s in one key would leave which one counts to the parser).
        let doc: Value = crate::json::parse_json(text)
            .map_err(|e| jwk_err("(document)", format!("not JSON: {e}")))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| jwk_err("keys", "a JWK Set has a \"keys\" array"))?;
        let mut keys = Self::new();
        for (i, jwk) in list.iter().enumerate() {
            let key = DecryptionKey::from_jwk(jwk, &format!("keys[{i}]"))?;
            if keys.keys.contains_key(&key.kid) {
                return Err(jwk_err(
                    format!("keys[{i}].kid"),
                    format!("{:?} is the kid of an earlier key", key.kid),
                ));
            }
            keys.insert(key);
        }
        Ok(keys)
    }

    /// Adds (or replaces) a key.
    pub fn insert(&mut self, key: DecryptionKey) {
        self.keys.insert(key.kid.clone(), key);
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The keys, by `kid`.
    pub fn iter(&self) -> impl Iterator<Item = &DecryptionKey> {
        self.keys.values()
    }

    /// The key a JWE header names: by `kid`, or without one the only key of
    /// the algorithm (several are an error rather than a guess, as for JWS).
    fn select(&self, kid: Option<&str>, alg: KeyManagement) -> Result<&DecryptionKey, JweError> {
        let key = match kid {
            Some(kid) => self
                .keys
                .get(kid)
                .ok_or_else(|| JweError::UnknownKey(kid.to_owned()))?,
            None => {
                let mut of_alg = self.keys.values().filter(|k| k.algorithm == alg);
                match (of_alg.next(), of_alg.next()) {
                    (Some(only), None) => only,
                    (None, _) => return Err(JweError::NoKey(alg)),
                    (Some(_), Some(_)) => return Err(JweError::MissingKeyId(alg)),
                }
            }
        };
        if key.algorithm != alg {
            return Err(JweError::KeyAlgorithmMismatch {
                kid: key.kid.clone(),
                key_alg: key.algorithm,
                alg,
            });
        }
        Ok(key)
    }
}

// ---------------------------------------------------------------------------
// Decryption
// ---------------------------------------------------------------------------

/// Why a JWE could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JweError {
    /// Not a JWE compact serialization (parts, base64url, header JSON, sizes).
    #[error("malformed JWE: {0}")]
    Malformed(String),
    /// Well-formed, but outside what ESData supports or this CSE processes.
    #[error("unsupported JWE: {0}")]
    Unsupported(String),
    /// The header names a key this CSE does not have.
    #[error("no decryption key {0:?}")]
    UnknownKey(String),
    /// No `kid`, and no key of the algorithm.
    #[error("JWE has no kid and there is no {0} decryption key")]
    NoKey(KeyManagement),
    /// No `kid`, and several keys of the algorithm.
    #[error("JWE has no kid and there are several {0} decryption keys")]
    MissingKeyId(KeyManagement),
    /// The `kid` names a key of another algorithm.
    #[error("decryption key {kid:?} is an {key_alg} key, the JWE says {alg}")]
    KeyAlgorithmMismatch {
        /// The key ID.
        kid: String,
        /// The key's algorithm.
        key_alg: KeyManagement,
        /// The header's algorithm.
        alg: KeyManagement,
    },
    /// The content key or the content does not decrypt with the key: made
    /// for another key, or tampered with (the GCM tag covers the header).
    #[error("JWE does not decrypt with key {0:?} (another key's, or tampered with)")]
    Undecryptable(String),
}

/// A decrypted JWE.
#[derive(Debug, Clone)]
pub struct Decrypted {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The key management algorithm.
    pub algorithm: KeyManagement,
    /// The content encryption algorithm.
    pub encryption: ContentEncryption,
    /// The key that decrypted it.
    pub kid: String,
    /// The issuer that key belongs to ([`DecryptionKey::issuer`]).
    pub key_issuer: Option<String>,
}

/// A JWE compact serialization's five parts as received and its decoded
/// protected header (RFC 7516 7.1). Nothing in it is authenticated.
pub(crate) struct Compact<'t> {
    header_b64: &'t str,
    encrypted_key_b64: &'t str,
    iv_b64: &'t str,
    ciphertext_b64: &'t str,
    tag_b64: &'t str,
    /// The protected header.
    pub(crate) header: Map<String, Value>,
}

impl<'t> Compact<'t> {
    /// Splits and decodes; `None` when the token does not have five parts.
    pub(crate) fn parse(token: &'t str) -> Option<Result<Self, JweError>> {
        let mut parts = token.split('.');
        let (Some(h), Some(k), Some(iv), Some(c), Some(t), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        Some(decode_object(h).map(|header| Self {
            header_b64: h,
            encrypted_key_b64: k,
            iv_b64: iv,
            ciphertext_b64: c,
            tag_b64: t,
            header,
        }))
    }

    /// A string header parameter; `None` when absent.
    pub(crate) fn param(&self, name: &str) -> Result<Option<&str>, JweError> {
        match self.header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(JweError::Malformed(format!(
                "JOSE header {name} is not a string"
            ))),
        }
    }

    /// The algorithms, checked against TS-0003 tables 8.5.3.2-3 and -4.
    pub(crate) fn algorithms(&self) -> Result<(KeyManagement, ContentEncryption), JweError> {
        let alg = self
            .param("alg")?
            .ok_or_else(|| JweError::Malformed("JOSE header has no alg".into()))?;
        let enc = self
            .param("enc")?
            .ok_or_else(|| JweError::Malformed("JOSE header has no enc".into()))?;
        let alg = KeyManagement::from_name(alg).ok_or_else(|| {
            JweError::Unsupported(format!(
                "alg {alg:?} is not a key management algorithm of TS-0003 table 8.5.3.2-3"
            ))
        })?;
        let enc = ContentEncryption::from_name(enc).ok_or_else(|| {
            JweError::Unsupported(format!(
                "enc {enc:?} is not a content encryption algorithm of TS-0003 table 8.5.3.2-4"
            ))
        })?;
        Ok((alg, enc))
    }
}

fn decode(part: &str, what: &str) -> Result<Vec<u8>, JweError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| JweError::Malformed(format!("{what} is not base64url: {e}")))
}

fn decode_object(part: &str) -> Result<Map<String, Value>, JweError> {
    match serde_json::from_slice(&decode(part, "JOSE header")?) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(JweError::Malformed(
            "JOSE header is not a JSON object".into(),
        )),
        Err(e) => Err(JweError::Malformed(format!("JOSE header is not JSON: {e}"))),
    }
}

/// Decrypts a JWE compact serialization (RFC 7516 5.2) with one of `keys`.
///
/// In order: five parts; the protected header (a JSON object); what needs
/// no key (base64url parts; no `zip`, which ESData does not use, nor
/// `crit`; `alg` and `enc` from TS-0003 tables 8.5.3.2-3/-4; a 96-bit IV
/// and 128-bit tag; for `dir` an empty encrypted key, for ECDH-ES an `epk`
/// on P-256); the key by `kid` (or the only key of the algorithm) and of
/// that algorithm; the content key
/// (RFC 7518 4.4 AES Key Wrap, 4.3 RSA-OAEP-256, 4.6 ECDH-ES with the
/// header's `epk` on P-256 and Concat KDF over `alg`, `apu`, `apv`, or the
/// key itself for `dir`) of the size `enc` needs; then AES-GCM with the
/// encoded header as additional authenticated data. Every key and tag
/// failure is one [`JweError::Undecryptable`], which says nothing about
/// which step failed.
pub fn decrypt(token: &str, keys: &DecryptionKeys) -> Result<Decrypted, JweError> {
    let jwe = Compact::parse(token).ok_or_else(|| {
        JweError::Malformed(format!(
            "a JWE compact serialization has 5 dot-separated parts, found {}",
            token.split('.').count()
        ))
    })??;
    decrypt_compact(&jwe, keys)
}

/// [`decrypt`] of a token already split ([`crate::token::TrustStore`]
/// reads its header first).
pub(crate) fn decrypt_compact(
    jwe: &Compact<'_>,
    keys: &DecryptionKeys,
) -> Result<Decrypted, JweError> {
    // Everything that can be judged without a key first, so that a token is
    // malformed or unsupported alike at every CSE, whatever keys it holds
    // (Decision 9).
    let shape = jwe.shape()?;
    let (alg, enc) = (shape.alg, shape.enc);
    let key = keys.select(jwe.param("kid")?, alg)?;
    let undecryptable = || JweError::Undecryptable(key.kid.clone());
    let cek: Zeroizing<Vec<u8>> = match (&key.material, &shape.epk) {
        (Material::Secret(k), _) if alg == KeyManagement::Dir => k.clone(),
        (Material::Secret(k), _) => {
            unwrap_key(k, &shape.encrypted_key).ok_or_else(undecryptable)?
        }
        // Blinded: the private-key operation on a ciphertext the sender
        // chose must not leak timing (RUSTSEC-2023-0071).
        (Material::Rsa(k), _) => Zeroizing::new(
            k.decrypt_blinded(
                &mut OsRng,
                Oaep::new::<sha2::Sha256>(),
                &shape.encrypted_key,
            )
            .map_err(|_| undecryptable())?,
        ),
        (Material::P256(k), Some(epk)) => {
            let (apu, apv) = (party_info(jwe, "apu")?, party_info(jwe, "apv")?);
            let shared = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), epk.as_affine());
            let kek = concat_kdf(shared.raw_secret_bytes(), alg, &apu, &apv)?;
            unwrap_key(&kek, &shape.encrypted_key).ok_or_else(undecryptable)?
        }
        // `select` bound the key to `alg`, and `shape` read an `epk` for
        // every ECDH-ES algorithm.
        (Material::P256(_), None) => return Err(undecryptable()),
    };
    if cek.len() != enc.key_len() {
        return Err(undecryptable());
    }
    let mut sealed = shape.ciphertext;
    sealed.extend_from_slice(&shape.tag);
    let plaintext = enc
        .open(&cek, &shape.iv, jwe.header_b64.as_bytes(), &sealed)
        .ok_or_else(undecryptable)?;
    Ok(Decrypted {
        header: jwe.header.clone(),
        plaintext: Zeroizing::new(plaintext),
        algorithm: alg,
        encryption: enc,
        kid: key.kid.clone(),
        key_issuer: key.issuer.clone(),
    })
}

/// A JWE's parts decoded and checked for what needs no key.
pub(crate) struct Shape {
    alg: KeyManagement,
    enc: ContentEncryption,
    encrypted_key: Vec<u8>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
    epk: Option<p256::PublicKey>,
}

impl Compact<'_> {
    /// Checks what can be judged without a key: every part base64url, then
    /// no `zip` (not an ESData option) nor `crit`, `alg` and `enc` of TS-0003
    /// tables 8.5.3.2-3/-4 ([`JweError::Unsupported`] otherwise), then a
    /// 96-bit IV and a 128-bit tag (AES-GCM, RFC 7518 5.3), an empty
    /// encrypted key for `dir` (RFC 7518 4.5) and an `epk` on P-256 for
    /// ECDH-ES (RFC 7518 4.6.1.1).
    pub(crate) fn shape(&self) -> Result<Shape, JweError> {
        let encrypted_key = decode(self.encrypted_key_b64, "encrypted key")?;
        let iv = decode(self.iv_b64, "initialization vector")?;
        let ciphertext = decode(self.ciphertext_b64, "ciphertext")?;
        let tag = decode(self.tag_b64, "authentication tag")?;
        if self.header.contains_key("zip") {
            return Err(JweError::Unsupported(
                "compressed (zip) plaintext is not an ESData option".into(),
            ));
        }
        if self.header.contains_key("crit") {
            return Err(JweError::Unsupported(
                "JOSE header has crit extensions, none of which are supported".into(),
            ));
        }
        // The algorithms first: a JWE of another content encryption (an
        // AES-CBC one has a 128-bit IV) is unsupported, not a malformed GCM.
        let (alg, enc) = self.algorithms()?;
        if iv.len() != 12 {
            return Err(JweError::Malformed(format!(
                "AES-GCM takes a 96-bit initialization vector, got {} bytes",
                iv.len()
            )));
        }
        if tag.len() != 16 {
            return Err(JweError::Malformed(format!(
                "AES-GCM takes a 128-bit authentication tag, got {} bytes",
                tag.len()
            )));
        }
        if alg == KeyManagement::Dir && !encrypted_key.is_empty() {
            return Err(JweError::Malformed(
                "dir has an empty encrypted key (RFC 7518 4.5)".into(),
            ));
        }
        let epk = match alg {
            KeyManagement::EcdhEsA128Kw
            | KeyManagement::EcdhEsA192Kw
            | KeyManagement::EcdhEsA256Kw => Some(ephemeral_public_key(self)?),
            _ => None,
        };
        Ok(Shape {
            alg,
            enc,
            encrypted_key,
            iv,
            ciphertext,
            tag,
            epk,
        })
    }
}

/// RFC 3394 unwrap with a 128/192/256-bit key.
fn unwrap_key(kek: &[u8], wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let out = match kek.len() {
        16 => aes_kw::KekAes128::try_from(kek).ok()?.unwrap_vec(wrapped),
        24 => aes_kw::KekAes192::try_from(kek).ok()?.unwrap_vec(wrapped),
        32 => aes_kw::KekAes256::try_from(kek).ok()?.unwrap_vec(wrapped),
        _ => return None,
    };
    out.ok().map(Zeroizing::new)
}

/// RFC 3394 wrap with a 128/192/256-bit key.
fn wrap_key(kek: &[u8], cek: &[u8]) -> Option<Vec<u8>> {
    match kek.len() {
        16 => aes_kw::KekAes128::try_from(kek).ok()?.wrap_vec(cek),
        24 => aes_kw::KekAes192::try_from(kek).ok()?.wrap_vec(cek),
        32 => aes_kw::KekAes256::try_from(kek).ok()?.wrap_vec(cek),
        _ => return None,
    }
    .ok()
}

/// The header's `epk` (RFC 7518 4.6.1.1), a P-256 point on the curve.
fn ephemeral_public_key(jwe: &Compact<'_>) -> Result<p256::PublicKey, JweError> {
    let epk = jwe
        .header
        .get("epk")
        .ok_or_else(|| JweError::Malformed("ECDH-ES needs an epk header parameter".into()))?;
    match epk.get("crv").and_then(Value::as_str) {
        Some("P-256") => {}
        Some(other) => {
            return Err(JweError::Unsupported(format!(
                "epk on curve {other:?}; only P-256 is supported"
            )));
        }
        None => return Err(JweError::Malformed("epk has no crv".into())),
    }
    let jwk: p256::elliptic_curve::JwkEcKey = serde_json::from_value(ec_members(epk))
        .map_err(|e| JweError::Malformed(format!("epk is not an EC JWK: {e}")))?;
    // Rejects a point off the curve (an invalid-curve attack on the key).
    p256::PublicKey::from_jwk(&jwk)
        .map_err(|_| JweError::Malformed("epk is not a point of P-256".into()))
}

/// The members of an EC JWK that [`p256::elliptic_curve::JwkEcKey`] reads
/// (it refuses others, which RFC 7517 4 says to ignore).
fn ec_members(jwk: &Value) -> Value {
    let mut out = Map::new();
    for name in ["kty", "crv", "x", "y", "d"] {
        if let Some(v) = jwk.get(name) {
            out.insert(name.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// `apu`/`apv` decoded (empty when absent).
fn party_info(jwe: &Compact<'_>, name: &str) -> Result<Vec<u8>, JweError> {
    jwe.param(name)?.map_or(Ok(Vec::new()), |v| decode(v, name))
}

/// The key wrap key of ECDH-ES+A*KW (RFC 7518 4.6.2): Concat KDF with
/// SHA-256 over Z, with AlgorithmID = `alg`, PartyUInfo = `apu`, PartyVInfo
/// = `apv`, each length-prefixed, and SuppPubInfo = the key size in bits.
fn concat_kdf(
    z: &[u8],
    alg: KeyManagement,
    apu: &[u8],
    apv: &[u8],
) -> Result<Zeroizing<Vec<u8>>, JweError> {
    let len = alg
        .wrap_key_len()
        .ok_or_else(|| JweError::Unsupported(format!("{alg} is no ECDH-ES key wrap")))?;
    let mut other = Vec::with_capacity(alg.name().len() + apu.len() + apv.len() + 16);
    for part in [alg.name().as_bytes(), apu, apv] {
        other.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        other.extend_from_slice(part);
    }
    other.extend_from_slice(&u32::try_from(len * 8).unwrap_or(u32::MAX).to_be_bytes());
    let mut kek = Zeroizing::new(vec![0u8; len]);
    concat_kdf::derive_key_into::<sha2::Sha256>(z, &other, &mut kek)
        .map_err(|_| JweError::Unsupported("Concat KDF failed".into()))?;
    Ok(kek)
}

// ---------------------------------------------------------------------------
// Encryption
// ---------------------------------------------------------------------------

/// The key a token issuer encrypts to a CSE with: a shared secret (`dir`,
/// AES Key Wrap) or the CSE's public key (RSA-OAEP-256, ECDH-ES+A*KW).
#[derive(Clone)]
pub struct EncryptionKey {
    kid: String,
    algorithm: KeyManagement,
    material: PublicMaterial,
}

#[derive(Clone)]
enum PublicMaterial {
    Secret(Zeroizing<Vec<u8>>),
    Rsa(Box<RsaPublicKey>),
    P256(p256::PublicKey),
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// Reads a JWK as [`DecryptionKey::from_jwk`] does, except that an RSA
    /// or EC key is the recipient's public key (`n`, `e`; `crv`, `x`, `y`):
    /// one with private members (`d`) is refused.
    pub fn from_jwk(jwk: &Value, path: &str) -> Result<Self, JwkError> {
        let read = read_jwk(jwk, path, false)?;
        let material = match read.key {
            ReadKey::Secret(k) => PublicMaterial::Secret(k),
            ReadKey::RsaPrivate(k) => PublicMaterial::Rsa(Box::new(k.to_public_key())),
            ReadKey::RsaPublic(k) => PublicMaterial::Rsa(k),
            ReadKey::P256Private(k) => PublicMaterial::P256(k.public_key()),
            ReadKey::P256Public(k) => PublicMaterial::P256(k),
        };
        Ok(Self {
            kid: read.kid,
            algorithm: read.algorithm,
            material,
        })
    }

    /// The key ID put in the header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key management algorithm.
    pub fn algorithm(&self) -> KeyManagement {
        self.algorithm
    }
}

impl From<&DecryptionKey> for EncryptionKey {
    /// The encrypting side of a decryption key (for a shared key, itself).
    fn from(key: &DecryptionKey) -> Self {
        let material = match &key.material {
            Material::Secret(k) => PublicMaterial::Secret(k.clone()),
            Material::Rsa(k) => PublicMaterial::Rsa(Box::new(k.to_public_key())),
            Material::P256(k) => PublicMaterial::P256(k.public_key()),
        };
        Self {
            kid: key.kid.clone(),
            algorithm: key.algorithm,
            material,
        }
    }
}

/// Why a JWE could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot encrypt: {0}")]
pub struct EncryptError(String);

/// Encrypts `plaintext` to `key` as a JWE compact serialization (RFC 7516
/// 5.1) with `enc`: header `{"alg", "enc", "typ": "JWT", "kid"}`, plus
/// `cty: "JWT"` when `nested` (the plaintext is a JWS: Nested
/// Sign-then-encrypt; TS-0003 7.3.2.6.2) and `epk` for ECDH-ES. A fresh
/// content key (except for `dir`) and IV come from the operating system.
pub fn encrypt(
    plaintext: &[u8],
    key: &EncryptionKey,
    enc: ContentEncryption,
    nested: bool,
) -> Result<String, EncryptError> {
    let mut header = Map::new();
    header.insert("alg".into(), key.algorithm.name().into());
    header.insert("enc".into(), enc.name().into());
    header.insert("typ".into(), "JWT".into());
    if nested {
        header.insert("cty".into(), "JWT".into());
    }
    header.insert("kid".into(), key.kid.clone().into());
    let fresh_cek = || {
        let mut cek = Zeroizing::new(vec![0u8; enc.key_len()]);
        OsRng.fill_bytes(&mut cek);
        cek
    };
    let fail = |what: &str| EncryptError(what.to_owned());
    let (cek, encrypted_key) = match (&key.material, key.algorithm) {
        (PublicMaterial::Secret(k), KeyManagement::Dir) => {
            if k.len() != enc.key_len() {
                return Err(EncryptError(format!(
                    "dir key {:?} has {} bytes, {enc} needs {}",
                    key.kid,
                    k.len(),
                    enc.key_len()
                )));
            }
            (k.clone(), Vec::new())
        }
        (PublicMaterial::Secret(k), _) => {
            let cek = fresh_cek();
            let wrapped = wrap_key(k, &cek).ok_or_else(|| fail("key wrap failed"))?;
            (cek, wrapped)
        }
        (PublicMaterial::Rsa(k), _) => {
            let cek = fresh_cek();
            let wrapped = k
                .encrypt(&mut OsRng, Oaep::new::<sha2::Sha256>(), &cek)
                .map_err(|e| EncryptError(format!("RSA-OAEP-256: {e}")))?;
            (cek, wrapped)
        }
        (PublicMaterial::P256(k), alg) => {
            let ephemeral = p256::ecdh::EphemeralSecret::random(&mut OsRng);
            let epk = ephemeral.public_key().to_jwk();
            header.insert(
                "epk".into(),
                serde_json::to_value(&epk).map_err(|e| EncryptError(e.to_string()))?,
            );
            let shared = ephemeral.diffie_hellman(k);
            let kek = concat_kdf(shared.raw_secret_bytes(), alg, b"", b"")
                .map_err(|e| EncryptError(e.to_string()))?;
            let cek = fresh_cek();
            let wrapped = wrap_key(&kek, &cek).ok_or_else(|| fail("key wrap failed"))?;
            (cek, wrapped)
        }
    };
    let protected = URL_SAFE_NO_PAD.encode(Value::Object(header).to_string());
    let mut iv = [0u8; 12];
    OsRng.fill_bytes(&mut iv);
    let sealed = enc
        .seal(&cek, &iv, protected.as_bytes(), plaintext)
        .ok_or_else(|| fail("AES-GCM failed"))?;
    let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
    Ok([
        protected,
        URL_SAFE_NO_PAD.encode(encrypted_key),
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(ciphertext),
        URL_SAFE_NO_PAD.encode(tag),
    ]
    .join("."))
}
