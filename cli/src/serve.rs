//! `authz up`, `authz prp`, `authz pdp`: run the services.
//!
//! `up` is the all-in-one mode: PRP and PDP (plus Echo, health and
//! reflection) on one gRPC port, the PRP's store in `./data` (redb), and the
//! door-lock demo policies loaded when the store is empty. The PDP follows
//! the PRP through its own Watch stream on loopback, exactly as a separate
//! PDP process would.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use authz_core::HostingContext;
use authz_pdp::{Pdp, PdpConfig, telemetry};
use authz_prp::PrpConfig;
use clap::Args;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::RoutesBuilder;

/// The demo bundle loaded by `authz up` into an empty store.
pub const DEMO: &str = include_str!("../../examples/door-lock-demo.json");

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
        HostingContext::new(&self.sp_id, &self.cse_id)
            .map_err(|e| anyhow::anyhow!("--sp-id/--cse-id: {e}"))
    }
}

/// Arguments of `authz up`.
#[derive(Args)]
pub struct UpArgs {
    /// gRPC listen address for every service.
    #[arg(long, default_value = "127.0.0.1:7171")]
    listen: SocketAddr,
    /// Directory of the embedded store.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
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
    #[command(flatten)]
    hosting: HostingArgs,
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
    /// Prometheus metrics listen address; `off` to disable.
    #[arg(long, default_value = "127.0.0.1:9465")]
    metrics: String,
    #[command(flatten)]
    hosting: HostingArgs,
}

fn metrics(addr: &str) -> Result<Option<SocketAddr>> {
    if addr == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("--metrics {addr}: not an address"))?;
    telemetry::install_prometheus(addr)?;
    Ok(Some(addr))
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs the all-in-one process.
pub async fn up(args: UpArgs) -> Result<()> {
    let _tracing = telemetry::init_tracing("onem2m-authz")?;
    let hosting = args.hosting.context()?;
    let metrics = metrics(&args.metrics)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("{}: cannot create", args.data_dir.display()))?;
    let prp = authz_prp::build(&PrpConfig::new(
        Some(args.data_dir.clone()),
        args.admin.clone(),
        hosting.clone(),
    ))
    .await?;
    let load_demo = !args.no_demo && prp.revision() == 0;

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let endpoint = format!("http://{addr}");
    let pdp = Pdp::start(PdpConfig::new(hosting).with_prp(endpoint.clone()));

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<authz_proto::pb::policy_retrieval_point_server::PolicyRetrievalPointServer<
            authz_prp::PrpService,
        >>()
        .await;
    pdp.report_health(reporter, true).await;
    let mut routes = RoutesBuilder::default();
    routes.add_service(authz_prp::server(prp.clone()));
    pdp.add_services(&mut routes);
    authz_pdp::add_health_and_reflection(&mut routes, health)?;

    let closer = prp.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                shutdown_signal().await;
                closer.shutdown();
            }),
    );
    if load_demo {
        let bundle = crate::policy::parse_bundle(DEMO)?;
        let mut client = crate::policy::connect(&endpoint).await?;
        let summary = crate::policy::apply(&mut client, &args.admin, &bundle).await?;
        println!("demo policies (door lock, examples/door-lock-demo.json): {summary}");
    }
    println!("onem2m-authz up");
    println!(
        "  gRPC   {endpoint}  (PolicyDecisionPoint, PolicyRetrievalPoint, Echo, health, reflection)"
    );
    match metrics {
        Some(m) => println!("  metrics http://{m}/metrics"),
        None => println!("  metrics off"),
    }
    println!("  store  {} (redb)", args.data_dir.display());
    server.await??;
    Ok(())
}

/// Runs a standalone PRP.
pub async fn prp(args: PrpArgs) -> Result<()> {
    let _tracing = telemetry::init_tracing("onem2m-authz-prp")?;
    let data_dir = (args.data_dir != "memory").then(|| PathBuf::from(&args.data_dir));
    if let Some(d) = &data_dir {
        std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("onem2m-authz PRP on http://{}", listener.local_addr()?);
    authz_prp::serve(
        PrpConfig::new(data_dir, args.admin, args.hosting.context()?),
        listener,
        shutdown_signal(),
    )
    .await
}

/// Runs a standalone PDP following a PRP.
pub async fn pdp(args: PdpArgs) -> Result<()> {
    let _tracing = telemetry::init_tracing("onem2m-authz-pdp")?;
    let metrics = metrics(&args.metrics)?;
    let pdp = Pdp::start(PdpConfig::new(args.hosting.context()?).with_prp(args.prp.clone()));
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "onem2m-authz PDP on http://{} following {}",
        listener.local_addr()?,
        args.prp
    );
    if let Some(m) = metrics {
        println!("  metrics http://{m}/metrics");
    }
    tonic::transport::Server::builder()
        .add_routes(pdp.routes().await?)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown_signal())
        .await?;
    Ok(())
}
