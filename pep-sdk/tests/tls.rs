//! `PepConfig::tls_ca`: a PEP trusts a PDP serving TLS with a certificate
//! from a private CA (a test CA made here) when given the CA, fails closed
//! without it, and refuses a CA that is not PEM at start.
//! `PepConfig::with_tls_identity`: a PEP presenting a client certificate
//! gets decisions from a PDP that requires one (mutual TLS); without one,
//! or with one of another CA, it fails closed.

mod common;

use authz_pdp::{Pdp, PdpConfig};
use authz_pep::{DecisionSource, PepClient, PepConfig, PepError};
use authz_proto::pb;
use authz_proto::tls::ServerTls;
use authz_tests::tls::TestPki;
use tokio::net::TcpListener;

/// A real PDP serving TLS for `localhost` on an OS-chosen loopback port,
/// `acp1` granting RETRIEVE on `door` to `Cowner`; its port.
async fn tls_pdp(pki: &TestPki) -> u16 {
    let tls = ServerTls::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).expect("TLS");
    serve_pdp(tls).await
}

/// [`tls_pdp`] requiring client certificates of `pki`'s CA.
async fn mtls_pdp(pki: &TestPki) -> u16 {
    let tls = ServerTls::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
        .expect("TLS")
        .with_client_ca_pem(pki.ca_pem.as_bytes())
        .expect("client CA");
    serve_pdp(tls).await
}

async fn serve_pdp(tls: ServerTls) -> u16 {
    let hosting =
        authz_core::HostingContext::new("//home.example", "/mn-cse-123456").expect("hosting CSE");
    let pdp = Pdp::start(PdpConfig::new(hosting)).expect("pdp");
    let rule = pb::AccessControlRule {
        originators: vec!["Cowner".into()],
        operations: 2,
        ..Default::default()
    };
    common::feed_one_acp(&pdp, rule, "Cowner", "door", 3);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        pdp.serve(listener, Some(&tls), std::future::pending())
            .await
            .expect("serve");
    });
    port
}

fn retrieve() -> pb::DecisionRequest {
    pb::DecisionRequest {
        originator: "Cowner".into(),
        target: "door".into(),
        operation: pb::Operation::Retrieve as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_pep_with_the_ca_gets_decisions_over_tls() {
    let pki = TestPki::new(&["localhost"]);
    let port = tls_pdp(&pki).await;
    let url = format!("https://localhost:{port}");

    let client = PepClient::new(PepConfig::new([url.clone()]).with_tls_ca(pki.ca_pem.clone()))
        .expect("client");
    let verdict = client.decide(retrieve()).await;
    assert_eq!(
        verdict.source,
        DecisionSource::Pdp,
        "{:?}",
        verdict.decision.summary
    );
    assert!(verdict.is_permit(), "{}", verdict.decision.summary);

    // The webpki roots alone do not know the test CA: fail closed.
    let client = PepClient::new(PepConfig::new([url.clone()])).expect("client");
    let verdict = client.decide(retrieve()).await;
    assert_eq!(verdict.source, DecisionSource::FailClosed);
    assert!(!verdict.is_permit());

    // Plain text to the TLS port: no decision either.
    let client =
        PepClient::new(PepConfig::new([format!("http://127.0.0.1:{port}")])).expect("client");
    assert_eq!(
        client.decide(retrieve()).await.source,
        DecisionSource::FailClosed
    );
}

#[tokio::test]
async fn a_tls_ca_that_is_not_pem_is_refused_at_start() {
    let pki = TestPki::new(&["localhost"]);
    for bad in [
        b"not a certificate".to_vec(),
        pki.key_pem.clone().into_bytes(),
        Vec::new(),
    ] {
        let config = PepConfig::new(["https://localhost:7171"]).with_tls_ca(bad);
        assert!(
            matches!(
                config.validate(),
                Err(PepError::Config {
                    setting: "tls_ca",
                    ..
                })
            ),
            "{:?}",
            config.validate()
        );
        match PepClient::new(config) {
            Err(PepError::Config { setting, reason }) => {
                assert_eq!(setting, "tls_ca");
                assert!(reason.contains("certificate"), "{reason}");
            }
            other => panic!("{:?}", other.err()),
        }
    }
    assert!(
        PepConfig::new(["https://localhost:7171"])
            .with_tls_ca(pki.ca_pem)
            .validate()
            .is_ok()
    );
}

#[tokio::test]
async fn a_pep_with_a_client_certificate_gets_decisions_over_mutual_tls() {
    let pki = TestPki::new(&["localhost"]);
    let other = TestPki::new(&["localhost"]);
    let port = mtls_pdp(&pki).await;
    let url = format!("https://localhost:{port}");
    let config = || PepConfig::new([url.clone()]).with_tls_ca(pki.ca_pem.clone());

    let client = PepClient::new(
        config().with_tls_identity(pki.client_cert_pem.clone(), pki.client_key_pem.clone()),
    )
    .expect("client");
    let verdict = client.decide(retrieve()).await;
    assert_eq!(
        verdict.source,
        DecisionSource::Pdp,
        "{:?}",
        verdict.decision.summary
    );
    assert!(verdict.is_permit(), "{}", verdict.decision.summary);

    // No client certificate, or one of another CA: no decision, closed.
    for config in [
        config(),
        config().with_tls_identity(other.client_cert_pem.clone(), other.client_key_pem.clone()),
    ] {
        let client = PepClient::new(config).expect("client");
        let verdict = client.decide(retrieve()).await;
        assert_eq!(verdict.source, DecisionSource::FailClosed);
        assert!(!verdict.is_permit());
    }
}

#[test]
fn a_tls_identity_that_is_not_usable_is_refused_at_start() {
    let pki = TestPki::new(&["localhost"]);
    let other = TestPki::new(&["localhost"]);
    for (cert, key, setting) in [
        (
            pki.client_key_pem.clone(),
            pki.client_key_pem.clone(),
            "tls_identity.cert_pem",
        ),
        (
            pki.client_cert_pem.clone(),
            "not a key".to_owned(),
            "tls_identity.key_pem",
        ),
        // A key of another certificate.
        (
            pki.client_cert_pem.clone(),
            other.client_key_pem.clone(),
            "tls_identity.key_pem",
        ),
    ] {
        let config = PepConfig::new(["https://localhost:7171"]).with_tls_identity(cert, key);
        match config.validate() {
            Err(PepError::Config { setting: s, .. }) => assert_eq!(s, setting),
            other => panic!("{other:?}"),
        }
    }
    let config = PepConfig::new(["https://localhost:7171"])
        .with_tls_identity(pki.client_cert_pem.clone(), pki.client_key_pem.clone());
    assert!(config.validate().is_ok());
    // Debug output leaves the key out.
    assert!(!format!("{config:?}").contains("PRIVATE KEY"));
}
