//! `authz decide`: ask a running PDP (or `authz up`) about one request,
//! written in the short names `authz check` reads (with the tokens of
//! Dynamic Authorization as flags), and print its decision in the same
//! form, with the PDP's summary, `ati` and `tqf`.
//!
//! Exit codes: 0 when the PDP decided (Permit or Deny), 2 when the request
//! file is unreadable or invalid (the message names the file and field) or
//! the PDP refuses it as invalid, 1 when the PDP cannot be reached.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use authz_core::json;
use authz_proto::ConvertedRequest;
use authz_proto::convert::{decision_from_pb, decision_request_to_pb};
use authz_proto::pb;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_proto::tls::ClientTls;
use clap::Args;
use serde_json::Value;

use crate::check::render;

/// Arguments of `authz decide`.
#[derive(Args)]
pub struct DecideArgs {
    /// The PDP to ask (`authz up` serves one here by default).
    #[arg(long, default_value = "http://127.0.0.1:7171")]
    pdp: String,
    /// The request in oneM2M short names, as for `authz check` (fr, to, op, fu, rrt, spty, tgty, rids, rtm, oip, olo, authn, uacpi).
    #[arg(long, short = 'r')]
    request: PathBuf,
    /// A token (a oneM2M JWT, `tkns`) the originator presents; repeatable.
    #[arg(long = "token", value_name = "JWT")]
    tokens: Vec<String>,
    /// A Token-ID (`tids`) the originator presents; repeatable.
    #[arg(long = "token-id", value_name = "ID")]
    token_ids: Vec<String>,
    /// A Local-Token-ID (`ltids`) the originator presents; repeatable.
    #[arg(long = "local-token-id", value_name = "ID")]
    local_token_ids: Vec<String>,
    /// Ask for Token Request Information (`tqi`): a Deny then names the
    /// DASes to get tokens from (`tqf`).
    #[arg(long)]
    tqi: bool,
}

/// Why `decide` failed: bad input (exit 2) or no answer (exit 1).
enum Failure {
    Input(anyhow::Error),
    Unreachable(anyhow::Error),
}

/// Runs the command.
pub async fn run(args: &DecideArgs, tls: &ClientTls) -> ExitCode {
    match decide(args, tls).await {
        Ok(out) => {
            outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(Failure::Input(e)) => {
            eprintln!("error: {}", crate::error_text(&e));
            ExitCode::from(2)
        }
        Err(Failure::Unreachable(e)) => {
            let e = crate::explain_refusal(e, &args.pdp, tls).await;
            eprintln!("error: {}", crate::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// A request in short names (as `authz check` reads it) in its wire form,
/// timed now when it names no `rtm`; `"uacpi": true` becomes
/// `updates_acpi`.
pub(crate) fn short_request_to_pb(text: &str, explain: bool) -> Result<pb::DecisionRequest> {
    let request = json::request_from_json(text, chrono::Utc::now())?;
    Ok(decision_request_to_pb(&ConvertedRequest {
        request,
        hosting: None,
        tokens: Vec::new(),
        token_ids: Vec::new(),
        local_token_ids: Vec::new(),
        token_request_indicator: false,
        acp_ids: Vec::new(),
        explain,
        request_id: String::new(),
    }))
}

async fn decide(args: &DecideArgs, tls: &ClientTls) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(&args.request)
        .with_context(|| format!("{}: cannot read", args.request.display()))
        .map_err(Failure::Input)?;
    let mut wire = short_request_to_pb(&text, true)
        .map_err(|e| Failure::Input(anyhow!("{}: {e}", args.request.display())))?;
    // What Dynamic Authorization (TS-0003 7.3) adds to a request; the PDP
    // checks them (a malformed one is its invalid argument: exit 2).
    wire.tokens.clone_from(&args.tokens);
    wire.token_ids.clone_from(&args.token_ids);
    wire.local_token_ids.clone_from(&args.local_token_ids);
    wire.token_request_indicator = args.tqi;
    let target = authz_proto::endpoint::endpoint_with(&args.pdp, tls)
        .map_err(|e| Failure::Input(anyhow!("--pdp {}: {e}", args.pdp)))?
        .timeout(authz_proto::endpoint::CALL_TIMEOUT);
    let channel = authz_proto::endpoint::connect_within(target)
        .await
        .map_err(|why| {
            // The sources once each: why (a certificate not trusted, a
            // refused connection), not only "transport error".
            Failure::Unreachable(anyhow!("cannot connect to the PDP at {}: {why}", args.pdp))
        })?;
    let answer = PolicyDecisionPointClient::new(channel)
        .decide(wire)
        .await
        .map_err(|status| {
            // A status with a source was made on this side (the connection
            // failed); one without is the PDP's own answer.
            let (what, verb) = if std::error::Error::source(&status).is_some() {
                ("the call to the PDP at", "failed")
            } else {
                ("the PDP at", "answered")
            };
            let e = anyhow!(
                "{what} {} {verb}: {}",
                args.pdp,
                crate::policy::status_text(&status)
            );
            if status.code() == tonic::Code::InvalidArgument {
                Failure::Input(e)
            } else {
                Failure::Unreachable(e)
            }
        })?
        .into_inner();
    let decision = decision_from_pb(&answer).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        Failure::Unreachable(anyhow!(
            "the PDP's answer is not a decision: {}",
            list.join("; ")
        ))
    })?;
    let mut out = render(&decision);
    out["summary"] = Value::String(answer.summary);
    // `ati` (m2m:dynAuthLocalTokenIdAssignments) and `tqf`, in the short
    // names a CSE would answer them with.
    if !answer.assigned_token_ids.is_empty() {
        out["ati"] = Value::Array(
            answer
                .assigned_token_ids
                .iter()
                .map(|a| serde_json::json!({"lti": a.local_token_id, "tkid": a.token_id}))
                .collect(),
        );
    }
    if let Some(tqf) = &answer.token_request_info {
        out["tqf"] = authz_pep::response::token_request_info_json(tqf);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `"uacpi": true` (an Update of the target's acpi alone, TS-0001
    /// 9.6.1.3.2) reaches the PDP as `updates_acpi`; absent, it is false.
    #[test]
    fn uacpi_becomes_updates_acpi() {
        let wire = short_request_to_pb(
            r#"{"fr": "C1", "to": "cnt1", "op": 3, "uacpi": true}"#,
            true,
        )
        .expect("request");
        assert!(wire.updates_acpi);
        assert_eq!(wire.operation, pb::Operation::Update as i32);
        let wire =
            short_request_to_pb(r#"{"fr": "C1", "to": "cnt1", "op": 3}"#, true).expect("request");
        assert!(!wire.updates_acpi);
    }
}
