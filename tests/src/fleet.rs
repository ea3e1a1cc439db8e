//! Simulated devices for controller and scheduler tests: Nodes registered
//! through the hub's API, their Leases renewed, and a stand-in for the agent
//! that reports the pods bound to them as running and ready (and completes
//! their graceful deletion), all over HTTPS as a device would.
//!
//! This is the device simulator DESIGN.md allows for control-plane tests:
//! the hub under test is real (processes, Raft, API); only the devices are
//! simulated, at the API.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::api_client::ApiClient;
use crate::hub::Cluster;

/// What a simulated node offers.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub arch: String,
    pub labels: Vec<(String, String)>,
}

impl NodeSpec {
    pub fn new(name: &str) -> Self {
        NodeSpec {
            name: name.to_owned(),
            cpu: "4".into(),
            memory: "4Gi".into(),
            pods: 110,
            arch: "arm64".into(),
            labels: Vec::new(),
        }
    }
}

/// The current time as `metav1.MicroTime`.
pub fn micro_now() -> String {
    flotilla_hub::api::time::format_micro_time(std::time::SystemTime::now()).0
}

fn now() -> String {
    flotilla_hub::api::time::format_time(std::time::SystemTime::now()).0
}

/// The Node object a device registers.
pub fn node_object(spec: &NodeSpec) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/arch": spec.arch,
        "kubernetes.io/os": "linux",
    });
    for (k, v) in &spec.labels {
        labels[k] = json!(v);
    }
    let resources = json!({"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods.to_string()});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "flotilla agent is posting ready status",
                "lastHeartbeatTime": now(), "lastTransitionTime": now(),
            }],
            "nodeInfo": {"architecture": spec.arch, "operatingSystem": "linux", "kubeletVersion": "v1.31.0-flotilla"},
        },
    })
}

/// Registers `spec` as a Node (creating it, or replacing its status if it exists).
pub async fn register(api: &mut ApiClient, spec: &NodeSpec) -> anyhow::Result<()> {
    let body = node_object(spec);
    let answer = api.post("/api/v1/nodes", &body).await?;
    match answer.code {
        201 => Ok(()),
        409 => Ok(()),
        code => anyhow::bail!(
            "registering node {} answered {code}: {:?}",
            spec.name,
            answer.json()
        ),
    }
}

/// Creates or renews the Lease of node `name`.
pub async fn renew_lease(api: &mut ApiClient, name: &str) -> anyhow::Result<()> {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}");
    let current = api.get(&path).await?;
    let mut lease = if current.code == 200 {
        current.json()
    } else {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40},
        })
    };
    lease["spec"]["renewTime"] = json!(micro_now());
    let answer = if current.code == 200 {
        api.put(&path, &lease).await?
    } else {
        api.post(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            &lease,
        )
        .await?
    };
    anyhow::ensure!(
        matches!(answer.code, 200 | 201 | 409),
        "lease answered {}: {:?}",
        answer.code,
        answer.json()
    );
    Ok(())
}

/// Posts the node's Ready condition again when the hub marked it otherwise
/// (a device back from being offline reports itself, as its agent would).
pub async fn report_ready(api: &mut ApiClient, name: &str) -> anyhow::Result<()> {
    let path = format!("/api/v1/nodes/{name}");
    let mut node = api.get(&path).await?.json();
    let conditions = node["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ready = conditions
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    if ready {
        return Ok(());
    }
    let mut updated: Vec<Value> = conditions
        .into_iter()
        .filter(|c| c["type"] != "Ready")
        .collect();
    updated.push(json!({
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "flotilla agent is posting ready status",
        "lastHeartbeatTime": now(), "lastTransitionTime": now(),
    }));
    node["status"]["conditions"] = json!(updated);
    let answer = api.put(&format!("{path}/status"), &node).await?;
    anyhow::ensure!(
        matches!(answer.code, 200 | 409),
        "node status answered {}",
        answer.code
    );
    Ok(())
}

/// Simulated devices: leases renewed and bound pods run, until dropped.
#[derive(Debug)]
pub struct Fleet {
    tasks: Vec<JoinHandle<()>>,
    /// Nodes whose devices are offline: no lease renewal, no pod updates.
    pub offline: Arc<Mutex<BTreeSet<String>>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Fleet {
    /// Registers `nodes` on `cluster` and starts renewing their leases every
    /// `lease_every` and running their pods (checked every `poll`), talking
    /// to replica `replica`.
    pub async fn start(
        cluster: &Cluster,
        replica: usize,
        nodes: &[NodeSpec],
        lease_every: Duration,
        poll: Duration,
    ) -> anyhow::Result<Fleet> {
        let tls = ApiClient::admin_tls(&cluster.pki_dir())?;
        let addr = cluster.replicas[replica].api.clone();
        let mut api = ApiClient::connect(&addr, tls.clone()).await?;
        for spec in nodes {
            register(&mut api, spec).await?;
            renew_lease(&mut api, &spec.name).await?;
        }
        let offline: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let mut tasks = Vec::new();
        {
            let (tls, addr, names, offline) =
                (tls.clone(), addr.clone(), names.clone(), offline.clone());
            tasks.push(tokio::spawn(async move {
                let mut api = None;
                loop {
                    tokio::time::sleep(lease_every).await;
                    if api.is_none() {
                        api = ApiClient::connect(&addr, tls.clone()).await.ok();
                    }
                    let Some(client) = api.as_mut() else { continue };
                    let down = offline.lock().await.clone();
                    for name in names.iter().filter(|n| !down.contains(*n)) {
                        if renew_lease(client, name).await.is_err()
                            || report_ready(client, name).await.is_err()
                        {
                            api = None;
                            break;
                        }
                    }
                }
            }));
        }
        let pods_offline = offline.clone();
        tasks.push(tokio::spawn(async move {
            let offline = pods_offline;
            let mut api = None;
            loop {
                tokio::time::sleep(poll).await;
                if api.is_none() {
                    api = ApiClient::connect(&addr, tls.clone()).await.ok();
                }
                let Some(client) = api.as_mut() else { continue };
                let down = offline.lock().await.clone();
                if run_pods(client, &names, &down).await.is_err() {
                    api = None;
                }
            }
        }));
        Ok(Fleet { tasks, offline })
    }

    /// Takes a device offline (its lease stops, its pods are left as they are) or back.
    pub async fn set_offline(&self, node: &str, offline: bool) {
        let mut set = self.offline.lock().await;
        if offline {
            set.insert(node.to_owned());
        } else {
            set.remove(node);
        }
    }
}

/// One pass of the simulated agents: every pod bound to an online node is
/// reported Running and ready; a pod being deleted is removed (grace 0).
async fn run_pods(
    api: &mut ApiClient,
    nodes: &[String],
    offline: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let pods = api.get("/api/v1/pods").await?.json();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if node.is_empty() || !nodes.iter().any(|n| n == node) || offline.contains(node) {
            continue;
        }
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
        if pod["metadata"]["deletionTimestamp"].is_string() {
            api.call(
                "DELETE",
                &path,
                "application/json",
                br#"{"gracePeriodSeconds":0}"#.to_vec(),
            )
            .await?;
            continue;
        }
        let restart = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always");
        let phase = pod["status"]["phase"].as_str().unwrap_or_default();
        // A pod that runs to completion (a Job's) succeeds; others keep running.
        let target = if restart == "Always" {
            "Running"
        } else {
            "Succeeded"
        };
        let ready_now = pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        // Done unless the hub marked a running pod not ready (while its
        // device was unreachable): the agent reports it ready again.
        if phase == target && (target != "Running" || ready_now) {
            continue;
        }
        let mut updated = pod.clone();
        let ready = target == "Running";
        let statuses: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let state = if ready {
                    json!({"running": {"startedAt": now()}})
                } else {
                    json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now(), "finishedAt": now()}})
                };
                json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": ready,
                       "restartCount": 0, "started": ready, "state": state})
            })
            .collect();
        let truth = if ready { "True" } else { "False" };
        updated["status"] = json!({
            "phase": target,
            "podIP": "10.42.0.10",
            "hostIP": "192.0.2.1",
            "startTime": now(),
            "qosClass": pod["status"]["qosClass"],
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
                {"type": "ContainersReady", "status": truth, "lastTransitionTime": now()},
                {"type": "Ready", "status": truth, "lastTransitionTime": now()},
            ],
            "containerStatuses": statuses,
        });
        api.put(&format!("{path}/status"), &updated).await?;
    }
    Ok(())
}
