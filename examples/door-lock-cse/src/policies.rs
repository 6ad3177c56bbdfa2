//! The example's policy bundle and how it gets into the PRP.
//!
//! A bundle is the format of `authz policy apply` and
//! `examples/door-lock-demo.json`: `{"acps": [m2m:acp...], "resources":
//! [{"ri", "pi", "ty", "acpi", "cr"}...]}`. [`Bundle::parse`] validates
//! every ACP with the core engine first, so a mistake names the field before
//! anything is sent; [`apply`] then creates each ACP (updating it when it
//! exists) and puts each resource, through the PRP's gRPC API with the admin
//! originator, and returns the PRP revision of the last write.

use anyhow::{Context, Result, anyhow, bail};
use authz_core::AccessControlPolicy;
use authz_core::json;
use authz_core::resources::Resource;
use authz_proto::convert::{acp_to_pb, resource_to_pb};
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use serde_json::Value;
use tonic::transport::Channel;

/// The example's own policies: `examples/door-lock-cse/policies.json`.
pub const DEFAULT_POLICIES: &str = include_str!("../policies.json");

/// ACPs and the resources they protect.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The ACPs.
    pub acps: Vec<AccessControlPolicy>,
    /// The resources (CSEBase, AEs, containers).
    pub resources: Vec<Resource>,
}

impl Bundle {
    /// Parses and validates a bundle.
    pub fn parse(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).context("not valid JSON")?;
        let acps = match value.get("acps") {
            Some(a) => {
                json::parse_and_validate(&a.to_string()).map_err(|e| anyhow!("acps: {e}"))?
            }
            None => bail!("a bundle needs \"acps\""),
        };
        let resources = match value.get("resources") {
            Some(r) => json::deserialize_at::<Vec<Resource>>("resources", r.clone())
                .map_err(|e| anyhow!("{e}"))?,
            None => bail!("a bundle needs \"resources\""),
        };
        Ok(Self { acps, resources })
    }
}

/// Connects to the PRP at `endpoint`.
pub async fn connect(endpoint: &str) -> Result<PolicyRetrievalPointClient<Channel>> {
    let channel = Channel::from_shared(endpoint.to_owned())
        .with_context(|| format!("PRP {endpoint}: not a URI"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to the PRP at {endpoint}"))?;
    Ok(PolicyRetrievalPointClient::new(channel))
}

/// Creates or updates every ACP and puts every resource as `originator`;
/// returns the PRP revision after the last write.
pub async fn apply(
    prp: &mut PolicyRetrievalPointClient<Channel>,
    originator: &str,
    bundle: &Bundle,
) -> Result<u64> {
    let mut revision = 0;
    for acp in &bundle.acps {
        let id = acp
            .id()
            .ok_or_else(|| anyhow!("an ACP has neither ri nor rn"))?
            .to_owned();
        let mut acp = acp.clone();
        acp.resource_id.get_or_insert_with(|| id.clone());
        let wire = acp_to_pb(&acp).map_err(|e| anyhow!("{id}: {e:?}"))?;
        let created = prp
            .create_acp(pb::CreateAcpRequest {
                originator: originator.to_owned(),
                acp: Some(wire.clone()),
            })
            .await;
        revision = match created {
            Ok(r) => r.into_inner().revision,
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                prp.update_acp(pb::UpdateAcpRequest {
                    originator: originator.to_owned(),
                    acp: Some(wire),
                })
                .await
                .map_err(|s| anyhow!("{id}: {:?}: {}", s.code(), s.message()))?
                .into_inner()
                .revision
            }
            Err(s) => bail!("{id}: {:?}: {}", s.code(), s.message()),
        };
    }
    for r in &bundle.resources {
        revision = prp
            .put_resource(pb::PutResourceRequest {
                originator: originator.to_owned(),
                resource: Some(resource_to_pb(r)),
            })
            .await
            .map_err(|s| {
                anyhow!(
                    "resource {}: {:?}: {}",
                    r.resource_id,
                    s.code(),
                    s.message()
                )
            })?
            .into_inner()
            .revision;
    }
    Ok(revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_bundle_is_valid() {
        let b = Bundle::parse(DEFAULT_POLICIES).expect("bundle");
        let ids: Vec<_> = b.acps.iter().filter_map(|a| a.id()).collect();
        assert_eq!(ids, ["acpHome", "acpFrontDoor", "acpBackDoor"]);
        assert!(b.resources.iter().any(|r| r.resource_id == "frontDoor"));
    }
}
