//! [`PepLayer`]: a `tower` layer that enforces access control on the oneM2M
//! HTTP binding (TS-0009) in front of a CSE's own request handling.
//!
//! For every HTTP request the layer reads the request primitive
//! ([`primitive_from_http`]):
//!
//! | primitive | from |
//! | --- | --- |
//! | `op` | the method: POST with `ty` in the content type (`application/json;ty=4`) → Create, POST without `ty` → Notify, GET → Retrieve, PUT → Update, DELETE → Delete |
//! | `ty` | the `ty` parameter of `Content-Type` |
//! | `fu` | query `fu` (1 or 3 on a GET: a discovery) |
//! | `fr` | header `X-M2M-Origin` |
//! | `rqi` | header `X-M2M-RI` |
//! | `tkns` | header `Authorization`, tokens joined by `+` (TS-0009 6.4.19) |
//! | `rids`, `tids`, `ltids` | query parameters of those names; a value may hold several joined by `+`, and a parameter may repeat |
//! | `tqi` | query `tqi` (`true`/`false`/`1`/`0`) |
//! | `to` | the path: `/~/x` is SP-relative (`/x`), `/_/x` absolute (`//x`), any other `/x` CSE-relative (`x`) |
//! | `spty` of a Create of a `<mgmtObj>` (`ty` 13) or a `<flexContainer>` (`ty` 28) | the content: `mgd` or `cnd` of the resource's single root (`{"m2m:fwr": {"mgd": 1001, ...}}`), read by a [`SpecializationReader`] |
//! | `updates_acpi` of an Update | the content, read by an [`AcpiChangeReader`]: true when the resource under its single root holds only `acpi` (`{"m2m:cnt": {"acpi": [...]}}`); `acpi` with other attributes is 400 / 4000 (TS-0001 9.6.1.3.2) |
//!
//! and from the CSE ([`RequestContext`]): the client's
//! IP address (an [`OriginatorIp`] extension if an outer layer set one, else
//! axum's `ConnectInfo<SocketAddr>`, else a `SocketAddr` extension), the
//! authenticated identity ([`Authenticator`]; by default an
//! [`AuthenticatedIdentity`] extension a TLS acceptor sets), the target
//! resource ([`TargetResolver`]), and the request time ([`Clock`]).
//!
//! **Target mapping.** `to` is first made relative to the hosting CSE: an
//! SP-relative `/mn-cse-123456/x` or absolute `//home.example/mn-cse-123456/x`
//! naming this CSE becomes the CSE-relative `x` (and the bare CSE-ID the
//! empty address, the CSEBase). The [`TargetResolver`] then maps it to the
//! resource ID the PRP knows and the resource's type; the default,
//! [`UnstructuredIds`], takes the CSE-relative address as the resource ID
//! (unstructured resource IDs, as in `examples/door-lock-demo.json`) and the
//! CSE-ID without its `/` for the CSEBase. A resolver that answers `None`
//! makes the layer answer 404 with `X-M2M-RSC: 4004`, since existence is
//! checked before authorization (TS-0004 7.2.2.2).
//!
//! **Specialization.** `acod` rules may require the specialization of the
//! resource a Create creates (`spty`, compared with its `mgd` or `cnd`;
//! TS-0003 7.1.5), which only the request's content tells. For a Create of
//! type 13 or 28, and only then, the layer reads the content (at most
//! [`DEFAULT_CONTENT_LIMIT`] bytes, [`PepLayer::with_content_limit`]; a
//! larger or unreadable content is answered 400 / 4000), asks its
//! [`SpecializationReader`] (default [`JsonSpecialization`]; replace it with
//! [`PepLayer::with_specialization_reader`] for XML or CBOR), and hands the
//! same bytes on to the inner service.
//!
//! **Changing `acpi`.** An Update that changes the target's `acpi` is
//! authorized by UPDATE in the `pvs` of the ACPs the target references now,
//! not by their `pv`, and must change nothing else (TS-0001 9.6.1.3.2;
//! otherwise 4000). Only the content tells, so the layer reads the content
//! of every Update (PUT) the same way (bounded, handed on), asks its
//! [`AcpiChangeReader`] (default [`JsonAcpiChange`];
//! [`PepLayer::with_acpi_change_reader`]), and sends the PDP `updates_acpi`
//! when the content holds only `acpi`. Content it cannot read (not JSON, for
//! the default reader) is 400 / 4000 rather than an Update judged by `pv`
//! that might re-point the resource's ACPs. Every other request's body is
//! passed on untouched, unread.
//!
//! **Responses.** A permitted request goes to the inner service with an
//! [`AuthorizedRequest`] extension (the primitive, the target, the verdict),
//! and its response gets `X-M2M-ATI` when Local-Token-IDs were assigned and
//! `X-M2M-RI` when the handler set none. Otherwise the layer answers itself,
//! with `X-M2M-RSC`, the request's `X-M2M-RI` echoed, `X-M2M-ATI` when
//! assigned, and a JSON body ([`crate::response`]): 403 / 4103 for a Deny
//! (the Token Request Information as `m2m:tqf` when the PDP gave some) and
//! for a PDP that gave no decision (fail-closed, the reason in `m2m:dbg`);
//! 400 / 4000 for a malformed request (one of the headers above given
//! twice included: the layer would decide on one value, the CSE might act
//! on the other); 404 / 4004 for an unknown target.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use authz_proto::pb;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Either, Full, Limited};
use tower::{Layer, Service};

use crate::client::{PepClient, Verdict};
use crate::clock::{Clock, SystemClock};
use crate::error::PepError;
use crate::request::{CseContext, DecisionRequestBuilder, RequestContext, RequestPrimitive};
use crate::response::{DenyDetail, Enforcement, Rejection, ResponseStatusCode, ati_header};

/// `X-M2M-Origin`.
pub const X_M2M_ORIGIN: &str = "x-m2m-origin";
/// `X-M2M-RI`.
pub const X_M2M_RI: &str = "x-m2m-ri";
/// `X-M2M-RSC`.
pub const X_M2M_RSC: &str = "x-m2m-rsc";
/// `X-M2M-ATI`.
pub const X_M2M_ATI: &str = "x-m2m-ati";
/// `ty` of `<AE>` (TS-0004 6.3.4.2.1).
const AE_TYPE: u32 = 2;
/// `ty` of `<mgmtObj>`, specialized by `mgd` (TS-0004 6.3.4.2.1).
pub const MGMT_OBJ_TYPE: u32 = 13;
/// `ty` of `<flexContainer>`, specialized by `cnd` (TS-0004 6.3.4.2.1).
pub const FLEX_CONTAINER_TYPE: u32 = 28;
/// Default of [`PepLayer::with_content_limit`]: the most bytes of a Create's
/// content the layer reads to find its specialization. A `<mgmtObj>` or
/// `<flexContainer>` representation is far smaller; the bound keeps one
/// request from making the layer buffer without limit.
pub const DEFAULT_CONTENT_LIMIT: usize = 1024 * 1024;

/// The client's IP address, set by an outer layer that knows better than
/// the socket (for example behind a trusted reverse proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginatorIp(pub IpAddr);

/// The identity a security association authenticated (the AE-ID or CSE-ID
/// bound to the TLS session), set by the acceptor that established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedIdentity(pub String);

/// Tells who a request's sender authenticated as.
pub trait Authenticator: Send + Sync + 'static {
    /// The authenticated AE-ID or CSE-ID, or `None` when the sender is not
    /// authenticated.
    fn authenticate(&self, parts: &http::request::Parts) -> Option<String>;
}

/// The default [`Authenticator`]: the [`AuthenticatedIdentity`] extension.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtensionIdentity;

impl Authenticator for ExtensionIdentity {
    fn authenticate(&self, parts: &http::request::Parts) -> Option<String> {
        parts
            .extensions
            .get::<AuthenticatedIdentity>()
            .map(|i| i.0.clone())
    }
}

/// The resource a request is about, as the PDP knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resource ID (`ri`) the PRP has.
    pub resource_id: String,
    /// Its resource type, when known (used by `acod` on a Create).
    pub resource_type: Option<u32>,
}

/// Maps the address of a request to its target resource.
pub trait TargetResolver: Send + Sync + 'static {
    /// The target of `to`; `cse_relative` is `to` relative to the hosting
    /// CSE when `to` addresses it (empty for the CSEBase), `None` when it
    /// addresses another CSE. `None` means the resource does not exist.
    fn resolve(&self, to: &str, cse_relative: Option<&str>) -> Option<Target>;
}

/// The default [`TargetResolver`]: the CSE-relative address is the resource
/// ID (unstructured IDs); the CSEBase is the CSE-ID without `/`; an address
/// of another CSE is passed on as it is. Never answers "does not exist".
#[derive(Debug, Clone)]
pub struct UnstructuredIds {
    cse_base: String,
}

impl UnstructuredIds {
    /// For the hosting CSE `cse`.
    pub fn new(cse: &CseContext) -> Self {
        Self {
            cse_base: cse.hosting().cse_id().to_owned(),
        }
    }
}

impl TargetResolver for UnstructuredIds {
    fn resolve(&self, to: &str, cse_relative: Option<&str>) -> Option<Target> {
        let resource_id = match cse_relative {
            Some("") => self.cse_base.clone(),
            Some(rel) => rel.to_owned(),
            None => to.to_owned(),
        };
        Some(Target {
            resource_id,
            resource_type: None,
        })
    }
}

/// Reads the specialization of the resource a Create creates (`spty`: `mgd`
/// of a `<mgmtObj>`, `cnd` of a `<flexContainer>`) from the request's
/// content. The layer asks it for Creates of type [`MGMT_OBJ_TYPE`] and
/// [`FLEX_CONTAINER_TYPE`] only.
pub trait SpecializationReader: Send + Sync + 'static {
    /// The specialization in `content`, the request's body (`ty` is the
    /// type being created); `None` when the content names none. An error
    /// makes the layer answer 400 / 4000 with its text.
    fn specialization(
        &self,
        parts: &http::request::Parts,
        ty: u32,
        content: &[u8],
    ) -> Result<Option<pb::Specialization>, PepError>;
}

/// The default [`SpecializationReader`]: JSON content (TS-0004 JSON
/// serialization, a media type of `json` or ending in `+json`) holds the
/// resource under a single root such as `m2m:fwr`; its `mgd` (a number, for
/// type 13) or `cnd` (a string, for type 28) is the specialization. Content
/// of another serialization (XML, CBOR) gives `None`: a rule requiring a
/// `spty` then does not match, so install a reader for it when the CSE
/// accepts such content.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSpecialization;

impl SpecializationReader for JsonSpecialization {
    fn specialization(
        &self,
        parts: &http::request::Parts,
        ty: u32,
        content: &[u8],
    ) -> Result<Option<pb::Specialization>, PepError> {
        if json_media_type(parts) != Some(true) {
            return Ok(None);
        }
        // Strictly, as an Update's: of `{"mgd": 1002, "mgd": 1001}` a reader
        // keeping the last key would judge `acod` by another specialization
        // than a CSE keeping the first creates (Decision 13).
        let resource = json_resource(content)?;
        let kind = match ty {
            MGMT_OBJ_TYPE => match resource.get("mgd") {
                None => return Ok(None),
                Some(mgd) => mgd
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(pb::specialization::Kind::MgmtDefinition)
                    .ok_or_else(|| {
                        PepError::BadRequest(format!("mgd {mgd} is not a mgmtDefinition number"))
                    })?,
            },
            FLEX_CONTAINER_TYPE => match resource.get("cnd") {
                None => return Ok(None),
                Some(cnd) => cnd
                    .as_str()
                    .map(|c| pb::specialization::Kind::ContainerDefinition(c.to_owned()))
                    .ok_or_else(|| {
                        PepError::BadRequest(format!("cnd {cnd} is not a containerDefinition URI"))
                    })?,
            },
            _ => return Ok(None),
        };
        Ok(Some(pb::Specialization { kind: Some(kind) }))
    }
}

/// Whether a request's `Content-Type` names JSON (a media type of `json`
/// or ending in `+json`); `None` without the header.
fn json_media_type(parts: &http::request::Parts) -> Option<bool> {
    let ct = parts.headers.get(CONTENT_TYPE)?;
    Some(
        ct.to_str()
            .ok()
            .and_then(|ct| ct.split(';').next())
            .map(|media| {
                let media = media.trim().to_ascii_lowercase();
                media.ends_with("/json") || media.ends_with("+json")
            })
            .unwrap_or(false),
    )
}

/// The resource under the single root of JSON content (`{"m2m:cnt": {...}}`).
///
/// Read strictly (one key twice is an error): of `{"m2m:cnt": {"acpi":
/// [..]}, "m2m:cnt": {"lbl": [..]}}` a reader keeping the last key would
/// judge by `pv` what a CSE keeping the first applies as an acpi change.
fn json_resource(content: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, PepError> {
    let text = std::str::from_utf8(content)
        .map_err(|e| PepError::BadRequest(format!("the content is not UTF-8: {e}")))?;
    let value = authz_core::json::parse_json(text)
        .map_err(|e| PepError::BadRequest(format!("the content is not JSON: {e}")))?;
    match value {
        serde_json::Value::Object(root) if root.len() == 1 => match root.into_iter().next() {
            Some((_, serde_json::Value::Object(resource))) => Ok(resource),
            _ => Err(not_one_resource()),
        },
        _ => Err(not_one_resource()),
    }
}

fn not_one_resource() -> PepError {
    PepError::BadRequest(
        "the content is not one resource under a single root such as m2m:cnt".into(),
    )
}

/// Tells from an Update's content whether it changes the target's `acpi`
/// (TS-0001 9.6.1.3.2). The layer asks it for every Update (PUT).
pub trait AcpiChangeReader: Send + Sync + 'static {
    /// `Ok(true)` when `content` (the Update's body) changes `acpi` and
    /// nothing else, `Ok(false)` when it does not change `acpi`. An error
    /// makes the layer answer 400 / 4000 with its text: for content that
    /// changes `acpi` and other attributes too (TS-0001 9.6.1.3.2), and
    /// for content the reader cannot tell about.
    fn updates_acpi(&self, parts: &http::request::Parts, content: &[u8]) -> Result<bool, PepError>;
}

/// The default [`AcpiChangeReader`]: JSON content (a media type of `json`
/// or ending in `+json`, or no `Content-Type`) holds the resource under a
/// single root such as `m2m:cnt`; it changes `acpi` when that resource has
/// the attribute `acpi` (or its long name `accessControlPolicyIDs`), a
/// `null` (which removes it) included. Content of another serialization
/// (XML, CBOR) is an error, not "no acpi change": install a reader for it
/// when the CSE accepts such content.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonAcpiChange;

/// The names of `accessControlPolicyIDs` in JSON content.
const ACPI_NAMES: [&str; 2] = ["acpi", "accessControlPolicyIDs"];

impl AcpiChangeReader for JsonAcpiChange {
    fn updates_acpi(&self, parts: &http::request::Parts, content: &[u8]) -> Result<bool, PepError> {
        if json_media_type(parts) == Some(false) {
            return Err(PepError::BadRequest(
                "the content of an Update is read as JSON to tell whether it changes acpi \
                 (TS-0001 9.6.1.3.2); this CSE takes no other serialization"
                    .into(),
            ));
        }
        let resource = json_resource(content)?;
        match ACPI_NAMES
            .iter()
            .filter(|n| resource.contains_key(**n))
            .count()
        {
            0 => return Ok(false),
            1 => {}
            // One attribute given twice, under its two names: which value
            // would count is no choice to make silently.
            _ => {
                return Err(PepError::BadRequest(
                    "acpi and accessControlPolicyIDs name the same attribute: give it once".into(),
                ));
            }
        }
        let others: Vec<&str> = resource
            .keys()
            .map(String::as_str)
            .filter(|k| !ACPI_NAMES.contains(k))
            .collect();
        if others.is_empty() {
            Ok(true)
        } else {
            Err(PepError::BadRequest(format!(
                "an Update that changes acpi must hold only acpi (TS-0001 9.6.1.3.2); \
                 this one also holds {}",
                others.join(", ")
            )))
        }
    }
}

/// The `ty` of a Create whose content carries a specialization (a POST
/// with `ty` 13 or 28 in its content type), or `None`. A content type the
/// layer cannot read is left for [`primitive_from_http`] to reject.
fn specialized_create(parts: &http::request::Parts) -> Option<u32> {
    if parts.method != Method::POST {
        return None;
    }
    let ct = parts.headers.get(CONTENT_TYPE)?.to_str().ok()?;
    match content_type_ty(ct) {
        Ok(Some(ty)) if ty == MGMT_OBJ_TYPE || ty == FLEX_CONTAINER_TYPE => Some(ty),
        _ => None,
    }
}

/// What the layer hands to the inner service with a permitted request.
#[derive(Debug, Clone)]
pub struct AuthorizedRequest {
    /// The request primitive as read from HTTP.
    pub primitive: RequestPrimitive,
    /// `to` relative to the hosting CSE (`None`: another CSE).
    pub cse_relative: Option<String>,
    /// The target the decision was about.
    pub target: Target,
    /// The decision request the layer sent (a handler can reuse it, for
    /// example to check the DISCOVERY privilege of each discovered resource
    /// with another `target`).
    pub request: pb::DecisionRequest,
    /// The decision.
    pub verdict: Verdict,
}

/// Reads the request primitive of an HTTP request (see the module table).
pub fn primitive_from_http(parts: &http::request::Parts) -> Result<RequestPrimitive, PepError> {
    // Each header read here carries one value (From, Request Identifier,
    // the content type, the tokens joined by `+`): given twice, the layer
    // would decide on one while the CSE might act on the other (a From of
    // CAlice authorized, another served), so that is a 4000 too.
    let header = |name: &str| -> Result<Option<String>, PepError> {
        let mut values = parts.headers.get_all(name).iter();
        let Some(v) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(PepError::BadRequest(format!(
                "header {name} appears more than once"
            )));
        }
        v.to_str()
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|_| PepError::BadRequest(format!("header {name} is not visible ASCII")))
    };
    let fr = header(X_M2M_ORIGIN)?.unwrap_or_default();
    let rqi = header(X_M2M_RI)?.unwrap_or_default();
    let content_type = header(CONTENT_TYPE.as_str())?;
    let ty = match &content_type {
        Some(ct) => content_type_ty(ct)?,
        None => None,
    };
    let tkns = match header(AUTHORIZATION.as_str())? {
        Some(v) if !v.is_empty() => v
            .split('+')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let query = Query::parse(parts.uri.query().unwrap_or(""))?;
    let fu = match query.single("fu")? {
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| PepError::BadRequest(format!("fu '{v}' is not a number")))?,
        ),
        None => None,
    };
    let tqi = match query.single("tqi")?.as_deref() {
        None => false,
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(v) => {
            return Err(PepError::BadRequest(format!(
                "tqi '{v}' is not true, false, 1 or 0"
            )));
        }
    };
    let op = match (&parts.method, ty) {
        (&Method::POST, Some(_)) => pb::Operation::Create,
        (&Method::POST, None) => pb::Operation::Notify,
        (&Method::GET, _) => pb::Operation::Retrieve,
        (&Method::PUT, _) => pb::Operation::Update,
        (&Method::DELETE, _) => pb::Operation::Delete,
        (m, _) => {
            return Err(PepError::BadRequest(format!(
                "method {m} is not part of the oneM2M HTTP binding"
            )));
        }
    };
    Ok(RequestPrimitive {
        op,
        to: to_from_path(parts.uri.path())?,
        fr,
        rqi,
        ty: if op == pb::Operation::Create {
            ty
        } else {
            None
        },
        fu,
        rids: query.list("rids"),
        tkns,
        tids: query.list("tids"),
        ltids: query.list("ltids"),
        tqi,
        spty: None,
    })
}

/// The `ty` parameter of a content type such as `application/json;ty=4`
/// (TS-0009 6.4.3: one `ty`). Given twice it is an error, as a header given
/// twice is: the layer would judge one type, a CSE might create the other.
fn content_type_ty(ct: &str) -> Result<Option<u32>, PepError> {
    let mut ty = None;
    for param in ct.split(';').skip(1) {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("ty") {
            if ty.is_some() {
                return Err(PepError::BadRequest(
                    "content type parameter ty appears more than once".into(),
                ));
            }
            let value = value.trim().trim_matches('"');
            ty = Some(value.parse::<u32>().map_err(|_| {
                PepError::BadRequest(format!(
                    "content type parameter ty '{value}' is not a number"
                ))
            })?);
        }
    }
    Ok(ty)
}

/// `to` from the request path (TS-0009): `/~/x` → `/x`, `/_/x` → `//x`,
/// `/x` → `x`; percent-decoded.
pub fn to_from_path(path: &str) -> Result<String, PepError> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| PepError::BadRequest("the path is not UTF-8".into()))?;
    let to = if let Some(rest) = decoded.strip_prefix("/~/") {
        format!("/{rest}")
    } else if let Some(rest) = decoded.strip_prefix("/_/") {
        format!("//{rest}")
    } else {
        decoded.strip_prefix('/').unwrap_or(&decoded).to_owned()
    };
    let to = to.trim_end_matches('/').to_owned();
    if to.is_empty() || to == "/" || to == "//" {
        return Err(PepError::BadRequest("the path names no resource".into()));
    }
    Ok(to)
}

/// `to` relative to the hosting CSE, or `None` when it addresses another
/// CSE: `//sp/cse/x` and `/cse/x` become `x`, `/cse` and `//sp/cse` the
/// empty address (the CSEBase); a CSE-relative `x` stays `x`.
pub fn cse_relative(to: &str, cse: &CseContext) -> Option<String> {
    if let Some(relative) = cse.hosting().cse_relative(to) {
        return Some(relative.to_owned());
    }
    // The CSEBase itself, which the engine's form has no CSE-relative ID for.
    cse.hosting().names_cse_base(to).then(String::new)
}

/// Query parameters, percent-decoded (`+` stays `+`: it joins list values).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Result<Self, PepError> {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| PepError::BadRequest("the query is not UTF-8".into()))
        };
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Self(pairs))
    }

    fn single(&self, name: &str) -> Result<Option<String>, PepError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next().cloned();
        if values.next().is_some() {
            return Err(PepError::BadRequest(format!(
                "query parameter {name} appears more than once"
            )));
        }
        Ok(first)
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split('+'))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The client's IP address of a request.
fn client_ip(parts: &http::request::Parts) -> Option<IpAddr> {
    if let Some(ip) = parts.extensions.get::<OriginatorIp>() {
        return Some(ip.0);
    }
    if let Some(ci) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(ci.0.ip());
    }
    parts.extensions.get::<SocketAddr>().map(|a| a.ip())
}

/// What the layer shares with its services.
struct Shared {
    client: PepClient,
    cse: CseContext,
    clock: Arc<dyn Clock>,
    resolver: Arc<dyn TargetResolver>,
    authenticator: Arc<dyn Authenticator>,
    deny_detail: DenyDetail,
    registration_without_origin: bool,
    discovery_by_result: bool,
    specialization: Arc<dyn SpecializationReader>,
    acpi_change: Arc<dyn AcpiChangeReader>,
    content_limit: usize,
}

/// What the layer read of a request's content for the decision.
#[derive(Debug, Clone, Default)]
struct ContentFacts {
    /// The specialization of a Create of type 13 or 28.
    spty: Option<pb::Specialization>,
    /// An Update that changes `acpi` alone.
    updates_acpi: bool,
}

/// Why the layer reads a request's content.
#[derive(Debug, Clone, Copy)]
enum ContentUse {
    /// A Create of this type (13 or 28): its specialization.
    Specialization(u32),
    /// An Update: whether it changes `acpi`.
    Update,
}

impl ContentUse {
    /// The content the layer reads of `parts`, if any.
    fn of(parts: &http::request::Parts) -> Option<Self> {
        if parts.method == Method::PUT {
            return Some(Self::Update);
        }
        specialized_create(parts).map(Self::Specialization)
    }

    /// What the layer reads the content for, in a 4000's reason.
    fn purpose(self) -> &'static str {
        match self {
            Self::Specialization(_) => "to find its specialization (mgd/cnd)",
            Self::Update => "to tell whether it changes acpi",
        }
    }
}

/// The outcome of authorizing one HTTP request.
enum Authorization {
    Proceed(Box<AuthorizedRequest>),
    /// An AE registration without `From`, passed on undecided
    /// ([`PepLayer::with_registration_without_origin`]).
    Register(Box<RegistrationWithoutOrigin>),
    /// A discovery whose results the handler authorizes one by one
    /// ([`PepLayer::with_discovery_by_result`]).
    Discover(Box<DiscoveryRequest>),
    Reject(Rejection),
}

/// What a handler receives, as a request extension, for an AE registration
/// that carries no `From` (TS-0001 10.1.2: `From` is optional there, and
/// the Registrar CSE assigns the AE-ID). No access decision was made: no
/// originator exists yet for the PDP to judge. The CSE applies its
/// registration procedure (service subscription, `<serviceSubscribedAppRule>`)
/// itself; the AE's later requests carry the assigned AE-ID and are decided
/// as usual.
#[derive(Debug, Clone)]
pub struct RegistrationWithoutOrigin {
    /// The request primitive (`op` Create, `ty` 2, `fr` empty).
    pub primitive: RequestPrimitive,
    /// The target (the parent of the new `<AE>`, normally the CSEBase).
    pub target: Target,
}

/// What a handler receives, as a request extension, for a discovery (a
/// Retrieve with `fu` 1 or 3) when the CSE authorizes its results itself
/// ([`PepLayer::with_discovery_by_result`]). TS-0004 7.3.3.14 skips the
/// access check of the target: the result is the resources under it that
/// match the filter *and* on which the originator holds DISCOVER. No
/// decision was made here: the handler decides `request` (DISCOVERY, with
/// the originator's context and tokens) for each candidate, with the
/// candidate as `target` and its type as `target_type` (one
/// [`crate::PepClient::decide_batch`]), and lists only the permitted ones.
#[derive(Debug, Clone)]
pub struct DiscoveryRequest {
    /// The request primitive.
    pub primitive: RequestPrimitive,
    /// `to` relative to the hosting CSE (`None`: another CSE).
    pub cse_relative: Option<String>,
    /// The resource the discovery starts from.
    pub target: Target,
    /// The decision request for the target, `discovery` set: a template
    /// for the candidates' decisions.
    pub request: pb::DecisionRequest,
    /// The `ty` filter criteria (query `ty`, repeated or joined by `+`):
    /// a resource matches when its type is one of them; empty, any type.
    pub resource_types: Vec<u32>,
}

/// The `ty` filter criteria of a discovery's query, percent-decoded.
fn discovery_types(parts: &http::request::Parts) -> Result<Vec<u32>, PepError> {
    Query::parse(parts.uri.query().unwrap_or(""))?
        .list("ty")
        .iter()
        .map(|t| match t.parse::<u32>() {
            Ok(ty) if ty > 0 => Ok(ty),
            _ => Err(PepError::BadRequest(format!(
                "filter criterion ty '{t}' is not a resource type (m2m:resourceType)"
            ))),
        })
        .collect()
}

impl Shared {
    /// Authorizes a request; `facts` is what the [`SpecializationReader`]
    /// found in the content of a Create of type 13 or 28 and the
    /// [`AcpiChangeReader`] in that of an Update (nothing for any other
    /// request).
    async fn authorize(
        &self,
        parts: &http::request::Parts,
        facts: Result<ContentFacts, PepError>,
    ) -> Authorization {
        let mut primitive = match primitive_from_http(parts) {
            Ok(p) => p,
            Err(e) => return Authorization::Reject(bad_request(e)),
        };
        let facts = match facts {
            Ok(facts) => facts,
            Err(e) => return Authorization::Reject(bad_request(e)),
        };
        primitive.spty = facts.spty;
        // `From` may be absent only on an AE registration (a Create of type
        // 2; TS-0001 10.1.2, TS-0004 4000 cases). A primitive missing a
        // mandatory parameter is 4000 before the target is looked up, so
        // that it does not learn which resources exist (4004).
        let registration = primitive.op == pb::Operation::Create && primitive.ty == Some(AE_TYPE);
        if primitive.fr.is_empty() && registration && !self.registration_without_origin {
            return Authorization::Reject(bad_request(PepError::BadRequest(
                "From (fr, X-M2M-Origin) is missing: this CSE does not register AEs without From"
                    .into(),
            )));
        }
        if let Err(e) = primitive.check_mandatory(registration) {
            return Authorization::Reject(bad_request(e));
        }
        let relative = cse_relative(&primitive.to, &self.cse);
        let Some(target) = self.resolver.resolve(&primitive.to, relative.as_deref()) else {
            return Authorization::Reject(Rejection::debug(
                ResponseStatusCode::NOT_FOUND,
                format!("resource {} does not exist", primitive.to),
            ));
        };
        if primitive.fr.is_empty() {
            // An AE registration at a CSE that opted in (checked above).
            return Authorization::Register(Box::new(RegistrationWithoutOrigin {
                primitive,
                target,
            }));
        }
        // A From that is no originator ID at all is a bad request (Decision
        // 9), answered here: it names no other originator (so no 4106 below)
        // and needs no PDP (so no fail-closed 4103 when none answers).
        if let Err(e) = self.cse.hosting().canonicalize(&primitive.fr) {
            return Authorization::Reject(Rejection::debug(
                ResponseStatusCode::BAD_REQUEST,
                format!("From (X-M2M-Origin): {e}"),
            ));
        }
        let identity = self.authenticator.authenticate(parts);
        // An AE's security association is with its Registrar CSE, which
        // checks From against it (TS-0003 7.2.1): another From is 4106,
        // before any decision. A CSE's (forwarding for others) is not.
        if let Some(id) = identity.as_deref()
            && self.cse.names_ae(id)
            && !self.cse.same_originator(id, &primitive.fr)
        {
            return Authorization::Reject(Rejection::debug(
                ResponseStatusCode::ORIGINATOR_NOT_AUTHENTICATED,
                format!(
                    "From {} is not the AE this request is authenticated as ({id}) (TS-0003 7.2.1)",
                    primitive.fr
                ),
            ));
        }
        let context = RequestContext {
            client_ip: client_ip(parts),
            authenticated_identity: identity,
            target_id: Some(target.resource_id.clone()),
            target_type: target.resource_type,
            request_time: Some(self.clock.now()),
            updates_acpi: facts.updates_acpi,
            ..RequestContext::default()
        };
        let request = match DecisionRequestBuilder::new(&self.cse, &primitive)
            .context(context)
            .build()
        {
            Ok(r) => r,
            Err(e) => return Authorization::Reject(bad_request(e)),
        };
        if self.discovery_by_result && request.discovery {
            let types = match discovery_types(parts) {
                Ok(types) => types,
                Err(e) => return Authorization::Reject(bad_request(e)),
            };
            return Authorization::Discover(Box::new(DiscoveryRequest {
                primitive,
                cse_relative: relative,
                target,
                request,
                resource_types: types,
            }));
        }
        let verdict = self.client.decide(request.clone()).await;
        tracing::debug!(
            originator = %primitive.fr, target = %target.resource_id, op = ?primitive.op,
            source = ?verdict.source, summary = %verdict.decision.summary, "PEP decision"
        );
        match verdict.enforcement(self.deny_detail) {
            Enforcement::Proceed { .. } => Authorization::Proceed(Box::new(AuthorizedRequest {
                primitive,
                cse_relative: relative,
                target,
                request,
                verdict,
            })),
            Enforcement::Reject(r) => Authorization::Reject(r),
        }
    }
}

fn bad_request(e: PepError) -> Rejection {
    Rejection::debug(ResponseStatusCode::BAD_REQUEST, e.to_string())
}

/// The HTTP response of a rejection: the status of the RSC (TS-0009 6.3.2),
/// `X-M2M-RSC`, `X-M2M-RI` echoed, `X-M2M-ATI` when assigned, JSON content.
pub fn rejection_response(
    rejection: &Rejection,
    rqi: Option<&HeaderValue>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(rejection.body())));
    *response.status_mut() = rejection.rsc.http_status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&rejection.rsc.to_string()) {
        headers.insert(X_M2M_RSC, v);
    }
    if let Some(rqi) = rqi {
        headers.insert(X_M2M_RI, rqi.clone());
    }
    if let Some(ati) =
        ati_header(&rejection.assigned_token_ids).and_then(|a| HeaderValue::from_str(&a).ok())
    {
        headers.insert(X_M2M_ATI, ati);
    }
    response
}

/// The layer. Build it once and apply it to the CSE's service (for axum,
/// `Router::layer`).
#[derive(Clone)]
pub struct PepLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PepLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PepLayer")
            .field("cse", &self.shared.cse)
            .finish_non_exhaustive()
    }
}

impl PepLayer {
    /// A layer asking `client` on behalf of the hosting CSE `cse`, with the
    /// system clock, [`UnstructuredIds`], [`ExtensionIdentity`] and
    /// [`DenyDetail::Minimal`].
    pub fn new(client: PepClient, cse: CseContext) -> Self {
        let resolver = Arc::new(UnstructuredIds::new(&cse));
        Self {
            shared: Arc::new(Shared {
                client,
                cse,
                clock: Arc::new(SystemClock),
                resolver,
                authenticator: Arc::new(ExtensionIdentity),
                deny_detail: DenyDetail::Minimal,
                registration_without_origin: false,
                discovery_by_result: false,
                specialization: Arc::new(JsonSpecialization),
                acpi_change: Arc::new(JsonAcpiChange),
                content_limit: DEFAULT_CONTENT_LIMIT,
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = match Arc::try_unwrap(self.shared) {
            Ok(s) => s,
            Err(arc) => Shared {
                client: arc.client.clone(),
                cse: arc.cse.clone(),
                clock: arc.clock.clone(),
                resolver: arc.resolver.clone(),
                authenticator: arc.authenticator.clone(),
                deny_detail: arc.deny_detail,
                registration_without_origin: arc.registration_without_origin,
                discovery_by_result: arc.discovery_by_result,
                specialization: arc.specialization.clone(),
                acpi_change: arc.acpi_change.clone(),
                content_limit: arc.content_limit,
            },
        };
        f(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Takes request times from `clock`.
    pub fn with_clock(self, clock: impl Clock) -> Self {
        self.map(|s| s.clock = Arc::new(clock))
    }

    /// Maps addresses to targets with `resolver`.
    pub fn with_resolver(self, resolver: impl TargetResolver) -> Self {
        self.map(|s| s.resolver = Arc::new(resolver))
    }

    /// Learns authenticated identities from `authenticator`.
    pub fn with_authenticator(self, authenticator: impl Authenticator) -> Self {
        self.map(|s| s.authenticator = Arc::new(authenticator))
    }

    /// How much a 4103 response says about why.
    pub fn with_deny_detail(self, detail: DenyDetail) -> Self {
        self.map(|s| s.deny_detail = detail)
    }

    /// Passes an AE registration without `From` (a Create of type 2, which
    /// TS-0001 10.1.2 allows) to the inner service undecided, with a
    /// [`RegistrationWithoutOrigin`] extension instead of an
    /// [`AuthorizedRequest`]; the CSE must then apply its own registration
    /// checks. Off by default: such a request is answered 400 / 4000.
    pub fn with_registration_without_origin(self, allow: bool) -> Self {
        self.map(|s| s.registration_without_origin = allow)
    }

    /// Passes a discovery (a Retrieve with `fu` 1 or 3) to the inner
    /// service undecided, with a [`DiscoveryRequest`] extension instead of
    /// an [`AuthorizedRequest`], for a CSE that decides DISCOVERY on each
    /// resource it would list, as TS-0004 7.3.3.14 does (the target's own
    /// privileges are not checked). Off by default: the layer then requires
    /// DISCOVER on the target itself, stricter than the procedure but safe
    /// for a handler that does not check its results.
    pub fn with_discovery_by_result(self, yes: bool) -> Self {
        self.map(|s| s.discovery_by_result = yes)
    }

    /// Reads the specialization of a Create of type 13 or 28 with `reader`
    /// instead of [`JsonSpecialization`].
    pub fn with_specialization_reader(self, reader: impl SpecializationReader) -> Self {
        self.map(|s| s.specialization = Arc::new(reader))
    }

    /// Tells whether an Update changes `acpi` with `reader` instead of
    /// [`JsonAcpiChange`].
    pub fn with_acpi_change_reader(self, reader: impl AcpiChangeReader) -> Self {
        self.map(|s| s.acpi_change = Arc::new(reader))
    }

    /// The most bytes of a Create's content (type 13 or 28 only) or an
    /// Update's content the layer reads, to find the specialization or to
    /// tell an acpi change (default [`DEFAULT_CONTENT_LIMIT`]); a larger
    /// content is answered 400 / 4000.
    pub fn with_content_limit(self, bytes: usize) -> Self {
        self.map(|s| s.content_limit = bytes)
    }
}

impl<S> Layer<S> for PepLayer {
    type Service = PepService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PepService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`PepLayer`] wraps around a CSE's service.
#[derive(Clone)]
pub struct PepService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for PepService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PepService").finish_non_exhaustive()
    }
}

/// The response body of a [`PepService`]: the inner service's, or the
/// layer's own JSON.
pub type PepBody<B> = Either<B, Full<Bytes>>;

/// The request body must be one the layer can read (for a Create of type 13
/// or 28, and for an Update) and rebuild from the bytes it read, such as
/// axum's `Body` or `Full<Bytes>`.
impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PepService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Send + 'static,
{
    type Response = Response<PepBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; the ready one goes into the future.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let rqi = parts.headers.get(X_M2M_RI).cloned();
            // Only a Create whose specialization an `acod` may check, and
            // an Update (an acpi change?), are read (bounded); the inner
            // service gets the same bytes.
            let (body, facts) = match ContentUse::of(&parts) {
                None => (body, Ok(ContentFacts::default())),
                Some(usage) => match Limited::new(body, shared.content_limit).collect().await {
                    Ok(collected) => {
                        let content = collected.to_bytes();
                        let facts = match usage {
                            ContentUse::Specialization(ty) => shared
                                .specialization
                                .specialization(&parts, ty, &content)
                                .map(|spty| ContentFacts {
                                    spty,
                                    ..ContentFacts::default()
                                }),
                            ContentUse::Update => shared
                                .acpi_change
                                .updates_acpi(&parts, &content)
                                .map(|updates_acpi| ContentFacts {
                                    updates_acpi,
                                    ..ContentFacts::default()
                                }),
                        };
                        (ReqBody::from(content), facts)
                    }
                    Err(e) => {
                        let reason = if e.is::<http_body_util::LengthLimitError>() {
                            format!(
                                "the content is longer than the {} bytes read {}",
                                shared.content_limit,
                                usage.purpose()
                            )
                        } else {
                            format!("the content could not be read: {e}")
                        };
                        let r = bad_request(PepError::BadRequest(reason));
                        return Ok(rejection_response(&r, rqi.as_ref()).map(Either::Right));
                    }
                },
            };
            match shared.authorize(&parts, facts).await {
                Authorization::Reject(r) => {
                    Ok(rejection_response(&r, rqi.as_ref()).map(Either::Right))
                }
                // Passed on undecided, with what the handler must decide on.
                undecided @ (Authorization::Register(_) | Authorization::Discover(_)) => {
                    match undecided {
                        Authorization::Register(registration) => {
                            parts.extensions.insert(*registration);
                        }
                        Authorization::Discover(discovery) => {
                            parts.extensions.insert(*discovery);
                        }
                        _ => {}
                    }
                    let mut response = inner.call(Request::from_parts(parts, body)).await?;
                    if let Some(rqi) = rqi
                        && !response.headers().contains_key(X_M2M_RI)
                    {
                        response.headers_mut().insert(X_M2M_RI, rqi);
                    }
                    Ok(response.map(Either::Left))
                }
                Authorization::Proceed(authorized) => {
                    let ati = ati_header(&authorized.verdict.decision.assigned_token_ids)
                        .and_then(|a| HeaderValue::from_str(&a).ok());
                    parts.extensions.insert(*authorized);
                    let mut response = inner.call(Request::from_parts(parts, body)).await?;
                    let headers = response.headers_mut();
                    if let Some(ati) = ati {
                        headers.insert(X_M2M_ATI, ati);
                    }
                    if let Some(rqi) = rqi
                        && !headers.contains_key(X_M2M_RI)
                    {
                        headers.insert(X_M2M_RI, rqi);
                    }
                    Ok(response.map(Either::Left))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TS-0001 10.1.2: `From` is optional on an AE registration only. By
    /// default the layer answers 4000; opted in, it passes the request on
    /// undecided with a [`RegistrationWithoutOrigin`] extension. Any other
    /// request without `From` stays 4000.
    #[tokio::test]
    async fn ae_registration_without_origin() {
        use tower::ServiceExt;
        let cse = CseContext::new("//home.example", "/mn-cse-123456").expect("cse");
        // No PDP runs at this address: a decision would fail closed (4103).
        let client = PepClient::new(crate::PepConfig::new(["http://127.0.0.1:9"])).expect("client");
        let inner = tower::service_fn(|req: Request<Full<Bytes>>| async move {
            let seen = req
                .extensions()
                .get::<RegistrationWithoutOrigin>()
                .is_some();
            Ok::<_, std::convert::Infallible>(Response::new(if seen {
                "registered"
            } else {
                "other"
            }))
        });
        let register = || {
            Request::builder()
                .method(Method::POST)
                .uri("/mn-cse-123456")
                .header(CONTENT_TYPE, "application/json;ty=2")
                .header(X_M2M_RI, "r1")
                .body(Full::new(Bytes::new()))
                .expect("request")
        };
        let rsc = |r: &Response<PepBody<&'static str>>| {
            r.headers()
                .get(X_M2M_RSC)
                .map(|v| v.to_str().unwrap_or("").to_owned())
        };
        let default = PepLayer::new(client.clone(), cse.clone());
        let r = default
            .layer(inner)
            .oneshot(register())
            .await
            .expect("response");
        assert_eq!(r.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(rsc(&r).as_deref(), Some("4000"));

        let opted_in = PepLayer::new(client, cse).with_registration_without_origin(true);
        let r = opted_in
            .clone()
            .layer(inner)
            .oneshot(register())
            .await
            .expect("response");
        assert_eq!(r.status(), http::StatusCode::OK);
        assert!(matches!(r.into_body(), Either::Left("registered")));
        // A container Create without From is still malformed.
        let mut container = register();
        container.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json;ty=3"),
        );
        let r = opted_in
            .layer(inner)
            .oneshot(container)
            .await
            .expect("response");
        assert_eq!(rsc(&r).as_deref(), Some("4000"));
    }

    fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    /// TS-0009 6.4.3: one `ty` in the content type. Twice, the layer would
    /// judge one type (`acod` `chty`) and a CSE might create the other.
    #[test]
    fn a_content_type_with_two_tys_is_a_bad_request() {
        let h = [("X-M2M-Origin", "C1"), ("X-M2M-RI", "r1")];
        for ct in ["application/json;ty=4;ty=3", "application/json; ty=4; TY=4"] {
            let e = primitive_from_http(&parts(
                Method::POST,
                "/~/mn-cse-123456/frontDoor",
                &[h[0], h[1], ("Content-Type", ct)],
            ))
            .expect_err(ct);
            assert!(
                matches!(&e, PepError::BadRequest(m) if m.contains("ty appears more than once")),
                "{ct}: {e:?}"
            );
        }
    }

    #[test]
    fn operations_from_method_ty_and_fu() {
        let h = [("X-M2M-Origin", "C1"), ("X-M2M-RI", "r1")];
        let p = primitive_from_http(&parts(
            Method::POST,
            "/~/mn-cse-123456/frontDoor",
            &[h[0], h[1], ("Content-Type", "application/json;ty=4")],
        ))
        .expect("create");
        assert_eq!((p.op, p.ty), (pb::Operation::Create, Some(4)));
        assert_eq!(p.to, "/mn-cse-123456/frontDoor");
        let p = primitive_from_http(&parts(
            Method::POST,
            "/frontDoor",
            &[h[0], h[1], ("Content-Type", "application/json")],
        ))
        .expect("notify");
        assert_eq!((p.op, p.ty), (pb::Operation::Notify, None));
        assert_eq!(p.to, "frontDoor");
        let p = primitive_from_http(&parts(
            Method::GET,
            "/_/home.example/mn-cse-123456?fu=1",
            &h,
        ))
        .expect("discovery");
        assert!(p.is_discovery());
        assert_eq!(p.to, "//home.example/mn-cse-123456");
        let p = primitive_from_http(&parts(Method::GET, "/x?fu=2", &h)).expect("retrieve");
        assert!(!p.is_discovery());
        let p = primitive_from_http(&parts(Method::PUT, "/x", &h)).expect("update");
        assert_eq!(p.op, pb::Operation::Update);
        let p = primitive_from_http(&parts(Method::DELETE, "/x", &h)).expect("delete");
        assert_eq!(p.op, pb::Operation::Delete);
        assert!(primitive_from_http(&parts(Method::PATCH, "/x", &h)).is_err());
    }

    #[test]
    fn dynamic_authorization_parameters() {
        let p = primitive_from_http(&parts(
            Method::GET,
            "/x?rids=a@r.example+b@r.example&tids=t1@das.example&tids=t2@das.example&ltids=lt1%2Blt2&tqi=true",
            &[
                ("X-M2M-Origin", "C1"),
                ("X-M2M-RI", "r1"),
                ("Authorization", "aaa.bbb.ccc+ddd.eee.fff"),
            ],
        ))
        .expect("primitive");
        assert_eq!(p.rids, ["a@r.example", "b@r.example"]);
        assert_eq!(p.tids, ["t1@das.example", "t2@das.example"]);
        assert_eq!(p.ltids, ["lt1", "lt2"]);
        assert_eq!(p.tkns, ["aaa.bbb.ccc", "ddd.eee.fff"]);
        assert!(p.tqi);
        for bad in ["/x?tqi=yes", "/x?fu=one", "/x?fu=1&fu=2"] {
            assert!(
                primitive_from_http(&parts(Method::GET, bad, &[("X-M2M-Origin", "C1")])).is_err(),
                "{bad}"
            );
        }
        assert!(
            primitive_from_http(&parts(
                Method::POST,
                "/x",
                &[("Content-Type", "application/json;ty=four")]
            ))
            .is_err()
        );
    }

    /// Pins a defect the PEP robustness property found: a request with two
    /// `X-M2M-Origin` headers was decided on the first, so `CAlice, Cbob`
    /// reached a CSE that might act as Cbob on CAlice's permit. Each header
    /// the layer reads is given once, or the request is 4000 naming it.
    #[test]
    fn a_header_given_twice_is_a_bad_request() {
        for name in ["X-M2M-Origin", "X-M2M-RI", "Content-Type", "Authorization"] {
            let mut headers = vec![
                ("X-M2M-Origin", "CAlice"),
                ("X-M2M-RI", "r1"),
                ("Content-Type", "application/json"),
                ("Authorization", "aaa.bbb.ccc"),
            ];
            headers.push((name, "Cbob"));
            match primitive_from_http(&parts(Method::GET, "/x", &headers)) {
                Err(PepError::BadRequest(m)) => assert!(
                    m.contains(&name.to_ascii_lowercase()) && m.contains("more than once"),
                    "{m}"
                ),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    /// TS-0001 9.6.1.3.2: an Update holding only `acpi` is an acpi change;
    /// one holding `acpi` and other attributes is 4000; content that
    /// cannot be read is not taken for "no acpi change".
    #[test]
    fn ts0001_9_6_1_3_2_json_acpi_change() {
        let json = parts(
            Method::PUT,
            "/x",
            &[("Content-Type", "application/vnd.onem2m-res+json")],
        );
        let read = |p: &http::request::Parts, content: &str| {
            JsonAcpiChange.updates_acpi(p, content.as_bytes())
        };
        assert!(matches!(
            read(&json, r#"{"m2m:cnt": {"acpi": ["acpMine"]}}"#),
            Ok(true)
        ));
        assert!(matches!(
            read(&json, r#"{"m2m:cnt": {"acpi": null}}"#),
            Ok(true)
        ));
        assert!(matches!(
            read(&json, r#"{"m2m:cnt": {"accessControlPolicyIDs": []}}"#),
            Ok(true)
        ));
        assert!(matches!(
            read(&json, r#"{"m2m:cnt": {"lbl": ["front"]}}"#),
            Ok(false)
        ));
        let no_type = parts(Method::PUT, "/x", &[]);
        assert!(matches!(
            read(&no_type, r#"{"m2m:cnt": {"acpi": ["a"]}}"#),
            Ok(true)
        ));
        // The attribute under both its names: which value counts would be
        // a silent choice.
        match read(
            &json,
            r#"{"m2m:cnt": {"acpi": ["a"], "accessControlPolicyIDs": ["b"]}}"#,
        ) {
            Err(PepError::BadRequest(m)) => assert!(m.contains("give it once"), "{m}"),
            other => panic!("{other:?}"),
        }
        // One root twice: which one a CSE applies is its parser's guess.
        assert!(matches!(
            read(
                &json,
                r#"{"m2m:cnt": {"acpi": ["mine"]}, "m2m:cnt": {"lbl": ["x"]}}"#
            ),
            Err(PepError::BadRequest(_))
        ));
        match read(
            &json,
            r#"{"m2m:cnt": {"acpi": ["acpMine"], "lbl": ["x"], "et": "x"}}"#,
        ) {
            Err(PepError::BadRequest(m)) => {
                assert!(
                    m.contains("must hold only acpi") && m.contains("lbl") && m.contains("et"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        for bad in ["", "[]", r#"{"a": {}, "b": {}}"#, r#"{"m2m:cnt": 5}"#] {
            assert!(read(&json, bad).is_err(), "{bad:?}");
        }
        let xml = parts(Method::PUT, "/x", &[("Content-Type", "application/xml")]);
        assert!(read(&xml, "<m2m:cnt><acpi>a</acpi></m2m:cnt>").is_err());
    }

    #[test]
    fn addresses_relative_to_the_hosting_cse() {
        let cse = CseContext::new("//home.example", "/mn-cse-123456").expect("cse");
        let r = |to: &str| cse_relative(to, &cse);
        assert_eq!(r("frontDoor").as_deref(), Some("frontDoor"));
        assert_eq!(r("/mn-cse-123456/frontDoor").as_deref(), Some("frontDoor"));
        assert_eq!(r("/mn-cse-123456").as_deref(), Some(""));
        assert_eq!(
            r("//HOME.example/mn-cse-123456/a/b").as_deref(),
            Some("a/b")
        );
        assert_eq!(r("//home.example/mn-cse-123456").as_deref(), Some(""));
        assert_eq!(r("/in-cse/x"), None);
        assert_eq!(r("/mn-cse-1234567/x"), None);
        assert_eq!(r("//other.example/mn-cse-123456/x"), None);
        let ids = UnstructuredIds::new(&cse);
        assert_eq!(
            ids.resolve("/mn-cse-123456", Some(""))
                .map(|t| t.resource_id)
                .as_deref(),
            Some("mn-cse-123456")
        );
        assert_eq!(
            ids.resolve("/in-cse/x", None)
                .map(|t| t.resource_id)
                .as_deref(),
            Some("/in-cse/x")
        );
        assert!(to_from_path("/").is_err());
        assert!(to_from_path("/~/").is_err());
    }
}
