//! The services as real processes on loopback ports chosen by the OS:
//! `authz up`, and `authz prp` + `authz pdp` run apart.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use authz_proto::pb;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
use authz_proto::pb::policy_retrieval_point_client::PolicyRetrievalPointClient;
use authz_tests::process::{
    self, HANG_LIMIT, lines_of, lines_until, output_within, run_within, within,
};
use tonic::transport::Channel;

mod common;

use common::*;

/// The banner says the services answer: after a restart on the same data
/// (no demo load to wait for), the first decision after it is decided by
/// the stored policies, not a PROCESSING_ERROR for a replica still empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_decides_at_once_after_a_restart() {
    let data = tempdir("up-restart");
    {
        let (_up, url) = start_up(data.path(), &[], &[]);
        let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
        let owner = request("CownerPhone", "frontDoor", pb::Operation::Update);
        eventually(&mut pdp, &owner, true).await;
    }
    let (_up, url) = start_up(data.path(), &[], &[]);
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    let d = decide(
        &mut pdp,
        request("CownerPhone", "frontDoor", pb::Operation::Update),
    )
    .await;
    assert!(is_permit(&d), "{}", d.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_serves_the_door_lock_demo() {
    let data = tempdir("up");
    let (_up, url) = start_up(data.path(), &[], &[]);
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    // The owner's phone may do everything on the front door (demo acpFrontDoor rule 0).
    let owner = request("CownerPhone", "frontDoor", pb::Operation::Update);
    eventually(&mut pdp, &owner, true).await;
    // The lock AE itself may RETRIEVE and NOTIFY (acop 18) but not DELETE.
    assert!(is_permit(
        &decide(
            &mut pdp,
            request("Clock-AE1", "frontDoor", pb::Operation::Notify)
        )
        .await
    ));
    let d = decide(
        &mut pdp,
        request("Clock-AE1", "frontDoor", pb::Operation::Delete),
    )
    .await;
    assert!(!is_permit(&d), "{}", d.summary);
    // A contentInstance takes its container's acpi (TS-0001 10.2.3.1).
    assert!(is_permit(
        &decide(
            &mut pdp,
            request("CownerPhone", "frontDoorState", pb::Operation::Retrieve)
        )
        .await
    ));
    // The ACP itself is guarded by its pvs: the lock AE may not even read it.
    assert!(!is_permit(
        &decide(
            &mut pdp,
            request("Clock-AE1", "acpFrontDoor", pb::Operation::Retrieve)
        )
        .await
    ));
    assert!(is_permit(
        &decide(
            &mut pdp,
            request("CAdmin", "acpFrontDoor", pb::Operation::Retrieve)
        )
        .await
    ));
    // The PIP runs in the same process: family members (a `<group>` in the
    // back door's acor) may read the back door once the group holds them.
    let daughter = request("Cdaughter", "backDoor", pb::Operation::Retrieve);
    assert!(!is_permit(&decide(&mut pdp, daughter.clone()).await));
    let mut pip = PolicyInformationPointClient::new(channel(&url).await);
    pip.put_group(pb::PutGroupRequest {
        originator: "CAdmin".into(),
        group: Some(pb::Group {
            group_id: "/mn-cse-123456/grpFamily".into(),
            member_ids: vec!["Cdaughter".into()],
        }),
    })
    .await
    .expect("put group");
    eventually(&mut pdp, &daughter, true).await;
    let d = decide(
        &mut pdp,
        request("Cstranger", "backDoor", pb::Operation::Retrieve),
    )
    .await;
    assert!(!is_permit(&d), "{}", d.summary);
}

/// `authz decide`, the README's way to ask a running PDP, as a process: the
/// demo's two example requests decide as the README says, and a PDP that is
/// not there is exit 1, a bad request file exit 2 naming the field.
/// A `RUST_LOG` that does not parse is said on the log, not dropped in
/// silence; the process logs at `info` and serves.
#[test]
fn an_invalid_rust_log_is_reported() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authz"))
        .args(["pdp", "--listen", "127.0.0.1:0", "--pip", "off"])
        .args(["--metrics", "off"])
        .env("RUST_LOG", "[[[bad")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn authz");
    let lines = lines_of(child.stdout.take().expect("stdout"));
    let proc = Proc(child);
    // Up to the banner, or all it printed if it ended before.
    let seen = lines_until(
        &lines,
        HANG_LIMIT,
        |line| line.contains("PDP on"),
        || "authz pdp with a bad RUST_LOG neither served nor ended".into(),
    )
    .unwrap_or_else(|seen| seen);
    drop(proc);
    assert!(
        seen.iter()
            .any(|l| l.contains("WARN") && l.contains("RUST_LOG is not a valid filter")),
        "{seen:#?}"
    );
}

/// Waits until the PDP's replica has reached `revision`.
async fn replica_at(pdp: &mut PolicyDecisionPointClient<Channel>, revision: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pdp.status(pb::StatusRequest {}).await.unwrap().into_inner();
        if s.replica_revision >= revision {
            return;
        }
        assert!(Instant::now() < deadline, "replica at {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `authz up` loads the demo in several writes into an empty store. A load
/// that was interrupted (its `demo-load.pending` left in the data
/// directory) is completed at the next start, unless that start is
/// `--no-demo`, which abandons it (the writes it serves are the
/// operator's, not to be overwritten later); a store changed after a
/// finished load is left as it is, demo or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_completes_an_interrupted_demo_load_only() {
    let data = tempdir("up-demo");
    let pending = data.path().join("demo-load.pending");
    let owner = request("CownerPhone", "frontDoor", pb::Operation::Update);
    let (up, url) = start_up(data.path(), &[], &[]);
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    eventually(&mut pdp, &owner, true).await;
    assert!(!pending.exists(), "a finished load leaves no marker");
    let deleted = prp_client(&url)
        .await
        .delete_resource(pb::DeleteResourceRequest {
            role_ids: Vec::new(),
            originator: "CAdmin".into(),
            resource_id: "frontDoor".into(),
        })
        .await
        .expect("delete frontDoor")
        .into_inner()
        .revision;
    drop(up);
    // A start without --no-demo that leaves the deletion standing.
    let deletion_stands = || async {
        let (_up, url) = start_up(data.path(), &[], &[]);
        let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
        replica_at(&mut pdp, deleted).await;
        let d = decide(&mut pdp, owner.clone()).await;
        assert!(!is_permit(&d), "{}", d.summary);
    };

    // Not empty, nothing interrupted: the operator's deletion stands.
    deletion_stands().await;

    // An interrupted load, then a --no-demo start: abandoned, so the
    // start after it leaves the operator's deletion standing.
    std::fs::write(&pending, "").expect("marker");
    let up = start_up(data.path(), &["--no-demo"], &[]);
    assert!(!pending.exists(), "--no-demo abandons the interrupted load");
    drop(up);
    deletion_stands().await;

    // As if the first start had been killed before frontDoor was written.
    std::fs::write(&pending, "").expect("marker");
    let (_up, url) = start_up(data.path(), &[], &[]);
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    eventually(&mut pdp, &owner, true).await;
    assert!(!pending.exists(), "the completed load removes its marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_decide_asks_the_running_pdp() {
    let data = tempdir("decide");
    let (_up, url) = start_up(data.path(), &[], &[]);
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    let owner = request("CownerPhone", "frontDoor", pb::Operation::Update);
    eventually(&mut pdp, &owner, true).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let decide = |pdp_url: &str, file: &Path| {
        let out = run_within(
            Command::new(env!("CARGO_BIN_EXE_authz"))
                .args(["decide", "--pdp", pdp_url, "--request"])
                .arg(file),
            HANG_LIMIT,
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = decide(&url, &root.join("examples/request-owner-update.json"));
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["dec"], 1, "{out}");
    assert_eq!(v["permittedBy"]["acp"], "acpFrontDoor", "{out}");
    assert!(
        v["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("PERMIT"))
    );

    let (code, out, err) = decide(&url, &root.join("examples/request-lock-delete.json"));
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["dec"], 2, "{out}");
    assert_eq!(
        v["sus"], 1,
        "the lock's rule names it, without DELETE: {out}"
    );

    let bad = data.path().join("bad.json");
    std::fs::write(&bad, r#"{"fr": "C 1", "to": "frontDoor", "op": 2}"#).expect("write");
    let (code, _, err) = decide(&url, &bad);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("fr:"), "{err}");

    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let nobody = format!("http://127.0.0.1:{port}");
    let (code, _, err) = decide(&nobody, &root.join("examples/request-owner-update.json"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot connect to the PDP"), "{err}");
}

async fn prp_client(url: &str) -> PolicyRetrievalPointClient<Channel> {
    PolicyRetrievalPointClient::new(channel(url).await)
}

fn port_of(url: &str) -> String {
    url.rsplit(':').next().unwrap().to_owned()
}

/// `authz pdp` following the PRP at `prp_url` (default PIP, no metrics),
/// and a client of it.
async fn start_pdp_following(prp_url: &str) -> (Proc, PolicyDecisionPointClient<Channel>) {
    let (pdp, pdp_url) = start(
        &[
            "pdp",
            "--listen",
            "127.0.0.1:0",
            "--prp",
            prp_url,
            // No PIP runs here: one that never answers would leave every
            // `acor` entry undetermined (Decision 3, 10).
            "--pip",
            "off",
            "--metrics",
            "off",
        ],
        "PDP on",
    );
    (pdp, PolicyDecisionPointClient::new(channel(&pdp_url).await))
}

/// `originator` creates `acp` at the PRP.
async fn create_acp_as(
    prp: &mut PolicyRetrievalPointClient<Channel>,
    originator: &str,
    acp: pb::AccessControlPolicy,
) -> Result<tonic::Response<pb::AcpRecord>, tonic::Status> {
    prp.create_acp(pb::CreateAcpRequest {
        role_ids: Vec::new(),
        originator: originator.into(),
        acp: Some(acp),
    })
    .await
}

/// `originator` registers `resource` at the PRP.
async fn put_resource_as(
    prp: &mut PolicyRetrievalPointClient<Channel>,
    originator: &str,
    resource: pb::TargetResource,
) -> Result<tonic::Response<pb::ResourceRecord>, tonic::Status> {
    prp.put_resource(pb::PutResourceRequest {
        role_ids: Vec::new(),
        originator: originator.into(),
        resource: Some(resource),
    })
    .await
}

/// Stores `acpDoor` (Cguest may RETRIEVE) and registers `door` under it.
async fn guest_may_read_the_door(client: &mut PolicyRetrievalPointClient<Channel>) {
    create_acp_as(client, "CAdmin", acp("acpDoor", "Cguest", 2))
        .await
        .unwrap();
    put_resource_as(client, "CAdmin", resource("door", &["acpDoor"]))
        .await
        .unwrap();
}

fn start_prp(data: &Path, listen: &str) -> (Proc, String) {
    start(
        &[
            "prp",
            "--listen",
            listen,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        "PRP on",
    )
}

/// URLs a process would connect to, and identities it would grant rights
/// to, are checked at start: a bad one stops it with exit 2 naming the flag,
/// instead of a server that retries an unusable address forever or an admin
/// that names nobody (or everybody).
#[test]
fn bad_url_and_identity_flags_stop_the_process_naming_the_flag() {
    let dir = tempdir("bad-flags");
    let data = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 18] = [
        (&["pdp", "--prp", "notaurl"], "--prp notaurl"),
        // A deadline of zero would time every fetch out.
        (&["pdp", "--pip-deadline-ms", "0"], "--pip-deadline-ms"),
        (
            &[
                "pdp",
                "--das",
                "http://127.0.0.1:1",
                "--das-deadline-ms",
                "0",
            ],
            "--das-deadline-ms",
        ),
        // An empty data directory would be the working directory.
        (&["prp", "--data-dir", ""], "--data-dir"),
        // Decryption keys need a trusted DAS; a key file must be a JWK Set.
        (
            &["pdp", "--token-decryption-keys", "keys.json"],
            "--token-decryption-keys keys.json: no --das",
        ),
        (
            &[
                "pdp",
                "--das",
                "http://127.0.0.1:1",
                "--token-decryption-keys",
                "Cargo.toml",
            ],
            "--token-decryption-keys Cargo.toml",
        ),
        (&["pdp", "--pip", "127.0.0.1:7174"], "--pip 127.0.0.1:7174"),
        (&["pdp", "--das", "das.example"], "--das das.example"),
        (&["pdp", "--prp-writer", "all"], "--prp-writer"),
        (
            &["pdp", "--pip-writer", "guest@roles.example"],
            "--pip-writer",
        ),
        (
            &[
                "pip",
                "--data-dir",
                "memory",
                "--token-writer",
                "//sp.example",
            ],
            "--token-writer",
        ),
        (&["prp", "--data-dir", "memory", "--admin", ""], "--admin"),
        // A deadline gRPC cannot carry made every PIP fetch panic.
        (
            &["pdp", "--pip-deadline-ms", "360000000000000000"],
            "--pip-deadline-ms",
        ),
        (
            &["pdp", "--das-deadline-ms", "3600001"],
            "--das-deadline-ms",
        ),
        // 0 would make every position unusable; past a year, freshness
        // means little (and must stay within a Timestamp).
        (
            &["pip", "--data-dir", "memory", "--max-position-age", "0"],
            "--max-position-age",
        ),
        (
            &[
                "pip",
                "--data-dir",
                "memory",
                "--max-position-age",
                "1000000000000",
            ],
            "--max-position-age",
        ),
        (
            &["pip", "--data-dir", "memory", "--trusted-issuer", "*"],
            "--trusted-issuer",
        ),
        (
            &[
                "up",
                "--data-dir",
                data,
                "--das-config",
                "examples/door-lock-cse/guest-das.json",
                "--advertise-url",
                "notaurl",
            ],
            "--advertise-url notaurl",
        ),
    ];
    for (args, says) in cases {
        let out = run_within(
            Command::new(env!("CARGO_BIN_EXE_authz"))
                .args(args)
                .args(["--listen", "127.0.0.1:0"]),
            HANG_LIMIT,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Decision 2: an identity flag is compared in absolute form, which is an
/// ID of at most 2048 bytes too; one that only grows past it there (2048
/// bytes as given) would name an originator no request can come from, so
/// it stops the process naming the flag, not the first write it refuses.
#[test]
fn an_identity_flag_too_long_in_absolute_form_stops_the_process() {
    let long = format!("C{}", "x".repeat(2047));
    for (command, flag) in [
        ("prp", "--admin"),
        ("prp", "--dynamic-acp-originator"),
        ("pip", "--admin"),
        ("pip", "--token-writer"),
        ("pip", "--location-source"),
        ("pdp", "--prp-writer"),
        ("pdp", "--pip-writer"),
        ("up", "--admin"),
    ] {
        let child = Command::new(env!("CARGO_BIN_EXE_authz"))
            .args([command, "--listen", "127.0.0.1:0", flag, &long])
            .args(if command == "pdp" {
                &[][..]
            } else {
                &["--data-dir", "memory"][..]
            })
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run authz");
        // A process that accepts the flag serves: stopped, and failed.
        let out = output_within(child, Duration::from_secs(20), || {
            format!("{command} {flag}: started with the flag")
        });
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command} {flag}: {err}");
        assert!(
            err.contains(&format!("{flag} \"C")),
            "{command} {flag}: {err}"
        );
        assert!(err.contains("absolute form"), "{command} {flag}: {err}");
    }
}

/// `authz prp --dynamic-acp-originator CPdp` lets that originator (what a
/// standalone `authz pdp --prp-writer CPdp` sends) store dynamic ACPs, and
/// nobody else but the admin; a value that is not one originator ID stops
/// the PRP before it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prp_takes_dynamic_acp_originators_from_its_flag() {
    let data = tempdir("prp-dynamic-writer");
    let (_prp, url) = start(
        &[
            "prp",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--dynamic-acp-originator",
            "CPdp",
        ],
        "PRP on",
    );
    let mut client = prp_client(&url).await;
    put_resource_as(&mut client, "CAdmin", resource("cnt", &[]))
        .await
        .expect("cnt");
    let grant = |originator: &str| pb::CreateDynamicAcpRequest {
        originator: originator.into(),
        target: "cnt".into(),
        privileges: Some(pb::SetOfAcrs {
            rules: vec![pb::AccessControlRule {
                originators: vec!["CGuest".into()],
                operations: 2,
                ..Default::default()
            }],
        }),
        expires_at: Some(authz_proto::convert::timestamp_to_pb(
            &(chrono::Utc::now() + chrono::Duration::minutes(10)),
        )),
        ..Default::default()
    };
    client
        .create_dynamic_acp(grant("CPdp"))
        .await
        .expect("the flag's originator may store dynamic ACPs");
    let err = client
        .create_dynamic_acp(grant("CBob"))
        .await
        .expect_err("not named by the flag");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz"))
            .args(["prp", "--listen", "127.0.0.1:0", "--data-dir", "memory"])
            .args(["--dynamic-acp-originator", "all"]),
        HANG_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dynamic-acp-originator \"all\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prp_killed_with_sigkill_loses_no_acknowledged_write() {
    let data = tempdir("prp-kill");
    let (prp, url) = start_prp(data.path(), "127.0.0.1:0");
    let mut client = prp_client(&url).await;
    let mut acked = Vec::new();
    for i in 0..40 {
        let id = format!("acp{i}");
        let rev = create_acp_as(&mut client, "CAdmin", acp(&id, "Cx", 2))
            .await
            .expect("create")
            .into_inner()
            .revision;
        acked.push((id, rev));
    }
    drop(prp); // SIGKILL: no shutdown path runs.
    let (_prp, url) = start_prp(data.path(), "127.0.0.1:0");
    let mut client = prp_client(&url).await;
    let listed = client
        .list_acps(pb::ListAcpsRequest::default())
        .await
        .unwrap()
        .into_inner();
    for (id, _) in &acked {
        assert!(
            listed
                .acps
                .iter()
                .any(|a| a.resource_id.as_deref() == Some(id.as_str())),
            "{id} lost"
        );
    }
    assert!(
        listed.revision >= acked.last().unwrap().1,
        "revision went back"
    );
}

/// A PRP killed (SIGKILL) while it makes its new store file leaves a data
/// directory the next start opens: the file appears only once it is a
/// complete database. (It left a file without redb's magic number, which
/// every later start refused.) The next start also removes the file the
/// killed one was making it in.
#[cfg(unix)]
#[test]
fn a_prp_killed_while_making_its_store_starts_again() {
    use std::process::Stdio;
    let prp = |data: &Path, stdout: Stdio| {
        Command::new(env!("CARGO_BIN_EXE_authz"))
            .args([
                "prp",
                "--listen",
                "127.0.0.1:0",
                "--pip",
                "off",
                "--data-dir",
            ])
            .arg(data)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("run authz prp")
    };
    for attempt in 0..20 {
        let data = tempdir("prp-new-kill");
        let file = data.path().join("prp.redb");
        let mut child = prp(data.path(), Stdio::null());
        // Killed the moment the file appears.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !file.exists() && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        let _ = child.kill();
        let _ = child.wait();
        let mut again = prp(data.path(), Stdio::piped());
        let lines = lines_of(again.stdout.take().expect("stdout"));
        let served = lines_until(
            &lines,
            HANG_LIMIT,
            |l| l.contains("PRP on"),
            || {
                let _ = again.kill();
                format!("attempt {attempt}: the next start neither served nor ended")
            },
        )
        .is_ok();
        let _ = again.kill();
        // Killed: its stderr closes, so this ends.
        let out = again.wait_with_output().expect("output");
        assert!(
            served,
            "attempt {attempt}: the next start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The file the killed start was making its store in, when it
        // left one, was removed by the next (its process is gone).
        let left: Vec<_> = std::fs::read_dir(data.path())
            .expect("read data dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".prp.redb.new-"))
            .collect();
        assert!(left.is_empty(), "attempt {attempt}: left {left:?}");
    }
}

/// A store file with a damaged page (disk damage; redb panics reading
/// it) stops the start with exit 2 and an error naming the file, and the
/// file is left byte for byte as it was, for its operator to restore or
/// examine: no commit, no recovery flag written into it first.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_naming_it_and_left_as_it_was() {
    let data = tempdir("prp-damaged");
    let (mut prp, url) = start_up(data.path(), &[], &[]);
    // The demo policies are in the store.
    let mut client = prp_client(&url).await;
    assert!(
        !client
            .list_acps(pb::ListAcpsRequest::default())
            .await
            .expect("list")
            .into_inner()
            .acps
            .is_empty()
    );
    send_signal(&prp, "TERM");
    assert!(exit_within(&mut prp, Duration::from_secs(30)).success());
    let original = std::fs::read(data.path().join("prp.redb")).expect("read");
    let mut refused = 0;
    for page in 1..(original.len() / 4096).min(24) {
        let dir = tempdir("prp-damaged-copy");
        let file = dir.path().join("prp.redb");
        let mut bytes = original.clone();
        bytes[page * 4096..(page + 1) * 4096].fill(0);
        std::fs::write(&file, &bytes).expect("write");
        let child = Command::new(env!("CARGO_BIN_EXE_authz"))
            .args([
                "prp",
                "--listen",
                "127.0.0.1:0",
                "--pip",
                "off",
                "--data-dir",
            ])
            .arg(dir.path())
            .env("RUST_BACKTRACE", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run authz prp");
        // A start that reads the file whole serves: a page it does not use.
        let mut child = Proc(child);
        let exited = (0..50).find_map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            child.0.try_wait().expect("try_wait")
        });
        let Some(status) = exited else {
            continue;
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.0.stderr.take().expect("stderr"), &mut err)
            .expect("stderr");
        assert_eq!(status.code(), Some(2), "page {page}: {err}");
        assert!(
            err.contains(&file.display().to_string()),
            "page {page}: {err}"
        );
        assert!(
            std::fs::read(&file).expect("read") == bytes,
            "page {page}: the refused file changed: {err}"
        );
        refused += 1;
    }
    assert!(refused > 0, "no damaged page was noticed");
}

/// A PRP restored from a backup keeps its store ID, and once it has
/// written again its revision numbers name other changes than the ones a
/// PDP saw before the restore. The PDP resumes with the tag of its
/// revision, the PRP no longer has that change, and the PDP gets a
/// snapshot: it decides by the restored history, not by a mix of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdp_follows_a_prp_restored_from_a_backup_into_its_new_history() {
    let data = tempdir("prp-restore");
    let file = data.path().join("prp.redb");
    // Outside the data directory, as an operator's backup would be.
    let backups = tempdir("prp-restore-backup");
    let backup = backups.path().join("prp.redb");
    let (prp, prp_url) = start_prp(data.path(), "127.0.0.1:0");
    let port = port_of(&prp_url);
    let mut client = prp_client(&prp_url).await;
    let put_acp = |who: &'static str| pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: "CAdmin".into(),
        acp: Some(acp("acpDoor", who, 2)),
    };
    guest_may_read_the_door(&mut client).await;
    drop(prp);
    std::fs::copy(&file, &backup).expect("back up");

    // Revision 3 of the original history: Cthief may read.
    let (prp, prp_url) = start_prp(data.path(), &format!("127.0.0.1:{port}"));
    let (_pdp, mut pdp) = start_pdp_following(&prp_url).await;
    let thief = request("Cthief", "door", pb::Operation::Retrieve);
    let friend = request("Cfriend", "door", pb::Operation::Retrieve);
    prp_client(&prp_url)
        .await
        .update_acp(put_acp("Cthief"))
        .await
        .unwrap();
    eventually(&mut pdp, &thief, true).await;
    drop(prp);

    // The backup comes back and writes its own revision 3 (Cfriend) before
    // the PDP reconnects: on another port, so the PDP cannot see it yet.
    std::fs::copy(&backup, &file).expect("restore");
    let (restored, restored_url) = start_prp(data.path(), "127.0.0.1:0");
    let rev = prp_client(&restored_url)
        .await
        .update_acp(put_acp("Cfriend"))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(rev, 3, "the restored store reuses revision 3");
    drop(restored);

    let (_prp, _) = start_prp(data.path(), &format!("127.0.0.1:{port}"));
    eventually(&mut pdp, &friend, true).await;
    let d = decide(&mut pdp, thief).await;
    assert!(
        !is_permit(&d),
        "a change of the lost history: {}",
        d.summary
    );
    let s = pdp.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(s.replica_revision, 3);
}

/// A store larger than one part of a Watch snapshot (4 MiB) reaches a PDP
/// in parts, which it applies together: the PDP holds every ACP and decides
/// by them. Each record is bounded (1 MiB encoded), so no writer can make
/// one message a PDP cannot decode (256 MiB) and stop it from following.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_larger_than_a_snapshot_part_reaches_the_pdp() {
    let data = tempdir("parts");
    let (_prp, prp_url) = start_prp(data.path(), "127.0.0.1:0");
    let mut client = prp_client(&prp_url).await;
    let labelled = |id: &str| {
        let mut a = acp(id, "Cguest", 2);
        a.labels = vec!["l".repeat(1000); 900];
        a
    };
    for i in 0..6 {
        create_acp_as(&mut client, "CAdmin", labelled(&format!("acpBig{i}")))
            .await
            .expect("a 900 KB ACP");
    }
    let mut too_large = labelled("acpHuge");
    too_large.labels = vec!["l".repeat(1000); 1100];
    let err = create_acp_as(&mut client, "CAdmin", too_large)
        .await
        .expect_err("a record over 1 MiB");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("1 MiB"), "{err:?}");
    put_resource_as(&mut client, "CAdmin", resource("door", &["acpBig5"]))
        .await
        .expect("door");

    // The snapshot comes in more than one part.
    let mut watch = client
        .watch(pb::WatchRequest {
            from_revision: 0,
            from_tag: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut parts = 0;
    loop {
        let ev = within(watch.message(), HANG_LIMIT, || "a snapshot part".into())
            .await
            .expect("event")
            .expect("open");
        let Some(pb::watch_event::Event::Snapshot(s)) = ev.event else {
            panic!("a snapshot first: {ev:?}");
        };
        parts += 1;
        if !s.continued {
            break;
        }
    }
    assert!(parts >= 2, "{parts} part(s)");

    let (_pdp, mut pdp) = start_pdp_following(&prp_url).await;
    let guest = request("Cguest", "door", pb::Operation::Retrieve);
    eventually(&mut pdp, &guest, true).await;
    let status = pdp
        .status(pb::StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!((status.acps, status.resources), (6, 1), "{status:?}");
}

/// Decision 3 at the PRP: a write by anyone but the admin asks the PIP
/// which `acor` entries are `<group>`s. A PIP holding more groups than a
/// 4 MiB answer lists (tonic's default limit) is still read, so such
/// writes still go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prp_reads_a_group_listing_larger_than_4_mib() {
    let (_pip, pip_url) = start_pip_in_memory();
    let mut pip = PolicyInformationPointClient::new(channel(&pip_url).await);
    // 2 300 groups of 1 900-byte IDs: a 4.4 MB listing.
    for i in 0..2_300 {
        pip.put_group(pb::PutGroupRequest {
            originator: "CAdmin".into(),
            group: Some(pb::Group {
                group_id: format!("grp{i:05}{}", "g".repeat(1_900)),
                member_ids: vec!["Cmember".into()],
            }),
        })
        .await
        .expect("put group");
    }
    let data = tempdir("prp-groups");
    let (_prp, prp_url) = start(
        &[
            "prp",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--pip",
            &pip_url,
        ],
        "PRP on",
    );
    let mut prp = prp_client(&prp_url).await;
    create_acp_as(&mut prp, "CAdmin", acp("acpW", "Cwriter", 63))
        .await
        .expect("acpW");
    let mut cb = resource("cb", &["acpW"]);
    cb.resource_type = 5;
    put_resource_as(&mut prp, "CAdmin", cb).await.expect("cb");
    let mut own = acp("acpOwn", "Cwriter", 2);
    own.parent_id = Some("cb".into());
    create_acp_as(&mut prp, "Cwriter", own)
        .await
        .expect("a write by Cwriter, judged with the PIP's groups");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdp_decides_while_the_prp_is_down_and_catches_up_after() {
    let data = tempdir("prp-down");
    let (prp, prp_url) = start_prp(data.path(), "127.0.0.1:0");
    let port = port_of(&prp_url);
    let mut client = prp_client(&prp_url).await;
    guest_may_read_the_door(&mut client).await;
    let (_pdp, mut pdp) = start_pdp_following(&prp_url).await;
    let guest_reads = request("Cguest", "door", pb::Operation::Retrieve);
    eventually(&mut pdp, &guest_reads, true).await;

    drop(prp);
    // Still deciding with the last replica; the status reports the outage.
    for _ in 0..20 {
        assert!(is_permit(&decide(&mut pdp, guest_reads.clone()).await));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pdp.status(pb::StatusRequest {}).await.unwrap().into_inner();
        if !s.prp_connected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the PRP down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The PRP comes back on the same port with its durable store; a change
    // made there reaches the PDP.
    let (_prp, prp_url) = start_prp(data.path(), &format!("127.0.0.1:{port}"));
    let mut client = prp_client(&prp_url).await;
    client
        .update_acp(pb::UpdateAcpRequest {
            role_ids: Vec::new(),
            originator: "CAdmin".into(),
            acp: Some(acp("acpDoor", "Cguest", 0)),
        })
        .await
        .unwrap();
    eventually(&mut pdp, &guest_reads, false).await;
    let s = pdp.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert!(s.prp_connected);
}

/// `authz policy list` prints a store larger than gRPC's default 4 MiB
/// message: the PRP takes writes of up to that each, so two of them
/// already exceed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_list_prints_a_store_larger_than_4_mib() {
    let data = tempdir("list-large");
    let (_prp, url) = start_prp(data.path(), "127.0.0.1:0");
    let mut prp = prp_client(&url).await;
    // Year lists of 0.9 MB each (a record is at most 1 MiB): every year
    // from 2000, over and over.
    let years = vec!["2000-9999"; 90_000].join(",");
    for id in [
        "acpBig1", "acpBig2", "acpBig3", "acpBig4", "acpBig5", "acpBig6",
    ] {
        let mut big = acp(id, "Cguest", 2);
        if let Some(rule) = big.privileges.as_mut().and_then(|p| p.rules.first_mut()) {
            rule.contexts = vec![pb::AccessControlContext {
                time_windows: vec![format!("* * * * * * {years}")],
                ..Default::default()
            }];
        }
        create_acp_as(&mut prp, "CAdmin", big)
            .await
            .expect("a 0.9 MB ACP");
    }
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args(["policy", "--prp", &url, "list"]),
        HANG_LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(out.stdout.len() > 5_000_000, "{}", out.stdout.len());
    let listed = String::from_utf8_lossy(&out.stdout);
    for i in 1..=6 {
        assert_eq!(
            listed.matches(&format!("\"acpBig{i}\"")).count(),
            1,
            "acpBig{i} once"
        );
    }
    // The PRP sent it in pages of about 4 MiB, in ID order.
    let first = prp
        .list_acps(pb::ListAcpsRequest::default())
        .await
        .expect("first page")
        .into_inner();
    assert!(!first.next_page_token.is_empty(), "more than one page");
    let second = prp
        .list_acps(pb::ListAcpsRequest {
            page_token: first.next_page_token.clone(),
        })
        .await
        .expect("second page")
        .into_inner();
    let ids: Vec<String> = first
        .acps
        .iter()
        .chain(&second.acps)
        .filter_map(|a| a.resource_id.clone())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "in ID order, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_apply_rejects_an_invalid_file_naming_the_field() {
    let data = tempdir("apply");
    let (_prp, url) = start_prp(data.path(), "127.0.0.1:0");
    // Applies `body` as a file named `name`: exit code and stderr.
    let apply = |name: &str, body: &str| {
        let file = data.path().join(name);
        std::fs::write(&file, body).unwrap();
        let out = run_within(
            Command::new(env!("CARGO_BIN_EXE_authz"))
                .args(["policy", "--prp", &url, "apply", "-f"])
                .arg(&file),
            HANG_LIMIT,
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let stored = || async {
        prp_client(&url)
            .await
            .list_acps(pb::ListAcpsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .acps
    };

    let (code, err) = apply(
        "bad.json",
        r#"{"m2m:acp": {"ri": "a", "pv": {"acr": [{"acor": ["all"], "acop": 2, "acco": [{"acip": {"ipv4": ["300.1.1.1"]}}]}]}, "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}"#,
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("pv.acr[0].acco[0].acip.ipv4[0]"), "{err}");
    assert!(stored().await.is_empty(), "nothing may be stored");

    // A bundle whose second ACP would be created without pvs (TS-0004
    // 7.4.2.2.1): refused before its first write, naming the file, the
    // entry and the field; the first ACP is not stored either.
    let (code, err) = apply(
        "half.json",
        r#"{"acps": [
            {"m2m:acp": {"ri": "acpOk", "pv": {"acr": [{"acor": ["Cx"], "acop": 2}]}, "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}},
            {"m2m:acp": {"ri": "acpNoPvs", "pv": {"acr": [{"acor": ["Cx"], "acop": 2}]}}}
        ]}"#,
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("half.json"), "{err}");
    assert!(err.contains("acps[1] (acpNoPvs).pvs"), "{err}");
    let acps = stored().await;
    assert!(acps.is_empty(), "nothing may be stored: {acps:?}");

    // A misspelled `acpi` would leave the resource under the default
    // policy (TS-0003 7.1.1): refused, naming it, nothing stored.
    let (code, err) = apply(
        "typo.json",
        r#"{"acps": [{"m2m:acp": {"ri": "acpOk", "pv": {"acr": [{"acor": ["Cx"], "acop": 2}]}, "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}],
            "resources": [{"ri": "w", "ty": 3, "acpii": ["acpOk"]}]}"#,
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("resources[0]") && err.contains("acpii"),
        "{err}"
    );
    let acps = stored().await;
    assert!(acps.is_empty(), "nothing may be stored: {acps:?}");

    // What the file alone tells is found before the first write too: a
    // number protobuf cannot carry exactly, and an update that would leave
    // an ACP without selfPrivileges (TS-0004 7.4.2.2.3).
    const OK: &str = r#"{"m2m:acp": {"ri": "acpOk", "pv": {"acr": [{"acor": ["Cx"], "acop": 2}]}, "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}"#;
    let (code, err) = apply(
        "big.json",
        &format!(
            r#"{{"acps": [{OK}, {{"m2m:acp": {{"ri": "acpBig", "xbig": 9007199254740993, "pv": {{"acr": [{{"acor": ["Cx"], "acop": 2}}]}}, "pvs": {{"acr": [{{"acor": ["CAdmin"], "acop": 63}}]}}}}}}]}}"#
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("acps[1] (acpBig).xbig"), "{err}");
    assert!(stored().await.is_empty(), "nothing may be stored");
    let (code, err) = apply(
        "first.json",
        r#"{"m2m:acp": {"ri": "acpKept", "pv": {"acr": [{"acor": ["Cx"], "acop": 2}]}, "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}"#,
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = apply(
        "nopvs.json",
        &format!(r#"{{"acps": [{OK}, {{"m2m:acp": {{"ri": "acpKept", "pvs": {{"acr": []}}}}}}]}}"#),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("acps[1] (acpKept).pvs.acr"), "{err}");
    let acps = stored().await;
    assert_eq!(acps.len(), 1, "only acpKept: {acps:?}");

    // A resource's `acpi` the PRP would refuse after the ACPs were written:
    // one ACP twice (the file's as written, the PRP's in two ID forms),
    // one in neither the file nor the PRP, one of another CSE. Refused
    // before the first write, each named; the file's new ACP is not
    // stored, an ACP of the PRP counts.
    let (code, err) = apply(
        "refs.json",
        &format!(
            r#"{{"acps": [{OK}], "resources": [
                {{"ri": "r1", "ty": 3, "acpi": ["acpOk", "acpOk"]}},
                {{"ri": "r2", "ty": 3, "acpi": ["acpKept", "acpNowhere", "/other-cse/acpKept",
                    "//home.example/mn-cse-123456/acpKept"]}}]}}"#
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    for named in [
        "resources[0] (r1).acpi[1]: acpOk is listed already, as acpi[0]",
        "resources[1] (r2).acpi[1]: acpNowhere names no ACP",
        "resources[1] (r2).acpi[2]: /other-cse/acpKept names no ACP",
        "resources[1] (r2).acpi[3]: //home.example/mn-cse-123456/acpKept is listed already, as acpi[0]",
    ] {
        assert!(err.contains(named), "{named}: {err}");
    }
    assert!(!err.contains("acpi[0]:"), "{err}");
    let acps = stored().await;
    assert_eq!(acps.len(), 1, "only acpKept: {acps:?}");
}

/// A reader that goes away (`authz check ... | head -c0`) ends the command
/// quietly with status 141, as SIGPIPE ends Unix tools, not with a panic.
#[test]
fn a_closed_stdout_ends_a_command_without_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let child = Command::new(env!("CARGO_BIN_EXE_authz"))
        .args(["check", "-p"])
        .arg(format!("{examples}/door-lock-acp.json"))
        .arg("-r")
        .arg(format!("{examples}/request-owner-update.json"))
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within(child, HANG_LIMIT, || {
        "authz check on a closed stdout still running".into()
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A bad file is reported (with its field) before the PRP is contacted, so
/// a PRP that is down does not hide it.
#[test]
fn policy_apply_reads_the_file_before_connecting() {
    let data = tempdir("apply-offline");
    let file = data.path().join("bad.json");
    std::fs::write(&file, r#"{"m2m:acp": {"ri": "a", "pv": {"acr": [{"acor": ["all"], "acop": 99}]}, "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}}}"#).unwrap();
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args([
            "policy",
            "--prp",
            "http://127.0.0.1:1",
            "apply",
            "-f",
            file.to_str().unwrap(),
        ]),
        HANG_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pv.acr[0].acop"), "{err}");
}

/// A server outlives a stdout that closes before its banner (`authz up |
/// head -0`): the banner is lost, the service is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_serves_when_its_stdout_is_closed() {
    let data = tempdir("up-closed-stdout");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_authz"))
        .args([
            "up",
            "--listen",
            &listen,
            "--metrics",
            "off",
            "--no-country-boundaries",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(writer)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut proc = Proc(child);
    let mut pdp = PolicyDecisionPointClient::new(channel(&format!("http://{listen}")).await);
    // The demo policies are loaded just before the banner is written.
    let owner = request("CownerPhone", "frontDoor", pb::Operation::Update);
    eventually(&mut pdp, &owner, true).await;
    // Written by now; a panic on it would have ended the process.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert!(proc.0.try_wait().unwrap().is_none(), "authz up ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(is_permit(&decide(&mut pdp, owner).await));
}

/// `--propagation` measures with an ACP and a resource of its own, and
/// removes both afterwards: they are not the operator's policies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_propagation_leaves_no_probe_behind() {
    let data = tempdir("loadtest-probe");
    let (_up, url) = start_up(data.path(), &[], &[]);
    let mut prp = prp_client(&url).await;
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            run_within(
                Command::new(env!("CARGO_BIN_EXE_authz"))
                    .args(["loadtest", "--target", &url, "--duration", "1"])
                    .args([
                        "--modes",
                        "echo",
                        "--concurrency",
                        "2",
                        "--connections",
                        "1",
                    ])
                    .args(["--propagation", "4"]),
                HANG_LIMIT,
            )
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("policy propagation over 4 changes"),
        "{stdout}"
    );
    let acps = prp
        .list_acps(pb::ListAcpsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .acps;
    assert!(!acps.is_empty(), "the demo policies stay");
    assert!(
        acps.iter()
            .all(|a| a.resource_id.as_deref() != Some("acpLoadtestProbe")),
        "{acps:?}"
    );
    let probe = prp
        .get_resource(pb::GetResourceRequest {
            resource_id: "loadtestProbe".into(),
        })
        .await;
    assert_eq!(probe.map(|_| ()).unwrap_err().code(), tonic::Code::NotFound);
}

/// What an operator meets at start: a metrics port in use names
/// `--metrics`; an OTLP endpoint that is no URL is refused before anything
/// starts, naming the variable; an empty `RUST_LOG` (as `Environment=RUST_LOG=`
/// sets it) logs at `info`, not errors only.
#[test]
fn start_up_errors_name_their_flag_and_an_empty_rust_log_means_info() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let pdp = |env: &[(&str, &str)], metrics: &str| {
        run_within(
            Command::new(env!("CARGO_BIN_EXE_authz"))
                .args(["pdp", "--listen", "127.0.0.1:0", "--pip", "off"])
                .args(["--prp", "http://127.0.0.1:1", "--metrics", metrics])
                .envs(env.iter().copied()),
            HANG_LIMIT,
        )
    };
    let out = pdp(&[], &addr);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("--metrics {addr}")), "{err}");
    for bad in ["notaurl", "ftp://collector.example"] {
        let out = pdp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", bad)], "off");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{err}");
    }
    // The signal's own endpoint, which the exporter sends to when it is
    // set, is checked the same way.
    let out = pdp(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "ftp://collector.example/v1/traces",
            ),
        ],
        "off",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "{err}");
    // A protocol OTLP does not have is refused, naming the variable, not
    // sent in a form the collector cannot read.
    for var in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ] {
        let out = pdp(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                (var, "http/xml"),
            ],
            "off",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        assert!(
            err.contains(var) && err.contains("not an OTLP protocol"),
            "{err}"
        );
    }
    // Empty RUST_LOG and OTEL_EXPORTER_OTLP_ENDPOINT: as if unset, so the
    // PDP starts, without export, and logs (here, its PRP is unreachable)
    // rather than staying silent.
    let (_pdp, _url, lines) = start_with_output(
        &[
            "pdp",
            "--listen",
            "127.0.0.1:0",
            "--pip",
            "off",
            "--metrics",
            "off",
            "--prp",
            "http://127.0.0.1:1",
        ],
        &[("RUST_LOG", ""), ("OTEL_EXPORTER_OTLP_ENDPOINT", "")],
        "PDP on",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let logged = loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("PRP watch failed") => break Some(line),
            _ if Instant::now() > deadline => break None,
            _ => {}
        }
    };
    let line = logged.expect("a WARN line with an empty RUST_LOG");
    // Each cause once (it used to read "tcp connect error: tcp connect error").
    assert!(
        !line.contains("tcp connect error: tcp connect error"),
        "{line}"
    );
}

/// A collector that cannot be reached is said once, not for every batch
/// of spans (every 100 ms here: the SDK logged an error each time), and
/// the service goes on deciding.
#[test]
fn an_unreachable_collector_is_said_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let collector = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let data = tempdir("otlp-down");
    let (_up, url, lines) = common::start_up_with_output(
        data.path(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut pdp = authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient::new(
            common::channel(&url).await,
        );
        let owner = common::request("CownerPhone", "frontDoor", pb::Operation::Retrieve);
        common::eventually(&mut pdp, &owner, true).await;
        // Spans for many batches over two seconds.
        for _ in 0..20 {
            pdp.decide(owner.clone()).await.expect("decided");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let logged: Vec<String> = lines.try_iter().collect();
    let failed = logged
        .iter()
        .filter(|l| l.contains("trace export failed") || l.contains("ExportError"))
        .count();
    assert_eq!(failed, 1, "{logged:#?}");
}

/// A start refused for a `--listen` port in use writes nothing: the data
/// directory is not even made (README: flags are checked before anything
/// starts). And `--metrics` on `--listen`'s own address blames `--metrics`.
#[test]
fn a_busy_port_refuses_the_start_before_any_store_is_made() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr").to_string();
    let data = tempdir("busy-port");
    let das_config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/das/door-lock-das.json");
    let das_config = das_config.to_str().unwrap();
    for (i, command) in [
        vec!["up", "--metrics", "off", "--no-country-boundaries"],
        vec!["prp"],
        vec!["pip", "--no-country-boundaries"],
        vec!["das", "--config", das_config],
    ]
    .into_iter()
    .enumerate()
    {
        let dir = data.path().join(format!("d{i}"));
        let out = run_within(
            Command::new(env!("CARGO_BIN_EXE_authz"))
                .args(&command)
                .args(["--listen", &busy, "--data-dir", dir.to_str().unwrap()]),
            HANG_LIMIT,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {err}");
        assert!(err.contains(&format!("--listen {busy}")), "{err}");
        assert!(!dir.exists(), "{command:?} made {}", dir.display());
    }
    // The same address for both: the gRPC port is bound first, so the
    // metrics listener is the one refused, and named.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr").to_string();
    drop(free);
    let dir = data.path().join("same");
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz"))
            .args(["up", "--no-country-boundaries", "--listen", &addr])
            .args(["--metrics", &addr, "--data-dir", dir.to_str().unwrap()]),
        HANG_LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("--metrics {addr}")), "{err}");
    assert!(!dir.exists(), "made {}", dir.display());

    // A country file that cannot be read is named by its flag, before the
    // data directory is made.
    for (i, command) in [vec!["up", "--metrics", "off"], vec!["pip"]]
        .iter()
        .enumerate()
    {
        for (flag, file) in [("--ip-csv", "no-such.csv"), ("--ip-mmdb", "no-such.mmdb")] {
            let dir = data.path().join(format!("geo{i}{flag}"));
            let missing = data.path().join(file);
            let out = run_within(
                Command::new(env!("CARGO_BIN_EXE_authz"))
                    .args(command)
                    .args(["--no-country-boundaries", "--listen", "127.0.0.1:0", flag])
                    .arg(&missing)
                    .args(["--data-dir", dir.to_str().unwrap()]),
                HANG_LIMIT,
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command:?} {flag}: {err}");
            assert!(err.contains(&format!("{flag}: ")), "{err}");
            assert!(!dir.exists(), "{command:?} {flag} made {}", dir.display());
        }
    }
}

/// `authz up --data-dir memory` keeps its stores in memory, as `prp`, `pip`
/// and `das` do with that word: the demo is served, and no directory
/// named `memory` is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_data_dir_memory_keeps_no_files() {
    let (_up, url, lines) = start_with_output(
        &[
            "up",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "off",
            "--no-country-boundaries",
            "--data-dir",
            "memory",
        ],
        &[],
        "gRPC",
    );
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    let owner = request("CownerPhone", "frontDoor", pb::Operation::Update);
    eventually(&mut pdp, &owner, true).await;
    let store = loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("store") => break line,
            Ok(_) => {}
            Err(e) => panic!("no store line: {e}"),
        }
    };
    assert!(store.contains("memory (volatile"), "{store}");
    let cwd = std::env::current_dir().expect("cwd");
    assert!(!cwd.join("memory").exists(), "{}", cwd.display());
}

/// A client pointed at another service is told so, not an empty
/// `Unimplemented: `: `policy` at a PRP-less PIP, `decide` at a PRP.
#[test]
fn a_client_at_the_wrong_service_is_told_so() {
    let (_pip, pip) = start_pip_in_memory();
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args(["policy", "--prp", &pip, "list"]),
        HANG_LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("does not serve this call"), "{err}");

    let (_prp, prp) = start(
        &["prp", "--listen", "127.0.0.1:0", "--data-dir", "memory"],
        "PRP on",
    );
    let request =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/request-owner-update.json");
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args([
            "decide",
            "--pdp",
            &prp,
            "--request",
            request.to_str().unwrap(),
        ]),
        HANG_LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not serve this call"), "{err}");

    // The load test too, and a bad request file is named.
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args([
            "loadtest",
            "--target",
            &prp,
            "--duration",
            "1",
        ]),
        HANG_LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("does not serve this call"), "{err}");
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad-request.json");
    std::fs::write(&bad, r#"{"fr": "", "to": "x", "op": 2}"#).expect("write");
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz"))
            .args(["loadtest", "--target", &prp, "--request"])
            .arg(&bad),
        HANG_LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("bad-request.json: fr:"), "{err}");

    // A PDP whose --prp is a PIP logs what its failing watch means.
    let (_pdp, _url, lines) = start_with_output(
        &[
            "pdp",
            "--listen",
            "127.0.0.1:0",
            "--prp",
            &pip,
            "--pip",
            "off",
            "--metrics",
            "off",
        ],
        &[],
        "PDP on",
    );
    let failed = loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("PRP watch failed") => break line,
            Ok(_) => {}
            Err(e) => panic!("no failed watch logged: {e}"),
        }
    };
    assert!(failed.contains("does not serve this call"), "{failed}");
}

/// A flag out of range is a clear error with exit code 2, not a panic
/// (a `--duration` past what a deadline can hold overflowed before).
#[test]
fn loadtest_rejects_an_out_of_range_duration() {
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args([
            "loadtest",
            "--duration",
            "18446744073709551615",
        ]),
        HANG_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--duration"), "{err}");
    // Zero callers, connections or requests per call would run nothing.
    for flag in ["--concurrency", "--connections", "--batch", "--window"] {
        let out = run_within(
            Command::new(env!("CARGO_BIN_EXE_authz")).args(["loadtest", flag, "0"]),
            HANG_LIMIT,
        );
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        let says = if flag == "--connections" {
            "not in 1..=1000"
        } else {
            "not in 1..=10000"
        };
        assert!(err.contains(flag) && err.contains(says), "{err}");
    }
    // Each caller keeps a latency histogram (about 160 KB): a count past
    // the bound is refused before any is made, not an out-of-memory kill.
    for (flag, value) in [
        ("--concurrency", "10001"),
        ("--connections", "1001"),
        ("--window", "10001"),
        ("--concurrency", "100000000"),
    ] {
        let out = run_within(
            Command::new(env!("CARGO_BIN_EXE_authz")).args(["loadtest", flag, value]),
            HANG_LIMIT,
        );
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{err}");
    }
    // Each caller holds its batch: 10 000 at most, not a gigabyte of
    // requests the PDP refuses anyway (4 MiB per call).
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args(["loadtest", "--batch", "10001"]),
        HANG_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch"));
    // An --originator that is no originator ID is named before anything
    // is asked (it used to surface as the PRP's `resources[0].cr`).
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz"))
            .args(["loadtest", "--propagation", "10", "--originator", "all"])
            .args(["--target", "http://127.0.0.1:1"]),
        HANG_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--originator \"all\""), "{err}");
}

/// `authz up --das-config`: the DAS runs in the same process; a denied
/// request with the token request indicator is told where to get tokens
/// (TS-0003 7.3.2.3 step 2), and the DAS there answers with its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_with_a_das_names_it_in_token_request_information() {
    let data = tempdir("up-das");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/das/door-lock-das.json");
    let (_up, url) = start_up(
        data.path(),
        &["--das-config", config.to_str().unwrap()],
        &[],
    );
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    let owner = request("CownerPhone", "frontDoor", pb::Operation::Update);
    eventually(&mut pdp, &owner, true).await;
    let mut guest = request("Cguest", "frontDoor", pb::Operation::Update);
    guest.token_request_indicator = true;
    let d = decide(&mut pdp, guest).await;
    assert!(!is_permit(&d));
    let tqf = d.token_request_info.expect("tqf");
    assert_eq!(tqf.das_info[0].uri, url.trim_end_matches('/'));
    let mut das = pb::dynamic_authorization_server_client::DynamicAuthorizationServerClient::new(
        channel(&url).await,
    );
    let keys = das
        .get_key_set(pb::GetKeySetRequest {})
        .await
        .expect("key set")
        .into_inner();
    assert_eq!(keys.issuer, "//home.example/mn-cse-123456/CDas");
    assert!(!keys.keys.is_empty());
}

/// Sends `signal` (`TERM`, `INT`) to the process with `kill`.
#[cfg(unix)]
fn send_signal(proc: &Proc, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), proc.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
}

/// Waits up to `limit` for the process to exit; its exit status.
#[cfg(unix)]
fn exit_within(proc: &mut Proc, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = proc.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A SIGTERM while `authz up` is still starting (loading the demo into a
/// fresh store, waiting for its PDP's first snapshot) ends it as one later
/// does: exit status 0, no error about its own PRP refusing the load, no
/// banner. It waited 30 s for a snapshot that could no longer come, or
/// failed the load with "cannot connect to the PRP", exit 2. The signal is
/// sent at several points of the start; one that comes before the process
/// has set up its handler kills it, which says nothing, and is skipped.
#[cfg(unix)]
#[test]
fn a_sigterm_while_up_is_starting_ends_it_cleanly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    for (i, delay_ms) in [5u64, 10, 20, 30, 50, 80, 150, 300].into_iter().enumerate() {
        let data = tempdir(&format!("early-sigterm-{i}"));
        let up = Command::new(env!("CARGO_BIN_EXE_authz"))
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "off",
                "--data-dir",
            ])
            .arg(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run authz up");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let sent = Command::new("kill")
            .args(["-TERM", &up.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        // A bound on a hang (the defect waited 30 s), not a speed check.
        let out = output_within(up, Duration::from_secs(20), || {
            format!("authz up still running 20 s after a SIGTERM sent {delay_ms} ms in")
        });
        if out.status.signal() == Some(15) {
            continue;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "SIGTERM {delay_ms} ms in: {} {err}",
            out.status
        );
        assert!(!err.contains("error"), "SIGTERM {delay_ms} ms in: {err}");
    }
}

/// SIGTERM (`docker stop`, `systemctl stop`, Kubernetes) ends every server
/// subcommand through its shutdown path: exit status 0, not death by the
/// signal.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_ends_cleanly_on_sigterm() {
    let data = tempdir("sigterm");
    let das_config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/das/door-lock-das.json");
    let das_config = das_config.to_str().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let servers: [(&[&str], &str); 5] = [
        (
            &[
                "up",
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "off",
                "--no-country-boundaries",
                "--data-dir",
                data_dir,
            ],
            "gRPC",
        ),
        (
            &["prp", "--listen", "127.0.0.1:0", "--data-dir", "memory"],
            "PRP on",
        ),
        (
            &[
                "pip",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "memory",
                "--no-country-boundaries",
            ],
            "PIP on",
        ),
        (
            &[
                "pdp",
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "off",
                "--prp",
                "http://127.0.0.1:1",
                "--pip",
                "off",
            ],
            "PDP on",
        ),
        (
            &[
                "das",
                "--config",
                das_config,
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "memory",
            ],
            "DAS",
        ),
    ];
    for (args, marker) in servers {
        let (mut proc, url) = start(args, marker);
        // Serving: a connection is accepted.
        drop(channel(&url).await);
        send_signal(&proc, "TERM");
        let status = exit_within(&mut proc, Duration::from_secs(30));
        assert!(status.success(), "authz {args:?} on SIGTERM: {status}");
    }
}

/// A clean stop is no failure: `authz up` stops its PDP following the PRP
/// and PIP before it closes them, so no warning is logged (operators alert
/// on warnings, and every `docker stop` would fire one).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_stops_without_a_warning() {
    let data = tempdir("sigterm-quiet");
    let (mut proc, url, output) = start_up_with_output(data.path(), &[], &[]);
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    // Followed and serving: the demo's owner is permitted.
    let owner = request("CownerPhone", "frontDoor", pb::Operation::Update);
    eventually(&mut pdp, &owner, true).await;
    drop(pdp);
    send_signal(&proc, "TERM");
    let status = exit_within(&mut proc, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    // The process has exited: its stdout is closed, so this ends.
    let logged: Vec<String> = output.iter().collect();
    let warnings: Vec<&String> = logged.iter().filter(|l| l.contains("WARN")).collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

/// README: a PEP that keeps the reasons of a Deny from the originator
/// shows only the decision ID, which finds the PDP's account of it in its
/// log (`RUST_LOG=authz_pdp::decision=debug`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_id_finds_the_decision_in_the_pdp_log() {
    let data = tempdir("decision-log");
    let (_up, url, output) = start_up_with_output(
        data.path(),
        &["--no-country-boundaries"],
        &[("RUST_LOG", "warn,authz_pdp::decision=debug")],
    );
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    let owner = request("CownerPhone", "frontDoor", pb::Operation::Update);
    eventually(&mut pdp, &owner, true).await;
    // The lock's rule names it, without DELETE (the demo's policies).
    let denied = decide(
        &mut pdp,
        request("Clock-AE1", "frontDoor", pb::Operation::Delete),
    )
    .await;
    assert!(!is_permit(&denied), "{}", denied.summary);
    let id = denied.decision_id.clone();
    assert!(!id.is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match output.recv_timeout(left) {
            Ok(line) if line.contains(&id) => break line,
            Ok(_) => {}
            Err(e) => panic!("no log line with decision {id}: {e}"),
        }
    };
    assert!(line.contains("DENY"), "{line}");
    assert!(line.contains(&denied.summary), "{line}");
}

/// An open DecideStream (the PEP SDK keeps one) does not hold the shutdown
/// up: after SIGTERM the server waits a bounded drain, then cuts the
/// stream and exits with 0.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_ends_on_sigterm_with_an_open_decide_stream() {
    let data = tempdir("sigterm-stream");
    let (mut up, url, log) = start_up_with_output(data.path(), &["--no-country-boundaries"], &[]);
    let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
    let (requests, rx) = tokio::sync::mpsc::channel(4);
    requests
        .send(request("CownerPhone", "frontDoor", pb::Operation::Update))
        .await
        .unwrap();
    let mut answers = pdp
        .decide_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("DecideStream")
        .into_inner();
    within(answers.message(), HANG_LIMIT, || {
        "the stream's first answer".into()
    })
    .await
    .expect("an answer")
    .expect("open");
    // The stream stays open from this side: `requests` is held, and no
    // request is outstanding.
    send_signal(&up, "TERM");
    // The server ends the stream (hang guard: without the drain it would
    // stay open for ever).
    let end = tokio::time::timeout(Duration::from_secs(30), answers.message())
        .await
        .expect("the stream ends after SIGTERM");
    assert!(
        !matches!(end, Ok(Some(_))),
        "no answer to an unsent request: {end:?}"
    );
    let status = exit_within(&mut up, Duration::from_secs(30));
    assert!(status.success(), "on SIGTERM: {status}");
    // Ended by the drain running out, not by the stream finishing: the
    // server says it cut the connection it was still waiting for.
    let printed: Vec<String> =
        std::iter::from_fn(|| log.recv_timeout(Duration::from_secs(10)).ok()).collect();
    assert!(
        printed
            .iter()
            .any(|l| l.contains("connections still open after") && l.contains("were cut")),
        "{printed:#?}"
    );
    drop(requests);
}

/// A store that cannot be opened (here: locked by a running PRP, as when
/// `authz up` and `authz prp` both use `./data`) is an error naming the file
/// and the flag that chose it.
#[test]
fn a_second_prp_on_the_same_data_dir_names_the_file_and_the_flag() {
    let data = tempdir("prp-locked");
    let (_prp, _url) = start_prp(data.path(), "127.0.0.1:0");
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz"))
            .args(["prp", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("RUST_LOG", "off"),
        HANG_LIMIT,
    );
    refused_for_its_store(&out, data.path(), "prp.redb", "PRP on");
}

/// `out` is a start refused for want of the store `file` in `data`: exit 2,
/// the error naming the file and the flag, and never `banner` (it never
/// said it serves).
fn refused_for_its_store(out: &std::process::Output, data: &Path, file: &str, banner: &str) {
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--data-dir {}", data.display())),
        "{err}"
    );
    assert!(
        err.contains(&data.join(file).display().to_string()),
        "{err}"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains(banner), "{said}");
}

/// The same for the DAS, whose token store (`das.redb`) is opened before
/// it prints that it serves: it used to print its banner first.
#[test]
fn a_second_das_on_the_same_data_dir_never_says_it_serves() {
    let data = tempdir("das-locked");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/das/door-lock-das.json");
    let das_args = |listen: &str| -> Vec<String> {
        vec![
            "das".into(),
            "--config".into(),
            config.display().to_string(),
            "--listen".into(),
            listen.into(),
            "--data-dir".into(),
            data.path().display().to_string(),
        ]
    };
    let first = das_args("127.0.0.1:0");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let (_das, _url) = start(&first, "DAS //");
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz"))
            .args(das_args("127.0.0.1:0"))
            .env("RUST_LOG", "off"),
        HANG_LIMIT,
    );
    refused_for_its_store(&out, data.path(), "das.redb", "DAS //");
}

/// An unknown `--modes` entry is refused when the flags are read, before
/// any mode runs (it was refused only when its turn came).
#[test]
fn loadtest_rejects_an_unknown_mode_before_running_any() {
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args([
            "loadtest",
            "--target",
            "http://127.0.0.1:1",
            "--modes",
            "unary,bach",
        ]),
        HANG_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--modes") && err.contains("bach"), "{err}");
}

/// A `--target` that is not a URI is named with its flag and value.
#[test]
fn loadtest_names_a_target_that_is_not_a_uri() {
    let out = run_within(
        Command::new(env!("CARGO_BIN_EXE_authz")).args(["loadtest", "--target", "127.0.0.1 7171"]),
        HANG_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--target 127.0.0.1 7171: not a URI"), "{err}");
}

/// Decision 3 at the PRP, as at the PDP: an `acor` entry that the PIP knows
/// as a `<group>` is that group. `authz up` authorizes writes with its
/// PIP's groups: a member of the group may change an ACP whose pvs names
/// the group, and an originator whose ID is spelled like the group's may
/// not (it used to be the other way round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prp_writes_by_a_group_are_its_members_decision_3() {
    let data = tempdir("prp-groups");
    let (_up, url) = start_up(data.path(), &["--no-demo"], &[]);
    let mut pip = PolicyInformationPointClient::new(channel(&url).await);
    pip.put_group(pb::PutGroupRequest {
        originator: "CAdmin".into(),
        group: Some(pb::Group {
            group_id: "grpFam".into(),
            member_ids: vec!["Cmom".into()],
        }),
    })
    .await
    .expect("put group");
    let mut prp = prp_client(&url).await;
    let by_the_group = |acop: u32| {
        acp_json(&format!(
            r#"{{"ri": "acpG", "pv": {{"acr": [{{"acor": ["grpFam"], "acop": {acop}}}]}},
                "pvs": {{"acr": [{{"acor": ["grpFam"], "acop": 63}}]}}}}"#
        ))
    };
    create_acp_as(&mut prp, "CAdmin", by_the_group(2))
        .await
        .expect("the admin creates acpG");
    let update = |who: &str, acop: u32| pb::UpdateAcpRequest {
        role_ids: Vec::new(),
        originator: who.into(),
        acp: Some(by_the_group(acop)),
    };
    let e = prp
        .update_acp(update("grpFam", 63))
        .await
        .expect_err("an AE spelled like the group");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    prp.update_acp(update("Cmom", 6))
        .await
        .expect("a member of the group (UPDATE in pvs)");
    let e = prp
        .update_acp(update("Cstranger", 63))
        .await
        .expect_err("no member");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
}

/// TS-0003 7.4.3 at the PRP: a write may claim Role-IDs, and a rule naming
/// one grants the write when the PIP verifies it for the writer (a trusted
/// issuer, the writer as holder, valid now); an unclaimed, a foreign or an
/// expired role grants nothing. `authz policy --role-id` carries the claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prp_writes_count_the_roles_the_pip_verifies_7_4_3() {
    const ISSUER: &str = "//roles.home.example/CAuthority";
    const EDITOR: &str = "editor@roles.home.example";
    let data = tempdir("prp-roles");
    let (_up, url) = start_up(data.path(), &["--no-demo", "--trusted-issuer", ISSUER], &[]);
    let mut pip = PolicyInformationPointClient::new(channel(&url).await);
    let now = chrono::Utc::now();
    let ts = |t: chrono::DateTime<chrono::Utc>| Some(authz_proto::convert::timestamp_to_pb(&t));
    for (holder, from, to) in [
        (
            "Cmom",
            now - chrono::Duration::hours(1),
            now + chrono::Duration::hours(1),
        ),
        (
            "Cdad",
            now - chrono::Duration::hours(2),
            now - chrono::Duration::hours(1),
        ),
    ] {
        pip.create_role(pb::CreateRoleRequest {
            originator: "CAdmin".into(),
            role: Some(pb::Role {
                role_id: EDITOR.into(),
                issuer: ISSUER.into(),
                holder: holder.into(),
                not_before: ts(from),
                not_after: ts(to),
                ..Default::default()
            }),
        })
        .await
        .unwrap_or_else(|e| panic!("role of {holder}: {e:?}"));
    }
    let mut prp = prp_client(&url).await;
    let acp = |acop: u32| {
        acp_json(&format!(
            r#"{{"ri": "acpR", "pv": {{"acr": [{{"acor": ["CAdmin"], "acop": {acop}}}]}},
                "pvs": {{"acr": [{{"acor": ["{EDITOR}"], "acop": 63}}]}}}}"#
        ))
    };
    prp.create_acp(pb::CreateAcpRequest {
        originator: "CAdmin".into(),
        acp: Some(acp(2)),
        role_ids: Vec::new(),
    })
    .await
    .expect("the admin creates acpR");
    let update = |who: &str, roles: &[&str]| pb::UpdateAcpRequest {
        originator: who.into(),
        acp: Some(acp(6)),
        role_ids: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    for (who, roles, why) in [
        ("Cmom", &[][..], "the role not claimed"),
        ("Cdad", &[EDITOR][..], "an expired role"),
        ("Cstranger", &[EDITOR][..], "a role of others"),
    ] {
        let e = prp.update_acp(update(who, roles)).await.expect_err(why);
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{why}: {e:?}");
    }
    prp.update_acp(update("Cmom", &[EDITOR]))
        .await
        .expect("the holder of a valid role claims it");

    // The CLI carries the claim (`--role-id`, repeatable).
    let policy = |roles: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_authz"));
        cmd.args(["policy", "--prp", &url, "--originator", "Cmom"]);
        for r in roles {
            cmd.args(["--role-id", r]);
        }
        run_within(cmd.args(["delete", "acpR"]), HANG_LIMIT)
    };
    let out = policy(&[]);
    assert_eq!(out.status.code(), Some(2), "without the role");
    let out = policy(&["not a role id"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--role-id"));
    let out = policy(&[EDITOR]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A service that stalls (here SIGSTOP) while its client's calls time out
/// gets their streams reset before it accepted them. Past h2's default of
/// 20 such resets it would end the whole connection, taking a PDP's
/// attribute watch on it along; the services allow 1 024
/// (`MAX_PENDING_ACCEPT_RESET_STREAMS`), so the watch lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_pip_keeps_the_connection_whose_calls_timed_out() {
    use authz_proto::pb::policy_information_point_client::PolicyInformationPointClient;
    let (pip, url) = start_pip_in_memory();
    let pid = pip.0.id();
    let mut client = PolicyInformationPointClient::new(channel(&url).await);
    let mut watch = client
        .watch(pb::WatchAttributesRequest { from_revision: 0 })
        .await
        .expect("watch")
        .into_inner();
    within(watch.message(), HANG_LIMIT, || "the watch's reset".into())
        .await
        .expect("the reset")
        .expect("an event");
    process::stop(pid);
    let calls = (0..100).map(|i| {
        let mut c = client.clone();
        async move {
            let call = c.resolve_attributes(pb::ResolveAttributesRequest {
                originator: format!("C{i}"),
                ..Default::default()
            });
            tokio::time::timeout(Duration::from_millis(300), call).await
        }
    });
    let timed_out = futures_util::future::join_all(calls).await;
    let answered: Vec<_> = timed_out.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(answered.is_empty(), "answered while stopped: {answered:?}");
    process::resume(pid);
    // The watch still delivers: a group put now reaches it.
    client
        .put_group(pb::PutGroupRequest {
            originator: "CAdmin".into(),
            group: Some(pb::Group {
                group_id: "grpAfter".into(),
                member_ids: vec!["Calice".into()],
            }),
        })
        .await
        .expect("put a group after the stall");
    let event = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("an event in time")
        .expect("the watch's connection lives on")
        .expect("an event");
    assert!(event.revision > 0, "{event:?}");
    drop(pip);
}

/// A server that stops answering (SIGSTOP: the kernel still completes TCP
/// handshakes, nothing reads them) does not hang the client commands. A
/// load test whose PDP stalls mid-run ends with an error naming the stall
/// instead of waiting past `--duration` forever; `authz decide` against
/// the stalled server exits 1 ("no PDP answers") and `authz policy list`
/// fails, each within its bounds.
#[test]
fn client_commands_end_when_the_server_stalls() {
    use std::process::Stdio;
    let data = tempdir("stalled");
    let (up, url) = start_up(data.path(), &[], &[]);
    let pid = up.0.id();
    let load = Command::new(env!("CARGO_BIN_EXE_authz"))
        .args([
            "loadtest",
            "--target",
            &url,
            "--duration",
            "3",
            "--concurrency",
            "2",
            "--modes",
            "unary",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authz loadtest");
    std::thread::sleep(Duration::from_millis(1500));
    process::stop(pid);
    let request =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/request-owner-update.json");
    let decide = Command::new(env!("CARGO_BIN_EXE_authz"))
        .args(["decide", "--pdp", &url, "--request"])
        .arg(&request)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authz decide");
    let list = Command::new(env!("CARGO_BIN_EXE_authz"))
        .args(["policy", "--prp", &url, "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authz policy list");

    let out = output_within(load, HANG_LIMIT, || "authz loadtest did not end".into());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the unary mode's load"), "{err}");
    assert!(err.contains("no answer within 10 s"), "{err}");
    let out = output_within(decide, HANG_LIMIT, || "authz decide did not end".into());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let out = output_within(list, HANG_LIMIT, || "authz policy list did not end".into());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("the PRP at {url} did not answer within 30 s")),
        "{err}"
    );
    process::resume(pid);
}

/// `authz loadtest --propagation` against a PDP that stalls between its
/// rounds (SIGSTOP, its PRP still answering): the PDP's answer to a round
/// is bounded like every load call (10 s), so the run ends with an error
/// naming the stall, and the probe is still removed from the PRP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_propagation_run_ends_when_the_pdp_stalls() {
    use std::process::Stdio;
    let (_prp, prp_url) = start(
        &["prp", "--listen", "127.0.0.1:0", "--data-dir", "memory"],
        "PRP on",
    );
    let (pdp, pdp_url) = start(
        &[
            "pdp",
            "--listen",
            "127.0.0.1:0",
            "--prp",
            &prp_url,
            "--pip",
            "off",
            "--metrics",
            "off",
        ],
        "PDP on",
    );
    let pid = pdp.0.id();
    let load = Command::new(env!("CARGO_BIN_EXE_authz"))
        .args(["loadtest", "--target", &pdp_url, "--prp", &prp_url])
        .args([
            "--modes",
            "echo",
            "--duration",
            "1",
            "--propagation",
            "1000000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authz loadtest");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    process::stop(pid);
    let out = tokio::task::spawn_blocking(move || {
        output_within(load, HANG_LIMIT, || "authz loadtest did not end".into())
    })
    .await
    .expect("loadtest ends");
    process::resume(pid);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Decide: no answer within 10 s"), "{err}");
    let mut prp = PolicyRetrievalPointClient::new(channel(&prp_url).await);
    let left = prp
        .get_resource(pb::GetResourceRequest {
            resource_id: "loadtestProbe".into(),
        })
        .await;
    assert_eq!(
        left.map(|_| ()).unwrap_err().code(),
        tonic::Code::NotFound,
        "the probe is removed"
    );
    drop(pdp);
}

/// A PDP whose PIP is down denies what needs the PIP (MISSING_ATTRIBUTE),
/// and says so once when the outage starts, not once per decision (the
/// counter `authz_pip_fetches_total` counts each failure), nor once per
/// retry of its attribute watch.
#[test]
fn a_pip_outage_is_logged_once_not_per_decision() {
    let prp_data = tempdir("pip-outage");
    let (_up, prp_url) = start_up(prp_data.path(), &[], &[]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_pip = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let (_pdp, url, lines) = start_with_output(
        &[
            "pdp",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "off",
            "--prp",
            &prp_url,
            "--pip",
            &dead_pip,
        ],
        &[],
        "PDP on",
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut pdp = PolicyDecisionPointClient::new(channel(&url).await);
        // Newcomers: their groups must come from the PIP, which is down;
        // once the replica is loaded, each is MISSING_ATTRIBUTE.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let d = pdp
                .decide(request("Cfirst", "backDoor", pb::Operation::Retrieve))
                .await
                .expect("decided")
                .into_inner();
            if d.status == pb::AuthorizationStatus::MissingAttribute as i32 {
                break;
            }
            assert!(Instant::now() < deadline, "{}", d.summary);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for i in 0..8 {
            let d = pdp
                .decide(request(
                    &format!("Cnew{i}"),
                    "backDoor",
                    pb::Operation::Retrieve,
                ))
                .await
                .expect("decided")
                .into_inner();
            assert_eq!(
                d.status,
                pb::AuthorizationStatus::MissingAttribute as i32,
                "{}",
                d.summary
            );
        }
    });
    // The attribute watch retries with a backoff (0.1 s doubling to 5 s):
    // by 9 s it has failed six times or more, and says so once.
    std::thread::sleep(Duration::from_secs(9));
    let logged: Vec<String> = lines.try_iter().collect();
    let count = |needle: &str| logged.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("PIP attributes unavailable"), 1, "{logged:#?}");
    assert_eq!(count("PIP watch failed"), 1, "{logged:#?}");
}

/// A refused write or call is one log line, `call refused`, naming the RPC
/// and who was refused, never the secret sent: a PRP write whose two
/// possible checks both fail (it was logged twice), a PRP registration
/// refused before any check (the daci guard and others were not logged),
/// a PIP write by a stranger and a DAS caller with a wrong secret (neither
/// was logged at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refused_write_or_call_is_logged_once() {
    let data = tempdir("refusals");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/das/door-lock-das.json");
    let (_up, url, lines) = start_up_with_output(
        data.path(),
        &["--das-config", config.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    );
    let mut prp = PolicyRetrievalPointClient::new(channel(&url).await);
    // The demo's back door, put back unchanged by a stranger: neither an
    // Update under its policies nor an acpi-only Update under their pvs.
    let door = prp
        .get_resource(pb::GetResourceRequest {
            resource_id: "backDoor".into(),
        })
        .await
        .expect("backDoor")
        .into_inner()
        .resource;
    let refused = prp
        .put_resource(pb::PutResourceRequest {
            originator: "Cstranger".into(),
            resource: door,
            role_ids: Vec::new(),
        })
        .await
        .expect_err("a stranger");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    // A registration outside any registered parent: refused before any
    // policy is asked.
    let refused = prp
        .put_resource(pb::PutResourceRequest {
            originator: "Cstranger".into(),
            resource: Some(pb::TargetResource {
                resource_id: "orphan".into(),
                resource_type: 3,
                ..Default::default()
            }),
            role_ids: Vec::new(),
        })
        .await
        .expect_err("no parent");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let mut pip = PolicyInformationPointClient::new(channel(&url).await);
    let refused = pip
        .put_group(pb::PutGroupRequest {
            originator: "Cstranger".into(),
            group: Some(pb::Group {
                group_id: "grpStrangers".into(),
                member_ids: vec!["Cstranger".into()],
            }),
        })
        .await
        .expect_err("a stranger");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let mut das = pb::dynamic_authorization_server_client::DynamicAuthorizationServerClient::new(
        channel(&url).await,
    );
    let mut issue = tonic::Request::new(pb::IssueTokenRequest::default());
    issue
        .metadata_mut()
        .insert("authorization", "Bearer not-the-secret-42".parse().unwrap());
    let refused = das.issue_token(issue).await.expect_err("wrong secret");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let logged: Vec<String> = lines.try_iter().collect();
    let refused: Vec<&String> = logged
        .iter()
        .filter(|l| l.contains("call refused"))
        .collect();
    let count = |rpc: &str, who: &str| {
        refused
            .iter()
            .filter(|l| l.contains(rpc) && l.contains(who))
            .count()
    };
    assert_eq!(refused.len(), 4, "{logged:#?}");
    assert_eq!(
        count("PolicyRetrievalPoint/PutResource", "Cstranger"),
        2,
        "{refused:#?}"
    );
    assert_eq!(
        count("PolicyInformationPoint/PutGroup", "Cstranger"),
        1,
        "{refused:#?}"
    );
    assert_eq!(
        count("DynamicAuthorizationServer/IssueToken", "Unauthenticated"),
        1,
        "{refused:#?}"
    );
    assert!(
        !logged.iter().any(|l| l.contains("not-the-secret-42")),
        "{logged:#?}"
    );
}

/// A PIP that stops cleanly (SIGTERM ends its watch streams with OK) is
/// one outage to the PDP: one WARN `PIP watch lost`, not a second
/// `PIP watch failed` once its retries fail (README, Logs).
#[cfg(unix)]
#[test]
fn a_pip_that_stops_cleanly_is_one_watch_warning() {
    let prp_data = tempdir("pip-stop-prp");
    let (_prp, prp_url) = start_up(prp_data.path(), &[], &[]);
    let (pip, pip_url, _) = start_with_output(
        &["pip", "--listen", "127.0.0.1:0", "--data-dir", "memory"],
        &[],
        "PIP on",
    );
    let (_pdp, _url, lines) = start_with_output(
        &[
            "pdp",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "off",
            "--prp",
            &prp_url,
            "--pip",
            &pip_url,
        ],
        &[("RUST_LOG", "info")],
        "PDP on",
    );
    // The watch comes up, then the PIP stops cleanly.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lines
        .recv_timeout(Duration::from_millis(200))
        .is_ok_and(|l| l.contains("PIP watch up"))
    {
        assert!(Instant::now() < deadline, "the PIP watch never came up");
    }
    send_signal(&pip, "TERM");
    // Its retries (0.1 s doubling to 5 s) fail six times or more by 9 s.
    std::thread::sleep(Duration::from_secs(9));
    let logged: Vec<String> = lines.try_iter().collect();
    let warned: Vec<&String> = logged
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("PIP watch"))
        .collect();
    assert_eq!(warned.len(), 1, "{logged:#?}");
    assert!(warned[0].contains("PIP watch lost"), "{warned:?}");
}
