//! `authz check`: load `m2m:acp` files as the target's applicable ACP set,
//! decide a request given in short names, print the decision. The files'
//! `pv` decide, or their `pvs` for a request with `"uacpi": true` (an
//! Update of the target's acpi alone, TS-0001 9.6.1.3.2) and for a request
//! on one of the loaded ACPs.
//!
//! Exit codes: 0 when a decision was printed (Permit or Deny), 2 when an
//! input file is unreadable or invalid (the message names the file and field).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use authz_core::ids::canonical_resource_id;
use authz_core::json::{self, JsonError};
use authz_core::{
    Applicable, CompiledAcp, DecideOptions, Decision, InMemoryAttributes, PrivilegeKind, decide,
};
use clap::Args;
use serde_json::{Value, json};

/// Arguments of `authz check`.
#[derive(Args)]
pub struct CheckArgs {
    /// m2m:acp JSON file(s): one resource or a list each. Together they are the target's applicable ACPs.
    #[arg(long = "policy", short = 'p', required = true, num_args = 1..)]
    policies: Vec<PathBuf>,
    /// The request in oneM2M short names (fr, to, op, fu, rrt, spty, tgty, rids, rtm, oip, olo, authn), and uacpi (an Update of acpi alone, judged by the ACPs' pvs).
    #[arg(long, short = 'r')]
    request: PathBuf,
    /// The hosting CSE's CSE-ID, used to make originator IDs absolute.
    #[arg(long, default_value = "/cse")]
    cse_id: String,
    /// The hosting CSE's SP-ID.
    #[arg(long, default_value = "//m2m.local")]
    sp_id: String,
    /// Explain the decision: the permitting rule, or why each rule naming the originator failed.
    #[arg(long)]
    explain: bool,
}

/// Runs the command; bad input is reported on stderr with exit code 2.
pub fn run(args: &CheckArgs) -> ExitCode {
    match check(args) {
        Ok(out) => {
            outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", crate::error_text(&e));
            ExitCode::from(2)
        }
    }
}

fn check(args: &CheckArgs) -> Result<Value> {
    let ctx = crate::hosting_context(&args.sp_id, &args.cse_id)?;
    let mut compiled: Vec<(Option<String>, CompiledAcp)> = Vec::new();
    // Where each of `compiled` came from: its file, and its position
    // there when the file holds several.
    let mut origins: Vec<String> = Vec::new();
    // The field each ACP's label came from: `ri`, else `rn`.
    let mut label_fields: Vec<&str> = Vec::new();
    // Each ACP's resource name (see below).
    let mut names: Vec<Option<String>> = Vec::new();
    for path in &args.policies {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let acps = json::parse_and_validate(&text).map_err(|e| file_error(path, e))?;
        let listed = acps.len() > 1 || json::is_list(&text);
        if acps.is_empty() {
            // `[]` or `{"m2m:acp": []}`: most likely not the file meant.
            return Err(anyhow!("{}: holds no m2m:acp resource", path.display()));
        }
        for (i, acp) in acps.iter().enumerate() {
            let id: Arc<str> = match acp.id() {
                Some(id) => id.into(),
                None => format!("{}#{i}", path.display()).into(),
            };
            let c =
                CompiledAcp::compile(id, acp).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            // Known here, the hosting CSE makes some entries too long to
            // match anyone, as a PRP refuses them.
            authz_core::compile::check_entry_lengths(acp, &ctx).map_err(|e| {
                // Which resource of a list, as the file's other errors say.
                let e = if listed {
                    e.prefixed(&format!("m2m:acp[{i}]."))
                } else {
                    e
                };
                anyhow!("{}: {e}", path.display())
            })?;
            // The ID a request names it by: its `ri`, else its `rn`, under
            // which the PRP stores an ACP without `ri` too.
            compiled.push((acp.id().map(str::to_owned), c));
            origins.push(if acps.len() > 1 {
                format!("{}[{i}]", path.display())
            } else {
                path.display().to_string()
            });
            // The name a structured address reaches it by: its `rn`, which
            // a CSE makes its `ri` when none is given.
            names.push(acp.resource_name.clone().or_else(|| {
                acp.resource_id
                    .as_deref()
                    .map(|ri| ri.rsplit('/').next().unwrap_or(ri).to_owned())
            }));
            label_fields.push(match (&acp.resource_id, &acp.resource_name) {
                (Some(_), _) => "ri",
                (None, Some(_)) => "rn",
                (None, None) => "position",
            });
        }
    }
    // One label names one ACP: a request on an ACP is judged by the
    // selfPrivileges of *that* ACP (TS-0003 7.1.1), and decisions and
    // explanations name an ACP by its label (ri, else rn), so two ACPs with
    // one label, in whatever ID form, would decide by file order or be
    // told apart by nobody.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (n, (_, acp)) in compiled.iter().enumerate() {
        let label = acp.id();
        let key = canonical_resource_id(label, &ctx).unwrap_or_else(|_| label.to_string());
        if let Some(&(_, first)) = seen.iter().find(|(k, _)| *k == key) {
            let kind = if label_fields[n] == "ri" && label_fields[first] == "ri" {
                "one resource ID names one ACP"
            } else {
                "an ACP is named by its ri, else its rn, in decisions and explanations, so each names one ACP; give each its own ri"
            };
            return Err(anyhow!(
                "{}: {}: '{label}' names an ACP loaded from {} ({} '{}') already: {kind}",
                origins[n],
                label_fields[n],
                origins[first],
                label_fields[first],
                compiled[first].1.id(),
            ));
        }
        seen.push((key, n));
    }
    let text = std::fs::read_to_string(&args.request)
        .with_context(|| format!("{}: cannot read", args.request.display()))?;
    let mut request = json::request_from_json(&text, chrono::Utc::now())
        .map_err(|e| file_error(&args.request, e))?;
    // Judged in absolute form, which must be a valid ID too.
    if let Err(e) = ctx.check_absolute_length(&request.originator) {
        return Err(anyhow!("{}: fr: {e}", args.request.display()));
    }

    // TS-0001 10.2.3.1: a request on an ACP is judged by that ACP's pvs
    // only, whichever form (CSE-relative, SP-relative, absolute) names it.
    let target = canonical_resource_id(&request.target, &ctx).ok();
    let target_acp = compiled.iter().find(|(ri, _)| {
        ri.as_deref()
            .and_then(|ri| canonical_resource_id(ri, &ctx).ok())
            .is_some_and(|ri| Some(&ri) == target.as_ref())
    });
    if let Some((ri, _)) = target_acp
        && request.updates_acpi
    {
        // An ACP has no acpi (spec notes §2.3).
        return Err(anyhow!(
            "{}: uacpi: the target {} is an ACP, which has no acpi to change",
            args.request.display(),
            ri.as_deref().unwrap_or_default()
        ));
    }
    // A structured address (`cb/ae/x`, `-/x`: more than one segment under
    // the hosting CSE) is no resource ID, which is what `authz check`
    // compares with an ACP's `ri`. One ending in a loaded ACP's name may be
    // a request on that ACP, which only its pvs may judge: refused rather
    // than judged by the loaded ACPs' pv (TS-0003 7.1.1).
    if target_acp.is_none()
        && let Some(rest) = ctx.cse_relative(&request.target)
        && let Some((_, last)) = rest.rsplit_once('/')
        && let Some(n) = names.iter().position(|name| name.as_deref() == Some(last))
    {
        return Err(anyhow!(
            "{}: to: '{}' is a structured address ending in '{last}', the name of the ACP loaded from {}; authz check takes resource IDs: to judge a request on that ACP (by its pvs, TS-0003 7.1.1), give its {} ('{}')",
            args.request.display(),
            request.target,
            origins[n],
            // Without `ri`, the ID it is held under is its `rn`.
            label_fields[n],
            compiled[n].1.id(),
        ));
    }
    match (target_acp, request.target_type) {
        (Some((ri, _)), Some(ty)) if ty != 1 => {
            return Err(anyhow!(
                "{}: tgty: the target is the loaded ACP {}, of resource type 1, not {ty}",
                args.request.display(),
                ri.as_deref().unwrap_or_default()
            ));
        }
        (None, Some(1)) => {
            // An ACP has no acpi (spec notes §2.3): the loaded ACPs cannot
            // be its applicable set; only its own pvs decide (TS-0001
            // 10.2.3.1), and they are not loaded.
            return Err(anyhow!(
                "{}: tgty: the target {} is an ACP (tgty 1), but no loaded ACP has that ri (or rn, without ri); a request on an ACP is decided by that ACP's own pvs (TS-0001 10.2.3.1), so load it",
                args.request.display(),
                request.target
            ));
        }
        _ => {}
    }
    if target_acp.is_some() && request.target_type.is_none() {
        // The target is one of the loaded ACPs, so its type is known:
        // accessControlPolicy (ty 1), what an `acod` `ty` of its pvs is
        // compared with (TS-0003 7.1.5 res_resourceType).
        request.target_type = Some(1);
    }
    let applicable: Vec<Applicable<'_>> = match target_acp {
        Some((_, acp)) => vec![Applicable {
            acp,
            kind: PrivilegeKind::SelfPrivileges,
        }],
        // The loaded ACPs are the target's acpi: their pv decide, and
        // for a change of that acpi their pvs (TS-0001 9.6.1.3.2).
        None => compiled
            .iter()
            .map(|(_, acp)| Applicable {
                acp,
                kind: if request.updates_acpi {
                    PrivilegeKind::SelfPrivileges
                } else {
                    PrivilegeKind::Privileges
                },
            })
            .collect(),
    };
    // The CLI has no role repository: claimed rids are taken as verified.
    let attributes = InMemoryAttributes {
        trust_claimed_roles: true,
        ..InMemoryAttributes::default()
    };
    let options = DecideOptions {
        explain: args.explain,
        granted_roles: &[],
    };
    let decision = decide(&request, &ctx, &applicable, &attributes, &options);
    let mut out = render(&decision);
    if let Some(explanation) = out.get_mut("explanation") {
        // Which rule sets decided: on an ACP only its pvs (TS-0001
        // 10.2.3.1), which a Deny alone would not tell its author.
        explanation["evaluated"] = json!(
            applicable
                .iter()
                .map(|a| format!("{}.{}", a.acp.id(), a.kind.short_name()))
                .collect::<Vec<_>>()
        );
    }
    Ok(out)
}

fn file_error(path: &std::path::Path, e: JsonError) -> anyhow::Error {
    anyhow!("{}: {e}", path.display())
}

/// The decision in short names: `dec` (m2m:authorizationDecision), `sus`
/// (m2m:authorizationStatus), plus what decided it.
pub(crate) fn render(d: &Decision) -> Value {
    let mut out = json!({ "dec": d.effect.code(), "sus": d.status.code() });
    if let Some(rule) = &d.permitted_by {
        out["permittedBy"] = json!({ "acp": &*rule.acp, "privileges": rule.privileges.short_name(), "acr": rule.rule });
    }
    if !d.missing.is_empty() {
        out["missing"] = json!(
            d.missing
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
    if let Some(e) = &d.explanation {
        let mut expl = json!({ "decision": d.effect, "status": d.status });
        if let Some(m) = &e.matched_originator {
            expl["matchedOriginator"] = json!(m);
        }
        if !e.failed_rules.is_empty() {
            expl["failedRules"] = json!(
                e.failed_rules
                    .iter()
                    .map(|f| json!({
                        "rule": f.rule.to_string(),
                        "matchedOriginator": f.matched_originator,
                        "failed": f.failed,
                        "reason": f.failed.to_string(),
                    }))
                    .collect::<Vec<_>>()
            );
        }
        if e.more_failed_rules > 0 {
            expl["moreFailedRules"] = json!(e.more_failed_rules);
        }
        out["explanation"] = expl;
    }
    out
}
