//! Waiting on the processes a test starts, and on what it awaits of them:
//! with a bound, so that a process that should have stopped but serves on
//! (a bad flag taken, a peer that stalls), one that never prints the line
//! a test waits for, or a call or stream that never answers fails its test
//! with a message instead of hanging the run.

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The bound on a hang where a test means no other: generous for a slow,
/// shared CI machine (a bound on a hang, never a speed check), and short
/// enough that a hang fails its test long before the run's time is up.
pub const HANG_LIMIT: Duration = Duration::from_secs(120);

/// The output of `child` once it has exited; killed, and the test failed
/// with `hang()`'s message (and the end of what it wrote), if it is still
/// running after `limit` (a bound on a hang, not a speed check). Its
/// stdout and stderr, when piped, are read while it runs, so it never
/// blocks on a full pipe however much it writes.
pub fn output_within(mut child: Child, limit: Duration, hang: impl FnOnce() -> String) -> Output {
    let deadline = Instant::now() + limit;
    let stdout = child.stdout.take().map(read_to_end);
    let stderr = child.stderr.take().map(read_to_end);
    let exited = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes close when the process ends, unless a process it started
    // holds them open: bounded too.
    let rest = || deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
    let Some(status) = exited else {
        let said = |pipe| tail(&collect(pipe, Duration::from_secs(1)).unwrap_or_default());
        panic!(
            "{}\n--- its stdout, the end ---\n{}\n--- its stderr, the end ---\n{}",
            hang(),
            said(stdout),
            said(stderr)
        );
    };
    match (collect(stdout, rest()), collect(stderr, rest())) {
        (Some(stdout), Some(stderr)) => Output {
            status,
            stdout,
            stderr,
        },
        _ => panic!("{}: it exited ({status}), its output stayed open", hang()),
    }
}

/// [`Command::output`] within `limit`: `cmd` run with its stdin closed and
/// its stdout and stderr captured (as `output` runs it; any other stdio
/// the test set is replaced), killed and the test failed naming it if it
/// is still running after `limit` ([`output_within`]).
pub fn run_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    output_within(child, limit, || {
        format!("{cmd:?} still running after {limit:?}")
    })
}

/// The lines of `pipe` (a child's stdout), read by a thread of their own:
/// a test waits for them with a bound ([`lines_until`], `recv_timeout`),
/// where reading the pipe itself blocks for as long as the process prints
/// nothing. The channel disconnects when the pipe closes (the process
/// exited). The thread reads on after the receiver is dropped, so the
/// process never blocks on a full pipe.
pub fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The lines received from `lines` ([`lines_of`]) up to the first for
/// which `found` holds, that one last; `Err` with those received if the
/// channel disconnected first (the process closed its stdout: it exited).
/// If `limit` passes first, the test fails with `hang()`'s message and the
/// lines received.
pub fn lines_until(
    lines: &Receiver<String>,
    limit: Duration,
    mut found: impl FnMut(&str) -> bool,
    hang: impl FnOnce() -> String,
) -> Result<Vec<String>, Vec<String>> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let done = found(&line);
                seen.push(line);
                if done {
                    return Ok(seen);
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Err(seen),
            Err(RecvTimeoutError::Timeout) => {
                panic!("{} (within {limit:?}); its lines: {seen:#?}", hang())
            }
        }
    }
}

/// What `fut` gives, awaited at most `limit`; past it the test fails with
/// `hang()`'s message. For a call or a stream a test awaits of a server
/// that could stall (another process; a stream whose next message may
/// never come) and that nothing else bounds.
pub async fn within<T>(
    fut: impl Future<Output = T>,
    limit: Duration,
    hang: impl FnOnce() -> String,
) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{} (not within {limit:?})", hang()),
    }
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

/// Everything `pipe` gives until it closes, read by a thread of its own.
fn read_to_end(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// What [`read_to_end`] read, once the pipe has closed within `limit`;
/// nothing for a pipe the test did not capture.
fn collect(pipe: Option<Receiver<Vec<u8>>>, limit: Duration) -> Option<Vec<u8>> {
    match pipe {
        None => Some(Vec::new()),
        Some(rx) => rx.recv_timeout(limit).ok(),
    }
}

/// The last few kilobytes of `bytes`, as text, for a failure message.
fn tail(bytes: &[u8]) -> String {
    const KEEP: usize = 4096;
    let text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(KEEP)..]);
    if bytes.len() > KEEP {
        format!("…{text}")
    } else {
        text.into_owned()
    }
}
