//! Observability of the PDP: Prometheus metrics and tracing with an
//! optional OpenTelemetry OTLP exporter.
//!
//! Metrics (names as exported; no unit suffixes are added):
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `authz_decisions_total` | counter | `result` (`permit`, `deny`), `status` (`ok`, `not_applicable`, `missing_attribute`, `syntax_error`, `processing_error`) |
//! | `authz_decision_seconds` | histogram | |
//! | `authz_replica_revision` | gauge | |
//! | `authz_replica_staleness_seconds` | gauge | |
//! | `authz_rpc_errors_total` | counter | `rpc` |
//! | `authz_pip_fetches_total` | counter | `result` |
//!
//! The two decision metrics are kept per thread by
//! [`crate::decision_metrics`] and always counted; the others go through the
//! `metrics` facade and are no-ops until [`install_prometheus`] installs a
//! recorder. The endpoint renders both.

use std::net::SocketAddr;
use std::time::Duration;

use authz_core::decision::{AuthorizationStatus, Effect};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use crate::decision_metrics::{DECISION_BUCKETS, DECISION_SECONDS, DECISIONS_TOTAL};
/// Gauge of the replica's PRP revision.
pub const REPLICA_REVISION: &str = "authz_replica_revision";
/// Gauge of the seconds since the replica was last known current.
pub const REPLICA_STALENESS_SECONDS: &str = "authz_replica_staleness_seconds";
/// Counter of RPCs the PDP read and answered with an error, by RPC name:
/// a `Decide` refused as INVALID_ARGUMENT, a `DecideStream` ended by an
/// error (a message in it that does not decode, for one). `DecideBatch`
/// answers a bad item with a SYNTAX_ERROR decision, never an error, so it
/// stays at zero; a unary message that does not decode is refused by the
/// gRPC layer before the PDP reads it, and is not counted.
pub const RPC_ERRORS_TOTAL: &str = "authz_rpc_errors_total";
/// Counter of `ResolveAttributes` calls to the PIP on cache misses, by
/// result (`ok`, `error`, `timeout`).
pub const PIP_FETCHES_TOTAL: &str = "authz_pip_fetches_total";

/// Registers metric descriptions (shown as `# HELP` lines).
pub fn describe_metrics() {
    metrics::describe_gauge!(REPLICA_REVISION, "PRP revision of the PDP's replica");
    metrics::describe_gauge!(
        REPLICA_STALENESS_SECONDS,
        metrics::Unit::Seconds,
        "Seconds since the replica was last known current (0 while the Watch stream is up)"
    );
    metrics::describe_counter!(
        RPC_ERRORS_TOTAL,
        "RPCs the PDP read and answered with an error, by RPC"
    );
    metrics::describe_counter!(
        PIP_FETCHES_TOTAL,
        "PIP attribute fetches on cache misses, by result"
    );
}

/// Counts one PIP attribute fetch.
pub fn record_pip_fetch(result: &'static str) {
    metrics::counter!(PIP_FETCHES_TOTAL, "result" => result).increment(1);
}

/// The metrics text a scrape gets.
#[derive(Clone)]
pub struct MetricsHandle {
    prometheus: PrometheusHandle,
    /// Where `/metrics` is served (the port the OS chose for port 0).
    local_addr: SocketAddr,
}

impl MetricsHandle {
    /// Where `/metrics` is served.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every metric in the Prometheus text format: the decision metrics
    /// (kept per thread, see [`crate::decision_metrics`]) and those recorded
    /// through the `metrics` facade.
    pub fn render(&self) -> String {
        let mut out = String::new();
        crate::decision_metrics::render(&mut out);
        out.push_str(&self.prometheus.render());
        out
    }
}

/// Installs the global Prometheus recorder and serves `GET /metrics` on
/// `addr`, over TLS with `tls` (the service's own certificate, and its
/// client CAs: with them a scraper must present a certificate of one, as
/// any client of the service must); returns a handle that renders the same
/// text.
///
/// Must run inside a Tokio runtime. Fails when a recorder is already
/// installed or the address cannot be bound.
pub fn install_prometheus(
    addr: SocketAddr,
    tls: Option<&authz_proto::tls::ServerTls>,
) -> anyhow::Result<MetricsHandle> {
    let tls = tls
        .map(|t| t.rustls_config(authz_proto::tls::ClientCertificates::Required))
        .transpose()
        .map_err(|e| anyhow::anyhow!("metrics endpoint TLS: {e}"))?;
    let recorder = PrometheusBuilder::new().build_recorder();
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen: {e}"))?;
    let handle = MetricsHandle {
        prometheus: recorder.handle(),
        local_addr: listener.local_addr()?,
    };
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    describe_metrics();
    // Every series the README lists exists from the start (at zero), so an
    // alert on a rate or an absent series does not mistake "none yet" for
    // "not exported".
    record_revision(0);
    for rpc in ["Decide", "DecideBatch", "DecideStream"] {
        metrics::counter!(RPC_ERRORS_TOTAL, "rpc" => rpc).increment(0);
    }
    for result in ["ok", "error", "timeout"] {
        metrics::counter!(PIP_FETCHES_TOTAL, "result" => result).increment(0);
    }
    let served = handle.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let h = served.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    h.render(),
                )
            }
        }),
    );
    match tls {
        Some(tls) => {
            tokio::spawn(authz_proto::https::serve(
                listener,
                app,
                std::sync::Arc::new(tls),
                std::future::pending(),
                |_, _| axum::http::Extensions::new(),
            ));
        }
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "metrics endpoint stopped");
                }
            });
        }
    }
    // The facade's histograms and summaries need periodic upkeep (the
    // exporter's own listener did it); no decision metric depends on it.
    let upkeep = handle.prometheus.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Records one decision and how long it took.
pub fn record_decision(effect: Effect, status: AuthorizationStatus, elapsed: Duration) {
    crate::decision_metrics::record(effect, status, elapsed);
}

/// Records an RPC answered with an error.
pub fn record_rpc_error(rpc: &'static str) {
    metrics::counter!(RPC_ERRORS_TOTAL, "rpc" => rpc).increment(1);
}

/// Records the replica's revision.
pub fn record_revision(revision: u64) {
    // A gauge is an f64; revisions stay far below 2^53.
    metrics::gauge!(REPLICA_REVISION).set(revision as f64);
}

/// Records the replica's staleness.
pub fn record_staleness(staleness: Duration) {
    metrics::gauge!(REPLICA_STALENESS_SECONDS).set(staleness.as_secs_f64());
}

/// Keeps the tracer provider of [`init_tracing`]; [`TracingGuard::shutdown`]
/// (or dropping the guard) flushes the spans still batched.
#[derive(Debug)]
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
    stop: std::sync::Arc<Stop>,
}

/// The exporter's stop, shared by [`TracingGuard`] and the exporter: a
/// batch that fails once it has begun is the stop's loss, which
/// [`TracingGuard::flush`] says, not a collector outage.
#[derive(Debug, Default)]
struct Stop {
    begun: std::sync::atomic::AtomicBool,
    /// Why the first batch that failed during the stop failed.
    lost: std::sync::Mutex<Option<String>>,
}

/// How long a stopping service waits for its last spans to reach the
/// collector.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

impl TracingGuard {
    /// Whether spans are exported over OTLP.
    pub fn exports_otlp(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the OTLP exporter, if any.
    pub fn shutdown(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        // Bounded below the SDK's 5 s: a collector that accepts and never
        // answers must not hold a stopping service (whose own drain takes up
        // to 5 s) past the 10 s a supervisor such as `docker stop` allows.
        let Some(provider) = self.provider.take() else {
            return;
        };
        self.stop
            .begun
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // The export under way when the stop began may fail, and the
        // shutdown's own last export still succeed: either is a loss.
        let result = provider.shutdown_with_timeout(SHUTDOWN_FLUSH);
        let lost = self.stop.lost.lock().ok().and_then(|mut l| l.take());
        match (result, lost) {
            (Err(e), _) => tracing::warn!(
                error = %e,
                "spans not delivered at shutdown (the collector did not take them within 2 s)"
            ),
            (Ok(()), Some(error)) => {
                tracing::warn!(%error, "spans not delivered at shutdown (an export failed)")
            }
            (Ok(()), None) => {}
        }
    }
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Installs the global tracing subscriber: `fmt` logs filtered by
/// `RUST_LOG` (default `info`) and, only when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set, an OpenTelemetry layer exporting spans over OTLP, over gRPC or
/// HTTP as `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` says (the exporter reads
/// the other `OTEL_EXPORTER_OTLP_*` variables itself).
///
/// Call once per process, from inside a multi-threaded Tokio runtime when
/// OTLP is used (both exporters send on it), and drop the guard while the
/// runtime still runs.
/// Fails when a global subscriber is already set or the exporter cannot be
/// built. Keep the returned guard until exit.
///
/// An `https://` collector is verified against the webpki roots; see
/// [`init_tracing_with_tls`] for more.
pub fn init_tracing(service_name: &str) -> anyhow::Result<TracingGuard> {
    init_tracing_with_tls(service_name, &authz_proto::tls::ClientTls::default())
}

/// An environment variable that is set and not empty.
fn non_empty_var(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// [`init_tracing`], verifying an `https://` collector against the webpki
/// roots and the extra roots of `tls` (an `http://` one stays plain text).
pub fn init_tracing_with_tls(
    service_name: &str,
    tls: &authz_proto::tls::ClientTls,
) -> anyhow::Result<TracingGuard> {
    use opentelemetry_otlp::WithTonicConfig;
    // An unset or empty RUST_LOG (`Environment=RUST_LOG=`) means `info`,
    // not errors only; one that does not parse is said, once the subscriber
    // is up, rather than dropped in silence.
    let (filter, bad_filter) = match non_empty_var(EnvFilter::DEFAULT_ENV) {
        None => (EnvFilter::new("info"), None),
        Some(_) => match EnvFilter::try_from_default_env() {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new("info"), Some(e.to_string())),
        },
    };
    // Unset or empty: no export (OpenTelemetry reads an empty variable as
    // unset). Otherwise an http(s) URL, checked before anything starts.
    let stop = std::sync::Arc::new(Stop::default());
    let provider = match non_empty_var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(endpoint) => {
            let endpoint = checked_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)?;
            // The exporter sends to the signal's own endpoint when it is set.
            let traces_endpoint = non_empty_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .map(|e| checked_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &e))
                .transpose()?;
            let protocol = otlp_protocol()?;
            // Where the spans go, as the log names it: for HTTP, the
            // generic endpoint with the signal's path (OTLP specification).
            let target = match (traces_endpoint, protocol) {
                (Some(given), _) => given,
                (None, OtlpProtocol::Grpc) => endpoint,
                // One `/` between them, as the exporter joins them.
                (None, OtlpProtocol::Http(_)) => {
                    format!(
                        "{}/v1/traces",
                        endpoint.strip_suffix('/').unwrap_or(&endpoint)
                    )
                }
            };
            let mut last_failure = None;
            let stop = stop.clone();
            let exporter = match protocol {
                // Without a configuration of ours the exporter's TLS trusts no
                // root at all; tonic uses it for https:// only.
                OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_tls_config(tls.tonic_config())
                    .build()?,
                OtlpProtocol::Http(protocol) => {
                    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
                    let failure = LastFailure::default();
                    last_failure = Some(failure.clone());
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_protocol(protocol)
                        .with_http_client(RuntimeHttpClient::new(tls, failure.clone())?)
                        .build()?
                }
            };
            let exporter = OutageLoggingExporter {
                inner: exporter,
                endpoint: target,
                failing: std::sync::atomic::AtomicBool::new(false),
                last_failure,
                stop,
            };
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        Resource::builder()
                            .with_service_name(service_name.to_owned())
                            .build(),
                    )
                    .build(),
            )
        }
        None => None,
    };
    if provider.is_some() {
        // Incoming `traceparent` headers make each RPC span a child of the
        // caller's trace.
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        authz_proto::serving::enable_rpc_spans();
    }
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service_name.to_owned()))
            .with_filter(EnvFilter::new(
                "info,h2=off,hyper=off,tonic=off,tower=off,opentelemetry=off",
            ))
    });
    // RUST_LOG filters the log lines only: the exported spans have their
    // own filter, so quieter logs do not switch traces off.
    tracing_subscriber::registry()
        // Colour only for a terminal: a file or a pipe gets plain text.
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_filter(filter),
        )
        .with(otel)
        .try_init()?;
    if let Some(error) = bad_filter {
        tracing::warn!(%error, "RUST_LOG is not a valid filter; logging at info");
    }
    Ok(TracingGuard { provider, stop })
}

/// `value` of the variable `name` when it is an `http://` or `https://`
/// URL with a host; otherwise the error that stops the start, naming it.
fn checked_endpoint(name: &str, value: &std::ffi::OsStr) -> anyhow::Result<String> {
    let value = value.to_string_lossy();
    let ok = value
        .parse::<tonic::codegen::http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if !ok {
        anyhow::bail!("{name} {value:?}: not an http:// or https:// URL of an OTLP collector");
    }
    Ok(value.into_owned())
}

/// Why the last OTLP/HTTP send failed, with its URL: the exporter reports
/// every transport failure as "network error" and drops the cause (an
/// untrusted certificate, a refused connection, a timeout), which the
/// outage log then adds.
type LastFailure = std::sync::Arc<std::sync::Mutex<Option<String>>>;

/// How spans reach the collector: OTLP over gRPC, or over HTTP with
/// protobuf or JSON bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OtlpProtocol {
    Grpc,
    Http(opentelemetry_otlp::Protocol),
}

/// The protocol `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` names, else
/// `OTEL_EXPORTER_OTLP_PROTOCOL` (the signal's own variable first, as the
/// OpenTelemetry specification orders them); gRPC when neither is set, the
/// default of this project since it first exported (to port 4317). Any
/// other value stops the process at start, naming the variable: spans sent
/// in a protocol the collector does not speak would all be lost.
fn otlp_protocol() -> anyhow::Result<OtlpProtocol> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        let Some(value) = non_empty_var(name) else {
            continue;
        };
        return match value.to_str() {
            Some("grpc") => Ok(OtlpProtocol::Grpc),
            Some("http/protobuf") => {
                Ok(OtlpProtocol::Http(opentelemetry_otlp::Protocol::HttpBinary))
            }
            Some("http/json") => Ok(OtlpProtocol::Http(opentelemetry_otlp::Protocol::HttpJson)),
            _ => anyhow::bail!(
                "{name} {value:?}: not an OTLP protocol; use \"grpc\" (a collector's port 4317 by \
                 default), \"http/protobuf\" or \"http/json\" (port 4318)"
            ),
        };
    }
    Ok(OtlpProtocol::Grpc)
}

/// The request deadline of an OTLP/HTTP export, in milliseconds:
/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`,
/// else the specification's 10 s (what the exporter itself reads for the
/// clients it builds, which it does not apply to one given to it).
fn otlp_timeout() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|name| non_empty_var(name)?.to_str()?.trim().parse::<u64>().ok())
    .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// The OTLP/HTTP client: hyper, over rustls with the trust and client
/// certificate of every other client of the process, run on the service's
/// Tokio runtime. The SDK's batch processor exports from a thread of its
/// own, outside any runtime, where hyper could neither connect nor time out;
/// each export is therefore spawned onto the runtime and awaited from there.
#[derive(Debug)]
struct RuntimeHttpClient {
    runtime: tokio::runtime::Handle,
    client: opentelemetry_http::hyper::HyperClient<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    >,
    last_failure: LastFailure,
}

impl RuntimeHttpClient {
    /// A client for the runtime this is called on, trusting what `tls`
    /// trusts for `https://` collectors (`http://` ones stay plain text).
    fn new(tls: &authz_proto::tls::ClientTls, last_failure: LastFailure) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| anyhow::anyhow!("OTLP over HTTP needs a Tokio runtime: {e}"))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.http_rustls_config()?)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            runtime,
            client: opentelemetry_http::hyper::HyperClient::new(connector, otlp_timeout(), None),
            last_failure,
        })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let url = request.uri().to_string();
        let sent = self
            .runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?;
        let cause = sent.as_ref().err().map(|e| {
            // hyper's errors say little on their own ("client error
            // (Connect)"); their sources say why.
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            format!("{url}: {}", once_each(&text))
        });
        if let Ok(mut last) = self.last_failure.lock() {
            *last = cause;
        }
        sent
    }
}

/// The OTLP exporter, saying once when exports start failing and once when
/// they work again. The SDK itself would log an error for every batch it
/// could not send (every few seconds while a collector is down); here a
/// failed batch is dropped quietly after the first (as the SDK drops it).
#[derive(Debug)]
struct OutageLoggingExporter<E> {
    inner: E,
    endpoint: String,
    failing: std::sync::atomic::AtomicBool,
    /// The cause an OTLP/HTTP exporter drops, kept by its client.
    last_failure: Option<LastFailure>,
    /// [`TracingGuard`]'s: whether the process is stopping.
    stop: std::sync::Arc<Stop>,
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for OutageLoggingExporter<E>
{
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        use std::sync::atomic::Ordering::Relaxed;
        let endpoint = &self.endpoint;
        match self.inner.export(batch).await {
            Ok(()) => {
                if self.failing.swap(false, Relaxed) {
                    tracing::info!(%endpoint, "trace export works again");
                }
            }
            Err(e) => {
                let cause = || {
                    let cause = self
                        .last_failure
                        .as_ref()
                        .and_then(|l| l.lock().ok()?.take());
                    match cause {
                        Some(cause) => format!("{}: {cause}", once_each(&e.to_string())),
                        None => once_each(&e.to_string()),
                    }
                };
                if self.stop.begun.load(Relaxed) {
                    if let Ok(mut lost) = self.stop.lost.lock() {
                        lost.get_or_insert_with(cause);
                    }
                } else if !self.failing.swap(true, Relaxed) {
                    let error = cause();
                    tracing::warn!(
                        %endpoint, %error,
                        "trace export failed; spans are dropped until it works again \
                         (said again only then)"
                    );
                }
            }
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// `a: b: b: c` as `a: b: c`, and `a: b: c: b: c` as `a: b: c`: an error's
/// causes, each once (the OTLP exporter's messages repeat their
/// transport's, a cause of one part or of several).
fn once_each(message: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in message.split(": ") {
        parts.push(part);
        // A run of parts just like the run before it is dropped.
        let n = parts.len();
        if let Some(k) = (1..=n / 2).find(|&k| parts[n - k..] == parts[n - 2 * k..n - k]) {
            parts.truncate(n - k);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::once_each;

    #[test]
    fn repeated_causes_are_said_once() {
        assert_eq!(once_each("a: b: b: c"), "a: b: c");
        // tonic's TLS failures repeat a cause of two parts.
        assert_eq!(
            once_each(
                "transport error: invalid peer certificate: UnknownIssuer: invalid peer certificate: UnknownIssuer"
            ),
            "transport error: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(once_each("a: b: a: c"), "a: b: a: c");
        assert_eq!(once_each("x"), "x");
    }
}
