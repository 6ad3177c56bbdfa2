//! # authz-pip
//!
//! The Policy Information Point of onem2m-authz (TS-0003 6.2.2 steps
//! 006-007): the attributes a decision request does not carry.
//!
//! - [`records`]: `<role>`, `<token>`, `<group>` and position records, their
//!   checks and wire conversions;
//! - [`state`]: the stored state as an [`authz_store::Schema`] (the PRP's
//!   durable revisioned store, reused);
//! - [`resolve`]: role verification (TS-0003 7.4.3), position freshness,
//!   countries;
//! - [`geo`]: IP → country (CSV tables, MaxMind `.mmdb`) and position →
//!   country (the `country-boundaries` dataset; Annex F.2.2);
//! - [`service`]: the `PolicyInformationPoint` gRPC adapter.
//!
//! The PDP keeps a cache of these attributes (`authz_pdp::pip`), filled by
//! `ResolveAttributes` and invalidated by `Watch`.

#![warn(missing_docs)]

pub mod geo;
pub mod records;
pub mod resolve;
pub mod service;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authz_core::HostingContext;
use authz_proto::pb::policy_information_point_server::PolicyInformationPointServer;
use authz_store::{DEFAULT_LOG_LIMIT, Store, StoreError};
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

pub use resolve::Resolver;
pub use service::{PipService, Writers};

use crate::geo::{CountryLocator, GeoError, IpCountrySources, IpCountryTable, MmdbCountries};
use crate::state::{PipSchema, PipState};

/// Name of the redb file inside the data directory.
pub const REDB_FILE: &str = "pip.redb";

/// Configuration of the PIP.
#[derive(Debug, Clone)]
pub struct PipConfig {
    /// Directory of `pip.redb`; `None` keeps the state in memory only.
    pub data_dir: Option<PathBuf>,
    /// The originator that may write everything (empty: nobody).
    pub admin_originator: String,
    /// Originators that may report positions, besides the admin.
    pub location_sources: Vec<String>,
    /// Originators that may store tokens, besides the admin: PDPs recording
    /// the Local-Token-IDs they assign (their `--pip-writer`).
    pub token_writers: Vec<String>,
    /// The hosting CSE IDs are canonicalized with.
    pub hosting: HostingContext,
    /// Trusted Authorization Authorities: the `tkis` of roles that count.
    pub trusted_issuers: Vec<String>,
    /// How long a reported position stays usable.
    pub max_position_age: Duration,
    /// `cidr,country` CSV tables (looked up first, in order).
    pub ip_csv: Vec<PathBuf>,
    /// MaxMind-format `.mmdb` databases (after the CSV tables, in order).
    pub ip_mmdb: Vec<PathBuf>,
    /// Load the country-boundaries dataset for position → country.
    pub country_boundaries: bool,
    /// How many changes the log keeps for `Watch` resumption.
    pub log_limit: usize,
}

impl PipConfig {
    /// Defaults: no trusted issuers, no location sources besides the admin,
    /// positions usable for 5 minutes, no IP tables, the country-boundaries
    /// dataset loaded.
    pub fn new(
        data_dir: Option<PathBuf>,
        admin_originator: impl Into<String>,
        hosting: HostingContext,
    ) -> Self {
        Self {
            data_dir,
            admin_originator: admin_originator.into(),
            location_sources: Vec::new(),
            token_writers: Vec::new(),
            hosting,
            trusted_issuers: Vec::new(),
            max_position_age: Duration::from_secs(300),
            ip_csv: Vec::new(),
            ip_mmdb: Vec::new(),
            country_boundaries: true,
            log_limit: DEFAULT_LOG_LIMIT,
        }
    }
}

/// Why the PIP could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipStartError {
    /// The store could not be opened (the message names the file).
    #[error("PIP store: {0}")]
    Store(StoreError),
    /// A country source could not be loaded; `origin` names the option
    /// or data it comes from (`--ip-csv`, `--ip-mmdb`, the built-in
    /// country boundaries).
    #[error("{origin}: {error}")]
    Geo {
        /// Where the source was configured.
        origin: &'static str,
        /// Why it could not be loaded.
        error: GeoError,
    },
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
impl From<StoreError> for PipStartError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The country sources of a PIP (`--ip-csv`, `--ip-mmdb`, the built-in
/// boundaries), loaded: what [`build_with_sources`] takes, so that a
/// process can load them, and name a bad file, before it makes any store.
pub struct CountrySources {
    ip: IpCountrySources,
    locator: Option<Arc<CountryLocator>>,
}

/// Loads the country sources `config` names.
pub async fn load_country_sources(config: &PipConfig) -> Result<CountrySources, PipStartError> {
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || country_sources(&cfg))
        .await
        .map_err(|e| PipStartError::Task(e.to_string()))?
}

fn country_sources(config: &PipConfig) -> Result<CountrySources, PipStartError> {
    let geo = |origin| move |error| PipStartError::Geo { origin, error };
    let mut ip = IpCountrySources::new();
    // One table of every CSV file: the longest prefix wins across files.
    if !config.ip_csv.is_empty() {
        ip.add_table(IpCountryTable::load_csvs(&config.ip_csv).map_err(geo("--ip-csv"))?);
    }
    for path in &config.ip_mmdb {
        ip.add_mmdb(MmdbCountries::open(path).map_err(geo("--ip-mmdb"))?);
    }
    let locator = if config.country_boundaries {
        Some(Arc::new(
            CountryLocator::new().map_err(geo("the built-in country boundaries"))?,
        ))
    } else {
        None
    };
    Ok(CountrySources { ip, locator })
}

fn open_store(config: &PipConfig) -> Result<Store<PipSchema>, PipStartError> {
    Ok(match &config.data_dir {
        // Group rows of older stores are read against the hosting CSE.
        Some(dir) => Store::open_redb_with_state(
            &dir.join(REDB_FILE),
            config.log_limit,
            PipState::hosted(config.hosting.clone()),
        )?,
        None => Store::memory(config.log_limit),
    })
}

/// Loads the country sources (a bad one is named before the store is
/// made), opens the store and builds the service.
pub async fn build(config: &PipConfig) -> Result<PipService, PipStartError> {
    let sources = load_country_sources(config).await?;
    build_with_sources(config, sources).await
}

/// Opens the store and builds the service with country sources loaded
/// already ([`load_country_sources`]).
pub async fn build_with_sources(
    config: &PipConfig,
    sources: CountrySources,
) -> Result<PipService, PipStartError> {
    let cfg = config.clone();
    let store = tokio::task::spawn_blocking(move || open_store(&cfg))
        .await
        .map_err(|e| PipStartError::Task(e.to_string()))??;
    let resolver = Resolver::new(
        config.hosting.clone(),
        &config.trusted_issuers,
        config.max_position_age,
        sources.ip,
        sources.locator,
    );
    Ok(PipService::new(
        Arc::new(store),
        resolver,
        Writers {
            admin: config.admin_originator.clone(),
            location_sources: config.location_sources.clone(),
            token_writers: config.token_writers.clone(),
        },
    ))
}

/// The tonic server wrapper of the service.
pub fn server(service: PipService) -> PolicyInformationPointServer<PipService> {
    // A `<group>` is not bounded (fleets of 100 000 members are real): a
    // PutGroup of one may be larger than tonic's 4 MiB default.
    PolicyInformationPointServer::new(service)
        .max_decoding_message_size(authz_proto::convert::MAX_DECODING_MESSAGE_BYTES)
}

/// Marks the PIP serving in `health` (for a process that mounts several
/// services and owns health and reflection).
pub async fn report_health(health: &HealthReporter) {
    health
        .set_serving::<PolicyInformationPointServer<PipService>>()
        .await;
}

/// A router with the PIP service, gRPC health and reflection v1.
pub async fn router(
    service: PipService,
) -> Result<Router<authz_proto::serving::ServiceLayers>, PipStartError> {
    Ok(authz_proto::serving::standalone_router(server(service)).await?)
}

/// Runs a standalone PIP on `listener` until `shutdown` completes.
pub async fn serve(
    config: PipConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), PipStartError> {
    serve_service(build(&config).await?, listener, None, shutdown).await
}

/// Runs a PIP built with [`build`] on `listener` until `shutdown`
/// completes (a process that reports a failed start before it says it
/// serves); TLS only with `tls`.
pub async fn serve_service(
    service: PipService,
    listener: tokio::net::TcpListener,
    tls: Option<&authz_proto::tls::ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), PipStartError> {
    let closer = service.clone();
    let routes = authz_proto::serving::standalone_routes(server(service)).await?;
    tracing::info!(addr = ?listener.local_addr().ok(), tls = tls.is_some(), "PIP serving");
    authz_proto::serving::server(tls)?
        .add_routes(routes)
        .serve_with_incoming_shutdown(authz_proto::listener::incoming(listener), async move {
            shutdown.await;
            closer.shutdown();
        })
        .await?;
    Ok(())
}
