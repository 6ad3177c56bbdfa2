//! `authz policy`: manage a running PRP from policy files.
//!
//! `apply -f FILE` accepts an `m2m:acp` document (one resource or a list), or
//! a bundle `{"acps": [...], "resources": [...]}` where each resource is a
//! target the PDP will be asked about, in short names: `ri`, `pi`, `ty`,
//! `acpi`, `daci`, `cr`, `cstn`. ACPs that exist are updated; resources are
//! put (registered or replaced).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use authz_core::json;
use authz_proto::endpoint::CALL_TIMEOUT;
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_proto::tls::ClientTls;
use clap::{Args, Subcommand};
use tonic::transport::Channel;

/// Arguments of `authz policy`.
#[derive(Args)]
pub struct PolicyArgs {
    /// The PRP (or all-in-one) endpoint.
    #[arg(long, global = true, default_value = "http://127.0.0.1:7171")]
    prp: String,
    /// The originator the writes are made as: creating an ACP or a resource
    /// needs CREATE in the parent's applicable policies, changing or
    /// deleting an ACP its selfPrivileges (README, PRP).
    #[arg(long, global = true, default_value = "CAdmin")]
    originator: String,
    /// A Role-ID the originator claims (`issuerRelativeID@issuerID`;
    /// repeatable): a rule naming it grants the writes when the PRP's PIP
    /// verifies it for the originator (TS-0003 7.4.3).
    #[arg(long = "role-id", global = true, value_name = "ROLE_ID")]
    role_ids: Vec<String>,
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Create or update the ACPs (and register the resources) of a file.
    Apply {
        /// An m2m:acp document or a {"acps": [...], "resources": [...]} bundle.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Print one ACP as m2m:acp JSON.
    Get {
        /// The ACP ID.
        id: String,
    },
    /// Print every ACP as an m2m:acp list.
    List,
    /// Delete an ACP.
    Delete {
        /// The ACP ID.
        id: String,
    },
}

/// Runs `authz policy`; a failure to reach the PRP says why a PRP refused
/// the TLS handshake, when it did ([`crate::explain_refusal`]).
pub async fn run(args: PolicyArgs, tls: &ClientTls) -> Result<()> {
    let prp = args.prp.clone();
    match command(args, tls).await {
        Err(e) => {
            let e = crate::explain_refusal(e, &prp, tls).await;
            let text = authz_proto::endpoint::error_chain(e.as_ref());
            match authz_proto::endpoint::stalled(&text, &format!("the PRP at {prp}")) {
                Some(said) => Err(e.context(said)),
                None => Err(e),
            }
        }
        ok => ok,
    }
}

async fn command(args: PolicyArgs, tls: &ClientTls) -> Result<()> {
    for (i, r) in args.role_ids.iter().enumerate() {
        authz_core::ids::check_role_id(r)
            .map_err(|e| anyhow!("--role-id {r} (#{}): {e}", i + 1))?;
    }
    // A bad file is reported before the PRP is contacted, even when it is down.
    let bundle = match &args.command {
        PolicyCommand::Apply { file } => Some(read_bundle(file)?),
        _ => None,
    };
    let mut client = connect(&args.prp, tls).await?;
    match args.command {
        PolicyCommand::Apply { file } => {
            let bundle = bundle.ok_or_else(|| anyhow!("no bundle read"))?;
            let applied = apply_with_roles(&mut client, &args.originator, &args.role_ids, &bundle)
                .await
                .with_context(|| file.display().to_string())?;
            outln!("{applied}");
        }
        PolicyCommand::Get { id } => {
            let rec = client
                .get_acp(pb::GetAcpRequest { acp_id: id })
                .await
                .map_err(status_error)?
                .into_inner();
            let acp = rec
                .acp
                .ok_or_else(|| anyhow!("the PRP answered without an ACP"))?;
            let acp = authz_proto::convert::acp_from_pb(&acp).map_err(|e| anyhow!("{e:?}"))?;
            outln!("{}", serde_json::to_string_pretty(&json::to_value(&acp))?);
        }
        PolicyCommand::List => {
            // Page by page (the PRP sends about 4 MiB at a time).
            let mut acps = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_acps(pb::ListAcpsRequest { page_token })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                for acp in &page.acps {
                    acps.push(
                        authz_proto::convert::acp_from_pb(acp).map_err(|e| anyhow!("{e:?}"))?,
                    );
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            outln!(
                "{}",
                serde_json::to_string_pretty(&json::list_to_value(&acps))?
            );
        }
        PolicyCommand::Delete { id } => {
            let r = client
                .delete_acp(pb::DeleteAcpRequest {
                    role_ids: args.role_ids,
                    originator: args.originator,
                    acp_id: id.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            outln!("deleted {id} (revision {})", r.revision);
        }
    }
    Ok(())
}

/// Connects to a PRP, verifying an `https://` one as `tls` says; each call
/// ends after [`CALL_TIMEOUT`].
pub async fn connect(
    endpoint: &str,
    tls: &ClientTls,
) -> Result<PolicyRetrievalPointClient<Channel>> {
    let target = authz_proto::endpoint::endpoint_with(endpoint, tls)
        .map_err(|e| anyhow!("--prp {endpoint}: {e}"))?
        .timeout(CALL_TIMEOUT);
    let channel = authz_proto::endpoint::connect_within(target)
        .await
        .map_err(|why| anyhow!("cannot connect to the PRP at {endpoint}: {why}"))?;
    // A store's listing may exceed gRPC's default 4 MiB, as the PRP
    // accepts writes up to that each; the PDP's replica reads as much.
    Ok(PolicyRetrievalPointClient::new(channel)
        .max_decoding_message_size(authz_proto::convert::MAX_DECODING_MESSAGE_BYTES))
}

/// Reads an `m2m:acp` document or a bundle, validating everything locally
/// first so that errors name the file and field before anything is sent.
pub fn read_bundle(path: &Path) -> Result<Bundle> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Bundle::parse(&text).with_context(|| path.display().to_string())
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow!("{}", status_text(&s))
}

pub use authz_prp::bundle::{Bundle, apply, apply_with_roles, status_text};
