//! oneM2M JWTs: the tokens of Dynamic Authorization (TS-0003 7.3).
//!
//! This module holds the token claim set and its two serializations, signing
//! for a Dynamic Authorization System, verification at a hosting CSE, and the
//! evaluation of a verified token's permissions:
//!
//! - [`TokenClaims`] is `m2m:tokenClaimSet` (TS-0004 6.3.5.42; TS-0003
//!   7.3.2.4), mapped both ways to the oneM2M JWT claims of TS-0003 table
//!   7.3.2.6.2-1 ([`TokenClaims::to_jwt_claims`],
//!   [`TokenClaims::from_jwt_claims`]) and to the short names of TS-0004 8.2.5
//!   ([`TokenClaims::to_claim_set`], [`TokenClaims::from_claim_set`]). Its
//!   permissions are `m2m:tokenPermissions` ([`TokenPermissions`]; TS-0004
//!   6.3.5.41, TS-0001 table 9.6.39-3).
//! - [`TokenSigner`] makes a JWS compact serialization with `typ: "JWT"`, a
//!   `kid` and no `cty` (TS-0003 7.3.2.6.2, "JOSE header parameters").
//! - [`TrustStore::verify`] runs the security validation of TS-0003 7.3.2.5
//!   and the content checks of 7.3.2.2 step 4.1.1.2 and 7.3.2.3 step 6.1.3
//!   against the issuers, algorithms and keys the CSE was configured with
//!   (7.3.2.6.2, "Configuring CSEs for verifying Tokens"). Every failure is
//!   its own [`TokenError`] variant, whose message is the Deny reason.
//! - [`VerifiedToken::token_permissions_for`] applies the permission rules of
//!   TS-0003 7.3.2.5 ("Token permissions evaluation") to one target resource.
//!
//! A JWE token (Encryption-only or Nested Sign-then-encrypt ESData class)
//! is decrypted with the CSE's [`DecryptionKeys`] ([`crate::jwe`]) and then
//! checked like a JWS.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::compile::{CompiledAcp, ValidationError, ValidationErrors};
use crate::ids::{HostingContext, IdError, glob_segment};
use crate::json::{deserialize_at, format_timestamp, parse_timestamp};
use crate::jwe::{self, ContentEncryption, DecryptionKeys, JweError, KeyManagement};
use crate::model::SetOfAcrs;

/// The default limit on the size of a compact token, in bytes.
pub const DEFAULT_MAX_TOKEN_SIZE: usize = 16 * 1024;

/// The size above which [`check_syntax`] refuses a token unread (four times
/// [`DEFAULT_MAX_TOKEN_SIZE`]).
pub const SYNTAX_CHECK_LIMIT: usize = 64 * 1024;

/// The version a [`TokenClaims::new`] claim set carries (`tkvr`).
pub const TOKEN_VERSION: &str = "1";

// ---------------------------------------------------------------------------
// Claim set
// ---------------------------------------------------------------------------

/// `m2m:tokenClaimSet` (TS-0004 6.3.5.42; TS-0003 7.3.2.4): what a token says.
///
/// Times have a resolution of one second, the resolution of both
/// `m2m:timestamp` and the integer NumericDate this module writes.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenClaims {
    /// version (`vr` / JWT `tkvr`).
    pub version: String,
    /// tokenID (`tkid` / `jti`): `name@issuer-fqdn` (TS-0001 7.1.15).
    pub token_id: String,
    /// holder (`tkhd` / `azp`): the absolute AE-ID or CSE-ID the token is for.
    pub holder: String,
    /// issuer (`tkis` / `iss`): the identity of the token issuer (the DAS).
    pub issuer: String,
    /// notBefore (`tknb` / `nbf`).
    pub not_before: DateTime<Utc>,
    /// notAfter (`tkna` / `exp`).
    pub not_after: DateTime<Utc>,
    /// tokenName (`tknm`): optional human-readable name.
    pub token_name: Option<String>,
    /// audience (`tkau` / `aud`): the CSE-IDs expected to accept the token,
    /// absolute or SP-relative, with `*` wildcards per segment.
    pub audience: Vec<String>,
    /// permissions (`tkps`); an empty `pm` list is the same as none.
    pub permissions: TokenPermissions,
    /// extension (`tkex`): application-specific information.
    pub extension: Option<String>,
}

/// `m2m:tokenPermissions` (TS-0004 6.3.5.41): the `tkps` element.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPermissions {
    /// `pm`: the permissions, each evaluated on its own (TS-0003 7.3.2.5).
    #[serde(default)]
    pub pm: Vec<TokenPermission>,
}

/// `m2m:tokenPermission` (TS-0004 6.3.5.41; TS-0001 table 9.6.39-3).
///
/// At least one of `pv` and `rids` is present, and `ris` is present whenever
/// `pv` is. An empty list counts as absent (project Decision 11). Unknown
/// elements are a parse error, as in `acr`: ignoring one could widen access.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPermission {
    /// `ris` (resourceIDs): the resources this permission is limited to; when
    /// empty the `rids` apply to every resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ris: Vec<String>,
    /// `pv` (privileges): rules that join the applicable policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pv: Option<SetOfAcrs>,
    /// `rids` (roleIDs): Role-IDs (`name@fqdn`) that join the originator's
    /// verified roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rids: Vec<String>,
}

/// The element names of one serialization of the claim set.
struct Names {
    version: &'static str,
    /// The other name accepted for the version (project Decision 6).
    version_alias: &'static str,
    token_id: &'static str,
    holder: &'static str,
    issuer: &'static str,
    not_before: &'static str,
    not_after: &'static str,
    token_name: &'static str,
    audience: &'static str,
    permissions: &'static str,
    extension: &'static str,
    /// NumericDate (JWT) or `m2m:timestamp` (claim set).
    numeric_dates: bool,
}

/// JWT claim names (TS-0003 table 7.3.2.6.2-1).
const JWT: Names = Names {
    version: "tkvr",
    version_alias: "vr",
    token_id: "jti",
    holder: "azp",
    issuer: "iss",
    not_before: "nbf",
    not_after: "exp",
    token_name: "tknm",
    audience: "aud",
    permissions: "tkps",
    extension: "tkex",
    numeric_dates: true,
};

/// `m2m:tokenClaimSet` short names (TS-0004 8.2.5).
const CLAIM_SET: Names = Names {
    version: "vr",
    version_alias: "tkvr",
    token_id: "tkid",
    holder: "tkhd",
    issuer: "tkis",
    not_before: "tknb",
    not_after: "tkna",
    token_name: "tknm",
    audience: "tkau",
    permissions: "tkps",
    extension: "tkex",
    numeric_dates: false,
};

impl TokenClaims {
    /// A claim set with version [`TOKEN_VERSION`] and no name, audience,
    /// permissions or extension.
    pub fn new(
        token_id: impl Into<String>,
        issuer: impl Into<String>,
        holder: impl Into<String>,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Self {
        Self {
            version: TOKEN_VERSION.to_owned(),
            token_id: token_id.into(),
            holder: holder.into(),
            issuer: issuer.into(),
            not_before,
            not_after,
            token_name: None,
            audience: Vec::new(),
            permissions: TokenPermissions::default(),
            extension: None,
        }
    }

    /// The oneM2M JWT claim set (TS-0003 table 7.3.2.6.2-1): version as
    /// `tkvr` (Decision 6), times as integer NumericDates, `aud` as an array.
    pub fn to_jwt_claims(&self) -> Map<String, Value> {
        self.to_map(&JWT)
    }

    /// Reads a oneM2M JWT claim set, reversing table 7.3.2.6.2-1 (TS-0003
    /// 7.3.2.6.2, "Validating a oneM2M JWT", step 3), and validates it.
    ///
    /// The version may be `tkvr` or `vr` (Decision 6); `aud` may be one
    /// string or an array (RFC 7519 4.1.3). A fractional `nbf` is rounded up
    /// and a fractional `exp` down, so the token is never valid longer than it
    /// says. Claims the profile does not name are ignored (RFC 7519 4).
    /// Errors name the JWT claim, e.g. `tkps.pm[0].ris`.
    pub fn from_jwt_claims(claims: &Value) -> Result<Self, ValidationErrors> {
        Self::from_value(claims, &JWT)
    }

    /// The `m2m:tokenClaimSet` object in short names (TS-0004 8.2.5): version
    /// as `vr`, times as `m2m:timestamp` (`YYYYMMDDThhmmss`, UTC).
    pub fn to_claim_set(&self) -> Value {
        Value::Object(self.to_map(&CLAIM_SET))
    }

    /// Reads an `m2m:tokenClaimSet` object in short names and validates it.
    /// The version may be `vr` or `tkvr` (Decision 6); unknown elements are
    /// ignored, like unknown JWT claims.
    pub fn from_claim_set(claim_set: &Value) -> Result<Self, ValidationErrors> {
        Self::from_value(claim_set, &CLAIM_SET)
    }

    /// Checks the rules of the data types, reporting fields by their
    /// `m2m:tokenClaimSet` short names: mandatory elements non-empty, token ID
    /// and Role-IDs `name@fqdn`, notBefore not after notAfter, and each
    /// permission as in [`TokenPermission`] with a `pv` that compiles.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        self.check(&CLAIM_SET, &mut errors);
        finish(errors)
    }

    fn to_map(&self, names: &Names) -> Map<String, Value> {
        let mut m = Map::new();
        let time = |t: DateTime<Utc>| {
            if names.numeric_dates {
                Value::from(t.timestamp())
            } else {
                Value::from(format_timestamp(t))
            }
        };
        m.insert(names.version.into(), self.version.clone().into());
        m.insert(names.token_id.into(), self.token_id.clone().into());
        m.insert(names.issuer.into(), self.issuer.clone().into());
        m.insert(names.holder.into(), self.holder.clone().into());
        m.insert(names.not_before.into(), time(self.not_before));
        m.insert(names.not_after.into(), time(self.not_after));
        if let Some(n) = &self.token_name {
            m.insert(names.token_name.into(), n.clone().into());
        }
        if !self.audience.is_empty() {
            m.insert(names.audience.into(), self.audience.clone().into());
        }
        if !self.permissions.pm.is_empty() {
            // Serializing plain strings, numbers and maps cannot fail.
            let tkps = serde_json::to_value(&self.permissions).unwrap_or(Value::Null);
            m.insert(names.permissions.into(), tkps);
        }
        if let Some(x) = &self.extension {
            m.insert(names.extension.into(), x.clone().into());
        }
        m
    }

    fn from_value(v: &Value, names: &Names) -> Result<Self, ValidationErrors> {
        let Value::Object(map) = v else {
            return Err(ValidationErrors(vec![err(
                "claims",
                "the claim set must be a JSON object",
            )]));
        };
        let mut errors = Vec::new();
        let mut r = Reader {
            map,
            errors: &mut errors,
        };
        let version = r.version(names);
        let token_id = r.required_string(names.token_id);
        let holder = r.required_string(names.holder);
        let issuer = r.required_string(names.issuer);
        let not_before = r.time(names.not_before, names.numeric_dates, true);
        let not_after = r.time(names.not_after, names.numeric_dates, false);
        let token_name = r.string(names.token_name);
        let audience = r.one_or_many(names.audience);
        let permissions = r.permissions(names.permissions);
        let extension = r.string(names.extension);
        let (
            Some(version),
            Some(token_id),
            Some(holder),
            Some(issuer),
            Some(not_before),
            Some(not_after),
        ) = (version, token_id, holder, issuer, not_before, not_after)
        else {
            return Err(ValidationErrors(errors));
        };
        let claims = Self {
            version,
            token_id,
            holder,
            issuer,
            not_before,
            not_after,
            token_name,
            audience: audience.unwrap_or_default(),
            permissions: permissions.unwrap_or_default(),
            extension,
        };
        claims.check(names, &mut errors);
        finish(errors)?;
        Ok(claims)
    }

    fn check(&self, names: &Names, errors: &mut Vec<ValidationError>) {
        if self.version.is_empty() {
            errors.push(err(names.version, "must not be empty"));
        }
        if let Err(m) = check_scoped_id(&self.token_id) {
            errors.push(err(names.token_id, format!("not a token ID: {m}")));
        }
        for (name, value) in [(names.holder, &self.holder), (names.issuer, &self.issuer)] {
            if let Err(e) = check_plain(value) {
                errors.push(err(name, e));
            }
        }
        if self.not_before > self.not_after {
            errors.push(err(
                names.not_before,
                format!(
                    "notBefore {} is after notAfter {}",
                    format_timestamp(self.not_before),
                    format_timestamp(self.not_after)
                ),
            ));
        }
        for (i, a) in self.audience.iter().enumerate() {
            if let Err(e) = check_plain(a) {
                errors.push(err(format!("{}[{i}]", names.audience), e));
            }
        }
        for (i, p) in self.permissions.pm.iter().enumerate() {
            p.check(&format!("{}.pm[{i}]", names.permissions), errors);
        }
    }

    /// The privileges and roles this claim set grants for requests on
    /// `target`, with resource IDs made absolute in `hosting` (see
    /// [`VerifiedToken::token_permissions_for`]).
    pub fn permissions_for(&self, target: &str, hosting: &HostingContext) -> Granted {
        let mut granted = Granted::default();
        let target = canonical_resource_id(target, hosting);
        for (position, p) in self.permissions.pm.iter().enumerate() {
            // 7.3.2.5 step 1: with `ris`, the permission applies only to the
            // resources it lists. An unusable target matches no `ris`.
            let applies = p.ris.is_empty()
                || target.as_deref().is_some_and(|t| {
                    p.ris
                        .iter()
                        .any(|r| canonical_resource_id(r, hosting).as_deref() == Some(t))
                });
            if !applies {
                continue;
            }
            if let Some(pv) = &p.pv {
                granted.privileges.push((position, pv.clone()));
            }
            for r in &p.rids {
                if !granted.role_ids.contains(r) {
                    granted.role_ids.push(r.clone());
                }
            }
        }
        granted
    }
}

impl TokenPermissions {
    /// Reads `m2m:tokenPermissions` from JSON text (a `<token>` resource's
    /// `tkps` as a repository stores it) and checks each permission as a
    /// token's are checked, errors named under `path` (`path.pm[0].ris`).
    pub fn from_json(text: &str, path: &str) -> Result<Self, ValidationErrors> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ValidationErrors(vec![err(path, format!("not valid JSON: {e}"))]))?;
        let permissions: Self =
            deserialize_at(path, value).map_err(|e| ValidationErrors(vec![e]))?;
        let mut errors = Vec::new();
        for (i, p) in permissions.pm.iter().enumerate() {
            p.check(&format!("{path}.pm[{i}]"), &mut errors);
        }
        finish(errors).map(|()| permissions)
    }
}

impl TokenPermission {
    fn check(&self, path: &str, errors: &mut Vec<ValidationError>) {
        if self.pv.is_none() && self.rids.is_empty() {
            errors.push(err(
                path,
                "a permission needs pv or rids (TS-0001 table 9.6.39-3)",
            ));
        }
        if self.pv.is_some() && self.ris.is_empty() {
            errors.push(err(
                format!("{path}.ris"),
                "mandatory when pv is present (TS-0003 7.3.2.5; TS-0001 table 9.6.39-3)",
            ));
        }
        for (j, r) in self.ris.iter().enumerate() {
            if let Err(e) = check_plain(r) {
                errors.push(err(format!("{path}.ris[{j}]"), e));
            }
        }
        for (j, r) in self.rids.iter().enumerate() {
            if let Err(m) = check_scoped_id(r) {
                errors.push(err(
                    format!("{path}.rids[{j}]"),
                    format!("not a Role-ID: {m}"),
                ));
            }
        }
        if let Some(pv) = &self.pv
            && let Err(e) = CompiledAcp::from_privileges("token", pv)
        {
            // Paths from the compiler start at `pv`.
            errors.extend(e.prefixed(&format!("{path}.")).0);
        }
    }
}

/// What a token grants for one target resource (TS-0003 7.3.2.5, "Token
/// permissions evaluation").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Granted {
    /// The `pv` of each applicable permission, in token order, with its
    /// position in `tkps.pm` (what an explanation names it by): each joins
    /// the applicable policies of the decision (step 2). Compile each with
    /// [`CompiledAcp::from_privileges`].
    pub privileges: Vec<(usize, SetOfAcrs)>,
    /// The `rids` of the applicable permissions, without duplicates: they join
    /// the originator's verified roles (step 3; `DecideOptions::granted_roles`).
    pub role_ids: Vec<String>,
}

impl Granted {
    /// True when the token grants nothing for the target.
    pub fn is_empty(&self) -> bool {
        self.privileges.is_empty() && self.role_ids.is_empty()
    }
}

/// Reads typed elements from a claim-set object, collecting errors.
struct Reader<'a> {
    map: &'a Map<String, Value>,
    errors: &'a mut Vec<ValidationError>,
}

impl<'a> Reader<'a> {
    /// The element if present and not null.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.errors.push(err(
                    name,
                    format!("expected a string, found {}", kind(other)),
                ));
                None
            }
        }
    }

    fn required_string(&mut self, name: &str) -> Option<String> {
        if self.get(name).is_none() {
            self.errors.push(missing(name));
            return None;
        }
        self.string(name)
    }

    fn version(&mut self, names: &Names) -> Option<String> {
        let read = |r: &mut Self, name: &str| match r.get(name)? {
            Value::String(s) => Some(s.clone()),
            // A numeric version is read as its decimal text.
            Value::Number(n) => Some(n.to_string()),
            other => {
                r.errors.push(err(
                    name,
                    format!("expected a string, found {}", kind(other)),
                ));
                None
            }
        };
        let main = read(self, names.version);
        let alias = read(self, names.version_alias);
        match (main, alias) {
            (Some(a), Some(b)) if a != b => {
                self.errors.push(err(
                    names.version,
                    format!(
                        "'{}' ({a}) and '{}' ({b}) disagree",
                        names.version, names.version_alias
                    ),
                ));
                None
            }
            (Some(v), _) | (None, Some(v)) => Some(v),
            (None, None) => {
                if self.get(names.version).is_none() && self.get(names.version_alias).is_none() {
                    self.errors.push(missing(names.version));
                }
                None
            }
        }
    }

    /// A NumericDate (seconds since the epoch, RFC 7519 2) or an
    /// `m2m:timestamp`. `round_up` picks the direction for fractions.
    fn time(&mut self, name: &str, numeric: bool, round_up: bool) -> Option<DateTime<Utc>> {
        let Some(v) = self.get(name) else {
            self.errors.push(missing(name));
            return None;
        };
        let parsed = match (numeric, v) {
            (true, Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64().filter(|f| f.is_finite()).map(|f| {
                        let r = if round_up { f.ceil() } else { f.floor() };
                        // Saturating cast; out-of-range values fail below.
                        r as i64
                    })
                })
                // The services carry 0001-01-01..9999-12-31 only (a
                // protobuf Timestamp): a token dated beyond could be used
                // but not kept (no Local-Token-ID), so it is refused, as
                // an `m2m:timestamp` of year 0000 is.
                .filter(|s| {
                    (crate::json::FIRST_TIMESTAMP_SECONDS..=crate::json::LAST_TIMESTAMP_SECONDS)
                        .contains(s)
                })
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .ok_or("NumericDate out of range 0001-01-01T00:00:00Z..=9999-12-31T23:59:59Z"),
            (true, other) => {
                let m = format!("expected a NumericDate, found {}", kind(other));
                self.errors.push(err(name, m));
                return None;
            }
            (false, Value::String(s)) => {
                parse_timestamp(s).ok_or("not an m2m:timestamp (YYYYMMDDThhmmss)")
            }
            (false, other) => {
                let m = format!("expected an m2m:timestamp, found {}", kind(other));
                self.errors.push(err(name, m));
                return None;
            }
        };
        match parsed {
            Ok(t) => Some(t),
            Err(m) => {
                self.errors.push(err(name, m));
                None
            }
        }
    }

    /// A string or a list of strings (RFC 7519 4.1.3 for `aud`).
    fn one_or_many(&mut self, name: &str) -> Option<Vec<String>> {
        match self.get(name)? {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.errors.push(err(
                            format!("{name}[{i}]"),
                            format!("expected a string, found {}", kind(other)),
                        )),
                    }
                }
                Some(out)
            }
            other => {
                self.errors.push(err(
                    name,
                    format!(
                        "expected a string or a list of strings, found {}",
                        kind(other)
                    ),
                ));
                None
            }
        }
    }

    fn permissions(&mut self, name: &str) -> Option<TokenPermissions> {
        let mut v = self.get(name)?.clone();
        if let Err(e) = crate::json::prepare_token_permissions(&mut v, name) {
            self.errors.push(e);
            return None;
        }
        match deserialize_at::<TokenPermissions>(name, v) {
            Ok(p) => Some(p),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }
}

fn err(path: impl Into<String>, message: impl fmt::Display) -> ValidationError {
    ValidationError {
        path: path.into(),
        message: message.to_string(),
    }
}

fn missing(name: &str) -> ValidationError {
    err(
        name,
        "missing (mandatory in m2m:tokenClaimSet, TS-0004 6.3.5.42)",
    )
}

fn finish(errors: Vec<ValidationError>) -> Result<(), ValidationErrors> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn check_plain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else if s.chars().any(char::is_whitespace) {
        Err("must not contain whitespace")
    } else {
        Ok(())
    }
}

/// Checks the `name@fqdn` form of token IDs and Role-IDs (TS-0004 table
/// 6.3.3-1; TS-0001 7.1.14, 7.1.15): the name of letters, digits, `.`, `_`
/// and `-`; the issuer a lower-case FQDN. The error says which part is
/// wrong.
pub fn check_scoped_id(id: &str) -> Result<(), String> {
    if id.len() > crate::ids::MAX_ID_BYTES {
        return Err(format!(
            "is {} bytes long; an ID has at most {}",
            id.len(),
            crate::ids::MAX_ID_BYTES
        ));
    }
    let Some((name, fqdn)) = id.split_once('@') else {
        return Err(format!("'{id}' is not name@fqdn"));
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "'{id}': the name must be letters, digits, '.', '_' or '-'"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if fqdn.len() > 253 || !fqdn.split('.').all(label_ok) {
        return Err(format!("'{id}': '{fqdn}' is not a lower-case FQDN"));
    }
    Ok(())
}

/// The issuer FQDN of a token ID or Role-ID (`name@fqdn`), by which the DAS
/// that issued it is found (Decision 8); `None` if the ID is not well formed.
pub fn issuer_fqdn(id: &str) -> Option<&str> {
    check_scoped_id(id).ok()?;
    id.split_once('@').map(|(_, fqdn)| fqdn)
}

/// The absolute form of a resource ID, `None` when it names no resource.
fn canonical_resource_id(id: &str, hosting: &HostingContext) -> Option<String> {
    crate::ids::canonical_resource_id(id, hosting).ok()
}

// ---------------------------------------------------------------------------
// Algorithms and keys
// ---------------------------------------------------------------------------

/// A JWS algorithm a oneM2M JWT may be signed with (RFC 7518 3.1; RFC 8037).
///
/// `alg: none` is not one of them: it is allowed per issuer with
/// [`TrustedIssuer::allow_unsecured`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenAlgorithm {
    /// ECDSA with P-256 and SHA-256.
    Es256,
    /// EdDSA with Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// HMAC with SHA-256 (a shared secret).
    Hs256,
}

impl TokenAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 4] = [Self::Es256, Self::EdDsa, Self::Rs256, Self::Hs256];

    /// The JOSE `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Hs256 => "HS256",
        }
    }

    /// The algorithm of a JOSE `alg` value (case-sensitive, RFC 7515 4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Rs256 => Algorithm::RS256,
            Self::Hs256 => Algorithm::HS256,
        }
    }
}

impl fmt::Display for TokenAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The shortest HS256 secret accepted: the hash size (RFC 7518 3.2).
pub const MIN_HMAC_SECRET: usize = 32;

/// A key that cannot be used as configured.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The PEM text is not a key of the algorithm's type.
    #[error("not a usable {algorithm} key: {message}")]
    BadKey {
        /// The algorithm the key was meant for.
        algorithm: TokenAlgorithm,
        /// What the parser said.
        message: String,
    },
    /// HS256 takes a secret, not a PEM key, and the others the reverse.
    #[error("{0} keys are given as {1}")]
    WrongForm(TokenAlgorithm, &'static str),
    /// An HS256 secret shorter than [`MIN_HMAC_SECRET`].
    #[error("an HS256 secret must be at least {MIN_HMAC_SECRET} bytes, got {0}")]
    SecretTooShort(usize),
    /// An RS256 key whose modulus is shorter than
    /// [`crate::jwe::MIN_RSA_BITS`] (RFC 7518 3.3: "A key of size 2048
    /// bits or larger MUST be used with these algorithms"): its size.
    #[error("an RS256 key needs at least {min} bits, got {0}", min = crate::jwe::MIN_RSA_BITS)]
    RsaTooSmall(usize),
    /// An empty key ID.
    #[error("a key ID (kid) must not be empty")]
    EmptyKid,
    /// A key for an algorithm the issuer does not permit.
    #[error("issuer '{issuer}' does not permit {algorithm}, the algorithm of key '{kid}'")]
    AlgorithmNotPermitted {
        /// The issuer.
        issuer: String,
        /// The key ID.
        kid: String,
        /// The key's algorithm.
        algorithm: TokenAlgorithm,
    },
    /// Two keys of one issuer with the same ID.
    #[error("issuer '{issuer}' already has a key '{kid}'")]
    DuplicateKid {
        /// The issuer.
        issuer: String,
        /// The key ID.
        kid: String,
    },
}

fn check_secret(secret: &[u8]) -> Result<(), KeyError> {
    if secret.len() < MIN_HMAC_SECRET {
        return Err(KeyError::SecretTooShort(secret.len()));
    }
    Ok(())
}

/// A public key (or HS256 secret) that verifies tokens, bound to one
/// algorithm so that a key is never used with another (RFC 8725 3.1).
#[derive(Clone)]
pub struct VerificationKey {
    algorithm: TokenAlgorithm,
    key: DecodingKey,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key material (an HS256 secret in particular) stays out of logs.
        f.debug_struct("VerificationKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// A public key in PEM: SPKI (`BEGIN PUBLIC KEY`) for ES256 (P-256),
    /// EdDSA (Ed25519) and RS256, or PKCS#1 (`BEGIN RSA PUBLIC KEY`) for RS256.
    pub fn from_public_pem(algorithm: TokenAlgorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let bad = |e: jsonwebtoken::errors::Error| KeyError::BadKey {
            algorithm,
            message: e.to_string(),
        };
        let key = match algorithm {
            TokenAlgorithm::Es256 => DecodingKey::from_ec_pem(pem).map_err(bad)?,
            TokenAlgorithm::EdDsa => DecodingKey::from_ed_pem(pem).map_err(bad)?,
            TokenAlgorithm::Rs256 => {
                check_rsa_size(pem, false)?;
                DecodingKey::from_rsa_pem(pem).map_err(bad)?
            }
            TokenAlgorithm::Hs256 => return Err(KeyError::WrongForm(algorithm, "a secret")),
        };
        // A verifier is built from the key on every verification; building it
        // once here rejects, for example, a P-384 key given for ES256. The
        // empty signature itself just fails to verify.
        jsonwebtoken::crypto::verify("", b"", &key, algorithm.jwt()).map_err(bad)?;
        Ok(Self { algorithm, key })
    }

    /// An HS256 shared secret of at least [`MIN_HMAC_SECRET`] bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        check_secret(secret)?;
        Ok(Self {
            algorithm: TokenAlgorithm::Hs256,
            key: DecodingKey::from_secret(secret),
        })
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> TokenAlgorithm {
        self.algorithm
    }
}

/// Refuses an RSA key in PEM (SPKI or PKCS#1 public, PKCS#8 or PKCS#1
/// private) shorter than [`crate::jwe::MIN_RSA_BITS`], as the JWE keys are
/// refused. A PEM that is no RSA key is left to the caller's parser, which
/// says why.
fn check_rsa_size(pem: &[u8], private: bool) -> Result<(), KeyError> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
    use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
    use rsa::traits::PublicKeyParts;
    let Ok(text) = std::str::from_utf8(pem) else {
        return Ok(());
    };
    let size = if private {
        rsa::RsaPrivateKey::from_pkcs8_pem(text)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(text))
            .ok()
            .map(|k| k.size())
    } else {
        rsa::RsaPublicKey::from_public_key_pem(text)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(text))
            .ok()
            .map(|k| k.size())
    };
    match size {
        Some(bytes) if bytes * 8 < crate::jwe::MIN_RSA_BITS => {
            Err(KeyError::RsaTooSmall(bytes * 8))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------

/// A token that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignError {
    /// The claim set is not valid; no token is issued for it.
    #[error("invalid claim set: {0}")]
    InvalidClaims(ValidationErrors),
    /// The signature could not be computed.
    #[error("signing failed: {0}")]
    Crypto(String),
}

/// Signs oneM2M JWTs for a token issuer (TS-0003 7.3.2.6.2, "Creating a
/// oneM2M JWT"): the Signature-only ESData class as a JWS compact
/// serialization with header `{"alg", "typ": "JWT", "kid"}` and no `cty`.
#[derive(Clone)]
pub struct TokenSigner {
    algorithm: TokenAlgorithm,
    kid: String,
    key: EncodingKey,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer from a PKCS#8 private key in PEM (`BEGIN PRIVATE KEY`; RS256
    /// also takes PKCS#1 `BEGIN RSA PRIVATE KEY`) for ES256, EdDSA or RS256.
    pub fn from_pem(
        algorithm: TokenAlgorithm,
        kid: impl Into<String>,
        private_pem: &[u8],
    ) -> Result<Self, KeyError> {
        let bad = |e: jsonwebtoken::errors::Error| KeyError::BadKey {
            algorithm,
            message: e.to_string(),
        };
        let key = match algorithm {
            TokenAlgorithm::Es256 => EncodingKey::from_ec_pem(private_pem).map_err(bad)?,
            TokenAlgorithm::EdDsa => EncodingKey::from_ed_pem(private_pem).map_err(bad)?,
            TokenAlgorithm::Rs256 => {
                check_rsa_size(private_pem, true)?;
                EncodingKey::from_rsa_pem(private_pem).map_err(bad)?
            }
            TokenAlgorithm::Hs256 => return Err(KeyError::WrongForm(algorithm, "a secret")),
        };
        // Signing once proves the key fits the algorithm (e.g. the curve), so
        // that `sign` fails only on invalid claims.
        jsonwebtoken::crypto::sign(b"", &key, algorithm.jwt()).map_err(bad)?;
        Self::new(algorithm, kid.into(), key)
    }

    /// An HS256 signer from a shared secret of at least [`MIN_HMAC_SECRET`]
    /// bytes.
    pub fn from_secret(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        check_secret(secret)?;
        Self::new(
            TokenAlgorithm::Hs256,
            kid.into(),
            EncodingKey::from_secret(secret),
        )
    }

    fn new(algorithm: TokenAlgorithm, kid: String, key: EncodingKey) -> Result<Self, KeyError> {
        if kid.is_empty() {
            return Err(KeyError::EmptyKid);
        }
        Ok(Self {
            algorithm,
            kid,
            key,
        })
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> TokenAlgorithm {
        self.algorithm
    }

    /// The key ID put in every token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Validates the claim set and signs it as a oneM2M JWT (JWS compact).
    pub fn sign(&self, claims: &TokenClaims) -> Result<String, SignError> {
        claims.validate().map_err(SignError::InvalidClaims)?;
        let header = serde_json::json!({
            "alg": self.algorithm.name(),
            "typ": "JWT",
            "kid": self.kid,
        });
        let message = signing_input(&header, claims);
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, self.algorithm.jwt())
                .map_err(|e| SignError::Crypto(e.to_string()))?;
        Ok(format!("{message}.{signature}"))
    }
}

/// An unsecured oneM2M JWT (`alg: none`, empty signature; RFC 7519 6), which
/// TS-0003 7.3.2.6.2 allows and a CSE accepts only from an issuer configured
/// for it. The claim set is validated first.
pub fn encode_unsecured(claims: &TokenClaims) -> Result<String, SignError> {
    claims.validate().map_err(SignError::InvalidClaims)?;
    let header = serde_json::json!({"alg": "none", "typ": "JWT"});
    Ok(format!("{}.", signing_input(&header, claims)))
}

/// `base64url(header) "." base64url(claims)` (RFC 7515 5.1).
fn signing_input(header: &Value, claims: &TokenClaims) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}",
        part(header),
        part(&Value::Object(claims.to_jwt_claims()))
    )
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/// A token issuer the CSE trusts (TS-0003 7.3.2.6.2, "Configuring CSEs for
/// verifying Tokens from a Token Issuer"): its identity, the algorithms it is
/// permitted to use and its keys by `kid`.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    id: String,
    algorithms: Vec<TokenAlgorithm>,
    allow_unsecured: bool,
    keys: BTreeMap<String, VerificationKey>,
}

impl TrustedIssuer {
    /// An issuer known by its `iss` value (compared exactly, TS-0003 7.3.2.2
    /// step 4.1.1.2.1), permitted the given algorithms, with no keys yet.
    pub fn new(id: impl Into<String>, algorithms: &[TokenAlgorithm]) -> Self {
        Self {
            id: id.into(),
            algorithms: algorithms.to_vec(),
            allow_unsecured: false,
            keys: BTreeMap::new(),
        }
    }

    /// Also accept unsecured tokens (`alg: none`) from this issuer: the
    /// unsecured ESData class, needing no credentials (TS-0003 7.3.2.6.2).
    /// Off unless set: anyone can write such a token.
    pub fn allow_unsecured(mut self, allow: bool) -> Self {
        self.allow_unsecured = allow;
        self
    }

    /// Adds a verification key under `kid`. Its algorithm must be permitted.
    pub fn with_key(
        mut self,
        kid: impl Into<String>,
        key: VerificationKey,
    ) -> Result<Self, KeyError> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(KeyError::EmptyKid);
        }
        if !self.algorithms.contains(&key.algorithm) {
            return Err(KeyError::AlgorithmNotPermitted {
                issuer: self.id,
                kid,
                algorithm: key.algorithm,
            });
        }
        if self.keys.contains_key(&kid) {
            return Err(KeyError::DuplicateKid {
                issuer: self.id,
                kid,
            });
        }
        self.keys.insert(kid, key);
        Ok(self)
    }

    /// The issuer identity (`iss`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The permitted algorithms.
    pub fn algorithms(&self) -> &[TokenAlgorithm] {
        &self.algorithms
    }

    /// Whether unsecured tokens are accepted.
    pub fn allows_unsecured(&self) -> bool {
        self.allow_unsecured
    }

    /// The key IDs.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// The request a token is verified for: the hosting CSE, the originator and
/// the time (TS-0003 7.3.2.2 step 4.1.1.2, 7.3.2.3 step 6.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyContext {
    hosting: HostingContext,
    originator: String,
    now: DateTime<Utc>,
}

impl VerifyContext {
    /// A context from the hosting CSE's absolute CSE-ID (`//sp-fqdn/cse-id`),
    /// the originator's ID (any form [`HostingContext::canonicalize`] takes;
    /// it is made absolute) and the current time.
    ///
    /// An SP-relative CSE-ID (`/cse-id`) names no SP, so it is refused here;
    /// use [`VerifyContext::with_hosting`] with the SP-ID. Audience entries
    /// must be absolute ([`audience_matches`]).
    pub fn new(
        hosting_cse_id: &str,
        originator: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, IdError> {
        let abs = hosting_cse_id.strip_prefix("//").ok_or_else(|| {
            IdError::BadSpId(
                hosting_cse_id.to_owned(),
                "the hosting CSE-ID must be absolute, //sp/cse-id".to_owned(),
            )
        })?;
        let (sp, cse) = abs.split_once('/').ok_or_else(|| {
            IdError::BadCseId(
                hosting_cse_id.to_owned(),
                "the hosting CSE-ID has no /cse-id after its SP-ID".to_owned(),
            )
        })?;
        Self::with_hosting(HostingContext::new(sp, cse)?, originator, now)
    }

    /// A context from a [`HostingContext`], the originator's ID (made
    /// absolute) and the current time.
    pub fn with_hosting(
        hosting: HostingContext,
        originator: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, IdError> {
        let originator = hosting.canonicalize(originator)?.into_owned();
        Ok(Self {
            hosting,
            originator,
            now,
        })
    }

    /// The hosting CSE.
    pub fn hosting(&self) -> &HostingContext {
        &self.hosting
    }

    /// The hosting CSE's absolute CSE-ID, `//sp/cse`.
    pub fn hosting_cse_id(&self) -> String {
        format!("//{}/{}", self.hosting.sp_fqdn(), self.hosting.cse_id())
    }

    /// The originator's absolute ID.
    pub fn originator(&self) -> &str {
        &self.originator
    }

    /// The time of the check.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

/// Why a token was rejected. Each message is a Deny reason (Decision 9),
/// except [`TokenError::is_malformed`] ones, which are invalid arguments.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Larger than the configured limit; not parsed at all.
    #[error("token is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// The token's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a JWS compact serialization (bad parts, base64url or JSON).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// A well-formed token of a kind this CSE does not process (`crit`, an
    /// algorithm outside ESData's, a JWE inside a JWE).
    #[error("unsupported token: {0}")]
    Unsupported(String),
    /// The JOSE header's `typ` is missing or not `JWT` (TS-0003 7.3.2.6.2).
    #[error("JOSE header typ is {}, a oneM2M JWT needs \"JWT\" (TS-0003 7.3.2.6.2)",
        .0.as_deref().map_or("missing".to_owned(), |t| format!("{t:?}")))]
    NotJwtType(Option<String>),
    /// The JOSE header of the JWS has a `cty` (TS-0003 7.3.2.6.2).
    #[error("JOSE header carries cty {0:?}; the JWS of a oneM2M JWT must not (TS-0003 7.3.2.6.2)")]
    ContentTypePresent(String),
    /// A JWE's `cty` is neither absent (Encryption-only) nor `JWT` (Nested
    /// Sign-then-encrypt), TS-0003 7.3.2.6.2.
    #[error("JWE header cty is {0:?}; a oneM2M JWT's JWE has none or \"JWT\" (TS-0003 7.3.2.6.2)")]
    NotNestedJwt(String),
    /// The JWE does not decrypt (no such key, another key's, tampered).
    #[error("{0}")]
    Decryption(JweError),
    /// A JWE under a secret shared with one issuer, carrying another's token.
    #[error(
        "JWE under key {kid:?}, which is shared with issuer {owner:?}, carries a token of {issuer:?}"
    )]
    KeyOfAnotherIssuer {
        /// The key.
        kid: String,
        /// The issuer the key is shared with.
        owner: String,
        /// The token's issuer.
        issuer: String,
    },
    /// An Encryption-only token (the claims encrypted, not signed) whose key
    /// does not authenticate its issuer: the CSE's public key, which anyone
    /// may encrypt to, or a shared key that does not belong to that issuer.
    #[error(
        "encryption-only token of issuer {issuer:?} under key {kid:?}, which is not a secret shared with that issuer; such an issuer must sign (Nested Sign-then-encrypt)"
    )]
    EncryptionOnlyNotAuthenticated {
        /// The claimed issuer.
        issuer: String,
        /// The key that decrypted it.
        kid: String,
    },
    /// No trusted issuer has this `iss`.
    #[error("issuer {0:?} is not a trusted token issuer")]
    UntrustedIssuer(String),
    /// `alg: none` from an issuer not configured for unsecured tokens.
    #[error("unsecured token (alg none) from issuer {0:?}, which is not configured to accept them")]
    UnsecuredNotAllowed(String),
    /// An algorithm the issuer is not permitted (TS-0003 7.3.2.6.2: such a
    /// token "shall" be discarded). This stops key-confusion attacks such as
    /// an HS256 token made with an ES256 issuer's public key.
    #[error("algorithm {alg:?} is not permitted for issuer {issuer:?}")]
    AlgorithmNotPermitted {
        /// The issuer.
        issuer: String,
        /// The header's `alg`.
        alg: String,
    },
    /// No `kid`, and the issuer has more than one key for the algorithm.
    #[error("token has no kid and issuer {issuer:?} has several {alg} keys")]
    MissingKeyId {
        /// The issuer.
        issuer: String,
        /// The algorithm.
        alg: TokenAlgorithm,
    },
    /// No `kid`, and the issuer has no key for the algorithm.
    #[error("token has no kid and issuer {issuer:?} has no {alg} key")]
    NoKey {
        /// The issuer.
        issuer: String,
        /// The algorithm.
        alg: TokenAlgorithm,
    },
    /// A `kid` the issuer has no key for.
    #[error("issuer {issuer:?} has no key {kid:?}")]
    UnknownKey {
        /// The issuer.
        issuer: String,
        /// The header's `kid`.
        kid: String,
    },
    /// The `kid` names a key of another algorithm.
    #[error("key {kid:?} of issuer {issuer:?} is an {key_alg} key, the token says {alg}")]
    KeyAlgorithmMismatch {
        /// The issuer.
        issuer: String,
        /// The key ID.
        kid: String,
        /// The key's algorithm.
        key_alg: TokenAlgorithm,
        /// The header's algorithm.
        alg: TokenAlgorithm,
    },
    /// The signature does not verify with the key (tampered, or signed by
    /// another key).
    #[error("signature does not verify with key {kid:?} of issuer {issuer:?}")]
    BadSignature {
        /// The issuer.
        issuer: String,
        /// The key ID used.
        kid: String,
    },
    /// The claims are not a valid oneM2M claim set.
    #[error("invalid token claims: {0}")]
    InvalidClaims(ValidationErrors),
    /// Now is before notBefore.
    #[error("token is not valid before {}, now is {}", format_timestamp(*.not_before), format_timestamp(*.now))]
    NotYetValid {
        /// notBefore.
        not_before: DateTime<Utc>,
        /// The time of the check.
        now: DateTime<Utc>,
    },
    /// Now is after notAfter.
    #[error("token expired at {}, now is {}", format_timestamp(*.not_after), format_timestamp(*.now))]
    Expired {
        /// notAfter.
        not_after: DateTime<Utc>,
        /// The time of the check.
        now: DateTime<Utc>,
    },
    /// The token names no audience, so it would be good at every CSE.
    #[error(
        "token has no audience; the hosting CSE {hosting:?} must be named (TS-0003 7.3.2.3 step 6.1.3)"
    )]
    NoAudience {
        /// The hosting CSE-ID.
        hosting: String,
    },
    /// No audience entry matches the hosting CSE.
    #[error("token audience {audience:?} does not include the hosting CSE {hosting:?}")]
    WrongAudience {
        /// The token's audience.
        audience: Vec<String>,
        /// The hosting CSE-ID.
        hosting: String,
    },
    /// The Token-ID (`jti`) is not under the FQDN of the DAS that issued
    /// the token: "A Token-ID shall identify the issuer of the Token"
    /// (TS-0001 7.1.15; Decision 8 resolves Token-IDs by that FQDN).
    #[error(
        "token ID {token_id} does not name its issuer {issuer}, whose Token-IDs end with @{fqdn} (TS-0001 7.1.15)"
    )]
    ForeignTokenId {
        /// The token's ID.
        token_id: String,
        /// The token's issuer.
        issuer: String,
        /// The FQDN of that issuer's Token-IDs.
        fqdn: String,
    },
    /// The holder is not the originator: a token of someone else, or replayed.
    #[error("token holder {holder:?} is not the originator {originator:?}")]
    WrongHolder {
        /// The token's holder.
        holder: String,
        /// The originator's absolute ID.
        originator: String,
    },
}

impl TokenError {
    /// A JWE failure as a token failure: a malformed or unsupported JWE is
    /// one like any other token's.
    fn from_jwe(e: JweError) -> Self {
        match e {
            JweError::Malformed(m) => Self::Malformed(m),
            JweError::Unsupported(m) => Self::Unsupported(m),
            other => Self::Decryption(other),
        }
    }

    /// True for a token that is not syntactically a oneM2M JWT (bad compact
    /// form, JSON or claim set): an invalid argument (4000) rather than a
    /// Deny (4103), per Decision 9.
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::Malformed(_) | Self::InvalidClaims(_))
    }
}

/// How a verified token was protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSecurity {
    /// A JWS verified with the issuer's key `kid`.
    Signed {
        /// The algorithm.
        algorithm: TokenAlgorithm,
        /// The key that verified it (also when the header had no `kid`).
        kid: String,
    },
    /// `alg: none`, from an issuer that allows it.
    Unsecured,
    /// Encryption-only: the claims are a JWE's plaintext, under a secret
    /// shared with the issuer.
    Encrypted(Encryption),
    /// Nested Sign-then-encrypt: a JWE whose plaintext is a JWS.
    SignedThenEncrypted {
        /// The JWE.
        encryption: Encryption,
        /// The inner JWS ([`TokenSecurity::Signed`] or
        /// [`TokenSecurity::Unsecured`]).
        signature: Box<TokenSecurity>,
    },
}

/// How a token's JWE was encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// The key management algorithm (`alg`).
    pub algorithm: KeyManagement,
    /// The content encryption algorithm (`enc`).
    pub content: ContentEncryption,
    /// The key that decrypted it.
    pub kid: String,
}

/// A token that passed [`TrustStore::verify`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    compact: String,
    claims: TokenClaims,
    security: TokenSecurity,
}

impl VerifiedToken {
    /// The claims.
    pub fn claims(&self) -> &TokenClaims {
        &self.claims
    }

    /// The claims, by value.
    pub fn into_claims(self) -> TokenClaims {
        self.claims
    }

    /// The token as received (JWS compact), e.g. for caching.
    pub fn compact(&self) -> &str {
        &self.compact
    }

    /// The token ID (`jti`).
    pub fn token_id(&self) -> &str {
        &self.claims.token_id
    }

    /// notAfter: when the token, and anything cached from it, expires.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.claims.not_after
    }

    /// The algorithm and key, or unsecured.
    pub fn security(&self) -> &TokenSecurity {
        &self.security
    }

    /// What the token grants for a request on `target` received by the
    /// hosting CSE `hosting` (TS-0003 7.3.2.5, "Token permissions
    /// evaluation"): for each permission whose `ris` includes the target, or
    /// that has no `ris`, its `pv` joins the applicable policies and its
    /// `rids` the originator's verified roles.
    ///
    /// `ris` entries match the target **exactly**, after both are made
    /// absolute in `hosting` (`//sp/...`, `/cse/...` and CSE-relative forms
    /// of one ID are equal). `hosting` is the CSE of the request at hand, not
    /// of the one the token was first verified for: a cached token (a
    /// Local-Token-ID) used at another CSE must not have that CSE's
    /// CSE-relative target read as a resource of the first. The spec says
    /// the permission applies "only to the resources specified by this
    /// element", with no word of children, so a permission on a parent
    /// grants nothing on its descendants. A structured and an unstructured
    /// ID of one resource are different strings: call once per form the
    /// request is known by.
    pub fn token_permissions_for(&self, target: &str, hosting: &HostingContext) -> Granted {
        self.claims.permissions_for(target, hosting)
    }
}

/// The trusted token issuers of a CSE, and the verification of oneM2M JWTs
/// against them.
#[derive(Debug, Clone)]
pub struct TrustStore {
    issuers: HashMap<String, TrustedIssuer>,
    decryption: std::sync::Arc<DecryptionKeys>,
    max_token_size: usize,
    leeway: TimeDelta,
}

impl Default for TrustStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TrustStore {
    /// No trusted issuers, a [`DEFAULT_MAX_TOKEN_SIZE`] limit and no leeway.
    pub fn new() -> Self {
        Self {
            issuers: HashMap::new(),
            decryption: std::sync::Arc::default(),
            max_token_size: DEFAULT_MAX_TOKEN_SIZE,
            leeway: TimeDelta::zero(),
        }
    }

    /// Adds (or replaces) a trusted issuer.
    pub fn with_issuer(mut self, issuer: TrustedIssuer) -> Self {
        self.insert(issuer);
        self
    }

    /// Adds (or replaces) a trusted issuer, returning the one replaced.
    pub fn insert(&mut self, issuer: TrustedIssuer) -> Option<TrustedIssuer> {
        self.issuers.insert(issuer.id.clone(), issuer)
    }

    /// Stops trusting an issuer.
    pub fn remove(&mut self, issuer: &str) -> Option<TrustedIssuer> {
        self.issuers.remove(issuer)
    }

    /// The trusted issuer with this `iss`.
    pub fn issuer(&self, id: &str) -> Option<&TrustedIssuer> {
        self.issuers.get(id)
    }

    /// Sets the keys JWE tokens are decrypted with (none by default: every
    /// JWE is then refused as undecryptable).
    pub fn with_decryption_keys(mut self, keys: DecryptionKeys) -> Self {
        self.decryption = std::sync::Arc::new(keys);
        self
    }

    /// The keys JWE tokens are decrypted with.
    pub fn decryption_keys(&self) -> &DecryptionKeys {
        &self.decryption
    }

    /// Sets the size limit of a compact token, in bytes.
    pub fn with_max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = bytes;
        self
    }

    /// Sets a clock-skew allowance for notBefore and notAfter (default zero,
    /// so validity is exactly notBefore ≤ now ≤ notAfter). Negative values
    /// count as zero. Keep it small: it lengthens every token's life.
    pub fn with_leeway(mut self, leeway: TimeDelta) -> Self {
        self.leeway = leeway.max(TimeDelta::zero());
        self
    }

    /// Verifies a oneM2M JWT for one request (TS-0003 7.3.2.5; 7.3.2.6.2,
    /// "Validating a oneM2M JWT"; 7.3.2.2 step 4.1.1; 7.3.2.3 step 6.1.3).
    ///
    /// In order, each failure its own [`TokenError`]: the size limit; for a
    /// JWE (five parts), its decryption and what its plaintext must be
    /// (Encryption-only under a secret shared with the issuer, or a signed
    /// JWS inside); the compact form of the JWS; the
    /// JOSE header (`typ` "JWT" compared case-insensitively with an optional
    /// `application/` prefix, RFC 7515 4.1.9 and RFC 7519 5.1; no `cty`; no
    /// `crit`); a trusted `iss`; an `alg` permitted for that issuer (`none`
    /// only where allowed, with an empty signature); the key by `kid`; the
    /// signature; the claim set; notBefore ≤ now ≤ notAfter (with the
    /// leeway); an audience entry matching the hosting CSE; the holder equal
    /// to the originator's absolute ID.
    ///
    /// Key selection: a token without `kid` is accepted when the issuer has
    /// exactly one key of the token's algorithm, which is then used; with
    /// several keys it fails with [`TokenError::MissingKeyId`] rather than
    /// trying each. Header parameters that point at keys (`jku`, `jwk`,
    /// `x5u`, `x5c`) are ignored: keys come only from the configuration.
    pub fn verify(&self, token: &str, ctx: &VerifyContext) -> Result<VerifiedToken, TokenError> {
        if token.len() > self.max_token_size {
            return Err(TokenError::TooLarge {
                size: token.len(),
                limit: self.max_token_size,
            });
        }
        let (claims, security) = match jwe::Compact::parse(token) {
            Some(compact) => self.verify_jwe(&compact.map_err(TokenError::from_jwe)?)?,
            None => self.verify_jws(token)?,
        };
        self.check_content(&claims, ctx)?;
        Ok(VerifiedToken {
            compact: token.to_owned(),
            claims,
            security,
        })
    }

    /// A JWE (TS-0003 7.3.2.6.2): `typ` "JWT"; `cty` absent (Encryption-only:
    /// the claims are the plaintext) or "JWT" (Nested Sign-then-encrypt: the
    /// plaintext is a JWS, verified like any JWS);
    /// decrypted with [`crate::jwe::decrypt`]. An Encryption-only token is
    /// authenticated by its key alone, so it is accepted only under a
    /// secret shared with the issuer it names (the key's `iss`).
    fn verify_jwe(
        &self,
        compact: &jwe::Compact<'_>,
    ) -> Result<(TokenClaims, TokenSecurity), TokenError> {
        check_jwt_type(&compact.header)?;
        let nested = match compact.header.get("cty") {
            None => false,
            Some(Value::String(c)) if is_jwt_type(c) => true,
            Some(Value::String(c)) => return Err(TokenError::NotNestedJwt(c.clone())),
            Some(other) => return Err(TokenError::NotNestedJwt(other.to_string())),
        };
        let decrypted =
            jwe::decrypt_compact(compact, &self.decryption).map_err(TokenError::from_jwe)?;
        let encryption = Encryption {
            algorithm: decrypted.algorithm,
            content: decrypted.encryption,
            kid: decrypted.kid.clone(),
        };
        if nested {
            let inner = std::str::from_utf8(&decrypted.plaintext).map_err(|_| {
                TokenError::Malformed("the JWT nested in the JWE is not UTF-8".into())
            })?;
            if jwe::Compact::parse(inner).is_some() {
                return Err(TokenError::Unsupported(
                    "a JWE nested in a JWE; Nested Sign-then-encrypt carries a JWS".into(),
                ));
            }
            let (claims, signature) = self.verify_jws(inner)?;
            // A secret shared with one issuer carries that issuer's tokens
            // only.
            if let Some(owner) = &decrypted.key_issuer
                && *owner != claims.issuer
            {
                return Err(TokenError::KeyOfAnotherIssuer {
                    kid: decrypted.kid.clone(),
                    owner: owner.clone(),
                    issuer: claims.issuer.clone(),
                });
            }
            return Ok((
                claims,
                TokenSecurity::SignedThenEncrypted {
                    encryption,
                    signature: Box::new(signature),
                },
            ));
        }
        let payload = match serde_json::from_slice(&decrypted.plaintext) {
            Ok(Value::Object(m)) => Value::Object(m),
            _ => {
                return Err(TokenError::Malformed(
                    "the plaintext of an Encryption-only JWE is not a JSON claim set".into(),
                ));
            }
        };
        let issuer_id = claimed_issuer(&payload)?;
        if !self.issuers.contains_key(issuer_id) {
            return Err(TokenError::UntrustedIssuer(issuer_id.to_owned()));
        }
        if decrypted.key_issuer.as_deref() != Some(issuer_id) {
            return Err(TokenError::EncryptionOnlyNotAuthenticated {
                issuer: issuer_id.to_owned(),
                kid: decrypted.kid.clone(),
            });
        }
        let claims = TokenClaims::from_jwt_claims(&payload).map_err(TokenError::InvalidClaims)?;
        Ok((claims, TokenSecurity::Encrypted(encryption)))
    }

    /// A JWS (the Signature-only class, or the inside of a nested JWT):
    /// the checks of [`TrustStore::verify`] up to the claim set.
    fn verify_jws(&self, token: &str) -> Result<(TokenClaims, TokenSecurity), TokenError> {
        let Jws {
            header_b64,
            payload_b64,
            signature_b64,
            header,
            alg,
            kid,
            payload,
        } = Jws::parse(token)?;
        let alg = alg.as_str();
        if header.contains_key("crit") {
            // RFC 7515 4.1.11: critical extensions must be understood; none are.
            return Err(TokenError::Unsupported(
                "JOSE header has crit extensions, none of which are supported".into(),
            ));
        }
        check_jwt_type(&header)?;
        if let Some(cty) = header.get("cty") {
            let cty = cty.as_str().map_or_else(|| cty.to_string(), str::to_owned);
            return Err(TokenError::ContentTypePresent(cty));
        }
        let payload = Value::Object(payload);
        // The issuer picks the keys, so it is read before the signature is
        // checked; nothing else in the payload is trusted until then.
        let issuer_id = claimed_issuer(&payload)?;
        let issuer = self
            .issuers
            .get(issuer_id)
            .ok_or_else(|| TokenError::UntrustedIssuer(issuer_id.to_owned()))?;
        let security = if alg == "none" {
            if !issuer.allow_unsecured {
                return Err(TokenError::UnsecuredNotAllowed(issuer.id.clone()));
            }
            if !signature_b64.is_empty() {
                return Err(TokenError::Malformed(
                    "an unsecured JWT (alg none) must have an empty signature (RFC 7519 6.1)"
                        .into(),
                ));
            }
            TokenSecurity::Unsecured
        } else {
            let not_permitted = || TokenError::AlgorithmNotPermitted {
                issuer: issuer.id.clone(),
                alg: alg.to_owned(),
            };
            let algorithm = TokenAlgorithm::from_name(alg).ok_or_else(not_permitted)?;
            if !issuer.algorithms.contains(&algorithm) {
                return Err(not_permitted());
            }
            let (kid, key) = select_key(issuer, kid.as_deref(), algorithm)?;
            // The signing input is the first two parts exactly as received
            // (RFC 7515 5.2 step 8), not a re-encoding.
            let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
            let valid = jsonwebtoken::crypto::verify(
                signature_b64,
                signing_input.as_bytes(),
                &key.key,
                algorithm.jwt(),
            )
            // An undecodable signature is a signature that does not verify.
            .unwrap_or(false);
            if !valid {
                return Err(TokenError::BadSignature {
                    issuer: issuer.id.clone(),
                    kid: kid.to_owned(),
                });
            }
            TokenSecurity::Signed {
                algorithm,
                kid: kid.to_owned(),
            }
        };
        let claims = TokenClaims::from_jwt_claims(&payload).map_err(TokenError::InvalidClaims)?;
        Ok((claims, security))
    }

    /// Re-checks a cached token for a new request (TS-0003 7.3.2.3 step
    /// 6.1.3 applies to "each authenticated and cached token"): its issuer is
    /// still trusted, and time, audience and holder hold for `ctx`.
    pub fn check_cached(
        &self,
        token: &VerifiedToken,
        ctx: &VerifyContext,
    ) -> Result<(), TokenError> {
        if !self.issuers.contains_key(&token.claims.issuer) {
            return Err(TokenError::UntrustedIssuer(token.claims.issuer.clone()));
        }
        self.check_content(&token.claims, ctx)
    }

    /// The content validation of TS-0003 7.3.2.5 for one request.
    fn check_content(&self, claims: &TokenClaims, ctx: &VerifyContext) -> Result<(), TokenError> {
        // Checked: the times come from the token and may be near the end of
        // chrono's range.
        let earliest = claims
            .not_before
            .checked_sub_signed(self.leeway)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let latest = claims
            .not_after
            .checked_add_signed(self.leeway)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // The claims have a resolution of one second, so the PDP's clock is
        // read at that resolution: `exp` names the last valid second, all of
        // it ("token expired after this time", TS-0003 7.3.2.4), as `nbf`
        // names the first.
        let now = ctx.now.trunc_subsecs(0);
        if now < earliest {
            return Err(TokenError::NotYetValid {
                not_before: claims.not_before,
                now: ctx.now,
            });
        }
        if now > latest {
            return Err(TokenError::Expired {
                not_after: claims.not_after,
                now: ctx.now,
            });
        }
        if claims.audience.is_empty() {
            return Err(TokenError::NoAudience {
                hosting: ctx.hosting_cse_id(),
            });
        }
        if !claims
            .audience
            .iter()
            .any(|a| audience_matches(a, &ctx.hosting))
        {
            return Err(TokenError::WrongAudience {
                audience: claims.audience.clone(),
                hosting: ctx.hosting_cse_id(),
            });
        }
        // "shall exactly match" (7.3.2.2 step 4.1.1.2.3; 7.3.2.3 step 6.1.3).
        if claims.holder != ctx.originator {
            return Err(TokenError::WrongHolder {
                holder: claims.holder.clone(),
                originator: ctx.originator.clone(),
            });
        }
        Ok(())
    }
}

fn select_key<'a>(
    issuer: &'a TrustedIssuer,
    kid: Option<&str>,
    algorithm: TokenAlgorithm,
) -> Result<(&'a str, &'a VerificationKey), TokenError> {
    let (kid, key) = match kid {
        Some(kid) => issuer
            .keys
            .get_key_value(kid)
            .ok_or_else(|| TokenError::UnknownKey {
                issuer: issuer.id.clone(),
                kid: kid.to_owned(),
            })?,
        None => {
            let mut of_alg = issuer.keys.iter().filter(|(_, k)| k.algorithm == algorithm);
            match (of_alg.next(), of_alg.next()) {
                (Some(only), None) => only,
                (None, _) => {
                    return Err(TokenError::NoKey {
                        issuer: issuer.id.clone(),
                        alg: algorithm,
                    });
                }
                (Some(_), Some(_)) => {
                    return Err(TokenError::MissingKeyId {
                        issuer: issuer.id.clone(),
                        alg: algorithm,
                    });
                }
            }
        }
    };
    if key.algorithm != algorithm {
        return Err(TokenError::KeyAlgorithmMismatch {
            issuer: issuer.id.clone(),
            kid: kid.clone(),
            key_alg: key.algorithm,
            alg: algorithm,
        });
    }
    Ok((kid.as_str(), key))
}

/// `typ` "JWT", case-insensitive, optionally as the media type
/// `application/jwt` (RFC 7515 4.1.9; RFC 7519 5.1).
fn is_jwt_type(typ: &str) -> bool {
    let t = typ
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .map_or(typ, |_| &typ[12..]);
    t.eq_ignore_ascii_case("JWT")
}

/// The JOSE header's `typ` must say JWT (TS-0003 7.3.2.6.2).
fn check_jwt_type(header: &Map<String, Value>) -> Result<(), TokenError> {
    match header.get("typ") {
        Some(Value::String(t)) if is_jwt_type(t) => Ok(()),
        Some(Value::String(t)) => Err(TokenError::NotJwtType(Some(t.clone()))),
        Some(other) => Err(TokenError::NotJwtType(Some(other.to_string()))),
        None => Err(TokenError::NotJwtType(None)),
    }
}

/// The `iss` of a claim set, read before anything is verified because it
/// picks the keys; nothing else in it is trusted until then.
fn claimed_issuer(payload: &Value) -> Result<&str, TokenError> {
    match payload.get("iss") {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(TokenError::InvalidClaims(ValidationErrors(vec![err(
            "iss",
            "expected a string",
        )]))),
        None => Err(TokenError::InvalidClaims(ValidationErrors(vec![missing(
            "iss",
        )]))),
    }
}

/// A JWS compact serialization taken apart (RFC 7515 7.1): its three
/// base64url parts as received, and the decoded header (with its `alg`)
/// and payload. Nothing in it is verified.
struct Jws<'t> {
    header_b64: &'t str,
    payload_b64: &'t str,
    signature_b64: &'t str,
    header: Map<String, Value>,
    alg: String,
    /// `kid`, when the header names one: a string, or the token is
    /// malformed whoever its issuer (Decision 9).
    kid: Option<String>,
    payload: Map<String, Value>,
}

impl<'t> Jws<'t> {
    fn parse(token: &'t str) -> Result<Self, TokenError> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header_b64, payload_b64, signature_b64] = parts[..] else {
            return Err(TokenError::Malformed(format!(
                "a JWS compact serialization has 3 dot-separated parts (a JWE 5), found {}",
                parts.len()
            )));
        };
        let header = decode_object(header_b64, "JOSE header")?;
        let alg = match header.get("alg") {
            Some(Value::String(a)) => a.clone(),
            _ => {
                return Err(TokenError::Malformed(
                    "JOSE header has no string alg".into(),
                ));
            }
        };
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => {
                return Err(TokenError::Malformed(
                    "JOSE header kid is not a string".into(),
                ));
            }
        };
        let payload = decode_object(payload_b64, "payload")?;
        Ok(Self {
            header_b64,
            payload_b64,
            signature_b64,
            header,
            alg,
            kid,
            payload,
        })
    }
}

/// Checks what a token must be before anything is asked of it: a JWS
/// compact serialization whose header (with a string `alg`) and payload are
/// base64url JSON objects, whose payload is a oneM2M JWT claim set (table
/// 7.3.2.6.2-1: it maps to an `m2m:tokenClaimSet`) and whose signature is
/// base64url, or the five base64url parts of a JWE whose header is a JSON
/// object with `alg` and `enc` (its content is read once decrypted). A PDP checks it for every token
/// whatever DASes it trusts and whatever its ACPs decide, so that a
/// malformed token is the originator's invalid argument everywhere
/// (Decision 9), not a Deny here and an error there: a claim set that is no
/// `m2m:tokenClaimSet` is refused alike from a trusted, an untrusted or an
/// unknown issuer.
pub fn check_syntax(token: &str) -> Result<(), TokenError> {
    if token.len() > SYNTAX_CHECK_LIMIT {
        // Not read at all: parsing megabytes per request would cost more
        // than every decision of it, and no oneM2M JWT is this large.
        return Err(TokenError::TooLarge {
            size: token.len(),
            limit: SYNTAX_CHECK_LIMIT,
        });
    }
    if let Some(compact) = jwe::Compact::parse(token) {
        // The header is read (a JSON object naming `alg` and `enc`); what it
        // names, and the rest, only the decryption can judge.
        let compact = compact.map_err(TokenError::from_jwe)?;
        if !token.split('.').all(is_base64url) {
            return Err(TokenError::Malformed(
                "a JWE compact serialization has 5 base64url parts".into(),
            ));
        }
        // What the decryption would find malformed whatever the key: so a
        // token is an invalid argument at every CSE alike. An algorithm
        // outside ESData's is no syntax error (a Deny, as unsupported).
        return match compact.shape() {
            Err(JweError::Malformed(m)) => Err(TokenError::Malformed(m)),
            _ => Ok(()),
        };
    }
    let jws = Jws::parse(token)?;
    // Empty for `alg: none`. Verification takes an undecodable signature
    // for one that does not verify (a token a DAS handed over is no
    // argument of the originator's); in a request it is malformed.
    if !is_base64url(jws.signature_b64) {
        return Err(TokenError::Malformed("signature is not base64url".into()));
    }
    // Read, not trusted: nothing of it counts until the signature verifies.
    TokenClaims::from_jwt_claims(&Value::Object(jws.payload))
        .map(drop)
        .map_err(TokenError::InvalidClaims)
}

/// Only the base64url alphabet (RFC 4648 5), without padding.
fn is_base64url(part: &str) -> bool {
    part.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| TokenError::Malformed(format!("{what} is not base64url: {e}")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TokenError::Malformed(format!(
            "{what} is not a JSON object"
        ))),
        Err(e) => Err(TokenError::Malformed(format!("{what} is not JSON: {e}"))),
    }
}

/// Does an audience entry name the hosting CSE? Only absolute CSE-IDs
/// (`//fqdn/cse`) count, `*` matching within one segment: "The HCSE's
/// CSE-ID shall match one of the Absolute CSE-IDs (optionally including
/// wildcards) in the "audience" parameter" (TS-0003 7.3.2.3 step 6.1.3;
/// Decision 1). An SP-relative `/cse` names no SP, so it would be good in
/// every SP that has a CSE of that name; it and other shapes match nothing.
pub fn audience_matches(entry: &str, hosting: &HostingContext) -> bool {
    let Some((fqdn, rest)) = entry.strip_prefix("//").and_then(|a| a.split_once('/')) else {
        return false;
    };
    !rest.contains('/')
        && glob_segment(&fqdn.to_ascii_lowercase(), hosting.sp_fqdn())
        && glob_segment(rest, hosting.cse_id())
}
