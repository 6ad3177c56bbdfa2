//! OpenTelemetry traces over OTLP (issue: "traces exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set"): `authz up` as a real process
//! exports one span per RPC to a collector on loopback, named after the
//! gRPC method, carrying the decision, and joined to the caller's trace
//! through a W3C `traceparent` header.

mod common;

use std::time::{Duration, Instant};

use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_tests::process::{HANG_LIMIT, within};
use common::{channel, eventually, is_permit, request, start_up, tempdir};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::sync::mpsc;

/// A collector that forwards every export it receives.
struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref() {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => Some(s.as_str()),
            _ => None,
        })
}

/// A collector on a port chosen by the OS: its URL, and every export it
/// receives.
async fn collector() -> (String, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, exports) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (url, exports)
}

/// The owner reading the front door: permitted by the demo policies.
fn owner_reads() -> authz_proto::pb::DecisionRequest {
    request(
        "CownerPhone",
        "frontDoor",
        authz_proto::pb::Operation::Retrieve,
    )
}

/// `authz up` exporting to a fresh [`collector`] (batches every 100 ms
/// rather than every 5 s), once the demo policies have reached its PDP:
/// its data directory and process (keep both), a PDP client, the exports.
async fn traced_up(
    name: &str,
) -> (
    tempfile::TempDir,
    common::Proc,
    PolicyDecisionPointClient<tonic::transport::Channel>,
    mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
) {
    let (collector_url, exports) = collector().await;
    let data = tempdir(name);
    let (up, url) = start_up(
        data.path(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector_url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    eventually(&mut pdp, &owner_reads(), true).await;
    (data, up, pdp, exports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_rpcs_are_exported_as_spans_in_the_callers_trace() {
    let (_data, _up, mut pdp, mut exports) = traced_up("otlp").await;
    let owner_reads = owner_reads();

    // The caller's trace (W3C Trace Context: version-traceid-parentid-flags).
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let mut req = tonic::Request::new(owner_reads);
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span}-01").parse().unwrap(),
    );
    let decision = pdp.decide(req).await.unwrap().into_inner();
    assert!(is_permit(&decision), "{}", decision.summary);

    let deadline = Instant::now() + Duration::from_secs(30);
    let (span, service_name): (Span, String) = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let export = tokio::time::timeout(remaining, exports.recv())
            .await
            .expect("no span of the traced Decide reached the collector within 30 s")
            .expect("collector channel open");
        let found = export.resource_spans.iter().find_map(|rs| {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_default()
                .to_owned();
            rs.scope_spans
                .iter()
                .flat_map(|ss| &ss.spans)
                .find(|s| {
                    // Decide calls of `eventually` start traces of their own.
                    s.name == "onem2m.authz.v1.PolicyDecisionPoint/Decide"
                        && hex(&s.trace_id) == trace_id
                })
                .map(|s| (s.clone(), service))
        });
        if let Some(found) = found {
            break found;
        }
    };
    assert_eq!(service_name, "onem2m-authz");
    assert_eq!(hex(&span.parent_span_id), parent_span);
    // SpanKind SERVER = 2 in OTLP.
    assert_eq!(span.kind, 2);
    assert_eq!(string_attr(&span.attributes, "rpc.system"), Some("grpc"));
    assert_eq!(string_attr(&span.attributes, "rpc.method"), Some("Decide"));
    assert_eq!(
        string_attr(&span.attributes, "authz.decision"),
        Some("permit")
    );
    assert_eq!(
        string_attr(&span.attributes, "authz.status"),
        Some("AUTHORIZATION_STATUS_OK")
    );

    // A DecideBatch's span carries its count as a number.
    let batch_trace = "4bf92f3577b34da6a3ce929d0e0e4737";
    let mut req = tonic::Request::new(authz_proto::pb::DecideBatchRequest {
        requests: vec![
            request(
                "CownerPhone",
                "frontDoor",
                authz_proto::pb::Operation::Retrieve
            );
            3
        ],
    });
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{batch_trace}-{parent_span}-01")
            .parse()
            .unwrap(),
    );
    pdp.decide_batch(req).await.unwrap();
    let span = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let export = tokio::time::timeout(remaining, exports.recv())
            .await
            .expect("no span of the traced DecideBatch reached the collector")
            .expect("collector channel open");
        let found = export
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .find(|s| {
                s.name == "onem2m.authz.v1.PolicyDecisionPoint/DecideBatch"
                    && hex(&s.trace_id) == batch_trace
            })
            .cloned();
        if let Some(found) = found {
            break found;
        }
    };
    let count = span
        .attributes
        .iter()
        .find(|kv| kv.key == "authz.decisions")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.clone());
    assert_eq!(count, Some(any_value::Value::IntValue(3)), "{span:?}");
}

/// The spans of `trace_id` that reach the collector within 30 s, once one
/// named `until` (of that trace) has arrived.
async fn spans_of_trace(
    exports: &mut mpsc::UnboundedReceiver<ExportTraceServiceRequest>,
    trace_id: &str,
    until: &str,
) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut spans = Vec::new();
    while !spans.iter().any(|s: &Span| s.name == until) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let export = tokio::time::timeout(remaining, exports.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("no {until} span of trace {trace_id} within 30 s: {spans:#?}")
            })
            .expect("collector channel open");
        spans.extend(
            export
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .filter(|s| hex(&s.trace_id) == trace_id)
                .cloned(),
        );
    }
    spans
}

/// A `DecideStream`'s span lasts the stream (it was exported when the
/// handler returned the stream, microseconds long), and the PDP's own call
/// to the PIP joins the trace of the decision that made it, as a child of
/// the decision's span (README: "joins the caller's trace").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_span_lasts_the_stream_and_pip_calls_join_the_trace() {
    let (_data, _up, mut pdp, mut exports) = traced_up("otlp-stream").await;
    let owner_reads = owner_reads();
    let parent_span = "00f067aa0ba902b7";

    // Two requests 400 ms apart on one stream.
    let stream_trace = "5bf92f3577b34da6a3ce929d0e0e4736";
    let (send, requests) = mpsc::channel(4);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(requests));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{stream_trace}-{parent_span}-01")
            .parse()
            .unwrap(),
    );
    let mut answers = pdp.decide_stream(req).await.unwrap().into_inner();
    for _ in 0..2 {
        send.send(owner_reads.clone()).await.unwrap();
        let decision = within(answers.message(), HANG_LIMIT, || "an answer".into())
            .await
            .unwrap()
            .expect("an answer");
        assert!(is_permit(&decision), "{}", decision.summary);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    drop(send);
    let end = within(answers.message(), HANG_LIMIT, || "the stream's end".into()).await;
    assert!(end.unwrap().is_none(), "stream ends");
    let stream = "onem2m.authz.v1.PolicyDecisionPoint/DecideStream";
    let spans = spans_of_trace(&mut exports, stream_trace, stream).await;
    let span = spans
        .iter()
        .find(|s| s.name == stream)
        .expect("stream span");
    let lasted_ms = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano)
        / 1_000_000;
    assert!(
        lasted_ms >= 400,
        "the stream's span lasted {lasted_ms} ms: {span:?}"
    );

    // A newcomer's decision needs the PIP (its groups): the PIP's
    // ResolveAttributes span is in the decision's trace, under its span.
    let pip_trace = "6bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(request(
        "Cnewcomer",
        "backDoor",
        authz_proto::pb::Operation::Retrieve,
    ));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{pip_trace}-{parent_span}-01").parse().unwrap(),
    );
    pdp.decide(req).await.unwrap();
    let resolve = "onem2m.authz.v1.PolicyInformationPoint/ResolveAttributes";
    let decide = "onem2m.authz.v1.PolicyDecisionPoint/Decide";
    let mut spans = spans_of_trace(&mut exports, pip_trace, resolve).await;
    if !spans.iter().any(|s| s.name == decide) {
        spans.extend(spans_of_trace(&mut exports, pip_trace, decide).await);
    }
    let decide_span = spans
        .iter()
        .find(|s| s.name == decide)
        .expect("Decide span");
    let resolve_span = spans.iter().find(|s| s.name == resolve).expect("PIP span");
    assert_eq!(hex(&decide_span.parent_span_id), parent_span);
    assert_eq!(
        resolve_span.parent_span_id, decide_span.span_id,
        "{resolve_span:?}"
    );
}

/// A client of the PRP at `url`, after one `ListAcps` call through it
/// (an RPC, so a span to export).
async fn list_acps_at(
    url: &str,
) -> authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient<
    tonic::transport::Channel,
> {
    let mut prp = authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient::new(
        channel(url).await,
    );
    prp.list_acps(authz_proto::pb::ListAcpsRequest::default())
        .await
        .expect("ListAcps");
    prp
}

/// A test CA and a certificate for `localhost` under `data`: the files,
/// and the server side of TLS with that certificate.
fn localhost_pki(
    data: &tempfile::TempDir,
) -> (authz_tests::tls::PkiFiles, authz_proto::tls::ServerTls) {
    let files = authz_tests::tls::TestPki::new(&["localhost"]).write(data.path());
    let tls = authz_proto::tls::ServerTls::from_pem(
        &std::fs::read(&files.cert).unwrap(),
        &std::fs::read(&files.key).unwrap(),
    )
    .unwrap();
    (files, tls)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An `https://` collector (a test CA's certificate, trusted with
/// `--tls-ca`) receives the spans over TLS: the collector serves TLS only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_https_collector_trusted_with_tls_ca() {
    let data = tempdir("otlp-tls");
    let (files, tls) = localhost_pki(&data);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let (tx, mut exports) = mpsc::unbounded_channel();
    tokio::spawn(
        authz_proto::serving::server(Some(&tls))
            .unwrap()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(authz_proto::listener::incoming(listener)),
    );

    let ca = files.ca.to_str().unwrap();
    let (_prp, url) = common::start_with_env(
        &[
            "prp",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "memory",
            "--tls-ca",
            ca,
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector_url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        "PRP on",
    );
    list_acps_at(&url).await;
    let export = tokio::time::timeout(Duration::from_secs(30), exports.recv())
        .await
        .expect("no span reached the https collector within 30 s")
        .expect("collector channel open");
    assert!(
        export
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .any(|s| s.name == "onem2m.authz.v1.PolicyRetrievalPoint/ListAcps"),
        "{export:?}"
    );
}

/// What an OTLP/HTTP collector received in one export: its path, its
/// `Content-Type`, its body.
type HttpExport = (String, String, bytes::Bytes);

/// An OTLP/HTTP collector (HTTP/1.1, over TLS when `tls` is given) on a
/// port chosen by the OS: its port, and every POST it receives. It answers
/// each as a collector does, 200 with an empty export response in the
/// request's encoding.
async fn http_collector(
    tls: Option<&authz_proto::tls::ServerTls>,
) -> (u16, mpsc::UnboundedReceiver<HttpExport>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, exports) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let content_type = headers
                    .get(axum::http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let answer = if content_type == "application/json" {
                    "{}"
                } else {
                    ""
                };
                let _ = tx.send((uri.path().to_owned(), content_type.clone(), body));
                ([(axum::http::header::CONTENT_TYPE, content_type)], answer)
            }
        },
    );
    match tls {
        Some(tls) => {
            let config = std::sync::Arc::new(
                tls.rustls_config(authz_proto::tls::ClientCertificates::Optional)
                    .unwrap(),
            );
            tokio::spawn(authz_proto::https::serve(
                listener,
                app,
                config,
                std::future::pending(),
                |_, _| axum::http::Extensions::new(),
            ));
        }
        None => {
            tokio::spawn(authz_proto::https::serve_plain(
                listener,
                app,
                std::future::pending(),
            ));
        }
    }
    (port, exports)
}

/// Starts an in-memory PRP exporting to `endpoint` with `env`, makes one
/// `ListAcps` call, and returns the first export the collector receives
/// within 30 s.
async fn list_acps_exported(
    endpoint: &str,
    env: &[(&str, &str)],
    args: &[&str],
    exports: &mut mpsc::UnboundedReceiver<HttpExport>,
) -> HttpExport {
    let mut all_env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    all_env.extend_from_slice(env);
    let mut all_args = vec!["prp", "--listen", "127.0.0.1:0", "--data-dir", "memory"];
    all_args.extend_from_slice(args);
    let (_prp, url) = common::start_with_env(&all_args, &all_env, "PRP on");
    list_acps_at(&url).await;
    tokio::time::timeout(Duration::from_secs(30), exports.recv())
        .await
        .unwrap_or_else(|_| panic!("no export reached the collector at {endpoint} within 30 s"))
        .expect("collector channel open")
}

const LIST_ACPS: &str = "onem2m.authz.v1.PolicyRetrievalPoint/ListAcps";

/// `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`: spans go to the
/// collector's `/v1/traces` (the OTLP specification's path under the
/// generic endpoint) as a protobuf `ExportTraceServiceRequest`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_http_protobuf_collector() {
    use prost::Message as _;
    let (port, mut exports) = http_collector(None).await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let (path, content_type, body) = list_acps_exported(
        &endpoint,
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
        &[],
        &mut exports,
    )
    .await;
    assert_eq!(path, "/v1/traces");
    assert_eq!(content_type, "application/x-protobuf");
    let export = ExportTraceServiceRequest::decode(body).expect("a protobuf export");
    let names: Vec<&str> = export
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.name.as_str())
        .collect();
    assert!(names.contains(&LIST_ACPS), "{names:?}");
    let service = export
        .resource_spans
        .iter()
        .filter_map(|rs| rs.resource.as_ref())
        .find_map(|r| string_attr(&r.attributes, "service.name"));
    assert_eq!(service, Some("onem2m-authz-prp"));
}

/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json` (the signal's own
/// variable wins over the generic one), to an `https://` collector trusted
/// with `--tls-ca`: the JSON encoding of OTLP, over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_https_json_collector_the_traces_protocol_names() {
    let data = tempdir("otlp-http-tls");
    let (files, tls) = localhost_pki(&data);
    let (port, mut exports) = http_collector(Some(&tls)).await;
    let endpoint = format!("https://localhost:{port}");
    let (path, content_type, body) = list_acps_exported(
        &endpoint,
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ],
        &["--tls-ca", files.ca.to_str().unwrap()],
        &mut exports,
    )
    .await;
    assert_eq!(path, "/v1/traces");
    assert_eq!(content_type, "application/json");
    let export: serde_json::Value = serde_json::from_slice(&body).expect("a JSON export");
    let names: Vec<&str> = export["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&LIST_ACPS), "{export}");
}

/// An `https://` collector whose certificate the service does not trust
/// (no `--tls-ca`) receives nothing; the service keeps serving and logs the
/// failure once with its URL and its cause, which the OTLP/HTTP exporter
/// itself reports only as "network error".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_https_collector_gets_no_span_and_the_log_says_why() {
    let data = tempdir("otlp-http-untrusted");
    let (_files, tls) = localhost_pki(&data);
    let (port, mut exports) = http_collector(Some(&tls)).await;
    let endpoint = format!("https://localhost:{port}");
    let (_prp, url, lines) = common::start_with_output(
        &["prp", "--listen", "127.0.0.1:0", "--data-dir", "memory"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        "PRP on",
    );
    let mut prp = list_acps_at(&url).await;
    let seen = authz_tests::process::lines_until(
        &lines,
        Duration::from_secs(30),
        |line| line.contains("trace export failed"),
        || "no 'trace export failed' line within 30 s".into(),
    )
    .unwrap_or_else(|seen| panic!("{seen:?}"));
    let line = seen.last().expect("the failure line");
    assert!(
        line.contains(&format!("{endpoint}/v1/traces")) && line.contains("certificate"),
        "{line}"
    );
    // Still serving, and the collector got nothing.
    prp.list_acps(authz_proto::pb::ListAcpsRequest::default())
        .await
        .expect("ListAcps after the failure");
    assert!(
        exports.try_recv().is_err(),
        "an untrusted collector received spans"
    );
}

/// A stop while the collector holds an export (it takes the connection and
/// never answers), which fails during the stop: the spans are lost, and the
/// log says so once, as a loss at shutdown, not as a collector outage (and
/// not nothing, though the stop's own last export has nothing left to send).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_lost_at_a_stop_are_said_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // Holds every connection open, reading nothing, answering nothing, and
    // says when one comes: an export is then under way.
    let (accepted, mut connections) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
            let _ = accepted.send(());
        }
    });
    for protocol in ["http/protobuf", "grpc"] {
        let (mut prp, url, lines) = common::start_with_output(
            &["prp", "--listen", "127.0.0.1:0", "--data-dir", "memory"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                // Fails 1 s in: within the stop's 2 s flush.
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ],
            "PRP on",
        );
        while connections.try_recv().is_ok() {}
        list_acps_at(&url).await;
        within(connections.recv(), HANG_LIMIT, || {
            format!("no export of authz prp ({protocol}) reached the collector")
        })
        .await;
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &prp.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let seen = authz_tests::process::lines_until(
            &lines,
            HANG_LIMIT,
            |_| false,
            || format!("authz prp ({protocol}) still running after SIGTERM"),
        )
        .unwrap_or_else(|seen| seen);
        let lost = seen
            .iter()
            .filter(|l| l.contains("spans not delivered at shutdown"))
            .count();
        assert_eq!(lost, 1, "{protocol}: {seen:#?}");
        assert!(
            !seen.iter().any(|l| l.contains("trace export failed")),
            "{protocol}: the stop's loss reported as an outage: {seen:#?}"
        );
        let status = prp.0.wait().expect("wait");
        assert!(status.success(), "{protocol}: {status}");
    }
}
