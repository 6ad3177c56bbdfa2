//! # authz-das
//!
//! The Dynamic Authorization System server of onem2m-authz (TS-0003 7.3): a
//! gRPC service with its own identity (DAS AE-ID and Token-ID FQDN), its own
//! signing keys and its own policies, which grants temporary privileges to
//! originators that stored ACPs deny.
//!
//! - [`config`]: the JSON configuration file (identity, keys, clients,
//!   consultants, policies), checked at load with errors naming file and
//!   field;
//! - [`policy`]: the policies, decided by the core engine
//!   ([`authz_core::decide`]) on the `dynAuthDasRequest`, and what the first
//!   matching one grants (a oneM2M JWT, a dynamic ACP, or both);
//! - [`request`]: the `dynAuthDasRequest` from the wire, checked field by
//!   field;
//! - [`state`]: issued tokens on the shared durable store
//!   ([`authz_store::Store`]) until they expire;
//! - [`service`]: the `DynamicAuthorizationServer` gRPC adapter (`Consult`
//!   for Direct DA, `IssueToken` for the originator's side of Indirect DA,
//!   `GetTokens`, `GetKeySet`).
//!
//! A PDP trusts the DAS by configuring its `issuer`, algorithms and public
//! keys (from `GetKeySet`) in an [`authz_core::token::TrustStore`], and finds
//! it from the FQDN of a Token-ID or Role-ID (Decision 8).

#![warn(missing_docs)]

pub mod config;
pub mod policy;
pub mod request;
pub mod service;
pub mod state;

use std::path::Path;
use std::sync::Arc;

use authz_proto::pb::dynamic_authorization_server_server::DynamicAuthorizationServerServer;
use authz_store::{Store, StoreError};
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

pub use config::{ConfigError, DasConfig};
pub use service::{Caller, DasService};

use crate::state::DasSchema;

/// Name of the redb file inside the data directory.
pub const REDB_FILE: &str = "das.redb";

/// Change-log entries kept: the DAS has no `Watch`, so only the last.
const LOG_LIMIT: usize = 1;

/// Why the DAS could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DasStartError {
    /// The configuration file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The token store could not be opened (the message names the file).
    #[error("DAS store: {0}")]
    Store(StoreError),
    /// gRPC reflection could not be set up.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A loading task panicked or was cancelled.
    #[error("loading task: {0}")]
    Task(String),
}

// Not `#[from]`: the message holds the store's, so it is not also the
// `source` (an error chain would print it twice).
impl From<StoreError> for DasStartError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Opens the token store (`das.redb` in `data_dir`, or in memory when
/// `None`) and builds the service. The sweeper is not started: see
/// [`DasService::start_sweeper`] (done by [`serve`]).
pub async fn build(
    config: DasConfig,
    data_dir: Option<&Path>,
) -> Result<DasService, DasStartError> {
    let path = data_dir.map(|d| d.join(REDB_FILE));
    let store = tokio::task::spawn_blocking(move || match path {
        Some(p) => Store::<DasSchema>::open_redb(&p, LOG_LIMIT),
        None => Ok(Store::memory(LOG_LIMIT)),
    })
    .await
    .map_err(|e| DasStartError::Task(e.to_string()))??;
    Ok(DasService::new(Arc::new(config), Arc::new(store)))
}

/// The tonic server wrapper of the service.
pub fn server(service: DasService) -> DynamicAuthorizationServerServer<DasService> {
    DynamicAuthorizationServerServer::new(service)
}

/// Marks the DAS serving in `health` (for a process that mounts several
/// services and owns health and reflection).
pub async fn report_health(health: &HealthReporter) {
    health
        .set_serving::<DynamicAuthorizationServerServer<DasService>>()
        .await;
}

/// A router with the DAS service, gRPC health and reflection v1.
pub async fn router(
    service: DasService,
) -> Result<Router<authz_proto::serving::ServiceLayers>, DasStartError> {
    Ok(authz_proto::serving::standalone_router(server(service)).await?)
}

/// Runs a standalone DAS on `listener`, with its sweeper, until `shutdown`
/// completes.
pub async fn serve(
    config: DasConfig,
    data_dir: Option<&Path>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DasStartError> {
    serve_service(build(config, data_dir).await?, listener, None, shutdown).await
}

/// [`serve`] for a service already [`build`]t: a process that opens its
/// store before it says it serves; TLS only with `tls`.
pub async fn serve_service(
    service: DasService,
    listener: tokio::net::TcpListener,
    tls: Option<&authz_proto::tls::ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DasStartError> {
    let mut builder = authz_proto::serving::server(tls)?;
    let sweeper = service.start_sweeper();
    let closer = service.clone();
    let routes = authz_proto::serving::standalone_routes(server(service)).await?;
    tracing::info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), issuer = %closer.config().issuer, "DAS serving");
    let served = builder
        .add_routes(routes)
        .serve_with_incoming_shutdown(authz_proto::listener::incoming(listener), async move {
            shutdown.await;
        })
        .await;
    closer.shutdown();
    let _ = sweeper.await;
    served?;
    Ok(())
}
