//! What every service binary of the package serves alike: gRPC health and
//! reflection next to its own service, and the `Watch` stream loop (ordered
//! events after a start revision, live events from a broadcast, a fresh
//! start when the watcher falls behind, an end at shutdown), and the span
//! each RPC gets when traces are exported.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};

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
    Ok(Server::builder()
        .trace_fn(rpc_span)
        .add_routes(routes.routes()))
}

static RPC_SPANS: AtomicBool = AtomicBool::new(false);

/// Turns on [`rpc_span`]: called once traces are exported (OTLP), so that a
/// process without an exporter spends nothing on spans per RPC.
pub fn enable_rpc_spans() {
    RPC_SPANS.store(true, Ordering::Relaxed);
}

/// The span of one incoming RPC, for `Server::trace_fn`: named after the
/// gRPC method (`onem2m.authz.v1.PolicyDecisionPoint/Decide`), with the
/// OpenTelemetry RPC attributes, a child of the caller's trace when the
/// request carries a W3C `traceparent` header. Handlers fill
/// `authz.decision`, `authz.status` and `authz.decisions`. A disabled span
/// until [`enable_rpc_spans`].
pub fn rpc_span(req: &tonic::codegen::http::Request<()>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !RPC_SPANS.load(Ordering::Relaxed) {
        return tracing::Span::none();
    }
    let name = req.uri().path().trim_start_matches('/');
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    let span = tracing::info_span!(
        "rpc",
        otel.name = name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        authz.decision = tracing::field::Empty,
        authz.status = tracing::field::Empty,
        authz.decisions = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(req.headers()))
    });
    // Without a traceparent the extracted context is empty and the span
    // starts a trace of its own.
    let _ = span.set_parent(parent);
    span
}

/// Reads propagation headers (`traceparent`, `tracestate`) of a request.
struct HeaderExtractor<'a>(&'a tonic::codegen::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
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
