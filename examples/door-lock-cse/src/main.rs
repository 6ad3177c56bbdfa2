//! `door-lock-cse`: the home gateway MN-CSE of the door-lock example, over
//! HTTP, authorized by a PDP. With `authz up` running (PRP + PDP on
//! 127.0.0.1:7171):
//!
//! ```sh
//! cargo run -p door-lock-cse -- --load-policies
//! ```
//!
//! loads `examples/door-lock-cse/policies.json` into the PRP and
//! `examples/door-lock-cse/groups.json` into the PIP (as `CAdmin`), waits
//! until the PDP has the policies, and serves on 127.0.0.1:8080.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use authz_pep::client::MAX_DEADLINE;
use authz_pep::{
    CacheConfig, Clock, CseContext, DenyDetail, ManualClock, PepClient, PepConfig, SystemClock,
};
use authz_proto::endpoint::CALL_TIMEOUT;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use clap::Parser;
use door_lock_cse::credentials::Credentials;
use door_lock_cse::groups;
use door_lock_cse::policies::{self, Bundle};
use door_lock_cse::{AppConfig, acpi_from_prp, router};
use tonic::transport::Channel;

/// The built-in psk-lookup-table: `examples/door-lock-cse/credentials.json`.
const DEFAULT_CREDENTIALS: &str = include_str!("../credentials.json");
/// How long a start without `--load-policies` waits for the PRP's `acpi`.
const PRP_SYNC: Duration = Duration::from_secs(5);

/// The door-lock home gateway CSE (oneM2M HTTP binding) behind the PEP.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PDP endpoint (repeatable: several are load-balanced).
    #[arg(long = "pdp", default_value = "http://127.0.0.1:7171")]
    pdp: Vec<String>,
    /// PRP endpoint for --load-policies and for acpi changes (default: the first --pdp, as with `authz up`).
    #[arg(long)]
    prp: Option<String>,
    /// PIP endpoint for the groups of --load-policies (default: the PRP's, as with `authz up`).
    #[arg(long)]
    pip: Option<String>,
    /// Load the policy bundle into the PRP and the groups into the PIP at
    /// startup, and wait for the PDP to have the policies.
    #[arg(long)]
    load_policies: bool,
    /// The policy bundle (default: the built-in examples/door-lock-cse/policies.json).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// The groups (default: the built-in examples/door-lock-cse/groups.json).
    #[arg(long)]
    groups: Option<PathBuf>,
    /// The psk-lookup-table (default: the built-in examples/door-lock-cse/credentials.json).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// The originator allowed every PRP write.
    #[arg(long, default_value = "CAdmin")]
    admin: String,
    /// The hosting CSE's SP-ID.
    #[arg(long, default_value = "//home.example")]
    sp_id: String,
    /// The hosting CSE's CSE-ID.
    #[arg(long, default_value = "/mn-cse-123456")]
    cse_id: String,
    /// Pretend every request arrives at this UTC time (YYYYMMDDTHHMMSS), for
    /// demonstrations of time windows; default: the system clock.
    #[arg(long)]
    at: Option<String>,
    /// Turn the PEP's decision cache on.
    #[arg(long)]
    cache: bool,
    /// Put the PDP's summary (which rule, which condition) into 4103 responses.
    #[arg(long)]
    explain_denials: bool,
    /// Deadline of one decision, retries included, in milliseconds.
    #[arg(long, default_value_t = 500)]
    deadline_ms: u64,
    /// PEM CA certificates to trust for `https://` PDP, PRP and PIP
    /// endpoints, besides the webpki roots (as `authz --tls-ca`).
    #[arg(long = "tls-ca", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// PEM client certificate chain presented to services that require one
    /// (mutual TLS); needs --tls-client-key.
    #[arg(
        long = "tls-client-cert",
        value_name = "FILE",
        requires = "tls_client_key"
    )]
    tls_client_cert: Option<PathBuf>,
    /// The PEM private key of --tls-client-cert.
    #[arg(
        long = "tls-client-key",
        value_name = "FILE",
        requires = "tls_client_cert"
    )]
    tls_client_key: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (the CSE's certificate
    /// first); needs --tls-key.
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With --tls-cert: PEM CA certificates whose client certificates
    /// authenticate the sender as the AE-ID in their subjectAltName URI
    /// (TS-0003 10.1.1.5); a client may still connect without one.
    /// Repeatable.
    #[arg(long = "tls-client-ca", value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Vec<PathBuf>,
}

fn read_file(flag: &str, path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}: cannot read", path.display()))
}

/// What an error in a file of `flag` names: the flag and the file, or the
/// built-in default.
fn source(flag: &str, path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!("{flag} {}", p.display()),
        None => format!("the built-in {}", flag.trim_start_matches('-')),
    }
}

fn read_or(flag: &str, path: &Option<PathBuf>, built_in: &str) -> Result<String> {
    match path {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("{flag} {}: cannot read", p.display())),
        None => Ok(built_in.to_owned()),
    }
}

/// Where `--load-policies` loads, and as whom.
struct Loading<'a> {
    prp: &'a str,
    pip: &'a str,
    tls: &'a authz_proto::tls::ClientTls,
    admin: &'a str,
}

impl Loading<'_> {
    /// Loads `bundle` into the PRP, waits for the PDP behind `pep` to
    /// have it, and stores `groups` in the PIP. Each connection and call is
    /// bounded ([`CALL_TIMEOUT`]): a service that accepts but stalls stops
    /// the start with an error, not a wait without end. A failure to reach
    /// a service says why it refused this process's TLS handshake, when it
    /// did (a missing or foreign client certificate).
    async fn load(
        &self,
        pep: &PepClient,
        bundle: &Bundle,
        groups: &[groups::Group],
        hosting: &authz_core::HostingContext,
    ) -> Result<()> {
        let mut prp = PolicyRetrievalPointClient::new(self.connect("PRP", self.prp).await?);
        let applied = match policies::apply(&mut prp, self.admin, bundle).await {
            Ok(applied) => applied,
            Err(e) => return Err(self.failure(e.into(), self.prp).await),
        };
        let revision = applied.revision;
        let version = applied.version.unwrap_or(authz_pep::pb::StoreVersion {
            revision,
            ..Default::default()
        });
        let seen = pep
            .wait_for_version(&version, Duration::from_secs(10))
            .await
            .context("waiting for the PDP to follow the PRP")?;
        println!(
            "loaded {} ACP(s) and {} resource(s) into the PRP at {} (revision {revision}; PDP at {seen})",
            bundle.acps.len(),
            bundle.resources.len(),
            self.prp
        );
        // A group's answer holds all its members: a fleet's exceeds 4 MiB.
        let mut pip = PolicyInformationPointClient::new(self.connect("PIP", self.pip).await?)
            .max_decoding_message_size(authz_proto::convert::MAX_DECODING_MESSAGE_BYTES);
        let revision = match groups::apply(&mut pip, self.admin, hosting, groups).await {
            Ok(revision) => revision,
            Err(e) => return Err(self.failure(e.into(), self.pip).await),
        };
        println!(
            "stored {} group(s) in the PIP at {} (revision {revision})",
            groups.len(),
            self.pip
        );
        Ok(())
    }

    /// A channel to the `service` at `endpoint`, each call on it bounded.
    async fn connect(&self, service: &str, endpoint: &str) -> Result<Channel> {
        let flag = if service == "PRP" { "--prp" } else { "--pip" };
        let target = authz_proto::endpoint::endpoint_with(endpoint, self.tls)
            .with_context(|| format!("{flag} {endpoint}"))?
            .timeout(CALL_TIMEOUT);
        match authz_proto::endpoint::connect_within(target).await {
            Ok(channel) => Ok(channel),
            Err(why) => {
                let text = format!("cannot connect to the {service} at {endpoint}: {why}");
                Err(anyhow!(self.tls.failure_text(text, endpoint).await))
            }
        }
    }

    /// `e`, a failed call to `endpoint`, with why the server refused this
    /// process's TLS handshake when it did, and what a timeout means.
    async fn failure(&self, e: anyhow::Error, endpoint: &str) -> anyhow::Error {
        let mut text = authz_proto::endpoint::error_chain(e.as_ref());
        if let Some(said) = authz_proto::endpoint::stalled(&text, endpoint) {
            text = format!("{said}: {text}");
        }
        anyhow!(self.tls.failure_text(text, endpoint).await)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        // Colours only on a terminal, as the services: a log file or a
        // journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    // Each flag named in its error, before anything is read or connected.
    let cse = CseContext::new(&args.sp_id, &args.cse_id)
        .with_context(|| format!("--sp-id {} / --cse-id {}", args.sp_id, args.cse_id))?;
    // One originator, at most 2048 bytes in the absolute form it is
    // compared in (Decision 2), or it could never write.
    authz_core::resources::check_owner_id(&args.admin)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(cse.hosting().check_absolute_length(&args.admin)?))
        .with_context(|| format!("--admin {:?}: not one originator ID", args.admin))?;
    if args.deadline_ms == 0 || Duration::from_millis(args.deadline_ms) > MAX_DEADLINE {
        anyhow::bail!(
            "--deadline-ms {}: not between 1 and {}",
            args.deadline_ms,
            MAX_DEADLINE.as_millis()
        );
    }
    let bundle_text = read_or("--policies", &args.policies, policies::DEFAULT_POLICIES)?;
    let bundle =
        Bundle::parse(&bundle_text).with_context(|| source("--policies", &args.policies))?;
    let groups = groups::parse(&read_or("--groups", &args.groups, groups::DEFAULT_GROUPS)?)
        .with_context(|| source("--groups", &args.groups))?;
    let credentials = Credentials::parse(&read_or(
        "--credentials",
        &args.credentials,
        DEFAULT_CREDENTIALS,
    )?)
    .with_context(|| source("--credentials", &args.credentials))?;
    let clock: Arc<dyn Clock> = match &args.at {
        Some(at) => Arc::new(ManualClock::new(
            authz_core::json::read_timestamp(at).map_err(|why| anyhow!("--at {at}: {why}"))?,
        )),
        None => Arc::new(SystemClock),
    };
    let mut config =
        PepConfig::new(args.pdp.clone()).with_deadline(Duration::from_millis(args.deadline_ms));
    // The same trust and client certificate for the PDP (through the PEP)
    // and for the PRP and PIP this CSE writes to.
    let mut tls = authz_proto::tls::ClientTls::default();
    if let Some(ca) = &args.tls_ca {
        let pem = read_file("--tls-ca", ca)?;
        tls = tls.with_ca_pem(&pem).context("--tls-ca")?;
        config = config.with_tls_ca(pem);
    }
    if let (Some(cert), Some(key)) = (&args.tls_client_cert, &args.tls_client_key) {
        let (cert, key) = (
            read_file("--tls-client-cert", cert)?,
            read_file("--tls-client-key", key)?,
        );
        tls = tls
            .with_identity_pem(&cert, &key)
            .context("--tls-client-cert/--tls-client-key")?;
        config = config.with_tls_identity(cert, key);
    }
    if args.cache {
        config = config.with_cache(CacheConfig::default());
        config.revision_poll = Some(Duration::from_millis(250));
    }
    let pep = PepClient::new(config).map_err(|e| match e {
        // Name the flag the endpoint came from.
        authz_pep::PepError::Endpoint { .. } => anyhow!("--pdp: {e}"),
        other => other.into(),
    })?;

    let prp_endpoint = args.prp.clone().or_else(|| args.pdp.first().cloned());
    // Where acpi changes are written (connected on first use).
    let prp = match &prp_endpoint {
        Some(endpoint) => Some(PolicyRetrievalPointClient::new(
            authz_proto::endpoint::endpoint_with(endpoint, &tls)
                .with_context(|| format!("--prp {endpoint}"))?
                .timeout(CALL_TIMEOUT)
                .connect_lazy(),
        )),
        None => None,
    };
    if args.load_policies {
        let prp_endpoint =
            prp_endpoint.ok_or_else(|| anyhow!("--load-policies needs --prp or --pdp"))?;
        let pip_endpoint = args.pip.clone().unwrap_or_else(|| prp_endpoint.clone());
        let to = Loading {
            prp: &prp_endpoint,
            pip: &pip_endpoint,
            tls: &tls,
            admin: &args.admin,
        };
        to.load(&pep, &bundle, &groups, cse.hosting()).await?;
    }

    let prp_for_sync = prp.clone().filter(|_| !args.load_policies);
    let now = clock.now();
    let (app, store) = router(AppConfig {
        cse: cse.clone(),
        pep,
        clock,
        credentials,
        bundle,
        deny_detail: if args.explain_denials {
            DenyDetail::Summary
        } else {
            DenyDetail::Minimal
        },
        prp,
    })?;
    // Without --load-policies the PRP holds the policies, and the `acpi`
    // of earlier acpi changes: show those, not the file's.
    if let Some(mut prp) = prp_for_sync {
        match tokio::time::timeout(PRP_SYNC, acpi_from_prp(&store, &mut prp, now)).await {
            Ok(Ok(changed)) => {
                tracing::info!(changed, "took the resources' acpi from the PRP")
            }
            Ok(Err(e)) => tracing::warn!(
                error = %authz_proto::endpoint::status_chain(&e),
                "cannot read the resources' acpi from the PRP: showing the policies file's"
            ),
            Err(_) => tracing::warn!(
                "the PRP did not answer within {PRP_SYNC:?}: showing the policies file's acpi"
            ),
        }
    }
    let serving_tls = serving_tls(&args)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
    // SIGINT (Ctrl-C) or SIGTERM (what a service manager sends): stop
    // taking connections and let requests under way finish. Listened for
    // before the banner, which tells a supervisor the CSE is up: a signal
    // sent right after it must not find the default action (death).
    #[cfg(unix)]
    let (mut terminate, mut interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        )
    };
    println!(
        "door-lock CSE {}{} on {}://{} (PDP {})",
        cse.sp_id(),
        cse.cse_id(),
        if serving_tls.is_some() {
            "https"
        } else {
            "http"
        },
        listener.local_addr()?,
        args.pdp.join(", ")
    );
    let shutdown = async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests under way");
    };
    match serving_tls {
        Some(tls) => door_lock_cse::https::serve(listener, app, Arc::new(tls), shutdown).await,
        // The same serving as over TLS: a header timeout, and requests
        // under way given at most 5 s to finish at shutdown.
        None => authz_proto::https::serve_plain(listener, app, shutdown).await,
    }
    Ok(())
}

/// The TLS configuration of the listener, if --tls-cert is given.
fn serving_tls(args: &Args) -> Result<Option<rustls::ServerConfig>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let mut tls = authz_proto::tls::ServerTls::from_pem(
        &read_file("--tls-cert", cert)?,
        &read_file("--tls-key", key)?,
    )
    .context("--tls-cert/--tls-key")?;
    for ca in &args.tls_client_ca {
        tls = tls
            .with_client_ca_pem(&read_file("--tls-client-ca", ca)?)
            .with_context(|| format!("--tls-client-ca {}", ca.display()))?;
    }
    let config = tls
        .rustls_config(authz_proto::tls::ClientCertificates::Optional)
        .context("--tls-cert")?;
    Ok(Some(config))
}
