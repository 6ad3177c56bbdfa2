//! `authz`: the onem2m-authz command line.
//!
//! `authz check` decides one request against policy files with the core
//! engine, offline: a policy author's quickest way to see what a set of
//! `m2m:acp` resources permits, and why.

mod check;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check::run(&args),
    }
}
