//! The benchmarks behind `flotilla-bench`. Every figure that claims speed is
//! measured against a named peer in the same run and reported as a ratio.

pub mod agent;
pub mod api;
pub mod codec;
pub mod etcd;
pub mod link;
pub mod load;
pub mod sched;
pub mod store;

use std::time::{Duration, Instant};

/// Runs `op` repeatedly for about `budget` (after a short warm-up) and
/// returns the median time of one call, in nanoseconds, over batches.
pub fn median_ns(budget: Duration, mut op: impl FnMut()) -> f64 {
    const BATCH: u32 = 64;
    for _ in 0..BATCH {
        op();
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || samples.len() < 5 {
        let batch = Instant::now();
        for _ in 0..BATCH {
            op();
        }
        samples.push(batch.elapsed().as_nanos() as f64 / f64::from(BATCH));
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
