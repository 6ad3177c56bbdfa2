//! The DAS configuration file: identity, keys, clients and policies.
//!
//! One JSON document (no comments), read with [`DasConfig::load`]. Unknown
//! fields are errors everywhere, since a misspelt constraint in a security
//! policy must not be ignored. Every error names the file and the field, for
//! example `das.json: policies[0].grant.mode: unknown variant `tokens`,
//! expected one of `token`, `dynamic_acp`, `both``.
//!
//! ```json
//! {
//!   "issuer": "//home.example/mn-cse-123456/CDas",
//!   "fqdn": "das.home.example",
//!   "sp_id": "//home.example",
//!   "cse_id": "/mn-cse-123456",
//!   "audience": ["//home.example/mn-cse-123456"],
//!   "signing_keys": [
//!     {"kid": "das-es256-1", "alg": "ES256",
//!      "private_key_pem": "keys/es256-private.pem",
//!      "public_key_pem": "keys/es256-public.pem"}
//!   ],
//!   "clients": [{"originator": "Cguest", "secret": "at-least-16-printable-ascii"}],
//!   "consultants": [
//!     {"cse_id": "//home.example/mn-cse-123456", "secret": "also-16-printable-ascii"}
//!   ],
//!   "policies": [
//!     {"name": "guest-unlocks-front-door",
//!      "rule": {"acor": ["Cguest"], "acop": 4,
//!               "acco": [{"actw": ["* * 7-19 * * * *"]}]},
//!      "targets": ["frontDoor", "/mn-cse-123456/frontDoor/*"],
//!      "resource_types": [],
//!      "grant": {"acop": 4, "roles": [], "mode": "token"},
//!      "max_lifetime_s": 3600}
//!   ],
//!   "sweep_interval_s": 60,
//!   "max_request_skew_s": 300
//! }
//! ```
//!
//! | field | meaning |
//! | --- | --- |
//! | `issuer` | the DAS AE-ID, absolute (`//sp-fqdn/...`): the `iss` of every token, compared exactly by verifiers |
//! | `fqdn` | a lower-case FQDN: Token-IDs are `name@fqdn`, so a Token-ID names this DAS (Decision 8); Role-IDs `name@fqdn` are its to grant |
//! | `role_issuers` | optional: more lower-case FQDNs whose Role-IDs it grants (Decision 8's table from a Role-ID's FQDN to its DAS); published by `GetKeySet`, so a hosting CSE counts this DAS among those a Role-ID `name@<one of them>` identifies and sends it such Role-IDs in `rfa` (TS-0003 7.3.2.2 step 2.2.1) |
//! | `sp_id`, `cse_id` | the context in which IDs written in this file (`acor`, `targets`, `clients`, `consultants`, `audience`) are made absolute, and in which `IssueToken` reads the originator's request |
//! | `audience` | CSE-IDs (absolute or SP-relative, `*` per segment allowed) put in `aud` of tokens issued through `IssueToken`, made absolute with `sp_id` at load (TS-0003 7.3.2.3 step 6.1.3 speaks of absolute CSE-IDs); at least one |
//! | `signing_keys` | `{kid, alg, private_key_pem, public_key_pem}`; `alg` is `ES256`, `EdDSA` or `RS256`; paths are relative to this file's directory; the **first** key signs (ES256 or RS256: EdDSA is no ESData JWS algorithm, TS-0003 table 8.5.3.3-2), all are published by `GetKeySet` (keep an old key listed after a rotation until its tokens expire) |
//! | `clients` | originators that may call `IssueToken`, each with a shared secret presented as `authorization: Bearer <secret>`: at least 16 printable ASCII characters without spaces (gRPC metadata is ASCII, and the presented secret is trimmed), each client its own |
//! | `consultants` | hosting CSE-IDs allowed to call `Consult` and `GetTokens`; **empty means anyone**. Each is a CSE-ID, or `{"cse_id", "secret"}`: then a call naming that CSE must present `authorization: Bearer <secret>` (compared in constant time; UNAUTHENTICATED otherwise). Without a secret the DAS takes the caller's `hosting_cse_id` at its word. Secrets: at least 16 printable ASCII characters without spaces, none equal to a client's; CSEs served by one PDP may share one |
//! | `policies` | in file order; the first that matches a request grants (see [`crate::policy`]) |
//! | `token_encryption` | optional: CSEs whose tokens are encrypted (Nested Sign-then-encrypt, TS-0003 7.3.2.6.2), each `{"cse_id", "jwk", "enc"}`: a token whose `aud` is exactly that one CSE (absolute, no `*`) is signed, then encrypted to `jwk` (a JWK, inline or the path of a file holding it: the CSE's public key, `RSA-OAEP-256` or `ECDH-ES+A*KW` on P-256, or a secret shared with it, `dir` or `A*KW`; `alg` and `kid` required) with `enc` (`A128GCM`, `A192GCM` or `A256GCM`, default `A256GCM`) |
//! | `request_decryption_keys` | optional: a JWK Set (inline, or the path of a file holding it) of this DAS's private `RSA-OAEP-256` or `ECDH-ES+A*KW` (P-256) keys (`kid` and `alg` required; shared secrets refused): `GetKeySet` publishes the public part of the **first**, hosting CSEs encrypt the `dreq` of Token Request Information to it as `sdr` (TS-0003 7.3.2.3 step 2.2, the Role-IDs hidden from the originator), and `IssueToken` decrypts an `sdr` with any of them |
//! | `sweep_interval_s` | how often expired tokens are deleted (default 60) |
//! | `max_request_skew_s` | how far the `rts` of a consulted request may be from the DAS clock (default 300); policies are evaluated at `rts` for `Consult`, at the DAS clock for `IssueToken` |
//!
//! A policy:
//!
//! | field | meaning |
//! | --- | --- |
//! | `name` | unique; becomes the token's `tknm` |
//! | `rule` | one `m2m:accessControlRule` in short names: `acor` (originator IDs, `*` patterns, SP domains, `all`; Role-IDs are refused, the DAS has no role repository), `acop` (operations the originator may ask for), `acco` (`actw`, `acip`, `aclr`), `acaf`, `acod` |
//! | `targets` | resource IDs the policy covers: exact, or a prefix ending in `*`; CSE-relative and SP-relative forms are made absolute with `sp_id`/`cse_id` |
//! | `resource_types` | `ty` codes the targeted resource (`trt`) must have; empty means any |
//! | `grant.acop` | operations granted (default: the rule's `acop`); 0 grants roles only |
//! | `grant.roles` | Role-IDs put in the token's `rids`, those among the request's `rfa` only (none when `rfa` is empty); each `name@x` with `x` the DAS's `fqdn` or one of its `role_issuers` (no hosting CSE would ever send it another) |
//! | `grant.mode` | `token`, `dynamic_acp` or `both` |
//! | `max_lifetime_s` | the longest validity of a grant, in seconds (at least 1) |

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use authz_core::HostingContext;
use authz_core::compile::{ValidationError, ValidationErrors};
use authz_core::ids::IdError;
use authz_core::jwe::{ContentEncryption, DecryptionKey, DecryptionKeys, EncryptionKey, encrypt};
use authz_core::model::AccessControlRule;
use authz_core::token::{
    TokenAlgorithm, TokenClaims, TokenSigner, TrustStore, TrustedIssuer, VerificationKey,
    VerifyContext, issuer_fqdn,
};
use chrono::{TimeDelta, Utc};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::policy::{MAX_LIFETIME_S, Policy};

/// The shortest client secret accepted, in bytes.
pub const MIN_CLIENT_SECRET: usize = 16;

/// How far a consulted request's `rts` may be from the DAS clock by default.
pub const DEFAULT_MAX_REQUEST_SKEW: TimeDelta = TimeDelta::seconds(300);

/// The default interval of the expired-token sweeper.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The file as written
// ---------------------------------------------------------------------------

/// The configuration file as written (see the module documentation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DasConfigFile {
    /// The DAS AE-ID, absolute: the `iss` of its tokens.
    pub issuer: String,
    /// The FQDN Token-IDs end with.
    pub fqdn: String,
    /// FQDNs of Role-IDs its policies grant besides `fqdn`.
    #[serde(default)]
    pub role_issuers: Vec<String>,
    /// SP-ID of the context IDs in this file are read in.
    pub sp_id: String,
    /// CSE-ID of the context IDs in this file are read in.
    pub cse_id: String,
    /// `aud` of tokens issued through `IssueToken`.
    pub audience: Vec<String>,
    /// Signing keys; the first signs.
    pub signing_keys: Vec<SigningKeyFile>,
    /// Originators allowed to call `IssueToken`.
    #[serde(default)]
    pub clients: Vec<ClientFile>,
    /// Hosting CSE-IDs allowed to call `Consult` and `GetTokens` (empty:
    /// anyone), each with an optional secret.
    #[serde(default)]
    pub consultants: Vec<ConsultantFile>,
    /// The policies, first match grants.
    pub policies: Vec<PolicyFile>,
    /// CSEs whose tokens are encrypted to them.
    #[serde(default)]
    pub token_encryption: Vec<TokenEncryptionFile>,
    /// The private keys secured DAS requests (`sdr`) are decrypted with: a
    /// JWK Set, inline or the path of a file holding it.
    #[serde(default)]
    pub request_decryption_keys: Option<serde_json::Value>,
    /// Seconds between sweeps of expired tokens (default 60).
    #[serde(default)]
    pub sweep_interval_s: Option<u64>,
    /// How far a consulted request's `rts` may be from the DAS clock, in
    /// seconds (default 300).
    #[serde(default)]
    pub max_request_skew_s: Option<u64>,
}

/// A CSE whose tokens are encrypted to it, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEncryptionFile {
    /// The CSE-ID (absolute or SP-relative, no `*`).
    pub cse_id: String,
    /// Its key, a JWK (RFC 7517) with `alg` and `kid`, or the path of a
    /// file holding one (relative to the configuration file's directory).
    pub jwk: serde_json::Value,
    /// Content encryption (default `A256GCM`).
    #[serde(default)]
    pub enc: Option<String>,
}

/// A CSE whose tokens are encrypted to it (Nested Sign-then-encrypt).
#[derive(Debug, Clone)]
pub struct TokenEncryption {
    /// Its absolute CSE-ID.
    pub cse_id: String,
    /// The key tokens are encrypted to.
    pub key: EncryptionKey,
    /// The content encryption.
    pub enc: ContentEncryption,
}

/// The JOSE algorithm of a signing key. HS256 is not offered: a DAS
/// publishes its verification keys, and a shared secret cannot be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
}

impl From<KeyAlgorithm> for TokenAlgorithm {
    fn from(a: KeyAlgorithm) -> Self {
        match a {
            KeyAlgorithm::Es256 => TokenAlgorithm::Es256,
            KeyAlgorithm::EdDsa => TokenAlgorithm::EdDsa,
            KeyAlgorithm::Rs256 => TokenAlgorithm::Rs256,
        }
    }
}

/// One signing key as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyFile {
    /// The key ID put in the JOSE header.
    pub kid: String,
    /// The algorithm.
    pub alg: KeyAlgorithm,
    /// PKCS#8 private key in PEM (RS256 also PKCS#1), relative to the file.
    pub private_key_pem: String,
    /// SPKI public key in PEM, relative to the file.
    pub public_key_pem: String,
}

/// One `IssueToken` client as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// The originator (any form; made absolute with `sp_id`/`cse_id`).
    pub originator: String,
    /// The shared secret it presents as `authorization: Bearer <secret>`.
    pub secret: String,
}

impl fmt::Debug for ClientFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientFile")
            .field("originator", &self.originator)
            .finish_non_exhaustive()
    }
}

/// One entry of `consultants` as written: a CSE-ID (`"//sp/cse"`), or
/// `{"cse_id": "//sp/cse", "secret": "..."}`.
#[derive(Clone)]
pub struct ConsultantFile {
    /// The CSE-ID (absolute or SP-relative).
    pub cse_id: String,
    /// The secret a call naming this CSE must present as
    /// `authorization: Bearer <secret>`; `None`: the CSE-ID is taken at the
    /// caller's word.
    pub secret: Option<String>,
}

impl fmt::Debug for ConsultantFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsultantFile")
            .field("cse_id", &self.cse_id)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl<'de> Deserialize<'de> for ConsultantFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The object form; unknown fields are errors here too.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct WithSecret {
            cse_id: String,
            secret: String,
        }
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = ConsultantFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a CSE-ID, or an object {"cse_id": ..., "secret": ...}"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ConsultantFile {
                    cse_id: v.to_owned(),
                    secret: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let w = WithSecret::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ConsultantFile {
                    cse_id: w.cse_id,
                    secret: Some(w.secret),
                })
            }
        }
        d.deserialize_any(Entry)
    }
}

/// What a policy grants, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantMode {
    /// A signed token (`tkns`).
    Token,
    /// A dynamic ACP (`dai`); only through `Consult`.
    DynamicAcp,
    /// Both a token and a dynamic ACP (`IssueToken` gives the token only).
    Both,
}

impl GrantMode {
    /// Does this mode issue tokens?
    pub fn tokens(self) -> bool {
        matches!(self, Self::Token | Self::Both)
    }

    /// Does this mode grant a dynamic ACP?
    pub fn dynamic_acp(self) -> bool {
        matches!(self, Self::DynamicAcp | Self::Both)
    }
}

/// The `grant` of a policy as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantFile {
    /// Operations granted (`acop` bits); default the rule's `acop`.
    #[serde(default)]
    pub acop: Option<u32>,
    /// Role-IDs granted (token `rids`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Token, dynamic ACP or both.
    pub mode: GrantMode,
}

/// One policy as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Unique name.
    pub name: String,
    /// Who may ask for what, when and from where.
    pub rule: AccessControlRule,
    /// Resource IDs covered: exact, or a prefix ending in `*`.
    pub targets: Vec<String>,
    /// `ty` codes the target must have; empty means any.
    #[serde(default)]
    pub resource_types: Vec<u32>,
    /// What is granted.
    pub grant: GrantFile,
    /// Longest lifetime of a grant, in seconds.
    pub max_lifetime_s: u64,
}

// ---------------------------------------------------------------------------
// The checked configuration
// ---------------------------------------------------------------------------

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read: {error}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{}: not valid JSON: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Fields are missing, mistyped or invalid; each error names its field.
    #[error("{}: {errors}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Every invalid field.
        errors: ValidationErrors,
    },
}

impl ConfigError {
    /// The invalid fields (empty for read and syntax errors).
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Self::Invalid { errors, .. } => errors.0.iter().map(|e| e.path.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// A loaded signing key: the signer and its published verification key.
#[derive(Debug, Clone)]
pub struct SigningKey {
    /// The key ID.
    pub kid: String,
    /// The algorithm.
    pub algorithm: TokenAlgorithm,
    /// Signs tokens.
    pub signer: TokenSigner,
    /// Verifies them.
    pub public_key: VerificationKey,
    /// The public key's PEM text, as published by `GetKeySet`.
    pub public_key_pem: String,
}

/// An `IssueToken` client: an originator and its secret.
#[derive(Clone)]
pub struct Client {
    /// The originator's absolute ID.
    pub originator: String,
    secret: Vec<u8>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("originator", &self.originator)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Is `presented` this client's secret? Constant time in the content.
    pub fn secret_matches(&self, presented: &[u8]) -> bool {
        self.secret.len() == presented.len() && bool::from(self.secret.ct_eq(presented))
    }
}

/// A hosting CSE allowed to call `Consult` and `GetTokens`, with its secret
/// when one is configured.
#[derive(Clone)]
pub struct Consultant {
    /// Its absolute CSE-ID.
    pub cse_id: String,
    secret: Option<String>,
}

impl fmt::Debug for Consultant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consultant")
            .field("cse_id", &self.cse_id)
            .field("has_secret", &self.secret.is_some())
            .finish()
    }
}

impl Consultant {
    /// Must a call naming this CSE present a secret?
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// Is `presented` this consultant's secret? Constant time in the
    /// content; false when it has none.
    pub fn secret_matches(&self, presented: &[u8]) -> bool {
        self.secret.as_deref().is_some_and(|s| {
            s.len() == presented.len() && bool::from(s.as_bytes().ct_eq(presented))
        })
    }

    /// The configured secret (for a process that runs the DAS and a PDP
    /// together and hands the PDP its credentials).
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref()
    }
}

/// A checked DAS configuration: keys loaded, IDs made absolute, policies
/// compiled.
#[derive(Debug, Clone)]
pub struct DasConfig {
    /// The file it was loaded from (for messages).
    pub file: PathBuf,
    /// The DAS AE-ID (`iss`).
    pub issuer: String,
    /// The FQDN Token-IDs end with.
    pub fqdn: String,
    /// FQDNs of Role-IDs it grants besides [`DasConfig::fqdn`], without
    /// repeats and without `fqdn` itself.
    pub role_issuers: Vec<String>,
    /// The context IDs of the file and of `IssueToken` requests are read in.
    pub hosting: HostingContext,
    /// `aud` of tokens issued through `IssueToken`: absolute CSE-IDs
    /// (`//sp-fqdn/cse-id`, `*` per segment allowed), without repeats.
    pub audience: Vec<String>,
    /// Signing keys; the first signs.
    pub keys: Vec<SigningKey>,
    /// `IssueToken` clients.
    pub clients: Vec<Client>,
    /// The CSEs allowed to consult; empty means anyone.
    pub consultants: Vec<Consultant>,
    /// The policies, in file order.
    pub policies: Vec<Policy>,
    /// The CSEs tokens are encrypted to.
    pub token_encryption: Vec<TokenEncryption>,
    /// The keys secured DAS requests (`sdr`) are decrypted with (none: an
    /// `sdr` is refused).
    pub request_keys: DecryptionKeys,
    /// The public JWK of the first of `request_keys` (JSON text), which
    /// `GetKeySet` publishes for hosting CSEs to encrypt `sdr` to.
    pub request_encryption_jwk: Option<String>,
    /// Interval of the expired-token sweeper.
    pub sweep_interval: Duration,
    /// How far a consulted request's `rts` may be from the DAS clock.
    pub max_request_skew: TimeDelta,
}

/// A JSON value written inline, or the path (relative to the
/// configuration's directory) of a file holding it.
fn inline_or_file(value: &serde_json::Value, base_dir: &Path) -> Result<serde_json::Value, String> {
    match value {
        serde_json::Value::String(path) => {
            let file = base_dir.join(path);
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            authz_core::json::parse_json(&text)
                .map_err(|e| format!("{}: not JSON: {e}", file.display()))
        }
        inline => Ok(inline.clone()),
    }
}

/// JWK members that are private (RFC 7518 6.2.2, 6.3.2): left out of the
/// published key.
const PRIVATE_JWK_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// `request_decryption_keys`: the keys, and the public JWK of the first,
/// which `GetKeySet` publishes. Every key must be a private key of a
/// key pair (`RSA-OAEP-256`, `ECDH-ES+A*KW`): a hosting CSE learns the
/// key to encrypt to from the published key set, where a shared secret
/// cannot go.
fn request_keys(
    value: &serde_json::Value,
    base_dir: &Path,
) -> Result<(DecryptionKeys, String), ValidationError> {
    const FIELD: &str = "request_decryption_keys";
    let set = inline_or_file(value, base_dir).map_err(|m| err(FIELD, m))?;
    let list = set
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| err(FIELD, "a JWK Set with at least one key in \"keys\""))?;
    let mut keys = DecryptionKeys::new();
    for (i, jwk) in list.iter().enumerate() {
        let at = format!("{FIELD}.keys[{i}]");
        let key = DecryptionKey::from_jwk(jwk, &at).map_err(|e| err(e.path, e.reason))?;
        if key.algorithm().is_shared_secret() {
            return Err(err(
                format!("{at}.alg"),
                "a shared secret cannot be published to hosting CSEs: use RSA-OAEP-256 or ECDH-ES+A*KW",
            ));
        }
        if keys.iter().any(|k| k.kid() == key.kid()) {
            return Err(err(format!("{at}.kid"), "the kid of an earlier key"));
        }
        keys.insert(key);
    }
    let mut public = list[0].clone();
    if let Some(members) = public.as_object_mut() {
        for m in PRIVATE_JWK_MEMBERS {
            members.remove(m);
        }
    }
    Ok((keys, public.to_string()))
}

impl DasConfig {
    /// Reads, parses and checks a configuration file. Relative key paths are
    /// resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            file: path.to_owned(),
            error,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_json(&text, path, base)
    }

    /// Parses and checks configuration text; `file` names it in errors and
    /// `base_dir` anchors relative key paths.
    pub fn from_json(text: &str, file: &Path, base_dir: &Path) -> Result<Self, ConfigError> {
        // As every JSON file of the project: a leading BOM is skipped.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // A key written twice in any object, an inline key set's too, is an
        // error naming where, not "the last one wins" (the structs refuse
        // their own repeated fields; a JSON value kept as is would not).
        if let Err(e) = authz_core::json::parse_json(text) {
            return Err(ConfigError::Syntax {
                file: file.to_owned(),
                message: e.to_string(),
            });
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed: DasConfigFile = match serde_path_to_error::deserialize(&mut de) {
            Ok(c) => c,
            Err(e) => return Err(parse_error(file, e)),
        };
        if let Err(e) = de.end() {
            return Err(ConfigError::Syntax {
                file: file.to_owned(),
                message: e.to_string(),
            });
        }
        Self::from_file(parsed, file, base_dir)
    }

    /// Checks a parsed file: loads the keys, makes IDs absolute, compiles the
    /// policies. Reports every invalid field.
    pub fn from_file(
        parsed: DasConfigFile,
        file: &Path,
        base_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let DasConfigFile {
            issuer,
            fqdn,
            role_issuers,
            sp_id,
            cse_id,
            audience,
            signing_keys,
            clients,
            consultants,
            policies,
            token_encryption,
            request_decryption_keys,
            sweep_interval_s,
            max_request_skew_s,
        } = parsed;

        if issuer_fqdn(&format!("t@{fqdn}")).is_none() {
            errors.push(err("fqdn", format!("'{fqdn}' is not a lower-case FQDN")));
        }
        let mut loaded_role_issuers: Vec<String> = Vec::new();
        for (i, r) in role_issuers.iter().enumerate() {
            if issuer_fqdn(&format!("r@{r}")).is_none() {
                errors.push(err(
                    format!("role_issuers[{i}]"),
                    format!("'{r}' is not a lower-case FQDN"),
                ));
            } else if *r == fqdn || loaded_role_issuers.contains(r) {
                errors.push(err(
                    format!("role_issuers[{i}]"),
                    format!("'{r}' is listed already (or is `fqdn`)"),
                ));
            } else {
                loaded_role_issuers.push(r.clone());
            }
        }
        let hosting = match HostingContext::new(&sp_id, &cse_id) {
            Ok(h) => Some(h),
            Err(e) => {
                let field = if matches!(e, IdError::BadCseId(..)) {
                    "cse_id"
                } else {
                    "sp_id"
                };
                errors.push(err(field, e.to_string()));
                None
            }
        };

        if let Some(h) = &hosting {
            let absolute = issuer.starts_with("//")
                && issuer[2..].contains('/')
                && h.canonicalize(&issuer).is_ok_and(|c| c == issuer);
            if !absolute {
                errors.push(err(
                    "issuer",
                    format!("'{issuer}' is not an absolute AE-ID with a lower-case domain (//sp-fqdn/...)"),
                ));
            }
        }

        if audience.is_empty() {
            errors.push(err(
                "audience",
                "at least one CSE-ID is needed: tokens without an audience are refused (TS-0003 7.3.2.3 step 6.1.3)",
            ));
        }
        let mut loaded_audience: Vec<String> = Vec::new();
        for (i, a) in audience.iter().enumerate() {
            if let Some(h) = &hosting {
                match absolute_audience(a, h.sp_fqdn()) {
                    Ok(abs) if !loaded_audience.contains(&abs) => loaded_audience.push(abs),
                    Ok(_) => {}
                    Err(m) => errors.push(err(format!("audience[{i}]"), m)),
                }
            }
        }

        if signing_keys.is_empty() {
            errors.push(err("signing_keys", "at least one key is needed"));
        }
        let mut keys = Vec::new();
        let mut kids = HashSet::new();
        // The first key signs every token: with an ESData JWS algorithm
        // (TS-0003 7.3.2.6.2; table 8.5.3.3-2 lists HS*, RS* and ES*), so
        // that any conformant hosting CSE can verify them. An EdDSA key may
        // follow, published for verifiers that accept it.
        if let Some(first) = signing_keys.first()
            && first.alg == KeyAlgorithm::EdDsa
        {
            errors.push(err(
                "signing_keys[0].alg",
                "EdDSA is no ESData JWS algorithm (TS-0003 table 8.5.3.3-2: HS*, RS*, ES*), \
                 so a conformant hosting CSE could not verify the tokens it signs; put an ES256 \
                 or RS256 key first",
            ));
        }
        for (i, k) in signing_keys.iter().enumerate() {
            if !kids.insert(k.kid.as_str()) {
                errors.push(err(
                    format!("signing_keys[{i}].kid"),
                    format!("'{}' is listed twice", k.kid),
                ));
                continue;
            }
            match load_key(k, base_dir, &format!("signing_keys[{i}]")) {
                Ok(key) => keys.push(key),
                Err(e) => errors.push(e),
            }
        }

        let mut loaded_clients = Vec::new();
        let mut secrets: HashMap<&str, usize> = HashMap::new();
        for (i, c) in clients.iter().enumerate() {
            if let Some(problem) = bearer_secret_problem(&c.secret) {
                errors.push(err(format!("clients[{i}].secret"), problem));
            } else if let Some(j) = secrets.insert(c.secret.as_str(), i) {
                errors.push(err(
                    format!("clients[{i}].secret"),
                    format!("the same as clients[{j}].secret; each client needs its own"),
                ));
            }
            if let Some(h) = &hosting {
                match h.canonicalize(&c.originator) {
                    Ok(o) => loaded_clients.push(Client {
                        originator: o.into_owned(),
                        secret: c.secret.as_bytes().to_vec(),
                    }),
                    Err(e) => errors.push(err(
                        format!("clients[{i}].originator"),
                        format!("'{}': {e}", c.originator),
                    )),
                }
            }
        }

        let mut loaded_consultants: Vec<Consultant> = Vec::new();
        let mut consultant_ids: HashMap<String, usize> = HashMap::new();
        for (i, c) in consultants.iter().enumerate() {
            let field = if c.secret.is_some() {
                format!("consultants[{i}].cse_id")
            } else {
                format!("consultants[{i}]")
            };
            if let Some(secret) = &c.secret {
                let field = format!("consultants[{i}].secret");
                if let Some(problem) = bearer_secret_problem(secret) {
                    errors.push(err(&field, problem));
                }
                if let Some(j) = clients.iter().position(|cl| cl.secret == *secret) {
                    errors.push(err(
                        &field,
                        format!(
                            "the same as clients[{j}].secret; that originator could call Consult as this CSE"
                        ),
                    ));
                }
            }
            if let Some(h) = &hosting {
                match absolute_cse_id(&c.cse_id, h.sp_fqdn()) {
                    Ok(ctx) => {
                        let cse_id = cse_id_string(&ctx);
                        if let Some(&j) = consultant_ids.get(&cse_id) {
                            errors.push(err(
                                field,
                                format!("'{}' is the same CSE as consultants[{j}]", c.cse_id),
                            ));
                        } else {
                            consultant_ids.insert(cse_id.clone(), i);
                            loaded_consultants.push(Consultant {
                                cse_id,
                                secret: c.secret.clone(),
                            });
                        }
                    }
                    Err(m) => errors.push(err(field, m)),
                }
            }
        }

        let mut loaded_policies = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, p) in policies.iter().enumerate() {
            if let Some(j) = names.insert(p.name.as_str(), i) {
                errors.push(err(
                    format!("policies[{i}].name"),
                    format!("'{}' is also the name of policies[{j}]", p.name),
                ));
            }
            if let Some(h) = &hosting {
                let issuers: Vec<&str> = std::iter::once(fqdn.as_str())
                    .chain(role_issuers.iter().map(String::as_str))
                    .collect();
                match Policy::compile(p, h, &issuers, &format!("policies[{i}]")) {
                    Ok(policy) => loaded_policies.push(policy),
                    Err(e) => errors.extend(e),
                }
            }
        }

        let sweep_interval = match sweep_interval_s {
            None => DEFAULT_SWEEP_INTERVAL,
            Some(0) => {
                errors.push(err("sweep_interval_s", "must be at least 1"));
                DEFAULT_SWEEP_INTERVAL
            }
            Some(s) => Duration::from_secs(s),
        };
        let max_request_skew = match max_request_skew_s {
            None => DEFAULT_MAX_REQUEST_SKEW,
            // `rts` has whole seconds and the clock does not: 0 would
            // refuse every request that carries one.
            Some(0) => {
                errors.push(err(
                    "max_request_skew_s",
                    "must be at least 1 (a request timestamp has whole seconds)",
                ));
                DEFAULT_MAX_REQUEST_SKEW
            }
            Some(s) if s > MAX_LIFETIME_S => {
                errors.push(err(
                    "max_request_skew_s",
                    format!("must be at most {MAX_LIFETIME_S}"),
                ));
                DEFAULT_MAX_REQUEST_SKEW
            }
            // Bounded just above.
            Some(s) => TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX)),
        };

        let mut loaded_encryption: Vec<TokenEncryption> = Vec::new();
        for (i, t) in token_encryption.iter().enumerate() {
            let at = |f: &str| format!("token_encryption[{i}].{f}");
            let cse_id = match &hosting {
                Some(h) if !t.cse_id.contains('*') => {
                    match absolute_audience(&t.cse_id, h.sp_fqdn()) {
                        Ok(abs) if loaded_encryption.iter().any(|e| e.cse_id == abs) => {
                            errors.push(err(at("cse_id"), format!("'{abs}' is listed already")));
                            None
                        }
                        Ok(abs) => Some(abs),
                        Err(m) => {
                            errors.push(err(at("cse_id"), m));
                            None
                        }
                    }
                }
                Some(_) => {
                    errors.push(err(
                        at("cse_id"),
                        "names one CSE: a token is encrypted to one recipient",
                    ));
                    None
                }
                None => None,
            };
            let jwk = inline_or_file(&t.jwk, base_dir)
                .map_err(|m| errors.push(err(at("jwk"), m)))
                .ok();
            let key = jwk.and_then(|jwk| {
                EncryptionKey::from_jwk(&jwk, &at("jwk"))
                    .map_err(|e| errors.push(err(e.path, e.reason)))
                    .ok()
            });
            let enc = match t.enc.as_deref() {
                None => Some(ContentEncryption::A256Gcm),
                Some(name) => ContentEncryption::from_name(name).or_else(|| {
                    errors.push(err(
                        at("enc"),
                        format!(
                            "'{name}' is not A128GCM, A192GCM or A256GCM (TS-0003 table 8.5.3.2-4)"
                        ),
                    ));
                    None
                }),
            };
            if let (Some(cse_id), Some(key), Some(enc)) = (cse_id, key, enc) {
                // A `dir` key is the content key: its size fixes `enc`.
                if let Err(e) = encrypt(b"", &key, enc, true) {
                    errors.push(err(at("enc"), e.to_string()));
                } else {
                    loaded_encryption.push(TokenEncryption { cse_id, key, enc });
                }
            }
        }

        let (request_keys, request_encryption_jwk) = match &request_decryption_keys {
            None => (DecryptionKeys::new(), None),
            Some(value) => match request_keys(value, base_dir) {
                Ok((keys, public)) => (keys, Some(public)),
                Err(e) => {
                    errors.push(e);
                    (DecryptionKeys::new(), None)
                }
            },
        };

        match hosting {
            Some(hosting) if errors.is_empty() => Ok(Self {
                file: file.to_owned(),
                issuer,
                fqdn,
                role_issuers: loaded_role_issuers,
                hosting,
                audience: loaded_audience,
                keys,
                clients: loaded_clients,
                consultants: loaded_consultants,
                policies: loaded_policies,
                token_encryption: loaded_encryption,
                request_keys,
                request_encryption_jwk,
                sweep_interval,
                max_request_skew,
            }),
            _ => Err(ConfigError::Invalid {
                file: file.to_owned(),
                errors: ValidationErrors(errors),
            }),
        }
    }

    /// Where a token with this audience is encrypted to: the
    /// `token_encryption` entry of its one CSE, if the audience is exactly
    /// one CSE that has one.
    pub fn encryption_for(&self, audience: &[String]) -> Option<&TokenEncryption> {
        match audience {
            [only] => self.token_encryption.iter().find(|e| &e.cse_id == only),
            _ => None,
        }
    }

    /// The key that signs (the first listed).
    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.keys.first()
    }

    /// The client whose secret is `presented`, if any. Every client is
    /// compared, so the time taken does not depend on which one matches.
    pub fn client_by_secret(&self, presented: &[u8]) -> Option<&Client> {
        let mut found = None;
        for c in &self.clients {
            if c.secret_matches(presented) && found.is_none() {
                found = Some(c);
            }
        }
        found
    }

    /// May the CSE with this absolute CSE-ID consult? Anyone may when no
    /// consultants are configured. (Whether the caller must also present a
    /// secret: [`DasConfig::consultant`].)
    pub fn is_consultant(&self, cse_id: &str) -> bool {
        self.consultants.is_empty() || self.consultant(cse_id).is_some()
    }

    /// The configured consultant with this absolute CSE-ID.
    pub fn consultant(&self, cse_id: &str) -> Option<&Consultant> {
        self.consultants.iter().find(|c| c.cse_id == cse_id)
    }
}

/// An `audience` entry in absolute form: `//sp-fqdn/cse-id` with the SP
/// domain in lower case, or an SP-relative `/cse-id` read in the SP
/// `sp_fqdn`. `*` may stand in either segment (TS-0003 7.3.2.3 step 6.1.3:
/// "Absolute CSE-IDs (optionally including wildcards)"). Anything that does
/// not name a CSE (no CSE segment, more than one segment, whitespace) is an
/// error saying why.
pub fn absolute_audience(entry: &str, sp_fqdn: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!("'{entry}' is not a CSE-ID (//sp-fqdn/cse-id or /cse-id, `*` per segment): {why}")
    };
    if entry.chars().any(char::is_whitespace) {
        return Err(bad("it contains whitespace"));
    }
    let (sp, cse) = if let Some(abs) = entry.strip_prefix("//") {
        abs.split_once('/')
            .ok_or_else(|| bad("there is no CSE-ID after the SP domain"))?
    } else if let Some(cse) = entry.strip_prefix('/') {
        (sp_fqdn, cse)
    } else {
        return Err(bad("it starts with neither // nor /"));
    };
    if sp.is_empty() {
        return Err(bad("the SP domain is empty"));
    }
    // A domain name, `*` standing for name characters (`//*/...`,
    // `//*.example.com/...`): a port or `a..b` would match no CSE.
    if !authz_core::ids::is_fqdn(&sp.replace('*', "a")) {
        return Err(bad(&format!("'{sp}' is not an SP domain name")));
    }
    if cse.is_empty() {
        return Err(bad("the CSE-ID is empty"));
    }
    if cse.contains('/') {
        return Err(bad("a CSE-ID is one segment; this names a resource"));
    }
    Ok(format!("//{}/{cse}", sp.to_ascii_lowercase()))
}

/// The hosting context named by a CSE-ID: absolute `//sp-fqdn/cse-id`, or
/// SP-relative `/cse-id` in the SP `sp_fqdn`.
pub fn absolute_cse_id(id: &str, sp_fqdn: &str) -> Result<HostingContext, String> {
    let bad = || format!("'{id}' is not a CSE-ID (//sp-fqdn/cse-id or /cse-id)");
    let (sp, cse) = if let Some(abs) = id.strip_prefix("//") {
        abs.split_once('/').ok_or_else(bad)?
    } else if let Some(cse) = id.strip_prefix('/') {
        (sp_fqdn, cse)
    } else {
        return Err(bad());
    };
    HostingContext::new(sp, cse).map_err(|e| format!("{}: {e}", bad()))
}

/// `//sp-fqdn/cse-id` of a hosting context.
pub fn cse_id_string(h: &HostingContext) -> String {
    format!("//{}/{}", h.sp_fqdn(), h.cse_id())
}

/// Why `secret` (of a client or a consultant) is unfit to authenticate a
/// call, or `None` when it is fit: at least [`MIN_CLIENT_SECRET`] printable
/// ASCII characters without spaces. It is presented as the gRPC metadata
/// `authorization: Bearer <secret>`, whose values are ASCII only (a
/// non-ASCII value is refused before any comparison) and which the DAS
/// trims, so a non-ASCII secret or one with a leading or trailing space
/// could never authenticate; spaces inside are refused too, as they are
/// easily lost or doubled on the way.
fn bearer_secret_problem(secret: &str) -> Option<String> {
    if secret.len() < MIN_CLIENT_SECRET {
        Some(format!("must be at least {MIN_CLIENT_SECRET} bytes"))
    } else if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        Some(
            "must be printable ASCII without spaces: it is sent as gRPC metadata \
             `authorization: Bearer <secret>`, which carries ASCII only and is trimmed"
                .to_owned(),
        )
    } else {
        None
    }
}

fn err(path: impl Into<String>, message: impl fmt::Display) -> ValidationError {
    ValidationError {
        path: path.into(),
        message: message.to_string(),
    }
}

/// A parse error as a [`ConfigError`]: syntax errors as such, data errors
/// (wrong type, unknown or missing field) naming the field.
fn parse_error(file: &Path, e: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return ConfigError::Syntax {
            file: file.to_owned(),
            message: inner.to_string(),
        };
    }
    let message = inner.to_string();
    let parent = if path == "." { "" } else { path.as_str() };
    // "missing field `x`" is reported at the enclosing object: name `x`.
    let path = match message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        Some((name, _)) if parent.is_empty() => name.to_owned(),
        Some((name, _)) => format!("{parent}.{name}"),
        None if parent.is_empty() => "(document)".to_owned(),
        None => parent.to_owned(),
    };
    ConfigError::Invalid {
        file: file.to_owned(),
        errors: ValidationErrors(vec![err(path, message)]),
    }
}

fn read_key_file(base: &Path, file: &str, field: &str) -> Result<String, ValidationError> {
    let path = base.join(file);
    std::fs::read_to_string(&path)
        .map_err(|e| err(field, format!("{}: cannot read: {e}", path.display())))
}

/// Loads one key pair and checks that the public key verifies what the
/// private key signs, so a mismatched pair fails at start, not at a PDP.
fn load_key(k: &SigningKeyFile, base: &Path, path: &str) -> Result<SigningKey, ValidationError> {
    let algorithm = TokenAlgorithm::from(k.alg);
    let private_field = format!("{path}.private_key_pem");
    let public_field = format!("{path}.public_key_pem");
    let private_pem = read_key_file(base, &k.private_key_pem, &private_field)?;
    let signer =
        TokenSigner::from_pem(algorithm, k.kid.clone(), private_pem.as_bytes()).map_err(|e| {
            let field = if k.kid.is_empty() {
                format!("{path}.kid")
            } else {
                private_field.clone()
            };
            err(field, format!("{}: {e}", k.private_key_pem))
        })?;
    let public_key_pem = read_key_file(base, &k.public_key_pem, &public_field)?;
    let public_key = VerificationKey::from_public_pem(algorithm, public_key_pem.as_bytes())
        .map_err(|e| err(&public_field, format!("{}: {e}", k.public_key_pem)))?;

    // Sign a probe token and verify it with the public key.
    let now = Utc::now();
    let probe_id = "//key-check.invalid/cse/Cprobe";
    let window = TimeDelta::minutes(1);
    let mut claims = TokenClaims::new(
        "probe@key-check.invalid",
        probe_id,
        probe_id,
        now - window,
        now + window,
    );
    claims.audience = vec!["//key-check.invalid/cse".into()];
    let mismatch = |m: String| {
        err(
            &public_field,
            format!(
                "{} does not verify tokens signed with {}: {m}",
                k.public_key_pem, k.private_key_pem
            ),
        )
    };
    let token = signer.sign(&claims).map_err(|e| mismatch(e.to_string()))?;
    let issuer = TrustedIssuer::new(probe_id, &[algorithm])
        .with_key(k.kid.clone(), public_key.clone())
        .map_err(|e| mismatch(e.to_string()))?;
    let ctx = VerifyContext::new("//key-check.invalid/cse", probe_id, now)
        .map_err(|e| mismatch(e.to_string()))?;
    TrustStore::new()
        .with_issuer(issuer)
        .verify(&token, &ctx)
        .map_err(|e| mismatch(e.to_string()))?;
    Ok(SigningKey {
        kid: k.kid.clone(),
        algorithm,
        signer,
        public_key,
        public_key_pem,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A valid configuration with these `clients` and `consultants`, its
    /// keys from the core test keys.
    fn config(clients: Value, consultants: Value) -> Value {
        let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/keys");
        json!({
            "issuer": "//home.example/mn-cse-123456/CDas",
            "fqdn": "das.home.example",
            "sp_id": "//home.example",
            "cse_id": "/mn-cse-123456",
            "audience": ["//home.example/mn-cse-123456"],
            "signing_keys": [{
                "kid": "k", "alg": "ES256",
                "private_key_pem": keys.join("es256-private.pem"),
                "public_key_pem": keys.join("es256-public.pem"),
            }],
            "clients": clients,
            "consultants": consultants,
            "policies": [{
                "name": "p",
                "rule": {"acor": ["Cguest"], "acop": 4},
                "targets": ["frontDoor"],
                "grant": {"mode": "token"},
                "max_lifetime_s": 60
            }]
        })
    }

    fn fields(v: &Value) -> Vec<String> {
        match DasConfig::from_json(&v.to_string(), Path::new("das.json"), Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(e) => e.fields().into_iter().map(str::to_owned).collect(),
        }
    }

    /// Decision 8: `role_issuers` are lower-case FQDNs, each once and not
    /// `fqdn` itself; a policy may grant their Role-IDs.
    #[test]
    fn role_issuers_are_fqdns_whose_roles_policies_may_grant() {
        let mut v = config(json!([]), json!([]));
        v["role_issuers"] = json!([
            "roles.example.com",
            "Roles.Example",
            "das.home.example",
            "roles.example.com"
        ]);
        assert_eq!(
            fields(&v),
            vec!["role_issuers[1]", "role_issuers[2]", "role_issuers[3]"]
        );
        v["role_issuers"] = json!(["roles.example.com"]);
        v["policies"][0]["grant"] = json!({"roles": ["guest@roles.example.com"], "mode": "token"});
        let loaded = DasConfig::from_json(&v.to_string(), Path::new("das.json"), Path::new("."))
            .expect("loads");
        assert_eq!(loaded.role_issuers, ["roles.example.com"]);
        v["role_issuers"] = json!([]);
        assert_eq!(fields(&v), vec!["policies[0].grant.roles[0]"]);
    }

    /// As every JSON file of the project: a leading BOM is skipped (RFC
    /// 8259 8.1; Windows editors write one).
    #[test]
    fn a_config_with_a_bom_loads() {
        let v = serde_json::from_str::<serde_json::Value>(include_str!(
            "../../examples/das/door-lock-das.json"
        ))
        .expect("example");
        let text = format!("\u{feff}{v}");
        DasConfig::from_json(&text, Path::new("das.json"), Path::new("../examples/das"))
            .expect("loads with a BOM");
    }

    /// A key written twice in an inline key set is an error, as in its
    /// file (README: "the same key twice in one object is an error (not
    /// 'the last one wins')"): the inline JSON value kept the last.
    #[test]
    fn an_inline_key_set_refuses_a_member_written_twice() {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../../examples/das/door-lock-das.json"))
                .expect("example");
        v["request_decryption_keys"] = serde_json::from_str(include_str!(
            "../../examples/das/keys/das-request-keys.json"
        ))
        .expect("key set");
        let kid = v["request_decryption_keys"]["keys"][0]["kid"]
            .as_str()
            .expect("kid")
            .to_owned();
        let text = v.to_string().replacen(
            &format!(r#""kid":"{kid}""#),
            &format!(r#""kid":"{kid}","kid":"zzz""#),
            1,
        );
        assert!(text.contains(r#""kid":"zzz""#));
        match DasConfig::from_json(&text, Path::new("das.json"), Path::new("../examples/das")) {
            Err(e) => assert!(e.to_string().contains("duplicate key `kid`"), "{e}"),
            Ok(_) => panic!("loaded with a kid written twice"),
        }
    }

    /// A secret is presented as gRPC metadata `authorization: Bearer
    /// <secret>` (TS-0003 7.3.2.3 leaves the originator-DAS authentication
    /// to the DAS technology): metadata is ASCII only and the presented
    /// secret is trimmed, so a client secret with a non-ASCII character or
    /// a leading or trailing space could never authenticate. Refused at
    /// load, naming the field, by the same rule as consultant secrets.
    #[test]
    fn client_secrets_that_could_never_authenticate_are_refused_naming_the_field() {
        let good = "guest-secret-0123456789";
        for bad in [
            "pässwort-sehr-lang",
            " guest-secret-0123456789",
            "guest-secret-0123456789 ",
            "guest secret 0123456789",
            "guest-secret\t0123456789",
            "guest-secret-\u{7f}0123456789",
            "short",
        ] {
            let clients = json!([
                {"originator": "Cother", "secret": "other-secret-0123456789"},
                {"originator": "Cguest", "secret": bad}
            ]);
            assert_eq!(
                fields(&config(clients, json!([]))),
                vec!["clients[1].secret"],
                "{bad:?}"
            );
            // The same rule, from the same check, for consultants.
            let consultants = json!([{"cse_id": "/mn-cse-123456", "secret": bad}]);
            assert_eq!(
                fields(&config(json!([]), consultants)),
                vec!["consultants[0].secret"],
                "{bad:?}"
            );
        }
        let clients = json!([{"originator": "Cguest", "secret": good}]);
        assert_eq!(fields(&config(clients, json!([]))), Vec::<String>::new());
        assert_eq!(bearer_secret_problem(good), None);
    }
}
