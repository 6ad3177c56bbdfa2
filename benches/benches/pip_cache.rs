//! The cost of PIP attributes on the decision path: a PDP decision that
//! needs cached PIP attributes (a verified Role-ID, a `<group>` membership)
//! against one that needs none, through the PDP service (`decide_pb`:
//! conversion, applicable policies, evaluation with explanation, answer).
//!
//! A real PIP is served on loopback; the PDP's cache is warmed by one
//! resolving decision per originator, then every measured decision is
//! answered from the cache without a network call.
//!
//! Run: `cargo bench -p authz-benches --bench pip_cache`.

use std::hint::black_box;
use std::time::Duration;

use authz_pdp::{Pdp, PdpConfig};
use authz_pip::PipConfig;
use authz_proto::pb;
use criterion::Criterion;
use tokio_stream::wrappers::TcpListenerStream;

const ADMIN: &str = "CAdmin";
const AUTHORITY: &str = "//sp.example.com/id-in/CAuthority";

fn hosting() -> authz_core::HostingContext {
    authz_core::HostingContext::new("//sp.example.com", "/id-in").expect("hosting")
}

fn rule(originators: &[&str]) -> pb::AccessControlRule {
    pb::AccessControlRule {
        originators: originators.iter().map(|s| s.to_string()).collect(),
        operations: 2,
        ..Default::default()
    }
}

fn request(originator: &str, roles: &[&str]) -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: originator.into(),
        role_ids: roles.iter().map(|r| r.to_string()).collect(),
        operation: pb::Operation::Retrieve as i32,
        target: "cnt".into(),
        ..Default::default()
    }
}

/// A PIP on loopback with a role and a group, and a PDP that asks it.
async fn setup() -> Pdp {
    let mut config = PipConfig::new(None, ADMIN, hosting());
    config.trusted_issuers = vec![AUTHORITY.to_owned()];
    config.country_boundaries = false;
    let pip = authz_pip::build(&config).await.expect("pip");
    let router = authz_pip::router(pip).await.expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client =
        pb::policy_information_point_client::PolicyInformationPointClient::new(channel);
    let now = chrono::Utc::now();
    client
        .create_role(pb::CreateRoleRequest {
            originator: ADMIN.into(),
            role: Some(pb::Role {
                role_id: "doctor@roles.example.com".into(),
                issuer: AUTHORITY.into(),
                holder: "Cdoctor".into(),
                not_before: Some(authz_proto::convert::timestamp_to_pb(
                    &(now - chrono::Duration::hours(1)),
                )),
                not_after: Some(authz_proto::convert::timestamp_to_pb(
                    &(now + chrono::Duration::hours(1)),
                )),
                ..Default::default()
            }),
        })
        .await
        .expect("role");
    client
        .put_group(pb::PutGroupRequest {
            originator: ADMIN.into(),
            group: Some(pb::Group {
                group_id: "/id-in/grpFamily".into(),
                member_ids: vec!["Cmember".into(), "Cother".into()],
            }),
        })
        .await
        .expect("group");

    let pdp = Pdp::start(PdpConfig::new(hosting()).with_pip(endpoint)).expect("pdp");
    // One ACP, three rules, each decoyed by a few other originators.
    let acp = pb::AccessControlPolicy {
        resource_id: Some("acp1".into()),
        privileges: Some(pb::SetOfAcrs {
            rules: vec![
                rule(&["Ca", "Cb", "Cplain"]),
                rule(&["other@roles.example.com", "doctor@roles.example.com"]),
                rule(&["/id-in/grpOther", "/id-in/grpFamily"]),
            ],
        }),
        self_privileges: Some(pb::SetOfAcrs {
            rules: vec![rule(&[ADMIN])],
        }),
        ..Default::default()
    };
    pdp.apply_event(&pb::WatchEvent {
        revision: 1,
        tag: 0,
        event: Some(pb::watch_event::Event::Snapshot(pb::Snapshot {
            acps: vec![acp],
            resources: vec![pb::TargetResource {
                resource_id: "cnt".into(),
                resource_type: 3,
                acpi_set: true,
                acpi: vec!["acp1".into()],
                creator: "Ccreator".into(),
                ..Default::default()
            }],
            dynamic_acps: Vec::new(),
            continued: false,
        })),
    })
    .expect("snapshot");
    let cache = pdp.pip_cache().expect("cache").clone();
    for _ in 0..500 {
        if cache.is_watching() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cache.is_watching(), "the PIP watch is up");
    let service = pdp.service();
    for (who, roles) in [
        ("Cdoctor", &["doctor@roles.example.com"][..]),
        ("Cmember", &[]),
    ] {
        let d = service
            .decide_resolving_pb(&request(who, roles))
            .await
            .expect("decide");
        assert_eq!(
            d.decision,
            pb::AuthorizationDecision::Permit as i32,
            "{d:?}"
        );
    }
    assert_eq!(cache.len(), 2, "both originators are cached");
    pdp
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let pdp = runtime.block_on(setup());
    let service = pdp.service();
    let cases = [
        ("no_attributes", request("Cplain", &[])),
        (
            "cached_role",
            request("Cdoctor", &["doctor@roles.example.com"]),
        ),
        ("cached_group", request("Cmember", &[])),
    ];
    for (name, req) in &cases {
        let d = service.decide_pb(req).expect("decide");
        assert_eq!(
            d.decision,
            pb::AuthorizationDecision::Permit as i32,
            "{name}: {d:?}"
        );
    }
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("pdp_decision");
    for (name, req) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| black_box(service.decide_pb(black_box(req))))
        });
    }
    group.finish();
    c.final_summary();
    drop(pdp);
}
