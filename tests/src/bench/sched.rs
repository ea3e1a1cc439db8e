//! `flotilla-bench sched`: the scheduler placing 10,000 pending pods onto
//! 5,000 nodes through the real store of a 3-replica hub.
//!
//! Nodes and pods are written straight into the Raft store in transactions
//! of 500 (as admission would have made them: defaulted, with uids), so that
//! the 10,000 pods are pending almost at once and what is measured is the
//! scheduler — filtering, scoring, and committing every binding through
//! Raft — not the speed of creating pods. A watch of pods through the API
//! records when each pod is seen bound.
//!
//! The target is at least 5,000 pods/s. The peers are published figures, not
//! measured here (no kube-scheduler or Nomad can be installed on this
//! machine): kube-scheduler places 100–430 pods/s, Nomad's C1M placed 3,750
//! containers/s.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use flotilla_hub::api::storage::encode;
use flotilla_hub::api::strategy::{CreateContext, prepare_for_create};
use flotilla_hub::store::{ObjectKey, Request, Response, Write};
use flotilla_shared::manifest::{FieldValidation, decode_object};
use flotilla_shared::model::Object;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::api_client::ApiClient;
use crate::fleet::{NodeSpec, node_object};
use crate::hub::{Cluster, ClusterOptions};

const TXN: usize = 500;

fn admitted(value: Value, n: usize) -> anyhow::Result<Object> {
    let mut object = decode_object(value, FieldValidation::Strict)?.object;
    prepare_for_create(
        &mut object,
        &CreateContext {
            uid: format!("00000000-0000-4000-8000-{n:012x}"),
            now: flotilla_hub::api::time::format_time(SystemTime::now()),
        },
    );
    Ok(object)
}

fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("bench-{i:05}"), "namespace": "default", "labels": {"app": format!("app-{}", i % 100)}},
        "spec": {"containers": [{"name": "main", "image": format!("registry.local/app-{}:1", i % 100),
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    })
}

/// Writes `objects` into the store in transactions; answers when each
/// object's transaction was acknowledged.
async fn write_all(
    cluster: &Cluster,
    objects: Vec<Object>,
) -> anyhow::Result<HashMap<String, Instant>> {
    let client = cluster.client(Duration::from_secs(30));
    let mut committed = HashMap::new();
    for chunk in objects.chunks(TXN) {
        let writes = chunk
            .iter()
            .map(|object| {
                let meta = object.metadata();
                Write::Create {
                    key: ObjectKey::new(object.kind_info().kind, &meta.namespace, &meta.name),
                    value: encode(object),
                }
            })
            .collect();
        match client.write(Request::Txn(writes)).await? {
            Response::Applied { .. } => {}
            other => anyhow::bail!("the store answered {other:?}"),
        }
        let at = Instant::now();
        for object in chunk {
            committed.insert(object.metadata().name.clone(), at);
        }
    }
    Ok(committed)
}

/// Runs the benchmark and returns its figures, the last line of the report.
pub async fn run(quick: bool) -> anyhow::Result<Value> {
    let (nodes, pods) = if quick {
        (1_000, 2_000)
    } else {
        (5_000, 10_000)
    };
    let cluster = Cluster::start(3, ClusterOptions::default());
    cluster.wait_for_leader(Duration::from_secs(30)).await;

    let node_objects = (0..nodes)
        .map(|i| admitted(node_object(&NodeSpec::new(&format!("node-{i:05}"))), i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    write_all(&cluster, node_objects).await?;

    // Watch pods from now: ADDED when written, MODIFIED when bound.
    let tls = ApiClient::admin_tls(&cluster.pki_dir())?;
    let mut probe = ApiClient::connect(&cluster.replicas[0].api, tls.clone()).await?;
    let from = probe.get("/api/v1/pods?limit=1").await?.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    let watcher = ApiClient::connect(&cluster.replicas[0].api, tls).await?;
    let mut watch = watcher
        .watch(&format!(
            "/api/v1/pods?watch=1&resourceVersion={from}&timeoutSeconds=600"
        ))
        .await?;
    let (bound_tx, mut bound_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watching = tokio::spawn(async move {
        while let Ok(Some(event)) = watch.next().await {
            let node = event["object"]["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default();
            if !node.is_empty() {
                let name = event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let _ = bound_tx.send((name, Instant::now()));
            }
        }
    });

    let pod_objects = (0..pods)
        .map(|i| admitted(pod(i), nodes + i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let created = write_all(&cluster, pod_objects).await?;
    let created_in = started.elapsed();
    eprintln!("{pods} pods written in {created_in:?}");

    let mut bound: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(if quick { 60 } else { 180 });
    while bound.len() < pods {
        match tokio::time::timeout_at(deadline, bound_rx.recv()).await {
            Ok(Some((name, at))) => {
                bound.entry(name).or_insert(at);
            }
            _ => break,
        }
    }
    watching.abort();
    let last = bound.values().max().copied().unwrap_or(started);
    let elapsed = last.duration_since(started);
    let mut latencies: Vec<Duration> = bound
        .iter()
        .filter_map(|(name, at)| Some(at.saturating_duration_since(*created.get(name)?)))
        .collect();
    latencies.sort_unstable();
    let percentile = |q: f64| {
        let rank = ((latencies.len() as f64) * q).ceil() as usize;
        latencies
            .get(rank.max(1) - 1)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let pods_per_s = bound.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    drop(cluster);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Ok(json!({
        "bench": "sched",
        "replicas": 3,
        "nodes": nodes,
        "pods": pods,
        "pods_bound": bound.len(),
        "pods_written_s": round(created_in.as_secs_f64()),
        "seconds": round(elapsed.as_secs_f64()),
        "pods_per_s": round(pods_per_s),
        "bind_p50_ms": round(percentile(0.50)),
        "bind_p99_ms": round(percentile(0.99)),
        "target_pods_per_s": 5000,
        "ratio_vs_target": round(pods_per_s / 5000.0),
        "published_peers_not_measured_here": {"kube_scheduler_pods_per_s": "100-430", "nomad_c1m_containers_per_s": 3750},
    }))
}
