//! A fleet on one machine for end-to-end tests: devices (the real agent in
//! its own network namespace, with a certificate from the cluster CA) linked
//! to a hub cluster's embedded endpoints, and what kubectl shows of them.

use std::path::Path;
use std::time::{Duration, Instant};

use flotilla_hub::pki::{CertRequest, ClusterCa};
use serde_json::Value;

use crate::agent::AgentProcess;
use crate::hub::Cluster;
use crate::kubectl::Kubectl;
use crate::netns::DeviceNet;

/// How long any one wait of these tests may take.
pub const LONG: Duration = Duration::from_secs(180);

/// One pod as kubectl shows it.
#[derive(Debug, Clone)]
pub struct PodView {
    pub name: String,
    pub node: String,
    pub image: String,
    pub phase: String,
    pub ready: bool,
    pub terminating: bool,
    /// Each container's (id, restart count).
    pub containers: Vec<(String, i64)>,
}

/// The pods of the default namespace.
pub fn pods(kubectl: &Kubectl) -> Vec<PodView> {
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
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            PodView {
                name: text(&p["metadata"]["name"]),
                node: text(&p["spec"]["nodeName"]),
                image: text(&p["spec"]["containers"][0]["image"]),
                phase: text(&p["status"]["phase"]),
                ready: p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                }),
                terminating: p["metadata"]["deletionTimestamp"].is_string(),
                containers: p["status"]["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        (
                            text(&c["containerID"]),
                            c["restartCount"].as_i64().unwrap_or(0),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Polls `done` every half second; panics with `context()` after [`LONG`].
pub fn wait_until(what: &str, context: &dyn Fn() -> String, mut done: impl FnMut() -> bool) {
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

/// The status of the node's Ready condition.
pub fn node_ready(kubectl: &Kubectl, node: &str) -> Option<String> {
    let run = kubectl.run(&["get", "node", node, "-o", "json"]);
    let node: Value = serde_json::from_str(&run.stdout).ok()?;
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .map(str::to_owned)
}

/// A device: its namespace and its agent.
#[derive(Debug)]
pub struct Device {
    pub net: DeviceNet,
    pub agent: AgentProcess,
}

/// Starts device `node` in a new network namespace, linked to every
/// replica's endpoint (replica `first_hub`'s first), pulling from
/// `registry`, heartbeating every 2 s; its certificate is issued from `ca`
/// into `certs` (which holds `ca.crt`).
pub fn start_device(
    cluster: &Cluster,
    ca: &ClusterCa,
    certs: &Path,
    registry: &str,
    node: &str,
    first_hub: usize,
) -> Device {
    let args = device_args(
        cluster,
        ca,
        certs,
        node,
        first_hub,
        &["--heartbeat-seconds", "2"],
    );
    let net = DeviceNet::new().expect("device network namespace");
    let agent =
        AgentProcess::start_linked_in(registry, node, args, Some(&net.name)).expect("agent");
    Device { net, agent }
}

/// The `flotilla-agent run` link flags of device `node` (its certificate
/// issued into `certs`), with `extra` flags.
pub fn device_args(
    cluster: &Cluster,
    ca: &ClusterCa,
    certs: &Path,
    node: &str,
    first_hub: usize,
    extra: &[&str],
) -> Vec<String> {
    if !certs.join("ca.crt").exists() {
        ca.certificate()
            .save(&certs.join("ca.crt"))
            .expect("save the CA");
    }
    ca.issue(&CertRequest::device(node, Duration::from_secs(24 * 3600)))
        .expect("device certificate")
        .save(certs, node)
        .expect("save");
    let path = |name: String| certs.join(name).display().to_string();
    let mut args = Vec::new();
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
        // Shared test machines run with little disk free.
        "--disk-pressure-percent".into(),
        "0".into(),
        "--node-label".into(),
        "role=gateway".into(),
    ]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// The last lines of each log file, for failure messages.
pub fn log_tails(files: &[std::path::PathBuf], lines: usize) -> String {
    let mut text = String::new();
    for file in files {
        let content = std::fs::read_to_string(file).unwrap_or_default();
        let tail: Vec<&str> = content.lines().rev().take(lines).collect();
        text.push_str(&format!("--- {}:\n", file.display()));
        for line in tail.into_iter().rev() {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// Pushes busybox (from busybox-static) under every reference given.
pub fn push_busybox(host: &str, references: &[&str]) {
    let image = crate::oci_image::busybox_image(flotilla_agent::image::Platform::of_this_device())
        .expect("busybox image");
    let client = crate::oci_image::push_client(host).expect("client");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            for reference in references {
                crate::oci_image::push_image(
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
