//! gRPC servers for integration tests on 127.0.0.1 ports the OS chooses, and
//! a fake DAS whose consultations wait until the test releases them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authz_proto::pb;
use authz_proto::pb::dynamic_authorization_server_server::{
    DynamicAuthorizationServer, DynamicAuthorizationServerServer,
};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::Router;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

/// A server started by [`serve`]. Dropping it shuts the server down
/// gracefully, as [`Served::stop`] does without waiting; [`Served::detach`]
/// keeps it running until the test's runtime ends.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Serves `router` on 127.0.0.1 with an OS-chosen port.
pub async fn serve(router: Router<authz_proto::serving::ServiceLayers>) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = router
            // The binaries' listener: TCP_NODELAY, or each call waits for a
            // delayed ACK (about 40 ms).
            .serve_with_incoming_shutdown(authz_proto::listener::incoming(listener), async move {
                let _ = stopped.await;
            })
            .await;
    });
    Served {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Served {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connected channel to it.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    /// Shuts the server down gracefully and waits (at most ten seconds)
    /// until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Leaves the server running until the runtime ends; returns its URL.
    pub fn detach(mut self) -> String {
        if let Some(stop) = self.stop.take() {
            tokio::spawn(async move {
                let _keep_serving = stop;
                std::future::pending::<()>().await;
            });
        }
        self.url()
    }
}

/// A DAS whose consultations wait until [`GatedDas::release`], then grant
/// nothing: a request the stored policies deny stays at the PDP for as long
/// as the test wants, without any timing. Its other RPCs are not served.
#[derive(Clone, Debug)]
pub struct GatedDas {
    consulted: Arc<AtomicUsize>,
    released: Arc<watch::Sender<bool>>,
}

impl Default for GatedDas {
    fn default() -> Self {
        Self {
            consulted: Arc::default(),
            released: Arc::new(watch::channel(false).0),
        }
    }
}

impl GatedDas {
    /// How many consultations have arrived.
    pub fn consulted(&self) -> usize {
        self.consulted.load(Ordering::SeqCst)
    }

    /// Lets every waiting and future consultation answer.
    pub fn release(&self) {
        self.released.send_replace(true);
    }

    /// Waits (polling, at most a generous minute) until it has been
    /// consulted `n` times: the requests are then at the PDP, undecided.
    pub async fn wait_consulted(&self, n: usize) {
        for _ in 0..3000 {
            if self.consulted() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the DAS was consulted {} times, not {n}", self.consulted());
    }

    /// Serves it until the runtime ends; returns its URL.
    pub async fn serve(&self) -> String {
        let router = authz_proto::serving::server(None)
            .expect("a server without TLS")
            .add_service(DynamicAuthorizationServerServer::new(self.clone()));
        serve(router).await.detach()
    }
}

#[tonic::async_trait]
impl DynamicAuthorizationServer for GatedDas {
    async fn consult(
        &self,
        _request: Request<pb::ConsultRequest>,
    ) -> Result<Response<pb::DasResponse>, Status> {
        self.consulted.fetch_add(1, Ordering::SeqCst);
        let mut released = self.released.subscribe();
        let _ = released.wait_for(|r| *r).await;
        Ok(Response::new(pb::DasResponse::default()))
    }

    async fn issue_token(
        &self,
        _request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        Err(Status::unimplemented("not served by the gated test DAS"))
    }

    async fn get_tokens(
        &self,
        _request: Request<pb::GetDasTokensRequest>,
    ) -> Result<Response<pb::GetDasTokensResponse>, Status> {
        Err(Status::unimplemented("not served by the gated test DAS"))
    }

    async fn get_key_set(
        &self,
        _request: Request<pb::GetKeySetRequest>,
    ) -> Result<Response<pb::KeySet>, Status> {
        Err(Status::unavailable("the gated test DAS has no keys"))
    }
}
