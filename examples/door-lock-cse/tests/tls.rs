//! The door-lock CSE as a real process with TLS on both sides:
//!
//! - against services that serve TLS and require client certificates
//!   (mutual TLS): with `--tls-ca`, `--tls-client-cert` and
//!   `--tls-client-key` it loads its policies into the PRP and its groups
//!   into the PIP, waits for the PDP, and its PEP gets decisions; without
//!   its client certificate it cannot start;
//! - serving HTTPS itself (`--tls-cert`, `--tls-key`, `--tls-client-ca`):
//!   an AE's client certificate authenticates it as the AE-ID in its
//!   subjectAltName (TS-0003 10.1.1.5), which `acaf` rules need.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use authz_pdp::{Pdp, PdpConfig};
use authz_pip::PipConfig;
use authz_proto::tls::{ClientTls, ServerTls};
use authz_prp::PrpConfig;
use authz_tests::process::{lines_of, lines_until, output_within};
use authz_tests::tls::{ClientName, TestPki, connect, http_get};
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;

const ADMIN: &str = "CAdmin";

fn hosting() -> authz_core::HostingContext {
    authz_core::HostingContext::new("//home.example", "/mn-cse-123456").expect("hosting")
}

/// Serves `routes` with TLS requiring client certificates of `pki`'s CA,
/// or without TLS, on an OS-chosen loopback port: its URL.
async fn serve(routes: tonic::service::Routes, pki: Option<&TestPki>) -> String {
    let tls = pki.map(|pki| {
        ServerTls::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
            .expect("server TLS")
            .with_client_ca_pem(pki.ca_pem.as_bytes())
            .expect("client CA")
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
    let mut server = authz_proto::serving::server(tls.as_ref()).expect("server");
    let router = server.add_routes(routes);
    tokio::spawn(async move {
        let _ = router
            .serve_with_incoming(authz_proto::listener::incoming(listener))
            .await;
    });
    url
}

/// A PIP in memory, without country boundaries, as a gRPC service.
async fn pip() -> authz_proto::pb::policy_information_point_server::PolicyInformationPointServer<
    authz_pip::PipService,
> {
    let mut config = PipConfig::new(None, ADMIN, hosting());
    config.country_boundaries = false;
    authz_pip::server(authz_pip::build(&config).await.expect("pip"))
}

/// A PRP and a PIP on one port and a PDP following them on another, all
/// serving TLS with client certificates of `pki` required when given:
/// the PRP's (and PIP's) URL, the PDP's, and the PDP (which stops
/// following the PRP when dropped).
async fn services(pki: Option<&TestPki>) -> (String, String, Pdp) {
    let prp = authz_prp::build(&PrpConfig::new(None, ADMIN, hosting()))
        .await
        .expect("prp");
    let mut routes = RoutesBuilder::default();
    routes.add_service(authz_prp::server(prp));
    routes.add_service(pip().await);
    let prp_url = serve(routes.routes(), pki).await;
    let mut pdp_config = PdpConfig::new(hosting())
        .with_prp(prp_url.clone())
        .with_pip(prp_url.clone());
    if let Some(pki) = pki {
        let client = ClientTls::default()
            .with_ca_pem(pki.ca_pem.as_bytes())
            .expect("CA")
            .with_identity_pem(
                pki.client_cert_pem.as_bytes(),
                pki.client_key_pem.as_bytes(),
            )
            .expect("identity");
        pdp_config = pdp_config.with_tls(client);
    }
    let pdp = Pdp::start(pdp_config).expect("pdp");
    let pdp_url = serve(pdp.routes().await.expect("routes"), pki).await;
    (prp_url, pdp_url, pdp)
}

/// The door-lock CSE loading its policies into `prp` (PRP + PIP) and asking
/// `pdp`, with the further arguments `tls`, listening on a port of its own
/// choosing.
fn door_lock(prp: &str, pdp: &str, tls: &[&Path]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_door-lock-cse"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--load-policies",
            "--prp",
            prp,
            "--pdp",
            pdp,
        ])
        .args(tls)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run door-lock-cse")
}

/// Waits until `cse` says it serves, and returns where (after
/// `http://` or `https://`, as `scheme`), having checked that it loaded its
/// policies and groups.
async fn serving_address(cse: &mut Child, scheme: &str) -> SocketAddr {
    let lines = lines_to_banner(cse);
    let serving = lines.last().cloned().unwrap_or_default();
    if !serving.starts_with("door-lock CSE") {
        let mut err = String::new();
        if let Some(mut stderr) = cse.stderr.take() {
            use std::io::Read;
            let _ = cse.kill();
            let _ = stderr.read_to_string(&mut err);
        }
        panic!("the CSE does not serve: {lines:?}\n{err}");
    }
    assert!(lines.iter().any(|l| l.starts_with("loaded ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("stored ")), "{lines:?}");
    let addr = listen_address(&serving, scheme);
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    addr
}

/// The lines `cse` prints up to its banner (`door-lock CSE ...`, the
/// last), or all it printed before it exited. Read by a thread of their
/// own: a CSE that prints nothing is killed and fails the test within the
/// bound (a blocking task would hold the runtime's end).
fn lines_to_banner(cse: &mut Child) -> Vec<String> {
    let stdout = lines_of(cse.stdout.take().expect("stdout"));
    lines_until(
        &stdout,
        Duration::from_secs(60),
        |line| line.starts_with("door-lock CSE"),
        || {
            let _ = cse.kill();
            "the CSE serves in time".into()
        },
    )
    .unwrap_or_else(|seen| seen)
}

/// The address after `scheme://` on the CSE's banner line.
fn listen_address(banner: &str, scheme: &str) -> SocketAddr {
    banner
        .split(&format!(" {scheme}://"))
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .expect("listen address")
}

/// The status code and the `X-M2M-RSC` header of a raw HTTP/1.1 answer.
fn status_and_rsc(text: &str) -> (u16, String) {
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

/// GET `path` as `origin` (with the PSK header when `psk` is not empty)
/// over `stream`: the status code and `X-M2M-RSC`.
async fn get_over<S>(stream: S, path: &str, origin: &str, psk: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut headers = vec![("X-M2M-Origin", origin), ("X-M2M-RI", "rq-tls")];
    if !psk.is_empty() {
        headers.push(("X-Demo-Psk", psk));
    }
    let answer = http_get(stream, path, &headers).await.expect("an answer");
    status_and_rsc(&answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_lock_cse_reaches_mutual_tls_services_with_its_client_certificate() {
    let dir = tempfile::Builder::new()
        .prefix("authz-door-lock-tls-")
        .tempdir()
        .expect("temp dir");
    let pki = TestPki::new(&["127.0.0.1"]);
    let files = pki.write(dir.path());
    let (prp_url, pdp_url, _pdp) = services(Some(&pki)).await;

    // Without its client certificate the CSE cannot load its policies,
    // and says why: the server's alert may not reach its first call (TLS
    // 1.3, see `authz_proto::tls`), so it asks the server again and names
    // the flags that give a client certificate.
    let refused = output_within(
        door_lock(&prp_url, &pdp_url, &[Path::new("--tls-ca"), &files.ca]),
        Duration::from_secs(60),
        || "the CSE without a client certificate neither started nor stopped".into(),
    );
    assert!(
        !refused.status.success(),
        "started without a client certificate"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("CertificateRequired") && err.contains("--tls-client-cert"),
        "refused for its missing certificate: {err}"
    );
    assert!(
        err.contains("nothing applied") || err.contains("cannot connect to the PRP"),
        "{err}"
    );

    let mut cse = door_lock(
        &prp_url,
        &pdp_url,
        &[
            Path::new("--tls-ca"),
            &files.ca,
            Path::new("--tls-client-cert"),
            &files.client_cert,
            Path::new("--tls-client-key"),
            &files.client_key,
        ],
    );
    let addr = serving_address(&mut cse, "http").await;

    // A decision over mutual TLS: the owner's phone retrieves the front
    // door (a Permit; a PDP out of reach would fail closed, 403).
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (status, rsc) = get_over(
        tcp,
        "/~/mn-cse-123456/frontDoor",
        "CownerPhone",
        "owner-phone@home.example:0a1b2c3d4e5f6a7b",
    )
    .await;
    let _ = cse.kill();
    let _ = cse.wait();
    assert_eq!((status, rsc.as_str()), (200, "2000"));
}

/// A PIP of its own (`--pip`) that requires client certificates refuses a
/// CSE started without one after the PRP took its policies: the start
/// stops naming the PIP, the alert and the flags, as for the PRP (it
/// showed tonic's debug text of a closed connection, without the alert).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pip_refusing_the_cse_without_a_client_certificate_says_why() {
    let dir = tempfile::Builder::new()
        .prefix("authz-door-lock-pip-tls-")
        .tempdir()
        .expect("temp dir");
    let pki = TestPki::new(&["127.0.0.1"]);
    let files = pki.write(dir.path());
    let (prp_url, pdp_url, _pdp) = services(None).await;
    let mut routes = RoutesBuilder::default();
    routes.add_service(pip().await);
    let pip_url = serve(routes.routes(), Some(&pki)).await;

    let refused = output_within(
        door_lock(
            &prp_url,
            &pdp_url,
            &[
                Path::new("--pip"),
                Path::new(&pip_url),
                Path::new("--tls-ca"),
                &files.ca,
            ],
        ),
        Duration::from_secs(60),
        || "the CSE refused by its PIP neither started nor stopped".into(),
    );
    assert!(!refused.status.success(), "started without its groups");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("PIP, group "), "{err}");
    assert!(
        err.contains("CertificateRequired") && err.contains("--tls-client-cert"),
        "refused for its missing certificate: {err}"
    );
    // The status as a message, not tonic's debug form.
    assert!(!err.contains("source: "), "{err}");
}

/// TS-0003 10.1.1.5 and 8.1.2.4: an AE-ID certificate holds the absolute
/// AE-ID as a subjectAltName URI. Served over HTTPS with a client CA, the
/// CSE authenticates the owner's phone by its certificate alone, so the
/// owner's `acaf` rules permit; without a certificate they do not; the
/// certificate does not let its holder state another AE's From (7.2.1:
/// 4106); a certificate from another CA fails the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_lock_cse_authenticates_aes_by_their_certificates_10_1_1_5() {
    let dir = tempfile::Builder::new()
        .prefix("authz-door-lock-https-")
        .tempdir()
        .expect("temp dir");
    let owner = TestPki::with_client_names(
        &["127.0.0.1"],
        &[ClientName::Uri("//home.example/mn-cse-123456/CownerPhone")],
    );
    let files = owner.write(dir.path());
    let stranger = TestPki::with_client_names(
        &["127.0.0.1"],
        &[ClientName::Uri(
            "https://home.example/mn-cse-123456/CownerPhone",
        )],
    );
    let (prp_url, pdp_url, _pdp) = services(None).await;
    let mut cse = door_lock(
        &prp_url,
        &pdp_url,
        &[
            Path::new("--tls-cert"),
            &files.cert,
            Path::new("--tls-key"),
            &files.key,
            Path::new("--tls-client-ca"),
            &files.ca,
        ],
    );
    let addr = serving_address(&mut cse, "https").await;
    let door = "/~/mn-cse-123456/frontDoor";

    let with_cert = connect(addr, &owner.ca_pem, Some(&owner))
        .await
        .expect("handshake");
    let by_certificate = get_over(with_cert, door, "CownerPhone", "").await;
    let with_cert = connect(addr, &owner.ca_pem, Some(&owner))
        .await
        .expect("handshake");
    let other_from = get_over(with_cert, door, "Cbabysitter", "").await;
    let without = connect(addr, &owner.ca_pem, None).await.expect("handshake");
    let no_cert = get_over(without, door, "CownerPhone", "").await;
    let without = connect(addr, &owner.ca_pem, None).await.expect("handshake");
    let by_psk = get_over(
        without,
        door,
        "CownerPhone",
        "owner-phone@home.example:0a1b2c3d4e5f6a7b",
    )
    .await;
    let foreign = match connect(addr, &owner.ca_pem, Some(&stranger)).await {
        Ok(stream) => http_get(stream, door, &[("X-M2M-Origin", "CownerPhone")]).await,
        Err(e) => Err(e),
    };
    let _ = cse.kill();
    let _ = cse.wait();

    assert_eq!(
        by_certificate,
        (200, "2000".to_owned()),
        "owner by certificate"
    );
    assert_eq!(
        other_from,
        (403, "4106".to_owned()),
        "owner's certificate, another From"
    );
    assert_eq!(
        no_cert,
        (403, "4103".to_owned()),
        "no certificate: acaf not met"
    );
    assert_eq!(
        by_psk,
        (200, "2000".to_owned()),
        "no certificate, the PSK header"
    );
    assert!(
        foreign.as_ref().map_or(true, String::is_empty),
        "a certificate of another CA got an answer: {foreign:?}"
    );
}

/// TS-0001 7.2: a CSE whose CSE-ID (or SP-ID) is not the one the services
/// were started with stores its groups as its own
/// (`//sp/mn-other/grpBabysitters`), so that the PIP reads their relative
/// members as its AEs, and its decisions, which read the `acor` entry
/// `grpBabysitters` as its group, find them. (No TLS here: the same
/// process harness.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cse_with_another_cse_id_stores_its_groups_as_its_own_ts0001_7_2() {
    let (prp_url, pdp_url, _pdp) = services(None).await;
    let mut pip =
        authz_proto::pb::policy_information_point_client::PolicyInformationPointClient::connect(
            prp_url.clone(),
        )
        .await
        .expect("PIP");
    let group = |id: &str| authz_proto::pb::GetGroupRequest {
        group_id: id.to_owned(),
    };
    for (sp, cse_id) in [
        ("//home.example", "/mn-other"),
        ("//other.example", "/mn-third"),
    ] {
        let mut cse = door_lock(
            &prp_url,
            &pdp_url,
            &[
                Path::new("--sp-id"),
                Path::new(sp),
                Path::new("--cse-id"),
                Path::new(cse_id),
            ],
        );
        serving_address(&mut cse, "http").await;
        let stored = pip
            .get_group(group(&format!("{sp}{cse_id}/grpBabysitters")))
            .await
            .expect("the group of the CSE")
            .into_inner();
        assert_eq!(
            stored.member_ids,
            [format!("{sp}{cse_id}/Cbabysitter")],
            "the member is the CSE's AE"
        );
        let _ = cse.kill();
    }
    // Not filed as a group of the services' own CSE.
    let other = pip.get_group(group("grpBabysitters")).await;
    assert_eq!(other.map(|_| ()).unwrap_err().code(), tonic::Code::NotFound);
}

/// A `<group>` of a fleet (120 000 members, an answer of 5 MB from the
/// PIP, over tonic's 4 MiB default) is loaded: the CSE reads the PIP's
/// answers as large as the services' own clients do. (No TLS here: the
/// same process harness.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_sized_group_is_loaded() {
    let (prp_url, pdp_url, _pdp) = services(None).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let members: Vec<String> = std::iter::once("Cbabysitter".to_owned())
        .chain((0..120_000u64).map(|i| format!("C{i:016x}")))
        .collect();
    let groups = serde_json::json!({
        "groups": [{"m2m:grp": {"ri": "grpBabysitters", "mid": members}}]
    });
    let file = dir.path().join("groups.json");
    std::fs::write(&file, groups.to_string()).expect("write groups");
    let mut cse = door_lock(&prp_url, &pdp_url, &[Path::new("--groups"), &file]);
    serving_address(&mut cse, "http").await;
    let _ = cse.kill();
}

/// A PDP that takes connections and never answers: every decision the CSE
/// asks of it ends at the CSE's deadline (fail-closed). Its URL.
async fn stalled_pdp() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    url
}

/// The door-lock CSE asking `pdp` with a 3 s deadline, with the further
/// arguments `extra`, and where it serves (after `scheme://`).
async fn door_lock_alone(pdp: &str, extra: &[&Path], scheme: &str) -> (Child, SocketAddr) {
    let mut cse = Command::new(env!("CARGO_BIN_EXE_door-lock-cse"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--deadline-ms",
            "3000",
            "--pdp",
            pdp,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run door-lock-cse");
    let banner = lines_to_banner(&mut cse)
        .pop()
        .filter(|l| l.starts_with("door-lock CSE"))
        .expect("a banner");
    let addr = listen_address(&banner, scheme);
    (cse, addr)
}

/// `kill -TERM`, then the exit status within a bound on a hang (not a
/// speed check: the drain is 5 s).
fn terminate(cse: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &cse.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = cse.try_wait().expect("try_wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = cse.kill();
            panic!("the CSE still runs 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// README: on SIGTERM the CSE "lets the HTTP requests under way finish,
/// then exits 0", over HTTPS as over HTTP: a request waiting on its
/// decision gets its answer (here fail-closed, 403 / 4103, the PDP never
/// answering), not a connection cut mid-request.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_an_https_request_under_way_is_answered() {
    let dir = tempfile::Builder::new()
        .prefix("authz-door-lock-drain-")
        .tempdir()
        .expect("temp dir");
    let pki = TestPki::new(&["127.0.0.1"]);
    let files = pki.write(dir.path());
    let pdp = stalled_pdp().await;
    let (mut cse, addr) = door_lock_alone(
        &pdp,
        &[
            Path::new("--tls-cert"),
            &files.cert,
            Path::new("--tls-key"),
            &files.key,
        ],
        "https",
    )
    .await;
    let stream = connect(addr, &pki.ca_pem, None).await.expect("handshake");
    let request = tokio::spawn(async move {
        get_over(stream, "/~/mn-cse-123456/frontDoor", "CownerPhone", "").await
    });
    // The request reaches the CSE and waits on the stalled PDP (3 s).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let status = tokio::task::spawn_blocking(move || terminate(&mut cse))
        .await
        .expect("terminate");
    let answer = tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .expect("answered")
        .expect("the request task");
    assert_eq!(answer, (403, "4103".to_owned()), "fail-closed answer");
    assert!(status.success(), "{status}");
}

/// A client that never finishes sending its request's headers does not
/// keep the CSE from stopping: the requests under way get at most 5 s
/// (README; it ran until the client closed the connection).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_a_half_sent_request_does_not_hold_the_cse() {
    use tokio::io::AsyncWriteExt;
    let pdp = stalled_pdp().await;
    let (mut cse, addr) = door_lock_alone(&pdp, &[], "http").await;
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    client
        .write_all(
            b"POST /~/mn-cse-123456/frontDoor HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: CownerPhone\r\n",
        )
        .await
        .expect("send half a request");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || terminate(&mut cse))
        .await
        .expect("terminate");
    assert!(status.success(), "{status}");
    drop(client);
}
