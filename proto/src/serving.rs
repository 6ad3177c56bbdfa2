//! What every service binary of the package serves alike: gRPC health and
//! reflection next to its own service, and the `Watch` stream loop (ordered
//! events after a start revision, live events from a broadcast, a fresh
//! start when the watcher falls behind, an end at shutdown).

use std::convert::Infallible;

use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

/// Adds gRPC health (reported by `health`) and reflection (v1 and v1alpha,
/// describing package `onem2m.authz.v1` and `grpc.health.v1`) to `routes`.
/// Call once per server, whatever services share it.
pub fn add_health_and_reflection<H>(
    routes: &mut tonic::service::RoutesBuilder,
    health: tonic_health::pb::health_server::HealthServer<H>,
) -> Result<(), tonic_reflection::server::Error>
where
    H: tonic_health::pb::health_server::Health,
{
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    routes
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha);
    Ok(())
}

/// A router for a standalone service: `service`, reported SERVING by gRPC
/// health, and reflection.
pub async fn standalone_router<S>(service: S) -> Result<Router, tonic_reflection::server::Error>
where
    S: tonic::codegen::Service<
            tonic::codegen::http::Request<Body>,
            Response = tonic::codegen::http::Response<Body>,
            Error = Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    report_serving::<S>(&reporter).await;
    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(service);
    add_health_and_reflection(&mut routes, health)?;
    Ok(Server::builder().add_routes(routes.routes()))
}

/// Marks the service `S` SERVING in `reporter`.
pub async fn report_serving<S: NamedService>(reporter: &HealthReporter) {
    reporter.set_serving::<S>().await;
}

/// The revision an event of a `Watch` stream carries.
pub trait Revisioned {
    /// Its revision.
    fn revision(&self) -> u64;
}

/// Streams `initial` events, then every live event newer than the last sent,
/// until the client goes away or `closing` turns true. When the watcher lags
/// behind the broadcast, `restart` gives the event that lets it start over
/// (a snapshot, a reset).
pub fn watch_stream<E>(
    initial: Vec<E>,
    from: u64,
    mut live: broadcast::Receiver<E>,
    mut closing: watch::Receiver<bool>,
    restart: impl Fn() -> Result<E, Status> + Send + 'static,
) -> ReceiverStream<Result<E, Status>>
where
    E: Revisioned + Clone + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<E, Status>>(64);
    tokio::spawn(async move {
        let mut last = from;
        for ev in initial {
            last = ev.revision();
            if tx.send(Ok(ev)).await.is_err() {
                return;
            }
        }
        loop {
            let next = tokio::select! {
                _ = tx.closed() => return,
                _ = closing.wait_for(|c| *c) => return,
                next = live.recv() => next,
            };
            let ev = match next {
                Ok(ev) if ev.revision() <= last => continue,
                Ok(ev) => Ok(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(missed = n, "watcher lagged; starting it over");
                    restart()
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if let Ok(ev) = &ev {
                last = last.max(ev.revision());
            }
            let failed = ev.is_err();
            if tx.send(ev).await.is_err() || failed {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

impl Revisioned for crate::pb::WatchEvent {
    fn revision(&self) -> u64 {
        self.revision
    }
}

impl Revisioned for crate::pb::AttributeChange {
    fn revision(&self) -> u64 {
        self.revision
    }
}
