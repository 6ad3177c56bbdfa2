//! `authz das`: run the Dynamic Authorization System server (TS-0003 7.3)
//! under a configuration file (see `examples/das/door-lock-das.json`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use authz_das::DasConfig;
use authz_pdp::telemetry;
use clap::Args;

/// Arguments of `authz das`.
#[derive(Args)]
pub struct DasArgs {
    /// The DAS configuration file (JSON: identity, keys, clients, policies).
    #[arg(long)]
    config: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:7175")]
    listen: SocketAddr,
    /// Directory of the issued-token store (`das.redb`); `memory` for a volatile store.
    #[arg(long, default_value = "./data")]
    data_dir: String,
    #[command(flatten)]
    tls: crate::serve::ServerTlsArgs,
}

/// Runs a standalone DAS until SIGINT (Ctrl-C) or SIGTERM.
pub async fn run(args: DasArgs, tls: &authz_proto::tls::ClientTls) -> Result<()> {
    let _tracing = telemetry::init_tracing_with_tls("onem2m-authz-das", tls)?;
    let signal = crate::serve::shutdown_signal()?;
    let server_tls = args.tls.load()?;
    let config = DasConfig::load(&args.config)?;
    let listener = crate::serve::listen(args.listen).await?;
    let data_dir = crate::serve::data_dir(&args.data_dir)?;
    // What the banner says of the configuration, which `build` takes.
    let (issuer, policies) = (config.issuer.clone(), config.policies.len());
    let kid = config
        .signing_key()
        .map_or_else(|| "-".to_owned(), |k| k.kid.clone());
    // Opened before the banner: a start that fails does not first say it serves.
    let service = authz_das::build(config, data_dir.as_deref())
        .await
        .map_err(|e| crate::serve::store_error(e, &args.data_dir))?;
    bannerln!(
        "onem2m-authz DAS {issuer} on {}://{} ({policies} policies, signing key {kid})",
        crate::serve::scheme(server_tls.as_ref()),
        listener.local_addr()?,
    );
    crate::serve::until_signal(signal, |shutdown| async move {
        authz_das::serve_service(service, listener, server_tls.as_ref(), shutdown).await?;
        Ok(())
    })
    .await
    .map_err(|e| crate::serve::store_error(e, &args.data_dir))
}
