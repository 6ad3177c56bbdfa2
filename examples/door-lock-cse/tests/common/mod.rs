//! The door-lock CSE with a real PRP, a real PIP (holding the example's
//! groups) and a real PDP following the PRP and asking the PIP, each on its
//! own 127.0.0.1 port (and a real DAS when asked for), and a raw HTTP/1.1
//! client that can send from 127.0.0.1 or 127.0.0.2 (the loopback network
//! stands in for the home network).

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authz_pdp::{Pdp, PdpConfig};
use authz_pep::{CacheConfig, CseContext, DenyDetail, ManualClock, PepClient, PepConfig};
use authz_proto::pb;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_prp::PrpConfig;
use chrono::{DateTime, TimeZone, Utc};
use door_lock_cse::credentials::Credentials;
use door_lock_cse::groups::{self, DEFAULT_GROUPS};
use door_lock_cse::policies::{self, Bundle, DEFAULT_POLICIES};
use door_lock_cse::{AppConfig, SharedStore, router};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;

pub const SP: &str = "//home.example";
pub const CSE: &str = "/mn-cse-123456";
pub const ADMIN: &str = "CAdmin";
/// Requests from here come from the home network (the test policies put
/// 127.0.0.2/32 where the shipped ones have 192.168.1.0/24).
pub const HOME: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Requests from here come from outside.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

pub const OWNER: (&str, &str) = ("CownerPhone", "owner-phone@home.example:0a1b2c3d4e5f6a7b");
pub const BABYSITTER: (&str, &str) = (
    "Cbabysitter",
    "babysitter-phone@home.example:5b4a3c2d1e0f9a8b",
);
pub const LOCK1: (&str, &str) = (
    "Clock-AE1",
    "AE123456789012-Lock@in.provider.com:1a2b3c4d5e6f7a8b",
);
pub const GUEST: (&str, &str) = ("Cguest", "guest-phone@home.example:9c8d7e6f5a4b3c2d");
pub const LOCK2: (&str, &str) = (
    "Clock-AE2",
    "AE123456789015-Lock@in.provider.com:12345678abcdefab",
);

/// Thursday 2026-11-26 at `h:m:s` UTC.
pub fn thursday(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, m, s)
        .single()
        .expect("time")
}

/// Saturday 2026-11-28 at `h:m:s` UTC.
pub fn saturday(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, h, m, s)
        .single()
        .expect("time")
}

/// The shipped policies with the home network on loopback.
pub fn test_policies() -> String {
    assert!(DEFAULT_POLICIES.contains("192.168.1.0/24"));
    DEFAULT_POLICIES.replace("192.168.1.0/24", "127.0.0.2/32")
}

fn hosting() -> authz_core::HostingContext {
    authz_core::HostingContext::new(SP, CSE).expect("hosting")
}

async fn listen() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = format!("http://{}", l.local_addr().expect("addr"));
    (l, addr)
}

/// How the PEP client of the stack is set up.
#[derive(Clone)]
pub struct Options {
    pub cache: Option<CacheConfig>,
    pub revision_poll: Option<Duration>,
    pub deadline: Duration,
    /// A DAS configuration (JSON; key paths relative to
    /// `examples/door-lock-cse`):
    /// the stack then runs that DAS in-process and the PDP trusts it.
    pub das: Option<Value>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache: None,
            revision_poll: None,
            deadline: Duration::from_millis(2000),
            das: None,
        }
    }
}

/// PRP, PIP, PDP and the door-lock CSE.
pub struct Stack {
    pub cse: SocketAddr,
    pub clock: ManualClock,
    pub store: SharedStore,
    pub prp: PolicyRetrievalPointClient<Channel>,
    /// The PIP, holding the example's groups (`groups.json`).
    pub pip: PolicyInformationPointClient<Channel>,
    pub pdp_status: PolicyDecisionPointClient<Channel>,
    pub pep: PepClient,
    /// `Decide` RPCs the PDP received.
    pub decide_calls: Arc<AtomicUsize>,
    /// The in-process DAS's gRPC endpoint, when [`Options::das`] was set.
    pub das_url: Option<String>,
    pdp_stop: Option<tokio::sync::oneshot::Sender<()>>,
    pdp_server: Option<JoinHandle<()>>,
    pdp: Pdp,
    _tasks: Vec<JoinHandle<()>>,
}

impl Stack {
    pub async fn start(options: Options) -> Self {
        // PRP (in memory).
        let prp_service = authz_prp::build(&PrpConfig::new(None, ADMIN, hosting()))
            .await
            .expect("prp");
        let (l, prp_addr) = listen().await;
        let prp_router = authz_prp::router(prp_service).await.expect("router");
        let prp_task = tokio::spawn(async move {
            let _ = prp_router
                .serve_with_incoming(TcpListenerStream::new(l))
                .await;
        });
        let mut tasks = vec![prp_task];
        // PIP (in memory; no country dataset: no policy here locates anyone).
        let mut pip_config = authz_pip::PipConfig::new(None, ADMIN, hosting());
        pip_config.country_boundaries = false;
        let pip_service = authz_pip::build(&pip_config).await.expect("pip");
        let pip_router = authz_pip::router(pip_service).await.expect("pip router");
        let (l, pip_addr) = listen().await;
        tasks.push(tokio::spawn(async move {
            let _ = pip_router
                .serve_with_incoming(TcpListenerStream::new(l))
                .await;
        }));
        // The DAS (in memory), when asked for.
        let mut das_url = None;
        if let Some(das) = &options.das {
            let base = Path::new(env!("CARGO_MANIFEST_DIR"));
            let config =
                authz_das::DasConfig::from_json(&das.to_string(), Path::new("test-das.json"), base)
                    .expect("DAS config");
            let service = authz_das::build(config, None).await.expect("das");
            let das_router = authz_das::router(service).await.expect("das router");
            let (l, url) = listen().await;
            tasks.push(tokio::spawn(async move {
                let _ = das_router
                    .serve_with_incoming(TcpListenerStream::new(l))
                    .await;
            }));
            das_url = Some(url);
        }
        let channel = |addr: String| async move {
            tonic::transport::Endpoint::from_shared(addr)
                .expect("endpoint")
                .connect()
                .await
                .expect("connect")
        };
        // The example's groups, into the PIP as the example does it.
        let mut pip = PolicyInformationPointClient::new(channel(pip_addr.clone()).await);
        let groups = groups::parse(DEFAULT_GROUPS).expect("groups");
        groups::apply(&mut pip, ADMIN, &hosting(), &groups)
            .await
            .expect("groups into the PIP");
        // PDP following the PRP, asking the PIP (and trusting the DAS),
        // counting Decide calls.
        let mut pdp_config = PdpConfig::new(hosting())
            .with_prp(prp_addr.clone())
            .with_pip(pip_addr.clone());
        if let Some(url) = &das_url {
            pdp_config = pdp_config.with_dynamic(authz_pdp::DynamicConfig::new(vec![url.clone()]));
        }
        let pdp = Pdp::start(pdp_config).expect("pdp");
        let routes = pdp.routes().await.expect("routes");
        let (l, pdp_addr) = listen().await;
        let decide_calls = Arc::new(AtomicUsize::new(0));
        let counter = decide_calls.clone();
        let (pdp_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let pdp_server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .layer(tower::util::MapRequestLayer::new(
                    move |req: http::Request<tonic::body::Body>| {
                        if req.uri().path().ends_with(".PolicyDecisionPoint/Decide") {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        req
                    },
                ))
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpListenerStream::new(l), async move {
                    let _ = stopped.await;
                })
                .await;
        });
        let mut prp = PolicyRetrievalPointClient::new(channel(prp_addr.clone()).await);
        let pdp_status = PolicyDecisionPointClient::new(channel(pdp_addr.clone()).await);

        // The example's policies, into the PRP as the example does it.
        let bundle = Bundle::parse(&test_policies()).expect("bundle");
        let revision = policies::apply(&mut prp, ADMIN, &bundle)
            .await
            .expect("apply")
            .revision;
        let mut config = PepConfig::new([pdp_addr.clone()]).with_deadline(options.deadline);
        config.cache = options.cache;
        config.revision_poll = options.revision_poll;
        let pep = PepClient::new(config).expect("pep");
        wait_for_revision(&pdp_status, revision).await;
        // Until the PDP has listed the PIP's group IDs, an ID entry decides
        // nothing (Decision 3, 10): tests start from the settled state.
        let listed = tokio::time::Instant::now() + Duration::from_secs(10);
        while !pdp.pip_cache().is_some_and(|p| p.groups_known()) {
            assert!(
                tokio::time::Instant::now() < listed,
                "the PDP never listed the PIP's groups"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // The CSE.
        let clock = ManualClock::new(thursday(16, 0, 0));
        let (app, store) = router(AppConfig {
            cse: CseContext::new(SP, CSE).expect("cse"),
            pep: pep.clone(),
            clock: Arc::new(clock.clone()),
            credentials: Credentials::parse(include_str!("../../credentials.json"))
                .expect("credentials"),
            bundle,
            deny_detail: DenyDetail::Summary,
            prp: Some(prp.clone()),
        })
        .expect("router");
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let cse = l.local_addr().expect("addr");
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        }));
        Self {
            cse,
            clock,
            store,
            prp,
            pip,
            pdp_status,
            pep,
            decide_calls,
            das_url,
            pdp_stop: Some(pdp_stop),
            pdp_server: Some(pdp_server),
            pdp,
            _tasks: tasks,
        }
    }

    /// Stops the PDP's server and waits until it is gone.
    pub async fn stop_pdp(&mut self) {
        if let Some(stop) = self.pdp_stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.pdp_server.take() {
            let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
            assert!(stopped.is_ok(), "the PDP did not stop");
        }
    }

    /// Stores the group `ri` with the members `mid` in the PIP, as the
    /// admin, and waits until the PDP's watch of the PIP has applied it.
    pub async fn put_group(&mut self, ri: &str, mid: &[&str]) {
        let group = groups::Group {
            ri: ri.to_owned(),
            mid: mid.iter().map(|m| m.to_string()).collect(),
        };
        let revision = groups::apply(&mut self.pip, ADMIN, &hosting(), &[group])
            .await
            .expect("put group");
        let cache = self.pdp.pip_cache().expect("the PDP asks a PIP");
        for _ in 0..500 {
            if cache.is_watching() && cache.seen_revision() >= revision {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the PDP never saw PIP revision {revision}: {cache:?}");
    }

    /// `Decide` RPCs so far.
    pub fn decides(&self) -> usize {
        self.decide_calls.load(Ordering::SeqCst)
    }

    /// Sends one request to the CSE from `from`.
    pub async fn send(
        &self,
        from: Ipv4Addr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        http(self.cse, from, method, path, headers, body).await
    }

    /// A request of `who` (`(AE-ID, X-Demo-Psk)`) from the home network.
    pub async fn as_(
        &self,
        who: (&str, &str),
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        self.as_from(who, HOME, method, path, extra, body).await
    }

    /// A request of `who` from `from`.
    pub async fn as_from(
        &self,
        who: (&str, &str),
        from: Ipv4Addr,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut headers = vec![
            ("X-M2M-Origin", who.0),
            ("X-Demo-Psk", who.1),
            ("X-M2M-RI", "rq-test"),
        ];
        headers.extend_from_slice(extra);
        self.send(from, method, path, &headers, body).await
    }
}

/// Waits until the PDP's replica has `revision`.
pub async fn wait_for_revision(pdp: &PolicyDecisionPointClient<Channel>, revision: u64) {
    for _ in 0..500 {
        let s = pdp
            .clone()
            .status(pb::StatusRequest {})
            .await
            .expect("status")
            .into_inner();
        if s.replica_revision >= revision {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the PDP never reached revision {revision}");
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// A header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `X-M2M-RSC` as a number.
    pub fn rsc(&self) -> u16 {
        self.header("X-M2M-RSC")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-M2M-RSC in {self:?}"))
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// `m2m:dbg` of the body.
    pub fn dbg(&self) -> String {
        self.json()["m2m:dbg"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// One HTTP/1.1 request over a fresh connection from `from`.
pub async fn http(
    to: SocketAddr,
    from: Ipv4Addr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from.into(), 0))
        .expect("bind source");
    let mut stream = socket.connect(to).await.expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
        "chunked responses are not parsed here"
    );
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}
