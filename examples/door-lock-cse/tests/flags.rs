//! The command line of the door-lock CSE, run as a process.

use std::process::Command;

/// A bad flag value is refused at start, naming the flag (README: "A bad
/// value is refused at start, naming its flag"), before anything connects.
#[test]
fn bad_flag_values_are_refused_naming_the_flag() {
    for (args, flag) in [
        (&["--deadline-ms", "0"][..], "--deadline-ms"),
        (&["--deadline-ms", "3600001"][..], "--deadline-ms"),
        (&["--cse-id", "a/b"][..], "--cse-id"),
        (&["--sp-id", "//bad_host"][..], "--sp-id"),
        (&["--admin", "all"][..], "--admin"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_door-lock-cse"))
            .args(["--listen", "127.0.0.1:0", "--pdp", "http://127.0.0.1:1"])
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run door-lock-cse");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}
