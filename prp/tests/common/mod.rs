//! Helpers shared by the PRP integration tests: a real tonic server on
//! 127.0.0.1 with an OS-chosen port, and message builders.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use authz_core::HostingContext;
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_prp::{PrpConfig, PrpService};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

pub const ADMIN: &str = "CAdmin";

pub fn config() -> PrpConfig {
    let hosting = HostingContext::new("//sp.example.com", "/id-in").expect("valid hosting context");
    let mut c = PrpConfig::new(None, ADMIN, hosting);
    c.dynamic_acp_originators = vec!["CPdp".into()];
    c.sweep_interval = Duration::from_millis(200);
    c
}

pub struct Running {
    pub client: PolicyRetrievalPointClient<Channel>,
    pub service: PrpService,
    pub addr: SocketAddr,
    pub server: JoinHandle<()>,
    pub stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    /// Stops the server and waits until it is gone (open watches end).
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

pub async fn start(config: PrpConfig) -> Running {
    let service = authz_prp::build(&config).await.expect("build");
    serve(service).await
}

/// Serves `service` on 127.0.0.1 (an OS-chosen port) and connects a client.
pub async fn serve(service: PrpService) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let router = authz_prp::router(service.clone()).await.expect("router");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let closer = service.clone();
    let server = tokio::spawn(async move {
        router
            // The binaries' listener: TCP_NODELAY, or each call waits for a
            // delayed ACK (about 40 ms).
            .serve_with_incoming_shutdown(authz_proto::listener::incoming(listener), async move {
                let _ = stopped.await;
                closer.shutdown();
            })
            .await
            .expect("server");
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    Running {
        client: PolicyRetrievalPointClient::new(channel),
        service,
        addr,
        server,
        stop,
    }
}

pub fn rule(originators: &[&str], operations: u32) -> pb::AccessControlRule {
    pb::AccessControlRule {
        originators: originators.iter().map(|s| s.to_string()).collect(),
        operations,
        ..Default::default()
    }
}

pub fn set(rules: Vec<pb::AccessControlRule>) -> pb::SetOfAcrs {
    pb::SetOfAcrs { rules }
}

/// An ACP with `pv` = `pv_originators` RETRIEVE and `pvs` = `pvs_originators` with `pvs_ops`.
pub fn acp(
    id: &str,
    pv_originators: &[&str],
    pvs_originators: &[&str],
    pvs_ops: u32,
) -> pb::AccessControlPolicy {
    pb::AccessControlPolicy {
        resource_id: Some(id.into()),
        privileges: Some(set(vec![rule(pv_originators, 2)])),
        self_privileges: Some(set(vec![rule(pvs_originators, pvs_ops)])),
        ..Default::default()
    }
}

pub fn resource(
    id: &str,
    parent: &str,
    ty: u32,
    acpi: Option<&[&str]>,
    creator: &str,
) -> pb::TargetResource {
    pb::TargetResource {
        resource_id: id.into(),
        parent_id: parent.into(),
        resource_type: ty,
        acpi_set: acpi.is_some(),
        acpi: acpi
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        creator: creator.into(),
        ..Default::default()
    }
}

pub fn create_req(originator: &str, acp: pb::AccessControlPolicy) -> pb::CreateAcpRequest {
    pb::CreateAcpRequest {
        role_ids: Vec::new(),
        originator: originator.into(),
        acp: Some(acp),
    }
}

pub fn put_req(originator: &str, r: pb::TargetResource) -> pb::PutResourceRequest {
    pb::PutResourceRequest {
        role_ids: Vec::new(),
        originator: originator.into(),
        resource: Some(r),
    }
}

/// A fresh directory `authz-prp-{name}-…` under the system temp dir, removed
/// with everything in it when the returned guard drops: keep it bound for as
/// long as the test uses the directory.
pub fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("authz-prp-{name}-"))
        .tempdir()
        .expect("temp dir")
}
