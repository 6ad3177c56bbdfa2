//! # authz-pdp
//!
//! The Policy Decision Point of onem2m-authz (TS-0003 6.2.2 steps 003 and
//! 008-009): the `PolicyDecisionPoint` and `Echo` gRPC services of
//! `onem2m/authz/v1/pdp.proto`, deciding with [`authz_core::decide`] against
//! a local replica of the PRP's policies that a follower task keeps current
//! through the PRP's `Watch` stream. Decisions never wait on the network.
//!
//! - [`replica`]: the replica ([`Replica`], [`Snapshot`]) and its follower;
//! - [`service`]: the gRPC adapter ([`PdpService`], [`EchoService`]);
//! - [`telemetry`]: Prometheus metrics and tracing / OpenTelemetry setup.
//!
//! A binary builds a [`Pdp`] with [`Pdp::start`], then either serves
//! [`Pdp::routes`] (PDP, Echo, health and reflection) on its own port, or
//! adds [`Pdp::add_services`] and [`add_health_and_reflection`] to a
//! [`RoutesBuilder`] shared with other services (the all-in-one process),
//! and reports health with [`Pdp::report_health`].
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use authz_pdp::{Pdp, PdpConfig};
//! let hosting = authz_core::HostingContext::new("//sp.example.com", "/id-in")?;
//! let pdp = Pdp::start(PdpConfig::new(hosting).with_prp("http://127.0.0.1:50051"))?;
//! let routes = pdp.routes().await?;
//! tonic::transport::Server::builder()
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50052".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod decision_metrics;
pub mod dynamic;
pub mod members;
pub mod pip;
pub mod replica;
pub mod service;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use authz_core::{AttributeSource, HostingContext, Lookup, NoAttributes, Position};
use authz_proto::pb;
use authz_proto::pb::echo_server::EchoServer;
use authz_proto::pb::policy_decision_point_server::PolicyDecisionPointServer;
use tokio::task::JoinHandle;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use dynamic::{Consultation, DasAddress, DasSecret, Dynamic, DynamicConfig, TokenFailure};
pub use pip::{PipCache, PipCacheError, TokensChanged};
pub use replica::{Applied, Replica, ReplicaError, ReplicaStatus, Snapshot};
pub use service::{EchoService, PdpService, STREAM_IN_FLIGHT, STREAM_QUEUED, STREAM_QUEUED_BYTES};

/// The gRPC service name of the PDP, as health checks name it.
pub const PDP_SERVICE_NAME: &str =
    <PolicyDecisionPointServer<PdpService> as tonic::server::NamedService>::NAME;
/// The gRPC service name of Echo.
pub const ECHO_SERVICE_NAME: &str = <EchoServer<EchoService> as tonic::server::NamedService>::NAME;

/// How often the staleness gauge is refreshed.
const STALENESS_TICK: Duration = Duration::from_secs(1);

/// Configuration of a PDP.
#[derive(Clone)]
pub struct PdpConfig {
    /// The PRP to follow (`http://host:port`); `None` runs no follower (the
    /// replica is then fed with [`Replica::apply_event`], e.g. in tests, or
    /// stays empty when requests always carry explicit `acp_ids` of ACPs
    /// fed that way).
    pub prp_endpoint: Option<String>,
    /// The hosting CSE for requests that name none.
    pub hosting: HostingContext,
    /// Where attributes the request does not carry come from when no PIP
    /// is configured ([`WithoutPip`] by default).
    pub attributes: Arc<dyn AttributeSource>,
    /// The PIP to ask for attributes (`http://host:port`), through a cache
    /// kept fresh by its `Watch` stream; replaces `attributes` when set.
    pub pip_endpoint: Option<String>,
    /// Deadline of one PIP fetch on a cache miss.
    pub pip_deadline: Duration,
    /// Tokens and dynamic authorization (TS-0003 7.3): the trusted DASes.
    pub dynamic: Option<DynamicConfig>,
    /// How `https://` endpoints (PRP, PIP, DASes) are verified: the webpki
    /// roots by default. Replaces [`DynamicConfig::tls`].
    pub tls: authz_proto::tls::ClientTls,
}

impl std::fmt::Debug for PdpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdpConfig")
            .field("prp_endpoint", &self.prp_endpoint)
            .field("hosting", &self.hosting)
            .field("pip_endpoint", &self.pip_endpoint)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl PdpConfig {
    /// A configuration without a PRP, a PIP or DASes ([`WithoutPip`]).
    pub fn new(hosting: HostingContext) -> Self {
        Self {
            prp_endpoint: None,
            hosting,
            attributes: Arc::new(WithoutPip),
            pip_endpoint: None,
            pip_deadline: pip::DEFAULT_FETCH_DEADLINE,
            dynamic: None,
            tls: authz_proto::tls::ClientTls::default(),
        }
    }

    /// Verifies `https://` endpoints (PRP, PIP, DASes) as `tls` says.
    pub fn with_tls(mut self, tls: authz_proto::tls::ClientTls) -> Self {
        self.tls = tls;
        self
    }

    /// Trusts and consults DASes as `dynamic` says. Unless it names them,
    /// dynamic ACPs are stored in the PRP this PDP follows, and Token-IDs no
    /// DAS claims are fetched from its PIP, which also holds the
    /// Local-Token-IDs it assigns (shared with the other PDPs of the
    /// hosting CSE).
    pub fn with_dynamic(mut self, dynamic: DynamicConfig) -> Self {
        self.dynamic = Some(dynamic);
        self
    }

    /// Asks the PIP at `endpoint` (`http://host:port`) for attributes.
    pub fn with_pip(mut self, endpoint: impl Into<String>) -> Self {
        self.pip_endpoint = Some(endpoint.into());
        self
    }

    /// Follows the PRP at `endpoint` (`http://host:port`).
    pub fn with_prp(mut self, endpoint: impl Into<String>) -> Self {
        self.prp_endpoint = Some(endpoint.into());
        self
    }

    /// Uses `attributes` for attributes requests do not carry.
    pub fn with_attributes(mut self, attributes: Arc<dyn AttributeSource>) -> Self {
        self.attributes = attributes;
        self
    }
}

/// Why a [`Pdp`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The PRP endpoint is not an `http://` or `https://` URI with a host.
    #[error("PRP endpoint {0}: {1}")]
    PrpEndpoint(String, String),
    /// The PIP endpoint is not a URI.
    #[error(transparent)]
    Pip(#[from] PipCacheError),
    /// The dynamic-authorization configuration cannot be used.
    #[error("dynamic authorization: {0}")]
    Dynamic(String),
}

/// A running PDP: the service, its replica, and the background tasks (the
/// PRP follower, the staleness gauge, health reporting), which stop when the
/// `Pdp` is dropped.
#[derive(Debug)]
pub struct Pdp {
    service: PdpService,
    replica: Arc<Replica>,
    pip: Option<Arc<PipCache>>,
    dynamic: Option<Arc<Dynamic>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Pdp {
    /// Creates the replica and the service and, when a PRP endpoint is
    /// configured, spawns the follower (and the PIP cache's follower when a
    /// PIP is configured). Must run inside a Tokio runtime. Fails on an
    /// endpoint that is not a URI and on a dynamic-authorization
    /// configuration that cannot be used.
    pub fn start(config: PdpConfig) -> Result<Self, StartError> {
        if let Some(prp) = &config.prp_endpoint {
            authz_proto::endpoint::endpoint_with(prp, &config.tls)
                .map_err(|e| StartError::PrpEndpoint(prp.clone(), e.to_string()))?;
        }
        let replica = Arc::new(Replica::new_with_tls(
            config.prp_endpoint.clone(),
            config.tls.clone(),
        ));
        let mut tasks = Vec::new();
        let cache = match &config.pip_endpoint {
            Some(endpoint) => {
                let cache = PipCache::new_with_tls(endpoint, config.pip_deadline, &config.tls)?;
                tasks.push(tokio::spawn(cache.clone().follow()));
                Some(cache)
            }
            None => None,
        };
        let dynamic = match config.dynamic {
            Some(mut d) => {
                if d.prp.is_none() {
                    d.prp = config.prp_endpoint.clone();
                }
                if d.pip.is_none() {
                    d.pip = config.pip_endpoint.clone();
                }
                d.tls = config.tls.clone();
                let dynamic = Dynamic::new(d).map_err(StartError::Dynamic)?;
                if let Some(cache) = &cache
                    && !dynamic.follow_pip_tokens(cache)
                {
                    tracing::warn!(pip = %cache.endpoint(), "Local-Token-IDs are kept in another PIP than the one this PDP watches: a deleted <token>'s ID stays valid on this PDP until its token expires");
                }
                tasks.push(tokio::spawn(dynamic.clone().load_keys()));
                Some(dynamic)
            }
            None => None,
        };
        let service = PdpService::with_sources(
            replica.clone(),
            config.hosting,
            config.attributes,
            cache.clone(),
            dynamic.clone(),
        );
        if config.prp_endpoint.is_some() {
            tasks.push(tokio::spawn(replica.clone().follow()));
        }
        let r = replica.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(STALENESS_TICK);
            loop {
                tick.tick().await;
                telemetry::record_staleness(r.status().staleness);
            }
        }));
        Ok(Self {
            service,
            replica,
            pip: cache,
            dynamic,
            tasks: std::sync::Mutex::new(tasks),
        })
    }

    /// The `PolicyDecisionPoint` service (a cheap clone).
    pub fn service(&self) -> PdpService {
        self.service.clone()
    }

    /// The replica.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Tokens and dynamic authorization, when DASes are configured.
    pub fn dynamic(&self) -> Option<&Arc<Dynamic>> {
        self.dynamic.as_ref()
    }

    /// The PIP attribute cache, when a PIP is configured.
    pub fn pip_cache(&self) -> Option<&Arc<PipCache>> {
        self.pip.as_ref()
    }

    /// Revision, connection and staleness of the replica.
    pub fn status(&self) -> ReplicaStatus {
        self.replica.status()
    }

    /// Applies a Watch event to the replica directly (tests, or a process
    /// that feeds the replica itself).
    pub fn apply_event(&self, event: &pb::WatchEvent) -> Result<Applied, ReplicaError> {
        self.replica.apply_event(event)
    }

    /// The full names of the services [`Pdp::add_services`] adds.
    pub const SERVICE_NAMES: [&'static str; 2] = [PDP_SERVICE_NAME, ECHO_SERVICE_NAME];

    /// Adds the `PolicyDecisionPoint` and `Echo` services to `builder`.
    pub fn add_services(&self, builder: &mut RoutesBuilder) {
        builder
            .add_service(PolicyDecisionPointServer::new(self.service.clone()))
            .add_service(EchoServer::new(EchoService));
    }

    /// Reports the PDP's health through `reporter`: the PDP service is
    /// NOT_SERVING until the replica's first snapshot arrived and, with a
    /// PIP, its group IDs were listed (before, an `acor` entry that may name
    /// a `<group>` decides nothing: Decision 3, 10), then SERVING;
    /// Echo is SERVING at once. With `overall`, the server-wide status `""`
    /// follows the PDP's too (a standalone PDP).
    pub async fn report_health(&self, reporter: HealthReporter, overall: bool) {
        reporter
            .set_service_status(ECHO_SERVICE_NAME, ServingStatus::Serving)
            .await;
        let set = move |status| {
            let reporter = reporter.clone();
            async move {
                reporter.set_service_status(PDP_SERVICE_NAME, status).await;
                if overall {
                    reporter.set_service_status("", status).await;
                }
            }
        };
        let groups_known =
            |pip: &Option<Arc<PipCache>>| pip.as_ref().is_none_or(|p| p.groups_known());
        if self.replica.is_ready() && groups_known(&self.pip) {
            set(ServingStatus::Serving).await;
            return;
        }
        set(ServingStatus::NotServing).await;
        let replica = self.replica.clone();
        let pip = self.pip.clone();
        let task = tokio::spawn(async move {
            replica.wait_ready().await;
            if let Some(pip) = pip {
                pip.wait_groups_known().await;
            }
            set(ServingStatus::Serving).await;
        });
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Routes for a standalone PDP: `PolicyDecisionPoint`, `Echo`, health
    /// (reported as by [`Pdp::report_health`] with `overall`) and reflection.
    pub async fn routes(&self) -> anyhow::Result<Routes> {
        let (reporter, health) = tonic_health::server::health_reporter();
        self.report_health(reporter, true).await;
        let mut builder = RoutesBuilder::default();
        self.add_services(&mut builder);
        add_health_and_reflection(&mut builder, health, &Self::SERVICE_NAMES)?;
        Ok(builder.routes())
    }

    /// Serves a standalone PDP ([`Pdp::routes`]) on `listener` until
    /// `shutdown` completes, with a span per RPC when traces are exported;
    /// TLS only with `tls`.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        tls: Option<&authz_proto::tls::ServerTls>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let routes = self.routes().await?;
        tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), prp = ?self.replica.endpoint(), "PDP serving");
        // One span per RPC when traces are exported.
        authz_proto::serving::server(tls)?
            .add_routes(routes)
            .serve_with_incoming_shutdown(authz_proto::listener::incoming(listener), shutdown)
            .await?;
        Ok(())
    }
}

impl Pdp {
    /// Stops the background tasks: following the PRP and the PIP, loading
    /// DAS keys. A process that shuts its own PRP and PIP down calls it
    /// first, so that their streams ending is not reported as a failure;
    /// decisions still answer from what is held.
    pub fn stop_following(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Drop for Pdp {
    fn drop(&mut self) {
        self.stop_following();
    }
}

pub use authz_proto::serving::add_health_and_reflection;

/// The attributes of a PDP without a PIP: none is known. A claimed role
/// cannot be verified (`Unavailable`, not "not held": no `<role>`
/// repository was asked), so a rule that needs one is undetermined and its
/// Deny says MISSING_ATTRIBUTE (TS-0003 7.4.3 step 4; Decision 10), as one
/// that needs a position does. No `<group>` exists for it: group entries
/// are originator IDs.
#[derive(Debug, Clone, Copy, Default)]
pub struct WithoutPip;

impl AttributeSource for WithoutPip {
    fn role_verified(&self, _: &str, _: &str, _: chrono::DateTime<chrono::Utc>) -> Lookup<bool> {
        Lookup::Unavailable("no PIP is configured to verify roles".to_owned())
    }
    fn group_has_member(&self, group_id: &str, originator: &str) -> Lookup<bool> {
        NoAttributes.group_has_member(group_id, originator)
    }
    fn for_each_group_containing(
        &self,
        originator: &str,
        visit: &mut dyn FnMut(&str),
    ) -> Lookup<()> {
        NoAttributes.for_each_group_containing(originator, visit)
    }
    fn position(&self, originator: &str, at: chrono::DateTime<chrono::Utc>) -> Lookup<Position> {
        NoAttributes.position(originator, at)
    }
    fn countries_of_position(&self, position: &Position) -> Lookup<Vec<String>> {
        NoAttributes.countries_of_position(position)
    }
    fn country_of_ip(&self, ip: std::net::IpAddr) -> Lookup<String> {
        NoAttributes.country_of_ip(ip)
    }
}
