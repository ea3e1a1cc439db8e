//! What devices say, as the store's objects: a [`NodeRegistration`] as the
//! Node it describes, a [`Heartbeat`]'s pressure flags as Node conditions,
//! a [`PodStatusUpdate`] as the pod's `status` with kubelet's conditions.
//!
//! Pure, like [`super::desired`]: the transport decides when to write. A
//! heartbeat changes the Node only when a condition's status changes (its
//! liveness goes to the Lease, at a coarse interval), so heartbeats never
//! flood Raft.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flotilla_shared::model::{
    self, ContainerImage, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    HostIp, Lease, Node, NodeCondition, PodCondition, PodIp, condition_status, pod_condition,
    pod_phase,
};
use flotilla_shared::quantity::Quantity;
use flotilla_shared::wire::{
    self, AddressKind, ContainerState, Heartbeat, NodeRegistration, PodPhase, PodStatusUpdate,
    Terminated,
};

use super::desired::Unresolved;
use crate::api::time::format_time;

/// Labels every Node carries, from its registration.
const ARCH_LABEL: &str = "kubernetes.io/arch";
const OS_LABEL: &str = "kubernetes.io/os";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Whether a device may set this label on its own Node: a valid label, and
/// not in Kubernetes' reserved namespaces unless kubelets may set it (the
/// NodeRestriction admission plugin's rule: a device must not make itself
/// look like a control-plane node, or claim another's zone). Others are
/// dropped, not refused, so the device still registers.
pub fn device_may_set_label(key: &str, value: &str) -> bool {
    const ALLOWED: [&str; 9] = [
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    let valid = flotilla_shared::validation::validate_labels(
        &BTreeMap::from([(key.to_owned(), value.to_owned())]),
        &flotilla_shared::validation::Path::new("labels"),
    )
    .is_empty();
    let Some((prefix, _)) = key.split_once('/') else {
        return valid;
    };
    let reserved = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|d| prefix == *d || prefix.ends_with(&format!(".{d}")));
    let kubelet_namespace = prefix == "kubelet.kubernetes.io"
        || prefix.ends_with(".kubelet.kubernetes.io")
        || prefix == "node.kubernetes.io"
        || prefix.ends_with(".node.kubernetes.io");
    valid && (!reserved || ALLOWED.contains(&key) || kubelet_namespace)
}

/// The Node `registration` describes: `existing` (when the Node exists)
/// with what the device reports replaced and what users set kept (spec,
/// taints, their own labels and annotations). Ready turns True.
pub fn node_from_registration(
    existing: Option<&Node>,
    registration: &NodeRegistration,
    now: SystemTime,
) -> Node {
    let mut node = existing.cloned().unwrap_or_default();
    node.metadata.name = registration.node.clone();
    let labels = &mut node.metadata.labels;
    labels.extend(
        registration
            .labels
            .iter()
            .filter(|(key, value)| device_may_set_label(key, value))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    labels.insert(ARCH_LABEL.into(), registration.architecture.clone());
    labels.insert(OS_LABEL.into(), registration.os.clone());
    labels.insert(HOSTNAME_LABEL.into(), registration.node.clone());
    let status = &mut node.status;
    status.capacity = resources(&registration.capacity);
    status.allocatable = resources(&registration.allocatable);
    status.addresses = registration
        .addresses
        .iter()
        .map(|a| model::NodeAddress {
            type_: match a.kind {
                AddressKind::Hostname => "Hostname",
                AddressKind::InternalIp => "InternalIP",
                AddressKind::ExternalIp => "ExternalIP",
            }
            .into(),
            address: a.address.clone(),
        })
        .collect();
    let info = &mut status.node_info;
    info.boot_id = registration.boot_id.clone();
    info.kernel_version = registration.kernel_version.clone();
    info.os_image = registration.os_image.clone();
    info.container_runtime_version = registration.container_runtime.clone();
    info.kubelet_version = format!("flotilla-agent/{}", registration.agent_version);
    info.operating_system = registration.os.clone();
    info.architecture = registration.architecture.clone();
    status.images = registration
        .images
        .iter()
        .map(|i| ContainerImage {
            names: i.names.clone(),
            size_bytes: i64::try_from(i.size_bytes).unwrap_or(i64::MAX),
        })
        .collect();
    set_node_condition(
        &mut node,
        "Ready",
        condition_status::TRUE,
        "KubeletReady",
        "flotilla-agent is posting ready status",
        now,
    );
    node
}

/// The Node with the pressure conditions `heartbeat` reports, or `None`
/// when none changed status.
pub fn node_from_heartbeat(node: &Node, heartbeat: &Heartbeat, now: SystemTime) -> Option<Node> {
    let mut updated = node.clone();
    let mut changed = false;
    for (type_, under, reason) in [
        (
            "MemoryPressure",
            heartbeat.memory_pressure,
            "KubeletHasInsufficientMemory",
        ),
        (
            "DiskPressure",
            heartbeat.disk_pressure,
            "KubeletHasDiskPressure",
        ),
        (
            "PIDPressure",
            heartbeat.pid_pressure,
            "KubeletHasInsufficientPID",
        ),
    ] {
        let (status, reason) = if under {
            (condition_status::TRUE, reason)
        } else {
            (condition_status::FALSE, "KubeletHasSufficient")
        };
        changed |= set_node_condition(&mut updated, type_, status, reason, "", now);
    }
    // A device heard from again is Ready (the lifecycle controller marked it
    // Unknown while it was silent).
    changed |= set_node_condition(
        &mut updated,
        "Ready",
        condition_status::TRUE,
        "KubeletReady",
        "flotilla-agent is posting ready status",
        now,
    );
    changed.then_some(updated)
}

/// Sets a Node condition; answers whether its status changed. The
/// transition time moves only with the status.
fn set_node_condition(
    node: &mut Node,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: SystemTime,
) -> bool {
    let conditions = &mut node.status.conditions;
    let at = Some(format_time(now));
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => {
            c.last_heartbeat_time = at;
            false
        }
        Some(c) => {
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
            c.last_heartbeat_time = at.clone();
            c.last_transition_time = at;
            true
        }
        None => {
            conditions.push(NodeCondition {
                type_: type_.into(),
                status: status.into(),
                last_heartbeat_time: at.clone(),
                last_transition_time: at,
                reason: reason.into(),
                message: message.into(),
            });
            true
        }
    }
}

fn resources(r: &wire::NodeResources) -> model::ResourceList {
    BTreeMap::from([
        ("cpu".into(), Quantity(format!("{}m", r.cpu_millis))),
        (
            "memory".into(),
            Quantity(format!("{}Ki", r.memory_bytes / 1024)),
        ),
        (
            "ephemeral-storage".into(),
            Quantity(format!("{}Ki", r.ephemeral_storage_bytes / 1024)),
        ),
        ("pods".into(), Quantity(r.pods.to_string())),
    ])
}

/// The pod's status from the device's report and its node's `host_ips`
/// ([`host_ips`]): phase, containers, IPs (a hostNetwork pod's are the
/// node's), and kubelet's conditions (`PodScheduled` kept, `Initialized`,
/// `ContainersReady`, `Ready`, `PodReadyToStartContainers` derived), each
/// transition time moving only with its status.
pub fn pod_status(
    pod: &model::Pod,
    update: &PodStatusUpdate,
    host_ips: &[HostIp],
    now: SystemTime,
) -> model::PodStatus {
    let mut status = pod.status.clone();
    if let Some(first) = host_ips.first() {
        status.host_ip = first.ip.clone();
        status.host_ips = host_ips.to_vec();
    }
    status.phase = match update.phase {
        PodPhase::Pending => pod_phase::PENDING,
        PodPhase::Running => pod_phase::RUNNING,
        PodPhase::Succeeded => pod_phase::SUCCEEDED,
        PodPhase::Failed => pod_phase::FAILED,
        PodPhase::Unknown => pod_phase::UNKNOWN,
    }
    .into();
    status.reason = update.reason.clone();
    status.message = update.message.clone();
    if let Some(ip) = update.pod_ip {
        status.pod_ip = ip.to_string();
        status.pod_ips = vec![PodIp { ip: ip.to_string() }];
    }
    if pod.spec.host_network && update.pod_ip.is_none() && !host_ips.is_empty() {
        status.pod_ip = status.host_ip.clone();
        status.pod_ips = host_ips
            .iter()
            .map(|h| PodIp { ip: h.ip.clone() })
            .collect();
    }
    if let Some(ms) = update.start_time_ms {
        status.start_time = Some(format_time(at_ms(ms)));
    }
    let image_of = |name: &str| {
        pod.spec
            .all_containers()
            .find(|c| c.name == name)
            .map(|c| c.image.clone())
            .unwrap_or_default()
    };
    let convert = |statuses: &[wire::ContainerStatus]| -> Vec<model::ContainerStatus> {
        statuses
            .iter()
            .map(|c| model::ContainerStatus {
                name: c.name.clone(),
                state: container_state(&c.state, &c.container_id),
                last_state: c
                    .last_termination
                    .as_ref()
                    .map(|t| terminated(t, &c.container_id))
                    .unwrap_or_default(),
                ready: c.ready,
                restart_count: i32::try_from(c.restart_count).unwrap_or(i32::MAX),
                image: image_of(&c.name),
                image_id: c.image_id.clone(),
                container_id: c.container_id.clone(),
                started: Some(c.started),
                ..model::ContainerStatus::default()
            })
            .collect()
    };
    status.init_container_statuses = convert(&update.init_containers);
    status.container_statuses = convert(&update.containers);

    let all_ready = |s: &[wire::ContainerStatus]| !s.is_empty() && s.iter().all(|c| c.ready);
    let initialized = pod.spec.init_containers.iter().all(|init| {
        update
            .init_containers
            .iter()
            .find(|s| s.name == init.name)
            .is_some_and(|s| {
                matches!(&s.state, ContainerState::Terminated(t) if t.exit_code == 0)
                    || (init.is_sidecar() && s.started)
            })
    });
    let sandbox = update
        .containers
        .iter()
        .chain(&update.init_containers)
        .any(|c| !c.container_id.is_empty());
    let ready = all_ready(&update.containers) && update.phase == PodPhase::Running;
    let bool_status = |b: bool| {
        if b {
            condition_status::TRUE
        } else {
            condition_status::FALSE
        }
    };
    for (type_, value, reason) in [
        (pod_condition::POD_READY_TO_START_CONTAINERS, sandbox, ""),
        (
            pod_condition::INITIALIZED,
            initialized,
            "ContainersNotInitialized",
        ),
        (pod_condition::CONTAINERS_READY, ready, "ContainersNotReady"),
        (pod_condition::READY, ready, "ContainersNotReady"),
    ] {
        let reason = if value { "" } else { reason };
        set_pod_condition(
            &mut status.conditions,
            type_,
            bool_status(value),
            reason,
            now,
        );
    }
    status
}

fn set_pod_condition(
    conditions: &mut Vec<PodCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    now: SystemTime,
) {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => {}
        Some(c) => {
            c.status = status.into();
            c.reason = reason.into();
            c.last_transition_time = Some(format_time(now));
        }
        None => conditions.push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            last_transition_time: Some(format_time(now)),
            ..PodCondition::default()
        }),
    }
}

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn container_state(state: &ContainerState, container_id: &str) -> model::ContainerState {
    match state {
        ContainerState::Waiting { reason, message } => model::ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: reason.clone(),
                message: message.clone(),
            }),
            ..model::ContainerState::default()
        },
        ContainerState::Running { started_at_ms } => model::ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(format_time(at_ms(*started_at_ms))),
            }),
            ..model::ContainerState::default()
        },
        ContainerState::Terminated(t) => terminated(t, container_id),
    }
}

fn terminated(t: &Terminated, container_id: &str) -> model::ContainerState {
    model::ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: if t.exit_code > 128 {
                t.exit_code - 128
            } else {
                0
            },
            reason: t.reason.clone(),
            message: t.message.clone(),
            started_at: Some(format_time(at_ms(t.started_at_ms))),
            finished_at: Some(format_time(at_ms(t.finished_at_ms))),
            container_id: container_id.to_owned(),
        }),
        ..model::ContainerState::default()
    }
}

/// The status of a pod its device cannot be given (a ConfigMap or Secret it
/// needs is missing), as kubelet shows it: Pending, and every container
/// waiting, with `CreateContainerConfigError` and its message, or
/// `ContainerCreating` while a volume cannot be mounted (the reason is in
/// the pod's `FailedMount` Event then). What ran before (restart counts,
/// last states) is kept.
pub fn unresolved_status(pod: &model::Pod, why: &Unresolved, now: SystemTime) -> model::PodStatus {
    let mut status = pod.status.clone();
    status.phase = pod_phase::PENDING.into();
    let waiting = if why.reason == super::desired::FAILED_MOUNT {
        ContainerStateWaiting {
            reason: "ContainerCreating".into(),
            message: String::new(),
        }
    } else {
        ContainerStateWaiting {
            reason: why.reason.into(),
            message: why.message.clone(),
        }
    };
    let statuses = |containers: &[model::Container], before: &[model::ContainerStatus]| {
        containers
            .iter()
            .map(|c| {
                let mut status = before
                    .iter()
                    .find(|s| s.name == c.name)
                    .cloned()
                    .unwrap_or_else(|| model::ContainerStatus {
                        name: c.name.clone(),
                        ..model::ContainerStatus::default()
                    });
                status.state = model::ContainerState {
                    waiting: Some(waiting.clone()),
                    ..model::ContainerState::default()
                };
                status.image = c.image.clone();
                status.ready = false;
                status.started = Some(false);
                status
            })
            .collect::<Vec<_>>()
    };
    status.init_container_statuses = statuses(
        &pod.spec.init_containers,
        &pod.status.init_container_statuses,
    );
    status.container_statuses = statuses(&pod.spec.containers, &pod.status.container_statuses);
    for type_ in [pod_condition::CONTAINERS_READY, pod_condition::READY] {
        set_pod_condition(
            &mut status.conditions,
            type_,
            condition_status::FALSE,
            "ContainersNotReady",
            now,
        );
    }
    status
}

/// Whether a pod the device reports on has nothing running any more: a pod
/// being deleted can then go (kubelet's status manager deletes it with a
/// grace period of 0 once its containers stopped).
pub fn stopped(update: &PodStatusUpdate) -> bool {
    matches!(update.phase, PodPhase::Succeeded | PodPhase::Failed)
        || update
            .init_containers
            .iter()
            .chain(&update.containers)
            .all(|c| !matches!(c.state, ContainerState::Running { .. }))
}

/// The node's Lease renewed `now` (created when `existing` is `None`),
/// lasting three heartbeats and ten seconds more: the node lifecycle
/// controller gives a device that long before it marks it unknown.
pub fn lease(
    existing: Option<&Lease>,
    node: &str,
    heartbeat_seconds: u32,
    now: SystemTime,
) -> Lease {
    let mut lease = existing.cloned().unwrap_or_else(|| Lease {
        metadata: model::ObjectMeta {
            name: node.to_owned(),
            namespace: crate::controllers::nodelifecycle::NODE_LEASE_NAMESPACE.to_owned(),
            ..model::ObjectMeta::default()
        },
        ..Lease::default()
    });
    let duration = heartbeat_seconds.saturating_mul(3).saturating_add(10);
    lease.spec.holder_identity = Some(node.to_owned());
    lease.spec.lease_duration_seconds = Some(i32::try_from(duration).unwrap_or(i32::MAX));
    lease.spec.renew_time = Some(crate::api::time::format_micro_time(now));
    lease
}

/// The Node after its device's last will: every reported condition
/// `Unknown` at once (not a grace period later), or `None` when they are.
pub fn node_offline(node: &Node, now: SystemTime) -> Option<Node> {
    let mut offline = crate::controllers::nodelifecycle::mark_unknown(node, now)?;
    for c in &mut offline.status.conditions {
        if c.status == condition_status::UNKNOWN && c.reason == "NodeStatusUnknown" {
            c.message = "The device's link to the hub ended (its MQTT last will).".into();
        }
    }
    Some(offline)
}

/// The hostIPs a registration gives pods on that node.
pub fn host_ips(node: &Node) -> Vec<HostIp> {
    node.status
        .addresses
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| HostIp {
            ip: a.address.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use flotilla_shared::wire::{ContainerStatus, ImageInfo, NodeAddress, NodeResources};
    use serde_json::json;

    use super::*;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000 + s)
    }

    fn registration() -> NodeRegistration {
        NodeRegistration {
            node: "gw-1".into(),
            architecture: "arm64".into(),
            os: "linux".into(),
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            container_runtime: "runc".into(),
            agent_version: "0.1.0".into(),
            boot_id: "b00t".into(),
            capacity: NodeResources {
                cpu_millis: 4000,
                memory_bytes: 4 << 30,
                ephemeral_storage_bytes: 32 << 30,
                pods: 110,
            },
            allocatable: NodeResources {
                cpu_millis: 3500,
                memory_bytes: 3 << 30,
                ephemeral_storage_bytes: 30 << 30,
                pods: 110,
            },
            labels: BTreeMap::from([("hw/model".into(), "pi5".into())]),
            images: vec![ImageInfo {
                names: vec!["registry.local/app:1".into()],
                size_bytes: 1234,
            }],
            addresses: vec![NodeAddress {
                kind: AddressKind::InternalIp,
                address: "10.0.0.7".into(),
            }],
            session: 1,
            heartbeat_seconds: 300,
        }
    }

    #[test]
    fn a_registration_describes_the_node_and_keeps_what_users_set() {
        let mut existing: Node = serde_json::from_value(json!({
            "metadata": {"name": "gw-1", "labels": {"site": "north", "kubernetes.io/arch": "amd64"}},
            "spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]},
        }))
        .unwrap();
        let node = node_from_registration(Some(&existing), &registration(), t(0));
        let labels = &node.metadata.labels;
        assert_eq!(labels["site"], "north");
        assert_eq!(labels["hw/model"], "pi5");
        assert_eq!(labels["kubernetes.io/arch"], "arm64");
        assert_eq!(labels["kubernetes.io/hostname"], "gw-1");
        assert!(node.spec.unschedulable && node.spec.taints.len() == 1);
        assert_eq!(node.status.capacity["cpu"].0, "4000m");
        assert_eq!(node.status.allocatable["memory"].0, "3145728Ki");
        assert_eq!(node.status.capacity["pods"].0, "110");
        assert_eq!(node.status.node_info.architecture, "arm64");
        assert_eq!(
            node.status.node_info.kubelet_version,
            "flotilla-agent/0.1.0"
        );
        assert_eq!(node.status.images[0].size_bytes, 1234);
        assert_eq!(
            host_ips(&node),
            [HostIp {
                ip: "10.0.0.7".into()
            }]
        );
        let ready = node.status.condition("Ready").unwrap();
        assert_eq!(ready.status, "True");

        // Heartbeats: no write while nothing changes; pressure is a change.
        existing = node;
        let calm = Heartbeat {
            node: "gw-1".into(),
            ..Heartbeat::default()
        };
        let first =
            node_from_heartbeat(&existing, &calm, t(10)).expect("pressure conditions appear");
        assert!(node_from_heartbeat(&first, &calm, t(20)).is_none());
        let pressed = Heartbeat {
            memory_pressure: true,
            ..calm.clone()
        };
        let under = node_from_heartbeat(&first, &pressed, t(30)).expect("a change");
        let memory = under.status.condition("MemoryPressure").unwrap();
        assert_eq!(
            (memory.status.as_str(), memory.reason.as_str()),
            ("True", "KubeletHasInsufficientMemory")
        );
        assert_eq!(memory.last_transition_time, Some(format_time(t(30))));
        // Ready Unknown (silent device) turns True at its next heartbeat.
        let mut silent = under.clone();
        silent
            .status
            .conditions
            .iter_mut()
            .find(|c| c.type_ == "Ready")
            .unwrap()
            .status = "Unknown".into();
        let back = node_from_heartbeat(&silent, &pressed, t(40)).expect("Ready again");
        assert_eq!(back.status.condition("Ready").unwrap().status, "True");
    }

    fn status(name: &str, state: ContainerState, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state,
            ready,
            started: true,
            restart_count: 2,
            image_id: "registry.local/app@sha256:abc".into(),
            container_id: format!("id-{name}"),
            last_termination: Some(Terminated {
                exit_code: 137,
                reason: "OOMKilled".into(),
                ..Terminated::default()
            }),
        }
    }

    #[test]
    fn a_status_update_becomes_kubelets_pod_status() {
        let pod: model::Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "gw-1",
                     "initContainers": [{"name": "init", "image": "busybox"}],
                     "containers": [{"name": "app", "image": "registry.local/app:1"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                       "conditions": [{"type": "PodScheduled", "status": "True"}]},
        }))
        .unwrap();
        let mut update = PodStatusUpdate {
            node: "gw-1".into(),
            pod_uid: "u".into(),
            phase: PodPhase::Running,
            pod_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 88, 0, 5))),
            start_time_ms: Some(1_795_000_000_000),
            init_containers: vec![status(
                "init",
                ContainerState::Terminated(Terminated {
                    exit_code: 0,
                    reason: "Completed".into(),
                    ..Terminated::default()
                }),
                false,
            )],
            containers: vec![status(
                "app",
                ContainerState::Running {
                    started_at_ms: 1_795_000_001_000,
                },
                true,
            )],
            ..PodStatusUpdate::default()
        };
        let hosts = [HostIp {
            ip: "10.0.0.7".into(),
        }];
        let s = pod_status(&pod, &update, &hosts, t(5));
        assert_eq!(s.host_ip, "10.0.0.7");
        assert_eq!(s.phase, "Running");
        assert_eq!(s.qos_class, "BestEffort");
        assert_eq!(s.pod_ip, "10.88.0.5");
        assert_eq!(s.start_time, Some(format_time(t(0))));
        let app = &s.container_statuses[0];
        assert_eq!(app.image, "registry.local/app:1");
        assert_eq!(app.restart_count, 2);
        assert!(app.state.running.is_some() && app.ready);
        let last = app.last_state.terminated.as_ref().unwrap();
        assert_eq!(
            (last.exit_code, last.signal, last.reason.as_str()),
            (137, 9, "OOMKilled")
        );
        let cond = |s: &model::PodStatus, t: &str| s.condition(t).map(|c| c.status.clone());
        for type_ in [
            "PodScheduled",
            "Initialized",
            "ContainersReady",
            "Ready",
            "PodReadyToStartContainers",
        ] {
            assert_eq!(cond(&s, type_).as_deref(), Some("True"), "{type_}");
        }
        // Not ready any more: Ready and ContainersReady turn False, with a
        // new transition time; the others keep theirs.
        let mut pod = pod;
        pod.status = s;
        update.containers[0].ready = false;
        let later = pod_status(&pod, &update, &hosts, t(60));
        let ready = later.condition("Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ContainersNotReady")
        );
        assert_eq!(ready.last_transition_time, Some(format_time(t(60))));
        let init = later.condition("Initialized").unwrap();
        assert_eq!(init.last_transition_time, Some(format_time(t(5))));

        // A hostNetwork pod's IP is its node's.
        pod.spec.host_network = true;
        update.pod_ip = None;
        pod.status = model::PodStatus::default();
        let host = pod_status(&pod, &update, &hosts, t(70));
        assert_eq!(host.pod_ip, "10.0.0.7");
        assert_eq!(
            host.pod_ips,
            [PodIp {
                ip: "10.0.0.7".into()
            }]
        );
    }

    #[test]
    fn an_unresolvable_pod_waits_as_kubelet_shows_it() {
        let mut pod: model::Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "gw-1",
                     "containers": [{"name": "app", "image": "registry.local/app:1"}]},
            "status": {"phase": "Pending",
                       "conditions": [{"type": "PodScheduled", "status": "True"}]},
        }))
        .unwrap();
        let config = Unresolved {
            reason: super::super::desired::CREATE_CONTAINER_CONFIG_ERROR,
            message: "configmap \"absent\" not found".into(),
        };
        let s = unresolved_status(&pod, &config, t(1));
        assert_eq!(s.phase, "Pending");
        let waiting = s.container_statuses[0].state.waiting.as_ref().unwrap();
        assert_eq!(
            (waiting.reason.as_str(), waiting.message.as_str()),
            (
                "CreateContainerConfigError",
                "configmap \"absent\" not found"
            )
        );
        assert_eq!(s.container_statuses[0].image, "registry.local/app:1");
        assert_eq!(s.condition("Ready").unwrap().status, "False");
        // The same again writes nothing new.
        pod.status = s.clone();
        assert_eq!(unresolved_status(&pod, &config, t(9)), s);
        // A volume that cannot be mounted: ContainerCreating (the reason is
        // in the FailedMount Event).
        let mount = Unresolved {
            reason: super::super::desired::FAILED_MOUNT,
            message: "MountVolume.SetUp failed".into(),
        };
        let s = unresolved_status(&pod, &mount, t(2));
        let waiting = s.container_statuses[0].state.waiting.as_ref().unwrap();
        assert_eq!(waiting.reason, "ContainerCreating");
    }

    #[test]
    fn a_pod_is_stopped_when_nothing_of_it_runs() {
        let running = status("app", ContainerState::Running { started_at_ms: 1 }, true);
        let exited = status(
            "app",
            ContainerState::Terminated(Terminated::default()),
            false,
        );
        let update = |phase, containers| PodStatusUpdate {
            phase,
            containers,
            ..PodStatusUpdate::default()
        };
        assert!(!stopped(&update(PodPhase::Running, vec![running.clone()])));
        assert!(stopped(&update(PodPhase::Running, vec![exited.clone()])));
        assert!(stopped(&update(PodPhase::Pending, vec![])));
        assert!(stopped(&update(PodPhase::Failed, vec![running])));
    }

    #[test]
    fn a_lease_lasts_three_heartbeats_and_a_last_will_marks_the_node_unknown() {
        let created = lease(None, "gw-1", 300, t(0));
        assert_eq!(created.metadata.namespace, "kube-node-lease");
        assert_eq!(created.spec.holder_identity.as_deref(), Some("gw-1"));
        assert_eq!(created.spec.lease_duration_seconds, Some(910));
        let renewed = lease(Some(&created), "gw-1", 5, t(30));
        assert_eq!(renewed.spec.lease_duration_seconds, Some(25));
        assert_ne!(renewed.spec.renew_time, created.spec.renew_time);

        let node = node_from_registration(None, &registration(), t(0));
        let offline = node_offline(&node, t(10)).unwrap();
        let ready = offline.status.condition("Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert!(ready.message.contains("last will"), "{}", ready.message);
        assert_eq!(node_offline(&offline, t(20)), None);
    }

    #[test]
    fn a_device_sets_only_labels_a_kubelet_may() {
        for (key, ok) in [
            ("hw/model", true),
            ("site", true),
            ("topology.kubernetes.io/zone", true),
            (
                "node.kubernetes.io/exclude-from-external-load-balancers",
                true,
            ),
            ("node-role.kubernetes.io/control-plane", false),
            ("kubernetes.io/anything", false),
            ("node-restriction.kubernetes.io/team", false),
            ("example.k8s.io/x", false),
            ("bad key!", false),
        ] {
            assert_eq!(device_may_set_label(key, "v"), ok, "{key}");
        }
        assert!(!device_may_set_label("site", "not a valid value!"));
        let mut r = registration();
        r.labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
        let node = node_from_registration(None, &r, t(0));
        assert!(
            !node
                .metadata
                .labels
                .contains_key("node-role.kubernetes.io/control-plane")
        );
        assert_eq!(node.metadata.labels["hw/model"], "pi5");
    }
}
