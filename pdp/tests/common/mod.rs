//! Shared test fixtures: wire policies and resources, a fake PRP that serves
//! `Watch` from an in-memory log, and a PDP served on 127.0.0.1:0.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authz_pdp::{Pdp, PdpConfig};
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_server::{
    PolicyRetrievalPoint, PolicyRetrievalPointServer,
};
use authz_proto::pb::watch_event::Event;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

/// The hosting CSE of every test.
pub fn hosting() -> authz_core::HostingContext {
    authz_core::HostingContext::new("//sp.example.com", "/id-in").unwrap()
}

/// An ACP whose `pv` grants `operations` to each originator.
pub fn acp(id: &str, originators: &[&str], operations: u32) -> pb::AccessControlPolicy {
    pb::AccessControlPolicy {
        resource_id: Some(id.to_owned()),
        privileges: Some(pb::SetOfAcrs {
            rules: vec![pb::AccessControlRule {
                originators: originators.iter().map(|s| s.to_string()).collect(),
                operations,
                ..Default::default()
            }],
        }),
        self_privileges: Some(pb::SetOfAcrs {
            rules: vec![pb::AccessControlRule {
                originators: vec!["Cadmin".into()],
                operations: 63,
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
}

/// A container resource with the given `acpi` (`None`: not set).
pub fn resource(id: &str, acpi: Option<&[&str]>, creator: &str) -> pb::TargetResource {
    pb::TargetResource {
        resource_id: id.to_owned(),
        parent_id: String::new(),
        resource_type: 3,
        acpi_set: acpi.is_some(),
        acpi: acpi
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        creator: creator.to_owned(),
        ..Default::default()
    }
}

/// A snapshot event.
pub fn snapshot_event(
    revision: u64,
    acps: Vec<pb::AccessControlPolicy>,
    resources: Vec<pb::TargetResource>,
) -> pb::WatchEvent {
    pb::WatchEvent {
        revision,
        tag: 0,
        event: Some(Event::Snapshot(pb::Snapshot {
            acps,
            resources,
            dynamic_acps: Vec::new(),
            continued: false,
        })),
    }
}

/// A decision request: `originator` does `op` on `target`.
pub fn request(originator: &str, op: pb::Operation, target: &str) -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: originator.to_owned(),
        operation: op as i32,
        target: target.to_owned(),
        ..Default::default()
    }
}

/// The PRP state the fake serves.
#[derive(Default)]
struct PrpState {
    revision: u64,
    acps: Vec<pb::AccessControlPolicy>,
    resources: Vec<pb::TargetResource>,
    log: Vec<pb::WatchEvent>,
    watchers: Vec<mpsc::Sender<Result<pb::WatchEvent, Status>>>,
    watch_calls: u32,
    dynamic_acps: Vec<pb::CreateDynamicAcpRequest>,
    /// What those requests stored, as a snapshot sends it.
    dynamic_records: Vec<pb::DynamicAcpRecord>,
}

/// A minimal PRP: `Watch` from an in-memory log, and `CreateDynamicAcp`,
/// which records what it was asked to store and, as the real PRP, publishes
/// it to watchers (bound to the target as given). The state survives
/// restarts of the server.
#[derive(Clone, Default)]
pub struct FakePrp {
    state: Arc<Mutex<PrpState>>,
}

impl FakePrp {
    /// Stores an ACP (create or update) at the next revision.
    pub fn put_acp(&self, acp: pb::AccessControlPolicy) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.acps.retain(|a| a.resource_id != acp.resource_id);
        s.acps.push(acp.clone());
        Self::publish(&mut s, Event::AcpPut(acp))
    }

    /// Stores a resource at the next revision.
    pub fn put_resource(&self, r: pb::TargetResource) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.resources.retain(|x| x.resource_id != r.resource_id);
        s.resources.push(r.clone());
        Self::publish(&mut s, Event::ResourcePut(r))
    }

    /// The `CreateDynamicAcp` requests received, in order.
    pub fn dynamic_acps(&self) -> Vec<pb::CreateDynamicAcpRequest> {
        self.state.lock().unwrap().dynamic_acps.clone()
    }

    /// How many Watch calls the fake has answered.
    pub fn watch_calls(&self) -> u32 {
        self.state.lock().unwrap().watch_calls
    }

    fn publish(s: &mut PrpState, event: Event) -> u64 {
        s.revision += 1;
        let ev = pb::WatchEvent {
            revision: s.revision,
            tag: 0,
            event: Some(event),
        };
        s.log.push(ev.clone());
        s.watchers.retain(|w| w.try_send(Ok(ev.clone())).is_ok());
        s.revision
    }

    /// Serves the fake on `listener` until the returned handle stops it.
    pub fn serve(&self, listener: TcpListener) -> Running<FakePrp> {
        serve_prp(self, listener)
    }
}

impl PrpBehaviour for FakePrp {
    fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let from = request.get_ref().from_revision;
        let (tx, rx) = mpsc::channel(1024);
        let mut s = self.state.lock().unwrap();
        s.watch_calls += 1;
        if from == 0 {
            let snap = pb::WatchEvent {
                revision: s.revision,
                tag: 0,
                event: Some(Event::Snapshot(pb::Snapshot {
                    acps: s.acps.clone(),
                    resources: s.resources.clone(),
                    dynamic_acps: s.dynamic_records.clone(),
                    continued: false,
                })),
            };
            tx.try_send(Ok(snap)).unwrap();
        } else {
            for ev in s.log.iter().filter(|e| e.revision > from) {
                tx.try_send(Ok(ev.clone())).unwrap();
            }
        }
        s.watchers.push(tx);
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as WatchStream
        ))
    }

    fn create_dynamic_acp(
        &self,
        request: pb::CreateDynamicAcpRequest,
    ) -> Result<pb::DynamicAcpRecord, Status> {
        let r = request;
        let mut s = self.state.lock().unwrap();
        s.dynamic_acps.push(r.clone());
        let record = pb::DynamicAcpRecord {
            acp_id: format!("dyn{}", s.dynamic_acps.len()),
            target: r.target,
            privileges: r.privileges,
            expires_at: r.expires_at,
            revision: s.revision + 1,
            version: None,
        };
        s.dynamic_records.push(record.clone());
        Self::publish(&mut s, Event::DynamicPut(record.clone()));
        Ok(record)
    }

    fn kill_watchers(&self) {
        let watchers = std::mem::take(&mut self.state.lock().unwrap().watchers);
        for w in watchers {
            let _ = w.try_send(Err(Status::unavailable("PRP shutting down")));
        }
    }
}

/// The stream a fake PRP's `Watch` answers with.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

/// What a fake PRP does: `Watch`, and `CreateDynamicAcp` if it says so;
/// [`FakePrpServer`] answers every other RPC with UNIMPLEMENTED.
pub trait PrpBehaviour: Clone + Send + Sync + 'static {
    /// Answers `Watch`.
    fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status>;

    /// Answers `CreateDynamicAcp`.
    fn create_dynamic_acp(
        &self,
        _request: pb::CreateDynamicAcpRequest,
    ) -> Result<pb::DynamicAcpRecord, Status> {
        Err(Status::unimplemented("fake PRP"))
    }

    /// Ends every open Watch stream with UNAVAILABLE.
    fn kill_watchers(&self);
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("fake PRP"))
}

/// A [`PrpBehaviour`] as a `PolicyRetrievalPoint` service.
pub struct FakePrpServer<B>(pub B);

#[tonic::async_trait]
impl<B: PrpBehaviour> PolicyRetrievalPoint for FakePrpServer<B> {
    async fn create_acp(
        &self,
        _: Request<pb::CreateAcpRequest>,
    ) -> Result<Response<pb::AcpRecord>, Status> {
        unimplemented()
    }
    async fn update_acp(
        &self,
        _: Request<pb::UpdateAcpRequest>,
    ) -> Result<Response<pb::AcpRecord>, Status> {
        unimplemented()
    }
    async fn get_acp(
        &self,
        _: Request<pb::GetAcpRequest>,
    ) -> Result<Response<pb::AcpRecord>, Status> {
        unimplemented()
    }
    async fn delete_acp(
        &self,
        _: Request<pb::DeleteAcpRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        unimplemented()
    }
    async fn list_acps(
        &self,
        _: Request<pb::ListAcpsRequest>,
    ) -> Result<Response<pb::ListAcpsResponse>, Status> {
        unimplemented()
    }
    async fn put_resource(
        &self,
        _: Request<pb::PutResourceRequest>,
    ) -> Result<Response<pb::ResourceRecord>, Status> {
        unimplemented()
    }
    async fn get_resource(
        &self,
        _: Request<pb::GetResourceRequest>,
    ) -> Result<Response<pb::ResourceRecord>, Status> {
        unimplemented()
    }
    async fn delete_resource(
        &self,
        _: Request<pb::DeleteResourceRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        unimplemented()
    }
    async fn get_applicable_policies(
        &self,
        _: Request<pb::GetApplicablePoliciesRequest>,
    ) -> Result<Response<pb::ApplicablePolicies>, Status> {
        unimplemented()
    }
    async fn create_dynamic_acp(
        &self,
        request: Request<pb::CreateDynamicAcpRequest>,
    ) -> Result<Response<pb::DynamicAcpRecord>, Status> {
        self.0
            .create_dynamic_acp(request.into_inner())
            .map(Response::new)
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.0.watch(request)
    }
}

/// Serves `prp` on `listener` until the returned handle stops it. The
/// behaviour's state survives: serve it again to restart the "PRP".
pub fn serve_prp<B: PrpBehaviour>(prp: &B, listener: TcpListener) -> Running<B> {
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let svc = PolicyRetrievalPointServer::new(FakePrpServer(prp.clone()));
    let task = tokio::spawn(async move {
        Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running {
        prp: prp.clone(),
        addr,
        stop: Some(tx),
        task: Some(task),
    }
}

/// A running fake PRP server.
pub struct Running<B: PrpBehaviour> {
    prp: B,
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl<B: PrpBehaviour> Running<B> {
    /// Stops the server: ends the Watch streams, then shuts it down and waits
    /// until the port is closed.
    pub async fn kill(mut self) {
        self.prp.kill_watchers();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("PRP shuts down")
                .unwrap();
        }
    }
}

/// Serves `pdp.routes()` on 127.0.0.1:0 and returns a channel to it.
pub async fn serve_pdp(pdp: &Pdp) -> (Channel, JoinHandle<()>) {
    let routes = pdp.routes().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // The builder the PDP binary serves with.
        authz_proto::serving::server(None)
            .unwrap()
            .add_routes(routes)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, task)
}

/// A PDP following no PRP, its replica fed with `events`.
pub fn pdp_with(events: &[pb::WatchEvent]) -> Pdp {
    let pdp = Pdp::start(PdpConfig::new(hosting())).expect("pdp");
    for ev in events {
        pdp.apply_event(ev).unwrap();
    }
    pdp
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
