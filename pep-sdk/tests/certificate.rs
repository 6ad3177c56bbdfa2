//! Client certificates made by a real CA (rcgen) read by
//! [`CertifiedIds::from_der`], and [`CertificateAuthenticator`] choosing
//! the identity a request's sender authenticated as (TS-0003 8.1.2.4,
//! 10.1.1.5 AE-ID certificates, 10.1.1.7 CSE-ID certificates).

use authz_pep::{Authenticator, CertificateAuthenticator, CertifiedIds, CseContext};
use authz_tests::tls::{ClientName, TestPki};

/// The DER of the client certificate of a PKI whose client certificate
/// holds `names`.
fn client_der(names: &[ClientName<'_>]) -> Vec<u8> {
    let pki = TestPki::with_client_names(&["127.0.0.1"], names);
    let (_, pem) = x509_parser::pem::parse_x509_pem(pki.client_cert_pem.as_bytes()).expect("PEM");
    pem.contents
}

fn cse() -> CseContext {
    CseContext::new("//home.example", "/mn-cse-123456").expect("cse")
}

/// A request's parts with `From` and, if any, the connection's certificate.
fn parts(from: &str, ids: Option<&CertifiedIds>) -> http::request::Parts {
    let mut request = http::Request::builder()
        .uri("/~/mn-cse-123456/frontDoor")
        .header("X-M2M-Origin", from)
        .body(())
        .expect("request");
    if let Some(ids) = ids {
        request.extensions_mut().insert(ids.clone());
    }
    request.into_parts().0
}

#[test]
fn an_ae_id_certificate_holds_the_absolute_ae_id_10_1_1_5() {
    let der = client_der(&[
        ClientName::Uri("//home.example/mn-cse-123456/CownerPhone"),
        ClientName::Uri("https://HOME.example/mn-cse-123456/CownerTablet"),
        // No AE-IDs: a URN, a CSE-ID, a wildcard (10.1.1.5: none allowed).
        ClientName::Uri("urn:example:CownerPhone"),
        ClientName::Uri("//home.example/mn-cse-123456"),
        ClientName::Uri("//home.example/mn-cse-123456/C*"),
        ClientName::Dns("mn-cse-123456.Home.Example"),
        ClientName::Dns("*.home.example"),
    ]);
    let ids = CertifiedIds::from_der(&der).expect("a certificate");
    assert_eq!(
        ids.ae_ids(),
        [
            "//home.example/mn-cse-123456/CownerPhone",
            "//home.example/mn-cse-123456/CownerTablet"
        ]
    );
    assert_eq!(ids.dns_names(), ["mn-cse-123456.home.example"]);
}

#[test]
fn a_certificate_without_names_certifies_no_one_and_junk_is_no_certificate() {
    let ids = CertifiedIds::from_der(&client_der(&[])).expect("a certificate");
    assert!(ids.ae_ids().is_empty() && ids.dns_names().is_empty());
    let auth = CertificateAuthenticator::new(cse());
    assert_eq!(auth.authenticate(&parts("CownerPhone", Some(&ids))), None);
    assert!(CertifiedIds::from_der(b"not a certificate").is_err());
}

/// TS-0003 7.2.1: the identity the security association established is
/// what From is checked against; the certificate's AE-ID matching From is
/// chosen, stem or absolute.
#[test]
fn the_authenticator_takes_the_certified_id_that_from_names() {
    let ids = CertifiedIds::from_der(&client_der(&[
        ClientName::Uri("//home.example/mn-cse-123456/CownerTablet"),
        ClientName::Uri("//home.example/mn-cse-123456/CownerPhone"),
    ]))
    .expect("a certificate");
    let auth = CertificateAuthenticator::new(cse());
    let phone = Some("//home.example/mn-cse-123456/CownerPhone".to_owned());
    assert_eq!(auth.authenticate(&parts("CownerPhone", Some(&ids))), phone);
    assert_eq!(
        auth.authenticate(&parts("/mn-cse-123456/CownerPhone", Some(&ids))),
        phone
    );
    // Another From: the first certified ID, which the layer then finds
    // is not From (4106).
    assert_eq!(
        auth.authenticate(&parts("Cbabysitter", Some(&ids)))
            .as_deref(),
        Some("//home.example/mn-cse-123456/CownerTablet")
    );
    // No certificate on the connection: not authenticated by this means.
    assert_eq!(auth.authenticate(&parts("CownerPhone", None)), None);
}

/// TS-0003 10.1.1.7: a CSE-ID certificate's DNS name stands for the
/// CSE-ID the CSE was configured with.
#[test]
fn a_cse_id_certificate_authenticates_the_configured_cse_10_1_1_7() {
    let ids = CertifiedIds::from_der(&client_der(&[ClientName::Dns("id-in.Provider.example")]))
        .expect("a certificate");
    let auth = CertificateAuthenticator::new(cse())
        .with_cse("id-in.provider.example", "/id-in")
        .expect("config");
    assert_eq!(
        auth.authenticate(&parts("/id-in", Some(&ids))).as_deref(),
        Some("/id-in")
    );
    let unknown = CertificateAuthenticator::new(cse());
    assert_eq!(unknown.authenticate(&parts("/id-in", Some(&ids))), None);
    for (dns, cse_id) in [
        ("not a name", "/id-in"),
        ("id-in.provider.example", "CownerPhone"),
        ("id-in.provider.example", "/mn-cse-123456/CownerPhone"),
        ("id-in.provider.example", "/id-in/x"),
    ] {
        let err = CertificateAuthenticator::new(cse())
            .with_cse(dns, cse_id)
            .expect_err(cse_id);
        assert!(err.to_string().contains("with_cse"), "{err}");
    }
}
