//! The overhead of the PEP layer per request: the same handler called
//! directly, behind the layer asking a PDP on loopback (a real PRP and PDP
//! in this process, one ACP), and behind the layer answering from the
//! decision cache. Requests go through `tower::Service::call` (no HTTP
//! socket), one at a time, so the figures are the layer's own cost: parsing
//! the binding, building the decision request, the gRPC round trip, and
//! writing the result.
//!
//! A fourth case, `client_decide_only`, times `PepClient::decide` with a
//! ready decision request, to tell the gRPC round trip from the layer's own
//! work.
//!
//! `cargo bench -p authz-pep --bench layer`

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authz_pdp::{Pdp, PdpConfig};
use authz_pep::{
    AuthenticatedIdentity, CacheConfig, CseContext, ManualClock, OriginatorIp, PepClient,
    PepConfig, PepLayer,
};
use authz_proto::pb;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_prp::PrpConfig;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tower::{Layer, Service, ServiceExt};

const SP: &str = "//home.example";
const CSE: &str = "/mn-cse-123456";

struct Setup {
    _pdp: Pdp,
    pdp_endpoint: String,
}

async fn setup() -> anyhow::Result<Setup> {
    let hosting = authz_core::HostingContext::new(SP, CSE)?;
    let prp = authz_prp::build(&PrpConfig::new(None, "CAdmin", hosting.clone())).await?;
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let prp_endpoint = format!("http://{}", l.local_addr()?);
    let router = authz_prp::router(prp).await?;
    tokio::spawn(async move {
        let _ = router.serve_with_incoming(TcpListenerStream::new(l)).await;
    });
    let pdp = Pdp::start(PdpConfig::new(hosting).with_prp(prp_endpoint.clone()))?;
    let routes = pdp.routes().await?;
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let pdp_endpoint = format!("http://{}", l.local_addr()?);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(TcpListenerStream::new(l))
            .await;
    });

    let mut client = PolicyRetrievalPointClient::connect(prp_endpoint).await?;
    let rule = |originators: &[&str], operations| pb::AccessControlRule {
        originators: originators.iter().map(|s| s.to_string()).collect(),
        operations,
        ..Default::default()
    };
    client
        .create_acp(pb::CreateAcpRequest {
            role_ids: Vec::new(),
            originator: "CAdmin".into(),
            acp: Some(pb::AccessControlPolicy {
                resource_id: Some("acpFrontDoor".into()),
                privileges: Some(pb::SetOfAcrs {
                    rules: vec![rule(&["CownerPhone"], 63), rule(&["Clock-AE1"], 18)],
                }),
                self_privileges: Some(pb::SetOfAcrs {
                    rules: vec![rule(&["CAdmin"], 63)],
                }),
                ..Default::default()
            }),
        })
        .await?;
    let revision = client
        .put_resource(pb::PutResourceRequest {
            role_ids: Vec::new(),
            originator: "CAdmin".into(),
            resource: Some(pb::TargetResource {
                resource_id: "frontDoor".into(),
                resource_type: 3,
                acpi_set: true,
                acpi: vec!["acpFrontDoor".into()],
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .revision;
    PepClient::new(PepConfig::new([pdp_endpoint.clone()]))?
        .wait_for_revision(revision, Duration::from_secs(10))
        .await?;
    Ok(Setup {
        _pdp: pdp,
        pdp_endpoint,
    })
}

fn request() -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder()
        .method("GET")
        .uri("/~/mn-cse-123456/frontDoor")
        .header("X-M2M-Origin", "CownerPhone")
        .header("X-M2M-RI", "rq-bench")
        .body(Full::new(Bytes::new()))
        .unwrap_or_default();
    req.extensions_mut().insert(OriginatorIp(
        "192.168.1.23".parse().unwrap_or([0, 0, 0, 0].into()),
    ));
    req.extensions_mut()
        .insert(AuthenticatedIdentity("CownerPhone".into()));
    req
}

/// The handler: a small oneM2M answer.
async fn handler(
    _req: http::Request<Full<Bytes>>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let mut r = http::Response::new(Full::new(Bytes::from_static(
        br#"{"m2m:cnt":{"ri":"frontDoor","ty":3,"cni":1}}"#,
    )));
    r.headers_mut()
        .insert("x-m2m-rsc", http::HeaderValue::from_static("2000"));
    Ok(r)
}

/// Mean time of `iters` sequential calls of `svc`.
async fn run<S, B>(svc: &S, iters: u64) -> Duration
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = Infallible>
        + Clone,
{
    let start = Instant::now();
    for _ in 0..iters {
        let response = svc.clone().oneshot(request()).await;
        debug_assert!(response.is_ok_and(|r| r.status() == 200));
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let setup = match rt.block_on(setup()) {
        Ok(s) => s,
        Err(e) => panic!("setup: {e}"),
    };
    let cse = match CseContext::new(SP, CSE) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let (plain, cached) = rt.block_on(async {
        let plain = PepClient::new(PepConfig::new([setup.pdp_endpoint.clone()]));
        let cached = PepClient::new(PepConfig::new([setup.pdp_endpoint.clone()]).with_cache(
            CacheConfig {
                capacity: 1000,
                ttl: Duration::from_secs(3600),
            },
        ));
        (plain, cached)
    });
    let (plain, cached) = match (plain, cached) {
        (Ok(p), Ok(c)) => (p, c),
        _ => panic!("clients"),
    };
    let bare = tower::service_fn(handler);
    let direct = plain.clone();
    let via_pdp = PepLayer::new(plain, cse.clone()).layer(tower::service_fn(handler));
    // A fixed clock keeps every request in the same cache second.
    let via_cache = PepLayer::new(cached, cse)
        .with_clock(Arc::new(ManualClock::new(chrono::Utc::now())))
        .layer(tower::service_fn(handler));
    // Warm up the connections and the cache.
    rt.block_on(async {
        run(&via_pdp, 100).await;
        run(&via_cache, 100).await;
    });

    let mut group = c.benchmark_group("pep_layer");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("handler_alone", |b| {
        b.iter_custom(|iters| rt.block_on(run(&bare, iters)))
    });
    group.bench_function("layer_pdp_loopback", |b| {
        b.iter_custom(|iters| rt.block_on(run(&via_pdp, iters)))
    });
    // The PDP round trip alone: PepClient::decide with a ready request.
    let decision_request = pb::DecisionRequest {
        originator: "CownerPhone".into(),
        operation: pb::Operation::Retrieve as i32,
        target: "frontDoor".into(),
        authenticated: true,
        hosting_cse_id: CSE.into(),
        hosting_sp_id: SP.into(),
        request_id: "rq-bench".into(),
        ..Default::default()
    };
    group.bench_function("client_decide_only", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let v = direct.decide(decision_request.clone()).await;
                    debug_assert!(v.is_permit());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("layer_cache_hit", |b| {
        b.iter_custom(|iters| rt.block_on(run(&via_cache, iters)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
