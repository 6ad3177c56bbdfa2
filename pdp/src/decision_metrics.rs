//! The decision counters and latency histogram, kept per thread.
//!
//! Every decision updates them, so they must cost next to nothing: each
//! thread that decides owns a shard of plain atomics (no other thread
//! writes its cache lines), and a scrape sums the shards. Through the
//! `metrics` facade the same updates went to shared atomics and a shared
//! sample list and cost more than a fifth of the PDP's CPU under load.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authz_core::decision::{AuthorizationStatus, Effect};

/// Counter of decisions by result and status.
pub const DECISIONS_TOTAL: &str = "authz_decisions_total";
/// Histogram of the time to decide one request (conversion, policy lookup,
/// evaluation, answer conversion), in seconds.
pub const DECISION_SECONDS: &str = "authz_decision_seconds";

/// Upper bounds of the [`DECISION_SECONDS`] buckets: 1 µs to 1 s.
pub const DECISION_BUCKETS: [f64; 16] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1, 0.5,
    1.0,
];

/// The bucket bounds in nanoseconds.
const BOUNDS_NS: [u64; 16] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
];

const STATUSES: [(AuthorizationStatus, &str); 5] = [
    (AuthorizationStatus::Ok, "ok"),
    (AuthorizationStatus::NotApplicable, "not_applicable"),
    (AuthorizationStatus::MissingAttribute, "missing_attribute"),
    (AuthorizationStatus::SyntaxError, "syntax_error"),
    (AuthorizationStatus::ProcessingError, "processing_error"),
];
const RESULTS: [(Effect, &str); 2] = [(Effect::Permit, "permit"), (Effect::Deny, "deny")];

/// One thread's counts.
#[derive(Default)]
struct Shard {
    /// `[result][status]`, in the order of [`RESULTS`] and [`STATUSES`].
    decisions: [[AtomicU64; STATUSES.len()]; RESULTS.len()],
    /// Non-cumulative: `buckets[i]` counts latencies in
    /// `(BOUNDS_NS[i-1], BOUNDS_NS[i]]`; the last one the rest (+Inf).
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: Arc<Shard> = {
        let shard = Arc::new(Shard::default());
        SHARDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(shard.clone());
        shard
    };
}

/// Counts one decision and how long it took.
pub fn record(effect: Effect, status: AuthorizationStatus, elapsed: Duration) {
    let r = RESULTS.iter().position(|(e, _)| *e == effect).unwrap_or(1);
    let s = STATUSES
        .iter()
        .position(|(x, _)| *x == status)
        .unwrap_or(STATUSES.len() - 1);
    let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    let b = BOUNDS_NS.partition_point(|&bound| bound < ns);
    // Relaxed: each counter is read only as a total at scrape time.
    let _ = LOCAL.try_with(|shard| {
        shard.decisions[r][s].fetch_add(1, Ordering::Relaxed);
        shard.buckets[b].fetch_add(1, Ordering::Relaxed);
        shard.sum_ns.fetch_add(ns, Ordering::Relaxed);
    });
}

/// The totals over every shard.
struct Totals {
    decisions: [[u64; STATUSES.len()]; RESULTS.len()],
    buckets: [u64; BOUNDS_NS.len() + 1],
    sum_ns: u64,
}

fn totals() -> Totals {
    let mut t = Totals {
        decisions: [[0; STATUSES.len()]; RESULTS.len()],
        buckets: [0; BOUNDS_NS.len() + 1],
        sum_ns: 0,
    };
    for shard in SHARDS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        for (row, shard_row) in t.decisions.iter_mut().zip(&shard.decisions) {
            for (c, v) in row.iter_mut().zip(shard_row) {
                *c += v.load(Ordering::Relaxed);
            }
        }
        for (c, v) in t.buckets.iter_mut().zip(&shard.buckets) {
            *c += v.load(Ordering::Relaxed);
        }
        t.sum_ns = t.sum_ns.wrapping_add(shard.sum_ns.load(Ordering::Relaxed));
    }
    t
}

/// The number of decisions recorded with this result and status.
pub fn decisions(effect: Effect, status: AuthorizationStatus) -> u64 {
    let t = totals();
    let r = RESULTS.iter().position(|(e, _)| *e == effect).unwrap_or(1);
    let s = STATUSES.iter().position(|(x, _)| *x == status).unwrap_or(0);
    t.decisions[r][s]
}

/// Appends both metrics in the Prometheus text format. Every result/status
/// pair is listed, at 0 until it happens, so rates work from the start.
pub fn render(out: &mut String) {
    let t = totals();
    let _ = writeln!(
        out,
        "# HELP {DECISIONS_TOTAL} Decisions by result and status\n# TYPE {DECISIONS_TOTAL} counter"
    );
    for ((_, result), row) in RESULTS.iter().zip(&t.decisions) {
        for ((_, status), n) in STATUSES.iter().zip(row) {
            let _ = writeln!(
                out,
                "{DECISIONS_TOTAL}{{result=\"{result}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP {DECISION_SECONDS} Time to decide one request\n# TYPE {DECISION_SECONDS} histogram"
    );
    let mut cumulative = 0;
    for (bound, n) in DECISION_BUCKETS.iter().zip(&t.buckets) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{DECISION_SECONDS}_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += t.buckets[BOUNDS_NS.len()];
    let _ = writeln!(out, "{DECISION_SECONDS}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{DECISION_SECONDS}_sum {}", t.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{DECISION_SECONDS}_count {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_match_the_published_buckets() {
        for (ns, s) in BOUNDS_NS.iter().zip(DECISION_BUCKETS) {
            assert_eq!(*ns as f64 / 1e9, s);
        }
    }

    /// Counts from several threads add up; a latency on a bound falls in
    /// that bound's bucket (Prometheus `le`: less than or equal).
    #[test]
    fn shards_add_up_and_buckets_are_cumulative() {
        let before = decisions(Effect::Permit, AuthorizationStatus::ProcessingError);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10 {
                        // A pair no real decision has (a Permit is never
                        // a processing error): other tests cannot add to it.
                        record(
                            Effect::Permit,
                            AuthorizationStatus::ProcessingError,
                            Duration::from_micros(1),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            decisions(Effect::Permit, AuthorizationStatus::ProcessingError) - before,
            40
        );
        let mut text = String::new();
        render(&mut text);
        let bucket = |le: &str| -> u64 {
            let prefix = format!("{DECISION_SECONDS}_bucket{{le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no bucket {le} in {text}"))
        };
        // 1 µs is on the first bound: counted there and in every later one.
        assert!(bucket("0.000001") >= 40, "{text}");
        assert!(
            text.contains("authz_decisions_total{result=\"permit\",status=\"processing_error\"} ")
        );
        assert!(bucket("+Inf") >= bucket("0.000001"));
    }
}
