//! Waiting on the processes a test starts: with a bound, so that a process
//! that should have stopped but serves on (a bad flag taken, a peer that
//! stalls) fails its test instead of hanging the run.

use std::process::{Child, Output};
use std::time::{Duration, Instant};

/// The output of `child` once it has exited; killed, and the test failed
/// with `hang()`'s message, if it is still running after `limit` (a bound
/// on a hang, not a speed check). Its output is read once it has exited,
/// so it must not fill a pipe before then (a few kilobytes at most).
pub fn output_within(mut child: Child, limit: Duration, hang: impl FnOnce() -> String) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}", hang());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Stops the process `pid` (SIGSTOP) and returns once it is stopped: the
/// signal is delivered asynchronously, and a test that calls the process
/// right after `kill` could still be answered (Linux: its state in
/// `/proc/PID/stat` is `T`; elsewhere after a short pause).
pub fn stop(pid: u32) {
    signal("-STOP", pid);
    let stat = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Ok(text) = std::fs::read_to_string(&stat) else {
            // No procfs: give the signal time to land.
            std::thread::sleep(Duration::from_millis(200));
            return;
        };
        // `PID (comm) STATE ...`; comm may hold spaces and parentheses.
        let state = text
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state == Some('T') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} not stopped: {text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lets the process `pid` go on after [`stop`] (SIGCONT).
pub fn resume(pid: u32) {
    signal("-CONT", pid);
}

fn signal(sig: &str, pid: u32) {
    let sent = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {sig} {pid}");
}
