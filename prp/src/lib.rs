//! # authz-prp
//!
//! The Policy Retrieval Point of onem2m-authz (TS-0003 6.2.2 steps 004-005):
//! the gRPC service `onem2m.authz.v1.PolicyRetrievalPoint` (`prp.proto`).
//!
//! - It stores `<accessControlPolicy>` resources, the target resources the
//!   PDP is asked about (their `acpi`, creator and custodian) and dynamic ACPs
//!   granted by Direct Dynamic Authorization, durably ([`store::open`], one
//!   redb file on [`authz_store`]; or [`store::memory`]).
//! - It resolves a target's applicable policies in the order of TS-0001
//!   10.2.3.1 with [`authz_core::resources::applicable_policies`].
//! - It authorizes every write with the core engine (a Create by the
//!   parent's applicable policies; changes to an ACP by its
//!   `selfPrivileges`; `acpi` changes per TS-0001 9.6.1.3.2); see
//!   [`service`] for the table.
//! - It streams ordered changes (`Watch`) so that PDPs keep a replica: a
//!   snapshot, then one event per revision.
//!
//! Embedding:
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use authz_core::HostingContext;
//! use authz_prp::{PrpConfig, serve};
//!
//! let config = PrpConfig::new(
//!     Some("/var/lib/authz".into()),
//!     "CAdmin",
//!     HostingContext::new("//sp.example.com", "/id-in")?,
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50052").await?;
//! serve(config, listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! An all-in-one process builds the service with [`build`] and mounts it on
//! its own router with [`add_to_router`].

#![warn(missing_docs)]

pub mod bundle;
pub mod service;
pub mod store;
mod writers;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authz_core::HostingContext;
use authz_proto::pb::policy_retrieval_point_server::PolicyRetrievalPointServer;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

pub use service::{DEFAULT_POLICY_PREFIX, PrpService, default_policy_id};
pub use store::{PolicyStore, PrpStore, StoreError};

/// Configuration of the PRP.
#[derive(Debug, Clone)]
pub struct PrpConfig {
    /// Directory of the redb file (`<dir>/prp.redb`); `None` keeps the state
    /// in memory only.
    pub data_dir: Option<PathBuf>,
    /// The originator that may always write (empty: nobody).
    pub admin_originator: String,
    /// The hosting CSE whose IDs originators are resolved against.
    pub hosting: HostingContext,
    /// Originators (PDPs) allowed to store dynamic ACPs, besides the admin.
    pub dynamic_acp_originators: Vec<String>,
    /// How often expired dynamic ACPs are deleted.
    pub sweep_interval: Duration,
    /// How many changes the log keeps for `Watch` resumption.
    pub log_limit: usize,
    /// How many live changes a `Watch` stream may fall behind before it is
    /// sent a new snapshot instead.
    pub event_capacity: usize,
    /// The PIP asked which `acor` entries are `<group>`s, and which list a
    /// writer, when a write is authorized (Decision 3); `None`: no ID is a
    /// group.
    pub pip_endpoint: Option<String>,
    /// Verifies an `https://` PIP endpoint.
    pub tls: authz_proto::tls::ClientTls,
}

impl PrpConfig {
    /// A configuration with defaults: no dynamic-ACP originators besides the
    /// admin, a 1 s sweep, a 10 000-entry change log and 1024 live events
    /// of slack per watcher.
    pub fn new(
        data_dir: Option<PathBuf>,
        admin_originator: impl Into<String>,
        hosting: HostingContext,
    ) -> Self {
        Self {
            data_dir,
            admin_originator: admin_originator.into(),
            hosting,
            dynamic_acp_originators: Vec::new(),
            sweep_interval: Duration::from_secs(1),
            log_limit: store::DEFAULT_LOG_LIMIT,
            event_capacity: 1024,
            pip_endpoint: None,
            tls: authz_proto::tls::ClientTls::default(),
        }
    }
}

/// Why the PRP could not start.
#[derive(Debug, thiserror::Error)]
pub enum PrpError {
    /// The store could not be opened or loaded (the message names the file).
    #[error("PRP store: {0}")]
    Store(StoreError),
    /// gRPC reflection could not be set up.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The PIP endpoint cannot be used.
    #[error("{0}")]
    Pip(String),
}

// Not `#[from]`: the message holds the store's, so it is not also the
// `source` (an error chain would print it twice).
impl From<StoreError> for PrpError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Opens the configured store ([`store::open`] in `data_dir`, else
/// [`store::memory`]) and builds the service on it. Must run inside a tokio
/// runtime (it spawns the dynamic-ACP sweeper).
pub async fn build(config: &PrpConfig) -> Result<PrpService, PrpError> {
    let store: Arc<dyn PolicyStore> = match &config.data_dir {
        Some(dir) => {
            let dir = dir.clone();
            let limit = config.log_limit;
            Arc::new(
                tokio::task::spawn_blocking(move || store::open_with_log_limit(dir, limit))
                    .await
                    .map_err(|e| StoreError::backend(format!("open task failed: {e}")))??,
            )
        }
        None => Arc::new(store::memory(config.log_limit)),
    };
    let service = PrpService::new(config, store).await?;
    if let Some(pip) = &config.pip_endpoint {
        service
            .ask_pip_for_writers(pip, &config.tls)
            .map_err(PrpError::Pip)?;
    }
    Ok(service)
}

/// The tonic server wrapper of the service.
pub fn server(service: PrpService) -> PolicyRetrievalPointServer<PrpService> {
    PolicyRetrievalPointServer::new(service)
}

/// Adds the PRP service to `router` and marks it serving in `health` (for a
/// process that mounts several services and owns health and reflection).
pub async fn add_to_router<L>(
    router: Router<L>,
    service: PrpService,
    health: &HealthReporter,
) -> Router<L> {
    health
        .set_serving::<PolicyRetrievalPointServer<PrpService>>()
        .await;
    router.add_service(server(service))
}

/// A router with the PRP service, gRPC health (PRP set serving) and gRPC
/// reflection v1 (the `onem2m.authz.v1` package and health).
pub async fn router(
    service: PrpService,
) -> Result<Router<authz_proto::serving::ServiceLayers>, PrpError> {
    Ok(authz_proto::serving::standalone_router(server(service)).await?)
}

/// Runs a standalone PRP on `listener` until `shutdown` completes; open
/// `Watch` streams are ended at shutdown.
pub async fn serve(
    config: PrpConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_service(build(&config).await?, listener, None, shutdown).await
}

/// Runs a PRP built with [`build`] on `listener` until `shutdown`
/// completes (a process that reports a failed start before it says it
/// serves); TLS only with `tls`.
pub async fn serve_service(
    service: PrpService,
    listener: tokio::net::TcpListener,
    tls: Option<&authz_proto::tls::ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let closer = service.clone();
    let routes = authz_proto::serving::standalone_routes(server(service))
        .await
        .map_err(PrpError::from)?;
    tracing::info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), "PRP serving");
    authz_proto::serving::server(tls)
        .map_err(PrpError::from)?
        .add_routes(routes)
        .serve_with_incoming_shutdown(authz_proto::listener::incoming(listener), async move {
            shutdown.await;
            closer.shutdown();
        })
        .await
        .map_err(PrpError::from)?;
    Ok(())
}
