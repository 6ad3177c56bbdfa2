//! `PepClient` and `PepLayer` against a scripted PDP over real gRPC on
//! 127.0.0.1: the dynamic-authorization mapping (token request information
//! in the 4103 body, `X-M2M-ATI`, tokens and token IDs forwarded and never
//! cached), retries of UNAVAILABLE, load balancing over a dead and a live
//! endpoint, fail-closed and the fail-open list, INVALID_ARGUMENT → 4000,
//! batch and stream order, and a stream that survives a PDP restart.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authz_pep::{
    CacheConfig, CseContext, DecisionSource, DenyDetail, DiscoveryRequest, Enforcement,
    FailOpenRule, OriginatorIp, PepClient, PepConfig, PepLayer, RetryPolicy,
};
use authz_proto::pb;
use authz_proto::pb::policy_decision_point_server::{
    PolicyDecisionPoint, PolicyDecisionPointServer,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tower::{Layer, ServiceExt};

type Script = dyn Fn(&pb::DecisionRequest) -> Result<pb::Decision, Status> + Send + Sync;

/// A PDP that answers by a script and records what it was asked.
#[derive(Clone)]
struct FakePdp {
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<pb::DecisionRequest>>>,
    unavailable_first: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    /// Set to end every open `DecideStream` (as a dying PDP does).
    streams_end: Arc<tokio::sync::watch::Sender<bool>>,
    /// Set to answer out of order: a batch reversed, a unary call naming
    /// another request (a malformed PDP).
    misorder: Arc<AtomicBool>,
}

impl FakePdp {
    fn new(
        script: impl Fn(&pb::DecisionRequest) -> Result<pb::Decision, Status> + Send + Sync + 'static,
    ) -> Self {
        Self {
            script: Arc::new(script),
            seen: Arc::default(),
            unavailable_first: Arc::default(),
            calls: Arc::default(),
            streams_end: Arc::new(tokio::sync::watch::channel(false).0),
            misorder: Arc::default(),
        }
    }

    fn answer(&self, req: &pb::DecisionRequest) -> Result<pb::Decision, Status> {
        self.seen.lock().expect("seen").push(req.clone());
        let mut d = (self.script)(req)?;
        d.request_id = req.request_id.clone();
        Ok(d)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn last(&self) -> pb::DecisionRequest {
        self.seen
            .lock()
            .expect("seen")
            .last()
            .cloned()
            .expect("a request")
    }

    /// Serves on `listener` until the returned sender fires (or drops).
    fn serve_on(
        &self,
        listener: TcpListener,
    ) -> (JoinHandle<()>, tokio::sync::oneshot::Sender<()>) {
        let service = PolicyDecisionPointServer::new(self.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = stopped.await;
                })
                .await;
        });
        (task, stop)
    }

    /// Serves on a fresh port until the returned sender fires (or drops).
    async fn serve(&self) -> (String, tokio::sync::oneshot::Sender<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = format!("http://{}", l.local_addr().expect("addr"));
        let (_task, stop) = self.serve_on(l);
        (addr, stop)
    }
}

type DecisionStream = Pin<Box<dyn Stream<Item = Result<pb::Decision, Status>> + Send>>;

#[tonic::async_trait]
impl PolicyDecisionPoint for FakePdp {
    async fn decide(
        &self,
        request: Request<pb::DecisionRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .unavailable_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Status::unavailable("warming up"));
        }
        let mut d = self.answer(request.get_ref())?;
        if self.misorder.load(Ordering::SeqCst) {
            d.request_id = format!("other-{}", d.request_id);
        }
        Ok(Response::new(d))
    }

    async fn decide_batch(
        &self,
        request: Request<pb::DecideBatchRequest>,
    ) -> Result<Response<pb::DecideBatchResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let decisions = request
            .get_ref()
            .requests
            .iter()
            .map(|r| {
                self.answer(r).unwrap_or_else(|s| pb::Decision {
                    decision: 2,
                    status: pb::AuthorizationStatus::SyntaxError as i32,
                    summary: s.message().to_owned(),
                    request_id: r.request_id.clone(),
                    ..Default::default()
                })
            })
            .collect::<Vec<_>>();
        let decisions = if self.misorder.load(Ordering::SeqCst) {
            decisions.into_iter().rev().collect()
        } else {
            decisions
        };
        Ok(Response::new(pb::DecideBatchResponse { decisions }))
    }

    type DecideStreamStream = DecisionStream;

    async fn decide_stream(
        &self,
        request: Request<Streaming<pb::DecisionRequest>>,
    ) -> Result<Response<Self::DecideStreamStream>, Status> {
        // Each answered as it is decided, as the PDP does: a slow one does
        // not hold up those behind it.
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let me = self.clone();
        let mut incoming = request.into_inner();
        let mut ending = self.streams_end.subscribe();
        tokio::spawn(async move {
            loop {
                // Dropping the request side when the stream is ended, so
                // that the server's shutdown does not wait on it.
                let item = tokio::select! {
                    item = incoming.next() => item,
                    _ = ending.wait_for(|end| *end) => None,
                };
                let Some(item) = item else { break };
                me.calls.fetch_add(1, Ordering::SeqCst);
                let (me, tx) = (me.clone(), tx.clone());
                tokio::task::spawn_blocking(move || {
                    let _ = tx.blocking_send(Some(item.and_then(|r| me.answer(&r))));
                });
            }
        });
        let answers = tokio_stream::wrappers::ReceiverStream::new(rx);
        let end = tokio_stream::wrappers::WatchStream::new(self.streams_end.subscribe())
            .filter(|end| *end)
            .map(|_| None);
        Ok(Response::new(Box::pin(answers.merge(end).map_while(|x| x))))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(pb::StatusResponse {
            replica_revision: 7,
            ..Default::default()
        }))
    }
}

fn permit() -> pb::Decision {
    pb::Decision {
        decision: pb::AuthorizationDecision::Permit as i32,
        status: pb::AuthorizationStatus::Ok as i32,
        policy_revision: 7,
        ..Default::default()
    }
}

fn deny() -> pb::Decision {
    pb::Decision {
        decision: pb::AuthorizationDecision::Deny as i32,
        status: pb::AuthorizationStatus::NotApplicable as i32,
        decision_id: "d-9".into(),
        policy_revision: 7,
        ..Default::default()
    }
}

fn request(originator: &str, target: &str) -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: originator.into(),
        operation: pb::Operation::Retrieve as i32,
        target: target.into(),
        request_id: "rq".into(),
        ..Default::default()
    }
}

fn cse() -> CseContext {
    CseContext::new("//home.example", "/mn-cse-123456").expect("cse")
}

/// A dead endpoint: a port that was bound and released.
async fn dead_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

/// The layer around a handler that answers 200 with `X-M2M-RSC: 2000`.
async fn call_layer(
    layer: &PepLayer,
    req: http::Request<Full<Bytes>>,
) -> (http::StatusCode, http::HeaderMap, String) {
    let handler = tower::service_fn(|_req: http::Request<Full<Bytes>>| async {
        let mut r = http::Response::new(Full::new(Bytes::from_static(b"{}")));
        r.headers_mut()
            .insert("x-m2m-rsc", http::HeaderValue::from_static("2000"));
        Ok::<_, Infallible>(r)
    });
    let response = layer.layer(handler).oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

fn http_get(uri: &str, headers: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::builder().method("GET").uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Full::new(Bytes::new())).expect("request");
    req.extensions_mut()
        .insert(OriginatorIp("192.168.1.23".parse().expect("ip")));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_information_and_ati_through_the_layer() {
    let pdp = FakePdp::new(|r| {
        if !r.local_token_ids.is_empty() || !r.tokens.is_empty() {
            let mut d = permit();
            d.assigned_token_ids = vec![
                pb::LocalTokenIdAssignment {
                    local_token_id: "lt1".into(),
                    token_id: "tk1@das.home.example".into(),
                },
                pb::LocalTokenIdAssignment {
                    local_token_id: "lt2".into(),
                    token_id: "tk2@das.home.example".into(),
                },
            ];
            return Ok(d);
        }
        let mut d = deny();
        if r.token_request_indicator {
            d.token_request_info = Some(pb::TokenRequestInfo {
                das_info: vec![pb::DasInfo {
                    uri: "http://das.home.example/das".into(),
                    das_request: Some(pb::DasRequest {
                        originator: format!("//home.example/mn-cse-123456/{}", r.originator),
                        operation: r.operation,
                        targeted_resource_id: r.target.clone(),
                        ..Default::default()
                    }),
                    secured_das_request: String::new(),
                }],
            });
        }
        Ok(d)
    });
    let (addr, _stop) = pdp.serve().await;
    let client =
        PepClient::new(PepConfig::new([addr]).with_cache(CacheConfig::default())).expect("client");
    let layer = PepLayer::new(client, cse());

    // A Deny with tqi: 403, 4103, tqf in the body, RI echoed.
    let (status, headers, body) = call_layer(
        &layer,
        http_get(
            "/~/mn-cse-123456/frontDoor?tqi=true",
            &[("X-M2M-Origin", "Cguest"), ("X-M2M-RI", "r-1")],
        ),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(headers["x-m2m-rsc"], "4103");
    assert_eq!(headers["x-m2m-ri"], "r-1");
    assert_eq!(headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body,
        serde_json::json!({"m2m:tqf": {"dasi": [{"uri": "http://das.home.example/das",
            "dreq": {"or": "//home.example/mn-cse-123456/Cguest", "op": 2, "trid": "frontDoor"}}]}})
    );
    let seen = pdp.last();
    assert!(seen.token_request_indicator);
    assert_eq!(
        seen.target, "frontDoor",
        "SP-relative address made CSE-relative"
    );
    assert_eq!(
        seen.originator_ip.and_then(|i| i.address),
        Some(pb::ip_address::Address::Ipv4("192.168.1.23".into()))
    );
    assert!(
        seen.request_time.is_some(),
        "stamped with the layer's clock"
    );

    // The retry with tokens, Token-IDs and Local-Token-IDs: forwarded, the
    // assigned Local-Token-IDs in X-M2M-ATI, and never cached.
    let before = pdp.calls();
    for _ in 0..2 {
        let (status, headers, _) = call_layer(
            &layer,
            http_get(
                "/~/mn-cse-123456/frontDoor?tids=tk1@das.home.example&ltids=lt0",
                &[
                    ("X-M2M-Origin", "Cguest"),
                    ("X-M2M-RI", "r-2"),
                    ("Authorization", "eyJh.eyJi.c2ln+eyJj.eyJk.c2lo"),
                ],
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-m2m-rsc"], "2000");
        assert_eq!(
            headers["x-m2m-ri"], "r-2",
            "added when the handler set none"
        );
        assert_eq!(
            headers["x-m2m-ati"],
            "lt1:tk1@das.home.example+lt2:tk2@das.home.example"
        );
    }
    assert_eq!(
        pdp.calls(),
        before + 2,
        "requests with tokens are never cached"
    );
    let seen = pdp.last();
    assert_eq!(seen.tokens, ["eyJh.eyJi.c2ln", "eyJj.eyJk.c2lo"]);
    assert_eq!(seen.token_ids, ["tk1@das.home.example"]);
    assert_eq!(seen.local_token_ids, ["lt0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_argument_is_a_bad_request() {
    let pdp = FakePdp::new(|_| Err(Status::invalid_argument("role_ids[0]: not a Role-ID")));
    let (addr, _stop) = pdp.serve().await;
    let client = PepClient::new(PepConfig::new([addr])).expect("client");
    let v = client.decide(request("C1", "x")).await;
    assert_eq!(v.source, DecisionSource::Pdp);
    assert_eq!(
        v.decision.status,
        pb::AuthorizationStatus::SyntaxError as i32
    );
    let layer = PepLayer::new(client, cse());
    let (status, headers, body) = call_layer(
        &layer,
        http_get("/x", &[("X-M2M-Origin", "C1"), ("X-M2M-RI", "r")]),
    )
    .await;
    assert_eq!(status.as_u16(), 400);
    assert_eq!(headers["x-m2m-rsc"], "4000");
    assert!(body.contains("role_ids[0]"), "{body}");
}

/// TS-0004 7.3.3.14 skips the target's access check for a discovery: with
/// `with_discovery_by_result` the layer passes it on undecided (no call to
/// the PDP) with a `DiscoveryRequest` holding the `ty` criteria, for the
/// handler to decide each result; by default it requires DISCOVER on the
/// target (the PDP's Deny is a 4103, the handler never runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_is_passed_on_for_the_handler_to_decide_by_result() {
    let pdp = FakePdp::new(|_| Ok(deny()));
    let (addr, _stop) = pdp.serve().await;
    let client = PepClient::new(PepConfig::new([addr])).expect("client");
    let headers = [("X-M2M-Origin", "C1"), ("X-M2M-RI", "r")];

    let strict = PepLayer::new(client.clone(), cse());
    let (status, headers_out, _) = call_layer(&strict, http_get("/x?fu=1&ty=3", &headers)).await;
    assert_eq!(status.as_u16(), 403);
    assert_eq!(headers_out["x-m2m-rsc"], "4103");
    assert_eq!(pdp.calls(), 1);
    assert!(pdp.last().discovery);

    let by_result = PepLayer::new(client, cse()).with_discovery_by_result(true);
    let seen: Arc<Mutex<Option<DiscoveryRequest>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        tower::service_fn(move |req: http::Request<Full<Bytes>>| {
            *seen.lock().expect("seen") = req.extensions().get::<DiscoveryRequest>().cloned();
            async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"{}")))) }
        })
    };
    let response = by_result
        .layer(handler)
        .oneshot(http_get("/x?fu=1&ty=3+4&t%79=2", &headers))
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-m2m-ri"], "r");
    assert_eq!(pdp.calls(), 1, "no decision on the target");
    let discovery = seen
        .lock()
        .expect("seen")
        .clone()
        .expect("a DiscoveryRequest");
    assert!(discovery.request.discovery);
    assert_eq!(discovery.resource_types, [3, 4, 2]);
    // A plain Retrieve is still decided.
    let (status, _, _) = call_layer(&by_result, http_get("/x", &headers)).await;
    assert_eq!(status.as_u16(), 403);
    assert_eq!(pdp.calls(), 2);
    // A `ty` criterion that is no resource type: 4000.
    let (status, headers_out, body) =
        call_layer(&by_result, http_get("/x?fu=1&ty=door", &headers)).await;
    assert_eq!(status.as_u16(), 400);
    assert_eq!(headers_out["x-m2m-rsc"], "4000");
    assert!(body.contains("ty 'door'"), "{body}");
}

/// TS-0001 9.6.1.3.2: an acpi change is judged by pvs. A PDP older than
/// `updates_acpi` ignores the field and judges by pv: its Permit (without
/// `judged_acpi_change`) is no answer, and the PEP fails closed, by every
/// call shape; a PDP that echoes the flag is believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdp_that_ignores_updates_acpi_fails_closed() {
    let old = FakePdp::new(|_| Ok(permit()));
    let (addr, _stop) = old.serve().await;
    let client = PepClient::new(PepConfig::new([addr])).expect("client");
    let mut change = request("C1", "x");
    change.operation = pb::Operation::Update as i32;
    change.updates_acpi = true;
    let v = client.decide(change.clone()).await;
    assert_eq!(v.source, DecisionSource::FailClosed, "{v:?}");
    assert!(!v.is_permit());
    assert!(
        v.decision.summary.contains("updates_acpi"),
        "{}",
        v.decision.summary
    );
    let batch = client.decide_batch(vec![change.clone()]).await;
    assert_eq!(batch[0].source, DecisionSource::FailClosed, "{batch:?}");
    let v = client.stream().decide(change.clone()).await;
    assert_eq!(v.source, DecisionSource::FailClosed, "{v:?}");
    // An ordinary Update is not affected.
    let mut update = change.clone();
    update.updates_acpi = false;
    assert!(client.decide(update).await.is_permit());

    let current = FakePdp::new(|r| {
        Ok(pb::Decision {
            judged_acpi_change: r.updates_acpi,
            ..permit()
        })
    });
    let (addr, _stop) = current.serve().await;
    let client = PepClient::new(PepConfig::new([addr])).expect("client");
    let v = client.decide(change).await;
    assert_eq!(v.source, DecisionSource::Pdp);
    assert!(v.is_permit(), "{v:?}");
}

/// TS-0003 7.1.4 (Decision 10): a decision that reached no final result is
/// a Deny. A PERMIT whose status is not OK (missing attribute, syntax or
/// processing error, unspecified, a status this client does not know) is
/// enforced as a Deny, keeps a known status, and is not cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permit_without_status_ok_fails_closed_and_is_not_cached() {
    for (status, kept) in [
        (
            pb::AuthorizationStatus::Unspecified as i32,
            pb::AuthorizationStatus::ProcessingError,
        ),
        (
            pb::AuthorizationStatus::MissingAttribute as i32,
            pb::AuthorizationStatus::MissingAttribute,
        ),
        (
            pb::AuthorizationStatus::SyntaxError as i32,
            pb::AuthorizationStatus::SyntaxError,
        ),
        (
            pb::AuthorizationStatus::ProcessingError as i32,
            pb::AuthorizationStatus::ProcessingError,
        ),
        (99, pb::AuthorizationStatus::ProcessingError),
    ] {
        let pdp = FakePdp::new(move |_| Ok(pb::Decision { status, ..permit() }));
        let (addr, _stop) = pdp.serve().await;
        let client = PepClient::new(PepConfig::new([addr]).with_cache(CacheConfig::default()))
            .expect("client");
        for _ in 0..2 {
            let v = client.decide(request("Cphone", "frontDoor")).await;
            assert!(!v.is_permit(), "status {status}: {v:?}");
            assert_eq!(v.source, DecisionSource::FailClosed, "status {status}");
            assert_eq!(v.decision.status, kept as i32, "status {status}");
        }
        assert_eq!(client.cache_len(), 0, "status {status}");
        let batch = client
            .decide_batch(vec![request("Cphone", "frontDoor")])
            .await;
        assert!(!batch[0].is_permit(), "status {status}: {batch:?}");
        let streamed = client.stream().decide(request("Cphone", "frontDoor")).await;
        assert!(!streamed.is_permit(), "status {status}: {streamed:?}");
        // Enforced as a fail-closed 4103, whatever the status kept: the
        // PDP's fault, not the originator's (no 4000 for SYNTAX_ERROR).
        let Enforcement::Reject(r) = v_enforced(&client).await else {
            panic!("status {status}: proceeded");
        };
        assert_eq!(r.rsc.0, 4103, "status {status}: {r:?}");
        assert_eq!(
            r.content["m2m:dbg"],
            authz_pep::response::FAIL_CLOSED_TEXT,
            "status {status}"
        );
    }
}

/// The enforcement of a decision on `frontDoor` with minimal detail.
async fn v_enforced(client: &PepClient) -> Enforcement {
    client
        .decide(request("Cphone", "frontDoor"))
        .await
        .enforcement(DenyDetail::Minimal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_is_retried_with_backoff() {
    let pdp = FakePdp::new(|_| Ok(permit()));
    pdp.unavailable_first.store(2, Ordering::SeqCst);
    let (addr, _stop) = pdp.serve().await;
    let client = PepClient::new(PepConfig::new([addr.clone()])).expect("client");
    let v = client.decide(request("C1", "x")).await;
    assert!(v.is_permit(), "{v:?}");
    assert_eq!(pdp.calls(), 3, "two UNAVAILABLE, then the answer");

    // With one attempt only, the same gives a fail-closed Deny.
    pdp.unavailable_first.store(1, Ordering::SeqCst);
    let client = PepClient::new(PepConfig::new([addr]).with_retry(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    }))
    .expect("client");
    let v = client.decide(request("C1", "x")).await;
    assert_eq!(v.source, DecisionSource::FailClosed);
    assert!(
        v.decision.summary.contains("PDP unreachable"),
        "{}",
        v.decision.summary
    );
}

/// A call cut off by the transport (a PDP shutting down cancels its calls;
/// a broken connection surfaces as UNKNOWN or INTERNAL "transport error")
/// got no answer: it is retried on another endpoint, not failed closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_transport_cut_off_is_retried_elsewhere() {
    for cut in [
        Status::cancelled("operation was canceled"),
        Status::unknown("transport error"),
        Status::internal("h2 protocol error: http2 error"),
    ] {
        let code = cut.code();
        let going = FakePdp::new(move |_| Err(cut.clone()));
        let staying = FakePdp::new(|_| Ok(permit()));
        let (going_url, _g) = going.serve().await;
        let (staying_url, _s) = staying.serve().await;
        let client = PepClient::new(PepConfig::new([going_url, staying_url])).expect("client");
        for i in 0..10 {
            let v = client.decide(request("C1", &format!("x{i}"))).await;
            assert!(v.is_permit(), "{code:?}, decision {i}: {v:?}");
        }
    }
}

/// A PDP that answers DEADLINE_EXCEEDED at once (its own wait for
/// something ran out) has answered: the call fails closed with that
/// answer, is not retried, and the endpoint is not set aside as one that
/// gives no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_exceeded_answered_at_once_is_an_answer_not_silence() {
    let answering = FakePdp::new(|_| Err(Status::deadline_exceeded("the PIP did not answer")));
    let other = FakePdp::new(|_| Ok(permit()));
    let (answering_url, _a) = answering.serve().await;
    let (other_url, _o) = other.serve().await;
    let client = PepClient::new(PepConfig::new([answering_url, other_url])).expect("client");
    let mut refused = 0;
    for i in 0..10 {
        let v = client.decide(request("C1", &format!("x{i}"))).await;
        if v.source == DecisionSource::FailClosed {
            refused += 1;
            assert!(
                v.decision.summary.contains("the PIP did not answer")
                    && !v.decision.summary.contains("deadline of"),
                "{}",
                v.decision.summary
            );
        }
    }
    // Round robin keeps sending it every other call, once each: not set
    // aside after the first, not retried elsewhere.
    assert_eq!(answering.calls(), 5, "refused {refused}");
    assert_eq!(refused, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_balanced_around() {
    let pdp = FakePdp::new(|_| Ok(permit()));
    let (live, _stop) = pdp.serve().await;
    let dead = dead_endpoint().await;
    let client = PepClient::new(
        PepConfig::new([dead, live])
            .with_deadline(Duration::from_secs(2))
            .with_retry(RetryPolicy {
                max_attempts: 10,
                ..RetryPolicy::default()
            }),
    )
    .expect("client");
    for i in 0..20 {
        let v = client.decide(request("C1", &format!("x{i}"))).await;
        assert!(v.is_permit(), "decision {i}: {v:?}");
        assert_eq!(v.source, DecisionSource::Pdp);
    }
    assert_eq!(pdp.seen.lock().expect("seen").len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pdp_fails_closed_except_the_fail_open_list() {
    let dead = dead_endpoint().await;
    let client = PepClient::new(
        PepConfig::new([dead])
            .with_deadline(Duration::from_millis(300))
            .with_fail_open(FailOpenRule::new(vec![pb::Operation::Retrieve], "public/")),
    )
    .expect("client");
    // A hang guard only: the deadline (300 ms, retries included) is what
    // ends the call, and the reason below says which limit did.
    let v = tokio::time::timeout(
        Duration::from_secs(30),
        client.decide(request("C1", "frontDoor")),
    )
    .await
    .expect("a verdict, not a hang");
    assert_eq!(v.source, DecisionSource::FailClosed);
    assert!(!v.is_permit());
    assert_eq!(
        v.decision.status,
        pb::AuthorizationStatus::ProcessingError as i32
    );
    // The summary the README and the client's docs give, with the reason:
    // the refused connection (UNAVAILABLE) retried until the attempts or
    // the 300 ms deadline ran out.
    let reason = v
        .decision
        .summary
        .strip_prefix("DENY (fail-closed): PDP unreachable: ")
        .unwrap_or_else(|| panic!("{}", v.decision.summary));
    assert!(
        reason.starts_with("UNAVAILABLE after ")
            || reason.starts_with("deadline of 300 ms exceeded"),
        "{reason}"
    );

    let v = client.decide(request("C1", "public/weather")).await;
    assert_eq!(v.source, DecisionSource::FailOpen);
    assert!(v.is_permit());
    assert_eq!(
        v.decision.status,
        pb::AuthorizationStatus::ProcessingError as i32
    );
    assert!(
        v.decision
            .summary
            .starts_with("PERMIT (fail-open rule for 'public/*'): PDP unreachable: "),
        "{}",
        v.decision.summary
    );
    let mut update = request("C1", "public/weather");
    update.operation = pb::Operation::Update as i32;
    let v = client.decide(update).await;
    assert_eq!(
        v.source,
        DecisionSource::FailClosed,
        "only the listed operations"
    );

    // The batch form applies the same failure mode per request.
    let vs = client
        .decide_batch(vec![request("C1", "frontDoor"), request("C1", "public/x")])
        .await;
    assert_eq!(
        vs.iter().map(|v| v.source).collect::<Vec<_>>(),
        [DecisionSource::FailClosed, DecisionSource::FailOpen]
    );

    // And the layer answers 403 / 4103 with the reason.
    let layer = PepLayer::new(client, cse());
    let (status, headers, body) = call_layer(
        &layer,
        http_get("/frontDoor", &[("X-M2M-Origin", "C1"), ("X-M2M-RI", "r")]),
    )
    .await;
    assert_eq!(status.as_u16(), 403);
    assert_eq!(headers["x-m2m-rsc"], "4103");
    assert!(body.contains("no usable decision from the PDP"), "{body}");
}

/// Fail-closed on a malformed answer: a PDP that answers a batch out of
/// order (each answer echoing its own request's `request_id`, in the wrong
/// place) must not hand the Permit of one resource to another, even when
/// the callers' `rqi`s are alike; nor may a unary answer naming another
/// request be taken. Every such request is a fail-closed Deny.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_naming_other_requests_fail_closed() {
    let pdp = FakePdp::new(|r| {
        Ok(if r.target == "frontDoor" {
            permit()
        } else {
            deny()
        })
    });
    pdp.misorder.store(true, Ordering::SeqCst);
    let (addr, _stop) = pdp.serve().await;
    let client = PepClient::new(PepConfig::new([addr])).expect("client");
    let reqs = vec![
        request("Cphone", "frontDoor"),
        request("Cphone", "backDoor"),
        request("Cphone", "unlock"),
    ];
    let vs = client.decide_batch(reqs.clone()).await;
    assert_eq!(vs.len(), 3);
    // Reversed, the first and last answers are out of place; the middle
    // one is its own request's answer (the PDP's Deny).
    for i in [0, 2] {
        let v = &vs[i];
        assert!(!v.is_permit(), "{v:?}");
        assert_eq!(v.source, DecisionSource::FailClosed, "{v:?}");
        assert_eq!(v.decision.request_id, "rq");
        assert!(v.decision.summary.contains("request_id"), "{v:?}");
    }
    assert_eq!(vs[1].source, DecisionSource::Pdp);
    assert!(!vs[1].is_permit());
    // The PDP itself saw each request numbered by its place, `rqi` kept.
    let seen: Vec<String> = pdp
        .seen
        .lock()
        .expect("seen")
        .iter()
        .map(|r| r.request_id.clone())
        .collect();
    assert_eq!(seen, ["0:rq", "1:rq", "2:rq"]);

    let v = client.decide(request("Cphone", "frontDoor")).await;
    assert!(!v.is_permit(), "{v:?}");
    assert_eq!(v.source, DecisionSource::FailClosed, "{v:?}");

    // In order again: the same requests are answered as the PDP said.
    pdp.misorder.store(false, Ordering::SeqCst);
    let vs = client.decide_batch(reqs).await;
    let permits: Vec<bool> = vs.iter().map(|v| v.is_permit()).collect();
    assert_eq!(permits, [true, false, false]);
    assert!(vs.iter().all(|v| v.decision.request_id == "rq"));
    assert!(
        client
            .decide(request("Cphone", "frontDoor"))
            .await
            .is_permit()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_and_stream_answer_in_order() {
    let pdp = FakePdp::new(|r| {
        Ok(if r.originator.ends_with('0') {
            permit()
        } else {
            deny()
        })
    });
    let (addr, _stop) = pdp.serve().await;
    // A long TTL and a fixed request time: the cache key must not change
    // between the two batches, however slow the machine.
    let cache = CacheConfig {
        ttl: std::time::Duration::from_secs(60),
        ..CacheConfig::default()
    };
    let client = PepClient::new(PepConfig::new([addr]).with_cache(cache)).expect("client");
    let reqs: Vec<_> = (0..25)
        .map(|i| {
            let mut r = request(&format!("C{i}"), "x");
            r.request_id = format!("rq-{i}");
            r.request_time = Some(prost_types::Timestamp {
                seconds: 1_795_000_000,
                nanos: 0,
            });
            r
        })
        .collect();
    let vs = client.decide_batch(reqs.clone()).await;
    for (i, v) in vs.iter().enumerate() {
        assert_eq!(v.decision.request_id, format!("rq-{i}"));
        assert_eq!(v.is_permit(), i % 10 == 0, "{i}");
    }
    // The same batch again: every answer from the cache, no call.
    let calls = pdp.calls();
    let vs = client.decide_batch(reqs.clone()).await;
    assert!(vs.iter().all(|v| v.source == DecisionSource::Cache));
    assert_eq!(pdp.calls(), calls);

    let (second, _stop2) = pdp.serve().await;
    let stream = PepClient::new(PepConfig::new([second]))
        .expect("client")
        .stream();
    let answers = futures_join(&stream, &reqs).await;
    for (i, v) in answers.iter().enumerate() {
        assert_eq!(v.decision.request_id, format!("rq-{i}"), "{v:?}");
        assert_eq!(v.is_permit(), i % 10 == 0, "{i}");
    }
}

/// Decides every request over `stream` concurrently.
async fn futures_join(
    stream: &authz_pep::DecisionStream,
    reqs: &[pb::DecisionRequest],
) -> Vec<authz_pep::Verdict> {
    let handles: Vec<_> = reqs
        .iter()
        .cloned()
        .map(|r| {
            let s = stream.clone();
            tokio::spawn(async move { s.decide(r).await })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// A PDP that answers after the PEP's deadline: the verdict fails closed,
/// and its reason says the deadline ran out (README, Failure modes), not
/// the transport's wording for its own timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_pdp_slower_than_the_deadline_fails_closed_naming_the_deadline() {
    let pdp = FakePdp::new(|_| {
        std::thread::sleep(Duration::from_millis(800));
        Ok(permit())
    });
    // On a runtime of its own: the slow answer blocks a thread, and on the
    // client's runtime it could hold the client's task (in that worker's
    // LIFO slot, which no other worker steals) until the answer is there.
    let addr = serve_on_its_own_runtime(pdp, 1);
    let client = PepClient::new(
        PepConfig::new([format!("http://{addr}")]).with_deadline(Duration::from_millis(200)),
    )
    .expect("client");
    for v in [
        client.decide(request("C1", "x")).await,
        client.stream().decide(request("C1", "x")).await,
    ] {
        assert_eq!(v.source, DecisionSource::FailClosed, "{v:?}");
        assert!(
            v.decision
                .summary
                .starts_with("DENY (fail-closed): PDP unreachable: deadline of 200 ms exceeded"),
            "{}",
            v.decision.summary
        );
    }
}

/// What a [`freezable_relay`]'s connections do.
#[derive(Debug, Clone, Copy, Default)]
struct RelayState {
    /// Raised to freeze every open connection: it stays open but carries
    /// nothing more (a crashed host, a partition, a load balancer that
    /// lost its state); connections made after it work.
    freezes: u64,
    /// While set, every connection, open or new, is frozen, as by a
    /// stopped PDP process (the kernel still completes the handshake of a
    /// new connection); once cleared, new connections work again.
    stopped: bool,
}

/// Serves `pdp` on a fresh port, on a runtime of `workers` threads of its
/// own, for good: a script that blocks a thread (a slow answer) holds up
/// none of the test's tasks.
fn serve_on_its_own_runtime(pdp: FakePdp, workers: usize) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send");
            let (server, _stop) = pdp.serve_on(l);
            let _ = server.await;
        });
    });
    rx.recv().expect("the PDP listens")
}

/// A TCP relay to `to` whose connections freeze as its state says.
async fn freezable_relay(to: SocketAddr) -> (SocketAddr, tokio::sync::watch::Sender<RelayState>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (control, state) = tokio::sync::watch::channel(RelayState::default());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = l.accept().await {
            let mut state = state.clone();
            tokio::spawn(async move {
                let born = *state.borrow_and_update();
                if born.stopped {
                    // Held open, silent, for good.
                    let _held = inbound;
                    std::future::pending::<()>().await;
                    return;
                }
                let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.into_split();
                let (mut ro, mut wo) = outbound.into_split();
                let relay = async {
                    tokio::select! {
                        _ = tokio::io::copy(&mut ri, &mut wo) => {}
                        _ = tokio::io::copy(&mut ro, &mut wi) => {}
                    }
                };
                let frozen = async {
                    let _ = state
                        .wait_for(|s| s.freezes > born.freezes || s.stopped)
                        .await;
                };
                tokio::select! {
                    () = relay => {}
                    () = frozen => {
                        // Frozen: hold both sockets open, silent, for good.
                        std::future::pending::<()>().await;
                    }
                }
            });
        }
    });
    (addr, control)
}

/// A connection that dies without a word (no FIN, no RST) is found dead by
/// the keepalive PING and dialled anew: decisions fail closed only until
/// then, not until TCP gives up after many minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_went_silent_is_dialled_anew() {
    let pdp = FakePdp::new(|_| Ok(permit()));
    let (pdp_url, _server) = pdp.serve().await;
    let pdp_addr: SocketAddr = pdp_url.trim_start_matches("http://").parse().expect("addr");
    let (relay, freeze) = freezable_relay(pdp_addr).await;
    let mut config =
        PepConfig::new([format!("http://{relay}")]).with_deadline(Duration::from_millis(300));
    config.keepalive = Some(Duration::from_millis(200));
    let client = PepClient::new(config).expect("client");
    let stream = client.stream();
    assert!(client.decide(request("C1", "x")).await.is_permit());
    assert!(stream.decide(request("C1", "x")).await.is_permit());

    freeze.send_modify(|s| s.freezes += 1);
    let v = client.decide(request("C1", "x")).await;
    assert_eq!(v.source, DecisionSource::FailClosed, "frozen: {v:?}");
    // Within a few PING intervals both the unary path and the stream are
    // back on a new connection.
    let mut unary = false;
    let mut streamed = false;
    for _ in 0..100 {
        unary = unary || client.decide(request("C1", "x")).await.is_permit();
        streamed = streamed || stream.decide(request("C1", "x")).await.is_permit();
        if unary && streamed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(unary, "unary decisions recovered");
    assert!(streamed, "the stream recovered");
}

/// One of two PDPs freezes (a stopped process: connections, new ones too,
/// are accepted and never answered). The call that lands on it fails
/// closed at its deadline; then it is set aside and every decision, unary
/// and streamed, goes to the other, where before about half kept failing
/// closed for as long as it stayed frozen. Once it answers a probe again
/// it is back in service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_pdp_among_several_is_set_aside_until_it_answers() {
    let a = FakePdp::new(|_| Ok(permit()));
    let b = FakePdp::new(|_| Ok(permit()));
    let (a_url, _a) = a.serve().await;
    let (b_url, _b) = b.serve().await;
    let b_addr: SocketAddr = b_url.trim_start_matches("http://").parse().expect("addr");
    let (relay, stop) = freezable_relay(b_addr).await;
    let mut config = PepConfig::new([format!("http://{relay}"), a_url])
        .with_deadline(Duration::from_millis(200));
    config.keepalive = Some(Duration::from_millis(200));
    let client = PepClient::new(config).expect("client");
    for _ in 0..4 {
        assert!(client.decide(request("C1", "x")).await.is_permit());
    }
    let seen = |p: &FakePdp| p.seen.lock().expect("seen").len();
    assert!(seen(&a) >= 1 && seen(&b) >= 1, "round robin over both");

    // The stream opened before the freeze, to either PDP.
    let stream = client.stream();
    assert!(stream.decide(request("C1", "x")).await.is_permit());
    stop.send_modify(|s| s.stopped = true);
    // Many decisions in flight on the stream when it freezes: they time
    // out together, and count as one miss of the frozen PDP, not as misses
    // of the healthy one the stream is reopened to.
    let in_flight: Vec<_> = (0..30)
        .map(|_| {
            let stream = stream.clone();
            tokio::spawn(async move { stream.decide(request("C1", "x")).await })
        })
        .collect();
    for d in in_flight {
        let _ = d.await.expect("decision");
    }
    let mut failed = 0;
    for i in 0..40 {
        let v = if i % 2 == 0 {
            client.decide(request("C1", "x")).await
        } else {
            stream.decide(request("C1", "x")).await
        };
        if v.source == DecisionSource::FailClosed {
            failed += 1;
        }
    }
    // The unary call and the stream each may meet the frozen PDP once.
    assert!(failed <= 2, "{failed} of 40 failed closed");

    let before = seen(&b);
    stop.send_modify(|s| s.stopped = false);
    // Within the first probes' waits (1 s, then 2 s), not the last (30 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while seen(&b) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the thawed PDP got no decision again"
        );
        assert!(client.decide(request("C1", "x")).await.is_permit());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A decision slower than the deadline on a stream that keeps answering
/// the others (one waiting on a DAS, say) fails closed alone: its PDP is
/// alive, so it is not set aside and the stream is not reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_decision_on_a_busy_stream_sets_nothing_aside() {
    // Served on runtimes of their own: the slow answer blocks a thread.
    let serve_apart = |pdp: FakePdp| format!("http://{}", serve_on_its_own_runtime(pdp, 2));
    let script = |r: &pb::DecisionRequest| {
        if r.target == "slow" {
            std::thread::sleep(Duration::from_millis(400));
        }
        Ok(permit())
    };
    let (a, b) = (FakePdp::new(script), FakePdp::new(script));
    let urls = [serve_apart(a.clone()), serve_apart(b.clone())];
    let client = PepClient::new(PepConfig::new(urls).with_deadline(Duration::from_millis(250)))
        .expect("client");
    let stream = client.stream();
    assert!(stream.decide(request("C1", "x")).await.is_permit());
    let slow = {
        let stream = stream.clone();
        tokio::spawn(async move { stream.decide(request("C1", "slow")).await })
    };
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let v = stream.decide(request("C1", "x")).await;
        assert!(v.is_permit(), "{v:?}");
    }
    let v = slow.await.expect("slow decision");
    assert_eq!(v.source, DecisionSource::FailClosed, "{v:?}");
    // Both endpoints still take unary decisions in turn.
    let seen = |p: &FakePdp| p.seen.lock().expect("seen").len();
    let before = (seen(&a), seen(&b));
    for _ in 0..4 {
        assert!(client.decide(request("C1", "x")).await.is_permit());
    }
    assert!(
        seen(&a) > before.0 && seen(&b) > before.1,
        "one was set aside"
    );
}

/// `keepalive` must be above zero when set (`None` turns it off).
#[test]
fn a_zero_keepalive_is_refused_naming_it() {
    let mut config = PepConfig::new(["http://127.0.0.1:1"]);
    config.keepalive = Some(Duration::ZERO);
    let e = config.validate().expect_err("zero keepalive");
    assert!(e.to_string().contains("keepalive"), "{e}");
    config.keepalive = None;
    config.validate().expect("no keepalive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_reopens_after_the_pdp_restarts() {
    let pdp = FakePdp::new(|_| Ok(permit()));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = l.local_addr().expect("addr");
    let (server, stop) = pdp.serve_on(l);
    let client = PepClient::new(
        PepConfig::new([format!("http://{addr}")]).with_deadline(Duration::from_millis(500)),
    )
    .expect("client");
    let stream = client.stream();
    assert!(stream.decide(request("C1", "x")).await.is_permit());

    // The PDP goes away: the open stream ends, decisions fail closed.
    pdp.streams_end.send_replace(true);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the PDP stopped")
        .expect("task");
    let v = stream.decide(request("C1", "x")).await;
    assert_eq!(v.source, DecisionSource::FailClosed, "{v:?}");

    // Back on the same port: the next decision opens a new stream.
    let l = TcpListener::bind(addr).await.expect("rebind");
    pdp.streams_end.send_replace(false);
    let (_server, _stop) = pdp.serve_on(l);
    let mut reopened = false;
    for _ in 0..50 {
        if stream.decide(request("C1", "x")).await.is_permit() {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened, "the stream reopened on the restarted PDP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_wait_for_revision() {
    let pdp = FakePdp::new(|_| Ok(permit()));
    let (addr, _stop) = pdp.serve().await;
    let client = PepClient::new(PepConfig::new([addr])).expect("client");
    assert_eq!(client.status().await.expect("status").replica_revision, 7);
    assert_eq!(
        client
            .wait_for_revision(7, Duration::from_secs(1))
            .await
            .expect("at 7"),
        7
    );
    assert!(matches!(
        client
            .wait_for_revision(8, Duration::from_millis(100))
            .await,
        Err(authz_pep::PepError::Behind(_))
    ));
    // A timeout too long to represent as an instant waits without limit
    // (it used to overflow `Instant + Duration` and panic).
    assert_eq!(
        client
            .wait_for_revision(7, Duration::MAX)
            .await
            .expect("at 7"),
        7
    );
}
