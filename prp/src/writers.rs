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
//! A write may claim Role-IDs (`role_ids`): the PIP verifies them in the
//! same call (TS-0003 7.4.3), and a verified one counts as the writer's
//! role; without a PIP, none does.
//!
//! Not asked: members given as the resource ID of an `<AE>` or
//! `<remoteCSE>` (the PDP counts them; here they admit no write).

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

/// The groups of one writer, as a decision's attribute source, and the
/// Role-IDs the PIP verified for it.
pub(crate) struct WriterAttributes {
    groups: Groups,
    roles: Vec<String>,
}

enum Groups {
    /// No PIP: no ID is a group.
    None(NoAttributes),
    /// What the PIP said.
    Listed(Box<InMemoryAttributes>),
}

impl WriterAttributes {
    /// No groups and no roles (the admin's, or without a PIP).
    pub(crate) fn none() -> Self {
        Self {
            groups: Groups::None(NoAttributes),
            roles: Vec::new(),
        }
    }

    /// As an attribute source.
    pub(crate) fn source(&self) -> &dyn AttributeSource {
        match &self.groups {
            Groups::None(none) => none,
            Groups::Listed(listed) => listed.as_ref(),
        }
    }

    /// The claimed Role-IDs the PIP verified for the writer (TS-0003
    /// 7.4.3): they count as its roles.
    pub(crate) fn verified_roles(&self) -> &[String] {
        &self.roles
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
                // Its group listing grows with the groups it holds.
                let client = PolicyInformationPointClient::new(channel)
                    .max_decoding_message_size(authz_proto::convert::MAX_DECODING_MESSAGE_BYTES);
                Some((url.to_owned(), client))
            }
        };
        Ok(Self { pip })
    }

    /// The attributes `originator` writes with (its absolute ID in
    /// `hosting`'s terms is what the engine asks about).
    pub(crate) async fn of(
        &self,
        originator: &str,
        role_ids: &[String],
        hosting: &HostingContext,
    ) -> Result<WriterAttributes, Status> {
        let Some((endpoint, client)) = &self.pip else {
            return Ok(WriterAttributes::none());
        };
        let unavailable = |e: Status| {
            Status::unavailable(format!(
                "PIP {endpoint} did not answer which acor entries are <group>s, \
                 so no entry can authorize this write (Decision 3): {}",
                authz_proto::endpoint::status_message(&e)
            ))
        };
        let mut client = client.clone();
        let groups = match client
            .list_groups(bounded(pb::ListGroupsRequest { ids_only: true }))
            .await
        {
            Ok(listing) => Some(listing.into_inner().groups),
            // A PIP that cannot list its groups keeps no group IDs, as a
            // PDP reads it: no ID is a group.
            Err(e) if e.code() == tonic::Code::Unimplemented => None,
            Err(e) => return Err(unavailable(e)),
        };
        if groups.is_none() && role_ids.is_empty() {
            return Ok(WriterAttributes::none());
        }
        let resolved = client
            .resolve_attributes(bounded(pb::ResolveAttributesRequest {
                originator: originator.to_owned(),
                role_ids: role_ids.to_vec(),
                ..Default::default()
            }))
            .await
            .map_err(unavailable)?
            .into_inner();
        // A claimed role counts when the PIP verifies it: issued by a
        // trusted authority to this originator, valid now (TS-0003 7.4.3).
        let roles = resolved
            .roles
            .into_iter()
            .filter(|v| v.verified && role_ids.contains(&v.role_id))
            .map(|v| v.role_id)
            .collect();
        let Some(groups) = groups else {
            return Ok(WriterAttributes {
                groups: Groups::None(NoAttributes),
                roles,
            });
        };
        let absolute = hosting
            .canonicalize(originator)
            .map_err(|e| Status::invalid_argument(format!("originator: {e}")))?;
        let mut attrs = InMemoryAttributes::new();
        for g in groups {
            let member = resolved.groups.contains(&g.group_id);
            attrs = attrs.with_group(&g.group_id, member.then_some(absolute.as_ref()));
        }
        Ok(WriterAttributes {
            groups: Groups::Listed(Box::new(attrs)),
            roles,
        })
    }
}

/// `message` as a call the PIP must answer within [`PIP_DEADLINE`].
fn bounded<T>(message: T) -> tonic::Request<T> {
    let mut call = tonic::Request::new(message);
    call.set_timeout(PIP_DEADLINE);
    call
}
