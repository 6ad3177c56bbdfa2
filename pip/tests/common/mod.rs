//! What the PIP's integration tests share: a PIP served over gRPC on
//! 127.0.0.1, at a port the OS chooses, and the group questions several
//! of them ask.

// Each test crate compiles this module and uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use authz_pip::PipConfig;
use authz_proto::pb;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_tests::process::{HANG_LIMIT, within};
use authz_tests::serving::{Served, serve};
use tokio_stream::StreamExt;
use tonic::Streaming;
use tonic::transport::Channel;

/// A running PIP and a client of it.
pub struct Running {
    /// Connected to it.
    pub client: PolicyInformationPointClient<Channel>,
    /// The service, to shut its store down.
    pub service: authz_pip::PipService,
    server: Served,
}

impl Running {
    /// The PIP of `config`, served over gRPC on 127.0.0.1.
    pub async fn start(config: &PipConfig) -> Self {
        let service = authz_pip::build(config).await.expect("build");
        let server = serve(authz_pip::router(service.clone()).await.expect("router")).await;
        Self {
            client: PolicyInformationPointClient::new(server.channel().await),
            service,
            server,
        }
    }

    /// Stops it and waits until its store is closed.
    pub async fn stop(self) {
        self.service.shutdown();
        self.server.stop().await;
    }
}

/// Every group answer is awaited under this bound: a membership walk that
/// did not end (a cycle) fails the test rather than hanging it.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The groups the PIP says contain `originator` (what the PDP and the PRP
/// ask, `ResolveAttributes`).
pub async fn groups_of(
    c: &mut PolicyInformationPointClient<Channel>,
    originator: &str,
) -> Vec<String> {
    let call = c.resolve_attributes(pb::ResolveAttributesRequest {
        originator: originator.into(),
        ..Default::default()
    });
    tokio::time::timeout(ANSWER_WITHIN, call)
        .await
        .expect("ResolveAttributes answers in time")
        .expect("resolve")
        .into_inner()
        .groups
}

/// `CheckMembership`: (is a group, is a member).
pub async fn is_member(
    c: &mut PolicyInformationPointClient<Channel>,
    group_id: &str,
    originator: &str,
) -> (bool, bool) {
    let call = c.check_membership(pb::CheckMembershipRequest {
        group_id: group_id.into(),
        originator: originator.into(),
    });
    let m = tokio::time::timeout(ANSWER_WITHIN, call)
        .await
        .expect("CheckMembership answers in time")
        .expect("check")
        .into_inner();
    (m.is_group, m.is_member)
}

/// The next change on a `Watch` stream, within [`HANG_LIMIT`]: a change
/// that never comes fails the test rather than hanging it.
pub async fn next_event(stream: &mut Streaming<pb::AttributeChange>) -> pb::AttributeChange {
    within(stream.next(), HANG_LIMIT, || "a watch event".into())
        .await
        .expect("event")
        .expect("ok")
}
