//! Nodes and pods for the scheduler's tests and benchmarks: a ready arm64
//! device, a pending pod, a fleet spread over zones, and the replicas of
//! many workloads.
//!
//! ```
//! use flotilla_hub::scheduler::{Config, Decision, Scheduler, fixtures};
//!
//! let mut scheduler = Scheduler::new(Config::default());
//! for node in fixtures::fleet(3, 2) {
//!     scheduler.node_changed(&node);
//! }
//! let pods = fixtures::replica_pods(3, 3);
//! let pending: Vec<_> = pods.iter().collect();
//! let decisions = scheduler.schedule(&pending);
//! assert!(decisions.iter().all(|d| matches!(d, Decision::Bind { .. })));
//! ```

use flotilla_shared::model::{
    Container, Node, NodeCondition, OwnerReference, Pod, ResourceList, ResourceRequirements,
    condition_status, node_arch, node_condition, node_labels, pod_phase,
};
use flotilla_shared::quantity::Quantity;

use super::DEFAULT_SCHEDULER_NAME;

/// The image [`pod`] runs.
pub const IMAGE: &str = "registry.local/app:1";

fn resources(cpu: &str, memory: &str, pods: Option<&str>) -> ResourceList {
    [("cpu", cpu), ("memory", memory)]
        .into_iter()
        .chain(pods.map(|p| ("pods", p)))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
        .collect()
}

/// A Ready arm64 node offering `cpu`, `memory` and 110 pods, labelled with
/// its hostname, architecture and OS as an agent labels it.
pub fn node(name: &str, cpu: &str, memory: &str) -> Node {
    let mut node = Node::default();
    node.metadata.name = name.to_owned();
    node.metadata.resource_version = "1".to_owned();
    for (key, value) in [
        (node_labels::HOSTNAME, name),
        (node_labels::ARCH, node_arch::ARM64),
        (node_labels::OS, "linux"),
    ] {
        node.metadata
            .labels
            .insert(key.to_owned(), value.to_owned());
    }
    node.status.capacity = resources(cpu, memory, Some("110"));
    node.status.allocatable = node.status.capacity.clone();
    node.status.conditions.push(NodeCondition {
        type_: node_condition::READY.to_owned(),
        status: condition_status::TRUE.to_owned(),
        reason: "KubeletReady".to_owned(),
        ..NodeCondition::default()
    });
    node.status.node_info.architecture = node_arch::ARM64.to_owned();
    node.status.node_info.operating_system = "linux".to_owned();
    node
}

/// A pending pod with one container running [`IMAGE`] that requests `cpu`
/// and `memory` (an empty string requests none).
pub fn pod(namespace: &str, name: &str, cpu: &str, memory: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.namespace = namespace.to_owned();
    pod.metadata.name = name.to_owned();
    pod.metadata.uid = format!("uid-{namespace}-{name}");
    pod.metadata.resource_version = "1".to_owned();
    pod.spec.containers.push(Container {
        name: "app".to_owned(),
        image: IMAGE.to_owned(),
        resources: ResourceRequirements {
            requests: resources(cpu, memory, None),
            ..ResourceRequirements::default()
        },
        ..Container::default()
    });
    pod.spec.scheduler_name = DEFAULT_SCHEDULER_NAME.to_owned();
    pod.status.phase = pod_phase::PENDING.to_owned();
    pod
}

/// `count` devices (`node-00000`, ...) of 4 cpus and 4 GiB, round-robin over
/// `zones` zones (`zone-0`, ...).
pub fn fleet(count: usize, zones: usize) -> Vec<Node> {
    (0..count)
        .map(|i| {
            let mut node = node(&format!("node-{i:05}"), "4", "4Gi");
            node.metadata.labels.insert(
                node_labels::ZONE.to_owned(),
                format!("zone-{}", i % zones.max(1)),
            );
            node
        })
        .collect()
}

/// `count` pending pods (100m cpu, 64 MiB) in `default`, grouped into
/// workloads of `replicas` pods, each owned by a ReplicaSet `app-<w>`.
pub fn replica_pods(count: usize, replicas: usize) -> Vec<Pod> {
    (0..count)
        .map(|i| {
            let workload = i / replicas.max(1);
            let mut pod = pod(
                "default",
                &format!("app-{workload}-{}", i % replicas.max(1)),
                "100m",
                "64Mi",
            );
            pod.metadata
                .labels
                .insert("app".to_owned(), format!("app-{workload}"));
            pod.metadata.owner_references.push(OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: "ReplicaSet".to_owned(),
                name: format!("app-{workload}"),
                uid: format!("rs-{workload}"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            });
            pod
        })
        .collect()
}
