//! The decisions of the reference workload (on a 10k store: the 1 000
//! referenced ACPs and 9 000 one-rule fillers) over only the first
//! K requests, so that their targets, ACPs and requests stay in cache: what
//! a decision costs without memory stalls, to compare with the full
//! request set (K = 4096), which does not fit the caches.
//!
//! `hot_decide [K] [cycle|shuffle]` (default 32, cycle) prints the best of
//! 12 runs of 262 144 decisions, in ns per decision. `cycle` decides the K
//! requests in turn, over and over: for a small K the branch predictor
//! learns the whole sequence. `shuffle` decides them in a random order
//! (fixed seed), which keeps the data as hot but the branches as hard to
//! predict as with the full request set: the difference between the two
//! for a K that fits the caches is what mispredicted branches cost.

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
    let shuffle = std::env::args().nth(2).as_deref() == Some("shuffle");
    const DECISIONS: usize = 262_144;
    // xorshift64: a fixed order, read sequentially (no cache cost of its own).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let order: Vec<usize> = (0..DECISIONS)
        .map(|i| {
            if shuffle {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % k as u64) as usize
            } else {
                i % k
            }
        })
        .collect();
    let (mut best, mut permits) = (f64::MAX, 0u64);
    for _ in 0..12 {
        let start = Instant::now();
        for &i in &order {
            permits += u64::from(engine.decide(&store, &wl.requests[i].request).is_permit());
        }
        best = best.min(start.elapsed().as_nanos() as f64 / DECISIONS as f64);
    }
    println!(
        "{k} requests, {}: best {best:.1} ns per decision ({permits} permits in all runs)",
        if shuffle { "shuffled" } else { "cycled" }
    );
    // As in profile_decide: exit without freeing the store.
    std::process::exit(0);
}
