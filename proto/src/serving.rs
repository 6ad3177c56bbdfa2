//! What every service binary of the package serves alike: gRPC health and
//! reflection next to its own service, and the `Watch` stream loop (ordered
//! events after a start revision, live events from a broadcast, a fresh
//! start when the watcher falls behind, at most one of them queued at a
//! time, an end at shutdown), and the span each RPC gets when traces are
//! exported.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

/// Adds gRPC health (reported by `health`) and reflection (v1 and v1alpha,
/// describing package `onem2m.authz.v1` and `grpc.health.v1`) to `routes`.
/// Reflection lists `services` (the full names of those the server
/// serves), health and itself: not every service of the package, which a
/// client would then call in vain. Call once per server, whatever services
/// share it.
pub fn add_health_and_reflection<H>(
    routes: &mut tonic::service::RoutesBuilder,
    health: tonic_health::pb::health_server::HealthServer<H>,
    services: &[&str],
) -> Result<(), tonic_reflection::server::Error>
where
    H: tonic_health::pb::health_server::Health,
{
    let configure = || {
        services.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(
                    <tonic_health::pb::health_server::HealthServer<H> as NamedService>::NAME,
                ),
            |b, name| b.with_service_name(*name),
        )
    };
    let v1 = configure().build_v1()?;
    let v1alpha = configure().build_v1alpha()?;
    routes
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha);
    Ok(())
}

/// The layers every service binary's server has ([`server`]).
pub type ServiceLayers = tower::layer::util::Stack<
    RefusalLogLayer,
    tower::layer::util::Stack<
        tower::util::MapResponseLayer<fn(http::Response<Body>) -> http::Response<Body>>,
        tower::layer::util::Identity,
    >,
>;

/// Logs each call a service refuses (`PERMISSION_DENIED`,
/// `UNAUTHENTICATED`) as one INFO line `call refused`, naming the RPC and
/// the status message, which says who was refused and what (the services
/// never put a secret in one). One layer for every service and every
/// refusal, so none goes unlogged or is logged twice.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefusalLogLayer;

impl<S> tower::Layer<S> for RefusalLogLayer {
    type Service = RefusalLog<S>;
    fn layer(&self, inner: S) -> RefusalLog<S> {
        RefusalLog(inner)
    }
}

/// The service of [`RefusalLogLayer`].
#[derive(Debug, Clone)]
pub struct RefusalLog<S>(S);

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RefusalLog<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // A `Uri` clone shares its bytes: no copy of the path per call.
        let uri = request.uri().clone();
        let answer = self.0.call(request);
        Box::pin(async move {
            let response = answer.await?;
            log_refusal(uri.path(), response.headers());
            Ok(response)
        })
    }
}

/// The `call refused` line of [`RefusalLogLayer`], for a response whose
/// headers carry a refusal (a unary call's error comes in its headers).
fn log_refusal(path: &str, headers: &http::HeaderMap) {
    let code = match headers.get("grpc-status").map(http::HeaderValue::as_bytes) {
        Some(b"7") => tonic::Code::PermissionDenied,
        Some(b"16") => tonic::Code::Unauthenticated,
        _ => return,
    };
    let message = headers
        .get("grpc-message")
        .map(|m| percent_encoding::percent_decode(m.as_bytes()).decode_utf8_lossy())
        .unwrap_or_default();
    tracing::info!(
        rpc = path.trim_start_matches('/'),
        code = ?code,
        %message,
        "call refused"
    );
}

/// The server builder of every service binary ([`server`]).
pub type ServiceServer = Server<ServiceLayers>;

/// The server builder of every service binary: a span per RPC
/// ([`rpc_span`]), status messages bounded ([`bound_status_message`]), and
/// TLS with `tls` (the port then serves TLS only), applied to the
/// connections of `serve_with_incoming*` too.
pub fn server(
    tls: Option<&crate::tls::ServerTls>,
) -> Result<ServiceServer, tonic::transport::Error> {
    let builder = match tls {
        Some(tls) => Server::builder().tls_config(tls.config())?,
        None => Server::builder(),
    };
    Ok(with_defaults(builder))
}

/// A server without TLS, with a span per RPC and bounded status messages.
fn plain_server() -> ServiceServer {
    with_defaults(Server::builder())
}

/// How many streams a client may reset before the service accepted them
/// (h2's guard against rapid-reset floods) ere the service ends the whole
/// connection. h2's default, 20, is reached by a PDP whose fetches timed
/// out while its PIP stalled: the PIP would then drop the connection and
/// the PDP's attribute watch on it. Still a bound.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 1024;

fn with_defaults(builder: Server) -> ServiceServer {
    let bound: fn(http::Response<Body>) -> http::Response<Body> = bound_status_message;
    builder
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
        .trace_fn(rpc_span)
        .layer(tower::util::MapResponseLayer::new(bound))
        .layer(RefusalLogLayer)
}

/// The most bytes of a `grpc-message` header a service sends.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 2048;

/// Cuts the `grpc-message` of an error answered in headers (every error of
/// a unary call, and of a stream that fails before its first message) to
/// [`MAX_STATUS_MESSAGE_BYTES`], ending it with `…`. Messages echo what
/// the client sent (an unknown 40 000-byte resource ID), and headers are
/// capped by peers (often at 16 KiB): past that, the client would get an
/// HTTP/2 protocol error (`INTERNAL`) instead of the status the service
/// meant. The message is percent-encoded (gRPC over HTTP/2); the cut never
/// splits an escape or a UTF-8 sequence.
pub fn bound_status_message<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let Some(value) = headers.get("grpc-message") else {
        return response;
    };
    if value.len() <= MAX_STATUS_MESSAGE_BYTES {
        return response;
    }
    let decoded = percent_encoding::percent_decode(value.as_bytes()).decode_utf8_lossy();
    let encode =
        |text: &str| percent_encoding::utf8_percent_encode(text, GRPC_MESSAGE_ESCAPES).to_string();
    let suffix = encode(&format!("… (cut from {} bytes)", decoded.len()));
    // An encoded byte takes at most three.
    let mut end = (MAX_STATUS_MESSAGE_BYTES.saturating_sub(suffix.len()) / 3).min(decoded.len());
    while !decoded.is_char_boundary(end) {
        end -= 1;
    }
    let encoded = encode(&decoded[..end]) + &suffix;
    if let Ok(v) = http::HeaderValue::from_str(&encoded) {
        headers.insert("grpc-message", v);
    }
    response
}

/// What gRPC over HTTP/2 escapes in `grpc-message`: `%` and every byte
/// outside printable ASCII.
const GRPC_MESSAGE_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b'%').add(0x7f);

/// The routes of a standalone service: `service`, reported SERVING by gRPC
/// health, and reflection.
pub async fn standalone_routes<S>(service: S) -> Result<Routes, tonic_reflection::server::Error>
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
    add_health_and_reflection(&mut routes, health, &[S::NAME])?;
    Ok(routes.routes())
}

/// A plain-text router for a standalone service ([`standalone_routes`]).
pub async fn standalone_router<S>(
    service: S,
) -> Result<Router<ServiceLayers>, tonic_reflection::server::Error>
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
    Ok(plain_server().add_routes(standalone_routes(service).await?))
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

/// Writes the current span's trace context (`traceparent`, `tracestate`)
/// into the metadata of an outgoing call, so that a service's own calls
/// (a PDP asking its PIP or a DAS) join the trace of the request that made
/// them. Writes nothing while traces are off (no context to carry).
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !RPC_SPANS.load(Ordering::Relaxed) {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

/// Writes propagation headers into gRPC metadata.
struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl opentelemetry::propagation::Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
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

/// The gRPC metadata key that carries a store ID (made when the store was
/// created; revisions only mean something within one store) on the PRP's
/// `Watch`: the server puts its store's ID in the response's initial
/// metadata, and a watcher resuming from a revision may put the ID of the
/// store that revision came from in its request, so that a server with
/// another store starts it over with a snapshot instead of replaying
/// revisions of an unrelated history.
pub const STORE_ID_METADATA: &str = "authz-store-id";

/// Capacity of the queue between a `Watch` stream's task and the transport.
pub const WATCH_QUEUE: usize = 64;

/// Streams `initial` events, then every live event newer than the last sent,
/// until the client goes away or `closing` turns true. When the watcher lags
/// behind the broadcast, `restart` gives the events that let it start over
/// (a snapshot, in parts when large; a reset).
///
/// The events wait in a queue of [`WATCH_QUEUE`] for the transport. A
/// restart event is built only once that queue is empty, that is once the
/// transport has taken everything queued before, so a watcher that keeps
/// lagging has at most one restart event (the whole state, for a snapshot)
/// in its queue at a time, and the one it gets is built when it can be
/// sent. The live
/// subscription is renewed just before `restart` runs, so the changes lost
/// while waiting, which the restart event covers, do not count as a new lag.
pub fn watch_stream<E>(
    initial: Vec<E>,
    from: u64,
    mut live: broadcast::Receiver<E>,
    mut closing: watch::Receiver<bool>,
    restart: impl Fn() -> Result<Vec<E>, Status> + Send + 'static,
) -> ReceiverStream<Result<E, Status>>
where
    E: Revisioned + Clone + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<E, Status>>(WATCH_QUEUE);
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
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(missed = n, "watcher lagged; starting it over");
                    // Wait until the watcher has taken every queued event.
                    let permits = tokio::select! {
                        _ = closing.wait_for(|c| *c) => return,
                        permits = tx.reserve_many(WATCH_QUEUE) => permits,
                    };
                    let Ok(mut permits) = permits else { return };
                    let Some(permit) = permits.next() else { return };
                    // Subscribe before reading, so that no change falls in
                    // between (older ones are skipped by revision).
                    live = live.resubscribe();
                    match restart() {
                        Ok(events) => {
                            let mut events = events.into_iter();
                            if let Some(ev) = events.next() {
                                last = last.max(ev.revision());
                                permit.send(Ok(ev));
                            }
                            drop(permits);
                            // The rest of a snapshot in parts, each as the
                            // transport takes it.
                            for ev in events {
                                last = last.max(ev.revision());
                                if !send_unless_closing(&tx, &mut closing, ev).await {
                                    return;
                                }
                            }
                            continue;
                        }
                        Err(status) => {
                            permit.send(Err(status));
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            last = last.max(ev.revision());
            if !send_unless_closing(&tx, &mut closing, ev).await {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Queues `ev` for the transport; false when the watcher went away or the
/// server is closing first.
async fn send_unless_closing<E>(
    tx: &mpsc::Sender<Result<E, Status>>,
    closing: &mut watch::Receiver<bool>,
    ev: E,
) -> bool {
    tokio::select! {
        _ = closing.wait_for(|c| *c) => false,
        sent = tx.send(Ok(ev)) => sent.is_ok(),
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    use tokio_stream::StreamExt;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Ev {
        revision: u64,
        restart: bool,
    }

    impl Revisioned for Ev {
        fn revision(&self) -> u64 {
            self.revision
        }
    }

    async fn next(stream: &mut ReceiverStream<Result<Ev, Status>>) -> Ev {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event")
    }

    /// A watcher that reads one event while many are published, again and
    /// again: it lags each time, yet never holds more than one restart
    /// event, built once it has taken the events queued before.
    #[tokio::test]
    async fn a_lagging_watcher_holds_at_most_one_restart_event() {
        let (events, live) = broadcast::channel::<Ev>(2);
        let (_closing, closing) = watch::channel(false);
        let head = Arc::new(AtomicU64::new(0));
        let restarts = Arc::new(AtomicUsize::new(0));
        let (h, r) = (head.clone(), restarts.clone());
        let initial = vec![Ev {
            revision: 0,
            restart: true,
        }];
        let mut stream = watch_stream(initial, 0, live, closing, move || {
            r.fetch_add(1, SeqCst);
            Ok(vec![Ev {
                revision: h.load(SeqCst),
                restart: true,
            }])
        });
        let publish = |n: u64| {
            for _ in 0..n {
                let revision = head.fetch_add(1, SeqCst) + 1;
                let _ = events.send(Ev {
                    revision,
                    restart: false,
                });
            }
        };
        let pause = || tokio::time::sleep(Duration::from_millis(2));

        // Fill the queue one event at a time (the initial event, then
        // revisions 1..=63), then one more that waits for room, then
        // overflow the live channel.
        for _ in 0..WATCH_QUEUE {
            publish(1);
            pause().await;
        }
        publish(10);
        pause().await;
        let mut got = Vec::new();
        for _ in 0..20 {
            got.push(next(&mut stream).await);
            publish(10);
            pause().await;
        }
        assert_eq!(
            restarts.load(SeqCst),
            0,
            "no restart event while the queue still holds events"
        );

        // Drain: the queued events, then one restart event at the head.
        loop {
            let ev = next(&mut stream).await;
            let done = ev.restart && ev.revision > 0;
            got.push(ev);
            if done {
                break;
            }
        }
        assert_eq!(restarts.load(SeqCst), 1);
        let revisions: Vec<u64> = got.iter().map(|e| e.revision).collect();
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "increasing: {revisions:?}"
        );
        assert_eq!(revisions.last().copied(), Some(head.load(SeqCst)));
        assert_eq!(
            got.iter().filter(|e| e.restart).count(),
            2,
            "the initial event and one restart"
        );

        // Live again, without a second restart for what it lost while
        // waiting.
        publish(1);
        let ev = next(&mut stream).await;
        assert_eq!((ev.revision, ev.restart), (head.load(SeqCst), false));
        assert_eq!(restarts.load(SeqCst), 1);
    }

    /// A long `grpc-message` is cut to the bound at a character boundary,
    /// stays valid percent-encoding of UTF-8 (what tonic decodes), and says
    /// how long it was; a short one, or a response without one, is left
    /// as it is.
    #[test]
    fn status_messages_are_bounded() {
        let long = format!("resource {} not found", "é".repeat(5_000));
        let status = tonic::Status::not_found(long.clone());
        let response = bound_status_message(status.into_http::<()>());
        let value = response.headers().get("grpc-message").expect("message");
        assert!(value.len() <= MAX_STATUS_MESSAGE_BYTES, "{}", value.len());
        let back = tonic::Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(back.code(), tonic::Code::NotFound);
        assert!(
            back.message().starts_with("resource éé"),
            "{}",
            back.message()
        );
        assert!(
            back.message()
                .ends_with(&format!("… (cut from {} bytes)", long.len())),
            "{}",
            back.message()
        );

        let short = tonic::Status::not_found("resource cnt not found");
        let response = bound_status_message(short.into_http::<()>());
        let back = tonic::Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(back.message(), "resource cnt not found");

        let ok = http::Response::new(());
        assert!(
            bound_status_message(ok)
                .headers()
                .get("grpc-message")
                .is_none()
        );
    }
}
