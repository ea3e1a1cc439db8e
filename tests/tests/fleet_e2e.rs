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

use std::path::PathBuf;

use flotilla_hub::pki::ClusterCa;
use flotilla_tests::devices::{
    log_tails, node_ready, pods, push_busybox, start_device, wait_until,
};
use flotilla_tests::hub::{Cluster, ClusterOptions};
use flotilla_tests::kubectl::Kubectl;
use flotilla_tests::netns::HubNet;
use flotilla_tests::registry::{Registry, RegistryOptions};

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
        command: ["sh", "-c", "echo probe ready; exec sleep 3600"]
"#
    )
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
        let files: Vec<PathBuf> = logs.iter().chain(&agent_logs).cloned().collect();
        format!("pods: {:#?}\n{}", pods(&kubectl), log_tails(&files, 40))
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
        pods.len() == 4 && pods.iter().all(|p| p.phase == "Running" && p.ready)
    });
    let wide = kubectl.ok(&["get", "pods", "-o", "wide"]);
    eprintln!("{wide}");
    assert!(
        wide.contains("device-a") && wide.contains("device-b"),
        "{wide}"
    );
    // `kubectl logs` of each DaemonSet pod through replica 2, which neither
    // device is connected to: forwarded to the replica each one is on.
    for device in ["device-a", "device-b"] {
        let pod = pods(&kubectl)
            .into_iter()
            .find(|p| p.node == device && p.name.starts_with("probe-"))
            .expect("a probe pod on each device");
        wait_until(
            &format!("kubectl logs {} on {device}", pod.name),
            &context,
            || kubectl.run(&["logs", &pod.name]).stdout == "probe ready\n",
        );
    }

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
                .filter(|p| {
                    p.name.starts_with("web-") && p.image == image("2") && p.ready && !p.terminating
                })
                .count();
            let probe_a = pods.iter().any(|p| {
                p.name.starts_with("probe-")
                    && p.node == "device-a"
                    && p.image == image("2")
                    && p.ready
            });
            web_new_ready == 2 && probe_a
        },
    );

    // device-b returns and converges: its DaemonSet pod at the new version,
    // nothing old left, exactly one DaemonSet pod per device.
    b.net.heal().expect("heal device-b");
    wait_until("device-b converged", &context, || {
        let pods = pods(&kubectl);
        let probes: Vec<_> = pods
            .iter()
            .filter(|p| p.name.starts_with("probe-"))
            .collect();
        node_ready(&kubectl, "device-b").as_deref() == Some("True")
            && pods
                .iter()
                .all(|p| p.image == image("2") && p.phase == "Running" && p.ready && !p.terminating)
            && probes.len() == 2
            && probes.iter().any(|p| p.node == "device-a")
            && probes.iter().any(|p| p.node == "device-b")
            && pods.len() == 4
    });
    // On device-b itself, only what the API shows runs: one container per
    // pod bound there.
    let bound_to_b = pods(&kubectl)
        .iter()
        .filter(|p| p.node == "device-b")
        .count();
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
        let web: Vec<_> = pods.iter().filter(|p| p.name.starts_with("web-")).collect();
        web.len() == 4 && web.iter().all(|p| p.phase == "Running" && p.ready)
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
