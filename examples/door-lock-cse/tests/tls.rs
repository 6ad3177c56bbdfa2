//! The door-lock CSE as a real process against services that serve TLS
//! and require client certificates (mutual TLS): with `--tls-ca`,
//! `--tls-client-cert` and `--tls-client-key` it loads its policies into
//! the PRP and its groups into the PIP, waits for the PDP, and its PEP gets
//! decisions; without its client certificate it cannot start.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use authz_pdp::{Pdp, PdpConfig};
use authz_pip::PipConfig;
use authz_proto::tls::{ClientTls, ServerTls};
use authz_prp::PrpConfig;
use authz_tests::tls::{PkiFiles, TestPki};
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;

const ADMIN: &str = "CAdmin";

fn hosting() -> authz_core::HostingContext {
    authz_core::HostingContext::new("//home.example", "/mn-cse-123456").expect("hosting")
}

/// Serves `routes` with TLS requiring client certificates of `pki`'s CA,
/// on an OS-chosen loopback port: its `https://127.0.0.1:PORT`.
async fn serve_mtls(routes: tonic::service::Routes, pki: &TestPki) -> String {
    let tls = ServerTls::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
        .expect("server TLS")
        .with_client_ca_pem(pki.ca_pem.as_bytes())
        .expect("client CA");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let mut server = authz_proto::serving::server(Some(&tls)).expect("server");
    let router = server.add_routes(routes);
    tokio::spawn(async move {
        let _ = router
            .serve_with_incoming(authz_proto::listener::incoming(listener))
            .await;
    });
    url
}

/// The door-lock CSE loading its policies into `prp` (PRP + PIP) and asking
/// `pdp`, trusting the test CA, presenting the client certificate when
/// `client_cert`, listening on a port of its own choosing.
fn door_lock(prp: &str, pdp: &str, files: &PkiFiles, client_cert: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_door-lock-cse"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--load-policies",
        "--prp",
        prp,
        "--pdp",
        pdp,
    ])
    .arg("--tls-ca")
    .arg(&files.ca);
    if client_cert {
        cmd.arg("--tls-client-cert")
            .arg(&files.client_cert)
            .arg("--tls-client-key")
            .arg(&files.client_key);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run door-lock-cse")
}

/// A minimal HTTP/1.1 GET: the status code and the `X-M2M-RSC` header.
async fn get(to: SocketAddr, path: &str, origin: &str, psk: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(to).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nX-M2M-Origin: {origin}\r\nX-Demo-Psk: {psk}\r\nX-M2M-RI: rq-tls\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let rsc = text
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-m2m-rsc"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, rsc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_lock_cse_reaches_mutual_tls_services_with_its_client_certificate() {
    let dir = std::env::temp_dir().join(format!("door-lock-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pki = TestPki::new(&["127.0.0.1"]);
    let files = pki.write(&dir);

    // PRP and PIP on one port, the PDP (following them over mutual TLS)
    // on another.
    let prp = authz_prp::build(&PrpConfig::new(None, ADMIN, hosting()))
        .await
        .expect("prp");
    let mut pip_config = PipConfig::new(None, ADMIN, hosting());
    pip_config.country_boundaries = false;
    let pip = authz_pip::build(&pip_config).await.expect("pip");
    let mut routes = RoutesBuilder::default();
    routes.add_service(authz_prp::server(prp));
    routes.add_service(authz_pip::server(pip));
    let prp_url = serve_mtls(routes.routes(), &pki).await;
    let client = ClientTls::default()
        .with_ca_pem(pki.ca_pem.as_bytes())
        .expect("CA")
        .with_identity_pem(
            pki.client_cert_pem.as_bytes(),
            pki.client_key_pem.as_bytes(),
        )
        .expect("identity");
    let pdp = Pdp::start(
        PdpConfig::new(hosting())
            .with_prp(prp_url.clone())
            .with_pip(prp_url.clone())
            .with_tls(client),
    )
    .expect("pdp");
    let pdp_url = serve_mtls(pdp.routes().await.expect("routes"), &pki).await;

    // Without its client certificate the CSE cannot load its policies.
    let refused = door_lock(&prp_url, &pdp_url, &files, false)
        .wait_with_output()
        .expect("door-lock-cse ends");
    assert!(
        !refused.status.success(),
        "started without a client certificate"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    // The server's alert may reach the client, or only the closed
    // connection: either way nothing was loaded.
    assert!(
        err.contains("nothing applied") || err.contains("cannot connect to the PRP"),
        "{err}"
    );
    assert!(
        ["CertificateRequired", "certificate", "connection closed"]
            .iter()
            .any(|why| err.contains(why)),
        "refused for its missing certificate: {err}"
    );

    let mut cse = door_lock(&prp_url, &pdp_url, &files, true);
    let stdout = cse.stdout.take().expect("stdout");
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let serving = line.starts_with("door-lock CSE");
            seen.push(line);
            if serving {
                break;
            }
        }
        seen
    });
    let lines = tokio::time::timeout(Duration::from_secs(60), lines)
        .await
        .expect("the CSE serves in time")
        .expect("reader");
    let serving = lines.last().cloned().unwrap_or_default();
    assert!(serving.starts_with("door-lock CSE"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("loaded ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("stored ")), "{lines:?}");
    let addr: SocketAddr = serving
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .expect("listen address");
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);

    // A decision over mutual TLS: the owner's phone retrieves the front
    // door (a Permit; a PDP out of reach would fail closed, 403).
    let (status, rsc) = get(
        addr,
        "/~/mn-cse-123456/frontDoor",
        "CownerPhone",
        "owner-phone@home.example:0a1b2c3d4e5f6a7b",
    )
    .await;
    let _ = cse.kill();
    let _ = cse.wait();
    assert_eq!((status, rsc.as_str()), (200, "2000"));
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
