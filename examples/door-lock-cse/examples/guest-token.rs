//! The guest's phone in the door-lock walk-through: reads a 4103 body with
//! Token Request Information (`{"m2m:tqf": ...}`) on stdin, asks the DAS it
//! names for a token (`IssueToken`, `authorization: Bearer <secret>`), and
//! prints the token, then its Token-ID, one per line.
//!
//! ```sh
//! curl -s ... '?tqi=true' | cargo run -q -p door-lock-cse --example guest-token -- --secret S
//! ```

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::Parser;
use door_lock_cse::guest;

/// Gets a token from the DAS named in a 4103's m2m:tqf (read on stdin).
#[derive(Parser)]
struct Args {
    /// The guest's client secret at the DAS.
    #[arg(long)]
    secret: String,
    /// Ask this DAS instead of the one the m2m:tqf names.
    #[arg(long)]
    das: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let body: serde_json::Value =
        serde_json::from_str(&input).context("stdin is not a JSON response body")?;
    let Some((uri, request)) = guest::das_infos(&body)?.into_iter().next() else {
        bail!("the m2m:tqf names no DAS");
    };
    let uri = args.das.unwrap_or(uri);
    let issued = guest::issue_token(&uri, request, &args.secret).await?;
    if issued.tokens.is_empty() {
        bail!("the DAS at {uri} granted no token (no policy of it matches the request)");
    }
    for (token, id) in issued.tokens.iter().zip(&issued.token_ids) {
        println!("{token}\n{id}");
    }
    Ok(())
}
