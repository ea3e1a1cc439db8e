//! The hub and a device over each kind of broker: a `flotilla-hub server`
//! whose gateway is a client of Debian's Mosquitto (TLS, client
//! certificates, Flotilla's ACL), or that serves devices on its embedded
//! endpoint, and a `flotilla-agent run --hub` process connected to it. Stock kubectl creates pods; the device registers its
//! Node, runs them through runc and reports them Running at the hub; its
//! Lease is renewed; a pod whose ConfigMap is missing says so as kubelet
//! would; `kubectl logs` (and `-f`) reads a container's log from the
//! device; a deleted pod is stopped on the device and then gone from the
//! API; a killed agent's last will marks its Node Unknown.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flotilla_hub::pki::{CertRequest, ClusterCa};
use flotilla_tests::agent::{AgentProcess, registry_with_busybox};
use flotilla_tests::devices::device_args;
use flotilla_tests::hub::{Cluster, ClusterOptions};
use flotilla_tests::kubectl::Kubectl;
use flotilla_tests::mqtt::{
    FOREIGN_TOPICS_OF_DEVICE_1, Mosquitto, TestPki, device_link_args, heartbeat_file,
    hub_broker_args,
};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(90);

/// What every device of these tests adds to its link flags.
fn common_device_args() -> Vec<String> {
    vec!["--node-label".into(), "site=lab".into()]
}

/// Polls `kubectl get ... -o json` until `check` answers `Some`.
fn eventually<T>(
    kubectl: &Kubectl,
    args: &[&str],
    what: &str,
    context: &dyn Fn() -> String,
    check: impl Fn(&Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + LONG;
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    let mut last = Value::Null;
    loop {
        let run = kubectl.run(&args);
        if run.success
            && let Ok(value) = serde_json::from_str::<Value>(&run.stdout)
        {
            if let Some(found) = check(&value) {
                eprintln!(
                    "{what}: after {:?}",
                    LONG.saturating_sub(deadline - Instant::now())
                );
                return found;
            }
            last = value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last seen:\n{last:#}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until pod `name` is gone from the API.
fn gone(kubectl: &Kubectl, name: &str, context: &dyn Fn() -> String) {
    let what = format!("{name} gone");
    eventually(kubectl, &["get", "pods"], &what, context, |list| {
        let names: Vec<&str> = list["items"]
            .as_array()?
            .iter()
            .filter_map(|p| p["metadata"]["name"].as_str())
            .collect();
        (!names.contains(&name)).then_some(())
    });
}

fn pod_manifest(name: &str, image: &str, config_map: Option<&str>) -> String {
    let env = config_map.map_or(String::new(), |cm| {
        format!("\n    envFrom:\n    - configMapRef: {{name: {cm}}}")
    });
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "exec sleep 3600"]{env}
"#
    )
}

#[test]
fn the_hub_runs_pods_on_a_device_over_mosquitto() {
    let (registry, image) = registry_with_busybox();
    let pki = TestPki::new().expect("pki");
    let broker = Mosquitto::start(&pki).expect("mosquitto");
    let cluster = Cluster::start(
        1,
        ClusterOptions {
            extra_args: hub_broker_args(&broker, &pki),
            ..ClusterOptions::default()
        },
    );
    let node = "device-a";
    let mut agent = AgentProcess::start_linked(&registry.host(), node, {
        let mut args = device_link_args(&broker, &pki, node);
        args.extend(common_device_args());
        args
    })
    .expect("agent");
    let hub_log = cluster.replicas[0].data_dir.with_extension("log");
    let agent_log = agent.dir.path().join("agent.log");
    let context = || {
        format!(
            "hub log:\n{}\nagent log:\n{}\nbroker log:\n{}",
            std::fs::read_to_string(&hub_log).unwrap_or_default(),
            std::fs::read_to_string(&agent_log).unwrap_or_default(),
            broker.log()
        )
    };
    let kubectl = Kubectl::new(&cluster.replicas[0].kubeconfig());
    scenario(&kubectl, &mut agent, node, &image, &context);
}

#[test]
fn the_hub_runs_pods_on_a_device_over_its_embedded_endpoint() {
    let (registry, image) = registry_with_busybox();
    let cluster = Cluster::start(
        1,
        ClusterOptions {
            extra_args: vec!["--lease-renewal-seconds".into(), "1".into()],
            ..ClusterOptions::default()
        },
    );
    let node = "device-b";
    let certs = tempfile::tempdir().expect("temp dir");
    let ca = ClusterCa::load(&cluster.pki_dir()).expect("the cluster CA");
    ca.certificate()
        .save(&certs.path().join("ca.crt"))
        .expect("save");
    let mut extra = vec!["--heartbeat-seconds", "2"];
    let common = common_device_args();
    extra.extend(common.iter().map(String::as_str));
    let args = device_args(&cluster, &ca, certs.path(), node, 0, &extra);
    let mut agent = AgentProcess::start_linked(&registry.host(), node, args).expect("agent");
    let hub_log = cluster.replicas[0].data_dir.with_extension("log");
    let agent_log = agent.dir.path().join("agent.log");
    let context = || {
        format!(
            "hub log:\n{}\nagent log:\n{}",
            std::fs::read_to_string(&hub_log).unwrap_or_default(),
            std::fs::read_to_string(&agent_log).unwrap_or_default(),
        )
    };
    let kubectl = Kubectl::new(&cluster.replicas[0].kubeconfig());
    scenario(&kubectl, &mut agent, node, &image, &context);
}

/// What both brokers must do: register, lease, run, explain, delete, will.
fn scenario(
    kubectl: &Kubectl,
    agent: &mut AgentProcess,
    node: &str,
    image: &str,
    context: &dyn Fn() -> String,
) {
    // The device registers its Node, Ready, with its labels.
    let labels = eventually(kubectl, &["get", "node", node], "the Node", context, |n| {
        let ready = n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then(|| n["metadata"]["labels"].clone())
    });
    assert_eq!(labels["site"], "lab", "{labels}");
    assert_eq!(labels["kubernetes.io/hostname"], node);
    // Its Lease lasts three heartbeats and is renewed.
    let renewed = |l: &Value| l["spec"]["renewTime"].as_str().map(str::to_owned);
    let first = eventually(
        kubectl,
        &["get", "lease", "-n", "kube-node-lease", node],
        "the Lease",
        context,
        renewed,
    );
    eventually(
        kubectl,
        &["get", "lease", "-n", "kube-node-lease", node],
        "a renewal",
        context,
        |l| {
            assert_eq!(l["spec"]["leaseDurationSeconds"], 16, "{l}");
            renewed(l).filter(|t| *t != first)
        },
    );

    // A pod, applied with kubectl, runs on the device.
    kubectl.apply(&pod_manifest("hello", image, None), &[]);
    let status = eventually(
        kubectl,
        &["get", "pod", "hello"],
        "hello Running",
        context,
        |p| {
            let status = &p["status"];
            (status["phase"] == "Running"
                && status["containerStatuses"][0]["state"]["running"].is_object()
                && status["conditions"]
                    .as_array()?
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True"))
            .then(|| status.clone())
        },
    );
    assert_eq!(status["containerStatuses"][0]["ready"], true, "{status}");
    assert!(
        status["hostIP"].as_str().is_some_and(|ip| !ip.is_empty()),
        "{status}"
    );
    assert_eq!(agent.runtime_containers().len(), 1, "{}", context());

    // A pod whose ConfigMap is missing says why, as kubelet does, and the
    // device is not asked to run it.
    kubectl.apply(&pod_manifest("needs-config", image, Some("absent")), &[]);
    let waiting = eventually(
        kubectl,
        &["get", "pod", "needs-config"],
        "CreateContainerConfigError",
        context,
        |p| {
            let waiting = &p["status"]["containerStatuses"][0]["state"]["waiting"];
            (waiting["reason"] == "CreateContainerConfigError").then(|| waiting.clone())
        },
    );
    assert_eq!(waiting["message"], "configmap \"absent\" not found");
    // Once the ConfigMap exists, it runs.
    kubectl.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: absent}\ndata: {GREETING: hi}\n",
        &[],
    );
    eventually(
        kubectl,
        &["get", "pod", "needs-config"],
        "needs-config Running",
        context,
        |p| (p["status"]["phase"] == "Running").then_some(()),
    );

    // `kubectl logs`, through the hub and the device link: the whole log,
    // -f following what comes later, and a wrong container refused.
    kubectl.apply(
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: talker}}\n\
             spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    \
             command: [sh, -c, 'echo hello; echo world; while true; do echo tick; sleep 0.3; done']\n"
        ),
        &[],
    );
    eventually(
        kubectl,
        &["get", "pod", "talker"],
        "talker Running",
        context,
        |p| (p["status"]["phase"] == "Running").then_some(()),
    );
    let mut follow = kubectl.spawn(&["logs", "-f", "talker"]);
    let start = Instant::now();
    loop {
        let logs = kubectl.run(&["logs", "talker"]);
        if logs.success && logs.stdout.starts_with("hello\nworld\n") {
            break;
        }
        assert!(
            start.elapsed() < LONG,
            "kubectl logs: {logs:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let tail = kubectl.ok(&["logs", "talker", "--tail=1", "--timestamps"]);
    assert_eq!(tail.lines().count(), 1, "{tail:?}");
    assert!(tail.starts_with("20") && tail.contains("Z "), "{tail:?}");
    let wrong = kubectl.fails(&["logs", "talker", "-c", "nope"]);
    assert!(
        wrong.contains("container nope is not valid for pod talker"),
        "{wrong}"
    );
    // The follower shows the first lines, then goes on with what comes
    // (the container ticks), its response open.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut out = follow.stdout.take().expect("piped");
    let sink = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buffer[..n]);
        }
    });
    let followed = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let start = Instant::now();
    while !followed().contains("tick\n") {
        assert!(
            start.elapsed() < LONG,
            "kubectl logs -f saw {:?}\n{}",
            followed(),
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = followed().matches("tick\n").count();
    std::thread::sleep(Duration::from_secs(2));
    let after = followed().matches("tick\n").count();
    assert!(followed().starts_with("hello\nworld\n"), "{:?}", followed());
    assert!(
        after > before + 2,
        "kubectl logs -f stopped following: {before} then {after}"
    );
    assert!(
        follow.try_wait().expect("kubectl").is_none(),
        "kubectl logs -f ended"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    kubectl.ok(&["delete", "pod", "talker", "--wait=false"]);
    gone(kubectl, "talker", context);

    // Deleting a pod stops it on the device, and then it is gone.
    kubectl.ok(&["delete", "pod", "hello", "--wait=false"]);
    gone(kubectl, "hello", context);
    assert_eq!(agent.runtime_containers().len(), 1, "{}", context());

    // The agent dies without a goodbye: the broker publishes its last will
    // and the hub marks the Node Unknown at once, long before its Lease runs
    // out.
    agent.kill9();
    eventually(
        kubectl,
        &["get", "node", node],
        "the Node Unknown",
        context,
        |n| {
            n["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "Unknown")
                .then_some(())
        },
    );
}

/// `mosquitto_sub` / `mosquitto_pub` against `endpoint` (`ip:port`), with
/// a certificate and key (or none).
fn mosquitto_client(
    tool: &str,
    endpoint: &str,
    ca: &Path,
    cert: Option<(&Path, &Path)>,
    args: &[&str],
) -> std::process::Output {
    let (host, port) = endpoint.rsplit_once(':').expect("ip:port");
    let mut command = Command::new(tool);
    command
        .args(["-h", host, "-p", port])
        .arg("--cafile")
        .arg(ca);
    if let Some((cert, key)) = cert {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mosquitto client")
}

#[test]
fn on_the_embedded_endpoint_a_device_reaches_only_its_own_topics() {
    let cluster = Cluster::start(1, ClusterOptions::default());
    let endpoint = cluster.replicas[0].mqtt.clone();
    let certs = tempfile::tempdir().expect("temp dir");
    let dir = certs.path();
    let ca = ClusterCa::load(&cluster.pki_dir()).expect("the cluster CA");
    ca.certificate().save(&dir.join("ca.crt")).expect("save");
    for node in ["device-1", "device-2"] {
        ca.issue(&CertRequest::device(node, Duration::from_secs(3600)))
            .expect("device certificate")
            .save(dir, node)
            .expect("save");
    }
    let pair = |stem: &str| {
        (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        )
    };
    let (d1, d1_key) = pair("device-1");
    let (d2, d2_key) = pair("device-2");
    let ca_file = dir.join("ca.crt");
    let kubectl = Kubectl::new(&cluster.replicas[0].kubeconfig());
    // device-2 has a Node and a pod bound to it: a desired state.
    kubectl.apply(
        "apiVersion: v1\nkind: Node\nmetadata: {name: device-2}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: p2}\n\
         spec: {nodeName: device-2, containers: [{name: main, image: busybox}]}\n",
        &[],
    );
    let sub = |cert: Option<(&Path, &Path)>, id: &str, filter: &str| {
        mosquitto_client(
            "mosquitto_sub",
            &endpoint,
            &ca_file,
            cert,
            &["-t", filter, "-C", "1", "-W", "3", "-i", id, "-q", "1"],
        )
    };

    // device-2 gets its own desired state as soon as it subscribes.
    let own = sub(
        Some((&d2, &d2_key)),
        "device-2",
        "flotilla/v1/nodes/device-2/desired",
    );
    assert!(
        own.status.success() && !own.stdout.is_empty(),
        "device-2 read nothing of its own: {own:?}"
    );

    // device-1 is refused every filter but its own, wildcards included.
    for filter in [
        "flotilla/v1/nodes/device-2/desired",
        "flotilla/v1/nodes/+/desired",
        "flotilla/v1/nodes/#",
        "flotilla/v1/#",
        "#",
        "flotilla/v1/nodes/device-2/logs/request",
        "flotilla/v1/nodes/device-2/status",
        "flotilla/v1/nodes/device-1/status",
    ] {
        let out = sub(Some((&d1, &d1_key)), "device-1", filter);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.stdout.is_empty() && stderr.contains("denied"),
            "device-1 subscribed to {filter}: {out:?}"
        );
    }

    // device-1 cannot publish for device-2, nor on any desired topic: the
    // endpoint closes the connection instead of acknowledging.
    let payload = heartbeat_file(dir, "device-2").display().to_string();
    for topic in FOREIGN_TOPICS_OF_DEVICE_1 {
        let out = mosquitto_client(
            "mosquitto_pub",
            &endpoint,
            &ca_file,
            Some((&d1, &d1_key)),
            &["-t", topic, "-f", &payload, "-q", "1", "-i", "device-1"],
        );
        assert!(
            !out.status.success(),
            "device-1 published on {topic}: {out:?}"
        );
    }
    // Its own heartbeat topic is open to it (the refusals above are ACLs,
    // not a broken connection).
    let own_payload = heartbeat_file(dir, "device-1");
    let out = mosquitto_client(
        "mosquitto_pub",
        &endpoint,
        &ca_file,
        Some((&d1, &d1_key)),
        &[
            "-t",
            "flotilla/v1/nodes/device-1/heartbeat",
            "-f",
            &own_payload.display().to_string(),
            "-q",
            "1",
            "-i",
            "device-1",
        ],
    );
    assert!(out.status.success(), "device-1's own heartbeat: {out:?}");
    // Nothing of it reached the store: device-2 has no Lease.
    let lease = kubectl.run(&["get", "lease", "-n", "kube-node-lease", "device-2"]);
    assert!(
        !lease.success,
        "a forged heartbeat renewed device-2's Lease"
    );

    // Refused outright: no certificate, another CA's certificate for a
    // device's name, a cluster certificate that is not a device's (the
    // admin's), and device-1's certificate under device-2's client id.
    let foreign = TestPki::new().expect("pki");
    let (foreign_cert, foreign_key) = foreign.issue("device-1", false).expect("cert");
    let admin = (
        cluster.pki_dir().join("admin.crt"),
        cluster.pki_dir().join("admin.key"),
    );
    for (what, cert, id) in [
        ("no certificate", None, "device-1"),
        (
            "another CA",
            Some((foreign_cert.as_path(), foreign_key.as_path())),
            "device-1",
        ),
        (
            "the admin certificate",
            Some((admin.0.as_path(), admin.1.as_path())),
            "admin",
        ),
        (
            "another device's client id",
            Some((d1.as_path(), d1_key.as_path())),
            "device-2",
        ),
    ] {
        let out = mosquitto_client(
            "mosquitto_pub",
            &endpoint,
            &ca_file,
            cert,
            &[
                "-t",
                "flotilla/v1/nodes/device-1/heartbeat",
                "-m",
                "x",
                "-q",
                "1",
                "-i",
                id,
            ],
        );
        assert!(!out.status.success(), "{what} was let in: {out:?}");
    }
}
