//! `flotilla-bench store`: replicated durable writes on a 3-replica hub
//! against a 3-member etcd cluster on the same machine in the same run, and
//! the write gap when the hub's leader is killed.
//!
//! Both sides write distinct keys with 256-byte values from closed-loop
//! clients, each client with its own connection, spread over all members.
//! The hub's values are small Kubernetes-shaped JSON objects (the store
//! parses labels and fields out of every write, as it will for the API), and
//! its transport is mutually authenticated TLS; etcd runs plain-text gRPC.
//! After the runs, every acknowledged hub write is read back: `lost_writes`
//! counts the ones missing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flotilla_hub::replica::{Client, Consistency};
use flotilla_hub::store::{ObjectKey, Request, Response, Write};
use serde_json::{Value, json};

use super::etcd::etcd_put_benchmark;
use super::load::{Budget, LoadStats, run_load};
use crate::hub::{Cluster, ClusterOptions};

const VALUE_LEN: usize = 256;

/// A ConfigMap-shaped JSON value of exactly `VALUE_LEN` bytes.
fn value(name: &str) -> Vec<u8> {
    let head = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"bench\",\"labels\":{{\"app\":\"bench\"}}}},\"data\":{{\"v\":\""
    );
    let tail = "\"}}";
    let pad = VALUE_LEN.saturating_sub(head.len() + tail.len());
    let mut out = head.into_bytes();
    out.extend(std::iter::repeat_n(b'x', pad));
    out.extend_from_slice(tail.as_bytes());
    out
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("ConfigMap", "bench", name)
}

/// Acknowledged keys, to read back at the end.
type Acked = Arc<Mutex<Vec<String>>>;

async fn hub_writes(
    cluster: &Cluster,
    clients: usize,
    duration: Duration,
    tag: &str,
    acked: &Acked,
) -> LoadStats {
    let connections: Arc<Vec<Client>> = Arc::new(
        (0..clients)
            .map(|_| cluster.client(Duration::from_secs(10)))
            .collect(),
    );
    let tag = tag.to_owned();
    let acked = acked.clone();
    run_load(clients, Budget::Duration(duration), move |client, seq| {
        let connections = connections.clone();
        let acked = acked.clone();
        let name = format!("{tag}-{client}-{seq}");
        async move {
            let request = Request::Write(Write::Create {
                key: key(&name),
                value: value(&name),
            });
            match connections[client].write(request).await {
                Ok(Response::Applied { .. }) => {
                    acked.lock().expect("acked").push(name);
                    Ok(())
                }
                Ok(other) => Err(format!("{other:?}")),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
}

/// Kills the leader `kills` times under a steady write load and returns the
/// gap of each kill: from the kill to the next acknowledged write.
async fn failover_gaps(cluster: &mut Cluster, kills: usize, acked: &Acked) -> Vec<Duration> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // (started, acknowledged) of every write, so that a gap is measured to
    // the first write both started and acknowledged after the kill: a write
    // committed before the kill whose answer arrives just after it says
    // nothing about failover.
    let last_acks: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = cluster.client(Duration::from_secs(2));
        let stop = stop.clone();
        let acks = last_acks.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seq += 1;
                let name = format!("failover-{w}-{seq}");
                let request = Request::Write(Write::Create {
                    key: key(&name),
                    value: value(&name),
                });
                let started = Instant::now();
                if let Ok(Response::Applied { .. }) = client.write(request).await {
                    acks.lock().expect("acks").push((started, Instant::now()));
                    acked.lock().expect("acked").push(name);
                }
            }
        }));
    }
    let mut gaps = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
        let killed_at = Instant::now();
        cluster.kill(leader);
        let gap = loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let first_after = last_acks
                .lock()
                .expect("acks")
                .iter()
                .filter(|(started, _)| *started > killed_at)
                .map(|(_, acked)| *acked)
                .min();
            if let Some(t) = first_after {
                break t - killed_at;
            }
            if killed_at.elapsed() > Duration::from_secs(30) {
                break killed_at.elapsed();
            }
        };
        gaps.push(gap);
        last_acks.lock().expect("acks").clear();
        cluster.spawn(leader);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        let _ = writer.await;
    }
    gaps
}

/// Reads every acknowledged key back (linearizably) and counts the missing.
async fn lost_writes(cluster: &Cluster, acked: &Acked) -> usize {
    let names = std::mem::take(&mut *acked.lock().expect("acked"));
    let names = Arc::new(names);
    let missing = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut readers = Vec::new();
    const READERS: usize = 16;
    for r in 0..READERS {
        let client = cluster.client(Duration::from_secs(10));
        let names = names.clone();
        let missing = missing.clone();
        readers.push(tokio::spawn(async move {
            for name in names.iter().skip(r).step_by(READERS) {
                let mut found = None;
                for _ in 0..5 {
                    match client.get(key(name), Consistency::Linearizable).await {
                        Ok(object) => {
                            found = Some(object.is_some());
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                if found != Some(true) {
                    missing.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for reader in readers {
        let _ = reader.await;
    }
    missing.load(std::sync::atomic::Ordering::Relaxed)
}

/// The leader's log commits (fsyncs) so far.
async fn group_commit(cluster: &Cluster) -> u64 {
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await;
    cluster
        .statuses()
        .await
        .into_iter()
        .find(|(i, _)| *i == leader)
        .map_or(0, |(_, s)| s.log_commits)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        (a / b * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

fn p99(mut gaps: Vec<Duration>) -> f64 {
    gaps.sort_unstable();
    let rank = ((gaps.len() as f64) * 0.99).ceil() as usize;
    gaps.get(rank.max(1) - 1)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Runs the benchmark and returns its figures, the last line of the report.
pub async fn run(quick: bool) -> anyhow::Result<Value> {
    let duration = Duration::from_secs(if quick { 2 } else { 10 });
    let kills = if quick { 3 } else { 10 };
    let acked: Acked = Arc::default();

    let mut cluster = Cluster::start(3, ClusterOptions::default());
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    // Warm-up: connections, caches, the first snapshot of the page cache.
    hub_writes(&cluster, 8, Duration::from_millis(500), "warm", &acked).await;

    let hub_1 = hub_writes(&cluster, 1, duration, "one", &acked).await;
    eprintln!("hub, 1 client: {}", hub_1.to_json());
    let etcd_1 = etcd_put_benchmark(1, duration, VALUE_LEN).await?;
    eprintln!("etcd, 1 client: {}", etcd_1.to_json());
    let before = group_commit(&cluster).await;
    let hub_64 = hub_writes(&cluster, 64, duration, "many", &acked).await;
    let after = group_commit(&cluster).await;
    // Writes are batched into log entries, and entries into commits: what
    // counts is how many acknowledged writes one leader fsync carried.
    let writes_per_fsync = ratio(hub_64.ops as f64, after.saturating_sub(before) as f64);
    eprintln!(
        "hub, 64 clients: {} ({writes_per_fsync} writes per leader fsync)",
        hub_64.to_json()
    );
    let etcd_64 = etcd_put_benchmark(64, duration, VALUE_LEN).await?;
    eprintln!("etcd, 64 clients: {}", etcd_64.to_json());

    let gaps = failover_gaps(&mut cluster, kills, &acked).await;
    eprintln!("failover gaps: {gaps:?}");
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let checked = acked.lock().expect("acked").len();
    let lost = lost_writes(&cluster, &acked).await;

    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(json!({
        "bench": "store",
        "replicas": 3,
        "value_bytes": VALUE_LEN,
        "seconds_per_run": duration.as_secs(),
        "writes_per_s": round(hub_64.ops_per_s),
        "etcd_writes_per_s": round(etcd_64.ops_per_s),
        "ratio_vs_etcd": ratio(hub_64.ops_per_s, etcd_64.ops_per_s),
        "p50_ms": round(hub_1.p50_ms),
        "p99_ms": round(hub_1.p99_ms),
        "etcd_p50_ms": round(etcd_1.p50_ms),
        "etcd_p99_ms": round(etcd_1.p99_ms),
        "latency_ratio_vs_etcd_p50": ratio(hub_1.p50_ms, etcd_1.p50_ms),
        "latency_ratio_vs_etcd_p99": ratio(hub_1.p99_ms, etcd_1.p99_ms),
        "clients_1": {"hub": hub_1.to_json(), "etcd": etcd_1.to_json()},
        "clients_64": {"hub": hub_64.to_json(), "etcd": etcd_64.to_json()},
        "writes_per_leader_fsync_64": writes_per_fsync,
        "failover_kills": gaps.len(),
        "failover_gap_p99_ms": round(p99(gaps.clone())),
        "failover_gaps_ms": gaps.iter().map(|g| round(g.as_secs_f64() * 1e3)).collect::<Vec<_>>(),
        "acknowledged_writes_checked": checked,
        "lost_writes": lost,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_256_bytes_of_json() {
        let v = value("many-63-123456");
        assert_eq!(v.len(), VALUE_LEN);
        let parsed: Value = serde_json::from_slice(&v).unwrap();
        assert_eq!(parsed["metadata"]["name"], "many-63-123456");
    }

    #[test]
    fn p99_of_few_gaps_is_the_largest() {
        let ms = Duration::from_millis;
        assert_eq!(p99(vec![ms(300), ms(900), ms(500)]), 900.0);
        assert_eq!(p99(vec![]), 0.0);
    }
}
