//! What `explain: true` (always on in the PDP) costs on a Permit, measured
//! with the core engine directly and through the PDP's conversion path.
//! A timing report, not a check: run with
//! `cargo test -p authz-pdp --release --test explain_cost -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use authz_core::compile::CompiledAcp;
use authz_core::decision::PrivilegeKind;
use authz_core::{Applicable, DecideOptions, DecisionRequest, NoAttributes, Operation, decide};
use authz_proto::pb;
use common::*;

const N: u32 = 200_000;

fn per_call(f: impl Fn()) -> f64 {
    for _ in 0..N / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..N {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(N)
}

#[tokio::test]
#[ignore = "timing report, not a check; run explicitly with --release"]
async fn explain_cost_on_permit() {
    let model = authz_proto::convert::acp_from_pb(&acp("acp1", &["Cother", "Cphone"], 2)).unwrap();
    let compiled = CompiledAcp::compile("acp1", &model).unwrap();
    let policies = [Applicable {
        acp: &compiled,
        kind: PrivilegeKind::Privileges,
    }];
    let req = DecisionRequest::new("Cphone", Operation::Retrieve, "cnt", chrono::Utc::now());
    let ctx = hosting();
    let run = |explain: bool| {
        per_call(|| {
            let d = decide(
                &req,
                &ctx,
                &policies,
                &NoAttributes,
                &DecideOptions {
                    explain,
                    granted_roles: &[],
                },
            );
            assert!(d.effect == authz_core::Effect::Permit);
            std::hint::black_box(d);
        })
    };
    let plain = run(false);
    let explained = run(true);
    let pdp = pdp_with(&[snapshot_event(
        1,
        vec![acp("acp1", &["Cother", "Cphone"], 2)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    let svc = pdp.service();
    let wire = request("Cphone", pb::Operation::Retrieve, "cnt");
    let full = per_call(|| {
        std::hint::black_box(svc.decide_pb(&wire).unwrap());
    });
    let now = chrono::Utc::now();
    let convert = per_call(|| {
        std::hint::black_box(authz_proto::convert::decision_request_from_pb(&wire, now).unwrap());
    });
    let d = decide(
        &req,
        &ctx,
        &policies,
        &NoAttributes,
        &DecideOptions {
            explain: true,
            granted_roles: &[],
        },
    );
    let answer = per_call(|| {
        std::hint::black_box(authz_proto::convert::decision_to_pb(&d));
    });
    let snap = pdp.replica().snapshot();
    let resolve = per_call(|| {
        std::hint::black_box(
            authz_core::resources::applicable_policies(&snap.view(now), "cnt").unwrap(),
        );
    });
    println!(
        "PDP path parts: request conversion {convert:.0} ns, applicable set {resolve:.0} ns, \
         decision conversion with summary {answer:.0} ns"
    );
    println!(
        "Permit: core decide {plain:.0} ns, with explain {explained:.0} ns (+{:.0} ns); \
         whole PDP path (convert, lookup, decide+explain, summary, ids, metrics) {full:.0} ns",
        explained - plain
    );
}
