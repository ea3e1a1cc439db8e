//! The scheduler and the controllers on a real three-replica hub, with
//! devices simulated at the API (nodes registered, leases renewed, bound
//! pods reported running): Deployments become ReplicaSets and pods bound to
//! nodes, roll out, survive the leader's death mid-rollout; DaemonSets roll
//! on with a device offline; unplaceable pods say why; deleted owners take
//! their dependents; a silent device turns Unknown.

use std::time::{Duration, Instant};

use flotilla_tests::api_client::ApiClient;
use flotilla_tests::fleet::{Fleet, NodeSpec};
use flotilla_tests::hub::{Cluster, ClusterOptions};
use flotilla_tests::kubectl::Kubectl;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);

fn deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {{rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: main
        image: {image}
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
"#
    )
}

async fn admin(cluster: &Cluster, replica: usize) -> ApiClient {
    let tls = ApiClient::admin_tls(&cluster.pki_dir()).unwrap();
    ApiClient::connect(&cluster.replicas[replica].api, tls)
        .await
        .unwrap()
}

/// Polls `check` (a fresh connection to a live replica each time) until it
/// answers `Some`, or panics after `TIMEOUT` with `what`.
async fn eventually<T, F, Fut>(cluster: &Cluster, what: &str, mut check: F) -> T
where
    F: FnMut(ApiClient) -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    let tls = ApiClient::admin_tls(&cluster.pki_dir()).unwrap();
    loop {
        for replica in cluster.replicas.iter().filter(|r| r.is_running()) {
            if let Ok(client) = ApiClient::connect(&replica.api, tls.clone()).await
                && let Some(found) = check(client).await
            {
                return found;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn items(api: &mut ApiClient, path: &str) -> Vec<Value> {
    match api.get(path).await {
        Ok(answer) if answer.code == 200 => answer.json()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn nodes(n: usize) -> Vec<NodeSpec> {
    (0..n).map(|i| NodeSpec::new(&format!("gw-{i}"))).collect()
}

/// Pods of app `app` that are bound, running and not being deleted, by image.
fn running_images(pods: &[Value], app: &str) -> Vec<String> {
    let mut images: Vec<String> = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| p["status"]["phase"] == "Running")
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    images.sort();
    images
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_is_scheduled_rolled_out_and_survives_the_leader_dying_mid_rollout() {
    let mut cluster = Cluster::start(3, ClusterOptions::default());
    let _fleet = Fleet::start(
        &cluster,
        1,
        &nodes(3),
        Duration::from_secs(2),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let kubectl = Kubectl::new(&cluster.replicas[2].kubeconfig());
    kubectl.apply(&deployment("web", 4, "registry.local/web:1"), &[]);

    let pods = eventually(&cluster, "4 running pods of web:1", |mut api| async move {
        let pods = items(&mut api, "/api/v1/namespaces/default/pods").await;
        (running_images(&pods, "web") == vec!["registry.local/web:1"; 4]).then_some(pods)
    })
    .await;
    for pod in &pods {
        let node = pod["spec"]["nodeName"].as_str().unwrap();
        assert!(node.starts_with("gw-"), "{pod}");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    }
    // Spread: no node has all four.
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for pod in &pods {
        *per_node
            .entry(pod["spec"]["nodeName"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(per_node.len() >= 2, "{per_node:?}");
    let status = kubectl.run(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(status.success, "{}{}", status.stdout, status.stderr);

    // A new image; the leader dies while the rollout is under way.
    kubectl.ok(&[
        "set",
        "image",
        "deployment/web",
        "main=registry.local/web:2",
    ]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leader = cluster.wait_for_leader(TIMEOUT).await;
    cluster.kill(leader);
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    let kubectl = Kubectl::new(&cluster.replicas[survivor].kubeconfig());
    // Four pods of the new image, and nothing else left: no duplicate and
    // no old pod (terminating ones included).
    eventually(
        &cluster,
        "exactly 4 pods of web, all web:2 and running",
        |mut api| async move {
            let pods = items(&mut api, "/api/v1/namespaces/default/pods").await;
            let web = pods
                .iter()
                .filter(|p| p["metadata"]["labels"]["app"] == "web")
                .count();
            (running_images(&pods, "web") == vec!["registry.local/web:2"; 4] && web == 4)
                .then_some(())
        },
    )
    .await;
    let status = kubectl.run(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(status.success, "{}{}", status.stdout, status.stderr);
    let history = kubectl.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let described = kubectl.ok(&["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    kubectl.ok(&["delete", "deployment", "web"]);
    eventually(
        &cluster,
        "web's ReplicaSets and pods collected",
        |mut api| async move {
            let sets = items(&mut api, "/apis/apps/v1/namespaces/default/replicasets").await;
            let pods = items(&mut api, "/api/v1/namespaces/default/pods").await;
            (sets.is_empty() && pods.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_rolls_on_with_a_device_offline_which_converges_when_back() {
    let cluster = Cluster::start(3, ClusterOptions::default());
    let fleet = Fleet::start(
        &cluster,
        0,
        &nodes(4),
        Duration::from_secs(1),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let kubectl = Kubectl::new(&cluster.replicas[0].kubeconfig());
    let daemonset = |image: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  updateStrategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 1}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers: [{{name: main, image: "{image}"}}]
"#
        )
    };
    kubectl.apply(&daemonset("registry.local/agent:1"), &[]);
    eventually(&cluster, "one agent:1 pod per node", |mut api| async move {
        let pods = items(&mut api, "/api/v1/namespaces/default/pods").await;
        (running_images(&pods, "agent") == vec!["registry.local/agent:1"; 4]).then_some(())
    })
    .await;

    fleet.set_offline("gw-3", true).await;
    // The node lifecycle controller notices the silent device.
    eventually(&cluster, "gw-3 Unknown and tainted", |mut api| async move {
        let node = api.get("/api/v1/nodes/gw-3").await.ok()?.json();
        let ready = node["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        let tainted = node["spec"]["taints"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["key"] == "node.kubernetes.io/unreachable")
        });
        (ready["status"] == "Unknown" && tainted).then_some(())
    })
    .await;
    kubectl.apply(&daemonset("registry.local/agent:2"), &[]);
    // The three online devices converge without waiting for the offline one.
    eventually(
        &cluster,
        "agent:2 on the three online nodes",
        |mut api| async move {
            let pods = items(&mut api, "/api/v1/namespaces/default/pods").await;
            let online: Vec<Value> = pods
                .into_iter()
                .filter(|p| p["spec"]["nodeName"] != "gw-3")
                .collect();
            (running_images(&online, "agent") == vec!["registry.local/agent:2"; 3]).then_some(())
        },
    )
    .await;
    // The offline device's pod was never evicted for being offline... and it
    // converges once it is back.
    fleet.set_offline("gw-3", false).await;
    eventually(
        &cluster,
        "agent:2 on all four nodes",
        |mut api| async move {
            let pods = items(&mut api, "/api/v1/namespaces/default/pods").await;
            (running_images(&pods, "agent") == vec!["registry.local/agent:2"; 4]).then_some(())
        },
    )
    .await;
    let mut api = admin(&cluster, 0).await;
    let ds = api
        .get("/apis/apps/v1/namespaces/default/daemonsets/agent")
        .await
        .unwrap()
        .json();
    assert_eq!(ds["status"]["desiredNumberScheduled"], 4, "{ds}");
    let status = kubectl.run(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    assert!(status.success, "{}{}", status.stdout, status.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_fits_nowhere_says_why_and_is_placed_when_a_node_fits() {
    let cluster = Cluster::start(1, ClusterOptions::default());
    let mut small = nodes(2);
    for node in &mut small {
        node.memory = "512Mi".into();
    }
    let _fleet = Fleet::start(
        &cluster,
        0,
        &small,
        Duration::from_secs(2),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let mut api = admin(&cluster, 0).await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"}, "spec": {"containers": [
        {"name": "c", "image": "i", "resources": {"requests": {"memory": "1Gi"}}}]}});
    assert_eq!(
        api.post("/api/v1/namespaces/default/pods", &pod)
            .await
            .unwrap()
            .code,
        201
    );
    let message = eventually(&cluster, "a FailedScheduling event", |mut api| async move {
        let events = items(&mut api, "/api/v1/namespaces/default/events").await;
        events
            .iter()
            .find(|e| e["reason"] == "FailedScheduling" && e["involvedObject"]["name"] == "big")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert!(
        message.contains("0/2 nodes are available: 2 Insufficient memory"),
        "{message}"
    );
    // A bigger device joins: the pod is placed there.
    let mut big = NodeSpec::new("gw-big");
    big.memory = "8Gi".into();
    let _more = Fleet::start(
        &cluster,
        0,
        &[big],
        Duration::from_secs(2),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    eventually(&cluster, "big bound to gw-big", |mut api| async move {
        let pod = api
            .get("/api/v1/namespaces/default/pods/big")
            .await
            .ok()?
            .json();
        (pod["spec"]["nodeName"] == "gw-big").then_some(())
    })
    .await;
}
