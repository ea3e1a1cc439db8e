//! `flotilla-bench api`: the Kubernetes API of a 3-replica hub under a
//! create/update/get/list/watch mix from concurrent HTTPS clients spread over
//! all replicas.
//!
//! 1. A paced run (open loop): 200 writes/s (half creates, half updates with
//!    the resourceVersion just returned) and 400 reads/s (gets, and every
//!    fourth read a label-selected list with a limit), while one watch per
//!    replica follows every change. Latencies are measured from when each
//!    call was due. The target is a write p99 of at most 50 ms at 200 writes/s.
//! 2. The peer: a 3-member etcd taking the same 200 puts/s, paced the same
//!    way — the store Kubernetes' API server writes to — so the ratio shows
//!    what the API layer (TLS, HTTP, JSON, admission, Raft) costs over it.
//! 3. A saturation run: 32 closed-loop writers, to show the headroom.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::etcd::EtcdCluster;
use super::load::{Budget, LoadStats, run_load, run_paced};
use crate::api_client::ApiClient;
use crate::hub::{Cluster, ClusterOptions};

const WRITE_RATE: f64 = 200.0;
const READ_RATE: f64 = 400.0;
const WRITERS: usize = 12;
const READERS: usize = 12;
const SATURATION_CLIENTS: usize = 32;
const NAMESPACE_PATH: &str = "/api/v1/namespaces/default/configmaps";

fn config_map(name: &str, label: &str, seq: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name, "labels": { "bench": label } },
        "data": { "seq": seq.to_string(), "payload": "x".repeat(200) },
    })
}

/// One connection per task, to replica `task % 3`.
async fn connections(cluster: &Cluster, n: usize) -> anyhow::Result<Arc<Vec<Mutex<ApiClient>>>> {
    let tls = ApiClient::admin_tls(&cluster.pki_dir())?;
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let replica = &cluster.replicas[i % cluster.replicas.len()];
        clients.push(Mutex::new(
            ApiClient::connect(&replica.api, tls.clone()).await?,
        ));
    }
    Ok(Arc::new(clients))
}

/// What a writer task remembers: the object it updates next and its version.
#[derive(Debug, Default, Clone)]
struct Last {
    name: String,
    resource_version: String,
}

async fn paced_writes(
    cluster: &Cluster,
    duration: Duration,
    run: &str,
) -> anyhow::Result<LoadStats> {
    let clients = connections(cluster, WRITERS).await?;
    let last: Arc<Vec<std::sync::Mutex<Last>>> =
        Arc::new((0..WRITERS).map(|_| std::sync::Mutex::default()).collect());
    let run = run.to_owned();
    Ok(run_paced(WRITERS, WRITE_RATE, duration, move |task, seq| {
        let clients = Arc::clone(&clients);
        let last = Arc::clone(&last);
        let run = run.clone();
        async move {
            let mut client = clients[task].lock().await;
            let previous = last[task].lock().expect("last").clone();
            let answer = if seq % 2 == 0 || previous.name.is_empty() {
                let name = format!("{run}-{task}-{seq}");
                let answer = client
                    .post(NAMESPACE_PATH, &config_map(&name, &run, seq))
                    .await?;
                (answer, name)
            } else {
                let mut body = config_map(&previous.name, &run, seq);
                body["metadata"]["resourceVersion"] = json!(previous.resource_version);
                let path = format!("{NAMESPACE_PATH}/{}", previous.name);
                (client.put(&path, &body).await?, previous.name.clone())
            };
            let (answer, name) = answer;
            anyhow::ensure!(
                matches!(answer.code, 200 | 201),
                "write answered {}",
                answer.code
            );
            let rv = answer.json()["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            *last[task].lock().expect("last") = Last {
                name,
                resource_version: rv,
            };
            Ok::<(), anyhow::Error>(())
        }
    })
    .await)
}

async fn paced_reads(
    cluster: &Cluster,
    duration: Duration,
    seeds: usize,
) -> anyhow::Result<LoadStats> {
    let clients = connections(cluster, READERS).await?;
    Ok(run_paced(READERS, READ_RATE, duration, move |task, seq| {
        let clients = Arc::clone(&clients);
        async move {
            let mut client = clients[task].lock().await;
            let path = if seq % 4 == 3 {
                format!("{NAMESPACE_PATH}?labelSelector=bench%3Dseed&limit=50")
            } else {
                format!("{NAMESPACE_PATH}/seed-{}", (task + seq as usize) % seeds)
            };
            let answer = client.get(&path).await?;
            anyhow::ensure!(answer.code == 200, "read answered {}", answer.code);
            Ok::<(), anyhow::Error>(())
        }
    })
    .await)
}

/// A watch on each replica from revision `from`, counting ADDED and
/// MODIFIED events; abort the tasks to stop them.
async fn watchers(
    cluster: &Cluster,
    from: &str,
) -> anyhow::Result<Vec<(Arc<AtomicU64>, tokio::task::JoinHandle<()>)>> {
    let tls = ApiClient::admin_tls(&cluster.pki_dir())?;
    let mut watches = Vec::new();
    for replica in &cluster.replicas {
        let client = ApiClient::connect(&replica.api, tls.clone()).await?;
        let path = format!("{NAMESPACE_PATH}?watch=1&resourceVersion={from}&timeoutSeconds=600");
        let mut watch = client.watch(&path).await?;
        let events = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&events);
        let task = tokio::spawn(async move {
            while let Ok(Some(event)) = watch.next().await {
                if event["type"] == "ADDED" || event["type"] == "MODIFIED" {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        watches.push((events, task));
    }
    Ok(watches)
}

async fn etcd_paced(duration: Duration) -> anyhow::Result<LoadStats> {
    let cluster = EtcdCluster::start(3).await?;
    let mut connections = Vec::new();
    for _ in 0..WRITERS {
        connections.push(cluster.client().await?);
    }
    let connections = Arc::new(connections);
    let value = config_map("etcd", "etcd", 0).to_string().into_bytes();
    let stats = run_paced(WRITERS, WRITE_RATE, duration, move |task, seq| {
        let mut connection = connections[task].clone();
        let value = value.clone();
        async move {
            connection
                .put(super::etcd::bench_key(task, seq), value, None)
                .await
                .map(drop)
        }
    })
    .await;
    drop(cluster);
    Ok(stats)
}

async fn saturation(cluster: &Cluster, duration: Duration) -> anyhow::Result<LoadStats> {
    let clients = connections(cluster, SATURATION_CLIENTS).await?;
    Ok(run_load(
        SATURATION_CLIENTS,
        Budget::Duration(duration),
        move |task, seq| {
            let clients = Arc::clone(&clients);
            async move {
                let mut client = clients[task].lock().await;
                let name = format!("max-{task}-{seq}");
                let answer = client
                    .post(NAMESPACE_PATH, &config_map(&name, "max", seq))
                    .await?;
                anyhow::ensure!(answer.code == 201, "create answered {}", answer.code);
                Ok::<(), anyhow::Error>(())
            }
        },
    )
    .await)
}

/// Runs the benchmark and returns its figures, the last line of the report.
pub async fn run(quick: bool) -> anyhow::Result<Value> {
    let duration = Duration::from_secs(if quick { 4 } else { 20 });
    let cluster = Cluster::start(3, ClusterOptions::default());
    cluster.wait_for_leader(Duration::from_secs(30)).await;

    // Seed objects for the reads, and warm-up of connections and caches.
    let seeds = 50;
    let tls = ApiClient::admin_tls(&cluster.pki_dir())?;
    let mut seeder = ApiClient::connect(&cluster.replicas[0].api, tls).await?;
    let mut from = String::new();
    for i in 0..seeds {
        let answer = seeder
            .post(
                NAMESPACE_PATH,
                &config_map(&format!("seed-{i}"), "seed", i as u64),
            )
            .await?;
        anyhow::ensure!(
            answer.code == 201,
            "seeding answered {}: {:?}",
            answer.code,
            answer.json()
        );
        from = answer.json()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    let watches = watchers(&cluster, &from).await?;
    let warm = paced_writes(&cluster, Duration::from_millis(500), "warm").await?;

    let (writes, reads) = tokio::join!(
        paced_writes(&cluster, duration, "paced"),
        paced_reads(&cluster, duration, seeds)
    );
    let (writes, reads) = (writes?, reads?);
    eprintln!("API writes at {WRITE_RATE}/s: {}", writes.to_json());
    eprintln!("API reads at {READ_RATE}/s: {}", reads.to_json());
    let etcd = etcd_paced(duration).await?;
    eprintln!("etcd puts at {WRITE_RATE}/s: {}", etcd.to_json());
    let max = saturation(&cluster, duration.min(Duration::from_secs(10))).await?;
    eprintln!(
        "API creates, {SATURATION_CLIENTS} closed-loop clients: {}",
        max.to_json()
    );

    // Every watch should see every acknowledged write of all three runs.
    let expected_events = warm.ops + writes.ops + max.ops;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let seen = |watches: &[(Arc<AtomicU64>, tokio::task::JoinHandle<()>)]| {
        watches
            .iter()
            .map(|(n, _)| n.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    };
    while seen(&watches) < expected_events && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let watch_events_min = seen(&watches);
    for (_, task) in &watches {
        task.abort();
    }
    drop(cluster);

    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let ratio = |a: f64, b: f64| if b > 0.0 { round(a / b) } else { 0.0 };
    Ok(json!({
        "bench": "api",
        "replicas": 3,
        "seconds_per_run": duration.as_secs(),
        "target_writes_per_s": WRITE_RATE,
        "writes_per_s": round(writes.ops_per_s),
        "write_p50_ms": round(writes.p50_ms),
        "write_p99_ms": round(writes.p99_ms),
        "write_max_ms": round(writes.max_ms),
        "write_errors": writes.errors,
        "reads_per_s": round(reads.ops_per_s),
        "read_p50_ms": round(reads.p50_ms),
        "read_p99_ms": round(reads.p99_ms),
        "read_errors": reads.errors,
        "write_p99_target_ms": 50,
        "write_p99_vs_target": ratio(writes.p99_ms, 50.0),
        "etcd_put_p50_ms": round(etcd.p50_ms),
        "etcd_put_p99_ms": round(etcd.p99_ms),
        "write_p99_ratio_vs_etcd": ratio(writes.p99_ms, etcd.p99_ms),
        "max_writes_per_s": round(max.ops_per_s),
        "max_write_p99_ms": round(max.p99_ms),
        "watch_events_expected": expected_events,
        "watch_events_min_of_replicas": watch_events_min,
    }))
}
