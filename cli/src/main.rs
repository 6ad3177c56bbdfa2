//! `authz`: the onem2m-authz command line.
//!
//! `authz check` decides one request against policy files offline; `authz
//! up` runs every service in one process; `authz prp` and `authz pdp` run
//! them alone; `authz policy` manages a running PRP; `authz loadtest`
//! measures a PDP.

mod check;
mod das;
mod decide;
mod loadtest;
mod policy;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// onem2m-authz: oneM2M TS-0003 authorization.
#[derive(Parser)]
#[command(name = "authz", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decide one request against m2m:acp policy files and print the decision as JSON.
    Check(check::CheckArgs),
    /// Ask a running PDP about one request (short names, as for check) and print its decision.
    Decide(decide::DecideArgs),
    /// Run PRP, PIP and PDP in one process on one port, with an embedded store and demo policies.
    Up(serve::UpArgs),
    /// Run the PRP alone.
    Prp(serve::PrpArgs),
    /// Run a PDP alone, following a PRP (and asking a PIP).
    Pdp(serve::PdpArgs),
    /// Run the PIP alone (roles, tokens, groups, positions, countries).
    Pip(serve::PipArgs),
    /// Run the Dynamic Authorization System server (tokens, dynamic ACPs) under a config file.
    Das(das::DasArgs),
    /// Manage the ACPs and resources of a running PRP.
    Policy(policy::PolicyArgs),
    /// Measure decisions per second and latency of a running PDP.
    Loadtest(loadtest::LoadtestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Check(args) = &cli.command {
        return check::run(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Decide(args) = &cli.command {
        return runtime.block_on(decide::run(args));
    }
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Check(_) | Command::Decide(_) => Ok(()),
            Command::Up(a) => serve::up(a).await,
            Command::Prp(a) => serve::prp(a).await,
            Command::Pdp(a) => serve::pdp(a).await,
            Command::Pip(a) => serve::pip(a).await,
            Command::Das(a) => das::run(a).await,
            Command::Policy(a) => policy::run(a).await,
            Command::Loadtest(a) => loadtest::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
