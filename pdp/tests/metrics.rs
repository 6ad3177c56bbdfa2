//! The Prometheus endpoint (its own test binary: the recorder is global).

mod common;

use std::time::Duration;

use authz_proto::pb;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_reports_decisions() {
    // The exporter cannot report an OS-chosen port: find a free one first.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let handle = authz_pdp::telemetry::install_prometheus(addr, None).unwrap();
    // Before any event, every listed series is there, at zero.
    let first = handle.render();
    for series in [
        "authz_replica_revision 0",
        r#"authz_rpc_errors_total{rpc="Decide"} 0"#,
        r#"authz_rpc_errors_total{rpc="DecideBatch"} 0"#,
        r#"authz_rpc_errors_total{rpc="DecideStream"} 0"#,
        r#"authz_pip_fetches_total{result="timeout"} 0"#,
    ] {
        assert!(first.contains(series), "{series} in {first}");
    }

    let pdp = pdp_with(&[snapshot_event(
        4,
        vec![acp("acp1", &["Cphone"], 2)],
        vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
    )]);
    let svc = pdp.service();
    for _ in 0..3 {
        let d = svc
            .decide_pb(&request("Cphone", pb::Operation::Retrieve, "cnt"))
            .unwrap();
        assert_eq!(d.decision, pb::AuthorizationDecision::Permit as i32);
    }
    svc.decide_pb(&request("Cphone", pb::Operation::Delete, "cnt"))
        .unwrap();
    // A PDP without its first snapshot answers PROCESSING_ERROR (Decision
    // 10), and the metric counts what it answered, not NOT_APPLICABLE.
    let cold = pdp_with(&[]);
    let d = cold
        .service()
        .decide_pb(&request("Cphone", pb::Operation::Retrieve, "cnt"))
        .unwrap();
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::ProcessingError as i32,
        "{}",
        d.summary
    );

    // A request decided in two passes, the stored policies' (no rule names
    // Cnobody) and then its token's failure (its DAS's key set cannot be
    // fetched: MISSING_ATTRIBUTE, Decision 10), counts once, as answered.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut dynamic = authz_pdp::DynamicConfig::new(vec![format!("http://{closed}")]);
    dynamic.deadline = Duration::from_secs(2);
    let tokened =
        authz_pdp::Pdp::start(authz_pdp::PdpConfig::new(hosting()).with_dynamic(dynamic)).unwrap();
    tokened
        .apply_event(&snapshot_event(
            4,
            vec![acp("acp1", &["Cphone"], 2)],
            vec![resource("cnt", Some(&["acp1"]), "Ccreator")],
        ))
        .unwrap();
    let mut with_token = request("Cnobody", pb::Operation::Retrieve, "cnt");
    with_token.tokens = vec![token_for("//sp.example.com/id-in/Cnobody")];
    let d = tokened
        .service()
        .decide_resolving_pb(&with_token)
        .await
        .unwrap();
    assert_eq!(
        d.status,
        pb::AuthorizationStatus::MissingAttribute as i32,
        "{}",
        d.summary
    );

    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(addr).await;
        if text.contains("authz_decisions_total") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        text.contains(r#"authz_decisions_total{result="permit",status="ok"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"authz_decisions_total{result="deny",status="processing_error"} 1"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"authz_decisions_total{result="deny",status="not_applicable"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"authz_decisions_total{result="deny",status="missing_attribute"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"authz_decisions_total{result="deny",status="not_applicable"} 0"#),
        "the stored policies' pass of the tokened request is no answer: {text}"
    );
    assert!(text.contains("authz_decision_seconds_count 6"), "{text}");
    assert!(text.contains("authz_decision_seconds_bucket"), "{text}");
    assert!(text.contains("authz_replica_revision 4"), "{text}");
    assert!(handle.render().contains("authz_decisions_total"));
}

/// A token of the example DAS key pair (`examples/das/keys`) for `holder`,
/// valid now at `/id-in`.
fn token_for(holder: &str) -> String {
    use authz_core::token::{TokenAlgorithm, TokenClaims, TokenSigner};
    let now = chrono::Utc::now();
    let mut claims = TokenClaims::new(
        "tkm@das.example.com",
        "//sp.example.com/id-in/CDas",
        holder,
        now - chrono::Duration::seconds(10),
        now + chrono::Duration::seconds(600),
    );
    claims.audience = vec!["//sp.example.com/id-in".into()];
    claims.permissions.pm = vec![authz_core::token::TokenPermission {
        ris: Vec::new(),
        pv: None,
        rids: vec!["guest@das.example.com".into()],
    }];
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/das/keys/es256-private.pem");
    TokenSigner::from_pem(
        TokenAlgorithm::Es256,
        "das-es256-1",
        &std::fs::read(key).unwrap(),
    )
    .unwrap()
    .sign(&claims)
    .unwrap()
}
