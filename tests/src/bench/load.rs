//! A closed-loop load driver shared by both sides of `flotilla-bench store`:
//! `clients` tasks each issue one operation, wait for it, and issue the next,
//! until a time or operation budget is spent. What an operation is (an etcd
//! put, a Flotilla API write) is the caller's closure.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// When the clients stop issuing operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Start operations until this much time has passed (the ones in flight
    /// then still finish and count).
    Duration(Duration),
    /// Start this many operations in all, shared among the clients.
    TotalOps(u64),
}

/// What a load run achieved. Latencies are of successful operations only.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadStats {
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that returned an error.
    pub errors: u64,
    /// From the first operation's start to the last one's end.
    pub elapsed: Duration,
    /// Successful operations per second of `elapsed`.
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LoadStats {
    /// The figures of a run from its successful operations' latencies.
    pub fn from_samples(mut latencies: Vec<Duration>, errors: u64, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        let ops = latencies.len() as u64;
        let seconds = elapsed.as_secs_f64();
        Self {
            ops,
            errors,
            elapsed,
            ops_per_s: if seconds > 0.0 {
                ops as f64 / seconds
            } else {
                0.0
            },
            p50_ms: ms(percentile(&latencies, 0.50)),
            p99_ms: ms(percentile(&latencies, 0.99)),
            max_ms: ms(latencies.last()),
        }
    }

    /// The figures as JSON, rounded to what a benchmark report shows.
    pub fn to_json(&self) -> Value {
        let round = |x: f64, places: i32| {
            let scale = 10f64.powi(places);
            (x * scale).round() / scale
        };
        json!({
            "ops": self.ops,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed.as_secs_f64(), 3),
            "ops_per_s": round(self.ops_per_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
        })
    }
}

/// The nearest-rank percentile `q` (0 < q ≤ 1) of ascending `sorted`.
fn percentile(sorted: &[Duration], q: f64) -> Option<&Duration> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1)
}

/// Runs `clients` closed-loop clients on the current tokio runtime (use a
/// multi-thread one for real measurements) until `budget` is spent.
/// `make_op(client, seq)` makes client `client`'s `seq`-th operation
/// (`seq` counts from 0 for each client).
pub async fn run_load<F, Fut, E>(clients: usize, budget: Budget, make_op: F) -> LoadStats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let make_op = Arc::new(make_op);
    let started = AtomicU64::new(0);
    let started = Arc::new(started);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let make_op = Arc::clone(&make_op);
        let started = Arc::clone(&started);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            for seq in 0.. {
                let go = match budget {
                    Budget::Duration(d) => start.elapsed() < d,
                    Budget::TotalOps(n) => started.fetch_add(1, Ordering::Relaxed) < n,
                };
                if !go {
                    break;
                }
                let op_start = Instant::now();
                match make_op(client, seq).await {
                    Ok(()) => latencies.push(op_start.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        // A panicking operation is the caller's bug: let it surface.
        let (client_latencies, client_errors) = joined.unwrap_or_else(|e| {
            std::panic::resume_unwind(e.into_panic());
        });
        latencies.extend(client_latencies);
        errors += client_errors;
    }
    LoadStats::from_samples(latencies, errors, start.elapsed())
}

/// Runs an open-loop load: `tasks` tasks together start `rate` operations
/// per second for `duration`, each on a fixed schedule. A latency is measured
/// from when the operation was due, not from when it was started, so that a
/// slow answer that delays the next operations counts against them too (no
/// coordinated omission). `make_op(task, seq)` as in [`run_load`].
pub async fn run_paced<F, Fut, E>(
    tasks: usize,
    rate: f64,
    duration: Duration,
    make_op: F,
) -> LoadStats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let make_op = Arc::new(make_op);
    let period = Duration::from_secs_f64(tasks as f64 / rate.max(f64::MIN_POSITIVE));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for task in 0..tasks {
        let make_op = Arc::clone(&make_op);
        // Spread the tasks' schedules over one period.
        let first = start + period.mul_f64(task as f64 / tasks as f64);
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            for seq in 0u64.. {
                let due = first + period.mul_f64(seq as f64);
                if due.duration_since(start) >= duration {
                    break;
                }
                tokio::time::sleep_until(due).await;
                match make_op(task, seq).await {
                    Ok(()) => latencies.push(due.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(joined) = set.join_next().await {
        let (task_latencies, task_errors) = joined.unwrap_or_else(|e| {
            std::panic::resume_unwind(e.into_panic());
        });
        latencies.extend(task_latencies);
        errors += task_errors;
    }
    LoadStats::from_samples(latencies, errors, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let cases: &[(&[u64], f64, Option<u64>)] = &[
            (&[], 0.5, None),
            (&[7], 0.5, Some(7)),
            (&[7], 0.99, Some(7)),
            (&[1, 2, 3, 4], 0.5, Some(2)),
            (&[1, 2, 3, 4], 0.99, Some(4)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5, Some(5)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99, Some(10)),
        ];
        for &(samples, q, expected) in cases {
            let sorted = ms(samples);
            assert_eq!(
                percentile(&sorted, q).copied(),
                expected.map(Duration::from_millis),
                "{samples:?} at {q}"
            );
        }
    }

    #[test]
    fn stats_of_no_operations_are_zero() {
        let stats = LoadStats::from_samples(Vec::new(), 3, Duration::ZERO);
        assert_eq!(
            (
                stats.ops,
                stats.errors,
                stats.ops_per_s,
                stats.p50_ms,
                stats.max_ms
            ),
            (0, 3, 0.0, 0.0, 0.0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_run_keeps_every_client_busy_until_the_deadline() {
        // Each operation takes 10 ms of (paused, auto-advancing) time; every
        // seventh of client 0 fails.
        let stats = run_load(
            4,
            Budget::Duration(Duration::from_secs(1)),
            |client, seq| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if client == 0 && seq % 7 == 6 {
                    Err("refused")
                } else {
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(stats.ops + stats.errors, 400);
        assert_eq!(stats.errors, 14);
        assert_eq!(stats.elapsed, Duration::from_secs(1));
        assert_eq!(stats.ops_per_s, 386.0);
        assert_eq!(
            (stats.p50_ms, stats.p99_ms, stats.max_ms),
            (10.0, 10.0, 10.0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_counted_run_starts_exactly_the_budget_with_per_client_sequences() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let stats = run_load(3, Budget::TotalOps(100), move |client, seq| {
            record.lock().unwrap().push((client, seq));
            async move {
                tokio::time::sleep(Duration::from_millis(1 + client as u64)).await;
                Ok::<(), ()>(())
            }
        })
        .await;
        assert_eq!(stats.ops, 100);
        let seen = seen.lock().unwrap();
        for client in 0..3 {
            let seqs: Vec<u64> = seen.iter().filter(|s| s.0 == client).map(|s| s.1).collect();
            assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        }
        assert_eq!(stats.max_ms, 3.0);
    }
}
