//! The attributes a PRP write is authorized with: the `<group>`s the PIP
//! holds and those that list the writing originator.
//!
//! A write by anyone but the admin is decided by the engine over the
//! target's policies, as a PDP decides a request. An `acor` entry that the
//! PIP knows as a `<group>` is that group only (Decision 3): it admits the
//! group's members, not an originator whose ID is spelled like it. So,
//! with a PIP configured, every such write first asks it which IDs are
//! groups (`ListGroups`) and which of them list the originator
//! (`ResolveAttributes`); a PIP that does not answer refuses the write
//! (UNAVAILABLE), since no entry could be told a group or an ID. Without a
//! PIP, or from one without `ListGroups`, no ID is a group (as for a PDP
//! with `--pip off`).
//!
//! Not asked: members given as the resource ID of an `<AE>` or
//! `<remoteCSE>` (the PDP counts them; here they admit no write), and
//! roles (a write carries no Role-IDs).

use std::time::Duration;

use authz_core::attributes::{AttributeSource, InMemoryAttributes, NoAttributes};
use authz_core::ids::HostingContext;
use authz_proto::pb;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use tonic::Status;
use tonic::transport::Channel;

/// How long one question to the PIP may take.
const PIP_DEADLINE: Duration = Duration::from_secs(2);

/// Where a PRP learns the groups of a writer.
#[derive(Debug, Clone)]
pub(crate) struct WriterGroups {
    pip: Option<(String, PolicyInformationPointClient<Channel>)>,
}

/// The groups of one writer, as a decision's attribute source.
pub(crate) enum WriterAttributes {
    /// No PIP: no ID is a group.
    NoGroups(NoAttributes),
    /// What the PIP said.
    Listed(Box<InMemoryAttributes>),
}

impl WriterAttributes {
    /// As an attribute source.
    pub(crate) fn source(&self) -> &dyn AttributeSource {
        match self {
            Self::NoGroups(none) => none,
            Self::Listed(listed) => listed.as_ref(),
        }
    }
}

impl WriterGroups {
    /// Asking the PIP at `endpoint` (connected lazily), or no PIP.
    pub(crate) fn new(
        endpoint: Option<&str>,
        tls: &authz_proto::tls::ClientTls,
    ) -> Result<Self, String> {
        let pip = match endpoint {
            None => None,
            Some(url) => {
                let channel = authz_proto::endpoint::endpoint_with(url, tls)
                    .map_err(|e| format!("PIP endpoint {url}: {e}"))?
                    .connect_timeout(PIP_DEADLINE)
                    .connect_lazy();
                Some((url.to_owned(), PolicyInformationPointClient::new(channel)))
            }
        };
        Ok(Self { pip })
    }

    /// The attributes `originator` writes with (its absolute ID in
    /// `hosting`'s terms is what the engine asks about).
    pub(crate) async fn of(
        &self,
        originator: &str,
        hosting: &HostingContext,
    ) -> Result<WriterAttributes, Status> {
        let Some((endpoint, client)) = &self.pip else {
            return Ok(WriterAttributes::NoGroups(NoAttributes));
        };
        let unavailable = |e: Status| {
            Status::unavailable(format!(
                "PIP {endpoint} did not answer which acor entries are <group>s, \
                 so no entry can authorize this write (Decision 3): {}",
                e.message()
            ))
        };
        let mut client = client.clone();
        let groups = match client
            .list_groups(bounded(pb::ListGroupsRequest { ids_only: true }))
            .await
        {
            Ok(listing) => listing.into_inner().groups,
            // A PIP that cannot list its groups keeps no group IDs, as a
            // PDP reads it: no ID is a group.
            Err(e) if e.code() == tonic::Code::Unimplemented => {
                return Ok(WriterAttributes::NoGroups(NoAttributes));
            }
            Err(e) => return Err(unavailable(e)),
        };
        let containing = client
            .resolve_attributes(bounded(pb::ResolveAttributesRequest {
                originator: originator.to_owned(),
                ..Default::default()
            }))
            .await
            .map_err(unavailable)?
            .into_inner()
            .groups;
        let absolute = hosting
            .canonicalize(originator)
            .map_err(|e| Status::invalid_argument(format!("originator: {e}")))?;
        let mut attrs = InMemoryAttributes::new();
        for g in groups {
            let member = containing.contains(&g.group_id);
            attrs = attrs.with_group(&g.group_id, member.then_some(absolute.as_ref()));
        }
        Ok(WriterAttributes::Listed(Box::new(attrs)))
    }
}

/// `message` as a call the PIP must answer within [`PIP_DEADLINE`].
fn bounded<T>(message: T) -> tonic::Request<T> {
    let mut call = tonic::Request::new(message);
    call.set_timeout(PIP_DEADLINE);
    call
}
