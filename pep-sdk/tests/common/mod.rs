//! A real PDP for the PEP's tests: one ACP on one resource, served over
//! gRPC on 127.0.0.1 with a port the OS chooses.

// Each test binary uses some of these.
#![allow(dead_code)]

use authz_pdp::Pdp;
use authz_proto::pb;
use tokio::net::TcpListener;

/// Feeds `pdp` a snapshot holding `acp1`, whose `pv` is `rule` and whose
/// `pvs` gives `owner` everything, linked by `resource` (of type `ty`,
/// created by `owner`), and serves it. Returns its URL.
pub async fn serve_one_acp(
    pdp: &Pdp,
    rule: pb::AccessControlRule,
    owner: &str,
    resource: &str,
    ty: u32,
) -> String {
    feed_one_acp(pdp, rule, owner, resource, ty);
    serve_pdp(pdp).await
}

/// Serves `pdp` on 127.0.0.1 with a port the OS chooses; its URL.
pub async fn serve_pdp(pdp: &Pdp) -> String {
    let routes = pdp.routes().await.expect("routes");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        // The builder the PDP binary serves with (bounded status messages).
        let _ = authz_proto::serving::server(None)
            .expect("a server without TLS")
            .add_routes(routes)
            // The binaries' listener: TCP_NODELAY, or each call waits for a
            // delayed ACK (about 40 ms).
            .serve_with_incoming(authz_proto::listener::incoming(listener))
            .await;
    });
    url
}

/// Feeds `pdp` the snapshot of [`serve_one_acp`].
pub fn feed_one_acp(pdp: &Pdp, rule: pb::AccessControlRule, owner: &str, resource: &str, ty: u32) {
    pdp.apply_event(&pb::WatchEvent {
        revision: 1,
        tag: 0,
        event: Some(pb::watch_event::Event::Snapshot(pb::Snapshot {
            acps: vec![pb::AccessControlPolicy {
                resource_id: Some("acp1".into()),
                privileges: Some(pb::SetOfAcrs { rules: vec![rule] }),
                self_privileges: Some(pb::SetOfAcrs {
                    rules: vec![pb::AccessControlRule {
                        originators: vec![owner.into()],
                        operations: 63,
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }],
            resources: vec![pb::TargetResource {
                resource_id: resource.into(),
                resource_type: ty,
                acpi_set: true,
                acpi: vec!["acp1".into()],
                creator: owner.into(),
                ..Default::default()
            }],
            dynamic_acps: Vec::new(),
            continued: false,
        })),
    })
    .expect("snapshot");
}
