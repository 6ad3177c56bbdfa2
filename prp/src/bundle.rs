//! Policy bundles: the file format of `authz policy apply`, the demo
//! policies of `authz up` and the door-lock example, and how a bundle gets
//! into a running PRP.
//!
//! A bundle is `{"acps": [m2m:acp...], "resources": [{"ri", "pi", "ty",
//! "acpi", "daci", "cr", "cstn"}...]}`, or a plain `m2m:acp` document (one
//! resource or a list) with no resources. [`Bundle::parse`] validates every
//! ACP with the core engine and every resource as the PRP will
//! ([`resource_from_pb`]) first, so a mistake names its field before
//! anything is sent; [`apply`] then asks the PRP which ACPs exist, checks
//! the new ones as a Create must be (`pv`, `pvs` with a rule, `adri`/`apri`:
//! [`check_create`]) before its first write, creates each ACP (updating it
//! when it exists) and puts each resource through the PRP's gRPC API, as one
//! originator whose rights the PRP checks (see [`crate::service`]).

use authz_core::AccessControlPolicy;
use authz_core::compile::check_create;
use authz_core::json;
use authz_core::resources::Resource;
use authz_proto::convert::{acp_to_pb, resource_from_pb, resource_to_pb};
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use serde_json::Value;
use tonic::transport::Channel;

/// ACPs and the target resources they protect.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// The ACPs, validated.
    pub acps: Vec<AccessControlPolicy>,
    /// The resources the PDP will be asked about.
    pub resources: Vec<Resource>,
    /// Where each ACP is in the file, as a path prefix its errors start
    /// with: `acps[i]` in a bundle (`acps.m2m:acp[i]` when `acps` is an
    /// `m2m:acp` object), `m2m:acp[i]` in a list, nothing for a document
    /// of one resource (whose errors name `pv.acr[0]` as `authz check`
    /// does).
    acp_paths: Vec<String>,
}

/// Why a bundle does not parse; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// An ACP that is not a valid `m2m:acp`.
    #[error("{0}")]
    Acps(String),
    /// A resource that is not a valid binding.
    #[error("{0}")]
    Resources(String),
    /// A bundle key other than `acps` and `resources`.
    #[error("{0}: unknown field, expected `acps` or `resources`")]
    Unknown(String),
}

/// Two entries of one list with the same ID would be written one over the
/// other, the last silently winning: refused, naming both.
fn check_unique<'a>(
    ids: impl Iterator<Item = &'a str>,
    list: &str,
    field: &str,
) -> Result<(), String> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, id) in ids.enumerate() {
        if id.is_empty() {
            continue;
        }
        if let Some(first) = seen.insert(id, i) {
            return Err(format!(
                "{list}[{i}].{field}: {id} is also {list}[{first}].{field}"
            ));
        }
    }
    Ok(())
}

/// The core's rule for a document: a list (a JSON array, or an `m2m:acp`
/// holding one) names its resources `m2m:acp[i]`, a single resource
/// nothing.
fn document_is_list(doc: &Value) -> bool {
    doc.is_array() || doc.get(json::ROOT).is_some_and(Value::is_array)
}

impl Bundle {
    /// Parses and validates a bundle or an `m2m:acp` document.
    pub fn parse(text: &str) -> Result<Self, BundleError> {
        // Strict like every policy document: a duplicate key is an error.
        let value: Value = json::parse_json(text).map_err(|e| BundleError::Json(e.to_string()))?;
        let is_bundle = value
            .as_object()
            .is_some_and(|o| o.contains_key("acps") || o.contains_key("resources"));
        if !is_bundle {
            let acps =
                json::parse_and_validate(text).map_err(|e| BundleError::Acps(e.to_string()))?;
            let listed = document_is_list(&value);
            let acp_paths = (0..acps.len())
                .map(|i| {
                    if listed {
                        format!("{}[{i}]", json::ROOT)
                    } else {
                        String::new()
                    }
                })
                .collect();
            let bundle = Self {
                acps,
                resources: Vec::new(),
                acp_paths,
            };
            // As in a bundle: one `ri` twice is a mistake, not "the last
            // one wins".
            bundle.check_acp_ids(json::ROOT)?;
            return Ok(bundle);
        }
        // Strict like the documents inside it: `resourcez` would otherwise
        // apply nothing and say so only in a count.
        if let Some(key) = value.as_object().and_then(|o| {
            o.keys()
                .find(|k| !matches!(k.as_str(), "acps" | "resources"))
        }) {
            return Err(BundleError::Unknown(key.clone()));
        }
        // Parsed on its own, `acps` names its entries as a document does
        // (`m2m:acp[i]` in a list, nothing for one resource); in the file
        // they are `acps[i]` in an array, `acps.m2m:acp[i]` (or
        // `acps.m2m:acp`) in an `m2m:acp` object.
        let in_array = value.get("acps").is_some_and(Value::is_array);
        let in_file = |path: &str| -> String {
            match path.strip_prefix(json::ROOT) {
                Some(rest) if in_array && rest.starts_with('[') => format!("acps{rest}"),
                Some(rest) if rest.starts_with('[') => format!("acps.{path}"),
                _ if in_array => format!("acps.{path}"),
                _ => format!(
                    "acps.{}{}{path}",
                    json::ROOT,
                    if path.is_empty() { "" } else { "." }
                ),
            }
        };
        let acps: Vec<AccessControlPolicy> = match value.get("acps") {
            Some(a) => json::parse_and_validate(&a.to_string()).map_err(|e| match e {
                json::JsonError::Invalid(errors) => BundleError::Acps(
                    errors
                        .0
                        .iter()
                        .map(|v| format!("{}: {}", in_file(&v.path), v.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                other => BundleError::Acps(format!("acps: {other}")),
            })?,
            None => Vec::new(),
        };
        let listed = value.get("acps").is_some_and(document_is_list);
        let acp_paths = (0..acps.len())
            .map(|i| {
                if listed {
                    in_file(&format!("{}[{i}]", json::ROOT))
                } else {
                    in_file("")
                }
            })
            .collect();

        let resources = match value.get("resources") {
            Some(r) => json::deserialize_at::<Vec<Resource>>("resources", r.clone())
                .map_err(|e| BundleError::Resources(e.to_string()))?,
            None => Vec::new(),
        };
        check_unique(
            resources.iter().map(|r| r.resource_id.as_str()),
            "resources",
            "ri",
        )
        .map_err(BundleError::Resources)?;
        check_resources(&resources)?;
        // A resource may not take an ACP's ID: the PRP would refuse it
        // after the ACP was written.
        for (i, r) in resources.iter().enumerate() {
            if let Some(j) = acps
                .iter()
                .position(|a| a.id() == Some(r.resource_id.as_str()))
            {
                return Err(BundleError::Resources(format!(
                    "resources[{i}].ri: {} is also acps[{j}].ri",
                    r.resource_id
                )));
            }
        }
        let bundle = Self {
            acps,
            resources,
            acp_paths,
        };
        bundle.check_acp_ids(if in_array { "acps" } else { "acps.m2m:acp" })?;
        Ok(bundle)
    }

    /// Each ACP's `ri` once (in a `list` of several), and CSE-relative, as
    /// the PRP holds ACPs.
    fn check_acp_ids(&self, list: &str) -> Result<(), BundleError> {
        check_unique(
            self.acps.iter().map(|a| a.id().unwrap_or_default()),
            list,
            "ri",
        )
        .map_err(BundleError::Acps)?;
        for (i, a) in self.acps.iter().enumerate() {
            if let Some(why) = a.id().and_then(crate::service::acp_id_not_cse_relative) {
                return Err(BundleError::Acps(format!(
                    "{}ri: {why}",
                    self.label(i, None)
                )));
            }
        }
        Ok(())
    }

    /// The prefix of the errors of ACP `i`: where it is in the file (with
    /// its `id` when known), then a dot; nothing for a document of one ACP.
    fn label(&self, i: usize, id: Option<&str>) -> String {
        match (self.acp_paths.get(i).map(String::as_str), id) {
            (None | Some(""), _) => String::new(),
            (Some(path), Some(id)) => format!("{path} ({id})."),
            (Some(path), None) => format!("{path}."),
        }
    }
}

/// Checks each resource as the PRP's `PutResource` will, naming fields by
/// their short names (`resources[0].cr: ...`).
fn check_resources(resources: &[Resource]) -> Result<(), BundleError> {
    let mut messages = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        for e in resource_from_pb(&resource_to_pb(r), "")
            .err()
            .unwrap_or_default()
        {
            let wire = e.field.trim_start_matches('.');
            // An entry of a list (`dac_poa[0]`) keeps its index.
            let (wire, index) = wire.split_at(wire.find('[').unwrap_or(wire.len()));
            let short = match wire {
                "resource_id" => "ri",
                "parent_id" => "pi",
                "resource_type" => "ty",
                "creator" => "cr",
                "custodian" => "cstn",
                "dac_enabled" => "dae",
                "dac_poa" => "dap",
                "dac_lifetime" => "dal",
                "ae_id" => "aei",
                "cse_id" => "csi",
                other => other,
            };
            messages.push(format!("resources[{i}].{short}{index}: {}", e.message));
        }
    }
    if messages.is_empty() {
        Ok(())
    } else {
        Err(BundleError::Resources(messages.join("; ")))
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// ACPs created.
    pub created: usize,
    /// ACPs that existed and were changed.
    pub updated: usize,
    /// ACPs that existed as the file has them: their update wrote nothing.
    pub unchanged: usize,
    /// Resources put that changed the store.
    pub resources: usize,
    /// Resources stored as the file has them: their put wrote nothing.
    pub resources_unchanged: usize,
    /// The PRP revision after the last write.
    pub revision: u64,
    /// Which change of which store that revision is, for
    /// `PepClient::wait_for_version` (`None` without a write, or from a
    /// PRP of an earlier version).
    pub version: Option<pb::StoreVersion>,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No write, no revision to report (0 would read as the PRP's).
        if self.created + self.updated + self.unchanged + self.resources + self.resources_unchanged
            == 0
        {
            return f.write_str("nothing applied");
        }
        if self.created + self.updated + self.resources == 0 {
            return write!(
                f,
                "nothing changed: {} ACP(s) and {} resource(s) already as given; PRP revision {}",
                self.unchanged, self.resources_unchanged, self.revision
            );
        }
        write!(
            f,
            "applied {} ACP(s) ({} created, {} updated",
            self.created + self.updated,
            self.created,
            self.updated
        )?;
        if self.unchanged > 0 {
            write!(f, "; {} unchanged", self.unchanged)?;
        }
        write!(f, ") and {} resource(s)", self.resources)?;
        if self.resources_unchanged > 0 {
            write!(f, " ({} unchanged)", self.resources_unchanged)?;
        }
        write!(f, "; PRP revision {}", self.revision)
    }
}

/// Why [`apply`] stopped (the writes before it stay applied).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// ACPs the bundle would create that a Create refuses; nothing was
    /// written. One line per field: `acps[1] (acpX).pvs: ...`.
    #[error("nothing applied:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    /// An ACP with neither `ri` nor `rn`.
    #[error("an ACP has neither ri nor rn")]
    NoId,
    /// The PRP refused a write; what came before it stays applied.
    #[error("{what}: {}; before it, {applied}", status_text(.status))]
    Refused {
        /// The ACP ID, or `resource ID`.
        what: String,
        /// The PRP's answer.
        status: tonic::Status,
        /// What was applied before the refusal.
        applied: Applied,
    },
}

/// A status with its field violations (`google.rpc.BadRequest`), one per
/// line, and, for one the client made from a transport error, that
/// error's causes: its message alone is `transport error`, the causes say
/// why (a refused connection, a TLS alert such as a server wanting a
/// client certificate).
pub fn status_text(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let mut out = format!(
        "{:?}: {}",
        s.code(),
        authz_proto::endpoint::status_message(s)
    );
    if let Some(source) = std::error::Error::source(s) {
        let causes = authz_proto::endpoint::error_chain(source);
        if causes.starts_with(s.message()) {
            // The message is the first cause (`transport error`).
            out = format!("{:?}: {causes}", s.code());
        } else if !out.contains(&causes) {
            out.push_str(": ");
            out.push_str(&causes);
        }
    }
    if let Some(bad) = s.get_details_bad_request() {
        for v in bad.field_violations {
            let line = format!("{}: {}", v.field, v.description);
            // The message often is the one violation already.
            if s.message() != line {
                out.push_str(&format!("\n  {line}"));
            }
        }
    }
    out
}

/// The part of an ACP ID that names it within its CSE: `x` of `x`,
/// `/cse/x` and `//sp/cse/x` (TS-0001 7.2), so that two forms of one ID
/// compare equal without knowing the hosting CSE (the PRP refuses an ACP of
/// another CSE itself).
fn cse_relative_tail(id: &str) -> &str {
    let skip = if id.starts_with("//") {
        2
    } else if id.starts_with('/') {
        1
    } else {
        return id;
    };
    id.trim_start_matches('/')
        .splitn(skip + 1, '/')
        .nth(skip)
        .unwrap_or(id)
}

/// ACPs of the bundle with one `rn` under one parent: a resourceName is
/// unique among its parent's children (TS-0001 9.6.1.3), so the PRP would
/// refuse the second's create after writing the first. A parent is
/// compared in the form the PRP holds it, which every ID form of it reads
/// as: a registered parent's record ID, else the ID its NOT_FOUND names
/// (as written, from a PRP that names none).
async fn same_name_under_one_parent(
    prp: &mut PolicyRetrievalPointClient<Channel>,
    bundle: &Bundle,
) -> Vec<String> {
    let mut held: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let mut named: std::collections::HashMap<(String, &str), usize> =
        std::collections::HashMap::new();
    let mut errors = Vec::new();
    for (i, acp) in bundle.acps.iter().enumerate() {
        let (Some(pi), Some(rn)) = (acp.parent_id.as_deref(), acp.resource_name.as_deref()) else {
            continue;
        };
        let parent = match held.get(pi) {
            Some(parent) => parent.clone(),
            None => {
                use tonic_types::StatusExt;
                let parent = match prp
                    .get_resource(pb::GetResourceRequest {
                        resource_id: pi.to_owned(),
                    })
                    .await
                {
                    Ok(rec) => rec.into_inner().resource.map(|r| r.resource_id),
                    Err(s) => s
                        .get_details_resource_info()
                        .map(|info| info.resource_name)
                        .filter(|held| !held.is_empty()),
                }
                .unwrap_or_else(|| pi.to_owned());
                held.insert(pi, parent.clone());
                parent
            }
        };
        if let Some(first) = named.insert((parent, rn), i) {
            errors.push(format!(
                "{}rn: {rn} under {pi} is also {}rn; a resourceName is unique among its \
                 parent's children (TS-0001 9.6.1.3)",
                bundle.label(i, acp.id()),
                bundle.label(first, bundle.acps[first].id()),
            ));
        }
    }
    errors
}

/// Creates (or, when it exists, updates) every ACP, then puts every
/// resource, as `originator`.
pub async fn apply(
    prp: &mut PolicyRetrievalPointClient<Channel>,
    originator: &str,
    bundle: &Bundle,
) -> Result<Applied, ApplyError> {
    apply_with_roles(prp, originator, &[], bundle).await
}

/// [`apply`] by an originator that also claims `role_ids`, which count
/// where the PRP's PIP verifies them (TS-0003 7.4.3).
pub async fn apply_with_roles(
    prp: &mut PolicyRetrievalPointClient<Channel>,
    originator: &str,
    role_ids: &[String],
    bundle: &Bundle,
) -> Result<Applied, ApplyError> {
    let mut done = Applied::default();
    // Before any write: the ACPs that do not exist yet must pass as a
    // Create, so that a bundle is not left half applied for a reason known
    // in advance.
    let mut invalid = Vec::new();
    let mut existing = Vec::with_capacity(bundle.acps.len());
    let mut wires = Vec::with_capacity(bundle.acps.len());
    // The latest store revision known: a write answered with it wrote
    // nothing (the PRP makes no revision for a write that changes nothing,
    // and answers the current one), one answered with a later one did.
    let mut known: Option<u64> = None;
    for (i, acp) in bundle.acps.iter().enumerate() {
        let id = acp.id().ok_or(ApplyError::NoId)?;
        let exists = match prp
            .get_acp(pb::GetAcpRequest {
                acp_id: id.to_owned(),
            })
            .await
        {
            Ok(rec) => {
                known = known.max(Some(rec.into_inner().revision));
                true
            }
            Err(s) if s.code() == tonic::Code::NotFound => false,
            Err(status) => {
                return Err(ApplyError::Refused {
                    what: id.to_owned(),
                    status,
                    applied: done,
                });
            }
        };
        existing.push(exists);
        if !exists && let Err(e) = check_create(acp) {
            invalid.extend(
                e.0.iter()
                    .map(|v| format!("{}{}: {}", bundle.label(i, Some(id)), v.path, v.message)),
            );
        }
        // The PRP's own rule for an update, known from the file.
        if exists
            && acp
                .self_privileges
                .as_ref()
                .is_some_and(|p| p.rules.is_empty())
        {
            invalid.push(format!(
                "{}pvs.acr: {}",
                bundle.label(i, Some(id)),
                crate::service::PVS_REMOVED
            ));
        }
        // The wire form too (a number protobuf cannot carry exactly).
        let mut with_id = acp.clone();
        with_id.resource_id.get_or_insert_with(|| id.to_owned());
        match acp_to_pb(&with_id) {
            Ok(wire) => wires.push(wire),
            Err(errors) => invalid.extend(
                errors
                    .iter()
                    .map(|e| format!("{}{}: {}", bundle.label(i, Some(id)), e.field, e.message)),
            ),
        }
    }
    // The resources' `acpi` too, as the PRP's put will judge it after the
    // ACPs are written: each ACP once, and each an ACP of the file or of
    // the PRP (or one the resource holds already). An entry naming a file's
    // ACP in another ID form is left to the PRP, which knows its CSE-ID.
    let in_file: Vec<&str> = bundle.acps.iter().filter_map(|a| a.id()).collect();
    for (i, r) in bundle.resources.iter().enumerate() {
        let acpi = r.acpi.as_deref().unwrap_or_default();
        let mut held: Option<Vec<String>> = None;
        // Each entry's ACP: its ID as the file or the PRP holds it.
        let mut named: Vec<Option<String>> = Vec::with_capacity(acpi.len());
        for (k, entry) in acpi.iter().enumerate() {
            let at = || format!("resources[{i}] ({}).acpi[{k}]", r.resource_id);
            let acp = if in_file.contains(&entry.as_str()) {
                Some(entry.clone())
            } else {
                let stored = prp
                    .get_acp(pb::GetAcpRequest {
                        acp_id: entry.clone(),
                    })
                    .await;
                match stored {
                    Ok(rec) => rec.into_inner().acp.and_then(|a| a.resource_id),
                    Err(s) if s.code() == tonic::Code::NotFound => None,
                    Err(status) => {
                        return Err(ApplyError::Refused {
                            what: entry.clone(),
                            status,
                            applied: done,
                        });
                    }
                }
            };
            let twice = acpi[..k]
                .iter()
                .zip(&named)
                .position(|(e, a)| e == entry || (acp.is_some() && *a == acp));
            named.push(acp.clone());
            if let Some(j) = twice {
                invalid.push(format!("{}: {entry} is listed already, as acpi[{j}]", at()));
                continue;
            }
            if acp.is_some() || in_file.contains(&cse_relative_tail(entry)) {
                continue;
            }
            if held.is_none() {
                let record = prp
                    .get_resource(pb::GetResourceRequest {
                        resource_id: r.resource_id.clone(),
                    })
                    .await;
                held = Some(match record {
                    Ok(rec) => rec
                        .into_inner()
                        .resource
                        .map(|r| r.acpi)
                        .unwrap_or_default(),
                    Err(_) => Vec::new(),
                });
            }
            let holds = held
                .iter()
                .flatten()
                .any(|h| cse_relative_tail(h) == cse_relative_tail(entry));
            if !holds {
                invalid.push(format!(
                    "{}: {entry} names no ACP of this file or of the PRP (of this CSE); \
                     create the ACP first",
                    at()
                ));
            }
        }
    }
    invalid.extend(same_name_under_one_parent(prp, bundle).await);
    if !invalid.is_empty() {
        return Err(ApplyError::Invalid(invalid));
    }
    for ((acp, exists), wire) in bundle.acps.iter().zip(existing).zip(wires) {
        let id = acp.id().ok_or(ApplyError::NoId)?.to_owned();
        let refused = |status, applied| ApplyError::Refused {
            what: id.clone(),
            status,
            applied,
        };
        // An existing ACP is updated (an update may omit pv or pvs); a new
        // one created, and updated after all if it appeared meanwhile.
        let created = if exists {
            Err(tonic::Status::already_exists(id.clone()))
        } else {
            prp.create_acp(pb::CreateAcpRequest {
                originator: originator.to_owned(),
                acp: Some(wire.clone()),
                role_ids: role_ids.to_vec(),
            })
            .await
        };
        match created {
            Ok(r) => {
                let r = r.into_inner();
                done.created += 1;
                known = Some(r.revision);
                done.revision = r.revision;
                done.version = r.version;
            }
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                let updated = match prp
                    .update_acp(pb::UpdateAcpRequest {
                        originator: originator.to_owned(),
                        acp: Some(wire),
                        role_ids: role_ids.to_vec(),
                    })
                    .await
                {
                    Ok(r) => r.into_inner(),
                    // No ACP to update: the ID the create found taken is
                    // a resource's or a dynamic ACP's, which its answer
                    // says (naming the field); the update's NOT_FOUND
                    // would hide it.
                    Err(u) if u.code() == tonic::Code::NotFound && !exists => {
                        return Err(refused(s, done));
                    }
                    Err(u) => return Err(refused(u, done)),
                };
                if known.is_some_and(|k| updated.revision <= k) {
                    done.unchanged += 1;
                } else {
                    done.updated += 1;
                }
                known = Some(updated.revision);
                done.revision = updated.revision;
                done.version = updated.version;
            }
            Err(s) => return Err(refused(s, done)),
        }
    }
    for r in &bundle.resources {
        // The revision before the put, when nothing was read yet: a
        // resource not stored yet is a change however the put is answered.
        if known.is_none()
            && let Ok(rec) = prp
                .get_resource(pb::GetResourceRequest {
                    resource_id: r.resource_id.clone(),
                })
                .await
        {
            known = Some(rec.into_inner().revision);
        }
        let record = prp
            .put_resource(pb::PutResourceRequest {
                originator: originator.to_owned(),
                resource: Some(resource_to_pb(r)),
                role_ids: role_ids.to_vec(),
            })
            .await
            .map_err(|status| ApplyError::Refused {
                what: format!("resource {}", r.resource_id),
                status,
                applied: done.clone(),
            })?
            .into_inner();
        if known.is_some_and(|k| record.revision <= k) {
            done.resources_unchanged += 1;
        } else {
            done.resources += 1;
        }
        known = Some(record.revision);
        done.revision = record.revision;
        done.version = record.version;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_acp_document_is_a_bundle_without_resources() {
        let b = Bundle::parse(
            r#"{"m2m:acp": {"ri": "acp1", "pv": {"acr": [{"acor": ["Cx"], "acop": 2}]},
                "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}"#,
        )
        .expect("parses");
        assert_eq!(b.acps.len(), 1);
        assert_eq!(b.acps[0].id(), Some("acp1"));
        assert!(b.resources.is_empty());
    }

    #[test]
    fn a_bundle_binds_resources() {
        let b = Bundle::parse(
            r#"{"acps": [{"m2m:acp": {"ri": "acp1", "pv": {"acr": [{"acor": ["Cx"], "acop": 2}]},
                "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}],
               "resources": [{"ri": "cnt1", "ty": 3, "acpi": ["acp1"]}]}"#,
        )
        .expect("parses");
        assert_eq!(b.resources.len(), 1);
        assert_eq!(b.resources[0].resource_id, "cnt1");
    }

    const ACP1: &str = r#"{"m2m:acp": {"ri": "acp1", "pv": {"acr": [{"acor": ["Cx"], "acop": 2}]},
        "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}"#;

    /// Errors name fields where they are in the file: no prefix in a
    /// document of one resource (as `authz check` names them), `m2m:acp[i]`
    /// in a list, `acps[i]` in a bundle (not `acps: m2m:acp[i]`, a path the
    /// file does not have).
    #[test]
    fn errors_name_the_acp_where_it_is_in_the_file() {
        let single = Bundle::parse(ACP1).expect("parses");
        assert_eq!(single.label(0, Some("acp1")), "");
        let list = Bundle::parse(&format!("[{ACP1}]")).expect("parses");
        assert_eq!(list.label(0, Some("acp1")), "m2m:acp[0] (acp1).");
        let bundle = Bundle::parse(&format!(r#"{{"acps": [{ACP1}]}}"#)).expect("parses");
        assert_eq!(bundle.label(0, Some("acp1")), "acps[0] (acp1).");

        let sp_relative = ACP1.replace(r#""ri": "acp1""#, r#""ri": "/cse/acp1""#);
        let e = Bundle::parse(&sp_relative).expect_err("not CSE-relative");
        assert!(
            e.to_string()
                .starts_with("ri: /cse/acp1 is not an ACP's own ID"),
            "{e}"
        );
        let bad_hour = ACP1.replace(
            r#""acop": 2}"#,
            r#""acop": 2, "acco": [{"actw": ["* * 25 * * * *"]}]}"#,
        );
        let e =
            Bundle::parse(&format!(r#"{{"acps": [{ACP1}, {bad_hour}]}}"#)).expect_err("hour 25");
        assert!(
            e.to_string()
                .contains("acps[1].pv.acr[0].acco[0].actw[0]: hour 25 out of range 0-23"),
            "{e}"
        );
        assert!(!e.to_string().contains("m2m:acp["), "{e}");
        // `acps` as an `m2m:acp` object: its path, not `acps[i]`.
        let wrapped = |inner: &str| format!(r#"{{"acps": {{"m2m:acp": {inner}}}}}"#);
        let body = |acp: &str| {
            acp.trim()
                .strip_prefix(r#"{"m2m:acp":"#)
                .and_then(|r| r.strip_suffix('}'))
                .expect("an m2m:acp document")
                .to_owned()
        };
        let list = Bundle::parse(&wrapped(&format!("[{}, {}]", body(ACP1), body(&bad_hour))))
            .expect_err("hour 25");
        assert!(
            list.to_string()
                .starts_with("acps.m2m:acp[1].pv.acr[0].acco[0].actw[0]: hour 25"),
            "{list}"
        );
        let single = Bundle::parse(&wrapped(&body(&bad_hour))).expect_err("hour 25");
        assert!(
            single
                .to_string()
                .starts_with("acps.m2m:acp.pv.acr[0].acco[0].actw[0]: hour 25"),
            "{single}"
        );
        let ok = Bundle::parse(&wrapped(&format!("[{}]", body(ACP1)))).expect("parses");
        assert_eq!(ok.label(0, Some("acp1")), "acps.m2m:acp[0] (acp1).");
    }

    /// A misspelled resource attribute would leave the resource without
    /// its `acpi`, under the default policy (TS-0003 7.1.1, spec notes
    /// 2.3): refused, naming it.
    #[test]
    fn an_unknown_resource_attribute_is_refused_with_its_name() {
        let e = Bundle::parse(&format!(
            r#"{{"acps": [{ACP1}], "resources": [{{"ri": "cnt1", "ty": 3, "acpii": ["acp1"]}}]}}"#
        ))
        .expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("resources[0]"), "{text}");
        assert!(text.contains("acpii"), "{text}");
    }

    #[test]
    fn an_unknown_bundle_key_is_refused() {
        let e = Bundle::parse(&format!(
            r#"{{"acps": [{ACP1}], "resourcez": [{{"ri": "cnt1", "ty": 3}}]}}"#
        ))
        .expect_err("refused");
        assert!(e.to_string().starts_with("resourcez: unknown field"), "{e}");
    }

    /// Two entries with one ID would be written one over the other.
    #[test]
    fn a_bundle_with_one_id_twice_is_refused_naming_both() {
        let e = Bundle::parse(&format!(r#"{{"acps": [{ACP1}, {ACP1}]}}"#)).expect_err("refused");
        assert_eq!(e.to_string(), "acps[1].ri: acp1 is also acps[0].ri");
        let e = Bundle::parse(
            r#"{"resources": [{"ri": "cnt1", "ty": 3}, {"ri": "cnt2", "ty": 3}, {"ri": "cnt1", "ty": 3}]}"#,
        )
        .expect_err("refused");
        assert_eq!(
            e.to_string(),
            "resources[2].ri: cnt1 is also resources[0].ri"
        );
        // A plain list of m2m:acp, or a JSON array of them: the same rule,
        // not "the last one wins".
        for doc in [
            format!(r#"{{"m2m:acp": [{}, {}]}}"#, inner(ACP1), inner(ACP1)),
            format!(r#"[{ACP1}, {ACP1}]"#),
        ] {
            let e = Bundle::parse(&doc).expect_err("refused");
            assert_eq!(
                e.to_string(),
                "m2m:acp[1].ri: acp1 is also m2m:acp[0].ri",
                "{doc}"
            );
        }
        // A resource may not take an ACP's ID (the PRP would refuse it
        // after the ACP was written), nor an ACP an SP-relative ID.
        let e = Bundle::parse(&format!(
            r#"{{"acps": [{ACP1}], "resources": [{{"ri": "acp1", "ty": 3}}]}}"#
        ))
        .expect_err("refused");
        assert_eq!(e.to_string(), "resources[0].ri: acp1 is also acps[0].ri");
        let e = Bundle::parse(&ACP1.replace(r#""ri": "acp1""#, r#""ri": "/id-in/acp1""#))
            .expect_err("refused");
        assert!(
            e.to_string()
                .starts_with("ri: /id-in/acp1 is not an ACP's own ID"),
            "{e}"
        );
    }

    /// The `m2m:acp` object of a document `{"m2m:acp": {...}}`.
    fn inner(doc: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(doc).expect("json");
        v["m2m:acp"].to_string()
    }

    /// Nothing written, no revision to report.
    #[test]
    fn applying_nothing_says_so() {
        assert_eq!(Applied::default().to_string(), "nothing applied");
    }

    /// A time window's day of week is 0-6 (spec notes, extended crontab);
    /// the error names the field under `acps`.
    #[test]
    fn an_invalid_acp_is_refused_with_its_field() {
        let e = Bundle::parse(
            r#"{"acps": [{"m2m:acp": {"ri": "acp1",
                "pv": {"acr": [{"acor": ["Cx"], "acop": 2, "acco": [{"actw": ["* * * * * 7 *"]}]}]},
                "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}]}"#,
        )
        .expect_err("refused");
        let text = e.to_string();
        assert!(
            text.starts_with("acps[0].pv.acr[0].acco[0].actw[0]: day-of-week 7"),
            "{text}"
        );
    }

    /// Two `acpi` for one resource: which one binds is a guess, so the
    /// bundle is refused (as `authz check` refuses duplicate keys).
    #[test]
    fn a_duplicate_key_is_refused() {
        let e = Bundle::parse(
            r#"{"resources": [{"ri": "cnt1", "ty": 3, "pi": "ae1", "acpi": ["a"], "acpi": ["b"]}]}"#,
        )
        .expect_err("refused");
        assert!(e.to_string().contains("duplicate key `acpi`"), "{e}");
    }

    #[test]
    fn a_bad_resource_and_bad_json_are_refused() {
        let e = Bundle::parse(r#"{"resources": [{"ri": "cnt1", "ty": "three"}]}"#)
            .expect_err("refused");
        assert!(e.to_string().contains("resources[0].ty"), "{e}");
        assert!(matches!(Bundle::parse("{"), Err(BundleError::Json(_))));
    }

    /// TS-0001 9.6.1.3.2: the default policy grants the creator alone, so
    /// `cr` must name one originator; the bundle says so before sending.
    #[test]
    fn a_creator_that_names_many_originators_is_refused_locally() {
        let e = Bundle::parse(
            r#"{"resources": [{"ri": "cnt1", "ty": 3, "cr": "Cok"},
                              {"ri": "cnt2", "ty": 3, "cr": "all", "cstn": "//sp.example.com"}]}"#,
        )
        .expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("resources[1].cr: "), "{text}");
        assert!(text.contains("resources[1].cstn: "), "{text}");
        assert!(!text.contains("resources[0]"), "{text}");
    }

    /// Spec notes §6.4: `daci` sits beside `acpi`, so a type without `acpi`
    /// (a contentInstance) has none; the bundle says so before sending.
    #[test]
    fn a_daci_on_a_type_without_acpi_is_refused_locally() {
        let e = Bundle::parse(
            r#"{"resources": [{"ri": "cnt1", "ty": 3, "daci": ["dac1"]},
                              {"ri": "cin1", "pi": "cnt1", "ty": 4, "daci": ["dac1"]}]}"#,
        )
        .expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("resources[1].daci: "), "{text}");
        assert!(!text.contains("resources[0]"), "{text}");
    }

    /// An entry of a resource's list is named by the list's short name and
    /// its index, as the file writes it.
    #[test]
    fn a_bad_list_entry_is_named_by_its_short_name_and_index() {
        let e = Bundle::parse(
            r#"{"resources": [{"ri": "dac1", "pi": "cse", "ty": 34, "dae": true,
                               "dap": ["http://das.example.com", "not a url"]}]}"#,
        )
        .expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains("resources[0].dap[1]: not an address"),
            "{text}"
        );
        assert!(!text.contains("dac_poa"), "{text}");
    }

    #[test]
    fn an_acp_id_compares_by_its_cse_relative_part() {
        for (id, tail) in [
            ("acp1", "acp1"),
            ("/mn-cse/acp1", "acp1"),
            ("//sp.example/mn-cse/acp1", "acp1"),
            ("//sp.example/mn-cse/ae1/acp1", "ae1/acp1"),
            ("/mn-cse/ae1/acp1", "ae1/acp1"),
        ] {
            assert_eq!(cse_relative_tail(id), tail, "{id}");
        }
    }

    #[test]
    fn applied_reads_like_the_cli_prints_it() {
        let a = Applied {
            created: 2,
            updated: 1,
            resources: 4,
            revision: 9,
            ..Applied::default()
        };
        assert_eq!(
            a.to_string(),
            "applied 3 ACP(s) (2 created, 1 updated) and 4 resource(s); PRP revision 9"
        );
        let some = Applied {
            unchanged: 2,
            resources_unchanged: 3,
            ..a.clone()
        };
        assert_eq!(
            some.to_string(),
            "applied 3 ACP(s) (2 created, 1 updated; 2 unchanged) and 4 resource(s) \
             (3 unchanged); PRP revision 9"
        );
        let none = Applied {
            unchanged: 2,
            resources_unchanged: 3,
            revision: 9,
            ..Applied::default()
        };
        assert_eq!(
            none.to_string(),
            "nothing changed: 2 ACP(s) and 3 resource(s) already as given; PRP revision 9"
        );
        assert_eq!(Applied::default().to_string(), "nothing applied");
    }
}
