//! Shared helpers of the process tests: start `authz` subcommands on
//! OS-chosen loopback ports, connect, decide, and build wire policies.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authz_proto::pb;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_tests::process::{HANG_LIMIT, lines_of, lines_until, within};
use tonic::transport::Channel;

/// A child process killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `authz ARGS`, waits for the line containing `marker`, and returns
/// the first `http://...` or `https://...` URL printed on it.
pub fn start(args: &[&str], marker: &str) -> (Proc, String) {
    start_with_env(args, &[], marker)
}

/// [`start`] with extra environment variables.
pub fn start_with_env(args: &[&str], env: &[(&str, &str)], marker: &str) -> (Proc, String) {
    let (proc, url, _output) = start_with_output(args, env, marker);
    (proc, url)
}

/// [`start_with_env`], also handing over the lines the process prints on
/// stdout (its `RUST_LOG=warn` log) after the marker line; the channel
/// disconnects when the process closes its stdout.
pub fn start_with_output(
    args: &[&str],
    env: &[(&str, &str)],
    marker: &str,
) -> (Proc, String, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authz"))
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn authz");
    // Read by a thread of its own, which keeps draining stdout so the
    // child never blocks on a full pipe: a process that prints nothing
    // fails the test within the bound.
    let lines = lines_of(child.stdout.take().expect("stdout"));
    let proc = Proc(child);
    let seen = lines_until(
        &lines,
        Duration::from_secs(60),
        |line| line.contains(marker),
        || format!("authz {args:?} did not print '{marker}'"),
    )
    .unwrap_or_else(|seen| panic!("authz {args:?} did not print '{marker}': {seen:#?}"));
    let url = seen
        .last()
        .and_then(|line| {
            line.split_whitespace()
                .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        })
        .expect("a URL on the marker line")
        .to_owned();
    (proc, url, lines)
}

/// Starts `authz pip` on an OS-chosen port with a store in memory and no
/// country boundaries; returns it and its URL.
pub fn start_pip_in_memory() -> (Proc, String) {
    start(
        &[
            "pip",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "memory",
            "--no-country-boundaries",
        ],
        "PIP on",
    )
}

/// Starts `authz up` on an OS-chosen port, without metrics, on a store in
/// `data`, with `extra` arguments and `env`; returns it and its gRPC URL.
pub fn start_up(data: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> (Proc, String) {
    let (proc, url, _output) = start_up_with_output(data, extra, env);
    (proc, url)
}

/// [`start_up`], also handing over its later stdout lines
/// ([`start_with_output`]).
pub fn start_up_with_output(
    data: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Proc, String, std::sync::mpsc::Receiver<String>) {
    let data = data.to_str().expect("UTF-8 path");
    let mut args = vec![
        "up",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "off",
        "--data-dir",
        data,
    ];
    args.extend_from_slice(extra);
    start_with_output(&args, env, "gRPC")
}

/// A fresh directory `authz-{name}-…` under the system temp dir, removed
/// with everything in it when the returned guard drops: keep it bound
/// (`let dir = tempdir(..)`) for as long as the test or its processes use it.
pub fn tempdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("authz-{name}-"))
        .tempdir()
        .expect("temp dir")
}

/// A channel to the process serving `url`, the connection retried for
/// 20 s, each attempt bounded. The processes may stall (a test stops one; a regression wedges one), so
/// every call on it that has not answered within [`HANG_LIMIT`] fails
/// (`Cancelled`, "Timeout expired") rather than hanging the test; a
/// stream's messages after its start are not bounded by it.
pub async fn channel(url: &str) -> Channel {
    let endpoint = Channel::from_shared(url.to_owned())
        .unwrap()
        .timeout(HANG_LIMIT);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match within(endpoint.connect(), HANG_LIMIT, || format!("connect {url}")).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("connect {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub fn request(fr: &str, to: &str, op: pb::Operation) -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: fr.into(),
        target: to.into(),
        operation: op as i32,
        ..Default::default()
    }
}

pub async fn decide(
    pdp: &mut PolicyDecisionPointClient<Channel>,
    r: pb::DecisionRequest,
) -> pb::Decision {
    pdp.decide(r).await.expect("Decide").into_inner()
}

pub fn is_permit(d: &pb::Decision) -> bool {
    d.decision == pb::AuthorizationDecision::Permit as i32
}

/// Polls until the PDP's decision for `r` is `permit`, or fails after 10 s.
pub async fn eventually(
    pdp: &mut PolicyDecisionPointClient<Channel>,
    r: &pb::DecisionRequest,
    permit: bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = decide(pdp, r.clone()).await;
        if is_permit(&d) == permit {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "decision stayed {}: {}",
            d.decision,
            d.summary
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn acp(id: &str, originator: &str, acop: u32) -> pb::AccessControlPolicy {
    acp_json(&format!(
        r#"{{"ri": "{id}", "pv": {{"acr": [{{"acor": ["{originator}"], "acop": {acop}}}]}},
            "pvs": {{"acr": [{{"acor": ["CAdmin"], "acop": 63}}]}}}}"#
    ))
}

/// The wire form of one ACP written in oneM2M JSON short names.
pub fn acp_json(text: &str) -> pb::AccessControlPolicy {
    let model = authz_core::json::parse_policies(text).unwrap().remove(0);
    authz_proto::convert::acp_to_pb(&model).unwrap()
}

pub fn resource(id: &str, acpi: &[&str]) -> pb::TargetResource {
    pb::TargetResource {
        resource_id: id.into(),
        resource_type: 3,
        acpi_set: true,
        acpi: acpi.iter().map(|s| s.to_string()).collect(),
        creator: "CAdmin".into(),
        ..Default::default()
    }
}
