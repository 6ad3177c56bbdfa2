//! `authz loadtest`: a closed-loop gRPC load generator for a PDP.
//!
//! Each mode runs `--concurrency` tasks over `--connections` HTTP/2
//! channels for `--duration` seconds; every task sends its next call as soon
//! as the previous answer arrived (stream mode keeps `--window` requests in
//! flight per stream). Latencies go into an HDR histogram. The `echo` mode
//! sends the same request to the no-op Echo service on the same server
//! runtime, so the report can say how close the PDP comes to the cost of
//! gRPC alone. `--propagation N` measures how long a policy change takes to
//! show in PDP decisions: it flips an ACP in the PRP N times and polls
//! Decide until the decision follows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use authz_proto::pb;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_proto::tls::ClientTls;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};
use tonic::transport::Channel;

use crate::decide::short_request_to_pb;

/// Arguments of `authz loadtest`.
#[derive(Args)]
pub struct LoadtestArgs {
    /// The PDP (or all-in-one) endpoint.
    #[arg(long, default_value = "http://127.0.0.1:7171")]
    target: String,
    /// Seconds per mode (1 to 86 400).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: u64,
    /// Concurrent callers (1 to 10 000: each keeps its own latency
    /// histogram, and the client shares the machine with the server).
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    concurrency: usize,
    /// HTTP/2 connections the callers share (1 to 1 000).
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000))]
    connections: usize,
    /// Requests per DecideBatch call (1 to 10 000: each caller holds its
    /// batch, and a call must stay under the PDP's 4 MiB message limit).
    #[arg(long, default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    batch: usize,
    /// Requests in flight per DecideStream stream (1 to 10 000).
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    window: usize,
    /// Modes to run, comma-separated: unary, batch, stream, echo.
    #[arg(long, default_value = "echo,unary,batch,stream", value_delimiter = ',')]
    modes: Vec<Mode>,
    /// The request, in short names as for `authz check` (default: the door-lock demo's owner reading the front door).
    #[arg(long)]
    request: Option<std::path::PathBuf>,
    /// Rounds of the policy-propagation measurement (0 = skip); needs the PRP at --prp.
    #[arg(long, default_value_t = 0)]
    propagation: usize,
    /// The PRP for --propagation (default: the target, as with `authz up`).
    #[arg(long)]
    prp: Option<String>,
    /// The originator for the PRP writes of --propagation.
    #[arg(long, default_value = "CAdmin")]
    originator: String,
}

/// A load mode (`--modes`): checked when the flags are parsed, so that a
/// misspelt one is refused before any other mode runs.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `Decide`, one request per call.
    Unary,
    /// `DecideBatch`, `--batch` requests per call.
    Batch,
    /// `DecideStream`, `--window` requests in flight per stream.
    Stream,
    /// The no-op `Echo` service.
    Echo,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::Batch => "batch",
            Self::Stream => "stream",
            Self::Echo => "echo",
        }
    }
}

const DEMO_REQUEST: &str = r#"{"fr": "CownerPhone", "to": "frontDoor", "op": 2}"#;

/// One mode's result.
struct Report {
    mode: Mode,
    calls: u64,
    decisions: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

impl Report {
    fn decisions_per_s(&self) -> f64 {
        self.decisions as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs the load test and prints the report.
pub async fn run(args: LoadtestArgs, tls: &ClientTls) -> Result<()> {
    let request = match &args.request {
        // Named like `authz decide` names its request file.
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            short_request_to_pb(&text, false).map_err(|e| anyhow!("{}: {e}", p.display()))?
        }
        None => short_request_to_pb(DEMO_REQUEST, false)?,
    };
    let target = authz_proto::endpoint::endpoint_with(&args.target, tls)
        .map_err(|e| anyhow!("--target {}: {e}", args.target))?;
    if args.propagation > 0 {
        // The hosting CSE is the PRP's: it checks the absolute form.
        crate::serve::check_originator("--originator", &args.originator, None)?;
        if let Some(prp) = &args.prp {
            authz_proto::endpoint::endpoint_with(prp, tls)
                .map_err(|e| anyhow!("--prp {prp}: {e}"))?;
        }
    }
    // A failure to reach the target says why it refused the TLS handshake,
    // when it did, as `authz decide` does.
    let refused = |e| crate::explain_refusal(e, &args.target, tls);
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        match authz_proto::endpoint::connect_within(target.clone()).await {
            Ok(channel) => channels.push(channel),
            Err(why) => {
                let e = anyhow!("--target {}: cannot connect: {why}", args.target);
                return Err(refused(e).await);
            }
        }
    }
    // A first call shows what the load consists of.
    let first = match within("Decide", async {
        PolicyDecisionPointClient::new(channels[0].clone())
            .decide(request.clone())
            .await
            .map_err(status_error)
    })
    .await
    {
        Ok(answer) => answer.into_inner(),
        Err(e) => return Err(refused(e).await),
    };
    outln!(
        "request decided {} ({}); {} s per mode, {} callers over {} connections",
        if first.decision == pb::AuthorizationDecision::Permit as i32 {
            "PERMIT"
        } else {
            "DENY"
        },
        first.summary,
        args.duration,
        args.concurrency,
        channels.len()
    );
    // Before the load, so that a PRP that cannot be written (not a PRP, an
    // originator without rights) is reported at once, not after every mode.
    if args.propagation > 0 {
        let prp = args.prp.clone().unwrap_or_else(|| args.target.clone());
        let probed = propagation(&prp, tls, &channels[0], &args.originator, args.propagation).await;
        if probed.as_ref().is_err_and(|e| e.is::<Interrupted>()) {
            // Ctrl-C: the probe is removed; the run ends as Ctrl-C ends it
            // elsewhere, not as a failed PRP write.
            eprintln!("interrupted");
            std::process::exit(130);
        }
        probed.with_context(|| {
            // Without --prp the writes go to --target, which may be a
            // PDP alone.
            let hint = if args.prp.is_none() {
                " (give --prp when --target is a PDP alone)"
            } else {
                ""
            };
            format!(
                "--propagation: policy writes to the PRP at {prp} as {}{hint}",
                args.originator
            )
        })?;
    }
    let mut reports = Vec::new();
    for &mode in &args.modes {
        let r = run_mode(mode, &args, &channels, &request, first.decision).await?;
        print_report(&r);
        reports.push(r);
    }
    let echo = reports
        .iter()
        .find(|r| r.mode == Mode::Echo)
        .map(Report::decisions_per_s);
    let unary = reports
        .iter()
        .find(|r| r.mode == Mode::Unary)
        .map(Report::decisions_per_s);
    if let (Some(e), Some(u)) = (echo, unary) {
        outln!("unary / echo = {:.1} %", 100.0 * u / e);
    }

    Ok(())
}

fn print_report(r: &Report) {
    let q = |p: f64| r.latency_us.value_at_quantile(p);
    outln!(
        "{:<7} {:>12.0} decisions/s {:>10.0} calls/s   latency per call p50 {} µs  p99 {} µs  p99.9 {} µs",
        r.mode.name(),
        r.decisions_per_s(),
        r.calls as f64 / r.elapsed.as_secs_f64(),
        q(0.5),
        q(0.99),
        q(0.999)
    );
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| anyhow!("histogram: {e}"))
}

async fn run_mode(
    mode: Mode,
    args: &LoadtestArgs,
    channels: &[Channel],
    request: &pb::DecisionRequest,
    expected: i32,
) -> Result<Report> {
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let start = Instant::now();
    let encoded = Encoded::of(request);
    let mut tasks = Vec::new();
    for i in 0..args.concurrency.max(1) {
        let channel = channels[i % channels.len()].clone();
        let (request, encoded) = (request.clone(), encoded.clone());
        let (batch, window) = (args.batch.max(1), args.window.max(1));
        tasks.push(tokio::spawn(async move {
            match mode {
                Mode::Unary => unary(channel, encoded, DECIDE, Some(expected), deadline).await,
                Mode::Echo => unary(channel, encoded, ECHO, None, deadline).await,
                Mode::Batch => batched(channel, &request, batch, expected, deadline).await,
                Mode::Stream => stream(channel, encoded, window, expected, deadline).await,
            }
        }));
    }
    let mut latency_us = histogram()?;
    let (mut calls, mut decisions) = (0, 0);
    for t in tasks {
        let (c, d, h) = t
            .await?
            .with_context(|| format!("the {} mode's load", mode.name()))?;
        calls += c;
        decisions += d;
        latency_us.add(&h).map_err(|e| anyhow!("histogram: {e}"))?;
    }
    Ok(Report {
        mode,
        calls,
        decisions,
        elapsed: start.elapsed(),
        latency_us,
    })
}

type Counts = (u64, u64, Histogram<u64>);

/// What the load generator puts on the wire and reads back. Requests are
/// encoded once and answers are read only as far as their decision, so the
/// client spends its share of the 2 cores on calls, not on protobuf, and the
/// figures measure the server. Every answer's decision is still checked.
mod wire {
    use bytes::{Buf, BufMut, Bytes};
    use prost::encoding::{DecodeContext, WireType, skip_field};

    /// A message encoded in advance: sent as is.
    #[derive(Clone, Debug, Default)]
    pub struct Encoded(pub Bytes);

    impl Encoded {
        pub fn of(m: &impl prost::Message) -> Self {
            Self(Bytes::from(m.encode_to_vec()))
        }
    }

    impl prost::Message for Encoded {
        fn encode_raw(&self, buf: &mut impl BufMut) {
            buf.put_slice(&self.0);
        }
        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: WireType,
            buf: &mut impl Buf,
            ctx: DecodeContext,
        ) -> Result<(), prost::DecodeError> {
            skip_field(wire_type, tag, buf, ctx)
        }
        fn encoded_len(&self) -> usize {
            self.0.len()
        }
        fn clear(&mut self) {
            self.0 = Bytes::new();
        }
    }

    /// `onem2m.authz.v1.Decision`, read as far as field 1 (`decision`);
    /// prost skips the other fields without allocating.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Verdict {
        #[prost(int32, tag = "1")]
        pub decision: i32,
    }

    /// `onem2m.authz.v1.DecideBatchResponse` of [`Verdict`]s.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Verdicts {
        #[prost(message, repeated, tag = "1")]
        pub decisions: Vec<Verdict>,
    }
}

use wire::{Encoded, Verdict, Verdicts};

const DECIDE: &str = "/onem2m.authz.v1.PolicyDecisionPoint/Decide";
const DECIDE_BATCH: &str = "/onem2m.authz.v1.PolicyDecisionPoint/DecideBatch";
const DECIDE_STREAM: &str = "/onem2m.authz.v1.PolicyDecisionPoint/DecideStream";
const ECHO: &str = "/onem2m.authz.v1.Echo/Echo";

type Grpc = tonic::client::Grpc<Channel>;

fn codec<R: prost::Message + Default + 'static>() -> tonic_prost::ProstCodec<Encoded, R> {
    tonic_prost::ProstCodec::default()
}

async fn ready(grpc: &mut Grpc) -> Result<()> {
    grpc.ready()
        .await
        .map_err(|e| anyhow!("channel not ready: {e}"))
}

/// How long one call of the load, or a stream's next answer, may take: a
/// server that stalls (stopped, wedged) fails the run after this instead
/// of holding it past `--duration` forever.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// `call` (`what`: the RPC), failing after [`ANSWER_TIMEOUT`].
async fn within<T>(what: &str, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(ANSWER_TIMEOUT, call).await {
        Ok(result) => result.with_context(|| format!("{what} failed")),
        Err(_) => bail!(
            "{what}: no answer within {} s (a server that accepts but does not answer?)",
            ANSWER_TIMEOUT.as_secs()
        ),
    }
}

/// A failed call's status as the other commands say it: `Code: message:
/// cause`, each cause once.
fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow!("{}", crate::policy::status_text(&s))
}

/// Ctrl-C during `--propagation`.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Fails unless `got` is the decision of the first call.
fn check(got: i32, expected: i32) -> Result<()> {
    if got != expected {
        bail!("the server answered decision {got} where it first answered {expected}");
    }
    Ok(())
}

/// Closed-loop unary calls to `path` (Decide, or Echo with `expected` None).
async fn unary(
    channel: Channel,
    request: Encoded,
    path: &'static str,
    expected: Option<i32>,
    deadline: Instant,
) -> Result<Counts> {
    let mut grpc = Grpc::new(channel);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let mut h = histogram()?;
    let mut n = 0;
    while Instant::now() < deadline {
        let t = Instant::now();
        let d = within(path.path(), async {
            ready(&mut grpc).await?;
            grpc.unary(
                tonic::Request::new(request.clone()),
                path.clone(),
                codec::<Verdict>(),
            )
            .await
            .map_err(status_error)
        })
        .await?
        .into_inner();
        if let Some(e) = expected {
            check(d.decision, e)?;
        }
        h.saturating_record(t.elapsed().as_micros() as u64);
        n += 1;
    }
    Ok((n, n, h))
}

async fn batched(
    channel: Channel,
    request: &pb::DecisionRequest,
    size: usize,
    expected: i32,
    deadline: Instant,
) -> Result<Counts> {
    let mut grpc = Grpc::new(channel);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(DECIDE_BATCH);
    let batch = Encoded::of(&pb::DecideBatchRequest {
        requests: vec![request.clone(); size],
    });
    let mut h = histogram()?;
    let (mut calls, mut decisions) = (0, 0);
    while Instant::now() < deadline {
        let t = Instant::now();
        let got = within("DecideBatch", async {
            ready(&mut grpc).await?;
            grpc.unary(
                tonic::Request::new(batch.clone()),
                path.clone(),
                codec::<Verdicts>(),
            )
            .await
            .map_err(status_error)
        })
        .await?
        .into_inner()
        .decisions;
        if got.len() != size {
            bail!("DecideBatch answered {} of {size} requests", got.len());
        }
        for d in &got {
            check(d.decision, expected)?;
        }
        h.saturating_record(t.elapsed().as_micros() as u64);
        calls += 1;
        decisions += size as u64;
    }
    Ok((calls, decisions, h))
}

async fn stream(
    channel: Channel,
    request: Encoded,
    window: usize,
    expected: i32,
    deadline: Instant,
) -> Result<Counts> {
    let mut grpc = Grpc::new(channel);
    let (tx, rx) = mpsc::channel::<Encoded>(window);
    let permits = Arc::new(Semaphore::new(window));
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let sender = {
        let permits = permits.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                let Ok(p) = permits.acquire().await else {
                    break;
                };
                p.forget();
                if sent_tx.send(Instant::now()).is_err() || tx.send(request.clone()).await.is_err()
                {
                    break;
                }
            }
        })
    };
    let mut responses = within("DecideStream", async {
        ready(&mut grpc).await?;
        grpc.streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            tonic::codegen::http::uri::PathAndQuery::from_static(DECIDE_STREAM),
            codec::<Verdict>(),
        )
        .await
        .map_err(status_error)
    })
    .await?
    .into_inner();
    let mut h = histogram()?;
    let mut n = 0;
    while let Some(d) = within("DecideStream", async {
        responses.message().await.map_err(status_error)
    })
    .await?
    {
        check(d.decision, expected)?;
        if let Some(t) = sent_rx.recv().await {
            h.saturating_record(t.elapsed().as_micros() as u64);
        }
        n += 1;
        permits.add_permits(1);
    }
    sender.await?;
    Ok((n, n, h))
}

/// Flips the ACP `acpLoadtestProbe` between granting and denying RETRIEVE to
/// `CloadtestProbe` and measures, per flip, the time from sending the PRP
/// write until the PDP's decision follows.
async fn propagation(
    prp: &str,
    tls: &ClientTls,
    pdp: &Channel,
    originator: &str,
    rounds: usize,
) -> Result<()> {
    let mut prp = crate::policy::connect(prp, tls).await?;
    let mut pdp = PolicyDecisionPointClient::new(pdp.clone());
    let acp = |acop: u32| {
        format!(
            r#"{{"acps": [{{"m2m:acp": {{"ri": "acpLoadtestProbe", "pv": {{"acr": [{{"acor": ["CloadtestProbe"], "acop": {acop}}}]}},
                "pvs": {{"acr": [{{"acor": ["{originator}"], "acop": 63}}]}}}}}}],
               "resources": [{{"ri": "loadtestProbe", "ty": 3, "acpi": ["acpLoadtestProbe"], "cr": "{originator}"}}]}}"#
        )
    };
    crate::policy::apply(
        &mut prp,
        originator,
        &crate::policy::Bundle::parse(&acp(0))?,
    )
    .await?;
    // Ctrl-C ends the rounds early: the probe is removed all the same.
    let measured = tokio::select! {
        m = flips(&mut prp, &mut pdp, originator, rounds, acp) => m,
        _ = tokio::signal::ctrl_c() => Err(Interrupted.into()),
    };
    // The probe is the load test's, not the operator's: removed whether or
    // not the rounds succeeded (the resource first: it names the ACP).
    let removed = remove_probe(&mut prp, originator).await;
    // Listening for Ctrl-C replaced its default action for the rest of the
    // process: from here on it ends the run at once again, as it would have.
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted");
            std::process::exit(130);
        }
    });
    let h = measured?;
    removed?;
    outln!(
        "policy propagation over {rounds} changes (PRP write sent → PDP decision follows): p50 {} µs  p99 {} µs  max {} µs",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    );
    Ok(())
}

/// The rounds of [`propagation`]: a histogram of the flip times in µs.
async fn flips(
    prp: &mut PolicyRetrievalPointClient<Channel>,
    pdp: &mut PolicyDecisionPointClient<Channel>,
    originator: &str,
    rounds: usize,
    acp: impl Fn(u32) -> String,
) -> Result<Histogram<u64>> {
    let probe = short_request_to_pb(
        r#"{"fr": "CloadtestProbe", "to": "loadtestProbe", "op": 2}"#,
        false,
    )?;
    let mut h = histogram()?;
    for round in 0..rounds {
        let permit = round % 2 == 0;
        let bundle = crate::policy::Bundle::parse(&acp(if permit { 2 } else { 0 }))?;
        let t = Instant::now();
        crate::policy::apply(prp, originator, &bundle).await?;
        loop {
            let d = within("Decide", async {
                pdp.decide(probe.clone()).await.map_err(status_error)
            })
            .await?
            .into_inner();
            if (d.decision == pb::AuthorizationDecision::Permit as i32) == permit {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("round {round}: the PDP did not follow the change within 10 s");
            }
        }
        h.saturating_record(t.elapsed().as_micros() as u64);
    }
    Ok(h)
}

/// Deletes the probe's resource and ACP.
async fn remove_probe(
    prp: &mut PolicyRetrievalPointClient<Channel>,
    originator: &str,
) -> Result<()> {
    prp.delete_resource(pb::DeleteResourceRequest {
        role_ids: Vec::new(),
        originator: originator.to_owned(),
        resource_id: "loadtestProbe".to_owned(),
    })
    .await
    .map_err(|s| {
        anyhow!(
            "removing the probe resource loadtestProbe: {}",
            crate::policy::status_text(&s)
        )
    })?;
    prp.delete_acp(pb::DeleteAcpRequest {
        role_ids: Vec::new(),
        originator: originator.to_owned(),
        acp_id: "acpLoadtestProbe".to_owned(),
    })
    .await
    .map_err(|s| {
        anyhow!(
            "removing the probe ACP acpLoadtestProbe: {}",
            crate::policy::status_text(&s)
        )
    })?;
    Ok(())
}
