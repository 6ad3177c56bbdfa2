//! Latency percentiles by batch timing, and the process's resident memory.

use std::time::Instant;

/// Per-decision latency summary, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median of the per-decision batch means.
    pub p50: f64,
    /// 99th percentile of the per-decision batch means.
    pub p99: f64,
    /// Mean over all batches.
    pub mean: f64,
    /// Decisions timed.
    pub decisions: usize,
}

/// Runs `f(i)` for `i` = 0, 1, ... (mod `n`) in batches of `batch`, timing
/// each batch with [`Instant`]; every batch contributes one sample, its time
/// divided by `batch`. `warmup` batches run first and are not recorded.
///
/// Timing single decisions of ~100 ns would mostly measure the clock, so a
/// sample is a batch mean: the percentiles are of 64-decision means, which
/// hides variation inside a batch but keeps slow batches (cache misses,
/// preemption) visible in p99.
pub fn batch_latency(
    n: usize,
    batch: usize,
    batches: usize,
    warmup: usize,
    mut f: impl FnMut(usize),
) -> Latency {
    let mut i = 0;
    let mut step = |f: &mut dyn FnMut(usize)| {
        let start = Instant::now();
        for _ in 0..batch {
            f(i);
            i += 1;
            if i == n {
                i = 0;
            }
        }
        start.elapsed().as_nanos() as f64 / batch as f64
    };
    for _ in 0..warmup {
        step(&mut f);
    }
    let mut samples: Vec<f64> = (0..batches).map(|_| step(&mut f)).collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Latency {
        p50: at(0.50),
        p99: at(0.99),
        mean: samples.iter().sum::<f64>() / samples.len() as f64,
        decisions: batch * batches,
    }
}

/// Per-decision latency percentiles from timing every decision alone, in
/// nanoseconds, with what the clock itself costs subtracted.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean of the samples.
    pub mean: f64,
    /// What one pair of clock reads costs (median), subtracted from every
    /// sample.
    pub clock: f64,
}

/// Runs `f(i)` for `i` = 0, 1, ... (mod `n`) `samples` times, timing each
/// call alone with [`Instant`], after `warmup` untimed calls.
///
/// Batch means ([`batch_latency`]) average a fast Permit with a slow Deny;
/// this keeps each decision's own time, so its median is the median
/// decision. A clock read (on Linux, `clock_gettime` through the vDSO,
/// about 20 ns) is not free: the median time of two reads with nothing
/// between them is measured first and subtracted. The reads also keep one
/// decision from overlapping the next, which a batch allows, so the mean
/// here is at least the batch mean.
pub fn per_decision_latency(
    n: usize,
    samples: usize,
    warmup: usize,
    mut f: impl FnMut(usize),
) -> Spread {
    let mut clock: Vec<u64> = (0..10_000)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(&start);
            start.elapsed().as_nanos() as u64
        })
        .collect();
    clock.sort_unstable();
    let clock = clock[clock.len() / 2] as f64;
    let mut i = 0;
    let mut next = || {
        let at = i;
        i = (i + 1) % n.max(1);
        at
    };
    for _ in 0..warmup {
        f(next());
    }
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let at = next();
            let start = Instant::now();
            f(at);
            (start.elapsed().as_nanos() as f64 - clock).max(0.0)
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Spread {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        mean: times.iter().sum::<f64>() / times.len().max(1) as f64,
        clock,
    }
}

/// Resident set size of this process in bytes (Linux `/proc/self/status`),
/// `None` elsewhere.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered() {
        let mut x = 0u64;
        let l = batch_latency(10, 8, 100, 2, |i| {
            x = x.wrapping_add(std::hint::black_box(i as u64));
        });
        assert!(l.p50 <= l.p99);
        assert_eq!(l.decisions, 800);
        let s = per_decision_latency(10, 500, 10, |i| {
            x = x.wrapping_add(std::hint::black_box(i as u64));
        });
        assert!(s.p50 <= s.p90 && s.p90 <= s.p99 && s.clock >= 0.0);
        assert!(rss_bytes().is_some_and(|b| b > 0));
    }
}
