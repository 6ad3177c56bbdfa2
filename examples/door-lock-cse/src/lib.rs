//! # door-lock-cse
//!
//! The smart door-lock use case of the TS-0003 developer guide
//! (`../shared/seeds/004_6062d9aaca7e0fee.txt`) as a running example: the
//! home gateway's MN-CSE (`/mn-cse-123456` of SP `//home.example`) keeps the
//! state of the front and back door locks and serves the oneM2M HTTP binding
//! (TS-0009) with axum, every request authorized by [`authz_pep::PepLayer`]
//! against a PDP before the CSE looks at it.
//!
//! - [`store`]: the resource tree (CSEBase, the lock AEs `Clock-AE1` and
//!   `Clock-AE2`, the containers `frontDoor` and `backDoor` whose latest
//!   contentInstance is the lock state `LOCKED` or `UNLOCKED`, and the
//!   front door's unlock-command container `frontDoor/unlock`);
//! - [`credentials`]: who the sender is (its TLS client certificate, or a
//!   stand-in for the guide's TLS-PSK security association);
//! - [`https`]: serving the binding over TLS, with the client's certificate
//!   read once per connection;
//! - [`policies`]: the example's ACPs and resources, loaded into the PRP;
//! - [`groups`]: the example's `<group>`s (the babysitters), loaded into the
//!   PIP;
//! - [`guest`]: the guest's side of indirect dynamic authorization (a token
//!   from the DAS named in a 4103's `m2m:tqf`);
//! - [`router`]: the CSE itself, the layer in front.
//!
//! What the CSE does once a request is permitted:
//!
//! | request | answer |
//! | --- | --- |
//! | GET a resource (`/~/mn-cse-123456/frontDoor`, `.../frontDoor/la`) | 200, `X-M2M-RSC: 2000`, `m2m:cb`/`m2m:ae`/`m2m:cnt`/`m2m:cin` |
//! | GET with `fu=1` (discovery, optional `ty` filter, several ORed) | 200 / 2000, `m2m:uril` of the descendants the originator may DISCOVER (checked with one `DecideBatch`; the target's own privileges are not checked, TS-0004 7.3.3.14), possibly empty |
//! | POST `ty=4` `{"m2m:cin": {"con": "UNLOCKED"}}` to a door's container | 201 / 2001: the command, and the door's new state |
//! | POST `ty=4` `{"m2m:cin": {"con": "UNLOCKED"}}` to an unlock-command container (`frontDoor/unlock`) | 201 / 2001: the command, kept there; the door's container gets `UNLOCKED` by the same originator. Other content: 4000 (an ACP cannot tell an unlock from a lock, so whoever may only unlock is granted CREATE here and not in the door's container) |
//! | PUT `{"m2m:cnt": {"lbl": [...]}}` on a container | 200 / 2004 |
//! | PUT `{"m2m:cnt": {"acpi": [...]}}` (or `m2m:ae`, `m2m:cb`; `acpi` and nothing else) on a container, an AE or the CSEBase | 200 / 2004 once the PRP took the new `acpi` (written there as the originator) and the PDP decides with it; the PEP had the PDP judge it by the `pvs` of the resource's ACPs (TS-0001 9.6.1.3.2); `acpi` with other attributes is 4000 from the PEP layer, a contentInstance's `acpi` 4000, and without a PRP ([`AppConfig::prp`]) 4005 |
//! | DELETE a contentInstance (or `la`/`ol`) | 200 / 2002 |
//! | anything else | 4005 OPERATION_NOT_ALLOWED, 4102 for content other than `LOCKED`/`UNLOCKED` in a door's container, 4015 for content that is not JSON, 4004 for an unknown resource (also anything under `la`/`ol`) |

#![warn(missing_docs)]

pub mod credentials;
pub mod groups;
pub mod guest;
pub mod https;
pub mod policies;
pub mod store;

use std::sync::{Arc, RwLock};

use authz_pep::http::{AcpiChangeReader, JsonAcpiChange};
use authz_pep::http::{X_M2M_RI, X_M2M_RSC};
use authz_pep::{
    AuthorizedRequest, Clock, CseContext, DenyDetail, DiscoveryRequest, PepClient, PepError,
    PepLayer, ResponseStatusCode, Target, TargetResolver,
};
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::HeaderValue;
use serde_json::{Value, json};

use crate::credentials::{Credentials, Senders};
use crate::policies::Bundle;
use crate::store::{Addressed, Store, StoreError, ty};

/// The resource tree, shared by the handler and the layer's resolver.
pub type SharedStore = Arc<RwLock<Store>>;

/// Everything the CSE needs.
pub struct AppConfig {
    /// The hosting CSE.
    pub cse: CseContext,
    /// The PDP client.
    pub pep: PepClient,
    /// Where request times (and `ct`/`lt`) come from.
    pub clock: Arc<dyn Clock>,
    /// The psk-lookup-table.
    pub credentials: Credentials,
    /// The policy bundle whose resources make the tree.
    pub bundle: Bundle,
    /// How much a 4103 says.
    pub deny_detail: DenyDetail,
    /// The PRP the resources' `acpi` live in (the PDP decides with what it
    /// holds): an acpi change is written there, as its originator, before
    /// the tree takes it. `None`: an acpi change is 4005.
    pub prp: Option<PolicyRetrievalPointClient<tonic::transport::Channel>>,
}

/// The CSE's state.
struct App {
    store: SharedStore,
    cse: CseContext,
    pep: PepClient,
    clock: Arc<dyn Clock>,
    prp: Option<PolicyRetrievalPointClient<tonic::transport::Channel>>,
    /// How much a 4103 says, as the layer's.
    deny_detail: DenyDetail,
}

/// The PEP's view of the tree: an address to the resource access control is
/// checked on (see [`store`]).
#[derive(Clone)]
pub struct StoreResolver(pub SharedStore);

impl TargetResolver for StoreResolver {
    fn resolve(&self, _to: &str, cse_relative: Option<&str>) -> Option<Target> {
        // This CSE hosts no other CSE's resources: another CSE's address
        // does not exist here.
        let store = self.0.read().unwrap_or_else(|e| e.into_inner());
        let addressed = store.resolve(cse_relative?)?;
        let (resource_id, resource_type) = addressed.authorization_target(&store)?;
        Some(Target {
            resource_id,
            resource_type: Some(resource_type),
        })
    }
}

/// Tells an acpi change as [`JsonAcpiChange`] does, and refuses one
/// addressed to a resource without `acpi` (a contentInstance, `la`/`ol`:
/// spec notes §2.3) as 4000 before any decision: authorized as its
/// container, it would otherwise be judged by the container's `pvs`.
struct StoreAcpiChange {
    store: SharedStore,
    cse: CseContext,
}

impl AcpiChangeReader for StoreAcpiChange {
    fn updates_acpi(&self, parts: &http::request::Parts, content: &[u8]) -> Result<bool, PepError> {
        if !JsonAcpiChange.updates_acpi(parts, content)? {
            return Ok(false);
        }
        let to = authz_pep::http::to_from_path(parts.uri.path())?;
        let Some(address) = self.cse.hosting().cse_relative(&to) else {
            return Ok(true);
        };
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        let without_acpi = match store.resolve(address) {
            Some(Addressed::Latest(_) | Addressed::Oldest(_)) => true,
            Some(Addressed::Resource(ri)) => {
                store.get(&ri).is_some_and(|r| r.ty == ty::CONTENT_INSTANCE)
            }
            None => false,
        };
        if without_acpi {
            return Err(PepError::BadRequest(
                "a contentInstance has no acpi to change (spec notes §2.3)".into(),
            ));
        }
        Ok(true)
    }
}

/// The CSE as an axum router with the PEP layer in front, and its store.
pub fn router(config: AppConfig) -> Result<(Router, SharedStore), StoreError> {
    let store: SharedStore = Arc::new(RwLock::new(Store::from_bundle(
        &config.bundle.resources,
        config.clock.now(),
    )?));
    let layer = PepLayer::new(config.pep.clone(), config.cse.clone())
        .with_discovery_by_result(true)
        .with_clock(config.clock.clone())
        .with_resolver(StoreResolver(store.clone()))
        .with_acpi_change_reader(StoreAcpiChange {
            store: store.clone(),
            cse: config.cse.clone(),
        })
        .with_authenticator(Senders::new(config.cse.clone(), config.credentials))
        .with_deny_detail(config.deny_detail);
    let app = Arc::new(App {
        store: store.clone(),
        cse: config.cse,
        pep: config.pep,
        clock: config.clock,
        prp: config.prp,
        deny_detail: config.deny_detail,
    });
    let router = Router::new().fallback(handle).with_state(app).layer(layer);
    Ok((router, store))
}

/// Takes into the tree the `acpi` the PRP holds for each of its resources.
///
/// The policies file gives the tree its first `acpi`, but an acpi change
/// made through this CSE lives in the PRP (the PDP decides with it), so a
/// CSE restarted without `--load-policies` must show the PRP's, not the
/// file's (TS-0001 9.6.1.3.2: a resource's `acpi` is what its access is
/// judged by). A resource the PRP does not hold keeps the file's. Returns
/// how many resources changed.
pub async fn acpi_from_prp(
    store: &SharedStore,
    prp: &mut PolicyRetrievalPointClient<tonic::transport::Channel>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, tonic::Status> {
    let ids = store
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .ids_with_acpi();
    let mut changed = 0;
    for ri in ids {
        let record = match prp
            .get_resource(pb::GetResourceRequest {
                resource_id: ri.clone(),
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => continue,
            Err(status) => return Err(status),
        };
        let Some(resource) = record.resource else {
            continue;
        };
        let acpi = if resource.acpi_set {
            resource.acpi
        } else {
            Vec::new()
        };
        let mut store = store.write().unwrap_or_else(|e| e.into_inner());
        if store.get(&ri).is_some_and(|r| r.acpi != acpi) {
            store
                .update_acpi(&ri, acpi, now)
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// A oneM2M response: the HTTP status of `rsc`, `X-M2M-RSC`, `X-M2M-RI`,
/// and JSON content.
fn respond(rsc: ResponseStatusCode, rqi: &str, content: Value) -> Response {
    let mut response = Response::new(Body::from(content.to_string()));
    *response.status_mut() = rsc.http_status();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&rsc.to_string()) {
        headers.insert(X_M2M_RSC, v);
    }
    if let Ok(v) = HeaderValue::from_str(rqi) {
        headers.insert(X_M2M_RI, v);
    }
    response
}

fn error(e: StoreError, rqi: &str) -> Response {
    let rsc = match &e {
        StoreError::Contents(_) => ResponseStatusCode::CONTENTS_UNACCEPTABLE,
        StoreError::Bad(_) => ResponseStatusCode::BAD_REQUEST,
        StoreError::Conflict(_) => ResponseStatusCode::CONFLICT,
        StoreError::NotAllowed(_) => ResponseStatusCode::OPERATION_NOT_ALLOWED,
        StoreError::NotFound(_) | StoreError::NoInstance(_) => ResponseStatusCode::NOT_FOUND,
        StoreError::MediaType(_) => ResponseStatusCode::UNSUPPORTED_MEDIA_TYPE,
    };
    respond(rsc, rqi, json!({ "m2m:dbg": e.to_string() }))
}

/// The content of a Create or Update must be JSON (TS-0009 6.7:
/// `application/json` or `application/vnd.onem2m-res+json`, parameters
/// such as `ty` after `;`), the only serialization this CSE reads; other
/// media types are 4015. Content without a Content-Type is read as JSON.
fn json_content(request: &Request) -> Result<(), StoreError> {
    if !matches!(*request.method(), http::Method::POST | http::Method::PUT) {
        return Ok(());
    }
    let Some(value) = request.headers().get(http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/json" | "application/vnd.onem2m-res+json") => Ok(()),
        _ => Err(StoreError::MediaType(format!(
            "content type {} is not JSON (application/json or application/vnd.onem2m-res+json), the only serialization this CSE reads",
            String::from_utf8_lossy(value.as_bytes())
        ))),
    }
}

/// Most bytes of a request body.
const MAX_BODY: usize = 64 * 1024;

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    if let Some(discovery) = request.extensions().get::<DiscoveryRequest>().cloned() {
        return discover(&app, &discovery).await;
    }
    let Some(auth) = request.extensions().get::<AuthorizedRequest>().cloned() else {
        // Only reachable when the router is used without the layer.
        return respond(
            ResponseStatusCode::INTERNAL_SERVER_ERROR,
            "",
            json!({"m2m:dbg": "request did not pass the PEP"}),
        );
    };
    let rqi = auth.primitive.rqi.clone();
    if let Err(e) = json_content(&request) {
        return error(e, &rqi);
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(StoreError::Bad(format!("body: {e}")), &rqi),
    };
    let addressed = {
        let store = app.store.read().unwrap_or_else(|e| e.into_inner());
        auth.cse_relative
            .as_deref()
            .and_then(|rel| store.resolve(rel))
    };
    let Some(addressed) = addressed else {
        return error(StoreError::NotFound(auth.primitive.to.clone()), &rqi);
    };
    use authz_proto::pb::Operation as Op;
    match auth.primitive.op {
        Op::Retrieve => retrieve(&app, &addressed, &rqi),
        Op::Create => create(&app, &auth, &addressed, &body),
        // An Update holding only acpi (TS-0001 9.6.1.3.2); the layer
        // answered 4000 to one holding acpi and more.
        Op::Update if auth.request.updates_acpi => {
            update_acpi(&app, &auth, &addressed, &body).await
        }
        Op::Update => update(&app, &addressed, &body, &rqi),
        Op::Delete => delete(&app, &addressed, &rqi),
        Op::Notify | Op::Unspecified => error(
            StoreError::NotAllowed("this CSE takes no notifications".into()),
            &rqi,
        ),
    }
}

fn retrieve(app: &App, addressed: &Addressed, rqi: &str) -> Response {
    let store = app.store.read().unwrap_or_else(|e| e.into_inner());
    match store.instance(addressed) {
        Some(r) => respond(
            ResponseStatusCode::OK,
            rqi,
            store.to_json(r, app.cse.cse_id()),
        ),
        None => error(
            StoreError::NoInstance("the container has no contentInstance"),
            rqi,
        ),
    }
}

/// Discovery (TS-0004 7.3.3.14): the descendants matching the filter (`ty`
/// criteria ORed) for which the originator holds DISCOVER, each checked in
/// one batch; the target's own privileges are not checked (the layer
/// passes discoveries on undecided, `with_discovery_by_result`).
async fn discover(app: &App, discovery: &DiscoveryRequest) -> Response {
    let rqi = &discovery.primitive.rqi;
    let addressed = {
        let store = app.store.read().unwrap_or_else(|e| e.into_inner());
        discovery
            .cse_relative
            .as_deref()
            .and_then(|rel| store.resolve(rel))
    };
    let Some(Addressed::Resource(base)) = addressed else {
        return match addressed {
            None => error(StoreError::NotFound(discovery.primitive.to.clone()), rqi),
            Some(_) => error(
                StoreError::Bad("discovery needs a resource, not la/ol".into()),
                rqi,
            ),
        };
    };
    let types = &discovery.resource_types;
    let candidates: Vec<(String, String, u32)> = {
        let store = app.store.read().unwrap_or_else(|e| e.into_inner());
        store
            .descendants(&base)
            .into_iter()
            .filter(|r| types.is_empty() || types.contains(&r.ty))
            .filter_map(|r| {
                let (target, target_ty) =
                    Addressed::Resource(r.ri.clone()).authorization_target(&store)?;
                Some((store.structured(&r.ri), target, target_ty))
            })
            .collect()
    };
    let mut requests: Vec<_> = candidates
        .iter()
        .enumerate()
        .map(|(i, (_, target, target_ty))| {
            let mut r = discovery.request.clone();
            r.target = target.clone();
            r.target_type = Some(*target_ty);
            r.request_id = format!("{rqi}/{i}");
            r
        })
        .collect();
    if requests.is_empty() {
        // Nothing to list still needs a PDP that judges the request: a
        // malformed one (tokens, Role-IDs) is 4000 and an undecided one
        // 4103 whatever the tree holds, or an empty list would tell an
        // originator with no right at all that nothing of the type
        // exists. The base's own decision is asked for that alone; its
        // effect lists nothing.
        let base_target = {
            let store = app.store.read().unwrap_or_else(|e| e.into_inner());
            Addressed::Resource(base.clone()).authorization_target(&store)
        };
        if let Some((target, target_ty)) = base_target {
            let mut r = discovery.request.clone();
            r.target = target;
            r.target_type = Some(target_ty);
            r.request_id = format!("{rqi}/base");
            requests.push(r);
        }
    }
    let verdicts = app.pep.decide_batch(requests).await;
    // A candidate the PDP could not decide (fail-closed) would be left out
    // silently, as if denied: the list would look complete. So would every
    // candidate of a malformed request (a token, Role-ID or Local-Token-ID
    // the PDP refuses as INVALID_ARGUMENT: SYNTAX_ERROR, the same for each).
    // Answer as the layer answers such a request instead: 4103, or 4000.
    if let Some(failed) = verdicts.iter().find(|v| {
        v.source == authz_pep::DecisionSource::FailClosed
            || v.decision.status == authz_proto::pb::AuthorizationStatus::SyntaxError as i32
    }) {
        return match failed.enforcement(app.deny_detail) {
            authz_pep::Enforcement::Reject(r) => {
                authz_pep::http::rejection_response(&r, HeaderValue::from_str(rqi).ok().as_ref())
                    .map(Body::new)
            }
            // Both are Denies; nothing else is expected.
            authz_pep::Enforcement::Proceed { .. } => respond(
                ResponseStatusCode::INTERNAL_SERVER_ERROR,
                rqi,
                json!({"m2m:dbg": "the PDP could not decide the discovery"}),
            ),
        };
    }
    let uril: Vec<&str> = candidates
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.is_permit())
        .map(|((addr, _, _), _)| addr.as_str())
        .collect();
    respond(ResponseStatusCode::OK, rqi, json!({ "m2m:uril": uril }))
}

fn create(app: &App, auth: &AuthorizedRequest, addressed: &Addressed, body: &[u8]) -> Response {
    let rqi = &auth.primitive.rqi;
    if auth.primitive.ty != Some(ty::CONTENT_INSTANCE) {
        return error(
            StoreError::NotAllowed(
                "only contentInstances (ty=4) can be created in this example".into(),
            ),
            rqi,
        );
    }
    let Addressed::Resource(container) = addressed else {
        return error(
            StoreError::NotAllowed("cannot create under la/ol".into()),
            rqi,
        );
    };
    let content: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(StoreError::Bad(format!("content is not JSON: {e}")), rqi),
    };
    let Some(cin) = content.get("m2m:cin") else {
        return error(StoreError::Bad("content needs m2m:cin".into()), rqi);
    };
    let Some(con) = cin.get("con").and_then(Value::as_str) else {
        return error(StoreError::Contents("m2m:cin needs con".into()), rqi);
    };
    let rn = cin.get("rn").and_then(Value::as_str);
    let mut store = app.store.write().unwrap_or_else(|e| e.into_inner());
    let door = store
        .commanded_door(container)
        .unwrap_or(container)
        .to_owned();
    match store.create_instance(container, rn, con, &auth.primitive.fr, app.clock.now()) {
        Ok(r) => {
            tracing::info!(%door, via = %container, state = %con, by = %auth.primitive.fr, "lock command");
            let mut response = respond(
                ResponseStatusCode::CREATED,
                rqi,
                store.to_json(&r, app.cse.cse_id()),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("/~{}/{}", app.cse.cse_id(), r.ri)) {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_LOCATION, v);
            }
            response
        }
        Err(e) => error(e, rqi),
    }
}

fn update(app: &App, addressed: &Addressed, body: &[u8], rqi: &str) -> Response {
    let Addressed::Resource(ri) = addressed else {
        return error(
            StoreError::NotAllowed("la/ol cannot be updated".into()),
            rqi,
        );
    };
    let content: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(StoreError::Bad(format!("content is not JSON: {e}")), rqi),
    };
    let mut store = app.store.write().unwrap_or_else(|e| e.into_inner());
    let Some(target_ty) = store.get(ri).map(|r| r.ty) else {
        return error(StoreError::NotFound(ri.clone()), rqi);
    };
    let lbl = match updated_labels(&content, store::root_name(target_ty)) {
        Ok(lbl) => lbl,
        Err(why) => return error(StoreError::Bad(why), rqi),
    };
    match store.update_labels(ri, lbl, app.clock.now()) {
        Ok(r) => respond(
            ResponseStatusCode::UPDATED,
            rqi,
            store.to_json(&r, app.cse.cse_id()),
        ),
        Err(e) => error(e, rqi),
    }
}

/// The labels of an Update `{"<root>": {"lbl": [...]}}`, `root` being
/// the target's own (`m2m:cnt` for a container, TS-0004 7.3.3.3): the one
/// attribute this CSE updates besides `acpi` (of containers only: the
/// store refuses others, 4005). Another root, another attribute, or a
/// label that is no string is refused naming it (4000), rather than
/// answered 2004 for a change that did not happen.
fn updated_labels(content: &Value, root: &str) -> Result<Vec<String>, String> {
    let shape = format!("an update of this resource takes {{\"{root}\": {{\"lbl\": [...]}}}}");
    let resource = resource_under(content, root, &shape)?;
    if let Some(other) = resource.keys().find(|k| *k != "lbl") {
        return Err(format!(
            "{root}.{other}: not updatable here (only lbl, or acpi alone)"
        ));
    }
    let Some(list) = resource.get("lbl").and_then(Value::as_array) else {
        return Err(format!("{root}.lbl: {shape}"));
    };
    list.iter()
        .enumerate()
        .map(|(i, l)| {
            l.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{root}.lbl[{i}]: a label is a string"))
        })
        .collect()
}

/// An Update that changes the resource's `acpi` and nothing else, which
/// the PDP judged by UPDATE in the `pvs` of the ACPs the resource
/// references now (TS-0001 9.6.1.3.2): the PDP decides with the PRP's
/// records, so the new `acpi` goes to the PRP first, as the originator's
/// `PutResource` (which the PRP authorizes by the same `pvs`), then into the
/// tree. `"acpi": null` removes it (the default policy then applies).
async fn update_acpi(
    app: &App,
    auth: &AuthorizedRequest,
    addressed: &Addressed,
    body: &[u8],
) -> Response {
    let rqi = &auth.primitive.rqi;
    let Addressed::Resource(ri) = addressed else {
        return error(
            StoreError::NotAllowed("la/ol cannot be updated".into()),
            rqi,
        );
    };
    let target_ty = {
        // A contentInstance is authorized as its container, but has no
        // acpi of its own (spec notes §2.3).
        let store = app.store.read().unwrap_or_else(|e| e.into_inner());
        match store.get(ri) {
            None => return error(StoreError::NotFound(ri.clone()), rqi),
            Some(r) if r.ty == ty::CONTENT_INSTANCE => {
                return error(
                    StoreError::Bad("a contentInstance has no acpi to change".into()),
                    rqi,
                );
            }
            Some(r) => r.ty,
        }
    };
    let acpi = match new_acpi(body, target_ty) {
        Ok(acpi) => acpi,
        Err(e) => return error(e, rqi),
    };
    let Some(mut prp) = app.prp.clone() else {
        return error(
            StoreError::NotAllowed(
                "this CSE has no PRP to keep the resources' acpi in, so acpi cannot change".into(),
            ),
            rqi,
        );
    };
    let record = match prp
        .get_resource(pb::GetResourceRequest {
            resource_id: ri.clone(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return prp_error(&status, rqi),
    };
    let mut resource = record.resource.unwrap_or_default();
    resource.acpi_set = acpi.is_some();
    resource.acpi = acpi.clone().unwrap_or_default();
    let written = match prp
        .put_resource(pb::PutResourceRequest {
            originator: auth.primitive.fr.clone(),
            resource: Some(resource),
            // The PRP verifies the request's Role-IDs as the PDP does.
            role_ids: auth.primitive.rids.clone(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return prp_error(&status, rqi),
    };
    tracing::info!(resource = %ri, acpi = ?acpi, by = %auth.primitive.fr, "acpi changed");
    let updated = {
        let mut store = app.store.write().unwrap_or_else(|e| e.into_inner());
        store
            .update_acpi(ri, acpi.unwrap_or_default(), app.clock.now())
            .map(|r| store.to_json(&r, app.cse.cse_id()))
    };
    // 2004 says the new acpi is in force: wait until the PDP decides with
    // it (its replica follows the PRP a few milliseconds behind; asking its
    // Status also drops the PEP's cached decisions of older revisions), so
    // that no request answered after this one is judged by the old acpi.
    // The store's version, not the bare revision: a PDP still holding
    // another store's (or another history's) revision of that number has
    // not seen this write.
    let version = written.version.unwrap_or(pb::StoreVersion {
        revision: written.revision,
        ..Default::default()
    });
    if let Err(e) = app
        .pep
        .wait_for_version(&version, ACPI_CHANGE_PROPAGATION)
        .await
    {
        // Stored, and in force once the PDP catches up: still UPDATED.
        tracing::warn!(resource = %ri, revision = written.revision, error = %e, "acpi change stored, not yet in force at the PDP");
    }
    match updated {
        Ok(r) => respond(ResponseStatusCode::UPDATED, rqi, r),
        Err(e) => error(e, rqi),
    }
}

/// How long an acpi change may take to reach the PDP before the CSE
/// answers that it is not in force yet.
const ACPI_CHANGE_PROPAGATION: std::time::Duration = std::time::Duration::from_secs(5);

/// The new `acpi` of an acpi change's content to a resource of type
/// `target_ty` (`{"m2m:cnt": {"acpi": [...]}}` for a container): the ACP
/// IDs, or `None` for `null` (remove it). The content's one root must be
/// the target's own type, as for any Update (TS-0004 7.3.3.3), or it is a
/// bad request.
fn new_acpi(body: &[u8], target_ty: u32) -> Result<Option<Vec<String>>, StoreError> {
    let content: Value = serde_json::from_slice(body)
        .map_err(|e| StoreError::Bad(format!("content is not JSON: {e}")))?;
    let root = store::root_name(target_ty);
    let shape =
        format!("an acpi change to this resource takes {{\"{root}\": {{\"acpi\": [...]}}}}");
    let resource = resource_under(&content, root, &shape).map_err(StoreError::Bad)?;
    let value = resource
        .get("acpi")
        .or_else(|| resource.get("accessControlPolicyIDs"))
        .ok_or_else(|| StoreError::Bad(shape.clone()))?;
    match value {
        Value::Null => Ok(None),
        Value::Array(ids) => ids
            .iter()
            .map(|id| match id.as_str() {
                Some(id) if !id.is_empty() && !id.chars().any(char::is_whitespace) => {
                    Ok(id.to_owned())
                }
                _ => Err(StoreError::Bad(format!("acpi: {id} is not an ACP ID"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(StoreError::Bad(format!(
            "acpi must be a list of ACP IDs or null, not {other}"
        ))),
    }
}

/// The resource of an Update's content, which must hold it under the one
/// root `root` (the target's own type, TS-0004 7.3.3.3); otherwise `shape`
/// (what the content should look like), led by the wrong root if any.
fn resource_under<'a>(
    content: &'a Value,
    root: &str,
    shape: &str,
) -> Result<&'a serde_json::Map<String, Value>, String> {
    let object = content.as_object().ok_or_else(|| shape.to_owned())?;
    if let Some(other) = object.keys().find(|k| *k != root) {
        return Err(format!("{other}: {shape}"));
    }
    object
        .get(root)
        .and_then(Value::as_object)
        .ok_or_else(|| shape.to_owned())
}

/// A PRP's refusal of a write as the CSE's response.
fn prp_error(status: &tonic::Status, rqi: &str) -> Response {
    let rsc = match status.code() {
        tonic::Code::PermissionDenied => ResponseStatusCode::ORIGINATOR_HAS_NO_PRIVILEGE,
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
            ResponseStatusCode::BAD_REQUEST
        }
        tonic::Code::NotFound => ResponseStatusCode::NOT_FOUND,
        _ => ResponseStatusCode::INTERNAL_SERVER_ERROR,
    };
    respond(
        rsc,
        rqi,
        json!({ "m2m:dbg": format!("PRP: {}", authz_proto::endpoint::status_message(status)) }),
    )
}

fn delete(app: &App, addressed: &Addressed, rqi: &str) -> Response {
    let mut store = app.store.write().unwrap_or_else(|e| e.into_inner());
    let Some(ri) = store.instance(addressed).map(|r| r.ri.clone()) else {
        return error(StoreError::NoInstance("no such contentInstance"), rqi);
    };
    match store.delete_instance(&ri) {
        Ok(r) => respond(
            ResponseStatusCode::DELETED,
            rqi,
            store.to_json(&r, app.cse.cse_id()),
        ),
        Err(e) => error(e, rqi),
    }
}
