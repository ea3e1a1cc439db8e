//! The device link over bad links, with real processes: a hub, devices each
//! in its own network namespace running the real agent and runc, faults
//! injected with nftables inside the device's namespace.
//!
//! - 30 % random packet loss both ways on the device link: pods still
//!   deploy and roll out;
//! - the hub (embedded broker) restarted, and an external Mosquitto
//!   restarted without persistence: devices reconnect, keep their pods, and
//!   take new work;
//! - a device cut off for 10 minutes (`FLOTILLA_CUTOFF_SECONDS` shortens it
//!   when iterating) while its desired state changes twice: it keeps its
//!   pods running, then converges to the latest state with no duplicates and
//!   no restart of what did not change;
//! - the agent restarted while offline, its containers gone too (a reboot):
//!   it brings its pods back from local state before the link returns.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use flotilla_hub::pki::ClusterCa;
use flotilla_tests::agent::AgentProcess;
use flotilla_tests::devices::{
    Device, PodView, log_tails, node_ready, pods, push_busybox, start_device, wait_until,
};
use flotilla_tests::hub::{Cluster, ClusterOptions};
use flotilla_tests::kubectl::Kubectl;
use flotilla_tests::mqtt::{Mosquitto, TestPki, device_link_args, hub_broker_args};
use flotilla_tests::netns::HubNet;
use flotilla_tests::registry::{Registry, RegistryOptions};

/// One replica and one device in its own namespace.
struct Setup {
    _hub_net: HubNet,
    hub_ip: std::net::Ipv4Addr,
    registry: Registry,
    cluster: Cluster,
    device: Device,
    kubectl: Kubectl,
    _certs: tempfile::TempDir,
}

impl Setup {
    fn new(node: &str) -> Setup {
        let hub_net = HubNet::new(2).expect("hub addresses");
        let registry = Registry::start(RegistryOptions {
            ip: Some(hub_net.ips[1]),
            ..RegistryOptions::default()
        })
        .expect("registry");
        push_busybox(
            &registry.host(),
            &[
                &format!("{}/flotilla/busybox:1", registry.host()),
                &format!("{}/flotilla/busybox:2", registry.host()),
            ],
        );
        let cluster = Cluster::start(
            1,
            ClusterOptions {
                mqtt_ips: vec![hub_net.ips[0]],
                extra_args: vec!["--lease-renewal-seconds".into(), "1".into()],
                ..ClusterOptions::default()
            },
        );
        let certs = tempfile::tempdir().expect("temp dir");
        let ca = ClusterCa::load(&cluster.pki_dir()).expect("the cluster CA");
        let device = start_device(&cluster, &ca, certs.path(), &registry.host(), node, 0);
        let kubectl = Kubectl::new(&cluster.replicas[0].kubeconfig());
        Setup {
            hub_ip: hub_net.ips[0],
            _hub_net: hub_net,
            registry,
            cluster,
            device,
            kubectl,
            _certs: certs,
        }
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/flotilla/busybox:{tag}", self.registry.host())
    }

    fn context(&self) -> String {
        let files: Vec<PathBuf> = vec![
            self.cluster.replicas[0].data_dir.with_extension("log"),
            self.device.agent.dir.path().join("agent.log"),
        ];
        format!(
            "pods: {:#?}\n{}",
            pods(&self.kubectl),
            log_tails(&files, 60)
        )
    }

    fn wait_ready(&self, node: &str) {
        wait_until(&format!("{node} Ready"), &|| self.context(), || {
            node_ready(&self.kubectl, node).as_deref() == Some("True")
        });
    }

    /// Waits until exactly `names` are the pods, all Running and ready
    /// (and nothing is terminating), and until the device runs exactly one
    /// container per pod.
    fn wait_converged(&self, what: &str, names: &[&str]) -> Vec<PodView> {
        wait_until(what, &|| self.context(), || {
            let pods = pods(&self.kubectl);
            pods.len() == names.len()
                && pods.iter().all(|p| {
                    names.contains(&p.name.as_str())
                        && p.phase == "Running"
                        && p.ready
                        && !p.terminating
                })
        });
        wait_until(
            &format!("{what}: the device's containers"),
            &|| self.context(),
            || running_containers(&self.device.agent) == names.len(),
        );
        pods(&self.kubectl)
    }
}

fn running_containers(agent: &AgentProcess) -> usize {
    agent
        .runtime_containers()
        .iter()
        .filter(|c| c.1 == "running")
        .count()
}

fn bound_pod(name: &str, node: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  \
         terminationGracePeriodSeconds: 2\n  containers:\n  - name: main\n    image: {image}\n    \
         command: [sh, -c, exec sleep 3600]\n"
    )
}

fn container_of<'a>(pods: &'a [PodView], name: &str) -> &'a (String, i64) {
    &pods
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no pod {name}"))
        .containers[0]
}

#[test]
fn pods_deploy_and_roll_out_through_thirty_percent_packet_loss() {
    let setup = Setup::new("lossy");
    setup.wait_ready("lossy");
    // The device link (to the hub's address) loses 30 % of its packets
    // each way; the registry is reached unharmed.
    setup.device.net.loss(30, setup.hub_ip).expect("loss");
    let deployment = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 3\n  \
             selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
             spec:\n      terminationGracePeriodSeconds: 2\n      containers:\n      - name: main\n        \
             image: {image}\n        command: [sh, -c, exec sleep 3600]\n"
        )
    };
    setup.kubectl.apply(&deployment(&setup.image("1")), &[]);
    let converged = |what: &str, image: &str| {
        wait_until(what, &|| setup.context(), || {
            let pods = pods(&setup.kubectl);
            pods.len() == 3
                && pods
                    .iter()
                    .all(|p| p.image == image && p.phase == "Running" && p.ready && !p.terminating)
        });
        wait_until(
            &format!("{what}: 3 containers"),
            &|| setup.context(),
            || running_containers(&setup.device.agent) == 3,
        );
    };
    converged("3 pods Running through 30 % loss", &setup.image("1"));
    setup.kubectl.ok(&[
        "set",
        "image",
        "deployment/web",
        &format!("main={}", setup.image("2")),
    ]);
    converged("rolled out through 30 % loss", &setup.image("2"));
    setup.device.net.heal().expect("heal");
}

#[test]
fn a_device_rides_out_a_restart_of_its_hub_and_its_embedded_broker() {
    let mut setup = Setup::new("steady");
    setup.wait_ready("steady");
    setup
        .kubectl
        .apply(&bound_pod("first", "steady", &setup.image("1")), &[]);
    let before = setup.wait_converged("first Running", &["first"]);
    let links = || {
        std::fs::read_to_string(setup.device.agent.dir.path().join("agent.log"))
            .unwrap_or_default()
            .matches("hub link up")
            .count()
    };
    let links_before = links();
    setup.cluster.kill(0);
    setup.cluster.spawn(0);
    wait_until("the device reconnected", &|| setup.context(), || {
        links() > links_before
    });
    setup
        .kubectl
        .apply(&bound_pod("second", "steady", &setup.image("1")), &[]);
    let after = setup.wait_converged("second Running after the restart", &["first", "second"]);
    assert_eq!(
        container_of(&before, "first"),
        container_of(&after, "first"),
        "first was restarted\n{}",
        setup.context()
    );
}

#[test]
fn a_device_cut_off_for_ten_minutes_converges_to_the_latest_state() {
    let cutoff = Duration::from_secs(
        std::env::var("FLOTILLA_CUTOFF_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    let setup = Setup::new("remote");
    setup.wait_ready("remote");
    let image = setup.image("1");
    for name in ["keeper", "first"] {
        setup.kubectl.apply(&bound_pod(name, "remote", &image), &[]);
    }
    let before = setup.wait_converged("keeper and first Running", &["keeper", "first"]);

    setup.device.net.cut().expect("cut");
    let cut_at = Instant::now();
    // Change 1: a new pod.
    setup
        .kubectl
        .apply(&bound_pod("second", "remote", &image), &[]);
    std::thread::sleep(cutoff / 2);
    // The device keeps running what it had.
    assert_eq!(
        running_containers(&setup.device.agent),
        2,
        "{}",
        setup.context()
    );
    // Change 2: first goes, third comes.
    setup
        .kubectl
        .ok(&["delete", "pod", "first", "--wait=false"]);
    setup
        .kubectl
        .apply(&bound_pod("third", "remote", &image), &[]);
    std::thread::sleep(cutoff.saturating_sub(cut_at.elapsed()));
    assert_eq!(
        running_containers(&setup.device.agent),
        2,
        "{}",
        setup.context()
    );
    assert_eq!(
        node_ready(&setup.kubectl, "remote").as_deref(),
        Some("Unknown"),
        "{}",
        setup.context()
    );
    setup.device.net.heal().expect("heal");
    let after = setup.wait_converged(
        "the latest state after the cut-off",
        &["keeper", "second", "third"],
    );
    assert_eq!(
        container_of(&before, "keeper"),
        container_of(&after, "keeper"),
        "keeper was restarted\n{}",
        setup.context()
    );
    setup.wait_ready("remote");
}

#[test]
fn an_agent_restarted_offline_brings_its_pods_back_from_local_state() {
    let mut setup = Setup::new("rebooted");
    setup.wait_ready("rebooted");
    let image = setup.image("1");
    setup
        .kubectl
        .apply(&bound_pod("app", "rebooted", &image), &[]);
    let before = setup.wait_converged("app Running", &["app"]);
    setup.device.net.cut().expect("cut");
    // A reboot while offline: the agent and its containers die.
    setup.device.agent.kill9();
    for (_, _, pid) in setup.device.agent.runtime_containers() {
        if pid > 0 {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
    wait_until("the containers dead", &|| setup.context(), || {
        running_containers(&setup.device.agent) == 0
    });
    setup.device.agent.restart().expect("restart the agent");
    wait_until(
        "app running again, still offline",
        &|| setup.context(),
        || running_containers(&setup.device.agent) == 1,
    );
    setup.device.net.heal().expect("heal");
    // The hub hears of the new container once the link is back.
    let old = container_of(&before, "app").clone();
    wait_until("the new container reported", &|| setup.context(), || {
        let pods = pods(&setup.kubectl);
        pods.iter()
            .any(|p| p.name == "app" && p.containers.first().is_some_and(|c| *c != old))
    });
    setup.wait_converged("app Running after the link returns", &["app"]);
}

#[test]
fn devices_and_the_hub_ride_out_a_restart_of_an_external_mosquitto() {
    let hub_net = HubNet::new(1).expect("hub address");
    let registry = Registry::start(RegistryOptions {
        ip: Some(hub_net.ips[0]),
        ..RegistryOptions::default()
    })
    .expect("registry");
    let image = format!("{}/flotilla/busybox:1", registry.host());
    push_busybox(&registry.host(), &[&image]);
    let pki = TestPki::new().expect("pki");
    let mut broker = Mosquitto::start(&pki).expect("mosquitto");
    let cluster = Cluster::start(
        1,
        ClusterOptions {
            extra_args: hub_broker_args(&broker, &pki),
            ..ClusterOptions::default()
        },
    );
    let node = "behind-mosquitto";
    let agent = AgentProcess::start_linked(
        &registry.host(),
        node,
        device_link_args(&broker, &pki, node),
    )
    .expect("agent");
    let kubectl = Kubectl::new(&cluster.replicas[0].kubeconfig());
    let files = vec![
        cluster.replicas[0].data_dir.with_extension("log"),
        agent.dir.path().join("agent.log"),
        broker.log_path(),
    ];
    let context = || format!("pods: {:#?}\n{}", pods(&kubectl), log_tails(&files, 60));
    wait_until("the device Ready", &context, || {
        node_ready(&kubectl, node).as_deref() == Some("True")
    });
    kubectl.apply(&bound_pod("first", node, &image), &[]);
    let running = |names: &[&str]| {
        let pods = pods(&kubectl);
        pods.len() == names.len()
            && pods
                .iter()
                .all(|p| names.contains(&p.name.as_str()) && p.phase == "Running" && p.ready)
    };
    wait_until("first Running", &context, || running(&["first"]));
    let before = pods(&kubectl);

    // The broker restarts and forgets everything (no persistence): the hub
    // and the device reconnect, the hub publishes every desired state again.
    broker.restart().expect("restart mosquitto");
    kubectl.apply(&bound_pod("second", node, &image), &[]);
    wait_until("second Running after the broker restart", &context, || {
        running(&["first", "second"])
    });
    assert_eq!(
        container_of(&before, "first"),
        container_of(&pods(&kubectl), "first"),
        "first was restarted\n{}",
        context()
    );
}
