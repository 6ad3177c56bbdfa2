//! TLS as a process sees it: `--tls-cert`/`--tls-key` on the serving
//! commands, `--tls-ca` on the clients, with a test CA written to files.
//! An `https://` URL is TLS with the certificate verified, never plain text.
//! Mutual TLS: `--tls-client-ca` on the serving commands,
//! `--tls-client-cert`/`--tls-client-key` on every command that connects.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use authz_tests::process::{HANG_LIMIT, run_within};
use authz_tests::tls::{PkiFiles, TestPki};
use common::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn owner_update() -> PathBuf {
    root().join("examples/request-owner-update.json")
}

/// Runs `authz ARGS`: exit code, stdout, stderr.
fn authz(args: &[&str]) -> (Option<i32>, String, String) {
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args(args),
        HANG_LIMIT,
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `authz decide` with `extra` arguments until the demo's owner request is
/// permitted (the PDP follows its PRP after the start); its JSON output.
fn decide_until_permit(pdp: &str, extra: &[&str]) -> serde_json::Value {
    let request = owner_update();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut args = vec!["decide", "--pdp", pdp, "-r", path(&request)];
        args.extend_from_slice(extra);
        let (code, out, err) = authz(&args);
        assert_eq!(code, Some(0), "authz decide --pdp {pdp}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        if v["dec"] == 1 {
            return v;
        }
        assert!(Instant::now() < deadline, "no Permit: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pki(dir: &Path, names: &[&str]) -> PkiFiles {
    TestPki::new(names).write(dir)
}

/// `authz up` with a certificate for `localhost` only: it serves TLS (the
/// banner says https), its own PDP reaches its PRP, PIP and DAS through
/// that listener at 127.0.0.1 (a name the certificate lacks), and `authz
/// decide` trusts it with `--tls-ca`, refuses it without, and gets nothing
/// over plain text.
#[test]
fn up_serves_tls_and_decide_verifies_it() {
    let data = tempdir("tls-up");
    let files = pki(data.path(), &["localhost"]);
    let das_config = root().join("examples/das/door-lock-das.json");
    let (_up, url, log) = start_up_with_output(
        &data.path().join("store"),
        &[
            "--tls-cert",
            path(&files.cert),
            "--tls-key",
            path(&files.key),
            "--das-config",
            path(&das_config),
        ],
        &[],
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let port = url.rsplit(':').next().expect("port");
    let https = format!("https://localhost:{port}");

    // Trusted with the CA: the owner may update the front door.
    let v = decide_until_permit(&https, &["--tls-ca", path(&files.ca)]);
    assert_eq!(v["permittedBy"]["acp"], "acpFrontDoor", "{v}");
    // --tls-ca is global: before the subcommand too.
    let request = owner_update();
    let (code, _, err) = authz(&[
        "--tls-ca",
        path(&files.ca),
        "decide",
        "--pdp",
        &https,
        "-r",
        path(&request),
    ]);
    assert_eq!(code, Some(0), "{err}");

    // Without the CA: refused, saying why; no fallback to plain text.
    let (code, out, err) = authz(&["decide", "--pdp", &https, "-r", path(&request)]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("certificate") && err.contains("UnknownIssuer"),
        "{err}"
    );

    // Plain text to the TLS port gets no decision.
    let (code, out, err) = authz(&[
        "decide",
        "--pdp",
        &format!("http://127.0.0.1:{port}"),
        "-r",
        path(&request),
    ]);
    assert_eq!(code, Some(1), "{out}{err}");

    // The DAS is advertised with https, and the PDP reached it (and its
    // PRP and PIP) without a certificate complaint in the log.
    let (code, out, err) = authz(&[
        "policy",
        "--prp",
        &https,
        "--tls-ca",
        path(&files.ca),
        "list",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("acpFrontDoor"), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    let lines: Vec<String> = log.try_iter().collect();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("certificate") || l.contains("watch failed")),
        "{lines:#?}"
    );
}

/// A standalone PRP and a PDP following it, both on TLS: the PDP verifies
/// the PRP with `--tls-ca`, `authz policy` loads the demo over TLS, and
/// `authz decide` asks the PDP over TLS.
#[test]
fn standalone_prp_and_pdp_over_tls() {
    let data = tempdir("tls-standalone");
    let files = pki(data.path(), &["localhost", "127.0.0.1"]);
    let (cert, key, ca) = (path(&files.cert), path(&files.key), path(&files.ca));
    let (_prp, prp_url) = start(
        &[
            "prp",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "memory",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
        "PRP on",
    );
    assert!(prp_url.starts_with("https://"), "{prp_url}");
    let demo = root().join("examples/door-lock-demo.json");
    let (code, _, err) = authz(&[
        "policy",
        "--prp",
        &prp_url,
        "--tls-ca",
        ca,
        "apply",
        "-f",
        path(&demo),
    ]);
    assert_eq!(code, Some(0), "{err}");
    // Without the CA the PRP is not trusted.
    let (code, _, err) = authz(&["policy", "--prp", &prp_url, "list"]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");

    let (_pdp, pdp_url) = start(
        &[
            "pdp",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "off",
            "--prp",
            &prp_url,
            "--pip",
            "off",
            "--tls-ca",
            ca,
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
        "PDP on",
    );
    assert!(pdp_url.starts_with("https://"), "{pdp_url}");
    decide_until_permit(&pdp_url, &["--tls-ca", ca]);
}

/// A PRP and a PDP that require client certificates (`--tls-client-ca`):
/// the PDP follows the PRP presenting its own (`--tls-client-cert`,
/// `--tls-client-key`), `authz policy` and `authz decide` get through with
/// one and are refused without one, or with one of another CA, saying
/// that the server wants a client certificate.
#[test]
fn standalone_prp_and_pdp_require_client_certificates() {
    let data = tempdir("mtls-standalone");
    let files = pki(data.path(), &["localhost", "127.0.0.1"]);
    let other_dir = data.path().join("other");
    std::fs::create_dir_all(&other_dir).expect("mkdir");
    let other = pki(&other_dir, &["localhost"]);
    let (cert, key, ca) = (path(&files.cert), path(&files.key), path(&files.ca));
    let client = [
        "--tls-ca",
        ca,
        "--tls-client-cert",
        path(&files.client_cert),
        "--tls-client-key",
        path(&files.client_key),
    ];
    let (_prp, prp_url) = start(
        &[
            "prp",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "memory",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-client-ca",
            ca,
        ],
        "PRP on",
    );
    let demo = root().join("examples/door-lock-demo.json");
    let mut args = vec!["policy", "--prp", &prp_url, "apply", "-f", path(&demo)];
    args.extend_from_slice(&client);
    let (code, _, err) = authz(&args);
    assert_eq!(code, Some(0), "{err}");
    // Without a client certificate: refused, saying so.
    let (code, _, err) = authz(&["policy", "--prp", &prp_url, "--tls-ca", ca, "list"]);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("CertificateRequired") && err.contains("--tls-client-cert"),
        "{err}"
    );

    let mut pdp_args = vec![
        "pdp",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "off",
        "--prp",
        &prp_url,
        "--pip",
        "off",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--tls-client-ca",
        ca,
    ];
    pdp_args.extend_from_slice(&client);
    let (_pdp, pdp_url) = start(&pdp_args, "PDP on");
    assert!(pdp_url.starts_with("https://"), "{pdp_url}");
    // The PDP followed the PRP through mutual TLS: the demo permits.
    let v = decide_until_permit(&pdp_url, &client);
    assert_eq!(v["permittedBy"]["acp"], "acpFrontDoor", "{v}");

    let request = owner_update();
    // No client certificate: no decision (exit 1), and a clear error.
    let (code, out, err) = authz(&[
        "decide",
        "--pdp",
        &pdp_url,
        "-r",
        path(&request),
        "--tls-ca",
        ca,
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("requires a client certificate")
            && err.contains("--tls-client-cert and --tls-client-key"),
        "{err}"
    );
    // A client certificate of another CA: refused too.
    let (code, out, err) = authz(&[
        "decide",
        "--pdp",
        &pdp_url,
        "-r",
        path(&request),
        "--tls-ca",
        ca,
        "--tls-client-cert",
        path(&other.client_cert),
        "--tls-client-key",
        path(&other.client_key),
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("refused the client certificate"), "{err}");
    // The load test too: without a client certificate, and with one of
    // another CA (its first call failed with a closed connection alone).
    for (cert, key, says) in [
        (None, None, "requires a client certificate"),
        (
            Some(path(&other.client_cert)),
            Some(path(&other.client_key)),
            "refused the client certificate",
        ),
    ] {
        let mut args = vec![
            "loadtest",
            "--target",
            &pdp_url,
            "--duration",
            "1",
            "--tls-ca",
            ca,
        ];
        if let (Some(cert), Some(key)) = (cert, key) {
            args.extend(["--tls-client-cert", cert, "--tls-client-key", key]);
        }
        let (code, out, err) = authz(&args);
        assert_ne!(code, Some(0), "{out}{err}");
        assert!(err.contains(says), "{err}");
    }
}

/// The metrics endpoint of a service that serves TLS serves TLS too, with
/// the same certificate and client CAs: a scraper with a client certificate
/// of the CA gets the metrics over https; one without, and plain text, get
/// none.
#[test]
fn metrics_are_served_with_the_services_tls() {
    let data = tempdir("tls-metrics");
    let pki = TestPki::new(&["127.0.0.1"]);
    let files = pki.write(data.path());
    let (cert, key, ca) = (path(&files.cert), path(&files.key), path(&files.ca));
    let (_pdp, _url, log) = start_with_output(
        &[
            "pdp",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--prp",
            "http://127.0.0.1:1",
            "--pip",
            "off",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-client-ca",
            ca,
        ],
        &[],
        "PDP on",
    );
    // The banner's metrics line (log lines, such as the PRP it cannot
    // reach, may come first).
    let banner = std::iter::from_fn(|| log.recv_timeout(Duration::from_secs(10)).ok())
        .find(|line| line.trim_start().starts_with("metrics "))
        .expect("the metrics line");
    let metrics: std::net::SocketAddr = banner
        .trim()
        .strip_prefix("metrics https://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("metrics https://ADDR/metrics: {banner}"));

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        use authz_tests::tls::{connect, http_get};
        let stream = connect(metrics, &pki.ca_pem, Some(&pki))
            .await
            .expect("handshake");
        let answer = http_get(stream, "/metrics", &[]).await.expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("authz_replica_revision"), "{answer}");

        // No client certificate: refused.
        let refused = match connect(metrics, &pki.ca_pem, None).await {
            Ok(stream) => http_get(stream, "/metrics", &[]).await,
            Err(e) => Err(e),
        };
        assert!(
            refused.as_ref().map_or(true, String::is_empty),
            "{refused:?}"
        );
        // Plain text: no metrics.
        let tcp = tokio::net::TcpStream::connect(metrics).await.expect("tcp");
        let plain = http_get(tcp, "/metrics", &[]).await;
        assert!(
            plain
                .as_ref()
                .map_or(true, |a| !a.contains("authz_replica_revision")),
            "{plain:?}"
        );
    });
}

/// `authz up --tls-client-ca` reaches its own PRP, PIP and DAS presenting
/// the process's client certificate, so it requires one; with it, clients
/// with a certificate of the client CA get decisions.
#[test]
fn up_with_client_cas_presents_its_client_certificate_to_itself() {
    let data = tempdir("mtls-up");
    let files = pki(data.path(), &["localhost"]);
    let das_config = root().join("examples/das/door-lock-das.json");
    let client = [
        "--tls-ca",
        path(&files.ca),
        "--tls-client-cert",
        path(&files.client_cert),
        "--tls-client-key",
        path(&files.client_key),
    ];
    let mut args = vec![
        "--tls-cert",
        path(&files.cert),
        "--tls-key",
        path(&files.key),
        "--tls-client-ca",
        path(&files.ca),
        "--das-config",
        path(&das_config),
    ];
    args.extend_from_slice(&client);
    let (_up, url, log) = start_up_with_output(&data.path().join("store"), &args, &[]);
    let port = url.rsplit(':').next().expect("port");
    let https = format!("https://localhost:{port}");
    let v = decide_until_permit(&https, &client);
    assert_eq!(v["permittedBy"]["acp"], "acpFrontDoor", "{v}");
    let (code, _, err) = authz(&[
        "policy",
        "--prp",
        &https,
        "--tls-ca",
        path(&files.ca),
        "list",
    ]);
    assert_ne!(code, Some(0), "{err}");
    std::thread::sleep(Duration::from_millis(500));
    let lines: Vec<String> = log.try_iter().collect();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("certificate") || l.contains("watch failed")),
        "{lines:#?}"
    );
}

/// `--tls-cert` and `--tls-key` go together, and unusable files stop the
/// process before it starts, exit 2 naming the flag and the file.
#[test]
fn bad_tls_flags_stop_the_process_naming_them() {
    let data = tempdir("tls-flags");
    let files = pki(data.path(), &["localhost"]);
    let (cert, key, ca) = (path(&files.cert), path(&files.key), path(&files.ca));
    let (client_cert, client_key) = (path(&files.client_cert), path(&files.client_key));
    let other_dir = data.path().join("other");
    std::fs::create_dir_all(&other_dir).expect("mkdir");
    let other = pki(&other_dir, &["localhost"]);
    let (other_client_cert, other_client_key) = (path(&other.client_cert), path(&other.client_key));
    let missing = data.path().join("missing.pem");
    let missing = path(&missing);
    let store = data.path().join("store");
    let store = path(&store);
    let serving = ["--listen", "127.0.0.1:0", "--data-dir", store];
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["up", "--tls-cert", cert], vec!["--tls-key"]),
        (vec!["prp", "--tls-key", key], vec!["--tls-cert"]),
        (
            vec!["up", "--tls-cert", missing, "--tls-key", key],
            vec!["--tls-cert", missing, "cannot read"],
        ),
        (
            vec!["pdp", "--tls-cert", cert, "--tls-key", cert],
            vec!["--tls-key", cert, "private key"],
        ),
        (
            vec!["pip", "--tls-cert", key, "--tls-key", key],
            vec!["--tls-cert", key, "certificate"],
        ),
        (
            vec![
                "das",
                "--config",
                "x.json",
                "--tls-cert",
                cert,
                "--tls-key",
                ca,
            ],
            vec!["--tls-key", ca],
        ),
        (
            vec![
                "decide",
                "--pdp",
                "https://localhost:1",
                "-r",
                "x.json",
                "--tls-ca",
                key,
            ],
            vec!["--tls-ca", key, "certificate"],
        ),
        (
            vec!["policy", "--tls-ca", missing, "list"],
            vec!["--tls-ca", missing, "cannot read"],
        ),
        // Mutual TLS: client CAs need TLS; a client certificate needs its
        // key and the other way round; unusable files are named.
        (
            vec!["prp", "--tls-client-ca", ca],
            vec!["--tls-client-ca", ca, "needs --tls-cert and --tls-key"],
        ),
        (
            vec![
                "das",
                "--config",
                "x.json",
                "--tls-key",
                key,
                "--tls-client-ca",
                ca,
            ],
            vec!["--tls-cert"],
        ),
        (
            vec![
                "pip",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
                "--tls-client-ca",
                key,
            ],
            vec!["--tls-client-ca", key, "certificate"],
        ),
        (
            vec![
                "pdp",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
                "--tls-client-ca",
                missing,
            ],
            vec!["--tls-client-ca", missing, "cannot read"],
        ),
        (
            vec![
                "up",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
                "--tls-client-ca",
                ca,
            ],
            vec!["--tls-client-ca needs --tls-client-cert and --tls-client-key"],
        ),
        (
            vec![
                "up",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
                "--tls-client-ca",
                ca,
                "--tls-client-cert",
                other_client_cert,
                "--tls-client-key",
                other_client_key,
            ],
            vec!["--tls-client-cert", "not accepted by the client CAs"],
        ),
        (
            vec![
                "decide",
                "--pdp",
                "https://localhost:1",
                "-r",
                "x.json",
                "--tls-client-cert",
                client_cert,
            ],
            vec!["--tls-client-cert needs --tls-client-key"],
        ),
        (
            vec!["--tls-client-key", client_key, "policy", "list"],
            vec!["--tls-client-key needs --tls-client-cert"],
        ),
        (
            vec![
                "loadtest",
                "--tls-client-cert",
                client_key,
                "--tls-client-key",
                client_key,
            ],
            vec!["--tls-client-cert", client_key, "certificate"],
        ),
        (
            vec![
                "policy",
                "--tls-client-cert",
                client_cert,
                "--tls-client-key",
                key,
                "list",
            ],
            vec!["--tls-client-key", key, "does not belong"],
        ),
    ];
    for (mut args, says) in cases {
        match args[0] {
            "up" | "prp" | "pip" | "das" => args.extend_from_slice(&serving),
            "pdp" => args.extend_from_slice(&["--listen", "127.0.0.1:0", "--metrics", "off"]),
            _ => {}
        }
        let out = run_within(
            Command::new(env!("CARGO_BIN_EXE_authz")).args(&args),
            HANG_LIMIT,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for s in says {
            assert!(err.contains(s), "{args:?} should say {s}: {err}");
        }
    }
    // Nothing started: no store was made.
    assert!(!Path::new(store).join("prp.redb").exists());
}
