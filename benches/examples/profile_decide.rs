//! Loops `decide` over the reference workload (on a 10k store: the 1 000
//! referenced ACPs and 9 000 one-rule fillers) for profiling:
//! `perf record -D 2000 target/release/examples/profile_decide [SECONDS]`.
//!
//! `profile_decide 0 PASSES` runs exactly PASSES passes over the requests
//! instead, for deterministic counts under `valgrind --tool=cachegrind`
//! (subtract a run with 0 passes to leave out building the workload).

use std::time::{Duration, Instant};

use authz_benches::workload::{Workload, WorkloadConfig};
use authz_benches::{Engine, build_store};

fn main() {
    let wl = Workload::generate(WorkloadConfig::default());
    let store = build_store(&wl, 1_000, 10_000);
    let engine = Engine::new(&wl);
    let secs = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let passes: Option<u64> = std::env::args().nth(2).and_then(|s| s.parse().ok());
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut n, mut permits, mut pass) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while passes.map_or(Instant::now() < end, |p| pass < p) {
        pass += 1;
        for r in &wl.requests {
            permits += engine.decide(&store, &r.request).is_permit() as u64;
            n += 1;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("{n} decisions, {permits} permits, {ns:.1} ns per decision");
    // Exit without dropping the store: what freeing costs depends on the
    // allocator's state, which the decisions change, and would blur the
    // difference of two runs.
    std::process::exit(0);
}
