//! Observability of the PDP: Prometheus metrics through the `metrics` facade
//! and tracing with an optional OpenTelemetry OTLP exporter.
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
//!
//! Until a recorder is installed (see [`install_prometheus`]) every metric
//! call is a no-op.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use authz_core::decision::{AuthorizationStatus, Effect};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Counter of decisions by result and status.
pub const DECISIONS_TOTAL: &str = "authz_decisions_total";
/// Histogram of the time to decide one request (conversion, policy lookup,
/// evaluation, answer conversion), in seconds.
pub const DECISION_SECONDS: &str = "authz_decision_seconds";
/// Gauge of the replica's PRP revision.
pub const REPLICA_REVISION: &str = "authz_replica_revision";
/// Gauge of the seconds since the replica was last known current.
pub const REPLICA_STALENESS_SECONDS: &str = "authz_replica_staleness_seconds";
/// Counter of RPCs answered with an error, by RPC name.
pub const RPC_ERRORS_TOTAL: &str = "authz_rpc_errors_total";
/// Counter of `ResolveAttributes` calls to the PIP on cache misses, by
/// result (`ok`, `error`, `timeout`).
pub const PIP_FETCHES_TOTAL: &str = "authz_pip_fetches_total";

/// Histogram buckets of [`DECISION_SECONDS`]: 1 µs to 1 s.
pub const DECISION_BUCKETS: [f64; 16] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1, 0.5,
    1.0,
];

/// Registers metric descriptions (shown as `# HELP` lines).
pub fn describe_metrics() {
    metrics::describe_counter!(DECISIONS_TOTAL, "Decisions by result and status");
    metrics::describe_histogram!(
        DECISION_SECONDS,
        metrics::Unit::Seconds,
        "Time to decide one request"
    );
    metrics::describe_gauge!(REPLICA_REVISION, "PRP revision of the PDP's replica");
    metrics::describe_gauge!(
        REPLICA_STALENESS_SECONDS,
        metrics::Unit::Seconds,
        "Seconds since the replica was last known current (0 while the Watch stream is up)"
    );
    metrics::describe_counter!(RPC_ERRORS_TOTAL, "RPCs answered with an error, by RPC");
    metrics::describe_counter!(
        PIP_FETCHES_TOTAL,
        "PIP attribute fetches on cache misses, by result"
    );
}

/// Counts one PIP attribute fetch.
pub fn record_pip_fetch(result: &'static str) {
    metrics::counter!(PIP_FETCHES_TOTAL, "result" => result).increment(1);
}

/// Installs the global Prometheus recorder with an HTTP listener serving
/// `GET /metrics` on `addr`, and returns a handle that renders the same text.
///
/// Must run inside a Tokio runtime. Fails when a recorder is already
/// installed or the address cannot be bound. The exporter cannot report a
/// port chosen by the OS, so tests pass a free port found by binding
/// `127.0.0.1:0` first.
pub fn install_prometheus(addr: SocketAddr) -> anyhow::Result<PrometheusHandle> {
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(DECISION_SECONDS.to_owned()),
            &DECISION_BUCKETS,
        )?
        .build()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = exporter.await {
            tracing::error!(error = ?e, "Prometheus exporter stopped");
        }
    });
    describe_metrics();
    // Bind the decision handles to this recorder once: looking a labelled
    // metric up in the registry on every decision cost more than deciding.
    let _ = DECISION_HANDLES.set(DecisionHandles::register());
    Ok(handle)
}

/// The decision metrics, registered once with the installed recorder.
struct DecisionHandles {
    /// Indexed by `[effect][status]` as in [`DecisionHandles::slot`].
    counters: [[metrics::Counter; STATUSES.len()]; 2],
    seconds: metrics::Histogram,
}

const STATUSES: [AuthorizationStatus; 5] = [
    AuthorizationStatus::Ok,
    AuthorizationStatus::NotApplicable,
    AuthorizationStatus::MissingAttribute,
    AuthorizationStatus::SyntaxError,
    AuthorizationStatus::ProcessingError,
];

static DECISION_HANDLES: OnceLock<DecisionHandles> = OnceLock::new();

impl DecisionHandles {
    fn register() -> Self {
        let row = |effect: Effect| {
            STATUSES.map(|status| {
                metrics::counter!(DECISIONS_TOTAL, "result" => result_label(effect), "status" => status_label(status))
            })
        };
        Self {
            counters: [row(Effect::Permit), row(Effect::Deny)],
            seconds: metrics::histogram!(DECISION_SECONDS),
        }
    }

    fn slot(effect: Effect, status: AuthorizationStatus) -> (usize, usize) {
        let e = match effect {
            Effect::Permit => 0,
            Effect::Deny => 1,
        };
        let s = STATUSES.iter().position(|x| *x == status).unwrap_or(0);
        (e, s)
    }
}

fn result_label(effect: Effect) -> &'static str {
    match effect {
        Effect::Permit => "permit",
        Effect::Deny => "deny",
    }
}

fn status_label(status: AuthorizationStatus) -> &'static str {
    match status {
        AuthorizationStatus::Ok => "ok",
        AuthorizationStatus::NotApplicable => "not_applicable",
        AuthorizationStatus::MissingAttribute => "missing_attribute",
        AuthorizationStatus::SyntaxError => "syntax_error",
        AuthorizationStatus::ProcessingError => "processing_error",
    }
}

/// Records one decision and how long it took.
pub fn record_decision(effect: Effect, status: AuthorizationStatus, elapsed: Duration) {
    match DECISION_HANDLES.get() {
        Some(h) => {
            let (e, s) = DecisionHandles::slot(effect, status);
            h.counters[e][s].increment(1);
            h.seconds.record(elapsed.as_secs_f64());
        }
        // A recorder installed by other means than `install_prometheus`.
        None => {
            metrics::counter!(DECISIONS_TOTAL, "result" => result_label(effect), "status" => status_label(status))
                .increment(1);
            metrics::histogram!(DECISION_SECONDS).record(elapsed.as_secs_f64());
        }
    }
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
}

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
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("OpenTelemetry shutdown: {e}");
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
/// is set, an OpenTelemetry layer exporting spans over OTLP/gRPC (the
/// exporter reads the other `OTEL_EXPORTER_OTLP_*` variables itself).
///
/// Call once per process, from inside a Tokio runtime when OTLP is used.
/// Fails when a global subscriber is already set or the exporter cannot be
/// built. Keep the returned guard until exit.
pub fn init_tracing(service_name: &str) -> anyhow::Result<TracingGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = match std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(_) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()?;
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
        .with(tracing_subscriber::fmt::layer().with_filter(filter))
        .with(otel)
        .try_init()?;
    Ok(TracingGuard { provider })
}
