//! TLS on loopback: a server with a certificate from a test CA, served on
//! the same path the service binaries use (`serving::server` and
//! `serve_with_incoming_shutdown(listener::incoming(..))`), and clients made
//! by `endpoint_with`: trusted with the CA, refused without it (no
//! plain-text fallback), refused over `http://`; and mutual TLS: a server
//! with client CAs refuses a client without a certificate or with one from
//! another CA, and accepts one its client CA signed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authz_proto::endpoint::{EndpointError, endpoint, endpoint_with, error_chain};
use authz_proto::tls::{ClientIdentity, ClientTls, ServerTls, TlsError};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tokio::net::TcpListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A number for the next CA's name: two CAs of a test have different
/// names, as real ones do (a verifier finds the issuer by name).
fn next_ca() -> usize {
    static CAS: AtomicUsize = AtomicUsize::new(1);
    CAS.fetch_add(1, Ordering::Relaxed)
}

/// A test CA, and a server and a client certificate signed by it (PEM).
struct Pki {
    ca: String,
    cert: String,
    key: String,
    client_cert: String,
    client_key: String,
}

fn pki(names: &[&str]) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("authz test CA {}", next_ca()));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "authz test client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// Serves gRPC health (SERVING) with `tls` on an OS-chosen loopback port
/// until the returned sender is dropped.
async fn serve(tls: Option<&ServerTls>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = authz_proto::serving::server(tls)
        .expect("TLS config")
        .add_service(health);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server
            .serve_with_incoming_shutdown(authz_proto::listener::incoming(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop)
}

/// One health check through an endpoint made of `url` with `tls`: `Ok` when
/// the server answered, else the whole error chain.
async fn check(url: &str, tls: &ClientTls) -> Result<(), String> {
    let channel = endpoint_with(url, tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| error_chain(&e))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(drop)
        .map_err(|e| error_chain(&e))
}

#[tokio::test]
async fn https_with_the_ca_is_trusted_and_without_it_refused() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    let server = ServerTls::from_pem(pki.cert.as_bytes(), pki.key.as_bytes()).unwrap();
    let (addr, _stop) = serve(Some(&server)).await;
    let port = addr.port();
    let with_ca = ClientTls::default().with_ca_pem(pki.ca.as_bytes()).unwrap();

    // Trusted: the name (DNS or IP) is in the certificate, its CA is trusted.
    check(&format!("https://localhost:{port}"), &with_ca)
        .await
        .expect("https://localhost with the CA");
    check(&format!("https://127.0.0.1:{port}"), &with_ca)
        .await
        .expect("https://127.0.0.1 with the CA");

    // Fail closed: webpki roots alone do not know the test CA.
    let e = check(&format!("https://localhost:{port}"), &ClientTls::default())
        .await
        .expect_err("an unknown CA must be refused");
    assert!(e.contains("UnknownIssuer"), "{e}");
    // endpoint() is the same as endpoint_with the default.
    let e = endpoint(&format!("https://localhost:{port}"))
        .unwrap()
        .connect()
        .await
        .map(drop)
        .map_err(|e| error_chain(&e))
        .expect_err("an unknown CA must be refused");
    assert!(e.contains("UnknownIssuer"), "{e}");

    // Plain text to the TLS port gets no answer.
    check(&format!("http://127.0.0.1:{port}"), &with_ca)
        .await
        .expect_err("http:// to a TLS port must fail");
}

#[tokio::test]
async fn a_name_the_certificate_lacks_is_refused() {
    let pki = pki(&["pdp.example.com"]);
    let server = ServerTls::from_pem(pki.cert.as_bytes(), pki.key.as_bytes()).unwrap();
    let (addr, _stop) = serve(Some(&server)).await;
    let with_ca = ClientTls::default().with_ca_pem(pki.ca.as_bytes()).unwrap();
    let e = check(&format!("https://127.0.0.1:{}", addr.port()), &with_ca)
        .await
        .expect_err("127.0.0.1 is not in the certificate");
    assert!(e.contains("not valid for name"), "{e}");
}

/// A process reaching its own listener trusts exactly its certificate,
/// whatever names it has, and no other.
#[tokio::test]
async fn pinned_trusts_exactly_its_own_certificate() {
    let own = pki(&["authz.example.com"]);
    let own = ServerTls::from_pem(own.cert.as_bytes(), own.key.as_bytes()).unwrap();
    let (addr, _stop) = serve(Some(&own)).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    check(&url, &ClientTls::pinned(&own))
        .await
        .expect("own certificate, pinned");

    let other = pki(&["localhost", "127.0.0.1"]);
    let other_tls = ServerTls::from_pem(other.cert.as_bytes(), other.key.as_bytes()).unwrap();
    let (other_addr, _stop2) = serve(Some(&other_tls)).await;
    let e = check(
        &format!("https://127.0.0.1:{}", other_addr.port()),
        &ClientTls::pinned(&own),
    )
    .await
    .expect_err("another certificate than the pinned one");
    assert!(e.contains("certificate"), "{e}");
}

#[tokio::test]
async fn plain_http_stays_plain() {
    let (addr, _stop) = serve(None).await;
    check(
        &format!("http://127.0.0.1:{}", addr.port()),
        &ClientTls::default(),
    )
    .await
    .expect("plain text");
    // https:// to a plain-text port is no silent downgrade.
    check(
        &format!("https://127.0.0.1:{}", addr.port()),
        &ClientTls::default(),
    )
    .await
    .expect_err("https:// to a plain-text port must fail");
}

#[test]
fn bad_pem_is_refused() {
    let pki = pki(&["localhost"]);
    let other = pki_key();
    assert!(matches!(
        ClientTls::default().with_ca_pem(b"not pem"),
        Err(TlsError::Certificate(_))
    ));
    assert!(matches!(
        ClientTls::default().with_ca_pem(pki.key.as_bytes()),
        Err(TlsError::Certificate(_))
    ));
    assert!(matches!(
        ClientTls::default()
            .with_ca_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        Err(TlsError::Certificate(_))
    ));
    assert!(matches!(
        ServerTls::from_pem(pki.key.as_bytes(), pki.key.as_bytes()),
        Err(TlsError::Certificate(_))
    ));
    assert!(matches!(
        ServerTls::from_pem(pki.cert.as_bytes(), pki.cert.as_bytes()),
        Err(TlsError::Key(_))
    ));
    let e = ServerTls::from_pem(pki.cert.as_bytes(), other.as_bytes()).unwrap_err();
    assert!(
        matches!(&e, TlsError::Key(m) if m.contains("does not belong")),
        "{e}"
    );
    assert!(ServerTls::from_pem(pki.cert.as_bytes(), pki.key.as_bytes()).is_ok());
}

/// A certificate outside its validity period fails every handshake (each
/// peer refuses it), so it fails the start instead, as a server's and as a
/// client's certificate, naming the period.
#[test]
fn a_certificate_outside_its_validity_is_refused_when_loaded() {
    let ca = {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("authz test CA {}", next_ca()));
        CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap()
    };
    let dated = |from: (i32, u8, u8), to: (i32, u8, u8)| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        (
            params.signed_by(&key, &ca).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    for (cert, key, why) in [
        {
            let (c, k) = dated((2020, 1, 1), (2021, 1, 1));
            (c, k, "expired: valid until")
        },
        {
            let (c, k) = dated((2999, 1, 1), (3000, 1, 1));
            (c, k, "not valid yet: valid from")
        },
    ] {
        let e = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).err();
        assert!(
            matches!(&e, Some(TlsError::Certificate(m)) if m.contains(why)),
            "{e:?}"
        );
        let e = ClientIdentity::from_pem(cert.as_bytes(), key.as_bytes()).err();
        assert!(
            matches!(&e, Some(TlsError::Certificate(m)) if m.contains(why)),
            "{e:?}"
        );
    }
    let (cert, key) = dated((2020, 1, 1), (2999, 1, 1));
    assert!(ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).is_ok());
}

fn pki_key() -> String {
    KeyPair::generate().unwrap().serialize_pem()
}

/// A server with a client CA: the handshake of a client without a
/// certificate, or with one another CA signed, is refused; one its client
/// CA signed is served, through a pinned verifier too.
#[tokio::test]
async fn a_server_with_client_cas_requires_a_certificate_they_signed() {
    let own = pki(&["localhost", "127.0.0.1"]);
    let other = pki(&["localhost"]);
    let server = ServerTls::from_pem(own.cert.as_bytes(), own.key.as_bytes())
        .unwrap()
        .with_client_ca_pem(own.ca.as_bytes())
        .unwrap();
    assert!(server.requires_client_certificates());
    let (addr, _stop) = serve(Some(&server)).await;
    let url = format!("https://localhost:{}", addr.port());
    let trusting = ClientTls::default().with_ca_pem(own.ca.as_bytes()).unwrap();

    // The call fails; its error may or may not carry the server's alert
    // (TLS 1.3: the client's request races the server's refusal), the
    // probe always does.
    check(&url, &trusting)
        .await
        .expect_err("no client certificate must be refused");
    let why = trusting.handshake_refusal(&url, WAIT).await;
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("CertificateRequired")),
        "{why:?}"
    );

    let foreign = trusting
        .clone()
        .with_identity_pem(other.client_cert.as_bytes(), other.client_key.as_bytes())
        .unwrap();
    check(&url, &foreign)
        .await
        .expect_err("a client certificate from another CA must be refused");
    let why = foreign.handshake_refusal(&url, WAIT).await;
    assert!(
        why.as_deref().is_some_and(|w| w.contains("UnknownCA")),
        "{why:?}"
    );

    let signed = trusting
        .with_identity_pem(own.client_cert.as_bytes(), own.client_key.as_bytes())
        .unwrap();
    check(&url, &signed)
        .await
        .expect("a client certificate from the client CA");
    assert_eq!(signed.handshake_refusal(&url, WAIT).await, None);

    // The pinned path (a process reaching its own listener) presents the
    // identity too.
    let identity =
        ClientIdentity::from_pem(own.client_cert.as_bytes(), own.client_key.as_bytes()).unwrap();
    let pinned = format!("https://127.0.0.1:{}", addr.port());
    check(&pinned, &ClientTls::pinned(&server))
        .await
        .expect_err("pinned, without a client certificate");
    let why = ClientTls::pinned(&server)
        .handshake_refusal(&pinned, WAIT)
        .await;
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("CertificateRequired")),
        "{why:?}"
    );
    let with_identity = ClientTls::pinned(&server).with_identity(identity);
    check(&pinned, &with_identity)
        .await
        .expect("pinned, with a client certificate from the client CA");
    assert_eq!(with_identity.handshake_refusal(&pinned, WAIT).await, None);
}

/// How long a test's handshake probe waits for the server.
const WAIT: Duration = Duration::from_secs(5);

/// The probe says why a server refuses a client's certificate, the server
/// certificate a client does not trust, and nothing for plain text or a
/// server that accepts.
#[tokio::test]
async fn the_probe_says_why_a_handshake_is_refused() {
    let pki = pki(&["localhost"]);
    let server = ServerTls::from_pem(pki.cert.as_bytes(), pki.key.as_bytes()).unwrap();
    let (addr, _stop) = serve(Some(&server)).await;
    let url = format!("https://localhost:{}", addr.port());
    let why = ClientTls::default().handshake_refusal(&url, WAIT).await;
    assert!(
        why.as_deref().is_some_and(|w| w.contains("UnknownIssuer")),
        "{why:?}"
    );
    let trusting = ClientTls::default().with_ca_pem(pki.ca.as_bytes()).unwrap();
    assert_eq!(trusting.handshake_refusal(&url, WAIT).await, None);
    assert_eq!(
        trusting
            .handshake_refusal(&format!("http://localhost:{}", addr.port()), WAIT)
            .await,
        None
    );
}

/// Client CAs add up (repeatable flag, or a PEM bundle): a certificate from
/// either is accepted; a server without client CAs asks for none and
/// ignores one a client would present.
#[tokio::test]
async fn client_cas_add_up_and_are_optional() {
    let a = pki(&["localhost"]);
    let b = pki(&["localhost"]);
    let identity = |p: &Pki| {
        ClientTls::default()
            .with_ca_pem(a.ca.as_bytes())
            .unwrap()
            .with_identity_pem(p.client_cert.as_bytes(), p.client_key.as_bytes())
            .unwrap()
    };
    let bundle = format!("{}{}", a.ca, b.ca);
    for server in [
        ServerTls::from_pem(a.cert.as_bytes(), a.key.as_bytes())
            .unwrap()
            .with_client_ca_pem(a.ca.as_bytes())
            .unwrap()
            .with_client_ca_pem(b.ca.as_bytes())
            .unwrap(),
        ServerTls::from_pem(a.cert.as_bytes(), a.key.as_bytes())
            .unwrap()
            .with_client_ca_pem(bundle.as_bytes())
            .unwrap(),
    ] {
        let (addr, _stop) = serve(Some(&server)).await;
        let url = format!("https://localhost:{}", addr.port());
        check(&url, &identity(&a)).await.expect("client of CA a");
        check(&url, &identity(&b)).await.expect("client of CA b");
    }

    let plain = ServerTls::from_pem(a.cert.as_bytes(), a.key.as_bytes()).unwrap();
    assert!(!plain.requires_client_certificates());
    let (addr, _stop) = serve(Some(&plain)).await;
    let url = format!("https://localhost:{}", addr.port());
    check(&url, &identity(&b))
        .await
        .expect("a certificate nobody asked for");
    check(
        &url,
        &ClientTls::default().with_ca_pem(a.ca.as_bytes()).unwrap(),
    )
    .await
    .expect("no client certificate, none required");
}

/// `check_client` says at start what the handshake would say.
#[test]
fn check_client_accepts_what_the_handshake_accepts() {
    let own = pki(&["localhost"]);
    let other = pki(&["localhost"]);
    let id = |p: &Pki| {
        ClientIdentity::from_pem(p.client_cert.as_bytes(), p.client_key.as_bytes()).unwrap()
    };
    let plain = ServerTls::from_pem(own.cert.as_bytes(), own.key.as_bytes()).unwrap();
    assert!(plain.check_client(&id(&other)).is_ok());
    let server = plain.with_client_ca_pem(own.ca.as_bytes()).unwrap();
    assert!(server.check_client(&id(&own)).is_ok());
    let e = server.check_client(&id(&other)).unwrap_err();
    assert!(
        matches!(&e, TlsError::Certificate(m) if m.contains("UnknownIssuer")),
        "{e}"
    );
}

#[test]
fn bad_client_pem_is_refused() {
    let pki = pki(&["localhost"]);
    let server = || ServerTls::from_pem(pki.cert.as_bytes(), pki.key.as_bytes()).unwrap();
    assert!(matches!(
        server().with_client_ca_pem(b"not pem"),
        Err(TlsError::Certificate(_))
    ));
    assert!(matches!(
        server().with_client_ca_pem(pki.key.as_bytes()),
        Err(TlsError::Certificate(_))
    ));
    assert!(matches!(
        ClientIdentity::from_pem(pki.client_key.as_bytes(), pki.client_key.as_bytes()),
        Err(TlsError::Certificate(_))
    ));
    assert!(matches!(
        ClientTls::default().with_identity_pem(pki.client_cert.as_bytes(), b"not pem"),
        Err(TlsError::Key(_))
    ));
    let e = ClientTls::default()
        .with_identity_pem(pki.client_cert.as_bytes(), pki.key.as_bytes())
        .unwrap_err();
    assert!(
        matches!(&e, TlsError::Key(m) if m.contains("does not belong")),
        "{e}"
    );
}

#[test]
fn urls_are_checked_before_tls() {
    assert_eq!(
        endpoint_with("ftp://x", &ClientTls::default()).err(),
        Some(EndpointError::NotHttp)
    );
    assert_eq!(
        endpoint_with("https://", &ClientTls::default()).err(),
        Some(EndpointError::NotUri)
    );
}
