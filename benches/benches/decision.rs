//! Decision cost of the compiled engine on the reference workload
//! (`authz_benches::workload`), against stores of 1 000, 10 000 and
//! 1 000 000 ACPs, and of Cedar on the same workload translated.
//!
//! Run: `cargo bench -p authz-benches` (about 2-3 minutes on 2 cores).
//!
//! Before criterion starts, the binary prints once: the permit share and
//! the agreement of engine, oracle and Cedar; store build times and memory;
//! p50/p99 per-decision latency from batch timing, and p50/p90/p99 with
//! each decision timed alone; the Cedar speedup. After
//! criterion, it prints the speedup again from criterion's own means.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use authz_benches::cedar::CedarWorkload;
use authz_benches::measure::{Latency, batch_latency, per_decision_latency, rss_bytes};
use authz_benches::workload::{Construction, Workload, WorkloadConfig};
use authz_benches::{AcpStore, Engine, build_store, hosting_context};
use criterion::Criterion;

const BATCH: usize = 64;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_latency(label: &str, l: &Latency) {
    println!(
        "  {label:<34} p50 {:>8.1} ns   p99 {:>8.1} ns   mean {:>8.1} ns   ({} decisions, batches of {BATCH})",
        l.p50, l.p99, l.mean, l.decisions
    );
}

/// Where criterion writes its estimates (the same rule criterion uses).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Path::new(&target).join("criterion");
    }
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().map_or_else(
        || PathBuf::from("target/criterion"),
        |t| t.join("criterion"),
    )
}

/// (mean, median) in ns of one criterion benchmark of this run.
fn criterion_estimate(dir: &Path, group: &str, id: &str) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(dir.join(group).join(id).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        v["mean"]["point_estimate"].as_f64()?,
        v["median"]["point_estimate"].as_f64()?,
    ))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: then run
    // a small configuration once, as a smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let (config, sizes, latency_batches) = if full {
        (WorkloadConfig::default(), [1_000, 10_000, 1_000_000], 4_000)
    } else {
        (
            WorkloadConfig {
                requests: 512,
                ..WorkloadConfig::default()
            },
            [1_000, 2_000, 5_000],
            50,
        )
    };

    println!("== authz-benches: decision ==");
    if !full {
        println!(
            "(test mode, no --bench: reduced sizes, stores of {sizes:?} ACPs under the labels 1k/10k/1m)"
        );
    }
    let t = Instant::now();
    let workload = Workload::generate(config);
    let engine = Engine::new(&workload);
    let rules: usize = workload.acps.iter().map(|a| a.rules.len()).sum();
    println!(
        "workload: {} referenced ACPs ({rules} rules), {} targets, {} requests, generated in {:.2?}",
        workload.acps.len(),
        workload.targets.len(),
        workload.requests.len(),
        t.elapsed()
    );

    // Stores. The 1M store = the 10k ACPs + cheap one-rule fillers.
    let mut stores: Vec<(&str, AcpStore)> = Vec::new();
    for (name, total) in ["1k", "10k", "1m"].into_iter().zip(sizes) {
        let rss_before = rss_bytes();
        let t = Instant::now();
        let store = build_store(&workload, sizes[1], total);
        let elapsed = t.elapsed();
        let grown = rss_bytes()
            .zip(rss_before)
            .map(|(a, b)| {
                let d = a.saturating_sub(b);
                format!(
                    "{:.1} MiB (~{} bytes per ACP, hash table included)",
                    mib(d),
                    d / store.len().max(1) as u64
                )
            })
            .unwrap_or_else(|| "n/a".into());
        println!(
            "store {name:>3}: {:>9} ACPs compiled in {elapsed:>9.2?}; RSS grew by {grown}",
            store.len()
        );
        stores.push((name, store));
    }
    if let Some(rss) = rss_bytes() {
        println!("process RSS with all stores: {:.1} MiB", mib(rss));
    }
    println!(
        "size_of::<CompiledAcp>() = {} bytes (held inline in the store's hash table)",
        std::mem::size_of::<authz_core::CompiledAcp>()
    );

    // Decisions: ratio and agreement with the oracle.
    let requests: Vec<_> = workload
        .requests
        .iter()
        .map(|r| r.request.clone())
        .collect();
    let n = requests.len();
    let store10k = &stores[1].1;
    let decisions: Vec<bool> = requests
        .iter()
        .map(|r| engine.decide(store10k, r).is_permit())
        .collect();
    let permits = decisions.iter().filter(|p| **p).count();
    let agree_oracle = decisions
        .iter()
        .zip(&workload.requests)
        .filter(|(d, r)| **d == r.expected_permit)
        .count();
    println!(
        "engine decisions: {permits}/{n} permit ({:.1} %), {} deny; agreement with the workload oracle: {agree_oracle}/{n} ({:.2} %)",
        100.0 * permits as f64 / n as f64,
        n - permits,
        100.0 * agree_oracle as f64 / n as f64
    );
    let mut by_construction: Vec<(Construction, usize)> = Vec::new();
    for r in &workload.requests {
        match by_construction
            .iter_mut()
            .find(|(c, _)| *c == r.construction)
        {
            Some((_, k)) => *k += 1,
            None => by_construction.push((r.construction, 1)),
        }
    }
    println!("  requests by construction: {by_construction:?}");
    for (i, (d, r)) in decisions.iter().zip(&workload.requests).enumerate() {
        if *d != r.expected_permit {
            println!(
                "  DISAGREEMENT request {i}: engine {d}, oracle {} ({:?}): {:?}",
                r.expected_permit, r.construction, r.request
            );
            break;
        }
    }

    // Cedar: translation, agreement on a sample.
    let t = Instant::now();
    let cedar = CedarWorkload::new(&workload, hosting_context()).expect("Cedar policies parse");
    println!(
        "cedar: {} policies in {} per-target policy sets, parsed in {:.2?}",
        cedar.policies,
        workload.targets.len(),
        t.elapsed()
    );
    let sample = n.min(1_000);
    let mut agree_cedar = 0;
    let mut cedar_errors = 0;
    for (req, ours) in requests.iter().zip(&decisions).take(sample) {
        let (request, entities) = cedar.build(req).expect("Cedar request builds");
        let (permit, errors) = cedar.authorize(&req.target, &request, &entities);
        cedar_errors += errors;
        if permit == *ours {
            agree_cedar += 1;
        }
    }
    println!(
        "cedar agreement with engine on {sample} requests: {agree_cedar}/{sample} ({:.2} %); cedar evaluation errors: {cedar_errors}",
        100.0 * agree_cedar as f64 / sample as f64
    );
    let prebuilt: Vec<_> = requests
        .iter()
        .map(|r| cedar.build(r).expect("Cedar request builds"))
        .collect();

    // Per-decision latency from batch timing.
    println!("per-decision latency (custom batch timing, std::time::Instant, single thread):");
    let mut ours_10k_mean = 0.0;
    for (name, store) in &stores {
        let l = batch_latency(n, BATCH, latency_batches, latency_batches / 10, |i| {
            black_box(engine.decide(store, black_box(&requests[i])));
        });
        if *name == "10k" {
            ours_10k_mean = l.mean;
        }
        print_latency(&format!("engine decide/{name}"), &l);
    }
    let cedar_batches = (latency_batches / 10).max(10);
    let cedar_full = batch_latency(n, BATCH, cedar_batches, cedar_batches / 10, |i| {
        black_box(cedar.decide(black_box(&requests[i])));
    });
    print_latency("cedar build request + authorize", &cedar_full);
    let cedar_pre = batch_latency(n, BATCH, cedar_batches, cedar_batches / 10, |i| {
        let (request, entities) = &prebuilt[i];
        black_box(cedar.authorize(&requests[i].target, black_box(request), entities));
    });
    print_latency("cedar authorize (prebuilt request)", &cedar_pre);
    println!(
        "speedup vs cedar: {:.1}x (batch means, engine decide/10k vs cedar build+authorize; {:.1}x vs cedar with prebuilt requests)",
        cedar_full.mean / ours_10k_mean,
        cedar_pre.mean / ours_10k_mean
    );
    println!(
        "per-decision latency (each decision timed alone, the clock's own cost subtracted, single thread):"
    );
    for (name, store) in &stores {
        let s = per_decision_latency(n, latency_batches * 64, n, |i| {
            black_box(engine.decide(store, black_box(&requests[i])));
        });
        println!(
            "  {:<34} p50 {:>8.1} ns   p90 {:>8.1} ns   p99 {:>8.1} ns   mean {:>8.1} ns   (clock pair {:.1} ns subtracted)",
            format!("engine decide/{name}"),
            s.p50,
            s.p90,
            s.p99,
            s.mean,
            s.clock
        );
    }
    println!("(2-core machine shared with other builds: expect noise)");
    println!();

    // Criterion.
    let dir = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    {
        let mut g = c.benchmark_group("decide");
        for (name, store) in &stores {
            if *name == "1m" {
                g.sample_size(20);
            }
            let mut i = 0;
            g.bench_function(*name, |b| {
                b.iter(|| {
                    let d = engine.decide(store, black_box(&requests[i]));
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                    d
                })
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("cedar");
        g.measurement_time(Duration::from_secs(4));
        let mut i = 0;
        g.bench_function("build_and_authorize", |b| {
            b.iter(|| {
                let d = cedar.decide(black_box(&requests[i]));
                i += 1;
                if i == n {
                    i = 0;
                }
                d
            })
        });
        let mut i = 0;
        g.bench_function("authorize_prebuilt", |b| {
            b.iter(|| {
                let (request, entities) = &prebuilt[i];
                let d = cedar.authorize(&requests[i].target, black_box(request), entities);
                i += 1;
                if i == n {
                    i = 0;
                }
                d
            })
        });
        g.finish();
    }
    c.final_summary();

    if full {
        let ours = criterion_estimate(&dir, "decide", "10k");
        let theirs = criterion_estimate(&dir, "cedar", "build_and_authorize");
        let pre = criterion_estimate(&dir, "cedar", "authorize_prebuilt");
        println!();
        println!("== summary (criterion means) ==");
        for (name, _) in &stores {
            if let Some((mean, median)) = criterion_estimate(&dir, "decide", name) {
                println!("  decide/{name:<4} mean {mean:>8.1} ns  median {median:>8.1} ns");
            }
        }
        if let (Some((o, _)), Some((t, _))) = (ours, theirs) {
            println!("  cedar/build_and_authorize mean {t:>8.1} ns");
            if let Some((p, _)) = pre {
                println!("  cedar/authorize_prebuilt  mean {p:>8.1} ns");
                println!(
                    "speedup vs cedar: {:.1}x (criterion means, decide/10k vs cedar build+authorize; {:.1}x vs prebuilt)",
                    t / o,
                    p / o
                );
            }
        }
    }
}
