//! `PepClient::wait_for_version` against a real PRP and a real PDP
//! following it: a write is in force at the PDP only once the PDP holds
//! that revision *of that store*, which the bare revision number cannot
//! tell when the PRP was started anew on another store.

use std::net::SocketAddr;
use std::time::Duration;

use authz_core::HostingContext;
use authz_pdp::{Pdp, PdpConfig};
use authz_pep::{PepClient, PepConfig};
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_prp::PrpConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

mod common;

const ADMIN: &str = "CAdmin";

fn hosting() -> HostingContext {
    HostingContext::new("//home.example", "/mn-cse-123456").expect("hosting CSE")
}

/// A PRP with a store in memory (a new store ID each time) on `listener`;
/// dropping the sender stops it.
async fn prp_on(listener: TcpListener) -> oneshot::Sender<()> {
    let service = authz_prp::build(&PrpConfig::new(None, ADMIN, hosting()))
        .await
        .expect("PRP");
    let router = authz_prp::router(service.clone()).await.expect("router");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = router
            .serve_with_incoming_shutdown(authz_proto::listener::incoming(listener), async move {
                let _ = stopped.await;
                // Ends the PDP's watch, as a PRP going away does (a
                // graceful shutdown waits for the streams to end).
                service.shutdown();
            })
            .await;
    });
    stop
}

async fn prp_client(addr: SocketAddr) -> PolicyRetrievalPointClient<Channel> {
    PolicyRetrievalPointClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to the PRP")
}

/// `acpDoor` granting `Cguest` the operations `acop`, and `door` under it;
/// the version of the last write.
async fn door_policy(prp: &mut PolicyRetrievalPointClient<Channel>, acop: u32) -> pb::StoreVersion {
    let acp = pb::AccessControlPolicy {
        resource_id: Some("acpDoor".into()),
        privileges: Some(pb::SetOfAcrs {
            rules: vec![pb::AccessControlRule {
                originators: vec!["Cguest".into()],
                operations: acop,
                ..Default::default()
            }],
        }),
        self_privileges: Some(pb::SetOfAcrs {
            rules: vec![pb::AccessControlRule {
                originators: vec![ADMIN.into()],
                operations: 63,
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    let exists = prp
        .get_acp(pb::GetAcpRequest {
            acp_id: "acpDoor".into(),
        })
        .await
        .is_ok();
    if exists {
        prp.update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp: Some(acp),
        })
        .await
        .expect("update");
    } else {
        prp.create_acp(pb::CreateAcpRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            acp: Some(acp),
        })
        .await
        .expect("create");
    }
    let record = prp
        .put_resource(pb::PutResourceRequest {
            role_ids: Vec::new(),
            originator: ADMIN.into(),
            resource: Some(pb::TargetResource {
                resource_id: "door".into(),
                resource_type: 3,
                acpi: vec!["acpDoor".into()],
                acpi_set: true,
                ..Default::default()
            }),
        })
        .await
        .expect("put door")
        .into_inner();
    let version = record.version.expect("a write names its version");
    assert_eq!(version.revision, record.revision);
    assert!(
        !version.store_id.is_empty() && version.tag != 0,
        "{version:?}"
    );
    version
}

fn guest_reads_the_door() -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: "Cguest".into(),
        operation: pb::Operation::Retrieve as i32,
        target: "door".into(),
        target_type: Some(3),
        ..Default::default()
    }
}

/// A PRP on a store in memory, a PDP following it (without a PIP: one it
/// waited for would leave ID entries undetermined) and a PEP asking the PDP.
struct Stack {
    prp_addr: SocketAddr,
    stop_prp: oneshot::Sender<()>,
    prp: PolicyRetrievalPointClient<Channel>,
    _pdp: Pdp,
    pep: PepClient,
}

async fn stack() -> Stack {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let prp_addr = listener.local_addr().expect("addr");
    let stop_prp = prp_on(listener).await;
    let prp = prp_client(prp_addr).await;
    let pdp =
        Pdp::start(PdpConfig::new(hosting()).with_prp(format!("http://{prp_addr}"))).expect("PDP");
    let pdp_url = common::serve_pdp(&pdp).await;
    let pep = PepClient::new(PepConfig::new([pdp_url])).expect("client");
    Stack {
        prp_addr,
        stop_prp,
        prp,
        _pdp: pdp,
        pep,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_in_force_once_the_pdp_holds_it_in_that_store() {
    let Stack {
        prp_addr,
        stop_prp: stop_first,
        mut prp,
        _pdp,
        pep,
    } = stack().await;

    // The first store, written up to a few revisions: the guest may read.
    door_policy(&mut prp, 2).await;
    // A change (RETRIEVE and DISCOVER): the same ACP again makes no revision.
    let first = door_policy(&mut prp, 2 | 32).await;
    assert!(first.revision >= 3, "{first:?}");
    pep.wait_for_version(&first, Duration::from_secs(30))
        .await
        .expect("the PDP follows the first store");
    assert!(pep.decide(guest_reads_the_door()).await.is_permit());

    // The PRP comes back on another (empty) store and is written there: at
    // a lower revision than the PDP holds, and denying the guest.
    drop(prp);
    let _ = stop_first.send(());
    let listener = loop {
        // The port frees once the first server has closed it.
        match TcpListener::bind(prp_addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let _stop_second = prp_on(listener).await;
    let mut prp = prp_client(prp_addr).await;
    let second = door_policy(&mut prp, 0).await;
    assert_ne!(second.store_id, first.store_id, "a new store");
    assert!(second.revision < first.revision, "{second:?} vs {first:?}");

    // The revision alone says the write is in force while the PDP still
    // holds the first store (this is what it cannot tell) ...
    let status = pep.status().await.expect("status");
    if status.policy_store == first.store_id {
        assert!(
            pep.wait_for_revision(second.revision, Duration::from_secs(1))
                .await
                .is_ok()
        );
    }
    // ... the version waits for the PDP to follow the second store, after
    // which the PDP decides by it.
    pep.wait_for_version(&second, Duration::from_secs(30))
        .await
        .expect("the PDP follows the second store");
    let status = pep.status().await.expect("status");
    assert_eq!(status.policy_store, second.store_id);
    assert_eq!(status.replica_tag, second.tag);
    let verdict = pep.decide(guest_reads_the_door()).await;
    assert!(!verdict.is_permit(), "{verdict:?}");
}

/// A version the PDP never reaches times out, naming what it waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_of_another_store_is_never_reached() {
    let Stack {
        stop_prp: _stop,
        mut prp,
        _pdp,
        pep,
        ..
    } = stack().await;
    let written = door_policy(&mut prp, 2).await;
    pep.wait_for_version(&written, Duration::from_secs(30))
        .await
        .expect("reached");
    let elsewhere = pb::StoreVersion {
        store_id: "another-store".into(),
        ..written.clone()
    };
    let e = pep
        .wait_for_version(&elsewhere, Duration::from_millis(200))
        .await
        .expect_err("another store");
    assert!(e.to_string().contains("another-store"), "{e}");
    // The PDP answered: it is behind (or elsewhere), not unreachable.
    assert!(matches!(e, authz_pep::PepError::Behind(_)), "{e:?}");
    // Same store, same revision, another change (a restored history).
    let other_history = pb::StoreVersion {
        tag: written.tag ^ 1,
        ..written
    };
    assert!(
        pep.wait_for_version(&other_history, Duration::from_millis(200))
            .await
            .is_err()
    );
}
