//! The command line of the door-lock CSE, run as a process.

use std::process::Command;

use authz_tests::process::{HANG_LIMIT, lines_of, lines_until, run_within};

/// A bad flag value is refused at start, naming the flag (README: "A bad
/// value is refused at start, naming its flag"), before anything connects.
#[test]
fn bad_flag_values_are_refused_naming_the_flag() {
    // 2048 bytes, longer in the absolute form it is compared in: no write
    // could be from it.
    let long_admin = format!("C{}", "x".repeat(2047));
    for (args, flag) in [
        (&["--admin", long_admin.as_str()][..], "--admin \"C"),
        (&["--deadline-ms", "0"][..], "--deadline-ms"),
        (&["--deadline-ms", "3600001"][..], "--deadline-ms"),
        (&["--cse-id", "a/b"][..], "--cse-id"),
        (&["--sp-id", "//bad_host"][..], "--sp-id"),
        (&["--admin", "all"][..], "--admin"),
        (&["--pdp", "ftp://pdp.example"][..], "--pdp"),
        // A fixed clock no PDP can be told (a protobuf Timestamp starts at
        // 0001-01-01): refused here, not blamed on every request as 4000.
        (
            &["--at", "00000101T000000"][..],
            "--at 00000101T000000: year 0000",
        ),
        (&["--at", "20261126"][..], "--at 20261126: not of the form"),
    ] {
        let out = run_within(
            Command::new(env!("CARGO_BIN_EXE_door-lock-cse"))
                .args(["--listen", "127.0.0.1:0", "--pdp", "http://127.0.0.1:1"])
                .args(args)
                .env_remove("RUST_BACKTRACE"),
            HANG_LIMIT,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

/// SIGTERM, what a service manager sends, stops the CSE cleanly (exit 0),
/// as SIGINT does.
#[cfg(unix)]
#[test]
fn sigterm_stops_the_cse_cleanly() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    for signal in ["TERM", "INT"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_door-lock-cse"))
            .args(["--listen", "127.0.0.1:0", "--pdp", "http://127.0.0.1:1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run door-lock-cse");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        // The lines up to the banner, the banner last.
        let before = lines_until(
            &lines,
            HANG_LIMIT,
            |l| l.contains("door-lock CSE"),
            || {
                let _ = child.kill();
                "the CSE neither served nor ended".into()
            },
        )
        .unwrap_or_else(|seen| panic!("no banner: {seen:?}"));
        // No PRP there (the first --pdp stands for it): the start says it
        // shows the policies file's acpi, in plain text on a pipe (README:
        // logs are coloured only on a terminal).
        assert!(
            before
                .iter()
                .any(|l| l.contains("showing the policies file's")),
            "{before:?}"
        );
        assert!(before.iter().all(|l| !l.contains('\x1b')), "{before:?}");
        let sent = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("SIG{signal}: still running after 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "SIG{signal}: {status}");
    }
}

/// A file the CSE cannot read or use is named with its flag (README: the
/// errors "name their flag and file"), each cause said once.
#[test]
fn file_errors_name_the_flag_and_the_file() {
    let dir = tempfile::Builder::new()
        .prefix("authz-door-lock-files-")
        .tempdir()
        .expect("temp dir");
    let twice = dir.path().join("groups-twice.json");
    std::fs::write(
        &twice,
        r#"{"groups": [{"m2m:grp": {"ri": "g", "mid": ["Ca"], "mid": ["Cb"]}}]}"#,
    )
    .expect("write");
    let missing = dir.path().join("none.json");
    for flag in ["--policies", "--groups", "--credentials"] {
        for (file, why) in [(&missing, "cannot read"), (&twice, "duplicate")] {
            if flag != "--groups" && file == &twice {
                continue;
            }
            let out = run_within(
                Command::new(env!("CARGO_BIN_EXE_door-lock-cse"))
                    .args([
                        "--listen",
                        "127.0.0.1:0",
                        "--pdp",
                        "http://127.0.0.1:1",
                        flag,
                    ])
                    .arg(file)
                    .env_remove("RUST_BACKTRACE"),
                HANG_LIMIT,
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{flag}: {err}");
            assert!(
                err.contains(&format!("{flag} {}", file.display())) && err.contains(why),
                "{flag}: {err}"
            );
            assert_eq!(
                err.matches("duplicate").count(),
                usize::from(why == "duplicate"),
                "{err}"
            );
        }
    }
}

/// `--load-policies` against a PRP that accepts connections but never
/// answers (stopped, wedged: here a socket nobody reads) stops the start
/// with an error naming the stall, as `authz policy` does, instead of
/// waiting without end (README: "Its start with `--load-policies` is
/// bounded").
#[test]
fn a_prp_that_never_answers_stops_the_load() {
    use std::process::Stdio;
    use std::time::Duration;

    // Connections complete in the listen backlog; nothing is ever read.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let child = Command::new(env!("CARGO_BIN_EXE_door-lock-cse"))
        .args(["--listen", "127.0.0.1:0", "--load-policies", "--prp", &url])
        .args(["--pdp", "http://127.0.0.1:1"])
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run door-lock-cse");
    let out = authz_tests::process::output_within(child, Duration::from_secs(120), || {
        "the CSE waits on a PRP that never answers".into()
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{url} did not answer within 30 s")),
        "{err}"
    );
    drop(silent);
}
