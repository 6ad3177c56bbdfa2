//! `authz policy`: manage a running PRP from policy files.
//!
//! `apply -f FILE` accepts an `m2m:acp` document (one resource or a list), or
//! a bundle `{"acps": [...], "resources": [...]}` where each resource is a
//! target the PDP will be asked about, in short names: `ri`, `pi`, `ty`,
//! `acpi`, `daci`, `cr`, `cstn`. ACPs that exist are updated; resources are
//! put (registered or replaced).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use authz_core::json;
use authz_core::resources::Resource;
use authz_proto::convert::acp_to_pb;
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use clap::{Args, Subcommand};
use serde_json::Value;
use tonic::transport::Channel;

/// Arguments of `authz policy`.
#[derive(Args)]
pub struct PolicyArgs {
    /// The PRP (or all-in-one) endpoint.
    #[arg(long, global = true, default_value = "http://127.0.0.1:7171")]
    prp: String,
    /// The originator the writes are made as (checked against selfPrivileges).
    #[arg(long, global = true, default_value = "CAdmin")]
    originator: String,
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

/// Runs `authz policy`.
pub async fn run(args: PolicyArgs) -> Result<()> {
    let mut client = connect(&args.prp).await?;
    match args.command {
        PolicyCommand::Apply { file } => {
            let bundle = read_bundle(&file)?;
            let summary = apply(&mut client, &args.originator, &bundle).await?;
            println!("{summary}");
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
            println!("{}", serde_json::to_string_pretty(&json::to_value(&acp))?);
        }
        PolicyCommand::List => {
            let list = client
                .list_acps(pb::ListAcpsRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            let acps = list
                .acps
                .iter()
                .map(authz_proto::convert::acp_from_pb)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("{e:?}"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json::list_to_value(&acps))?
            );
        }
        PolicyCommand::Delete { id } => {
            let r = client
                .delete_acp(pb::DeleteAcpRequest {
                    originator: args.originator,
                    acp_id: id.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("deleted {id} (revision {})", r.revision);
        }
    }
    Ok(())
}

/// Connects to a PRP.
pub async fn connect(endpoint: &str) -> Result<PolicyRetrievalPointClient<Channel>> {
    let channel = Channel::from_shared(endpoint.to_owned())
        .with_context(|| format!("--prp {endpoint}: not a URI"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to the PRP at {endpoint}"))?;
    Ok(PolicyRetrievalPointClient::new(channel))
}

/// ACPs and resources to apply.
pub struct Bundle {
    acps: Vec<authz_core::AccessControlPolicy>,
    resources: Vec<Resource>,
}

/// Reads an `m2m:acp` document or a bundle, validating everything locally
/// first so that errors name the file and field before anything is sent.
pub fn read_bundle(path: &Path) -> Result<Bundle> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    parse_bundle(&text).with_context(|| path.display().to_string())
}

/// Parses the text of an `m2m:acp` document or a bundle.
pub fn parse_bundle(text: &str) -> Result<Bundle> {
    let value: Value = serde_json::from_str(text).context("not valid JSON")?;
    let is_bundle = value
        .as_object()
        .is_some_and(|o| o.contains_key("acps") || o.contains_key("resources"));
    if !is_bundle {
        return Ok(Bundle {
            acps: json::parse_and_validate(text)?,
            resources: Vec::new(),
        });
    }
    let acps = match value.get("acps") {
        Some(a) => json::parse_and_validate(&a.to_string()).map_err(|e| anyhow!("acps: {e}"))?,
        None => Vec::new(),
    };
    let resources = match value.get("resources") {
        Some(r) => json::deserialize_at::<Vec<Resource>>("resources", r.clone())
            .map_err(|e| anyhow!("{e}"))?,
        None => Vec::new(),
    };
    Ok(Bundle { acps, resources })
}

/// Creates (or updates) every ACP, then puts every resource; returns a summary.
pub async fn apply(
    client: &mut PolicyRetrievalPointClient<Channel>,
    originator: &str,
    bundle: &Bundle,
) -> Result<String> {
    let (mut created, mut updated) = (0, 0);
    let mut revision = 0;
    for acp in &bundle.acps {
        let id = acp
            .id()
            .ok_or_else(|| anyhow!("an ACP has neither ri nor rn"))?;
        let mut acp = acp.clone();
        acp.resource_id.get_or_insert_with(|| id.to_owned());
        let pb_acp = acp_to_pb(&acp).map_err(|e| anyhow!("{id}: {e:?}"))?;
        let create = client
            .create_acp(pb::CreateAcpRequest {
                originator: originator.to_owned(),
                acp: Some(pb_acp.clone()),
            })
            .await;
        revision = match create {
            Ok(r) => {
                created += 1;
                r.into_inner().revision
            }
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                updated += 1;
                client
                    .update_acp(pb::UpdateAcpRequest {
                        originator: originator.to_owned(),
                        acp: Some(pb_acp),
                    })
                    .await
                    .map_err(|s| anyhow!("{id}: {}", status_text(&s)))?
                    .into_inner()
                    .revision
            }
            Err(s) => bail!("{id}: {}", status_text(&s)),
        };
    }
    for r in &bundle.resources {
        revision = client
            .put_resource(pb::PutResourceRequest {
                originator: originator.to_owned(),
                resource: Some(authz_proto::convert::resource_to_pb(r)),
            })
            .await
            .map_err(|s| anyhow!("resource {}: {}", r.resource_id, status_text(&s)))?
            .into_inner()
            .revision;
    }
    Ok(format!(
        "applied {} ACP(s) ({created} created, {updated} updated) and {} resource(s); PRP revision {revision}",
        bundle.acps.len(),
        bundle.resources.len()
    ))
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow!("{}", status_text(&s))
}

/// A status with its field violations, one per line.
pub fn status_text(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let mut out = format!("{:?}: {}", s.code(), s.message());
    if let Some(bad) = s.get_details_bad_request() {
        for v in bad.field_violations {
            out.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    out
}
