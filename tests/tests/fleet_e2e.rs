//! The whole fleet, end to end, on real parts: three hub replicas (each its
//! own process, embedded MQTT endpoints on addresses of the host), two
//! devices each in its own network namespace running the real agent with
//! runc, a local registry, and stock kubectl.
//!
//! A Deployment and a DaemonSet run on the devices; a new image version is
//! rolled out while one device is cut off (every packet dropped), and that
//! device converges when it returns, with no duplicate pods; the replica a
//! device is connected to is killed, and the device fails over to another
//! and goes on receiving its desired state.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flotilla_hub::pki::{CertRequest, ClusterCa};
use flotilla_tests::agent::AgentProcess;
use flotilla_tests::hub::{Cluster, ClusterOptions};
use flotilla_tests::kubectl::Kubectl;
use flotilla_tests::netns::{DeviceNet, HubNet};
use flotilla_tests::registry::{Registry, RegistryOptions};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(180);

fn manifests(image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: {image}
        command: ["sh", "-c", "exec sleep 3600"]
        resources: {{requests: {{cpu: 10m, memory: 8Mi}}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: probe}}
spec:
  selector: {{matchLabels: {{app: probe}}}}
  template:
    metadata: {{labels: {{app: probe}}}}
    spec:
      terminationGracePeriodSeconds: 2
      nodeSelector: {{role: gateway}}
      containers:
      - name: main
        image: {image}
        command: ["sh", "-c", "exec sleep 3600"]
"#
    )
}

/// The pods as (name, node, image, phase, ready, terminating).
fn pods(kubectl: &Kubectl) -> Vec<(String, String, String, String, bool, bool)> {
    let run = kubectl.run(&["get", "pods", "-o", "json"]);
    let Ok(list) = serde_json::from_str::<Value>(&run.stdout) else {
        return Vec::new();
    };
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let ready = p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                p["status"]["phase"].as_str().unwrap_or_default().to_owned(),
                ready,
                p["metadata"]["deletionTimestamp"].is_string(),
            )
        })
        .collect()
}

fn wait_until(what: &str, context: &dyn Fn() -> String, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < LONG,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("{what}: {:?}", start.elapsed());
}

fn node_ready(kubectl: &Kubectl, node: &str) -> Option<String> {
    let run = kubectl.run(&["get", "node", node, "-o", "json"]);
    let node: Value = serde_json::from_str(&run.stdout).ok()?;
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .map(str::to_owned)
}

struct Device {
    net: DeviceNet,
    agent: AgentProcess,
}

fn start_device(
    cluster: &Cluster,
    ca: &ClusterCa,
    certs: &Path,
    registry: &str,
    node: &str,
    first_hub: usize,
) -> Device {
    ca.issue(&CertRequest::device(node, Duration::from_secs(3600)))
        .expect("device certificate")
        .save(certs, node)
        .expect("save");
    let path = |name: String| certs.join(name).display().to_string();
    let mut args = Vec::new();
    // Every replica's endpoint, this device's own first.
    for i in 0..cluster.replicas.len() {
        let replica = &cluster.replicas[(first_hub + i) % cluster.replicas.len()];
        args.extend(["--hub".to_owned(), replica.mqtt.clone()]);
    }
    args.extend([
        "--hub-ca".into(),
        path("ca.crt".into()),
        "--cert".into(),
        path(format!("{node}.crt")),
        "--key".into(),
        path(format!("{node}.key")),
        "--heartbeat-seconds".into(),
        "2".into(),
        "--disk-pressure-percent".into(),
        "0".into(),
        "--node-label".into(),
        "role=gateway".into(),
    ]);
    let net = DeviceNet::new().expect("device network namespace");
    let agent =
        AgentProcess::start_linked_in(registry, node, args, Some(&net.name)).expect("agent");
    Device { net, agent }
}

#[test]
fn three_hubs_and_two_devices_roll_out_past_an_offline_device_and_fail_over() {
    let hub_net = HubNet::new(4).expect("hub addresses");
    let registry = Registry::start(RegistryOptions {
        ip: Some(hub_net.ips[3]),
        ..RegistryOptions::default()
    })
    .expect("registry");
    let image = |tag: &str| format!("{}/flotilla/busybox:{tag}", registry.host());
    push_busybox(&registry.host(), &[&image("1"), &image("2")]);
    let mut cluster = Cluster::start(
        3,
        ClusterOptions {
            mqtt_ips: hub_net.ips[..3].to_vec(),
            extra_args: vec!["--lease-renewal-seconds".into(), "1".into()],
            ..ClusterOptions::default()
        },
    );
    let certs = tempfile::tempdir().expect("temp dir");
    let ca = ClusterCa::load(&cluster.pki_dir()).expect("the cluster CA");
    ca.certificate()
        .save(&certs.path().join("ca.crt"))
        .expect("save");
    let a = start_device(&cluster, &ca, certs.path(), &registry.host(), "device-a", 0);
    let b = start_device(&cluster, &ca, certs.path(), &registry.host(), "device-b", 1);
    // kubectl talks to replica 2, which stays up.
    let kubectl = Kubectl::new(&cluster.replicas[2].kubeconfig());
    let logs: Vec<PathBuf> = cluster
        .replicas
        .iter()
        .map(|r| r.data_dir.with_extension("log"))
        .collect();
    let agent_logs = [
        a.agent.dir.path().join("agent.log"),
        b.agent.dir.path().join("agent.log"),
    ];
    let context = || {
        let mut text = format!("pods: {:#?}\n", pods(&kubectl));
        for log in logs.iter().chain(&agent_logs) {
            let content = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = content.lines().rev().take(40).collect();
            text.push_str(&format!("--- {}:\n", log.display()));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    };

    wait_until("both devices Ready", &context, || {
        ["device-a", "device-b"]
            .iter()
            .all(|n| node_ready(&kubectl, n).as_deref() == Some("True"))
    });

    // A Deployment and a DaemonSet, applied with kubectl, run on the devices.
    kubectl.apply(&manifests(&image("1")), &[]);
    wait_until("4 pods Running and ready", &context, || {
        let pods = pods(&kubectl);
        pods.len() == 4 && pods.iter().all(|p| p.3 == "Running" && p.4)
    });
    let wide = kubectl.ok(&["get", "pods", "-o", "wide"]);
    eprintln!("{wide}");
    assert!(
        wide.contains("device-a") && wide.contains("device-b"),
        "{wide}"
    );

    // device-b is cut off; a new version rolls out meanwhile.
    b.net.cut().expect("cut device-b off");
    wait_until("device-b Unknown", &context, || {
        node_ready(&kubectl, "device-b").as_deref() == Some("Unknown")
    });
    kubectl.ok(&[
        "set",
        "image",
        "deployment/web",
        &format!("main={}", image("2")),
    ]);
    kubectl.ok(&[
        "set",
        "image",
        "daemonset/probe",
        &format!("main={}", image("2")),
    ]);
    wait_until(
        "the Deployment rolled out on device-a, device-b's DaemonSet pod still old",
        &context,
        || {
            let pods = pods(&kubectl);
            let web_new_ready = pods
                .iter()
                .filter(|p| p.0.starts_with("web-") && p.2 == image("2") && p.4 && !p.5)
                .count();
            let probe_a = pods.iter().any(|p| {
                p.0.starts_with("probe-") && p.1 == "device-a" && p.2 == image("2") && p.4
            });
            web_new_ready == 2 && probe_a
        },
    );

    // device-b returns and converges: its DaemonSet pod at the new version,
    // nothing old left, exactly one DaemonSet pod per device.
    b.net.heal().expect("heal device-b");
    wait_until("device-b converged", &context, || {
        let pods = pods(&kubectl);
        let probes: Vec<_> = pods.iter().filter(|p| p.0.starts_with("probe-")).collect();
        node_ready(&kubectl, "device-b").as_deref() == Some("True")
            && pods
                .iter()
                .all(|p| p.2 == image("2") && p.3 == "Running" && p.4 && !p.5)
            && probes.len() == 2
            && probes.iter().any(|p| p.1 == "device-a")
            && probes.iter().any(|p| p.1 == "device-b")
            && pods.len() == 4
    });
    // On device-b itself, only what the API shows runs: one container per
    // pod bound there.
    let bound_to_b = pods(&kubectl).iter().filter(|p| p.1 == "device-b").count();
    wait_until("device-b's containers match its pods", &context, || {
        b.agent
            .runtime_containers()
            .iter()
            .filter(|c| c.1 == "running")
            .count()
            == bound_to_b
    });

    // The replica device-a is connected to dies: device-a fails over to
    // another replica and goes on receiving its desired state.
    let a_log = || std::fs::read_to_string(&agent_logs[0]).unwrap_or_default();
    let links_before = a_log().matches("hub link up").count();
    cluster.kill(0);
    wait_until("device-a reconnected elsewhere", &context, || {
        a_log().matches("hub link up").count() > links_before
    });
    kubectl.ok(&["scale", "deployment/web", "--replicas=4"]);
    wait_until("4 web pods Running after the failover", &context, || {
        let pods = pods(&kubectl);
        let web: Vec<_> = pods.iter().filter(|p| p.0.starts_with("web-")).collect();
        web.len() == 4 && web.iter().all(|p| p.3 == "Running" && p.4)
    });
    assert_eq!(
        node_ready(&kubectl, "device-a").as_deref(),
        Some("True"),
        "{}",
        context()
    );
    drop(a);
    drop(b);
}

/// Pushes busybox (from busybox-static) under every reference given.
fn push_busybox(host: &str, references: &[&str]) {
    let image =
        flotilla_tests::oci_image::busybox_image(flotilla_agent::image::Platform::of_this_device())
            .expect("busybox image");
    let client = flotilla_tests::oci_image::push_client(host).expect("client");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            for reference in references {
                flotilla_tests::oci_image::push_image(
                    &client,
                    reference,
                    &image,
                    &oci_client::secrets::RegistryAuth::Anonymous,
                )
                .await
                .expect("push");
            }
        });
}
