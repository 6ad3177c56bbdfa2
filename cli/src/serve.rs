//! `authz up`, `authz prp`, `authz pdp`, `authz pip`: run the services.
//!
//! `up` is the all-in-one mode: PRP, PIP and PDP (plus Echo, health and
//! reflection) on one gRPC port, the PRP's and PIP's stores in `./data`
//! (redb), and the door-lock demo policies loaded when the store is empty.
//! The PDP follows the PRP and the PIP through their Watch streams on
//! loopback, exactly as a separate PDP process would.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, Result};
use authz_core::HostingContext;
use authz_pdp::{Pdp, PdpConfig, telemetry};
use authz_pip::PipConfig;
use authz_proto::tls::{ClientTls, ServerTls, TlsError};
use authz_prp::PrpConfig;
use clap::Args;
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;

/// The demo bundle loaded by `authz up` into an empty store.
pub const DEMO: &str = include_str!("../../examples/door-lock-demo.json");

/// The file in the data directory that says a load of the demo began and
/// has not finished: the demo is several writes, so a process stopped
/// between them leaves part of it, and the next start (whose store is no
/// longer empty) completes it instead of serving half a demo.
pub const DEMO_PENDING: &str = "demo-load.pending";

/// The hosting CSE's identity.
#[derive(Args, Clone)]
pub struct HostingArgs {
    /// The hosting CSE's SP-ID.
    #[arg(long, default_value = "//home.example")]
    sp_id: String,
    /// The hosting CSE's CSE-ID.
    #[arg(long, default_value = "/mn-cse-123456")]
    cse_id: String,
}

impl HostingArgs {
    fn context(&self) -> Result<HostingContext> {
        crate::hosting_context(&self.sp_id, &self.cse_id)
    }
}

/// TLS of a serving command's port.
#[derive(Args, Clone)]
pub struct ServerTlsArgs {
    /// Serve TLS only, presenting this PEM certificate chain (the server's
    /// certificate first, then intermediates); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require every client to present a certificate chaining to a CA
    /// certificate of this PEM file (mutual TLS); the handshake of any
    /// other client is refused. Repeatable, or a bundle; needs --tls-cert
    /// and --tls-key.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Vec<PathBuf>,
}

impl ServerTlsArgs {
    /// The certificate, key and client CAs, read and checked (before
    /// anything starts), when given; an error names the flag and the file.
    pub fn load(&self) -> Result<Option<ServerTls>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            // Client certificates are asked for in a TLS handshake: without
            // TLS, the flag would leave the port open to every client.
            if let Some(ca) = self.tls_client_ca.first() {
                anyhow::bail!(
                    "--tls-client-ca {}: needs --tls-cert and --tls-key (client certificates are asked for in a TLS handshake)",
                    ca.display()
                );
            }
            return Ok(None);
        };
        let read = |flag: &str, file: &PathBuf| {
            std::fs::read(file).with_context(|| format!("{flag} {}: cannot read", file.display()))
        };
        let (cert_pem, key_pem) = (read("--tls-cert", cert)?, read("--tls-key", key)?);
        let mut tls = ServerTls::from_pem(&cert_pem, &key_pem).map_err(|e| match e {
            TlsError::Certificate(_) => anyhow::anyhow!("--tls-cert {}: {e}", cert.display()),
            TlsError::Key(_) => anyhow::anyhow!("--tls-key {}: {e}", key.display()),
        })?;
        for ca in &self.tls_client_ca {
            tls = tls
                .with_client_ca_pem(&read("--tls-client-ca", ca)?)
                .map_err(|e| anyhow::anyhow!("--tls-client-ca {}: {e}", ca.display()))?;
        }
        Ok(Some(tls))
    }
}

/// The URL scheme of a port: `https` with TLS.
pub fn scheme(tls: Option<&ServerTls>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}

/// Settings of the PIP (`authz pip` and `authz up`).
#[derive(Args, Clone)]
pub struct PipSettings {
    /// A trusted Authorization Authority: roles issued (`tkis`) by it count
    /// (repeatable).
    #[arg(long = "trusted-issuer")]
    trusted_issuers: Vec<String>,
    /// An originator allowed to report positions, besides the admin (repeatable).
    #[arg(long = "location-source")]
    location_sources: Vec<String>,
    /// An originator allowed to store tokens (PutToken), besides the admin:
    /// what a standalone PDP sends as `--pip-writer` to record the
    /// Local-Token-IDs it assigns (repeatable).
    #[arg(long = "token-writer", value_name = "ID")]
    token_writers: Vec<String>,
    /// Seconds a reported position stays usable (1 to 31 622 400, a year).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    max_position_age: u64,
    /// A `cidr,country` CSV table for IP → country (repeatable; looked up first).
    #[arg(long = "ip-csv")]
    ip_csv: Vec<PathBuf>,
    /// A MaxMind-format .mmdb database for IP → country (repeatable).
    #[arg(long = "ip-mmdb")]
    ip_mmdb: Vec<PathBuf>,
    /// Do not load the country-boundaries dataset (position → country).
    #[arg(long)]
    no_country_boundaries: bool,
}

impl PipSettings {
    fn config(&self, data_dir: Option<PathBuf>, admin: &str, hosting: HostingContext) -> PipConfig {
        let mut c = PipConfig::new(data_dir, admin, hosting);
        c.trusted_issuers = self.trusted_issuers.clone();
        c.location_sources = self.location_sources.clone();
        c.token_writers = self.token_writers.clone();
        c.max_position_age = std::time::Duration::from_secs(self.max_position_age);
        c.ip_csv = self.ip_csv.clone();
        c.ip_mmdb = self.ip_mmdb.clone();
        c.country_boundaries = !self.no_country_boundaries;
        c
    }
}

/// Tokens and dynamic authorization at the PDP (TS-0003 7.3).
#[derive(Args, Clone)]
pub struct DynamicArgs {
    /// A DAS whose tokens and grants this PDP trusts (its keys are fetched
    /// with GetKeySet); repeatable.
    #[arg(long = "das")]
    dases: Vec<String>,
    /// The DAS consulted (Direct Dynamic Authorization) for targets that link
    /// no enabled `<dynamicAuthorizationConsultation>`.
    #[arg(long)]
    default_das: Option<String>,
    /// Deadline of one DAS call, in milliseconds (1 to 3 600 000, an hour).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    das_deadline_ms: u64,
    /// `URL=FILE`: present the secret in FILE (surrounding whitespace
    /// trimmed) as `authorization: Bearer <secret>` when calling Consult and
    /// GetTokens on the DAS at URL (one of --das or --default-das): the
    /// secret of this PDP's hosting CSE in that DAS's `consultants`;
    /// repeatable.
    #[arg(long = "das-secret-file", value_name = "URL=FILE")]
    das_secret_files: Vec<String>,
    /// A JWK Set (RFC 7517) of the keys JWE tokens sent to this CSE are
    /// decrypted with (TS-0003 7.3.2.6.2): private `RSA-OAEP-256` or
    /// `ECDH-ES+A*KW` (P-256) keys of this CSE, or secrets (`dir`, `A*KW`)
    /// shared with a DAS; without it a JWE token is refused.
    #[arg(long = "token-decryption-keys", value_name = "FILE")]
    token_decryption_keys: Option<PathBuf>,
}

/// The JWK Set of `--token-decryption-keys`.
fn decryption_keys(file: &Path) -> Result<authz_core::jwe::DecryptionKeys> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("--token-decryption-keys {}: cannot read", file.display()))?;
    authz_core::jwe::DecryptionKeys::from_jwk_set(&text)
        .with_context(|| format!("--token-decryption-keys {}", file.display()))
}

impl DynamicArgs {
    /// The configuration, storing dynamic ACPs in the PRP as `writer` and
    /// tokens with their Local-Token-IDs in the PIP as `pip_writer`.
    fn config(&self, writer: &str, pip_writer: &str) -> Result<Option<authz_pdp::DynamicConfig>> {
        if self.dases.is_empty() && self.default_das.is_none() {
            if let Some(first) = self.das_secret_files.first() {
                anyhow::bail!("--das-secret-file {first}: no --das or --default-das is given");
            }
            if let Some(file) = &self.token_decryption_keys {
                anyhow::bail!(
                    "--token-decryption-keys {}: no --das is given, so no token issuer is trusted",
                    file.display()
                );
            }
            return Ok(None);
        }
        let mut c = authz_pdp::DynamicConfig::new(self.dases.clone());
        c.default_das = self.default_das.clone();
        c.deadline = std::time::Duration::from_millis(self.das_deadline_ms);
        c.prp_writer = writer.to_owned();
        c.pip_writer = pip_writer.to_owned();
        if let Some(file) = &self.token_decryption_keys {
            c.decryption_keys = decryption_keys(file)?;
        }
        for arg in &self.das_secret_files {
            let (endpoint, file) = arg
                .rsplit_once('=')
                .filter(|(e, f)| !e.is_empty() && !f.is_empty())
                .with_context(|| format!("--das-secret-file {arg}: expected URL=FILE"))?;
            let secret = std::fs::read_to_string(file)
                .with_context(|| format!("--das-secret-file {arg}: cannot read {file}"))?;
            c.das_secrets.push(authz_pdp::DasSecret {
                endpoint: endpoint.to_owned(),
                secret: secret.trim().to_owned(),
            });
        }
        Ok(Some(c))
    }
}

/// Arguments of `authz up`.
#[derive(Args)]
pub struct UpArgs {
    /// gRPC listen address for every service.
    #[arg(long, default_value = "127.0.0.1:7171")]
    listen: SocketAddr,
    /// Directory of the embedded stores; `memory` for volatile ones (lost
    /// on exit), as with `prp`, `pip` and `das`.
    #[arg(long, default_value = "./data")]
    data_dir: String,
    /// Prometheus metrics listen address (`/metrics`); `off` to disable.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics: String,
    /// The admin originator, allowed every PRP write (bootstraps the first policies).
    #[arg(long, default_value = "CAdmin")]
    admin: String,
    /// Do not load the demo policies into an empty store.
    #[arg(long)]
    no_demo: bool,
    #[command(flatten)]
    hosting: HostingArgs,
    #[command(flatten)]
    pip: PipSettings,
    /// Also run a DAS with this configuration (for example
    /// `examples/das/door-lock-das.json`) on the same port; the PDP trusts it
    /// and names it in Token Request Information.
    #[arg(long)]
    das_config: Option<PathBuf>,
    /// The URL originators and DACs (`dap`) use for the DAS of --das-config,
    /// as named in Token Request Information (default: the listen URL; the
    /// PDP itself still reaches the DAS on the listener).
    #[arg(long, value_name = "URL", requires = "das_config")]
    advertise_url: Option<String>,
    /// A JWK Set of the keys the PDP decrypts JWE tokens with (as for `authz
    /// pdp`), for example the private key of a DAS `token_encryption` entry.
    #[arg(long, value_name = "FILE", requires = "das_config")]
    token_decryption_keys: Option<PathBuf>,
    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// Arguments of `authz pip`.
#[derive(Args)]
pub struct PipArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7174")]
    listen: SocketAddr,
    /// Directory of the embedded store (`pip.redb`); `memory` for a volatile store.
    #[arg(long, default_value = "./data")]
    data_dir: String,
    /// The admin originator, allowed every PIP write.
    #[arg(long, default_value = "CAdmin")]
    admin: String,
    #[command(flatten)]
    hosting: HostingArgs,
    #[command(flatten)]
    pip: PipSettings,
    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// Arguments of `authz prp`.
#[derive(Args)]
pub struct PrpArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7172")]
    listen: SocketAddr,
    /// Directory of the embedded store; `memory` for a volatile store.
    #[arg(long, default_value = "./data")]
    data_dir: String,
    /// The admin originator.
    #[arg(long, default_value = "CAdmin")]
    admin: String,
    /// An originator besides the admin that may store dynamic ACPs
    /// (`CreateDynamicAcp`): what a standalone PDP sends as `--prp-writer`.
    /// Repeatable.
    #[arg(long = "dynamic-acp-originator", value_name = "ID")]
    dynamic_acp_originators: Vec<String>,
    /// The PIP asked, on every write by someone other than the admin, which
    /// `acor` entries are `<group>`s and which list the writer (Decision
    /// 3), as `authz pdp` asks it; `off`: no ID is a group (an originator
    /// spelled like a group's ID then writes as that ID).
    #[arg(long, default_value = "http://127.0.0.1:7174")]
    pip: String,
    #[command(flatten)]
    hosting: HostingArgs,
    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// Arguments of `authz pdp`.
#[derive(Args)]
pub struct PdpArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7173")]
    listen: SocketAddr,
    /// The PRP to follow.
    #[arg(long, default_value = "http://127.0.0.1:7172")]
    prp: String,
    /// The originator this PDP stores dynamic ACPs in the PRP as (allowed by
    /// the PRP's admin or dynamic-ACP originators).
    #[arg(long, default_value = "CAdmin")]
    prp_writer: String,
    /// The originator this PDP stores tokens in the PIP as, with the
    /// Local-Token-IDs it assigns, so that every PDP of the hosting CSE
    /// knows them (the PIP's admin or one of its `--token-writer`s).
    #[arg(long, default_value = "CAdmin")]
    pip_writer: String,
    /// The PIP to ask for roles, groups, positions and countries; `off` for none.
    #[arg(long, default_value = "http://127.0.0.1:7174")]
    pip: String,
    /// Deadline of one PIP fetch on a cache miss, in milliseconds (1 to
    /// 3 600 000, an hour).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pip_deadline_ms: u64,
    #[command(flatten)]
    dynamic: DynamicArgs,
    /// Prometheus metrics listen address; `off` to disable.
    #[arg(long, default_value = "127.0.0.1:9465")]
    metrics: String,
    #[command(flatten)]
    hosting: HostingArgs,
    #[command(flatten)]
    tls: ServerTlsArgs,
}

/// Serves the metrics on `--metrics` (unless `off`), with the service's
/// TLS when it has one: its `http(s)://addr/metrics` for the banner.
fn metrics(addr: &str, tls: Option<&ServerTls>) -> Result<Option<String>> {
    if addr == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("--metrics {addr}: not an address"))?;
    let served = telemetry::install_prometheus(addr, tls)
        .with_context(|| format!("--metrics {addr}"))?
        .local_addr();
    Ok(Some(format!("{}://{served}/metrics", scheme(tls))))
}

/// A `--flag URL` the process connects to or hands out: `http://` or
/// `https://` with a host, checked at start rather than failing, unexplained,
/// on every connection attempt.
fn check_url(flag: &str, url: &str) -> Result<()> {
    authz_proto::endpoint::endpoint(url)
        .map(drop)
        .map_err(|e| anyhow::anyhow!("{flag} {url}: {e}"))
}

/// A `--flag ID` that names one originator (an AE-ID or CSE-ID): not `all`,
/// a pattern, an SP domain, a Role-ID or empty; and, where the hosting CSE
/// is known, at most 2048 bytes in the absolute form it is compared in
/// (Decision 2), or no request could ever be from it.
pub(crate) fn check_originator(
    flag: &str,
    id: &str,
    hosting: Option<&HostingContext>,
) -> Result<()> {
    authz_core::resources::check_owner_id(id)
        .map_err(anyhow::Error::from)
        .and_then(|()| match hosting {
            Some(h) => h.check_absolute_length(id).map_err(anyhow::Error::from),
            None => Ok(()),
        })
        .with_context(|| format!("{flag} {id:?}: not one originator ID (AE-ID or CSE-ID)"))
}

impl PipSettings {
    /// The identities among the settings, as [`check_originator`] and
    /// (issuers: an ID or an SP domain) the PIP's own rule.
    fn check(&self, hosting: &HostingContext) -> Result<()> {
        for id in &self.location_sources {
            check_originator("--location-source", id, Some(hosting))?;
        }
        for id in &self.token_writers {
            check_originator("--token-writer", id, Some(hosting))?;
        }
        for issuer in &self.trusted_issuers {
            match authz_core::ids::OriginatorEntry::parse(issuer) {
                Ok(
                    authz_core::ids::OriginatorEntry::Exact { .. }
                    | authz_core::ids::OriginatorEntry::Domain(_),
                ) => {}
                _ => anyhow::bail!(
                    "--trusted-issuer {issuer:?}: not an Authorization Authority ID (an AE-ID, CSE-ID or SP domain)"
                ),
            }
        }
        Ok(())
    }
}

impl DynamicArgs {
    /// The DAS URLs.
    fn check(&self) -> Result<()> {
        for url in &self.dases {
            check_url("--das", url)?;
        }
        if let Some(url) = &self.default_das {
            check_url("--default-das", url)?;
        }
        Ok(())
    }
}

/// The `--data-dir` of a standalone service: `memory` for none, else the
/// directory, created when missing.
pub fn data_dir(arg: &str) -> Result<Option<PathBuf>> {
    if arg == "memory" {
        return Ok(None);
    }
    if arg.is_empty() {
        anyhow::bail!("--data-dir: empty; give a directory, or memory");
    }
    let dir = PathBuf::from(arg);
    authz_store::create_private_dir_all(&dir)
        .with_context(|| format!("--data-dir {}: cannot create", dir.display()))?;
    Ok(Some(dir))
}

/// Binds `--listen`: before any store is opened or directory made, so a
/// start refused for a port in use leaves the data directory untouched.
pub async fn listen(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("--listen {addr}: cannot listen"))
}

/// The URL this process reaches its own listener at: `addr`, or loopback
/// when it listens on every address (`0.0.0.0`, `::`); `https` with TLS.
fn local_url(mut addr: SocketAddr, tls: Option<&ServerTls>) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("{}://{addr}", scheme(tls))
}

/// The URL the DAS of `authz up` is named by, to originators (Token Request
/// Information) and DACs: `--advertise-url`, else the URL of the listen
/// address `addr` (`https` with TLS).
fn das_url(advertise_url: Option<&str>, addr: SocketAddr, tls: Option<&ServerTls>) -> String {
    match advertise_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("{}://{addr}", scheme(tls)),
    }
}

/// `e`, naming `--data-dir DIR` when it is the failure to open a service's
/// store in DIR (the file is named by the store's own message).
pub fn store_error(e: impl Into<anyhow::Error>, dir: &str) -> anyhow::Error {
    let e = e.into();
    let store = matches!(e.downcast_ref(), Some(authz_prp::PrpError::Store(_)))
        || matches!(e.downcast_ref(), Some(authz_pip::PipStartError::Store(_)))
        || matches!(e.downcast_ref(), Some(authz_das::DasStartError::Store(_)));
    if store {
        e.context(format!("--data-dir {dir}"))
    } else {
        e
    }
}

/// How long a server may take, after the shutdown signal, to finish the
/// calls open on its connections before it is dropped with them: a stream
/// the client keeps open (the PEP SDK's DecideStream) would keep a graceful
/// shutdown waiting for ever.
pub const DRAIN: Duration = Duration::from_secs(5);

/// The shutdown signal of a server subcommand: the returned future completes
/// on the first SIGINT (Ctrl-C) or SIGTERM (`docker stop`, `systemctl stop`,
/// Kubernetes), logging which; elsewhere than on unix, on Ctrl-C only. The
/// handlers are installed here, before the server starts, so that one that
/// cannot be installed is an error rather than an immediate shutdown.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            tracing::info!(signal = name, drain_s = DRAIN.as_secs(), "shutting down");
        })
    }
    #[cfg(not(unix))]
    {
        let mut ctrl_c = tokio::signal::windows::ctrl_c().context("cannot handle Ctrl-C")?;
        Ok(async move {
            ctrl_c.recv().await;
            tracing::info!(
                signal = "Ctrl-C",
                drain_s = DRAIN.as_secs(),
                "shutting down"
            );
        })
    }
}

/// The shutdown future handed to a server by [`until_signal`].
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the server that `serve` makes with a shutdown future completing on
/// `signal` (from [`shutdown_signal`]). Once the signal came, the server has
/// [`DRAIN`] to finish; then it is dropped, cutting the connections still
/// open, and this returns `Ok`.
pub async fn until_signal<F>(
    signal: impl Future<Output = ()> + Send + 'static,
    serve: impl FnOnce(Shutdown) -> F,
) -> Result<()>
where
    F: Future<Output = Result<()>>,
{
    let (signalled, on_signal) = tokio::sync::oneshot::channel();
    let server = serve(Box::pin(async move {
        signal.await;
        let _ = signalled.send(());
    }));
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => return served,
        Ok(()) = on_signal => {}
    }
    match tokio::time::timeout(DRAIN, server).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!(
                connections = authz_proto::listener::open_connections(),
                "shutdown: connections still open after {} s were cut",
                DRAIN.as_secs()
            );
            Ok(())
        }
    }
}

/// How `authz up` reaches its own listener: plain text without TLS; with
/// TLS, trusting exactly its own certificate ([`ClientTls::pinned`]).
/// When the listener requires client certificates (`--tls-client-ca`),
/// these connections present the process's client certificate
/// (`--tls-client-cert`, `--tls-client-key`), which is then required and
/// must be one the listener accepts. Giving the PDP a way around the
/// requirement instead (a certificate of its own, a plain-text port on
/// loopback) would let any local user, or whoever holds that way, in.
fn own_tls(server: Option<&ServerTls>, tls: &ClientTls) -> Result<ClientTls> {
    let Some(server) = server else {
        return Ok(ClientTls::default());
    };
    let pinned = ClientTls::pinned(server);
    if !server.requires_client_certificates() {
        return Ok(pinned);
    }
    let Some(identity) = tls.identity() else {
        anyhow::bail!(
            "--tls-client-ca needs --tls-client-cert and --tls-client-key with authz up: its PDP connects to its own PRP and PIP (and DAS) through this listener, which then requires a client certificate"
        );
    };
    server.check_client(identity).map_err(|e| {
        anyhow::anyhow!(
            "--tls-client-cert: {e}: authz up's PDP presents it to its own listener, which would refuse it"
        )
    })?;
    Ok(pinned.with_identity(identity.clone()))
}

/// Runs the all-in-one process.
pub async fn up(args: UpArgs, tls: &ClientTls) -> Result<()> {
    let _tracing = telemetry::init_tracing_with_tls("onem2m-authz", tls)?;
    let signal = shutdown_signal()?;
    let hosting = args.hosting.context()?;
    if let Some(url) = &args.advertise_url {
        check_url("--advertise-url", url)?;
    }
    let server_tls = args.tls.load()?;
    // With TLS, this process's connections to itself (the PDP to its PRP,
    // PIP and DAS; the demo loader to its PRP) go through the TLS listener
    // too (it serves nothing else) and trust exactly this process's
    // certificate: its names are those others reach it by (a public host
    // name), not the loopback address it is reached at here, and the CA
    // that signed it may not be at hand. A second, plain-text listener for
    // them would be one more port open to every local user; checking the
    // name against an added CA would fail for the loopback address.
    let own_tls = own_tls(server_tls.as_ref(), tls)?;
    check_originator("--admin", &args.admin, Some(&hosting))?;
    args.pip.check(&hosting)?;
    // Read before anything is written: a configuration the DAS refuses
    // leaves the data directory untouched.
    let das_config = match &args.das_config {
        Some(path) => Some(authz_das::DasConfig::load(path)?),
        None => None,
    };
    let decryption = match &args.token_decryption_keys {
        Some(file) => Some(decryption_keys(file)?),
        None => None,
    };
    if args.data_dir.is_empty() {
        anyhow::bail!("--data-dir: empty; give a directory, or memory");
    }
    // The ports first, then the stores: a start refused for a port in use
    // (the gRPC one first, so a --metrics on the same address is the one
    // blamed) writes nothing.
    let listener = listen(args.listen).await?;
    let metrics = metrics(&args.metrics, server_tls.as_ref())?;
    // The country files too (`--ip-csv`, `--ip-mmdb`), named when bad.
    let pip_config = |data_dir| args.pip.config(data_dir, &args.admin, hosting.clone());
    let countries = authz_pip::load_country_sources(&pip_config(None)).await?;
    let data_dir = data_dir(&args.data_dir)?;
    let dir = args.data_dir.clone();
    let prp = authz_prp::build(&PrpConfig::new(
        data_dir.clone(),
        args.admin.clone(),
        hosting.clone(),
    ))
    .await
    .map_err(|e| store_error(e, &dir))?;
    // In memory the store starts empty every time: nothing to resume.
    let demo_pending = data_dir.as_ref().map(|d| d.join(DEMO_PENDING));
    let resume_demo = !args.no_demo && demo_pending.as_ref().is_some_and(|p| p.exists());
    // A start with --no-demo abandons an interrupted load for good: the
    // writes it then serves are the operator's, which a later start must
    // not overwrite by "completing" the demo over them.
    if let Some(pending) = demo_pending.as_ref().filter(|p| args.no_demo && p.exists()) {
        std::fs::remove_file(pending)
            .with_context(|| format!("{}: cannot remove", pending.display()))?;
        tracing::warn!(
            "--no-demo: the interrupted demo load ({}) is abandoned, not completed",
            pending.display()
        );
    }
    let load_demo = !args.no_demo && (prp.revision() == 0 || resume_demo);
    let pip = authz_pip::build_with_sources(&pip_config(data_dir.clone()), countries)
        .await
        .map_err(|e| store_error(e, &dir))?;

    let das = match das_config {
        Some(config) => {
            let das = authz_das::build(config, data_dir.as_deref())
                .await
                .map_err(|e| store_error(e, &dir))?;
            das.start_sweeper();
            Some(das)
        }
        None => None,
    };
    let addr = listener.local_addr()?;
    // How this process reaches itself (the PDP its PRP, PIP and DAS; the
    // demo loader its PRP).
    let endpoint = local_url(addr, server_tls.as_ref());
    // The PRP authorizes writes with the groups of this process's PIP.
    prp.ask_pip_for_writers(&endpoint, &own_tls)
        .map_err(|e| anyhow::anyhow!(e))?;
    let das_url = das_url(args.advertise_url.as_deref(), addr, server_tls.as_ref());
    // The CSE the PDP consults the DAS as.
    let hosting_cse = format!("//{}/{}", hosting.sp_fqdn(), hosting.cse_id());
    let mut config = PdpConfig::new(hosting)
        .with_prp(endpoint.clone())
        .with_pip(endpoint.clone())
        .with_tls(own_tls.clone());
    if let Some(das) = &das {
        if args.advertise_url.is_none() && addr.ip().is_unspecified() {
            tracing::warn!(
                das = %das_url,
                "originators are told to reach the DAS at an unspecified address: give --advertise-url"
            );
        }
        // The PDP names the DAS by its advertised URL (Token Request
        // Information, DAC `dap`) and connects to it on the listener.
        let mut dynamic = authz_pdp::DynamicConfig::new(vec![das_url.clone()]);
        dynamic.das_addresses.push(authz_pdp::DasAddress {
            endpoint: das_url.clone(),
            connect: endpoint.clone(),
        });
        dynamic.prp_writer = args.admin.clone();
        if let Some(keys) = decryption {
            dynamic.decryption_keys = keys;
        }
        // Its PIP's admin too: the PDP records there the Local-Token-IDs it
        // assigns, so that they survive a restart.
        dynamic.pip_writer = args.admin.clone();
        // The PDP consults as this CSE: with its secret, when the DAS
        // configuration gives it one.
        if let Some(secret) = das
            .config()
            .consultant(&hosting_cse)
            .and_then(|c| c.secret())
        {
            dynamic.das_secrets.push(authz_pdp::DasSecret {
                endpoint: das_url.clone(),
                secret: secret.to_owned(),
            });
        }
        config = config.with_dynamic(dynamic);
    }
    let pdp = std::sync::Arc::new(Pdp::start(config)?);

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<authz_proto::pb::policy_retrieval_point_server::PolicyRetrievalPointServer<
            authz_prp::PrpService,
        >>()
        .await;
    authz_pip::report_health(&reporter).await;
    if das.is_some() {
        authz_das::report_health(&reporter).await;
    }
    pdp.report_health(reporter, true).await;
    let mut routes = RoutesBuilder::default();
    routes.add_service(authz_prp::server(prp.clone()));
    routes.add_service(authz_pip::server(pip.clone()));
    if let Some(das) = &das {
        routes.add_service(authz_das::server(das.clone()));
    }
    pdp.add_services(&mut routes);
    let mut served = vec![
        <authz_proto::pb::policy_retrieval_point_server::PolicyRetrievalPointServer<
            authz_prp::PrpService,
        > as tonic::server::NamedService>::NAME,
        <authz_proto::pb::policy_information_point_server::PolicyInformationPointServer<
            authz_pip::PipService,
        > as tonic::server::NamedService>::NAME,
    ];
    if das.is_some() {
        served.push(
            <authz_proto::pb::dynamic_authorization_server_server::DynamicAuthorizationServerServer<
                authz_das::DasService,
            > as tonic::server::NamedService>::NAME,
        );
    }
    served.extend(Pdp::SERVICE_NAMES);
    authz_pdp::add_health_and_reflection(&mut routes, health, &served)?;

    let closer = prp.clone();
    let das_closer = das.clone();
    let follower = pdp.clone();
    let mut builder = authz_proto::serving::server(server_tls.as_ref())?;
    // Whether a signal has come: one during the start ends it (no demo
    // load error, no banner, no wait for a replica that will not come).
    let (signalled, stopping) = tokio::sync::watch::channel(false);
    let signal = async move {
        signal.await;
        signalled.send_replace(true);
    };
    let mut server = tokio::spawn(until_signal(signal, move |shutdown| async move {
        builder
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(authz_proto::listener::incoming(listener), async move {
                shutdown.await;
                // First, or the PDP reports the PRP's and PIP's streams
                // ending, and its reconnections, as failures.
                follower.stop_following();
                closer.shutdown();
                pip.shutdown();
                if let Some(das) = das_closer {
                    das.shutdown();
                }
            })
            .await?;
        Ok(())
    }));
    // The demo load, the wait for the PDP's replica and the banner: cut
    // short by a signal (the load stays pending for the next start), or by
    // the server ending on its own (its error is the answer).
    let startup = async {
        if load_demo {
            let bundle = crate::policy::Bundle::parse(DEMO)?;
            // Before the first write, durably: see DEMO_PENDING.
            if let Some(pending) = &demo_pending {
                write_durably(pending, b"the door-lock demo is being loaded\n")?;
            }
            let mut client = crate::policy::connect(&endpoint, &own_tls).await?;
            // Creates or updates each record, so a second run completes the first.
            let summary = crate::policy::apply(&mut client, &args.admin, &bundle).await?;
            if let Some(pending) = &demo_pending {
                std::fs::remove_file(pending)
                    .with_context(|| format!("{}: cannot remove", pending.display()))?;
            }
            let resumed = if resume_demo {
                " (completing a load that was interrupted)"
            } else {
                ""
            };
            bannerln!(
                "demo policies (door lock, examples/door-lock-demo.json){resumed}: {summary}"
            );
        }
        // The banner says the services answer: the PDP with the PRP's state
        // too (on a restart without the demo load nothing else waits for it).
        if tokio::time::timeout(Duration::from_secs(30), pdp.replica().wait_ready())
            .await
            .is_err()
        {
            tracing::warn!("the PDP has no snapshot from the PRP after 30 s; serving anyway");
        }
        let (das_service, das_file) = if das.is_some() {
            (" DynamicAuthorizationServer,", ", das.redb")
        } else {
            ("", "")
        };
        bannerln!("onem2m-authz up");
        bannerln!(
            "  gRPC   {}://{addr}  (PolicyDecisionPoint, PolicyRetrievalPoint, PolicyInformationPoint,{das_service} Echo, health, reflection)",
            scheme(server_tls.as_ref())
        );
        if let Some(das) = &das {
            let config = das.config();
            bannerln!(
                "  DAS    {} ({} policies, signing key {}), advertised as {das_url}",
                config.issuer,
                config.policies.len(),
                config.signing_key().map_or("-", |k| k.kid.as_str()),
            );
        }
        match metrics {
            Some(m) => bannerln!("  metrics {m}"),
            None => bannerln!("  metrics off"),
        }
        match &data_dir {
            Some(dir) => bannerln!(
                "  store  {} (redb: prp.redb, pip.redb{das_file})",
                dir.display()
            ),
            None => bannerln!("  store  memory (volatile: lost on exit)"),
        }
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        started = startup => {
            // A load whose connection the signal's shutdown refused is no
            // failure of the start: the process is stopping.
            if let Err(e) = started
                && !*stopping.borrow()
            {
                return Err(e);
            }
        }
        Ok(()) = async { stopping.clone().wait_for(|s| *s).await.map(|_| ()) } => {
            tracing::info!("stopped while starting");
        }
        served = &mut server => return served?,
    }
    server.await??;
    Ok(())
}

/// Runs a standalone PRP.
pub async fn prp(args: PrpArgs, tls: &ClientTls) -> Result<()> {
    let _tracing = telemetry::init_tracing_with_tls("onem2m-authz-prp", tls)?;
    let signal = shutdown_signal()?;
    let server_tls = args.tls.load()?;
    let hosting = args.hosting.context()?;
    check_originator("--admin", &args.admin, Some(&hosting))?;
    for id in &args.dynamic_acp_originators {
        check_originator("--dynamic-acp-originator", id, Some(&hosting))?;
    }
    if args.pip != "off" {
        check_url("--pip", &args.pip)?;
    }
    let listener = listen(args.listen).await?;
    let data_dir = data_dir(&args.data_dir)?;
    let mut config = PrpConfig::new(data_dir, args.admin, hosting);
    config.dynamic_acp_originators = args.dynamic_acp_originators;
    config.pip_endpoint = (args.pip != "off").then_some(args.pip);
    config.tls = tls.clone();
    // Opened before the banner: a start that fails does not first say it serves.
    let service = authz_prp::build(&config)
        .await
        .map_err(|e| store_error(e, &args.data_dir))?;
    bannerln!(
        "onem2m-authz PRP on {}://{}",
        scheme(server_tls.as_ref()),
        listener.local_addr()?
    );
    until_signal(signal, |shutdown| {
        authz_prp::serve_service(service, listener, server_tls.as_ref(), shutdown)
    })
    .await
    .map_err(|e| store_error(e, &args.data_dir))
}

/// Runs a standalone PDP following a PRP.
pub async fn pdp(args: PdpArgs, tls: &ClientTls) -> Result<()> {
    let _tracing = telemetry::init_tracing_with_tls("onem2m-authz-pdp", tls)?;
    let signal = shutdown_signal()?;
    let server_tls = args.tls.load()?;
    let listener = listen(args.listen).await?;
    let metrics = metrics(&args.metrics, server_tls.as_ref())?;
    check_url("--prp", &args.prp)?;
    if args.pip != "off" {
        check_url("--pip", &args.pip)?;
    }
    let hosting = args.hosting.context()?;
    check_originator("--prp-writer", &args.prp_writer, Some(&hosting))?;
    check_originator("--pip-writer", &args.pip_writer, Some(&hosting))?;
    args.dynamic.check()?;
    let mut config = PdpConfig::new(hosting)
        .with_prp(args.prp.clone())
        .with_tls(tls.clone());
    if args.pip != "off" {
        config = config.with_pip(args.pip.clone());
    }
    config.pip_deadline = std::time::Duration::from_millis(args.pip_deadline_ms);
    if let Some(d) = args.dynamic.config(&args.prp_writer, &args.pip_writer)? {
        config = config.with_dynamic(d);
    }
    let pdp = Pdp::start(config)?;
    bannerln!(
        "onem2m-authz PDP on {}://{} following {}",
        scheme(server_tls.as_ref()),
        listener.local_addr()?,
        args.prp
    );
    if let Some(m) = metrics {
        bannerln!("  metrics {m}");
    }
    until_signal(signal, |shutdown| {
        pdp.serve(listener, server_tls.as_ref(), shutdown)
    })
    .await
}

/// Runs a standalone PIP.
pub async fn pip(args: PipArgs, tls: &ClientTls) -> Result<()> {
    let _tracing = telemetry::init_tracing_with_tls("onem2m-authz-pip", tls)?;
    let signal = shutdown_signal()?;
    let server_tls = args.tls.load()?;
    let hosting = args.hosting.context()?;
    check_originator("--admin", &args.admin, Some(&hosting))?;
    args.pip.check(&hosting)?;
    let listener = listen(args.listen).await?;
    // The country files before the data directory: a bad one writes nothing.
    let countries =
        authz_pip::load_country_sources(&args.pip.config(None, &args.admin, hosting.clone()))
            .await?;
    let data_dir = data_dir(&args.data_dir)?;
    let config = args.pip.config(data_dir, &args.admin, hosting);
    // Opened before the banner: a start that fails does not first say it serves.
    let service = authz_pip::build_with_sources(&config, countries)
        .await
        .map_err(|e| store_error(e, &args.data_dir))?;
    bannerln!(
        "onem2m-authz PIP on {}://{}",
        scheme(server_tls.as_ref()),
        listener.local_addr()?
    );
    until_signal(signal, |shutdown| async move {
        authz_pip::serve_service(service, listener, server_tls.as_ref(), shutdown).await?;
        Ok(())
    })
    .await
    .map_err(|e| store_error(e, &args.data_dir))
}

/// Writes `path` and syncs it and its directory, so that it is there after
/// a crash whenever a write that followed it is.
fn write_durably(path: &std::path::Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let context = || format!("{}: cannot write", path.display());
    let mut file = std::fs::File::create(path).with_context(context)?;
    file.write_all(contents).with_context(context)?;
    file.sync_all().with_context(context)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("{}: cannot sync", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process reaches itself on loopback when it listens on every
    /// address; the DAS is named by --advertise-url, else the listen URL.
    #[test]
    fn local_and_das_urls() {
        let any4: SocketAddr = "0.0.0.0:7171".parse().unwrap();
        let any6: SocketAddr = "[::]:7171".parse().unwrap();
        let one: SocketAddr = "10.0.0.5:7171".parse().unwrap();
        assert_eq!(local_url(any4, None), "http://127.0.0.1:7171");
        assert_eq!(local_url(any6, None), "http://[::1]:7171");
        assert_eq!(local_url(one, None), "http://10.0.0.5:7171");
        assert_eq!(das_url(None, any4, None), "http://0.0.0.0:7171");
        assert_eq!(
            das_url(Some("https://authz.example.com/"), any4, None),
            "https://authz.example.com"
        );
    }
}
