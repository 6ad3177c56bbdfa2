//! `PepClient::stream()` against a real PDP over gRPC on 127.0.0.1, with a
//! fake DAS that holds every consultation until the test releases it: a
//! request the stored policies deny is then as slow at the PDP as the test
//! wants (a guest whose DAS does not answer), without timing anything.
//!
//! - a slow request on the stream does not make a later fast one on the same
//!   stream fail closed, and its late answer goes to nobody else;
//! - a caller whose deadline fired frees its place on the stream;
//! - a full stream fails closed at once instead of queueing.

mod common;

use std::time::Duration;

use authz_pdp::{DynamicConfig, Pdp, PdpConfig};
use authz_pep::{DecisionSource, PepClient, PepConfig, Verdict};
use authz_proto::pb;
use authz_tests::serving::GatedDas;

/// A real PDP on 127.0.0.1:0 consulting `das` for every Deny; `acp1` on the
/// container `door` grants RETRIEVE to `Cowner` only. Returns its URL.
async fn pdp(das: &GatedDas) -> (String, Pdp) {
    let das_url = das.serve().await;
    let mut dynamic = DynamicConfig::new(vec![das_url.clone()]);
    dynamic.default_das = Some(das_url);
    // The PDP waits for the DAS as long as the test holds it.
    dynamic.deadline = Duration::from_secs(300);
    let hosting =
        authz_core::HostingContext::new("//home.example", "/mn-cse-123456").expect("hosting CSE");
    let pdp = Pdp::start(PdpConfig::new(hosting).with_dynamic(dynamic)).expect("pdp");
    let rule = pb::AccessControlRule {
        originators: vec!["Cowner".into()],
        operations: 2,
        ..Default::default()
    };
    let url = common::serve_one_acp(&pdp, rule, "Cowner", "door", 3).await;
    (url, pdp)
}

fn retrieve(originator: &str, rqi: &str) -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: originator.into(),
        operation: pb::Operation::Retrieve as i32,
        target: "door".into(),
        request_id: rqi.into(),
        ..Default::default()
    }
}

fn assert_pdp_permit(v: &Verdict, rqi: &str) {
    assert_eq!(v.source, DecisionSource::Pdp, "{v:?}");
    assert!(v.is_permit(), "{v:?}");
    assert_eq!(
        v.decision.request_id, rqi,
        "the caller's rqi, not the stream's"
    );
}

/// The scenario of a guest whose DAS is down: the PEP's deadline is 500 ms,
/// the guest's request takes longer at the PDP; the owner's request sent
/// after it on the same stream still gets the PDP's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_does_not_make_the_next_fail_closed() {
    let das = GatedDas::default();
    let (url, _pdp) = pdp(&das).await;
    let client = PepClient::new(PepConfig::new([url]).with_deadline(Duration::from_millis(500)))
        .expect("client");
    let stream = client.stream();
    // The stream is open and working.
    assert_pdp_permit(&stream.decide(retrieve("Cowner", "rq-0")).await, "rq-0");

    let guest = {
        let stream = stream.clone();
        tokio::spawn(async move { stream.decide(retrieve("Cguest", "rq-guest")).await })
    };
    das.wait_consulted(1).await;
    // The guest's request is at the PDP, waiting for the DAS.
    let owner = stream.decide(retrieve("Cowner", "rq-owner")).await;
    assert_pdp_permit(&owner, "rq-owner");

    let guest = guest.await.expect("task");
    assert_eq!(guest.source, DecisionSource::FailClosed, "{guest:?}");
    assert!(
        guest.decision.summary.contains("deadline"),
        "{}",
        guest.decision.summary
    );
    assert_eq!(guest.decision.request_id, "rq-guest");

    // The guest's late answer (a Deny) reaches nobody else: later decisions
    // on the stream get their own answers.
    das.release();
    for i in 0..5 {
        let rqi = format!("rq-after-{i}");
        assert_pdp_permit(&stream.decide(retrieve("Cowner", &rqi)).await, &rqi);
    }
}

/// With room for one request on the stream, a request whose caller's
/// deadline fired no longer takes it, though the PDP is still deciding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_request_frees_its_place() {
    let das = GatedDas::default();
    let (url, _pdp) = pdp(&das).await;
    let client = PepClient::new(
        PepConfig::new([url])
            .with_deadline(Duration::from_millis(500))
            .with_stream_capacity(1),
    )
    .expect("client");
    let stream = client.stream();
    let guest = stream.decide(retrieve("Cguest", "rq-guest")).await;
    assert_eq!(guest.source, DecisionSource::FailClosed, "{guest:?}");
    // Still held at the DAS, so still undecided at the PDP.
    das.wait_consulted(1).await;
    assert_pdp_permit(
        &stream.decide(retrieve("Cowner", "rq-owner")).await,
        "rq-owner",
    );
    das.release();
}

/// More requests than the stream holds: the one beyond the bound fails
/// closed at once, saying so, instead of waiting in a queue; once answers
/// come, the stream takes requests again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_fails_closed_at_once() {
    let das = GatedDas::default();
    let (url, _pdp) = pdp(&das).await;
    // A deadline far longer than the test: only the bound can fail it.
    let client = PepClient::new(
        PepConfig::new([url])
            .with_deadline(Duration::from_secs(300))
            .with_stream_capacity(2),
    )
    .expect("client");
    let stream = client.stream();
    let guests: Vec<_> = (1..=2)
        .map(|i| {
            let stream = stream.clone();
            // Two originators: two consultations, not one shared.
            tokio::spawn(async move {
                stream
                    .decide(retrieve(&format!("Cguest{i}"), &format!("rq-guest{i}")))
                    .await
            })
        })
        .collect();
    das.wait_consulted(2).await;

    let v = stream.decide(retrieve("Cowner", "rq-owner")).await;
    assert_eq!(v.source, DecisionSource::FailClosed, "{v:?}");
    assert!(!v.is_permit());
    assert!(
        v.decision.summary.contains("decision stream is full"),
        "{}",
        v.decision.summary
    );
    assert_eq!(v.decision.request_id, "rq-owner");

    das.release();
    for (i, g) in guests.into_iter().enumerate() {
        let v = g.await.expect("task");
        assert_eq!(v.source, DecisionSource::Pdp, "{v:?}");
        assert!(!v.is_permit(), "{v:?}");
        assert_eq!(v.decision.request_id, format!("rq-guest{}", i + 1));
    }
    assert_pdp_permit(
        &stream.decide(retrieve("Cowner", "rq-again")).await,
        "rq-again",
    );
}
