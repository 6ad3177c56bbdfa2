//! The decisions of the reference workload (10k store) over only the first
//! K requests, so that their targets, ACPs and requests stay in cache: what
//! a decision costs without memory stalls, to compare with the full
//! request set (K = 4096), which does not fit the caches.
//!
//! `hot_decide [K]` (default 32) prints the best of 20 runs of about
//! 200 000 decisions, in ns per decision.

use std::time::Instant;

use authz_benches::workload::{Workload, WorkloadConfig};
use authz_benches::{Engine, build_store};

fn main() {
    let wl = Workload::generate(WorkloadConfig::default());
    let store = build_store(&wl, 1_000, 10_000);
    let engine = Engine::new(&wl);
    let k: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(32)
        .clamp(1, wl.requests.len());
    let requests = &wl.requests[..k];
    let (mut best, mut permits) = (f64::MAX, 0u64);
    for _ in 0..20 {
        let start = Instant::now();
        let mut n = 0u64;
        for _ in 0..(200_000 / k).max(1) {
            for r in requests {
                permits += u64::from(engine.decide(&store, &r.request).is_permit());
                n += 1;
            }
        }
        best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("{k} requests: best {best:.1} ns per decision ({permits} permits in all runs)");
    // As in profile_decide: exit without freeing the store.
    std::process::exit(0);
}
