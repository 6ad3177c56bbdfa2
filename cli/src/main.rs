//! `authz`: the onem2m-authz command line.
//!
//! `authz check` decides one request against policy files offline; `authz
//! up` runs every service in one process; `authz prp` and `authz pdp` run
//! them alone; `authz policy` manages a running PRP; `authz loadtest`
//! measures a PDP.

/// `println!` for a command's result: a stdout closed early (`authz policy
/// list | head -1`) ends the command quietly with status 141, as SIGPIPE
/// ends Unix tools, instead of the panic `println!` gives.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_line(format_args!($($arg)*))
    };
}

/// `println!` for a server's start banner: a server outlives a stdout that
/// closes (`authz up | head -1`), as its log lines do, so a failed write is
/// ignored instead of panicking.
macro_rules! bannerln {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out
            .write_fmt(format_args!($($arg)*))
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
    }};
}

mod check;
mod das;
mod decide;
mod loadtest;
mod policy;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use authz_proto::tls::{ClientTls, TlsError};
use clap::{Parser, Subcommand};

/// onem2m-authz: oneM2M TS-0003 authorization.
#[derive(Parser)]
#[command(name = "authz", version, about)]
struct Cli {
    /// A PEM file of CA certificates trusted for https:// URLs besides the
    /// public (webpki) roots, such as a private CA; repeatable.
    #[arg(long = "tls-ca", value_name = "FILE", global = true)]
    tls_ca: Vec<PathBuf>,
    /// A PEM client certificate chain (the client's certificate first)
    /// presented to https:// servers that require one (mutual TLS), on
    /// every connection the command makes; needs --tls-client-key.
    #[arg(long = "tls-client-cert", value_name = "FILE", global = true)]
    tls_client_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-client-cert.
    #[arg(long = "tls-client-key", value_name = "FILE", global = true)]
    tls_client_key: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// What https:// URLs are verified against (the webpki roots and the
/// certificates of the --tls-ca files), and the client certificate
/// presented (--tls-client-cert and --tls-client-key, both or neither).
fn client_tls(cli: &Cli) -> anyhow::Result<ClientTls> {
    let read = |flag: &str, file: &PathBuf| {
        std::fs::read(file).with_context(|| format!("{flag} {}: cannot read", file.display()))
    };
    let mut tls = ClientTls::default();
    for file in &cli.tls_ca {
        tls = tls
            .with_ca_pem(&read("--tls-ca", file)?)
            .with_context(|| format!("--tls-ca {}", file.display()))?;
    }
    match (&cli.tls_client_cert, &cli.tls_client_key) {
        (None, None) => {}
        (Some(_), None) => anyhow::bail!("--tls-client-cert needs --tls-client-key"),
        (None, Some(_)) => anyhow::bail!("--tls-client-key needs --tls-client-cert"),
        (Some(cert), Some(key)) => {
            let (cert_pem, key_pem) = (
                read("--tls-client-cert", cert)?,
                read("--tls-client-key", key)?,
            );
            tls = tls
                .with_identity_pem(&cert_pem, &key_pem)
                .map_err(|e| match e {
                    TlsError::Certificate(_) => {
                        anyhow::anyhow!("--tls-client-cert {}: {e}", cert.display())
                    }
                    TlsError::Key(_) => {
                        anyhow::anyhow!("--tls-client-key {}: {e}", key.display())
                    }
                })?;
        }
    }
    Ok(tls)
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

/// Writes one line to stdout for [`outln!`].
/// The hosting CSE of `--sp-id` and `--cse-id`, an error naming the option
/// at fault.
fn hosting_context(sp_id: &str, cse_id: &str) -> anyhow::Result<authz_core::HostingContext> {
    authz_core::HostingContext::new(sp_id, cse_id).map_err(|e| {
        let option = match e {
            authz_core::ids::IdError::BadSpId(..) => "--sp-id",
            _ => "--cse-id",
        };
        anyhow::anyhow!("{option}: {e}")
    })
}

fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        // The reader went away: end quietly, as a tool ended by SIGPIPE
        // (128 + 13). Anything else (a full disk) is a failure to report.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// An error and its causes, `a: b: c` like anyhow's `{:#}`, leaving out a
/// cause whose text is already said: many errors quote their source in
/// their own message, and `{:#}` would print it two or three times. A
/// handshake a server refused for the client certificate says which flags
/// are about it ([`authz_proto::tls::client_certificate_hint`]).
pub(crate) fn error_text(e: &anyhow::Error) -> String {
    let text = printable(authz_proto::endpoint::error_chain(e.as_ref()));
    match authz_proto::tls::client_certificate_hint(&text) {
        Some(hint) => format!("{text} ({hint})"),
        None => text,
    }
}

/// `text` with each control character but the line break escaped (`\u{1b}`):
/// a message quotes the bad value of a file or an answer, which must not
/// drive the terminal it is printed on.
fn printable(text: String) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// `e`, a failure to reach the server at `url`, with why the server refuses
/// this process's TLS handshake, when it does and `e` does not say
/// ([`ClientTls::unsaid_refusal`]).
pub(crate) async fn explain_refusal(e: anyhow::Error, url: &str, tls: &ClientTls) -> anyhow::Error {
    let text = authz_proto::endpoint::error_chain(e.as_ref());
    match tls.unsaid_refusal(&text, url).await {
        Some(explained) => anyhow::anyhow!(explained),
        None => e,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Check(args) = &cli.command {
        return check::run(args);
    }
    let tls = match client_tls(&cli) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            return ExitCode::from(2);
        }
    };
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
        return runtime.block_on(decide::run(args, &tls));
    }
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Check(_) | Command::Decide(_) => Ok(()),
            Command::Up(a) => serve::up(a, &tls).await,
            Command::Prp(a) => serve::prp(a, &tls).await,
            Command::Pdp(a) => serve::pdp(a, &tls).await,
            Command::Pip(a) => serve::pip(a, &tls).await,
            Command::Das(a) => das::run(a, &tls).await,
            Command::Policy(a) => policy::run(a, &tls).await,
            Command::Loadtest(a) => loadtest::run(a, &tls).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control character a bad value carries is printed escaped.
    #[test]
    fn error_text_escapes_control_characters() {
        let e = anyhow::anyhow!("rtm: '2026\u{1b}[31m' is not a timestamp\ntwo\tlines");
        assert_eq!(
            error_text(&e),
            "rtm: '2026\\u{1b}[31m' is not a timestamp\ntwo\\tlines"
        );
    }

    /// A cause the message above it quotes is said once.
    #[test]
    fn error_text_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        // As a library error that quotes its source gives it.
        let e = anyhow::Error::new(io)
            .context("cannot read x.csv: no such file")
            .context("PIP country source: cannot read x.csv: no such file");
        assert_eq!(
            error_text(&e),
            "PIP country source: cannot read x.csv: no such file"
        );
        // A cause that adds something is kept.
        let e = anyhow::anyhow!("refused").context("policy.json");
        assert_eq!(error_text(&e), "policy.json: refused");
    }

    /// A TLS alert about the client certificate names the flags to look at.
    #[test]
    fn client_certificate_alerts_name_the_flags() {
        let e = anyhow::anyhow!("connection error: received fatal alert: CertificateRequired");
        assert!(
            error_text(&e).ends_with("give --tls-client-cert and --tls-client-key)"),
            "{}",
            error_text(&e)
        );
        let e = anyhow::anyhow!("connection error: received fatal alert: UnknownCA");
        assert!(
            error_text(&e).contains("refused the client certificate of --tls-client-cert"),
            "{}",
            error_text(&e)
        );
        let e = anyhow::anyhow!("invalid peer certificate: UnknownIssuer");
        assert_eq!(error_text(&e), "invalid peer certificate: UnknownIssuer");
    }
}
