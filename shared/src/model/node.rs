//! `Node` (core/v1): a device as the scheduler sees it.
//!
//! Shapes and omission rules follow `k8s.io/api/core/v1`, so a Node as a
//! kubelet reports it (and as `kubectl get node -o yaml` prints it) decodes
//! and re-encodes with the same meaning. Not modelled: the deprecated
//! `spec.configSource`, `spec.externalID` and `status.config` (dynamic
//! kubelet configuration, removed from Kubernetes).

use serde::{Deserialize, Serialize};

use super::fields::{is_false, is_zero};
use super::{ObjectMeta, ResourceList, Time, condition_status, resource};

/// A Node: one device that runs pods.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeSpec,
    #[serde(default)]
    pub status: NodeStatus,
}
resource!(
    Node,
    group = "",
    version = "v1",
    plural = "nodes",
    namespaced = false
);

impl Node {
    /// Whether the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.status
            .condition(node_condition::READY)
            .is_some_and(|c| c.status == condition_status::TRUE)
    }
}

/// `NodeSpec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    /// The pod IP range assigned to the node (first of `podCIDRs`).
    #[serde(default, skip_serializing_if = "String::is_empty", rename = "podCIDR")]
    pub pod_cidr: String,
    /// One range per IP family.
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "podCIDRs")]
    pub pod_cidrs: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        rename = "providerID"
    )]
    pub provider_id: String,
    /// Cordoned: no new pods are scheduled here.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unschedulable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// `Taint`: repels pods that do not tolerate it ([`super::Toleration::tolerates`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// See [`taint_effect`].
    #[serde(default)]
    pub effect: String,
    /// When a `NoExecute` taint was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<Time>,
}

/// `NodeStatus`, written by the agent (capacity, conditions, node info,
/// images) and by the node lifecycle controller (conditions when the
/// device stops reporting). `daemonEndpoints` and `nodeInfo` are always
/// written, as Kubernetes does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Everything the device has.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub capacity: ResourceList,
    /// What pods may use: capacity minus system reservations.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    pub allocatable: ResourceList,
    /// Deprecated and unset by current kubelets.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<NodeCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    #[serde(default)]
    pub daemon_endpoints: NodeDaemonEndpoints,
    #[serde(default)]
    pub node_info: NodeSystemInfo,
    /// Images present on the device (the scheduler prefers nodes that have them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ContainerImage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_in_use: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_attached: Vec<AttachedVolume>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_handlers: Vec<NodeRuntimeHandler>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<NodeFeatures>,
}

impl NodeStatus {
    /// The condition of type `type_` ([`node_condition`]), if present.
    pub fn condition(&self, type_: &str) -> Option<&NodeCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// `NodeCondition`. `status` is one of [`condition_status`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    /// See [`node_condition`].
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `NodeAddress`. `type` is one of [`node_address_type`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAddress {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub address: String,
}

/// `NodeDaemonEndpoints`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeDaemonEndpoints {
    #[serde(default)]
    pub kubelet_endpoint: DaemonEndpoint,
}

/// `DaemonEndpoint`: the only capitalised JSON field in core/v1 (`Port`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonEndpoint {
    #[serde(default, rename = "Port")]
    pub port: i32,
}

/// `NodeSystemInfo`: what the device reports about itself. Every string
/// is always written, as Kubernetes does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSystemInfo {
    #[serde(default, rename = "machineID")]
    pub machine_id: String,
    #[serde(default, rename = "systemUUID")]
    pub system_uuid: String,
    #[serde(default, rename = "bootID")]
    pub boot_id: String,
    #[serde(default)]
    pub kernel_version: String,
    #[serde(default)]
    pub os_image: String,
    /// `<runtime>://<version>`, e.g. `crun://1.19`.
    #[serde(default)]
    pub container_runtime_version: String,
    #[serde(default)]
    pub kubelet_version: String,
    #[serde(default)]
    pub kube_proxy_version: String,
    /// Go's `GOOS`: `linux`.
    #[serde(default)]
    pub operating_system: String,
    /// Go's `GOARCH`: `arm64`, `arm`, `amd64` (see [`node_arch`]).
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<NodeSwapStatus>,
}

/// `NodeSwapStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSwapStatus {
    /// Bytes of swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
}

/// `ContainerImage`: an image on the device under all its names
/// (`repo@sha256:...`, `repo:tag`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerImage {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size_bytes: i64,
}

/// `AttachedVolume`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedVolume {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub device_path: String,
}

/// `NodeRuntimeHandler`: a runtime class handler the node offers
/// (the empty name is the default handler).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRuntimeHandler {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<NodeRuntimeHandlerFeatures>,
}

/// `NodeRuntimeHandlerFeatures`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRuntimeHandlerFeatures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive_read_only_mounts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_namespaces: Option<bool>,
}

/// `NodeFeatures`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFeatures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplemental_groups_policy: Option<bool>,
}

/// `Taint.effect`.
pub mod taint_effect {
    /// New pods that do not tolerate the taint are not scheduled here.
    pub const NO_SCHEDULE: &str = "NoSchedule";
    /// The scheduler avoids the node when it can.
    pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
    /// Also evicts running pods that do not tolerate the taint.
    pub const NO_EXECUTE: &str = "NoExecute";
}

/// `NodeCondition.type`.
pub mod node_condition {
    pub const READY: &str = "Ready";
    pub const MEMORY_PRESSURE: &str = "MemoryPressure";
    pub const DISK_PRESSURE: &str = "DiskPressure";
    pub const PID_PRESSURE: &str = "PIDPressure";
    pub const NETWORK_UNAVAILABLE: &str = "NetworkUnavailable";
}

/// `NodeAddress.type`.
pub mod node_address_type {
    pub const HOSTNAME: &str = "Hostname";
    pub const INTERNAL_IP: &str = "InternalIP";
    pub const EXTERNAL_IP: &str = "ExternalIP";
    pub const INTERNAL_DNS: &str = "InternalDNS";
    pub const EXTERNAL_DNS: &str = "ExternalDNS";
}

/// Well-known node labels that agents set and `nodeSelector`s name.
pub mod node_labels {
    /// Go's `GOARCH` of the node, e.g. `arm64` (see [`super::node_arch`]).
    pub const ARCH: &str = "kubernetes.io/arch";
    /// Go's `GOOS` of the node, e.g. `linux`.
    pub const OS: &str = "kubernetes.io/os";
    pub const HOSTNAME: &str = "kubernetes.io/hostname";
    pub const ZONE: &str = "topology.kubernetes.io/zone";
    pub const REGION: &str = "topology.kubernetes.io/region";
    pub const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
}

/// Values of [`node_labels::ARCH`] and `NodeSystemInfo.architecture`.
pub mod node_arch {
    pub const ARM64: &str = "arm64";
    /// 32-bit ARM (the ARM variant, v6 or v7, is not part of the label).
    pub const ARM: &str = "arm";
    pub const AMD64: &str = "amd64";
    pub const RISCV64: &str = "riscv64";
}

/// Taint keys the node lifecycle controller and the scheduler manage.
pub mod node_taints {
    /// The `Ready` condition is `False`.
    pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
    /// The `Ready` condition is `Unknown`: the device stopped reporting.
    pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
    /// `spec.unschedulable` is set (cordoned).
    pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
    pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
    pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
    pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
    pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Decodes `value` as `T`, failing on any field the type does not know,
    /// as the central unknown-field check would.
    fn decode_strict<T: serde::de::DeserializeOwned>(value: &Value) -> T {
        let mut unknown = Vec::new();
        let decoded =
            serde_ignored::deserialize(value.clone(), |path| unknown.push(path.to_string()))
                .expect("decodes");
        assert!(unknown.is_empty(), "unknown fields: {unknown:?}");
        decoded
    }

    /// A Raspberry Pi node as a v1.33 kubelet reports it (`kubectl get node -o json`).
    fn kubelet_node() -> Value {
        serde_json::from_str(
            r#"{
          "apiVersion": "v1",
          "kind": "Node",
          "metadata": {
            "name": "pi-hall-3",
            "uid": "8c1d5e2a-7b44-4a0e-9f3c-51b7d2e0c9a4",
            "resourceVersion": "51877",
            "creationTimestamp": "2026-11-20T09:02:11Z",
            "labels": {
              "beta.kubernetes.io/arch": "arm64",
              "beta.kubernetes.io/os": "linux",
              "kubernetes.io/arch": "arm64",
              "kubernetes.io/hostname": "pi-hall-3",
              "kubernetes.io/os": "linux",
              "topology.kubernetes.io/zone": "hall"
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
          },
          "spec": {
            "podCIDR": "10.42.3.0/24",
            "podCIDRs": ["10.42.3.0/24", "fd42:3::/64"],
            "providerID": "flotilla://pi-hall-3",
            "unschedulable": true,
            "taints": [
              {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": "2026-11-21T10:00:00Z"},
              {"key": "flotilla.io/battery", "value": "low", "effect": "PreferNoSchedule"}
            ]
          },
          "status": {
            "capacity": {"cpu": "4", "ephemeral-storage": "30268316Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "hugepages-32Mi": "0", "hugepages-64Ki": "0", "memory": "3884396Ki", "pods": "110"},
            "allocatable": {"cpu": "4", "ephemeral-storage": "29444174000", "hugepages-1Gi": "0", "hugepages-2Mi": "0", "hugepages-32Mi": "0", "hugepages-64Ki": "0", "memory": "3781996Ki", "pods": "110"},
            "conditions": [
              {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "2026-11-21T14:20:03Z", "lastTransitionTime": "2026-11-20T09:02:11Z", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available"},
              {"type": "DiskPressure", "status": "False", "lastHeartbeatTime": "2026-11-21T14:20:03Z", "lastTransitionTime": "2026-11-20T09:02:11Z", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure"},
              {"type": "PIDPressure", "status": "False", "lastHeartbeatTime": "2026-11-21T14:20:03Z", "lastTransitionTime": "2026-11-20T09:02:11Z", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available"},
              {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-21T14:20:03Z", "lastTransitionTime": "2026-11-20T09:02:42Z", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
            ],
            "addresses": [
              {"type": "InternalIP", "address": "192.168.1.43"},
              {"type": "Hostname", "address": "pi-hall-3"}
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
              "machineID": "2f0b8d5c1e6a4f3b9d7c0a1e2b3c4d5e",
              "systemUUID": "2f0b8d5c1e6a4f3b9d7c0a1e2b3c4d5e",
              "bootID": "c4a1f7e2-5b3d-4e8a-9f0c-1d2e3f4a5b6c",
              "kernelVersion": "6.6.51+rpt-rpi-v8",
              "osImage": "Debian GNU/Linux 12 (bookworm)",
              "containerRuntimeVersion": "containerd://1.7.23",
              "kubeletVersion": "v1.33.1",
              "kubeProxyVersion": "",
              "operatingSystem": "linux",
              "architecture": "arm64",
              "swap": {"capacity": 104853504}
            },
            "images": [
              {"names": ["registry.local/sensor-gateway@sha256:4f3e", "registry.local/sensor-gateway:2.1.0"], "sizeBytes": 21456789},
              {"names": ["registry.k8s.io/pause@sha256:7c38", "registry.k8s.io/pause:3.10"], "sizeBytes": 268051}
            ],
            "volumesInUse": ["kubernetes.io/csi/local^data-1"],
            "volumesAttached": [{"name": "kubernetes.io/csi/local^data-1", "devicePath": ""}],
            "runtimeHandlers": [
              {"name": "runc", "features": {"recursiveReadOnlyMounts": true, "userNamespaces": true}},
              {"name": "", "features": {"recursiveReadOnlyMounts": true, "userNamespaces": true}}
            ],
            "features": {"supplementalGroupsPolicy": true}
          }
        }"#,
        )
        .unwrap()
    }

    #[test]
    fn kubelet_node_round_trips_with_the_same_json() {
        let input = kubelet_node();
        let node: Node = decode_strict(&input);
        assert_eq!(serde_json::to_value(&node).unwrap(), input);
    }

    #[test]
    fn kubelet_node_decodes_into_the_expected_fields() {
        let node: Node = decode_strict(&kubelet_node());
        assert_eq!(node.status.node_info.architecture, node_arch::ARM64);
        assert_eq!(node.metadata.labels[node_labels::ARCH], node_arch::ARM64);
        assert_eq!(node.status.daemon_endpoints.kubelet_endpoint.port, 10250);
        assert_eq!(node.status.allocatable["memory"].0, "3781996Ki");
        assert_eq!(node.status.images[1].size_bytes, 268051);
        assert_eq!(node.spec.pod_cidrs, ["10.42.3.0/24", "fd42:3::/64"]);
        assert_eq!(node.spec.taints[0].key, node_taints::UNSCHEDULABLE);
        assert_eq!(node.spec.taints[1].effect, taint_effect::PREFER_NO_SCHEDULE);
        assert!(node.spec.unschedulable);
        assert!(node.is_ready());
    }

    #[test]
    fn registration_without_status_writes_only_what_kubernetes_always_writes() {
        let input = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "pi-hall-4", "labels": {"kubernetes.io/arch": "arm"}}
        });
        let node: Node = decode_strict(&input);
        assert_eq!(
            serde_json::to_value(&node).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "pi-hall-4", "labels": {"kubernetes.io/arch": "arm"}},
                "spec": {},
                "status": {
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                    "nodeInfo": {
                        "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                        "osImage": "", "containerRuntimeVersion": "", "kubeletVersion": "",
                        "kubeProxyVersion": "", "operatingSystem": "", "architecture": ""
                    }
                }
            })
        );
    }

    #[test]
    fn node_is_ready_only_when_the_ready_condition_is_true() {
        let node: Node = decode_strict(&kubelet_node());
        for (status, ready) in [
            (condition_status::TRUE, true),
            (condition_status::FALSE, false),
            (condition_status::UNKNOWN, false),
        ] {
            let mut node = node.clone();
            for condition in &mut node.status.conditions {
                if condition.type_ == node_condition::READY {
                    condition.status = status.to_owned();
                }
            }
            assert_eq!(node.is_ready(), ready, "status {status}");
        }
        let mut without_ready = node.clone();
        without_ready
            .status
            .conditions
            .retain(|c| c.type_ != node_condition::READY);
        assert!(!without_ready.is_ready());
        assert_eq!(
            node.status
                .condition(node_condition::DISK_PRESSURE)
                .unwrap()
                .reason,
            "KubeletHasNoDiskPressure"
        );
    }
}
